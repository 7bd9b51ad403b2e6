# Kenward-Roger's adjusted covariance of beta-hat and denominator df (Kenward & Roger 1997,
# Biometrics 53; in the form of Halekoh & Hojsgaard 2014, JSS 59(9), and pbkrtest's vcovAdj).
# This file: the method, and its pieces for fits without a residual structure; fits with one
# get theirs from R/kenward-roger-residual.R (dense in n) and share kr_assemble() and the tests.
#
# The covariance parameters are those of pbkrtest, linear in V:  gamma = (the entries g_ab,
# a >= b, of each term's covariance matrix G_t; sigma^2), so that
#   V = sum_i gamma_i V_i,   V_i = Z E_i Z'  (E_i = I_levels (x) (e_a e_b' + e_b e_a'), term t),
#   V_0 = W^{-1}             (the residual, prior weights W),
# and second derivatives of V vanish.  With Phi = (X'V^{-1}X)^{-1} = Var(beta-hat):
#   P_i    = -X'V^{-1} V_i V^{-1} X,          Q_ij = X'V^{-1} V_i V^{-1} V_j V^{-1} X,
#   I_ij   = tr(P V_i P V_j) = tr(V^{-1}V_i V^{-1}V_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)
#            (P = V^{-1} - V^{-1} X Phi X' V^{-1}, the REML projection),
#   W      = 2 I^{-1}  (the expected information's inverse: Var(gamma-hat)),
#   Phi_A  = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi.
#
# No n x n matrix is formed.  Transforming rows by W^{1/2} (X, Z -> W^{1/2}X, W^{1/2}Z) turns V_0
# into I and leaves every quantity above unchanged.  With D = Z'WZ, B = Z'WX, A = X'WX,
# M = Lambda'D Lambda + I = R'R and (Woodbury)  sigma^2 V^{-1} = I - Z Lambda M^{-1} Lambda' Z':
#   S = Z'V^{-1}Z = (D - K'K) / sigma^2,     K = R^{-T} Lambda' D,
#   Z'V^{-1}X = (B - K'H) / sigma^2,         H = R^{-T} Lambda' B,
#   X'V^{-1}X = (A - H'H) / sigma^2;
# the random parameters' terms follow from S:  X'V^{-1}V_iV^{-1}X = (Z'V^{-1}X)' E_i (Z'V^{-1}X),
# Q_ij = (Z'V^{-1}X)' E_i S E_j (Z'V^{-1}X), tr(V^{-1}V_i V^{-1}V_j) = tr(E_i S E_j S).  The
# residual's follow from sum_i gamma_i V_i = V (so gamma_0 V^{-1}V_0V^{-1} = V^{-1} -
# sum_{i random} gamma_i V^{-1}V_iV^{-1}):
#   X'V^{-1}V_0V^{-1}X = (X'V^{-1}X - sum_i gamma_i X'V^{-1}V_iV^{-1}X) / gamma_0,
#   Q_i0 = (X'V^{-1}V_iV^{-1}X - sum_j gamma_j Q_ij) / gamma_0,
#   Q_00 = (X'V^{-1}V_0V^{-1}X - sum_j gamma_j Q_j0) / gamma_0,
# and the same for the traces, from tr(V^{-1}V_i) = tr(E_i S) and tr(V^{-1}V) = n.
# Lambda is block diagonal and applied block by block; the cost is that of the dense q x q
# matrices D and S (q = number of random effects): a Cholesky factor, one triangular solve and
# one cross-product, O(q^3) time and O(q^2) memory.  Above getOption("lmmc.kr_max_q", 5000)
# random effects an error says so.

## ---- the adjusted covariance --------------------------------------------------------------------

# Everything a Kenward-Roger test needs, once per fit: beta, Phi, Phi_A, the P_i and W (fits
# with a residual structure: R/kenward-roger-residual.R gives the pieces).
# An ML fit is first refitted by REML (as pbkrtest does).
kr_setup <- function(object) {
  if (inherits(object, "lmm_kr")) return(object)
  if (!inherits(object, "lmm")) stop("Kenward-Roger's method needs a fitted \"lmm\" object",
                                     call. = FALSE)
  if (object$p == 0L) stop("the model has no fixed effects to test", call. = FALSE)
  if (!isTRUE(object$REML)) object <- refit_reml(object)
  pieces <- if (is.null(object$residual)) kr_pieces_plain(object) else
    kr_pieces_residual(object)                                 # R/kenward-roger-residual.R
  kr_assemble(object, pieces)
}

# P_i, Q_ij and tr(V^{-1}V_i V^{-1}V_j) of a fit without residual structure (cross-products).
kr_pieces_plain <- function(object) {
  check_kr_size(object$q)
  parts <- kr_woodbury(object)
  pars <- kr_parameters(object$reterms)
  gamma <- kr_gamma(object)
  PQ <- kr_pq(parts, pars, gamma)
  list(P = PQ$P, Q = PQ$Q, trace = kr_ktrace(parts, pars, gamma, object$n))
}

# The expected information I, W = 2 I^{-1} and Phi_A from the pieces P_i, Q_ij and the traces.
kr_assemble <- function(object, pieces) {
  Phi <- unname(object$vcov_beta)
  P <- pieces$P
  Q <- pieces$Q
  m <- length(P)
  info <- matrix(0, m, m)
  for (i in seq_len(m)) for (j in i:m) {
    info[i, j] <- info[j, i] <- pieces$trace[i, j] - 2 * sum(Phi * Q[[i]][[j]]) +
      sum((Phi %*% P[[i]]) * (P[[j]] %*% Phi))
  }
  W <- 2 * kr_inverse(info)
  U <- matrix(0, object$p, object$p)
  for (i in seq_len(m)) for (j in seq_len(m))
    U <- U + W[i, j] * (Q[[i]][[j]] - P[[i]] %*% Phi %*% P[[j]])
  PhiA <- Phi + 2 * Phi %*% U %*% Phi
  PhiA <- (PhiA + t(PhiA)) / 2
  structure(list(beta = object$beta, sigma = object$sigma, Phi = Phi,
                 PhiA = PhiA, P = P, W = W, names = names(object$beta)),
            class = "lmm_kr")
}

# The same model fitted by REML, from the ML estimate of theta (fields describing the model kept).
refit_reml <- function(fit) refit_estimation(fit, REML = TRUE)

check_kr_size <- function(q) {
  limit <- getOption("lmmc.kr_max_q", 5000)
  if (q > limit)
    stop(sprintf(paste0("Kenward-Roger's method needs dense %d x %d matrices (one row per random ",
                        "effect), above the limit %d; raise options(lmmc.kr_max_q) if memory and ",
                        "time allow, or use ddf = \"Satterthwaite\""), q, q, limit), call. = FALSE)
}

# 2 I^{-1}'s inverse part: solve() when I is well conditioned, else the pseudo-inverse (pbkrtest).
kr_inverse <- function(info) {
  ev <- eigen(info, symmetric = TRUE, only.values = TRUE)$values
  if (min(abs(ev)) > 1e-10) solve(info) else pseudo_inverse(info)
}

## ---- the Woodbury pieces --------------------------------------------------------------------------

# Z'WZ, Z'WX and X'WX, dense, from the sparse rows of Z (Lambda = I).
kr_gram <- function(object) {
  reterms <- object$reterms
  q <- object$q
  zr <- z_lambda_rows(reterms, theta_start(reterms), rep(list(NULL), length(reterms)))
  M <- crossprod_sparse_rows(zr$P, zr$A, object$X, object$weights, q)
  iq <- seq_len(q)
  ip <- q + seq_len(object$p)
  list(D = M[iq, iq, drop = FALSE], B = M[iq, ip, drop = FALSE], A = M[ip, ip, drop = FALSE])
}

# M Lambda without forming Lambda (q x q block diagonal: term by term, level-major, a term's
# columns within a level): within term t the columns of level l are M[, cols_l] T_t.
lambda_right <- function(M, templates, reterms) {
  pos <- 0L
  for (t in seq_along(templates)) {
    Tt <- templates[[t]]
    pt <- nrow(Tt)
    nl <- nlevels(reterms[[t]]$group)
    cols <- pos + seq_len(pt * nl)
    pos <- pos + pt * nl
    if (pt == 1L) {
      M[, cols] <- M[, cols] * Tt[1L]
      next
    }
    r <- nrow(M)
    by_comp <- matrix(aperm(array(M[, cols], c(r, pt, nl)), c(1L, 3L, 2L)), r * nl, pt)
    M[, cols] <- aperm(array(by_comp %*% Tt, c(r, nl, pt)), c(1L, 3L, 2L))
  }
  M
}

# The cross-products of the header: S = Z'V^{-1}Z, SX = Z'V^{-1}X, XVX = X'V^{-1}X.
kr_woodbury <- function(object) {
  g <- kr_gram(object)
  templates <- theta_templates(object$theta, object$reterms)
  s2 <- object$sigma^2
  LtD <- t(lambda_right(g$D, templates, object$reterms))             # Lambda' D
  M <- t(lambda_right(LtD, templates, object$reterms))               # (Lambda'D Lambda)'
  diag(M) <- diag(M) + 1
  R <- chol(M)
  K <- backsolve(R, LtD, transpose = TRUE)
  H <- backsolve(R, t(lambda_right(t(g$B), templates, object$reterms)), transpose = TRUE)
  S <- (g$D - crossprod(K)) / s2
  list(S = (S + t(S)) / 2, SX = (g$B - crossprod(K, H)) / s2, XVX = (g$A - crossprod(H)) / s2)
}

## ---- the parameters gamma and their V_i -------------------------------------------------------------

# One entry per random covariance parameter: the indices (in u's order) of components a and b of
# term t over its levels.  Order: each term's lower triangle column by column, as VarCorr's
# entries; the residual variance (index m + 1) is handled apart.
kr_parameters <- function(reterms) {
  pars <- list()
  pos <- 0L
  for (term in reterms) {
    pt <- length(term$cnms)
    nl <- nlevels(term$group)
    at <- pos + (seq_len(nl) - 1L) * pt
    for (b in seq_len(pt)) for (a in b:pt)
      pars[[length(pars) + 1L]] <- list(a = at + a, b = at + b)
    pos <- pos + pt * nl
  }
  pars
}

# gamma: the entries of G_t = sigma^2 T_t T_t' in kr_parameters()' order, then sigma^2.
kr_gamma <- function(object) {
  templates <- theta_templates(object$theta, object$reterms)
  s2 <- object$sigma^2
  c(unlist(lapply(templates, function(Tt) {
    G <- s2 * tcrossprod(Tt)
    G[lower.tri(G, diag = TRUE)]
  })), s2)
}

# The index pairs (u, v) with E_i = sum J_u J_v' (J_u selects the columns u).
kr_pairs <- function(par) {
  if (identical(par$a, par$b)) list(list(par$a, par$a)) else
    list(list(par$a, par$b), list(par$b, par$a))
}

# U' E_i V for matrices with q rows.
kr_bilinear <- function(par, U, V) {
  Reduce(`+`, lapply(kr_pairs(par), function(uv)
    crossprod(U[uv[[1L]], , drop = FALSE], V[uv[[2L]], , drop = FALSE])))
}

# S E_j V: the columns of S picked by E_j times V's rows.
kr_times_e <- function(S, par, V) {
  Reduce(`+`, lapply(kr_pairs(par), function(uv)
    S[, uv[[1L]], drop = FALSE] %*% V[uv[[2L]], , drop = FALSE]))
}

# P_i and Q_ij (lists; Q[[i]][[j]]), random parameters first and the residual last (index m).
kr_pq <- function(parts, pars, gamma) {
  m <- length(gamma)
  random <- seq_len(m - 1L)
  g <- gamma[random]
  g0 <- gamma[m]
  PX <- lapply(pars, function(par) kr_bilinear(par, parts$SX, parts$SX))   # X'V^-1 V_i V^-1 X
  PX0 <- (parts$XVX - weighted_sum(PX, g)) / g0
  N <- lapply(pars, function(par) kr_times_e(parts$S, par, parts$SX))       # S E_j Z'V^-1 X
  Q <- lapply(seq_len(m), function(i) vector("list", m))
  for (i in random) for (j in random) Q[[i]][[j]] <- kr_bilinear(pars[[i]], parts$SX, N[[j]])
  for (i in random) {
    Q[[i]][[m]] <- (PX[[i]] - weighted_sum(Q[[i]][random], g)) / g0
    Q[[m]][[i]] <- t(Q[[i]][[m]])
  }
  Q[[m]][[m]] <- (PX0 - weighted_sum(lapply(Q[random], `[[`, m), g)) / g0
  Q[[m]][[m]] <- (Q[[m]][[m]] + t(Q[[m]][[m]])) / 2
  list(P = lapply(c(PX, list(PX0)), `-`), Q = Q)
}

# tr(E_i S E_j S) for a symmetric S: over J_u J_v' in E_i and J_w J_x' in E_j, sum(S[v, w] * S[u, x]).
kr_trace_ee <- function(S, par_i, par_j) {
  sum(vapply(kr_pairs(par_i), function(uv) sum(vapply(kr_pairs(par_j), function(wx)
    sum(S[uv[[2L]], wx[[1L]], drop = FALSE] * S[uv[[1L]], wx[[2L]], drop = FALSE]), 0)), 0))
}

# tr(E_i S) = sum over J_u J_v' in E_i of sum(S[v_l, u_l]).
kr_trace_e <- function(S, par) {
  sum(vapply(kr_pairs(par), function(uv) sum(S[cbind(uv[[2L]], uv[[1L]])]), 0))
}

weighted_sum <- function(mats, w) {
  out <- 0
  for (k in seq_along(mats)) out <- out + w[k] * mats[[k]]
  out
}

# tr(V^{-1}V_i V^{-1}V_j): random pairs tr(E_i S E_j S) = sum over J_u J_v' in E_i and J_w J_x' in
# E_j of sum(S[v, w] * S[u, x]); pairs with the residual from sum_i gamma_i V_i = V.
kr_ktrace <- function(parts, pars, gamma, n) {
  m <- length(gamma)
  random <- seq_len(m - 1L)
  S <- parts$S
  K <- matrix(0, m, m)
  for (i in random) for (j in i:(m - 1L))
    K[i, j] <- K[j, i] <- kr_trace_ee(S, pars[[i]], pars[[j]])
  tr1 <- vapply(pars, function(par) kr_trace_e(S, par), 0)               # tr(V^-1 V_i)
  g <- gamma[random]
  g0 <- gamma[m]
  K[random, m] <- K[m, random] <- (tr1 - drop(K[random, random, drop = FALSE] %*% g)) / g0
  K[m, m] <- ((n - sum(g * tr1)) / g0 - sum(g * K[random, m])) / g0
  K
}

## ---- the interface --------------------------------------------------------------------------------

# Phi_A, the Kenward-Roger adjusted covariance of beta-hat (p x p, named): pbkrtest::vcovAdj.
kr_vcov <- function(object) {
  kr <- kr_setup(object)
  structure(kr$PhiA, dimnames = list(kr$names, kr$names))
}

# Denominator df of the t test of each row l of L (pbkrtest::Lb_ddf(l, Phi, Phi_A)).
kr_ddf <- function(object, L) {
  kr <- kr_setup(object)
  L <- kr_check_L(L, length(kr$beta))
  vapply(seq_len(nrow(L)), function(r) {
    if (all(L[r, ] == 0)) return(NA_real_)
    kr_adjust(kr, L[r, , drop = FALSE])$ddf
  }, 0)
}

# Joint F test of L beta = rhs (pbkrtest::KRmodcomp): L is reduced to a basis of its row space;
# F = F.scaling * W / q with W the Wald statistic on Phi_A, q = rank(L).
kr_test <- function(object, L, rhs = 0) {
  kr <- kr_setup(object)
  L <- kr_check_L(L, length(kr$beta))
  if (length(rhs) == 1L) rhs <- rep(rhs, nrow(L))
  if (length(rhs) != nrow(L)) stop("'rhs' must have one value per row of 'L'", call. = FALSE)
  empty <- list(F = numeric(), F_unscaled = numeric(), ndf = integer(), ddf = numeric(),
                F.scaling = numeric(), p.value = numeric())
  if (nrow(L) == 0L) return(empty)
  beta_h <- if (all(rhs == 0)) 0 else drop(pseudo_inverse(L) %*% rhs)
  L <- full_row_rank(L)
  if (nrow(L) == 0L) return(empty)
  adj <- kr_adjust(kr, L)
  d <- L %*% (kr$beta - beta_h)
  Fu <- drop(crossprod(d, solve(L %*% kr$PhiA %*% t(L), d))) / nrow(L)
  Fs <- adj$F.scaling * Fu
  list(F = Fs, F_unscaled = Fu, ndf = nrow(L), ddf = adj$ddf, F.scaling = adj$F.scaling,
       p.value = pf(Fs, nrow(L), adj$ddf, lower.tail = FALSE))
}

kr_check_L <- function(L, p) {
  if (is.numeric(L) && !is.matrix(L) && length(L) == p) L <- matrix(L, nrow = 1L)
  if (!is.numeric(L) || !is.matrix(L) || ncol(L) != p)
    stop(sprintf("'L' must be a numeric vector or matrix with %d columns (one per fixed effect)", p),
         call. = FALSE)
  if (anyNA(L)) stop("'L' must not contain NA", call. = FALSE)
  L
}

# A basis of L's row space (L itself when its rows are independent).
full_row_rank <- function(L, tol = 1e-7) {
  qr_t <- qr(t(L), tol = tol)
  if (qr_t$rank == nrow(L)) return(L)
  t(qr.Q(qr_t)[, seq_len(qr_t$rank), drop = FALSE])
}

# Kenward & Roger's scaling and df for the q = nrow(L) independent contrasts L:
#   Theta = L'(L Phi L')^{-1} L,  u_i = Theta Phi P_i Phi,
#   A1 = sum_ij W_ij tr(u_i) tr(u_j),  A2 = sum_ij W_ij tr(u_i u_j),
#   B = (A1 + 6 A2) / (2q),  g = ((q+1) A1 - (q+4) A2) / ((q+2) A2),
#   c1, c2, c3 = (g, q - g, q + 2 - g) / (3q + 2(1 - g)),
#   rho = (1 - A2/q)^2 / (1 - c2 B)^2 (1 + c1 B) / (1 - c3 B) / q,
#   ddf = 4 + (q + 2) / (q rho - 1),   F.scaling = ddf (1 - A2/q) / (ddf - 2).
kr_adjust <- function(kr, L) {
  q <- nrow(L)
  Theta <- crossprod(L, solve(L %*% kr$Phi %*% t(L), L))
  TP <- Theta %*% kr$Phi
  u <- lapply(kr$P, function(Pi) TP %*% Pi %*% kr$Phi)
  tr_u <- vapply(u, function(ui) sum(diag(ui)), 0)
  m <- length(u)
  A1 <- sum(kr$W * outer(tr_u, tr_u))
  A2 <- 0
  for (i in seq_len(m)) for (j in seq_len(m)) A2 <- A2 + kr$W[i, j] * sum(u[[i]] * t(u[[j]]))
  B <- (A1 + 6 * A2) / (2 * q)
  g <- ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
  den <- 3 * q + 2 * (1 - g)
  c1 <- g / den
  c2 <- (q - g) / den
  c3 <- (q + 2 - g) / den
  V0 <- 1 + c1 * B
  if (abs(V0) < 1e-10) V0 <- 0
  V1 <- 1 - c2 * B
  V2 <- 1 - c3 * B
  ratio <- if (abs(1 - A2 / q) < 1e-14 && abs(V1) < 1e-14) 1 else (1 - A2 / q) / V1
  rho <- ratio^2 * V0 / V2 / q
  ddf <- 4 + (q + 2) / (q * rho - 1)
  scaling <- if (abs(ddf - 2) < 0.01) 1 else ddf * (1 - A2 / q) / (ddf - 2)
  list(ddf = ddf, F.scaling = scaling, A1 = A1, A2 = A2)
}

## ---- tests for contest(), summary() and anova() ----------------------------------------------------

# t test of l'beta = rhs on Phi_A with Kenward-Roger's df (lmerTest's contest1D, one row).
contest1D_kr <- function(kr, l, rhs = 0) {
  l <- as.numeric(l)
  se <- sqrt(qform(l, kr$PhiA))
  df <- if (all(l == 0)) NA_real_ else kr_adjust(kr, matrix(l, nrow = 1L))$ddf
  estimate <- sum(l * kr$beta)
  tval <- (estimate - rhs) / se
  data.frame(Estimate = estimate, "Std. Error" = se, df = df, "t value" = tval,
             "Pr(>|t|)" = 2 * pt(abs(tval), df, lower.tail = FALSE), check.names = FALSE)
}

# F test of L beta = rhs: Mean Sq from the unscaled F, F value scaled (lmerTest's contestMD).
contestMD_kr <- function(kr, L, rhs = 0) {
  if (!is.matrix(L)) L <- matrix(L, nrow = 1L)
  if (length(rhs) == 1L) rhs <- rep(rhs, nrow(L))
  if (nrow(L) && qr(L)$rank < nrow(L) && any(rhs != 0))
    warning("Contrast is rank deficient and test may be affected", call. = FALSE)
  res <- kr_test(kr, L, rhs)
  if (!length(res$F)) return(f_table_row(numeric(), numeric(), numeric(), numeric()))
  f_table_row(res$F_unscaled, res$ndf, res$ddf, kr$sigma, res$F.scaling)
}
