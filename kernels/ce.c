/*
 * ce.c -- cross-entropy of logit rows with class-index or class-probability targets, loss and
 * gradient from one call (sl_ce_f32, sl_ce_f64; contract in stableloss.h).
 *
 * Method.  Per row (sl_softmax.h): a range pass (max a, min, NaN; the row was prefetched into L2 during
 * the previous row), a search for the first index k of the max, the exponential pass s =
 * sum_{j != k} e^{z_j}, z_j = x_j - a (plus, with label smoothing or probability targets, the sums of
 * the per-class coefficients c_j and of c_j (-z_j)), which stores e^{z_j} in a scratch row when a
 * gradient is wanted, and the gradient written once from those: two full reads of the logits and one
 * write of the gradient per row.  Float32 rows with coefficients use the full precision grade: their
 * gradient terms can cancel; without, every output is a sum or quotient of non-negative terms, so
 * the short exp of SL_CHEAP_SUM (sl_math.h, relative 3.1e-9) reaches it unamplified.  With
 * L_j = -log p_j = log1p(s) - z_j:
 *   index target y:   loss = (1 - eps) w_y L_y + (sum_j c_j) log1p(s) + sum_j c_j (-z_j),  c_j = (eps/C) w_j
 *   probabilities t:  loss = (sum_j c_j) log1p(s) + sum_j c_j (-z_j),  c_j = w_j ((1 - eps) t_j + eps/C)
 * every term >= 0 (for non-negative weights and targets): no cancellation however small the loss; the
 * coefficients are scaled before they are summed, so no sum overflows that the loss does not.
 *   gradient: g_j = (K e^{z_j} - b_j) grad_scale with K = (coefficient sum)/S, the difference rounded
 *   once (FMA) before the scaling (without coefficients: grad_scale K e^{z_j}); at the target the
 *   (1 - eps) w_y (p_y - 1) term is written as -s/S when y holds the max, never as p_y - 1, and with
 *   coefficients the argmax gets (sum_{j != k} b_j - b_k s)/S, never (sum_j b_j) p_k - b_k (b_j: c_j, plus
 *   (1 - eps) w_y at y).
 *
 * Rows of at most CE_NARROW classes (index targets, no smoothing, no softcap, z-loss or lse output) take
 * the vector passes a vector of rows at a time, one row per lane (ce_lanes_vec): the same formulas, the
 * sums over j in order per row.
 *
 * Softcap c: the passes read x'_j = c tanh(x_j/c) (sl_softmax.h): float32 rows up to CE_SOFTCAP_DIRECT_F32
 * in double, in the vector passes, their derivatives 1 - tanh^2 stored beside the e_j for the gradient
 * pass; float64 rows (and larger caps) as double-doubles (sl_softcap_dd) in the scalar passes, recomputed
 * in the gradient pass.  z-loss z: the row adds w_y z lse^2 (rho = 1 for probabilities) and A its
 * 2 z w_y lse, lse = a + a_lo + log1p(s) carried as a double-double; a plain index row's gradient is
 * grad_scale w_y f p_j with f = 1 + 2 z lse (the factor rounded once from double-doubles), at the target
 * w_y (2 z lse - s)/S or w_y (e_y f - S)/S as double-double differences (ce_zloss_at_y).  Rows with a
 * z-loss or an lse output use the cheap grade, not SL_CHEAP_SUM (CE_SUM_ERR_F32 bounds its sums).  Where
 * one of those differences, or the lse a + log1p(s), cancels beyond CE_EXACT (ce_inexact), the row's s
 * and log1p(s) are recomputed from double-double exponentials (ce_exact): rare rows, a slow pass.
 *
 * Special cases (as PyTorch unless noted).  A NaN anywhere in a row: NaN loss and NaN gradient row.
 * +inf logit or an all -inf row: NaN.  Target logit -inf (finite max): +inf loss, gradient finite.
 * A -inf logit whose coefficient c_j is 0 (a masked class without target mass) adds 0 to the loss
 * (PyTorch: NaN from 0 * inf).  With a softcap +-inf logits are +-c (torch's value), gradient 0.
 * Rows whose target is ignore_index: loss 0, gradient row 0, no logit read (but with an lse output,
 * whose value they get).  n_classes == 0: loss 0, lse -inf.  The lse of a row with no finite max: as
 * sl_lse (its infinite max, or NaN).
 *
 * Accuracy, worst measured against mpmath (the test families and our own adversarial rows: confident
 * rows with losses down to 1e-300, C = 8192 with one peak in a flat row, logits near the dtype max,
 * +-inf and NaN, C = 1..17 around the lanes), every SIMD level alike: float32 loss 0.51 ulp, gradient
 * 0.56 ulp (0.5 for both with smoothing or probability targets); float64 loss 1.7 ulp, gradient 1.9
 * ulp, and 3.6 ulp of the larger term where the gradient is a difference of two (label smoothing,
 * probability targets).  With a softcap, a z-loss or the lse output (the softcap_*, z_loss_* families:
 * caps from 1 to 3e6 and +-inf logits, confident capped rows with losses down to 1e-300, z-loss rows
 * whose f, 2 z lse - s or p_y f - 1 cancel to 2^-24 (float32) / 2^-40 (float64)): float32 0.5 ulp for
 * all three outputs; float64 loss 1.8 ulp, gradient 2.4 ulp (2.1 ulp of the larger term with
 * smoothing or probability targets), lse 0.7 ulp.  Measured the other way: float64 capped logits
 * rounded to double (no double-double) cost 225 ulp of the loss and 280 ulp of the gradient at
 * c = 350.  Budget: 4 ulp.
 */
#include <stdlib.h>
#include <string.h>

#include "sl_kernel.h"
#include "sl_softmax.h"

/* Rows of at most this many classes go one per lane (ce_lanes_vec): faster than a row at a time
 * up to C = 32, slower from 64 on (measured; the figures are in the commit that added it). */
#define CE_NARROW 32
/* ... up to this many rows at once: the lanes of the widest vectors (AVX-512) */
#define CE_NARROW_ROWS 8
/* Float32 rows of at most this many classes keep their e_j for the gradient pass in a scratch row (8
 * bytes a class, 8 MiB at most): reusing them beats recomputing them by a third; wider rows recompute
 * them, so that a call's memory beyond its outputs stays bounded (and a fresh scratch of hundreds of
 * MiB would cost more in page faults than the recomputation; the figures are in the commit that set
 * it).  Float64 rows keep them in the gradient row itself, whatever their width, as fast as scratch. */
#ifndef CE_SCRATCH_CLASSES
#define CE_SCRATCH_CLASSES 1048576
#endif

/* The float32 rows with a softcap of at most this compute the capped logits in double (sl_softcap):
 * their error, a few ulps of c, keeps each exp(x'_j - x'_max) within 2^-30; larger caps, and float64,
 * in double-double (sl_softcap_dd). */
#define CE_SOFTCAP_DIRECT_F32 0x1p20
/* the relative error of that double cap */
#define CE_CAP_ERR 0x1p-50
/* the |x/c| where sl_softcap_dd changes formulas */
#define CE_CAP_SPLIT 1.0
/* Bounds on the relative error of s and of log1p(s) in the rows with a z-loss or a log-sum-exp output:
 * the cheap grade (float32, 3.9e-12) and the full grade (float64, 0.8 ulp). */
#define CE_SUM_ERR_F32 0x1p-36
#define CE_SUM_ERR_F64 0x1p-52
/* Where a difference of those (the lse a + log1p(s) with a < 0, f = 1 + 2 z lse, the target's gradient
 * p_y f - 1) may carry more than this relative error, the row's sums are recomputed from double-double
 * exponentials (ce_exact): far below a float32 ulp; 3 2^-53, which leaves 4 ulp for float64. */
#define CE_EXACT_F32 0x1p-30
#define CE_EXACT_F64 0x1.8p-52

typedef struct {
    const void *input;
    const int64_t *target;
    const void *target_prob, *weight;
    int64_t n_rows, n_classes, ignore_index;
    double label_smoothing, z_loss, softcap, grad_scale;
    int64_t rows_per_block;
    void *loss, *grad, *lse;
    double *block_sums;
    double *exps; /* scratch row(s) of e_j for the gradient pass (then, capped, the cap's derivatives), or NULL
                   * (ce_call) */
} ce_args;

/* The softcap of a row's logits (sl_cap): the double cap for float32 rows up to CE_SOFTCAP_DIRECT_F32,
 * else the double-double one. */
SL_INLINE sl_cap ce_cap(const ce_args *a, int f32)
{
    sl_cap cap = {a->softcap, a->softcap != 0.0 ? 1.0 / a->softcap : 0.0, CE_CAP_SPLIT,
                  !f32 || a->softcap > CE_SOFTCAP_DIRECT_F32, NULL};
    return cap;
}

/* Where the scan of a row with gradient row g keeps its e_j for the gradient pass: the scratch row;
 * else, for float64, g itself (each g_j overwrites its e_j once read); else nowhere (NULL: the
 * gradient pass recomputes them, the same function of the same z_j, so the same values).  Rows with the
 * double-double cap recompute them. */
SL_INLINE double *ce_exps(const ce_args *a, void *g, int f32, const sl_cap *cap)
{
    if (cap && cap->dd)
        return NULL;
    return a->exps ? a->exps : g && !f32 && !cap ? (double *)g : NULL;
}

/* The cap's derivative at class j: stored by the scan, or computed. */
SL_INLINE double ce_cap_derivative(const void *x, int64_t j, const sl_cap *cap, int f32)
{
    double lo, d;
    if (cap->d)
        return cap->d[j];
    sl_logit(sl_load(x, j, f32), cap, &lo, &d);
    return d;
}

/* sum_j c_j (log1p(s) - z_j) term by term, for rows whose sums are not finite: there the split into
 * (sum_j c_j) log1p(s) + sum_j c_j (-z_j) can turn an infinite coefficient times log1p(s) = 0 into
 * NaN, or two infinite sums into inf - inf, where the terms give exactly their inf or NaN. */
SL_INLINE double ce_loss_terms(const void *x, int64_t C, const sl_softmax *r, const sl_coefs *cf, const sl_cap *cap,
                               int f32)
{
    double total = 0.0;
    for (int64_t j = 0; j < C; j++) {
        double z_lo, d, z = sl_shifted(x, j, r->a, r->a_lo, cap, &z_lo, &d, f32, 0), c = sl_coef(cf, j, f32);
        if (!sl_masked_class(c, z))
            total += c * ((r->log_s - z) - z_lo);
    }
    return total;
}

/* The log-sum-exp a + a_lo + log1p(s) of a scanned row as hi + *lo. */
SL_INLINE double ce_lse_dd(const sl_softmax *r, double *lo)
{
    double hi = sl_two_sum(r->a, r->log_s, lo);
    *lo = isfinite(hi) ? *lo + (r->a_lo + r->log_s_lo) : 0.0;
    return hi;
}

/* The log-sum-exp output: a row without a finite max (s NaN, never capped but for a NaN) follows
 * logsumexp (lse.c): NaN, or its infinite max. */
SL_INLINE double ce_lse_out(const sl_softmax *r, const void *x, int64_t C, int f32)
{
    double lo, hi = ce_lse_dd(r, &lo);
    return isnan(r->s) ? sl_lse_nonfinite(x, C, f32) : hi + lo;
}

/* 2 z lse as hi + *lo (an exact product; the low part's in double). */
SL_INLINE double ce_zfactor(double z, double lse, double lse_lo, double *lo)
{
    double p = sl_two_prod(2.0 * z, lse, lo);
    *lo = isfinite(p) ? *lo + 2.0 * z * lse_lo : 0.0;
    return p;
}

/* Whether a difference of row r's sums cancels beyond CE_EXACT (its error bound, CE_SUM_ERR relative for
 * s and log1p(s) and CE_CAP_ERR for the double cap of the max, against its value): the lse output
 * a + log1p(s); with plain_z (a z-loss, an index target without smoothing, w_y != 0) f = 1 + 2 z lse, and
 * at the target p_y f - 1: (2 z lse - s)/S where it holds the max, else (e_y f - S)/S. */
SL_INLINE int ce_inexact(const ce_args *a, const sl_softmax *r, const sl_cap *cap, int plain_z, int at_max,
                         double e_y, int f32)
{
    double limit = f32 ? CE_EXACT_F32 : CE_EXACT_F64, sum_err = f32 ? CE_SUM_ERR_F32 : CE_SUM_ERR_F64;
    double lse_lo, lse = ce_lse_dd(r, &lse_lo);
    double err = sum_err * r->log_s + (cap && !cap->dd ? CE_CAP_ERR * fabs(r->a) : 0.0);
    if (a->lse && err > limit * fabs(lse))
        return 1;
    if (!plain_z)
        return 0;
    double zf_lo, zf = ce_zfactor(a->z_loss, lse, lse_lo, &zf_lo);
    double f = (1.0 + zf) + zf_lo, f_err = 2.0 * a->z_loss * err;
    if (f_err > limit * fabs(f))
        return 1;
    if (at_max)
        return sum_err * r->s + f_err > limit * fabs(zf - r->s);
    double p_y = e_y / (1.0 + r->s);
    return p_y * (sum_err * fabs(f) + f_err) > limit * fabs(p_y * f - 1.0);
}

/* s and log1p(s) of row x again, with its max (capped: sl_softcap_dd) and every e_j a double-double
 * (sl_exp_dd, e^(z + z_lo) = e^z (1 + z_lo)): s to ~2^-100, log1p(s) = log(S) + log1p(S_lo/S) with
 * S + S_lo = 1 + s; r->a_lo carries the double-double max against the scan's (different for the double
 * cap only).  y >= 0: e_y[0] + e_y[1] = e^{z_y}.  Rare: cancelling rows only (ce_inexact). */
SL_OUTLINE void ce_exact(const void *x, int64_t C, const sl_cap *cap, sl_softmax *r, int64_t y, double *e_y, int f32)
{
    sl_cap dd = {0.0, 0.0, 0.0, 1, NULL};
    if (cap) {
        dd = *cap;
        dd.dd = 1;
    }
    double d, a_lo = 0.0, a = sl_load(x, r->k, f32), s = 0.0, s_lo = 0.0;
    if (cap)
        a = sl_softcap_dd(a, &dd, &a_lo, &d);
    for (int64_t j = 0; j < C; j++) {
        double v_lo = 0.0, v = sl_load(x, j, f32), z_lo, e_lo;
        if (cap)
            v = sl_softcap_dd(v, &dd, &v_lo, &d);
        double z = sl_two_sum(v, -a, &z_lo);
        z_lo = z > -INFINITY ? z_lo + (v_lo - a_lo) : 0.0;
        double e = sl_exp_dd(z, &e_lo);
        e_lo += e * z_lo;
        if (j == y) {
            e_y[0] = e;
            e_y[1] = e_lo;
        }
        if (j != r->k)
            s = sl_dd_add(s, s_lo, e, e_lo, &s_lo);
    }
    r->a_lo = (a - r->a) + a_lo;
    r->s = s;
    r->s_lo = s_lo;
    double big_s_lo, big_s = sl_two_sum(1.0, s, &big_s_lo), log_lo;
    big_s_lo += s_lo;
    double ratio = big_s_lo / big_s, log_hi = sl_log_dd(big_s, &log_lo);
    r->log_s = sl_dd_add(log_hi, log_lo, ratio - 0.5 * ratio * ratio, 0.0, &r->log_s_lo);
}

/* p_y f - 1 at the target of a plain row with a z-loss (f = 1 + 2 z lse = 1 + zf), a double-double
 * difference: (2 z lse - s)/S where y holds the max (p_y = 1/S), else (e_y f - S)/S. */
SL_INLINE double ce_zloss_at_y(const sl_softmax *r, int at_max, double zf, double zf_lo, double f, double f_lo,
                               const double *e_y)
{
    double big_s_lo, big_s = sl_two_sum(1.0, r->s, &big_s_lo), n, n_lo, q_lo;
    big_s_lo += r->s_lo;
    if (at_max) {
        n = sl_dd_add(zf, zf_lo, -r->s, -r->s_lo, &n_lo);
    } else {
        double m_lo, m = sl_dd_mul(e_y[0], e_y[1], f, f_lo, &m_lo);
        n = sl_dd_add(m, m_lo, -big_s, -big_s_lo, &n_lo);
    }
    double q = sl_dd_div(n, n_lo, big_s, big_s_lo, &q_lo);
    return q + q_lo;
}

/* The loss of a row with index target y from its scan r, its gradient stored (e: the row's e_j, or
 * NULL to recompute them; e may be g), its log-sum-exp in *lse where wanted.  cf: the smoothing
 * coefficients or NULL; cap: the softcap or NULL; with cheap, all compile-time constants at each call,
 * so the passes' loops carry no branch on them.  With a z-loss the row gains w_y z lse^2 and A its
 * 2 z w_y lse (the gradient 2 z w_y lse p_j); a plain row's at y is w_y (p_y f - 1) (ce_zloss_at_y). */
SL_INLINE double ce_index_finish(const ce_args *a, const void *x, void *g, int64_t y, const sl_coefs *cf,
                                 const sl_cap *cap, sl_softmax *r, const double *e, double *lse, int f32, int cheap,
                                 sl_grad_fn grad)
{
    int64_t C = a->n_classes;
    double eps = a->label_smoothing, smooth = eps / (double)C;
    double w_y = a->weight ? sl_load(a->weight, y, f32) : 1.0;
    double coef = (1.0 - eps) * w_y;
    double z_lo, d_y, z = sl_shifted(x, y, r->a, r->a_lo, cap, &z_lo, &d_y, f32, cheap);
    double e_y[2] = {e ? e[y] : sl_shifted_exp(z, z_lo, cheap), 0.0}; /* read before g overwrites e */
    int zl = a->z_loss > 0.0, plain_z = zl && !cf && w_y != 0.0;
    if ((zl || a->lse) && ce_inexact(a, r, cap, plain_z, y == r->k, e_y[0], f32))
        ce_exact(x, C, cap, r, y, e_y, f32);
    double loss = coef * ((r->log_s - z) - z_lo); /* -log p_y = log1p(s) - z_y: both terms >= 0 */
    if (zl || a->lse)
        loss += coef * r->log_s_lo;
    if (cf) { /* sum_j c_j (-log p_j) = (sum_j c_j) log1p(s) + sum_j c_j (-z_j) */
        double smoothed = r->c_sum * r->log_s + r->cz_sum;
        loss += isfinite(smoothed) ? smoothed : ce_loss_terms(x, C, r, cf, cap, f32);
    }
    if (a->lse)
        *lse = ce_lse_out(r, x, C, f32);
    double zf = 0.0, zf_lo = 0.0, f = 1.0, f_lo = 0.0;
    if (zl) { /* w_y z lse^2: two terms >= 0 */
        double lse_lo, lse_hi = ce_lse_dd(r, &lse_lo);
        zf = ce_zfactor(a->z_loss, lse_hi, lse_lo, &zf_lo);
        f = sl_dd_add(1.0, 0.0, zf, zf_lo, &f_lo);
        if (w_y != 0.0)
            loss += w_y * ((a->z_loss * (lse_hi + lse_lo)) * (lse_hi + lse_lo));
    }
    if (g) {
        double S = 1.0 + r->s, K;
        if (plain_z) { /* grad_scale w_y f/S rounded once (f = 1 + 2 z lse carried exactly) */
            double S_lo, m_lo, m = sl_dd_mul(f, f_lo, w_y, 0.0, &m_lo), k_lo;
            m = sl_dd_mul(m, m_lo, a->grad_scale, 0.0, &m_lo);
            S = sl_two_sum(1.0, r->s, &S_lo);
            K = sl_dd_div(m, m_lo, S, S_lo + r->s_lo, &k_lo);
            K += k_lo;
        } else { /* cf: g_j = (K e_j - c_j) grad_scale, K = A/S */
            double A = coef + r->c_sum;
            if (zl)
                A += w_y * zf;
            K = cf ? A / S : a->grad_scale * (A / S);
        }
        double p_y = e_y[0] / S;
        grad(x, C, r->a, r->a_lo, K, cf, cap, 1.0, a->grad_scale, e, g, f32, cheap);
        double g_y;
        if (plain_z) {
            g_y = w_y * ce_zloss_at_y(r, y == r->k, zf, zf_lo, f, f_lo, e_y);
        } else { /* p_y - 1 = -s/S where y holds the max (no cancellation); elsewhere p_y <= 1/2 */
            double p_y_m1 = z == 0.0 ? -r->s / S : p_y - 1.0;
            g_y = coef * p_y_m1 + (cf ? r->c_sum * p_y - smooth * w_y : 0.0);
            if (zl)
                g_y += w_y * zf * p_y;
        }
        g_y *= a->grad_scale;
        if (cap) /* dL/dx = dL/dx' (1 - tanh^2(x/c)) */
            g_y *= d_y;
        sl_store(g, y, g_y, f32);
        if (cf) { /* at the argmax K e_k - b_k = ((A - b_k) - b_k s)/S, A - b_k the other classes' sum: never
                   * A/S - b_k, which cancels where b_k holds nearly all of A (y's too, if k = y) */
            int at_y = y == r->k;
            double b_k = r->c_k + (at_y ? coef : 0.0), others = r->c_others + (at_y ? 0.0 : coef);
            if (zl)
                others += w_y * zf;
            double g_k = a->grad_scale * ((others - b_k * r->s) / S);
            if (cap)
                g_k *= ce_cap_derivative(x, r->k, cap, f32);
            sl_store(g, r->k, g_k, f32);
        }
    }
    return loss;
}

SL_INLINE double ce_index_row(const ce_args *a, const void *x, const void *next, void *g, int64_t y,
                              const sl_coefs *cf, const sl_cap *cap, double *e, double *lse, int f32, int cheap,
                              sl_scan_fn scan, sl_grad_fn grad)
{
    sl_softmax r = scan(x, a->n_classes, cf, cap, next, e, f32, cheap);
    return ce_index_finish(a, x, g, y, cf, cap, &r, e, lse, f32, cheap, grad);
}

/* The log-sum-exp of an ignored row (its loss and gradient are 0). */
SL_INLINE double ce_ignored_lse(const ce_args *a, const void *x, const void *next, const sl_cap *cap, int f32,
                                sl_scan_fn scan)
{
    sl_softmax r = scan(x, a->n_classes, NULL, cap, next, NULL, f32, f32);
    if (ce_inexact(a, &r, cap, 0, 0, 0.0, f32))
        ce_exact(x, a->n_classes, cap, &r, -1, NULL, f32);
    return ce_lse_out(&r, x, a->n_classes, f32);
}

/* One row: its outputs stored, its loss returned.  The passes come in as arguments (scalar or vector),
 * capped a constant: the softcap's rows and the others get their own code. */
SL_INLINE double ce_row(const void *args, int64_t i, int f32, sl_scan_fn scan, sl_grad_fn grad, int capped)
{
    const ce_args *a = (const ce_args *)args;
    int64_t C = a->n_classes;
    const void *x = sl_row_in(a->input, i, C, f32);
    const void *next = i + 1 < a->n_rows ? sl_row_in(a->input, i + 1, C, f32) : NULL;
    void *g = sl_row_out(a->grad, i, C, f32);
    double eps = a->label_smoothing, smooth = eps / (double)C, loss = 0.0, lse = -INFINITY;
    sl_cap cap_value = ce_cap(a, f32);
    const sl_cap *cap = capped ? &cap_value : NULL;
    double *e = ce_exps(a, g, f32, cap);
    if (cap && e) /* the double cap's derivatives after the e_j */
        cap_value.d = e + C;
    if (C == 0 || (a->target && a->target[i] == a->ignore_index)) {
        if (g)
            memset(g, 0, (size_t)C * (f32 ? sizeof(float) : sizeof(double)));
        if (a->lse && C > 0)
            lse = ce_ignored_lse(a, x, next, cap, f32, scan);
    } else if (a->target && eps > 0.0) { /* c_j = (eps/C) w_j, scaled before summed; K e_j - c_j can
                                            cancel: full grade */
        sl_coefs weights = {a->weight, NULL, smooth, 0.0};
        loss = ce_index_row(a, x, next, g, a->target[i], &weights, cap, e, &lse, f32, 0, scan, grad);
    } else if (a->target && (a->z_loss > 0.0 || a->lse)) { /* the sums within CE_SUM_ERR: the cheap grade */
        loss = ce_index_row(a, x, next, g, a->target[i], NULL, cap, e, &lse, f32, f32, scan, grad);
    } else if (a->target) { /* every output a sum or quotient of non-negative terms: the short exp */
        loss = ce_index_row(a, x, next, g, a->target[i], NULL, cap, e, &lse, f32, f32 ? SL_CHEAP_SUM : 0, scan,
                            grad);
    } else { /* probability targets: T p_j - c_j can cancel, full grade */
        sl_coefs probs = {a->weight, sl_row_in(a->target_prob, i, C, f32), 1.0 - eps, smooth};
        sl_softmax r = scan(x, C, &probs, cap, next, e, f32, 0);
        if (a->lse && ce_inexact(a, &r, cap, 0, 0, 0.0, f32))
            ce_exact(x, C, cap, &r, -1, NULL, f32);
        loss = r.c_sum * r.log_s + r.cz_sum; /* sum_j c_j (log1p(s) - z_j) */
        if (!isfinite(loss))
            loss = ce_loss_terms(x, C, &r, &probs, cap, f32);
        if (a->lse)
            lse = ce_lse_out(&r, x, C, f32);
        double A = r.c_sum, others = r.c_others;
        if (a->z_loss > 0.0) { /* z lse^2 (the row's weight is 1), and 2 z lse in A */
            double lse_lo, lse_hi = ce_lse_dd(&r, &lse_lo), zf_lo, zf = ce_zfactor(a->z_loss, lse_hi, lse_lo, &zf_lo);
            loss += (a->z_loss * (lse_hi + lse_lo)) * (lse_hi + lse_lo);
            A += zf;
            others += zf;
        }
        if (g) {
            grad(x, C, r.a, r.a_lo, A / (1.0 + r.s), &probs, cap, 1.0, a->grad_scale, e, g, f32, 0);
            /* at the argmax T p_k - c_k = (sum_{j != k} c_j - c_k s) / S: no 1 - p_k */
            double g_k = a->grad_scale * ((others - r.c_k * r.s) / (1.0 + r.s));
            if (cap)
                g_k *= ce_cap_derivative(x, r.k, cap, f32);
            sl_store(g, r.k, g_k, f32);
        }
    }
    if (a->loss)
        sl_store(a->loss, i, loss, f32);
    if (a->lse)
        sl_store(a->lse, i, lse, f32);
    return loss;
}

SL_INLINE double ce_row_scalar(const void *args, int64_t i, int f32)
{
    if (((const ce_args *)args)->softcap == 0.0)
        return ce_row(args, i, f32, sl_softmax_scan, sl_softmax_grad, 0);
    return ce_row(args, i, f32, sl_softmax_scan, sl_softmax_grad, 1);
}

SL_INLINE void ce_scalar(const ce_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, ce_row_scalar, f32);
}

#if SL_X86
/* The double-double cap (float64 rows, float32 rows of a cap beyond CE_SOFTCAP_DIRECT_F32) takes the scalar
 * passes. */
SL_VEC SL_INLINE double ce_row_vec(const void *args, int64_t i, int f32)
{
    double softcap = ((const ce_args *)args)->softcap;
    if (softcap == 0.0)
        return ce_row(args, i, f32, sl_softmax_scan_v, sl_softmax_grad_v, 0);
    if (f32 && softcap <= CE_SOFTCAP_DIRECT_F32)
        return ce_row(args, i, f32, sl_softmax_scan_v, sl_softmax_grad_v, 1);
    return ce_row(args, i, f32, sl_softmax_scan, sl_softmax_grad, 1);
}

/* The SL_L rows at x, the last `count - 1`-th repeated past the tail, as columns: t[SL_L j + l] =
 * x_{l, j} in double (scalar loads and stores: AMD's gathers cost several times more). */
SL_INLINE void ce_transpose(const void *x, int64_t C, int count, int f32, double *t)
{
    for (int l = 0; l < SL_L; l++) {
        const void *row = sl_row_in(x, l < count ? l : count - 1, C, f32);
        for (int64_t j = 0; j < C; j++)
            t[SL_L * j + l] = sl_load(row, j, f32);
    }
}

/* s = sum_{j != k} e_j of SL_L rows (lanes) with max m first attained at k; e_j stored at
 * e_out[l C + j] for the first `count` lanes (e_k = 1). */
SL_VEC SL_INLINE sl_vd ce_narrow_sums_v(const double *t, int64_t C, sl_vd m, sl_vd k, double *e_out,
                                        int count, int normal, int cheap)
{
    sl_acc_v acc = sl_acc_v_zero();
    for (int64_t j = 0; j < C; j++) {
        sl_vd z_lo, z = sl_shift_v(sl_vloadu(t + SL_L * j), m, &z_lo, cheap);
        sl_vd e = sl_shifted_exp_v(z, z_lo, normal, cheap);
        sl_vm at_k = sl_vcmp(k, SL_V((double)j), _CMP_EQ_OQ);
        sl_acc_v_add(&acc, sl_vdrop(at_k, e), cheap);
        if (e_out) {
            double lanes[SL_L];
            sl_vstoreu(lanes, sl_vselect(at_k, SL_V(1.0), e));
            for (int l = 0; l < count; l++)
                e_out[l * C + j] = lanes[l];
        }
    }
    return sl_acc_v_lanes(&acc, cheap);
}

/* Rows i .. i + SL_L - 1 of at most CE_NARROW classes (index targets, no smoothing), one row per lane:
 * the range pass (max, its first index, min, NaN), the exponential sum and log1p run once for SL_L rows,
 * where a row of its own would fill a few lanes and pay the horizontal steps and log1p alone; then
 * each row's loss and gradient from its lane (ce_index_finish, as ce_row).  Lanes past the tail read
 * the last row again, their results dropped.  A row that is ignored or has no finite max (NaN, +inf,
 * all -inf) is done by ce_row instead (its scratch row is the first lane's, done by then). */
SL_VEC SL_INLINE sl_vd ce_lanes_vec(const void *args, int64_t i, const sl_tail *tail, int f32)
{
    const ce_args *a = (const ce_args *)args;
    int64_t C = a->n_classes;
    int count = tail ? __builtin_popcount((unsigned)sl_tail_bits(tail)) : SL_L;
    int cheap = f32 ? SL_CHEAP_SUM : 0; /* as ce_row without smoothing */
    double t[SL_L * CE_NARROW];
    ce_transpose(sl_row_in(a->input, i, C, f32), C, count, f32, t);
    sl_vd m = sl_vloadu(t), low = m, k = sl_vzero();
    sl_vm nan = sl_vcmp(m, m, _CMP_UNORD_Q);
    for (int64_t j = 1; j < C; j++) {
        sl_vd v = sl_vloadu(t + SL_L * j);
        sl_vm above = sl_vcmp(v, m, _CMP_GT_OQ); /* strictly: k stays the first index */
        m = sl_vselect(above, v, m);
        k = sl_vselect(above, SL_V((double)j), k);
        low = sl_vmin(low, v);
        nan = sl_vm_or(nan, sl_vcmp(v, v, _CMP_UNORD_Q));
    }
    int special = (sl_vm_bits(nan) | ~sl_vm_bits(sl_isfinite_v(m))) & SL_LANES_ALL;
    /* every lane's min within SL_EXP_NORMAL of its max: exp without the range check */
    int normal = sl_vm_bits(sl_vcmp(sl_vsub(low, m), SL_V(-SL_EXP_NORMAL), _CMP_GE_OQ)) == SL_LANES_ALL;
    sl_vd s = normal ? ce_narrow_sums_v(t, C, m, k, a->exps, count, 1, cheap)
                     : ce_narrow_sums_v(t, C, m, k, a->exps, count, 0, cheap);
    double ms[SL_L], ks[SL_L], ss[SL_L], log_ss[SL_L], losses[SL_L] = {0.0};
    sl_vstoreu(ms, m);
    sl_vstoreu(ks, k);
    sl_vstoreu(ss, s);
    sl_vstoreu(log_ss, sl_log1p_v(s, cheap));
    for (int l = 0; l < count; l++) {
        int64_t row = i + l, y = a->target[row];
        if (((special >> l) & 1) || y == a->ignore_index) {
            losses[l] = ce_row_vec(args, row, f32);
            continue;
        }
        sl_softmax r = {ms[l], (int64_t)ks[l], ss[l], log_ss[l], 0.0, 0.0, 0.0, 0.0};
        double lse; /* none wanted here (ce_vec) */
        losses[l] = ce_index_finish(a, sl_row_in(a->input, row, C, f32), sl_row_out(a->grad, row, C, f32), y, NULL,
                                    NULL, &r, a->exps ? a->exps + l * C : NULL, &lse, f32, cheap, sl_softmax_grad_v);
        if (a->loss)
            sl_store(a->loss, row, losses[l], f32);
    }
    return sl_vloadu(losses);
}

SL_VEC SL_INLINE void ce_vec(const ce_args *a, int f32)
{
    if (a->target && a->label_smoothing == 0.0 && a->n_classes > 0 && a->n_classes <= CE_NARROW && a->softcap == 0.0 &&
        a->z_loss == 0.0 && !a->lse)
        sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, ce_lanes_vec, f32);
    else
        sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, ce_row_vec, f32);
}
#endif

SL_KERNEL(ce, ce_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

/* With a gradient wanted, scratch rows for e_j (ce_exps): CE_NARROW_ROWS rows of at most CE_NARROW classes, or
 * one float32 row of at most CE_SCRATCH_CLASSES classes, or with the double cap half as many (its e_j and the
 * cap's derivatives).  Without (wider rows, or a failed allocation) the row's e_j go to the float64 gradient
 * row or are recomputed: a call's memory beyond its outputs is at most 8 MiB whatever its size. */
static void ce_call(ce_args *a, int f32)
{
    int64_t C = a->n_classes;
    size_t per_class = a->softcap != 0.0 ? 2 : 1;
    int wanted = a->grad && a->n_rows > 0 && C > 0 &&
                 (C <= CE_NARROW || (f32 && (int64_t)per_class * C <= CE_SCRATCH_CLASSES));
    size_t rows = C <= CE_NARROW ? CE_NARROW_ROWS : per_class;
    a->exps = wanted ? malloc(rows * (size_t)C * sizeof(double)) : NULL;
    ce_run(a, f32);
    free(a->exps);
}

void sl_ce_f32(const float *input, const int64_t *target, const float *target_prob, const float *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing, double z_loss,
               double softcap, double grad_scale, int64_t rows_per_block, float *loss, float *grad, float *lse,
               double *block_sums)
{
    ce_args a = {input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss,
                 softcap, grad_scale, rows_per_block, loss, grad, lse, block_sums, NULL};
    ce_call(&a, 1);
}

void sl_ce_f64(const double *input, const int64_t *target, const double *target_prob, const double *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing, double z_loss,
               double softcap, double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *lse,
               double *block_sums)
{
    ce_args a = {input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss,
                 softcap, grad_scale, rows_per_block, loss, grad, lse, block_sums, NULL};
    ce_call(&a, 0);
}
#endif
