# Residual structures: nlme's correlation (corStruct) and variance (varFunc) objects -> the
# engine's residual specification, and the fit's residual fields.
#
# Residual covariance s^2 V, V = W^{-1/2} S R S W^{-1/2}: R block diagonal over the correlation
# groups (R/residual-correlation.R's families; AR(1)-type here), S = diag(s_i) the variance
# function (R/residual-variance.R; varIdent here), W the prior weights.  The engine whitens the
# rows group by group (src/residual.h) and minimises the criterion over (theta, rho) jointly, rho
# the structures' parameters on an unconstrained scale; fixed parameters stay at their values.

# ---- specification ---------------------------------------------------------------------------

# NULL when neither structure is given; else the spec lmm_fit(residual = ) takes:
#   engine      what C takes (src/model.c resid_from): list(gp, grow, cor, var)
#   rho, free, lower, upper   the parameters (unconstrained), which are estimated, their bounds
#   correlation, variance     the structures (type, formula, how to print them)
residual_spec <- function(correlation, variance, data, pieces, fitted = NULL) {
  if (is.null(correlation) && is.null(variance)) return(NULL)
  rows <- residual_rows(data, pieces$frame, pieces$formula)
  n <- length(pieces$y)
  cor <- if (is.null(correlation)) NULL else
    correlation_spec(correlation, data, rows, pieces$reterms)
  if (!is.null(cor)) {
    cor$object <- correlation
    # AR-type parameters starting at exactly 0: with lags of 2 (times 8, 10, 12, ...) the
    # criterion is even in phi there, a stationary point the optimiser would never leave
    # (Orthodont's corAR1(form = ~ age | Subject) is a saddle): start slightly inside instead
    even <- cor$engine$code %in% c(1L, 3L) & !cor$fixed & cor$par == 0
    cor$par[even] <- 0.1
  }
  var <- if (is.null(variance)) NULL else
    varfunc_spec(variance, data, rows, fitted)                 # R/residual-variance.R
  if (!is.null(var)) var$object <- variance
  comps <- var$components
  if (is.null(cor) && !length(comps)) {                 # fixed weights at most (varFixed)
    if (is.null(var$prior_weights)) return(NULL)
    return(structure(list(prior_weights = var$prior_weights), class = "lmm_residual_spec"))
  }
  groups <- if (is.null(cor)) list(gp = seq.int(0L, n), grow = seq_len(n) - 1L) else cor$groups
  markov <- is.null(cor) || cor$engine$code %in% 1:2
  ident <- !length(comps) || length(comps) == 1L && comps[[1L]]$type == "varIdent"
  structure(list(
    correlation = cor, variance = var, prior_weights = var$prior_weights,
    engine = list(gp = as.integer(groups$gp), grow = as.integer(groups$grow),
                  cor = if (!is.null(cor)) cor$engine,
                  var = lapply(comps, function(cp) cp[c("code", "npar", "nstrata", "stratum", "v")]),
                  pieces = if (markov && ident)
                    residual_classes(groups, if (!is.null(cor)) cor$engine$cov[, 1L],
                                     if (length(comps)) comps[[1L]]$stratum else integer(n),
                                     if (length(comps)) comps[[1L]]$nstrata else 1L)),
    rho = c(cor$par, unlist(lapply(comps, `[[`, "par"))),
    mirror = c(rep(FALSE, length(cor$par)), unlist(lapply(comps, power_like))),
    free = c(if (!is.null(cor)) !cor$fixed, !as.logical(unlist(lapply(comps, `[[`, "fixed")))),
    lower = c(cor$lower, unlist(lapply(comps, `[[`, "lower"))),
    upper = c(cor$upper, unlist(lapply(comps, `[[`, "upper")))),
    class = "lmm_residual_spec")
}

# Which of a variance component's parameters are powers or exponents (varPower, varExp, and
# varConstPower's powers: its log constants come first): the likelihood can have separate
# maxima on either side of 0 (nlme's Wafer with varPower(~ voltage): 151.5 at power 1.07 from
# the start 0, 258.2 at -5.2), so the optimiser also tries the mirrored start.
power_like <- function(cp) {
  if (cp$type %in% c("varPower", "varExp")) return(rep(TRUE, cp$npar))
  if (cp$type == "varConstPower") return(rep(c(FALSE, TRUE), each = cp$npar / 2L))
  rep(FALSE, cp$npar)
}

# Does the variance function use the fitted values (nlme's ~ fitted(.), varPower's default)?
variance_uses_fitted <- function(variance) {
  if (is.null(variance) || inherits(variance, "formula") || is.character(variance)) return(FALSE)
  any(vapply(varfunc_terms(variance), function(vf)
    any(c(".", "fitted") %in% all.names(attr(vf, "formula"))), NA))
}

# nlme's fitted-value covariates (varPower() = varPower(form = ~ fitted(.))): the covariate is
# the fit's own fitted values, so the estimate is the fixed point of fitting with v = the fitted
# values of the previous fit (nlme's outer iterations), started from the fit without the
# variance function; each fit starts from the previous estimates.  Stops when the criterion
# changes by less than 1e-10 relative and the parameters by less than 1e-7.
fit_fitted_variance <- function(pieces, correlation, variance, data, control, start,
                                maxit = 100L) {
  fit_spec <- function(spec, start) {
    if (!is.null(spec$prior_weights)) stop("varFixed cannot be combined with fitted-value ",
                                           "covariates", call. = FALSE)
    fit_checked(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset,
                pieces$REML, control, start, spec)
  }
  fit <- fit_spec(residual_spec(correlation, NULL, data, pieces), start)
  for (it in seq_len(maxit)) {
    spec <- residual_spec(correlation, variance, data, pieces, fitted = as.vector(fitted(fit)))
    if (!is.null(fit$residual)) {                          # start from the previous estimates
      ncor <- length(spec$correlation$par)
      if (it == 1L) spec$rho[seq_len(ncor)] <- fit$residual$rho[seq_len(ncor)]
      else spec$rho <- fit$residual$rho
    }
    old <- fit
    fit <- fit_spec(spec, unname(old$theta))
    if (it > 1L && abs(fit$crit - old$crit) <= 1e-10 * abs(old$crit) &&
        max(abs(fit$residual$rho - old$residual$rho), abs(fit$theta - old$theta)) <= 1e-7) break
  }
  if (it == maxit) warning("the fitted-value variance covariate did not settle in ", maxit,
                           " refits", call. = FALSE)
  fit$optinfo$outer_iterations <- it
  fit
}

# Classes of rows with equal whitening coefficients for Markov x varIdent structures (src/
# residual_pieces.c): equal (has a predecessor, lag, stratum, predecessor's stratum).  cls is
# 0-based; mode: options(lmmc.residual_pieces) -- 0 never use them, 1 when cheaper (default),
# 2 always (tests).
residual_classes <- function(groups, time, stratum, nstrata) {
  n <- length(groups$grow)
  prev <- rep(-1L, n)
  lag <- rep(0, n)
  if (!is.null(time)) {
    r <- groups$grow + 1L
    a <- setdiff(seq_len(n), groups$gp[-length(groups$gp)] + 1L)     # not first in its group
    prev[r[a]] <- r[a - 1L] - 1L
    lag[r[a]] <- time[r[a]] - time[r[a - 1L]]
  }
  has <- prev >= 0L
  sj <- integer(n)
  sj[has] <- stratum[prev[has] + 1L]
  key <- ((match(lag, unique(lag)) * nstrata + stratum) * nstrata + sj) * 2 + has
  ukey <- unique(key)
  cls <- match(key, ukey)
  first <- match(ukey, key)
  list(cls = cls - 1L, has = as.integer(has[first]), lag = as.double(lag[first]),
       s = as.integer(stratum[first]), sj = as.integer(sj[first]),
       count = tabulate(cls, length(ukey)),
       mode = as.integer(getOption("lmmc.residual_pieces", 1L)))
}

# Rows of `data` that made the model frame (subset and na.action applied), with attribute
# "nrow": the number of rows before (without `data`: the length of the response variable).
residual_rows <- function(data, frame, formula) {
  if (is.null(data)) {
    nr <- NROW(eval(formula[[2L]], environment(formula)))
    return(structure(as.integer(rownames(frame)), nrow = nr))
  }
  if (nrow(frame) == nrow(data) &&                       # every row kept, in order: no match
      identical(.row_names_info(frame, 0L), .row_names_info(data, 0L)))
    return(structure(seq_len(nrow(data)), nrow = nrow(data)))
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
  parts <- leaves(expr)
  if (length(parts) == 1L) {                 # one variable: its values, levels in data order
    v <- form_variable(parts[[1L]], form, data, rows, what)
    if (is.factor(v)) v <- as.character(v)   # (labels, as for several variables)
    u <- unique(v)
    return(factor(match(v, u), labels = as.character(u)))
  }
  vals <- lapply(parts, function(e) as.character(form_variable(e, form, data, rows, what)))
  lab <- do.call(paste, c(vals, sep = "*"))
  factor(lab, levels = unique(lab))
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

# The correlation structure: nlme's Markov ones (corAR1, corCAR1, and corARMA(p = 1, q = 0),
# which nlme too treats as corAR1) here, whitened with bidiagonal factors; the others through
# R/residual-correlation.R's families, whitened group by group.
correlation_spec <- function(correlation, data, rows, reterms) {
  if (!inherits(correlation, "corStruct"))
    stop("'correlation' must be an nlme correlation structure such as corAR1(), corARMA(), ",
         "corCompSymm(), corSymm() or corExp() (got ", class(correlation)[1L], ")", call. = FALSE)
  if (inherits(correlation, "corARMA") && identical(as.integer(attr(correlation, "p")), 1L) &&
      identical(as.integer(attr(correlation, "q")), 0L))
    return(markov_spec(correlation, "corAR1", data, rows, reterms, arma = TRUE))
  type <- intersect(class(correlation), c("corAR1", "corCAR1"))
  if (length(type)) return(markov_spec(correlation, type[1L], data, rows, reterms))
  family_spec(correlation, data, rows, reterms)
}

# corARMA, corCompSymm, corSymm and the spatial families (R/residual-correlation.R).
family_spec <- function(correlation, data, rows, reterms) {
  if (!length(intersect(class(correlation), names(cor_family_codes))))
    stop("the correlation structure ", class(correlation)[1L], " is not supported; use one of ",
         "corAR1, corCAR1, ", paste(names(cor_family_codes), collapse = ", "), call. = FALSE)
  cv <- cor_family_covariates(correlation, data, rows)
  form <- attr(correlation, "formula")
  sides <- split_form(form, "correlation")
  g <- cv$groups
  gname <- if (is.null(sides$groups)) NULL else deparse(sides$groups)
  if (is.null(g) && length(reterms)) {                   # lme: the innermost grouping
    g <- default_cor_groups(reterms)
    gname <- default_cor_group_name(reterms)
  }
  cov_txt <- paste(deparse(sides$covariate), collapse = " ")
  formula <- stats::as.formula(paste("~", cov_txt, if (!is.null(gname)) paste("|", gname)),
                               env = environment(form))
  fs <- cor_family_spec(correlation, cv$covariates, g, n = length(rows), formula = formula)
  groups <- group_order(fs$groups, fs$order, if (is.null(gname)) "the data" else gname,
                        fs$type, unique_times = fs$type %in% c("corARMA", "corSymm"))
  list(type = fs$type, formula = formula, groups = groups,
       engine = fs[c("code", "npar", "cov", "iopt", "dopt")],
       par = fs$par, fixed = fs$fixed, lower = fs$lower, upper = fs$upper,
       natural = fs$natural, unconstrained = fs$unconstrained,
       lines = function(par) cor_family_lines(fs, par))
}

# corAR1, corCAR1 (and corARMA(p = 1, q = 0) as corAR1, named as nlme's ARMA).
markov_spec <- function(correlation, type, data, rows, reterms, arma = FALSE) {
  form <- attr(correlation, "formula")
  sides <- split_form(form, "correlation")
  one_group <- is.null(sides$groups) && !length(reterms)      # gls without groups: one series
  g <- if (one_group) factor(rep(1L, length(rows))) else if (is.null(sides$groups))
    default_cor_groups(reterms) else form_groups(sides$groups, form, data, rows, "correlation")
  gname <- if (one_group) NULL else if (is.null(sides$groups)) default_cor_group_name(reterms) else
    deparse(sides$groups)
  time <- correlation_times(sides$covariate, form, data, rows, g, type)
  groups <- group_order(g, time, if (is.null(gname)) "the data" else gname, type)
  v <- as.vector(correlation)
  phi <- if (!length(v)) if (type == "corAR1") 0 else 0.2 else
    if (type == "corAR1") tanh(v[1L] / 2) else stats::plogis(v[1L])
  if (arma) phi <- if (length(v)) tanh(v[1L] / 2) else 0     # nlme: the PACF's tanh(v / 2)
  lag <- if (type == "corCAR1") typical_lag(groups, time) else 1
  map <- markov_map(type, lag)
  cov_txt <- if (identical(sides$covariate, 1)) "1" else deparse(sides$covariate)
  formula <- stats::as.formula(paste("~", cov_txt, if (!is.null(gname)) paste("|", gname)),
                               env = environment(form))
  list(type = if (arma) "corARMA" else type, formula = formula,
       groups = groups,
       engine = list(code = if (type == "corAR1") 1L else 2L, npar = 1L,
                     cov = matrix(as.double(time)), iopt = integer(), dopt = as.double(lag)),
       par = map$to(min(max(phi, map$phi_lower), phi_max)), fixed = isTRUE(attr(correlation, "fixed")),
       lower = map$to(map$phi_lower), upper = map$to(phi_max),
       natural = function(par) setNames(map$from(par), if (arma) "Phi1" else "Phi"),
       unconstrained = function(value) map$to(unname(value)),
       lines = function(par) markov_lines(type, arma, formula, map$from(par)))
}

# nlme's summary lines of a Markov structure.
markov_lines <- function(type, arma, formula, phi, digits = max(3L, getOption("digits") - 3L)) {
  est <- setNames(phi, if (arma) "Phi1" else "Phi")
  c(paste("Correlation Structure:",
          if (arma) "ARMA(1,0)" else if (type == "corAR1") "AR(1)" else "Continuous AR(1)"),
    paste(" Formula:", deparse(formula)),
    " Parameter estimate(s):", utils::capture.output(print(est, digits = digits)))
}

# |phi| is kept at most phi_max: the criterion is finite up to there and 1 - phi^2 stays
# representable (1 - 1e-6 still gives 7 digits of 1 - phi^2).
phi_max <- 1 - 1e-6

# AR(1)-type phi <-> the engine's parameter z (src/cor_ar1.c): corAR1 phi = tanh(z); corCAR1
# phi = c^(1/s) with c = plogis(z) the correlation at the typical lag s (phi >= 1e-12^(1/s)).
markov_map <- function(type, lag) {
  if (type == "corAR1")
    return(list(to = atanh, from = tanh, phi_lower = -phi_max))
  list(to = function(phi) stats::qlogis(phi^lag), from = function(z) stats::plogis(z)^(1 / lag),
       phi_lower = 1e-12^(1 / lag))
}

# Without groups in the form, nlme's lme uses the innermost grouping of the random effects; here:
# the grouping factor with most levels, if every other grouping factor is constant within its levels.
default_cor_groups <- function(reterms) {
  if (!length(reterms))
    stop("without random effects, give the correlation groups in its form, e.g. ",
         "corAR1(form = ~ time | id)", call. = FALSE)
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

# The correlation groups for the engine: gp (group g's rows are grow[gp[g] .. gp[g+1]-1]) and
# grow (0-based rows, each group's in time order); duplicated times within a group are an error.
group_order <- function(g, time, gname, type, unique_times = TRUE) {
  n <- length(g)
  ord <- order(as.integer(g), time)
  gs <- as.integer(g)[ord]
  same <- c(FALSE, gs[-1L] == gs[-n])
  dup <- same & c(0, diff(time[ord])) == 0
  if (unique_times && any(dup))
    stop(sprintf(paste("duplicated times within groups of %s (first: %s = %s, time %s):",
                       "%s needs unique times per group"),
                 gname, gname, as.character(g[ord][which(dup)[1L]]),
                 format(time[ord][which(dup)[1L]]), type), call. = FALSE)
  list(gp = c(0L, cumsum(tabulate(gs, nlevels(g))[unique(gs)])), grow = ord - 1L)
}

# CAR(1)'s typical lag: the median time difference between consecutive observations of a group
# (1 when no group has two).
typical_lag <- function(groups, time) {
  t <- time[groups$grow + 1L]
  first <- groups$gp[-length(groups$gp)] + 1L
  lags <- diff(t)[-(first[-1L] - 1L)]
  if (length(lags)) stats::median(lags) else 1
}

# ---- the fit's residual fields -------------------------------------------------------------------

# The fit's `residual` field: the structures, their estimates, and the whitening K at them (rows
# of K as C gives them: Kp, Kj 0-based; `order` the rows in group order).  K is NULL when it is
# dense for ARMA groups the engine whitens by a recursion: residual_whiten() and
# residual_errors() then apply K or solve with it by that recursion in C, in O(n)
# (residual_K() forms the explicit K, for tests).
residual_result <- function(spec, rho, engine) {
  cor <- spec$correlation
  var <- spec$variance
  ncor <- length(cor$par)
  K <- engine_whitening(engine, rho, explicit = FALSE)
  list(correlation = cor$type, correlation_formula = cor$formula,
       phi = if (!is.null(cor)) cor$natural(rho[seq_len(ncor)]),
       variance = if (length(var$components)) vapply(var$components, `[[`, "", "type"),
       delta = if (length(var$components)) variance_estimates(var, rho[ncor + seq_len(var$npar)]),
       variance_coef = if (length(var$components)) var$natural(rho[ncor + seq_len(var$npar)]),
       correlation_lines = if (!is.null(cor)) cor$lines(rho[seq_len(ncor)]),
       npar = sum(spec$free), rho = rho, free = spec$free, spec = spec,
       K = if (!isTRUE(K$implicit)) K[c("Kp", "Kj", "Kx")], sd = exp(K$logs),
       order = spec$engine$grow)
}

# The fitted whitening K (rows Kp, Kj, Kx): the stored one, else formed from the fit's engine.
residual_K <- function(object) {
  r <- object$residual
  if (!is.null(r$K)) return(r$K)
  engine_whitening(engine_for(object), r$rho)[c("Kp", "Kj", "Kx")]
}

# The variance function's estimates: a single varIdent's ratios with the reference stratum's 1
# (nlme's summary), else nlme's coef(vf, unconstrained = FALSE).
variance_estimates <- function(var, par) {
  comps <- var$components
  if (length(comps) == 1L && comps[[1L]]$type == "varIdent") return(comps[[1L]]$natural(par, all = TRUE))
  var$natural(par)
}

# The criterion of a fit with a residual structure as a function of (theta, rho), rho on the
# engine's (unconstrained) scale, fixed entries included: what profiling and derivative-based
# inference need.  +Inf outside the space.
residual_objective <- function(object, REML = object$REML) {
  spec <- object$residual$spec
  if (is.null(spec)) stop("the fit has no residual structure", call. = FALSE)
  engine <- engine_for(object)
  nt <- length(object$theta)
  REML <- isTRUE(REML)
  function(par) {
    if (length(par) != nt + length(spec$rho))
      stop(sprintf("the parameter must have length %d (theta, then rho)", nt + length(spec$rho)),
           call. = FALSE)
    engine_crit(engine, par[seq_len(nt)], REML, par[nt + seq_len(length(par) - nt)])
  }
}

# ---- accessors ---------------------------------------------------------------------------------

# The residual structure's estimates, as nlme reports them: the correlation parameters (phi:
# "Phi", "Phi1", "range", ...), a varIdent's standard-deviation ratios of all strata (delta, the
# reference stratum's 1) and the variance function's parameters (variance: nlme's
# coef(varStruct, unconstrained = FALSE)).
residual_parameters <- function(object) {
  if (!inherits(object, "lmm")) stop("'object' must be a fitted lmm", call. = FALSE)
  r <- object$residual
  list(phi = r$phi, delta = r$delta, variance = r$variance_coef)
}

# Number of estimated residual-structure parameters (fixed ones excluded): logLik's df is
# p + length(theta) + 1 + residual_npar(fit).
residual_npar <- function(object) {
  if (is.null(object$residual)) 0L else as.integer(object$residual$npar)
}

# log|W| of the criteria, generalised: log|V^{-1}| at the fitted residual structure (the prior
# weights' sum of logs without one).  ML: -2 logL = ldL2 - residual_logdet + n (1 + log(2 pi r2/n)).
residual_logdet <- function(object) {
  if (!is.null(object$counts)) return(object$counts$sumlogw)       # aggregated data (R/aggregate.R)
  if (is.null(object$residual)) sum(log(object$weights)) else object$devcomp$ldW
}

# The residual SD of each row relative to sigma: s_i / sqrt(w_i).
residual_scale <- function(object) {
  s <- if (is.null(object$residual)) 1 else object$residual$sd
  s / sqrt(object$weights)
}

# K v: v (a vector or an n-row matrix) whitened by the fitted residual structure (nlme's
# "normalized" residuals are residual_whiten(fit, resid) / sigma).
residual_whiten <- function(object, v) {
  K <- object$residual$K
  if (is.null(K)) {                          # implicit K (ARMA recursion groups): in O(n) in C
    out <- engine_whiten_apply(engine_for(object), object$residual$rho, as.matrix(v))
    return(if (is.matrix(v)) unname(out) else as.vector(out))
  }
  rows <- rep.int(seq_along(K$Kp[-1L]), diff(K$Kp))
  out <- rowsum(K$Kx * as.matrix(v)[K$Kj + 1L, , drop = FALSE], rows, reorder = TRUE)
  if (is.matrix(v)) unname(out) else as.vector(out)
}

# The fitted variance function's s_i on new rows `newdata` (all of them used): the covariates
# and strata evaluated there, the strata matched to the fit's by name, s from the C family at the
# fitted parameters.  1 without a variance function.
variance_scale_new <- function(object, newdata) {
  var <- object$residual$spec$variance
  n <- nrow(newdata)
  if (!length(var$components)) return(rep(1, n))
  rows <- structure(seq_len(n), nrow = n)
  terms <- varfunc_terms(var$object)
  par <- object$residual$rho[length(object$residual$spec$correlation$par) + seq_len(var$npar)]
  logs <- numeric(n)
  k <- 0L
  for (i in seq_along(var$components)) {
    fitc <- var$components[[i]]
    new <- tryCatch(varfunc_evaluate(terms[[var$term_of[i]]], newdata, rows), error = function(e)
      stop("cannot evaluate the variance function on newdata: ", conditionMessage(e),
           call. = FALSE))
    eng <- fitc[c("code", "npar", "nstrata", "stratum", "v")]
    eng["v"] <- list(if (!is.null(new$v)) as.double(new$v))
    if (!is.null(fitc$stratum)) {
      lab <- as.character(new$strata)
      s <- match(lab, fitc$strata)
      if (anyNA(s))
        stop("newdata has strata of the variance function not in the fit: ",
             paste(unique(lab[is.na(s)]), collapse = ", "), call. = FALSE)
      eng$stratum <- as.integer(s - 1L)
    }
    out <- .Call(C_lmm_var_logs, eng, n, as.double(par[k + seq_len(fitc$npar)]))
    if (is.null(out)) stop("the variance function is not finite on newdata", call. = FALSE)
    logs <- logs + out[[1L]]
    k <- k + fitc$npar
  }
  pw <- 1
  for (t in terms) if (inherits(t, "varFixed")) {           # prior weights 1 / v on new rows
    v <- varfunc_evaluate(t, newdata, rows)$v
    pw <- pw / v
  }
  exp(logs) / sqrt(pw)
}

# nsim draws of residuals for new rows `newdata` at the fitted structure: e = sigma S R^(1/2) z
# with the correlation structure rebuilt on the new rows (its groups as the fit resolved them),
# its parameters mapped through their natural values (the unconstrained scale of some families
# depends on the data), and S the fitted variance function there (variance_scale_new).
residual_errors_new <- function(object, newdata, nsim) {
  n <- nrow(newdata)
  z <- matrix(stats::rnorm(n * nsim), n, nsim)
  r <- object$residual
  if (is.null(r)) return(object$sigma * z)
  s <- variance_scale_new(object, newdata)
  cor <- r$spec$correlation
  if (is.null(cor)) return(object$sigma * s * z)
  cobj <- cor$object
  attr(cobj, "formula") <- cor$formula                      # the groups the fit resolved
  pieces <- list(frame = newdata, formula = object$formula, y = numeric(n), reterms = list())
  spec <- residual_spec(cobj, NULL, newdata, pieces)
  ncor <- length(cor$par)
  spec$rho <- as.double(spec$correlation$unconstrained(cor$natural(r$rho[seq_len(ncor)])))
  engine <- engine_setup(numeric(n), matrix(1, n, 1L), list(), rep(1, n), numeric(n), spec)
  K <- engine_whitening(engine, spec$rho)
  object$sigma * s * .Call(C_lmm_whiten_solve, K, as.integer(spec$engine$grow), z)
}

# nsim draws of the residuals e ~ N(0, sigma^2 V) as an n x nsim matrix: K e = sigma z, solved
# by forward substitution in group order (src/model.c lmm_whiten_solve).
residual_errors <- function(object, nsim = 1L, sigma = object$sigma) {
  n <- object$n
  z <- matrix(stats::rnorm(n * nsim), n, nsim)
  r <- object$residual
  if (is.null(r))                            # independent: e ~ N(0, sigma^2 / w)
    return(sigma * z / sqrt(object$weights))
  if (is.null(r$K))                          # implicit K: the recursion's inverse, in C
    return(engine_whiten_apply(engine_for(object), r$rho, sigma * z, inverse = TRUE))
  .Call(C_lmm_whiten_solve, r$K, as.integer(r$order), sigma * z)
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
    lines <- c(lines, r$spec$correlation$lines(r$rho[seq_along(r$spec$correlation$par)]))
  var <- r$spec$variance
  if (length(var$components))
    lines <- c(lines, var$lines(r$rho[length(r$spec$correlation$par) + seq_len(var$npar)],
                                digits))
  lines
}
