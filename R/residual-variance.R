# Variance functions: nlme's varFunc objects (varIdent, varPower, varExp, varConstPower, varFixed,
# their products varComb, and lme's shorthand `weights = ~ v` for varFixed(~ v)) -> the engine's
# variance specification: components C evaluates (src/var_*.c) and a multiplier of the prior
# weights.
#
# The residual standard deviation of row i is sigma s_i / sqrt(w_i), s_i the product of the
# components' multipliers (nlme's varWeights() is 1 / s_i), k the stratum of row i (form ~ v | g;
# one stratum without g):
#   varIdent       s_i = delta_k (1: reference)  par = log delta_k, non-reference strata
#   varPower       s_i = |v_i|^delta_k           par = delta_k
#   varExp         s_i = exp(delta_k v_i)        par = delta_k
#   varConstPower  s_i = c_k + |v_i|^delta_k     par = (log c_1 .. log c_S, delta_1 .. delta_S)
#   varFixed       Var(e_i) proportional to v_i  no parameter: prior weights times 1 / v_i.
# par is the unconstrained scale the engine works on (nlme's coef(vf)); natural() gives nlme's
# coef(vf, unconstrained = FALSE).  Strata are in order of first appearance (nlme's); varIdent puts
# its reference stratum first and the fixed strata last (as nlme's Initialize.varIdent).
#
# varfunc_spec(variance, data, rows, fitted = NULL) evaluates the forms with R/residual.R's helpers
# (split_form, form_variable, form_groups; fitted(.) at `fitted`) and returns, or NULL when the
# variance is constant,
#   list(components = list(<component>, ...),       one per varIdent/varPower/varExp/varConstPower
#        prior_weights = numeric n-vector or NULL,  the product of varFixed's 1 / v
#        npar, natural = function(par), lines = function(par, digits))   par: all components' par
# with <component> = list(type, code, npar, nstrata, stratum, v,      (what C reads)
#                         par, fixed, lower, upper, names, log_scale, strata, formula,
#                         natural, lines);
# log_scale[k]: the natural value of par[k] is exp(par[k]) (varIdent's delta, varConstPower's
# const), else par[k] itself.
# The builders varfunc_part(vf, v, strata) take evaluated covariates and strata.

# lmm_var codes (src/residual.h)
varfunc_codes <- c(varIdent = 1L, varPower = 2L, varExp = 3L, varConstPower = 4L)

# ---- the specification -------------------------------------------------------------------------

# The variance specification of an nlme varFunc (or a formula: varFixed) on the used rows of data.
# fitted: the model's fitted values on the used rows, for covariates of the fitted values (nlme's
# default ~ fitted(.)); without them such covariates are an error.  nlme iterates: fit, evaluate
# the covariate at the fit's fitted values (innermost level), fit again, until the variance
# parameters settle.
varfunc_spec <- function(variance, data, rows, fitted = NULL) {
  terms <- varfunc_terms(variance)
  parts <- lapply(terms, function(vf) {
    x <- varfunc_evaluate(vf, data, rows, fitted)
    varfunc_part(vf, x$v, x$strata)
  })
  varfunc_assemble(parts, combination = length(terms) > 1L || inherits(variance, "varComb"))
}

# The varFuncs of a variance function, varComb flattened, named as nlme's coef() prefixes them
# (a varComb's parts A, B, ...; "" for a single one).
varfunc_terms <- function(variance, prefix = "") {
  if (inherits(variance, "formula") || is.character(variance))
    variance <- varfunc_fixed_of(variance)
  if (!inherits(variance, "varFunc"))
    stop("'weights' must be an nlme variance function (varIdent, varPower, varExp, ",
         "varConstPower, varFixed, varComb) or a formula ~ v (got ", class(variance)[1L], ")",
         call. = FALSE)
  if (!inherits(variance, "varComb")) return(stats::setNames(list(variance), prefix))
  parts <- unclass(variance)
  nm <- names(parts)
  if (is.null(nm)) nm <- LETTERS[seq_along(parts)]
  nested <- Map(function(p, n) varfunc_terms(p, paste0(prefix, n, ".")), parts, nm)
  out <- do.call(c, unname(nested))
  names(out) <- sub("\\.$", "", names(out))
  out
}

# lme's `weights = ~ v` (or "v"): varFixed(~ v).
varfunc_fixed_of <- function(form) {
  if (is.character(form)) form <- stats::as.formula(paste("~", form))
  if (length(form) != 2L) stop("'weights' as a formula must be one-sided, ~ v", call. = FALSE)
  structure(numeric(0), formula = form, class = c("varFixed", "varFunc"))
}

# The covariate (numeric or NULL) and strata (factor or NULL) of a varFunc on the used rows.
varfunc_evaluate <- function(vf, data, rows, fitted = NULL) {
  type <- varfunc_type(vf)
  form <- attr(vf, "formula")
  sides <- split_form(form, "variance")
  strata <- if (!is.null(sides$groups) && type != "varFixed")
    form_groups(sides$groups, form, data, rows, "variance")
  v <- if (type != "varIdent")
    varfunc_covariate_values(type, sides$covariate, form, data, rows, fitted)
  list(v = v, strata = strata)
}

# The covariate on the used rows.  In nlme's covariates `.` is the fit: fitted(.) its fitted
# values, here `fitted` (used rows) when given.
varfunc_covariate_values <- function(type, covariate, form, data, rows, fitted) {
  if (any(c("resid", "residuals") %in% all.names(covariate)))
    stop(type, "'s covariate '", deparse(covariate), "' uses the residuals: lmmc needs a data ",
         "covariate or the fitted values", call. = FALSE)
  if (any(c(".", "fitted") %in% all.names(covariate))) {
    if (is.null(fitted))
      stop(type, "'s covariate '", deparse(covariate), "' uses the fitted values, which ",
           "depend on the fixed effects: lmmc needs a data covariate, e.g. ", type,
           "(form = ~ age)", call. = FALSE)
    if (!is.numeric(fitted) || length(fitted) != length(rows))
      stop(sprintf("'fitted' must be numeric with one value per used row (%d)", length(rows)),
           call. = FALSE)
    full <- rep(NA_real_, attr(rows, "nrow"))
    full[rows] <- fitted
    dot <- structure(list(fitted.values = full), class = "lmm_fitted_values")
    data <- c(list(. = dot), if (!is.null(data)) as.list(data))
  }
  form_variable(covariate, form, data, rows, "variance")
}

varfunc_type <- function(vf) {
  type <- intersect(class(vf), c("varIdent", "varPower", "varExp", "varConstPower", "varFixed"))
  if (!length(type))
    stop("variance function ", class(vf)[1L], " is not supported: use varIdent, varPower, ",
         "varExp, varConstPower, varFixed or their varComb", call. = FALSE)
  type[1L]
}

# One varFunc on evaluated values -> list(component = <component> or NULL,
# prior_weights = multiplier or NULL, lines = its print lines for varFixed).  strata: a factor
# (levels in order of first appearance) or NULL; v: the covariate or NULL (varIdent).
varfunc_part <- function(vf, v, strata) {
  type <- varfunc_type(vf)
  if (!is.null(strata)) {
    strata <- droplevels(as.factor(strata))
    if (nlevels(strata) < 2L) strata <- NULL          # one stratum: as without (nlme)
  }
  if (type != "varIdent") v <- varfunc_covariate(v, type, attr(vf, "formula"))
  if (type == "varFixed") return(varfunc_fixed(vf, v))
  comp <- switch(type,
                 varIdent = varfunc_ident(vf, strata),
                 varPower = varfunc_power(vf, v, strata, "power"),
                 varExp = varfunc_power(vf, v, strata, "expon"),
                 varConstPower = varfunc_constpower(vf, v, strata))
  list(component = comp, prior_weights = NULL, lines = NULL)
}

varfunc_covariate <- function(v, type, form) {
  if (!is.numeric(v))
    stop(type, "'s covariate in ", deparse(form), " must be numeric (got ", class(v)[1L], ")",
         call. = FALSE)
  v <- as.double(v)
  if (!all(is.finite(v)))
    stop(type, "'s covariate in ", deparse(form), " has non-finite values", call. = FALSE)
  v
}

# Components and varFixed multipliers -> the specification (NULL when nothing varies).
varfunc_assemble <- function(parts, combination = FALSE) {
  comps <- Filter(Negate(is.null), lapply(parts, `[[`, "component"))
  pw <- Filter(Negate(is.null), lapply(parts, `[[`, "prior_weights"))
  if (!length(comps) && !length(pw)) return(NULL)
  npar <- vapply(comps, `[[`, 1L, "npar")
  split_par <- function(par) {
    if (length(par) != sum(npar))
      stop(sprintf("the variance parameters must have length %d", sum(npar)), call. = FALSE)
    split(par, rep(seq_along(npar), npar))
  }
  list(components = unname(comps),
       term_of = which(!vapply(parts, function(p) is.null(p$component), NA)),  # each comp's term
       prior_weights = if (length(pw)) Reduce(`*`, pw),
       npar = sum(npar),
       natural = function(par) varfunc_natural(parts, split_par(par), combination),
       lines = function(par, digits = getOption("digits"))
         varfunc_lines(parts, split_par(par), combination, digits))
}

# nlme's coef(vf, unconstrained = FALSE): the estimated natural values, a varComb's prefixed.
varfunc_natural <- function(parts, pars, combination) {
  k <- 0L
  vals <- lapply(seq_along(parts), function(j) {
    comp <- parts[[j]]$component
    if (is.null(comp)) return(numeric(0))
    k <<- k + 1L
    comp$natural(pars[[k]])
  })
  if (combination) names(vals) <- names(parts)
  unlist(vals)
}

# nlme's print(summary(vf)): "Variance function:" and the structure, or a varComb's parts.
varfunc_lines <- function(parts, pars, combination, digits) {
  k <- 0L
  body <- lapply(parts, function(p) {
    if (!is.null(p$lines)) return(p$lines)
    if (is.null(p$component)) return(character())
    k <<- k + 1L
    p$component$lines(pars[[k]], digits)
  })
  if (!combination) {
    one <- unlist(body, use.names = FALSE)
    if (!length(one) || one[1L] == "Variance function:") return(one)
    return(c("Variance function:", one))
  }
  c("Combination of variance functions:", unlist(body, use.names = FALSE))
}

# A parameter vector printed as nlme prints it.
varfunc_print <- function(x, digits)
  sub(" +$", "", utils::capture.output(print(x, digits = digits)))

# ---- varFixed ----------------------------------------------------------------------------------

# Variance proportional to v > 0: the prior weights times 1 / v (nlme takes |v|; lmmc refuses
# v <= 0).
varfunc_fixed <- function(vf, v) {
  form <- attr(vf, "formula")
  if (any(v <= 0))
    stop("varFixed's covariate in ", deparse(form), " must be positive (", sum(v <= 0),
         " values are not): the variance is proportional to it", call. = FALSE)
  list(component = NULL, prior_weights = 1 / v,
       lines = c("Variance function:", " Structure: fixed weights",
                 paste(" Formula:", deparse(form))))
}

# ---- varIdent ----------------------------------------------------------------------------------

# delta per stratum.  nlme's choice of the reference: with starting values naming all but one
# free (not fixed) stratum, that one; else the first free stratum, the starting value (one) then
# shared by the other free strata.  Order: reference, free, fixed.
varfunc_ident <- function(vf, strata) {
  if (is.null(strata)) return(NULL)                   # constant variance
  lev <- levels(strata)
  value <- varfunc_values(vf)
  fixed <- varfunc_fixed_values(attr(vf, "fixed"), lev, "varIdent")
  if (any(!is.finite(fixed)))
    stop("varIdent's 'fixed' values must be positive and finite", call. = FALSE)
  free <- setdiff(lev, names(fixed))
  if (!length(free))
    stop("varIdent's 'fixed' cannot fix every stratum: one is the reference", call. = FALSE)
  unknown <- setdiff(names(value)[nzchar(names(value))], lev)
  if (length(unknown))
    stop("varIdent names strata not in the data: ", paste(unknown, collapse = ", "), call. = FALSE)
  named <- !is.null(names(value)) && length(value) == length(free) - 1L &&
    all(names(value) %in% free) && !anyDuplicated(names(value))
  if (named) {
    order <- c(setdiff(free, names(value)), names(value))
  } else {
    if (length(value) > 1L)
      stop("varIdent's 'value' must name all strata but the reference (", length(free) - 1L,
           " of ", paste(free, collapse = ", "), ")", call. = FALSE)
    order <- free
    value <- rep(if (length(value)) value else 0, length(free) - 1L)
  }
  if (any(!is.finite(value)))
    stop("varIdent's 'value' must be positive and finite", call. = FALSE)
  if (length(free) == 1L && all(fixed == 0)) return(NULL)   # every ratio fixed at 1
  strata_all <- c(order, names(fixed))
  par <- stats::setNames(c(unname(value), unname(fixed)), strata_all[-1L])
  is_fixed <- rep(c(FALSE, TRUE), c(length(value), length(fixed)))
  form <- attr(vf, "formula")
  natural <- function(par, all = FALSE) {
    if (all) stats::setNames(c(1, exp(unname(par))), strata_all)
    else stats::setNames(exp(unname(par)), strata_all[-1L])[!is_fixed]
  }
  varfunc_component("varIdent", par, is_fixed, strata_all, match(as.character(strata), strata_all),
                    NULL, form, natural, "Different standard deviations per stratum",
                    log_scale = rep(TRUE, length(par)))
}

# ---- varPower and varExp -----------------------------------------------------------------------

# One parameter per stratum (name `single` without strata): power (|v|^delta) or expon
# (exp(delta v)); starting value 0.
varfunc_power <- function(vf, v, strata, single) {
  type <- if (single == "power") "varPower" else "varExp"
  lev <- if (is.null(strata)) NULL else levels(strata)
  p <- varfunc_strata_par(varfunc_values(vf), attr(vf, "fixed"), lev, 0, type, single)
  if (all(p$fixed) && all(p$par == 0)) return(NULL)   # s = 1 (nlme: varIdent())
  if (type == "varPower") varfunc_zero_check(v, strata, p, type, power_ok = function(d) d == 0)
  form <- if (is.null(strata)) varfunc_covariate_form(vf) else attr(vf, "formula")
  natural <- function(par, all = FALSE)
    stats::setNames(unname(par), names(p$par))[all | !p$fixed]
  what <- if (type == "varPower") "Power of variance covariate" else
    "Exponential of variance covariate"
  if (!is.null(strata)) what <- paste0(what, ", different strata")
  varfunc_component(type, p$par, p$fixed, lev, if (!is.null(strata)) as.integer(strata), v,
                    form, natural, what)
}

# ---- varConstPower -----------------------------------------------------------------------------

# const c and power delta per stratum: par = (log c per stratum, delta per stratum); nlme's
# starting values c = 0.1, delta = 0.
varfunc_constpower <- function(vf, v, strata) {
  lev <- if (is.null(strata)) NULL else levels(strata)
  value <- unclass(vf)
  lc <- varfunc_strata_par(varfunc_values(value$const), attr(value$const, "fixed"), lev,
                           log(0.1), "varConstPower", "const")
  dl <- varfunc_strata_par(varfunc_values(value$power), attr(value$power, "fixed"), lev, 0,
                           "varConstPower", "power")
  if (all(lc$fixed, dl$fixed) && all(lc$par == 0, dl$par == 0)) return(NULL)  # nlme: varIdent()
  varfunc_zero_check(v, strata, dl, "varConstPower", power_ok = function(d) d >= 0)
  S <- length(lc$par)
  tags <- if (is.null(strata)) c("const", "power") else
    c(paste0("const.", lev), paste0("power.", lev))
  par <- stats::setNames(c(unname(lc$par), unname(dl$par)), tags)
  is_fixed <- c(lc$fixed, dl$fixed)
  natural <- function(par, all = FALSE) {
    const <- stats::setNames(exp(unname(par[seq_len(S)])), lev)
    power <- stats::setNames(unname(par[S + seq_len(S)]), lev)
    if (all) {
      if (is.null(strata)) return(c(const = unname(const), power = unname(power)))
      return(rbind(const = const, power = power))
    }
    vals <- list(const = const[!lc$fixed], power = power[!dl$fixed])
    vals <- lapply(vals, function(x) if (length(x) == 1L) unname(x) else x)
    unlist(vals[lengths(vals) > 0L])
  }
  what <- "Constant plus power of variance covariate"
  if (!is.null(strata)) what <- paste0(what, ", different strata")
  form <- if (is.null(strata)) varfunc_covariate_form(vf) else attr(vf, "formula")
  varfunc_component("varConstPower", par, is_fixed, lev,
                    if (!is.null(strata)) as.integer(strata), v, form, natural, what,
                    log_scale = rep(c(TRUE, FALSE), each = S))
}

# ---- shared pieces -----------------------------------------------------------------------------

# A component: what C reads (code .. v: stratum 0-based) and what the fit reports.
varfunc_component <- function(type, par, fixed, strata, stratum, v, form, natural, what,
                              log_scale = rep(FALSE, length(par))) {
  lines <- function(par, digits = getOption("digits"))
    c(paste0(" Structure: ", what), paste(" Formula:", deparse(form)), " Parameter estimates:",
      varfunc_print(natural(par, all = TRUE), digits))
  list(type = type, code = varfunc_codes[[type]], npar = length(par),
       nstrata = max(1L, length(strata)),
       stratum = if (!is.null(stratum)) as.integer(stratum) - 1L,
       v = v, par = unname(par), fixed = unname(fixed),
       lower = rep(-Inf, length(par)), upper = rep(Inf, length(par)),
       names = names(par), log_scale = log_scale, strata = strata, formula = form,
       natural = natural, lines = lines)
}

# The numbers of a varFunc's (or varConstPower element's) starting value, names kept.
varfunc_values <- function(x) {
  if (is.null(x)) return(numeric(0))
  out <- as.vector(unclass(x))
  names(out) <- names(x)
  out
}

# Fixed values named by strata in the data (nlme's rule), as a named numeric.
varfunc_fixed_values <- function(fixed, lev, type) {
  if (is.null(fixed)) return(stats::setNames(numeric(0), character(0)))
  if (is.null(names(fixed)))
    stop(type, "'s 'fixed' values must be named by stratum", call. = FALSE)
  bad <- setdiff(names(fixed), lev)
  if (length(bad))
    stop(type, "'s 'fixed' names strata not in the data: ", paste(bad, collapse = ", "),
         call. = FALSE)
  fixed <- unlist(fixed)
  stats::setNames(as.double(fixed), names(fixed))
}

# One parameter per stratum (or a single one named `single` when lev is NULL) from nlme's
# starting value (one shared value, or one per free stratum named by stratum; `default` without)
# and its fixed values (named by stratum).
varfunc_strata_par <- function(value, fixed, lev, default, type, single) {
  arg <- if (single %in% c("const", "power") && type == "varConstPower") single else "value"
  if (is.null(lev)) {
    if (length(value) > 1L || length(fixed) > 1L)
      stop(type, "'s '", arg, "' must be a single number without strata", call. = FALSE)
    is_fixed <- length(fixed) == 1L
    par <- if (is_fixed) unname(unlist(fixed)) else if (length(value)) unname(value) else default
    out <- list(par = stats::setNames(as.double(par), single), fixed = is_fixed)
  } else {
    fixed <- varfunc_fixed_values(fixed, lev, type)
    par <- stats::setNames(rep(default, length(lev)), lev)
    is_fixed <- lev %in% names(fixed)
    par[names(fixed)] <- fixed
    free <- lev[!is_fixed]
    if (length(value) == 1L) {
      par[free] <- value
    } else if (length(value)) {
      if (is.null(names(value)) || !setequal(names(value), free) || anyDuplicated(names(value)))
        stop(type, "'s '", arg, "' must be one number or one per stratum not fixed, named (",
             paste(free, collapse = ", "), ")", call. = FALSE)
      par[names(value)] <- value
    }
    out <- list(par = par, fixed = stats::setNames(is_fixed, lev))
  }
  if (any(!is.finite(out$par)))
    stop(type, "'s '", arg, "' ", if (arg == "const") "must be positive and finite" else
      "values must be finite", call. = FALSE)
  out
}

# A zero covariate makes |v|^delta 0 or infinite unless delta = 0: refuse zeros in strata whose
# (starting or fixed) power is not acceptable there.
varfunc_zero_check <- function(v, strata, p, type, power_ok) {
  zero <- v == 0
  if (!any(zero)) return(invisible())
  k <- if (is.null(strata)) rep(1L, length(v)) else as.integer(strata)
  ok <- power_ok(p$par[k]) & (p$fixed[k] | type == "varConstPower")
  bad <- zero & !ok
  if (any(bad))
    stop(type, "'s covariate is 0 at ", sum(bad), " rows, where |v|^power is 0 or infinite",
         if (type == "varPower") ": use varConstPower, or a covariate without zeros" else
           ": 'power' must not be negative there", call. = FALSE)
  invisible()
}

# The form without its groups (nlme prints this when the groups have one stratum).
varfunc_covariate_form <- function(vf) {
  form <- attr(vf, "formula")
  sides <- split_form(form, "variance")
  stats::as.formula(call("~", sides$covariate), env = environment(form))
}
