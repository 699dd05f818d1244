/*
 * bce.c -- binary cross-entropy with logits, elementwise, with its gradient (sl_bce_f32,
 * sl_bce_f64; stableloss.h).
 *
 * Method.  e = exp(-|x|), softplus(+-x) = max(+-x, 0) + log1p(e) (no overflow, no cancellation);
 * loss = (w pw y) softplus(-x) + (w (1 - y)) softplus(x), a sum of non-negative terms for labels in
 * [0, 1], the weights applied first so that pw y softplus(-x) cannot overflow before w scales it.
 * sigma(x) = 1/(1+e) for x >= 0 and e/(1+e) below, sigma(-x) the other one, never 1 - sigma;
 * grad = w ((1 - y) sigma(x) - pw y sigma(-x)) grad_scale, formed as w ((1 - y) A - pw y B)/(1 + e)
 * with the numerators A, B in {1, e}: one division, last.
 *   With soft labels (0 < y < 1) the two gradient terms cancel near the root (x = 1e-30, y = 1/2:
 *   2.5e-31 from two terms of 1/2), so there the terms are formed in double-double (e from
 *   sl_exp_dd, 1 - y and pw y exact) on a scalar path: every soft label for float64, and for float32
 *   those where the double result cancels by more than 2^8 (below that, the 4e-12 exp of the cheap
 *   grade leaves 1e-9).  float64 |x| > 700, where e is subnormal or nearly while w pw y e need not be,
 *   carries e scaled by 2^512 (scalar path); float64 |x| < 2^-900, where the gradient's part in x can
 *   lie below the normal range, is formed with x scaled by 2^600 (bce_grad_linear).
 *
 * Special cases.  A term whose label factor (y, resp. 1 - y) is exactly 0 counts as 0, so x = +-inf
 * gives the limit (0 for the matching label, +inf otherwise) instead of PyTorch's NaN.  NaN in x, y,
 * w or pw: NaN out.
 *
 * float32 vectors: runs of 8 SL_L elements (32 on AVX2, 64 on AVX-512) with hard labels, |x| <= 86
 * and finite weights (the common case in training) take float lanes instead (bce_span_f32): e in
 * float32 and log1p(e) from a division-free float polynomial finished in double (0.98 and 0.71 ulp,
 * sl_math.h), the rest in double.  It costs accuracy within the budget (1.4 ulp of loss and 2.2 of gradient there, against 0.5
 * on the double path) for about a quarter of the time.
 *
 * Accuracy (against mpmath: random, soft and hard labels, |x| up to 1e30 and the dtype max, +-inf,
 * weights and pos_weight up to 1000): float32 0.5 ulp (scalar; vector outside the float lanes), the
 * float lanes loss 1.4 ulp and gradient 2.2 ulp; float64 loss 2.4 ulp, gradient 2.3 ulp.  Budget:
 * 4 ulp.
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target, *weight, *pos_weight;
    int64_t n_rows;
    double grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} bce_args;

/* The constants of the declaration (stableloss/_api.py, checked by tests/test_spec.py): a float32
 * soft-label gradient whose double result cancels below BCE_SOFT_LABEL_CANCEL times its larger term
 * takes the double-double path; beyond BCE_SUBNORMAL_EXP, e^-|x| is subnormal or nearly (float64). */
#define BCE_SOFT_LABEL_CANCEL 0x1p-8
#define BCE_SUBNORMAL_EXP 700.0
#define BCE_LINEAR_X 0x1p-900

/* |x| < BCE_LINEAR_X: sigma(+-x) = 1/2 +- x/4 (the next term, x^3/48, is 2^-1800 of x/4), so the gradient
 * is g0 + g1 x with g0 = w (1 - y - pw y)/2, g1 = w (1 - y + pw y)/4.  Where g0 is small the result is
 * mostly g1 x, below the normal range like x: x is scaled by 2^600 (unless g0 or g1 exceeds 2^400, when
 * nothing is that small) and the double-double sum rounded once, back at scale. */
SL_INLINE double bce_grad_linear(double x, double y, double w, double pw)
{
    double neg_lo, neg = sl_two_sum(1.0, -y, &neg_lo); /* 1 - y */
    double pwy_lo, pwy = sl_two_prod(pw, y, &pwy_lo);
    double c0_lo, c0 = sl_dd_add(neg, neg_lo, -pwy, -pwy_lo, &c0_lo);
    double c1_lo, c1 = sl_dd_add(neg, neg_lo, pwy, pwy_lo, &c1_lo);
    double g0_lo, g0 = sl_dd_mul(c0, c0_lo, w, 0.0, &g0_lo); /* 2 g0 */
    double g1_lo, g1 = sl_dd_mul(c1, c1_lo, w, 0.0, &g1_lo); /* 4 g1 */
    int k = fabs(g0) > 0x1p400 || fabs(g1) > 0x1p400 ? 0 : 600;
    double t_lo, t = sl_dd_mul(g1, g1_lo, ldexp(x, k), 0.0, &t_lo); /* 4 g1 x 2^k */
    double s_lo, s = sl_dd_add(ldexp(g0, k - 1), ldexp(g0_lo, k - 1), ldexp(t, -2), ldexp(t_lo, -2), &s_lo);
    return ldexp(s + s_lo, -k);
}

/* w ((1 - y) sigma(x) - pw y sigma(-x)) in double-double, rounded once (finite x). */
SL_INLINE double bce_grad_dd(double x, double y, double w, double pw)
{
    if (fabs(x) < BCE_LINEAR_X)
        return bce_grad_linear(x, y, w, pw);
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
    double e_label = pos ? pw * y : 1.0 - y;                 /* the term with e */
    double x_factor = pos ? w * (1.0 - y) : w * (pw * y);   /* the term with |x| */
    int e_on = pos ? y != 0.0 : y != 1.0, x_on = pos ? y != 1.0 : y != 0.0;
    double e_term = ldexp(w * (e_label * es), -512); /* label first: w pw y alone may overflow */
    *grad = pos ? x_factor - e_term : e_term - x_factor;
    return (x_on ? x_factor * fabs(x) : 0.0) + (e_on ? e_term : 0.0);
}

/* Loss and unscaled gradient of one element. */
SL_INLINE double bce_eval(double x, double y, double w, double pw, double *grad, int f32)
{
    if (!f32 && fabs(x) > BCE_SUBNORMAL_EXP && isfinite(x) && isfinite(w) && isfinite(pw)) /* infinite weights: below */
        return bce_eval_tiny_e(x, y, w, pw, grad);
    double e, log_term = sl_softplus_tail(x, &e, f32);
    double sp_neg = (x < 0.0 ? -x : 0.0) + log_term, wpy = w * (pw * y);
    /* the weights first, unless their product overflows: then the label factor and softplus first */
    double pos_term = y == 0.0 ? 0.0 : isfinite(wpy) ? wpy * sp_neg : w * ((pw * y) * sp_neg);
    double neg_term = y == 1.0 ? 0.0 : (w * (1.0 - y)) * ((x > 0.0 ? x : 0.0) + log_term);
    /* sigma(x) = A/(1+e), sigma(-x) = B/(1+e), (A, B) = (1, e) for x >= 0, else (e, 1): never 1 - sigma;
     * the division last, so that a tiny pw y B does not underflow before w scales it */
    double sig_pos = (1.0 - y) * (x >= 0.0 ? 1.0 : e); /* (1 - y) sigma(x) (1 + e) */
    double sig_neg = pw * y * (x >= 0.0 ? e : 1.0);   /* pw y sigma(-x) (1 + e) */
    *grad = (w * (sig_pos - sig_neg)) / (1.0 + e);
    if (y > 0.0 && y < 1.0 && isfinite(x) && isfinite(w) && isfinite(w * (pw * y)) && /* finite terms */
        (!f32 || fabs(sig_pos - sig_neg) < BCE_SOFT_LABEL_CANCEL * fmax(sig_pos, sig_neg)))
        *grad = bce_grad_dd(x, y, w, pw);
    return pos_term + neg_term;
}

SL_INLINE double bce_row(const void *args, int64_t i, int f32)
{
    const bce_args *a = (const bce_args *)args;
    double g, value = bce_eval(sl_load(a->input, i, f32), sl_load(a->target, i, f32), a->weight ? sl_load(a->weight, i, f32) : 1.0,
                               a->pos_weight ? sl_load(a->pos_weight, i, f32) : 1.0, &g, f32);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, g * a->grad_scale, f32);
    return value;
}

SL_INLINE void bce_scalar(const bce_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, bce_row, f32);
}

#if SL_X86
/* The lanes in `mask` (cancelling soft-label gradients, float64 |x| > 700) from the scalar path. */
SL_VEC SL_OUTLINE void bce_slow_lanes(sl_vd x, sl_vd y, sl_vd w, sl_vd pw, int mask, sl_vd *value,
                                      sl_vd *g, int f32)
{
    double xs[SL_L], ys[SL_L], ws[SL_L], pws[SL_L], vs[SL_L], gs[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ys, y);
    sl_vstoreu(ws, w);
    sl_vstoreu(pws, pw);
    sl_vstoreu(vs, *value);
    sl_vstoreu(gs, *g);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            vs[l] = bce_eval(xs[l], ys[l], ws[l], pws[l], &gs[l], f32);
    *value = sl_vloadu(vs);
    *g = sl_vloadu(gs);
}

SL_VEC SL_INLINE sl_vd bce_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const bce_args *a = (const bce_args *)args;
    sl_vd zero = sl_vzero(), one = SL_V(1.0);
    sl_vd x = sl_load_v(a->input, i, tail, f32), y = sl_load_v(a->target, i, tail, f32);
    sl_vd w = a->weight ? sl_load_v(a->weight, i, tail, f32) : one;
    sl_vd pw = a->pos_weight ? sl_load_v(a->pos_weight, i, tail, f32) : one;
    sl_vd e, log_term = sl_softplus_tail_v(x, &e, f32);
    /* max(0, v) returns v when v is NaN (second operand) */
    sl_vd sp_neg = sl_vadd(sl_vmax(zero, sl_vsub(zero, x)), log_term);
    sl_vd sp_pos = sl_vadd(sl_vmax(zero, x), log_term);
    sl_vd pwy = sl_vmul(pw, y);
    sl_vd wpy = sl_vmul(w, pwy); /* as bce_eval: the weights first unless their product overflows */
    sl_vd pos_term = sl_vselect(sl_isfinite_v(wpy), sl_vmul(wpy, sp_neg),
                                sl_vmul(w, sl_vmul(pwy, sp_neg)));
    sl_vd neg_term = sl_vmul(sl_vmul(w, sl_vsub(one, y)), sp_pos);
    pos_term = sl_vdrop(sl_vcmp(y, zero, _CMP_EQ_OQ), pos_term); /* label factor 0: term 0 */
    neg_term = sl_vdrop(sl_vcmp(y, one, _CMP_EQ_OQ), neg_term);
    sl_vd value = sl_vadd(pos_term, neg_term);
    sl_vd g = zero;
    sl_vm slow = sl_vcmp(zero, zero, _CMP_NEQ_OQ); /* no lane */
    if (a->grad) {
        /* as bce_eval: ((1 - y) A - pw y B) w / (1 + e) */
        sl_vm x_nonneg = sl_vcmp(x, zero, _CMP_GE_OQ);
        sl_vd sig_pos = sl_vmul(sl_vsub(one, y), sl_vselect(x_nonneg, one, e));
        sl_vd sig_neg = sl_vmul(pwy, sl_vselect(x_nonneg, e, one));
        sl_vd diff = sl_vsub(sig_pos, sig_neg);
        g = sl_vdiv(sl_vmul(w, diff), sl_vadd(one, e));
        /* soft labels whose gradient terms cancel (see above) */
        slow = sl_vm_and(sl_vcmp(y, zero, _CMP_GT_OQ), sl_vcmp(y, one, _CMP_LT_OQ));
        slow = sl_vm_and(slow, sl_vm_and(sl_isfinite_v(x), /* finite terms only */
                                         sl_vm_and(sl_isfinite_v(w), sl_isfinite_v(sl_vmul(w, pwy)))));
        if (f32) {
            sl_vd cut = sl_vmul(SL_V(BCE_SOFT_LABEL_CANCEL), sl_vmax(sig_pos, sig_neg));
            slow = sl_vm_and(slow, sl_vcmp(sl_abs_v(diff), cut, _CMP_LT_OQ));
        }
    }
    if (!f32) /* e^-|x| near underflow */
        slow = sl_vm_or(slow, sl_vm_and(sl_vcmp(sl_abs_v(x), SL_V(BCE_SUBNORMAL_EXP), _CMP_GT_OQ), sl_isfinite_v(x)));
    int mask = sl_vm_bits(slow) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        bce_slow_lanes(x, y, w, pw, mask, &value, &g, f32);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad)
        sl_store_v(a->grad, i, sl_vmul(g, SL_V(a->grad_scale)), tail, f32);
    return value;
}

/* float32: BCE_SPAN vectors of 2 SL_L float lanes, taken together when their labels are all 0 or 1,
 * |x| <= 86 and the weights finite (else SL_L at a time, bce_lanes).  With flip = x for y = 0 and -x for
 * y = 1, the one term left is c softplus(flip), c = w (y = 0) or w pw (y = 1): softplus(flip) =
 * max(flip, 0) + log1p(e) from sl_expf_neg_v and sl_log1pf_unit_v (float lanes, log1p finished in
 * double), added and scaled in double and rounded once; the gradient c (+-sigma(flip)) with
 * sigma(flip) = (flip >= 0 ? 1 : e)/(1 + e), one float division.
 *   Each vector's chain (exp, log1p, widening) is long and waits on latency, so every step is done
 * for all the vectors of the span before the next: independent work side by side in program order
 * keeps the out-of-order window busy (four vectors measured fastest, against one and two). */
#define BCE_SPAN 4

#define BCE_SPAN_ROWS (2 * SL_L * BCE_SPAN)

SL_VEC SL_OUTLINE sl_vd bce_span_in_lanes(const void *args, int64_t i)
{
    sl_vd value = bce_lanes(args, i, NULL, 1);
    for (int k = 1; k < 2 * BCE_SPAN; k++)
        value = sl_vadd(value, bce_lanes(args, i + SL_L * k, NULL, 1));
    return value;
}

SL_VEC SL_INLINE sl_vd bce_span_f32(const void *args, int64_t i)
{
    const bce_args *a = (const bce_args *)args;
    const sl_vf one = SL_VF(1.0f), zero = sl_vzerof(), sign = SL_VF(-0.0f);
    const float *xs = (const float *)a->input + i, *ys = (const float *)a->target + i;
    const int W = 2 * SL_L; /* floats per vector */
    sl_vf x[BCE_SPAN];
    sl_vfm label1[BCE_SPAN], fast = sl_vcmpf(one, one, _CMP_EQ_OQ); /* every lane */
    for (int h = 0; h < BCE_SPAN; h++) {
        sl_vf y = sl_vloaduf(ys + W * h);
        x[h] = sl_vloaduf(xs + W * h);
        label1[h] = sl_vcmpf(y, one, _CMP_EQ_OQ);
        fast = sl_vfm_and(fast, sl_vfm_and(sl_vfm_or(label1[h], sl_vcmpf(y, zero, _CMP_EQ_OQ)),
                                           sl_vcmpf(sl_vandnotf(sign, x[h]), SL_VF(SL_EXPF_NEG_RANGE), _CMP_LE_OQ)));
        if (a->weight || a->pos_weight) { /* |w|, |pw| < inf: false for NaN */
            sl_vf w = a->weight ? sl_vloaduf((const float *)a->weight + i + W * h) : one;
            sl_vf pw = a->pos_weight ? sl_vloaduf((const float *)a->pos_weight + i + W * h) : one;
            fast = sl_vfm_and(fast, sl_vfm_and(sl_vcmpf(sl_vandnotf(sign, w), SL_VF(INFINITY), _CMP_LT_OQ),
                                               sl_vcmpf(sl_vandnotf(sign, pw), SL_VF(INFINITY), _CMP_LT_OQ)));
        }
    }
    if (__builtin_expect(sl_vfm_bits(fast) != SL_LANES_ALL_F, 0))
        return bce_span_in_lanes(args, i);
    sl_vf label_sign[BCE_SPAN], flip[BCE_SPAN], e[BCE_SPAN];
    sl_vd sp_lo[BCE_SPAN], sp_hi[BCE_SPAN], c_lo[BCE_SPAN], c_hi[BCE_SPAN];
    for (int h = 0; h < BCE_SPAN; h++) {
        label_sign[h] = sl_vkeepf(label1[h], sign);
        flip[h] = sl_vxorf(x[h], label_sign[h]);
        e[h] = sl_expf_neg_v(sl_vorf(x[h], sign)); /* e^-|x|, normal for |x| <= 86 */
    }
    for (int h = 0; h < BCE_SPAN; h++) {
        sl_vd l_lo, l_hi;
        sl_widen_v(sl_vmaxf(flip[h], zero), &sp_lo[h], &sp_hi[h]);
        sl_log1pf_unit_v(e[h], &l_lo, &l_hi);
        sp_lo[h] = sl_vadd(sp_lo[h], l_lo); /* two terms >= 0 */
        sp_hi[h] = sl_vadd(sp_hi[h], l_hi);
    }
    for (int h = 0; h < BCE_SPAN; h++) {
        c_lo[h] = c_hi[h] = SL_V(1.0);
        if (a->weight || a->pos_weight) {
            sl_vd pw_lo, pw_hi;
            sl_vf w = a->weight ? sl_vloaduf((const float *)a->weight + i + W * h) : one;
            sl_vf pw = a->pos_weight ? sl_vloaduf((const float *)a->pos_weight + i + W * h) : one;
            sl_widen_v(w, &c_lo[h], &c_hi[h]);
            sl_widen_v(sl_vselectf(label1[h], pw, one), &pw_lo, &pw_hi); /* pw for y = 1, 1 for y = 0 */
            c_lo[h] = sl_vmul(c_lo[h], pw_lo);
            c_hi[h] = sl_vmul(c_hi[h], pw_hi);
            sp_lo[h] = sl_vmul(c_lo[h], sp_lo[h]);
            sp_hi[h] = sl_vmul(c_hi[h], sp_hi[h]);
        }
    }
    if (a->loss)
        for (int h = 0; h < BCE_SPAN; h++)
            sl_vstoreuf((float *)a->loss + i + W * h, sl_narrow_v(sp_lo[h], sp_hi[h]));
    if (a->grad) {
        sl_vd scale = SL_V(a->grad_scale);
        for (int h = 0; h < BCE_SPAN; h++) {
            sl_vf numer = sl_vselectf(sl_vcmpf(flip[h], zero, _CMP_GE_OQ), one, e[h]);
            sl_vf sigma = sl_vxorf(sl_vdivf(numer, sl_vaddf(one, e[h])), label_sign[h]);
            sl_vd g_lo, g_hi;
            sl_widen_v(sigma, &g_lo, &g_hi);
            sl_vstoreuf((float *)a->grad + i + W * h, sl_narrow_v(sl_vmul(sl_vmul(c_lo[h], scale), g_lo),
                                                                  sl_vmul(sl_vmul(c_hi[h], scale), g_hi)));
        }
    }
    sl_vd value = sl_vadd(sp_lo[0], sp_hi[0]);
    for (int h = 1; h < BCE_SPAN; h++)
        value = sl_vadd(value, sl_vadd(sp_lo[h], sp_hi[h]));
    return value;
}

SL_VEC SL_INLINE void bce_vec(const bce_args *a, int f32)
{
    if (f32)
        sl_rows_span(a, a->n_rows, a->rows_per_block, a->block_sums, bce_span_f32, BCE_SPAN_ROWS, bce_lanes, 1);
    else
        sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, bce_lanes, f32);
}
#endif

SL_KERNEL(bce, bce_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_bce_f32(const float *input, const float *target, const float *weight, const float *pos_weight,
                int64_t n_rows, double grad_scale, int64_t rows_per_block,
                float *loss, float *grad, double *block_sums)
{
    const bce_args a = {input, target, weight, pos_weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums};
    bce_run(&a, 1);
}

void sl_bce_f64(const double *input, const double *target, const double *weight, const double *pos_weight,
                int64_t n_rows, double grad_scale, int64_t rows_per_block,
                double *loss, double *grad, double *block_sums)
{
    const bce_args a = {input, target, weight, pos_weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums};
    bce_run(&a, 0);
}
#endif
