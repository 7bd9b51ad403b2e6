/*
 * ordering.c -- the permutation layer: (term, level) <-> node.
 *
 * R numbers the random effects term by term (lme4's order of the terms), levels in R's order.
 * The engine numbers nodes term-major too, J = node0[t] + l, but both the order of the terms'
 * blocks and the order of the levels within each term are chosen here, so that the Cholesky
 * factor of A = G'WG fills in little: a minimum-degree order constrained by term (all of one
 * term's nodes before the next term's: CAMD's constraint sets), found on the quotient graph of
 * the elimination (Amestoy, Davis & Duff's approximate external degree, without supervariables),
 * for every order of up to three terms, keeping the one of least predicted work (layout.c's
 * cost model).  Eliminating the first term turns each of its levels into a clique of the later
 * levels it touches; the later terms' levels are ordered on that Schur complement, so that in a
 * users x items design the users go first (whichever term lme4 puts first), the items of small
 * communities next and the popular "hub" items, adjacent to nearly everything, last -- where
 * the dense block takes them.  When a large dense block remains, the busiest levels of each
 * term (most neighbours in A) are also tried deferred to the end of their term.
 *
 * pinv[r0(t) + l] is the node of term t's level l (r0(t): the levels of the terms before t in
 * R's order); the 0-based level codes are recoded through it once (lmm_order_recode), so that
 * everything downstream keeps using node0[t] + code, and u and every per-node vector inside the
 * engine are in node order.  R never sees the order: the .Call entries map per-Z-column
 * vectors back (lmm_z_unpermute) and column indices in (lmm_z_column).
 */
#include "lmm.h"
#include <string.h>
#include <math.h>
#include <limits.h>

/* ---- a pool of int slices (R_alloc'ed chunks, freed with the .Call) ---------------------- */

typedef struct { int *chunk; size_t used, cap; double total; } int_pool;

static int *pool_take(int_pool *pl, size_t len)
{
    if (pl->used + len > pl->cap) {             /* chunks of 4096 ints doubling to 2^20 */
        size_t cap = pl->cap ? 2 * pl->cap : 4096;
        if (cap > ((size_t) 1 << 20)) cap = (size_t) 1 << 20;
        if (cap < len) cap = len;
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
    double work;             /* list entries scanned by update_degrees */
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
        g->work += 2.0 * g->elen[i] + g->alen[i];
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
   class by class: class c's variables are cnode[cptr[c] .. cptr[c+1]-1], all eliminated before
   class c + 1's.  order[k] = the k-th variable eliminated, rows[k] the scalar rows below the
   diagonal of its column of L (size[v]: the scalar size of variable v).  Once the eligible
   variables are adjacent to everything left (the rest is dense), or the quotient graph
   outgrows `budget` ints, the rest goes in (class, degree) order, complete. */
#define MD_WORK_PER_EDGE 2000.0

static void md_order(int n, const int *Cp, const int *Ci, const int *size, int ncls,
                     const int *cnode, const int *cptr, double budget, int *order, double *rows)
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
    /* Without supervariables, a variable next to many elements (an item rated by most users)
       makes every update that touches it scan them all: quadratic in its degree.  Past
       MD_WORK_PER_EDGE list entries per edge of the graph the greedy order stops and the rest
       is taken as dense (the caller then keeps R's order unless this one is still better). */
    double work_cap = MD_WORK_PER_EDGE * ((double) Cp[n] + n) + 1e7;
    int k = 0, rest = 0, krest = n;
    for (int c = 0; c < ncls; c++) {
        for (int x = cptr[c]; x < cptr[c + 1]; x++) heap_push(&q, cnode[x]);
        while (q.n > 0) {
            if (k % 256 == 0) R_CheckUserInterrupt();
            if (!rest && (g.pool.total > budget || g.work > work_cap)) { rest = 1; krest = k; }
            if (!rest && g.deg[q.h[0]] >= g.nrem - 1) {           /* dense? the exact degree says */
                int top = q.h[0];
                g.deg[top] = exact_degree(&g, top);
                heap_update(&q, top);
                if (q.h[0] == top && g.deg[top] >= g.nrem - 1) { rest = 1; krest = k; }
                continue;
            }
            int p = heap_pop(&q);
            order[k++] = p;
            if (rest) continue;                               /* the dense rest: no elimination */
            form_element(&g, p, buf);
            double r = 0;
            for (int x = 0; x < g.Lsize[p]; x++) r += size[g.Le[p][x]];
            rows[k - 1] = r;
            update_degrees(&g, p, &q);
        }
    }                      /* once dense, the later classes are complete: they stay in order */
    double r = 0;
    for (int x = n - 1; x >= krest; x--) { rows[x] = r; r += size[order[x]]; }
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

/* The constraint classes, term by term in the order tord: each term's levels split into the
   ordinary ones and the fraction f of them with the most neighbours in A (its busiest levels:
   popular items), the latter after the former -- a hint that keeps hubs, which join otherwise
   separate parts of the graph, out of the greedy order's early steps.  Nodes: R's numbering. */
static int defer_classes(const lmm_model *m, const int *r0, const int *tord, const int *Cp,
                         double f, int *cnode, int *cptr)
{
    int nc = 0, x = 0;
    for (int i = 0; i < m->k; i++) {
        int t = tord[i], J0 = r0[t], nl = m->nlt[t], nd = (int) ceil(f * nl);
        if (nd > nl) nd = nl;
        int thr = INT_MAX;                                  /* degree of the nd-th busiest */
        if (nd > 0) {
            int *deg = (int *) R_alloc(nl, sizeof(int));
            for (int l = 0; l < nl; l++) deg[l] = -(Cp[J0 + l + 1] - Cp[J0 + l]);
            R_isort(deg, nl);
            thr = -deg[nd - 1];
        }
        cptr[nc++] = x;
        for (int l = 0; l < nl; l++) if (Cp[J0 + l + 1] - Cp[J0 + l] < thr) cnode[x++] = J0 + l;
        cptr[nc++] = x;
        for (int l = 0; l < nl; l++) if (Cp[J0 + l + 1] - Cp[J0 + l] >= thr) cnode[x++] = J0 + l;
    }
    cptr[nc] = x;
    return nc;
}

/* Other orders of the terms are not tried when R's is cheap already (its predicted work per
   evaluation below SMALL_WORK) and the graph is large (more than SMALL_GRAPH entries, so that
   each try costs setup time): they cannot pay. */
#define SMALL_WORK 1e9
#define SMALL_GRAPH 1e5

/* The orders of the terms tried: all of them for up to 3 terms, else R's (lme4's) alone; R's
   order first. */
static int term_orders(int k, int *tords)
{
    if (k > 3 || k < 2) { for (int t = 0; t < k; t++) tords[t] = t; return 1; }
    int n = 0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            if (b == a) continue;
            if (k == 2) { tords[2 * n] = a; tords[2 * n + 1] = b; n++; continue; }
            int c = 3 - a - b;
            tords[3 * n] = a; tords[3 * n + 1] = b; tords[3 * n + 2] = c; n++;
        }
    return n;
}

typedef struct {
    int N, ncls, *order, *cnode, *cptr, *osize, *oterm;
    double *rows, budget;
    const int *Cp, *Ci;
} order_try;

/* One candidate: the constrained minimum-degree order for term order tord and deferred
   fraction f, and its least predicted work over the splits. */
static double try_order(const lmm_model *m, const int *r0, const int *tord, double f,
                        order_try *w, double *md)
{
    const void *vmax = vmaxget();
    int ncls = defer_classes(m, r0, tord, w->Cp, f, w->cnode, w->cptr);
    md_order(w->N, w->Cp, w->Ci, m->size, ncls, w->cnode, w->cptr, w->budget, w->order, w->rows);
    for (int J = 0; J < w->N; J++) {
        w->osize[J] = m->size[w->order[J]];
        w->oterm[J] = m->term[w->order[J]];
    }
    double cost = lmm_split_cost(w->N, w->osize, w->oterm, w->rows, m->p + 1, md);
    vmaxset(vmax);
    return cost;
}

#define KEEP_GAIN 0.8   /* an order is taken when it saves a fifth of R's order's work */

/* The predicted work of R's own order (every node its own class: the elimination in order). */
static double identity_cost(const lmm_model *m, order_try *w)
{
    const void *vmax = vmaxget();
    int N = w->N, *cptr = (int *) R_alloc(N + 1, sizeof(int));
    for (int J = 0; J <= N; J++) cptr[J] = J;
    for (int J = 0; J < N; J++) w->cnode[J] = J;
    md_order(N, w->Cp, w->Ci, m->size, N, w->cnode, cptr, w->budget, w->order, w->rows);
    for (int J = 0; J < N; J++) {
        w->osize[J] = m->size[w->order[J]];
        w->oterm[J] = m->term[w->order[J]];
    }
    double md, cost = lmm_split_cost(N, w->osize, w->oterm, w->rows, m->p + 1, &md);
    vmaxset(vmax);
    return cost;
}

/* Choose the order of the terms and of each term's levels from the pattern of A (R's
   numbering on entry: node0 increasing) and keep it in m->pinv (R's node -> node) with the
   terms' new first nodes in m->node0; m->pinv stays NULL when the order is the identity.
   For each term order, the plain constrained minimum-degree order; for the best of them, when
   it leaves a large dense block, the same with a growing fraction of each term's busiest
   levels deferred -- keeping the order of least predicted work (lmm_split_cost), unless R's
   own order is within a fifth of it (then nothing changes). */
void lmm_order_levels(lmm_model *m, const int *Ap, const int *Ai)
{
    int N = m->N, k = m->k;
    if (N < 2 || Ap[N] == 0) return;             /* no two Z nodes share a row: nothing fills in */
    int *Cp, *Ci;
    symmetric_graph(N, Ap, Ai, &Cp, &Ci);
    order_try w = {N, 0, (int *) R_alloc(N, sizeof(int)), (int *) R_alloc(N, sizeof(int)),
                   (int *) R_alloc(2 * k + 1, sizeof(int)), (int *) R_alloc(N, sizeof(int)),
                   (int *) R_alloc(N, sizeof(int)), (double *) R_alloc(N, sizeof(double)),
                   4.0 * Cp[N] + 2e7, Cp, Ci};
    int *r0 = (int *) R_alloc(k + 1, sizeof(int)), *best = (int *) R_alloc(N, sizeof(int));
    int *tords = (int *) R_alloc(6 * (k + 1), sizeof(int)), *tbest = (int *) R_alloc(k + 1, sizeof(int));
    for (int t = 0; t < k; t++) r0[t] = m->node0[t];
    int nord = term_orders(k, tords);
    double bestcost = R_PosInf, md, bestmd = 0;
    for (int o = 0; o < nord; o++) {                      /* R's order first (o = 0) */
        if (o > 0 && bestcost < SMALL_WORK && Cp[N] > SMALL_GRAPH) break;   /* cannot pay */
        double cost = try_order(m, r0, tords + o * k, 0.0, &w, &md);
        if (cost < bestcost) {
            bestcost = cost; bestmd = md;
            memcpy(best, w.order, N * sizeof(int));
            memcpy(tbest, tords + o * k, k * sizeof(int));
        }
    }
    const double fractions[] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2};
    for (int c = 0; c < 6 && bestmd > 1000; c++) {          /* a large dense block: hubs? */
        double cost = try_order(m, r0, tbest, fractions[c], &w, &md);
        if (cost < bestcost) { bestcost = cost; memcpy(best, w.order, N * sizeof(int)); }
    }
    if (bestcost > KEEP_GAIN * identity_cost(m, &w)) return;  /* R's order is about as good */
    int ident = 1;
    for (int J = 0; J < N; J++) if (best[J] != J) { ident = 0; break; }
    if (ident) return;
    m->pinv = R_Calloc(N + 1, int);
    for (int J = 0; J < N; J++) m->pinv[best[J]] = J;
    for (int i = 0, J0 = 0; i < k; J0 += m->nlt[tbest[i]], i++) m->node0[tbest[i]] = J0;
}

/* R's first node of term t: the levels of the terms before it. */
static int r_node0(const lmm_model *m, int t)
{
    int r = 0;
    for (int s = 0; s < t; s++) r += m->nlt[s];
    return r;
}

/* The node of term t's 0-based level l in R's numbering */
int lmm_level_node(const lmm_model *m, int t, int l)
{
    return m->pinv ? m->pinv[r_node0(m, t) + l] : m->node0[t] + l;
}

/* Recode the 0-based level codes of the n raw rows through pinv, in place (node0: the new). */
void lmm_order_recode(const lmm_model *m, int n, int *const *refs)
{
    if (!m->pinv) return;
    for (int t = 0; t < m->k; t++) {
        const int *pt = m->pinv + r_node0(m, t);
        int *r = refs[t], J0 = m->node0[t];
        for (int i = 0; i < n; i++) r[i] = pt[r[i]] - J0;
    }
}

/* Per-Z-column values in node order (block b_J per node: p_J, or p_J^2 when `square`) to R's
   order (term by term in R's order, levels in R's order). */
void lmm_z_unpermute(const lmm_model *m, const double *in, double *out, int square)
{
    size_t *ioff = (size_t *) R_alloc(m->N + 1, sizeof(size_t)), off = 0;
    ioff[0] = 0;
    for (int J = 0; J < m->N; J++)
        ioff[J + 1] = ioff[J] + (square ? (size_t) m->size[J] * m->size[J] : (size_t) m->size[J]);
    for (int t = 0, R0 = 0; t < m->k; R0 += m->nlt[t], t++) {
        size_t b = square ? (size_t) m->pt[t] * m->pt[t] : (size_t) m->pt[t];
        for (int l = 0; l < m->nlt[t]; l++) {
            int J = m->pinv ? m->pinv[R0 + l] : R0 + l;
            memcpy(out + off + l * b, in + ioff[J], b * sizeof(double));
        }
        off += b * m->nlt[t];
    }
}

/* The engine's 0-based column of [Z X] for R's 0-based column c (X's columns are not moved). */
int lmm_z_column(const lmm_model *m, int c)
{
    if (!m->pinv || c >= m->q) return c;
    int off = 0;
    for (int t = 0, R0 = 0; t < m->k; R0 += m->nlt[t], t++) {
        int width = m->nlt[t] * m->pt[t];
        if (c < off + width) {
            int l = (c - off) / m->pt[t], r = (c - off) % m->pt[t];
            return m->zoff[m->pinv[R0 + l]] + r;
        }
        off += width;
    }
    return c;
}
