"""Binary cross-entropy with logits, elementwise (``sl_bce``).

With e = e^{-|x|}: softplus(+-x) = max(+-x, 0) + log1p(e), and the loss
(w pw y) softplus(-x) + (w (1 - y)) softplus(x) is a sum of two terms >= 0 (the weights applied
first, so that no term overflows before w scales it; a term whose label factor is 0 counts as 0, so
x = +-inf gives the limit).  The gradient w ((1 - y) sigma(x) - pw y sigma(-x)) is
w ((1 - y) A - pw y B)/(1 + e) with (A, B) = (1, e) for x >= 0 and (e, 1) below, never forming
1 - sigma.  With a soft label (0 < y < 1) the two terms can cancel (sigma(x) - 1/2 = x/4 near 0, or
wherever y is close to sigma(x)); there the gradient is redone in double-double (e from exp_dd, 1 - y
and pw y exact): for every soft label in float64, and in float32 where the float64 difference lost more
than 12 bits.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, EXPF_NEG_RANGE, INF, LANES, LN2_HI, LN2_LO, ONE, ONE_F, ZERO_F, add_block_sums, chunk_stop,
                   dd_add, dd_div, dd_mul, exp_dd, exp_nonpos, expf_neg, flagged, helper, is_f32, jit, load_chunk,
                   log1p, log1pf_q, log1pf_unit, pow2, store_chunk, two_prod, two_sum, urange)

#: The hot loop's mark in the LLVM IR: the range reduction of exp (rint) on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"
#: The float-lane fast path of float32 kernels: a fused multiply-add on 8 floats, emitted only by its
#: primitives (expf_neg, log1pf_unit).
FLOAT32_LANES = r"@llvm\.fma\.v(\d+)f32"

#: The contract of the declaration (stableloss/_api.py): float32 soft-label gradients whose float64
#: difference is below SOFT_LABEL_CANCEL times its terms are redone; beyond SUBNORMAL_EXP, e^-|x| is
#: subnormal or nearly (the terms cannot cancel), and float64 elements are redone by :func:`tiny_e`.
SOFT_LABEL_CANCEL = np.float64(KERNELS["bce"].constant("SOFT_LABEL_CANCEL"))
SUBNORMAL_EXP = np.float64(KERNELS["bce"].constant("SUBNORMAL_EXP"))
#: Below it, float64 soft-label gradients take :func:`grad_linear`.
LINEAR_X = np.float64(KERNELS["bce"].constant("LINEAR_X"))


@helper
def grad_linear(v, y, w, pw):
    """w ((1 - y) sigma(v) - pw y sigma(-v)) for |v| < LINEAR_X, where sigma(+-v) = 1/2 +- v/4 to 2^-1800:
    g0 + g1 v with g0 = w (1 - y - pw y)/2, g1 = w (1 - y + pw y)/4, v scaled by 2^600 (unless g0 or g1
    exceeds 2^400) so that g1 v keeps its bits below the normal range; rounded once, back at scale."""
    one_y_hi, one_y_lo = two_sum(ONE, -y)
    pw_y_hi, pw_y_lo = two_prod(pw, y)
    c0_hi, c0_lo = dd_add(one_y_hi, one_y_lo, -pw_y_hi, -pw_y_lo)
    c1_hi, c1_lo = dd_add(one_y_hi, one_y_lo, pw_y_hi, pw_y_lo)
    g0_hi, g0_lo = dd_mul(c0_hi, c0_lo, w, 0.0)  # 2 g0
    g1_hi, g1_lo = dd_mul(c1_hi, c1_lo, w, 0.0)  # 4 g1
    k = 0 if abs(g0_hi) > 2.0**400 or abs(g1_hi) > 2.0**400 else 600
    t_hi, t_lo = dd_mul(g1_hi, g1_lo, np.ldexp(v, k), 0.0)  # 4 g1 v 2^k
    s_hi, s_lo = dd_add(np.ldexp(g0_hi, k - 1), np.ldexp(g0_lo, k - 1), np.ldexp(t_hi, -2), np.ldexp(t_lo, -2))
    return np.ldexp(s_hi + s_lo, -k)


@helper
def grad_dd(v, y, w, pw, grad_scale):
    """grad_scale w ((1 - y) A - pw y B)/(1 + e) in double-double, rounded once at the end."""
    if abs(v) < LINEAR_X:
        return grad_linear(v, y, w, pw) * grad_scale
    e_hi, e_lo = exp_dd(-abs(v))
    one_y_hi, one_y_lo = two_sum(ONE, -y)
    pw_y_hi, pw_y_lo = two_prod(pw, y)
    if v >= 0.0:
        a_hi, a_lo = one_y_hi, one_y_lo
        b_hi, b_lo = dd_mul(pw_y_hi, pw_y_lo, e_hi, e_lo)
    else:
        a_hi, a_lo = dd_mul(one_y_hi, one_y_lo, e_hi, e_lo)
        b_hi, b_lo = pw_y_hi, pw_y_lo
    num_hi, num_lo = dd_add(a_hi, a_lo, -b_hi, -b_lo)
    den_hi, den_lo = dd_add(ONE, 0.0, e_hi, e_lo)
    q_hi, q_lo = dd_div(num_hi, num_lo, den_hi, den_lo)
    g_hi, g_lo = dd_mul(q_hi, q_lo, grad_scale * w, 0.0)
    return g_hi + g_lo


#: 512 ln 2 as a double-double (512 LN2_HI is exact): tiny_e's shift of the exponent.
SHIFT_HI, SHIFT_LO = 512.0 * LN2_HI, 512.0 * LN2_LO


@helper
def tiny_e(v, y, w, pw, grad_scale):
    """(loss, gradient) of a float64 element with SUBNORMAL_EXP < |v| < inf and finite weights (kernels/bce.c,
    bce_eval_tiny_e): e = e^-|v| is subnormal or nearly while w pw y e need not be, so it is carried as
    es 2^-512, es = e^(-|v| + 512 ln 2), and each e-term rounds once.  There sigma is 1 or e, log1p(e) is e."""
    up, up_lo = two_sum(-abs(v), SHIFT_HI)
    es = exp_nonpos(up, up_lo + SHIFT_LO, False)
    positive = v > 0.0
    e_label = pw * y if positive else ONE - y  # the label of the term with e
    x_factor = w * (ONE - y) if positive else w * (pw * y)  # the factor of the term with |v|
    e_on = y != 0.0 if positive else y != ONE
    x_on = y != ONE if positive else y != 0.0
    e_term = (w * (e_label * es)) * pow2(-512.0)  # the label first: w pw y alone may overflow; one rounding
    grad = x_factor - e_term if positive else e_term - x_factor
    return (x_factor * abs(v) if x_on else 0.0) + (e_term if e_on else 0.0), grad * grad_scale


@helper
def hard_labels(x, target, first, count):
    """True if elements first .. first + count - 1 all have a label 0 or 1 and |x| <= EXPF_NEG_RANGE (false
    for NaN): with finite weights, the float32 lanes of :func:`hard_label_lanes` apply."""
    hard = True
    for j in urange(0, count):
        y = target[first + j]
        hard &= ((y == ZERO_F) | (y == ONE_F)) & (abs(x[first + j]) <= EXPF_NEG_RANGE)
    return hard


@helper
def finite_weights(weights, pos_weights, count):
    """True if weights[:count] and pos_weights[:count] are all finite (false for NaN)."""
    finite = True
    for j in urange(0, count):
        finite &= (abs(weights[j]) < INF) & (abs(pos_weights[j]) < INF)
    return finite


@helper
def hard_label_lanes(x, target, first, count, weights, pos_weights, weighted, grad_scale, values, grad, grad_first,
                     lane_buf):
    """Losses (into values) and gradients (into grad from grad_first) of count elements from first with hard
    labels, |x| <= EXPF_NEG_RANGE and finite weights, in float32 lanes (kernels/bce.c, bce_span_f32).

    With flip = x for y = 0 and -x for y = 1 one term is left, c softplus(flip) with c = w (y = 0) or
    w pw (y = 1): max(flip, 0) + log1p(e) from expf_neg, log1pf_q and log1pf_unit, added and scaled in float64;
    the gradient c (+-sigma(flip)), sigma(flip) = (flip >= 0 ? 1 : e)/(1 + e) in one float32 division.
    A literal ``weighted=False`` compiles the weights out (c = 1).  Two passes over lane_buf (3 x CHUNK
    float32): the float32 work alone, which LLVM vectorizes on 8 floats (with the float64 steps in the
    same loop it chooses 4), then the float64 steps.
    """
    for j in urange(0, count):
        v = np.float32(x[first + j])
        label1 = target[first + j] == ONE_F
        flip = -v if label1 else v
        e = expf_neg(-abs(v))  # e^-|x| = e^-|flip|
        sigma = (ONE_F if flip >= ZERO_F else e) / (ONE_F + e)  # sigma(flip), never 1 - sigma(-flip)
        lane_buf[0, j] = e
        lane_buf[1, j] = log1pf_q(e)
        lane_buf[2, j] = -sigma if label1 else sigma
    for j in urange(0, count):
        v = np.float32(x[first + j])
        label1 = target[first + j] == ONE_F
        flip = -v if label1 else v
        log_term = log1pf_unit(lane_buf[0, j], lane_buf[1, j])
        softplus = np.float64(flip if flip > ZERO_F else ZERO_F) + log_term  # two terms >= 0
        c = weights[j] * (pos_weights[j] if label1 else ONE) if weighted else ONE
        values[j] = c * softplus
        grad[grad_first + j] = (c * grad_scale) * np.float64(lane_buf[2, j])


@jit
def kernel(input, target, weight, pos_weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    weighted = weight.size > 0 or pos_weight.size > 0
    weights = np.ones(CHUNK)  # without weights they stay 1 (load_chunk's default), never reloaded
    pos_weights = np.ones(CHUNK)
    values = np.empty(CHUNK)
    grads = np.empty(CHUNK)
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    want_grad = grad.size > 0
    lane_buf = np.empty((3, CHUNK), np.float32)
    lane_grad = grad if want_grad else np.empty(CHUNK, grad.dtype)  # the float32 lanes store into it directly
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        if weighted:
            load_chunk(weight, start, count, weights, 1.0)
            load_chunk(pos_weight, start, count, pos_weights, 1.0)
        if (f32 and hard_labels(input, target, first, count)
                and (not weighted or finite_weights(weights, pos_weights, count))):
            grad_first = first if want_grad else np.uint64(0)
            if weighted:
                hard_label_lanes(input, target, first, count, weights, pos_weights, True, grad_scale, values, lane_grad,
                                 grad_first, lane_buf)
            else:
                hard_label_lanes(input, target, first, count, weights, pos_weights, False, grad_scale, values, lane_grad,
                                 grad_first, lane_buf)
        else:
            redo_count = 0
            for j in urange(0, count):
                v = np.float64(input[first + j])
                y = np.float64(target[first + j])
                w = weights[j]
                pw = pos_weights[j]
                e = exp_nonpos(-abs(v), 0.0, f32)
                log_term = log1p(e, f32)
                positive = v >= 0.0
                softplus_pos = (v if positive else 0.0) + log_term  # softplus(x) = max(x, 0) + log1p(e^-|x|)
                softplus_neg = (0.0 if positive else -v) + log_term  # softplus(-x)
                wpy = w * (pw * y)  # the weights first, unless their product overflows
                pos_term = 0.0 if y == 0.0 else (wpy * softplus_neg if abs(wpy) < np.inf
                                                 else w * ((pw * y) * softplus_neg))
                neg_term = 0.0 if y == ONE else (w * (ONE - y)) * softplus_pos
                values[j] = pos_term + neg_term
                a_term = (ONE - y) * (ONE if positive else e)  # (1 - y) sigma(x) (1 + e)
                b_term = (pw * y) * (e if positive else ONE)  # pw y sigma(-x) (1 + e)
                difference = a_term - b_term
                grads[j] = ((w * difference) / (ONE + e)) * grad_scale  # as the reference: no early underflow
                # soft labels with finite terms (an infinite weight leaves nothing to cancel)
                soft = (y > 0.0) & (y < ONE) & (abs(v) < SUBNORMAL_EXP) & (abs(w) < np.inf) & (abs(w * (pw * y)) < np.inf)
                redo = soft & ((not f32) | (abs(difference) < SOFT_LABEL_CANCEL * max(a_term, b_term)))
                redo |= (not f32) & (abs(v) > SUBNORMAL_EXP) & (abs(v) < INF) & (abs(w) < INF) & (abs(pw) < INF)
                redo_count += redo
                redo_flags[j] = redo
            if redo_count > 0:
                for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                    v, y = np.float64(input[first + j]), np.float64(target[first + j])
                    if abs(v) > SUBNORMAL_EXP:  # float64 only
                        values[j], grads[j] = tiny_e(v, y, weights[j], pos_weights[j], grad_scale)
                    else:
                        grads[j] = grad_dd(v, y, weights[j], pos_weights[j], grad_scale)
            store_chunk(grad, start, count, grads)
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
