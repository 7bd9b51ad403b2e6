/*
 * var_power.c -- nlme's varPower: s_i = |v_i|^delta_k, k the stratum of row i (one delta without
 * strata); par = delta, one per stratum (unconstrained as it is).
 *     log s_i = delta_k log|v_i|,        d log s_i / d delta_k = log|v_i|.
 * A zero covariate gives s_i = 0 (delta > 0) or Inf (delta < 0): outside the space; with
 * delta_k = 0 it gives s_i = 0^0 = 1 and the derivative is taken as 0 (the R side refuses zero
 * covariates unless their stratum's power is fixed at 0).
 */
#include "residual.h"
#include <math.h>

int lmm_var_power(const lmm_var *v, const double *par, double *logs, double *const *dlogs)
{
    int bad = 0;
    for (int i = 0; i < v->n; i++) {
        int k = v->stratum ? v->stratum[i] : 0;
        double lv = log(fabs(v->v[i]));                 /* log|v_i|, -Inf at 0 */
        double ls = par[k] == 0 ? 0 : par[k] * lv;      /* log s_i */
        if (!lmm_var_log_ok(ls)) bad = 1;
        logs[i] += ls;
    }
    if (dlogs) {
        for (int k = 0; k < v->npar; k++)
            for (int i = 0; i < v->n; i++) dlogs[k][i] = 0;
        for (int i = 0; i < v->n; i++) {
            int k = v->stratum ? v->stratum[i] : 0;
            if (v->v[i] != 0) dlogs[k][i] = log(fabs(v->v[i]));
        }
    }
    return bad;
}
