/*
 * residual_fit.c -- fitting with a residual structure: the criterion as a function of
 * (theta, rho) and its joint minimisation, all in C.
 *
 * For fixed rho the problem is the ordinary one on whitened data (residual.h), so the criterion
 * at (theta, rho) is lmm_criterion(theta) after re-forming A = G'G from the raw data with the
 * whitening coefficients of rho (one O(n) pass; skipped while rho is unchanged, e.g. when the
 * optimiser moves theta only).  The criterion subtracts log|V^{-1}| (m->sumlogw), so it is the
 * REML criterion / deviance of the model with residual covariance s^2 V.
 *
 * The engine model lives in an external pointer (tag `lmm_resid`) whose protected value keeps
 * the raw data alive, since it is re-read for every new rho:
 *     prot = list(y, X, refs (0-based codes), Xts, sqrtw, prev, lag, stratum, info, a, c, rho_cur,
 *                 cls, ctab, pieces, logw0)
 * When the rows fall into few classes of equal whitening coefficients (equally spaced AR(1),
 * varIdent), A(rho) is combined from per-class cross-products instead (residual_pieces.c).
 */
#include "residual_legacy.h"
#include "optimise.h"
#include <math.h>
#include <string.h>

enum { P_Y, P_X, P_REFS, P_XTS, P_SQRTW, P_PREV, P_LAG, P_STRATUM, P_INFO, P_A, P_C, P_RHO,
       P_CLS, P_CTAB, P_PIECES, P_LOGW0, P_LEN };

/* ctab = list(has_prev, lag, stratum, prev_stratum, count): one entry per class */
enum { C_HAS, C_LAG, C_S, C_SJ, C_COUNT, C_LEN };

typedef struct {
    lmm_model *m;
    lmm_resid r;
    const int **refs;
    const double **Xt;
    const double *X, *y;
    double *a, *c;          /* whitening coefficients of rho_cur */
    double *rho_cur;        /* rho of the current A; NaN before the first */
    int nrho, ntheta, REML;
    const int *free;        /* optimisation: which rho are free (x = theta, free rho) */
    double *rho;            /* optimisation: full rho, fixed entries as given */
    int nforms;             /* how often A was re-formed */
    SEXP pieces;            /* per-class cross-products, or R_NilValue */
    SEXP ctab;
    double logw0;           /* sum log w_i */
    double car1_lag;        /* optimisation: CAR(1)'s phi is taken as c^(1 / car1_lag) */
} resid_ctx;

static void resid_finalise(SEXP ptr)
{
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    lmm_free(m);
    R_ClearExternalPtr(ptr);
}

/* The context of a residual-structure model (scratch from R_alloc: valid during this .Call). */
static resid_ctx get_ctx(SEXP ptr)
{
    if (TYPEOF(ptr) != EXTPTRSXP || R_ExternalPtrTag(ptr) != install("lmm_resid"))
        error(_("not an lmmc residual-structure engine model"));
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (!m) error(_("the lmmc engine model is no longer valid (was it saved and reloaded?)"));
    SEXP prot = R_ExternalPtrProtected(ptr);
    resid_ctx x;
    memset(&x, 0, sizeof x);
    x.m = m;
    x.y = REAL(VECTOR_ELT(prot, P_Y));
    x.X = REAL(VECTOR_ELT(prot, P_X));
    x.refs = (const int **) R_alloc(m->k, sizeof(int *));
    x.Xt = (const double **) R_alloc(m->k, sizeof(double *));
    for (int t = 0; t < m->k; t++) {
        x.refs[t] = INTEGER(VECTOR_ELT(VECTOR_ELT(prot, P_REFS), t));
        x.Xt[t] = REAL(VECTOR_ELT(VECTOR_ELT(prot, P_XTS), t));
    }
    SEXP sw = VECTOR_ELT(prot, P_SQRTW);
    x.r.n = m->n;
    x.r.sqrtw = isNull(sw) ? NULL : REAL(sw);
    x.r.prev = INTEGER(VECTOR_ELT(prot, P_PREV));
    x.r.lag = REAL(VECTOR_ELT(prot, P_LAG));
    x.r.stratum = INTEGER(VECTOR_ELT(prot, P_STRATUM));
    x.r.cor = INTEGER(VECTOR_ELT(prot, P_INFO))[0];
    x.r.nstrata = INTEGER(VECTOR_ELT(prot, P_INFO))[1];
    x.a = REAL(VECTOR_ELT(prot, P_A));
    x.c = REAL(VECTOR_ELT(prot, P_C));
    x.rho_cur = REAL(VECTOR_ELT(prot, P_RHO));
    x.nrho = lmm_resid_npar(&x.r);
    x.ntheta = m->ntheta;
    x.pieces = VECTOR_ELT(prot, P_PIECES);
    x.ctab = VECTOR_ELT(prot, P_CTAB);
    x.logw0 = REAL(VECTOR_ELT(prot, P_LOGW0))[0];
    return x;
}

/* Make A the cross-product of the data whitened at rho.  Returns 1 if rho is infeasible. */
static int set_rho(resid_ctx *x, const double *rho)
{
    int same = 1;
    for (int i = 0; i < x->nrho; i++) if (!(rho[i] == x->rho_cur[i])) same = 0;
    if (same) return 0;
    const void *vmax = vmaxget();
    if (isNull(x->pieces)) {
        if (lmm_resid_whiten(&x->r, rho, x->a, x->c)) return 1;
        lmm_crossprod(x->m, x->refs, x->Xt, x->X, x->y, x->r.sqrtw, x->r.prev, x->a, x->c);
    } else {
        int K = LENGTH(x->pieces);
        const int *has = INTEGER(VECTOR_ELT(x->ctab, C_HAS)), *s = INTEGER(VECTOR_ELT(x->ctab, C_S));
        const int *sj = INTEGER(VECTOR_ELT(x->ctab, C_SJ)), *cnt = INTEGER(VECTOR_ELT(x->ctab, C_COUNT));
        const double *lag = REAL(VECTOR_ELT(x->ctab, C_LAG));
        double *alpha = (double *) R_alloc(K, sizeof(double)), *gamma = (double *) R_alloc(K, sizeof(double));
        double slw = x->logw0;
        for (int k = 0; k < K; k++) {
            if (lmm_resid_coef(x->r.cor, rho, has[k], lag[k], s[k], sj[k], alpha + k, gamma + k)) {
                vmaxset(vmax);
                return 1;
            }
            slw += 2.0 * cnt[k] * log(fabs(alpha[k]));      /* log|V^{-1}| = 2 sum log(sqrt(w) a) */
        }
        lmm_resid_combine(x->m, x->pieces, alpha, gamma, has);
        x->m->sumlogw = slw;
    }
    vmaxset(vmax);
    for (int i = 0; i < x->nrho; i++) x->rho_cur[i] = rho[i];
    x->nforms++;
    return 0;
}

static const double *check_vec(SEXP v, int len, const char *what)
{
    if (!isReal(v) || XLENGTH(v) != len) error(_("%s must be a numeric vector of length %d"), what, len);
    for (int i = 0; i < len; i++)
        if (!R_FINITE(REAL(v)[i])) error(_("%s[%d] is not finite"), what, i + 1);
    return REAL(v);
}

static const double **xts_ptrs(SEXP Xts, int k)
{
    const double **Xt = (const double **) R_alloc(k, sizeof(double *));
    for (int t = 0; t < k; t++) Xt[t] = REAL(VECTOR_ELT(Xts, t));
    return Xt;
}

/* Combine per-class cross-products when they are cheaper than a pass over the rows:
   mode 0 never, 2 always (tests), 1 when their size is below the work of one pass
   (about n (width of a whitened row)^2) and below 1e7 doubles. */
static int use_pieces(const lmm_model *m, int mode, int K, const int *has_prev)
{
    if (mode == 0) return 0;
    if (mode == 2) return 1;
    double width = m->p + 1;
    for (int t = 0; t < m->k; t++) width += 2.0 * m->pt[t];
    double size = lmm_resid_pieces_size(m, K, has_prev);
    return size <= 1e7 && size <= (double) m->n * width * width;
}

/* lmm_setup_resid(y, X, refs, Xts, nl, sqrtw, resid): as lmm_setup, with
   resid = list(prev (0-based, -1 = none), lag, stratum (0-based), info = c(cor, nstrata, mode),
                cls (0-based class of each row), ctab = list(has_prev, lag, stratum,
                prev_stratum, count) per class); mode: see use_pieces(). */
SEXP lmm_setup_resid(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP resid)
{
    int n = lmm_check_setup(y, X, refs, Xts, nl, sqrtw);
    if (!isNewList(resid) || LENGTH(resid) != 6) error(_("the residual structure is malformed"));
    SEXP prev = VECTOR_ELT(resid, 0), lag = VECTOR_ELT(resid, 1);
    SEXP stratum = VECTOR_ELT(resid, 2), info = VECTOR_ELT(resid, 3);
    SEXP cls = VECTOR_ELT(resid, 4), ctab = VECTOR_ELT(resid, 5);
    if (!isInteger(prev) || LENGTH(prev) != n || !isReal(lag) || LENGTH(lag) != n ||
        !isInteger(stratum) || LENGTH(stratum) != n || !isInteger(info) || LENGTH(info) != 3 ||
        !isInteger(cls) || LENGTH(cls) != n || !isNewList(ctab) || LENGTH(ctab) != C_LEN)
        error(_("the residual structure is malformed"));
    int cor = INTEGER(info)[0], nstrata = INTEGER(info)[1], mode = INTEGER(info)[2];
    if (cor < LMM_COR_NONE || cor > LMM_COR_CAR1 || nstrata < 1)
        error(_("the residual structure is malformed"));
    int K = LENGTH(VECTOR_ELT(ctab, C_HAS));
    for (int e = 0; e < C_LEN; e++)
        if (LENGTH(VECTOR_ELT(ctab, e)) != K || (e == C_LAG ? !isReal(VECTOR_ELT(ctab, e)) :
                                                 !isInteger(VECTOR_ELT(ctab, e))))
            error(_("the residual classes are malformed"));
    for (int i = 0; i < n; i++)
        if (INTEGER(cls)[i] == NA_INTEGER || INTEGER(cls)[i] < 0 || INTEGER(cls)[i] >= K)
            error(_("residual class out of range at row %d"), i + 1);
    for (int i = 0; i < n; i++) {
        int j = INTEGER(prev)[i], s = INTEGER(stratum)[i];
        if (j == NA_INTEGER || j < -1 || j >= n || j == i)
            error(_("predecessor out of range at row %d"), i + 1);
        if (j >= 0 && !(REAL(lag)[i] > 0)) error(_("time lag must be positive at row %d"), i + 1);
        if (s == NA_INTEGER || s < 0 || s >= nstrata) error(_("stratum out of range at row %d"), i + 1);
    }
    int k = LENGTH(refs), p = ncols(X);
    int *pt = (int *) R_alloc(k, sizeof(int));
    SEXP prot = PROTECT(allocVector(VECSXP, P_LEN));
    SEXP refs0 = allocVector(VECSXP, k);
    SET_VECTOR_ELT(prot, P_REFS, refs0);
    const int **ref0 = (const int **) R_alloc(k, sizeof(int *));
    for (int t = 0; t < k; t++) {
        SEXP xt = VECTOR_ELT(Xts, t);
        SET_VECTOR_ELT(refs0, t, allocVector(INTSXP, n));
        int *r0 = INTEGER(VECTOR_ELT(refs0, t));
        lmm_term_codes(VECTOR_ELT(refs, t), xt, INTEGER(nl)[t], n, t, r0);
        ref0[t] = r0;
        pt[t] = ncols(xt);
    }
    SEXP keep[] = {y, X, Xts, sqrtw, prev, lag, stratum, info, cls, ctab};
    int slot[] = {P_Y, P_X, P_XTS, P_SQRTW, P_PREV, P_LAG, P_STRATUM, P_INFO, P_CLS, P_CTAB};
    for (int i = 0; i < 10; i++) { MARK_NOT_MUTABLE(keep[i]); SET_VECTOR_ELT(prot, slot[i], keep[i]); }
    SET_VECTOR_ELT(prot, P_A, allocVector(REALSXP, n));
    SET_VECTOR_ELT(prot, P_C, allocVector(REALSXP, n));
    int nrho = (cor != LMM_COR_NONE) + nstrata - 1;
    SET_VECTOR_ELT(prot, P_RHO, allocVector(REALSXP, nrho));
    for (int i = 0; i < nrho; i++) REAL(VECTOR_ELT(prot, P_RHO))[i] = R_NaN;
    lmm_model *m = R_Calloc(1, lmm_model);
    SEXP ptr = PROTECT(R_MakeExternalPtr(m, install("lmm_resid"), prot));
    R_RegisterCFinalizerEx(ptr, resid_finalise, TRUE);
    lmm_layout_fill(m, n, p, k, pt, INTEGER(nl), ref0, INTEGER(prev));
    lmm_standardise(m, REAL(X), REAL(y));
    double logw0 = 0;
    if (!isNull(sqrtw)) for (int i = 0; i < n; i++) logw0 += 2 * log(REAL(sqrtw)[i]);
    SET_VECTOR_ELT(prot, P_LOGW0, ScalarReal(logw0));
    if (use_pieces(m, mode, K, INTEGER(VECTOR_ELT(ctab, C_HAS))))
        SET_VECTOR_ELT(prot, P_PIECES,
                       lmm_resid_pieces(m, ref0, (const double *const *) xts_ptrs(Xts, k), REAL(X),
                                        REAL(y), isNull(sqrtw) ? NULL : REAL(sqrtw), INTEGER(prev),
                                        INTEGER(cls), K, INTEGER(VECTOR_ELT(ctab, C_HAS))));
    UNPROTECT(2); /* prot, ptr */
    return ptr;
}

/* The criterion at (theta, rho); +Inf outside the parameter space. */
SEXP lmm_crit_resid(SEXP ptr, SEXP theta, SEXP rho, SEXP REML)
{
    resid_ctx x = get_ctx(ptr);
    const double *th = check_vec(theta, x.ntheta, "theta");
    if (set_rho(&x, check_vec(rho, x.nrho, "rho"))) return ScalarReal(R_PosInf);
    return ScalarReal(lmm_criterion(x.m, th, asLogical(REML)).crit);
}

/* control$name as a number, or dflt when absent */
static double list_num_resid(SEXP list, const char *name, double dflt)
{
    SEXP names = getAttrib(list, R_NamesSymbol);
    if (!isNewList(list) || isNull(names)) return dflt;
    for (int i = 0; i < LENGTH(list); i++)
        if (!strcmp(CHAR(STRING_ELT(names, i)), name)) return asReal(VECTOR_ELT(list, i));
    return dflt;
}

/* f(theta, free rho) for the optimiser.  AR(1)'s phi is optimised as z = atanh(phi) (as nlme's
   unconstrained parameter; measured: about 25% fewer evaluations than phi itself on simulated
   AR(1) growth curves); CAR(1)'s phi as c = phi^s in [0, 1), s = car1_lag the typical lag
   between consecutive times (R: the median), i.e. the correlation at that lag: phi itself is
   badly scaled when lags are short (Ovary: lags ~0.05, nlme's phi 8.2e-6, correlation 0.56 at
   the typical lag; in phi the optimum sat within 1e-5 of 0 and BOBYQA missed it), and phi = 0
   stays reachable.  Both are kept within |phi| <= 1 - 1e-6 by the bounds. */
static double joint_objective(const double *par, void *ctx)
{
    resid_ctx *x = (resid_ctx *) ctx;
    for (int i = 0, f = 0; i < x->nrho; i++) if (x->free[i]) x->rho[i] = par[x->ntheta + f++];
    if (x->r.cor == LMM_COR_AR1 && x->free[0]) x->rho[0] = tanh(x->rho[0]);
    if (x->r.cor == LMM_COR_CAR1 && x->free[0] && x->car1_lag != 1)
        x->rho[0] = x->rho[0] > 0 ? pow(x->rho[0], 1 / x->car1_lag) : 0;
    if (set_rho(x, x->rho)) return R_PosInf;
    return lmm_criterion(x->m, par, x->REML).crit;
}

/* Minimise over x = (theta, free entries of rho) in the box [lower, upper], starting at x0;
   rho gives the fixed entries (and is the full starting rho).  With AR(1) and phi free, x holds
   atanh(phi) in phi's place (see joint_objective). */
SEXP lmm_optimise_resid(SEXP ptr, SEXP x0, SEXP lower, SEXP upper, SEXP rho, SEXP free,
                        SEXP REML, SEXP control)
{
    resid_ctx x = get_ctx(ptr);
    if (!isLogical(free) || LENGTH(free) != x.nrho) error(_("free must be logical of length %d"), x.nrho);
    int nfree = 0;
    for (int i = 0; i < x.nrho; i++) nfree += LOGICAL(free)[i] == TRUE;
    int npar = x.ntheta + nfree;
    const double *start = check_vec(x0, npar, "x0");
    if (!isReal(lower) || LENGTH(lower) != npar || !isReal(upper) || LENGTH(upper) != npar)
        error(_("lower and upper must have length %d"), npar);
    int *fr = (int *) R_alloc(x.nrho + 1, sizeof(int));
    for (int i = 0; i < x.nrho; i++) fr[i] = LOGICAL(free)[i] == TRUE;
    x.free = fr;
    x.rho = (double *) R_alloc(x.nrho + 1, sizeof(double));
    memcpy(x.rho, check_vec(rho, x.nrho, "rho"), x.nrho * sizeof(double));
    x.REML = asLogical(REML);
    x.car1_lag = list_num_resid(control, "car1_lag", 1);
    if (!(x.car1_lag > 0) || !R_FINITE(x.car1_lag)) error(_("car1_lag must be positive"));
    SEXP par = PROTECT(allocVector(REALSXP, npar));
    memcpy(REAL(par), start, npar * sizeof(double));
    lmm_opt_control ctrl = lmm_opt_control_from(control);
    lmm_opt_result res = lmm_minimise(joint_objective, &x, npar, REAL(par), REAL(lower),
                                      REAL(upper), &ctrl);
    const char *nm[] = {"par", "crit", "feval", "status", "nforms"};
    SEXP ans = PROTECT(allocVector(VECSXP, 5)), names = PROTECT(allocVector(STRSXP, 5));
    SET_VECTOR_ELT(ans, 0, par);
    SET_VECTOR_ELT(ans, 1, ScalarReal(res.fmin));
    SET_VECTOR_ELT(ans, 2, ScalarInteger(res.feval));
    SET_VECTOR_ELT(ans, 3, ScalarInteger(res.status));
    SET_VECTOR_ELT(ans, 4, ScalarInteger(x.nforms));
    for (int i = 0; i < 5; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(3); /* par, ans, names */
    return ans;
}

/* lmm_solution() at (theta, rho), plus log|V^{-1}| as "sumlogw". */
SEXP lmm_solution_resid(SEXP ptr, SEXP theta, SEXP rho, SEXP REML)
{
    resid_ctx x = get_ctx(ptr);
    check_vec(theta, x.ntheta, "theta");
    if (set_rho(&x, check_vec(rho, x.nrho, "rho")))
        error(_("the residual parameters are outside their range"));
    SEXP sol = PROTECT(lmm_solution(ptr, theta, REML));
    int len = LENGTH(sol);
    SEXP ans = PROTECT(allocVector(VECSXP, len + 1)), names = PROTECT(allocVector(STRSXP, len + 1));
    SEXP old = getAttrib(sol, R_NamesSymbol);
    for (int i = 0; i < len; i++) {
        SET_VECTOR_ELT(ans, i, VECTOR_ELT(sol, i));
        SET_STRING_ELT(names, i, STRING_ELT(old, i));
    }
    SET_VECTOR_ELT(ans, len, ScalarReal(x.m->sumlogw));
    SET_STRING_ELT(names, len, mkChar("sumlogw"));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(3); /* sol, ans, names */
    return ans;
}

/* The whitening coefficients at rho: list(a, c) (row i: sqrt(w_i) a_i e_i + c_i e_prev(i)). */
SEXP lmm_whiten_resid(SEXP ptr, SEXP rho)
{
    resid_ctx x = get_ctx(ptr);
    const double *r = check_vec(rho, x.nrho, "rho");
    SEXP ans = PROTECT(allocVector(VECSXP, 2)), names = PROTECT(allocVector(STRSXP, 2));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, x.r.n));
    SET_VECTOR_ELT(ans, 1, allocVector(REALSXP, x.r.n));
    if (lmm_resid_whiten(&x.r, r, REAL(VECTOR_ELT(ans, 0)), REAL(VECTOR_ELT(ans, 1))))
        error(_("the residual parameters are outside their range"));
    SET_STRING_ELT(names, 0, mkChar("a"));
    SET_STRING_ELT(names, 1, mkChar("c"));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}
