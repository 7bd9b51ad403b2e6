## Variance decomposition of a fitted "lmm": intraclass correlations (icc), Nakagawa-Schielzeth R^2
## (r2) and the proportional reduction in variance components against a baseline (pve).
##
## Response-scale variance parts (Nakagawa & Schielzeth 2013; Johnson 2014 for random slopes):
##   fixed      s2_f = var(X beta)                        variance of the fixed-effect predictions
##   random     s2_t = mean_i z_ti' Sigma_t z_ti           for term t with model-matrix rows z_ti
##                                                        (= tau^2_t for a random intercept)
##   residual   s2_e = sigma^2
## A grouping factor's variance is the sum of s2_t over its terms.

## ---- variance parts ---------------------------------------------------------------------------

## Johnson's mean random-effects variance of each term: mean(diag(Z_t Sigma_t Z_t')).
term_variances <- function(fit) {
  vc <- VarCorr(fit)
  vapply(seq_along(fit$reterms), function(t) {
    Z_t <- fit$reterms[[t]]$Xt
    Sigma_t <- unclass(vc[[t]])
    attributes(Sigma_t) <- list(dim = dim(Sigma_t))
    mean(rowSums((Z_t %*% Sigma_t) * Z_t))           # z_i' Sigma z_i, averaged over i
  }, 0)
}

## Named variance parts: fixed, one per grouping factor (terms on the same factor summed), residual.
variance_parts <- function(fit) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  groups <- vapply(fit$reterms, `[[`, "", "name")
  s2_t <- term_variances(fit)
  s2_g <- vapply(split(s2_t, factor(groups, unique(groups))), sum, 0)
  s2_f <- if (fit$p > 0L) stats::var(drop(fit$X %*% fit$beta)) else 0
  list(fixed = s2_f, random = s2_g, residual = fit$sigma^2)
}

## ---- icc --------------------------------------------------------------------------------------

## ICC of grouping factor g:
##   adjusted    s2_g / (sum_k s2_k + s2_e)
##   conditional s2_g / (s2_f + sum_k s2_k + s2_e)
icc_values <- function(parts) {
  total_re <- sum(parts$random) + parts$residual
  list(adjusted = parts$random / total_re,
       conditional = parts$random / (total_re + parts$fixed))
}

icc <- function(fit, ci = FALSE, level = 0.95, nsim = 200L, seed = NULL) {
  parts <- variance_parts(fit)
  v <- icc_values(parts)
  out <- data.frame(group = names(parts$random), variance = unname(parts$random),
                    adjusted = unname(v$adjusted), conditional = unname(v$conditional),
                    stringsAsFactors = FALSE)
  if (isTRUE(ci)) {
    check_level(level)
    stat <- function(f) unlist(icc_values(variance_parts(f)), use.names = FALSE)
    boots <- boot_statistic(fit, stat, nsim, seed)
    q <- percentile_bounds(boots, level)
    k <- nrow(out)
    out$adjusted_lower <- q[1L, seq_len(k)]
    out$adjusted_upper <- q[2L, seq_len(k)]
    out$conditional_lower <- q[1L, k + seq_len(k)]
    out$conditional_upper <- q[2L, k + seq_len(k)]
    attr(out, "boot") <- list(nsim = nsim, nfail = sum(!stats::complete.cases(boots)),
                              level = level)
  }
  attr(out, "components") <- unlist(parts)
  class(out) <- c("lmm_icc", "data.frame")
  out
}

print.lmm_icc <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Intraclass correlation by grouping factor\n")
  cat("  adjusted:    variance / (random + residual variance)\n")
  cat("  conditional: variance / (fixed + random + residual variance)\n")
  b <- attr(x, "boot")
  if (!is.null(b))
    cat(sprintf("  %g%% percentile intervals from %d parametric bootstrap refits%s\n",
                100 * b$level, b$nsim,
                if (b$nfail > 0L) sprintf(" (%d failed)", b$nfail) else ""))
  df <- x
  class(df) <- "data.frame"
  attr(df, "components") <- attr(df, "boot") <- NULL
  print(format(df, digits = digits), row.names = FALSE, ...)
  invisible(x)
}

check_level <- function(level) {
  if (!is.numeric(level) || length(level) != 1L || !is.finite(level) || level <= 0 || level >= 1)
    stop("'level' must be a single number between 0 and 1", call. = FALSE)
}

## Percentile bounds of each column, ignoring failed refits (NA rows).
percentile_bounds <- function(boots, level) {
  a <- (1 - level) / 2
  apply(boots, 2L, stats::quantile, probs = c(a, 1 - a), na.rm = TRUE, names = FALSE)
}

## ---- r2 ---------------------------------------------------------------------------------------

## marginal    R^2_m = s2_f / (s2_f + sum s2_t + s2_e)
## conditional R^2_c = (s2_f + sum s2_t) / (s2_f + sum s2_t + s2_e)
r2 <- function(fit) {
  parts <- variance_parts(fit)
  s2_re <- sum(parts$random)
  total <- parts$fixed + s2_re + parts$residual
  structure(c(marginal = parts$fixed / total, conditional = (parts$fixed + s2_re) / total),
            components = unlist(parts), class = "lmm_r2")
}

print.lmm_r2 <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("R2 for mixed models (Nakagawa & Schielzeth; Johnson's random-slope extension)\n")
  cat("  Marginal R2:   ", format(x[["marginal"]], digits = digits), "\n")
  cat("  Conditional R2:", format(x[["conditional"]], digits = digits), "\n")
  invisible(x)
}

## ---- pve --------------------------------------------------------------------------------------

## Raudenbush & Bryk's pseudo-R^2 of each variance component c present in both models:
##   pve_c = (s2_c(null) - s2_c(fit)) / s2_c(null)
## for the residual variance and each grouping factor's random-effect variances (diagonals of
## VarCorr, matched by grouping factor and column). Negative values mean the variance grew.
pve <- function(fit, null_fit = NULL) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  if (is.null(null_fit)) null_fit <- baseline_fit(fit)
  if (!inherits(null_fit, "lmm")) stop("'null_fit' must be an \"lmm\" fit", call. = FALSE)
  if (null_fit$n != fit$n || !isTRUE(all.equal(null_fit$y, fit$y, check.attributes = FALSE)))
    stop("'fit' and 'null_fit' were not fitted to the same responses ",
         "(different data or numbers of observations)", call. = FALSE)
  v1 <- variance_table(fit)
  v0 <- variance_table(null_fit)
  key1 <- paste(v1$group, v1$term)
  key0 <- paste(v0$group, v0$term)
  common <- key0[key0 %in% key1]
  if (!length(common)) stop("the models share no variance component", call. = FALSE)
  out <- data.frame(group = v0$group[match(common, key0)], term = v0$term[match(common, key0)],
                    null = v0$variance[match(common, key0)],
                    fit = v1$variance[match(common, key1)], stringsAsFactors = FALSE)
  out$pve <- (out$null - out$fit) / out$null
  class(out) <- c("lmm_pve", "data.frame")
  out
}

## Diagonal variances of each grouping factor (terms on one factor pooled by name) + residual.
variance_table <- function(fit) {
  vc <- VarCorr(fit)
  groups <- vapply(fit$reterms, `[[`, "", "name")
  rows <- lapply(seq_along(vc), function(t) {
    V <- unclass(vc[[t]])
    data.frame(group = groups[t], term = rownames(V), variance = diag(V),
               stringsAsFactors = FALSE)
  })
  out <- do.call(rbind, c(rows, list(data.frame(group = "Residual", term = "",
                                                variance = fit$sigma^2))))
  rownames(out) <- NULL
  out
}

## The textbook baseline ("empty" model): intercept only, one random intercept per grouping
## factor of `fit`, same weights, offset and REML/ML.
baseline_fit <- function(fit) {
  groups <- vapply(fit$reterms, `[[`, "", "name")
  keep <- !duplicated(groups)
  terms <- lapply(fit$reterms[keep], function(tm) {
    Xt <- matrix(1, fit$n, 1L, dimnames = list(NULL, "(Intercept)"))
    list(group = tm$group, Xt = Xt, name = tm$name, cnms = "(Intercept)")
  })
  terms <- terms[order(-vapply(terms, function(tm) nlevels(tm$group), 1L))]
  X0 <- matrix(1, fit$n, 1L, dimnames = list(NULL, "(Intercept)"))
  lmm_fit(fit$y, X0, terms, weights = fit$weights, offset = fit$offset, REML = fit$REML,
          control = quiet_control())
}

print.lmm_pve <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Proportional reduction in variance components (pseudo-R2) against the baseline\n")
  df <- x
  class(df) <- "data.frame"
  print(format(df, digits = digits), row.names = FALSE, ...)
  invisible(x)
}

## ---- parametric bootstrap (private; replace by simulate()/refit() when R/simulate.R exists) ----

## Checks silenced for refits of simulated responses (the design already passed them).
quiet_control <- function() {
  lmm_control(check.nobs.vs.nlev = "ignore", check.nlev.gtr.1 = "ignore",
              check.nobs.vs.nRE = "ignore", check.scaleX = "ignore",
              check.rankX = "silent.drop.cols", check.conv.singular = "ignore")
}

## One simulated response: y* = X beta + offset + sum_t Z_t b*_t + e*, with
## b*_t(level) = sigma T_t u, u ~ N(0, I) (so Var = Sigma_t), and e*_i ~ N(0, sigma^2 / w_i).
simulate_response <- function(fit) {
  vc <- VarCorr(fit)
  eta <- drop(fit$X %*% fit$beta) + fit$offset
  for (t in seq_along(fit$reterms)) {
    tm <- fit$reterms[[t]]
    Sigma_t <- unclass(vc[[t]])
    attributes(Sigma_t) <- list(dim = dim(Sigma_t))
    k <- ncol(Sigma_t)
    L_t <- t(chol_psd(Sigma_t))                       # Sigma_t = L_t L_t'
    B <- matrix(stats::rnorm(nlevels(tm$group) * k), ncol = k) %*% t(L_t)  # rows ~ N(0, Sigma)
    eta <- eta + rowSums(tm$Xt * B[as.integer(tm$group), , drop = FALSE])
  }
  eta + drop(residual_errors(fit, 1L))
}

## Upper-triangular R with R'R = S for a positive semi-definite S (pivoted, singular allowed).
chol_psd <- function(S) {
  R <- suppressWarnings(chol(S, pivot = TRUE, tol = -1))
  piv <- attr(R, "pivot")
  r <- attr(R, "rank")
  if (r < nrow(S)) R[-seq_len(r), ] <- 0
  R[, order(piv), drop = FALSE]
}

## nsim refits of simulated responses; the rows are stat(refit), NA where a refit failed.
boot_statistic <- function(fit, stat, nsim, seed = NULL) {
  nsim <- positive_count(nsim, "nsim")
  if (!is.null(seed)) set.seed(seed)
  ctrl <- quiet_control()
  rows <- lapply(seq_len(nsim), function(i) {
    y_star <- simulate_response(fit)
    refit <- tryCatch(lmm_fit(y_star, fit$X, fit$reterms, weights = fit$weights,
                              offset = fit$offset, REML = fit$REML, control = ctrl,
                              start = fit$theta, residual = fit$residual$spec),
                      error = function(e) NULL)
    if (is.null(refit)) NA else stat(refit)
  })
  width <- max(lengths(rows))
  do.call(rbind, lapply(rows, function(r) if (length(r) == width) r else rep(NA_real_, width)))
}
