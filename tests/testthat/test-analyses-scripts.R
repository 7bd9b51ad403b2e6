# The worked analyses in inst/analyses/*.R: each is sourced (printing captured, plots to a null
# device) and its key numbers are checked. Reference numbers from lme4 1.1-31 / lmerTest 3.1 on the
# same data (same generators and seeds), REML, recorded below.

run_analysis <- function(name) {
  file <- system.file("analyses", name, package = "lmmc")
  if (!nzchar(file)) file <- testthat::test_path("..", "..", "inst", "analyses", name)
  env <- new.env(parent = globalenv())
  had_seed <- exists(".Random.seed", envir = globalenv(), inherits = FALSE)
  if (had_seed) seed <- get(".Random.seed", envir = globalenv())
  grDevices::pdf(NULL)
  on.exit({
    grDevices::dev.off()
    if (had_seed) assign(".Random.seed", seed, envir = globalenv())
  })
  out <- utils::capture.output(suppressMessages(source(file, local = env)))
  list(analysis = env$analysis, output = out)
}

test_that("analyses: every script is installed and runs with lmmc alone", {
  scripts <- c("crossed-teachers-students.R", "nested-districts-schools.R",
               "high-school-and-beyond.R", "repeated-measures-singular.R",
               "growth-random-slopes.R")
  dir <- system.file("analyses", package = "lmmc")
  if (!nzchar(dir)) dir <- testthat::test_path("..", "..", "inst", "analyses")
  expect_setequal(list.files(dir, pattern = "[.]R$"), scripts)
})

test_that("analysis: crossed teachers x students", {
  r <- run_analysis("crossed-teachers-students.R")
  a <- r$analysis
  # lme4: student, teacher, residual variances; REML criterion
  lme4_vcov <- c(6.96518868606178, 1.88855720504748, 4.06970810638546)
  expect_close(REMLcrit(a$fit), 4772.07308284242, 1e-8)
  expect_close(a$varcorr$vcov, lme4_vcov, 1e-4)
  expect_close(a$icc$adjusted, lme4_vcov[1:2] / sum(lme4_vcov), 1e-4)
  expect_close(a$implied, c(lme4_vcov[1], lme4_vcov[2], sum(lme4_vcov[1:2])) / sum(lme4_vcov), 1e-4)
  # the simulated truth (50% and 18%) lies inside the profile intervals
  expect_true(all(a$icc$adjusted_lower < c(0.5, 0.18) & c(0.5, 0.18) < a$icc$adjusted_upper))
  expect_gt(a$sigma2_no_teacher - sigma(a$fit)^2, 1.5)
  expect_true(any(grepl("^Conclusion", r$output)))
})

test_that("analysis: nested districts / schools with reused labels", {
  a <- run_analysis("nested-districts-schools.R")$analysis
  lme4_vcov <- c(9.47485799903133, 14.7312339973992, 36.585157556032)  # school:district, district, resid
  expect_close(REMLcrit(a$fit), 6311.15754704224, 1e-8)
  expect_close(REMLcrit(a$fit_wrong), 6408.98148779836, 1e-8)
  expect_close(REMLcrit(a$fit_uid), REMLcrit(a$fit), 1e-9)
  expect_equal(ngrps(a$fit), c(`school:district` = 72, district = 12))
  expect_close(a$varcorr$vcov, lme4_vcov, 1e-4)
  expect_close(a$implied, c(sum(lme4_vcov[1:2]), lme4_vcov[2]) / sum(lme4_vcov), 1e-4)
  expect_equal(a$pve$group, c("school:district", "district", "Residual"))
  expect_gt(a$pve$pve[3], 0.1)                        # ses is a pupil-level variable
})

test_that("analysis: High School and Beyond -- ICC, pseudo-R2, Satterthwaite p-values", {
  a <- run_analysis("high-school-and-beyond.R")$analysis
  expect_close(as.numeric(logLik(a$m1)), -23322.58, 1e-6)
  expect_close(a$icc0$adjusted, 8.61402483714869 / (8.61402483714869 + 39.1483218909986), 1e-5)
  expect_close(c(a$icc0$adjusted_lower, a$icc0$adjusted_upper),
               c(0.147177512431, 0.221027479529), 1e-5)
  # Raudenbush & Bryk pseudo-R2 from lme4's variance components
  expect_close(a$pve1$pve, c((8.61402483714869 - 4.76817462534614) / 8.61402483714869,
                             (39.1483218909986 - 37.0343985333516) / 39.1483218909986), 1e-4)
  expect_close(a$pve_sector$pve[1], (4.76817462534614 - 3.68503968496656) / 4.76817462534614, 1e-4)
  # lmerTest: estimates, SEs, Satterthwaite df and p-values
  expect_close(a$coef_m2["SectorCatholic", c("Estimate", "Std. Error")],
               c(2.100836542, 0.3411242781), 1e-4)
  expect_close(a$coef_m3[, "Estimate"],
               c(11.797994046, 2.951174376, 2.138170449, -1.312849220), 1e-4)
  expect_true("Pr(>|t|)" %in% colnames(a$coef_m3))
  expect_close(a$coef_m3[, "df"], c(155.1103218, 6843.1069201, 148.0143356, 6719.6982862), 1e-3)
  expect_close(a$p_sector, 6.638230829e-09, 1e-2)
  expect_close(a$p_interaction, 6.259083822e-10, 1e-2)
  expect_close(a$slopes, c(public = 2.951174376, catholic = 2.951174376 - 1.312849220), 1e-4)
  # r2 of m3 from lme4's components: var_fixed 5.44739591215035, school 3.69426036130047,
  # residual 36.8401909614033
  tot <- 5.44739591215035 + 3.69426036130047 + 36.8401909614033
  expect_close(a$r2["m3", ], c(5.44739591215035, 5.44739591215035 + 3.69426036130047) / tot, 1e-4)
})

test_that("analysis: repeated-measures table with a singular fit", {
  a <- run_analysis("repeated-measures-singular.R")$analysis
  expect_true(isSingular(a$fit))
  expect_close(REMLcrit(a$fit), -0.872617621149732, 1e-6)
  expect_equal(round(a$varcorr$vcov[1:3], 6), c(0, 0, 0))
  expect_close(sigma(a$fit), 0.21428563492062, 1e-5)
  expect_close(fixef(a$fit), 0.53125, 1e-8)
  expect_close(sigma(a$ols), sigma(a$fit), 1e-5)          # the singular fit is the lm
  expect_lt(a$moment_estimate, 0)
  expect_close(a$F, 0.038782 / 0.052163, 1e-4)
  # lme4: dependent_var ~ Condition_1 + Condition_2 + (1|participant_ID): REML 3.65751513693507,
  # residual variance 0.0506365384615384, participant 0 (singular)
  expect_close(REMLcrit(a$fit_fixed), 3.65751513693507, 1e-6)
  expect_close(sigma(a$fit_fixed)^2, 0.0506365384615384, 1e-5)
  expect_close(a$coef_fixed[, "Estimate"], c(0.50875, 0.08, -0.035), 1e-5)
  expect_equal(a$icc$adjusted_lower, 0)
  expect_gt(a$icc$adjusted_upper, 0.3)
})

test_that("analysis: growth model with random slopes, shrinkage and within-subject slopes", {
  a <- run_analysis("growth-random-slopes.R")$analysis
  # lme4: distance ~ age + (age | Subject)
  expect_close(REMLcrit(a$fit), 442.636685977271, 1e-8)
  expect_close(fixef(a$fit), c(16.7611111111109, 0.660185185185196), 1e-5)
  # lme4: distance ~ age_c + (age_c | Subject) -- same criterion, centred variances
  expect_close(REMLcrit(a$fit_c), 442.63668588473, 1e-8)
  expect_close(as.data.frame(VarCorr(a$fit_c))$vcov,
               c(4.5553734387983225, 0.0512691049971113, 0.2429007082733561, 1.7162037420915963),
               1e-4)
  # sd of lmList slopes and of coef(lme4 fit) slopes
  expect_close(a$spread[c("sd_ols", "sd_mixed")], c(0.370242855541835, 0.155731146043829), 1e-4)
  expect_close(a$slope_compare_A, rep(0.660185185185196, 4), 1e-5)
  # Part B: lme4 random-intercept slope 0.986214578485749; Mundlak within slope 0.582221692506715
  expect_close(a$slope_compare_B[c("mixed", "mixed_mundlak")],
               c(0.986214578485749, 0.582221692506715), 1e-4)
  expect_close(a$slope_compare_B["within"], 0.582221692506715, 1e-8)   # lm, exact
  expect_true(a$slope_compare_B["within"] < a$slope_compare_B["mixed"] &&
              a$slope_compare_B["mixed"] < a$slope_compare_B["pooled_ols"])
  expect_equal(dim(a$shrink$ols), c(27L, 2L))
})
