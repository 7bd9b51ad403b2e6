/*
 * interrupt.c -- user interrupts by work done, not by loop counts.
 *
 * A loop over node columns costs anything from a few flops per column to millions (a column with
 * many dense rows), so "check every 4,096 columns" can mean minutes between checks.  Instead the
 * loops report the flops they have done, and R_CheckUserInterrupt() runs whenever another
 * LMM_WORK_QUANTUM flops have accumulated: about every 0.02 to 0.2 s at this machine's rates.
 * The numeric code is interrupt-safe: scratch comes from R_alloc (released by R on the jump),
 * what outlives a call is owned by the external pointer, and lmm_factor clears m->factored
 * before it starts, so an interrupted factorisation is never taken for a finished one.
 *
 * Only the master thread may call these, and never inside a parallel region (dense_team.c):
 * the dense kernels instead cut their work into regions of about LMM_REGION_WORK flops and
 * check between regions.
 */
#include "lmm.h"

#define LMM_WORK_QUANTUM 1e8
#define LMM_REGION_WORK 1e9

static double work_pending = 0;

void lmm_work(double flops)
{
    work_pending += flops;
    if (work_pending >= LMM_WORK_QUANTUM) {
        work_pending = 0;
        R_CheckUserInterrupt();
    }
}

/* Flops of eliminating (or inverting along) sparse column J: p_J r^2, r its scalar rows. */
double lmm_column_work(const lmm_model *m, int J)
{
    double rows = 0;
    for (int e = m->Lp[J]; e < m->Lp[J + 1]; e++) rows += m->size[m->Li[e]];
    return m->size[J] * (rows * rows + 1);
}

/* Columns of the next region of a dense factorisation or inversion with `rest` columns left
   (trailing order rest, about rest^2 flops per column): a multiple of nb, between nb and
   max_width, so that one region is about LMM_REGION_WORK flops. */
int lmm_region_width(int rest, int nb, int max_width)
{
    double per_panel = (double) rest * rest * nb + 1;
    double panels = floor(LMM_REGION_WORK / per_panel);
    int w = nb * (int) (panels < 1 ? 1 : panels > max_width / nb ? max_width / nb : panels);
    return w < nb ? nb : w;
}
