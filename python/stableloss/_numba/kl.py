"""Kullback-Leibler divergence terms, elementwise (``sl_kl``), input = log q.

Target p: loss = p (log p - input), grad = -p; log target lp: loss = e^lp (lp - input), grad = -e^lp.
Where p == 0 (lp == -inf) both are 0 (0 log 0 = 0), also for input = -inf, but the loss is NaN against
an input of NaN or +inf; a target p = +inf (no probability) gives a NaN loss.  log p - input cancels where p is close to q:
float64 kernels take log p as a double-double (log_dd), float32 ones redo the terms with
|log p - input| < 2**-16 |input| that way.  Below lp = -700, e^lp loses precision (subnormal) or
underflows while e^lp (lp - input) need not: those terms are e^(lp + log|lp - input|), the exponent
in double-double.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, LANES, add_block_sums, chunk_stop, exp, flagged, fma, helper, is_f32, jit, log, log_dd,
                   pasted, store_chunk, two_diff, two_sum, urange)

#: The hot loop's mark in the LLVM IR: the division of the logarithm on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"fdiv (?:[a-z]+ )*<(\d+) x double>"

#: The contract of the declaration (stableloss/_api.py): terms with |log p - input| < CANCEL_F32 |input|
#: (CANCEL_F64 in float64 kernels) are redone with log p in double-double; log targets below
#: LOG_TARGET_TAIL take the shifted-exponent form.
CANCEL_F32 = np.float64(KERNELS["kl"].constant("CANCEL_F32"))
CANCEL_F64 = np.float64(KERNELS["kl"].constant("CANCEL_F64"))
TAIL = np.float64(KERNELS["kl"].constant("LOG_TARGET_TAIL"))


@pasted
def term(input, target, log_target, slow, f32):
    """(loss, -p, redo): redo is set where not slow and the term needs the slow formula."""
    x = np.float64(input)
    t = np.float64(target)
    if log_target:
        diff, diff_lo = two_diff(t, x)
        tail = TAIL > t > -np.inf and abs(diff) < np.inf  # NaN or infinite differences: the plain form
        p = exp(t, 0.0, f32)
        if slow and tail:
            # e^lp (lp - x) = sign e^(lp + log|lp - x|), the exponent as a double-double
            log_hi, log_lo = log_dd(abs(diff))
            arg_hi, arg_lo = two_sum(t, log_hi)
            value = exp(arg_hi, arg_lo + log_lo, f32)
            value = -value if diff < 0.0 else value
        else:
            correction = p * diff_lo  # inf * 0 where e^lp overflows: dropped, as any correction of an inf
            value = fma(p, diff, correction if abs(correction) < np.inf else 0.0)
        redo = tail and not slow
    else:
        p = t
        if slow and p < np.inf:  # log_dd takes finite p; p = inf, NaN: the plain form below
            log_hi, log_lo = log_dd(p)
            diff, diff_lo = two_sum(log_hi, -x)
            diff += diff_lo + log_lo  # log p - x from the double-double log p: exact but for the rounding
            value = p * diff
            value = np.nan if p < 0.0 else value
            redo = False
        else:
            diff = log(p, f32) - x
            value = p * diff
            redo = abs(diff) < (CANCEL_F32 if f32 else CANCEL_F64) * abs(x) and p > 0.0
        value = np.nan if p == np.inf else value
    # p = 0: the term and its gradient are 0 (0 log 0), unless log q is NaN or +inf; with a log target
    # only at lp = -inf, since an e^lp that underflows is not 0 and its term still carries NaN inputs
    zero = (t == -np.inf if log_target else p == 0.0) and x < np.inf
    return (0.0 if zero else value), (0.0 if p == 0.0 else -p), redo


@helper
def chunk_terms(input, target, first, count, log_target, slow, f32, grad_scale, values, grads, grad_first,
                redo_flags):
    """The terms of input[first:first + count] into values and grads (from grad_first); returns how many need
    a redo (of the value: the gradient -p is exact as it is).
    Called with constant log_target and slow, so that each loop is compiled for one case."""
    redo_count = 0
    for j in urange(0, count):
        value, minus_p, redo = term(input[first + j], target[first + j], log_target, slow, f32)
        redo_count += redo
        redo_flags[j] = redo
        values[j] = value
        grads[grad_first + j] = minus_p * grad_scale
    return redo_count


@jit
def kernel(input, target, n_rows, log_target, grad_scale, rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    values = np.empty(CHUNK)
    want_grad = grad.size > 0
    grads = grad if want_grad else np.empty(CHUNK, grad.dtype)  # the gradients go to grad directly
    redo_flags = np.empty(CHUNK, np.bool_)
    redo_indices = np.empty(CHUNK, np.int64)
    lanes = np.empty((3, LANES))
    running = np.zeros(2)
    start = 0
    while start < n_rows:
        stop = chunk_stop(start, n_rows, CHUNK, rows_per_block)
        count = stop - start
        first = np.uint64(start)
        grad_first = first if want_grad else np.uint64(0)
        if log_target != 0:
            redo_count = chunk_terms(input, target, first, count, True, False, f32, grad_scale, values, grads,
                                     grad_first, redo_flags)
        else:
            redo_count = chunk_terms(input, target, first, count, False, False, f32, grad_scale, values, grads,
                                     grad_first, redo_flags)
        if redo_count > 0:
            for j in redo_indices[:flagged(redo_flags, count, redo_indices)]:
                values[j] = term(input[first + j], target[first + j], log_target != 0, True, f32)[0]
        store_chunk(loss, start, count, values)
        if block_sums.size > 0:
            add_block_sums(block_sums, rows_per_block, n_rows, start, values, count, lanes, f32, running)
        start = stop
