# The iterative backend (R/iterative.R, src/iterative*.c): conjugate gradients on A's own
# pattern and log|Omega_Z| by stochastic Lanczos quadrature with fixed probes.  Issue 11's
# accuracy targets against the direct (exact) backend: variance parameters within 1e-3 relative,
# fixed effects within 0.01 standard errors, conditional modes to 1e-6 at the same theta; the
# fit reports that it is approximate, the probe count and the Monte Carlo error.

# (1 | a) + (1 | b) randomly crossed, 2,000 x 500 levels, 50,000 rows: with the default
# exact_levels (200) both terms are solved by CG and log|Omega_Z| is stochastic.
sim_crossed <- function(n1 = 2000, n2 = 500, n = 50000, seed = 11) {
  set.seed(seed)
  a <- sample.int(n1, n, replace = TRUE)
  b <- sample.int(n2, n, replace = TRUE)
  x <- rnorm(n)
  y <- 1 + 0.5 * x + rnorm(n1, sd = 0.8)[a] + rnorm(n2, sd = 0.5)[b] + rnorm(n)
  data.frame(y = y, x = x, a = factor(a), b = factor(b))
}
crossed <- sim_crossed()
iterative <- lmm_control(backend = "iterative")
direct <- lmm_control(backend = "direct")

# The engine of model pieces pc: the exact one, or the iterative one with the settings of `control`.
engine_of <- function(pc, control = NULL) {
  engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset,
               backend = if (!is.null(control)) iterative_settings(control))
}

expect_targets <- function(fi, fe, theta_tol = 1e-3) {
  expect_lt(max(abs(fi$theta / fe$theta - 1)), theta_tol)
  expect_lt(max(abs(fi$beta - fe$beta) / sqrt(diag(fe$vcov_beta))), 0.01)
  expect_lt(abs(fi$sigma / fe$sigma - 1), theta_tol)
}

test_that("crossed 2,000 x 500: the iterative fit meets the accuracy targets of the exact one", {
  fi <- lmm(y ~ x + (1 | a) + (1 | b), crossed, control = iterative)
  fe <- lmm(y ~ x + (1 | a) + (1 | b), crossed, control = direct)
  expect_null(fe$iterative)
  expect_targets(fi, fe)
  # lme4 1.1-31's lmer() on the same data (REML)
  expect_equal(unname(fi$theta), c(0.7827641060, 0.4779030474), tolerance = 1e-3)
  expect_lt(max(abs(fi$beta - c(1.0204830285, 0.5029061927)) / c(0.02813516, 0.00459955)), 0.01)
  expect_equal(fi$sigma, 1.00471622, tolerance = 1e-4)
  # the criterion is approximate: within a few Monte Carlo standard errors of the exact one
  it <- fi$iterative
  expect_identical(it$probes, 30L)
  expect_true(is.finite(it$crit_se) && it$crit_se > 0)
  # the Monte Carlo error of theta (through the BFGS Hessian) covers the actual difference
  expect_true(all(is.finite(it$theta_se) & it$theta_se > 0))
  expect_true(all(abs(fi$theta - fe$theta) < 3 * it$theta_se))
  expect_lt(abs(fi$crit - fe$crit), 5 * it$crit_se)
  expect_equal(it$unconverged, 0)
  expect_true(fi$optinfo$converged)
})

test_that("conditional modes at a given theta are exact to the CG tolerance (1e-6)", {
  pc <- lmm_pieces(y ~ x + (1 | a) + (1 | b), crossed)
  ex <- engine_of(pc)
  it <- engine_of(pc, iterative)
  theta <- c(0.78, 0.48)
  se <- engine_solution(ex, theta, TRUE)
  si <- engine_solution(it, theta, TRUE)
  expect_lt(max(abs(si$u - se$u)), 1e-6)
  expect_lt(max(abs(si$beta - se$beta)), 1e-8)
  expect_equal(si$pwrss, se$pwrss, tolerance = 1e-10)
  expect_equal(si$ldRX2, se$ldRX2, tolerance = 1e-10)
  expect_equal(si$RXinv2, se$RXinv2, tolerance = 1e-8)
  expect_lt(abs(si$ldL2 - se$ldL2), 5 * si$ld_se)
})

test_that("the criterion is a deterministic function of theta; the gradient matches it", {
  pc <- lmm_pieces(y ~ x + (1 | a) + (1 | b), crossed)
  it <- engine_of(pc, iterative)
  theta <- c(0.7, 0.5)
  f1 <- engine_crit(it, theta, TRUE)
  expect_identical(engine_crit(it, theta, TRUE), f1)          # fixed probes
  g <- engine_gradient(it, theta, TRUE)
  se <- attr(.Call(C_lmm_iter_info, it), "grad_se")
  h <- 1e-5
  fd <- vapply(1:2, function(i) {
    e <- replace(numeric(2), i, h)
    (engine_crit(it, theta + e, TRUE) - engine_crit(it, theta - e, TRUE)) / (2 * h)
  }, 1)
  # the Hutchinson gradient of the log-determinant and the quadrature's derivative agree to
  # within the gradient's Monte Carlo error
  expect_true(all(abs(attr(g, "gradient") - fd) < 3 * se + 1e-3))
  # another seed: other probes, another criterion (within the Monte Carlo error)
  it2 <- engine_of(pc, lmm_control(probe_seed = 2L))
  f2 <- engine_crit(it2, theta, TRUE)
  expect_false(f2 == f1)
  expect_lt(abs(f2 - f1), 6 * .Call(C_lmm_iter_info, it)[["ld_se"]])
})

test_that("a term with few levels joins the dense tail: exact when one large term is left", {
  # Penicillin (lme4 1.1-31: theta 1.539675554, 3.512518860; REML criterion 330.860589):
  # sample's 6 levels are eliminated exactly, plate's block is diagonal -- nothing stochastic
  pen <- ref_data("Penicillin")
  fi <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = iterative)
  fe <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = direct)
  expect_equal(unname(fi$theta), c(1.539675554, 3.512518860), tolerance = 1e-4)
  expect_equal(fi$crit, 330.860589, tolerance = 1e-8)
  expect_equal(fi$theta, fe$theta, tolerance = 1e-6)
  expect_equal(fi$iterative$crit_se, 0)
  # with no tail both terms are stochastic: 30 coordinates, so the Monte Carlo error is
  # relatively large -- the estimates stay within about 1% and the error is reported
  fs <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen,
            control = lmm_control(backend = "iterative", exact_levels = 0))
  expect_gt(fs$iterative$crit_se, 0)
  expect_equal(fs$theta, fe$theta, tolerance = 1e-2)
  expect_equal(fs$beta, fe$beta, tolerance = 1e-8)
})

test_that("three crossed terms, one small (InstEval's shape): targets met", {
  set.seed(3)
  n <- 20000
  d <- data.frame(a = factor(sample(1500, n, TRUE)), b = factor(sample(400, n, TRUE)),
                  c = factor(sample(15, n, TRUE)), x = rnorm(n))
  d$y <- 1 + 0.5 * d$x + rnorm(1500, sd = 0.6)[d$a] + rnorm(400, sd = 0.4)[d$b] +
    rnorm(15, sd = 0.3)[d$c] + rnorm(n)
  fi <- lmm(y ~ x + (1 | a) + (1 | b) + (1 | c), d, control = iterative)
  fe <- lmm(y ~ x + (1 | a) + (1 | b) + (1 | c), d, control = direct)
  expect_targets(fi, fe)
  expect_true(fi$optinfo$converged)
})

test_that("weights, ML, head and tail together: parts exact, log-determinant within its error", {
  set.seed(6)
  n <- 8000
  d <- data.frame(a = factor(sample(600, n, TRUE)), b = factor(sample(300, n, TRUE)),
                  c = factor(sample(20, n, TRUE)), x = rnorm(n), w = runif(n, 0.5, 2))
  d$y <- 1 + 0.5 * d$x + rnorm(600, sd = 0.7)[d$a] + rnorm(300, sd = 0.4)[d$b] +
    rnorm(20, sd = 0.3)[d$c] + rnorm(n) / sqrt(d$w)
  pc <- lmm_pieces(y ~ x + (1 | a) + (1 | b) + (1 | c), d, weights = w, REML = FALSE)
  ex <- engine_of(pc)
  it <- engine_of(pc, iterative)
  theta <- c(0.7, 0.4, 0.3)
  se <- engine_solution(ex, theta, FALSE)
  si <- engine_solution(it, theta, FALSE)
  info <- .Call(C_lmm_iter_info, it)
  expect_identical(unname(info[c("tail", "head")]), c(20, 1))     # c in the tail, a the head
  expect_equal(si$sumlogw, se$sumlogw, tolerance = 1e-12)
  expect_equal(si$pwrss, se$pwrss, tolerance = 1e-10)
  expect_equal(si$ldRX2, se$ldRX2, tolerance = 1e-10)
  expect_lt(max(abs(si$u - se$u)), 1e-6)
  expect_lt(abs(si$ldL2 - se$ldL2), 4 * si$ld_se)
  ge <- attr(engine_gradient(ex, theta, FALSE), "gradient")
  gi <- engine_gradient(it, theta, FALSE)
  gse <- attr(.Call(C_lmm_iter_info, it), "grad_se")
  expect_equal(attr(gi, "gradient")[3], ge[3], tolerance = 1e-6)  # the tail's term: exact
  expect_true(all(abs(attr(gi, "gradient") - ge)[1:2] < 4 * gse[1:2]))
  fe <- lmm(y ~ x + (1 | a) + (1 | b) + (1 | c), d, weights = w, REML = FALSE, control = direct)
  fi <- lmm(y ~ x + (1 | a) + (1 | b) + (1 | c), d, weights = w, REML = FALSE, control = iterative)
  expect_targets(fi, fe)
})

test_that("the fit says it is approximate, with the probes and the Monte Carlo error", {
  pen <- ref_data("Penicillin")
  fs <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen,
            control = lmm_control(backend = "iterative", exact_levels = 0, probes = 40L))
  expect_identical(fs$iterative$probes, 40L)
  out <- capture.output(print(fs))
  line <- grep("Approximate fit (iterative backend)", out, fixed = TRUE, value = TRUE)
  expect_length(line, 1L)
  expect_match(line, "40 probes")
  expect_match(line, sprintf("Monte Carlo standard error of the criterion %.2g", fs$iterative$crit_se),
               fixed = TRUE)
  expect_length(grep("Approximate fit", capture.output(print(summary(fs))), fixed = TRUE), 1L)
  fe <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  expect_length(grep("Approximate fit", capture.output(print(fe)), fixed = TRUE), 0L)
})

test_that("methods that need the exact factor say so; the others work", {
  pen <- ref_data("Penicillin")
  fi <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen, control = iterative)
  expect_error(ranef(fi, condVar = TRUE), "not available for a fit with the iterative backend")
  expect_error(profile(fi), "profile\\(\\): not available for a fit with the iterative backend")
  re <- ranef(fi)                                      # the modes, without variances
  expect_null(attr(re$plate, "postVar"))
  fe <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  expect_equal(re$plate[[1]], ranef(fe)$plate[[1]], tolerance = 1e-5)
  expect_equal(unname(predict(fi)), unname(predict(fe)), tolerance = 1e-6)
  # lmm_objective() of an iterative fit evaluates with its backend
  f <- lmm_objective(fi)
  expect_equal(f(fi$theta), fi$crit, tolerance = 1e-10)
})

test_that("backend = 'iterative' refuses what it does not handle, by name", {
  sleep <- ref_data("sleepstudy")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), sleep, control = iterative,
                   correlation = nlme::corAR1(form = ~ 1 | Subject)),
               "does not support residual correlation or variance structures")
  expect_error(lmm_control(backend = "cg"), "'backend' must be one of")
  expect_error(lmm_control(probes = 1), "'probes' must be at least 2")
  expect_error(lmm_control(iter_tol = 0.5), "'iter_tol'")
  expect_error(lmm_control(memory_limit = -1), "'memory_limit'")
})

test_that("backend = 'auto' goes iterative when the exact factor exceeds the memory limit", {
  expect_identical(lmm_control()$backend, "auto")
  expect_null(lmm_control()$memory_limit)
  pen <- ref_data("Penicillin")
  f <- diameter ~ 1 + (1 | plate) + (1 | sample)
  fa <- lmm(f, pen)
  expect_null(fa$iterative)
  # the bound without the symbolic analysis: 32 (q + p + 1)^2 bytes, q = 24 + 6
  pc <- lmm_pieces(f, pen)
  expect_identical(exact_memory_bound(pc$X, pc$reterms), 32 * 32^2)
  # the layout's prediction (src/layout.c) decides beyond the bound
  need <- layout_prediction(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)[["bytes"]]
  expect_gt(need, 1000)
  expect_message(fb <- lmm(f, pen, control = lmm_control(memory_limit = need / 2)),
                 "using the iterative backend")
  expect_false(is.null(fb$iterative))
  expect_silent(fc <- lmm(f, pen, control = lmm_control(memory_limit = need * 2)))
  expect_null(fc$iterative)
  # "direct" stops at the limit instead
  expect_error(lmm(f, pen, control = lmm_control(memory_limit = need / 2, backend = "direct")),
               "memory_limit")
})

test_that("vector-valued terms: exact in the tail, stochastic (within its error) outside it", {
  set.seed(4)
  n <- 4000
  d <- data.frame(a = factor(sample(200, n, TRUE)), b = factor(sample(40, n, TRUE)), x = rnorm(n))
  d$y <- 1 + 0.5 * d$x + rnorm(200, sd = 0.8)[d$a] + rnorm(200, sd = 0.3)[d$a] * d$x +
    rnorm(40, sd = 0.5)[d$b] + rnorm(40, sd = 0.4)[d$b] * d$x + rnorm(n)
  # (1 + x | b): 80 columns in the tail, a's block diagonal: the iterative criterion is exact
  form <- y ~ x + (1 | a) + (1 + x | b)
  pc <- lmm_pieces(form, d)
  ex <- engine_of(pc)
  it <- engine_of(pc, iterative)
  theta <- c(0.8, 0.5, -0.1, 0.4)
  ge <- engine_gradient(ex, theta, TRUE)
  gi <- engine_gradient(it, theta, TRUE)
  expect_equal(as.numeric(gi), as.numeric(ge), tolerance = 1e-10)
  expect_equal(attr(gi, "gradient"), attr(ge, "gradient"), tolerance = 1e-6)
  # both vector-valued: (1 + x | b) in the tail, (1 + x | a) the head, eliminated exactly by
  # its 2 x 2 blocks -- nothing is left to the probes, the iterative fit is the exact one
  form2 <- y ~ x + (1 + x | a) + (1 + x | b)
  fe <- lmm(form2, d, control = direct)
  fi <- lmm(form2, d, control = iterative)
  expect_equal(fi$iterative$crit_se, 0)
  expect_equal(fi$theta, fe$theta, tolerance = 1e-6)
  expect_equal(fi$crit, fe$crit, tolerance = 1e-10)
  expect_lt(max(abs(fi$beta - fe$beta) / sqrt(diag(fe$vcov_beta))), 1e-4)
  pc2 <- lmm_pieces(form2, d)
  it2 <- engine_of(pc2, iterative)
  ex2 <- engine_of(pc2)
  expect_lt(max(abs(engine_solution(it2, fe$theta, TRUE)$u - engine_solution(ex2, fe$theta, TRUE)$u)),
            1e-6)
})

test_that("one vector-valued term (sleepstudy's growth curves): the head's blocks make it exact", {
  # lme4 1.1-31, lmer(Reaction ~ Days + (Days | Subject), sleepstudy): REML theta
  sleep <- ref_data("sleepstudy")
  fi <- lmm(Reaction ~ Days + (Days | Subject), sleep, control = iterative)
  expect_equal(unname(fi$theta), c(0.9667417739674123, 0.0151690588960361, 0.2309099532077945),
               tolerance = 1e-5)
  expect_equal(fi$iterative$crit_se, 0)
  expect_equal(fi$iterative$theta_se, c(0, 0, 0))
  pc <- lmm_pieces(Reaction ~ Days + (Days | Subject), sleep)
  ex <- engine_of(pc)
  it <- engine_of(pc, iterative)
  theta <- c(0.9, 0.1, 0.3)
  ge <- engine_gradient(ex, theta, TRUE)
  gi <- engine_gradient(it, theta, TRUE)
  expect_equal(as.numeric(gi), as.numeric(ge), tolerance = 1e-10)
  expect_equal(attr(gi, "gradient"), attr(ge, "gradient"), tolerance = 1e-8)
  expect_identical(unname(.Call(C_lmm_iter_info, it)[c("head", "iters_probe")]), c(1, 0))
  # the start from moments (each subject's own line, Cov(b) - s2w mean G^-1), not the identity
  # template: within 9% of the optimum (rounded to 3 digits, as moments.c's)
  expect_equal(theta_moments(it, TRUE), c(1.05, 0.0165, 0.251))
  expect_lte(fi$optinfo$feval, 12L)                     # 11 (from the identity: 16)
})

# Random slopes crossed with a second factor (issue 11's vector-term target): g1's 1 + x
# (2 x 2 blocks) is the head, g2's 300 levels are solved by CG on the Schur complement with the
# block-diagonal preconditioner, and log|S| is estimated by the probes.
sim_slopes <- function(n1, n2, n, slope2 = FALSE, seed = 21) {
  set.seed(seed)
  g1 <- sample.int(n1, n, TRUE)
  g2 <- sample.int(n2, n, TRUE)
  x <- rnorm(n)
  b0 <- rnorm(n1, sd = 0.8)
  b1 <- 0.25 * b0 + rnorm(n1, sd = 0.3)
  c0 <- rnorm(n2, sd = 0.5)
  c1 <- if (slope2) 0.3 * c0 + rnorm(n2, sd = 0.25) else numeric(n2)
  y <- 1 + 0.5 * x + b0[g1] + b1[g1] * x + c0[g2] + c1[g2] * x + rnorm(n)
  data.frame(y = y, x = x, g1 = factor(g1), g2 = factor(g2))
}

test_that("(1 + x | g1) + (1 | g2), 1,000 x 300 levels: the iterative fit meets the targets", {
  d <- sim_slopes(1000, 300, 30000)
  form <- y ~ x + (1 + x | g1) + (1 | g2)
  fi <- lmm(form, d, control = iterative)
  fe <- lmm(form, d, control = direct)
  # lme4 1.1-31's lmer() on the same data (REML; its optimiser stops within ~3e-5 of lmmc's)
  lme4_theta <- c(0.7950780847, 0.2088154934, 0.3061269318, 0.4922415780)
  expect_equal(unname(fe$theta), lme4_theta, tolerance = 1e-4)
  expect_equal(unname(fi$theta), lme4_theta, tolerance = 1e-4)
  expect_equal(unname(fi$beta), c(0.9890180207, 0.5137769136), tolerance = 1e-6)
  expect_equal(fi$sigma, 0.9990469412, tolerance = 1e-6)
  expect_targets(fi, fe)
  expect_lt(max(abs(fi$theta / fe$theta - 1)), 1e-4)         # measured: 2e-5 (before: 1e-2)
  it <- fi$iterative
  expect_identical(it$probes, 30L)
  expect_true(is.finite(it$crit_se) && it$crit_se > 0 && it$crit_se < 2)
  expect_true(all(is.finite(it$theta_se) & it$theta_se > 0))
  expect_true(all(abs(fi$theta - fe$theta) < 4 * it$theta_se))
  expect_lt(abs(fi$crit - fe$crit), 5 * it$crit_se)
  expect_equal(it$unconverged, 0)
  expect_lt(it$iterations, 30)
  expect_true(fi$optinfo$converged)
  out <- capture.output(print(fi))
  expect_length(grep("Approximate fit \\(iterative backend\\).*30 probes", out), 1L)
  # the conditional modes at the same theta: exact to the CG tolerance
  pc <- lmm_pieces(form, d)
  ex <- engine_of(pc)
  ie <- engine_of(pc, iterative)
  se <- engine_solution(ex, fe$theta, TRUE)
  si <- engine_solution(ie, fe$theta, TRUE)
  expect_lt(max(abs(si$u - se$u)), 1e-6)
  expect_equal(si$pwrss, se$pwrss, tolerance = 1e-10)
  expect_identical(unname(.Call(C_lmm_iter_info, ie)[c("head", "tail")]), c(1, 0))
})

test_that("vector-valued terms on both sides of the head: criterion and gradient within their errors", {
  d <- sim_slopes(600, 150, 12000, slope2 = TRUE)
  form <- y ~ x + (1 + x | g1) + (1 + x | g2)
  pc <- lmm_pieces(form, d)
  ex <- engine_of(pc)
  lse <- c()
  for (K in c(30L, 200L)) {
    ie <- engine_of(pc, lmm_control(probes = K))
    for (REML in c(TRUE, FALSE)) {
      theta <- c(0.8, 0.2, 0.3, 0.5, 0.1, 0.25)
      ge <- engine_gradient(ex, theta, REML)
      gi <- engine_gradient(ie, theta, REML)
      info <- .Call(C_lmm_iter_info, ie)
      gse <- attr(info, "grad_se")
      lse[[as.character(K)]] <- info[["ld_se"]]
      expect_lt(abs(as.numeric(gi) - as.numeric(ge)), 4 * info[["ld_se"]])
      # the Hutchinson gradient with the block preconditioner's control variate: unbiased
      expect_true(all(abs(attr(gi, "gradient") - attr(ge, "gradient")) < 4 * gse))
      si <- engine_solution(ie, theta, REML)
      expect_lt(max(abs(si$u - engine_solution(ex, theta, REML)$u)), 1e-6)
    }
  }
  # the Monte Carlo error falls as 1 / sqrt(K): 200 probes against 30 (sqrt(30 / 200) = 0.39;
  # measured 0.24 / 0.42, the SE from 30 probes being itself rough)
  expect_lt(lse[["200"]], 0.6 * lse[["30"]])
})

test_that("live: lme4 agrees with the iterative fit of the crossed design", {
  skip_if_not_installed("lme4")
  f4 <- lme4::lmer(y ~ x + (1 | a) + (1 | b), crossed,
                   control = lme4::lmerControl(calc.derivs = FALSE))
  fi <- lmm(y ~ x + (1 | a) + (1 | b), crossed, control = iterative)
  expect_lt(max(abs(fi$theta / lme4::getME(f4, "theta") - 1)), 1e-3)
  expect_lt(max(abs(fi$beta - lme4::fixef(f4)) / sqrt(diag(as.matrix(vcov(f4))))), 0.01)
})

test_that("live: lme4 agrees with the iterative fit of random slopes crossed", {
  skip_if_not_installed("lme4")
  d <- sim_slopes(1000, 300, 30000)
  f4 <- lme4::lmer(y ~ x + (1 + x | g1) + (1 | g2), d,
                   control = lme4::lmerControl(calc.derivs = FALSE))
  fi <- lmm(y ~ x + (1 + x | g1) + (1 | g2), d, control = iterative)
  expect_lt(max(abs(fi$theta / lme4::getME(f4, "theta") - 1)), 1e-3)
  expect_lt(max(abs(fi$beta - lme4::fixef(f4)) / sqrt(diag(as.matrix(vcov(f4))))), 0.01)
})

test_that("live: InstEval, the iterative fit against the exact one", {
  skip_if_not_installed("lme4")
  skip_on_cran()
  data("InstEval", package = "lme4", envir = environment())
  form <- y ~ service + (1 | s) + (1 | d) + (1 | dept:service)
  fi <- lmm(form, InstEval, control = iterative)
  fe <- lmm(form, InstEval, control = direct)
  expect_targets(fi, fe)
})
