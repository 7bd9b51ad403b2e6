## Per-evaluation times of the criterion and of the criterion with its gradient, on the designs
## whose evaluations are dominated by the dense block: the sparse-to-dense Schur update
## (src/dense_schur.c), the dense Cholesky factorisation and the dense inverse behind the gradient.
##
## Usage (after installing lmmc):
##   Rscript bench/dense_update.R                  both designs
##   Rscript bench/dense_update.R --only=crossed   20,000 x 2,000 crossed, 10^6 rows
##   Rscript bench/dense_update.R --only=insteval  lme4::InstEval (needs lme4 for the data)
##   Rscript bench/dense_update.R --threads=1      one thread for the dense block
## Times are medians of elapsed seconds over `reps` evaluations at a fixed theta, after one
## untimed evaluation; the machine's load (uptime) is printed beside them.

args <- commandArgs(trailingOnly = TRUE)
only <- sub("^--only=", "", grep("^--only=", args, value = TRUE))
threads <- sub("^--threads=", "", grep("^--threads=", args, value = TRUE))
if (length(threads)) options(lmmc.threads = as.integer(threads))
suppressMessages(library(lmmc))

script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script), "sim_crossed.R"))      # sim_crossed()

designs <- list(
  crossed = list(formula = y ~ x + (1 | f1) + (1 | f2), data = function() sim_crossed(n1 = 2e4, n2 = 2e3),
                 theta = c(0.5, 0.25), reps = 5),
  insteval = list(formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service),
                  data = function() lme4::InstEval, theta = c(0.31, 0.50, 0.30), reps = 20)
)
if (length(only)) designs <- designs[intersect(only, names(designs))]

## median elapsed and CPU (user + system, all threads) seconds of one evaluation
per_eval <- function(f, reps) {
  f()
  t <- vapply(seq_len(reps), function(i) {
    s <- system.time(f())
    c(s[["elapsed"]], s[["user.self"]] + s[["sys.self"]])
  }, c(0, 0))
  apply(t, 1, median)
}

load <- function() sub(".*load average: ", "", system("uptime", intern = TRUE))
backend <- if (exists("dense_backend", asNamespace("lmmc"))) lmmc:::dense_backend() else "own"
cat(sprintf("lmmc %s, dense backend %s, threads %s, %s\n", format(packageVersion("lmmc")),
            backend, getOption("lmmc.threads", 2),
            basename(extSoftVersion()[["BLAS"]])))
for (name in names(designs)) {
  d <- designs[[name]]
  pieces <- lmm_pieces(d$formula, d$data())
  engine <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
  info <- .Call(lmmc:::C_lmm_layout_info, engine)
  crit <- per_eval(function() lmmc:::engine_crit(engine, d$theta, TRUE), d$reps)
  grad <- per_eval(function() lmmc:::engine_gradient(engine, d$theta, TRUE), d$reps)
  cat(sprintf(paste("%-9s rows %7d, sparse columns %5d, dense order %4d: criterion %6.1f ms",
                    "(CPU %6.1f), with gradient %6.1f ms (CPU %6.1f); load %s\n"),
              name, length(pieces$y), info[["sparse_nodes"]], info[["dense_order"]],
              1e3 * crit[1], 1e3 * crit[2], 1e3 * grad[1], 1e3 * grad[2], load()))
}
