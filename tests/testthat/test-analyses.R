# Simulated analyses with fixed seeds (data generators in helper-reference.R) and the
# repeated-measures table from the issue, against lme4's numbers.
#
# Reference values: lme4 1.1-31 (Matrix 1.5-3, R 4.2.2), lme4::lmer() with default control, REML,
# on exactly the data the generators below produce (set.seed with R's default generators);
# fields as described in test-reference-lme4.R; trailing comments: lme4's fit@optinfo$feval.

ref_analyses <- list(
  crossed = list(
    formula = score ~ x + (1 | teacher) + (1 | student), data = "sim_crossed()", REML = TRUE,
    crit = 4772.07308284242, logLik = -2386.03654142121, nobs = 1000L,
    theta = c(1.3082321335999, 0.681213806636996),
    fixef = c(`(Intercept)` = 10.3217986931841, x = 0.528330554192311),
    se = c(`(Intercept)` = 0.319336139646943, x = 0.0708343542989238),
    sigma = 2.01735175573955,
    ngrps = c(student = 200, teacher = 30), singular = FALSE,
    varcorr = data.frame(
      grp = c("student", "teacher", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(6.96518868606178, 1.88855720504748, 4.06970810638546),
      sdcor = c(2.63916439163266, 1.37424786885317, 2.01735175573955),
      stringsAsFactors = FALSE),
    ranef_nrow = 230L,
    ranef = data.frame(
      row = c(1, 2, 201, 202),
      grpvar = c("student", "student", "teacher", "teacher"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("S001", "S002", "T01", "T02"),
      condval = c(2.87733309109674, -1.64543136156156, -1.6933496205382, 0.430395169894764),
      condsd = c(0.874370895304632, 0.874554929949335, 0.385021367825508, 0.434964542133595),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 34

  nested = list(
    formula = score ~ ses + (1 | district/school), data = "sim_nested()", REML = TRUE,
    crit = 6311.15754704224, logLik = -3155.57877352112, nobs = 961L,
    theta = c(0.508901686451577, 0.634551827490555),
    fixef = c(`(Intercept)` = 50.4841705478221, ses = 2.52981396793777),
    se = c(`(Intercept)` = 1.18546751975681, ses = 0.198093166399972),
    sigma = 6.04856657035632,
    ngrps = c(`school:district` = 72, district = 12), singular = FALSE,
    varcorr = data.frame(
      grp = c("school:district", "district", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(9.47485799903133, 14.7312339973992, 36.585157556032),
      sdcor = c(3.07812572826896, 3.83812897091788, 6.04856657035632),
      stringsAsFactors = FALSE),
    ranef_nrow = 84L,
    ranef = data.frame(
      row = c(1, 2, 73, 74),
      grpvar = c("school:district", "school:district", "district", "district"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("1:D1", "1:D2", "D1", "D2"),
      condval = c(-1.24120552632152, -3.36299022422, 5.43736435858022, -2.00674589845426),
      condsd = c(1.66465971148942, 1.98449657250716, 1.32738738378351, 1.37000588255287),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 40

  nested_uid = list(
    formula = score ~ ses + (1 | district) + (1 | school_id), data = "sim_nested()", REML = TRUE,
    crit = 6311.15754704224, logLik = -3155.57877352112, nobs = 961L,
    theta = c(0.50890168648289, 0.634551828132287),
    fixef = c(`(Intercept)` = 50.4841705478065, ses = 2.52981396793828),
    se = c(`(Intercept)` = 1.18546752079559, ses = 0.198093166397604),
    sigma = 6.0485665702774,
    ngrps = c(school_id = 72, district = 12), singular = FALSE,
    varcorr = data.frame(
      grp = c("school_id", "district", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(9.47485799995006, 14.7312340268106, 36.5851575550773),
      sdcor = c(3.0781257284182, 3.83812897474936, 6.0485665702774),
      stringsAsFactors = FALSE),
    ranef_nrow = 84L,
    ranef = data.frame(
      row = c(1, 2, 73, 74),
      grpvar = c("school_id", "school_id", "district", "district"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("1", "2", "D1", "D2"),
      condval = c(-1.24120552739129, -0.65484269133531, 5.43736435984265, -2.00674589896084),
      condsd = c(1.66465971161351, 1.69352320499465, 1.32738738398367, 1.37000588276637),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 40

  nested_wrong = list(
    formula = score ~ ses + (1 | district) + (1 | school), data = "sim_nested()", REML = TRUE,
    crit = 6408.98148779836, logLik = -3204.49074389918, nobs = 961L,
    theta = c(0.623220581897626, 0.114657774086426),
    fixef = c(`(Intercept)` = 50.7417552574846, ses = 2.58592623002805),
    se = c(`(Intercept)` = 1.25334896321588, ses = 0.212904212093924),
    sigma = 6.63737181843816,
    ngrps = c(district = 12, school = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("district", "school", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(17.1110188243064, 0.579160996546393, 44.0547046561971),
      sdcor = c(4.13654672695794, 0.761026278486093, 6.63737181843816),
      stringsAsFactors = FALSE),
    ranef_nrow = 18L,
    ranef = data.frame(
      row = c(1, 2, 13, 14),
      grpvar = c("district", "district", "school", "school"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("D1", "D2", "1", "2"),
      condval = c(6.03204598644256, -1.79014730293076, -0.926806051188366, -0.446354520215806),
      condsd = c(0.744081324515926, 0.815434917523884, 0.494752527552579, 0.476392332923833),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 29

  issue = list(
    formula = dependent_var ~ (1 | participant_ID) + (1 | Condition_1) + (1 | Condition_2), data = "issue_repeated()", REML = TRUE,
    crit = -0.872617621149732, logLik = 0.436308810574866, nobs = 16L,
    theta = c(0, 0, 0),
    fixef = c(`(Intercept)` = 0.53125),
    se = c(`(Intercept)` = 0.053571408730155),
    sigma = 0.21428563492062,
    ngrps = c(participant_ID = 8, Condition_1 = 2, Condition_2 = 2), singular = TRUE,
    varcorr = data.frame(
      grp = c("participant_ID", "Condition_1", "Condition_2", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA, NA),
      vcov = c(0, 0, 0, 0.0459183333333333),
      sdcor = c(0, 0, 0, 0.21428563492062),
      stringsAsFactors = FALSE),
    ranef_nrow = 12L,
    ranef = data.frame(
      row = c(1, 2, 9, 10, 11, 12),
      grpvar = c("participant_ID", "participant_ID", "Condition_1", "Condition_1", "Condition_2", "Condition_2"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("1", "2", "1", "2", "1", "2"),
      condval = c(0, 0, 0, 0, 0, 0),
      condsd = c(0, 0, 0, 0, 0, 0),
      stringsAsFactors = FALSE)
  )  # lme4 feval = 36
)

test_that("simulated data are the data lme4's numbers were recorded on", {
  crossed <- sim_crossed()
  expect_identical(dim(crossed), c(1000L, 4L))
  expect_close(sum(crossed$score), 10323.70169, 1e-9)
  nested <- sim_nested()
  expect_identical(dim(nested), c(961L, 5L))
  expect_close(sum(nested$score), 48866.95614, 1e-9)
  expect_identical(nlevels(nested$school), 6L)
  expect_identical(nlevels(nested$school_id), 72L)
})

test_that("partially crossed teachers x students: variance components as lme4", {
  ref <- ref_analyses$crossed
  fit <- expect_silent(lmm(ref$formula, sim_crossed()))
  expect_matches_reference(fit, ref)
})

test_that("(1|district/school) treats reused school labels as distinct schools", {
  nested <- sim_nested()
  ref <- ref_analyses$nested
  fit <- expect_silent(lmm(ref$formula, nested))
  expect_matches_reference(fit, ref)
  expect_equal(ngrps(fit), c(`school:district` = 72, district = 12))

  # the same model written with globally unique school labels
  ref_uid <- ref_analyses$nested_uid
  fit_uid <- expect_silent(lmm(ref_uid$formula, nested))
  expect_matches_reference(fit_uid, ref_uid)
  expect_close(REMLcrit(fit_uid), REMLcrit(fit), 1e-9)
  expect_close(fixef(fit_uid), fixef(fit), 1e-5)
  expect_close(sigma(fit_uid), sigma(fit), 1e-5)
})

test_that("(1|district) + (1|school) with reused labels is a different (wrong) model", {
  nested <- sim_nested()
  ref <- ref_analyses$nested_wrong
  fit_wrong <- expect_silent(lmm(ref$formula, nested))
  expect_matches_reference(fit_wrong, ref)
  expect_equal(ngrps(fit_wrong), c(district = 12, school = 6))

  fit_nested <- lmm(score ~ ses + (1 | district/school), nested)
  expect_gt(REMLcrit(fit_wrong) - REMLcrit(fit_nested), 90)   # lme4: 6408.98 vs 6311.16
  expect_gt(sigma(fit_wrong) - sigma(fit_nested), 0.5)       # lme4: 6.637 vs 6.049
})

test_that("the issue's repeated-measures table: singular fit, as lme4, default settings", {
  ref <- ref_analyses$issue
  d <- issue_repeated()
  expect_message(fit <- lmm(ref$formula, d), "singular")
  expect_true(isSingular(fit))
  expect_matches_reference(fit, ref)
  # the values lme4's summary prints
  expect_equal(round(REMLcrit(fit), 4), -0.8726)
  expect_equal(round(sigma(fit), 4), 0.2143)
  expect_equal(round(as.data.frame(VarCorr(fit))$vcov[1:3], 5), c(0, 0, 0))   # "0.00000"
  expect_output(print(summary(fit)), "singular")
})
