# car::Anova and car::linearHypothesis on lmm fits (R/car.R).  Reference numbers: car 3.1-1 on the
# lme4 1.1-31 fit of the same model (Wald chi-square; F with Kenward-Roger df through pbkrtest
# 0.5.2), and lmerTest 3.1-3's contest() for the Satterthwaite F of the same hypotheses.
# Recorded 2026-12.  Statistics agree to 1e-4 relative (lmmc and lme4 optimise to slightly
# different points); df to 1e-4, 5e-4 for the boundary (singular) fit `orthu`.

skip_if_not_installed("car")

# orthodont, orthodont_u, math_achieve: helper-ecosystem-data.R

car_fit <- local({
  cache <- list()
  function(key) {
    if (is.null(cache[[key]])) cache[[key]] <<- switch(key,
      ss = lmm(Reaction ~ Days + (Days | Subject), sleepstudy),
      orth = lmm(distance ~ age * Sex + (1 | Subject), orthodont),
      orthu = suppressWarnings(lmm(distance ~ age * Sex + (age | Subject), orthodont_u)),
      ma = lmm(MathAch ~ SES * Sector + (1 | School), math_achieve),
      ma2 = lmm(MathAch ~ SES * Sector + MEANSES + (1 | School), math_achieve),
      pen = lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
      ar1 = lmm(distance ~ age * Sex + (1 | Subject), orthodont, correlation = nlme::corAR1()))
    cache[[key]]
  }
})

expect_table <- function(tab, ref, tol = 1e-4, df_tol = tol) {
  for (nm in names(ref)) {
    t <- if (nm %in% c("Df.res", "Res.Df")) df_tol else tol
    expect_close(tab[[nm]], ref[[nm]], t, scale = if (grepl("^Pr", nm)) 1e-12 else 0, what = nm)
  }
}

## ---- Wald chi-square: car::Anova(lmer fit, type = 2 / 3) -------------------------------------

test_that("Anova type II and III chi-square match car on lme4 fits", {
  # car::Anova(lmer(Reaction ~ Days + (Days | Subject), sleepstudy), type = 2 / 3)
  a2 <- car::Anova(car_fit("ss"), type = 2)
  expect_identical(rownames(a2), "Days")
  expect_table(a2, list(Chisq = 45.85296156, Df = 1, `Pr(>Chisq)` = 1.27470273e-11))
  expect_table(car::Anova(car_fit("ss"), type = 3),
               list(Chisq = c(1357.044849, 45.85296156), Df = c(1, 1)))
  # Orthodont distance ~ age * Sex + (1 | Subject)
  a2 <- car::Anova(car_fit("orth"), type = "II")
  expect_identical(rownames(a2), c("age", "Sex", "age:Sex"))
  expect_table(a2, list(Chisq = c(122.4502129, 9.292098661, 6.302708946),
                        `Pr(>Chisq)` = c(1.839743836e-28, 0.002301443488, 0.01205536102)))
  a3 <- car::Anova(car_fit("orth"), type = "III")
  expect_identical(rownames(a3), c("(Intercept)", "age", "Sex", "age:Sex"))
  expect_table(a3, list(Chisq = c(277.2827791, 102.4310679, 0.4506713613, 6.302708946)))
  expect_match(attr(a3, "heading")[1], "Type III Wald chisquare tests")
  expect_identical(attr(a3, "heading")[2], "Response: distance")
})

test_that("Anova on MathAchieve (with and without MEANSES), Penicillin and an unbalanced fit", {
  expect_table(car::Anova(car_fit("ma"), type = 2),
               list(Chisq = c(508.8018579, 37.9030242, 38.35080746)))
  expect_table(car::Anova(car_fit("ma"), type = 3),
               list(Chisq = c(2665.530181, 440.5197197, 39.23687797, 38.35080746)))
  expect_table(car::Anova(car_fit("ma2"), type = 2),
               list(Chisq = c(408.6703062, 16.28089815, 69.9802459, 40.37122962)))
  expect_table(car::Anova(car_fit("ma2"), type = 3),
               list(Chisq = c(3813.697034, 381.6422008, 16.89157593, 69.9802459, 40.37122962)))
  expect_table(car::Anova(car_fit("pen"), type = 3), list(Chisq = 807.1300679, Df = 1))
  expect_error(car::Anova(car_fit("pen"), type = 2), "no fixed-effect terms")
  expect_table(car::Anova(car_fit("orthu"), type = 2),
               list(Chisq = c(74.0402008, 7.255246368, 5.303414465)))
  expect_table(car::Anova(car_fit("orthu"), type = 3),
               list(Chisq = c(276.1528782, 66.62373729, 0.6930768411, 5.303414465)))
})

test_that("residual structures: Wald chi-square as car on nlme::lme", {
  f <- car_fit("ar1")
  # car::Anova(lme(distance ~ age * Sex, random = ~ 1 | Subject, Orthodont,
  #                correlation = corAR1()), type = 2 / 3)
  expect_table(car::Anova(f, type = 2), list(Chisq = c(127.5654418, 9.256472936, 6.614535672)))
  a <- car::Anova(f, type = 3)
  expect_table(a, list(Chisq = c(285.0400444, 106.8347198, 0.4813082948, 6.614535672)))
  b <- fixef(f)^2 / diag(as.matrix(vcov(f)))
  expect_equal(a$Chisq, unname(b), tolerance = 1e-10)
})

test_that("residual structures: F tests with Satterthwaite df (their default: no Kenward-Roger)", {
  f <- car_fit("ar1")
  tab <- summary(f)$coefficients
  a3 <- car::Anova(f, type = 3, test.statistic = "F")
  expect_match(attr(a3, "heading")[1], "Type III Wald F tests with Satterthwaite df")
  # one coefficient per term: F = t^2 on the t test's Satterthwaite df
  expect_equal(a3$F, unname(tab[, "t value"]^2), tolerance = 1e-8)
  expect_equal(a3$Df.res, unname(tab[, "df"]), tolerance = 1e-8)
  expect_equal(a3$Df.res, c(55.68985, 36.10373, 55.68985, 36.10373), tolerance = 1e-5)
  a2 <- car::Anova(f, type = 2, test.statistic = "F", ddf = "Satterthwaite")
  expect_equal(a2$F, c(127.5654418, 9.256472936, 6.614535672), tolerance = 1e-5)
  expect_equal(a2$Df.res[3], tab["age:SexFemale", "df"], tolerance = 1e-8)
  lh <- car::linearHypothesis(f, "age = 0", test = "F")
  expect_equal(lh$F[2], tab["age", "t value"]^2, tolerance = 1e-8)
  expect_equal(lh$Res.Df[2], tab["age", "df"], tolerance = 1e-8)
  kr <- car::Anova(f, type = 3, test.statistic = "F", ddf = "Kenward-Roger")
  expect_match(attr(kr, "heading")[1], "Kenward-Roger")
  expect_true(all(abs(kr$Df.res / a3$Df.res - 1) < 0.1))
})

## ---- F tests --------------------------------------------------------------------------------

test_that("Anova F with Satterthwaite df: statistics = Wald / q, df as lmerTest's contest()", {
  # lmerTest::contest(lmer(...), I[j, ]) for each coefficient j
  a3 <- car::Anova(car_fit("orthu"), type = 3, test.statistic = "F", ddf = "Satterthwaite")
  expect_match(attr(a3, "heading")[1], "Type III Wald F tests with Satterthwaite df")
  expect_table(a3, list(F = c(276.1528782, 66.62373729, 0.6930768411, 5.303414465),
                        Df = c(1, 1, 1, 1),
                        Df.res = c(45.67138394, 59.21635143, 47.24353987, 59.85546482)),
               df_tol = 5e-4)
  expect_table(car::Anova(car_fit("ma2"), type = 3, test.statistic = "F", ddf = "sat"),
               list(F = c(3813.697034, 381.6422008, 16.89157593, 69.9802459, 40.37122962),
                    Df.res = c(160.9882578, 7125.273539, 148.9223291, 178.1503087, 6096.693427)))
  a2 <- car::Anova(car_fit("orth"), type = 2, test.statistic = "F", ddf = "Satterthwaite")
  expect_equal(a2$F, car::Anova(car_fit("orth"), type = 2)$Chisq, tolerance = 1e-10)
  expect_close(a2$Df.res, c(79, 25, 79), what = "Df.res")
  expect_close(car::Anova(car_fit("pen"), type = 3, test.statistic = "F",
                          ddf = "Satterthwaite")$Df.res, 5.48706186, what = "Df.res")
})

test_that("Anova F with Kenward-Roger df (the default) matches car on lme4", {
  # car::Anova(lmer(...), type = 3 / 2, test.statistic = "F")
  a3 <- car::Anova(car_fit("orthu"), type = 3, test.statistic = "F")
  expect_match(attr(a3, "heading")[1], "Kenward-Roger")
  expect_table(a3, list(F = c(271.3683779, 65.35151902, 0.6781877441, 5.177856767),
                        Df.res = c(21.9236893, 21.71562429, 23.31445671, 22.961612)),
               tol = 5e-4, df_tol = 1e-3)
  expect_table(car::Anova(car_fit("orthu"), type = 2, test.statistic = "F"),
               list(F = c(72.55559887, 7.266410324, 5.177856767),
                    Df.res = c(22.49107447, 24.98051041, 22.961612)), tol = 5e-4, df_tol = 1e-3)
  expect_table(car::Anova(car_fit("orth"), type = 3, test.statistic = "F"),
               list(F = c(277.2827791, 102.4310679, 0.4506713613, 6.302708946),
                    Df.res = c(103.986361, 79, 103.986361, 79)))
  expect_table(car::Anova(car_fit("pen"), type = 3, test.statistic = "F"),
               list(F = 807.1300679, Df.res = 5.48706186))
  # car::Anova(lmer(MathAch ~ SES * Sector + (1 | School), MathAchieve), type = 3,
  #            test.statistic = "F")
  expect_table(car::Anova(car_fit("ma"), type = 3, test.statistic = "F"),
               list(F = c(2665.267832, 439.9568783, 39.23352199, 38.2949325),
                    Df.res = c(165.8468016, 6864.478743, 158.2707073, 6748.382256)))
  lh <- car::linearHypothesis(car_fit("orthu"), "age:SexFemale = 0", test = "F")
  expect_close(lh$F[2], 5.177856767, 5e-4)
  expect_close(lh$Res.Df, c(23.961612, 22.961612), 1e-3)
  # several rows at once: KR's scaled F, pbkrtest::KRmodcomp(g, L)$test["Ftest", ] (recorded):
  # stat 5.968059756, ddf 23.06376482
  two <- c("SexFemale = 0", "age:SexFemale = 0")
  l2 <- car::linearHypothesis(car_fit("orthu"), two, test = "F")
  expect_close(l2$F[2], 5.968059756, 5e-4)
  expect_close(l2$Res.Df[2], 23.06376482, 1e-3)
  expect_equal(l2$Df[2], 2)
})

test_that("KR's scaled F of several rows: kr_test() and Anova as pbkrtest's KRmodcomp", {
  f <- car_fit("orthu")
  L <- rbind(c(0, 0, 1, 0), c(0, 0, 0, 1))
  # pbkrtest::KRmodcomp(lmer(distance ~ age * Sex + (age | Subject), orthodont_u), L)$test
  # ["Ftest", ] (recorded): stat 5.968059756, ddf 23.06376482; F.scaling from the same call
  ft <- lmmc:::kr_test(f, L)
  expect_close(ft$F, 5.968059756, 5e-4)
  expect_close(ft$ddf, 23.06376482, 1e-3)
  expect_equal(ft$ndf, 2)
  # one row: KR's scale factor is 1 and F = (l'b)^2 / (l' Phi_A l)
  f1 <- lmmc:::kr_test(f, L[2, , drop = FALSE])
  expect_equal(f1$F.scaling, 1, tolerance = 1e-8)
  expect_close(f1$F, 5.177856767, 5e-4)
  expect_close(f1$ddf, 22.961612, 1e-3)
  # a type III F equals kr_test() on the term's rows
  a3 <- car::Anova(f, type = 3, test.statistic = "F")
  expect_equal(a3["age:Sex", "F"], f1$F, tolerance = 1e-10)
  expect_equal(a3["age:Sex", "Df.res"], f1$ddf, tolerance = 1e-10)
})

test_that("live: Kenward-Roger F equals pbkrtest's KRmodcomp and car on the lme4 fit", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("pbkrtest")
  g <- suppressMessages(lme4::lmer(distance ~ age * Sex + (age | Subject), orthodont_u))
  f <- car_fit("orthu")
  L <- rbind(c(0, 0, 1, 0), c(0, 0, 0, 1))
  for (rows in list(1:2, 2L)) {
    kr <- suppressMessages(pbkrtest::KRmodcomp(g, L[rows, , drop = FALSE]))$test
    ft <- lmmc:::kr_test(f, L[rows, , drop = FALSE])
    expect_close(ft$F, kr["Ftest", "stat"], 5e-4, what = "F")
    expect_close(ft$ddf, kr["Ftest", "ddf"], 1e-3, what = "ddf")
    expect_close(ft$F.scaling, kr["Ftest", "F.scaling"], 1e-4, what = "F.scaling")
  }
  for (type in 2:3) {
    a <- car::Anova(f, type = type, test.statistic = "F")
    b <- car::Anova(g, type = type, test.statistic = "F")
    expect_close(a$F, b$F, 5e-4, what = "F")
    expect_close(a$Df.res, b$Df.res, 1e-3, what = "Df.res")
  }
})

test_that("Kenward-Roger F tests need a REML fit, as car on lme4; Satterthwaite takes ML fits", {
  ml <- lmm(distance ~ age * Sex + (1 | Subject), orthodont, REML = FALSE)
  expect_error(car::Anova(ml, test.statistic = "F"), "only for linear mixed model fit by REML")
  expect_error(car::linearHypothesis(ml, "age = 0", test = "F"), "ddf = \"Satterthwaite\"")
  # lmerTest::contest(lmer(distance ~ age * Sex + (1 | Subject), Orthodont, REML = FALSE),
  #                   I[j, ]) for each coefficient j
  a3 <- car::Anova(ml, type = 3, test.statistic = "F", ddf = "Satterthwaite")
  expect_match(attr(a3, "heading")[1], "Type III Wald F tests with Satterthwaite df")
  expect_table(a3, list(F = c(287.8775753, 105.0228312, 0.4678912233, 6.462183315),
                        Df.res = c(107.8834567, 80.99936403, 107.8834567, 80.99936414)))
})

## ---- linearHypothesis -----------------------------------------------------------------------

test_that("linearHypothesis: chi-square and F as car on lme4", {
  f <- car_fit("ss")
  # car::linearHypothesis(lmer(Reaction ~ Days + (Days | Subject), sleepstudy), "Days = 0")
  lh <- car::linearHypothesis(f, "Days = 0")
  expect_s3_class(lh, "anova")
  expect_identical(names(lh), c("Df", "Chisq", "Pr(>Chisq)"))
  expect_close(lh$Chisq[2], 45.85296156)
  expect_close(car::linearHypothesis(f, c("(Intercept) = 250", "Days = 10"))$Chisq[2],
               0.1538051645)
  expect_equal(car::linearHypothesis(f, c(0, 1))$Chisq[2], lh$Chisq[2])
  expect_equal(car::linearHypothesis(f, "Days = 0", vcov. = 2 * vcov(f))$Chisq[2],
               lh$Chisq[2] / 2)
  # F with Satterthwaite df (lmerTest::contest on the lme4 fit)
  lf <- car::linearHypothesis(f, "Days = 0", test = "F", ddf = "Satterthwaite")
  expect_identical(names(lf), c("Res.Df", "Df", "F", "Pr(>F)"))
  expect_close(lf$F[2], 45.85296156)
  expect_close(lf$Res.Df, c(17.99998373, 16.99998373))
  l2 <- car::linearHypothesis(car_fit("orthu"), c("SexFemale = 0", "age:SexFemale = 0"),
                              test = "F", ddf = "Satterthwaite")
  expect_close(l2$F[2], 6.279330417)
  expect_close(l2$Res.Df[2], 31.87717564, 5e-4)
})

test_that("linearHypothesis: bad hypotheses give clear errors", {
  f <- car_fit("ss")
  expect_error(car::linearHypothesis(f, c(1, 0, 0)), "must have 2 columns")
  expect_error(car::linearHypothesis(f, diag(2), rhs = 1:3), "one value per hypothesis")
  expect_error(car::Anova(f, vcov. = diag(3)), "2 x 2")
  expect_error(car::Anova(f, test.statistic = "F", ddf = "nope"), "'ddf' must be")
})

## ---- live comparisons ------------------------------------------------------------------------

test_that("live: Anova on a corAR1 fit equals car on nlme::lme", {
  g <- nlme::lme(distance ~ age * Sex, random = ~ 1 | Subject, data = orthodont,
                 correlation = nlme::corAR1())
  for (type in c(2, 3)) {
    a <- car::Anova(car_fit("ar1"), type = type)
    b <- car::Anova(g, type = type)
    expect_identical(rownames(a), rownames(b))
    expect_close(a$Chisq, b$Chisq, what = paste("type", type))
  }
})

test_that("live: Anova chi-square equals car on the lme4 fit", {
  skip_if_not_installed("lme4")
  g <- suppressMessages(lme4::lmer(MathAch ~ SES * Sector + MEANSES + (1 | School), math_achieve))
  for (type in c(2, 3)) {
    a <- car::Anova(car_fit("ma2"), type = type)
    b <- suppressMessages(car::Anova(g, type = type))
    expect_identical(rownames(a), rownames(b))
    expect_close(a$Chisq, b$Chisq, what = paste("type", type))
  }
})

test_that("live: Satterthwaite F df equal lmerTest's contest()", {
  skip_if_not_installed("lmerTest")
  g <- suppressMessages(lmerTest::lmer(distance ~ age * Sex + (1 | Subject), orthodont))
  a <- car::Anova(car_fit("orth"), type = 3, test.statistic = "F", ddf = "Satterthwaite")
  ref <- do.call(rbind, lapply(1:4, function(j) lmerTest::contest(g, diag(4)[j, , drop = FALSE])))
  expect_close(a$F, ref[["F value"]], what = "F")
  expect_close(a$Df.res, ref$DenDF, what = "DenDF")
})
