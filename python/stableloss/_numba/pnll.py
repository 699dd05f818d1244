"""Poisson negative log-likelihood, elementwise (``sl_pnll``).

log_input: loss = e^x - t x, grad = e^x - t; otherwise lam = x + eps (exact as lam + lam_lo): loss = x - t log(lam),
grad = (lam - t)/lam with lam - t formed exactly.  With full, where t > 1, the loss is t psi(w) + log(2 pi t)/2
(- eps), psi(w) = w - log1p(w), w = (e^x - t)/t or (lam - t)/t.  The same algorithm as kernels/pnll.c: e^x and
log(lam) in double (float32) or double-double (float64, exp_hl, log_hl), the products t x and t log(lam) exact,
one subtraction; the terms that still cancel below CANCEL times their largest term, and the special values, are
redone by the scalar formulas (slow), from the triple-double exp_td and log_td where they cancel.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, EXP_TD_RANGE, HALF, INF, LANES, LN2_HI, LN2_LO, LN2_LO2, NAN, ONE, add_block_sums,
                   chunk_stop, dd_add, dd_div, exp, exp_hl, exp_td, flagged, fma, helper, is_f32, jit, log, log_dd,
                   log_hl, log_td, pasted, scale2, store_chunk, td_set, two_prod, two_sum, urange)

#: The hot loop's mark in the LLVM IR: exp's rounding of x / ln 2 on a vector (tests/test_numba.py finds it there,
#: vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"

_CONSTANT = KERNELS["pnll"].constant
#: The contract of the declaration (stableloss/_api.py; kernels/pnll.c says what each decides).
CANCEL_F32 = np.float64(_CONSTANT("CANCEL_F32"))
CANCEL_F64 = np.float64(_CONSTANT("CANCEL_F64"))
CANCEL_WIDE = np.float64(_CONSTANT("CANCEL_WIDE"))
EXP_RANGE_F64 = np.float64(_CONSTANT("EXP_RANGE_F64"))
OVERFLOW_F64 = np.float64(_CONSTANT("OVERFLOW_F64"))
PSI_LOW = np.float64(_CONSTANT("PSI_LOW"))
PSI_HIGH = np.float64(_CONSTANT("PSI_HIGH"))
EPS_NEAR = np.float64(_CONSTANT("EPS_NEAR"))
T_HL_MAX = np.float64(_CONSTANT("T_HL_MAX"))
HALF_LOG_2PI = np.float64(float.fromhex("0x1.d67f1c864beb5p-1"))  # log(2 pi)/2 = HALF_LOG_2PI + HALF_LOG_2PI_LO
HALF_LOG_2PI_LO = np.float64(float.fromhex("-0x1.65b5a1b7ff5dfp-55"))
#: R(z) = z sum_k 2 z^k/(2k + 3) of psi's atanh series: 16 terms reach 2**-59 of R at z = s^2 <= 0.089.
(R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15) = (
    np.float64(2.0 / (2 * k + 3)) for k in range(16))


@pasted
def psi_r(z):
    return fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(R15, z, R14), z, R13), z, R12), z, R11), z, R10),
                                                             z, R9), z, R8), z, R7), z, R6), z, R5), z, R4), z, R3), z,
                       R2), z, R1), z, R0)


@pasted
def full_loss(t, w, w_lo, u, u_lo, c, c_lo, f32):
    """The full loss t psi(w) + c, psi(w) = w - log1p(w), u = log1p(w) from the caller (x - log t, or log(lam) -
    log t): psi = s (w - R(s^2)), s = w/(2 + w), on [PSI_LOW, PSI_HIGH] (no cancellation), w - u outside (which
    cancels by at most 4.1); float64 in double-double from the low parts (float32: zero)."""
    d, d_lo = two_sum(2.0, w)
    d_lo += w_lo
    s = w / d  # w/(2 + w), the quotient's remainder by FMA
    s_lo = fma(-s, d_lo, fma(-s, d, w) + w_lo) / d
    z = s * s
    inner, inner_lo = two_sum(w, -z * psi_r(z))
    inner_lo += w_lo
    series = s * inner
    series_lo = fma(s_lo, inner, fma(s, inner_lo, fma(s, inner, -series)))
    out, out_lo = two_sum(w, -u)
    out_lo += w_lo - u_lo
    inside = w >= PSI_LOW and w <= PSI_HIGH
    psi = series if inside else out
    psi_lo = series_lo if inside else out_lo
    if f32:
        return t * psi + c
    tp = t * psi
    tp_lo = fma(t, psi_lo, fma(t, psi, -tp))
    total, total_lo = two_sum(tp, c)
    value = total + (total_lo + (tp_lo + c_lo))
    return value if abs(tp) < INF else tp


@pasted
def log_t(t, slow, f32):
    """(log t, low part) for t > 1: float32 in double, float64 by log_hl, or (slow, beyond its range) log_dd."""
    y = log(t, False)
    if f32:
        return y, 0.0
    if slow and y > EXP_RANGE_F64:
        return log_dd(t)
    return log_hl(t, 0.0, y)


@helper
def exp_minus_td(x, t):
    """(ok, n, ts, g, g_lo, v): e^x = 2**n m (exp_td), ts = t 2**-n, e^x - t = 2**n (g + g_lo) and e^x - t x =
    2**n v; ok is False where ts overflows (|t| far above e^x: nothing cancels there)."""
    n, m0, m1, m2 = exp_td(x)
    ts = scale2(t, -n)
    if not abs(ts) < INF:
        return False, n, t, 0.0, 0.0, 0.0
    d, c = two_sum(m0, -ts)  # exact where it cancels (Sterbenz)
    d, e = two_sum(d, m1)
    g, g_lo = two_sum(d, c + e + m2)
    p, p_lo = two_prod(ts, x)  # t x 2**-n, without the overflow of t x
    v, c = two_sum(m0, -p)
    v, e = two_sum(v, m1)
    c += e
    v, e = two_sum(v, -p_lo)
    return True, n, ts, g, g_lo, v + (c + e + m2)


@helper
def rate_td(x, t, lam, lam_lo, halved):
    """x - t log(lam) from log_td (lam = lam/2 halved), x and t scaled by 2**-12 where t log(lam) could overflow."""
    l0, l1, l2 = log_td(lam, lam_lo)
    if halved:  # log(lam) + ln 2
        h, h_err = two_sum(l0, LN2_HI)
        m, m_err = two_sum(h_err, l1)
        l0, l1, l2 = td_set(h, m, m_err + l2 + LN2_LO + LN2_LO2)
    scale = 2.0**-12 if abs(x) > 2.0**1000 or abs(t) > 2.0**1000 else ONE
    x *= scale
    t *= scale
    p1, e1 = two_prod(t, l0)
    p2, e2 = two_prod(t, l1)
    v, c = two_sum(x, -p1)  # exact where it cancels (Sterbenz)
    v, e = two_sum(v, -e1)
    c += e
    v, e = two_sum(v, -p2)
    c += e
    return (v + (c - e2 - t * l2)) / scale


@pasted
def log_input_parts(x, t, hl, f32):
    """e^x (+ e_lo), t x (+ p_lo), e^x - t = g + g_lo and e^x - t x of log_input; e^x from exp_hl (float64, hl) or
    exp (float32 in double: t x exact, 24 by 24 bits)."""
    if f32 or not hl:
        e = exp(x, 0.0, False)
        e_lo = 0.0
    else:
        e, e_lo = exp_hl(x)
    if f32:
        p = t * x
        p_lo = 0.0
    else:
        p, p_lo = two_prod(t, x)
    g, g_lo = two_sum(e, -t)
    value = (e - p) + (e_lo - p_lo)
    return e, e_lo, p, g, g_lo + e_lo, (e if t == 0.0 else value)  # 0 x = 0 whatever x


@pasted
def stirling(t, w, w_lo, a, a_lo, eps, l, l_lo, f32):
    """The full loss t psi(w) + log(2 pi t)/2 - eps, t > 1, from w = w + w_lo and log1p(w) = a - log t: a = x
    with log_input (eps = 0), a = log(lam) without; log t = l + l_lo (kernels/pnll.c, pnll_full and its callers)."""
    u, u_lo = two_sum(a, -l)
    c, c_lo = two_sum(HALF_LOG_2PI, HALF * l)
    c_lo += fma(HALF, l_lo, 0.0 if f32 else HALF_LOG_2PI_LO)
    c, c_err = two_sum(c, -eps)
    return full_loss(t, w, w_lo, u, (u_lo - l_lo) + a_lo, c, c_lo + c_err, f32)


@pasted
def log_input_fast(input, target, full, grad_scale, f32):
    """(loss, grad_scale times the gradient, redo, g, g_lo) with log_input by the vector formulas (kernels/pnll.c,
    pnll_lanes): redo is set where they do not hold; g + g_lo = e^x - t for the full loss."""
    x = np.float64(input)
    t = np.float64(target)
    e, e_lo, p, g, g_lo, value = log_input_parts(x, t, True, f32)
    cancel = CANCEL_F32 if f32 else CANCEL_F64
    redo = (not (abs(x) < INF and abs(t) < INF) or abs(g) < cancel * e or abs(p) == INF or
            (t != 0.0 and abs(value) < cancel * max(e, abs(p))))
    if not f32:
        redo = redo or abs(x) > EXP_RANGE_F64 or (full and t > T_HL_MAX)
    return value, (g + g_lo) * grad_scale, redo, g, g_lo


@pasted
def rate_parts(x, t, eps, halve, f32):
    """Without log_input, on x, t, eps times halve (1, or 1/2 where x + eps overflows): lam + lam_lo = x + eps
    exactly, lam - t = num + num_lo exactly, num_r = num + num_lo (NaN where x - t overflows), the gradient
    (lam - t)/lam (t = 0: 1) and y = log(lam) (log 1 where lam is not positive and finite)."""
    xs = halve * x
    ts = halve * t
    es = halve * eps
    lam, lam_lo = two_sum(xs, es)
    d, d_lo = two_sum(xs, -ts)
    num, num_lo = two_sum(d, es)
    num_lo += d_lo
    num_r = num + num_lo if abs(d) < INF else NAN
    q = num / lam  # (num + num_lo)/(lam + lam_lo), the quotient's remainder by FMA
    correction = (fma(-q, lam, num) + num_lo - q * lam_lo) / lam
    g = q + (correction if abs(correction) < INF else 0.0)
    g = (NAN if x != x else ONE) if t == 0.0 else g  # the gradient of x alone
    positive = lam > 0.0 and lam < INF
    return lam, lam_lo, num, num_lo, num_r, g, log(lam if positive else ONE, False), positive


@pasted
def rate_value(x, t, l, l_lo, lam, f32):
    """x - t log(lam) with log(lam) = l + l_lo (t = 0: x for lam >= 0, else NaN), and t log(lam)."""
    p, p_lo = two_prod(t, l)
    if f32:
        p = t * l
        p_lo = 0.0
    correction = p_lo + t * l_lo
    value = (x - p) - (correction if abs(correction) < INF else 0.0)
    return ((x if lam >= 0.0 else NAN) if t == 0.0 else value), p


@pasted
def rate_fast(input, target, full, eps, grad_scale, f32):
    """(loss, grad_scale times the gradient, redo, num, num_lo, l, l_lo) without log_input by the vector formulas
    (kernels/pnll.c, pnll_lanes): redo is set where they do not hold; num + num_lo = lam - t and l + l_lo =
    log(lam) for the full loss."""
    x = np.float64(input)
    t = np.float64(target)
    lam, lam_lo, num, num_lo, num_r, g, y, positive = rate_parts(x, t, eps, ONE, f32)
    if f32:
        l = y
        l_lo = lam_lo / lam
    else:
        l, l_lo = log_hl(lam, lam_lo, y)
    value, p = rate_value(x, t, l, l_lo, lam, f32)
    g *= grad_scale
    largest = max(abs(x), abs(t) * max(ONE, abs(l)))
    cancel = CANCEL_F32 if f32 else CANCEL_F64
    redo = (not (abs(x) < INF and abs(t) < INF) or not positive or abs(p) == INF or not abs(g) < INF or
            (t != 0.0 and abs(value) < cancel * largest))
    if not f32:
        redo = redo or abs(y) > EXP_RANGE_F64 or (full and t > ONE and (t > T_HL_MAX or eps > EPS_NEAR))
    return value, g, redo, num, num_lo, l, l_lo


#: The shared pieces as functions of their own for the slow paths, which run element by element: pasted there
#: too, they would multiply the kernel's compile time for nothing.
parts_of_log_input = helper(log_input_parts.py_func)
parts_of_rate = helper(rate_parts.py_func)
value_of_rate = helper(rate_value.py_func)
stirling_of = helper(stirling.py_func)
log_of_t = helper(log_t.py_func)


@helper
def log_input_slow(input, target, full, grad_scale, f32):
    """(loss, grad_scale times the gradient) with log_input, every refinement (kernels/pnll.c, pnll_log_input)."""
    x = np.float64(input)
    t = np.float64(target)
    finite = abs(x) < INF and abs(t) < INF
    e, e_lo, p, g, g_lo, value = parts_of_log_input(x, t, abs(x) <= EXP_RANGE_F64, f32)
    if abs(p) == INF and finite and abs(e) < INF:  # t x overflows: e^x - t x = 2 (e^x/2 - (t/2) x)
        value = 2.0 * ((HALF * e - (HALF * t) * x) + HALF * e_lo)
    above = x == INF or (not f32 and x > OVERFLOW_F64)  # e^x - t x > DBL_MAX
    if above and t != 0.0:
        value = NAN if t == INF or t != t else INF
    wide = not f32 and finite and abs(x) > EXP_RANGE_F64 and abs(x) <= EXP_TD_RANGE
    cancel = CANCEL_WIDE if wide else (CANCEL_F32 if f32 else CANCEL_F64)
    overflow = wide and e == INF
    slow_v = finite and t != 0.0 and not above and (overflow or abs(value) < cancel * max(e, abs(p)))
    g_lo = g_lo if abs(g) < INF else 0.0
    grad = (g + g_lo) * grad_scale
    ts = t
    if slow_v or (finite and (overflow or abs(g) < cancel * e)):
        ok, n, t_scaled, tg, tg_lo, v = exp_minus_td(x, t)
        if ok:
            ts, g, g_lo = t_scaled, tg, tg_lo
            grad = scale2((g + g_lo) * grad_scale, n)
            if slow_v:
                value = scale2(v, n)
    if full and t > ONE and x == x:
        if t == INF:
            value = NAN  # t log t - t
        elif abs(x) == INF:
            value = INF  # w = +inf, or w = -1
        else:
            l, l_lo = log_of_t(t, True, f32)
            w = g / ts
            w_lo = 0.0 if f32 or abs(g) == INF else (fma(-w, ts, g) + g_lo) / ts
            value = INF if w == INF else stirling_of(t, w, w_lo, x, 0.0, 0.0, l, l_lo, f32)
    return value, grad


@helper
def rate_slow(input, target, full, eps, grad_scale, f32):
    """(loss, grad_scale times the gradient) without log_input, every refinement (kernels/pnll.c, pnll_rate)."""
    x = np.float64(input)
    t = np.float64(target)
    halved = abs(x + eps) == INF and abs(x) < INF  # x + eps overflows: lam = 2 (x/2 + eps/2)
    halve = HALF if halved else ONE
    lam, lam_lo, num, num_lo, num_r, g, y, positive = parts_of_rate(x, t, eps, halve, f32)
    if not abs(num_r) < INF and t != 0.0:
        g = ONE - (halve * t) / lam  # x - t overflows (no cancellation), or an infinite input
    g *= grad_scale
    if abs(g) == INF and abs(num_r) < INF and lam != 0.0:
        g = (num_r * grad_scale) / lam  # the quotient overflows, scaled it need not
    wide = not f32 and abs(y) > EXP_RANGE_F64
    if not positive:
        l = log(lam, False)  # -inf at 0, NaN below, +inf at +inf
        l_lo = 0.0
    elif f32 or wide:
        l = y
        l_lo = lam_lo / lam  # log(lam + lam_lo) = log(lam) + lam_lo/lam
    else:
        l, l_lo = log_hl(lam, lam_lo, y)
    if halved:
        l, l_lo = dd_add(l, l_lo, LN2_HI, LN2_LO)
    value, p = value_of_rate(x, t, l, l_lo, lam, f32)
    if x == INF and t != 0.0:
        value = NAN if t == INF or t != t else INF
    cancel = CANCEL_WIDE if wide else (CANCEL_F32 if f32 else CANCEL_F64)
    largest = max(abs(x), abs(t) * max(ONE, abs(l)))
    finite = abs(x) < INF and abs(t) < INF and positive
    if finite and t != 0.0 and (abs(value) < cancel * largest or abs(p) == INF):  # also where t log(lam) overflows
        value = rate_td(x, t, lam, lam_lo, halved)
    if full and t > ONE and value == value:
        if t == INF:
            value = NAN
        elif x == INF or lam == 0.0:
            value = INF  # w = +inf, or w = -1
        else:
            if not f32 and eps > EPS_NEAR:
                lt, lt_lo = log_dd(t)
            else:
                lt, lt_lo = log_of_t(t, True, f32)
            if wide:  # log(lam) beyond log_hl's range
                l, l_lo = log_dd(lam)
                l, l_lo = dd_add(l, l_lo + lam_lo / lam, LN2_HI if halved else 0.0, LN2_LO if halved else 0.0)
            if f32:
                w = (num + num_lo) / (halve * t)
                w_lo = 0.0
            else:
                w, w_lo = dd_div(num, num_lo, halve * t, 0.0)
            value = INF if w == INF else stirling_of(t, w, w_lo, l, l_lo, eps, lt, lt_lo, f32)
    return value, g


@helper
def chunk_log_input(input, target, first, count, full, grad_scale, f32, values, grads, grad_first, redo_flags,
                    diffs, diffs_lo, logs, logs_lo):
    """The terms of input[first:first + count] into values and grads (from grad_first), with e^x - t and x (the
    full loss's pieces) into diffs, diffs_lo, logs, logs_lo; returns how many need a redo."""
    redo_count = 0
    for j in urange(0, count):
        value, g, redo, d, d_lo = log_input_fast(input[first + j], target[first + j], full, grad_scale, f32)
        redo_count += redo
        redo_flags[j] = redo
        values[j] = value
        grads[grad_first + j] = g
        diffs[j] = d
        diffs_lo[j] = d_lo
        logs[j] = input[first + j]
        logs_lo[j] = 0.0
    return redo_count


@helper
def chunk_rate(input, target, first, count, full, eps, grad_scale, f32, values, grads, grad_first, redo_flags,
               diffs, diffs_lo, logs, logs_lo):
    """The same without log_input, with lam - t and log(lam) into diffs, diffs_lo, logs, logs_lo."""
    redo_count = 0
    for j in urange(0, count):
        value, g, redo, d, d_lo, l, l_lo = rate_fast(input[first + j], target[first + j], full, eps, grad_scale, f32)
        redo_count += redo
        redo_flags[j] = redo
        values[j] = value
        grads[grad_first + j] = g
        diffs[j] = d
        diffs_lo[j] = d_lo
        logs[j] = l
        logs_lo[j] = l_lo
    return redo_count


@helper
def chunk_full(target, first, count, eps, f32, values, diffs, diffs_lo, logs, logs_lo):
    """The full loss over values where t > 1, from the pieces the first pass stored, w = (e^x - t)/t or (lam - t)/t
    (eps = 0 with log_input): one loop for both forms, apart from them, so that none is compiled twice."""
    for j in urange(0, count):
        t = np.float64(target[first + j])
        l, l_lo = log_t(t if t > ONE else 2.0, False, f32)
        w = diffs[j] / t
        w_lo = 0.0 if f32 else (fma(-w, t, diffs[j]) + diffs_lo[j]) / t
        value = stirling(t, w, w_lo, logs[j], logs_lo[j], eps, l, l_lo, f32)
        values[j] = value if t > ONE else values[j]


@jit
def kernel(input, target, n_rows, log_input, full, eps, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    values = np.empty(CHUNK)
    want_grad = grad.size > 0
    grads = grad if want_grad else np.empty(CHUNK, grad.dtype)  # the gradients go to grad directly
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    diffs = np.empty(CHUNK)
    diffs_lo = np.empty(CHUNK)
    logs = np.empty(CHUNK)
    logs_lo = np.empty(CHUNK)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    has_full = full != 0
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        grad_first = first if want_grad else np.uint64(0)
        if log_input != 0:
            redo_count = chunk_log_input(input, target, first, count, has_full, grad_scale, f32, values, grads,
                                         grad_first, redo_flags, diffs, diffs_lo, logs, logs_lo)
        else:
            redo_count = chunk_rate(input, target, first, count, has_full, eps, grad_scale, f32, values, grads,
                                    grad_first, redo_flags, diffs, diffs_lo, logs, logs_lo)
        if has_full:
            chunk_full(target, first, count, 0.0 if log_input != 0 else eps, f32, values, diffs, diffs_lo, logs,
                       logs_lo)
        if redo_count > 0:
            for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                if log_input != 0:
                    value, g = log_input_slow(input[first + j], target[first + j], has_full, grad_scale, f32)
                else:
                    value, g = rate_slow(input[first + j], target[first + j], has_full, eps, grad_scale, f32)
                values[j] = value
                grads[grad_first + j] = g
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
