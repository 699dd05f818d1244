"""Cross-entropy rows with class-index or class-probability targets (``sl_ce``).

With the softmax pieces of :mod:`.lse` (a, e_j = e^{z_j}, s = sum_{j != k} e_j, S = 1 + s), the loss
of a row is a sum of b_j L_j, L_j = -log p_j = log1p(s) - z_j >= 0, where b_j = w_j t'_j for
probability targets and b_j = (eps/C) w_j + (1 - eps) w_y [j == y] for an index target y.  With
A = sum_j b_j the gradient is grad_scale (A p_j - b_j).

Scratch is bounded whatever the number of classes C: the b_j come chunk by chunk (:data:`CHUNK` classes) into
fixed buffers, in every pass that needs them, and the e_j are those of :mod:`.lse` (kept for the gradient pass
up to STORED_ROW classes, recomputed beyond).  Every sum over a row adds its terms in the order and lanes of one
pass over the whole row, so the results do not depend on the chunking.

A softcap (kernels/ce.c) runs the rows one at a time on the capped logits (:func:`.lse.logit_shift`), the
gradient times the cap's derivative; a z-loss adds w_y z lse^2 and 2 z w_y lse to A; rows whose differences
cancel get s and log1p(s) again from double-double exponentials (:func:`exact_sums`).  The kernel runs
:func:`rows` with the cap's kind as literals, so that the rows without one compile as before.
"""

import numpy as np

from .._spec import KERNELS
from ._jit import (CHUNK, HALF, INF, LANES, ONE, dd_add, dd_div, dd_mul, exp_dd, fma, helper, is_f32, jit,
                   lanes_add_values, lanes_clear, lanes_total, load_chunk, log_dd, neumaier_add, sum_in_order,
                   sum_lanes, two_prod, two_sum, urange)
from .lse import NO_CAP, capped, group_rows, logit_shift, softmax_buffers, softmax_rows, span_exps

#: The contract of the declaration (stableloss/_api.py, kernels/ce.c): the double cap of float32 rows up to
#: SOFTCAP_DIRECT_F32 (its relative error CAP_ERR), the double-double one's split; the error bounds SUM_ERR of s
#: and log1p(s) and the limits EXACT of the differences beyond which a row's sums are recomputed exactly.
SOFTCAP_DIRECT_F32 = np.float64(KERNELS["ce"].constant("SOFTCAP_DIRECT_F32"))
CAP_SPLIT = np.float64(KERNELS["ce"].constant("CAP_SPLIT"))
CAP_ERR = np.float64(KERNELS["ce"].constant("CAP_ERR"))
SUM_ERR_F32 = np.float64(KERNELS["ce"].constant("SUM_ERR_F32"))
SUM_ERR_F64 = np.float64(KERNELS["ce"].constant("SUM_ERR_F64"))
EXACT_F32 = np.float64(KERNELS["ce"].constant("EXACT_F32"))
EXACT_F64 = np.float64(KERNELS["ce"].constant("EXACT_F64"))

#: The hot loop's mark in the LLVM IR: the range reduction of exp (rint) on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"

@helper
def masked_class(c, z):
    """A masked class without target mass: coefficient 0 at z = -inf, whose loss term c (log1p(s) - z) is
    0 (-log 0) = 0, not 0 * inf = NaN (PyTorch).  A NaN z is no such class: it makes the loss NaN."""
    return c == 0.0 and z == -np.inf


@helper
def coefficients(target_prob, weight, base, start, count, keep, eps_c, smoothing, weights, coef):
    """The b_j of classes start .. start + count - 1 into coef[:count], less an index target's (1 - eps) w_y:
    w_j t'_j for probability targets (the row at target_prob[base]), (eps/C) w_j with label smoothing, and
    without either nothing is written (coef holds zeros).  weights: scratch for the w_j."""
    if target_prob.size > 0:
        load_chunk(weight, start, count, weights, ONE)
        first = base + np.uint64(start)
        for j in urange(0, count):
            coef[j] = weights[j] * fma(keep, np.float64(target_prob[first + j]), eps_c)  # t' = (1-eps) t + eps/C
    elif smoothing:
        load_chunk(weight, start, count, coef, ONE)
        for j in urange(0, count):
            coef[j] *= eps_c


@helper
def chunk_sum_add(lanes, values, count, n_terms):
    """Add values[:count], the next chunk of a compensated sum of n_terms terms (lanes cleared before the first
    chunk), to the lane sums; fewer than 4 LANES terms come in one chunk, summed by :func:`chunk_sum_total`."""
    if n_terms >= 4 * LANES:
        lanes_add_values(lanes, values, 0, count, False, False)


@helper
def chunk_sum_total(lanes, values, n_terms):
    """(hi, lo) of the chunks given to :func:`chunk_sum_add`, the same as sum_lanes over all n_terms at once: fewer
    than 4 LANES terms (one chunk, still in values) are added in order."""
    if n_terms >= 4 * LANES:
        return lanes_total(lanes, False, False)
    return sum_in_order(values, 0, n_terms, False, False)


@helper
def weight_sum(weight, n_classes, weights, lanes):
    """W = sum_j w_j (w_j = 1 without weights) as (hi, lo), compensated, chunk by chunk through weights."""
    lanes_clear(lanes)
    for start in range(0, n_classes, CHUNK):
        count = min(CHUNK, n_classes - start)
        load_chunk(weight, start, count, weights, ONE)
        chunk_sum_add(lanes, weights, count, n_classes)
    return chunk_sum_total(lanes, weights, n_classes)


@helper
def shifted_dot(x, first, count, a, a_lo, coef, terms, lanes, f32, cap, is_capped, dd):
    """sum_j coef[j] (x[first + j] - a) <= 0 over one chunk (first uint64, count <= CHUNK): terms of one sign
    (coef >= 0, x <= a), in lane sums (capped: of the capped logits, less a + a_lo).

    A term with x = a is 0, also for coef = inf (that coefficient's coef log1p(s) is in its sum A); so is
    the term of a masked class.
    """
    for j in urange(0, count):
        if is_capped:
            z, z_lo, _ = logit_shift(x[first + j], a, a_lo, cap, True, dd, f32)
            z = z + z_lo
        else:
            z = np.float64(x[first + j]) - a
        terms[j] = 0.0 if z == 0.0 or masked_class(coef[j], z) else coef[j] * z
    hi, lo = sum_lanes(terms, 0, count, lanes, f32, False)
    return hi + lo


@helper
def coefficient_sums(x, target_prob, weight, base, n_classes, a, a_lo, keep, eps_c, smoothing, refill, f32, weights,
                     coef, terms, lanes, coef_lanes, cap, is_capped, dd):
    """(A hi, A lo, D) of a row: A = sum_j b_j (compensated; probability targets only, else 0) and
    D = sum_j b_j z_j (:func:`shifted_dot`, chunk by chunk), the b_j into coef chunk by chunk where refill."""
    lanes_clear(coef_lanes)
    dot = 0.0
    for start in range(0, n_classes, CHUNK):
        count = min(CHUNK, n_classes - start)
        if refill:
            coefficients(target_prob, weight, base, start, count, keep, eps_c, smoothing, weights, coef)
        if target_prob.size > 0:
            chunk_sum_add(coef_lanes, coef, count, n_classes)
        dot += shifted_dot(x, base + np.uint64(start), count, a, a_lo, coef, terms, lanes, f32, cap, is_capped, dd)
    if target_prob.size > 0:
        a_hi, a_lo = chunk_sum_total(coef_lanes, coef, n_classes)
        return a_hi, a_lo, dot
    return 0.0, 0.0, dot


@helper
def loss_terms(x, target_prob, weight, base, n_classes, a, a_lo, log1p_s, keep, eps_c, smoothing, refill, weights, coef,
               cap, is_capped, dd):
    """sum_j b_j (log1p(s) - z_j) term by term, for rows whose split sums are not finite: the split
    A log1p(s) - sum_j b_j z_j turns an infinite coefficient times log1p(s) = 0 into NaN, or two
    infinite sums into inf - inf, where the terms give exactly their inf or NaN."""
    total = 0.0
    for start in range(0, n_classes, CHUNK):
        count = min(CHUNK, n_classes - start)
        if refill:
            coefficients(target_prob, weight, base, start, count, keep, eps_c, smoothing, weights, coef)
        first = base + np.uint64(start)
        for j in urange(0, count):
            z, z_lo, _ = logit_shift(x[first + j], a, a_lo, cap, is_capped, dd, False)  # exact
            if not masked_class(coef[j], z):
                total += coef[j] * ((log1p_s - z) - z_lo)
    return total


@helper
def grad_pass(x, target_prob, weight, grad, base, n_classes, a, a_lo, f32, stored, e, e_row, dcap, factor, grad_scale,
              y, sum_others, keep, eps_c, smoothing, refill, weights, coef, cap, is_capped, dd):
    """g_j = grad_scale (A p_j - b_j) = fma(factor, e_j, -grad_scale b_j) for every class of the row, chunk by
    chunk (e_j from :func:`.lse.span_exps`; capped, times the cap's derivative).  Returns (y, b_y, others):
    y = -1 given becomes the first class at the row's maximum a, where the gradient needs :func:`grad_at_max`
    (capped rows give that class); b_y is that class's coef (0 if y = -1); with sum_others,
    others = sum_{j != y} b_j, compensated and in order."""
    find_y = y < 0
    coef_y = 0.0
    others, others_lo = 0.0, 0.0
    for start in range(0, n_classes, CHUNK):
        count = min(CHUNK, n_classes - start)
        if refill:
            coefficients(target_prob, weight, base, start, count, keep, eps_c, smoothing, weights, coef)
        e_first = span_exps(x, base, start, count, a, a_lo, f32, stored, e, e_row, dcap, cap, is_capped, dd)
        first = base + np.uint64(start)
        for j in urange(0, count):
            g = fma(factor, e[e_first + j], -grad_scale * coef[j])  # grad_scale (A p_j - b_j)
            grad[first + j] = g * dcap[e_first + j] if is_capped else g
        if find_y and y < 0:
            for j in urange(0, count):
                if np.float64(x[first + j]) == a:  # the first maximum, the k of the softmax's sums
                    y = start + np.int64(j)
                    break
        if start <= y < start + count:
            coef_y = coef[y - start]
        if sum_others:
            for j in range(count):
                if start + j != y:
                    others, others_lo = neumaier_add(others, others_lo, coef[j])
    return y, coef_y, others + others_lo


@helper
def grad_at_max(others, b, s, scale):
    """scale (A p_y - b) where e_y = 1 (p_y = 1/S): (sum_{j != y} coef[j] - b s)/S, since
    A/S - b = (A - b(1 + s))/S and A - b = sum_{j != y} coef[j] (b = coef[y] plus the target's share).

    Near p_y = 1 the plain form loses everything to cancellation (p_y - 1 = -s/S in the simplest case);
    the other coefficients (others) are summed directly, since A - b would cancel where b dominates A.
    """
    return (others - b * s) * scale


@helper
def first_max(x, base, n_classes):
    """The first class of the row at x[base] that holds its raw maximum (capped rows: the cap's too)."""
    a = np.float64(x[base])
    k = 0
    for j in range(1, n_classes):
        if np.float64(x[base + np.uint64(j)]) > a:
            a = np.float64(x[base + np.uint64(j)])
            k = j
    return k


@helper
def lse_of(a, a_lo, log1p_s, log1p_s_lo):
    """(hi, lo): the row's log-sum-exp a + a_lo + log1p(s); a row whose max is infinite (no cap) has that max,
    a NaN row NaN (as the lse kernel)."""
    if not abs(a) < INF:
        return a, 0.0
    hi, lo = two_sum(a, log1p_s)
    return hi, lo + (a_lo + log1p_s_lo)


@helper
def zloss_factor(z_loss, lse_hi, lse_lo):
    """2 z lse as (hi, lo): an exact product, the low part's in double."""
    hi, lo = two_prod(2.0 * z_loss, lse_hi)
    return hi, (lo + 2.0 * z_loss * lse_lo if abs(hi) < INF else 0.0)


@helper
def inexact(want_lse, z_loss, plain_z, at_max, a, a_lo, s, log1p_s, e_y, direct_cap, f32):
    """Whether a difference of the row's sums cancels beyond EXACT (kernels/ce.c ce_inexact): the lse output
    a + log1p(s); with plain_z (a z-loss, an index target without smoothing, w_y != 0) f = 1 + 2 z lse and at
    the target p_y f - 1: (2 z lse - s)/S where it holds the max, else (e_y f - S)/S."""
    limit = EXACT_F32 if f32 else EXACT_F64
    sum_err = SUM_ERR_F32 if f32 else SUM_ERR_F64
    lse_hi, lse_lo = lse_of(a, a_lo, log1p_s, 0.0)
    err = sum_err * log1p_s + (CAP_ERR * abs(a) if direct_cap else 0.0)
    if want_lse and err > limit * abs(lse_hi):
        return True
    if not plain_z:
        return False
    zf, zf_lo = zloss_factor(z_loss, lse_hi, lse_lo)
    f = (ONE + zf) + zf_lo
    f_err = 2.0 * z_loss * err
    if f_err > limit * abs(f):
        return True
    if at_max:
        return sum_err * s + f_err > limit * abs(zf - s)
    p_y = e_y / (ONE + s)
    return p_y * (sum_err * abs(f) + f_err) > limit * abs(p_y * f - ONE)


@helper
def exact_sums(x, base, n_classes, a, cap, is_capped, y):
    """(a_lo, s_hi, s_lo, log_hi, log_lo, e_y_hi, e_y_lo): s and log1p(s) of the row at x[base] again, its max
    (capped: the double-double cap, a_lo its low part against a) and every e_j double-doubles (exp_dd,
    e^(z + z_lo) = e^z (1 + z_lo)): s to ~2**-90, log1p(s) = log(S) + log1p(S_lo/S), S + S_lo = 1 + s;
    e^{z_y} for y >= 0.  Rare: cancelling rows only (:func:`inexact`)."""
    k = first_max(x, base, n_classes)
    a_hi, a_lo = np.float64(x[base + np.uint64(k)]), 0.0
    if is_capped:
        a_hi, a_lo, _ = capped(x[base + np.uint64(k)], cap, True)
    s_hi, s_lo, e_y_hi, e_y_lo = 0.0, 0.0, 0.0, 0.0
    for j in range(n_classes):
        v, v_lo = np.float64(x[base + np.uint64(j)]), 0.0
        if is_capped:
            v, v_lo, _ = capped(x[base + np.uint64(j)], cap, True)
        z, z_lo = two_sum(v, -a_hi)
        z_lo = z_lo + (v_lo - a_lo) if z > -INF else 0.0
        e, e_lo = exp_dd(z) if z > -708.0 else (np.exp(z), 0.0)
        e_lo += e * z_lo
        if j == y:
            e_y_hi, e_y_lo = e, e_lo
        if j != k:
            s_hi, s_lo = dd_add(s_hi, s_lo, e, e_lo)
    big_s, big_s_lo = two_sum(ONE, s_hi)
    big_s_lo += s_lo
    ratio = big_s_lo / big_s
    log_hi, log_lo = log_dd(big_s)
    log_hi, log_lo = dd_add(log_hi, log_lo, ratio - HALF * ratio * ratio, 0.0)
    return (a_hi - a) + a_lo, s_hi, s_lo, log_hi, log_lo, e_y_hi, e_y_lo


@helper
def zloss_at_y(s_hi, s_lo, at_max, zf, zf_lo, f, f_lo, e_y_hi, e_y_lo):
    """p_y f - 1 at the target of a plain row with a z-loss (f = 1 + 2 z lse = 1 + zf), a double-double
    difference: (2 z lse - s)/S where y holds the max (p_y = 1/S), else (e_y f - S)/S."""
    big_s, big_s_lo = two_sum(ONE, s_hi)
    big_s_lo += s_lo
    if at_max:
        n, n_lo = dd_add(zf, zf_lo, -s_hi, -s_lo)
    else:
        m, m_lo = dd_mul(e_y_hi, e_y_lo, f, f_lo)
        n, n_lo = dd_add(m, m_lo, -big_s, -big_s_lo)
    q, q_lo = dd_div(n, n_lo, big_s, big_s_lo)
    return q + q_lo


@jit
def kernel(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, softcap,
           grad_scale, rows_per_block, loss, grad, lse, block_sums):
    f32 = is_f32(input)
    if softcap == 0.0:
        rows(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, grad_scale,
             rows_per_block, loss, grad, lse, block_sums, NO_CAP, False, False)
    elif f32 and softcap <= SOFTCAP_DIRECT_F32:  # the double cap
        rows(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, grad_scale,
             rows_per_block, loss, grad, lse, block_sums, (softcap, ONE / softcap, CAP_SPLIT), True, False)
    else:  # the double-double cap
        rows(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, grad_scale,
             rows_per_block, loss, grad, lse, block_sums, (softcap, ONE / softcap, CAP_SPLIT), True, True)


@helper
def rows(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, grad_scale,
         rows_per_block, loss, grad, lse, block_sums, cap, is_capped, dd):
    """The kernel's rows, with the cap's kind (is_capped, dd) as literals."""
    f32 = is_f32(input)
    has_prob = target_prob.size > 0
    want_loss = loss.size > 0
    want_grad = grad.size > 0
    want_lse = lse.size > 0
    want_sums = block_sums.size > 0
    with_z = z_loss > 0.0
    smoothing = label_smoothing > 0.0
    keep = ONE - label_smoothing
    eps_c = label_smoothing / n_classes
    stored, amax, e, s_hi, s_lo, log_s, lanes = softmax_buffers(n_classes, want_grad)
    amax_lo = np.zeros(len(amax))  # the double-double cap's low parts of the maxima
    dcap = np.empty(len(e) if is_capped else 0)  # the cap's derivatives beside the e_j
    weights = np.empty(CHUNK)  # w_j of a chunk
    coef = np.zeros(CHUNK)  # b_j of a chunk, less the target's (1 - eps) w_y; zeros without smoothing or probabilities
    terms = np.empty(CHUNK)  # shifted_dot's
    coef_lanes = np.empty((3, LANES))
    # index targets have the same b_j in every row: computed once where they fit one chunk
    refill = has_prob or n_classes > CHUNK
    if not refill:
        coefficients(target_prob, weight, 0, 0, n_classes, keep, eps_c, smoothing, weights, coef)
    w_sum_hi = w_sum_lo = 0.0  # no smoothing terms at all: a NaN or inf weight of another class must not reach
    if smoothing and not has_prob:  # this row through 0 * W
        w_sum_hi, w_sum_lo = weight_sum(weight, n_classes, weights, coef_lanes)  # compensated
    block = 0
    block_left = rows_per_block
    block_total = 0.0
    block_compensation = 0.0
    group = 1 if is_capped else group_rows(n_classes)
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        softmax_rows(input, first, count, n_classes, f32, stored, amax, amax_lo, e, dcap, s_hi, s_lo, log_s, lanes, cap,
                     is_capped, dd)
        for i in range(count):
            row = first + i
            base = np.uint64(row * n_classes)
            e_row = np.uint64(i * n_classes)
            a = amax[i]
            a_lo = amax_lo[i]
            s = s_hi[i]
            s_low = s_lo[i]
            log1p_s = log_s[i]
            log1p_s_lo = 0.0
            y = -1  # where the gradient needs grad_at_max: the index target, or the first maximum
            w_y = 0.0  # the index target's (1 - eps) w_y
            rho = 0.0  # the row's weight: its z-loss's
            e_y = ONE
            e_y_lo = 0.0
            ignored = False
            if not has_prob:
                y = target[row]
                ignored = y == ignore_index
                if not ignored:
                    rho = np.float64(weight[y]) if weight.size > 0 else ONE
                    z_y, z_y_lo, _ = logit_shift(input[base + np.uint64(y)], a, a_lo, cap, is_capped, dd, f32)
                    if want_grad or with_z:
                        e_y = e[span_exps(input, base, y, 1, a, a_lo, f32, stored, e, e_row, dcap, cap, is_capped, dd)]
            else:
                rho = ONE
            plain_z = with_z and not has_prob and not smoothing and rho != 0.0 and not ignored
            if (with_z or want_lse) and inexact(want_lse, z_loss, plain_z, y == first_max(input, base, n_classes),
                                                 a, a_lo, s, log1p_s, e_y, is_capped and not dd, f32):
                a_lo, s, s_low, log1p_s, log1p_s_lo, e_y_x, e_y_lo_x = exact_sums(
                    input, base, n_classes, a, cap, is_capped, y if y >= 0 and not ignored else -1)
                if y >= 0 and not ignored:
                    e_y, e_y_lo = e_y_x, e_y_lo_x
            lse_hi, lse_lo = lse_of(a, a_lo, log1p_s, log1p_s_lo)
            if want_lse:
                lse[row] = lse_hi + lse_lo
            zf, zf_lo = zloss_factor(z_loss, lse_hi, lse_lo) if with_z else (0.0, 0.0)
            if has_prob:
                a_hi, a_lo_sum, dot = coefficient_sums(input, target_prob, weight, base, n_classes, a, a_lo, keep, eps_c,
                                                       smoothing, refill, f32, weights, coef, terms, lanes, coef_lanes,
                                                       cap, is_capped, dd)
                a_hi += a_lo_sum  # A
                # sum_j b_j (log1p(s) - z_j) = A log1p(s) - sum_j b_j z_j: two terms >= 0
                value = a_hi * log1p_s - dot
                if not abs(value) < np.inf:
                    value = loss_terms(input, target_prob, weight, base, n_classes, a, a_lo, log1p_s, keep, eps_c,
                                       smoothing, refill, weights, coef, cap, is_capped, dd)
            else:
                if ignored:
                    if want_grad:
                        for j in urange(0, n_classes):
                            grad[base + j] = 0.0
                    value = 0.0
                else:
                    w_y = keep * rho
                    z, z_lo = z_y, z_y_lo
                    value = w_y * ((log1p_s - z_lo) - z)  # -log p_y = log1p(s) - z_y: both terms >= 0
                    if with_z or want_lse:
                        value += w_y * log1p_s_lo
                    if smoothing:
                        # (eps/C) sum_j w_j L_j = (eps/C) W log1p(s) - sum_j b_j z_j: two terms >= 0
                        _, _, dot = coefficient_sums(input, target_prob, weight, base, n_classes, a, a_lo, keep, eps_c,
                                                     smoothing, refill, f32, weights, coef, terms, lanes, coef_lanes,
                                                     cap, is_capped, dd)
                        smoothed = eps_c * w_sum_hi * log1p_s - dot
                        if not abs(smoothed) < np.inf:
                            smoothed = loss_terms(input, target_prob, weight, base, n_classes, a, a_lo, log1p_s, keep,
                                                  eps_c, smoothing, refill, weights, coef, cap, is_capped, dd)
                        value += smoothed
                    a_hi = w_y + eps_c * (w_sum_hi + w_sum_lo)  # A
            if with_z and rho != 0.0 and not ignored:  # rho z lse^2 (two terms >= 0), and 2 z rho lse in A
                lse_value = lse_hi + lse_lo
                value += rho * ((z_loss * lse_value) * lse_value)
                a_hi += rho * zf
            if want_grad and not ignored:
                big_s, big_s_lo = two_sum(ONE, s)
                big_s_lo += s_low
                scale = grad_scale / big_s
                scale -= scale * (big_s_lo / big_s)  # grad_scale / (S + dS)
                # the other classes' b_j, for grad_at_max (all 0 for index targets without smoothing)
                sum_others = has_prob or smoothing
                # with smoothing and y off the maximum, the first maximum k needs grad_at_max too: A p_k - b_k
                # cancels where b_k holds nearly all of A
                off_max = smoothing and not has_prob and e_y != ONE
                factor = a_hi * scale
                if plain_z:  # grad_scale w_y f/S rounded once, f = 1 + 2 z lse carried exactly
                    f, f_lo = dd_add(ONE, 0.0, zf, zf_lo)
                    m, m_lo = dd_mul(f, f_lo, rho, 0.0)
                    m, m_lo = dd_mul(m, m_lo, grad_scale, 0.0)
                    factor, factor_lo = dd_div(m, m_lo, big_s, big_s_lo)
                    factor += factor_lo
                if smoothing or has_prob or not stored or is_capped:
                    search = -1 if off_max or has_prob else y
                    if is_capped and search < 0:  # the first raw maximum: its cap's
                        search = first_max(input, base, n_classes)
                    k, coef_k, others = grad_pass(input, target_prob, weight, grad, base, n_classes, a, a_lo, f32,
                                                  stored, e, e_row, dcap, factor, grad_scale, search, sum_others, keep,
                                                  eps_c, smoothing, refill, weights, coef, cap, is_capped, dd)
                    if with_z and sum_others:
                        others += rho * zf
                    if off_max:  # b_k = coef[k]; A - b_k = the others' coef plus y's (1 - eps) w_y
                        if k >= 0:  # -1: no maximum found (a NaN row)
                            g_k = grad_at_max(others + w_y, coef_k, s, scale)
                            if is_capped:
                                g_k *= logit_shift(input[base + np.uint64(k)], a, a_lo, cap, True, dd, f32)[2]
                            grad[base + np.uint64(k)] = g_k
                        coef_y = eps_c * (np.float64(weight[y]) if weight.size > 0 else ONE)
                    else:
                        y, coef_y = k, coef_k
                else:  # no b_j (all 0) and the row's e_j at hand: grad_scale A p_j in one loop, no call per row
                    for j in urange(0, n_classes):
                        grad[base + j] = factor * e[e_row + j]
                    coef_y = others = 0.0
                if y >= 0:
                    b_y = coef_y if has_prob else coef_y + w_y
                    if plain_z:
                        g_y = grad_scale * (rho * zloss_at_y(s, s_low, e_y == ONE and e_y_lo == 0.0, zf, zf_lo, f,
                                                             f_lo, e_y, e_y_lo))
                    elif e_y == ONE:
                        g_y = grad_at_max(others, b_y, s, scale)
                    else:  # p_y <= 1/2: w_y (p_y - 1) directly (A p_y - b_y: inf - inf for an infinite w_y)
                        g_y = w_y * fma(e_y, scale, -grad_scale)
                        if smoothing:
                            g_y += fma(eps_c * (w_sum_hi + w_sum_lo) * scale, e_y, -grad_scale * coef_y)
                        if with_z:
                            g_y += rho * zf * e_y * scale
                    if is_capped:
                        g_y *= logit_shift(input[base + np.uint64(y)], a, a_lo, cap, True, dd, f32)[2]
                    grad[base + np.uint64(y)] = g_y
            if want_loss:
                loss[row] = value
            if want_sums:
                block_total, block_compensation = neumaier_add(block_total, block_compensation, value)
                block_left -= 1
                if block_left == 0 or row + 1 == n_rows:
                    block_sums[block] = block_total + block_compensation
                    block += 1
                    block_left = rows_per_block
                    block_total = 0.0
                    block_compensation = 0.0
