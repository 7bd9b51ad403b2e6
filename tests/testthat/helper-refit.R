# A small randomly crossed (1 | a) + (1 | b) design and an iterative control with few probes,
# for the tests that refits keep the fit's control (test-anova.R, test-influence.R, test-icc.R,
# test-refit-aggregated.R): the iterative criterion is far enough (Monte Carlo error) from the
# exact one that a refit made with another backend shows.
small_crossed <- function(n = 1200, n1 = 100, n2 = 40, seed = 5) {
  set.seed(seed)
  a <- sample.int(n1, n, TRUE)
  b <- sample.int(n2, n, TRUE)
  x <- rnorm(n)
  data.frame(y = 1 + 0.5 * x + rnorm(n1)[a] + rnorm(n2, sd = 0.5)[b] + rnorm(n), x = x,
             a = factor(sprintf("a%03d", a)), b = factor(sprintf("b%02d", b)))
}
iterative_control <- function() lmm_control(backend = "iterative", exact_levels = 0L, probes = 12L)
