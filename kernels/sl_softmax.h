/*
 * sl_softmax.h -- the passes over one row of logits shared by ce.c and lse.c, scalar and AVX2.
 *
 * Notation of stableloss.h: a = max_j x_j, first attained at k; z_j = x_j - a; s = sum_{j != k} e_j,
 * e_j = exp(z_j); S = 1 + s.  Leaving the max term (e_k = 1) out of s keeps log-sum-exp = a + log1p(s)
 * and 1 - p_k = s/S at full relative accuracy (Blanchard, Higham & Higham 2021).
 *
 * Two arguments choose the variant: f32 is the dtype of the row (loads and stores), cheap the
 * precision grade (sl_math.h).  Full grade: z_j + z_lo_j = x_j - a exactly (TwoSum; fl(x_j - a) is off
 * by u|z_j|, 30 ulp of e_j at z = -50), e_j = exp(z_j)(1 + z_lo_j), compensated sums, <= 1 ulp exp.
 * Cheap grade (float32 rows whose outputs do not cancel): z_lo_j = 0, plain double sums, the 3e-12
 * exp -- all invisible after rounding to float.
 *
 * Passes: the range (max, min, NaN; then the first index of the max, a search that stops at k), the
 * exponential sum (+ the weighted sums CE needs; it may store e_j in a scratch row, and it prefetches
 * the next row into L2 so that the next range pass does not wait on memory), and the writing pass:
 * the gradient from the stored e_j (measured faster than recomputing them), or log-softmax / softmax.
 */
#ifndef SL_SOFTMAX_H
#define SL_SOFTMAX_H

#include "sl_math.h"

/* Rows of at least this many classes prefetch the next row while they are scanned (shorter ones are
 * left to the hardware prefetcher). */
#define SL_PREFETCH_ROW 1024

/* Optional per-class coefficients c_j = w_j (t_scale t_j + t_shift) summed alongside s: weights
 * w (NULL = 1) and this row's target probabilities t; without t, c_j = w_j t_scale. */
typedef struct {
    const void *w, *t;
    double t_scale, t_shift;
} sl_coefs;

typedef struct {
    double a;             /* row max */
    int64_t k;            /* first index attaining it */
    double s;             /* sum_{j != k} e_j; NaN when the row has no finite max (all -inf, +inf, NaN) */
    double log_s;         /* log1p(s) */
    double c_others, c_k; /* sum_{j != k} c_j and c_k            (with coefficients) */
    double c_sum;         /* sum_j c_j = c_others + c_k          (with coefficients) */
    double cz_sum;        /* sum_j c_j (-(z_j + z_lo_j)), >= 0 for c >= 0 (with coefficients) */
} sl_softmax;

/* The max and the sums of row x; e_out != NULL: e_j stored there (e_k = 1); next: the row to prefetch. */
typedef sl_softmax (*sl_scan_fn)(const void *x, int64_t C, const sl_coefs *cf, const void *next,
                                 double *e_out, int f32, int cheap);
/* g_j = K e_j (cf NULL) or (K e_j - b c_j) scale, the difference rounded once (FMA) before the
 * scaling, stored rounded; e_j from e_in (the scan's e_out) or, without it, recomputed from x and a. */
typedef void (*sl_grad_fn)(const void *x, int64_t C, double a, double K, const sl_coefs *cf, double b,
                           double scale, const double *e_in, void *g, int f32, int cheap);
/* log_softmax_j = (z_j - log1p(s)) + z_lo_j and softmax_j = e_j / S, either output optional */
typedef void (*sl_write_fn)(const void *x, int64_t C, double a, double log_s, double S,
                            void *log_softmax, void *softmax, int f32, int cheap);

/* ------------------------------------------------------------------------------------------------
 * Scalar */

SL_INLINE double sl_shift(double x, double a, double *z_lo, int cheap)
{
    if (cheap) {
        *z_lo = 0.0;
        return x - a;
    }
    double err, z = sl_two_sum(x, -a, &err);
    *z_lo = z > -INFINITY ? err : 0.0; /* no error term once z = -inf */
    return z;
}

/* e^(z + z_lo) = e^z (1 + z_lo) to O(z_lo^2), |z_lo| <= 2^-53 |z| */
SL_INLINE double sl_shifted_exp(double z, double z_lo, int cheap)
{
    double e = sl_exp(z, cheap);
    return cheap ? e : e + e * z_lo;
}

SL_INLINE double sl_coef(const sl_coefs *cf, int64_t j, int f32)
{
    double c = cf->w ? sl_load(cf->w, j, f32) : 1.0;
    return c * (cf->t ? cf->t_scale * sl_load(cf->t, j, f32) + cf->t_shift : cf->t_scale);
}

/* A masked class without target mass: coefficient 0 at z = -inf, whose loss term c (log1p(s) - z) is
 * 0 (-log 0) = 0, not 0 * inf = NaN (PyTorch).  A NaN z is no such class: it makes the loss NaN. */
SL_INLINE int sl_masked_class(double c, double z)
{
    return c == 0.0 && z == -INFINITY;
}

SL_INLINE sl_softmax sl_softmax_scan(const void *x, int64_t C, const sl_coefs *cf, const void *next,
                                     double *e_out, int f32, int cheap)
{
    (void)next;
    sl_softmax r = {sl_load(x, 0, f32), 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t j = 1; j < C; j++) {
        double v = sl_load(x, j, f32);
        if (v > r.a) {
            r.a = v;
            r.k = j;
        }
    }
    if (!isfinite(r.a)) {
        r.s = r.log_s = r.c_others = r.c_k = r.c_sum = r.cz_sum = NAN;
        return r;
    }
    sl_acc s = {0.0, 0.0}, cs = {0.0, 0.0}, czs = {0.0, 0.0};
    for (int64_t j = 0; j < C; j++) {
        double z_lo, z = sl_shift(sl_load(x, j, f32), r.a, &z_lo, cheap);
        double e = sl_shifted_exp(z, z_lo, cheap);
        if (e_out)
            e_out[j] = e;
        if (j != r.k)
            sl_acc_add(&s, e, cheap);
        if (cf) {
            double c = sl_coef(cf, j, f32);
            if (j != r.k)
                sl_acc_add(&cs, c, cheap);
            /* c (-z) = 0 at z = 0, also for c = inf (whose term c log1p(s) is in W) */
            if (z != 0.0 && !sl_masked_class(c, z)) {
                sl_acc_add(&czs, -(c * z), cheap);
                czs.lo -= c * z_lo;
            }
        }
    }
    r.s = sl_acc_value(&s);
    r.log_s = sl_log1p(r.s, cheap);
    if (cf) {
        r.c_others = sl_acc_value(&cs);
        r.c_k = sl_coef(cf, r.k, f32);
        sl_acc_add(&cs, r.c_k, cheap);
        r.c_sum = sl_acc_value(&cs);
        r.cz_sum = sl_acc_value(&czs);
    }
    return r;
}

SL_INLINE void sl_softmax_grad(const void *x, int64_t C, double a, double K, const sl_coefs *cf, double b,
                               double scale, const double *e_in, void *g, int f32, int cheap)
{
    for (int64_t j = 0; j < C; j++) {
        double z_lo, z = e_in ? 0.0 : sl_shift(sl_load(x, j, f32), a, &z_lo, cheap);
        double e = e_in ? e_in[j] : sl_shifted_exp(z, z_lo, cheap);
        sl_store(g, j, cf ? fma(K, e, -(b * sl_coef(cf, j, f32))) * scale : K * e, f32);
    }
}

SL_INLINE void sl_softmax_write(const void *x, int64_t C, double a, double log_s, double S,
                                void *log_softmax, void *softmax, int f32, int cheap)
{
    for (int64_t j = 0; j < C; j++) {
        double z_lo, z = sl_shift(sl_load(x, j, f32), a, &z_lo, cheap);
        if (log_softmax) /* z_j <= 0 and -log1p(s) <= 0: same sign, no cancellation */
            sl_store(log_softmax, j, (z - log_s) + z_lo, f32);
        if (softmax)
            sl_store(softmax, j, sl_shifted_exp(z, z_lo, cheap) / S, f32);
    }
}

#if SL_X86
/* ------------------------------------------------------------------------------------------------
 * AVX2+FMA: the same passes, 4 classes per step (8 floats per step for the range of float32 rows) */

SL_AVX2 SL_INLINE __m256d sl_shift_v(__m256d x, __m256d a, __m256d *z_lo, int cheap)
{
    if (cheap) {
        *z_lo = _mm256_setzero_pd();
        return _mm256_sub_pd(x, a);
    }
    __m256d err, z = sl_two_sum_v(x, _mm256_sub_pd(_mm256_setzero_pd(), a), &err);
    *z_lo = _mm256_and_pd(err, _mm256_cmp_pd(z, SL_V(-INFINITY), _CMP_GT_OQ));
    return z;
}

/* normal: z known to lie in [-708, 0] (the row's min is within 708 of its max), no range check. */
SL_AVX2 SL_INLINE __m256d sl_shifted_exp_v(__m256d z, __m256d z_lo, int normal, int cheap)
{
    __m256d e = normal ? sl_exp_normal_v(z, cheap) : sl_exp_v(z, cheap);
    return cheap ? e : _mm256_fmadd_pd(e, z_lo, e);
}

/* c_j for the 4 classes at j, 0 outside the tail. */
SL_AVX2 SL_INLINE __m256d sl_coef_v(const sl_coefs *cf, int64_t j, const sl_tail *tail, int f32)
{
    __m256d c = cf->w ? sl_load_v(cf->w, j, tail, f32) : sl_keep_v(SL_V(1.0), tail);
    c = _mm256_mul_pd(c, cf->t ? _mm256_fmadd_pd(SL_V(cf->t_scale), sl_load_v(cf->t, j, tail, f32),
                                                 SL_V(cf->t_shift))
                               : SL_V(cf->t_scale));
    return c;
}

/* Max and min of a row, and whether it holds a NaN (max/min drop NaNs depending on operand order).  A NaN
 * that a max or min kept is harmless: such a row is flagged and its max is not used. */
typedef struct {
    double max, min;
    int nan;
} sl_range;

SL_AVX2 SL_INLINE sl_range sl_row_range_v(const void *x, int64_t C, int f32)
{
    int64_t j = 0;
    sl_range rg;
    if (f32) {
        const float *p = (const float *)x;
        __m256 hi = _mm256_set1_ps(-INFINITY), lo = _mm256_set1_ps(INFINITY), nan = _mm256_setzero_ps();
        __m256 hi2 = hi, lo2 = lo, nan2 = nan; /* two sets of chains: one set left this loop at half speed */
        for (; C - j >= 16; j += 16) {
            __m256 v = _mm256_loadu_ps(p + j), w = _mm256_loadu_ps(p + j + 8);
            hi = _mm256_max_ps(hi, v);
            hi2 = _mm256_max_ps(hi2, w);
            lo = _mm256_min_ps(lo, v);
            lo2 = _mm256_min_ps(lo2, w);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            nan2 = _mm256_or_ps(nan2, _mm256_cmp_ps(w, w, _CMP_UNORD_Q));
        }
        hi = _mm256_max_ps(hi, hi2);
        lo = _mm256_min_ps(lo, lo2);
        nan = _mm256_or_ps(nan, nan2);
        for (; C - j >= 8; j += 8) {
            __m256 v = _mm256_loadu_ps(p + j);
            hi = _mm256_max_ps(hi, v);
            lo = _mm256_min_ps(lo, v);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        if (j < C) {
            __m256i in = sl_tail8_mask(C - j);
            __m256 v = _mm256_maskload_ps(p + j, in);
            hi = _mm256_max_ps(hi, _mm256_blendv_ps(hi, v, _mm256_castsi256_ps(in)));
            lo = _mm256_min_ps(lo, _mm256_blendv_ps(lo, v, _mm256_castsi256_ps(in)));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1));
        __m128 l = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps(lo, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        l = _mm_min_ps(l, _mm_movehl_ps(l, l));
        rg.max = (double)_mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
        rg.min = (double)_mm_cvtss_f32(_mm_min_ss(l, _mm_shuffle_ps(l, l, 1)));
        rg.nan = _mm256_movemask_ps(nan) != 0;
        return rg;
    }
    const double *p = (const double *)x;
    __m256d hi = SL_V(-INFINITY), lo = SL_V(INFINITY), nan = _mm256_setzero_pd();
    __m256d hi2 = hi, lo2 = lo, nan2 = nan;
    for (; C - j >= 8; j += 8) {
        __m256d v = _mm256_loadu_pd(p + j), w = _mm256_loadu_pd(p + j + 4);
        hi = _mm256_max_pd(hi, v);
        hi2 = _mm256_max_pd(hi2, w);
        lo = _mm256_min_pd(lo, v);
        lo2 = _mm256_min_pd(lo2, w);
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
        nan2 = _mm256_or_pd(nan2, _mm256_cmp_pd(w, w, _CMP_UNORD_Q));
    }
    hi = _mm256_max_pd(hi, hi2);
    lo = _mm256_min_pd(lo, lo2);
    nan = _mm256_or_pd(nan, nan2);
    for (; C - j >= 4; j += 4) {
        __m256d v = _mm256_loadu_pd(p + j);
        hi = _mm256_max_pd(hi, v);
        lo = _mm256_min_pd(lo, v);
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        __m256d v = sl_load_v(p, j, &tail, 0), in = _mm256_castsi256_pd(tail.m64);
        hi = _mm256_max_pd(hi, _mm256_blendv_pd(hi, v, in));
        lo = _mm256_min_pd(lo, _mm256_blendv_pd(lo, v, in));
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(hi), _mm256_extractf128_pd(hi, 1));
    __m128d l = _mm_min_pd(_mm256_castpd256_pd128(lo), _mm256_extractf128_pd(lo, 1));
    rg.max = _mm_cvtsd_f64(_mm_max_sd(h, _mm_unpackhi_pd(h, h)));
    rg.min = _mm_cvtsd_f64(_mm_min_sd(l, _mm_unpackhi_pd(l, l)));
    rg.nan = _mm256_movemask_pd(nan) != 0;
    return rg;
}

/* First j with x_j == a (a a finite value of the row). */
SL_AVX2 SL_INLINE int64_t sl_first_index_v(const void *x, int64_t C, double a, int f32)
{
    int64_t j = 0;
    int hit = 0;
    if (f32) {
        const float *p = (const float *)x;
        __m256 av = _mm256_set1_ps((float)a); /* exact: a is one of the floats */
        for (; C - j >= 8 && !hit; j += 8)
            hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + j), av, _CMP_EQ_OQ));
        if (!hit && j < C) {
            __m256 v = _mm256_maskload_ps(p + j, sl_tail8_mask(C - j));
            hit = _mm256_movemask_ps(_mm256_cmp_ps(v, av, _CMP_EQ_OQ)) & ((1 << (C - j)) - 1);
            j += 8;
        }
        return hit ? j - 8 + __builtin_ctz((unsigned)hit) : 0;
    }
    const double *p = (const double *)x;
    __m256d av = SL_V(a);
    for (; C - j >= 4 && !hit; j += 4)
        hit = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(p + j), av, _CMP_EQ_OQ));
    if (!hit && j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        __m256d v = sl_load_v(p, j, &tail, 0);
        hit = _mm256_movemask_pd(_mm256_cmp_pd(v, av, _CMP_EQ_OQ)) & ((1 << (C - j)) - 1);
        j += 4;
    }
    return hit ? j - 4 + __builtin_ctz((unsigned)hit) : 0;
}

typedef struct {
    sl_acc_v s, cs, czs;
} sl_scan_acc_v;

SL_AVX2 SL_INLINE void sl_scan_step_v(const void *x, int64_t j, const sl_tail *tail, __m256d a,
                                      const sl_coefs *cf, double *e_out, sl_scan_acc_v *acc, int normal,
                                      int f32, int cheap)
{
    __m256d z_lo, z = sl_shift_v(sl_load_v(x, j, tail, f32), a, &z_lo, cheap);
    __m256d e = sl_keep_v(sl_shifted_exp_v(z, z_lo, normal, cheap), tail);
    if (e_out)
        sl_store_v(e_out, j, e, tail, 0);
    sl_acc_v_add(&acc->s, e, cheap);
    if (cf) { /* outside the tail c = 0 and z = -a is finite: nothing added */
        __m256d c = sl_coef_v(cf, j, tail, f32);
        sl_acc_v_add(&acc->cs, c, cheap);
        /* c (-z) = 0 at z = 0, also for c = inf (its term c log1p(s) is in the coefficient sum), and
         * nothing for a masked class (sl_masked_class) */
        __m256d masked = _mm256_and_pd(_mm256_cmp_pd(c, _mm256_setzero_pd(), _CMP_EQ_OQ),
                                       _mm256_cmp_pd(z, SL_V(-INFINITY), _CMP_EQ_OQ));
        __m256d nonzero = _mm256_andnot_pd(masked, _mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_NEQ_UQ));
        sl_acc_v_add(&acc->czs, _mm256_and_pd(nonzero, _mm256_mul_pd(c, _mm256_sub_pd(_mm256_setzero_pd(), z))),
                     cheap);
        if (!cheap)
            acc->czs.lo = _mm256_sub_pd(acc->czs.lo, _mm256_and_pd(nonzero, _mm256_mul_pd(c, z_lo)));
    }
}

/* Classes [lo, hi); the next row's bytes at the same offsets are prefetched meanwhile (rows of
 * SL_PREFETCH_ROW classes and more).  The hint is T0, all cache levels: the next row's range pass reads
 * it first, and T1 (L2 only) measured slower.  The sums live in locals (registers). */
SL_AVX2 SL_INLINE void sl_scan_span_v(const void *x, int64_t lo, int64_t hi, __m256d a, const sl_coefs *cf,
                                      const void *next, double *e_out, sl_scan_acc_v *acc, int normal,
                                      int f32, int cheap)
{
    sl_scan_acc_v sums = *acc;
    int64_t j = lo;
    for (; hi - j >= 4; j += 4) {
        size_t offset = (size_t)j * (f32 ? 4 : 8);
        if (next && offset % 64 < (f32 ? 16 : 32)) /* once per cache line, wherever the span starts */
            _mm_prefetch((const char *)next + offset, _MM_HINT_T0);
        sl_scan_step_v(x, j, NULL, a, cf, e_out, &sums, normal, f32, cheap);
    }
    if (j < hi) {
        sl_tail tail = sl_tail_mask(hi - j);
        sl_scan_step_v(x, j, &tail, a, cf, e_out, &sums, normal, f32, cheap);
    }
    *acc = sums;
}

/* Both spans around k. */
SL_AVX2 SL_INLINE void sl_scan_spans_v(const void *x, int64_t C, int64_t k, __m256d a, const sl_coefs *cf,
                                       const void *next, double *e_out, sl_scan_acc_v *acc, int normal,
                                       int f32, int cheap)
{
    sl_scan_span_v(x, 0, k, a, cf, next, e_out, acc, normal, f32, cheap); /* every class but k */
    sl_scan_span_v(x, k + 1, C, a, cf, next, e_out, acc, normal, f32, cheap);
}

/* sl_scan_spans_v with `normal` a compile-time constant in each loop. */
SL_AVX2 SL_INLINE void sl_scan_normal_or_not_v(const void *x, int64_t C, int64_t k, __m256d a,
                                               const sl_coefs *cf, const void *next, double *e_out,
                                               sl_scan_acc_v *acc, int normal, int f32, int cheap)
{
    if (normal)
        sl_scan_spans_v(x, C, k, a, cf, next, e_out, acc, 1, f32, cheap);
    else
        sl_scan_spans_v(x, C, k, a, cf, next, e_out, acc, 0, f32, cheap);
}

SL_AVX2 SL_INLINE sl_softmax sl_softmax_scan_v(const void *x, int64_t C, const sl_coefs *cf, const void *next,
                                               double *e_out, int f32, int cheap)
{
    sl_range rg = sl_row_range_v(x, C, f32);
    sl_softmax r = {rg.max, 0, NAN, NAN, NAN, NAN, NAN, NAN};
    if (rg.nan || !isfinite(r.a))
        return r;
    r.k = sl_first_index_v(x, C, r.a, f32);
    r.c_others = r.c_k = r.c_sum = r.cz_sum = 0.0;
    sl_scan_acc_v acc = {sl_acc_v_zero(), sl_acc_v_zero(), sl_acc_v_zero()};
    __m256d a = SL_V(r.a);
    if (C < SL_PREFETCH_ROW)
        next = NULL;
    /* specialised loops: with or without coefficients, storing e_j or not, with or without the range
     * check of exp */
    int normal = rg.min - r.a >= -SL_EXP_NORMAL;
    if (cf && e_out)
        sl_scan_normal_or_not_v(x, C, r.k, a, cf, next, e_out, &acc, normal, f32, cheap);
    else if (cf)
        sl_scan_normal_or_not_v(x, C, r.k, a, cf, next, NULL, &acc, normal, f32, cheap);
    else if (e_out)
        sl_scan_normal_or_not_v(x, C, r.k, a, NULL, next, e_out, &acc, normal, f32, cheap);
    else
        sl_scan_normal_or_not_v(x, C, r.k, a, NULL, next, NULL, &acc, normal, f32, cheap);
    if (e_out)
        e_out[r.k] = 1.0;
    r.s = sl_acc_v_value(&acc.s, cheap);
    r.log_s = _mm256_cvtsd_f64(sl_log1p_v(SL_V(r.s), cheap)); /* the vector form: shorter chain */
    if (cf) { /* k's coefficient (its z term is 0) */
        r.c_others = sl_acc_v_value(&acc.cs, cheap);
        r.c_k = sl_coef(cf, r.k, f32);
        sl_acc cs = {r.c_others, 0.0};
        sl_acc_add(&cs, r.c_k, cheap);
        r.c_sum = sl_acc_value(&cs);
        r.cz_sum = sl_acc_v_value(&acc.czs, cheap);
    }
    return r;
}

SL_AVX2 SL_INLINE void sl_grad_step_v(const void *x, int64_t j, const sl_tail *tail, __m256d a, __m256d K,
                                      const sl_coefs *cf, __m256d b, __m256d scale, const double *e_in,
                                      void *g, int f32, int cheap)
{
    __m256d e;
    if (e_in) {
        e = sl_load_v(e_in, j, tail, 0);
    } else {
        __m256d z_lo, z = sl_shift_v(sl_load_v(x, j, tail, f32), a, &z_lo, cheap);
        e = sl_shifted_exp_v(z, z_lo, 0, cheap);
    }
    __m256d v = cf ? _mm256_mul_pd(_mm256_fmsub_pd(K, e, _mm256_mul_pd(b, sl_coef_v(cf, j, tail, f32))), scale)
                   : _mm256_mul_pd(K, e);
    sl_store_v(g, j, v, tail, f32);
}

SL_AVX2 SL_INLINE void sl_softmax_grad_v(const void *x, int64_t C, double a, double K, const sl_coefs *cf,
                                         double b, double scale, const double *e_in, void *g, int f32,
                                         int cheap)
{
    int64_t j = 0;
    for (; C - j >= 4; j += 4)
        sl_grad_step_v(x, j, NULL, SL_V(a), SL_V(K), cf, SL_V(b), SL_V(scale), e_in, g, f32, cheap);
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_grad_step_v(x, j, &tail, SL_V(a), SL_V(K), cf, SL_V(b), SL_V(scale), e_in, g, f32, cheap);
    }
}

SL_AVX2 SL_INLINE void sl_write_step_v(const void *x, int64_t j, const sl_tail *tail, __m256d a, __m256d log_s,
                                       __m256d S, void *log_softmax, void *softmax, int f32, int cheap)
{
    __m256d z_lo, z = sl_shift_v(sl_load_v(x, j, tail, f32), a, &z_lo, cheap);
    if (log_softmax)
        sl_store_v(log_softmax, j, _mm256_add_pd(_mm256_sub_pd(z, log_s), z_lo), tail, f32);
    if (softmax)
        sl_store_v(softmax, j, _mm256_div_pd(sl_shifted_exp_v(z, z_lo, 0, cheap), S), tail, f32);
}

SL_AVX2 SL_INLINE void sl_softmax_write_v(const void *x, int64_t C, double a, double log_s, double S,
                                          void *log_softmax, void *softmax, int f32, int cheap)
{
    int64_t j = 0;
    for (; C - j >= 4; j += 4)
        sl_write_step_v(x, j, NULL, SL_V(a), SL_V(log_s), SL_V(S), log_softmax, softmax, f32, cheap);
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_write_step_v(x, j, &tail, SL_V(a), SL_V(log_s), SL_V(S), log_softmax, softmax, f32, cheap);
    }
}
#endif /* SL_X86 */
#endif /* SL_SOFTMAX_H */
