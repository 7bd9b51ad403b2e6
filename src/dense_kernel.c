/*
 * dense_kernel.c -- the register tile shared by the dense block's Cholesky (dense_chol.c) and
 * inverse (dense_inverse.c): its run-time dispatch, the packing it reads, the tiled update
 * C += alpha A B' cut into chunks for a team of threads (dense_team.c), and the thread count.
 *
 * A product C += alpha A B' is cut into mr x nr tiles.  A is packed in strips of mr rows and B in
 * strips of nr rows, each strip holding its kb inner entries contiguously; the tile kernel keeps
 * the whole mr x nr tile in vector registers while it sums over the inner dimension, then adds
 * alpha times it into C.  The kernels are written once, with GCC/clang vector extensions, and
 * instantiated per instruction set; the widest the processor has is chosen at run time:
 *     AVX-512   24 x 8 tile: 3 x 8 = 24 accumulators of 8 doubles (32 registers)
 *     AVX2+FMA  12 x 4 tile: 3 x 4 = 12 accumulators of 4 doubles (16 registers)
 *     baseline   8 x 4 tile
 * enough independent accumulators to cover the latency of the fused multiply-adds.  In each
 * nr divides mr, so A packed in mr-row strips also serves as B (read with stride mr).
 */
#include "lmm.h"
#include <string.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
typedef double v4d __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))

/* C (MR x NR, leading dimension ldc) += alpha sum_l a[l*LDA + 0..MR-1] b[l*ldb + 0..NR-1]',
   MR = MV vectors of type V.  After full unrolling acc[][] lives in registers. */
#define TILE_BODY(V, MV, NR_, LDA)                                                            \
    V acc[MV][NR_];                                                                           \
    _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++)                                    \
        _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) acc[v][c] = (V) {0};             \
    for (int l = 0; l < kb; l++) {                                                            \
        V av[MV];                                                                             \
        const double *al = a + (size_t) l * (LDA), *bl = b + (size_t) l * ldb;                \
        _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) VLOAD(av[v], al + v * (sizeof(V) / 8)); \
        _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++) {                              \
            double bc = bl[c];                                                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) acc[v][c] += av[v] * bc;     \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++)                                    \
        _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) {                                \
            double *Cc = C + v * (sizeof(V) / 8) + (size_t) c * ldc;                          \
            V cv;                                                                             \
            VLOAD(cv, Cc);                                                                    \
            cv += acc[v][c] * alpha;                                                          \
            VSTORE(Cc, cv);                                                                   \
        }

/* Forward substitution on one packed strip x (MR rows, column l at x + l*MR) for its columns
   c0 .. c0+nc-1, whose products with the earlier columns have already been subtracted:
       x_c <- (x_c - sum_{c0 <= l < c} x_l L_cl) / L_cc,   with rdiag[c] = 1 / L_cc.
   A full block of NR columns is held in registers and solved right-looking. */
#define SOLVE_BODY(V, MV, NR_)                                                                \
    const int VL = sizeof(V) / 8, MR_ = MV * VL;                                              \
    double *xb = x + (size_t) c0 * MR_;                                                       \
    if (nc == NR_) {                                                                          \
        V xv[MV][NR_];                                                                        \
        _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++)                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++)                              \
                VLOAD(xv[v][c], xb + c * MR_ + v * VL);                                       \
        _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++) {                              \
            double r = rdiag[c0 + c];                                                         \
            _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) xv[v][c] *= r;               \
            _Pragma("GCC unroll 16") for (int e = c + 1; e < NR_; e++) {                      \
                double lec = L[c0 + e + (size_t) (c0 + c) * ldl];   /* x_e -= x_c L_ec */     \
                _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++) xv[v][e] -= xv[v][c] * lec; \
            }                                                                                 \
        }                                                                                     \
        _Pragma("GCC unroll 16") for (int c = 0; c < NR_; c++)                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < MV; v++)                              \
                VSTORE(xb + c * MR_ + v * VL, xv[v][c]);                                      \
    } else {                                                                                  \
        for (int c = 0; c < nc; c++) {                                                        \
            V xc[MV];                                                                         \
            for (int v = 0; v < MV; v++) VLOAD(xc[v], xb + c * MR_ + v * VL);                 \
            for (int l = 0; l < c; l++) {                                                     \
                double lcl = L[c0 + c + (size_t) (c0 + l) * ldl];                             \
                for (int v = 0; v < MV; v++) {                                                \
                    V xl;                                                                     \
                    VLOAD(xl, xb + l * MR_ + v * VL);                                         \
                    xc[v] -= xl * lcl;                                                        \
                }                                                                             \
            }                                                                                 \
            double r = rdiag[c0 + c];                                                         \
            for (int v = 0; v < MV; v++) { xc[v] *= r; VSTORE(xb + c * MR_ + v * VL, xc[v]); } \
        }                                                                                     \
    }

/* y -= a x over m entries */
#define AXPY_BODY(V)                                                                          \
    const int VL = sizeof(V) / 8;                                                             \
    int i = 0;                                                                                \
    for (; i + VL <= m; i += VL) {                                                            \
        V xv, yv;                                                                             \
        VLOAD(xv, x + i);                                                                     \
        VLOAD(yv, y + i);                                                                     \
        yv -= xv * a;                                                                         \
        VSTORE(y + i, yv);                                                                    \
    }                                                                                         \
    for (; i < m; i++) y[i] -= x[i] * a;

/* one set of kernels: tile MV vectors of V by NR_ columns, and the NR_ x NR_ tile (NR_ doubles
   are one vector V) reading A with stride lda, compiled with attribute ATTR */
#define KERNEL_SET(sfx, V, MV, NR_, ATTR)                                                     \
    ATTR static void tile_##sfx(int kb, const double *a, const double *b, int ldb,            \
                                double alpha, double *C, int ldc)                             \
    { TILE_BODY(V, MV, NR_, MV * (sizeof(V) / 8)) }                                           \
    ATTR static void band_##sfx(int kb, const double *a, int lda, const double *b, int ldb,   \
                                double alpha, double *C, int ldc) { TILE_BODY(V, 1, NR_, lda) } \
    ATTR static void solve_##sfx(int c0, int nc, const double *L, int ldl,                    \
                                 const double *rdiag, double *x) { SOLVE_BODY(V, MV, NR_) }   \
    ATTR static void axpy_##sfx(int m, double a, const double *x, double *y) { AXPY_BODY(V) }

KERNEL_SET(generic, v4d, 2, 4, )

#if defined(__x86_64__) && !defined(__clang__)
KERNEL_SET(avx2, v4d, 3, 4, __attribute__((target("avx2,fma"))))
KERNEL_SET(avx512, v8d, 3, 8, __attribute__((target("avx512f,avx2,fma"))))
#define HAVE_X86_KERNELS 1
#endif

#else  /* no vector extensions: plain loops, tile 8 x 4 */
#define GMR 8
#define GNR 4
static void tile_generic(int kb, const double *a, const double *b, int ldb, double alpha,
                         double *C, int ldc)
{
    double t[GMR * GNR] = {0};
    for (int l = 0; l < kb; l++)
        for (int c = 0; c < GNR; c++)
            for (int r = 0; r < GMR; r++) t[r + c * GMR] += a[l * GMR + r] * b[l * ldb + c];
    for (int c = 0; c < GNR; c++)
        for (int r = 0; r < GMR; r++) C[r + (size_t) c * ldc] += alpha * t[r + c * GMR];
}

static void band_generic(int kb, const double *a, int lda, const double *b, int ldb,
                         double alpha, double *C, int ldc)
{
    double t[GNR * GNR] = {0};
    for (int l = 0; l < kb; l++)
        for (int c = 0; c < GNR; c++)
            for (int r = 0; r < GNR; r++) t[r + c * GNR] += a[l * lda + r] * b[l * ldb + c];
    for (int c = 0; c < GNR; c++)
        for (int r = 0; r < GNR; r++) C[r + (size_t) c * ldc] += alpha * t[r + c * GNR];
}

static void solve_generic(int c0, int nc, const double *L, int ldl, const double *rdiag,
                          double *x)
{
    double *xb = x + (size_t) c0 * GMR;
    for (int c = 0; c < nc; c++) {
        for (int l = 0; l < c; l++) {
            double lcl = L[c0 + c + (size_t) (c0 + l) * ldl];
            for (int r = 0; r < GMR; r++) xb[c * GMR + r] -= xb[l * GMR + r] * lcl;
        }
        for (int r = 0; r < GMR; r++) xb[c * GMR + r] *= rdiag[c0 + c];
    }
}

static void axpy_generic(int m, double a, const double *x, double *y)
{
    for (int i = 0; i < m; i++) y[i] -= x[i] * a;
}
#endif

/* The widest kernels the processor supports, capped by option("lmmc.simd") ("avx512", "avx2"
   or "none"; for testing the narrower paths).  Master thread only (reads an R option). */
lmm_kernels lmm_choose_kernels(void)
{
    lmm_kernels k = {8, 4, tile_generic, band_generic, solve_generic, axpy_generic};
#ifdef HAVE_X86_KERNELS
    int cap = 2;                                  /* 0 none, 1 avx2, 2 avx512 */
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.simd"));
    if (isString(opt) && LENGTH(opt) == 1 && STRING_ELT(opt, 0) != NA_STRING) {
        const char *s = CHAR(STRING_ELT(opt, 0));
        cap = !strcmp(s, "none") ? 0 : !strcmp(s, "avx2") ? 1 : 2;
    }
    __builtin_cpu_init();
    if (cap >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        lmm_kernels k2 = {12, 4, tile_avx2, band_avx2, solve_avx2, axpy_avx2};
        k = k2;
    }
    if (cap >= 2 && __builtin_cpu_supports("avx512f")) {
        lmm_kernels k3 = {24, 8, tile_avx512, band_avx512, solve_avx512, axpy_avx512};
        k = k3;
    }
#endif
    return k;
}

/* Threads for a dense block of order n: option("lmmc.threads") if set (below 1 means 1), else 2,
   never more than the processors; 1 for small blocks, inside a parallel region or without
   OpenMP.  Master thread only (reads an R option). */
int lmm_dense_threads(int n)
{
#ifdef _OPENMP
    if (n < LMM_THREADS_MIN_ORDER || omp_in_parallel()) return 1;
    int t = 2;
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.threads"));
    if (opt != R_NilValue) {
        int v = Rf_asInteger(opt);
        t = (v == NA_INTEGER || v < 1) ? 1 : v;
    }
    int np = omp_get_num_procs(), lim = omp_get_thread_limit();
    if (t > np) t = np;
    if (t > lim) t = lim;
    return lmm_team_threads(t);
#else
    (void) n;
    return 1;
#endif
}

/* The dense block's backend: lmmc's own kernels (this file's tiles), or R's LAPACK (dpotrf,
   dpotri), which is faster where R is linked to an optimised BLAS (OpenBLAS, MKL, ...).
   option("lmmc.dense_backend"): "own", "lapack", or "auto" (the default), which takes what the
   R side found when the package was loaded (R/dense-backend.R). */
static int auto_lapack = 0;

/* .Call: set the choice "auto" makes (TRUE: LAPACK; NA leaves it); returns the previous one */
SEXP lmm_dense_backend_auto(SEXP lapack)
{
    int old = auto_lapack;
    if (!isLogical(lapack) || LENGTH(lapack) != 1) error(_("'lapack' must be TRUE, FALSE or NA"));
    if (LOGICAL(lapack)[0] != NA_LOGICAL) auto_lapack = LOGICAL(lapack)[0];
    return ScalarLogical(old);
}

static int forced = -1;     /* while timing: 0 own, 1 LAPACK */

/* 1 when the dense block goes to LAPACK.  Master thread only (reads an R option). */
int lmm_dense_lapack(void)
{
    if (forced >= 0) return forced;
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.dense_backend"));
    if (opt == R_NilValue) return auto_lapack;
    const char *s = (isString(opt) && LENGTH(opt) == 1 && STRING_ELT(opt, 0) != NA_STRING)
        ? CHAR(STRING_ELT(opt, 0)) : "";
    if (!strcmp(s, "own")) return 0;
    if (!strcmp(s, "lapack")) return 1;
    if (!strcmp(s, "auto")) return auto_lapack;
    error(_("option 'lmmc.dense_backend' must be \"auto\", \"own\" or \"lapack\""));
    return 0;
}

/* Scratch of the dense block's kernels that stays mapped between calls: each evaluation needs
   the same megabytes of panels and gathered columns, and fresh ones cost a page fault per 4 KB
   (measured: 10-15% of an InstEval fit went to page faults and zeroing).  One buffer per slot
   (lmm.h's lmm_scratch_slot), grown when needed; larger requests than SCRATCH_KEEP are R_alloc'ed
   for the call only.  Master thread only; the kernels using one slot never run nested. */
#define SCRATCH_KEEP ((size_t) 64 << 20)    /* bytes */
static double *scratch[LMM_SCRATCH_SLOTS];
static size_t scratch_len[LMM_SCRATCH_SLOTS];

double *lmm_scratch(int slot, size_t len)
{
    if (len < 1) len = 1;
    if (len * sizeof(double) > SCRATCH_KEEP) return (double *) R_alloc(len, sizeof(double));
    if (scratch_len[slot] < len) {
        if (scratch[slot]) R_Free(scratch[slot]);
        scratch[slot] = NULL;
        scratch_len[slot] = 0;
        scratch[slot] = R_Calloc(len, double);
        scratch_len[slot] = len;
    }
    return scratch[slot];
}

void lmm_scratch_free(void)
{
    for (int s = 0; s < LMM_SCRATCH_SLOTS; s++) {
        if (scratch[s]) R_Free(scratch[s]);
        scratch[s] = NULL;
        scratch_len[s] = 0;
    }
}

static double seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double) clock() / CLOCKS_PER_SEC;
#endif
}

/* The timing matrix of order n, A_ij = 1 / (1 + |i - j|) + n [i = j] (diagonally dominant),
   packed as the engine stores the dense block; then the seconds of its Cholesky factorisation and
   inverse (into S) by backend b (0 own, 1 LAPACK, -1 the current choice). */
static double time_chol_inverse(int n, int b, double *A, double *S)
{
    for (int c = 0; c < n; c++) {
        double *Ac = lmm_packed_col(A, n, c);
        for (int i = c; i < n; i++) Ac[i] = 1.0 / (1.0 + abs(i - c)) + (i == c ? n : 0);
    }
    forced = b;
    double t0 = seconds();
    int info = lmm_dense_chol(n, lmm_dmat_packed(A, n));
    if (!info) lmm_dense_inverse_lower(n, lmm_dmat_packed(A, n), lmm_dmat_packed(S, n));
    double t = seconds() - t0;
    forced = -1;
    if (info) error(_("internal error: timing matrix not positive definite"));
    return t;
}

/* .Call: seconds of a Cholesky factorisation and inverse of order n by each backend, c(own,
   LAPACK), the best of `reps`; for "auto" to see whether R's LAPACK is faster here. */
SEXP lmm_dense_backend_time(SEXP n_, SEXP reps_)
{
    int n = asInteger(n_), reps = asInteger(reps_);
    if (n == NA_INTEGER || n < 1 || n > 5000) error(_("'n' must be an order from 1 to 5000"));
    if (reps == NA_INTEGER || reps < 1) error(_("'reps' must be a positive count"));
    size_t len = lmm_packed_len(n);
    double *A = (double *) R_alloc(len, sizeof(double)), *S = (double *) R_alloc(len, sizeof(double));
    SEXP ans = PROTECT(allocVector(REALSXP, 2));
    for (int b = 0; b < 2; b++) {
        double best = R_PosInf;
        for (int r = 0; r < reps; r++) {
            double t = time_chol_inverse(n, b, A, S);
            if (t < best) best = t;
        }
        REAL(ans)[b] = best;
    }
    UNPROTECT(1); /* ans */
    return ans;
}

/* The rate of the dense block's work per evaluation, in "flop/s" of md^3 for a block of order md
   (factor md^3 / 3 and inverse 2 md^3 / 3), as the current backend and thread count run it:
   timed on an order of RATE_ORDER (best of 2, about 20 ms) the first time it is asked for with
   that backend and thread count (the team may run on one thread while the machine is busy), and
   kept.  For layout.c's message of the seconds per evaluation; a larger block runs the tiles
   at a higher rate, so the message errs long.  Master thread only. */
#define RATE_ORDER 768
#define RATE_THREADS 8         /* rates kept for 1 .. RATE_THREADS threads (more: the last) */
double lmm_dense_rate(void)
{
    static double rates[2][RATE_THREADS];        /* [LAPACK?][threads - 1]; 0: not timed */
    int th = lmm_dense_threads(RATE_ORDER), lap = lmm_dense_lapack() ? 1 : 0;
    double *rate = &rates[lap][(th < RATE_THREADS ? th : RATE_THREADS) - 1];
    if (*rate > 0) return *rate;
    size_t len = lmm_packed_len(RATE_ORDER);
    double *A = (double *) R_alloc(len, sizeof(double)), *S = (double *) R_alloc(len, sizeof(double));
    double t = R_PosInf;
    for (int r = 0; r < 2; r++) {
        double tr = time_chol_inverse(RATE_ORDER, -1, A, S);
        if (tr < t) t = tr;
    }
    double n = RATE_ORDER;
    *rate = n * n * n / (t > 1e-6 ? t : 1e-6);
    return *rate;
}

/* Pack the m x kb matrix P into strips of w rows: strip s holds P[s*w + r, l] at [l*w + r]
   (rows past m are zero). */
void lmm_pack_rows(int m, int kb, const double *P, int lda, int w, double *out)
{
    int ns = (m + w - 1) / w;
    for (int s = 0; s < ns; s++) lmm_pack_strip(m, kb, P, lda, w, s, out);
}

/* dst[0..w-1] = src[0..w-1], with the tile heights as fixed sizes (copied inline) */
static inline void copy_w(double *dst, const double *src, int w)
{
    switch (w) {
    case 24: memcpy(dst, src, 24 * sizeof(double)); break;
    case 12: memcpy(dst, src, 12 * sizeof(double)); break;
    case 8: memcpy(dst, src, 8 * sizeof(double)); break;
    case 4: memcpy(dst, src, 4 * sizeof(double)); break;
    default: memcpy(dst, src, (size_t) w * sizeof(double));
    }
}

#define PACK_AHEAD 8   /* columns read ahead when packing */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void) (p))
#endif

/* strip s alone of lmm_pack_rows() */
void lmm_pack_strip(int m, int kb, const double *P, int lda, int w, int s, double *out)
{
    double *o = out + (size_t) s * kb * w;
    int i0 = s * w, nr = m - i0 < w ? m - i0 : w;
    const double *Pi = P + i0;
    if (nr == w) {
        for (int l = 0; l < kb; l++) {
            const double *Pl = Pi + (size_t) l * lda;
            if (l + PACK_AHEAD < kb)              /* columns far apart: fetch ahead of use */
                for (int r = 0; r < w; r += 8) PREFETCH(Pl + (size_t) PACK_AHEAD * lda + r);
            copy_w(o + (size_t) l * w, Pl, w);
        }
        return;
    }
    for (int l = 0; l < kb; l++) {
        double *ol = o + (size_t) l * w;
        memcpy(ol, Pi + (size_t) l * lda, (size_t) nr * sizeof(double));
        memset(ol + nr, 0, (size_t) (w - nr) * sizeof(double));
    }
}

/* The inverse of lmm_pack_strip(): strip s back into rows s*w .. of P (rows below m dropped). */
void lmm_unpack_strip(int m, int kb, const double *in, int w, int s, double *P, int lda)
{
    const double *o = in + (size_t) s * kb * w;
    int i0 = s * w, nr = m - i0 < w ? m - i0 : w;
    double *Pi = P + i0;
    if (nr == w)
        for (int l = 0; l < kb; l++) copy_w(Pi + (size_t) l * lda, o + (size_t) l * w, w);
    else
        for (int l = 0; l < kb; l++)
            memcpy(Pi + (size_t) l * lda, o + (size_t) l * w, (size_t) nr * sizeof(double));
}

/* Column strip s (w columns) of the kb x n matrix P packed as a strip of w rows of P': it holds
   P[l, s*w + c] at [l*w + c] (columns past n are zero). */
void lmm_pack_col_strip(int kb, int n, const double *P, int lda, int w, int s, double *out)
{
    double *o = out + (size_t) s * kb * w;
    int nc = n - s * w < w ? n - s * w : w;
    for (int c = 0; c < w; c++) {
        const double *Pc = P + (size_t) (s * w + c) * lda;
        if (c < nc) for (int l = 0; l < kb; l++) o[l * w + c] = Pc[l];
        else for (int l = 0; l < kb; l++) o[l * w + c] = 0.0;
    }
}

/* C (nr x nc, nr <= mr, nc <= k->nr) += alpha a b' over kb inner entries (b with stride ldb):
   a full tile goes straight into C, an edge tile through a buffer. */
void lmm_tile(const lmm_kernels *k, int kb, const double *a, const double *b, int ldb,
              double alpha, double *C, int ldc, int nr, int nc)
{
    if (nr == k->mr && nc == k->nr) {
        k->tile(kb, a, b, ldb, alpha, C, ldc);
        return;
    }
    double t[LMM_TILE_MAX];
    memset(t, 0, sizeof t);
    k->tile(kb, a, b, ldb, 1.0, t, k->mr);
    for (int c = 0; c < nc; c++) {
        double *Cc = C + (size_t) c * ldc;
        for (int r = 0; r < nr; r++) Cc[r] += alpha * t[r + c * k->mr];
    }
}

/* Rows of C whose packed A stays in cache (about 1 MB of it) while the column strips pass. */
static int row_block(int kb, int mr)
{
    int mc = (131072 / (kb > 0 ? kb : 1)) / mr * mr;
    return mc < mr ? mr : mc;
}

/* C += alpha A B' for the m x n block C, A (m x kb) packed in mr-row strips, B (n x kb) in
   wb-row strips (wb = nr, or mr when B is A packed for the rows).  lower: only the tiles that
   reach the diagonal or below it (C square); tiles crossing the diagonal are updated whole, so
   there the strict upper triangle is scratch.  The work is cut into chunks, each a column strip
   of nr columns within a block of rows whose part of A stays in cache; a chunk's tiles are
   computed the same way whoever runs it and in whatever order. */
lmm_update lmm_update_make(const lmm_kernels *k, int m, int n, int kb, const double *Pa,
                           const double *Pb, int wb, double alpha, int lower, lmm_dmat C, int r0,
                           int c0)
{
    lmm_update u = {k, m, n, kb, wb, lower, 0, row_block(kb, k->mr), Pa, Pb, alpha, C, r0, c0};
    return u;
}

/* column strips [s0, hi) have tiles in the row block [ic, ic1) */
static int block_strips(const lmm_update *u, int ic1)
{
    int mr = u->k->mr, nr = u->k->nr, ns = (u->n + nr - 1) / nr;
    if (!u->lower) return ns;
    int hi = (ic1 + mr - 1) / mr * mr / nr;    /* strip s reaches the rows iff (s nr / mr) mr < ic1 */
    return hi < ns ? hi : ns;
}

long lmm_update_chunks(const lmm_update *u)
{
    long count = 0;
    for (int ic = 0; ic < u->m; ic += u->mc) {
        int ic1 = u->m - ic < u->mc ? u->m : ic + u->mc, hi = block_strips(u, ic1);
        if (hi > u->s0) count += hi - u->s0;
    }
    return count;
}

/* C (nrow x nc) += alpha a b' for the nr x nr tile at C, a read with stride lda */
static void band_tile(const lmm_kernels *k, int kb, const double *a, int lda, const double *b,
                      int ldb, double alpha, double *C, int ldc, int nrow, int nc)
{
    int nr = k->nr;
    if (nrow == nr && nc == nr) {
        k->band(kb, a, lda, b, ldb, alpha, C, ldc);
        return;
    }
    double t[LMM_TILE_MAX];
    memset(t, 0, sizeof t);
    k->band(kb, a, lda, b, ldb, 1.0, t, nr);
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nrow; r++) C[r + (size_t) c * ldc] += alpha * t[r + c * nr];
}

/* column strip s within rows [ic, ic1).  Under the diagonal (lower) its tiles start at the
   diagonal: rows j0 .. up to the next multiple of mr in nr x nr tiles read from the middle of
   A's strip, then mr-row tiles. */
static void update_tiles(const lmm_update *u, int s, int ic, int ic1)
{
    const lmm_kernels *k = u->k;
    int mr = k->mr, nr = k->nr, kb = u->kb, j0 = s * nr, nc = u->n - j0 < nr ? u->n - j0 : nr;
    int i0 = u->lower ? (j0 / mr) * mr : 0, ldc;
    double *Cj = lmm_dmat_at(&u->C, u->r0, u->c0 + j0, &ldc);  /* C's column j0 (its panel's) */
    const double *b = u->Pb + (size_t) (j0 / u->wb) * kb * u->wb + j0 % u->wb;  /* B's row j0 */
    if (u->lower && i0 < j0) {
        if (ic <= j0 && j0 < ic1)
            for (int i = j0; i < i0 + mr && i < u->m; i += nr) {
                int nrow = u->m - i < nr ? u->m - i : nr;
                band_tile(k, kb, u->Pa + (size_t) (i / mr) * kb * mr + i % mr, mr, b, u->wb,
                          u->alpha, Cj + i, ldc, nrow, nc);
            }
        i0 += mr;
    }
    if (i0 < ic) i0 = ic;
    for (int i = i0; i < ic1; i += mr) {
        int nrow = u->m - i < mr ? u->m - i : mr;
        lmm_tile(k, kb, u->Pa + (size_t) (i / mr) * kb * mr, b, u->wb, u->alpha,
                 Cj + i, ldc, nrow, nc);
    }
}

void lmm_update_chunk(const void *arg, long c)
{
    const lmm_update *u = (const lmm_update *) arg;
    for (int ic = 0; ic < u->m; ic += u->mc) {
        int ic1 = u->m - ic < u->mc ? u->m : ic + u->mc, hi = block_strips(u, ic1);
        long nb = hi > u->s0 ? hi - u->s0 : 0;
        if (c < nb) {
            update_tiles(u, u->s0 + (int) c, ic, ic1);
            return;
        }
        c -= nb;
    }
}

void lmm_update_strip(const lmm_update *u, int s)
{
    for (int ic = 0; ic < u->m; ic += u->mc) {
        int ic1 = u->m - ic < u->mc ? u->m : ic + u->mc;
        if (s < block_strips(u, ic1)) update_tiles(u, s, ic, ic1);
    }
}
