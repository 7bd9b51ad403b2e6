# Regenerate tests/testthat/data/differential-reference.rds: lme4's criteria on the random
# designs of tests/testthat/helper-differential.R (issue 9, section 4).
#
#   cd <repo> && R_LIBS=<lib with lmmc installed> Rscript bench/make-differential-reference.R
#
# For every seed in diff_seeds() the case is fitted by lme4::lmer with
#   default    lmerControl() defaults
#   bobyqa     optimizer "bobyqa", rhoend 1e-10, maxfun 1e5
#   nm         optimizer "Nelder_Mead", FtolAbs 1e-14, FtolRel 1e-15, XtolRel 1e-12, maxfun 1e5
#   nlopt      optimizer "nloptwrap", xtol_abs 1e-12, ftol_abs 1e-14, ftol_rel 1e-15, maxeval 1e5
#   from_lmm   "Nelder_Mead" tight, started at lmm's theta (lmmc as installed when this runs)
#   from_best  "Nelder_Mead" tight, started at the best theta of the above
# and the BEST criterion any of them reaches is recorded with its theta, beside lme4-default's
# criterion and theta. theta_ok says the optimum is well defined: not singular (lme4's
# isSingular at the best theta), at least two methods reach the best criterion to 1e-12
# relative, and all of those agree with the best theta to 2e-7 relative (2e-8 absolute near 0),
# a fifth of the test's theta tolerance. A case on which lmer errors with default
# control is excluded (status "lmer error: ...").
# Only numbers are stored; the data are regenerated from the seeds.

suppressPackageStartupMessages({
  library(lme4)
  library(lmmc)
})
source("tests/testthat/helper-reference.R")     # with_seed()
source("tests/testthat/helper-differential.R")

tight <- list(
  bobyqa = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                       calc.derivs = FALSE),
  nm = lmerControl(optimizer = "Nelder_Mead",
                   optCtrl = list(FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12, maxfun = 1e5),
                   calc.derivs = FALSE),
  nlopt = lmerControl(optimizer = "nloptwrap",
                      optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, ftol_rel = 1e-15,
                                     maxeval = 1e5),
                      calc.derivs = FALSE))

quiet <- function(expr) tryCatch(suppressWarnings(suppressMessages(expr)),
                                 error = function(e) conditionMessage(e))

fit_one <- function(case, control = lmerControl(), start = NULL) {
  fit <- quiet(lmer(case$formula, case$data, REML = case$REML, control = control,
                    start = start))
  if (is.character(fit)) return(list(crit = NA_real_, theta = NULL, error = fit))
  list(crit = as.numeric(if (case$REML) REMLcrit(fit) else deviance(fit)),
       theta = unname(getME(fit, "theta")), lower = getME(fit, "lower"),
       singular = isSingular(fit), error = NA_character_)
}

# Newton's method on lme4's own criterion (its devfun), from the best theta, with central
# differences: gradient step h = 1e-4 * max(|theta|, 0.1), Hessian step 10 h. The optimum is
# "pinned" when it is interior (2 h from every bound), H is positive definite and the theta
# uncertainty implied by the criterion's rounding, |H^-1| (2 eps_f / h), is at most a fifth of
# the test's tolerance max(1e-6 |theta|, 1e-7); eps_f = 4 x the spread of the criterion over 20
# perturbations of theta of relative size 1e-12 (at least 4 ulp of f).
newton_polish <- function(case, theta, lower, iters = 4) {
  devfun <- quiet(lmer(case$formula, case$data, REML = case$REML, devFunOnly = TRUE))
  if (is.character(devfun)) return(NULL)
  p <- length(theta)
  f0 <- devfun(theta)
  unit <- function(i, h) replace(numeric(p), i, h)
  for (it in seq_len(iters)) {
    h <- 1e-4 * pmax(abs(theta), 0.1)
    if (any(theta - 20 * h < lower)) return(NULL)
    g <- vapply(seq_len(p), function(i)
      (devfun(theta + unit(i, h[i])) - devfun(theta - unit(i, h[i]))) / (2 * h[i]), 0)
    hH <- 10 * h
    H <- matrix(0, p, p)
    for (i in seq_len(p)) for (j in seq_len(i)) {
      ei <- unit(i, hH[i]); ej <- unit(j, hH[j])
      H[i, j] <- H[j, i] <- (devfun(theta + ei + ej) - devfun(theta + ei - ej) -
                             devfun(theta - ei + ej) + devfun(theta - ei - ej)) / (4 * hH[i] * hH[j])
    }
    if (!all(is.finite(H)) || min(eigen(H, symmetric = TRUE, only.values = TRUE)$values) <= 0)
      return(NULL)
    Hinv <- solve(H)
    step <- drop(Hinv %*% g)
    f1 <- devfun(theta - step)
    if (!is.finite(f1) || f1 > f0) break
    theta <- theta - step
    f0 <- f1
  }
  # rounding noise of the criterion near theta: its spread over perturbations far too small
  # to change the smooth part (gradient ~ 0, curvature * 1e-24)
  noise <- vapply(1:20, function(k) devfun(theta * (1 + k * 1e-12) + k * 1e-13), 0)
  eps_f <- max(4 * stats::sd(noise), 4 * .Machine$double.eps * abs(f0))
  unc <- drop(abs(Hinv) %*% (2 * eps_f / h))
  list(crit = f0, theta = theta, singular = FALSE, error = NA_character_,
       pinned = all(unc <= 0.2 * pmax(1e-6 * abs(theta), 1e-7)))
}

reference_case <- function(seed) {
  case <- diff_case(seed)
  row <- list(seed = seed, formula = paste(deparse(case$formula, 500), collapse = ""),
              n = nrow(case$data), REML = case$REML, design = case$design)
  def <- fit_one(case)
  if (!is.na(def$error)) return(c(row, status = paste("lmer error:", def$error)))
  fits <- c(list(default = def), lapply(tight, function(ctl) fit_one(case, ctl)))
  lm <- diff_fit_lmm(case)
  if (!is.null(lm$theta) && length(lm$theta) == length(def$theta))
    fits$from_lmm <- fit_one(case, tight$nm, list(theta = pmax(lm$theta, def$lower)))
  crits <- vapply(fits, function(f) f$crit, 0)
  b <- which.min(crits)
  fits$from_best <- fit_one(case, tight$nm, list(theta = fits[[b]]$theta))
  crits <- vapply(fits, function(f) f$crit, 0)
  b <- which.min(crits)
  best <- fits[[b]]
  polish <- if (!best$singular) newton_polish(case, best$theta, def$lower) else NULL
  if (!is.null(polish) && polish$crit <= best$crit) {
    fits$newton <- polish
    crits <- c(crits, newton = polish$crit)
    best <- polish
    b <- length(fits)
  }
  c(row, list(status = "ok", crit_default = def$crit, theta_default = def$theta,
              crit_best = best$crit, theta_best = best$theta, best_method = names(fits)[b],
              crits = crits, thetas = lapply(fits, function(f) f$theta), singular = best$singular,
              theta_ok = !is.null(polish) && polish$pinned && polish$crit <= best$crit,
              lmm_crit_when_made = lm$crit))
}

t0 <- proc.time()[["elapsed"]]
cases <- lapply(diff_seeds(), function(s) {
  r <- reference_case(s)
  cat(sprintf("%3d n=%4d %-5s %s %s\n", s, r$n, r$REML, r$status, r$formula))
  r
})
ref <- list(cases = cases, rng_kind = diff_rng_kind, seeds = diff_seeds(),
            lme4_version = as.character(packageVersion("lme4")),
            R_version = R.version.string, made = format(Sys.time(), tz = "UTC", usetz = TRUE))
saveRDS(ref, "tests/testthat/data/differential-reference.rds", version = 2)
cat(sprintf("%d cases in %.0f s\n", length(cases), proc.time()[["elapsed"]] - t0))
