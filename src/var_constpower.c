/*
 * var_constpower.c -- nlme's varConstPower: s_i = c_k + |v_i|^delta_k, k the stratum of row i
 * (one pair without strata).  par = (log c_1 .. log c_S, delta_1 .. delta_S): nlme's layout
 * (its coefficients list every stratum's log const, then every stratum's power).  With
 * a = log c_k and b = delta_k log|v_i| (the log of the power term),
 *     log s_i = log(e^a + e^b)                               (evaluated without overflow),
 *     d log s_i / d log c_k   = e^(a - log s_i) = c_k / s_i,
 *     d log s_i / d delta_k   = e^(b - log s_i) log|v_i|.
 * A zero covariate gives the power term 0 (delta > 0, derivative 0), 1 (delta = 0, the
 * derivative taken as its right-hand limit 0) or Inf (delta < 0: outside the space).
 */
#include "residual.h"
#include <math.h>

/* log of the power term |v|^delta: -Inf for v = 0 < delta, 0 for delta = 0 */
static double log_power_term(double v, double delta)
{
    if (delta == 0) return 0;
    return delta * log(fabs(v));
}

/* log(e^a + e^b) */
static double log_sum_exp(double a, double b)
{
    double m = a > b ? a : b;
    if (!R_FINITE(m)) return m;
    return m + log(exp(a - m) + exp(b - m));
}

int lmm_var_constpower(const lmm_var *v, const double *par, double *logs, double *const *dlogs)
{
    int S = v->nstrata, bad = 0;
    const double *logc = par, *delta = par + S;
    if (dlogs)
        for (int k = 0; k < v->npar; k++)
            for (int i = 0; i < v->n; i++) dlogs[k][i] = 0;
    for (int i = 0; i < v->n; i++) {
        int k = v->stratum ? v->stratum[i] : 0;
        double a = logc[k], b = log_power_term(v->v[i], delta[k]);
        double ls = log_sum_exp(a, b);                  /* log s_i */
        int ok = lmm_var_log_ok(ls);
        if (!ok) bad = 1;
        logs[i] += ls;
        if (dlogs && ok) {
            dlogs[k][i] = exp(a - ls);                              /* c_k / s_i */
            if (v->v[i] != 0) dlogs[S + k][i] = exp(b - ls) * log(fabs(v->v[i]));
        }
    }
    return bad;
}
