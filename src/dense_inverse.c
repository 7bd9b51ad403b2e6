/*
 * dense_inverse.c -- S = (L L')^{-1} from the lower Cholesky factor L of a dense block, for the
 * conditional variances (condvar.c): the job of LAPACK's dpotri, done in two blocked passes whose
 * bulk runs through the register tile of dense_kernel.c.
 *
 *   (1) W = L^{-1} (lower), forward substitution by row blocks of NB, right-looking: with
 *       B = I updated in place,
 *           W_KK = L_KK^{-1};   W_{K,<K} = W_KK B_{K,<K};   B_{>K,<=K} -= L_{>K,K} W_{K,<=K}
 *   (2) S = W' W = sum_K W_{K,<=K}' W_{K,<=K}, accumulated block row by block row of W into the
 *       lower triangle of tiles, then mirrored.
 * W lives in S's lower triangle; each block row of W is packed before S overwrites it, so the
 * scratch is two packed panels.  About n^3/3 multiply-adds in all, as dtrtri + dlauum.
 */
#include "lmm.h"
#include <string.h>

#define NB 96          /* block rows of W per step */
#define MR LMM_TILE_MR
#define NR LMM_TILE_NR

/* T = L_KK^{-1} (kb x kb, leading dimension kb, zero above the diagonal): column j solves
   L_KK x = e_j by forward substitution. */
static void tri_inverse(int kb, const double *L, int ldl, double *T, lmm_axpy_fn axpy)
{
    memset(T, 0, (size_t) kb * kb * sizeof(double));
    for (int j = 0; j < kb; j++) {
        double *x = T + (size_t) j * kb;
        x[j] = 1.0;
        for (int l = j; l < kb; l++) {
            const double *Ll = L + (size_t) l * ldl;
            x[l] /= Ll[l];                                     /* x_l = (e_j - ...)_l / L_ll */
            axpy(kb - l - 1, x[l], Ll + l + 1, x + l + 1);     /* x_{>l} -= L_{>l,l} x_l */
        }
    }
}

/* C (kb x n) = T B with T lower triangular, packed in MR-row strips (Pa), and B packed in
   NR-column strips (Pb): the tile of rows i0.. needs the inner entries l < i0 + MR only. */
static void tri_multiply(int kb, int n, const double *Pa, const double *Pb, double *C, int ldc,
                         lmm_tile_fn kernel)
{
    double tile[MR * NR];
    for (int j0 = 0; j0 < n; j0 += NR) {
        const double *b = Pb + (size_t) (j0 / NR) * kb * NR;
        int nc = n - j0 < NR ? n - j0 : NR;
        for (int i0 = 0; i0 < kb; i0 += MR) {
            int nl = i0 + MR < kb ? i0 + MR : kb, nr = kb - i0 < MR ? kb - i0 : MR;
            kernel(nl, Pa + (size_t) (i0 / MR) * kb * MR, b, tile);
            for (int c = 0; c < nc; c++) {
                double *Cc = C + i0 + (size_t) (j0 + c) * ldc;
                for (int r = 0; r < nr; r++) Cc[r] = tile[r + c * MR];
            }
        }
    }
}

/* (1) W = L^{-1} into the lower triangle of S (the strict upper triangle is left zero within the
   diagonal blocks and untouched elsewhere). */
static void lower_inverse(int n, const double *L, int ldl, double *S, int lds, lmm_kernels kern,
                          double *Pa, double *Pb, double *T)
{
    for (int c = 0; c < n; c++) memset(S + c + (size_t) c * lds, 0, (size_t) (n - c) * sizeof(double));
    for (int k0 = 0; k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb, m = n - k1;
        double *SK = S + k0;                                            /* block row K of S */
        tri_inverse(kb, L + k0 + (size_t) k0 * ldl, ldl, T, kern.axpy); /* W_KK */
        if (k0 > 0) {                                                   /* W_{K,<K} = W_KK B_{K,<K} */
            lmm_pack_rows(kb, kb, T, kb, MR, Pa);
            lmm_pack_cols(kb, k0, SK, lds, NR, Pb);
            tri_multiply(kb, k0, Pa, Pb, SK, lds, kern.tile);
        }
        for (int c = 0; c < kb; c++)
            memcpy(SK + (size_t) (k0 + c) * lds, T + (size_t) c * kb, (size_t) kb * sizeof(double));
        if (m > 0) {                                        /* B_{>K,<=K} -= L_{>K,K} W_{K,<=K} */
            lmm_pack_rows(m, kb, L + k1 + (size_t) k0 * ldl, ldl, MR, Pa);
            lmm_pack_cols(kb, k1, SK, lds, NR, Pb);
            lmm_tile_update(m, k1, kb, Pa, Pb, -1.0, 0, S + k1, lds, kern.tile);
        }
        if (k0 % (4 * NB) == 0) R_CheckUserInterrupt();
    }
}

/* (2) S = W' W from W in the lower triangle of S, block row of W by block row, in place: block
   row K is packed, then zeroed and S_{<=K,<=K} += W_{K,<=K}' W_{K,<=K}. */
static void cross_lower(int n, double *S, int lds, lmm_kernels kern, double *Pa, double *Pb)
{
    for (int k0 = 0; k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb;
        double *SK = S + k0;
        lmm_pack_cols(kb, k1, SK, lds, MR, Pa);
        lmm_pack_cols(kb, k1, SK, lds, NR, Pb);
        for (int c = 0; c < k1; c++) memset(SK + (size_t) c * lds, 0, (size_t) kb * sizeof(double));
        lmm_tile_update(k1, k1, kb, Pa, Pb, 1.0, 1, S, lds, kern.tile);
        if (k0 % (4 * NB) == 0) R_CheckUserInterrupt();
    }
    for (int c = 1; c < n; c++)                                         /* S_rc = S_cr, r < c */
        for (int r = 0; r < c; r++) S[r + (size_t) c * lds] = S[c + (size_t) r * lds];
}

void lmm_dense_inverse(int n, const double *L, int ldl, double *S, int lds)
{
    if (n <= 0) return;
    lmm_kernels kern = lmm_choose_kernels();
    double *Pa = (double *) R_alloc(((size_t) n + MR) * NB, sizeof(double));
    double *Pb = (double *) R_alloc(((size_t) n + NR) * NB, sizeof(double));
    double *T = (double *) R_alloc((size_t) NB * NB, sizeof(double));
    lower_inverse(n, L, ldl, S, lds, kern, Pa, Pb, T);
    cross_lower(n, S, lds, kern, Pa, Pb);
}

/* .Call test entry: (L L')^{-1} from a lower-triangular L (its strict upper triangle is ignored) */
SEXP lmm_inverse_dense(SEXP L)
{
    if (!isReal(L) || !isMatrix(L) || nrows(L) != ncols(L))
        error(_("L must be a square numeric matrix"));
    int n = nrows(L);
    for (int i = 0; i < n; i++)
        if (!(REAL(L)[i + (size_t) i * n] > 0))
            error(_("L must have a positive diagonal (element %d is not)"), i + 1);
    SEXP S = PROTECT(allocMatrix(REALSXP, n, n));
    lmm_dense_inverse(n, REAL(L), n, REAL(S), n);
    UNPROTECT(1); /* S */
    return S;
}
