## kb07-shaped maximal models (issue 9): 56 subjects x 32 items, each subject sees each item once
## (1792 rows); three +-0.5 factors spkr, prec, load, their 8 combinations rotated over items in a
## Latin square so that all are within subject and within item, as in kb07.
##   Rscript bench/kb07.R            lmm (quasi-Newton and BOBYQA) on both models
##   Rscript bench/kb07.R --lme4     also lme4 (tight settings) on the 20-theta model (~15 s)
##   Rscript bench/kb07.R --starts   also 5 random starts of lmm on each model (best criterion)
args <- commandArgs(trailingOnly = TRUE)
if (!requireNamespace("lmmc", quietly = TRUE)) pkgload::load_all(".") else library(lmmc)

source(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)[1])),
              "sim_kb07.R"))

d <- sim_kb07()
timed <- function(expr) { t <- system.time(v <- expr)[["elapsed"]]; list(t = t, v = v) }
rows <- list()
for (nm in names(kb07_models)) {
  f <- kb07_models[[nm]]
  for (opt in c("quasi-newton", "bobyqa")) {
    if (opt == "bobyqa" && nm == "theta72" && !("--bobyqa72" %in% args)) next
    r <- timed(suppressMessages(lmm(f, d, control = lmm_control(optimizer = opt))))
    oi <- r$v$optinfo
    rows[[length(rows) + 1]] <- data.frame(model = nm, method = paste0("lmm ", opt), s = r$t,
      feval = oi$feval, geval = oi$geval, crit = r$v$crit, pgrad = signif(if (is.null(oi$pgrad)) NA else oi$pgrad, 2),
      on_bound = length(oi$on_bound))
  }
  if ("--starts" %in% args) {
    set.seed(1)
    ntheta <- length(r$v$theta)
    for (k in 1:5) {
      fit <- suppressMessages(lmm(f, d, start = runif(ntheta, 0, 1) * (r$v$lower == 0) +
                                    rnorm(ntheta, sd = 0.2) * (r$v$lower != 0)))
      rows[[length(rows) + 1]] <- data.frame(model = nm, method = paste("lmm random start", k),
        s = NA, feval = fit$optinfo$feval, geval = fit$optinfo$geval, crit = fit$crit,
        pgrad = signif(fit$optinfo$pgrad, 2), on_bound = length(fit$optinfo$on_bound))
    }
  }
  if ("--lme4" %in% args && nm == "theta20") {
    ctl <- lme4::lmerControl(optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12, maxeval = 1e5),
                             calc.derivs = FALSE)
    r <- timed(suppressMessages(lme4::lmer(f, d, control = ctl)))
    rows[[length(rows) + 1]] <- data.frame(model = nm, method = "lme4 (bobyqa, tight)", s = r$t,
      feval = r$v@optinfo$feval, geval = 0, crit = lme4::REMLcrit(r$v), pgrad = NA,
      on_bound = sum(lme4::getME(r$v, "theta")[lme4::getME(r$v, "lower") == 0] == 0))
  }
}
tab <- do.call(rbind, rows)
tab$crit <- format(tab$crit, digits = 12)
print(tab, row.names = FALSE)
