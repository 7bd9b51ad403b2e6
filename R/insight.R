## Methods that let the 'insight' package (and through it 'performance' and 'parameters') read an
## "lmm" fit as it reads an lme4 "lmerMod" fit. Registered lazily in NAMESPACE with
## S3method(insight::generic, lmm): nothing here runs unless insight is loaded, and lmmc does
## not depend on insight.
##
## insight answers most questions through S3 generics, so an "lmm" method is enough; where it
## decides by a fixed list of classes (is_model(), is_model_supported(), find_statistic()) no
## method can help, and the generics that would have consulted those lists (get_statistic,
## get_df, ...) get "lmm" methods that answer directly.

## ---- what kind of model -------------------------------------------------------------------------

## A linear mixed model: Gaussian response, identity link. insight::model_info() builds its
## description from stats::family() (family.lmm, R/methods-stats.R).

is_mixed_model.lmm <- function(x) length(x$reterms) > 0L

find_algorithm.lmm <- function(x, ...) {
  list(algorithm = if (x$REML) "REML" else "ML", optimizer = x$optinfo$optimizer)
}

find_statistic_lmm <- function(x) "t-statistic"

## ---- formulas and parameter names ------------------------------------------------------------

## conditional: response ~ fixed part; random: one formula ~ lhs | group per random term (a list
## when there are several), as insight gives for lmerMod (double-bar terms are already split).
find_formula.lmm <- function(x, verbose = TRUE, ...) {
  env <- environment(x$formula)
  random <- lapply(x$reterms, function(tm)
    stats::as.formula(call("~", call("|", tm$lhs, tm$gexpr)), env = env))
  if (length(random) == 1L) random <- random[[1L]]
  out <- list(conditional = formula.lmm(x, fixed.only = TRUE), random = random)
  if (!length(x$reterms)) out$random <- NULL
  structure(out, class = c("insight_formula", "list"))
}

## Fixed-effect names; random: column names of each grouping factor's conditional modes.
find_parameters.lmm <- function(x, effects = c("all", "fixed", "random"), flatten = FALSE, ...) {
  effects <- match.arg(effects)
  out <- list(conditional = names(x$beta))
  if (effects != "fixed") out$random <- lapply(unclass(ranef.lmm(x)), colnames)
  if (effects == "random") out <- out["random"]
  if (flatten) unique(unlist(out, use.names = FALSE)) else out
}

get_parameters.lmm <- function(x, effects = c("fixed", "random"), ...) {
  effects <- match.arg(effects)
  if (effects == "random") return(unclass(ranef.lmm(x)))
  data.frame(Parameter = names(x$beta), Estimate = unname(x$beta), stringsAsFactors = FALSE)
}

## ---- statistics and degrees of freedom ---------------------------------------------------------

## t = beta / SE(beta) of each fixed effect.
get_statistic.lmm <- function(x, ...) {
  se <- sqrt(diag(as.matrix(x$vcov_beta)))
  structure(data.frame(Parameter = names(x$beta), Statistic = unname(x$beta / se),
                       stringsAsFactors = FALSE),
            statistic = find_statistic_lmm(x))
}

## residual / analytical / wald: n minus all parameters (lme4's df.residual); model: the number of
## parameters (logLik's df); normal: Inf; satterthwaite / kenward: one df per fixed effect.
get_df.lmm <- function(x, type = "residual", verbose = TRUE, ...) {
  type <- match.arg(tolower(type), c("residual", "model", "analytical", "satterthwaite", "kenward",
                                      "kenward-roger", "kr", "normal", "wald"))
  switch(type,
         residual = , analytical = , wald = df.residual.lmm(x),
         model = lmm_npar(x),
         normal = Inf,
         satterthwaite = satterthwaite_df(x),
         kr_coef_df(x))
}

## Satterthwaite's df of each fixed effect (R/satterthwaite.R), named by coefficient.
satterthwaite_df <- function(x) {
  tab <- satterthwaite_coef_table(x)
  stats::setNames(tab[, "df"], rownames(tab))
}

## Kenward-Roger's df of each fixed effect: kr_ddf() on the rows of L = I_p (R/kenward-roger.R;
## x a fit or its kr_setup()).
kr_coef_df <- function(x) {
  kr <- kr_setup(x)
  stats::setNames(kr_ddf(kr, diag(length(kr$beta))), kr$names)
}

## ---- log-likelihood ---------------------------------------------------------------------------

## As insight does for lmerMod: the fit's own criterion unless REML or estimator is given.
get_loglikelihood.lmm <- function(x, estimator = NULL, REML = FALSE, check_response = FALSE,
                                  verbose = TRUE, ...) {
  if (is.null(estimator) && missing(REML)) REML <- x$REML
  if (identical(estimator, "REML")) REML <- TRUE
  ll <- logLik.lmm(x, REML = REML)
  class(ll) <- c("logLik", "lmm")
  ll
}

## ---- variance components (Nakagawa-Schielzeth, as insight computes them for lmerMod) -------------

## Variance parts of a linear mixed model on the response scale, with insight's definitions:
##   var.fixed     var(X beta)
##   var.random    sum over grouping factors g of mean_i x_gi' Sigma_g x_gi, where x_gi holds the
##                 columns of the fixed-effects X named like Sigma_g's rows (an intercept column
##                 is supplied when X has none); Sigma_g is the first covariance block of g
##   var.residual  = var.distribution = sigma^2;  var.dispersion = 0
##   var.intercept the random-intercept variances; var.slope the random-slope variances;
##   cor.slope_intercept / cor.slopes the corresponding correlations.
## When a variance parameter is on its boundary (|theta| < tolerance for a diagonal theta), the
## random-effect variance is not computed (NULL), with insight's warning.
get_variance.lmm <- function(x, component = c("all", "fixed", "random", "residual",
                                                "distribution", "dispersion", "intercept",
                                                "slope", "rho01", "rho00"),
                             verbose = TRUE, tolerance = 1e-05, ...) {
  component <- match.arg(component)
  vc <- VarCorr.lmm(x)
  want <- function(...) component %in% c("all", ...)
  singular <- check_singularity.lmm(x, tolerance = tolerance) &&
    !component %in% c("slope", "intercept")
  if (singular && verbose)
    warning("Can't compute random effect variances. Some variance components equal zero. ",
            "Your model may suffer from singularity (see `?lmmc::isSingular` and ",
            "`?performance::check_singularity`). Solution: Respecify random structure! ",
            "You may also decrease the `tolerance` level to enforce the calculation of random ",
            "effect variances.", call. = FALSE)
  if (verbose && !random_slopes_in_fixed(x))
    warning("Random slopes not present as fixed effects. This artificially inflates the ",
            "conditional random effect variances. Solution: Respecify fixed structure!",
            call. = FALSE)
  s2_e <- x$sigma^2
  out <- list(
    var.fixed = if (want("fixed")) fixed_variance(x),
    var.random = if (want("random") && !singular) random_variance(x, vc),
    var.residual = if (want("residual")) s2_e,
    var.distribution = if (want("distribution") && component != "residual") s2_e,
    var.dispersion = if (want("dispersion") && component != "residual") 0,
    var.intercept = if (want("intercept")) intercept_variances(vc),
    var.slope = if (want("slope")) slope_variances(vc),
    cor.slope_intercept = if (want("rho01")) slope_intercept_correlations(vc),
    cor.slopes = if (want("rho00")) slope_correlations(x, vc))
  out[!vapply(out, function(v) is.null(v) || !length(v), NA)]
}

## Random-slope variables all among the fixed-effect variables?
random_slopes_in_fixed <- function(x) {
  slopes <- unique(unlist(lapply(x$reterms, function(tm) all.vars(tm$lhs))))
  all(slopes %in% all.vars(stats::delete.response(x$fixed_terms)))
}

## sum_g mean_i x_gi' Sigma_g x_gi over the grouping factors g (by name; for a factor with several
## terms, the first term's block, as insight picks VarCorr blocks by the grouping-factor name).
random_variance <- function(x, vc) {
  rows <- mean_rows(x)                     # the observations (R/methods-aggregated.R)
  X <- rows$X
  if (!any(startsWith(colnames(X), "(Intercept)")))
    X <- cbind("(Intercept)" = 1, X)
  groups <- unique(vapply(x$reterms, `[[`, "", "name"))
  per_group <- vapply(groups, function(g) {
    Sigma <- unclass(vc[[g]])
    keep <- rownames(Sigma) %in% colnames(X)
    Sigma <- Sigma[keep, keep, drop = FALSE]
    Z <- X[, rownames(Sigma), drop = FALSE]
    rows_mean(rows, rowSums((Z %*% Sigma) * Z))
  }, 0)
  sum(per_group)
}

has_intercept <- function(V) startsWith(rownames(V)[1L], "(Intercept)")

## Variance of the random intercept of each block that has one, named by block.
intercept_variances <- function(vc) {
  blocks <- Filter(has_intercept, unclass(vc))
  if (!length(blocks)) return(NULL)
  vapply(blocks, function(V) V[1L, 1L], 0)
}

## Random-slope variances named "<group>.<slope>": the non-intercept diagonal of each block; a
## block without intercept contributes all of its diagonal (the group name without lme4's ".1"
## suffix for repeated grouping factors).
slope_variances <- function(vc) {
  blocks <- unclass(vc)
  group <- sub("\\.[0-9]+$", "", names(blocks))
  parts <- lapply(seq_along(blocks), function(k) {
    V <- blocks[[k]]
    d <- diag(V)
    names(d) <- rownames(V)
    if (has_intercept(V)) d <- d[-1L]
    if (length(d)) stats::setNames(unname(d), paste0(group[k], ".", names(d)))
  })
  out <- unlist(parts)
  if (is.null(out) || !length(out)) NULL else out
}

## Correlations of the random slopes with the random intercept in each block with both: named by
## group when the block has one slope, "<group>.<slope>" when it has several.
slope_intercept_correlations <- function(vc) {
  blocks <- Filter(function(V) has_intercept(V) && nrow(V) > 1L, unclass(vc))
  if (!length(blocks)) return(NULL)
  unlist(lapply(blocks, function(V) {
    r <- attr(V, "correlation")[-1L, 1L]
    if (length(r) == 1L) unname(r) else r
  }))
}

## Correlations among random slopes (intercept excluded), named "<group>.<slope1>-<slope2>"; as
## insight, only when there are at least two random-slope variables or a factor / poly() / I()
## slope.
slope_correlations <- function(x, vc) {
  slopes <- unique(unlist(lapply(x$reterms, function(tm) all.vars(tm$lhs))))
  cols <- unique(unlist(lapply(unclass(vc), rownames)))
  factor_slope <- any(vapply(x$frame[intersect(slopes, names(x$frame))], is.factor, NA))
  special <- length(slopes) && any(grepl(paste0("(I|poly)(.*)(", paste(slopes, collapse = "|"),
                                                ")"), cols))
  if (length(slopes) < 2L && !factor_slope && !special) return(NULL)
  parts <- lapply(unclass(vc), function(V) {
    R <- attr(V, "correlation")
    nm <- rownames(V)
    idx <- which(lower.tri(R), arr.ind = TRUE)                # row > column
    idx <- idx[order(idx[, "col"], idx[, "row"]), , drop = FALSE]
    idx <- idx[!nm[idx[, "col"]] %in% c("Intercept", "(Intercept)"), , drop = FALSE]
    if (!nrow(idx)) return(NULL)
    stats::setNames(R[idx], paste0(nm[idx[, "col"]], "-", nm[idx[, "row"]]))
  })
  out <- unlist(parts)
  if (is.null(out) || !length(out)) NULL else out
}
