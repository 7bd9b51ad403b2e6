# Standard errors and intervals of predictions (R/predict-se.R).  Checked against the marginal
# (GLS / BLUP) formulas computed densely: with V = Z G Z' + sigma^2 W^-1,
#   Var(beta-hat) = (X'V^-1 X)^-1,  Var(b~ - b) = G - G Z' P Z G,
#   Cov(beta-hat, b~ - b) = -(X'V^-1 X)^-1 X'V^-1 Z G,   P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1.

ss_fit <- function() lmm(Reaction ~ Days + (Days | Subject), data = methods_data("sleepstudy"))

marginal_pred_cov <- function(fit) {
  Z <- model.matrix(fit, type = "random")
  X <- fit$X
  Ts <- theta_templates(fit$theta, fit$reterms)
  G <- as.matrix(do.call(Matrix_bdiag, lapply(seq_along(Ts), function(t)
    kronecker(diag(nlevels(fit$reterms[[t]]$group)), fit$sigma^2 * tcrossprod(Ts[[t]])))))
  V <- Z %*% G %*% t(Z) + fit$sigma^2 * diag(1 / fit$weights)
  Vi <- solve(V)
  XVX <- solve(t(X) %*% Vi %*% X)
  P <- Vi - Vi %*% X %*% XVX %*% t(X) %*% Vi
  Cbb <- G - G %*% t(Z) %*% P %*% Z %*% G
  Cbe <- -XVX %*% t(X) %*% Vi %*% Z %*% G
  X %*% XVX %*% t(X) + Z %*% Cbb %*% t(Z) + X %*% Cbe %*% t(Z) + t(X %*% Cbe %*% t(Z))
}

Matrix_bdiag <- function(...) {                   # dense block diagonal
  blocks <- list(...)
  n <- sum(vapply(blocks, nrow, 1))
  out <- matrix(0, n, n)
  pos <- 0
  for (b in blocks) {
    i <- pos + seq_len(nrow(b))
    out[i, i] <- b
    pos <- pos + nrow(b)
  }
  out
}

test_that("the joint covariance gives vcov(beta) and, without X, lme4's condVar", {
  fit <- ss_fit()
  Minv <- joint_cov_inverse(fit)
  q <- fit$q
  expect_equal(fit$sigma^2 * Minv[q + 1:2, q + 1:2], vcov(fit), tolerance = 1e-10,
               ignore_attr = TRUE)
  expect_true(isSymmetric(Minv))
})

test_that("se.fit equals the marginal-formula prediction error (random slopes, weights)", {
  fit <- ss_fit()
  expect_equal(predict_se(fit), sqrt(diag(marginal_pred_cov(fit))), tolerance = 1e-9,
               ignore_attr = TRUE)
  expect_identical(names(predict_se(fit)), rownames(fit$frame))
  ss <- methods_data("sleepstudy")
  ss$w <- rep(c(1, 2, 0.5), 60)
  fw <- lmm(Reaction ~ Days + (1 | Subject), data = ss, weights = w)
  expect_equal(predict_se(fw), sqrt(diag(marginal_pred_cov(fw))), tolerance = 1e-9,
               ignore_attr = TRUE)
  # prediction of a new observation adds sigma^2 / w
  expect_equal(predict_se(fw, residual = TRUE)^2, predict_se(fw)^2 + fw$sigma^2 / ss$w,
               tolerance = 1e-12, ignore_attr = TRUE)
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), data = methods_data("Penicillin"))
  expect_equal(predict_se(pen), sqrt(diag(marginal_pred_cov(pen))), tolerance = 1e-9,
               ignore_attr = TRUE)
})

test_that("population-level predictions use vcov(beta) only", {
  fit <- ss_fit()
  X <- fit$X
  expect_equal(predict_se(fit, re.form = NA), sqrt(diag(X %*% vcov(fit) %*% t(X))),
               tolerance = 1e-10, ignore_attr = TRUE)
  expect_equal(predict_se(fit, re.form = ~ 0), predict_se(fit, re.form = NA))
})

test_that("newdata: fitted levels as on the fit's data, new levels add their prior variance", {
  fit <- ss_fit()
  d <- methods_data("sleepstudy")
  rows <- c(1, 15, 180)
  expect_equal(predict_se(fit, d[rows, ]), predict_se(fit)[rows], tolerance = 1e-12,
               ignore_attr = TRUE)
  nd <- data.frame(Days = c(0, 5), Subject = c("new", "new"))
  expect_error(predict_se(fit, nd), "new levels")
  x <- cbind(1, nd$Days)
  Tt <- theta_templates(fit$theta, fit$reterms)[[1]]
  Sigma <- fit$sigma^2 * tcrossprod(Tt)
  expect_equal(predict_se(fit, nd, allow.new.levels = TRUE)^2,
               diag(x %*% vcov(fit) %*% t(x)) + diag(x %*% Sigma %*% t(x)),
               tolerance = 1e-10, ignore_attr = TRUE)
  # a random-intercept-only re.form: Z has the intercept column only
  se_i <- predict_se(fit, d[rows, ], re.form = ~ (1 | Subject))
  expect_true(all(se_i > predict_se(fit, d[rows, ], re.form = NA)))
  expect_error(predict_se(fit, d, re.form = ~ (1 | nope)), "not a grouping factor")
})

test_that("predict_intervals() returns predict.lm's shapes around predict()'s values", {
  fit <- ss_fit()
  d <- methods_data("sleepstudy")[c(1, 100), ]
  out <- predict_intervals(fit, d, se.fit = TRUE)
  expect_named(out, c("fit", "se.fit", "residual.scale"))
  expect_equal(out$fit, predict(fit, d))
  ci <- predict_intervals(fit, d, interval = "confidence", level = 0.9)
  expect_identical(colnames(ci), c("fit", "lwr", "upr"))
  expect_equal(unname(ci[, "upr"] - ci[, "fit"]), unname(qnorm(0.95) * out$se.fit))
  pi <- predict_intervals(fit, d, interval = "prediction", se.fit = TRUE)
  expect_equal(unname(pi$fit[, "upr"] - pi$fit[, "fit"]),
               unname(qnorm(0.975) * sqrt(out$se.fit^2 + fit$sigma^2)))
  expect_identical(pi$se.fit, out$se.fit)
  expect_error(predict_intervals(fit, d, interval = "confidence", level = 95), "'level'")
})

test_that("NA rows in newdata give NA standard errors in place", {
  fit <- ss_fit()
  d <- methods_data("sleepstudy")[1:3, ]
  d$Days[2] <- NA
  se <- predict_se(fit, d)
  expect_length(se, 3L)
  expect_true(is.na(se[2]) && all(is.finite(se[-2])))
})

test_that("the engine's forward substitution equals the dense M^{-1}, and needs no size limit", {
  fit <- ss_fit()
  design <- lmmc:::prediction_design(fit, NULL, NULL, FALSE, stats::na.pass)
  dense <- lmmc:::quad_form_rows(design$A, design$P, lmmc:::joint_cov_inverse(fit))
  expect_equal(lmmc:::joint_quad_form(fit, design$A, design$P), dense, tolerance = 1e-10,
               ignore_attr = TRUE)
  old <- options(lmmc.se_fit_max_dim = 10)          # the dense limit no longer applies here
  on.exit(options(old))
  expect_equal(predict_se(fit), sqrt(fit$sigma^2 * dense), tolerance = 1e-10, ignore_attr = TRUE)
  pen <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), methods_data("Penicillin"))
  dp <- lmmc:::prediction_design(pen, NULL, NULL, FALSE, stats::na.pass)
  options(lmmc.se_fit_max_dim = 3000)
  expect_equal(lmmc:::joint_quad_form(pen, dp$A, dp$P),
               lmmc:::quad_form_rows(dp$A, dp$P, lmmc:::joint_cov_inverse(pen)), tolerance = 1e-10,
               ignore_attr = TRUE)
})

test_that("residual structures use the engine's sparse factor: no size limit", {
  fit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont,
             variance = nlme::varIdent(form = ~ 1 | Sex))
  se <- predict_se(fit)
  old <- options(lmmc.se_fit_max_dim = 10)       # the limit of the former dense path
  on.exit(options(old))
  expect_equal(predict_se(fit), se)
  expect_error(lmmc:::joint_cov_inverse(fit), "without a residual structure")
})

test_that("lmm_fit() objects: standard errors on the fit's data, newdata refused", {
  d <- methods_data("sleepstudy")
  fit <- ss_fit()
  f0 <- lmm_fit(fit$y, fit$X, lapply(fit$reterms, function(t) t[c("group", "Xt", "name", "cnms")]))
  expect_equal(predict_se(f0), predict_se(fit), tolerance = 1e-6, ignore_attr = TRUE)
  expect_error(predict_se(f0, d), "lmm_fit")
})

test_that("se.fit with a residual structure uses the whitened M: its fixed block is vcov(fit)", {
  # M = (B A)'(B A) + diag(I_q, 0) with B the corAR1 whitening; re.form = NA gives x M^-1 x' for
  # the fixed part only, which must equal x vcov(fit) x' / sigma^2 (the engine's Var(beta-hat)).
  # Before the fix M was formed from the prior weights alone (0.233 instead of 0.251 on this model).
  fit <- lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  X <- model.matrix(fit)
  se <- predict(fit, re.form = NA, se.fit = TRUE)$se.fit
  expect_equal(unname(se), unname(sqrt(rowSums((X %*% vcov(fit)) * X))), tolerance = 1e-8)
  # hat values sum to the effective number of parameters: trace of the whitened hat matrix
  h <- hatvalues(fit)
  expect_true(all(h > 0 & h < 1))
})

## ---- residual structures through the engine's factor -----------------------------------------

test_that("a residual structure fixed at the identity gives the plain fit's se.fit", {
  fits <- identity_fits()
  od <- as.data.frame(ref_data("Orthodont"))
  nd <- od[c(1, 30, 77), ]
  nd$Subject <- factor(c("M01", "new", "F02"))
  ref <- predict(fits$plain, nd, se.fit = TRUE, allow.new.levels = TRUE)
  for (key in c("ar1", "vi")) {
    same <- at_estimates_of(fits[[key]], fits$plain)
    out <- predict(same, nd, se.fit = TRUE, allow.new.levels = TRUE)
    expect_equal(out$se.fit, ref$se.fit, tolerance = 1e-10)
    expect_equal(predict_se(same), predict_se(fits$plain), tolerance = 1e-10)
    expect_equal(hatvalues(same), hatvalues(fits$plain), tolerance = 1e-10)
    # the fits themselves (optima ~1e-6 apart)
    expect_equal(predict(fits[[key]], nd, se.fit = TRUE, allow.new.levels = TRUE)$se.fit,
                 ref$se.fit, tolerance = 1e-5)
  }
})

test_that("se.fit with corAR1 x varIdent equals the dense Henderson formula", {
  cs <- ar1_vi_case()
  fit <- cs$fit
  # Var of the prediction errors: sigma^2 a M^-1 a', M = [Z theta, X]' Vr^-1 [Z theta, X] +
  # diag(I, 0), Vr the residual correlation/variance matrix over sigma^2
  A <- cbind(cs$Z * cs$par[1], cs$X)
  M <- crossprod(A, solve(cs$resid_cor(cs$par), A)) +
    diag(c(rep(1, ncol(cs$Z)), rep(0, ncol(cs$X))))
  se <- unname(fit$sigma * sqrt(rowSums((A %*% solve(M)) * A)))
  out <- predict(fit, se.fit = TRUE, interval = "confidence")
  expect_equal(unname(out$se.fit), se, tolerance = 1e-10)
  expect_equal(unname(se[1:4]), c(0.945153680658, 0.934099723654, 0.934099723654,
                                  0.945153680658), tolerance = 1e-8)    # recorded 2026-12-01,
  # at the certified optimum of the one engine (quasi-Newton over theta and rho)
  z <- qnorm(0.975)
  expect_equal(unname(out$fit[, "upr"] - out$fit[, "fit"]), z * se, tolerance = 1e-10)
  # population level: x Var(beta) x'
  pop <- predict(fit, re.form = NA, se.fit = TRUE)$se.fit
  expect_equal(unname(pop), unname(sqrt(rowSums((cs$X %*% vcov(fit)) * cs$X))),
               tolerance = 1e-10)
})

test_that("hat values of residual fits whose groups cross a random-effects term's levels", {
  # AR(1) along Subject, a crossed random term by age: each AR group spans every age level,
  # so the whitened design is built level by level (R/predict-se.R whitened_design)
  od <- as.data.frame(ref_data("Orthodont"))
  od$agef <- factor(od$age)
  fit <- lmm(distance ~ Sex + (1 | Subject) + (1 | agef), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  n <- fit$n
  B <- vapply(seq_len(n), function(j) residual_whiten(fit, as.numeric(seq_len(n) == j)),
              numeric(n))
  Z <- as.matrix(model.matrix(fit, type = "random"))
  lam <- rep(fit$theta, vapply(fit$reterms, function(t) nlevels(t$group), 1L))
  A <- cbind(sweep(Z, 2L, lam, `*`), fit$X)
  M <- crossprod(B %*% A) + diag(c(rep(1, ncol(Z)), rep(0, fit$p)))
  H <- B %*% A %*% solve(M, t(B %*% A))
  expect_equal(unname(hatvalues(fit)), diag(H), tolerance = 1e-8)
})

test_that("prediction intervals of a varIdent fit add the row's stratum variance sigma^2 delta^2", {
  od <- as.data.frame(ref_data("Orthodont"))
  od$band <- factor(ifelse(od$Sex == "Male", "m", "f"), c("m", "f"))    # Sex, as a stratum
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             variance = nlme::varIdent(form = ~ 1 | band))
  delta <- residual_parameters(fit)$delta
  expect_true(abs(log(delta[2])) > 0.05)                    # the strata differ
  d_row <- unname(delta[as.character(od$band)])
  se <- predict_se(fit)
  expect_equal(unname(predict_se(fit, residual = TRUE)^2),
               unname(se^2 + fit$sigma^2 * d_row^2), tolerance = 1e-12)
  nd <- od[c(1, 70), ]                                      # a boy and a girl
  se_new <- predict_se(fit, nd)
  expect_equal(unname(predict_se(fit, nd, residual = TRUE)^2),
               unname(se_new^2 + fit$sigma^2 * delta[c("m", "f")]^2), tolerance = 1e-12)
  pi <- predict(fit, nd, interval = "prediction")
  expect_equal(unname(pi[, "upr"] - pi[, "fit"]),
               unname(qnorm(0.975) * predict_se(fit, nd, residual = TRUE)), tolerance = 1e-12)
  nd$band <- factor("other")
  expect_error(predict(fit, nd, interval = "prediction"), "not in the fit: other")
})
