# Backward elimination (R/step.R) against lmerTest 3.1-3: tables recorded below from
# lmerTest::step() on lmerTest::lmer fits of the same models, live comparisons when lmerTest is
# installed.

# recorded with lmerTest::step(lmerTest::lmer(<same model>))
step_ham_random <- structure(list(Eliminated = c(NA, 0, 0), npar = c(19, 18, 18), 
    logLik = c(-1348.917631, -1350.422865, -1431.049009), AIC = c(2735.835263, 
    2736.84573, 2898.098017), LRT = c(NA, 3.01046686, 164.2627545
    ), Df = c(NA, 1, 1), `Pr(>Chisq)` = c(NA, 0.08272846059, 
    1.325445169e-37)), row.names = c("<none>", "(1 | Consumer)", 
"(1 | Consumer:Product)"), class = "data.frame")
step_ham_fixed <- structure(list(Eliminated = c(1, 2, 3, 4, 5, 0, 0), `Sum Sq` = c(5.991541516, 
1.743571794, 1.407453516, 1.465608769, 10.38734568, 19.34656501, 
6.520061728), `Mean Sq` = c(1.997180505, 0.5811905981, 1.407453516, 
1.465608769, 3.46244856, 6.448855002, 6.520061728), NumDF = c(3, 
3, 1, 1, 3, 3, 1), DenDF = c(315.999985, 236.9997635, 319.0000018, 
78.99999998, 320.0000129, 240.0000046, 323.0000067), `F value` = c(1.19938553, 
0.3483747569, 0.8436494036, 0.8789380073, 2.0764599, 3.829148999, 
3.871429554), `Pr(>F)` = c(0.3100961342, 0.790359747, 0.3590490777, 
0.3513500926, 0.1032128738, 0.01047588827, 0.04996999548)), row.names = c("Product:Information:Gender", 
"Product:Gender", "Information:Gender", "Gender", "Product:Information", 
"Product", "Information"), class = "data.frame")
step_ham_model <- c("Informed.liking ~ Product + Information + (1 | Consumer) + (1 | ", 
"    Consumer:Product)")
step_ortho_random <- structure(list(Eliminated = c(NA, 1, 0), npar = c(8, 6, 5), logLik = c(-216.2908335, 
-216.8786246, -241.7795587), AIC = c(448.5816671, 445.7572492, 
493.5591175), LRT = c(NA, 1.175582137, 49.80186826), Df = c(NA, 
2, 1), `Pr(>Chisq)` = c(NA, 0.5555531092, 1.700819342e-12)), row.names = c("<none>", 
"age in (age | Subject)", "(1 | Subject)"), class = "data.frame")
step_ortho_fixed <- structure(list(Eliminated = 0, `Sum Sq` = 12.11415194, `Mean Sq` = 12.11415194, 
    NumDF = 1, DenDF = 79.00000018, `F value` = 6.302708946, 
    `Pr(>F)` = 0.01409745038), row.names = "age:Sex", class = "data.frame")
step_ortho_model <- "distance ~ age + Sex + (1 | Subject) + age:Sex"

test_that("recorded: step() on ham (random terms kept, five fixed terms eliminated)", {
  fit <- lmm(Informed.liking ~ Product * Information * Gender + (1 | Consumer) +
               (1 | Consumer:Product), data = ref_data("ham"))
  s <- step(fit)
  expect_s3_class(s, "step_lmm")
  expect_table_close(s$random, step_ham_random)
  expect_table_close(s$fixed, step_ham_fixed)
  final <- get_model(s)
  expect_s3_class(final, "lmm")
  expect_identical(deparse2(formula(final)), paste(trimws(step_ham_model), collapse = " "))
  expect_identical(attr(s$fixed, "heading"),
                   c("Backward reduced fixed-effect table:",
                     "Degrees of freedom method: Satterthwaite \n"))
  out <- capture.output(print(s))
  expect_true("Backward reduced random-effect table:" %in% out)
  expect_identical(out[length(out)], deparse2(formula(final)))
  # the reduced model is the model fitted to the formula found
  direct <- lmm(Informed.liking ~ Product + Information + (1 | Consumer) + (1 | Consumer:Product),
                data = ref_data("ham"))
  expect_equal(final$crit, direct$crit, tolerance = 1e-8)
})

test_that("recorded: step() on Orthodont (a slope eliminated, the interaction kept)", {
  fit <- lmm(distance ~ age * Sex + (age | Subject), as.data.frame(ref_data("Orthodont")))
  s <- step(fit)
  expect_table_close(s$random, step_ortho_random, tol = 1e-3)
  expect_table_close(s$fixed, step_ortho_fixed)
  expect_identical(deparse2(formula(get_model(s))), step_ortho_model)
})

test_that("step(): keep, reduce.random = FALSE, and the arguments", {
  ham <- ref_data("ham")
  fit <- lmm(Informed.liking ~ Product * Information + (1 | Consumer), data = ham)
  s <- step(fit, keep = "Product:Information", reduce.random = FALSE)
  expect_identical(rownames(s$fixed), "Product:Information")
  expect_identical(s$fixed$Eliminated, 0)
  expect_warning(step(fit, keep = "nonsense"), "Invalid 'keep' ignored")
  expect_error(step(fit, ddf = "nonsense"), "should be one of")
  # alpha.fixed = 1: nothing eliminated
  s <- step(fit, alpha.fixed = 1)
  expect_true(all(s$fixed$Eliminated == 0))
  # other objects go to stats::step
  expect_s3_class(step(lm(Informed.liking ~ Product + Information, ham), trace = 0), "lm")
})

test_that("recorded: step() down to an lm() fit, and with an interaction eliminated", {
  # lmerTest::step on lmerTest::lmer(Reaction ~ Days + (1 | g)) and
  # (Reaction ~ Days * g + (Days | Subject)) with sleep as below
  step_lm_random <- structure(list(Eliminated = c(NA, 1), npar = c(4, 3), logLik = c(-946.8318317, 
  -946.8318317), AIC = c(1901.663663, 1899.663663), LRT = c(NA, 
  4.547473509e-13), Df = c(NA, 1), `Pr(>Chisq)` = c(NA, 0.9999994619
  )), row.names = c("<none>", "(1 | g)"), class = "data.frame")
  step_lm_fixed <- structure(list(Eliminated = 0, Df = 1, `Sum of Sq` = 162702.6519, 
      RSS = 567954.2694, AIC = 1452.23108, `F value` = 71.4644206, 
      `Pr(>F)` = 9.894096322e-15), row.names = "Days", class = "data.frame")
  step_lm_model <- "Reaction ~ Days"
  step_sleep_random <- structure(list(Eliminated = c(NA, 0), npar = c(10, 8), logLik = c(-864.0162945, 
  -884.2880976), AIC = c(1748.032589, 1784.576195), LRT = c(NA, 
  40.54360615), Df = c(NA, 2), `Pr(>Chisq)` = c(NA, 1.570607935e-09
  )), row.names = c("<none>", "Days in (Days | Subject)"), class = "data.frame")
  step_sleep_fixed <- structure(list(Eliminated = c(1, 2, 0), `Sum Sq` = c(156.2038454, 
  157.9895727, 30030.93902), `Mean Sq` = c(78.10192272, 78.99478635, 
  30030.93902), NumDF = c(2, 2, 1), DenDF = c(149.4616003, 143.0254237, 
  16.99998373), `F value` = c(0.116400833, 0.1191525583, 45.85296156
  ), `Pr(>F)` = c(0.8901989749, 0.8877603895, 3.26382447e-06)), row.names = c("Days:g", 
  "g", "Days"), class = "data.frame")
  step_sleep_model <- "Reaction ~ Days + (Days | Subject)"
  sleep <- ref_data("sleepstudy")
  sleep$g <- factor(rep(1:3, 60))                   # no g effect at all
  s <- suppressMessages(step(lmm(Reaction ~ Days + (1 | g), sleep)))
  expect_s3_class(get_model(s), "lm")
  expect_identical(deparse2(formula(get_model(s))), step_lm_model)
  cols <- c("Eliminated", "npar", "logLik", "AIC", "Df")
  expect_table_close(s$random[cols], step_lm_random[cols])
  expect_true(abs(s$random$LRT[2]) < 1e-6)
  expect_table_close(s$fixed, step_lm_fixed)
  expect_identical(attr(s$fixed, "heading"), "Backward reduced fixed-effect table:")
  s <- step(lmm(Reaction ~ Days * g + (Days | Subject), sleep))
  expect_table_close(s$random, step_sleep_random)
  expect_table_close(s$fixed, step_sleep_fixed)
  expect_identical(deparse2(formula(get_model(s))), step_sleep_model)
})

test_that("lmerTest's generics reach lmmc's methods, and lmmc's reach lmerTest's", {
  skip_if_not_installed("lmerTest")
  ortho <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age * Sex + (1 | Subject), ortho)
  # lmerTest's generics dispatch to the methods registered for "lmm"
  expect_s3_class(lmerTest::ls_means(fit), "ls_means_lmm")
  expect_s3_class(lmerTest::difflsmeans(fit), "ls_means_lmm")
  expect_equal(lmerTest::contest(fit, c(0, 1, 0, 0)), contest(fit, c(0, 1, 0, 0)))
  s <- lmerTest::step(fit)
  expect_s3_class(s, "step_lmm")
  expect_s3_class(lmerTest::get_model(s), "lmm")
  # lmmc's generics send lme4 fits to lmerTest
  m <- suppressMessages(lmerTest::lmer(distance ~ age * Sex + (1 | Subject), ortho))
  expect_equal(as.data.frame(ls_means(m)), as.data.frame(lmerTest::ls_means(m)))
  expect_equal(contest(m, c(0, 1, 0, 0)), lmerTest::contest(m, c(0, 1, 0, 0)))
  expect_equal(as.data.frame(ranova(m)), as.data.frame(lmerTest::ranova(m)))
})

test_that("recorded: step(ddf = \"Kenward-Roger\", keep = ...) on ham", {
  # lmerTest::step(lmerTest::lmer(<same model>), ddf = "Kenward-Roger", keep = "Gender")
  step_ham_kr_fixed <- structure(list(Eliminated = c(1, 2, 0, 0), `Sum Sq` = c(10.38734568, 
  6.520061728, 91.80709877, 3.847017857), `Mean Sq` = c(3.46244856, 
  6.520061728, 30.60236626, 3.847017857), NumDF = c(3, 1, 3, 1), 
      DenDF = c(560, 563, 564, 79), `F value` = c(0.7908807963, 
      1.490951839, 6.991800651, 0.8789379793), `Pr(>F)` = c(0.4992920102, 
      0.2225799346, 0.000126671056, 0.3513501002)), row.names = c("Product:Information", 
  "Information", "Product", "Gender"), class = "data.frame")
  fit <- lmm(Informed.liking ~ Product * Information + Gender + (1 | Consumer), data = ref_data("ham"))
  s <- step(fit, ddf = "Kenward-Roger", keep = "Gender")
  expect_table_close(s$fixed, step_ham_kr_fixed)
  expect_identical(attr(s$fixed, "heading")[2], "Degrees of freedom method: Kenward-Roger \n")
  expect_identical(deparse2(formula(get_model(s))),
                   "Informed.liking ~ Product + Gender + (1 | Consumer)")
})

test_that("step() on a residual fit: random part by ranova, fixed part by Satterthwaite F", {
  od <- as.data.frame(ref_data("Orthodont"))
  cor <- nlme::corAR1(form = ~ 1 | Subject)
  fit <- lmm(distance ~ age * Sex + (age | Subject), od, correlation = cor)
  st <- suppressWarnings(step(fit))
  m <- get_model(st)
  expect_s3_class(m, "lmm")
  expect_false(is.null(m$residual))
  # the slope's LRT (p = 0.086) is below alpha.random = 0.1: the model stays
  expect_equal(st$random[2, "Pr(>Chisq)"], 0.08627, tolerance = 1e-3)   # recorded 2026-12
  expect_identical(deparse(formula(m)), "distance ~ age * Sex + (age | Subject)")
  expect_equal(st$fixed["age:Sex", "DenDF"], anova(fit)["age:Sex", "DenDF"], tolerance = 1e-8)
})

test_that("step() of a residual fit down to nlme::gls with the same structure", {
  set.seed(3)
  d <- data.frame(g = factor(rep(1:20, each = 5)), t = rep(1:5, 20), x = rnorm(100),
                  z = rnorm(100))
  d$y <- 1 + d$x + as.vector(stats::arima.sim(list(ar = 0.6), 100))
  cor <- nlme::corAR1(form = ~ t | g)
  fit <- lmm(y ~ x + z + (1 | g), d, correlation = cor)
  st <- step(fit)
  m <- get_model(st)
  expect_s3_class(m, "gls")
  expect_identical(deparse(formula(m)), "y ~ x")
  direct <- nlme::gls(y ~ x, d, correlation = cor)
  expect_equal(as.numeric(logLik(m)), as.numeric(logLik(direct)), tolerance = 1e-8)
  expect_identical(rownames(st$fixed), c("z", "x"))
  expect_equal(st$fixed["x", "F value"], anova(direct, type = "marginal")["x", "F-value"],
               tolerance = 1e-8)
  # the random term's LRT compares the lmm with the gls fit (REML both)
  expect_equal(st$random[2, "logLik"], as.numeric(logLik(nlme::gls(y ~ x + z, d,
                                                                     correlation = cor))),
               tolerance = 1e-7)
})
