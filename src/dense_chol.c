/*
 * dense_chol.c -- Cholesky factorisation A = L L' of a dense symmetric positive definite matrix
 * (lower triangle, column-major), for the dense trailing block of the penalised system.
 *
 * Blocked, right-looking: for each panel of nb columns
 *     L_kk = chol(A_kk);   L_rk = A_rk L_kk^{-T};   A_rr -= L_rk L_rk'   (the syrk update)
 * The update holds nearly all the flops; it runs on packed panels through an 8 x 4 register
 * tile, written with GCC/clang vector extensions, and compiled a second time for AVX2 + FMA,
 * chosen at run time when the processor has it.  With R's reference BLAS this is several times
 * faster than LAPACK's dpotrf; numerically it is the same algorithm (one more rounding order).
 */
#include "lmm.h"
#include <string.h>

#define NB 96          /* panel width */
#define MR 8           /* tile rows */
#define NR 4           /* tile columns */
#define PANEL_ROWS 64  /* rows of a panel chunk solved together */

typedef void (*tile_fn)(int, const double *, const double *, double *);   /* tile = sum a b' */
typedef void (*axpy_fn)(int, double, const double *, double *);          /* y -= a x */

/* Unblocked Cholesky of the kb x kb diagonal block (leading dimension lda).  Returns 0 or the
   1-based column where the block is not positive definite. */
static int chol_block(int kb, double *a, int lda, axpy_fn axpy)
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
static void panel_solve(int m, int kb, const double *L, int lda, double *P, axpy_fn axpy)
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

/* Pack the m x kb panel P into strips of w rows: strip s holds P[s*w + r, l] at [l*w + r]. */
static void pack(int m, int kb, const double *P, int lda, int w, double *out)
{
    int ns = (m + w - 1) / w;
    for (int s = 0; s < ns; s++) {
        double *o = out + (size_t) s * kb * w;
        for (int l = 0; l < kb; l++)
            for (int r = 0; r < w; r++) {
                int i = s * w + r;
                o[l * w + r] = i < m ? P[i + (size_t) l * lda] : 0.0;
            }
    }
}

#if defined(__GNUC__)
typedef double v4d __attribute__((vector_size(32)));

/* tile (MR x NR, column-major) = sum_l a[l*MR + 0..7] b[l*NR + 0..3]' */
#define TILE_KERNEL_BODY                                                             \
    v4d c0l = {0, 0, 0, 0}, c0h = c0l, c1l = c0l, c1h = c0l,                        \
        c2l = c0l, c2h = c0l, c3l = c0l, c3h = c0l;                                 \
    for (int l = 0; l < kb; l++) {                                                  \
        v4d al, ah;                                                                 \
        memcpy(&al, a + l * MR, sizeof al);                                         \
        memcpy(&ah, a + l * MR + 4, sizeof ah);                                     \
        const double *bl = b + l * NR;                                              \
        double b0 = bl[0], b1 = bl[1], b2 = bl[2], b3 = bl[3];                      \
        c0l += al * b0; c0h += ah * b0; c1l += al * b1; c1h += ah * b1;             \
        c2l += al * b2; c2h += ah * b2; c3l += al * b3; c3h += ah * b3;             \
    }                                                                               \
    memcpy(tile, &c0l, 32); memcpy(tile + 4, &c0h, 32);                             \
    memcpy(tile + 8, &c1l, 32); memcpy(tile + 12, &c1h, 32);                        \
    memcpy(tile + 16, &c2l, 32); memcpy(tile + 20, &c2h, 32);                       \
    memcpy(tile + 24, &c3l, 32); memcpy(tile + 28, &c3h, 32);

static void tile_generic(int kb, const double *a, const double *b, double *tile)
{
    TILE_KERNEL_BODY
}

#if defined(__x86_64__) && !defined(__clang__)
__attribute__((target("avx2,fma")))
static void tile_avx2(int kb, const double *a, const double *b, double *tile)
{
    TILE_KERNEL_BODY
}
#define HAVE_AVX2_KERNEL 1
#endif

#else  /* no vector extensions: plain loops */
static void tile_generic(int kb, const double *a, const double *b, double *tile)
{
    memset(tile, 0, MR * NR * sizeof(double));
    for (int l = 0; l < kb; l++)
        for (int c = 0; c < NR; c++)
            for (int r = 0; r < MR; r++) tile[r + c * MR] += a[l * MR + r] * b[l * NR + c];
}
#endif

/* y -= a x over m entries */
#if defined(__GNUC__)
#define AXPY_BODY                                                                   \
    int i = 0;                                                                      \
    for (; i + 4 <= m; i += 4) {                                                    \
        v4d xv, yv;                                                                 \
        memcpy(&xv, x + i, sizeof xv);                                              \
        memcpy(&yv, y + i, sizeof yv);                                              \
        yv -= xv * a;                                                               \
        memcpy(y + i, &yv, sizeof yv);                                              \
    }                                                                               \
    for (; i < m; i++) y[i] -= x[i] * a;
#else
#define AXPY_BODY for (int i = 0; i < m; i++) y[i] -= x[i] * a;
#endif

static void axpy_generic(int m, double a, const double *x, double *y)
{
    AXPY_BODY
}

#ifdef HAVE_AVX2_KERNEL
__attribute__((target("avx2,fma")))
static void axpy_avx2(int m, double a, const double *x, double *y)
{
    AXPY_BODY
}
#endif

typedef struct { tile_fn tile; axpy_fn axpy; } kernels;

static kernels choose_kernels(void)
{
    kernels k = {tile_generic, axpy_generic};
#ifdef HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k.tile = tile_avx2;
        k.axpy = axpy_avx2;
    }
#endif
    return k;
}

/* Trailing update C -= P P' on the lower triangle of the m x m block C (tiles that cross the
   diagonal are updated whole: the strict upper triangle is scratch). */
static void syrk_update(int m, int kb, const double *Pa, const double *Pb, double *C, int lda,
                        tile_fn kernel)
{
    double tile[MR * NR];
    for (int j0 = 0; j0 < m; j0 += NR) {
        const double *b = Pb + (size_t) (j0 / NR) * kb * NR;
        int nc = m - j0 < NR ? m - j0 : NR;
        for (int i0 = (j0 / MR) * MR; i0 < m; i0 += MR) {
            kernel(kb, Pa + (size_t) (i0 / MR) * kb * MR, b, tile);
            int nr = m - i0 < MR ? m - i0 : MR;
            for (int c = 0; c < nc; c++) {
                double *Cc = C + i0 + (size_t) (j0 + c) * lda;
                for (int r = 0; r < nr; r++) Cc[r] -= tile[r + c * MR];
            }
        }
    }
}

int lmm_dense_chol(int n, double *A, int lda)
{
    if (n <= 0) return 0;
    kernels kern = choose_kernels();
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
        pack(m, kb, P, lda, MR, Pa);
        pack(m, kb, P, lda, NR, Pb);
        syrk_update(m, kb, Pa, Pb, A + k1 + (size_t) k1 * lda, lda, kern.tile);
        if (k0 % (8 * NB) == 0) R_CheckUserInterrupt();
    }
    return 0;
}
