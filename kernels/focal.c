/*
 * focal.c -- sigmoid focal loss (torchvision.ops.sigmoid_focal_loss), elementwise, with its gradient
 * (sl_focal_f32, sl_focal_f64; stableloss.h).
 *
 * Method.  loss = a_t ce q^gamma with q = 1 - p_t, ce the BCE with logits and a_t = alpha t + (1 - alpha)
 * (1 - t) (1 for alpha < 0).  With e = e^-|x|, sigma(x) = A/(1 + e) and sigma(-x) = B/(1 + e), (A, B) =
 * (1, e) for x >= 0 and (e, 1) below (as bce.c: never 1 - sigma):
 *   q = t sigma(-x) + (1 - t) sigma(x) = num/(1 + e), num = t B + (1 - t) A, a sum of terms >= 0 (1 - p_t
 *     formed from p_t would cancel: x = 40, t = 1 gives q^2 = e^-80, which that rounds to 0);
 *   ce = t softplus(-x) + (1 - t) softplus(x) = log1p(e) + (1 - t) max(x, 0) + t max(-x, 0), terms >= 0;
 *   q^gamma = exp(gamma log q), log q = log(num) - log1p(e), where log(num) is exact for hard labels
 *     (-|x| where num = e, else 0) and log-add-exp(log t, log(1 - t) - |x|) where num is tiny (t tiny,
 *     x << 0): neither underflows early nor loses relative accuracy in exp's argument;
 *   d/dx = a_t (q^gamma (sigma(x) - t) + gamma ce q^(gamma - 1) sigma(x) sigma(-x) (1 - 2t))
 *        = a_t q^gamma ((1 - t) A - t B + gamma ce (1 - 2t) r)/(1 + e),  r = e/num
 *     (sigma(x) - t = ((1 - t) A - t B)/(1 + e) and sigma(x) sigma(-x)/q = r/(1 + e)): q^(gamma - 1) is
 *     never formed, so gamma < 1 at q -> 0 gives the finite derivative (torch's autograd: 0^-1/2 0 = NaN);
 *     for hard labels the terms have one sign.
 *   float32 (gamma <= FOCAL_F32_GAMMA_MAX): all in double, cheap grade; a soft-label gradient whose
 *     terms cancel below FOCAL_SOFT_LABEL_CANCEL of the largest is redone by focal_eval_dd (scalar path).
 *   float64: the same formulas in double-double (focal_eval64), e and q^gamma from sl_exp_hilo and
 *     log1p(e), log(num) from sl_log_hilo (to 2^-57; every product and sum error-free), one rounding at the
 *     end.  focal_eval_dd redoes the elements with |x| or -gamma log q beyond FOCAL_FAST64_RANGE, and the
 *     soft-label gradients whose terms cancel below FOCAL_FAST64_CANCEL of the largest (0.4% of random
 *     soft labels), as it does every element of a float32 call with gamma beyond FOCAL_F32_GAMMA_MAX.
 *   focal_eval_dd: e from sl_exp_dd, log1p(e) and log(num) from sl_log_dd, q^gamma from sl_exp_dd of
 *     gamma log q (to 2^-100), q^gamma carried as Q 2^-K below e^-600 so that ce q^gamma keeps its
 *     accuracy where q^gamma alone is subnormal (ce up to 1.8e308), one rounding at the end.
 *
 * Special cases.  NaN in x or t: NaN out.  A term of ce whose label factor is exactly 0 counts as 0, so
 * x = +-inf gives the limits (loss 0 or +inf, gradient a_t q^gamma ((1 - t) A - t B)) instead of
 * torch's NaN; a_t = 0 gives 0, also against an infinite ce; gamma = 0 gives a_t ce exactly (0^0 = 1).
 *
 * Accuracy (against mpmath: logits 0 to +-max and +-inf against hard, soft and tiny labels, confident
 * predictions down to subnormal results, soft labels at the gradient's root, gamma from 0 to 1e5; every
 * SIMD level alike): float32 0.5 ulp (loss and gradient); float64 loss 1.03 ulp, gradient 1.14 ulp.
 * Budget: 4 ulp.  The float64 gradient with soft labels counts in ulps of its largest term (budgets.py):
 * at the loss's minimum the double x nearest it leaves a gradient far below its terms (up to 231 ulp of
 * itself measured there, below 1.2 ulp of the largest term).
 */
#include "sl_kernel.h"

typedef struct {
    const void *inputs, *targets;
    int64_t n_rows;
    double alpha, gamma, grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
} focal_args;

/* The constants of the declaration (stableloss/_api.py, checked by tests/test_spec.py): a float32
 * soft-label gradient whose double terms cancel below FOCAL_SOFT_LABEL_CANCEL times the largest takes
 * the double-double path, and so does every element of a float32 call with gamma beyond
 * FOCAL_F32_GAMMA_MAX; num below FOCAL_TINY is formed from logs. */
#define FOCAL_SOFT_LABEL_CANCEL 0x1p-8
#define FOCAL_F32_GAMMA_MAX 0x1p16
#define FOCAL_TINY 0x1p-960
/* float64: |x| and -gamma log q up to FOCAL_FAST64_RANGE take the fast double-double forms (sl_exp_hilo keeps its
 * accuracy above e^-690), and soft-label gradients whose terms cancel no further than FOCAL_FAST64_CANCEL; the
 * others focal_eval_dd. */
#define FOCAL_FAST64_RANGE 690.0
#define FOCAL_FAST64_CANCEL 0x1p-6

/* ------------------------------------------------------------------------------------------------
 * The double-double path */

/* log(1 + v) for v = hi + lo in [0, 1]: with u + c = 1 + v (u = fl(1 + hi)), log(u) + w - w^2/2, w = c/u
 * (below 2^-53 unless u = 1, where c = v and log1p(v) = v - v^2/2 to v^3). */
SL_INLINE double focal_log1p_dd(double hi, double lo, double *out_lo)
{
    double c, u = sl_two_sum(1.0, hi, &c);
    double w = (c + lo) / u;
    double l_lo, l = sl_log_dd(u, &l_lo);
    return sl_dd_add(l, l_lo, w, -0.5 * w * w, out_lo);
}

/* exp(hi + lo) for hi <= 0, |lo| <= ulp(hi): e^hi (1 + lo). */
SL_INLINE double focal_exp_dd(double hi, double lo, double *out_lo)
{
    double e_lo, e = sl_exp_dd(hi, &e_lo);
    return sl_dd_add(e, e_lo, e * lo, 0.0, out_lo);
}

/* log(hi + lo) for hi > 0, |lo| <= ulp(hi): log(hi) + lo/hi. */
SL_INLINE double focal_log_dd(double hi, double lo, double *out_lo)
{
    double l_lo, l = sl_log_dd(hi, &l_lo);
    return sl_dd_add(l, l_lo, lo / hi, 0.0, out_lo);
}

/* log(num) = log(t + (1 - t) e) for a tiny num (t < FOCAL_TINY, x < 0, e = e^-|x|): log-add-exp of
 * log t and log((1 - t) e) = -|x| - t (log(1 - t) = -t to t^2/2, far below ulp).  The largest of the two
 * plus log1p(exp(smaller - largest)). */
SL_INLINE double focal_log_tiny(double t, double ax, double *lo)
{
    double lt_lo, lt = sl_log_dd(t, &lt_lo);
    if (ax == INFINITY) { /* (1 - t) e = 0 */
        *lo = lt_lo;
        return lt;
    }
    double lb_lo, lb = sl_two_sum(-ax, -t, &lb_lo);
    int first = lt >= lb;
    double m = first ? lt : lb, m_lo = first ? lt_lo : lb_lo;
    double d_lo, d = sl_dd_add(first ? lb : lt, first ? lb_lo : lt_lo, -m, -m_lo, &d_lo); /* <= 0 */
    double w_lo, w = focal_exp_dd(d, d_lo, &w_lo);
    double s_lo, s = focal_log1p_dd(w, w_lo, &s_lo);
    return sl_dd_add(m, m_lo, s, s_lo, lo);
}

/* q^gamma = exp(gamma log q) for log q = l + l_lo <= 0 (-inf: q = 0), as (hi + *lo) 2^-*k: below e^-600
 * the exponent is shifted by k ln 2 (k <= 2040), so that q^gamma keeps its relative accuracy where it is
 * subnormal or underflows while ce q^gamma (ce up to 1.8e308) does not; beyond the shift, q^gamma times
 * anything finite is 0. */
SL_INLINE double focal_power(double l, double l_lo, double gamma, double *lo, double *k)
{
    *lo = 0.0;
    *k = 0.0;
    if (gamma == 0.0)
        return 1.0; /* 0^0 = 1 */
    double u_lo, u = l > -INFINITY ? sl_dd_mul(l, l_lo, gamma, 0.0, &u_lo) : -INFINITY;
    if (!(u > -INFINITY)) /* q = 0, or gamma log q beyond the range (NaN once the product overflowed) */
        return 0.0;
    if (u < -600.0)
        *k = fmin(floor((-u - 300.0) * SL_LOG2E + 0.5), 2040.0);
    double k_lo, k_hi = sl_k_ln2_dd(*k, &k_lo);
    double s_lo, s = sl_dd_add(u, u_lo, k_hi, k_lo, &s_lo); /* gamma log q + k ln 2 */
    if (s < -745.0) {
        *k = 0.0;
        return 0.0;
    }
    return focal_exp_dd(fmin(s, 0.0), s_lo, lo);
}

/* Loss and gradient (times grad_scale) of one element in double-double, each rounded once. */
SL_INLINE double focal_eval_dd(double x, double t, double alpha, double gamma, double grad_scale, double *grad)
{
    if (x != x || t != t) {
        *grad = NAN;
        return NAN;
    }
    int pos = x >= 0.0;
    double ax = fabs(x);
    double e_lo, e = sl_exp_dd(-ax, &e_lo); /* e = e^-|x|, 0 at |x| = inf */
    double l1_lo, l1 = focal_log1p_dd(e, e_lo, &l1_lo);
    double ot_lo, ot = sl_two_sum(1.0, -t, &ot_lo); /* 1 - t, exact */
    /* ce = log1p(e) + (1 - t) max(x, 0) + t max(-x, 0); at x = +-inf the limit (0 where the factor is 0) */
    double ce_lo = 0.0, ce = (pos ? ot : t) > 0.0 ? INFINITY : 0.0;
    if (ax < INFINITY) {
        double s_lo, s = pos ? sl_dd_mul(ot, ot_lo, ax, 0.0, &s_lo) : sl_two_prod(t, ax, &s_lo);
        ce = sl_dd_add(l1, l1_lo, s, s_lo, &ce_lo);
    }
    /* num = t B + (1 - t) A = (1 - p_t)(1 + e), both terms >= 0 */
    double a_hi = pos ? 1.0 : e, a_lo = pos ? 0.0 : e_lo, b_hi = pos ? e : 1.0, b_lo = pos ? e_lo : 0.0;
    double tb_lo, tb = sl_dd_mul(t, 0.0, b_hi, b_lo, &tb_lo);
    double oa_lo, oa = sl_dd_mul(ot, ot_lo, a_hi, a_lo, &oa_lo);
    double num_lo, num = sl_dd_add(tb, tb_lo, oa, oa_lo, &num_lo);
    int hard = t == 0.0 || t == 1.0, on_e = pos ? t == 1.0 : t == 0.0; /* on_e: num = e exactly */
    int tiny = !hard && num < FOCAL_TINY;
    double ln_lo = 0.0, ln = hard ? (on_e ? -ax : 0.0) : tiny ? focal_log_tiny(t, ax, &ln_lo)
                                                              : focal_log_dd(num, num_lo, &ln_lo);
    double lq_lo = 0.0, lq = -INFINITY; /* log q = log num - log1p(e) */
    if (ln > -INFINITY)
        lq = sl_dd_add(ln, ln_lo, -l1, -l1_lo, &lq_lo);
    double q_lo, k, q = focal_power(lq, lq_lo, gamma, &q_lo, &k);
    double w_lo = 0.0, w = 1.0; /* a_t = alpha t + (1 - alpha)(1 - t), terms >= 0 */
    if (alpha >= 0.0) {
        double p_lo, p = sl_two_prod(alpha, t, &p_lo);
        double c_lo, c = sl_two_sum(1.0, -alpha, &c_lo);
        double r_lo, r = sl_dd_mul(c, c_lo, ot, ot_lo, &r_lo);
        w = sl_dd_add(p, p_lo, r, r_lo, &w_lo);
    }
    double value = w == 0.0 ? 0.0 : INFINITY; /* ce = +inf: q^gamma > 0 there */
    if (ce < INFINITY) {
        double p_lo, p = sl_dd_mul(ce, ce_lo, q, q_lo, &p_lo);
        p = sl_dd_mul(w, w_lo, p, p_lo, &p_lo);
        value = ldexp(p + p_lo, -(int)k);
    }
    /* r = e/num (1 where num = e; 0 where e = 0, x = +-inf) */
    double r_lo = 0.0, r = 1.0;
    if (!on_e) {
        if (e == 0.0)
            r = 0.0;
        else if (!tiny)
            r = sl_dd_div(e, e_lo, num, num_lo, &r_lo);
        else { /* e/num = exp(-|x| - log num) <= 1 (to t) */
            double arg_lo, arg = sl_dd_add(-ax, 0.0, -ln, -ln_lo, &arg_lo);
            r = focal_exp_dd(fmin(arg, 0.0), arg_lo, &r_lo);
        }
    }
    double th_lo = 0.0, th = 0.0; /* gamma ce (1 - 2t) r, 0 where r = 0 (the limit; ce finite elsewhere) */
    if (gamma != 0.0 && r != 0.0) {
        double f_lo, f = sl_two_sum(1.0, -2.0 * t, &f_lo); /* 1 - 2t, exact */
        double c_lo, c = sl_dd_mul(ce, ce_lo, r, r_lo, &c_lo);
        c = sl_dd_mul(c, c_lo, f, f_lo, &c_lo);
        th = sl_dd_mul(c, c_lo, gamma, 0.0, &th_lo);
    }
    double n_lo, n = sl_dd_add(oa, oa_lo, -tb, -tb_lo, &n_lo); /* (1 - t) A - t B */
    n = sl_dd_add(n, n_lo, th, th_lo, &n_lo);
    double den_lo, den = sl_dd_add(1.0, 0.0, e, e_lo, &den_lo);
    double d_lo, d = sl_dd_div(n, n_lo, den, den_lo, &d_lo);
    double g_lo, g = sl_dd_mul(w, w_lo, q, q_lo, &g_lo);
    g = sl_dd_mul(g, g_lo, d, d_lo, &g_lo);
    g = sl_dd_mul(g, g_lo, grad_scale, 0.0, &g_lo);
    *grad = q == 0.0 ? 0.0 : ldexp(g + g_lo, -(int)k); /* q = 0: also where gamma ce r overflowed */
    return value;
}

/* ------------------------------------------------------------------------------------------------
 * float32: the same formulas in double, cheap grade */

/* Loss and unscaled gradient of one element; *slow: a soft-label gradient whose terms cancel. */
SL_INLINE double focal_eval(double x, double t, double alpha, double gamma, double *grad, int *slow)
{
    int pos = x >= 0.0;
    double e, l1 = sl_softplus_tail(x, &e, 1); /* e = e^-|x|, log1p(e) */
    double ot = 1.0 - t;
    double xp = x > 0.0 ? x : 0.0, xm = x < 0.0 ? -x : 0.0;
    double ce = l1 + (ot == 0.0 ? 0.0 : ot * xp) + (t == 0.0 ? 0.0 : t * xm); /* label factor 0: term 0 */
    double big_a = pos ? 1.0 : e, big_b = pos ? e : 1.0;
    double num = t * big_b + ot * big_a; /* (1 - p_t)(1 + e) */
    double ln = t == 1.0 ? -xp : t == 0.0 ? -xm : sl_log(num, 1); /* log num: exact for hard labels */
    double q = gamma == 0.0 ? 1.0 : sl_exp(gamma * (ln - l1), 1);  /* q^gamma = exp(gamma log q) */
    double w = alpha >= 0.0 ? alpha * t + (1.0 - alpha) * ot : 1.0;
    double p = ce == INFINITY ? INFINITY : ce * q; /* ce = +inf: q^gamma > 0 there */
    int on_e = pos ? t == 1.0 : t == 0.0;
    double r = on_e ? 1.0 : e / num;
    double third = gamma == 0.0 || r == 0.0 ? 0.0 : gamma * ce * (1.0 - 2.0 * t) * r;
    double pos_term = ot * big_a, neg_term = t * big_b; /* sigma(x) - t = (pos_term - neg_term)/(1 + e) */
    double n = (pos_term - neg_term) + third;
    *grad = w * q * (n / (1.0 + e));
    *slow = t > 0.0 && t < 1.0 && fabs(n) < FOCAL_SOFT_LABEL_CANCEL * fmax(fmax(pos_term, neg_term), fabs(third));
    return w == 0.0 && p == INFINITY ? 0.0 : w * p;
}

/* ------------------------------------------------------------------------------------------------
 * float64: the formulas of focal_eval_dd with the fast double-double forms sl_exp_hilo and sl_log_hilo
 * (~2^-57), without its special cases */

/* Loss and gradient (times grad_scale) of a float64 element; *inside = 0 (then focal_eval_dd) for NaN, |x|
 * or -gamma log q beyond FOCAL_FAST64_RANGE, and where the terms of a soft-label gradient cancel (when
 * want_grad). */
SL_INLINE double focal_eval64(double x, double t, double alpha, double gamma, double grad_scale, int want_grad,
                              double *grad, int *inside)
{
    int pos = x >= 0.0;
    double ax = fabs(x);
    *inside = ax <= FOCAL_FAST64_RANGE && t == t;
    if (!*inside)
        return 0.0;
    double e_lo, e = sl_exp_hilo(-ax, 0.0, &e_lo);
    double u_lo, u = sl_two_sum(1.0, e, &u_lo); /* 1 + e */
    u_lo += e_lo;
    double w1 = u_lo / u;
    double l1_lo, l1 = sl_log_hilo(u, &l1_lo);
    l1 = sl_two_sum(l1, l1_lo + (w1 - 0.5 * w1 * w1), &l1_lo); /* log1p(e) = log(u) + log1p(u_lo/u) */
    double ot_lo, ot = sl_two_sum(1.0, -t, &ot_lo);
    double s_lo, s = pos ? sl_dd_mul(ot, ot_lo, ax, 0.0, &s_lo) : sl_two_prod(t, ax, &s_lo);
    double ce_lo, ce = sl_dd_add(l1, l1_lo, s, s_lo, &ce_lo);
    double a_hi = pos ? 1.0 : e, a_lo = pos ? 0.0 : e_lo, b_hi = pos ? e : 1.0, b_lo = pos ? e_lo : 0.0;
    double tb_lo, tb = sl_dd_mul(t, 0.0, b_hi, b_lo, &tb_lo);
    double oa_lo, oa = sl_dd_mul(ot, ot_lo, a_hi, a_lo, &oa_lo);
    double num_lo, num = sl_dd_add(tb, tb_lo, oa, oa_lo, &num_lo);
    int hard = t == 0.0 || t == 1.0, on_e = pos ? t == 1.0 : t == 0.0;
    double ln_lo = 0.0, ln = on_e ? -ax : 0.0;
    if (!hard) {
        ln = sl_log_hilo(num, &ln_lo);
        ln = sl_two_sum(ln, ln_lo + num_lo / num, &ln_lo);
    }
    double lq_lo, lq = sl_dd_add(ln, ln_lo, -l1, -l1_lo, &lq_lo);
    double q_lo = 0.0, q = 1.0;
    if (gamma != 0.0) {
        double v_lo, v = sl_dd_mul(lq, lq_lo, gamma, 0.0, &v_lo);
        if (!(v >= -FOCAL_FAST64_RANGE)) {
            *inside = 0;
            return 0.0;
        }
        q = sl_exp_hilo(v, v_lo, &q_lo);
    }
    double w_lo = 0.0, w = 1.0;
    if (alpha >= 0.0) {
        double p_lo, p = sl_two_prod(alpha, t, &p_lo);
        double c_lo, c = sl_two_sum(1.0, -alpha, &c_lo);
        c = sl_dd_mul(c, c_lo, ot, ot_lo, &c_lo);
        w = sl_dd_add(p, p_lo, c, c_lo, &w_lo);
    }
    double v_lo, v = sl_dd_mul(ce, ce_lo, q, q_lo, &v_lo);
    v = sl_dd_mul(w, w_lo, v, v_lo, &v_lo);
    double r_lo = 0.0, r = on_e ? 1.0 : sl_dd_div(e, e_lo, num, num_lo, &r_lo);
    double f_lo, f = sl_two_sum(1.0, -2.0 * t, &f_lo);
    double th_lo, th = sl_dd_mul(ce, ce_lo, r, r_lo, &th_lo);
    th = sl_dd_mul(th, th_lo, f, f_lo, &th_lo);
    th = sl_dd_mul(th, th_lo, gamma, 0.0, &th_lo);
    double n_lo, n = sl_dd_add(oa, oa_lo, -tb, -tb_lo, &n_lo);
    n = sl_dd_add(n, n_lo, th, th_lo, &n_lo);
    double d_lo, d = sl_dd_div(n, n_lo, u, u_lo, &d_lo);
    double g_lo, g = sl_dd_mul(w, w_lo, q, q_lo, &g_lo);
    g = sl_dd_mul(g, g_lo, d, d_lo, &g_lo);
    g = sl_dd_mul(g, g_lo, grad_scale, 0.0, &g_lo);
    *grad = g + g_lo;
    if (want_grad && !hard && fabs(n) < FOCAL_FAST64_CANCEL * fmax(fmax(oa, tb), fabs(th)))
        *inside = 0;
    return v + v_lo;
}

SL_INLINE double focal_row(const void *args, int64_t i, int f32)
{
    const focal_args *a = (const focal_args *)args;
    double x = sl_load(a->inputs, i, f32), t = sl_load(a->targets, i, f32), g, value;
    int slow = 1;
    if (!f32) {
        int inside;
        value = focal_eval64(x, t, a->alpha, a->gamma, a->grad_scale, a->grad != NULL, &g, &inside);
        slow = !inside;
    } else if (a->gamma <= FOCAL_F32_GAMMA_MAX) {
        value = focal_eval(x, t, a->alpha, a->gamma, &g, &slow);
        g *= a->grad_scale;
        slow = slow && a->grad;
    }
    if (slow)
        value = focal_eval_dd(x, t, a->alpha, a->gamma, a->grad_scale, &g);
    if (a->loss)
        sl_store(a->loss, i, value, f32);
    if (a->grad)
        sl_store(a->grad, i, g, f32);
    return value;
}

SL_INLINE void focal_scalar(const focal_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, focal_row, f32);
}

#if SL_X86
/* The lanes in `mask` (cancelling soft-label gradients) from the double-double path. */
SL_VEC SL_OUTLINE void focal_slow_lanes(const focal_args *a, sl_vd x, sl_vd t, int mask, sl_vd *value, sl_vd *g)
{
    double xs[SL_L], ts[SL_L], vs[SL_L], gs[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ts, t);
    sl_vstoreu(vs, *value);
    sl_vstoreu(gs, *g);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            vs[l] = focal_eval_dd(xs[l], ts[l], a->alpha, a->gamma, a->grad_scale, &gs[l]);
    *value = sl_vloadu(vs);
    *g = sl_vloadu(gs);
}

/* float32 lanes: focal_eval on SL_L elements. */
SL_VEC SL_INLINE sl_vd focal_lanes(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const focal_args *a = (const focal_args *)args;
    sl_vd zero = sl_vzero(), one = SL_V(1.0), inf = SL_V(INFINITY);
    sl_vd x = sl_load_v(a->inputs, i, tail, f32), t = sl_load_v(a->targets, i, tail, f32);
    sl_vd e, l1 = sl_softplus_tail_v(x, &e, 1);
    sl_vm pos = sl_vcmp(x, zero, _CMP_GE_OQ), neg = sl_vcmp(x, zero, _CMP_LT_OQ);
    sl_vm t0 = sl_vcmp(t, zero, _CMP_EQ_OQ), t1 = sl_vcmp(t, one, _CMP_EQ_OQ);
    sl_vd ot = sl_vsub(one, t);
    sl_vd xp = sl_vmax(zero, x), xm = sl_vmax(zero, sl_vsub(zero, x)); /* NaN stays NaN (second operand) */
    sl_vd ce = sl_vadd(sl_vadd(l1, sl_vdrop(t1, sl_vmul(ot, xp))), sl_vdrop(t0, sl_vmul(t, xm)));
    sl_vd big_a = sl_vselect(pos, one, e), big_b = sl_vselect(pos, e, one);
    sl_vd pos_term = sl_vmul(ot, big_a), neg_term = sl_vmul(t, big_b);
    sl_vd num = sl_vadd(neg_term, pos_term);
    sl_vm hard = sl_vm_or(t0, t1);
    /* as focal_eval: log num exact for hard labels (their num, e or 1, replaced by 1 in the log) */
    sl_vd ln = sl_log_v(sl_vselect(hard, one, num), 1);
    ln = sl_vselect(t1, sl_vsub(zero, xp), sl_vselect(t0, sl_vsub(zero, xm), ln));
    sl_vd q = a->gamma == 0.0 ? one : sl_exp_v(sl_vmul(SL_V(a->gamma), sl_vsub(ln, l1)), 1);
    sl_vd w = one;
    if (a->alpha >= 0.0)
        w = sl_vadd(sl_vmul(SL_V(a->alpha), t), sl_vmul(SL_V(1.0 - a->alpha), ot));
    sl_vd p = sl_vselect(sl_vcmp(ce, inf, _CMP_EQ_OQ), inf, sl_vmul(ce, q));
    sl_vd value = sl_vselect(sl_vm_and(sl_vcmp(w, zero, _CMP_EQ_OQ), sl_vcmp(p, inf, _CMP_EQ_OQ)), zero, sl_vmul(w, p));
    if (a->grad) {
        sl_vm on_e = sl_vm_or(sl_vm_and(pos, t1), sl_vm_and(neg, t0));
        sl_vd r = sl_vselect(on_e, one, sl_vdiv(e, num));
        sl_vd third = zero;
        if (a->gamma != 0.0)
            third = sl_vdrop(sl_vcmp(r, zero, _CMP_EQ_OQ),
                             sl_vmul(sl_vmul(SL_V(a->gamma), ce), sl_vmul(sl_vfnma(SL_V(2.0), t, one), r)));
        sl_vd n = sl_vadd(sl_vsub(pos_term, neg_term), third);
        sl_vd g = sl_vmul(sl_vmul(sl_vmul(w, q), sl_vdiv(n, sl_vadd(one, e))), SL_V(a->grad_scale));
        /* soft labels whose gradient terms cancel: the double-double path */
        sl_vm slow = sl_vm_and(sl_vcmp(t, zero, _CMP_GT_OQ), sl_vcmp(t, one, _CMP_LT_OQ));
        sl_vd largest = sl_vmax(sl_vmax(pos_term, neg_term), sl_abs_v(third));
        slow = sl_vm_and(slow, sl_vcmp(sl_abs_v(n), sl_vmul(SL_V(FOCAL_SOFT_LABEL_CANCEL), largest), _CMP_LT_OQ));
        int mask = sl_vm_bits(slow) & sl_tail_bits(tail);
        if (__builtin_expect(mask != 0, 0))
            focal_slow_lanes(a, x, t, mask, &value, &g);
        sl_store_v(a->grad, i, g, tail, f32);
    }
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, f32);
    return value;
}

/* float64 lanes: focal_eval64 on SL_L elements. */
SL_VEC SL_INLINE sl_vd focal_lanes64(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const focal_args *a = (const focal_args *)args;
    sl_vd zero = sl_vzero(), one = SL_V(1.0), range = SL_V(FOCAL_FAST64_RANGE);
    sl_vd x = sl_load_v(a->inputs, i, tail, 0), t = sl_load_v(a->targets, i, tail, 0);
    sl_vd ax = sl_abs_v(x);
    sl_vm inside = sl_vm_and(sl_vcmp(ax, range, _CMP_LE_OQ), sl_vcmp(t, t, _CMP_EQ_OQ)); /* false for NaN, inf */
    ax = sl_vmin(ax, range);
    sl_vm pos = sl_vcmp(x, zero, _CMP_GE_OQ), neg = sl_vcmp(x, zero, _CMP_LT_OQ);
    sl_vm t0 = sl_vcmp(t, zero, _CMP_EQ_OQ), t1 = sl_vcmp(t, one, _CMP_EQ_OQ), hard = sl_vm_or(t0, t1);
    sl_vm on_e = sl_vm_or(sl_vm_and(pos, t1), sl_vm_and(neg, t0));
    sl_vd e_lo, e = sl_exp_hilo_v(sl_vsub(zero, ax), zero, &e_lo);
    sl_vd u_lo, u = sl_two_sum_v(one, e, &u_lo);
    u_lo = sl_vadd(u_lo, e_lo);
    sl_vd w1 = sl_vdiv(u_lo, u);
    sl_vd l1_lo, l1 = sl_log_hilo_v(u, &l1_lo);
    l1 = sl_two_sum_v(l1, sl_vadd(l1_lo, sl_vfnma(SL_V(0.5), sl_vmul(w1, w1), w1)), &l1_lo);
    sl_vd ot_lo, ot = sl_two_sum_v(one, sl_vsub(zero, t), &ot_lo);
    sl_vd sp_lo, sp = sl_dd_mul_v(ot, ot_lo, ax, zero, &sp_lo);
    sl_vd sn_lo, sn = sl_two_prod_v(t, ax, &sn_lo);
    sl_vd ce_lo, ce = sl_dd_add_v(l1, l1_lo, sl_vselect(pos, sp, sn), sl_vselect(pos, sp_lo, sn_lo), &ce_lo);
    sl_vd a_hi = sl_vselect(pos, one, e), a_lo = sl_vkeep(neg, e_lo);
    sl_vd b_hi = sl_vselect(pos, e, one), b_lo = sl_vkeep(pos, e_lo);
    sl_vd tb_lo, tb = sl_dd_mul_v(t, zero, b_hi, b_lo, &tb_lo);
    sl_vd oa_lo, oa = sl_dd_mul_v(ot, ot_lo, a_hi, a_lo, &oa_lo);
    sl_vd num_lo, num = sl_dd_add_v(tb, tb_lo, oa, oa_lo, &num_lo);
    sl_vd ln_lo, ln = sl_log_hilo_v(sl_vselect(hard, one, num), &ln_lo);
    ln = sl_two_sum_v(ln, sl_vadd(ln_lo, sl_vdrop(hard, sl_vdiv(num_lo, num))), &ln_lo);
    ln = sl_vselect(hard, sl_vkeep(on_e, sl_vsub(zero, ax)), ln);
    ln_lo = sl_vdrop(hard, ln_lo);
    sl_vd lq_lo, lq = sl_dd_add_v(ln, ln_lo, sl_vsub(zero, l1), sl_vsub(zero, l1_lo), &lq_lo);
    sl_vd q = one, q_lo = zero, g_scale = SL_V(a->gamma);
    if (a->gamma != 0.0) {
        sl_vd v_lo, v = sl_dd_mul_v(lq, lq_lo, g_scale, zero, &v_lo);
        inside = sl_vm_and(inside, sl_vcmp(v, sl_vsub(zero, range), _CMP_GE_OQ));
        q = sl_exp_hilo_v(sl_vmax(v, sl_vsub(zero, range)), v_lo, &q_lo);
    }
    sl_vd w = one, w_lo = zero;
    if (a->alpha >= 0.0) {
        double c_lo, c = sl_two_sum(1.0, -a->alpha, &c_lo);
        sl_vd p_lo, p = sl_two_prod_v(SL_V(a->alpha), t, &p_lo);
        sl_vd r_lo, r = sl_dd_mul_v(SL_V(c), SL_V(c_lo), ot, ot_lo, &r_lo);
        w = sl_dd_add_v(p, p_lo, r, r_lo, &w_lo);
    }
    sl_vd v_lo, v = sl_dd_mul_v(ce, ce_lo, q, q_lo, &v_lo);
    v = sl_dd_mul_v(w, w_lo, v, v_lo, &v_lo);
    sl_vd value = sl_vadd(v, v_lo), g = zero;
    if (a->grad) {
        sl_vd r_lo, r = sl_dd_div_v(e, e_lo, num, num_lo, &r_lo);
        r = sl_vselect(on_e, one, r);
        r_lo = sl_vdrop(on_e, r_lo);
        sl_vd f_lo, f = sl_two_sum_v(one, sl_vmul(SL_V(-2.0), t), &f_lo);
        sl_vd th_lo, th = sl_dd_mul_v(ce, ce_lo, r, r_lo, &th_lo);
        th = sl_dd_mul_v(th, th_lo, f, f_lo, &th_lo);
        th = sl_dd_mul_v(th, th_lo, g_scale, zero, &th_lo);
        sl_vd n_lo, n = sl_dd_add_v(oa, oa_lo, sl_vsub(zero, tb), sl_vsub(zero, tb_lo), &n_lo);
        n = sl_dd_add_v(n, n_lo, th, th_lo, &n_lo);
        sl_vd d_lo, d = sl_dd_div_v(n, n_lo, u, u_lo, &d_lo);
        sl_vd gl, gh = sl_dd_mul_v(w, w_lo, q, q_lo, &gl);
        gh = sl_dd_mul_v(gh, gl, d, d_lo, &gl);
        gh = sl_dd_mul_v(gh, gl, SL_V(a->grad_scale), zero, &gl);
        g = sl_vadd(gh, gl);
        /* soft labels whose gradient terms cancel: the double-double path */
        sl_vd largest = sl_vmax(sl_vmax(oa, tb), sl_abs_v(th));
        sl_vm cancel = sl_vcmp(sl_abs_v(n), sl_vmul(SL_V(FOCAL_FAST64_CANCEL), largest), _CMP_LT_OQ);
        inside = sl_vm_andnot(sl_vm_andnot(hard, cancel), inside);
    }
    int mask = (sl_vm_bits(inside) ^ SL_LANES_ALL) & sl_tail_bits(tail);
    if (__builtin_expect(mask != 0, 0))
        focal_slow_lanes(a, x, t, mask, &value, &g);
    if (a->grad)
        sl_store_v(a->grad, i, g, tail, 0);
    if (a->loss)
        sl_store_v(a->loss, i, value, tail, 0);
    return value;
}

/* float32 in float32 lanes (all in double-double beyond FOCAL_F32_GAMMA_MAX), float64 in float64 lanes. */
SL_VEC SL_INLINE void focal_vec(const focal_args *a, int f32)
{
    if (!f32)
        sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, focal_lanes64, 0);
    else if (a->gamma <= FOCAL_F32_GAMMA_MAX)
        sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, focal_lanes, 1);
    else
        sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, focal_row, 1);
}
#endif

SL_KERNEL(focal, focal_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

void sl_focal_f32(const float *inputs, const float *targets, int64_t n_rows, double alpha, double gamma,
                  double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums)
{
    const focal_args a = {inputs, targets, n_rows, alpha, gamma, grad_scale, rows_per_block, loss, grad, block_sums};
    focal_run(&a, 1);
}

void sl_focal_f64(const double *inputs, const double *targets, int64_t n_rows, double alpha, double gamma,
                  double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums)
{
    const focal_args a = {inputs, targets, n_rows, alpha, gamma, grad_scale, rows_per_block, loss, grad, block_sums};
    focal_run(&a, 0);
}
#endif
