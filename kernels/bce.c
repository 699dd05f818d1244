/*
 * bce.c -- binary cross-entropy with logits, elementwise, with its gradient (sl_bce_f32,
 * sl_bce_f64; stableloss.h).
 *
 * Method.  e = exp(-|x|), softplus(+-x) = max(+-x, 0) + log1p(e) (no overflow, no cancellation);
 * loss = (w pw y) softplus(-x) + (w (1 - y)) softplus(x), a sum of non-negative terms for labels in
 * [0, 1], the weights applied first so that pw y softplus(-x) cannot overflow before w scales it.
 * sigma(x) = 1/(1+e) for x >= 0 and e/(1+e) below, sigma(-x) the other one, never 1 - sigma;
 * grad = w ((1 - y) sigma(x) - pw y sigma(-x)) grad_scale.
 *   With soft labels (0 < y < 1) the two gradient terms cancel near the root (x = 1e-30, y = 1/2:
 *   2.5e-31 from two terms of 1/2), so there the terms are formed in double-double (e from
 *   sl_exp_dd, 1 - y and pw y exact) on a scalar path: every soft label for float64, and for float32
 *   those where the double result cancels by more than 2^8 (below that, the 4e-12 exp of the cheap
 *   grade leaves 1e-9).  float64 |x| > 700, where e is subnormal or nearly while w pw y e need not be,
 *   carries e scaled by 2^512 (scalar path).
 *
 * Special cases.  A term whose label factor (y, resp. 1 - y) is exactly 0 counts as 0, so x = +-inf
 * gives the limit (0 for the matching label, +inf otherwise) instead of PyTorch's NaN.  NaN in x, y,
 * w or pw: NaN out.
 *
 * Accuracy (against mpmath: random, soft and hard labels, |x| up to 1e30 and the dtype max, +-inf,
 * weights and pos_weight up to 1000; scalar and AVX2 alike): float32 0.5 ulp; float64 loss 2.4 ulp,
 * gradient 2.0 ulp.  Budget: 4 ulp.
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

/* The double result of w ((1 - y) sigma(x) - pw y sigma(-x)) cancels by more than 2^8 (float32). */
#define BCE_CANCEL 0x1p-8

/* w ((1 - y) sigma(x) - pw y sigma(-x)) in double-double, rounded once (finite x). */
SL_INLINE double bce_grad_dd(double x, double y, double w, double pw)
{
    double e_lo, e = sl_exp_dd(-fabs(x), &e_lo);
    double den_lo, den = sl_dd_add(1.0, 0.0, e, e_lo, &den_lo);
    double inv_lo, inv = sl_dd_div(1.0, 0.0, den, den_lo, &inv_lo); /* 1/(1+e) */
    double e_inv_lo, e_inv = sl_dd_mul(e, e_lo, inv, inv_lo, &e_inv_lo); /* e/(1+e) */
    double neg_lo, neg = sl_two_sum(1.0, -y, &neg_lo);                /* 1 - y */
    double pwy_lo, pwy = sl_two_prod(pw, y, &pwy_lo);
    double a_lo, a = sl_dd_mul(neg, neg_lo, x >= 0.0 ? inv : e_inv, x >= 0.0 ? inv_lo : e_inv_lo, &a_lo);
    double b_lo, b = sl_dd_mul(pwy, pwy_lo, x >= 0.0 ? e_inv : inv, x >= 0.0 ? e_inv_lo : inv_lo, &b_lo);
    double d_lo, d = sl_dd_add(a, a_lo, -b, -b_lo, &d_lo);
    double g_lo, g = sl_dd_mul(d, d_lo, w, 0.0, &g_lo);
    return g + g_lo;
}

/* float64, 700 < |x| < inf: e = e^-|x| is subnormal or nearly, yet w pw y e need not be: e is carried
 * as es 2^-512 (es = e^(-|x| + 512 ln 2), the shift in double-double) and each e-term rounds once.
 * There sigma = 1/(1+e) is 1 and e/(1+e) is e, log1p(e) is e. */
SL_INLINE double bce_eval_tiny_e(double x, double y, double w, double pw, double *grad)
{
    double shift_lo, shift = sl_k_ln2_dd(512.0, &shift_lo);
    double up_lo, up = sl_dd_add(-fabs(x), 0.0, shift, shift_lo, &up_lo);
    double es = sl_exp(up, 0);
    es += es * up_lo; /* e^(up + up_lo) = e^up (1 + up_lo) */
    int pos = x > 0.0;
    double e_factor = pos ? w * (pw * y) : w * (1.0 - y);   /* the term with e */
    double x_factor = pos ? w * (1.0 - y) : w * (pw * y);   /* the term with |x| */
    int e_on = pos ? y != 0.0 : y != 1.0, x_on = pos ? y != 1.0 : y != 0.0;
    double e_term = ldexp(e_factor * es, -512);
    *grad = pos ? x_factor - e_term : e_term - x_factor;
    return (x_on ? x_factor * fabs(x) : 0.0) + (e_on ? e_term : 0.0);
}

/* Loss and unscaled gradient of one element. */
SL_INLINE double bce_eval(double x, double y, double w, double pw, double *grad, int f32)
{
    if (!f32 && fabs(x) > 700.0 && isfinite(x))
        return bce_eval_tiny_e(x, y, w, pw, grad);
    double e, log_term = sl_softplus_tail(x, &e, f32);
    double pos_term = y == 0.0 ? 0.0 : (w * (pw * y)) * ((x < 0.0 ? -x : 0.0) + log_term);
    double neg_term = y == 1.0 ? 0.0 : (w * (1.0 - y)) * ((x > 0.0 ? x : 0.0) + log_term);
    double inv = 1.0 / (1.0 + e);
    double sig_pos = (1.0 - y) * (x >= 0.0 ? inv : e * inv); /* (1 - y) sigma(x) */
    double sig_neg = pw * y * (x >= 0.0 ? e * inv : inv);   /* pw y sigma(-x), never 1 - sigma(x) */
    *grad = w * (sig_pos - sig_neg);
    if (y > 0.0 && y < 1.0 && isfinite(x) &&
        (!f32 || fabs(sig_pos - sig_neg) < BCE_CANCEL * fmax(sig_pos, sig_neg)))
        *grad = bce_grad_dd(x, y, w, pw);
    return pos_term + neg_term;
}

SL_INLINE double bce_row(const void *args, int64_t i, int f32)
{
    const bce_args *a = (const bce_args *)args;
    double g, value = bce_eval(sl_load(a->x, i, f32), sl_load(a->y, i, f32), a->w ? sl_load(a->w, i, f32) : 1.0,
                               a->pw ? sl_load(a->pw, i, f32) : 1.0, &g, f32);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, g * a->grad_scale, f32);
    return value;
}

SL_INLINE void bce_scalar(const bce_args *a, int f32)
{
    sl_rows(a, a->n, a->rows_per_block, a->block_sums, bce_row, f32);
}

#if SL_X86
/* The lanes in `mask` (cancelling soft-label gradients, float64 |x| > 700) from the scalar path. */
SL_AVX2 SL_INLINE void bce_slow_lanes(__m256d x, __m256d y, __m256d w, __m256d pw, int mask, __m256d *value,
                                      __m256d *g, int f32)
{
    double xs[4], ys[4], ws[4], pws[4], vs[4], gs[4];
    _mm256_storeu_pd(xs, x);
    _mm256_storeu_pd(ys, y);
    _mm256_storeu_pd(ws, w);
    _mm256_storeu_pd(pws, pw);
    _mm256_storeu_pd(vs, *value);
    _mm256_storeu_pd(gs, *g);
    for (int l = 0; l < 4; l++)
        if (mask >> l & 1)
            vs[l] = bce_eval(xs[l], ys[l], ws[l], pws[l], &gs[l], f32);
    *value = _mm256_loadu_pd(vs);
    *g = _mm256_loadu_pd(gs);
}

SL_AVX2 SL_INLINE __m256d bce_row4(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const bce_args *a = (const bce_args *)args;
    __m256d zero = _mm256_setzero_pd(), one = SL_V(1.0);
    __m256d x = sl_load_v(a->x, i, tail, f32), y = sl_load_v(a->y, i, tail, f32);
    __m256d w = a->w ? sl_load_v(a->w, i, tail, f32) : one;
    __m256d pw = a->pw ? sl_load_v(a->pw, i, tail, f32) : one;
    __m256d e, log_term = sl_softplus_tail_v(x, &e, f32);
    /* max(0, v) returns v when v is NaN (second operand) */
    __m256d sp_neg = _mm256_add_pd(_mm256_max_pd(zero, _mm256_sub_pd(zero, x)), log_term);
    __m256d sp_pos = _mm256_add_pd(_mm256_max_pd(zero, x), log_term);
    __m256d pwy = _mm256_mul_pd(pw, y);
    __m256d pos_term = _mm256_mul_pd(_mm256_mul_pd(w, pwy), sp_neg);
    __m256d neg_term = _mm256_mul_pd(_mm256_mul_pd(w, _mm256_sub_pd(one, y)), sp_pos);
    pos_term = _mm256_andnot_pd(_mm256_cmp_pd(y, zero, _CMP_EQ_OQ), pos_term); /* label factor 0: term 0 */
    neg_term = _mm256_andnot_pd(_mm256_cmp_pd(y, one, _CMP_EQ_OQ), neg_term);
    __m256d value = _mm256_add_pd(pos_term, neg_term);
    __m256d g = zero, slow = zero;
    if (a->grad) {
        __m256d inv = _mm256_div_pd(one, _mm256_add_pd(one, e));
        __m256d e_inv = _mm256_mul_pd(e, inv);
        __m256d x_nonneg = _mm256_cmp_pd(x, zero, _CMP_GE_OQ);
        __m256d sig_pos = _mm256_mul_pd(_mm256_sub_pd(one, y), sl_select_v(x_nonneg, inv, e_inv));
        __m256d sig_neg = _mm256_mul_pd(pwy, sl_select_v(x_nonneg, e_inv, inv));
        __m256d diff = _mm256_sub_pd(sig_pos, sig_neg);
        g = _mm256_mul_pd(w, diff);
        /* soft labels whose gradient terms cancel (see above) */
        slow = _mm256_and_pd(_mm256_cmp_pd(y, zero, _CMP_GT_OQ), _mm256_cmp_pd(y, one, _CMP_LT_OQ));
        slow = _mm256_and_pd(slow, sl_isfinite_v(x));
        if (f32) {
            __m256d cut = _mm256_mul_pd(SL_V(BCE_CANCEL), _mm256_max_pd(sig_pos, sig_neg));
            slow = _mm256_and_pd(slow, _mm256_cmp_pd(sl_abs_v(diff), cut, _CMP_LT_OQ));
        }
    }
    if (!f32) /* e^-|x| near underflow */
        slow = _mm256_or_pd(slow, _mm256_and_pd(_mm256_cmp_pd(sl_abs_v(x), SL_V(700.0), _CMP_GT_OQ),
                                                sl_isfinite_v(x)));
    int mask = _mm256_movemask_pd(slow) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        bce_slow_lanes(x, y, w, pw, mask, &value, &g, f32);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad)
        sl_store_v(a->grad, i, _mm256_mul_pd(g, SL_V(a->grad_scale)), tail, f32);
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
