/*
 * iterative_pcg.c -- preconditioned conjugate gradients for A X = B, many right-hand sides at
 * once (one product per iteration serves them all): A = Omega' (iterative_operator.c) or its
 * Schur complement S (iterative_schur.c).
 *
 * Column c, from x = 0:  r = b,  s = P^{-1} r,  d = s,  then until converged
 *     alpha = r's / d'Omega d,   x += alpha d,   r -= alpha Omega d,
 *     s = P^{-1} r,   beta = r's (new) / r's (old),   d = s + beta d.
 * P = diag(Omega_Z).  A column has converged when its
 * preconditioned residual norm sqrt(r' P^{-1} r) is below tol[c] times its initial one (the
 * residual of the equivalent system M y = P^{-1/2} b, M = P^{-1/2} Omega_Z P^{-1/2}).
 *
 * CG on M from y = 0 is the Lanczos process on M started at P^{-1/2} b: the recorded alpha_i, beta_i
 * give its tridiagonal matrix (iterative_slq.c), which is how the log-determinant is estimated.
 * Converged columns drop out of the products.
 */
#include "iterative.h"
#include <string.h>

static double *scratch(size_t n) { return (double *) R_alloc(n ? n : 1, sizeof(double)); }

/* the operator Omega' (iterative_operator.c) as an lmm_iter_op */
void lmm_omega_op(const void *ctx, int nc, const int *cols, int na, const double *V, double *W)
{
    const lmm_omega_ctx *o = (const lmm_omega_ctx *) ctx;
    lmm_iter_omega(o->it, o->lam, nc, cols, na, V, W, o->work, NULL);
}

void lmm_iter_pcg(const lmm_iter *it, lmm_iter_op op, const void *ctx, const double *Pinv,
                  int nc, const double *Bm, double *X, const double *tol, int crec,
                  lmm_pcg_column *col)
{
    int q = it->q;
    size_t len = (size_t) q * nc;
    double *R = scratch(len), *D = scratch(len), *AD = scratch(len);
    double *rs = scratch(nc), *rs0 = scratch(nc), *dad = scratch(nc);
    double *rsn = scratch(nc);
    int *act = (int *) R_alloc(nc, sizeof(int)), na = 0;
    memcpy(R, Bm, len * sizeof(double));
    memset(X, 0, len * sizeof(double));
    for (int c = 0; c < nc; c++) { rs[c] = 0; col[c].steps = 0; col[c].converged = 0; }
    for (int j = 0; j < q; j++)                                  /* d = s = P^{-1} r */
        for (int c = 0; c < nc; c++) {
            size_t jc = (size_t) j * nc + c;
            D[jc] = Pinv[j] * R[jc];
            rs[c] += R[jc] * D[jc];
        }
    for (int c = 0; c < nc; c++) {
        rs0[c] = rs[c];
        if (rs[c] > 0) act[na++] = c; else col[c].converged = 1;   /* b = 0: x = 0 */
    }
    for (int step = 0; na > 0 && step < it->maxit; step++) {
        op(ctx, nc, act, na, D, AD);                              /* A d */
        for (int a = 0; a < na; a++) dad[act[a]] = 0;
        for (int j = 0; j < q; j++)
            for (int a = 0; a < na; a++) {
                size_t jc = (size_t) j * nc + act[a];
                dad[act[a]] += D[jc] * AD[jc];
            }
        for (int a = 0; a < na; a++) {
            int c = act[a];
            dad[c] = rs[c] / dad[c];                              /* alpha */
            if (c >= crec) col[c].alpha[step] = dad[c];
            col[c].steps = step + 1;
        }
        for (int a = 0; a < na; a++) rsn[act[a]] = 0;
        for (int j = 0; j < q; j++)                               /* x += alpha d, r -= alpha Omega d */
            for (int a = 0; a < na; a++) {
                int c = act[a];
                size_t jc = (size_t) j * nc + c;
                X[jc] += dad[c] * D[jc];
                R[jc] -= dad[c] * AD[jc];
                rsn[c] += R[jc] * R[jc] * Pinv[j];
            }
        int nb = 0;
        for (int a = 0; a < na; a++) {
            int c = act[a];
            double beta = rsn[c] / rs[c];
            if (c >= crec) col[c].beta[step] = beta;
            rs[c] = rsn[c];
            dad[c] = beta;
            if (sqrt(rsn[c] / rs0[c]) <= tol[c]) col[c].converged = 1;
            else act[nb++] = c;
        }
        na = nb;
        for (int j = 0; j < q; j++)                               /* d = P^{-1} r + beta d */
            for (int a = 0; a < na; a++) {
                size_t jc = (size_t) j * nc + act[a];
                D[jc] = Pinv[j] * R[jc] + dad[act[a]] * D[jc];
            }
    }
}
