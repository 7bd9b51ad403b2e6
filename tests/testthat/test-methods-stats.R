# family(), extractAIC() (R/methods-stats.R), fixef(add.dropped = TRUE) (R/methods-ranef.R) and
# model.frame(fixed.only = TRUE) (R/methods-accessors.R): lme4 1.1-31's behaviours for lmer fits.
# Reference numbers printed by lme4 1.1-31 (R 4.2.2) on the data sets named.

sleep <- ref_data("sleepstudy")
pen <- ref_data("Penicillin")
fit_ss <- lmm(Reaction ~ Days + (Days | Subject), sleep)

test_that("family() is gaussian with the identity link, as lme4's for lmer fits", {
  fam <- family(fit_ss)
  expect_s3_class(fam, "family")
  expect_identical(fam$family, "gaussian")
  expect_identical(fam$link, "identity")
})

test_that("extractAIC() gives c(edf, AIC) of the ML fit, as lme4's extractAIC.merMod", {
  # lme4: extractAIC(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)) = 6, 1763.93934446;
  # with k = log(180): 6, 1783.09708557; REML = FALSE fit: 6, 1763.93934449
  a <- extractAIC(fit_ss)
  expect_identical(a[1], 6)
  expect_close(a[2], 1763.93934446, tol = 1e-8)
  expect_close(extractAIC(fit_ss, k = log(180))[2], 1783.09708557, tol = 1e-8)
  ml <- lmm(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  expect_close(extractAIC(ml), c(6, 1763.93934449), tol = 1e-8)
  expect_equal(extractAIC(ml)[2], AIC(ml))
  # Orthodont (nlme): lme4 gives 5, 444.856485094
  data(Orthodont, package = "nlme", envir = environment())
  fo <- lmm(distance ~ age + Sex + (1 | Subject), Orthodont)
  expect_close(extractAIC(fo), c(5, 444.856485094), tol = 1e-8)
})

test_that("fixef(add.dropped = TRUE) puts NA for aliased columns in the original order", {
  d <- sleep
  d$D2 <- 2 * d$Days
  expect_message(fit <- lmm(Reaction ~ D2 + Days + (1 | Subject), d), "rank deficient")
  expect_identical(names(fixef(fit)), c("(Intercept)", "D2"))
  # lme4: (Intercept) 251.4051048485, D2 5.2336429798, Days NA
  fe <- fixef(fit, add.dropped = TRUE)
  expect_identical(names(fe), c("(Intercept)", "D2", "Days"))
  expect_close(fe[1:2], c(251.4051048485, 5.2336429798), tol = 1e-6)
  expect_true(is.na(fe[["Days"]]))
  # Penicillin with an aliased column in the middle: lme4 drops sampleC
  pen$s2 <- as.numeric(pen$sample == "B") + as.numeric(pen$sample == "C")
  fp <- suppressMessages(lmm(diameter ~ s2 + sample + (1 | plate), pen))
  fe <- fixef(fp, add.dropped = TRUE)
  expect_identical(names(fe), c("(Intercept)", "s2", "sampleB", "sampleC", "sampleD", "sampleE",
                                "sampleF"))
  expect_close(fe[-4], c(25.16666666667, -0.25, -2.95833333333, -2.29166666667,
                         -2.20833333333, -5.20833333333), tol = 1e-6)
  expect_true(is.na(fe[["sampleC"]]))
  # nothing dropped: add.dropped changes nothing
  expect_identical(fixef(fit_ss, add.dropped = TRUE), fixef(fit_ss))
})

test_that("model.frame(fixed.only = TRUE) keeps transformed columns, as lme4", {
  fit <- lmm(Reaction ~ log(1 + Days) + (Days | Subject), sleep)
  mf <- model.frame(fit, fixed.only = TRUE)
  # lme4: names "Reaction", "log(1 + Days)"; values log(1 + Days)
  expect_identical(names(mf), c("Reaction", "log(1 + Days)"))
  expect_equal(mf[["log(1 + Days)"]], log1p(sleep$Days))
  expect_identical(rownames(mf), rownames(model.frame(fit)))
  # offset() terms and weights are kept too (lme4: Reaction, log(1 + Days), offset(Days), (weights))
  fw <- lmm(Reaction ~ log(1 + Days) + offset(Days) + (Days | Subject), sleep,
            weights = rep(2, 180))
  expect_identical(names(model.frame(fw, fixed.only = TRUE)),
                   c("Reaction", "log(1 + Days)", "offset(Days)", "(weights)"))
})

test_that("live: family, extractAIC, fixef(add.dropped) and model.frame as lme4", {
  skip_if_not_installed("lme4")
  fm <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)
  expect_equal(family(fit_ss)$family, stats::family(fm)$family)
  expect_close(extractAIC(fit_ss), stats::extractAIC(fm), tol = 1e-8)
  d <- sleep
  d$D2 <- 2 * d$Days
  fl <- suppressMessages(lme4::lmer(Reaction ~ Days + D2 + (1 | Subject), d))
  fit <- suppressMessages(lmm(Reaction ~ Days + D2 + (1 | Subject), d))
  expect_identical(names(fixef(fit, add.dropped = TRUE)), names(lme4::fixef(fl, add.dropped = TRUE)))
  expect_close(fixef(fit, add.dropped = TRUE)[1:2], lme4::fixef(fl, add.dropped = TRUE)[1:2],
               tol = 1e-6)
  f2 <- lme4::lmer(Reaction ~ log(1 + Days) + (Days | Subject), sleep)
  m2 <- lmm(Reaction ~ log(1 + Days) + (Days | Subject), sleep)
  expect_equal(model.frame(m2, fixed.only = TRUE), model.frame(f2, fixed.only = TRUE))
})
