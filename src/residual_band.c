/*
 * residual_band.c -- banded whitening of AR(p) residuals (corARMA(p, 0)) in groups observed at
 * consecutive integer times: O(n p) per new rho instead of the dense O(m^3) per group.
 *
 * With the partial autocorrelations kappa_k = tanh(par_k / 2) (cor_arma.c's map), the
 * Durbin-Levinson recursion
 *     phi^(o)_o = kappa_o,   phi^(o)_j = phi^(o-1)_j - kappa_o phi^(o-1)_{o-j},
 *     v_o = v_{o-1} (1 - kappa_o^2),  v_0 = 1,
 * gives the best linear predictor of e_a from its o = min(a, p) predecessors and its error
 * variance; the prediction errors (e_a - sum_j phi^(o)_j e_{a-j}) / sqrt(v_o) are independent
 * with unit variance, so they are the rows of B_g = L_g^{-1} (R_g = L_g L_g'), with at most
 * p + 1 entries each.  The table holds, for o = 0..p, the diagonal 1 / sqrt(v_o) at
 * T[o (p+1)] and the lag-j coefficient -phi^(o)_j / sqrt(v_o) at T[o (p+1) + j].
 * Derivatives in par: the recursion differentiated (lmm_band_dtable).
 */
#include "residual.h"
#include <math.h>
#include <string.h>

#define BAND_MAX 64

/* The table at par (p parameters); 1 if some |kappa| >= 1 numerically. */
int lmm_band_table(int p, const double *par, double *T)
{
    double phi[BAND_MAX + 1], prev[BAND_MAX + 1], v = 1;
    if (p < 1 || p > BAND_MAX) return 1;
    int w = p + 1;
    memset(T, 0, (size_t) w * w * sizeof(double));
    T[0] = 1;
    for (int o = 1; o <= p; o++) {
        double kappa = tanh(par[o - 1] / 2);
        if (!(fabs(kappa) < 1)) return 1;
        for (int j = 1; j < o; j++) prev[j] = phi[j];
        for (int j = 1; j < o; j++) phi[j] = prev[j] - kappa * prev[o - j];
        phi[o] = kappa;
        v *= 1 - kappa * kappa;
        if (!(v > 0)) return 1;
        double s = 1 / sqrt(v);
        T[o * w] = s;
        for (int j = 1; j <= o; j++) T[o * w + j] = -phi[j] * s;
    }
    return 0;
}

/* dT[k (p+1)^2 ..] = d table / d par_k, by differentiating the recursion (forward mode):
       d kappa_o = (1 - kappa_o^2) / 2 for par_{o-1},
       d phi^(o)_j = d phi^(o-1)_j - d kappa_o phi^(o-1)_{o-j} - kappa_o d phi^(o-1)_{o-j},
       d v_o = d v_{o-1} (1 - kappa_o^2) - 2 v_{o-1} kappa_o d kappa_o,
       d (1 / sqrt(v)) = -dv / (2 v^(3/2)).
   1 if some |kappa| >= 1 numerically. */
int lmm_band_dtable(int p, const double *par, double *dT)
{
    int w = p + 1, sz = w * w;
    double phi[BAND_MAX + 1], prev[BAND_MAX + 1], dphi[BAND_MAX + 1], dprev[BAND_MAX + 1];
    if (p < 1 || p > BAND_MAX) return 1;
    for (int k = 0; k < p; k++) {
        double *D = dT + (size_t) k * sz, v = 1, dv = 0;
        memset(D, 0, sz * sizeof(double));
        for (int o = 1; o <= p; o++) {
            double kappa = tanh(par[o - 1] / 2);
            if (!(fabs(kappa) < 1)) return 1;
            double dk = (o - 1 == k) ? (1 - kappa * kappa) / 2 : 0;
            for (int j = 1; j < o; j++) { prev[j] = phi[j]; dprev[j] = dphi[j]; }
            for (int j = 1; j < o; j++) {
                phi[j] = prev[j] - kappa * prev[o - j];
                dphi[j] = dprev[j] - dk * prev[o - j] - kappa * dprev[o - j];
            }
            phi[o] = kappa;
            dphi[o] = dk;
            dv = dv * (1 - kappa * kappa) - 2 * v * kappa * dk;
            v *= 1 - kappa * kappa;
            if (!(v > 0)) return 1;
            double sc = 1 / sqrt(v), dsc = -0.5 * dv / (v * sqrt(v));
            D[o * w] = dsc;
            for (int j = 1; j <= o; j++) D[o * w + j] = -(dphi[j] * sc + phi[j] * dsc);
        }
    }
    return 0;
}

/* Groups whitened by the band: consecutive integer times (t_a - t_{a-1} = 1). */
void lmm_band_groups(lmm_resid *rs)
{
    rs->gband = R_Calloc(rs->G + 1, int);
    for (int g = 0; g < rs->G; g++) {
        int ok = 1;
        for (int a = rs->gp[g] + 1; a < rs->gp[g + 1] && ok; a++)
            ok = rs->cor.cov[rs->grow[a]] - rs->cor.cov[rs->grow[a - 1]] == 1.0;
        rs->gband[g] = ok;
    }
}

/* One band group's rows of K (and dK for the correlation parameters) from the tables. */
void lmm_band_group(lmm_resid *rs, int g, const double *T, const double *dT)
{
    int p = rs->band_p, w = p + 1, sz = w * w, nnz = rs->nnz;
    const int *r = rs->grow + rs->gp[g];
    int m = rs->gp[g + 1] - rs->gp[g];
    for (int a = 0; a < m; a++) {
        int o = a < p ? a : p, e1 = rs->K.Kp[r[a] + 1] - 1;    /* entries r_{a-o} .. r_a */
        for (int j = 0; j <= o; j++) {
            int e = e1 - j;
            double s = lmm_inv_sd(rs, r[a - j]);
            rs->K.Kx[e] = T[o * w + j] * s;
            if (dT)
                for (int k = 0; k < rs->ncor; k++)
                    rs->K.dKx[(size_t) k * nnz + e] = dT[(size_t) k * sz + o * w + j] * s;
        }
    }
}
