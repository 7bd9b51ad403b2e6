# The analytic gradient of the profiled criterion (src/gradient.c, lmm_objective(gradient = TRUE)
# in R/objective.R) against Richardson-extrapolated central differences of the criterion.

dyestuff <- readRDS(test_path("data", "Dyestuff.rds"))
sleep <- readRDS(test_path("data", "sleepstudy.rds"))
penicillin <- readRDS(test_path("data", "Penicillin.rds"))
pastes <- readRDS(test_path("data", "Pastes.rds"))
data(Orthodont, package = "nlme")

# |analytic - numerical| <= tol * max(|numerical|, 1), component by component; the steps (1% of
# |theta|) keep the differences far above the criterion's rounding, Richardson removes the bias.
expect_gradient <- function(obj, theta, tol = 1e-6) {
  g <- obj$gr(theta)
  fd <- drop(lmmc:::richardson_jacobian(function(t) as.numeric(obj$fn(t)), theta, d = 1e-2))
  err <- max(abs(g - fd) / pmax(abs(fd), 1))
  expect(err < tol, sprintf(paste0("gradient at theta = (%s): relative error %.3g",
                                  "\n  analytic  %s\n  numerical %s"),
                            toString(signif(theta, 4)), err, toString(signif(g, 10)),
                            toString(signif(fd, 10))))
}

# at random interior theta (diagonal elements in [0.2, 2], the others in [-0.5, 0.5]) and at
# lmmc's optimum, REML and ML
check_gradient <- function(formula, data, ntheta_random = 2, ...) {
  args <- list(...)                                     # values (weights, offset), not names
  pieces <- do.call(lmm_pieces, c(list(formula, data), args))
  diag <- lmmc:::theta_is_diagonal(pieces$reterms)
  for (REML in c(TRUE, FALSE)) {
    obj <- lmm_objective(pieces, REML = REML, gradient = TRUE)
    for (i in seq_len(ntheta_random))
      expect_gradient(obj, ifelse(diag, runif(length(diag), 0.2, 2),
                                  runif(length(diag), -0.5, 0.5)))
    fit <- do.call(lmm, c(list(formula, data, REML = REML), args))
    expect_gradient(obj, unname(fit$theta))
  }
}

test_that("the criterion carries its gradient; gr reuses fn's evaluation", {
  pieces <- lmm_pieces(Reaction ~ Days + (Days | Subject), sleep)
  obj <- lmm_objective(pieces, gradient = TRUE)
  expect_named(obj, c("fn", "gr", "lower"))
  expect_equal(obj$lower, c(0, -Inf, 0))
  v <- obj$fn(c(0.9, -0.2, 0.3))
  # lme4 1.1-31: lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
  #                   devFunOnly = TRUE)(c(0.9, -0.2, 0.3))
  expect_equal(as.numeric(v), 1751.59275767217, tolerance = 1e-10)
  expect_equal(as.numeric(v), lmm_objective(pieces)(c(0.9, -0.2, 0.3)), tolerance = 1e-14)
  expect_length(attr(v, "gradient"), 3)
  expect_identical(obj$gr(c(0.9, -0.2, 0.3)), attr(v, "gradient"))
  expect_false(isTRUE(all.equal(obj$gr(c(1, 0, 1)), attr(v, "gradient"))))
  expect_error(obj$fn(1), "theta must have length 3")
  expect_error(obj$gr(c(1, 2)), "theta must have length 3")
  expect_error(lmm_objective(pieces, gradient = NA), "'gradient' must be TRUE or FALSE")
})

test_that("gradient equals finite differences: scalar, vector and independent terms", {
  set.seed(10)
  check_gradient(Yield ~ 1 + (1 | Batch), dyestuff)
  check_gradient(Reaction ~ Days + (Days | Subject), sleep)
  check_gradient(Reaction ~ Days + (Days || Subject), sleep)
  check_gradient(distance ~ age + (age | Subject), Orthodont)
})

test_that("gradient equals finite differences: crossed (dense block) and nested designs", {
  set.seed(11)
  check_gradient(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin)
  check_gradient(strength ~ 1 + (1 | batch/cask), pastes)
})

test_that("gradient equals finite differences: weights, offset, a three-column term", {
  set.seed(12)
  n <- 400
  d <- data.frame(g = factor(sample(30, n, TRUE)), h = factor(sample(8, n, TRUE)),
                  x1 = rnorm(n), x2 = rnorm(n), w = runif(n, 0.5, 2), o = rnorm(n))
  b <- matrix(rnorm(90), 30)
  d$y <- 1 + d$x1 + b[d$g, 1] + b[d$g, 2] * d$x1 + 0.5 * b[d$g, 3] * d$x2 +
    rnorm(8)[d$h] + rnorm(n) / sqrt(d$w)
  check_gradient(y ~ x1 + x2 + (1 + x1 + x2 | g), d)
  check_gradient(y ~ x1 + (x1 | g) + (1 | h), d, weights = d$w, offset = d$o)
  check_gradient(y ~ x1 + x2 + (1 + x1 + x2 || g) + (x1 | h), d, ntheta_random = 1)
})

test_that("gradient equals finite differences on a crossed design with a large dense block", {
  set.seed(13)
  n <- 6000
  d <- data.frame(s = factor(sample(900, n, TRUE)), t = factor(sample(520, n, TRUE)),
                  u = factor(sample(6, n, TRUE)), x = rnorm(n))
  d$y <- d$x + rnorm(900)[d$s] + 0.7 * rnorm(520)[d$t] + rnorm(6)[d$u] * d$x + rnorm(n)
  pieces <- lmm_pieces(y ~ x + (1 | s) + (1 | t) + (x | u), d)
  e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
  info <- .Call(lmmc:::C_lmm_layout_info, e)
  expect_gt(info[["sparse_nodes"]], 0)                 # sparse columns: the selected inverse
  expect_gte(info[["dense_order"]], 500)               # dense block: threaded kernels
  for (REML in c(TRUE, FALSE)) {
    obj <- lmm_objective(pieces, REML = REML, gradient = TRUE)
    expect_gradient(obj, c(0.9, 0.6, 0.8, 0.3, 0.5))
  }
  th <- c(0.7, 0.5, 0.6, 0.1, 0.4)                     # the same sums on one thread or two
  old <- options(lmmc.threads = 1)
  on.exit(options(old))
  g1 <- attr(obj$fn(th), "gradient")
  options(lmmc.threads = 2)
  expect_identical(attr(obj$fn(th), "gradient"), g1)
})

test_that("the gradient vanishes at lme4's optimum and leads nlminb there", {
  # lme4 1.1-31: sleepstudy (Days | Subject), REML: theta and REMLcrit; ML: theta and deviance
  th_reml <- c(0.9667417739674123, 0.0151690588960361, 0.2309099532077945)
  th_ml <- c(0.929190605278248, 0.018165754720412, 0.222643205612618)
  pieces <- lmm_pieces(Reaction ~ Days + (Days | Subject), sleep)
  reml <- lmm_objective(pieces, REML = TRUE, gradient = TRUE)
  ml <- lmm_objective(pieces, REML = FALSE, gradient = TRUE)
  expect_lt(max(abs(reml$gr(th_reml))), 1e-3)
  expect_lt(max(abs(ml$gr(th_ml))), 5e-3)               # lme4's ML optimum is less precise
  expect_gt(max(abs(reml$gr(th_ml))), 0.05)            # and is not small elsewhere
  opt <- nlminb(c(1, 0, 1), reml$fn, reml$gr, lower = reml$lower)
  expect_crit(opt$objective, 1743.62827195995)
  expect_lt(max(abs(reml$gr(opt$par))), 1e-3)
  # Penicillin (lme4 1.1-31): theta and REMLcrit
  pen <- lmm_objective(lmm_pieces(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin),
                       gradient = TRUE)
  expect_lt(max(abs(pen$gr(c(1.53967555430648, 3.51251885988167)))), 1e-3)
  opt <- nlminb(c(1, 1), pen$fn, pen$gr, lower = pen$lower)
  expect_crit(opt$objective, 330.860588999604)
})

test_that("the gradient equals finite differences of lme4's deviance function", {
  skip_if_not_installed("lme4")
  f <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin, devFunOnly = TRUE)
  obj <- lmm_objective(lmm_pieces(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin),
                       gradient = TRUE)
  th <- c(1.2, 2.5)
  fd <- drop(lmmc:::richardson_jacobian(f, th, d = 1e-2))
  expect_equal(obj$gr(th), fd, tolerance = 1e-6)
})

test_that("the gradient is invariant to shifting and scaling y (src/standardise.c)", {
  sleep <- readRDS(test_path("data", "sleepstudy.rds"))
  g <- function(d) {
    o <- lmm_objective(lmm_pieces(Reaction ~ Days + (Days | Subject), d), gradient = TRUE)
    o$gr(c(0.9, 0.1, 0.3))
  }
  ref <- g(sleep)
  s2 <- sleep
  s2$Reaction <- sleep$Reaction + 1e8
  expect_equal(g(s2), ref, tolerance = 1e-6)
  s2$Reaction <- sleep$Reaction * 1e-6
  expect_equal(g(s2), ref, tolerance = 1e-8)
})
