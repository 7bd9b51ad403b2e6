# Live comparison with the installed lme4: every reference model is fitted by lme4::lmer() and by
# lmm(), and the criterion, theta, fixed effects, SEs, sigma, VarCorr, conditional modes and SDs,
# fitted values and predictions are compared (tolerances as in helper-reference.R).
# InstEval (about 40 s in lme4 here) runs only when LMMC_TEST_SLOW=true.
#
# The reference is lme4 with a tight stopping rule (lme4_tight_control()): lme4's default rule
# can stop 1e-4 (relative) short in theta on flat criteria (Orthodont, see
# test-reference-nlme-data.R). lmm's criterion must also be no worse than lme4's with default
# control (crit_default).

live_models <- list(
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", TRUE),
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", FALSE),
  list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), "sleepstudy", TRUE),
  list(Reaction ~ Days + (Days || Subject), "sleepstudy", TRUE),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff", TRUE),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff", FALSE),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff2", TRUE),
  list(diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin", TRUE),
  list(strength ~ 1 + (1 | batch/cask), "Pastes", TRUE),
  list(angle ~ recipe * temperature + (1 | recipe:replicate), "cake", TRUE),
  list(angle ~ recipe * temperature + (1 | recipe:replicate), "cake", FALSE),
  list(distance ~ age + (age | Subject), "Orthodont", TRUE),
  list(distance ~ age * Sex + (1 | Subject), "Orthodont", TRUE),
  list(yield ~ nitro + Variety + (1 | Block/Variety), "Oats", TRUE),
  list(travel ~ 1 + (1 | Rail), "Rail", TRUE),
  list(effort ~ Type + (1 | Subject), "ergoStool", TRUE),
  list(score ~ Machine + (1 | Worker/Machine), "Machines", TRUE),
  list(MathAch ~ SES + (1 | School), "MathAchieve", TRUE),
  list(score ~ x + (1 | teacher) + (1 | student), "sim_crossed", TRUE),
  list(score ~ ses + (1 | district/school), "sim_nested", TRUE),
  list(score ~ ses + (1 | district) + (1 | school), "sim_nested", TRUE),
  list(dependent_var ~ (1 | participant_ID) + (1 | Condition_1) + (1 | Condition_2),
       "issue_repeated", TRUE),
  list(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service), "InstEval", TRUE)
)

live_data <- function(name) {
  switch(name,
         sim_crossed = sim_crossed(),
         sim_nested = sim_nested(),
         issue_repeated = issue_repeated(),
         InstEval = lme4::InstEval,
         Orthodont = , Oats = , Rail = , ergoStool = , Machines = , MathAchieve =
           plain_data(ref_data(name)),
         ref_data(name))
}

# nlme's groupedData (whose ordered factors are all grouping factors) as a plain data frame of
# unordered factors:
# lme4's predict(newdata) fails on MathAchieve's 160-level ordered School ("orthogonal
# polynomials cannot be represented accurately enough"). test-reference-nlme-data.R fits the
# original objects.
plain_data <- function(d) {
  d <- as.data.frame(d)
  attributes(d)[setdiff(names(attributes(d)), c("names", "row.names", "class"))] <- NULL
  d[] <- lapply(d, function(v) if (is.ordered(v)) factor(v, levels(v), ordered = FALSE) else v)
  d
}

# Predictions on the fitting data and on new data (the first rows, and rows with the grouping
# factors' levels shuffled), with and without the random effects.
expect_predictions_match <- function(fit, mfit, data, sigma) {
  expect_close(fitted(fit), stats::fitted(mfit), scale = sigma, what = "fitted")
  expect_close(residuals(fit), stats::residuals(mfit), scale = sigma, what = "residuals")
  expect_close(predict(fit), stats::predict(mfit), scale = sigma, what = "predict()")
  new <- utils::head(data, 12)
  expect_close(predict(fit, newdata = new), stats::predict(mfit, newdata = new),
               scale = sigma, what = "predict(newdata)")
  expect_close(predict(fit, newdata = new, re.form = NA),
               stats::predict(mfit, newdata = new, re.form = NA),
               scale = sigma, what = "predict(newdata, re.form = NA)")
  shuffled <- data[rev(seq_len(min(nrow(data), 40))), , drop = FALSE]
  expect_close(predict(fit, newdata = shuffled), stats::predict(mfit, newdata = shuffled),
               scale = sigma, what = "predict(reversed rows)")
}

for (m in live_models) {
  formula <- m[[1]]; data_name <- m[[2]]; REML <- m[[3]]
  test_that(sprintf("live: lmm() and lme4::lmer() agree on %s: %s%s", data_name,
                    deparse1(formula), if (REML) "" else " (ML)"), {
    skip_if_not_installed("lme4")
    if (data_name == "InstEval") {
      skip_on_cran()
      skip_if_not(identical(Sys.getenv("LMMC_TEST_SLOW"), "true"), "set LMMC_TEST_SLOW=true")
    }
    data <- live_data(data_name)
    fit <- suppressMessages(lmm(formula, data, REML = REML))
    mfit_default <- suppressMessages(lme4::lmer(formula, data, REML = REML))
    mfit <- if (data_name == "InstEval") mfit_default else
      suppressMessages(lme4::lmer(formula, data, REML = REML, control = lme4_tight_control()))
    ref <- ref_from_lme4(mfit)
    ref$crit_default <- ref_from_lme4(mfit_default)$crit
    expect_matches_reference(fit, ref)
    expect_predictions_match(fit, mfit, data, ref$sigma)
    # conditional modes of every level, not just the first rows
    re <- as.data.frame(ranef(fit, condVar = TRUE))
    mre <- as.data.frame(lme4::ranef(mfit, condVar = TRUE))
    if (nrow(re) == nrow(mre)) {
      expect_close(re$condval, mre$condval, scale = pmax(mre$condsd, ref$sigma * 1e-2),
                   what = "all condval")
      expect_close(re$condsd, mre$condsd, scale = ref$sigma * 1e-2, what = "all condsd")
    }
    expect_close(as.matrix(vcov(fit)), as.matrix(stats::vcov(mfit)),
                 scale = max(ref$se)^2, what = "vcov")
  })
}
