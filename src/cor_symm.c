/*
 * cor_symm.c -- nlme's corSymm: an unstructured correlation matrix C (M x M, iopt[0] = M) among
 * the positions 0 .. M-1 (cov column 1), R[a, b] = C[pos_a, pos_b].
 *
 * The spherical parametrisation (nlme's symm_fullCorr): C = U'U with U upper triangular and
 * unit-norm columns; column i of U is the point of the unit sphere with angles
 * omega_{0,i} .. omega_{i-1,i} in (0, pi),
 *     U[k, i] = cos(omega_{k,i}) prod_{l<k} sin(omega_{l,i})   (k < i),
 *     U[i, i] = prod_{l<i} sin(omega_{l,i}),
 * and omega = pi plogis(par), the parameters ordered by column i, then k
 * (par index i (i - 1) / 2 + k).  Every real par gives a positive-definite C (U[i, i] > 0);
 * numerically, U[i, i]^2 (position i's variance given the earlier ones) must reach epsilon.
 */
#include "residual.h"
#include <math.h>
#include <float.h>
#include <stdlib.h>

/* U (M x M, upper triangle filled) from par; nonzero when some U[i, i]^2 < epsilon (C singular) */
static int symm_factor(int M, const double *par, double *U)
{
    const double *u = par;
    for (int i = 0; i < M; i++) {
        double s = 1;                                  /* prod of the sines so far */
        for (int k = 0; k < i; k++, u++) {
            double omega = M_PI / (1 + exp(-*u));
            U[k + (size_t) i * M] = s * cos(omega);
            s *= sin(omega);
        }
        U[i + (size_t) i * M] = s;
        if (!(s * s >= DBL_EPSILON)) return 1;           /* var(pos i | earlier) numerically 0 */
    }
    return 0;
}

int lmm_cor_symm(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    int M = c->iopt[0];
    double *U = malloc((size_t) M * M * sizeof(double));   /* malloc: families may run on threads */
    int bad = !U || symm_factor(M, par, U);
    for (int b = 0; !bad && b < m; b++) {
        int j = (int) c->cov[rows[b]];
        for (int a = 0; a < m; a++) {
            int i = (int) c->cov[rows[a]], k0 = i < j ? i : j;
            double cij = 0;                                /* C[i, j] = U[, i]' U[, j] */
            for (int k = 0; k <= k0; k++) cij += U[k + (size_t) i * M] * U[k + (size_t) j * M];
            R[a + (size_t) b * m] = a == b ? 1.0 : cij;
        }
    }
    free(U);
    return bad;
}
