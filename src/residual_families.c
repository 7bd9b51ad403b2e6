/*
 * residual_families.c -- the tables of correlation and variance families (residual.h), the
 * conversion of their R descriptions, and test entries that evaluate a family alone.
 *
 * R describes a correlation structure as
 *     list(code, npar, cov = n x d matrix, iopt = integer options, dopt = double constants)
 * and a variance component as
 *     list(code, npar, nstrata, stratum = 0-based integer n-vector or NULL, v = numeric or NULL).
 */
#include "residual.h"
#include <math.h>
#include <string.h>
#include <math.h>

lmm_cor_fn lmm_cor_family(int code)
{
    switch (code) {
    case LMM_COR_AR1: return lmm_cor_ar1;
    case LMM_COR_CAR1: return lmm_cor_car1;
    case LMM_COR_ARMA: return lmm_cor_arma;
    case LMM_COR_COMPSYMM: return lmm_cor_compsymm;
    case LMM_COR_SYMM: return lmm_cor_symm;
    case LMM_COR_EXP: return lmm_cor_exp;
    case LMM_COR_GAUS: return lmm_cor_gaus;
    case LMM_COR_LIN: return lmm_cor_lin;
    case LMM_COR_RATIO: return lmm_cor_ratio;
    case LMM_COR_SPHER: return lmm_cor_spher;
    default: return NULL;
    }
}

lmm_var_fn lmm_var_family(int code)
{
    switch (code) {
    case LMM_VAR_IDENT: return lmm_var_ident;
    case LMM_VAR_POWER: return lmm_var_power;
    case LMM_VAR_EXP: return lmm_var_exp;
    case LMM_VAR_CONSTPOWER: return lmm_var_constpower;
    default: return NULL;
    }
}

/* A standard-deviation multiplier s = e^logs the families accept: s and 1 / s positive and finite
   (|log s| below log(DBL_MAX) ~ 709.8, with a margin for the products of varComb). */
int lmm_var_log_ok(double logs)
{
    return fabs(logs) < 700;
}

/* The parameter count and covariate each variance family needs (S strata). */
static int var_shape_ok(const lmm_var *v)
{
    int S = v->nstrata;
    switch (v->code) {
    case LMM_VAR_IDENT: return v->npar == S - 1;
    case LMM_VAR_POWER:
    case LMM_VAR_EXP: return v->npar == S && v->v != NULL;
    case LMM_VAR_CONSTPOWER: return v->npar == 2 * S && v->v != NULL;
    default: return 0;
    }
}

/* list element by name, or R_NilValue (shared with model.c) */
SEXP lmm_list_elt(SEXP list, const char *name)
{
    SEXP names = getAttrib(list, R_NamesSymbol);
    if (!isNewList(list) || isNull(names)) return R_NilValue;
    for (int i = 0; i < LENGTH(list); i++)
        if (!strcmp(CHAR(STRING_ELT(names, i)), name)) return VECTOR_ELT(list, i);
    return R_NilValue;
}

/* Whether the covariate column k is integer-valued in [lo, hi] on all n rows */
static int cov_integer(const lmm_cor *c, int k, double lo, double hi)
{
    for (int i = 0; i < c->n; i++) {
        double t = c->cov[i + (size_t) k * c->n];
        if (t != floor(t) || t < lo || t > hi) return 0;
    }
    return 1;
}

/* Whether the family's options, parameter count and covariates agree (R/residual-correlation.R) */
static int cor_options_ok(const lmm_cor *c)
{
    const int *o = c->iopt;
    switch (c->code) {
    case LMM_COR_ARMA:                                   /* iopt = (p, q), integer times */
        return c->niopt >= 2 && o[0] >= 0 && o[1] >= 0 && o[0] + o[1] > 0 &&
            c->npar == o[0] + o[1] && c->d >= 1 && cov_integer(c, 0, -1e9, 1e9);
    case LMM_COR_COMPSYMM:                               /* iopt = M, the largest group */
        return c->niopt >= 1 && o[0] >= 1 && c->npar == 1;
    case LMM_COR_SYMM:                                   /* iopt = M, positions 0 .. M-1 */
        return c->niopt >= 1 && o[0] >= 1 && o[0] <= 10000 &&
            c->npar == o[0] * (o[0] - 1) / 2 && c->d >= 1 && cov_integer(c, 0, 0, o[0] - 1);
    case LMM_COR_EXP: case LMM_COR_GAUS: case LMM_COR_LIN: case LMM_COR_RATIO:
    case LMM_COR_SPHER:                                  /* iopt = (nugget, metric) */
        return c->niopt >= 2 && (o[0] == 0 || o[0] == 1) && o[1] >= 0 && o[1] <= 2 &&
            c->npar == 1 + o[0] && c->d >= 1 &&
            (c->ndopt == 0 || (R_FINITE(c->dopt[0]) && c->dopt[0] >= 0));
    default:
        return 1;
    }
}

/* The correlation structure R describes (pointers into its vectors); n data rows. */
lmm_cor lmm_cor_from(SEXP s, int n)
{
    if (!isNewList(s) || isNull(getAttrib(s, R_NamesSymbol)))
        error(_("the correlation structure is malformed"));
    lmm_cor c;
    SEXP cov = lmm_list_elt(s, "cov"), iopt = lmm_list_elt(s, "iopt"), dopt = lmm_list_elt(s, "dopt");
    c.code = asInteger(lmm_list_elt(s, "code"));
    c.npar = asInteger(lmm_list_elt(s, "npar"));
    if (c.code <= LMM_COR_NONE || c.code >= LMM_COR_NFAMILY || c.npar < 0 ||
        !isReal(cov) || !isMatrix(cov) || nrows(cov) != n || !isInteger(iopt) || !isReal(dopt))
        error(_("the correlation structure is malformed"));
    c.n = n;
    c.d = ncols(cov);
    c.cov = REAL(cov);
    c.iopt = INTEGER(iopt);
    c.niopt = LENGTH(iopt);
    c.dopt = REAL(dopt);
    c.ndopt = LENGTH(dopt);
    for (R_xlen_t i = 0; i < XLENGTH(cov); i++)
        if (!R_FINITE(c.cov[i])) error(_("the correlation covariate is not finite"));
    if (!cor_options_ok(&c))
        error(_("the options or covariates of correlation family %d are malformed"), c.code);
    return c;
}

/* The variance component R describes; n data rows. */
lmm_var lmm_var_from(SEXP s, int n)
{
    if (!isNewList(s) || isNull(getAttrib(s, R_NamesSymbol)))
        error(_("the variance function is malformed"));
    lmm_var v;
    SEXP st = lmm_list_elt(s, "stratum"), cv = lmm_list_elt(s, "v");
    v.code = asInteger(lmm_list_elt(s, "code"));
    v.npar = asInteger(lmm_list_elt(s, "npar"));
    v.nstrata = asInteger(lmm_list_elt(s, "nstrata"));
    v.n = n;
    if (v.code < 1 || v.code >= LMM_VAR_NFAMILY || v.npar < 0 || v.nstrata < 1 ||
        (!isNull(st) && (!isInteger(st) || LENGTH(st) != n)) ||
        (!isNull(cv) && (!isReal(cv) || LENGTH(cv) != n)))
        error(_("the variance function is malformed"));
    v.stratum = isNull(st) ? NULL : INTEGER(st);
    v.v = isNull(cv) ? NULL : REAL(cv);
    if (!var_shape_ok(&v)) error(_("the variance function is malformed"));
    if (v.stratum)
        for (int i = 0; i < n; i++)
            if (v.stratum[i] == NA_INTEGER || v.stratum[i] < 0 || v.stratum[i] >= v.nstrata)
                error(_("variance stratum out of range at row %d"), i + 1);
    if (v.v)
        for (int i = 0; i < n; i++)
            if (!R_FINITE(v.v[i])) error(_("the variance covariate is not finite at row %d"), i + 1);
    return v;
}

/* Test entry: the correlation matrix of the rows `rows` (1-based, the group's order) at par,
   or NULL when par is outside the family's space. */
SEXP lmm_cor_matrix(SEXP cor, SEXP n_, SEXP rows, SEXP par)
{
    int n = asInteger(n_);
    lmm_cor c = lmm_cor_from(cor, n);
    lmm_cor_fn fn = lmm_cor_family(c.code);
    if (!fn) error(_("correlation family %d is not available"), c.code);
    if (!isInteger(rows) || !isReal(par) || LENGTH(par) != c.npar)
        error(_("rows must be integer and par numeric of length %d"), c.npar);
    int m = LENGTH(rows);
    int *r0 = (int *) R_alloc(m > 0 ? m : 1, sizeof(int));
    for (int a = 0; a < m; a++) {
        int r = INTEGER(rows)[a];
        if (r == NA_INTEGER || r < 1 || r > n) error(_("row %d is out of range"), a + 1);
        r0[a] = r - 1;
    }
    SEXP R = PROTECT(allocMatrix(REALSXP, m, m));
    int bad = fn(&c, m, r0, REAL(par), REAL(R));
    UNPROTECT(1); /* R */
    return bad ? R_NilValue : R;
}

/* Test entry: list(logs, dlogs = n x npar) of a variance component at par, or NULL when par is
   outside its space. */
SEXP lmm_var_logs(SEXP var, SEXP n_, SEXP par)
{
    int n = asInteger(n_);
    lmm_var v = lmm_var_from(var, n);
    lmm_var_fn fn = lmm_var_family(v.code);
    if (!fn) error(_("variance family %d is not available"), v.code);
    if (!isReal(par) || LENGTH(par) != v.npar) error(_("par must be numeric of length %d"), v.npar);
    SEXP ans = PROTECT(allocVector(VECSXP, 2));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, n));
    SET_VECTOR_ELT(ans, 1, allocMatrix(REALSXP, n, v.npar));
    double *logs = REAL(VECTOR_ELT(ans, 0)), *D = REAL(VECTOR_ELT(ans, 1));
    for (int i = 0; i < n; i++) logs[i] = 0;
    double **dl = (double **) R_alloc(v.npar + 1, sizeof(double *));
    for (int k = 0; k < v.npar; k++) dl[k] = D + (size_t) k * n;
    int bad = fn(&v, REAL(par), logs, dl);
    UNPROTECT(1); /* ans */
    return bad ? R_NilValue : ans;
}
