# lmmc against lme4's numbers on lme4's own data sets.
#
# Reference values: lme4 1.1-31 (Matrix 1.5-3, R 4.2.2 Patched 2022-11-10, Debian reference BLAS),
# lme4::lmer() with default control, printed with 15 significant digits. Fields:
#   crit     REMLcrit(fit) for REML fits, deviance(fit) for ML fits
#   theta    getME(fit, "theta");  se = sqrt(diag(vcov(fit)))
#   varcorr  as.data.frame(VarCorr(fit));  ngrps(fit);  isSingular(fit) (tol 1e-4)
#   ranef    selected rows (row = position) of as.data.frame(ranef(fit, condVar = TRUE)),
#            ranef_nrow = its number of rows
# The trailing comment of each entry is lme4's number of objective evaluations
# (fit@optinfo$feval); lmmc aims to need fewer (see bench/README.md).
#
# Data: tests/testthat/data/<name>.rds, saved from lme4 1.1-31, so these tests run without lme4.
# Tolerances: see helper-reference.R (criterion 1e-6 relative and never worse than lme4;
# estimates 1e-4 relative with an absolute floor for values near 0).

ref_lme4 <- list(
  sleep_reml = list(
    formula = Reaction ~ Days + (Days | Subject), data = "sleepstudy", REML = TRUE,
    crit = 1743.62827195995, logLik = -871.814135979976, nobs = 180L,
    theta = c(0.966741773967412, 0.0151690588960361, 0.230909953207795),
    fixef = c(`(Intercept)` = 251.405104848485, Days = 10.467285959596),
    se = c(`(Intercept)` = 6.82459669495491, Days = 1.54578964390598),
    sigma = 25.5917957216753,
    ngrps = c(Subject = 18), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Subject", "Subject", "Residual"),
      var1 = c("(Intercept)", "Days", "(Intercept)", NA),
      var2 = c(NA, NA, "Days", NA),
      vcov = c(612.100158024769, 35.0717144509388, 9.60440895115776, 654.940008259961),
      sdcor = c(24.7406579949841, 5.92213765889808, 0.0655512382381282, 25.5917957216753),
      stringsAsFactors = FALSE),
    ranef_nrow = 36L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Subject", "Subject", "Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)", "Days", "Days"),
      grp = c("308", "309", "308", "309"),
      condval = c(2.25855094990116, -40.3987380788051, 9.1989757655659, -8.61968061524321),
      condsd = c(12.0708569505143, 12.0708569505143, 2.30483902090028, 2.30483902090028),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 43

  sleep_ml = list(
    formula = Reaction ~ Days + (Days | Subject), data = "sleepstudy", REML = FALSE,
    crit = 1751.93934448899, logLik = -875.969672244495, nobs = 180L,
    theta = c(0.929190605278248, 0.018165754720412, 0.222643205612618),
    fixef = c(`(Intercept)` = 251.405104848486, Days = 10.4672859595958),
    se = c(`(Intercept)` = 6.63212274219029, Days = 1.50223021383204),
    sigma = 25.591907036487,
    ngrps = c(Subject = 18), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Subject", "Subject", "Residual"),
      var1 = c("(Intercept)", "Days", "(Intercept)", NA),
      var2 = c(NA, NA, "Days", NA),
      vcov = c(565.476966132419, 32.6817852488527, 11.0551223919533, 654.945705764191),
      sdcor = c(23.779759589458, 5.71679851392829, 0.0813210934266345, 25.591907036487),
      stringsAsFactors = FALSE),
    ranef_nrow = 36L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Subject", "Subject", "Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)", "Days", "Days"),
      grp = c("308", "309", "308", "309"),
      condval = c(2.81578901966651, -40.0478549179088, 9.07550677755097, -8.64415166182976),
      condsd = c(11.8728642632228, 11.8728642632228, 2.2710647772321, 2.2710647772321),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 53

  sleep_diag = list(
    formula = Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), data = "sleepstudy", REML = TRUE,
    crit = 1743.66929358148, logLik = -871.834646790741, nobs = 180L,
    theta = c(0.979896527914237, 0.234231225347045),
    fixef = c(`(Intercept)` = 251.405104848483, Days = 10.467285959596),
    se = c(`(Intercept)` = 6.88538081723721, Days = 1.55956909806857),
    sigma = 25.5652792015696,
    ngrps = c(Subject = 18), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Subject.1", "Residual"),
      var1 = c("(Intercept)", "Days", NA),
      var2 = c(NA, NA, NA),
      vcov = c(627.56905083573, 35.8583796393533, 653.583500654207),
      sdcor = c(25.0513283247761, 5.98818667372297, 25.5652792015696),
      stringsAsFactors = FALSE),
    ranef_nrow = 36L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Subject", "Subject", "Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)", "Days", "Days"),
      grp = c("308", "309", "308", "309"),
      condval = c(1.51266476867934, -40.3738728277167, 9.32349703989095, -8.59917574113609),
      condsd = c(12.2389410634596, 12.2389410634596, 2.33546391300763, 2.33546391300763),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 34

  sleep_dbar = list(
    formula = Reaction ~ Days + (Days || Subject), data = "sleepstudy", REML = TRUE,
    crit = 1743.66929358148, logLik = -871.834646790741, nobs = 180L,
    theta = c(0.979896527914237, 0.234231225347045),
    fixef = c(`(Intercept)` = 251.405104848483, Days = 10.467285959596),
    se = c(`(Intercept)` = 6.88538081723721, Days = 1.55956909806857),
    sigma = 25.5652792015696,
    ngrps = c(Subject = 18), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Subject.1", "Residual"),
      var1 = c("(Intercept)", "Days", NA),
      var2 = c(NA, NA, NA),
      vcov = c(627.56905083573, 35.8583796393533, 653.583500654207),
      sdcor = c(25.0513283247761, 5.98818667372297, 25.5652792015696),
      stringsAsFactors = FALSE),
    ranef_nrow = 36L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Subject", "Subject", "Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)", "Days", "Days"),
      grp = c("308", "309", "308", "309"),
      condval = c(1.51266476867934, -40.3738728277167, 9.32349703989095, -8.59917574113609),
      condsd = c(12.2389410634596, 12.2389410634596, 2.33546391300763, 2.33546391300763),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 34

  dyestuff = list(
    formula = Yield ~ 1 + (1 | Batch), data = "Dyestuff", REML = TRUE,
    crit = 319.654276842257, logLik = -159.827138421129, nobs = 30L,
    theta = 0.848323783218823,
    fixef = c(`(Intercept)` = 1527.5),
    se = c(`(Intercept)` = 19.3834121787528),
    sigma = 49.5100999656347,
    ngrps = c(Batch = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("Batch", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(1764.0500064271, 2451.24999860715),
      sdcor = c(42.0005953103894, 49.5100999656347),
      stringsAsFactors = FALSE),
    ranef_nrow = 6L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Batch", "Batch"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("A", "B"),
      condval = c(-17.606851366879, 0.391263363707636),
      condsd = c(19.5865700901945, 19.5865700901945),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 17

  dyestuff_ml = list(
    formula = Yield ~ 1 + (1 | Batch), data = "Dyestuff", REML = FALSE,
    crit = 327.327059881135, logLik = -163.663529940568, nobs = 30L,
    theta = 0.752580695252293,
    fixef = c(`(Intercept)` = 1527.5),
    se = c(`(Intercept)` = 17.694553502833),
    sigma = 49.5100999511903,
    ngrps = c(Batch = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("Batch", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(1388.33334255236, 2451.24999717685),
      sdcor = c(37.2603454432773, 49.5100999511903),
      stringsAsFactors = FALSE),
    ranef_nrow = 6L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Batch", "Batch"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("A", "B"),
      condval = c(-16.6282216547161, 0.369516036770673),
      condsd = c(19.0344549078016, 19.0344549078016),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 20

  dyestuff2 = list(
    formula = Yield ~ 1 + (1 | Batch), data = "Dyestuff2", REML = TRUE,
    crit = 161.828277812288, logLik = -80.9141389061442, nobs = 30L,
    theta = 0,
    fixef = c(`(Intercept)` = 5.6656),
    se = c(`(Intercept)` = 0.678388031232524),
    sigma = 3.71568427447573,
    ngrps = c(Batch = 6), singular = TRUE,
    varcorr = data.frame(
      grp = c("Batch", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(0, 13.8063096275862),
      sdcor = c(0, 3.71568427447573),
      stringsAsFactors = FALSE),
    ranef_nrow = 6L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Batch", "Batch"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("A", "B"),
      condval = c(0, 0),
      condsd = c(0, 0),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 10

  penicillin = list(
    formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = "Penicillin", REML = TRUE,
    crit = 330.860588999606, logLik = -165.430294499803, nobs = 144L,
    theta = c(1.53967555415216, 3.51251886000646),
    fixef = c(`(Intercept)` = 22.9722222222137),
    se = c(`(Intercept)` = 0.808595361420651),
    sigma = 0.549922682070483,
    ngrps = c(plate = 24, sample = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("plate", "sample", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(0.716905140876719, 3.73113184267277, 0.302414956255594),
      sdcor = c(0.846702510257716, 1.93161379231791, 0.549922682070483),
      stringsAsFactors = FALSE),
    ranef_nrow = 30L,
    ranef = data.frame(
      row = c(1, 2, 25, 26),
      grpvar = c("plate", "plate", "sample", "sample"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("a", "b", "A", "B"),
      condval = c(0.804546905830452, 0.804546905830452, 2.18705840183886, -1.01047635020445),
      condsd = c(0.271359302588666, 0.271359302588666, 0.202170685095602, 0.202170685095602),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 41

  pastes = list(
    formula = strength ~ 1 + (1 | batch/cask), data = "Pastes", REML = TRUE,
    crit = 246.990745853487, logLik = -123.495372926744, nobs = 60L,
    theta = c(3.52690178773174, 1.56346140209686),
    fixef = c(`(Intercept)` = 60.0533333333354),
    se = c(`(Intercept)` = 0.676870215074031),
    sigma = 0.823407523446778,
    ngrps = c(`cask:batch` = 30, batch = 10), singular = FALSE,
    varcorr = data.frame(
      grp = c("cask:batch", "batch", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(8.43366593129485, 1.65731091183376, 0.677999949668756),
      sdcor = c(2.9040774664762, 1.2873658811052, 0.823407523446778),
      stringsAsFactors = FALSE),
    ranef_nrow = 40L,
    ranef = data.frame(
      row = c(1, 2, 31, 32),
      grpvar = c("cask:batch", "cask:batch", "batch", "batch"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("a:A", "a:B", "A", "B"),
      condval = c(1.77468628537195, 0.883655895342906, 0.800645020017794, -0.272508696573303),
      condsd = c(1.14172104389731, 1.14172104389731, 1.02849399126329, 1.02849399126329),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 36

  cake = list(
    formula = angle ~ recipe * temperature + (1 | recipe:replicate), data = "cake", REML = TRUE,
    crit = 1638.62145988002, logLik = -819.310729940009, nobs = 270L,
    theta = 1.42959163357409,
    fixef = c(`(Intercept)` = 33.1222222222239, recipeB = -1.4777777777794, recipeC = -1.52222222222388, temperature.L = 6.43032991821908, temperature.Q = -0.712845108104241, temperature.C = -2.32551069659978, `temperature^4` = -3.35128499401515, `temperature^5` = -0.151185789203693, `recipeB:temperature.L` = 0.45418687154703, `recipeC:temperature.L` = 0.0876500980178176, `recipeB:temperature.Q` = -0.232765749585061, `recipeC:temperature.Q` = 1.21474625564702, `recipeB:temperature.C` = 2.69321965289974, `recipeC:temperature.C` = 2.63856021344975, `recipeB:temperature^4` = 3.02371578407382, `recipeC:temperature^4` = 3.13710512597658, `recipeB:temperature^5` = -0.663537630393975, `recipeC:temperature^5` = -1.62524723393968),
    se = c(`(Intercept)` = 1.73683339742179, recipeB = 2.4562533462164, recipeC = 2.4562533462164, temperature.L = 1.16821514737053, temperature.Q = 1.16821514737053, temperature.C = 1.16821514737053, `temperature^4` = 1.16821514737053, `temperature^5` = 1.16821514737053, `recipeB:temperature.L` = 1.65210570518109, `recipeC:temperature.L` = 1.65210570518109, `recipeB:temperature.Q` = 1.65210570518109, `recipeC:temperature.Q` = 1.65210570518109, `recipeB:temperature.C` = 1.65210570518109, `recipeC:temperature.C` = 1.65210570518109, `recipeB:temperature^4` = 1.65210570518109, `recipeC:temperature^4` = 1.65210570518109, `recipeB:temperature^5` = 1.65210570518109, `recipeC:temperature^5` = 1.65210570518109),
    sigma = 4.52447781055331,
    ngrps = c(`recipe:replicate` = 45), singular = FALSE,
    varcorr = data.frame(
      grp = c("recipe:replicate", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(41.8370371796284, 20.4708994581893),
      sdcor = c(6.46815562425862, 4.52447781055331),
      stringsAsFactors = FALSE),
    ranef_nrow = 45L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("recipe:replicate", "recipe:replicate"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("A:1", "A:2"),
      condval = c(10.8280796152841, 9.44118137233955),
      condsd = c(1.77610855805787, 1.77610855805787),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 13

  cake_ml = list(
    formula = angle ~ recipe * temperature + (1 | recipe:replicate), data = "cake", REML = FALSE,
    crit = 1679.05186525477, logLik = -839.525932627383, nobs = 270L,
    theta = 1.429591633591,
    fixef = c(`(Intercept)` = 33.1222222222231, recipeB = -1.47777777777876, recipeC = -1.52222222222314, temperature.L = 6.43032991821908, temperature.Q = -0.712845108104241, temperature.C = -2.32551069659978, `temperature^4` = -3.35128499401515, `temperature^5` = -0.151185789203693, `recipeB:temperature.L` = 0.454186871547027, `recipeC:temperature.L` = 0.0876500980178147, `recipeB:temperature.Q` = -0.232765749585061, `recipeC:temperature.Q` = 1.21474625564702, `recipeB:temperature.C` = 2.69321965289974, `recipeC:temperature.C` = 2.63856021344975, `recipeB:temperature^4` = 3.02371578407382, `recipeC:temperature^4` = 3.13710512597658, `recipeB:temperature^5` = -0.663537630393975, `recipeC:temperature^5` = -1.62524723393968),
    se = c(`(Intercept)` = 1.67794047384216, recipeB = 2.37296617496231, recipeC = 2.37296617496231, temperature.L = 1.12860305474138, temperature.Q = 1.12860305474138, temperature.C = 1.12860305474138, `temperature^4` = 1.12860305474138, `temperature^5` = 1.12860305474138, `recipeB:temperature.L` = 1.59608574655097, `recipeC:temperature.L` = 1.59608574655097, `recipeB:temperature.Q` = 1.59608574655097, `recipeC:temperature.Q` = 1.59608574655097, `recipeB:temperature.C` = 1.59608574655097, `recipeC:temperature.C` = 1.59608574655097, `recipeB:temperature^4` = 1.59608574655097, `recipeC:temperature^4` = 1.59608574655097, `recipeB:temperature^5` = 1.59608574655097, `recipeC:temperature^5` = 1.59608574655097),
    sigma = 4.37106083549219,
    ngrps = c(`recipe:replicate` = 45), singular = FALSE,
    varcorr = data.frame(
      grp = c("recipe:replicate", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(39.0479013684349, 19.1061728275737),
      sdcor = c(6.24883200033693, 4.37106083549219),
      stringsAsFactors = FALSE),
    ranef_nrow = 45L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("recipe:replicate", "recipe:replicate"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("A:1", "A:2"),
      condval = c(10.8280796153042, 9.44118137235714),
      condsd = c(1.71588388379492, 1.71588388379492),
      stringsAsFactors = FALSE)
  )  # lme4 feval = 13
)

for (id in names(ref_lme4)) {
  ref <- ref_lme4[[id]]
  test_that(sprintf("lmm() matches lme4 on %s: %s%s", ref$data, deparse1(ref$formula),
                    if (ref$REML) "" else " (ML)"), {
    data <- ref_data(ref$data)
    if (ref$singular) {
      expect_message(fit <- lmm(ref$formula, data, REML = ref$REML), "singular")
    } else {
      fit <- expect_silent(lmm(ref$formula, data, REML = ref$REML))
    }
    expect_matches_reference(fit, ref)
  })
}

test_that("(Days || Subject) and (1 | Subject) + (0 + Days | Subject) give the same fit", {
  sleepstudy <- ref_data("sleepstudy")
  f1 <- lmm(Reaction ~ Days + (Days || Subject), sleepstudy)
  f2 <- lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy)
  expect_close(REMLcrit(f1), REMLcrit(f2), 1e-10)
  expect_close(f1$theta, f2$theta, 1e-6, scale = 1)
})

# lme4's deviance function, lmer(..., devFunOnly = TRUE), evaluated at fixed theta. No
# optimisation is involved, so the values must agree to rounding error (1e-9 relative).
test_that("the exposed objective reproduces lme4's devfun at fixed theta", {
  dyestuff <- ref_data("Dyestuff")
  f <- lmm_objective(lmm_pieces(Yield ~ 1 + (1 | Batch), dyestuff))
  expect_true(is.function(f))
  expect_close(f(1), 319.792389042002, 1e-9)
  expect_close(f(0), 326.023232155879, 1e-9)
  expect_close(f(0.848323783218823), 319.654276842257, 1e-9)   # lme4's optimum
  expect_lt(f(0.848323783218823), f(1))

  f_ml <- lmm_objective(lmm_pieces(Yield ~ 1 + (1 | Batch), dyestuff, REML = FALSE))
  expect_close(f_ml(1), 327.767021624614, 1e-9)
  expect_close(f_ml(0), 332.729885974781, 1e-9)

  f_sleep <- lmm_objective(lmm_pieces(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")))
  expect_close(f_sleep(c(1, 0, 1)), 1773.680330616, 1e-9)
  expect_close(f_sleep(c(0.5, 0.1, 0.2)), 1749.28340404782, 1e-9)
})

test_that("the fitted criterion equals the exposed objective at the fitted theta", {
  pieces <- lmm_pieces(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  expect_close(lmm_objective(pieces)(fit$theta), REMLcrit(fit), 1e-12)
})

# InstEval (73421 rows) is not stored; it needs lme4 installed. lme4 took 41 s here.
ref_insteval <- list(
  insteval = list(
    formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service), data = "InstEval", REML = TRUE,
    crit = 237661.53571979, logLik = -118830.767859895, nobs = 73421L,
    theta = c(0.275903198719979, 0.435414816727175, 0.093175858683732),
    fixef = c(`(Intercept)` = 3.28067253796741, service1 = -0.0534957388326273),
    se = c(`(Intercept)` = 0.0352631010531611, service1 = 0.0445438420968126),
    sigma = 1.17684315179136,
    ngrps = c(s = 2972, d = 1128, `dept:service` = 28), singular = FALSE,
    varcorr = data.frame(
      grp = c("s", "d", "dept:service", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA, NA),
      vcov = c(0.105426706634271, 0.262569076119521, 0.0120238618164525, 1.38495980391821),
      sdcor = c(0.324694789970937, 0.512414945253865, 0.109653371204229, 1.17684315179136),
      stringsAsFactors = FALSE),
    ranef_nrow = 4128L,
    ranef = data.frame(
      row = c(1, 2, 2973, 2974, 4101, 4102),
      grpvar = c("s", "s", "d", "d", "dept:service", "dept:service"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("1", "2", "1", "6", "15:0", "15:1"),
      condval = c(0.147541666330497, -0.0465460615685763, 0.418317991019085, -0.472402953913647, -0.0713377359941764, 0.175987752234765),
      condsd = c(0.284828676787059, 0.30268359398512, 0.295038717934202, 0.200128790543696, 0.0530298349701557, 0.0630947778443622),
      stringsAsFactors = FALSE)
  )  # lme4 feval = 68
)

test_that("lmm() matches lme4 on InstEval: y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", {
  skip_on_cran()
  skip_if_not_installed("lme4")
  ref <- ref_insteval$insteval
  fit <- expect_silent(lmm(ref$formula, lme4::InstEval, REML = ref$REML))
  expect_matches_reference(fit, ref)
})
