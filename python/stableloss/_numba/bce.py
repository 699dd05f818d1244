"""Binary cross-entropy with logits, elementwise (``sl_bce``).

With e = e^{-|x|}: softplus(+-x) = max(+-x, 0) + log1p(e), and the loss
w (pw y softplus(-x) + (1 - y) softplus(x)) is a sum of two terms >= 0 (a term whose label factor is 0
counts as 0, so x = +-inf gives the limit).  sigma(x) = 1/(1 + e) for x >= 0 and e/(1 + e) below; the
gradient w ((1 - y) sigma(x) - pw y sigma(-x)) = w ((1 - y) A - pw y B)/(1 + e) with (A, B) = (1, e)
for x >= 0 and (e, 1) below, never forming 1 - sigma.
"""

import numpy as np

from ._jit import (CHUNK, HALF, LANES, ONE, add_block_sums, chunk_stop, exp_nonpos, fma, is_wide, jit, load_chunk,
                   log1p, one_minus_exp, store_chunk, urange)

#: Kinds of the arguments of sl_bce, in order (see the package __init__).
ARGS = ("in", "in", "in", "in", "int", "float", "int", "out", "out", "sums")


@jit
def kernel(x, target, weight, pos_weight, n, grad_scale, rows_per_block, loss, grad, block_sums):
    wide = is_wide(x)
    weights = np.empty(CHUNK)
    pos_weights = np.empty(CHUNK)
    values = np.empty(CHUNK)
    grads = np.empty(CHUNK)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    start = 0
    while start < n:
        stop = chunk_stop(start, n, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        load_chunk(weight, start, count, weights, 1.0)
        load_chunk(pos_weight, start, count, pos_weights, 1.0)
        for j in urange(0, count):
            v = np.float64(x[first + j])
            y = np.float64(target[first + j])
            w = weights[j]
            pw = pos_weights[j]
            e = exp_nonpos(-abs(v), 0.0, wide)
            log_term = log1p(e, wide)
            positive = v >= 0.0
            softplus_pos = (v if positive else 0.0) + log_term  # softplus(x) = max(x, 0) + log1p(e^-|x|)
            softplus_neg = (0.0 if positive else -v) + log_term  # softplus(-x)
            pos_term = 0.0 if y == 0.0 else (pw * y) * softplus_neg
            neg_term = 0.0 if y == ONE else (ONE - y) * softplus_pos
            values[j] = w * (pos_term + neg_term)
            # (1 + e) ((1 - y) sigma(x) - pw y sigma(-x)) = (1 - y) A - pw y B, (A, B) = (1, e) for x >= 0, (e, 1)
            # below; near x = 0 (e > 1/2) it is written with 1 - e = -expm1(-|x|), whose relative accuracy
            # the difference needs there (e.g. sigma(x) - 1/2 = x/4 + ...), and 1 - (1 - e) is exact
            if abs(v) < HALF:
                one_minus_e = one_minus_exp(-abs(v), wide)
                numerator = fma(pw * y if positive else y - ONE, one_minus_e, fma(-pw, y, ONE - y))
            else:
                numerator = fma(-(pw * y), e if positive else ONE, (ONE - y) * (ONE if positive else e))
            grads[j] = ((grad_scale * w) * numerator) / (ONE + e)
        store_chunk(loss, start, count, values)
        store_chunk(grad, start, count, grads)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n, start, values, count, lanes, wide, running)
        start = stop
