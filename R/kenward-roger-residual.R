# Kenward-Roger's pieces for fits with a residual correlation or variance structure (the
# assembly into Phi_A, W and the df is R/kenward-roger.R's, shared with fits without one).
#
# V = sigma^2 (Z Lambda Lambda' Z' + V_r(rho)),  V_r^{-1} = K'K  (K the engine's whitening).
# The covariance parameters are gamma = (the entries of each G_t = sigma^2 T_t T_t', as for a
# fit without structure; the free entries of rho on the engine's scale; sigma^2), with
#   dV/dG_ab  = Z E_ab Z',   dV/drho_k = sigma^2 dV_r/drho_k,   dV/dsigma^2 = V_r.
# Every quantity of KR is a congruence invariant, so we work in the whitened coordinates
# X~ = K X, Z~ = K Z, V~ = K V K' = sigma^2 (Z~ Lambda Lambda' Z~' + I), where
#   V~_ab = Z~ E_ab Z~',   V~_sigma2 = I,
#   V~_rho_k = sigma^2 K dV_r K' = -sigma^2 (C_k + C_k'),  C_k = dK_k K^{-1}
# (from dV_r = -V_r (dK'K + K'dK) V_r and K V_r = K^{-T}).  K and C_k are block diagonal over
# the structure's groups, so C_k is formed group by group.  With N = Z~ Lambda R^{-1}
# (R'R = Lambda'Z~'Z~ Lambda + I, Woodbury), B = I - N N' = sigma^2 V~^{-1} and
# Y = V~^{-1} X~:
#   P_i  = -Y' V~_i Y,     Q_ij = (V~_i Y)' (V~^{-1} V~_j) Y,
#   tr(V^{-1} V_i V^{-1} V_j) = tr((V~^{-1} V~_i)(V~^{-1} V~_j)).
# The n x n matrices V~^{-1} V~_i are dense: the cost is O(n^2 (q + m)) memory and about
# O(n^2 q) time, so n is limited by getOption("lmmc.kr_max_n", 4000).
#
# Second derivatives of V: Kenward & Roger's Phi_A has a term -1/4 sum W_ij R_ij with
# R_ij = X'V^{-1} (d^2 V / dgamma_i dgamma_j) V^{-1} X, zero for pbkrtest's linear parameters.
# Here V is not linear in rho (nor in (sigma^2, rho) jointly); we set R_ij = 0, the first-order
# form (pbkrtest's; SAS's DDFM=KR(FIRSTORDER)).  Without R_ij, Phi_A and the df are the same in
# every smooth parametrisation of the covariance parameters (P_i and V_i transform with the
# Jacobian J, W with J^{-1} ... J^{-T}, and the sums over i, j cancel them), so the engine's
# unconstrained scale for rho is as good as nlme's natural one; with R_ij included Phi_A
# would depend on that choice.  A residual parameter estimated at its bound (|phi| at its
# limit) counts as fixed, as in R/satterthwaite.R.

# P_i, Q_ij and the traces tr(V^{-1}V_i V^{-1}V_j) of a fit with a residual structure (REML).
kr_pieces_residual <- function(object) {
  check_kr_n(object$n)
  s2 <- object$sigma^2
  wh <- kr_whitening(object)
  Xt <- wh$K %*% object$X
  Zt <- wh$K %*% dense_z(object$reterms, theta_start(object$reterms), object$n, object$q)
  ZL <- wh$K %*% dense_z(object$reterms, object$theta, object$n, object$q)
  B <- kr_projection(ZL)
  Y <- B %*% Xt / s2
  ops <- c(kr_ops_random(kr_parameters(object$reterms), Zt, B, Y, s2),
           kr_ops_rho(wh, B, Y, s2),
           list(list(VY = Y, VinvV = B / s2)))
  kr_pieces_dense(ops, Y)
}

# P_i, Q_ij and the traces from, for each parameter, V~_i Y and V~^{-1} V~_i.
kr_pieces_dense <- function(ops, Y) {
  m <- length(ops)
  HY <- lapply(ops, function(op) op$VinvV %*% Y)                     # V~^{-1} V~_j Y
  tVV <- lapply(ops, function(op) t(op$VinvV))
  P <- lapply(ops, function(op) {
    Pi <- -crossprod(Y, op$VY)
    (Pi + t(Pi)) / 2
  })
  Q <- lapply(seq_len(m), function(i) vector("list", m))
  K <- matrix(0, m, m)
  for (i in seq_len(m)) for (j in seq_len(m)) {
    Q[[i]][[j]] <- crossprod(ops[[i]]$VY, HY[[j]])
    if (j >= i) K[i, j] <- K[j, i] <- sum(ops[[i]]$VinvV * tVV[[j]])
  }
  list(P = P, Q = Q, trace = K)
}

# B = I - N N' = sigma^2 V~^{-1} for the whitened Z~ Lambda (n x q; q = 0 gives I).
kr_projection <- function(ZL) {
  n <- nrow(ZL)
  if (ncol(ZL) == 0L) return(diag(n))
  R <- chol(crossprod(ZL) + diag(ncol(ZL)))
  N <- t(backsolve(R, t(ZL), transpose = TRUE))
  diag(n) - tcrossprod(N)
}

# The random parameters: V~_i = sum over the pairs (u, v) of E_i of Z~_u Z~_v'.
kr_ops_random <- function(pars, Zt, B, Y, s2) {
  BZ <- B %*% Zt
  ZY <- crossprod(Zt, Y)
  lapply(pars, function(par) {
    uv <- kr_pairs(par)
    list(VY = Reduce(`+`, lapply(uv, function(p)
           Zt[, p[[1L]], drop = FALSE] %*% ZY[p[[2L]], , drop = FALSE])),
         VinvV = Reduce(`+`, lapply(uv, function(p)
           BZ[, p[[1L]], drop = FALSE] %*% t(Zt[, p[[2L]], drop = FALSE]))) / s2)
  })
}

# The free residual parameters: V~_k = -sigma^2 Cs_k, Cs_k = C_k + C_k' block diagonal, so
# V~_k Y = -sigma^2 Cs_k Y and V~^{-1} V~_k = -B Cs_k, both group by group.
kr_ops_rho <- function(wh, B, Y, s2) {
  lapply(wh$dK, function(dK) {
    VY <- matrix(0, nrow(Y), ncol(Y))
    VinvV <- matrix(0, nrow(B), ncol(B))
    for (g in wh$groups) {
      C <- dK[g$rows, g$cols, drop = FALSE] %*% g$Kinv
      Cs <- C + t(C)
      VY[g$rows, ] <- -s2 * Cs %*% Y[g$rows, , drop = FALSE]
      VinvV[, g$rows] <- -B[, g$rows, drop = FALSE] %*% Cs
    }
    list(VY = VY, VinvV = VinvV)
  })
}

## ---- the whitening, dense ----------------------------------------------------------------------

# K (whitened rows x raw rows) and dK/drho_k for the free rho (at a bound: fixed), dense, with
# the structure's groups: for each, its whitened rows, raw rows and K's block inverse.
kr_whitening <- function(object) {
  n <- object$n
  free <- varpar_layout(object)$free
  wh <- engine_whitening(engine_for(object), fit_rho(object), deriv = TRUE)
  rows <- rep.int(seq_len(n), diff(wh$Kp))
  at <- cbind(rows, wh$Kj + 1L)
  dense <- function(x) {
    M <- matrix(0, n, n)
    M[at] <- x
    M
  }
  K <- dense(wh$Kx)
  dK <- lapply(which(free), function(k) dense(wh$dKx[, k]))
  groups <- lapply(whitening_groups(rows, wh$Kj + 1L, n), function(g) {
    g$Kinv <- solve(K[g$rows, g$cols, drop = FALSE])
    g
  })
  list(K = K, dK = dK, groups = groups)
}

# The blocks of K: the connected components of the graph linking whitened row i to the raw
# rows of its entries (cols).  Labels (the smallest raw row reached) spread between entries'
# rows and columns, with pointer jumping, until stable; each group is its whitened rows and raw
# rows (as many of each: K is square and nonsingular).
whitening_groups <- function(rows, cols, n) {
  lab <- seq_len(n)                                    # a label per raw row
  repeat {
    row_min <- as.vector(tapply(lab[cols], rows, min)) # per whitened row
    col_min <- tapply(row_min[rows], cols, min)
    new <- lab
    at <- as.integer(names(col_min))
    new[at] <- pmin(new[at], col_min)
    new <- new[new]
    if (identical(new, lab)) break
    lab <- new
  }
  row_lab <- as.vector(tapply(lab[cols], rows, min))
  lapply(split(seq_len(n), row_lab), function(r)
    list(rows = r, cols = which(lab == row_lab[r[1L]])))
}

# Z (Lambda = I at theta_start) or Z Lambda, dense n x q, from the sparse rows.
dense_z <- function(reterms, theta, n, q) {
  Z <- matrix(0, n, q)
  if (q == 0L) return(Z)
  zr <- z_lambda_rows(reterms, theta, rep(list(NULL), length(reterms)))
  for (k in seq_len(ncol(zr$P))) {
    at <- cbind(seq_len(n), zr$P[, k])
    Z[at] <- Z[at] + zr$A[, k]
  }
  Z
}

check_kr_n <- function(n) {
  limit <- getOption("lmmc.kr_max_n", 4000)
  if (n > limit)
    stop(sprintf(paste0("Kenward-Roger's method for a fit with a residual structure needs dense ",
                        "%d x %d matrices (one row per observation), above the limit %d; raise ",
                        "options(lmmc.kr_max_n) if memory and time allow, or use ddf = ",
                        "\"Satterthwaite\""), n, n, limit), call. = FALSE)
}
