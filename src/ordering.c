/*
 * ordering.c -- the permutation layer: (term, level) <-> node.
 *
 * The engine numbers nodes term-major, J = node0[t] + l.  Here the levels l of each term are
 * renumbered so that the Cholesky factor of A = G'WG fills in little: a minimum-degree order
 * constrained by term (all of term 0's nodes first, then term 1's, ...; CAMD's constraint
 * sets), found on the quotient graph of the elimination (Amestoy, Davis & Duff's approximate
 * external degree, without supervariables).  Eliminating term 0 turns each of its levels into
 * a clique of the later levels it touches; the later terms' levels are then ordered on that
 * Schur complement, so that, in a users x items design, items of small communities come first
 * and the popular "hub" items, adjacent to nearly everything, last -- where the dense block
 * takes them.
 *
 * pinv[node0[t] + l] is the node of term t's level l (1-based code l + 1 in R); the 0-based
 * level codes are recoded through it once (lmm_order_recode), so that everything downstream
 * keeps using node0[t] + code.  R never sees the order: the .Call entries map per-Z-column
 * vectors back (lmm_z_unpermute) and column indices in (lmm_z_column).
 */
#include "lmm.h"
#include <string.h>

/* ---- a pool of int slices (R_alloc'ed chunks, freed with the .Call) ---------------------- */

typedef struct { int *chunk; size_t used, cap; double total; } int_pool;

static int *pool_take(int_pool *pl, size_t len)
{
    if (pl->used + len > pl->cap) {
        size_t cap = len > ((size_t) 1 << 20) ? len : ((size_t) 1 << 20);
        pl->chunk = (int *) R_alloc(cap, sizeof(int));
        pl->cap = cap;
        pl->used = 0;
    }
    int *s = pl->chunk + pl->used;
    pl->used += len;
    pl->total += (double) len;
    return s;
}

/* ---- an indexed min-heap of variables keyed by (degree, index) --------------------------- */

typedef struct { int *h, *pos, n; const int *deg; } md_heap;

static int heap_less(const md_heap *q, int a, int b)
{
    return q->deg[a] < q->deg[b] || (q->deg[a] == q->deg[b] && a < b);
}

static void heap_swap(md_heap *q, int i, int j)
{
    int a = q->h[i], b = q->h[j];
    q->h[i] = b; q->h[j] = a;
    q->pos[b] = i; q->pos[a] = j;
}

static void heap_up(md_heap *q, int i)
{
    while (i > 0 && heap_less(q, q->h[i], q->h[(i - 1) / 2])) { heap_swap(q, i, (i - 1) / 2); i = (i - 1) / 2; }
}

static void heap_down(md_heap *q, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < q->n && heap_less(q, q->h[l], q->h[s])) s = l;
        if (r < q->n && heap_less(q, q->h[r], q->h[s])) s = r;
        if (s == i) return;
        heap_swap(q, i, s);
        i = s;
    }
}

static void heap_push(md_heap *q, int v) { q->h[q->n] = v; q->pos[v] = q->n++; heap_up(q, q->n - 1); }

static int heap_pop(md_heap *q)
{
    int v = q->h[0];
    heap_swap(q, 0, --q->n);
    q->pos[v] = -1;
    heap_down(q, 0);
    return v;
}

static void heap_update(md_heap *q, int v)      /* after deg[v] changed */
{
    if (q->pos[v] < 0) return;
    heap_up(q, q->pos[v]);
    heap_down(q, q->pos[v]);
}

/* ---- the quotient graph ------------------------------------------------------------------ */

/* Variable i: live variable neighbours adj[i][0 .. alen[i]-1] (pruned as the elimination goes)
   and adjacent elements el[i][0 .. elen[i]-1]; element e (named after its pivot): the variables
   Le[e][0 .. Lsize[e]-1].  state: 0 variable, 1 element, 2 element absorbed. */
typedef struct {
    int n, nrem, stamp;
    int **adj, *alen, **el, *elen, *ecap, **Le, *Lsize;
    int *deg, *state, *mark, *w, *wmark;
    int_pool pool;
} md_graph;

static void add_element(md_graph *g, int i, int e)
{
    if (g->elen[i] == g->ecap[i]) {
        int cap = 2 * g->ecap[i] + 4, *s = pool_take(&g->pool, cap);
        if (g->elen[i]) memcpy(s, g->el[i], g->elen[i] * sizeof(int));
        g->el[i] = s;
        g->ecap[i] = cap;
    }
    g->el[i][g->elen[i]++] = e;
}

/* Lp = (adj(p) u the variables of p's elements) \ {p}: the new element p; p's elements are
   absorbed. */
static void form_element(md_graph *g, int p, int *buf)
{
    int len = 0, s = ++g->stamp;
    g->mark[p] = s;
    for (int a = 0; a < g->alen[p]; a++) {
        int v = g->adj[p][a];
        if (g->state[v] == 0 && g->mark[v] != s) { g->mark[v] = s; buf[len++] = v; }
    }
    for (int a = 0; a < g->elen[p]; a++) {
        int e = g->el[p][a];
        if (g->state[e] != 1) continue;
        for (int b = 0; b < g->Lsize[e]; b++) {
            int v = g->Le[e][b];
            if (g->state[v] == 0 && g->mark[v] != s) { g->mark[v] = s; buf[len++] = v; }
        }
        g->state[e] = 2;                                      /* absorbed into p */
    }
    g->state[p] = 1;
    g->Le[p] = pool_take(&g->pool, len ? len : 1);
    memcpy(g->Le[p], buf, len * sizeof(int));
    g->Lsize[p] = len;
    g->nrem--;
}

/* The exact external degree of variable i: |adj(i) u the variables of its elements| - 1. */
static int exact_degree(md_graph *g, int i)
{
    int d = 0, s = ++g->stamp;
    g->mark[i] = s;
    for (int a = 0; a < g->alen[i]; a++) {
        int v = g->adj[i][a];
        if (g->state[v] == 0 && g->mark[v] != s) { g->mark[v] = s; d++; }
    }
    for (int a = 0; a < g->elen[i]; a++) {
        int e = g->el[i][a];
        if (g->state[e] != 1) continue;
        for (int b = 0; b < g->Lsize[e]; b++) {
            int v = g->Le[e][b];
            if (g->state[v] == 0 && g->mark[v] != s) { g->mark[v] = s; d++; }
        }
    }
    return d;
}

/* Approximate external degrees of Lp's variables (AMD): |Le \ Lp| for every other element e
   they touch, then d_i = min(nrem - 1, d_i + |Lp| - 1, |adj_i| + |Lp| - 1 + sum_e |Le \ Lp|). */
static void update_degrees(md_graph *g, int p, md_heap *q)
{
    int s = g->stamp, np = g->Lsize[p];                       /* mark[v] == s: v in Lp */
    const int *Lp = g->Le[p];
    for (int a = 0; a < np; a++) {                            /* w_e = |Le \ Lp| */
        int i = Lp[a];
        for (int b = 0; b < g->elen[i]; b++) {
            int e = g->el[i][b];
            if (g->state[e] != 1) continue;
            if (g->wmark[e] != s) { g->wmark[e] = s; g->w[e] = g->Lsize[e]; }
            g->w[e]--;
        }
    }
    for (int a = 0; a < np; a++) {
        int i = Lp[a], keep = 0;
        double ext = 0;
        for (int b = 0; b < g->elen[i]; b++) {                /* live elements, p's absorbed */
            int e = g->el[i][b];
            if (g->state[e] != 1) continue;
            if (g->w[e] == 0) { g->state[e] = 2; continue; }  /* Le within Lp: absorbed */
            g->el[i][keep++] = e;
            ext += g->w[e];
        }
        g->elen[i] = keep;
        add_element(g, i, p);
        keep = 0;
        for (int b = 0; b < g->alen[i]; b++) {                /* variables not covered by Lp */
            int v = g->adj[i][b];
            if (g->state[v] == 0 && g->mark[v] != s) g->adj[i][keep++] = v;
        }
        g->alen[i] = keep;
        ext += keep + np - 1;
        double d = g->deg[i] + np - 1;
        if (ext < d) d = ext;
        if (g->nrem - 1 < d) d = g->nrem - 1;
        g->deg[i] = (int) d;
        heap_update(q, i);
    }
}

/* A minimum-degree order of the n variables of the symmetric graph (Cp, Ci) (no diagonal),
   class by class (cls nondecreasing in the result): order[k] = the k-th variable eliminated.
   Once the eligible variables are adjacent to everything left (the rest is dense), or the
   quotient graph outgrows `budget` ints, the rest goes in (class, degree) order. */
static void md_order(int n, const int *Cp, const int *Ci, int ncls, const int *cls0, double budget,
                     int *order)
{
    md_graph g;
    memset(&g, 0, sizeof g);
    g.n = n; g.nrem = n;
    g.adj = (int **) R_alloc(n, sizeof(int *));
    g.el = (int **) R_alloc(n, sizeof(int *));
    g.Le = (int **) R_alloc(n, sizeof(int *));
    int *ints = (int *) R_alloc((size_t) 10 * n, sizeof(int));
    memset(ints, 0, (size_t) 10 * n * sizeof(int));
    g.alen = ints; g.elen = ints + n; g.ecap = ints + 2 * (size_t) n; g.Lsize = ints + 3 * (size_t) n;
    g.deg = ints + 4 * (size_t) n; g.state = ints + 5 * (size_t) n; g.mark = ints + 6 * (size_t) n;
    g.w = ints + 7 * (size_t) n; g.wmark = ints + 8 * (size_t) n;
    int *buf = ints + 9 * (size_t) n;
    for (int i = 0; i < n; i++) {
        g.adj[i] = pool_take(&g.pool, Cp[i + 1] - Cp[i] + 1);
        memcpy(g.adj[i], Ci + Cp[i], (Cp[i + 1] - Cp[i]) * sizeof(int));
        g.alen[i] = g.deg[i] = Cp[i + 1] - Cp[i];
        g.el[i] = NULL;
        g.wmark[i] = -1;
    }
    md_heap q = {(int *) R_alloc(n + 1, sizeof(int)), (int *) R_alloc(n + 1, sizeof(int)), 0, g.deg};
    for (int i = 0; i < n; i++) q.pos[i] = -1;
    int k = 0, rest = 0;
    for (int c = 0; c < ncls; c++) {
        for (int i = cls0[c]; i < cls0[c + 1]; i++) heap_push(&q, i);
        while (q.n > 0) {
            if (k % 256 == 0) R_CheckUserInterrupt();
            if (!rest && g.pool.total > budget) rest = 1;
            if (!rest && g.deg[q.h[0]] >= g.nrem - 1) {           /* dense? the exact degree says */
                int top = q.h[0];
                g.deg[top] = exact_degree(&g, top);
                heap_update(&q, top);
                if (q.h[0] == top && g.deg[top] >= g.nrem - 1) rest = 1;
                continue;
            }
            int p = heap_pop(&q);
            order[k++] = p;
            if (rest) continue;                               /* the dense rest: no elimination */
            form_element(&g, p, buf);
            update_degrees(&g, p, &q);
        }
    }                      /* once dense, the later classes are complete: they stay in order */
}

/* ---- the model's permutation ------------------------------------------------------------- */

/* The symmetric node graph of A's Z nodes from its lower pattern (Ap, Ai; node N not listed). */
static void symmetric_graph(int N, const int *Ap, const int *Ai, int **Cp_out, int **Ci_out)
{
    int *Cp = (int *) R_alloc(N + 1, sizeof(int)), *fill = (int *) R_alloc(N + 1, sizeof(int));
    memset(Cp, 0, (N + 1) * sizeof(int));
    for (int J = 0; J < N; J++)
        for (int e = Ap[J]; e < Ap[J + 1]; e++) { Cp[Ai[e] + 1]++; Cp[J + 1]++; }
    for (int J = 0; J < N; J++) Cp[J + 1] += Cp[J];
    int *Ci = (int *) R_alloc(Cp[N] > 0 ? Cp[N] : 1, sizeof(int));
    memcpy(fill, Cp, (N + 1) * sizeof(int));
    for (int J = 0; J < N; J++)
        for (int e = Ap[J]; e < Ap[J + 1]; e++) { Ci[fill[J]++] = Ai[e]; Ci[fill[Ai[e]]++] = J; }
    *Cp_out = Cp;
    *Ci_out = Ci;
}

/* option("lmmc.ordering"): "none" keeps the levels' order (a switch for tests); anything else,
   or unset, orders them. */
int lmm_ordering_wanted(void)
{
    SEXP opt = Rf_GetOption1(Rf_install("lmmc.ordering"));
    if (isString(opt) && LENGTH(opt) == 1 && STRING_ELT(opt, 0) != NA_STRING)
        return strcmp(CHAR(STRING_ELT(opt, 0)), "none") != 0;
    return 1;
}

/* Choose the order of each term's levels from the pattern of A (term-major numbering) and keep
   it in m->pinv (pinv[node0[t] + l] = the node of level l); m->pinv stays NULL when the order
   found is the identity. */
void lmm_order_levels(lmm_model *m, const int *Ap, const int *Ai)
{
    int N = m->N;
    if (N < 2) return;
    int *Cp, *Ci;
    symmetric_graph(N, Ap, Ai, &Cp, &Ci);
    int *order = (int *) R_alloc(N, sizeof(int));
    double budget = 4.0 * Cp[N] + 2e7;                        /* ints of quotient graph */
    md_order(N, Cp, Ci, m->k, m->node0, budget, order);
    int ident = 1;
    for (int J = 0; J < N; J++) if (order[J] != J) { ident = 0; break; }
    if (ident) return;
    m->pinv = R_Calloc(N + 1, int);
    for (int J = 0; J < N; J++) m->pinv[order[J]] = J;
}

/* Recode the 0-based level codes of the n raw rows through pinv, in place. */
void lmm_order_recode(const lmm_model *m, int n, int *const *refs)
{
    if (!m->pinv) return;
    for (int t = 0; t < m->k; t++) {
        const int *pt = m->pinv + m->node0[t];
        int *r = refs[t], J0 = m->node0[t];
        for (int i = 0; i < n; i++) r[i] = pt[r[i]] - J0;
    }
}

/* Per-Z-column values in node order (block b_t per level: p_t, or p_t^2 when `square`) back
   to R's order (term-major, levels in R's order): out[level l] = in[node pinv(l)]. */
void lmm_z_unpermute(const lmm_model *m, const double *in, double *out, int square)
{
    size_t off = 0;
    for (int t = 0; t < m->k; t++) {
        size_t b = square ? (size_t) m->pt[t] * m->pt[t] : (size_t) m->pt[t];
        int J0 = m->node0[t];
        for (int l = 0; l < m->nlt[t]; l++) {
            int node = m->pinv ? m->pinv[J0 + l] - J0 : l;
            memcpy(out + off + l * b, in + off + node * b, b * sizeof(double));
        }
        off += b * m->nlt[t];
    }
}

/* The engine's 0-based column of [Z X] for R's 0-based column c (X's columns are not moved). */
int lmm_z_column(const lmm_model *m, int c)
{
    if (!m->pinv || c >= m->q) return c;
    int off = 0;
    for (int t = 0; t < m->k; t++) {
        int width = m->nlt[t] * m->pt[t];
        if (c < off + width) {
            int l = (c - off) / m->pt[t], r = (c - off) % m->pt[t], J0 = m->node0[t];
            return off + (m->pinv[J0 + l] - J0) * m->pt[t] + r;
        }
        off += width;
    }
    return c;
}
