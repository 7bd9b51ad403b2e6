/*
 * cor_ar1.c -- nlme's corAR1 and corCAR1: cor(e_i, e_j) = phi^|t_i - t_j| within a group.
 *
 * corAR1: integer times t (positions; gaps allowed), phi = tanh(z) in (-1, 1).
 * corCAR1: real times, phi = c^(1 / s) with c = 1 / (1 + exp(-z)) the correlation at the
 *          typical lag s = dopt[0] (phi itself is badly scaled when lags are short: Ovary's
 *          lags are about 0.05 and nlme's phi 8.2e-6, a correlation 0.56 at the typical lag).
 * Both are Markov in time order, so the engine whitens them with bidiagonal factors
 * (residual.c); the full matrices here serve tests and the dense path.
 */
#include "residual.h"
#include <math.h>

/* phi from the unconstrained parameter; 1 when outside (-1, 1) numerically */
int lmm_ar1_phi(const lmm_cor *c, const double *par, double *phi)
{
    if (c->code == LMM_COR_AR1) {
        *phi = tanh(par[0]);
        return !(fabs(*phi) < 1);
    }
    double s = c->ndopt > 0 ? c->dopt[0] : 1.0;
    double cs = 1 / (1 + exp(-par[0]));
    *phi = pow(cs, 1 / s);
    return !(*phi < 1);
}

static int cor_markov(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    double phi;
    if (lmm_ar1_phi(c, par, &phi)) return 1;
    for (int b = 0; b < m; b++)
        for (int a = 0; a < m; a++) {
            double lag = fabs(c->cov[rows[a]] - c->cov[rows[b]]);
            R[a + (size_t) b * m] = a == b ? 1.0 : pow(phi, lag);
        }
    return 0;
}

int lmm_cor_ar1(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return cor_markov(c, m, rows, par, R);
}

int lmm_cor_car1(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return cor_markov(c, m, rows, par, R);
}
