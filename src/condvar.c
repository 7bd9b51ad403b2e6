/*
 * condvar.c -- diagonal node blocks of Sigma = (L_Z L_Z')^{-1}, for the conditional variances
 * sigma^2 T Sigma_JJ T' of the random effects (the selected inverse, Takahashi's recurrences).
 *
 * The selected inverse on L's pattern comes from gradient.c (lmm_selected_inverse, Takahashi's
 * recurrences from Sigma L = L^{-T}, with the Z nodes only); here its diagonal node blocks are
 * read out.
 */
#include "lmm.h"
#include <string.h>

/* out: for each Z node J in order, Sigma_JJ (p_J x p_J, column-major), end to end. */
void lmm_condvar(const lmm_model *m, double *out)
{
    int md = m->md;
    double *Sx = (double *) R_alloc(m->nLx + 1, sizeof(double));
    double *Sd = (double *) R_alloc(lmm_packed_len(md) + 1, sizeof(double));   /* packed */
    lmm_selected_inverse(m, 0, Sx, Sd);          /* gradient.c: Sigma on L's pattern, Z only */
    size_t o = 0;
    for (int J = 0; J < m->N; J++) {
        int pJ = m->size[J], ld;
        if (J >= m->Ns) {                            /* the dense block (dense_packed.h) */
            int dJ = m->doff[J - m->Ns];
            for (int c = 0; c < pJ; c++)
                for (int r = 0; r < pJ; r++) out[o++] = lmm_packed_sym(Sd, md, dJ + r, dJ + c);
            continue;
        }
        const double *S = lmm_block_ptr(m, Sx, Sd, J, J, &ld);
        for (int c = 0; c < pJ; c++)
            for (int r = 0; r < pJ; r++) out[o++] = S[r + (size_t) c * ld];
    }
}
