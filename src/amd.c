/*
 * amd.c -- a constrained approximate minimum degree order (Amestoy, Davis & Duff 1996, "An
 * approximate minimum degree ordering algorithm"; Davis 2006, "Direct Methods for Sparse
 * Linear Systems", ch. 7), with CAMD's constraint sets: the nodes come in classes, and every
 * node of class c is eliminated before any node of class c + 1.
 *
 * The elimination runs on the quotient graph: eliminating pivot p turns it into an element
 * whose list Lp = (A_p u the variables of p's elements) \ {p} is the pattern of L's column p;
 * p's elements are absorbed into it.  What makes it fast:
 *   - approximate external degrees: for i in Lp,
 *         d_i = min(nrem - |i|, d_i_old + |Lp \ i|, |A_i \ i| + |Lp \ i| + sum_{e != p} |Le \ Lp|),
 *     with every |Le \ Lp| found in one scan of the elements of Lp's variables;
 *   - aggressive absorption: an element with Le within Lp is absorbed into p;
 *   - supervariables: variables of Lp with the same elements and variables (found by a hash of
 *     their lists) are indistinguishable and merged, |i| = the scalar size of all their nodes,
 *     and a variable of Lp with no external neighbour is eliminated with p (mass elimination);
 *   - dense nodes (adjacent to more than max(16, 10 sqrt(n)) others) are taken out of the graph
 *     and ordered at the end of their class: the "hub" levels of a users x items design go last,
 *     into the dense block.
 * Degrees are weighted by the nodes' scalar sizes (a vector term's node counts q).  Only the
 * current class's variables are candidates, so only their degrees are kept up to date; a later
 * class's degrees are computed when it starts (exactly when that is cheap, else AMD's bound
 * |A_i| + sum_e (|Le| - |i|)).  Once the variable of least degree is adjacent to everything
 * left, the rest of the graph is complete and goes in class order.
 */
#include "lmm.h"
#include <string.h>
#include <math.h>
#include <limits.h>

enum { VAR, ELT, GONE, DENSE };     /* variable, element, gone (absorbed/merged/eliminated), dense */

/* ---- an indexed min-heap of variables keyed by (degree, index) --------------------------- */

typedef struct { int *h, *pos, n; const int *deg; } amd_heap;

static int heap_less(const amd_heap *q, int a, int b)
{
    return q->deg[a] < q->deg[b] || (q->deg[a] == q->deg[b] && a < b);
}

static void heap_swap(amd_heap *q, int i, int j)
{
    int a = q->h[i], b = q->h[j];
    q->h[i] = b; q->h[j] = a;
    q->pos[b] = i; q->pos[a] = j;
}

static void heap_up(amd_heap *q, int i)
{
    while (i > 0 && heap_less(q, q->h[i], q->h[(i - 1) / 2])) { heap_swap(q, i, (i - 1) / 2); i = (i - 1) / 2; }
}

static void heap_down(amd_heap *q, int i)
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

static void heap_push(amd_heap *q, int v) { q->h[q->n] = v; q->pos[v] = q->n++; heap_up(q, q->n - 1); }

static void heap_remove(amd_heap *q, int v)
{
    int i = q->pos[v];
    if (i < 0) return;
    heap_swap(q, i, --q->n);
    q->pos[v] = -1;
    if (i < q->n) { heap_up(q, i); heap_down(q, q->pos[q->h[i]]); }
}

static void heap_update(amd_heap *q, int v)      /* after deg[v] changed */
{
    if (q->pos[v] < 0) return;
    heap_up(q, q->pos[v]);
    heap_down(q, q->pos[v]);
}

/* ---- the quotient graph ------------------------------------------------------------------ */

/* Node i's list lst[i][0 .. len[i]-1] (room for cap[i]): for a variable its elements first
   (elen[i] of them), then its variables; for an element e the variables of Le.  Entries that
   died since (absorbed elements, merged or eliminated variables) are dropped when the list is
   next compacted.  wt[i]: the scalar size of supervariable i; degE[e] = |Le| (weighted). */
typedef struct {
    int n, nremw, stamp, wstamp, cstamp, k;
    int **lst, *elen, *len, *cap;
    int *state, *cls, *wt, *deg, *degE, *ext;
    const int *size;
    int *mark, *w, *wmark, *cmark, *hhead, *hnext, *mnext, *mlast, *done, *order;
    double budget;
    double work, p1, weight, cutoff;  /* the stop rule: too_costly() */
    double mdw;                       /* scalar order of the nodes not yet ordered, + p1 */
    double runmin;                    /* least bound on a split among the nodes ordered */
    double checks;                    /* list entries the exact degree checks may still scan */
    double class_dense;               /* the dense rule's factor after the first class */
} amd_graph;

/* Node i (and the nodes merged into it) take the next places of the order. */
static void emit(amd_graph *g, int i)
{
    for (int x = i; x >= 0; x = g->mnext[x])
        if (!g->done[x]) { g->done[x] = 1; g->order[g->k++] = x; g->mdw -= g->size[x]; }
}

/* One more slot at the end of node i's list (moved to fresh R_alloc'ed room when full). */
static void grow_list(amd_graph *g, int i)
{
    if (g->len[i] < g->cap[i]) return;
    int cap = 2 * g->cap[i] + 4, *s = (int *) R_alloc(cap, sizeof(int));
    memcpy(s, g->lst[i], g->len[i] * sizeof(int));
    g->lst[i] = s;
    g->cap[i] = cap;
}

/* Element e added to variable i's elements (the first variable moves to the end). */
static void add_element(amd_graph *g, int i, int e)
{
    grow_list(g, i);
    int *L = g->lst[i];
    L[g->len[i]++] = L[g->elen[i]];
    L[g->elen[i]++] = e;
}

/* The exact external degree of variable i: the weight of adj(i) u the variables of its
   elements, less i. */
static int exact_degree(amd_graph *g, int i)
{
    int d = 0, s = ++g->stamp;
    g->mark[i] = s;
    const int *L = g->lst[i];
    g->checks -= g->len[i];
    for (int a = g->elen[i]; a < g->len[i]; a++) {
        int v = L[a];
        if (g->state[v] == VAR && g->mark[v] != s) { g->mark[v] = s; d += g->wt[v]; }
    }
    for (int a = 0; a < g->elen[i]; a++) {
        int e = L[a];
        if (g->state[e] != ELT) continue;
        g->checks -= g->len[e];
        for (int b = 0; b < g->len[e]; b++) {
            int v = g->lst[e][b];
            if (g->state[v] == VAR && g->mark[v] != s) { g->mark[v] = s; d += g->wt[v]; }
        }
    }
    return d;
}

/* AMD's bound on the external degree of variable i: |A_i| + sum_e (|Le| - |i|). */
static int degree_bound(amd_graph *g, int i)
{
    double d = 0;
    const int *L = g->lst[i];
    for (int a = g->elen[i]; a < g->len[i]; a++) if (g->state[L[a]] == VAR) d += g->wt[L[a]];
    for (int a = 0; a < g->elen[i]; a++)
        if (g->state[L[a]] == ELT) d += g->degE[L[a]] - g->wt[i];
    return d < g->nremw - g->wt[i] ? (int) d : g->nremw - g->wt[i];
}

/* Class c starts: its variables' degrees (exact when the elements to scan are few, the scan
   stopped at the budget), into q.  After the first class, the graph is the Schur complement
   of the classes eliminated, and AMD's rule for dense nodes is applied to it again, tighter: a
   variable adjacent to more than max(16, CLASS_DENSE sqrt(nrem)) of the nrem left is taken out
   and goes at the end of its class (in a users x items design: the items next to many others
   once the users are eliminated; with only the bound at hand, all but the sparsest).
   CLASS_DENSE: the caller's (AMD's 10, or tighter). */
static void start_class(amd_graph *g, int c, const int *cnode, int x0, int x1, amd_heap *q)
{
    double scan = 0;
    for (int x = x0; x < x1 && scan <= g->budget; x++) {
        int i = cnode[x];
        if (g->state[i] != VAR) continue;
        scan += g->len[i];
        for (int a = 0; a < g->elen[i]; a++) scan += g->len[g->lst[i][a]];
    }
    int exact = scan <= g->budget;
    double checks = g->checks;                  /* (not the checks' allowance) */
    double dense = c > 0 ? g->class_dense * sqrt((double) g->nremw) : R_PosInf;
    if (dense < 16) dense = 16;
    for (int x = x0; x < x1; x++) {
        int i = cnode[x];
        if (g->state[i] != VAR) continue;
        g->deg[i] = exact ? exact_degree(g, i) : degree_bound(g, i);
        if (g->deg[i] > dense) { g->state[i] = DENSE; g->nremw -= g->wt[i]; continue; }
        heap_push(q, i);
    }
    g->checks = checks;
}

/* Lp into buf: the live variables of p's elements and of A_p (p's elements absorbed);
   marks them with stamp s.  Returns |Lp| (nodes); *degme its weight. */
static int form_element(amd_graph *g, int p, int *buf, int *degme)
{
    int nlp = 0, wsum = 0, s = ++g->stamp;
    g->mark[p] = s;
    const int *L = g->lst[p];
    for (int a = 0; a < g->elen[p]; a++) {
        int e = L[a];
        if (g->state[e] != ELT) continue;
        for (int b = 0; b < g->len[e]; b++) {
            int v = g->lst[e][b];
            if (g->state[v] == VAR && g->mark[v] != s) { g->mark[v] = s; buf[nlp++] = v; wsum += g->wt[v]; }
        }
        g->state[e] = GONE;                                   /* absorbed into p */
    }
    for (int a = g->elen[p]; a < g->len[p]; a++) {
        int v = L[a];
        if (g->state[v] == VAR && g->mark[v] != s) { g->mark[v] = s; buf[nlp++] = v; wsum += g->wt[v]; }
    }
    g->state[p] = ELT;
    g->nremw -= g->wt[p];
    *degme = wsum;
    return nlp;
}

/* w_e = |Le \ Lp| for every live element of Lp's variables (stamp wstamp). */
static void outside_Lp(amd_graph *g, const int *Lp, int nlp)
{
    int ws = ++g->wstamp;
    for (int a = 0; a < nlp; a++) {
        int i = Lp[a];
        for (int b = 0; b < g->elen[i]; b++) {
            int e = g->lst[i][b];
            if (g->state[e] != ELT) continue;
            if (g->wmark[e] != ws) { g->wmark[e] = ws; g->w[e] = g->degE[e]; }
            g->w[e] -= g->wt[i];
        }
    }
}

/* Variable i of Lp (active: of the current class): its lists compacted -- absorbed elements
   and the variables of Lp dropped, elements within Lp absorbed (aggressive absorption) -- and
   p added; ext[i] = |A_i \ Lp| + sum_e |Le \ Lp|.  Returns the hash of its lists, or -1 when
   i has no neighbour outside Lp (then it goes with p). */
static int compact_variable(amd_graph *g, int i, int p, int s)
{
    int *L = g->lst[i], ne = 0, ws = g->wstamp;
    unsigned h = 0;
    double ext = 0;
    for (int a = 0; a < g->elen[i]; a++) {
        int e = L[a];
        if (g->state[e] != ELT) continue;
        if (g->wmark[e] == ws) {
            if (g->w[e] <= 0) { g->state[e] = GONE; continue; }   /* Le within Lp */
            ext += g->w[e];
        } else ext += g->degE[e];
        L[ne++] = e;
        h += (unsigned) e;
    }
    int nv = ne;
    for (int a = g->elen[i]; a < g->len[i]; a++) {
        int v = L[a];
        if (g->state[v] != VAR || g->mark[v] == s) continue;   /* gone, or in Lp u {p} */
        L[nv++] = v;
        ext += g->wt[v];
        h += (unsigned) v;
    }
    g->elen[i] = ne;
    g->len[i] = nv;
    if (nv == 0) return -1;
    add_element(g, i, p);
    g->ext[i] = ext < INT_MAX / 2 ? (int) ext : INT_MAX / 2;
    return (int) ((h + (unsigned) p) % (unsigned) g->n);
}

/* Do variables i and j have the same lists?  (Same lengths: compare as sets.) */
static int same_lists(amd_graph *g, int i, int j)
{
    if (g->elen[i] != g->elen[j] || g->len[i] != g->len[j]) return 0;
    int s = ++g->cstamp;
    for (int a = 0; a < g->len[i]; a++) g->cmark[g->lst[i][a]] = s;
    for (int a = 0; a < g->len[j]; a++) if (g->cmark[g->lst[j][a]] != s) return 0;
    return 1;
}

/* The stop rule.  The columns of the nodes ordered so far cost at least `work` = sum size
   (size + rows + p1)^2 (rows from the pivots' Lp, which leaves out the dense nodes: a lower
   bound); a split of the finished order after them costs at least weight * work; one among
   them, inside the block of pivot p's nodes, at least weight * (work before p) + mdw^3 / 3
   (mdw: the order left after p's block, + p1), whose least value runmin keeps
   (note_block).  The order is given up once neither can come below cutoff. */
static void note_block(amd_graph *g, double work_before)
{
    double c = g->weight * work_before + g->mdw * g->mdw * g->mdw / 3.0;
    if (c < g->runmin) g->runmin = c;
}

static int too_costly(const amd_graph *g)
{
    double lb = g->weight * g->work;
    return (g->runmin < lb ? g->runmin : lb) > g->cutoff;
}

/* Eliminate pivot p of class c: the element p, Lp's degrees, supervariables, mass
   elimination. */
static void eliminate(amd_graph *g, int p, int c, int *buf, int *hlist, amd_heap *q)
{
    int degme, nlp = form_element(g, p, buf, &degme), s = g->stamp, nact = 0;
    double work_before = g->work, below = degme;
    for (int x = p; x >= 0; x = g->mnext[x]) below += g->size[x];
    for (int x = p; x >= 0; x = g->mnext[x]) {      /* column x: p's later nodes, and Lp */
        below -= g->size[x];
        double r = g->size[x] + below + g->p1;
        g->work += g->size[x] * r * r;
    }
    emit(g, p);
    for (int a = 0; a < nlp; a++)
        if (g->cls[buf[a]] == c) { nact++; heap_remove(q, buf[a]); }
    if (nact == 0) {                 /* no candidate's degree changes: just record element p */
        for (int a = 0; a < nlp; a++) add_element(g, buf[a], p);
    } else {
        outside_Lp(g, buf, nlp);
        int nh = 0;
        for (int a = 0; a < nlp; a++) {
            int i = buf[a];
            if (g->cls[i] != c) {                            /* later class: p recorded only */
                add_element(g, i, p);
                continue;
            }
            int h = compact_variable(g, i, p, s);
            if (h < 0) {                                     /* mass elimination */
                emit(g, i);
                g->state[i] = GONE;
                g->nremw -= g->wt[i];
                degme -= g->wt[i];
                continue;
            }
            if (g->hhead[h] == -1) hlist[nh++] = h;
            g->hnext[i] = g->hhead[h];
            g->hhead[h] = i;
        }
        for (int b = 0; b < nh; b++) {                       /* supervariables, bucket by bucket */
            int h = hlist[b];
            for (int i = g->hhead[h]; i != -1; i = g->hnext[i]) {
                if (g->state[i] != VAR) continue;
                for (int j = g->hnext[i]; j != -1; j = g->hnext[j]) {
                    if (g->state[j] != VAR || !same_lists(g, i, j)) continue;
                    g->wt[i] += g->wt[j];                    /* j merged into i */
                    g->state[j] = GONE;
                    g->mnext[g->mlast[i]] = j;
                    g->mlast[i] = g->mlast[j];
                }
            }
            g->hhead[h] = -1;
        }
    }
    int keep = 0;
    for (int a = 0; a < nlp; a++) {                          /* Lp: its live variables */
        int i = buf[a];
        if (g->state[i] != VAR) continue;
        buf[keep++] = i;
        if (g->cls[i] != c) continue;
        double d = (double) g->deg[i] + degme - g->wt[i], d2 = (double) g->ext[i] + degme - g->wt[i];
        if (d2 < d) d = d2;
        if (g->nremw - g->wt[i] < d) d = g->nremw - g->wt[i];
        g->deg[i] = d > 0 ? (int) d : 0;
        heap_push(q, i);
    }
    if (g->cap[p] < keep) { g->lst[p] = (int *) R_alloc(keep, sizeof(int)); g->cap[p] = keep; }
    memcpy(g->lst[p], buf, keep * sizeof(int));
    g->len[p] = keep;
    g->elen[p] = 0;
    g->degE[p] = degme;
    note_block(g, work_before);
}

/* A constrained approximate minimum degree order of the n nodes of the symmetric graph (Cp,
   Ci) (no diagonal; size[i] node i's scalar size): class c's nodes are cnode[cptr[c] ..
   cptr[c+1]-1], all eliminated before class c + 1's.  order[k] = the k-th node eliminated.
   Stops and returns 0 once the order cannot cost less than `cutoff` by the bound of
   too_costly() (p1: the order of the [X y] node; weight: of the sparse columns' work), else
   returns 1.  class_dense: the factor of start_class's rule for dense nodes. */
int lmm_amd_order(int n, const int *Cp, const int *Ci, const int *size, int ncls,
                  const int *cnode, const int *cptr, double p1, double weight, double cutoff,
                  double class_dense, int *order)
{
    amd_graph g;
    memset(&g, 0, sizeof g);
    g.n = n; g.order = order; g.size = size;
    g.p1 = p1; g.weight = weight; g.cutoff = cutoff; g.mdw = p1; g.class_dense = class_dense;
    g.lst = (int **) R_alloc(n, sizeof(int *));
    int nint = 21, *ints = (int *) R_alloc((size_t) nint * n, sizeof(int));
    int **f[] = {&g.elen, &g.len, &g.cap, &g.state, &g.cls, &g.wt, &g.deg, &g.degE, &g.ext,
                 &g.mark, &g.w, &g.wmark, &g.cmark, &g.hhead, &g.hnext, &g.mnext, &g.mlast,
                 &g.done};
    for (size_t a = 0; a < sizeof(f) / sizeof(f[0]); a++) *f[a] = ints + a * (size_t) n;
    int *buf = ints + 18 * (size_t) n, *hlist = ints + 19 * (size_t) n;
    int *qh = ints + 20 * (size_t) n;
    int *room = (int *) R_alloc((size_t) Cp[n] + n, sizeof(int));
    double dense = 10.0 * sqrt((double) n);
    if (dense < 16) dense = 16;
    g.budget = 50.0 * ((double) Cp[n] + n);
    g.checks = 10.0 * ((double) Cp[n] + n);
    for (int i = 0; i < n; i++) {
        int d = Cp[i + 1] - Cp[i];
        g.lst[i] = room + Cp[i] + i;
        memcpy(g.lst[i], Ci + Cp[i], d * sizeof(int));
        g.len[i] = d; g.cap[i] = d + 1; g.elen[i] = 0;
        g.state[i] = d > dense ? DENSE : VAR;
        g.wt[i] = size[i];
        g.mark[i] = g.wmark[i] = g.cmark[i] = 0;
        g.hhead[i] = -1; g.mnext[i] = -1; g.mlast[i] = i; g.done[i] = 0;
        if (g.state[i] == VAR) g.nremw += size[i];
        g.mdw += size[i];
    }
    g.runmin = g.mdw * g.mdw * g.mdw / 3.0;             /* the split before every node */
    for (int c = 0; c < ncls; c++)
        for (int x = cptr[c]; x < cptr[c + 1]; x++) g.cls[cnode[x]] = c;
    amd_heap q = {qh, (int *) R_alloc(n + 1, sizeof(int)), 0, g.deg};
    for (int i = 0; i < n; i++) q.pos[i] = -1;
    int npiv = 0;
    for (int c = 0; c < ncls; c++) {
        start_class(&g, c, cnode, cptr[c], cptr[c + 1], &q);
        while (q.n > 0) {
            if (++npiv % 256 == 0) R_CheckUserInterrupt();
            int top = q.h[0];
            if (g.deg[top] >= g.nremw - g.wt[top] && g.checks > 0) {   /* the rest complete? */
                g.deg[top] = exact_degree(&g, top);
                heap_update(&q, top);
                if (q.h[0] == top && g.deg[top] >= g.nremw - g.wt[top]) {
                    for (int c2 = c; c2 < ncls; c2++)       /* the rest is complete */
                        for (int x = cptr[c2]; x < cptr[c2 + 1]; x++) emit(&g, cnode[x]);
                    return 1;
                }
                continue;
            }
            heap_remove(&q, top);
            eliminate(&g, top, c, buf, hlist, &q);
            if (too_costly(&g)) return 0;
        }
        double work_before = g.work;
        for (int x = cptr[c]; x < cptr[c + 1]; x++) emit(&g, cnode[x]);   /* its dense nodes */
        note_block(&g, work_before);
        if (too_costly(&g)) return 0;
    }
    return 1;
}
