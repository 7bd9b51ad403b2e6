/*
 * iterative_slq.c -- stochastic Lanczos quadrature: z' log(M) z for one probe z from the Lanczos
 * tridiagonal matrix T of M started at z / |z| (Golub & Meurant; Ubaru, Chen & Saad 2017):
 *
 *     z' log(M) z  ~  |z|^2 e1' log(T) e1  =  |z|^2 sum_i tau_i^2 log(theta_i),
 *
 * theta_i the eigenvalues of T and tau_i the first components of its eigenvectors (the
 * m-point Gauss quadrature of the spectral measure of M seen from z; exact for polynomials of
 * degree 2m - 1).  T comes from the CG coefficients of the same solve (iterative_pcg.c):
 *
 *     T_11 = 1 / alpha_0,   T_ii = 1 / alpha_{i-1} + beta_{i-2} / alpha_{i-2},
 *     T_{i,i+1} = sqrt(beta_{i-1}) / alpha_{i-1}.
 */
#include "iterative.h"

/* At most this many nodes: the k-node quadrature uses only the first k Lanczos steps and
   converges much faster than the CG residual (a solve that needs thousands of steps, at an
   extreme theta, would otherwise need a k x k eigendecomposition of that size). */
#define SLQ_NODES 400

double lmm_iter_quadrature(int m, const double *alpha, const double *beta)
{
    if (m < 1) return 0.0;
    if (m > SLQ_NODES) m = SLQ_NODES;
    double *d = (double *) R_alloc(m, sizeof(double));
    double *e = (double *) R_alloc(m, sizeof(double));
    double *V = (double *) R_alloc((size_t) m * m, sizeof(double));
    double *work = (double *) R_alloc(2 * m, sizeof(double));
    for (int i = 0; i < m; i++) {
        d[i] = 1 / alpha[i] + (i ? beta[i - 1] / alpha[i - 1] : 0.0);
        if (i < m - 1) e[i] = sqrt(beta[i]) / alpha[i];
    }
    int info = 0;
    F77_CALL(dstev)("V", &m, d, e, V, &m, work, &info FCONE);
    if (info) return NA_REAL;
    double s = 0;
    for (int i = 0; i < m; i++) {
        double tau = V[(size_t) i * m];                     /* first component of eigenvector i */
        if (!(d[i] > 0)) return NA_REAL;                      /* M is positive definite */
        s += tau * tau * log(d[i]);
    }
    return s;
}
