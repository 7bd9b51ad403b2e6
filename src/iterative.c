/*
 * iterative.c -- the iterative backend's model (iterative.h): setup from the rows, the fixed
 * probes, and the .Call glue the exact engine's entries dispatch to (model.c).
 *
 * The setup reads the rows once, as crossprod.c does, but keeps A on its own pattern:
 *     C = Z'WZ (diagonal Cd, off-diagonal rows Cp/Ci/Cx),  F = Z'W[X* y*],  H = [X* y*]'W[X* y*],
 * with [X* y*] the internal coordinates of standardise.c, C held by scalar columns (node J of
 * term t has p_t of them).  Row i adds w_i z_a z_b to C at every pair of the w scalar columns it
 * touches (one per column of each term): nnz(C) <= q + n w (w - 1).  No symbolic factorisation:
 * nothing here grows with the fill of L.
 */
#include "iterative.h"
#include <string.h>

static void iter_finalise(SEXP ptr)
{
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (m) { lmm_iter_free(m->iter); m->iter = NULL; }
    lmm_free(m);
    R_ClearExternalPtr(ptr);
}

void lmm_iter_free(lmm_iter *it)
{
    if (!it) return;
    int *ip[] = {it->Cp, it->Ci, it->snode, it->spos, it->zoff, it->cnode, it->cjoff};
    double *dp[] = {it->Cx, it->Cd, it->F, it->H, it->grad_se, it->CJ};
    for (int i = 0; i < 7; i++) if (ip[i]) R_Free(ip[i]);
    for (int i = 0; i < 6; i++) if (dp[i]) R_Free(dp[i]);
    if (it->Z) R_Free(it->Z);
    R_Free(it);
}

/* Dimensions, the (term, level) -> node map and the scalar columns of each node: node J of term
   t has columns zoff[J] .. zoff[J] + p_t - 1 (term blocks end to end, level-major, as u). */
static void nodes(lmm_model *m, int n, int p, int k, const int *pt, const int *nlt,
                  const int *const *refs)
{
    lmm_layout_dims(m, n, p, k, pt, nlt);                 /* layout.c */
    m->Ns = m->N;
    lmm_count_rows(m, refs);                              /* layout.c */
}

/* zoff (node -> first column), cnode (column -> node) and the offsets of the node blocks CJ */
static void columns(lmm_model *m)
{
    lmm_iter *it = m->iter;
    it->zoff = R_Calloc(m->N + 1, int);
    it->cnode = R_Calloc(it->q + 1, int);
    it->cjoff = R_Calloc(m->N + 1, int);
    int z = 0, cj = 0;
    for (int J = 0; J < m->N; J++) {
        it->zoff[J] = z;
        it->cjoff[J] = cj;
        for (int c = 0; c < m->size[J]; c++) it->cnode[z++] = J;
        cj += m->size[J] * m->size[J];
    }
    it->zoff[m->N] = z;
    it->cjoff[m->N] = cj;
    int scalar = 1;
    for (int t = 0; t < m->k; t++) scalar &= m->pt[t] == 1;
    it->scalar = scalar;
}

/* The scalar entries of row i: columns col[e] with values z[e] (one per column of each term). */
static int row_entries(const lmm_model *m, const int *const *refs, const double *const *Xt, int i,
                       int *col, double *z)
{
    int s = 0;
    for (int t = 0; t < m->k; t++) {
        int J = m->node0[t] + refs[t][i];
        for (int c = 0; c < m->pt[t]; c++, s++) {
            col[s] = m->iter->zoff[J] + c;
            z[s] = Xt[t][i + (size_t) c * m->n];
        }
    }
    return s;
}

/* One sweep over the columns j of C, in order: for each, the rows of its level (order[start[l]
   .. start[l+1]-1], the rows sorted by the level of j's term) and every other column those rows
   touch, summed in acc with mark/list (the distinct columns of row j of C).  fill = 0: count
   them into Cp; fill = 1: write Ci/Cx. */
static void sweep_pairs(lmm_model *m, const int *const *refs, const double *const *Xt,
                        const double *w, int fill, int *order, int *start, int *col, double *z,
                        double *acc, int *mark, int *list)
{
    lmm_iter *it = m->iter;
    int n = m->n, pos0 = 0;
    size_t nz = 0;
    for (int t = 0; t < m->k; t++) {
        int nl = m->nlt[t];
        memset(start, 0, (nl + 1) * sizeof(int));                 /* rows by level of t */
        for (int i = 0; i < n; i++) start[refs[t][i] + 1]++;
        for (int l = 0; l < nl; l++) start[l + 1] += start[l];
        for (int i = 0; i < n; i++) order[start[refs[t][i]]++] = i;
        for (int l = nl; l > 0; l--) start[l] = start[l - 1];
        start[0] = 0;
        for (int l = 0; l < nl; l++) {
            if (l % 1024 == 0) R_CheckUserInterrupt();
            int J = m->node0[t] + l;
            for (int c = 0; c < m->pt[t]; c++) {
                int j = it->zoff[J] + c, nd = 0;
                for (int a = start[l]; a < start[l + 1]; a++) {
                    int r = order[a], s = row_entries(m, refs, Xt, r, col, z);
                    double wz = w[r] * z[pos0 + c];                /* w_r z_j */
                    for (int e = 0; e < s; e++) {
                        int i = col[e];
                        if (i == j) continue;
                        if (mark[i] != j) { mark[i] = j; list[nd++] = i; acc[i] = 0; }
                        acc[i] += wz * z[e];
                    }
                }
                if (fill)
                    for (int e = 0; e < nd; e++) {
                        it->Ci[nz + e] = list[e];
                        it->Cx[nz + e] = acc[list[e]];
                    }
                nz += nd;
                if (nz > INT_MAX) error(_("random-effects design too large: %.0f pairs"), (double) nz);
                if (!fill) it->Cp[j + 1] = (int) nz;
            }
        }
        pos0 += m->pt[t];
    }
}

/* C's off-diagonal part, rows Cp/Ci/Cx, without a list of all the rows' pairs: the scratch is
   one row order (n ints) and a few q-vectors, whatever the number of pairs. */
static void pairs(lmm_model *m, const int *const *refs, const double *const *Xt, const double *w)
{
    lmm_iter *it = m->iter;
    int q = it->q, width = 0, nlmax = 1;
    for (int t = 0; t < m->k; t++) {
        width += m->pt[t];
        if (m->nlt[t] > nlmax) nlmax = m->nlt[t];
    }
    int *col = (int *) R_alloc(width, sizeof(int)), *order = (int *) R_alloc(m->n + 1, sizeof(int));
    int *start = (int *) R_alloc(nlmax + 1, sizeof(int)), *mark = (int *) R_alloc(q + 1, sizeof(int));
    int *list = (int *) R_alloc(q + 1, sizeof(int));
    double *z = (double *) R_alloc(width, sizeof(double)), *acc = (double *) R_alloc(q + 1, sizeof(double));
    it->Cp = R_Calloc(q + 1, int);
    for (int j = 0; j < q; j++) mark[j] = -1;
    sweep_pairs(m, refs, Xt, w, 0, order, start, col, z, acc, mark, list);     /* count */
    it->Ci = R_Calloc((size_t) it->Cp[q] + 1, int);
    it->Cx = R_Calloc((size_t) it->Cp[q] + 1, double);
    for (int j = 0; j < q; j++) mark[j] = -1;
    sweep_pairs(m, refs, Xt, w, 1, order, start, col, z, acc, mark, list);     /* fill */
}

/* CJ: each node's diagonal block of C (p_J x p_J, column-major), from Cd and the stored pairs */
static void node_blocks(lmm_model *m)
{
    lmm_iter *it = m->iter;
    it->CJ = R_Calloc(it->cjoff[m->N] + 1, double);
    for (int j = 0; j < it->q; j++) {
        int J = it->cnode[j], pJ = m->size[J], a = j - it->zoff[J];
        double *B = it->CJ + it->cjoff[J];
        B[a + a * pJ] = it->Cd[j];
        for (int e = it->Cp[j]; e < it->Cp[j + 1]; e++)
            if (it->cnode[it->Ci[e]] == J) B[a + (it->Ci[e] - it->zoff[J]) * pJ] = it->Cx[e];
    }
}

/* C's diagonal, F and H (H summed in chunks of 1024 rows, as crossprod.c does) */
#define CHUNK 1024
static void blocks(lmm_model *m, const int *const *refs, const double *const *Xt,
                   const double *X, const double *y, const double *w)
{
    lmm_iter *it = m->iter;
    int n = m->n, p1 = it->p1, q = it->q, width = 0;
    for (int t = 0; t < m->k; t++) width += m->pt[t];
    int *col = (int *) R_alloc(width, sizeof(int));
    double *z = (double *) R_alloc(width, sizeof(double));
    it->Cd = R_Calloc(q, double);
    it->F = R_Calloc((size_t) q * p1, double);
    it->H = R_Calloc((size_t) p1 * p1, double);
    double *xs = (double *) R_alloc(p1, sizeof(double));
    double *chunk = (double *) R_alloc((size_t) p1 * p1, sizeof(double));
    memset(chunk, 0, (size_t) p1 * p1 * sizeof(double));
    for (int i = 0; i < n; i++) {
        if (i % 65536 == 0) R_CheckUserInterrupt();
        if (i % CHUNK == 0)
            for (int e = 0; e < p1 * p1; e++) { it->H[e] += chunk[e]; chunk[e] = 0; }
        lmm_std_row(m, X, y, i, xs);
        int s = row_entries(m, refs, Xt, i, col, z);
        for (int e = 0; e < s; e++) {
            it->Cd[col[e]] += w[i] * z[e] * z[e];
            for (int a = 0; a < p1; a++) it->F[col[e] + (size_t) a * q] += w[i] * z[e] * xs[a];
        }
        for (int b = 0; b < p1; b++)
            for (int a = 0; a < p1; a++) chunk[a + b * p1] += w[i] * xs[a] * xs[b];
    }
    for (int e = 0; e < p1 * p1; e++) it->H[e] += chunk[e];
}

/* splitmix64's output function: a bijective mix of 64 bits */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Rademacher probes from a fixed seed (splitmix64): the same z_k at every theta of a fit.  The
   seed is mixed first, so that different seeds start at unrelated points of the sequence (not
   at shifts of one another). */
static void probes(lmm_iter *it, double seed)
{
    uint64_t s = mix64((uint64_t) seed ^ 0x632BE59BD9B4E019ULL);
    size_t len = (size_t) it->q * it->K;
    it->Z = R_Calloc(len + 1, signed char);
    for (size_t e = 0; e < len; e += 64) {
        uint64_t x = mix64(s += 0x9E3779B97F4A7C15ULL);
        for (size_t b = 0; b < 64 && e + b < len; b++) it->Z[e + b] = (x >> b) & 1 ? 1 : -1;
    }
}

/* The tail: the columns of the terms with fewest levels, smallest first, while they number at
   most max_tail in all and at least one term stays out (its block is then solved by CG). */
static void choose_tail(lmm_model *m, int max_tail, int use_head)
{
    lmm_iter *it = m->iter;
    int k = m->k, *in = (int *) R_alloc(k, sizeof(int)), ns = 0;
    for (int t = 0; t < k; t++) in[t] = 0;
    for (int added = 0; added < k - 1; added++) {
        int best = -1;
        for (int t = 0; t < k; t++)
            if (!in[t] && (best < 0 || m->nlt[t] * m->pt[t] < m->nlt[best] * m->pt[best])) best = t;
        if (ns + m->nlt[best] * m->pt[best] > max_tail) break;
        in[best] = 1;
        ns += m->nlt[best] * m->pt[best];
    }
    it->ns = ns;
    it->nL = it->q - ns;
    /* the head: the CG-solved term with most columns, eliminated exactly by its block-diagonal
       D (iterative_schur.c); alone, it leaves nothing to CG */
    int head = -1;
    for (int t = 0; t < k; t++)
        if (!in[t] && (head < 0 || m->nlt[t] * m->pt[t] > m->nlt[head] * m->pt[head])) head = t;
    it->head = use_head ? head : -1;
    it->snode = R_Calloc(ns + 1, int);
    it->spos = R_Calloc(it->q + 1, int);
    for (int j = 0, s = 0; j < it->q; j++) {
        int t = m->term[it->cnode[j]];
        it->spos[j] = in[t] ? s : -1;
        if (in[t]) it->snode[s++] = j;
    }
}

static double list_num(SEXP list, const char *name, double dflt)
{
    SEXP v = lmm_list_elt(list, name);
    return isNull(v) ? dflt : asReal(v);
}

/* lmm_setup_iterative(y, X, refs, Xts, nl, sqrtw, control): lmm_setup's arguments (no residual
   structure); control = list(probes, tol, tol_probe, maxit, seed, tail, schur). */
SEXP lmm_setup_iterative(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP control)
{
    int n = lmm_check_setup(y, X, refs, Xts, nl, sqrtw), k = LENGTH(refs), p = ncols(X);
    if (k < 1) error(_("the iterative backend needs at least one random-effects term"));
    if (!isNewList(control)) error(_("control must be a list"));
    double K = list_num(control, "probes", 30), maxit = list_num(control, "maxit", 2000);
    double tol = list_num(control, "tol", 1e-10), tolp = list_num(control, "tol_probe", 1e-8);
    if (!(K >= 2 && K <= 10000)) error(_("probes must be between 2 and 10000"));
    if (!(maxit >= 1 && maxit <= 1e6)) error(_("maxit must be between 1 and 1e6"));
    if (!(tol > 0 && tol < 1) || !(tolp > 0 && tolp < 1)) error(_("tolerances must be in (0, 1)"));
    const int **ref0 = (const int **) R_alloc(k, sizeof(int *));
    const double **Xt = (const double **) R_alloc(k, sizeof(double *));
    int *pt = (int *) R_alloc(k, sizeof(int));
    for (int t = 0; t < k; t++) {
        SEXP xt = VECTOR_ELT(Xts, t);
        int *r0 = (int *) R_alloc(n > 0 ? n : 1, sizeof(int));
        lmm_term_codes(VECTOR_ELT(refs, t), xt, INTEGER(nl)[t], n, t, r0);
        ref0[t] = r0;
        Xt[t] = REAL(xt);
        pt[t] = ncols(xt);
    }
    double *w = (double *) R_alloc(n > 0 ? n : 1, sizeof(double)), sumlogw = 0;
    for (int i = 0; i < n; i++) {
        double s = isNull(sqrtw) ? 1.0 : REAL(sqrtw)[i];
        w[i] = s * s;
        sumlogw += 2 * log(s);
    }
    lmm_model *m = R_Calloc(1, lmm_model);
    SEXP ptr = PROTECT(R_MakeExternalPtr(m, R_NilValue, R_NilValue));
    R_RegisterCFinalizerEx(ptr, iter_finalise, TRUE);
    nodes(m, n, p, k, pt, INTEGER(nl), ref0);
    lmm_iter *it = m->iter = R_Calloc(1, lmm_iter);
    it->q = m->q;
    it->p1 = p + 1;
    it->K = (int) K;
    it->tol = tol;
    it->tol_probe = tolp;
    it->maxit = (int) maxit;
    it->ld_se = NA_REAL;
    columns(m);
    lmm_standardise(m, REAL(X), REAL(y));
    blocks(m, ref0, Xt, REAL(X), REAL(y), w);
    pairs(m, ref0, Xt, w);
    node_blocks(m);
    probes(it, list_num(control, "seed", 1));
    choose_tail(m, (int) fmin(fmax(list_num(control, "tail", 200), 0), 5000),
                list_num(control, "schur", 1) != 0);
    it->grad_se = R_Calloc(m->ntheta + 1, double);
    m->sumlogw = sumlogw;
    UNPROTECT(1); /* ptr */
    return ptr;
}

/* ---- what model.c's entries dispatch to ----------------------------------------------------- */

double lmm_iter_crit(lmm_model *m, const double *theta, int REML)
{
    lmm_iter_parts cp = {0, 0, 0, 0, 0, NULL};
    lmm_iter_evaluate(m, theta, REML, &cp, NULL, NULL, NULL, NULL);
    return cp.crit;
}

int lmm_iter_criterion_gradient(lmm_model *m, const double *theta, int REML, double *f,
                                double *grad)
{
    lmm_iter_parts cp = {0, 0, 0, 0, 0, NULL};
    int status = lmm_iter_evaluate(m, theta, REML, &cp, grad, NULL, NULL, NULL);
    *f = cp.crit;
    return status;
}

/* The run's diagnostics: c(probes, ld_se, iters_B, iters_probe, unconverged, evaluations, nnz,
   q, tail, head) -- ld_se the Monte Carlo standard error of the last log-determinant, tail the
   columns eliminated densely, head the (1-based) term eliminated by its diagonal or 0 -- with
   attribute grad_se, the last gradient's Monte Carlo standard errors. */
SEXP lmm_iter_info(SEXP ptr)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_iter *it = m->iter;
    if (!it) error(_("the engine does not use the iterative backend"));
    const char *nm[] = {"probes", "ld_se", "iters_B", "iters_probe", "unconverged",
                        "evaluations", "nnz", "q", "tail", "head"};
    double v[] = {it->K, it->ld_se, it->iters_B, it->iters_probe, it->unconverged,
                  it->evaluations, it->Cp[it->q] + (double) it->q, it->q, it->ns,
                  it->head >= 0 ? it->head + 1 : 0};
    SEXP ans = PROTECT(allocVector(REALSXP, 10)), names = PROTECT(allocVector(STRSXP, 10));
    for (int i = 0; i < 10; i++) { REAL(ans)[i] = v[i]; SET_STRING_ELT(names, i, mkChar(nm[i])); }
    setAttrib(ans, R_NamesSymbol, names);
    SEXP gse = PROTECT(allocVector(REALSXP, m->ntheta));
    memcpy(REAL(gse), it->grad_se, m->ntheta * sizeof(double));
    setAttrib(ans, install("grad_se"), gse);
    UNPROTECT(3); /* ans, names, gse */
    return ans;
}

/* A vector-valued term's moment estimate (the scalar one below, level by level with p x p
   blocks): with G_J = C_JJ and c_J = (Z'Wy*)_J, b_J = G_J^{-1} c_J over the levels with G_J
   positive definite and n_J > p rows, Cov(b) = Sigma + s2w mean(G_J^{-1}),
   s2w = (y*'Wy* - sum c_J' G_J^{-1} c_J) / sum (n_J - p).  Sigma (p x p) is returned when
   positive definite (1), else 0; *share = tr(Sigma sum_J G_J) / n, its part of the total
   variance. */
static int vector_moments(const lmm_model *m, int t, double *Sigma, double *share)
{
    const lmm_iter *it = m->iter;
    int p = m->pt[t], np = p * p, q = it->q, col = m->p;
    double *G = (double *) R_alloc(np, sizeof(double)), *Gi = (double *) R_alloc(np, sizeof(double));
    double *sb = (double *) R_alloc(p, sizeof(double)), *sbb = (double *) R_alloc(np, sizeof(double));
    double *sGi = (double *) R_alloc(np, sizeof(double)), *sG = (double *) R_alloc(np, sizeof(double));
    double *b = (double *) R_alloc(p, sizeof(double)), ssb = 0, df = 0, J = 0;
    memset(sb, 0, p * sizeof(double));
    memset(sbb, 0, np * sizeof(double));
    memset(sGi, 0, np * sizeof(double));
    memset(sG, 0, np * sizeof(double));
    for (int K = m->node0[t]; K < m->node0[t + 1]; K++) {
        const double *C = it->CJ + it->cjoff[K], *c = it->F + it->zoff[K] + (size_t) col * q;
        for (int a = 0; a < np; a++) sG[a] += C[a];
        if (m->nrows[K] <= p) continue;
        memcpy(G, C, np * sizeof(double));
        if (!R_FINITE(lmm_small_chol(p, G))) continue;
        lmm_small_chol_inverse(p, G, Gi);
        for (int a = 0; a < p; a++) {                          /* b = G^{-1} c */
            b[a] = 0;
            for (int e = 0; e < p; e++) b[a] += Gi[a + e * p] * c[e];
        }
        for (int a = 0; a < p; a++) {
            ssb += c[a] * b[a];
            sb[a] += b[a];
            for (int e = 0; e < p; e++) { sbb[a + e * p] += b[a] * b[e]; sGi[a + e * p] += Gi[a + e * p]; }
        }
        df += m->nrows[K] - p;
        J++;
    }
    *share = 0;
    if (J < p + 2 || df < 1) return 0;
    double s2w = (it->H[col + col * it->p1] - ssb) / df;
    for (int a = 0; a < p; a++)
        for (int e = 0; e < p; e++)
            Sigma[a + e * p] = (sbb[a + e * p] - sb[a] * sb[e] / J) / (J - 1) - s2w * sGi[a + e * p] / J;
    memcpy(G, Sigma, np * sizeof(double));
    if (!R_FINITE(lmm_small_chol(p, G))) return 0;
    for (int a = 0; a < np; a++) *share += Sigma[a] * sG[a] / m->n;   /* tr(Sigma sum G) / n */
    return 1;
}

/* A start for the optimiser from C, F and H (moments.c's simplest case, term by term): with y*
   the OLS residuals (standardise.c), c_j = (Z'Wy*)_j and d_j = C_jj, the level estimates
   b_j = c_j / d_j have variance sigma_t^2 + s2w_t mean(1/d_j), s2w_t = (y*'Wy* - sum c_j^2/d_j)
   / (n - J_t); for crossed terms the total variance y*'Wy* / n = s2 + sum_t sigma_t^2 gives s2.
   theta_t = sqrt(sigma_t^2 / s2), floored; a vector-valued term's template is the Cholesky
   factor of Sigma_t / s2 (vector_moments), or the identity (lme4's start) when Sigma_t is not
   positive definite.  list(theta). */
SEXP lmm_iter_moments(lmm_model *m, int REML, double floor)
{
    lmm_iter *it = m->iter;
    int p = m->p, q = it->q, p1 = it->p1;
    double tot = it->H[p + p * p1] / m->n, sumsig = 0;
    double *sig = (double *) R_alloc(m->k, sizeof(double));
    double **Sig = (double **) R_alloc(m->k, sizeof(double *));
    for (int t = 0; t < m->k; t++) {
        double ssb = 0, sb = 0, sb2 = 0, sinv = 0, J = 0, share = 0;
        sig[t] = NA_REAL;
        Sig[t] = NULL;
        if (m->pt[t] != 1) {
            double *S = (double *) R_alloc((size_t) m->pt[t] * m->pt[t], sizeof(double));
            if (vector_moments(m, t, S, &share)) { Sig[t] = S; sumsig += share; }
            continue;
        }
        for (int K = m->node0[t]; K < m->node0[t + 1]; K++) {
            int j = it->zoff[K];
            double d = it->Cd[j], c = it->F[j + (size_t) p * q];
            if (!(d > 0)) continue;
            ssb += c * c / d; sb += c / d; sb2 += c * c / d / d; sinv += 1 / d; J++;
        }
        double s2w = m->n > J ? (it->H[p + p * p1] - ssb) / (m->n - J) : tot;
        double vb = J > 1 ? (sb2 - sb * sb / J) / (J - (REML ? 1 : 0)) : 0;
        if (J > 1) sig[t] = fmax(vb - s2w * sinv / J, 0);
        if (R_FINITE(sig[t])) sumsig += sig[t];
    }
    double s2 = fmax(tot - sumsig, 0.05 * tot);
    SEXP ans = PROTECT(allocVector(VECSXP, 1)), names = PROTECT(mkString("theta"));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, m->ntheta));
    double *th = REAL(VECTOR_ELT(ans, 0));
    for (int t = 0; t < m->k; t++) {
        int pt = m->pt[t], e = m->theta0[t];
        if (pt == 1) {
            th[e] = R_FINITE(sig[t]) && s2 > 0 ? fmax(sqrt(sig[t] / s2), floor) : 1.0;
            continue;
        }
        double *L = Sig[t];
        if (L && s2 > 0) {                                     /* chol(Sigma_t / s2), lower */
            for (int a = 0; a < pt * pt; a++) L[a] /= s2;
            if (!R_FINITE(lmm_small_chol(pt, L))) L = NULL;
        }
        for (int c = 0; c < pt; c++)
            for (int r = c; r < pt; r++)
                th[e++] = L && s2 > 0 ? (r == c ? fmax(L[r + c * pt], floor) : L[r + c * pt])
                                      : (r == c ? 1.0 : 0.0);
    }
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* lmm_solution's list for an iterative engine: beta, u, the criterion's parts, RXinv2,
   rx_pivot and sumlogw, plus ld_se; no conditional variances (they need the factor). */
SEXP lmm_iter_solution(lmm_model *m, const double *theta, int REML, int condvar)
{
    if (condvar)
        error(_("conditional variances need the exact factor: they are not available for a fit "
                "with the iterative backend (refit with lmm_control(backend = \"direct\"))"));
    int p = m->p, q = m->q;
    const char *nm[] = {"beta", "u", "ldL2", "ldRX2", "pwrss", "crit", "condvar", "RXinv2",
                        "rx_pivot", "sumlogw", "ld_se"};
    int nout = 11;
    SEXP ans = PROTECT(allocVector(VECSXP, nout)), names = PROTECT(allocVector(STRSXP, nout));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, p));
    SET_VECTOR_ELT(ans, 1, allocVector(REALSXP, q));
    SET_VECTOR_ELT(ans, 7, allocMatrix(REALSXP, p, p));
    SET_VECTOR_ELT(ans, 8, allocVector(REALSXP, p));
    double *beta = REAL(VECTOR_ELT(ans, 0)), *u = REAL(VECTOR_ELT(ans, 1));
    lmm_iter_parts cp;
    cp.rx_pivot = REAL(VECTOR_ELT(ans, 8));
    if (lmm_iter_evaluate(m, theta, REML, &cp, NULL, u, beta, REAL(VECTOR_ELT(ans, 7))))
        error(_("the penalised system is not positive definite at theta"));
    lmm_std_beta(m, beta);                                      /* back to X's coordinates */
    if (m->std_d) for (int i = 0; i < q; i++) u[i] *= m->std_s;
    lmm_std_vcov(m, REAL(VECTOR_ELT(ans, 7)));
    double v[] = {cp.ldL2, cp.ldRX2, cp.pwrss, cp.crit};
    for (int i = 0; i < 4; i++) SET_VECTOR_ELT(ans, 2 + i, ScalarReal(v[i]));
    SET_VECTOR_ELT(ans, 9, ScalarReal(m->sumlogw));
    SET_VECTOR_ELT(ans, 10, ScalarReal(cp.ld_se));
    for (int i = 0; i < nout; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* lmm_parts' list for an iterative engine: ldL2, ldRX2, pwrss, crit, sumlogw, RXinv2. */
SEXP lmm_iter_parts_list(lmm_model *m, const double *theta, int REML)
{
    int p = m->p;
    const char *nm[] = {"ldL2", "ldRX2", "pwrss", "crit", "sumlogw", "RXinv2"};
    SEXP ans = PROTECT(allocVector(VECSXP, 6)), names = PROTECT(allocVector(STRSXP, 6));
    SET_VECTOR_ELT(ans, 5, allocMatrix(REALSXP, p, p));
    lmm_iter_parts cp;
    cp.rx_pivot = NULL;
    if (lmm_iter_evaluate(m, theta, REML, &cp, NULL, NULL, NULL, REAL(VECTOR_ELT(ans, 5))))
        error(_("the penalised system is not positive definite at theta"));
    lmm_std_vcov(m, REAL(VECTOR_ELT(ans, 5)));
    double v[] = {cp.ldL2, cp.ldRX2, cp.pwrss, cp.crit, m->sumlogw};
    for (int i = 0; i < 5; i++) SET_VECTOR_ELT(ans, i, ScalarReal(v[i]));
    for (int i = 0; i < 6; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}
