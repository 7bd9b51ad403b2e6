/*
 * standardise.c -- the engine's internal coordinates for [X y], so that A = G'WG is well
 * conditioned whatever the location and scale of the data.
 *
 * The engine works with X* = X M and y* = (y - X* g) / s, where
 *     M = (I - e_c mu') D^{-1}: column j of X* is (x_j - mu_j x_c) / d_j, with x_c a constant
 *         column of X (the intercept; mu = 0 when there is none), mu_j x_c the column's mean and
 *         d_j its spread rounded to a power of 2 (mu_c = 0; d_c = |x_c| likewise), so that the
 *         scaling itself rounds nothing;
 *     g   the least-squares coefficients of y on X* (0 when X*'X* is singular), so that y* holds
 *         the residuals of y from the column span of X, and s their root mean square (a power of 2).
 * Since X* spans the same space as X and y - s y* lies in it, the penalised fit is the same
 * model in other coordinates:
 *     beta = M (g + s beta*),  u = s u*,  (R_X'R_X)^{-1} = M (R*'R*)^{-1} M',
 *     r^2 = s^2 r*^2,  log|R_X|^2 = log|R*|^2 + 2 sum log d_j,
 * and log|L_Z|^2 does not change.  The criterion's gradient with respect to theta is the same in
 * both coordinates.  Every row is mapped as it is read (crossprod.c), before any whitening, which
 * is linear in the rows and so commutes with the map.  Without the map a shift of y by c adds
 * about c^2 n to y'Wy and the penalised RSS is a difference of numbers that large.
 */
#include "lmm.h"
#include <string.h>

/* max |x_i| over n values at stride 1 (1 when all are zero or some is not finite) */
static double max_abs(int n, const double *x)
{
    double a = 0;
    for (int i = 0; i < n; i++) {
        if (!R_FINITE(x[i])) return 1.0;
        if (fabs(x[i]) > a) a = fabs(x[i]);
    }
    return a > 0 ? a : 1.0;
}

/* The constant non-zero column of X, or -1. */
static int constant_column(int n, int p, const double *X)
{
    for (int j = 0; j < p; j++) {
        const double *x = X + (size_t) j * n;
        if (x[0] == 0 || !R_FINITE(x[0])) continue;
        int i = 1;
        while (i < n && x[i] == x[0]) i++;
        if (i == n) return j;
    }
    return -1;
}

/* mean and root mean square about it (or about 0 when !centre) of x / a, a = max |x| */
static void spread(int n, const double *x, int centre, double *mean, double *rms)
{
    double a = max_abs(n, x), sm = 0, ss = 0;
    if (centre) for (int i = 0; i < n; i++) sm += x[i] / a;
    sm = centre ? sm / n : 0.0;
    for (int i = 0; i < n; i++) { double e = x[i] / a - sm; ss += e * e; }
    *mean = sm * a;
    *rms = sqrt(ss / n) * a;
}

/* Row r of X* into xs[0 .. p) (and, with y, y*_r into xs[p]). */
void lmm_std_row(const lmm_model *m, const double *X, const double *y, int r, double *xs)
{
    int n = m->n, p = m->p, c = m->std_c0;
    if (!m->std_d) {
        for (int j = 0; j < p; j++) xs[j] = X[r + (size_t) j * n];
        if (y) xs[p] = y[r];
        return;
    }
    double xc = c >= 0 ? X[r + (size_t) c * n] : 0.0;
    for (int j = 0; j < p; j++) xs[j] = (X[r + (size_t) j * n] - m->std_mu[j] * xc) / m->std_d[j];
    if (!y) return;
    double f = y[r];
    for (int j = 0; j < p; j++) f -= xs[j] * m->std_g[j];
    xs[p] = f / m->std_s;
}

/* g: least squares of y on X* through the normal equations of the (well-conditioned) X*. */
static void fit_shift(lmm_model *m, const double *X, const double *y)
{
    int n = m->n, p = m->p, info = 0, one = 1;
    double *XtX = (double *) R_alloc((size_t) p * p + 2 * p + 1, sizeof(double));
    double *Xty = XtX + (size_t) p * p, *xs = Xty + p;
    double ya = max_abs(n, y), ybar = 0, rms;
    int c = m->std_c0;
    if (c >= 0) spread(n, y, 1, &ybar, &rms);
    memset(XtX, 0, ((size_t) p * p + p) * sizeof(double));
    memset(m->std_g, 0, p * sizeof(double));
    for (int i = 0; i < n; i++) {                        /* X*'X* and X*'(y - ybar) / ya */
        lmm_std_row(m, X, NULL, i, xs);
        double f = (y[i] - ybar) / ya;
        for (int j = 0; j < p; j++) {
            Xty[j] += xs[j] * f;
            for (int l = j; l < p; l++) XtX[l + (size_t) j * p] += xs[l] * xs[j];
        }
    }
    if (p > 0) F77_CALL(dpotrf)("L", &p, XtX, &p, &info FCONE);
    if (p > 0 && info == 0) {
        F77_CALL(dpotrs)("L", &p, &one, XtX, &p, Xty, &p, &info FCONE);
        if (info == 0)
            for (int j = 0; j < p; j++) if (R_FINITE(Xty[j])) m->std_g[j] = Xty[j] * ya;
    }
    if (c >= 0) m->std_g[c] += ybar * m->std_d[c] / X[(size_t) c * n];   /* 1 = X*_c d_c / x_c */
}

/* s: root mean square of y - X* g (1 when it is zero or not finite). */
static void fit_scale(lmm_model *m, const double *X, const double *y)
{
    int n = m->n, p = m->p;
    double *e = (double *) R_alloc((size_t) n + p + 1, sizeof(double)), *xs = e + n;
    m->std_s = 1.0;
    for (int i = 0; i < n; i++) { lmm_std_row(m, X, y, i, xs); e[i] = xs[p]; }
    double mean, rms;
    spread(n, e, 0, &mean, &rms);
    m->std_s = (rms > 0 && R_FINITE(rms)) ? pow(2.0, round(log2(rms))) : 1.0;
}

/* Choose M, g and s from the raw X (n x p) and y; before the first lmm_crossprod. */
void lmm_standardise(lmm_model *m, const double *X, const double *y)
{
    int n = m->n, p = m->p;
    if (n < 1) return;
    const void *vmax = vmaxget();
    m->std_mu = R_Calloc(p + 1, double);
    m->std_d = R_Calloc(p + 1, double);
    m->std_g = R_Calloc(p + 1, double);
    int c = constant_column(n, p, X);
    m->std_c0 = c;
    m->std_ldM = 0;
    for (int j = 0; j < p; j++) {
        const double *x = X + (size_t) j * n;
        double mean = 0, rms = 0;
        if (j == c) rms = fabs(x[0]);                   /* spread of the constant: itself */
        else spread(n, x, c >= 0, &mean, &rms);
        m->std_mu[j] = (c >= 0 && j != c) ? mean / X[(size_t) c * n] : 0.0;
        m->std_d[j] = (rms > 0 && R_FINITE(rms)) ? pow(2.0, round(log2(rms))) : 1.0;  /* a power of 2: exact */
        m->std_ldM += 2 * log(m->std_d[j]);
    }
    m->std_s = 1.0;
    fit_shift(m, X, y);
    fit_scale(m, X, y);
    vmaxset(vmax);
}

/* beta <- M (g + s beta*) in place */
void lmm_std_beta(const lmm_model *m, double *beta)
{
    if (!m->std_d) return;
    int p = m->p, c = m->std_c0;
    for (int j = 0; j < p; j++) beta[j] = (m->std_g[j] + m->std_s * beta[j]) / m->std_d[j];
    if (c >= 0) for (int j = 0; j < p; j++) if (j != c) beta[c] -= m->std_mu[j] * beta[j];
}

/* v <- M v (v of length p) */
static void apply_M(const lmm_model *m, double *v)
{
    int p = m->p, c = m->std_c0;
    for (int j = 0; j < p; j++) v[j] /= m->std_d[j];
    if (c >= 0) for (int j = 0; j < p; j++) if (j != c) v[c] -= m->std_mu[j] * v[j];
}

/* V <- M V M' (V p x p, symmetric, full) */
void lmm_std_vcov(const lmm_model *m, double *V)
{
    if (!m->std_d) return;
    int p = m->p;
    for (int j = 0; j < p; j++) apply_M(m, V + (size_t) j * p);       /* M V */
    for (int j = 0; j < p; j++)                                         /* (M V)' */
        for (int l = 0; l < j; l++) {
            double t = V[l + (size_t) j * p];
            V[l + (size_t) j * p] = V[j + (size_t) l * p];
            V[j + (size_t) l * p] = t;
        }
    for (int j = 0; j < p; j++) apply_M(m, V + (size_t) j * p);       /* M (M V)' */
}

/* a <- M' a (a of length p): a row of X in X* coordinates' dual, for a M^{-1} a' forms */
void lmm_std_dual(const lmm_model *m, double *a)
{
    if (!m->std_d) return;
    int p = m->p, c = m->std_c0;
    double ac = c >= 0 ? a[c] : 0.0;
    for (int j = 0; j < p; j++) a[j] = (a[j] - m->std_mu[j] * ac) / m->std_d[j];
}
