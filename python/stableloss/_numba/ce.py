"""Cross-entropy rows with class-index or class-probability targets (``sl_ce``).

With the softmax pieces of :mod:`.lse` (a, e_j = e^{z_j}, s = sum_{j != k} e_j, S = 1 + s), the loss
of a row is a sum of b_j L_j, L_j = -log p_j = log1p(s) - z_j >= 0, where b_j = w_j t'_j for
probability targets and b_j = (eps/C) w_j + (1 - eps) w_y [j == y] for an index target y.  With
A = sum_j b_j the gradient is grad_scale (A p_j - b_j).
"""

import numpy as np

from ._jit import CHUNK, ONE, fma, helper, is_f32, jit, neumaier_add, sum_lanes, two_sum, urange
from .lse import group_rows, shift, softmax_buffers, softmax_rows

#: The hot loop's mark in the LLVM IR: the range reduction of exp (rint) on a vector, which no lane-sum helper emits
#: (tests/test_numba.py finds it there, vectorized).
HOT_LOOP = r"@llvm\.rint\.v(\d+)f64"

@helper
def masked_class(c, z):
    """A masked class without target mass: coefficient 0 at z = -inf, whose loss term c (log1p(s) - z) is
    0 (-log 0) = 0, not 0 * inf = NaN (PyTorch).  A NaN z is no such class: it makes the loss NaN."""
    return c == 0.0 and z == -np.inf


@helper
def shifted_dot(x, base, n_cols, a, coef, buf, lanes, f32):
    """sum_j coef[j] (x[base + j] - a) <= 0: terms of one sign (coef >= 0, x <= a), in lane sums.

    A term with x = a is 0, also for coef = inf (that coefficient's coef log1p(s) is in its sum A); so is
    the term of a masked class.
    """
    total = 0.0
    for start in range(0, n_cols, buf.size):
        stop = min(start + buf.size, n_cols)
        for j in urange(start, stop):
            z = np.float64(x[base + j]) - a
            buf[j - np.uint64(start)] = 0.0 if z == 0.0 or masked_class(coef[j], z) else coef[j] * z
        hi, lo = sum_lanes(buf, 0, stop - start, lanes, f32, False)
        total += hi + lo
    return total


@helper
def loss_terms(x, base, n_cols, a, log1p_s, coef):
    """sum_j coef[j] (log1p(s) - z_j) term by term, for rows whose split sums are not finite: the split
    A log1p(s) - sum_j coef[j] z_j turns an infinite coefficient times log1p(s) = 0 into NaN, or two
    infinite sums into inf - inf, where the terms give exactly their inf or NaN."""
    total = 0.0
    for j in range(n_cols):
        z, z_lo = shift(x[base + np.uint64(j)], a, False)  # exact
        if not masked_class(coef[j], z):
            total += coef[j] * ((log1p_s - z) - z_lo)
    return total


@helper
def grad_at_max(coef, n_cols, y, b, s, scale):
    """scale (A p_y - b) where e_y = 1 (p_y = 1/S): (sum_{j != y} coef[j] - b s)/S, since
    A/S - b = (A - b(1 + s))/S and A - b = sum_{j != y} coef[j] (b = coef[y] plus the target's share).

    Near p_y = 1 the plain form loses everything to cancellation (p_y - 1 = -s/S in the simplest case);
    the other coefficients are summed directly, since A - b would cancel where b dominates A.
    """
    others, others_lo = 0.0, 0.0
    for j in range(n_cols):
        if j != y:
            others, others_lo = neumaier_add(others, others_lo, coef[j])
    return ((others + others_lo) - b * s) * scale


@jit
def kernel(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, grad_scale,
           rows_per_block, loss, grad, block_sums):
    f32 = is_f32(input)
    has_prob = target_prob.size > 0
    want_loss = loss.size > 0
    want_grad = grad.size > 0
    want_sums = block_sums.size > 0
    keep = ONE - label_smoothing
    eps_c = label_smoothing / n_classes
    amax, e, s_hi, s_lo, log_s, lanes = softmax_buffers(n_classes)
    buf = np.empty(CHUNK)
    w = np.ones(n_classes)
    for j in urange(0, weight.size):
        w[j] = weight[j]
    # coefficient sums compensated for both dtypes: A - b_y at the max cancels when b_y dominates A
    w_sum_hi, w_sum_lo = sum_lanes(w, 0, n_classes, lanes, False, False)  # compensated
    if label_smoothing == 0.0 and not has_prob:  # no smoothing terms at all: a NaN or inf weight of
        w_sum_hi = w_sum_lo = 0.0  # another class must not reach this row through 0 * W
    coef = eps_c * w if label_smoothing > 0.0 else np.zeros(n_classes)  # b_j, less the target's (1 - eps) w_y
    block = 0
    block_left = rows_per_block
    block_total = 0.0
    block_compensation = 0.0
    group = group_rows(n_classes)
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        softmax_rows(input, first, count, n_classes, f32, amax, e, s_hi, s_lo, log_s, lanes)
        for i in range(count):
            row = first + i
            base = np.uint64(row * n_classes)
            e_row = np.uint64(i * n_classes)
            a = amax[i]
            s = s_hi[i]
            log1p_s = log_s[i]
            y = -1  # where the gradient needs grad_at_max: the index target, or the first maximum
            w_y = 0.0  # the index target's (1 - eps) w_y
            ignored = False
            if has_prob:
                for j in urange(0, n_classes):
                    coef[j] = w[j] * fma(keep, np.float64(target_prob[base + j]), eps_c)  # t' = (1-eps) t + eps/C
                a_hi, a_lo = sum_lanes(coef, 0, n_classes, lanes, False, False)  # compensated
                a_hi += a_lo  # A
                # sum_j b_j (log1p(s) - z_j) = A log1p(s) - sum_j b_j z_j: two terms >= 0
                value = a_hi * log1p_s - shifted_dot(input, base, n_classes, a, coef, buf, lanes, f32)
                if not abs(value) < np.inf:
                    value = loss_terms(input, base, n_classes, a, log1p_s, coef)
                for j in range(n_classes):
                    if e[e_row + np.uint64(j)] == ONE:
                        y = j
                        break
                b_y = coef[y] if y >= 0 else 0.0
            else:
                y = target[row]
                if y == ignore_index:
                    if want_grad:
                        for j in urange(0, n_classes):
                            grad[base + j] = 0.0
                    value = 0.0
                    ignored = True
                else:
                    w_y = keep * w[y]
                    z, z_lo = shift(input[base + np.uint64(y)], a, f32)
                    value = w_y * ((log1p_s - z_lo) - z)  # -log p_y = log1p(s) - z_y: both terms >= 0
                    if label_smoothing > 0.0:
                        # (eps/C) sum_j w_j L_j = (eps/C) W log1p(s) - sum_j b_j z_j: two terms >= 0
                        smoothed = eps_c * w_sum_hi * log1p_s - shifted_dot(input, base, n_classes, a, coef, buf, lanes,
                                                                            f32)
                        if not abs(smoothed) < np.inf:
                            smoothed = loss_terms(input, base, n_classes, a, log1p_s, coef)
                        value += smoothed
                    a_hi = w_y + eps_c * (w_sum_hi + w_sum_lo)  # A
                    b_y = coef[y] + w_y
            if want_grad and not ignored:
                big_s, big_s_lo = two_sum(ONE, s)
                big_s_lo += s_lo[i]
                scale = grad_scale / big_s
                scale -= scale * (big_s_lo / big_s)  # grad_scale / (S + dS)
                factor = a_hi * scale
                for j in urange(0, n_classes):
                    grad[base + j] = fma(factor, e[e_row + j], -grad_scale * coef[j])  # grad_scale (A p_j - b_j)
                if y >= 0:
                    e_y = e[e_row + np.uint64(y)]
                    if e_y == ONE:
                        grad[base + np.uint64(y)] = grad_at_max(coef, n_classes, y, b_y, s, scale)
                    else:  # p_y <= 1/2: w_y (p_y - 1) directly (A p_y - b_y: inf - inf for an infinite w_y)
                        g_y = w_y * fma(e_y, scale, -grad_scale)
                        if label_smoothing > 0.0:
                            g_y += fma(eps_c * (w_sum_hi + w_sum_lo) * scale, e_y, -grad_scale * coef[y])
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
