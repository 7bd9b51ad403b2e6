/*
 * cor_compsymm.c -- nlme's corCompSymm: one correlation r between any two rows of a group,
 *     R = (1 - r) I + r 1 1'.
 * R is positive definite for every group size up to M (iopt[0], the largest group) exactly when
 * -1 / (M - 1) < r < 1.  nlme's map of that interval onto the line: with a = 1 / (M - 1),
 *     par = log((r + a) / (1 - r)),   r = (1 + a) plogis(par) - a
 * (a = 1 when M = 1: no pair of rows, r is not used).
 */
#include "residual.h"
#include <math.h>

/* r from the unconstrained parameter; nonzero when outside (-a, 1) numerically */
static int compsymm_r(const lmm_cor *c, const double *par, double *r)
{
    int M = c->iopt[0];
    double a = M > 1 ? 1.0 / (M - 1) : 1.0;
    double p = 1 / (1 + exp(-par[0]));               /* plogis(par) */
    *r = (1 + a) * p - a;
    return !(*r < 1 && *r > -a);
}

int lmm_cor_compsymm(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    double r;
    (void) rows;
    if (compsymm_r(c, par, &r)) return 1;
    for (int b = 0; b < m; b++)
        for (int a = 0; a < m; a++) R[a + (size_t) b * m] = a == b ? 1.0 : r;
    return 0;
}
