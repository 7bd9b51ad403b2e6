# The optimum in x = (theta, free rho) -- rho the residual structure's parameters, none for
# plain models: the C optimiser chosen by lmm_control(optimizer =) -- "quasi-newton" (projected
# BFGS with the analytic gradient, src/quasi_newton.c) or "bobyqa" (src/optimise.c) -- then, for
# quasi-Newton fits ending on the boundary, a restart from the interior, and the first-order
# certificate of the optimum.  The result holds theta and the full rho.
optimise_theta <- function(engine, theta0, lower, REML, control, default_start,
                           in_vector_term = rep(TRUE, length(lower)), spec = NULL) {
  prob <- opt_problem(engine, lower, spec, REML)
  settings <- optimiser_settings(control, theta0, gradient = TRUE)
  opt <- prob$run(prob$x(theta0), settings)
  away <- !isTRUE(all.equal(as.double(theta0), default_start))
  if (settings$method == 1 && identical(opt$status, 3L) && away)
    opt <- restart_from_default(opt, prob, settings, default_start)
  if (settings$method == 1 && opt$status %in% c(0L, 4L) && length(lower) <= max_restart_theta)
    opt <- restart_from_interior(opt, prob, settings, in_vector_term,
                                 if (away) default_start)
  if (settings$method == 1 && opt$status %in% c(0L, 4L) && any(spec$mirror[spec$free]))
    opt <- restart_mirrored(opt, prob, settings, which(spec$mirror[spec$free]))
  opt$certificate <- certify_optimum(prob, opt, settings, control)
  opt
}

# A variance function's powers and exponents (spec$mirror) can have a better optimum on the other
# side of 0: run again from the optimum with those parameters negated and keep the lower
# criterion (the runs' evaluations are counted).
restart_mirrored <- function(opt, prob, settings, which_free) {
  idx <- prob$nt + which_free
  if (!any(abs(opt$x[idx]) > 0.05)) return(opt)
  x0 <- opt$x
  x0[idx] <- -x0[idx]
  x0 <- pmin(pmax(x0, prob$lower), prob$upper)
  alt <- tryCatch(prob$run(x0, settings), error = function(e) NULL)
  if (is.null(alt)) return(opt)
  alt$feval <- opt$feval + alt$feval
  alt$geval <- opt$geval + alt$geval
  alt$restarts <- opt$restarts + alt$restarts + 1L
  if (is.finite(alt$crit) && alt$crit < opt$crit - 1e-10 * abs(opt$crit)) return(alt)
  opt[c("feval", "geval", "restarts")] <- alt[c("feval", "geval", "restarts")]
  opt
}

# The problem in x = (theta, free rho): its bounds, x from theta (and rho), and one run of the C
# optimiser from x0, returning theta, rho (full) and x.
opt_problem <- function(engine, lower, spec, REML) {
  nt <- length(lower)
  rho0 <- if (is.null(spec)) numeric() else as.double(spec$rho)
  free <- if (is.null(spec)) logical() else as.logical(spec$free)
  xl <- c(lower, if (!is.null(spec)) spec$lower[free])
  xu <- c(rep(Inf, nt), if (!is.null(spec)) spec$upper[free])
  rho_of <- function(x) { r <- rho0; r[free] <- x[nt + seq_len(length(x) - nt)]; r }
  list(engine = engine, REML = REML, nt = nt, lower = xl, upper = xu, theta_lower = lower,
       rho_of = rho_of, free = free,
       x = function(theta, rho = rho0) as.double(c(theta, rho[free])),
       gradient = function(x) {
         g <- engine_gradient(engine, x[seq_len(nt)], REML, rho_of(x))
         structure(as.numeric(g), gradient = attr(g, "gradient")[c(seq_len(nt), nt + which(free))])
       },
       run = function(x0, settings) {
         o <- .Call(C_lmm_optimise, engine, as.double(x0), xl, xu, REML, settings, rho0, free)
         o$x <- o$theta
         o$rho <- rho_of(o$x)
         o$theta <- o$x[seq_len(nt)]
         o
       })
}

# A quasi-Newton run that stopped before the first-order conditions held (status 3: typically
# a degenerate fit, theta running off toward an asymptote of the criterion as the residual
# variance goes to 0) ran from the moment start: run again from lme4's default start and keep
# the lower criterion (the two runs' evaluations are counted).
restart_from_default <- function(opt, prob, settings, default_start) {
  settings$rhobeg <- 0.2
  alt <- prob$run(prob$x(default_start, opt$rho), settings)
  alt$feval <- opt$feval + alt$feval
  alt$geval <- opt$geval + alt$geval
  alt$restarts <- opt$restarts + alt$restarts + 1L
  if (is.finite(alt$crit) && (!is.finite(opt$crit) || alt$crit < opt$crit)) return(alt)
  opt[c("feval", "geval", "restarts")] <- alt[c("feval", "geval", "restarts")]
  opt
}

# Interior restarts are run for models with at most this many theta (each restart costs about
# a fit; above it -- e.g. 72 theta in kb07's maximal model, 13 s instead of 6 -- only the C
# optimiser's boundary probes, lme4's restart_edge test, guard the boundary).
max_restart_theta <- 30L
# ... and the restart from lme4's default start up to this many (the poly(x, 2) case of
# test-optimise.R needs it; on the 20-theta kb07-shaped model it cost 75 evaluations for nothing)
max_default_restart_theta <- 10L


# A fit with variances on the boundary (theta_i = 0 on a diagonal) may have passed a
# better optimum inside: start again from the neighbouring interior point -- the optimum
# with its zero diagonal entries set to `inside` (relative standard deviations) -- and from
# lme4's default start (`default_start`: 1 on the diagonals, 0 elsewhere; NULL when the fit
# began there), and keep the best optimum.  Evaluations of all runs are counted.
restart_from_interior <- function(opt, prob, settings, in_vector_term, default_start,
                                  inside = 0.5) {
  at_bound <- prob$theta_lower == 0 & opt$theta <= 0
  if (!any(at_bound & in_vector_term)) return(opt)
  starts <- list(interior_neighbour(opt$theta, at_bound, attr(in_vector_term, "sizes"), inside))
  if (!is.null(default_start) && prob$nt <= max_default_restart_theta)
    starts <- c(starts, list(default_start))
  best <- opt
  for (start in starts) {
    settings$rhobeg <- 0.2 * max(1, abs(start))
    alt <- prob$run(prob$x(start, opt$rho), settings)
    alt$feval <- best$feval + alt$feval
    alt$geval <- best$geval + alt$geval
    alt$restarts <- best$restarts + alt$restarts + 1L
    keep <- alt$status %in% c(0L, 4L) && alt$crit < best$crit
    best[c("feval", "geval", "restarts")] <- alt[c("feval", "geval", "restarts")]
    if (keep) best <- alt
  }
  best
}

# The interior point next to a boundary theta, in covariance terms: with a zero diagonal
# entry L_ii of a term's lower Cholesky factor, the entries below it in column i are not
# identified (only L L' = Sigma is), so the point is rebuilt from Sigma with the variances of
# the zeroed components set to inside^2 and their covariances to 0 (the other variances and
# correlations kept): L = chol(Sigma)'.  Without the term sizes (or if Sigma is not positive
# definite), only the zero entries are set to `inside`.
interior_neighbour <- function(theta, at_bound, sizes, inside) {
  neighbour <- theta
  neighbour[at_bound] <- inside
  if (is.null(sizes) || sum(sizes * (sizes + 1L) / 2L) != length(theta)) return(neighbour)
  end <- cumsum(sizes * (sizes + 1L) / 2L)
  for (t in which(sizes > 1L)) {
    p <- sizes[t]
    idx <- (end[t] - p * (p + 1L) / 2L + 1L):end[t]
    L <- matrix(0, p, p)
    L[lower.tri(L, diag = TRUE)] <- theta[idx]
    zero <- diag(L) <= 0
    if (!any(zero)) next
    S <- L %*% t(L)
    S[zero, ] <- 0
    S[, zero] <- 0
    diag(S)[zero] <- inside^2
    R <- tryCatch(chol(S), error = function(e) NULL)
    if (!is.null(R)) neighbour[idx] <- t(R)[lower.tri(L, diag = TRUE)]
  }
  neighbour
}

# The first-order certificate at the optimum: the gradient (the quasi-Newton run's last, or
# computed here after BOBYQA), the projected gradient's largest scaled entry
# max_i |g_i| max(1, |theta_i|) over the free parameters (those not on a bound with the gradient
# pointing out of the box), the parameters on a bound, and the smallest eigenvalue of the
# Hessian in the free parameters: of the BFGS approximation (free), or with
# lmm_control(calc.derivs = TRUE) from forward differences of the analytic gradient (step
# 1e-5 max(1, |theta_i|); one gradient per free parameter).
certify_optimum <- function(prob, opt, settings, control) {
  x <- pmin(pmax(opt$x, prob$lower), prob$upper)
  f <- opt$crit
  grad <- opt$gradient
  if (!length(grad) || anyNA(grad)) {
    g0 <- tryCatch(prob$gradient(x), error = function(e) NULL)
    if (is.null(g0) || !is.finite(g0)) return(NULL)
    grad <- attr(g0, "gradient")
    f <- as.numeric(g0)
  }
  on_bound <- x <= prob$lower & grad >= 0 | x >= prob$upper & grad <= 0
  free <- which(!on_bound)
  pg <- if (length(free)) max(abs(grad[free]) * pmax(1, abs(x[free]))) else 0
  tol <- settings$gtol * max(1, abs(f))
  H <- NULL
  hessian <- "none"
  fd_hessian <- function() {               # forward differences of the analytic gradient
    H <- vapply(free, function(i) {
      h <- 1e-5 * max(1, abs(x[i]))
      xh <- x
      xh[i] <- xh[i] + h
      (attr(prob$gradient(xh), "gradient")[free] - grad[free]) / h
    }, numeric(length(free)))
    (H + t(H)) / 2
  }
  # a run ending at f's rounding level (status 4) with the gradient above the tolerance and no
  # quasi-Newton matrix left is judged by the Newton decrement of a finite-difference Hessian
  no_bfgs <- !length(opt$hessian) || anyNA(opt$hessian)
  undecided <- identical(opt$status, 4L) && no_bfgs && pg > 1e3 * tol
  if (length(free) && (isTRUE(control$calc.derivs) || undecided)) {
    H <- fd_hessian()
    hessian <- "finite differences"
  } else if (length(free) && length(opt$hessian) && !anyNA(opt$hessian)) {
    H <- opt$hessian[free, free, drop = FALSE]
    hessian <- "BFGS"
  }
  min_eigen <- if (!is.null(H) && all(is.finite(H)))
    min(eigen(H, symmetric = TRUE, only.values = TRUE)$values) else NA_real_
  # status 4: no decrease possible at f's rounding level; the gradient's rounding is allowed
  if (identical(opt$status, 4L)) tol <- 1e3 * tol
  # ... or the Newton decrement g' H^-1 g / 2 (the decrease the quadratic model still
  # promises) is below f's rounding level: optimal to the criterion's own precision (large n,
  # where curvatures of order n turn a tiny remaining step into a visible gradient)
  decrement <- if (!is.null(H) && length(free) && is.finite(min_eigen) && min_eigen > 0)
    0.5 * sum(grad[free] * solve(H, grad[free])) else NA_real_
  rounding <- 1e-12 * max(1, abs(f))
  first_order <- pg <= tol || identical(opt$status, 4L) && isTRUE(decrement <= rounding)
  list(gradient = grad, pgrad = pg, gtol = tol,
       on_bound = which(x <= prob$lower | x >= prob$upper),
       min_eigen = min_eigen, hessian = hessian, decrement = decrement,
       first_order = first_order)
}

# The fit's optinfo: which optimiser ran, evaluations (criterion, and gradient for
# quasi-Newton), the status and the certificate; a warning when the optimiser stopped early
# or the first-order conditions fail.
optimiser_info <- function(opt, control) {
  message <- switch(as.character(opt$status),
                    "0" = "converged",
                    "1" = "maximum number of evaluations reached",
                    "2" = "criterion not finite at the starting values",
                    "3" = "no further decrease possible before the first-order conditions were met",
                    "4" = "converged (to the criterion's rounding level)",
                    "unknown status")
  cert <- opt$certificate
  gradient_based <- !is.null(opt$geval) && opt$geval > 0L
  done <- opt$status %in% c(0L, 4L)
  ok <- done && (!gradient_based || is.null(cert) || isTRUE(cert$first_order))
  if (done && !ok)
    message <- sprintf("first-order conditions not met (projected gradient %.3g > %.3g)",
                       cert$pgrad, cert$gtol)
  warnings <- character()
  if (!ok) {
    warnings <- paste("lmm optimiser:", message)
    warning(warnings, call. = FALSE)
  }
  name <- if (gradient_based) control$optimizer else "bobyqa"
  list(optimizer = paste0(name, "-lmmc"), feval = opt$feval,
       geval = if (is.null(opt$geval)) 0L else opt$geval,
       converged = ok, status = opt$status, message = message, warnings = warnings,
       restarts = if (is.null(opt$restarts)) 0L else opt$restarts,
       pgrad = cert$pgrad, on_bound = cert$on_bound, min_eigen = cert$min_eigen,
       hessian = cert$hessian, decrement = cert$decrement, gradient = cert$gradient)
}

# For each theta: does its template have width > 1 (a vector-valued term)?
theta_in_vector_term <- function(reterms) {
  p <- vapply(reterms, function(term) NCOL(term$Xt), 1L)
  structure(rep(p > 1L, p * (p + 1L) / 2L), sizes = p)
}
