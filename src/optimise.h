/* optimise.h -- bound-constrained derivative-free minimisation (lmmc).
 *
 * lmm_minimise() minimises f over the box lower <= x <= upper by quadratic
 * interpolation models in a trust region, after M.J.D. Powell's BOBYQA
 * (Cambridge NA report NA2009/06): m = (n+1)(n+2)/2 interpolation points for
 * n <= 5 (a full quadratic), else m = 2n + 1, the model
 * Hessian changed by the least Frobenius norm at each new point, steps kept in
 * the box, geometry-improving steps, and a radius rho shrinking from rhobeg
 * to rhoend.  Every evaluation point satisfies lower <= x <= upper.
 */
#ifndef LMMC_OPTIMISE_H
#define LMMC_OPTIMISE_H

/* f(x); may return +Inf (infeasible point); NaN is treated as +Inf */
typedef double (*lmm_objective_fn)(const double *x, void *ctx);

typedef struct {
    double rhobeg;   /* initial trust-region radius, e.g. 0.2 * max(1, max|x0|) */
    double rhoend;   /* final radius, e.g. 1e-8 ... 2e-7 */
    double ftol_abs; /* stop once the model is validated to within ftol_abs and
                        predicts a decrease below ftol_abs; 0 = unused.  Raised to
                        100 eps |f| (f's rounding level) when below that */
    int maxeval;     /* largest number of evaluations of f */
    int verbose;     /* > 0: print each evaluation (number, f, x) through Rprintf */
} lmm_opt_control;

/* status: 0 = converged, 1 = maxeval reached, 2 = f(x0) not finite,
 *         3 = numerical breakdown of the interpolation system (best point returned) */
typedef struct { int feval; int status; double fmin; } lmm_opt_result;

lmm_opt_result lmm_minimise(lmm_objective_fn f, void *ctx, int n,
                            double *x /* in: start, out: best point */,
                            const double *lower, const double *upper /* may be -Inf/+Inf */,
                            const lmm_opt_control *ctrl);

#endif
