# Refits of a fit from aggregated data (R/aggregate.R) with another formula or without some cells:
# the reduced models of ranova() and step(), pve()'s baseline, influence(groups = )'s deletions.
# (Re-estimation by ML or REML of the same model: R/methods-aggregated.R.)
#
# A submodel -- its grouping and factor variables among the fit's keys, its monomials among the
# fit's, the same response, weights and offsets -- needs no pass over the data: its cells are
# unions of the fit's cells, and its columns of G are factor parts times monomials the fit's
# pseudo-rows already carry, so on those pseudo-rows (the columns of its monomials picked out of
# V) sum_k w_k g_k g_k' is the submodel's A = G'WG exactly, as a new GROUP BY would give it.  The
# rows are the fit's: a variable dropped from the model does not bring back rows na.omit dropped
# for it (a data-frame fit's ranova() stops there: "number of rows in use has changed").
# Any other formula aggregates the source again: one more GROUP BY in the database, another pass
# over the chunks (a list of data frames, or a chunk function with a `reset`).

# The fit `fit` (or the lm_aggregated of a step) refitted with `formula`: an lmm_aggregated fit,
# or an lm_aggregated when no random term is left.
refit_aggregated <- function(fit, formula, REML = isTRUE(fit$REML), control = refit_control(fit)) {
  if (!has_bars(formula)) return(lm_aggregated(fit, formula))
  agg <- fit$aggregate
  spec0 <- fit$spec
  spec <- aggregate_spec(formula, agg$proto, spec0$weights, spec0$offset_arg, spec0$env)
  sub <- sub_moments(spec, spec0, agg)
  if (is.null(sub)) {                              # new sums: aggregate the source again
    out <- lmm_aggregated(formula, fit$source, REML, spec0$weights, spec0$offset_arg,
                          agg$contrasts, control, NULL, spec0$env)
  } else {
    spec$shift <- sub$shift
    out <- fit_aggregated(spec, agg$cm, sub$pr, REML, agg$contrasts, control, NULL, fit$source,
                          sub$unweighted)
    out$aggregate$proto <- agg$proto
  }
  out$call <- refit_call(fit$call, formula, REML)
  out
}

# The pseudo-rows of the submodel spec from those of the fit (spec0, agg): their cells, the
# columns of its monomials and the response, and the shifts of those columns; NULL when spec is
# not a submodel.
sub_moments <- function(spec, spec0, agg) {
  names0 <- vapply(spec0$monomials, monomial_name, "")
  k <- match(vapply(spec$monomials, monomial_name, ""), names0)
  nested <- !anyNA(k) && all(spec$keys %in% spec0$keys) &&
    identical(spec$response, spec0$response) && all(spec$numeric_vars %in% names(agg$cm$means))
  if (!nested) return(NULL)
  pr <- agg$pr
  cols <- c(k, ncol(pr$V))                         # the monomials, then y - offset (last)
  pu <- agg$unweighted
  list(pr = list(cell = pr$cell, V = pr$V[, cols, drop = FALSE], w = pr$w),
       shift = spec0$shift[cols],
       unweighted = if (!is.null(pu)) list(cell = pu$cell, V = pu$V[, k, drop = FALSE], w = pu$w))
}

# The fit's call with the refit's formula (and REML, unless the default).
refit_call <- function(call, formula, REML = NULL) {
  if (is.null(call)) return(NULL)
  call$formula <- formula
  if (!is.null(REML) && !(isTRUE(REML) && is.null(call$REML))) call$REML <- REML
  call
}

# ---- deletion refits -------------------------------------------------------------------------

# The fit without the cells where keep_cells is FALSE (influence(groups = )): its pseudo-rows of
# the other cells, the counts (n, observations per level, sum log w) of those, from theta0; the
# summary influence() keeps (as deletion_refit(), R/influence.R).
cell_deletion_refit <- function(model, keep_cells, theta0, control) {
  agg <- model$aggregate
  keep <- keep_cells[agg$pr$cell]                 # the pseudo-rows of the cells kept
  n_c <- agg$cm$n[keep_cells]
  first <- !duplicated(agg$pr$cell[keep])         # each kept cell's first pseudo-row
  reterms <- lapply(model$reterms, function(term) {
    term$group <- factor(term$group[keep])
    term$Xt <- term$Xt[keep, , drop = FALSE]
    term
  })
  nrows <- lapply(reterms, function(term)
    as.integer(tabulate_weighted(as.integer(term$group)[first], n_c, nlevels(term$group))))
  counts <- list(n = as.integer(sum(n_c)), nrows = nrows, sumlogw = sum(agg$cm$lw[keep_cells]))
  X <- drop_aliased(model$X[keep, , drop = FALSE], control$check.rankX)
  fit <- suppressWarnings(fit_checked(model$y[keep], X, reterms, model$weights[keep],
                                      model$offset[keep], model$REML, control, theta0, NULL,
                                      counts = counts))
  list(fixed = fit$beta, vc = vc_vector(fit), vcov = fit$vcov_beta,
       converged = isTRUE(fit$optinfo$converged) && !length(fit$optinfo$warnings),
       feval = fit$optinfo$feval)
}

# ---- a model with no random term left ---------------------------------------------------------

# Weighted least squares on the fit's pseudo-rows (those of the submodel's monomials): X'WX, X'Wy
# and the weighted residual sum of squares are the data's, so the coefficients, RSS, R of the QR
# (R'R = X'WX) and with the data's n and sum log w the likelihood (as logLik.lm) are the lm() of
# the rows.  It keeps the fit's aggregate, spec and source for further refits (step()).
lm_aggregated <- function(fit, formula) {
  agg <- fit$aggregate
  spec0 <- fit$spec
  spec <- aggregate_spec(formula, agg$proto, spec0$weights, spec0$offset_arg, spec0$env,
                         random = FALSE)
  sub <- sub_moments(spec, spec0, agg)
  if (is.null(sub))
    stop(sprintf(paste("the model without random terms '%s' is not a submodel of the fit: it",
                       "cannot be fitted from the fit's sums"), deparse2(formula)), call. = FALSE)
  frame <- pseudo_frame(spec, agg$cm, sub$pr)
  fixed <- fixed_design(spec$formula, frame, agg$contrasts)
  X <- times_monomials(fixed$X, fixed$terms, spec, sub$pr$V)
  y <- sub$pr$V[, ncol(sub$pr$V)]
  w <- sub$pr$w
  z <- stats::lm.wfit(X, y, w)
  n <- as.integer(sum(agg$cm$n))
  keep <- c("aggregate", "spec", "source", "control", "data_source", "counts")
  structure(c(list(coefficients = z$coefficients, rank = z$rank, qr = z$qr,
                   rss = sum(w * z$residuals^2), n = n, df.residual = n - z$rank,
                   sumlogw = agg$cm$sumlogw, X = X, y = y, w = w, terms = fixed$terms,
                   formula = spec$formula, call = refit_call(fit$call, spec$formula)),
              fit[keep]),
            class = "lm_aggregated")
}

# As logLik.lm: 0.5 (sum log w - N (log 2 pi + 1 - log N + log RSS)), N = n (ML) or n - p
# (REML, less log |R| of the QR of W^(1/2) X).
logLik.lm_aggregated <- function(object, REML = FALSE, ...) {
  p <- object$rank
  N <- object$n - if (REML) p else 0
  val <- 0.5 * (object$sumlogw - N * (log(2 * pi) + 1 - log(N) + log(object$rss)))
  if (REML) val <- val - sum(log(abs(diag(object$qr$qr)[seq_len(p)])))
  structure(val, nall = object$n, nobs = N, df = p + 1, class = "logLik")
}

nobs.lm_aggregated <- function(object, ...) object$n
formula.lm_aggregated <- function(x, ...) x$formula
terms.lm_aggregated <- function(x, ...) x$terms
coef.lm_aggregated <- function(object, ...) object$coefficients
deviance.lm_aggregated <- function(object, ...) object$rss

# drop1.lm's table: each marginal term's weighted least squares without it, AIC = n log(RSS/n)
# + k df, F = (Sum of Sq / Df) / (RSS / (n - p)).
drop1.lm_aggregated <- function(object, scope, scale = 0, test = c("none", "Chisq", "F"), k = 2,
                                ...) {
  test <- match.arg(test)
  if (test == "Chisq") stop("drop1() of a model from aggregated data: test = \"F\" or \"none\"",
                            call. = FALSE)
  tl <- attr(object$terms, "term.labels")
  if (missing(scope)) scope <- drop.scope(object$terms)
  if (!all(scope %in% tl)) stop("scope is not a subset of term labels", call. = FALSE)
  asgn <- attr(object$X, "assign")
  fits <- lapply(match(scope, tl), function(j) {
    z <- stats::lm.wfit(object$X[, asgn != j, drop = FALSE], object$y, object$w)
    c(z$rank, sum(object$w * z$residuals^2))
  })
  dfs <- c(object$rank, vapply(fits, `[`, 0, 1L))
  RSS <- c(object$rss, vapply(fits, `[`, 0, 2L))
  n <- object$n
  aod <- data.frame(Df = c(NA, dfs[1L] - dfs[-1L]), "Sum of Sq" = c(NA, RSS[-1L] - RSS[1L]),
                    RSS = RSS, AIC = n * log(RSS / n) + k * dfs, row.names = c("<none>", scope),
                    check.names = FALSE)
  if (test == "F") {
    Fs <- (aod[["Sum of Sq"]] / aod$Df) / (RSS[1L] / object$df.residual)
    Fs[!is.na(aod$Df) & aod$Df < 1e-4] <- NA
    aod[["F value"]] <- Fs
    aod[["Pr(>F)"]] <- stats::pf(Fs, aod$Df, object$df.residual, lower.tail = FALSE)
  }
  structure(aod, heading = c("Single term deletions", "\nModel:", deparse(formula(object))),
            class = c("anova", "data.frame"))
}

# sigma^2 (X'WX)^-1 = sigma^2 R^-1 R^-T from the QR's R (its pivoted columns; NA for aliased
# ones), sigma^2 = RSS / (n - p).
vcov.lm_aggregated <- function(object, ...) {
  b <- object$coefficients
  p <- object$rank
  piv <- object$qr$pivot[seq_len(p)]
  V <- matrix(NA_real_, length(b), length(b), dimnames = list(names(b), names(b)))
  V[piv, piv] <- chol2inv(object$qr$qr[seq_len(p), seq_len(p), drop = FALSE]) *
    object$rss / object$df.residual
  V
}

sigma.lm_aggregated <- function(object, ...) sqrt(object$rss / object$df.residual)

# summary.lm's coefficient table: estimates, standard errors, t values on n - p df.
summary.lm_aggregated <- function(object, ...) {
  b <- object$coefficients
  se <- sqrt(diag(vcov(object)))
  t <- b / se
  coefs <- cbind(Estimate = b, "Std. Error" = se, "t value" = t,
                 "Pr(>|t|)" = 2 * stats::pt(abs(t), object$df.residual, lower.tail = FALSE))
  structure(list(coefficients = coefs, sigma = sigma(object), df = object$df.residual,
                 formula = object$formula, data_source = object$data_source),
            class = "summary.lm_aggregated")
}

print.summary.lm_aggregated <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Linear model (no random terms) from aggregated data\nFormula: ", deparse2(x$formula),
      "\nData: ", x$data_source, " (aggregated)\n\nCoefficients:\n", sep = "")
  stats::printCoefmat(x$coefficients, digits = digits, ...)
  cat(sprintf("\nResidual standard error: %s on %d degrees of freedom\n",
              format(signif(x$sigma, digits)), x$df))
  invisible(x)
}

print.lm_aggregated <- function(x, ...) {
  cat("Linear model (no random terms) from aggregated data\nFormula: ", deparse2(x$formula),
      "\nData: ", x$data_source, " (aggregated)\n\nCoefficients:\n", sep = "")
  print(x$coefficients, ...)
  invisible(x)
}
