/*
 * solve.c -- conditional modes and fixed effects from the current factor.
 *
 * With Omega = L L' and l the last ([y]) row of L, the penalised least-squares solution
 * s = [u; beta] satisfies Omega_{ZX} s = Omega_{ZX,y}, i.e. L_{ZX}' s = l'  (back substitution).
 * (R_X' R_X)^{-1}, the unscaled Var(beta), comes from the [X] diagonal block of L.
 */
#include "lmm.h"
#include <string.h>

/* Scalar offset in u of node J: u is in node order (ordering.c maps it to R's at the .Call). */
static int zoffset(const lmm_model *m, int J)
{
    return m->zoff[J];
}

/* x <- L^{-T} x (trans) or L^{-1} x, L the leading n x n of the packed dense factor
   (dense_packed.h), with the sums of the reference BLAS's dtrsv; a single panel is plain
   column-major and goes to dtrsv itself. */
static void dense_trsv(const lmm_model *m, int n, int trans, double *x)
{
    int md = m->md, one = 1;
    if (n <= 0) return;
    if (md <= LMM_PANEL) {
        F77_CALL(dtrsv)("L", trans ? "T" : "N", "N", &n, m->Ld, &md, x, &one FCONE FCONE FCONE);
        return;
    }
    if (trans)
        for (int j = n - 1; j >= 0; j--) {                   /* x_j = (x_j - L_{>j,j}' x_{>j}) / L_jj */
            const double *Lj = lmm_packed_col(m->Ld, md, j);
            double t = x[j];
            for (int i = n - 1; i > j; i--) t -= Lj[i] * x[i];
            x[j] = t / Lj[j];
        }
    else
        for (int j = 0; j < n; j++) {                        /* x_{>j} -= L_{>j,j} x_j */
            const double *Lj = lmm_packed_col(m->Ld, md, j);
            if (x[j] == 0) continue;
            x[j] /= Lj[j];
            double t = x[j];
            for (int i = j + 1; i < n; i++) x[i] -= t * Lj[i];
        }
}

/* u* and beta* in the internal coordinates (standardise.c: u = s u*, beta = M (g + s beta*)) */
void lmm_solve(const lmm_model *m, double *u, double *beta)
{
    int md = m->md, dX = m->doff[m->N - m->Ns], p = m->p, nd = dX + p;
    double *s = (double *) R_alloc(nd > 0 ? nd : 1, sizeof(double));
    for (int i = 0; i < nd; i++) s[i] = lmm_packed_col(m->Ld, md, i)[nd];   /* l (dense part) */
    dense_trsv(m, nd, 1, s);
    for (int i = 0; i < p; i++) beta[i] = s[dX + i];
    for (int J = m->Ns; J < m->N; J++)                                   /* dense Z nodes */
        memcpy(u + zoffset(m, J), s + m->doff[J - m->Ns], m->size[J] * sizeof(double));
    int pmax = m->size_max;
    double *rhs = (double *) R_alloc(pmax, sizeof(double));
    for (int J = m->Ns - 1; J >= 0; J--) {                               /* sparse nodes, backwards */
        int pJ = m->size[J], eN = m->Lp[J + 1] - 1;
        const double *LN = m->Lx + m->Loff[eN];                          /* block (N, J): [L_XJ; l_J] */
        for (int c = 0; c < pJ; c++) {                                   /* rhs = l_J' - L_XJ' beta */
            double v = LN[p + c * (p + 1)];
            for (int r = 0; r < p; r++) v -= LN[r + c * (p + 1)] * beta[r];
            rhs[c] = v;
        }
        for (int e = m->Lp[J]; e < eN; e++) {                            /* - L_IJ' u_I */
            int I = m->Li[e], pI = m->size[I];
            const double *B = m->Lx + m->Loff[e], *uI = u + zoffset(m, I);
            for (int c = 0; c < pJ; c++)
                for (int r = 0; r < pI; r++) rhs[c] -= B[r + c * pI] * uI[r];
        }
        const double *D = m->Lx + m->Ldiag[J];                           /* L_JJ' u_J = rhs */
        double *uJ = u + zoffset(m, J);
        for (int c = pJ - 1; c >= 0; c--) {
            double v = rhs[c];
            for (int r = c + 1; r < pJ; r++) v -= D[r + c * pJ] * uJ[r];
            uJ[c] = v / D[c + c * pJ];
        }
    }
}

/* piv[j] = |R*[j, j]| / |X*_j|_W (X* in the internal coordinates of standardise.c, so centred
   and scaled): the sine of the angle between column j and the span of the earlier columns
   (after the random effects); round-off size when X is rank deficient. */
void lmm_rx_pivots(const lmm_model *m, double *piv)
{
    int md = m->md, dX = m->doff[m->N - m->Ns];
    for (int j = 0; j < m->p; j++) {
        double a = lmm_packed_col(m->Ad, md, dX + j)[dX + j];
        piv[j] = a > 0 ? fabs(lmm_packed_col(m->Ld, md, dX + j)[dX + j]) / sqrt(a) : 0.0;
    }
}

/* V = (R_X' R_X)^{-1}, p x p, full, for the original X (standardise.c). */
void lmm_vcov_unscaled(const lmm_model *m, double *V)
{
    int md = m->md, dX = m->doff[m->N - m->Ns], p = m->p, info = 0;
    if (p == 0) return;
    for (int c = 0; c < p; c++)
        for (int r = 0; r < p; r++)
            V[r + c * p] = (r >= c) ? lmm_packed_col(m->Ld, md, dX + c)[dX + r] : 0.0;
    F77_CALL(dpotri)("L", &p, V, &p, &info FCONE);
    if (info) error(_("the fixed-effects model matrix is rank deficient"));
    for (int c = 0; c < p; c++) for (int r = 0; r < c; r++) V[r + c * p] = V[c + r * p];
    lmm_std_vcov(m, V);                             /* M V* M': X's coordinates */
}

/* v <- L_ZX^{-1} v in place, v over the columns of [Z X] (u's order, then beta): the forward
   substitution behind a M^{-1} a' = |L_ZX^{-1} a'|^2, M the leading [Z X] block of Omega. */
void lmm_forward_solve_zx(const lmm_model *m, double *v)
{
    int p = m->p;
    for (int J = 0; J < m->Ns; J++) {                                   /* sparse columns */
        int pJ = m->size[J];
        double *vJ = v + zoffset(m, J);
        const double *D = m->Lx + m->Ldiag[J];
        for (int c = 0; c < pJ; c++) {                                  /* L_JJ w_J = v_J */
            double s = vJ[c];
            for (int l = 0; l < c; l++) s -= D[c + l * pJ] * vJ[l];
            vJ[c] = s / D[c + c * pJ];
        }
        for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) {                /* v_I -= L_IJ w_J */
            int I = m->Li[e], pI = m->size[I], rows = (I == m->N) ? p : pI;
            double *vI = v + (I == m->N ? m->q : zoffset(m, I));
            const double *B = m->Lx + m->Loff[e];
            for (int c = 0; c < pJ; c++)
                for (int r = 0; r < rows; r++) vI[r] -= B[r + c * pI] * vJ[c];
        }
    }
    int nd = m->doff[m->N - m->Ns] + p;                                 /* the dense block */
    if (nd > 0) dense_trsv(m, nd, 0, v + (m->Ns < m->N ? zoffset(m, m->Ns) : m->q));
}
