# Residual structures: nlme's corAR1 / corCAR1 correlation and varIdent variance objects ->
# the engine's residual specification (predecessor rows, time lags, strata), and the fit.
#
# Residual covariance s^2 V, V = S R S: R is AR(1) within the correlation groups,
# cor(e_i, e_j) = phi^|t_i - t_j|, and S = diag(delta_stratum / sqrt(w)) with delta = 1 for the
# reference stratum.  The engine pre-whitens the data with the bidiagonal inverse Cholesky factor
# of V (src/residual.h) and minimises the criterion over (theta, phi, log delta) jointly.

# ---- specification ---------------------------------------------------------------------------

# NULL when neither structure is given; else a list for lmm_fit(residual = ).
residual_spec <- function(correlation, variance, data, pieces) {
  if (is.null(correlation) && is.null(variance)) return(NULL)
  rows <- residual_rows(data, pieces$frame, pieces$formula)
  n <- length(pieces$y)
  cor <- if (is.null(correlation)) NULL else
    correlation_spec(correlation, data, rows, pieces$reterms)
  var <- if (is.null(variance)) NULL else variance_spec(variance, data, rows)
  if (!is.null(var) && length(var$strata) < 2L) var <- NULL     # one stratum: nothing to fit
  if (is.null(cor) && is.null(var)) return(NULL)
  nstrata <- if (is.null(var)) 1L else length(var$strata)
  prev <- if (is.null(cor)) rep(-1L, n) else cor$prev
  lag <- if (is.null(cor)) rep(0, n) else cor$lag
  stratum <- if (is.null(var)) integer(n) else var$stratum
  classes <- residual_classes(prev, lag, stratum, nstrata)
  structure(list(
    correlation = cor, variance = var,
    prev = prev, lag = lag, stratum = stratum,
    depth = if (is.null(cor)) integer(n) else cor$depth,
    cls = classes$cls, ctab = classes$ctab,
    info = c(if (is.null(cor)) 0L else cor$code, nstrata,
             getOption("lmmc.residual_pieces", 1L)),     # 0 never, 1 auto, 2 always (tests)
    rho = c(if (!is.null(cor)) cor$phi, if (!is.null(var)) var$logdelta),
    free = c(if (!is.null(cor)) !cor$fixed, if (!is.null(var)) !var$fixed),
    lower = c(if (!is.null(cor)) cor$lower, if (!is.null(var)) rep(-Inf, nstrata - 1L)),
    upper = c(if (!is.null(cor)) cor$upper, if (!is.null(var)) rep(Inf, nstrata - 1L))),
    class = "lmm_residual_spec")
}

# Classes of rows with equal whitening coefficients: equal (has predecessor, lag, stratum,
# predecessor's stratum).  cls is 0-based; ctab lists each class's values and size.
residual_classes <- function(prev, lag, stratum, nstrata) {
  has <- prev >= 0L
  sj <- integer(length(prev))
  sj[has] <- stratum[prev[has] + 1L]
  lag[!has] <- 0
  lag_code <- match(lag, unique(lag))
  key <- ((lag_code * nstrata + stratum) * nstrata + sj) * 2 + has
  ukey <- unique(key)
  cls <- match(key, ukey)
  first <- match(ukey, key)
  list(cls = cls - 1L,
       ctab = list(has = as.integer(has[first]), lag = as.double(lag[first]),
                   s = as.integer(stratum[first]), sj = as.integer(sj[first]),
                   count = tabulate(cls, length(ukey))))
}

# Rows of `data` that made the model frame (subset and na.action applied), with attribute
# "nrow": the number of rows before (without `data`: the length of the response variable).
residual_rows <- function(data, frame, formula) {
  if (is.null(data)) {
    nr <- NROW(eval(formula[[2L]], environment(formula)))
    return(structure(as.integer(rownames(frame)), nrow = nr))
  }
  rows <- structure(match(rownames(frame), rownames(data)), nrow = nrow(data))
  if (anyNA(rows))
    stop("cannot match the model frame's rows to 'data' for the residual structure",
         call. = FALSE)
  rows
}

# Evaluate a variable of a structure's form in `data` (then the form's environment), used rows only.
form_variable <- function(expr, form, data, rows, what) {
  v <- tryCatch(eval(expr, data, environment(form)), error = function(e)
    stop("cannot evaluate '", deparse(expr), "' of the ", what, " form: ", conditionMessage(e),
         call. = FALSE))
  nr <- attr(rows, "nrow")
  if (NROW(v) != nr)
    stop(sprintf("'%s' of the %s form has %d values but the data have %d rows",
                 deparse(expr), what, NROW(v), nr), call. = FALSE)
  v <- v[rows]
  if (anyNA(v)) stop("'", deparse(expr), "' of the ", what, " form has missing values",
                     call. = FALSE)
  v
}

# A grouping expression (g, a/b, a:b, a*b) -> factor: the interaction of its variables.
form_groups <- function(expr, form, data, rows, what) {
  leaves <- function(e) {
    if (is.call(e) && as.character(e[[1L]]) %in% c("/", ":", "*") && length(e) == 3L)
      c(leaves(e[[2L]]), leaves(e[[3L]]))
    else list(e)
  }
  vals <- lapply(leaves(expr), function(e)
    as.character(form_variable(e, form, data, rows, what)))
  factor(do.call(paste, c(vals, sep = "*")), levels = unique(do.call(paste, c(vals, sep = "*"))))
}

# The sides of a form ~ covariate | groups (either may be absent).
split_form <- function(form, what) {
  if (!inherits(form, "formula") || length(form) != 2L)
    stop("the ", what, " form must be a one-sided formula such as ~ time | group", call. = FALSE)
  rhs <- form[[2L]]
  if (is.call(rhs) && identical(rhs[[1L]], as.name("|")))
    list(covariate = rhs[[2L]], groups = rhs[[3L]])
  else list(covariate = rhs, groups = NULL)
}

# ---- correlation: corAR1, corCAR1 ---------------------------------------------------------------

correlation_spec <- function(correlation, data, rows, reterms) {
  type <- intersect(class(correlation), c("corAR1", "corCAR1"))
  if (!length(type))
    stop("'correlation' must be nlme::corAR1() or nlme::corCAR1() (got ",
         class(correlation)[1L], ")", call. = FALSE)
  type <- type[1L]
  form <- attr(correlation, "formula")
  sides <- split_form(form, "correlation")
  g <- if (is.null(sides$groups)) default_cor_groups(reterms) else
    form_groups(sides$groups, form, data, rows, "correlation")
  gname <- if (is.null(sides$groups)) default_cor_group_name(reterms) else deparse(sides$groups)
  time <- correlation_times(sides$covariate, form, data, rows, g, type)
  order_info <- within_group_order(g, time, gname, type)
  v <- as.vector(correlation)
  phi <- if (!length(v)) if (type == "corAR1") 0 else 0.2 else
    if (type == "corAR1") tanh(v[1L] / 2) else stats::plogis(v[1L])
  cov_txt <- if (identical(sides$covariate, 1)) "1" else deparse(sides$covariate)
  list(type = type, code = if (type == "corAR1") 1L else 2L,
       formula = stats::as.formula(paste("~", cov_txt, "|", gname), env = environment(form)),
       prev = order_info$prev, lag = order_info$lag, depth = order_info$depth, phi = phi,
       fixed = isTRUE(attr(correlation, "fixed")),
       lower = if (type == "corAR1") -phi_max else 0, upper = phi_max)
}

# |phi| is kept at most phi_max: the criterion is finite up to there and 1 - phi^2 stays
# representable (1 - 1e-6 still gives 7 digits of 1 - phi^2).
phi_max <- 1 - 1e-6

# Without groups in the form, nlme's lme uses the innermost grouping of the random effects; here:
# the grouping factor with most levels, if every other grouping factor is constant within its levels.
default_cor_groups <- function(reterms) {
  flist <- lapply(reterms, `[[`, "group")
  finest <- flist[[which.max(vapply(flist, nlevels, 1L))]]
  nested <- vapply(flist, function(g)
    nrow(unique(cbind(as.integer(finest), as.integer(g)))) == nlevels(finest), NA)
  if (!all(nested))
    stop("the random-effects grouping factors are crossed: give the correlation groups in ",
         "its form, e.g. corAR1(form = ~ time | id)", call. = FALSE)
  finest
}

default_cor_group_name <- function(reterms) {
  nl <- vapply(reterms, function(tm) nlevels(tm$group), 1L)
  reterms[[which.max(nl)]]$name
}

# Times: positions within the group (form ~ 1) or the covariate's values.
correlation_times <- function(covariate, form, data, rows, g, type) {
  if (identical(covariate, 1))
    return(as.double(stats::ave(seq_along(g), g, FUN = seq_along)))
  t <- form_variable(covariate, form, data, rows, "correlation")
  if (!is.numeric(t))
    stop("the time covariate '", deparse(covariate), "' of ", type,
         " must be numeric (got ", class(t)[1L], ")", call. = FALSE)
  t <- as.double(t)
  if (!all(is.finite(t)))
    stop("the time covariate '", deparse(covariate), "' has non-finite values", call. = FALSE)
  if (type == "corAR1" && any(abs(t - round(t)) > 1e-8))
    stop("corAR1 needs integer times (positions); '", deparse(covariate),
         "' is not integer-valued: use corCAR1 for continuous times", call. = FALSE)
  t
}

# Predecessor (0-based row, -1 for none) and time lag of every row in its group's time order.
within_group_order <- function(g, time, gname, type) {
  n <- length(g)
  ord <- order(as.integer(g), time)
  gs <- as.integer(g)[ord]
  same <- c(FALSE, gs[-1L] == gs[-n])
  lag_sorted <- c(0, diff(time[ord]))
  dup <- same & lag_sorted == 0
  if (any(dup))
    stop(sprintf(paste("duplicated times within groups of %s (first: %s = %s, time %s):",
                       "%s needs unique times per group"),
                 gname, gname, as.character(g[ord][which(dup)[1L]]),
                 format(time[ord][which(dup)[1L]]), type), call. = FALSE)
  prev <- rep(-1L, n)
  lag <- rep(0, n)
  prev[ord[same]] <- ord[which(same) - 1L] - 1L
  lag[ord[same]] <- lag_sorted[same]
  depth <- integer(n)
  depth[ord] <- stats::ave(seq_len(n), gs, FUN = seq_along) - 1L
  list(prev = prev, lag = lag, depth = depth)
}

# ---- variance: varIdent ------------------------------------------------------------------------

variance_spec <- function(variance, data, rows) {
  if (!inherits(variance, "varIdent"))
    stop("'variance' must be nlme::varIdent() (got ", class(variance)[1L], ")", call. = FALSE)
  form <- attr(variance, "formula")
  sides <- split_form(form, "variance")
  if (is.null(sides$groups))
    stop("varIdent needs strata: varIdent(form = ~ 1 | stratum)", call. = FALSE)
  s <- form_groups(sides$groups, form, data, rows, "variance")
  strata <- stratum_order(levels(s), variance)
  fixed_log <- attr(variance, "fixed")
  v <- as.vector(variance)
  start_names <- attr(variance, "groupNames")
  logdelta <- setNames(rep(0, length(strata) - 1L), strata[-1L])
  if (length(v)) {
    if (is.null(names(v)) && !is.null(start_names)) names(v) <- start_names[seq_along(v)]
    if (is.null(names(v))) logdelta[] <- v else logdelta[names(v)] <- v
  }
  fixed <- setNames(names(logdelta) %in% names(fixed_log), names(logdelta))
  logdelta[fixed] <- fixed_log[names(logdelta)[fixed]]
  list(type = "varIdent",
       formula = stats::as.formula(paste("~ 1 |", deparse(sides$groups)), env = environment(form)),
       strata = strata, stratum = match(as.character(s), strata) - 1L,
       logdelta = unname(logdelta), fixed = unname(fixed))
}

# Reference stratum first: the one not named by the starting or fixed values, else (as nlme)
# the first to appear in the data.
stratum_order <- function(levels, variance) {
  named <- unique(c(names(as.vector(variance)), attr(variance, "groupNames"),
                    names(attr(variance, "fixed"))))
  bad <- setdiff(named, levels)
  if (length(bad))
    stop("varIdent names strata not in the data: ", paste(bad, collapse = ", "), call. = FALSE)
  ref <- setdiff(levels, named)
  if (length(named) && length(ref) != 1L && length(named) == length(levels))
    stop("varIdent's starting or fixed values must leave one stratum (the reference) unnamed",
         call. = FALSE)
  ref <- if (length(named) && length(ref) == 1L) ref else levels[1L]
  c(ref, setdiff(levels, ref))
}

# ---- fit ---------------------------------------------------------------------------------------

# lmm_fit()'s path with a residual structure: joint minimisation over (theta, free rho).
fit_with_residual <- function(y, X, reterms, weights, offset, REML, control, start, spec) {
  n <- length(y)
  engine <- engine_setup(y, X, reterms, weights, offset, spec)
  lower_theta <- theta_lower(reterms)
  theta0 <- start_theta(start, reterms, lower_theta, engine, REML, control,
                        rho = 0 * spec$rho)   # the start from the unwhitened data
  free <- spec$free
  ar1 <- !is.null(spec$correlation) && spec$correlation$type == "corAR1" && free[1L]
  car1 <- !is.null(spec$correlation) && spec$correlation$type == "corCAR1" && free[1L]
  lag <- if (car1) typical_lag(spec$correlation) else 1
  to_par <- function(rho) {                       # the C optimiser's scale (residual_fit.c)
    if (ar1) rho[1L] <- atanh(rho[1L])
    if (car1) rho[1L] <- rho[1L]^lag
    rho
  }
  rho0 <- pmin(pmax(spec$rho, spec$lower), spec$upper)
  x0 <- c(theta0, to_par(rho0)[free])
  lower <- c(lower_theta, to_par(spec$lower)[free])
  upper <- c(rep(Inf, length(theta0)), to_par(spec$upper)[free])
  opt <- .Call(C_lmm_optimise_resid, engine, as.double(x0), as.double(lower), as.double(upper),
               as.double(spec$rho), as.logical(free), REML,
               c(optimiser_settings(control, theta0), car1_lag = lag))
  if (!is.finite(opt$crit)) stop_not_finite(opt, theta0, X, user_start = !is.null(start))
  nt <- length(theta0)
  theta <- pmax(opt$par[seq_len(nt)], lower_theta)
  rho <- spec$rho
  rho[free] <- opt$par[-seq_len(nt)]
  if (ar1) rho[1L] <- tanh(rho[1L])
  if (car1) rho[1L] <- rho[1L]^(1 / lag)
  sol <- .Call(C_lmm_solution_resid, engine, theta, as.double(rho), REML)
  fit <- assemble_fit(sol, theta, lower_theta, y, X, reterms, weights, offset, REML, n)
  fit$devcomp$ldW <- sol$sumlogw
  fit$residual <- residual_result(spec, rho, .Call(C_lmm_whiten_resid, engine, as.double(rho)),
                                  weights)
  fit$residual$spec <- spec
  fit$optinfo <- optimiser_info(opt, control)
  fit$optinfo$nforms <- opt$nforms
  class(fit) <- "lmm"
  report_singular(fit, control)                 # the plain path's reports (R/fit.R)
  if (identical(control$check.rankX, "ignore")) report_collinear(sol, X)
  report_degenerate(fit)
  fit
}

# CAR(1)'s typical lag: the median time difference between consecutive observations of a group
# (1 when no group has two).  The optimiser works with the correlation at this lag, phi^lag.
typical_lag <- function(cor) {
  lags <- cor$lag[cor$prev >= 0L]
  if (length(lags)) stats::median(lags) else 1
}

# The fit's `residual` field: the structures, their estimates and the whitening at them.
residual_result <- function(spec, rho, whitening, weights) {
  cor <- spec$correlation
  var <- spec$variance
  phi <- if (is.null(cor)) NULL else c(Phi = rho[1L])
  delta <- if (is.null(var)) NULL else
    setNames(c(1, exp(rho[(!is.null(cor)) + seq_along(var$logdelta)])), var$strata)
  list(correlation = if (is.null(cor)) NULL else cor$type,
       correlation_formula = if (is.null(cor)) NULL else cor$formula,
       phi = phi,
       variance = if (is.null(var)) NULL else var$type,
       variance_formula = if (is.null(var)) NULL else var$formula,
       delta = delta,
       npar = sum(spec$free), rho = rho, free = spec$free,
       prev = spec$prev, depth = spec$depth, stratum = spec$stratum,
       sqrtw_a = sqrt(weights) * whitening$a, c = whitening$c)
}

# The criterion of a fit with a residual structure as a function of (theta, rho), rho on its
# natural scale (phi, log delta of the non-reference strata; fixed entries included): what
# profiling and derivative-based inference need.  Evaluated in C; +Inf outside the space.
residual_objective <- function(object, REML = object$REML) {
  spec <- object$residual$spec
  if (is.null(spec)) stop("the fit has no residual structure", call. = FALSE)
  engine <- engine_setup(object$y, object$X, object$reterms, object$weights, object$offset,
                               spec)
  nt <- length(object$theta)
  REML <- isTRUE(REML)
  function(par) {
    if (length(par) != nt + length(spec$rho))
      stop(sprintf("the parameter must have length %d (theta, then rho)", nt + length(spec$rho)),
           call. = FALSE)
    .Call(C_lmm_crit_resid, engine, as.double(par[seq_len(nt)]), as.double(par[-seq_len(nt)]),
          REML)
  }
}

# ---- accessors ---------------------------------------------------------------------------------

# The residual structure's estimates, as nlme reports them: phi ("Phi") and the standard-deviation
# ratios of the strata (the reference stratum's is 1).
residual_parameters <- function(object) {
  if (!inherits(object, "lmm")) stop("'object' must be a fitted lmm", call. = FALSE)
  r <- object$residual
  list(phi = r$phi, delta = r$delta)
}

# Number of estimated residual-structure parameters (phi, variance ratios; fixed ones excluded):
# logLik's df is p + length(theta) + 1 + residual_npar(fit).
residual_npar <- function(object) {
  if (is.null(object$residual)) 0L else as.integer(object$residual$npar)
}

# log|W| of the criteria, generalised: log|V^{-1}| at the fitted residual structure (the prior
# weights' sum of logs without one).  ML: -2 logL = ldL2 - residual_logdet + n (1 + log(2 pi r2/n)).
residual_logdet <- function(object) {
  if (is.null(object$residual)) sum(log(object$weights)) else object$devcomp$ldW
}

# The residual SD of each row relative to sigma: delta_stratum / sqrt(w).
residual_scale <- function(object) {
  r <- object$residual
  d <- if (is.null(r$delta)) 1 else unname(r$delta)[r$stratum + 1L]
  d / sqrt(object$weights)
}

# B S^{-1} v: v whitened by the fitted residual structure (nlme's "normalized" residuals are
# residual_whiten(fit, resid) / sigma).
residual_whiten <- function(object, v) {
  r <- object$residual
  prev <- r$prev + 1L
  has <- prev > 0L
  out <- r$sqrtw_a * v
  out[has] <- out[has] + r$c[has] * v[prev[has]]
  out
}

# nsim draws of the residuals e ~ N(0, sigma^2 V) as an n x nsim matrix: solve B S^{-1} e = sigma z
# by forward substitution in time order, all groups at once, one position at a time.
residual_errors <- function(object, nsim = 1L, sigma = object$sigma) {
  r <- object$residual
  if (is.null(r))                            # independent: e ~ N(0, sigma^2 / w)
    return(sigma * matrix(stats::rnorm(object$n * nsim), object$n, nsim) / sqrt(object$weights))
  n <- length(r$prev)
  z <- matrix(stats::rnorm(n * nsim), n, nsim)
  prev <- r$prev + 1L
  depth <- r$depth
  e <- matrix(0, n, nsim)
  for (d in sort(unique(depth))) {
    i <- which(depth == d)
    rhs <- sigma * z[i, , drop = FALSE]
    if (d > 0L) rhs <- rhs - r$c[i] * e[prev[i], , drop = FALSE]
    e[i, ] <- rhs / r$sqrtw_a[i]
  }
  e
}

# ---- printing ----------------------------------------------------------------------------------

# nlme-style lines describing the residual structure (character(0) when there is none), for
# print() and summary().
format_residual_structure <- function(object, digits = max(3L, getOption("digits") - 3L)) {
  r <- object$residual
  if (is.null(r)) return(character())
  show <- function(v) utils::capture.output(print(v, digits = digits))
  lines <- character()
  if (!is.null(r$correlation))
    lines <- c(lines,
               paste("Correlation Structure:",
                     if (r$correlation == "corAR1") "AR(1)" else "Continuous AR(1)"),
               paste(" Formula:", deparse(r$correlation_formula)),
               " Parameter estimate(s):", show(r$phi))
  if (!is.null(r$variance))
    lines <- c(lines, "Variance function:",
               " Structure: Different standard deviations per stratum",
               paste(" Formula:", deparse(r$variance_formula)),
               " Parameter estimates:", show(r$delta))
  lines
}
