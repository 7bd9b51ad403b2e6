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
# (from dV_r = -V_r (dK'K + K'dK) V_r and K V_r = K^{-T}).  K is block diagonal over the
# structure's groups (up to the order of its rows), so the V~_i of rho and sigma^2 are
# symmetric block-diagonal matrices A_i, formed group by group.  By Woodbury,
#   B = sigma^2 V~^{-1} = I - Z~ Cq Z~',  Cq = Lambda M^{-1} Lambda',  M = Lambda'D Lambda + I,
# D = Z~'Z~; B is never formed: B M = M - Z~ (Cq (Z~'M)).  With Y = V~^{-1} X~, F_i = V~_i Y (VtY):
#   P_i  = -Y' F_i,          Q_ij = F_i' B F_j / sigma^2,
#   tr(V^{-1} V_i V^{-1} V_j) = tr(B V~_i B V~_j) / sigma^4:
#     random i, j:  tr(E_i S E_j S),  S = Z~' V~^{-1} Z~            (as without structure);
#     random i, block j:  tr(E_i H_j),  H_j = (B Z~)' A_j (B Z~) / sigma^4;
#     blocks i, j:  [tr(A_i A_j) - 2 tr(N'A_i A_j N) + tr((N'A_i N)(N'A_j N))] / sigma^4,
# N N' = I - B; kr_trace_residual() writes them with q x q matrices.  A group's rows of Z~ are
# nonzero only in the columns its raw rows use, so Z~ is kept group by group (dense within).
# Cost: O(q^3) as without structure, plus O(sum_g m_g^3) for the groups' blocks (m_g a
# group's rows: a structure without groups is one n x n block); the largest m_g is limited by
# getOption("lmmc.kr_max_n", 5000), q by getOption("lmmc.kr_max_q", 5000).
#
# Second derivatives of V: Kenward & Roger's Phi_A has a term -1/4 sum W_ij R_ij with
# R_ij = X'V^{-1} (d^2 V / dgamma_i dgamma_j) V^{-1} X, zero for pbkrtest's linear parameters.
# Here V is not linear in rho (nor in (sigma^2, rho) jointly); we set R_ij = 0, the first-order
# form (pbkrtest's; SAS's DDFM=KR(FIRSTORDER); mmrm's "Kenward-Roger-Linear").  Without R_ij,
# Phi_A and the df are the same in every smooth parametrisation of the covariance parameters
# (P_i and V_i transform with the Jacobian J, W with J^{-1} ... J^{-T}, and the sums over i, j
# cancel them), so the engine's unconstrained scale for rho is as good as nlme's natural one;
# with R_ij included Phi_A would depend on that choice.  A residual parameter estimated at its
# bound (|phi| at its limit) counts as fixed, as in R/satterthwaite.R.

# P_i, Q_ij and the traces tr(V^{-1}V_i V^{-1}V_j) of a fit with a residual structure (REML).
kr_pieces_residual <- function(object) {
  check_kr_size(object$q)
  s2 <- object$sigma^2
  q <- object$q
  wh <- kr_whitening(object)
  groups <- kr_group_designs(wh$groups, object$reterms)
  Xt <- kr_whiten(wh, unclass_matrix(object$X))
  D <- group_gram(groups, q)                                           # Z~'Z~
  Cq <- kr_woodbury_core(D, object$theta, object$reterms)              # Lambda M^{-1} Lambda'
  BM <- function(M) M - z_times(groups, Cq %*% zt_times(groups, M, q), nrow(M))   # B M
  Y <- BM(Xt) / s2
  pars <- kr_parameters(object$reterms)
  blocks <- c(wh$dV, list(lapply(wh$groups, function(g) diag(length(g$rows)))))
  ZY <- zt_times(groups, Y, q)
  VtY <- c(lapply(pars, function(par) z_times(groups, e_times(par, ZY), nrow(Y))),  # Z~ E_i Z~'Y
         lapply(blocks, function(A) block_times(A, wh$groups, Y)))
  P <- lapply(VtY, function(Fi) {
    Pi <- -crossprod(Y, Fi)
    (Pi + t(Pi)) / 2
  })
  BF <- lapply(VtY, BM)
  m <- length(VtY)
  Q <- lapply(seq_len(m), function(i) lapply(seq_len(m), function(j)
    crossprod(VtY[[i]], BF[[j]]) / s2))
  list(P = P, Q = Q, trace = kr_trace_residual(pars, blocks, groups, D, Cq, s2))
}

# The m x m traces tr(V^{-1}V_i V^{-1}V_j) by the three cases of the header, in q-space:
# with D_j = Z~'A_j Z~, D_ij = Z~'A_i A_j Z~ and B Z~ = Z~ T, T = I - Cq D,
#   S = (D - D Cq D) / sigma^2,   H_j = T' D_j T / sigma^4,
#   tr(B A_i B A_j) = tr(A_i A_j) - 2 tr(Cq D_ij) + tr(D_i Cq D_j Cq).
kr_trace_residual <- function(pars, blocks, groups, D, Cq, s2) {
  nr <- length(pars)
  nb <- length(blocks)
  Tr <- matrix(0, nr + nb, nr + nb)
  S <- (D - D %*% Cq %*% D) / s2
  S <- (S + t(S)) / 2
  for (i in seq_len(nr)) for (j in i:nr)
    Tr[i, j] <- Tr[j, i] <- kr_trace_ee(S, pars[[i]], pars[[j]])
  q <- nrow(D)
  Tq <- diag(q) - Cq %*% D
  Dj <- lapply(blocks, function(A) group_gram(groups, q, A))
  DC <- lapply(Dj, function(M) M %*% Cq)
  for (j in seq_len(nb)) {
    H <- crossprod(Tq, Dj[[j]] %*% Tq) / s2^2
    for (i in seq_len(nr)) Tr[i, nr + j] <- Tr[nr + j, i] <- kr_trace_e(H, pars[[i]])
    for (i in seq_len(j)) {
      Dij <- group_gram(groups, q, blocks[[i]], blocks[[j]])
      Tr[nr + i, nr + j] <- Tr[nr + j, nr + i] <- (block_trace(blocks[[i]], blocks[[j]]) -
        2 * sum(Cq * t(Dij)) + sum(DC[[i]] * t(DC[[j]]))) / s2^2
    }
  }
  Tr
}

# Cq = Lambda M^{-1} Lambda' (q x q), M = Lambda'D Lambda + I: N N' = Z~ Cq Z~' = I - B.
kr_woodbury_core <- function(D, theta, reterms) {
  q <- nrow(D)
  if (q == 0L) return(D)
  templates <- theta_templates(theta, reterms)
  L <- lambda_right(diag(q), templates, reterms)                     # Lambda
  M <- crossprod(L, D %*% L)
  diag(M) <- diag(M) + 1
  L %*% chol2inv(chol(M)) %*% t(L)
}

# E_i V for a q-row V: rows u of the result take V's rows v, over the pairs (u, v) of E_i.
e_times <- function(par, V) {
  out <- matrix(0, nrow(V), ncol(V))
  for (uv in kr_pairs(par)) out[uv[[1L]], ] <- out[uv[[1L]], ] + V[uv[[2L]], , drop = FALSE]
  out
}

## ---- the whitened Z~ by groups ------------------------------------------------------------------
## Group g's whitened rows of Z~ = K Z are K_g Z[raw rows of g, ], nonzero only in the columns
## cz of Z that its raw rows use: each group keeps Zg = K_g Z[raw rows, cz] (m_g x |cz|).

kr_group_designs <- function(groups, reterms) {
  q <- sum(vapply(reterms, function(t) length(t$cnms) * nlevels(t$group), 0L))
  zr <- if (q > 0L) z_lambda_rows(reterms, theta_start(reterms), rep(list(NULL), length(reterms)))
  lapply(groups, function(g) {
    if (q == 0L) return(c(g, list(cz = integer(), Zg = matrix(0, length(g$rows), 0L))))
    Pg <- zr$P[g$cols, , drop = FALSE]
    cz <- sort(unique(as.vector(Pg)))
    Z <- matrix(0, length(g$rows), length(cz))
    for (k in seq_len(ncol(Pg))) {
      at <- cbind(seq_len(nrow(Pg)), match(Pg[, k], cz))
      Z[at] <- Z[at] + zr$A[g$cols, k]
    }
    c(g, list(cz = cz, Zg = g$Kb %*% Z))
  })
}

# Z~'A Z~ (A = I when NULL) or Z~'A_1 A_2 Z~, q x q, from the groups.
group_gram <- function(groups, q, A1 = NULL, A2 = NULL) {
  out <- matrix(0, q, q)
  for (k in seq_along(groups)) {
    g <- groups[[k]]
    if (!length(g$cz)) next
    right <- g$Zg
    if (!is.null(A2)) right <- A2[[k]] %*% right
    if (!is.null(A1)) right <- A1[[k]] %*% right
    out[g$cz, g$cz] <- out[g$cz, g$cz] + crossprod(g$Zg, right)
  }
  out
}

# Z~'M (q x k) for an n-row M.
zt_times <- function(groups, M, q) {
  out <- matrix(0, q, ncol(M))
  for (g in groups) if (length(g$cz))
    out[g$cz, ] <- out[g$cz, ] + crossprod(g$Zg, M[g$rows, , drop = FALSE])
  out
}

# Z~ U (n x k) for a q-row U.
z_times <- function(groups, U, n) {
  out <- matrix(0, n, ncol(U))
  for (g in groups) if (length(g$cz))
    out[g$rows, ] <- g$Zg %*% U[g$cz, , drop = FALSE]
  out
}

# A M for a block-diagonal A (one matrix per group, on the group's whitened rows).
block_times <- function(A, groups, M) {
  out <- matrix(0, nrow(M), ncol(M))
  for (g in seq_along(groups)) {
    r <- groups[[g]]$rows
    out[r, ] <- A[[g]] %*% M[r, , drop = FALSE]
  }
  out
}

# tr(A_i A_j) for symmetric block-diagonal A_i, A_j.
block_trace <- function(Ai, Aj) sum(vapply(seq_along(Ai), function(g) sum(Ai[[g]] * Aj[[g]]), 0))

## ---- the whitening, by groups ------------------------------------------------------------------

# K by rows (rows, cols 1-based, Kx) and its groups: for each, the whitened rows, the raw rows
# and K's block; dV: for each free rho_k (at a bound: fixed), the blocks of
# V~_rho_k = -sigma^2 (C_k + C_k'), C_k = dK_k K^{-1}.
kr_whitening <- function(object) {
  n <- object$n
  s2 <- object$sigma^2
  free <- which(varpar_layout(object)$free)
  wh <- engine_whitening(engine_for(object), fit_rho(object), deriv = TRUE)
  rows <- rep.int(seq_len(n), diff(wh$Kp))
  cols <- wh$Kj + 1L
  groups <- whitening_groups(rows, cols, n)
  check_kr_n(max(lengths(lapply(groups, `[[`, "rows"))))
  row_group <- integer(n)
  for (g in seq_along(groups)) row_group[groups[[g]]$rows] <- g
  at <- split(seq_along(rows), factor(row_group[rows], levels = seq_along(groups)))
  block <- function(g, x) {
    e <- at[[g]]
    M <- matrix(0, length(groups[[g]]$rows), length(groups[[g]]$cols))
    M[cbind(match(rows[e], groups[[g]]$rows), match(cols[e], groups[[g]]$cols))] <- x[e]
    M
  }
  for (g in seq_along(groups)) groups[[g]]$Kb <- block(g, wh$Kx)
  Kinv <- lapply(groups, function(g) solve(g$Kb))
  dV <- lapply(free, function(k) lapply(seq_along(groups), function(g) {
    C <- block(g, wh$dKx[, k]) %*% Kinv[[g]]
    -s2 * (C + t(C))
  }))
  list(rows = rows, cols = cols, Kx = wh$Kx, groups = groups, dV = dV)
}

# K M (whitened rows of M): row i is sum_e Kx[e] M[cols[e], ].
kr_whiten <- function(wh, M) {
  if (ncol(M) == 0L) return(M)
  unname(rowsum(wh$Kx * M[wh$cols, , drop = FALSE], wh$rows, reorder = TRUE))
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

check_kr_n <- function(m) {
  limit <- getOption("lmmc.kr_max_n", 5000)
  if (m > limit)
    stop(sprintf(paste0("Kenward-Roger's method forms a dense matrix per group of the residual ",
                        "structure; the largest group has %d rows, above the limit %d; raise ",
                        "options(lmmc.kr_max_n) if memory and time allow, or use ddf = ",
                        "\"Satterthwaite\""), m, limit), call. = FALSE)
}
