/*
 * bce.c -- binary cross-entropy with logits, elementwise, with its gradient (sl_bce_f32,
 * sl_bce_f64; stableloss.h).
 *
 * Method.  e = exp(-|x|), softplus(+-x) = max(+-x, 0) + log1p(e) (no overflow, no cancellation);
 * loss = w (pw y softplus(-x) + (1 - y) softplus(x)), a sum of non-negative terms for labels in
 * [0, 1].  sigma(x) = 1/(1+e) for x >= 0 and e/(1+e) below, sigma(-x) the other one, so that
 * neither is ever formed as 1 - sigma; grad = w ((1 - y) sigma(x) - pw y sigma(-x)) grad_scale.
 *
 * Special cases.  A term whose label factor (y, resp. 1 - y) is exactly 0 counts as 0, so x = +-inf
 * gives the limit (0 for the matching label, +inf otherwise) instead of PyTorch's NaN.  NaN in x, y,
 * w or pw: NaN out.
 *
 * Accuracy: see the report in the project log (budget 4 ulp per loss and gradient element).
 */
#include "sl_kernel.h"

typedef struct {
    const void *x, *y, *w, *pw;
    int64_t n;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} bce_args;

SL_INLINE double bce_row(const void *args, int64_t i, int f32)
{
    const bce_args *a = (const bce_args *)args;
    double x = sl_load(a->x, i, f32), y = sl_load(a->y, i, f32);
    double w = a->w ? sl_load(a->w, i, f32) : 1.0;
    double pw = a->pw ? sl_load(a->pw, i, f32) : 1.0;
    double e, log_term = sl_softplus_tail(x, &e, f32);
    double pos_term = y == 0.0 ? 0.0 : pw * y * ((x < 0.0 ? -x : 0.0) + log_term);
    double neg_term = y == 1.0 ? 0.0 : (1.0 - y) * ((x > 0.0 ? x : 0.0) + log_term);
    double value = w * (pos_term + neg_term);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad) {
        double inv = 1.0 / (1.0 + e);
        double sig_pos = x >= 0.0 ? inv : e * inv; /* sigma(x) */
        double sig_neg = x >= 0.0 ? e * inv : inv; /* sigma(-x), never 1 - sigma(x) */
        sl_store(a->grad, i, (w * ((1.0 - y) * sig_pos - pw * y * sig_neg)) * a->grad_scale, f32);
    }
    return value;
}

SL_INLINE void bce_scalar(const bce_args *a, int f32)
{
    sl_rows(a, a->n, a->rows_per_block, a->block_sums, bce_row, f32);
}

#if SL_X86
SL_AVX2 SL_INLINE __m256d bce_row4(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const bce_args *a = (const bce_args *)args;
    __m256d zero = _mm256_setzero_pd(), one = SL_V(1.0);
    __m256d x = sl_load_v(a->x, i, tail, f32), y = sl_load_v(a->y, i, tail, f32);
    __m256d w = a->w ? sl_load_v(a->w, i, tail, f32) : one;
    __m256d pwy = a->pw ? _mm256_mul_pd(sl_load_v(a->pw, i, tail, f32), y) : y;
    __m256d e, log_term = sl_softplus_tail_v(x, &e, f32);
    /* max(0, v) returns v when v is NaN (second operand) */
    __m256d sp_neg = _mm256_add_pd(_mm256_max_pd(zero, _mm256_sub_pd(zero, x)), log_term);
    __m256d sp_pos = _mm256_add_pd(_mm256_max_pd(zero, x), log_term);
    __m256d pos_term = _mm256_andnot_pd(_mm256_cmp_pd(y, zero, _CMP_EQ_OQ), _mm256_mul_pd(pwy, sp_neg));
    __m256d neg_term = _mm256_andnot_pd(_mm256_cmp_pd(y, one, _CMP_EQ_OQ),
                                        _mm256_mul_pd(_mm256_sub_pd(one, y), sp_pos));
    __m256d value = _mm256_mul_pd(w, _mm256_add_pd(pos_term, neg_term));
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad) {
        __m256d inv = _mm256_div_pd(one, _mm256_add_pd(one, e));
        __m256d e_inv = _mm256_mul_pd(e, inv);
        __m256d x_nonneg = _mm256_cmp_pd(x, zero, _CMP_GE_OQ);
        __m256d sig_pos = sl_select_v(x_nonneg, inv, e_inv);
        __m256d sig_neg = sl_select_v(x_nonneg, e_inv, inv);
        __m256d g = _mm256_mul_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_sub_pd(one, y), sig_pos),
                                                _mm256_mul_pd(pwy, sig_neg)), w);
        sl_store_v(a->grad, i, _mm256_mul_pd(g, SL_V(a->grad_scale)), tail, f32);
    }
    return value;
}

SL_AVX2 SL_INLINE void bce_avx2(const bce_args *a, int f32)
{
    sl_rows_v(a, a->n, a->rows_per_block, a->block_sums, bce_row4, f32);
}
#endif

SL_KERNEL(bce, bce_args)

void sl_bce_f32(const float *x, const float *target, const float *weight, const float *pos_weight,
                int64_t n, double grad_scale, int64_t rows_per_block,
                float *loss, float *grad, double *block_sums)
{
    const bce_args a = {x, target, weight, pos_weight, n, grad_scale, rows_per_block, loss, grad, block_sums};
    bce_run(&a, 1);
}

void sl_bce_f64(const double *x, const double *target, const double *weight, const double *pos_weight,
                int64_t n, double grad_scale, int64_t rows_per_block,
                double *loss, double *grad, double *block_sums)
{
    const bce_args a = {x, target, weight, pos_weight, n, grad_scale, rows_per_block, loss, grad, block_sums};
    bce_run(&a, 0);
}
