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
                   lanes_add_values, lanes_clear, lanes_total, log1p, max_min_of, max_of, pasted, softcap, softcap_dd,
                   sum_in_order, two_diff, urange)

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


#: The cap argument of rows without a softcap: (c, 1/c, split), unused.
NO_CAP = (0.0, 0.0, 0.0)


@pasted
def shift(v, a, f32):
    """(z, z_lo): z + z_lo = v - a (exact in float64 kernels; float32 inputs: the float64 difference,
    whose relative error 2**-53 |z| is invisible after rounding to float32)."""
    if not f32:
        return two_diff(np.float64(v), a)
    return np.float64(v) - a, 0.0


@pasted
def capped(v, cap, dd):
    """(hi, lo, d): the logit v soft-capped, cap = (c, 1/c, split): c tanh(v/c) in double (dd False: float32
    rows, lo = 0) or double-double, and the cap's derivative d (cross-entropy's softcap)."""
    if dd:
        return softcap_dd(np.float64(v), cap[0], cap[2])
    hi, d = softcap(np.float64(v), cap[0], cap[1])
    return hi, 0.0, d


@pasted
def logit_shift(v, a, a_lo, cap, is_capped, dd, f32):
    """(z, z_lo, d): the logit v as the loss sees it, less the row's max a + a_lo: :func:`shift` of v itself
    (is_capped False, a literal: d = 1), or of its soft cap (:func:`capped`), d the cap's derivative."""
    if not is_capped:
        z, z_lo = shift(v, a, f32)
        return z, z_lo, ONE
    hi, lo, d = capped(v, cap, dd)
    z, z_lo = shift(hi, a, f32)
    return z, (z_lo + (lo - a_lo) if dd and z > -INF else z_lo), d


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
def exps(x, first, count, a, a_lo, f32, e, e_first, dcap, cap, is_capped, dd):
    """e[e_first + j] = e^{x[first + j] - a} for j < count (first, e_first uint64): exactly 1 at a maximum.
    With a softcap (is_capped, dd: literals) of the capped logits less a + a_lo, the cap's derivative in
    dcap[e_first + j]."""
    for j in urange(0, count):
        z, z_lo, d = logit_shift(x[first + j], a, a_lo, cap, is_capped, dd, f32)
        e[e_first + j] = exp_nonpos(z, z_lo, f32)  # e^(z + z_lo): the rounding of x - a would cost u|z|
        if is_capped:
            dcap[e_first + j] = d


@helper
def exp_sums(x, first, count, a, a_lo, f32, normal, lanes, cap, is_capped, dd):
    """Add e^{x[first + j] - a} for j < count (first uint64) to the lanes of :func:`lanes_add_values`, term j
    to lane j % LANES, as :func:`exps` then lanes_add_values would, without the buffer between them: the
    pass of a long row whose e_j are not kept.  normal (a literal): every x - a lies in [-EXP_NORMAL, 0],
    so exp needs no range check (the same values)."""
    for start in range(0, count, LANES):
        block = first + np.uint64(start)
        for lane in urange(0, min(LANES, count - start)):
            z, z_lo, _ = logit_shift(x[block + lane], a, a_lo, cap, is_capped, dd, f32)
            e = exp_normal(z, z_lo, f32) if normal else exp_nonpos(z, z_lo, f32)
            lanes_add(lanes, lane, e, f32, True)


@helper
def span_exps(x, base, start, count, a, a_lo, f32, stored, e, e_row, dcap, cap, is_capped, dd):
    """Where e holds the e_j of columns start .. start + count - 1 of the row at x[base] (base, e_row uint64),
    whose maximum is a (+ a_lo): from e_row + start where the row is stored (:func:`softmax_rows`, e_row its
    offset there), else from 0, recomputed now (count <= CHUNK); capped, dcap holds the cap's derivatives
    at the same places."""
    column = np.uint64(start)
    if stored:
        return e_row + column
    exps(x, base + column, count, a, a_lo, f32, e, np.uint64(0), dcap, cap, is_capped, dd)
    return np.uint64(0)


@helper
def capped_max(a, low, amax, amax_lo, i, cap, dd):
    """The soft-capped max of row i (the cap is increasing: the cap of the raw max a) in amax[i] + amax_lo[i],
    and its capped min from the raw one."""
    hi, lo, _ = capped(a, cap, dd)
    amax[i], amax_lo[i] = hi, lo
    return hi, capped(low, cap, dd)[0]


@helper
def softmax_rows(x, first, count, n_cols, f32, stored, amax, amax_lo, e, dcap, s_hi, s_lo, log_s, lanes, cap,
                 is_capped, dd):
    """The softmax pieces of rows first .. first + count - 1 of x (n_cols > 0 columns), i counted from
    first: amax[i] = a, e^{z_j} (exactly 1 at every maximum) in e[i * n_cols + j] for short rows and stored
    long ones (else dropped span by span), s = s_hi[i] + s_lo[i], log_s[i] = log1p(s).  NaN anywhere in a
    row makes s and log_s NaN; a row whose maximum is +inf gets a NaN e there (inf - inf), hence a NaN s.
    With a softcap (is_capped, dd: literals; rows one at a time) of the capped logits, a + amax_lo[i] their
    max, the cap's derivatives in dcap beside the stored e.
    """
    offset = np.uint64(first * n_cols)
    a_lo = 0.0
    if n_cols >= LONG_ROW:  # one row, span by span: the exp loop, then its lane sums while the span is in L1
        a, low = max_min_of(x, first * n_cols, (first + 1) * n_cols)
        amax[0] = a
        if is_capped:
            a, low = capped_max(a, low, amax, amax_lo, 0, cap, dd)
            a_lo = amax_lo[0]
        normal = low - a >= -EXP_NORMAL  # false for a NaN row
        lanes_clear(lanes)
        for start in range(0, n_cols, CHUNK):
            span = min(CHUNK, n_cols - start)
            if stored:
                exps(x, offset + np.uint64(start), span, a, a_lo, f32, e, np.uint64(start), dcap, cap, is_capped, dd)
                lanes_add_values(lanes, e, start, start + span, f32, True)  # CHUNK: a multiple of LANES
            elif normal:
                exp_sums(x, offset + np.uint64(start), span, a, a_lo, f32, True, lanes, cap, is_capped, dd)
            else:
                exp_sums(x, offset + np.uint64(start), span, a, a_lo, f32, False, lanes, cap, is_capped, dd)
        s_hi[0], s_lo[0] = lanes_total(lanes, f32, True)
    else:  # short rows: one exp loop over the whole group
        for i in range(count):
            a = max_of(x, (first + i) * n_cols, (first + i + 1) * n_cols)
            amax[i] = a
            if is_capped:
                a, _ = capped_max(a, a, amax, amax_lo, i, cap, dd)
                a_lo = amax_lo[i]  # one row at a time
            for j in urange(i * n_cols, (i + 1) * n_cols):
                e[j] = a  # each element's row maximum, for the loop below
        for j in urange(0, count * n_cols):
            z, z_lo, d = logit_shift(x[offset + j], e[j], a_lo, cap, is_capped, dd, f32)
            e[j] = exp_nonpos(z, z_lo, f32)
            if is_capped:
                dcap[j] = d
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
        softmax_rows(x, first, count, n_cols, f32, stored, amax, amax, e, e, s_hi, s_lo, log_s, lanes, NO_CAP, False,
                     False)
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
                    e_first = span_exps(x, base, start, span, a, 0.0, f32, stored, e, e_row, e, NO_CAP, False, False)
                    out = base + np.uint64(start)
                    for j in urange(0, span):
                        softmax[out + j] = e[e_first + j] * inv
