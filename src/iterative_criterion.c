/*
 * iterative_criterion.c -- the profiled criterion (criterion.c's formula), its gradient in theta
 * and the conditional modes, from one batch of preconditioned CG solves (iterative.h).
 *
 * Omega_Z = Lambda' C Lambda + I, B = Lambda' F (iterative.h; Lambda block diagonal, theta.c).
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
 * q columns with the S terms' templates set to 0 (so that Omega' = diag(Omega_LL, I)).
 *
 * Gradient.  With Ah = [C F; F' H], Th = diag(Lambda, I) and Yh = [-Y; I_tail] (q + p + 1 rows:
 * L rows -Y, the tail's own rows the identity), dT = Yh' dOmega_aug Yh, dOmega_aug = E_k'Ah Th +
 * Th'Ah E_k, E_k = dLambda/dtheta_k: for theta_k = T_t[r, c], a 1 at (J r, J c) of every node J
 * of term t.  So for a symmetric weight W_T,
 *     tr(W_T dT) = 2 sum_{J in t} (Yh W_T)_{J c} . (C Lambda Yh_Z + F Yh_XY)_{J r}.
 * The criterion's T-part is log|T_[ns]| + REML log|R_X|^2 + (n - p REML) log r^2, with
 * log|R_X|^2 = log|T_[ns+p]| - log|T_[ns]| and r^2 = |T| / |T_[ns+p]| (T_[k]: leading k x k), so
 *     W_T = (1 - REML) T_[ns]^{-1} + (REML - nmp) T_[ns+p]^{-1} + nmp T^{-1}   (padded).
 * log|Omega_LL|'s part.  Omega_LL = [D, Omega_HR; Omega_RH, Omega_RR] with the head eliminated
 * (iterative_schur.c; no head: H empty), log|Omega_LL| = log|D| + log|S|, estimated as
 * log|D| + log|P| + (1/K) sum_k z_k' log(M) z_k with M = L^{-1} S L^{-T}, P = L L' = blockdiag of
 * S.  Its gradient: d log|D| exactly, and d log|S| = tr(S^{-1} dS) by Hutchinson with the same
 * probes and P as control variate: with x = S^{-1} L z, zo = L^{-T} z, E[x zo'] = S^{-1} and
 * E[zo zo'] = P^{-1}, so
 *     d log|S| = d log|P| + E[x' dS zo - zo' dP zo],   x' dS zo = xh' dOmega zh,
 * xh = [-D^{-1} Omega_HR x; x], zh likewise (dS = Yh' dOmega Yh, Yh = [-D^{-1} Omega_HR; I]), and
 *     xh' dOmega zh = sum_{J in t} (xh_{J c} (C Lambda zh)_{J r} + zh_{J c} (C Lambda xh)_{J r}).
 * dP_J is block J's derivative (iterative_schur.c), d log|P| = sum_J tr(P_J^{-1} dP_J).  The
 * spread of the K probes' terms gives the gradient's Monte Carlo standard error.
 * (For scalar nodes zo' dP zo = d log|P| exactly: the control variate is P's own scaling; for
 * vector-valued ones it removes the within-level part of dS, which the probes would otherwise
 * estimate.)
 */
#include "iterative.h"
#include <string.h>

static double *dalloc(size_t n) { return (double *) R_alloc(n ? n : 1, sizeof(double)); }

/* the columns of term t */
static int term_columns(const lmm_model *m, int t) { return m->nlt[t] * m->pt[t]; }

typedef struct {
    lmm_model *m;
    lmm_iter *it;
    int q, p1, p, K, ns, nt, nc;    /* nt = ns + p1 tail columns, nc = nt + K solves */
    lmm_lambda LA, LL;              /* Lambda; Lambda with the tail's terms zeroed */
    double *U, *BF;                 /* Lambda' C Lambda E_S (q x ns), Lambda' F (q x p1) */
    double *Bm, *X;                 /* right-hand sides and solutions, q x nc row-major */
    double *T, *R;                  /* nt x nt: the tail's Schur complement and its factor */
    double *ZO;                     /* q x K: zo = L^{-T} z (with the head: zh, H rows filled) */
    int nz;                         /* columns the probes cover (|z|^2) */
    lmm_schur S;                    /* the head's elimination (S.head < 0: none), P */
} batch;

/* theta index of template entry (r, c), r >= c, of a term with p columns (theta.c's order) */
static int entry_index(int p, int r, int c) { return c * p - c * (c - 1) / 2 + (r - c); }

/* U = Lambda' C Lambda E_S (the tail's columns of Omega_Z without I) and BF = Lambda' F */
static void tail_products(batch *b)
{
    const lmm_iter *it = b->it;
    int q = b->q, ns = b->ns, p1 = b->p1;
    double *V = dalloc((size_t) q * (ns > p1 ? ns : p1)), *W = dalloc((size_t) q * (ns > 0 ? ns : 1));
    b->U = dalloc((size_t) q * (ns > 0 ? ns : 1));
    b->BF = dalloc((size_t) q * p1);
    if (ns > 0) {
        memset(V, 0, (size_t) q * ns * sizeof(double));
        for (int c = 0; c < ns; c++) V[(size_t) it->snode[c] * ns + c] = 1;      /* E_S */
        double *LV = dalloc((size_t) q * ns);
        lmm_lambda_apply(&b->LA, 0, ns, NULL, 0, V, LV, NULL);
        lmm_iter_C(it, ns, NULL, 0, LV, W);
        lmm_lambda_apply(&b->LA, 1, ns, NULL, 0, W, b->U, NULL);
    }
    for (int j = 0; j < q; j++)                                                   /* F by rows */
        for (int a = 0; a < p1; a++) V[(size_t) j * p1 + a] = it->F[j + (size_t) a * q];
    lmm_lambda_apply(&b->LA, 1, p1, NULL, 0, V, b->BF, NULL);
}

/* The right-hand sides [Omega_LS, B_L, L z_1 .. L z_K] (zero on S rows; the probes only on
   R rows) and zo = L^{-T} z */
static void right_sides(batch *b)
{
    const lmm_iter *it = b->it;
    int nc = b->nc, K = b->K, ns = b->ns;
    memset(b->Bm, 0, (size_t) b->q * nc * sizeof(double));
    for (int j = 0; j < b->q; j++) {
        if (it->spos[j] >= 0) continue;
        double *r = b->Bm + (size_t) j * nc;
        for (int c = 0; c < ns; c++) r[c] = b->U[(size_t) j * ns + c];
        for (int a = 0; a < b->p1; a++) r[ns + a] = b->BF[(size_t) j * b->p1 + a];
    }
    b->ZO = dalloc((size_t) b->q * K);
    lmm_schur_probes(&b->S, K, nc, b->nt, b->Bm, b->ZO);
}

/* T = Hh - G_L' Y (symmetric), Hh = [Omega_SS, B_S; B_S', H] */
static void tail(batch *b)
{
    const lmm_iter *it = b->it;
    int nt = b->nt, ns = b->ns, nc = b->nc, p1 = b->p1;
    double *T = b->T;
    memset(T, 0, (size_t) nt * nt * sizeof(double));
    for (int c = 0; c < ns; c++) {
        int s = it->snode[c];
        for (int d = 0; d < ns; d++) T[d + c * nt] = b->U[(size_t) it->snode[d] * ns + c];
        T[c + c * nt] += 1;
        for (int a = 0; a < p1; a++) T[ns + a + c * nt] = T[c + (ns + a) * nt] = b->BF[(size_t) s * p1 + a];
    }
    for (int a = 0; a < p1; a++)
        for (int d = 0; d < p1; d++) T[ns + a + (ns + d) * nt] = it->H[a + d * p1];
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
/* log|Omega_LL| = log|D| + log|P| + mean of the probes' quadratures (|z|^2 = nz, the columns
   probed); its Monte Carlo standard error */
static double logdet(const batch *b, const lmm_pcg_column *col, double *se)
{
    int K = b->K;
    double ldP = b->S.ldD + b->S.ldP, sum = 0, sum2 = 0;
    for (int k = 0; k < K; k++) {
        const lmm_pcg_column *c = col + b->nt + k;
        double e = b->nz * lmm_iter_quadrature(c->steps, c->alpha, c->beta);
        if (!R_FINITE(e)) return NA_REAL;
        sum += e;
        sum2 += e * e;
    }
    double mean = K ? sum / K : 0.0, var = K > 1 ? (sum2 - K * mean * mean) / (K - 1) : 0.0;
    *se = K ? sqrt(fmax(var, 0) / K) : 0.0;
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
    double *V = dalloc((size_t) b->q * w), *LV = dalloc((size_t) b->q * w);
    double *CL = dalloc((size_t) b->q * w);
    for (int j = 0; j < b->q; j++) {
        double *v = V + (size_t) j * w;
        const double *x = b->X + (size_t) j * b->nc, *yh = Yh + (size_t) j * nt;
        for (int c = 0; c < nt; c++) v[c] = yh[c];
        for (int k = 0; k < K; k++) {
            v[nt + k] = b->ZO[(size_t) j * K + k];
            v[nt + K + k] = x[nt + k];
        }
    }
    lmm_lambda_apply(&b->LA, 0, w, NULL, 0, V, LV, NULL);
    lmm_iter_C(b->it, w, NULL, 0, LV, CL);
    return CL;
}

/* grad_k += 2 sum_{J in t} (Yh W)_{J c} . (C Lambda Yh_Z + F Yh_XY)_{J r},  theta_k = T_t[r, c] */
static void gradient_exact(const batch *b, const double *Yh, const double *CL, int w,
                           const double *W, double *grad)
{
    const lmm_model *m = b->m;
    const lmm_iter *it = b->it;
    int nt = b->nt, ns = b->ns;
    double *YW = dalloc((size_t) b->q * nt), *A = dalloc((size_t) b->q * nt);
    for (int j = 0; j < b->q; j++) {
        const double *yh = Yh + (size_t) j * nt, *cl = CL + (size_t) j * w;
        double *yw = YW + (size_t) j * nt, *aj = A + (size_t) j * nt;
        for (int a = 0; a < nt; a++) {
            double s = 0;
            for (int c = 0; c < nt; c++) s += yh[c] * W[c + a * nt];
            yw[a] = s;
            aj[a] = cl[a] + (a >= ns ? it->F[j + (size_t) (a - ns) * b->q] : 0.0);
        }
    }
    for (int J = 0; J < m->N; J++) {
        int t = m->term[J], p = m->pt[t], z = it->zoff[J];
        for (int c = 0; c < p; c++)
            for (int r = c; r < p; r++) {
                const double *yw = YW + (size_t) (z + c) * nt, *aj = A + (size_t) (z + r) * nt;
                double g = 0;
                for (int a = 0; a < nt; a++) g += yw[a] * aj[a];
                grad[m->theta0[t] + entry_index(p, r, c)] += 2 * g;
            }
    }
}

/* grad_t += the mean over the K probes of their terms gk[t K + k], and gse_t = its Monte Carlo
   standard error, sd_k / sqrt(K) */
static void add_probe_means(const double *gk, int nth, int K, double *grad, double *gse)
{
    for (int t = 0; t < nth; t++) {
        double s = 0, s2 = 0;
        for (int k = 0; k < K; k++) { s += gk[t * K + k]; s2 += gk[t * K + k] * gk[t * K + k]; }
        double mean = K ? s / K : 0.0;
        grad[t] += mean;
        gse[t] = K > 1 ? sqrt(fmax((s2 - K * mean * mean) / (K - 1), 0) / K) : 0.0;
    }
}

/* log|Omega_LL|'s part (header comment): d log|D| + d log|P| exactly, the probes' average of
   xh' dOmega zh - zo' dP zo, and their spread in gse */
static void gradient_logdet(const batch *b, const double *CL, int w, double *grad, double *gse)
{
    const lmm_model *m = b->m;
    const lmm_iter *it = b->it;
    const lmm_schur *S = &b->S;
    int nt = b->nt, K = b->K, nth = m->ntheta;
    double *gk = dalloc((size_t) nth * K), *zd = dalloc(K);
    memset(gk, 0, (size_t) nth * K * sizeof(double));
    for (int J = 0; J < m->N; J++) {
        int t = m->term[J], p = m->pt[t], z = it->zoff[J], np = p * p;
        if (it->spos[z] >= 0) continue;                      /* Omega_LL has no S column */
        for (int c = 0; c < p; c++) {                        /* xh' dOmega zh */
            const double *x = b->X + (size_t) (z + c) * b->nc + nt, *zo = b->ZO + (size_t) (z + c) * K;
            for (int r = c; r < p; r++) {
                double *g = gk + (size_t) (m->theta0[t] + entry_index(p, r, c)) * K;
                const double *cl = CL + (size_t) (z + r) * w + nt;
                for (int k = 0; k < K; k++) g[k] += x[k] * cl[k] + zo[k] * cl[K + k];
            }
        }
        if (!S->noder[J]) continue;                          /* the head: d log|D| below */
        const double *Pi = S->Pi + it->cjoff[J], *dP = S->dP + S->doff[J];
        int nown = p * (p + 1) / 2;
        for (int d = 0; d < nown + S->nh; d++, dP += np) {   /* d log|P_J| - zo' dP_J zo */
            int e = d < nown ? m->theta0[t] + d : m->theta0[S->head] + d - nown;
            double tr = 0, *g = gk + (size_t) e * K;
            for (int a = 0; a < np; a++) tr += Pi[a] * dP[a];
            grad[e] += tr;
            for (int k = 0; k < K; k++) zd[k] = 0;
            for (int a = 0; a < p; a++)
                for (int c = 0; c < p; c++) {
                    double v = dP[a + c * p];
                    const double *za = b->ZO + (size_t) (z + a) * K, *zc = b->ZO + (size_t) (z + c) * K;
                    for (int k = 0; k < K; k++) zd[k] += za[k] * v * zc[k];
                }
            for (int k = 0; k < K; k++) g[k] -= zd[k];
        }
    }
    for (int d = 0; d < S->nh; d++) grad[m->theta0[S->head] + d] += S->dlogD[d];
    add_probe_means(gk, nth, K, grad, gse);
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
    batch b;
    memset(&b, 0, sizeof b);
    b.m = m; b.it = it; b.q = it->q; b.p1 = it->p1; b.p = it->p1 - 1; b.K = it->K;
    b.ns = it->ns; b.nt = it->ns + it->p1;
    if (it->ns + it->nL - (it->head >= 0 ? term_columns(m, it->head) : 0) == it->ns)
        b.K = 0;                                        /* nothing left to probe: exact */
    b.nc = b.nt + b.K;
    int q = b.q, nt = b.nt, ns = b.ns, p = b.p, nc = b.nc;
    cp->crit = cp->ldL2 = cp->ldRX2 = cp->pwrss = R_PosInf;
    cp->ld_se = NA_REAL;
    it->threads = lmm_dense_threads(q);                /* option lmmc.threads; 1 under load */
    lmm_lambda_make(&b.LA, m, theta, 0);
    lmm_lambda_make(&b.LL, m, theta, 1);
    lmm_schur_make(&b.S, m, &b.LL, nc);                /* D, P = blockdiag(S) */
    if (b.S.failed) return 1;
    tail_products(&b);
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
    if (b.S.head >= 0) {                                /* CG on S, then x_H */
        double *Bs = dalloc((size_t) q * nc);
        lmm_schur_rhs(&b.S, nc, nt, b.Bm, Bs);
        lmm_iter_pcg(m, lmm_schur_op, &b.S, b.S.Pi, nc, Bs, b.X, tol, nt, col);
        lmm_schur_complete(&b.S, nc, nt, b.Bm, b.X);
    } else {
        lmm_omega_ctx oc = {it, &b.LL, b.LL.diag ? NULL : dalloc(2 * (size_t) q * nc)};
        lmm_iter_pcg(m, lmm_omega_op, &oc, b.S.Pi, nc, b.Bm, b.X, tol, nt, col);
    }
    b.nz = 0;                                           /* the probed (R) columns */
    for (int j = 0; j < q; j++) b.nz += b.S.isr[j];
    if (b.S.head >= 0 && b.K > 0) lmm_schur_extend(&b.S, b.K, b.ZO);
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
