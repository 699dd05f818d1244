"""Huber, smooth L1 and L1 terms, elementwise (``sl_huber``): d = x - t,
loss = w (|d| < delta ? d^2/(2q) : m (|d| - delta/2)), grad = w (|d| < delta ? d/q : m sign(d)), with
q = delta, m = 1 for smooth_l1 (and l1, delta = 0) and q = 1, m = delta for huber.

float64: d + d_lo = x - t exactly decides the branch; r + r_lo = (d + d_lo)/q and |d| - delta/2 as
s + s_lo carry the low parts, so each form is rounded once before the weight.  Where x - t overflows
with x, t finite the same runs on x/2 - t/2; where the unweighted value u overflows or falls below the
normals although w u need not, the term is redone with the weight taken in first.
"""

import numpy as np

from ._jit import (CHUNK, HALF, INF, LANES, ONE, SMALLEST_NORMAL, add_block_sums, chunk_stop, flagged, fma, is_f32,
                   jit, load_chunk, pasted, store_chunk, two_prod, two_sum, urange)
from .mse import difference

#: The hot loop's mark in the LLVM IR: the division d/q on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"fdiv (?:[a-z]+ )*<(\d+) x double>"


@pasted
def term(x, t, w, sw, delta, q, m, slow, f32):
    """(loss, grad, redo) of one element, sw = grad_scale w; redo is set if not slow and the unweighted
    value left the range where w u is right (float64); slow computes that case."""
    h, h_lo = difference(x, t, f32)
    k = ONE  # d = k (h + h_lo)
    if not f32 and abs(h) == INF and abs(np.float64(x)) < INF and abs(np.float64(t)) < INF:
        # x - t overflows: h = x/2 - t/2, d = 2h (halving such x and t is exact)
        h, h_lo = difference(np.float64(x) * HALF, np.float64(t) * HALF, f32)
        k = 2.0
    a = abs(h)
    a_lo = -h_lo if h < 0 else h_lo  # |d| = k (a + a_lo)
    c = delta / k
    quad = (a < c) | ((a == c) & (a_lo < 0))  # |d| < delta, decided on the exact |d|
    # quadratic: r + r_lo = (h + h_lo)/q, the residual h - r q exact by FMA (q = 1: r = h exactly)
    r = h / q
    r_lo = 0.0
    if not f32:
        r_lo = (fma(-r, q, h) + h_lo) / q
        r_lo = r_lo if abs(r_lo) < INF else 0.0
    p, p_lo = two_prod(h, r)
    # (h + h_lo)(r + r_lo) = h r + p_lo + h r_lo + h_lo r, to O(h_lo r_lo)
    correction = (p_lo + (h * r_lo + h_lo * r)) if not f32 else 0.0
    u_quad = k * k * (HALF * (p + (correction if abs(correction) < INF else 0.0)))
    g_quad = k * (sw * (r + r_lo))
    # linear: m (|d| - delta/2) = k m (s + e), s + s_lo = a - c/2 >= c/2 (no cancellation)
    s, s_lo = two_sum(a, -HALF * c)
    e = (s_lo + a_lo) if not f32 else 0.0
    me = m * e
    u_lin = k * fma(m, s, me if abs(me) < INF else 0.0)  # m e overflows only where m s does
    g_lin = (sw * m) * (ONE if h > 0 else (-ONE if h < 0 else h))  # sign(0) = 0, sign(NaN) = NaN
    u = u_quad if quad else u_lin
    g = g_quad if quad else g_lin
    if slow:  # the weight first: (w h/2)(r + r_lo), resp. w (s + e) times m, with the products' errors
        if quad:
            wh, wh_lo = two_prod(w, h)
            half = HALF * wh
            half_lo = HALF * (wh_lo + w * h_lo) if abs(wh) < INF else 0.0
            low = half * r_lo + half_lo * r
            return k * k * fma(half, r, low if abs(low) < INF else 0.0), g, False
        ws, ws_lo = two_prod(w, s)
        low = (ws_lo + w * e) * m if abs(ws) < INF else 0.0
        return k * fma(ws, m, low if abs(low) < INF else 0.0), g, False
    redo = False
    if not f32:  # u overflowed (d finite) or fell below the normals (d != 0) where w u may be neither
        redo = ((u == INF) & (abs(h) < INF)) | ((u < SMALLEST_NORMAL) & (h != 0))
    return w * u, g, redo


@jit
def kernel(input, target, weight, n_rows, delta, smooth, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    q = delta if smooth != 0 else ONE
    m = ONE if smooth != 0 else delta
    weights = np.ones(CHUNK)  # without a weight they stay 1 (load_chunk's default), never reloaded
    values = np.empty(CHUNK)
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    want_grad = grad.size > 0
    grads = grad if want_grad else np.empty(CHUNK, grad.dtype)  # the gradients go to grad directly
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        if weight.size > 0:
            load_chunk(weight, start, count, weights, 1.0)
        grad_first = first if want_grad else np.uint64(0)
        redo_count = 0
        for j in urange(0, count):
            w = weights[j]
            value, g, redo = term(input[first + j], target[first + j], w, grad_scale * w, delta, q, m, False, f32)
            redo_count += redo
            redo_flags[j] = redo
            values[j] = value
            grads[grad_first + j] = g
        if redo_count > 0:
            for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                w = weights[j]
                values[j] = term(input[first + j], target[first + j], w, grad_scale * w, delta, q, m, True, f32)[0]
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
