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

/* Threads only for products of at least this many multiply-adds: below it a parallel region
   (and the idle threads' spinning, on a shared machine) costs more than it saves. */
#define PARALLEL_WORK 4e6

static int parallel(const lmm_iter *it, int na)
{
    return it->threads > 1 && (double) na * (it->Cp[it->q] + it->q) >= PARALLEL_WORK;
}

/* W = C V in the columns cols[0 .. na) (all nc when cols is NULL), in the rows j with rows[j]
   (all when rows is NULL) */
static void product_C(const lmm_iter *it, int nc, const int *cols, int na, const double *V,
                      double *W, const char *rows)
{
    int all = cols == NULL, nn = all ? nc : na, par = parallel(it, nn);
    double nnz = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(it->threads) schedule(static, 256) if (par) reduction(+:nnz)
#endif
    for (int j = 0; j < it->q; j++) {
        if (rows && !rows[j]) continue;
        nnz += 1 + it->Cp[j + 1] - it->Cp[j];
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
    lmm_work((double) nn * nnz);
}

void lmm_iter_C(const lmm_iter *it, int nc, const int *cols, int na, const double *V, double *W)
{
    product_C(it, nc, cols, na, V, W, NULL);
}

/* W = Omega_Z V in the columns cols[0 .. na) (the others of W untouched), only in the rows j
   with rows[j] != 0 when rows is not NULL (rows: whole nodes).  Scalar terms:
   (Omega_Z v)_j = lambda_j (C_jj lambda_j v_j + sum_i C_ji lambda_i v_i) + v_j in one pass;
   otherwise (vector-valued terms) Lambda' (C (Lambda V)) + V through work (2 q nc doubles),
   Lambda V in all rows, the rest in the rows asked for. */
void lmm_iter_omega(const lmm_iter *it, const lmm_lambda *lam, int nc, const int *cols, int na,
                    const double *V, double *W, double *work, const char *rows)
{
    if (!lam->diag) {
        double *LV = work, *CLV = work + (size_t) it->q * nc;
        lmm_lambda_apply(lam, 0, nc, cols, na, V, LV, NULL);
        product_C(it, nc, cols, na, LV, CLV, rows);
        lmm_lambda_apply(lam, 1, nc, cols, na, CLV, W, rows);
        for (int j = 0; j < it->q; j++)
            if (!rows || rows[j])
                for (int a = 0; a < na; a++) W[(size_t) j * nc + cols[a]] += V[(size_t) j * nc + cols[a]];
        return;
    }
    const double *lambda = lam->diag;
    int par = parallel(it, na);
#ifdef _OPENMP
#pragma omp parallel for num_threads(it->threads) schedule(static, 256) if (par)
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
