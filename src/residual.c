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
#include "residual.h"
#include <math.h>

int lmm_resid_npar(const lmm_resid *r)
{
    return (r->cor != LMM_COR_NONE) + r->nstrata - 1;
}

/* Fills a and c; returns 0, or 1 when rho is outside the parameter space (|r_i| >= 1). */
int lmm_resid_whiten(const lmm_resid *r, const double *rho, double *a, double *c)
{
    int has_cor = r->cor != LMM_COR_NONE;
    double phi = has_cor ? rho[0] : 0.0;
    const double *logdelta = rho + has_cor;                   /* strata 1 .. S-1 */
    if (has_cor && !(fabs(phi) < 1)) return 1;
    if (r->cor == LMM_COR_CAR1 && phi < 0) return 1;
    for (int i = 0; i < r->n; i++) {
        int s = r->stratum ? r->stratum[i] : 0, j = r->prev ? r->prev[i] : -1;
        double inv_delta = s > 0 ? exp(-logdelta[s - 1]) : 1.0;
        if (!has_cor || j < 0) {
            a[i] = inv_delta;
            c[i] = 0;
            continue;
        }
        double ri = (r->cor == LMM_COR_AR1) ? R_pow_di(phi, (int) r->lag[i]) : pow(phi, r->lag[i]);
        double one_m = 1 - ri * ri;
        if (!(one_m > 0)) return 1;
        double bii = 1 / sqrt(one_m);                          /* B_ii */
        int sj = r->stratum ? r->stratum[j] : 0;
        double inv_delta_j = sj > 0 ? exp(-logdelta[sj - 1]) : 1.0;
        double wj = r->sqrtw ? r->sqrtw[j] : 1.0;
        a[i] = bii * inv_delta;
        c[i] = -ri * bii * wj * inv_delta_j;                  /* B_ij sqrt(w_j) / delta_j */
    }
    return 0;
}
