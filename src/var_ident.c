/*
 * var_ident.c -- nlme's varIdent: a standard deviation per stratum, s_i = delta_stratum(i),
 * delta = 1 for the reference stratum 0 and delta_k = exp(par[k - 1]) for the others.
 */
#include "residual.h"

int lmm_var_ident(const lmm_var *v, const double *par, double *logs, double *const *dlogs)
{
    for (int i = 0; i < v->n; i++) {
        int s = v->stratum ? v->stratum[i] : 0;
        if (s > 0) logs[i] += par[s - 1];
    }
    if (dlogs)
        for (int k = 0; k < v->npar; k++)
            for (int i = 0; i < v->n; i++)
                dlogs[k][i] = (v->stratum && v->stratum[i] == k + 1) ? 1.0 : 0.0;
    return 0;
}
