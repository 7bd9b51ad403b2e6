/*
 * iterative_blocks.c -- block-diagonal matrices over the nodes: one p_J x p_J block per node J
 * (column-major, at it->cjoff[J], the layout of C's node blocks CJ), as the iterative backend's
 * preconditioner P = blockdiag(P_J) and the head's D = blockdiag(D_J) are held
 * (iterative_schur.c), and the small dense kernels that make them.
 *
 *     (B V)_J = B_J V_J          (V q x nc row-major, node J's rows zoff[J] ..).
 */
#include "iterative.h"

/* W_J = B_J V_J in the columns cols[0 .. na), for the nodes J with mask[J] (all when mask is
   NULL); the other rows of W untouched. */
void lmm_blocks_apply(const lmm_model *m, const double *B, const char *mask, int nc,
                      const int *cols, int na, const double *V, double *W)
{
    const lmm_iter *it = m->iter;
    for (int J = 0; J < m->N; J++) {
        if (mask && !mask[J]) continue;
        int z = it->zoff[J], p = it->zoff[J + 1] - z;
        const double *BJ = B + it->cjoff[J];
        if (p == 1) {                                                  /* scalar node */
            double b = BJ[0];
            double *w = W + (size_t) z * nc;
            const double *v = V + (size_t) z * nc;
            for (int a = 0; a < na; a++) w[cols[a]] = b * v[cols[a]];
            continue;
        }
        for (int r = 0; r < p; r++) {
            double *w = W + (size_t) (z + r) * nc;
            for (int a = 0; a < na; a++) w[cols[a]] = 0;
            for (int s = 0; s < p; s++) {
                double b = BJ[r + s * p];
                const double *v = V + (size_t) (z + s) * nc;
                for (int a = 0; a < na; a++) w[cols[a]] += b * v[cols[a]];
            }
        }
    }
}

/* A = L L' in place (lower triangle; the upper set to 0; dense.c's lmm_chol_small) for a small
   symmetric positive definite A (p x p); returns log|A| = 2 sum log L_cc, or NA when A is not
   positive definite. */
double lmm_small_chol(int p, double *A)
{
    if (lmm_chol_small(p, A)) return NA_REAL;
    double ld = 0;
    for (int c = 0; c < p; c++) ld += 2 * log(A[c + c * p]);
    return ld;
}

/* Ainv = (L L')^{-1} from the lower factor L (p x p): column by column, L y = e_c, L' x = y */
void lmm_small_chol_inverse(int p, const double *L, double *Ainv)
{
    for (int c = 0; c < p; c++) {
        double *x = Ainv + c * p;
        for (int r = 0; r < p; r++) {                               /* forward: L y = e_c */
            double s = r == c ? 1.0 : 0.0;
            for (int k = 0; k < r; k++) s -= L[r + k * p] * x[k];
            x[r] = s / L[r + r * p];
        }
        for (int r = p - 1; r >= 0; r--) {                          /* back: L' x = y */
            double s = x[r];
            for (int k = r + 1; k < p; k++) s -= L[k + r * p] * x[k];
            x[r] = s / L[r + r * p];
        }
    }
}
