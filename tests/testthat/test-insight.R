# insight methods for "lmm" fits (R/insight.R) against insight's answers for the lme4 fits of the
# same models. Reference numbers: es_ref in helper-easystats.R.

es_variance_vector <- function(v) unlist(v)

test_that("get_variance() gives insight's lmerMod variance parts (recorded reference)", {
  for (name in names(es_ref)) {
    fit <- es_fit(name)
    v <- suppressWarnings(lmmc:::get_variance.lmm(fit))
    ref <- es_ref[[name]]$variance
    expect_identical(names(es_variance_vector(v)), names(ref), label = name)
    expect_close(es_variance_vector(v), ref, tol = 2e-4, scale = 1e-3 * max(ref),
                 what = paste(name, "variance parts"))
  }
})

test_that("get_variance() components, singular fits and the random-slope warning", {
  fit <- es_fit("sleep")
  v <- lmmc:::get_variance.lmm(fit, component = "random")
  expect_identical(names(v), "var.random")
  expect_close(v$var.random, es_ref$sleep$variance[["var.random"]], tol = 2e-4)
  v <- lmmc:::get_variance.lmm(fit, component = "slope")
  expect_identical(names(v$var.slope), "Subject.Days")
  # Dyestuff2: sigma_Batch = 0, so no random-effect variance (insight's rule), with a warning
  dye <- es_fit("dye")
  expect_warning(v <- lmmc:::get_variance.lmm(dye), "singularity")
  expect_null(v$var.random)
  expect_equal(v$var.intercept[["Batch"]], 0)
  # a random slope of a variable that is not a fixed effect
  fit2 <- suppressWarnings(lmm(Reaction ~ 1 + (Days | Subject), ref_data("sleepstudy")))
  expect_warning(lmmc:::get_variance.lmm(fit2), "Random slopes not present")
})

test_that("random-slope blocks: uncorrelated (||) and two-slope correlations", {
  d <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days || Subject), d)
  v <- lmmc:::get_variance.lmm(fit)
  # insight (lmerMod) picks the block named "Subject" only for var.random: the intercept variance
  expect_equal(v$var.random, v$var.intercept[["Subject"]])
  expect_identical(names(v$var.slope), "Subject.Days")
  expect_null(v$cor.slope_intercept)
  d$Days2 <- (d$Days - 4.5)^2 / 10
  fit2 <- suppressWarnings(lmm(Reaction ~ Days + Days2 + (Days + Days2 | Subject), d))
  v2 <- lmmc:::get_variance.lmm(fit2, verbose = FALSE)
  R <- attr(VarCorr(fit2)$Subject, "correlation")
  expect_equal(unname(v2$cor.slope_intercept), unname(R[2:3, 1]))
  expect_identical(names(v2$cor.slope_intercept), c("Subject.Days", "Subject.Days2"))
  expect_equal(v2$cor.slopes[["Subject.Days-Days2"]], R[3, 2])
})

test_that("formula, parameters, statistic and df through insight", {
  skip_if_not_installed("insight")
  fit <- es_fit("sleep")
  expect_true(insight::is_mixed_model(fit))
  f <- insight::find_formula(fit)
  expect_equal(format(f$conditional), "Reaction ~ Days")
  expect_equal(format(f$random), "~Days | Subject")
  expect_identical(insight::find_random(fit), list(random = "Subject"))
  expect_identical(insight::find_parameters(fit),
                   list(conditional = c("(Intercept)", "Days"),
                        random = list(Subject = c("(Intercept)", "Days"))))
  p <- insight::get_parameters(fit)
  expect_close(p$Estimate, es_ref$sleep$fixed[, "Coefficient"], tol = 1e-5)
  s <- insight::get_statistic(fit)
  expect_close(s$Statistic, es_ref$sleep$fixed[, "t"], tol = 1e-4)
  expect_identical(attr(s, "statistic"), "t-statistic")
  expect_equal(insight::get_df(fit), 174)
  expect_equal(insight::get_df(fit, type = "model"), 6)
  expect_equal(insight::get_df(fit, type = "normal"), Inf)
  expect_close(insight::get_df(fit, type = "satterthwaite"),
               es_ref$sleep$satterthwaite[, "df_error"], tol = 1e-3)
  # insight::get_df(lmer(Reaction ~ Days + (Days | Subject), sleepstudy), type = "kenward")
  # (pbkrtest 0.5.2 Lb_ddf): 17, 17
  kr <- insight::get_df(fit, type = "kenward")
  expect_identical(names(kr), c("(Intercept)", "Days"))
  expect_close(kr, c(17, 17), tol = 1e-6)
  expect_equal(insight::get_df(fit, type = "kr"), kr)
  pen <- es_fit("pen")
  fp <- insight::find_formula(pen)
  expect_equal(vapply(fp$random, format, ""), c("~1 | plate", "~1 | sample"))
  expect_identical(insight::find_random(pen)$random, c("plate", "sample"))
  expect_equal(insight::n_obs(pen), 144)
})

test_that("model_info and log-likelihood as for lmerMod", {
  skip_if_not_installed("insight")
  fit <- es_fit("orth")
  mi <- insight::model_info(fit)
  expect_true(mi$is_linear)
  expect_true(mi$is_mixed)
  expect_identical(mi$family, "gaussian")
  expect_identical(mi$link_function, "identity")
  ll <- insight::get_loglikelihood(fit)
  expect_close(as.numeric(ll), -(es_ref$orth$performance[["AIC"]] - 2 * 5) / 2, tol = 1e-6)
  expect_equal(attr(ll, "df"), 5)
  ll_ml <- insight::get_loglikelihood(fit, estimator = "ML")
  expect_close(as.numeric(ll_ml), as.numeric(logLik(fit, REML = FALSE)), tol = 1e-12)
})

test_that("variance parts and insight answers equal the live lme4 ones", {
  skip_if_not_installed("insight")
  skip_if_not_installed("lme4")
  for (name in c("sleep", "orth", "pen")) {
    fit <- es_fit(name)
    m <- es_lmer(name)
    a <- unlist(insight::get_variance(m))
    b <- unlist(insight::get_variance(fit))
    expect_identical(names(b), names(a))
    expect_close(b, a, tol = 2e-4, scale = 1e-3 * max(a), what = paste(name, "variance"))
    expect_equal(insight::find_formula(fit), insight::find_formula(m), ignore_attr = TRUE)
    expect_equal(insight::find_parameters(fit), insight::find_parameters(m))
    expect_equal(insight::get_df(fit), insight::get_df(m))
    expect_equal(insight::get_df(fit, type = "model"), insight::get_df(m, type = "model"))
    mi_a <- insight::model_info(m)
    mi_b <- insight::model_info(fit)
    expect_equal(mi_b, mi_a)
  }
})
