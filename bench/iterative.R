## The iterative backend on large randomly crossed designs (issue 11, section 2 / targets):
## (1 | f1) + (1 | f2), random assignment, 10^6 rows, y = 1 + 0.5 x + a + b + e with SDs 1, 0.5, 2.
##
## Usage (after R CMD INSTALL):
##   /usr/bin/time -v Rscript bench/iterative.R 20000 10000      # levels of a and b
##   /usr/bin/time -v Rscript bench/iterative.R 50000 20000
##   Rscript bench/iterative.R 2000 500 --exact                    # also the direct backend
## Vector-valued terms (the same output, with --exact the accuracy against the direct fit):
##   Rscript bench/iterative.R 2000 500 1e5 --slopes --exact   # y ~ x + (1 + x | f1) + (1 | f2)
##   Rscript bench/iterative.R 50000 10 --growth --exact       # Reaction ~ Days + (1 + Days | Subject),
##                                                             # 50,000 subjects x 10 days
## Prints the time of setup + fit, the evaluations, the solver's iterations, the Monte Carlo
## standard error of the criterion and the estimates; peak RSS comes from /usr/bin/time -v.
args <- commandArgs(trailingOnly = TRUE)
num <- suppressWarnings(as.numeric(args))
num <- num[!is.na(num)]
n1 <- if (length(num) >= 1) num[1] else 20000
n2 <- if (length(num) >= 2) num[2] else 10000
n <- if (length(num) >= 3) num[3] else 1e6
exact <- "--exact" %in% args
design <- if ("--slopes" %in% args) "slopes" else if ("--growth" %in% args) "growth" else "crossed"
suppressMessages(library(lmmc))

script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script), "sim_crossed.R"))      # sim_crossed()

## random intercepts and slopes of f1 (SDs 0.8 and 0.3, correlation 0.55) crossed with
## intercepts of f2 (SD 0.5); residual SD 1
sim_slopes <- function(n, n1, n2, seed = 42) {
  set.seed(seed)
  f1 <- sample.int(n1, n, replace = TRUE)
  f2 <- sample.int(n2, n, replace = TRUE)
  x <- rnorm(n)
  b0 <- rnorm(n1, sd = 0.8)
  b1 <- 0.25 * b0 + rnorm(n1, sd = 0.25)
  y <- 1 + 0.5 * x + b0[f1] + b1[f1] * x + rnorm(n2, sd = 0.5)[f2] + rnorm(n)
  data.frame(y = y, x = x, f1 = factor(f1), f2 = factor(f2))
}

## sleepstudy-like growth curves: ns subjects observed on days 0 .. nd - 1 (SDs 25 and 6,
## correlation 0.2, residual SD 25)
sim_growth <- function(ns, nd, seed = 42) {
  set.seed(seed)
  s <- rep(seq_len(ns), each = nd)
  Days <- rep(seq_len(nd) - 1, ns)
  b0 <- rnorm(ns, sd = 25)
  b1 <- 0.2 * 6 / 25 * b0 + rnorm(ns, sd = 6 * sqrt(1 - 0.04))
  Reaction <- 250 + 10 * Days + b0[s] + b1[s] * Days + rnorm(ns * nd, sd = 25)
  data.frame(Reaction = Reaction, Days = Days, Subject = factor(s))
}

d <- switch(design, crossed = sim_crossed(n, n1, n2), slopes = sim_slopes(n, n1, n2),
            growth = sim_growth(n1, n2))
form <- switch(design, crossed = y ~ x + (1 | f1) + (1 | f2),
               slopes = y ~ x + (1 + x | f1) + (1 | f2),
               growth = Reaction ~ Days + (1 + Days | Subject))

run <- function(backend) {
  t0 <- proc.time()[["elapsed"]]
  fit <- lmm(form, d, control = lmm_control(backend = backend))
  el <- proc.time()[["elapsed"]] - t0
  it <- fit$iterative
  cat(sprintf("%-9s %6d x %-6d n = %.0e: %7.1f s, %3d evaluations (%d with gradient)%s\n",
              backend, n1, n2, nrow(d), el, fit$optinfo$feval, fit$optinfo$geval,
              if (is.null(it)) "" else sprintf(
                "; CG iterations %d (B), %d (probes), %d probes, MC SE of the criterion %.3g",
                as.integer(it$iterations), as.integer(it$probe_iterations),
                as.integer(it$probes), it$crit_se)))
  cat(sprintf("          theta %s; beta %s; sigma %.6f; criterion %.3f; converged %s\n",
              paste(format(fit$theta, digits = 7), collapse = ", "),
              paste(format(fit$beta, digits = 7), collapse = ", "), fit$sigma, fit$crit,
              fit$optinfo$converged))
  invisible(fit)
}

## the largest difference of the conditional modes of the two backends at one theta
modes_difference <- function(theta) {
  pc <- lmm_pieces(form, d)
  ex <- lmmc:::engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
  it <- lmmc:::engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset,
                            backend = lmmc:::iterative_settings(lmm_control()))
  max(abs(lmmc:::engine_solution(it, theta, TRUE)$u - lmmc:::engine_solution(ex, theta, TRUE)$u))
}

cat(sprintf("load: %s\n", paste(readLines("/proc/loadavg"), collapse = "")))
fi <- run("iterative")
if (exact) {
  fe <- run("direct")
  cat(sprintf("theta relative difference: %s; beta difference in SEs: %s\n",
              paste(format(fi$theta / fe$theta - 1, digits = 3), collapse = ", "),
              paste(format((fi$beta - fe$beta) / sqrt(diag(fe$vcov_beta)), digits = 3),
                    collapse = ", ")))
  re <- function(f) unlist(lapply(ranef(f), as.matrix))
  cat(sprintf("conditional modes: largest difference %.3g at the fits' own theta, %.3g at the same theta\n",
              max(abs(re(fi) - re(fe))), modes_difference(fe$theta)))
}
