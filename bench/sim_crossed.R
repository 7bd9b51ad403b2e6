## The randomly crossed benchmark design shared by bench.R, dense_update.R, bench_scale.R and
## iterative.R: n rows, factors f1 and f2 with n1 and n2 levels assigned at random (fixed seed),
## y = 1 + 0.5 x + a + b + e with SDs 1, 0.5 and 2; fitted as y ~ x + (1 | f1) + (1 | f2).
sim_crossed <- function(n = 1e6, n1 = 1e4, n2 = 1e3, seed = 42) {
  set.seed(seed)
  f1 <- sample.int(n1, n, replace = TRUE)
  f2 <- sample.int(n2, n, replace = TRUE)
  x <- rnorm(n)
  y <- 1 + 0.5 * x + rnorm(n1)[f1] + rnorm(n2, sd = 0.5)[f2] + rnorm(n, sd = 2)
  data.frame(y = y, x = x, f1 = factor(f1), f2 = factor(f2))
}

