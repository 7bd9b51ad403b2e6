# VarCorr(), its print and as.data.frame methods. Reference numbers from lme4 1.1-31.

test_that("VarCorr builds sigma^2 T T' from theta (hand-made object)", {
  g <- factor(rep(c("a", "b"), each = 2))
  obj <- structure(list(
    theta = c(2, 1, 3), sigma = 0.5,
    reterms = list(list(group = g, name = "g", cnms = c("(Intercept)", "x")))),
    class = "lmm")
  vc <- VarCorr(obj)
  T_g <- matrix(c(2, 1, 0, 3), 2)
  Sigma <- 0.25 * T_g %*% t(T_g)
  expect_equal(unclass(vc$g)[1:2, 1:2], Sigma, ignore_attr = TRUE)
  expect_equal(attr(vc$g, "stddev"), c(`(Intercept)` = 1, x = sqrt(2.5)))
  expect_equal(attr(vc$g, "correlation")[2, 1], 0.5 / sqrt(2.5))
  expect_equal(dimnames(vc$g), list(c("(Intercept)", "x"), c("(Intercept)", "x")))
  expect_identical(attr(vc, "sc"), 0.5)
  expect_true(attr(vc, "useSc"))
  expect_s3_class(vc, "VarCorr.lmm")
  # sigma = 1 gives the relative covariance T T'
  expect_equal(unclass(VarCorr(obj, sigma = 1)$g)[2, 2], 10, ignore_attr = TRUE)
})

test_that("VarCorr of sleepstudy (Days | Subject) matches lme4", {
  vc <- VarCorr(methods_fit("ss"))
  expect_named(vc, "Subject")
  d <- as.data.frame(vc)
  expect_named(d, c("grp", "var1", "var2", "vcov", "sdcor"))
  expect_identical(d$grp, c("Subject", "Subject", "Subject", "Residual"))
  expect_identical(d$var1, c("(Intercept)", "Days", "(Intercept)", NA))
  expect_identical(d$var2, c(NA, NA, "Days", NA))
  expect_equal(d$vcov, c(612.100158, 35.07171445, 9.604408951, 654.9400083), tolerance = 1e-4)
  expect_equal(d$sdcor, c(24.74065799, 5.922137659, 0.06555123824, 25.59179572), tolerance = 1e-3)
  lt <- as.data.frame(vc, order = "lower.tri")
  expect_identical(lt$var1, c("(Intercept)", "(Intercept)", "Days", NA))
  expect_identical(lt$var2, c(NA, "Days", NA, NA))
})

test_that("terms sharing a factor get lme4's unique names; nested names kept", {
  vc2 <- VarCorr(methods_fit("ss2"))
  expect_named(vc2, c("Subject", "Subject.1"))
  d2 <- as.data.frame(vc2)
  expect_identical(d2$grp, c("Subject", "Subject.1", "Residual"))
  expect_equal(d2$vcov, c(627.5690508, 35.85837964, 653.5835007), tolerance = 1e-4)
  vcp <- VarCorr(methods_fit("pas"))
  expect_named(vcp, c("cask:batch", "batch"))
  expect_equal(as.data.frame(vcp)$vcov, c(8.433665931, 1.657310912, 0.6779999497), tolerance = 1e-4)
})

test_that("print.VarCorr.lmm is laid out as lme4's", {
  vc <- VarCorr(methods_fit("ss"))
  out <- capture.output(print(vc, digits = 3))
  expect_identical(out[1], " Groups   Name        Std.Dev. Corr")
  expect_identical(out[2], " Subject  (Intercept) 24.74        ")
  expect_identical(out[3], "          Days         5.92    0.07")
  expect_identical(out[4], " Residual             25.59        ")
  out2 <- capture.output(print(vc, comp = c("Variance", "Std.Dev."), digits = 3))
  expect_identical(out2[1], " Groups   Name        Variance Std.Dev. Corr")
  expect_match(out2[2], "^ Subject  \\(Intercept\\) 612\\.1 +24\\.74 *$")
  expect_error(print(vc, comp = "SD"), "illegal 'comp'")
  out3 <- capture.output(print(VarCorr(methods_fit("ss2")), digits = 3))
  expect_identical(out3, c(" Groups    Name        Std.Dev.",
                           " Subject   (Intercept) 25.05   ",
                           " Subject.1 Days         5.99   ",
                           " Residual              25.57   "))
})

test_that("VarCorr methods equal lme4's on identical parameters (live)", {
  skip_if_not_installed("lme4")
  fits <- list(
    lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
    lme4::lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
    lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes))
  for (fm in fits) {
    m <- lmm_from_lme4(fm)
    v1 <- VarCorr(m)
    v2 <- lme4::VarCorr(fm)
    expect_equal(unclass(v1)[seq_along(v1)], unclass(v2)[seq_along(v2)], tolerance = 1e-10)
    expect_equal(as.data.frame(v1), as.data.frame(v2), tolerance = 1e-10)
    expect_equal(as.data.frame(v1, order = "lower.tri"), as.data.frame(v2, order = "lower.tri"),
                 tolerance = 1e-10)
    for (comp in list("Std.Dev.", "Variance", c("Variance", "Std.Dev.")))
      expect_identical(capture.output(print(v1, comp = comp)), capture.output(print(v2, comp = comp)))
  }
})
