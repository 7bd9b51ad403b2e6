## The iterative backend on large randomly crossed designs (issue 11, section 2 / targets):
## (1 | f1) + (1 | f2), random assignment, 10^6 rows, y = 1 + 0.5 x + a + b + e with SDs 1, 0.5, 2.
##
## Usage (after R CMD INSTALL):
##   /usr/bin/time -v Rscript bench/iterative.R 20000 10000      # levels of a and b
##   /usr/bin/time -v Rscript bench/iterative.R 50000 20000
##   Rscript bench/iterative.R 2000 500 --exact                    # also the direct backend
## Prints the time of setup + fit, the evaluations, the solver's iterations, the Monte Carlo
## standard error of the criterion and the estimates; peak RSS comes from /usr/bin/time -v.
args <- commandArgs(trailingOnly = TRUE)
num <- suppressWarnings(as.numeric(args))
n1 <- if (length(num) >= 1 && !is.na(num[1])) num[1] else 20000
n2 <- if (length(num) >= 2 && !is.na(num[2])) num[2] else 10000
n <- if (length(num) >= 3 && !is.na(num[3])) num[3] else 1e6
exact <- "--exact" %in% args
suppressMessages(library(lmmc))

script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script), "sim_crossed.R"))      # sim_crossed()
d <- sim_crossed(n, n1, n2)

run <- function(backend) {
  t0 <- proc.time()[["elapsed"]]
  fit <- lmm(y ~ x + (1 | f1) + (1 | f2), d, control = lmm_control(backend = backend))
  el <- proc.time()[["elapsed"]] - t0
  it <- fit$iterative
  cat(sprintf("%-9s %6d x %-6d n = %.0e: %7.1f s, %3d evaluations (%d with gradient)%s\n",
              backend, n1, n2, n, el, fit$optinfo$feval, fit$optinfo$geval,
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
cat(sprintf("load: %s\n", paste(readLines("/proc/loadavg"), collapse = "")))
fi <- run("iterative")
if (exact) {
  fe <- run("direct")
  cat(sprintf("theta relative difference: %s; beta difference in SEs: %s\n",
              paste(format(fi$theta / fe$theta - 1, digits = 3), collapse = ", "),
              paste(format((fi$beta - fe$beta) / sqrt(diag(fe$vcov_beta)), digits = 3),
                    collapse = ", ")))
}
