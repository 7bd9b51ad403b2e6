/*
 * iterative_schur.c -- the head term eliminated exactly: for scalar terms, the block of Omega_LL
 * of one term (the "head" H, the largest of the CG-solved terms) is diagonal, D = diag(Omega_HH)
 * (no two levels of one term share a row), so with R the other CG-solved columns
 *
 *     log|Omega_LL| = log|D| + log|S|,   S = Omega_RR - Omega_RH D^{-1} Omega_HR,
 *     Omega_LL^{-1} g:  x_R = S^{-1} (g_R - Omega_RH D^{-1} g_H),  x_H = D^{-1} (g_H - Omega_HR x_R).
 *
 * CG runs on S (preconditioned by diag S) and only log|S| is estimated by the probes, on the R
 * columns: for two crossed terms the Hutchinson variance drops by an order of magnitude (the
 * odd powers of the off-diagonal block, which dominate it, cancel in S), and CG on S is the
 * red-black (Schur-complement) preconditioned CG of Pandolfi, Papaspiliopoulos & Zanella.
 * Products with S use Omega' twice (rows of H zero on input and output):
 *     S v = (Omega' [0; v])_R - (Omega' [D^{-1} (Omega' [0; v])_H; 0])_R.
 * For the gradient (iterative_criterion.c), with Yh = [-D^{-1} Omega_HR; I], dS = Yh' dOmega Yh,
 * so x' dS zo = xh' dOmega zh with xh = Yh x, zh = Yh zo, and (S zo)_R = (Omega' zh)_R; and
 *     S_jj = Omega_jj - sum_h Omega_hj^2 / D_h,
 *     dS_jj = dOmega_jj - sum_h (2 Omega_hj dOmega_hj / D_h - Omega_hj^2 dD_h / D_h^2).
 */
#include "iterative.h"
#include <string.h>

static int in_head(const lmm_schur *s, int j) { return s->ish[j]; }

/* diag(S) (as 1/S_jj in Pinv on R rows; 0 on H rows), D^{-1}, and dS_jj with respect to the
   theta of j's own term (dS_own) and of the head (dS_head).  Scalar terms. */
void lmm_schur_make(lmm_schur *s, const lmm_model *m, const lmm_lambda *lam, double *Pinv)
{
    const lmm_iter *it = m->iter;
    int q = it->q;
    const double *l = lam->diag;
    s->m = m; s->it = it; s->lam = lam; s->head = it->head;
    s->ish = (char *) R_alloc(q, 1);
    s->isr = (char *) R_alloc(q, 1);
    for (int j = 0; j < q; j++) {
        s->ish[j] = m->term[it->cnode[j]] == s->head;
        s->isr[j] = !s->ish[j] && it->spos[j] < 0;
    }
    s->Dinv = (double *) R_alloc(q, sizeof(double));
    s->dS_own = (double *) R_alloc(q, sizeof(double));
    s->dS_head = (double *) R_alloc(q, sizeof(double));
    for (int j = 0; j < q; j++) {
        s->Dinv[j] = in_head(s, j) ? 1 / (l[j] * l[j] * it->Cd[j] + 1) : 0.0;
        s->dS_own[j] = s->dS_head[j] = 0;
    }
    for (int j = 0; j < q; j++) {
        if (in_head(s, j) || it->spos[j] >= 0) continue;
        double S = l[j] * l[j] * it->Cd[j] + 1, dO = 2 * l[j] * it->Cd[j], dH = 0;
        for (int e = it->Cp[j]; e < it->Cp[j + 1]; e++) {
            int h = it->Ci[e];
            if (!in_head(s, h)) continue;
            double c = it->Cx[e], O = l[h] * c * l[j], Di = s->Dinv[h];
            S -= O * O * Di;
            dO -= 2 * O * c * l[h] * Di;                                 /* dOmega_hj / dtheta_j */
            dH -= 2 * O * c * l[j] * Di - O * O * 2 * l[h] * it->Cd[h] * Di * Di;
        }
        Pinv[j] = 1 / S;
        s->dS_own[j] = dO;
        s->dS_head[j] = dH;
    }
    for (int j = 0; j < q; j++) if (in_head(s, j)) Pinv[j] = 0;          /* CG leaves H at 0 */
}

/* W = S V in the columns cols (H rows of V zero; H rows of W set to 0) */
void lmm_schur_op(const void *ctx, int nc, const int *cols, int na, const double *V, double *W)
{
    const lmm_schur *s = (const lmm_schur *) ctx;
    int q = s->it->q;
    double *w1 = s->work, *t = s->work + (size_t) q * nc;
    lmm_iter_omega(s->it, s->lam, nc, cols, na, V, w1, NULL, NULL);     /* Omega' [0; v] */
    for (int j = 0; j < q; j++) {
        double dj = s->ish[j] ? s->Dinv[j] : 0.0, *tj = t + (size_t) j * nc;
        const double *wj = w1 + (size_t) j * nc;
        for (int a = 0; a < na; a++) tj[cols[a]] = dj * wj[cols[a]];
    }
    lmm_iter_omega(s->it, s->lam, nc, cols, na, t, W, NULL, s->isr);    /* (Omega' [D^-1 w_H; 0])_R */
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
        for (int c = 0; c < nr; c++) t[(size_t) j * nc + c] = in_head(s, j) ? s->Dinv[j] * Bm[(size_t) j * nc + c] : 0.0;
    lmm_iter_omega(s->it, s->lam, nc, cols, nr, t, w, NULL, s->isr);
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
    double *w = s->work;
    int *cols = (int *) R_alloc(nc, sizeof(int));
    for (int c = 0; c < nc; c++) cols[c] = c;
    lmm_iter_omega(s->it, s->lam, nc, cols, nc, X, w, NULL, s->ish);
    for (int j = 0; j < q; j++) {
        if (!in_head(s, j)) continue;
        for (int c = 0; c < nc; c++) {
            size_t jc = (size_t) j * nc + c;
            X[jc] = s->Dinv[j] * ((c < nr ? Bm[jc] : 0.0) - w[jc]);
        }
    }
}

/* zh = [-D^{-1} Omega_HR zo; zo] in place (ZO q x K, H rows overwritten) */
void lmm_schur_extend(const lmm_schur *s, int K, double *ZO)
{
    int q = s->it->q;
    double *w = s->work;
    int *cols = (int *) R_alloc(K, sizeof(int));
    for (int c = 0; c < K; c++) cols[c] = c;
    for (int j = 0; j < q; j++) if (in_head(s, j)) memset(ZO + (size_t) j * K, 0, K * sizeof(double));
    lmm_iter_omega(s->it, s->lam, K, cols, K, ZO, w, NULL, s->ish);
    for (int j = 0; j < q; j++)
        if (in_head(s, j))
            for (int c = 0; c < K; c++) ZO[(size_t) j * K + c] = -s->Dinv[j] * w[(size_t) j * K + c];
}
