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
 * Rows of at most CE_NARROW classes (index targets, no smoothing) take the vector passes a vector of
 * rows at a time, one row per lane (ce_lanes_vec): the same formulas, the sums over j in order per row.
 *
 * Special cases (as PyTorch unless noted).  A NaN anywhere in a row: NaN loss and NaN gradient row.
 * +inf logit or an all -inf row: NaN.  Target logit -inf (finite max): +inf loss, gradient finite.
 * A -inf logit whose coefficient c_j is 0 (a masked class without target mass) adds 0 to the loss
 * (PyTorch: NaN from 0 * inf).
 * Rows whose target is ignore_index: loss 0, gradient row 0, no logit read.  n_classes == 0: loss 0.
 *
 * Accuracy, worst measured against mpmath (the test families and our own adversarial rows: confident
 * rows with losses down to 1e-300, C = 8192 with one peak in a flat row, logits near the dtype max,
 * +-inf and NaN, C = 1..17 around the lanes), every SIMD level alike: float32 loss 0.51 ulp, gradient
 * 0.56 ulp (0.5 for both with smoothing or probability targets); float64 loss 1.7 ulp, gradient 1.9
 * ulp, and 3.6 ulp of the larger term where the gradient is a difference of two (label smoothing,
 * probability targets).  Budget: 4 ulp.
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

typedef struct {
    const void *input;
    const int64_t *target;
    const void *target_prob, *weight;
    int64_t n_rows, n_classes, ignore_index;
    double label_smoothing, grad_scale;
    int64_t rows_per_block;
    void *loss, *grad;
    double *block_sums;
    double *exps; /* scratch row(s) of e_j for the gradient pass, or NULL (ce_call) */
} ce_args;

/* Where the scan of a row with gradient row g keeps its e_j for the gradient pass: the scratch row;
 * else, for float64, g itself (each g_j overwrites its e_j once read); else nowhere (NULL: the
 * gradient pass recomputes them, the same function of the same z_j, so the same values). */
SL_INLINE double *ce_exps(const ce_args *a, void *g, int f32)
{
    return a->exps ? a->exps : g && !f32 ? (double *)g : NULL;
}

/* sum_j c_j (log1p(s) - z_j) term by term, for rows whose sums are not finite: there the split into
 * (sum_j c_j) log1p(s) + sum_j c_j (-z_j) can turn an infinite coefficient times log1p(s) = 0 into
 * NaN, or two infinite sums into inf - inf, where the terms give exactly their inf or NaN. */
SL_INLINE double ce_loss_terms(const void *x, int64_t C, const sl_softmax *r, const sl_coefs *cf, int f32)
{
    double total = 0.0;
    for (int64_t j = 0; j < C; j++) {
        double z_lo, z = sl_shift(sl_load(x, j, f32), r->a, &z_lo, 0), c = sl_coef(cf, j, f32);
        if (!sl_masked_class(c, z))
            total += c * ((r->log_s - z) - z_lo);
    }
    return total;
}

/* The loss of a row with index target y from its scan r, its gradient stored (e: the row's e_j, or
 * NULL to recompute them; e may be g).  cf: the smoothing coefficients or NULL; with cheap, both compile-time
 * constants at each call, so the passes' loops carry no branch on them. */
SL_INLINE double ce_index_finish(const ce_args *a, const void *x, void *g, int64_t y, const sl_coefs *cf,
                                 const sl_softmax *r, const double *e, int f32, int cheap, sl_grad_fn grad)
{
    int64_t C = a->n_classes;
    double eps = a->label_smoothing, smooth = eps / (double)C;
    double w_y = a->weight ? sl_load(a->weight, y, f32) : 1.0;
    double coef = (1.0 - eps) * w_y;
    double z_lo, z = sl_shift(sl_load(x, y, f32), r->a, &z_lo, cheap);
    double loss = coef * ((r->log_s - z) - z_lo); /* -log p_y = log1p(s) - z_y: both terms >= 0 */
    if (cf) { /* sum_j c_j (-log p_j) = (sum_j c_j) log1p(s) + sum_j c_j (-z_j) */
        double smoothed = r->c_sum * r->log_s + r->cz_sum;
        loss += isfinite(smoothed) ? smoothed : ce_loss_terms(x, C, r, cf, f32);
    }
    if (g) {
        double S = 1.0 + r->s;
        double K = (coef + r->c_sum) / S; /* cf: g_j = (K e_j - c_j) grad_scale */
        double p_y = (e ? e[y] : sl_shifted_exp(z, z_lo, cheap)) / S; /* read before g overwrites e */
        grad(x, C, r->a, cf ? K : a->grad_scale * K, cf, 1.0, a->grad_scale, e, g, f32, cheap);
        /* p_y - 1 = -s/S where y holds the max (no cancellation); elsewhere p_y <= 1/2 */
        double p_y_m1 = z == 0.0 ? -r->s / S : p_y - 1.0;
        double g_y = coef * p_y_m1 + (cf ? r->c_sum * p_y - smooth * w_y : 0.0);
        sl_store(g, y, a->grad_scale * g_y, f32);
        if (cf) { /* at the argmax K e_k - b_k = ((A - b_k) - b_k s)/S, A - b_k the other classes' sum: never
                   * A/S - b_k, which cancels where b_k holds nearly all of A (y's too, if k = y) */
            int at_y = y == r->k;
            double b_k = r->c_k + (at_y ? coef : 0.0), others = r->c_others + (at_y ? 0.0 : coef);
            sl_store(g, r->k, a->grad_scale * ((others - b_k * r->s) / S), f32);
        }
    }
    return loss;
}

SL_INLINE double ce_index_row(const ce_args *a, const void *x, const void *next, void *g, int64_t y,
                              const sl_coefs *cf, int f32, int cheap, sl_scan_fn scan, sl_grad_fn grad)
{
    double *e = ce_exps(a, g, f32);
    sl_softmax r = scan(x, a->n_classes, cf, next, e, f32, cheap);
    return ce_index_finish(a, x, g, y, cf, &r, e, f32, cheap, grad);
}

/* One row: its outputs stored, its loss returned.  The passes come in as arguments (scalar or vector). */
SL_INLINE double ce_row(const void *args, int64_t i, int f32, sl_scan_fn scan, sl_grad_fn grad)
{
    const ce_args *a = (const ce_args *)args;
    int64_t C = a->n_classes;
    const void *x = sl_row_in(a->input, i, C, f32);
    const void *next = i + 1 < a->n_rows ? sl_row_in(a->input, i + 1, C, f32) : NULL;
    void *g = sl_row_out(a->grad, i, C, f32);
    double eps = a->label_smoothing, smooth = eps / (double)C, loss = 0.0;
    if (C == 0 || (a->target && a->target[i] == a->ignore_index)) {
        if (g)
            memset(g, 0, (size_t)C * (f32 ? sizeof(float) : sizeof(double)));
    } else if (a->target && eps > 0.0) { /* c_j = (eps/C) w_j, scaled before summed; K e_j - c_j can
                                            cancel: full grade */
        sl_coefs weights = {a->weight, NULL, smooth, 0.0};
        loss = ce_index_row(a, x, next, g, a->target[i], &weights, f32, 0, scan, grad);
    } else if (a->target) { /* every output a sum or quotient of non-negative terms: the short exp */
        loss = ce_index_row(a, x, next, g, a->target[i], NULL, f32, f32 ? SL_CHEAP_SUM : 0, scan, grad);
    } else { /* probability targets: T p_j - c_j can cancel, full grade */
        sl_coefs probs = {a->weight, sl_row_in(a->target_prob, i, C, f32), 1.0 - eps, smooth};
        double *e = ce_exps(a, g, f32);
        sl_softmax r = scan(x, C, &probs, next, e, f32, 0);
        loss = r.c_sum * r.log_s + r.cz_sum; /* sum_j c_j (log1p(s) - z_j) */
        if (!isfinite(loss))
            loss = ce_loss_terms(x, C, &r, &probs, f32);
        if (g) {
            grad(x, C, r.a, r.c_sum / (1.0 + r.s), &probs, 1.0, a->grad_scale, e, g, f32, 0);
            /* at the argmax T p_k - c_k = (sum_{j != k} c_j - c_k s) / S: no 1 - p_k */
            sl_store(g, r.k, a->grad_scale * ((r.c_others - r.c_k * r.s) / (1.0 + r.s)), f32);
        }
    }
    if (a->loss)
        sl_store(a->loss, i, loss, f32);
    return loss;
}

SL_INLINE double ce_row_scalar(const void *args, int64_t i, int f32)
{
    return ce_row(args, i, f32, sl_softmax_scan, sl_softmax_grad);
}

SL_INLINE void ce_scalar(const ce_args *a, int f32)
{
    sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, ce_row_scalar, f32);
}

#if SL_X86
SL_VEC SL_INLINE double ce_row_vec(const void *args, int64_t i, int f32)
{
    return ce_row(args, i, f32, sl_softmax_scan_v, sl_softmax_grad_v);
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
        losses[l] = ce_index_finish(a, sl_row_in(a->input, row, C, f32), sl_row_out(a->grad, row, C, f32), y, NULL,
                                    &r, a->exps ? a->exps + l * C : NULL, f32, cheap, sl_softmax_grad_v);
        if (a->loss)
            sl_store(a->loss, row, losses[l], f32);
    }
    return sl_vloadu(losses);
}

SL_VEC SL_INLINE void ce_vec(const ce_args *a, int f32)
{
    if (a->target && a->label_smoothing == 0.0 && a->n_classes > 0 && a->n_classes <= CE_NARROW)
        sl_rows_v(a, a->n_rows, a->rows_per_block, a->block_sums, ce_lanes_vec, f32);
    else
        sl_rows(a, a->n_rows, a->rows_per_block, a->block_sums, ce_row_vec, f32);
}
#endif

SL_KERNEL(ce, ce_args)

#ifndef SL_AVX512_UNIT /* the entry points, in the main unit only (avx512.c) */

/* With a gradient wanted, scratch rows for e_j (ce_exps): CE_NARROW_ROWS rows of at most CE_NARROW classes, or
 * one float32 row of at most CE_SCRATCH_CLASSES classes.  Without (wider rows, or a failed
 * allocation) the row's e_j go to the float64 gradient row or are recomputed: a call's memory beyond
 * its outputs is at most 8 MiB whatever its size. */
static void ce_call(ce_args *a, int f32)
{
    int64_t C = a->n_classes;
    int wanted = a->grad && a->n_rows > 0 && C > 0 && (C <= CE_NARROW || (f32 && C <= CE_SCRATCH_CLASSES));
    size_t rows = C <= CE_NARROW ? CE_NARROW_ROWS : 1;
    a->exps = wanted ? malloc(rows * (size_t)C * sizeof(double)) : NULL;
    ce_run(a, f32);
    free(a->exps);
}

void sl_ce_f32(const float *input, const int64_t *target, const float *target_prob, const float *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing,
               double grad_scale, int64_t rows_per_block, float *loss, float *grad, double *block_sums)
{
    ce_args a = {input, target, target_prob, weight, n_rows, n_classes, ignore_index,
                 label_smoothing, grad_scale, rows_per_block, loss, grad, block_sums, NULL};
    ce_call(&a, 1);
}

void sl_ce_f64(const double *input, const int64_t *target, const double *target_prob, const double *weight,
               int64_t n_rows, int64_t n_classes, int64_t ignore_index, double label_smoothing,
               double grad_scale, int64_t rows_per_block, double *loss, double *grad, double *block_sums)
{
    ce_args a = {input, target, target_prob, weight, n_rows, n_classes, ignore_index,
                 label_smoothing, grad_scale, rows_per_block, loss, grad, block_sums, NULL};
    ce_call(&a, 0);
}
#endif
