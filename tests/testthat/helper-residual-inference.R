# Shared by the tests of inference on fits with a residual structure (test-satterthwaite.R,
# test-predict-se.R, test-profile.R): Orthodont fits and a dense brute-force V.

# distance ~ age * Sex + (1 | Subject): plain, and with residual structures fixed at the identity
# (corAR1 with phi = 0 fixed; varIdent with the ratio fixed at 1), which must give the plain
# fit's inference exactly.
identity_fits <- function(REML = TRUE) {
  od <- as.data.frame(ref_data("Orthodont"))
  f <- distance ~ age * Sex + (1 | Subject)
  list(plain = lmm(f, od, REML = REML),
       ar1 = lmm(f, od, REML = REML,
                 correlation = nlme::corAR1(0, form = ~ 1 | Subject, fixed = TRUE)),
       vi = lmm(f, od, REML = REML,
                variance = nlme::varIdent(form = ~ 1 | Sex, fixed = c(Female = 1))))
}

# The residual fit at the plain fit's estimates (the two optimisers stop ~1e-6 apart in theta):
# every method then evaluates the same criterion at the same point.
at_estimates_of <- function(fit, plain) {
  fit[c("theta", "sigma", "beta", "vcov_beta", "u", "b", "fitted")] <-
    plain[c("theta", "sigma", "beta", "vcov_beta", "u", "b", "fitted")]
  fit
}

# Orthodont with corAR1 (positions within Subject) and varIdent by Sex, and its dense
# V(par) = sigma^2 (theta^2 Z Z' + S R S), par = (theta, phi, delta_Female, sigma): R_ij =
# phi^|pos_i - pos_j| within a subject, S = diag(delta of the row's sex).
ar1_vi_case <- function() {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject),
             variance = nlme::varIdent(form = ~ 1 | Sex))
  Z <- as.matrix(model.matrix(fit, type = "random"))
  n <- nrow(od)
  pos <- ave(seq_len(n), od$Subject, FUN = seq_along)
  same <- outer(od$Subject, od$Subject, `==`)
  lag <- abs(outer(pos, pos, `-`))
  female <- od$Sex == "Female"
  resid_cor <- function(par) {
    d <- ifelse(female, par[3], 1)
    outer(d, d) * ifelse(same, par[2]^lag, 0)
  }
  V <- function(par) par[4]^2 * (par[1]^2 * tcrossprod(Z) + resid_cor(par))
  rp <- residual_parameters(fit)
  list(fit = fit, data = od, y = od$distance, X = model.matrix(fit), Z = Z, V = V,
       resid_cor = resid_cor,
       par = c(unname(fit$theta), unname(rp$phi), unname(rp$delta[2]), fit$sigma))
}

# Richardson-extrapolated central differences (steps h and h/2): Jacobian columns and Hessian.
rich_jacobian <- function(f, x, h = 1e-3 * pmax(abs(x), 0.1)) {
  sapply(seq_along(x), function(i) {
    e <- h[i] * (seq_along(x) == i)
    d1 <- (f(x + e) - f(x - e)) / (2 * h[i])
    d2 <- (f(x + e / 2) - f(x - e / 2)) / h[i]
    (4 * d2 - d1) / 3
  })
}

rich_hessian <- function(f, x, h = 1e-3 * pmax(abs(x), 0.1)) {
  k <- length(x)
  second <- function(i, j, s) {
    ei <- s * h[i] * (seq_len(k) == i)
    ej <- s * h[j] * (seq_len(k) == j)
    (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * s^2 * h[i] * h[j])
  }
  H <- matrix(0, k, k)
  for (i in seq_len(k)) for (j in seq_len(i))
    H[i, j] <- H[j, i] <- (4 * second(i, j, 0.5) - second(i, j, 1)) / 3
  H
}
