/*
 * residual.c -- the whitening coefficients of an AR(1)/CAR(1) x varIdent residual structure.
 *
 * For residual parameters rho = (phi, log delta_2, ..., log delta_S) (see residual.h), row i of
 * the whitened data is sqrt(w_i) a_i raw_i + c_i raw_prev(i) with
 *     a_i = 1 / delta_i,                                    first row of its group,
 *     a_i = 1 / (delta_i sqrt(1 - r_i^2)),                  r_i = phi^(t_i - t_prev(i)),
 *     c_i = -r_i sqrt(w_prev) / (delta_prev sqrt(1 - r_i^2)).
 * O(n); called once per value of rho.
 */
#include "residual_legacy.h"
#include <math.h>

int lmm_resid_npar(const lmm_resid *r)
{
    return (r->cor != LMM_COR_NONE) + r->nstrata - 1;
}

/* The whitening coefficients of one row, weights excluded: alpha = B_ii / delta_i and
   gamma = B_ij / delta_j for its predecessor j (0 without one), with r = phi^lag:
   B_ii = 1 / sqrt(1 - r^2), B_ij = -r B_ii.  Returns 1 when |r| >= 1 (outside the space). */
int lmm_resid_coef(int cor, const double *rho, int has_prev, double lag, int s, int sj,
                   double *alpha, double *gamma)
{
    int has_cor = cor != LMM_COR_NONE;
    const double *logdelta = rho + has_cor;                   /* strata 1 .. S-1 */
    double inv_delta = s > 0 ? exp(-logdelta[s - 1]) : 1.0;
    if (!has_cor || !has_prev) {
        *alpha = inv_delta;
        *gamma = 0;
        return 0;
    }
    double phi = rho[0];
    if (!(fabs(phi) < 1) || (cor == LMM_COR_CAR1 && phi < 0)) return 1;
    double r = pow(phi, lag);                  /* AR1: integer lag, so phi < 0 is fine */
    double one_m = 1 - r * r;
    if (!(one_m > 0)) return 1;
    double bii = 1 / sqrt(one_m);
    *alpha = bii * inv_delta;
    *gamma = -r * bii * (sj > 0 ? exp(-logdelta[sj - 1]) : 1.0);
    return 0;
}

/* Fills a and c (c_i includes the predecessor's sqrt(w_j)); returns 1 if rho is infeasible. */
int lmm_resid_whiten(const lmm_resid *r, const double *rho, double *a, double *c)
{
    for (int i = 0; i < r->n; i++) {
        int j = r->prev ? r->prev[i] : -1;
        int s = r->stratum ? r->stratum[i] : 0, sj = (r->stratum && j >= 0) ? r->stratum[j] : 0;
        double gamma;
        if (lmm_resid_coef(r->cor, rho, j >= 0, j >= 0 ? r->lag[i] : 0, s, sj, a + i, &gamma))
            return 1;
        c[i] = j >= 0 ? gamma * (r->sqrtw ? r->sqrtw[j] : 1.0) : 0;
    }
    return 0;
}
