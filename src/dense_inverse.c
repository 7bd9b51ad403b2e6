/*
 * dense_inverse.c -- S = (L L')^{-1} from the lower Cholesky factor L of a dense block, for the
 * gradient and the conditional variances (gradient.c): the job of LAPACK's dpotri, done in two
 * blocked passes whose bulk runs through the register tile of dense_kernel.c.
 *
 *   (1) W = L^{-1} (lower), forward substitution by row blocks of NB, right-looking: with
 *       B = I updated in place,
 *           W_KK = L_KK^{-1};   W_{K,<K} = W_KK B_{K,<K};   B_{>K,<=K} -= L_{>K,K} W_{K,<=K}
 *   (2) S = W' W = sum_K W_{K,<=K}' W_{K,<=K}, accumulated block row by block row of W into the
 *       lower triangle of tiles.
 * W lives in S's lower triangle; each block row of W is packed before S overwrites it, so the
 * scratch is two packed panels.  About n^3/3 multiply-adds in all, as dtrtri + dlauum.  The
 * products, the packing and the zeroing are shared among a team of threads
 * (dense_team.c); every entry is summed in the same order whatever the number of threads.
 *
 * L and S are panel-packed (dense_packed.h; blocks NB = its panel width) or plain: a block of
 * NB columns is one panel, and every column strip of a block row or of an update lies in one
 * panel (dense_kernel.c finds it), so the tiles and their sums are those of plain storage.
 */
#include "lmm.h"
#include <string.h>

#define NB LMM_PANEL      /* block rows of W per step: the packed storage's panel width */
#define REGION_PANELS 32  /* block rows per parallel region: user interrupts are checked between */

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

/* The products of block row K: their operands, and the chunk functions that run them */
typedef struct {
    const lmm_kernels *k;
    int kb, n, m;            /* block row K: kb rows, its first n columns; m rows below it */
    const double *LK;        /* L_{>K,K} (m x kb), leading dimension ldl */
    lmm_dmat S;              /* block row K of S: its rows k0 .. k0 + kb - 1 */
    int k0, ldl;
    double *Pa, *Pb;
} block_job;

/* columns j0 .. of block row K of S (within j0's panel: distance *ld) */
static double *row_block_at(const block_job *t, int j0, int *ld)
{
    return lmm_dmat_at(&t->S, t->k0, j0, ld);
}

/* W_{K,<K} = W_KK B_{K,<K} (kb x n), W_KK lower triangular packed in Pa: chunk s packs column
   strip s of B_{K,<K}, then overwrites it; the tile of rows i0.. needs inner entries < i0 + mr. */
static void tri_multiply_chunk(const void *arg, long s)
{
    const block_job *t = (const block_job *) arg;
    int mr = t->k->mr, nr = t->k->nr, kb = t->kb, j0 = (int) s * nr, lds;
    int nc = t->n - j0 < nr ? t->n - j0 : nr;
    double *C = row_block_at(t, j0, &lds);
    lmm_pack_col_strip(kb, t->n - j0, C, lds, nr, 0, t->Pb + (size_t) s * kb * nr);
    for (int c = 0; c < nc; c++) memset(C + (size_t) c * lds, 0, (size_t) kb * sizeof(double));
    for (int i0 = 0; i0 < kb; i0 += mr) {
        int nl = i0 + mr < kb ? i0 + mr : kb, nrow = kb - i0 < mr ? kb - i0 : mr;
        lmm_tile(t->k, nl, t->Pa + (size_t) (i0 / mr) * kb * mr, t->Pb + (size_t) s * kb * nr, nr,
                 1.0, C + i0, lds, nrow, nc);
    }
}

/* the operands of B_{>K,<=K} -= L_{>K,K} W_{K,<=K}: chunks below (m + mr - 1) / mr pack the
   row strips of L_{>K,K} (Pa), the others the column strips of W_{K,<=K} (Pb) */
static void pack_update_chunk(const void *arg, long c)
{
    const block_job *t = (const block_job *) arg;
    long na = (t->m + t->k->mr - 1) / t->k->mr;
    if (c < na) {
        lmm_pack_strip(t->m, t->kb, t->LK, t->ldl, t->k->mr, (int) c, t->Pa);
        return;
    }
    int s = (int) (c - na), nr = t->k->nr, lds;
    const double *B = row_block_at(t, s * nr, &lds);
    lmm_pack_col_strip(t->kb, t->n - s * nr, B, lds, nr, 0, t->Pb + (size_t) s * t->kb * nr);
}

/* W_{K,<=K}' packed in mr-row strips (chunk s: column strip s), then zeroed in S */
static void pack_zero_chunk(const void *arg, long s)
{
    const block_job *t = (const block_job *) arg;
    int mr = t->k->mr, j0 = (int) s * mr, nc = t->n - j0 < mr ? t->n - j0 : mr, lds;
    double *B = row_block_at(t, j0, &lds);
    lmm_pack_col_strip(t->kb, t->n - j0, B, lds, mr, 0, t->Pa + (size_t) s * t->kb * mr);
    for (int c = 0; c < nc; c++) memset(B + (size_t) c * lds, 0, (size_t) t->kb * sizeof(double));
}

/* state of the inverse: its arguments, scratch and the panels of this parallel region */
typedef struct {
    const lmm_kernels *k;
    int n, pass, from, to;
    lmm_dmat L, S;
    double *Pa, *Pb, *T;
} inverse_state;

/* (1) W = L^{-1} into the lower triangle of S, block rows from .. to-1 (the strict upper triangle
   is left zero within the diagonal blocks and untouched elsewhere; the lower triangle starts
   zero). */
static void lower_inverse(lmm_team *team, const void *arg)
{
    const inverse_state *v = (const inverse_state *) arg;
    const lmm_kernels *k = v->k;
    int n = v->n, ldl, lds;
    for (int k0 = v->from; k0 < v->to && k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb, m = n - k1;
        const double *Lkk = lmm_dmat_at(&v->L, k0, k0, &ldl);          /* L_{>=K,K}: one panel */
        block_job t = {k, kb, k0, m, Lkk + kb, v->S, k0, ldl, v->Pa, v->Pb};
        tri_inverse(kb, Lkk, ldl, v->T, k->axpy);                       /* W_KK */
        if (k0 > 0) {                                                   /* W_{K,<K} = W_KK B_{K,<K} */
            lmm_pack_rows(kb, kb, v->T, kb, k->mr, v->Pa);
            lmm_team_for(team, tri_multiply_chunk, &t, (k0 + k->nr - 1) / k->nr);
        }
        double *SKK = row_block_at(&t, k0, &lds);
        for (int c = 0; c < kb; c++)
            memcpy(SKK + (size_t) c * lds, v->T + (size_t) c * kb, (size_t) kb * sizeof(double));
        if (m > 0) {                                        /* B_{>K,<=K} -= L_{>K,K} W_{K,<=K} */
            t.n = k1;
            lmm_team_for(team, pack_update_chunk, &t,
                         (m + k->mr - 1) / k->mr + (k1 + k->nr - 1) / k->nr);
            lmm_update u = lmm_update_make(k, m, k1, kb, v->Pa, v->Pb, k->nr, -1.0, 0,
                                           v->S, k1, 0);
            lmm_team_for(team, lmm_update_chunk, &u, lmm_update_chunks(&u));
        }
    }
}

/* (2) S = W' W from W in the lower triangle of S, block row of W by block row, in place: block
   row K is packed, then zeroed and S_{<=K,<=K} += W_{K,<=K}' W_{K,<=K}. */
static void cross_lower(lmm_team *team, const void *arg)
{
    const inverse_state *v = (const inverse_state *) arg;
    const lmm_kernels *k = v->k;
    int n = v->n;
    for (int k0 = v->from; k0 < v->to && k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb;
        block_job t = {k, kb, k1, 0, NULL, v->S, k0, 0, v->Pa, NULL};
        lmm_team_for(team, pack_zero_chunk, &t, (k1 + k->mr - 1) / k->mr);
        lmm_update u = lmm_update_make(k, k1, k1, kb, v->Pa, v->Pa, k->mr, 1.0, 1, v->S, 0, 0);
        lmm_team_for(team, lmm_update_chunk, &u, lmm_update_chunks(&u));
    }
}

/* the lower triangle zeroed, by blocks of COLUMN_BLOCK columns (chunk: one block) */
#define COLUMN_BLOCK 64
typedef struct { int n; lmm_dmat S; } triangle_job;

static void zero_chunk(const void *arg, long b)
{
    const triangle_job *t = (const triangle_job *) arg;
    int c0 = (int) b * COLUMN_BLOCK, c1 = c0 + COLUMN_BLOCK < t->n ? c0 + COLUMN_BLOCK : t->n, ld;
    for (int c = c0; c < c1; c++)
        memset(lmm_dmat_at(&t->S, c, c, &ld), 0, (size_t) (t->n - c) * sizeof(double));
}

/* the inverse's parallel regions: pass 1 (after zeroing) then pass 2 */
static void inverse_master(lmm_team *team, void *arg)
{
    const inverse_state *v = (const inverse_state *) arg;
    if (v->pass == 0) {
        if (v->from == 0) {
            triangle_job t = {v->n, v->S};
            lmm_team_for(team, zero_chunk, &t, (v->n + COLUMN_BLOCK - 1) / COLUMN_BLOCK);
        }
        lower_inverse(team, arg);
    } else cross_lower(team, arg);
}

/* R's LAPACK and BLAS on a packed S, the two passes above by blocks of NB (dpotri's dtrtri and
   dlauum, with these blocks):
   (1) W_KK = L_KK^{-1} (dtrtri on a copy whose strict upper triangle is zero),
       W_{K,<K} = W_KK B_{K,<K} (dtrmm, panel by panel), B_{>K,<=K} -= L_{>K,K} W_{K,<=K} (dgemm);
   (2) block row K of W copied out (kb x k1, then zeroed in S), S_{<=K,<=K} += W_K' W_K, panel by
       panel: dsyrk on its diagonal block, dgemm below it. */
static void inverse_lapack_packed(int n, lmm_dmat L, lmm_dmat S)
{
    int info = 0, ldl, ldk, ldq;
    double one = 1.0, minus = -1.0;
    for (int c = 0; c < n; c++) memset(lmm_dmat_at(&S, c, c, &ldq), 0, (size_t) (n - c) * sizeof(double));
    for (int k0 = 0; k0 < n; k0 += NB) {                                     /* (1) */
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb, m = n - k1;
        const double *Lkk = lmm_dmat_at(&L, k0, k0, &ldl);
        double *Wkk = lmm_dmat_at(&S, k0, k0, &ldk);
        for (int c = 0; c < kb; c++)
            for (int r = 0; r < kb; r++) Wkk[r + (size_t) c * ldk] = r >= c ? Lkk[r + (size_t) c * ldl] : 0.0;
        F77_CALL(dtrtri)("L", "N", &kb, Wkk, &ldk, &info FCONE FCONE);
        for (int q0 = 0; q0 < k0; q0 += NB) {
            double *B = lmm_dmat_at(&S, k0, q0, &ldq);
            int w = NB;
            F77_CALL(dtrmm)("L", "L", "N", "N", &kb, &w, &one, Wkk, &ldk, B, &ldq
                            FCONE FCONE FCONE FCONE);
        }
        if (m == 0) break;
        for (int q0 = 0; q0 < k1; q0 += NB) {
            int w = k1 - q0 < NB ? k1 - q0 : NB;
            double *B = lmm_dmat_at(&S, k0, q0, &ldq);
            F77_CALL(dgemm)("N", "N", &m, &w, &kb, &minus, Lkk + kb, &ldl, B, &ldq, &one, B + (k1 - k0),
                            &ldq FCONE FCONE);
        }
    }
    double *WK = (double *) R_alloc((size_t) NB * n, sizeof(double));    /* block row K of W */
    for (int k0 = 0; k0 < n; k0 += NB) {                                     /* (2) */
        int kb = n - k0 < NB ? n - k0 : NB, k1 = k0 + kb;
        for (int c = 0; c < k1; c++) {
            double *Sc = lmm_dmat_at(&S, k0, c, &ldq);
            int r0 = c > k0 ? c - k0 : 0;                   /* W_KK: its lower triangle */
            for (int r = 0; r < kb; r++) WK[r + (size_t) c * kb] = r >= r0 ? Sc[r] : 0.0;
            for (int r = r0; r < kb; r++) Sc[r] = 0.0;
        }
        for (int q0 = 0; q0 < k1; q0 += NB) {
            int w = k1 - q0 < NB ? k1 - q0 : NB, below = k1 - q0 - w;
            double *Cq = lmm_dmat_at(&S, q0, q0, &ldq), *Wq = WK + (size_t) q0 * kb;
            F77_CALL(dsyrk)("L", "T", &w, &kb, &one, Wq, &kb, &one, Cq, &ldq FCONE FCONE);
            if (below > 0)
                F77_CALL(dgemm)("T", "N", &below, &w, &kb, &one, Wq + (size_t) w * kb, &kb, Wq, &kb,
                                &one, Cq + w, &ldq FCONE FCONE);
        }
    }
}

/* R's LAPACK dpotri for S = (L L')^{-1}, lower triangle, in place: S plain, or its leading n x n
   in its first panel; a larger packed S panel by panel */
static void inverse_lapack(int n, lmm_dmat L, lmm_dmat S)
{
    int info = 0, ldl, lds;
    if (S.packed && n > NB) {
        inverse_lapack_packed(n, L, S);
        return;
    }
    for (int c = 0; c < n; c++)
        memcpy(lmm_dmat_at(&S, c, c, &lds), lmm_dmat_at(&L, c, c, &ldl), (size_t) (n - c) * sizeof(double));
    double *S0 = lmm_dmat_at(&S, 0, 0, &lds);
    F77_CALL(dpotri)("L", &n, S0, &lds, &info FCONE);
}

/* S = (L L')^{-1}, its lower triangle (the strict upper triangle is left as it was outside the
   diagonal blocks of NB) */
void lmm_dense_inverse_lower(int n, lmm_dmat L, lmm_dmat S)
{
    if (n <= 0) return;
    if (lmm_dense_lapack()) {                            /* R's LAPACK (dense_kernel.c) */
        inverse_lapack(n, L, S);
        return;
    }
    lmm_kernels k = lmm_choose_kernels();
    if ((L.packed || S.packed) && (NB % k.mr || NB % k.nr))
        error(_("internal error: panel width %d is not a multiple of the tile"), NB);
    int nthreads = lmm_dense_threads(n);
    size_t np = ((size_t) n + k.mr) * NB;
    double *w = lmm_scratch(LMM_SCR_INV, 2 * np + (size_t) NB * NB);   /* kept between calls */
    inverse_state v = {&k, n, 0, 0, 0, L, S, w, w + np, w + 2 * np};
    for (v.pass = 0; v.pass < 2; v.pass++)
        for (int w = 0, f = 0; f < n; f += w) {
            v.from = f;
            w = lmm_region_width(n, NB, REGION_PANELS * NB);   /* interrupt.c: about 1e9 flops */
            v.to = v.from + w;
            lmm_team_run(nthreads, inverse_master, &v);
            R_CheckUserInterrupt();
        }
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
    size_t len = lmm_packed_len(n) + 1;                  /* packed, as the engine stores them */
    double *PL = (double *) R_alloc(len, sizeof(double)), *PS = (double *) R_alloc(len, sizeof(double));
    lmm_pack_lower(n, REAL(L), n, PL, 0, 0);
    lmm_dense_inverse_lower(n, lmm_dmat_packed(PL, n), lmm_dmat_packed(PS, n));
    lmm_pack_lower(n, REAL(S), n, PS, 1, -1);
    UNPROTECT(1); /* S */
    return S;
}
