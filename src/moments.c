/*
 * moments.c -- moment estimates of theta (the optimiser's start) from A = G'WG alone.
 *
 * R/start.R states the estimators; here each quantity is read off A (W: the prior weights and,
 * with a residual structure, the whitening; sums run over the rows of the weighted data):
 *     X'WX, X'Wy, y'Wy      block (N, N)
 *     G_j = Z_j'WZ_j        diagonal block of node J = node0[t] + j (level j of term t)
 *     Z_j'WX, Z_j'Wy        block (N, J)
 *     h_jk = sum z_t z_u W  block between node j of t and node k of u (scalar terms t != u)
 *     n_j                   m->nrows[J], the data rows of level j (A cannot give it when weighted)
 * so nothing here touches the n observations.  With r the weighted OLS residuals:
 *     beta = (X'WX)^-1 X'Wy,   r'Wr = y'Wy - (X'Wy)'beta,   c_j = Z_j'Wr = Z_j'Wy - Z_j'WX beta,
 *     b_j = G_j^-1 c_j  (level fit),   Cov(b_j) = Sigma_t + s2w_t G_j^-1,
 *     s2w_t = (r'Wr - sum_j c_j'G_j^+ c_j) / sum_j (n_j - rank G_j)   (pooled within levels).
 * A level is "ok" (enters cov(b) and mean G_j^-1) when G_j is clearly non-singular (every
 * Gauss-Jordan pivot above 1e-10 of the largest diagonal entry; for scalar terms d_j = G_j above
 * 1e-10 of the largest d_j) and, for vector terms, n_j >= p_t.  The row-level version summed the
 * residuals r_j'r_j of the ok levels only; a level that is not ok but whose Z_j has full row rank
 * (fewer rows than columns, say) is fitted exactly, r_j'r_j = c_j'G_j^+ c_j on n_j - rank = 0 df,
 * so the pooled value is the same.  Only a level with more rows than the rank of G_j and not ok
 * (all z zero in it, or collinear z within it) now adds its residual rows, with their df; so do
 * the pair coefficients' lambda (below) for consistency: it uses all rows of term u and n - J.
 *
 * Scalar terms t, u: over the used levels j of t (the ok ones), G_jk = h_jk / d_j,
 *     kappa_tu = (sum G_jk^2 - sum_k (sum_j G_jk)^2 / J) / (J - 1),
 *     lambda_tu = (sum_k D_uk - sum h_jk G_jk) / (n - J),   D_uk = level k's sum of z_u^2 W,
 * and the scalar system (R/start.R) gives sigma_u^2 and s2.
 *
 * Precision: r'Wr is a difference of cross-products (as in the engine's criterion), so it loses
 * about log10(y'Wy / r'Wr) digits; the start is rounded to 3 significant digits anyway.
 */
#include "iterative.h"
#include <float.h>
#include <string.h>

#define LEVEL_TOL 1e-10   /* a level's pivot at or below LEVEL_TOL * scale: G_j singular */
#define ALIAS_TOL 1e-14   /* X: a column whose pivot is at or below ALIAS_TOL X_k'WX_k is aliased */

typedef struct {
    int estimable;        /* Sigma is set */
    double s2w;           /* pooled within-level variance; NA_REAL without degrees of freedom */
    double covb;          /* scalar terms: variance of the level estimates b_j */
    double inv_mean;      /* scalar terms: mean_j 1 / d_j */
    double *Sigma;        /* p_t x p_t */
} term_est;

/* Scratch of n doubles (R_alloc: freed at the end of the .Call, and on error). */
static double *dalloc(size_t n)
{
    return (double *) R_alloc(n ? n : 1, sizeof(double));
}

/* G = the diagonal block of node J, both triangles (from its lower one). */
static void diag_block(const lmm_model *m, int J, double *G)
{
    int ld, p = m->size[J];
    double *B = lmm_block_ptr(m, m->Ax, m->Ad, J, J, &ld);
    for (int c = 0; c < p; c++) {
        const double *Bc = lmm_block_col(m, B, ld, m->Ad, J, J, c);     /* packed: per column */
        for (int r = c; r < p; r++) G[r + c * p] = G[c + r * p] = Bc[r];
    }
}

/* c = Z_J'W r = Z_J'Wy - Z_J'WX beta, from block (N, J) (rows: the columns of X, then y). */
static void level_cross(const lmm_model *m, int J, const double *beta, double *c)
{
    int ld, p = m->p;
    double *B = lmm_block_ptr(m, m->Ax, m->Ad, m->N, J, &ld);
    for (int a = 0; a < m->size[J]; a++) {
        const double *col = lmm_block_col(m, B, ld, m->Ad, m->N, J, a);
        double s = col[p];
        for (int i = 0; i < p; i++) s -= col[i] * beta[i];
        c[a] = s;
    }
}

/* In-order Cholesky of the symmetric p x p matrix G that skips every column whose pivot (the
   Schur complement's diagonal, what Gauss-Jordan elimination divides by) is not above tol[k]:
   such a column lies in the span of the kept ones before it.  L: the kept columns' factor, zero
   in the skipped columns.  Returns the rank. */
static int chol_kept(int p, const double *G, const double *tol, double *L)
{
    int rank = 0;
    memset(L, 0, (size_t) p * p * sizeof(double));
    for (int k = 0; k < p; k++) {
        double d = G[k + k * p];
        for (int j = 0; j < k; j++) d -= L[k + j * p] * L[k + j * p];   /* d = G_kk - sum L_kj^2 */
        if (!(d > tol[k])) continue;
        double lkk = sqrt(d);
        L[k + k * p] = lkk;
        for (int i = k + 1; i < p; i++) {
            double s = G[i + k * p];
            for (int j = 0; j < k; j++) s -= L[i + j * p] * L[k + j * p];
            L[i + k * p] = s / lkk;                                      /* L_ik */
        }
        rank++;
    }
    return rank;
}

/* x = G_KK^-1 c_K on the kept columns K of chol_kept's L (0 elsewhere), z = L^-1 c scratch.
   Returns c'x = |L_KK^-1 c_K|^2, which is c'G^+c when c lies in the range of G. */
static double solve_kept(int p, const double *L, const double *c, double *z, double *x)
{
    double cx = 0;
    for (int k = 0; k < p; k++) {                         /* forward: L z = c */
        z[k] = 0;
        if (!(L[k + k * p] > 0)) continue;
        double s = c[k];
        for (int j = 0; j < k; j++) s -= L[k + j * p] * z[j];
        z[k] = s / L[k + k * p];
        cx += z[k] * z[k];
    }
    for (int k = p - 1; k >= 0; k--) {                    /* back: L' x = z */
        x[k] = 0;
        if (!(L[k + k * p] > 0)) continue;
        double s = z[k];
        for (int i = k + 1; i < p; i++) s -= L[i + k * p] * x[i];
        x[k] = s / L[k + k * p];
    }
    return cx;
}

/* Weighted OLS of y on X from block (N, N): beta (0 at aliased columns); returns r'Wr. */
static double ols_fit(const lmm_model *m, double *beta)
{
    int p = m->p, p1 = p + 1;
    double *A = dalloc((size_t) p1 * p1), *XX = dalloc((size_t) p * p), *L = dalloc((size_t) p * p);
    double *tol = dalloc(p), *z = dalloc(p);
    diag_block(m, m->N, A);                               /* [X'WX X'Wy; y'WX y'Wy] */
    for (int c = 0; c < p; c++) {
        for (int r = 0; r < p; r++) XX[r + c * p] = A[r + c * p1];
        tol[c] = ALIAS_TOL * XX[c + c * p];
    }
    chol_kept(p, XX, tol, L);
    double fit = solve_kept(p, L, A + (size_t) p * p1, z, beta);   /* (X'Wy)'beta */
    return A[p + (size_t) p * p1] - fit;
}

/* Sigma_t, s2w_t (and covb, inv_mean for a scalar term) from the level fits of term t. */
static void term_moments(const lmm_model *m, int t, const double *beta, double rr, int REML,
                         term_est *e)
{
    int p = m->pt[t], nl = m->nlt[t], J0 = m->node0[t], pp = p * p, nok = 0;
    double *G = dalloc(pp), *L = dalloc(pp), *c = dalloc(p), *x = dalloc(p), *z = dalloc(p);
    double *tol = dalloc(p), *ei = dalloc(p);
    double *b = dalloc((size_t) nl * p);                  /* rows: the ok levels' b_j */
    double *inv_sum = dalloc(pp);                         /* sum of their G_j^-1 */
    memset(inv_sum, 0, pp * sizeof(double));
    double dmax = 0, fit = 0, df = 0;
    if (p == 1)                                           /* scalar: scale = the largest d_j */
        for (int j = 0; j < nl; j++) { diag_block(m, J0 + j, G); if (G[0] > dmax) dmax = G[0]; }
    for (int j = 0; j < nl; j++) {
        int J = J0 + j, nj = m->nrows[J];
        diag_block(m, J, G);
        level_cross(m, J, beta, c);
        double scale = p == 1 ? dmax : 0;                 /* vector: the largest diagonal entry */
        for (int a = 0; p > 1 && a < p; a++) if (G[a + a * p] > scale) scale = G[a + a * p];
        for (int a = 0; a < p; a++) tol[a] = LEVEL_TOL * scale;
        int rank = chol_kept(p, G, tol, L);
        fit += solve_kept(p, L, c, z, x);                 /* c_j'G_j^+ c_j */
        df += nj > rank ? nj - rank : 0;                  /* n_j - rank G_j */
        if (rank < p || (p > 1 && nj < p)) continue;      /* not ok */
        for (int a = 0; a < p; a++) b[nok + (size_t) a * nl] = x[a];
        for (int a = 0; a < p; a++) {                     /* column a of G_j^-1 */
            memset(ei, 0, p * sizeof(double));
            ei[a] = 1;
            solve_kept(p, L, ei, z, x);
            for (int r = 0; r < p; r++) inv_sum[r + a * p] += x[r];
        }
        nok++;
    }
    e->estimable = 0;
    e->s2w = df > 0 ? fmax(rr - fit, 0) / df : NA_REAL;
    if (p > 1 && nok < 2) e->s2w = NA_REAL;
    if (nok < 2 || !R_FINITE(e->s2w)) return;
    double *mean = z;                                     /* column means of b */
    for (int a = 0; a < p; a++) {
        long double s = 0;
        for (int j = 0; j < nok; j++) s += b[j + (size_t) a * nl];
        mean[a] = (double) (s / nok);
    }
    double divisor = REML ? nok - 1 : nok;                /* ML: divisor J */
    e->Sigma = (double *) R_alloc(pp, sizeof(double));
    for (int a = 0; a < p; a++)
        for (int r = a; r < p; r++) {
            long double s = 0;
            const double *br = b + (size_t) r * nl, *ba = b + (size_t) a * nl;
            for (int j = 0; j < nok; j++) s += (long double) (br[j] - mean[r]) * (ba[j] - mean[a]);
            double covb = (double) (s / divisor);
            double inv_mean = (inv_sum[r + a * p] + inv_sum[a + r * p]) / (2.0 * nok);
            e->Sigma[r + a * p] = e->Sigma[a + r * p] = covb - e->s2w * inv_mean;   /* Sigma_t */
            if (p == 1) { e->covb = covb; e->inv_mean = inv_mean; }
        }
    e->estimable = 1;
}

/* kappa_tu and lambda_tu (see the top) from the blocks of A between scalar terms t != u. */
static void pair_coefs(const lmm_model *m, int t, int u, double *kappa, double *lambda)
{
    int nt = m->nlt[t], nu = m->nlt[u], t0 = m->node0[t], u0 = m->node0[u], Ns = m->Ns;
    double *d = dalloc(nt), *colG = dalloc(nu);
    double dmax = 0, Du = 0, sumG2 = 0, sumhG = 0, sumcol2 = 0, G;
    int J = 0;
    for (int j = 0; j < nt; j++) { diag_block(m, t0 + j, &G); d[j] = G; if (G > dmax) dmax = G; }
    for (int j = 0; j < nt; j++) {
        if (d[j] > LEVEL_TOL * dmax) J++;
        else d[j] = 0;                                    /* unused level of t */
    }
    for (int k = 0; k < nu; k++) { diag_block(m, u0 + k, &G); Du += G; colG[k] = 0; }
    int lo = t0 < u0 ? t : u, hi = t0 < u0 ? u : t;       /* lo: the term of lower nodes */
    int h0 = m->node0[hi], h1 = h0 + m->nlt[hi];
    for (int Jn = m->node0[lo]; Jn < m->node0[lo] + m->nlt[lo]; Jn++) {
        int e0 = Jn < Ns ? m->Lp[Jn] : h0, e1 = Jn < Ns ? m->Lp[Jn + 1] : h1;
        for (int e = e0; e < e1; e++) {                   /* sparse column's rows, or dense rows */
            int I = Jn < Ns ? m->Li[e] : e;
            if (I < h0) continue;
            if (I >= h1) break;
            double h = Jn < Ns ? m->Ax[m->Loff[e]]
                               : lmm_packed_col(m->Ad, m->md, m->doff[Jn - Ns])[m->doff[I - Ns]];
            int j = lo == t ? Jn - t0 : I - t0, k = lo == t ? I - u0 : Jn - u0;
            if (d[j] == 0) continue;
            G = h / d[j];                                 /* G_jk */
            sumG2 += G * G;
            sumhG += h * G;
            colG[k] += G;
        }
    }
    for (int k = 0; k < nu; k++) sumcol2 += colG[k] * colG[k];
    *kappa = (sumG2 - sumcol2 / J) / (J - 1);
    *lambda = (Du - sumhG) / ((double) m->n - J);
}

/* Solve M x = rhs (order n) as R's solve() does: LU, and failure when M is exactly or
   computationally singular (reciprocal condition number below DBL_EPSILON).  0 on success. */
static int solve_system(int n, double *M, double *rhs)
{
    int info, one = 1, *ipiv = (int *) R_alloc(2 * (size_t) n, sizeof(int)), *iwork = ipiv + n;
    double anorm = 0, rcond, *work = dalloc(4 * (size_t) n);
    for (int c = 0; c < n; c++) {                         /* 1-norm */
        double s = 0;
        for (int r = 0; r < n; r++) s += fabs(M[r + c * n]);
        if (s > anorm) anorm = s;
    }
    F77_CALL(dgetrf)(&n, &n, M, &n, ipiv, &info);
    if (info != 0) return 1;
    F77_CALL(dgecon)("1", &n, M, &n, &anorm, &rcond, work, iwork, &info FCONE);
    if (info != 0 || rcond < DBL_EPSILON) return 1;
    F77_CALL(dgetrs)("N", &n, &one, M, &n, ipiv, rhs, &n, &info FCONE);
    return info != 0;
}

/* The scalar terms' moment system (R/start.R): on success the scalar terms' Sigma become their
   sigma_u^2 and *s2 the residual variance.  kappa, lambda (k x k, NA outside the system) are
   filled for the caller.  Returns 1 when solved with s2 > 0. */
static int scalar_system(const lmm_model *m, term_est *est, double *kappa, double *lambda,
                         double *s2)
{
    int k = m->k, nS = 0, *S = (int *) R_alloc(k, sizeof(int)), tstar = -1;
    for (int t = 0; t < k; t++)
        if (m->pt[t] == 1 && est[t].estimable) {
            S[nS++] = t;
            if (tstar < 0 || est[t].s2w < est[tstar].s2w) tstar = t;   /* least within variance */
        }
    if (!nS) return 0;
    int n1 = nS + 1;
    double *M = dalloc((size_t) n1 * n1), *rhs = dalloc(n1);
    memset(M, 0, (size_t) n1 * n1 * sizeof(double));
    for (int a = 0; a < nS; a++) {
        M[a + a * n1] = 1;
        M[a + nS * n1] = est[S[a]].inv_mean;              /* s2 mean_j 1/d_j */
        rhs[a] = est[S[a]].covb;
        for (int b = 0; b < nS; b++) {
            if (a == b) continue;
            int tu = S[a] + S[b] * k;
            pair_coefs(m, S[a], S[b], kappa + tu, lambda + tu);
            M[a + b * n1] = kappa[tu];                    /* kappa_ab sigma_b^2 */
        }
    }
    M[nS + nS * n1] = 1;
    rhs[nS] = est[tstar].s2w;
    for (int b = 0; b < nS; b++)
        if (S[b] != tstar) M[nS + b * n1] = lambda[tstar + S[b] * k];   /* lambda_t*b sigma_b^2 */
    if (solve_system(n1, M, rhs)) return 0;
    for (int a = 0; a < n1; a++) if (!R_FINITE(rhs[a])) return 0;
    if (!(rhs[nS] > 0)) return 0;
    for (int a = 0; a < nS; a++) est[S[a]].Sigma[0] = rhs[a];
    *s2 = rhs[nS];
    return 1;
}

/* theta of term t from Sigma / s2 (relative_template in R/start.R): in standardised units
   (column root-mean-squares rms) the eigenvalues are floored at start_floor^2, then the lower
   Cholesky factor L is taken; theta = L[r, c] / rms_r, r >= c, column by column.  0 on success. */
static int term_theta(const lmm_model *m, int t, const double *Sigma, double s2, double start_floor,
                      double *theta)
{
    int p = m->pt[t], pp = p * p, info, lwork = 8 * p + 8;
    double *rms = dalloc(p), *G = dalloc(pp), *S = dalloc(pp), *V = dalloc(pp), *ev = dalloc(p);
    double *work = dalloc(lwork);
    for (int a = 0; a < p; a++) rms[a] = 0;
    for (int J = m->node0[t]; J < m->node0[t] + m->nlt[t]; J++) {  /* colSums(Z^2 W) */
        diag_block(m, J, G);
        for (int a = 0; a < p; a++) rms[a] += G[a + a * p];
    }
    for (int a = 0; a < p; a++) {
        rms[a] = sqrt(rms[a] / m->n);
        if (!(rms[a] > 0)) rms[a] = 1;
    }
    for (int c = 0; c < p; c++)
        for (int r = 0; r < p; r++) V[r + c * p] = Sigma[r + c * p] / s2 * rms[r] * rms[c];
    if (p == 1) V[0] = fmax(V[0], start_floor * start_floor);
    else {
        F77_CALL(dsyev)("V", "L", &p, V, &p, ev, work, &lwork, &info FCONE FCONE);
        if (info != 0) return 1;
        for (int a = 0; a < p; a++) ev[a] = fmax(ev[a], start_floor * start_floor);
        for (int c = 0; c < p; c++)                       /* S = V diag(ev) V' */
            for (int r = 0; r < p; r++) {
                double s = 0;
                for (int a = 0; a < p; a++) s += V[r + a * p] * ev[a] * V[c + a * p];
                S[r + c * p] = s;
            }
        memcpy(V, S, pp * sizeof(double));
    }
    if (lmm_chol_small(p, V)) return 1;
    for (int c = 0, i = 0; c < p; c++)
        for (int r = c; r < p; r++) theta[i++] = V[r + c * p] / rms[r];
    return 0;
}

/* lme4's start for term t: 1 on the diagonal of the template, 0 below. */
static void theta_ones(const lmm_model *m, int t, double *theta)
{
    for (int c = 0, i = 0; c < m->pt[t]; c++)
        for (int r = c; r < m->pt[t]; r++) theta[i++] = r == c;
}

/* lmm_moments(ptr, REML, floor): list(theta, s2, s2w, Sigma, kappa, lambda) -- the unrounded
   moment start, the residual variance, each term's within-level variance and (NULL when not
   estimable) Sigma_t, and the scalar system's pair coefficients (k x k, NA where not used). */
SEXP lmm_moments(SEXP ptr, SEXP REML_, SEXP floor_)
{
    if (TYPEOF(ptr) != EXTPTRSXP) error(_("not an lmmc engine model"));
    lmm_model *m = (lmm_model *) R_ExternalPtrAddr(ptr);
    if (!m) error(_("the lmmc engine model is no longer valid (was it saved and reloaded?)"));
    int REML = asLogical(REML_), k = m->k;
    double start_floor = asReal(floor_);
    if (m->iter) return lmm_iter_moments(m, REML, start_floor);     /* iterative.h */
    const char *nm[] = {"theta", "s2", "s2w", "Sigma", "kappa", "lambda"};
    SEXP ans = PROTECT(allocVector(VECSXP, 6)), names = PROTECT(allocVector(STRSXP, 6));
    for (int i = 0; i < 6; i++) SET_STRING_ELT(names, i, mkChar(nm[i]));
    setAttrib(ans, R_NamesSymbol, names);
    SET_VECTOR_ELT(ans, 0, allocVector(REALSXP, m->ntheta));
    SET_VECTOR_ELT(ans, 2, allocVector(REALSXP, k));
    SET_VECTOR_ELT(ans, 3, allocVector(VECSXP, k));
    SET_VECTOR_ELT(ans, 4, allocMatrix(REALSXP, k, k));
    SET_VECTOR_ELT(ans, 5, allocMatrix(REALSXP, k, k));
    double *theta = REAL(VECTOR_ELT(ans, 0)), *kappa = REAL(VECTOR_ELT(ans, 4));
    double *lambda = REAL(VECTOR_ELT(ans, 5));
    for (int i = 0; i < k * k; i++) kappa[i] = lambda[i] = NA_REAL;

    double *beta = (double *) R_alloc(m->p + 1, sizeof(double));
    double rr = ols_fit(m, beta), s2 = R_PosInf;
    double s2y = m->std_d ? m->std_s * m->std_s : 1.0;  /* variances back from y* (standardise.c) */
    term_est *est = (term_est *) R_alloc(k, sizeof(term_est));
    for (int t = 0; t < k; t++) {
        term_moments(m, t, beta, rr, REML, est + t);
        if (R_FINITE(est[t].s2w) && est[t].s2w < s2) s2 = est[t].s2w;   /* least s2w_t */
        REAL(VECTOR_ELT(ans, 2))[t] = est[t].s2w;
    }
    if (!R_FINITE(s2)) s2 = NA_REAL;
    scalar_system(m, est, kappa, lambda, &s2);
    for (int t = 0; t < k; t++) {
        double *th = theta + m->theta0[t];
        if (!(R_FINITE(s2) && s2 > 0) || !est[t].estimable ||
            term_theta(m, t, est[t].Sigma, s2, start_floor, th)) theta_ones(m, t, th);
        if (!est[t].estimable) continue;
        int p = m->pt[t];
        SEXP Sigma = allocMatrix(REALSXP, p, p);
        SET_VECTOR_ELT(VECTOR_ELT(ans, 3), t, Sigma);
        memcpy(REAL(Sigma), est[t].Sigma, (size_t) p * p * sizeof(double));
        for (int i = 0; i < p * p; i++) REAL(Sigma)[i] *= s2y;
    }
    for (int t = 0; t < k; t++) REAL(VECTOR_ELT(ans, 2))[t] *= s2y;
    SET_VECTOR_ELT(ans, 1, ScalarReal(s2 * s2y));
    UNPROTECT(2); /* ans, names */
    return ans;
}
