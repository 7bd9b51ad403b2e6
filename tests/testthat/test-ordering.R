# The permutation layer (src/ordering.c) and the dense split at any node (src/layout.c):
# fill-reducing orders of each term's levels must change nothing R sees.

# users x items with communities and hub items (bench/bench_scale.R's design, scaled down)
sim_hub_small <- function(ncomm = 20, csize = 15, nhub = 30, nusers = 800, per_comm = 5,
                          per_hub = 2, seed = 11) {
  set.seed(seed)
  comm <- sample.int(ncomm, nusers, replace = TRUE)
  hub_p <- 1 / seq_len(nhub)
  k <- per_comm + per_hub
  user <- rep(seq_len(nusers), each = k)
  item <- integer(length(user))
  for (u in seq_len(nusers))
    item[(u - 1L) * k + seq_len(k)] <- c((comm[u] - 1L) * csize + sample.int(csize, per_comm),
                                         ncomm * csize + sample.int(nhub, per_hub, prob = hub_p))
  nitems <- ncomm * csize + nhub
  item <- sample.int(nitems)[item]
  n <- length(user)
  x <- rnorm(n)
  y <- 3 + 0.5 * x + rnorm(nusers, sd = 0.8)[user] + rnorm(nitems, sd = 0.6)[item] +
    0.3 * rnorm(nitems)[item] * x + rnorm(n)
  data.frame(y = y, x = x, user = factor(user), item = factor(item))
}

# crossed a x b, b's levels of very unequal frequency: 30 frequent, 400 rare (most seen once)
sim_skewed_crossed <- function(n = 3000, na = 300, nfreq = 30, nrare = 400, seed = 5) {
  set.seed(seed)
  a <- sample.int(na, n, replace = TRUE)
  p <- c(rep(0.85 / nfreq, nfreq), rep(0.15 / nrare, nrare))
  b <- sample.int(nfreq + nrare, n, replace = TRUE, prob = p)
  b <- sample.int(nfreq + nrare)[b]
  x <- rnorm(n)
  y <- 1 + 0.5 * x + rnorm(na)[a] + rnorm(nfreq + nrare, sd = 0.5)[b] + rnorm(n, sd = 1.5)
  data.frame(y = y, x = x, a = factor(a), b = factor(b))
}

layout_of <- function(formula, data) {
  pc <- lmm_pieces(formula, data)
  lmmc:::engine_layout_prediction(
    lmmc:::engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset))
}

without_ordering <- function(expr) {
  old <- options(lmmc.ordering = "none")
  on.exit(options(old))
  expr
}

# Every per-level output of two fits agrees: estimates, modes, conditional variances, and
# predictions with standard errors (lmm_quadform's per-Z-column input).
expect_same_fit <- function(a, b, tol = 1e-8) {
  expect_equal(as.numeric(logLik(a)), as.numeric(logLik(b)), tolerance = tol)
  expect_equal(a$theta, b$theta, tolerance = tol)
  expect_equal(fixef(a), fixef(b), tolerance = tol)
  ra <- ranef(a, condVar = TRUE)
  rb <- ranef(b, condVar = TRUE)
  for (g in names(ra)) {
    expect_equal(as.matrix(ra[[g]]), as.matrix(rb[[g]]), tolerance = tol)
    expect_equal(attr(ra[[g]], "postVar"), attr(rb[[g]], "postVar"), tolerance = tol)
  }
}

test_that("a hub design is ordered: communities sparse, hubs in a dense block split inside the term", {
  d <- sim_hub_small()
  f <- y ~ x + (1 | user) + (1 | item)
  info <- layout_of(f, d)
  expect_equal(info[["ordered"]], 1)
  expect_gt(info[["split_in_term"]], 0)                # the dense block starts inside `item`
  expect_lt(info[["dense_order"]], 150)                # the hubs (30) and the busiest items, not 332
  plain <- without_ordering(layout_of(f, d))
  expect_equal(plain[["ordered"]], 0)
  expect_lt(info[["flops"]], plain[["flops"]] / 3)     # the prediction: much less work
  fit <- lmm(f, d, REML = FALSE)
  fit0 <- without_ordering(lmm(f, d, REML = FALSE))
  expect_same_fit(fit, fit0)
  # lme4 1.1-31 (bobyqa, rhoend 1e-10)
  expect_equal(deviance(fit), 18339.1487518987, tolerance = 1e-8)
  expect_equal(unname(fit$theta), c(0.759779750433138, 0.577944512856503), tolerance = 2e-5)
  expect_equal(unname(fixef(fit)), c(2.997487557395633, 0.529632014639252), tolerance = 1e-6)
  nd <- d[c(1, 50, 400, 2000), ]
  expect_equal(predict(fit, nd, se.fit = TRUE), without_ordering(predict(fit0, nd, se.fit = TRUE)),
               tolerance = 1e-8)
})

test_that("the terms are reordered when eliminating the larger one first fills in more", {
  d <- sim_hub_small(ncomm = 60)                       # 919 items rated, 800 users
  f <- y ~ x + (1 | user) + (1 | item)
  pc <- lmm_pieces(f, d)
  expect_gt(nlevels(pc$reterms[[1]]$group), 800)    # lme4 puts the items first
  info <- layout_of(f, d)
  expect_equal(info[["first_term"]], 2)                # users eliminated first
  expect_lt(info[["dense_order"]], 100)
  expect_equal(without_ordering(layout_of(f, d))[["first_term"]], 1)
  fit <- lmm(f, d, REML = FALSE)
  fit0 <- without_ordering(lmm(f, d, REML = FALSE))
  expect_same_fit(fit, fit0)
  nd <- d[c(2, 77, 900), ]
  expect_equal(predict(fit, nd, se.fit = TRUE), without_ordering(predict(fit0, nd, se.fit = TRUE)),
               tolerance = 1e-8)
})

test_that("random slopes over ordered levels agree with the unordered fit and lme4", {
  d <- sim_hub_small()
  f <- y ~ x + (1 | user) + (x | item)
  expect_equal(layout_of(f, d)[["ordered"]], 1)
  fit <- lmm(f, d)
  fit0 <- without_ordering(lmm(f, d))
  expect_same_fit(fit, fit0)
  # lme4 1.1-31 (REML, bobyqa, rhoend 1e-10)
  expect_equal(REMLcrit(fit), 18160.0655799566, tolerance = 1e-8)
  expect_equal(unname(fit$theta), c(0.8084536455592775, 0.6045417579273688, 0.0154411355440712,
                                    0.3196716311281150), tolerance = 1e-4)
  expect_equal(unname(fixef(fit)), c(2.996794078365228, 0.525193448781185), tolerance = 1e-6)
})

test_that("crossed levels of unequal frequency: the rare ones sparse, the frequent ones dense", {
  d <- sim_skewed_crossed()
  f <- y ~ x + (1 | a) + (1 | b)
  info <- layout_of(f, d)
  expect_equal(info[["ordered"]], 1)
  expect_gt(info[["split_in_term"]], 0)
  expect_lt(info[["dense_order"]], nlevels(d$b) / 2)
  fit <- lmm(f, d)
  fit0 <- without_ordering(lmm(f, d))
  expect_same_fit(fit, fit0)
  # lme4 1.1-31 (REML, bobyqa, rhoend 1e-10)
  expect_equal(REMLcrit(fit), 11567.4096437995, tolerance = 1e-8)
  expect_equal(unname(fit$theta), c(0.652411333848184, 0.293164595867092), tolerance = 2e-5)
  expect_equal(unname(fixef(fit)), c(0.970109943083484, 0.482810066054038), tolerance = 1e-6)
})

test_that("a residual structure over ordered levels gives the unordered fit", {
  d <- sim_hub_small(nusers = 300)
  f <- y ~ x + (1 | user) + (1 | item)
  cor <- nlme::corAR1(form = ~ 1 | user)
  fit <- lmm(f, d, correlation = cor)
  fit0 <- without_ordering(lmm(f, d, correlation = cor))
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(fit0)), tolerance = 1e-8)
  expect_equal(fit$theta, fit0$theta, tolerance = 1e-7)
  expect_equal(fixef(fit), fixef(fit0), tolerance = 1e-8)
  expect_equal(ranef(fit)$item, ranef(fit0)$item, tolerance = 1e-7)
  nd <- d[c(3, 30, 300), ]
  expect_equal(predict(fit, nd, se.fit = TRUE)$se.fit,
               without_ordering(predict(fit0, nd, se.fit = TRUE))$se.fit, tolerance = 1e-7)
})

test_that("the seconds per evaluation of a large dense block come from the timed kernels", {
  # a randomly crossed 5,000 x 3,000 design: dense block of order 3,003, over a second of dense
  # work at the old assumed 2e10 flop/s, so layout.c times the kernels (lmm_dense_rate)
  set.seed(11)
  n <- 30000
  d <- data.frame(a = factor(sample.int(5000, n, TRUE)), b = factor(sample.int(3000, n, TRUE)),
                  x = rnorm(n))
  d$y <- d$x + rnorm(5000)[d$a] + rnorm(3000)[d$b] + rnorm(n)
  info <- layout_of(y ~ x + (1 | a) + (1 | b), d)
  md <- info[["dense_order"]]
  expect_gt(md, 2715)                                # md^3 / 2e10 > 1 s
  dense_s <- info[["seconds"]]
  expect_true(is.finite(dense_s))
  # md^3 at a rate between 1e8 and 1e13 "flop/s" (any machine; the rate is kept per thread
  # count, and a busy machine may run the team on one thread, so a second call may differ)
  expect_gt(dense_s, md^3 / 1e13)
  expect_lt(dense_s, md^3 / 1e8)
  old <- options(lmmc.threads = 1)
  on.exit(options(old))
  one <- layout_of(y ~ x + (1 | a) + (1 | b), d)[["seconds"]]
  expect_identical(layout_of(y ~ x + (1 | a) + (1 | b), d)[["seconds"]], one)   # kept
  expect_gt(one, md^3 / 1e13)
})

test_that("the prediction is reported and memory_limit stops a fit before it starts", {
  d <- sim_skewed_crossed()
  f <- y ~ x + (1 | a) + (1 | b)
  info <- layout_of(f, d)
  expect_true(all(c("bytes", "flops", "seconds") %in% names(info)))
  expect_gt(info[["bytes"]], 8 * info[["dense_order"]]^2)
  expect_error(lmm(f, d, control = lmm_control(memory_limit = 1e4, backend = "direct")),
               "exact factor would need about .* GB .* over memory_limit")
  # "auto" (the default) turns to the iterative backend instead (R/iterative.R)
  expect_message(fi <- lmm(f, d, control = lmm_control(memory_limit = 1e4)),
                 "using the iterative backend")
  expect_false(is.null(fi$iterative))
  expect_error(lmm_control(memory_limit = -1), "memory_limit")
  pc <- lmm_pieces(f, d)                               # the prediction alone, nothing formed
  alone <- lmmc:::layout_prediction(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
  expect_equal(alone, info)
  e <- lmmc:::engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
  expect_equal(lmmc:::engine_layout_prediction(e), info)
  expect_silent(lmm(f, d, control = lmm_control(memory_limit = 1e9)))
  expect_message(lmmc:::report_layout(lmmc:::engine_for(lmm(f, d)), bytes = 1),
                 "exact factor takes about")
})

test_that("the ordered fits agree with lme4 (live)", {
  skip_if_not_installed("lme4")
  d <- sim_hub_small()
  f <- y ~ x + (1 | user) + (1 | item)
  fit <- lmm(f, d, REML = FALSE)
  ref <- lme4::lmer(f, d, REML = FALSE)
  expect_lte(deviance(fit), deviance(ref) + 1e-6)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-5)
  expect_equal(as.matrix(ranef(fit)$item), as.matrix(lme4::ranef(ref)$item), tolerance = 1e-4,
               ignore_attr = TRUE)
  s <- sim_skewed_crossed()
  fit <- lmm(y ~ x + (1 | a) + (1 | b), s)
  ref <- lme4::lmer(y ~ x + (1 | a) + (1 | b), s)
  expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-8)
  expect_equal(as.matrix(ranef(fit)$b), as.matrix(lme4::ranef(ref)$b), tolerance = 1e-4,
               ignore_attr = TRUE)
})

test_that("aggregated data over ordered levels: the counts follow the permutation", {
  d <- sim_hub_small(ncomm = 60)                       # terms and levels reordered
  f <- y ~ x + (1 | user) + (1 + x | item)    # vector term: levels with n_J < 2 drop out
  whole <- lmm(f, d, REML = FALSE)
  parts <- split(d, rep(1:3, length.out = nrow(d)))
  agg <- lmm(f, lmm_chunks(parts), REML = FALSE)
  expect_same_fit(agg, whole)
  # the moment start reads n_J, which lmm_set_counts takes in R's level order: setting the
  # data's own counts on an ordered engine must leave the moment estimates as they are
  pc <- lmm_pieces(f, d)
  e <- lmmc:::engine_setup(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
  expect_equal(lmmc:::engine_layout_prediction(e)[["ordered"]], 1)
  before <- lmmc:::moment_estimates(e, REML = FALSE)
  nJ <- lapply(pc$reterms, function(term) as.integer(table(term$group)))
  .Call(lmmc:::C_lmm_set_counts, e, nrow(d), nJ, 0)
  expect_equal(lmmc:::moment_estimates(e, REML = FALSE), before, tolerance = 1e-12)
  nJ[[1]] <- rev(nJ[[1]])                              # the test can fail: misplaced counts
  .Call(lmmc:::C_lmm_set_counts, e, nrow(d), nJ, 0)
  expect_false(isTRUE(all.equal(lmmc:::moment_estimates(e, REML = FALSE), before)))
})

# ---- the approximate minimum degree order itself (src/amd.c) and L's column counts ----------

# A symmetric graph from an edge list (1-based nodes) as 0-based (Cp, Ci), no diagonal
graph_of <- function(n, i, j) {
  keep <- i != j
  e <- unique(rbind(cbind(i[keep], j[keep]), cbind(j[keep], i[keep])))
  e <- e[order(e[, 2], e[, 1]), , drop = FALSE]
  list(Cp = as.integer(c(0, cumsum(tabulate(e[, 2], n)))), Ci = as.integer(e[, 1] - 1L), n = n)
}

amd_of <- function(g, size = rep(1L, g$n), cls = rep(0L, g$n))
  .Call(lmmc:::C_lmm_amd_test, g$Cp, g$Ci, as.integer(size), as.integer(cls))

# The scalar rows below the diagonal of each column of L when the graph is eliminated in
# `order`, by eliminating node after node (the definition the skeleton count must meet)
rows_by_elimination <- function(g, order, size = rep(1L, g$n)) {
  n <- g$n
  B <- matrix(FALSE, n, n)
  for (j in seq_len(n)) {
    r <- g$Ci[seq.int(g$Cp[j] + 1L, length.out = g$Cp[j + 1L] - g$Cp[j])] + 1L
    B[r, j] <- TRUE
  }
  B <- B[order, order]
  s <- size[order]
  rows <- numeric(n)
  for (k in seq_len(n)) {
    nb <- which(B[, k])
    nb <- nb[nb > k]
    rows[k] <- sum(s[nb])
    if (length(nb) > 1) B[nb, nb] <- TRUE
  }
  rows
}

fill_of <- function(rows) sum(rows)

test_that("the column counts of L match the elimination, in any order and with node sizes", {
  set.seed(21)
  for (trial in 1:6) {
    n <- sample(20:60, 1)
    m <- sample(n:(3 * n), 1)
    g <- graph_of(n, sample.int(n, m, TRUE), sample.int(n, m, TRUE))
    size <- sample(1:3, n, TRUE)
    res <- amd_of(g, size)
    expect_setequal(res$order, seq_len(n))
    expect_equal(res$rows, rows_by_elimination(g, res$order, size))
  }
})

test_that("AMD respects the classes, puts dense nodes last in theirs and reduces fill", {
  set.seed(4)
  k <- 20                                              # a k x k grid: AMD's textbook case
  id <- matrix(seq_len(k * k), k)
  g <- graph_of(k * k, c(id[-k, ], id[, -k]), c(id[-1, ], id[, -1]))
  res <- amd_of(g)
  natural <- rows_by_elimination(g, seq_len(k * k))
  expect_equal(res$rows, rows_by_elimination(g, res$order))
  expect_lt(fill_of(res$rows), 0.6 * fill_of(natural))   # measured: 0.43
  # users x items with a hub item next to every user: dense (> 10 sqrt(n) neighbours)
  nu <- 600; ni <- 60
  u <- rep(seq_len(nu), each = 3)
  it <- c(rbind(sample.int(ni - 1, nu, TRUE), sample.int(ni - 1, nu, TRUE), ni))
  g <- graph_of(nu + ni, u, nu + it)
  cls <- rep(0:1, c(nu, ni))
  res <- amd_of(g, cls = cls)
  expect_true(all(diff(cls[res$order]) >= 0))          # users, then items
  expect_equal(res$order[nu + ni], nu + ni)             # the hub item last
  expect_equal(res$rows, rows_by_elimination(g, res$order))
  # twins (the same neighbours) are merged into one supervariable: eliminated together
  g <- graph_of(8, c(1, 1, 2, 2, 3, 3, 4, 5, 6, 7), c(3, 4, 3, 4, 5, 6, 6, 7, 8, 8))
  res <- amd_of(g)
  expect_equal(abs(diff(match(c(1, 2), res$order))), 1)
  expect_error(.Call(lmmc:::C_lmm_amd_test, g$Cp, g$Ci, rep(1L, 7), rep(0L, 8)), "size")
})

test_that("a bad term order is given up quickly on a large users x items design", {
  set.seed(8)
  nu <- 20000; ni <- 2000; n <- 1e5
  d <- data.frame(u = factor(sample.int(nu, n, TRUE)),
                  i = factor(sample.int(ni, n, TRUE, prob = 1 / seq_len(ni)^0.9)), y = rnorm(n))
  pc <- lmm_pieces(y ~ 1 + (1 | u) + (1 | i), d)
  t <- system.time(info <- lmmc:::layout_prediction(pc$y, pc$X, pc$reterms, pc$weights,
                                                    pc$offset))[["elapsed"]]
  expect_lt(t, 20)             # measured: 2.7 s at load 6 (the exact-degree order before: 8.5 s)
  expect_equal(info[["first_term"]], 1)                # the users first
})
