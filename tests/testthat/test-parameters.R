# parameters methods for "lmm" fits (R/parameters.R) against parameters' tables for the lme4 fits of
# the same models (Satterthwaite df from lmerTest). Reference numbers: es_ref in helper-easystats.R.

es_fixed_columns <- c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p")

# p-values as small as 1e-84 move by a relative 1e-3 when t moves by 1e-5: compare log(p)
# (p = 0 only where the reference is 0).
expect_log_p <- function(p, ref, tol = 1e-4, what = "p") {
  zero <- ref == 0
  testthat::expect_true(all(p[zero] < 1e-300), label = paste(what, "(zero p-values)"))
  expect_close(log(p[!zero]), log(ref[!zero]), tol = tol, what = what)
}

test_that("fixed-effects tables: residual df and Satterthwaite df (recorded reference)", {
  for (name in names(es_ref)) {
    fit <- es_fit(name)
    ref <- es_ref[[name]]
    tab <- lmmc:::add_ci_columns(lmmc:::fixed_effects_table(fit, "residual"), 0.95)
    cols <- setdiff(es_fixed_columns, "p")
    expect_close(as.matrix(tab[cols]), ref$fixed[, cols], tol = 1e-4,
                 scale = rep(ref$fixed[, "SE"], length(cols)), what = paste(name, "fixed"))
    expect_log_p(tab$p, ref$fixed[, "p"], what = paste(name, "p"))
    sat <- lmmc:::add_ci_columns(
      suppressWarnings(lmmc:::fixed_effects_table(fit, "satterthwaite")), 0.95)
    expect_close(as.matrix(sat[c("CI_low", "CI_high", "df_error")]),
                 ref$satterthwaite[, c("CI_low", "CI_high", "df_error")],
                 tol = 2e-3, what = paste(name, "Satterthwaite"))
    expect_log_p(sat$p, ref$satterthwaite[, "p"], tol = 1e-3, what = paste(name, "Satterthwaite p"))
  }
})

test_that("random-effects rows: SDs, correlations and the residual SD", {
  for (name in names(es_ref)) {
    fit <- es_fit(name)
    ref <- es_ref[[name]]
    tab <- lmmc:::random_effects_table(fit, 0.95)
    expect_identical(paste(tab$Parameter, tab$Group), ref$random_names)
    expect_close(tab$Coefficient, ref$random, tol = 1e-4, scale = 1e-3 * max(ref$random),
                 what = paste(name, "random"))
    expect_true(all(is.na(tab$SE)))
  }
})

test_that("model_parameters() tables through parameters", {
  skip_if_not_installed("parameters")
  fit <- es_fit("sleep")
  mp <- parameters::model_parameters(fit)
  expect_s3_class(mp, "parameters_model")
  expect_identical(names(mp), c("Parameter", "Coefficient", "SE", "CI", "CI_low", "CI_high", "t",
                                "df_error", "p", "Effects", "Group"))
  expect_identical(mp$Effects, c("fixed", "fixed", "random", "random", "random", "random"))
  cols <- setdiff(es_fixed_columns, "p")
  expect_close(as.matrix(as.data.frame(mp)[1:2, cols]), es_ref$sleep$fixed[, cols], tol = 1e-4)
  expect_log_p(mp$p[1:2], es_ref$sleep$fixed[, "p"])
  expect_close(mp$Coefficient[3:6], es_ref$sleep$random, tol = 1e-4)
  expect_identical(attr(mp, "ci_method"), "residual")
  out <- paste(utils::capture.output(print(mp)), collapse = "\n")
  expect_match(out, "t(174)", fixed = TRUE)
  expect_match(out, "SD (Days: Subject)", fixed = TRUE)
  sat <- parameters::model_parameters(fit, ci_method = "satterthwaite", effects = "fixed")
  expect_identical(attr(sat, "ci_method"), "Satterthwaite")
  expect_close(sat$df_error, es_ref$sleep$satterthwaite[, "df_error"], tol = 1e-3)
  nor <- parameters::model_parameters(fit, ci_method = "normal", effects = "fixed")
  expect_equal(nor$CI_low, nor$Coefficient - stats::qnorm(0.975) * nor$SE)
  expect_equal(nor$df_error, c(174, 174))
  ran <- parameters::model_parameters(fit, effects = "random")
  expect_identical(names(ran), c("Parameter", "Coefficient", "SE", "CI", "CI_low", "CI_high",
                                 "Effects", "Group"))
  grp <- parameters::model_parameters(fit, effects = "random", group_level = TRUE)
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  expect_equal(grp$Coefficient, re$condval)
  expect_equal(grp$SE, re$condsd)
  orth <- parameters::model_parameters(es_fit("orth"), effects = "fixed")
  expect_identical(unname(attr(orth, "pretty_names")), c("(Intercept)", "age", "Sex [Female]"))
  expect_error(parameters::model_parameters(fit, ci = 2), "'ci' must be")
  expect_error(parameters::model_parameters(fit, ci_method = "boot"))
})

test_that("ci, standard_error, p_value and degrees_of_freedom", {
  skip_if_not_installed("parameters")
  fit <- es_fit("orth")
  ref <- es_ref$orth
  expect_close(parameters::ci(fit)$CI_low, ref$fixed[, "CI_low"], tol = 1e-4)
  expect_close(parameters::standard_error(fit)$SE, ref$fixed[, "SE"], tol = 1e-4)
  expect_log_p(parameters::p_value(fit)$p, ref$fixed[, "p"])
  # one df per coefficient (parameters 0.20) or one for the model (newer releases)
  expect_true(all(parameters::degrees_of_freedom(fit) == 103))
  expect_close(parameters::degrees_of_freedom(fit, method = "satterthwaite"),
               ref$satterthwaite[, "df_error"], tol = 1e-3)
  expect_close(parameters::ci(fit, method = "satterthwaite")$CI_high,
               ref$satterthwaite[, "CI_high"], tol = 1e-4)
})

test_that("Kenward-Roger df and adjusted SEs match pbkrtest", {
  skip_if_not_installed("parameters")
  # parameters::model_parameters(m, ci_method = "kenward", effects = "fixed") on the lme4 fit
  # (pbkrtest 0.5.2): SE, df_error, CI_low
  ref_se <- c(0.8339224741, 0.06160591628, 0.7614168493)
  ref_df <- c(99.35236521, 80, 25)
  ref_low <- c(16.05210245, 0.5375855047, -3.889190083)
  fit <- es_fit("orth")
  kr <- parameters::model_parameters(fit, ci_method = "kenward", effects = "fixed")
  expect_identical(attr(kr, "ci_method"), "Kenward")
  expect_close(kr$SE, ref_se, tol = 1e-4)
  expect_close(kr$df_error, ref_df, tol = 1e-3)
  expect_close(kr$CI_low, ref_low, tol = 1e-4)
  expect_equal(kr$t, kr$Coefficient / kr$SE)
  expect_close(insight::get_df(fit, type = "kenward"), ref_df, tol = 1e-3)
  kr2 <- parameters::model_parameters(fit, ci_method = "kr")
  expect_identical(attr(kr2, "ci_method"), "kr")
  expect_equal(kr2$df_error[1:3], kr$df_error)
})

test_that("model_parameters() equals the lme4 / lmerTest tables live", {
  skip_if_not_installed("parameters")
  skip_if_not_installed("lme4")
  skip_if_not_installed("lmerTest")
  for (name in c("sleep", "orth", "pen")) {
    fit <- es_fit(name)
    d <- es_models[[name]]$data()
    fo <- es_models[[name]]$formula
    environment(fo) <- environment()          # lmerTest re-evaluates the call here
    m <- suppressMessages(lmerTest::lmer(fo, data = d))
    expect_s4_class(m, "lmerModLmerTest")
    methods <- c("residual", "satterthwaite", "wald")
    if (requireNamespace("pbkrtest", quietly = TRUE)) methods <- c(methods, "kenward")
    for (method in methods) {
      a <- suppressMessages(parameters::model_parameters(m, ci_method = method))
      b <- suppressWarnings(parameters::model_parameters(fit, ci_method = method))
      expect_identical(names(b), names(a))
      expect_identical(b$Parameter, a$Parameter)
      expect_identical(b$Group, a$Group)
      num <- c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error")
      expect_log_p(b$p[a$Effects == "fixed"], a$p[a$Effects == "fixed"], tol = 1e-3)
      fixed <- a$Effects == "fixed"
      expect_close(as.matrix(as.data.frame(b)[fixed, num]), as.matrix(as.data.frame(a)[fixed, num]),
                   tol = 2e-3, what = paste(name, method))
      expect_close(b$Coefficient[!fixed], a$Coefficient[!fixed], tol = 1e-4, scale = 1e-3)
      expect_identical(attr(b, "ci_method"), attr(a, "ci_method"))
      expect_identical(attr(b, "pretty_names"), attr(a, "pretty_names"))
    }
  }
})

test_that("random_parameters() summarises the variance parts as for lmerMod", {
  skip_if_not_installed("parameters")
  fit <- es_fit("sleep")
  rp <- parameters::random_parameters(fit)
  ref <- es_ref$sleep$variance
  # insight / parameters for the lme4 fit: sigma2, tau00, tau11, rho01, N groups, observations
  expect_identical(rp$Component[1:4], c("sigma2", "tau00", "tau11", "rho01"))
  expect_close(rp$Value, c(ref[["var.residual"]], ref[["var.intercept.Subject"]],
                           ref[["var.slope.Subject.Days"]],
                           ref[["cor.slope_intercept.Subject"]], 18, 180),
               tol = 2e-4, what = "random_parameters")
})

test_that("model_parameters(): keep / drop rows, clear errors for options it does not implement", {
  skip_if_not_installed("parameters")
  fit <- es_fit("orth")
  mp <- parameters::model_parameters(fit, keep = "^Sex|^SD")
  expect_identical(mp$Parameter, c("SexFemale", "SD (Intercept)", "SD (Observations)"))
  mp <- parameters::model_parameters(fit, effects = "fixed", drop = "Intercept")
  expect_identical(mp$Parameter, c("age", "SexFemale"))
  expect_error(parameters::model_parameters(fit, standardize = "refit"), "standardize")
  expect_error(parameters::model_parameters(fit, bootstrap = TRUE), "bootstrap")
  expect_silent(parameters::model_parameters(fit, bootstrap = FALSE, effects = "fixed"))
})
