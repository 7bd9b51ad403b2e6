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

## Johnson's mean random-effects variance of each term: mean(diag(Z_t Sigma_t Z_t')), the mean
## over the observations (for aggregated data over mean_rows(), R/methods-aggregated.R).
term_variances <- function(fit) {
  vc <- VarCorr(fit)
  rows <- mean_rows(fit)
  vapply(seq_along(fit$reterms), function(t) {
    Z_t <- rows$Xt[[t]]
    Sigma_t <- unclass(vc[[t]])
    attributes(Sigma_t) <- list(dim = dim(Sigma_t))
    rows_mean(rows, rowSums((Z_t %*% Sigma_t) * Z_t))   # z_i' Sigma z_i, averaged over i
  }, 0)
}

## Named variance parts: fixed, one per grouping factor (terms on the same factor summed), residual.
variance_parts <- function(fit) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  groups <- vapply(fit$reterms, `[[`, "", "name")
  s2_t <- term_variances(fit)
  s2_g <- vapply(split(s2_t, factor(groups, unique(groups))), sum, 0)
  s2_f <- if (fit$p > 0L) fixed_variance(fit) else 0
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

icc <- function(fit, ci = FALSE, method = c("boot", "profile"), level = 0.95, nsim = 200L,
                seed = NULL, ...) {
  parts <- variance_parts(fit)
  v <- icc_values(parts)
  out <- data.frame(group = names(parts$random), variance = unname(parts$random),
                    adjusted = unname(v$adjusted), conditional = unname(v$conditional),
                    stringsAsFactors = FALSE)
  if (isTRUE(ci)) {
    check_level(level)
    method <- match.arg(method)
    out <- if (method == "boot") icc_boot_ci(fit, out, level, nsim, seed, ...)
           else icc_profile_ci(fit, out, level)
  }
  attr(out, "components") <- unlist(parts)
  class(out) <- c("lmm_icc", "data.frame")
  out
}

## Percentile intervals of both ICCs from a parametric bootstrap.
icc_boot_ci <- function(fit, out, level, nsim, seed, ...) {
  stat <- function(f) unlist(icc_values(variance_parts(f)), use.names = FALSE)
  boots <- icc_bootstrap(fit, stat, nsim, seed, ...)
  q <- percentile_bounds(boots, level)
  k <- nrow(out)
  out$adjusted_lower <- q[1L, seq_len(k)]
  out$adjusted_upper <- q[2L, seq_len(k)]
  out$conditional_lower <- q[1L, k + seq_len(k)]
  out$conditional_upper <- q[2L, k + seq_len(k)]
  attr(out, "ci") <- list(method = "boot", nsim = nsim,
                          nfail = sum(!stats::complete.cases(boots)), level = level)
  out
}

print.lmm_icc <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Intraclass correlation by grouping factor\n")
  cat("  adjusted:    variance / (random + residual variance)\n")
  cat("  conditional: variance / (fixed + random + residual variance)\n")
  b <- attr(x, "ci")
  if (!is.null(b) && b$method == "boot")
    cat(sprintf("  %g%% percentile intervals from %d parametric bootstrap refits%s\n",
                100 * b$level, b$nsim,
                if (b$nfail > 0L) sprintf(" (%d failed)", b$nfail) else ""))
  if (!is.null(b) && b$method == "profile")
    cat(sprintf("  %g%% profile-likelihood intervals (%s criterion) for the adjusted ICC\n",
                100 * b$level, b$criterion))
  df <- x
  class(df) <- "data.frame"
  attr(df, "components") <- attr(df, "ci") <- NULL
  print(format(df, digits = digits), row.names = FALSE, ...)
  invisible(x)
}

check_level <- function(level) {
  if (!is.numeric(level) || length(level) != 1L || !is.finite(level) || level <= 0 || level >= 1)
    stop("'level' must be a single number between 0 and 1", call. = FALSE)
}

## Parametric bootstrap of stat (R/simulate.R): nsim refits to responses simulated from the fit;
## rows of the result are stat(refit), NA where a refit failed. `...` goes to bootstrap_lmm()
## (parallel, ncpus, progress).
icc_bootstrap <- function(fit, stat, nsim, seed, progress = FALSE, ...) {
  bootstrap_lmm(fit, stat, nsim = nsim, seed = seed, progress = progress,
                control = quiet_control(fit), ...)$t
}

## Percentile bounds of each column, ignoring failed refits (NA rows).
percentile_bounds <- function(boots, level) {
  a <- (1 - level) / 2
  apply(boots, 2L, stats::quantile, probs = c(a, 1 - a), na.rm = TRUE, names = FALSE)
}

## ---- profile intervals for the adjusted ICC ------------------------------------------------------

## For random-intercept terms only, with theta_k = tau_k / sigma the adjusted ICC depends on theta
## alone:  psi_g = theta_g^2 / (1 + sum_k theta_k^2).  Its profile interval is
##   { psi : min_{theta : psi_g(theta) = psi} crit(theta) - crit(theta_hat) <= qchisq(level, 1) },
## where crit is the fit's profiled criterion (REML or ML).  On the constraint theta_g is
## determined by the others: theta_g^2 = psi (1 + sum_{k != g} theta_k^2) / (1 - psi).
icc_profile_ci <- function(fit, out, level) {
  scalar <- vapply(fit$reterms, function(tm) identical(tm$cnms, "(Intercept)"), NA)
  groups <- vapply(fit$reterms, `[[`, "", "name")
  if (!all(scalar) || anyDuplicated(groups))
    stop("profile intervals for the ICC need random intercepts only, one per grouping factor; ",
         "use method = \"boot\"", call. = FALSE)
  crit <- lmm_objective(fit)
  crit_hat <- crit(fit$theta)
  cutoff <- stats::qchisq(level, 1)
  bounds <- t(vapply(seq_along(groups), function(g) {
    excess <- function(psi) icc_profile_excess(crit, fit$theta, g, psi) - crit_hat - cutoff
    profile_bounds(excess, out$adjusted[g])
  }, numeric(2L)))
  out$adjusted_lower <- bounds[, 1L]
  out$adjusted_upper <- bounds[, 2L]
  attr(out, "ci") <- list(method = "profile", level = level,
                          criterion = if (fit$REML) "REML" else "ML")
  out
}

## min over theta with psi_g(theta) = psi of crit(theta).
icc_profile_excess <- function(crit, theta_hat, g, psi) {
  on_constraint <- function(other) {
    theta <- numeric(length(theta_hat))
    theta[-g] <- other
    theta[g] <- sqrt(psi * (1 + sum(other^2)) / (1 - psi))
    theta
  }
  if (length(theta_hat) == 1L) return(crit(on_constraint(numeric())))
  opt <- stats::nlminb(theta_hat[-g], function(o) crit(on_constraint(o)),
                       lower = rep(0, length(theta_hat) - 1L))
  opt$objective
}

## Where excess(psi) crosses 0 on each side of psi_hat in [0, 1); the end of the range when the
## profile stays below the cut-off there.
profile_bounds <- function(excess, psi_hat, edge = 1e-8) {
  root <- function(a, b) stats::uniroot(excess, c(a, b), tol = 1e-10)$root
  lo <- if (psi_hat <= edge || excess(0) <= 0) 0 else root(0, psi_hat)
  hi_end <- 1 - edge
  hi <- if (excess(hi_end) <= 0) 1 else root(psi_hat, hi_end)
  c(lo, hi)
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
## factor of `fit`, same weights, offset and REML/ML.  From aggregated data: refitted from the
## fit's sums (R/refit-aggregated.R) with the formula of that model.
baseline_fit <- function(fit) {
  if (inherits(fit, "lmm_aggregated"))
    return(refit_aggregated(fit, baseline_formula(fit), fit$REML, quiet_control(fit)))
  groups <- vapply(fit$reterms, `[[`, "", "name")
  keep <- !duplicated(groups)
  terms <- lapply(fit$reterms[keep], function(tm) {
    Xt <- matrix(1, fit$n, 1L, dimnames = list(NULL, "(Intercept)"))
    list(group = tm$group, Xt = Xt, name = tm$name, cnms = "(Intercept)")
  })
  terms <- terms[order(-vapply(terms, function(tm) nlevels(tm$group), 1L))]
  X0 <- matrix(1, fit$n, 1L, dimnames = list(NULL, "(Intercept)"))
  lmm_fit(fit$y, X0, terms, weights = fit$weights, offset = fit$offset, REML = fit$REML,
          control = quiet_control(fit))
}

## response ~ 1 + the formula's offset() terms + (1 | g) for each grouping factor g.
baseline_formula <- function(fit) {
  fv <- names(fit$spec$frame_vars)
  offsets <- fv[attr(fit$spec$frame_terms, "offset")]
  groups <- unique(vapply(fit$reterms, function(term) deparse2(term$gexpr), ""))
  rhs <- paste(c("1", offsets, sprintf("(1 | %s)", groups)), collapse = " + ")
  stats::as.formula(paste(deparse2(fit$formula[[2L]]), "~", rhs), env = environment(fit$formula))
}

print.lmm_pve <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Proportional reduction in variance components (pseudo-R2) against the baseline\n")
  df <- x
  class(df) <- "data.frame"
  print(format(df, digits = digits), row.names = FALSE, ...)
  invisible(x)
}

## ---- refit controls ---------------------------------------------------------------------------

## The fit's own control (backend, memory_limit, optimiser) with the checks silenced for refits
## of a design that already passed them.
quiet_control <- function(fit = NULL) {
  refit_control(fit, check.nobs.vs.nlev = "ignore", check.nlev.gtr.1 = "ignore",
                check.nobs.vs.nRE = "ignore", check.scaleX = "ignore",
                check.rankX = "silent.drop.cols", check.conv.singular = "ignore")
}
