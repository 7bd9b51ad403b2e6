# Stage 4: the optimum -> the result object.  lmm_fit() is the low-level entry ("without the
# formula"): the user gives y, X and the random-effects terms; lmm() is a thin layer over it.

lmm_fit <- function(y, X, reterms, weights = NULL, offset = NULL, REML = TRUE,
                    control = lmm_control(), start = NULL, residual = NULL, verbose = 0L) {
  control <- with_verbose(as_lmm_control(control), verbose)
  y <- check_response(y)
  n <- length(y)
  X <- check_fixed_matrix(X, n)
  if (is.null(attr(X, "dropped"))) X <- drop_aliased(X, control$check.rankX)
  reterms <- check_reterms(reterms, n, control, allow_empty = !is.null(residual))
  weights <- if (is.null(weights)) rep(1, n) else check_weight_vector(weights, n)
  offset <- if (is.null(offset)) rep(0, n) else check_offset_vector(offset, n)
  REML <- single_flag(REML, "REML")
  check_reml_df(n, ncol(X), REML)
  fit <- fit_checked(y, X, reterms, weights, offset, REML, control, start, residual)
  fit$call <- match.call()
  fit
}

# lmm_fit() after its input checks (lmm() calls it directly with lmm_pieces()' checked pieces).
# One path with or without a residual structure (`residual`, R/residual.R): the engine is a
# function of (theta, rho), rho empty without one.
# With `counts` (R/aggregate.R) the rows are summary rows standing for counts$n observations.
fit_checked <- function(y, X, reterms, weights, offset, REML, control, start, residual,
                        counts = NULL) {
  spec <- residual
  backend <- choose_backend(control, y, X, reterms, weights, offset, spec)   # R/iterative.R
  if (is.null(backend)) {                                         # the exact factor
    limit <- if (is.null(control$memory_limit)) Inf else control$memory_limit
    engine <- engine_setup_limited(limit, y, X, reterms, weights, offset, spec, counts)
    report_layout(engine)
  } else engine <- engine_setup(y, X, reterms, weights, offset, spec, counts, backend)
  lower <- theta_lower(reterms)
  theta0 <- start_theta(start, reterms, lower, engine, REML, control, rho = spec$rho)
  if (!is.null(backend)) control$gtol <- iterative_gtol(engine, theta0, REML, control$gtol)
  opt <- optimise_theta(engine, theta0, lower, REML, control,
                        default_start = theta_start(reterms),
                        in_vector_term = theta_in_vector_term(reterms), spec = spec)
  theta <- pmax(opt$theta, lower)
  if (!is.finite(opt$crit)) stop_not_finite(opt, theta0, X, user_start = !is.null(start))
  sol <- engine_solution(engine, theta, REML, opt$rho)
  fit <- assemble_fit(sol, theta, lower, y, X, reterms, weights, offset, REML,
                      if (is.null(counts)) length(y) else counts$n)
  if (!is.null(spec)) {
    fit$devcomp$ldW <- sol$sumlogw
    fit$residual <- residual_result(spec, opt$rho, engine)
  }
  if (!is.null(backend)) fit$iterative <- iterative_result(engine, backend, sol, opt)
  fit$optinfo <- optimiser_info(opt, control)
  fit$control <- control                   # refits use the same settings (refit_control())
  class(fit) <- "lmm"
  report_singular(fit, control)
  if (identical(control$check.rankX, "ignore")) report_collinear(sol, X)
  report_degenerate(fit)
  fit
}

# The optimiser returned a non-finite criterion: say why.
stop_not_finite <- function(opt, theta0, X, user_start) {
  rank <- if (ncol(X)) qr(X)$rank else 0L
  if (rank < ncol(X))
    stop(sprintf(paste("the fixed-effects model matrix is rank deficient (rank %d < %d columns):",
                       "drop aliased columns (check.rankX = \"message+drop.cols\")"),
                 rank, ncol(X)), call. = FALSE)
  if (user_start && identical(as.integer(opt$status), 2L))
    stop(sprintf(paste("the criterion is not finite at the starting theta (%s): the penalised",
                       "system is not positive definite there; give a start of moderate size"),
                 paste(format(theta0, digits = 4), collapse = ", ")), call. = FALSE)
  stop("the criterion is not finite at the optimum: is the fixed-effects model matrix ",
       "rank deficient or the response fitted exactly?", call. = FALSE)
}

# The engine's least pivot of R_X relative to its column (sol$rx_pivot: |R_X[j, j]| / |X_j|
# in the engine's centred and scaled coordinates): below qr()'s default tolerance 1e-7 a column
# of X is a linear combination of the others up to round-off (a Cholesky pivot of an exactly
# aliased column is about sqrt(.Machine$double.eps) = 1.5e-8 relative).  Only with
# check.rankX = "ignore": otherwise aliased columns are gone, and a small pivot means the random
# effects absorb a column (theta huge, see report_degenerate()).
report_collinear <- function(sol, X) {
  piv <- sol$rx_pivot
  if (is.null(piv) || !length(piv) || !(min(piv) < 1e-7)) return(invisible())
  j <- which.min(piv)
  warning(sprintf(paste("the fixed-effects model matrix is rank deficient: column '%s' is a",
                        "linear combination of the others (relative pivot %.2g); the criterion",
                        "and the fixed effects are not meaningful (check.rankX = \"ignore\"?)"),
                  colnames(X)[j], piv[j]), call. = FALSE)
}

# sigma essentially zero beside the response's spread (below 1e-5 of its SD), or random-effects
# standard deviations of more than 1e5 sigma (theta): the data are fitted exactly (y constant within groups, or an
# ML fit whose random effects absorb everything).  lme4 warns "Model is nearly unidentifiable:
# very large eigenvalue" (and often "Model failed to converge") in these cases.
report_degenerate <- function(fit) {
  spread <- stats::sd(fit$y)
  big <- max(abs(fit$theta), 0)
  if (!(spread > 0) || fit$sigma >= 1e-5 * spread && !(big > 1e5)) return(invisible())
  warning(sprintf(paste("the residual standard deviation is essentially zero (sigma = %.3g,",
                        "sd of the response %.3g, largest theta %.3g): the response is fitted",
                        "exactly (constant within groups?), so the estimates are unreliable"),
                  fit$sigma, spread, big), call. = FALSE)
}

# Starting theta: the user's; else moment estimates (R/start.R) from the engine's A, or lme4's
# default (1 on the diagonals, 0 elsewhere) with lmm_control(start_method = "ones").  With a
# residual-structure engine, A is first formed at the residual parameters `rho` (by evaluating
# the criterion there).  A moment start carries the attribute "rhobeg", the optimiser's first
# step length (see optimiser_settings()).
start_theta <- function(start, reterms, lower, engine, REML, control, rho = NULL) {
  if (is.list(start)) start <- start$theta
  if (!is.null(start)) {
    if (!is.numeric(start) || length(start) != length(lower) || anyNA(start))
      stop(sprintf("'start' must be a numeric theta of length %d", length(lower)), call. = FALSE)
    return(pmax(as.double(start), lower))
  }
  if (!length(lower)) return(numeric())             # no random effects (gls)
  if (identical(control$start_method, "ones")) return(theta_start(reterms))
  theta0 <- tryCatch({
    if (length(rho)) engine_crit(engine, theta_start(reterms), REML, rho)   # A at rho
    theta_moments(engine, REML)
  }, error = function(e) NULL)
  if (length(theta0) == length(lower) && all(is.finite(theta0))) {
    # the start is close: first steps of 5% of the least standard deviation (relative)
    rhobeg <- 0.05 * min(pmax(theta0[lower == 0], 2 * start_floor))
    return(structure(pmax(theta0, lower), rhobeg = rhobeg))
  }
  theta_start(reterms)
}

# The C optimiser's settings: radii from the start's scale (0.2 max(1, |theta0|), or the
# start's own "rhobeg" attribute), tolerances from control, and the trace level (verbose > 0:
# the optimiser prints each evaluation's criterion and parameters).
optimiser_settings <- function(control, theta0, gradient = FALSE) {
  scale <- max(1, abs(theta0))
  rhobeg <- attr(theta0, "rhobeg")
  if (is.null(rhobeg)) rhobeg <- 0.2 * scale
  verbose <- control$verbose
  list(rhobeg = if (is.null(control$rhobeg)) rhobeg else control$rhobeg,
       rhoend = if (is.null(control$rhoend)) 2e-7 * scale else control$rhoend,
       ftol_abs = control$ftol_abs, maxeval = control$maxeval,
       verbose = if (is.null(verbose)) 0 else verbose,
       method = if (gradient && identical(control$optimizer, "quasi-newton")) 1 else 0,
       gtol = if (is.null(control$gtol)) 1e-10 else control$gtol, probe = 1e-4)
}

# control with the trace level `verbose` (lmm()'s and lmm_fit()'s argument, as lmer's) added.
with_verbose <- function(control, verbose) {
  if (isTRUE(verbose)) verbose <- 1L
  if (isFALSE(verbose)) verbose <- 0L
  if (!is.numeric(verbose) || length(verbose) != 1L || is.na(verbose) || verbose < 0)
    stop("'verbose' must be TRUE, FALSE or a non-negative integer", call. = FALSE)
  control$verbose <- as.integer(verbose)
  control
}

# The result object's fields (see the object layout in lmm_fit's Rd page).
assemble_fit <- function(sol, theta, lower, y, X, reterms, weights, offset, REML, n) {
  p <- ncol(X)
  q <- length(sol$u)
  sigma <- sqrt(sol$pwrss / (n - if (REML) p else 0))
  beta <- setNames(sol$beta, colnames(X))
  templates <- theta_templates(theta, reterms)
  b <- spherical_to_b(sol$u, templates, reterms)
  fitted <- as.vector(X %*% beta) + random_part(b, reterms) + offset   # names: from the frame
  # (residuals are y - fitted, formed when asked for: one n-vector less in the object)
  vcov_beta <- sigma^2 * sol$RXinv2
  dimnames(vcov_beta) <- list(names(beta), names(beta))
  list(y = y, X = X, weights = weights, offset = offset, reterms = reterms, REML = REML,
       n = n, p = p, q = q,
       theta = setNames(theta, theta_names(reterms)), lower = lower,
       beta = beta, sigma = sigma, u = sol$u, b = b,
       vcov_beta = vcov_beta, crit = sol$crit,
       devcomp = list(ldL2 = sol$ldL2, ldRX2 = sol$ldRX2, pwrss = sol$pwrss,
                      wrss = sol$pwrss - sum(sol$u^2), ussq = sum(sol$u^2)),
       fitted = fitted, singular_tol = 1e-4)
}

# b = Lambda u: within term t, level l's coefficients are T_t u_l.
spherical_to_b <- function(u, templates, reterms) {
  pos <- 0L
  unlist(lapply(seq_along(reterms), function(t) {
    p <- nrow(templates[[t]])
    nl <- nlevels(reterms[[t]]$group)
    U <- matrix(u[pos + seq_len(p * nl)], p, nl)
    pos <<- pos + p * nl
    as.vector(templates[[t]] %*% U)
  }))
}

# Z b, term by term: row i gets Xt_t[i, ] . b_t[level of i, ].
random_part <- function(b, reterms) {
  eta <- 0
  pos <- 0L
  for (term in reterms) {
    p <- ncol(term$Xt)
    nl <- nlevels(term$group)
    bt <- b[pos + seq_len(p * nl)]                     # level l's coefficients at (l - 1) p + c
    pos <- pos + p * nl
    at <- (unclass(term$group) - 1L) * p
    for (c in seq_len(p)) eta <- eta + term$Xt[, c] * bt[at + c]   # column by column: n-vectors
  }
  eta
}

# The conditional variances of a fit (lme4's "postVar"), computed when a method asks for them
# (ranef(condVar = TRUE)): the selected inverse at the fit's (theta, rho).
fit_condvar <- function(fit) {
  if (!length(fit$reterms)) return(list())
  stop_if_iterative(fit, "the conditional variances")
  sol <- engine_solution(engine_for(fit), fit$theta, fit$REML, fit_rho(fit), condvar = TRUE)
  conditional_variances(sol$condvar, theta_templates(fit$theta, fit$reterms), fit$reterms,
                        fit$sigma)
}

# Conditional variances sigma^2 T_t Sigma_ll T_t' of each level's random effects, as lme4's
# "postVar": one p x p x nl array per term.
# All levels at once: with the blocks S_l side by side, B = T [S_1 ... S_nl] holds T S_l;
# stacking the B_l = T S_l row-blocks and multiplying by T' gives every T S_l T'.
conditional_variances <- function(flat, templates, reterms, sigma) {
  pos <- 0L
  lapply(seq_along(reterms), function(t) {
    Tt <- templates[[t]]
    p <- nrow(Tt)
    nl <- nlevels(reterms[[t]]$group)
    S <- flat[pos + seq_len(p * p * nl)]
    pos <<- pos + p * p * nl
    if (p == 1L) return(array(sigma^2 * Tt[1L]^2 * S, c(1L, 1L, nl)))
    B <- array(Tt %*% matrix(S, p), c(p, p, nl))                  # B[, , l] = T S_l
    V <- matrix(aperm(B, c(1L, 3L, 2L)), p * nl, p) %*% t(Tt)     # row (i, l): (T S_l T')[i, ]
    sigma^2 * aperm(array(V, c(p, nl, p)), c(1L, 3L, 2L))
  })
}

# lme4's "boundary (singular) fit" note, with the action lmm_control() asks for.
report_singular <- function(fit, control) {
  if (!isSingular(fit)) return(invisible())
  check_action(control$check.conv.singular,
               "boundary (singular) fit: see help('isSingular')")
}

# Checks of lmm_fit()'s direct inputs (lmm() has checked them already when it calls).
check_response <- function(y) {
  if (!is.numeric(y) || !is.null(dim(y)) && NCOL(y) != 1L)
    stop("the response y must be a numeric vector", call. = FALSE)
  y <- as.double(y)
  if (!length(y)) stop("the response y is empty", call. = FALSE)
  if (!all(is.finite(y))) stop("the response y has NA, NaN or infinite values", call. = FALSE)
  check_response_scale(y)
}

check_fixed_matrix <- function(X, n) {
  X <- as.matrix(X)
  if (!is.numeric(X) || nrow(X) != n)
    stop(sprintf("X must be a numeric matrix with %d rows (one per observation)", n), call. = FALSE)
  if (!all(is.finite(X))) stop("X has NA, NaN or infinite values", call. = FALSE)
  if (is.null(colnames(X)) && ncol(X) > 0) colnames(X) <- paste0("X", seq_len(ncol(X)))
  storage.mode(X) <- "double"
  X
}

check_weight_vector <- function(weights, n) {
  if (!is.numeric(weights) || length(weights) != n)
    stop(sprintf("weights must be a numeric vector of length %d", n), call. = FALSE)
  if (anyNA(weights)) stop("weights must not be NA", call. = FALSE)
  if (any(weights < 0)) stop("negative weights not allowed", call. = FALSE)
  if (any(weights == 0)) stop("zero weights are not supported: drop those rows", call. = FALSE)
  as.double(weights)
}

check_offset_vector <- function(offset, n) {
  if (!is.numeric(offset) || length(offset) != n || !all(is.finite(offset)))
    stop(sprintf("offset must be a finite numeric vector of length %d", n), call. = FALSE)
  as.double(offset)
}
