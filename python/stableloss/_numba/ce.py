"""Cross-entropy rows with class-index or class-probability targets (``sl_ce``).

With the softmax pieces of :mod:`.lse` (a, e_j = e^{z_j}, s = sum_{j != k} e_j, S = 1 + s), the loss
of a row is a sum of b_j L_j, L_j = -log p_j = log1p(s) - z_j >= 0, where b_j = w_j t'_j for
probability targets and b_j = (eps/C) w_j + (1 - eps) w_y [j == y] for an index target y.  With
A = sum_j b_j the gradient is grad_scale (A p_j - b_j).

Scratch is bounded whatever the number of classes C: the b_j come chunk by chunk (:data:`CHUNK` classes) into
fixed buffers, in every pass that needs them, and the e_j are those of :mod:`.lse` (kept for the gradient pass
up to STORED_ROW classes, recomputed beyond).  Every sum over a row adds its terms in the order and lanes of one
pass over the whole row, so the results do not depend on the chunking.
"""

import numpy as np

from ._jit import (CHUNK, LANES, ONE, fma, helper, is_f32, jit, lanes_add_values, lanes_clear, lanes_total, load_chunk,
                   neumaier_add, sum_in_order, sum_lanes, two_sum, urange)
from .lse import group_rows, shift, softmax_buffers, softmax_rows, span_exps

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
def shifted_dot(x, first, count, a, coef, terms, lanes, f32):
    """sum_j coef[j] (x[first + j] - a) <= 0 over one chunk (first uint64, count <= CHUNK): terms of one sign
    (coef >= 0, x <= a), in lane sums.

    A term with x = a is 0, also for coef = inf (that coefficient's coef log1p(s) is in its sum A); so is
    the term of a masked class.
    """
    for j in urange(0, count):
        z = np.float64(x[first + j]) - a
        terms[j] = 0.0 if z == 0.0 or masked_class(coef[j], z) else coef[j] * z
    hi, lo = sum_lanes(terms, 0, count, lanes, f32, False)
    return hi + lo


@helper
def coefficient_sums(x, target_prob, weight, base, n_classes, a, keep, eps_c, smoothing, refill, f32, weights, coef,
                     terms, lanes, coef_lanes):
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
        dot += shifted_dot(x, base + np.uint64(start), count, a, coef, terms, lanes, f32)
    if target_prob.size > 0:
        a_hi, a_lo = chunk_sum_total(coef_lanes, coef, n_classes)
        return a_hi, a_lo, dot
    return 0.0, 0.0, dot


@helper
def loss_terms(x, target_prob, weight, base, n_classes, a, log1p_s, keep, eps_c, smoothing, refill, weights, coef):
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
            z, z_lo = shift(x[first + j], a, False)  # exact
            if not masked_class(coef[j], z):
                total += coef[j] * ((log1p_s - z) - z_lo)
    return total


@helper
def grad_pass(x, target_prob, weight, grad, base, n_classes, a, f32, stored, e, e_row, factor, grad_scale, y,
              sum_others, keep, eps_c, smoothing, refill, weights, coef):
    """g_j = grad_scale (A p_j - b_j) = fma(factor, e_j, -grad_scale b_j) for every class of the row, chunk by
    chunk (e_j from :func:`.lse.span_exps`).  Returns (y, b_y, others): y = -1 given becomes the first class at
    the row's maximum a, where the gradient needs :func:`grad_at_max`; b_y is that class's coef (0 if y = -1);
    with sum_others, others = sum_{j != y} b_j, compensated and in order."""
    find_y = y < 0
    coef_y = 0.0
    others, others_lo = 0.0, 0.0
    for start in range(0, n_classes, CHUNK):
        count = min(CHUNK, n_classes - start)
        if refill:
            coefficients(target_prob, weight, base, start, count, keep, eps_c, smoothing, weights, coef)
        e_first = span_exps(x, base, start, count, a, f32, stored, e, e_row)
        first = base + np.uint64(start)
        for j in urange(0, count):
            grad[first + j] = fma(factor, e[e_first + j], -grad_scale * coef[j])  # grad_scale (A p_j - b_j)
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


@jit
def kernel(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, grad_scale,
           rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    has_prob = target_prob.size > 0
    want_loss = loss.size > 0
    want_grad = grad.size > 0
    want_sums = block_sums.size > 0
    smoothing = label_smoothing > 0.0
    keep = ONE - label_smoothing
    eps_c = label_smoothing / n_classes
    stored, amax, e, s_hi, s_lo, log_s, lanes = softmax_buffers(n_classes, want_grad)
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
    group = group_rows(n_classes)
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        softmax_rows(input, first, count, n_classes, f32, stored, amax, e, s_hi, s_lo, log_s, lanes)
        for i in range(count):
            row = first + i
            base = np.uint64(row * n_classes)
            e_row = np.uint64(i * n_classes)
            a = amax[i]
            s = s_hi[i]
            log1p_s = log_s[i]
            y = -1  # where the gradient needs grad_at_max: the index target, or the first maximum
            w_y = 0.0  # the index target's (1 - eps) w_y
            e_y = ONE
            ignored = False
            if has_prob:
                a_hi, a_lo, dot = coefficient_sums(input, target_prob, weight, base, n_classes, a, keep, eps_c,
                                                   smoothing, refill, f32, weights, coef, terms, lanes, coef_lanes)
                a_hi += a_lo  # A
                # sum_j b_j (log1p(s) - z_j) = A log1p(s) - sum_j b_j z_j: two terms >= 0
                value = a_hi * log1p_s - dot
                if not abs(value) < np.inf:
                    value = loss_terms(input, target_prob, weight, base, n_classes, a, log1p_s, keep, eps_c, smoothing,
                                       refill, weights, coef)
            else:
                y = target[row]
                if y == ignore_index:
                    if want_grad:
                        for j in urange(0, n_classes):
                            grad[base + j] = 0.0
                    value = 0.0
                    ignored = True
                else:
                    w_y = keep * (np.float64(weight[y]) if weight.size > 0 else ONE)
                    z, z_lo = shift(input[base + np.uint64(y)], a, f32)
                    value = w_y * ((log1p_s - z_lo) - z)  # -log p_y = log1p(s) - z_y: both terms >= 0
                    if smoothing:
                        # (eps/C) sum_j w_j L_j = (eps/C) W log1p(s) - sum_j b_j z_j: two terms >= 0
                        _, _, dot = coefficient_sums(input, target_prob, weight, base, n_classes, a, keep, eps_c,
                                                     smoothing, refill, f32, weights, coef, terms, lanes, coef_lanes)
                        smoothed = eps_c * w_sum_hi * log1p_s - dot
                        if not abs(smoothed) < np.inf:
                            smoothed = loss_terms(input, target_prob, weight, base, n_classes, a, log1p_s, keep, eps_c,
                                                  smoothing, refill, weights, coef)
                        value += smoothed
                    a_hi = w_y + eps_c * (w_sum_hi + w_sum_lo)  # A
                    if want_grad:
                        e_y = e[span_exps(input, base, y, 1, a, f32, stored, e, e_row)]
            if want_grad and not ignored:
                big_s, big_s_lo = two_sum(ONE, s)
                big_s_lo += s_lo[i]
                scale = grad_scale / big_s
                scale -= scale * (big_s_lo / big_s)  # grad_scale / (S + dS)
                # the other classes' b_j, for grad_at_max (all 0 for index targets without smoothing)
                sum_others = has_prob or smoothing
                # with smoothing and y off the maximum, the first maximum k needs grad_at_max too: A p_k - b_k
                # cancels where b_k holds nearly all of A
                off_max = smoothing and not has_prob and e_y != ONE
                if smoothing or has_prob or not stored:
                    k, coef_k, others = grad_pass(input, target_prob, weight, grad, base, n_classes, a, f32, stored, e,
                                                  e_row, a_hi * scale, grad_scale, -1 if off_max else y, sum_others,
                                                  keep, eps_c, smoothing, refill, weights, coef)
                    if off_max:  # b_k = coef[k]; A - b_k = the others' coef plus y's (1 - eps) w_y
                        if k >= 0:  # -1: no maximum found (a NaN row)
                            grad[base + np.uint64(k)] = grad_at_max(others + w_y, coef_k, s, scale)
                        coef_y = eps_c * (np.float64(weight[y]) if weight.size > 0 else ONE)
                    else:
                        y, coef_y = k, coef_k
                else:  # no b_j (all 0) and the row's e_j at hand: grad_scale A p_j in one loop, no call per row
                    factor = a_hi * scale
                    for j in urange(0, n_classes):
                        grad[base + j] = factor * e[e_row + j]
                    coef_y = others = 0.0
                if y >= 0:
                    b_y = coef_y if has_prob else coef_y + w_y
                    if e_y == ONE:
                        grad[base + np.uint64(y)] = grad_at_max(others, b_y, s, scale)
                    else:  # p_y <= 1/2: w_y (p_y - 1) directly (A p_y - b_y: inf - inf for an infinite w_y)
                        g_y = w_y * fma(e_y, scale, -grad_scale)
                        if smoothing:
                            g_y += fma(eps_c * (w_sum_hi + w_sum_lo) * scale, e_y, -grad_scale * coef_y)
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
