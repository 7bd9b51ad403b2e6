/*
 * residual.c -- the whitening K(rho) of a residual structure and its derivatives (residual.h).
 *
 * Group g (rows r_0 .. r_{m-1} in its order) contributes the rows
 *     K[r_a, r_b] = B_g[a, b] sqrt(w_{r_b}) / s_{r_b},       b <= a,
 * B_g = L_g^{-1}, R_g = L_g L_g'.  Two shapes:
 *   Markov (corAR1, corCAR1): R_g[a, b] = phi^|t_a - t_b|, whose inverse Cholesky factor is
 *     bidiagonal: B[0, 0] = 1 and, for a > 0 with r = phi^(t_a - t_{a-1}),
 *         B[a, a] = 1 / sqrt(1 - r^2),   B[a, a-1] = -r / sqrt(1 - r^2);
 *   dense: R_g from the family, factored by LAPACK, B_g by dtrtri.
 * Derivatives, for the gradient with respect to rho:
 *   correlation parameter k:  dB = -Phi(B dR_k B') B   (Phi: lower triangle, half diagonal;
 *     from dL = L Phi(L^{-1} dR L^{-T})), dR_k by Richardson-extrapolated central differences of
 *     the family's R_g (error O(h^4) + rounding; h = 1e-3), or in closed form for Markov rows:
 *     dB[a, a] = r B[a, a]^3 dr,  dB[a, a-1] = -B[a, a]^3 dr;
 *   variance parameter k:     dK[i, j] = -K[i, j] d log s_j / d par_k.
 * log|V^{-1}| = 2 sum_i log K_ii and its derivatives 2 sum_i dK_ii / K_ii.
 */
#include "residual.h"
#include <math.h>
#include <string.h>

/* The pattern of K: row r_a of a Markov group holds r_{a-1} and r_a, of a band group
   r_{a-p} .. r_a, of a dense group r_0 .. r_a (diagonal last); without a correlation structure,
   and in innovations groups (residual_innovations.c), every row holds itself. */
void lmm_resid_pattern(lmm_resid *rs)
{
    int n = rs->n;
    double nnz = 0;
    for (int g = 0; g < rs->G; g++) {
        double m = rs->gp[g + 1] - rs->gp[g], b = rs->band_p;
        nnz += (rs->ginnov && rs->ginnov[g]) ? m : rs->banded ? 2 * m - 1 : (rs->gband && rs->gband[g]) ?
            (m <= b ? m * (m + 1) / 2 : b * (b + 1) / 2 + (m - b) * (b + 1)) : m * (m + 1) / 2;
    }
    if (nnz > (double) INT_MAX) error(_("the correlation groups are too large (%.0f entries)"), nnz);
    rs->K.n = n;
    rs->K.Kp = R_Calloc(n + 1, int);
    rs->K.Kj = R_Calloc((size_t) nnz + 1, int);
    for (int g = 0; g < rs->G; g++) {                   /* row lengths */
        int m = rs->gp[g + 1] - rs->gp[g], band = rs->gband && rs->gband[g];
        int innov = rs->ginnov && rs->ginnov[g];
        for (int a = 0; a < m; a++)
            rs->K.Kp[rs->grow[rs->gp[g] + a] + 1] = innov ? 1 : rs->banded ? (a > 0) + 1 :
                band ? (a < rs->band_p ? a : rs->band_p) + 1 : a + 1;
    }
    for (int i = 0; i < n; i++) rs->K.Kp[i + 1] += rs->K.Kp[i];
    for (int g = 0; g < rs->G; g++) {
        const int *r = rs->grow + rs->gp[g];
        int m = rs->gp[g + 1] - rs->gp[g];
        int band = rs->gband && rs->gband[g], innov = rs->ginnov && rs->ginnov[g];
        for (int a = 0; a < m; a++) {
            int *dst = rs->K.Kj + rs->K.Kp[r[a]], b0 = innov ? a : rs->banded ? (a > 0 ? a - 1 : 0) :
                band ? (a > rs->band_p ? a - rs->band_p : 0) : 0;
            for (int b = b0; b <= a; b++) *dst++ = r[b];
        }
    }
    rs->nnz = (int) nnz;
    rs->K.Kx = R_Calloc((size_t) nnz + 1, double);
    rs->K.nrho = rs->nrho;
    rs->K.dKx = R_Calloc((size_t) nnz * rs->nrho + 1, double);
    rs->K.dlogdet = R_Calloc(rs->nrho + 1, double);
    rs->K.skip = rs->iskip;
    rs->logs = R_Calloc(n, double);
    rs->dlogs = R_Calloc((size_t) n * rs->nvarpar + 1, double);
}

void lmm_resid_free(lmm_resid *rs)
{
    if (!rs) return;
    int **ip[] = {&rs->gp, &rs->grow, &rs->K.Kp, &rs->K.Kj, &rs->var_off, &rs->gband,
                  &rs->ginnov, &rs->iskip};
    for (size_t i = 0; i < sizeof(ip) / sizeof(ip[0]); i++) if (*ip[i]) { R_Free(*ip[i]); *ip[i] = NULL; }
    double **dp[] = {&rs->K.Kx, &rs->K.dKx, &rs->K.dlogdet, &rs->logs, &rs->dlogs, &rs->rho_cur,
                     &rs->itab};
    for (size_t i = 0; i < sizeof(dp) / sizeof(dp[0]); i++) if (*dp[i]) { R_Free(*dp[i]); *dp[i] = NULL; }
    if (rs->var) R_Free(rs->var);
    lmm_pieces_free(rs->pieces);
    R_Free(rs);
}

/* log s_i of every row (and d log s_i / d par for the variance parameters); 1 if infeasible */
static int variance_logs(lmm_resid *rs, const double *rho, int deriv)
{
    int n = rs->n;
    memset(rs->logs, 0, n * sizeof(double));
    for (int c = 0; c < rs->nvar; c++) {
        const lmm_var *v = rs->var + c;
        int off = rs->var_off[c];                          /* first parameter in rho */
        double **dl = (double **) R_alloc(v->npar + 1, sizeof(double *));
        for (int k = 0; k < v->npar; k++) dl[k] = rs->dlogs + (size_t) (off - rs->ncor + k) * n;
        if (lmm_var_family(v->code)(v, rho + off, rs->logs, deriv ? dl : NULL)) return 1;
    }
    for (int i = 0; i < n; i++) if (!R_FINITE(rs->logs[i])) return 1;
    return 0;
}

/* Markov rows: r = phi^lag and dr / dz for the unconstrained parameter z (cor_ar1.c's maps:
   AR(1) phi = tanh z; CAR(1) phi = c^(1/s), c = 1 / (1 + e^-z), r = c^(lag/s)). */
void lmm_markov_r(const lmm_cor *c, double phi, double z, double lag, double *r, double *dr)
{
    if (c->code == LMM_COR_AR1) {
        *r = pow(phi, lag);
        *dr = lag * (lag == 1 ? 1.0 : pow(phi, lag - 1)) * (1 - phi * phi);
    } else {
        double s = c->ndopt > 0 ? c->dopt[0] : 1.0, cs = 1 / (1 + exp(-z));
        *r = pow(cs, lag / s);
        *dr = (lag / s) * (*r) * (1 - cs);
    }
}

/* The Markov (bidiagonal) groups' K and dK for the correlation parameter (index 0). */
static int whiten_markov(lmm_resid *rs, const double *rho, int deriv)
{
    double phi;
    if (lmm_ar1_phi(&rs->cor, rho, &phi)) return 1;
    int nnz = rs->nnz;
    for (int g = 0; g < rs->G; g++) {
        const int *r = rs->grow + rs->gp[g];
        int m = rs->gp[g + 1] - rs->gp[g];
        for (int a = 0; a < m; a++) {
            int i = r[a], e = rs->K.Kp[i + 1] - 1;          /* the diagonal entry */
            double si = lmm_inv_sd(rs, i);
            if (a == 0) {
                rs->K.Kx[e] = si;
                if (deriv) rs->K.dKx[e] = 0;
                continue;
            }
            int j = r[a - 1];
            double lag = rs->cor.cov[i] - rs->cor.cov[j], rr, dr;
            lmm_markov_r(&rs->cor, phi, rho[0], lag, &rr, &dr);
            double one_m = 1 - rr * rr;
            if (!(one_m > 0)) return 1;
            double bii = 1 / sqrt(one_m), sj = lmm_inv_sd(rs, j);
            rs->K.Kx[e] = bii * si;
            rs->K.Kx[e - 1] = -rr * bii * sj;
            if (deriv) {
                double b3 = bii * bii * bii;
                rs->K.dKx[e] = rr * b3 * dr * si;
                rs->K.dKx[e - 1] = -b3 * dr * sj;
            }
        }
    }
    (void) nnz;
    return 0;
}

int lmm_richardson(lmm_fd_fn F, const void *ctx, const double *par, int npar, int k, size_t len,
                   double *D, double *work)
{
    double *p = (double *) R_alloc(npar, sizeof(double));
    double h = 1e-3 * fmax(1.0, fabs(par[k]));
    const double step[] = {h, -h, 2 * h, -2 * h}, wt[] = {8, -8, -1, 1};
    memset(D, 0, len * sizeof(double));
    for (int s = 0; s < 4; s++) {
        memcpy(p, par, npar * sizeof(double));
        p[k] += step[s];
        if (F(ctx, p, work)) return 1;
        for (size_t e = 0; e < len; e++) D[e] += wt[s] * work[e];
    }
    for (size_t e = 0; e < len; e++) D[e] /= 12 * h;
    return 0;
}

/* A dense group's R_g as a function of the correlation parameters (for lmm_richardson) */
typedef struct { const lmm_cor *cor; lmm_cor_fn fn; int m; const int *rows; } group_cor;

static int group_cor_at(const void *ctx, const double *par, double *R)
{
    const group_cor *g = (const group_cor *) ctx;
    return g->fn(g->cor, g->m, g->rows, par, R);
}

/* One dense group: B = L^{-1} into Bg (m x m, lower), and, with deriv, dB_k for the correlation
   parameters into dBg + k m^2.  1 if R_g is not positive definite. */
static int dense_group(lmm_resid *rs, lmm_cor_fn fn, int m, const int *rows, const double *rho,
                       int deriv, double *Bg, double *dBg, double *work)
{
    size_t mm = (size_t) m * m;
    int info = 0;
    if (fn(&rs->cor, m, rows, rho, Bg)) return 1;
    F77_CALL(dpotrf)("L", &m, Bg, &m, &info FCONE);
    if (info) return 1;
    F77_CALL(dtrtri)("L", "N", &m, Bg, &m, &info FCONE FCONE);
    if (info) return 1;
    for (int b = 0; b < m; b++) for (int a = 0; a < b; a++) Bg[a + (size_t) b * m] = 0;
    if (!deriv) return 0;
    double *dR = work, *T = work + mm, *U = work + 2 * mm, one = 1, zero = 0;
    for (int k = 0; k < rs->ncor; k++) {
        group_cor g = {&rs->cor, fn, m, rows};
        if (lmm_richardson(group_cor_at, &g, rho, rs->ncor, k, mm, dR, T)) return 1;
        /* U = B dR B', then Phi(U), then dB = -Phi(U) B */
        F77_CALL(dgemm)("N", "N", &m, &m, &m, &one, Bg, &m, dR, &m, &zero, T, &m FCONE FCONE);
        F77_CALL(dgemm)("N", "T", &m, &m, &m, &one, T, &m, Bg, &m, &zero, U, &m FCONE FCONE);
        for (int b = 0; b < m; b++) {
            for (int a = 0; a < b; a++) U[a + (size_t) b * m] = 0;
            U[b + (size_t) b * m] *= 0.5;
        }
        double *dB = dBg + k * mm, mone = -1;
        F77_CALL(dgemm)("N", "N", &m, &m, &m, &mone, U, &m, Bg, &m, &zero, dB, &m FCONE FCONE);
    }
    return 0;
}

/* The dense groups' K and dK for the correlation parameters (band and innovations groups by
   their tables). */
static int whiten_dense(lmm_resid *rs, const double *rho, int deriv)
{
    lmm_cor_fn fn = lmm_cor_family(rs->cor.code);
    int mmax = 0, nnz = rs->nnz, w = rs->band_p + 1;
    double *T = NULL, *dT = NULL;
    if (rs->band_p) {
        T = (double *) R_alloc((size_t) w * w * (1 + (deriv ? rs->ncor : 0)), sizeof(double));
        dT = deriv ? T + w * w : NULL;
        if (lmm_band_table(rs->band_p, rho, T) || (deriv && lmm_band_dtable(rs->band_p, rho, dT)))
            return 1;
    }
    if (rs->ginnov && lmm_innov_tables(rs, rho, deriv)) return 1;
    for (int g = 0; g < rs->G; g++)
        if (!(rs->gband && rs->gband[g]) && !(rs->ginnov && rs->ginnov[g]) &&
            rs->gp[g + 1] - rs->gp[g] > mmax)
            mmax = rs->gp[g + 1] - rs->gp[g];
    size_t mm = (size_t) mmax * mmax;
    double *Bg = (double *) R_alloc(mm * (1 + (deriv ? rs->ncor : 0) + 3), sizeof(double));
    double *dBg = Bg + mm, *work = dBg + (deriv ? rs->ncor : 0) * mm;
    for (int g = 0; g < rs->G; g++) {
        const int *r = rs->grow + rs->gp[g];
        int m = rs->gp[g + 1] - rs->gp[g];
        if (g % 1024 == 0) R_CheckUserInterrupt();
        if (rs->gband && rs->gband[g]) { lmm_band_group(rs, g, T, dT); continue; }
        if (rs->ginnov && rs->ginnov[g]) { lmm_innov_group(rs, g, deriv); continue; }
        if (dense_group(rs, fn, m, r, rho, deriv, Bg, dBg, work)) return 1;
        for (int a = 0; a < m; a++) {
            int e0 = rs->K.Kp[r[a]];
            for (int b = 0; b <= a; b++) {
                double sj = lmm_inv_sd(rs, r[b]);
                rs->K.Kx[e0 + b] = Bg[a + (size_t) b * m] * sj;
                if (deriv)
                    for (int k = 0; k < rs->ncor; k++)
                        rs->K.dKx[(size_t) k * nnz + e0 + b] =
                            dBg[k * (size_t) m * m + a + (size_t) b * m] * sj;
            }
        }
    }
    return 0;
}

/* K at rho (and dK, dlogdet with deriv); 1 if rho is outside the parameter space. */
int lmm_resid_whiten(lmm_resid *rs, const double *rho, int deriv)
{
    const void *vmax = vmaxget();
    int bad = variance_logs(rs, rho, deriv), nnz = rs->nnz;
    if (!bad) {
        if (!rs->cor_code) {
            for (int i = 0; i < rs->n; i++) rs->K.Kx[rs->K.Kp[i]] = lmm_inv_sd(rs, i);
        } else if (rs->banded) bad = whiten_markov(rs, rho, deriv);
        else bad = whiten_dense(rs, rho, deriv);
    }
    vmaxset(vmax);
    if (bad) return 1;
    double ld = 0, part = 0;                 /* two-level sums, as crossprod.c's [X y] block */
    for (int i = 0; i < rs->n; i++) {
        if (i % 1024 == 0) { ld += part; part = 0; }
        part += log(fabs(rs->K.Kx[rs->K.Kp[i + 1] - 1]));
    }
    rs->K.logdet = 2 * (ld + part);
    if (!deriv) return 0;
    for (int k = rs->ncor; k < rs->nrho; k++) {                /* variance parameters */
        const double *dl = rs->dlogs + (size_t) (k - rs->ncor) * rs->n;
        double *dK = rs->K.dKx + (size_t) k * nnz;
        for (int i = 0; i < rs->n; i++)
            for (int e = rs->K.Kp[i]; e < rs->K.Kp[i + 1]; e++)
                dK[e] = -rs->K.Kx[e] * dl[rs->K.Kj[e]];
    }
    for (int k = 0; k < rs->nrho; k++) {
        const double *dK = rs->K.dKx + (size_t) k * nnz;
        double sum = 0, part = 0;
        for (int i = 0; i < rs->n; i++) {
            if (i % 1024 == 0) { sum += part; part = 0; }
            int e = rs->K.Kp[i + 1] - 1;
            part += dK[e] / rs->K.Kx[e];
        }
        rs->K.dlogdet[k] = 2 * (sum + part);
    }
    return 0;
}
