# The backend that evaluates the criterion: "direct" (the Cholesky factor of the penalised
# cross-product, src/factor.c) or "iterative" (src/iterative*.c: conjugate gradients on A's own
# sparse pattern -- on the Schur complement of the term with most columns (eliminated exactly by
# its p x p blocks), preconditioned by the complement's diagonal blocks, with the terms of few
# levels eliminated exactly -- and the remaining log-determinant by stochastic Lanczos quadrature
# with fixed probes), and
# "auto": the iterative one when the exact factor would need more than
# lmm_control(memory_limit) bytes (2 GiB by default) by the symbolic analysis' prediction.  The
# iterative fit is approximate: log|Omega_Z| (and so the
# criterion) carries a Monte Carlo error, reported with the fit; the fixed effects, sigma and
# the conditional modes at the returned theta are exact up to the solver's tolerance.
# (lmm_backends is in R/control.R.)

# The iterative engine's settings for this fit (a list for src/iterative.c), or NULL for the
# direct backend.
choose_backend <- function(control, y, X, reterms, weights, offset, spec) {
  backend <- if (is.null(control$backend)) "auto" else control$backend
  if (identical(backend, "direct")) return(NULL)
  if (identical(backend, "iterative")) {
    if (!is.null(spec))
      stop("backend = \"iterative\" does not support residual correlation or variance ",
           "structures: use backend = \"direct\"", call. = FALSE)
    if (!length(reterms))
      stop("backend = \"iterative\" needs random-effects terms", call. = FALSE)
    return(iterative_settings(control))
  }
  if (!is.null(spec) || length(reterms) < 2L) return(NULL)
  limit <- if (is.null(control$memory_limit)) auto_memory_limit else control$memory_limit
  if (exact_memory_bound(X, reterms) <= limit) return(NULL)       # no symbolic analysis needed
  need <- layout_prediction(y, X, reterms, weights, offset)[["bytes"]]  # R/objective.R
  if (need <= limit) return(NULL)
  message(sprintf(paste("lmm: the exact factor would need about %.3g GB (memory_limit %.3g GB):",
                        "using the iterative backend (approximate; see lmm_control(backend =))"),
                  need / 1e9, limit / 1e9))
  iterative_settings(control)
}

# "auto"'s memory limit for the exact factor when lmm_control(memory_limit) is NULL
auto_memory_limit <- 2^31

# An upper bound on the exact factor's bytes without the symbolic analysis: every block dense,
# q + p + 1 square, held a few times (A, L, the gradient's workspace).
exact_memory_bound <- function(X, reterms) {
  q <- sum(vapply(reterms, function(term) nlevels(term$group) * NCOL(term$Xt), 1))
  32 * (q + NCOL(X) + 1)^2
}

iterative_settings <- function(control) {
  list(probes = if (is.null(control$probes)) 30L else control$probes,
       tol = if (is.null(control$iter_tol)) 1e-10 else control$iter_tol,
       tol_probe = 1e-8, maxit = 5000L,
       seed = if (is.null(control$probe_seed)) 1L else control$probe_seed,
       tail = if (is.null(control$exact_levels)) 200L else control$exact_levels,
       schur = TRUE)          # the term with most columns eliminated by its blocks
}

# What the fit reports about the iterative evaluation: the settings, the probe count, the
# Monte Carlo standard error of the criterion at the optimum (that of log|Omega_Z|, the only
# stochastic part) and the solver's work at the last evaluation.
# theta_se: the Monte Carlo standard error of theta from that of the last gradient (near the
# optimum) through the BFGS Hessian, sqrt(diag(H^-1 diag(se^2) H^-1)) -- how far other probes
# would move the optimum (NA without a Hessian).
iterative_result <- function(engine, settings, sol, opt) {
  info <- .Call(C_lmm_iter_info, engine)
  gse <- attr(info, "grad_se")
  H <- opt$hessian
  theta_se <- rep(NA_real_, length(gse))
  if (length(H) && !anyNA(H) && length(gse) == nrow(H)) {
    Hi <- tryCatch(solve(H), error = function(e) NULL)
    if (!is.null(Hi)) theta_se <- sqrt(pmax(diag(Hi %*% diag(gse^2, length(gse)) %*% Hi), 0))
  }
  list(settings = settings, probes = settings$probes, crit_se = sol$ld_se, theta_se = theta_se,
       evaluations = info[["evaluations"]], iterations = info[["iters_B"]],
       probe_iterations = info[["iters_probe"]], unconverged = info[["unconverged"]],
       nnz = info[["nnz"]])
}

# The print/summary line of an iterative fit.
print_iterative <- function(it) {
  if (is.null(it)) return(invisible())
  theta <- if (length(it$theta_se) && !anyNA(it$theta_se))
    sprintf(", of theta at most %.2g", max(it$theta_se)) else ""
  cat(sprintf(paste("Approximate fit (iterative backend): log-determinant by stochastic Lanczos",
                    "quadrature with %d probes; Monte Carlo standard error of the criterion %.2g%s\n"),
              as.integer(it$probes), it$crit_se, theta))
}

# Methods that need the exact factor stop with this for an iterative fit.
stop_if_iterative <- function(fit, what) {
  if (!is.null(fit$iterative))
    stop(sprintf(paste("%s: not available for a fit with the iterative backend (it needs the",
                       "exact factor; refit with lmm_control(backend = \"direct\"))"), what),
         call. = FALSE)
}

# The optimiser's first-order tolerance for an iterative fit: the gradient of log|Omega_Z| is a
# Monte Carlo estimate (the probes' Hutchinson average), consistent with the quadrature's
# criterion only to within its standard error, so asking for a gradient far below that error
# makes the quasi-Newton search dither at the optimum.  The tolerance (relative to max(1, |f|),
# as gtol) is a tenth of the largest scaled standard error at the start, or gtol when larger.
iterative_gtol <- function(engine, theta0, REML, gtol) {
  g <- tryCatch(engine_gradient(engine, theta0, REML), error = function(e) NULL)
  se <- attr(.Call(C_lmm_iter_info, engine), "grad_se")
  if (is.null(g) || !is.finite(g) || !length(se) || anyNA(se)) return(gtol)
  max(gtol, 0.1 * max(se * pmax(1, abs(theta0))) / max(1, abs(as.numeric(g))))
}
