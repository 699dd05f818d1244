"""Negative log-likelihood rows with class-index targets (``sl_nll``): loss = -(w_y x_y), one rounding (the
negation is exact), and the gradient -w_y grad_scale at the target, 0 elsewhere.

A chunk of rows at a time: each row's x_y and w_y gathered into buffers (the row read at its target only), the
losses formed in one vectorized loop, and with a gradient the chunk's gradient rows (contiguous) zero-filled
in one loop, which LLVM turns into a memset, before the targets' entries are stored.  A chunk holds at most
:data:`GRAD_ELEMENTS` gradient elements, so that the stores find the zeroed rows in the cache.
"""

import numpy as np

from ._jit import CHUNK, LANES, ONE, add_block_sums, chunk_stop, is_f32, jit, store_chunk, urange

#: The hot loop's mark in the LLVM IR: the product w_y x_y on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"fmul (?:[a-z]+ )*<(\d+) x double>"

#: Gradient elements zero-filled per chunk of rows (or one row, where a row is wider): 128 KiB of float64.
GRAD_ELEMENTS = 2**14


@jit
def kernel(input, target, weight, n_rows, n_classes, ignore_index, grad_scale, rows_per_block, loss, grad,
           block_sums):
    f32 = is_f32(input)
    want_grad = grad.size > 0
    picked = np.empty(CHUNK)  # x_y of a chunk's rows
    weights = np.empty(CHUNK)  # w_y
    values = np.empty(CHUNK)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    size = max(1, min(CHUNK, GRAD_ELEMENTS // n_classes)) if want_grad else CHUNK
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, size, rows_per_block)
        count = stop - start
        if want_grad:
            first = np.uint64(start * n_classes)
            for j in urange(0, count * n_classes):
                grad[first + j] = 0.0
        for i in range(count):
            row = start + i
            y = target[row]
            if y == ignore_index:  # w = 0, x = -0: the loss -(w x) is +0
                weights[i] = 0.0
                picked[i] = -0.0
            else:
                w = np.float64(weight[y]) if weight.size > 0 else ONE
                at = np.uint64(row * n_classes + y)
                weights[i] = w
                picked[i] = input[at]
                if want_grad:
                    grad[at] = -(w * grad_scale)
        for i in urange(0, count):
            values[i] = -(weights[i] * picked[i])  # one rounding: the negation is exact
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
