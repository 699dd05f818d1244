"""Row-wise log-sum-exp, log-softmax and softmax (``sl_lse``), and the softmax rows cross-entropy uses.

Blanchard, Higham & Higham (2021): with a = max_j x_j attained first at k, z_j = x_j - a and
s = sum_{j != k} e^{z_j}, log-sum-exp = a + log1p(s) keeps full relative accuracy and
softmax_j = e^{z_j} / (1 + s).  A NaN in a row makes all its outputs NaN; a row whose maximum is
infinite (+inf, or an all -inf row) has that maximum as its log-sum-exp and NaN log-softmax and softmax
(inf - inf), as in the reference.  Rows are handled in groups of about :data:`GROUP` elements so that
the exp loop runs over whole groups of short rows as well as over one long row (vector lanes either
way).

Scratch is bounded whatever the row width: a long row goes in spans of :data:`CHUNK` columns, and its
e_j are kept for the output pass only up to :data:`STORED_ROW` columns; a wider row's output pass
recomputes them span by span, with the same function of the same z_j, hence the same values.
"""

import numpy as np

from ._jit import (CHUNK, EXP_NORMAL, INF, LANES, ONE, exp_nonpos, exp_normal, helper, is_f32, jit, lanes_add,
                   lanes_add_values, lanes_clear, lanes_total, log1p, max_min_of, max_of, pasted, sum_in_order,
                   two_diff, urange)

#: The hot loop's mark in the LLVM IR: the range reduction of exp (rint) on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"

#: Elements per group of short rows: the exp buffer of a group stays in the L1 cache.
GROUP = 2048
#: Rows this long are handled one at a time (the lane sums of sum_lanes need 4 LANES elements).
LONG_ROW = 4 * LANES
#: Rows of at most this many columns keep their e_j (512 KiB) for the output pass, which reads them
#: back instead of recomputing them; wider ones recompute them, so that no scratch grows with the row.
STORED_ROW = 2**16
# an unstored row's spans of CHUNK columns go through e's first GROUP elements
assert CHUNK <= GROUP


@pasted
def shift(v, a, f32):
    """(z, z_lo): z + z_lo = v - a (exact in float64 kernels; float32 inputs: the float64 difference,
    whose relative error 2**-53 |z| is invisible after rounding to float32)."""
    if not f32:
        return two_diff(np.float64(v), a)
    return np.float64(v) - a, 0.0


@helper
def group_rows(n_cols):
    """Rows per group: rows of at least LONG_ROW elements go one at a time."""
    return 1 if n_cols >= LONG_ROW else GROUP // n_cols


@helper
def softmax_buffers(n_cols, keep_exps):
    """Scratch for :func:`softmax_rows`: (stored, amax, e, s_hi, s_lo, log_s, lanes), at most STORED_ROW + 4 GROUP
    + 96 doubles.  stored: whether the e_j of a row stay in e for an output pass (keep_exps: it wants them), which
    takes a whole row up to STORED_ROW columns, else a group of short rows or one span of a long row."""
    rows = group_rows(n_cols)
    stored = keep_exps and n_cols <= STORED_ROW
    return (stored, np.empty(rows), np.empty(max(n_cols, GROUP) if stored else GROUP), np.empty(rows),
            np.empty(rows), np.empty(rows), np.empty((3, LANES)))


@helper
def exps(x, first, count, a, f32, e, e_first):
    """e[e_first + j] = e^{x[first + j] - a} for j < count (first, e_first uint64): exactly 1 at a maximum."""
    for j in urange(0, count):
        z, z_lo = shift(x[first + j], a, f32)
        e[e_first + j] = exp_nonpos(z, z_lo, f32)  # e^(z + z_lo): the rounding of x - a would cost u|z|


@helper
def exp_sums(x, first, count, a, f32, normal, lanes):
    """Add e^{x[first + j] - a} for j < count (first uint64) to the lanes of :func:`lanes_add_values`, term j
    to lane j % LANES, as :func:`exps` then lanes_add_values would, without the buffer between them: the
    pass of a long row whose e_j are not kept.  normal (a literal): every x - a lies in [-EXP_NORMAL, 0],
    so exp needs no range check (the same values)."""
    for start in range(0, count, LANES):
        block = first + np.uint64(start)
        for lane in urange(0, min(LANES, count - start)):
            z, z_lo = shift(x[block + lane], a, f32)
            e = exp_normal(z, z_lo, f32) if normal else exp_nonpos(z, z_lo, f32)
            lanes_add(lanes, lane, e, f32, True)


@helper
def span_exps(x, base, start, count, a, f32, stored, e, e_row):
    """Where e holds the e_j of columns start .. start + count - 1 of the row at x[base] (base, e_row uint64),
    whose maximum is a: from e_row + start where the row is stored (:func:`softmax_rows`, e_row its offset
    there), else from 0, recomputed now (count <= CHUNK)."""
    column = np.uint64(start)
    if stored:
        return e_row + column
    exps(x, base + column, count, a, f32, e, np.uint64(0))
    return np.uint64(0)


@helper
def softmax_rows(x, first, count, n_cols, f32, stored, amax, e, s_hi, s_lo, log_s, lanes):
    """The softmax pieces of rows first .. first + count - 1 of x (n_cols > 0 columns), i counted from
    first: amax[i] = a, e^{z_j} (exactly 1 at every maximum) in e[i * n_cols + j] for short rows and stored
    long ones (else dropped span by span), s = s_hi[i] + s_lo[i], log_s[i] = log1p(s).  NaN anywhere in a
    row makes s and log_s NaN; a row whose maximum is +inf gets a NaN e there (inf - inf), hence a NaN s.
    """
    offset = np.uint64(first * n_cols)
    if n_cols >= LONG_ROW:  # one row, span by span: the exp loop, then its lane sums while the span is in L1
        a, low = max_min_of(x, first * n_cols, (first + 1) * n_cols)
        amax[0] = a
        normal = low - a >= -EXP_NORMAL  # false for a NaN row
        lanes_clear(lanes)
        for start in range(0, n_cols, CHUNK):
            span = min(CHUNK, n_cols - start)
            if stored:
                exps(x, offset + np.uint64(start), span, a, f32, e, np.uint64(start))
                lanes_add_values(lanes, e, start, start + span, f32, True)  # CHUNK: a multiple of LANES
            elif normal:
                exp_sums(x, offset + np.uint64(start), span, a, f32, True, lanes)
            else:
                exp_sums(x, offset + np.uint64(start), span, a, f32, False, lanes)
        s_hi[0], s_lo[0] = lanes_total(lanes, f32, True)
    else:  # short rows: one exp loop over the whole group
        for i in range(count):
            a = max_of(x, (first + i) * n_cols, (first + i + 1) * n_cols)
            amax[i] = a
            for j in urange(i * n_cols, (i + 1) * n_cols):
                e[j] = a  # each element's row maximum, for the loop below
        for j in urange(0, count * n_cols):
            z, z_lo = shift(x[offset + j], e[j], f32)
            e[j] = exp_nonpos(z, z_lo, f32)
        for i in range(count):
            s_hi[i], s_lo[i] = sum_in_order(e, i * n_cols, (i + 1) * n_cols, f32, True)  # < 4 LANES terms
    for i in range(count):
        log_s[i] = log1p(s_hi[i], f32) + s_lo[i] / (ONE + s_hi[i])  # log1p(s + ds) = log1p(s) + ds/(1+s)


@jit
def kernel(x, n_rows, n_cols, lse, log_softmax, softmax):
    f32 = is_f32(x)
    if n_cols == 0:
        for i in range(n_rows):
            lse[i] = -INF  # the empty sum: log 0
        return
    want_lse = lse.size > 0
    want_log_softmax = log_softmax.size > 0
    want_softmax = softmax.size > 0
    stored, amax, e, s_hi, s_lo, log_s, lanes = softmax_buffers(n_cols, want_softmax)
    group = group_rows(n_cols)
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        softmax_rows(x, first, count, n_cols, f32, stored, amax, e, s_hi, s_lo, log_s, lanes)
        for i in range(count):
            a = amax[i]
            base = np.uint64((first + i) * n_cols)
            if want_lse:  # an infinite max (no NaN in the row: max_of would be NaN) is the lse itself
                lse[first + i] = a if abs(a) == INF else a + log_s[i]
            if want_log_softmax:
                for j in urange(0, n_cols):
                    z, z_lo = shift(x[base + j], a, f32)
                    log_softmax[base + j] = (z - log_s[i]) + z_lo  # z <= 0 and -log1p(s) <= 0: no cancellation
            if want_softmax:
                inv = ONE / (ONE + s_hi[i])
                inv = inv - inv * (s_lo[i] * inv)  # 1/(S + dS) = (1/S)(1 - dS/S)
                e_row = np.uint64(i * n_cols)
                for start in range(0, n_cols, CHUNK):
                    span = min(CHUNK, n_cols - start)
                    e_first = span_exps(x, base, start, span, a, f32, stored, e, e_row)
                    out = base + np.uint64(start)
                    for j in urange(0, span):
                        softmax[out + j] = e[e_first + j] * inv
