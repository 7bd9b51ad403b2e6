/*
 * gradient.c -- the gradient of the profiled REML criterion and deviance with respect to theta.
 *
 * With Omega = T' A T + diag(I_q, 0) = L L' (lmm.h) and its leading principal blocks
 * Omega_Z (the Z nodes) and Omega_ZX (Z and X), the criteria are, up to constants,
 *     REML(theta) = log det Omega_ZX + (n - p) log r^2    (= log|L_Z|^2 + log|R_X|^2 + ...)
 *     ML(theta)   = log det Omega_Z  +  n      log r^2    (= log|L_Z|^2 + ...)
 * r^2 = min_s [s; -1]' Omega [s; -1], attained at s = [u; beta], so (envelope theorem) with
 * w = [u; beta; -1]:  d r^2 = w' dOmega w.  And d log det Omega_S = tr(Omega_S^{-1} dOmega_S).
 * Hence, with Sigma = Omega_S^{-1} padded with zeros (S = ZX for REML, Z for ML) and
 * c = (n - p) / r^2 (REML) or n / r^2 (ML),
 *     d crit / d theta_k = tr(B dOmega_k),     B = Sigma + c w w'.
 * T = diag(Lambda, I) and Lambda repeats template T_t over the levels of term t, so
 * dOmega_k = E_k' A T + T' A E_k with E_k = dT/dtheta_k, which for theta_k = T_t[i, j] has a 1 at
 * row (l, i), column (l, j) of every level l of t.  Since B is symmetric,
 *     d crit / d theta_k = 2 tr(B T' A E_k) = 2 sum_{levels l of t} C_JJ[j, i],
 *     C_JJ = sum_I B_JI T_I' A_IJ          (J = node of level l; I over the nodes A couples to J).
 * A's pattern lies within L's, so B is needed only on L's pattern: the selected inverse of
 * Omega_S by Takahashi's recurrences on the sparse node columns (as condvar.c, with node N's
 * first p rows included for REML) and the dense block's inverse (dense_inverse.c) -- about the
 * cost of one factorisation more.  Per term, G_t = sum over its nodes of C_JJ.
 */
#include "residual.h"
#include <string.h>

/* rows of node I taking part in Omega_S: node N contributes its first nl (p or 0) */
static int eff_rows(const lmm_model *m, int I, int nl)
{
    return I == m->N ? nl : m->size[I];
}

/* W_I += S L_KJ, S = Sigma_IK (rI x rK, leading dimension ld) or, with tr, the transpose of the
   stored block Sigma_KI (W_I: rows of I in W, ld nr; L_KJ: leading dimension ldK) */
static void add_block_product(int rI, int rK, int ldK, int pJ, const double *S, int ld, int tr,
                              const double *LKJ, double *WI, int nr)
{
    for (int c = 0; c < pJ; c++)
        for (int l = 0; l < rK; l++) {
            double b = LKJ[l + c * ldK];
            if (b == 0) continue;
            double *Wc = WI + (size_t) c * nr;
            if (tr) for (int r = 0; r < rI; r++) Wc[r] += S[l + (size_t) r * ld] * b;
            else {
                const double *Sl = S + (size_t) l * ld;
                for (int r = 0; r < rI; r++) Wc[r] += Sl[r] * b;
            }
        }
}

/* Column J of Sigma = Omega_S^{-1} from Sigma L = L^{-T}, over the row nodes K of column J:
 *     Sigma_IJ = -(sum_K Sigma_IK L_KJ) L_JJ^{-1}
 *     Sigma_JJ = (L_JJ^{-T} - sum_K Sigma_KJ' L_KJ) L_JJ^{-1}
 * (node N truncated to its first nl rows: the leading part of L is the factor of Omega_S).
 * W = sum_K Sigma_{.K} L_KJ is formed for all row nodes at once (nr x pJ, rows in pattern order);
 * the sum over the pairs of nodes both in the dense block is read from P (dense_schur.c). */
static void selinv_column(const lmm_model *m, int J, int nl, double *Sx, double *Sd,
                          const double *P, double *W, double *V)
{
    int pJ = m->size[J], e0 = m->Lp[J], e1 = m->Lp[J + 1] - (nl == 0), ed = e0, nr = 0;
    const double *LJJ = m->Lx + m->Ldiag[J];
    while (ed < e1 && m->Li[ed] < m->Ns) nr += m->size[m->Li[ed++]];     /* sparse rows */
    int nsr = nr;
    for (int e = ed; e < e1; e++) nr += eff_rows(m, m->Li[e], nl);
    memset(W, 0, (size_t) nr * pJ * sizeof(double));
    /* pairs with a sparse node: by their lower node Lo (sparse), whose column holds block
       (Hi, Lo) for every later row node Hi of column J -- found by one merged walk down
       column Lo's sorted pattern; the block serves W_Hi += S L_LoJ and W_Lo += S' L_HiJ */
    for (int elo = e0, olo = 0; elo < ed; olo += m->size[m->Li[elo]], elo++) {
        int Lo = m->Li[elo], pos = m->Lp[Lo], end = m->Lp[Lo + 1];
        const double *LloJ = m->Lx + m->Loff[elo];
        add_block_product(m->size[Lo], m->size[Lo], m->size[Lo], pJ, Sx + m->Ldiag[Lo],
                          m->size[Lo], 0, LloJ, W + olo, nr);
        for (int ehi = elo + 1, ohi = olo + m->size[Lo]; ehi < e1; ohi += eff_rows(m, m->Li[ehi], nl), ehi++) {
            int Hi = m->Li[ehi], rHi = eff_rows(m, Hi, nl);
            while (pos < end && m->Li[pos] < Hi) pos++;
            if (pos == end || m->Li[pos] != Hi)
                error(_("internal error: fill block (%d, %d) missing"), Hi, Lo);
            const double *S = Sx + m->Loff[pos];             /* Sigma_{Hi,Lo}, ld size_Hi */
            add_block_product(rHi, m->size[Lo], m->size[Lo], pJ, S, m->size[Hi], 0, LloJ,
                              W + ohi, nr);
            add_block_product(m->size[Lo], rHi, m->size[Hi], pJ, S, m->size[Hi], 1,
                              m->Lx + m->Loff[ehi], W + olo, nr);
        }
    }
    int k0 = m->dk0[J];                                  /* pairs of dense nodes: from P */
    for (int x = 0; x < nr - nsr; x++)
        for (int c = 0; c < pJ; c++) {
            size_t o = m->dval[k0 + x] + (size_t) c * m->dstr[k0 + x];
            W[nsr + x + (size_t) c * nr] += P[o];
        }
    for (int ei = e0, off = 0; ei < e1; ei++) {                        /* SIJ = -W_I L_JJ^{-1} */
        int I = m->Li[ei], rI = eff_rows(m, I, nl), ldI = m->size[I];
        double *SIJ = Sx + m->Loff[ei];
        for (int r = 0; r < rI; r++)
            for (int c = pJ - 1; c >= 0; c--) {
                double v = -W[off + r + (size_t) c * nr];
                for (int l = c + 1; l < pJ; l++) v -= SIJ[r + l * ldI] * LJJ[l + c * pJ];
                SIJ[r + c * ldI] = v / LJJ[c + c * pJ];
            }
        off += rI;
    }
    double *SJJ = Sx + m->Ldiag[J];                                     /* Sigma_JJ */
    memset(V, 0, (size_t) pJ * pJ * sizeof(double));
    for (int c = 0; c < pJ; c++) {                                      /* V = L_JJ^{-T} */
        V[c + c * pJ] = 1.0;
        for (int r = c; r >= 0; r--) {
            double v = V[r + c * pJ];
            for (int l = r + 1; l <= c; l++) v -= LJJ[l + r * pJ] * V[l + c * pJ];
            V[r + c * pJ] = v / LJJ[r + r * pJ];
        }
    }
    for (int ek = e0; ek < e1; ek++) {                                  /* V -= Sigma_KJ' L_KJ */
        int K = m->Li[ek], rK = eff_rows(m, K, nl), ldK = m->size[K];
        const double *SKJ = Sx + m->Loff[ek], *LKJ = m->Lx + m->Loff[ek];
        for (int c = 0; c < pJ; c++)
            for (int r = 0; r < pJ; r++) {
                double v = 0;
                for (int l = 0; l < rK; l++) v += SKJ[l + r * ldK] * LKJ[l + c * ldK];
                V[r + c * pJ] -= v;
            }
    }
    for (int r = 0; r < pJ; r++)                                        /* SJJ = V L_JJ^{-1} */
        for (int c = pJ - 1; c >= 0; c--) {
            double v = V[r + c * pJ];
            for (int l = c + 1; l < pJ; l++) v -= SJJ[r + l * pJ] * LJJ[l + c * pJ];
            SJJ[r + c * pJ] = v / LJJ[c + c * pJ];
        }
}

/* The most scalar rows of any sparse column of L */
static int max_column_rows(const lmm_model *m)
{
    int most = 0;
    for (int J = 0; J < m->Ns; J++) {
        int nr = 0;
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) nr += m->size[m->Li[e]];
        if (nr > most) most = nr;
    }
    return most;
}

/* B = Sigma + c w w' on the sparse blocks Sx (Sigma's rows of node N beyond nl are zero); w_J
   starts at w + woff[J].  (The dense block's B is formed as it is read: dense_B_column.) */
static void add_outer(const lmm_model *m, double c, const double *w, const int *woff, double *Sx)
{
    for (int J = 0; J < m->Ns; J++) {
        int pJ = m->size[J];
        const double *wJ = w + woff[J];
        for (int e = m->Lp[J] - 1; e < m->Lp[J + 1]; e++) {           /* e = Lp[J] - 1: diagonal */
            int I = e < m->Lp[J] ? J : m->Li[e], pI = m->size[I];
            double *BIJ = Sx + (e < m->Lp[J] ? m->Ldiag[J] : m->Loff[e]);
            const double *wI = w + woff[I];
            for (int b = 0; b < pJ; b++)
                for (int a = 0; a < pI; a++) BIJ[a + b * pI] += c * wI[a] * wJ[b];
        }
    }
}

/* Column b of the dense block's B = Sigma_DD + c w_d w_d', both triangles, into q[0 .. md-1]:
   q[a] = Sigma_ab + c w_a w_b, Sigma from its packed lower triangle (dense_packed.h). */
static void dense_B_column(const lmm_model *m, const double *Sd, double c, const double *wd,
                           int b, double *q)
{
    int md = m->md;
    const double *Sb = lmm_packed_col(Sd, md, b);
    for (int a = 0; a < b; a++) q[a] = lmm_packed_col(Sd, md, a)[b] + c * wd[a] * wd[b];
    for (int a = b; a < md; a++) q[a] = Sb[a] + c * wd[a] * wd[b];
}

/* Are all Z nodes of the dense block scalar (Lambda diagonal there)? */
static int dense_scalar(const lmm_model *m)
{
    for (int J = m->Ns; J < m->N; J++) if (m->size[J] != 1) return 0;
    return 1;
}

/* x <- T x for a lower-triangular p x p template T (NULL: identity) */
static void template_times(int p, const double *T, double *x, int incx)
{
    if (!T) return;
    for (int r = p - 1; r >= 0; r--) {
        double s = 0;
        for (int l = 0; l <= r; l++) s += T[r + l * p] * x[l * incx];
        x[r * incx] = s;
    }
}

/* The contributions of one stored block A_IJ (I >= J, both pI x pJ blocks with leading
   dimension ld, B_IJ overwritten) to the term accumulators:
       G_t(J) += (T_I B_IJ)' A_IJ,    G_t(I) += B_IJ T_J' A_IJ'  (I a Z node other than J) */
static void block_contract(const lmm_model *m, int I, int J, double *BIJ, const double *AIJ,
                           int ld, const double *const *T, double *const *G, double *work)
{
    int pI = m->size[I], pJ = m->size[J];
    const double *TI = T[m->term[I]], *TJ = T[m->term[J]];
    int both = I != J && I < m->N;
    if (pI == 1 && pJ == 1) {                                       /* scalar nodes */
        double ba = BIJ[0] * AIJ[0];
        G[m->term[J]][0] += (TI ? TI[0] : 1.0) * ba;
        if (both) G[m->term[I]][0] += TJ[0] * ba;
        return;
    }
    if (both) {                                                     /* H2 = (B_IJ T_J') A_IJ' */
        double *BT = work;
        for (int a = 0; a < pI; a++) {
            for (int b = 0; b < pJ; b++) BT[a + b * pI] = BIJ[a + b * ld];
            template_times(pJ, TJ, BT + a, pI);                 /* row a of B T_J' = T_J b_a */
        }
        double *GI = G[m->term[I]];
        for (int i = 0; i < pI; i++)
            for (int j = 0; j < pI; j++) {
                double s = 0;
                for (int a = 0; a < pJ; a++) s += BT[j + a * pI] * AIJ[i + a * ld];
                GI[j + i * pI] += s;
            }
    }
    for (int b = 0; b < pJ; b++) template_times(pI, TI, BIJ + b * ld, 1); /* B_IJ <- T_I B_IJ */
    double *GJ = G[m->term[J]];
    for (int i = 0; i < pJ; i++)                                    /* H1 = (T_I B_IJ)' A_IJ */
        for (int j = 0; j < pJ; j++) {
            double s = 0;
            for (int a = 0; a < pI; a++) s += BIJ[a + j * ld] * AIJ[a + i * ld];
            GJ[j + i * pJ] += s;
        }
}

/* The dense block, B = Sigma_DD + c w_d w_d' (Sigma's lower triangle packed in Sd): Q = T_d B_d
   (rows scaled by the templates), then for each Z node J of the block
   C_JJ[j, i] = sum_a Q[a, (J, j)] A[a, (J, i)], A symmetric from its lower triangle.  Q's
   columns (J, j) are formed node by node in q (size_max x md). */
static void dense_contract(const lmm_model *m, const double *Sd, double cw, const double *wd,
                           const double *const *T, double *const *G, double *q)
{
    int md = m->md;
    const double *Ad = m->Ad;
    ptrdiff_t *off = (ptrdiff_t *) R_alloc(md, sizeof(ptrdiff_t));   /* A packed: its columns */
    lmm_packed_offsets(md, off);
    for (int J = m->Ns; J < m->N; J++) {
        if ((J - m->Ns) % 256 == 0) R_CheckUserInterrupt();
        int dJ = m->doff[J - m->Ns], pJ = m->size[J];
        double *GJ = G[m->term[J]];
        for (int j = 0; j < pJ; j++) {                              /* Q's columns of J */
            double *Qj = q + (size_t) j * md;
            dense_B_column(m, Sd, cw, wd, dJ + j, Qj);
            for (int I = m->Ns; I < m->N; I++) {
                int dI = m->doff[I - m->Ns], pI = m->size[I];
                const double *TI = T[m->term[I]];
                if (pI == 1) Qj[dI] *= TI[0];
                else template_times(pI, TI, Qj + dI, 1);
            }
        }
        for (int i = 0; i < pJ; i++) {
            int col = dJ + i;
            const double *Acol = Ad + off[col];
            for (int j = 0; j < pJ; j++) {
                const double *Qc = q + (size_t) j * md;
                double s = 0;
                for (int a = 0; a < col; a++) s += Qc[a] * Ad[off[a] + col];     /* A[col, a] */
                for (int a = col; a < md; a++) s += Qc[a] * Acol[a];
                GJ[j + i * pJ] += s;
            }
        }
    }
}

/* The dense block when its Z nodes are all scalar, B = Sigma + c w w' with Sigma's lower
   triangle in Sd (not changed): C_JJ = sum_a d_a B_aJ A_aJ (d: the templates' scalars, 1 on the
   [X y] rows), one pass down the lower triangle, each entry (r, c), r > c, serving C of both
   its column's node and, when a Z node, its row's. */
static void dense_contract_scalar(const lmm_model *m, const double *Sd, double cw,
                                  const double *wd, const double *const *T, double *const *G)
{
    int md = m->md, Ns = m->Ns, dX = m->doff[m->N - Ns];
    double *d = (double *) R_alloc(md, sizeof(double)), *g = (double *) R_alloc(md, sizeof(double));
    for (int r = 0; r < md; r++) { d[r] = r < dX ? T[m->term[Ns + r]][0] : 1.0; g[r] = 0; }
    for (int col = 0; col < dX; col++) {
        if (col % 256 == 0) R_CheckUserInterrupt();
        const double *Ac = lmm_packed_col(m->Ad, md, col), *Sc = lmm_packed_col(Sd, md, col);
        double wc = cw * wd[col], gc = 0, dc = d[col];
        for (int r = col; r < md; r++) {
            double a = Ac[r];
            if (a == 0) continue;
            double v = (Sc[r] + wc * wd[r]) * a;                  /* B_rc A_rc */
            gc += d[r] * v;
            if (r > col && r < dX) g[r] += dc * v;
        }
        g[col] += gc;
    }
    for (int r = 0; r < dX; r++) G[m->term[Ns + r]][0] += g[r];
}

/* Sigma of the dense block's leading n x n (Omega_S's part of it), its lower triangle, packed
   like Ld: small blocks by LAPACK's dpotri on a copy (no workspace; the leading n x n lies in
   the first panel, plain with leading dimension md), large ones by the threaded
   dense_inverse.c. */
#define DENSE_SMALL 48
static void dense_sigma(const lmm_model *m, int n, double *Sd)
{
    int md = m->md, info = 0;
    if (n <= 0) return;
    if (n > DENSE_SMALL) {
        lmm_dense_inverse_lower(n, lmm_dmat_packed(m->Ld, md), lmm_dmat_packed(Sd, md));
        return;
    }
    for (int c = 0; c < n; c++)
        for (int r = c; r < n; r++) Sd[r + (size_t) c * md] = m->Ld[r + (size_t) c * md];
    F77_CALL(dpotri)("L", &n, Sd, &md, &info FCONE);
}

/* Row x of block (I, J) of the packed Md, I > J, <- (T_J row')': the row times T_J' */
static void row_times(const lmm_model *m, const double *TJ, double *Md, int I, int J, int x,
                      double *v)
{
    int md = m->md, pJ = m->size[J], dI = m->doff[I - m->Ns], dJ = m->doff[J - m->Ns];
    for (int y = 0; y < pJ; y++) v[y] = lmm_packed_col(Md, md, dJ + y)[dI + x];
    template_times(pJ, TJ, v, 1);
    for (int y = 0; y < pJ; y++) lmm_packed_col(Md, md, dJ + y)[dI + x] = v[y];
}

/* M = T B T' on L's pattern, in place (the sparse blocks Mx; the dense block Md as residual.h
   says: packed lower triangle and the diagonal blocks' full squares): block (I, J) becomes
   T_I B_IJ T_J' (node N's template is the identity), in the order of the products of a full
   md x md Md scaled node by node -- rows of node I by T_I, then its columns by T_I', for
   I = Ns, Ns + 1, ..: T_I (B_IJ T_J') below the diagonal, (T_I B_II) T_I' on it. */
static void form_M(const lmm_model *m, const double *const *T, double *Mx, double *Md)
{
    for (int J = 0; J < m->Ns; J++) {
        int pJ = m->size[J];
        const double *TJ = T[m->term[J]];
        for (int e = m->Lp[J] - 1; e < m->Lp[J + 1]; e++) {           /* e = Lp[J] - 1: diagonal */
            int I = e < m->Lp[J] ? J : m->Li[e], pI = m->size[I];
            double *B = Mx + (e < m->Lp[J] ? m->Ldiag[J] : m->Loff[e]);
            const double *TI = T[m->term[I]];
            for (int b = 0; b < pJ; b++) template_times(pI, TI, B + (size_t) b * pI, 1);
            for (int a = 0; a < pI; a++) template_times(pJ, TJ, B + a, pI);
        }
    }
    int md = m->md;
    double *v = (double *) R_alloc(m->size_max, sizeof(double));
    for (int J = m->Ns; J < m->N; J++) {
        int dJ = m->doff[J - m->Ns], pJ = m->size[J];
        const double *TJ = T[m->term[J]];
        double *D = lmm_md_diag(m, Md, J);                             /* (T_J B_JJ) T_J' */
        for (int b = 0; b < pJ; b++) template_times(pJ, TJ, D + (size_t) b * pJ, 1);
        for (int a = 0; a < pJ; a++) template_times(pJ, TJ, D + a, pJ);
        for (int c = 0; c < pJ; c++) {
            double *Mc = lmm_packed_col(Md, md, dJ + c) + dJ;
            for (int r = c; r < pJ; r++) Mc[r] = D[r + (size_t) c * pJ];
        }
        for (int I = J + 1; I <= m->N; I++) {                          /* T_I (B_IJ T_J') */
            int dI = m->doff[I - m->Ns], pI = m->size[I];
            const double *TI = T[m->term[I]];
            for (int x = 0; x < pI; x++) row_times(m, TJ, Md, I, J, x, v);
            if (TI)
                for (int c = 0; c < pJ; c++)
                    template_times(pI, TI, lmm_packed_col(Md, md, dJ + c) + dI, 1);
        }
    }
}

/* Md = B = Sigma_DD + c w_d w_d' (residual.h's layout; B_ab = Sigma_ab + c w_a w_b, a the row,
   as the full matrix was formed column by column) */
static void dense_B_into_M(const lmm_model *m, const double *Sd, double c, const double *wd,
                           double *Md)
{
    int md = m->md;
    for (int b = 0; b < md; b++) {
        const double *Sb = lmm_packed_col(Sd, md, b);
        double *Mb = lmm_packed_col(Md, md, b);
        for (int a = b; a < md; a++) Mb[a] = Sb[a] + c * wd[a] * wd[b];
    }
    for (int J = m->Ns; J <= m->N; J++) {
        int dJ = m->doff[J - m->Ns], pJ = m->size[J];
        double *D = lmm_md_diag(m, Md, J);
        for (int y = 0; y < pJ; y++)
            for (int x = 0; x < pJ; x++) {
                int a = dJ + x, b = dJ + y;
                D[x + (size_t) y * pJ] = lmm_packed_sym(Sd, md, a, b) + c * wd[a] * wd[b];
            }
    }
}

/* Zero the packed lower triangle S (order md) outside its leading n x n (which the caller
   fills). */
static void zero_outside(int md, int n, double *S)
{
    for (int c = 0; c < md; c++) {
        int r0 = c < n ? n : c;
        if (r0 < md) memset(lmm_packed_col(S, md, c) + r0, 0, (size_t) (md - r0) * sizeof(double));
    }
}

/* Sigma = Omega_S^{-1} on L's pattern (S: the Z nodes and node N's first nl rows): the dense
   block's inverse, then the sparse columns right to left.  Sx, Sd, P zeroed by the caller; W
   and V scratch of max_column_rows x size_max and size_max^2. */
static void selected_inverse(const lmm_model *m, int nl, double *Sx, double *Sd, double *P,
                             double *W, double *V)
{
    dense_sigma(m, m->doff[m->N - m->Ns] + nl, Sd);
    lmm_dense_schur_products(m, m->doff[m->N - m->Ns] + nl, Sd, P);   /* P = Sigma_DD L_DJ */
    for (int J = m->Ns - 1; J >= 0; J--) {
        selinv_column(m, J, nl, Sx, Sd, P, W, V);
        lmm_work(lmm_column_work(m, J));             /* interrupt.c */
    }
}

/* The selected inverse of Omega_S at the current factor, with its own scratch (condvar.c):
   Sx (nLx) and Sd (lmm_packed_len(md)) are overwritten; Sd holds the dense block's lower
   triangle, packed (dense_packed.h). */
void lmm_selected_inverse(const lmm_model *m, int nl, double *Sx, double *Sd)
{
    size_t nx = m->nLx + 1, pmax = m->size_max;
    double *P = (double *) R_alloc(nx, sizeof(double));
    double *W = (double *) R_alloc((size_t) max_column_rows(m) * pmax + 1, sizeof(double));
    double *V = (double *) R_alloc(pmax * pmax, sizeof(double));
    memset(Sx, 0, m->nLx * sizeof(double));
    memset(P, 0, m->nLx * sizeof(double));
    memset(Sd, 0, lmm_packed_len(m->md) * sizeof(double));
    selected_inverse(m, nl, Sx, Sd, P, W, V);
}

/* The gradient at the current factor (m->factored): grad[ntheta]; with Mx (nLx) and Md
   (lmm_md_len, residual.h), also M = dcrit/dA = T B T' on L's pattern.  One workspace,
   carved; Sigma_DD packed in it (dense_packed.h). */
static void gradient_at_factor(lmm_model *m, const double *theta, int REML, double *grad,
                               double *Mx, double *Md)
{
    int N = m->N, Ns = m->Ns, md = m->md, p = m->p, k = m->k, nl = REML ? p : 0;
    int dX = m->doff[N - Ns], pmax = m->size_max;
    size_t nT = 0;
    for (int t = 0; t < k; t++) nT += (size_t) m->pt[t] * m->pt[t];
    size_t nw = (size_t) m->q + p + 1, nx = m->nLx + 1, nd = lmm_packed_len(md) + 1;
    size_t nW = (size_t) max_column_rows(m) * pmax + 1, nv = (size_t) pmax * pmax;
    double *ws = lmm_workspace(m, 0, nw + 2 * nx + nd + nW + nv + 2 * nT);
    double *w = ws, *Sx = w + nw, *P = Sx + nx, *Sd = P + nx, *W = Sd + nd, *V = W + nW;
    double *Tx = V + nv, *Gx = Tx + nT;
    int *woff = (int *) R_alloc(N + 1, sizeof(int));
    const double **T = (const double **) R_alloc(2 * (k + 1), sizeof(double *));
    double **G = (double **) (T + k + 1);
    /* w = [u; beta; -1] in node order, and c = (n - p) / r^2 or n / r^2 */
    woff[0] = 0;
    for (int J = 0; J < N; J++) woff[J + 1] = woff[J] + m->size[J];
    lmm_solve(m, w, w + m->q);
    w[m->q + p] = -1.0;
    double r = lmm_packed_col(m->Ld, md, dX + p)[dX + p];
    double c = (REML ? m->n - p : m->n) / (r * r);
    /* Sigma = Omega_S^{-1} on L's pattern */
    memset(Sx, 0, 2 * nx * sizeof(double));                        /* Sx, P */
    zero_outside(md, dX + nl, Sd);          /* Sd: dense_sigma sets its leading square */
    selected_inverse(m, nl, Sx, Sd, P, W, V);                       /* Sd: lower triangle */
    int scalar = !Mx && dense_scalar(m);   /* one pass down the dense block's lower triangle */
    add_outer(m, c, w, woff, Sx);                                   /* B = Sigma + c w w' */
    /* templates and the per-term accumulators G_t */
    memset(Gx, 0, nT * sizeof(double));
    for (int t = 0, o = 0; t < k; o += m->pt[t] * m->pt[t], t++) {
        lmm_template(m, t, theta, Tx + o);
        T[t] = Tx + o;
        G[t] = Gx + o;
    }
    T[k] = NULL;
    G[k] = NULL;
    if (Mx) {                                                       /* M = T B T' */
        memcpy(Mx, Sx, m->nLx * sizeof(double));
        dense_B_into_M(m, Sd, c, w + woff[Ns], Md);
        form_M(m, T, Mx, Md);
    }
    for (int J = 0; J < Ns; J++) {                                  /* the sparse columns */
        lmm_work(lmm_column_work(m, J));
        block_contract(m, J, J, Sx + m->Ldiag[J], m->Ax + m->Ldiag[J], m->size[J], T, G, V);
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++)
            block_contract(m, m->Li[e], J, Sx + m->Loff[e], m->Ax + m->Loff[e], m->size[m->Li[e]],
                           T, G, V);
    }
    if (scalar) dense_contract_scalar(m, Sd, c, w + woff[Ns], T, G);
    else dense_contract(m, Sd, c, w + woff[Ns], T, G,
                        (double *) R_alloc((size_t) pmax * md + 1, sizeof(double)));
    for (int t = 0; t < k; t++) {                       /* d/d T_t[i, j] = 2 G_t[j, i], i >= j */
        int pt = m->pt[t];
        double *g = grad + m->theta0[t];
        for (int j = 0; j < pt; j++)
            for (int i = j; i < pt; i++) *g++ = 2 * G[t][j + i * pt];
    }
}

/* The criterion at theta and its gradient; returns lmm_factor's status (0: success; otherwise
   the criterion is +Inf and the gradient is not set). */
int lmm_criterion_gradient(lmm_model *m, const double *theta, int REML, double *crit,
                           double *grad)
{
    return lmm_criterion_gradient_M(m, theta, REML, crit, grad, NULL, NULL);
}

/* The same, and M = dcrit/dA on L's pattern when Mx is not NULL (residual.h). */
int lmm_criterion_gradient_M(lmm_model *m, const double *theta, int REML, double *crit,
                             double *grad, double *Mx, double *Md)
{
    lmm_crit_parts cp = lmm_criterion(m, theta, REML);
    *crit = cp.crit;
    if (!m->factored) return 1;
    const void *vmax = vmaxget();
    gradient_at_factor(m, theta, REML, grad, Mx, Md);
    vmaxset(vmax);
    return 0;
}
