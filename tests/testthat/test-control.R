# lmm_control() (R/control.R): lme4's check.nlev.gtreq.5 and options(lmm.control) as the default
# control, as lme4's lmerControl() and options(lmerControl).

sleep <- ref_data("sleepstudy")
three <- droplevels(sleep[sleep$Subject %in% c("308", "309", "310"), ])
msg5 <- "grouping factors with < 5 sampled levels may give unreliable estimates"   # lme4's text

test_that("check.nlev.gtreq.5 is off by default and warns, messages or stops when asked", {
  expect_identical(lmm_control()$check.nlev.gtreq.5, "ignore")
  expect_silent(lmm(Reaction ~ Days + (1 | Subject), three))
  expect_warning(lmm(Reaction ~ Days + (1 | Subject), three,
                     control = lmm_control(check.nlev.gtreq.5 = "warning")), msg5, fixed = TRUE)
  expect_message(lmm(Reaction ~ Days + (1 | Subject), three,
                     control = lmm_control(check.nlev.gtreq.5 = "message")), msg5, fixed = TRUE)
  expect_error(lmm(Reaction ~ Days + (1 | Subject), three,
                   control = lmm_control(check.nlev.gtreq.5 = "stop")), msg5, fixed = TRUE)
  # 18 subjects: no complaint
  expect_silent(lmm(Reaction ~ Days + (1 | Subject), sleep,
                    control = lmm_control(check.nlev.gtreq.5 = "stop")))
  expect_error(lmm_control(check.nlev.gtreq.5 = "loud"), "check.nlev.gtreq.5")
})

test_that("live: lme4 gives the same check.nlev.gtreq.5 warning", {
  skip_if_not_installed("lme4")
  expect_warning(lme4::lmer(Reaction ~ Days + (1 | Subject), three,
                            control = lme4::lmerControl(check.nlev.gtreq.5 = "warning")),
                 msg5, fixed = TRUE)
})

test_that("options(lmm.control) supplies the defaults of lmm_control()", {
  old <- options(lmm.control = lmm_control(check.nlev.gtreq.5 = "stop", maxeval = 500L))
  on.exit(options(old))
  expect_identical(lmm_control()$check.nlev.gtreq.5, "stop")
  expect_identical(lmm_control()$maxeval, 500L)
  expect_error(lmm(Reaction ~ Days + (1 | Subject), three), msg5, fixed = TRUE)
  # an argument given in the call wins over the option
  expect_identical(lmm_control(check.nlev.gtreq.5 = "ignore")$check.nlev.gtreq.5, "ignore")
  expect_identical(lmm_control(check.nlev.gtreq.5 = "ignore")$maxeval, 500L)
  # a plain named list of settings works too; unknown names are ignored with a warning
  options(lmm.control = list(check.nlev.gtreq.5 = "warning"))
  expect_identical(lmm_control()$check.nlev.gtreq.5, "warning")
  expect_identical(lmm_control()$check.nobs.vs.nlev, "stop")
  expect_warning(lmm(Reaction ~ Days + (1 | Subject), three), msg5, fixed = TRUE)
  options(lmm.control = list(check.nlev.gtreq.5 = "warning", foo = 1))
  expect_warning(ctrl <- lmm_control(), "ignored: foo")
  expect_identical(ctrl$check.nlev.gtreq.5, "warning")
  options(lmm.control = "stop")
  expect_error(lmm_control(), "lmm.control")
  options(lmm.control = NULL)
  expect_identical(lmm_control(), lmmc:::default_control)
})

test_that("counts beyond .Machine$integer.max are refused (they go to C as int)", {
  expect_error(lmm_control(maxeval = 3e9), "'maxeval' must be at most 2147483647", fixed = TRUE)
  expect_identical(lmm_control(maxeval = .Machine$integer.max)$maxeval, .Machine$integer.max)
  expect_error(lmm_control(maxeval = 0), "single positive whole number", fixed = TRUE)
  expect_error(lmm_control(maxeval = NA), "single positive whole number", fixed = TRUE)
})
