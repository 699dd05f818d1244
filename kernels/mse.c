/*
 * mse.c -- squared error, elementwise, with its gradient (sl_mse_f32, sl_mse_f64; stableloss.h).
 *
 * Method.  d = x - t, loss = w d^2, grad = 2 ((grad_scale w) d) (2 w alone can overflow).  float64:
 * d + d_lo = x - t exactly
 * (TwoSum) and d^2 = sq + sq_lo exactly (FMA), loss = w (sq + (sq_lo + 2 d d_lo)): the square of the
 * exact difference to ~2^-104, then one rounding; grad from d + d_lo.  float32: d and d^2 in double
 * (exact or within 2^-53), rounded once.
 *
 * Special cases.  NaN in: NaN out.  Infinite d: loss +inf, grad +-inf (the correction terms are
 * dropped once they are not finite).  float64 d^2 out of the normal range while w d^2 is not: (w d) d; x - t
 * overflowing with x, t finite: grad = 4 ((grad_scale w)(x/2 - t/2)).
 *
 * Accuracy (against mpmath, every SIMD level alike): float32 0.5 ulp; float64 1.4 ulp (loss, with a
 * weight: the product w d^2 rounds twice) and 1.1 ulp (gradient).  Budget: 4 ulp.
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target, *weight;
    int64_t n_rows;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} mse_args;

SL_INLINE double mse_row(const void *args, int64_t i, int f32)
{
    const mse_args *a = (const mse_args *)args;
    double x = sl_load(a->input, i, f32), t = sl_load(a->target, i, f32);
    double w = a->weight ? sl_load(a->weight, i, f32) : 1.0;
    double d_lo = 0.0, sq_lo = 0.0;
    double d = f32 ? x - t : sl_two_sum(x, -t, &d_lo);
    if (!isfinite(d))
        d_lo = 0.0; /* no error term once d overflowed */
    double sq = f32 ? d * d : sl_two_prod(d, d, &sq_lo);
    double corr = sq_lo + 2.0 * d * d_lo; /* (d + d_lo)^2 = sq + sq_lo + 2 d d_lo + O(d_lo^2) */
    double value = w * (sq + (isfinite(corr) ? corr : 0.0));
    if (!f32 && (sq == INFINITY || sq < SL_SMALLEST_NORMAL)) /* d^2 overflows or underflows, w d^2 may not */
        value = (w * d) * d;
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad) {
        double sw = a->grad_scale * w; /* s w first: 2 w alone can overflow */
        double g = 2.0 * (sw * (d + d_lo));
        if (isinf(d) && isfinite(x) && isfinite(t)) /* x - t overflows: 2 s w (x - t) = 4 (s w (x/2 - t/2)) */
            g = 4.0 * (sw * (0.5 * x - 0.5 * t));
        sl_store(a->grad, i, g, f32);
    }
    return value;
}

SL_INLINE void mse_scalar(const mse_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, mse_row, f32);
}

#if SL_X86
SL_VEC SL_INLINE sl_vd mse_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const mse_args *a = (const mse_args *)args;
    sl_vd x = sl_load_v(a->input, i, tail, f32), t = sl_load_v(a->target, i, tail, f32);
    sl_vd w = a->weight ? sl_load_v(a->weight, i, tail, f32) : SL_V(1.0);
    sl_vd d_lo = sl_vzero();
    sl_vd d = sl_vsub(x, t);
    sl_vd sq = sl_vmul(d, d);
    sl_vd value = sl_vmul(w, sq);
    if (!f32) {
        sl_two_sum_v(x, sl_vsub(sl_vzero(), t), &d_lo);
        d_lo = sl_vkeep(sl_isfinite_v(d), d_lo);
        /* (d + d_lo)^2 = sq + sq_lo + 2 d d_lo + O(d_lo^2), sq_lo = d^2 - sq exact by FMA */
        sl_vd corr = sl_vfma(sl_vadd(d, d), d_lo, sl_vfms(d, d, sq));
        value = sl_vmul(w, sl_vadd(sq, sl_finite_or_zero_v(corr)));
        /* d^2 overflows or underflows, w d^2 may not */
        sl_vm sq_out = sl_vm_or(sl_vcmp(sq, SL_V(INFINITY), _CMP_EQ_OQ),
                                sl_vcmp(sq, SL_V(SL_SMALLEST_NORMAL), _CMP_LT_OQ));
        value = sl_vselect(sq_out, sl_vmul(sl_vmul(w, d), d), value);
    }
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad) {
        sl_vd sw = sl_vmul(SL_V(a->grad_scale), w); /* s w first: 2 w alone can overflow */
        sl_vd g = sl_vmul(SL_V(2.0), sl_vmul(sw, sl_vadd(d, d_lo)));
        if (!f32) { /* x - t overflows with x, t finite: 2 s w (x - t) = 4 (s w (x/2 - t/2)) */
            sl_vm huge = sl_vm_andnot(sl_isfinite_v(d), sl_vm_and(sl_isfinite_v(x), sl_isfinite_v(t)));
            sl_vd half_d = sl_vfms(SL_V(0.5), x, sl_vmul(SL_V(0.5), t));
            g = sl_vselect(huge, sl_vmul(SL_V(4.0), sl_vmul(sw, half_d)), g);
        }
        sl_store_v(a->grad, i, g, tail, f32);
    }
    return value;
}

SL_VEC SL_INLINE void mse_vec(const mse_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, mse_lanes, f32);
}
#endif

SL_KERNEL(mse, mse_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_mse_f32(const float *input, const float *target, const float *weight, int64_t n_rows,
                double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums)
{
    const mse_args a = {input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums};
    mse_run(&a, 1);
}

void sl_mse_f64(const double *input, const double *target, const double *weight, int64_t n_rows,
                double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums)
{
    const mse_args a = {input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums};
    mse_run(&a, 0);
}
#endif
