# icc(), r2(), pve(): values against the published formulas applied to variance components
# recorded from lme4 1.1-31 (as.data.frame(VarCorr(m))$vcov, fixef(m), and
# var(drop(getME(m, "X") %*% fixef(m))) for the fixed-effect variance), REML fits.
# performance / MuMIn are not used: the formulas are written out below.
#
#   adjusted ICC_g    = s2_g / (sum s2_k + s2_e)
#   conditional ICC_g = s2_g / (s2_f + sum s2_k + s2_e)
#   R2_marginal       = s2_f / (s2_f + sum s2_k + s2_e)
#   R2_conditional    = (s2_f + sum s2_k) / (s2_f + sum s2_k + s2_e)
#   s2_k (Johnson 2014) = mean_i z_i' Sigma_k z_i, for (1 + x | g): s11 + 2 mean(x) s12 + mean(x^2) s22
#   pve_c             = (s2_c(null) - s2_c(fit)) / s2_c(null)

ref_vc <- list(
  # Reaction ~ Days + (Days | Subject): Subject (Intercept), Days, cov, Residual
  sleep = list(vcov = c(612.100158024769, 35.0717144509388, 9.60440895115776, 654.940008259961),
               var_fixed = 908.953362623092),
  # Reaction ~ Days + (1 | Subject) + (0 + Days | Subject): Subject, Subject.1, Residual
  sleep_uncorr = list(vcov = c(627.56905083573, 35.8583796393533, 653.583500654207),
                      var_fixed = 908.953362623099),
  # nlme MathAchieve: MathAch ~ 1 + (1 | School) and MathAch ~ SES + (1 | School)
  hsb0 = list(vcov = c(8.61402483714869, 39.1483218909986), var_fixed = 0),
  hsb1 = list(vcov = c(4.76817462534614, 37.0343985333516), var_fixed = 3.47006671751774),
  # nlme Orthodont: distance ~ age + (age | Subject); distance ~ age + Sex + (1 | Subject);
  # distance ~ 1 + (1 | Subject)
  orth_slope = list(vcov = c(5.41657047950509, 0.0512790849662466, -0.321183071443253,
                             1.71615747491272), var_fixed = 2.19958895811707),
  orth_sex = list(vcov = c(3.2667837304769, 2.04945601724488), var_fixed = 3.51234463010174),
  orth_null = list(vcov = c(3.75197355334515, 4.9297839431671), var_fixed = 0)
)

hsb_data <- function() {
  env <- new.env()
  utils::data("MathAchieve", package = "nlme", envir = env)
  as.data.frame(env$MathAchieve)
}
orth_data <- function() {
  env <- new.env()
  utils::data("Orthodont", package = "nlme", envir = env)
  d <- as.data.frame(env$Orthodont)
  d$Subject <- factor(as.character(d$Subject))
  d
}

icc_fits <- local({
  cache <- list()
  function(key) {
    if (is.null(cache[[key]])) {
      cache[[key]] <<- switch(key,
        sleep = lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")),
        sleep_uncorr = lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject),
                           ref_data("sleepstudy")),
        hsb0 = lmm(MathAch ~ 1 + (1 | School), hsb_data()),
        hsb1 = lmm(MathAch ~ SES + (1 | School), hsb_data()),
        orth_slope = lmm(distance ~ age + (age | Subject), orth_data()),
        orth_sex = lmm(distance ~ age + Sex + (1 | Subject), orth_data()),
        orth_null = lmm(distance ~ 1 + (1 | Subject), orth_data()))
    }
    cache[[key]]
  }
})

# Hand formulas on recorded numbers.
hand_parts <- function(s2_f, s2_g, s2_e) {
  tot_re <- sum(s2_g) + s2_e
  list(adjusted = s2_g / tot_re, conditional = s2_g / (tot_re + s2_f),
       marginal = s2_f / (tot_re + s2_f), r2c = (s2_f + sum(s2_g)) / (tot_re + s2_f))
}

test_that("sleepstudy (Days | Subject): Johnson's random-slope variance, R2 and ICC", {
  r <- ref_vc$sleep
  # Days = 0..9 for every subject: mean(Days) = 4.5, mean(Days^2) = 28.5
  s2_g <- r$vcov[1] + 2 * 4.5 * r$vcov[3] + 28.5 * r$vcov[2]
  h <- hand_parts(r$var_fixed, s2_g, r$vcov[4])
  fit <- icc_fits("sleep")
  parts <- attr(r2(fit), "components")
  expect_close(parts, c(r$var_fixed, s2_g, r$vcov[4]), 1e-5)
  expect_equal(names(parts), c("fixed", "random.Subject", "residual"))
  expect_close(unclass(r2(fit)), c(h$marginal, h$r2c), 1e-5)
  expect_equal(round(c(r2(fit)), 4), c(marginal = 0.2787, conditional = 0.7992))
  ic <- icc(fit)
  expect_s3_class(ic, "lmm_icc")
  expect_equal(ic$group, "Subject")
  expect_close(ic$adjusted, h$adjusted, 1e-5)
  expect_close(ic$conditional, h$conditional, 1e-5)
  expect_output(print(r2(fit)), "Marginal R2: +0\\.2787")
  expect_output(print(ic), "Subject")
})

test_that("two terms on one factor are pooled into the factor's variance", {
  r <- ref_vc$sleep_uncorr
  s2_g <- r$vcov[1] + 28.5 * r$vcov[2]
  h <- hand_parts(r$var_fixed, s2_g, r$vcov[3])
  fit <- icc_fits("sleep_uncorr")
  ic <- icc(fit)
  expect_equal(ic$group, "Subject")
  expect_close(ic$variance, s2_g, 1e-5)
  expect_close(ic$adjusted, h$adjusted, 1e-5)
  expect_close(unclass(r2(fit)), c(h$marginal, h$r2c), 1e-5)
})

test_that("High School and Beyond: ICC of the empty model and of MathAch ~ SES", {
  r0 <- ref_vc$hsb0
  fit0 <- icc_fits("hsb0")
  ic0 <- icc(fit0)
  expect_close(ic0$adjusted, r0$vcov[1] / sum(r0$vcov), 1e-5)
  expect_equal(round(ic0$adjusted, 4), 0.1804)                     # the textbook 18%
  expect_equal(ic0$conditional, ic0$adjusted)                      # no fixed-effect variance
  expect_equal(unname(unclass(r2(fit0))["marginal"]), 0)

  r1 <- ref_vc$hsb1
  h <- hand_parts(r1$var_fixed, r1$vcov[1], r1$vcov[2])
  ic1 <- icc(icc_fits("hsb1"))
  expect_close(ic1$adjusted, h$adjusted, 1e-5)
  expect_close(ic1$conditional, h$conditional, 1e-5)
  expect_close(unclass(r2(icc_fits("hsb1"))), c(h$marginal, h$r2c), 1e-5)
})

test_that("pve: Raudenbush-Bryk proportional reduction of each variance component", {
  r0 <- ref_vc$hsb0
  r1 <- ref_vc$hsb1
  p <- pve(icc_fits("hsb1"), icc_fits("hsb0"))
  expect_s3_class(p, "lmm_pve")
  expect_equal(p$group, c("School", "Residual"))
  expect_equal(p$term, c("(Intercept)", ""))
  expect_close(p$null, r0$vcov, 1e-5)
  expect_close(p$fit, r1$vcov, 1e-5)
  expect_close(p$pve, (r0$vcov - r1$vcov) / r0$vcov, 1e-4)
  expect_equal(round(p$pve, 3), c(0.446, 0.054))
  # the default baseline is the empty model with the same grouping factors
  expect_equal(pve(icc_fits("hsb1"))$pve, p$pve, tolerance = 1e-6)
  expect_output(print(p), "School")
})

test_that("pve on Orthodont: adding Sex explains between-subject variance", {
  rn <- ref_vc$orth_null
  rs <- ref_vc$orth_sex
  p <- pve(icc_fits("orth_sex"), icc_fits("orth_null"))
  expect_close(p$pve, (rn$vcov - rs$vcov) / rn$vcov, 1e-4)
  expect_gt(p$pve[1], 0.1)
  h <- hand_parts(rs$var_fixed, rs$vcov[1], rs$vcov[2])
  ic <- icc(icc_fits("orth_sex"))
  expect_close(c(ic$adjusted, ic$conditional), c(h$adjusted, h$conditional), 1e-5)
})

test_that("Orthodont (age | Subject): random-slope extension with a negative covariance", {
  r <- ref_vc$orth_slope
  # age = 8, 10, 12, 14 for every subject: mean 11, mean(age^2) = 126
  s2_g <- r$vcov[1] + 2 * 11 * r$vcov[3] + 126 * r$vcov[2]
  h <- hand_parts(r$var_fixed, s2_g, r$vcov[4])
  fit <- icc_fits("orth_slope")
  expect_close(icc(fit)$variance, s2_g, 1e-4)
  expect_close(unclass(r2(fit)), c(h$marginal, h$r2c), 1e-4)
})

test_that("several grouping factors: one ICC each, sharing the denominator", {
  fit <- lmm(strength ~ 1 + (1 | batch/cask), ref_data("Pastes"))
  vc <- as.data.frame(VarCorr(fit))
  ic <- icc(fit)
  expect_equal(ic$group, c("cask:batch", "batch"))
  expect_equal(ic$adjusted, vc$vcov[1:2] / sum(vc$vcov))
  expect_equal(ic$conditional, ic$adjusted)
})

test_that("pve refuses models fitted to different responses", {
  d <- ref_data("sleepstudy")
  fit <- icc_fits("sleep")
  other <- lmm(Reaction ~ Days + (1 | Subject), d[d$Days > 0, ])
  expect_error(pve(fit, other), "not fitted to the same responses")
  expect_error(pve(fit, "a"), "'null_fit' must be")
  expect_error(icc(lm(Reaction ~ Days, d)), "must be an \"lmm\" fit")
})

test_that("icc intervals by parametric bootstrap: reproducible by seed and around the estimate", {
  fit <- icc_fits("orth_sex")
  a <- icc(fit, ci = TRUE, nsim = 40, seed = 1)
  b <- icc(fit, ci = TRUE, nsim = 40, seed = 1)
  expect_identical(a, b)
  expect_true(a$adjusted_lower < a$adjusted && a$adjusted < a$adjusted_upper)
  expect_true(a$conditional_lower < a$conditional && a$conditional < a$conditional_upper)
  expect_true(all(c(a$adjusted_lower, a$adjusted_upper) > 0 & c(a$adjusted_lower, a$adjusted_upper) < 1))
  expect_equal(attr(a, "ci")$nsim, 40L)
  expect_output(print(a), "95% percentile intervals from 40 parametric bootstrap refits")
  expect_error(icc(fit, ci = TRUE, level = 2), "'level' must be")
  expect_error(icc(fit, ci = TRUE, nsim = 0), "'nsim'")
})

test_that("bootstrap refits recover the known statistic: the refit of the observed y is the fit", {
  fit <- icc_fits("orth_sex")
  refit <- lmm_fit(fit$y, fit$X, fit$reterms, REML = TRUE, control = quiet_control(),
                   start = fit$theta)
  expect_close(refit$theta, fit$theta, 1e-4)
  expect_close(icc(refit)$adjusted, icc(fit)$adjusted, 1e-4)
})

test_that("live: formulas applied to lme4's own VarCorr", {
  skip_if_not_installed("lme4")
  m <- lme4::lmer(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  X <- lme4::getME(m, "X")
  Z <- lme4::getME(m, "mmList")[[1]]
  S <- unclass(lme4::VarCorr(m)$Subject)
  s2_g <- mean(rowSums((Z %*% S) * Z))
  h <- hand_parts(var(drop(X %*% lme4::fixef(m))), s2_g, sigma(m)^2)
  fit <- icc_fits("sleep")
  expect_close(unclass(r2(fit)), c(h$marginal, h$r2c), 1e-5)
  expect_close(icc(fit)$adjusted, h$adjusted, 1e-5)
})

# Profile-likelihood bounds of the adjusted ICC psi = theta^2 / (1 + theta^2) of a one-factor
# random-intercept model: roots of devfun(sqrt(psi / (1 - psi))) - REMLcrit = qchisq(0.95, 1),
# with devfun = lme4::lmer(..., devFunOnly = TRUE) (lme4 1.1-31; uniroot, tol 1e-12).
ref_icc_profile <- list(
  Dyestuff = c(estimate = 0.4184874159183, lower = 0.0686137155476, upper = 0.8187498657848),
  hsb0 = c(estimate = 0.180351792301, lower = 0.147177512431, upper = 0.221027479529)
)

test_that("profile intervals for the adjusted ICC agree with lme4's profiled REML criterion", {
  fit <- lmm(Yield ~ 1 + (1 | Batch), ref_data("Dyestuff"))
  ic <- icc(fit, ci = TRUE, method = "profile")
  expect_close(c(ic$adjusted, ic$adjusted_lower, ic$adjusted_upper), ref_icc_profile$Dyestuff, 1e-4)
  # at each bound the criterion exceeds the optimum by the chi-square cut-off
  crit <- lmm_objective(fit)
  at <- function(psi) crit(sqrt(psi / (1 - psi))) - REMLcrit(fit)
  expect_close(c(at(ic$adjusted_lower), at(ic$adjusted_upper)), rep(qchisq(0.95, 1), 2), 1e-6)
  expect_output(print(ic), "95% profile-likelihood intervals \\(REML criterion\\)")

  ic0 <- icc(icc_fits("hsb0"), ci = TRUE, method = "profile", level = 0.95)
  expect_close(c(ic0$adjusted, ic0$adjusted_lower, ic0$adjusted_upper), ref_icc_profile$hsb0, 1e-5)
  # a narrower level gives a nested interval
  ic9 <- icc(icc_fits("hsb0"), ci = TRUE, method = "profile", level = 0.9)
  expect_true(ic9$adjusted_lower > ic0$adjusted_lower && ic9$adjusted_upper < ic0$adjusted_upper)
})

test_that("profile intervals with two factors minimise over the other variance; boundary at 0", {
  fit <- lmm(strength ~ 1 + (1 | batch/cask), ref_data("Pastes"))
  ic <- icc(fit, ci = TRUE, method = "profile")
  expect_true(all(ic$adjusted_lower <= ic$adjusted & ic$adjusted <= ic$adjusted_upper))
  # batch: the profile at psi = 0 is within the cut-off, so the interval starts at 0
  expect_equal(ic$adjusted_lower[2], 0)
  # cask:batch lower bound: the constrained minimum exceeds the optimum by the cut-off
  crit <- lmm_objective(fit)
  excess <- icc_profile_excess(crit, fit$theta, 1L, ic$adjusted_lower[1]) - REMLcrit(fit)
  expect_close(excess, qchisq(0.95, 1), 1e-5)
  # and any other theta on that constraint is worse
  psi <- ic$adjusted_lower[1]
  th_b <- fit$theta[2] * 1.5
  th_c <- sqrt(psi * (1 + th_b^2) / (1 - psi))
  expect_gt(crit(c(th_c, th_b)) - REMLcrit(fit), qchisq(0.95, 1))
  expect_error(icc(icc_fits("sleep"), ci = TRUE, method = "profile"), "random intercepts only")
})

test_that("live: profile bounds from lme4's own deviance function", {
  skip_if_not_installed("lme4")
  d <- ref_data("Dyestuff")
  devfun <- lme4::lmer(Yield ~ 1 + (1 | Batch), d, devFunOnly = TRUE)
  m <- lme4::lmer(Yield ~ 1 + (1 | Batch), d)
  ic <- icc(lmm(Yield ~ 1 + (1 | Batch), d), ci = TRUE, method = "profile")
  at <- function(psi) devfun(sqrt(psi / (1 - psi))) - lme4::REMLcrit(m)
  expect_close(c(at(ic$adjusted_lower), at(ic$adjusted_upper)), rep(qchisq(0.95, 1), 2), 1e-5)
})

test_that("pve()'s baseline fit uses the fit's control (iterative stays iterative)", {
  d <- small_crossed()
  it <- iterative_control()
  f <- lmm(y ~ x + (1 | a) + (1 | b), d, control = it)
  p <- pve(f)
  base <- lmm(y ~ 1 + (1 | a) + (1 | b), d, control = it)
  expect_equal(p$null, as.data.frame(VarCorr(base))$vcov, tolerance = 1e-8)
  exact <- lmm(y ~ 1 + (1 | a) + (1 | b), d)
  expect_gt(max(abs(p$null - as.data.frame(VarCorr(exact))$vcov)), 1e-6)
})
