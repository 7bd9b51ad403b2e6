# Runs the whole test suite: by R CMD check, and by hand from this folder with
#   Rscript testthat.R
# It prints a closing line "N passed, N failed" and exits non-zero on any failure or error.
if (!requireNamespace("testthat", quietly = TRUE)) {
  message("the tests need the testthat package: install.packages('testthat') ",
          "or apt-get install r-cran-testthat")
  # R CMD check (which sets R_TESTS) treats testthat as the optional package it is: skip there;
  # run by hand, a missing testthat is a failure.
  quit(save = "no", status = if (nzchar(Sys.getenv("R_TESTS"))) 0 else 1)
}
library(testthat)
library(lmmc)
options(testthat.progress.max_fails = Inf)

results <- as.data.frame(test_dir("testthat", package = "lmmc", load_package = "installed",
                                  reporter = ProgressReporter$new(show_praise = FALSE),
                                  stop_on_failure = FALSE))
n_failed <- sum(results$failed) + sum(results$error)
n_passed <- sum(results$nb) - sum(results$failed) - sum(results$skipped)
cat(sprintf("\n%d passed, %d failed, %d skipped\n", n_passed, n_failed, sum(results$skipped)))
if (n_failed > 0) quit(save = "no", status = 1)
