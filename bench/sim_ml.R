## The ml-32m-shaped design shared by iterative_ml.R and ml_cut.R (issue 11, section 4): nu users
## x ni items, n ratings.  Item popularity is Zipf-Mandelbrot, weight (rank + 279)^-1.87: with
## ml-32m's size (200,948 users, 84,432 items, 32e6 ratings) that puts about 100,000 ratings on
## the most popular item and leaves about 16,000 items with at least 50 ratings, as in ml-32m (a
## pure power law cannot do both: with 1 / rank^0.9 nearly every item has 50 ratings).  User
## activity is exponential (weights rexp(nu)); y = 3.5 + user + item + noise, SDs 0.4, 0.5, 0.9;
## fitted as y ~ 1 + (1 | u) + (1 | i).  Returns integer codes, not factors (cheap to cut).
sim_ml <- function(n = 32e6, nu = 200948, ni = 84432, seed = 32) {
  set.seed(seed)
  u <- sample.int(nu, n, TRUE, prob = rexp(nu))
  i <- sample.int(ni, n, TRUE, prob = (seq_len(ni) + 279)^-1.87)
  y <- 3.5 + rnorm(nu, sd = 0.4)[u] + rnorm(ni, sd = 0.5)[i] + rnorm(n, sd = 0.9)
  list(u = u, i = i, y = y, nu = nu, ni = ni)
}
