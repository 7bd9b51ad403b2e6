/*
 * criterion.c -- the profiled criteria from the diagonal of L (Bates et al. 2015, eqs 34, 41):
 *     -2 log ML(theta) = log|L_Z|^2 - log|W| + n     (1 + log(2 pi r^2 / n))
 *     REML(theta)      = log|L_Z|^2 + log|R_X|^2 - log|W| + (n-p) (1 + log(2 pi r^2 / (n-p)))
 * with r^2 the penalised weighted residual sum of squares (last diagonal element of L squared).
 */
#include "lmm.h"

/* log|L_Z|^2, log|R_X|^2 and r^2 of the current factor. */
static void diag_parts(const lmm_model *m, lmm_crit_parts *cp)
{
    double ldL2 = 0, ldRX2 = 0;
    for (int J = 0; J < m->Ns; J++) {
        int pJ = m->size[J];
        const double *D = m->Lx + m->Ldiag[J];
        for (int r = 0; r < pJ; r++) ldL2 += log(D[r + r * pJ]);
    }
    int md = m->md, dX = m->doff[m->N - m->Ns];
    for (int i = 0; i < dX; i++) ldL2 += log(lmm_packed_col(m->Ld, md, i)[i]);  /* dense_packed.h */
    for (int i = dX; i < dX + m->p; i++) ldRX2 += log(lmm_packed_col(m->Ld, md, i)[i]);
    double r = lmm_packed_col(m->Ld, md, dX + m->p)[dX + m->p];
    cp->ldL2 = 2 * ldL2;
    cp->ldRX2 = 2 * ldRX2 + m->std_ldM;            /* back from X* = X M (standardise.c) */
    cp->pwrss = r * r;                              /* r*^2; r^2 = s^2 r*^2 */
}

lmm_crit_parts lmm_criterion(lmm_model *m, const double *theta, int REML)
{
    lmm_crit_parts cp = {R_PosInf, R_PosInf, R_PosInf, R_PosInf};
    if (lmm_factor(m, theta)) return cp;
    diag_parts(m, &cp);
    double n = m->n, nmp = REML ? n - m->p : n;
    double logs2 = m->std_d ? 2 * log(m->std_s) : 0.0;
    cp.crit = cp.ldL2 - m->sumlogw + nmp * (1 + log(2 * M_PI * cp.pwrss / nmp) + logs2);
    if (REML) cp.crit += cp.ldRX2;
    cp.pwrss *= m->std_d ? m->std_s * m->std_s : 1.0;
    return cp;
}
