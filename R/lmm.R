# The user's entry: formula -> pieces (lmm_pieces) -> fit (lmm_fit) -> "lmm" object.

lmm <- function(formula, data = NULL, REML = TRUE, weights = NULL, offset = NULL, subset,
                na.action, contrasts = NULL, control = lmm_control(), start = NULL,
                correlation = NULL, variance = NULL, verbose = 0L) {
  mc <- match.call(expand.dots = FALSE)
  src <- as_aggregate_source(data)            # a database table or chunks (R/aggregate.R)
  if (!is.null(src)) {
    check_aggregate_args(mc, correlation, variance)
    fit <- lmm_aggregated(formula, src, REML, mc$weights, mc$offset, contrasts,
                          with_verbose(as_lmm_control(control), verbose), start, parent.frame())
    fit$call <- mc
    return(fit)
  }
  pc <- mc
  pc[[1L]] <- lmm_pieces                 # weights/offset/subset are evaluated in `data` there
  pc$start <- pc$correlation <- pc$variance <- pc$verbose <- NULL
  # with a residual structure and no random term: nlme::gls's model
  pc$random <- is.null(correlation) && is.null(variance)
  pieces <- eval(pc, parent.frame())
  control <- with_verbose(as_lmm_control(control), verbose)
  fit <- if (variance_uses_fitted(variance)) {            # nlme's ~ fitted(.) (R/residual.R)
    fit_fitted_variance(pieces, correlation, variance, data, control, start)
  } else {
    residual <- residual_spec(correlation, variance, data, pieces)
    if (!is.null(residual$prior_weights))            # varFixed: variance proportional to v
      pieces$weights <- pieces$weights * residual$prior_weights
    if (is.null(residual$engine)) residual <- NULL
    fit_checked(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset,
                pieces$REML, control, start, residual)
  }
  fit$call <- mc
  # the call shows the formula with `||` expanded, as lme4's
  if (inherits(formula, "formula") && "||" %in% all.names(formula))
    fit$call$formula <- pieces$formula
  fit$formula <- pieces$formula
  fit$frame <- pieces$frame
  fit$fixed_terms <- pieces$fixed_terms
  fit
}
