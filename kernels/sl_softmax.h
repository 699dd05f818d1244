/*
 * sl_softmax.h -- the passes over one row of logits shared by ce.c and lse.c, scalar and vector.
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
 *
 * Soft-capped logits (cross-entropy's softcap, sl_cap): the passes see x'_j = c tanh(x_j/c) instead of
 * x_j, the gradient pass multiplies by the cap's derivative; the range pass reads the raw x (the cap is
 * increasing: the max of x' is the cap of the max).  A NULL cap, a constant at every call of lse.c and
 * of the plain cross-entropy rows, compiles to the passes without it.  The vector passes take the
 * double cap only (float32 rows); the double-double cap (float64 rows) goes through the scalar passes.
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
    double a;             /* row max (capped: a + a_lo) */
    int64_t k;            /* first index attaining it */
    double s;             /* sum_{j != k} e_j; NaN when the row has no finite max (all -inf, +inf, NaN) */
    double log_s;         /* log1p(s) */
    double c_others, c_k; /* sum_{j != k} c_j and c_k            (with coefficients) */
    double c_sum;         /* sum_j c_j = c_others + c_k          (with coefficients) */
    double cz_sum;        /* sum_j c_j (-(z_j + z_lo_j)), >= 0 for c >= 0 (with coefficients) */
    double a_lo;          /* the double-double cap's low part of the max (else 0) */
    double s_lo, log_s_lo; /* low parts of s and log1p(s) where they were recomputed exactly (else 0) */
} sl_softmax;

/* A soft cap of the logits, x'_j = c tanh(x_j/c): inv_c = 1/c, split the |x/c| where the double-double
 * tanh changes formulas (sl_softcap_dd), dd whether x' is a double-double (else a double), d where the
 * scan stores each class's derivative of the cap for the gradient pass (NULL: it recomputes them). */
typedef struct {
    double c, inv_c, split;
    int dd;
    double *d;
} sl_cap;

/* The max and the sums of row x; e_out != NULL: e_j stored there (e_k = 1); next: the row to prefetch. */
typedef sl_softmax (*sl_scan_fn)(const void *x, int64_t C, const sl_coefs *cf, const sl_cap *cap, const void *next,
                                 double *e_out, int f32, int cheap);
/* g_j = K e_j (cf NULL) or (K e_j - b c_j) scale, the difference rounded once (FMA) before the
 * scaling, times the cap's derivative d_j, stored rounded; e_j from e_in (the scan's e_out) or, without
 * it, recomputed from x and a + a_lo. */
typedef void (*sl_grad_fn)(const void *x, int64_t C, double a, double a_lo, double K, const sl_coefs *cf,
                           const sl_cap *cap, double b, double scale, const double *e_in, void *g, int f32, int cheap);
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

/* The soft cap c tanh(x/c) as hi + *lo to ~2^-100 and *d = 1 - tanh^2(x/c) (float64 rows, and float32
 * rows of a cap beyond CE_SOFTCAP_DIRECT_F32): a float64 capped difference x'_j - x'_max then keeps its
 * absolute accuracy (exp of it its relative accuracy), where x' rounded to double would cost ulp(c)/2.
 * u = x/c as a double-double (the exact remainder x - u c, divided by c); up to |u| = split the double
 * tanh t (sl_tanh_exp) gets one Newton step, tanh(u) = t + (u - atanh(t))(1 - t^2), its error
 * O(2^-106/(1 - t^2)), with atanh(t) = (log(1 + t) - log(1 - t))/2 from double-double logs, and
 * d = (1 - t)(1 + t); beyond, tanh|u| = 1 - 2E/(1 + E), d = 4E/(1 + E)^2 from E = e^{-2|u|} a
 * double-double exponential (no cancellation there).  |u| < 2^-26: x' = x - x u^2/3, d = 1.
 * x = +-inf: +-c, d = 0; NaN: NaN.  Out of line: the slow path, called from many passes. */
SL_OUTLINE double sl_softcap_dd(double x, const sl_cap *cap, double *lo, double *d)
{
    double c = cap->c, u = x / c, a = fabs(u), t, t_lo;
    if (x != x || a < 0x1p-26) {
        *lo = x == x ? -x * (a * a) / 3.0 : 0.0;
        *d = x == x ? 1.0 : x;
        return x;
    }
    double u_lo = isfinite(u) ? fma(-u, c, x) / c : 0.0; /* x - u c is exact */
    double a_lo = u < 0.0 ? -u_lo : u_lo;
    if (a <= cap->split) {
        double d0, p_lo, m_lo, lp_lo, lm_lo, at_lo, om_lo, op_lo, d_lo;
        double t0 = sl_tanh_exp(a, &d0);
        double p = sl_two_sum(1.0, t0, &p_lo), m = sl_two_sum(1.0, -t0, &m_lo);
        double lp = sl_log_dd(p, &lp_lo), lm = sl_log_dd(m, &lm_lo); /* log(h + l) = log h + l/h */
        lp = sl_dd_add(lp, lp_lo, p_lo / p, 0.0, &lp_lo);
        lm = sl_dd_add(lm, lm_lo, m_lo / m, 0.0, &lm_lo);
        double at = sl_dd_add(lp, lp_lo, -lm, -lm_lo, &at_lo); /* 2 atanh(t0) */
        double delta = (a - 0.5 * at) + (a_lo - 0.5 * at_lo);
        t = sl_two_sum(t0, delta * ((1.0 - t0) * (1.0 + t0)), &t_lo);
        double om = sl_dd_add(1.0, 0.0, -t, -t_lo, &om_lo), op = sl_dd_add(1.0, 0.0, t, t_lo, &op_lo);
        *d = sl_dd_mul(om, om_lo, op, op_lo, &d_lo);
        *d += d_lo;
    } else {
        double e_lo, den_lo, q_lo, r_lo;
        double e = sl_exp_dd(-2.0 * a, &e_lo); /* 0 for an infinite u */
        e_lo -= 2.0 * a_lo * e;
        double den = sl_two_sum(1.0, e, &den_lo);
        den_lo += e_lo;
        double q = sl_dd_div(2.0 * e, 2.0 * e_lo, den, den_lo, &q_lo); /* 1 - tanh = 2E/(1 + E) */
        t = sl_dd_add(1.0, 0.0, -q, -q_lo, &t_lo);
        *d = sl_dd_div(2.0 * q, 2.0 * q_lo, den, den_lo, &r_lo);
        *d += r_lo;
    }
    double p_lo, p = sl_two_prod(c, t, &p_lo);
    double hi = sl_two_sum(p, p_lo + c * t_lo, lo);
    if (u < 0.0) {
        *lo = -*lo;
        hi = -hi;
    }
    return hi;
}

/* x as the passes see it: itself (cap NULL, *lo = 0), or capped (sl_softcap or sl_softcap_dd), *d the
 * cap's derivative. */
SL_INLINE double sl_logit(double x, const sl_cap *cap, double *lo, double *d)
{
    if (cap && cap->dd)
        return sl_softcap_dd(x, cap, lo, d);
    *lo = 0.0;
    return cap ? sl_softcap(x, cap->c, cap->inv_c, d) : x;
}

/* z + *z_lo = (v + v_lo) - (a + a_lo) (the low parts of a double-double cap; cheap: z_lo = 0). */
SL_INLINE double sl_shift_lo(double v, double v_lo, double a, double a_lo, double *z_lo, int cheap)
{
    double z = sl_shift(v, a, z_lo, cheap);
    if (!cheap && z > -INFINITY)
        *z_lo += v_lo - a_lo;
    return z;
}

/* z_j + *z_lo of class j of row x against the max a + a_lo, its cap's derivative in *d (cap NULL: the
 * plain shift). */
SL_INLINE double sl_shifted(const void *x, int64_t j, double a, double a_lo, const sl_cap *cap, double *z_lo,
                            double *d, int f32, int cheap)
{
    double v_lo, v = sl_logit(sl_load(x, j, f32), cap, &v_lo, d);
    return cap ? sl_shift_lo(v, v_lo, a, a_lo, z_lo, cheap) : sl_shift(v, a, z_lo, cheap);
}

SL_INLINE sl_softmax sl_softmax_scan(const void *x, int64_t C, const sl_coefs *cf, const sl_cap *cap, const void *next,
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
    if (cap ? r.a != r.a : !isfinite(r.a)) { /* capped, only a NaN max has no finite cap */
        r.s = r.log_s = r.c_others = r.c_k = r.c_sum = r.cz_sum = NAN;
        return r;
    }
    if (cap) {
        double d;
        r.a = sl_logit(r.a, cap, &r.a_lo, &d);
    }
    sl_acc s = {0.0, 0.0}, cs = {0.0, 0.0}, czs = {0.0, 0.0};
    for (int64_t j = 0; j < C; j++) {
        double z_lo, d, z = sl_shifted(x, j, r.a, r.a_lo, cap, &z_lo, &d, f32, cheap);
        double e = sl_shifted_exp(z, z_lo, cheap);
        if (cap && cap->d)
            cap->d[j] = d;
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

SL_INLINE void sl_softmax_grad(const void *x, int64_t C, double a, double a_lo, double K, const sl_coefs *cf,
                               const sl_cap *cap, double b, double scale, const double *e_in, void *g, int f32,
                               int cheap)
{
    for (int64_t j = 0; j < C; j++) {
        double z_lo, d = 1.0, z = 0.0;
        if (!e_in || (cap && !cap->d)) /* the logit again: for e_j, or for the cap's derivative */
            z = sl_shifted(x, j, a, a_lo, cap, &z_lo, &d, f32, cheap);
        double e = e_in ? e_in[j] : sl_shifted_exp(z, z_lo, cheap);
        double v = cf ? fma(K, e, -(b * sl_coef(cf, j, f32))) * scale : K * e;
        if (cap) /* dL/dx = dL/dx' (1 - tanh^2(x/c)) */
            v *= cap->d ? cap->d[j] : d;
        sl_store(g, j, v, f32);
    }
}

/* log-sum-exp of a row with no finite max (the scan's s is NaN): NaN if the row holds a NaN, else the
 * infinite max itself -- log(+inf + ...) = +inf, log(e^-inf + ... + e^-inf) = log 0 = -inf. */
SL_OUTLINE double sl_lse_nonfinite(const void *x, int64_t C, int f32)
{
    double a = -INFINITY;
    for (int64_t j = 0; j < C; j++) {
        double v = sl_load(x, j, f32);
        if (isnan(v))
            return v;
        a = v > a ? v : a;
    }
    return a;
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
 * Vectors (sl_vec.h): the same passes, SL_L classes per step (2 SL_L floats per step for the range of
 * float32 rows) */

SL_VEC SL_INLINE sl_vd sl_shift_v(sl_vd x, sl_vd a, sl_vd *z_lo, int cheap)
{
    if (cheap) {
        *z_lo = sl_vzero();
        return sl_vsub(x, a);
    }
    sl_vd err, z = sl_two_sum_v(x, sl_vsub(sl_vzero(), a), &err);
    *z_lo = sl_vkeep(sl_vcmp(z, SL_V(-INFINITY), _CMP_GT_OQ), err);
    return z;
}

/* normal: z known to lie in [-708, 0] (the row's min is within 708 of its max), no range check. */
SL_VEC SL_INLINE sl_vd sl_shifted_exp_v(sl_vd z, sl_vd z_lo, int normal, int cheap)
{
    sl_vd e = normal ? sl_exp_normal_v(z, cheap) : sl_exp_v(z, cheap);
    return cheap ? e : sl_vfma(e, z_lo, e);
}

/* c_j for the SL_L classes at j, 0 outside the tail. */
SL_VEC SL_INLINE sl_vd sl_coef_v(const sl_coefs *cf, int64_t j, const sl_tail *tail, int f32)
{
    sl_vd c = cf->w ? sl_load_v(cf->w, j, tail, f32) : sl_keep_v(SL_V(1.0), tail);
    c = sl_vmul(c, cf->t ? sl_vfma(SL_V(cf->t_scale), sl_load_v(cf->t, j, tail, f32), SL_V(cf->t_shift))
                         : SL_V(cf->t_scale));
    return c;
}

/* Max and min of a row, and whether it holds a NaN (max/min drop NaNs depending on operand order).  A NaN
 * that a max or min kept is harmless: such a row is flagged and its max is not used. */
typedef struct {
    double max, min;
    int nan;
} sl_range;

SL_VEC SL_INLINE sl_range sl_row_range_v(const void *x, int64_t C, int f32)
{
    int64_t j = 0;
    sl_range rg;
    if (f32) {
        const float *p = (const float *)x;
        const int64_t W = 2 * SL_L; /* floats per vector */
        sl_vf hi = SL_VF(-INFINITY), lo = SL_VF(INFINITY);
        sl_vfm nan = sl_vcmpf(hi, hi, _CMP_UNORD_Q); /* no lane */
        sl_vf hi2 = hi, lo2 = lo;
        sl_vfm nan2 = nan; /* two sets of chains: one set left this loop at half speed */
        for (; C - j >= 2 * W; j += 2 * W) {
            sl_vf v = sl_vloaduf(p + j), w = sl_vloaduf(p + j + W);
            hi = sl_vmaxf(hi, v);
            hi2 = sl_vmaxf(hi2, w);
            lo = sl_vminf(lo, v);
            lo2 = sl_vminf(lo2, w);
            nan = sl_vfm_or(nan, sl_vcmpf(v, v, _CMP_UNORD_Q));
            nan2 = sl_vfm_or(nan2, sl_vcmpf(w, w, _CMP_UNORD_Q));
        }
        hi = sl_vmaxf(hi, hi2);
        lo = sl_vminf(lo, lo2);
        nan = sl_vfm_or(nan, nan2);
        for (; C - j >= W; j += W) {
            sl_vf v = sl_vloaduf(p + j);
            hi = sl_vmaxf(hi, v);
            lo = sl_vminf(lo, v);
            nan = sl_vfm_or(nan, sl_vcmpf(v, v, _CMP_UNORD_Q));
        }
        if (j < C) {
            sl_vfm in = sl_tailf_mask(C - j);
            sl_vf v = sl_loadf_tail(p + j, in);
            hi = sl_vmaxf(hi, sl_vselectf(in, v, hi));
            lo = sl_vminf(lo, sl_vselectf(in, v, lo));
            nan = sl_vfm_or(nan, sl_vcmpf(v, v, _CMP_UNORD_Q));
        }
        rg.max = (double)sl_vhmaxf(hi);
        rg.min = (double)sl_vhminf(lo);
        rg.nan = sl_vfm_bits(nan) != 0;
        return rg;
    }
    const double *p = (const double *)x;
    sl_vd hi = SL_V(-INFINITY), lo = SL_V(INFINITY);
    sl_vm nan = sl_vcmp(hi, hi, _CMP_UNORD_Q); /* no lane */
    sl_vd hi2 = hi, lo2 = lo;
    sl_vm nan2 = nan;
    for (; C - j >= 2 * SL_L; j += 2 * SL_L) {
        sl_vd v = sl_vloadu(p + j), w = sl_vloadu(p + j + SL_L);
        hi = sl_vmax(hi, v);
        hi2 = sl_vmax(hi2, w);
        lo = sl_vmin(lo, v);
        lo2 = sl_vmin(lo2, w);
        nan = sl_vm_or(nan, sl_vcmp(v, v, _CMP_UNORD_Q));
        nan2 = sl_vm_or(nan2, sl_vcmp(w, w, _CMP_UNORD_Q));
    }
    hi = sl_vmax(hi, hi2);
    lo = sl_vmin(lo, lo2);
    nan = sl_vm_or(nan, nan2);
    for (; C - j >= SL_L; j += SL_L) {
        sl_vd v = sl_vloadu(p + j);
        hi = sl_vmax(hi, v);
        lo = sl_vmin(lo, v);
        nan = sl_vm_or(nan, sl_vcmp(v, v, _CMP_UNORD_Q));
    }
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_vd v = sl_load_v(p, j, &tail, 0);
        sl_vm in = sl_tail_lanes(&tail);
        hi = sl_vmax(hi, sl_vselect(in, v, hi));
        lo = sl_vmin(lo, sl_vselect(in, v, lo));
        nan = sl_vm_or(nan, sl_vcmp(v, v, _CMP_UNORD_Q));
    }
    rg.max = sl_vhmax(hi);
    rg.min = sl_vhmin(lo);
    rg.nan = sl_vm_bits(nan) != 0;
    return rg;
}

/* First j with x_j == a (a a finite value of the row). */
SL_VEC SL_INLINE int64_t sl_first_index_v(const void *x, int64_t C, double a, int f32)
{
    int64_t j = 0;
    int hit = 0;
    if (f32) {
        const float *p = (const float *)x;
        const int64_t W = 2 * SL_L;
        sl_vf av = SL_VF((float)a); /* exact: a is one of the floats */
        for (; C - j >= W && !hit; j += W)
            hit = sl_vfm_bits(sl_vcmpf(sl_vloaduf(p + j), av, _CMP_EQ_OQ));
        if (!hit && j < C) {
            sl_vf v = sl_loadf_tail(p + j, sl_tailf_mask(C - j));
            hit = sl_vfm_bits(sl_vcmpf(v, av, _CMP_EQ_OQ)) & ((1 << (C - j)) - 1);
            j += W;
        }
        return hit ? j - W + __builtin_ctz((unsigned)hit) : 0;
    }
    const double *p = (const double *)x;
    sl_vd av = SL_V(a);
    for (; C - j >= SL_L && !hit; j += SL_L)
        hit = sl_vm_bits(sl_vcmp(sl_vloadu(p + j), av, _CMP_EQ_OQ));
    if (!hit && j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_vd v = sl_load_v(p, j, &tail, 0);
        hit = sl_vm_bits(sl_vcmp(v, av, _CMP_EQ_OQ)) & ((1 << (C - j)) - 1);
        j += SL_L;
    }
    return hit ? j - SL_L + __builtin_ctz((unsigned)hit) : 0;
}

typedef struct {
    sl_acc_v s, cs, czs;
} sl_scan_acc_v;

/* The SL_L logits at j, capped (the double cap: float32 rows) with the cap's derivative in *d. */
SL_VEC SL_INLINE sl_vd sl_logit_v(const void *x, int64_t j, const sl_tail *tail, const sl_cap *cap, sl_vd *d,
                                  int f32)
{
    sl_vd v = sl_load_v(x, j, tail, f32);
    return cap ? sl_softcap_v(v, SL_V(cap->c), SL_V(cap->inv_c), d) : v;
}

SL_VEC SL_INLINE void sl_scan_step_v(const void *x, int64_t j, const sl_tail *tail, sl_vd a,
                                     const sl_coefs *cf, const sl_cap *cap, double *e_out, sl_scan_acc_v *acc,
                                     int normal, int f32, int cheap)
{
    sl_vd d, z_lo, z = sl_shift_v(sl_logit_v(x, j, tail, cap, &d, f32), a, &z_lo, cheap);
    if (cap && cap->d)
        sl_store_v(cap->d, j, d, tail, 0);
    sl_vd e = sl_keep_v(sl_shifted_exp_v(z, z_lo, normal, cheap), tail);
    if (e_out)
        sl_store_v(e_out, j, e, tail, 0);
    sl_acc_v_add(&acc->s, e, cheap);
    if (cf) { /* outside the tail c = 0 and z = -a is finite: nothing added */
        sl_vd c = sl_coef_v(cf, j, tail, f32);
        sl_acc_v_add(&acc->cs, c, cheap);
        /* c (-z) = 0 at z = 0, also for c = inf (its term c log1p(s) is in the coefficient sum), and
         * nothing for a masked class (sl_masked_class) */
        sl_vm masked = sl_vm_and(sl_vcmp(c, sl_vzero(), _CMP_EQ_OQ), sl_vcmp(z, SL_V(-INFINITY), _CMP_EQ_OQ));
        sl_vm nonzero = sl_vm_andnot(masked, sl_vcmp(z, sl_vzero(), _CMP_NEQ_UQ));
        sl_acc_v_add(&acc->czs, sl_vkeep(nonzero, sl_vmul(c, sl_vsub(sl_vzero(), z))), cheap);
        if (!cheap)
            acc->czs.lo = sl_vsub(acc->czs.lo, sl_vkeep(nonzero, sl_vmul(c, z_lo)));
    }
}

/* Classes [lo, hi); the next row's bytes at the same offsets are prefetched meanwhile (rows of
 * SL_PREFETCH_ROW classes and more).  The hint is T0, all cache levels: the next row's range pass reads
 * it first, and T1 (L2 only) measured slower.  The sums live in locals (registers). */
SL_VEC SL_INLINE void sl_scan_span_v(const void *x, int64_t lo, int64_t hi, sl_vd a, const sl_coefs *cf,
                                     const sl_cap *cap, const void *next, double *e_out, sl_scan_acc_v *acc,
                                     int normal, int f32, int cheap)
{
    sl_scan_acc_v sums = *acc;
    int64_t j = lo;
    for (; hi - j >= SL_L; j += SL_L) {
        size_t offset = (size_t)j * (f32 ? 4 : 8);
        if (next && offset % 64 < SL_L * (f32 ? 4 : 8)) /* once per cache line, wherever the span starts */
            _mm_prefetch((const char *)next + offset, _MM_HINT_T0);
        sl_scan_step_v(x, j, NULL, a, cf, cap, e_out, &sums, normal, f32, cheap);
    }
    if (j < hi) {
        sl_tail tail = sl_tail_mask(hi - j);
        sl_scan_step_v(x, j, &tail, a, cf, cap, e_out, &sums, normal, f32, cheap);
    }
    *acc = sums;
}

/* Both spans around k. */
SL_VEC SL_INLINE void sl_scan_spans_v(const void *x, int64_t C, int64_t k, sl_vd a, const sl_coefs *cf,
                                      const sl_cap *cap, const void *next, double *e_out, sl_scan_acc_v *acc,
                                      int normal, int f32, int cheap)
{
    sl_scan_span_v(x, 0, k, a, cf, cap, next, e_out, acc, normal, f32, cheap); /* every class but k */
    sl_scan_span_v(x, k + 1, C, a, cf, cap, next, e_out, acc, normal, f32, cheap);
}

/* sl_scan_spans_v with `normal` a compile-time constant in each loop. */
SL_VEC SL_INLINE void sl_scan_normal_or_not_v(const void *x, int64_t C, int64_t k, sl_vd a,
                                              const sl_coefs *cf, const sl_cap *cap, const void *next,
                                              double *e_out, sl_scan_acc_v *acc, int normal, int f32, int cheap)
{
    if (normal)
        sl_scan_spans_v(x, C, k, a, cf, cap, next, e_out, acc, 1, f32, cheap);
    else
        sl_scan_spans_v(x, C, k, a, cf, cap, next, e_out, acc, 0, f32, cheap);
}

/* With a cap (the double cap only), the capped max and min come from the raw ones. */
SL_VEC SL_INLINE sl_softmax sl_softmax_scan_v(const void *x, int64_t C, const sl_coefs *cf, const sl_cap *cap,
                                              const void *next, double *e_out, int f32, int cheap)
{
    sl_range rg = sl_row_range_v(x, C, f32);
    sl_softmax r = {rg.max, 0, NAN, NAN, NAN, NAN, NAN, NAN};
    if (rg.nan || (!cap && !isfinite(r.a)))
        return r;
    r.k = sl_first_index_v(x, C, r.a, f32);
    if (cap) {
        double d;
        r.a = sl_softcap(r.a, cap->c, cap->inv_c, &d);
        rg.min = sl_softcap(rg.min, cap->c, cap->inv_c, &d);
    }
    r.c_others = r.c_k = r.c_sum = r.cz_sum = 0.0;
    sl_scan_acc_v acc = {sl_acc_v_zero(), sl_acc_v_zero(), sl_acc_v_zero()};
    sl_vd a = SL_V(r.a);
    if (C < SL_PREFETCH_ROW)
        next = NULL;
    /* specialised loops: with or without coefficients, storing e_j or not, with or without the range
     * check of exp */
    int normal = rg.min - r.a >= -SL_EXP_NORMAL;
    if (cf && e_out)
        sl_scan_normal_or_not_v(x, C, r.k, a, cf, cap, next, e_out, &acc, normal, f32, cheap);
    else if (cf)
        sl_scan_normal_or_not_v(x, C, r.k, a, cf, cap, next, NULL, &acc, normal, f32, cheap);
    else if (e_out)
        sl_scan_normal_or_not_v(x, C, r.k, a, NULL, cap, next, e_out, &acc, normal, f32, cheap);
    else
        sl_scan_normal_or_not_v(x, C, r.k, a, NULL, cap, next, NULL, &acc, normal, f32, cheap);
    if (e_out)
        e_out[r.k] = 1.0;
    if (cap && cap->d) { /* k's, skipped by the spans */
        double d;
        sl_softcap(sl_load(x, r.k, f32), cap->c, cap->inv_c, &d);
        cap->d[r.k] = d;
    }
    r.s = sl_acc_v_value(&acc.s, cheap);
    r.log_s = sl_vfirst(sl_log1p_v(SL_V(r.s), cheap)); /* the vector form: shorter chain */
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

SL_VEC SL_INLINE void sl_grad_step_v(const void *x, int64_t j, const sl_tail *tail, sl_vd a, sl_vd K,
                                     const sl_coefs *cf, const sl_cap *cap, sl_vd b, sl_vd scale,
                                     const double *e_in, void *g, int f32, int cheap)
{
    sl_vd e, d = SL_V(1.0);
    if (e_in && (!cap || cap->d)) {
        e = sl_load_v(e_in, j, tail, 0);
        if (cap)
            d = sl_load_v(cap->d, j, tail, 0);
    } else {
        sl_vd z_lo, z = sl_shift_v(sl_logit_v(x, j, tail, cap, &d, f32), a, &z_lo, cheap);
        e = e_in ? sl_load_v(e_in, j, tail, 0) : sl_shifted_exp_v(z, z_lo, 0, cheap);
    }
    sl_vd v = cf ? sl_vmul(sl_vfms(K, e, sl_vmul(b, sl_coef_v(cf, j, tail, f32))), scale)
                   : sl_vmul(K, e);
    if (cap) /* dL/dx = dL/dx' (1 - tanh^2(x/c)) */
        v = sl_vmul(v, d);
    sl_store_v(g, j, v, tail, f32);
}

/* a_lo: no double-double cap takes the vector passes, a_lo is 0. */
SL_VEC SL_INLINE void sl_softmax_grad_v(const void *x, int64_t C, double a, double a_lo, double K,
                                        const sl_coefs *cf, const sl_cap *cap, double b, double scale,
                                        const double *e_in, void *g, int f32, int cheap)
{
    (void)a_lo;
    int64_t j = 0;
    for (; C - j >= SL_L; j += SL_L)
        sl_grad_step_v(x, j, NULL, SL_V(a), SL_V(K), cf, cap, SL_V(b), SL_V(scale), e_in, g, f32, cheap);
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_grad_step_v(x, j, &tail, SL_V(a), SL_V(K), cf, cap, SL_V(b), SL_V(scale), e_in, g, f32, cheap);
    }
}

SL_VEC SL_INLINE void sl_write_step_v(const void *x, int64_t j, const sl_tail *tail, sl_vd a, sl_vd log_s,
                                      sl_vd S, void *log_softmax, void *softmax, int f32, int cheap)
{
    sl_vd z_lo, z = sl_shift_v(sl_load_v(x, j, tail, f32), a, &z_lo, cheap);
    if (log_softmax)
        sl_store_v(log_softmax, j, sl_vadd(sl_vsub(z, log_s), z_lo), tail, f32);
    if (softmax)
        sl_store_v(softmax, j, sl_vdiv(sl_shifted_exp_v(z, z_lo, 0, cheap), S), tail, f32);
}

SL_VEC SL_INLINE void sl_softmax_write_v(const void *x, int64_t C, double a, double log_s, double S,
                                         void *log_softmax, void *softmax, int f32, int cheap)
{
    int64_t j = 0;
    for (; C - j >= SL_L; j += SL_L)
        sl_write_step_v(x, j, NULL, SL_V(a), SL_V(log_s), SL_V(S), log_softmax, softmax, f32, cheap);
    if (j < C) {
        sl_tail tail = sl_tail_mask(C - j);
        sl_write_step_v(x, j, &tail, SL_V(a), SL_V(log_s), SL_V(S), log_softmax, softmax, f32, cheap);
    }
}
#endif /* SL_X86 */
#endif /* SL_SOFTMAX_H */
