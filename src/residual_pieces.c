/*
 * residual_pieces.c -- A(rho) as a fixed combination of per-class cross-products.
 *
 * Rows of one class k share (has a predecessor, time lag, stratum, predecessor's stratum), so they
 * share the whitening coefficients alpha_k, gamma_k (residual.c): the whitened row is
 * g_i = alpha_k u_i + gamma_k v_i with u_i = sqrt(w_i) raw_i and v_i = sqrt(w_j) raw_j (j = prev(i)).
 * Hence
 *     A(rho) = sum_k alpha_k^2 U_k + gamma_k^2 V_k + alpha_k gamma_k C_k,
 *     U_k = sum u u',  V_k = sum v v',  C_k = sum (u v' + v u')        (rows of class k),
 * and a new rho costs O(size of A) instead of a pass over the data.  The pieces come from
 * lmm_crossprod by polarisation: P1 = U, P2 = V, P3 = sum (u + v)(u + v)' = U + V + C, so
 *     A(rho) = sum_k (alpha^2 - alpha gamma) P1 + (gamma^2 - alpha gamma) P2 + alpha gamma P3.
 * Classes without a predecessor have gamma = 0 and only P1.
 */
#include "residual_legacy.h"
#include <string.h>

static R_xlen_t piece_length(const lmm_model *m)
{
    return m->nLx + (R_xlen_t) m->md * m->md;
}

/* Doubles the pieces would take. */
double lmm_resid_pieces_size(const lmm_model *m, int K, const int *has_prev)
{
    double total = 0;
    for (int k = 0; k < K; k++) total += (has_prev[k] ? 3.0 : 1.0) * piece_length(m);
    return total;
}

/* The pieces: a list of K numeric vectors, class k's holding P1 (and P2, P3) end to end. */
SEXP lmm_resid_pieces(lmm_model *m, const int *const *refs, const double *const *Xt,
                      const double *X, const double *y, const double *sqrtw, const int *prev,
                      const int *cls, int K, const int *has_prev)
{
    int n = m->n;
    R_xlen_t len = piece_length(m);
    double *a = (double *) R_alloc(n, sizeof(double)), *c = (double *) R_alloc(n, sizeof(double));
    SEXP pieces = PROTECT(allocVector(VECSXP, K));
    for (int k = 0; k < K; k++) {
        int npass = has_prev[k] ? 3 : 1;
        SET_VECTOR_ELT(pieces, k, allocVector(REALSXP, npass * len));
        double *P = REAL(VECTOR_ELT(pieces, k));
        for (int pass = 1; pass <= npass; pass++) {
            for (int i = 0; i < n; i++) {
                int in = cls[i] == k;
                a[i] = (in && pass != 2) ? 1.0 : 0.0;                        /* u_i */
                c[i] = (in && pass != 1 && prev[i] >= 0) ?
                    (sqrtw ? sqrtw[prev[i]] : 1.0) : 0.0;                    /* v_i */
            }
            const void *vmax = vmaxget();
            lmm_crossprod(m, refs, Xt, X, y, sqrtw, prev, a, c);
            vmaxset(vmax);
            double *dst = P + (pass - 1) * len;
            memcpy(dst, m->Ax, m->nLx * sizeof(double));
            memcpy(dst + m->nLx, m->Ad, (size_t) m->md * m->md * sizeof(double));
        }
    }
    UNPROTECT(1); /* pieces */
    return pieces;
}

/* dst[0 .. cnt) = sum_k of the pieces' entries off .. off + cnt, weighted by alpha_k, gamma_k. */
static void combine_segment(double *dst, R_xlen_t off, R_xlen_t cnt, R_xlen_t len, SEXP pieces,
                            const double *alpha, const double *gamma, const int *has_prev)
{
    memset(dst, 0, cnt * sizeof(double));
    for (int k = 0; k < LENGTH(pieces); k++) {
        const double *P1 = REAL(VECTOR_ELT(pieces, k)) + off;
        double al = alpha[k], ga = gamma[k];
        if (!has_prev[k]) {
            double w1 = al * al;
            for (R_xlen_t e = 0; e < cnt; e++) dst[e] += w1 * P1[e];
            continue;
        }
        double w1 = al * al - al * ga, w2 = ga * ga - al * ga, w3 = al * ga;
        const double *P2 = P1 + len, *P3 = P1 + 2 * len;
        for (R_xlen_t e = 0; e < cnt; e++) dst[e] += w1 * P1[e] + w2 * P2[e] + w3 * P3[e];
    }
}

/* A(rho) from the pieces and the classes' coefficients; leaves sumlogw to the caller. */
void lmm_resid_combine(lmm_model *m, SEXP pieces, const double *alpha, const double *gamma,
                       const int *has_prev)
{
    R_xlen_t len = piece_length(m);
    combine_segment(m->Ax, 0, m->nLx, len, pieces, alpha, gamma, has_prev);
    combine_segment(m->Ad, m->nLx, (R_xlen_t) m->md * m->md, len, pieces, alpha, gamma, has_prev);
    m->factored = 0;
}
