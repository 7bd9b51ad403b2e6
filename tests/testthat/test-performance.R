# performance methods for "lmm" fits (R/performance.R) against performance's answers for the lme4
# fits of the same models. Reference numbers: es_ref in helper-easystats.R.

test_that("check_singularity() uses performance's rule (|theta| < tolerance on the boundary)", {
  for (name in names(es_ref))
    expect_identical(lmmc:::check_singularity.lmm(es_fit(name)), es_ref[[name]]$singular,
                     label = name)
  dye <- es_fit("dye")
  expect_true(lmmc:::check_singularity.lmm(dye, tolerance = 1e-5))
  expect_identical(lmmc:::check_singularity.lmm(dye), isSingular(dye, tol = 1e-5))
  sleep <- es_fit("sleep")
  expect_false(lmmc:::check_singularity.lmm(sleep, tolerance = 0.2))
  expect_true(lmmc:::check_singularity.lmm(sleep, tolerance = 0.3))   # theta_22 = 0.23
})

test_that("hat values and Cook's distances match lme4's (recorded reference)", {
  for (name in names(es_ref)) {
    fit <- es_fit(name)
    expect_close(sum(hatvalues(fit)), es_ref[[name]]$hat_sum, tol = 1e-4, what = name)
    expect_close(max(cooks.distance(fit)), es_ref[[name]]$cook_max, tol = 1e-3, what = name)
  }
  fit <- es_fit("orth")
  h <- hatvalues(fit)
  expect_identical(names(h), rownames(fit$frame))
  expect_true(all(h > 0 & h < 1))
  r <- residuals(fit, type = "pearson")
  expect_equal(rstandard(fit), r / (sigma(fit) * sqrt(1 - h)))
})

test_that("AIC, AICc, BIC of model_performance() follow lmerMod's REML convention", {
  for (name in c("sleep", "orth", "pen")) {
    fit <- es_fit(name)
    ref <- es_ref[[name]]$performance
    expect_close(lmmc:::performance_aic.lmm(fit), ref[["AIC"]], tol = 1e-6, what = name)
    expect_close(lmmc:::performance_aicc.lmm(fit), ref[["AICc"]], tol = 1e-6, what = name)
    expect_close(lmmc:::performance_bic_lmm(fit), ref[["BIC"]], tol = 1e-6, what = name)
    expect_close(lmmc:::performance_aic.lmm(fit, estimator = "ML"), AIC(logLik(fit, REML = FALSE)),
                 tol = 1e-12)
  }
})

test_that("icc, r2 and model_performance through performance (recorded reference)", {
  skip_if_not_installed("performance")
  for (name in names(es_ref)) {
    fit <- es_fit(name)
    ref <- es_ref[[name]]$performance
    mp <- performance::model_performance(fit)
    expect_s3_class(mp, "performance_model")
    expect_identical(names(mp), names(ref), label = name)
    expect_close(unlist(mp), ref, tol = 1e-4, scale = 1e-4, what = paste(name, "performance"))
    if (name == "dye") {
      expect_warning(i <- performance::icc(fit), "singularity")
      expect_true(is.na(i))
      next
    }
    i <- performance::icc(fit)
    expect_close(i$ICC_adjusted, ref[["ICC"]], tol = 1e-4, what = paste(name, "ICC"))
    r <- performance::r2(fit)
    expect_s3_class(r, "r2_nakagawa")
    expect_close(unlist(r), ref[c("R2_conditional", "R2_marginal")], tol = 1e-4, scale = 1e-4)
    expect_identical(performance::check_singularity(fit), es_ref[[name]]$singular)
  }
})

test_that("performance::icc and r2 equal lmmc's icc and r2 where the definitions coincide", {
  skip_if_not_installed("performance")
  for (name in c("sleep", "orth", "hsb", "pen")) {
    fit <- es_fit(name)
    ours <- lmmc::icc(fit)
    theirs <- performance::icc(fit)
    expect_equal(theirs$ICC_adjusted, sum(ours$adjusted), tolerance = 1e-10)
    expect_equal(theirs$ICC_conditional, sum(ours$conditional), tolerance = 1e-10)
    expect_equal(unname(unlist(performance::r2(fit))),
                 unname(unclass(lmmc::r2(fit))[c("conditional", "marginal")]),
                 tolerance = 1e-10)
  }
})

test_that("check_model() builds its diagnostics data as for lmerMod", {
  skip_if_not_installed("performance")
  fit <- es_fit("sleep")
  cm <- es_check_model(fit)
  expect_s3_class(cm, "check_model")
  expect_true(all(c("QQ", "REQQ", "NORM", "NCV", "HOMOGENEITY", "OUTLIERS", "INFLUENTIAL",
                    "PP_CHECK") %in% names(cm)))
  expect_equal(cm$NCV$x, unname(fitted(fit)))
  expect_equal(cm$NCV$y, unname(residuals(fit)))
  expect_equal(nrow(cm$REQQ$Subject), 36)
  expect_equal(cm$INFLUENTIAL$Hat, unname(hatvalues(fit)))
})

test_that("model_performance, icc, r2 and check_model agree with live lme4 fits", {
  skip_if_not_installed("performance")
  skip_if_not_installed("lme4")
  for (name in c("sleep", "pen", "dye")) {
    fit <- es_fit(name)
    m <- es_lmer(name)
    a <- suppressWarnings(unlist(performance::model_performance(m)))
    b <- suppressWarnings(unlist(performance::model_performance(fit)))
    expect_identical(names(b), names(a))
    expect_close(b, a, tol = 1e-4, scale = 1e-4, what = paste(name, "performance"))
    expect_identical(performance::check_singularity(fit), performance::check_singularity(m))
  }
  cm_a <- es_check_model(es_lmer("sleep"))
  cm_b <- es_check_model(es_fit("sleep"))
  expect_identical(names(cm_b), names(cm_a))
  # performance takes residuals() for merMod classes but rstudent() for other classes, so the
  # lmm QQ panel shows the studentized residuals (lme4's rstudent definition) where lme4's shows
  # the raw ones: same ordering of the observations, different scale.
  expect_close(sort(cm_b$QQ$y), sort(unname(rstudent(es_fit("sleep")))), tol = 1e-10, what = "QQ")
  expect_identical(order(cm_b$QQ$x), order(cm_a$QQ$x))
  expect_close(cm_b$INFLUENTIAL$Cooks_Distance, cm_a$INFLUENTIAL$Cooks_Distance, tol = 1e-3,
               scale = 1e-3, what = "Cook's distance")
})
