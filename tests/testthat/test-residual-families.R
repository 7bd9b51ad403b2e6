# Fits with nlme's correlation families (R/residual-correlation.R, src/cor_*.c) against nlme::lme
# and nlme::gls on nlme's data: logLik (1e-6 relative, never below nlme's), the structure's
# parameters (1e-4).  Reference values recorded from nlme 3.1-160 (R 4.2.2); live comparisons
# run the same fits in nlme.

ovary_fit <- function(cor, fun = lmm) {
  if (identical(fun, lmm))
    lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), nlme::Ovary,
        correlation = cor)
  else nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), nlme::Ovary,
                 random = ~ 1 | Mare, correlation = cor)
}
bw_fit <- function(cor, fun = lmm) {
  if (identical(fun, lmm))
    lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight, correlation = cor)
  else nlme::lme(weight ~ Time * Diet, nlme::BodyWeight, random = ~ Time | Rat,
                 correlation = cor)
}

family_cases <- list(
  arma11 = list(fit = function(f) ovary_fit(nlme::corARMA(p = 1, q = 1), f),
                logLik = -772.175022, par = c(Phi1 = 0.7962951, Theta1 = -0.2703217)),
  arma20 = list(fit = function(f) ovary_fit(nlme::corARMA(p = 2, q = 0), f),
                logLik = -772.598554, par = c(Phi1 = 0.5386105, Phi2 = 0.1446712)),
  arma10 = list(fit = function(f) ovary_fit(nlme::corARMA(p = 1, q = 0), f),
                logLik = -775.223349, par = c(Phi1 = 0.6074423)),
  exp = list(fit = function(f) bw_fit(nlme::corExp(form = ~ Time), f),
             logLik = -566.029590, par = c(range = 3.650438)),
  exp_nugget = list(fit = function(f) bw_fit(nlme::corExp(form = ~ Time, nugget = TRUE), f),
                    logLik = -563.884139, par = c(range = 17.15021, nugget = 0.1756130)),
  gaus = list(fit = function(f) bw_fit(nlme::corGaus(form = ~ Time), f),
              logLik = -567.616678, par = c(range = 1.537351)),
  ratio = list(fit = function(f) bw_fit(nlme::corRatio(form = ~ Time), f),
               logLik = -566.874720, par = c(range = 1.479409)),
  spher = list(fit = function(f) bw_fit(nlme::corSpher(form = ~ Time), f),
               logLik = -567.616678, par = c(range = 4.268360)),
  lin = list(fit = function(f) bw_fit(nlme::corLin(form = ~ Time), f),
             logLik = -567.616678, par = c(range = 2.898597)))

expect_family_fit <- function(f, logLik, par, what) {
  expect_true(f$optinfo$converged, label = what)
  expect_gte(c(stats::logLik(f)) - logLik, -1e-6 * abs(logLik))
  expect_equal(c(stats::logLik(f)), logLik, tolerance = 1e-6, label = what)
  expect_equal(f$residual$phi[names(par)], par, tolerance = 1e-4, label = what)
}

test_that("ARMA and spatial correlation fits match nlme::lme (recorded)", {
  for (name in names(family_cases)) {
    cs <- family_cases[[name]]
    expect_family_fit(cs$fit(lmm), cs$logLik, cs$par, name)
  }
})

test_that("corSymm and corCompSymm fits match nlme::gls / nlme::lme (recorded)", {
  od <- nlme::Orthodont
  f <- lmm(distance ~ age + Sex, od, correlation = nlme::corSymm(form = ~ 1 | Subject))
  expect_family_fit(f, -215.098402,
                    c(`cor(1,2)` = 0.6018625, `cor(1,3)` = 0.6324552, `cor(1,4)` = 0.4788260,
                      `cor(2,3)` = 0.5552043, `cor(2,4)` = 0.6807841, `cor(3,4)` = 0.7144456),
                    "Orthodont gls corSymm")
  expect_output(print(f), "Correlation Structure: General")
  f <- lmm(distance ~ age + Sex + (1 | Subject), od, correlation = nlme::corCompSymm())
  expect_equal(c(logLik(f)), -218.756254, tolerance = 1e-8)   # rho and the intercept's variance
  expect_output(print(f), "Compound symmetry")                 # are confounded: logLik only
})

test_that("print shows nlme's structure lines", {
  f <- family_cases$arma11$fit(lmm)
  expect_output(print(f), "Correlation Structure: ARMA\\(1,1\\)")
  expect_output(print(f), "Formula: ~1 \\| Mare")
  f <- family_cases$arma10$fit(lmm)                 # nlme treats ARMA(1, 0) as AR(1)
  expect_output(print(f), "Phi1")
})

test_that("live: the families match nlme", {
  skip_if_not_installed("nlme")
  for (name in names(family_cases)) {             # logLik, structure, fixed effects, sigma
    cs <- family_cases[[name]]
    g <- cs$fit(nlme::lme)
    f <- cs$fit(lmm)
    est <- coef(g$modelStruct$corStruct, unconstrained = FALSE)
    expect_family_fit(f, c(logLik(g)), est[names(cs$par)], name)
    expect_equal(unname(fixef(f)), unname(nlme::fixef(g)), tolerance = 1e-4, label = name)
    expect_equal(f$sigma, g$sigma, tolerance = 1e-4, label = name)
  }
})

test_that("nlme's book examples: Orthodont corSymm x varIdent, Wheat2 spatial, Spruce corAR1", {
  # Pinheiro & Bates (2000), ch. 5 scripts (nlme/inst/scripts/ch05.R), recorded from nlme.
  f <- lmm(distance ~ Sex * I(age - 11), nlme::Orthodont,
           correlation = nlme::corSymm(form = ~ 1 | Subject),
           variance = nlme::varIdent(form = ~ 1 | age))
  expect_family_fit(f, -212.2734001, c(`cor(1,2)` = 0.5681970, `cor(3,4)` = 0.7396207),
                    "Orthodont corSymm + varIdent")
  expect_equal(f$residual$delta[c("10", "12", "14")],
               c(`10` = 0.8788792847, `12` = 1.0744596405, `14` = 0.9586878413), tolerance = 1e-4)
  wheat <- list(
    spher = list(nlme::corSpher(c(28, 0.2), form = ~ latitude + longitude, nugget = TRUE),
                 -533.9315427, c(range = 27.457477674, nugget = 0.209314353)),
    ratio = list(nlme::corRatio(c(12.5, 0.2), form = ~ latitude + longitude, nugget = TRUE),
                 -532.6388882, c(range = 13.4613359226, nugget = 0.1935803036)),
    gaus = list(nlme::corGaus(form = ~ latitude + longitude, nugget = TRUE),
                -533.5508569, c(range = 10.7006062556, nugget = 0.2614214541)))
  for (name in names(wheat)) {
    w <- wheat[[name]]
    f <- lmm(yield ~ variety - 1, nlme::Wheat2, correlation = w[[1]])   # one group of 224 rows
    expect_family_fit(f, w[[2]], w[[3]], paste("Wheat2", name))
  }
  f <- suppressMessages(lmm(logSize ~ days + (1 | Tree), nlme::Spruce,
                            correlation = nlme::corAR1()))
  expect_family_fit(f, -55.79111103, c(Phi = 0.9623095469), "Spruce corAR1")
})

test_that("a spatial model whose range runs off to infinity says it has no optimum", {
  # Wheat2 with corExp and a nugget from nlme's default start: the likelihood increases toward
  # range -> Inf, nugget -> 0 (nlme's gls stops with "false convergence (8)")
  expect_warning(f <- lmm(yield ~ variety - 1, nlme::Wheat2,
                          correlation = nlme::corExp(form = ~ latitude + longitude, nugget = TRUE)),
                 "first-order conditions")
  expect_false(f$optinfo$converged)
  expect_gt(f$residual$phi[["range"]], 1e4)
})

test_that("AR(p) groups at consecutive times are whitened by the band, the others densely", {
  # src/residual_band.c: Durbin-Levinson rows (p + 1 entries) where times are consecutive,
  # dense rows where a group has gaps; the criterion and its gradient against dense algebra.
  set.seed(3)
  d <- do.call(rbind, lapply(1:30, function(i) {
    t <- if (i %% 3 == 0) c(1:5, 8:12) else 1:10
    data.frame(id = i, t = t, x = rnorm(length(t)))
  }))
  d$y <- 1 + d$x + rnorm(30)[d$id] + rnorm(nrow(d))
  d$id <- factor(d$id)
  pieces <- lmm_pieces(y ~ x + (1 | id), d)
  spec <- residual_spec(nlme::corARMA(form = ~ t | id, p = 2), NULL, d, pieces)
  e <- engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset, spec)
  par <- c(0.8, 0.3)
  theta <- 0.7
  kappa <- tanh(par / 2)                                # nlme's map: partial autocorrelations
  acf <- stats::ARMAacf(ar = c(kappa[1] * (1 - kappa[2]), kappa[2]), lag.max = 20)
  same <- outer(d$id, d$id, `==`)
  Vr <- ifelse(same, acf[abs(outer(d$t, d$t, `-`)) + 1], 0)
  want <- resid_dense_crit(d$y, pieces$X, dense_Z(pieces$reterms),
                           dense_Lambda(theta, pieces$reterms), Vr, TRUE)
  expect_equal(engine_crit(e, theta, TRUE, par), want, tolerance = 1e-10)
  f <- function(x) engine_crit(e, x[1], TRUE, x[2:3])
  num <- vapply(1:3, function(i) {
    h <- 1e-5; xp <- xm <- c(theta, par); xp[i] <- xp[i] + h; xm[i] <- xm[i] - h
    (f(xp) - f(xm)) / (2 * h)
  }, 0)
  expect_equal(attr(engine_gradient(e, theta, TRUE, par), "gradient"), num, tolerance = 1e-6)
})

test_that("ARMA(p, q > 0) groups at consecutive times, nested in the random effects, are whitened by the innovations recursion, the others densely", {
  # src/residual_innovations.c: gap-free groups nested in the random effects by the innovations
  # algorithm (O(m) per group), groups with gaps or crossing levels of a term densely; the
  # criterion and its gradient in (theta, rho) against dense algebra, with a varIdent.
  set.seed(7)
  d <- do.call(rbind, lapply(1:24, function(i) {
    t <- if (i %% 4 == 0) c(1:4, 7:12) else seq_len(6 + i %% 7)
    site <- if (i %% 5 == 0) rep(1:2, length.out = length(t)) else rep(i %% 3 + 1, length(t))
    data.frame(id = i, t = t, x = rnorm(length(t)), site = site,
               s = rep(c("a", "b", "c"), length.out = length(t)))
  }))
  d$y <- 1 + d$x + rnorm(24)[d$id] + rnorm(3)[d$site] + rnorm(nrow(d))
  d$id <- factor(d$id)
  d$site <- factor(d$site)
  pieces <- lmm_pieces(y ~ x + (1 | id) + (1 | site), d)
  Z <- dense_Z(pieces$reterms)
  same <- outer(d$id, d$id, `==`)
  lag <- abs(outer(d$t, d$t, `-`))
  for (pq in list(c(1, 1), c(2, 1), c(0, 2))) {
    p <- pq[1]; q <- pq[2]
    spec <- residual_spec(nlme::corARMA(form = ~ t | id, p = p, q = q),
                          nlme::varIdent(form = ~ 1 | s), d, pieces)
    e <- engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset, spec)
    rho <- c(c(0.9, -0.4)[seq_len(p)], c(0.7, 0.3)[seq_len(q)], 0.3, -0.2)
    theta <- c(0.7, 0.4)
    kappa <- tanh(rho[seq_len(p + q)] / 2)                # nlme's map: partial autocorrelations
    dl <- function(k, sgn) {                              # Durbin-Levinson (AR: -, MA: +)
      a <- numeric()
      for (j in seq_along(k)) a <- c(a + sgn * k[j] * rev(a), k[j])
      a
    }
    acf <- stats::ARMAacf(ar = dl(kappa[seq_len(p)], -1), ma = dl(kappa[p + seq_len(q)], 1),
                          lag.max = 20)
    crit_dense <- function(x) {
      r <- x[-(1:2)]
      s <- exp(engine_whitening(e, r)$logs)
      a <- stats::ARMAacf(ar = dl(tanh(r[seq_len(p)] / 2), -1),
                          ma = dl(tanh(r[p + seq_len(q)] / 2), 1), lag.max = 20)
      Vr <- ifelse(same, a[lag + 1], 0) * outer(s, s)
      resid_dense_crit(d$y, pieces$X, Z, dense_Lambda(x[1:2], pieces$reterms), Vr, TRUE)
    }
    label <- sprintf("ARMA(%d, %d)", p, q)
    want <- crit_dense(c(theta, rho))
    expect_equal(engine_crit(e, theta, TRUE, rho), want, tolerance = 1e-10, label = label)
    num <- vapply(seq_along(c(theta, rho)), function(i) {
      h <- 1e-5; xp <- xm <- c(theta, rho); xp[i] <- xp[i] + h; xm[i] <- xm[i] - h
      (crit_dense(xp) - crit_dense(xm)) / (2 * h)
    }, 0)
    g <- engine_gradient(e, theta, TRUE, rho)
    expect_equal(c(g), want, tolerance = 1e-10, label = label)
    expect_equal(attr(g, "gradient"), num, tolerance = 1e-6, label = label)
    # the engine's K: one entry per row of the recursive groups (ids neither gapped, 4 | i, nor
    # crossing sites, 5 | i), the lower triangle of the others
    Ki <- engine_whitening(e, rho, explicit = FALSE)
    m <- table(d$id)
    dense <- (1:24) %% 4 == 0 | (1:24) %% 5 == 0
    expect_true(Ki$implicit)
    expect_equal(length(Ki$Kx), sum(m[!dense]) + sum(m[dense] * (m[dense] + 1) / 2))
    expect_equal(Ki$logdet, engine_whitening(e, rho)$logdet, tolerance = 1e-12)
    # the explicit K (simulate, normalised residuals) is still the dense one: K'K = V^-1
    K <- engine_whitening(e, rho)
    Km <- matrix(0, nrow(d), nrow(d))
    Km[cbind(rep(seq_len(nrow(d)), diff(K$Kp)), K$Kj + 1)] <- K$Kx
    s <- exp(K$logs)
    expect_equal(crossprod(Km), solve(ifelse(same, acf[lag + 1], 0) * outer(s, s)),
                 tolerance = 1e-8, label = label)
  }
})

# ---- variance functions ----------------------------------------------------------------------------

test_that("variance functions match nlme: varPower, varConstPower, varExp, varComb, varFixed", {
  dial <- rate ~ (pressure + I(pressure^2) + I(pressure^3) + I(pressure^4)) * QB
  dial_re <- update(dial, . ~ . + (pressure + I(pressure^2) | Subject))
  cases <- list(
    list(lmm(dial_re, nlme::Dialyzer, variance = nlme::varPower(form = ~ pressure)),
         -306.0399226, c(power = 0.7493283686)),
    list(lmm(dial, nlme::Dialyzer, variance = nlme::varPower(form = ~ pressure),   # gls
             correlation = nlme::corAR1(0.771, form = ~ 1 | Subject)),
         -308.3373088, c(power = 0.5182385715), c(Phi = 0.7526037604)),
    list(lmm(dial_re, nlme::Dialyzer, variance = nlme::varConstPower(form = ~ pressure)),
         -305.9603476, c(const = 0.4153960698, power = 1.0652824049)),
    list(lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight,
             variance = nlme::varExp(form = ~ Time)),
         -575.8045659, c(expon = 0.001208080151)),
    list(lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont,
             variance = nlme::varComb(nlme::varIdent(form = ~ 1 | Sex),
                                      nlme::varPower(form = ~ age))),
         -209.9355166, c(A.Female = 0.4497050797, B.power = -0.3623932879)),
    list(lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight,
             variance = nlme::varPower(form = ~ Time | Diet),
             correlation = nlme::corCAR1(form = ~ Time)),
         -554.8402516, c(`1` = -0.16666722499, `2` = -0.09815389095, `3` = 0.02813896836),
         c(Phi = 0.7939153332)))
  for (i in seq_along(cases)) {
    cs <- cases[[i]]
    f <- cs[[1]]
    expect_true(f$optinfo$converged)
    expect_gte(c(logLik(f)) - cs[[2]], -1e-6 * abs(cs[[2]]))
    expect_equal(c(logLik(f)), cs[[2]], tolerance = 1e-6)
    expect_equal(residual_parameters(f)$variance[names(cs[[3]])], cs[[3]], tolerance = 1e-4)
    if (length(cs) > 3) expect_equal(residual_parameters(f)$phi, cs[[4]], tolerance = 1e-4)
  }
  expect_output(print(cases[[6]][[1]]), "Power of variance covariate, different strata")
  # lme's weights = ~ age: varFixed, the prior weights 1 / age
  f <- lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont, variance = ~ age)
  expect_equal(c(logLik(f)), -219.8657085, tolerance = 1e-8)
  expect_equal(f$weights, 1 / nlme::Orthodont$age)
})

test_that("live: variance functions match nlme::lme", {
  skip_if_not_installed("nlme")
  g <- nlme::lme(weight ~ Time * Diet, nlme::BodyWeight, ~ Time | Rat,
                 weights = nlme::varPower(form = ~ Time | Diet),
                 correlation = nlme::corCAR1(form = ~ Time))
  f <- lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight,
           variance = nlme::varPower(form = ~ Time | Diet),
           correlation = nlme::corCAR1(form = ~ Time))
  expect_gte(c(logLik(f)) - c(logLik(g)), -1e-6)
  expect_equal(c(logLik(f)), c(logLik(g)), tolerance = 1e-6)
  expect_equal(unname(residual_parameters(f)$variance),
               unname(coef(g$modelStruct$varStruct, unconstrained = FALSE)), tolerance = 1e-4)
  expect_equal(unname(fixef(f)), unname(nlme::fixef(g)), tolerance = 1e-4)
  expect_equal(f$sigma, g$sigma, tolerance = 1e-4)
})

test_that("varPower() on the fitted values (nlme's default) is nlme's fixed point", {
  # nlme refits with the covariate = the previous fit's fitted values until they settle
  f <- lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight, variance = nlme::varPower())
  expect_equal(c(logLik(f)), -570.9607109, tolerance = 1e-8)
  expect_gte(c(logLik(f)), -570.9607109 - 1e-6)
  expect_equal(residual_parameters(f)$variance, c(power = 0.5428417814), tolerance = 1e-4)
  expect_gt(f$optinfo$outer_iterations, 1L)
  expect_output(print(f), "Formula: ~fitted\\(.\\)")
  f <- lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight, variance = nlme::varPower(),
           correlation = nlme::corCAR1(form = ~ Time))
  expect_equal(c(logLik(f)), -560.5702088, tolerance = 1e-8)
  expect_equal(residual_parameters(f)$variance, c(power = 0.5943386868), tolerance = 1e-4)
  expect_equal(residual_parameters(f)$phi, c(Phi = 0.8149297107), tolerance = 1e-4)
  f <- lmm(rate ~ (pressure + I(pressure^2) + I(pressure^3) + I(pressure^4)) * QB,
           nlme::Dialyzer, variance = nlme::varPower())                    # gls
  expect_equal(c(logLik(f)), -357.1440735, tolerance = 1e-8)
  expect_equal(residual_parameters(f)$variance, c(power = 0.3951485296), tolerance = 1e-4)
})

test_that("simulate(newdata) draws residuals from the fitted structure rebuilt on the new rows", {
  od <- as.data.frame(nlme::Orthodont)
  f <- lmm(distance ~ age + Sex + (1 | Subject), od,
           correlation = nlme::corAR1(form = ~ age | Subject),
           variance = nlme::varIdent(form = ~ 1 | Sex))
  # on the fit's own rows: the same draws as without newdata
  expect_equal(unname(as.matrix(simulate(f, 3, seed = 5, newdata = od, re.form = NA))),
               unname(as.matrix(simulate(f, 3, seed = 5, re.form = NA))), tolerance = 1e-12)
  # the empirical covariance of 6000 draws for three subjects against sigma^2 (Z G Z' + S R S)
  nd <- od[od$Subject %in% c("M01", "F01", "M02"), ]
  S <- as.matrix(simulate(f, nsim = 6000, newdata = nd, re.form = NA, seed = 1))
  phi <- f$residual$phi[["Phi"]]
  d <- unname(f$residual$delta[as.character(nd$Sex)])
  same <- outer(nd$Subject, nd$Subject, `==`)
  V <- f$sigma^2 * (outer(d, d) * ifelse(same, phi^abs(outer(nd$age, nd$age, `-`)), 0) +
                      f$theta[[1]]^2 * same)
  expect_lt(max(abs(stats::cov(t(S)) - V)) / max(V), 0.06)
  # spatial correlation and a covariate variance function on new rows
  f2 <- lmm(weight ~ Time + (1 | Rat), nlme::BodyWeight, correlation = nlme::corExp(form = ~ Time),
            variance = nlme::varPower(form = ~ Time))
  expect_equal(dim(simulate(f2, 2, newdata = nlme::BodyWeight[1:22, ], seed = 2)), c(22L, 2L))
})

test_that("corAR1 over lags of 2 does not stay at the saddle phi = 0 (where nlme stops)", {
  # ages 8, 10, 12, 14: the criterion depends on phi^2, 4, ..., even in phi: phi = 0 is a
  # stationary point, here a saddle (nlme::lme stays there: logLik -207.6102, Phi1 = 0)
  f <- lmm(distance ~ age * Sex + (1 | Subject), nlme::Orthodont,
           correlation = nlme::corAR1(form = ~ age | Subject),
           variance = nlme::varIdent(form = ~ 1 | Sex))
  expect_true(f$optinfo$converged)
  expect_gt(c(logLik(f)), -207.6102 + 0.05)
  expect_gt(f$residual$phi[["Phi"]], 0.2)
  H <- satterthwaite_setup(f)$hessian
  expect_gt(min(eigen(H, symmetric = TRUE, only.values = TRUE)$values), 0)
})

test_that("Wafer with varPower(~ voltage): the mirrored start finds the better optimum", {
  # nlme::lme stops ("iteration limit reached"); with opt = "optim" it reaches logLik 258.2274
  # at power -5.227.  From the start power = 0 the quasi-Newton run ends at the local optimum
  # 151.49 (power 1.07); the restart at -1.07 reaches 258.233.
  # It ends at the criterion's rounding level: whether a quasi-Newton matrix is left there to
  # certify it, or the Newton decrement of a finite-difference Hessian (1.2e-10, below f's
  # rounding) does, depends on the last bits of the run (the level order and the dense kernels').
  W <- as.data.frame(nlme::Wafer)
  f <- suppressMessages(lmm(current ~ voltage + I(voltage^2) + (voltage + I(voltage^2) || Wafer) +
                              (voltage + I(voltage^2) || Wafer:Site), W,
                            variance = nlme::varPower(form = ~ voltage)))
  expect_true(f$optinfo$converged)
  expect_true(f$optinfo$hessian %in% c("BFGS", "finite differences"))
  expect_gt(f$optinfo$min_eigen, 0)
  expect_gte(c(logLik(f)), 258.2274)
  expect_equal(residual_parameters(f)$variance[["power"]], -5.2297, tolerance = 1e-3)
  expect_gte(f$optinfo$restarts, 1L)
})

test_that("live: each variance family's fixed effects and sigma match nlme::lme / gls", {
  skip_if_not_installed("nlme")
  dial <- rate ~ (pressure + I(pressure^2) + I(pressure^3) + I(pressure^4)) * QB
  pairs <- list(
    list(lmm(update(dial, . ~ . + (pressure + I(pressure^2) | Subject)), nlme::Dialyzer,
             variance = nlme::varConstPower(form = ~ pressure)),
         nlme::lme(dial, nlme::Dialyzer, ~ pressure + I(pressure^2),
                   weights = nlme::varConstPower(form = ~ pressure))),
    list(lmm(weight ~ Time * Diet + (Time | Rat), nlme::BodyWeight,
             variance = nlme::varExp(form = ~ Time)),
         nlme::lme(weight ~ Time * Diet, nlme::BodyWeight, ~ Time | Rat,
                   weights = nlme::varExp(form = ~ Time))),
    list(lmm(distance ~ age + Sex + (1 | Subject), nlme::Orthodont,
             variance = nlme::varComb(nlme::varIdent(form = ~ 1 | Sex),
                                      nlme::varPower(form = ~ age))),
         nlme::lme(distance ~ age + Sex, nlme::Orthodont, ~ 1 | Subject,
                   weights = nlme::varComb(nlme::varIdent(form = ~ 1 | Sex),
                                           nlme::varPower(form = ~ age)))),
    list(lmm(dial, nlme::Dialyzer, variance = nlme::varPower()),
         nlme::gls(dial, nlme::Dialyzer, weights = nlme::varPower())))
  for (pr in pairs) {
    f <- pr[[1]]
    g <- pr[[2]]
    expect_gte(c(logLik(f)) - c(logLik(g)), -1e-6 * abs(c(logLik(g))))
    expect_equal(unname(fixef(f)), unname(if (inherits(g, "gls")) coef(g) else nlme::fixef(g)),
                 tolerance = 1e-4)
    expect_equal(f$sigma, g$sigma, tolerance = 1e-4)
    expect_equal(unname(residual_parameters(f)$variance),
                 unname(coef(g$modelStruct$varStruct, unconstrained = FALSE)), tolerance = 1e-4)
  }
})
