# Starting values of theta from moment estimates (one pass over the data, no optimisation).
#
# r: residuals of the (weighted) OLS fit of y - offset on X.  Each term t (columns Z_t) is
# first estimated marginally, as if it were the only one:
#   - per level j of its factor, the OLS fit of r_j on Z_j gives b_j = (Z_j'Z_j)^-1 Z_j'r_j
#     and a residual sum of squares on n_j - p_t degrees of freedom;
#   - Cov(b_j) = Sigma_t + s2w_t E[(Z_j'Z_j)^-1]  (s2w_t: pooled within-level variance), so
#     Sigma_t = cov(b) - s2w_t mean_j (Z_j'Z_j)^-1   (for (1|g): the one-way ANOVA estimator).
# Scalar terms (one column z_t) are then estimated jointly, Henderson's method 1 on level
# estimates: the other terms u reach b_t through G_jk = sum_{i in level j of t and level k of u}
# z_t,i z_u,i / d_j (d_j = sum_{i in j} z_t,i^2), so that
#   E[var(b_t)] = sigma_t^2 + sum_u kappa_tu sigma_u^2 + s2 mean_j(1 / d_j),
#   kappa_tu = (||G||_F^2 - ||1'G||^2 / J) / (J - 1)   (0 for balanced crossing, ~1 for nesting),
# and the within-level variance of the scalar term t* with the least of it adds
#   E[s2w_t*] = s2 + sum_u lambda_t*u sigma_u^2.
# These K + 1 linear equations give the sigma_u^2 and the residual variance s2.  Vector terms
# keep their marginal Sigma_t; without scalar terms s2 is the least s2w_t.
# theta_t is the lower Cholesky factor of Sigma_t / s2 with every standardised variance
# floored at start_floor^2, so that the optimiser does not start on the boundary.

start_floor <- 0.1

# theta0 by moments.  Terms that cannot be estimated (fewer than two usable levels) keep
# lme4's start (1 on the diagonal, 0 below), as does everything when s2 cannot be estimated.
theta_moments <- function(y, X, reterms, weights, offset, REML = TRUE) {
  sw <- sqrt(weights)
  r <- qr.resid(qr(X * sw), (y - offset) * sw)
  Zs <- lapply(reterms, function(term) as.matrix(term$Xt) * sw)
  codes <- lapply(reterms, function(term) as.integer(term$group))   # factors without unused levels
  ests <- lapply(seq_along(reterms), function(t) term_moments(r, Zs[[t]], codes[[t]], REML))
  Sigmas <- lapply(ests, `[[`, "Sigma")
  s2w <- vapply(ests, `[[`, 1, "s2w")
  s2 <- if (any(is.finite(s2w))) min(s2w, na.rm = TRUE) else NA_real_
  sys <- scalar_system(Zs, codes, ests)
  if (!is.null(sys)) {
    s2 <- sys$s2
    Sigmas[sys$terms] <- lapply(sys$sigma2, as.matrix)
  }
  if (!is.finite(s2) || s2 <= 0) return(theta_start(reterms))
  theta0 <- unlist(lapply(seq_along(reterms), function(t) {
    if (is.null(Sigmas[[t]])) return(theta_start(reterms[t]))
    relative_template(Sigmas[[t]] / s2, sqrt(colMeans(Zs[[t]]^2)))
  }))
  # 3 significant digits: the same start (hence the same optimiser path) whatever the order of
  # the rows, whose rounding errors would otherwise change the last digits
  signif(theta0, 3)
}

# Marginal estimate of one term: Sigma (NULL if not estimable), s2w, and for scalar terms the
# raw variance covb of the level estimates (divisor J - 1, or J for ML) and inv_mean = mean_j 1 / d_j.
term_moments <- function(r, Z, g, REML = TRUE) {
  p <- ncol(Z)
  nl <- max(g)
  # per level: Z_j'Z_j (as p*p columns), Z_j'r_j and r_j'r_j
  ZZ <- rowsum(Z[, rep(seq_len(p), p), drop = FALSE] * Z[, rep(seq_len(p), each = p), drop = FALSE],
               g, reorder = TRUE)
  Zr <- rowsum(Z * r, g, reorder = TRUE)
  rr <- rowsum(r^2, g, reorder = TRUE)[, 1]
  nj <- tabulate(g, nl)
  if (p == 1L) {
    ok <- level_used(ZZ[, 1])
    b <- Zr[ok, 1] / ZZ[ok, 1]
    inv_mean <- matrix(mean(1 / ZZ[ok, 1]))
    rss <- rr[ok] - Zr[ok, 1] * b
    B <- matrix(b)
    nj <- nj[ok]
  } else {
    levels_fit <- which(nj >= p)
    fits <- level_fits(ZZ[levels_fit, , drop = FALSE], Zr[levels_fit, , drop = FALSE], p)
    ok <- fits$ok
    nj <- nj[levels_fit][ok]
    if (sum(ok) < 2L) return(list(Sigma = NULL, s2w = NA_real_))
    B <- fits$b[ok, , drop = FALSE]
    inv_mean <- matrix(colMeans(fits$inv[ok, , drop = FALSE]), p)
    rss <- rr[levels_fit][ok] - rowSums(Zr[levels_fit, , drop = FALSE][ok, , drop = FALSE] * B)
  }
  df_w <- sum(pmax(nj - p, 0))
  s2w <- if (df_w > 0) max(sum(rss), 0) / df_w else NA_real_
  if (nrow(B) < 2L || !is.finite(s2w)) return(list(Sigma = NULL, s2w = s2w))
  covb <- stats::cov(B) * if (REML) 1 else (nrow(B) - 1) / nrow(B)   # ML: divisor J
  Sigma <- covb - s2w * inv_mean
  list(Sigma = (Sigma + t(Sigma)) / 2, s2w = s2w, covb = covb[1], inv_mean = inv_mean[1])
}

# Levels of a scalar term whose d_j = sum z^2 is not negligible.
level_used <- function(d) d > 1e-10 * max(d)

# OLS within every level at once: Gauss-Jordan elimination of [G_j | I | c_j] vectorised over
# the levels j (rows of ZZ hold G_j column-major, rows of Zr hold c_j).  A level whose pivot
# falls below 1e-10 of its largest diagonal element is (nearly) singular: ok = FALSE.
level_fits <- function(ZZ, Zr, p) {
  nl <- nrow(ZZ)
  M <- cbind(ZZ, matrix(diag(p), nl, p * p, byrow = TRUE), Zr)   # blocks [G | I | c]
  at <- function(r, col) M[, (col - 1L) * p + r]                  # entry (r, col) of each level
  put <- function(r, col, v) M[, (col - 1L) * p + r] <<- v
  ncolM <- 2L * p + 1L
  scale <- apply(ZZ[, (seq_len(p) - 1L) * p + seq_len(p), drop = FALSE], 1, max)
  ok <- scale > 0
  for (k in seq_len(p)) {
    piv <- at(k, k)
    ok <- ok & piv > 1e-10 * scale
    piv[!ok] <- 1
    for (col in seq_len(ncolM)) put(k, col, at(k, col) / piv)
    for (r in seq_len(p)[-k]) {
      f <- at(r, k)
      for (col in seq_len(ncolM)) put(r, col, at(r, col) - f * at(k, col))
    }
  }
  list(ok = ok, inv = M[, p * p + seq_len(p * p), drop = FALSE],
       b = M[, 2L * p * p + seq_len(p), drop = FALSE])
}

# The moment equations of the scalar terms (see the top of the file), solved; NULL when there
# is no scalar term with an estimate, or the system is singular or gives s2 <= 0.
scalar_system <- function(Zs, codes, ests) {
  S <- which(vapply(seq_along(Zs), function(t)
    ncol(Zs[[t]]) == 1L && !is.null(ests[[t]]$Sigma), TRUE))
  if (!length(S)) return(NULL)
  k <- length(S)
  tstar <- S[which.min(vapply(ests[S], `[[`, 1, "s2w"))]
  A <- diag(k + 1)
  rhs <- c(vapply(ests[S], `[[`, 1, "covb"), ests[[tstar]]$s2w)
  A[seq_len(k), k + 1] <- vapply(ests[S], `[[`, 1, "inv_mean")
  for (a in seq_len(k)) for (b in seq_len(k)) {
    if (a == b) next
    A[a, b] <- pair_coefs(Zs[[S[a]]][, 1], codes[[S[a]]], Zs[[S[b]]][, 1], codes[[S[b]]])[["kappa"]]
  }
  for (b in seq_len(k)) if (S[b] != tstar)
    A[k + 1, b] <- pair_coefs(Zs[[tstar]][, 1], codes[[tstar]], Zs[[S[b]]][, 1],
                              codes[[S[b]]])[["lambda"]]
  sol <- tryCatch(solve(A, rhs), error = function(e) NULL)
  if (is.null(sol) || !all(is.finite(sol)) || sol[k + 1] <= 0) return(NULL)
  list(terms = S, sigma2 = as.list(sol[seq_len(k)]), s2 = sol[k + 1])
}

# For scalar terms t and u (columns zt, zu; level codes jt, ku): kappa, the share of
# sigma_u^2 in the variance of t's level estimates, and lambda, its share in t's
# within-level variance.  Sums over the (level of t, level of u) cells that occur.
pair_coefs <- function(zt, jt, zu, ku) {
  d <- rowsum(zt^2, jt, reorder = TRUE)[, 1]
  used <- level_used(d)
  J <- sum(used)
  keep <- used[jt]
  Jt <- length(d)
  cell <- (jt - 1) + Jt * (ku - 1)                # cell (j, k) as one number
  cells <- unique(cell[keep])
  h <- rowsum((zt * zu)[keep], match(cell[keep], cells))[, 1]   # h_jk = sum of z_t z_u
  G <- h / d[cells %% Jt + 1]
  colG <- rowsum(G, cells %/% Jt)[, 1]             # 1'G
  c(kappa = (sum(G^2) - sum(colG^2) / J) / (J - 1),
    lambda = (sum(zu[keep]^2) - sum(h * G)) / (sum(keep) - J))
}

# theta of one term from its relative covariance Sigma (p x p): in standardised units
# (column root-mean-squares rms) eigenvalues are floored at start_floor^2, then the lower
# Cholesky factor is taken, lower triangle column by column.
relative_template <- function(Sigma, rms) {
  rms[!(rms > 0)] <- 1
  S <- Sigma * outer(rms, rms)
  e <- eigen(S, symmetric = TRUE)
  S <- e$vectors %*% diag(pmax(e$values, start_floor^2), length(rms)) %*% t(e$vectors)
  L <- t(chol((S + t(S)) / 2)) / rms
  L[lower.tri(L, diag = TRUE)]
}
