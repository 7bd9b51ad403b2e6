# Kenward-Roger's adjusted covariance of beta-hat and denominator df (Kenward & Roger 1997,
# Biometrics 53; in the form of Halekoh & Hojsgaard 2014, JSS 59(9), and pbkrtest's vcovAdj).
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
# into I and leaves every quantity above unchanged, so with D = Z'WZ, B = Z'WX, A = X'WX and
#   C = Lambda (Lambda' D Lambda + I)^{-1} Lambda',   sigma^2 V^{-1} = I - Z C Z'   (Woodbury),
#   F = I - D C:
#   Z'V^{-1}Z = F D / sigma^2,          Z'V^{-1}X = F B / sigma^2,
#   Z'V^{-2}Z = F F D / sigma^4,        Z'V^{-2}X = F F B / sigma^4,
#   X'V^{-2}X = (A - 2 B'CB + B'CDCB) / sigma^4,
#   X'V^{-3}X = (A - 2 B'CB + B'CDCB - (FB)' C (FB)) / sigma^6,
#   tr V^{-2} = (n - 2 tr(CD) + tr(CDCD)) / sigma^4,
# and for random V_i, V_j:  tr(V^{-1}V_i V^{-1}V_j) = tr(E_i S E_j S), S = Z'V^{-1}Z.  The cost is
# that of dense q x q matrices (q = number of random effects): O(q^3) time and O(q^2) memory;
# above getOption("lmmc.kr_max_q", 5000) random effects an error says so.

## ---- the adjusted covariance --------------------------------------------------------------------

# Everything a Kenward-Roger test needs, once per fit: beta, Phi, Phi_A, the P_i and W.
# An ML fit is first refitted by REML (as pbkrtest does).
kr_setup <- function(object) {
  if (inherits(object, "lmm_kr")) return(object)
  if (!inherits(object, "lmm")) stop("Kenward-Roger's method needs a fitted \"lmm\" object",
                                     call. = FALSE)
  if (!is.null(object$residual))
    stop("Kenward-Roger's method is not available for fits with a residual correlation or ",
         "variance structure", call. = FALSE)
  if (object$p == 0L) stop("the model has no fixed effects to test", call. = FALSE)
  if (!isTRUE(object$REML)) object <- refit_reml(object)
  check_kr_size(object$q)
  parts <- kr_woodbury(object)
  pars <- kr_parameters(object$reterms)
  Phi <- unname(object$vcov_beta)
  PQ <- kr_pq(parts, pars)
  K <- kr_ktrace(parts, pars)
  m <- length(pars)
  info <- matrix(0, m, m)
  for (i in seq_len(m)) for (j in i:m) {
    info[i, j] <- info[j, i] <- K[i, j] - 2 * sum(Phi * PQ$Q[[i]][[j]]) +
      sum((Phi %*% PQ$P[[i]]) * (PQ$P[[j]] %*% Phi))
  }
  W <- 2 * kr_inverse(info)
  U <- matrix(0, object$p, object$p)
  for (i in seq_len(m)) for (j in seq_len(m))
    U <- U + W[i, j] * (PQ$Q[[i]][[j]] - PQ$P[[i]] %*% Phi %*% PQ$P[[j]])
  PhiA <- Phi + 2 * Phi %*% U %*% Phi
  PhiA <- (PhiA + t(PhiA)) / 2
  nm <- names(object$beta)
  structure(list(beta = object$beta, sigma = object$sigma, Phi = Phi,
                 PhiA = PhiA, P = PQ$P, W = W, names = nm),
            class = "lmm_kr")
}

# The same model fitted by REML, from the ML estimate of theta (fields describing the model kept).
refit_reml <- function(fit) {
  reml <- lmm_fit(fit$y, fit$X, fit$reterms, weights = fit$weights, offset = fit$offset,
                  REML = TRUE, control = lmm_control(check.conv.singular = "ignore"),
                  start = unname(fit$theta))
  carry <- setdiff(names(fit), names(reml))
  reml[carry] <- fit[carry]
  reml$call <- fit$call
  if (!is.null(reml$call)) reml$call$REML <- TRUE
  reml
}

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

# Lambda (q x q, u's order: term by term, level-major, a term's columns within a level).
kr_lambda <- function(object) {
  templates <- theta_templates(object$theta, object$reterms)
  Lambda <- matrix(0, object$q, object$q)
  pos <- 0L
  for (t in seq_along(templates)) {
    pt <- nrow(templates[[t]])
    nl <- nlevels(object$reterms[[t]]$group)
    for (l in seq_len(nl)) {
      k <- pos + (l - 1L) * pt + seq_len(pt)
      Lambda[k, k] <- templates[[t]]
    }
    pos <- pos + pt * nl
  }
  Lambda
}

# The cross-products of the header: S = Z'V^{-1}Z, SX = Z'V^{-1}X, S2 = Z'V^{-2}Z, S2X = Z'V^{-2}X,
# X2 = X'V^{-2}X, X3 = X'V^{-3}X, tr2 = tr V^{-2}.
kr_woodbury <- function(object) {
  g <- kr_gram(object)
  Lambda <- kr_lambda(object)
  s2 <- object$sigma^2
  q <- object$q
  inner <- crossprod(Lambda, g$D %*% Lambda)
  diag(inner) <- diag(inner) + 1
  C <- Lambda %*% chol2inv(chol(inner)) %*% t(Lambda)          # Lambda (Lambda'D Lambda + I)^-1 Lambda'
  DC <- g$D %*% C
  F <- -DC
  diag(F) <- diag(F) + 1                                         # F = I - D C
  FD <- F %*% g$D
  FB <- F %*% g$B
  CB <- C %*% g$B
  X2 <- g$A - 2 * crossprod(g$B, CB) + crossprod(CB, g$D %*% CB)
  list(S = symmetrise(FD) / s2, SX = FB / s2,
       S2 = symmetrise(F %*% FD) / s2^2, S2X = (F %*% FB) / s2^2,
       X2 = symmetrise(X2) / s2^2,
       X3 = symmetrise(X2 - crossprod(FB, C %*% FB)) / s2^3,
       tr2 = (object$n - 2 * sum(diag(DC)) + sum(DC * t(DC))) / s2^2)
}

symmetrise <- function(M) (M + t(M)) / 2

## ---- the parameters gamma and their V_i -------------------------------------------------------------

# One entry per covariance parameter: the indices (in u's order) of components a and b of term t
# over its levels; the residual variance last (idx NULL).  Order: each term's lower triangle
# column by column, as VarCorr's entries.
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
  c(pars, list(list(a = NULL, b = NULL)))
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

# E_i V (q rows).
kr_pick <- function(par, V) {
  out <- matrix(0, nrow(V), ncol(V))
  for (uv in kr_pairs(par)) out[uv[[1L]], ] <- out[uv[[1L]], ] + V[uv[[2L]], ]
  out
}

# P_i and Q_ij (lists; Q[[i]][[j]]) for random parameters and the residual (the last).
kr_pq <- function(parts, pars) {
  m <- length(pars)
  random <- seq_len(m - 1L)
  P <- c(lapply(pars[random], function(par) -kr_bilinear(par, parts$SX, parts$SX)),
         list(-parts$X2))
  N <- lapply(pars[random], function(par) parts$S %*% kr_pick(par, parts$SX))   # S E_j SX
  Q <- lapply(seq_len(m), function(i) vector("list", m))
  for (i in random) {
    for (j in random) Q[[i]][[j]] <- kr_bilinear(pars[[i]], parts$SX, N[[j]])
    Q[[i]][[m]] <- kr_bilinear(pars[[i]], parts$SX, parts$S2X)
    Q[[m]][[i]] <- t(Q[[i]][[m]])
  }
  Q[[m]][[m]] <- parts$X3
  list(P = P, Q = Q)
}

# tr(V^{-1}V_i V^{-1}V_j): random pairs tr(E_i S E_j S) = sum over J_u J_v' in E_i and J_w J_x' in
# E_j of sum(S[v, w] * S[u, x]); random and residual tr(E_i Z'V^{-2}Z); residual pair tr V^{-2}.
kr_ktrace <- function(parts, pars) {
  m <- length(pars)
  S <- parts$S
  K <- matrix(0, m, m)
  for (i in seq_len(m - 1L)) {
    for (j in i:(m - 1L)) {
      K[i, j] <- K[j, i] <- sum(vapply(kr_pairs(pars[[i]]), function(uv)
        sum(vapply(kr_pairs(pars[[j]]), function(wx)
          sum(S[uv[[2L]], wx[[1L]], drop = FALSE] * S[uv[[1L]], wx[[2L]], drop = FALSE]), 0)), 0))
    }
    K[i, m] <- K[m, i] <- sum(vapply(kr_pairs(pars[[i]]), function(uv)
      sum(parts$S2[cbind(uv[[2L]], uv[[1L]])]), 0))
  }
  K[m, m] <- parts$tr2
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
