# anova() and drop1() for lmm fits (R/anova.R, R/anova-contrasts.R): F tests with Satterthwaite
# df against lmerTest 3.1-3, likelihood-ratio tables and drop1 against lme4 1.1-31.
# Recorded tables below; live comparisons when lmerTest / lme4 are installed.
# Tolerances as in test-satterthwaite.R: F, Sum Sq 1e-4; DenDF and p-values 2e-3.

expect_anova_close <- function(actual, ref, tol = 1e-4, df_tol = 2e-3) {
  expect_s3_class(actual, "anova")
  expect_identical(rownames(actual), rownames(ref))
  expect_identical(colnames(actual), colnames(ref))
  actual <- as.matrix(actual)
  for (col in colnames(ref)) {
    na <- is.na(ref[, col])
    expect_identical(is.na(actual[, col]), na)
    is_p <- startsWith(col, "Pr(")
    expect_close(actual[!na, col], ref[!na, col],
                 tol = if (is_p || col == "DenDF") df_tol else tol,
                 scale = if (is_p) 1e-12 else 1e-8, what = col)
  }
}

hsb_data <- function() {
  ma <- as.data.frame(nlme::MathAchieve)
  school <- as.data.frame(nlme::MathAchSchool)
  ma$Sector <- school$Sector[match(as.character(ma$School), as.character(school$School))]
  ma$School <- factor(as.character(ma$School))
  ma
}

ham_formula <- Informed.liking ~ Product * Information * Gender + (1 | Consumer) +
  (1 | Consumer:Product)

## ---- F tests (lmerTest) -----------------------------------------------------------------------

test_that("type III, II and I F tests match lmerTest: ham", {
  ham_III <- structure(c(19.07923393, 6.444490553, 1.463581916, 10.43598596, 
    1.740310205, 1.407453516, 5.991541516, 6.359744645, 6.444490553, 
    1.463581916, 3.478661987, 0.5801034017, 1.407453516, 1.997180505, 
    3, 1, 1, 3, 3, 1, 3, 236.9998959, 315.9999849, 79.00000641, 315.999985, 
    236.9998959, 315.999985, 315.999985, 3.819277065, 3.870170319, 
    0.878938567, 2.08907349, 0.3483749334, 0.8452312525, 1.19938553, 
    0.01062837077, 0.05002600862, 0.3513499399, 0.101576014, 0.7903596192, 
    0.3586061459, 0.3100961342), dim = 7:6, dimnames = list(c("Product", 
    "Information", "Gender", "Product:Information", "Product:Gender", 
    "Information:Gender", "Product:Information:Gender"), c("Sum Sq", 
    "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  ham_II <- structure(c(18.97273969, 6.520061728, 1.463581916, 10.38734568, 
    1.740310205, 1.407453516, 5.991541516, 6.324246564, 6.520061728, 
    1.463581916, 3.46244856, 0.5801034017, 1.407453516, 1.997180505, 
    3, 1, 1, 3, 3, 1, 3, 236.9998959, 315.9999849, 79.00000641, 315.999985, 
    236.9998959, 315.999985, 315.999985, 3.79795907, 3.915553786, 
    0.878938567, 2.079336689, 0.3483749334, 0.8452312525, 1.19938553, 
    0.01093266462, 0.04870918706, 0.3513499399, 0.1028591284, 0.7903596192, 
    0.3586061459, 0.3100961342), dim = 7:6, dimnames = list(c("Product", 
    "Information", "Gender", "Product:Information", "Product:Gender", 
    "Information:Gender", "Product:Information:Gender"), c("Sum Sq", 
    "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  ham_I <- structure(c(18.97273969, 6.520061728, 1.463581916, 10.38734568, 
    1.740310205, 1.407453516, 5.991541516, 6.324246564, 6.520061728, 
    1.463581916, 3.46244856, 0.5801034017, 1.407453516, 1.997180505, 
    3, 1, 1, 3, 3, 1, 3, 236.9998959, 315.9999849, 79.00000641, 315.999985, 
    236.9998959, 315.999985, 315.999985, 3.79795907, 3.915553786, 
    0.878938567, 2.079336689, 0.3483749334, 0.8452312525, 1.19938553, 
    0.01093266462, 0.04870918706, 0.3513499399, 0.1028591284, 0.7903596192, 
    0.3586061459, 0.3100961342), dim = 7:6, dimnames = list(c("Product", 
    "Information", "Gender", "Product:Information", "Product:Gender", 
    "Information:Gender", "Product:Information:Gender"), c("Sum Sq", 
    "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  fit <- lmm(ham_formula, data = ref_data("ham"))
  a3 <- anova(fit)
  expect_anova_close(a3, ham_III)
  expect_identical(attr(a3, "heading"),
                   "Type III Analysis of Variance Table with Satterthwaite's method")
  expect_anova_close(anova(fit, type = "II"), ham_II)
  expect_anova_close(anova(fit, type = 2), ham_II)
  a1 <- anova(fit, type = "I")
  expect_anova_close(a1, ham_I)
  expect_match(attr(a1, "heading"), "^Type I Analysis")
  # the hypothesis matrices are kept, one per term, with the term's numerator df as rows
  L <- attr(a3, "hypotheses")
  expect_identical(names(L), rownames(ham_III))
  expect_identical(vapply(L, nrow, 1L), as.integer(ham_III[, "NumDF"]), ignore_attr = TRUE)
})

test_that("type III tests do not depend on the contrast coding (sum contrasts as lmerTest)", {
  ham_sum_III <- structure(c(19.07923393, 6.444490553, 1.463581917, 10.43598596, 
    1.740310205, 1.407453516, 5.991541516, 6.359744643, 6.444490553, 
    1.463581917, 3.478661987, 0.5801034015, 1.407453516, 1.997180505, 
    3, 1, 1, 3, 3, 1, 3, 236.9998947, 315.999985, 79.00000663, 315.999985, 
    236.9998947, 315.999985, 315.999985, 3.819277064, 3.870170319, 
    0.8789385674, 2.08907349, 0.3483749334, 0.8452312525, 1.19938553, 
    0.01062837079, 0.05002600862, 0.3513499398, 0.101576014, 0.7903596193, 
    0.3586061459, 0.3100961342), dim = 7:6, dimnames = list(c("Product", 
    "Information", "Gender", "Product:Information", "Product:Gender", 
    "Information:Gender", "Product:Information:Gender"), c("Sum Sq", 
    "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  fit <- lmm(ham_formula, data = ref_data("ham"),
             contrasts = list(Product = "contr.sum", Information = "contr.sum",
                              Gender = "contr.sum"))
  expect_anova_close(anova(fit), ham_sum_III)
  fit_trt <- lmm(ham_formula, data = ref_data("ham"))
  expect_equal(anova(fit)[["F value"]], anova(fit_trt)[["F value"]], tolerance = 1e-6)
})

test_that("F tests match lmerTest: High School and Beyond and Orthodont", {
  hsb_III <- structure(c(17266.22292, 1445.494077, 1412.85107, 17266.22292, 
    1445.494077, 1412.85107, 1, 1, 1, 6719.698287, 148.0143356, 6719.698286, 
    468.6789746, 39.23687797, 38.35080746, 1.585502232e-100, 3.867487968e-09, 
    6.259083822e-10), dim = c(3L, 6L), dimnames = list(c("SES", "Sector", 
    "SES:Sector"), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", 
    "Pr(>F)")))
  hsb_I <- structure(c(20752.80143, 1422.278307, 1412.85107, 20752.80143, 
    1422.278307, 1412.85107, 1, 1, 1, 2921.321547, 147.9605859, 6719.698286, 
    563.3195945, 38.60670289, 38.35080746, 5.111492623e-114, 4.997003714e-09, 
    6.259083822e-10), dim = c(3L, 6L), dimnames = list(c("SES", "Sector", 
    "SES:Sector"), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", 
    "Pr(>F)")))
  orth_III <- structure(c(208.2660038, 0.8662150497, 12.11415194, 208.2660038, 
    0.8662150497, 12.11415194, 1, 1, 1, 79.00000018, 103.986361, 
    79.00000018, 108.355914, 0.4506713613, 6.302708946, 1.789534556e-16, 
    0.5035048739, 0.01409745038), dim = c(3L, 6L), dimnames = list(
        c("age", "Sex", "age:Sex"), c("Sum Sq", "Mean Sq", "NumDF", 
        "DenDF", "F value", "Pr(>F)")))
  orth_I <- structure(c(235.3560185, 17.85992276, 12.11415194, 235.3560185, 
    17.85992276, 12.11415194, 1, 1, 1, 79.00000014, 24.9999993, 79.00000018, 
    122.4502129, 9.292098661, 6.302708946, 9.95649361e-18, 0.005375056414, 
    0.01409745038), dim = c(3L, 6L), dimnames = list(c("age", "Sex", 
    "age:Sex"), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", 
    "Pr(>F)")))
  fit <- lmm(MathAch ~ SES * Sector + (1 | School), hsb_data())
  expect_anova_close(anova(fit), hsb_III)
  expect_anova_close(anova(fit, type = "I"), hsb_I)
  fit <- lmm(distance ~ age * Sex + (1 | Subject), ref_data("Orthodont"))
  expect_anova_close(anova(fit), orth_III)
  expect_anova_close(anova(fit, type = 1), orth_I)
  # single-df F tests are the squared t tests of the coefficient table when the term has one
  # column and nothing contains it
  tab <- satterthwaite_coef_table(fit)
  expect_equal(anova(fit)["age:Sex", "F value"], tab["age:SexFemale", "t value"]^2,
               tolerance = 1e-10)
  expect_equal(anova(fit)["age:Sex", "DenDF"], tab["age:SexFemale", "df"], tolerance = 1e-10)
})

test_that("type I F tests are sequential and sum-of-squares consistent", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  a <- anova(fit, type = "I")
  tab <- satterthwaite_coef_table(fit)
  expect_equal(a["Days", "F value"], tab["Days", "t value"]^2, tolerance = 1e-10)
  expect_equal(a[["Sum Sq"]], a[["F value"]] * a$NumDF * fit$sigma^2)
  # a model with only an intercept has nothing to test
  fit0 <- lmm(Reaction ~ 1 + (1 | Subject), ref_data("sleepstudy"))
  expect_identical(nrow(anova(fit0)), 0L)
})

test_that("anova(ddf = \"lme4\") is lme4's table", {
  ham_lme4 <- structure(c(3, 1, 1, 3, 3, 1, 3, 18.97273969, 6.520061728, 1.463581916, 
    10.38734568, 1.740310205, 1.407453516, 5.991541516, 6.324246564, 
    6.520061728, 1.463581916, 3.46244856, 0.5801034017, 1.407453516, 
    1.997180505, 3.79795907, 3.915553786, 0.878938567, 2.079336689, 
    0.3483749334, 0.8452312525, 1.19938553), dim = c(7L, 4L), dimnames = list(
        c("Product", "Information", "Gender", "Product:Information", 
        "Product:Gender", "Information:Gender", "Product:Information:Gender"
        ), c("npar", "Sum Sq", "Mean Sq", "F value")))
  fit <- lmm(ham_formula, data = ref_data("ham"))
  a <- anova(fit, ddf = "lme4")
  expect_anova_close(a, ham_lme4)
  expect_identical(attr(a, "heading"), "Analysis of Variance Table")
  expect_identical(anova(fit, ddf = "none"), a)
  expect_error(anova(refit_ml(fit), ddf = "Kenward-Roger"), "only available for REML")
  expect_error(anova(fit, type = "IV"), "'type'")
})

test_that("F tests need a fit with a formula", {
  s <- ref_data("sleepstudy")
  fit <- lmm_fit(s$Reaction, cbind("(Intercept)" = 1, Days = s$Days),
                 list(list(group = s$Subject, Xt = matrix(1, nrow(s), 1), name = "Subject",
                           cnms = "(Intercept)")))
  expect_error(anova(fit), "lmm_fit")
  expect_identical(nrow(contest(fit, c(0, 1))), 1L)
})

test_that("recorded: anova types \"marginal\" and \"2b\", and drop1 when aliased columns were dropped", {
  # lmerTest 3.1-3: anova(m, type = "marginal" / "2b") and drop1(m) (Satterthwaite and
  # Kenward-Roger) on lmerTest::lmer fits of the same models
  ham_marginal <- structure(list(`Sum Sq` = c(61.34259259, 1.043209877, 3.84795984, 
  10.38734568), `Mean Sq` = c(20.44753086, 1.043209877, 3.84795984, 
  3.46244856), NumDF = c(3, 1, 1, 3), DenDF = c(560.0000025, 560.0000025, 
  78.99999658, 560.0000024), `F value` = c(4.670555884, 0.2382864738, 
  0.8789379797, 0.7908807963), `Pr(>F)` = c(0.003114316881, 0.6256375357, 
  0.3513501003, 0.4992920102)), row.names = c("Product", "Information", 
  "Gender", "Product:Information"), class = "data.frame")
  ham_2b <- structure(list(`Sum Sq` = c(91.80709877, 6.520061728, 3.84795984, 
  10.38734568), `Mean Sq` = c(30.60236626, 6.520061728, 3.84795984, 
  3.46244856), NumDF = c(3, 1, 1, 3), DenDF = c(560.0000025, 560.0000025, 
  78.99999658, 560.0000024), `F value` = c(6.990089058, 1.489290461, 
  0.8789379797, 0.7908807963), `Pr(>F)` = c(0.0001271245699, 0.222840215, 
  0.3513501003, 0.4992920102)), row.names = c("Product", "Information", 
  "Gender", "Product:Information"), class = "data.frame")
  ham_marginal_head <- "Marginal Analysis of Variance Table with Satterthwaite's method"
  ham_2b_head <- "Type IIb Analysis of Variance Table with Satterthwaite's method"
  cake_drop1 <- structure(list(`Sum Sq` = c(10.18873009, NA, 133.5949206), `Mean Sq` = c(5.094365044, 
  NA, 33.39873016), NumDF = c(2, NA, 4), DenDF = c(41.99999983, 
  NA, 220.0000001), `F value` = c(0.2487887863, NA, 1.631062844
  ), `Pr(>F)` = c(0.780885605, NA, 0.1674260529)), row.names = c("recipe", 
  "temp", "temperature"), class = "data.frame")
  cake_drop1_kr <- structure(list(`Sum Sq` = c(10.18873009, NA, 133.5949206), `Mean Sq` = c(5.094365044, 
  NA, 33.39873016), NumDF = c(2, NA, 4), DenDF = c(42, NA, 220), 
      `F value` = c(0.2487887863, NA, 1.631062844), `Pr(>F)` = c(0.780885605, 
      NA, 0.1674260529)), row.names = c("recipe", "temp", "temperature"
  ), class = "data.frame")
  ham <- ref_data("ham")
  fit <- lmm(Informed.liking ~ Product * Information + Gender + (1 | Consumer), ham)
  a <- anova(fit, type = "marginal")
  expect_table_close(a, ham_marginal)
  expect_identical(attr(a, "heading"), ham_marginal_head)
  a <- anova(fit, type = "2b")
  expect_table_close(a, ham_2b)
  expect_identical(attr(a, "heading"), ham_2b_head)
  # "2b" and "II" test the same hypotheses (different bases of the same row spaces)
  expect_equal(a[["F value"]], anova(fit, type = "II")[["F value"]], tolerance = 1e-8)
  # "marginal": each term's own coefficients
  h <- attr(anova(fit, type = "marginal"), "hypotheses")$Gender
  expect_equal(unname(h[1, ]), as.numeric(grepl("^Gender", colnames(fit$X))))
  # cake: temp (numeric) and temperature (ordered factor) span nested column spaces; the
  # aliased temperature.L column was dropped, and dropping temp changes nothing: NA row
  cake <- ref_data("cake")
  fit <- suppressMessages(lmm(angle ~ recipe + temp + temperature + (1 | recipe:replicate), cake))
  d <- drop1(fit, test = "F")
  expect_table_close(d, cake_drop1)
  expect_true(all(is.na(unlist(d["temp", ]))))
  expect_table_close(drop1(fit, test = "F", ddf = "Kenward-Roger"), cake_drop1_kr)
})

## ---- likelihood-ratio tests (lme4) ------------------------------------------------------

test_that("anova(m0, m1) is lme4's likelihood-ratio table: sleepstudy", {
  sleep_lrt <- structure(c(4, 6, 1802.078643, 1763.939344, 1814.85047, 1783.097086, 
    -897.0393215, -875.9696722, 1794.078643, 1751.939344, NA, 42.13929854, 
    NA, 2, NA, 7.072412547e-10), dim = c(2L, 8L), dimnames = list(
        c("fm0", "fm1"), c("npar", "AIC", "BIC", "logLik", "deviance", 
        "Chisq", "Df", "Pr(>Chisq)")))
  sleepstudy <- ref_data("sleepstudy")
  fm0 <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy)
  fm1 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_message(a <- anova(fm1, fm0), "refitting model\\(s\\) with ML \\(instead of REML\\)")
  expect_anova_close(a, sleep_lrt, tol = 1e-6, df_tol = 1e-4)
  expect_identical(attr(a, "heading"),
                   c("Data: sleepstudy", "Models:", "fm0: Reaction ~ Days + (1 | Subject)",
                     "fm1: Reaction ~ Days + (Days | Subject)"))
  # ML fits are used as they are, without the message
  fm0_ml <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
  fm1_ml <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  expect_message(b <- anova(fm0_ml, fm1_ml), NA)
  expect_equal(unname(as.matrix(b)), unname(as.matrix(a)), tolerance = 1e-6)
  # refit = FALSE compares the REML criteria
  expect_message(r <- anova(fm0, fm1, refit = FALSE), NA)
  expect_equal(r$logLik, c(as.numeric(logLik(fm0)), as.numeric(logLik(fm1))))
  expect_identical(rownames(anova(fm0, fm1, model.names = c("a", "b"), refit = FALSE)),
                   c("a", "b"))
  expect_identical(rownames(anova(fm0, fm1, refit = FALSE, model.names = NULL)),
                   c("fm0", "fm1"))
})

test_that("anova() orders models by npar and handles equal npar: Penicillin", {
  pen_lrt <- structure(c(3, 3, 4, 617.6295531, 443.1900759, 340.1883487, 626.538993, 
    452.0995157, 352.0676019, -305.8147766, -218.5950379, -166.0941743, 
    611.6295531, 437.1900759, 332.1883487, NA, 174.4394773, 105.0017272, 
    NA, 0, 1, NA, NA, 1.220294228e-24), dim = c(3L, 8L), dimnames = list(
        c("pp", "ps", "p2"), c("npar", "AIC", "BIC", "logLik", "deviance", 
        "Chisq", "Df", "Pr(>Chisq)")))
  Penicillin <- ref_data("Penicillin")
  p2 <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
  pp <- suppressMessages(lmm(diameter ~ 1 + (1 | plate), Penicillin))
  ps <- lmm(diameter ~ 1 + (1 | sample), Penicillin)
  a <- suppressMessages(anova(p2, pp, ps))
  expect_anova_close(a, pen_lrt, tol = 1e-6, df_tol = 1e-4)
})

test_that("refit_ml() gives the ML fit and keeps the model description", {
  sleepstudy <- ref_data("sleepstudy")
  fm1 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ml <- refit_ml(fm1)
  direct <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
  expect_false(ml$REML)
  expect_equal(ml$crit, direct$crit, tolerance = 1e-8)
  expect_equal(ml$theta, direct$theta, tolerance = 1e-4)
  expect_false(ml$call$REML)
  expect_identical(ml$formula, fm1$formula)
  expect_identical(refit_ml(direct), direct)
})

test_that("anova() refuses models fitted to different data", {
  sleepstudy <- ref_data("sleepstudy")
  fm1 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  short <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy[-1, ])
  expect_error(anova(fm1, short), "not all fitted to the same size of dataset")
  other <- sleepstudy
  fm_other <- lmm(Reaction ~ Days + (1 | Subject), other)
  expect_error(anova(fm1, fm_other), "same data object")
  sub <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy, subset = Days < 9)
  sub2 <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy, subset = Days > 0)
  expect_error(anova(sub, sub2), "same subset")
  logy <- lmm(log(Reaction) ~ Days + (1 | Subject), sleepstudy)
  expect_error(anova(fm1, logy), "same response")
})

test_that("fits with residual structures: Satterthwaite F tests, ML refits keep the structure", {
  Orthodont <- ref_data("Orthodont")
  ar1 <- lmm(distance ~ age + (1 | Subject), Orthodont,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  a <- anova(ar1)
  expect_match(attr(a, "heading")[1], "Satterthwaite")
  expect_equal(a["age", "DenDF"], summary(ar1)$coefficients["age", "df"], tolerance = 1e-10)
  expect_equal(a["age", "F value"], summary(ar1)$coefficients["age", "t value"]^2,
               tolerance = 1e-10)
  expect_s3_class(anova(ar1, ddf = "lme4"), "anova")
  ml <- refit_ml(ar1)
  expect_false(ml$REML)
  expect_false(is.null(ml$residual))
  direct <- lmm(distance ~ age + (1 | Subject), Orthodont, REML = FALSE,
                correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_equal(ml$crit, direct$crit, tolerance = 1e-8)
})

test_that("drop1() of residual fits: LRT from ML refits keeping the structure, F tests", {
  od <- as.data.frame(ref_data("Orthodont"))
  cor <- nlme::corAR1(form = ~ 1 | Subject)
  full <- lmm(distance ~ age * Sex + (1 | Subject), od, correlation = cor)
  d <- drop1(full, test = "Chisq")
  expect_identical(rownames(d), c("<none>", "age:Sex"))
  big <- lmm(distance ~ age * Sex + (1 | Subject), od, correlation = cor, REML = FALSE)
  small <- lmm(distance ~ age + Sex + (1 | Subject), od, correlation = cor, REML = FALSE)
  expect_equal(d$LRT[2], 2 * (as.numeric(logLik(big)) - as.numeric(logLik(small))),
               tolerance = 1e-6)
  expect_equal(d$AIC, c(AIC(big), AIC(small)), tolerance = 1e-7)
  expect_equal(d$npar[2], 1)
  expect_equal(d$LRT[2], 6.3062, tolerance = 1e-4)            # recorded 2026-12
  f <- drop1(full, test = "F")
  expect_equal(f["age:Sex", "DenDF"], anova(full)["age:Sex", "DenDF"], tolerance = 1e-10)
  # a structure fixed at the identity: the plain fit's table
  fits <- identity_fits()
  expect_equal(as.data.frame(drop1(fits$ar1, test = "Chisq")),
               as.data.frame(drop1(fits$plain, test = "Chisq")), tolerance = 1e-6)
})

## ---- drop1 ---------------------------------------------------------------------------------

test_that("drop1() matches lme4 (Chisq) and lmerTest (F)", {
  ham_drop1_chisq <- structure(c(NA, 1, 3, 2718.808576, 2717.70479, 2719.055217, NA, 
    0.8962132577, 6.246640763, NA, 0.3437991093, 0.1002081413), dim = 3:4, dimnames = list(
        c("<none>", "Gender", "Product:Information"), c("npar", "AIC", 
        "LRT", "Pr(Chi)")))
  ham_drop1_F <- structure(c(1.465608769, 10.38734568, 1.465608769, 3.46244856, 
    1, 3, 78.99999998, 320.0000017, 0.8789380073, 2.076459763, 0.3513500926, 
    0.1032128921), dim = c(2L, 6L), dimnames = list(c("Gender", "Product:Information"
    ), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"
    )))
  fit <- lmm(Informed.liking ~ Product * Information + Gender + (1 | Consumer) +
               (1 | Consumer:Product), data = ref_data("ham"))
  d <- drop1(fit, test = "Chisq")
  expect_anova_close(d, ham_drop1_chisq, tol = 1e-6, df_tol = 1e-4)
  expect_identical(attr(d, "heading")[1], "Single term deletions")
  d0 <- drop1(fit)
  expect_identical(colnames(d0), c("npar", "AIC"))
  expect_equal(d0$AIC, d$AIC)
  f <- drop1(fit, test = "F")
  expect_anova_close(f, ham_drop1_F)
  expect_match(attr(f, "heading")[1], "Satterthwaite")
  expect_identical(rownames(drop1(fit, scope = "Gender", test = "Chisq")),
                   c("<none>", "Gender"))
  expect_error(drop1(fit, scope = "Product", test = "F"), "marginal")
  expect_error(drop1(fit, scope = "nonsense"), "subset of term labels")
})

## ---- live comparisons -----------------------------------------------------------------------

with_lme4_estimates <- function(fit, m) {
  fit$theta[] <- lme4::getME(m, "theta")
  fit$sigma <- stats::sigma(m)
  fit$beta[] <- lme4::fixef(m)
  fit$vcov_beta[] <- as.matrix(stats::vcov(m))
  fit
}

test_that("at lme4's estimates the F tests are lmerTest's (types I, II, III)", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("lme4")
  sleep <- ref_data("sleepstudy")
  sleep$g <- rep(c("a", "b", "c"), each = 60)
  sleep$h <- factor(rep(1:4, 45))
  cake <- ref_data("cake")
  cake$rec <- factor(cake$recipe, ordered = TRUE)     # polynomial contrasts
  cases <- list(
    list(ham_formula, ref_data("ham")),
    list(Informed.liking ~ Product * Information + Gender + (1 | Consumer), ref_data("ham")),
    list(MathAch ~ SES * Sector + (1 | School), hsb_data()),
    list(distance ~ age * Sex + (1 | Subject), ref_data("Orthodont")),
    list(angle ~ rec * temp + (1 | replicate), cake),
    list(angle ~ recipe + poly(temp, 2) + (1 | replicate), cake),
    list(Reaction ~ log(Days + 1) * g + (1 | Subject), sleep),
    list(Reaction ~ g * h + (1 | Subject), sleep[!(sleep$g == "a" & sleep$h == "1"), ])
  )
  for (cs in cases) {
    m <- suppressMessages(lmerTest::lmer(cs[[1]], data = cs[[2]]))
    fit <- suppressMessages(with_lme4_estimates(lmm(cs[[1]], data = cs[[2]]), m))
    for (type in c("III", "II", "I")) {
      ref <- as.matrix(suppressMessages(stats::anova(m, type = type)))
      a <- as.matrix(suppressMessages(anova(fit, type = type)))
      expect_identical(dimnames(a), dimnames(ref))
      expect_close(a[, 1:3], ref[, 1:3], tol = 1e-8, what = paste(type, "SS/NumDF"))
      expect_close(a[, "DenDF"], ref[, "DenDF"], tol = 1e-6, what = paste(type, "DenDF"))
      expect_close(a[, "F value"], ref[, "F value"], tol = 1e-8, what = paste(type, "F"))
      expect_close(a[, "Pr(>F)"], ref[, "Pr(>F)"], tol = 1e-6, scale = 1e-200,
                   what = paste(type, "p"))
    }
  }
})

test_that("likelihood-ratio tables and drop1 agree with lme4 live", {
  skip_if_not_installed("lme4")
  sleep <- ref_data("sleepstudy")
  fm0 <- lmm(Reaction ~ Days + (1 | Subject), sleep)
  fm1 <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  fm2 <- lmm(Reaction ~ 1 + (Days | Subject), sleep)
  m0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), sleep)
  m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)
  m2 <- lme4::lmer(Reaction ~ 1 + (Days | Subject), sleep)
  a <- suppressMessages(anova(fm1, fm0, fm2))
  b <- suppressMessages(stats::anova(m1, m0, m2))
  expect_identical(rownames(a), c("fm0", "fm2", "fm1"))
  expect_identical(rownames(b), c("m0", "m2", "m1"))
  expect_close(as.matrix(a)[-1, ], as.matrix(b)[-1, ], tol = 1e-6, what = "LRT table")
  d <- drop1(fm1, test = "Chisq")
  e <- stats::drop1(m1, test = "Chisq")
  expect_close(as.matrix(d)[-1, ], as.matrix(e)[-1, ], tol = 1e-6, what = "drop1")
  expect_equal(anova(fm1, ddf = "lme4")[["F value"]], stats::anova(m1)[["F value"]],
               tolerance = 1e-5)
})

# ---- refits keep the fit's control ---------------------------------------------------------------

test_that("ML refits (anova, drop1) use the fit's backend, probes and memory_limit", {
  d <- small_crossed()
  it <- iterative_control()
  f1 <- lmm(y ~ x + (1 | a) + (1 | b), d, control = it)
  f0 <- lmm(y ~ 1 + (1 | a) + (1 | b), d, control = it)
  ctrl <- lmmc:::refit_control(f1, maxeval = 50L)
  expect_identical(ctrl$backend, "iterative")
  expect_identical(ctrl$probes, 12L)
  expect_identical(ctrl$maxeval, 50L)
  expect_null(ctrl$verbose)
  ml <- lmmc:::refit_ml(f1)
  expect_identical(ml$iterative$probes, 12L)
  # the same ML fits made directly with that control
  m1 <- lmm(y ~ x + (1 | a) + (1 | b), d, control = it, REML = FALSE)
  m0 <- lmm(y ~ 1 + (1 | a) + (1 | b), d, control = it, REML = FALSE)
  tab <- suppressMessages(anova(f0, f1))
  expect_equal(tab$logLik, c(logLik(m0), logLik(m1)), tolerance = 1e-7)
  # ... which the exact criterion's fits are not (Monte Carlo error of the log-determinant)
  e1 <- lmm(y ~ x + (1 | a) + (1 | b), d, REML = FALSE)
  expect_gt(abs(tab$logLik[2] - logLik(e1)), 1e-4)
  dr <- suppressMessages(drop1(f1, test = "Chisq"))
  expect_equal(dr$AIC, c(AIC(m1), AIC(lmm(y ~ 1 + (1 | a) + (1 | b), d, control = it,
                                              REML = FALSE))), tolerance = 1e-7)
  # backend = "direct" stays direct when the defaults say iterative
  fd <- lmm(y ~ x + (1 | a) + (1 | b), d, control = lmm_control(backend = "direct"))
  old <- options(lmm.control = list(backend = "iterative"))
  on.exit(options(old))
  expect_null(lmmc:::refit_ml(fd)$iterative)
  expect_false(is.null(lmm(y ~ x + (1 | a) + (1 | b), d)$iterative))
  options(old)
  # a memory_limit below the exact factor's size: "auto" went iterative, and so do its refits
  fm <- suppressMessages(lmm(y ~ x + (1 | a) + (1 | b), d, control = lmm_control(memory_limit = 1e4)))
  expect_false(is.null(fm$iterative))
  expect_false(is.null(suppressMessages(lmmc:::refit_ml(fm))$iterative))
  expect_null(lmmc:::refit_ml(lmm(y ~ x + (1 | a) + (1 | b), d))$iterative)
})
