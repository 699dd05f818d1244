"""Negative log-likelihood rows with class-index targets (``sl_nll``): loss = -(w_y x_y), one rounding (the
negation is exact), and the gradient -w_y grad_scale at the target, 0 elsewhere.

A chunk of rows at a time: with a gradient, the chunk's gradient rows (contiguous) are zero-filled in one
vectorized loop, then one loop over the rows reads each row at its target only, forms its loss and stores
its gradient entry (into the lines the fill just wrote), and the losses are summed in lanes.  A chunk holds
at most :data:`GRAD_ELEMENTS` gradient elements, so that those lines are still in the cache.
"""

import numpy as np

from ._jit import CHUNK, LANES, ONE, add_block_sums, chunk_stop, is_f32, jit, store_chunk, urange

#: The hot loop's mark in the LLVM IR: the gradient's zero fill, a store of a vector splat of the zero (the
#: lane sums store no splat; tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"store <(\d+) x (?:float|double)> %broadcast\.splat"

#: Gradient elements zero-filled per chunk of rows (or one row, where a row is wider): 128 KiB of float64.
GRAD_ELEMENTS = 2**14


@jit
def kernel(input, target, weight, n_rows, n_classes, ignore_index, grad_scale, rows_per_block, loss, grad,
           block_sums):
    f32 = is_f32(input)
    want_grad = grad.size > 0
    has_weight = weight.size > 0
    values = np.empty(CHUNK)
    # the fill's zero, loaded at run time: a constant would make LLVM call memset for every chunk instead
    zeros = np.zeros(1, grad.dtype)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    size = max(1, min(CHUNK, GRAD_ELEMENTS // n_classes)) if want_grad else CHUNK
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, size, rows_per_block)
        count = stop - start
        if want_grad:
            zero = zeros[0]
            first = np.uint64(start * n_classes)
            for j in urange(0, count * n_classes):
                grad[first + j] = zero
        for i in range(count):
            row = start + i
            y = target[row]
            value = 0.0
            if y != ignore_index:
                w = np.float64(weight[y]) if has_weight else ONE
                at = np.uint64(row * n_classes + y)
                value = -(w * np.float64(input[at]))  # one rounding: the negation is exact
                if want_grad:
                    grad[at] = -(w * grad_scale)
            values[i] = value
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
