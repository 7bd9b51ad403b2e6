/*
 * crossprod.c -- A = (KG)'(KG), G = [Z X y], accumulated row by row into the node blocks, and
 * the derivative pass tr(M dA/drho_k) of the gradient.
 *
 * [X y] enter in the internal coordinates [X* y*] of standardise.c.  K is the whitening matrix
 * by rows (residual.h: whitened row i = sum_e Kx[e] raw_{Kj[e]}); without one, K = I.  The prior
 * weights are in K (its diagonal sqrt(w_i) for models without a residual structure).  Each
 * whitened row contributes the outer products g_i(I) g_i(J)' to the blocks of the nodes it
 * touches; this is the only pass over the observations, once per model (per value of rho).
 *
 * The derivative pass: with dA_k = sum_i (g_i dg_ik' + dg_ik g_i'), dg_ik the row whitened by
 * dK/drho_k, and M symmetric,  tr(M dA_k) = 2 sum_i g_i' M dg_ik  over the blocks M_IJ of the
 * nodes the row touches (M on L's pattern: the stored blocks I >= J, M_JI = M_IJ').
 * Rows flagged in K->skip (ARMA groups whitened by a recursion, residual_innovations.c) are
 * left to their own pass.
 */
#include "residual.h"
#include <string.h>

/* A node touched by the row and its values: nvec vectors of the node's size, at v + c pmax. */
typedef struct { int node; double *v; } entry;

typedef struct {
    lmm_model *m;
    const int *const *refs;
    const double *const *Xt;
    const double *X, *y;
    int nvec, pmax;
    entry *E;
    double *xs;             /* [x* y*] of one raw row */
} row_builder;

static row_builder builder(lmm_model *m, const int *const *refs, const double *const *Xt,
                           const double *X, const double *y, int maxlen, int nvec)
{
    row_builder b = {m, refs, Xt, X, y, nvec, m->size_max, NULL, NULL};
    int ne = maxlen * m->k + 1;
    b.E = (entry *) R_alloc(ne, sizeof(entry));
    double *v = (double *) R_alloc((size_t) ne * nvec * b.pmax, sizeof(double));
    for (int e = 0; e < ne; e++) b.E[e].v = v + (size_t) e * nvec * b.pmax;
    b.xs = (double *) R_alloc(m->p + 1, sizeof(double));
    return b;
}

/* The entries of whitened row i: sum over e of coef_c[e] (raw row Kj[e]) for each vector c
   (coef_c = coef + c stride); node N's entry last.  Returns the number of entries. */
static int build_row(row_builder *b, const int *Kj, int e0, int e1, const double *coef,
                     size_t stride)
{
    lmm_model *m = b->m;
    int n = m->n, p = m->p, s = 0, width = b->nvec * b->pmax;
    for (int e = e0; e < e1; e++) {
        int r = Kj[e];
        for (int t = 0; t < m->k; t++) {
            int J = m->node0[t] + b->refs[t][r], pt = m->pt[t], x;
            for (x = 0; x < s; x++) if (b->E[x].node == J) break;
            if (x == s) { b->E[s].node = J; memset(b->E[s].v, 0, width * sizeof(double)); s++; }
            for (int c = 0; c < b->nvec; c++) {
                double w = coef[e + c * stride], *v = b->E[x].v + c * b->pmax;
                if (w == 0) continue;
                for (int j = 0; j < pt; j++) v[j] += w * b->Xt[t][r + (size_t) j * n];
            }
        }
    }
    entry *xy = b->E + s;
    xy->node = m->N;
    memset(xy->v, 0, width * sizeof(double));
    for (int e = e0; e < e1; e++) {
        lmm_std_row(m, b->X, b->y, Kj[e], b->xs);       /* [x* y*] of the raw row (standardise.c) */
        for (int c = 0; c < b->nvec; c++) {
            double w = coef[e + c * stride], *v = xy->v + c * b->pmax;
            for (int j = 0; j <= p; j++) v[j] += w * b->xs[j];
        }
    }
    return s + 1;
}

/* block(I, J) += u v' for I >= J (node sizes from m) */
static void add_outer(lmm_model *m, int I, int J, const double *u, const double *v)
{
    int ld, pI = m->size[I], pJ = m->size[J];
    if (J >= m->Ns) {                    /* the packed dense block: column by column, lower */
        int dI = m->doff[I - m->Ns], dJ = m->doff[J - m->Ns], diag = I == J;
        for (int c = 0; c < pJ; c++) {
            double *Bc = lmm_packed_col(m->Ad, m->md, dJ + c) + dI, vc = v[c];
            for (int r = diag ? c : 0; r < pI; r++) Bc[r] += u[r] * vc;
        }
        return;
    }
    double *B = lmm_block_ptr(m, m->Ax, m->Ad, I, J, &ld);
    if (!B) error(_("internal error: block (%d, %d) outside the pattern"), I, J);
    for (int c = 0; c < pJ; c++)
        for (int r = 0; r < pI; r++) B[r + (size_t) c * ld] += u[r] * v[c];
}

/* The identity whitening with the prior weights: K = diag(sqrtw) (or I). */
lmm_whitening lmm_diagonal_whitening(int n, const double *sqrtw)
{
    lmm_whitening K;
    memset(&K, 0, sizeof K);
    K.n = n;
    K.Kp = (int *) R_alloc(n + 1, sizeof(int));
    K.Kj = (int *) R_alloc(n > 0 ? n : 1, sizeof(int));
    K.Kx = (double *) R_alloc(n > 0 ? n : 1, sizeof(double));
    double ld = 0;
    for (int i = 0; i <= n; i++) K.Kp[i] = i;
    for (int i = 0; i < n; i++) {
        K.Kj[i] = i;
        K.Kx[i] = sqrtw ? sqrtw[i] : 1.0;
        ld += 2 * log(K.Kx[i]);
    }
    K.logdet = ld;
    return K;
}

static int max_row_length(const lmm_whitening *K)
{
    int most = 1;
    for (int i = 0; i < K->n; i++) if (K->Kp[i + 1] - K->Kp[i] > most) most = K->Kp[i + 1] - K->Kp[i];
    return most;
}

/* acc += its chunk c (lower triangles of q x q), c zeroed */
static void flush_chunk(int q, double *acc, double *c)
{
    for (int j = 0; j < q; j++)
        for (int r = j; r < q; r++) { acc[r + j * q] += c[r + j * q]; c[r + j * q] = 0; }
}

/* The [X y] node's own block sums every row: it is accumulated in chunks of CHUNK rows and the
   chunk sums added up (two-level summation: rounding error about (CHUNK + n / CHUNK) eps
   instead of n eps, so that A -- and the criterion -- stay smooth in rho when it is re-formed
   for every rho; measured at 1.92 million rows: criterion noise 2e-4 of 3.5e6 with plain sums).
   The other blocks sum the rows of one level. */
#define CHUNK 1024
void lmm_crossprod(lmm_model *m, const int *const *refs, const double *const *Xt,
                   const double *X, const double *y, const lmm_whitening *K)
{
    row_builder b = builder(m, refs, Xt, X, y, max_row_length(K), 1);
    int q = m->p + 1;
    double *chunk = (double *) R_alloc(2 * (size_t) q * q, sizeof(double)), *acc = chunk + q * q;
    memset(chunk, 0, 2 * (size_t) q * q * sizeof(double));
    memset(m->Ax, 0, m->nLx * sizeof(double));
    memset(m->Ad, 0, lmm_packed_len(m->md) * sizeof(double));
    for (int i = 0; i < m->n; i++) {
        if (i % 65536 == 0) R_CheckUserInterrupt();
        if (i % CHUNK == 0) flush_chunk(q, acc, chunk);
        if (K->skip && K->skip[i]) continue;           /* formed by residual_innovations.c */
        int s = build_row(&b, K->Kj, K->Kp[i], K->Kp[i + 1], K->Kx, 0);
        const double *xy = b.E[s - 1].v;               /* node N: the last entry */
        for (int j = 0; j < q; j++)
            for (int r = j; r < q; r++) chunk[r + j * q] += xy[r] * xy[j];
        for (int e1 = 0; e1 < s; e1++)                  /* every other pair, I >= J */
            for (int e2 = 0; e2 < s; e2++)
                if (b.E[e1].node >= b.E[e2].node && b.E[e2].node != m->N)
                    add_outer(m, b.E[e1].node, b.E[e2].node, b.E[e1].v, b.E[e2].v);
    }
    flush_chunk(q, acc, chunk);
    for (int j = 0; j < q; j++) {                       /* node N's block: its lower triangle */
        double *Bj = lmm_block_col(m, NULL, 0, m->Ad, m->N, m->N, j);
        for (int r = j; r < q; r++) Bj[r] += acc[r + j * q];
    }
    m->sumlogw = K->logdet;                             /* log|V^{-1}| (log|W| without rho) */
    m->factored = 0;
}

/* u' M_IJ v for any two nodes of the pattern (M_IJ = M_JI' when I < J) */
static double bilinear(const lmm_model *m, double *Mx, double *Md, int I, int J, const double *u,
                       const double *v)
{
    int ld, tr = I < J, pI = m->size[I], pJ = m->size[J];
    double s = 0;
    if ((tr ? I : J) >= m->Ns) {                          /* the dense block (residual.h) */
        int Ib = tr ? J : I, Jb = tr ? I : J;
        for (int c = 0; c < pJ; c++)
            for (int r = 0; r < pI; r++)
                s += u[r] * v[c] * (tr ? lmm_md_entry(m, Md, Ib, Jb, c, r)
                                       : lmm_md_entry(m, Md, Ib, Jb, r, c));
        return s;
    }
    const double *B = tr ? lmm_block_ptr(m, Mx, Md, J, I, &ld) : lmm_block_ptr(m, Mx, Md, I, J, &ld);
    if (!B) error(_("internal error: block (%d, %d) outside the pattern"), I, J);
    for (int c = 0; c < pJ; c++)
        for (int r = 0; r < pI; r++)
            s += u[r] * v[c] * (tr ? B[c + (size_t) r * ld] : B[r + (size_t) c * ld]);
    return s;
}

void lmm_crossprod_contract(lmm_model *m, const int *const *refs, const double *const *Xt,
                            const double *X, const double *y, const lmm_whitening *K,
                            double *Mx, double *Md, double *out)
{
    int nrho = K->nrho, nnz = K->Kp[K->n];
    if (nrho < 1) return;
    /* vector 0: g = K rows; vector 1 + k: dK_k rows.  Coefficients laid out as Kx, dKx. */
    double *coef = (double *) R_alloc((size_t) nnz * (nrho + 1), sizeof(double));
    memcpy(coef, K->Kx, nnz * sizeof(double));
    memcpy(coef + nnz, K->dKx, (size_t) nnz * nrho * sizeof(double));
    row_builder b = builder(m, refs, Xt, X, y, max_row_length(K), nrho + 1);
    double *part = (double *) R_alloc(nrho, sizeof(double));   /* chunk sums, as lmm_crossprod */
    for (int k = 0; k < nrho; k++) out[k] = part[k] = 0;
    for (int i = 0; i < m->n; i++) {
        if (i % 65536 == 0) R_CheckUserInterrupt();
        if (i % CHUNK == 0) for (int k = 0; k < nrho; k++) { out[k] += part[k]; part[k] = 0; }
        if (K->skip && K->skip[i]) continue;
        int s = build_row(&b, K->Kj, K->Kp[i], K->Kp[i + 1], coef, nnz);
        for (int e1 = 0; e1 < s; e1++)
            for (int e2 = 0; e2 < s; e2++)
                for (int k = 0; k < nrho; k++)
                    part[k] += 2 * bilinear(m, Mx, Md, b.E[e1].node, b.E[e2].node, b.E[e1].v,
                                            b.E[e2].v + (k + 1) * b.pmax);
    }
    for (int k = 0; k < nrho; k++) out[k] += part[k];
}
