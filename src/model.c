/*
 * model.c -- the .Call interface: an engine model lives in an external pointer whose finaliser
 * frees it, so nothing leaks when R signals an error or the user interrupts.
 */
#include "residual.h"
#include "optimise.h"
#include "quasi_newton.h"
#include "iterative.h"
#include <string.h>

static void model_finalise(SEXP ptr)
{
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (m) lmm_resid_free(m->resid);
    lmm_free(m);
    R_ClearExternalPtr(ptr);
}

/* the model behind a .Call's engine pointer (shared with gradient.c) */
lmm_model *lmm_get_model(SEXP ptr)
{
    if (TYPEOF(ptr) != EXTPTRSXP) error(_("not an lmmc engine model"));
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (!m) error(_("the lmmc engine model is no longer valid (was it saved and reloaded?)"));
    if (m->predict_only) error(_("the lmmc engine holds only a layout prediction"));
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
        LENGTH(refs) != LENGTH(Xts) || LENGTH(nl) != LENGTH(refs))
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

/* ---- setup ------------------------------------------------------------------------------- */

/* The residual structure R describes -- list(gp, grow, cor, var): group g's rows
   grow[gp[g] .. gp[g+1]-1] (0-based, in the group's order), cor a correlation structure or
   NULL, var a list of variance components (residual_families.c) -- checked and copied. */
static lmm_resid *resid_from(SEXP s, int n, const double *sqrtw)
{
    if (!isNewList(s)) error(_("the residual structure is malformed"));
    SEXP gp = lmm_list_elt(s, "gp"), grow = lmm_list_elt(s, "grow"), cor = lmm_list_elt(s, "cor"), var = lmm_list_elt(s, "var");
    if (!isInteger(gp) || LENGTH(gp) < 1 || !isInteger(grow) || LENGTH(grow) != n ||
        (!isNull(var) && !isNewList(var)))
        error(_("the residual structure is malformed"));
    int G = LENGTH(gp) - 1;
    if (INTEGER(gp)[0] != 0 || INTEGER(gp)[G] != n) error(_("the residual groups are malformed"));
    for (int g = 0; g < G; g++)
        if (INTEGER(gp)[g + 1] <= INTEGER(gp)[g]) error(_("the residual groups are malformed"));
    int *seen = (int *) R_alloc(n > 0 ? n : 1, sizeof(int));
    memset(seen, 0, n * sizeof(int));
    for (int i = 0; i < n; i++) {
        int r = INTEGER(grow)[i];
        if (r == NA_INTEGER || r < 0 || r >= n || seen[r]++)
            error(_("the residual groups must list every row once (row %d)"), i + 1);
    }
    lmm_cor c;
    memset(&c, 0, sizeof c);
    if (!isNull(cor)) {
        c = lmm_cor_from(cor, n);
        if (!lmm_cor_family(c.code)) error(_("correlation family %d is not available"), c.code);
    }
    int nvar = isNull(var) ? 0 : LENGTH(var);
    lmm_var *vv = (lmm_var *) R_alloc(nvar + 1, sizeof(lmm_var));
    for (int v = 0; v < nvar; v++) {
        vv[v] = lmm_var_from(VECTOR_ELT(var, v), n);
        if (!lmm_var_family(vv[v].code)) error(_("variance family %d is not available"), vv[v].code);
    }
    lmm_resid *rs = R_Calloc(1, lmm_resid);       /* from here on, freed by the finaliser */
    rs->n = n;
    rs->G = G;
    rs->gp = R_Calloc(G + 1, int);
    rs->grow = R_Calloc(n > 0 ? n : 1, int);
    memcpy(rs->gp, INTEGER(gp), (G + 1) * sizeof(int));
    memcpy(rs->grow, INTEGER(grow), n * sizeof(int));
    rs->cor = c;
    rs->cor_code = c.code;
    rs->banded = c.code == LMM_COR_AR1 || c.code == LMM_COR_CAR1;
    rs->ncor = c.npar;
    rs->nvar = nvar;
    rs->var = R_Calloc(nvar + 1, lmm_var);
    rs->var_off = R_Calloc(nvar + 1, int);
    rs->nrho = rs->ncor;
    for (int v = 0; v < nvar; v++) {
        rs->var[v] = vv[v];
        rs->var_off[v] = rs->nrho;
        rs->nrho += vv[v].npar;
    }
    rs->nvarpar = rs->nrho - rs->ncor;
    rs->sqrtw = sqrtw;
    rs->rho_cur = R_Calloc(rs->nrho + 1, double);
    return rs;
}

/* The classes of equal whitening coefficients R gives for Markov x varIdent structures --
   list(cls, has, lag, s, sj, count, mode) (residual_pieces.c) -- or NULL. */
static lmm_pieces *pieces_from(SEXP p, const lmm_resid *rs)
{
    if (isNull(p)) return NULL;
    SEXP cls = lmm_list_elt(p, "cls"), has = lmm_list_elt(p, "has"), lag = lmm_list_elt(p, "lag"), st = lmm_list_elt(p, "s"),
         sj = lmm_list_elt(p, "sj"), cnt = lmm_list_elt(p, "count");
    int K = LENGTH(has), n = rs->n;
    if (!isInteger(cls) || LENGTH(cls) != n || !isInteger(has) || !isReal(lag) ||
        LENGTH(lag) != K || !isInteger(st) || LENGTH(st) != K || !isInteger(sj) ||
        LENGTH(sj) != K || !isInteger(cnt) || LENGTH(cnt) != K)
        error(_("the residual classes are malformed"));
    if (!(rs->cor_code == LMM_COR_NONE || rs->banded) || rs->nvar > 1 ||
        (rs->nvar == 1 && rs->var[0].code != LMM_VAR_IDENT))
        error(_("residual classes need a Markov correlation and at most one varIdent"));
    int nstrata = rs->nvar ? rs->var[0].nstrata : 1;
    for (int k = 0; k < K; k++)
        if (INTEGER(st)[k] < 0 || INTEGER(st)[k] >= nstrata || INTEGER(sj)[k] < 0 ||
            INTEGER(sj)[k] >= nstrata)
            error(_("the residual classes are malformed"));
    for (int i = 0; i < n; i++) {                    /* each row agrees with its class */
        int k = INTEGER(cls)[i];
        if (k == NA_INTEGER || k < 0 || k >= K) error(_("residual class out of range at row %d"), i + 1);
        int first = rs->K.Kp[i + 1] - rs->K.Kp[i] == 1, s_i = rs->nvar && rs->var[0].stratum ?
            rs->var[0].stratum[i] : 0;
        if (INTEGER(has)[k] == first || INTEGER(st)[k] != s_i)
            error(_("the residual classes disagree with the data at row %d"), i + 1);
    }
    lmm_pieces *pc = R_Calloc(1, lmm_pieces);
    pc->K = K;
    pc->cls = INTEGER(cls);
    pc->has = INTEGER(has);
    pc->lag = REAL(lag);
    pc->s = INTEGER(st);
    pc->sj = INTEGER(sj);
    pc->cnt = INTEGER(cnt);
    return pc;
}

/* Per-class pieces when they are cheaper than a pass over the rows: mode 0 never, 2 always
   (tests), 1 when their size is below the work of one pass (about n (width of a whitened
   row)^2) and below 1e7 doubles. */
static int use_pieces(const lmm_model *m, int mode, const lmm_pieces *pc)
{
    if (!pc || mode == 0) return 0;
    if (mode == 2) return 1;
    double width = m->p + 1;
    for (int t = 0; t < m->k; t++) width += 2.0 * m->pt[t];
    /* the size counted as the rule was set, A's dense block full (md^2 doubles a piece, before
       it was packed: dense_packed.h), so that the choice -- and the results -- stay as they were */
    double len = (double) m->nLx + (double) lmm_packed_len(m->md);
    double size = lmm_pieces_size(m, pc->K, pc->has) / len
                  * ((double) m->nLx + (double) m->md * m->md);
    return size <= 1e7 && size <= (double) m->n * width * width;
}

/* Markov families need strictly increasing times within groups */
static void check_markov_times(const lmm_resid *rs)
{
    for (int g = 0; g < rs->G; g++)
        for (int a = rs->gp[g] + 1; a < rs->gp[g + 1]; a++)
            if (!(rs->cor.cov[rs->grow[a]] > rs->cor.cov[rs->grow[a - 1]]))
                error(_("times must increase strictly within each correlation group (row %d)"),
                      rs->grow[a] + 1);
}

/* lmm_setup(y, X, refs, Xts, nl, sqrtw, resid): y (n), X (n x p), refs: list of k integer
   vectors of 1-based level codes, Xts: list of k n x p_t matrices, nl: levels per term, sqrtw:
   NULL or n, resid: NULL or a residual structure (resid_from).  Without a residual structure A
   is formed here, once; with one, the raw data are kept (the pointer's protected value) and A
   is formed for each new rho. */
SEXP lmm_setup(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP resid)
{
    int n = lmm_check_setup(y, X, refs, Xts, nl, sqrtw);
    int k = LENGTH(refs), p = ncols(X);
    int *pt = (int *) R_alloc(k + 1, sizeof(int));
    SEXP prot = PROTECT(allocVector(VECSXP, 6));
    SEXP refs0 = allocVector(VECSXP, k);
    SET_VECTOR_ELT(prot, 2, refs0);
    const int **ref0 = (const int **) R_alloc(k + 1, sizeof(int *));
    const double **Xt = (const double **) R_alloc(k + 1, sizeof(double *));
    for (int t = 0; t < k; t++) {
        SEXP xt = VECTOR_ELT(Xts, t);
        SET_VECTOR_ELT(refs0, t, allocVector(INTSXP, n));
        int *r0 = INTEGER(VECTOR_ELT(refs0, t));
        lmm_term_codes(VECTOR_ELT(refs, t), xt, INTEGER(nl)[t], n, t, r0);
        ref0[t] = r0;
        Xt[t] = REAL(xt);
        pt[t] = ncols(xt);
    }
    const double *sw = isNull(sqrtw) ? NULL : REAL(sqrtw);
    lmm_model *m = R_Calloc(1, lmm_model);
    SEXP ptr = PROTECT(R_MakeExternalPtr(m, R_NilValue, isNull(resid) ? R_NilValue : prot));
    R_RegisterCFinalizerEx(ptr, model_finalise, TRUE);
    if (isNull(resid)) {
        lmm_layout_fill(m, n, p, k, pt, INTEGER(nl), (int *const *) ref0, NULL, NULL);
        if (m->predict_only) { UNPROTECT(2); return ptr; }   /* prot, ptr: the layout alone */
        lmm_standardise(m, REAL(X), REAL(y));
        lmm_whitening K = lmm_diagonal_whitening(n, sw);
        lmm_crossprod(m, ref0, Xt, REAL(X), REAL(y), &K);
        UNPROTECT(2); /* prot, ptr */
        return ptr;
    }
    SEXP keep[] = {y, X, Xts, sqrtw, resid};
    int slot[] = {0, 1, 3, 4, 5};
    for (int i = 0; i < 5; i++) { MARK_NOT_MUTABLE(keep[i]); SET_VECTOR_ELT(prot, slot[i], keep[i]); }
    lmm_resid *rs = resid_from(resid, n, sw);
    m->resid = rs;
    if (rs->banded) check_markov_times(rs);
    if (rs->cor_code == LMM_COR_ARMA && rs->cor.niopt >= 2 && rs->cor.iopt[1] == 0 &&
        rs->cor.iopt[0] >= 1 && rs->cor.iopt[0] <= 64) {
        rs->band_p = rs->cor.iopt[0];                 /* AR(p): banded where times allow */
        lmm_band_groups(rs);
    }
    if (rs->cor_code == LMM_COR_ARMA && rs->cor.niopt >= 2 && rs->cor.iopt[1] >= 1)
        lmm_innov_groups(rs, k, ref0);                /* ARMA(p, q > 0): recursive where allowed */
    lmm_resid_pattern(rs);
    rs->refs = ref0;                       /* R_alloc'd: re-pointed at every .Call (get_model) */
    lmm_layout_fill(m, n, p, k, pt, INTEGER(nl), (int *const *) ref0, rs->K.Kp, rs->K.Kj);
    if (m->predict_only) { rs->refs = NULL; UNPROTECT(2); return ptr; }   /* prot, ptr */
    lmm_standardise(m, REAL(X), REAL(y));
    SEXP pcs = lmm_list_elt(resid, "pieces");
    rs->pieces = pieces_from(pcs, rs);
    if (rs->pieces && use_pieces(m, isNull(pcs) ? 0 : asInteger(lmm_list_elt(pcs, "mode")), rs->pieces)) {
        rs->Xt = Xt;
        rs->X = REAL(X);
        rs->y = REAL(y);
        lmm_pieces_build(m, rs);
    } else {
        lmm_pieces_free(rs->pieces);
        rs->pieces = NULL;
    }
    rs->refs = NULL;
    rs->Xt = NULL;
    UNPROTECT(2); /* prot, ptr */
    return ptr;
}

/* ---- rho ------------------------------------------------------------------------------------ */

/* The raw data of a residual-structure engine, re-pointed from its protected value (the
   pointer arrays are R_alloc'd: valid during this .Call). */
static void point_data(SEXP ptr, lmm_model *m)
{
    lmm_resid *rs = m->resid;
    if (!rs) return;
    SEXP prot = R_ExternalPtrProtected(ptr);
    SEXP refs0 = VECTOR_ELT(prot, 2), Xts = VECTOR_ELT(prot, 3);
    const int **refs = (const int **) R_alloc(m->k + 1, sizeof(int *));
    const double **Xt = (const double **) R_alloc(m->k + 1, sizeof(double *));
    for (int t = 0; t < m->k; t++) {
        refs[t] = INTEGER(VECTOR_ELT(refs0, t));
        Xt[t] = REAL(VECTOR_ELT(Xts, t));
    }
    rs->refs = refs;
    rs->Xt = Xt;
    rs->y = REAL(VECTOR_ELT(prot, 0));
    rs->X = REAL(VECTOR_ELT(prot, 1));
}

static int nrho_of(const lmm_model *m)
{
    return m->resid ? m->resid->nrho : 0;
}

/* rho checked against the model: finite, of the structure's length (0 without one) */
static const double *check_rho(const lmm_model *m, SEXP rho)
{
    int nr = nrho_of(m);
    if (!isReal(rho) || XLENGTH(rho) != nr)
        error(_("rho must be a numeric vector of length %d"), nr);
    for (int i = 0; i < nr; i++)
        if (!R_FINITE(REAL(rho)[i])) error(_("rho[%d] is not finite"), i + 1);
    return REAL(rho);
}

/* Make A (and K, and with deriv dK) those of rho.  The state is marked invalid before anything
   is rebuilt, so an interrupt or error inside leaves no stale A named current.  Returns 1 when
   rho is outside the parameter space. */
static int set_rho(lmm_model *m, const double *rho, int deriv)
{
    lmm_resid *rs = m->resid;
    if (!rs) return 0;
    int same = rs->valid;
    for (int i = 0; i < rs->nrho && same; i++) if (!(rho[i] == rs->rho_cur[i])) same = 0;
    if (same && (!deriv || rs->have_dK)) return 0;
    if (same) {                                        /* A is current: dK only */
        rs->have_dK = 0;
        if (rs->pieces ? lmm_pieces_combine(m, rs, rho, 1) : lmm_resid_whiten(rs, rho, 1))
            return 1;
        rs->have_dK = 1;
        return 0;
    }
    rs->valid = 0;
    rs->have_dK = 0;
    m->factored = 0;
    if (rs->pieces) {                                 /* A from the per-class pieces */
        if (lmm_pieces_combine(m, rs, rho, deriv)) return 1;
    } else {
        if (lmm_resid_whiten(rs, rho, deriv)) return 1;
        lmm_crossprod(m, rs->refs, rs->Xt, rs->X, rs->y, &rs->K);
        if (rs->ginnov) lmm_innov_crossprod(m, rs);
    }
    memcpy(rs->rho_cur, rho, rs->nrho * sizeof(double));
    rs->valid = 1;
    rs->have_dK = deriv;
    return 0;
}

/* The engine at (theta, rho) for a .Call: the model with A at rho; stops when rho is outside
   the space unless `soft` (then *bad = 1). */
static lmm_model *engine_at(SEXP ptr, SEXP theta, SEXP rho, int soft, int *bad)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_check_theta(m, theta);
    const double *r = check_rho(m, rho);
    point_data(ptr, m);
    *bad = set_rho(m, r, 0);
    if (*bad && !soft) error(_("the residual parameters rho are outside their range"));
    return m;
}

/* The criterion and its gradient in (theta, rho): grad[ntheta + nrho].  Nonzero when the
   criterion is not finite (gradient unset). */
static int criterion_gradient(lmm_model *m, const double *theta, const double *rho, int REML,
                              double *f, double *grad)
{
    int nt = m->ntheta, nr = nrho_of(m);
    if (m->iter) return lmm_iter_criterion_gradient(m, theta, REML, f, grad);   /* iterative.h */
    if (set_rho(m, rho, 1)) { *f = R_PosInf; return 1; }
    if (!nr) return lmm_criterion_gradient(m, theta, REML, f, grad);
    const void *vmax = vmaxget();
    double *Mx = lmm_workspace(m, 1, m->nLx + 1 + lmm_md_len(m) + 1);    /* Md: residual.h */
    double *Md = Mx + m->nLx + 1;
    int status = lmm_criterion_gradient_M(m, theta, REML, f, grad, Mx, Md);
    if (!status) {
        lmm_resid *rs = m->resid;
        if (rs->pieces) lmm_pieces_contract(m, rs, Mx, Md, grad + nt);
        else lmm_crossprod_contract(m, rs->refs, rs->Xt, rs->X, rs->y, &rs->K, Mx, Md, grad + nt);
        if (rs->ginnov) lmm_innov_contract(m, rs, Mx, Md, grad + nt);
        for (int k = 0; k < nr; k++) grad[nt + k] -= rs->K.dlogdet[k];   /* crit has -log|V^-1| */
    }
    vmaxset(vmax);
    return status;
}

/* ---- .Call entries ---------------------------------------------------------------------------- */

SEXP lmm_crit(SEXP ptr, SEXP theta, SEXP REML, SEXP rho)
{
    int bad;
    lmm_model *m = engine_at(ptr, theta, rho, 1, &bad);
    if (bad) return ScalarReal(R_PosInf);
    if (m->iter) return ScalarReal(lmm_iter_crit(m, REAL(theta), asLogical(REML)));
    return ScalarReal(lmm_criterion(m, REAL(theta), asLogical(REML)).crit);
}

/* lmm_gradient(ptr, theta, REML, rho) -> the criterion with attribute "gradient" (theta, then
   rho; NA when the criterion is not finite there). */
SEXP lmm_gradient(SEXP ptr, SEXP theta, SEXP REML, SEXP rho)
{
    lmm_model *m = lmm_get_model(ptr);
    const double *th = lmm_check_theta(m, theta), *r = check_rho(m, rho);
    int reml = asLogical(REML), np = m->ntheta + nrho_of(m);
    if (reml == NA_LOGICAL) error(_("REML must be TRUE or FALSE"));
    point_data(ptr, m);
    SEXP ans = PROTECT(allocVector(REALSXP, 1));
    SEXP grad = PROTECT(allocVector(REALSXP, np));
    if (criterion_gradient(m, th, r, reml, REAL(ans), REAL(grad)))
        for (int i = 0; i < np; i++) REAL(grad)[i] = NA_REAL;
    setAttrib(ans, install("gradient"), grad);
    UNPROTECT(2); /* ans, grad */
    return ans;
}

/* The optimiser's view: x = (theta, the free entries of rho); rho holds the fixed ones. */
typedef struct {
    lmm_model *m;
    int REML, nt, nr;
    const int *free;
    double *rho, *gfull;
} crit_ctx;

static void unpack_rho(crit_ctx *c, const double *x)
{
    for (int i = 0, f = 0; i < c->nr; i++) if (c->free[i]) c->rho[i] = x[c->nt + f++];
}

static double objective(const double *x, void *ctx)
{
    crit_ctx *c = (crit_ctx *) ctx;
    unpack_rho(c, x);
    if (set_rho(c->m, c->rho, 0)) return R_PosInf;
    if (c->m->iter) return lmm_iter_crit(c->m, x, c->REML);
    return lmm_criterion(c->m, x, c->REML).crit;
}

static int objective_gradient(const double *x, double *f, double *g, void *ctx)
{
    crit_ctx *c = (crit_ctx *) ctx;
    unpack_rho(c, x);
    int status = criterion_gradient(c->m, x, c->rho, c->REML, f, c->gfull);
    if (status) return status;
    memcpy(g, c->gfull, c->nt * sizeof(double));
    for (int i = 0, f2 = 0; i < c->nr; i++) if (c->free[i]) g[c->nt + f2++] = c->gfull[c->nt + i];
    return 0;
}

static double list_num(SEXP list, const char *name, double dflt)
{
    SEXP v = lmm_list_elt(list, name);
    return isNull(v) ? dflt : asReal(v);
}

/* The optimiser's settings from R's list(rhobeg, rhoend, ftol_abs, maxeval, verbose). */
lmm_opt_control lmm_opt_control_from(SEXP control)
{
    if (!isNewList(control)) error(_("control must be a list"));
    lmm_opt_control ctrl;
    ctrl.rhobeg = list_num(control, "rhobeg", 0.2);
    ctrl.rhoend = list_num(control, "rhoend", 2e-7);
    ctrl.ftol_abs = list_num(control, "ftol_abs", 1e-8);
    double maxeval = list_num(control, "maxeval", 10000);
    if (!(maxeval >= 1) || maxeval > INT_MAX) error(_("maxeval must be a positive integer"));
    ctrl.maxeval = (int) maxeval;
    ctrl.verbose = (int) list_num(control, "verbose", 0);
    return ctrl;
}

/* Minimise the criterion over x = (theta, free rho) in the box [lower, upper], from x0; rho
   holds the fixed entries of rho (and the start of the free ones, which x0 repeats).
   control$method: 0 = BOBYQA (derivative-free), 1 = projected quasi-Newton with the analytic
   gradient (then the result also holds the gradient at the optimum and the BFGS Hessian
   approximation).  The result's "theta" is the whole x. */
SEXP lmm_optimise(SEXP ptr, SEXP x0, SEXP lower, SEXP upper_, SEXP REML, SEXP control, SEXP rho,
                  SEXP free)
{
    lmm_model *m = lmm_get_model(ptr);
    const double *r0 = check_rho(m, rho);
    int nt = m->ntheta, nr = nrho_of(m), reml = asLogical(REML);
    if (reml == NA_LOGICAL) error(_("REML must be TRUE or FALSE"));
    if (!isLogical(free) || LENGTH(free) != nr) error(_("free must be logical of length %d"), nr);
    int *fr = (int *) R_alloc(nr + 1, sizeof(int)), nfree = 0;
    for (int i = 0; i < nr; i++) nfree += fr[i] = LOGICAL(free)[i] == TRUE;
    int np = nt + nfree;
    if (!isReal(x0) || LENGTH(x0) != np) error(_("x0 must be numeric of length %d"), np);
    for (int i = 0; i < np; i++) if (!R_FINITE(REAL(x0)[i])) error(_("x0[%d] is not finite"), i + 1);
    if (!isReal(lower) || LENGTH(lower) != np) error(_("lower must have length %d"), np);
    if (!isReal(upper_) || LENGTH(upper_) != np) error(_("upper must have length %d"), np);
    point_data(ptr, m);
    SEXP theta = PROTECT(allocVector(REALSXP, np));
    double *x = REAL(theta);
    memcpy(x, REAL(x0), np * sizeof(double));
    crit_ctx ctx = {m, reml, nt, nr, fr, (double *) R_alloc(nr + 1, sizeof(double)),
                    (double *) R_alloc(nt + nr + 1, sizeof(double))};
    memcpy(ctx.rho, r0, nr * sizeof(double));
    lmm_opt_control ctrl = lmm_opt_control_from(control);
    double crit, pgmax = NA_REAL;
    int feval, geval = 0, status, restarts = 0, qn = (int) list_num(control, "method", 0) == 1;
    SEXP grad = PROTECT(allocVector(REALSXP, qn ? np : 0));
    SEXP hess = PROTECT(qn ? allocMatrix(REALSXP, np, np) : allocVector(REALSXP, 0));
    if (qn) {
        lmm_qn_control qc = {list_num(control, "gtol", 1e-9), ctrl.rhobeg,
                             list_num(control, "probe", 1e-4), ctrl.maxeval, ctrl.verbose};
        lmm_qn_result res = lmm_qn_minimise(objective_gradient, &ctx, np, x, REAL(lower),
                                            REAL(upper_), &qc, REAL(grad), REAL(hess));
        crit = res.fmin; feval = res.feval; geval = res.geval; status = res.status;
        pgmax = res.pgmax; restarts = res.restarts;
    } else {
        lmm_opt_result res = lmm_minimise(objective, &ctx, np, x, REAL(lower), REAL(upper_), &ctrl);
        crit = res.fmin; feval = res.feval; status = res.status;
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

/* The criterion's parts at (theta, rho) and (R_X'R_X)^{-1}: what derivative-based inference
   needs, without the conditional variances. */
SEXP lmm_parts(SEXP ptr, SEXP theta, SEXP REML, SEXP rho)
{
    int bad;
    lmm_model *m = engine_at(ptr, theta, rho, 0, &bad);
    if (m->iter) return lmm_iter_parts_list(m, REAL(theta), asLogical(REML));
    lmm_crit_parts cp = lmm_criterion(m, REAL(theta), asLogical(REML));
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
   a_i M^{-1} a_i' with M = [Lambda'Z'V^-1 Z Lambda + I, Lambda'Z'V^-1 X; X'V^-1 Z Lambda,
   X'V^-1 X] at (theta, rho). */
SEXP lmm_quadform(SEXP ptr, SEXP theta, SEXP P, SEXP A, SEXP rho)
{
    int bad;
    lmm_model *m = engine_at(ptr, theta, rho, 0, &bad);
    if (!isInteger(P) || !isReal(A) || !isMatrix(P) || !isMatrix(A) ||
        nrows(P) != nrows(A) || ncols(P) != ncols(A))
        error(_("P and A must be integer and numeric matrices of the same shape"));
    if (m->iter)
        error(_("this method needs the exact factor: not available for a fit with the iterative "
                "backend (refit with lmm_control(backend = \"direct\"))"));
    lmm_criterion(m, REAL(theta), 1);
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
            v[lmm_z_column(m, col - 1)] += REAL(A)[i + (size_t) k * nr];      /* ordering.c */
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

/* Everything the result object needs at (theta, rho): beta, u, the criterion's parts,
   (R_X'R_X)^{-1}, log|V^{-1}| and, when condvar is TRUE, the diagonal blocks of
   (L_Z L_Z')^{-1} node by node (a selected inverse: several evaluations' worth on large models,
   so computed only when a method asks; NULL otherwise). */
SEXP lmm_solution(SEXP ptr, SEXP theta, SEXP REML, SEXP rho, SEXP condvar)
{
    int bad;
    lmm_model *m = engine_at(ptr, theta, rho, 0, &bad);
    if (m->iter) return lmm_iter_solution(m, REAL(theta), asLogical(REML), asLogical(condvar) == TRUE);
    lmm_crit_parts cp = lmm_criterion(m, REAL(theta), asLogical(REML));
    if (!m->factored) error(_("the penalised system is not positive definite at theta"));
    int p = m->p, q = m->q;
    double ncv = 0;
    for (int t = 0; t < m->k; t++) ncv += (double) m->nlt[t] * m->pt[t] * m->pt[t];
    const char *nm[] = {"beta", "u", "ldL2", "ldRX2", "pwrss", "crit", "condvar", "RXinv2",
                        "rx_pivot", "sumlogw"};
    int nout = 10;
    SEXP ans = PROTECT(allocVector(VECSXP, nout));
    SEXP names = PROTECT(allocVector(STRSXP, nout));
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, p));
    SET_VECTOR_ELT(ans, 1, allocVector(REALSXP, q));
    double *u = (double *) R_alloc(q > 0 ? q : 1, sizeof(double));
    lmm_solve(m, u, REAL(VECTOR_ELT(ans, 0)));
    lmm_z_unpermute(m, u, REAL(VECTOR_ELT(ans, 1)), 0);           /* R's order of the levels */
    lmm_std_beta(m, REAL(VECTOR_ELT(ans, 0)));                 /* back to X's coordinates */
    if (m->std_d) for (int i = 0; i < q; i++) REAL(VECTOR_ELT(ans, 1))[i] *= m->std_s;
    SET_VECTOR_ELT(ans, 2, ScalarReal(cp.ldL2));
    SET_VECTOR_ELT(ans, 3, ScalarReal(cp.ldRX2));
    SET_VECTOR_ELT(ans, 4, ScalarReal(cp.pwrss));
    SET_VECTOR_ELT(ans, 5, ScalarReal(cp.crit));
    if (asLogical(condvar) == TRUE) {
        SET_VECTOR_ELT(ans, 6, allocVector(REALSXP, (R_xlen_t) ncv));
        double *cv = (double *) R_alloc((size_t) ncv + 1, sizeof(double));
        lmm_condvar(m, cv);
        lmm_z_unpermute(m, cv, REAL(VECTOR_ELT(ans, 6)), 1);
    }
    SET_VECTOR_ELT(ans, 7, allocMatrix(REALSXP, p, p));
    lmm_vcov_unscaled(m, REAL(VECTOR_ELT(ans, 7)));
    SET_VECTOR_ELT(ans, 8, allocVector(REALSXP, p));
    lmm_rx_pivots(m, REAL(VECTOR_ELT(ans, 8)));
    SET_VECTOR_ELT(ans, 9, ScalarReal(m->sumlogw));
    for (int i = 0; i < nout; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* The whitening of rs at rho as a list (lmm_whitening_at) */
static SEXP whitening_list(const lmm_resid *rs, int d)
{
    int n = rs->n, nnz = rs->nnz;
    const char *nm[] = {"Kp", "Kj", "Kx", "logs", "logdet", "dKx", "implicit"};
    SEXP ans = PROTECT(allocVector(VECSXP, 7)), names = PROTECT(allocVector(STRSXP, 7));
    SET_VECTOR_ELT(ans, 0, allocVector(INTSXP, n + 1));
    SET_VECTOR_ELT(ans, 1, allocVector(INTSXP, nnz));
    SET_VECTOR_ELT(ans, 2, allocVector(REALSXP, nnz));
    SET_VECTOR_ELT(ans, 3, allocVector(REALSXP, n));
    memcpy(INTEGER(VECTOR_ELT(ans, 0)), rs->K.Kp, (n + 1) * sizeof(int));
    memcpy(INTEGER(VECTOR_ELT(ans, 1)), rs->K.Kj, nnz * sizeof(int));
    memcpy(REAL(VECTOR_ELT(ans, 2)), rs->K.Kx, nnz * sizeof(double));
    memcpy(REAL(VECTOR_ELT(ans, 3)), rs->logs, n * sizeof(double));
    SET_VECTOR_ELT(ans, 4, ScalarReal(rs->K.logdet));
    if (d) {
        SET_VECTOR_ELT(ans, 5, allocMatrix(REALSXP, nnz, rs->nrho));
        memcpy(REAL(VECTOR_ELT(ans, 5)), rs->K.dKx, (size_t) nnz * rs->nrho * sizeof(double));
    }
    SET_VECTOR_ELT(ans, 6, ScalarLogical(rs->ginnov != NULL));
    for (int i = 0; i < 7; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    UNPROTECT(2); /* ans, names */
    return ans;
}

/* The explicit (dense) whitening of a structure with innovations groups, whose K holds only
   their diagonals: a copy without them, formed and freed here (O(m^2) per such group). */
static SEXP dense_whitening_list(const lmm_resid *rs, const double *rho, int d)
{
    lmm_resid c = *rs;
    c.ginnov = c.iskip = NULL;
    c.itab = NULL;
    lmm_resid_pattern(&c);
    int bad = lmm_resid_whiten(&c, rho, d);
    SEXP ans = R_NilValue;
    if (!bad) ans = PROTECT(whitening_list(&c, d));
    int *ip[] = {c.K.Kp, c.K.Kj};
    double *dp[] = {c.K.Kx, c.K.dKx, c.K.dlogdet, c.logs, c.dlogs};
    for (int i = 0; i < 2; i++) R_Free(ip[i]);
    for (int i = 0; i < 5; i++) R_Free(dp[i]);
    if (bad) error(_("the residual parameters rho are outside their range"));
    UNPROTECT(1); /* ans */
    return ans;
}

/* The whitening at rho: list(Kp, Kj, Kx, logs = log s_i, logdet = log|V^{-1}|, dKx, implicit)
   (0-based); with deriv TRUE, dKx is the nnz x nrho matrix of dK/drho on K's pattern (else NULL).
   With innovations groups, K is the explicit (dense) one when `explicit` is TRUE, else the
   engine's, holding only their diagonals (implicit = TRUE: logs and logdet are exact, and the
   product by K needs the explicit one). */
SEXP lmm_whitening_at(SEXP ptr, SEXP rho, SEXP deriv, SEXP explicit)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_resid *rs = m->resid;
    if (!rs) error(_("the engine has no residual structure"));
    const double *r = check_rho(m, rho);
    int d = asLogical(deriv) == TRUE;
    point_data(ptr, m);
    if (set_rho(m, r, 0) || lmm_resid_whiten(rs, r, d))     /* K itself (pieces skip it) */
        error(_("the residual parameters rho are outside their range"));
    rs->have_dK = d && !rs->pieces;
    return rs->ginnov && asLogical(explicit) != FALSE ? dense_whitening_list(rs, r, d) :
        whitening_list(rs, d);
}

/* K V (inverse FALSE) or the solution X of K X = V (inverse TRUE) at rho, V n x ncol, in O(n):
   explicit rows of K by their entries (forward substitution in group order for the inverse),
   innovations-recursion groups by their recursion (residual_innovations.c). */
SEXP lmm_whiten_apply(SEXP ptr, SEXP rho, SEXP V, SEXP inverse)
{
    lmm_model *m = lmm_get_model(ptr);
    lmm_resid *rs = m->resid;
    if (!rs) error(_("the engine has no residual structure"));
    const double *r = check_rho(m, rho);
    if (!isReal(V) || !isMatrix(V) || nrows(V) != rs->n) error(_("V must be a numeric matrix with %d rows"), rs->n);
    int inv = asLogical(inverse) == TRUE, nc = ncols(V), n = rs->n;
    point_data(ptr, m);
    if (set_rho(m, r, 0) || lmm_resid_whiten(rs, r, 0))
        error(_("the residual parameters rho are outside their range"));
    SEXP ans = PROTECT(allocMatrix(REALSXP, n, nc));
    const double *v = REAL(V);
    double *o = REAL(ans);
    const int *Kp = rs->K.Kp, *Kj = rs->K.Kj;
    const double *Kx = rs->K.Kx;
    for (int g = 0; g < rs->G; g++) {
        if (rs->ginnov && rs->ginnov[g]) {
            const void *vmax = vmaxget();
            lmm_innov_apply(rs, g, nc, v, inv, o);
            vmaxset(vmax);
            continue;
        }
        for (int a = rs->gp[g]; a < rs->gp[g + 1]; a++) {      /* rows in group order */
            int i = rs->grow[a], d = Kp[i + 1] - 1;
            for (int c = 0; c < nc; c++) {
                size_t off = (size_t) c * n;
                if (!inv) {
                    double s = 0;
                    for (int e = Kp[i]; e <= d; e++) s += Kx[e] * v[Kj[e] + off];
                    o[i + off] = s;
                } else {
                    double s = v[i + off];
                    for (int e = Kp[i]; e < d; e++) s -= Kx[e] * o[Kj[e] + off];
                    o[i + off] = s / Kx[d];
                }
            }
        }
    }
    UNPROTECT(1); /* ans */
    return ans;
}

/* Solve K E = Z (Z n x nsim) for E, K = list(Kp, Kj, Kx) lower triangular in the row order
   `order` (0-based; a row's other entries come before it in that order). */
SEXP lmm_whiten_solve(SEXP K, SEXP order, SEXP Z)
{
    if (!isNewList(K) || LENGTH(K) < 3) error(_("K must be a whitening list"));
    SEXP Kp = VECTOR_ELT(K, 0), Kj = VECTOR_ELT(K, 1), Kx = VECTOR_ELT(K, 2);
    int n = LENGTH(order);
    if (!isInteger(Kp) || LENGTH(Kp) != n + 1 || !isInteger(Kj) || !isReal(Kx) ||
        LENGTH(Kj) != LENGTH(Kx) || INTEGER(Kp)[n] != LENGTH(Kj) || !isInteger(order) ||
        !isReal(Z) || !isMatrix(Z) || nrows(Z) != n)
        error(_("the whitening and Z do not conform"));
    int ns = ncols(Z);
    const int *p = INTEGER(Kp), *j = INTEGER(Kj), *o = INTEGER(order);
    const double *x = REAL(Kx);
    int *done = (int *) R_alloc(n > 0 ? n : 1, sizeof(int));
    memset(done, 0, n * sizeof(int));
    SEXP E = PROTECT(allocMatrix(REALSXP, n, ns));
    double *e = REAL(E);
    const double *z = REAL(Z);
    for (int a = 0; a < n; a++) {
        int i = o[a];
        if (i < 0 || i >= n || p[i + 1] <= p[i]) error(_("the whitening order is malformed"));
        int d = p[i + 1] - 1;
        if (j[d] != i || x[d] == 0) error(_("the whitening has no diagonal at row %d"), i + 1);
        for (int q = p[i]; q < d; q++)
            if (j[q] < 0 || j[q] >= n || !done[j[q]]) error(_("the whitening order is malformed"));
        for (int s = 0; s < ns; s++) {
            double v = z[i + (size_t) s * n];
            for (int q = p[i]; q < d; q++) v -= x[q] * e[j[q] + (size_t) s * n];
            e[i + (size_t) s * n] = v / x[d];
        }
        done[i] = 1;
    }
    UNPROTECT(1); /* E */
    return E;
}

/* The layout the symbolic analysis chose and its prediction, for tests, the benchmark and the
   message before a large fit: nodes, sparse columns, dense order, sparse values and blocks,
   the first node of the dense block within its term (0: at a term boundary), whether the
   levels were reordered, the predicted bytes, flops and seconds of one evaluation, and the
   term (1-based, R's order) whose levels are eliminated first. */
SEXP lmm_layout_info(SEXP ptr)
{
    if (TYPEOF(ptr) != EXTPTRSXP || !R_ExternalPtrAddr(ptr)) error(_("not an lmmc engine model"));
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (m->iter) return lmm_iter_info(ptr);
    const char *nm[] = {"nodes", "sparse_nodes", "dense_order", "sparse_values", "sparse_blocks",
                        "split_in_term", "ordered", "complete_from", "bytes", "flops", "seconds",
                        "first_term"};
    int nout = 12, in_term = 0, first = 0;
    if (m->Ns < m->N) in_term = m->Ns - m->node0[m->term[m->Ns]];
    for (int t = 0; t < m->k; t++) if (m->node0[t] == 0 && m->nlt[t] > 0) { first = t + 1; break; }
    SEXP ans = PROTECT(allocVector(REALSXP, nout)), names = PROTECT(allocVector(STRSXP, nout));
    double v[] = {m->N, m->Ns, m->pred_md, m->pred_values, m->Lp[m->Ns], in_term, m->pinv != NULL,
                  m->Jc, m->pred_bytes, m->pred_flops, m->pred_seconds, first};
    for (int i = 0; i < nout; i++) { REAL(ans)[i] = v[i]; SET_STRING_ELT(names, i, mkChar(nm[i])); }
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
    double *P = (double *) R_alloc(lmm_packed_len(n) + 1, sizeof(double));   /* as the engine */
    lmm_pack_lower(n, REAL(L), n, P, 0, 0);
    int info = lmm_dense_chol(n, lmm_dmat_packed(P, n));
    if (info) error(_("the matrix is not positive definite (column %d)"), info);
    lmm_pack_lower(n, REAL(L), n, P, 1, 0);
    UNPROTECT(1); /* L */
    return L;
}
