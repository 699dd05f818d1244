"""Gaussian negative log-likelihood, elementwise (``sl_gnll``).

v = max(var, eps) (the clamp acts on the value, NaN stays NaN), d = x - t, r = d/v:
loss = (log v + d r)/2 (+ log(2 pi)/2), grad_input = r, grad_var = (1/v - r^2)/2 at the clamped v.
d r = d^2/v stays finite where d^2 alone would overflow.  float64: d, r and d r carry their rounding
errors (TwoSum, fma products), so the quadratic term is accurate to ~2**-100.
"""

import numpy as np

from ._jit import CHUNK, HALF, INF, LANES, ONE, add_block_sums, chunk_stop, is_wide, jit, log, two_prod, urange
from .mse import difference

#: Kinds of the arguments of sl_gnll, in order (see the package __init__).
ARGS = ("in", "in", "in", "int", "float", "int", "float", "int", "out", "out", "out", "sums")

LOG_2PI_HALF = np.float64(0.5 * np.log(2.0 * np.pi))


@jit
def kernel(x, target, var, n, eps, full, grad_scale, rows_per_block, loss, grad_input, grad_var, block_sums):
    wide = is_wide(x)
    want_loss = loss.size > 0
    want_grad_input = grad_input.size > 0
    want_grad_var = grad_var.size > 0
    want_sums = block_sums.size > 0
    constant = LOG_2PI_HALF if full != 0 else 0.0
    values = np.empty(CHUNK)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    start = 0
    while start < n:
        stop = chunk_stop(start, n, CHUNK, rows_per_block)
        first = np.uint64(start)
        for j in urange(start, stop):
            v = np.float64(var[j])
            v = eps if v < eps else v  # NaN is not < eps: it stays NaN
            d, d_lo = difference(x[j], target[j], wide)
            r = d / v
            if wide:
                rv, rv_lo = two_prod(r, v)
                r_lo = (((d - rv) - rv_lo) + d_lo) / v  # r + r_lo = (d + d_lo)/v
                r_lo = r_lo if abs(r_lo) < INF else 0.0
                q, q_lo = two_prod(d, r)  # d^2/v as d (d/v): finite whenever the quotient is
                correction = q_lo + (d * r_lo + d_lo * r)
                q_lo = correction if abs(correction) < INF else 0.0
            else:
                r_lo = 0.0
                q = d * r
                q_lo = 0.0
            value = HALF * ((log(v, wide) + q) + q_lo) + constant
            values[j - first] = value
            if want_loss:
                loss[j] = value
            if want_grad_input:
                grad_input[j] = (r + r_lo) * grad_scale
            if want_grad_var:
                grad_var[j] = (HALF * (ONE / v - r * r)) * grad_scale
        if want_sums:
            add_block_sums(block_sums, rows_per_block, n, start, values, stop - start, lanes, wide, running)
        start = stop
