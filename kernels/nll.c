/*
 * nll.c -- negative log-likelihood of log-probability rows with class-index targets, loss and gradient
 * from one call (sl_nll_f32, sl_nll_f64; contract in stableloss.h).
 *
 * Method.  A gather per row: loss = -(w_y x_y), one product rounded once (float32: exact in double,
 * rounded at the store) and an exact negation; the row is read at its target only.  The gradient row
 * is 0 but for -(w_y grad_scale) at the target: zero-filled, then one store.  The vector variant takes
 * SL_L rows per step, one per lane: their gradient rows (contiguous) zero-filled with vector stores at
 * once, the losses stored as one vector and summed in lanes (the float64 block sums compensated
 * without one chain of dependent TwoSums); the scalar variant memsets each gradient row.
 *
 * Special cases (as PyTorch).  Only x_y is read: a NaN or an infinity elsewhere in the row changes
 * nothing.  x_y = -inf (probability 0): +inf loss; x_y NaN: NaN; x_y = +inf: -inf; w_y = 0 at
 * x_y = -inf: NaN (0 inf).  The gradient is -w_y grad_scale whatever x_y.  Rows whose target is
 * ignore_index: loss 0, gradient row 0, nothing read.
 *
 * Accuracy, worst measured against mpmath (log-probabilities from -0 and subnormals to -max, weights
 * over e^+-4, 0, +inf and totals from subnormal to near overflow, every SIMD level alike): loss 0.5 ulp
 * (correctly rounded); gradient exact, and for a "mean" (-w_y times the rounded 1/denominator) float32
 * 0.5 ulp, float64 1.5 ulp.  Reductions (terms of one sign: x <= 0, w >= 0): float32 0.45 ulp, float64
 * "sum" 0.55 ulp, "mean" 1.0 ulp (the sum and the division).  Budget: 4 ulp.
 */
#include <string.h>

#include "sl_kernel.h"

typedef struct {
    const void *input;
    const int64_t *target;
    const void *weight;
    int64_t n_rows, n_classes, ignore_index;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} nll_args;

/* The loss of row i, its gradient's one nonzero entry stored in its gradient row (zeroed before). */
SL_INLINE double nll_gather(const nll_args *a, int64_t i, int f32)
{
    int64_t C = a->n_classes, y = a->target[i];
    if (y == a->ignore_index)
        return 0.0;
    double w = a->weight ? sl_load(a->weight, y, f32) : 1.0;
    if (a->grad)
        sl_store(sl_row_out(a->grad, i, C, f32), y, -(w * a->grad_scale), f32);
    return -(w * sl_load(sl_row_in(a->input, i, C, f32), y, f32)); /* one rounding: the negation is exact */
}

SL_INLINE double nll_row(const void *args, int64_t i, int f32)
{
    const nll_args *a = (const nll_args *)args;
    int64_t C = a->n_classes;
    if (a->grad)
        memset(sl_row_out(a->grad, i, C, f32), 0, (size_t)C * (f32 ? sizeof(float) : sizeof(double)));
    double loss = nll_gather(a, i, f32);
    if (a->loss)
        sl_store(a->loss, i, loss, f32);
    return loss;
}

SL_INLINE void nll_scalar(const nll_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, nll_row, f32);
}

#if SL_X86
/* n elements of the dtype at p set to 0, SL_L per vector store. */
SL_VEC SL_INLINE void nll_zero_v(void *p, int64_t n, int f32)
{
    int64_t j = 0;
    for (; n - j >= SL_L; j += SL_L)
        sl_store_v(p, j, sl_vzero(), NULL, f32);
    if (j < n) {
        sl_tail tail = sl_tail_mask(n - j);
        sl_store_v(p, j, sl_vzero(), &tail, f32);
    }
}

/* Rows i .. i + SL_L - 1 (the tail's lanes only, if given), one per lane. */
SL_VEC SL_INLINE sl_vd nll_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const nll_args *a = (const nll_args *)args;
    int count = tail ? __builtin_popcount((unsigned)sl_tail_bits(tail)) : SL_L;
    if (a->grad) /* the rows' gradients are contiguous: one fill */
        nll_zero_v(sl_row_out(a->grad, i, a->n_classes, f32), count * a->n_classes, f32);
    double losses[SL_L] = {0.0};
    for (int l = 0; l < count; l++)
        losses[l] = nll_gather(a, i + l, f32);
    sl_vd loss = sl_vloadu(losses);
    if (a->loss)
        sl_store_v(a->loss, i, loss, tail, f32);
    return loss;
}

SL_VEC SL_INLINE void nll_vec(const nll_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, nll_lanes, f32);
}
#endif

SL_KERNEL(nll, nll_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_nll_f32(const float *input, const int64_t *target, const float *weight, int64_t n_rows,
                int64_t n_classes, int64_t ignore_index, double grad_scale, int64_t rows_per_block,
                float *loss, float *grad, double *block_sums)
{
    const nll_args a = {input, target, weight, n_rows, n_classes, ignore_index, grad_scale, rows_per_block,
                        loss, grad, block_sums};
    nll_run(&a, 1);
}

void sl_nll_f64(const double *input, const int64_t *target, const double *weight, int64_t n_rows,
                int64_t n_classes, int64_t ignore_index, double grad_scale, int64_t rows_per_block,
                double *loss, double *grad, double *block_sums)
{
    const nll_args a = {input, target, weight, n_rows, n_classes, ignore_index, grad_scale, rows_per_block,
                        loss, grad, block_sums};
    nll_run(&a, 0);
}
#endif
