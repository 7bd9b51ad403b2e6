# Starting values by moments (R/start.R and src/moments.c, start_theta() in R/fit.R) and the
# evaluation counts they give with the optimiser (src/optimise.c).  Reference numbers from lme4
# 1.1-31 (lmer, default settings): REMLcrit / deviance, theta and fit@optinfo$feval, recorded
# literally.

data_rds <- function(name) readRDS(test_path("data", paste0(name, ".rds")))

engine_of <- function(p, weights = p$weights)
  lmmc:::engine_setup(p$y, p$X, p$reterms, weights, p$offset)

moment_start <- function(formula, data, REML = TRUE) {
  p <- lmm_pieces(formula, data, REML = REML)
  lmmc:::theta_moments(engine_of(p), REML)
}

test_that("balanced designs: the moment start is the REML optimum (3 digits)", {
  # one-way ANOVA = REML when balanced; lme4 theta 0.848323783
  expect_identical(moment_start(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff")), 0.848)
  # nested (batch/cask), lme4 theta 3.52690179, 1.5634614
  expect_identical(moment_start(strength ~ 1 + (1 | batch / cask), data_rds("Pastes")),
                   c(3.53, 1.56))
  # balanced crossed (plate x sample), lme4 theta 1.53967555, 3.51251886
  expect_identical(moment_start(diameter ~ 1 + (1 | plate) + (1 | sample), data_rds("Penicillin")),
                   c(1.54, 3.51))
  # vector term from per-subject regressions; lme4 theta 0.966741774, 0.0151690589, 0.230909953
  expect_identical(moment_start(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy")),
                   c(0.967, 0.0152, 0.231))
  # ML: level covariances with divisor J; lme4 ML theta 0.929190605, 0.0181657547, 0.222643206
  expect_identical(moment_start(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy"), FALSE),
                   c(0.929, 0.0182, 0.223))
})

test_that("a variance estimated at or below 0 starts at the floor, off the boundary", {
  # Dyestuff2: lme4's optimum is theta = 0
  expect_identical(moment_start(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff2")), 0.1)
  d <- data.frame(y = c(0.71, 0.43, 0.77, 0.37, 0.58, 0.69, 0.72, 0.12,
                        0.91, 0.53, 0.29, 0.39, 0.75, 0.51, 0.42, 0.31),
                  id = rep(c(1:4, 26:29), each = 2),
                  c1 = c(1, 2, 1, 2, 1, 2, 2, 1, 2, 1, 1, 2, 2, 1, 1, 2),
                  c2 = rep(1:2, each = 8))
  expect_identical(moment_start(y ~ (1 | id) + (1 | c1) + (1 | c2), d), c(0.1, 0.1, 0.1))
})

test_that("moment equation coefficients: nesting and balanced crossing", {
  p <- lmm_pieces(strength ~ 1 + (1 | batch / cask), data_rds("Pastes"))
  est <- lmmc:::moment_estimates(engine_of(p))       # terms: 30 casks, 3 in each of 10 batches
  # each cask mean carries its batch's effect: kappa = (30 - 90 / 30) / 29; none within a cask
  expect_equal(c(est$kappa[1, 2], est$lambda[1, 2]), c(27 / 29, 0))
  # each batch mean averages 3 cask effects: kappa = 1/3; within a batch casks vary fully
  expect_equal(c(est$kappa[2, 1], est$lambda[2, 1]), c(1 / 3, 0.8))
  p <- lmm_pieces(diameter ~ 1 + (1 | plate) + (1 | sample), data_rds("Penicillin"))
  est <- lmmc:::moment_estimates(engine_of(p))
  expect_equal(c(est$kappa[1, 2], est$lambda[1, 2]), c(0, 1), tolerance = 1e-12)   # sample effects
})                                                                  # cancel between plates

test_that("terms that cannot be estimated keep lme4's start; weights are used", {
  d <- data_rds("sleepstudy")
  small <- d[d$Subject %in% levels(d$Subject)[1:2] & d$Days < 2, ]   # 2 levels, 2 rows each
  small$Subject <- droplevels(small$Subject)
  p <- lmm_pieces(Reaction ~ 1 + (Days | Subject), small,
                  control = lmm_control(check.nobs.vs.nRE = "ignore"))
  expect_identical(lmmc:::theta_moments(engine_of(p)), c(1, 0, 1))
  p <- lmm_pieces(Reaction ~ Days + (1 | Subject), d)
  w <- rep(c(1, 4), length.out = nrow(d))
  expect_false(identical(lmmc:::theta_moments(engine_of(p, w)), lmmc:::theta_moments(engine_of(p))))
})

# ---- the C estimates (from A) against the estimates from the rows ----------------------------

# The row-level moment estimates (lmmc's R/start.R before src/moments.c), unrounded: a reference.
ref_moments <- function(y, X, reterms, weights, offset, REML = TRUE) {
  sw <- sqrt(weights)
  r <- qr.resid(qr(X * sw), (y - offset) * sw)
  Zs <- lapply(reterms, function(term) as.matrix(term$Xt) * sw)
  codes <- lapply(reterms, function(term) as.integer(term$group))
  ests <- lapply(seq_along(reterms), function(t) ref_term(r, Zs[[t]], codes[[t]], REML))
  Sigmas <- lapply(ests, `[[`, "Sigma")
  s2w <- vapply(ests, `[[`, 1, "s2w")
  s2 <- if (any(is.finite(s2w))) min(s2w, na.rm = TRUE) else NA_real_
  sys <- ref_system(Zs, codes, ests)
  if (!is.null(sys)) {
    s2 <- sys$s2
    Sigmas[sys$terms] <- lapply(sys$sigma2, as.matrix)
  }
  ones <- function(terms) lmmc:::theta_start(terms)
  if (!is.finite(s2) || s2 <= 0) return(list(theta = ones(reterms), s2w = s2w))
  theta <- unlist(lapply(seq_along(reterms), function(t) {
    if (is.null(Sigmas[[t]])) return(ones(reterms[t]))
    ref_template(Sigmas[[t]] / s2, sqrt(colMeans(Zs[[t]]^2)))
  }))
  list(theta = theta, s2 = s2, s2w = s2w, Sigma = Sigmas)
}

ref_term <- function(r, Z, g, REML) {
  p <- ncol(Z)
  nl <- max(g)
  ZZ <- rowsum(Z[, rep(seq_len(p), p), drop = FALSE] * Z[, rep(seq_len(p), each = p), drop = FALSE],
               g, reorder = TRUE)
  Zr <- rowsum(Z * r, g, reorder = TRUE)
  rr <- rowsum(r^2, g, reorder = TRUE)[, 1]
  nj <- tabulate(g, nl)
  if (p == 1L) {
    ok <- ZZ[, 1] > 1e-10 * max(ZZ[, 1])
    B <- matrix(Zr[ok, 1] / ZZ[ok, 1])
    inv_mean <- matrix(mean(1 / ZZ[ok, 1]))
    rss <- rr[ok] - Zr[ok, 1] * B[, 1]
    nj <- nj[ok]
  } else {
    fit <- which(nj >= p)
    ok <- vapply(fit, function(j) {
      G <- matrix(ZZ[j, ], p)
      ch <- tryCatch(chol(G), error = function(e) NULL)
      !is.null(ch) && min(diag(ch)^2) > 1e-10 * max(diag(G))
    }, TRUE)
    levels_ok <- fit[ok]
    nj <- nj[levels_ok]
    if (length(levels_ok) < 2L) return(list(Sigma = NULL, s2w = NA_real_))
    inv <- lapply(levels_ok, function(j) solve(matrix(ZZ[j, ], p)))
    B <- t(vapply(seq_along(levels_ok), function(i) drop(inv[[i]] %*% Zr[levels_ok[i], ]),
                  numeric(p)))
    inv_mean <- Reduce(`+`, inv) / length(inv)
    rss <- rr[levels_ok] - rowSums(Zr[levels_ok, , drop = FALSE] * B)
  }
  df_w <- sum(pmax(nj - p, 0))
  s2w <- if (df_w > 0) max(sum(rss), 0) / df_w else NA_real_
  if (nrow(B) < 2L || !is.finite(s2w)) return(list(Sigma = NULL, s2w = s2w))
  covb <- stats::cov(B) * if (REML) 1 else (nrow(B) - 1) / nrow(B)
  Sigma <- covb - s2w * inv_mean
  list(Sigma = (Sigma + t(Sigma)) / 2, s2w = s2w, covb = covb[1], inv_mean = inv_mean[1])
}

ref_system <- function(Zs, codes, ests) {
  S <- which(vapply(seq_along(Zs), function(t)
    ncol(Zs[[t]]) == 1L && !is.null(ests[[t]]$Sigma), TRUE))
  if (!length(S)) return(NULL)
  k <- length(S)
  tstar <- S[which.min(vapply(ests[S], `[[`, 1, "s2w"))]
  A <- diag(k + 1)
  rhs <- c(vapply(ests[S], `[[`, 1, "covb"), ests[[tstar]]$s2w)
  A[seq_len(k), k + 1] <- vapply(ests[S], `[[`, 1, "inv_mean")
  for (a in seq_len(k)) for (b in seq_len(k)) if (a != b)
    A[a, b] <- ref_pair(Zs[[S[a]]][, 1], codes[[S[a]]], Zs[[S[b]]][, 1], codes[[S[b]]])[["kappa"]]
  for (b in seq_len(k)) if (S[b] != tstar)
    A[k + 1, b] <- ref_pair(Zs[[tstar]][, 1], codes[[tstar]], Zs[[S[b]]][, 1],
                            codes[[S[b]]])[["lambda"]]
  sol <- tryCatch(solve(A, rhs), error = function(e) NULL)
  if (is.null(sol) || !all(is.finite(sol)) || sol[k + 1] <= 0) return(NULL)
  list(terms = S, sigma2 = as.list(sol[seq_len(k)]), s2 = sol[k + 1])
}

ref_pair <- function(zt, jt, zu, ku) {
  d <- rowsum(zt^2, jt, reorder = TRUE)[, 1]
  used <- d > 1e-10 * max(d)
  J <- sum(used)
  keep <- used[jt]
  Jt <- length(d)
  cell <- (jt - 1) + Jt * (ku - 1)
  cells <- unique(cell[keep])
  h <- rowsum((zt * zu)[keep], match(cell[keep], cells))[, 1]
  G <- h / d[cells %% Jt + 1]
  colG <- rowsum(G, cells %/% Jt)[, 1]
  c(kappa = (sum(G^2) - sum(colG^2) / J) / (J - 1),
    lambda = (sum(zu[keep]^2) - sum(h * G)) / (sum(keep) - J))
}

ref_template <- function(Sigma, rms) {
  rms[!(rms > 0)] <- 1
  S <- Sigma * outer(rms, rms)
  e <- eigen(S, symmetric = TRUE)
  S <- e$vectors %*% diag(pmax(e$values, 0.1^2), length(rms)) %*% t(e$vectors)
  L <- t(chol((S + t(S)) / 2)) / rms
  L[lower.tri(L, diag = TRUE)]
}

# C against the reference: the unrounded theta, s2, s2w and Sigma, and the rounded start.
expect_moments_match <- function(formula, data, REML = TRUE, weights = NULL, tol = 1e-9) {
  control <- lmm_control(check.nobs.vs.nRE = "ignore", check.nobs.vs.nlev = "ignore")
  p <- lmm_pieces(formula, data, REML = REML, control = control)
  w <- if (is.null(weights)) p$weights else weights
  ref <- ref_moments(p$y, p$X, p$reterms, w, p$offset, REML)
  est <- lmmc:::moment_estimates(engine_of(p, w), REML)
  label <- deparse(formula)
  expect_equal(est$theta, ref$theta, tolerance = tol, label = label)
  expect_equal(est$s2w, ref$s2w, tolerance = tol, label = label)
  if (!is.null(ref$s2)) expect_equal(est$s2, ref$s2, tolerance = tol, label = label)
  if (!is.null(ref$Sigma))
    for (t in seq_along(ref$Sigma)) expect_equal(est$Sigma[[t]], ref$Sigma[[t]], tolerance = tol)
  expect_identical(lmmc:::theta_moments(engine_of(p, w), REML), signif(ref$theta, 3))
}

test_that("the start from A is the start from the rows", {
  sleep <- data_rds("sleepstudy")
  expect_moments_match(Reaction ~ Days + (Days | Subject), sleep)
  expect_moments_match(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  expect_moments_match(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep)
  expect_moments_match(diameter ~ 1 + (1 | plate) + (1 | sample), data_rds("Penicillin"))
  expect_moments_match(strength ~ 1 + (1 | batch / cask), data_rds("Pastes"))
  expect_moments_match(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff"))
  # weighted, with an offset
  w <- rep(c(1, 4, 0.5), length.out = nrow(sleep))
  expect_moments_match(Reaction ~ Days + (Days | Subject), sleep, weights = w)
  expect_moments_match(Reaction ~ Days + offset(2 * Days) + (1 | Subject), sleep, weights = w)
  # unbalanced crossed, three terms, a vector term
  set.seed(3)
  d <- data.frame(a = factor(sample(12, 300, TRUE)), b = factor(sample(7, 300, TRUE)),
                  x = runif(300))
  d$g <- factor(sample(20, 300, TRUE, prob = (1:20)^2))
  d$y <- d$x + rnorm(12)[d$a] + rnorm(7)[d$b] + rnorm(20)[d$g] * (1 + d$x) + rnorm(300)
  expect_moments_match(y ~ x + (1 | a) + (1 | b), d)
  expect_moments_match(y ~ x + (1 | a) + (1 | b) + (x | g), d, weights = runif(300, 0.5, 2))
  expect_moments_match(y ~ x + (1 | a) + (1 | a:b), d, REML = FALSE)
  # a vector term with levels of fewer rows than columns (fitted exactly: no residual, no df)
  few <- sleep[!(sleep$Subject %in% levels(sleep$Subject)[1:4] & sleep$Days > 0), ]
  few <- few[!(few$Subject %in% levels(few$Subject)[5:6] & few$Days > 1), ]
  expect_moments_match(Reaction ~ Days + (Days | Subject), few)
  expect_moments_match(Reaction ~ Days + (Days + I(Days^2) | Subject), few)
  expect_moments_match(Reaction ~ Days + (Days | Subject), few, weights = w[seq_len(nrow(few))])
  # the singular table and Dyestuff2 (estimates at the floor)
  expect_moments_match(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff2"))
})

test_that("levels fitted inexactly and left out: their rows pool into the within variance", {
  # a scalar term whose z is 0 in two levels: the row-level start leaves those rows out, the
  # start from A counts them as within-level rows (sums of squares and df, and in lambda)
  set.seed(5)
  d <- data.frame(g = factor(rep(1:8, each = 6)), h = factor(rep(1:6, 8)), x = rnorm(48))
  d$z <- ifelse(as.integer(d$g) <= 2, 0, 1)
  d$y <- d$x + rnorm(8)[d$g] * d$z + rnorm(6)[d$h] + rnorm(48)
  p <- lmm_pieces(y ~ x + (0 + z | g) + (1 | h), d)
  est <- lmmc:::moment_estimates(engine_of(p))
  r <- qr.resid(qr(p$X), p$y)
  used <- d$z != 0
  within_g <- sum(tapply(r, d$g, function(v) sum((v - mean(v))^2))[3:8]) + sum(r[!used]^2)
  expect_equal(est$s2w[1], within_g / (48 - 6))
  expect_true(all(is.finite(est$theta)) && all(est$theta > 0))
})

test_that("start_method = 'ones' is lme4's start and reaches the same optimum", {
  d <- data_rds("Penicillin")
  f <- diameter ~ 1 + (1 | plate) + (1 | sample)
  fit <- lmm(f, d)
  ones <- lmm(f, d, control = lmm_control(start_method = "ones"))
  expect_equal(ones$crit, fit$crit, tolerance = 1e-10)
  expect_gt(ones$optinfo$feval, fit$optinfo$feval)
  expect_error(lmm_control(start_method = "zero"), "'start_method' must be one of")
  p <- lmm_pieces(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy"))
  lower <- c(0, -Inf, 0)
  engine <- engine_of(p)
  start <- function(start, control)
    lmmc:::start_theta(start, p$reterms, lower, engine, TRUE, control)
  expect_identical(start(NULL, lmm_control(start_method = "ones")), c(1, 0, 1))
  th <- start(NULL, lmm_control())
  expect_equal(c(th), c(0.967, 0.0152, 0.231))
  expect_equal(attr(th, "rhobeg"), 0.05 * 0.231)        # 5% of the least diagonal entry
  expect_equal(lmmc:::optimiser_settings(lmm_control(), th)$rhobeg, 0.05 * 0.231)
  expect_identical(start(c(2, 0, -1), lmm_control()), c(2, 0, 0))
})

# Models whose data need no lme4: lme4's criterion and evaluation count.
count_cases <- list(
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", TRUE, 1743.62827196, 43),
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", FALSE, 1751.93934449, 53),
  list(diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin", TRUE, 330.860589, 41),
  list(strength ~ 1 + (1 | batch / cask), "Pastes", TRUE, 246.990745853, 36),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff", TRUE, 319.654276842, 17),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff2", TRUE, 161.828277812, 10),
  list(angle ~ recipe * temperature + (1 | recipe:replicate), "cake", TRUE, 1638.62145988, 13),
  list(distance ~ age + (age | Subject), "Orthodont", TRUE, 442.636685982, 88),
  list(distance ~ age + (age | Subject), "Orthodont", FALSE, 439.21160129, 107),
  list(score ~ Machine + (1 | Worker / Machine), "Machines", TRUE, 215.687568008, 40),
  list(score ~ Machine + (1 | Worker / Machine), "Machines", FALSE, 225.26944694, 54),
  list(travel ~ 1 + (1 | Rail), "Rail", TRUE, 122.177000809, 18),
  list(effort ~ Type + (1 | Subject), "ergoStool", TRUE, 121.130788702, 14)
)

test_that("fewer evaluations than lme4, and an optimum at least as good", {
  for (case in count_cases) {
    d <- if (case[[2]] %in% c("Orthodont", "Machines", "Rail", "ergoStool"))
      as.data.frame(do.call(`::`, list("nlme", case[[2]]))) else data_rds(case[[2]])
    fit <- suppressMessages(lmm(case[[1]], d, REML = case[[3]]))
    label <- paste(deparse(case[[1]]), if (case[[3]]) "REML" else "ML")
    expect_lt(fit$optinfo$feval, case[[5]], label = label)
    expect_lte(fit$crit, case[[4]] + 1e-9 * abs(case[[4]]), label = label)
    expect_true(fit$optinfo$converged, label = label)
  }
})

test_that("live: fewer evaluations than lme4 on the same models", {
  skip_if_not_installed("lme4")
  for (case in count_cases[c(1, 3, 8)]) {
    d <- if (case[[2]] == "Orthodont") as.data.frame(nlme::Orthodont) else data_rds(case[[2]])
    ref <- lme4::lmer(case[[1]], d, REML = case[[3]])
    fit <- lmm(case[[1]], d, REML = case[[3]])
    expect_lt(fit$optinfo$feval, ref@optinfo$feval)
    expect_lte(fit$crit, lme4::REMLcrit(ref) + 1e-9 * abs(lme4::REMLcrit(ref)))
  }
})
