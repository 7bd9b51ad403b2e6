# logLik, deviance, REMLcrit, AIC/BIC, sigma, nobs, ngrps, vcov, df.residual, isSingular, fitted,
# residuals, weights, model.matrix, model.frame, formula, terms, update.
# Reference numbers from lme4 1.1-31.

test_that("REML fit: logLik, REMLcrit, deviance(REML = FALSE), AIC, BIC as lme4", {
  fit <- methods_fit("ss")
  ll <- logLik(fit)
  expect_s3_class(ll, "logLik")
  expect_equal(attr(ll, "df"), 6L)
  expect_identical(attr(ll, "nobs"), 180L)
  expect_identical(attr(ll, "nall"), 180L)
  expect_equal(c(ll), -fit$crit / 2)
  ref <- c(logLik = -871.814136, logLikML = -875.9929332, AIC = 1755.628272, BIC = 1774.786013,
           devML = 1751.985866, REMLcrit = 1743.628272)
  got <- c(ll, logLik(fit, REML = FALSE), AIC(fit), BIC(fit), deviance(fit, REML = FALSE),
           REMLcrit(fit))
  expect_equal(got, unname(ref), tolerance = 1e-7)
  expect_warning(d <- deviance(fit), "deprecated for REML fits")
  expect_equal(d, REMLcrit(fit))
  expect_equal(AIC(fit), -2 * c(ll) + 2 * 6)
  expect_equal(BIC(fit), -2 * c(ll) + log(180) * 6)
})

test_that("ML fit: logLik, deviance, REMLcrit at the ML estimates, df.residual", {
  fit <- methods_fit("ssML")
  ref <- c(-875.9696722, 1763.939344, 1783.097086, 1751.939344, 1743.673791, 174)
  got <- c(logLik(fit), AIC(fit), BIC(fit), deviance(fit), REMLcrit(fit), df.residual(fit))
  expect_equal(got, ref, tolerance = 1e-7)
  expect_silent(deviance(fit))
  expect_equal(deviance(fit), fit$crit)
  expect_equal(c(logLik(fit, REML = TRUE)), -REMLcrit(fit) / 2)
})

test_that("sigma, nobs, ngrps, vcov, df.residual", {
  fit <- methods_fit("ss")
  expect_equal(sigma(fit), 25.59179572, tolerance = 1e-5)
  expect_equal(sigma(methods_fit("ssML")), 25.59190704, tolerance = 1e-5)
  expect_identical(nobs(fit), 180L)
  expect_identical(ngrps(fit), c(Subject = 18))
  expect_identical(ngrps(methods_fit("ss2")), c(Subject = 18))
  expect_identical(ngrps(methods_fit("pen")), c(plate = 24, sample = 6))
  expect_identical(ngrps(methods_fit("pas")), c(`cask:batch` = 30, batch = 10))
  V <- vcov(fit)
  expect_identical(dimnames(V), list(c("(Intercept)", "Days"), c("(Intercept)", "Days")))
  expect_equal(V, matrix(c(46.57512005, -1.451088417, -1.451088417, 2.389465623), 2,
                         dimnames = dimnames(V)), tolerance = 1e-4)
  expect_equal(df.residual(fit), 174)
})

test_that("isSingular: a theta on its lower bound 0", {
  expect_false(isSingular(methods_fit("ss")))
  expect_true(isSingular(methods_fit("sing")))
  obj <- structure(list(theta = c(1e-5, 0.3, 2), lower = c(0, -Inf, 0)), class = "lmm")
  expect_true(isSingular(obj))
  expect_false(isSingular(obj, tol = 1e-6))
  obj$theta <- c(1, -1e-8, 2)                       # off-diagonal near 0 is not singular
  expect_false(isSingular(obj))
})

test_that("fitted and residuals of every type, named by the frame's rows", {
  fit <- methods_fit("ss")
  f <- fitted(fit)
  expect_identical(names(f), as.character(1:180))
  expect_equal(unname(f[1:4]), c(253.6636558, 273.3299175, 292.9961792, 312.662441), tolerance = 1e-6)
  r <- residuals(fit)
  expect_equal(unname(r[1:4]), c(-4.103655798, -14.62521752, -42.19557925, 8.777359026),
               tolerance = 1e-4)
  expect_equal(unname(residuals(fit, scaled = TRUE)[1:4]),
               c(-0.1603504437, -0.5714807074, -1.648793219, 0.3429755036), tolerance = 1e-4)
  expect_equal(r + f, setNames(sleepstudy$Reaction, 1:180))
  expect_identical(residuals(fit, "working"), r)
  expect_identical(residuals(fit, "pearson"), r)   # unit weights
  expect_error(residuals(fit, "partial"))
})

test_that("weights: pearson residuals are sqrt(w) (y - mu); working weights refused", {
  w <- rep(c(0.5, 2), 90)
  ss <- sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, weights = w)
  expect_identical(weights(fit), w)
  expect_equal(residuals(fit, "pearson"), sqrt(w) * residuals(fit))
  expect_equal(residuals(fit, "deviance", scaled = TRUE), sqrt(w) * residuals(fit) / sigma(fit))
  expect_error(weights(fit, "working"), "only available for GLMMs")
})

test_that("na.exclude pads fitted and residuals as lme4", {
  ss <- sleepstudy
  ss$Reaction[c(3, 10)] <- NA
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, na.action = na.exclude)
  expect_length(fitted(fit), 180L)
  expect_true(all(is.na(residuals(fit)[c(3, 10)])))
  expect_identical(names(residuals(fit))[1:4], c("1", "2", "3", "4"))
  expect_identical(nobs(fit), 178L)
})

test_that("model.matrix fixed and random (dense Z)", {
  fit <- methods_fit("ss")
  X <- model.matrix(fit)                    # fit$X without row names; lme4's carry the frame's
  expect_identical(unname(X), unname(fit$X))
  expect_identical(rownames(X), as.character(1:180))
  Z <- model.matrix(fit, type = "random")
  expect_identical(dim(Z), c(180L, 36L))
  expect_identical(colnames(Z)[1:4], c("308", "308", "309", "309"))
  expect_equal(unname(Z[1:3, 1:2]), cbind(1, c(0, 1, 2)))
  # Z b reproduces fitted - X beta
  expect_equal(unname(drop(Z %*% fit$b)), unname(fitted(fit) - drop(fit$X %*% fit$beta)))
  Zp <- model.matrix(methods_fit("pas"), "random")
  expect_identical(dim(Zp), c(60L, 40L))
  expect_identical(rowSums(Zp), setNames(rep(2, 60), 1:60))
})

test_that("model.frame, formula, terms, update", {
  fit <- methods_fit("ss")
  expect_identical(model.frame(fit), fit$frame)
  expect_named(model.frame(fit, fixed.only = TRUE), c("Reaction", "Days"))
  expect_equal(formula(fit), Reaction ~ Days + (Days | Subject), ignore_attr = TRUE)
  expect_equal(formula(fit, fixed.only = TRUE), Reaction ~ Days, ignore_attr = TRUE)
  expect_equal(formula(fit, random.only = TRUE), Reaction ~ (Days | Subject), ignore_attr = TRUE)
  expect_identical(attr(terms(fit), "term.labels"), "Days")
  fit2 <- update(fit, REML = FALSE)
  expect_false(fit2$REML)
  expect_equal(c(logLik(fit2)), -875.9696722, tolerance = 1e-7)
})

test_that("accessors equal lme4's on identical parameters (live)", {
  skip_if_not_installed("lme4")
  ss <- sleepstudy
  ss$w <- rep(c(0.5, 2), 90)
  fits <- list(
    lme4::lmer(Reaction ~ Days + (Days | Subject), ss),
    lme4::lmer(Reaction ~ Days + (Days | Subject), ss, REML = FALSE),
    lme4::lmer(Reaction ~ Days + (Days | Subject), ss, weights = w),
    lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes))
  for (fm in fits) {
    m <- lmm_from_lme4(fm)
    expect_equal(logLik(m), logLik(fm), tolerance = 1e-10)
    for (R in c(TRUE, FALSE)) expect_equal(logLik(m, REML = R), logLik(fm, REML = R),
                                           tolerance = 1e-10)
    expect_equal(deviance(m, REML = FALSE), deviance(fm, REML = FALSE), tolerance = 1e-10)
    expect_equal(REMLcrit(m), lme4::REMLcrit(fm), tolerance = 1e-10)
    expect_equal(c(AIC(m), BIC(m)), c(AIC(fm), BIC(fm)), tolerance = 1e-10)
    expect_equal(df.residual(m), df.residual(fm))
    expect_equal(ngrps(m), lme4::ngrps(fm))
    expect_equal(isSingular(m), lme4::isSingular(fm))
    expect_equal(fitted(m), fitted(fm), tolerance = 1e-10)
    for (type in c("response", "pearson", "working", "deviance"))
      for (sc in c(FALSE, TRUE))
        expect_equal(residuals(m, type, scaled = sc), residuals(fm, type, scaled = sc),
                     tolerance = 1e-10)
    expect_equal(model.matrix(m, "random"), as.matrix(lme4::getME(fm, "Z")), ignore_attr = TRUE)
    expect_identical(colnames(model.matrix(m, "random")), colnames(lme4::getME(fm, "Z")))
  }
})
