# Likelihood profiles (R/profile.R).  Reference intervals from lme4 1.1-31 are in test-confint.R.

ss_fit <- function() lmm(Reaction ~ Days + (Days | Subject), data = methods_data("sleepstudy"))
dy_fit <- function() lmm(Yield ~ 1 + (1 | Batch), data = methods_data("Dyestuff"))

test_that("sd/cor parameters round-trip with theta and are named as lme4's", {
  fit <- ss_fit()
  sc <- theta_to_sdcor(fit$theta, fit$reterms, fit$sigma)
  vc <- VarCorr(fit)$Subject
  expect_equal(sc, c(attr(vc, "stddev")[1], attr(vc, "correlation")[2, 1],
                     attr(vc, "stddev")[2]), ignore_attr = TRUE, tolerance = 1e-12)
  expect_equal(sdcor_to_theta(sc, fit$reterms, fit$sigma), unname(fit$theta), tolerance = 1e-12)
  expect_identical(sdcor_names(fit$reterms),
                   c(".sig01", ".sig02", ".sig03", ".sigma"))
  expect_identical(sdcor_names(fit$reterms, signames = FALSE),
                   c("sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                     "sigma"))
  # correlation +-1 and a zero SD give a semi-definite factor; an impossible 3 x 3 block gives NA
  expect_equal(lower_chol(matrix(c(4, 2, 2, 1), 2)), matrix(c(2, 1, 0, 0), 2))
  expect_equal(lower_chol(matrix(c(0, 0, 0, 1), 2)), matrix(c(0, 0, 0, 1), 2))
  R <- matrix(c(1, 0.9, -0.9, 0.9, 1, 0.9, -0.9, 0.9, 1), 3)
  expect_null(lower_chol(R))
})

test_that("the sd/cor-scale deviance equals the ML criterion at the ML optimum", {
  fit <- ss_fit()
  ml <- ml_fit_of(fit)
  expect_false(ml$REML)
  engine <- engine_setup(ml$y, ml$X, ml$reterms, ml$weights, ml$offset)
  dev <- sdcor_deviance(engine, ml$reterms, ml$n)
  par <- c(theta_to_sdcor(ml$theta, ml$reterms, ml$sigma), ml$sigma)
  expect_equal(dev(par), ml$crit, tolerance = 1e-10)
  expect_equal(ml$crit, 1751.93934480795, tolerance = 1e-7)   # lme4: deviance(refitML(fm1))
  expect_gt(dev(par * c(1, 1, 1, 1.05)), ml$crit)
  expect_identical(dev(c(par[1:3], 0)), Inf)
})

test_that("profile() returns lme4's layout: zeta 0 at the optimum, increasing, signed", {
  fit <- dy_fit()
  pr <- profile(fit)
  expect_s3_class(pr, c("profile.lmm", "data.frame"))
  expect_identical(names(pr), c(".zeta", ".sig01", ".sigma", "(Intercept)", ".par"))
  expect_identical(levels(pr$.par), c(".sig01", ".sigma", "(Intercept)"))
  ml <- ml_fit_of(fit)
  for (nm in levels(pr$.par)) {
    d <- pr[pr$.par == nm, ]
    expect_true(all(diff(d$.zeta) > 0), info = nm)
    expect_true(any(d$.zeta < -2.5) || min(d[[nm]]) == 0, info = nm)
    expect_true(max(d$.zeta) > 2.5, info = nm)
    at0 <- which(d$.zeta == 0)
    expect_length(at0, 1L)
  }
  d <- pr[pr$.par == "(Intercept)", ]
  expect_equal(d[d$.zeta == 0, "(Intercept)"], unname(ml$beta), tolerance = 1e-10)
  # the SD profile stops at its bound 0 with lme4's zeta there (-2.3243980067)
  d <- pr[pr$.par == ".sig01", ]
  expect_equal(min(d$.sig01), 0)
  expect_equal(d$.zeta[1], -2.3243980067, tolerance = 1e-6)
  # the other parameters along a profile are the conditional optima
  d <- pr[pr$.par == ".sigma", ]
  expect_true(all(d$.sig01 >= 0))
  adf <- as.data.frame(pr)
  expect_identical(class(adf), "data.frame")
  expect_equal(adf$.focal, vapply(seq_len(nrow(adf)), function(i)
    adf[i, as.character(adf$.par[i])], 0))
})

test_that("profile() of a REML fit is the profile of its ML refit", {
  fit <- dy_fit()
  fitml <- lmm(Yield ~ 1 + (1 | Batch), data = methods_data("Dyestuff"), REML = FALSE)
  a <- profile(fit, which = ".sigma")
  b <- profile(fitml, which = ".sigma")
  expect_equal(confint(a), confint(b), tolerance = 1e-6)
  expect_equal(nrow(a), nrow(b))
})

test_that("which selects parameters by name, number, theta_ and beta_", {
  fit <- dy_fit()
  expect_identical(levels(profile(fit, which = "theta_")$.par), c(".sig01", ".sigma"))
  expect_identical(levels(profile(fit, which = "beta_")$.par), "(Intercept)")
  expect_identical(levels(profile(fit, which = 2)$.par), ".sigma")
  expect_error(profile(fit, which = "nope"), "unknown parameter")
  expect_identical(levels(profile(fit, which = 1, signames = FALSE)$.par), "sd_(Intercept)|Batch")
})

test_that("profiles in parallel equal the serial profile", {
  skip_on_os("windows")
  fit <- dy_fit()
  a <- profile(fit)
  b <- profile(fit, parallel = "multicore", ncpus = 2)
  expect_equal(as.data.frame(a), as.data.frame(b))
})

test_that("plot() of a profile draws without error", {
  fit <- dy_fit()
  pr <- profile(fit)
  pdf(NULL)
  on.exit(dev.off())
  expect_invisible(plot(pr))
  expect_invisible(plot(pr, absVal = TRUE, which = ".sigma"))
  expect_error(plot(pr, which = "nope"), "nothing to plot")
})

test_that("plot() of a profile keeps the user's par(mfrow) layout, or sets and restores its own", {
  fit <- dy_fit()
  pr <- profile(fit)
  pdf(NULL)
  on.exit(dev.off())
  plot(pr)                                    # 3 parameters on a one-panel device: own 2 x 2 grid
  expect_equal(par("mfrow"), c(1L, 1L))       # ... restored afterwards
  par(mfrow = c(2, 3))
  plot(pr)                                    # the user's 2 x 3 layout: panels 1-3 of it
  expect_equal(par("mfrow"), c(2L, 3L))
  expect_equal(par("mfg")[1:2], c(1L, 3L))    # the last panel drawn is row 1, column 3
})

test_that("a progress bar is shown only when asked", {
  fit <- dy_fit()
  out <- capture.output(pr <- profile(fit, which = 1:2, progress = TRUE))
  expect_true(any(grepl("=", out)) || any(grepl("%", out)))
  expect_length(capture.output(pr <- profile(fit, which = 1:2, progress = FALSE)), 0L)
})

## ---- residual structures -----------------------------------------------------------------------

test_that("a residual structure fixed at the identity gives the plain fit's profile intervals", {
  fits <- identity_fits()
  ref <- confint(fits$plain, quiet = TRUE)
  for (key in c("ar1", "vi"))
    expect_equal(confint(fits[[key]], quiet = TRUE), ref, tolerance = 1e-6)
})

test_that("profile intervals with corAR1: zeta is the dense ML deviance minimised over the rest", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  pr <- profile(fit)
  expect_identical(levels(pr$.par), c(".sig01", ".sigma", "(Intercept)", "age", "SexFemale"))
  ci <- confint(pr)
  # recorded 2026-12 (lmmc)
  expect_equal(unname(ci), cbind(c(1.1871282, 1.2235747, 16.0689772, 0.5328656, -3.8145075),
                                 c(2.3977784, 1.8346118, 19.3867219, 0.7847912, -0.8370245)),
               tolerance = 1e-6)
  # the dense ML deviance, minimised over phi and the other variance parameters
  y <- od$distance
  X <- model.matrix(fit)
  ZZ <- tcrossprod(as.matrix(model.matrix(fit, type = "random")))
  n <- length(y)
  pos <- ave(seq_len(n), od$Subject, FUN = seq_along)
  same <- outer(od$Subject, od$Subject, `==`)
  lag <- abs(outer(pos, pos, `-`))
  dev <- function(sd, phi, sigma, offset = 0, Xk = X) {
    V <- sd^2 * ZZ + sigma^2 * ifelse(same, phi^lag, 0)
    Vi <- solve(V)
    yo <- y - offset
    r <- yo - Xk %*% solve(crossprod(Xk, Vi %*% Xk), crossprod(Xk, Vi %*% yo))
    as.numeric(determinant(V)$modulus + crossprod(r, Vi %*% r) + n * log(2 * pi))
  }
  base <- nlminb(c(1.8, 0.2, 1.4), function(v) dev(v[1], v[2], v[3]),
                 lower = c(0, -0.99, 0.01), upper = c(Inf, 0.99, Inf))$objective
  ml <- ml_fit_of(fit)
  expect_equal(base, ml$crit, tolerance = 1e-8)
  z2 <- qnorm(0.975)^2
  at_sd <- function(s) nlminb(c(0.2, 1.4), function(v) dev(s, v[1], v[2]),
                              lower = c(-0.99, 0.01), upper = c(0.99, Inf))$objective
  at_sigma <- function(s) nlminb(c(1.8, 0.2), function(v) dev(v[1], v[2], s),
                                 lower = c(0, -0.99), upper = c(Inf, 0.99))$objective
  at_age <- function(b) nlminb(c(1.8, 0.2, 1.4), function(v)
    dev(v[1], v[2], v[3], offset = b * od$age, Xk = X[, -2, drop = FALSE]),
    lower = c(0, -0.99, 0.01), upper = c(Inf, 0.99, Inf))$objective
  for (k in 1:2) {
    expect_equal(at_sd(ci[".sig01", k]) - base, z2, tolerance = 1e-5)
    expect_equal(at_sigma(ci[".sigma", k]) - base, z2, tolerance = 1e-5)
    expect_equal(at_age(ci["age", k]) - base, z2, tolerance = 1e-5)
  }
})

test_that("bootstrap intervals of a residual fit: simulate with the structure, refit keeping it", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  set.seed(1)
  ci <- suppressWarnings(confint(fit, method = "boot", nsim = 40, quiet = TRUE))
  expect_identical(rownames(ci), c(".sig01", ".sigma", "(Intercept)", "age", "SexFemale"))
  expect_true(all(ci[, 1] < ci[, 2]))
  est <- c(attr(VarCorr(fit)$Subject, "stddev"), sigma(fit), fixef(fit))
  expect_true(all(ci[, 1] < est & est < ci[, 2]))
  bb <- bootstrap_lmm(fit, function(f) residual_parameters(f)$phi, nsim = 20, seed = 2)
  expect_true(all(abs(bb$t) < 1))            # phi re-estimated in every refit
  expect_gt(sd(bb$t), 0)
})

test_that("profile with corCAR1 near 1 (BodyWeight): the SD of Rat can reach 0, as the dense ML says", {
  # phi -> 1 makes the AR(1) part stand in for the random intercept: the profiled deviance of
  # sd(Rat) stays below qnorm(0.975)^2 all the way to 0, so the interval starts at 0.
  bw <- as.data.frame(nlme::BodyWeight)
  fit <- lmm(weight ~ Time * Diet + (1 | Rat), bw,
             correlation = nlme::corCAR1(form = ~ Time | Rat))
  pr <- expect_silent(profile(fit, which = ".sig01"))
  d <- pr[order(pr$.sig01), ]
  expect_true(all(diff(d$.zeta) > 0))
  expect_equal(d$.sig01[1], 0)
  # dense ML deviance at sd = 0, minimised over phi and sigma
  y <- bw$weight
  X <- model.matrix(fit)
  same <- outer(bw$Rat, bw$Rat, `==`)
  lag <- abs(outer(bw$Time, bw$Time, `-`))
  dev0 <- function(v) {
    V <- v[2]^2 * ifelse(same, v[1]^lag, 0)
    Vi <- solve(V)
    r <- y - X %*% solve(crossprod(X, Vi %*% X), crossprod(X, Vi %*% y))
    as.numeric(determinant(V)$modulus + crossprod(r, Vi %*% r)) + length(y) * log(2 * pi)
  }
  best <- min(vapply(list(c(0.96, 9), c(0.999, 30)), function(s)
    nlminb(s, dev0, lower = c(0, 0.1), upper = c(1 - 1e-6, Inf))$objective, 0))
  base <- ml_fit_of(fit)$crit
  expect_equal(d$.zeta[1], -sqrt(best - base), tolerance = 1e-6)
  expect_equal(d$.zeta[1], -1.7899037, tolerance = 1e-6)           # recorded 2026-12
  ci <- confint(pr)
  expect_equal(ci[1, 1], 0)
  expect_equal(ci[1, 2], 48.50785, tolerance = 1e-5)
})
