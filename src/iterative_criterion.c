/*
 * iterative_criterion.c -- the profiled criterion (criterion.c's formula), its gradient in theta
 * and the conditional modes, from one batch of preconditioned CG solves (iterative.h):
 *
 *     Omega_Z Y = B            (p + 1 columns, tolerance it->tol: S, R_X and r^2 exact to it)
 *     Omega_Z x_k = P^{1/2} z_k  (K probes: log|Omega_Z| by Lanczos quadrature, and x_k for the
 *                               gradient of the log-determinant)
 *
 * Gradient (scalar terms: theta_t = lambda_j for the columns j of term t, D_t their indicator):
 *     dOmega_Z = D_t C Lambda + Lambda C D_t,   dB = D_t F,
 *     dS = -dB'Y - Y'dB + Y' dOmega_Z Y.
 * With v = (-beta*, 1) (beta* = S_XX^{-1} S_Xy), r^2 = v'Sv and, by the envelope theorem,
 * d r^2 = v' dS v; d log|R_X|^2 = tr(S_XX^{-1} dS_XX).  With
 *     W = (n - p REML) / r^2 v v' + REML [S_XX^{-1} 0; 0 0]   ((p+1) x (p+1)),
 * the exact part of d crit / d theta_t is tr(W dS) = 2 sum_{j in t} (Y W)_j . (C Lambda Y - F)_j.
 * The log-determinant's part, of log|P| + (1/K) sum_k z_k' log(M) z_k, M = P^{-1/2} Omega_Z P^{-1/2},
 * is d log|P| + (1/K) sum_k z_k' M^{-1} dM z_k (Hutchinson with the same probes), where with
 * E = -P^{-1} dP / 2, zo = P^{-1/2} z and x = Omega_Z^{-1} P^{1/2} z:
 *     z' M^{-1} dM z = x' E Omega_Z zo + z'Ez + x' dOmega_Z zo,    z'Ez = tr E,
 *     x' dOmega_Z zo = sum_{j in t} (x_j (C Lambda zo)_j + zo_j (C Lambda x)_j).
 */
#include "iterative.h"
#include <string.h>

static double *dalloc(size_t n) { return (double *) R_alloc(n ? n : 1, sizeof(double)); }

/* The batch's right-hand sides [B, P^{1/2} z_1 .. P^{1/2} z_K] (q x nc, row-major). */
static void right_sides(const lmm_iter *it, const double *lambda, const double *Pinv, int nc,
                        double *Bm)
{
    int p1 = it->p1, K = it->K;
    for (int j = 0; j < it->q; j++) {
        double *b = Bm + (size_t) j * nc, sp = 1 / sqrt(Pinv[j]);
        for (int a = 0; a < p1; a++) b[a] = lambda[j] * it->F[j + (size_t) a * it->q];
        for (int k = 0; k < K; k++) b[p1 + k] = sp * it->Z[(size_t) j * K + k];
    }
}

/* S = H - B'Y, symmetric ((p+1) x (p+1)) */
static void schur(const lmm_iter *it, int nc, const double *Bm, const double *X, double *S)
{
    int p1 = it->p1;
    memcpy(S, it->H, (size_t) p1 * p1 * sizeof(double));
    for (int j = 0; j < it->q; j++) {
        const double *b = Bm + (size_t) j * nc, *y = X + (size_t) j * nc;
        for (int a = 0; a < p1; a++)
            for (int c = 0; c < p1; c++) S[a + c * p1] -= b[a] * y[c];
    }
    for (int a = 0; a < p1; a++)
        for (int c = 0; c < a; c++) S[a + c * p1] = S[c + a * p1] = 0.5 * (S[a + c * p1] + S[c + a * p1]);
}

/* log|Omega_Z| = log|P| + mean of the probes' quadratures; its Monte Carlo standard error */
static double logdet(const lmm_iter *it, const double *Pinv, const lmm_pcg_column *col, double *se)
{
    int K = it->K, p1 = it->p1;
    double ldP = 0, sum = 0, sum2 = 0;
    for (int j = 0; j < it->q; j++) ldP -= log(Pinv[j]);
    for (int k = 0; k < K; k++) {
        const lmm_pcg_column *c = col + p1 + k;
        double e = it->q * lmm_iter_quadrature(c->steps, c->alpha, c->beta);  /* |z|^2 = q */
        if (!R_FINITE(e)) return NA_REAL;
        sum += e;
        sum2 += e * e;
    }
    double mean = sum / K, var = K > 1 ? (sum2 - K * mean * mean) / (K - 1) : NA_REAL;
    *se = K > 1 ? sqrt(fmax(var, 0) / K) : NA_REAL;
    return ldP + mean;
}

/* The exact part of the gradient: grad_t += 2 sum_{j in t} (Y W)_j . (C Lambda Y - F)_j,
   with CLY = C Lambda Y in the first p1 columns of a q x w row-major block. */
static void gradient_exact(const lmm_model *m, const double *X, int nc, const double *CLY, int w,
                           const double *W, double *grad)
{
    const lmm_iter *it = m->iter;
    int p1 = it->p1;
    for (int j = 0; j < it->q; j++) {
        const double *y = X + (size_t) j * nc, *cly = CLY + (size_t) j * w;
        double g = 0;
        for (int a = 0; a < p1; a++) {
            double yw = 0;
            for (int c = 0; c < p1; c++) yw += y[c] * W[c + a * p1];
            g += yw * (cly[a] - it->F[j + (size_t) a * it->q]);
        }
        grad[m->term[j]] += 2 * g;
    }
}

/* The log-determinant's part of the gradient (header comment), the probes' average. */
static void gradient_logdet(const lmm_model *m, const double *lambda, const double *Pinv,
                            const double *X, int nc, const double *CL, int w, double *grad)
{
    const lmm_iter *it = m->iter;
    int p1 = it->p1, K = it->K;
    for (int j = 0; j < it->q; j++) {
        double dP = 2 * lambda[j] * it->Cd[j], E = -0.5 * dP * Pinv[j], sp = sqrt(Pinv[j]), g = 0;
        const double *x = X + (size_t) j * nc + p1, *cl = CL + (size_t) j * w + p1;
        for (int k = 0; k < K; k++) {
            double zo = sp * it->Z[(size_t) j * K + k], w1 = cl[k], w2 = cl[K + k];
            g += x[k] * w1 + zo * w2 + x[k] * E * (lambda[j] * w1 + zo);
        }
        grad[m->term[j]] += g / K + E + dP * Pinv[j];     /* + tr E + d log P_j */
    }
}

/* C Lambda [Y, zo_1 .. zo_K, x_1 .. x_K] (q x (p1 + 2K), row-major) */
static double *products(const lmm_iter *it, const double *lambda, const double *Pinv,
                        const double *X, int nc, int w)
{
    int p1 = it->p1, K = it->K;
    double *V = dalloc((size_t) it->q * w), *CL = dalloc((size_t) it->q * w);
    for (int j = 0; j < it->q; j++) {
        double *v = V + (size_t) j * w, l = lambda[j], sp = sqrt(Pinv[j]);
        const double *x = X + (size_t) j * nc;
        for (int a = 0; a < p1; a++) v[a] = l * x[a];
        for (int k = 0; k < K; k++) {
            v[p1 + k] = l * sp * it->Z[(size_t) j * K + k];
            v[p1 + K + k] = l * x[p1 + k];
        }
    }
    lmm_iter_C(it, w, V, CL);
    return CL;
}

static int evaluate(lmm_model *m, const double *theta, int REML, lmm_iter_parts *cp,
                    double *grad, double *u, double *beta, double *RXinv)
{
    lmm_iter *it = m->iter;
    int q = it->q, p1 = it->p1, p = p1 - 1, K = it->K, nc = p1 + K;
    cp->crit = cp->ldL2 = cp->ldRX2 = cp->pwrss = R_PosInf;
    cp->ld_se = NA_REAL;
    double *lambda = dalloc(q), *Pinv = dalloc(q), *tol = dalloc(nc);
    for (int j = 0; j < q; j++) {
        lambda[j] = theta[m->theta0[m->term[j]]];
        Pinv[j] = 1 / (lambda[j] * lambda[j] * it->Cd[j] + 1);        /* P = diag(Omega_Z) */
    }
    double *Bm = dalloc((size_t) q * nc), *X = dalloc((size_t) q * nc);
    lmm_pcg_column *col = (lmm_pcg_column *) R_alloc(nc, sizeof(lmm_pcg_column));
    for (int c = 0; c < nc; c++) {
        tol[c] = c < p1 ? it->tol : it->tol_probe;
        col[c].alpha = c < p1 ? NULL : dalloc(it->maxit);
        col[c].beta = c < p1 ? NULL : dalloc(it->maxit);
    }
    right_sides(it, lambda, Pinv, nc, Bm);
    lmm_iter_pcg(it, lambda, Pinv, nc, Bm, X, tol, p1, col);
    it->evaluations++;
    it->iters_B = it->iters_probe = it->unconverged = 0;
    for (int c = 0; c < nc; c++) {
        int *most = c < p1 ? &it->iters_B : &it->iters_probe;
        if (col[c].steps > *most) *most = col[c].steps;
        it->unconverged += !col[c].converged;
    }
    double *S = dalloc((size_t) p1 * p1), *L = dalloc((size_t) p1 * p1);
    schur(it, nc, Bm, X, S);
    memcpy(L, S, (size_t) p1 * p1 * sizeof(double));
    int info = 0;
    F77_CALL(dpotrf)("L", &p1, L, &p1, &info FCONE);                   /* S = L L' */
    double se = NA_REAL, ld = info ? NA_REAL : logdet(it, Pinv, col, &se);
    if (info || !R_FINITE(ld)) return 1;
    double ldRX2 = 0, r = L[p + p * p1];
    for (int i = 0; i < p; i++) ldRX2 += 2 * log(L[i + i * p1]);
    cp->ldL2 = ld;
    cp->ld_se = se;
    cp->ldRX2 = ldRX2 + m->std_ldM;
    double pwrss = r * r, n = m->n, nmp = REML ? n - p : n;
    double logs2 = m->std_d ? 2 * log(m->std_s) : 0.0;
    cp->crit = ld - m->sumlogw + nmp * (1 + log(2 * M_PI * pwrss / nmp) + logs2);
    if (REML) cp->crit += cp->ldRX2;
    cp->pwrss = pwrss * (m->std_d ? m->std_s * m->std_s : 1.0);
    it->ld_se = se;
    /* beta* = S_XX^{-1} S_Xy and S_XX^{-1}, from the leading block of L */
    double *bs = dalloc(p1), *SXXi = dalloc((size_t) p * p + 1);
    for (int a = 0; a < p; a++) bs[a] = S[a + p * p1];
    int one = 1;
    if (p > 0) {
        F77_CALL(dpotrs)("L", &p, &one, L, &p1, bs, &p1, &info FCONE);
        for (int c = 0; c < p; c++) for (int a = 0; a < p; a++) SXXi[a + c * p] = a >= c ? L[a + c * p1] : 0;
        F77_CALL(dpotri)("L", &p, SXXi, &p, &info FCONE);
        for (int c = 0; c < p; c++) for (int a = 0; a < c; a++) SXXi[a + c * p] = SXXi[c + a * p];
    }
    if (grad) {
        double *W = dalloc((size_t) p1 * p1), *v = dalloc(p1), cw = nmp / pwrss;
        for (int a = 0; a < p; a++) v[a] = -bs[a];
        v[p] = 1;
        for (int c = 0; c < p1; c++)
            for (int a = 0; a < p1; a++)
                W[a + c * p1] = cw * v[a] * v[c] + (REML && a < p && c < p ? SXXi[a + c * p] : 0);
        int w = p1 + 2 * K;
        double *CL = products(it, lambda, Pinv, X, nc, w);
        for (int t = 0; t < m->ntheta; t++) grad[t] = 0;
        gradient_exact(m, X, nc, CL, w, W, grad);
        gradient_logdet(m, lambda, Pinv, X, nc, CL, w, grad);
    }
    if (beta) for (int a = 0; a < p; a++) beta[a] = bs[a];
    if (u)
        for (int j = 0; j < q; j++) {                                   /* u* = Y_y - Y_X beta* */
            const double *y = X + (size_t) j * nc;
            double s = y[p];
            for (int a = 0; a < p; a++) s -= y[a] * bs[a];
            u[j] = s;
        }
    if (cp->rx_pivot)
        for (int a = 0; a < p; a++) {
            double h = it->H[a + a * p1];
            cp->rx_pivot[a] = h > 0 ? fabs(L[a + a * p1]) / sqrt(h) : 0.0;
        }
    if (RXinv) memcpy(RXinv, SXXi, (size_t) p * p * sizeof(double));
    return 0;
}

/* The criterion at theta (and, when not NULL, its gradient, u*, beta* and (R*'R*)^{-1} in the
   internal coordinates).  Returns 0, or 1 when S is not positive definite or the quadrature
   failed (crit = Inf).  Scratch is released on return. */
int lmm_iter_evaluate(lmm_model *m, const double *theta, int REML, lmm_iter_parts *cp,
                      double *grad, double *u, double *beta, double *RXinv)
{
    const void *vmax = vmaxget();
    int status = evaluate(m, theta, REML, cp, grad, u, beta, RXinv);
    vmaxset(vmax);
    return status;
}
