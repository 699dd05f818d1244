"""Mean squared error terms, elementwise (``sl_mse``): loss = w (x - t)^2, grad = 2 w (x - t)."""

import numpy as np

from ._jit import (CHUNK, HALF, INF, LANES, SMALLEST_NORMAL, add_block_sums, chunk_stop, fma, is_f32, jit,
                   load_chunk, pasted, store_chunk, two_diff, two_prod, urange)

#: The hot loop's mark in the LLVM IR: the fused multiply-add of the gradient on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.fma\.v(\d+)f64"

@pasted
def difference(x, t, f32):
    """(d, d_lo): d + d_lo = x - t, exactly for float64 inputs (float32 inputs: the float64 difference)."""
    if not f32:
        return two_diff(np.float64(x), np.float64(t))
    return np.float64(x) - np.float64(t), 0.0


@jit
def kernel(input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    weights = np.ones(CHUNK)  # without a weight they stay 1 (load_chunk's default), never reloaded
    values = np.empty(CHUNK)
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
        for j in urange(0, count):
            d, d_lo = difference(input[first + j], target[first + j], f32)
            w = weights[j]
            if not f32:
                # w (d + d_lo)^2 = w (sq + (sq_lo + 2 d d_lo)) with sq + sq_lo = d^2 exactly: one rounding
                sq, sq_lo = two_prod(d, d)
                correction = sq_lo + 2.0 * d * d_lo
                value = w * (sq + (correction if abs(correction) < INF else 0.0))
                if sq == INF or sq < SMALLEST_NORMAL:  # d^2 overflows or underflows while w d^2 may not
                    value = (w * d) * d
            else:
                value = (w * d) * d
            values[j] = value
            scaled_w = grad_scale * w  # s w first: 2 w alone can overflow
            correction = scaled_w * d_lo  # inf * 0 for w = inf: dropped, as any correction of an inf
            g = 2.0 * fma(scaled_w, d, correction if abs(correction) < INF else 0.0)  # 2 s w (d + d_lo)
            if not f32 and abs(d) == INF and abs(np.float64(input[first + j])) < INF and \
                    abs(np.float64(target[first + j])) < INF:
                # x - t overflows: 2 s w (x - t) = 4 (s w (x/2 - t/2)), halving exact for such x and t
                g = 4.0 * (scaled_w * (HALF * np.float64(input[first + j]) - HALF * np.float64(target[first + j])))
            grads[grad_first + j] = g
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
