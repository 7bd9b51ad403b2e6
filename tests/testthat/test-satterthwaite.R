# Satterthwaite df and t tests of fixed effects (R/satterthwaite.R), checked against
# analytic results and against lmerTest 3.1-3 (lme4 1.1-31): reference tables recorded below,
# live comparisons when lmerTest is installed.
#
# Our optimum and lme4's differ in theta by ~1e-5 relative on flat criteria, and df depend on
# theta through second derivatives, so recorded tables are compared to 1e-4 (estimates, SEs,
# t) and 2e-3 (df, p-values; p-values below 1e-12 are compared on an absolute floor).  The live
# tests plug lme4's estimates into the fit and then require agreement to 1e-6: that checks
# the method itself, free of the optimiser.

expect_coef_table <- function(actual, ref, tol = 1e-4, df_tol = 2e-3) {
  expect_identical(dimnames(actual), dimnames(ref))
  for (col in c("Estimate", "Std. Error", "t value"))
    expect_close(actual[, col], ref[, col], tol = tol, scale = 1e-8, what = col)
  expect_close(actual[, "df"], ref[, "df"], tol = df_tol, what = "df")
  expect_close(actual[, "Pr(>|t|)"], ref[, "Pr(>|t|)"], tol = df_tol, scale = 1e-12,
               what = "Pr(>|t|)")
}

hsb_data <- function() {
  ma <- as.data.frame(nlme::MathAchieve)
  school <- as.data.frame(nlme::MathAchSchool)
  ma$Sector <- school$Sector[match(as.character(ma$School), as.character(school$School))]
  ma$School <- factor(as.character(ma$School))
  ma
}

## ---- numerical derivatives -------------------------------------------------------------

test_that("Richardson Hessian and Jacobian reproduce analytic derivatives", {
  f <- function(x) x[1]^2 * x[2] + exp(x[2]) + sin(x[1] * x[3])
  x <- c(0.7, -0.3, 2)
  H <- matrix(c(2 * x[2] - x[3]^2 * sin(x[1] * x[3]), 2 * x[1],
                cos(x[1] * x[3]) - x[1] * x[3] * sin(x[1] * x[3]),
                2 * x[1], exp(x[2]), 0,
                cos(x[1] * x[3]) - x[1] * x[3] * sin(x[1] * x[3]), 0,
                -x[1]^2 * sin(x[1] * x[3])), 3, 3)
  expect_equal(richardson_hessian(f, x), H, tolerance = 1e-8)
  g <- function(x) c(x[1] * x[2], exp(x[1]) - x[3]^3)
  J <- rbind(c(x[2], x[1], 0), c(exp(x[1]), 0, -3 * x[3]^2))
  expect_equal(richardson_jacobian(g, x), J, tolerance = 1e-9)
  # a zero coordinate gets the absolute step eps, not d * 0
  expect_equal(richardson_hessian(function(x) cosh(x[1]), 0), matrix(1), tolerance = 1e-5)
})

test_that("the df of an F statistic combine the t statistics' df as in lmerTest", {
  E <- 10 / 8 + 20 / 18
  expect_equal(satterthwaite_combine(c(10, 20)), 2 * E / (E - 2))
  expect_equal(satterthwaite_combine(c(7, 7, 7)), 7)
  expect_equal(satterthwaite_combine(c(1.5, 30)), 2)
  expect_equal(satterthwaite_combine(12.5), 12.5)
})

test_that("the varpar deviance profiles to the fitted criterion", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  engine <- engine_setup(fit$y, fit$X, fit$reterms, fit$weights, fit$offset)
  dev <- varpar_deviance(unname(c(fit$theta, fit$sigma)), engine, TRUE, fit$n, fit$p)
  expect_equal(dev, fit$crit, tolerance = 1e-10)
  # sigma-hat minimises D over sigma: D is larger on either side
  expect_gt(varpar_deviance(c(fit$theta, 1.01 * fit$sigma), engine, TRUE, fit$n, fit$p), dev)
  expect_gt(varpar_deviance(c(fit$theta, 0.99 * fit$sigma), engine, TRUE, fit$n, fit$p), dev)
  expect_equal(matrix(varpar_vcov_beta(c(fit$theta, fit$sigma), engine, TRUE), 2, 2),
               unname(fit$vcov_beta), tolerance = 1e-10)
})

## ---- exact results for balanced designs -------------------------------------------------

test_that("balanced one-way and random-slope designs give df = groups - 1", {
  # The intercept's variance depends on the between-batch mean square only: df = 6 - 1.
  fit <- lmm(Yield ~ 1 + (1 | Batch), ref_data("Dyestuff"))
  expect_equal(unname(satterthwaite_coef_table(fit)[, "df"]), 5, tolerance = 1e-4)
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  expect_equal(unname(satterthwaite_coef_table(fit)[, "df"]), c(17, 17), tolerance = 1e-4)
})

## ---- recorded lmerTest tables -------------------------------------------------------------

test_that("coefficient tables match lmerTest: sleepstudy (REML and ML)", {
  sleep_coef <- structure(c(251.4051048, 10.46728596, 6.824596695, 1.545789644, 
    16.99972629, 16.99998373, 36.83808965, 6.771481489, 1.171558111e-17, 
    3.26382447e-06), dim = c(2L, 5L), dimnames = list(c("(Intercept)", 
    "Days"), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"
    )))
  sleep_ml_coef <- structure(c(251.4051048, 10.46728596, 6.632122742, 1.502230214, 
    18.00113477, 18.00017693, 37.90718517, 6.967830805, 1.263751938e-18, 
    1.652227905e-06), dim = c(2L, 5L), dimnames = list(c("(Intercept)", 
    "Days"), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"
    )))
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  tab <- satterthwaite_coef_table(fit)
  expect_coef_table(tab, sleep_coef)
  # the t statistics are lme4's, with lmerTest's p-values pt(|t|, df)
  expect_equal(tab[, "t value"], fit$beta / sqrt(diag(fit$vcov_beta)))
  expect_equal(tab[, "Pr(>|t|)"], 2 * pt(-abs(tab[, "t value"]), tab[, "df"]))
  fit_ml <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"), REML = FALSE)
  expect_coef_table(satterthwaite_coef_table(fit_ml), sleep_ml_coef)
})

test_that("coefficient tables match lmerTest: ham, High School and Beyond, Orthodont", {
  ham_coef <- structure(c(5.853658537, -0.756097561, 0.1219512195, 0.0487804878, 
    -0.0487804878, -0.2536585366, 0.6585365854, 0.5609756098, 0.1463414634, 
    -0.143902439, 0.05304878049, 0.5012195122, 0.4237804878, -0.8335365854, 
    -0.5859756098, -1.021341463, 0.3571164061, 0.4869705168, 0.4869705168, 
    0.4869705168, 0.2850048996, 0.5081855549, 0.4030577944, 0.4030577944, 
    0.4030577944, 0.6929711938, 0.6929711938, 0.6929711938, 0.4055690822, 
    0.5735612965, 0.5735612965, 0.5735612965, 422.9898929, 334.3677698, 
    334.3677698, 334.3677698, 315.9999849, 422.9898943, 315.999985, 
    315.999985, 315.999985, 334.3677677, 334.3677678, 334.3677678, 
    315.9999849, 315.999985, 315.999985, 315.9999849, 16.3914579, 
    -1.552655725, 0.2504283428, 0.1001713371, -0.1711566639, -0.4991455072, 
    1.633851509, 1.391799433, 0.363078113, -0.207660059, 0.07655264888, 
    0.7232905446, 1.044903338, -1.453265048, -1.021644266, -1.780701504, 
    4.202726027e-47, 0.1214513708, 0.802409917, 0.9202683345, 0.864210126, 
    0.6179363761, 0.1032858889, 0.1649619943, 0.7167892818, 0.8356208249, 
    0.9390252135, 0.4700070597, 0.2968662928, 0.147142515, 0.3077307903, 
    0.07592183624), dim = c(16L, 5L), dimnames = list(c("(Intercept)", 
    "Product2", "Product3", "Product4", "Information2", "Gender2", 
    "Product2:Information2", "Product3:Information2", "Product4:Information2", 
    "Product2:Gender2", "Product3:Gender2", "Product4:Gender2", "Information2:Gender2", 
    "Product2:Information2:Gender2", "Product3:Information2:Gender2", 
    "Product4:Information2:Gender2"), c("Estimate", "Std. Error", 
    "df", "t value", "Pr(>|t|)")))
  hsb_coef <- structure(c(11.79799405, 2.951174376, 2.138170449, -1.31284922, 
    0.2285158722, 0.1406087004, 0.3413462225, 0.2119959648, 155.1103218, 
    6843.10692, 148.0143356, 6719.698286, 51.6287728, 20.98856164, 
    6.263934703, -6.192802876, 1.322083826e-99, 7.722211485e-95, 
    3.867487968e-09, 6.259083822e-10), dim = 4:5, dimnames = list(
        c("(Intercept)", "SES", "SectorCatholic", "SES:SectorCatholic"
        ), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"
        )))
  orth_coef <- structure(c(16.340625, 0.784375, 1.032102273, -0.3048295455, 
    0.9813122367, 0.07750110468, 1.537420805, 0.1214208957, 103.986361, 
    79.00000007, 103.986361, 79.00000018, 16.65181008, 10.12082348, 
    0.6713206099, -2.510519657, 4.193843221e-31, 6.441814773e-16, 
    0.5035048739, 0.01409745038), dim = 4:5, dimnames = list(c("(Intercept)", 
    "age", "SexFemale", "age:SexFemale"), c("Estimate", "Std. Error", 
    "df", "t value", "Pr(>|t|)")))
  ham <- ref_data("ham")
  fit <- lmm(Informed.liking ~ Product * Information * Gender + (1 | Consumer) +
               (1 | Consumer:Product), data = ham)
  expect_coef_table(satterthwaite_coef_table(fit), ham_coef)
  fit <- lmm(MathAch ~ SES * Sector + (1 | School), hsb_data())
  expect_coef_table(satterthwaite_coef_table(fit), hsb_coef)
  fit <- lmm(distance ~ age * Sex + (1 | Subject), ref_data("Orthodont"))
  expect_coef_table(satterthwaite_coef_table(fit), orth_coef)
})

## ---- contest() -------------------------------------------------------------------------------

test_that("contest() gives t tests per row and a joint F test", {
  fit <- lmm(distance ~ age * Sex + (1 | Subject), ref_data("Orthodont"))
  tab <- satterthwaite_coef_table(fit)
  L <- rbind(age = c(0, 1, 0, 0), int = c(0, 0, 0, 1))
  t2 <- contest(fit, L, joint = FALSE)
  expect_identical(rownames(t2), c("age", "int"))
  expect_identical(names(t2), c("Estimate", "Std. Error", "df", "t value", "lower", "upper",
                                "Pr(>|t|)"))
  expect_equal(unname(as.matrix(t2[, c(1:4, 7)])), unname(tab[c(2, 4), ]), tolerance = 1e-10)
  half <- qt(0.975, t2$df) * t2[["Std. Error"]]
  expect_equal(t2$upper - t2$lower, 2 * half)
  # a single row as an F test: F = t^2 with the same df
  f1 <- contest(fit, L[2, ])
  expect_equal(f1[["F value"]], tab[4, "t value"]^2, tolerance = 1e-10)
  expect_equal(f1$DenDF, tab[4, "df"], tolerance = 1e-10)
  # rhs shifts the estimate
  expect_equal(contest(fit, L[1, ], rhs = 1, joint = FALSE)[["t value"]],
               (tab[2, "Estimate"] - 1) / tab[2, "Std. Error"], tolerance = 1e-10)
  # two rows jointly: the type III test of age and age:Sex together is a 2-df F test
  f2 <- contest(fit, L)
  expect_identical(f2$NumDF, 2L)
  b <- fit$beta[c(2, 4)]
  expect_equal(f2[["F value"]],
               drop(t(b) %*% solve(fit$vcov_beta[c(2, 4), c(2, 4)]) %*% b) / 2, tolerance = 1e-10)
  # a redundant row does not change the F test
  f3 <- contest(fit, rbind(L, L[1, ] + L[2, ]))
  expect_equal(f3[["F value"]], f2[["F value"]], tolerance = 1e-8)
  expect_equal(f3$NumDF, 2L)
})

test_that("contest() with no contrast gives tables with no rows", {
  fit <- lmm(distance ~ age + (1 | Subject), ref_data("Orthodont"))
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    for (L in list(numeric(0), matrix(0, 0, 2))) {
      f <- contest(fit, L, ddf = ddf)
      expect_identical(dim(f), c(0L, 6L))
      expect_identical(names(f), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"))
      t <- contest(fit, L, joint = FALSE, ddf = ddf)
      expect_identical(dim(t), c(0L, 7L))
      expect_identical(names(t), c("Estimate", "Std. Error", "df", "t value", "lower", "upper",
                                   "Pr(>|t|)"))
    }
  }
  expect_identical(ncol(contest(fit, numeric(0), joint = FALSE, confint = FALSE)), 5L)
  # an all-zero contrast has nothing to test either
  expect_identical(nrow(contest(fit, c(0, 0))), 0L)
})

test_that("contest() checks its arguments", {
  fit <- lmm(distance ~ age + (1 | Subject), ref_data("Orthodont"))
  expect_error(contest(fit, c(1, 0, 0)), "2 columns")
  expect_error(contest(fit, c(NA, 1)), "NA")
  expect_error(contest(fit, rbind(c(1, 0), c(0, 1)), rhs = 1:3), "one value per row")
  expect_error(contest(fit, c(0, 1), ddf = "KR"), "should be one of")
})

## ---- live comparison with lmerTest ---------------------------------------------------------

# The fit with lme4's estimates (theta, sigma, beta, Var(beta)) put in: the Satterthwaite
# computations then see exactly lmerTest's inputs.
with_lme4_estimates <- function(fit, m) {
  fit$theta[] <- lme4::getME(m, "theta")
  fit$sigma <- stats::sigma(m)
  fit$beta[] <- lme4::fixef(m)
  fit$vcov_beta[] <- as.matrix(stats::vcov(m))
  fit
}

test_that("at lme4's estimates Var(varpar), the Jacobian and the t tests are lmerTest's", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("lme4")
  sleep <- ref_data("sleepstudy")
  ham <- ref_data("ham")
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), sleep, TRUE),
    list(Reaction ~ Days + (Days | Subject), sleep, FALSE),
    list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep, TRUE),
    list(Informed.liking ~ Product * Information * Gender + (1 | Consumer) +
           (1 | Consumer:Product), ham, TRUE),
    list(MathAch ~ SES * Sector + (1 | School), hsb_data(), TRUE)
  )
  for (cs in cases) {
    m <- suppressMessages(lmerTest::lmer(cs[[1]], data = cs[[2]], REML = cs[[3]]))
    fit <- with_lme4_estimates(lmm(cs[[1]], data = cs[[2]], REML = cs[[3]]), m)
    sat <- satterthwaite_setup(fit)
    expect_close(sat$vcov_varpar, m@vcov_varpar, tol = 1e-6, scale = max(abs(m@vcov_varpar)),
                 what = "vcov_varpar")
    expect_close(unlist(sat$jacobian), unlist(m@Jac_list), tol = 1e-6,
                 scale = max(abs(unlist(m@Jac_list))), what = "Jacobian")
    ref <- stats::coef(summary(m))
    tab <- satterthwaite_coef_table(fit, sat)
    expect_close(tab[, "df"], ref[, "df"], tol = 1e-6, what = "df")
    expect_close(tab[, "Pr(>|t|)"], ref[, "Pr(>|t|)"], tol = 1e-5, scale = 1e-200,
                 what = "Pr(>|t|)")
    # and with our own estimates, as in the recorded tests
    expect_coef_table(satterthwaite_coef_table(lmm(cs[[1]], data = cs[[2]], REML = cs[[3]])), ref)
  }
})

## ---- residual structures ------------------------------------------------------------------

test_that("a residual structure fixed at the identity gives the plain fit's Satterthwaite df", {
  fits <- identity_fits()
  plain <- fits$plain
  ref <- satterthwaite_coef_table(plain)
  for (key in c("ar1", "vi")) {
    f <- fits[[key]]
    expect_false(any(f$residual$free))         # fixed entries are not variance parameters
    expect_equal(length(varpar_of(f)), 2L)
    same <- at_estimates_of(f, plain)
    expect_equal(satterthwaite_coef_table(same), ref, tolerance = 1e-8)
    expect_equal(as.data.frame(anova(same)), as.data.frame(anova(plain)), tolerance = 1e-8)
    # the fits themselves: their optima differ by ~1e-6 relative in theta
    expect_equal(satterthwaite_coef_table(f), ref, tolerance = 1e-5)
  }
  expect_equal(unname(ref[, "df"]), c(103.98638, 79, 103.98638, 79), tolerance = 1e-6)
})

test_that("Satterthwaite df with corAR1 x varIdent match a dense brute-force computation", {
  cs <- ar1_vi_case()
  fit <- cs$fit
  X <- cs$X
  y <- cs$y
  p <- ncol(X)
  n <- length(y)
  # -2 REML log-likelihood over par = (theta, phi, delta, sigma), sigma not profiled
  reml <- function(par) {
    V <- cs$V(par)
    Vi <- solve(V)
    XVX <- crossprod(X, Vi %*% X)
    r <- y - X %*% solve(XVX, crossprod(X, Vi %*% y))
    as.numeric(determinant(V)$modulus + determinant(XVX)$modulus + crossprod(r, Vi %*% r) +
                 (n - p) * log(2 * pi))
  }
  vcov_beta <- function(par) as.vector(solve(crossprod(X, solve(cs$V(par), X))))
  expect_equal(reml(cs$par), fit$crit, tolerance = 1e-10)
  C <- matrix(vcov_beta(cs$par), p)
  expect_equal(C, unname(as.matrix(vcov(fit))), tolerance = 1e-10)
  A <- 2 * solve(rich_hessian(reml, cs$par))
  J <- rich_jacobian(vcov_beta, cs$par)
  df <- vapply(seq_len(p), function(j) {
    l <- as.numeric(seq_len(p) == j)
    g <- apply(J, 2L, function(col) sum(l * (matrix(col, p) %*% l)))
    2 * C[j, j]^2 / sum(g * (A %*% g))
  }, 0)
  tab <- summary(fit)$coefficients
  expect_equal(unname(tab[, "df"]), df, tolerance = 1e-6)
  # recorded (lmmc, 2026-12; the brute force gives 53.12202165 31.11185728 25.13687119)
  expect_equal(unname(tab[, "df"]), c(53.12202, 31.11186, 25.13687), tolerance = 1e-6)
  expect_equal(unname(tab[, "Pr(>|t|)"]),
               2 * pt(abs(tab[, "t value"]), df, lower.tail = FALSE), tolerance = 1e-6,
               ignore_attr = TRUE)
  # the F test of one coefficient is the t test squared, on the same df
  a <- anova(fit)
  expect_equal(a["age", "DenDF"], df[2], tolerance = 1e-6)
  expect_equal(a["age", "F value"], tab["age", "t value"]^2, tolerance = 1e-8)
  ct <- contest(fit, c(0, 1, 0), joint = FALSE)
  expect_equal(ct$df, df[2], tolerance = 1e-6)
})

test_that("summary, anova and contest of residual fits carry Satterthwaite df", {
  fit <- lmm(distance ~ age * Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")),
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  s <- summary(fit)
  expect_match(s$methTitle, "Satterthwaite")
  expect_equal(unname(s$coefficients[, "df"]), c(55.68985, 36.10373, 55.68985, 36.10373),
               tolerance = 1e-5)
  a <- anova(fit)
  expect_equal(a$DenDF, c(36.10373, 55.68985, 36.10373), tolerance = 1e-5)
  expect_equal(a[["F value"]], c(112.8452, 0.4813083, 6.614536), tolerance = 1e-5)
  joint <- contest(fit, rbind(c(0, 1, 0, 0), c(0, 0, 0, 1)))
  expect_equal(joint$NumDF, 2)
  expect_true(joint$DenDF > 30 && joint$DenDF < 40)
  # Kenward-Roger is available too (test-kenward-roger.R), with df of the same order
  kr_df <- summary(fit, ddf = "Kenward-Roger")$coefficients[, "df"]
  expect_true(all(abs(kr_df / s$coefficients[, "df"] - 1) < 0.1))
})

test_that("Satterthwaite df with corCAR1 near 1 (BodyWeight) match the dense brute force, REML and ML", {
  # phi = 0.97 per day over lags up to 64 days: the criterion is far from quadratic at 10% of
  # phi, so the residual parameters' steps are kept local (finite_steps()).
  bw <- as.data.frame(nlme::BodyWeight)
  same <- outer(bw$Rat, bw$Rat, `==`)
  lag <- abs(outer(bw$Time, bw$Time, `-`))
  ref <- list(c(13.973841441, 9.339502881), c(17.15808917, 14.82233598))   # brute force below
  for (REML in c(TRUE, FALSE)) {
    fit <- lmm(weight ~ Time * Diet + (1 | Rat), bw, REML = REML,
               correlation = nlme::corCAR1(form = ~ Time | Rat))
    y <- bw$weight
    X <- model.matrix(fit)
    ZZ <- tcrossprod(as.matrix(model.matrix(fit, type = "random")))
    n <- length(y)
    p <- ncol(X)
    V <- function(par) par[3]^2 * (par[1]^2 * ZZ + ifelse(same, par[2]^lag, 0))
    dev <- function(par) {
      Vm <- V(par)
      Vi <- solve(Vm)
      XVX <- crossprod(X, Vi %*% X)
      r <- y - X %*% solve(XVX, crossprod(X, Vi %*% y))
      as.numeric(determinant(Vm)$modulus + if (REML) determinant(XVX)$modulus else 0) +
        as.numeric(crossprod(r, Vi %*% r)) + (n - if (REML) p else 0) * log(2 * pi)
    }
    vcov_beta <- function(par) as.vector(solve(crossprod(X, solve(V(par), X))))
    par <- c(unname(fit$theta), unname(residual_parameters(fit)$phi), fit$sigma)
    expect_equal(dev(par), fit$crit, tolerance = 1e-10)
    h <- 1e-4 * pmax(abs(par), 0.1)
    A <- 2 * solve(rich_hessian(dev, par, h))
    J <- rich_jacobian(vcov_beta, par, h)
    C <- matrix(vcov_beta(par), p)
    df <- vapply(1:2, function(j) {
      l <- as.numeric(seq_len(p) == j)
      g <- apply(J, 2L, function(col) sum(l * (matrix(col, p) %*% l)))
      2 * C[j, j]^2 / sum(g * (A %*% g))
    }, 0)
    got <- unname(summary(fit)$coefficients[1:2, "df"])
    # a ridge (phi -> 1 stands in for the intercept's variance): the brute force's own
    # Richardson Hessian moves by 1e-4 relative with 1e-6 moves of the optimum along it
    expect_equal(got, df, tolerance = 2e-4)
    expect_equal(got, ref[[2L - REML]], tolerance = 2e-4)
  }
})

test_that("a residual parameter estimated at its bound counts as fixed in varpar", {
  fit <- lmm(distance ~ age + (1 | Subject), as.data.frame(ref_data("Orthodont")),
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_equal(varpar_layout(fit)$free, TRUE)
  expect_length(varpar_of(fit), 3L)                         # theta, rho, sigma
  upper <- fit$residual$spec$upper
  skip_if(!length(upper) || !is.finite(upper[1L]), "the residual parameters are unbounded")
  fit$residual$rho[1L] <- upper[1L]
  expect_equal(varpar_layout(fit)$free, FALSE)
  expect_length(varpar_of(fit), 2L)
})
