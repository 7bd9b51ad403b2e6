## Speed benchmark: lmmc::lmm() with an AR(1) residual structure against nlme::lme().
##
## Usage:  Rscript bench/bench_residual.R [--reps=5] [--only=growth|long|ar2|arma11|dense]
## (run in the source tree, lmmc is loaded from it with pkgload::load_all()).
##
## long: 160 ids x 12,000 time points (1.92 million rows), y ~ time + (1 + time | id), corAR1
## (glmmTMB's ar1() asks for 42.6 GB there, glmmTMB issue 995): one lmm fit, its time,
## evaluations and the process's peak resident memory (VmHWM); nlme is not run (hours).
## ar2: the same data with corARMA(p = 2) (AR(2), whitened by Durbin-Levinson bands).
## arma11: the same data with corARMA(p = 1, q = 1) (whitened by the innovations recursion,
## src/residual_innovations.c): one fit, then the cost of one evaluation (criterion and gradient
## at a new rho) on the first n_t = 3,000 .. 12,000 times of every id: it grows as n (reported:
## microseconds per evaluation / n), where a dense whitening would grow as n m^2.
## dense: the cost of one evaluation (criterion and gradient at a new rho) with structures whitened
## group by group (corCompSymm, corExp), n = 24,000 rows in groups of m = 8 .. 240: it grows as
## sum m_g^3 = n m^2 (reported: microseconds per evaluation / (n m^2)).
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
only <- sub("^--only=", "", c(grep("^--only=", args, value = TRUE), "--only=all")[1L])

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

# peak and current resident memory of this process, MB (Linux)
proc_mb <- function(field) {
  s <- readLines("/proc/self/status")
  as.numeric(sub("\\D*(\\d+).*", "\\1", grep(paste0("^", field, ":"), s, value = TRUE))) / 1024
}

# AR(1) series of n_t points for each of n_id ids (phi 0.8), random intercept and slope.
sim_long <- function(n_id = 160, n_t = 12000, phi = 0.8, seed = 995) {
  set.seed(seed)
  id <- rep(seq_len(n_id), each = n_t)
  time <- rep(seq_len(n_t) - 1, n_id) / n_t
  b0 <- rnorm(n_id, 0, 1); b1 <- rnorm(n_id, 0, 0.5)
  z <- matrix(rnorm(n_id * n_t), n_t) * sqrt(1 - phi^2)
  e <- as.vector(stats::filter(z, phi, method = "recursive"))
  data.frame(y = 1 + 2 * time + b0[id] + b1[id] * time + e, time,
             tt = rep(seq_len(n_t), n_id), id = factor(id))
}

if (only %in% c("all", "long")) {
  dl <- sim_long()
  before <- proc_mb("VmRSS")
  t <- system.time(fit <- lmm(y ~ time + (1 + time | id), dl,
                              correlation = nlme::corAR1(form = ~ tt | id)))
  print(data.frame(model = "long 160x12000 (1+time|id) + corAR1", rows = nrow(dl),
                   lmm_s = t[["elapsed"]], feval = fit$optinfo$feval,
                   converged = fit$optinfo$converged, phi = unname(fit$residual$phi),
                   rss_before_mb = round(before), peak_rss_mb = round(proc_mb("VmHWM"))),
        row.names = FALSE)
  rm(dl, fit); invisible(gc())
}
if (only %in% c("all", "ar2")) {
  dl <- sim_long()
  t <- system.time(fit <- lmm(y ~ time + (1 + time | id), dl,
                              correlation = nlme::corARMA(form = ~ tt | id, p = 2)))
  print(data.frame(model = "long 160x12000 (1+time|id) + corARMA(2, 0)", lmm_s = t[["elapsed"]],
                   feval = fit$optinfo$feval, converged = fit$optinfo$converged,
                   t(fit$residual$phi), peak_rss_mb = round(proc_mb("VmHWM"))), row.names = FALSE)
  rm(dl, fit); invisible(gc())
}
if (only %in% c("all", "arma11")) {
  dl <- sim_long()
  t <- system.time(fit <- lmm(y ~ time + (1 + time | id), dl,
                              correlation = nlme::corARMA(form = ~ tt | id, p = 1, q = 1)))
  print(data.frame(model = "long 160x12000 (1+time|id) + corARMA(1, 1)", lmm_s = t[["elapsed"]],
                   feval = fit$optinfo$feval, converged = fit$optinfo$converged,
                   t(fit$residual$phi), peak_rss_mb = round(proc_mb("VmHWM"))), row.names = FALSE)
  rows <- list()
  for (n_t in c(3000L, 6000L, 12000L)) {
    ds <- dl[dl$tt <= n_t, ]
    pieces <- lmm_pieces(y ~ time + (1 + time | id), ds)
    spec <- lmmc:::residual_spec(nlme::corARMA(form = ~ tt | id, p = 1, q = 1), NULL, ds, pieces)
    e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset,
                             spec)
    reps_e <- 5L
    te <- system.time(for (r in seq_len(reps_e))
      lmmc:::engine_gradient(e, c(1, 0, 0.5), TRUE, c(1.5, -0.3) + r * 1e-3))[["elapsed"]] / reps_e
    rows[[length(rows) + 1L]] <- data.frame(structure = "corARMA(1, 1)", m = n_t, n = nrow(ds),
                                            ms_per_eval = 1e3 * te, us_per_n = 1e6 * te / nrow(ds))
  }
  print(do.call(rbind, rows), digits = 3, row.names = FALSE)
  rm(dl, fit); invisible(gc())
}

if (only %in% c("all", "dense")) {
  rows <- list()
  for (m in c(8L, 24L, 80L, 240L)) {
    n <- 24000L
    set.seed(1)
    dd <- data.frame(g = factor(rep(seq_len(n / m), each = m)), t = rep(seq_len(m), n / m),
                     x = rnorm(n))
    dd$y <- dd$x + rnorm(n / m)[dd$g] + rnorm(n)
    for (cs in list(nlme::corCompSymm(form = ~ 1 | g), nlme::corExp(form = ~ t | g))) {
      pieces <- lmm_pieces(y ~ x, dd, random = FALSE)
      spec <- lmmc:::residual_spec(cs, NULL, dd, pieces)
      e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights,
                               pieces$offset, spec)
      reps <- max(2L, as.integer(200 / m))
      t <- system.time(for (r in seq_len(reps))
        lmmc:::engine_gradient(e, numeric(), TRUE, spec$rho + r * 1e-3))[["elapsed"]] / reps
      rows[[length(rows) + 1L]] <- data.frame(structure = class(cs)[1L], m = m, n = n,
                                              ms_per_eval = 1e3 * t,
                                              us_per_n_m2 = 1e6 * t / (n * m^2))
    }
  }
  print(do.call(rbind, rows), digits = 3, row.names = FALSE)
}
if (!only %in% c("all", "growth")) quit(save = "no")

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
