/* optimise.c -- bound-constrained derivative-free minimisation (see optimise.h).
 *
 * Method (after Powell 2009, BOBYQA; written from the published description):
 *  - keep m points Y_j (m = (n+1)(n+2)/2, a full quadratic, for n <= 5; else
 *    m = 2n+1) with values f_j and a quadratic model
 *        Q(x) = c + g'(x - xc) + (x - xc)'H(x - xc)/2,   xc = best point,
 *    interpolating f at every Y_j;
 *  - after each new point the model is rebuilt so that it interpolates again
 *    while H changes by the least Frobenius norm: with s_j = (Y_j - xc)/sc,
 *        [A  P'] [lambda]   [f_j - Q_old(Y_j)]       A_ij = (s_i's_j)^2/2
 *        [P  0 ] [dc; dg] = [        0       ],      P = [1 ... 1; s_1 ... s_m],
 *    dH = sum_j lambda_j s_j s_j'/sc^2.  The inverse W^-1 of the KKT matrix
 *    also gives the Lagrange functions, hence the denominators
 *    sigma_t = alpha_t beta + tau_t^2 used to choose which point to drop;
 *  - a trust-region step minimises Q over box and ball (truncated conjugate
 *    gradients with bound activation); "geometry" steps move far points to
 *    where |sigma_t| is large; the radius rho falls from rhobeg to rhoend;
 *  - stop early (ftol_abs) once the last three new points were predicted to within
 *    ftol_abs (errors at points far from xopt scaled down to the distance over which Q
 *    changes by ftol_abs) and the model promises at most ftol_abs in the trust region
 *    and in the ball of radius rhobeg; the model's minimiser there is then evaluated
 *    once more.  ftol_abs is raised to the rounding level 100 eps |f| of f when below.
 */
#define USE_FC_LEN_T
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Lapack.h>
#include <R_ext/Utils.h>
#include <math.h>
#include <float.h>
#include <string.h>
#include "optimise.h"
#ifndef FCONE
# define FCONE
#endif
#ifndef _
# ifdef ENABLE_NLS
#  include <libintl.h>
#  define _(String) dgettext("lmmc", String)
# else
#  define _(String) (String)
# endif
#endif

typedef struct {
    lmm_objective_fn fn; void *ctx;
    int n, m, k;          /* free variables, points, KKT order m + n + 1 */
    int *ifree;           /* free variable i is x[ifree[i]] of the full vector */
    double *xall;         /* full-length argument of fn */
    double *xl, *xu;      /* bounds of the free variables */
    int feval, maxeval;
    int nall, verbose;    /* length of xall; trace level (> 0: print every evaluation) */
    double *Y, *fv;       /* point j is Y + j*n, f(Y_j) = fv[j] */
    int kopt;             /* index of the best point */
    double c, *xc, *g, *H;/* model Q (see above), H is n x n */
    double sc, *S;        /* KKT scale and scaled offsets s_j (m x n) */
    double *W, *Winv;     /* k x k KKT matrix (scratch) and its inverse */
    double *w, *v, *r;    /* k-vectors */
    int *ipiv, *fixed;
    double *wk;           /* 13n scratch */
} bq_state;

static double sq(double a) { return a * a; }

static double dot(int n, const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* f at the free-variable vector x (fixed variables stay at their bounds) */
/* The trace of lme4's verbose fits: evaluation number, f and the full argument x. */
static void bq_trace(const bq_state *st, double f)
{
    Rprintf("iteration: %d\n\tf(x) = %f\n\tx = (", st->feval, f);
    for (int i = 0; i < st->nall; i++) Rprintf(i ? ", %g" : "%g", st->xall[i]);
    Rprintf(")\n");
}

static double bq_eval(bq_state *st, const double *x)
{
    for (int i = 0; i < st->n; i++) st->xall[st->ifree[i]] = x[i];
    double f = st->fn(st->xall, st->ctx);
    st->feval++;
    if (st->verbose > 0) bq_trace(st, f);
    return R_FINITE(f) ? f : R_PosInf;          /* NaN, -Inf: infeasible */
}

/* Values of f carry rounding errors of some FNOISE |f|: an absolute tolerance
 * ftol_abs below that cannot be validated, so the tolerance used is the larger
 * (ftol_abs = 0: no f-based stopping). */
#define FNOISE (100 * DBL_EPSILON)
static double bq_ftol(double ftol_abs, double f)
{
    return ftol_abs > 0 ? fmax(ftol_abs, FNOISE * fabs(f)) : 0;
}

/* Q(x) */
static double bq_qval(const bq_state *st, const double *x)
{
    int n = st->n;
    double q = st->c;
    for (int i = 0; i < n; i++) {
        double di = x[i] - st->xc[i], hd = 0;
        for (int j = 0; j < n; j++) hd += st->H[i + j * n] * (x[j] - st->xc[j]);
        q += di * (st->g[i] + 0.5 * hd);
    }
    return q;
}

/* Rebuild the model around Y[kopt] so that it interpolates every point, with the
 * least Frobenius-norm change of H.  Returns 0, or 1 if the system is singular. */
static int bq_rebuild(bq_state *st)
{
    int n = st->n, m = st->m, k = st->k, info, i, j, a, b;
    const double *xo = st->Y + st->kopt * n;
    double *dx = st->wk;

    for (j = 0; j < m; j++) st->r[j] = st->fv[j] - bq_qval(st, st->Y + j * n);
    /* move the centre to xo: c = Q(xo), g = g + H (xo - xc) */
    st->c = bq_qval(st, xo);
    for (a = 0; a < n; a++) dx[a] = xo[a] - st->xc[a];
    for (a = 0; a < n; a++) st->g[a] += dot(n, st->H + a * n, dx);   /* H symmetric */
    memcpy(st->xc, xo, n * sizeof(double));

    double sc = 0;
    for (j = 0; j < m; j++) {
        double d2 = 0;
        for (a = 0; a < n; a++) d2 += sq(st->Y[j * n + a] - xo[a]);
        if (d2 > sc) sc = d2;
    }
    sc = sqrt(sc);
    if (!(sc > 0)) return 1;
    st->sc = sc;
    for (j = 0; j < m; j++)
        for (a = 0; a < n; a++) st->S[j * n + a] = (st->Y[j * n + a] - xo[a]) / sc;

    /* KKT matrix W = [A P'; P 0] and W^-1 */
    memset(st->W, 0, (size_t) k * k * sizeof(double));
    for (j = 0; j < m; j++) {
        for (i = 0; i <= j; i++)
            st->W[i + j * k] = st->W[j + i * k] = 0.5 * sq(dot(n, st->S + i * n, st->S + j * n));
        st->W[m + j * k] = st->W[j + m * k] = 1;
        for (a = 0; a < n; a++)
            st->W[m + 1 + a + j * k] = st->W[j + (m + 1 + a) * k] = st->S[j * n + a];
    }
    memset(st->Winv, 0, (size_t) k * k * sizeof(double));
    for (i = 0; i < k; i++) st->Winv[i + i * k] = 1;
    F77_CALL(dgesv)(&k, &k, st->W, &k, st->ipiv, st->Winv, &k, &info);
    if (info != 0) return 1;

    /* coefficients of the change: v = W^-1 [r; 0] */
    for (i = 0; i < k; i++) {
        double s = 0;
        for (j = 0; j < m; j++) s += st->Winv[i + j * k] * st->r[j];
        st->v[i] = s;
    }
    st->c += st->v[m];
    for (a = 0; a < n; a++) st->g[a] += st->v[m + 1 + a] / sc;
    for (a = 0; a < n; a++)
        for (b = 0; b <= a; b++) {
            double h = 0;
            for (j = 0; j < m; j++) h += st->v[j] * st->S[j * n + a] * st->S[j * n + b];
            st->H[a + b * n] += h / (sc * sc);
            if (b < a) st->H[b + a * n] = st->H[a + b * n];
        }
    for (a = 0; a < n; a++) if (!R_FINITE(st->g[a])) return 1;
    return 0;
}

/* For a candidate x: v = W^-1 w(x) (v_t = Lagrange function t at x) and the
 * returned beta, so that replacing point t gives denominator W^-1_tt beta + v_t^2. */
static double bq_lagrange(bq_state *st, const double *x)
{
    int n = st->n, m = st->m, k = st->k;
    double *s = st->wk, ss;
    for (int a = 0; a < n; a++) s[a] = (x[a] - st->xc[a]) / st->sc;
    ss = dot(n, s, s);
    for (int j = 0; j < m; j++) st->w[j] = 0.5 * sq(dot(n, st->S + j * n, s));
    st->w[m] = 1;
    for (int a = 0; a < n; a++) st->w[m + 1 + a] = s[a];
    for (int i = 0; i < k; i++) {
        double t = 0;
        for (int j = 0; j < k; j++) t += st->Winv[i + j * k] * st->w[j];
        st->v[i] = t;
    }
    return 0.5 * ss * ss - dot(k, st->w, st->v);
}

/* |sigma_t| of replacing point t by x (call bq_lagrange first) */
static double bq_sigma(const bq_state *st, int t, double beta)
{
    return fabs(st->Winv[t + t * st->k] * beta + sq(st->v[t]));
}

/* Which point should the new point x (value fnew) replace?  The one with the
 * largest denominator, weighted towards points far from the best one. */
static int bq_choose(bq_state *st, const double *x, double fnew, double Delta)
{
    int n = st->n, best = -1;
    double beta = bq_lagrange(st, x), top = -1;
    for (int t = 0; t < st->m; t++) {
        if (t == st->kopt && !(fnew < st->fv[st->kopt])) continue;
        double d2 = 0;
        for (int a = 0; a < n; a++) d2 += sq(st->Y[t * n + a] - st->xc[a]);
        double wt = d2 / (Delta * Delta);
        wt = wt > 1 ? wt * wt : 1;
        double score = wt * bq_sigma(st, t, beta);
        if (score > top) { top = score; best = t; }
    }
    return best;
}

/* Put x (value f) in place of point t and rebuild the model. */
static int bq_replace(bq_state *st, int t, const double *x, double f)
{
    memcpy(st->Y + t * st->n, x, st->n * sizeof(double));
    st->fv[t] = f;
    if (f < st->fv[st->kopt]) st->kopt = t;
    return bq_rebuild(st);
}

/* Approximate minimiser d of g'd + d'Hd/2 subject to ||d|| <= Delta and
 * sl <= d <= su (sl <= 0 <= su): truncated conjugate gradients on the free
 * variables; a variable is fixed when the path meets its bound, and freed again
 * when the gradient there points back into the box (cf. Powell's TRSBOX).
 * crvmin: least curvature met (0 if the ball was reached, -1 if no CG step).
 * Returns the predicted reduction Q(0) - Q(d). */
static double bq_trstep(int n, const double *g, const double *H, const double *sl,
                        const double *su, double Delta, double *d, double *crvmin,
                        double *wk, int *fixed)
{
    double *gd = wk, *p = wk + n, *Hp = wk + 2 * n;
    double qred = 0, ggold = 1;
    int restart = 1, nrelease = 0, i, it, maxit = 10 * n + 20;

    *crvmin = -1;
    for (i = 0; i < n; i++) {
        d[i] = 0; gd[i] = g[i]; p[i] = 0;
        fixed[i] = (sl[i] >= 0 && g[i] >= 0) || (su[i] <= 0 && g[i] <= 0);
    }
    for (it = 0; it < maxit; it++) {
        double gg = 0;
        for (i = 0; i < n; i++) if (!fixed[i]) gg += gd[i] * gd[i];
        int converged = (gg == 0);
        if (!converged) {
            double bet = restart ? 0 : gg / ggold;
            for (i = 0; i < n; i++) p[i] = fixed[i] ? 0 : -gd[i] + bet * p[i];
            ggold = gg;
            double gp = dot(n, gd, p);
            if (!(gp < 0)) {                       /* lost descent: restart */
                for (i = 0; i < n; i++) p[i] = fixed[i] ? 0 : -gd[i];
                gp = -gg;
            }
            double pp = dot(n, p, p), dp = dot(n, d, p), dd = dot(n, d, d);
            double room = Delta * Delta - dd;
            double aball = room > 0 ? (-dp + sqrt(dp * dp + pp * room)) / pp : 0;
            if (aball < 0) aball = 0;
            double abnd = R_PosInf; int ibd = -1;
            for (i = 0; i < n; i++) {
                if (fixed[i] || p[i] == 0) continue;
                double t = p[i] > 0 ? (su[i] - d[i]) / p[i] : (sl[i] - d[i]) / p[i];
                if (t < 0) t = 0;
                if (t < abnd) { abnd = t; ibd = i; }
            }
            for (i = 0; i < n; i++) Hp[i] = dot(n, H + i * n, p);
            double curv = dot(n, p, Hp);
            double aq = curv > 0 ? -gp / curv : R_PosInf;
            if (curv > 0) {
                double cr = curv / pp;
                if (*crvmin < 0 || cr < *crvmin) *crvmin = cr;
            }
            double al = aq < aball ? aq : aball;
            if (abnd < al) al = abnd;
            double red = -al * (gp + 0.5 * al * curv);
            qred += red;
            for (i = 0; i < n; i++) { d[i] += al * p[i]; gd[i] += al * Hp[i]; }
            if (ibd >= 0 && al == abnd) {          /* meets a bound: fix it there */
                fixed[ibd] = 1;
                d[ibd] = p[ibd] > 0 ? su[ibd] : sl[ibd];
                restart = 1;
                continue;
            }
            if (al == aball && aball < aq) {       /* meets the ball: stop */
                *crvmin = 0;
                break;
            }
            restart = 0;
            converged = (red <= 0.01 * qred);
        }
        if (converged) {                           /* free a bound the gradient leaves */
            int freed = 0;
            if (nrelease < n)
                for (i = 0; i < n; i++)
                    if (fixed[i] && ((d[i] <= sl[i] && gd[i] < 0) || (d[i] >= su[i] && gd[i] > 0))) {
                        fixed[i] = 0; freed = 1;
                    }
            if (!freed) break;
            nrelease++;
            restart = 1;
        }
    }
    for (i = 0; i < n; i++) Hp[i] = dot(n, H + i * n, d);
    qred = -(dot(n, g, d) + 0.5 * dot(n, d, Hp));
    return qred;
}

/* Clip x into the box */
static void bq_clip(const bq_state *st, double *x)
{
    for (int a = 0; a < st->n; a++) {
        if (x[a] < st->xl[a]) x[a] = st->xl[a];
        if (x[a] > st->xu[a]) x[a] = st->xu[a];
    }
}

/* Consider the candidate xo + step; keep it in xbest if its |sigma_t| is the largest yet */
static void bq_try(bq_state *st, int t, double *xcand, double *xbest, double *top)
{
    bq_clip(st, xcand);
    double sig = bq_sigma(st, t, bq_lagrange(st, xcand));
    if (sig > *top) { *top = sig; memcpy(xbest, xcand, st->n * sizeof(double)); }
}

/* Geometry step: a new position for point t within the box and the ball
 * ||x - xopt|| <= radius making |sigma_t| large: searched along the lines from
 * xopt through the other points and along the (projected) gradient of the
 * Lagrange function of t.  Result in xnew. */
static void bq_geostep(bq_state *st, int t, double radius, double *xnew)
{
    int n = st->n, m = st->m, k = st->k, a, j, i;
    const double *xo = st->xc, *lam = st->Winv + t * k, *gs = lam + m + 1;
    double *xcand = st->wk + n, top = -1;   /* wk[0..n) is used by bq_lagrange */

    memcpy(xnew, xo, n * sizeof(double));
    for (j = 0; j < m; j++) {
        const double *sj = st->S + j * n;
        double nrm = sqrt(dot(n, sj, sj));
        if (j == st->kopt || nrm == 0) continue;
        /* l_t(xo + alpha sc s_j) = alpha a1 + alpha^2 b1 / 2 */
        double a1 = dot(n, gs, sj), b1 = 0;
        for (i = 0; i < m; i++) b1 += lam[i] * sq(dot(n, st->S + i * n, sj));
        double ahi = radius / (st->sc * nrm), alo = -ahi;
        for (a = 0; a < n; a++) {
            double lo = (st->xl[a] - xo[a]) / st->sc, hi = (st->xu[a] - xo[a]) / st->sc;
            if (sj[a] > 0) { if (hi / sj[a] < ahi) ahi = hi / sj[a]; if (lo / sj[a] > alo) alo = lo / sj[a]; }
            if (sj[a] < 0) { if (lo / sj[a] < ahi) ahi = lo / sj[a]; if (hi / sj[a] > alo) alo = hi / sj[a]; }
        }
        double cand[3] = { alo, ahi, b1 != 0 ? -a1 / b1 : 0 };
        for (int c = 0; c < 3; c++) {
            double al = cand[c];
            if (al == 0 || al < alo || al > ahi) continue;
            for (a = 0; a < n; a++) xcand[a] = xo[a] + al * st->sc * sj[a];
            bq_try(st, t, xcand, xnew, &top);
        }
    }
    for (int sgn = -1; sgn <= 1; sgn += 2) {     /* along +- the projected gradient */
        double nrm = 0;
        for (a = 0; a < n; a++) {
            double da = sgn * gs[a];
            if ((xo[a] <= st->xl[a] && da < 0) || (xo[a] >= st->xu[a] && da > 0)) da = 0;
            xcand[a] = da; nrm += da * da;
        }
        if (nrm == 0) continue;
        nrm = sqrt(nrm);
        for (a = 0; a < n; a++) xcand[a] = xo[a] + radius * xcand[a] / nrm;
        bq_try(st, t, xcand, xnew, &top);
    }
}

/* Initial points: xo and, for each variable, two more at distance h along its
 * axis (one each side, or both on the side away from a nearby bound).
 * A point with non-finite f is pulled towards xo.  Returns 0 or 2 (bad start). */
static int bq_initial(bq_state *st, double h)
{
    int n = st->n, i, j, tries;
    double *x0 = st->Y, *a = (double *) R_alloc(n, sizeof(double));
    st->fv[0] = bq_eval(st, x0);
    if (!R_FINITE(st->fv[0])) return 2;
    for (i = 0; i < n; i++) {
        double lo = x0[i] - st->xl[i], hi = st->xu[i] - x0[i], step[2];
        if (lo >= h && hi >= h) { step[0] = h; step[1] = -h; }
        else if (hi >= lo) { double e = hi >= 2 * h ? h : hi / 2; step[0] = e; step[1] = 2 * e; }
        else { double e = lo >= 2 * h ? h : lo / 2; step[0] = -e; step[1] = -2 * e; }
        int onesided = (step[1] == 2 * step[0]);
        for (j = 0; j < 2; j++) {
            int p = 1 + 2 * i + j;
            double *y = st->Y + p * n;
            for (tries = 0; tries < 30; tries++) {
                if (st->feval >= st->maxeval) return 1;
                memcpy(y, x0, n * sizeof(double));
                y[i] = x0[i] + step[j];
                if (y[i] < st->xl[i]) y[i] = st->xl[i];
                if (y[i] > st->xu[i]) y[i] = st->xu[i];
                st->fv[p] = bq_eval(st, y);
                if (R_FINITE(st->fv[p])) break;
                step[j] *= 0.5;                 /* infeasible: come closer */
                if (onesided && j == 0) step[1] = 2 * step[0];
            }
            if (!R_FINITE(st->fv[p])) return 2;
            if (st->fv[p] < st->fv[st->kopt]) st->kopt = p;
        }
        a[i] = st->fv[2 + 2 * i] < st->fv[1 + 2 * i] ? step[1] : step[0];
    }
    /* further points x0 + a_i e_i + a_j e_j (a_i: the better step along axis i),
     * pairs of neighbouring variables first */
    int p = 2 * n + 1;
    for (int gap = 1; gap < n && p < st->m; gap++)
        for (i = 0; i + gap < n && p < st->m; i++, p++) {
            double *y = st->Y + p * n, ai = a[i], aj = a[i + gap];
            for (tries = 0; tries < 30; tries++) {
                if (st->feval >= st->maxeval) return 1;
                memcpy(y, x0, n * sizeof(double));
                y[i] += ai; y[i + gap] += aj;
                st->fv[p] = bq_eval(st, y);
                if (R_FINITE(st->fv[p])) break;
                ai *= 0.5; aj *= 0.5;
            }
            if (!R_FINITE(st->fv[p])) return 2;
            if (st->fv[p] < st->fv[st->kopt]) st->kopt = p;
        }
    return 0;
}

/* ---- one variable: safeguarded parabolic interpolation ----
 * Points are kept sorted, at most two on each side of the best one b.  The
 * parabola Q through b and its nearest neighbours (one each side once the
 * minimum is bracketed) proposes its minimiser u, limited to the box and, while
 * not bracketed, to EXPAND times the span of the points; golden sections
 * stop slow shrinking of the bracket.  tolx = sqrt(2 ftol / Q'') is the
 * distance over which Q changes by ftol: a proposal closer than tolx to b is
 * replaced by the validation point b +- tolx.  Converged when Q predicts a
 * decrease <= ftol and predicted the last new value to within ftol (the error
 * scaled up by tolx / distance for points closer than tolx), or when the
 * bracket around b is narrower than 2 rhoend on each side. */

#define LINE_NP 6
#define LINE_EXPAND 5.0
#define GOLDEN 0.3819660112501051   /* (3 - sqrt 5) / 2 */

typedef struct { int np; double x[LINE_NP], f[LINE_NP]; } line_pts;

/* add (x, f), keep the points sorted and at most two each side of the best */
static int line_insert(line_pts *P, double x, double f)
{
    int i = P->np, b = 0;
    while (i > 0 && P->x[i - 1] > x) { P->x[i] = P->x[i - 1]; P->f[i] = P->f[i - 1]; i--; }
    P->x[i] = x; P->f[i] = f; P->np++;
    for (i = 1; i < P->np; i++) if (P->f[i] < P->f[b]) b = i;
    int lo = b - 2 > 0 ? b - 2 : 0, hi = b + 2 < P->np - 1 ? b + 2 : P->np - 1;
    if (lo > 0) for (i = lo; i <= hi; i++) { P->x[i - lo] = P->x[i]; P->f[i - lo] = P->f[i]; }
    P->np = hi - lo + 1;
    return b - lo;                                   /* index of the best point */
}

/* the golden-section point of the larger side of the bracket (l, b, r) */
static double line_golden(const line_pts *P, int b)
{
    double wl = P->x[b] - P->x[b - 1], wr = P->x[b + 1] - P->x[b];
    return wl > wr ? P->x[b] - GOLDEN * wl : P->x[b] + GOLDEN * wr;
}

static int line_iterate(bq_state *st, line_pts *P, double rhobeg, double rhoend, double ftol_abs)
{
    double xl = st->xl[0], xu = st->xu[0], lo_inf = R_NegInf, hi_inf = R_PosInf;
    double err = R_PosInf, width_old[3] = { R_PosInf, R_PosInf, R_PosInf };
    double x0 = st->Y[0], f0 = bq_eval(st, &x0), u, fu = R_PosInf;
    int b, tries;

    if (!R_FINITE(f0)) return 2;
    P->np = 0;
    b = line_insert(P, x0, f0);
    /* second point at distance rhobeg (rhobeg <= (xu - xl) / 2), the third on the
     * other side of x0 if the second is no better */
    u = x0 + rhobeg <= xu ? x0 + rhobeg : x0 - rhobeg;
    for (tries = 0; tries < 30 && st->feval < st->maxeval; tries++) {
        fu = bq_eval(st, &u);
        if (R_FINITE(fu)) break;
        if (u > x0) hi_inf = u; else lo_inf = u;
        u = x0 + 0.5 * (u - x0);                     /* infeasible: come closer */
    }
    if (!R_FINITE(fu)) return st->feval >= st->maxeval;
    b = line_insert(P, u, fu);
    u = 2 * x0 - u;
    if (fu >= f0 && u >= xl && u <= xu && u > lo_inf && u < hi_inf && st->feval < st->maxeval) {
        fu = bq_eval(st, &u);
        if (R_FINITE(fu)) b = line_insert(P, u, fu);
        else if (u > x0) hi_inf = u; else lo_inf = u;
    }
    for (;;) {
        R_CheckUserInterrupt();
        if (st->feval >= st->maxeval) return 1;
        double xb = P->x[b], fb = P->f[b], g, H = 0, pred = R_PosInf, tolx = rhoend;
        double ftol = bq_ftol(ftol_abs, fb);
        int il = b - 1, ir = b + 1, bracket = il >= 0 && ir < P->np, i1, i2;
        if (bracket) { i1 = il; i2 = ir; }
        else if (il < 0) { i1 = ir; i2 = ir + 1 < P->np ? ir + 1 : -1; }
        else { i1 = il; i2 = il - 1; }
        double d1 = P->x[i1] - xb, y1 = P->f[i1] - fb, span = fabs(d1);
        if (i2 >= 0) {                               /* Q(xb + t) = fb + g t + H t^2 / 2 */
            double d2 = P->x[i2] - xb, y2 = P->f[i2] - fb;
            H = 2 * (y2 / d2 - y1 / d1) / (d2 - d1);
            g = y1 / d1 - 0.5 * H * d1;
            span = fmax(span, fabs(d2));
        } else g = y1 / d1;
        if (H > 0 && ftol > 0) tolx = fmax(rhoend, sqrt(2 * ftol / H));
        if (tolx > 0.1 * rhobeg) tolx = fmax(rhoend, 0.1 * rhobeg);
        double wl = il >= 0 ? xb - P->x[il] : (xb <= xl ? 0 : R_PosInf);
        double wr = ir < P->np ? P->x[ir] - xb : (xb >= xu ? 0 : R_PosInf);
        if (hi_inf - xb < wr) wr = hi_inf - xb;       /* infeasible points bound too */
        if (xb - lo_inf < wl) wl = xb - lo_inf;
        if (wl <= 2 * rhoend && wr <= 2 * rhoend) return 0;   /* bracket within rhoend */

        if (H > 0) {                                 /* minimiser of Q */
            double t = -g / H;
            if (!bracket && fabs(t) > LINE_EXPAND * span) t = t > 0 ? LINE_EXPAND * span : -LINE_EXPAND * span;
            u = xb + t;
        } else if (bracket) u = line_golden(P, b);
        else u = xb + (g > 0 ? -2 : 2) * span;       /* no curvature: expand downhill */
        if (u < xl) u = xl;
        if (u > xu) u = xu;
        if (H > 0) pred = -(g * (u - xb) + 0.5 * H * sq(u - xb));
        if (ftol > 0 && pred <= ftol && err <= ftol) return 0;   /* validated, no decrease left */
        if (!(H > 0) && u == xb) u = xb + GOLDEN * d1;   /* blocked by the bound: look inside */
        if (bracket) {                               /* golden section if shrinking is slow */
            double width = P->x[ir] - P->x[il];
            if (width > 0.5 * width_old[2]) u = line_golden(P, b);
            width_old[2] = width_old[1]; width_old[1] = width_old[0]; width_old[0] = width;
        }
        if (fabs(u - xb) < tolx) {                   /* validation point at distance tolx */
            int right = u > xb || (u == xb && wr >= wl);
            if (right && wr <= 1.5 * tolx) right = 0;
            if (!right && wl <= 1.5 * tolx) right = 1;
            if ((right ? wr : wl) <= 1.5 * tolx) return 0;   /* both sides already tested */
            u = right ? fmin(xb + tolx, xu) : fmax(xb - tolx, xl);
        }
        if (u >= hi_inf) u = xb + 0.5 * (hi_inf - xb);   /* stay off infeasible points */
        if (u <= lo_inf) u = xb - 0.5 * (xb - lo_inf);
        for (int i = 0; i < P->np; i++)
            if (u == P->x[i]) {
                if (!bracket) return 0;              /* nothing new to learn */
                u = line_golden(P, b);
            }
        fu = bq_eval(st, &u);
        if (!R_FINITE(fu)) {
            if (u > xb) hi_inf = u; else lo_inf = u;
            err = R_PosInf;
            continue;
        }
        /* error of Q at u, scaled up to distance tolx */
        err = (H > 0 && i2 >= 0) ? fabs(fu - (fb + g * (u - xb) + 0.5 * H * sq(u - xb))) : R_PosInf;
        if (fabs(u - xb) < tolx) err *= tolx / fabs(u - xb);
        b = line_insert(P, u, fu);
    }
}

static int line_solve(bq_state *st, double rhobeg, double rhoend, double ftol)
{
    line_pts P;
    P.np = 0;
    int status = line_iterate(st, &P, rhobeg, rhoend, ftol);
    if (P.np > 0) {
        int b = 0;
        for (int i = 1; i < P.np; i++) if (P.f[i] < P.f[b]) b = i;
        st->Y[0] = P.x[b]; st->fv[0] = P.f[b]; st->kopt = 0;
    }
    return status;
}

/* Stopping: the validated model promises at most ftol; one last evaluation at its
 * minimiser xopt + d (within the trust region, in the box) makes the best point more
 * accurate (theta error ~ sqrt(ftol / curvature) becomes the model's error).  A
 * variable within rhoend (the resolution asked for) of a bound is put on it: a variance
 * exactly 0 rather than 1e-8, which f (even in theta at 0) cannot tell apart.  Kept if
 * no worse; skipped when the step is shorter than rhoend and reaches no bound.
 * Returns 0. */
static int bq_polish(bq_state *st, const double *d, double rhoend)
{
    int n = st->n;
    double *x = st->wk + 12 * n;                    /* d is wk + 11n */
    if (st->feval >= st->maxeval) return 0;
    double step2 = 0;
    int tobound = 0;                                /* does x reach a bound xopt is off? */
    for (int i = 0; i < n; i++) {
        x[i] = st->xc[i] + d[i];
        /* within rhoend of a bound is on it at the resolution asked for */
        if (x[i] - st->xl[i] < rhoend) x[i] = st->xl[i];
        if (st->xu[i] - x[i] < rhoend) x[i] = st->xu[i];
    }
    for (int i = 0; i < n; i++) {
        step2 += sq(x[i] - st->xc[i]);
        if ((x[i] == st->xl[i] || x[i] == st->xu[i]) && x[i] != st->xc[i]) tobound = 1;
    }
    if (step2 < sq(rhoend) && !tobound) return 0;   /* nothing to learn beyond x's resolution */
    double f = bq_eval(st, x);
    if (f <= st->fv[st->kopt]) {                    /* keep it as the best point */
        memcpy(st->Y + st->kopt * n, x, n * sizeof(double));
        st->fv[st->kopt] = f;
    }
    return 0;
}

/* Keep the model's errors |f - Q| at the last three new points and their distances
 * from xopt (err[0], errd[0]: the newest) */
static void bq_record_err(const bq_state *st, double *err, double *errd, const double *x, double f)
{
    double r2 = 0;
    for (int i = 0; i < st->n; i++) r2 += sq(x[i] - st->xc[i]);
    err[2] = err[1]; err[1] = err[0]; err[0] = fabs(f - bq_qval(st, x));
    errd[2] = errd[1]; errd[1] = errd[0]; errd[0] = sqrt(r2);
}

/* The main iteration on the free variables; result point is Y[kopt]. */
static int bq_solve(bq_state *st, double rhobeg, double rhoend, double ftol_abs)
{
    int n = st->n, i, status, nfsav;
    double rho = rhobeg, Delta = rhobeg, err[3] = { R_PosInf, R_PosInf, R_PosInf };
    double errd[3] = { 0, 0, 0 };
    double *d = st->wk + 4 * n, *xnew = st->wk + 5 * n, *sl = st->wk + 6 * n, *su = st->wk + 7 * n;
    double *trwk = st->wk + 8 * n;

    st->kopt = 0;
    status = bq_initial(st, rhobeg);
    if (status) return status;
    memcpy(st->xc, st->Y, n * sizeof(double));
    st->c = 0;
    memset(st->g, 0, n * sizeof(double));
    memset(st->H, 0, (size_t) n * n * sizeof(double));
    if (bq_rebuild(st)) return 3;
    nfsav = st->feval;

    for (;;) {
        R_CheckUserInterrupt();
        if (st->feval >= st->maxeval) return 1;
        const double *xo = st->xc;
        double fopt = st->fv[st->kopt], crvmin, ratio = -1, dnorm, distlim2, fnew;
        double ftol = bq_ftol(ftol_abs, fopt);
        int shortstep, reduce = 0;

        for (i = 0; i < n; i++) { sl[i] = st->xl[i] - xo[i]; su[i] = st->xu[i] - xo[i]; }
        double pred = bq_trstep(n, st->g, st->H, sl, su, Delta, d, &crvmin, trwk, st->fixed);
        dnorm = fmin(Delta, sqrt(dot(n, d, d)));
        double errbig = fmax(err[0], fmax(err[1], err[2]));
        /* Q's accuracy where it matters for the final f: within r_f = sqrt(2 ftol / crvmin)
         * of xopt (where Q rises by ftol).  Q - f vanishes at xopt, so an error e seen at
         * distance r > r_f shrinks there at least like e r_f / r (linearly, when the error
         * is in the gradient; quadratically when in the curvature). */
        /* (only when Q is a full quadratic: with 2n+1 points its curvature is a guess) */
        int fullq = st->m == (n + 1) * (n + 2) / 2;
        double rf = fullq && crvmin > 0 ? sqrt(2 * ftol / crvmin) : R_PosInf, errval = 0;
        for (i = 0; i < 3; i++) errval = fmax(errval, err[i] * fmin(1, rf / errd[i]));
        if (ftol > 0 && pred <= ftol && errval <= ftol) {
            /* validated model, no decrease left in the trust region; a small trust region
             * must not hide a decrease further out (a long flat valley): the model must
             * promise no more than ftol within radius rhobeg either */
            double crvwide, *dwide = st->wk + 11 * n;
            double predwide = bq_trstep(n, st->g, st->H, sl, su, fmax(Delta, rhobeg), dwide,
                                        &crvwide, trwk, st->fixed);
            if (predwide <= ftol) return bq_polish(st, dwide, rhoend);
        }
        /* a step much shorter than rho is tried only if it promises more than ftol and
         * the promise is credible: Q's last error was below it (or is not known yet).
         * Otherwise (Powell's short step) no evaluation: the points are improved or rho
         * reduced, since repeated short steps with a poorly determined Q converge only
         * slowly, each new point replacing the previous best near xopt. */
        int credible = !(fullq && R_FINITE(err[0]) && err[0] > pred);
        shortstep = dnorm < 0.5 * rho && !(ftol > 0 && pred > ftol && credible);
        if (shortstep) {
            Delta *= 0.1;
            if (Delta <= 1.5 * rho) Delta = rho;
            if (st->feval > nfsav + 2) {             /* is the model good at this rho? */
                int good = !(crvmin > 0 && errbig > 0.125 * crvmin * rho * rho);
                double bdtol = errbig / rho;
                for (i = 0; good && i < n; i++) {
                    double out;                      /* outward slope at an active bound */
                    if (d[i] <= sl[i]) out = st->g[i] + dot(n, st->H + i * n, d);
                    else if (d[i] >= su[i]) out = -(st->g[i] + dot(n, st->H + i * n, d));
                    else continue;
                    if (out < bdtol && out + 0.5 * st->H[i + i * n] * rho < bdtol) good = 0;
                }
                reduce = good;
            }
            distlim2 = sq(10 * rho);
        } else {
            for (i = 0; i < n; i++) {
                xnew[i] = xo[i] + d[i];
                if (d[i] <= sl[i] || xnew[i] < st->xl[i]) xnew[i] = st->xl[i];
                if (d[i] >= su[i] || xnew[i] > st->xu[i]) xnew[i] = st->xu[i];
            }
            fnew = bq_eval(st, xnew);
            if (!R_FINITE(fnew)) {                   /* infeasible: shrink */
                Delta = 0.5 * dnorm;
                if (Delta < rho) { Delta = rho; if (rho > rhoend) reduce = 1; else return 0; }
                if (!reduce) continue;
            } else {
                bq_record_err(st, err, errd, xnew, fnew);
                ratio = pred > 0 ? (fopt - fnew) / pred : -1;
                if (ratio <= 0.1) Delta = fmin(0.5 * Delta, dnorm);
                else if (ratio <= 0.7) Delta = fmax(0.5 * Delta, dnorm);
                else Delta = fmax(0.5 * Delta, 2 * dnorm);
                if (Delta <= 1.5 * rho) Delta = rho;
                int t = bq_choose(st, xnew, fnew, Delta);
                if (t < 0 || bq_replace(st, t, xnew, fnew)) return 3;
                if (ratio >= 0.1) continue;
            }
            distlim2 = fmax(sq(2 * Delta), sq(10 * rho));
        }
        if (!reduce) {
            /* geometry: move the point farthest from xopt if it is too far */
            int kfar = -1;
            double dmax2 = distlim2;
            xo = st->xc;
            for (int j = 0; j < st->m; j++) {
                double d2 = 0;
                for (i = 0; i < n; i++) d2 += sq(st->Y[j * n + i] - xo[i]);
                if (d2 > dmax2) { dmax2 = d2; kfar = j; }
            }
            if (kfar >= 0) {
                double dist = sqrt(dmax2);
                if (shortstep) { Delta = fmin(0.1 * Delta, 0.5 * dist); if (Delta <= 1.5 * rho) Delta = rho; }
                double adelt = fmax(fmin(0.1 * dist, Delta), rho);
                if (st->feval >= st->maxeval) return 1;
                bq_geostep(st, kfar, adelt, xnew);
                fnew = bq_eval(st, xnew);
                for (int tries = 0; !R_FINITE(fnew) && tries < 5 && st->feval < st->maxeval; tries++) {
                    for (i = 0; i < n; i++) xnew[i] = 0.5 * (xnew[i] + xo[i]);
                    fnew = bq_eval(st, xnew);
                }
                if (R_FINITE(fnew)) {
                    bq_record_err(st, err, errd, xnew, fnew);
                    if (bq_replace(st, kfar, xnew, fnew)) return 3;
                    continue;
                }
            }
            if (ratio > 0 || fmax(Delta, dnorm) > rho) continue;
        }
        /* reduce rho */
        if (rho <= rhoend) return 0;
        double rhonew = rho <= 16 * rhoend ? rhoend : rho <= 250 * rhoend ? sqrt(rho * rhoend) : 0.1 * rho;
        Delta = fmax(0.5 * rho, rhonew);
        rho = rhonew;
        nfsav = st->feval;
    }
}

lmm_opt_result lmm_minimise(lmm_objective_fn f, void *ctx, int nall, double *x,
                            const double *lower, const double *upper,
                            const lmm_opt_control *ctrl)
{
    lmm_opt_result res = { 0, 0, R_PosInf };
    const void *vmax = vmaxget();
    bq_state st_, *st = &st_;
    int i, n = 0;
    double rhobeg = ctrl->rhobeg, rhoend = ctrl->rhoend;

    st->fn = f; st->ctx = ctx; st->feval = 0;
    st->nall = nall; st->verbose = ctrl->verbose;
    st->maxeval = ctrl->maxeval > 0 ? ctrl->maxeval : 1;
    st->xall = (double *) R_alloc(nall > 0 ? nall : 1, sizeof(double));
    st->ifree = (int *) R_alloc(nall > 0 ? nall : 1, sizeof(int));
    for (i = 0; i < nall; i++) {                 /* start in the box; drop fixed variables */
        double xi = x[i];
        if (xi < lower[i]) xi = lower[i];
        if (xi > upper[i]) xi = upper[i];
        st->xall[i] = xi;
        if (upper[i] > lower[i]) st->ifree[n++] = i;
    }
    st->n = n;
    if (n == 0) {
        res.fmin = f(st->xall, ctx); res.feval = 1;
        if (!R_FINITE(res.fmin)) { res.status = 2; res.fmin = R_PosInf; }
        memcpy(x, st->xall, nall * sizeof(double));
        vmaxset(vmax);
        return res;
    }
    /* m: a full quadratic model ((n+1)(n+2)/2 points) for n <= 5: the Hessian then comes
     * from the points alone, where the least-Frobenius updates of a 2n+1 point model may
     * keep a wrong curvature across a long flat valley; else 2n+1 points */
    int m = n <= 5 ? (n + 1) * (n + 2) / 2 : 2 * n + 1, k;
    k = m + n + 1;
    st->m = m; st->k = k;
    st->xl = (double *) R_alloc(n, sizeof(double));
    st->xu = (double *) R_alloc(n, sizeof(double));
    st->Y = (double *) R_alloc((size_t) m * n, sizeof(double));
    st->S = (double *) R_alloc((size_t) m * n, sizeof(double));
    st->fv = (double *) R_alloc(m, sizeof(double));
    st->xc = (double *) R_alloc(n, sizeof(double));
    st->g = (double *) R_alloc(n, sizeof(double));
    st->H = (double *) R_alloc((size_t) n * n, sizeof(double));
    st->W = (double *) R_alloc((size_t) k * k, sizeof(double));
    st->Winv = (double *) R_alloc((size_t) k * k, sizeof(double));
    st->w = (double *) R_alloc(k, sizeof(double));
    st->v = (double *) R_alloc(k, sizeof(double));
    st->r = (double *) R_alloc(k, sizeof(double));
    st->ipiv = (int *) R_alloc(k, sizeof(int));
    st->fixed = (int *) R_alloc(n, sizeof(int));
    st->wk = (double *) R_alloc(13 * (size_t) n, sizeof(double));
    double width = R_PosInf;
    for (i = 0; i < n; i++) {
        st->xl[i] = lower[st->ifree[i]];
        st->xu[i] = upper[st->ifree[i]];
        st->Y[i] = st->xall[st->ifree[i]];
        if (st->xu[i] - st->xl[i] < width) width = st->xu[i] - st->xl[i];
    }
    if (!(rhobeg > 0)) rhobeg = 0.2;
    if (rhobeg > 0.5 * width) rhobeg = 0.5 * width;  /* two steps must fit in the box */
    if (!(rhoend > 0) || rhoend > rhobeg) rhoend = rhobeg;

    double ftol = ctrl->ftol_abs > 0 ? ctrl->ftol_abs : 0;
    st->kopt = 0;
    res.status = n == 1 ? line_solve(st, rhobeg, rhoend, ftol) : bq_solve(st, rhobeg, rhoend, ftol);
    res.feval = st->feval;
    if (res.status != 2) {
        for (i = 0; i < n; i++) st->xall[st->ifree[i]] = st->Y[st->kopt * n + i];
        res.fmin = st->fv[st->kopt];
    }
    memcpy(x, st->xall, nall * sizeof(double));
    vmaxset(vmax);
    return res;
}

/* ---- test entry: minimise an R function (one R call per evaluation) ---- */

typedef struct { SEXP call; int n; } r_objective_ctx;

static double r_objective(const double *x, void *ctx)
{
    r_objective_ctx *rc = (r_objective_ctx *) ctx;
    SEXP xr = PROTECT(allocVector(REALSXP, rc->n));
    memcpy(REAL(xr), x, rc->n * sizeof(double));
    SETCADR(rc->call, xr);                       /* call protects xr from here on */
    SEXP val = eval(rc->call, R_GlobalEnv);
    double f = (LENGTH(val) == 1) ? asReal(val) : NA_REAL;
    UNPROTECT(1);                                /* xr */
    return f;
}

SEXP lmm_test_optimiser(SEXP fn, SEXP x0, SEXP lower, SEXP upper, SEXP rhobeg,
                        SEXP rhoend, SEXP maxeval, SEXP ftol_abs)
{
    int n = LENGTH(x0);
    if (!isFunction(fn)) error(_("'fn' must be a function"));
    if (LENGTH(lower) != n || LENGTH(upper) != n)
        error(_("'lower' and 'upper' must have the length of 'x0'"));
    SEXP x = PROTECT(duplicate(coerceVector(x0, REALSXP)));
    SEXP lo = PROTECT(coerceVector(lower, REALSXP)), up = PROTECT(coerceVector(upper, REALSXP));
    SEXP call = PROTECT(lang2(fn, R_NilValue));
    r_objective_ctx rc = { call, n };
    lmm_opt_control ctrl = { asReal(rhobeg), asReal(rhoend), asReal(ftol_abs), asInteger(maxeval), 0 };
    lmm_opt_result res = lmm_minimise(r_objective, &rc, n, REAL(x), REAL(lo), REAL(up), &ctrl);

    SEXP ans = PROTECT(allocVector(VECSXP, 4)), nms = PROTECT(allocVector(STRSXP, 4));
    SET_VECTOR_ELT(ans, 0, x);
    SET_VECTOR_ELT(ans, 1, ScalarReal(res.fmin));
    SET_VECTOR_ELT(ans, 2, ScalarInteger(res.feval));
    SET_VECTOR_ELT(ans, 3, ScalarInteger(res.status));
    SET_STRING_ELT(nms, 0, mkChar("par"));
    SET_STRING_ELT(nms, 1, mkChar("value"));
    SET_STRING_ELT(nms, 2, mkChar("feval"));
    SET_STRING_ELT(nms, 3, mkChar("status"));
    setAttrib(ans, R_NamesSymbol, nms);
    UNPROTECT(6);                                /* x, lo, up, call, ans, nms */
    return ans;
}
