## Methods for the 'performance' package's generics (registered lazily in NAMESPACE with
## S3method(performance::generic, lmm)). Variance-based indices (icc, r2) come through
## insight::get_variance() (R/insight.R); the numbers follow performance's lmerMod methods.

## Singular fit: a variance parameter on its boundary, |theta_k| < tolerance for some theta_k with
## lower bound 0 (performance's definition for merMod; lmmc::isSingular() uses tol = 1e-4).
check_singularity.lmm <- function(x, tolerance = 1e-05, ...) {
  any(abs(x$theta[x$lower == 0]) < tolerance)
}

## Nakagawa-Schielzeth marginal and conditional R^2 (performance::r2_nakagawa).
r2.lmm <- function(model, ci = NULL, tolerance = 1e-05, ...) {
  performance::r2_nakagawa(model, ci = ci, tolerance = tolerance, ...)
}

## AIC and AICc from the log-likelihood chosen by `estimator` ("REML" by default, as for lmerMod:
## the REML criterion for a REML fit).
performance_aic.lmm <- function(x, estimator = "REML", verbose = TRUE, ...) {
  stats::AIC(estimator_loglik(x, estimator, ...))
}

##   AICc = -2 logL + 2 k n / (n - k - 1)
performance_aicc.lmm <- function(x, estimator = "REML", ...) {
  ll <- estimator_loglik(x, estimator, ...)
  k <- attr(ll, "df")
  n <- x$n
  -2 * as.numeric(ll) + 2 * k * n / (n - k - 1)
}

##   BIC = -2 logL + log(n) k
performance_bic_lmm <- function(x, estimator = "REML", ...) {
  ll <- estimator_loglik(x, estimator, ...)
  -2 * as.numeric(ll) + log(x$n) * attr(ll, "df")
}

## REML log-likelihood if estimator = "REML" (unless REML = FALSE is passed), ML otherwise.
estimator_loglik <- function(x, estimator, ...) {
  REML <- identical(estimator, "REML")
  if (isFALSE(list(...)$REML)) REML <- FALSE
  logLik.lmm(x, REML = REML)
}

## Indices of model performance, as performance::model_performance() gives for lmerMod: AIC, AICc,
## BIC, R2_conditional, R2_marginal, ICC (adjusted), RMSE, Sigma.
model_performance.lmm <- function(model, metrics = "all", estimator = "REML", verbose = TRUE,
                                  ...) {
  all_metrics <- c("AIC", "AICc", "BIC", "R2", "ICC", "RMSE", "SIGMA")
  metrics <- performance_metrics(metrics, all_metrics)
  out <- list()
  if ("AIC" %in% metrics) out$AIC <- performance_aic.lmm(model, estimator = estimator)
  if ("AICC" %in% metrics) out$AICc <- performance_aicc.lmm(model, estimator = estimator)
  if ("BIC" %in% metrics) out$BIC <- performance_bic_lmm(model, estimator = estimator)
  if ("R2" %in% metrics) {
    rsq <- suppressWarnings(r2.lmm(model))
    if (!all(is.na(rsq))) out <- c(out, rsq)
  }
  if ("ICC" %in% metrics) {
    icc_mm <- suppressWarnings(performance::icc(model))
    if (!all(is.na(icc_mm))) out$ICC <- icc_mm$ICC_adjusted
  }
  if ("RMSE" %in% metrics) out$RMSE <- lmm_rmse(model)
  if ("SIGMA" %in% metrics) out$Sigma <- model$sigma
  out <- as.data.frame(out)
  row.names(out) <- NULL
  class(out) <- c("performance_model", class(out))
  out
}

## "all", "common" or a subset of the supported metric names (case-insensitive), upper-cased.
performance_metrics <- function(metrics, all_metrics) {
  if (all(metrics == "all")) return(toupper(all_metrics))
  if (all(metrics == "common")) return(c("AIC", "BIC", "R2", "ICC", "RMSE"))
  bad <- setdiff(toupper(metrics), toupper(all_metrics))
  if (length(bad))
    stop("metric(s) not available for \"lmm\" fits: ", paste(bad, collapse = ", "),
         call. = FALSE)
  toupper(metrics)
}

# sqrt(mean(residual^2)); for a fit from aggregated data (no rows in R) the unweighted one is
# sqrt(wrss / n) from the cross-products, a weighted one is not available (NA).
lmm_rmse <- function(model) {
  if (!inherits(model, "lmm_aggregated"))
    return(sqrt(mean(residuals.lmm(model)^2, na.rm = TRUE)))
  if (!is.null(model$spec$weights)) return(NA_real_)
  sqrt(model$devcomp$wrss / model$n)
}
