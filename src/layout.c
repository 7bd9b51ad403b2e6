/*
 * layout.c -- symbolic analysis: node numbering, the pattern of A = G'WG, the fill of its
 * Cholesky factor, and the split into sparse node columns and one dense trailing block.
 *
 * Node J of term t, level l: J = node0[t] + l (after ordering.c's renumbering: the terms'
 * blocks in the order chosen, node0[t] not increasing with t in general; node0[k] = N).  A row
 * of G touches one node per term (and, when the rows are whitened, those of the raw rows its
 * whitened row combines: residual.h), so A has a block (I, J) exactly when some whitened row
 * touches both.  The factor's pattern follows from the elimination tree: column J of L holds
 * A's column J below the diagonal and the columns of its children, less J itself.
 */
#include "lmm.h"
#include <stdlib.h>
#include <string.h>

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *) a, y = *(const int *) b;
    return (x > y) - (x < y);
}

/* Nodes touched by whitened row i: those of the raw rows Kj[Kp[i] .. Kp[i+1]-1] (row i alone
   without a whitening pattern).  Returns how many distinct nodes were written to S. */
static int row_nodes(const lmm_model *m, const int *const *refs, const int *Kp, const int *Kj,
                     int i, int *S)
{
    int s = 0, e0 = Kp ? Kp[i] : i, e1 = Kp ? Kp[i + 1] : i + 1;
    for (int e = e0; e < e1; e++) {
        int r = Kp ? Kj[e] : i;
        for (int t = 0; t < m->k; t++) {
            int J = m->node0[t] + refs[t][r], dup = 0;
            for (int x = 0; x < s; x++) if (S[x] == J) { dup = 1; break; }
            if (!dup) S[s++] = J;
        }
    }
    return s;
}

/* The pattern of A below the diagonal, by column: rows Ap[J] .. Ap[J+1]-1 of Ai, distinct, > J.
   (Node N, the [X y] node, is in every column and is not listed.) */
static void pattern_A(const lmm_model *m, const int *const *refs, const int *Kp, const int *Kj,
                      int **Ap_out, int **Ai_out)
{
    int N = m->N, n = m->n, len = 1;
    if (Kp) for (int i = 0; i < n; i++) if (Kp[i + 1] - Kp[i] > len) len = Kp[i + 1] - Kp[i];
    int *S = (int *) R_alloc((size_t) len * m->k + 1, sizeof(int));
    int *cnt = (int *) R_alloc(N + 1, sizeof(int));
    memset(cnt, 0, (N + 1) * sizeof(int));
    for (int i = 0; i < n; i++) {                       /* count pairs I > J per column J */
        int s = row_nodes(m, refs, Kp, Kj, i, S);
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++)
                if (S[a] > S[b]) cnt[S[b]]++;
    }
    int *Ap = (int *) R_alloc(N + 1, sizeof(int));
    double total = 0;
    for (int J = 0; J < N; J++) total += cnt[J];
    if (total > INT_MAX - 1) error(_("random-effects design too large: %.0f node pairs"), total);
    Ap[0] = 0;
    for (int J = 0; J < N; J++) Ap[J + 1] = Ap[J] + cnt[J];
    int *Ai = (int *) R_alloc(Ap[N] > 0 ? Ap[N] : 1, sizeof(int));
    int *fill = (int *) R_alloc(N + 1, sizeof(int));
    memcpy(fill, Ap, (N + 1) * sizeof(int));
    for (int i = 0; i < n; i++) {
        int s = row_nodes(m, refs, Kp, Kj, i, S);
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++)
                if (S[a] > S[b]) Ai[fill[S[b]]++] = S[a];
    }
    /* remove duplicates within each column, compacting in place */
    int *mark = (int *) R_alloc(N + 1, sizeof(int)), nz = 0;
    for (int J = 0; J <= N; J++) mark[J] = -1;
    for (int J = 0; J < N; J++) {
        int start = nz;
        for (int e = Ap[J]; e < Ap[J + 1]; e++) {
            int I = Ai[e];
            if (mark[I] != J) { mark[I] = J; Ai[nz++] = I; }
        }
        Ap[J] = start;
    }
    Ap[N] = nz;
    *Ap_out = Ap;
    *Ai_out = Ai;
}

/* Append to m->Li, growing it (m owns the buffer, so an error here leaks nothing). */
static void push_row(lmm_model *m, int *cap, int pos, int I)
{
    if (pos >= *cap) {
        double want = 2.0 * (*cap) + 1024;
        if (want > INT_MAX) error(_("random-effects design too large for the sparse factor"));
        *cap = (int) want;
        m->Li = R_Realloc(m->Li, *cap, int);
    }
    m->Li[pos] = I;
}

/* Column patterns of L for the Z nodes (node N appended to every column), via the
   elimination tree: pattern(J) = A(:,J) u (pattern(children of J) \ {J}).  A column whose
   pattern holds every later node is complete, and so are all columns after it (its parent is
   J + 1): they are not stored, and m->Jc is the first of them (N when none is). */
static void symbolic_factor(lmm_model *m, const int *Ap, const int *Ai)
{
    int N = m->N, cap = 0, nz = 0;
    int *head = (int *) R_alloc(N + 1, sizeof(int)), *next = (int *) R_alloc(N + 1, sizeof(int));
    int *mark = (int *) R_alloc(N + 1, sizeof(int));
    for (int J = 0; J <= N; J++) { head[J] = -1; mark[J] = -1; }
    m->Lp = R_Calloc(N + 1, int);
    m->Jc = N;
    for (int J = 0; J < N; J++) {
        if (J % 1024 == 0) R_CheckUserInterrupt();
        int start = nz;
        m->Lp[J] = start;                               /* ends column J - 1 for its parent */
        if (J > m->Jc) continue;                        /* complete: not stored */
        mark[J] = J;
        for (int e = Ap[J]; e < Ap[J + 1]; e++) {       /* A(:,J) */
            int I = Ai[e];
            if (mark[I] != J) { mark[I] = J; push_row(m, &cap, nz++, I); }
        }
        for (int K = head[J]; K != -1; K = next[K])      /* children of J */
            for (int e = m->Lp[K]; e < m->Lp[K + 1] - 1; e++) {
                int I = m->Li[e];
                if (mark[I] != J) { mark[I] = J; push_row(m, &cap, nz++, I); }
            }
        if (nz > start) qsort(m->Li + start, nz - start, sizeof(int), cmp_int);  /* m->Li may be NULL */
        if (nz - start == N - 1 - J && J < N - 1) m->Jc = J;
        push_row(m, &cap, nz++, N);                     /* the [X y] node */
        int parent = m->Li[start];                      /* smallest row below the diagonal */
        if (parent < N) { next[J] = head[parent]; head[parent] = J; }
    }
    m->Lp[N] = nz;
    for (int J = m->Jc + 1; J < N; J++) m->Lp[J] = m->Lp[m->Jc + 1];
}

/* Sparse column J's scalar rows below the diagonal ([X y] included) and its doubles in Lx. */
static void column_size(const lmm_model *m, int J, double *rows, double *vals)
{
    double r = 0;
    for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) r += m->size[m->Li[e]];
    *rows = r;
    *vals = m->size[J] * (m->size[J] + r);
}

#define SPARSE_SLOWDOWN 4.0     /* a sparse node column's update weighed 4x a dense flop */
#define SPLIT_GAIN 2.0         /* a split inside a term must halve the work ... */
#define SPARSE_MEASURED 16.0   /* ... with sparse columns weighed as measured (scalar nodes:
                                  scattered, latency-bound updates, ~16x a dense flop) */
#define DENSE_RATE 2e10         /* flop/s of the dense kernels, one core: below a second of
                                   dense work (else measured: lmm_dense_rate) */
#define SPARSE_RATE 4e8         /* p_J rows_J^2 per second in the sparse columns (scalar nodes:
                                   scattered, latency-bound; measured on a hub design) */

/* option("lmmc.sparse_slowdown"): the factor above, for tuning the split (positive) */
static double sparse_slowdown(void)
{
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.sparse_slowdown"));
    double v = opt == R_NilValue ? NA_REAL : asReal(opt);
    return (R_FINITE(v) && v > 0) ? v : SPARSE_SLOWDOWN;
}

/* Choose where the dense block starts, at any node Js <= Jc (a complete column is always
   cheaper dense), by the estimated work of one factorisation:
       cost(Js) = 4 sum_{J < Js} p_J (p_J + rows_J)^2 + md(Js)^3 / 3,
   rows_J the scalar rows of column J ([X y]'s included), md(Js) the order of nodes Js .. N.
   The best split at a term boundary (or Jc) by this cost is kept (so that ordinary designs
   keep their layout: nested ones all sparse, crossed ones with the smaller term dense) unless
   a split anywhere halves the work weighed with the measured slowdown of the sparse columns
   (16 instead of 4).  No cap: a user's memory_limit is checked by the caller.  Records the
   prediction (memory, work per evaluation) in m. */
static int choose_split(lmm_model *m)
{
    int N = m->N, Jc = m->Jc, best = Jc;
    double slow = sparse_slowdown();
    double *sparse = (double *) R_alloc(Jc + 1, sizeof(double));   /* prefix work */
    double *vals = (double *) R_alloc(Jc + 1, sizeof(double));     /* prefix doubles */
    sparse[0] = vals[0] = 0;
    for (int J = 0; J < Jc; J++) {
        double rows, v;
        column_size(m, J, &rows, &v);
        double w = m->size[J] + rows;
        sparse[J + 1] = sparse[J] + m->size[J] * w * w;
        vals[J + 1] = vals[J] + v;
    }
    double md = m->p + 1, bestcost = R_PosInf, bndcost = R_PosInf;
    double *cm = (double *) R_alloc(Jc + 1, sizeof(double));      /* cost, measured weights */
    int bnd = Jc;
    for (int J = N - 1; J >= Jc; J--) md += m->size[J];              /* md(Jc) */
    for (int Js = Jc; Js >= 0; Js--) {
        if (Js < Jc) md += m->size[Js];
        double c = slow * sparse[Js] + md * md * md / 3.0;
        cm[Js] = SPARSE_MEASURED * sparse[Js] + md * md * md / 3.0;
        if (cm[Js] < bestcost) { bestcost = cm[Js]; best = Js; }
        if ((Js == 0 || m->term[Js - 1] != m->term[Js]) && c < bndcost) { bndcost = c; bnd = Js; }
    }
    if (cm[bnd] <= SPLIT_GAIN * bestcost) best = bnd;   /* inside a term only when it pays */
    md = m->p + 1;
    for (int J = best; J < N; J++) md += m->size[J];
    m->pred_md = md;
    m->pred_values = vals[best];
    /* Ax, Lx and the gradient's two nLx-long scratch; Ad, Ld and the gradient's Sigma_DD
       packed (about md (md + nb) / 2 each: dense_packed.h) */
    m->pred_bytes = 8.0 * (4.0 * vals[best] + 1.5 * md * (md + LMM_PANEL))
                    + 4.0 * 5.0 * m->Lp[best];
    /* one evaluation with the gradient: the factor and the selected inverse, about twice the
       factor's work in the sparse part, md^3 (factor md^3/3 + inverse 2 md^3/3) in the dense;
       its time: the gradient's sparse part measured at about 1.5 times the factor's */
    m->pred_flops = 2.0 * slow * sparse[best] + md * md * md;
    double dense_s = md * md * md / DENSE_RATE;
    if (dense_s > 1) dense_s = md * md * md / lmm_dense_rate();     /* worth timing the kernels */
    m->pred_seconds = 2.5 * sparse[best] / SPARSE_RATE + dense_s;
    return best;
}

/* The estimated work of a node order at the split choose_split would take: column J (scalar
   size size[J], term term[J], rows[J] scalar Z rows below its diagonal, and [X y]'s p1) sparse
   for J < Js, nodes Js.. and [X y] dense, Js at most the first complete column (as in
   choose_split); the work weighed as measured (choose_split's rule, for ordering.c to compare
   orders); *md_out: the dense order there. */
double lmm_split_cost(int N, const int *size, const int *term, const double *rows, int p1,
                      double *md_out)
{
    double slow = sparse_slowdown(), sparse = 0, md = p1, best = R_PosInf, bnd = R_PosInf;
    double bestm = 0, bndm = 0, bnd_measured = 0, after;
    int Jc = N;
    for (int J = 0; J < N; J++) md += size[J];
    after = md - p1;
    for (int J = 0; J < N - 1; J++) {                   /* the first complete column */
        after -= size[J];                               /* the nodes after J */
        if (rows[J] >= after) { Jc = J; break; }
    }
    for (int Js = 0; Js <= Jc; Js++) {
        double d3 = md * md * md / 3.0, c = slow * sparse + d3, cm = SPARSE_MEASURED * sparse + d3;
        if (cm < best) { best = cm; bestm = md; }
        if ((Js == 0 || Js == N || term[Js - 1] != term[Js]) && c < bnd) {
            bnd = c; bndm = md; bnd_measured = cm;
        }
        if (Js == N) break;
        double w = size[Js] + rows[Js] + p1;
        sparse += size[Js] * w * w;
        md -= size[Js];
    }
    if (bnd_measured <= SPLIT_GAIN * best) { *md_out = bndm; return bnd_measured; }
    *md_out = bestm;
    return best;
}

/* The weight of the sparse columns' work in lmm_split_cost's choice (for ordering.c's bound). */
double lmm_split_weight(void) { return SPARSE_MEASURED; }

/* option("lmmc.memory_limit"): bytes the exact factor may take (unset, NA or Inf: no limit). */
static void check_memory_limit(const lmm_model *m)
{
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.memory_limit"));
    if (opt == R_NilValue) return;
    double lim = asReal(opt);
    if (ISNAN(lim) || !R_FINITE(lim) || m->pred_bytes <= lim) return;
    error(_("the exact factor would need about %.2f GB (dense block of order %.0f: %.2f GB; "
            "sparse part: %.0f values), over memory_limit = %.2f GB"),
          m->pred_bytes / 1e9, m->pred_md,
          8.0 * 1.5 * m->pred_md * (m->pred_md + LMM_PANEL) / 1e9,
          m->pred_values, lim / 1e9);
}

/* option("lmmc.predict_only"): TRUE stops the setup after the symbolic analysis, before any
   numeric storage is allocated (engine_layout_prediction() on a model too large to form). */
static int predict_only(void)
{
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.predict_only"));
    return opt != R_NilValue && asLogical(opt) == TRUE;
}

/* Value offsets of the sparse blocks and of the dense block's nodes. */
static void assign_storage(lmm_model *m)
{
    int Ns = m->Ns;
    R_xlen_t off = 0;
    m->Ldiag = R_Calloc(Ns + 1, int);
    m->Loff = R_Calloc(m->Lp[Ns] + 1, int);
    for (int J = 0; J < Ns; J++) {
        m->Ldiag[J] = (int) off;
        off += (R_xlen_t) m->size[J] * m->size[J];
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) {
            m->Loff[e] = (int) off;
            off += (R_xlen_t) m->size[m->Li[e]] * m->size[J];
        }
        if (off > INT_MAX) error(_("random-effects design too large for the sparse factor"));
    }
    m->nLx = off;
    m->doff = R_Calloc(m->N - Ns + 2, int);
    int d = 0;
    for (int J = Ns; J <= m->N; J++) { m->doff[J - Ns] = d; d += m->size[J]; }
    m->md = d;
    m->Ax = R_Calloc(m->nLx + 1, double);
    m->Lx = R_Calloc(m->nLx + 1, double);
    m->Ad = R_Calloc(lmm_packed_len(m->md) + 1, double);     /* lower triangle: dense_packed.h */
    m->Ld = R_Calloc(lmm_packed_len(m->md) + 1, double);     /* lower triangle: dense_packed.h */
}

/* Index the sparse columns' rows that lie in the dense block (see lmm.h). */
static void index_dense_rows(lmm_model *m)
{
    int Ns = m->Ns, nD = m->N - Ns + 1;
    m->dk0 = R_Calloc(Ns + 1, int);
    m->dlp = R_Calloc(nD + 1, int);
    double nk = 0;
    for (int J = 0; J < Ns; J++) {
        m->dk0[J] = (int) nk;
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++)
            if (m->Li[e] >= Ns) { nk += m->size[m->Li[e]]; m->dlp[m->Li[e] - Ns + 1]++; }
        if (nk > INT_MAX) error(_("random-effects design too large for the sparse factor"));
    }
    m->dk0[Ns] = (int) nk;
    for (int D = 0; D < nD; D++) m->dlp[D + 1] += m->dlp[D];
    m->drow = R_Calloc((size_t) nk + 1, int);
    m->dval = R_Calloc((size_t) nk + 1, int);
    m->dstr = R_Calloc((size_t) nk + 1, int);
    m->dlJ = R_Calloc((size_t) m->dlp[nD] + 1, int);
    m->dlk = R_Calloc((size_t) m->dlp[nD] + 1, int);
    int *fill = (int *) R_alloc(nD + 1, sizeof(int));
    memcpy(fill, m->dlp, (nD + 1) * sizeof(int));
    for (int J = 0; J < Ns; J++) {
        int k = m->dk0[J];
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) {
            int I = m->Li[e];
            if (I < Ns) continue;
            int slot = fill[I - Ns]++;
            m->dlJ[slot] = J;
            m->dlk[slot] = k;
            for (int r = 0; r < m->size[I]; r++, k++) {
                m->drow[k] = m->doff[I - Ns] + r;
                m->dval[k] = m->Loff[e] + r;
                m->dstr[k] = m->size[I];
            }
        }
    }
}

int lmm_theta_length(int k, const int *pt)
{
    int nth = 0;
    for (int t = 0; t < k; t++) nth += pt[t] * (pt[t] + 1) / 2;
    return nth;
}

/* Each node's size, term and scalar offset (in node order: u and every per-node vector inside
   the engine) from node0 -- terms' blocks in any order. */
static void node_maps(lmm_model *m)
{
    for (int t = 0; t < m->k; t++)
        for (int J = m->node0[t]; J < m->node0[t] + m->nlt[t]; J++) {
            m->size[J] = m->pt[t];
            m->term[J] = t;
        }
    m->size[m->N] = m->p + 1;
    m->term[m->N] = m->k;
    m->zoff[0] = 0;
    for (int J = 0; J < m->N; J++) m->zoff[J + 1] = m->zoff[J] + m->size[J];
}

/* n_J: the data rows in each level's node, from the 0-based level codes (in node order) */
void lmm_count_rows(lmm_model *m, const int *const *refs)
{
    m->nrows = R_Calloc(m->N + 1, int);
    for (int t = 0; t < m->k; t++)
        for (int i = 0; i < m->n; i++) m->nrows[m->node0[t] + refs[t][i]]++;
}

/* The dimensions of the model and the (term, level) -> node numbering in R's order, node
   J = node0[t] + level, term blocks end to end and the [X y] node N last (the exact and the
   iterative setup share it): n, p, k, pt, nlt, node0, theta0, N, q, ntheta, size, term,
   size_max, theta_cur. */
void lmm_layout_dims(lmm_model *m, int n, int p, int k, const int *pt, const int *nlt)
{
    m->n = n; m->p = p; m->k = k;
    m->pt = R_Calloc(k + 1, int);
    m->nlt = R_Calloc(k + 1, int);
    m->node0 = R_Calloc(k + 1, int);
    m->theta0 = R_Calloc(k + 1, int);
    double N = 0, q = 0;
    for (int t = 0; t < k; t++) {
        m->pt[t] = pt[t]; m->nlt[t] = nlt[t];
        m->node0[t] = (int) N;
        m->theta0[t] = t ? m->theta0[t - 1] + pt[t - 1] * (pt[t - 1] + 1) / 2 : 0;
        N += nlt[t]; q += (double) nlt[t] * pt[t];
    }
    if (N > INT_MAX / 2 || q > INT_MAX / 2) error(_("too many random effects"));
    m->N = (int) N; m->q = (int) q;
    m->node0[k] = m->N;
    m->ntheta = lmm_theta_length(k, pt);
    m->theta0[k] = m->ntheta;
    m->size = R_Calloc(m->N + 1, int);
    m->term = R_Calloc(m->N + 1, int);
    m->size_max = p + 1;
    for (int t = 0; t < k; t++) {
        if (pt[t] > m->size_max) m->size_max = pt[t];
        for (int J = m->node0[t]; J < m->node0[t] + nlt[t]; J++) { m->size[J] = pt[t]; m->term[J] = t; }
    }
    m->size[m->N] = p + 1;
    m->term[m->N] = k;
    m->theta_cur = R_Calloc(m->ntheta + 1, double);
}

/* Fill m (zeroed, owned by the caller's external pointer) with the layout of the model. */
void lmm_layout_fill(lmm_model *m, int n, int p, int k, const int *pt, const int *nlt,
                     int *const *refs, const int *Kp, const int *Kj)
{
    lmm_layout_dims(m, n, p, k, pt, nlt);
    m->zoff = R_Calloc(m->N + 1, int);
    node_maps(m);

    const int *const *rc = (const int *const *) refs;
    int *Ap, *Ai;
    pattern_A(m, rc, Kp, Kj, &Ap, &Ai);
    if (lmm_ordering_wanted()) {                        /* ordering.c: levels renumbered */
        lmm_order_levels(m, Ap, Ai);                    /* may renumber the terms' blocks */
        if (m->pinv) {
            lmm_order_recode(m, n, refs);
            node_maps(m);
            pattern_A(m, rc, Kp, Kj, &Ap, &Ai);
        }
    }
    lmm_count_rows(m, (const int *const *) refs);
    symbolic_factor(m, Ap, Ai);
    m->Ns = choose_split(m);
    check_memory_limit(m);
    if (predict_only()) { m->predict_only = 1; return; }   /* the prediction alone */
    assign_storage(m);
    index_dense_rows(m);
}

/* A workspace of len doubles that lives with the model (grown when needed, freed with it), so
   that evaluations do not map fresh pages for their large scratch arrays every time (measured:
   page faults and zeroing were 13% of an AR(1) growth-curve evaluation). */
double *lmm_workspace(lmm_model *m, int slot, size_t len)
{
    if (len < 1) len = 1;
    if (m->work_len[slot] < len) {
        if (m->work[slot]) R_Free(m->work[slot]);
        m->work[slot] = NULL;
        m->work_len[slot] = 0;
        m->work[slot] = R_Calloc(len, double);
        m->work_len[slot] = len;
    }
    return m->work[slot];
}

void lmm_free(lmm_model *m)
{
    if (!m) return;
    for (int i = 0; i < 2; i++) if (m->work[i]) { R_Free(m->work[i]); m->work[i] = NULL; }
    int **ip[] = {&m->pt, &m->nlt, &m->node0, &m->theta0, &m->size, &m->term, &m->nrows,
                  &m->pinv, &m->zoff, &m->Lp, &m->Li, &m->Loff, &m->Ldiag, &m->doff,
                  &m->dk0, &m->drow, &m->dval, &m->dstr, &m->dlp, &m->dlJ, &m->dlk};
    for (size_t i = 0; i < sizeof(ip) / sizeof(ip[0]); i++) if (*ip[i]) { R_Free(*ip[i]); *ip[i] = NULL; }
    double **dp[] = {&m->Ax, &m->Lx, &m->Ad, &m->Ld, &m->theta_cur, &m->std_mu, &m->std_d, &m->std_g};
    for (size_t i = 0; i < sizeof(dp) / sizeof(dp[0]); i++) if (*dp[i]) { R_Free(*dp[i]); *dp[i] = NULL; }
    R_Free(m);
}

/* Where block (I, J), I >= J, of a node-blocked matrix lives: in the sparse blocks `sx` (leading
   dimension size_I; the diagonal block is stored as a full square) or in the dense block `dx`
   (packed lower triangle, dense_packed.h: the block's first column, *ld the distance to the next
   column of its panel -- a node may straddle a panel boundary, so walk a dense block's columns
   with lmm_block_col).  Returns NULL when (I, J) is outside the pattern. */
double *lmm_block_ptr(const lmm_model *m, double *sx, double *dx, int I, int J, int *ld)
{
    if (J >= m->Ns) {
        lmm_dmat D = lmm_dmat_packed(dx, m->md);
        return lmm_dmat_at(&D, m->doff[I - m->Ns], m->doff[J - m->Ns], ld);
    }
    *ld = m->size[I];
    if (I == J) return sx + m->Ldiag[J];
    int lo = m->Lp[J], hi = m->Lp[J + 1] - 1;         /* binary search for row node I */
    while (lo <= hi) {
        int mid = (lo + hi) / 2, r = m->Li[mid];
        if (r == I) return sx + m->Loff[mid];
        if (r < I) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}
