"""Gaussian negative log-likelihood, elementwise (``sl_gnll``).

v = max(var, eps) (the clamp acts on the value, NaN stays NaN), d = x - t, r = d/v:
loss = (log v + d r)/2 (+ log(2 pi)/2), grad_input = r, grad_var = (1/v - r^2)/2 at the clamped v.
d r = d^2/v stays finite where d^2 alone would overflow.  float64: d, r, d r and log v are carried as
double-doubles, so the loss keeps its accuracy where log v and d^2/v nearly cancel (v < 1), and so does
grad_var where 1/v and r^2 do.  float32: the float64 values are exact enough, except where log v and
d r cancel to below 2**-16 of log v: those terms are redone with the double-double logarithm.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, HALF, INF, LANES, ONE, add_block_sums, chunk_stop, dd_add, flagged, fma, is_f32,
                   jit, log, log_dd, pasted, store_chunk, two_prod, urange)
from .mse import difference

#: The hot loop's mark in the LLVM IR: the division d/v on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"fdiv (?:[a-z]+ )*<(\d+) x double>"

LOG_2PI_HI = np.float64(float.fromhex("0x1.d67f1c864beb5p+0"))  # log(2 pi) = LOG_2PI_HI + LOG_2PI_LO
LOG_2PI_LO = np.float64(float.fromhex("-0x1.65b5a1b7ff5dfp-54"))
#: The contract of the declaration (stableloss/_api.py): a loss below CANCEL_F32 (CANCEL_F64 in float64
#: kernels) times its largest term is redone with log v in double-double.
CANCEL_F32 = np.float64(KERNELS["gnll"].constant("CANCEL_F32"))
CANCEL_F64 = np.float64(KERNELS["gnll"].constant("CANCEL_F64"))


@pasted
def term(x, t, var, eps, constant_hi, constant_lo, slow, f32):
    """(loss, grad_input, grad_var, redo); the loss is (log v + d^2/v + constant)/2 and redo is set if
    not slow and the terms cancel."""
    v = np.float64(var)
    v = eps if v < eps else v  # NaN is not < eps: it stays NaN
    d, d_lo = difference(x, t, f32)
    scale = ONE
    if not f32 and abs(d) == INF and abs(np.float64(x)) < INF and abs(np.float64(t)) < INF:
        # x - t overflows while (x - t)/v need not: work with (x - t)/2 (halving such x and t is exact)
        d, d_lo = difference(np.float64(x) * HALF, np.float64(t) * HALF, f32)
        scale = 2.0
    r = d / v
    if not f32:
        rv, rv_lo = two_prod(r, v)
        r_lo = (((d - rv) - rv_lo) + d_lo) / v  # r + r_lo = (d + d_lo)/v
        r_lo = r_lo if abs(r_lo) < INF else 0.0
        q, q_lo = two_prod(d, r)  # d^2/v as d (d/v): finite whenever the quotient is
        correction = q_lo + (d * r_lo + d_lo * r)
        q_lo = correction if abs(correction) < INF else 0.0
        # 1/v - r^2 as (inv + inv_lo) - (rr + rr_lo): the difference of the leading parts is exact
        inv = ONE / v
        inv_lo = fma(-inv, v, ONE) / v
        rr, rr_lo = two_prod(r, r)
        square = scale * scale  # the (scaled) r^2 and d r below carry scale^2, r carries scale
        rr *= square
        low = inv_lo - square * (rr_lo + 2.0 * r * r_lo)
        grad_var = HALF * ((inv - rr) + (low if abs(low) < INF else 0.0))
        q *= HALF * square  # q + q_lo = d^2/(2v): halved before it can overflow
        q_lo *= HALF * square
    else:
        r_lo = 0.0
        q = HALF * (d * r)
        q_lo = 0.0
        grad_var = HALF * (ONE / v - r * r)
    if slow:
        # log v + d^2/v + constant in double-double: log v < 0 can cancel the two terms >= 0
        log_hi, log_lo = log_dd(v)
        sum_hi, sum_lo = dd_add(HALF * log_hi, HALF * log_lo, q, q_lo)
        sum_hi, sum_lo = dd_add(sum_hi, sum_lo, HALF * constant_hi, HALF * constant_lo)
        value = (INF + q) if v == INF else sum_hi + sum_lo  # log_dd takes finite v; log inf = inf
        redo = False
    else:
        half_log_v = HALF * log(v, f32)
        positive = HALF * constant_hi + q  # the terms >= 0, which log v < 0 can cancel
        value = ((half_log_v + HALF * constant_hi) + q) + q_lo
        redo = abs(value) < (CANCEL_F32 if f32 else CANCEL_F64) * max(abs(half_log_v), positive)
    return value, scale * (r + r_lo), grad_var, redo


@jit
def kernel(input, target, var, n_rows, eps, full, grad_scale, rows_per_block, loss, grad_input, grad_var, block_sums):
    f32 = is_f32(input)
    constant_hi = LOG_2PI_HI if full != 0 else 0.0
    constant_lo = LOG_2PI_LO if full != 0 else 0.0
    values = np.empty(CHUNK)
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    # the gradients (never redone) go to grad_input and grad_var directly where wanted
    want_grad_input = grad_input.size > 0
    want_grad_var = grad_var.size > 0
    grads_input = grad_input if want_grad_input else np.empty(CHUNK, grad_input.dtype)
    grads_var = grad_var if want_grad_var else np.empty(CHUNK, grad_var.dtype)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        input_first = first if want_grad_input else np.uint64(0)
        var_first = first if want_grad_var else np.uint64(0)
        redo_count = 0
        for j in urange(0, count):
            value, g_input, g_var, redo = term(input[first + j], target[first + j], var[first + j], eps,
                                               constant_hi, constant_lo, False, f32)
            redo_count += redo
            redo_flags[j] = redo
            values[j] = value
            grads_input[input_first + j] = g_input * grad_scale
            grads_var[var_first + j] = g_var * grad_scale
        if redo_count > 0:
            for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                values[j] = term(input[first + j], target[first + j], var[first + j], eps, constant_hi, constant_lo, True,
                                 f32)[0]
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
