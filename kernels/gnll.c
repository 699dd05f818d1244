/*
 * gnll.c -- Gaussian negative log-likelihood, elementwise, with the gradients for the input and the
 * variance (sl_gnll_f32, sl_gnll_f64; stableloss.h).
 *
 * Method.  v = var < eps ? eps : var, d = x - t, r = d/v, h = d/2, with c = log(2 pi)/2 when full:
 *   loss = (log(v)/2 + c) + h r              (h r = d^2/(2v): finite whenever the loss is)
 *   grad_input = r grad_scale,  grad_var = ((v - d^2)/v)/v/2 grad_scale  (float32: (v - d^2) i i/2
 *   with i = 1/v: two divisions fewer, within 2^-51 relative of the quotients: invisible in a float)
 * v - d^2 is formed from the exact square (FMA) and cancels exactly (Sterbenz) where 1/v and d^2/v^2
 * would cancel.  float64 carries the low parts d + d_lo = x - t (TwoSum), r + r_lo = (d + d_lo)/v (the
 * division residual is exact with FMA) and h r + q_lo; float32 computes in double, rounded once.
 * Where log(v)/2 (< 0 for v < 1), c and h r cancel (the loss below 1/2 of the largest of |log(v)/2|
 * and c + h r for float64, below 2^-12 of it for float32, whose 1e-13 log grade leaves 2^-30 there)
 * the loss is redone in double-double on a scalar path (sl_log_dd, c to 2^-107).  Where x - t
 * overflows with x, t finite (float64) the same formulas run on h = x/2 - t/2 (d = 2h), also there.
 *
 * Special cases.  NaN in: NaN out (the clamp keeps a NaN variance).  var = eps = 0: log 0 = -inf and
 * d/0, as the formulas give.  Correction terms are dropped once they are not finite.
 *
 * Accuracy (against mpmath: variances 1e-8 to the dtype max and below eps, residuals whose square
 * overflows, standardized residuals where the loss cancels; every SIMD level alike): float32 0.5 ulp
 * (grad_var 1.0); float64 loss 1.7, grad_input 0.5, grad_var 2.7 ulp.  Budget: 4 ulp.
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target, *var;
    int64_t n_rows;
    double eps;
    int64_t full;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad_input, *grad_var;
    double *block_sums;
} gnll_args;

/* The constants of the declaration (stableloss/_api.py, checked by tests/test_spec.py): |loss| below
 * GNLL_CANCEL_F32 (GNLL_CANCEL_F64) times its largest term takes the double-double path (see above). */
#define GNLL_CANCEL_F32 0x1p-12
#define GNLL_CANCEL_F64 0.5
#define GNLL_CANCEL(f32) ((f32) ? GNLL_CANCEL_F32 : GNLL_CANCEL_F64)

/* Loss and unscaled gradients of one element at the clamped variance v, every refinement included:
 * the scalar path, and the rare lanes of the vector path. */
SL_INLINE double gnll_eval(double x, double t, double v, int full, double *g_in, double *g_var, int f32)
{
    double c = full ? SL_HALF_LOG_2PI : 0.0, c_lo = full ? SL_HALF_LOG_2PI_LO : 0.0;
    double d_lo, d = sl_two_sum(x, -t, &d_lo);
    if (isinf(d) && isfinite(x) && isfinite(t)) { /* x - t overflows: h = x/2 - t/2, d = 2h */
        double h = 0.5 * x - 0.5 * t, r_half = h / v;
        *g_in = 2.0 * r_half;
        *g_var = 0.5 / v - 2.0 * r_half * r_half;
        return (0.5 * sl_log(v, f32) + 2.0 * (h * r_half)) + c;
    }
    if (!isfinite(d))
        d_lo = 0.0;
    double r = d / v;
    double rv_lo, rv = sl_two_prod(r, v, &rv_lo);
    double r_lo = ((d - rv) - rv_lo + d_lo) / v; /* (d + d_lo)/v - r */
    if (!isfinite(r_lo))
        r_lo = 0.0;
    double q_lo, q = sl_two_prod(0.5 * d, r, &q_lo); /* d^2/(2v) = q + q_lo */
    double cross = 0.5 * (d * r_lo + d_lo * r);
    q_lo = (isfinite(q_lo) ? q_lo : 0.0) + (isfinite(cross) ? cross : 0.0);
    double log_half = 0.5 * sl_log(v, f32);
    double value = ((log_half + c) + q) + q_lo;
    if (fabs(value) < GNLL_CANCEL(f32) * fmax(fabs(log_half), c + q)) { /* log(v)/2 = -(c + h r) nearly */
        double l_lo, l = sl_log_dd(v, &l_lo);
        double hl_lo, hl = sl_dd_add(0.5 * l, 0.5 * l_lo, c, c_lo, &hl_lo);
        double s_lo, s = sl_dd_add(hl, hl_lo, q, q_lo, &s_lo);
        value = s + s_lo;
    }
    *g_in = r + r_lo;
    double sq_lo, sq = sl_two_prod(d, d, &sq_lo);
    double excess = ((v - sq) - sq_lo) - 2.0 * d * d_lo; /* v - (d + d_lo)^2 */
    /* v = inf: the plain form gives the limit 0 */
    double inv = 1.0 / v;
    double g_var_exact = f32 ? 0.5 * ((excess * inv) * inv) : 0.5 * ((excess / v) / v);
    *g_var = isfinite(sq) && isfinite(v) ? g_var_exact : 0.5 * (inv - r * r);
    return value;
}

SL_INLINE double gnll_row(const void *args, int64_t i, int f32)
{
    const gnll_args *a = (const gnll_args *)args;
    double v = sl_load(a->var, i, f32);
    v = v < a->eps ? a->eps : v; /* the clamp acts on the value; NaN stays NaN */
    double g_in, g_var, value = gnll_eval(sl_load(a->input, i, f32), sl_load(a->target, i, f32), v, (int)a->full,
                                          &g_in, &g_var, f32);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad_input)
        sl_store(a->grad_input, i, g_in * a->grad_scale, f32);
    if (a->grad_var)
        sl_store(a->grad_var, i, g_var * a->grad_scale, f32);
    return value;
}

SL_INLINE void gnll_scalar(const gnll_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, gnll_row, f32);
}

#if SL_X86
/* The lanes in `mask` (cancelling losses, overflowing differences) from the scalar path. */
SL_VEC SL_OUTLINE void gnll_slow_lanes(sl_vd x, sl_vd t, sl_vd v, int full, int mask, sl_vd *value,
                                       sl_vd *g_in, sl_vd *g_var, int f32)
{
    double xs[SL_L], ts[SL_L], vs[SL_L], ls[SL_L], gis[SL_L], gvs[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ts, t);
    sl_vstoreu(vs, v);
    sl_vstoreu(ls, *value);
    sl_vstoreu(gis, *g_in);
    sl_vstoreu(gvs, *g_var);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            ls[l] = gnll_eval(xs[l], ts[l], vs[l], full, &gis[l], &gvs[l], f32);
    *value = sl_vloadu(ls);
    *g_in = sl_vloadu(gis);
    *g_var = sl_vloadu(gvs);
}

SL_VEC SL_INLINE sl_vd gnll_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const gnll_args *a = (const gnll_args *)args;
    sl_vd zero = sl_vzero();
    sl_vd x = sl_load_v(a->input, i, tail, f32), t = sl_load_v(a->target, i, tail, f32);
    sl_vd v = sl_load_v(a->var, i, tail, f32), eps = SL_V(a->eps);
    v = sl_vselect(sl_vcmp(v, eps, _CMP_LT_OQ), eps, v);
    sl_vd d = sl_vsub(x, t), d_lo = zero;
    if (!f32) {
        sl_two_sum_v(x, sl_vsub(zero, t), &d_lo);
        d_lo = sl_vkeep(sl_isfinite_v(d), d_lo);
    }
    sl_vd r = sl_vdiv(d, v);
    sl_vd half_d = sl_vmul(SL_V(0.5), d);
    sl_vd q = sl_vmul(half_d, r); /* d^2/(2v), finite iff the loss is */
    sl_vd r_lo = zero, q_lo = zero;
    if (!f32) {
        /* (d + d_lo)/v - r = ((d - r v) + d_lo)/v, d - r v exact by FMA */
        r_lo = sl_finite_or_zero_v(sl_vdiv(sl_vadd(sl_vfnma(r, v, d), d_lo), v));
        sl_vd cross = sl_vmul(SL_V(0.5), sl_vfma(d, r_lo, sl_vmul(d_lo, r)));
        q_lo = sl_vadd(sl_finite_or_zero_v(sl_vfms(half_d, r, q)), sl_finite_or_zero_v(cross));
    }
    sl_vd log_half = sl_vmul(SL_V(0.5), sl_log_v(v, f32)), c = SL_V(a->full ? SL_HALF_LOG_2PI : 0.0);
    sl_vd value = sl_vadd(sl_vadd(sl_vadd(log_half, c), q), q_lo);
    sl_vd g_in = sl_vadd(r, r_lo);
    /* (1/v - d^2/v^2)/2 = ((v - d^2)/v)/v/2, v - (d + d_lo)^2 from the exact square */
    sl_vd sq = sl_vmul(d, d);
    sl_vd excess = sl_vsub(sl_vsub(sl_vsub(v, sq), sl_vfms(d, d, sq)),
                           sl_vmul(sl_vadd(d, d), d_lo));
    sl_vd inv = sl_vdiv(SL_V(1.0), v); /* float32: products instead of two divisions (see above) */
    sl_vd g_var = sl_vmul(SL_V(0.5), f32 ? sl_vmul(sl_vmul(excess, inv), inv) : sl_vdiv(sl_vdiv(excess, v), v));
    /* d^2 or v infinite: the plain form (for v = inf its limit 0) */
    sl_vm sq_inf = sl_vm_or(sl_vcmp(sq, SL_V(INFINITY), _CMP_EQ_OQ), sl_vcmp(v, SL_V(INFINITY), _CMP_EQ_OQ));
    sl_vd g_var_plain = sl_vmul(SL_V(0.5), sl_vfnma(r, r, inv));
    g_var = sl_vselect(sq_inf, g_var_plain, g_var);
    /* rare lanes: cancelling loss; x - t overflowing with x, t finite (float64) */
    sl_vd largest = sl_vmax(sl_abs_v(log_half), sl_vadd(c, q));
    sl_vm slow = sl_vcmp(sl_abs_v(value), sl_vmul(SL_V(GNLL_CANCEL(f32)), largest), _CMP_LT_OQ);
    if (!f32)
        slow = sl_vm_or(slow, sl_vm_andnot(sl_isfinite_v(d), sl_vm_and(sl_isfinite_v(x), sl_isfinite_v(t))));
    int mask = sl_vm_bits(slow) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        gnll_slow_lanes(x, t, v, (int)a->full, mask, &value, &g_in, &g_var, f32);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    sl_vd scale = SL_V(a->grad_scale);
    if (a->grad_input)
        sl_store_v(a->grad_input, i, sl_vmul(g_in, scale), tail, f32);
    if (a->grad_var)
        sl_store_v(a->grad_var, i, sl_vmul(g_var, scale), tail, f32);
    return value;
}

SL_VEC SL_INLINE void gnll_vec(const gnll_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, gnll_lanes, f32);
}
#endif

SL_KERNEL(gnll, gnll_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_gnll_f32(const float *input, const float *target, const float *var,
                 int64_t n_rows, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 float *loss, float *grad_input, float *grad_var, double *block_sums)
{
    const gnll_args a = {input, target, var, n_rows, eps, full, grad_scale, rows_per_block,
                         loss, grad_input, grad_var, block_sums};
    gnll_run(&a, 1);
}

void sl_gnll_f64(const double *input, const double *target, const double *var,
                 int64_t n_rows, double eps, int64_t full, double grad_scale, int64_t rows_per_block,
                 double *loss, double *grad_input, double *grad_var, double *block_sums)
{
    const gnll_args a = {input, target, var, n_rows, eps, full, grad_scale, rows_per_block,
                         loss, grad_input, grad_var, block_sums};
    gnll_run(&a, 0);
}
#endif
