/*
 * theta.c -- relative covariance templates.  Term t with p_t columns has the lower-triangular
 * p_t x p_t template T_t, filled column by column from theta[theta0[t] ..]; Lambda = diag(T_t
 * repeated over the levels of term t), so Var(b_level) = sigma^2 T_t T_t'.
 */
#include "lmm.h"
#include <string.h>

void lmm_template(const lmm_model *m, int t, const double *theta, double *T)
{
    int pt = m->pt[t];
    const double *th = theta + m->theta0[t];
    memset(T, 0, (size_t) pt * pt * sizeof(double));
    for (int c = 0; c < pt; c++)
        for (int r = c; r < pt; r++) T[r + c * pt] = *th++;      /* T[r, c], r >= c */
}
