# The dense block's backend (src/dense_kernel.c): lmmc's own kernels, or R's LAPACK (dpotrf,
# dpotri) where R is linked to an optimised BLAS and that is faster.  options(lmmc.dense_backend
# = "auto" / "own" / "lapack"); "auto" (the default) takes what dense_backend_detect() found when
# the package was loaded.

# Known optimised BLAS/LAPACK libraries, matched against the library paths.
optimised_blas_pattern <- "openblas|mkl|blis|atlas|accelerate|veclib|armpl|aocl|libsci|essl"

# Is R's BLAS (or its LAPACK) an optimised one?  The paths are also resolved through symbolic
# links, so that Debian's libblas.so.3 alternative pointing into openblas-pthread/ counts.
blas_is_optimised <- function(paths = c(extSoftVersion()[["BLAS"]], La_library())) {
  paths <- paths[!is.na(paths) & nzchar(paths)]
  resolved <- suppressWarnings(normalizePath(paths, mustWork = FALSE))
  any(grepl(optimised_blas_pattern, c(paths, resolved), ignore.case = TRUE))
}

# Seconds of one Cholesky factorisation and inverse of order n by each backend, c(own, lapack)
# (the best of reps).
dense_backend_time <- function(n = 640L, reps = 3L) {
  stats::setNames(.Call(C_lmm_dense_backend_time, as.integer(n), as.integer(reps)),
                  c("own", "lapack"))
}

# What "auto" takes: LAPACK when the BLAS is an optimised one and LAPACK is at least 20% faster
# than lmmc's own kernels on a block of order 640 (best of 5, timed once at load, about 0.15 s;
# the reference BLAS is never timed).
dense_backend_detect <- function() {
  if (!blas_is_optimised()) return(FALSE)
  t <- tryCatch(dense_backend_time(reps = 5L), error = function(e) c(own = 1, lapack = Inf))
  unname(t[["lapack"]] < 0.8 * t[["own"]])
}

# The backend a fit uses now: "own" or "lapack".
dense_backend <- function() {
  opt <- getOption("lmmc.dense_backend", "auto")
  if (!is.character(opt) || length(opt) != 1L || !opt %in% c("auto", "own", "lapack"))
    stop("option 'lmmc.dense_backend' must be \"auto\", \"own\" or \"lapack\"", call. = FALSE)
  if (opt != "auto") return(opt)
  if (.Call(C_lmm_dense_backend_auto, NA)) "lapack" else "own"
}

.onLoad <- function(libname, pkgname) {
  .Call(C_lmm_dense_backend_auto, dense_backend_detect())
  invisible()
}
