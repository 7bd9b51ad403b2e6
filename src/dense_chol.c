/*
 * dense_chol.c -- Cholesky factorisation A = L L' of a dense symmetric positive definite matrix
 * (lower triangle, column-major), for the dense trailing block of the penalised system.
 *
 * Blocked, right-looking: for each panel of nb columns
 *     L_kk = chol(A_kk);   L_rk = A_rk L_kk^{-T};   A_rr -= L_rk L_rk'   (the syrk update)
 * The update holds nearly all the flops; it runs on packed panels through the 8 x 4 register
 * tile of dense_kernel.c (vector extensions, AVX2 + FMA chosen at run time).  With R's
 * reference BLAS this is several times faster than LAPACK's dpotrf; numerically it is the same algorithm (one more rounding order).
 */
#include "lmm.h"

#define NB 96          /* panel width */
#define MR LMM_TILE_MR
#define NR LMM_TILE_NR
#define PANEL_ROWS 64  /* rows of a panel chunk solved together */

/* Unblocked Cholesky of the kb x kb diagonal block (leading dimension lda).  Returns 0 or the
   1-based column where the block is not positive definite. */
static int chol_block(int kb, double *a, int lda, lmm_axpy_fn axpy)
{
    for (int j = 0; j < kb; j++) {
        double *aj = a + (size_t) j * lda;
        double d = aj[j];
        for (int k = 0; k < j; k++) d -= a[j + (size_t) k * lda] * a[j + (size_t) k * lda];
        if (!(d > 0)) return j + 1;
        double ljj = sqrt(d);
        aj[j] = ljj;
        for (int k = 0; k < j; k++)                       /* a(j+1:kb, j) -= a(j+1:kb, k) L_jk */
            axpy(kb - j - 1, a[j + (size_t) k * lda], a + (size_t) k * lda + j + 1, aj + j + 1);
        for (int i = j + 1; i < kb; i++) aj[i] /= ljj;
    }
    return 0;
}

/* Panel rows below the diagonal block: P <- P L_kk^{-T}, column by column, in chunks of rows
   small enough to stay in cache (m rows). */
static void panel_solve(int m, int kb, const double *L, int lda, double *P, lmm_axpy_fn axpy)
{
    for (int i0 = 0; i0 < m; i0 += PANEL_ROWS) {
        int mi = m - i0 < PANEL_ROWS ? m - i0 : PANEL_ROWS;
        double *Pi = P + i0;
        for (int c = 0; c < kb; c++) {
            double *pc = Pi + (size_t) c * lda;
            for (int l = 0; l < c; l++) {
                double lcl = L[c + (size_t) l * lda];
                if (lcl != 0) axpy(mi, lcl, Pi + (size_t) l * lda, pc);
            }
            double d = L[c + (size_t) c * lda];
            for (int i = 0; i < mi; i++) pc[i] /= d;
        }
    }
}

int lmm_dense_chol(int n, double *A, int lda)
{
    if (n <= 0) return 0;
    lmm_kernels kern = lmm_choose_kernels();
    double *Pa = (double *) R_alloc(((size_t) n + MR) * NB, sizeof(double));
    double *Pb = (double *) R_alloc(((size_t) n + NR) * NB, sizeof(double));
    for (int k0 = 0; k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb, m = n - k1;
        double *Akk = A + k0 + (size_t) k0 * lda;
        int info = chol_block(kb, Akk, lda, kern.axpy);
        if (info) return k0 + info;
        if (m == 0) break;
        double *P = A + k1 + (size_t) k0 * lda;
        panel_solve(m, kb, Akk, lda, P, kern.axpy);
        lmm_pack_rows(m, kb, P, lda, MR, Pa);
        lmm_pack_rows(m, kb, P, lda, NR, Pb);
        lmm_tile_update(m, m, kb, Pa, Pb, -1.0, 1, A + k1 + (size_t) k1 * lda, lda, kern.tile);
        if (k0 % (8 * NB) == 0) R_CheckUserInterrupt();
    }
    return 0;
}
