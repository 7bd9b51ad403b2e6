## Speed benchmark: lmmc::lmm() with an AR(1) residual structure against nlme::lme().
##
## Usage:  Rscript bench/bench_residual.R [--reps=5]
## (run in the source tree, lmmc is loaded from it with pkgload::load_all()).
##
## Data: the simulated growth curve of tests/testthat/test-residual.R: 2,500 subjects x 4 times,
## random intercept and slope, AR(1) errors with phi = 0.7 (seed 4), 10,000 rows.  Model:
##   lmm(y ~ time * arm + (time | id), d, correlation = nlme::corAR1(form = ~ time | id))
##   nlme::lme(y ~ time * arm, random = ~ time | id, d, correlation = nlme::corAR1(form = ~ time | id))
## Both fits run in this one R process, interleaved (lmm, nlme, nlme, lmm, ...) after one untimed
## warm-up each; the median elapsed and user+system times over the repetitions are reported, with
##   ratio   nlme time / lmm time (above 1: lmm is faster)
##   dll     lmm logLik - nlme logLik (>= 0 or ~0 is good)
##   dphi    lmm phi - nlme phi

options(width = 200)
args <- commandArgs(trailingOnly = TRUE)
reps <- as.integer(sub("^--reps=", "", c(grep("^--reps=", args, value = TRUE), "--reps=5")[1L]))

load_lmmc <- function() {                 # the source tree first, else the installed package
  if (file.exists("DESCRIPTION") && requireNamespace("pkgload", quietly = TRUE))
    return(invisible(pkgload::load_all(".", quiet = TRUE)))
  if (requireNamespace("lmmc", quietly = TRUE)) return(invisible(library(lmmc)))
  stop("lmmc is not installed: run R CMD INSTALL . first", call. = FALSE)
}
load_lmmc()

sim_growth <- function(n_id = 2500, n_t = 4, phi = 0.7, seed = 4) {
  set.seed(seed)
  id <- rep(seq_len(n_id), each = n_t)
  time <- rep(seq_len(n_t) - 1, n_id)
  arm <- rep(rep(0:1, length.out = n_id), each = n_t)
  b0 <- rnorm(n_id, 0, 2); b1 <- rnorm(n_id, 0, 0.5)
  e <- as.vector(apply(matrix(rnorm(n_id * n_t), n_t), 2, function(z) {
    out <- z; for (j in seq_along(z)[-1]) out[j] <- phi * out[j - 1] + sqrt(1 - phi^2) * z[j]; out }))
  y <- 10 + 1.5 * time + 0.5 * arm + 0.3 * time * arm + b0[id] + b1[id] * time + e
  data.frame(y, time, arm, id = factor(id))
}

d <- sim_growth()
fit_lmm <- function() lmm(y ~ time * arm + (time | id), d,
                          correlation = nlme::corAR1(form = ~ time | id))
fit_nlme <- function() nlme::lme(y ~ time * arm, random = ~ time | id, data = d,
                                 correlation = nlme::corAR1(form = ~ time | id))

timed <- function(f) {
  t <- system.time(fit <- f())
  list(fit = fit, elapsed = t[["elapsed"]], cpu = t[["user.self"]] + t[["sys.self"]])
}

invisible(fit_lmm()); invisible(fit_nlme())               # warm-up
runs <- list(lmm = list(), nlme = list())
for (r in seq_len(reps)) {
  order <- if (r %% 2) c("lmm", "nlme") else c("nlme", "lmm")
  for (who in order) runs[[who]][[r]] <- timed(if (who == "lmm") fit_lmm else fit_nlme)
}
med <- function(who, what) stats::median(vapply(runs[[who]], `[[`, 1, what))
a <- runs$lmm[[1]]$fit
b <- runs$nlme[[1]]$fit
res <- data.frame(
  model = "growth 2500x4 (time|id) + corAR1",
  lmm_s = med("lmm", "elapsed"), nlme_s = med("nlme", "elapsed"),
  ratio = med("nlme", "elapsed") / med("lmm", "elapsed"),
  lmm_cpu = med("lmm", "cpu"), nlme_cpu = med("nlme", "cpu"),
  ratio_cpu = med("nlme", "cpu") / med("lmm", "cpu"),
  feval = a$optinfo$feval,
  dll = -a$crit / 2 - c(stats::logLik(b)),
  dphi = unname(a$residual$phi) - unname(coef(b$modelStruct$corStruct, unconstrained = FALSE)))
print(res, digits = 4, row.names = FALSE)
cat(sprintf("reps = %d; ratio = median nlme time / median lmm time\n", reps))
