/*
 * residual_innovations.c -- corARMA(p, q), q > 0, in O(n) per evaluation: the innovations
 * algorithm on the transformed process (Brockwell & Davis, Time Series: Theory and Methods,
 * sections 5.2-5.3; Ansley 1979), for groups observed at consecutive integer times and nested in
 * the random effects (every row of the group touches the same level of each term).
 *
 * The model (cor_arma.c): X_a, a = 0 .. m-1, stationary ARMA(p, q) scaled to unit variance, with
 * autocorrelation rho_h, coefficients phi_k, theta_l (theta_0 = 1) and innovation variance
 * sigma^2 = 1 / gamma_0 (gamma_0: the variance for unit innovations).  With r = max(p, q),
 *     W_a = X_a                                  (a < r),
 *     W_a = X_a - sum_{k=1}^p phi_k X_{a-k}      (a >= r),    W = T X, T unit lower triangular,
 * has the covariance kappa(a, b) (a >= b, h = a - b; B&D (5.3.5)):
 *     a < r:             rho_h,
 *     b < r <= a:        rho_h - sum_k phi_k rho_|h-k|       (0 for h > q),
 *     b >= r:            sigma^2 sum_{l=0}^{q-h} theta_l theta_{l+h}   (0 for h > q).
 * The innovations algorithm gives e_a = W_a - sum_{j=1}^{J_a} theta_{a,j} e_{a-j}, independent
 * with variances v_a, where J_a = a for a < r and q after (kappa is banded there):
 *     C_j = Cov(W_a, e_{a-j}) = kappa(a, a-j) - sum_{i=1}^{J_{a-j}} theta_{a-j,i} C_{j+i}
 *           (C_{j'} = 0 for j' > J_a), for j = J_a .. 1;
 *     theta_{a,j} = C_j / v_{a-j},   v_a = kappa(a, a) - sum_j theta_{a,j}^2 v_{a-j}.
 * So W = Theta e (Theta unit lower triangular, banded), R_g = T^-1 Theta D Theta' T^-T, and the
 * whitening K_g = D^-1/2 Theta^-1 T S^-1 W^1/2 applied to the raw rows is the recursion
 *     u_a = sqrt(w_i) / s_i raw_i,   (T u)_a as W,   e_a = (T u)_a - sum_j theta_{a,j} e_{a-j},
 *     g_a = e_a / sqrt(v_a).
 * K_g is dense (g_a depends on all earlier rows), so it is never stored: K keeps only its
 * diagonal K_aa = sqrt(w_i) / (s_i sqrt(v_a)) (T and Theta^-1 are unit triangular), which gives
 * log|V^-1| = 2 sum log K_aa and its derivatives in residual.c, and the rows are flagged (K.skip)
 * so crossprod.c passes over them.  Here, per group, the whitened rows are dense vectors over the
 * group's local columns (its terms' nodes and the [X y] node: w = sum p_t + p + 1), the products
 * sum_a g_a g_a' are accumulated in a local w x w matrix and added to A's node blocks at the
 * group's end: O(m ((p + q) w + w^2)).
 *
 * The tables (phi, theta_{a,j}, 1 / sqrt(v_a)) depend on the group only through its length, so
 * one table of the longest group serves all.  Their derivatives in the correlation parameters:
 * Richardson-extrapolated central differences of the table (h = 1e-3, error O(h^4) + rounding,
 * as residual.c's dense path).  The derivative pass differentiates the recursion,
 *     de_a = d(T u)_a - sum_j (d theta_{a,j} e_{a-j} + theta_{a,j} de_{a-j}),
 *     d(T u)_a = du_a - sum_k (d phi_k u_{a-k} + phi_k du_{a-k}),
 *     dg_a = de_a / sqrt(v_a) + e_a d(1 / sqrt(v_a)),
 * with du_a = -u_a d log s_i / d par for variance parameters (0 for correlation ones), and
 * tr(M dA_k) = 2 sum_a g_a' M_loc dg_a, M_loc the group's local block of M gathered once.
 */
#include "residual.h"
#include <math.h>
#include <string.h>

typedef struct {
    int p, q, r, M;        /* orders, r = max(p, q); rows in the table */
    size_t size;           /* doubles per table: phi[p], theta[M r] (a r + j - 1), s[M] */
} innov_dims;

static innov_dims dims_of(const lmm_resid *rs)
{
    innov_dims d;
    d.p = rs->cor.iopt[0];
    d.q = rs->cor.iopt[1];
    d.r = d.p > d.q ? d.p : d.q;
    d.M = rs->innov_m;
    d.size = (size_t) d.p + (size_t) d.M * d.r + d.M;
    return d;
}

/* ---- setup ------------------------------------------------------------------------------- */

/* Groups at consecutive integer times whose rows all touch the same level of each of the k
   terms; their rows flagged in iskip; the tables allocated.  None: ginnov stays NULL. */
void lmm_innov_groups(lmm_resid *rs, int k, const int *const *refs)
{
    int *gi = R_Calloc(rs->G + 1, int), any = 0, M = 0;
    for (int g = 0; g < rs->G; g++) {
        int ok = 1;
        const int *r = rs->grow + rs->gp[g];
        int m = rs->gp[g + 1] - rs->gp[g];
        for (int a = 1; a < m && ok; a++) {
            ok = rs->cor.cov[r[a]] - rs->cor.cov[r[a - 1]] == 1.0;
            for (int t = 0; t < k && ok; t++) ok = refs[t][r[a]] == refs[t][r[0]];
        }
        gi[g] = ok;
        if (ok) { any = 1; if (m > M) M = m; }
    }
    if (!any) { R_Free(gi); return; }
    rs->ginnov = gi;
    rs->iskip = R_Calloc(rs->n + 1, int);
    for (int g = 0; g < rs->G; g++)
        if (gi[g]) for (int a = rs->gp[g]; a < rs->gp[g + 1]; a++) rs->iskip[rs->grow[a]] = 1;
    rs->innov_m = M;
    innov_dims d = dims_of(rs);
    rs->itab = R_Calloc(d.size * (1 + rs->ncor) + 1, double);
}

/* ---- tables ------------------------------------------------------------------------------ */

typedef struct {
    int p, q, r;
    const double *phi, *theta, *rho;
    double sigma2;
} arma_model;

/* kappa(a, b), a >= b: the covariance of the transformed process (header) */
static double kappa(const arma_model *A, int a, int b)
{
    int h = a - b;
    if (a < A->r) return A->rho[h];
    if (h > A->q) return 0;
    if (b < A->r) {
        double c = A->rho[h];
        for (int k = 1; k <= A->p; k++) c -= A->phi[k - 1] * A->rho[h > k ? h - k : k - h];
        return c;
    }
    double c = 0;                                    /* theta_0 = 1 */
    for (int l = 0; l + h <= A->q; l++)
        c += (l == 0 ? 1.0 : A->theta[l - 1]) * (l + h == 0 ? 1.0 : A->theta[l + h - 1]);
    return A->sigma2 * c;
}

/* The table at par (layout in innov_dims); v, C: workspaces of M and r + 2.  1 if infeasible. */
static int innov_table(const innov_dims *d, const double *par, double *T, double *v, double *C)
{
    int p = d->p, q = d->q, r = d->r, M = d->M;
    double *theta = (double *) R_alloc(q + 1, sizeof(double));
    double *rho = (double *) R_alloc(r + 1, sizeof(double)), g0;
    if (lmm_arma_model(p, q, par, T, theta, rho, &g0)) return 1;
    arma_model A = {p, q, r, T, theta, rho, 1 / g0};
    double *th = T + p, *s = th + (size_t) M * r;
    memset(th, 0, (size_t) M * r * sizeof(double));
    for (int a = 0; a < M; a++) {
        int J = a < r ? a : q;
        for (int j = J; j >= 1; j--) {
            int b = a - j, Jb = b < r ? b : q;
            double c = kappa(&A, a, b);
            for (int i = 1; i <= Jb && j + i <= J; i++) c -= th[(size_t) b * r + i - 1] * C[j + i];
            C[j] = c;
            th[(size_t) a * r + j - 1] = c / v[b];
        }
        double va = kappa(&A, a, a);
        for (int j = 1; j <= J; j++) {
            double t = th[(size_t) a * r + j - 1];
            va -= t * t * v[a - j];
        }
        if (!(va > 0) || !R_FINITE(va)) return 1;
        v[a] = va;
        s[a] = 1 / sqrt(va);
    }
    return 0;
}

/* The table as a function of the correlation parameters (for lmm_richardson) */
typedef struct { const innov_dims *d; double *v, *C; } table_ctx;

static int table_at(const void *ctx, const double *par, double *T)
{
    const table_ctx *c = (const table_ctx *) ctx;
    return innov_table(c->d, par, T, c->v, c->C);
}

/* The table at rho and, with deriv, its derivatives in the correlation parameters (Richardson
   differences, lmm_richardson).  1 if infeasible. */
int lmm_innov_tables(lmm_resid *rs, const double *rho, int deriv)
{
    innov_dims d = dims_of(rs);
    double *v = (double *) R_alloc(d.M + 1, sizeof(double));
    double *C = (double *) R_alloc(d.r + 2, sizeof(double));
    if (innov_table(&d, rho, rs->itab, v, C)) return 1;
    if (!deriv) return 0;
    double *Tk = (double *) R_alloc(d.size + 1, sizeof(double));
    table_ctx c = {&d, v, C};
    for (int k = 0; k < rs->ncor; k++)
        if (lmm_richardson(table_at, &c, rho, rs->ncor, k, d.size, rs->itab + (1 + k) * d.size, Tk))
            return 1;
    return 0;
}

/* Group g's diagonal of K (its only entries) and, with deriv, their correlation derivatives. */
void lmm_innov_group(lmm_resid *rs, int g, int deriv)
{
    innov_dims d = dims_of(rs);
    size_t s0 = d.p + (size_t) d.M * d.r;               /* s[a] = 1 / sqrt(v_a) */
    const int *r = rs->grow + rs->gp[g];
    int m = rs->gp[g + 1] - rs->gp[g];
    for (int a = 0; a < m; a++) {
        int e = rs->K.Kp[r[a]];
        double si = lmm_inv_sd(rs, r[a]);
        rs->K.Kx[e] = rs->itab[s0 + a] * si;
        if (deriv)
            for (int k = 0; k < rs->ncor; k++)
                rs->K.dKx[(size_t) k * rs->nnz + e] = rs->itab[(1 + k) * d.size + s0 + a] * si;
    }
}

/* ---- the recursive cross-product ---------------------------------------------------------- */

/* A group's local columns: block b (terms t = 0..k-1, then [X y]) is node[b], at off[b]. */
typedef struct {
    int nb, w;
    int *node, *off;
} local_cols;

static local_cols local_alloc(const lmm_model *m)
{
    local_cols L;
    L.nb = m->k + 1;
    L.node = (int *) R_alloc(L.nb, sizeof(int));
    L.off = (int *) R_alloc(L.nb + 1, sizeof(int));
    L.off[0] = 0;
    for (int t = 0; t < m->k; t++) L.off[t + 1] = L.off[t] + m->pt[t];
    L.off[m->k + 1] = L.off[m->k] + m->p + 1;
    L.w = L.off[m->k + 1];
    L.node[m->k] = m->N;
    return L;
}

static void local_nodes(const lmm_model *m, const lmm_resid *rs, int row, local_cols *L)
{
    for (int t = 0; t < m->k; t++) L->node[t] = m->node0[t] + rs->refs[t][row];
}

/* u = sc (raw row i) over the local columns ([X y] in standardise.c's coordinates) */
static void raw_row(const lmm_model *m, const lmm_resid *rs, const local_cols *L, int i,
                    double sc, double *u, double *xs)
{
    for (int t = 0; t < m->k; t++)
        for (int j = 0; j < m->pt[t]; j++) u[L->off[t] + j] = sc * rs->Xt[t][i + (size_t) j * m->n];
    lmm_std_row(m, rs->X, rs->y, i, xs);
    for (int j = 0; j <= m->p; j++) u[L->off[m->k] + j] = sc * xs[j];
}

/* The whitening recursion at row a: e = (T u)_a - sum_j theta_{a,j} e_{a-j} from the rings U,
   E (slot a mod (r + 1); U's slot a holds u_a). */
static void recur(const innov_dims *d, const double *T, int a, int w, const double *U,
                  double *E)
{
    int R1 = d->r + 1, J = a < d->r ? a : d->q;
    const double *u = U + (size_t) (a % R1) * w;
    double *e = E + (size_t) (a % R1) * w;
    memcpy(e, u, w * sizeof(double));
    if (a >= d->r)
        for (int k = 1; k <= d->p; k++) {
            const double *uk = U + (size_t) ((a - k) % R1) * w, f = T[k - 1];
            for (int c = 0; c < w; c++) e[c] -= f * uk[c];
        }
    const double *th = T + d->p + (size_t) a * d->r;
    for (int j = 1; j <= J; j++) {
        const double *ej = E + (size_t) ((a - j) % R1) * w, f = th[j - 1];
        for (int c = 0; c < w; c++) e[c] -= f * ej[c];
    }
}

/* A's node blocks += the local S (lower triangle held), as crossprod.c's add_outer: blocks
   I >= J, dense diagonal blocks lower triangle only. */
static void scatter(lmm_model *m, const local_cols *L, const double *S)
{
    int w = L->w;
    for (int bi = 0; bi < L->nb; bi++)
        for (int bj = 0; bj < L->nb; bj++) {
            int I = L->node[bi], J = L->node[bj], ld;
            if (I < J) continue;
            double *B = lmm_block_ptr(m, m->Ax, m->Ad, I, J, &ld);
            if (!B) error(_("internal error: block (%d, %d) outside the pattern"), I, J);
            int dense_diag = (I == J && J >= m->Ns);
            for (int c = 0; c < m->size[J]; c++) {
                double *Bc = lmm_block_col(m, B, ld, m->Ad, I, J, c);   /* packed: per column */
                for (int r = dense_diag ? c : 0; r < m->size[I]; r++) {
                    int x = L->off[bi] + r, y = L->off[bj] + c;
                    Bc[r] += x >= y ? S[x + (size_t) y * w] : S[y + (size_t) x * w];
                }
            }
        }
}

void lmm_innov_crossprod(lmm_model *m, const lmm_resid *rs)
{
    innov_dims d = dims_of(rs);
    local_cols L = local_alloc(m);
    int w = L.w, R1 = d.r + 1;
    const void *vmax = vmaxget();
    double *U = (double *) R_alloc((size_t) 2 * R1 * w + (size_t) w * w + m->p + 1, sizeof(double));
    double *E = U + (size_t) R1 * w, *S = E + (size_t) R1 * w, *xs = S + (size_t) w * w;
    const double *T = rs->itab, *s = T + d.p + (size_t) d.M * d.r;
    for (int g = 0; g < rs->G; g++) {
        if (!rs->ginnov[g]) continue;
        const int *row = rs->grow + rs->gp[g];
        int mg = rs->gp[g + 1] - rs->gp[g];
        if (g % 64 == 0) R_CheckUserInterrupt();
        local_nodes(m, rs, row[0], &L);
        memset(S, 0, (size_t) w * w * sizeof(double));
        for (int a = 0; a < mg; a++) {
            raw_row(m, rs, &L, row[a], lmm_inv_sd(rs, row[a]), U + (size_t) (a % R1) * w, xs);
            recur(&d, T, a, w, U, E);
            const double *e = E + (size_t) (a % R1) * w;
            double s2 = s[a] * s[a];
            for (int c = 0; c < w; c++) {
                double ec = s2 * e[c];
                for (int r = c; r < w; r++) S[r + (size_t) c * w] += e[r] * ec;
            }
        }
        scatter(m, &L, S);
    }
    vmaxset(vmax);
}

/* ---- the derivative pass ------------------------------------------------------------------ */

/* M_loc = the group's local block of M, full (as crossprod.c's bilinear reads M) */
static void gather(const lmm_model *m, const double *Mx, const double *Md, const local_cols *L,
                   double *Ml)
{
    int w = L->w;
    for (int bi = 0; bi < L->nb; bi++)
        for (int bj = 0; bj < L->nb; bj++) {
            int I = L->node[bi], J = L->node[bj], ld, tr = I < J;
            if ((tr ? I : J) >= m->Ns) {                  /* the dense block (residual.h) */
                int Ib = tr ? J : I, Jb = tr ? I : J;
                for (int c = 0; c < m->size[J]; c++)
                    for (int r = 0; r < m->size[I]; r++)
                        Ml[L->off[bi] + r + (size_t) (L->off[bj] + c) * w] =
                            tr ? lmm_md_entry(m, Md, Ib, Jb, c, r)
                               : lmm_md_entry(m, Md, Ib, Jb, r, c);
                continue;
            }
            const double *B = tr ? lmm_block_ptr(m, (double *) Mx, (double *) Md, J, I, &ld) :
                lmm_block_ptr(m, (double *) Mx, (double *) Md, I, J, &ld);
            if (!B) error(_("internal error: block (%d, %d) outside the pattern"), I, J);
            for (int c = 0; c < m->size[J]; c++)
                for (int r = 0; r < m->size[I]; r++)
                    Ml[L->off[bi] + r + (size_t) (L->off[bj] + c) * w] =
                        tr ? B[c + (size_t) r * ld] : B[r + (size_t) c * ld];
        }
}

/* de_a for parameter k into its ring dE (header): dU's slot a already holds du_a; dT the
   table's derivative (NULL for variance parameters). */
static void drecur(const innov_dims *d, const double *T, const double *dT, int a, int w,
                   const double *U, const double *E, const double *dU, double *dE)
{
    int R1 = d->r + 1, J = a < d->r ? a : d->q;
    double *de = dE + (size_t) (a % R1) * w;
    memcpy(de, dU + (size_t) (a % R1) * w, w * sizeof(double));
    if (a >= d->r)
        for (int k = 1; k <= d->p; k++) {
            size_t sl = (size_t) ((a - k) % R1) * w;
            double f = T[k - 1], df = dT ? dT[k - 1] : 0;
            for (int c = 0; c < w; c++) de[c] -= f * dU[sl + c] + df * U[sl + c];
        }
    size_t t0 = d->p + (size_t) a * d->r;
    for (int j = 1; j <= J; j++) {
        size_t sl = (size_t) ((a - j) % R1) * w;
        double f = T[t0 + j - 1], df = dT ? dT[t0 + j - 1] : 0;
        for (int c = 0; c < w; c++) de[c] -= f * dE[sl + c] + df * E[sl + c];
    }
}

void lmm_innov_contract(const lmm_model *m, const lmm_resid *rs, const double *Mx,
                        const double *Md, double *out)
{
    innov_dims d = dims_of(rs);
    local_cols L = local_alloc(m);
    int w = L.w, R1 = d.r + 1, nr = rs->nrho, nc = rs->ncor, n = rs->n;
    size_t ring = (size_t) R1 * w, s0 = d.p + (size_t) d.M * d.r;
    const void *vmax = vmaxget();
    double *U = (double *) R_alloc(ring * (2 + 2 * (size_t) nr) + (size_t) w * (w + 2) + m->p + 1,
                                   sizeof(double));
    double *E = U + ring, *dU = E + ring, *dE = dU + ring * nr, *Ml = dE + ring * nr,
        *h = Ml + (size_t) w * w, *xs = h + w;
    const double *T = rs->itab;
    for (int g = 0; g < rs->G; g++) {
        if (!rs->ginnov[g]) continue;
        const int *row = rs->grow + rs->gp[g];
        int mg = rs->gp[g + 1] - rs->gp[g];
        if (g % 64 == 0) R_CheckUserInterrupt();
        local_nodes(m, rs, row[0], &L);
        gather(m, Mx, Md, &L, Ml);
        for (int a = 0; a < mg; a++) {
            int i = row[a];
            size_t sl = (size_t) (a % R1) * w;
            raw_row(m, rs, &L, i, lmm_inv_sd(rs, i), U + sl, xs);
            recur(&d, T, a, w, U, E);
            const double *e = E + sl;
            double sa = T[s0 + a];
            for (int r = 0; r < w; r++) {                   /* h = M_loc g_a */
                double v = 0;
                for (int c = 0; c < w; c++) v += Ml[r + (size_t) c * w] * e[c];
                h[r] = sa * v;
            }
            for (int k = 0; k < nr; k++) {
                double *dUk = dU + ring * k, *dEk = dE + ring * k;
                const double *dT = k < nc ? T + (1 + k) * d.size : NULL;
                if (k < nc) memset(dUk + sl, 0, w * sizeof(double));
                else {
                    double dl = rs->dlogs[(size_t) (k - nc) * n + i];
                    for (int c = 0; c < w; c++) dUk[sl + c] = -dl * U[sl + c];
                }
                drecur(&d, T, dT, a, w, U, E, dUk, dEk);
                double ds = dT ? dT[s0 + a] : 0, acc = 0;
                for (int c = 0; c < w; c++) acc += h[c] * (sa * dEk[sl + c] + ds * e[c]);
                out[k] += 2 * acc;
            }
        }
    }
    vmaxset(vmax);
}

/* ---- K applied to vectors, and its inverse ------------------------------------------------- */

/* Group g (a recursion group) of K V (inverse 0) or of the solution of K X = V (inverse 1), for
   the ncol columns of V (n rows, column-major), into out; the tables at the current rho.
   Forward: g_a = e_a / sqrt(v_a) with the recursion above on u_a = sqrt(w_i) / s_i v_i.
   Inverse: e_a = sqrt(v_a) z_a, W_a = e_a + sum_j theta_{a,j} e_{a-j}, u_a = W_a (a < r) or
   W_a + sum_k phi_k u_{a-k}, x_i = u_a s_i / sqrt(w_i).  O(m (p + q) ncol). */
void lmm_innov_apply(const lmm_resid *rs, int g, int ncol, const double *V, int inverse,
                     double *out)
{
    innov_dims d = dims_of(rs);
    size_t s0 = d.p + (size_t) d.M * d.r;
    const double *T = rs->itab;
    const int *r = rs->grow + rs->gp[g];
    int m = rs->gp[g + 1] - rs->gp[g], R1 = d.r + 1, n = rs->n;
    double *U = (double *) R_alloc((size_t) R1 * ncol * 2, sizeof(double)), *E = U + (size_t) R1 * ncol;
    for (int a = 0; a < m; a++) {
        int i = r[a];
        double si = lmm_inv_sd(rs, i), sv = T[s0 + a];          /* sqrt(w)/s, 1/sqrt(v_a) */
        double *u = U + (size_t) (a % R1) * ncol, *e = E + (size_t) (a % R1) * ncol;
        if (!inverse) {
            for (int c = 0; c < ncol; c++) u[c] = si * V[i + (size_t) c * n];
            recur(&d, T, a, ncol, U, E);
            for (int c = 0; c < ncol; c++) out[i + (size_t) c * n] = e[c] * sv;
            continue;
        }
        int J = a < d.r ? a : d.q;
        const double *th = T + d.p + (size_t) a * d.r;
        for (int c = 0; c < ncol; c++) {
            double ec = V[i + (size_t) c * n] / sv, w = ec;
            for (int j = 1; j <= J; j++) w += th[j - 1] * E[(size_t) ((a - j) % R1) * ncol + c];
            if (a >= d.r)
                for (int k = 1; k <= d.p; k++) w += T[k - 1] * U[(size_t) ((a - k) % R1) * ncol + c];
            e[c] = ec;
            u[c] = w;
            out[i + (size_t) c * n] = w / si;
        }
    }
}
