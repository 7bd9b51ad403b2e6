# A dense, textbook implementation of the profiled criterion (Bates et al. 2015, JSS 67(1),
# eqs. 34 and 41) and of the conditional modes, written independently of the C engine to test it.

dense_Z <- function(reterms) {
  do.call(cbind, lapply(reterms, function(term) {
    nl <- nlevels(term$group); p <- ncol(term$Xt)
    Z <- matrix(0, length(term$group), nl * p)
    g <- as.integer(term$group)
    for (j in seq_len(p)) Z[cbind(seq_along(g), (g - 1L) * p + j)] <- term$Xt[, j]
    Z
  }))
}

dense_Lambda <- function(theta, reterms) {
  blocks <- list(); pos <- 0L
  for (term in reterms) {
    p <- ncol(term$Xt); nth <- p * (p + 1L) / 2L
    Tt <- matrix(0, p, p); Tt[lower.tri(Tt, diag = TRUE)] <- theta[pos + seq_len(nth)]
    pos <- pos + nth
    blocks <- c(blocks, rep(list(Tt), nlevels(term$group)))
  }
  q <- sum(vapply(blocks, nrow, 1L)); L <- matrix(0, q, q); o <- 0L
  for (B in blocks) { i <- o + seq_len(nrow(B)); L[i, i] <- B; o <- o + nrow(B) }
  L
}

# Criterion and solution at theta for y, X, reterms, prior weights w (offset already removed).
dense_pls <- function(theta, y, X, reterms, w = rep(1, length(y)), REML = TRUE) {
  Z <- dense_Z(reterms); Lambda <- dense_Lambda(theta, reterms)
  n <- length(y); p <- ncol(X); q <- ncol(Z)
  sw <- sqrt(w); ZL <- (Z %*% Lambda) * sw; Xw <- X * sw; yw <- y * sw
  M <- crossprod(ZL) + diag(q)
  L <- chol(M)                                       # upper: M = L'L
  RZX <- backsolve(L, crossprod(ZL, Xw), transpose = TRUE)
  cu <- backsolve(L, crossprod(ZL, yw), transpose = TRUE)
  XtX <- crossprod(Xw) - crossprod(RZX)
  RX <- chol(XtX)
  beta <- backsolve(RX, backsolve(RX, crossprod(Xw, yw) - crossprod(RZX, cu), transpose = TRUE))
  u <- backsolve(L, cu - RZX %*% beta)
  r2 <- sum((yw - ZL %*% u - Xw %*% beta)^2) + sum(u^2)
  ldL2 <- 2 * sum(log(diag(L))); ldRX2 <- 2 * sum(log(diag(RX))); nmp <- if (REML) n - p else n
  crit <- ldL2 - sum(log(w)) + nmp * (1 + log(2 * pi * r2 / nmp)) + if (REML) ldRX2 else 0
  sigma2 <- r2 / nmp
  Minv <- chol2inv(L)
  list(crit = crit, beta = drop(beta), u = drop(u), b = drop(Lambda %*% u), sigma = sqrt(sigma2),
       condvar = sigma2 * Lambda %*% Minv %*% t(Lambda), vcov = sigma2 * chol2inv(RX))
}

# Profiled criterion of y = X beta + Z b + e, Var = s^2 (Z Lambda Lambda' Z' + Vr), by dense algebra.
resid_dense_crit <- function(y, X, Z, Lambda, Vr, REML) {
  V <- Z %*% Lambda %*% t(Lambda) %*% t(Z) + Vr
  Vi <- solve(V)
  XVX <- t(X) %*% Vi %*% X
  beta <- solve(XVX, t(X) %*% Vi %*% y)
  r <- y - X %*% beta
  nmp <- length(y) - if (REML) ncol(X) else 0
  r2 <- drop(t(r) %*% Vi %*% r)
  as.numeric(determinant(V)$modulus + nmp * (1 + log(2 * pi * r2 / nmp)) +
         if (REML) determinant(XVX)$modulus else 0)
}
