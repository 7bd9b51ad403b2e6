/*
 * init.c -- registration of the .Call routines (no dynamic symbol lookup).
 */
#include "lmm.h"
#include "optimise.h"
#include "residual.h"
#include "iterative.h"
#include <R_ext/Rdynload.h>

/* optimise.c: test entry minimising an R function (tests only) */
SEXP lmm_test_optimiser(SEXP fn, SEXP x0, SEXP lower, SEXP upper, SEXP rhobeg, SEXP rhoend,
                        SEXP maxeval, SEXP ftol_abs);

static const R_CallMethodDef call_methods[] = {
    {"lmm_setup",          (DL_FUNC) &lmm_setup,          7},
    {"lmm_crit",           (DL_FUNC) &lmm_crit,           4},
    {"lmm_optimise",       (DL_FUNC) &lmm_optimise,       8},
    {"lmm_parts",          (DL_FUNC) &lmm_parts,          4},
    {"lmm_quadform",       (DL_FUNC) &lmm_quadform,       5},
    {"lmm_solution",       (DL_FUNC) &lmm_solution,       5},
    {"lmm_layout_info",    (DL_FUNC) &lmm_layout_info,    1},
    {"lmm_amd_test",       (DL_FUNC) &lmm_amd_test,       4},
    {"lmm_gradient",       (DL_FUNC) &lmm_gradient,       4},
    {"lmm_moments",        (DL_FUNC) &lmm_moments,        3},
    {"lmm_set_counts",     (DL_FUNC) &lmm_set_counts,     4},
    {"lmm_cor_matrix",     (DL_FUNC) &lmm_cor_matrix,     4},
    {"lmm_var_logs",       (DL_FUNC) &lmm_var_logs,       3},
    {"lmm_whitening_at",   (DL_FUNC) &lmm_whitening_at,   4},
    {"lmm_whiten_apply",   (DL_FUNC) &lmm_whiten_apply,   4},
    {"lmm_whiten_solve",   (DL_FUNC) &lmm_whiten_solve,   3},
    {"lmm_chol_dense",     (DL_FUNC) &lmm_chol_dense,     1},
    {"lmm_inverse_dense",  (DL_FUNC) &lmm_inverse_dense,  1},
    {"lmm_dense_backend_auto", (DL_FUNC) &lmm_dense_backend_auto, 1},
    {"lmm_dense_backend_time", (DL_FUNC) &lmm_dense_backend_time, 2},
    {"lmm_setup_iterative", (DL_FUNC) &lmm_setup_iterative, 7},
    {"lmm_iter_info",      (DL_FUNC) &lmm_iter_info,      1},
    {"lmm_test_optimiser", (DL_FUNC) &lmm_test_optimiser, 8},
    {NULL, NULL, 0}
};

void R_init_lmmc(DllInfo *dll)
{
    R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
    R_useDynamicSymbols(dll, FALSE);
    R_forceSymbols(dll, TRUE);
}

/* the dense kernels' scratch (dense_kernel.c) goes with the library */
void R_unload_lmmc(DllInfo *dll)
{
    (void) dll;
    lmm_scratch_free();
}
