/*
 * pnll.c -- Poisson negative log-likelihood, elementwise, with the gradient for the input (sl_pnll_f32,
 * sl_pnll_f64; stableloss.h).
 *
 * Method.  log_input: loss = e^x - t x, grad = e^x - t.  Otherwise the rate lam = x + eps, exactly (lam +
 * lam_lo by TwoSum): loss = x - t log(lam), grad = (lam - t)/lam, lam - t = (x - t) + eps formed exactly (two
 * TwoSums) and divided once.  The products t x (exact in double for float32, by TwoProduct for float64) and
 * t log(lam) are subtracted once from e^x or x: e^x and log(lam) in double for float32 and in double-double
 * for float64 (sl_exp_hl, sl_log_hl: 2^-69 of the terms), so that a loss or gradient keeps its relative
 * accuracy down to PNLL_CANCEL_F32 = 2^-20 (PNLL_CANCEL_F64 = 2^-12) of its largest term.  Below that, near
 * e^x = t x, e^x = t and x = t log(lam), where any precision is eventually too little, the element is
 * redone on a scalar path from the triple-double sl_exp_td / sl_log_td (2^-130): e^x - t x = 2^n (m - t 2^-n
 * x), which also holds where e^x or t x overflows and the loss does not (float64 x up to PNLL_OVERFLOW_F64,
 * e^x - t x > DBL_MAX beyond for every t; the gradient is scaled before its 2^n, as grad_scale (e^x - t) is
 * finite further).  Float64 inputs beyond PNLL_EXP_RANGE_F64 (|x|, or |log lam|) take e^x, log(lam) in double
 * and the triple-double path for terms within a factor 4 (PNLL_CANCEL_WIDE).
 * With full, where t > 1, the loss is t psi(w) + log(2 pi t)/2 (- eps), psi(w) = w - log1p(w) >= 0,
 * w = (e^x - t)/t or (lam - t)/t: loss + t log t - t + log(2 pi t)/2 without the cancellation of t log t
 * against t x (t log(lam)), which grows with t.  psi comes from its atanh series s (w - R(s^2)), s = w/(2 + w)
 * (log1p(w) = 2s + s R(s^2), w - 2s = w s) on [PNLL_PSI_LOW, PNLL_PSI_HIGH], and from w - log1p(w) outside,
 * log1p(w) = x - log t (log(lam) - log t), where it cancels by at most 4.1; float64 in double-double (w,
 * psi, t psi, log t by sl_log_hl).  Float64 full losses without log_input take the scalar path where eps >
 * PNLL_EPS_NEAR (log(2 pi t)/2 - eps can cancel: log t by sl_log_dd), and those with t > PNLL_T_HL_MAX
 * (beyond sl_log_hl).
 *
 * Special cases (PyTorch gives NaN for the first two).  t = 0 makes t x and t log(lam) 0 whatever the input:
 * loss e^x (0 at x = -inf), gradient e^x; without log_input loss x (also at lam = 0), gradient 1.  x = +inf
 * gives the limit +inf for a finite target (gradient +inf, or 1 without log_input).  lam < 0 gives a NaN loss
 * (the gradient keeps its formula); full with t = +inf gives NaN (t log t - t); NaN in: NaN out.  These
 * elements, and every one whose terms overflow, take the scalar path.
 *
 * Accuracy (against mpmath: Poisson counts, both roots of e^x = t x and x = t log(lam) rounded with their
 * neighbours (results down to 2^-58 of their terms), x = log t and x = t - eps rounded, e^x past the double
 * range, extremes of both dtypes, full from t = 1 to near the max; every SIMD level alike): float32 0.5
 * ulp; float64 loss 1.0 ulp, gradient 0.5 ulp.  Budget: 4 ulp; full without log_input with eps above
 * log(2 pi t)/2 (a difference of two terms then): 4 ulp of the larger term (budgets.py).
 */
#include "sl_kernel.h"

typedef struct {
    const void *input, *target;
    int64_t n_rows, log_input, full;
    double eps, grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} pnll_args;

/* The constants of the declaration (stableloss/_api.py, checked by tests/test_spec.py): a loss or gradient
 * below PNLL_CANCEL_F32 (PNLL_CANCEL_F64) times its largest term, or PNLL_CANCEL_WIDE beyond
 * PNLL_EXP_RANGE_F64, takes the triple-double path; e^x - t x overflows above PNLL_OVERFLOW_F64; psi's series
 * covers [PNLL_PSI_LOW, PNLL_PSI_HIGH]; PNLL_EPS_NEAR and PNLL_T_HL_MAX send float64 full losses to the
 * scalar path (see above). */
#define PNLL_CANCEL_F32 0x1p-20
#define PNLL_CANCEL_F64 0x1p-12
#define PNLL_CANCEL_WIDE 0.75
#define PNLL_EXP_RANGE_F64 690.0
#define PNLL_OVERFLOW_F64 717.0
#define PNLL_PSI_LOW -0.45
#define PNLL_PSI_HIGH 0.85
#define PNLL_EPS_NEAR 0.2295
#define PNLL_T_HL_MAX 0x1p995
#define PNLL_CANCEL(f32) ((f32) ? PNLL_CANCEL_F32 : PNLL_CANCEL_F64)

/* R(z) = z sum_k 2 z^k/(2k + 3) of psi's atanh series: 16 terms reach 2^-59 of R at z = s^2 <= 0.089. */
static const double pnll_psi_r[16] = {
    2.0 / 3,  2.0 / 5,  2.0 / 7,  2.0 / 9,  2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17,
    2.0 / 19, 2.0 / 21, 2.0 / 23, 2.0 / 25, 2.0 / 27, 2.0 / 29, 2.0 / 31, 2.0 / 33};

/* ------------------------------------------------------------------------------------------------
 * The scalar path: every element of the scalar variant, and the lanes the vector path leaves. */

/* The full loss t psi(w) + c (c = log(2 pi t)/2, less eps without log_input), psi(w) = w - log1p(w) >= 0,
 * u = log1p(w) from the caller (x - log t, or log(lam) - log t; never from 1 + w, which loses e^x/t near
 * w = -1).  psi from its atanh series s (w - R(s^2)), s = w/(2 + w) (log1p(w) = 2s + s R(s^2), w - 2s = w s):
 * no cancellation (R < 0.07 (w - R)), on [PNLL_PSI_LOW, PNLL_PSI_HIGH]; from w - u outside, which cancels
 * by at most 4.1.  float32 in double; float64 in double-double from w + w_lo, u + u_lo, c + c_lo (s to
 * 2^-104, R in double: psi to ~2^-58). */
SL_INLINE double pnll_full(double t, double w, double w_lo, double u, double u_lo, double c, double c_lo, int f32)
{
    if (w == INFINITY)
        return INFINITY;
    double psi, psi_lo = 0.0;
    if (w >= PNLL_PSI_LOW && w <= PNLL_PSI_HIGH) {
        if (f32) {
            double s = w / (2.0 + w), z = s * s;
            psi = s * (w - z * sl_horner(pnll_psi_r, 16, z));
        } else {
            double d_lo, d = sl_two_sum(2.0, w, &d_lo);
            double s_lo, s = sl_dd_div(w, w_lo, d, d_lo + w_lo, &s_lo);
            double z = s * s;
            double in_lo, in = sl_two_sum(w, -z * sl_horner(pnll_psi_r, 16, z), &in_lo);
            psi = sl_dd_mul(s, s_lo, in, in_lo + w_lo, &psi_lo);
        }
    } else {
        psi = f32 ? w - u : sl_dd_add(w, w_lo, -u, -u_lo, &psi_lo);
    }
    if (f32)
        return t * psi + c;
    double tp_lo, tp = sl_two_prod(t, psi, &tp_lo);
    if (!isfinite(tp))
        return tp;
    double sum_lo, sum = sl_two_sum(tp, c, &sum_lo);
    return sum + (sum_lo + (tp_lo + t * psi_lo + c_lo));
}

/* log t (t > 1) as *lo-less double for float32, double-double for float64: sl_log_hl, or sl_log_dd beyond
 * its range (t > e^690). */
SL_INLINE double pnll_log_t(double t, double *lo, int f32)
{
    double y = sl_log(t, 0);
    *lo = 0.0;
    if (f32)
        return y;
    return y > PNLL_EXP_RANGE_F64 ? sl_log_dd(t, lo) : sl_log_hl(t, 0.0, y, lo);
}

/* The full loss with log_input, t > 1: w = (e^x - t)/t = (g + g_lo)/ts from e^x - t = 2^n (g + g_lo) and
 * ts = t 2^-n (n = 0 off the triple-double path), log1p(w) = x - log t, c = log(2 pi t)/2. */
SL_INLINE double pnll_full_log_input(double x, double t, double g, double g_lo, double ts, int f32)
{
    if (t == INFINITY)
        return NAN; /* t log t - t */
    if (isinf(x))
        return INFINITY; /* w = +inf, or w = -1 */
    double l_lo, l = pnll_log_t(t, &l_lo, f32);
    double w_lo = 0.0, w = f32 || isinf(g) ? g / ts : sl_dd_div(g, g_lo, ts, 0.0, &w_lo);
    double u_lo, u = sl_two_sum(x, -l, &u_lo);
    double c_lo, c = sl_dd_add(SL_HALF_LOG_2PI, SL_HALF_LOG_2PI_LO, 0.5 * l, 0.5 * l_lo, &c_lo);
    return pnll_full(t, w, w_lo, u, u_lo - l_lo, c, c_lo, f32);
}

/* The full loss without log_input, t > 1, lam = x + eps >= 0: w = (lam - t)/t = (num + num_lo)/ts (both times
 * halve), log1p(w) = log(lam) - log t with log(lam) = l + l_lo (float64 off its range, wide: sl_log_dd),
 * c = log(2 pi t)/2 - eps (log t by sl_log_dd where eps > PNLL_EPS_NEAR, as c - eps can cancel). */
SL_INLINE double pnll_full_rate(double x, double t, double eps, double lam_s, double lam_s_lo, double halve,
                                double num, double num_lo, double ts, double l, double l_lo, int wide, int f32)
{
    if (t == INFINITY)
        return NAN;
    if (x == INFINITY || lam_s == 0.0)
        return INFINITY; /* w = +inf, or w = -1 */
    double lt_lo, lt = !f32 && eps > PNLL_EPS_NEAR ? sl_log_dd(t, &lt_lo) : pnll_log_t(t, &lt_lo, f32);
    if (wide) { /* log(lam) beyond sl_log_hl's range */
        l = sl_log_dd(lam_s, &l_lo);
        l = sl_dd_add(l, l_lo + lam_s_lo / lam_s, halve < 1.0 ? SL_LN2_HI : 0.0, halve < 1.0 ? SL_LN2_LO : 0.0,
                      &l_lo);
    }
    double w_lo = 0.0, w = f32 ? (num + num_lo) / ts : sl_dd_div(num, num_lo, ts, 0.0, &w_lo);
    double u_lo, u = sl_dd_add(l, l_lo, -lt, -lt_lo, &u_lo);
    double c_lo, c = sl_dd_add(SL_HALF_LOG_2PI, SL_HALF_LOG_2PI_LO, 0.5 * lt, 0.5 * lt_lo, &c_lo);
    c = sl_dd_add(c, c_lo, -eps, 0.0, &c_lo);
    return pnll_full(t, w, w_lo, u, u_lo, c, c_lo, f32);
}

/* e^x - t and e^x - t x from e^x = 2^n m (sl_exp_td), returns n: with *ts = t 2^-n (exact wherever the
 * differences cancel), e^x - t = 2^n (*g + *g_lo) and e^x - t x = 2^n *v (rounded once).  Nothing is
 * written where t 2^-n overflows: there |t| is far above e^x and nothing cancels. */
SL_INLINE double pnll_exp_minus_td(double x, double t, double *ts, double *g, double *g_lo, double *v)
{
    double m[3], c, e, p_lo;
    double n = sl_exp_td(x, m);
    double t_scaled = sl_scale2(t, -n);
    if (isinf(t_scaled))
        return n;
    *ts = t_scaled;
    double d = sl_two_sum(m[0], -*ts, &c); /* exact where it cancels (Sterbenz) */
    d = sl_two_sum(d, m[1], &e);
    *g = sl_two_sum(d, c + e + m[2], g_lo);
    double p = sl_two_prod(*ts, x, &p_lo); /* t x 2^-n, without the overflow of t x */
    double w = sl_two_sum(m[0], -p, &c);
    w = sl_two_sum(w, m[1], &e);
    c += e;
    w = sl_two_sum(w, -p_lo, &e);
    *v = w + (c + e + m[2]);
    return n;
}

/* x - t log(lam) from the triple-double log(lam) (lam = lam_s/halve, lam_s + lam_s_lo exact), with x and t
 * scaled by 2^-12 where t log(lam) (|log(lam)| < 2^9.6) could overflow while the difference does not. */
SL_INLINE double pnll_rate_td(double x, double t, double lam_s, double lam_s_lo, double halve)
{
    double l[3], c, e, h_err, m_err;
    sl_log_td(lam_s, lam_s_lo, l);
    if (halve < 1.0) { /* log(lam) = log(lam_s) + ln 2, ln 2 = SL_LN2_HI + SL_LN2_LO + SL_LN2_LO2 */
        double h = sl_two_sum(l[0], SL_LN2_HI, &h_err);
        double m = sl_two_sum(h_err, l[1], &m_err);
        sl_td_set(l, h, m, m_err + l[2] + SL_LN2_LO + SL_LN2_LO2);
    }
    double scale = fabs(x) > 0x1p1000 || fabs(t) > 0x1p1000 ? 0x1p-12 : 1.0;
    x *= scale, t *= scale;
    double p1 = sl_two_prod(t, l[0], &h_err);
    double p2 = sl_two_prod(t, l[1], &m_err);
    double v = sl_two_sum(x, -p1, &c); /* exact where it cancels (Sterbenz) */
    v = sl_two_sum(v, -h_err, &e);
    c += e;
    v = sl_two_sum(v, -p2, &e);
    c += e;
    return (v + (c - m_err - t * l[2])) / scale;
}

/* Loss and grad_scale times the gradient of one element, log_input. */
SL_INLINE double pnll_log_input(double x, double t, int full, double grad_scale, double *grad, int f32)
{
    int finite = isfinite(x) && isfinite(t);
    int wide = !f32 && finite && fabs(x) > PNLL_EXP_RANGE_F64 && fabs(x) <= SL_EXP_TD_RANGE;
    double e, e_lo = 0.0, p, p_lo = 0.0;
    if (f32) {
        e = sl_exp(x, 0);
        p = t * x; /* exact: 24 by 24 bits */
    } else {
        e = fabs(x) <= PNLL_EXP_RANGE_F64 ? sl_exp_hl(x, &e_lo) : sl_exp(x, 0);
        p = sl_two_prod(t, x, &p_lo);
        if (!isfinite(p_lo))
            p_lo = 0.0;
    }
    double g_lo, g = sl_two_sum(e, -t, &g_lo); /* e^x - t = g + g_lo (+ e_lo) */
    g_lo = isfinite(g) ? g_lo + e_lo : 0.0;
    double value = (e - p) + (e_lo - p_lo);
    if (isinf(p) && finite && !isinf(e)) /* t x overflows: e^x - t x = 2 (e^x/2 - (t/2) x) */
        value = 2.0 * ((0.5 * e - (0.5 * t) * x) + 0.5 * e_lo);
    if (t == 0.0)
        value = e; /* 0 x = 0 whatever x */
    int above = x == INFINITY || (!f32 && x > PNLL_OVERFLOW_F64); /* e^x - t x > DBL_MAX */
    if (above && t != 0.0)
        value = t == INFINITY || t != t ? NAN : INFINITY;
    double cancel = wide ? PNLL_CANCEL_WIDE : PNLL_CANCEL(f32);
    int overflow = wide && e == INFINITY;
    int slow_g = finite && (overflow || fabs(g) < cancel * e);
    int slow_v = finite && t != 0.0 && !above && (overflow || fabs(value) < cancel * fmax(e, fabs(p)));
    double ts = INFINITY, v;
    *grad = (g + g_lo) * grad_scale;
    if (slow_g || slow_v) {
        double n = pnll_exp_minus_td(x, t, &ts, &g, &g_lo, &v);
        if (isfinite(ts)) {
            *grad = sl_scale2((g + g_lo) * grad_scale, n);
            if (slow_v)
                value = sl_scale2(v, n);
        }
    }
    if (!isfinite(ts))
        ts = t;
    if (full && t > 1.0 && x == x)
        value = pnll_full_log_input(x, t, g, g_lo, ts, f32);
    return value;
}

/* Loss and grad_scale times the gradient of one element, without log_input. */
SL_INLINE double pnll_rate(double x, double t, int full, double eps, double grad_scale, double *grad, int f32)
{
    double halve = isinf(x + eps) && isfinite(x) ? 0.5 : 1.0; /* x + eps overflows: lam = 2 (x/2 + eps/2) */
    double xs = halve * x, ts = halve * t, es = halve * eps;
    double lam_lo, lam = sl_two_sum(xs, es, &lam_lo); /* lam/halve = x + eps exactly */
    double d_lo, d = sl_two_sum(xs, -ts, &d_lo);
    double num_lo, num = sl_two_sum(d, es, &num_lo); /* (lam - t) halve = num + num_lo exactly */
    num_lo += d_lo;
    if (!isfinite(lam))
        lam_lo = 0.0;
    double num_r = isfinite(d) ? num + num_lo : NAN;
    double g;
    if (isfinite(num_r)) { /* (num + num_lo)/(lam + lam_lo) = q + (num - q lam + num_lo - q lam_lo)/lam */
        double q = num / lam, correction = (fma(-q, lam, num) + num_lo - q * lam_lo) / lam;
        g = q + (isfinite(correction) ? correction : 0.0);
    } else {
        g = 1.0 - ts / lam; /* x - t overflows (no cancellation), or an infinite input */
    }
    if (t == 0.0)
        g = x != x ? NAN : 1.0; /* the gradient of x alone */
    g *= grad_scale;
    if (isinf(g) && isfinite(num_r) && lam != 0.0) /* the quotient overflows, scaled it need not */
        g = (num_r * grad_scale) / lam;
    *grad = g;
    int positive = lam > 0.0 && lam < INFINITY;
    double l = sl_log(lam, 0), l_lo = 0.0; /* -inf at 0, NaN below, +inf at +inf */
    int wide = !f32 && fabs(l) > PNLL_EXP_RANGE_F64;
    if (positive) {
        if (f32 || wide)
            l_lo = lam_lo / lam; /* log(lam + lam_lo) = log(lam) + lam_lo/lam */
        else
            l = sl_log_hl(lam, lam_lo, l, &l_lo);
        if (halve < 1.0)
            l = sl_dd_add(l, l_lo, SL_LN2_HI, SL_LN2_LO, &l_lo);
    }
    double p, p_lo = 0.0;
    if (f32) {
        p = t * l;
    } else {
        p = sl_two_prod(t, l, &p_lo);
        if (!isfinite(p_lo))
            p_lo = 0.0;
    }
    double correction = p_lo + t * l_lo;
    double value = (x - p) - (isfinite(correction) ? correction : 0.0);
    int finite = isfinite(x) && isfinite(t) && positive;
    if (t == 0.0)
        value = lam >= 0.0 ? x : NAN; /* 0 log(lam) = 0 for lam >= 0 */
    if (x == INFINITY && t != 0.0)
        value = t == INFINITY || t != t ? NAN : INFINITY;
    double largest = fmax(fabs(x), fabs(t) * fmax(1.0, fabs(l)));
    double cancel = wide ? PNLL_CANCEL_WIDE : PNLL_CANCEL(f32);
    if (finite && t != 0.0 && (fabs(value) < cancel * largest || isinf(p))) /* also where t log(lam) overflows */
        value = pnll_rate_td(x, t, lam, lam_lo, halve);
    if (full && t > 1.0 && value == value)
        value = pnll_full_rate(x, t, eps, lam, lam_lo, halve, num, num_lo, ts, l, l_lo, wide, f32);
    return value;
}

SL_INLINE double pnll_eval(const pnll_args *a, double x, double t, double *grad, int f32)
{
    if (a->log_input)
        return pnll_log_input(x, t, (int)a->full, a->grad_scale, grad, f32);
    return pnll_rate(x, t, (int)a->full, a->eps, a->grad_scale, grad, f32);
}

SL_INLINE double pnll_row(const void *args, int64_t i, int f32)
{
    const pnll_args *a = (const pnll_args *)args;
    double g, value = pnll_eval(a, sl_load(a->input, i, f32), sl_load(a->target, i, f32), &g, f32);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, g, f32);
    return value;
}

SL_INLINE void pnll_scalar(const pnll_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, pnll_row, f32);
}

#if SL_X86
/* The lanes in `mask` from the scalar path (loss and scaled gradient). */
SL_VEC SL_OUTLINE void pnll_slow_lanes(const pnll_args *a, sl_vd x, sl_vd t, int mask, sl_vd *value, sl_vd *grad,
                                       int f32)
{
    double xs[SL_L], ts[SL_L], vs[SL_L], gs[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ts, t);
    sl_vstoreu(vs, *value);
    sl_vstoreu(gs, *grad);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            vs[l] = pnll_eval(a, xs[l], ts[l], &gs[l], f32);
    *value = sl_vloadu(vs);
    *grad = sl_vloadu(gs);
}

/* The full loss t psi(w) + c in the lanes `stirling` (every other lane keeps `value`), as pnll_full: w, u =
 * log1p(w) and c with their low parts (zero for float32). */
SL_VEC SL_INLINE sl_vd pnll_full_v(sl_vm stirling, sl_vd t, sl_vd w, sl_vd w_lo, sl_vd u, sl_vd u_lo, sl_vd c,
                                   sl_vd c_lo, sl_vd value)
{
    sl_vd d_lo, d = sl_two_sum_v(SL_V(2.0), w, &d_lo);
    d_lo = sl_vadd(d_lo, w_lo);
    sl_vd s = sl_vdiv(w, d); /* w/(2 + w) to 2^-104: the quotient's remainder by FMA */
    sl_vd s_lo = sl_vdiv(sl_vfnma(s, d_lo, sl_vadd(sl_vfnma(s, d, w), w_lo)), d);
    sl_vd z = sl_vmul(s, s);
    sl_vd in_lo, in = sl_two_sum_v(w, sl_vsub(sl_vzero(), sl_vmul(z, sl_estrin_v(pnll_psi_r, 16, z))), &in_lo);
    in_lo = sl_vadd(in_lo, w_lo);
    sl_vd series = sl_vmul(s, in);
    sl_vd series_lo = sl_vfma(s_lo, in, sl_vfma(s, in_lo, sl_vfms(s, in, series)));
    sl_vd out_lo, out = sl_two_sum_v(w, sl_vsub(sl_vzero(), u), &out_lo);
    out_lo = sl_vadd(out_lo, sl_vsub(w_lo, u_lo));
    sl_vm inside = sl_vm_and(sl_vcmp(w, SL_V(PNLL_PSI_LOW), _CMP_GE_OQ), sl_vcmp(w, SL_V(PNLL_PSI_HIGH), _CMP_LE_OQ));
    sl_vd psi = sl_vselect(inside, series, out), psi_lo = sl_vselect(inside, series_lo, out_lo);
    sl_vd tp = sl_vmul(t, psi), tp_lo = sl_vfma(t, psi_lo, sl_vfms(t, psi, tp));
    sl_vd sum_lo, sum = sl_two_sum_v(tp, c, &sum_lo);
    sum = sl_vselect(sl_isfinite_v(tp), sl_vadd(sum, sl_vadd(sum_lo, sl_vadd(tp_lo, c_lo))), tp); /* w = +inf */
    return sl_vselect(stirling, sum, value);
}

/* log t in the lanes `stirling` (1 elsewhere: log's slow lanes would take t <= 0), with its low part for
 * float64 (sl_log_hl_v; t > e^690 goes to the scalar path). */
SL_VEC SL_INLINE sl_vd pnll_log_t_v(sl_vm stirling, sl_vd t, sl_vd *lo, int f32)
{
    sl_vd safe = sl_vselect(stirling, t, SL_V(1.0));
    sl_vd y = sl_log_v(safe, 0);
    *lo = sl_vzero();
    return f32 ? y : sl_log_hl_v(safe, sl_vzero(), y, lo);
}

SL_VEC SL_INLINE sl_vd pnll_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const pnll_args *a = (const pnll_args *)args;
    sl_vd zero = sl_vzero(), one = SL_V(1.0);
    sl_vd x = sl_load_v(a->input, i, tail, f32), t = sl_load_v(a->target, i, tail, f32);
    sl_vd cancel = SL_V(PNLL_CANCEL(f32));
    sl_vm t_zero = sl_vcmp(t, zero, _CMP_EQ_OQ);
    /* the scalar path takes infinities and NaN, overflowing terms, and the cancelling lanes */
    sl_vm slow = sl_vm_andnot(sl_vm_and(sl_isfinite_v(x), sl_isfinite_v(t)), sl_tail_lanes(tail));
    sl_vm stirling = sl_vcmp(t, one, _CMP_GT_OQ); /* where full adds the Stirling term */
    if (a->full && !f32)
        slow = sl_vm_or(slow, sl_vcmp(t, SL_V(PNLL_T_HL_MAX), _CMP_GT_OQ)); /* log t beyond sl_log_hl_v */
    sl_vd value, g;
    if (a->log_input) {
        sl_vd e, e_lo = zero, p = sl_vmul(t, x), p_lo = zero;
        if (f32) {
            e = sl_exp_v(x, 0);
        } else {
            e = sl_exp_hl_v(x, &e_lo);
            p_lo = sl_vfms(t, x, p);
            slow = sl_vm_or(slow, sl_vcmp(sl_abs_v(x), SL_V(PNLL_EXP_RANGE_F64), _CMP_GT_OQ));
        }
        sl_vd g_lo;
        g = sl_two_sum_v(e, sl_vsub(zero, t), &g_lo); /* e^x - t = g + g_lo */
        g_lo = sl_vadd(sl_finite_or_zero_v(g_lo), e_lo);
        value = sl_vselect(t_zero, e, sl_vadd(sl_vsub(e, p), sl_vsub(e_lo, p_lo))); /* 0 x = 0 */
        slow = sl_vm_or(slow, sl_vcmp(sl_abs_v(g), sl_vmul(cancel, e), _CMP_LT_OQ));
        slow = sl_vm_or(slow, sl_vm_andnot(t_zero, sl_vcmp(sl_abs_v(value), sl_vmul(cancel, sl_vmax(e, sl_abs_v(p))),
                                                          _CMP_LT_OQ)));
        slow = sl_vm_or(slow, sl_vcmp(sl_abs_v(p), SL_V(INFINITY), _CMP_EQ_OQ));
        if (a->full && sl_vm_bits(stirling)) { /* w = (e^x - t)/t, log1p(w) = x - log t */
            sl_vd l_lo, l = pnll_log_t_v(stirling, t, &l_lo, f32);
            sl_vd w = sl_vdiv(g, t);
            sl_vd w_lo = f32 ? zero : sl_vdiv(sl_vadd(sl_vfnma(w, t, g), g_lo), t); /* the remainder by FMA */
            sl_vd u_lo, u = sl_two_sum_v(x, sl_vsub(zero, l), &u_lo);
            sl_vd c_lo, c = sl_two_sum_v(SL_V(SL_HALF_LOG_2PI), sl_vmul(SL_V(0.5), l), &c_lo);
            c_lo = sl_vadd(c_lo, sl_vfma(SL_V(0.5), l_lo, SL_V(f32 ? 0.0 : SL_HALF_LOG_2PI_LO)));
            value = pnll_full_v(stirling, t, w, w_lo, u, sl_vsub(u_lo, l_lo), c, c_lo, value);
        }
        g = sl_vadd(g, g_lo);
    } else {
        sl_vd eps = SL_V(a->eps);
        sl_vd lam_lo, lam = sl_two_sum_v(x, eps, &lam_lo); /* x + eps exactly */
        sl_vd d_lo, d = sl_two_sum_v(x, sl_vsub(zero, t), &d_lo);
        sl_vd num_lo, num = sl_two_sum_v(d, eps, &num_lo);
        num_lo = sl_vadd(num_lo, d_lo); /* lam - t = num + num_lo exactly */
        g = sl_vdiv(num, lam); /* (num + num_lo)/(lam + lam_lo), the quotient's remainder by FMA */
        g = sl_vadd(g, sl_vdiv(sl_vfnma(g, lam_lo, sl_vadd(sl_vfnma(g, lam, num), num_lo)), lam));
        g = sl_vselect(t_zero, one, g); /* the gradient of x alone */
        slow = sl_vm_or(slow, sl_vm_andnot(sl_vcmp(lam, zero, _CMP_GT_OQ), sl_tail_lanes(tail)));
        sl_vd y = sl_log_v(sl_vselect(slow, one, lam), 0), l, l_lo;
        if (f32) {
            l = y;
            l_lo = sl_vdiv(lam_lo, lam);
        } else {
            l = sl_log_hl_v(lam, lam_lo, y, &l_lo);
            slow = sl_vm_or(slow, sl_vcmp(sl_abs_v(y), SL_V(PNLL_EXP_RANGE_F64), _CMP_GT_OQ));
        }
        sl_vd p = sl_vmul(t, l), p_lo = f32 ? zero : sl_vfms(t, l, p);
        value = sl_vselect(t_zero, x, sl_vsub(sl_vsub(x, p), sl_vfma(t, l_lo, p_lo))); /* 0 log(lam) = 0 */
        sl_vd largest = sl_vmax(sl_abs_v(x), sl_vmul(sl_abs_v(t), sl_vmax(one, sl_abs_v(l))));
        slow = sl_vm_or(slow, sl_vm_andnot(t_zero, sl_vcmp(sl_abs_v(value), sl_vmul(cancel, largest), _CMP_LT_OQ)));
        slow = sl_vm_or(slow, sl_vm_andnot(sl_isfinite_v(sl_vmul(g, SL_V(a->grad_scale))), sl_tail_lanes(tail)));
        slow = sl_vm_or(slow, sl_vcmp(sl_abs_v(p), SL_V(INFINITY), _CMP_EQ_OQ));
        if (a->full && sl_vm_bits(stirling)) { /* w = (lam - t)/t, log1p(w) = log(lam) - log t */
            if (!f32 && a->eps > PNLL_EPS_NEAR)
                slow = sl_vm_or(slow, stirling);
            sl_vd lt_lo, lt = pnll_log_t_v(stirling, t, &lt_lo, f32);
            sl_vd w = sl_vdiv(num, t);
            sl_vd w_lo = f32 ? zero : sl_vdiv(sl_vadd(sl_vfnma(w, t, num), num_lo), t);
            sl_vd u_lo, u = sl_two_sum_v(l, sl_vsub(zero, lt), &u_lo);
            sl_vd c_lo, c = sl_two_sum_v(SL_V(SL_HALF_LOG_2PI), sl_vmul(SL_V(0.5), lt), &c_lo);
            c_lo = sl_vadd(c_lo, sl_vfma(SL_V(0.5), lt_lo, SL_V(f32 ? 0.0 : SL_HALF_LOG_2PI_LO)));
            sl_vd c_err;
            c = sl_two_sum_v(c, sl_vsub(zero, eps), &c_err);
            c_lo = sl_vadd(c_lo, c_err);
            value = pnll_full_v(stirling, t, w, w_lo, u, sl_vadd(sl_vsub(u_lo, lt_lo), l_lo), c, c_lo, value);
        }
    }
    g = sl_vmul(g, SL_V(a->grad_scale));
    int mask = sl_vm_bits(slow) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        pnll_slow_lanes(a, x, t, mask, &value, &g, f32);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    if (a->grad)
        sl_store_v(a->grad, i, g, tail, f32);
    return value;
}

SL_VEC SL_INLINE void pnll_vec(const pnll_args *a, int f32)
{
    sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, pnll_lanes, f32);
}
#endif

SL_KERNEL(pnll, pnll_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_pnll_f32(const float *input, const float *target, int64_t n_rows, int64_t log_input, int64_t full,
                 double eps, double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums)
{
    const pnll_args a = {input, target, n_rows, log_input, full, eps, grad_scale, rows_per_block, loss, grad,
                         block_sums};
    pnll_run(&a, 1);
}

void sl_pnll_f64(const double *input, const double *target, int64_t n_rows, int64_t log_input, int64_t full,
                 double eps, double grad_scale, int64_t rows_per_block, double *loss, double *grad,
                 double *block_sums)
{
    const pnll_args a = {input, target, n_rows, log_input, full, eps, grad_scale, rows_per_block, loss, grad,
                         block_sums};
    pnll_run(&a, 0);
}
#endif
