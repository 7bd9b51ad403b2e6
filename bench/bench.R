## Speed benchmark: lmmc::lmm() against lme4::lmer().
##
## Usage (after installing lmmc, e.g. `R CMD INSTALL .` in the package directory):
##   Rscript bench/bench.R                  all models
##   Rscript bench/bench.R --quick          sleepstudy and Penicillin only
##   Rscript bench/bench.R --only=insteval  one model (sleepstudy, penicillin, insteval, crossed1e6,
##                                          kb07_20, kb07_72)
## From the source tree without installing, lmmc is loaded with pkgload::load_all().
##
## Both fits run in this one R process, interleaved (lmm, lme4, lme4, lmm, ...) after one untimed
## warm-up each (except for the two big models), and the median elapsed time over the
## repetitions is reported. Columns:
##   ratio     lme4 time / lmm time (above 1: lmm is faster)
##   feval     objective evaluations (lmm: fit$optinfo$feval, each with the gradient for the
##             default quasi-Newton optimiser; lme4: fit@optinfo$feval)
##   dcrit     (lmm criterion - lme4 criterion) / |lme4 criterion|: negative or ~0 is good
##   Mb        peak R heap during the fit above what was in use before it (gc() "max used",
##             Ncells + Vcells, after a reset; includes the fitted object); memory that C code takes
##             with malloc (CHOLMOD inside Matrix, R_Calloc) is not counted.

options(width = 200)
args <- commandArgs(trailingOnly = TRUE)
quick <- "--quick" %in% args
only <- sub("^--only=", "", grep("^--only=", args, value = TRUE))

load_lmmc <- function() {
  if (requireNamespace("lmmc", quietly = TRUE)) return(invisible(library(lmmc)))
  if (file.exists("DESCRIPTION") && requireNamespace("pkgload", quietly = TRUE))
    return(invisible(pkgload::load_all(".", quiet = TRUE)))
  stop("lmmc is not installed: run R CMD INSTALL . first", call. = FALSE)
}
load_lmmc()
if (!requireNamespace("lme4", quietly = TRUE)) stop("lme4 is not installed", call. = FALSE)

script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script), "sim_crossed.R"))      # sim_crossed()

source(file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE)[1])),
              "sim_kb07.R"))

models <- list(
  sleepstudy = list(formula = Reaction ~ Days + (Days | Subject),
                    data = function() lme4::sleepstudy, reps = 15, warmup = TRUE, inner = 20L),
  penicillin = list(formula = diameter ~ 1 + (1 | plate) + (1 | sample),
                    data = function() lme4::Penicillin, reps = 15, warmup = TRUE, inner = 20L),
  insteval   = list(formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service),
                    data = function() lme4::InstEval, reps = 3, warmup = TRUE, inner = 1L),
  crossed1e6 = list(formula = y ~ x + (1 | f1) + (1 | f2),
                    data = function() sim_crossed(), reps = 1, warmup = FALSE, inner = 1L),
  kb07_20    = list(formula = kb07_models$theta20, data = function() sim_kb07(),
                    reps = 1, warmup = FALSE, inner = 1L),
  kb07_72    = list(formula = kb07_models$theta72, data = function() sim_kb07(),
                    reps = 1, warmup = FALSE, inner = 1L, lme4 = FALSE)  # lme4: > 10 min
)
if (quick) models <- models[c("sleepstudy", "penicillin")]
if (length(only)) models <- models[intersect(only, names(models))]

## One timed fit: elapsed seconds, peak R heap (Mb) and the fitted object.  A small model is
## fitted `inner` times in a row and the time divided by `inner`: system.time() resolves 1 ms,
## too coarse for one fit of a few milliseconds.
timed_fit <- function(fitter, formula, data, inner = 1L) {
  t <- if (inner > 1L)
    system.time(for (i in seq_len(inner)) fitter(formula, data))[["elapsed"]] / inner
  base <- sum(gc(reset = TRUE)[, 2])              # Mb in use before the fit
  t1 <- system.time(fit <- fitter(formula, data))[["elapsed"]]
  mem <- sum(gc()[, 6]) - base                     # peak Mb during one fit, above that
  list(time = if (is.null(t)) t1 else t, mem = mem, fit = fit)
}

fit_lmm <- function(formula, data) suppressMessages(lmm(formula, data))
fit_lme4 <- function(formula, data) suppressMessages(lme4::lmer(formula, data))

run_model <- function(name, m) {
  data <- m$data()
  if (isFALSE(m$lme4)) {                           # lmm only
    a <- timed_fit(fit_lmm, m$formula, data, m$inner)
    return(data.frame(model = name, n = nrow(data), reps = m$reps, lmm_s = a$time,
                      lme4_s = NA, ratio = NA, lmm_feval = a$fit$optinfo$feval,
                      lme4_feval = NA, dcrit = NA, lmm_Mb = a$mem, lme4_Mb = NA))
  }
  if (m$warmup) { fit_lmm(m$formula, data); fit_lme4(m$formula, data) }
  a <- b <- vector("list", m$reps)
  for (r in seq_len(m$reps)) {                     # alternate which one goes first
    if (r %% 2 == 1) {
      a[[r]] <- timed_fit(fit_lmm, m$formula, data, m$inner)
      b[[r]] <- timed_fit(fit_lme4, m$formula, data, m$inner)
    } else {
      b[[r]] <- timed_fit(fit_lme4, m$formula, data, m$inner)
      a[[r]] <- timed_fit(fit_lmm, m$formula, data, m$inner)
    }
  }
  ta <- median(vapply(a, `[[`, 0, "time")); tb <- median(vapply(b, `[[`, 0, "time"))
  fa <- a[[1]]$fit; fb <- b[[1]]$fit
  crit_a <- REMLcrit(fa); crit_b <- lme4::REMLcrit(fb)
  data.frame(model = name, n = nrow(data), reps = m$reps,
             lmm_s = ta, lme4_s = tb, ratio = tb / ta,
             lmm_feval = fa$optinfo$feval, lme4_feval = fb@optinfo$feval,
             dcrit = (crit_a - crit_b) / abs(crit_b),
             lmm_Mb = max(vapply(a, `[[`, 0, "mem")), lme4_Mb = max(vapply(b, `[[`, 0, "mem")))
}

lmmc_version <- tryCatch(format(packageVersion("lmmc")), error = function(e)
  paste(read.dcf("DESCRIPTION", "Version"), "(load_all)"))
cat(sprintf("lmmc %s, lme4 %s, Matrix %s, %s, BLAS: %s\n",
            lmmc_version, format(packageVersion("lme4")),
            format(packageVersion("Matrix")), R.version.string,
            basename(extSoftVersion()[["BLAS"]])))
rows <- list()
for (name in names(models)) {
  cat("fitting", name, "...\n")
  rows[[name]] <- run_model(name, models[[name]])
}
tab <- do.call(rbind, rows)
rownames(tab) <- NULL
fmt <- tab
for (k in c("lmm_s", "lme4_s")) fmt[[k]] <- signif(tab[[k]], 3)
fmt$ratio <- round(tab$ratio, 2)
fmt$dcrit <- format(tab$dcrit, digits = 2)
for (k in c("lmm_Mb", "lme4_Mb")) fmt[[k]] <- round(tab[[k]])
print(fmt, row.names = FALSE)
