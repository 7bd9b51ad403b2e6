/*
 * quasi_newton.c -- projected BFGS with an active set for f over a box (see quasi_newton.h).
 *
 * Iteration: free set F = variables not held at a bound (held: x_i = lower_i with g_i >= 0, or
 * x_i = upper_i with g_i <= 0); direction d_F = -B_FF^{-1} g_F, d = 0 off F; trial points
 * x(alpha) = P(x + alpha d) (bounds approached geometrically: box_step) with alpha = 1, 1/2 ... (safeguarded quadratic interpolation),
 * accepted by Armijo f(x(alpha)) <= f + c1 g'(x(alpha) - x), or, when the decrease is below
 * f's rounding level, by the curvature test |g(x(alpha))'s| <= |g's| / 2 (the line minimum is
 * bracketed).  B is updated by BFGS with s = x+ - x, y = g+ - g, y damped (Powell) so that
 * s'y >= 0.2 s'Bs keeps B positive definite; the first update starts from the diagonal
 * B_0 = diag(y_i / s_i) (each within 1e3 of y'y / s'y, else that; measured: sleepstudy 15 -> 8
 * evaluations, InstEval 15 -> 9, the 72-theta kb07-shaped model 294 -> 142, against (y'y / s'y) I).
 */
#include "lmm.h"
#include "quasi_newton.h"
#include <string.h>
#include <math.h>

typedef struct {
    lmm_fg_fn fg;
    void *ctx;
    int n, feval, geval, maxeval, verbose, binit;
    const double *lower, *upper;
    double *x, f, *g;        /* current point */
    double *xt, ft, *gt;     /* trial point */
    double *B, *d, *s, *y, *Bs, *M; /* BFGS matrix and work */
    int *fr;                 /* free indices */
} qn_state;

static void qn_trace(const qn_state *st, const double *x, double f)
{
    Rprintf("iteration: %d\n\tf(x) = %f\n\tx = (", st->feval, f);
    for (int i = 0; i < st->n; i++) Rprintf(i ? ", %g" : "%g", x[i]);
    Rprintf(")\n");
}

/* f and g at x (f = +Inf when not finite); counts the evaluation */
static double qn_eval(qn_state *st, const double *x, double *g)
{
    double f;
    st->feval++;
    if (st->fg(x, &f, g, st->ctx) || !R_FINITE(f)) f = R_PosInf;
    else st->geval++;
    if (st->verbose > 0) qn_trace(st, x, f);
    return f;
}

static int held(const qn_state *st, int i, const double *x, const double *g)
{
    return st->lower[i] >= st->upper[i] || (x[i] <= st->lower[i] && g[i] > 0) ||
           (x[i] >= st->upper[i] && g[i] < 0);
}

/* the scaled projected gradient max_i |pg_i| max(1, |x_i|); fills the free set, returns nf */
static double projected_gradient(qn_state *st, int *nf)
{
    double pg = 0;
    *nf = 0;
    for (int i = 0; i < st->n; i++) {
        if (held(st, i, st->x, st->g)) continue;
        st->fr[(*nf)++] = i;
        double v = fabs(st->g[i]) * fmax(1.0, fabs(st->x[i]));
        if (v > pg) pg = v;
    }
    return pg;
}

/* d: the quasi-Newton step on the free set (or a scaled steepest-descent step when B is not
   set up or B_FF is not positive definite); returns g'd */
static double direction(qn_state *st, int nf, double step0)
{
    int n = st->n;
    memset(st->d, 0, n * sizeof(double));
    int ok = st->binit;
    if (ok) {
        for (int a = 0; a < nf; a++)
            for (int b = 0; b < nf; b++) st->M[a + b * nf] = st->B[st->fr[a] + st->fr[b] * n];
        ok = lmm_chol_small(nf, st->M) == 0;
    }
    if (ok) {                                   /* solve L L' d_F = -g_F */
        double *v = st->y;                      /* scratch (y is set again after the step) */
        for (int a = 0; a < nf; a++) {
            double s = -st->g[st->fr[a]];
            for (int b = 0; b < a; b++) s -= st->M[a + b * nf] * v[b];
            v[a] = s / st->M[a + a * nf];
        }
        for (int a = nf - 1; a >= 0; a--) {
            double s = v[a];
            for (int b = a + 1; b < nf; b++) s -= st->M[b + a * nf] * v[b];
            v[a] = s / st->M[a + a * nf];
        }
        for (int a = 0; a < nf; a++) st->d[st->fr[a]] = v[a];
    } else {
        st->binit = 0;
        double gm = 0;
        for (int a = 0; a < nf; a++) gm = fmax(gm, fabs(st->g[st->fr[a]]));
        for (int a = 0; a < nf; a++) st->d[st->fr[a]] = -st->g[st->fr[a]] * step0 / gm;
    }
    /* no step longer than max(1, |x|) (max norm) */
    double xm = 1, dm = 0, gd = 0;
    for (int i = 0; i < n; i++) { xm = fmax(xm, fabs(st->x[i])); dm = fmax(dm, fabs(st->d[i])); }
    if (dm > xm) for (int i = 0; i < n; i++) st->d[i] *= xm / dm;
    for (int i = 0; i < n; i++) gd += st->g[i] * st->d[i];
    return gd;
}

/* Component i of the path P(x + alpha d), with a variable at distance delta > SNAP from its bound
   taken at most to delta / 10 from it: a criterion even in x_i has g_i = 0 at x_i = 0 and could
   not leave the bound by its gradient, so bounds are approached geometrically and only reached
   from within SNAP (where the first-order test, or the boundary probe, settles the matter). */
#define SNAP 1e-6
#define NOISE_FACTOR 1e3
static double box_step(const qn_state *st, int i, double v)
{
    double lo = st->lower[i], up = st->upper[i], x = st->x[i];
    if (v < lo) v = x - lo > SNAP ? lo + 0.1 * (x - lo) : lo;
    if (v > up) v = up - x > SNAP ? up - 0.1 * (up - x) : up;
    return v;
}

/* backtracking search along P(x + alpha d); on success the trial point is in xt, ft, gt and
   s = xt - x.  Returns 0 on success, 1 when no acceptable point was found, 2 at maxeval. */
static int line_search(qn_state *st)
{
    int n = st->n;
    double alpha = 1, fnoise = 1e-12 * fmax(1.0, fabs(st->f));
    for (int tries = 0; tries < 30; tries++) {
        if (st->feval >= st->maxeval) return 2;
        int moved = 0;
        double dec = 0;
        for (int i = 0; i < n; i++) {
            double v = box_step(st, i, st->x[i] + alpha * st->d[i]);
            st->xt[i] = v;
            st->s[i] = v - st->x[i];
            moved |= st->s[i] != 0;
            dec += st->g[i] * st->s[i];
        }
        if (!moved || dec >= 0) return 1;
        double sm = 0, xm = 1;
        for (int i = 0; i < n; i++) { sm = fmax(sm, fabs(st->s[i])); xm = fmax(xm, fabs(st->x[i])); }
        if (tries > 0 && sm < 1e-10 * xm) return 1;          /* steps below theta's precision */
        st->ft = qn_eval(st, st->xt, st->gt);
        if (R_FINITE(st->ft)) {
            if (st->ft <= st->f + 1e-4 * dec) return 0;
            double gts = 0;
            for (int i = 0; i < n; i++) gts += st->gt[i] * st->s[i];
            if (st->ft <= st->f + fnoise && fabs(gts) <= 0.5 * fabs(dec)) return 0;
            /* minimiser of the parabola through f, slope dec/alpha and ft */
            double slope = dec / alpha, den = 2 * (st->ft - st->f - slope * alpha);
            double anew = den > 0 ? -slope * alpha * alpha / den : 0.5 * alpha;
            alpha = fmin(fmax(anew, 0.1 * alpha), 0.5 * alpha);
        } else alpha *= 0.1;
    }
    return 1;
}

/* BFGS update of B with (s, y = gt - g), damped */
static void bfgs_update(qn_state *st)
{
    int n = st->n;
    double sy = 0, yy = 0, ss = 0;
    for (int i = 0; i < n; i++) {
        st->y[i] = st->gt[i] - st->g[i];
        sy += st->s[i] * st->y[i];
        yy += st->y[i] * st->y[i];
        ss += st->s[i] * st->s[i];
    }
    if (ss == 0) return;
    if (!st->binit) {                 /* B_0: diagonal secants y_i / s_i where positive */
        double gamma = sy > 0 ? yy / sy : 1.0;
        memset(st->B, 0, (size_t) n * n * sizeof(double));
        for (int i = 0; i < n; i++) {
            double r = st->s[i] != 0 ? st->y[i] / st->s[i] : 0;
            st->B[i + i * n] = r > 1e-3 * gamma && r < 1e3 * gamma ? r : gamma;
        }
        st->binit = 1;
    }
    double sBs = 0;
    for (int i = 0; i < n; i++) {
        double v = 0;
        for (int j = 0; j < n; j++) v += st->B[i + j * n] * st->s[j];
        st->Bs[i] = v;
        sBs += v * st->s[i];
    }
    if (sBs <= 0) return;
    if (sy < 0.2 * sBs) {                        /* Powell's damping */
        double th = 0.8 * sBs / (sBs - sy);
        for (int i = 0; i < n; i++) st->y[i] = th * st->y[i] + (1 - th) * st->Bs[i];
        sy = 0.2 * sBs;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++)
            st->B[i + j * n] += st->y[i] * st->y[j] / sy - st->Bs[i] * st->Bs[j] / sBs;
}

static void accept_trial(qn_state *st)
{
    memcpy(st->x, st->xt, st->n * sizeof(double));
    memcpy(st->g, st->gt, st->n * sizeof(double));
    st->f = st->ft;
}

/* iterate from the current point to a first-order point; returns the status */
static int qn_run(qn_state *st, const lmm_qn_control *ctrl, double *pgmax)
{
    double decrement = R_PosInf;
    for (;;) {
        R_CheckUserInterrupt();
        int nf;
        double pg = projected_gradient(st, &nf);
        *pgmax = pg;
        if (pg <= ctrl->gtol * fmax(1.0, fabs(st->f))) return 0;
        if (st->feval >= st->maxeval) return 1;
        double gd = direction(st, nf, ctrl->step0);
        int ls = line_search(st);
        if (ls == 2) return 1;
        if (ls == 1) {
            /* no decrease at f's rounding level: a minimum as far as f can tell; accepted when
               the gradient is within NOISE_FACTOR of the tolerance (its own rounding), or, when
               steepest descent fails as well, the quasi-Newton model predicted a decrease
               -g'd / 2 = g_F' B_FF^-1 g_F / 2 (the Newton decrement) below f's rounding level --
               large n: a gradient of 0.6 with a curvature of 1e6 is a step of 6e-7 worth 2e-7
               of a criterion of 3.5e6 */
            if (pg <= NOISE_FACTOR * ctrl->gtol * fmax(1.0, fabs(st->f))) return 4;
            if (!st->binit)                     /* steepest descent failed too */
                return decrement <= 1e-12 * fmax(1.0, fabs(st->f)) ? 4 : 3;
            decrement = -0.5 * gd;              /* the quasi-Newton model's, kept */
            st->binit = 0;                      /* retry along -g */
            continue;
        }
        bfgs_update(st);
        accept_trial(st);
    }
}

/* Probe each variable resting on its lower bound one step h inside: descent there (f lower,
   or the partial derivative negative) means the bound point is not a minimum.  The best such
   probe point becomes the current point; returns 1 if there was one. */
static int boundary_probe(qn_state *st, const lmm_qn_control *ctrl)
{
    int n = st->n, found = 0;
    double tol = ctrl->gtol * fmax(1.0, fabs(st->f)), fbest = R_PosInf;
    double *xb = st->Bs, *gb = st->M + (size_t) n * n;  /* spare workspace */
    for (int i = 0; i < n; i++) {
        if (!(st->x[i] <= st->lower[i]) || st->upper[i] - st->lower[i] <= ctrl->probe) continue;
        if (st->feval >= st->maxeval) break;
        memcpy(st->xt, st->x, n * sizeof(double));
        st->xt[i] = st->lower[i] + ctrl->probe;
        double ft = qn_eval(st, st->xt, st->gt);
        if (!R_FINITE(ft)) continue;
        int descent = ft < st->f - 1e-12 * fmax(1.0, fabs(st->f)) || st->gt[i] < -tol;
        if (descent && ft < fbest) {
            fbest = ft;
            found = 1;
            memcpy(xb, st->xt, n * sizeof(double));
            memcpy(gb, st->gt, n * sizeof(double));
        }
    }
    if (!found) return 0;
    memcpy(st->x, xb, n * sizeof(double));
    memcpy(st->g, gb, n * sizeof(double));
    st->f = fbest;
    st->binit = 0;
    return 1;
}

/* Variables within SNAP of a lower bound are tried exactly on it; the point is kept when f does
   not rise above its rounding level (f even in x_i is flat to O(x_i^2) there).  Returns 1 if
   kept. */
static int snap_to_bounds(qn_state *st)
{
    int n = st->n, any = 0;
    if (st->feval >= st->maxeval) return 0;
    memcpy(st->xt, st->x, n * sizeof(double));
    for (int i = 0; i < n; i++)
        if (st->x[i] > st->lower[i] && st->x[i] - st->lower[i] <= SNAP) {
            st->xt[i] = st->lower[i];
            any = 1;
        }
    if (!any) return 0;
    st->ft = qn_eval(st, st->xt, st->gt);
    if (!(st->ft <= st->f + 1e-13 * fmax(1.0, fabs(st->f)))) return 0;
    accept_trial(st);
    return 1;
}

lmm_qn_result lmm_qn_minimise(lmm_fg_fn fg, void *ctx, int n, double *x,
                              const double *lower, const double *upper,
                              const lmm_qn_control *ctrl, double *grad, double *hess)
{
    qn_state st;
    memset(&st, 0, sizeof st);
    st.fg = fg; st.ctx = ctx; st.n = n; st.maxeval = ctrl->maxeval; st.verbose = ctrl->verbose;
    st.lower = lower; st.upper = upper; st.x = x;
    double *ws = (double *) R_alloc((size_t) 2 * n * n + 8 * (size_t) n + 1, sizeof(double));
    st.B = ws; st.M = ws + (size_t) n * n;      /* M: n x n, then n spare (gb) */
    st.g = st.M + (size_t) n * n + n; st.xt = st.g + n; st.gt = st.xt + n;
    st.d = st.gt + n; st.s = st.d + n; st.y = st.s + n; st.Bs = st.y + n;
    st.fr = (int *) R_alloc(n + 1, sizeof(int));
    for (int i = 0; i < n; i++) x[i] = fmin(fmax(x[i], lower[i]), upper[i]);
    lmm_qn_result res = {0, 0, 0, 0, R_PosInf, R_PosInf};
    st.f = qn_eval(&st, x, st.g);
    if (!R_FINITE(st.f)) {
        res.feval = st.feval; res.status = 2;
        if (grad) for (int i = 0; i < n; i++) grad[i] = NA_REAL;
        if (hess) for (size_t i = 0; i < (size_t) n * n; i++) hess[i] = NA_REAL;
        return res;
    }
    double *xbest = (double *) R_alloc(2 * n + 1, sizeof(double)), *gbest = xbest + n;
    double fbest, pgbest;
    int status = qn_run(&st, ctrl, &res.pgmax), noisy = 0;
    for (;;) {
        if (status == 4) status = 0, noisy = 1;
        if (status == 0 && snap_to_bounds(&st)) status = qn_run(&st, ctrl, &res.pgmax);
        if (status == 4) status = 0, noisy = 1;
        memcpy(xbest, st.x, n * sizeof(double));
        memcpy(gbest, st.g, n * sizeof(double));
        fbest = st.f;
        pgbest = res.pgmax;
        if (status != 0 || res.restarts >= 5 || !boundary_probe(&st, ctrl)) break;
        res.restarts++;
        int s2 = qn_run(&st, ctrl, &res.pgmax);
        if (s2 == 4) s2 = 0, noisy = 1;
        if (st.f > fbest) {                     /* keep the better point */
            memcpy(st.x, xbest, n * sizeof(double));
            st.f = fbest;
            res.pgmax = pgbest;
            if (s2 == 1) status = 1;
            break;
        }
        status = s2;
    }
    memcpy(x, xbest, n * sizeof(double));
    if (grad) memcpy(grad, gbest, n * sizeof(double));
    if (hess) for (size_t i = 0; i < (size_t) n * n; i++) hess[i] = st.binit ? st.B[i] : NA_REAL;
    res.fmin = fbest; res.pgmax = pgbest;
    res.feval = st.feval; res.geval = st.geval;
    res.status = status == 0 && noisy && pgbest > ctrl->gtol * fmax(1.0, fabs(fbest)) ? 4 : status;
    return res;
}
