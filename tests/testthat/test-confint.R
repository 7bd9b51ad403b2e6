# Confidence intervals (R/confint.R) against lme4 1.1-31's confint.merMod (numbers recorded below
# with options(digits = 12)).  lme4 interpolates its profile with splines; lmmc finds the roots of
# the profile itself (exact = TRUE), so the two agree to the accuracy of lme4's interpolation
# (~2e-4 relative at worst, for the Dyestuff SD whose profile is flat near 0).

ss_fit <- function() lmm(Reaction ~ Days + (Days | Subject), data = methods_data("sleepstudy"))
dy_fit <- function() lmm(Yield ~ 1 + (1 | Batch), data = methods_data("Dyestuff"))

# lme4: confint(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
lme4_ci_ss <- matrix(c(14.381418160773, -0.481500758281, 3.801164053259, 22.898266882081,
                       237.680695505234, 7.358653275117,
                       37.715995318287, 0.684986273295, 8.753380753055, 28.857996511425,
                       265.129514680174, 13.575918751708), ncol = 2,
                     dimnames = list(c(".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)",
                                       "Days"), c("2.5 %", "97.5 %")))
# lme4: confint(lmer(Yield ~ 1 + (1 | Batch), Dyestuff))
lme4_ci_dy <- matrix(c(12.1985352131, 38.2299848826, 1486.4514999688,
                       84.0630467108, 67.6576962448, 1568.5484943681), ncol = 2,
                     dimnames = list(c(".sig01", ".sigma", "(Intercept)"), c("2.5 %", "97.5 %")))
# lme4: confint(fm1, level = 0.9)
lme4_ci_ss90 <- matrix(c(15.757286793559, -0.405084109068, 4.065899351241, 23.298326947122,
                         240.072948583745, 7.900507999369,
                         34.960149024334, 0.595494106774, 8.145330386943, 28.287832274026,
                         262.737260817039, 13.034063821327), ncol = 2)
# lme4: confint(lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy))
lme4_ci_ss2 <- matrix(c(15.25864667770, 3.96407385584, 22.88055464833, 237.57214801076,
                        7.33406682885,
                        37.7864709004, 8.7691591620, 28.7875975946, 265.2380617589,
                        13.6005051066), ncol = 2)
# lme4: confint(lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin))
lme4_ci_pen <- matrix(c(0.6335659670, 1.0957893024, 0.4858454002, 21.2666273836,
                        1.1821039760, 3.5562909526, 0.6294534785, 24.6778176162), ncol = 2)
# lme4: confint(fm1, method = "Wald") (fixed-effect rows; lme4's own optimum differs from the
# exact one by ~1e-5 in theta, hence the tolerance)
lme4_wald_ss <- matrix(c(238.02914111736, 7.43759392987, 264.7810685796, 13.4969779893), 2)

test_that("profile intervals match lme4's (sleepstudy, correlated random slope)", {
  ci <- suppressMessages(confint(ss_fit()))
  expect_identical(dimnames(ci), dimnames(lme4_ci_ss))
  expect_close(ci[1:4, ], lme4_ci_ss[1:4, ], tol = 1e-4, scale = 1)
  expect_close(ci[5:6, ], lme4_ci_ss[5:6, ], tol = 1e-6)
  # exact roots of the profile (found independently by multi-start nlminb + uniroot)
  expect_close(ci[1:3, ], c(14.3813845203, -0.481492580624, 3.80117728435,
                            37.7160549906, 0.685018968520, 8.75339198699), tol = 1e-6)
})

test_that("profile intervals match lme4's (Dyestuff: profile of the SD reaches 0)", {
  fit <- dy_fit()
  ci <- suppressMessages(confint(fit))
  expect_identical(dimnames(ci), dimnames(lme4_ci_dy))
  expect_close(ci, lme4_ci_dy, tol = 3e-4)
  # a level the SD profile does not reach: the lower end is the bound 0, as in lme4
  ci99 <- suppressMessages(confint(fit, level = 0.99, parm = ".sig01"))
  expect_identical(ci99[1, 1], 0)
})

test_that("profile intervals: other levels, parm, independent terms, crossed factors", {
  fit <- ss_fit()
  ci <- suppressMessages(confint(fit, level = 0.9))
  expect_identical(colnames(ci), c("5 %", "95 %"))
  expect_close(ci, lme4_ci_ss90, tol = 2e-4, scale = 1)
  ci <- suppressMessages(confint(fit, parm = c(".sigma", "Days")))
  expect_identical(rownames(ci), c(".sigma", "Days"))
  expect_close(ci, lme4_ci_ss[c(4, 6), ], tol = 1e-6)
  fit2 <- lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject),
              data = methods_data("sleepstudy"))
  expect_close(suppressMessages(confint(fit2, quiet = TRUE)), lme4_ci_ss2, tol = 1e-4)
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), data = methods_data("Penicillin"))
  expect_close(confint(pen, quiet = TRUE), lme4_ci_pen, tol = 1e-4)
  expect_message(confint(dy_fit(), parm = 2), "Computing profile confidence intervals")
})

test_that("interpolated and exact profile intervals agree closely", {
  pr <- profile(ss_fit())
  a <- confint(pr)
  b <- confint(pr, exact = FALSE)
  expect_close(b, a, tol = 5e-4, scale = 1)
  expect_identical(rownames(confint(pr, parm = "beta_")), c("(Intercept)", "Days"))
  expect_identical(rownames(confint(pr, parm = "theta_")), c(".sig01", ".sig02", ".sig03",
                                                            ".sigma"))
  z <- confint(pr, zeta = c(-1, 1))
  expect_true(all(z[, 1] > a[, 1] & z[, 2] < a[, 2]))
  expect_error(confint(pr, parm = "nope"), "not profiled")
})

test_that("Wald intervals: fixed effects only, NA rows for variance parameters (as lme4)", {
  fit <- ss_fit()
  ci <- confint(fit, method = "Wald")
  expect_identical(dimnames(ci), dimnames(lme4_ci_ss))
  expect_true(all(is.na(ci[1:4, ])))
  se <- sqrt(diag(vcov(fit)))
  expect_equal(unname(ci[5:6, 2]), unname(fixef(fit) + qnorm(0.975) * se), tolerance = 1e-12)
  expect_close(ci[5:6, ], lme4_wald_ss, tol = 1e-6)
  ci <- confint(fit, method = "Wald", oldNames = FALSE, parm = "Days", level = 0.8)
  expect_identical(dimnames(ci), list("Days", c("10 %", "90 %")))
  expect_error(confint(fit, method = "Wald", level = 2), "'level'")
})

test_that("bootstrap intervals: reproducible, lme4's bootMer numbers, boot.ci's conventions", {
  fit <- dy_fit()
  f <- function(x) c(fixef(x), sigma = sigma(x), theta = unname(x$theta))
  bb <- bootstrap_lmm(fit, f, nsim = 20, seed = 1)
  # lme4: bootMer(fm, function(x) c(fixef(x), sigma(x), getME(x, "theta")), nsim = 20, seed = 1)
  lme4_t <- matrix(c(1509.941428, 1563.018778, 1525.010528, 1524.126959, 1520.846848,
                     47.473112, 51.589498, 55.309055, 50.683027, 45.302407,
                     0.528389, 0.570703, 1.043184, 0.797531, 0.724982), 5)
  expect_close(bb$t[1:5, ], lme4_t, tol = 1e-4)
  ci <- suppressWarnings(confint(bb))
  expect_close(ci, c(1502.6538764, 44.4429574, 0, 1564.050499188, 67.330167024, 1.453011761),
               tol = 1e-4, scale = 1)
  expect_warning(confint(bb), "extreme order statistics")
  ci1 <- suppressWarnings(suppressMessages(confint(fit, method = "boot", nsim = 30, seed = 2)))
  ci2 <- suppressWarnings(suppressMessages(confint(fit, method = "boot", nsim = 30, seed = 2)))
  expect_identical(ci1, ci2)
  expect_identical(rownames(ci1), c(".sig01", ".sigma", "(Intercept)"))
  # the percentile interval of 999 replicates is the 25th and 975th order statistics
  t <- c(sort(rnorm(999)))
  expect_equal(order_stat_quantile(t, c(0.025, 0.975)), t[c(25, 975)])
  expect_true(attr(order_stat_quantile(t[1:20], 0.01), "extreme"))
})

test_that("bootstrap interval types agree with boot::boot.ci", {
  skip_if_not_installed("boot")
  fit <- dy_fit()
  bb <- bootstrap_lmm(fit, function(x) c(fixef(x), sigma(x)), nsim = 40, seed = 3)
  bo <- structure(list(t0 = bb$t0, t = bb$t, R = bb$R, sim = "parametric", stype = "i",
                       call = quote(boot()), strata = rep(1, 30), weights = rep(1 / 30, 30)),
                  class = "boot")
  for (type in c("perc", "basic", "norm")) {
    field <- c(perc = "percent", basic = "basic", norm = "normal")[[type]]
    ref <- t(sapply(1:2, function(i) {
      r <- boot::boot.ci(bo, index = i, type = type)[[field]]
      r[, ncol(r) - 1:0]
    }))
    expect_equal(unname(confint(bb, type = type)), unname(ref), tolerance = 1e-10, info = type)
  }
})

test_that("intervals agree with lme4 live", {
  skip_if_not_installed("lme4")
  ss <- methods_data("sleepstudy")
  fm <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss,
                   control = lme4::lmerControl(optimizer = "bobyqa"))
  fit <- ss_fit()
  expect_close(confint(fit, method = "Wald")[5:6, ], confint(fm, method = "Wald")[5:6, ],
               tol = 1e-5)
  sw <- ss
  sw$w <- rep(c(1, 2, 0.5), 60)
  # lme4 profiles weighted fits' variance parameters correctly (its fixed-effect profile
  # ignores the weights), so only those are compared
  fw <- lme4::lmer(Reaction ~ Days + (1 | Subject), sw, weights = w)
  ref <- suppressWarnings(confint(fw, parm = 1:2, quiet = TRUE))
  ours <- confint(lmm(Reaction ~ Days + (1 | Subject), sw, weights = w), parm = 1:2, quiet = TRUE)
  expect_close(ours, ref, tol = 1e-4)
})
