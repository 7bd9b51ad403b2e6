/*
 * dense_schur.c -- the sparse columns' coupling to the dense block, in blocks of dense columns:
 *
 *   the Schur update (factor.c)        Omega_DD -= sum_J L_DJ L_DJ'
 *   its adjoint (gradient.c)           P_J = Sigma_DD L_DJ      on the dense rows of each J
 *
 * where J runs over the sparse columns and L_DJ is column J's part in the dense block (a few
 * scattered rows of the md dense rows: lmm.h's dk0 / drow / dval / dstr).  Both are sums of
 * sum_J p_J r_J^2 / 2 products (r_J dense rows of J), far fewer than a dense syrk over the block
 * would do, so they stay sparse; what makes them slow is memory latency.  Column by column of the
 * dense block (one pass per (dense column, sparse column) pair) each pair jumps to another J,
 * a dependent chain of cache misses.  Here the dense columns are taken in blocks whose panel of
 * the block (rows c0 .. md-1) stays in the L2 cache, and for each block the sparse columns are
 * walked in order, J = 0, 1, ..., each from a cursor at its first row in the block: the reads of
 * L stream forwards, the writes (or reads) of the dense block stay in the cached panel.
 *
 * Threads (dense_team.c): the Schur update gives each chunk every nchunk-th block (its writes
 * are its own columns of the block); the adjoint gives each chunk a range of sparse columns with
 * all blocks (its writes are its own P_J).  Each chunk keeps its cursors, which only move
 * forwards.  Every entry is summed in the same order whatever the number of threads.
 *
 * The dense block (m->Ld) and Sigma_DD are panel-packed (dense_packed.h): dense column y starts
 * at the offset col[y] (lmm_packed_offsets, one table per call) and is read at rows x >= y.
 */
#include "lmm.h"
#include <string.h>

#define PANEL_DOUBLES 65536     /* a block's panel of the dense block: about 512 KB */
#define BLOCK_MIN 8
#define BLOCK_MAX 1024
#define BLOCKS_MAX 128          /* each block walks every sparse column's cursor: keep them few */
#define REGION_FLOPS 1e9        /* interrupt.c: user interrupts are checked between regions */

/* the blocks of dense columns: [bs[b], bs[b+1]), b < nb; col[y]: where dense column y starts in
   the packed storage */
typedef struct { int nb, *bs; ptrdiff_t *col; } column_blocks;

static column_blocks make_blocks(int md)
{
    column_blocks cb;
    cb.col = (ptrdiff_t *) R_alloc(md, sizeof(ptrdiff_t));
    lmm_packed_offsets(md, cb.col);
    cb.bs = (int *) R_alloc(md + 2, sizeof(int));
    cb.nb = 0;
    int wmin = md / BLOCKS_MAX > BLOCK_MIN ? md / BLOCKS_MAX : BLOCK_MIN;
    for (int c0 = 0; c0 < md; ) {
        int w = PANEL_DOUBLES / (md - c0);
        w = w < wmin ? wmin : w > BLOCK_MAX ? BLOCK_MAX : w;
        cb.bs[cb.nb++] = c0;
        c0 = c0 + w < md ? c0 + w : md;
    }
    cb.bs[cb.nb] = md;
    return cb;
}

/* flops of column J's products: p_J r (r + 1), r its dense rows */
static double column_flops(const lmm_model *m, int J)
{
    double r = m->dk0[J + 1] - m->dk0[J];
    return m->size[J] * r * (r + 1);
}

/* The sparse columns' dense parts gathered end to end: column c of node J's dense rows
   k = dk0[J] .. dk0[J+1]-1 at V[vb[J] + c (dk0[J+1] - dk0[J]) + k - dk0[J]], parallel to drow, so
   that walking the columns in order reads two forward streams. */
typedef struct { double *V; size_t *vb; } gathered;

static gathered gather_columns(const lmm_model *m)
{
    gathered g;
    int Ns = m->Ns;
    g.vb = (size_t *) R_alloc(Ns + 1, sizeof(size_t));
    g.vb[0] = 0;
    for (int J = 0; J < Ns; J++)
        g.vb[J + 1] = g.vb[J] + (size_t) m->size[J] * (m->dk0[J + 1] - m->dk0[J]);
    g.V = lmm_scratch(LMM_SCR_SCHUR_V, g.vb[Ns] + 1);        /* dense_kernel.c */
    return g;
}

/* n ints of scratch kept between calls */
static int *int_scratch(size_t n)
{
    return (int *) lmm_scratch(LMM_SCR_SCHUR_I, (n + 1) / 2 + 1);
}

/* V = L_DJ (to_v) or L_DJ-shaped P += V (from V back to P's layout) */
static void copy_columns(const lmm_model *m, const gathered *g, double *X, int to_v)
{
    for (int J = 0; J < m->Ns; J++) {
        int k0 = m->dk0[J], nk = m->dk0[J + 1] - k0;
        double *VJ = g->V + g->vb[J];
        for (int c = 0; c < m->size[J]; c++)
            for (int k = 0; k < nk; k++) {
                size_t o = m->dval[k0 + k] + (size_t) c * m->dstr[k0 + k];
                if (to_v) VJ[c * (size_t) nk + k] = X[o];
                else X[o] += VJ[c * (size_t) nk + k];
            }
    }
}

#define AHEAD 8     /* columns J whose next entries are fetched ahead of use */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#define PREFETCH_W(p) __builtin_prefetch(p, 1)
#else
#define PREFETCH(p) ((void) (p))
#define PREFETCH_W(p) ((void) (p))
#endif

/* column J's first dense row at or after row c0, from the cursor at k (moved forwards) */
static inline int advance(const int *drow, int k, int k1, int c0)
{
    while (k < k1 && drow[k] < c0) k++;
    return k;
}

/* ---- the Schur update ------------------------------------------------------------------- */

typedef struct {
    const lmm_model *m;
    column_blocks cb;
    gathered g;
    int b0, b1, nchunks;     /* this region's blocks; chunk t takes blocks b0 + t, + nchunks, ... */
    int *cursor;             /* [nchunks x Ns] */
} update_job;

/* Omega_{.,[c0,c1)} -= sum_J L_DJ L_{[c0,c1) J}': column J's entries y in the block, each with
   the entries x >= y below it */
static void update_block(const lmm_model *m, const gathered *g, const ptrdiff_t *col, int c0,
                         int c1, int *cur)
{
    int Ns = m->Ns;
    const int *drow = m->drow, *dk0 = m->dk0;
    double *Ld = m->Ld;
    for (int J = 0; J < Ns; J++) {
        if (J + AHEAD < Ns) {
            int Ja = J + AHEAD;
            PREFETCH(drow + cur[Ja]);
            PREFETCH(g->V + g->vb[Ja] + (cur[Ja] - dk0[Ja]));
        }
        int k1 = dk0[J + 1], k = advance(drow, cur[J], k1, c0);
        cur[J] = k;
        if (k == k1 || drow[k] >= c1) continue;
        int pJ = m->size[J], nk = k1 - dk0[J];
        const double *VJ = g->V + g->vb[J] - dk0[J];        /* VJ[k + c nk]: L_{drow[k], (J, c)} */
        for (; k < k1 && drow[k] < c1; k++) {
            double *Lc = Ld + col[drow[k]];
            for (int c = 0; c < pJ; c++) {
                const double *v = VJ + (size_t) c * nk;
                double coef = v[k];                          /* L_{y, (J, c)} */
                if (coef == 0) continue;
                for (int x = k; x < k1; x++) Lc[drow[x]] -= v[x] * coef;
            }
        }
    }
}

static void update_chunk(const void *arg, long t)
{
    const update_job *u = (const update_job *) arg;
    int *cur = u->cursor + (size_t) t * u->m->Ns;
    for (int b = u->b0 + (int) t; b < u->b1; b += u->nchunks)
        update_block(u->m, &u->g, u->cb.col, u->cb.bs[b], u->cb.bs[b + 1], cur);
}

static void update_master(lmm_team *team, void *arg)
{
    const update_job *u = (const update_job *) arg;
    lmm_team_for(team, update_chunk, u, u->nchunks);
}

/* blocks per region: about REGION_FLOPS of the total */
static int region_blocks(double flops, int nb)
{
    double r = flops > 0 ? nb * (REGION_FLOPS / flops) : nb;
    return r >= nb ? nb : r < 1 ? 1 : (int) r;
}

/* ---- small dense blocks ------------------------------------------------------------------ */

/* Dense blocks of order up to SCHUR_DIRECT sit whole in L1: there the direct passes below, one
   per dense column, cost less than gathering columns and walking cursors (sleepstudy: 3 of 12
   microseconds per evaluation).  Same sums, taken column by column of the dense block. */
#define SCHUR_DIRECT 64

/* Omega_DD -= sum_J L_DJ L_DJ', dense column by dense column */
static void direct_update(lmm_model *m)
{
    int md = m->md;
    const double *Lx = m->Lx;
    for (int D = m->Ns; D <= m->N; D++) {
        int d0 = D - m->Ns;
        for (int r = 0; r < m->size[D]; r++) {
            double *Lc = lmm_packed_col(m->Ld, md, m->doff[d0] + r), work = 0;
            for (int s = m->dlp[d0]; s < m->dlp[d0 + 1]; s++) {
                int J = m->dlJ[s], k0 = m->dlk[s] + r, k1 = m->dk0[J + 1];
                work += (double) m->size[J] * (k1 - k0);
                for (int c = 0; c < m->size[J]; c++) {
                    double coef = Lx[m->dval[k0] + c * m->dstr[k0]];      /* L_{(D,r), (J,c)} */
                    if (coef == 0) continue;
                    for (int k = k0; k < k1; k++)
                        Lc[m->drow[k]] -= Lx[m->dval[k] + c * m->dstr[k]] * coef;
                }
            }
            lmm_work(2 * work);
        }
    }
}

/* P_J += Sigma_DD L_DJ column by column J, with the sums of product_block() in its order
   (entries y < lim increasing; Sigma_xy, x >= y, serves both P_x and P_y; P_J summed apart,
   then added), so that both schedules give the same numbers */
static void direct_products(const lmm_model *m, int lim, const double *Sd, double *P)
{
    int md = m->md, most = 1;
    for (int J = 0; J < m->Ns; J++) {
        int len = (m->dk0[J + 1] - m->dk0[J]) * m->size[J];
        if (len > most) most = len;
    }
    double *p = (double *) R_alloc(most, sizeof(double));
    const int *drow = m->drow;
    for (int J = 0; J < m->Ns; J++) {
        int k0 = m->dk0[J], k1 = m->dk0[J + 1], nk = k1 - k0, pJ = m->size[J];
        if (nk == 0) continue;
        memset(p, 0, (size_t) nk * pJ * sizeof(double));
        for (int k = k0; k < k1 && drow[k] < lim; k++) {
            const double *Scol = lmm_packed_col(Sd, md, drow[k]);
            for (int c = 0; c < pJ; c++) {
                double *pc = p + (size_t) c * nk - k0;
                double ly = m->Lx[m->dval[k] + c * m->dstr[k]], acc = Scol[drow[k]] * ly;
                for (int x = k + 1; x < k1; x++) {
                    double sxy = Scol[drow[x]];
                    pc[x] += sxy * ly;
                    acc += sxy * m->Lx[m->dval[x] + c * m->dstr[x]];
                }
                pc[k] += acc;
            }
        }
        for (int c = 0; c < pJ; c++)
            for (int k = k0; k < k1; k++)
                P[m->dval[k] + (size_t) c * m->dstr[k]] += p[(size_t) c * nk + k - k0];
    }
}

/* Omega_DD -= sum_J L_DJ L_DJ' into the lower triangle of m->Ld. */
void lmm_dense_schur_update(lmm_model *m)
{
    int Ns = m->Ns;
    if (Ns == 0 || m->md == 0) return;
    if (m->md <= SCHUR_DIRECT) { direct_update(m); return; }
    double flops = 0;
    for (int J = 0; J < Ns; J++) flops += column_flops(m, J);
    int nthreads = lmm_dense_threads(m->md);
    update_job u;
    u.m = m;
    u.cb = make_blocks(m->md);
    u.g = gather_columns(m);
    copy_columns(m, &u.g, m->Lx, 1);
    u.nchunks = nthreads > 1 ? 4 * nthreads : 1;       /* interleaved blocks balance the work */
    if (u.nchunks > u.cb.nb) u.nchunks = u.cb.nb;
    u.cursor = int_scratch((size_t) u.nchunks * Ns);
    for (int t = 0; t < u.nchunks; t++) memcpy(u.cursor + (size_t) t * Ns, m->dk0, Ns * sizeof(int));
    int per = region_blocks(flops, u.cb.nb);
    for (u.b0 = 0; u.b0 < u.cb.nb; u.b0 = u.b1) {
        u.b1 = u.b0 + per < u.cb.nb ? u.b0 + per : u.cb.nb;
        if (nthreads > 1) lmm_team_run(nthreads, update_master, &u);
        else update_chunk(&u, 0);
        lmm_work(flops * (u.b1 - u.b0) / u.cb.nb);
    }
}

/* ---- the adjoint: P_J = Sigma_DD L_DJ --------------------------------------------------- */

typedef struct {
    const lmm_model *m;
    column_blocks cb;
    gathered g, gp;          /* L_DJ and P_J gathered */
    const double *Sd;
    int lim, b0, b1, nchunks;
    const int *J0;           /* [nchunks + 1]: chunk t takes columns J0[t] .. J0[t+1]-1 */
    int *cursor;             /* [Ns] */
} product_job;

/* the products of the entries y in [c0, c1) of columns J0 .. J1-1 with Sigma's columns y,
   rows x >= y (Sigma_xy serves both P_x and P_y) */
static void product_block(const product_job *pj, int J0, int J1, int c0, int c1)
{
    const lmm_model *m = pj->m;
    int *cur = pj->cursor;
    const int *drow = m->drow, *dk0 = m->dk0;
    const double *Sd = pj->Sd;
    const ptrdiff_t *col = pj->cb.col;
    if (c1 > pj->lim) c1 = pj->lim;                      /* Sigma is zero beyond Omega_S */
    for (int J = J0; J < J1; J++) {
        if (J + AHEAD < J1) {
            int Ja = J + AHEAD;
            size_t o = pj->g.vb[Ja] + (cur[Ja] - dk0[Ja]);
            PREFETCH(drow + cur[Ja]);
            PREFETCH(pj->g.V + o);
            PREFETCH_W(pj->gp.V + o);
        }
        int k1 = dk0[J + 1], k = advance(drow, cur[J], k1, c0);
        cur[J] = k;
        if (k == k1 || drow[k] >= c1) continue;
        int pJ = m->size[J], nk = k1 - dk0[J];
        const double *VJ = pj->g.V + pj->g.vb[J] - dk0[J];
        double *PJ = pj->gp.V + pj->g.vb[J] - dk0[J];
        for (; k < k1 && drow[k] < c1; k++) {
            const double *Scol = Sd + col[drow[k]];
            for (int c = 0; c < pJ; c++) {
                const double *v = VJ + (size_t) c * nk;
                double *p = PJ + (size_t) c * nk, ly = v[k], acc = Scol[drow[k]] * ly;
                for (int x = k + 1; x < k1; x++) {
                    double sxy = Scol[drow[x]];
                    p[x] += sxy * ly;
                    acc += sxy * v[x];
                }
                p[k] += acc;
            }
        }
    }
}

static void product_chunk(const void *arg, long t)
{
    const product_job *pj = (const product_job *) arg;
    for (int b = pj->b0; b < pj->b1; b++)
        product_block(pj, pj->J0[t], pj->J0[t + 1], pj->cb.bs[b], pj->cb.bs[b + 1]);
}

static void product_master(lmm_team *team, void *arg)
{
    const product_job *pj = (const product_job *) arg;
    lmm_team_for(team, product_chunk, pj, pj->nchunks);
}

/* P_J = Sigma_DD L_DJ on the dense rows of every sparse column J (P laid out as L: entry
   P[dval[k] + c dstr[k]] for dense row k of column J, column c; added to P), from the lower
   triangle of Sigma_DD (packed in Sd, zero beyond its leading lim x lim). */
void lmm_dense_schur_products(const lmm_model *m, int lim, const double *Sd, double *P)
{
    int Ns = m->Ns;
    if (Ns == 0 || m->md == 0) return;
    if (m->md <= SCHUR_DIRECT) { direct_products(m, lim, Sd, P); return; }
    double flops = 0;
    for (int J = 0; J < Ns; J++) flops += 2 * column_flops(m, J);
    int nthreads = lmm_dense_threads(m->md);
    product_job pj;
    pj.m = m; pj.Sd = Sd; pj.lim = lim;
    pj.cb = make_blocks(m->md);
    pj.g = gather_columns(m);
    pj.gp = pj.g;
    pj.gp.V = lmm_scratch(LMM_SCR_SCHUR_P, pj.g.vb[Ns] + 1);
    memset(pj.gp.V, 0, (pj.g.vb[Ns] + 1) * sizeof(double));
    copy_columns(m, &pj.g, m->Lx, 1);
    pj.nchunks = nthreads > 1 ? 4 * nthreads : 1;
    if (pj.nchunks > Ns) pj.nchunks = Ns;
    int *J0 = (int *) R_alloc(pj.nchunks + 1, sizeof(int));
    double share = flops / pj.nchunks, acc = 0;            /* ranges of about equal work */
    J0[0] = 0;
    for (int t = 1; t <= pj.nchunks; t++) J0[t] = Ns;
    for (int J = 0, t = 1; J < Ns && t < pj.nchunks; J++) {
        acc += 2 * column_flops(m, J);
        if (acc >= t * share) J0[t++] = J + 1;
    }
    pj.J0 = J0;
    pj.cursor = int_scratch(Ns);
    memcpy(pj.cursor, m->dk0, Ns * sizeof(int));
    int per = region_blocks(flops, pj.cb.nb);
    for (pj.b0 = 0; pj.b0 < pj.cb.nb; pj.b0 = pj.b1) {
        pj.b1 = pj.b0 + per < pj.cb.nb ? pj.b0 + per : pj.cb.nb;
        if (nthreads > 1) lmm_team_run(nthreads, product_master, &pj);
        else for (int t = 0; t < pj.nchunks; t++) product_chunk(&pj, t);
        lmm_work(flops * (pj.b1 - pj.b0) / pj.cb.nb);
    }
    copy_columns(m, &pj.gp, P, 0);                          /* P += the gathered products */
}
