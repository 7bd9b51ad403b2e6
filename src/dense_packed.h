/*
 * dense_packed.h -- where the dense block's entries live: A_DD (lmm.h's Ad), its factor L_DD
 * (Ld), the inverse Sigma_DD behind the gradient (gradient.c's Sd) and the residual parameters'
 * M = dcrit/dA (Md, residual.h) are stored packed, lower triangle only, in column panels of
 * LMM_PANEL columns ("panel-packed lower" storage):
 *
 *     panel p holds columns p nb .. p nb + w_p - 1 (w_p = min(nb, md - p nb)) and their rows
 *     p nb .. md-1: a full column-major (md - p nb) x w_p matrix, leading dimension md - p nb;
 *     element (i, j), i >= p nb, at  base_p + (j - p nb)(md - p nb) + (i - p nb),
 *     base_p = sum_{q < p} nb (md - q nb) = nb (p md - nb p (p - 1) / 2).
 *
 * About md (md + nb) / 2 doubles instead of md^2.  Each panel is an ordinary column-major matrix,
 * so the blocked kernels (dense_chol.c, dense_inverse.c: panel width = LMM_PANEL) run on it with
 * the panel's height as leading dimension; only an update that spans several panels needs the
 * column's panel, and it never crosses one inside a register tile (LMM_PANEL is a multiple of
 * every tile's mr and nr).  The strict upper triangle of each panel's diagonal block is stored
 * but means nothing.  A block of order md <= LMM_PANEL is one panel: plain column-major.
 *
 * lmm_dmat also describes a plain column-major matrix (leading dimension ld), so the kernels
 * serve both (the .Call test entries pass plain matrices).
 */
#ifndef LMMC_DENSE_PACKED_H
#define LMMC_DENSE_PACKED_H
#include <stddef.h>

#define LMM_PANEL 96           /* panel width: dense_chol.c's and dense_inverse.c's block NB */

typedef struct {
    double *x;
    int n;                     /* packed: the order md; plain: the leading dimension */
    int packed;
} lmm_dmat;

static inline lmm_dmat lmm_dmat_packed(double *x, int md)
{
    lmm_dmat A = {x, md, 1};
    return A;
}

static inline lmm_dmat lmm_dmat_plain(double *x, int ld)
{
    lmm_dmat A = {x, ld, 0};
    return A;
}

/* first entry of panel p of a packed matrix of order md */
static inline size_t lmm_panel_base(int md, int p)
{
    return (size_t) LMM_PANEL * ((size_t) p * md - (size_t) LMM_PANEL * p * (p - 1) / 2);
}

/* doubles of a packed matrix of order md */
static inline size_t lmm_packed_len(int md)
{
    if (md <= 0) return 0;
    int P = (md - 1) / LMM_PANEL;                  /* the last panel: square, md - P nb */
    size_t h = (size_t) md - (size_t) P * LMM_PANEL;
    return lmm_panel_base(md, P) + h * h;
}

/* offset of element (i, j) -- i at or below the top row of j's panel -- and (ld) the distance
   between the columns of j's panel */
static inline ptrdiff_t lmm_dmat_off(const lmm_dmat *A, int i, int j, int *ld)
{
    if (!A->packed) {
        *ld = A->n;
        return i + (ptrdiff_t) j * A->n;
    }
    int p = j / LMM_PANEL, top = p * LMM_PANEL;
    *ld = A->n - top;
    return (ptrdiff_t) lmm_panel_base(A->n, p) + (ptrdiff_t) (j - top) * *ld + (i - top);
}

/* pointer to element (i, j): the columns of j's panel follow at multiples of *ld */
static inline double *lmm_dmat_at(const lmm_dmat *A, int i, int j, int *ld)
{
    return A->x + lmm_dmat_off(A, i, j, ld);
}

/* column j of a packed matrix of order md as c[i] = element (i, j), for rows i >= j */
static inline double *lmm_packed_col(const double *x, int md, int j)
{
    int p = j / LMM_PANEL, top = p * LMM_PANEL, h = md - top;
    return (double *) x + ((ptrdiff_t) lmm_panel_base(md, p) + (ptrdiff_t) (j - top) * h - top);
}

/* off[j] = lmm_packed_col(x, md, j) - x for every column j < md: a table for the passes that
   jump between columns (dense_schur.c) */
static inline void lmm_packed_offsets(int md, ptrdiff_t *off)
{
    for (int j = 0; j < md; j++) {
        int p = j / LMM_PANEL, top = p * LMM_PANEL;
        off[j] = (ptrdiff_t) lmm_panel_base(md, p) + (ptrdiff_t) (j - top) * (md - top) - top;
    }
}

/* element (i, j) of the symmetric matrix whose lower triangle is packed in x */
static inline double lmm_packed_sym(const double *x, int md, int i, int j)
{
    return i >= j ? lmm_packed_col(x, md, j)[i] : lmm_packed_col(x, md, i)[j];
}

/* the lower triangle of the plain n x n matrix F (leading dimension ld) into packed P, or (to_f)
   back, the strict upper triangle of F set to `upper` (0) or mirrored (upper < 0) */
static inline void lmm_pack_lower(int n, double *F, int ld, double *P, int to_f, int upper)
{
    for (int c = 0; c < n; c++) {
        double *Pc = lmm_packed_col(P, n, c), *Fc = F + (size_t) c * ld;
        for (int r = c; r < n; r++) {
            if (to_f) Fc[r] = Pc[r];
            else Pc[r] = Fc[r];
        }
    }
    if (to_f)
        for (int c = 0; c < n; c++)
            for (int r = 0; r < c; r++) F[r + (size_t) c * ld] = upper < 0 ? F[c + (size_t) r * ld] : 0.0;
}

#endif
