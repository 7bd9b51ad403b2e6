# Residual structures (R/residual.R, src/residual*.c): AR(1), continuous-time AR(1) and varIdent,
# against a dense implementation of the criterion and against nlme::lme (recorded and live).

# ---- data and dense reference ------------------------------------------------------------------

# The benchmark's growth curve: n_id subjects x n_t times, random intercept and slope, AR(1) errors.
sim_growth <- function(n_id = 2500, n_t = 4, phi = 0.7, seed = 4) {
  set.seed(seed)
  id <- rep(seq_len(n_id), each = n_t)
  time <- rep(seq_len(n_t) - 1, n_id)
  arm <- rep(rep(0:1, length.out = n_id), each = n_t)
  b0 <- rnorm(n_id, 0, 2); b1 <- rnorm(n_id, 0, 0.5)
  e <- as.vector(apply(matrix(rnorm(n_id * n_t), n_t), 2, function(z) {
    out <- z; for (j in seq_along(z)[-1]) out[j] <- phi * out[j - 1] + sqrt(1 - phi^2) * z[j]; out }))
  y <- 10 + 1.5 * time + 0.5 * arm + 0.3 * time * arm + b0[id] + b1[id] * time + e
  data.frame(y, time, arm, id = factor(id))
}

# Vr = S R S: AR(1) phi^|t_i - t_j| within groups g, S = diag(delta[stratum] / sqrt(w)).
resid_dense_V <- function(g, t, phi, delta_row, w) {
  R <- outer(seq_along(g), seq_along(g), function(i, j) ifelse(g[i] == g[j], phi^abs(t[i] - t[j]), 0))
  s <- delta_row / sqrt(w)
  R * outer(s, s)
}

# A small design with crossed random effects, AR(1) groups crossing them, gaps, shuffled rows,
# prior weights and two variance strata.
small_data <- function() {
  set.seed(11)
  d <- expand.grid(t = c(1, 2, 4, 5, 6), id = factor(1:6))
  d$site <- factor(sample(letters[1:3], nrow(d), replace = TRUE))
  d$x <- rnorm(nrow(d))
  d$s <- factor(ifelse(as.integer(d$id) %% 2 == 0, "B", "A"), levels = c("A", "B"))
  d$y <- 1 + d$x + rnorm(6)[d$id] + rnorm(3)[d$site] + rnorm(nrow(d))
  d$w <- runif(nrow(d), 0.5, 2)
  d[sample(nrow(d)), ]
}

engine_of <- function(formula, data, correlation = NULL, variance = NULL, weights = NULL) {
  pieces <- lmm_pieces(formula, data, weights = weights)
  spec <- residual_spec(correlation, variance, data, pieces)
  list(pieces = pieces, spec = spec,
       engine = engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights,
                                   pieces$offset, spec))
}

# ---- the criterion against dense algebra -------------------------------------------------------

test_that("the criterion with AR(1) x varIdent x weights, crossed effects, equals the dense one", {
  d <- small_data()
  for (mode in 0:2) {                   # a pass over the rows / automatic / per-class pieces
  old <- options(lmmc.residual_pieces = mode)
  e <- engine_of(y ~ x + (1 | id) + (1 | site), d, nlme::corAR1(form = ~ t | id),
                 nlme::varIdent(form = ~ 1 | s), weights = d$w)
  options(old)
  p <- e$pieces
  Z <- dense_Z(p$reterms)
  for (REML in c(TRUE, FALSE)) {
    theta <- c(0.8, 0.5); phi <- 0.6; delta_B <- 1.7
    got <- engine_crit(e$engine, theta, REML, c(atanh(phi), log(delta_B)))
    Vr <- resid_dense_V(d$id, d$t, phi, c(A = 1, B = delta_B)[as.character(d$s)], d$w)
    want <- resid_dense_crit(p$y, p$X, Z, dense_Lambda(theta, p$reterms), Vr, REML)
    expect_equal(got, want, tolerance = 1e-10)
  }
  }
})

test_that("the gradient in (theta, rho) equals central differences of the criterion", {
  d <- small_data()
  d$tt <- d$t + (as.integer(d$id) %% 3) * 0.37 + d$t^2 / 10
  cases <- list(
    list(y ~ x + (1 | id) + (1 | site), nlme::corAR1(form = ~ t | id), nlme::varIdent(form = ~ 1 | s),
         c(0.8, 0.5), c(atanh(0.6), log(1.7))),
    list(y ~ x + (x | id), nlme::corCAR1(form = ~ tt | id), NULL, c(0.9, 0.2, 0.4), -0.3),
    list(y ~ x + (1 | site), nlme::corAR1(form = ~ t | id), NULL, 0.7, atanh(-0.45)))
  for (cs in cases) for (mode in c(0L, 2L)) {       # a pass over the rows / per-class pieces
    old <- options(lmmc.residual_pieces = mode)
    e <- engine_of(cs[[1]], d, cs[[2]], cs[[3]], weights = d$w)
    options(old)
    x <- c(cs[[4]], cs[[5]])
    nt <- length(cs[[4]])
    for (REML in c(TRUE, FALSE)) {
      f <- function(x) engine_crit(e$engine, x[seq_len(nt)], REML, x[-seq_len(nt)])
      g <- attr(engine_gradient(e$engine, x[seq_len(nt)], REML, x[-seq_len(nt)]), "gradient")
      num <- vapply(seq_along(x), function(i) {
        h <- 1e-4; xp <- x; xm <- x; xp[i] <- xp[i] + h; xm[i] <- xm[i] - h
        xp2 <- x; xm2 <- x; xp2[i] <- xp2[i] + 2 * h; xm2[i] <- xm2[i] - 2 * h
        (8 * (f(xp) - f(xm)) - (f(xp2) - f(xm2))) / (12 * h)
      }, 0)
      expect_equal(g, num, tolerance = 1e-7)
    }
  }
})

test_that("AR(1) groups crossing the random-effects factor and negative phi are handled", {
  d <- small_data()
  e <- engine_of(y ~ x + (1 | site), d, nlme::corAR1(form = ~ t | id))
  p <- e$pieces
  got <- engine_crit(e$engine, 0.7, TRUE, atanh(-0.45))
  Vr <- resid_dense_V(d$id, d$t, -0.45, 1, rep(1, nrow(d)))
  expect_equal(got, resid_dense_crit(p$y, p$X, dense_Z(p$reterms),
                                     dense_Lambda(0.7, p$reterms), Vr, TRUE), tolerance = 1e-10)
  expect_equal(engine_crit(e$engine, 0.7, TRUE, 40), Inf)   # tanh(40) = 1: outside the space
})

test_that("corCAR1 uses real time differences", {
  d <- small_data()
  d$tt <- d$t + (as.integer(d$id) %% 3) * 0.37 + d$t^2 / 10
  e <- engine_of(y ~ x + (1 | id), d, nlme::corCAR1(form = ~ tt | id))
  p <- e$pieces
  Vr <- resid_dense_V(d$id, d$tt, 0.55, 1, rep(1, nrow(d)))
  lag <- e$spec$correlation$engine$dopt                 # the typical lag (R/residual.R)
  expect_equal(engine_crit(e$engine, 0.9, FALSE, qlogis(0.55^lag)),
               resid_dense_crit(p$y, p$X, dense_Z(p$reterms), dense_Lambda(0.9, p$reterms),
                                Vr, FALSE), tolerance = 1e-10)
})

# ---- nlme's examples: recorded references (nlme 3.1-162) ---------------------------------------

nlme_ref <- list(
  ovary = list(logLik = -775.223348784, phi = 0.6074422773, sigma = 3.665450126,
               beta = c(12.1895830368, -2.9472827619, -0.8807160123)),
  bw = list(logLik = -566.029590058, phi = 0.76038178, sigma = 4.550126085,
            beta = c(251.5924468148, 0.3602961097, 200.6889078189, 252.3152042732,
                     0.6255177069, 0.3109452111)),
  ortho = list(logLik = -214.906978413, delta = 0.4533689518, sigma = 1.763880791,
               beta = c(17.9072824267, 0.5497052057)),
  orthoML = list(logLik = -212.846659462, delta = 0.4486363772, sigma = 1.760143578,
                 beta = c(17.9169597218, 0.5485780806)),
  bw2 = list(logLik = -557.340928076, phi = 0.8279959763, delta = c(1.068597433, 1.760585108),
             sigma = 3.901644827, beta = c(251.5302926989, 0.3609950379, 200.6780549295,
                                           252.5538167970, 0.6297121309, 0.3094328173)),
  gc = list(logLik = -15504.1472716, phi = 0.7383146389, sigma = 1.101177122,
            beta = c(10.0123887525, 1.4905587555, 0.4619256867, 0.3097640848)))

# |a - b| <= tol (an absolute tolerance: logLik values are in the hundreds)
expect_close <- function(a, b, tol) expect_lte(max(abs(a - b)), tol)

expect_matches_nlme <- function(fit, ref) {
  expect_close(-fit$crit / 2, ref$logLik, 1e-4)
  expect_equal(unname(fit$beta), ref$beta, tolerance = 5e-5)       # >= 4 significant digits
  expect_equal(fit$sigma, ref$sigma, tolerance = 5e-5)
  if (!is.null(ref$phi)) expect_equal(unname(fit$residual$phi), ref$phi, tolerance = 5e-5)
  if (!is.null(ref$delta)) expect_equal(unname(fit$residual$delta[-1]), ref$delta, tolerance = 5e-5)
}

fit_case <- function(name, REML = TRUE) {
  switch(name,
    ovary = lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare),
                as.data.frame(nlme::Ovary), correlation = nlme::corAR1()),
    bw = lmm(weight ~ Time * Diet + (Time | Rat), as.data.frame(nlme::BodyWeight),
             correlation = nlme::corCAR1(form = ~ Time)),
    ortho = lmm(distance ~ age + (1 | Subject), as.data.frame(nlme::Orthodont), REML = REML,
                variance = nlme::varIdent(form = ~ 1 | Sex)),
    bw2 = lmm(weight ~ Time * Diet + (Time | Rat), as.data.frame(nlme::BodyWeight),
              correlation = nlme::corCAR1(form = ~ Time), variance = nlme::varIdent(form = ~ 1 | Diet)),
    gc = lmm(y ~ time * arm + (time | id), sim_growth(),
             correlation = nlme::corAR1(form = ~ time | id)))
}

test_that("Ovary with corAR1 matches nlme", {
  expect_matches_nlme(fit_case("ovary"), nlme_ref$ovary)
})
test_that("BodyWeight with corCAR1 matches nlme", {
  expect_matches_nlme(fit_case("bw"), nlme_ref$bw)
})
test_that("Orthodont with varIdent matches nlme (REML and ML)", {
  expect_matches_nlme(fit_case("ortho"), nlme_ref$ortho)
  expect_matches_nlme(fit_case("ortho", REML = FALSE), nlme_ref$orthoML)
})
test_that("BodyWeight with corCAR1 and varIdent matches nlme", {
  expect_matches_nlme(fit_case("bw2"), nlme_ref$bw2)
})
test_that("the simulated growth curve with corAR1 matches nlme", {
  skip_on_cran()
  expect_matches_nlme(fit_case("gc"), nlme_ref$gc)
})

test_that("without a residual structure nlme's REML logLik equals lmm's (no extra constant)", {
  fit <- lmm(distance ~ age + (1 | Subject), nlme::Orthodont)
  expect_close(-fit$crit / 2, -223.501257798, 1e-8)   # nlme::lme's logLik
})

test_that("live: the fits match nlme::lme", {
  skip_if_not_installed("nlme")
  live <- list(
    ovary = nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), random = ~ 1 | Mare,
                      data = nlme::Ovary, correlation = nlme::corAR1()),
    bw = nlme::lme(weight ~ Time * Diet, random = ~ Time | Rat, data = nlme::BodyWeight,
                   correlation = nlme::corCAR1(form = ~ Time)),
    ortho = nlme::lme(distance ~ age, random = ~ 1 | Subject, data = nlme::Orthodont,
                      weights = nlme::varIdent(form = ~ 1 | Sex)))
  for (name in names(live)) {
    n <- live[[name]]
    cs <- n$modelStruct$corStruct
    vs <- n$modelStruct$varStruct
    ref <- list(logLik = c(logLik(n)), beta = unname(nlme::fixef(n)), sigma = n$sigma,
                phi = if (!is.null(cs)) unname(coef(cs, unconstrained = FALSE)),
                delta = if (!is.null(vs)) unname(coef(vs, unconstrained = FALSE)))
    expect_matches_nlme(fit_case(name), ref)
  }
  no_struct <- nlme::lme(distance ~ age, random = ~ 1 | Subject, data = nlme::Orthodont)
  expect_close(-lmm(distance ~ age + (1 | Subject), nlme::Orthodont)$crit / 2,
               c(logLik(no_struct)), 1e-8)
})

# ---- the fit object, accessors and helpers ------------------------------------------------------

test_that("row order does not matter: the time covariate orders each group", {
  d <- as.data.frame(nlme::BodyWeight)
  fit <- fit_case("bw")
  set.seed(3)
  shuffled <- lmm(weight ~ Time * Diet + (Time | Rat), d[sample(nrow(d)), ],
                  correlation = nlme::corCAR1(form = ~ Time | Rat))
  expect_equal(shuffled$crit, fit$crit, tolerance = 1e-8)
  # phi is flat here: the optimiser may stop at a different point within 4 digits (the issue's bar)
  expect_equal(shuffled$residual$phi, fit$residual$phi, tolerance = 1e-4)
})

test_that("subset, missing values and variables outside data line up with the structure", {
  d <- as.data.frame(nlme::BodyWeight)
  d$weight[c(5, 50)] <- NA
  fit <- lmm(weight ~ Time + (1 | Rat), d, subset = Diet != "3",
             correlation = nlme::corCAR1(form = ~ Time | Rat))
  expect_close(-fit$crit / 2, -428.541073563, 1e-5)        # nlme::lme on na.omit(d[d$Diet != "3", ])
  weight <- d$weight; Time <- d$Time; Rat <- d$Rat
  fit2 <- lmm(weight ~ Time + (1 | Rat), subset = d$Diet != "3",
              correlation = nlme::corCAR1(form = ~ Time | Rat))
  expect_equal(fit2$crit, fit$crit, tolerance = 1e-10)
  skip_if_not_installed("nlme")
  n <- nlme::lme(weight ~ Time, random = ~ 1 | Rat, data = na.omit(d[d$Diet != "3", ]),
                 correlation = nlme::corCAR1(form = ~ Time | Rat))
  expect_close(-fit$crit / 2, c(logLik(n)), 1e-5)
})

test_that("fixed residual parameters stay at their values and match nlme", {
  fit <- lmm(follicles ~ sin(2 * pi * Time) + (1 | Mare), nlme::Ovary,
             correlation = nlme::corAR1(0.5, fixed = TRUE))
  expect_equal(unname(fit$residual$phi), 0.5)
  expect_identical(residual_npar(fit), 0L)
  n <- nlme::lme(follicles ~ sin(2 * pi * Time), random = ~ 1 | Mare, data = nlme::Ovary,
                 correlation = nlme::corAR1(0.5, fixed = TRUE))
  expect_close(-fit$crit / 2, c(logLik(n)), 1e-6)
})

test_that("starting values from the constructors and varIdent's named values are used", {
  d <- as.data.frame(nlme::Orthodont)
  fit <- lmm(distance ~ age + (1 | Subject), d,
             variance = nlme::varIdent(c(Male = 2), form = ~ 1 | Sex))
  expect_named(fit$residual$delta, c("Female", "Male"))              # Female is the reference
  expect_equal(unname(fit$residual$delta[2]), 1 / nlme_ref$ortho$delta, tolerance = 1e-4)
  expect_close(-fit$crit / 2, nlme_ref$ortho$logLik, 1e-6)
})

test_that("residual_parameters, npar, logdet and the printed structure", {
  fit <- fit_case("bw2")
  rp <- residual_parameters(fit)
  expect_named(rp$phi, "Phi")
  expect_equal(unname(rp$delta), c(1, nlme_ref$bw2$delta), tolerance = 5e-5)
  expect_identical(residual_npar(fit), 3L)
  expect_equal(-0.5 * (fit$devcomp$ldL2 + fit$devcomp$ldRX2 - residual_logdet(fit) +
                         (fit$n - fit$p) * (1 + log(2 * pi * fit$devcomp$pwrss / (fit$n - fit$p)))),
               -fit$crit / 2, tolerance = 1e-10)
  txt <- format_residual_structure(fit)
  expect_identical(txt[1:3], c("Correlation Structure: Continuous AR(1)", " Formula: ~Time | Rat",
                               " Parameter estimate(s):"))
  expect_true("Variance function:" %in% txt)
  expect_true(" Formula: ~1 | Diet" %in% txt)
  expect_identical(format_residual_structure(lmm(distance ~ age + (1 | Subject), nlme::Orthodont)),
                   character())
})

test_that("whitened residuals are nlme's normalized residuals; pearson scale is delta", {
  # nlme's normalized residuals are only in data order when the rows are sorted by its groups
  ov <- as.data.frame(nlme::Ovary)[order(nlme::Ovary$Mare), ]
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ov,
             correlation = nlme::corAR1())
  n <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), random = ~ 1 | Mare,
                 data = ov, correlation = nlme::corAR1())
  expect_equal(unname(residual_whiten(fit, fit$y - fit$fitted)) / fit$sigma,
               unname(as.vector(residuals(n, type = "normalized"))), tolerance = 1e-4)
  fit2 <- fit_case("ortho")
  n2 <- nlme::lme(distance ~ age, random = ~ 1 | Subject, data = nlme::Orthodont,
                  weights = nlme::varIdent(form = ~ 1 | Sex))
  expect_equal((fit2$y - fit2$fitted) / (fit2$sigma * residual_scale(fit2)),
               unname(as.vector(residuals(n2, type = "pearson"))), tolerance = 1e-4)
})

test_that("ARMA(1, 1) fits keep K implicit; whitened residuals are still nlme's normalized ones", {
  # src/residual_innovations.c: the engine's K holds only the diagonals of the ARMA groups it
  # whitens by a recursion; residual_K() forms the explicit K for residuals and simulation.
  ov <- as.data.frame(nlme::Ovary)[order(nlme::Ovary$Mare), ]
  fit <- lmm(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare), ov,
             correlation = nlme::corARMA(p = 1, q = 1))
  expect_null(fit$residual$K)
  K <- residual_K(fit)
  expect_equal(length(K$Kx), sum(table(ov$Mare) * (table(ov$Mare) + 1) / 2))
  expect_equal(fit$residual$sd, rep(1, nrow(ov)))
  w <- residual_whiten(fit, fit$y - fit$fitted) / fit$sigma
  expect_equal(unname(w[c(1, 2, 100, 308)]), c(-0.39122601, 0.082033469, 0.64133703, -0.28731409),
               tolerance = 1e-4)   # nlme 3.1-160
  expect_equal(dim(residual_errors(fit, 3)), c(nrow(ov), 3L))
  # the recursion (lmm_whiten_apply) against the explicit K, both ways
  Kd <- matrix(0, nrow(ov), nrow(ov))
  Kd[cbind(rep(seq_len(nrow(ov)), diff(K$Kp)), K$Kj + 1L)] <- K$Kx
  Z <- matrix(rnorm(3 * nrow(ov)), nrow(ov))
  expect_equal(residual_whiten(fit, Z), Kd %*% Z, tolerance = 1e-10)
  set.seed(3)
  E <- residual_errors(fit, 2)
  set.seed(3)
  expect_equal(Kd %*% E, fit$sigma * matrix(rnorm(2 * nrow(ov)), nrow(ov)), tolerance = 1e-10)
  skip_if_not_installed("nlme")
  n <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), random = ~ 1 | Mare,
                 data = ov, correlation = nlme::corARMA(p = 1, q = 1))
  expect_equal(unname(w), unname(as.vector(residuals(n, type = "normalized"))), tolerance = 1e-4)
})

test_that("residual_objective reproduces the criterion at the optimum, and ML from a REML fit", {
  fit <- fit_case("bw2")
  f <- residual_objective(fit)
  par <- c(fit$theta, fit$residual$rho)
  expect_equal(f(par), fit$crit, tolerance = 1e-10)
  expect_gt(f(par + c(0, 0, 0, 0.01, 0, 0)), fit$crit)
  expect_equal(residual_objective(fit, REML = FALSE)(par),
               fit$devcomp$ldL2 - residual_logdet(fit) +
                 fit$n * (1 + log(2 * pi * fit$devcomp$pwrss / fit$n)), tolerance = 1e-10)
  expect_error(f(1), "must have length 6")
})

test_that("residual_errors draws from s^2 V: whitening them gives back s z", {
  fit <- fit_case("bw2")
  set.seed(5)
  e <- residual_errors(fit, nsim = 2)
  set.seed(5)
  z <- matrix(rnorm(length(fit$y) * 2), ncol = 2)
  expect_equal(apply(e, 2, residual_whiten, object = fit), fit$sigma * z, tolerance = 1e-10)
})

test_that("the fit's fixed effects, ranef and fitted values are those of the whitened GLS", {
  fit <- fit_case("ovary")
  n <- nlme::lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), random = ~ 1 | Mare,
                 data = nlme::Ovary, correlation = nlme::corAR1())
  expect_equal(unname(fit$b), unname(nlme::ranef(n)[, 1]), tolerance = 1e-4)
  expect_equal(as.vector(fit$fitted), as.vector(fitted(n)), tolerance = 1e-5)
  expect_equal(unname(sqrt(diag(fit$vcov_beta))), unname(sqrt(diag(n$varFix))), tolerance = 1e-4)
})

# ---- bad input -------------------------------------------------------------------------------------

test_that("bad residual structures give clear errors", {
  d <- as.data.frame(nlme::BodyWeight)
  f <- weight ~ Time + (1 | Rat)
  expect_error(lmm(f, d, correlation = nlme::corCAR1(form = ~ Time | nosuch)),
               "cannot evaluate 'nosuch' of the correlation form")
  g <- factor(1:3)
  expect_error(lmm(f, d, correlation = nlme::corCAR1(form = ~ Time | g)),
               "'g' of the correlation form has 3 values but the data have 176 rows")
  d2 <- d
  d2$Time[2] <- d2$Time[1]
  expect_error(lmm(f, d2, correlation = nlme::corCAR1(form = ~ Time | Rat)),
               "duplicated times within groups of Rat \\(first: Rat = 1, time 1\\)")
  d2$when <- as.character(d$Time)
  expect_error(lmm(f, d2, correlation = nlme::corCAR1(form = ~ when | Rat)),
               "time covariate 'when' of corCAR1 must be numeric \\(got character\\)")
  expect_error(lmm(f, d, correlation = nlme::corAR1(form = ~ I(Time / 7) | Rat)),
               "corAR1 needs integer times")
  expect_error(lmm(f, d, correlation = "AR1"), "must be an nlme correlation structure")
  expect_error(lmm(f, d, correlation = structure(numeric(), class = c("corFoo", "corStruct"))),
               "corFoo is not supported")
  expect_error(lmm(f, d, variance = nlme::varPower(form = ~ resid(.))), "uses the residuals")
  expect_error(lmm(f, d, variance = nlme::varIdent(c(Nope = 2), form = ~ 1 | Diet)),
               "varIdent names strata not in the data: Nope")
  d$site <- factor(rep(c("a", "b"), length.out = nrow(d)))
  expect_error(lmm(weight ~ Time + (1 | Rat) + (1 | site), d, correlation = nlme::corAR1()),
               "crossed: give the correlation groups")
})

test_that("a varIdent with one stratum is no structure", {
  d <- as.data.frame(nlme::Orthodont)
  d$one <- "all"
  fit <- lmm(distance ~ age + (1 | Subject), d, variance = nlme::varIdent(form = ~ 1 | one))
  expect_null(fit$residual)
  expect_equal(fit$crit, lmm(distance ~ age + (1 | Subject), d)$crit)
})

test_that("a residual structure counts in logLik's df, anova, print, refit and simulate", {
  form <- follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (1 | Mare)
  f <- lmm(form, nlme::Ovary, correlation = nlme::corAR1())
  f0 <- lmm(form, nlme::Ovary)
  expect_equal(attr(logLik(f), "df"), 6)              # nlme: 'log Lik.' -775.2233 (df=6)
  expect_equal(as.numeric(logLik(f)), -775.2233, tolerance = 1e-6)
  a <- suppressMessages(anova(f0, f))
  expect_equal(a$npar, c(5, 6))
  expect_equal(a$Df[2], 1)
  expect_equal(a$logLik[2], -776.5173109, tolerance = 1e-8)  # nlme, method = "ML"
  out <- capture.output(print(f))
  expect_true(all(c("Correlation Structure: AR(1)", " Formula: ~1 | Mare") %in% out))
  expect_true(any(grepl("^0\\.607", out)))
  expect_true(any(grepl("Correlation Structure: AR\\(1\\)", capture.output(print(summary(f))))))
  r <- refit(f)
  expect_equal(r$crit, f$crit, tolerance = 1e-8)
  expect_equal(r$residual$phi, f$residual$phi, tolerance = 1e-4)
  s <- simulate(f, nsim = 2, seed = 1)
  expect_equal(dim(s), c(308L, 2L))
  expect_identical(levels(profile(f, which = ".sigma")$.par), ".sigma")   # test-profile.R
})

test_that("the residual-structure criterion is invariant to shifting y (src/standardise.c)", {
  d <- small_data()
  d$y <- d$y + 1e8
  d0 <- d; d0$y <- d$y - 1e8                         # exactly the same data (Sterbenz)
  e0 <- engine_of(y ~ x + (1 | id) + (1 | site), d0, nlme::corAR1(form = ~ t | id),
                  nlme::varIdent(form = ~ 1 | s), weights = d$w)
  e1 <- engine_of(y ~ x + (1 | id) + (1 | site), d, nlme::corAR1(form = ~ t | id),
                  nlme::varIdent(form = ~ 1 | s), weights = d$w)
  for (REML in c(TRUE, FALSE))
    expect_equal(engine_crit(e1$engine, c(0.8, 0.5), REML, c(atanh(0.6), log(1.7))),
                 engine_crit(e0$engine, c(0.8, 0.5), REML, c(atanh(0.6), log(1.7))),
                 tolerance = 1e-10)
})

test_that("residual-structure fits get the plain path's messages: rank deficiency, exact fits", {
  d <- nlme::Orthodont
  d$age2 <- 2 * d$age
  # exactly collinear X kept (check.rankX = "ignore"): named, not a generic non-finite message
  expect_error(suppressWarnings(
    lmm(distance ~ age + age2 + (1 | Subject), d, control = lmm_control(check.rankX = "ignore"),
        correlation = nlme::corAR1(form = ~ 1 | Subject))),
    "rank deficient|linear combination")
  # a response constant within subjects is fitted exactly: sigma ~ 0 is reported
  d$distance <- as.numeric(d$Subject)
  warned <- character()
  withCallingHandlers(lmm(distance ~ age + (1 | Subject), d,
                          correlation = nlme::corAR1(form = ~ 1 | Subject)),
                      warning = function(w) {
                        warned <<- c(warned, conditionMessage(w))
                        invokeRestart("muffleWarning")
                      }, message = function(m) invokeRestart("muffleMessage"))
  expect_true(any(grepl("essentially zero", warned)))
})

test_that("an interrupt while A is re-formed at a new rho leaves no stale state behind", {
  # src/model.c set_rho(): the state is marked invalid before K and A are rebuilt, so an
  # interrupt (here: an elapsed-time limit) inside the O(n) pass cannot leave a half-built A
  # that a later evaluation takes for the current one.
  d <- sim_growth(n_id = 30000, n_t = 8, seed = 7)  # 240,000 rows: a pass takes some 20 ms
  old <- options(lmmc.residual_pieces = 0L)        # A by a pass over the rows, not from pieces
  on.exit(options(old))
  e <- engine_of(y ~ time + (time | id), d, nlme::corAR1(form = ~ time | id))
  fresh <- function(theta, rho) {
    engine_crit(engine_of(y ~ time + (time | id), d, nlme::corAR1(form = ~ time | id))$engine,
                theta, TRUE, rho)
  }
  theta <- c(2, 0.1, 0.3)
  f1 <- engine_crit(e$engine, theta, TRUE, atanh(0.3))
  f2 <- fresh(theta, atanh(0.6))
  interrupted <- 0
  for (limit in seq(5e-4, 2e-2, length.out = 8)) {
    expect_equal(engine_crit(e$engine, theta, TRUE, atanh(0.3)), f1, tolerance = 1e-12)
    setTimeLimit(elapsed = limit, transient = TRUE)  # fires inside the pass for rho = 0.6
    res <- try(engine_crit(e$engine, theta, TRUE, atanh(0.6)), silent = TRUE)
    setTimeLimit()
    interrupted <- interrupted + inherits(res, "try-error")
    # the engine last completed rho = 0.3: it must not take the broken A for that one
    expect_equal(engine_crit(e$engine, theta, TRUE, atanh(0.3)), f1, tolerance = 1e-12)
    expect_equal(engine_crit(e$engine, theta, TRUE, atanh(0.6)), f2, tolerance = 1e-12)
  }
  expect_gt(interrupted, 0)
  # a fit interrupted by the limit, then a complete fit on the same engine object
  prob <- opt_problem(e$engine, theta_lower(e$pieces$reterms), e$spec, TRUE)
  settings <- optimiser_settings(lmm_control(), theta, gradient = TRUE)
  setTimeLimit(elapsed = 0.05, transient = TRUE)
  res <- try(prob$run(prob$x(theta), settings), silent = TRUE)
  setTimeLimit()
  expect_s3_class(res, "try-error")
  again <- prob$run(prob$x(theta), settings)
  new <- opt_problem(engine_of(y ~ time + (time | id), d, nlme::corAR1(form = ~ time | id))$engine,
                     theta_lower(e$pieces$reterms), e$spec, TRUE)$run(prob$x(theta), settings)
  expect_equal(again$crit, new$crit, tolerance = 1e-12)
  expect_equal(again$x, new$x, tolerance = 1e-10)
})

test_that("without random effects lmm() fits nlme::gls's model (REML and ML)", {
  od <- as.data.frame(ref_data("Orthodont"))
  # recorded from nlme 3.1-160: gls(distance ~ age + Sex, Orthodont, corAR1(form = ~ 1 | Subject))
  ref <- list(REML = list(logLik = -222.7241475, beta = c(17.8787091, 0.6529597, -2.4187144),
                          sigma = 2.3014954, phi = 0.62586714),
              ML = list(logLik = -221.590437))
  f <- lmm(distance ~ age + Sex, od, correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_equal(c(logLik(f)), ref$REML$logLik, tolerance = 1e-7)
  expect_equal(unname(fixef(f)), ref$REML$beta, tolerance = 1e-6)
  expect_equal(f$sigma, ref$REML$sigma, tolerance = 1e-6)
  expect_equal(unname(f$residual$phi), ref$REML$phi, tolerance = 1e-4)
  expect_true(f$optinfo$converged)
  expect_length(ranef(f), 0L)
  expect_identical(coef(f), fixef(f))
  expect_equal(unname(predict(f, newdata = od[1:3, ])), unname(fitted(f)[1:3]))
  expect_output(print(f), "Number of obs: 108\n")
  fm <- lmm(distance ~ age + Sex, od, REML = FALSE,
            correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_equal(c(logLik(fm)), ref$ML$logLik, tolerance = 1e-7)
  expect_error(lmm(distance ~ age, od), "no random effects terms")
  # no groups in the form and no random effects: one series, as nlme's gls (logLik recorded)
  expect_equal(c(logLik(lmm(distance ~ age, od, correlation = nlme::corAR1()))), -235.2368673,
               tolerance = 1e-8)
  skip_if_not_installed("nlme")
  for (REML in c(TRUE, FALSE)) {
    g <- nlme::gls(distance ~ age + Sex, od, correlation = nlme::corAR1(form = ~ 1 | Subject),
                   method = if (REML) "REML" else "ML")
    f <- lmm(distance ~ age + Sex, od, REML = REML,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
    expect_gte(c(logLik(f)) - c(logLik(g)), -1e-7)
    expect_equal(c(logLik(f)), c(logLik(g)), tolerance = 1e-6)
    expect_equal(unname(fixef(f)), unname(coef(g)), tolerance = 1e-5)
  }
})

test_that("engine_whitening() gives K (K'K = V^-1) and dK/drho", {
  d <- small_data()
  for (cs in list(list(nlme::corAR1(form = ~ t | id), c(atanh(0.4), log(1.3))),
                  list(nlme::corCompSymm(form = ~ 1 | id), c(0.3, log(1.3))))) {
    e <- engine_of(y ~ x + (1 | site), d, cs[[1]], nlme::varIdent(form = ~ 1 | s))
    rho <- cs[[2]]
    W <- engine_whitening(e$engine, rho, deriv = TRUE)
    n <- nrow(d)
    K <- matrix(0, n, n)
    K[cbind(rep(seq_len(n), diff(W$Kp)), W$Kj + 1L)] <- W$Kx
    for (k in seq_along(rho)) {
      h <- 1e-6
      Wp <- engine_whitening(e$engine, replace(rho, k, rho[k] + h))
      Wm <- engine_whitening(e$engine, replace(rho, k, rho[k] - h))
      expect_equal(W$dKx[, k], (Wp$Kx - Wm$Kx) / (2 * h), tolerance = 1e-6)
    }
    expect_equal(W$logdet, 2 * sum(log(abs(diag(K)))), tolerance = 1e-12)
  }
})
