# The profiled criterion computed by the C engine (R/objective.R, src/).

dyestuff <- readRDS(test_path("data", "Dyestuff.rds"))
sleep <- readRDS(test_path("data", "sleepstudy.rds"))
penicillin <- readRDS(test_path("data", "Penicillin.rds"))
pastes <- readRDS(test_path("data", "Pastes.rds"))

test_that("Dyestuff criterion at theta = 1 and theta = 0 equals lme4's", {
  f <- lmm_objective(lmm_pieces(Yield ~ 1 + (1 | Batch), dyestuff))
  expect_equal(f(1), 319.792389042002, tolerance = 1e-12)
  expect_equal(f(0), 326.023232155879, tolerance = 1e-12)
  expect_equal(f(0.848323783218823), 319.654276842342, tolerance = 1e-10)  # lme4's optimum
  fml <- lmm_objective(lmm_pieces(Yield ~ 1 + (1 | Batch), dyestuff), REML = FALSE)
  expect_equal(fml(0.752580695252293), 327.327059881135, tolerance = 1e-10) # lme4's ML optimum
  expect_error(f(c(1, 2)), "theta must have length 1")
})

# the engine against the dense textbook computation, at random theta, REML and ML
compare_dense <- function(pieces, thetas) {
  for (REML in c(TRUE, FALSE)) {
    f <- lmm_objective(pieces, REML = REML)
    for (th in thetas) {
      ref <- dense_pls(th, pieces$y - pieces$offset, pieces$X, pieces$reterms, pieces$weights, REML)
      expect_equal(f(th), ref$crit, tolerance = 1e-10)
    }
  }
}

test_that("criterion equals the dense computation: vector term, crossed, nested", {
  set.seed(1)
  compare_dense(lmm_pieces(Reaction ~ Days + (Days | Subject), sleep),
                list(c(1, 0, 1), c(0.9, -0.2, 0.3), c(0, 0, 0.5)))
  compare_dense(lmm_pieces(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin),
                list(c(1, 1), c(0.5, 3), c(0, 2)))
  compare_dense(lmm_pieces(strength ~ 1 + (1 | batch/cask), pastes),
                list(c(1, 1), c(3.5, 1.2), c(0, 0.1)))
})

test_that("criterion equals the dense computation with weights, offset and three crossed terms", {
  set.seed(2)
  n <- 300
  d <- data.frame(a = factor(sample(12, n, TRUE)), b = factor(sample(7, n, TRUE)),
                  c = factor(sample(4, n, TRUE)), x = rnorm(n), w = runif(n, 0.5, 2),
                  o = rnorm(n))
  d$y <- 1 + d$x + rnorm(12)[d$a] + rnorm(7)[d$b] + rnorm(n)
  pieces <- lmm_pieces(y ~ x + (x | a) + (1 | b) + (1 | c), d, weights = w, offset = o)
  compare_dense(pieces, list(c(1, 0, 1, 1, 1), c(0.7, 0.3, 0.2, 1.5, 0), c(0.2, -0.5, 1, 0.1, 2)))
})

test_that("the layout keeps nested designs sparse and crossed designs dense", {
  info <- function(pieces) {
    e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
    .Call(lmmc:::C_lmm_layout_info, e)
  }
  nested <- info(lmm_pieces(strength ~ 1 + (1 | batch/cask), pastes))
  expect_equal(unname(nested[c("nodes", "sparse_nodes", "dense_order")]), c(40, 40, 2))
  set.seed(3)
  d <- data.frame(s = factor(sample(400, 4000, TRUE)), t = factor(sample(60, 4000, TRUE)))
  d$y <- rnorm(4000)
  crossed <- info(lmm_pieces(y ~ 1 + (1 | s) + (1 | t), d))
  expect_equal(unname(crossed[c("nodes", "sparse_nodes", "dense_order")]), c(460, 400, 62))
})

# ---- precision: the engine's internal coordinates of [X y] (src/standardise.c) -----------------

precision_data <- function() {
  set.seed(11)
  n <- 500
  d <- data.frame(a = factor(sample(30, n, TRUE)), b = factor(sample(20, n, TRUE)), x = rnorm(n))
  d$y <- 2 + 0.5 * d$x + rnorm(30)[d$a] + rnorm(20)[d$b] + rnorm(n)
  d
}

test_that("the criterion is invariant to shifting y (intercept in X), to the dense computation", {
  d <- precision_data()
  p0 <- lmm_pieces(y ~ x + (1 | a) + (1 | b), d)
  for (REML in c(TRUE, FALSE)) {
    for (shift in c(0, 1e5, 1e8)) {
      d$ys <- d$y + shift
      f <- lmm_objective(lmm_pieces(ys ~ x + (1 | a) + (1 | b), d), REML = REML)
      for (th in list(c(1, 1), c(0.8, 1.3), c(0.1, 0))) {   # the same data, shifted back exactly
        ref <- dense_pls(th, d$ys - shift, p0$X, p0$reterms, REML = REML)$crit
        expect_equal(f(th), ref, tolerance = 1e-10)
      }
    }
  }
  # the fit: before, y + 1e8 gave a REML criterion of 792.16 and sigma 0.52
  d$ys <- d$y + 1e8
  fit <- lmm(ys ~ x + (1 | a) + (1 | b), d)
  fit0 <- lmm(y ~ x + (1 | a) + (1 | b), d)
  expect_equal(fit$crit, fit0$crit, tolerance = 1e-9)
  expect_equal(fit$sigma, fit0$sigma, tolerance = 1e-6)
  expect_equal(unname(fixef(fit) - c(1e8, 0)), unname(fixef(fit0)), tolerance = 1e-6)
  expect_equal(fit$crit, dense_pls(fit$theta, d$ys - 1e8, p0$X, p0$reterms)$crit, tolerance = 1e-10)
  if (requireNamespace("lme4", quietly = TRUE))    # lme4 at y + 1e8: REML criterion 1587.24 here
    expect_equal(fit$crit, lme4::REMLcrit(lme4::lmer(ys ~ x + (1 | a) + (1 | b), d)),
                 tolerance = 1e-6)
})

test_that("the constant in the span of X without an intercept column: shift invariance", {
  d <- precision_data()
  d$f <- factor(rep(1:2, 250))
  p0 <- lmm_pieces(y ~ 0 + f + x + (1 | a), d)
  d$ys <- d$y + 1e8
  ref <- dense_pls(0.9, d$ys - 1e8, p0$X, p0$reterms)$crit
  expect_equal(lmm_objective(lmm_pieces(ys ~ 0 + f + x + (1 | a), d))(0.9), ref, tolerance = 1e-10)
})

test_that("scaling y and x changes the criterion by the Jacobian terms only", {
  d <- precision_data()
  old <- options(warn = -1); on.exit(options(old))   # lmm_pieces: "very different scales"
  obj <- function(dd, REML) lmm_objective(lmm_pieces(y ~ x + (x | a) + (1 | b), dd), REML = REML)
  th <- c(0.9, 0.1, 0.3, 1.2)
  n <- nrow(d); p <- 2
  for (REML in c(TRUE, FALSE)) {
    base <- obj(d, REML)(th)
    for (s in c(1e-7, 3, 1e9)) {
      ds <- d; ds$y <- d$y * s
      expect_equal(obj(ds, REML)(th), base + (if (REML) n - p else n) * log(s^2), tolerance = 1e-12)
    }
    dx <- d; dx$x <- d$x * 1e6                 # x rescaled: theta's x row scales by 1e-6
    thx <- c(0.9, 0.1 * 1e-6, 0.3 * 1e-6, 1.2)     # and log|R_X|^2 grows by 2 log(1e6)
    expect_equal(obj(dx, REML)(thx), base + if (REML) 2 * log(1e6) else 0, tolerance = 1e-10)
    fx <- function(dd) lmm_objective(lmm_pieces(y ~ x + (1 | a) + (1 | b), dd), REML = REML)(c(0.9, 1.1))
    dx$x <- d$x * 1e6 + 1e7                      # a fixed-effect covariate shifted and rescaled
    expect_equal(fx(dx), fx(d) + if (REML) 2 * log(1e6) else 0, tolerance = 1e-10)
  }
  # the fitted values are equivariant
  fit <- lmm(y ~ x + (1 | a) + (1 | b), d)
  d2 <- d; d2$y <- d$y * 1e-6 - 3e3
  fit2 <- lmm(y ~ x + (1 | a) + (1 | b), d2)
  expect_equal(fit2$theta, fit$theta, tolerance = 1e-5)
  expect_equal(unname(fixef(fit2)), unname(fixef(fit) * 1e-6 - c(3e3, 0)), tolerance = 1e-6)
  expect_equal(fit2$sigma, fit$sigma * 1e-6, tolerance = 1e-6)
})

test_that("a user interrupt inside an evaluation is honoured and leaves the engine usable", {
  skip_on_cran()
  skip_on_os("windows")                                   # the interrupt comes from kill -INT
  set.seed(5)
  n <- 12000
  d <- data.frame(a = factor(sample(3000, n, TRUE)), b = factor(sample(2500, n, TRUE)))
  d$y <- rnorm(n)
  obj <- lmm_objective(lmm_pieces(y ~ 1 + (1 | a) + (1 | b), d))   # dense block of order 2486
  v <- obj(c(1, 1))
  system(sprintf("(sleep 0.3; kill -INT %d) >/dev/null 2>&1 &", Sys.getpid()))
  t0 <- Sys.time()
  r <- tryCatch({
    for (i in 1:100) obj(c(1 + i / 100, 1))                        # about 0.2 s each
    "finished"
  }, interrupt = function(e) "interrupted")
  expect_identical(r, "interrupted")
  # honoured within a fraction of a second of the signal (measured: 0.04 s here; on a dense
  # block of order 5000, 1.7 s per evaluation, 0.12 s against 1.0 s before)
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 1.5)
  expect_identical(obj(c(1, 1)), v)                                 # the engine is intact
})

test_that("on the reference models the fitted criterion with y shifted by 0, 1e5, 1e8 is the dense one", {
  models <- list(list(Reaction ~ Days + (Days | Subject), sleep),
                 list(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin),
                 list(strength ~ 1 + (1 | batch/cask), pastes),
                 list(Yield ~ 1 + (1 | Batch), dyestuff))
  for (mod in models) {
    d <- mod[[2]]
    yname <- all.vars(mod[[1]])[1]
    for (shift in c(0, 1e5, 1e8)) {
      ds <- d
      ds[[yname]] <- d[[yname]] + shift
      for (REML in c(TRUE, FALSE)) {
        fit <- lmm(mod[[1]], ds, REML = REML)
        p <- lmm_pieces(mod[[1]], ds)
        ref <- dense_pls(fit$theta, p$y - shift, p$X, p$reterms, REML = REML)$crit
        expect_equal(fit$crit, ref, tolerance = 1e-10)
      }
    }
  }
})
