/*
 * counts.c -- the engine's observation counts when its rows are summary rows.
 *
 * A model whose data were aggregated elsewhere (R/aggregate.R: a database's GROUP BY, or data
 * read in chunks) reaches the engine as a few weighted pseudo-rows per cell of the grouping
 * factors, chosen so that A = G'WG is exactly the data's.  A is all the criterion needs, except
 * for three numbers the pseudo-rows cannot carry, set here after lmm_setup:
 *     n         the observations (REML's n - p, ML's n; the moment start's n - J),
 *     n_J       the observations in each level (the moment start's within-level degrees of freedom),
 *     log|W|    sum_i log w_i over the observations' prior weights (0 when unweighted).
 */
#include "lmm.h"
#include <limits.h>

/* lmm_set_counts(ptr, n, nrows, sumlogw): nrows a list of k integer vectors, term t's of
   length nl_t (level j's observations); the model must have no residual structure. */
SEXP lmm_set_counts(SEXP ptr, SEXP n, SEXP nrows, SEXP sumlogw)
{
    lmm_model *m = lmm_get_model(ptr);
    if (m->resid) error(_("observation counts cannot be set on a model with a residual structure"));
    if (!isNumeric(n) || LENGTH(n) != 1 || !R_FINITE(asReal(n)) || asReal(n) < 1 ||
        asReal(n) > INT_MAX)
        error(_("'n' must be a positive count"));
    if (!isReal(sumlogw) || LENGTH(sumlogw) != 1 || !R_FINITE(REAL(sumlogw)[0]))
        error(_("'sumlogw' must be a finite number"));
    if (!isNewList(nrows) || LENGTH(nrows) != m->k)
        error(_("'nrows' must be a list of %d integer vectors"), m->k);
    for (int t = 0; t < m->k; t++) {
        SEXP c = VECTOR_ELT(nrows, t);
        if (!isInteger(c) || LENGTH(c) != m->nlt[t])
            error(_("term %d: 'nrows' must hold %d integer counts"), t + 1, m->nlt[t]);
        for (int j = 0; j < m->nlt[t]; j++)
            if (INTEGER(c)[j] == NA_INTEGER || INTEGER(c)[j] < 0)
                error(_("term %d: 'nrows' has a negative or missing count"), t + 1);
    }
    for (int t = 0; t < m->k; t++)                       /* n_J, J the level's node (ordering.c) */
        for (int j = 0; j < m->nlt[t]; j++)
            m->nrows[lmm_level_node(m, t, j)] = INTEGER(VECTOR_ELT(nrows, t))[j];
    m->n = (int) asReal(n);
    m->sumlogw = REAL(sumlogw)[0];
    m->factored = 0;
    return R_NilValue;
}
