/*
 * factor.c -- Omega(theta) = T' A T + diag(I_q, 0) = L L', node-blocked.
 *
 * Sparse columns J = 0 .. Ns-1 are eliminated right-looking:
 *     L_JJ = chol(Omega_JJ)                         (Omega_JJ already updated by earlier columns)
 *     L_IJ = Omega_IJ L_JJ^{-T}                     for the row nodes I of column J
 *     Omega_{I_a I_b} -= L_{I_a J} L_{I_b J}'       for every pair I_a >= I_b of them
 * and the updated trailing dense block (nodes Ns .. N, the [X y] node last; Ns anywhere, also
 * inside a term: layout.c) is factored whole (dense_chol.c).
 */
#include "lmm.h"
#include <string.h>

/* out = TI' B TJ for a pI x pJ block B (leading dimension ldb); a NULL template is the identity.
   `sym` says B is a diagonal block of which only the lower triangle is stored. */
static void scale_block(int pI, int pJ, const double *TI, const double *TJ,
                        const double *B, int ldb, int sym, double *out, int ldo, double *work)
{
    double *Bf = work, *TB = work + pI * pJ;
    for (int c = 0; c < pJ; c++)                          /* Bf = B (symmetrised when needed) */
        for (int r = 0; r < pI; r++)
            Bf[r + c * pI] = (sym && r < c) ? B[c + (size_t) r * ldb] : B[r + (size_t) c * ldb];
    for (int c = 0; c < pJ; c++)                          /* TB = TI' Bf */
        for (int r = 0; r < pI; r++) {
            double s = 0;
            if (TI) for (int l = r; l < pI; l++) s += TI[l + r * pI] * Bf[l + c * pI];
            else s = Bf[r + c * pI];
            TB[r + c * pI] = s;
        }
    for (int c = 0; c < pJ; c++)                          /* out = TB TJ */
        for (int r = 0; r < pI; r++) {
            double s = 0;
            if (TJ) for (int l = c; l < pJ; l++) s += TB[r + l * pI] * TJ[l + c * pJ];
            else s = TB[r + c * pI];
            out[r + (size_t) c * ldo] = s;
        }
}

/* Templates of all terms, laid end to end; T[t] points into one R_alloc'ed array. */
static const double **templates(const lmm_model *m, const double *theta)
{
    const double **T = (const double **) R_alloc(m->k + 1, sizeof(double *));
    for (int t = 0; t < m->k; t++) {
        double *Tt = (double *) R_alloc((size_t) m->pt[t] * m->pt[t], sizeof(double));
        lmm_template(m, t, theta, Tt);
        T[t] = Tt;
    }
    T[m->k] = NULL;                                       /* the [X y] node is not scaled */
    return T;
}

/* Are all Z nodes of the dense block scalar (one column each)? Then Lambda is diagonal there. */
static int dense_nodes_scalar(const lmm_model *m)
{
    for (int J = m->Ns; J < m->N; J++) if (m->size[J] != 1) return 0;
    return 1;
}

/* Dense block with scalar Z nodes: L_rc = d_r d_c A_rc (+1 on the Z diagonal), d = theta of the
   row's term, 1 on the [X y] rows. */
static void scale_dense_scalar(lmm_model *m, const double **T)
{
    int md = m->md, dX = m->doff[m->N - m->Ns];
    double *d = (double *) R_alloc(md, sizeof(double));
    for (int J = m->Ns; J < m->N; J++) d[J - m->Ns] = T[m->term[J]][0];
    for (int r = dX; r < md; r++) d[r] = 1.0;
    for (int c = 0; c < md; c++) {
        const double *Ac = lmm_packed_col(m->Ad, md, c);              /* both packed alike */
        double *Lc = lmm_packed_col(m->Ld, md, c), dc = d[c];          /* dense_packed.h */
        for (int r = c; r < md; r++) Lc[r] = d[r] * dc * Ac[r];
        if (c < dX) Lc[c] += 1.0;
    }
}

/* L <- T' A T + diag(I_q, 0) on the sparse blocks and the dense block. */
static void scale_into_factor(lmm_model *m, const double **T, double *work)
{
    for (int J = 0; J < m->Ns; J++) {
        int pJ = m->size[J];
        const double *TJ = T[m->term[J]];
        double *D = m->Lx + m->Ldiag[J];
        scale_block(pJ, pJ, TJ, TJ, m->Ax + m->Ldiag[J], pJ, 0, D, pJ, work);
        for (int r = 0; r < pJ; r++) D[r + r * pJ] += 1.0;
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) {
            int I = m->Li[e];
            scale_block(m->size[I], pJ, T[m->term[I]], TJ, m->Ax + m->Loff[e], m->size[I], 0,
                        m->Lx + m->Loff[e], m->size[I], work);
        }
    }
    int md = m->md;
    /* the scalar path writes the whole lower triangle, which is all that is read (the factor,
       its inverse and the solves use the lower triangle only) */
    if (dense_nodes_scalar(m)) { scale_dense_scalar(m, T); return; }
    memset(m->Ld, 0, lmm_packed_len(md) * sizeof(double));
    size_t s2 = (size_t) m->size_max * m->size_max;
    double *out = work + 2 * s2, *B = work + 3 * s2;
    for (int J = m->Ns; J <= m->N; J++) {
        int dJ = m->doff[J - m->Ns], pJ = m->size[J];
        const double *TJ = T[m->term[J]];
        for (int I = J; I <= m->N; I++) {
            int dI = m->doff[I - m->Ns], pI = m->size[I];
            for (int c = 0; c < pJ; c++) {               /* block (I, J) of packed A, plain */
                const double *Ac = lmm_packed_col(m->Ad, md, dJ + c) + dI;
                for (int r = I == J ? c : 0; r < pI; r++) B[r + (size_t) c * pI] = Ac[r];
            }
            scale_block(pI, pJ, T[m->term[I]], TJ, B, pI, I == J, out, pI, work);
            for (int c = 0; c < pJ; c++) {               /* into the packed lower triangle */
                double *Lc = lmm_packed_col(m->Ld, md, dJ + c);
                for (int r = I == J ? c : 0; r < pI; r++) Lc[dI + r] = out[r + (size_t) c * pI];
            }
        }
        if (J < m->N) for (int r = 0; r < pJ; r++) lmm_packed_col(m->Ld, md, dJ + r)[dJ + r] += 1.0;
    }
}

/* Eliminate sparse column J: factor its diagonal block, scale its row blocks, and update the
   sparse columns it reaches (its updates of the dense block wait for dense_update). */
static int eliminate_column(lmm_model *m, int J)
{
    int pJ = m->size[J];
    double *LJJ = m->Lx + m->Ldiag[J];
    if (lmm_chol_small(pJ, LJJ)) return 1;
    int e0 = m->Lp[J], e1 = m->Lp[J + 1];
    for (int e = e0; e < e1; e++)                                      /* L_IJ = Omega_IJ L_JJ^{-T} */
        lmm_trsm_right_lt(m->size[m->Li[e]], pJ, LJJ, m->Lx + m->Loff[e]);
    for (int eb = e0; eb < e1 && m->Li[eb] < m->Ns; eb++) {            /* Omega_ab -= L_aJ L_bJ' */
        int Ib = m->Li[eb], pb = m->size[Ib], pos = m->Lp[Ib], end = m->Lp[Ib + 1];
        const double *LbJ = m->Lx + m->Loff[eb];
        lmm_gemm_nt_sub(pb, pb, pJ, LbJ, LbJ, m->Lx + m->Ldiag[Ib], pb);  /* diagonal block */
        for (int ea = eb + 1; ea < e1; ea++) {       /* column J's rows below Ib lie in column Ib's
                                                        pattern (sorted): one merged walk */
            int Ia = m->Li[ea];
            while (pos < end && m->Li[pos] < Ia) pos++;
            if (pos == end || m->Li[pos] != Ia)
                error(_("internal error: fill block (%d, %d) missing"), Ia, Ib);
            lmm_gemm_nt_sub(m->size[Ia], pb, pJ, m->Lx + m->Loff[ea], LbJ, m->Lx + m->Loff[pos],
                            m->size[Ia]);
        }
    }
    return 0;
}

/* The sparse columns' contribution to the dense block, Omega_DD -= sum_J L_DJ L_DJ', in blocks
   of dense columns whose panel stays in cache (dense_schur.c). */
static void dense_update(lmm_model *m)
{
    lmm_dense_schur_update(m);
}

#define DENSE_SMALL 48   /* dense blocks up to this order skip the blocked Cholesky */

/* Factor Omega(theta).  Returns 0 on success, 1 if a Z block is not positive definite, 2 if the
   [X y] block is not (X rank deficient or y fitted exactly). */
int lmm_factor(lmm_model *m, const double *theta)
{
    const void *vmax = vmaxget();
    int pmax = m->size_max;
    double *work = (double *) R_alloc(4 * (size_t) pmax * pmax, sizeof(double));
    const double **T = templates(m, theta);
    m->factored = 0;
    scale_into_factor(m, T, work);
    int status = 0;
    for (int J = 0; J < m->Ns && !status; J++) {
        if (eliminate_column(m, J)) status = 1;
        lmm_work(lmm_column_work(m, J));             /* interrupt.c: checks by work done */
    }
    if (!status) dense_update(m);
    if (!status) {
        /* a small block (e.g. only the [X y] node) is factored unblocked, without packing */
        int info = m->md <= DENSE_SMALL ? lmm_chol_small(m->md, m->Ld)   /* one panel: plain */
                                        : lmm_dense_chol(m->md, lmm_dmat_packed(m->Ld, m->md));
        if (info > 0) status = (info > m->doff[m->N - m->Ns]) ? 2 : 1;
    }
    if (!status) {
        memcpy(m->theta_cur, theta, m->ntheta * sizeof(double));
        m->factored = 1;
    }
    vmaxset(vmax);
    return status;
}
