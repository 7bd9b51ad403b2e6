/*
 * var_exp.c -- nlme's varExp: s_i = exp(delta_k v_i), k the stratum of row i (one delta without
 * strata); par = delta, one per stratum (unconstrained as it is).
 *     log s_i = delta_k v_i,             d log s_i / d delta_k = v_i.
 */
#include "residual.h"

int lmm_var_exp(const lmm_var *v, const double *par, double *logs, double *const *dlogs)
{
    int bad = 0;
    for (int i = 0; i < v->n; i++) {
        int k = v->stratum ? v->stratum[i] : 0;
        double ls = par[k] * v->v[i];                   /* log s_i */
        if (!lmm_var_log_ok(ls)) bad = 1;
        logs[i] += ls;
    }
    if (dlogs) {
        for (int k = 0; k < v->npar; k++)
            for (int i = 0; i < v->n; i++) dlogs[k][i] = 0;
        for (int i = 0; i < v->n; i++) dlogs[v->stratum ? v->stratum[i] : 0][i] = v->v[i];
    }
    return bad;
}
