/*
 * iterative_lambda.c -- Lambda = diag(T_t repeated over the levels of term t) (theta.c's
 * templates, lower triangular p_t x p_t) applied to blocks of vectors in the iterative backend's
 * row-major layout (entry (j, c) of a q x nc block at j nc + c; node J's rows zoff[J] ..).
 *
 *     (Lambda v)_J  = T_t v_J,      (Lambda' v)_J = T_t' v_J.
 *
 * With drop_tail, the templates of the tail's terms are zero (iterative_criterion.c:
 * Omega' = Lambda_L' C Lambda_L + I = diag(Omega_LL, I)).
 */
#include "iterative.h"
#include <string.h>

void lmm_lambda_make(lmm_lambda *L, const lmm_model *m, const double *theta, int drop_tail)
{
    const lmm_iter *it = m->iter;
    int k = m->k, len = 0;
    L->m = m;
    L->toff = (int *) R_alloc(k + 1, sizeof(int));
    for (int t = 0; t < k; t++) { L->toff[t] = len; len += m->pt[t] * m->pt[t]; }
    L->T = (double *) R_alloc(len + 1, sizeof(double));
    for (int t = 0; t < k; t++) {
        double *T = L->T + L->toff[t];
        lmm_template(m, t, theta, T);
        int first = it->zoff[m->node0[t]];
        if (drop_tail && m->nlt[t] > 0 && it->spos[first] >= 0)
            memset(T, 0, (size_t) m->pt[t] * m->pt[t] * sizeof(double));
    }
    L->diag = NULL;
    if (it->scalar) {                                  /* Lambda diagonal: one value a column */
        L->diag = (double *) R_alloc(it->q + 1, sizeof(double));
        for (int j = 0; j < it->q; j++) L->diag[j] = L->T[L->toff[m->term[it->cnode[j]]]];
    }
}

/* W = Lambda V (trans 0) or Lambda' V (trans 1) in the columns cols[0 .. na) (all nc when cols
   is NULL), in the nodes whose first row j has rows[j] (all when rows is NULL); W and V
   distinct. */
void lmm_lambda_apply(const lmm_lambda *L, int trans, int nc, const int *cols, int na,
                      const double *V, double *W, const char *rows)
{
    const lmm_model *m = L->m;
    const lmm_iter *it = m->iter;
    int all = cols == NULL, nn = all ? nc : na;
    for (int J = 0; J < m->N; J++) {
        int t = m->term[J], p = m->pt[t], z = it->zoff[J];
        if (rows && !rows[z]) continue;
        const double *T = L->T + L->toff[t];
        for (int r = 0; r < p; r++) {
            double *w = W + (size_t) (z + r) * nc;
            for (int a = 0; a < nn; a++) w[all ? a : cols[a]] = 0;
            int a0 = trans ? r : 0, a1 = trans ? p : r + 1;        /* T lower: T[r, a], a <= r */
            for (int b = a0; b < a1; b++) {
                double tb = trans ? T[b + r * p] : T[r + b * p];
                if (tb == 0) continue;
                const double *v = V + (size_t) (z + b) * nc;
                for (int a = 0; a < nn; a++) { int c = all ? a : cols[a]; w[c] += tb * v[c]; }
            }
        }
    }
}
