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
 * per new rho).
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
lmm_cor lmm_cor_from(SEXP s, int n);
lmm_var lmm_var_from(SEXP s, int n);
SEXP lmm_cor_matrix(SEXP cor, SEXP n, SEXP rows, SEXP par);     /* test entries */
SEXP lmm_var_logs(SEXP var, SEXP n, SEXP par);

/* The families */
int lmm_ar1_phi(const lmm_cor *c, const double *par, double *phi);
int lmm_cor_ar1(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
int lmm_cor_car1(const lmm_cor *c, int m, const int *rows, const double *par, double *R);
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
} lmm_whitening;

#endif
