# Methods of fits made from aggregated data (R/aggregate.R: a database table or chunks).  The
# fit holds the data's cross-products, not its rows: everything computed from A, the estimates and
# their covariance works as for any fit (fixef, ranef, VarCorr, vcov, summary, anova, profiles
# and intervals, logLik, predict with newdata, emmeans); what needs the observations says so
# (db_augment() computes fitted values and residuals in the database).

stop_needs_rows <- function(what) {
  stop(sprintf(paste("%s needs the rows: the fit was made from aggregated data (a database",
                     "table or chunks), and R holds only their cross-products; db_augment(fit)",
                     "computes fitted values and residuals in the database, and",
                     "predict(fit, newdata = <data frame>) predicts for rows you read"), what),
       call. = FALSE)
}

residuals.lmm_aggregated <- function(object, ...) stop_needs_rows("residuals()")
fitted.lmm_aggregated <- function(object, ...) stop_needs_rows("fitted()")
model.frame.lmm_aggregated <- function(formula, ...) stop_needs_rows("model.frame()")
model.matrix.lmm_aggregated <- function(object, ...) stop_needs_rows("model.matrix()")
weights.lmm_aggregated <- function(object, ...) stop_needs_rows("weights()")
simulate.lmm_aggregated <- function(object, ...) stop_needs_rows("simulate()")
plot.lmm_aggregated <- function(x, ...) stop_needs_rows("plot()")
qqnorm.lmm_aggregated <- function(y, ...) stop_needs_rows("qqnorm()")
hatvalues.lmm_aggregated <- function(model, ...) stop_needs_rows("hatvalues()")
rstandard.lmm_aggregated <- function(model, ...) stop_needs_rows("rstandard()")
rstudent.lmm_aggregated <- function(model, ...) stop_needs_rows("rstudent()")
cooks.distance.lmm_aggregated <- function(model, ...) stop_needs_rows("cooks.distance()")
influence.lmm_aggregated <- function(model, ...) stop_needs_rows("influence()")
augment.lmm_aggregated <- function(x, ...) stop_needs_rows("augment()")
refit.lmm_aggregated <- function(object, newresp = NULL, ...) stop_needs_rows("refit()")
as_lmerMod_aggregated <- function(fit) stop_needs_rows("as_lmerMod()")

predict.lmm_aggregated <- function(object, newdata = NULL, ...) {
  if (is.null(newdata)) stop_needs_rows("predict() without 'newdata'")
  NextMethod()
}

# Profile and Wald intervals; the bootstrap simulates new responses for the rows.
confint.lmm_aggregated <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"),
                                   ...) {
  method <- match.arg(method)
  if (method == "boot") stop_needs_rows("confint(method = \"boot\")")
  NextMethod(method = method)
}

# The summary without the scaled residuals' quantiles.
summary.lmm_aggregated <- function(object, ...) {
  plain <- object
  plain$fitted <- plain$y                    # residuals of 0, left out of the print below
  class(plain) <- setdiff(class(object), "lmm_aggregated")
  s <- summary(plain, ...)
  s$residuals <- NULL
  s$data_source <- object$data_source
  class(s) <- c("summary.lmm_aggregated", class(s))
  s
}

print.summary.lmm_aggregated <- function(x, ...) {
  NextMethod(show.resids = FALSE)
  cat("Data: ", x$data_source, " (aggregated: no residuals)\n", sep = "")
  invisible(x)
}

print.lmm_aggregated <- function(x, ...) {
  NextMethod()
  cat("Data: ", x$data_source, " (aggregated)\n", sep = "")
  invisible(x)
}

# Likelihood-ratio tests of aggregated fits of the same table, REML fits refitted by ML from
# their pseudo-rows (as lme4 refits); the F tests of one model as for any fit.
anova.lmm_aggregated <- function(object, ..., refit = TRUE) {
  dots <- list(...)
  is_model <- vapply(dots, inherits, NA, "lmm")
  if (!any(is_model)) return(NextMethod())
  models <- c(list(object), dots[is_model])
  if (!all(vapply(models, inherits, NA, "lmm_aggregated")))
    stop("anova() compares fits from aggregated data only with each other", call. = FALSE)
  reml <- vapply(models, `[[`, NA, "REML")
  if (refit && any(reml)) {
    message("refitting model(s) with ML (instead of REML)")
    models[reml] <- lapply(models[reml], refit_ml_aggregated)
  }
  mcall <- match.call(expand.dots = TRUE)
  names_m <- vapply(as.list(mcall)[1L + seq_along(models)], deparse1, "")
  models <- lapply(models, function(m) {                # same data: same n (checked there)
    m$y <- m$n
    class(m) <- "lmm"
    m
  })
  anova_lrt(models, names_m, refit = FALSE)
}

# The ML fit of an aggregated REML fit: the engine on its pseudo-rows with the data's counts,
# started from the REML theta.
refit_ml_aggregated <- function(fit) {
  ctrl <- refit_control(fit, check.conv.singular = "ignore", check.scaleX = "ignore",
                      check.rankX = "ignore")
  ml <- fit_checked(fit$y, fit$X, fit$reterms, fit$weights, fit$offset, REML = FALSE,
                    control = ctrl, start = fit$theta, residual = NULL, counts = fit$counts)
  keep <- setdiff(names(fit), names(ml))
  ml[keep] <- fit[keep]
  ml$fitted <- NULL
  class(ml) <- class(fit)
  ml
}

# lme4's getME: the row-level pieces are the data's, which the fit does not hold.
getME.lmm_aggregated <- function(object, name, ...) {
  rows <- c("X", "Z", "Zt", "y", "mu", "offset", "weights", "Ztlist", "ALL")
  if (!missing(name) && any(as.character(name) %in% rows))
    stop_needs_rows(sprintf("getME(fit, \"%s\")", paste(intersect(name, rows), collapse = "\", \"")))
  NextMethod()
}

# var(X beta) over the observations (R^2, ICC).  From aggregated data the pseudo-rows carry the
# data's weighted moments, sum_k w_k (x_k'beta)^j = sum_i w_i (x_i'beta)^j for j = 0, 1, 2, so
# for unweighted data (w_i = 1) the variance is the pseudo-rows' weighted one with divisor n - 1;
# for weighted data the unweighted variance is not in the moments (NA).
fixed_variance <- function(fit) {
  eta <- drop(fit$X %*% fit$beta)
  if (!inherits(fit, "lmm_aggregated")) return(stats::var(eta))
  m <- row_mean(fit, eta)
  row_mean(fit, (eta - m)^2) * fit$n / (fit$n - 1)
}

# The mean over the observations of v, a value per row that is a quadratic (or lower) form of
# the row's monomials: mean(v), or from aggregated unweighted data sum_k w_k v_k / n.
row_mean <- function(fit, v) {
  if (!inherits(fit, "lmm_aggregated")) return(mean(v))
  if (!is.null(fit$spec$weights)) return(NA_real_)
  sum(fit$weights * v) / fit$n
}
