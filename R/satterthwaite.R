# Satterthwaite's degrees of freedom for t and F tests of fixed effects, the method of lmerTest
# (Kuznetsova, Brockhoff & Christensen 2017, JSS 82(13), section 3 and appendix).
#
# The covariance parameters are varpar = (theta, rho, sigma), NOT profiled: rho the free
# parameters of the residual structure (none without one; fixed entries are not parameters).
# For a REML fit
#   D(varpar) = log|L|^2 + log|R_X|^2 - log|V^{-1}| + (n - p) log(2 pi sigma^2) + r^2 / sigma^2
# (ML: drop log|R_X|^2 and use n), with L, R_X and the penalised weighted RSS r^2 at (theta, rho),
# and log|V^{-1}| the log-determinant of the residual structure's precision at rho (sum(log w)
# without a structure).
# At the estimate:  A = Var(varpar) ~ 2 H^{-1}, H the Hessian of D;
#                   C(varpar) = Var(beta) = sigma^2 (R_X' R_X)^{-1}, J_k = dC / d varpar_k.
# One contrast l:   nu = 2 (l'Cl)^2 / (g' A g),  g_k = l' J_k l.
# q contrasts L:    eigen-decompose L C L' = P diag(d) P', test the q orthogonal contrasts P'L,
#                   each with nu_m as above, and combine them into the F statistic's denominator df
#                   nu = 2E / (E - q), E = sum nu_m / (nu_m - 2)   (2 when some nu_m <= 2).
# The df are invariant to the scale of theta and rho (H and g transform by the same Jacobian).

## ---- the varpar deviance and Var(beta) as functions of varpar --------------------------------

# The layout of varpar: nt theta entries, then the free entries of rho (within the full rho0,
# whose fixed entries stay; lower and upper their bounds, R/profile.R rho_layout()), then sigma.
# A residual parameter estimated at its bound (|phi| at its limit) has no two-sided derivatives
# there: it counts as fixed.
varpar_layout <- function(fit) {
  rho <- rho_layout(fit)
  x <- rho$start
  tol <- 1e-8 * pmax(1, abs(x))
  inside <- x - rho$lower > tol & rho$upper - x > tol
  if (!all(inside)) {
    rho$free[which(rho$free)[!inside]] <- FALSE
    rho[c("start", "lower", "upper")] <- lapply(rho[c("start", "lower", "upper")],
                                                `[`, inside)
  }
  c(list(nt = length(fit$theta)), rho)
}

# The layout of a fit without a residual structure: varpar = (theta, sigma).
plain_layout <- function(varpar) list(nt = length(varpar) - 1L, rho0 = numeric(), free = logical())

varpar_of <- function(fit, layout = varpar_layout(fit)) {
  unname(c(fit$theta, layout$rho0[layout$free], fit$sigma))
}

# (theta, rho, sigma) of a varpar vector.
varpar_split <- function(varpar, layout) {
  k <- length(varpar)
  rho <- layout$rho0
  rho[layout$free] <- varpar[layout$nt + seq_len(sum(layout$free))]
  list(theta = varpar[seq_len(layout$nt)], rho = rho, sigma = varpar[k])
}

# D(varpar) as above.
varpar_deviance <- function(varpar, engine, REML, n, p, layout = plain_layout(varpar)) {
  v <- varpar_split(varpar, layout)
  sigma2 <- v$sigma^2
  parts <- engine_parts(engine, v$theta, REML, v$rho)
  if (!is.finite(parts$crit)) return(Inf)                # outside the parameter space
  nmp <- if (REML) n - p else n
  dev <- parts$ldL2 - parts$sumlogw + nmp * log(2 * pi * sigma2) + parts$pwrss / sigma2
  if (REML) dev + parts$ldRX2 else dev
}

# vec(C(varpar)) = vec(sigma^2 (R_X'R_X)^{-1}) at (theta, rho).
varpar_vcov_beta <- function(varpar, engine, REML, layout = plain_layout(varpar)) {
  v <- varpar_split(varpar, layout)
  as.vector(v$sigma^2 * engine_parts(engine, v$theta, REML, v$rho)$RXinv2)
}

## ---- finite differences with Richardson extrapolation ---------------------------------------
## Central differences at steps h, h/2, ..., h/2^(r-1), combined by Richardson's rule
## D <- (4^m D(h/2) - D(h)) / (4^m - 1), m = 1 .. r-1 (error O(h^2) -> O(h^(2r))).
## Initial step: h_i = d |x_i|, or eps where |x_i| is (nearly) zero -- numDeriv's defaults:
## d = 0.1 for Hessians, 1e-4 for Jacobians; eps = 1e-4; r = 4.

richardson_steps <- function(x, d, eps = 1e-4) {
  zero_tol <- sqrt(.Machine$double.eps / 7e-7)
  abs(d * x) + eps * (abs(x) < zero_tol)
}

# Rows of A are successive estimates (step halved each row); returns the extrapolated estimate.
richardson_extrapolate <- function(A) {
  A <- as.matrix(A)
  r <- nrow(A)
  for (m in seq_len(r - 1L)) {
    A <- (A[-1L, , drop = FALSE] * 4^m - A[-nrow(A), , drop = FALSE]) / (4^m - 1)
  }
  drop(A[1L, ])
}

# Jacobian of the vector function f at x (length(f(x)) x length(x)).
richardson_jacobian <- function(f, x, d = 1e-4, r = 4L, h0 = richardson_steps(x, d)) {
  m <- length(f(x))
  cols <- lapply(seq_along(x), function(i) {
    e_i <- as.numeric(seq_along(x) == i)
    est <- matrix(vapply(seq_len(r), function(k) {
      h <- h0[i] / 2^(k - 1L)
      (f(x + h * e_i) - f(x - h * e_i)) / (2 * h)
    }, numeric(m)), nrow = r, byrow = TRUE)
    richardson_extrapolate(est)
  })
  do.call(cbind, cols)
}

# Hessian of the scalar function f at x.  Diagonal: (f(x+h e_i) - 2 f(x) + f(x-h e_i)) / h^2;
# off-diagonal from the second difference along e_i + e_j, with the diagonal terms removed:
#   (f(x+h_i e_i+h_j e_j) - 2 f(x) + f(x-h_i e_i-h_j e_j) - H_ii h_i^2 - H_jj h_j^2) / (2 h_i h_j).
richardson_hessian <- function(f, x, d = 0.1, r = 4L, h0 = richardson_steps(x, d)) {
  k <- length(x)
  f0 <- f(x)
  unit <- function(i) as.numeric(seq_len(k) == i)
  halve <- function(k_step) h0 / 2^(k_step - 1L)
  H <- matrix(0, k, k)
  for (i in seq_len(k)) {
    est <- vapply(seq_len(r), function(s) {
      h <- halve(s)
      (f(x + h[i] * unit(i)) - 2 * f0 + f(x - h[i] * unit(i))) / h[i]^2
    }, 0)
    H[i, i] <- richardson_extrapolate(est)
  }
  for (i in seq_len(k)) for (j in seq_len(i - 1L)) {
    est <- vapply(seq_len(r), function(s) {
      h <- halve(s)
      step <- h[i] * unit(i) + h[j] * unit(j)
      (f(x + step) - 2 * f0 + f(x - step) - H[i, i] * h[i]^2 - H[j, j] * h[j]^2) /
        (2 * h[i] * h[j])
    }, 0)
    H[i, j] <- H[j, i] <- richardson_extrapolate(est)
  }
  H
}

# Steps h kept inside the domain of f: h_i halved (at most 40 times) until f(x -+ h_i e_i) are
# finite.  For the entries `local` (the residual structure's parameters, whose scale lmmc does
# not fix) also until x_i -+ h_i are within [lower, upper] and f changes by at most max_change
# there: steps within about one standard error, where f is close to quadratic (a CAR(1)
# correlation of 0.97 per day, raised to lags of 60 days, is not at 10% of its value).
# Steps already inside are unchanged.
finite_steps <- function(f, x, h, local = integer(), lower = -Inf, upper = Inf, max_change = 1) {
  f0 <- f(x)
  lower <- rep_len(lower, length(local))
  upper <- rep_len(upper, length(local))
  for (i in seq_along(x)) {
    e_i <- as.numeric(seq_along(x) == i)
    k <- match(i, local)
    for (halving in seq_len(40L)) {
      up <- f(x + h[i] * e_i)
      down <- f(x - h[i] * e_i)
      ok <- is.finite(up) && is.finite(down)
      if (ok && !is.na(k))
        ok <- x[i] - h[i] >= lower[k] && x[i] + h[i] <= upper[k] &&
          max(abs(up - f0), abs(down - f0)) <= max_change
      if (ok) break
      h[i] <- h[i] / 2
    }
  }
  h
}

## ---- the pieces every Satterthwaite test needs ------------------------------------------------

# A = Var(varpar) = 2 H^+ (H^+ the pseudo-inverse over eigenvalues > tol) and the Jacobian
# matrices J_k, computed once per fit.  Negative or near-zero eigenvalues of H are reported as
# lmerTest reports them.
satterthwaite_setup <- function(fit, tol = 1e-8) {
  engine <- engine_for(fit)
  layout <- varpar_layout(fit)
  varpar <- varpar_of(fit, layout)
  dev <- function(v) varpar_deviance(v, engine, fit$REML, fit$n, fit$p, layout)
  rho_at <- layout$nt + seq_len(sum(layout$free))
  h_hess <- finite_steps(dev, varpar, richardson_steps(varpar, 0.1), rho_at, layout$lower,
                         layout$upper)
  H <- richardson_hessian(dev, varpar, h0 = h_hess)
  eig <- eigen(H, symmetric = TRUE)
  warn_hessian(eig$values, tol)
  pos <- eig$values > tol
  V <- eig$vectors[, pos, drop = FALSE]
  A <- 2 * V %*% (t(V) / eig$values[pos])
  h_jac <- pmin(richardson_steps(varpar, 1e-4), h_hess)
  Jac <- richardson_jacobian(function(v) varpar_vcov_beta(v, engine, fit$REML, layout), varpar,
                             h0 = h_jac)
  p <- fit$p
  J <- lapply(seq_len(ncol(Jac)), function(k) matrix(Jac[, k], p, p))
  list(beta = fit$beta, vcov_beta = unname(fit$vcov_beta), sigma = fit$sigma,
       vcov_varpar = A, jacobian = J, hessian = H)
}

warn_hessian <- function(values, tol) {
  fmt <- function(v) paste(sprintf("%1.1e", v), collapse = " ")
  neg <- values < -tol
  zero <- abs(values) < tol
  if (any(neg))
    warning(sprintf("Model failed to converge with %d negative eigenvalue%s: %s",
                    sum(neg), if (sum(neg) > 1) "s" else "", fmt(values[neg])), call. = FALSE)
  if (any(zero))
    warning(sprintf("Model may not have converged with %d eigenvalue%s close to zero: %s",
                    sum(zero), if (sum(zero) > 1) "s" else "", fmt(values[zero])), call. = FALSE)
}

qform <- function(x, A) sum(x * (A %*% x))

## ---- tests -------------------------------------------------------------------------------

# t test of l'beta = rhs: Estimate, Std. Error, df, t value, Pr(>|t|) (one row).
contest1D_sat <- function(sat, l, rhs = 0) {
  l <- as.numeric(l)
  var_l <- qform(l, sat$vcov_beta)
  g <- vapply(sat$jacobian, function(J) qform(l, J), 0)
  df <- 2 * var_l^2 / qform(g, sat$vcov_varpar)
  estimate <- sum(l * sat$beta)
  tval <- (estimate - rhs) / sqrt(var_l)
  data.frame(Estimate = estimate, "Std. Error" = sqrt(var_l), df = df, "t value" = tval,
             "Pr(>|t|)" = 2 * pt(abs(tval), df, lower.tail = FALSE), check.names = FALSE)
}

# F table row: Sum Sq = F sigma^2 NumDF, Mean Sq = F sigma^2 (lmerTest's convention); the
# F value reported is scale * F (Kenward-Roger's F.scaling; 1 for Satterthwaite).
f_table_row <- function(Fvalue, ndf, ddf, sigma, scale = 1) {
  ms <- Fvalue * sigma^2
  Fvalue <- Fvalue * scale
  data.frame("Sum Sq" = ms * ndf, "Mean Sq" = ms, NumDF = ndf, DenDF = ddf,
             "F value" = Fvalue, "Pr(>F)" = pf(Fvalue, ndf, ddf, lower.tail = FALSE),
             check.names = FALSE)
}

# F test of L beta = rhs.  Rank-deficient L: only the eigen-directions with d_m > eps d_1 count.
contestMD_sat <- function(sat, L, rhs = 0, eps = sqrt(.Machine$double.eps)) {
  if (!is.matrix(L)) L <- matrix(L, nrow = 1L)
  if (length(rhs) == 1L) rhs <- rep(rhs, nrow(L))
  if (nrow(L) == 0L || all(L == 0))           # nothing to test: no row
    return(f_table_row(numeric(), numeric(), numeric(), numeric()))
  if (nrow(L) == 1L) {
    t1 <- contest1D_sat(sat, L[1L, ], rhs)
    return(f_table_row(t1[["t value"]]^2, 1L, t1$df, sat$sigma))
  }
  beta <- sat$beta
  if (any(rhs != 0)) beta <- beta - drop(pseudo_inverse(L) %*% rhs)
  eig <- eigen(L %*% sat$vcov_beta %*% t(L), symmetric = TRUE)
  d <- eig$values
  q <- sum(d > max(eps * d[1L], 0))
  if (q < nrow(L) && any(rhs != 0)) warning("Contrast is rank deficient and test may be affected",
                                            call. = FALSE)
  if (q == 0L) return(f_table_row(numeric(), numeric(), numeric(), numeric()))
  PtL <- crossprod(eig$vectors, L)[seq_len(q), , drop = FALSE]
  if (q == 1L) {
    sat1 <- sat
    sat1$beta <- beta
    t1 <- contest1D_sat(sat1, PtL[1L, ], 0)
    return(f_table_row(t1[["t value"]]^2, 1L, t1$df, sat$sigma))
  }
  Fvalue <- sum(drop(PtL %*% beta)^2 / d[seq_len(q)]) / q
  nu <- vapply(seq_len(q), function(m) {
    g <- vapply(sat$jacobian, function(J) qform(PtL[m, ], J), 0)
    2 * d[m]^2 / qform(g, sat$vcov_varpar)
  }, 0)
  f_table_row(Fvalue, q, satterthwaite_combine(nu), sat$sigma)
}

# Denominator df of F from the q t-statistics' df (Fai & Cornelius 1996, as lmerTest):
# E = sum nu_m / (nu_m - 2), nu = 2E / (E - q); equal nu_m give their common value.
satterthwaite_combine <- function(nu, tol = 1e-8) {
  if (length(nu) == 1L) return(nu)
  if (all(abs(diff(nu)) < tol)) return(mean(nu))
  if (any(nu <= 2)) return(2)
  E <- sum(nu / (nu - 2))
  2 * E / (E - length(nu))
}

# Moore-Penrose inverse from the SVD (singular values below tol * largest treated as zero).
pseudo_inverse <- function(X, tol = sqrt(.Machine$double.eps)) {
  s <- svd(X)
  keep <- s$d > max(tol * s$d[1L], 0)
  if (!any(keep)) return(array(0, dim(X)[2:1]))
  s$v[, keep, drop = FALSE] %*% (t(s$u[, keep, drop = FALSE]) / s$d[keep])
}

## ---- user-facing ----------------------------------------------------------------------------

# The fixed-effects table of summary(): Estimate, Std. Error, df, t value, Pr(>|t|).
satterthwaite_coef_table <- function(fit, sat = satterthwaite_setup(fit)) {
  ddf_coef_table(fit, sat)
}

# The same with the pieces of either df method (ddf_setup()).
ddf_coef_table <- function(fit, setup) {
  p <- length(fit$beta)
  cols <- c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)")
  if (p == 0L) return(matrix(numeric(), 0L, 5L, dimnames = list(NULL, cols)))
  rows <- lapply(seq_len(p), function(j) contest_t(setup, as.numeric(seq_len(p) == j)))
  tab <- as.matrix(do.call(rbind, rows))
  dimnames(tab) <- list(names(fit$beta), cols)
  tab
}

contest <- function(model, L, ...) UseMethod("contest")

# Without lmmc's method (an lmer fit, say): lmerTest's contest() when it is installed.
contest.default <- function(model, L, ...) {
  forward_to_lmerTest("contest", model, match.call(), parent.frame())
}

# Tests of contrasts L beta = rhs: joint = TRUE gives one F test (rows of L jointly),
# joint = FALSE a t test per row (with Wald confidence limits on the test's df).  The df are
# Satterthwaite's or Kenward-Roger's (R/kenward-roger.R; REML fits only, as lmerTest).
contest.lmm <- function(model, L, rhs = 0, joint = TRUE, confint = TRUE, level = 0.95,
                        ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  ddf <- match.arg(ddf)
  L <- contrast_matrix(L, length(model$beta))
  if (length(rhs) == 1L) rhs <- rep(rhs, nrow(L))
  if (!is.numeric(rhs) || length(rhs) != nrow(L))
    stop("'rhs' must have one value per row of 'L'", call. = FALSE)
  if (!joint && nrow(L) == 0L) return(empty_t_table(confint))
  setup <- ddf_setup(model, ddf)
  if (joint) return(contest_F(setup, L, rhs))
  rows <- lapply(seq_len(nrow(L)), function(i) {
    tab <- contest_t(setup, L[i, ], rhs[i])
    if (confint) tab <- add_wald_limits(tab, level)
    tab
  })
  out <- do.call(rbind, rows)
  if (!is.null(rownames(L))) rownames(out) <- rownames(L)
  out
}

# L as a matrix with p columns: a vector of length p is one row; numeric(0) is no row.
contrast_matrix <- function(L, p) {
  if (is.numeric(L) && !is.matrix(L) && length(L) == 0L) L <- matrix(0, 0L, p)
  if (is.numeric(L) && !is.matrix(L) && length(L) == p) L <- matrix(L, nrow = 1L)
  if (!is.numeric(L) || !is.matrix(L) || ncol(L) != p)
    stop(sprintf("'L' must be a numeric vector or matrix with %d columns (one per fixed effect)", p),
         call. = FALSE)
  if (anyNA(L)) stop("'L' must not contain NA", call. = FALSE)
  L
}

# Wald limits estimate -/+ t_{(1+level)/2, df} SE, placed before the p-value (lmerTest's layout).
add_wald_limits <- function(tab, level) {
  half <- qt((1 + level) / 2, tab$df) * tab[["Std. Error"]]
  cbind(tab[1:4], lower = tab$Estimate - half, upper = tab$Estimate + half, tab[5])
}

empty_t_table <- function(confint) {
  o <- numeric()
  tab <- data.frame(Estimate = o, "Std. Error" = o, df = o, "t value" = o, "Pr(>|t|)" = o,
                    check.names = FALSE)
  if (confint) add_wald_limits(tab, 0.95) else tab
}

## ---- one interface to the two df methods --------------------------------------------------------

# The per-fit pieces of the chosen method: satterthwaite_setup() or kr_setup().
ddf_setup <- function(model, ddf = c("Satterthwaite", "Kenward-Roger")) {
  ddf <- match.arg(ddf)
  if (ddf == "Satterthwaite") return(satterthwaite_setup(model))
  if (!isTRUE(model$REML))
    stop("Kenward-Roger's method is only available for REML model fits", call. = FALSE)
  kr_setup(model)
}

contest_t <- function(setup, l, rhs = 0) {
  if (inherits(setup, "lmm_kr")) contest1D_kr(setup, l, rhs) else contest1D_sat(setup, l, rhs)
}

contest_F <- function(setup, L, rhs = 0) {
  if (inherits(setup, "lmm_kr")) contestMD_kr(setup, L, rhs) else contestMD_sat(setup, L, rhs)
}

ddf_method_name <- function(setup) {
  if (inherits(setup, "lmm_kr")) "Kenward-Roger's" else "Satterthwaite's"
}
