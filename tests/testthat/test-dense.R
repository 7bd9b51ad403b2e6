# The dense block's kernels (src/dense_chol.c, src/dense_inverse.c, src/dense_kernel.c) and the
# conditional variances that use the inverse (src/condvar.c).

spd <- function(n, seed) {
  set.seed(seed)
  X <- matrix(rnorm(n * n), n)
  crossprod(X) + n * diag(n)                # well conditioned
}

test_that("dense inverse from the Cholesky factor equals chol2inv around the tile sizes", {
  for (n in c(1, 3, 8, 9, 97, 300)) {
    A <- spd(n, n)
    L <- t(chol(A))
    L[upper.tri(L)] <- 1e3                    # the strict upper triangle must not be read
    S <- .Call(lmmc:::C_lmm_inverse_dense, L)
    ref <- chol2inv(t(L * lower.tri(L, diag = TRUE)))
    expect_equal(S, ref, tolerance = 1e-12, label = sprintf("inverse (n = %d)", n))
    expect_identical(S, t(S))                 # both triangles, exactly symmetric
    expect_lt(max(abs(S %*% A - diag(n))), 1e-12)
  }
})

test_that("dense inverse handles a badly scaled factor and rejects bad input", {
  L <- diag(c(1e-4, 1, 1e4))
  L[2, 1] <- 3; L[3, 1] <- -2; L[3, 2] <- 0.5
  expect_equal(.Call(lmmc:::C_lmm_inverse_dense, L), chol2inv(t(L)), tolerance = 1e-12)
  expect_error(.Call(lmmc:::C_lmm_inverse_dense, matrix(1, 2, 3)), "square numeric matrix")
  expect_error(.Call(lmmc:::C_lmm_inverse_dense, diag(c(1, 0, 1))), "element 2")
  expect_identical(dim(.Call(lmmc:::C_lmm_inverse_dense, matrix(0, 0, 0))), c(0L, 0L))
})

test_that("dense Cholesky (sharing the tile kernel) equals chol()", {
  for (n in c(1, 9, 97, 300)) {
    A <- spd(n, 10 + n)
    expect_equal(.Call(lmmc:::C_lmm_chol_dense, A), t(chol(A)), tolerance = 1e-12,
                 label = sprintf("Cholesky (n = %d)", n))
  }
  expect_error(.Call(lmmc:::C_lmm_chol_dense, diag(c(1, -1))), "not positive definite")
})

# The kernels of each instruction set the processor has ("none" always; "avx2", "avx512" fall
# back to the widest available), on one thread and on two.
with_dense <- function(simd, threads, code) {
  old <- options(lmmc.simd = simd, lmmc.threads = threads)
  on.exit(options(old))
  code
}
simds <- c("none", "avx2", "avx512")

test_that("dense Cholesky equals chol() at sizes around the tiles, panels and thread limit", {
  # tiles 8 x 4, 12 x 4, 24 x 8; panels of 96 (diagonal blocks by 24); threads from order 500
  sizes <- c(2, 5, 7, 8, 11, 13, 23, 24, 25, 47, 95, 96, 97, 121, 191, 192, 193, 289, 385, 499,
             500, 577)
  for (simd in simds) for (threads in 1:2) for (n in sizes) {
    A <- spd(n, n)
    L <- with_dense(simd, threads, .Call(lmmc:::C_lmm_chol_dense, A))
    expect_equal(L, t(chol(A)), tolerance = 1e-12,
                 label = sprintf("Cholesky (%s, %d threads, n = %d)", simd, threads, n))
  }
})

test_that("dense Cholesky reads only the lower triangle", {
  for (n in c(50, 300)) {
    A <- spd(n, 3 * n)
    B <- A
    B[upper.tri(B)] <- NaN
    for (threads in 1:2)
      expect_identical(with_dense("avx512", threads, .Call(lmmc:::C_lmm_chol_dense, B)),
                       with_dense("avx512", threads, .Call(lmmc:::C_lmm_chol_dense, A)))
  }
})

test_that("dense Cholesky reports the first column where A is not positive definite", {
  n <- 600
  A <- spd(n, 7)
  L <- t(chol(A))
  # lowering A_jj by more than L_jj^2 leaves the leading j - 1 columns alone and makes the
  # pivot of column j negative
  for (j in c(1, 2, 24, 25, 96, 97, 150, 192, 193, 289, 577, 600)) for (threads in 1:2) {
    B <- A
    B[j, j] <- B[j, j] - 1.5 * L[j, j]^2
    expect_error(with_dense("avx512", threads, .Call(lmmc:::C_lmm_chol_dense, B)),
                 sprintf("not positive definite \\(column %d\\)", j),
                 label = sprintf("column %d, %d threads", j, threads))
  }
  B <- A
  B[200, 200] <- NaN
  expect_error(.Call(lmmc:::C_lmm_chol_dense, B), "column 200")
})

test_that("dense Cholesky and inverse on two threads equal one thread", {
  for (n in c(500, 577, 1001)) {
    A <- spd(n, n + 1)
    L1 <- with_dense("avx512", 1, .Call(lmmc:::C_lmm_chol_dense, A))
    L2 <- with_dense("avx512", 2, .Call(lmmc:::C_lmm_chol_dense, A))
    expect_equal(L2, L1, tolerance = 1e-12, label = sprintf("Cholesky (n = %d)", n))
    S1 <- with_dense("avx512", 1, .Call(lmmc:::C_lmm_inverse_dense, L1))
    S2 <- with_dense("avx512", 2, .Call(lmmc:::C_lmm_inverse_dense, L1))
    expect_equal(S2, S1, tolerance = 1e-12, label = sprintf("inverse (n = %d)", n))
  }
})

test_that("dense inverse equals chol2inv at sizes around the tiles, panels and thread limit", {
  for (simd in simds) for (threads in 1:2) for (n in c(2, 13, 25, 96, 193, 385, 577)) {
    A <- spd(n, n)
    L <- t(chol(A))
    S <- with_dense(simd, threads, .Call(lmmc:::C_lmm_inverse_dense, L))
    expect_equal(S, chol2inv(t(L)), tolerance = 1e-12,
                 label = sprintf("inverse (%s, %d threads, n = %d)", simd, threads, n))
    expect_identical(S, t(S))
  }
})

# conditional variances of a fit against the dense computation at the fit's theta
expect_condvar_dense <- function(fit, tolerance) {
  ref <- dense_pls(fit$theta, fit$y - fit$offset, fit$X, fit$reterms, fit$weights, fit$REML)
  re <- ranef(fit, condVar = TRUE)
  o <- 0L
  for (term in fit$reterms) {
    p <- ncol(term$Xt); nl <- nlevels(term$group)
    pv <- attr(re[[term$name]], "postVar")
    expect_identical(dim(pv), c(p, p, nl))
    for (l in seq_len(nl)) {
      i <- o + (l - 1L) * p + seq_len(p)
      expect_equal(pv[, , l], ref$condvar[i, i], tolerance = tolerance, ignore_attr = TRUE)
    }
    o <- o + nl * p
  }
}

test_that("conditional variances equal the dense computation (Penicillin, crossed)", {
  penicillin <- readRDS(test_path("data", "Penicillin.rds"))
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin)
  expect_condvar_dense(fit, 1e-10)
  # lme4 1.1-31, fm <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin):
  # attr(ranef(fm, condVar = TRUE)$sample, "postVar")[1, 1, ], likewise $plate[1, 1, 1:3]
  re <- ranef(fit, condVar = TRUE)
  expect_equal(attr(re$sample, "postVar")[1, 1, ], rep(0.040872985912025, 6), tolerance = 1e-5)
  expect_equal(attr(re$plate, "postVar")[1, 1, 1:3], rep(0.073635871101407, 3), tolerance = 1e-5)
})

test_that("conditional variances match lme4 live (Penicillin)", {
  skip_if_not_installed("lme4")
  penicillin <- readRDS(test_path("data", "Penicillin.rds"))
  fm <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin)
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), penicillin)
  ref <- lme4::ranef(fm, condVar = TRUE)
  re <- ranef(fit, condVar = TRUE)
  for (g in c("plate", "sample"))
    expect_equal(attr(re[[g]], "postVar"), attr(ref[[g]], "postVar"), tolerance = 1e-5)
})

test_that("conditional variances equal the dense computation with a large dense block", {
  set.seed(4)
  n <- 1500
  d <- data.frame(s = factor(sample(150, n, TRUE)), t = factor(sample(50, n, TRUE)), x = rnorm(n))
  a <- rnorm(150); b0 <- rnorm(50); b1 <- 0.5 * rnorm(50)
  d$y <- 1 + d$x + a[d$s] + b0[d$t] + b1[d$t] * d$x + rnorm(n)
  pieces <- lmm_pieces(y ~ x + (1 | s) + (x | t), d)
  e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
  info <- .Call(lmmc:::C_lmm_layout_info, e)
  expect_equal(info[["dense_order"]], 2 * 50 + 3)  # Z part 100: a 96-block and a partial one
  fit <- lmm(y ~ x + (1 | s) + (x | t), d)
  expect_condvar_dense(fit, 1e-9)
})

# ---- the Schur update of the dense block from many sparse columns (src/dense_schur.c) ---------

# 4,000 rows, f1 (795 levels present) crossed at random with f2 (200 levels): the f2 nodes and
# [X y] form the dense block (order 203, or 403 with (x | f2)), updated from 795 sparse columns
# of about 5 dense rows each.
sim_crossed_dense <- function() {
  set.seed(20261201)
  n <- 4000
  d <- data.frame(f1 = factor(sample(800, n, TRUE)), f2 = factor(sample(200, n, TRUE)),
                  x = rnorm(n))
  a <- rnorm(800); b0 <- 0.7 * rnorm(200); b1 <- 0.4 * rnorm(200)
  d$y <- 2 + 0.5 * d$x + a[d$f1] + b0[d$f2] + b1[d$f2] * d$x + rnorm(n)
  d
}

# lme4 1.1-31 (R 4.2.2, reference BLAS), lmer(formula, sim_crossed_dense()) with default control:
# REMLcrit, getME(, "theta"), fixef, sigma (15 significant digits)
ref_crossed_dense <- list(
  scalar = list(formula = y ~ x + (1 | f1) + (1 | f2), dense_order = 203,
                crit = 13534.2076935413, theta = c(0.943206520893949, 0.706786628002620),
                fixef = c(2.034827657291862, 0.446239905677146), sigma = 1.05581551584127),
  slope = list(formula = y ~ x + (1 | f1) + (x | f2), dense_order = 403,
               crit = 13326.3462704261,
               theta = c(1.0170493257784099, 0.7621381035914969, 0.0193805492000794,
                         0.3868707907920036),
               fixef = c(2.033584133097289, 0.455723946250895), sigma = 0.983674287726076)
)

expect_fit_as_reference <- function(fit, ref) {
  expect_lt(fit$crit, ref$crit + 1e-10 * abs(ref$crit))          # never worse than lme4
  expect_equal(fit$crit, ref$crit, tolerance = 1e-8)
  expect_equal(unname(fit$theta), ref$theta, tolerance = 2e-5)
  expect_equal(unname(fixef(fit)), ref$fixef, tolerance = 1e-6)
  expect_equal(sigma(fit), ref$sigma, tolerance = 1e-6)
}

test_that("crossed design with a dense block updated from many sparse columns: lme4's fit", {
  d <- sim_crossed_dense()
  for (ref in ref_crossed_dense) {
    pieces <- lmm_pieces(ref$formula, d)
    e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
    info <- .Call(lmmc:::C_lmm_layout_info, e)
    expect_equal(info[["dense_order"]], ref$dense_order)
    expect_equal(info[["sparse_nodes"]], 795)
    expect_fit_as_reference(lmm(ref$formula, d), ref)
  }
})

test_that("crossed design with a dense block: criterion equals the dense computation", {
  d <- sim_crossed_dense()
  for (ref in ref_crossed_dense) {
    pieces <- lmm_pieces(ref$formula, d)
    f <- lmm_objective(pieces)
    theta <- ref$theta * 1.1                                   # away from the optimum
    expect_equal(f(theta), dense_pls(theta, pieces$y, pieces$X, pieces$reterms)$crit,
                 tolerance = 1e-10)
  }
})

test_that("crossed design with a dense block matches lme4 live", {
  skip_if_not_installed("lme4")
  d <- sim_crossed_dense()
  for (ref in ref_crossed_dense) {
    fm <- lme4::lmer(ref$formula, d)
    live <- list(crit = lme4::REMLcrit(fm), theta = unname(lme4::getME(fm, "theta")),
                 fixef = unname(lme4::fixef(fm)), sigma = sigma(fm))
    expect_fit_as_reference(lmm(ref$formula, d), live)
  }
})

test_that("the Schur update and the gradient are the same on one thread and on two", {
  # a dense block of order 600 + 3 (two threads from order 500), 1,200 sparse columns
  set.seed(5)
  n <- 6000
  d <- data.frame(g = factor(sample(1200, n, TRUE)), h = factor(sample(600, n, TRUE)), x = rnorm(n))
  d$y <- d$x + rnorm(1200)[d$g] + rnorm(600)[d$h] + rnorm(n)
  pieces <- lmm_pieces(y ~ x + (1 | g) + (1 | h), d)
  e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
  expect_gte(.Call(lmmc:::C_lmm_layout_info, e)[["dense_order"]], 500)
  at <- function(threads) with_dense("avx512", threads, lmmc:::engine_gradient(e, c(0.8, 0.6), TRUE))
  g1 <- at(1); g2 <- at(2)
  expect_identical(g2, g1)
  expect_equal(as.numeric(g1), dense_pls(c(0.8, 0.6), pieces$y, pieces$X, pieces$reterms)$crit,
               tolerance = 1e-10)
})

# ---- the packed dense block (src/dense_packed.h) -------------------------------------------------

test_that("a packed dense block with vector nodes across its panels gives the recorded values", {
  # dense block: 40 scalar nodes of a, then 160 nodes of 3 columns of t (one across the first
  # panel boundary, column 96), then [X y]: order 524 (two threads from 500); 1,739 sparse columns.
  # Criterion and gradient recorded from the engine before the packed storage (full md x md
  # arrays, commit 8758338), reference BLAS, AVX-512 kernels.
  set.seed(29)
  n <- 4000
  d <- data.frame(s = factor(sample(2000, n, TRUE)), a = factor(sample(40, n, TRUE)),
                  t = factor(sample(160, n, TRUE)), x = rnorm(n), z = rnorm(n))
  d$y <- d$x + rnorm(2000)[d$s] + rnorm(40)[d$a] + rnorm(160)[d$t] * (1 + d$x) + rnorm(n)
  pieces <- lmm_pieces(y ~ x + z + (1 | s) + (1 | a) + (1 + x + z | t), d)
  e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset)
  info <- .Call(lmmc:::C_lmm_layout_info, e)
  expect_equal(info[["dense_order"]], 524)
  expect_equal(info[["sparse_nodes"]], 1739)
  # the bytes predicted: the sparse part and, packed, A's dense block, the factor and Sigma_DD
  # (md (md + 96) / 2 each)
  md <- info[["dense_order"]]
  expect_equal(info[["bytes"]], 8 * (4 * info[["sparse_values"]] + 1.5 * md * (md + 96)) +
                 20 * info[["sparse_blocks"]])
  th <- c(0.7, 0.3, 0.5, 0.1, 0.2, 0.4, 0.05, 0.3)
  ref <- list(
    `TRUE` = c(14747.980104744365, -160.15024332204501, -2445.3206548283392, 160.56926316519542,
               366.9846404897923, 81.522410257398818, 335.74607716363869, 43.581550849164294,
               -749.723099797141),
    `FALSE` = c(14735.905763322995, -161.52559655674747, -2447.0863636055283, 163.51213976623592,
                366.41743709343848, 81.420748882879423, 339.22488510144052, 44.116923079917747,
                -745.40451399339463))
  for (REML in c(TRUE, FALSE)) {
    obj <- lmm_objective(pieces, REML = REML, gradient = TRUE)
    at <- function(simd, threads) with_dense(simd, threads, {
      v <- obj$fn(th)
      c(v, attr(v, "gradient"))
    })
    g1 <- at("avx512", 1)
    expect_equal(g1, ref[[as.character(REML)]], tolerance = 1e-12)
    expect_identical(at("avx512", 2), g1)                  # the same sums on two threads
    for (simd in c("none", "avx2")) expect_equal(at(simd, 2), g1, tolerance = 1e-12)
    old <- options(lmmc.dense_backend = "lapack")           # R's LAPACK panel by panel
    expect_equal(at("avx512", 1), g1, tolerance = 1e-12)
    options(old)
  }
  # the criterion against the dense textbook computation (helper-dense.R)
  expect_equal(as.numeric(lmm_objective(pieces, REML = TRUE)(th)),
               dense_pls(th, pieces$y, pieces$X, pieces$reterms)$crit, tolerance = 1e-10)
})

test_that("packed A and M with a residual structure and vector nodes across a panel boundary", {
  # dense block: 45 nodes of 5 columns of g (node 20 at columns 95-99, across the first panel
  # boundary), with the AR(1) groups also scalar nodes of f; A's dense block and the residual
  # parameters' M = dcrit/dA packed (src/dense_packed.h, residual.h).  Criterion and gradient in
  # (theta, rho) recorded from the engine with both full md x md (commit 94f960c).
  set.seed(31)
  n <- 3000
  d <- data.frame(f = factor(sample(800, n, TRUE)), g = factor(sample(45, n, TRUE)),
                  id = factor(rep(1:300, each = 10)), t = rep(1:10, 300),
                  s = factor(sample(c("a", "b", "c"), n, TRUE)), x = rnorm(n), z = rnorm(n),
                  w = rnorm(n), v = rnorm(n))
  d$y <- d$x + rnorm(800)[d$f] + rnorm(45)[d$g] * (1 + d$z) + rnorm(n)
  pieces <- lmm_pieces(y ~ x + (1 | f) + (x + z + w + v | g), d)
  Tg <- diag(c(0.6, 0.5, 0.4, 0.3, 0.2))
  Tg[lower.tri(Tg)] <- 0.05
  theta <- c(0.8, Tg[lower.tri(Tg, diag = TRUE)])
  cases <- list(
    varIdent = list(NULL, nlme::varIdent(form = ~ 1 | s), c(0.2, -0.3), 228,
      c(10445.284262410321, -277.05278164343207, -145.06763706631565, 46.857441061461671,
        -615.47888986752889, 185.39565849376902, 265.12892007348256, 149.85940489687874,
        52.461530083287812, -10.189728091292571, -26.196222027988895, -669.74113034905213,
        260.45010706450449, 369.50935091465482, 133.60655835698861, -89.427924088764598,
        151.25994286494861, 662.26321011624441, -444.12137928218658)),
    corAR1 = list(nlme::corAR1(form = ~ t | id), NULL, 0.6, 584,
      c(10690.42343410154, -135.00752774676243, -88.157668227371545, 33.897354172408512,
        -501.62547735667579, 145.04913306851464, 232.60057524742942, 153.74446212300998,
        40.410250550576741, -4.1461835349095679, -30.694223874129491, -509.94103160565157,
        205.59327169435699, 326.92708904052085, 158.73573690046749, -84.597048952728429,
        170.09288022166089, 1136.0793298755661)),
    both = list(nlme::corAR1(form = ~ t | id), nlme::varIdent(form = ~ 1 | s), c(0.6, 0.2, -0.3),
      584,
      c(10837.350364577771, -81.016024229185348, -71.072931211357769, 35.10597475614253,
        -478.30023215176357, 136.98616059694993, 228.63016163558902, 156.05793413669326,
        45.41518073323914, -5.0837663132318482, -32.940322456006257, -489.28213454621891,
        199.81569838805368, 323.86961286422377, 162.06167174477659, -84.831739550437845,
        167.02757832451553, 1188.3797544784129, 579.84344188083446, -577.99740223244498)))
  for (name in names(cases)) {
    cs <- cases[[name]]
    spec <- lmmc:::residual_spec(cs[[1]], cs[[2]], d, pieces)
    e <- lmmc:::engine_setup(pieces$y, pieces$X, pieces$reterms, pieces$weights, pieces$offset,
                             spec)
    expect_equal(.Call(lmmc:::C_lmm_layout_info, e)[["dense_order"]], cs[[4]])
    at <- function(rho) {
      v <- lmmc:::engine_gradient(e, theta, TRUE, rho)
      c(v, attr(v, "gradient"))
    }
    g <- at(cs[[3]])
    expect_equal(g, cs[[5]], tolerance = 1e-12, label = name)
    old <- options(lmmc.dense_backend = "lapack")
    expect_equal(at(cs[[3]]), g, tolerance = 1e-12, label = paste(name, "(LAPACK)"))
    options(old)
    h <- 1e-5                                  # the rho gradient (through M) by central differences
    for (k in seq_along(cs[[3]])) {
      up <- dn <- cs[[3]]
      up[k] <- up[k] + h
      dn[k] <- dn[k] - h
      fd <- (lmmc:::engine_crit(e, theta, TRUE, up) - lmmc:::engine_crit(e, theta, TRUE, dn)) / (2 * h)
      expect_equal(g[1 + length(theta) + k], fd, tolerance = 1e-6, label = paste(name, "rho", k))
    }
  }
})

# ---- the dense backend: lmmc's own kernels or R's LAPACK (R/dense-backend.R) ------------------

with_backend <- function(backend, code) {
  old <- options(lmmc.dense_backend = backend)
  on.exit(options(old))
  code
}

test_that("the LAPACK backend gives the dense kernels' Cholesky factor and inverse", {
  for (n in c(5, 97, 300)) {
    A <- spd(n, 20 + n)
    L <- with_backend("lapack", .Call(lmmc:::C_lmm_chol_dense, A))
    expect_equal(L, with_backend("own", .Call(lmmc:::C_lmm_chol_dense, A)), tolerance = 1e-12)
    expect_equal(with_backend("lapack", .Call(lmmc:::C_lmm_inverse_dense, L)),
                 with_backend("own", .Call(lmmc:::C_lmm_inverse_dense, L)), tolerance = 1e-12)
  }
  expect_error(with_backend("lapack", .Call(lmmc:::C_lmm_chol_dense, diag(c(1, -1)))),
               "not positive definite")
})

test_that("the backend switch gives the same fits", {
  d <- sim_crossed_dense()
  sleep <- readRDS(test_path("data", "sleepstudy.rds"))
  models <- list(list(ref_crossed_dense$scalar$formula, d), list(ref_crossed_dense$slope$formula, d),
                 list(Reaction ~ Days + (Days | Subject), sleep))
  for (mod in models) {
    own <- with_backend("own", lmm(mod[[1]], mod[[2]]))
    lapack <- with_backend("lapack", lmm(mod[[1]], mod[[2]]))
    expect_equal(lapack$crit, own$crit, tolerance = 1e-10)
    expect_equal(lapack$theta, own$theta, tolerance = 1e-6)       # the optimiser's tolerance
    expect_equal(fixef(lapack), fixef(own), tolerance = 1e-8)
    expect_equal(lapack$condvar, own$condvar, tolerance = 1e-6)
    pieces <- lmm_pieces(mod[[1]], mod[[2]])
    obj <- lmm_objective(pieces, gradient = TRUE)
    th <- own$theta * 1.05
    go <- with_backend("own", obj$fn(th)); gl <- with_backend("lapack", obj$fn(th))
    expect_equal(as.numeric(gl), as.numeric(go), tolerance = 1e-10)
    expect_equal(attr(gl, "gradient"), attr(go, "gradient"), tolerance = 1e-8)
  }
})

test_that("the backend option is checked and 'auto' follows the detection", {
  expect_error(with_backend("fast", lmmc:::dense_backend()), "lmmc.dense_backend")
  expect_error(with_backend("fast", .Call(lmmc:::C_lmm_chol_dense, diag(2))), "lmmc.dense_backend")
  expect_identical(with_backend("own", lmmc:::dense_backend()), "own")
  expect_identical(with_backend("lapack", lmmc:::dense_backend()), "lapack")
  old <- .Call(lmmc:::C_lmm_dense_backend_auto, TRUE)
  on.exit(.Call(lmmc:::C_lmm_dense_backend_auto, old))
  expect_identical(with_backend("auto", lmmc:::dense_backend()), "lapack")
  .Call(lmmc:::C_lmm_dense_backend_auto, FALSE)
  expect_identical(with_backend("auto", lmmc:::dense_backend()), "own")
  expect_true(lmmc:::blas_is_optimised("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"))
  expect_true(lmmc:::blas_is_optimised("/opt/intel/oneapi/mkl/lib/libmkl_rt.so.2"))
  expect_false(lmmc:::blas_is_optimised(c("/nonexistent/blas/libblas.so.3.11.0",
                                          "/nonexistent/lapack/liblapack.so.3.11.0")))
  t <- lmmc:::dense_backend_time(60L, 1L)
  expect_named(t, c("own", "lapack"))
  expect_true(all(t >= 0 & is.finite(t)))
})
