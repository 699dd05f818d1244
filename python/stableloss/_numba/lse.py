"""Row-wise log-sum-exp, log-softmax and softmax (``sl_lse``), and the softmax rows cross-entropy uses.

Blanchard, Higham & Higham (2021): with a = max_j x_j attained first at k, z_j = x_j - a and
s = sum_{j != k} e^{z_j}, log-sum-exp = a + log1p(s) keeps full relative accuracy and
softmax_j = e^{z_j} / (1 + s).  Rows are handled in groups of about :data:`GROUP` elements so that
the exp loop runs over whole groups of short rows as well as over one long row (vector lanes either
way).
"""

import numpy as np

from ._jit import (CHUNK, INF, NAN, ONE, exp_nonpos, inline, is_wide, jit, log1p, maximum, neumaier_add,
                   sum_off_max, two_diff, two_sum)

#: Elements per group of rows: the exp buffer of a group stays in the L1 cache.
GROUP = 2048


@inline
def shift(v, a, wide):
    """(z, z_lo): z + z_lo = v - a (exact in float64 kernels; float32 inputs: the float64 difference,
    whose relative error 2**-53 |z| is invisible after rounding to float32)."""
    if wide:
        return two_diff(np.float64(v), a)
    return np.float64(v) - a, 0.0


@jit
def row_max(x, lo, hi):
    """max(x[lo:hi]) in float64: NaN if any element is NaN, vectorized through llvm.maximum."""
    m = x[lo]
    for j in range(lo + 1, hi):
        m = maximum(m, x[j])
    return np.float64(m)


@inline
def group_rows(n_cols):
    """Rows per group."""
    return max(1, GROUP // n_cols)


@inline
def softmax_rows(x, first, count, n_cols, wide, amax, e, s_hi, s_lo, log_s):
    """The softmax pieces of rows first .. first + count - 1 of x (n_cols > 0 columns).

    amax[i] = a, e[i * n_cols + j] = e^{z_j} (exactly 1 at every maximum), s = s_hi[i] + s_lo[i],
    log_s[i] = log1p(s) (i counted from first).  NaN anywhere in a row makes s and log_s NaN; a row
    whose maximum is +inf gets a NaN e there (inf - inf), hence a NaN s.
    """
    for i in range(count):
        base = (first + i) * n_cols
        a = row_max(x, base, base + n_cols)
        amax[i] = a
        for j in range(i * n_cols, (i + 1) * n_cols):
            e[j] = a  # the row's maximum beside each element, so that the exp loop runs over the group
    offset = first * n_cols
    for j in range(count * n_cols):
        z, z_lo = shift(x[offset + j], e[j], wide)
        e[j] = exp_nonpos(z, z_lo, wide)  # e^(z + z_lo): the rounding error of x - a would cost u|z|
    for i in range(count):
        total = 0.0
        compensation = 0.0
        ones = 0.0
        for start in range(i * n_cols, (i + 1) * n_cols, CHUNK):
            part, part_ones = sum_off_max(e, start, min(start + CHUNK, (i + 1) * n_cols))
            total, compensation = neumaier_add(total, compensation, part)
            ones += part_ones
        # the maxima other than the first contribute exactly 1 each
        total, compensation = neumaier_add(total, compensation, ones - ONE)
        s_hi[i], s_lo[i] = two_sum(total, compensation)
    for i in range(count):
        log_s[i] = log1p(s_hi[i], wide) + s_lo[i] / (ONE + s_hi[i])  # log1p(s + ds) = log1p(s) + ds/(1+s)


@inline
def softmax_buffers(n_cols):
    """Scratch for :func:`softmax_rows`: (amax, e, s_hi, s_lo, log_s)."""
    rows = group_rows(n_cols)
    return (np.empty(rows), np.empty(max(n_cols, GROUP)), np.empty(rows), np.empty(rows), np.empty(rows))


#: Kinds of the arguments of sl_lse, in order (see the package __init__).
ARGS = ("in", "int", "int", "out", "out", "out")


@jit
def kernel(x, n_rows, n_cols, lse, log_softmax, softmax):
    wide = is_wide(x)
    if n_cols == 0:
        lse[:] = -INF  # the empty sum: log 0
        return
    want_lse = lse.size > 0
    want_log_softmax = log_softmax.size > 0
    want_softmax = softmax.size > 0
    amax, e, s_hi, s_lo, log_s = softmax_buffers(n_cols)
    rows = group_rows(n_cols)
    for first in range(0, n_rows, rows):
        count = min(rows, n_rows - first)
        softmax_rows(x, first, count, n_cols, wide, amax, e, s_hi, s_lo, log_s)
        for i in range(count):
            a = amax[i]
            if a == INF:  # the +inf terms: e^{x_k - a} = 1 exactly, any other +inf makes s = inf/inf
                infinities = 0
                for j in range(n_cols):
                    infinities += x[(first + i) * n_cols + j] == INF
                s_hi[i] = 0.0 if infinities == 1 else NAN
                s_lo[i] = 0.0
                log_s[i] = s_hi[i]
            base = (first + i) * n_cols
            if want_lse:
                lse[first + i] = a + log_s[i]
            if want_log_softmax:
                for j in range(n_cols):
                    z, z_lo = shift(x[base + j], a, wide)
                    log_softmax[base + j] = (z - log_s[i]) + z_lo  # z <= 0 and -log1p(s) <= 0: no cancellation
            if want_softmax:
                inv = ONE / (ONE + s_hi[i])
                inv = inv - inv * (s_lo[i] * inv)  # 1/(S + dS) = (1/S)(1 - dS/S)
                for j in range(n_cols):
                    softmax[base + j] = e[i * n_cols + j] * inv
