# The user's entry: formula -> pieces (lmm_pieces) -> fit (lmm_fit) -> "lmm" object.

lmm <- function(formula, data = NULL, REML = TRUE, weights = NULL, offset = NULL, subset,
                na.action, contrasts = NULL, control = lmm_control(), start = NULL,
                correlation = NULL, variance = NULL) {
  mc <- match.call(expand.dots = FALSE)
  pc <- mc
  pc[[1L]] <- lmm_pieces                 # weights/offset/subset are evaluated in `data` there
  pc$start <- pc$correlation <- pc$variance <- NULL
  pieces <- eval(pc, parent.frame())
  residual <- residual_spec(correlation, variance, data, pieces)
  fit <- fit_checked(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset,
                     pieces$REML, as_lmm_control(control), start, residual)
  fit$call <- mc
  fit$formula <- pieces$formula
  fit$frame <- pieces$frame
  fit$fixed_terms <- pieces$fixed_terms
  fit
}
