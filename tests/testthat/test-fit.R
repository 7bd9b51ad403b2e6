# lmm_fit(): the optimum and the result object's fields (R/fit.R).

sleep <- readRDS(test_path("data", "sleepstudy.rds"))
penicillin <- readRDS(test_path("data", "Penicillin.rds"))

# conditional modes, their variances and Var(beta) at the fitted theta, against dense algebra
expect_solution_matches_dense <- function(fit) {
  ref <- dense_pls(fit$theta, fit$y - fit$offset, fit$X, fit$reterms, fit$weights, fit$REML)
  expect_equal(fit$crit, ref$crit, tolerance = 1e-10)
  expect_equal(unname(fit$beta), ref$beta, tolerance = 1e-8)
  expect_equal(fit$b, ref$b, tolerance = 1e-7)
  expect_equal(fit$sigma, ref$sigma, tolerance = 1e-10)
  expect_equal(unname(fit$vcov_beta), ref$vcov, tolerance = 1e-8)
  pos <- 0L
  for (t in seq_along(fit$reterms)) {               # diagonal blocks of the conditional variance
    cv <- fit_condvar(fit)[[t]]; p <- dim(cv)[1]
    for (l in seq_len(dim(cv)[3])) {
      i <- pos + (l - 1L) * p + seq_len(p)
      expect_equal(cv[, , l], ref$condvar[i, i, drop = FALSE], tolerance = 1e-7, ignore_attr = TRUE)
    }
    pos <- pos + p * dim(cv)[3]
  }
  expect_equal(fit$fitted, drop(fit$X %*% fit$beta + dense_Z(fit$reterms) %*% fit$b + fit$offset),
               tolerance = 1e-10)
  expect_equal(unname(residuals(fit)), fit$y - fit$fitted)
}

test_that("sleepstudy (Days | Subject): optimum and solution", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_true(fit$crit <= 1743.62827195995 * (1 + 1e-12))          # lme4 1.1-31's REMLcrit
  expect_equal(unname(fit$theta), c(0.966743758624, 0.0151684983425, 0.230909228222),
               tolerance = 2e-4)
  expect_named(fit$theta, c("Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"))
  expect_equal(fit$lower, c(0, -Inf, 0))
  expect_true(fit$optinfo$converged)
  expect_gt(fit$optinfo$feval, 5)
  expect_solution_matches_dense(fit)
})

test_that("crossed ML fit with weights: solution matches dense algebra", {
  set.seed(11)
  d <- penicillin
  d$w <- runif(nrow(d), 0.5, 2)
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), d, weights = w, REML = FALSE)
  expect_false(fit$REML)
  expect_equal(fit$weights, d$w)
  expect_solution_matches_dense(fit)
})

test_that("the low-level entry fits the same model as the formula", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  X <- cbind("(Intercept)" = 1, Days = sleep$Days)
  terms <- list(list(group = sleep$Subject, Xt = X, name = "Subject"))
  low <- lmm_fit(sleep$Reaction, X, terms)
  expect_s3_class(low, "lmm")
  expect_equal(low$crit, fit$crit, tolerance = 1e-12)
  expect_equal(low$beta, fit$beta, tolerance = 1e-10)
  expect_equal(low$theta, fit$theta, tolerance = 1e-10)
})

test_that("starting values and bad inputs of lmm_fit", {
  X <- matrix(1, nrow(sleep), 1, dimnames = list(NULL, "(Intercept)"))
  terms <- list(list(group = sleep$Subject, Xt = X))
  fit <- lmm_fit(sleep$Reaction, X, terms, start = 0.5)
  fit1 <- lmm_fit(sleep$Reaction, X, terms)
  expect_equal(fit$crit, fit1$crit, tolerance = 1e-9)
  expect_error(lmm_fit(sleep$Reaction, X, terms, start = c(1, 2)), "'start' must be a numeric theta of length 1")
  expect_error(lmm_fit(c(sleep$Reaction[-1], NA), X, terms), "response y has NA")
  expect_error(lmm_fit(sleep$Reaction, X[-1, , drop = FALSE], terms), "X must be a numeric matrix with 180 rows")
  expect_error(lmm_fit(sleep$Reaction, X, terms, weights = rep(-1, 180)), "negative weights")
})

test_that("a singular fit converges and says so", {
  d2 <- readRDS(test_path("data", "Dyestuff2.rds"))
  expect_message(fit <- lmm(Yield ~ 1 + (1 | Batch), d2), "boundary \\(singular\\) fit")
  expect_equal(unname(fit$theta), 0)
  expect_equal(fit$crit, 161.8282778123, tolerance = 1e-9)
  expect_true(fit$optinfo$converged)
})

test_that("a small interior variance is not mistaken for the boundary (Penicillin, plate only)", {
  # The criterion falls monotonically from theta = 1 towards 0 but has its minimum at 0.15:
  # an optimiser that lands on the bound must look just inside it.  lme4 1.1-31's values.
  fit <- lmm(diameter ~ 1 + (1 | plate), penicillin)
  expect_equal(unname(fit$theta), 0.153543709126, tolerance = 1e-4)
  expect_true(fit$crit <= 613.256024007206 * (1 + 1e-10))
  expect_false(isSingular(fit))
  ml <- lmm(diameter ~ 1 + (1 | plate), penicillin, REML = FALSE)
  expect_equal(unname(ml$theta), 0.125095613329, tolerance = 1e-4)
  expect_true(ml$crit <= 611.629553138377 * (1 + 1e-10))
})

## ---- verbose: the optimiser's trace (src/optimise.c) --------------------------------------------

test_that("verbose = 1 prints every evaluation as lme4's verbose fits do; 0 prints nothing", {
  sleep <- ref_data("sleepstudy")
  out <- capture.output(fit <- lmm(Reaction ~ Days + (Days | Subject), sleep, verbose = 1))
  it <- grep("^iteration: [0-9]+$", out)
  expect_length(it, fit$optinfo$feval)
  expect_identical(out[it[1:2]], c("iteration: 1", "iteration: 2"))
  expect_true(all(grepl("^\tf\\(x\\) = [0-9.]+$", out[it + 1L])))
  expect_true(all(grepl("^\tx = \\([-0-9.e]+, [-0-9.e]+, [-0-9.e]+\\)$", out[it + 2L])))
  # the smallest criterion printed is the optimum (lme4's REMLcrit 1743.6282722)
  crit <- as.numeric(sub("^\tf\\(x\\) = ", "", out[it + 1L]))
  expect_equal(min(crit), REMLcrit(fit), tolerance = 1e-8)
  expect_close(min(crit), 1743.6282722, tol = 1e-6)
  # the trace does not change the fit
  quiet <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_identical(fit$theta, quiet$theta)
  expect_identical(capture.output(q2 <- lmm(Reaction ~ Days + (Days | Subject), sleep)),
                   character(0))
  expect_output(q3 <- lmm(Reaction ~ Days + (1 | Subject), sleep, verbose = TRUE), "iteration: 1")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), sleep, verbose = -1), "'verbose'")
  # the residual-structure optimiser traces too (x = theta and the residual parameters)
  data(Orthodont, package = "nlme", envir = environment())
  out <- capture.output(q4 <- lmm(distance ~ age + (1 | Subject), Orthodont,
                            correlation = nlme::corAR1(), verbose = 1))
  expect_true(length(grep("^\tx = \\([^,]+, [^,]+\\)$", out)) > 0L)
})

# ---- what is wrong, said plainly (issue 9, section 4) -------------------------------------------

test_that("a non-finite criterion names its cause: start, rank deficiency", {
  expect_error(lmm(Reaction ~ Days + (Days | Subject), sleep, start = c(1e8, 0, 1e8)),
               "not finite at the starting theta (1e+08, 0e+00, 1e+08)", fixed = TRUE)
  s2 <- sleep
  s2$D2 <- 2 * s2$Days + 1
  expect_error(lmm(Reaction ~ Days + D2 + (1 | Subject), s2,
                   control = lmm_control(check.rankX = "ignore")),
               "rank deficient (rank 2 < 3 columns)", fixed = TRUE)
})

test_that("REML with n <= p is refused before fitting", {
  d <- data.frame(y = c(1.2, 0.4, 2.2, 3.1), g = factor(c(1, 1, 2, 2)), x = 1:4, z = c(1, 3, 2, 7))
  ctl <- lmm_control(check.nobs.vs.nlev = "ignore", check.nobs.vs.nRE = "ignore")
  expect_error(lmm(y ~ x + z + I(x^2) + (1 | g), d, control = ctl),
               "REML needs more observations than fixed effects (n = 4, p = 4)", fixed = TRUE)
  X <- cbind(1, d$x, d$z, d$x^2)
  expect_error(lmm_fit(d$y, X, list(list(group = d$g)), control = ctl),
               "REML needs more observations", fixed = TRUE)
})

test_that("a response too large or too small for double precision is refused", {
  s2 <- sleep
  s2$Reaction <- s2$Reaction * 1e200
  expect_error(lmm(Reaction ~ Days + (Days | Subject), s2), "is too large (max |y| = 4.66e+202)",
               fixed = TRUE)
  s2$Reaction <- sleep$Reaction * 1e-170
  expect_error(lmm(Reaction ~ Days + (Days | Subject), s2), "varies too little", fixed = TRUE)
  expect_error(lmm_fit(sleep$Reaction * 1e200, cbind(1, sleep$Days),
                       list(list(group = sleep$Subject))), "is too large", fixed = TRUE)
  # y * 1e-100 is fine: the engine works in scaled coordinates (src/standardise.c)
  s2$Reaction <- sleep$Reaction * 1e-100
  fit <- lmm(Reaction ~ Days + (Days | Subject), s2)
  ref <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_equal(fit$theta, ref$theta, tolerance = 1e-6)
  expect_equal(fit$sigma * 1e100, ref$sigma, tolerance = 1e-6)
  expect_equal(fit$crit, ref$crit + (180 - 2) * log(1e-200), tolerance = 1e-10)
})

test_that("a response fitted exactly (constant within groups) warns that sigma is zero", {
  s2 <- sleep
  s2$Reaction <- as.numeric(s2$Subject) * 10
  warned <- character()
  fit <- withCallingHandlers(lmm(Reaction ~ Days + (1 | Subject), s2), warning = function(w) {
    warned <<- c(warned, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  expect_true(any(grepl("residual standard deviation is essentially zero", warned, fixed = TRUE)))
  # the criterion is unbounded below as sigma -> 0: the optimiser says it could not certify
  # the optimum (as lme4 reports a failed convergence check), and nothing else is said
  expect_true(all(grepl("essentially zero|lmm optimiser", warned)))
  expect_lt(fit$sigma, 1e-5)
  # lme4 1.1-31 warns too: "Model failed to converge with max|grad| = 0.938543 ..." and
  # "Model is nearly unidentifiable: very large eigenvalue", sigma 2.2e-6
  skip_if_not_installed("lme4")
  msgs <- character()
  withCallingHandlers(lme4::lmer(Reaction ~ Days + (1 | Subject), s2), warning = function(w) {
    msgs <<- c(msgs, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  expect_true(any(grepl("nearly unidentifiable", msgs)))
})

test_that("check.rankX = 'ignore' with aliased columns: the engine's round-off pivot is reported", {
  s2 <- sleep
  s2$D2 <- s2$Days * 0.1 + 0.3
  expect_warning(lmm(Reaction ~ Days + D2 + (1 | Subject), s2,
                     control = lmm_control(check.rankX = "ignore")),
                 "column 'D2' is a linear combination of the others", fixed = TRUE)
  p <- lmm_pieces(Reaction ~ Days + D2 + (1 | Subject), s2,
                  control = lmm_control(check.rankX = "ignore"))
  e <- engine_setup(p$y, p$X, p$reterms, p$weights, p$offset)
  piv <- engine_solution(e, 1, TRUE)$rx_pivot
  expect_lt(piv[3], 1e-7)
  expect_gt(min(piv[1:2]), 0.1)
  expect_silent(lmm(Reaction ~ Days + (1 | Subject), sleep))   # no false alarm
})
