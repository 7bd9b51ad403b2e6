# Tests of the C optimiser (src/optimise.c) through its test entry, which
# minimises an R function.  Evaluation counts recorded when last changed (rhobeg 0.2,
# rhoend 1e-8, ftol_abs 1e-8) are asserted with some slack as regression guards.

opt <- function(fn, x0, lower = rep(-Inf, length(x0)), upper = rep(Inf, length(x0)),
                rhobeg = 0.2, rhoend = 1e-8, maxeval = 10000L, ftol_abs = 1e-8) {
  .Call(lmmc:::C_lmm_test_optimiser, fn, as.double(x0), as.double(lower),
        as.double(upper), as.double(rhobeg), as.double(rhoend),
        as.integer(maxeval), as.double(ftol_abs))
}

rosenbrock <- function(x) {
  n <- length(x)
  sum(100 * (x[-1] - x[-n]^2)^2 + (1 - x[-n])^2)
}

## ---- smooth problems with known minima ----

test_that("quadratic with an interior minimum is found exactly", {
  f <- function(x) (x[1] - 1)^2 + 3 * (x[2] - 2)^2 + x[1] * x[2] + 0.5 * (x[3] + 1)^2
  xs <- solve(matrix(c(2, 1, 0, 1, 6, 0, 0, 0, 1), 3), c(2, 12, -1))
  r <- opt(f, c(0, 0, 0), ftol_abs = 0)          # rho-only stopping: 43 evaluations
  expect_equal(r$status, 0L)
  expect_lt(max(abs(r$par - xs)), 1e-7)
  expect_lt(r$value - f(xs), 1e-13)
  expect_lte(r$feval, 50)
  r <- opt(f, c(0, 0, 0))                        # ftol_abs 1e-8: 14 evaluations
  expect_lt(r$value - f(xs), 1e-8)
  expect_lte(r$feval, 20)
})

test_that("quadratic with minimum on lower bounds puts those coordinates exactly at 0", {
  f <- function(x) sum((x - c(-1, 2, -0.5, 1))^2 * c(1, 2, 3, 4)) + 0.1 * x[1] * x[4]
  r <- opt(f, c(1, 1, 1, 1), lower = rep(0, 4))  # 19 evaluations (15 for the first model)
  expect_equal(r$status, 0L)
  expect_identical(r$par[c(1, 3)], c(0, 0))
  expect_equal(r$par[c(2, 4)], c(2, 1), tolerance = 1e-4)
  expect_lt(r$value - f(c(0, 2, 0, 1)), 1e-8)
  expect_lte(r$feval, 25)
  r0 <- opt(f, c(1, 1, 1, 1), lower = rep(0, 4), ftol_abs = 0)   # 40 evaluations
  expect_identical(r0$par[c(1, 3)], c(0, 0))
  expect_lt(max(abs(r0$par - c(0, 2, 0, 1))), 1e-7)
  # starting exactly at the bound: 19 evaluations
  r1 <- opt(f, c(0, 0, 0, 0), lower = rep(0, 4))
  expect_identical(r1$par[c(1, 3)], c(0, 0))
  expect_lt(r1$value - f(c(0, 2, 0, 1)), 1e-8)
  expect_lte(r1$feval, 20)
})

test_that("active upper bounds and fixed variables (lower == upper) are respected", {
  f <- function(x) sum((x - 3)^2)
  r <- opt(f, c(1, 2), lower = c(0, 0), upper = c(2.5, 10))
  expect_identical(r$par[1], 2.5)
  expect_equal(r$par[2], 3, tolerance = 1e-6)
  expect_equal(r$value, 0.25, tolerance = 1e-10)
  r <- opt(f, c(1, 2, 5), lower = c(0, 2, 0), upper = c(4, 2, 4))
  expect_identical(r$par[2], 2)
  expect_equal(r$par[-2], c(3, 3), tolerance = 1e-6)
  expect_equal(r$value, 1, tolerance = 1e-10)
})

test_that("Rosenbrock in 2 and 4 dimensions", {
  r <- opt(rosenbrock, c(-1.2, 1))               # 116 evaluations
  expect_equal(r$status, 0L)
  expect_lt(max(abs(r$par - 1)), 1e-4)
  expect_lt(r$value, 1e-8)
  expect_lte(r$feval, 140)
  r <- opt(rosenbrock, c(-1.2, 1), ftol_abs = 0) # 128 evaluations
  expect_lt(max(abs(r$par - 1)), 1e-8)
  expect_lt(r$value, 1e-15)
  expect_lte(r$feval, 160)
  r <- opt(rosenbrock, c(-1.2, 1, -1.2, 1))      # 304 evaluations
  expect_lt(max(abs(r$par - 1)), 1e-3)
  expect_lt(r$value, 1e-7)
  expect_lte(r$feval, 340)
})

test_that("one parameter: interior minimum and minimum at the bound 0", {
  f <- function(x) 5 * (x - 0.3)^2 + 2 + 0.3 * (x - 0.3)^3
  r <- opt(f, 1, lower = 0)                      # 8 evaluations
  expect_equal(r$status, 0L)
  expect_equal(r$par, 0.3, tolerance = 1e-4)
  expect_lt(r$value - 2, 1e-8)
  expect_lte(r$feval, 12)
  r <- opt(f, 1, lower = 0, ftol_abs = 0)        # 11 evaluations
  expect_lt(abs(r$par - 0.3), 1e-8)
  g <- function(x) 5 * (x + 0.3)^2 + 2
  r <- opt(g, 1, lower = 0)                      # 4 evaluations
  expect_identical(r$par, 0)
  expect_identical(r$value, g(0))
  expect_lte(r$feval, 8)
  r <- opt(g, 0, lower = 0)                      # start at the bound: 4 evaluations
  expect_identical(r$par, 0)
  expect_lte(r$feval, 8)
  r <- opt(function(x) (x - 3)^2, 0, lower = -1, upper = 2)
  expect_identical(r$par, 2)
})

test_that("points where f is Inf or NaN are avoided", {
  f <- function(x) if (x[1] + x[2] > 1.5) Inf else (x[1] - 1)^2 + (x[2] - 1)^2
  r <- opt(f, c(0, 0))                           # constrained minimum (0.75, 0.75), 0.125
  expect_equal(r$status, 0L)
  expect_true(is.finite(r$value) && sum(r$par) <= 1.5)
  expect_lt(r$value, 0.13)
  g <- function(x) if (x > 2) NaN else (x - 3)^2
  r <- opt(g, 0)
  expect_equal(r$par, 2, tolerance = 1e-6)
  expect_lte(r$par, 2)
})

test_that("a large criterion with rounding noise stops at the noise level", {
  # size 4e6 with noise of +-2e-8 (as the REML criterion of a 10^6-row fit): ftol_abs 1e-8
  # cannot be validated, the tolerance becomes 100 eps |f| (~1e-7)
  f <- function(x) {
    u <- x - c(0.5, 0.25)
    4e6 + 1e5 * u[1]^2 + 6e4 * u[2]^2 + 2e4 * u[1] * u[2] + 4e5 * u[1]^3 +
      2e-8 * sin(1e7 * sum(x * c(1, 1.618)))
  }
  for (x0 in list(c(0.502, 0.253), c(0.51, 0.24), c(0.45, 0.3))) {   # 19, 19, 21 evaluations
    r <- opt(f, x0, lower = c(0, 0), rhobeg = 0.0125, rhoend = 2e-7)
    expect_equal(r$status, 0L)
    expect_lt(r$value - 4e6, 5e-8)
    expect_lt(max(abs(r$par - c(0.5, 0.25))), 1e-6)
    expect_lte(r$feval, 25)
  }
  g <- function(x) 4e6 + 1e5 * (x - 0.5)^2 + 3e5 * (x - 0.5)^3 + 2e-8 * sin(1e7 * x)
  r <- opt(g, 0.502, lower = 0, rhobeg = 0.025, rhoend = 2e-7)      # 7 evaluations
  expect_lt(r$value - 4e6, 5e-8)
  expect_lte(r$feval, 10)
})

test_that("status codes: maxeval reached and non-finite start", {
  r <- opt(rosenbrock, c(-1.2, 1, -1.2, 1), maxeval = 10L)
  expect_equal(r$status, 1L)
  expect_equal(r$feval, 10L)
  expect_lt(r$value, rosenbrock(c(-1.2, 1, -1.2, 1)))
  r <- opt(function(x) (x - 2)^2, 0, maxeval = 2L)
  expect_equal(r$status, 1L)
  expect_equal(r$feval, 2L)
  r <- opt(function(x) NaN, c(1, 2))
  expect_equal(r$status, 2L)
  expect_equal(r$feval, 1L)
})

## ---- realistic: lme4's profiled REML / ML criterion, by dense algebra ----
# For y = X beta + Z b + e, b = Lambda u, V = Z Lambda Lambda' Z' + I (relative
# to sigma^2): REML = log|V| + log|X'V^-1 X| + (n-p)(1 + log(2 pi r2/(n-p))),
# ML = log|V| + n(1 + log(2 pi r2/n)), r2 = (y - X b)'V^-1 (y - X b), b GLS.
# terms: list of list(Z = n x (l p) in level-major order, p = p).
dense_crit <- function(theta, y, X, terms, REML = TRUE) {
  n <- length(y); V <- diag(n); k <- 0
  for (tm in terms) {
    p <- tm$p; T <- matrix(0, p, p)
    T[lower.tri(T, diag = TRUE)] <- theta[k + seq_len(p * (p + 1) / 2)]
    k <- k + p * (p + 1) / 2
    ZL <- tm$Z %*% kronecker(diag(ncol(tm$Z) / p), T)
    V <- V + tcrossprod(ZL)
  }
  R <- chol(V)
  Xt <- backsolve(R, X, transpose = TRUE); yt <- backsolve(R, y, transpose = TRUE)
  RX <- chol(crossprod(Xt))
  r2 <- sum(yt^2) - sum(backsolve(RX, crossprod(Xt, yt), transpose = TRUE)^2)
  ldV <- 2 * sum(log(diag(R)))
  if (REML) {
    np <- n - ncol(X)
    ldV + 2 * sum(log(diag(RX))) + np * (1 + log(2 * pi * r2 / np))
  } else ldV + n * (1 + log(2 * pi * r2 / n))
}
intercept_term <- function(g) list(Z = model.matrix(~ 0 + factor(g)), p = 1)

test_that("random-intercept REML and ML on nlme's Rail match lme4", {
  Rail <- as.data.frame(nlme::Rail)
  y <- Rail$travel; X <- matrix(1, nrow(Rail), 1); tms <- list(intercept_term(Rail$Rail))
  # lme4 1.1-31: REML theta 6.16931776649, criterion 122.177000808598, 18 evaluations
  r <- opt(function(th) dense_crit(th, y, X, tms), 1, lower = 0)
  expect_equal(r$status, 0L)
  expect_equal(r$par, 6.16931776649, tolerance = 1e-5)
  expect_lte(r$value, 122.177000808598 * (1 + 1e-10))
  expect_lte(r$feval, 18)                         # 15 evaluations
  # ML: theta 5.62685639174, deviance 128.560036938435, 22 evaluations
  r <- opt(function(th) dense_crit(th, y, X, tms, REML = FALSE), 1, lower = 0)
  expect_equal(r$par, 5.62685639174, tolerance = 1e-5)
  expect_lte(r$value, 128.560036938435 * (1 + 1e-10))
  expect_lte(r$feval, 22)                         # 15 evaluations
})

test_that("random-intercept REML on nlme's ergoStool matches lme4", {
  es <- as.data.frame(nlme::ergoStool)
  X <- model.matrix(~ Type, es); tms <- list(intercept_term(es$Subject))
  # lme4 1.1-31: theta 1.21100752551, REML criterion 121.130788701999, 14 evaluations
  r <- opt(function(th) dense_crit(th, es$effort, X, tms), 1, lower = 0)
  expect_equal(r$par, 1.21100752551, tolerance = 1e-5)
  expect_lte(r$value, 121.130788701999 * (1 + 1e-10))
  expect_lte(r$feval, 14)                         # 8 evaluations
})

test_that("correlated random slopes: sleepstudy-like REML with 3 parameters", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  subj <- as.integer(ss$Subject); nl <- max(subj)
  Z <- matrix(0, nrow(ss), 2 * nl)
  Z[cbind(seq_len(nrow(ss)), 2 * subj - 1)] <- 1
  Z[cbind(seq_len(nrow(ss)), 2 * subj)] <- ss$Days
  X <- cbind(1, ss$Days); tms <- list(list(Z = Z, p = 2))
  # lme4 1.1-31: theta (0.966741773967, 0.015169058896, 0.230909953208),
  # REML criterion 1743.62827195995, 43 evaluations
  r <- opt(function(th) dense_crit(th, ss$Reaction, X, tms), c(1, 0, 1), lower = c(0, -Inf, 0))
  expect_equal(r$status, 0L)
  expect_lt(max(abs(r$par - c(0.966741773967, 0.015169058896, 0.230909953208))), 1e-4)
  expect_lte(r$value, 1743.62827195995 * (1 + 1e-10))
  expect_lte(r$feval, 55)                         # 48 evaluations (lme4: 43 from this start)
})

test_that("random intercept with variance estimate exactly 0 (Dyestuff2)", {
  skip_if_not_installed("lme4")
  d <- lme4::Dyestuff2
  X <- matrix(1, nrow(d), 1); tms <- list(intercept_term(d$Batch))
  r <- opt(function(th) dense_crit(th, d$Yield, X, tms), 1, lower = 0)
  expect_identical(r$par, 0)                      # lme4: theta 0, 10 evaluations
  expect_lte(r$feval, 10)                         # 5 evaluations
  fit <- lme4::lmer(Yield ~ 1 + (1 | Batch), d)
  expect_equal(r$value, lme4::REMLcrit(fit), tolerance = 1e-10)
})

test_that("live comparison with lme4's devfun (crossed and nested intercepts)", {
  skip_if_not_installed("lme4")
  for (form in list(diameter ~ 1 + (1 | plate) + (1 | sample), strength ~ 1 + (1 | batch / cask))) {
    dat <- if (all.vars(form)[1] == "diameter") lme4::Penicillin else lme4::Pastes
    fit <- lme4::lmer(form, dat, control = lme4::lmerControl(calc.derivs = FALSE))
    dev <- lme4::lmer(form, dat, devFunOnly = TRUE)
    r <- opt(function(th) dev(th), c(1, 1), lower = c(0, 0))
    expect_equal(r$status, 0L)
    expect_lte(r$feval, 55)                       # 46 and 34 evaluations (lme4: 41, 36)
    expect_lte(r$value, dev(lme4::getME(fit, "theta")) * (1 + 1e-10))
    expect_equal(r$par, unname(lme4::getME(fit, "theta")), tolerance = 1e-4)
  }
})

## ---- quasi-Newton fits with the analytic gradient (src/quasi_newton.c, R/optimise.R) ----
## Reference numbers of lmmc issue 9: lme4's test suite (Dyestuff REML theta 0.84832031,
## tol 6e-6), MixedModels.jl's fixtures (Dyestuff ML), lme4's REML criterion for the poly()
## case, nlme's REML logLik for Ovary with corCAR1.  "tight": the optimum to 1e-10 in the
## projected gradient (gtol 1e-12), which BOBYQA's early stops missed.

test_that("Dyestuff REML and ML reach the tight optimum", {
  d <- ref_data("Dyestuff")
  fit <- lmm(Yield ~ 1 + (1 | Batch), d)
  expect_equal(fit$optinfo$optimizer, "quasi-newton-lmmc")
  expect_equal(unname(fit$theta), 0.84832031, tolerance = 6e-6)        # lme4's test
  expect_lt(abs(unname(fit$theta) - 0.8483238), 1e-7)                  # tight optimum
  expect_lte(fit$optinfo$feval, 10)                                    # 6 evaluations
  ml <- lmm(Yield ~ 1 + (1 | Batch), d, REML = FALSE)                  # MixedModels.jl
  expect_equal(unname(ml$theta), 0.7525807, tolerance = 1e-6)
  expect_equal(sqrt(VarCorr(ml)$Batch[1]), 37.260344, tolerance = 1e-6)
  expect_equal(sigma(ml), 49.5101004, tolerance = 1e-7)
  bq <- lmm(Yield ~ 1 + (1 | Batch), d, control = lmm_control(optimizer = "bobyqa"))
  expect_equal(bq$optinfo$optimizer, "bobyqa-lmmc")
  expect_gte(bq$crit, fit$crit - 1e-12)
})

test_that("sleepstudy: theta within 1e-6 of the tight optimum, certificate fields", {
  d <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days | Subject), d)
  tight <- lmm(Reaction ~ Days + (Days | Subject), d, control = lmm_control(gtol = 1e-12))
  expect_lt(max(abs(fit$theta - tight$theta) / pmax(abs(tight$theta), 0.1)), 1e-6)
  expect_lte(fit$crit, 1743.62827195995 * (1 + 1e-12))                 # lme4's criterion
  oi <- fit$optinfo
  expect_true(oi$converged)
  expect_identical(oi$status, 0L)
  expect_identical(oi$geval, oi$feval)                                 # 8 evaluations
  expect_lte(oi$feval, 12)
  expect_lt(oi$pgrad, 1e-10 * fit$crit)
  expect_length(oi$on_bound, 0)
  expect_gt(oi$min_eigen, 1)                                           # BFGS's estimate
  expect_identical(oi$hessian, "BFGS")
  fd <- lmm(Reaction ~ Days + (Days | Subject), d, control = lmm_control(calc.derivs = TRUE))
  expect_identical(fd$optinfo$hessian, "finite differences")
  expect_equal(fd$optinfo$min_eigen, 34.4, tolerance = 0.01)           # from the gradient
  g <- attr(lmm_objective(fit, gradient = TRUE)$fn(fit$theta), "gradient")
  expect_lt(max(abs(g)), 1e-6)
  expect_equal(oi$gradient, g, tolerance = 1e-12)
})

test_that("boundary: the poly(x, 2) case reaches lme4's 557.5399 by the interior restarts", {
  dd <- with_seed(101, data.frame(x = 1:200, f = factor(rep(1:10, 20)),
                                  g = factor(rep(1:20, each = 10)), y = rnorm(200)))
  fit <- suppressMessages(lmm(y ~ 1 + f + (poly(x, 2) | g), dd))
  expect_lt(abs(fit$crit - 557.5399), 1e-4)                            # lme4; lmmc was 557.7295
  expect_lt(fit$crit, 557.53993)
  expect_true(fit$optinfo$converged)
  expect_gte(fit$optinfo$restarts, 1L)
  expect_setequal(fit$optinfo$on_bound, c(4L, 6L))
  expect_true(all(fit$theta[fit$optinfo$on_bound] == 0))
  expect_gt(fit$optinfo$min_eigen, 0)
})

test_that("a zero derivative at theta = 0 is not taken for a minimum (even criterion)", {
  # Orthodont (age | Subject) from (1, 0, 1): a path to theta_3 = 0, where the criterion is even
  # in theta_3 (derivative exactly 0) but not minimal; lme4's optimum 442.6367 is inside
  d <- ref_data("Orthodont")
  fit <- lmm(distance ~ age + (age | Subject), d, start = c(1, 0, 1))
  expect_equal(fit$crit, 442.636685, tolerance = 1e-8)
  expect_length(fit$optinfo$on_bound, 0)
  fit0 <- lmm(Yield ~ 1 + (1 | Batch), ref_data("Dyestuff2"))          # optimum at 0, exactly
  expect_identical(unname(fit0$theta), 0)
  expect_true(fit0$optinfo$converged)
  expect_identical(fit0$optinfo$on_bound, 1L)
})

test_that("maxeval and first-order failures are reported, with a warning", {
  d <- ref_data("sleepstudy")
  expect_warning(early <- lmm(Reaction ~ Days + (Days | Subject), d,
                              control = lmm_control(maxeval = 3)),
                 "maximum number of evaluations")
  expect_false(early$optinfo$converged)
  expect_identical(early$optinfo$status, 1L)
  expect_match(capture.output(summary(early)), "convergence code: 1", all = FALSE)
  expect_match(capture.output(print(early)), "convergence code: 1", all = FALSE)
  expect_warning(oi <- lmmc:::optimiser_info(
    list(status = 0L, feval = 5L, geval = 5L,
         certificate = list(pgrad = 1, gtol = 1e-6, first_order = FALSE)), lmm_control()),
    "first-order conditions not met")
  expect_false(oi$converged)
  expect_match(oi$message, "first-order conditions not met")
  expect_no_warning(lmm(Reaction ~ Days + (Days | Subject), d))
})

test_that("Ovary with corCAR1 reaches nlme's optimum", {
  skip_if_not_installed("nlme")
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (sin(2 * pi * Time) || Mare),
             nlme::Ovary, correlation = nlme::corCAR1(form = ~ Time))
  expect_equal(as.numeric(logLik(fit)), -775.7676222, tolerance = 1e-9 * 776)  # nlme 3.1
  expect_equal(unname(fit$residual$phi), 8.22307e-06, tolerance = 1e-4)        # nlme's Phi
})

test_that("the interior neighbour of a zero Cholesky diagonal resets that component's correlations", {
  # L = [0 0; 1.6 0.3] (a (1 + x | g) term) and a scalar term at 0: the column below the zero
  # diagonal is not identified; the neighbour keeps the slope's variance 1.6^2 + 0.3^2, sets the
  # intercept's standard deviation to 0.5 and their correlation to 0.
  theta <- c(0, 1.6, 0.3, 0)
  at_bound <- c(TRUE, FALSE, FALSE, TRUE)
  nb <- lmmc:::interior_neighbour(theta, at_bound, c(2L, 1L), inside = 0.5)
  expect_equal(nb, c(0.5, 0, sqrt(1.6^2 + 0.3^2), 0.5), tolerance = 1e-14)
  # without the term sizes only the zero entries move
  expect_identical(lmmc:::interior_neighbour(theta, at_bound, NULL, 0.5), c(0.5, 1.6, 0.3, 0.5))
  # the sizes travel with theta_in_vector_term()
  reterms <- list(list(Xt = matrix(0, 3, 2)), list(Xt = matrix(0, 3, 1)))
  v <- lmmc:::theta_in_vector_term(reterms)
  expect_identical(as.vector(v), c(TRUE, TRUE, TRUE, FALSE))
  expect_identical(attr(v, "sizes"), c(2L, 1L))
})
