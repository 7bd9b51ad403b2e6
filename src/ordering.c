/*
 * ordering.c -- the permutation layer: (term, level) <-> node.
 *
 * R numbers the random effects term by term (lme4's order of the terms), levels in R's order.
 * The engine numbers nodes term-major too, J = node0[t] + l, but both the order of the terms'
 * blocks and the order of the levels within each term are chosen here, so that the Cholesky
 * factor of A = G'WG fills in little: a constrained approximate minimum degree order (amd.c:
 * Amestoy, Davis & Duff's AMD with CAMD's constraint sets -- all of one term's nodes before
 * the next term's), for every order of up to three terms, each judged by the predicted work of
 * its factor (layout.c's cost model on L's column counts, found without forming L) and given
 * up as soon as a bound shows it cannot save a fifth of R's own order's work.  Eliminating the
 * first term turns each of its levels into a clique of the later levels it touches; the later
 * terms' levels are ordered on that Schur complement, so that in a users x items design the
 * users go first (whichever term lme4 puts first), the items of small communities next and the
 * popular "hub" items, adjacent to nearly everything, last -- where the dense block takes them.
 * When a large dense block remains, the busiest levels of each term (most neighbours in A) are
 * also tried deferred to the end of their term.
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

/* ---- the pattern of L for a given order: weighted column counts ------------------------- */

/* The elimination tree of the graph (Cp, Ci) eliminated in `order` (pinv its inverse), in the
   order's numbering: parent[k] = the first row below the diagonal in column k of L (-1: a
   root).  anc: workspace (path-compressed ancestors). */
static void etree(int n, const int *Cp, const int *Ci, const int *order, const int *pinv,
                  int *parent, int *anc)
{
    for (int k = 0; k < n; k++) {
        parent[k] = anc[k] = -1;
        int v = order[k];
        for (int a = Cp[v]; a < Cp[v + 1]; a++)
            for (int i = pinv[Ci[a]], nx; i != -1 && i < k; i = nx) {   /* A(i,k), i < k */
                nx = anc[i];
                anc[i] = k;
                if (nx == -1) parent[i] = k;
            }
    }
}

/* post: a postorder of the forest parent (children before their parent). */
static void postorder(int n, const int *parent, int *post, int *head, int *next, int *stack)
{
    for (int j = 0; j < n; j++) head[j] = -1;
    for (int j = n - 1; j >= 0; j--)
        if (parent[j] != -1) { next[j] = head[parent[j]]; head[parent[j]] = j; }
    int k = 0;
    for (int r = 0; r < n; r++) {
        if (parent[r] != -1) continue;
        int top = 0;
        stack[0] = r;
        while (top >= 0) {
            int j = stack[top], c = head[j];
            if (c == -1) { top--; post[k++] = j; }
            else { head[j] = next[c]; stack[++top] = c; }
        }
    }
}

/* The scalar rows below the diagonal of each column of L, rows[k] for the k-th node of
   `order` (node i has scalar size size[i]), without forming L: column j's rows are the rows i
   whose row subtree (of the elimination tree) holds j, counted by the skeleton method
   (Gilbert, Ng & Peyton 1994; Davis 2006, sec. 4.5): each row subtree adds size_i at its
   leaves and takes it off at the least common ancestor of consecutive leaves and above its
   root, and a column's count is the sum over its subtree.  O(|A| alpha(|A|)). */
static void column_rows(int n, const int *Cp, const int *Ci, const int *size, const int *order,
                        double *rows)
{
    const void *vmax = vmaxget();
    int *iw = (int *) R_alloc((size_t) 10 * n, sizeof(int));
    int *pinv = iw, *parent = iw + n, *post = iw + 2 * (size_t) n, *first = iw + 3 * (size_t) n;
    int *maxfirst = iw + 4 * (size_t) n, *prevleaf = iw + 5 * (size_t) n;
    int *anc = iw + 6 * (size_t) n, *w = iw + 7 * (size_t) n;
    double *delta = rows;
    for (int k = 0; k < n; k++) { pinv[order[k]] = k; w[k] = size[order[k]]; }
    etree(n, Cp, Ci, order, pinv, parent, anc);
    postorder(n, parent, post, anc, iw + 8 * (size_t) n, iw + 9 * (size_t) n);
    for (int k = 0; k < n; k++) first[k] = maxfirst[k] = prevleaf[k] = -1;
    for (int k = 0; k < n; k++) {                       /* first descendant in postorder */
        int j = post[k];
        delta[j] = first[j] == -1 ? w[j] : 0;           /* a leaf: row j's subtree is {j} */
        for (; j != -1 && first[j] == -1; j = parent[j]) first[j] = k;
    }
    for (int k = 0; k < n; k++) anc[k] = k;
    for (int k = 0; k < n; k++) {
        int j = post[k], v = order[j];
        if (parent[j] != -1) delta[parent[j]] -= w[j];  /* row j's subtree ends at j */
        for (int a = Cp[v]; a < Cp[v + 1]; a++) {
            int i = pinv[Ci[a]];
            if (i <= j || first[j] <= maxfirst[i]) continue;   /* j not a leaf of row i's */
            maxfirst[i] = first[j];
            int jprev = prevleaf[i];
            prevleaf[i] = j;
            delta[j] += w[i];
            if (jprev == -1) continue;                  /* row i's first leaf */
            int lca = jprev;
            while (lca != anc[lca]) lca = anc[lca];
            for (int x = jprev, nx; x != lca; x = nx) { nx = anc[x]; anc[x] = lca; }
            delta[lca] -= w[i];                         /* the paths from both leaves meet */
        }
        if (parent[j] != -1) anc[j] = parent[j];
    }
    for (int j = 0; j < n; j++) if (parent[j] != -1) delta[parent[j]] += delta[j];
    for (int j = 0; j < n; j++) rows[j] -= w[j];        /* below the diagonal */
    vmaxset(vmax);
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
    int N, *order, *cnode, *cptr, *osize, *oterm;
    double *rows;
    const int *Cp, *Ci;
} order_try;

/* The least predicted work over the splits of the order w->order (lmm_split_cost, on the
   column counts of L); *md: the dense order there. */
static double order_cost(const lmm_model *m, order_try *w, double *md)
{
    column_rows(w->N, w->Cp, w->Ci, m->size, w->order, w->rows);
    for (int J = 0; J < w->N; J++) {
        w->osize[J] = m->size[w->order[J]];
        w->oterm[J] = m->term[w->order[J]];
    }
    return lmm_split_cost(w->N, w->osize, w->oterm, w->rows, m->p + 1, md);
}

/* One candidate: the constrained approximate minimum degree order (amd.c) for term order
   tord, deferred fraction f and the dense rule's factor `dense` after the first term, and its
   predicted work (Inf: stopped, as it could not cost less than cutoff). */
static double try_order(const lmm_model *m, const int *r0, const int *tord, double f,
                        double dense, double cutoff, order_try *w, double *md)
{
    const void *vmax = vmaxget();
    int ncls = defer_classes(m, r0, tord, w->Cp, f, w->cnode, w->cptr);
    int done = lmm_amd_order(w->N, w->Cp, w->Ci, m->size, ncls, w->cnode, w->cptr, m->p + 1,
                             lmm_split_weight(), cutoff, dense, w->order);
    double cost = done ? order_cost(m, w, md) : R_PosInf;
    vmaxset(vmax);
    return cost;
}

#define KEEP_GAIN 0.8   /* an order is taken when it saves a fifth of R's order's work */

/* The dense rule after the first term (amd.c's start_class): AMD's factor 10, and a tighter 5
   tried once for the best term order, the one of less predicted work kept (bench_scale.R's
   hub20500: 1.377e9 flops with 5, 1.388e9 with 10; with 5 alone, the small hub design of
   test-ordering.R would keep a larger dense block, 103 instead of under 100). */
#define AMD_DENSE 10.0
#define TIGHT_DENSE 5.0

/* The predicted work of R's own order. */
static double identity_cost(const lmm_model *m, order_try *w)
{
    double md;
    for (int J = 0; J < w->N; J++) w->order[J] = J;
    return order_cost(m, w, &md);
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
    order_try w = {N, (int *) R_alloc(N, sizeof(int)), (int *) R_alloc(N, sizeof(int)),
                   (int *) R_alloc(2 * k + 1, sizeof(int)), (int *) R_alloc(N, sizeof(int)),
                   (int *) R_alloc(N, sizeof(int)), (double *) R_alloc(N, sizeof(double)), Cp, Ci};
    int *r0 = (int *) R_alloc(k + 1, sizeof(int)), *best = (int *) R_alloc(N, sizeof(int));
    int *tords = (int *) R_alloc(6 * (k + 1), sizeof(int));
    int *tbest = (int *) R_alloc(k + 1, sizeof(int));
    for (int t = 0; t < k; t++) r0[t] = m->node0[t];
    int nord = term_orders(k, tords);
    double idcost = identity_cost(m, &w), bestcost = KEEP_GAIN * idcost, md, bestmd = 0;
    int found = 0;
    for (int o = 0; o < nord; o++) {                      /* R's order first (o = 0) */
        if (o > 0 && bestcost < SMALL_WORK && Cp[N] > SMALL_GRAPH) break;   /* cannot pay */
        double cost = try_order(m, r0, tords + o * k, 0.0, AMD_DENSE, bestcost, &w, &md);
        if (cost <= bestcost) {
            bestcost = cost; bestmd = md; found = 1;
            memcpy(best, w.order, N * sizeof(int));
            memcpy(tbest, tords + o * k, k * sizeof(int));
        }
    }
    if (found && k > 1) {                 /* the later terms' dense rule tighter (see amd.c) */
        double cost = try_order(m, r0, tbest, 0.0, TIGHT_DENSE, bestcost, &w, &md);
        if (cost < bestcost) {
            bestcost = cost; bestmd = md;
            memcpy(best, w.order, N * sizeof(int));
        }
    }
    const double fractions[] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2};
    for (int c = 0; c < 6 && found && bestmd > 1000; c++) {    /* a large dense block: hubs? */
        double cost = try_order(m, r0, tbest, fractions[c], AMD_DENSE, bestcost, &w, &md);
        if (cost < bestcost) { bestcost = cost; memcpy(best, w.order, N * sizeof(int)); }
    }
    if (!found) return;                          /* R's order is about as good as any tried */
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

/* Test entry: the constrained approximate minimum degree order of the symmetric graph (Cp, Ci)
   (0-based, no diagonal) with node sizes `size` and classes `cls` (0-based, per node), and the
   scalar rows below the diagonal of each column of L in that order: list(order (1-based),
   rows). */
SEXP lmm_amd_test(SEXP Cp, SEXP Ci, SEXP size, SEXP cls)
{
    if (!isInteger(Cp) || LENGTH(Cp) < 2) error(_("Cp must be an integer vector of length n + 1"));
    int n = LENGTH(Cp) - 1;
    if (!isInteger(Ci)) error(_("Ci must be an integer vector"));
    if (!isInteger(size) || LENGTH(size) != n) error(_("size must be an integer vector of length n"));
    if (!isInteger(cls) || LENGTH(cls) != n) error(_("cls must be an integer vector of length n"));
    const int *cp = INTEGER(Cp), *ci = INTEGER(Ci), *sz = INTEGER(size), *cl = INTEGER(cls);
    for (int i = 0; i < n; i++)
        if (cp[0] != 0 || cp[i + 1] < cp[i]) error(_("Cp must start at 0 and not decrease"));
    if (LENGTH(Ci) != cp[n]) error(_("Ci must have length Cp[n + 1]"));
    int ncls = 0;
    for (int i = 0; i < n; i++) {
        if (sz[i] < 1) error(_("size must be positive"));
        if (cl[i] < 0 || cl[i] >= n) error(_("cls must lie in 0 .. n - 1"));
        if (cl[i] + 1 > ncls) ncls = cl[i] + 1;
    }
    for (int i = 0; i < n; i++)
        for (int a = cp[i]; a < cp[i + 1]; a++)
            if (ci[a] < 0 || ci[a] >= n || ci[a] == i)
                error(_("Ci must hold 0-based off-diagonal rows"));
    int *cptr = (int *) R_alloc(ncls + 1, sizeof(int)), *cnode = (int *) R_alloc(n, sizeof(int));
    memset(cptr, 0, (ncls + 1) * sizeof(int));
    for (int i = 0; i < n; i++) cptr[cl[i] + 1]++;
    for (int c = 0; c < ncls; c++) cptr[c + 1] += cptr[c];
    int *fill = (int *) R_alloc(ncls + 1, sizeof(int));
    memcpy(fill, cptr, (ncls + 1) * sizeof(int));
    for (int i = 0; i < n; i++) cnode[fill[cl[i]]++] = i;
    SEXP ans = PROTECT(allocVector(VECSXP, 2)), nm = PROTECT(allocVector(STRSXP, 2));
    SEXP ord = PROTECT(allocVector(INTSXP, n)), rows = PROTECT(allocVector(REALSXP, n));
    int *o = INTEGER(ord);
    lmm_amd_order(n, cp, ci, sz, ncls, cnode, cptr, 1, 16, R_PosInf, AMD_DENSE, o);
    column_rows(n, cp, ci, sz, o, REAL(rows));
    for (int k = 0; k < n; k++) o[k]++;
    SET_VECTOR_ELT(ans, 0, ord); SET_VECTOR_ELT(ans, 1, rows);
    SET_STRING_ELT(nm, 0, mkChar("order")); SET_STRING_ELT(nm, 1, mkChar("rows"));
    setAttrib(ans, R_NamesSymbol, nm);
    UNPROTECT(4); /* ans, nm, ord, rows */
    return ans;
}
