## Confidence intervals for a fitted "lmm" (as lme4's confint.merMod): profile likelihood, Wald
## (fixed effects only), or parametric bootstrap (percentile, basic or normal).

confint.lmm <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"),
                        zeta, nsim = 500, boot.type = c("perc", "basic", "norm"), FUN = NULL,
                        quiet = FALSE, oldNames = TRUE, ...) {
  method <- match.arg(method)
  boot.type <- match.arg(boot.type)
  check_conf_level(level)
  pnames <- c(sdcor_names(object$reterms, oldNames), names(object$beta))
  nvp <- length(object$theta) + 1L
  if (method == "boot" && !is.null(FUN)) {
    bb <- bootstrap_lmm(object, FUN = FUN, nsim = nsim, ...)
    ci <- confint(bb, level = level, type = boot.type)
    return(if (missing(parm)) ci else ci[parm, , drop = FALSE])
  }
  which <- if (missing(parm)) seq_along(pnames) else profile_which(parm, pnames, nvp)
  if (!quiet && method != "Wald")
    message("Computing ", if (method == "profile") "profile" else "bootstrap",
            " confidence intervals ...")
  switch(method,
         profile = {
           pr <- profile(object, which = which, signames = oldNames, ...)
           if (missing(zeta)) confint(pr, level = level) else confint(pr, zeta = zeta)
         },
         Wald = wald_intervals(object, pnames, nvp, level)[which, , drop = FALSE],
         boot = {
           bb <- bootstrap_lmm(object, FUN = function(x) sdcor_beta(x, oldNames), nsim = nsim,
                               ...)
           confint(bb, level = level, type = boot.type)[which, , drop = FALSE]
         })
}

## beta +/- z se for the fixed effects; NA rows for the variance parameters (as lme4).
wald_intervals <- function(object, pnames, nvp, level) {
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  se <- sqrt(diag(object$vcov_beta))
  ci <- matrix(NA_real_, length(pnames), 2L, dimnames = list(pnames, percent_labels(a)))
  ci[-seq_len(nvp), ] <- object$beta + se %o% stats::qnorm(a)
  ci
}

## The statistic lme4 bootstraps for confint(): sds and correlations, sigma, fixed effects.
sdcor_beta <- function(fit, signames = TRUE) {
  setNames(c(theta_to_sdcor(fit$theta, fit$reterms, fit$sigma), fit$sigma, fit$beta),
           c(sdcor_names(fit$reterms, signames), names(fit$beta)))
}

## Intervals from a profile: the values where zeta equals qnorm((1 -+ level)/2) (or the given
## zeta).  The interpolating spline of the profile gives them (exact = FALSE); with exact = TRUE
## (default) they are then found by root finding on the profile itself, between the two profile
## points bracketing the level.  When the profile does not reach a level (e.g. an SD whose profile
## stops at 0), the parameter's bound is used, as lme4 does.
confint.profile.lmm <- function(object, parm, level = 0.95, zeta, exact = TRUE, ...) {
  back <- attr(object, "backward")
  pars <- names(back)
  if (!missing(parm)) pars <- profile_parm(parm, pars)
  if (missing(zeta)) {
    check_conf_level(level)
    a <- (1 - level) / 2
    a <- c(a, 1 - a)
    zeta <- stats::qnorm(a)
    labels <- percent_labels(a)
  } else {
    labels <- format(zeta)
  }
  setup <- attr(object, "setup")
  exact <- exact && !is.null(setup)
  lower <- attr(object, "lower")
  upper <- attr(object, "upper")
  ci <- matrix(NA_real_, length(pars), length(zeta), dimnames = list(pars, labels))
  for (nm in pars) {
    if (is.null(back[[nm]])) next
    v <- if (exact) exact_profile_roots(object, nm, zeta, setup) else back[[nm]](zeta)
    bound <- ifelse(zeta < 0, lower[[nm]], upper[[nm]])
    fill <- is.na(v) & is.finite(bound)
    v[fill] <- bound[fill]
    ci[nm, ] <- v
  }
  ci
}

profile_parm <- function(parm, pars) {
  if (is.numeric(parm)) return(pars[parm])
  if (identical(parm, "theta_")) return(grep("^(\\.sig|sd_|cor_|sigma$)", pars, value = TRUE))
  if (identical(parm, "beta_"))
    return(grep("^(\\.sig|sd_|cor_|sigma$)", pars, value = TRUE, invert = TRUE))
  miss <- setdiff(parm, pars)
  if (length(miss)) stop("parameter(s) not profiled: ", paste(miss, collapse = ", "), call. = FALSE)
  parm
}

## Roots of zeta(x) = target on the profile of parameter nm, each bracketed by two profile points
## (falling back to the spline when the profile is not monotone there).
exact_profile_roots <- function(object, nm, targets, setup) {
  tab <- object[object$.par == nm, , drop = FALSE]
  tab <- tab[is.finite(tab$.zeta) & is.finite(tab[[nm]]), , drop = FALSE]
  x <- tab[[nm]]
  z <- tab$.zeta
  if (!all(diff(z) > 0)) return(attr(object, "backward")[[nm]](targets))
  zeta_at <- NULL
  vapply(targets, function(zz) {
    k <- bracket_index(z, zz)
    if (is.na(k)) return(NA_real_)
    if (z[k] == zz) return(x[k])
    if (z[k + 1L] == zz) return(x[k + 1L])
    if (is.null(zeta_at)) zeta_at <<- param_zeta(attr(object, "index")[[nm]], setup)
    prev <- unlist(tab[k, c(".zeta", names(setup$opt))])
    f <- function(t) zeta_at(t, prev)[1L] - zz
    stats::uniroot(f, x[k + 0:1], f.lower = z[k] - zz, f.upper = z[k + 1L] - zz,
                   tol = 1e-9 * max(1, abs(x[k])))$root
  }, 0)
}

## "2.5 %" "97.5 %" (as stats:::format.perc).
percent_labels <- function(a) paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3),
                                    "%")

check_conf_level <- function(level) {
  if (!is.numeric(level) || length(level) != 1L || !is.finite(level) || level <= 0 || level >= 1)
    stop("'level' must be a single number between 0 and 1", call. = FALSE)
  invisible(level)
}

## ---- bootstrap intervals (Davison & Hinkley 1997, ch. 5; the conventions of boot::boot.ci) -------

confint.bootstrap_lmm <- function(object, parm, level = 0.95, type = c("perc", "basic", "norm"),
                                  ...) {
  type <- match.arg(type)
  check_conf_level(level)
  t0 <- object$t0
  if (missing(parm)) parm <- seq_along(t0)
  if (is.character(parm)) {
    miss <- setdiff(parm, names(t0))
    if (length(miss)) stop("unknown statistic(s): ", paste(miss, collapse = ", "), call. = FALSE)
    parm <- match(parm, names(t0))
  }
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  ints <- lapply(parm, function(i) boot_interval(object$t[, i], t0[i], level, type))
  if (any(vapply(ints, function(v) isTRUE(attr(v, "extreme")), NA)))
    warning("extreme order statistics used as endpoints: increase nsim", call. = FALSE)
  ci <- do.call(rbind, lapply(ints, as.numeric))
  dimnames(ci) <- list(names(t0)[parm], percent_labels(a))
  ci
}

## One interval from the replicates t (non-finite ones dropped) and the estimate t0.
boot_interval <- function(t, t0, level, type) {
  t <- t[is.finite(t)]
  if (length(t) < 2L) return(c(NA_real_, NA_real_))
  alpha <- (1 + c(-level, level)) / 2
  switch(type,
         perc = order_stat_quantile(t, alpha),
         basic = {
           q <- order_stat_quantile(t, alpha)
           structure(2 * t0 - rev(q), extreme = attr(q, "extreme"))
         },
         norm = {
           bias <- mean(t) - t0                       # bias-corrected normal interval
           (t0 - bias) + c(-1, 1) * stats::sd(t) * stats::qnorm((1 + level) / 2)
         })
}

## Quantiles alpha of the bootstrap distribution: the ((R + 1) alpha)-th order statistic, with
## interpolation on the normal quantile scale between neighbouring order statistics
## (Davison & Hinkley eq. 5.8); the extremes are used when (R + 1) alpha falls outside 1..R.
order_stat_quantile <- function(t, alpha) {
  R <- length(t)
  ts <- sort(t)
  q <- lapply(alpha, function(al) {
    rk <- (R + 1) * al
    k <- trunc(rk)
    if (k == rk && k >= 1 && k <= R) return(ts[k])
    if (k < 1) return(structure(ts[1L], extreme = TRUE))
    if (k >= R) return(structure(ts[R], extreme = TRUE))
    zk <- stats::qnorm(c(k, k + 1) / (R + 1))
    ts[k] + (stats::qnorm(al) - zk[1L]) / (zk[2L] - zk[1L]) * (ts[k + 1L] - ts[k])
  })
  extreme <- any(vapply(q, function(v) isTRUE(attr(v, "extreme")), NA))
  structure(vapply(q, as.numeric, 0), extreme = if (extreme) TRUE)
}
