/*
 * iterative_pcg.c -- preconditioned conjugate gradients for A X = B, many right-hand sides at
 * once (one product per iteration serves them all): A = Omega' (iterative_operator.c) or its
 * Schur complement S (iterative_schur.c).
 *
 * Column c, from x = 0:  r = b,  s = P^{-1} r,  d = s,  then until converged
 *     alpha = r's / d'Omega d,   x += alpha d,   r -= alpha Omega d,
 *     s = P^{-1} r,   beta = r's (new) / r's (old),   d = s + beta d.
 * P = blockdiag(P_J) (iterative_schur.c), P = L L'.  A column has converged when its
 * preconditioned residual norm sqrt(r' P^{-1} r) is below tol[c] times its initial one (the
 * residual of the equivalent system M y = L^{-1} b, M = L^{-1} A L^{-T}).
 *
 * CG on M from y = 0 is the Lanczos process on M started at L^{-1} b: the recorded alpha_i, beta_i
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

/* rs_c = r_c' s_c over the active columns (R, S q x nc) */
static void dots(int q, int nc, const int *act, int na, const double *R, const double *S, double *rs)
{
    for (int a = 0; a < na; a++) rs[act[a]] = 0;
    for (int j = 0; j < q; j++)
        for (int a = 0; a < na; a++) {
            size_t jc = (size_t) j * nc + act[a];
            rs[act[a]] += R[jc] * S[jc];
        }
}

void lmm_iter_pcg(const lmm_model *m, lmm_iter_op op, const void *ctx, const double *Pi,
                  int nc, const double *Bm, double *X, const double *tol, int crec,
                  lmm_pcg_column *col)
{
    const lmm_iter *it = m->iter;
    int q = it->q;
    size_t len = (size_t) q * nc;
    double *R = scratch(len), *D = scratch(len), *AD = scratch(len);
    double *rs = scratch(nc), *rs0 = scratch(nc), *dad = scratch(nc);
    double *rsn = scratch(nc);
    int *act = (int *) R_alloc(nc, sizeof(int)), na = nc;
    memcpy(R, Bm, len * sizeof(double));
    memset(X, 0, len * sizeof(double));
    for (int c = 0; c < nc; c++) { act[c] = c; col[c].steps = 0; col[c].converged = 0; }
    lmm_blocks_apply(m, Pi, NULL, nc, act, nc, R, D);            /* d = s = P^{-1} r */
    dots(q, nc, act, nc, R, D, rs);
    na = 0;
    for (int c = 0; c < nc; c++) {
        rs0[c] = rs[c];
        if (rs[c] > 0) act[na++] = c; else col[c].converged = 1;   /* b = 0: x = 0 */
    }
    for (int step = 0; na > 0 && step < it->maxit; step++) {
        op(ctx, nc, act, na, D, AD);                              /* A d */
        dots(q, nc, act, na, D, AD, dad);
        for (int a = 0; a < na; a++) {
            int c = act[a];
            dad[c] = rs[c] / dad[c];                              /* alpha */
            if (c >= crec) col[c].alpha[step] = dad[c];
            col[c].steps = step + 1;
        }
        for (int j = 0; j < q; j++)                               /* x += alpha d, r -= alpha A d */
            for (int a = 0; a < na; a++) {
                int c = act[a];
                size_t jc = (size_t) j * nc + c;
                X[jc] += dad[c] * D[jc];
                R[jc] -= dad[c] * AD[jc];
            }
        lmm_blocks_apply(m, Pi, NULL, nc, act, na, R, AD);       /* s = P^{-1} r (in AD) */
        dots(q, nc, act, na, R, AD, rsn);
        int nb = 0;
        for (int a = 0; a < na; a++) {
            int c = act[a];
            double beta = rsn[c] / rs[c];
            if (c >= crec) col[c].beta[step] = beta;
            rs[c] = rsn[c];
            dad[c] = beta;
            if (sqrt(fmax(rsn[c], 0) / rs0[c]) <= tol[c]) col[c].converged = 1;
            else act[nb++] = c;
        }
        na = nb;
        for (int j = 0; j < q; j++)                               /* d = s + beta d */
            for (int a = 0; a < na; a++) {
                size_t jc = (size_t) j * nc + act[a];
                D[jc] = AD[jc] + dad[act[a]] * D[jc];
            }
    }
}
