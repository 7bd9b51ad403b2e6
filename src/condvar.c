/*
 * condvar.c -- diagonal node blocks of Sigma = (L_Z L_Z')^{-1}, for the conditional variances
 * sigma^2 T Sigma_JJ T' of the random effects (the selected inverse, Takahashi's recurrences).
 *
 * From Sigma L = L^{-T} (upper triangular), column block J, over the row nodes K of column J:
 *     Sigma_IJ = -(sum_K Sigma_IK L_KJ) L_JJ^{-1}                       (I > J in the pattern)
 *     Sigma_JJ = (L_JJ^{-T} - sum_K Sigma_KJ' L_KJ) L_JJ^{-1}
 * Every Sigma_IK needed lies on the pattern of L, so only those blocks are computed.  The dense
 * trailing Z block is inverted whole (dense_inverse.c); only its leading dZ x dZ block of Sd
 * is set and read.
 */
#include "lmm.h"
#include <string.h>

/* Pointer to Sigma block (I, K) for any I, K (transposed when I < K): *trans says so. */
static const double *sigma_block(const lmm_model *m, double *Sx, double *Sd, int I, int K,
                                 int *ld, int *trans)
{
    *trans = I < K;
    return *trans ? lmm_block_ptr(m, Sx, Sd, K, I, ld) : lmm_block_ptr(m, Sx, Sd, I, K, ld);
}

/* Column J of Sigma (sparse column): its row blocks and its diagonal block. */
static void takahashi_column(const lmm_model *m, int J, double *Sx, double *Sd, double *W)
{
    int pJ = m->size[J], e0 = m->Lp[J], eN = m->Lp[J + 1] - 1;        /* skip the [X y] node */
    const double *LJJ = m->Lx + m->Ldiag[J];
    for (int ei = e0; ei < eN; ei++) {                                  /* Sigma_IJ */
        int I = m->Li[ei], pI = m->size[I];
        double *SIJ = Sx + m->Loff[ei];
        memset(W, 0, (size_t) pI * pJ * sizeof(double));
        for (int ek = e0; ek < eN; ek++) {                              /* W = sum_K Sigma_IK L_KJ */
            int K = m->Li[ek], pK = m->size[K], ld, tr;
            const double *SIK = sigma_block(m, Sx, Sd, I, K, &ld, &tr);
            const double *LKJ = m->Lx + m->Loff[ek];
            for (int c = 0; c < pJ; c++)
                for (int l = 0; l < pK; l++) {
                    double b = LKJ[l + c * pK];
                    if (b == 0) continue;
                    for (int r = 0; r < pI; r++)
                        W[r + c * pI] += (tr ? SIK[l + (size_t) r * ld] : SIK[r + (size_t) l * ld]) * b;
                }
        }
        for (int r = 0; r < pI; r++)                                    /* SIJ = -W L_JJ^{-1} */
            for (int c = pJ - 1; c >= 0; c--) {
                double v = -W[r + c * pI];
                for (int l = c + 1; l < pJ; l++) v -= SIJ[r + l * pI] * LJJ[l + c * pJ];
                SIJ[r + c * pI] = v / LJJ[c + c * pJ];
            }
    }
    double *SJJ = Sx + m->Ldiag[J];                                     /* Sigma_JJ */
    memset(W, 0, (size_t) pJ * pJ * sizeof(double));
    for (int c = 0; c < pJ; c++) {                                      /* W = L_JJ^{-T}, upper */
        W[c + c * pJ] = 1.0;
        for (int r = c; r >= 0; r--) {
            double v = W[r + c * pJ];
            for (int l = r + 1; l <= c; l++) v -= LJJ[l + r * pJ] * W[l + c * pJ];
            W[r + c * pJ] = v / LJJ[r + r * pJ];
        }
    }
    for (int ek = e0; ek < eN; ek++) {                                  /* W -= Sigma_KJ' L_KJ */
        int pK = m->size[m->Li[ek]];
        const double *SKJ = Sx + m->Loff[ek], *LKJ = m->Lx + m->Loff[ek];
        for (int c = 0; c < pJ; c++)
            for (int r = 0; r < pJ; r++) {
                double v = 0;
                for (int l = 0; l < pK; l++) v += SKJ[l + r * pK] * LKJ[l + c * pK];
                W[r + c * pJ] -= v;
            }
    }
    for (int r = 0; r < pJ; r++)                                        /* SJJ = W L_JJ^{-1} */
        for (int c = pJ - 1; c >= 0; c--) {
            double v = W[r + c * pJ];
            for (int l = c + 1; l < pJ; l++) v -= SJJ[r + l * pJ] * LJJ[l + c * pJ];
            SJJ[r + c * pJ] = v / LJJ[c + c * pJ];
        }
}

/* out: for each Z node J in order, Sigma_JJ (p_J x p_J, column-major), end to end. */
void lmm_condvar(const lmm_model *m, double *out)
{
    int md = m->md, dZ = m->doff[m->N - m->Ns];
    double *Sx = (double *) R_alloc(m->nLx + 1, sizeof(double));
    double *Sd = (double *) R_alloc((size_t) md * md, sizeof(double));
    lmm_dense_inverse(dZ, m->Ld, md, Sd, md);   /* Sigma of the dense Z block (leading dZ x dZ) */
    int pmax = m->size_max;
    double *W = (double *) R_alloc((size_t) pmax * pmax, sizeof(double));
    for (int J = m->Ns - 1; J >= 0; J--) {
        takahashi_column(m, J, Sx, Sd, W);
        lmm_work(lmm_column_work(m, J));             /* interrupt.c */
    }
    size_t o = 0;
    for (int J = 0; J < m->N; J++) {
        int pJ = m->size[J], ld;
        const double *S = lmm_block_ptr(m, Sx, Sd, J, J, &ld);
        for (int c = 0; c < pJ; c++)
            for (int r = 0; r < pJ; r++)
                out[o++] = (J >= m->Ns && r < c) ? S[c + (size_t) r * ld] : S[r + (size_t) c * ld];
    }
}
