/* quasi_newton.h -- bound-constrained quasi-Newton minimisation with an analytic gradient (lmmc).
 *
 * lmm_qn_minimise() minimises f over lower <= x <= upper by a projected BFGS method: the
 * variables at a bound whose gradient points out of the box are held there (the active set),
 * the others take the step solving B_FF d_F = -g_F with the BFGS Hessian approximation B
 * (Powell-damped updates), along the projected path P(x + alpha d) with a backtracking
 * Armijo search.  It stops on the first-order conditions, scaled to the criterion:
 *     max_i |pg_i| max(1, |x_i|) <= gtol max(1, |f|),
 * pg the projected gradient (0 for held variables).  A criterion that depends on x_i only
 * through x_i^2 has g_i = 0 at x_i = 0 whether or not that is a minimum; so every variable
 * resting on a bound is probed one step h inside: if f or the gradient there shows descent
 * into the box, the method restarts from that interior point (a bounded number of times).
 */
#ifndef LMMC_QUASI_NEWTON_H
#define LMMC_QUASI_NEWTON_H

/* f(x) and its gradient g(x); returns 0, or non-zero when f is not finite at x (g unset) */
typedef int (*lmm_fg_fn)(const double *x, double *f, double *g, void *ctx);

typedef struct {
    double gtol;     /* first-order tolerance (relative to max(1, |f|)), e.g. 1e-9 */
    double step0;    /* length (max norm) of the first step, e.g. 0.05 ... 0.2 */
    double probe;    /* the boundary probe's step h, e.g. 1e-3 */
    int maxeval;     /* largest number of evaluations of f (with or without g) */
    int verbose;     /* > 0: print each evaluation through Rprintf */
} lmm_qn_control;

/* status: 0 = first-order conditions met, 1 = maxeval reached, 2 = f(x0) not finite,
 *         3 = no further decrease possible before the conditions were met (best point kept),
 *         4 = no further decrease possible at f's rounding level, with the projected gradient
 *             within 1000 gtol max(1, |f|) (the gradient's own rounding): converged */
typedef struct {
    int feval, geval, status, restarts;
    double fmin, pgmax;  /* f and the scaled projected gradient max_i |pg_i| max(1, |x_i|) */
} lmm_qn_result;

/* grad (n) and hess (n x n), when not NULL, receive the gradient at the returned x and the
   BFGS approximation of the Hessian (NA when none was built) */
lmm_qn_result lmm_qn_minimise(lmm_fg_fn fg, void *ctx, int n, double *x,
                              const double *lower, const double *upper,
                              const lmm_qn_control *ctrl, double *grad, double *hess);

#endif
