/*
 * residual.h -- residual structures: the interface between the engine and the correlation and
 * variance families (nlme's corStruct and varFunc).
 *
 * The residual covariance is s^2 V with
 *     V = W^{-1/2} S R S W^{-1/2},
 *     R = blockdiag_g R_g        the correlation structure: one block per correlation group g,
 *                                its m_g rows in the group's order (time order for AR(1)-type);
 *     S = diag(s_i)              the variance function's standard-deviation multipliers;
 *     W = diag(w_i)              the prior weights.
 * With R_g = L_g L_g' (Cholesky) and B_g = L_g^{-1}, the whitening matrix
 *     K = blockdiag_g(B_g) S^{-1} W^{1/2}          (lower triangular in group order)
 * has K'K = V^{-1}, so G' V^{-1} G = (KG)'(KG): the engine forms A from the whitened rows
 * (crossprod.c) and the criterion is the ordinary one with
 *     log|V^{-1}| = sum_i log w_i - 2 sum_i log s_i - sum_g log|R_g| = 2 sum_i log K_ii.
 *
 * K is stored by rows (compressed sparse rows, lmm_whitening): whitened row i is
 * sum_e Kx[e] raw_{Kj[e]}, e = Kp[i] .. Kp[i+1]-1, the diagonal entry last.  AR(1)-type
 * (Markov) structures give B_g bidiagonal (two entries per row: O(n)); the others give B_g
 * dense lower triangular (m_g (m_g + 1) / 2 entries: O(sum m_g^2) memory and O(sum m_g^3) work
 * per new rho).  Two exceptions for corARMA in groups at consecutive times: AR(p) rows are
 * banded (p + 1 entries, residual_band.c); ARMA(p, q > 0) groups nested in the random effects are
 * whitened by a recursion that forms their products directly (residual_innovations.c), K keeping
 * only their diagonals (for log|V^-1|).
 *
 * The parameters rho = (correlation parameters, then each variance component's) are all on an
 * unconstrained scale (the R side maps them to nlme's natural scale).  A family is
 *     correlation: lmm_cor_fn  fills the m x m correlation matrix R_g of a group from its rows'
 *                  covariates (R/residual-correlation.R describes each family's covariates,
 *                  options and parameters); the engine differentiates it (analytic derivatives
 *                  where the family gives them, else Richardson-extrapolated central differences);
 *     variance:    lmm_var_fn  adds log s_i for every row and d log s_i / d par_k.
 * Adding a family is one C file with its function, a line in its table (residual_families.c)
 * and its R constructor mapping.
 */
#ifndef LMMC_RESIDUAL_H
#define LMMC_RESIDUAL_H

#include "lmm.h"
#include <math.h>

enum { LMM_COR_NONE = 0, LMM_COR_AR1 = 1, LMM_COR_CAR1 = 2, LMM_COR_ARMA = 3,
       LMM_COR_COMPSYMM = 4, LMM_COR_SYMM = 5, LMM_COR_EXP = 6, LMM_COR_GAUS = 7,
       LMM_COR_LIN = 8, LMM_COR_RATIO = 9, LMM_COR_SPHER = 10, LMM_COR_NFAMILY = 11 };

enum { LMM_VAR_IDENT = 1, LMM_VAR_POWER = 2, LMM_VAR_EXP = 3, LMM_VAR_CONSTPOWER = 4,
       LMM_VAR_NFAMILY = 5 };

/* A correlation structure on the data. */
typedef struct {
    int code;              /* LMM_COR_* */
    int npar;              /* its parameters (unconstrained) */
    int n, d;              /* data rows; covariate columns (1: time or position; spatial: dim) */
    const double *cov;     /* [n x d] column-major, by data row: times, positions or coordinates */
    const int *iopt;       /* family options (ARMA: p, q; spatial: nugget, metric; ...) */
    int niopt;
    const double *dopt;    /* family constants (CAR(1): the typical lag) */
    int ndopt;
} lmm_cor;

/* Fill R (m x m, full, column-major) for the m data rows rows[0 .. m-1] (in the group's
   order) at the unconstrained parameters par; return nonzero when par is outside the family's
   space (the criterion is then +Inf). */
typedef int (*lmm_cor_fn)(const lmm_cor *c, int m, const int *rows, const double *par,
                          double *R);

/* A variance function component (varComb: several, their s_i multiply). */
typedef struct {
    int code;              /* LMM_VAR_* */
    int npar;
    int n;
    int nstrata;           /* strata (1 without) */
    const int *stratum;    /* [n] 0-based, or NULL */
    const double *v;       /* [n] the variance covariate, or NULL */
} lmm_var;

/* logs[i] += log s_i for all n rows at the component's parameters par; when dlogs is not NULL,
   dlogs[k][i] = d log s_i / d par_k (k < npar; overwritten).  Nonzero when some s_i is not
   positive and finite. */
typedef int (*lmm_var_fn)(const lmm_var *v, const double *par, double *logs,
                          double *const *dlogs);

/* residual_families.c: the tables (NULL where a family is handled elsewhere) */
lmm_cor_fn lmm_cor_family(int code);
lmm_var_fn lmm_var_family(int code);

/* residual_families.c: R's descriptions -> structs (pointers into the R vectors) */
SEXP lmm_list_elt(SEXP list, const char *name);                 /* element by name, or NULL */
lmm_cor lmm_cor_from(SEXP s, int n);
lmm_var lmm_var_from(SEXP s, int n);
SEXP lmm_cor_matrix(SEXP cor, SEXP n, SEXP rows, SEXP par);     /* test entries */
SEXP lmm_var_logs(SEXP var, SEXP n, SEXP par);

/* The families */
int lmm_ar1_phi(const lmm_cor *c, const double *par, double *phi);
int lmm_cor_ar1(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_car1(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_arma(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_compsymm(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_symm(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_exp(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_gaus(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_lin(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_ratio(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_spher(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_var_ident(const lmm_var *v, const double *par, double *logs, double *const *dlogs);
int lmm_var_power(const lmm_var *v, const double *par, double *logs, double *const *dlogs);
int lmm_var_exp(const lmm_var *v, const double *par, double *logs, double *const *dlogs);
int lmm_var_constpower(const lmm_var *v, const double *par, double *logs, double *const *dlogs);
int lmm_var_log_ok(double logs);   /* s = e^logs and 1 / s are positive and finite */

/* The whitening K by rows, and its derivatives with respect to rho on the same pattern. */
typedef struct {
    int n;
    int *Kp, *Kj;          /* [n + 1], [nnz]: row i's raw rows, diagonal last */
    double *Kx;            /* [nnz] */
    double *dKx;           /* [nrho x nnz] (entry e of parameter k at k nnz + e), or NULL */
    int nrho;
    double logdet;         /* log|V^{-1}| = 2 sum log K_ii */
    double *dlogdet;       /* [nrho] */
    const int *skip;       /* [n] rows whose products are formed elsewhere (residual_innovations.c:
                              K holds only their diagonal), or NULL */
} lmm_whitening;

/* Per-class cross-products for Markov x varIdent structures (residual_pieces.c). */
typedef struct {
    int K;                 /* classes */
    const int *cls;        /* [n] 0-based class of each row */
    const int *has, *s, *sj, *cnt;   /* [K] has a predecessor, stratum, predecessor's, rows */
    const double *lag;     /* [K] time lag to the predecessor */
    double *P;             /* the pieces, class by class, pass by pass */
    R_xlen_t len;          /* doubles per piece (A's size) */
    double logw0;          /* sum log w_i */
    double *alpha_gamma;   /* [2K] the coefficients at rho_cur */
    double *dcoef;         /* [K x nrho x 2] their derivatives, or NULL */
} lmm_pieces;

/* A model's residual structure: groups, families, the whitening at the current rho, and the raw
   data it re-reads for every new rho (pointers into R vectors the engine's pointer protects). */
typedef struct lmm_resid {
    int n;
    int G, *gp, *grow;     /* group g's rows grow[gp[g] .. gp[g+1]-1], 0-based, in its order */
    int cor_code;          /* LMM_COR_NONE: every row is its own group */
    lmm_cor cor;
    int banded;            /* Markov family: bidiagonal B_g */
    int band_p, *gband;    /* AR(p): groups at consecutive times whitened by the band (or 0) */
    int *ginnov, *iskip;   /* ARMA(p, q > 0): groups whitened by the innovations recursion (or 0),
                              and their rows ([n] flags, K.skip); NULL when none */
    int innov_m;           /* their largest group */
    double *itab;          /* the recursion's tables at rho_cur and their derivatives */
    int ncor;              /* correlation parameters: rho[0 .. ncor-1] */
    int nvar, *var_off;    /* variance components; component c's parameters from rho[var_off[c]] */
    lmm_var *var;
    int nvarpar, nrho;
    const double *sqrtw;   /* [n] or NULL */
    lmm_whitening K;       /* pattern fixed; values at rho_cur */
    int nnz;
    double *logs, *dlogs;  /* [n] log s_i; [nvarpar x n] their derivatives */
    double *rho_cur;       /* the rho of K and A; valid only when `valid` */
    int valid, have_dK;    /* A and K are those of rho_cur; dK too */
    lmm_pieces *pieces;    /* or NULL: A from a pass over the rows */
    const int *const *refs;            /* the raw data */
    const double *const *Xt;
    const double *X, *y;
} lmm_resid;

/* sqrt(w_i) / s_i: the prior weight and variance function's scaling of raw row i (at the
   current logs) */
static inline double lmm_inv_sd(const lmm_resid *rs, int i)
{
    return (rs->sqrtw ? rs->sqrtw[i] : 1.0) * exp(-rs->logs[i]);
}

/* residual.c */
/* d out / d par_k by Richardson-extrapolated central differences,
   D = (8 (F(h) - F(-h)) - (F(2h) - F(-2h))) / (12 h), h = 1e-3 max(1, |par_k|) (error O(h^4)
   plus rounding): F(par) fills len doubles; 1 if it fails at a shifted point. */
typedef int (*lmm_fd_fn)(const void *ctx, const double *par, double *out);
int lmm_richardson(lmm_fd_fn F, const void *ctx, const double *par, int npar, int k, size_t len,
                   double *D, double *work);
void lmm_markov_r(const lmm_cor *c, double phi, double z, double lag, double *r, double *dr);
void lmm_resid_pattern(lmm_resid *rs);
void lmm_resid_free(lmm_resid *rs);
int lmm_resid_whiten(lmm_resid *rs, const double *rho, int deriv);

/* residual_band.c: AR(p) by Durbin-Levinson */
int lmm_band_table(int p, const double *par, double *T);
int lmm_band_dtable(int p, const double *par, double *dT);
void lmm_band_groups(lmm_resid *rs);
void lmm_band_group(lmm_resid *rs, int g, const double *T, const double *dT);

/* residual_innovations.c: ARMA(p, q > 0) by the innovations algorithm (cor_arma.c's model) */
int lmm_arma_model(int p, int q, const double *par, double *phi, double *theta, double *rho,
                   double *gamma0);
void lmm_innov_groups(lmm_resid *rs, int k, const int *const *refs);
int lmm_innov_tables(lmm_resid *rs, const double *rho, int deriv);
void lmm_innov_group(lmm_resid *rs, int g, int deriv);
void lmm_innov_apply(const lmm_resid *rs, int g, int ncol, const double *V, int inverse,
                     double *out);
void lmm_innov_crossprod(lmm_model *m, const lmm_resid *rs);
void lmm_innov_contract(const lmm_model *m, const lmm_resid *rs, const double *Mx,
                        const double *Md, double *out);

/* residual_pieces.c */
double lmm_pieces_size(const lmm_model *m, int K, const int *has);
void lmm_pieces_build(lmm_model *m, lmm_resid *rs);
void lmm_pieces_free(lmm_pieces *pc);
int lmm_pieces_combine(lmm_model *m, lmm_resid *rs, const double *rho, int deriv);
void lmm_pieces_contract(const lmm_model *m, const lmm_resid *rs, const double *Mx,
                         const double *Md, double *out);

/* crossprod.c: A = (KG)'(KG) and the derivative pass out[k] = tr(M dA/drho_k) */
lmm_whitening lmm_diagonal_whitening(int n, const double *sqrtw);
void lmm_crossprod(lmm_model *m, const int *const *refs, const double *const *Xt,
                   const double *X, const double *y, const lmm_whitening *K);
void lmm_crossprod_contract(lmm_model *m, const int *const *refs, const double *const *Xt,
                            const double *X, const double *y, const lmm_whitening *K,
                            double *Mx, double *Md, double *out);

/* M's dense block Md: its lower triangle packed (dense_packed.h), then for each dense node I
   (node N too) the full p_I x p_I square of its diagonal block at md_packed + d_I size_max (M_II
   is not exactly symmetric in floating point: both triangles are read as formed) */
static inline size_t lmm_md_len(const lmm_model *m)
{
    return lmm_packed_len(m->md) + (size_t) m->md * m->size_max;
}
static inline double *lmm_md_diag(const lmm_model *m, const double *Md, int I)
{
    return (double *) Md + lmm_packed_len(m->md) + (size_t) m->doff[I - m->Ns] * m->size_max;
}
/* entry (x, y) of Md's block (I, J), I >= J >= Ns */
static inline double lmm_md_entry(const lmm_model *m, const double *Md, int I, int J, int x, int y)
{
    if (I == J) return lmm_md_diag(m, Md, I)[x + (size_t) y * m->size[I]];
    return lmm_packed_col(Md, m->md, m->doff[J - m->Ns] + y)[m->doff[I - m->Ns] + x];
}

/* gradient.c: the criterion's gradient in theta and, with Mx/Md, M = dcrit/dA on L's pattern */
int lmm_criterion_gradient_M(lmm_model *m, const double *theta, int REML, double *crit,
                             double *grad, double *Mx, double *Md);

#endif
