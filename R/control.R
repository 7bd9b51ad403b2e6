# Control settings for lmm(): optimiser settings and the checks applied to
# the model pieces (same names and meanings as lme4's lmerControl()).

# Optimisers implemented by the C engine: "quasi-newton" (src/quasi_newton.c, with the analytic
# gradient; models without a residual structure) and "bobyqa" (src/optimise.c, derivative-free).
lmm_optimizers <- c("quasi-newton", "bobyqa")

# Backends evaluating the criterion (R/iterative.R): the exact factor, the iterative solver, or
# chosen by the exact factor's predicted memory.
lmm_backends <- c("auto", "direct", "iterative")

# Allowed actions of each check.
check_actions <- list(
  check.nobs.vs.nlev  = c("ignore", "warning", "message", "stop"),
  check.nlev.gtr.1    = c("ignore", "warning", "message", "stop"),
  check.nlev.gtreq.5  = c("ignore", "warning", "message", "stop"),
  check.nobs.vs.nRE   = c("ignore", "warning", "message", "stop"),
  check.scaleX        = c("ignore", "warning", "message", "stop"),
  check.rankX         = c("message+drop.cols", "silent.drop.cols", "warn+drop.cols",
                          "stop.deficient", "ignore"),
  check.conv.singular = c("ignore", "message", "warning", "stop")
)

# lmm_control() with every default, made once (at the end of this file): lmm(), lmm_pieces()
# and lmm_fit() take it as their default argument on every call (unless
# options(lmm.control) supplies other defaults).
default_control <- NULL

lmm_control <- function(optimizer = "quasi-newton", rhobeg = NULL, rhoend = NULL,
                        maxeval = 10000L, ftol_abs = 1e-8, xtol_abs = 1e-8, gtol = 1e-10,
                        start_method = "moments", check.nobs.vs.nlev = "stop", check.nlev.gtr.1 = "stop",
                        check.nobs.vs.nRE = "stop", check.scaleX = "warning",
                        check.rankX = "message+drop.cols",
                        check.conv.singular = "message", calc.derivs = FALSE,
                        check.nlev.gtreq.5 = "ignore", memory_limit = NULL,
                        backend = "auto", probes = 30L, iter_tol = 1e-10, probe_seed = 1L,
                        exact_levels = 200L) {
  opts <- getOption("lmm.control")
  if (!nargs() && is.null(opts) && !is.null(default_control)) return(default_control)
  if (!is.null(opts)) {      # user defaults: every setting not given in this call
    given <- names(match.call())[-1L]
    for (nm in option_settings(opts, names(formals(sys.function()))))
      if (!(nm %in% given)) assign(nm, opts[[nm]])
  }
  optimizer <- match_choice(optimizer, lmm_optimizers, "optimizer")
  ctrl <- list(
    optimizer = optimizer,
    rhobeg = positive_or_null(rhobeg, "rhobeg"),
    rhoend = positive_or_null(rhoend, "rhoend"),
    maxeval = positive_count(maxeval, "maxeval"),
    ftol_abs = nonneg_number(ftol_abs, "ftol_abs"),
    xtol_abs = nonneg_number(xtol_abs, "xtol_abs"),
    gtol = nonneg_number(gtol, "gtol"),
    start_method = match_choice(start_method, c("moments", "ones"), "start_method"),
    check.nobs.vs.nlev = match_choice(check.nobs.vs.nlev, check_actions$check.nobs.vs.nlev,
                                      "check.nobs.vs.nlev"),
    check.nlev.gtr.1 = match_choice(check.nlev.gtr.1, check_actions$check.nlev.gtr.1,
                                    "check.nlev.gtr.1"),
    check.nlev.gtreq.5 = match_choice(check.nlev.gtreq.5, check_actions$check.nlev.gtreq.5,
                                      "check.nlev.gtreq.5"),
    check.nobs.vs.nRE = match_choice(check.nobs.vs.nRE, check_actions$check.nobs.vs.nRE,
                                     "check.nobs.vs.nRE"),
    check.scaleX = match_choice(check.scaleX, check_actions$check.scaleX, "check.scaleX"),
    check.rankX = match_choice(check.rankX, check_actions$check.rankX, "check.rankX"),
    check.conv.singular = match_choice(check.conv.singular,
                                       check_actions$check.conv.singular,
                                       "check.conv.singular"),
    calc.derivs = single_flag(calc.derivs, "calc.derivs"),
    memory_limit = memory_limit_bytes(memory_limit),
    # the backend (R/iterative.R): the exact Cholesky factor or the iterative solver
    backend = match_choice(backend, lmm_backends, "backend"),
    probes = positive_count(probes, "probes"),
    iter_tol = nonneg_number(iter_tol, "iter_tol"),
    probe_seed = positive_count(probe_seed, "probe_seed"),
    exact_levels = as.integer(nonneg_number(exact_levels, "exact_levels"))
  )
  if (ctrl$probes < 2L) stop("'probes' must be at least 2 (the Monte Carlo error needs two)",
                             call. = FALSE)
  if (!(ctrl$iter_tol > 0 && ctrl$iter_tol < 1e-3))
    stop("'iter_tol' must be in (0, 1e-3)", call. = FALSE)
  if (!is.null(ctrl$rhobeg) && !is.null(ctrl$rhoend) && ctrl$rhoend > ctrl$rhobeg)
    stop("'rhoend' (", ctrl$rhoend, ") must not exceed 'rhobeg' (", ctrl$rhobeg, ")",
         call. = FALSE)
  structure(ctrl, class = "lmm_control")
}

# Names of the settings in getOption("lmm.control") (a list or an lmm_control() value) that
# are arguments of lmm_control() (`known`); other names are ignored with a warning, as lme4
# does for options("lmerControl").
option_settings <- function(opts, known) {
  if (!is.list(opts) || (length(opts) && is.null(names(opts))))
    stop("getOption(\"lmm.control\") must be a named list or made by lmm_control()",
         call. = FALSE)
  nms <- names(opts)
  ignored <- setdiff(nms, known)
  if (length(ignored))
    warning("some options in getOption(\"lmm.control\") ignored: ",
            paste(ignored, collapse = ", "), call. = FALSE)
  intersect(nms, known)
}

# The value when it is one of `choices`, else an error listing them.
match_choice <- function(x, choices, what) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !(x %in% choices))
    stop("'", what, "' must be one of ", paste0("\"", choices, "\"", collapse = ", "),
         call. = FALSE)
  x
}

positive_or_null <- function(x, what) {
  if (is.null(x)) return(NULL)
  if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x <= 0)
    stop("'", what, "' must be NULL or a single positive number", call. = FALSE)
  as.numeric(x)
}

# A whole number in 1 .. .Machine$integer.max (it goes to C as an int).
positive_count <- function(x, what) {
  if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x < 1 || x != round(x))
    stop("'", what, "' must be a single positive whole number", call. = FALSE)
  if (x > .Machine$integer.max)
    stop("'", what, "' must be at most ", .Machine$integer.max, " (got ", format(x), ")",
         call. = FALSE)
  as.integer(x)
}

nonneg_number <- function(x, what) {
  if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x < 0)
    stop("'", what, "' must be a single non-negative number", call. = FALSE)
  as.numeric(x)
}

single_flag <- function(x, what) {
  if (!is.logical(x) || length(x) != 1L || is.na(x))
    stop("'", what, "' must be TRUE or FALSE", call. = FALSE)
  x
}

# Carry out a check's action with message `msg`: nothing, message, warning or error.
check_action <- function(action, msg) {
  switch(action,
         ignore = invisible(NULL),
         message = message(msg),
         warning = warning(msg, call. = FALSE),
         stop = stop(msg, call. = FALSE))
}

# memory_limit: the bytes the exact factor may take (a positive number, Inf: no limit), or NULL:
# no limit for backend = "direct", 2 GiB before "auto" turns to the iterative backend.
memory_limit_bytes <- function(x) {
  if (is.null(x)) return(NULL)
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x <= 0)
    stop("'memory_limit' must be a positive number of bytes (Inf: no limit) or NULL", call. = FALSE)
  as.double(x)
}

# The control of a refit of `fit` (an ML refit for anova(), a deletion refit, a bootstrap
# replicate, ...): the fit's own settings -- backend, memory_limit, probes, optimiser and its
# tolerances -- or lmm_control()'s defaults for a fit that does not carry them, with the
# settings in `...` (checks a refit of an already checked design silences) replaced, and no
# trace.
refit_control <- function(fit, ...) {
  ctrl <- fit$control
  if (is.null(ctrl)) return(lmm_control(...))
  keep <- unclass(ctrl)[intersect(names(ctrl), names(formals(lmm_control)))]
  set <- list(...)
  keep[names(set)] <- set
  do.call(lmm_control, keep)
}

default_control <- lmm_control()
