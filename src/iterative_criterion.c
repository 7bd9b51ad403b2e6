/*
 * iterative_criterion.c -- the profiled criterion (criterion.c's formula), its gradient in theta
 * and the conditional modes, from one batch of preconditioned CG solves (iterative.h).
 *
 * The Z columns are split into L (the large terms) and S (the columns of the terms with few
 * levels, at most it->ns of them; iterative.c chooses).  As in the exact engine's dense block,
 * S and [X y] form a dense "tail" of order nt = ns + p + 1, and the L columns are eliminated --
 * here by conjugate gradients instead of a factor:
 *
 *     Omega = [Omega_LL G_L; G_L' Hh],   G_L = [Omega_LS, B_L],   Hh = [Omega_SS B_S; B_S' H]
 *     T = Hh - G_L' Omega_LL^{-1} G_L = R'R   (nt x nt, dense)
 *     log|Omega_Z| = log|Omega_LL| + log|T_SS|,   log|R_X|^2 and r^2 from R's next rows.
 *
 * The solves Omega_LL Y = G_L (tolerance it->tol) make T exact to that tolerance; only
 * log|Omega_LL| is estimated, by stochastic Lanczos quadrature on probes supported on L
 * (iterative_slq.c), and it does not depend on the theta of the S terms.  The solves run on all
 * q columns with lambda set to 0 on S (so that Omega' = diag(Omega_LL, I)).
 *
 * Gradient.  With Ah = [C F; F' H], Th = diag(Lambda, I) and Yh = [-Y; I_tail] (q + p + 1 rows:
 * L rows -Y, the tail's own rows the identity), dT = Yh' dOmega_aug Yh, dOmega_aug = E_t'Ah Th +
 * Th'Ah E_t (E_t = D_t, the columns of term t), so for a symmetric weight W_T,
 *     tr(W_T dT) = 2 sum_{j in t} (Yh W_T)_j . (C Lambda Yh_Z + F Yh_XY)_j.
 * The criterion's T-part is log|T_[ns]| + REML log|R_X|^2 + (n - p REML) log r^2, with
 * log|R_X|^2 = log|T_[ns+p]| - log|T_[ns]| and r^2 = |T| / |T_[ns+p]| (T_[k]: leading k x k), so
 *     W_T = (1 - REML) T_[ns]^{-1} + (REML - nmp) T_[ns+p]^{-1} + nmp T^{-1}   (padded).
 * log|Omega_LL|'s part, of log|P| + (1/K) sum_k z_k' log(M) z_k, M = P^{-1/2} Omega_LL P^{-1/2},
 * is d log|P| + (1/K) sum_k z_k' M^{-1} dM z_k (Hutchinson with the same probes), where with
 * E = -P^{-1} dP / 2, zo = P^{-1/2} z and x = Omega_LL^{-1} P^{1/2} z:
 *     z' M^{-1} dM z = x' E Omega zo + z'Ez + x' dOmega zo,    z'Ez = tr E,
 *     x' dOmega zo = sum_{j in t} (x_j (C Lambda zo)_j + zo_j (C Lambda x)_j).
 * The spread of the K probes' terms gives the gradient's Monte Carlo standard error.
 */
#include "iterative.h"
#include <string.h>

static double *dalloc(size_t n) { return (double *) R_alloc(n ? n : 1, sizeof(double)); }

typedef struct {
    lmm_model *m;
    lmm_iter *it;
    int q, p1, p, K, ns, nt, nc;    /* nt = ns + p1 tail columns, nc = nt + K solves */
    double *lambda, *lamL, *Pinv;   /* lambda; lambda with S zeroed; 1 / diag(Omega') */
    double *Bm, *X;                 /* right-hand sides and solutions, q x nc row-major */
    double *T, *R;                  /* nt x nt: the tail's Schur complement and its factor */
} batch;

/* The right-hand sides [Omega_LS, B_L, P^{1/2} z_1 .. P^{1/2} z_K] (zero on S rows). */
static void right_sides(batch *b)
{
    const lmm_iter *it = b->it;
    int nc = b->nc, K = b->K;
    memset(b->Bm, 0, (size_t) b->q * nc * sizeof(double));
    for (int c = 0; c < b->ns; c++) {                      /* (Lambda C Lambda)_{L, s} */
        int s = it->snode[c];
        for (int e = it->Cp[s]; e < it->Cp[s + 1]; e++) {
            int i = it->Ci[e];
            if (it->spos[i] < 0) b->Bm[(size_t) i * nc + c] = b->lambda[i] * it->Cx[e] * b->lambda[s];
        }
    }
    for (int j = 0; j < b->q; j++) {
        if (it->spos[j] >= 0) continue;
        double *r = b->Bm + (size_t) j * nc, sp = 1 / sqrt(b->Pinv[j]);
        for (int a = 0; a < b->p1; a++) r[b->ns + a] = b->lambda[j] * it->F[j + (size_t) a * b->q];
        for (int k = 0; k < K; k++) r[b->nt + k] = sp * it->Z[(size_t) j * K + k];
    }
}

/* T = Hh - G_L' Y (symmetric), Hh = [Omega_SS, B_S; B_S', H] */
static void tail(batch *b)
{
    const lmm_iter *it = b->it;
    int nt = b->nt, ns = b->ns, nc = b->nc;
    double *T = b->T;
    memset(T, 0, (size_t) nt * nt * sizeof(double));
    for (int c = 0; c < ns; c++) {
        int s = it->snode[c];
        double ls = b->lambda[s];
        T[c + c * nt] = ls * it->Cd[s] * ls + 1;
        for (int e = it->Cp[s]; e < it->Cp[s + 1]; e++) {
            int d = it->spos[it->Ci[e]];
            if (d >= 0) T[d + c * nt] += b->lambda[it->Ci[e]] * it->Cx[e] * ls;
        }
        for (int a = 0; a < b->p1; a++) T[ns + a + c * nt] = T[c + (ns + a) * nt] = ls * it->F[s + (size_t) a * b->q];
    }
    for (int a = 0; a < b->p1; a++)
        for (int d = 0; d < b->p1; d++) T[ns + a + (ns + d) * nt] = it->H[a + d * b->p1];
    for (int j = 0; j < b->q; j++) {
        if (it->spos[j] >= 0) continue;
        const double *g = b->Bm + (size_t) j * nc, *y = b->X + (size_t) j * nc;
        for (int c = 0; c < nt; c++) {
            if (g[c] == 0) continue;
            for (int d = 0; d < nt; d++) T[c + d * nt] -= g[c] * y[d];
        }
    }
    for (int c = 0; c < nt; c++)
        for (int d = 0; d < c; d++) T[c + d * nt] = T[d + c * nt] = 0.5 * (T[c + d * nt] + T[d + c * nt]);
}

/* log|Omega_LL| = log|P| + mean of the probes' quadratures (|z|^2 = the L columns); its Monte
   Carlo standard error */
static double logdet(const batch *b, const lmm_pcg_column *col, double *se)
{
    const lmm_iter *it = b->it;
    int K = b->K;
    double ldP = 0, sum = 0, sum2 = 0;
    for (int j = 0; j < b->q; j++) ldP -= log(b->Pinv[j]);
    for (int k = 0; k < K; k++) {
        const lmm_pcg_column *c = col + b->nt + k;
        double e = it->nL * lmm_iter_quadrature(c->steps, c->alpha, c->beta);
        if (!R_FINITE(e)) return NA_REAL;
        sum += e;
        sum2 += e * e;
    }
    double mean = sum / K, var = (sum2 - K * mean * mean) / (K - 1);
    *se = sqrt(fmax(var, 0) / K);
    return ldP + mean;
}

/* (T_[k])^{-1} padded to nt x nt (k leading rows of the factor R, lower) */
static void add_leading_inverse(const batch *b, int k, double coef, double *W)
{
    if (k < 1 || coef == 0) return;
    int nt = b->nt, info = 0;
    double *V = dalloc((size_t) k * k);
    for (int c = 0; c < k; c++) for (int a = 0; a < k; a++) V[a + c * k] = a >= c ? b->R[a + c * nt] : 0;
    F77_CALL(dpotri)("L", &k, V, &k, &info FCONE);
    for (int c = 0; c < k; c++)
        for (int a = 0; a < k; a++) W[a + c * nt] += coef * (a >= c ? V[a + c * k] : V[c + a * k]);
}

/* Yh_Z (q x nt row-major): -Y on L rows, the identity of the S columns on S rows */
static double *yhat(const batch *b)
{
    int nt = b->nt;
    double *Yh = dalloc((size_t) b->q * nt);
    for (int j = 0; j < b->q; j++) {
        double *r = Yh + (size_t) j * nt;
        int s = b->it->spos[j];
        if (s >= 0) { memset(r, 0, nt * sizeof(double)); r[s] = 1; continue; }
        const double *y = b->X + (size_t) j * b->nc;
        for (int c = 0; c < nt; c++) r[c] = -y[c];
    }
    return Yh;
}

/* C Lambda [Yh_Z, zo_1 .. zo_K, x_1 .. x_K] (q x (nt + 2K), row-major) */
static double *products(const batch *b, const double *Yh, int w)
{
    int nt = b->nt, K = b->K;
    double *V = dalloc((size_t) b->q * w), *CL = dalloc((size_t) b->q * w);
    for (int j = 0; j < b->q; j++) {
        double *v = V + (size_t) j * w, l = b->lambda[j], sp = sqrt(b->Pinv[j]);
        const double *x = b->X + (size_t) j * b->nc, *yh = Yh + (size_t) j * nt;
        int small = b->it->spos[j] >= 0;
        for (int c = 0; c < nt; c++) v[c] = l * yh[c];
        for (int k = 0; k < K; k++) {
            v[nt + k] = small ? 0 : l * sp * b->it->Z[(size_t) j * K + k];
            v[nt + K + k] = l * x[nt + k];
        }
    }
    lmm_iter_C(b->it, w, V, CL);
    return CL;
}

/* grad_t += 2 sum_{j in t} (Yh W)_j . (C Lambda Yh_Z + F Yh_XY)_j */
static void gradient_exact(const batch *b, const double *Yh, const double *CL, int w,
                           const double *W, double *grad)
{
    int nt = b->nt, ns = b->ns;
    double *yw = dalloc(nt);
    for (int j = 0; j < b->q; j++) {
        const double *yh = Yh + (size_t) j * nt, *cl = CL + (size_t) j * w;
        for (int a = 0; a < nt; a++) {
            double s = 0;
            for (int c = 0; c < nt; c++) s += yh[c] * W[c + a * nt];
            yw[a] = s;
        }
        double g = 0;
        for (int a = 0; a < nt; a++)
            g += yw[a] * (cl[a] + (a >= ns ? b->it->F[j + (size_t) (a - ns) * b->q] : 0.0));
        grad[b->m->term[j]] += 2 * g;
    }
}

/* log|Omega_LL|'s part (header comment): the probes' average, and their spread in gse */
static void gradient_logdet(const batch *b, const double *CL, int w, double *grad, double *gse)
{
    const lmm_iter *it = b->it;
    int nt = b->nt, K = b->K, nth = b->m->ntheta;
    double *gk = dalloc((size_t) nth * K);
    memset(gk, 0, (size_t) nth * K * sizeof(double));
    for (int j = 0; j < b->q; j++) {
        if (it->spos[j] >= 0) continue;                      /* Omega_LL has no S column */
        double l = b->lamL[j], dP = 2 * l * it->Cd[j], E = -0.5 * dP * b->Pinv[j];
        double sp = sqrt(b->Pinv[j]), *g = gk + (size_t) b->m->term[j] * K;
        const double *x = b->X + (size_t) j * b->nc + nt, *cl = CL + (size_t) j * w + nt;
        for (int k = 0; k < K; k++) {
            double zo = sp * it->Z[(size_t) j * K + k], w1 = cl[k], w2 = cl[K + k];
            g[k] += x[k] * w1 + zo * w2 + x[k] * E * (l * w1 + zo);
        }
        grad[b->m->term[j]] += E + dP * b->Pinv[j];          /* tr E + d log P_j */
    }
    for (int t = 0; t < nth; t++) {
        double s = 0, s2 = 0;
        for (int k = 0; k < K; k++) { s += gk[t * K + k]; s2 += gk[t * K + k] * gk[t * K + k]; }
        double mean = s / K;
        grad[t] += mean;
        gse[t] = sqrt(fmax((s2 - K * mean * mean) / (K - 1), 0) / K);
    }
}

/* The tail's solution s = [u_S; beta*] of T_{-y,-y} s = T_{-y,y}, then u_L = Y_y - Y_{-y} s. */
static void solution(const batch *b, double *u, double *beta)
{
    int nt = b->nt, ns = b->ns, n1 = nt - 1, one = 1, info = 0;
    double *s = dalloc(nt);
    for (int a = 0; a < n1; a++) s[a] = b->T[a + n1 * nt];
    if (n1 > 0) F77_CALL(dpotrs)("L", &n1, &one, b->R, &nt, s, &nt, &info FCONE);
    for (int a = 0; a < b->p; a++) beta[a] = s[ns + a];
    if (!u) return;
    for (int j = 0; j < b->q; j++) {
        int sp = b->it->spos[j];
        if (sp >= 0) { u[j] = s[sp]; continue; }
        const double *y = b->X + (size_t) j * b->nc;
        double v = y[n1];
        for (int a = 0; a < n1; a++) v -= y[a] * s[a];
        u[j] = v;
    }
}

static int evaluate(lmm_model *m, const double *theta, int REML, lmm_iter_parts *cp,
                    double *grad, double *u, double *beta, double *RXinv)
{
    lmm_iter *it = m->iter;
    batch b = {m, it, it->q, it->p1, it->p1 - 1, it->K, it->ns, it->ns + it->p1, 0};
    b.nc = b.nt + b.K;
    int q = b.q, nt = b.nt, ns = b.ns, p = b.p, nc = b.nc;
    cp->crit = cp->ldL2 = cp->ldRX2 = cp->pwrss = R_PosInf;
    cp->ld_se = NA_REAL;
    b.lambda = dalloc(q); b.lamL = dalloc(q); b.Pinv = dalloc(q);
    for (int j = 0; j < q; j++) {
        b.lambda[j] = theta[m->theta0[m->term[j]]];
        b.lamL[j] = it->spos[j] >= 0 ? 0.0 : b.lambda[j];
        b.Pinv[j] = 1 / (b.lamL[j] * b.lamL[j] * it->Cd[j] + 1);   /* P = diag(Omega') */
    }
    b.Bm = dalloc((size_t) q * nc);
    b.X = dalloc((size_t) q * nc);
    double *tol = dalloc(nc);
    lmm_pcg_column *col = (lmm_pcg_column *) R_alloc(nc, sizeof(lmm_pcg_column));
    for (int c = 0; c < nc; c++) {
        tol[c] = c < nt ? it->tol : it->tol_probe;
        col[c].alpha = c < nt ? NULL : dalloc(it->maxit);
        col[c].beta = c < nt ? NULL : dalloc(it->maxit);
    }
    right_sides(&b);
    lmm_iter_pcg(it, b.lamL, b.Pinv, nc, b.Bm, b.X, tol, nt, col);
    it->evaluations++;
    it->iters_B = it->iters_probe = it->unconverged = 0;
    for (int c = 0; c < nc; c++) {
        int *most = c < nt ? &it->iters_B : &it->iters_probe;
        if (col[c].steps > *most) *most = col[c].steps;
        it->unconverged += !col[c].converged;
    }
    b.T = dalloc((size_t) nt * nt);
    b.R = dalloc((size_t) nt * nt);
    tail(&b);
    memcpy(b.R, b.T, (size_t) nt * nt * sizeof(double));
    int info = 0;
    F77_CALL(dpotrf)("L", &nt, b.R, &nt, &info FCONE);                /* T = R R' (R lower) */
    double se = NA_REAL, ld = info ? NA_REAL : logdet(&b, col, &se);
    if (info || !R_FINITE(ld)) return 1;
    double ldS = 0, ldRX2 = 0, r = b.R[(nt - 1) + (size_t) (nt - 1) * nt];
    for (int i = 0; i < ns; i++) ldS += 2 * log(b.R[i + (size_t) i * nt]);
    for (int i = ns; i < ns + p; i++) ldRX2 += 2 * log(b.R[i + (size_t) i * nt]);
    cp->ldL2 = ld + ldS;
    cp->ld_se = it->ld_se = se;
    cp->ldRX2 = ldRX2 + m->std_ldM;
    double pwrss = r * r, n = m->n, nmp = REML ? n - p : n;
    double logs2 = m->std_d ? 2 * log(m->std_s) : 0.0;
    cp->crit = cp->ldL2 - m->sumlogw + nmp * (1 + log(2 * M_PI * pwrss / nmp) + logs2);
    if (REML) cp->crit += cp->ldRX2;
    cp->pwrss = pwrss * (m->std_d ? m->std_s * m->std_s : 1.0);
    if (grad) {
        double *W = dalloc((size_t) nt * nt);
        memset(W, 0, (size_t) nt * nt * sizeof(double));
        add_leading_inverse(&b, ns, 1.0 - REML, W);
        add_leading_inverse(&b, ns + p, REML - nmp, W);
        add_leading_inverse(&b, nt, nmp, W);
        double *Yh = yhat(&b);
        int w = nt + 2 * b.K;
        double *CL = products(&b, Yh, w);
        for (int t = 0; t < m->ntheta; t++) grad[t] = 0;
        gradient_exact(&b, Yh, CL, w, W, grad);
        gradient_logdet(&b, CL, w, grad, it->grad_se);
    }
    if (beta || u) solution(&b, u, beta ? beta : dalloc(p + 1));
    if (cp->rx_pivot)
        for (int a = 0; a < p; a++) {
            double h = it->H[a + a * b.p1];
            cp->rx_pivot[a] = h > 0 ? fabs(b.R[ns + a + (size_t) (ns + a) * nt]) / sqrt(h) : 0.0;
        }
    if (RXinv && p > 0) {                          /* the X block of (T_[ns+p])^{-1} */
        double *V = dalloc((size_t) nt * nt);
        memset(V, 0, (size_t) nt * nt * sizeof(double));
        add_leading_inverse(&b, ns + p, 1.0, V);
        for (int c = 0; c < p; c++)
            for (int a = 0; a < p; a++) RXinv[a + c * p] = V[ns + a + (size_t) (ns + c) * nt];
    }
    return 0;
}

/* The criterion at theta (and, when not NULL, its gradient, u*, beta* and (R*'R*)^{-1} in the
   internal coordinates).  Returns 0, or 1 when T is not positive definite or the quadrature
   failed (crit = Inf).  Scratch is released on return. */
int lmm_iter_evaluate(lmm_model *m, const double *theta, int REML, lmm_iter_parts *cp,
                      double *grad, double *u, double *beta, double *RXinv)
{
    const void *vmax = vmaxget();
    int status = evaluate(m, theta, REML, cp, grad, u, beta, RXinv);
    vmaxset(vmax);
    return status;
}
