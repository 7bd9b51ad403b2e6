/*
 * iterative.h -- the iterative backend: the profiled criterion without a Cholesky factor.
 *
 * For designs whose factor L would fill in beyond memory (randomly crossed factors with 10^4 -
 * 10^5 levels each), the criterion of criterion.c is evaluated from A's own sparse pattern:
 *
 *     Omega_Z = Lambda' C Lambda + I      (q x q),  C = Z'WZ
 *     B       = Lambda' F                 (q x (p+1)),  F = Z'W[X* y*]
 *     S       = H - B' Omega_Z^{-1} B     ((p+1) x (p+1)),  H = [X* y*]'W[X* y*],  S = R'R
 *
 * log|R_X|^2 and r^2 come from R exactly (up to the conjugate-gradient tolerance; the p + 1 solves
 * Omega_Z Y = B), and log|Omega_Z| by stochastic Lanczos quadrature with fixed probe vectors
 * (iterative_criterion.c first eliminates the terms with few levels exactly, in a dense tail):
 *
 *     log|Omega_Z| = log|P| + tr log(L^{-1} Omega_Z L^{-T}),   P = L L' = blockdiag(Omega_JJ),
 *     tr log(M) ~ (1/K) sum_k z_k' log(M) z_k    (z_k Rademacher, fixed per fit)
 *
 * each z_k' log(M) z_k by the Gauss quadrature of the Lanczos tridiagonal matrix, read off the
 * preconditioned conjugate-gradient coefficients of the solve Omega_Z x_k = L z_k.  Before
 * that, the CG-solved term with most columns (the head) is eliminated exactly by its block-
 * diagonal D, so Omega_Z is replaced by its Schur complement S (iterative_schur.c) and P by
 * S's diagonal blocks (each level's p_t x p_t block: a random intercept and slope together).
 *
 * Scalar and vector-valued random-effect terms (Lambda block diagonal); no residual
 * structures.  Files:
 *     iterative.c            setup: C, F, H from the rows; probes; the .Call glue
 *     iterative_lambda.c     Lambda and Lambda' on blocks of vectors
 *     iterative_operator.c   products with C and Omega_Z on blocks of vectors
 *     iterative_pcg.c        preconditioned conjugate gradients on many right-hand sides at once
 *     iterative_schur.c      the head eliminated exactly (CG on the Schur complement), the
 *                            block-diagonal preconditioner and its derivatives
 *     iterative_blocks.c     block-diagonal matrices over the nodes; small dense Cholesky
 *     iterative_slq.c        the Gauss quadrature e1' log(T) e1 of a Lanczos matrix T
 *     iterative_criterion.c  the criterion, its gradient and the solution from the solves
 */
#ifndef LMMC_ITERATIVE_H
#define LMMC_ITERATIVE_H

#include "lmm.h"
#include "residual.h"     /* lmm_list_elt */
#include <stdint.h>

typedef struct lmm_iter {
    int q, p1;            /* columns of Z; p + 1 */
    int scalar;           /* every term has one column (Lambda diagonal) */
    int *zoff;            /* [N+1] first column of node J */
    int *cnode;           /* [q] node of column j */
    int *cjoff;           /* [N+1] offset of node J's diagonal block of C in CJ */
    double *CJ;           /* the nodes' diagonal blocks of C (p_J x p_J, column-major) */
    int *Cp, *Ci;         /* C off its diagonal, both triangles, rows Cp[j] .. Cp[j+1]-1 */
    double *Cx, *Cd;      /* C's off-diagonal values; its diagonal [q] */
    double *F;            /* q x p1, column-major: Z'W[X* y*] */
    double *H;            /* p1 x p1: [X* y*]'W[X* y*] */
    int ns, nL;           /* columns in the dense tail (terms with few levels); the others */
    int *snode;           /* [ns] the tail's columns (whole terms), increasing */
    int *spos;            /* [q] position of column j in the tail, or -1 */
    int head;             /* the term eliminated exactly by its blocks (iterative_schur.c), or -1 */
    int K;                /* probes */
    signed char *Z;       /* q x K, row-major: the Rademacher probes z_k */
    double tol;           /* relative (preconditioned) residual of the solves with B */
    double tol_probe;     /* ... of the probe solves */
    int maxit;            /* iterations of one solve at most */
    /* the last evaluation's diagnostics */
    double ld_se;         /* Monte Carlo standard error of log|Omega_Z| */
    int iters_B, iters_probe;   /* iterations of the slowest solve with B and with a probe */
    int unconverged;      /* solves stopped at maxit */
    int evaluations;
    int threads;          /* OpenMP threads of the products (lmm_dense_threads, per evaluation) */
    double *grad_se;      /* [ntheta] Monte Carlo standard error of the last gradient */
} lmm_iter;

/* iterative_lambda.c: Lambda's templates, applied to q x nc row-major blocks */
typedef struct {
    const lmm_model *m;
    double *T;            /* term t's template at T + toff[t] (p_t x p_t, lower) */
    int *toff;
    double *diag;         /* [q] Lambda's diagonal when every term is scalar, else NULL */
} lmm_lambda;
void lmm_lambda_make(lmm_lambda *L, const lmm_model *m, const double *theta, int drop_tail);
void lmm_lambda_apply(const lmm_lambda *L, int trans, int nc, const int *cols, int na,
                      const double *V, double *W, const char *rows);

/* iterative_operator.c: V, W q x nc row-major (entry (j, c) at j nc + c) */
void lmm_iter_C(const lmm_iter *it, int nc, const int *cols, int na, const double *V,
                double *W);                                   /* W = C V (cols NULL: all) */
void lmm_iter_omega(const lmm_iter *it, const lmm_lambda *lam, int nc, const int *cols, int na,
                    const double *V, double *W, double *work, const char *rows);
    /* W = Omega V in the columns cols[0..na); work: 2 q nc doubles (vector-valued terms);
       rows: NULL, or only the rows j with rows[j] != 0 (whole nodes) */

/* iterative_pcg.c: solve A X = Bm (q x nc, row-major) for the operator A (W = A V in the columns
   cols[0..na)) with the block-diagonal preconditioner P (Pi: the blocks of P^{-1}, 0 on rows
   not solved), zero start; columns c >= crec record their Lanczos matrices */
typedef void (*lmm_iter_op)(const void *ctx, int nc, const int *cols, int na, const double *V,
                            double *W);
typedef struct {
    int steps;            /* iterations taken */
    int converged;
    double *alpha, *beta; /* [maxit] the CG coefficients (recorded columns) */
} lmm_pcg_column;
void lmm_iter_pcg(const lmm_model *m, lmm_iter_op op, const void *ctx, const double *Pi,
                  int nc, const double *Bm, double *X, const double *tol, int crec,
                  lmm_pcg_column *col);
typedef struct { const lmm_iter *it; const lmm_lambda *lam; double *work; } lmm_omega_ctx;
void lmm_omega_op(const void *ctx, int nc, const int *cols, int na, const double *V, double *W);

/* iterative_schur.c: the head term eliminated exactly (D block diagonal) and the block-diagonal
   preconditioner P of what CG solves; blocks p_J x p_J at it->cjoff[J] */
typedef struct {
    const lmm_model *m;
    const lmm_iter *it;
    const lmm_lambda *lam;    /* Omega' (the tail's terms zeroed) */
    int head;                 /* the head term, or -1 */
    int nh;                   /* the head's theta entries */
    int failed;               /* a block not positive definite */
    char *ish, *isr;          /* [q] row in the head; row in R (CG-solved, not the head) */
    char *nodeh, *noder;      /* [N] the same by node */
    double *Dinv;             /* head nodes: D_J^{-1} (0 elsewhere) */
    double ldD, *dlogD;       /* log|D|; [nh] its derivatives in the head's theta */
    double *Pi, *Pl;          /* R nodes: P_J^{-1} and P_J = L L' (L lower); 0 elsewhere */
    double ldP;               /* log|P| */
    int *doff;                /* [N] R node J's dP_J at dP + doff[J]: */
    double *dP;               /*   own entries, then the head's, p_J x p_J each */
    double *work, *owork;     /* 2 q nc doubles each (owork: vector-valued terms, else NULL) */
} lmm_schur;
void lmm_schur_make(lmm_schur *s, const lmm_model *m, const lmm_lambda *lam, int nc);
void lmm_schur_op(const void *ctx, int nc, const int *cols, int na, const double *V, double *W);
void lmm_schur_rhs(const lmm_schur *s, int nc, int nr, const double *Bm, double *Bs);
void lmm_schur_complete(const lmm_schur *s, int nc, int nr, const double *Bm, double *X);
void lmm_schur_extend(const lmm_schur *s, int K, double *ZO);
void lmm_schur_probes(const lmm_schur *s, int K, int nc, int off, double *Bm, double *ZO);

/* iterative_blocks.c: block-diagonal matrices over the nodes, small dense Cholesky */
void lmm_blocks_apply(const lmm_model *m, const double *B, const char *mask, int nc,
                      const int *cols, int na, const double *V, double *W);
double lmm_small_chol(int p, double *A);
void lmm_small_chol_inverse(int p, const double *L, double *Ainv);

/* iterative_slq.c: e1' log(T) e1 for the Lanczos matrix T of CG coefficients alpha, beta */
double lmm_iter_quadrature(int m, const double *alpha, const double *beta);

/* iterative_criterion.c */
typedef struct {
    double ldL2, ldRX2, pwrss, crit, ld_se;
    double *rx_pivot;     /* [p] when not NULL: |R*_jj| / |X*_j|_W (solve.c's lmm_rx_pivots) */
} lmm_iter_parts;
int lmm_iter_evaluate(lmm_model *m, const double *theta, int REML, lmm_iter_parts *cp,
                      double *grad, double *u, double *beta, double *RXinv);

/* iterative.c: .Call entries and the model glue */
void lmm_iter_free(lmm_iter *it);
SEXP lmm_setup_iterative(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP control);
SEXP lmm_iter_info(SEXP ptr);
SEXP lmm_iter_moments(lmm_model *m, int REML, double floor);
SEXP lmm_iter_solution(lmm_model *m, const double *theta, int REML, int condvar);
SEXP lmm_iter_parts_list(lmm_model *m, const double *theta, int REML);
double lmm_iter_crit(lmm_model *m, const double *theta, int REML);
int lmm_iter_criterion_gradient(lmm_model *m, const double *theta, int REML, double *f,
                                double *grad);

#endif
