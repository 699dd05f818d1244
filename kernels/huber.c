/*
 * huber.c -- Huber, smooth L1 and L1 losses, elementwise, with the gradient (sl_huber_f32,
 * sl_huber_f64; stableloss.h): one kernel, its parameters select the form.
 *
 * Method.  d = x - t; the form is |d| < delta ? d^2/(2q) : m (|d| - delta/2), with q = delta, m = 1
 * (smooth != 0: smooth_l1, and l1 with delta = 0) or q = 1, m = delta (huber), times w; grad =
 * (grad_scale w) (d/q or m sign(d)), sign(0) = 0.  Each form is computed directly, rounded once
 * before the weight: float64 carries d + d_lo = x - t exactly (TwoSum) and decides |d| < delta on it;
 *   quadratic: r + r_lo = (d + d_lo)/q (the division's residual exact by FMA; for q = 1 r = d exactly),
 *              d^2/(2q) = (d r + (d r - fl(d r)) + d r_lo + d_lo r)/2, d r finite wherever the loss is;
 *   linear:    s + s_lo = |d| - delta/2 (TwoSum, >= delta/2: no cancellation), m (s + s_lo + |d|_lo)
 *              with one FMA;
 * then one product with w.  float32: the same in double without the low parts, rounded once.
 *
 * Special cases.  NaN in: NaN out (also the gradient: sign(NaN) = NaN).  Infinite d: linear, loss
 * +inf (NaN for w = 0 or delta = inf, as torch), gradient +-m w.  The low parts are dropped once they
 * are not finite.  float64 only: x - t overflowing with x, t finite: the same on h = x/2 - t/2 (d =
 * 2h); an unweighted value u beyond the double range or subnormal where w u need not be: w (s +
 * s_lo) m and (w (d + d_lo)/2) (r + r_lo) (two_prod), so that no spurious inf or lost bits remain.
 * These lanes go to the scalar path.
 *
 * Accuracy (against mpmath: thresholds from the smallest subnormal to max/4, differences at the
 * kinks, around sqrt(tiny) and sqrt(max), overflowing x - t; every SIMD level alike): float32 0.5 ulp;
 * float64 loss 1.3 ulp (with a weight: the product w u rounds again), gradient 1.1 ulp.  Budget: 4 ulp.
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target, *weight;
    int64_t n_rows;
    double delta;
    int64_t smooth;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} huber_args;

/* sign(v): -1, +1, and v itself for +-0 and NaN. */
SL_INLINE double huber_sign(double v)
{
    return v > 0 ? 1.0 : v < 0 ? -1.0 : v;
}

/* Whether an unweighted float64 value u is out of the range where w u is right: overflowed (d finite)
 * or below the normals (d != 0), where w u may be neither. */
SL_INLINE int huber_out_of_range(double u, double h)
{
    return (u == INFINITY && isfinite(h)) || (u < SL_SMALLEST_NORMAL && h != 0);
}

/* Loss and gradient of one element, sw = grad_scale w, every case included: the scalar path, and the
 * rare lanes of the vector path. */
SL_INLINE double huber_eval(double x, double t, double w, double sw, double delta, int smooth, double *g,
                            int f32)
{
    double h_lo = 0.0, h = f32 ? x - t : sl_two_sum(x, -t, &h_lo);
    double k = 1.0; /* d = k (h + h_lo) */
    if (!f32 && isinf(h) && isfinite(x) && isfinite(t)) { /* x - t overflows: h = x/2 - t/2, d = 2h */
        h = sl_two_sum(0.5 * x, -0.5 * t, &h_lo);
        k = 2.0;
    }
    if (!isfinite(h))
        h_lo = 0.0; /* no error term once h overflowed */
    double a = fabs(h), a_lo = h < 0 ? -h_lo : h_lo; /* |d| = k (a + a_lo) */
    double c = delta / k;
    double q = smooth ? delta : 1.0, m = smooth ? 1.0 : delta;
    double u;
    if (a < c || (a == c && a_lo < 0)) { /* |d| < delta, decided on the exact |d| */
        double r = h / q;
        double r_lo = (fma(-r, q, h) + h_lo) / q; /* (h + h_lo)/q - r: the residual h - r q is exact */
        if (!isfinite(r_lo))
            r_lo = 0.0;
        *g = k * (sw * (r + r_lo));
        /* (h + h_lo)(r + r_lo) = h r + (h r - fl(h r)) + h r_lo + h_lo r, to O(h_lo r_lo) */
        double p_lo, p = sl_two_prod(h, r, &p_lo);
        double corr = p_lo + (h * r_lo + h_lo * r);
        u = k * k * (0.5 * (p + (isfinite(corr) ? corr : 0.0)));
        if (!f32 && huber_out_of_range(u, h)) { /* w (d + d_lo)/2 first: (wh + wh_lo)/2 = w (h + h_lo)/2 */
            double wh_lo, wh = sl_two_prod(w, h, &wh_lo);
            double half = 0.5 * wh, half_lo = isfinite(wh) ? 0.5 * (wh_lo + w * h_lo) : 0.0;
            double low = half * r_lo + half_lo * r;
            return k * k * fma(half, r, isfinite(low) ? low : 0.0);
        }
    } else {
        double s_lo = 0.0, s = f32 ? a - 0.5 * c : sl_two_sum(a, -0.5 * c, &s_lo); /* >= c/2 */
        double e = isfinite(s) ? s_lo + a_lo : 0.0, me = m * e;
        *g = (sw * m) * huber_sign(h);
        u = k * fma(m, s, isfinite(me) ? me : 0.0); /* m e overflows only where m s does */
        if (!f32 && huber_out_of_range(u, h)) { /* w (s + e) first: ws + ws_lo = w (s + e), one FMA with m */
            double ws_lo, ws = sl_two_prod(w, s, &ws_lo);
            double low = isfinite(ws) ? (ws_lo + w * e) * m : 0.0;
            return k * fma(ws, m, isfinite(low) ? low : 0.0);
        }
    }
    return w * u;
}

SL_INLINE double huber_row(const void *args, int64_t i, int f32)
{
    const huber_args *a = (const huber_args *)args;
    double w = a->weight ? sl_load(a->weight, i, f32) : 1.0;
    double g, value = huber_eval(sl_load(a->input, i, f32), sl_load(a->target, i, f32), w, a->grad_scale * w,
                                 a->delta, (int)a->smooth, &g, f32);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, g, f32);
    return value;
}

SL_INLINE void huber_scalar(const huber_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, huber_row, f32);
}

#if SL_X86
/* The lanes in `mask` (overflowing differences, unweighted values out of range) from the scalar path. */
SL_VEC SL_OUTLINE void huber_slow_lanes(sl_vd x, sl_vd t, sl_vd w, sl_vd sw, double delta, int smooth, int mask,
                                        sl_vd *value, sl_vd *g, int f32)
{
    double xs[SL_L], ts[SL_L], ws[SL_L], sws[SL_L], vs[SL_L], gs[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ts, t);
    sl_vstoreu(ws, w);
    sl_vstoreu(sws, sw);
    sl_vstoreu(vs, *value);
    sl_vstoreu(gs, *g);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            vs[l] = huber_eval(xs[l], ts[l], ws[l], sws[l], delta, smooth, &gs[l], f32);
    *value = sl_vloadu(vs);
    *g = sl_vloadu(gs);
}

SL_VEC SL_INLINE sl_vd huber_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const huber_args *a = (const huber_args *)args;
    sl_vd zero = sl_vzero(), one = SL_V(1.0), delta = SL_V(a->delta);
    int smooth = (int)a->smooth;
    sl_vd x = sl_load_v(a->input, i, tail, f32), t = sl_load_v(a->target, i, tail, f32);
    sl_vd w = a->weight ? sl_load_v(a->weight, i, tail, f32) : one;
    sl_vd sw = sl_vmul(SL_V(a->grad_scale), w);
    sl_vd h = sl_vsub(x, t), h_lo = zero;
    if (!f32) {
        sl_two_sum_v(x, sl_vsub(zero, t), &h_lo);
        h_lo = sl_vkeep(sl_isfinite_v(h), h_lo);
    }
    sl_vm negative = sl_vcmp(h, zero, _CMP_LT_OQ);
    sl_vd abs_h = sl_abs_v(h), a_lo = sl_vselect(negative, sl_vsub(zero, h_lo), h_lo); /* |d| = abs_h + a_lo */
    /* linear: m (|d| - delta/2), s + s_lo = |d| - delta/2 >= delta/2 */
    sl_vd m = smooth ? one : delta;
    sl_vd half = sl_vmul(SL_V(0.5), delta);
    sl_vd s = sl_vsub(abs_h, half), e = zero;
    if (!f32) {
        sl_vd s_lo;
        sl_two_sum_v(abs_h, sl_vsub(zero, half), &s_lo);
        e = sl_vkeep(sl_isfinite_v(s), sl_vadd(s_lo, a_lo));
    }
    sl_vd u = sl_vfma(m, s, sl_finite_or_zero_v(sl_vmul(m, e))); /* m e overflows only where m s does */
    sl_vd sign = sl_vselect(sl_vcmp(h, zero, _CMP_GT_OQ), one, sl_vselect(negative, SL_V(-1.0), h));
    sl_vd g = sl_vmul(sl_vmul(sw, m), sign);
    /* quadratic where |d| < delta, decided on the exact |d|: only where a lane has it (l1: never) */
    sl_vm quad = sl_vm_or(sl_vcmp(abs_h, delta, _CMP_LT_OQ),
                          sl_vm_and(sl_vcmp(abs_h, delta, _CMP_EQ_OQ), sl_vcmp(a_lo, zero, _CMP_LT_OQ)));
    if (sl_vm_bits(quad) & sl_tail_bits(tail)) {
        sl_vd r = h, r_lo = h_lo; /* q = 1: r = h exactly */
        if (smooth) {
            r = sl_vdiv(h, delta);
            if (!f32) /* (h + h_lo)/q - r: the residual h - r q is exact */
                r_lo = sl_finite_or_zero_v(sl_vdiv(sl_vadd(sl_vfnma(r, delta, h), h_lo), delta));
        }
        sl_vd p = sl_vmul(h, r);
        if (!f32) /* (h + h_lo)(r + r_lo) = h r + (h r - fl(h r)) + h r_lo + h_lo r, to O(h_lo r_lo) */
            p = sl_vadd(p, sl_finite_or_zero_v(sl_vadd(sl_vfms(h, r, p), sl_vfma(h, r_lo, sl_vmul(h_lo, r)))));
        u = sl_vselect(quad, sl_vmul(SL_V(0.5), p), u);
        g = sl_vselect(quad, sl_vmul(sw, sl_vadd(r, r_lo)), g);
    }
    sl_vd value = sl_vmul(w, u);
    if (!f32) { /* rare lanes: x - t overflowing with x, t finite; u overflowed or subnormal where w u need not be */
        sl_vm finite_h = sl_isfinite_v(h);
        sl_vm huge = sl_vm_andnot(finite_h, sl_vm_and(sl_isfinite_v(x), sl_isfinite_v(t)));
        sl_vm below = sl_vm_and(sl_vcmp(u, SL_V(SL_SMALLEST_NORMAL), _CMP_LT_OQ), sl_vcmp(h, zero, _CMP_NEQ_OQ));
        sl_vm out = sl_vm_or(sl_vm_and(sl_vcmp(u, SL_V(INFINITY), _CMP_EQ_OQ), finite_h), below);
        int mask = sl_vm_bits(sl_vm_or(huge, out)) & sl_tail_bits(tail);
        if (__builtin_expect(mask != 0, 0))
            huber_slow_lanes(x, t, w, sw, a->delta, smooth, mask, &value, &g, f32);
    }
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad)
        sl_store_v(a->grad, i, g, tail, f32);
    return value;
}

SL_VEC SL_INLINE void huber_vec(const huber_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, huber_lanes, f32);
}
#endif

SL_KERNEL(huber, huber_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_huber_f32(const float *input, const float *target, const float *weight, int64_t n_rows, double delta,
                  int64_t smooth, double grad_scale, int64_t rows_per_block, float *loss, float *grad,
                  double *block_sums)
{
    const huber_args a = {input, target, weight, n_rows, delta, smooth, grad_scale, rows_per_block,
                          loss, grad, block_sums};
    huber_run(&a, 1);
}

void sl_huber_f64(const double *input, const double *target, const double *weight, int64_t n_rows, double delta,
                  int64_t smooth, double grad_scale, int64_t rows_per_block, double *loss, double *grad,
                  double *block_sums)
{
    const huber_args a = {input, target, weight, n_rows, delta, smooth, grad_scale, rows_per_block,
                          loss, grad, block_sums};
    huber_run(&a, 0);
}
#endif
