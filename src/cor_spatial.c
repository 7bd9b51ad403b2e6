/*
 * cor_spatial.c -- nlme's spatial correlations corExp, corGaus, corLin, corRatio, corSpher:
 * between distinct rows of a group at distance d,
 *     cor = (1 - nugget) f(d / range),     diagonal 1,
 * with f(x) = exp(-x) (Exp), exp(-x^2) (Gaus), (1 - x)_+ (Lin), 1 / (1 + x^2) (Ratio),
 * 1 - 1.5 x + 0.5 x^3 for x < 1 else 0 (Spher).
 * cov: n x d coordinates; iopt = (nugget 0/1, metric: 0 euclidean, 1 maximum, 2 manhattan);
 * dopt[0] (0 when absent): the range's offset d0 (nlme: the smallest distance for Lin and Spher,
 * whose correlation is flat in the range below it).  Parameters (nlme's):
 *     range = d0 + exp(par[0]),    nugget = plogis(par[1]) (with a nugget).
 */
#include "residual.h"
#include <math.h>

static double f_exp(double x) { return exp(-x); }
static double f_gaus(double x) { return exp(-x * x); }
static double f_lin(double x) { return x < 1 ? 1 - x : 0; }
static double f_ratio(double x) { return 1 / (1 + x * x); }
static double f_spher(double x) { return x < 1 ? 1 - 1.5 * x + 0.5 * x * x * x : 0; }

/* distance between data rows i and j in the metric iopt[1] */
static double spatial_dist(const lmm_cor *c, int i, int j)
{
    double d = 0;
    for (int k = 0; k < c->d; k++) {
        double dk = fabs(c->cov[i + (size_t) k * c->n] - c->cov[j + (size_t) k * c->n]);
        if (c->iopt[1] == 1) d = dk > d ? dk : d;
        else if (c->iopt[1] == 2) d += dk;
        else d += dk * dk;
    }
    return c->iopt[1] == 0 ? sqrt(d) : d;
}

static int spatial(const lmm_cor *c, int m, const int *rows, const double *par, double *R,
                   double (*f)(double))
{
    double d0 = c->ndopt > 0 ? c->dopt[0] : 0;
    double range = d0 + exp(par[0]);
    double sill = c->iopt[0] ? 1 / (1 + exp(par[1])) : 1;  /* 1 - nugget */
    if (!(range > 0) || !R_FINITE(range) || !(sill > 0) || !R_FINITE(par[0])) return 1;
    for (int b = 0; b < m; b++) {
        R[b + (size_t) b * m] = 1;
        for (int a = b + 1; a < m; a++)
            R[a + (size_t) b * m] = R[b + (size_t) a * m] =
                sill * f(spatial_dist(c, rows[a], rows[b]) / range);
    }
    return 0;
}

int lmm_cor_exp(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return spatial(c, m, rows, par, R, f_exp);
}

int lmm_cor_gaus(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return spatial(c, m, rows, par, R, f_gaus);
}

int lmm_cor_lin(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return spatial(c, m, rows, par, R, f_lin);
}

int lmm_cor_ratio(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return spatial(c, m, rows, par, R, f_ratio);
}

int lmm_cor_spher(const lmm_cor *c, int m, const int *rows, const double *par, double *R)
{
    return spatial(c, m, rows, par, R, f_spher);
}
