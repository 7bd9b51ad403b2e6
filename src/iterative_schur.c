/*
 * iterative_schur.c -- the head term eliminated exactly, and the block-diagonal preconditioner
 * of what conjugate gradients solve.
 *
 * Head.  The block of Omega_LL of one term (the "head" H, the CG-solved term with most columns)
 * is block diagonal, D = blockdiag(D_J), D_J = T' C_JJ T + I (p_H x p_H; no two levels of one
 * term share a row), so with R the other CG-solved columns
 *
 *     log|Omega_LL| = log|D| + log|S|,   S = Omega_RR - Omega_RH D^{-1} Omega_HR,
 *     Omega_LL^{-1} g:  x_R = S^{-1} (g_R - Omega_RH D^{-1} g_H),  x_H = D^{-1} (g_H - Omega_HR x_R).
 *
 * CG runs on S and only log|S| is estimated by the probes, on the R columns: for two crossed
 * terms the Hutchinson variance drops by an order of magnitude (the odd powers of the
 * off-diagonal block, which dominate it, cancel in S), and CG on S is the red-black
 * (Schur-complement) preconditioned CG of Pandolfi, Papaspiliopoulos & Zanella.  With a single
 * CG-solved term R is empty and log|Omega_LL| = log|D| is exact.
 * Products with S use Omega' twice (rows of H zero on input and output):
 *     S v = (Omega' [0; v])_R - (Omega' [D^{-1} (Omega' [0; v])_H; 0])_R.
 *
 * Preconditioner.  P = blockdiag(P_J) over the nodes J of R, P_J the p_J x p_J diagonal block
 * of S (of Omega_LL without a head): with G_h = T_H D_h^{-1} T_H' and Omega_Jh = T' C_Jh T_H,
 *
 *     P_J = T' (C_JJ - Q_J) T + I,   Q_J = sum_{h in H} C_Jh G_h C_hJ,
 *
 * held as P_J^{-1} and P_J = L_J L_J' (lower).  Each level's within-block correlation (a random
 * intercept and slope) is then in P, not left to the probes.  For the gradient
 * (iterative_criterion.c) the derivatives of P_J in the theta of J's own term (entry (r, c) of
 * T, dT = e_r e_c') and of the head's (entry (r, c) of T_H):
 *
 *     dP_J = dT' A T + T' A dT,  A = C_JJ - Q_J;      dP_J = -T' (sum_h C_Jh dG_h C_hJ) T,
 *     dG_h = dT_H Y' + Y dT_H' - Y dD_h Y',  Y = T_H D_h^{-1},  dD_h = dT_H' C_hh T_H + T_H' C_hh dT_H,
 *
 * and d log|D| = sum_h tr(D_h^{-1} dD_h).
 */
#include "iterative.h"
#include <string.h>

static double *dzero(size_t n)
{
    double *x = (double *) R_alloc(n ? n : 1, sizeof(double));
    memset(x, 0, (n ? n : 1) * sizeof(double));
    return x;
}

/* theta index (within the term) of template entry (r, c), r >= c (theta.c's order) */
static int entry(int p, int r, int c) { return c * p - c * (c - 1) / 2 + (r - c); }

/* C = A B for p x p column-major matrices (At: A transposed) */
static void mult(int p, int At, const double *A, const double *B, double *C)
{
    for (int c = 0; c < p; c++)
        for (int r = 0; r < p; r++) {
            double s = 0;
            for (int k = 0; k < p; k++) s += (At ? A[k + r * p] : A[r + k * p]) * B[k + c * p];
            C[r + c * p] = s;
        }
}

/* Head node J: D_J, its inverse, log|D_J|, G_J = Y T' (Y = T D^{-1}) and dG_J per head entry;
   d log|D_J| added to dlogD.  ws: 3 p^2 + p doubles. */
static void head_node(lmm_schur *s, int J, const double *T, double *G, double *dG, double *ws)
{
    const lmm_iter *it = s->it;
    int p = it->zoff[J + 1] - it->zoff[J], np = p * p;
    const double *C = it->CJ + it->cjoff[J];
    double *CT = ws, *D = ws + np, *Y = ws + 2 * np, *W = ws + 3 * np;
    double *Di = s->Dinv + it->cjoff[J];
    mult(p, 0, C, T, CT);
    mult(p, 1, T, CT, D);                                            /* T' C T */
    for (int a = 0; a < p; a++) D[a + a * p] += 1;
    double ld = lmm_small_chol(p, D);
    if (!R_FINITE(ld)) { s->failed = 1; return; }
    s->ldD += ld;
    lmm_small_chol_inverse(p, D, Di);
    for (int a = 0; a < p; a++)                                     /* Y = T D^{-1} */
        for (int b = 0; b < p; b++) {
            double v = 0;
            for (int k = 0; k < p; k++) v += T[a + k * p] * Di[k + b * p];
            Y[a + b * p] = v;
        }
    for (int a = 0; a < p; a++)                                     /* G = Y T' */
        for (int b = 0; b < p; b++) {
            double v = 0;
            for (int k = 0; k < p; k++) v += Y[a + k * p] * T[b + k * p];
            G[a + b * p] = v;
        }
    for (int c = 0; c < p; c++)
        for (int r = c; r < p; r++) {
            int e = entry(p, r, c);
            double tr = 0, *dg = dG + (size_t) e * np;
            for (int b = 0; b < p; b++) tr += Di[b + c * p] * CT[r + b * p];
            s->dlogD[e] += 2 * tr;                                  /* tr(D^{-1} dD) */
            for (int a = 0; a < p; a++) {                           /* W_a = sum_i Y_ai (C T)_ri */
                double v = 0;
                for (int i = 0; i < p; i++) v += Y[a + i * p] * CT[r + i * p];
                W[a] = v;
            }
            for (int b = 0; b < p; b++)
                for (int a = 0; a < p; a++)
                    dg[a + b * p] = (a == r ? Y[b + c * p] : 0.0) + (b == r ? Y[a + c * p] : 0.0)
                        - Y[a + c * p] * W[b] - W[a] * Y[b + c * p];
        }
}

/* The blocks C_Jh (p x ph, column-major) of the head nodes h next to node J: slot of h in
   list[0 .. return), blocks at acc + slot p ph */
static int gather(const lmm_schur *s, int J, int ph, int *mark, int *slot, int *list, double *acc)
{
    const lmm_iter *it = s->it;
    int z = it->zoff[J], p = it->zoff[J + 1] - z, nl = 0;
    for (int a = 0; a < p; a++)
        for (int e = it->Cp[z + a]; e < it->Cp[z + a + 1]; e++) {
            int i = it->Ci[e];
            if (!s->ish[i]) continue;
            int h = it->cnode[i];
            if (mark[h] != J) {
                mark[h] = J; slot[h] = nl; list[nl++] = h;
                memset(acc + (size_t) slot[h] * p * ph, 0, (size_t) p * ph * sizeof(double));
            }
            acc[(size_t) slot[h] * p * ph + a + (i - it->zoff[h]) * p] += it->Cx[e];
        }
    return nl;
}

/* Q += B M B' for B p x ph (column-major), M ph x ph */
static void add_sandwich(int p, int ph, const double *B, const double *M, double *Q)
{
    for (int a = 0; a < p; a++)
        for (int b = 0; b < p; b++) {
            double v = 0;
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < ph; j++) v += B[a + i * p] * M[i + j * ph] * B[b + j * p];
            Q[a + b * p] += v;
        }
}

/* CG-solved node J (not the head): P_J, its factor and inverse, and dP_J (own entries, then the
   head's); G, dG the head nodes' (by node - node0[head]); ws: (3 + nh) p^2 doubles */
static void solved_node(lmm_schur *s, int J, const double *T, const double *G, const double *dG,
                        int *mark, int *slot, int *list, double *acc, double *ws)
{
    const lmm_model *m = s->m;
    const lmm_iter *it = s->it;
    int z = it->zoff[J], p = it->zoff[J + 1] - z, np = p * p, nh = s->nh;
    int ph = s->head >= 0 ? m->pt[s->head] : 0, h0 = s->head >= 0 ? m->node0[s->head] : 0;
    double *A = ws, *AT = ws + np, *Q = ws + 2 * np, *Qe = ws + 3 * np, *P = s->Pl + it->cjoff[J];
    memcpy(A, it->CJ + it->cjoff[J], np * sizeof(double));
    memset(Qe, 0, (size_t) np * nh * sizeof(double));
    if (s->head >= 0) {
        int nl = gather(s, J, ph, mark, slot, list, acc);
        for (int l = 0; l < nl; l++) {
            const double *B = acc + (size_t) slot[list[l]] * p * ph;
            size_t hh = (size_t) (list[l] - h0) * ph * ph;
            memset(Q, 0, np * sizeof(double));
            add_sandwich(p, ph, B, G + hh, Q);
            for (int a = 0; a < np; a++) A[a] -= Q[a];               /* A = C_JJ - Q_J */
            for (int e = 0; e < nh; e++)
                add_sandwich(p, ph, B, dG + hh * nh + (size_t) e * ph * ph, Qe + (size_t) e * np);
        }
    }
    mult(p, 0, A, T, AT);
    mult(p, 1, T, AT, P);                                           /* P_J = T' A T + I */
    for (int a = 0; a < p; a++) P[a + a * p] += 1;
    double ld = lmm_small_chol(p, P);
    if (!R_FINITE(ld)) { s->failed = 1; return; }
    s->ldP += ld;
    lmm_small_chol_inverse(p, P, s->Pi + it->cjoff[J]);
    double *dP = s->dP + s->doff[J];
    for (int c = 0; c < p; c++)                                     /* own: dT' A T + T' A dT */
        for (int r = c; r < p; r++) {
            double *d = dP + (size_t) entry(p, r, c) * np;
            for (int b = 0; b < p; b++)
                for (int a = 0; a < p; a++)
                    d[a + b * p] = (a == c ? AT[r + b * p] : 0.0) + (b == c ? AT[r + a * p] : 0.0);
        }
    dP += (size_t) np * (p * (p + 1) / 2);
    for (int e = 0; e < nh; e++) {                                  /* head: -T' Q_e T */
        mult(p, 0, Qe + (size_t) e * np, T, AT);
        mult(p, 1, T, AT, dP + (size_t) e * np);
        for (int a = 0; a < np; a++) dP[(size_t) e * np + a] = -dP[(size_t) e * np + a];
    }
}

/* The head's D, the preconditioner P on the CG-solved nodes and their derivatives at the
   templates of lam (Omega': the tail's terms zeroed); workspace for nc right-hand sides.
   s->failed when a block is not positive definite. */
void lmm_schur_make(lmm_schur *s, const lmm_model *m, const lmm_lambda *lam, int nc)
{
    const lmm_iter *it = m->iter;
    int q = it->q, N = m->N, nb = it->cjoff[N];
    memset(s, 0, sizeof *s);
    s->m = m; s->it = it; s->lam = lam; s->head = it->head;
    s->nh = s->head >= 0 ? m->pt[s->head] * (m->pt[s->head] + 1) / 2 : 0;
    s->ish = (char *) R_alloc(q + 1, 1);
    s->isr = (char *) R_alloc(q + 1, 1);
    s->nodeh = (char *) R_alloc(N + 1, 1);
    s->noder = (char *) R_alloc(N + 1, 1);
    for (int J = 0; J < N; J++) {
        int head = m->term[J] == s->head, tail = it->spos[it->zoff[J]] >= 0;
        s->nodeh[J] = head;
        s->noder[J] = !head && !tail;
        for (int j = it->zoff[J]; j < it->zoff[J + 1]; j++) { s->ish[j] = head; s->isr[j] = s->noder[J]; }
    }
    s->Dinv = dzero(nb);
    s->Pi = dzero(nb);
    s->Pl = dzero(nb);
    s->dlogD = dzero(s->nh);
    s->doff = (int *) R_alloc(N + 1, sizeof(int));
    size_t nd = 0;
    for (int J = 0; J < N; J++) {
        int p = it->zoff[J + 1] - it->zoff[J];
        s->doff[J] = (int) nd;
        if (s->noder[J]) nd += (size_t) p * p * (p * (p + 1) / 2 + s->nh);
    }
    s->dP = dzero(nd);
    s->work = (double *) R_alloc(2 * (size_t) q * nc + 1, sizeof(double));
    s->owork = lam->diag ? NULL : (double *) R_alloc(2 * (size_t) q * nc + 1, sizeof(double));
    double *G = NULL, *dG = NULL;
    int *mark = NULL, *slot = NULL, *list = NULL, pmax = 1;
    double *acc = NULL;
    for (int u = 0; u < m->k; u++) if (m->pt[u] > pmax) pmax = m->pt[u];
    double *ws = (double *) R_alloc((size_t) (4 + s->nh) * pmax * pmax + pmax, sizeof(double));
    if (s->head >= 0) {
        int t = s->head, ph = m->pt[t], nhn = m->nlt[t];
        const double *T = lam->T + lam->toff[t];
        G = dzero((size_t) nhn * ph * ph);
        dG = dzero((size_t) nhn * ph * ph * (s->nh > 0 ? s->nh : 1));
        for (int J = m->node0[t]; J < m->node0[t + 1] && !s->failed; J++) {
            size_t hh = (size_t) (J - m->node0[t]) * ph * ph;
            head_node(s, J, T, G + hh, dG + hh * s->nh, ws);
        }
        mark = (int *) R_alloc(N + 1, sizeof(int));
        slot = (int *) R_alloc(N + 1, sizeof(int));
        list = (int *) R_alloc(N + 1, sizeof(int));
        for (int J = 0; J < N; J++) mark[J] = -1;
        acc = (double *) R_alloc((size_t) nhn * pmax * ph + 1, sizeof(double));
    }
    for (int J = 0; J < N && !s->failed; J++) {
        if (J % 4096 == 0) R_CheckUserInterrupt();
        if (s->noder[J]) solved_node(s, J, lam->T + lam->toff[m->term[J]], G, dG, mark, slot, list, acc, ws);
    }
}

/* W = S V in the columns cols (H rows of V zero; H rows of W set to 0) */
void lmm_schur_op(const void *ctx, int nc, const int *cols, int na, const double *V, double *W)
{
    const lmm_schur *s = (const lmm_schur *) ctx;
    int q = s->it->q;
    double *w1 = s->work, *t = s->work + (size_t) q * nc;
    lmm_iter_omega(s->it, s->lam, nc, cols, na, V, w1, s->owork, NULL);     /* Omega' [0; v] */
    for (int j = 0; j < q; j++)
        if (!s->ish[j]) for (int a = 0; a < na; a++) t[(size_t) j * nc + cols[a]] = 0;
    lmm_blocks_apply(s->m, s->Dinv, s->nodeh, nc, cols, na, w1, t);          /* [D^-1 w_H; 0] */
    lmm_iter_omega(s->it, s->lam, nc, cols, na, t, W, s->owork, s->isr);    /* (Omega' t)_R */
    for (int j = 0; j < q; j++) {
        double *Wj = W + (size_t) j * nc;
        const double *wj = w1 + (size_t) j * nc;
        if (s->isr[j]) for (int a = 0; a < na; a++) Wj[cols[a]] = wj[cols[a]] - Wj[cols[a]];
        else for (int a = 0; a < na; a++) Wj[cols[a]] = s->ish[j] ? 0.0 : wj[cols[a]];
    }
}

/* The reduced right-hand sides of the first nr columns: g_R - (Omega' [D^{-1} g_H; 0])_R, H rows
   0 (Bs = Bm elsewhere) */
void lmm_schur_rhs(const lmm_schur *s, int nc, int nr, const double *Bm, double *Bs)
{
    int q = s->it->q;
    size_t len = (size_t) q * nc;
    memcpy(Bs, Bm, len * sizeof(double));
    if (nr < 1) return;
    int *cols = (int *) R_alloc(nr, sizeof(int));
    for (int c = 0; c < nr; c++) cols[c] = c;
    double *t = s->work, *w = s->work + len;
    for (int j = 0; j < q; j++)
        if (!s->ish[j]) for (int c = 0; c < nr; c++) t[(size_t) j * nc + c] = 0;
    lmm_blocks_apply(s->m, s->Dinv, s->nodeh, nc, cols, nr, Bm, t);
    lmm_iter_omega(s->it, s->lam, nc, cols, nr, t, w, s->owork, s->isr);
    for (int j = 0; j < q; j++)
        for (int c = 0; c < nr; c++) {
            size_t jc = (size_t) j * nc + c;
            Bs[jc] = s->ish[j] ? 0.0 : s->isr[j] ? Bm[jc] - w[jc] : Bm[jc];
        }
}

/* The H rows of the solutions: x_H = D^{-1} (g_H - (Omega' [0; x_R])_H) for the first nr
   columns (g = Bm), x_H = -D^{-1} (Omega' [0; x_R])_H for the others (the probes' xh) */
void lmm_schur_complete(const lmm_schur *s, int nc, int nr, const double *Bm, double *X)
{
    int q = s->it->q;
    double *w = s->work, *v = s->work + (size_t) q * nc;
    int *cols = (int *) R_alloc(nc, sizeof(int));
    for (int c = 0; c < nc; c++) cols[c] = c;
    lmm_iter_omega(s->it, s->lam, nc, cols, nc, X, w, s->owork, s->ish);
    for (int j = 0; j < q; j++) {
        if (!s->ish[j]) continue;
        for (int c = 0; c < nc; c++) {
            size_t jc = (size_t) j * nc + c;
            v[jc] = (c < nr ? Bm[jc] : 0.0) - w[jc];
        }
    }
    lmm_blocks_apply(s->m, s->Dinv, s->nodeh, nc, cols, nc, v, X);
}

/* zh = [-D^{-1} Omega_HR zo; zo] in place (ZO q x K, H rows overwritten) */
void lmm_schur_extend(const lmm_schur *s, int K, double *ZO)
{
    int q = s->it->q;
    double *w = s->work;
    int *cols = (int *) R_alloc(K, sizeof(int));
    for (int c = 0; c < K; c++) cols[c] = c;
    for (int j = 0; j < q; j++) if (s->ish[j]) memset(ZO + (size_t) j * K, 0, K * sizeof(double));
    lmm_iter_omega(s->it, s->lam, K, cols, K, ZO, w, s->owork, s->ish);
    for (int j = 0; j < q; j++)
        if (s->ish[j]) for (int c = 0; c < K; c++) w[(size_t) j * K + c] = -w[(size_t) j * K + c];
    lmm_blocks_apply(s->m, s->Dinv, s->nodeh, K, cols, K, w, ZO);
}

/* The probes on the R nodes: P^{1/2} z = L_J z_J into columns off .. off + K - 1 of Bm (q x nc;
   other rows untouched) and zo = P^{-T/2} z = L_J^{-T} z_J into ZO (q x K; 0 off R) */
void lmm_schur_probes(const lmm_schur *s, int K, int nc, int off, double *Bm, double *ZO)
{
    const lmm_iter *it = s->it;
    memset(ZO, 0, (size_t) it->q * K * sizeof(double));
    for (int J = 0; J < s->m->N; J++) {
        if (!s->noder[J]) continue;
        int z = it->zoff[J], p = it->zoff[J + 1] - z;
        const double *L = s->Pl + it->cjoff[J];
        const signed char *Z = it->Z + (size_t) z * K;
        for (int k = 0; k < K; k++) {
            for (int r = 0; r < p; r++) {                           /* L z */
                double v = 0;
                for (int c = 0; c <= r; c++) v += L[r + c * p] * Z[(size_t) c * K + k];
                Bm[(size_t) (z + r) * nc + off + k] = v;
            }
            for (int r = p - 1; r >= 0; r--) {                      /* L' zo = z */
                double v = Z[(size_t) r * K + k];
                for (int c = r + 1; c < p; c++) v -= L[c + r * p] * ZO[(size_t) (z + c) * K + k];
                ZO[(size_t) (z + r) * K + k] = v / L[r + r * p];
            }
        }
    }
}
