/*
 * residual_pieces.c -- A(rho) without a pass over the rows, for Markov (AR(1)-type) x varIdent
 * structures: a fixed combination of per-class cross-products.
 *
 * Rows of one class k share (has a predecessor, the time lag, their stratum, the predecessor's
 * stratum), hence their whitening coefficients (residual.c): whitened row i is
 *     g_i = alpha_k u_i + gamma_k v_i,    u_i = sqrt(w_i) raw_i,  v_i = sqrt(w_j) raw_j  (j = prev i)
 * with alpha_k = B_ii / delta_{s_i}, gamma_k = B_ij / delta_{s_j} (residual.c's Markov rows).  So
 *     A(rho) = sum_k w1_k P1_k + w2_k P2_k + w3_k P3_k,
 *     P1 = sum u u',  P2 = sum v v',  P3 = sum (u + v)(u + v)'     (rows of class k),
 *     w1 = alpha^2 - alpha gamma,  w2 = gamma^2 - alpha gamma,  w3 = alpha gamma
 * (polarisation: (u+v)(u+v)' = uu' + vv' + uv' + vu'), classes without a predecessor having P1
 * only.  The pieces cost 3 passes per class once; then a new rho costs O(K size of A), and the
 * gradient's tr(M dA/drho_j) = sum_k dw1 <M, P1_k> + dw2 <M, P2_k> + dw3 <M, P3_k> as well
 * (<M, P> the Frobenius product of the symmetric matrices, from the stored triangles).
 * log|V^{-1}| = sum log w_i + 2 sum_k count_k log alpha_k.
 */
#include "residual.h"
#include <math.h>
#include <string.h>

static R_xlen_t piece_length(const lmm_model *m)
{
    return m->nLx + (R_xlen_t) lmm_packed_len(m->md);      /* A's dense block packed */
}

static int npass(const lmm_pieces *pc, int k)
{
    return pc->has[k] ? 3 : 1;
}

/* Doubles the pieces would take. */
double lmm_pieces_size(const lmm_model *m, int K, const int *has)
{
    double total = 0;
    for (int k = 0; k < K; k++) total += (has[k] ? 3.0 : 1.0) * piece_length(m);
    return total;
}

/* The pieces: for each class and pass, A of the rows of that class with K's entries set to
   u (pass 1), v (pass 2) or both (pass 3); the other rows zero.  Leaves A invalid. */
void lmm_pieces_build(lmm_model *m, lmm_resid *rs)
{
    lmm_pieces *pc = rs->pieces;
    R_xlen_t len = piece_length(m), off = 0;
    pc->len = len;
    pc->P = R_Calloc((size_t) lmm_pieces_size(m, pc->K, pc->has) + 1, double);
    lmm_whitening W = rs->K;                       /* K's pattern, values per pass */
    W.Kx = (double *) R_alloc(rs->nnz + 1, sizeof(double));
    for (int k = 0; k < pc->K; k++)
        for (int pass = 1; pass <= npass(pc, k); pass++) {
            for (int i = 0; i < rs->n; i++) {
                int in = pc->cls[i] == k, e1 = W.Kp[i + 1] - 1;
                double wi = rs->sqrtw ? rs->sqrtw[i] : 1.0;
                W.Kx[e1] = (in && pass != 2) ? wi : 0.0;                       /* u */
                if (e1 > W.Kp[i]) {
                    int j = W.Kj[e1 - 1];
                    W.Kx[e1 - 1] = (in && pass != 1) ? (rs->sqrtw ? rs->sqrtw[j] : 1.0) : 0.0;
                }
            }
            lmm_crossprod(m, rs->refs, rs->Xt, rs->X, rs->y, &W);
            memcpy(pc->P + off, m->Ax, m->nLx * sizeof(double));
            memcpy(pc->P + off + m->nLx, m->Ad, lmm_packed_len(m->md) * sizeof(double));
            off += len;
        }
    double lw = 0;
    if (rs->sqrtw) for (int i = 0; i < rs->n; i++) lw += 2 * log(rs->sqrtw[i]);
    pc->logw0 = lw;
}

void lmm_pieces_free(lmm_pieces *pc)
{
    if (!pc) return;
    if (pc->P) R_Free(pc->P);
    if (pc->dcoef) R_Free(pc->dcoef);
    if (pc->alpha_gamma) R_Free(pc->alpha_gamma);
    R_Free(pc);
}

/* alpha_k, gamma_k (and their derivatives in rho: dcoef[(k nrho + j) 2 + {0, 1}]) of class k.
   1 if rho is outside the space. */
static int class_coef(const lmm_resid *rs, const lmm_pieces *pc, const double *rho, int k,
                      double *alpha, double *gamma, double *dcoef)
{
    int nr = rs->nrho, has_cor = rs->ncor > 0;
    int s = pc->s[k], sj = pc->sj[k], d0 = rs->ncor;      /* varIdent's log deltas: rho[d0 ..] */
    double inv_di = s > 0 ? exp(-rho[d0 + s - 1]) : 1.0, inv_dj = sj > 0 ? exp(-rho[d0 + sj - 1]) : 1.0;
    double bii = 1, bij = 0, dbii = 0, dbij = 0;
    if (has_cor && pc->has[k]) {
        double phi, r, dr;
        if (lmm_ar1_phi(&rs->cor, rho, &phi)) return 1;
        lmm_markov_r(&rs->cor, phi, rho[0], pc->lag[k], &r, &dr);
        if (!(1 - r * r > 0)) return 1;
        bii = 1 / sqrt(1 - r * r);
        bij = -r * bii;
        dbii = r * bii * bii * bii * dr;
        dbij = -bii * bii * bii * dr;
    }
    *alpha = bii * inv_di;
    *gamma = bij * inv_dj;
    if (!dcoef) return 0;
    for (int j = 0; j < nr; j++) {
        double da = 0, dg = 0;
        if (j < rs->ncor) { da = dbii * inv_di; dg = dbij * inv_dj; }
        else {
            if (s > 0 && j == d0 + s - 1) da = -*alpha;
            if (sj > 0 && j == d0 + sj - 1) dg = -*gamma;
        }
        dcoef[((size_t) k * nr + j) * 2] = da;
        dcoef[((size_t) k * nr + j) * 2 + 1] = dg;
    }
    return 0;
}

/* A(rho), log|V^{-1}| and, with deriv, its derivatives (rs->K.dlogdet) and the classes'
   coefficient derivatives; 1 if rho is outside the space (A untouched). */
int lmm_pieces_combine(lmm_model *m, lmm_resid *rs, const double *rho, int deriv)
{
    lmm_pieces *pc = rs->pieces;
    int K = pc->K, nr = rs->nrho;
    double *al = (double *) R_alloc(2 * K, sizeof(double)), *ga = al + K;
    if (deriv && !pc->dcoef) pc->dcoef = R_Calloc((size_t) K * nr * 2 + 1, double);
    for (int k = 0; k < K; k++)
        if (class_coef(rs, pc, rho, k, al + k, ga + k, deriv ? pc->dcoef : NULL)) return 1;
    R_xlen_t len = pc->len, off = 0;
    memset(m->Ax, 0, m->nLx * sizeof(double));
    R_xlen_t nd = (R_xlen_t) lmm_packed_len(m->md);
    memset(m->Ad, 0, nd * sizeof(double));
    for (int k = 0; k < K; k++) {
        double a = al[k], g = ga[k];
        double w[3] = {pc->has[k] ? a * a - a * g : a * a, g * g - a * g, a * g};
        for (int pass = 0; pass < npass(pc, k); pass++, off += len) {
            const double *P = pc->P + off;
            for (R_xlen_t e = 0; e < m->nLx; e++) m->Ax[e] += w[pass] * P[e];
            const double *Pd = P + m->nLx;
            for (R_xlen_t e = 0; e < nd; e++) m->Ad[e] += w[pass] * Pd[e];
        }
    }
    double ld = pc->logw0;
    for (int k = 0; k < K; k++) ld += 2.0 * pc->cnt[k] * log(fabs(al[k]));
    m->sumlogw = rs->K.logdet = ld;
    m->factored = 0;
    if (deriv)
        for (int j = 0; j < nr; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += 2.0 * pc->cnt[k] * pc->dcoef[((size_t) k * nr + j) * 2] / al[k];
            rs->K.dlogdet[j] = s;
        }
    if (!pc->alpha_gamma) pc->alpha_gamma = R_Calloc(2 * K + 1, double);
    memcpy(pc->alpha_gamma, al, 2 * K * sizeof(double));
    return 0;
}

/* <M, P> for symmetric M (sparse blocks Mx as L's pattern, dense Md packed) and P stored as A is
   (sparse blocks full, the dense block's lower triangle packed) */
static double frobenius(const lmm_model *m, const double *Mx, const double *Md, const double *P)
{
    double s = 0;
    for (int J = 0; J < m->Ns; J++) {
        int pJ = m->size[J];
        for (int e = m->Lp[J] - 1; e < m->Lp[J + 1]; e++) {           /* e = Lp[J] - 1: diagonal */
            int diag = e < m->Lp[J], I = diag ? J : m->Li[e];
            R_xlen_t o = diag ? m->Ldiag[J] : m->Loff[e], cnt = (R_xlen_t) m->size[I] * pJ;
            double b = 0;
            for (R_xlen_t x = 0; x < cnt; x++) b += Mx[o + x] * P[o + x];
            s += diag ? b : 2 * b;
        }
    }
    int md = m->md;
    const double *Pd = P + m->nLx;
    for (int c = 0; c < md; c++) {                     /* both packed (dense_packed.h) */
        const double *Mc = lmm_packed_col(Md, md, c), *Pc = lmm_packed_col(Pd, md, c);
        s += Mc[c] * Pc[c];
        for (int r = c + 1; r < md; r++) s += 2 * Mc[r] * Pc[r];
    }
    return s;
}

/* out[j] = tr(M dA/drho_j) from the pieces (after lmm_pieces_combine with deriv). */
void lmm_pieces_contract(const lmm_model *m, const lmm_resid *rs, const double *Mx,
                         const double *Md, double *out)
{
    const lmm_pieces *pc = rs->pieces;
    int K = pc->K, nr = rs->nrho;
    const double *al = pc->alpha_gamma, *ga = al + K;
    for (int j = 0; j < nr; j++) out[j] = 0;
    R_xlen_t off = 0;
    for (int k = 0; k < K; k++) {
        double ip[3] = {0, 0, 0};
        for (int pass = 0; pass < npass(pc, k); pass++, off += pc->len)
            ip[pass] = frobenius(m, Mx, Md, pc->P + off);
        double a = al[k], g = ga[k];
        for (int j = 0; j < nr; j++) {
            double da = pc->dcoef[((size_t) k * nr + j) * 2], dg = pc->dcoef[((size_t) k * nr + j) * 2 + 1];
            double dag = da * g + a * dg;
            if (!pc->has[k]) { out[j] += 2 * a * da * ip[0]; continue; }
            out[j] += (2 * a * da - dag) * ip[0] + (2 * g * dg - dag) * ip[1] + dag * ip[2];
        }
    }
}
