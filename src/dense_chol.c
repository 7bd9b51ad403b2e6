/*
 * dense_chol.c -- Cholesky factorisation A = L L' of a dense symmetric positive definite matrix
 * (lower triangle, column-major), for the dense trailing block of the penalised system.
 *
 * Blocked, right-looking: for each panel of nb columns
 *     L_kk = chol(A_kk);   L_rk = A_rk L_kk^{-T};   A_rr -= L_rk L_rk'   (the syrk update)
 * Nearly all the flops are in the last two steps, and both run through the register tile of
 * dense_kernel.c:
 *   - the panel L_rk is solved strip by strip of mr rows, each strip packed once: for each block
 *     of nr columns, x_block -= x_{<block} L_{block,<block}' (the tile), then the nr x nr
 *     triangle by substitution in registers; the solved strips are both operands of the update;
 *   - the update A_rr -= L_rk L_rk' runs tile by tile on the lower triangle.
 * The diagonal block L_kk = chol(A_kk) is the same algorithm again with narrow panels.
 *
 * With a team of threads (dense_team.c) the strips of a panel, then the column strips of its
 * update, are shared out.  The first chunk of each update does the next panel's columns and then
 * factors the next diagonal block, so that runs while the rest of the update is still going
 * (look-ahead); the panels' packed strips alternate between two buffers for the same reason.
 * Every tile is summed in the same order whatever the number of threads.
 *
 * Numerically this is the algorithm of LAPACK's dpotrf (which also scales by the reciprocal of
 * the diagonal), with other summation orders.
 *
 * The matrix is panel-packed (dense_packed.h) or plain.  Packed, the panels here are its panels
 * (NB = LMM_PANEL): the diagonal block, the panel below it and the next diagonal block each lie
 * in one panel, an ordinary column-major matrix; only the trailing update spans panels, and it
 * finds each column strip's panel (dense_kernel.c).  The tiles and their sums are the same.
 */
#include "lmm.h"
#include <string.h>

#define NB LMM_PANEL         /* panel width: the packed storage's */
#define NB_DIAG 24           /* panel width within the diagonal blocks */
#define REGION_PANELS 32     /* at most this many panels per parallel region (interrupt.c: regions
                                of about 1e9 flops; user interrupts are checked between them) */

/* Packed strips and scratch for panels of width nb over n rows */
typedef struct { double *Pa, *Lb, *rdiag; } panel_work;

static panel_work panel_alloc(const lmm_kernels *k, int n, int nb, int slot)
{
    panel_work w;
    size_t na = ((size_t) n + k->mr) * nb, nl = ((size_t) nb + k->nr) * nb;
    w.Pa = lmm_scratch(slot, na + nl + nb);           /* dense_kernel.c: kept between calls */
    w.Lb = w.Pa + na;
    w.rdiag = w.Lb + nl;
    return w;
}

/* Unblocked Cholesky of the kb x kb diagonal block (leading dimension lda).  Returns 0 or the
   1-based column where the block is not positive definite. */
static int chol_unblocked(int kb, double *a, int lda, lmm_axpy_fn axpy)
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

/* What the panel solve needs of L_kk (kb x kb): rdiag[c] = 1 / L_cc and the rows of L_kk packed
   in nr-row strips. */
static void diag_prepare(const lmm_kernels *k, int kb, const double *Lkk, int lda, panel_work *w)
{
    for (int c = 0; c < kb; c++) w->rdiag[c] = 1.0 / Lkk[c + (size_t) c * lda];
    lmm_pack_rows(kb, kb, Lkk, lda, k->nr, w->Lb);
}

/* Strip s (mr rows) of the panel P (m x kb) below L_kk: packed into w->Pa, solved X L_kk' = P
   there, copied back. */
static void panel_strip(const lmm_kernels *k, int m, int kb, double *P, int lda, const double *L,
                        const panel_work *w, int s)
{
    int mr = k->mr, nr = k->nr;
    double *x = w->Pa + (size_t) s * kb * mr;
    lmm_pack_strip(m, kb, P, lda, mr, s, w->Pa);
    for (int c0 = 0; c0 < kb; c0 += nr) {
        int nc = kb - c0 < nr ? kb - c0 : nr;
        if (c0 > 0)                            /* x_block -= x_{<c0} L_{block,<c0}' */
            lmm_tile(k, c0, x, w->Lb + (size_t) (c0 / nr) * kb * nr, nr, -1.0,
                     x + (size_t) c0 * mr, mr, mr, nc);
        k->solve(c0, nc, L, lda, w->rdiag, x); /* x_block <- x_block L_block^{-T} */
    }
    lmm_unpack_strip(m, kb, w->Pa, mr, s, P, lda);
}

/* A = L L' (n x n) by panels of NB_DIAG on this thread, each diagonal block unblocked: for the
   diagonal blocks of the big factorisation.  Returns 0 or the 1-based failing column. */
static int chol_small(const lmm_kernels *k, int n, double *A, int lda, panel_work *w)
{
    for (int k0 = 0; k0 < n; k0 += NB_DIAG) {
        int kb = n - k0 < NB_DIAG ? n - k0 : NB_DIAG, m = n - k0 - kb;
        double *Akk = A + k0 + (size_t) k0 * lda;
        int info = chol_unblocked(kb, Akk, lda, k->axpy);
        if (info) return k0 + info;
        if (m == 0) break;
        diag_prepare(k, kb, Akk, lda, w);
        for (int s = 0; s < (m + k->mr - 1) / k->mr; s++) panel_strip(k, m, kb, Akk + kb, lda, Akk, w, s);
        lmm_update u = lmm_update_make(k, m, m, kb, w->Pa, w->Pa, k->mr, -1.0, 1,
                                       lmm_dmat_plain(Akk + kb + (size_t) kb * lda, lda), 0, 0);
        for (long c = 0, nc = lmm_update_chunks(&u); c < nc; c++) lmm_update_chunk(&u, c);
    }
    return 0;
}

/* The factorisation's shared state, and the jobs of one panel */
typedef struct chol_state chol_state;
typedef struct { chol_state *st; int k0, kb, m; panel_work w; } strip_job;
typedef struct { chol_state *st; lmm_update u; int k1, kn, sn; } update_job;
struct chol_state {
    const lmm_kernels *k;
    lmm_dmat A;
    int n;
    panel_work w[2], wd;     /* panels' strips (alternating), the diagonal blocks' scratch */
    int from, to;            /* this parallel region's panels start at columns from .. to-1 */
    int factored;            /* k + 1 once the diagonal block at column k is factored */
    int info;                /* 0 or the 1-based column where A is not positive definite */
    strip_job sj;
    update_job uj[2];
};

static void strip_chunk(const void *arg, long c)
{
    const strip_job *j = (const strip_job *) arg;
    int ld;
    double *Akk = lmm_dmat_at(&j->st->A, j->k0, j->k0, &ld);
    panel_strip(j->st->k, j->m, j->kb, Akk + j->kb, ld, Akk, &j->w, (int) c);
}

/* Chunk 0: the next panel's columns (strips < sn), then its diagonal block L_nn = chol(A_nn)
   and what its panel solve needs; the others: the rest of the update. */
static void update_chunk(const void *arg, long c)
{
    const update_job *j = (const update_job *) arg;
    chol_state *st = j->st;
    if (c > 0) {
        lmm_update_chunk(&j->u, c - 1);
        return;
    }
    for (int s = 0; s < j->sn; s++) lmm_update_strip(&j->u, s);
    int ld;
    double *Ann = lmm_dmat_at(&st->A, j->k1, j->k1, &ld);
    int info = chol_small(st->k, j->kn, Ann, ld, &st->wd);
    if (info) st->info = j->k1 + info;
    else if (j->k1 + j->kn < st->n) diag_prepare(st->k, j->kn, Ann, ld, &st->w[(j->k1 / NB) % 2]);
    lmm_team_signal(&st->factored, j->k1 + 1);
}

/* The panels from st->from to st->to, their first diagonal block already factored. */
static void chol_master(lmm_team *team, void *arg)
{
    chol_state *st = (chol_state *) arg;
    const lmm_kernels *k = st->k;
    for (int k0 = st->from; k0 < st->to && k0 < st->n; k0 += NB) {
        int kb = st->n - k0 < NB ? st->n - k0 : NB, k1 = k0 + kb, m = st->n - k1;
        if (m == 0) break;
        panel_work *w = &st->w[(k0 / NB) % 2];
        strip_job *sj = &st->sj;                         /* L_rk = A_rk L_kk^{-T} */
        sj->st = st; sj->k0 = k0; sj->kb = kb; sj->m = m; sj->w = *w;
        lmm_team_for(team, strip_chunk, sj, (m + k->mr - 1) / k->mr);
        update_job *uj = &st->uj[(k0 / NB) % 2];         /* A_rr -= L_rk L_rk' */
        uj->st = st; uj->k1 = k1; uj->kn = m < NB ? m : NB;
        uj->sn = (uj->kn + k->nr - 1) / k->nr;
        uj->u = lmm_update_make(k, m, m, kb, w->Pa, w->Pa, k->mr, -1.0, 1, st->A, k1, k1);
        uj->u.s0 = uj->sn;
        long end = lmm_team_publish(team, update_chunk, uj, 1 + lmm_update_chunks(&uj->u), 0);
        lmm_team_work(team);
        lmm_team_wait_flag(team, &st->factored, k1 + 1);
        if (st->info || k1 >= st->to) {
            lmm_team_wait(team, end);
            break;
        }
    }
}

/* R's LAPACK and BLAS on a packed matrix, panel by panel, right-looking: L_kk = chol(A_kk)
   (dpotrf), the panel below it (dtrsm), then each later panel's diagonal block (dsyrk) and the
   rest of it (dgemm). */
static int chol_lapack_packed(int n, lmm_dmat A)
{
    int info = 0, ld, ldq;
    double one = 1.0, minus = -1.0;
    for (int k0 = 0; k0 < n; k0 += NB) {
        int kb = n - k0 < NB ? n - k0 : NB, m = n - k0 - kb;
        double *Akk = lmm_dmat_at(&A, k0, k0, &ld);
        F77_CALL(dpotrf)("L", &kb, Akk, &ld, &info FCONE);
        if (info) return k0 + info;
        if (m == 0) break;
        F77_CALL(dtrsm)("R", "L", "T", "N", &m, &kb, &one, Akk, &ld, Akk + kb, &ld
                        FCONE FCONE FCONE FCONE);
        for (int c1 = k0 + kb; c1 < n; c1 += NB) {       /* A_qq -= L_qk L_qk', q below */
            int wq = n - c1 < NB ? n - c1 : NB, hq = n - c1 - wq;
            const double *Lq = Akk + (c1 - k0);
            double *Aq = lmm_dmat_at(&A, c1, c1, &ldq);
            F77_CALL(dsyrk)("L", "N", &wq, &kb, &minus, Lq, &ld, &one, Aq, &ldq FCONE FCONE);
            if (hq > 0)
                F77_CALL(dgemm)("N", "T", &hq, &wq, &kb, &minus, Lq + wq, &ld, Lq, &ld, &one,
                                Aq + wq, &ldq FCONE FCONE);
        }
    }
    return 0;
}

int lmm_dense_chol(int n, lmm_dmat A)
{
    if (n <= 0) return 0;
    if (lmm_dense_lapack()) {                            /* R's LAPACK (dense_kernel.c) */
        int info = 0;
        if (A.packed && n > NB) return chol_lapack_packed(n, A);
        F77_CALL(dpotrf)("L", &n, A.x, &A.n, &info FCONE);   /* plain, or a single panel */
        return info;
    }
    lmm_kernels k = lmm_choose_kernels();
    if (A.packed && (NB % k.mr || NB % k.nr))
        error(_("internal error: panel width %d is not a multiple of the tile"), NB);
    int nthreads = lmm_dense_threads(n);
    chol_state st;
    memset(&st, 0, sizeof st);
    st.k = &k; st.A = A; st.n = n;
    st.w[0] = panel_alloc(&k, n, NB, LMM_SCR_CHOL0);
    st.w[1] = panel_alloc(&k, n, NB, LMM_SCR_CHOL1);
    st.wd = panel_alloc(&k, NB, NB_DIAG, LMM_SCR_CHOLD);
    int kb = n < NB ? n : NB, lda;                       /* the first diagonal block */
    double *A00 = lmm_dmat_at(&A, 0, 0, &lda);
    int info = chol_small(&k, kb, A00, lda, &st.wd);
    if (info) return info;
    if (kb < n) diag_prepare(&k, kb, A00, lda, &st.w[0]);
    for (int k0 = 0, w; k0 < n && !st.info; k0 += w) {
        w = lmm_region_width(n - k0, NB, REGION_PANELS * NB);    /* about 1e9 flops */
        st.from = k0; st.to = k0 + w;
        lmm_team_run(nthreads, chol_master, &st);
        R_CheckUserInterrupt();
    }
    return st.info;
}
