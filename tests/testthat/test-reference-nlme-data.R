# lmmc against lme4's numbers on nlme's data sets (always available: nlme is a recommended
# package). The data are passed as nlme stores them (groupedData objects with ordered grouping
# factors), as a user would.
#
# Reference values: lme4 1.1-31 (Matrix 1.5-3, R 4.2.2), lme4::lmer() with default control
# (except where noted), REML, printed with 15 significant digits; fields as described in
# test-reference-lme4.R. The trailing comment of each entry is lme4's number of objective
# evaluations (fit@optinfo$feval).

ref_nlme <- list(
  # Orthodont (age | Subject): the criterion is so flat in theta that lme4's default stopping
  # rule (nloptwrap BOBYQA, xtol_abs = ftol_abs = 1e-8; 88 evaluations) leaves theta[1] 1.6e-4
  # (relative) from the optimum: lme4 default gives REMLcrit 442.636685981506 at theta =
  # (1.77658038004573, -0.105344972275679, 0.137049935652002), VarCorr vcov[1] 5.41660046495848,
  # condval[2] -1.17687656627225. The entry below is lme4 with
  # lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 0, ftol_rel = 0)),
  # whose criterion is 9.7e-8 lower; nlminb on lme4's devfun agrees (theta[1] 1.7763133,
  # criterion 442.636685884184). lmm's criterion must also not exceed crit_default (lme4,
  # default control) by more than 1e-6 relative.
  orthodont = list(
    formula = distance ~ age + (age | Subject), data = "Orthodont", REML = TRUE,
    crit = 442.636685884125, crit_default = 442.636685981506, logLik = -221.318342942062, nobs = 108L,
    theta = c(1.77630918178284, -0.105317422030706, 0.137047675581582),
    fixef = c(`(Intercept)` = 16.7611111111117, age = 0.660185185185118),
    se = c(`(Intercept)` = 0.775246141818922, age = 0.0712532679798037),
    sigma = 1.310039616563,
    ngrps = c(Subject = 27), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Subject", "Subject", "Residual"),
      var1 = c("(Intercept)", "age", "(Intercept)", NA),
      var2 = c(NA, NA, "age", NA),
      vcov = c(5.41509375006132, 0.0512695714924186, -0.321061062826149, 1.71620379696454),
      sdcor = c(2.32703539940013, 0.226427850522895, -0.609333148973911, 1.310039616563),
      stringsAsFactors = FALSE),
    ranef_nrow = 54L,
    ranef = data.frame(
      row = c(1, 2, 28, 29),
      grpvar = c("Subject", "Subject", "Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)", "age", "age"),
      grp = c("M16", "M05", "M16", "M05"),
      condval = c(-0.18775705286821, -1.17666823176069, -0.0688537350825859, 0.0256003749966313),
      condsd = c(1.82825852634442, 1.82825852634442, 0.164368743154358, 0.164368743154358),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 163 (default control: 88)

  orthodont_sex = list(
    formula = distance ~ age * Sex + (1 | Subject), data = "Orthodont", REML = TRUE,
    crit = 433.757249201136, logLik = -216.878624600568, nobs = 108L,
    theta = 1.3100388958353,
    fixef = c(`(Intercept)` = 16.3406250000002, age = 0.784374999999983, SexFemale = 1.03210227272704, `age:SexFemale` = -0.304829545454532),
    se = c(`(Intercept)` = 0.981312236742034, age = 0.0775011046786198, SexFemale = 1.53742080539426, `age:SexFemale` = 0.121420895727881),
    sigma = 1.38638190714176,
    ngrps = c(Subject = 27), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(3.29863410323912, 1.92205479245001),
      sdcor = c(1.81621422283802, 1.38638190714176),
      stringsAsFactors = FALSE),
    ranef_nrow = 27L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("M16", "M05"),
      condval = c(-1.71842601351276, -1.71842601351276),
      condsd = c(0.647624127195769, 0.647624127195769),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 12

  oats = list(
    formula = yield ~ nitro + Variety + (1 | Block/Variety), data = "Oats", REML = TRUE,
    crit = 578.891786957124, logLik = -289.445893478562, nobs = 72L,
    theta = c(0.81119522254155, 1.1381893156166),
    fixef = c(`(Intercept)` = 82.4000000000006, nitro = 73.6666666666668, VarietyMarvellous = 5.29166666666634, VarietyVictory = -6.87500000000031),
    se = c(`(Intercept)` = 8.05857432901392, nitro = 6.78147751767272, VarietyMarvellous = 7.07891808264289, VarietyVictory = 7.07891808264289),
    sigma = 12.8669489142423,
    ngrps = c(`Variety:Block` = 18, Block = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("Variety:Block", "Block", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(108.943650071875, 214.476721480893, 165.558374361722),
      sdcor = c(10.4376074879196, 14.6450237787753, 12.8669489142423),
      stringsAsFactors = FALSE),
    ranef_nrow = 24L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Variety:Block", "Variety:Block", "Block", "Block"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("Golden Rain:VI", "Golden Rain:V", "VI", "V"),
      condval = c(-5.79042805838473, 1.14711539505369, -6.25968728663096, -10.5829245493398),
      condsd = c(7.16425601353853, 7.16425601353853, 6.37341294374909, 6.37341294374909),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 30

  rail = list(
    formula = travel ~ 1 + (1 | Rail), data = "Rail", REML = TRUE,
    crit = 122.177000808598, logLik = -61.0885004042988, nobs = 18L,
    theta = 6.16931776649064,
    fixef = c(`(Intercept)` = 66.4999999999993),
    se = c(`(Intercept)` = 10.1710373683966),
    sigma = 4.0207793512986,
    ngrps = c(Rail = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("Rail", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(615.311118031966, 16.1666665918292),
      sdcor = c(24.8054654871052, 4.0207793512986),
      stringsAsFactors = FALSE),
    ranef_nrow = 6L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Rail", "Rail"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("2", "5"),
      condval = c(-34.5309119381199, -16.3567477601617),
      condsd = c(2.31129893763114, 2.31129893763114),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 18

  ergostool = list(
    formula = effort ~ Type + (1 | Subject), data = "ergoStool", REML = TRUE,
    crit = 121.130788701999, logLik = -60.5653943509996, nobs = 36L,
    theta = 1.21100752550661,
    fixef = c(`(Intercept)` = 8.55555555555556, TypeT2 = 3.88888888888889, TypeT3 = 2.22222222222222, TypeT4 = 0.666666666666667),
    se = c(`(Intercept)` = 0.576012262051233, TypeT2 = 0.518683834950947, TypeT3 = 0.518683834950947, TypeT4 = 0.518683834950947),
    sigma = 1.10029457095698,
    ngrps = c(Subject = 9), singular = FALSE,
    varcorr = data.frame(
      grp = c("Subject", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(1.77546299142301, 1.21064814287739),
      sdcor = c(1.33246500570297, 1.10029457095698),
      stringsAsFactors = FALSE),
    ranef_nrow = 9L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("Subject", "Subject"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("8", "5"),
      condval = c(-1.70871624010463, -1.49512671009155),
      condsd = c(0.508509358663525, 0.508509358663525),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 14

  machines = list(
    formula = score ~ Machine + (1 | Worker/Machine), data = "Machines", REML = TRUE,
    crit = 215.687568008221, logLik = -107.84378400411, nobs = 54L,
    theta = c(3.87856597728851, 4.97209520867096),
    fixef = c(`(Intercept)` = 52.3555555555387, MachineB = 7.96666666667311, MachineC = 13.9166666666745),
    se = c(`(Intercept)` = 2.48583022469381, MachineB = 2.1769754814495, MachineC = 2.1769754814495),
    sigma = 0.96157663605822,
    ngrps = c(`Machine:Worker` = 18, Worker = 6), singular = FALSE,
    varcorr = data.frame(
      grp = c("Machine:Worker", "Worker", "Residual"),
      var1 = c("(Intercept)", "(Intercept)", NA),
      var2 = c(NA, NA, NA),
      vcov = c(13.9094568648266, 22.8584446955162, 0.924629627013042),
      sdcor = c(3.72953842517095, 4.78105058491502, 0.96157663605822),
      stringsAsFactors = FALSE),
    ranef_nrow = 24L,
    ranef = data.frame(
      row = c(1, 2, 19, 20),
      grpvar = c("Machine:Worker", "Machine:Worker", "Worker", "Worker"),
      term = c("(Intercept)", "(Intercept)", "(Intercept)", "(Intercept)"),
      grp = c("A:6", "A:2", "6", "2"),
      condval = c(1.91627370601071, 1.55256494564645, -7.51429062337116, -1.37585602962352),
      condsd = c(2.01458730657383, 2.01458730657383, 1.98125644295612, 1.98125644295612),
      stringsAsFactors = FALSE)
  ), # lme4 feval = 40

  mathach = list(
    formula = MathAch ~ SES + (1 | School), data = "MathAchieve", REML = TRUE,
    crit = 46645.1693125518, logLik = -23322.5846562759, nobs = 7185L,
    theta = 0.358817345078951,
    fixef = c(`(Intercept)` = 12.6574802570807, SES = 2.39019579323258),
    se = c(`(Intercept)` = 0.187985150525451, SES = 0.105719082177819),
    sigma = 6.08558941537472,
    ngrps = c(School = 160), singular = FALSE,
    varcorr = data.frame(
      grp = c("School", "Residual"),
      var1 = c("(Intercept)", NA),
      var2 = c(NA, NA),
      vcov = c(4.76817463097125, 37.0343985325209),
      sdcor = c(2.18361503726533, 6.08558941537472),
      stringsAsFactors = FALSE),
    ranef_nrow = 160L,
    ranef = data.frame(
      row = c(1, 2),
      grpvar = c("School", "School"),
      term = c("(Intercept)", "(Intercept)"),
      grp = c("8367", "8854"),
      condval = c(-5.25205259900013, -5.31811306657643),
      condsd = c(1.30437776847487, 0.965030965605579),
      stringsAsFactors = FALSE)
  )  # lme4 feval = 20
)

for (id in names(ref_nlme)) {
  ref <- ref_nlme[[id]]
  test_that(sprintf("lmm() matches lme4 on nlme's %s: %s", ref$data, deparse1(ref$formula)), {
    fit <- expect_silent(lmm(ref$formula, ref_data(ref$data), REML = ref$REML))
    expect_matches_reference(fit, ref)
  })
}

test_that("a groupedData object and the plain data frame give the same fit", {
  oats <- ref_data("Oats")
  f1 <- lmm(yield ~ nitro + Variety + (1 | Block/Variety), oats)
  f2 <- lmm(yield ~ nitro + Variety + (1 | Block/Variety), as.data.frame(oats))
  expect_identical(REMLcrit(f1), REMLcrit(f2))
  expect_identical(fixef(f1), fixef(f2))
})

test_that("MathAchieve's REML log-likelihood is lme4's -23322.58", {
  fit <- lmm(MathAch ~ SES + (1 | School), ref_data("MathAchieve"))
  expect_equal(round(as.numeric(logLik(fit)), 2), -23322.58)
})
