# Methods of fits made from aggregated data (R/aggregate.R: a database table or chunks).  The
# fit holds the data's cross-products, not its rows: everything computed from A, the estimates and
# their covariance works as for any fit (fixef, ranef, VarCorr, vcov, summary, anova, profiles
# and intervals, logLik, predict with newdata, emmeans; R^2 and ICC from mean_rows() below).
# Refits with other formulas (ranova, step, pve's baseline) or without some cells
# (influence(groups = )) need other sums, not rows: R/refit-aggregated.R fits them from the fit's
# own pseudo-rows, or aggregates the source again; re-estimation by ML or REML (anova, drop1,
# profiles) is below.  Every refit uses the fit's control (refit_control(), R/control.R).  What
# needs the observations themselves says so (db_augment() computes fitted values and residuals
# in the database; refit(newresp =), simulate and the bootstrap need a response per row).

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

# influence(groups = ) deletes the rows of each level of `groups`, variables of the cells' keys:
# whole cells, so each refit is the fit's pseudo-rows without those cells
# (R/refit-aggregated.R).  Deleting single cases, and the hat values, need the rows.
influence.lmm_aggregated <- function(model, groups, data, maxfun = 1000, do.coef = TRUE,
                                     start = NULL, ...) {
  if (missing(groups) || !isTRUE(do.coef))
    stop_needs_rows("influence() by case deletion (and the hat values)")
  if (!missing(data)) warning("'data' is not used: the groups are the table's", call. = FALSE)
  keys <- model$aggregate$cm$keys
  if (!is.character(groups) || !length(groups) || !all(groups %in% names(keys)))
    stop(sprintf(paste("'groups' must name grouping or factor variables of the model (the",
                       "columns whose values make the cells): %s"),
                 paste(names(keys), collapse = ", ")), call. = FALSE)
  lab <- if (length(groups) == 1L) keys[[groups]] else do.call(paste, c(keys[groups], sep = "."))
  levels <- unique(lab)                         # in the cells' order: sorted
  theta0 <- if (is.null(start)) model$theta else if (is.list(start)) start$theta else start
  control <- refit_control(model, maxeval = maxfun, check.conv.singular = "ignore",
                           check.rankX = "silent.drop.cols", check.scaleX = "ignore")
  fits <- lapply(levels, function(lev)
    cell_deletion_refit(model, lab != lev, theta0, control))
  influence_result(model, fits, list(levels = levels, name = paste(groups, collapse = ".")))
}
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

# The aggregated fit re-estimated by ML or REML (anova()'s and drop1()'s ML refits, profiles,
# Kenward-Roger's REML refit): the engine on its pseudo-rows with the data's counts, started from
# its theta, with its control.
refit_estimation_aggregated <- function(fit, REML) {
  ctrl <- refit_control(fit, check.conv.singular = "ignore", check.scaleX = "ignore",
                        check.rankX = "ignore")
  out <- fit_checked(fit$y, fit$X, fit$reterms, fit$weights, fit$offset, REML = REML,
                     control = ctrl, start = fit$theta, residual = NULL, counts = fit$counts)
  keep <- setdiff(names(fit), names(out))
  out[keep] <- fit[keep]
  out$fitted <- NULL
  if (!is.null(out$call)) out$call$REML <- REML
  class(out) <- class(fit)
  out
}

refit_ml_aggregated <- function(fit) refit_estimation_aggregated(fit, REML = FALSE)

# lme4's getME: the row-level pieces are the data's, which the fit does not hold.
getME.lmm_aggregated <- function(object, name, ...) {
  rows <- c("X", "Z", "Zt", "y", "mu", "offset", "weights", "Ztlist", "ALL")
  if (!missing(name) && any(as.character(name) %in% rows))
    stop_needs_rows(sprintf("getME(fit, \"%s\")", paste(intersect(name, rows), collapse = "\", \"")))
  NextMethod()
}

# var(X beta) over the observations (R^2, ICC), with divisor n - 1.
fixed_variance <- function(fit) {
  if (!inherits(fit, "lmm_aggregated")) return(stats::var(drop(fit$X %*% fit$beta)))
  rows <- mean_rows(fit)
  eta <- drop(rows$X %*% fit$beta)
  m <- rows_mean(rows, eta)
  rows_mean(rows, (eta - m)^2) * fit$n / (fit$n - 1)
}

# The rows that means over the observations (R^2, ICC: of the linear predictor and of each
# term's z_i' Sigma z_i, quadratic forms of a row's monomials m_i = [1, v_i]) are taken over:
# list(X, Xt = each term's rows, w), mean_i f(row i) = sum_k w_k f(row k) / sum_k w_k.  A fit
# from rows: its rows, w = 1.  From aggregated data the pseudo-rows carry the data's weighted
# moments, sum_k w_k m_k m_k' = sum_i w_i m_i m_i' per cell, so for unweighted data (w_i = 1)
# they are the rows; with prior weights the pseudo-rows of the cells' unweighted moments (summed
# in the same GROUP BY: R/database.R), X and Z there being the cells' factor parts times those
# rows' monomials.
mean_rows <- function(fit) {
  Xt <- lapply(fit$reterms, `[[`, "Xt")
  if (!inherits(fit, "lmm_aggregated")) return(list(X = fit$X, Xt = Xt, w = rep(1, NROW(fit$X))))
  if (is.null(fit$spec$weights)) return(list(X = fit$X, Xt = Xt, w = fit$weights))
  pu <- fit$aggregate$unweighted
  X <- cell_rows(fit$cells$fixed, pu)[, colnames(fit$X), drop = FALSE]
  list(X = X, Xt = lapply(fit$cells$terms, cell_rows, pu = pu), w = pu$w)
}

# A model matrix on the pseudo-rows pu: the cells' factor parts (parts$F, a row per cell) times
# the monomial of each column (parts$mono, 0: the constant).
cell_rows <- function(parts, pu) {
  V1 <- cbind(1, pu$V)
  M <- parts$F[pu$cell, , drop = FALSE] * V1[, parts$mono + 1L, drop = FALSE]
  colnames(M) <- parts$names
  M
}

rows_mean <- function(rows, v) sum(rows$w * v) / sum(rows$w)
