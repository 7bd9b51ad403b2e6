# Starting values of theta from moment estimates (no optimisation), computed in C from the
# engine's cross-product matrix A = G'WG, G = [Z X y] (src/moments.c): nothing here touches the
# n observations, and it costs microseconds.
#
# r: residuals of the (weighted) OLS fit of y - offset on X.  Each term t (columns Z_t) is
# first estimated marginally, as if it were the only one:
#   - per level j of its factor, the OLS fit of r_j on Z_j gives b_j = G_j^-1 c_j
#     (G_j = Z_j'Z_j, c_j = Z_j'r_j) and a residual sum of squares on n_j - p_t degrees of
#     freedom, pooled over the levels into the within-level variance s2w_t;
#   - Cov(b_j) = Sigma_t + s2w_t E[G_j^-1], so Sigma_t = cov(b) - s2w_t mean_j G_j^-1
#     (for (1|g): the one-way ANOVA estimator).  cov(b) has divisor J - 1 (ML: J).
# Scalar terms (one column z_t) are then estimated jointly, Henderson's method 1 on level
# estimates: the other terms u reach b_t through G_jk = sum_{i in level j of t and level k of u}
# z_t,i z_u,i / d_j (d_j = sum_{i in j} z_t,i^2), so that
#   E[var(b_t)] = sigma_t^2 + sum_u kappa_tu sigma_u^2 + s2 mean_j(1 / d_j),
#   kappa_tu = (||G||_F^2 - ||1'G||^2 / J) / (J - 1)   (0 for balanced crossing, ~1 for nesting),
# and the within-level variance of the scalar term t* with the least of it adds
#   E[s2w_t*] = s2 + sum_u lambda_t*u sigma_u^2,
#   lambda_tu = (sum z_u^2 - sum_jk h_jk G_jk) / (n - J).
# These K + 1 linear equations give the sigma_u^2 and the residual variance s2.  Vector terms
# keep their marginal Sigma_t; without scalar terms s2 is the least s2w_t.
# theta_t is the lower Cholesky factor of Sigma_t / s2 with every standardised variance
# floored at start_floor^2, so that the optimiser does not start on the boundary.  Terms that
# cannot be estimated (fewer than two usable levels) keep lme4's start (1 on the diagonal, 0
# below), as does everything when s2 cannot be estimated.

start_floor <- 0.1

# theta0 by moments from an engine (engine_setup(), A formed), rounded to 3 significant digits:
# the same start (hence the same optimiser path) whatever the order of the rows, whose rounding
# errors would otherwise change the last digits.
theta_moments <- function(engine, REML = TRUE) signif(moment_estimates(engine, REML)$theta, 3)

# The estimates behind theta_moments(): list(theta (unrounded), s2, s2w (per term), Sigma (per
# term, NULL if not estimable), kappa, lambda (k x k pair coefficients, NA outside the system)).
moment_estimates <- function(engine, REML = TRUE) .Call(C_lmm_moments, engine, REML, start_floor)
