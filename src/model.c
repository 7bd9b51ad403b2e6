/*
 * model.c -- the .Call interface: an engine model lives in an external pointer whose finaliser
 * frees it, so nothing leaks when R signals an error or the user interrupts.
 */
#include "lmm.h"
#include "optimise.h"
#include "quasi_newton.h"
#include <string.h>

static void model_finalise(SEXP ptr)
{
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    lmm_free(m);
    R_ClearExternalPtr(ptr);
}

/* the model behind a .Call's engine pointer (shared with gradient.c) */
lmm_model *lmm_get_model(SEXP ptr)
{
    if (TYPEOF(ptr) != EXTPTRSXP) error(_("not an lmmc engine model"));
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (!m) error(_("the lmmc engine model is no longer valid (was it saved and reloaded?)"));
    return m;
}

/* theta checked against the model: a finite double vector of length ntheta */
const double *lmm_check_theta(const lmm_model *m, SEXP theta)
{
    if (!isReal(theta) || XLENGTH(theta) != m->ntheta)
        error(_("theta must be a numeric vector of length %d"), m->ntheta);
    const double *th = REAL(theta);
    for (int i = 0; i < m->ntheta; i++)
        if (!R_FINITE(th[i])) error(_("theta[%d] is not finite"), i + 1);
    return th;
}

/* The shapes of lmm_setup's arguments (shared with lmm_setup_resid); returns n. */
int lmm_check_setup(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw)
{
    int n = LENGTH(y);
    if (!isReal(y) || !isReal(X) || !isMatrix(X) || nrows(X) != n)
        error(_("y must be numeric and X a numeric matrix with one row per observation"));
    if (!isNewList(refs) || !isNewList(Xts) || !isInteger(nl) ||
        LENGTH(refs) != LENGTH(Xts) || LENGTH(nl) != LENGTH(refs) || LENGTH(refs) < 1)
        error(_("the random-effects terms are malformed"));
    if (!isNull(sqrtw) && (!isReal(sqrtw) || LENGTH(sqrtw) != n))
        error(_("weights must be numeric with one value per observation"));
    return n;
}

/* Term t's checks: n 1-based group codes r (an integer vector or a factor) within 1..nlt and a numeric n-row model matrix xt;
   the 0-based codes are written to r0 (shared with lmm_setup_resid). */
void lmm_term_codes(SEXP r, SEXP xt, int nlt, int n, int t, int *r0)
{
    if (TYPEOF(r) != INTSXP || LENGTH(r) != n) error(_("term %d: group codes must be %d integers"), t + 1, n);
    if (!isReal(xt) || !isMatrix(xt) || nrows(xt) != n || ncols(xt) < 1)
        error(_("term %d: model matrix must be numeric with %d rows"), t + 1, n);
    if (nlt < 1) error(_("term %d: no levels"), t + 1);
    for (int i = 0; i < n; i++) {
        int g = INTEGER(r)[i];
        if (g == NA_INTEGER || g < 1 || g > nlt)
            error(_("term %d: group code out of range at row %d"), t + 1, i + 1);
        r0[i] = g - 1;
    }
}

/* lmm_setup(y, X, refs, Xts, nl, sqrtw): y (n), X (n x p), refs: list of k integer vectors of
   1-based level codes, Xts: list of k n x p_t matrices, nl: levels per term, sqrtw: NULL or n. */
SEXP lmm_setup(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw)
{
    int n = lmm_check_setup(y, X, refs, Xts, nl, sqrtw);
    int k = LENGTH(refs), p = ncols(X);
    int *pt = (int *) R_alloc(k, sizeof(int));
    const int **ref0 = (const int **) R_alloc(k, sizeof(int *));
    const double **Xt = (const double **) R_alloc(k, sizeof(double *));
    for (int t = 0; t < k; t++) {
        SEXP xt = VECTOR_ELT(Xts, t);
        int *r0 = (int *) R_alloc(n, sizeof(int));
        lmm_term_codes(VECTOR_ELT(refs, t), xt, INTEGER(nl)[t], n, t, r0);
        ref0[t] = r0;
        Xt[t] = REAL(xt);
        pt[t] = ncols(xt);
    }
    lmm_model *m = R_Calloc(1, lmm_model);
    SEXP ptr = PROTECT(R_MakeExternalPtr(m, R_NilValue, R_NilValue));
    R_RegisterCFinalizerEx(ptr, model_finalise, TRUE);
    lmm_layout_fill(m, n, p, k, pt, INTEGER(nl), ref0, NULL);
    lmm_standardise(m, REAL(X), REAL(y));
    lmm_crossprod(m, ref0, Xt, REAL(X), REAL(y), isNull(sqrtw) ? NULL : REAL(sqrtw), NULL, NULL, NULL);
    UNPROTECT(1); /* ptr */
    return ptr;
}

SEXP lmm_crit(SEXP ptr, SEXP theta, SEXP REML)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_crit_parts cp = lmm_criterion(m, lmm_check_theta(m, theta), asLogical(REML));
    return ScalarReal(cp.crit);
}

typedef struct { lmm_model *m; int REML; } crit_ctx;

static double objective(const double *theta, void *ctx)
{
    crit_ctx *c = (crit_ctx *) ctx;
    return lmm_criterion(c->m, theta, c->REML).crit;
}

static double list_num(SEXP list, const char *name, double dflt)
{
    SEXP names = getAttrib(list, R_NamesSymbol);
    if (isNull(names)) return dflt;
    for (int i = 0; i < LENGTH(list); i++)
        if (!strcmp(CHAR(STRING_ELT(names, i)), name)) return asReal(VECTOR_ELT(list, i));
    return dflt;
}

/* The optimiser's settings from R's list(rhobeg, rhoend, ftol_abs, maxeval, verbose). */
lmm_opt_control lmm_opt_control_from(SEXP control)
{
    if (!isNewList(control)) error(_("control must be a list"));
    lmm_opt_control ctrl;
    ctrl.rhobeg = list_num(control, "rhobeg", 0.2);
    ctrl.rhoend = list_num(control, "rhoend", 2e-7);
    ctrl.ftol_abs = list_num(control, "ftol_abs", 1e-8);
    ctrl.maxeval = (int) list_num(control, "maxeval", 10000);
    ctrl.verbose = (int) list_num(control, "verbose", 0);
    return ctrl;
}

static int objective_gradient(const double *theta, double *f, double *g, void *ctx)
{
    crit_ctx *c = (crit_ctx *) ctx;
    return lmm_criterion_gradient(c->m, theta, c->REML, f, g);
}

/* Minimise the criterion over theta >= lower, starting at theta0; all in C.  control$method:
   0 = BOBYQA (derivative-free), 1 = projected quasi-Newton with the analytic gradient (then
   the result also holds the gradient at the optimum and the BFGS Hessian approximation). */
SEXP lmm_optimise(SEXP ptr, SEXP theta0, SEXP lower, SEXP upper_, SEXP REML, SEXP control)
{
    lmm_model *m = lmm_get_model(ptr);
    const double *th0 = lmm_check_theta(m, theta0);
    if (!isReal(lower) || LENGTH(lower) != m->ntheta) error(_("lower must have length %d"), m->ntheta);
    if (!isReal(upper_) || LENGTH(upper_) != m->ntheta) error(_("upper must have length %d"), m->ntheta);
    int nth = m->ntheta, reml = asLogical(REML);
    if (reml == NA_LOGICAL) error(_("REML must be TRUE or FALSE"));
    SEXP theta = PROTECT(allocVector(REALSXP, nth));
    double *x = REAL(theta), *upper = (double *) R_alloc(nth, sizeof(double));
    for (int i = 0; i < nth; i++) { x[i] = th0[i]; upper[i] = REAL(upper_)[i]; }
    lmm_opt_control ctrl = lmm_opt_control_from(control);
    crit_ctx ctx = {m, reml};
    double crit, pgmax = NA_REAL;
    int feval, geval = 0, status, restarts = 0, qn = (int) list_num(control, "method", 0) == 1;
    SEXP grad = PROTECT(allocVector(REALSXP, qn ? nth : 0));
    SEXP hess = PROTECT(qn ? allocMatrix(REALSXP, nth, nth) : allocVector(REALSXP, 0));
    if (qn) {
        lmm_qn_control qc = {list_num(control, "gtol", 1e-9), ctrl.rhobeg,
                             list_num(control, "probe", 1e-4), ctrl.maxeval, ctrl.verbose};
        lmm_qn_result r = lmm_qn_minimise(objective_gradient, &ctx, nth, x, REAL(lower), upper, &qc,
                                          REAL(grad), REAL(hess));
        crit = r.fmin; feval = r.feval; geval = r.geval; status = r.status;
        pgmax = r.pgmax; restarts = r.restarts;
    } else {
        lmm_opt_result r = lmm_minimise(objective, &ctx, nth, x, REAL(lower), upper, &ctrl);
        crit = r.fmin; feval = r.feval; status = r.status;
    }
    const char *nm[] = {"theta", "crit", "feval", "status", "geval", "pgmax", "restarts",
                        "gradient", "hessian"};
    int nout = 9;
    SEXP ans = PROTECT(allocVector(VECSXP, nout)), names = PROTECT(allocVector(STRSXP, nout));
    SET_VECTOR_ELT(ans, 0, theta);
    SET_VECTOR_ELT(ans, 1, ScalarReal(crit));
    SET_VECTOR_ELT(ans, 2, ScalarInteger(feval));
    SET_VECTOR_ELT(ans, 3, ScalarInteger(status));
    SET_VECTOR_ELT(ans, 4, ScalarInteger(geval));
    SET_VECTOR_ELT(ans, 5, ScalarReal(pgmax));
    SET_VECTOR_ELT(ans, 6, ScalarInteger(restarts));
    SET_VECTOR_ELT(ans, 7, grad);
    SET_VECTOR_ELT(ans, 8, hess);
    for (int i = 0; i < nout; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(5); /* theta, grad, hess, ans, names */
    return ans;
}

/* The criterion's parts at theta and (R_X'R_X)^{-1}: what derivative-based inference needs,
   without the conditional variances. */
SEXP lmm_parts(SEXP ptr, SEXP theta, SEXP REML)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_crit_parts cp = lmm_criterion(m, lmm_check_theta(m, theta), asLogical(REML));
    if (!m->factored) error(_("the penalised system is not positive definite at theta"));
    const char *nm[] = {"ldL2", "ldRX2", "pwrss", "crit", "sumlogw", "RXinv2"};
    SEXP ans = PROTECT(allocVector(VECSXP, 6)), names = PROTECT(allocVector(STRSXP, 6));
    double v[] = {cp.ldL2, cp.ldRX2, cp.pwrss, cp.crit, m->sumlogw};
    for (int i = 0; i < 5; i++) SET_VECTOR_ELT(ans, i, ScalarReal(v[i]));
    SET_VECTOR_ELT(ans, 5, allocMatrix(REALSXP, m->p, m->p));
    lmm_vcov_unscaled(m, REAL(VECTOR_ELT(ans, 5)));
    for (int i = 0; i < 6; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* For each row i of the sparse rows a_i = (P[i, ], A[i, ]) (1-based columns of [Z X], NA = none):
   a_i M^{-1} a_i' with M = [Lambda'Z'WZ Lambda + I, Lambda'Z'WX; X'WZ Lambda, X'WX] at theta. */
SEXP lmm_quadform(SEXP ptr, SEXP theta, SEXP P, SEXP A)
{
    lmm_model *m = lmm_get_model(ptr);
    if (!isInteger(P) || !isReal(A) || !isMatrix(P) || !isMatrix(A) ||
        nrows(P) != nrows(A) || ncols(P) != ncols(A))
        error(_("P and A must be integer and numeric matrices of the same shape"));
    lmm_criterion(m, lmm_check_theta(m, theta), 1);
    if (!m->factored) error(_("the penalised system is not positive definite at theta"));
    int nr = nrows(P), nc = ncols(P), dim = m->q + m->p;
    SEXP ans = PROTECT(allocVector(REALSXP, nr));
    double *v = (double *) R_alloc(dim > 0 ? dim : 1, sizeof(double));
    for (int i = 0; i < nr; i++) {
        if (i % 256 == 0) R_CheckUserInterrupt();
        memset(v, 0, dim * sizeof(double));
        for (int k = 0; k < nc; k++) {
            int col = INTEGER(P)[i + (size_t) k * nr];
            if (col == NA_INTEGER) continue;
            if (col < 1 || col > dim) error(_("column %d of row %d is out of range"), col, i + 1);
            v[col - 1] += REAL(A)[i + (size_t) k * nr];
        }
        lmm_std_dual(m, v + m->q);                       /* X's part in X* coordinates */
        lmm_forward_solve_zx(m, v);
        double s = 0;
        for (int j = 0; j < dim; j++) s += v[j] * v[j];
        REAL(ans)[i] = s;
    }
    UNPROTECT(1); /* ans */
    return ans;
}

/* Everything the result object needs at theta: beta, u, the criterion's parts, the diagonal
   blocks of (L_Z L_Z')^{-1} (node by node) and (R_X'R_X)^{-1}. */
SEXP lmm_solution(SEXP ptr, SEXP theta, SEXP REML)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_crit_parts cp = lmm_criterion(m, lmm_check_theta(m, theta), asLogical(REML));
    if (!m->factored) error(_("the penalised system is not positive definite at theta"));
    int p = m->p, q = m->q;
    double ncv = 0;
    for (int t = 0; t < m->k; t++) ncv += (double) m->nlt[t] * m->pt[t] * m->pt[t];
    const char *nm[] = {"beta", "u", "ldL2", "ldRX2", "pwrss", "crit", "condvar", "RXinv2",
                        "rx_pivot"};
    int nout = 9;
    SEXP ans = PROTECT(allocVector(VECSXP, nout));
    SEXP names = PROTECT(allocVector(STRSXP, nout));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, p));
    SET_VECTOR_ELT(ans, 1, allocVector(REALSXP, q));
    lmm_solve(m, REAL(VECTOR_ELT(ans, 1)), REAL(VECTOR_ELT(ans, 0)));
    lmm_std_beta(m, REAL(VECTOR_ELT(ans, 0)));                 /* back to X's coordinates */
    if (m->std_d) for (int i = 0; i < q; i++) REAL(VECTOR_ELT(ans, 1))[i] *= m->std_s;
    SET_VECTOR_ELT(ans, 2, ScalarReal(cp.ldL2));
    SET_VECTOR_ELT(ans, 3, ScalarReal(cp.ldRX2));
    SET_VECTOR_ELT(ans, 4, ScalarReal(cp.pwrss));
    SET_VECTOR_ELT(ans, 5, ScalarReal(cp.crit));
    SET_VECTOR_ELT(ans, 6, allocVector(REALSXP, (R_xlen_t) ncv));
    lmm_condvar(m, REAL(VECTOR_ELT(ans, 6)));
    SET_VECTOR_ELT(ans, 7, allocMatrix(REALSXP, p, p));
    lmm_vcov_unscaled(m, REAL(VECTOR_ELT(ans, 7)));
    SET_VECTOR_ELT(ans, 8, allocVector(REALSXP, p));
    lmm_rx_pivots(m, REAL(VECTOR_ELT(ans, 8)));
    for (int i = 0; i < nout; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* The layout the symbolic analysis chose, for tests and the benchmark. */
SEXP lmm_layout_info(SEXP ptr)
{
    lmm_model *m = lmm_get_model(ptr);
    const char *nm[] = {"nodes", "sparse_nodes", "dense_order", "sparse_values", "sparse_blocks"};
    SEXP ans = PROTECT(allocVector(REALSXP, 5)), names = PROTECT(allocVector(STRSXP, 5));
    double v[] = {m->N, m->Ns, m->md, (double) m->nLx, m->Lp[m->Ns]};
    for (int i = 0; i < 5; i++) { REAL(ans)[i] = v[i]; SET_STRING_ELT(names, i, mkChar(nm[i])); }
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* The dense Cholesky factor of a symmetric positive definite matrix (lower triangle used), for
   testing dense_chol.c against LAPACK. */
SEXP lmm_chol_dense(SEXP A)
{
    if (!isReal(A) || !isMatrix(A) || nrows(A) != ncols(A)) error(_("A must be a square numeric matrix"));
    int n = nrows(A);
    SEXP L = PROTECT(duplicate(A));
    int info = lmm_dense_chol(n, REAL(L), n);
    if (info) error(_("the matrix is not positive definite (column %d)"), info);
    for (int c = 0; c < n; c++) for (int r = 0; r < c; r++) REAL(L)[r + (size_t) c * n] = 0.0;
    UNPROTECT(1); /* L */
    return L;
}
