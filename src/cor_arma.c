/*
 * cor_arma.c -- nlme's corARMA(p, q): the stationary ARMA(p, q) autocorrelation at integer lags,
 *
 *     e_t = sum_{j=1}^p phi_j e_{t-j} + a_t + sum_{j=1}^q theta_j a_{t-j}   (a_t white noise),
 *     cor(e_i, e_j) = rho(|t_i - t_j|),   t = cov column 1 (integer times), iopt = (p, q).
 *
 * Parameters (nlme's map, its ARMA_constCoef): par_k -> partial autocorrelations
 * kappa_k = tanh(par_k / 2) in (-1, 1), then Durbin-Levinson
 *     phi^(k)_j = phi^(k-1)_j - kappa_k phi^(k-1)_{k-j},   phi^(k)_k = kappa_k       (AR: stationary)
 *     theta^(k)_j = theta^(k-1)_j + kappa_k theta^(k-1)_{k-j}, theta^(k)_k = kappa_k  (MA: invertible)
 * so every real par is a stationary, invertible ARMA model.
 *
 * Autocovariances, exactly: with psi_0 = 1, psi_k = theta_k + sum_j phi_j psi_{k-j} (the MA(inf)
 * weights) and c_k = sum_{j=k}^q theta_j psi_{j-k} (theta_0 = 1; c_k = 0 for k > q),
 *     gamma_k - sum_{j=1}^p phi_j gamma_{|k-j|} = c_k,       k = 0..p   (a (p+1) x (p+1) system)
 *     gamma_k = sum_{j=1}^p phi_j gamma_{k-j} + c_k,         k > p      (the recursion)
 * and rho_k = gamma_k / gamma_0.
 */
#include "residual.h"
#include <math.h>
#include <stdlib.h>

/* Durbin-Levinson: coefficients a[0 .. N-1] from the unconstrained u (sign -1: AR, +1: MA) */
static int arma_coef(int N, const double *u, double sgn, double *a, double *prev)
{
    for (int k = 0; k < N; k++) {
        double kappa = tanh(u[k] / 2);              /* partial autocorrelation */
        if (!(fabs(kappa) < 1)) return 1;
        for (int j = 0; j < k; j++) prev[j] = a[j];
        for (int j = 0; j < k; j++) a[j] = prev[j] + sgn * kappa * prev[k - 1 - j];
        a[k] = kappa;
    }
    return 0;
}

/* rho[0 .. max(L, p)] (gamma before scaling) of the ARMA(p, q) with coefficients phi, theta;
   w: workspace of (p + 1)^2 + q + 1 doubles, ipiv of p + 1 ints.  Nonzero when singular. */
static int arma_acf(int p, int q, const double *phi, const double *theta, int L, double *rho,
                    double *w, int *ipiv, double *gamma0)
{
    int P = p + 1;
    double *A = w, *psi = A + P * P, *b = rho;       /* gamma_0 .. gamma_p solved in place */
    int K = L > p ? L : p;
    psi[0] = 1;
    for (int k = 1; k <= q; k++) {                   /* psi_k = theta_k + sum phi_j psi_{k-j} */
        psi[k] = theta[k - 1];
        for (int j = 1; j <= p && j <= k; j++) psi[k] += phi[j - 1] * psi[k - j];
    }
    for (int k = 0; k <= K; k++) {                   /* c_k = sum_{j=k}^q theta_j psi_{j-k} */
        b[k] = 0;
        for (int j = k; j <= q; j++) b[k] += (j == 0 ? 1.0 : theta[j - 1]) * psi[j - k];
    }
    for (int i = 0; i < P * P; i++) A[i] = 0;
    for (int k = 0; k <= p; k++) {                   /* A[k, i]: coefficient of gamma_i in row k */
        A[k + k * P] += 1;
        for (int j = 1; j <= p; j++) A[k + abs(k - j) * P] -= phi[j - 1];
    }
    int nrhs = 1, info = 0;
    F77_CALL(dgesv)(&P, &nrhs, A, &P, ipiv, b, &P, &info);
    if (info != 0) return 1;
    for (int k = p + 1; k <= L; k++)                 /* gamma_k = sum phi_j gamma_{k-j} + c_k */
        for (int j = 1; j <= p; j++) rho[k] += phi[j - 1] * rho[k - j];
    double g0 = rho[0];
    if (!(g0 > 0) || !R_FINITE(g0)) return 1;
    for (int k = 0; k <= L; k++) rho[k] /= g0;
    if (gamma0) *gamma0 = g0;
    return 0;
}

int lmm_cor_arma(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    int p = c->iopt[0], q = c->iopt[1];
    const double *t = c->cov;
    double tmin = 0, tmax = 0;
    for (int a = 0; a < m; a++) {
        double ta = t[rows[a]];
        if (a == 0 || ta < tmin) tmin = ta;
        if (a == 0 || ta > tmax) tmax = ta;
    }
    double Ld = tmax - tmin;                         /* the largest lag */
    if (!(Ld <= 1e7)) return 1;                     /* R/residual-correlation.R: at most 1e7 */
    int L = (int) Ld, K = L > p ? L : p, P = p + 1, r = p > q ? p : q;
    size_t nw = (size_t) (K + 1) + (size_t) (p + q + r) + (size_t) P * P + (size_t) (q + 1);
    double *w = malloc(nw * sizeof(double));        /* malloc: families may run on threads */
    int *ipiv = malloc((size_t) P * sizeof(int));
    int bad = !w || !ipiv;
    if (!bad) {
        double *rho = w, *phi = rho + K + 1, *theta = phi + p, *prev = theta + q,
            *work = prev + r;
        bad = arma_coef(p, par, -1.0, phi, prev) || arma_coef(q, par + p, 1.0, theta, prev) ||
            arma_acf(p, q, phi, theta, L, rho, work, ipiv, NULL);
        for (int b = 0; !bad && b < m; b++)
            for (int a = 0; a < m; a++) {
                int lag = (int) (fabs(t[rows[a]] - t[rows[b]]) + 0.5);
                R[a + (size_t) b * m] = a == b ? 1.0 : rho[lag];
            }
    }
    free(w);
    free(ipiv);
    return bad;
}

/* The model behind par for residual_innovations.c: phi[p], theta[q], rho[0 .. r] (r = max(p, q))
   and gamma0, the variance of e_t for unit-variance innovations a_t.  Nonzero when infeasible. */
int lmm_arma_model(int p, int q, const double *par, double *phi, double *theta, double *rho,
                   double *gamma0)
{
    int r = p > q ? p : q, P = p + 1;
    double *w = malloc(((size_t) r + 1 + (size_t) P * P + (size_t) q + 1) * sizeof(double));
    int *ipiv = malloc((size_t) P * sizeof(int));
    int bad = !w || !ipiv;
    if (!bad) {
        double *prev = w, *work = w + r + 1;
        bad = arma_coef(p, par, -1.0, phi, prev) || arma_coef(q, par + p, 1.0, theta, prev) ||
            arma_acf(p, q, phi, theta, r, rho, work, ipiv, gamma0);
    }
    free(w);
    free(ipiv);
    return bad;
}
