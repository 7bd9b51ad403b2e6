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
