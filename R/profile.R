## Likelihood profiles of a fitted "lmm" (as lme4's profile.merMod).
##
## Parameters, in lme4's order and names: per random-effects term the lower triangle of its
## covariance matrix Sigma_t = sigma^2 T_t T_t', column by column, with standard deviations on the
## diagonal and correlations off it (.sig01, .sig02, ...), then the residual SD .sigma, then the
## fixed effects by name.  For parameter psi with value x the profile is
##     zeta(x) = sign(x - psi_hat) * sqrt(d(x) - d(psi_hat)),
## where d(x) is the ML deviance minimised over all other parameters with psi = x held fixed.
## REML fits are profiled on the ML deviance (as lme4 does): the base point is the ML refit.
## With a residual structure its free parameters rho are not profiled themselves: they are among
## the "other parameters" minimised over at every profile point (rho is opaque here: the engine's
## parameter vector, R/objective.R).

## ---- the sd/cor scale ---------------------------------------------------------------------------

## theta (and sigma) -> sd/cor vector in theta's layout.
theta_to_sdcor <- function(theta, reterms, sigma) {
  unlist(lapply(theta_templates(theta, reterms), function(Tt) {
    S <- tcrossprod(Tt)                                  # Sigma_t / sigma^2
    sd <- sqrt(diag(S))
    R <- S / outer(sd, sd)                               # correlations (0/0 -> set to 0)
    R[!is.finite(R)] <- 0
    diag(R) <- sigma * sd
    R[lower.tri(R, diag = TRUE)]
  }), use.names = FALSE)
}

## sd/cor vector (and sigma) -> theta: T_t = chol(D R D) / sigma, lower triangular.
## NA when a correlation block is not positive semi-definite.
sdcor_to_theta <- function(sdcor, reterms, sigma) {
  pos <- 0L
  unlist(lapply(reterms, function(term) {
    p <- length(term$cnms)
    k <- p * (p + 1L) / 2L
    M <- matrix(0, p, p)
    M[lower.tri(M, diag = TRUE)] <- sdcor[pos + seq_len(k)]
    pos <<- pos + k
    sd <- diag(M) / sigma
    R <- M
    diag(R) <- 0
    R <- R + t(R)
    diag(R) <- 1
    L <- lower_chol(R * outer(sd, sd))
    if (is.null(L)) rep(NA_real_, k) else L[lower.tri(L, diag = TRUE)]
  }), use.names = FALSE)
}

## Lower Cholesky factor of a positive semi-definite S (zero pivots give zero columns);
## NULL when S is not positive semi-definite.
lower_chol <- function(S, tol = 1e-10) {
  p <- nrow(S)
  L <- matrix(0, p, p)
  for (j in seq_len(p)) {
    prev <- seq_len(j - 1L)
    d <- S[j, j] - sum(L[j, prev]^2)                     # pivot
    below <- if (j < p) (j + 1L):p else integer()
    rest <- S[below, j] - L[below, prev, drop = FALSE] %*% L[j, prev]
    scale <- max(abs(diag(S)), 1e-300)
    if (d > tol * scale) {
      L[j, j] <- sqrt(d)
      L[below, j] <- rest / L[j, j]
    } else if (d < -tol * scale || any(abs(rest) > sqrt(tol) * scale)) {
      return(NULL)
    }
  }
  L
}

## lme4's parameter names: ".sig01", ... (signames = TRUE) or "sd_(Intercept)|Subject",
## "cor_Days.(Intercept)|Subject", ... (signames = FALSE); then ".sigma" / "sigma".
sdcor_names <- function(reterms, signames = TRUE) {
  k <- sum(vapply(reterms, function(tm) { p <- length(tm$cnms); p * (p + 1L) / 2L }, 1))
  if (signames) return(c(sprintf(".sig%02d", seq_len(k)), ".sigma"))
  nms <- unlist(lapply(reterms, function(term) {
    cn <- term$cnms
    p <- length(cn)
    rc <- which(lower.tri(diag(p), diag = TRUE), arr.ind = TRUE)
    rc <- rc[order(rc[, "col"], rc[, "row"]), , drop = FALSE]
    ifelse(rc[, "row"] == rc[, "col"],
           paste0("sd_", cn[rc[, "row"]], "|", term$name),
           paste0("cor_", cn[rc[, "row"]], ".", cn[rc[, "col"]], "|", term$name))
  }), use.names = FALSE)
  c(nms, "sigma")
}

## Bounds on the sd/cor scale: sd in [0, Inf), cor in [-1, 1], sigma in [0, Inf).
sdcor_bounds <- function(reterms) {
  diag_ <- theta_is_diagonal(reterms)
  list(lower = c(ifelse(diag_, 0, -1), 0), upper = c(ifelse(diag_, Inf, 1), Inf))
}

## ---- deviance functions -------------------------------------------------------------------------

## ML deviance at sd/cor parameters par = c(sdcor, sigma) and the free residual parameters
## rhof (rho of the layout below), sigma not profiled out:
##   d = log|L|^2 - log|V^{-1}| + pwrss / sigma^2 + n log(2 pi sigma^2)
## (log|V^{-1}| = sum(log w) without a residual structure).
sdcor_deviance <- function(engine, reterms, n, rho = rho_layout(NULL)) {
  k <- length(theta_is_diagonal(reterms))
  function(par, rhof = numeric()) {
    sigma <- par[k + 1L]
    if (!is.finite(sigma) || sigma <= 0) return(Inf)
    theta <- sdcor_to_theta(par[seq_len(k)], reterms, sigma)
    if (anyNA(theta)) return(Inf)
    pt <- tryCatch(engine_parts(engine, theta, FALSE, rho_full(rho, rhof)),
                   error = function(e) NULL)            # outside the parameter space
    if (is.null(pt) || !is.finite(pt$crit)) return(Inf)
    pt$ldL2 - pt$sumlogw + pt$pwrss / sigma^2 + n * log(2 * pi * sigma^2)
  }
}

## The residual structure's parameters of a fit: the full rho0, which entries are free, their
## start (the fit's values) and bounds (the structure's own when it states them, else none:
## the engine's criterion is +Inf outside its space).  Empty without a structure.
rho_layout <- function(fit) {
  rho0 <- if (is.null(fit)) numeric() else fit_rho(fit)
  free <- if (length(rho0)) as.logical(fit$residual$free) else logical()
  spec <- if (length(rho0)) fit$residual$spec
  bound <- function(b, inf) if (length(b) == length(rho0)) as.double(b)[free] else
    rep(inf, sum(free))
  list(rho0 = rho0, free = free, start = rho0[free],
       lower = bound(spec$lower, -Inf), upper = bound(spec$upper, Inf))
}

## rho with its free entries set to rhof.
rho_full <- function(layout, rhof) {
  rho <- layout$rho0
  rho[layout$free] <- rhof
  rho
}

## The ML fit profiles start from (the fit itself when ML, else its ML refit; the residual
## structure kept).
ml_fit_of <- function(fit) {
  if (!fit$REML) return(fit)
  if (inherits(fit, "lmm_aggregated")) return(refit_ml_aggregated(fit))    # R/methods-aggregated.R
  ctrl <- refit_control(fit, check.conv.singular = "ignore", check.scaleX = "ignore",
                      check.rankX = "ignore")
  ml <- lmm_fit(fit$y, fit$X, fit$reterms, fit$weights, fit$offset, REML = FALSE,
                control = ctrl, start = fit$theta, residual = fit$residual$spec)
  if (!is.null(fit$residual)) ml[c("call", "formula", "frame")] <- fit[c("call", "formula", "frame")]
  ml
}

## The engine of the profiled ML fit (optionally with another X and offset).
setup_engine <- function(setup, X = setup$X, offset = setup$offset) {
  engine_setup(setup$y, X, setup$reterms, setup$weights, offset, setup$spec, setup$counts)
}

## ---- stepping along one parameter ---------------------------------------------------------------

## Walk from the optimum x0 in one direction (dir = +1 / -1): each step aims to change zeta by
## delta, using the secant slope of the last two points; steps are capped at maxmult times the
## previous one and clipped to [lo, hi].  zeta_at(x, start) returns c(zeta, all parameters, ...).
profile_walk <- function(zeta_at, x0, row0, first, dir, lo, hi, delta, cutoff, maxpts,
                         maxmult = 10) {
  rows <- list(row0)
  x_prev <- x0
  z_prev <- 0
  x <- min(hi, max(lo, x0 + dir * first))
  for (i in seq_len(maxpts)) {
    r <- zeta_at(x, rows[[length(rows)]])
    rows[[length(rows) + 1L]] <- r
    if (is.na(r[1L]) || abs(r[1L]) > cutoff || x <= lo || x >= hi) break
    dz <- r[1L] - z_prev
    dx <- x - x_prev
    step <- if (is.finite(dz) && dz * sign(dx) > 0) delta * abs(dx / dz) else 1e-6
    if (i > 1L) step <- min(step, maxmult * abs(dx))
    x_prev <- x
    z_prev <- r[1L]
    x <- min(hi, max(lo, x + dir * step))
    if (x == x_prev) break
  }
  do.call(rbind, rows[-1L])
}

## The profile of parameter k (all parameters' order) walked both ways from the optimum.
profile_param <- function(k, setup) {
  zeta_at <- param_zeta(k, setup)
  x0 <- setup$opt[k]
  row0 <- c(0, setup$opt)
  lo <- c(setup$lower, rep(-Inf, setup$p))[k]
  hi <- c(setup$upper, rep(Inf, setup$p))[k]
  first <- if (k > setup$nvp) setup$delta * setup$stderr[k - setup$nvp] else
    if (x0 == 0) 0.001 else abs(x0) * 0.01
  walk <- function(dir) profile_walk(zeta_at, x0, row0, first, dir, lo, hi, setup$delta,
                                     setup$cutoff, setup$maxpts)
  rbind(row0, walk(+1), if (x0 > lo) walk(-1))
}

## function(x, prev) giving c(zeta, all parameters) with parameter k held at x; prev is a row
## of the profile table used as the starting point.
param_zeta <- function(k, setup) {
  if (k <= setup$nvp) varpar_zeta(k, setup) else fixef_zeta(k - setup$nvp, setup)
}

## Variance parameter w (sd/cor or sigma): the ML deviance minimised over the others (and the
## free residual parameters) by stats::nlminb.  With residual parameters the deviance can have
## ridges and several local minima (a CAR(1) correlation near 1 stands in for a random
## intercept), so three starts are tried -- the previous point with the last point's rho and
## with the fit's rho, and the fit itself -- and the least deviance is kept.
varpar_zeta <- function(w, setup) {
  engine <- setup_engine(setup)
  rho <- setup$rho
  dev <- sdcor_deviance(engine, setup$reterms, setup$n, rho)
  opt <- setup$opt
  nvp <- setup$nvp
  nr <- length(rho$start)
  lo <- c(setup$lower[-w], rho$lower)
  hi <- c(setup$upper[-w], rho$upper)
  full <- function(x, z) { par <- numeric(nvp); par[w] <- x; par[-w] <- z[seq_len(nvp - 1L)]; par }
  rhof <- function(z) z[nvp - 1L + seq_len(nr)]
  last_rho <- rho$start
  minimise <- function(x, start) {
    start <- pmin(hi, pmax(lo, start))
    tryCatch(stats::nlminb(start, function(z) dev(full(x, z), rhof(z)), lower = lo, upper = hi,
                           control = list(rel.tol = 1e-13, x.tol = 1e-10, eval.max = 2000L,
                                          iter.max = 1000L)),
             error = function(e) NULL)
  }
  function(x, prev) {
    starts <- list(c(prev[1L + seq_len(nvp)][-w], rho$start))
    if (nr) starts <- unique(c(starts, list(c(prev[1L + seq_len(nvp)][-w], last_rho),
                                            c(opt[seq_len(nvp)][-w], rho$start))))
    fits <- lapply(starts, function(s) minimise(x, s))
    obj <- vapply(fits, function(r) if (is.null(r)) Inf else r$objective, 0)
    res <- fits[[which.min(obj)]]
    if (is.null(res) || !is.finite(res$objective)) return(c(NA, full(x, rep(NA, nvp - 1L)),
                                                          rep(NA, setup$p)))
    last_rho <<- rhof(res$par)
    par <- full(x, res$par)
    c(zeta_of(res$objective - setup$base, x - opt[w], setup$devtol), par,
      conditional_beta(engine, par, setup, rho_full(rho, rhof(res$par))))
  }
}

## beta-hat at the given sd/cor parameters and rho (beta does not depend on sigma given theta).
conditional_beta <- function(engine, par, setup, rho = numeric()) {
  nvp <- setup$nvp
  theta <- sdcor_to_theta(par[-nvp], setup$reterms, par[nvp])
  engine_solution(engine, theta, FALSE, rho)$beta
}

## zeta from the deviance increase; slight decreases (numerical noise) count as 0, larger ones
## mean the fit was not at the optimum.
zeta_of <- function(ddev, dx, devtol) {
  if (ddev < -devtol)
    stop("profiling found a lower deviance than the fit's (by ", signif(-ddev, 3),
         "): the fit did not converge to the optimum; refit and try again", call. = FALSE)
  sign(dx) * sqrt(max(0, ddev))
}

## Fixed effect j: beta_j fixed through the offset, theta re-optimised by the C optimiser on the
## ML deviance of the model without column j.  With a residual structure: (theta, rho) by
## nlminb, from the previous point's theta with the last point's rho and with the fit's.
fixef_zeta <- function(j, setup) {
  nvp <- setup$nvp
  Xj <- setup$X[, j]
  Xdrop <- setup$X[, -j, drop = FALSE]
  est <- setup$opt[nvp + j]
  lower <- setup$theta_lower
  last_rho <- setup$rho$start
  function(x, prev) {
    engine <- setup_engine(setup, Xdrop, setup$offset + Xj * x)
    theta0 <- pmax(sdcor_to_theta(prev[1L + seq_len(nvp - 1L)], setup$reterms, prev[1L + nvp]),
                   lower)
    if (anyNA(theta0)) theta0 <- setup$theta
    if (is.null(setup$spec)) {
      opt <- .Call(C_lmm_optimise, engine, theta0, lower, rep(Inf, length(lower)), FALSE,
                   optimiser_settings(lmm_control(), theta0), numeric(), logical())
      theta <- pmax(opt$theta, lower)
      rho <- numeric()
    } else {
      opt <- theta_rho_optimum(engine, theta0, lower, setup$rho, unique(list(last_rho,
                                                                          setup$rho$start)))
      theta <- opt$theta
      rho <- opt$rho
      last_rho <<- rho[setup$rho$free]
    }
    sol <- engine_solution(engine, theta, FALSE, rho)
    sigma <- sqrt(sol$pwrss / setup$n)
    beta <- numeric(setup$p)
    beta[j] <- x
    beta[-j] <- sol$beta
    c(zeta_of(sol$crit - setup$base, x - est, setup$devtol),
      theta_to_sdcor(theta, setup$reterms, sigma), sigma, beta)
  }
}

## The ML criterion minimised over (theta, free rho) by stats::nlminb from theta0 and each of
## the starts for the free rho; the least criterion wins.
theta_rho_optimum <- function(engine, theta0, lower, rho, rho_starts = list(rho$start)) {
  nt <- length(theta0)
  split <- function(z) list(theta = z[seq_len(nt)], rho = rho_full(rho, z[nt + seq_len(length(z) - nt)]))
  crit <- function(z) { v <- split(z); engine_crit(engine, v$theta, FALSE, v$rho) }
  fits <- lapply(rho_starts, function(r0)
    stats::nlminb(pmin(c(rep(Inf, nt), rho$upper), pmax(c(lower, rho$lower), c(theta0, r0))),
                  crit, lower = c(lower, rho$lower), upper = c(rep(Inf, nt), rho$upper),
                  control = list(rel.tol = 1e-13, x.tol = 1e-10, eval.max = 2000L,
                                 iter.max = 1000L)))
  res <- fits[[which.min(vapply(fits, `[[`, 0, "objective"))]]
  v <- split(res$par)
  list(theta = pmax(v$theta, lower), rho = v$rho)
}

## ---- the profile object -------------------------------------------------------------------------

## Which parameters: NULL = all; numbers; names; "theta_" (variance parameters) or "beta_".
profile_which <- function(which, pnames, nvp) {
  if (is.null(which)) return(seq_along(pnames))
  if (is.character(which)) {
    if (identical(which, "theta_")) return(seq_len(nvp))
    if (identical(which, "beta_")) return(setdiff(seq_along(pnames), seq_len(nvp)))
    bad <- setdiff(which, pnames)
    if (length(bad))
      stop("unknown parameter(s) ", paste(bad, collapse = ", "), "; the parameters are ",
           paste(pnames, collapse = ", "), call. = FALSE)
    return(match(which, pnames))
  }
  if (!is.numeric(which) || any(which < 1 | which > length(pnames) | which != round(which)))
    stop("'which' must name parameters or give their numbers 1..", length(pnames), call. = FALSE)
  as.integer(which)
}

profile.lmm <- function(fitted, which = NULL, alphamax = 0.01, maxpts = 100, delta = NULL,
                        delta.cutoff = 1/8, devtol = 1e-9, signames = TRUE,
                        parallel = c("no", "multicore", "snow"),
                        ncpus = getOption("profile.ncpus", 1L), cl = NULL,
                        progress = interactive(), ...) {
  if (...length() > 0L)
    warning("unused arguments ignored: ", paste(...names(), collapse = ", "), call. = FALSE)
  # the profile of a criterion with Monte Carlo error would trace that error (R/iterative.R)
  stop_if_iterative(fitted, "profile()")
  parallel <- match.arg(parallel)
  ml <- ml_fit_of(fitted)
  reterms <- ml$reterms
  pnames <- c(sdcor_names(reterms, signames), names(ml$beta))
  opt <- setNames(c(theta_to_sdcor(ml$theta, reterms, ml$sigma), ml$sigma, ml$beta), pnames)
  nvp <- length(ml$theta) + 1L
  bounds <- sdcor_bounds(reterms)
  nptot <- length(opt)
  cutoff <- sqrt(stats::qchisq(1 - alphamax, nptot))
  setup <- list(y = ml$y, X = ml$X, reterms = reterms, weights = ml$weights, offset = ml$offset,
                spec = ml$residual$spec, rho = rho_layout(ml), counts = ml$counts,
                n = ml$n, p = ml$p, nvp = nvp, opt = opt, base = ml$crit, theta = ml$theta,
                theta_lower = ml$lower, lower = bounds$lower, upper = bounds$upper,
                stderr = sqrt(diag(ml$vcov_beta)), devtol = devtol, maxpts = maxpts,
                cutoff = cutoff, delta = if (is.null(delta)) cutoff * delta.cutoff else delta)
  ws <- profile_which(which, pnames, nvp)
  one <- function(w) {
    m <- profile_param(w, setup)
    colnames(m) <- c(".zeta", pnames)
    m
  }
  mats <- run_tasks(ws, one, parallel, ncpus, cl, progress)
  out <- assemble_profile(mats, pnames[ws], c(bounds$lower, rep(-Inf, ml$p))[ws],
                          c(bounds$upper, rep(Inf, ml$p))[ws])
  attr(out, "setup") <- setup                 # to evaluate zeta exactly in confint()
  attr(out, "index") <- setNames(ws, pnames[ws])
  out
}

## Stack the per-parameter tables and attach the interpolating splines.
assemble_profile <- function(mats, names, lower, upper) {
  tabs <- lapply(seq_along(mats), function(i) {
    d <- as.data.frame(unique(mats[[i]]))
    d <- d[!is.na(d[[names[i]]]), , drop = FALSE]
    d <- d[order(d[[names[i]]]), , drop = FALSE]
    d$.par <- names[i]
    d
  })
  splines <- lapply(seq_along(tabs), function(i) profile_splines(tabs[[i]], names[i]))
  out <- do.call(rbind, tabs)
  rownames(out) <- NULL
  out$.par <- factor(out$.par, levels = names)
  structure(out, forward = setNames(lapply(splines, `[[`, "forward"), names),
            backward = setNames(lapply(splines, `[[`, "backward"), names),
            lower = setNames(lower, names), upper = setNames(upper, names),
            class = c("profile.lmm", "data.frame"))
}

## zeta as a function of the parameter: the interpolating natural cubic spline through the profile
## points; its inverse by root finding on each monotone piece (linear interpolation of the
## parameter in zeta when the profile is not monotone).  Outside the profiled range: NA.
profile_splines <- function(tab, name) {
  x <- tab[[name]]
  z <- tab$.zeta
  ok <- is.finite(x) & is.finite(z)
  x <- x[ok]
  z <- z[ok]
  if (length(x) < 2L) {
    warning("bad profile for ", name, call. = FALSE)
    return(list(forward = NULL, backward = NULL))
  }
  fwd <- stats::splinefun(x, z, method = if (length(x) >= 3L) "natural" else "linear")
  if (!all(diff(z) > 0)) {
    warning("non-monotonic profile for ", name, ": using linear interpolation", call. = FALSE)
    keep <- !duplicated(z)
    lin <- stats::approxfun(z[keep], x[keep], ties = mean)
    return(list(forward = fwd, backward = function(zeta) lin(zeta)))
  }
  back <- function(zeta) vapply(zeta, function(zz) {
    k <- bracket_index(z, zz)
    if (is.na(k)) return(NA_real_)
    if (z[k] == zz) return(x[k])
    stats::uniroot(function(t) fwd(t) - zz, x[k + 0:1], f.lower = z[k] - zz,
                   f.upper = z[k + 1L] - zz, tol = 1e-10 * max(1, abs(x[k])))$root
  }, 0)
  list(forward = fwd, backward = back)
}

## k with z[k] <= zz < z[k + 1] (z increasing; the last interval closed), NA outside.
bracket_index <- function(z, zz) {
  n <- length(z)
  if (!is.finite(zz) || zz < z[1L] || zz > z[n]) return(NA_integer_)
  min(findInterval(zz, z), n - 1L)
}

## ---- methods --------------------------------------------------------------------------------------

print.profile.lmm <- function(x, ...) {
  if (!".par" %in% names(x)) return(print(as.data.frame(unclass(x)), ...))
  pars <- levels(x$.par)
  cat("Likelihood profile of ", length(pars), " parameter", if (length(pars) != 1L) "s",
      " (", nrow(x), " points): ", paste(pars, collapse = ", "), "\n", sep = "")
  cat("Use confint() for intervals, plot() to draw zeta, as.data.frame() for the points.\n")
  invisible(x)
}

as.data.frame.profile.lmm <- function(x, row.names = NULL, optional = FALSE, ...) {
  out <- x
  attributes(out)[c("forward", "backward", "lower", "upper", "setup", "index")] <- NULL
  class(out) <- "data.frame"
  out$.focal <- vapply(seq_len(nrow(out)), function(i) out[i, as.character(out$.par[i])], 0)
  out
}

## Base-graphics plot: zeta (or |zeta|) against each parameter, with the interpolating spline,
## horizontal reference lines at the normal quantiles of `level` and vertical lines at the
## interval ends.
plot.profile.lmm <- function(x, which = levels(x$.par), absVal = FALSE,
                             level = c(0.5, 0.8, 0.9, 0.95, 0.99), layout = NULL, ...) {
  which <- intersect(which, levels(x$.par))
  if (!length(which)) stop("nothing to plot: 'which' names no profiled parameter", call. = FALSE)
  # panels go into the user's par(mfrow) layout when there is one (as the plots of R/plot.R);
  # on a one-panel device (or with `layout`) this plot sets its own grid and restores it
  if (is.null(layout) && length(which) > 1L && all(graphics::par("mfrow") == 1L)) {
    nc <- ceiling(sqrt(length(which)))
    layout <- c(ceiling(length(which) / nc), nc)
  }
  op <- if (!is.null(layout)) graphics::par(mfrow = layout, mar = c(4, 4, 1.5, 1))
  on.exit(if (length(op)) graphics::par(op))
  zq <- stats::qnorm((1 + level) / 2)
  ci <- confint(x, parm = which, level = max(level))
  for (nm in which) {
    d <- x[x$.par == nm, , drop = FALSE]
    fwd <- attr(x, "forward")[[nm]]
    xs <- seq(min(d[[nm]]), max(d[[nm]]), length.out = 201)
    zs <- if (is.null(fwd)) rep(NA, length(xs)) else fwd(xs)
    tr <- if (absVal) abs else identity
    graphics::plot(d[[nm]], tr(d$.zeta), type = "p", pch = 20, xlab = nm,
                   ylab = if (absVal) "|zeta|" else "zeta",
                   ylim = if (absVal) c(0, max(zq, abs(d$.zeta), na.rm = TRUE)) else
                     range(c(-zq, zq, d$.zeta), na.rm = TRUE), ...)
    graphics::lines(xs, tr(zs))
    graphics::abline(h = if (absVal) zq else c(-zq, zq), lty = 3, col = "grey50")
    graphics::abline(v = ci[nm, ], lty = 2, col = "grey50")
  }
  invisible(x)
}

## ---- running tasks (serial with a progress bar, or in parallel) -----------------------------------

## lapply(xs, f), optionally over parallel workers (base R's parallel package): "multicore" forks
## (not on Windows), "snow" uses the cluster `cl` or a local PSOCK cluster of ncpus workers.
run_tasks <- function(xs, f, parallel = "no", ncpus = 1L, cl = NULL, progress = FALSE) {
  if (parallel != "no" && (ncpus > 1L || !is.null(cl))) {
    if (parallel == "multicore") {
      if (.Platform$OS.type == "windows")
        stop("parallel = \"multicore\" is not available on Windows: use \"snow\"", call. = FALSE)
      out <- parallel::mclapply(xs, f, mc.cores = ncpus)
    } else {
      if (is.null(cl)) {
        cl <- parallel::makePSOCKcluster(rep("localhost", ncpus))
        on.exit(parallel::stopCluster(cl))
      }
      parallel::clusterCall(cl, attach_lmmc)     # user functions may call lmmc's exports
      out <- parallel::parLapply(cl, xs, f)
    }
    failed <- vapply(out, inherits, NA, "try-error")
    if (any(failed)) stop("a parallel task failed: ", out[[which(failed)[1L]]], call. = FALSE)
    return(out)
  }
  if (!progress || length(xs) < 2L) return(lapply(xs, f))
  bar <- utils::txtProgressBar(min = 0, max = length(xs), style = 3)
  on.exit(close(bar))
  out <- vector("list", length(xs))
  for (i in seq_along(xs)) {
    out[[i]] <- f(xs[[i]])
    utils::setTxtProgressBar(bar, i)
  }
  out
}

## Run on "snow" workers: load and attach lmmc there.
attach_lmmc <- function() {
  if (!"package:lmmc" %in% search()) attachNamespace(loadNamespace("lmmc"))
  invisible(NULL)
}
