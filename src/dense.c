/*
 * dense.c -- small dense kernels on column-major blocks (node blocks are a few columns wide).
 */
#include "lmm.h"

/* a = L L' in place (lower triangle; the strict upper triangle is zeroed).  Returns 0, or the
   1-based column at which a is not positive definite. */
int lmm_chol_small(int n, double *a)
{
    for (int j = 0; j < n; j++) {
        double d = a[j + j * n];
        for (int k = 0; k < j; k++) d -= a[j + k * n] * a[j + k * n];   /* d = a_jj - sum L_jk^2 */
        if (!(d > 0)) return j + 1;
        double ljj = sqrt(d);
        a[j + j * n] = ljj;
        for (int i = j + 1; i < n; i++) {
            double s = a[i + j * n];
            for (int k = 0; k < j; k++) s -= a[i + k * n] * a[j + k * n];
            a[i + j * n] = s / ljj;                                       /* L_ij */
        }
        for (int i = 0; i < j; i++) a[i + j * n] = 0.0;
    }
    return 0;
}

/* B <- B L^{-T}: B is m x n (leading dimension m), L is n x n lower triangular. */
void lmm_trsm_right_lt(int m, int n, const double *L, double *B)
{
    for (int j = 0; j < n; j++) {                  /* column j of X = B L^{-T}: X L' = B */
        for (int k = 0; k < j; k++) {
            double l = L[j + k * n];
            if (l != 0) for (int i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;
        }
        double d = L[j + j * n];
        for (int i = 0; i < m; i++) B[i + j * m] /= d;
    }
}

/* C -= A B' : A is m x kk (ld m), B is n x kk (ld n), C is m x n with leading dimension ldc. */
void lmm_gemm_nt_sub(int m, int n, int kk, const double *A, const double *B, double *C, int ldc)
{
    for (int l = 0; l < kk; l++)
        for (int j = 0; j < n; j++) {
            double b = B[j + l * n];
            if (b == 0) continue;
            double *Cj = C + (size_t) j * ldc;
            const double *Al = A + (size_t) l * m;
            for (int i = 0; i < m; i++) Cj[i] -= Al[i] * b;
        }
}
