"""Sigmoid focal loss (torchvision's), elementwise (``sl_focal``; kernels/focal.c has the derivation).

With e = e^-|x|, sigma(x) = A/(1 + e), sigma(-x) = B/(1 + e), (A, B) = (1, e) for x >= 0 and (e, 1) below:
q = 1 - p_t = num/(1 + e) with num = t B + (1 - t) A (terms >= 0: never 1 minus p_t), ce = log1p(e) +
(1 - t) max(x, 0) + t max(-x, 0), q^gamma = exp(gamma (log num - log1p(e))) with log num exact for hard
labels, loss = a_t ce q^gamma and grad = a_t q^gamma ((1 - t) A - t B + gamma ce (1 - 2t) e/num)/(1 + e).

- float32: in double, cheap grade (:func:`fast32`); a soft-label gradient whose terms cancel is redone.
- float64: in double-double with the cheap forms :func:`exp_hilo` and :func:`log_hilo` (~2**-57,
  :func:`fast64`); redone (:func:`precise`, exp_dd and log_dd, ~2**-93) where |x| > FAST64_RANGE, where
  q^gamma is below e^-FAST64_RANGE, or where a soft-label gradient's terms cancel below FAST64_CANCEL of
  the largest.
- float32 calls with gamma > F32_GAMMA_MAX: every element by :func:`precise`.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, HALF, INF, LANES, LN2_HI, LN2_LO, LN2_LO2, LOG2E, NAN, ONE, add_block_sums, chunk_stop,
                   dd_add, dd_div, dd_mul, exp_dd, exp_hilo, exp_nonpos, fast_two_sum, flagged, helper, is_f32, jit,
                   log, log1p, log_dd, log_hilo, pasted, store_chunk, two_prod, two_sum, urange)

#: The hot loop's mark in the LLVM IR: the range reduction of exp (rint) on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"

#: The contract of the declaration (stableloss/_api.py): float32 soft-label gradients whose terms cancel below
#: SOFT_LABEL_CANCEL of the largest are redone; float32 calls with a larger gamma than F32_GAMMA_MAX are all
#: redone; num below TINY is formed from logs.
SOFT_LABEL_CANCEL = np.float64(KERNELS["focal"].constant("SOFT_LABEL_CANCEL"))
F32_GAMMA_MAX = np.float64(KERNELS["focal"].constant("F32_GAMMA_MAX"))
TINY = np.float64(KERNELS["focal"].constant("TINY"))
#: float64: the fast path takes |x| and -gamma log q up to FAST64_RANGE (exp_hilo's lo stays normal enough), and
#: soft-label gradients whose terms cancel no further than FAST64_CANCEL.
FAST64_RANGE = np.float64(KERNELS["focal"].constant("FAST64_RANGE"))
FAST64_CANCEL = np.float64(KERNELS["focal"].constant("FAST64_CANCEL"))
#: e^v rounds to 0 below this v (2**-1075 = e^-745.133).
EXP_ZERO = np.float64(-745.14)


@pasted
def fast32(x, t, alpha, gamma, grad_scale):
    """(loss, scaled gradient, whether the gradient cancels) of an element of a float32 call, in double."""
    positive = x >= 0.0
    e = exp_nonpos(-abs(x), 0.0, True)  # e^-|x|
    l1 = log1p(e, True)
    ot = ONE - t
    xp = x if x > 0.0 else 0.0
    xm = -x if x < 0.0 else 0.0
    ce = l1 + (0.0 if ot == 0.0 else ot * xp) + (0.0 if t == 0.0 else t * xm)  # label factor 0: term 0
    big_a = ONE if positive else e
    big_b = e if positive else ONE
    pos_term = ot * big_a
    neg_term = t * big_b
    num = neg_term + pos_term  # (1 - p_t)(1 + e)
    ln = -xp if t == ONE else (-xm if t == 0.0 else log(num, True))  # log num: exact for hard labels
    q = ONE if gamma == 0.0 else exp_nonpos(gamma * (ln - l1), 0.0, True)  # q^gamma = exp(gamma log q)
    w = alpha * t + (ONE - alpha) * ot if alpha >= 0.0 else ONE
    p = INF if ce == INF else ce * q  # ce = +inf: q^gamma > 0 there
    value = 0.0 if (w == 0.0) & (p == INF) else w * p
    on_e = (t == ONE) if positive else (t == 0.0)
    r = ONE if on_e else e / num
    third = 0.0 if (gamma == 0.0) | (r == 0.0) else gamma * ce * (ONE - 2.0 * t) * r
    n = (pos_term - neg_term) + third
    g = w * q * (n / (ONE + e)) * grad_scale
    cancel = (t > 0.0) & (t < ONE) & (abs(n) < SOFT_LABEL_CANCEL * max(max(pos_term, neg_term), abs(third)))
    return value, g, cancel


@pasted
def fast64(x, t, alpha, gamma, grad_scale):
    """(loss, scaled gradient, whether it needs :func:`precise`: |x| or -gamma log q beyond FAST64_RANGE, or
    NaN; and whether a soft-label gradient cancels) of a float64 element, in double-double from exp_hilo and
    log_hilo (the formulas of :func:`precise`, without its special cases)."""
    positive = x >= 0.0
    ax = abs(x)
    inside = (ax <= FAST64_RANGE) & (t == t)  # false for NaN and +-inf
    e, e_lo = exp_hilo(-min(ax, FAST64_RANGE), 0.0)
    u, u_lo = two_sum(ONE, e)  # 1 + e
    u_lo += e_lo
    w1 = u_lo / u
    l1, l1_lo = log_hilo(u)
    l1, l1_lo = fast_two_sum(l1, l1_lo + (w1 - HALF * w1 * w1))  # log1p(e) = log(u) + log1p(u_lo/u)
    ot, ot_lo = two_sum(ONE, -t)  # 1 - t, exact
    s, s_lo = dd_mul(ot, ot_lo, ax, 0.0) if positive else two_prod(t, ax)
    ce, ce_lo = dd_add(l1, l1_lo, s, s_lo)  # log1p(e) + (1 - t) max(x, 0) + t max(-x, 0)
    a_hi = ONE if positive else e
    a_lo = 0.0 if positive else e_lo
    b_hi = e if positive else ONE
    b_lo = e_lo if positive else 0.0
    tb, tb_lo = dd_mul(t, 0.0, b_hi, b_lo)
    oa, oa_lo = dd_mul(ot, ot_lo, a_hi, a_lo)
    num, num_lo = dd_add(tb, tb_lo, oa, oa_lo)
    hard = (t == 0.0) | (t == ONE)
    on_e = (t == ONE) if positive else (t == 0.0)
    ln, ln_lo = log_hilo(ONE if hard else num)
    ln, ln_lo = fast_two_sum(ln, ln_lo + (0.0 if hard else num_lo / num))
    ln = (-ax if on_e else 0.0) if hard else ln
    ln_lo = 0.0 if hard else ln_lo
    lq, lq_lo = dd_add(ln, ln_lo, -l1, -l1_lo)  # log q
    v, v_lo = dd_mul(lq, lq_lo, gamma, 0.0)
    inside &= v >= -FAST64_RANGE
    q, q_lo = exp_hilo(max(v, -FAST64_RANGE), v_lo)
    q = ONE if gamma == 0.0 else q
    q_lo = 0.0 if gamma == 0.0 else q_lo
    one_alpha, one_alpha_lo = two_sum(ONE, -alpha)
    p, p_lo = two_prod(alpha, t)
    c, c_lo = dd_mul(one_alpha, one_alpha_lo, ot, ot_lo)
    a, a_lo = dd_add(p, p_lo, c, c_lo)  # alpha_t, terms >= 0
    a = a if alpha >= 0.0 else ONE
    a_lo = a_lo if alpha >= 0.0 else 0.0
    value, value_lo = dd_mul(ce, ce_lo, q, q_lo)
    value, value_lo = dd_mul(a, a_lo, value, value_lo)
    r, r_lo = dd_div(e, e_lo, num, num_lo)
    r = ONE if on_e else r
    r_lo = 0.0 if on_e else r_lo
    f, f_lo = two_sum(ONE, -2.0 * t)  # 1 - 2t, exact
    th, th_lo = dd_mul(ce, ce_lo, r, r_lo)
    th, th_lo = dd_mul(th, th_lo, f, f_lo)
    th, th_lo = dd_mul(th, th_lo, gamma, 0.0)
    n, n_lo = dd_add(oa, oa_lo, -tb, -tb_lo)
    n, n_lo = dd_add(n, n_lo, th, th_lo)
    d, d_lo = dd_div(n, n_lo, u, u_lo)
    g, g_lo = dd_mul(a, a_lo, q, q_lo)
    g, g_lo = dd_mul(g, g_lo, d, d_lo)
    g, g_lo = dd_mul(g, g_lo, grad_scale, 0.0)
    cancel = (~hard) & (abs(n) < FAST64_CANCEL * max(max(oa, tb), abs(th)))
    return value + value_lo, g + g_lo, ~inside, cancel


# ---------------------------------------------------------------------------------------------------
# The double-double path (kernels/focal.c, focal_eval_dd)

@helper
def exp_dd_nonpos(v):
    """e^v as a double-double for v <= 0 (-inf: 0)."""
    if v < EXP_ZERO:
        return 0.0, 0.0
    return exp_dd(v)


@helper
def log1p_dd(hi, lo):
    """log(1 + v) for v = hi + lo in [0, 1]: log(u) + w - w^2/2, u + c = 1 + v, w = c/u (focal_log1p_dd)."""
    u, c = two_sum(ONE, hi)
    w = (c + lo) / u
    l_hi, l_lo = log_dd(u)
    return dd_add(l_hi, l_lo, w, -HALF * w * w)


@helper
def exp_dd_of(hi, lo):
    """exp(hi + lo) for hi <= 0: e^hi (1 + lo)."""
    e, e_lo = exp_dd_nonpos(hi)
    return dd_add(e, e_lo, e * lo, 0.0)


@helper
def log_tiny(t, ax):
    """log(t + (1 - t) e^-|x|) for t < TINY, x < 0: log-add-exp of log t and -|x| - t (log(1 - t) = -t)."""
    lt, lt_lo = log_dd(t)
    if ax == INF:
        return lt, lt_lo
    lb, lb_lo = two_sum(-ax, -t)
    if lt >= lb:
        m, m_lo, o, o_lo = lt, lt_lo, lb, lb_lo
    else:
        m, m_lo, o, o_lo = lb, lb_lo, lt, lt_lo
    d, d_lo = dd_add(o, o_lo, -m, -m_lo)  # <= 0
    s, s_lo = log1p_dd(*exp_dd_of(d, d_lo))
    return dd_add(m, m_lo, s, s_lo)


@helper
def power(l, l_lo, gamma):
    """q^gamma = exp(gamma log q) as (hi, lo, k), q^gamma = (hi + lo) 2**-k: shifted by k ln 2 (k <= 2040)
    below e^-600, 0 beyond (focal_power)."""
    if gamma == 0.0:
        return ONE, 0.0, 0.0
    if not l > -INF:
        return 0.0, 0.0, 0.0
    u, u_lo = dd_mul(l, l_lo, gamma, 0.0)
    if not u > -INF:
        return 0.0, 0.0, 0.0
    k = min(np.floor((-u - 300.0) * LOG2E + HALF), 2040.0) if u < -600.0 else 0.0
    k_lo, k_err = two_prod(k, LN2_LO)
    k_hi, k_lo = fast_two_sum(k * LN2_HI, k_lo)  # k LN2_HI is exact
    s, s_lo = dd_add(u, u_lo, k_hi, k_lo + (k_err + k * LN2_LO2))  # gamma log q + k ln 2
    if s < -745.0:
        return 0.0, 0.0, 0.0
    hi, lo = exp_dd_of(min(s, 0.0), s_lo)
    return hi, lo, k


@helper
def precise(x, t, alpha, gamma, grad_scale):
    """(loss, scaled gradient) of one element in double-double, every special case (focal_eval_dd)."""
    if np.isnan(x) or np.isnan(t):
        return NAN, NAN
    positive = x >= 0.0
    ax = abs(x)
    e, e_lo = exp_dd_nonpos(-ax)
    l1, l1_lo = log1p_dd(e, e_lo)
    ot, ot_lo = two_sum(ONE, -t)
    if ax < INF:
        s, s_lo = dd_mul(ot, ot_lo, ax, 0.0) if positive else two_prod(t, ax)
        ce, ce_lo = dd_add(l1, l1_lo, s, s_lo)
    else:  # the limit: +inf, or 0 where the label factor is 0
        ce, ce_lo = (INF if (ot if positive else t) > 0.0 else 0.0), 0.0
    a_hi, a_lo, b_hi, b_lo = (ONE, 0.0, e, e_lo) if positive else (e, e_lo, ONE, 0.0)
    tb, tb_lo = dd_mul(t, 0.0, b_hi, b_lo)
    oa, oa_lo = dd_mul(ot, ot_lo, a_hi, a_lo)
    num, num_lo = dd_add(tb, tb_lo, oa, oa_lo)
    hard = t == 0.0 or t == ONE
    on_e = (t == ONE) if positive else (t == 0.0)
    tiny = not hard and num < TINY
    if hard:
        ln, ln_lo = (-ax if on_e else 0.0), 0.0
    elif tiny:
        ln, ln_lo = log_tiny(t, ax)
    else:
        ln, ln_lo = log_dd(num)
        ln, ln_lo = dd_add(ln, ln_lo, num_lo / num, 0.0)
    lq, lq_lo = (dd_add(ln, ln_lo, -l1, -l1_lo) if ln > -INF else (-INF, 0.0))
    q, q_lo, k = power(lq, lq_lo, gamma)
    w, w_lo = ONE, 0.0
    if alpha >= 0.0:
        p, p_lo = two_prod(alpha, t)
        c, c_lo = two_sum(ONE, -alpha)
        c, c_lo = dd_mul(c, c_lo, ot, ot_lo)
        w, w_lo = dd_add(p, p_lo, c, c_lo)
    scale = 2.0 ** -k
    if ce < INF:
        v, v_lo = dd_mul(ce, ce_lo, q, q_lo)
        v, v_lo = dd_mul(w, w_lo, v, v_lo)
        value = (v + v_lo) * scale
    else:
        value = 0.0 if w == 0.0 else INF  # q^gamma > 0 there
    r, r_lo = ONE, 0.0
    if not on_e:
        if e == 0.0:
            r = 0.0
        elif not tiny:
            r, r_lo = dd_div(e, e_lo, num, num_lo)
        else:  # e/num = exp(-|x| - log num) <= 1 (to t)
            arg, arg_lo = dd_add(-ax, 0.0, -ln, -ln_lo)
            r, r_lo = exp_dd_of(min(arg, 0.0), arg_lo)
    th, th_lo = 0.0, 0.0
    if gamma != 0.0 and r != 0.0:
        f, f_lo = two_sum(ONE, -2.0 * t)
        th, th_lo = dd_mul(ce, ce_lo, r, r_lo)
        th, th_lo = dd_mul(th, th_lo, f, f_lo)
        th, th_lo = dd_mul(th, th_lo, gamma, 0.0)
    n, n_lo = dd_add(oa, oa_lo, -tb, -tb_lo)
    n, n_lo = dd_add(n, n_lo, th, th_lo)
    den, den_lo = dd_add(ONE, 0.0, e, e_lo)
    d, d_lo = dd_div(n, n_lo, den, den_lo)
    g, g_lo = dd_mul(w, w_lo, q, q_lo)
    g, g_lo = dd_mul(g, g_lo, d, d_lo)
    g, g_lo = dd_mul(g, g_lo, grad_scale, 0.0)
    return value, (0.0 if q == 0.0 else (g + g_lo) * scale)


@jit
def kernel(inputs, targets, n_rows, alpha, gamma, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(inputs)
    values = np.empty(CHUNK)
    grads = np.empty(CHUNK)
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    want_grad = grad.size > 0
    all_precise = f32 and gamma > F32_GAMMA_MAX
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        redo_count = 0
        for j in urange(0, count):
            x = np.float64(inputs[first + j])
            t = np.float64(targets[first + j])
            if f32:
                value, g, cancel = fast32(x, t, alpha, gamma, grad_scale)
                redo = all_precise
            else:
                value, g, redo, cancel = fast64(x, t, alpha, gamma, grad_scale)
            redo |= cancel & want_grad
            values[j] = value
            grads[j] = g
            redo_flags[j] = redo
            redo_count += redo
        if redo_count > 0:
            for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                values[j], grads[j] = precise(np.float64(inputs[first + j]), np.float64(targets[first + j]), alpha,
                                              gamma, grad_scale)
        store_chunk(grad, start, count, grads)
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
