# simulate(), refit() and bootstrap_lmm() (R/simulate.R).

ss_fit <- function() lmm(Reaction ~ Days + (Days | Subject), data = methods_data("sleepstudy"))
dy_fit <- function() lmm(Yield ~ 1 + (1 | Batch), data = methods_data("Dyestuff"))

test_that("simulate() draws u then e in lme4's order, reproducing lme4's numbers", {
  fit <- ss_fit()
  s <- simulate(fit, nsim = 2, seed = 1)
  expect_s3_class(s, "data.frame")
  expect_identical(names(s), c("sim_1", "sim_2"))
  expect_identical(dim(s), c(180L, 2L))
  expect_identical(rownames(s), rownames(fit$frame))
  # lme4: simulate(fm1, nsim = 2, seed = 1)[c(1, 2, 50, 180), ]; lme4's own optimum differs
  # from the exact one by ~1e-5 in theta, so the draws agree to ~1e-5
  ref <- matrix(c(251.535809, 223.310306, 379.996386, 295.078934,
                  239.86752, 245.275651, 261.733924, 334.098785), 4)
  expect_close(as.matrix(s[c(1, 2, 50, 180), ]), ref, tol = 1e-5)
  # lme4: simulate(fm1, nsim = 1, seed = 7, use.u = TRUE)[c(1, 2, 50, 180), 1]
  s <- simulate(fit, seed = 7, use.u = TRUE)
  expect_close(s[c(1, 2, 50, 180), 1], c(312.198418, 242.702381, 364.069591, 354.163771),
               tol = 1e-6)
  expect_identical(attr(s, "seed")[1], 7)
})

test_that("simulate() is reproducible by seed and leaves the generator as it was", {
  fit <- dy_fit()
  expect_identical(simulate(fit, 3, seed = 11), simulate(fit, 3, seed = 11))
  set.seed(5)
  a <- runif(1)
  set.seed(5)
  s <- simulate(fit, seed = 1)
  expect_identical(runif(1), a)
  set.seed(9)
  s1 <- simulate(fit)
  set.seed(9)
  expect_identical(simulate(fit), s1)
  expect_error(simulate(fit, use.u = TRUE, re.form = NA), "only one of")
  expect_error(simulate(fit, nsim = 0), "nsim")
})

test_that("simulated responses have the model's moments", {
  fit <- dy_fit()
  sb2 <- fit$sigma^2 * fit$theta^2                   # between-batch variance
  s2 <- fit$sigma^2
  Y <- as.matrix(simulate(fit, nsim = 4000, seed = 42))
  V <- cov(t(Y))
  same <- outer(fit$reterms[[1]]$group, fit$reterms[[1]]$group, "==")
  # unconditional: mean X beta, variance sigma_b^2 + sigma^2, covariance sigma_b^2 within batch,
  # 0 between batches (Monte Carlo standard errors ~2%)
  expect_equal(mean(rowMeans(Y)), unname(fit$beta), tolerance = 2e-3)
  expect_equal(mean(diag(V)), unname(sb2 + s2), tolerance = 0.03)
  expect_equal(mean(V[same & row(V) != col(V)]), unname(sb2), tolerance = 0.05)
  expect_lt(abs(mean(V[!same])), 0.05 * sb2)
  # conditional on the modes: mean = fitted, variance sigma^2, no covariance
  Y <- as.matrix(simulate(fit, nsim = 4000, seed = 43, use.u = TRUE))
  expect_equal(rowMeans(Y), fitted(fit), tolerance = 1e-3, ignore_attr = TRUE)
  expect_equal(mean(apply(Y, 1, var)), s2, tolerance = 0.03)
})

test_that("re.form conditions on the named terms and simulates the others", {
  fit <- lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject),
             data = methods_data("sleepstudy"))
  Y <- as.matrix(simulate(fit, nsim = 3000, seed = 3, re.form = ~ (1 | Subject)))
  # mean: X beta + intercept modes; the slope is simulated, so Var(y) = sd_slope^2 Days^2 + sigma^2
  days <- fit$frame$Days
  sd_slope <- fit$sigma * fit$theta[2]
  v <- apply(Y, 1, var)
  pred <- sd_slope^2 * days^2 + fit$sigma^2
  zmean <- (rowMeans(Y) - predict(fit, re.form = ~ (1 | Subject))) / sqrt(pred / nrow(Y))
  expect_lt(max(abs(zmean)), 4.5)
  expect_equal(tapply(v, days, mean), tapply(pred, days, mean), tolerance = 0.05,
               ignore_attr = TRUE)
})

test_that("simulate() on newdata: fixed part of newdata, new levels drawn as lme4 does", {
  fit <- ss_fit()
  nd <- data.frame(Days = 0:3, Subject = c("308", "309", "new", "new"))
  expect_error(simulate(fit, newdata = nd, seed = 1), "new levels")
  s <- simulate(fit, nsim = 2, seed = 4, newdata = nd, allow.new.levels = TRUE)
  expect_identical(dim(s), c(4L, 2L))
  # lme4: simulate(fm1, nsim = 2, seed = 4, newdata = nd, allow.new.levels = TRUE)
  expect_close(as.matrix(s), c(266.5709, 286.6326, 323.1014, 341.7234,
                               249.5213, 318.8992, 284.4149, 290.5098), tol = 1e-5)
  s <- simulate(fit, nsim = 1, seed = 4, newdata = nd, use.u = TRUE, allow.new.levels = TRUE)
  set.seed(4)
  e <- rnorm(8)  # conditional: only one residual draw per row (and the new level's effect)
  expect_equal(s[1:2, 1], unname(predict(fit, nd[1:2, ]) + fit$sigma * e[1:2]),
               tolerance = 1e-12)
})

test_that("prior weights scale the residual variance", {
  ss <- methods_data("sleepstudy")
  ss$w <- rep(c(1, 4), 90)
  fit <- lmm(Reaction ~ Days + (1 | Subject), data = ss, weights = w)
  Y <- as.matrix(simulate(fit, nsim = 3000, seed = 8, use.u = TRUE))
  v <- apply(Y, 1, var)
  expect_equal(mean(v[ss$w == 1]), fit$sigma^2, tolerance = 0.04)
  expect_equal(mean(v[ss$w == 4]), fit$sigma^2 / 4, tolerance = 0.04)
})

test_that("refit() with the same response returns the same fit", {
  fit <- ss_fit()
  r <- refit(fit, fit$y)
  expect_s3_class(r, "lmm")
  expect_close(r$crit, fit$crit, tol = 1e-9)
  expect_close(r$theta, fit$theta, tol = 1e-4, scale = 1)
  expect_close(r$beta, fit$beta, tol = 1e-6)
  expect_close(r$sigma, fit$sigma, tol = 1e-6)
  expect_identical(r$call, fit$call)
  expect_identical(r$formula, fit$formula)
  r0 <- refit(fit)
  expect_close(r0$crit, fit$crit, tol = 1e-9)
  ml <- refit(lmm(Yield ~ 1 + (1 | Batch), data = methods_data("Dyestuff"), REML = FALSE))
  expect_false(ml$REML)
})

test_that("refit() to a simulated response equals a fresh fit to it", {
  fit <- ss_fit()
  s <- simulate(fit, seed = 21)
  r <- refit(fit, s)
  d <- methods_data("sleepstudy")
  d$Reaction <- s[[1]]
  f2 <- lmm(Reaction ~ Days + (Days | Subject), data = d)
  expect_close(r$crit, f2$crit, tol = 1e-8)
  expect_close(r$beta, f2$beta, tol = 1e-6)
  expect_equal(model.frame(r)$Reaction, s[[1]])
  expect_error(refit(fit, 1:3), "has length 3")
  expect_error(refit(fit, data.frame(a = 1:180, b = 1:180)), "one-column")
  expect_error(refit(fit, letters), "numeric")
})

test_that("refit() agrees with lme4 fitted to the new response live", {
  # (lme4 1.1-31's own refit(fm, y) reports REMLcrit 1780.134 here, above its fresh fit's 1771.667)
  skip_if_not_installed("lme4")
  ss <- methods_data("sleepstudy")
  fit <- ss_fit()
  ss$Reaction <- simulate(fit, seed = 2)[[1]]
  fm <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss)
  expect_close(refit(fit, ss$Reaction)$crit, lme4::REMLcrit(fm), tol = 1e-7)
})

test_that("bootstrap_lmm() is reproducible by seed, serial or parallel", {
  fit <- dy_fit()
  f <- function(x) c(beta = unname(fixef(x)), sigma = sigma(x))
  a <- bootstrap_lmm(fit, f, nsim = 12, seed = 4)
  b <- bootstrap_lmm(fit, f, nsim = 12, seed = 4)
  expect_s3_class(a, "bootstrap_lmm")
  expect_identical(a$t, b$t)
  expect_identical(dim(a$t), c(12L, 2L))
  expect_identical(colnames(a$t), c("beta", "sigma"))
  expect_equal(a$t0, f(fit))
  # replicate i is FUN(refit(fit, simulate(fit, 12, seed = 4)[[i]]))
  s <- simulate(fit, 12, seed = 4)
  expect_equal(a$t[5, ], f(refit(fit, s[[5]])), tolerance = 1e-10)
  skip_on_os("windows")
  p <- bootstrap_lmm(fit, f, nsim = 12, seed = 4, parallel = "multicore", ncpus = 2)
  expect_identical(p$t, a$t)
})

test_that("bootstrap_lmm() keeps failed replicates as NA and reports them", {
  fit <- dy_fit()
  k <- 0
  f <- function(x) {
    k <<- k + 1
    if (k == 3) stop("boom")
    if (k == 4) warning("careful")
    sigma(x)
  }
  b <- bootstrap_lmm(fit, f, nsim = 5, seed = 1)
  expect_true(is.na(b$t[2, 1]))          # k = 1 is FUN(fit) itself
  expect_identical(b$errors[2], "boom")
  expect_identical(b$warnings[[3]], "careful")
  out <- capture.output(print(b))
  expect_true(any(grepl("1 refit\\(s\\) failed: boom", out)))
  expect_error(bootstrap_lmm(fit, function(x) "a"), "numeric")
  expect_error(bootstrap_lmm(list(), sigma), "fitted")
})

test_that("bootstrap_lmm() on a snow cluster gives the serial result", {
  skip_on_cran()
  skip_if(!nzchar(system.file(package = "lmmc")), "lmmc is not installed for the workers")
  fit <- dy_fit()
  f <- function(x) c(fixef(x), sigma = sigma(x))
  a <- bootstrap_lmm(fit, f, nsim = 6, seed = 4)
  b <- bootstrap_lmm(fit, f, nsim = 6, seed = 4, parallel = "snow", ncpus = 2)
  expect_identical(b$t, a$t)
})

test_that("refit() refuses a constant or non-finite response as lmm() does", {
  fit <- dy_fit()
  expect_error(refit(fit, rep(1, 30)), "response is constant", fixed = TRUE)
  expect_error(refit(fit, c(NA, fit$y[-1])), "missing or infinite", fixed = TRUE)
})
