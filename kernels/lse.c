/*
 * lse.c -- row-wise log-sum-exp, log-softmax and softmax (sl_lse_f32, sl_lse_f64; stableloss.h).
 *
 * Method.  The row passes of sl_softmax.h: a = max_j x_j (first at k), s = sum_{j != k} e^{z_j},
 * z_j = x_j - a; then lse = a + log1p(s), log_softmax_j = (z_j - log1p(s)) + z_lo_j (two terms of one
 * sign) and softmax_j = e^{z_j} / (1 + s), recomputing e^{z_j} in the writing pass.
 *
 * Special cases (as PyTorch and SciPy).  NaN in a row: NaN outputs.  A row whose max is infinite:
 * lse = that max (+inf, or -inf for an all -inf row: log of a sum of zeros), log_softmax and softmax
 * NaN (x - a = NaN).  -inf logits: log_softmax -inf, softmax 0.  n_cols == 0: lse = -inf, nothing read.
 *
 * Accuracy (against mpmath, every SIMD level alike): float32 0.5 ulp for all three outputs; float64
 * lse 2.1, log-softmax 1.5, softmax 2.7 ulp.  Budget: 4 ulp.
 */
#include "sl_kernel.h"
#include "sl_softmax.h"

typedef struct {
    const void *x;
    int64_t n_rows, n_cols;
    void *lse, *log_softmax, *softmax;
} lse_args;

SL_INLINE double lse_row(const void *args, int64_t i, int f32, sl_scan_fn scan, sl_write_fn write)
{
    const lse_args *a = (const lse_args *)args;
    int64_t C = a->n_cols;
    if (C == 0) {
        if (a->lse)
            sl_store(a->lse, i, -INFINITY, f32);
        return 0.0;
    }
    const void *x = sl_row_in(a->x, i, C, f32);
    const void *next = i + 1 < a->n_rows ? sl_row_in(a->x, i + 1, C, f32) : NULL;
    sl_softmax r = scan(x, C, NULL, NULL, next, NULL, f32, f32);
    if (a->lse)
        sl_store(a->lse, i, isnan(r.s) ? sl_lse_nonfinite(x, C, f32) : r.a + r.log_s, f32);
    if (a->log_softmax || a->softmax)
        write(x, C, r.a, r.log_s, 1.0 + r.s, sl_row_out(a->log_softmax, i, C, f32),
              sl_row_out(a->softmax, i, C, f32), f32, f32);
    return 0.0;
}

SL_INLINE double lse_row_scalar(const void *args, int64_t i, int f32)
{
    return lse_row(args, i, f32, sl_softmax_scan, sl_softmax_write);
}

SL_INLINE void lse_scalar(const lse_args *a, int f32)
{
    sl_rows(a, a->n_rows, 0, NULL, lse_row_scalar, f32);
}

#if SL_X86
SL_VEC SL_INLINE double lse_row_vec(const void *args, int64_t i, int f32)
{
    return lse_row(args, i, f32, sl_softmax_scan_v, sl_softmax_write_v);
}

SL_VEC SL_INLINE void lse_vec(const lse_args *a, int f32)
{
    sl_rows(a, a->n_rows, 0, NULL, lse_row_vec, f32);
}
#endif

SL_KERNEL(lse, lse_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_lse_f32(const float *x, int64_t n_rows, int64_t n_cols, float *lse, float *log_softmax, float *softmax)
{
    const lse_args a = {x, n_rows, n_cols, lse, log_softmax, softmax};
    lse_run(&a, 1);
}

void sl_lse_f64(const double *x, int64_t n_rows, int64_t n_cols, double *lse, double *log_softmax,
                double *softmax)
{
    const lse_args a = {x, n_rows, n_cols, lse, log_softmax, softmax};
    lse_run(&a, 0);
}
#endif
