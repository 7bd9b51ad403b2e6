# print() and summary() laid out as lme4 1.1-31's print.merMod / print.summary.merMod.

test_that("print of a REML fit", {
  out <- capture.output(print(methods_fit("ss")))
  expect_identical(out[1:4], c("Linear mixed model fit by REML ['lmm']",
                               "Formula: Reaction ~ Days + (Days | Subject)",
                               "   Data: sleepstudy",
                               "REML criterion at convergence: 1743.628"))
  expect_identical(out[5:6], c("Random effects:", " Groups   Name        Std.Dev. Corr"))
  expect_match(out[7], "^ Subject  \\(Intercept\\) 24\\.74[01] +$")
  expect_match(out[8], "^          Days         5\\.922   0\\.07$")
  expect_identical(out[9], " Residual             25.592       ")
  expect_identical(out[10], "Number of obs: 180, groups:  Subject, 18")
  expect_identical(out[11:13], c("Fixed Effects:", "(Intercept)         Days  ",
                                 "     251.41        10.47  "))
  expect_length(out, 13L)
  capture.output(expect_invisible(print(methods_fit("ss"))))
})

test_that("print of an ML fit shows the AIC table", {
  out <- capture.output(print(methods_fit("ssML")))
  expect_identical(out[1], "Linear mixed model fit by maximum likelihood  ['lmm']")
  expect_identical(out[4], "      AIC       BIC    logLik  deviance  df.resid ")
  expect_identical(out[5], "1763.9393 1783.0971 -875.9697 1751.9393       174 ")
})

test_that("print: several grouping factors, singular note", {
  out <- capture.output(print(methods_fit("pas")))
  expect_true("Number of obs: 60, groups:  cask:batch, 30; batch, 10" %in% out)
  expect_true(" Groups     Name        Std.Dev." %in% out)
  out <- capture.output(print(methods_fit("pen")))
  expect_true("Number of obs: 144, groups:  plate, 24; sample, 6" %in% out)
  sing <- capture.output(print(methods_fit("sing")))
  expect_identical(tail(sing, 1), "boundary (singular) fit: see help('isSingular')")
  expect_false(any(grepl("boundary", out)))
})

test_that("summary of a REML fit", {
  s <- summary(methods_fit("ss"), ddf = "none")
  expect_s3_class(s, "summary.lmm")
  cf <- coef(s)
  expect_identical(dimnames(cf), list(c("(Intercept)", "Days"),
                                      c("Estimate", "Std. Error", "t value")))
  expect_equal(unname(cf[, 2]), c(6.824597, 1.545790), tolerance = 1e-5)
  expect_equal(unname(cf[, 3]), c(36.83809, 6.771481), tolerance = 1e-5)
  out <- capture.output(print(s))
  expect_identical(out[1:6], c("Linear mixed model fit by REML ['lmm']",
                               "Formula: Reaction ~ Days + (Days | Subject)",
                               "   Data: sleepstudy", "",
                               "REML criterion at convergence: 1743.6", ""))
  expect_identical(out[7:9], c("Scaled residuals: ", "    Min      1Q  Median      3Q     Max ",
                               "-3.9536 -0.4634  0.0231  0.4634  5.1793 "))
  expect_identical(out[11:12], c("Random effects:",
                                 " Groups   Name        Variance Std.Dev. Corr"))
  expect_match(out[13], "^ Subject  \\(Intercept\\) 612\\.[01][0-9] +24\\.74[01] +$")
  expect_identical(out[14], "          Days         35.07    5.922   0.07")
  expect_identical(out[15], " Residual             654.94   25.592       ")
  expect_identical(out[16], "Number of obs: 180, groups:  Subject, 18")
  expect_identical(out[18:21], c("Fixed effects:", "            Estimate Std. Error t value",
                                 "(Intercept)  251.405      6.825  36.838",
                                 "Days          10.467      1.546   6.771"))
  expect_identical(out[23:25], c("Correlation of Fixed Effects:", "     (Intr)", "Days -0.138"))
  expect_match(out[26], paste0("^optimizer \\(.+\\) convergence code: 0 \\(OK\\); ",
                               methods_fit("ss")$optinfo$feval, " evaluations \\(",
                               methods_fit("ss")$optinfo$geval, " with gradient\\); ",
                               "max \\|projected gradient\\| [0-9.e+-]+; on bound: none; ",
                               "min Hessian eigenvalue [0-9.]+ \\(BFGS\\)$"))
})

test_that("summary of an ML fit and options", {
  out <- capture.output(print(summary(methods_fit("ssML"), ddf = "none")))
  expect_identical(out[5:6], c("     AIC      BIC   logLik deviance df.resid ",
                               "  1763.9   1783.1   -876.0   1751.9      174 "))
  expect_true(any(grepl("^\\(Intercept\\)  251\\.405      6\\.632  37\\.90[67]$", out)))
  s <- summary(methods_fit("ss"), ddf = "none")
  short <- capture.output(print(s, correlation = FALSE, show.resids = FALSE))
  expect_false(any(grepl("Correlation|Scaled residuals", short)))
  expect_true(" Groups   Name        Std.Dev. Corr" %in%
                capture.output(print(s, ranef.comp = "Std.Dev.")))
  sing <- capture.output(print(summary(methods_fit("sing"))))
  expect_identical(tail(sing, 1), "boundary (singular) fit: see help('isSingular')")
})

test_that("print and summary equal lme4's on identical parameters (live)", {
  skip_if_not_installed("lme4")
  fits <- list(
    lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
    lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
    lme4::lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
    lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes),
    lme4::lmer(angle ~ recipe * temperature + (1 | recipe:replicate), cake, REML = FALSE))
  for (fm in fits) {
    m <- lmm_from_lme4(fm)
    p1 <- capture.output(print(m))
    p2 <- capture.output(print(fm))
    expect_identical(p1[-1], p2[-1])
    s1 <- suppressMessages(capture.output(print(summary(m, ddf = "none"))))
    s2 <- suppressMessages(capture.output(print(summary(fm))))
    expect_identical(head(s1[-1], -1), s2[-1])     # lmmc adds the optimizer line
  }
})

test_that("summary's default fixed-effects table has Satterthwaite df and p-values (lmerTest)", {
  s <- summary(methods_fit("ss"))
  expect_identical(colnames(coef(s)), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  # lmerTest 3.1-3: df 17.000 for both, Pr 3.26e-06 for Days
  expect_equal(unname(coef(s)[, "df"]), c(17, 17), tolerance = 1e-3)
  expect_equal(unname(coef(s)["Days", "Pr(>|t|)"]), 3.26e-06, tolerance = 1e-2)
  out <- capture.output(print(s, signif.stars = TRUE))
  expect_identical(out[1], "Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmm']")
  i <- which(out == "Fixed effects:")
  expect_identical(out[i + 1:3], c("            Estimate Std. Error      df t value Pr(>|t|)    ",
                                   "(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***",
                                   "Days          10.467      1.546  17.000   6.771 3.26e-06 ***"))
})

test_that("print(fit) says when the optimiser stopped at maxeval, and only then", {
  d <- ref_data("sleepstudy")
  early <- suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), d,
                                control = lmm_control(maxeval = 5)))
  out <- capture.output(print(early))
  expect_identical(out[length(out)], paste("optimizer (quasi-newton-lmmc) convergence code: 1",
                                           "(maximum number of evaluations reached)"))
  expect_false(any(grepl("convergence code", capture.output(print(methods_fit("ss"))))))
})
