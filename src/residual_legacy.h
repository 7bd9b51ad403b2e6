/*
 * residual.h -- residual structures by pre-whitening (lmmc).
 *
 * The residual covariance is s^2 V with V = S R S:
 *     R  block diagonal over the correlation groups, AR(1) in the within-group time order:
 *        cor(e_i, e_j) = phi^|t_i - t_j|   (corAR1: integer times; corCAR1: real times, phi >= 0);
 *     S  = diag(delta_stratum(i) / sqrt(w_i))   (varIdent ratios delta, delta = 1 for the
 *        reference stratum; w the prior weights).
 * R^{-1} = B'B with B lower bidiagonal in time order: the first row of a group is e_i itself, a
 * later row i with predecessor j = prev[i] and rho_i = phi^(t_i - t_j) is
 *     (e_i - rho_i e_j) / sqrt(1 - rho_i^2).
 * So V^{-1} = (B S^{-1})'(B S^{-1}) and the whitened row i of G = [Z X y] is
 *     g_i = sqrt(w_i) a_i raw_i + c_i raw_j,
 *     a_i = B_ii / delta_i,   c_i = B_ij sqrt(w_j) / delta_j,
 * which is the row form lmm_crossprod() takes; log|V^{-1}| = 2 sum log(sqrt(w_i) a_i).
 *
 * The residual parameters rho are laid out as (phi, log delta_2, ..., log delta_S): phi only when
 * there is a correlation structure, one log ratio per non-reference stratum.
 */
#ifndef LMMC_RESIDUAL_LEGACY_H
#define LMMC_RESIDUAL_LEGACY_H

#include "residual.h"


typedef struct {
    int n;
    int cor;               /* LMM_COR_* */
    const int *prev;       /* [n] predecessor row in the group's time order, -1 for the first */
    const double *lag;     /* [n] t_i - t_prev(i) > 0 (unused when prev[i] = -1) */
    int nstrata;           /* S >= 1 */
    const int *stratum;    /* [n] 0-based stratum; 0 is the reference (delta = 1) */
    const double *sqrtw;   /* [n] square roots of the prior weights, or NULL */
} lmm_resid;

/* residual.c: whitening coefficients */
int lmm_resid_npar(const lmm_resid *r);
int lmm_resid_coef(int cor, const double *rho, int has_prev, double lag, int s, int sj,
                   double *alpha, double *gamma);
int lmm_resid_whiten(const lmm_resid *r, const double *rho, double *a, double *c);

/* residual_pieces.c: A(rho) from per-class cross-products (classes of equal coefficients) */
double lmm_resid_pieces_size(const lmm_model *m, int K, const int *has_prev);
SEXP lmm_resid_pieces(lmm_model *m, const int *const *refs, const double *const *Xt,
                      const double *X, const double *y, const double *sqrtw, const int *prev,
                      const int *cls, int K, const int *has_prev);
void lmm_resid_combine(lmm_model *m, SEXP pieces, const double *alpha, const double *gamma,
                       const int *has_prev);

/* .Call entries (residual_fit.c) */
SEXP lmm_setup_resid(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP resid);
SEXP lmm_crit_resid(SEXP ptr, SEXP theta, SEXP rho, SEXP REML);
SEXP lmm_optimise_resid(SEXP ptr, SEXP x0, SEXP lower, SEXP upper, SEXP rho, SEXP free,
                        SEXP REML, SEXP control);
SEXP lmm_solution_resid(SEXP ptr, SEXP theta, SEXP rho, SEXP REML);
SEXP lmm_whiten_resid(SEXP ptr, SEXP rho);

#endif
