# emmeans on lmm fits (R/emmeans.R).  Reference numbers: emmeans 1.8.4-1 on the lme4 1.1-31 /
# lmerTest 3.1-3 fit of the same model with lmer.df = "satterthwaite" or "kenward-roger"
# (pbkrtest 0.5.2), and on the nlme 3.1 lme() fit for residual structures (emmeans' default
# "containment" df for lme).  Recorded 2026-12 with the scripts' calls shown beside each list.
# Estimates and SEs agree to 1e-4 relative (lmmc and lme4 optimise to slightly different points);
# df to 1e-4, or 5e-4 for the boundary (singular) fit `orthu`.

skip_if_not_installed("emmeans")
suppressPackageStartupMessages(library(emmeans))

# orthodont, orthodont_u, math_achieve: helper-ecosystem-data.R

em_fit <- local({
  cache <- list()
  function(key) {
    if (is.null(cache[[key]])) cache[[key]] <<- switch(key,
      orth = lmm(distance ~ age * Sex + (1 | Subject), orthodont),
      orthu = suppressWarnings(lmm(distance ~ age * Sex + (age | Subject), orthodont_u)),
      ss = lmm(Reaction ~ Days + (Days | Subject), sleepstudy),
      ma = lmm(MathAch ~ SES * Sector + (1 | School), math_achieve),
      ar1 = lmm(distance ~ age + Sex + (1 | Subject), orthodont, correlation = nlme::corAR1()),
      vi = lmm(distance ~ age * Sex + (1 | Subject), orthodont,
               variance = nlme::varIdent(form = ~ 1 | Sex)))
    cache[[key]]
  }
})

# Columns of summary(x) (or of a joint_tests table) against a reference list.
expect_emm <- function(x, ref, tol = 1e-4, df_tol = tol) {
  s <- as.data.frame(if (inherits(x, "emmGrid")) summary(x) else x)
  for (nm in names(ref)) {
    t <- if (nm %in% c("df", "df2")) df_tol else tol
    expect_close(as.numeric(as.character(s[[nm]])), ref[[nm]], t, what = nm)
  }
}

quiet <- function(expr) suppressMessages(suppressWarnings(expr))

## ---- Satterthwaite (default): emmeans on the lmerTest fit, lmer.df = "satterthwaite" ----------

test_that("emmeans, pairs, emtrends and joint_tests match lmerTest's Satterthwaite df", {
  f <- em_fit("orth")
  # emmeans(lmer(distance ~ age * Sex + (1 | Subject), Orthodont), ~ Sex, lmer.df = "satterthwaite")
  e <- quiet(emmeans(f, ~ Sex))
  expect_emm(e, list(emmean = c(24.96875, 22.64772727), SE = c(0.4860007588, 0.586138969),
                     df = c(24.99999929, 24.99999931)))
  expect_emm(pairs(e), list(estimate = 2.321022727, SE = 0.761416856, df = 24.9999993,
                            t.ratio = 3.048294386))
  expect_emm(quiet(emtrends(f, ~ Sex, var = "age")),
             list(age.trend = c(0.784375, 0.4795454545), SE = c(0.07750110468, 0.09346984911),
                  df = c(79.00000007, 79.00000025)))
  # joint_tests prints F to 3 decimals: compare to 1e-3
  expect_emm(joint_tests(f), list(F.ratio = c(108.356, 9.292, 6.303), df1 = c(1, 1, 1),
                                  df2 = c(79, 25, 79)), tol = 1e-3)
  expect_identical(attr(e@dffun, "mesg"), "satterthwaite")
  # emmeans' limits for lme4 fits (n x n matrices) do not apply to lmm's Satterthwaite df
  e_lim <- quiet(emmeans(f, ~ Sex, lmerTest.limit = 10, pbkrtest.limit = 10))
  expect_close(summary(e_lim)$df, c(24.99999929, 24.99999931), what = "df")
})

test_that("unbalanced data and a random slope: Satterthwaite df agree with lmerTest", {
  f <- em_fit("orthu")
  expect_emm(quiet(emmeans(f, ~ age | Sex, at = list(age = c(8, 14)))),
             list(emmean = c(22.8105452, 27.1224026, 21.58013932, 23.94143128),
                  SE = c(0.5177631254, 0.5742033632, 0.6343822982, 0.6968248921),
                  df = c(24.30921658, 24.24414558, 25.56393358, 24.66730898)), df_tol = 5e-4)
  expect_emm(pairs(quiet(emmeans(f, ~ Sex))),
             list(estimate = 2.205688597, SE = 0.7506965403, df = 24.35211121,
                  t.ratio = 2.938189373), df_tol = 5e-4)
  expect_emm(quiet(emtrends(f, ~ Sex, var = "age")),
             list(age.trend = c(0.7186429007, 0.39354866), SE = c(0.08804377275, 0.1103460942),
                  df = c(59.21635143, 60.26017656)), df_tol = 5e-4)
})

test_that("sleepstudy and MathAchieve: estimates, SEs and Satterthwaite df", {
  expect_emm(emmeans(em_fit("ss"), ~ Days, at = list(Days = c(0, 4.5, 9))),
             list(emmean = c(251.4051048, 298.5078917, 345.6106785),
                  SE = c(6.824596695, 9.049972551, 14.62881554),
                  df = c(16.99972629, 16.99978569, 16.99988202)))
  ma <- em_fit("ma")
  expect_emm(quiet(emmeans(ma, ~ Sector)),
             list(emmean = c(11.79841711, 13.93639936), SE = c(0.228517575, 0.2535677415),
                  df = c(155.1147585, 142.5965758)))
  expect_emm(joint_tests(ma), list(F.ratio = c(468.679, 39.23, 38.351), df1 = c(1, 1, 1),
                                   df2 = c(6719.7, 148.01, 6719.7)), tol = 1e-3)
})

test_that("contrast() and asymptotic df", {
  f <- em_fit("orth")
  e <- quiet(emmeans(f, ~ Sex, lmer.df = "asymptotic"))
  s <- summary(e)
  expect_equal(s$df, c(Inf, Inf))
  expect_close(s$SE, c(0.4860007588, 0.586138969), what = "SE")
  ct <- summary(contrast(e, list(FminusM = c(-1, 1))))
  expect_close(ct$estimate, -2.321022727, what = "estimate")
  expect_equal(ct$df, Inf)
  # mode = is a synonym of lmer.df =, abbreviations allowed
  expect_equal(summary(quiet(emmeans(f, ~ Sex, mode = "asymp")))$df, c(Inf, Inf))
})

test_that("rank-deficient X: the empty cell is non-estimable, the rest as lme4", {
  d <- subset(orthodont, !(Sex == "Female" & age == 14))
  d$agef <- factor(d$age)
  f <- quiet(lmm(distance ~ agef * Sex + (1 | Subject), d))
  expect_length(attr(f$X, "dropped"), 1L)
  s <- as.data.frame(summary(emmeans(f, ~ agef | Sex)))
  # emmeans(lmer(distance ~ agef * Sex + (1 | Subject), d), ~ agef | Sex, lmer.df = "satterthwaite")
  expect_true(is.na(s$emmean[8]))
  ok <- 1:7
  expect_close(s$emmean[ok], c(22.875, 23.8125, 25.71875, 27.46875, 21.18181818, 22.22727273,
                               23.09090909), what = "emmean")
  expect_close(s$SE[ok], rep(c(0.5707360688, 0.688333598), c(4, 3)), what = "SE")
  expect_close(s$df[ok], rep(47.68900047, 7), what = "df")
  expect_emm(joint_tests(f), list(F.ratio = c(16.979, 0.979, 37.425), df1 = c(2, 2, 2),
                                  df2 = c(64.92, 64.92, 39.02)), tol = 1e-3)
})

test_that("the non-estimable basis spans the null space of X", {
  X <- cbind(1, c(1, 2, 3, 4), c(2, 4, 6, 8), c(1, 1, 0, 0), c(0, 0, 1, 1))  # two aliases
  N <- lmmc:::null_space_basis(X)
  expect_equal(dim(N), c(5L, 2L))
  expect_lt(max(abs(X %*% N)), 1e-12)
  expect_equal(crossprod(N), diag(2), tolerance = 1e-12)
  expect_true(is.na(lmmc:::null_space_basis(X[, 1:2])))
})

## ---- residual structures: Satterthwaite by default, containment as emmeans on nlme::lme -------

test_that("corAR1 residuals: containment df and numbers of emmeans on nlme::lme", {
  f <- em_fit("ar1")
  # emmeans(lme(distance ~ age + Sex, random = ~ 1 | Subject, Orthodont, correlation = corAR1()), ~ Sex)
  e <- emmeans(f, ~ Sex, lmer.df = "containment")
  expect_identical(attr(e@dffun, "mesg"), "containment")
  expect_emm(e, list(emmean = c(24.97486969, 22.64738491), SE = c(0.485852921, 0.5859606699),
                     df = c(26, 25)))
  expect_emm(pairs(e), list(estimate = 2.327484782, SE = 0.7611852386, df = 25))
  expect_emm(emtrends(f, ~ 1, var = "age", lmer.df = "containment"),
             list(age.trend = 0.6594048671, SE = 0.06340736991, df = 80))
  expect_equal(summary(emmeans(f, ~ Sex, lmer.df = "asymptotic"))$df, c(Inf, Inf))
})

test_that("corAR1 residuals: Satterthwaite df by default, those of contest()", {
  f <- em_fit("ar1")
  e <- emmeans(f, ~ Sex)
  expect_identical(attr(e@dffun, "mesg"), "satterthwaite")
  L <- e@linfct
  ref <- contest(f, L, joint = FALSE)
  s <- as.data.frame(summary(e))
  expect_equal(s$df, ref$df, tolerance = 1e-8)
  expect_equal(s$SE, ref[["Std. Error"]], tolerance = 1e-8)
  expect_equal(s$df, c(24.9991, 25.5), tolerance = 2e-2)      # close to nlme's containment 26, 25
  pr <- as.data.frame(summary(pairs(e)))
  expect_equal(pr$df, contest(f, L[1, ] - L[2, ], joint = FALSE)$df, tolerance = 1e-8)
})

test_that("varIdent residuals: containment df as emmeans on nlme::lme", {
  f <- em_fit("vi")
  expect_emm(quiet(emmeans(f, ~ Sex, lmer.df = "containment")),
             list(emmean = c(24.96875, 22.64772727), SE = c(0.5068649853, 0.5693795957),
                  df = c(26, 25)))
  expect_emm(joint_tests(f, lmer.df = "containment"),
             list(F.ratio = c(139.056, 9.271, 8.088), df1 = c(1, 1, 1), df2 = c(79, 25, 79)),
             tol = 1e-3)
  # Satterthwaite (the default) agrees with anova()'s F test of the same hypothesis
  jt <- joint_tests(f)
  a <- anova(f, type = 3)
  expect_equal(jt$df2[jt$`model term` == "age:Sex"], a["age:Sex", "DenDF"], tolerance = 1e-4)
  expect_equal(jt$F.ratio[jt$`model term` == "age:Sex"], a["age:Sex", "F value"],
               tolerance = 1e-3)                # joint_tests rounds F and df2
})

test_that("containment df on a fit without residual structure follow nlme's rule", {
  # lme(distance ~ age * Sex, random = ~ 1 | Subject, Orthodont): fixDF$X = 80 (age), 25 (Sex),
  # 80 (age:Sex) for lme's own count; emmeans gives the intercept 27 - 1 = 26
  df <- lmmc:::containment_df(em_fit("orth"))
  expect_equal(unname(df), c(26, 79, 25, 79))
  # nested grouping factors: Pastes (batch/cask), cask within batch
  pas <- methods_fit("pas")
  expect_equal(unname(lmmc:::containment_df(pas)), 10 - 1)
})

test_that("containment df with nested grouping factors (Oats) as emmeans on nlme::lme", {
  oats <- as.data.frame(nlme::Oats)
  f <- lmm(yield ~ nitro + Variety + (1 | Block / Variety), oats)
  # lme(yield ~ nitro + Variety, random = ~ 1 | Block / Variety, Oats): fixDF$X = 53, 53, 10, 10;
  # emmeans sets the intercept's to 6 blocks - 1 = 5
  expect_equal(unname(lmmc:::containment_df(f)), c(5, 53, 10, 10))
  expect_emm(emmeans(f, ~ Variety, lmer.df = "containment"),
             list(emmean = c(104.5, 109.7916667, 97.625), SE = rep(7.797476558, 3),
                  df = c(5, 5, 5)))
  expect_emm(emtrends(f, ~ 1, var = "nitro", lmer.df = "containment"),
             list(nitro.trend = 73.666666667, SE = 6.781486355, df = 53))
  # a fixed df given to emmeans overrides the method
  expect_equal(summary(emmeans(f, ~ Variety, df = 10))$df, rep(10, 3))
})

test_that("containment df need nested grouping factors", {
  expect_error(lmmc:::containment_df(methods_fit("pen")), "nested grouping factors")
})

## ---- Kenward-Roger: emmeans on the lme4 fit with lmer.df = "kenward-roger" (pbkrtest) --------

test_that("Kenward-Roger df and adjusted SEs match pbkrtest", {
  f <- em_fit("orth")
  expect_emm(quiet(emmeans(f, ~ Sex, lmer.df = "kenward-roger")),
             list(emmean = c(24.96875, 22.64772727), SE = c(0.4860007588, 0.586138969),
                  df = c(25, 25)))
  fu <- em_fit("orthu")
  expect_emm(quiet(emmeans(fu, ~ age | Sex, at = list(age = c(8, 14)), lmer.df = "kenward-roger")),
             list(emmean = c(22.8105452, 27.1224026, 21.58013932, 23.94143128),
                  SE = c(0.5194960948, 0.5758407983, 0.6374135143, 0.6996803471),
                  df = c(23.95957369, 24.4075411, 25.19919401, 24.77819687)), df_tol = 1e-3)
  expect_emm(quiet(emtrends(fu, ~ Sex, var = "age", lmer.df = "kenward-roger")),
             list(age.trend = c(0.7186429007, 0.39354866), SE = c(0.08889662975, 0.1118418004),
                  df = c(21.71562429, 23.80239514)), df_tol = 1e-3)
  expect_emm(emmeans(em_fit("ss"), ~ Days, at = list(Days = c(0, 4.5, 9)),
                     lmer.df = "kenward-roger"),
             list(emmean = c(251.4051048, 298.5078917, 345.6106785),
                  SE = c(6.824596695, 9.049972551, 14.62881554), df = c(17, 17, 17)))
})

test_that("Kenward-Roger on MathAchieve (7185 rows, 160 schools) matches pbkrtest, quickly", {
  f <- em_fit("ma")
  # emmeans(lmer(MathAch ~ SES * Sector + (1 | School), MathAchieve), ~ Sector | SES,
  #         at = list(SES = c(-1, 0, 1)), lmer.df = "kenward-roger")
  # with emm_options(pbkrtest.limit = 10000)
  time <- system.time(e <- emmeans(f, ~ Sector | SES, at = list(SES = c(-1, 0, 1)),
                                   lmer.df = "kenward-roger"))[["elapsed"]]
  expect_emm(e, list(emmean = c(8.846819669, 12.29783934, 11.79799405, 13.93616449, 14.74916842,
                                15.57448965),
                     SE = c(0.2580496303, 0.3122291723, 0.2285271186, 0.2535795071, 0.2783017705,
                            0.2855549045),
                     df = c(260.3489442, 326.2889879, 165.8468016, 152.4906833, 345.1159575,
                            237.4746969)))
  expect_lt(time, 10)
  # residual structures too (test-kenward-roger.R): Sex is between subjects, 27 - 2 df
  kr_ar1 <- as.data.frame(emmeans(em_fit("ar1"), ~ Sex, lmer.df = "kenward-roger"))
  expect_equal(kr_ar1$df, c(25, 25), tolerance = 1e-6)
})

## ---- errors -------------------------------------------------------------------------------

test_that("bad df methods and lmm_fit() fits give clear errors", {
  f <- em_fit("orth")
  expect_error(emmeans(f, ~ Sex, lmer.df = "bogus"), "unknown df method 'bogus'")
  expect_error(emmeans(f, ~ Sex, lmer.df = 3), "must be one of")
  bare <- lmm_fit(f$y, f$X, f$reterms)
  expect_error(emmeans(bare, ~ Sex), "lmm\\(\\) with a formula")
})

## ---- live comparisons --------------------------------------------------------------------

test_that("live: emmeans on lmm equals emmeans on lmerTest (Satterthwaite and asymptotic)", {
  skip_if_not_installed("lmerTest")
  g <- quiet(lmerTest::lmer(distance ~ age * Sex + (age | Subject), orthodont_u))
  f <- em_fit("orthu")
  for (m in c("satterthwaite", "asymptotic")) {
    a <- as.data.frame(summary(quiet(emmeans(f, ~ Sex | age, at = list(age = 11), lmer.df = m))))
    b <- as.data.frame(summary(quiet(emmeans(g, ~ Sex | age, at = list(age = 11), lmer.df = m))))
    expect_close(a$emmean, b$emmean, what = paste(m, "emmean"))
    expect_close(a$SE, b$SE, what = paste(m, "SE"))
    expect_close(a$df, b$df, 5e-4, what = paste(m, "df"))
  }
})

test_that("live: emmeans on lmm with corAR1 equals emmeans on nlme::lme", {
  g <- nlme::lme(distance ~ age + Sex, random = ~ 1 | Subject, data = orthodont,
                 correlation = nlme::corAR1())
  a <- as.data.frame(summary(pairs(emmeans(em_fit("ar1"), ~ Sex, lmer.df = "containment"))))
  b <- as.data.frame(summary(pairs(emmeans(g, ~ Sex))))
  expect_close(a$estimate, b$estimate, what = "estimate")
  expect_close(a$SE, b$SE, what = "SE")
  expect_equal(a$df, b$df)
})

test_that("live: Kenward-Roger equals emmeans on lme4 with pbkrtest", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("pbkrtest")
  g <- quiet(lme4::lmer(distance ~ age * Sex + (age | Subject), orthodont_u))
  a <- as.data.frame(summary(quiet(emmeans(em_fit("orthu"), ~ Sex, lmer.df = "kenward-roger"))))
  b <- as.data.frame(summary(quiet(emmeans(g, ~ Sex, lmer.df = "kenward-roger"))))
  expect_close(a$SE, b$SE, what = "SE")
  expect_close(a$df, b$df, 1e-3, what = "df")
})

test_that("live: Kenward-Roger on MathAchieve equals emmeans on lme4 with pbkrtest", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("pbkrtest")
  g <- quiet(lme4::lmer(MathAch ~ SES * Sector + (1 | School), math_achieve))
  old <- emm_options(pbkrtest.limit = 10000)
  on.exit(emm_options(old))
  at <- list(SES = c(-1, 0, 1))
  a <- as.data.frame(summary(pairs(emmeans(em_fit("ma"), ~ Sector | SES, at = at,
                                           lmer.df = "kenward-roger"))))
  b <- as.data.frame(summary(pairs(quiet(emmeans(g, ~ Sector | SES, at = at,
                                                 lmer.df = "kenward-roger")))))
  expect_close(a$estimate, b$estimate, what = "estimate")
  expect_close(a$SE, b$SE, what = "SE")
  expect_close(a$df, b$df, what = "df")
})
