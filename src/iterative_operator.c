/*
 * iterative_operator.c -- products with C = Z'WZ and Omega_Z = Lambda C Lambda + I on blocks of
 * vectors (scalar terms: Lambda = diag(lambda_j), one entry per column of Z).
 *
 * A block V (q x nc) is stored row-major, entry (j, c) at V[j nc + c], so that each stored entry
 * C_ji is read once per block and meets nc contiguous values of row i of V: the product is one
 * pass over C's nnz, whatever the number of right-hand sides.  The cost is O(nnz(C) nc), with
 * nnz(C) at most the number of rows times k(k-1) plus q: never more than a pass over the data.
 */
#include "iterative.h"

/* W = C V (all nc columns) */
void lmm_iter_C(const lmm_iter *it, int nc, const double *V, double *W)
{
    for (int j = 0; j < it->q; j++) {
        double *w = W + (size_t) j * nc;
        const double *vj = V + (size_t) j * nc;
        double d = it->Cd[j];
        for (int c = 0; c < nc; c++) w[c] = d * vj[c];                  /* C_jj v_j */
        for (int e = it->Cp[j]; e < it->Cp[j + 1]; e++) {              /* + sum_i C_ji v_i */
            double a = it->Cx[e];
            const double *vi = V + (size_t) it->Ci[e] * nc;
            for (int c = 0; c < nc; c++) w[c] += a * vi[c];
        }
    }
    lmm_work((double) nc * (it->Cp[it->q] + it->q));
}

/* W = Omega_Z V in the columns cols[0 .. na) (the others of W untouched):
   (Omega_Z v)_j = lambda_j (C_jj lambda_j v_j + sum_i C_ji lambda_i v_i) + v_j */
void lmm_iter_omega(const lmm_iter *it, const double *lambda, int nc, const int *cols, int na,
                    const double *V, double *W)
{
    for (int j = 0; j < it->q; j++) {
        double *w = W + (size_t) j * nc, lj = lambda[j], d = it->Cd[j] * lj;
        const double *vj = V + (size_t) j * nc;
        for (int a = 0; a < na; a++) w[cols[a]] = d * vj[cols[a]];
        for (int e = it->Cp[j]; e < it->Cp[j + 1]; e++) {
            int i = it->Ci[e];
            double s = it->Cx[e] * lambda[i];
            const double *vi = V + (size_t) i * nc;
            for (int a = 0; a < na; a++) w[cols[a]] += s * vi[cols[a]];
        }
        for (int a = 0; a < na; a++) w[cols[a]] = lj * w[cols[a]] + vj[cols[a]];
    }
    lmm_work((double) na * (it->Cp[it->q] + it->q));
}
