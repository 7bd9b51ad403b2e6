/*
 * iterative_operator.c -- products with C = Z'WZ and Omega_Z = Lambda' C Lambda + I on blocks of
 * vectors.
 *
 * A block V (q x nc) is stored row-major, entry (j, c) at V[j nc + c], so that each stored entry
 * C_ji is read once per block and meets nc contiguous values of row i of V: the product is one
 * pass over C's nnz, whatever the number of right-hand sides.  The cost is O(nnz(C) nc), with
 * nnz(C) at most q + n w(w - 1) (w = the columns of Z a row touches): never more than a pass
 * over the data, and independent of n once the levels are fixed.  Rows of W are independent:
 * with OpenMP they are shared among it->threads threads (the interrupt check stays outside).
 */
#include "iterative.h"

/* W = C V in the columns cols[0 .. na) (all nc when cols is NULL) */
void lmm_iter_C(const lmm_iter *it, int nc, const int *cols, int na, const double *V, double *W)
{
    int all = cols == NULL, nn = all ? nc : na;
#ifdef _OPENMP
#pragma omp parallel for num_threads(it->threads) schedule(static, 256) if (it->threads > 1)
#endif
    for (int j = 0; j < it->q; j++) {
        double *w = W + (size_t) j * nc;
        const double *vj = V + (size_t) j * nc;
        double d = it->Cd[j];
        for (int a = 0; a < nn; a++) { int c = all ? a : cols[a]; w[c] = d * vj[c]; }  /* C_jj v_j */
        for (int e = it->Cp[j]; e < it->Cp[j + 1]; e++) {              /* + sum_i C_ji v_i */
            double x = it->Cx[e];
            const double *vi = V + (size_t) it->Ci[e] * nc;
            if (all) for (int c = 0; c < nc; c++) w[c] += x * vi[c];
            else for (int a = 0; a < na; a++) w[cols[a]] += x * vi[cols[a]];
        }
    }
    lmm_work((double) nn * (it->Cp[it->q] + it->q));
}

/* W = Omega_Z V in the columns cols[0 .. na) (the others of W untouched).  Scalar terms:
   (Omega_Z v)_j = lambda_j (C_jj lambda_j v_j + sum_i C_ji lambda_i v_i) + v_j in one pass,
   only in the rows j with rows[j] != 0 when rows is not NULL; otherwise (vector-valued terms,
   all rows) Lambda' (C (Lambda V)) + V through work (2 q nc doubles). */
void lmm_iter_omega(const lmm_iter *it, const lmm_lambda *lam, int nc, const int *cols, int na,
                    const double *V, double *W, double *work, const char *rows)
{
    if (!lam->diag) {
        double *LV = work, *CLV = work + (size_t) it->q * nc;
        lmm_lambda_apply(lam, 0, nc, cols, na, V, LV);
        lmm_iter_C(it, nc, cols, na, LV, CLV);
        lmm_lambda_apply(lam, 1, nc, cols, na, CLV, W);
        for (int j = 0; j < it->q; j++)
            for (int a = 0; a < na; a++) W[(size_t) j * nc + cols[a]] += V[(size_t) j * nc + cols[a]];
        return;
    }
    const double *lambda = lam->diag;
#ifdef _OPENMP
#pragma omp parallel for num_threads(it->threads) schedule(static, 256) if (it->threads > 1)
#endif
    for (int j = 0; j < it->q; j++) {
        if (rows && !rows[j]) continue;
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
