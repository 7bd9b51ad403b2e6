/*
 * dense_kernel.c -- the register tile shared by the dense block's Cholesky (dense_chol.c) and
 * inverse (dense_inverse.c), with its run-time dispatch and the packing it reads.
 *
 * A product C += alpha A B' is cut into MR x NR tiles.  A is packed in strips of MR rows and B in
 * strips of NR rows, each strip holding its kb inner entries contiguously; the tile kernel keeps
 * the whole MR x NR tile in vector registers while it sums over the inner dimension.  It is
 * written with GCC/clang vector extensions and compiled a second time for AVX2 + FMA, chosen at
 * run time when the processor has it.
 */
#include "lmm.h"
#include <string.h>

#define MR LMM_TILE_MR
#define NR LMM_TILE_NR

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

lmm_kernels lmm_choose_kernels(void)
{
    lmm_kernels k = {tile_generic, axpy_generic};
#ifdef HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k.tile = tile_avx2;
        k.axpy = axpy_avx2;
    }
#endif
    return k;
}

/* Pack the m x kb matrix P into strips of w rows: strip s holds P[s*w + r, l] at [l*w + r]
   (rows past m are zero). */
void lmm_pack_rows(int m, int kb, const double *P, int lda, int w, double *out)
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

/* Pack the kb x n matrix P by columns into strips of w columns: strip s holds P[l, s*w + c] at
   [l*w + c] (columns past n are zero) -- the row strips of P'. */
void lmm_pack_cols(int kb, int n, const double *P, int lda, int w, double *out)
{
    int ns = (n + w - 1) / w;
    for (int s = 0; s < ns; s++) {
        double *o = out + (size_t) s * kb * w;
        int nc = n - s * w < w ? n - s * w : w;
        for (int c = 0; c < w; c++) {
            const double *Pc = P + (size_t) (s * w + c) * lda;
            if (c < nc) for (int l = 0; l < kb; l++) o[l * w + c] = Pc[l];
            else for (int l = 0; l < kb; l++) o[l * w + c] = 0.0;
        }
    }
}

/* C += alpha A B' for the m x n block C, A (m x kb) packed in MR-row strips, B (n x kb) in NR-row
   strips.  lower: only the tiles that reach the diagonal or below it (C square); tiles crossing
   the diagonal are updated whole, so there the strict upper triangle is scratch. */
void lmm_tile_update(int m, int n, int kb, const double *Pa, const double *Pb, double alpha,
                     int lower, double *C, int ldc, lmm_tile_fn kernel)
{
    double tile[MR * NR];
    for (int j0 = 0; j0 < n; j0 += NR) {
        const double *b = Pb + (size_t) (j0 / NR) * kb * NR;
        int nc = n - j0 < NR ? n - j0 : NR;
        for (int i0 = lower ? (j0 / MR) * MR : 0; i0 < m; i0 += MR) {
            kernel(kb, Pa + (size_t) (i0 / MR) * kb * MR, b, tile);
            int nr = m - i0 < MR ? m - i0 : MR;
            for (int c = 0; c < nc; c++) {
                double *Cc = C + i0 + (size_t) (j0 + c) * ldc;
                for (int r = 0; r < nr; r++) Cc[r] += alpha * tile[r + c * MR];
            }
        }
    }
}
