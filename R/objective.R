# Stage 3: model pieces -> the profiled criterion as a function of theta, evaluated in C.
#
# The engine (src/) forms A = [Z X y]' W [Z X y] once, here, and from then on works only with A:
# one evaluation of the criterion costs a sparse/dense Cholesky factorisation, independent of n.

# Build the C engine's model (an external pointer) from the pieces; with `spec`, a residual
# correlation/variance structure prepared by residual_spec() (R/residual.R).  With `counts`
# (R/aggregate.R), the rows are summary rows of aggregated data and counts holds the data's
# own n, observations per level and log|W| (src/counts.c).  With `backend` (R/iterative.R's
# settings), the iterative engine.
engine_setup <- function(y, X, reterms, weights, offset, spec = NULL, counts = NULL,
                         backend = NULL) {
  dense_backend()                              # R/dense-backend.R: a bad option fails here
  refs <- lapply(reterms, `[[`, "group")      # factors: their integer codes, not copied
  Xts <- lapply(reterms, function(term) as_double_matrix(term$Xt))
  nl <- vapply(reterms, function(term) nlevels(term$group), 1L)
  sqrtw <- if (all_equal_to(weights, 1)) NULL else sqrt(as.double(weights))
  yo <- if (all_equal_to(offset, 0)) as.double(y) else as.double(y - offset)
  engine <- if (!is.null(backend))
    .Call(C_lmm_setup_iterative, yo, as_double_matrix(X), refs, Xts, nl, sqrtw, backend)
  else .Call(C_lmm_setup, yo, as_double_matrix(X), refs, Xts, nl, sqrtw, spec$engine)
  if (!is.null(counts))
    .Call(C_lmm_set_counts, engine, counts$n, counts$nrows, as.double(counts$sumlogw))
  engine
}

# engine_setup() under a memory budget: the C symbolic analysis stops with a clear error before
# allocating when its predicted memory (bytes) exceeds `limit` (Inf: none).
engine_setup_limited <- function(limit, ...) {
  if (!is.finite(limit) && is.null(getOption("lmmc.memory_limit"))) return(engine_setup(...))
  old <- options(lmmc.memory_limit = if (is.finite(limit)) limit else NULL)
  on.exit(options(old))
  engine_setup(...)
}

# What the symbolic analysis (src/layout.c, src/ordering.c) chose and predicts, a named numeric
# vector: nodes, sparse_nodes, dense_order, sparse_values, sparse_blocks, split_in_term (the
# dense block's first node within its term; 0 at a term boundary), ordered (1 when the levels
# were renumbered to reduce fill), complete_from, and for one evaluation with the gradient:
# bytes, flops and seconds (rough: dense kernels at 2e10 flop/s, sparse columns measured), and
# first_term (the term, in R's order, whose levels are eliminated first).
engine_layout_prediction <- function(engine) .Call(C_lmm_layout_info, engine)

# The same prediction without forming the model: the symbolic analysis alone (no numeric
# storage, no cross-products), for choosing a backend before committing memory.
layout_prediction <- function(y, X, reterms, weights, offset, spec = NULL) {
  old <- options(lmmc.predict_only = TRUE, lmmc.memory_limit = NULL)
  on.exit(options(old))
  engine_layout_prediction(engine_setup(y, X, reterms, weights, offset, spec))
}

# Before a fit whose exact factor is large: say how much memory and time per evaluation it takes.
report_layout <- function(engine, bytes = 2e9, seconds = 5) {
  info <- engine_layout_prediction(engine)
  if (info[["bytes"]] < bytes && info[["seconds"]] < seconds) return(invisible(info))
  message(sprintf(paste("lmm: the exact factor takes about %.1f GB and roughly %.2g s per",
                        "evaluation (dense block of order %d, %.3g sparse values);",
                        "lmm_control(memory_limit = ) sets a budget"),
                  info[["bytes"]] / 1e9, info[["seconds"]], as.integer(info[["dense_order"]]),
                  info[["sparse_values"]]))
  invisible(info)
}

# all(x == v) without an n-long logical temporary
all_equal_to <- function(x, v) min(x) == v && max(x) == v

as_double_matrix <- function(x) {
  if (is.matrix(x) && is.double(x)) return(x)     # no copy of an n-row matrix
  x <- as.matrix(x)
  storage.mode(x) <- "double"
  x
}

# theta holds each term's lower-triangular template column by column (lme4's layout):
# for p columns, the entries (i, j) with i >= j, j = 1..p.  Row and column of each, per term.
template_rows <- function(p) unlist(lapply(seq_len(p), function(j) j:p))
template_cols <- function(p) rep.int(seq_len(p), p:1)

theta_is_diagonal <- function(reterms) {
  unlist(lapply(reterms, function(term) {
    p <- length(term$cnms)
    template_rows(p) == template_cols(p)
  }))
}

theta_lower <- function(reterms) c(-Inf, 0)[theta_is_diagonal(reterms) + 1L]
theta_start <- function(reterms) as.double(theta_is_diagonal(reterms))

# Names of theta as lme4 gives them: "Subject.(Intercept)", "Subject.Days.(Intercept)", ...
theta_names <- function(reterms) {
  unlist(lapply(reterms, function(term) {
    cn <- term$cnms
    i <- template_rows(length(cn))
    j <- template_cols(length(cn))
    paste(term$name, ifelse(i == j, cn[i], paste(cn[i], cn[j], sep = ".")), sep = ".")
  }), use.names = FALSE)
}

# The relative covariance template T_t of each term, filled from theta.
theta_templates <- function(theta, reterms) {
  out <- vector("list", length(reterms))
  pos <- 0L
  for (t in seq_along(reterms)) {
    p <- length(reterms[[t]]$cnms)
    Tt <- matrix(0, p, p)
    Tt[lower.tri(Tt, diag = TRUE)] <- theta[pos + seq_len(p * (p + 1L) / 2L)]
    pos <- pos + p * (p + 1L) / 2L
    out[[t]] <- Tt
  }
  out
}

# The profiled criterion as a function of theta (lme4's devFunOnly = TRUE).  With gradient = TRUE:
# list(fn, gr, lower) for optim(), nlminb() or nlm(): fn's value carries its analytic gradient as
# attribute "gradient" (src/gradient.c), and gr returns the gradient of fn's last evaluation when
# theta is the same (one factorisation serves both), else evaluates afresh.
lmm_objective <- function(x, REML = NULL, gradient = FALSE) {
  if (!inherits(x, c("lmm_pieces", "lmm")))
    stop("lmm_objective() needs the result of lmm_pieces() or lmm()", call. = FALSE)
  if (!is.logical(gradient) || length(gradient) != 1L || is.na(gradient))
    stop("'gradient' must be TRUE or FALSE", call. = FALSE)
  if (is.null(REML)) REML <- x$REML
  REML <- isTRUE(REML)
  engine <- engine_setup(x$y, x$X, x$reterms, x$weights, x$offset, counts = x$counts,
                         backend = x$iterative$settings)        # an iterative fit's backend
  lower <- theta_lower(x$reterms)
  check <- function(theta) {
    if (!is.numeric(theta) || length(theta) != length(lower))
      stop(sprintf("theta must have length %d", length(lower)), call. = FALSE)
    as.double(theta)
  }
  if (!gradient) return(function(theta) .Call(C_lmm_crit, engine, check(theta), REML, numeric()))
  last <- NULL
  fn <- function(theta) {
    theta <- check(theta)
    val <- .Call(C_lmm_gradient, engine, theta, REML, numeric())
    last <<- list(theta = theta, val = val)
    val
  }
  gr <- function(theta) {
    theta <- check(theta)
    if (is.null(last) || !identical(last$theta, theta)) fn(theta)
    attr(last$val, "gradient")
  }
  list(fn = fn, gr = gr, lower = lower)
}

# ---- the engine as a function of (theta, rho) ---------------------------------------------------
# Every method that re-evaluates a fit goes through these: rho is the residual structure's
# parameter vector on the engine's scale (fit$residual$rho; empty without a structure), so one
# code path serves fits with and without a residual structure.

# The engine of a fitted model, its residual structure included.
engine_for <- function(fit, X = fit$X, offset = fit$offset) {
  engine_setup(fit$y, X, fit$reterms, fit$weights, offset, fit$residual$spec, fit$counts,
               fit$iterative$settings)
}

# The fit's residual-structure parameters on the engine's scale (numeric(0) without one).
fit_rho <- function(fit) if (is.null(fit$residual)) numeric() else as.double(fit$residual$rho)

# The criterion at (theta, rho): -2 log REML likelihood or the deviance; +Inf outside the space.
engine_crit <- function(engine, theta, REML, rho = numeric()) {
  .Call(C_lmm_crit, engine, as.double(theta), REML, as.double(rho))
}

# The criterion with attribute "gradient" (theta, then rho).
engine_gradient <- function(engine, theta, REML, rho = numeric()) {
  .Call(C_lmm_gradient, engine, as.double(theta), REML, as.double(rho))
}

# The criterion's pieces at (theta, rho): ldL2, ldRX2, pwrss, crit, sumlogw (log|V^{-1}|) and
# RXinv2 = (R_X'R_X)^{-1}.
engine_parts <- function(engine, theta, REML, rho = numeric()) {
  .Call(C_lmm_parts, engine, as.double(theta), REML, as.double(rho))
}

# Everything the result object needs at (theta, rho) (src/model.c lmm_solution); the
# conditional variances' blocks (condvar) only when asked for.
engine_solution <- function(engine, theta, REML, rho = numeric(), condvar = FALSE) {
  .Call(C_lmm_solution, engine, as.double(theta), REML, as.double(rho), isTRUE(condvar))
}

# The whitening K (K'K = V^{-1}, rows Kp/Kj/Kx 0-based, src/residual.h) at rho and, with deriv,
# dK/drho_k on K's pattern (dKx: nnz x nrho); for engines with a residual structure.  ARMA
# groups whitened by the innovations recursion (src/residual_innovations.c) have a dense K:
# explicit = FALSE gives the engine's own K instead, holding only their diagonals ($implicit TRUE).
engine_whitening <- function(engine, rho, deriv = FALSE, explicit = TRUE) {
  .Call(C_lmm_whitening_at, engine, as.double(rho), isTRUE(deriv), !isFALSE(explicit))
}

# K V, or the X solving K X = V (inverse), for an n-row matrix V at rho, in O(n) (src/model.c
# lmm_whiten_apply; implicit K of ARMA recursion groups included).
engine_whiten_apply <- function(engine, rho, V, inverse = FALSE) {
  .Call(C_lmm_whiten_apply, engine, as.double(rho), as_double_matrix(V), isTRUE(inverse))
}

# a_i M^{-1} a_i' for sparse rows (P, A) of [Z X] at (theta, rho) (src/model.c lmm_quadform;
# with a residual structure, M is the cross-product of the whitened design).
engine_quadform <- function(engine, theta, P, A, rho = numeric(), REML = TRUE) {
  .Call(C_lmm_quadform, engine, as.double(theta), P, A, as.double(rho))
}
