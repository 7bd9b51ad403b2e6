/*
 * lmm.h -- the lmmc engine: data layout and prototypes.
 *
 * The model is y = X beta + Z b + e, b = Lambda(theta) u, u ~ N(0, s^2 I), e ~ N(0, s^2 W^-1).
 * Columns of Z come in "nodes": one node per (random-effects term, level), of size p_t (the
 * number of columns of term t).  The [X y] columns form one more node, node N, of size p + 1.
 *
 * For a given theta the engine factors the penalised cross-product matrix
 *
 *     Omega(theta) = T' A T + diag(I_q, 0),   A = G' W G,  G = [Z X y],  T = diag(Lambda, I_{p+1}),
 *
 * as Omega = L L' (L lower triangular, node-blocked).  A is formed once per model (per residual
 * parameter, when the rows are pre-whitened), so nothing per theta touches the n observations.
 * The first nodes (those whose columns stay sparse) are stored as node blocks along a symbolic
 * pattern; the trailing nodes whose columns fill in are held in one dense block, updated from the
 * sparse columns by dense_schur.c and factored by dense_chol.c (or R's LAPACK: dense_kernel.c).
 * The levels of each term are numbered in a fill-reducing order (ordering.c); R never sees it.
 *
 * Everything the criterion needs is on the diagonal of L:
 *     log|L_Z|^2   = 2 sum log diag over the Z nodes
 *     log|R_X|^2   = 2 sum log diag over the first p columns of node N
 *     r            = last diagonal element (penalised weighted residual sum of squares = r^2).
 */
#ifndef LMMC_LMM_H
#define LMMC_LMM_H

#define USE_FC_LEN_T
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Lapack.h>
#include <R_ext/BLAS.h>
#ifndef FCONE
#define FCONE
#endif
#include "dense_packed.h"

#ifdef ENABLE_NLS
#include <libintl.h>
#define _(String) dgettext("lmmc", String)
#else
#define _(String) (String)
#endif

typedef struct lmm_model {
    /* dimensions */
    int n;          /* observations (rows of G after whitening; the true count when the rows
                       are summary rows, counts.c) */
    int p;          /* fixed-effect columns */
    int k;          /* random-effects terms */
    int N;          /* Z nodes; node N is the [X y] node */
    int q;          /* columns of Z */
    int ntheta;     /* length of theta */
    int *pt;        /* [k] columns of term t */
    int *nlt;       /* [k] levels of term t */
    int *node0;     /* [k+1] first node of term t (blocks in the elimination order); node0[k] = N */
    int *theta0;    /* [k+1] first theta of term t */
    int *size;      /* [N+1] node size: pt of its term, p + 1 for node N */
    int *term;      /* [N] term of node */
    int size_max;   /* largest node size: max(p_t, p + 1), for scratch blocks */
    int *nrows;     /* [N] data rows in node J's level (raw rows, before weighting/whitening) */

    /* node-level pattern of L: column J (0 <= J < Ns) has row nodes Li[Lp[J] .. Lp[J+1]-1],
       sorted increasing, all > J, the last one always N.  Block (I, J) is p_I x p_J, column-major,
       at Lx + Loff[entry]; the diagonal block of J at Lx + Ldiag[J]. */
    int Ns;         /* sparse columns: nodes 0 .. Ns-1; nodes Ns .. N are in the dense block */
    int *Lp, *Li, *Loff, *Ldiag;
    R_xlen_t nLx;   /* doubles in the sparse blocks */
    double *Ax;     /* A on the pattern of L (zero where L fills in) */
    double *Lx;     /* the factor's sparse blocks */

    /* dense trailing block: scalar order md, nodes Ns .. N; node J starts at scalar doff[J - Ns] */
    int md;
    int *doff;      /* [N - Ns + 1] */

    /* the sparse columns' rows in the dense block, scalar by scalar: column J's are
       k = dk0[J] .. dk0[J+1]-1, dense row drow[k], value of column c at Lx[dval[k] + c dstr[k]];
       dense node D's occurrences: dlp[D-Ns] .. dlp[D-Ns+1]-1 in dlJ (the column) and dlk (its
       first k in that column) -- so the dense block's update can run column by column. */
    int *dk0, *drow, *dval, *dstr;
    int *dlp, *dlJ, *dlk;

    /* the permutation layer (ordering.c): R numbers term t's level l as r0(t) + l, r0(t) the
       levels of the terms before t (R's order); its node is pinv[r0(t) + l] (NULL: the
       identity).  The terms' blocks of nodes may come in another order than R's. */
    int *pinv;
    int *zoff;      /* [N+1] scalar offset of node J in u and the engine's per-column vectors */
    int Jc;         /* first column of L that is complete (holds every later node), or N */
    /* the symbolic prediction (layout.c): dense order, sparse doubles, bytes, flops and seconds
       of one evaluation with the gradient */
    double pred_md, pred_values, pred_bytes, pred_flops, pred_seconds;
    int predict_only;   /* the setup stopped after the symbolic analysis: no numeric storage */
    double *Ad;     /* lower triangle of A's dense block, packed (dense_packed.h) */
    double *Ld;     /* the factor's lower triangle, panel-packed (dense_packed.h) */

    /* internal coordinates of [X y] (standardise.c): X* = X M, y* = (y - X* g) / s,
       M = (I - e_c mu') D^{-1}; std_d NULL: none */
    int std_c0;         /* the constant column c of X, or -1 */
    double *std_mu, *std_d, *std_g, std_s;
    double std_ldM;     /* 2 sum log d_j = log|R_X|^2 - log|R*|^2 */

    double sumlogw; /* log|V^{-1}|: the sum of log prior weights without a residual structure */
    struct lmm_resid *resid;   /* the residual structure (residual.h), or NULL */
    double *work[2];           /* persistent workspaces (lmm_workspace): the gradient's */
    size_t work_len[2];        /* buffers stay mapped between evaluations */
    struct lmm_iter *iter;     /* the iterative backend (iterative.h), or NULL: the exact one */
    int factored;   /* Lx/Ld hold the factor at theta_cur */
    double *theta_cur;
} lmm_model;

/* layout.c: symbolic analysis */
void lmm_count_rows(lmm_model *m, const int *const *refs);
void lmm_layout_dims(lmm_model *m, int n, int p, int k, const int *pt, const int *nlt);
void lmm_layout_fill(lmm_model *m, int n, int p, int k, const int *pt, const int *nlt,
                     int *const *refs, const int *Kp, const int *Kj);   /* recodes refs */

/* ordering.c: the permutation layer, (term, level) <-> node */
int lmm_ordering_wanted(void);
void lmm_order_levels(lmm_model *m, const int *Ap, const int *Ai);
void lmm_order_recode(const lmm_model *m, int n, int *const *refs);
int lmm_level_node(const lmm_model *m, int t, int l);
void lmm_z_unpermute(const lmm_model *m, const double *in, double *out, int square);
int lmm_z_column(const lmm_model *m, int c);
int lmm_amd_order(int n, const int *Cp, const int *Ci, const int *size, int ncls,
                  const int *cnode, const int *cptr, double p1, double weight, double cutoff,
                  double class_dense, int *order);                           /* amd.c */
double lmm_split_cost(int N, const int *size, const int *term, const double *rows, int p1,
                      double *md_out);                                       /* layout.c */
double lmm_split_weight(void);                                               /* layout.c */
void lmm_free(lmm_model *m);
double *lmm_workspace(lmm_model *m, int slot, size_t len);   /* slot 0 or 1, len doubles */
double *lmm_block_ptr(const lmm_model *m, double *sx, double *dx, int I, int J, int *ld);
/* column c of block (I, J), I >= J, as p[r] = entry (row r of node I, column c of node J):
   B and ld from lmm_block_ptr for a sparse J; the packed dense block dx for J >= Ns, where a
   diagonal block (I == J) has its lower triangle (r >= c) only */
static inline double *lmm_block_col(const lmm_model *m, double *B, int ld, double *dx, int I,
                                    int J, int c)
{
    if (J < m->Ns) return B + (size_t) c * ld;
    return lmm_packed_col(dx, m->md, m->doff[J - m->Ns] + c) + m->doff[I - m->Ns];
}

/* crossprod.c: A = (KG)'(KG) from the (whitened) data -- residual.h */

/* standardise.c: the internal coordinates of [X y] and the way back */
void lmm_standardise(lmm_model *m, const double *X, const double *y);
void lmm_std_row(const lmm_model *m, const double *X, const double *y, int r, double *xs);
void lmm_std_beta(const lmm_model *m, double *beta);
void lmm_std_vcov(const lmm_model *m, double *V);
void lmm_std_dual(const lmm_model *m, double *a);

/* interrupt.c: user interrupts by work done (master thread, outside parallel regions) */
void lmm_work(double flops);
double lmm_column_work(const lmm_model *m, int J);
int lmm_region_width(int rest, int nb, int max_width);

/* theta.c: relative covariance templates */
void lmm_template(const lmm_model *m, int t, const double *theta, double *T);
int lmm_theta_length(int k, const int *pt);

/* factor.c: Omega(theta) = L L' */
int lmm_factor(lmm_model *m, const double *theta);

/* criterion.c */
typedef struct { double ldL2, ldRX2, pwrss, crit; } lmm_crit_parts;
lmm_crit_parts lmm_criterion(lmm_model *m, const double *theta, int REML);

/* solve.c: conditional modes u and beta at the current factor */
void lmm_solve(const lmm_model *m, double *u, double *beta);
void lmm_vcov_unscaled(const lmm_model *m, double *V);
void lmm_rx_pivots(const lmm_model *m, double *piv);
void lmm_forward_solve_zx(const lmm_model *m, double *v);

/* gradient.c: the selected inverse of Omega_S (nl rows of node N) on L's pattern (Sd: its lower
   triangle, panel-packed: dense_packed.h) */
void lmm_selected_inverse(const lmm_model *m, int nl, double *Sx, double *Sd);

/* condvar.c: diagonal blocks of (L_Z L_Z')^{-1} */
void lmm_condvar(const lmm_model *m, double *out);

/* gradient.c: the criterion and its gradient with respect to theta (status 0, or the factor's) */
int lmm_criterion_gradient(lmm_model *m, const double *theta, int REML, double *crit,
                           double *grad);
SEXP lmm_gradient(SEXP ptr, SEXP theta, SEXP REML, SEXP rho);

/* moments.c: moment estimates of theta from A (the optimiser's start) */
SEXP lmm_moments(SEXP ptr, SEXP REML, SEXP floor);

/* dense.c: small dense kernels */
int lmm_chol_small(int n, double *a);                          /* a = L L', lower, in place */
void lmm_trsm_right_lt(int m, int n, const double *L, double *B); /* B <- B L^{-T} (B m x n) */
void lmm_gemm_nt_sub(int m, int n, int kk, const double *A, const double *B, double *C, int ldc);

/* dense_chol.c: blocked Cholesky of the leading n x n of A (lower, packed or plain); 0 or the
   1-based failing column */
int lmm_dense_chol(int n, lmm_dmat A);

/* dense_schur.c: the sparse columns' coupling to the dense block, by blocks of dense columns:
   Omega_DD -= sum_J L_DJ L_DJ' (lower triangle of m->Ld), and P_J += Sigma_DD L_DJ on J's dense
   rows (P laid out as Lx; Sigma_DD's lower triangle packed, zero beyond its leading lim rows) */
void lmm_dense_schur_update(lmm_model *m);
void lmm_dense_schur_products(const lmm_model *m, int lim, const double *Sd, double *P);

/* dense_inverse.c: S = (L L')^{-1} from the lower Cholesky factor L, over the leading n x n, its
   lower triangle (S packed or plain) */
void lmm_dense_inverse_lower(int n, lmm_dmat L, lmm_dmat S);

/* dense_kernel.c: the mr x nr register tile behind dense_chol.c and dense_inverse.c, chosen at
   run time (24 x 8 with AVX-512, 12 x 4 with AVX2 + FMA, 8 x 4 otherwise; nr divides mr) */
#define LMM_TILE_MAX 192             /* largest mr * nr */
#define LMM_THREADS_MIN_ORDER 500    /* smaller dense blocks are factored by one thread */
typedef void (*lmm_tile_fn)(int kb, const double *a, const double *b, int ldb, double alpha,
                            double *C, int ldc);                    /* C += alpha a b', full tile */
typedef void (*lmm_band_fn)(int kb, const double *a, int lda, const double *b, int ldb,
                            double alpha, double *C, int ldc);      /* the same, nr x nr tile */
typedef void (*lmm_solve_fn)(int c0, int nc, const double *L, int ldl, const double *rdiag,
                             double *x);      /* packed strip x, columns c0..: x <- x L^{-T} */
typedef void (*lmm_axpy_fn)(int m, double a, const double *x, double *y);            /* y -= a x */
typedef struct {
    int mr, nr;
    lmm_tile_fn tile;
    lmm_band_fn band;
    lmm_solve_fn solve;
    lmm_axpy_fn axpy;
} lmm_kernels;
lmm_kernels lmm_choose_kernels(void);  /* widest available; master thread only */
int lmm_dense_threads(int n);          /* option("lmmc.threads"); master thread only */
int lmm_dense_lapack(void);
/* scratch of the dense kernels kept between calls (slots never used by two kernels at once) */
enum lmm_scratch_slot { LMM_SCR_CHOL0, LMM_SCR_CHOL1, LMM_SCR_CHOLD, LMM_SCR_INV, LMM_SCR_SCHUR_V,
                        LMM_SCR_SCHUR_P, LMM_SCR_SCHUR_I, LMM_SCRATCH_SLOTS };
double *lmm_scratch(int slot, size_t len);   /* len doubles; master thread only */
void lmm_scratch_free(void);            /* option("lmmc.dense_backend"): 1 for R's LAPACK */
SEXP lmm_dense_backend_auto(SEXP lapack);  /* what "auto" chooses, set at load */
SEXP lmm_dense_backend_time(SEXP n, SEXP reps);   /* seconds of chol + inverse: own, LAPACK */
double lmm_dense_rate(void);  /* md^3 per second of the dense work, as timed on this machine */
void lmm_pack_rows(int m, int kb, const double *P, int lda, int w, double *out);
void lmm_pack_strip(int m, int kb, const double *P, int lda, int w, int s, double *out);
void lmm_unpack_strip(int m, int kb, const double *in, int w, int s, double *P, int lda);
void lmm_pack_col_strip(int kb, int n, const double *P, int lda, int w, int s, double *out);
void lmm_tile(const lmm_kernels *k, int kb, const double *a, const double *b, int ldb,
              double alpha, double *C, int ldc, int nr, int nc);  /* one tile, maybe partial */

/* the tiled update C += alpha A B' (C m x n; A packed in mr-row strips, B in wb-row strips, wb a
   multiple of nr; lower: the tiles reaching the diagonal or below it) cut into chunks: (row
   block, column strip) pairs from column strip s0 on */
typedef struct {
    const lmm_kernels *k;
    int m, n, kb, wb, lower, s0, mc;
    const double *Pa, *Pb;
    double alpha;
    lmm_dmat C;              /* C is the block of this matrix at rows r0.., columns c0.. */
    int r0, c0;              /* (c0 a multiple of nr when C is packed) */
} lmm_update;
lmm_update lmm_update_make(const lmm_kernels *k, int m, int n, int kb, const double *Pa,
                           const double *Pb, int wb, double alpha, int lower, lmm_dmat C, int r0,
                           int c0);
long lmm_update_chunks(const lmm_update *u);
void lmm_update_chunk(const void *u, long c);          /* an lmm_chunk_fn */
void lmm_update_strip(const lmm_update *u, int s);     /* column strip s, all rows */

/* dense_team.c: thread 0 runs an algorithm, the others serve its jobs of independent chunks */
typedef struct lmm_team lmm_team;
typedef void (*lmm_chunk_fn)(const void *arg, long chunk);
void lmm_team_run(int nthreads, void (*master)(lmm_team *, void *), void *arg);
long lmm_team_publish(lmm_team *t, lmm_chunk_fn fn, const void *arg, long nchunks, int stop);
void lmm_team_work(lmm_team *t);                       /* master joins the current job */
void lmm_team_wait(lmm_team *t, long end);             /* chunks below ticket end are done */
void lmm_team_for(lmm_team *t, lmm_chunk_fn fn, const void *arg, long nchunks);
void lmm_team_signal(int *flag, int value);             /* any thread: *flag = value */
void lmm_team_wait_flag(lmm_team *t, const int *flag, int value);  /* master: until *flag == value */
int lmm_team_threads(int nthreads);                     /* 1 while others hold the processors */

/* optimise.h has the optimiser */

/* model.c: the optimiser settings from R's list(rhobeg, rhoend, ftol_abs, maxeval) */
#include "optimise.h"
lmm_opt_control lmm_opt_control_from(SEXP control);
int lmm_check_setup(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw);
lmm_model *lmm_get_model(SEXP ptr);                        /* engine pointer -> model */
const double *lmm_check_theta(const lmm_model *m, SEXP theta); /* finite, length ntheta */
void lmm_term_codes(SEXP r, SEXP xt, int nlt, int n, int t, int *r0);

/* model.c: .Call entry points */
SEXP lmm_setup(SEXP y, SEXP X, SEXP refs, SEXP Xts, SEXP nl, SEXP sqrtw, SEXP resid);
SEXP lmm_crit(SEXP ptr, SEXP theta, SEXP REML, SEXP rho);
SEXP lmm_optimise(SEXP ptr, SEXP x0, SEXP lower, SEXP upper, SEXP REML, SEXP control, SEXP rho,
                  SEXP free);
SEXP lmm_parts(SEXP ptr, SEXP theta, SEXP REML, SEXP rho);
SEXP lmm_quadform(SEXP ptr, SEXP theta, SEXP P, SEXP A, SEXP rho);
SEXP lmm_solution(SEXP ptr, SEXP theta, SEXP REML, SEXP rho, SEXP condvar);
SEXP lmm_whitening_at(SEXP ptr, SEXP rho, SEXP deriv, SEXP explicit);
SEXP lmm_whiten_solve(SEXP K, SEXP order, SEXP Z);
SEXP lmm_whiten_apply(SEXP ptr, SEXP rho, SEXP V, SEXP inverse);
SEXP lmm_layout_info(SEXP ptr);
SEXP lmm_amd_test(SEXP Cp, SEXP Ci, SEXP size, SEXP cls);          /* ordering.c */
SEXP lmm_set_counts(SEXP ptr, SEXP n, SEXP nrows, SEXP sumlogw);   /* counts.c: summary rows */
SEXP lmm_chol_dense(SEXP A);
SEXP lmm_inverse_dense(SEXP L);                        /* dense_inverse.c: test entry */

#endif
