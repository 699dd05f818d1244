/*
 * kl.c -- Kullback-Leibler divergence terms, elementwise, with the gradient for the input (sl_kl_f32,
 * sl_kl_f64; stableloss.h).  input = log q; target = p, or log p with log_target.
 *
 * Method.  loss = p (log p - input), grad = -p grad_scale (log_target: p = e^{lp}, lp given).
 *   log p comes from the float64-grade log (<= 1 ulp) for float64 and from the cheap-grade log
 *   (relative 9.8e-14) for float32, so the difference log p - input is good to eps |log p| /
 *   |log p - input| relative.  Where that is not enough -- |log p - input| < 2^-10 |input| for
 *   float64 (2^-52 2^10, within the 1e-12 budget), < 2^-16 |input| for float32 (9.8e-14 (2^16 + 1)
 *   = 6.4e-9 relative, 0.11 float ulp) -- log p is recomputed in double-double (sl_log_dd, ~2^-104)
 *   on those elements only (scalar slow path).
 *   With log_target, lp - input is the difference of two given numbers (one rounding), and where
 *   e^{lp} underflows (lp < -700) the term is 2^-1024 e^{lp + 1024 ln 2} (lp - input), the shifted
 *   exponent formed in double-double (scalar slow path).
 *
 * Special cases.  p == 0 (lp == -inf): loss 0 and grad 0, also for input = -inf (PyTorch: NaN), but a
 * NaN loss for input NaN or +inf (no log-probability).  p < 0, or a target of +inf (no probability;
 * without log_target): NaN loss.  The gradient is -p whatever the input (PyTorch).  NaN in: NaN out.
 *
 * Accuracy (against mpmath: random distributions, p close to q down to input = log p rounded, zeros,
 * subnormal targets, log targets below -700; every SIMD level alike): float32 0.5 ulp; float64 loss
 * 1.6 ulp where |log p - log q| >= |log q|/2 and relative 3e-14 (budget 1e-12) where they agree in
 * their leading bits, gradient 0.7 ulp.
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target;
    int64_t n_rows, log_target;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} kl_args;

/* The constants of the declaration (stableloss/_api.py, checked by tests/test_spec.py): |log p - x|
 * below KL_CANCEL_F32 (KL_CANCEL_F64) times |x| takes the double-double path, and so does a log target
 * below KL_LOG_TARGET_TAIL, where e^{lp} loses precision (see above). */
#define KL_CANCEL_F32 0x1p-16
#define KL_CANCEL_F64 0x1p-10
#define KL_LOG_TARGET_TAIL -700.0
#define KL_CANCEL(f32) ((f32) ? KL_CANCEL_F32 : KL_CANCEL_F64)
/* The tail's terms are 2^-KL_TAIL_SCALE e^{lp + KL_TAIL_SCALE ln 2} (lp - x): the shifted exponential is normal. */
#define KL_TAIL_SCALE 1024

/* The elements that take the slow path: cancelling log p - x, or an underflowing e^{lp}. */
SL_INLINE int kl_slow(double p, double lp, double x, double diff, int log_target, int f32)
{
    if (log_target)
        return lp < KL_LOG_TARGET_TAIL && lp > -INFINITY;
    return fabs(diff) < KL_CANCEL(f32) * fabs(x) && isfinite(x) && p > 0.0;
}

/* The slow path's loss: p (log p - x) with log p in double-double, or e^{lp} (lp - x) for lp < -700
 * as 2^-1024 e^{lp + 1024 ln 2} (lp - x). */
SL_INLINE double kl_slow_value(double p, double lp, double x, double diff, int log_target)
{
    if (log_target) {
        double shift_lo, shift = sl_k_ln2_dd(KL_TAIL_SCALE, &shift_lo);
        double up_lo, up = sl_dd_add(lp, 0.0, shift, shift_lo, &up_lo);
        double e = sl_exp(up, 0);
        return ldexp((e + e * up_lo) * diff, -KL_TAIL_SCALE); /* e^(up + up_lo) = e^up (1 + up_lo) */
    }
    double lo, hi = sl_log_dd(p, &lo);
    double err, d = sl_two_sum(hi, -x, &err);
    return p * (d + (err + lo));
}

/* Whether the term is 0 log 0 = 0: p == 0 against a log q that is a number or -inf. */
SL_INLINE int kl_zero_term(double p, double x)
{
    return p == 0.0 && x < INFINITY;
}

SL_INLINE double kl_row(const void *args, int64_t i, int f32)
{
    const kl_args *a = (const kl_args *)args;
    double x = sl_load(a->input, i, f32), t = sl_load(a->target, i, f32);
    double p = a->log_target ? sl_exp(t, f32) : t;
    double lp = a->log_target ? t : sl_log(t, f32);
    double diff = lp - x;
    double value = kl_zero_term(p, x) ? 0.0 : p * diff;
    if (kl_slow(p, lp, x, diff, (int)a->log_target, f32))
        value = kl_slow_value(p, lp, x, diff, (int)a->log_target);
    if (!a->log_target && p == INFINITY)
        value = NAN;
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, (p == 0.0 ? 0.0 : -p) * a->grad_scale, f32);
    return value;
}

SL_INLINE void kl_scalar(const kl_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, kl_row, f32);
}

#if SL_X86
/* The lanes in `mask` from the scalar slow path. */
SL_VEC SL_OUTLINE sl_vd kl_slow_lanes(sl_vd p, sl_vd lp, sl_vd x, sl_vd diff, sl_vd value, int mask,
                                      int log_target)
{
    double ps[SL_L], lps[SL_L], xs[SL_L], ds[SL_L], vs[SL_L];
    sl_vstoreu(ps, p);
    sl_vstoreu(lps, lp);
    sl_vstoreu(xs, x);
    sl_vstoreu(ds, diff);
    sl_vstoreu(vs, value);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            vs[l] = kl_slow_value(ps[l], lps[l], xs[l], ds[l], log_target);
    return sl_vloadu(vs);
}

SL_VEC SL_INLINE sl_vd kl_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const kl_args *a = (const kl_args *)args;
    sl_vd zero = sl_vzero();
    sl_vd x = sl_load_v(a->input, i, tail, f32), t = sl_load_v(a->target, i, tail, f32);
    sl_vd p = a->log_target ? sl_exp_v(t, f32) : t;
    sl_vd lp = a->log_target ? t : sl_log_v(t, f32);
    sl_vd diff = sl_vsub(lp, x);
    sl_vm p_zero = sl_vcmp(p, zero, _CMP_EQ_OQ);
    sl_vm zero_term = sl_vm_and(p_zero, sl_vcmp(x, SL_V(INFINITY), _CMP_LT_OQ)); /* kl_zero_term */
    sl_vd value = sl_vdrop(zero_term, sl_vmul(p, diff));
    sl_vm slow;
    if (a->log_target)
        slow = sl_vm_and(sl_vcmp(lp, SL_V(KL_LOG_TARGET_TAIL), _CMP_LT_OQ), sl_vcmp(lp, SL_V(-INFINITY), _CMP_GT_OQ));
    else
        slow = sl_vm_and(sl_vcmp(sl_abs_v(diff), sl_vmul(SL_V(KL_CANCEL(f32)), sl_abs_v(x)), _CMP_LT_OQ),
                         sl_vm_and(sl_isfinite_v(x), sl_vcmp(p, zero, _CMP_GT_OQ)));
    int mask = sl_vm_bits(slow) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        value = kl_slow_lanes(p, lp, x, diff, value, mask, (int)a->log_target);
    if (!a->log_target) /* p = +inf: NaN */
        value = sl_vselect(sl_vcmp(p, SL_V(INFINITY), _CMP_EQ_OQ), SL_V(NAN), value);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad) {
        sl_vd g = sl_vdrop(p_zero, sl_vsub(zero, p));
        sl_store_v(a->grad, i, sl_vmul(g, SL_V(a->grad_scale)), tail, f32);
    }
    return value;
}

SL_VEC SL_INLINE void kl_vec(const kl_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, kl_lanes, f32);
}
#endif

SL_KERNEL(kl, kl_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_kl_f32(const float *input, const float *target, int64_t n_rows, int64_t log_target,
               double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums)
{
    const kl_args a = {input, target, n_rows, log_target, grad_scale, rows_per_block, loss, grad, block_sums};
    kl_run(&a, 1);
}

void sl_kl_f64(const double *input, const double *target, int64_t n_rows, int64_t log_target,
               double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums)
{
    const kl_args a = {input, target, n_rows, log_target, grad_scale, rows_per_block, loss, grad, block_sums};
    kl_run(&a, 0);
}
#endif
