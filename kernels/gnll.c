/*
 * gnll.c -- Gaussian negative log-likelihood, elementwise, with the gradients for the input and the
 * variance (sl_gnll_f32, sl_gnll_f64; stableloss.h).
 *
 * Method.  v = var < eps ? eps : var, d = x - t, r = d / v, loss = log(v)/2 + (d/2) r (+ log(2 pi)/2),
 * grad_input = r grad_scale, grad_var = (1/v - r^2)/2 grad_scale.  (d/2)(d/v) rather than d^2/(2v):
 * finite whenever the loss is, even where d^2 overflows.  float64 carries the low parts: d + d_lo = x - t
 * (TwoSum), r + r_lo = (d + d_lo)/v (the division residual d - r v is exact with FMA), and
 * d r + q_lo = (d + d_lo)(r + r_lo) to ~2^-104, so only log v and the final additions round.
 * float32: everything in double, rounded once.
 *
 * Special cases.  NaN in: NaN out (the clamp keeps a NaN variance).  var = eps = 0: log 0 = -inf and
 * d/0; as the formula gives.  Correction terms are dropped once they are not finite.
 *
 * Accuracy: see the report in the project log (budget 4 ulp per loss and gradient element; the loss
 * itself cancels where log v is near -d^2/v, a cancellation of the problem, not of the formula).
 */
#include "sl_kernel.h"

typedef struct {
    const void *x, *t, *var;
    int64_t n;
    double eps;
    int64_t full;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad_input, *grad_var;
    double *block_sums;
} gnll_args;

SL_INLINE double gnll_row(const void *args, int64_t i, int f32)
{
    const gnll_args *a = (const gnll_args *)args;
    double x = sl_load(a->x, i, f32), t = sl_load(a->t, i, f32), v = sl_load(a->var, i, f32);
    v = v < a->eps ? a->eps : v;
    double d_lo = 0.0, r_lo = 0.0, q_lo = 0.0;
    double d = f32 ? x - t : sl_two_sum(x, -t, &d_lo);
    double r = d / v;
    double q = f32 ? (0.5 * d) * r : sl_two_prod(0.5 * d, r, &q_lo); /* d^2/(2v), finite iff the loss is */
    if (!f32) {
        double rv_lo, rv = sl_two_prod(r, v, &rv_lo);
        r_lo = ((d - rv) - rv_lo + (isfinite(d) ? d_lo : 0.0)) / v; /* (d + d_lo)/v - r */
        if (!isfinite(r_lo))
            r_lo = 0.0;
        double cross = 0.5 * (d * r_lo + d_lo * r);
        q_lo = (isfinite(q_lo) ? q_lo : 0.0) + (isfinite(cross) ? cross : 0.0);
    }
    double value = (0.5 * sl_log(v, f32) + q) + q_lo;
    if (a->full)
        value += SL_HALF_LOG_2PI;
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad_input)
        sl_store(a->grad_input, i, (r + r_lo) * a->grad_scale, f32);
    if (a->grad_var)
        sl_store(a->grad_var, i, (0.5 * (1.0 / v - r * r)) * a->grad_scale, f32);
    return value;
}

SL_INLINE void gnll_scalar(const gnll_args *a, int f32)
{
    sl_rows(a, a->n, a->rows_per_block, a->block_sums, gnll_row, f32);
}

#if SL_X86
SL_AVX2 SL_INLINE __m256d gnll_row4(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const gnll_args *a = (const gnll_args *)args;
    __m256d x = sl_load_v(a->x, i, tail, f32), t = sl_load_v(a->t, i, tail, f32);
    __m256d v = sl_load_v(a->var, i, tail, f32), eps = SL_V(a->eps);
    v = sl_select_v(_mm256_cmp_pd(v, eps, _CMP_LT_OQ), eps, v);
    __m256d d = _mm256_sub_pd(x, t);
    __m256d r = _mm256_div_pd(d, v);
    __m256d half_d = _mm256_mul_pd(SL_V(0.5), d);
    __m256d q = _mm256_mul_pd(half_d, r); /* d^2/(2v), finite iff the loss is */
    __m256d r_lo = _mm256_setzero_pd(), q_lo = _mm256_setzero_pd();
    if (!f32) {
        __m256d d_lo;
        sl_two_sum_v(x, _mm256_sub_pd(_mm256_setzero_pd(), t), &d_lo);
        d_lo = _mm256_and_pd(d_lo, _mm256_cmp_pd(sl_abs_v(d), SL_V(INFINITY), _CMP_LT_OQ));
        /* (d + d_lo)/v - r = ((d - r v) + d_lo)/v, d - r v exact by FMA */
        r_lo = sl_finite_or_zero_v(_mm256_div_pd(_mm256_add_pd(_mm256_fnmadd_pd(r, v, d), d_lo), v));
        __m256d cross = _mm256_mul_pd(SL_V(0.5), _mm256_fmadd_pd(d, r_lo, _mm256_mul_pd(d_lo, r)));
        q_lo = _mm256_add_pd(sl_finite_or_zero_v(_mm256_fmsub_pd(half_d, r, q)), sl_finite_or_zero_v(cross));
    }
    __m256d value = _mm256_add_pd(_mm256_fmadd_pd(SL_V(0.5), sl_log_v(v, f32), q), q_lo);
    if (a->full)
        value = _mm256_add_pd(value, SL_V(SL_HALF_LOG_2PI));
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    __m256d scale = SL_V(a->grad_scale);
    if (a->grad_input)
        sl_store_v(a->grad_input, i, _mm256_mul_pd(_mm256_add_pd(r, r_lo), scale), tail, f32);
    if (a->grad_var) {
        __m256d gv = _mm256_mul_pd(SL_V(0.5), _mm256_fnmadd_pd(r, r, _mm256_div_pd(SL_V(1.0), v)));
        sl_store_v(a->grad_var, i, _mm256_mul_pd(gv, scale), tail, f32);
    }
    return value;
}

SL_AVX2 SL_INLINE void gnll_avx2(const gnll_args *a, int f32)
{
    sl_rows_v(a, a->n, a->rows_per_block, a->block_sums, gnll_row4, f32);
}
#endif

SL_KERNEL(gnll, gnll_args)

void sl_gnll_f32(const float *x, const float *target, const float *var,
                 int64_t n, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 float *loss, float *grad_input, float *grad_var, double *block_sums)
{
    const gnll_args a = {x, target, var, n, eps, full, grad_scale, rows_per_block,
                         loss, grad_input, grad_var, block_sums};
    gnll_run(&a, 1);
}

void sl_gnll_f64(const double *x, const double *target, const double *var,
                 int64_t n, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 double *loss, double *grad_input, double *grad_var, double *block_sums)
{
    const gnll_args a = {x, target, var, n, eps, full, grad_scale, rows_per_block,
                         loss, grad_input, grad_var, block_sums};
    gnll_run(&a, 0);
}
