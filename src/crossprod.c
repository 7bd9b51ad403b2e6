/*
 * crossprod.c -- A = G' W G, G = [Z X y], accumulated row by row into the node blocks.
 *
 * [X y] enter in the internal coordinates [X* y*] of standardise.c.  Row i of G may be pre-whitened: g_i = w_i a_i raw_i + c_i raw_prev(i), w_i = sqrtw[i] (prev(i) = -1:
 * g_i = w_i a_i raw_i), which is how AR(1)-type residual correlation becomes an ordinary weighted
 * problem: with the lower-bidiagonal whitening matrix B (diagonal w_i a_i, c_i below it) the residual
 * covariance is s^2 (B'B)^{-1}, so log|W| = 2 sum log(w_i a_i).  c_i carries all the scaling of the
 * previous row (the caller folds its weight in).  Each row
 * contributes the outer products g_i(I) g_i(J)' to the blocks of the nodes it touches.
 * This is the only pass over the observations; it runs once per model (per residual parameter).
 */
#include "lmm.h"
#include <string.h>

typedef struct { int node; double *v; } entry;   /* a node touched by the row and its values */

/* Add scale * (raw row r) to the row's entries, merging entries of the same node. */
static int add_raw_row(const lmm_model *m, const int *const *refs, const double *const *Xt,
                       const double *X, const double *y, int r, double scale,
                       entry *E, int s, double *xy, double *xs)
{
    int n = m->n, p = m->p;
    for (int t = 0; t < m->k; t++) {
        int J = m->node0[t] + refs[t][r], pt = m->pt[t], e;
        for (e = 0; e < s; e++) if (E[e].node == J) break;
        if (e == s) { E[s].node = J; memset(E[s].v, 0, pt * sizeof(double)); s++; }
        for (int c = 0; c < pt; c++) E[e].v[c] += scale * Xt[t][r + (size_t) c * n];
    }
    lmm_std_row(m, X, y, r, xs);                       /* [x* y*] of row r (standardise.c) */
    for (int c = 0; c <= p; c++) xy[c] += scale * xs[c];
    return s;
}

/* block(I, J) += u v' for I >= J (node sizes from m) */
static void add_outer(lmm_model *m, int I, int J, const double *u, const double *v)
{
    int ld, pI = m->size[I], pJ = m->size[J];
    double *B = lmm_block_ptr(m, m->Ax, m->Ad, I, J, &ld);
    if (!B) error(_("internal error: block (%d, %d) outside the pattern"), I, J);
    int dense_diag = (I == J && J >= m->Ns);        /* dense block: lower triangle only */
    for (int c = 0; c < pJ; c++)
        for (int r = dense_diag ? c : 0; r < pI; r++) B[r + (size_t) c * ld] += u[r] * v[c];
}

void lmm_crossprod(lmm_model *m, const int *const *refs, const double *const *Xt,
                   const double *X, const double *y, const double *sqrtw,
                   const int *prev, const double *a, const double *c)
{
    int k = m->k, p = m->p, pmax = m->size_max;
    entry *E = (entry *) R_alloc(2 * k + 1, sizeof(entry));
    for (int e = 0; e < 2 * k + 1; e++) E[e].v = (double *) R_alloc(pmax, sizeof(double));
    double *xy = (double *) R_alloc(2 * (p + 1), sizeof(double)), *xs = xy + p + 1;
    memset(m->Ax, 0, m->nLx * sizeof(double));
    memset(m->Ad, 0, (size_t) m->md * m->md * sizeof(double));
    for (int i = 0; i < m->n; i++) {
        if (i % 65536 == 0) R_CheckUserInterrupt();
        double w = sqrtw ? sqrtw[i] : 1.0, ai = a ? a[i] : 1.0;
        memset(xy, 0, (p + 1) * sizeof(double));
        int s = add_raw_row(m, refs, Xt, X, y, i, w * ai, E, 0, xy, xs);
        if (prev && prev[i] >= 0) s = add_raw_row(m, refs, Xt, X, y, prev[i], c[i], E, s, xy, xs);
        E[s].node = m->N;
        memcpy(E[s].v, xy, (p + 1) * sizeof(double));
        s++;
        for (int e1 = 0; e1 < s; e1++)                  /* every pair of touched nodes, I >= J */
            for (int e2 = 0; e2 < s; e2++)
                if (E[e1].node >= E[e2].node) add_outer(m, E[e1].node, E[e2].node, E[e1].v, E[e2].v);
    }
    /* log|W| for the criterion: sum of log prior weights */
    double slw = 0;
    if (sqrtw || a)
        for (int i = 0; i < m->n; i++) slw += 2.0 * log(fabs((sqrtw ? sqrtw[i] : 1.0) * (a ? a[i] : 1.0)));
    m->sumlogw = slw;
    m->factored = 0;
}
