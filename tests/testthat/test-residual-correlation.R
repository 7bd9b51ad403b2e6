# Correlation families (R/residual-correlation.R, src/cor_arma.c, cor_compsymm.c, cor_symm.c,
# cor_spatial.c): the C correlation matrices against nlme's corMatrix (recorded and live), the
# unconstrained <-> natural maps, bad input and parameters outside the space.

spec_of <- function(correlation, covariates = NULL, groups = NULL, ...)
  lmmc:::cor_family_spec(correlation, covariates, groups, ...)

# The C matrix of the rows `rows` (1-based) at par (the spec's start by default); NULL outside.
c_matrix <- function(spec, rows, par = spec$par)
  .Call(lmmc:::C_lmm_cor_matrix, spec, length(spec$groups), as.integer(rows), as.double(par))

# The C matrix of group `level` (rows in data order)
c_group <- function(spec, level, par = spec$par)
  c_matrix(spec, which(spec$groups == level), par)

# Largest difference between the C matrices and nlme's corMatrix over all groups
max_diff_nlme <- function(spec, cs, data, par = spec$par) {
  cm <- nlme::corMatrix(nlme::Initialize(cs, data))
  if (!is.list(cm)) cm <- list(cm)
  levs <- if (length(cm) == 1L) levels(spec$groups)[1L] else names(cm)
  max(vapply(seq_along(cm), function(k)
    if (NROW(cm[[k]]) < 2L) 0 else max(abs(c_group(spec, levs[k], par) - cm[[k]])), 0))
}

orthodont <- function() as.data.frame(nlme::Orthodont)

# ---- the specification -------------------------------------------------------------------------

test_that("a family's spec is the list the engine reads", {
  d <- orthodont()
  s <- spec_of(nlme::corARMA(c(0.4, 0.2), form = ~ 1 | Subject, p = 1, q = 1), NULL, d$Subject)
  expect_named(s, c("type", "code", "npar", "cov", "iopt", "dopt", "groups", "order", "par",
                    "fixed", "lower", "upper", "natural", "unconstrained", "label", "formula"))
  expect_identical(s$code, 3L)
  expect_identical(s$npar, 2L)
  expect_identical(s$iopt, c(1L, 1L))
  expect_true(is.double(s$dopt) && is.double(s$cov) && is.matrix(s$cov))
  expect_equal(dim(s$cov), c(nrow(d), 1L))
  expect_equal(s$cov[1:8, 1], c(1, 2, 3, 4, 1, 2, 3, 4))    # positions within Subject
  expect_identical(s$order, s$cov[, 1])
  expect_s3_class(s$groups, "factor")
  expect_equal(nlevels(s$groups), 27L)
  expect_equal(s$fixed, c(FALSE, FALSE))
  expect_equal(s$lower, -s$upper)
  expect_true(all(is.finite(s$upper)))
  expect_equal(s$label, "ARMA(1,1)")
  expect_equal(s$formula, ~ 1 | Subject, ignore_attr = TRUE)
  fixed <- spec_of(nlme::corCompSymm(0.2, form = ~ 1 | Subject, fixed = TRUE), NULL, d$Subject)
  expect_identical(fixed$fixed, TRUE)
  expect_identical(spec_of(nlme::corExp(2, form = ~ age | Subject), d$age, d$Subject)$code, 6L)
  expect_identical(spec_of(nlme::corSpher(12), seq_len(nrow(d)), NULL)$code, 10L)
})

test_that("the forms' covariates and groups are evaluated on the model's rows", {
  w <- as.data.frame(nlme::Wheat2)
  rows <- structure(c(3L, 1L, 60L, 100L), nrow = nrow(w))
  ev <- lmmc:::cor_family_covariates(
    nlme::corExp(form = ~ latitude + longitude | Block), w, rows)
  expect_equal(ev$covariates, cbind(w$latitude, w$longitude)[rows, ])
  expect_equal(as.character(ev$groups), as.character(w$Block[rows]))
  d <- orthodont()
  rows <- structure(seq_len(nrow(d)), nrow = nrow(d))
  ev <- lmmc:::cor_family_covariates(nlme::corARMA(form = ~ age | Subject, p = 1), d, rows)
  expect_equal(ev$covariates, d$age)
  ev <- lmmc:::cor_family_covariates(nlme::corCompSymm(form = ~ 1 | Subject), d, rows)
  expect_null(ev$covariates)
  expect_equal(nlevels(ev$groups), 27L)
  expect_null(lmmc:::cor_family_covariates(nlme::corSymm(), d, rows)$groups)
  expect_error(lmmc:::cor_family_covariates(nlme::corARMA(form = ~ Sex | Subject, p = 1), d, rows),
               "covariate 'Sex' must be numeric")
})

# ---- corARMA -----------------------------------------------------------------------------------

test_that("corARMA's matrices match nlme (recorded)", {
  d <- orthodont()
  s <- spec_of(nlme::corARMA(c(0.4, 0.2), form = ~ 1 | Subject, p = 1, q = 1), NULL, d$Subject)
  # nlme 3.1-162: corMatrix(Initialize(cs, Orthodont))[["M01"]][1, ], as.vector(cs)
  expect_equal(c_group(s, "M01")[1, ], c(1, 0.54, 0.216, 0.0864), tolerance = 1e-9)
  expect_equal(s$par, c(0.8472978604, 0.4054651081), tolerance = 1e-9)
  # gaps: BodyWeight's Time 1, 8, ..., 43, 44, ..., 64 (lags 1 to 63)
  b <- as.data.frame(nlme::BodyWeight)
  s <- spec_of(nlme::corARMA(c(0.9, -0.1, 0.3), form = ~ Time | Rat, p = 2, q = 1),
               b$Time, b$Rat)
  m <- c_group(s, "1")
  expect_equal(c(m[7, 8], m[8, 9], m[1, 2], m[1, 11]),
               c(0.874640598, 0.2427266245, 0.1869379183, 8.319777419e-08), tolerance = 1e-8)
})

test_that("corARMA's autocorrelations are exact, also for q > p (against stats::ARMAacf)", {
  d <- data.frame(t = c(1, 2, 3, 4, 6, 9), g = "a")
  acf_c <- function(p, q, value) {
    s <- spec_of(nlme::corARMA(value, form = ~ t | g, p = p, q = q), d$t, d$g)
    expect_equal(unname(s$natural(s$par)), value, tolerance = 1e-12)
    c_matrix(s, 1:6)[1, ]                                # lags 0, 1, 2, 3, 5, 8
  }
  lags <- c(0, 1, 2, 3, 5, 8)
  # MA(1): rho_1 = theta / (1 + theta^2), 0 beyond
  expect_equal(acf_c(0, 1, 0.5), c(1, 0.4, 0, 0, 0, 0))
  # ARMA(1, 2) (recorded from stats::ARMAacf(ar = 0.5, ma = c(-0.3, 0.2), lag.max = 3))
  expect_equal(acf_c(1, 2, c(0.5, -0.3, 0.2))[1:4],
               c(1, 0.275862069, 0.3103448276, 0.1551724138), tolerance = 1e-9)
  for (case in list(list(1, 2, c(0.5, -0.3, 0.2)), list(2, 3, c(0.5, -0.3, 0.2, 0.4, -0.2)),
                    list(3, 1, c(0.3, 0.2, -0.3, 0.6)), list(0, 3, c(0.4, -0.3, 0.25))))
    expect_equal(acf_c(case[[1]], case[[2]], case[[3]]),
                 unname(stats::ARMAacf(ar = case[[3]][seq_len(case[[1]])],
                                       ma = case[[3]][case[[1]] + seq_len(case[[2]])],
                                       lag.max = 8)[lags + 1]), tolerance = 1e-12)
})

test_that("corARMA's matrices match nlme (live; q <= p: nlme's lags p+1..q are wrong for q > p >= 1)", {
  skip_if_not_installed("nlme")
  d <- orthodont()
  for (pq in list(c(1, 0), c(2, 0), c(0, 1), c(0, 3), c(1, 1), c(2, 1), c(3, 2))) {
    value <- c(c(0.5, -0.2, 0.1)[seq_len(pq[1])], c(0.3, -0.2, 0.1)[seq_len(pq[2])])
    cs <- nlme::corARMA(value, form = ~ 1 | Subject, p = pq[1], q = pq[2])
    s <- spec_of(cs, NULL, d$Subject)
    expect_equal(s$par, as.vector(cs), tolerance = 1e-12)
    expect_lt(max_diff_nlme(s, cs, d), 1e-12)
  }
  b <- as.data.frame(nlme::BodyWeight)
  cs <- nlme::corARMA(c(0.6, 0.25, -0.4), form = ~ Time | Rat, p = 2, q = 1)
  s <- spec_of(cs, b$Time, b$Rat)
  expect_lt(max_diff_nlme(s, cs, b), 1e-12)
  set.seed(3)
  par <- rnorm(3)                                        # any real par, nlme's map
  ci <- nlme::Initialize(cs, b)
  nlme::coef(ci) <- par
  expect_lt(max_diff_nlme(s, ci, b, par), 1e-12)
  expect_equal(s$natural(par), stats::coef(ci, unconstrained = FALSE), tolerance = 1e-12)
})

test_that("corARMA's maps round-trip", {
  d <- orthodont()
  s <- spec_of(nlme::corARMA(c(0.5, -0.3, 0.2, 0.1), form = ~ 1 | Subject, p = 2, q = 2),
               NULL, d$Subject)
  set.seed(1)
  for (k in 1:5) {
    par <- rnorm(4, sd = 2)
    expect_equal(s$unconstrained(s$natural(par)), par, tolerance = 1e-10)
  }
  expect_equal(unname(s$natural(s$unconstrained(c(0.5, -0.3, 0.2, 0.1)))),
               c(0.5, -0.3, 0.2, 0.1), tolerance = 1e-12)
  expect_named(s$natural(s$par), c("Phi1", "Phi2", "Theta1", "Theta2"))
  expect_error(s$unconstrained(c(1.2, 0.5, 0, 0)), "not stationary")
  expect_error(s$unconstrained(c(0, 0, 0.5, 1)), "not invertible")
})

# ---- corCompSymm -------------------------------------------------------------------------------

test_that("corCompSymm matches nlme (recorded and live), unbalanced groups", {
  ov <- as.data.frame(nlme::Ovary)                       # groups of 25 to 31 rows
  cs <- nlme::corCompSymm(-0.03, form = ~ 1 | Mare)
  s <- spec_of(cs, NULL, ov$Mare)
  expect_identical(s$iopt, 31L)
  # nlme 3.1-162: as.vector(Initialize(cs, Ovary)) = log((r + 1/30) / (1 - r))
  expect_equal(s$par, -5.733341277, tolerance = 1e-9)
  m <- c_group(s, "1")
  expect_equal(unique(m[lower.tri(m)]), -0.03)
  expect_equal(diag(m), rep(1, nrow(m)))
  expect_equal(s$natural(s$par), c(Rho = -0.03))
  set.seed(2)
  par <- rnorm(3, sd = 3)
  expect_equal(vapply(par, function(u) s$unconstrained(s$natural(u)), 0), par, tolerance = 1e-10)
  skip_if_not_installed("nlme")
  expect_equal(s$par, as.vector(nlme::Initialize(cs, ov)), tolerance = 1e-12)
  expect_lt(max_diff_nlme(s, cs, ov), 1e-14)
  d <- orthodont()
  cs <- nlme::corCompSymm(0.6, form = ~ 1 | Subject)
  expect_lt(max_diff_nlme(spec_of(cs, NULL, d$Subject), cs, d), 1e-14)
})

# ---- corSymm -----------------------------------------------------------------------------------

test_that("corSymm matches nlme (recorded and live)", {
  d <- orthodont()
  value <- c(0.3, 0.2, 0.1, 0.4, 0.25, 0.5)
  cs <- nlme::corSymm(value, form = ~ 1 | Subject)
  s <- spec_of(cs, NULL, d$Subject)
  # nlme 3.1-162: as.vector(Initialize(cs, Orthodont)) (spherical parametrisation)
  expect_equal(s$par, c(-0.3929252048, -0.2577951624, -0.4832260307, -0.1277104183,
                        -0.3000568697, -0.61329531), tolerance = 1e-9)
  C <- diag(4)
  C[lower.tri(C)] <- value
  C <- C + t(C) - diag(4)
  expect_equal(c_group(s, "F03"), C, tolerance = 1e-12)
  expect_equal(s$natural(s$par),
               c(`cor(1,2)` = 0.3, `cor(1,3)` = 0.2, `cor(1,4)` = 0.1, `cor(2,3)` = 0.4,
                 `cor(2,4)` = 0.25, `cor(3,4)` = 0.5), tolerance = 1e-12)
  # rows in another order: R[a, b] = C[pos_a, pos_b]
  rows <- which(d$Subject == "F03")[c(3, 1, 4, 2)]
  expect_equal(c_matrix(s, rows), C[c(3, 1, 4, 2), c(3, 1, 4, 2)], tolerance = 1e-12)
  skip_if_not_installed("nlme")
  expect_equal(s$par, as.vector(nlme::Initialize(cs, d)), tolerance = 1e-12)
  expect_lt(max_diff_nlme(s, cs, d), 1e-14)
  # positions from a covariate, some missing within groups; random parameters
  d$occ <- (d$age - 8) / 2 + 1
  sub <- d[-c(2, 7, 12, 13, 30), ]
  cs <- nlme::corSymm(form = ~ occ | Subject)
  s <- spec_of(cs, sub$occ, sub$Subject)
  expect_equal(s$par, double(6))
  set.seed(4)
  par <- rnorm(6)
  ci <- nlme::Initialize(cs, sub)
  nlme::coef(ci) <- par
  expect_lt(max_diff_nlme(s, ci, sub, par), 1e-14)
  expect_equal(unname(s$natural(par)), stats::coef(ci, unconstrained = FALSE), tolerance = 1e-12)
  # an initialised nlme object (unconstrained inside) gives the same start
  expect_equal(spec_of(ci, sub$occ, sub$Subject)$par, par, tolerance = 1e-10)
})

test_that("corSymm's maps round-trip and every par is positive definite", {
  d <- data.frame(pos = rep(1:5, 2), g = rep(1:2, each = 5))
  s <- spec_of(nlme::corSymm(form = ~ pos | g), d$pos, d$g)
  set.seed(5)
  for (k in 1:5) {
    par <- rnorm(10, sd = 2)
    expect_equal(s$unconstrained(s$natural(par)), par, tolerance = 1e-8)
    m <- c_matrix(s, 1:5, par)
    expect_gt(min(eigen(m, symmetric = TRUE, only.values = TRUE)$values), 0)
    expect_equal(m[lower.tri(m)], unname(s$natural(par)), tolerance = 1e-12)
  }
})

# ---- spatial -----------------------------------------------------------------------------------

test_that("spatial families match nlme (recorded)", {
  w <- as.data.frame(nlme::Wheat2)
  xy <- cbind(w$latitude, w$longitude)
  one <- function(cs) c_group(spec_of(cs, xy, w$Block), "1")[1, 2:6]
  f <- ~ latitude + longitude | Block
  # nlme 3.1-162: corMatrix(Initialize(cs, Wheat2))[["1"]][1, 2:6]
  s <- spec_of(nlme::corSpher(c(28, 0.2), form = f, nugget = TRUE), xy, w$Block)
  expect_equal(c_group(s, "1")[1, 2:6],
               c(0.7486029155, 0.6973947522, 0.6465644315, 0.5963008746, 0.5467930029),
               tolerance = 1e-9)
  expect_equal(s$par, c(3.288401888, -1.386294361), tolerance = 1e-9)   # log(range - minD)
  expect_equal(s$dopt, 1.2)                                            # nlme's minD
  expect_equal(one(nlme::corExp(10, form = f, metric = "manhattan")),
               c(0.8869204367, 0.7866278611, 0.6976763261, 0.6187833918, 0.5488116361),
               tolerance = 1e-9)
  expect_equal(one(nlme::corGaus(c(10, 0.3), form = f, nugget = TRUE, metric = "maximum")),
               c(0.6899922289, 0.660819238, 0.6149127175, 0.5559510968, 0.4883734282),
               tolerance = 1e-9)
  expect_equal(one(nlme::corRatio(5, form = f)),
               c(0.9455370651, 0.8127438231, 0.6585879874, 0.5203996669, 0.4098360656),
               tolerance = 1e-9)
  expect_equal(one(nlme::corLin(20, form = f)), c(0.94, 0.88, 0.82, 0.76, 0.7), tolerance = 1e-9)
})

test_that("spatial families match nlme (live): every family, nugget and metric", {
  skip_if_not_installed("nlme")
  w <- as.data.frame(nlme::Wheat2)
  xy <- cbind(w$latitude, w$longitude)
  f <- ~ latitude + longitude | Block
  set.seed(6)
  for (type in c("corExp", "corGaus", "corLin", "corRatio", "corSpher"))
    for (nugget in c(FALSE, TRUE))
      for (metric in c("euclidean", "maximum", "manhattan")) {
        value <- if (nugget) c(15, 0.25) else 15
        cs <- getExportedValue("nlme", type)(value, form = f, nugget = nugget, metric = metric)
        s <- spec_of(cs, xy, w$Block)
        ci <- nlme::Initialize(cs, w)
        expect_equal(s$par, as.vector(ci), tolerance = 1e-12)
        expect_lt(max_diff_nlme(s, cs, w), 1e-14)
        par <- s$par + rnorm(length(s$par), sd = 0.5)
        nlme::coef(ci) <- par
        expect_lt(max_diff_nlme(s, ci, w, par), 1e-14)
        expect_equal(s$natural(par), stats::coef(ci, unconstrained = FALSE), tolerance = 1e-12)
        expect_equal(s$unconstrained(s$natural(par)), par, tolerance = 1e-10)
        expect_equal(s$unconstrained(value), s$par, tolerance = 1e-12)
      }
  # one dimension, default starts, form ~ 1 (positions) and no groups
  d <- orthodont()
  for (type in c("corExp", "corLin", "corSpher")) {
    cs <- getExportedValue("nlme", type)(form = ~ age | Subject, nugget = TRUE)
    s <- spec_of(cs, d$age, d$Subject)
    expect_equal(s$par, as.vector(nlme::Initialize(cs, d)), tolerance = 1e-12)
    expect_lt(max_diff_nlme(s, cs, d), 1e-14)
  }
  cs <- nlme::corGaus(2, form = ~ 1 | Subject)
  expect_lt(max_diff_nlme(spec_of(cs, NULL, d$Subject), cs, d), 1e-14)
  small <- d[d$Subject %in% c("M01", "M02"), ]
  cs <- nlme::corRatio(3, form = ~ age + distance)
  s <- spec_of(cs, cbind(small$age, small$distance), NULL)
  expect_lt(max_diff_nlme(s, cs, small), 1e-14)
})

# ---- bad input ---------------------------------------------------------------------------------

test_that("bad input gives errors naming the argument", {
  d <- orthodont()
  arma0 <- structure(double(), formula = ~ 1 | Subject, p = 0, q = 0, fixed = FALSE,
                     class = c("corARMA", "corStruct"))
  expect_error(spec_of(arma0, NULL, d$Subject), "'p' \\+ 'q' > 0")
  expect_error(spec_of(nlme::corARMA(0.5, form = ~ age | Subject, p = 1), d$age / 3, d$Subject),
               "covariate 'age' of corARMA must be integer-valued")
  expect_error(spec_of(nlme::corARMA(0.5, form = ~ t | Subject, p = 1), rep(1, nrow(d)),
                       d$Subject), "duplicated values within a group")
  expect_error(spec_of(nlme::corARMA(double(4), form = ~ 1 | Subject, p = 4), NULL, d$Subject),
               "exceeds the largest lag")
  expect_error(spec_of(nlme::corSymm(form = ~ occ | Subject), rep(c(1, 2, 2, 3), 27), d$Subject),
               "covariate 'occ' of corSymm has duplicated values")
  expect_error(spec_of(nlme::corSymm(form = ~ occ | Subject), rep(c(1, 2, 4, 5), 27), d$Subject),
               "integers 1 .. M")
  expect_error(spec_of(nlme::corSymm(c(0.9, -0.9, 0.9, 0, 0, 0), form = ~ 1 | Subject), NULL,
                       d$Subject), "not a positive-definite")
  expect_error(spec_of(nlme::corSymm(c(0.1, 0.2), form = ~ 1 | Subject), NULL, d$Subject),
               "'value' of corSymm must be 6 correlations")
  expect_error(spec_of(nlme::corCompSymm(-0.5, form = ~ 1 | Subject), NULL, d$Subject),
               "'value' of corCompSymm must lie in \\(-1/\\(M - 1\\), 1\\) = \\(-0.3333, 1\\)")
  expect_error(spec_of(nlme::corExp(c(2, 1.5), form = ~ age | Subject, nugget = TRUE), d$age,
                       d$Subject), "'nugget' of corExp must be in \\(0, 1\\)")
  expect_error(spec_of(nlme::corExp(-1, form = ~ age | Subject), d$age, d$Subject),
               "'range' of corExp must be > 0")
  expect_error(spec_of(nlme::corGaus(c(1, 0.5), form = ~ age | Subject), d$age, d$Subject),
               "'value' of corGaus must be the range")
  expect_warning(s <- spec_of(nlme::corLin(1, form = ~ age | Subject), d$age, d$Subject),
                 "at most the smallest distance")
  expect_equal(s$natural(s$par), c(range = 2.2))
  expect_error(spec_of(nlme::corExp(1, form = ~ age | Sex), d$age, d$Sex), "distance zero")
  expect_error(spec_of(nlme::corAR1(0.5), NULL, d$Subject), "'correlation' must be one of")
  expect_error(spec_of(nlme::corExp(1, form = ~ age | Subject), d$age[-1], d$Subject),
               "'covariates' must have one value")
  # C checks the options against the family
  s <- spec_of(nlme::corARMA(0.5, form = ~ 1 | Subject, p = 1), NULL, d$Subject)
  s$iopt <- c(1L, 1L)
  expect_error(c_matrix(s, 1:4), "malformed")
  s <- spec_of(nlme::corSymm(form = ~ 1 | Subject), NULL, d$Subject)
  s$cov[1] <- 7
  expect_error(c_matrix(s, 1:4), "malformed")
})

test_that("parameters outside the space give NULL", {
  d <- orthodont()
  arma <- spec_of(nlme::corARMA(c(0.5, 0.2), form = ~ 1 | Subject, p = 1, q = 1), NULL, d$Subject)
  expect_null(c_matrix(arma, 1:4, c(100, 0)))               # partial autocorrelation 1
  expect_null(c_matrix(arma, 1:4, c(0, NaN)))
  cs <- spec_of(nlme::corCompSymm(0.2, form = ~ 1 | Subject), NULL, d$Subject)
  expect_null(c_matrix(cs, 1:4, 40))                        # r = 1
  expect_null(c_matrix(cs, 1:4, -800))                      # r = -1/(M - 1)
  expect_false(is.null(c_matrix(cs, 1:4, cs$lower)))
  sy <- spec_of(nlme::corSymm(form = ~ 1 | Subject), NULL, d$Subject)
  expect_null(c_matrix(sy, 1:4, c(50, 0, 0, 0, 0, 0)))      # cor(1,2) = -1
  expect_false(is.null(c_matrix(sy, 1:4, c(sy$upper[1], 0, 0, 0, 0, 0))))
  ex <- spec_of(nlme::corExp(c(2, 0.1), form = ~ age | Subject, nugget = TRUE), d$age, d$Subject)
  expect_null(c_matrix(ex, 1:4, c(800, 0)))                 # range infinite
  expect_null(c_matrix(ex, 1:4, c(0, 800)))                 # nugget 1
  expect_null(c_matrix(ex, 1:4, c(NA, 0)))
})

# ---- printing ----------------------------------------------------------------------------------

test_that("print lines follow nlme's summary", {
  d <- orthodont()
  s <- spec_of(nlme::corARMA(c(0.4, 0.2), form = ~ 1 | Subject, p = 1, q = 1), NULL, d$Subject)
  expect_equal(lmmc:::cor_family_lines(s, s$par),
               c("Correlation Structure: ARMA(1,1)", " Formula: ~1 | Subject",
                 " Parameter estimate(s):", "  Phi1 Theta1 ", "   0.4    0.2 "))
  s <- spec_of(nlme::corSymm(c(0.3, 0.2, 0.1, 0.4, 0.25, 0.5), form = ~ 1 | Subject), NULL,
               d$Subject)
  expect_equal(lmmc:::cor_family_lines(s, s$par),
               c("Correlation Structure: General", " Formula: ~1 | Subject",
                 " Parameter estimate(s):", " Correlation: ", "  1    2    3   ",
                 "2 0.30          ", "3 0.20 0.40     ", "4 0.10 0.25 0.50"))
  s <- spec_of(nlme::corLin(form = ~ age | Subject, nugget = TRUE), d$age, d$Subject)
  expect_equal(lmmc:::cor_family_lines(s, s$par)[c(1, 4, 5)],
               c("Correlation Structure: Linear spatial correlation", " range nugget ",
                 "   2.2    0.1 "))
  skip_if_not_installed("nlme")
  for (cs in list(nlme::corCompSymm(0.3, form = ~ 1 | Subject),
                  nlme::corExp(c(2, 0.2), form = ~ age | Subject, nugget = TRUE),
                  nlme::corSymm(c(0.3, 0.2, 0.1, 0.4, 0.25, 0.5), form = ~ 1 | Subject))) {
    s <- spec_of(cs, if (inherits(cs, "corExp")) d$age, d$Subject)
    ours <- lmmc:::cor_family_lines(s, s$par)
    theirs <- utils::capture.output(print(summary(nlme::Initialize(cs, d))))
    expect_equal(trimws(ours, "right"), trimws(theirs, "right"))   # nlme: " Formula: ~1 | g "
  }
})

# ---- the structures inside nlme's fits ---------------------------------------------------------

test_that("at gls's estimates the C matrices reproduce gls's log-likelihood", {
  skip_if_not_installed("nlme")
  d <- orthodont()
  ml_loglik <- function(spec, par, y, X) {            # profiled ML log-likelihood by dense GLS
    R <- matrix(0, length(y), length(y))
    for (lev in levels(spec$groups)) {
      i <- which(spec$groups == lev)
      R[i, i] <- c_matrix(spec, i, par)
    }
    L <- t(chol(R))
    Xw <- forwardsolve(L, X)
    yw <- forwardsolve(L, y)
    r <- yw - Xw %*% qr.coef(qr(Xw), yw)
    n <- length(y)
    -n / 2 * (log(2 * pi * sum(r^2) / n) + 1) - sum(log(diag(L)))
  }
  d$occ <- (d$age - 8) / 2 + 1
  cases <- list(
    list(nlme::corARMA(form = ~ 1 | Subject, p = 1, q = 1), NULL),
    list(nlme::corCompSymm(form = ~ 1 | Subject), NULL),
    list(nlme::corSymm(form = ~ occ | Subject), d$occ),
    list(nlme::corExp(form = ~ age | Subject, nugget = TRUE), d$age),
    list(nlme::corSpher(form = ~ age | Subject), d$age))
  for (case in cases) {
    fit <- nlme::gls(distance ~ age * Sex, d, correlation = case[[1]], method = "ML")
    spec <- spec_of(case[[1]], case[[2]], d$Subject)
    par <- stats::coef(fit$modelStruct$corStruct)
    expect_equal(ml_loglik(spec, par, d$distance, model.matrix(~ age * Sex, d)),
                 as.numeric(logLik(fit)), tolerance = 1e-8)
    expect_equal(spec$natural(par),
                 stats::coef(fit$modelStruct$corStruct, unconstrained = FALSE),
                 tolerance = 1e-10, ignore_attr = spec$type == "corSymm")
  }
})
