"""The numpy backend: the stable formulas written out plainly, and the reference the native kernels are
tested against.

Every function has the argument list of ``sl_<stem>_f32/_f64`` in ``kernels/stableloss.h``: inputs,
sizes and parameters, ``rows_per_block``, then outputs written in place (``None`` = not wanted) and
``block_sums``. Both dtypes are computed in float64 and rounded once when stored; float64 inputs get
the few extra bits they need from error-free transformations (:func:`_two_diff`) and, for KL terms
that cancel, from a double-double logarithm (:func:`_log_dd`); the Poisson NLL's terms that cancel
further come from a triple-double exp and log (:func:`_exp_td`, :func:`_log_td`).

Memory.  The dispatcher hands this backend one block of rows at a time (``BLOCK_ELEMENTS`` elements,
or one row where a row is wider), and ``ce``/``lse`` go through a row :data:`COLUMNS` columns at a
time, carrying their sums across the chunks.  So the float64 temporaries of a call are those of at
most 2^16 elements, a few dozen arrays of 512 KiB: a call allocates at most :data:`TEMPORARY_BYTES`
beyond its outputs, whatever the size of its input (tests/test_memory.py measures it).
"""

import numpy as np

from . import _constants
from ._spec import KERNELS

#: The most a call of this backend allocates beyond its outputs (measured largest: 13.6 MiB, huber).
TEMPORARY_BYTES = 16 * 2**20

_LOG_2PI_HALF, _LOG_2PI_HALF_LO = 0.9189385332046728, -3.8782941580672414e-17  # log(2 pi)/2 = hi + lo


# ---------------------------------------------------------------------------------------------------
# Error-free transformations and double-double helpers (numpy has no fma: Dekker/Veltkamp products).

def _two_sum(a, b):
    """``s + err == a + b`` exactly, ``s = fl(a + b)`` (Knuth's TwoSum; err is 0 where s is not finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        b_virtual = s - a
        err = (a - (s - b_virtual)) + (b - b_virtual)
    return s, np.where(np.isfinite(s), err, 0.0)


def _two_diff(a, b):
    """``d + err == a - b`` exactly, ``d = fl(a - b)``."""
    return _two_sum(a, -b)


def _split(a):
    """Veltkamp split: ``a == hi + lo`` with 26-bit halves, so products of halves are exact."""
    with np.errstate(invalid="ignore", over="ignore"):
        c = 134217729.0 * a  # 2**27 + 1
        hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """``p + err == a * b`` exactly, ``p = fl(a * b)`` (Dekker's product)."""
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    with np.errstate(invalid="ignore", over="ignore"):
        err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, np.where(np.isfinite(err), err, 0.0)  # beyond ~1e300 the split overflows: keep p


def _dd_add(a_hi, a_lo, b_hi, b_lo):
    s, e = _two_sum(a_hi, b_hi)
    return _two_sum(s, e + a_lo + b_lo)


def _dd_mul(a_hi, a_lo, b_hi, b_lo):
    p, e = _two_prod(a_hi, b_hi)
    return _two_sum(p, e + a_hi * b_lo + a_lo * b_hi)


def _dd_div(a_hi, a_lo, b_hi, b_lo):
    q = a_hi / b_hi
    p_hi, p_lo = _dd_mul(q, 0.0, b_hi, b_lo)
    r_hi, r_lo = _dd_add(a_hi, a_lo, -p_hi, -p_lo)
    return _two_sum(q, r_hi / b_hi)


_LN2_HI, _LN2_LO = 0.6931471805599453, 2.3190468138462996e-17  # ln 2 = hi + lo to ~2**-106


def _log_dd(p):
    """log(p) as a double-double ``(hi, lo)`` for positive normal p, good to about 2**-100.

    p = m 2**k with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f), f = (m - 1)/(m + 1), summed as the
    series 2 (f + f**3/3 + f**5/5 + ...), |f| <= 0.172, in double-double arithmetic.
    """
    m, k = np.frexp(p)  # p = m 2**k, m in [0.5, 1)
    small = m < np.sqrt(0.5)
    m = np.where(small, 2.0 * m, m)
    k = np.where(small, k - 1, k).astype(np.float64)
    num = m - 1.0  # exact (Sterbenz)
    den_hi, den_lo = _two_sum(m, 1.0)
    f_hi, f_lo = _dd_div(num, np.zeros_like(num), den_hi, den_lo)
    f2_hi, f2_lo = _dd_mul(f_hi, f_lo, f_hi, f_lo)
    term_hi, term_lo = f_hi, f_lo
    acc_hi, acc_lo = f_hi, f_lo
    for j in range(3, 45, 2):  # 0.172**44 < 2**-110
        term_hi, term_lo = _dd_mul(term_hi, term_lo, f2_hi, f2_lo)
        t_hi, t_lo = _dd_div(term_hi, term_lo, np.full_like(term_hi, float(j)), np.zeros_like(term_hi))
        acc_hi, acc_lo = _dd_add(acc_hi, acc_lo, t_hi, t_lo)
    k_hi, k_lo = _two_prod(k, _LN2_HI)
    k_hi, k_lo = _dd_add(k_hi, k_lo, k * _LN2_LO, np.zeros_like(k))
    return _dd_add(k_hi, k_lo, 2.0 * acc_hi, 2.0 * acc_lo)


def _scaled_exp(t, bits):
    """e^t 2^bits for t where e^t alone is subnormal or underflows: e^(t + bits ln 2), the shift added
    as a double-double, so that the product with a factor rounds once when scaled back by 2^-bits."""
    shift_hi, shift_lo = _two_prod(np.full_like(t, float(bits)), _LN2_HI)
    up_hi, up_lo = _dd_add(t, np.zeros_like(t), shift_hi, shift_lo + bits * _LN2_LO)
    up = np.exp(up_hi)
    return up + up * up_lo  # e^(hi + lo) = e^hi (1 + lo)


def _exp_dd(t):
    """exp(t) as a double-double ``(hi, lo)`` for finite t <= 0, good to about 2**-100.

    t = n ln2 + r with |r| <= ln2/2 (r carried as a double-double), exp(r) summed as its Taylor series
    to 24 terms in double-double arithmetic, then scaled by 2**n.
    """
    t = np.maximum(t, -1100.0)  # exp underflows to 0 well before
    n = np.rint(t / _LN2_HI)
    p_hi, p_lo = _two_prod(n, _LN2_HI)
    r_hi, r_lo = _two_diff(t, p_hi)
    r_hi, r_lo = _dd_add(r_hi, r_lo, -p_lo, -n * _LN2_LO)
    term_hi, term_lo = np.ones_like(t), np.zeros_like(t)
    acc_hi, acc_lo = term_hi, term_lo
    for j in range(1, 25):  # 0.35**25 / 25! < 2**-120
        term_hi, term_lo = _dd_mul(term_hi, term_lo, r_hi, r_lo)
        term_hi, term_lo = _dd_div(term_hi, term_lo, np.full_like(t, float(j)), np.zeros_like(t))
        acc_hi, acc_lo = _dd_add(acc_hi, acc_lo, term_hi, term_lo)
    return np.ldexp(acc_hi, n.astype(np.int64)), np.ldexp(acc_lo, n.astype(np.int64))


# ---------------------------------------------------------------------------------------------------
# Triple-double arithmetic (a value is an unevaluated sum h + m + l of decreasing doubles) and e^x to
# ~2**-130: the Poisson NLL terms that cancel beyond what a double-double leaves (docs/design.md)

def _td(h, m, l):
    """h + m + l (any doubles, |h| the largest) as a triple-double with the same exact sum."""
    s, t = _two_sum(m, l)
    a, u = _two_sum(h, s)
    b, c = _two_sum(u, t)
    return a, b, c


def _td_mul(a, b):
    """The triple-double a times the double b, to ~2**-155 relative."""
    p1, e1 = _two_prod(a[0], b)
    p2, e2 = _two_prod(a[1], b)
    s, f = _two_sum(e1, p2)
    return _td(p1, s, f + e2 + a[2] * b)


def _td_div(a, k):
    """The triple-double a divided by the integer k: quotients whose remainders are exact."""
    q1 = a[0] / k
    p, e = _two_prod(q1, k)
    s, f = _two_sum((a[0] - p) - e, a[1])  # a[0] - q1 k is exact
    q2 = s / k
    p, e = _two_prod(q2, k)
    return _td(q1, q2, (((s - p) - e) + f + a[2]) / k)


def _td_add1(a):
    """1 + the triple-double a."""
    h, e = _two_sum(np.ones_like(a[0]), a[0])
    m, f = _two_sum(e, a[1])
    return _td(h, m, f + a[2])


def _exp_td(x):
    """e^x = 2**n (h + m + l) as ``((h, m, l), n)`` for finite |x| <= EXP_TD_RANGE (1100), relative error below
    2**-128, h in [0.7, 1.42].

    x = n ln 2 + r with r carried in three pieces (ln 2 = LN2_HI + LN2_LO + LN2_LO2 to 2**-155); e^r on
    the leading piece r1 by Horner, e^r1 = 1 + r1 (1 + r1/2 (1 + r1/3 (...))) to the term r1^27/27!
    (0.35^27/27! < 2**-134), each step in the precision its weight r1^k/k! needs: double for k >= 20,
    double-double for 9 <= k < 20, triple-double below; then times e^(r2 + r3) = 1 + rho + rho^2/2.
    """
    n = np.rint(x * _constants.LOG2E)
    a = x - n * _constants.LN2_HI  # exact: n LN2_HI has 53 bits at most and x - n LN2_HI cancels (Sterbenz)
    p, p_err = _two_prod(n, _constants.LN2_LO)
    r, e1 = _two_sum(a, -p)
    r2, e2 = _two_sum(e1, -p_err)
    r3 = e2 - n * _constants.LN2_LO2
    acc = np.ones_like(x)
    for k in range(27, 19, -1):
        acc = 1.0 + acc * r / k
    hi, lo = acc, np.zeros_like(x)
    for k in range(19, 8, -1):
        hi, lo = _dd_mul(hi, lo, r, 0.0)
        hi, lo = _dd_div(hi, lo, float(k), 0.0)
        hi, lo = _dd_add(hi, lo, 1.0, 0.0)
    t = (hi, lo, np.zeros_like(x))
    for k in range(8, 0, -1):
        t = _td_add1(_td_div(_td_mul(t, r), float(k)))
    q, q_err = _two_prod(t[0], r2)  # e^r (r2 + r3 + r2^2/2): the first product exact, the rest ~2**-106
    s, f = _two_sum(t[1], q)
    return _td(t[0], s, f + t[2] + q_err + t[0] * r3 + t[1] * r2 + 0.5 * t[0] * r2 * r2), n.astype(np.int64)


def _log_td(lam, lam_lo):
    """log(lam + lam_lo) as a triple-double for positive finite lam (|lam_lo| <= ulp(lam)/2): y = log(lam)
    in double, refined by one Newton step, log(lam) = y + log1p(d) with d = lam e^-y - 1 (|d| < 2**-42)
    formed from :func:`_exp_td` to ~2**-130 and log1p(d) = d - d^2/2 + d^3/3."""
    y = np.log(lam)
    (h, m, l), n = _exp_td(-y)
    scaled, scaled_lo = np.ldexp(lam, n), np.ldexp(lam_lo, n)  # lam 2**n is about 1/h: exact
    p, p_err = _two_prod(scaled, h)
    q, q_err = _two_prod(scaled, m)
    u, u_err = _two_prod(scaled_lo, h)
    d, c = _two_sum(p - 1.0, p_err)  # p - 1 is exact (Sterbenz)
    for term in (q, u):
        d, e = _two_sum(d, term)
        c = c + e
    c = c + (q_err + u_err + scaled * l + scaled_lo * m)
    d, d_lo = _two_sum(d, c)
    return _td(y, d, d_lo - 0.5 * d * d + d * d * d / 3.0)


# ---------------------------------------------------------------------------------------------------
# Shared pieces

def _constant(stem, name, dtype=None):
    """The constant ``name`` of the contract of ``stem``'s declaration; ``name`` + "_F32" or "_F64" by
    ``dtype`` where given."""
    if dtype is not None:
        name += "_F32" if np.dtype(dtype) == np.float32 else "_F64"
    return KERNELS[stem].constant(name)


def _finite_or_zero(correction):
    """A correction term, dropped where the main term already overflowed (inf - inf)."""
    return np.where(np.isfinite(correction), correction, 0.0)


def _block_sums(values, rows_per_block, out):
    """out[b] = sum of values over the rows of block b (numpy's pairwise summation per block)."""
    if out is not None and len(values):
        with np.errstate(over="ignore", invalid="ignore"):
            out[:] = np.add.reduceat(values, np.arange(0, len(values), rows_per_block))


def _store(out, values):
    """Round the float64 values once into ``out``, an output or a view of its columns (overflow to inf
    is the correct rounding)."""
    if out is not None:
        with np.errstate(over="ignore"):
            out[...] = values.reshape(out.shape)


def sum_dd(a):
    """Row sums of ``a`` as double-doubles ``(hi, lo)``: a pairwise tree of TwoSums, errors carried."""
    hi, lo = a, np.zeros_like(a)
    while hi.shape[1] > 1:
        if hi.shape[1] % 2:
            hi = np.pad(hi, ((0, 0), (0, 1)))
            lo = np.pad(lo, ((0, 0), (0, 1)))
        hi, err = _two_sum(hi[:, 0::2], hi[:, 1::2])
        lo = lo[:, 0::2] + lo[:, 1::2] + err
    return hi[:, 0], lo[:, 0]


# ---------------------------------------------------------------------------------------------------
# The row passes of ce and lse, a chunk of columns at a time

#: Columns of a row that ``ce`` and ``lse`` hold as float64 temporaries at once.  The per-chunk Python
#: overhead is noise from 2**13 columns on (16 x 2**18 float32, forward and gradient: 200-250 ms for
#: 2**13 to 2**16 columns, 420 ms for whole rows, whose temporaries leave the cache).
COLUMNS = 2**15


def _column_chunks(n_cols):
    """Slices of at most :data:`COLUMNS` consecutive columns covering ``n_cols`` columns, in order."""
    return [slice(start, min(start + COLUMNS, n_cols)) for start in range(0, n_cols, COLUMNS)]


def _columns(rows, chunk):
    """The columns ``chunk`` of the 2-D ``rows`` in float64."""
    return rows[:, chunk].astype(np.float64)


def _store_columns(out, chunk, values):
    """Round the float64 ``values`` of the columns ``chunk`` once into those columns of ``out`` (its
    rows, flat or 2-D)."""
    if out is not None:
        _store(out.reshape(len(values), -1)[:, chunk], values)


def _in_chunk(columns, chunk):
    """The rows whose column in ``columns`` (one per row) lies in ``chunk``, and that column's index
    within the chunk."""
    rows = np.flatnonzero((columns >= chunk.start) & (columns < chunk.stop))
    return rows, columns[rows] - chunk.start


def _add_chunk(total, hi, lo=0.0):
    """Row sums over the chunks so far, ``total`` (a double-double ``(hi, lo)``, None before the first
    chunk), plus a chunk's row sums ``hi + lo``: added with :func:`_dd_add`, so that splitting a row
    costs no accuracy.  The first chunk's sums are kept as they are; after an addition ``hi`` is the
    sum rounded to float64."""
    return (hi, lo) if total is None else _dd_add(*total, hi, lo)


def _shifted_exp(x, a, x_lo=None, a_lo=None):
    """``z, z_lo, e`` of float64 columns x of rows with max ``a``: z + z_lo = x - a exactly and
    e = exp(z), so that exp(z + z_lo) = e (1 + z_lo) to first order.  With soft-capped logits in
    double-double, ``x_lo`` and ``a_lo`` are their low parts, added to z_lo."""
    z, z_lo = _two_diff(x, a[:, None])
    if x_lo is not None:
        z_lo = z_lo + (x_lo - a_lo[:, None])
    return z, z_lo, np.exp(z)


def _softcap(x, c, dd):
    """``(hi, lo, d)``: the soft-capped logits c tanh(x/c) of the float64 columns x, as hi + lo, and the
    derivative of the cap, d = 1 - tanh^2(x/c).

    Without ``dd`` (float32 logits and a cap of at most SOFTCAP_DIRECT_F32), hi = c tanh(x/c) in double,
    lo = None and d = 4E/(1 + E)^2, E = e^{-2|x|/c}: their errors (a few ulps of double) are far below
    float32's.  With ``dd``, tanh of the double-double u = x/c to ~2^-100, so that a float64 capped
    difference x'_j - x'_max keeps its absolute accuracy (and exp of it its relative accuracy) where the
    rounding of x' to double would cost ulp(c)/2: up to |u| = CAP_SPLIT the double tanh t gets one
    Newton step, tanh(u) = t + (u - atanh(t))(1 - t^2) + O(2^-106 / (1 - t^2)), atanh(t) =
    (log(1 + t) - log(1 - t))/2 from double-double logs, and d = (1 - t)(1 + t); beyond,
    tanh|u| = 1 - 2E/(1 + E) and d = 4E/(1 + E)^2 with E = e^{-2|u|} a double-double exponential (no
    cancellation for tanh >= tanh(CAP_SPLIT)).  |u| < 2^-26: x' = x - x u^2/3, d = 1.  x = +-inf: +-c
    (the limit, torch's value), d = 0.
    """
    with np.errstate(all="ignore"):
        u = x / c
        a = np.abs(u)
        t = np.tanh(a)
        tiny = a < 2.0**-26
        if not dd:
            big_e = np.exp(-2.0 * a)
            return np.where(tiny, x, np.copysign(c * t, x)), None, 4.0 * big_e / ((1.0 + big_e) * (1.0 + big_e))
        p_hi, p_lo = _two_prod(u, np.full_like(u, c))
        u_lo = np.where(np.isfinite(u), ((x - p_hi) - p_lo) / c, 0.0)  # x - u c exactly (Sterbenz), / c
        a_lo = np.where(u < 0, -u_lo, u_lo)  # the low part of |u|
        far = ~(a <= _constant("ce", "CAP_SPLIT"))  # also +-inf (NaN: NaN below anyway)
        tt = np.where(far | tiny, 0.5, t)  # the Newton step on the others only
        one_plus = _two_sum(1.0, tt)
        one_minus = _two_sum(1.0, -tt)
        log_plus = _dd_add(*_log_dd(one_plus[0]), one_plus[1] / one_plus[0], 0.0)  # log(h + l) = log h + l/h
        log_minus = _dd_add(*_log_dd(one_minus[0]), one_minus[1] / one_minus[0], 0.0)
        atanh_hi, atanh_lo = _dd_add(*log_plus, -log_minus[0], -log_minus[1])
        delta = (a - 0.5 * atanh_hi) + (a_lo - 0.5 * atanh_lo)
        t_hi, t_lo = _two_sum(tt, delta * ((1.0 - tt) * (1.0 + tt)))
        d_hi, d_lo = _dd_mul(*_dd_add(1.0, 0.0, -t_hi, -t_lo), *_dd_add(1.0, 0.0, t_hi, t_lo))
        e_hi, e_lo = _exp_dd(np.where(far, -2.0 * np.minimum(a, 1e300), 0.0))
        e_lo = e_lo - 2.0 * a_lo * e_hi  # e^(-2|u|) with the low part of u
        den_hi, den_lo = _two_sum(1.0, e_hi)
        ratio = _dd_div(2.0 * e_hi, 2.0 * e_lo, den_hi, den_lo + e_lo)  # 2E/(1 + E) = 1 - tanh
        t_hi, t_lo = _dd_add(np.where(far, 1.0, t_hi), np.where(far, 0.0, t_lo),
                             np.where(far, -ratio[0], 0.0), np.where(far, -ratio[1], 0.0))
        d = np.where(far, np.sum(_dd_div(2.0 * ratio[0], 2.0 * ratio[1], den_hi, den_lo + e_lo), axis=0), d_hi + d_lo)
        hi, lo = _two_prod(np.full_like(t_hi, c), t_hi)
        hi, lo = _two_sum(hi, lo + c * t_lo)
        sign = np.where(x < 0, -1.0, 1.0)
        hi = np.where(tiny, x, sign * hi)
        lo = np.where(tiny, -x * (a * a) / 3.0, sign * lo)
        d = np.where(tiny, 1.0, d)
    return hi, lo, d


class _Logits:
    """The logits of cross-entropy rows as the loss sees them: the input's rows, or soft-capped with
    ``softcap`` (c tanh(x/c)), in double-double where the float64 budget needs it (:func:`_softcap`)."""

    def __init__(self, rows, softcap):
        self.rows, self.c = rows, softcap
        self.dd = bool(softcap) and (rows.dtype == np.float64 or softcap > _constant("ce", "SOFTCAP_DIRECT_F32"))

    def capped(self, values):
        """``(hi, lo, d)`` of float64 raw logit values (lo None where there is no low part, d None
        without a cap)."""
        return _softcap(values, self.c, self.dd) if self.c else (values, None, None)

    def columns(self, chunk):
        return self.capped(_columns(self.rows, chunk))


def _softmax_scan(x, logits=None):
    """Passes 1 and 2 of the stable softmax over the rows of the 2-D x (input dtype), chunk by chunk.

    Returns ``a, a_lo, k, s_hi, s_lo``: the row max a (NaN for a row holding a NaN), attained first at k
    (np.max and np.argmax over the whole row), and s = s_hi + s_lo = sum of e (1 + z_lo) over j != k as
    a double-double (:func:`sum_dd` per chunk, the chunks added with :func:`_dd_add`).  The max term is
    left out so that log-sum-exp = a + log1p(s) keeps full relative accuracy (Blanchard, Higham &
    Higham 2021).  With ``logits`` (:class:`_Logits`) soft-capped, a + a_lo is the capped max (the cap
    is increasing: the max of x is the max of the capped x), else a_lo is None.
    """
    chunks = _column_chunks(x.shape[1])
    a = k = None
    for chunk in chunks:
        part = _columns(x, chunk)
        chunk_a, chunk_k = np.max(part, axis=1), chunk.start + np.argmax(part, axis=1)
        if a is None:
            a, k = chunk_a, chunk_k
        else:  # np.argmax's rule: the first max, a NaN counting as the largest
            later = (chunk_a > a) | (np.isnan(chunk_a) & ~np.isnan(a))
            a, k = np.where(later, chunk_a, a), np.where(later, chunk_k, k)
    logits = logits or _Logits(x, 0.0)
    a, a_lo, _ = logits.capped(a)
    s = None
    for chunk in chunks:
        v, v_lo, _ = logits.columns(chunk)
        z, z_lo, e = _shifted_exp(v, a, v_lo, a_lo)
        e_excl = e + e * z_lo
        rows, k_in_chunk = _in_chunk(k, chunk)
        e_excl[rows, k_in_chunk] = 0.0
        s = _add_chunk(s, *sum_dd(e_excl))
    s_hi, s_lo = s
    # z_k = x_k - a is 0, or NaN when the max is +inf or NaN (or the row all -inf): the row is NaN
    x_k = logits.capped(x[np.arange(len(x)), k].astype(np.float64))[0]
    return a, a_lo, k, s_hi + (x_k - a), s_lo


def _softmax_chunks(x, a, s_hi, s_lo, logits=None, a_lo=None):
    """Pass 3's pieces of the rows of x with :func:`_softmax_scan`'s ``a, s_hi, s_lo`` (and its
    ``logits`` and ``a_lo``), chunk by chunk.

    Yields ``chunk, z, z_lo, softmax, d`` for each chunk of columns: :func:`_shifted_exp`'s z and z_lo,
    the softmax e (1 + z_lo) / (1 + s) with 1 + s carried as a double-double and the quotient
    corrected by its exact remainder, so that only the rounding of exp and the final rounding remain
    (about 1.5 ulp), and the derivative of the cap (None without one).
    """
    logits = logits or _Logits(x, 0.0)
    total_hi, total_lo = _two_sum(s_hi, 1.0)
    total_hi, total_lo = total_hi[:, None], (total_lo + s_lo)[:, None]
    for chunk in _column_chunks(x.shape[1]):
        v, v_lo, d = logits.columns(chunk)
        z, z_lo, e = _shifted_exp(v, a, v_lo, a_lo)
        q = e / total_hi
        prod_hi, prod_lo = _two_prod(q, total_hi)
        remainder = _finite_or_zero((e - prod_hi) - prod_lo)  # e - q S_hi exactly
        # e (1 + z_lo) / (S_hi + S_lo) = q + (remainder + e z_lo - q S_lo) / S_hi to second order
        yield chunk, z, z_lo, q + _finite_or_zero((remainder + e * z_lo - q * total_lo) / total_hi), d


# ---------------------------------------------------------------------------------------------------
# Kernels

def _class_weights(weight, chunk):
    """The class weights of the columns ``chunk`` in float64 (ones without a weight vector)."""
    return np.ones(chunk.stop - chunk.start) if weight is None else weight[chunk].astype(np.float64)


def ce(input, target, target_prob, weight, n_rows, n_classes, ignore_index, label_smoothing, z_loss, softcap,
       grad_scale, rows_per_block, loss, grad, lse, block_sums):
    """Cross-entropy rows; see ``sl_ce_f32`` in kernels/stableloss.h."""
    x = input.reshape(n_rows, n_classes)
    logits = _Logits(x, softcap)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        sums = _RowSums(x, logits)
        if target is not None:
            row_loss = _ce_index_target(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad,
                                        sums, lse is not None)
        else:
            t = target_prob.reshape(n_rows, n_classes)
            row_loss = _ce_probability_target(x, t, weight, label_smoothing, z_loss, grad_scale, grad, sums,
                                              lse is not None)
        _store(lse, sums.lse())
    _store(loss, row_loss)
    _block_sums(row_loss, rows_per_block, block_sums)


class _RowSums:
    """The row pieces of a cross-entropy call: the scan's (capped) max a + a_lo at k and s = s_hi + s_lo,
    log1p(s) as log_s + log_s_lo, and the log-sum-exp a + log1p(s) as a double-double; :meth:`refine`
    recomputes them from double-double exponentials for the rows where a later difference would
    amplify their rounding (:func:`_exact_rows`)."""

    def __init__(self, x, logits):
        self.x, self.logits = x, logits
        self.a, a_lo, self.k, self.s_hi, self.s_lo = _softmax_scan(x, logits)
        self.a_lo = np.zeros_like(self.a) if a_lo is None else a_lo
        self.log_s, self.log_s_lo = np.log1p(self.s_hi + self.s_lo), np.zeros_like(self.a)

    @property
    def s(self):
        return self.s_hi + self.s_lo

    def lse_dd(self):
        """a + a_lo + log1p(s) as (hi, lo); a row whose max is infinite (no cap: +inf, or all -inf) has
        that max as its log-sum-exp, a NaN row NaN (as :func:`lse`)."""
        hi, lo = _two_sum(self.a, self.log_s)
        lo = lo + (self.a_lo + self.log_s_lo)
        special = np.isinf(self.a) | np.isnan(self.a)
        return np.where(special, self.a, hi), np.where(special, 0.0, lo)

    def lse(self):
        hi, lo = self.lse_dd()
        return hi + lo

    def lse_error(self):
        """A bound on the absolute error of :meth:`lse_dd` before :meth:`refine`: log1p(s) off by
        SUM_ERR log1p(s), the capped max of float32 rows by CAP_ERR |a|."""
        error = _constant("ce", "SUM_ERR", self.x.dtype) * self.log_s
        if self.logits.c and not self.logits.dd:
            error = error + _constant("ce", "CAP_ERR") * np.abs(self.a)
        return error

    def at(self, columns):
        """The capped shifted logit z + z_lo of the given column of each row, and e^{z + z_lo} as a
        double-double (hi, lo) (:func:`_exp_dd`)."""
        rows = np.arange(len(self.x))
        v, v_lo, _ = self.logits.capped(self.x[rows, columns].astype(np.float64))
        z, z_lo = _two_diff(v, self.a)
        z_lo = _finite_or_zero(z_lo + ((0.0 if v_lo is None else v_lo) - self.a_lo))
        e_hi, e_lo = _exp_dd(np.where(np.isnan(z), 0.0, z))
        return z, z_lo, e_hi, e_lo + e_hi * z_lo  # e^(z + z_lo) = e^z (1 + z_lo)

    def refine(self, rows):
        """s, log1p(s) of ``rows`` (a boolean mask) from double-double exponentials: s to ~2^-100, log1p(s)
        = log(S_hi) + log1p(S_lo/S_hi) with S = 1 + s as a double-double (the logs of :func:`_log_dd`)."""
        rows = np.flatnonzero(rows)
        if not len(rows):
            return
        x = self.x[rows]
        logits = _Logits(x, self.logits.c)
        a, a_lo, k = self.a[rows], self.a_lo[rows], self.k[rows]
        s = None
        for chunk in _column_chunks(x.shape[1]):
            v, v_lo, _ = logits.columns(chunk)
            z, z_lo, _ = _shifted_exp(v, a, v_lo, a_lo)
            e_hi, e_lo = _exp_dd(z)
            e_lo = e_lo + e_hi * z_lo  # e^(z + z_lo) = e^z (1 + z_lo)
            in_rows, k_in_chunk = _in_chunk(k, chunk)
            e_hi[in_rows, k_in_chunk] = e_lo[in_rows, k_in_chunk] = 0.0
            hi, lo = sum_dd(e_hi)
            s = _add_chunk(s, hi, lo + np.sum(e_lo, axis=1))
        s_hi, s_lo = s
        total_hi, total_lo = _two_sum(1.0, s_hi)
        total_lo = total_lo + s_lo
        ratio = total_lo / total_hi
        log_hi, log_lo = _dd_add(*_log_dd(total_hi), ratio - 0.5 * ratio * ratio, 0.0)
        self.s_hi[rows], self.s_lo[rows] = s_hi, s_lo
        self.log_s[rows], self.log_s_lo[rows] = log_hi, log_lo


def _zloss_factor(z_loss, lse_hi, lse_lo):
    """2 z lse as (hi, lo) (an exact product, the low part's in double)."""
    hi, lo = _two_prod(np.full_like(lse_hi, 2.0 * z_loss), lse_hi)
    return hi, lo + 2.0 * z_loss * lse_lo


def _exact_rows(sums, want_lse, z_loss=0.0, plain=None, y=None, e_y=None):
    """The rows whose s and log1p(s) :meth:`_RowSums.refine` recomputes: where the log-sum-exp output
    (``want_lse``) or, with ``z_loss``, a gradient of a row with a plain index target (``plain``: no
    smoothing, a nonzero weight) is a difference whose cancellation would amplify their rounding beyond
    EXACT: the lse a + log1p(s) itself (a < 0), f = 1 + 2 z lse, and at the target y p_y f - 1, which is
    (2 z lse - s)/S where y holds the max.  The error bounds are those of :meth:`_RowSums.lse_error`."""
    dtype = sums.x.dtype
    exact_limit, sum_err = _constant("ce", "EXACT", dtype), _constant("ce", "SUM_ERR", dtype)
    lse_hi, lse_lo = sums.lse_dd()
    error = sums.lse_error()
    rows = np.zeros(len(lse_hi), bool)
    if want_lse:
        rows |= error > exact_limit * np.abs(lse_hi)
    if z_loss > 0:
        factor = _zloss_factor(z_loss, lse_hi, lse_lo)
        f = 1.0 + factor[0] + factor[1]
        f_error = 2.0 * z_loss * error
        s = sums.s
        p_y = e_y / (1.0 + s)
        at_max = y == sums.k
        rows |= plain & (f_error > exact_limit * np.abs(f))
        rows |= plain & at_max & (sum_err * s + f_error > exact_limit * np.abs(factor[0] - s))
        rows |= plain & ~at_max & (p_y * (sum_err * np.abs(f) + f_error) > exact_limit * np.abs(p_y * f - 1.0))
    return rows


def _class_terms(coef, nll, z):
    """The loss terms b_j (-log p_j), the coefficients b_j scaled before the product (no overflow the loss
    does not have).  A masked class without coefficient (b_j = 0 at z_j = -inf: no target mass, or a
    class weight of 0) adds 0 (-log 0) = 0, not 0 * inf = NaN, as in the kernels."""
    return np.where((coef == 0.0) & (z == -np.inf), 0.0, coef * nll)


def _with_zloss(row_loss, rho, z_loss, sums):
    """The row losses plus rho z lse^2 (rho: each row's weight, 0 for an ignored row): two terms >= 0."""
    if z_loss == 0:
        return row_loss
    lse = sums.lse()
    return row_loss + np.where(rho == 0.0, 0.0, rho * ((z_loss * lse) * lse))


def _ce_index_target(x, target, weight, ignore_index, eps, z_loss, grad_scale, grad, sums, want_lse):
    """Pass 3 of ``ce`` with class-index targets: the gradient stored chunk by chunk, the row losses
    returned."""
    n_rows, n_classes = x.shape
    valid = target != ignore_index
    y = np.where(valid, target, 0)
    w_y = np.where(valid, 1.0 if weight is None else weight[y].astype(np.float64), 0.0)
    coef = (1.0 - eps) * w_y
    smooth = np.where(valid, eps / n_classes, 0.0)
    k = sums.k
    if z_loss > 0 or want_lse:
        _, _, e_y_hi, e_y_lo = sums.at(y)
        sums.refine(_exact_rows(sums, want_lse, z_loss, (eps == 0) & (w_y != 0), y, e_y_hi))
    if z_loss > 0:  # 2 z w_y lse, the z-loss's share of A: d(w_y z lse^2)/dx'_j = 2 z w_y lse p_j
        lse_hi, lse_lo = sums.lse_dd()
        factor_hi, factor_lo = _zloss_factor(z_loss, lse_hi, lse_lo)
        z_hi, z_lo = _dd_mul(w_y, 0.0, factor_hi, factor_lo)
    s = sums.s
    log_s = (sums.log_s + sums.log_s_lo)[:, None]
    if eps > 0:
        weight_sum = weight_others = None  # W, and per row sum_{j != k} w_j (not W - w_k), double-doubles
        for chunk in _column_chunks(n_classes):
            w = _class_weights(weight, chunk)
            weight_sum = _add_chunk(weight_sum, *sum_dd(w[None, :]))
            at_k = np.arange(chunk.start, chunk.stop) == k[:, None]
            weight_others = _add_chunk(weight_others, *sum_dd(np.where(at_k, 0.0, w)))
        # A = (1 - eps) w_y + (eps/C) W as a double-double: A p_j - b_j cancels where b_j is close to A p_j,
        # and A rounded to double (three roundings) would leave up to 5 ulp there
        keep_hi, keep_lo = _two_sum(1.0, -eps)
        smooth_hi = eps / n_classes
        product_hi, product_lo = _two_prod(smooth_hi, float(n_classes))
        smooth_lo = ((eps - product_hi) - product_lo) / n_classes  # eps/C - smooth_hi
        total_hi, total_lo = _dd_add(*_dd_mul(keep_hi, keep_lo, w_y, 0.0),
                                     *_dd_mul(smooth_hi, smooth_lo, weight_sum[0][0], weight_sum[1][0]))
        if z_loss > 0:
            total_hi, total_lo = _dd_add(total_hi, total_lo, z_hi, z_lo)
        weight_sum, weight_others = weight_sum[0][0] + weight_sum[1][0], weight_others[0] + weight_others[1]
        exact = valid & np.isfinite(total_hi)  # not for infinite weights: there A is coef + smooth W as it is
        total_hi = np.where(exact, total_hi, coef + smooth * weight_sum + (z_hi if z_loss > 0 else 0.0))
        total_lo = np.where(exact, total_lo, 0.0)
    elif z_loss > 0:
        # A' = w_y (1 + 2 z lse) = w_y f; at y, p_y f - 1 = (2 z lse - s)/S where y holds the max, else
        # (e_y f - S)/S, each a double-double difference
        f_hi, f_lo = _dd_add(1.0, 0.0, factor_hi, factor_lo)
        big_s = _dd_add(1.0, 0.0, sums.s_hi, sums.s_lo)
        at_max = _dd_div(*_dd_add(factor_hi, factor_lo, -sums.s_hi, -sums.s_lo), *big_s)
        off_max = _dd_div(*_dd_add(*_dd_mul(e_y_hi, e_y_lo, f_hi, f_lo), -big_s[0], -big_s[1]), *big_s)
        g_at_y = grad_scale * (w_y * np.where(y == k, at_max[0] + at_max[1], off_max[0] + off_max[1]))
        # grad_scale w_y f, rounded once: the softmax's own error leaves little for more roundings
        scaled_hi, scaled_lo = _dd_mul(*_dd_mul(f_hi, f_lo, w_y, 0.0), grad_scale, 0.0)
        coef_z = scaled_hi + scaled_lo
    row_loss, smoothed = np.empty(n_rows), None
    for chunk, z, z_lo, p, d in _softmax_chunks(x, sums.a, sums.s_hi, sums.s_lo, sums.logits, sums.a_lo):
        nll = (log_s - z) - z_lo  # -log p_j = log1p(s) - z_j: both terms >= 0, no cancellation
        w = _class_weights(weight, chunk)
        rows, y_in_chunk = _in_chunk(y, chunk)
        row_loss[rows] = coef[rows] * nll[rows, y_in_chunk]
        if eps > 0:
            smoothed = _add_chunk(smoothed, np.sum(_class_terms(smooth[:, None] * w, nll, z), axis=1))
        if grad is not None:
            # g_j = A p_j - b_j, A = sum_j b_j, b_j = (eps/C) w_j (+ (1 - eps) w_y at y): one product and one
            # difference.  At y, p_y - 1 = -sum_{j != y} p_j: at the row max that is -s/S; elsewhere
            # p_y <= 1/2 (exact enough)
            p_y_minus_1 = np.where(y[rows] == k[rows], -s[rows] / (1.0 + s[rows]), p[rows, y_in_chunk] - 1.0)
            if eps > 0:
                g = (total_hi[:, None] * p - smooth[:, None] * w) + _finite_or_zero(total_lo[:, None] * p)
            else:
                g = (coef_z if z_loss > 0 else coef)[:, None] * p
            if eps == 0 and z_loss > 0:  # grad_scale already in
                g[rows, y_in_chunk] = g_at_y[rows]
            else:
                g[rows, y_in_chunk] = coef[rows] * p_y_minus_1
            if eps > 0:
                g[rows, y_in_chunk] += smooth[rows] * (weight_sum * p[rows, y_in_chunk] - w[y_in_chunk])
                if z_loss > 0:
                    g[rows, y_in_chunk] += z_hi[rows] * p[rows, y_in_chunk]
                # at the argmax A p_k - b_k = ((A - b_k) - b_k s) / S, A - b_k the other classes' sum: never
                # A/S - b_k, which cancels where b_k holds nearly all of A (y's share too, if k = y)
                rows_k, k_in_chunk = _in_chunk(k, chunk)
                at_y = y[rows_k] == k[rows_k]
                b_k = smooth[rows_k] * w[k_in_chunk] + np.where(at_y, coef[rows_k], 0.0)
                others = smooth[rows_k] * weight_others[rows_k] + np.where(at_y, 0.0, coef[rows_k])
                if z_loss > 0:
                    others = others + z_hi[rows_k]
                g[rows_k, k_in_chunk] = (others - b_k * s[rows_k]) / (1.0 + s[rows_k])
            if eps > 0 or z_loss == 0:
                g *= grad_scale
            if d is not None:
                g *= d  # the cap's derivative: dL/dx = dL/dx' (1 - tanh^2(x/c))
            g[~valid] = 0.0  # ignored rows: 0 also where the scale is NaN (a zero total weight), as PyTorch
            _store_columns(grad, chunk, g)
    if eps > 0:
        row_loss = row_loss + smoothed[0]
    return _with_zloss(np.where(valid, row_loss, 0.0), w_y, z_loss, sums)


def _ce_probability_target(x, target_prob, weight, eps, z_loss, grad_scale, grad, sums, want_lse):
    """Pass 3 of ``ce`` with probability targets, after the sums of the coefficients w_j t_j: the
    gradient stored chunk by chunk, the row losses returned."""
    n_classes = x.shape[1]
    k = sums.k
    if want_lse:
        sums.refine(_exact_rows(sums, want_lse))
    s = sums.s
    log_s = (sums.log_s + sums.log_s_lo)[:, None]

    def weighted_target(chunk):
        t = (1.0 - eps) * _columns(target_prob, chunk) + eps / n_classes
        return _class_weights(weight, chunk) * t

    if grad is not None:
        wt_sum = wt_others = None
        for chunk in _column_chunks(n_classes):
            wt = weighted_target(chunk)
            wt_sum = _add_chunk(wt_sum, np.sum(wt, axis=1))
            at_k = np.arange(chunk.start, chunk.stop) == k[:, None]
            wt_others = _add_chunk(wt_others, np.sum(np.where(at_k, 0.0, wt), axis=1))  # not A - w_k t_k
        total, others = wt_sum[0], wt_others[0]
        if z_loss > 0:  # the z-loss's share 2 z lse of A (the row weight is 1)
            factor = _zloss_factor(z_loss, *sums.lse_dd())
            total, others = total + factor[0], others + factor[0]
    row_loss = None
    for chunk, z, z_lo, p, d in _softmax_chunks(x, sums.a, sums.s_hi, sums.s_lo, sums.logits, sums.a_lo):
        nll = (log_s - z) - z_lo  # -log p_j = log1p(s) - z_j: both terms >= 0, no cancellation
        wt = weighted_target(chunk)
        row_loss = _add_chunk(row_loss, np.sum(_class_terms(wt, nll, z), axis=1))
        if grad is not None:
            g = total[:, None] * p - wt
            # at the argmax, T p_k - w_k t_k = (sum_{c != k} w_c t_c - w_k t_k s) / S: no 1 - p_k
            rows, k_in_chunk = _in_chunk(k, chunk)
            g[rows, k_in_chunk] = (others[rows] - wt[rows, k_in_chunk] * s[rows]) / (1.0 + s[rows])
            g *= grad_scale
            if d is not None:
                g *= d  # the cap's derivative
            _store_columns(grad, chunk, g)
    return _with_zloss(row_loss[0], np.ones(len(x)), z_loss, sums)


def nll(input, target, weight, n_rows, n_classes, ignore_index, grad_scale, rows_per_block, loss, grad, block_sums):
    """Negative log-likelihood rows; see ``sl_nll_f32`` in kernels/stableloss.h."""
    x = input.reshape(n_rows, n_classes)
    counted = np.flatnonzero(target != ignore_index)
    y = target[counted]
    w = np.ones(len(counted)) if weight is None else weight[y].astype(np.float64)
    value = np.zeros(n_rows)
    with np.errstate(invalid="ignore", over="ignore"):
        value[counted] = -(w * x[counted, y].astype(np.float64))  # one rounding: the negation is exact
        if grad is not None:
            g = grad.reshape(n_rows, n_classes)
            g[...] = 0.0
            g[counted, y] = -(w * grad_scale)  # rounded once (overflow to inf is the correct rounding)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def lse(x, n_rows, n_cols, lse, log_softmax, softmax):
    """Row-wise log-sum-exp, log-softmax and softmax; see ``sl_lse_f32``."""
    x = x.reshape(n_rows, n_cols)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        a, _, k, s_hi, s_lo = _softmax_scan(x)  # a is NaN for a row holding a NaN
        log_s = np.log1p(s_hi + s_lo)
        _store(lse, np.where(np.isinf(a), a, a + log_s))  # an infinite max is the log-sum-exp itself
        if log_softmax is not None or softmax is not None:
            for chunk, z, z_lo, p, _ in _softmax_chunks(x, a, s_hi, s_lo):
                _store_columns(log_softmax, chunk, (z - log_s[:, None]) + z_lo)  # z_j <= 0, -log1p(s) <= 0: same sign
                _store_columns(softmax, chunk, p)


def _softplus_parts(x):
    """e = exp(-|x|), softplus(x), softplus(-x), and (A, B) with sigma(x) = A/(1+e), sigma(-x) = B/(1+e),
    without cancellation."""
    e = np.exp(-np.abs(x))
    log_term = np.log1p(e)
    sp_pos = np.maximum(x, 0.0) + log_term  # softplus(x) = max(x, 0) + log1p(exp(-|x|))
    sp_neg = np.maximum(-x, 0.0) + log_term
    a = np.where(x >= 0, 1.0, e)  # sigma(x) = 1/(1+e) for x >= 0, e/(1+e) below
    b = np.where(x >= 0, e, 1.0)  # sigma(-x), never formed as 1 - sigma(x)
    return e, sp_pos, sp_neg, a, b


def bce(input, target, weight, pos_weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums):
    """BCE with logits, elementwise; see ``sl_bce_f32``."""
    x = input.astype(np.float64)
    y = target.astype(np.float64)
    w = 1.0 if weight is None else weight.astype(np.float64)
    pw = 1.0 if pos_weight is None else pos_weight.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        e, sp_pos, sp_neg, a, b = _softplus_parts(x)
        # loss = pw y softplus(-x) + (1 - y) softplus(x): two non-negative terms; a term whose label
        # factor is 0 is 0 even where its softplus is +inf (the x = +-inf limit)
        # the weights first (no overflow of pw y sp(-x) before w scales it), unless w pw y itself
        # overflows: then the label factor and the softplus first
        wpy = w * (pw * y)
        pos_term = np.where(y == 0.0, 0.0, np.where(np.isfinite(wpy), wpy * sp_neg, w * ((pw * y) * sp_neg)))
        neg_term = np.where(y == 1.0, 0.0, (w * (1.0 - y)) * sp_pos)
        value = pos_term + neg_term
        g = None
        if grad is not None:
            # w ((1 - y) sigma(x) - pw y sigma(-x)) with one division last (no early underflow)
            g = (w * ((1.0 - y) * a - (pw * y) * b)) / (1.0 + e)
            g = _refine_bce_grad(g, x, y, w, pw)
        if input.dtype == np.float64:
            value, g = _bce_tiny_e(value, g, x, y, w, pw)
        if grad is not None:
            _store(grad, g * grad_scale)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def _bce_tiny_e(value, g, x, y, w, pw):
    """Loss and gradient (None: not wanted) again where float64 |x| > SUBNORMAL_EXP (x, w, pw finite):
    e = e^-|x| is subnormal or nearly while w pw y e need not be, so e is carried as
    e^(-|x| + 512 ln 2) 2^-512 and each e-term rounds once.  There sigma = 1/(1 + e) is 1, e/(1 + e) is
    e and log1p(e) is e."""
    x, y, w, pw = np.broadcast_arrays(x, y, w, pw)
    idx = np.nonzero((np.abs(x) > _constant("bce", "SUBNORMAL_EXP")) & np.isfinite(x) & np.isfinite(w)
                     & np.isfinite(pw))
    if not len(idx[0]):
        return value, g
    x, y, w, pw = x[idx], y[idx], w[idx], pw[idx]
    positive = x > 0
    e_label = np.where(positive, pw * y, 1.0 - y)  # the label of the term with e
    x_factor = np.where(positive, w * (1.0 - y), w * (pw * y))  # the factor of the term with |x|
    e_on, x_on = np.where(positive, y != 0.0, y != 1.0), np.where(positive, y != 1.0, y != 0.0)
    e_term = np.ldexp(w * (e_label * _scaled_exp(-np.abs(x), 512)), -512)  # the label first: w pw y may overflow
    value = np.array(value, copy=True)
    value[idx] = np.where(x_on, x_factor * np.abs(x), 0.0) + np.where(e_on, e_term, 0.0)
    if g is not None:
        g = np.array(g, copy=True)
        g[idx] = np.where(positive, x_factor - e_term, e_term - x_factor)
    return value, g


def _refine_bce_grad(g, x, y, w, pw):
    """(1 - y) sigma(x) - pw y sigma(-x) in double-double for soft labels.

    With 0 < y < 1 both terms are non-zero and cancel near the gradient's root (at x = 1e-30,
    y = 1/2 the gradient is 2.5e-31 while each term is 1/2), so they are formed to about 2**-100.
    """
    w, pw = np.broadcast_to(w, x.shape), np.broadcast_to(pw, x.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        idx = np.nonzero(np.isfinite(x) & (y > 0) & (y < 1) & np.isfinite(w * (pw * y)) & np.isfinite(w))
    if not len(idx[0]):
        return g
    xs, ys, ws, pws = x[idx], y[idx], w[idx], pw[idx]
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        e_hi, e_lo = _exp_dd(-np.abs(xs))
    one_plus_hi, one_plus_lo = _dd_add(np.ones_like(xs), np.zeros_like(xs), e_hi, e_lo)
    inv_hi, inv_lo = _dd_div(np.ones_like(xs), np.zeros_like(xs), one_plus_hi, one_plus_lo)
    e_inv_hi, e_inv_lo = _dd_mul(e_hi, e_lo, inv_hi, inv_lo)
    positive = xs >= 0  # sigma(x) = 1/(1+e) for x >= 0, e/(1+e) below; sigma(-x) the other one
    sp_hi, sp_lo = np.where(positive, inv_hi, e_inv_hi), np.where(positive, inv_lo, e_inv_lo)
    sn_hi, sn_lo = np.where(positive, e_inv_hi, inv_hi), np.where(positive, e_inv_lo, inv_lo)
    neg_hi, neg_lo = _two_diff(np.ones_like(ys), ys)
    a_hi, a_lo = _dd_mul(neg_hi, neg_lo, sp_hi, sp_lo)
    pwy_hi, pwy_lo = _two_prod(pws, ys)
    b_hi, b_lo = _dd_mul(pwy_hi, pwy_lo, sn_hi, sn_lo)
    d_hi, d_lo = _dd_add(a_hi, a_lo, -b_hi, -b_lo)
    d_hi, d_lo = _dd_mul(d_hi, d_lo, ws, np.zeros_like(ws))
    g = g.copy()
    g[idx] = d_hi + d_lo
    linear = np.abs(xs) < _constant("bce", "LINEAR_X")
    g[tuple(i[linear] for i in idx)] = _bce_grad_linear(xs[linear], ys[linear], ws[linear], pws[linear])
    return g


def _bce_grad_linear(x, y, w, pw):
    """w ((1 - y) sigma(x) - pw y sigma(-x)) for |x| < LINEAR_X, where sigma(+-x) = 1/2 +- x/4 to 2^-1800:
    g0 + g1 x with g0 = w (1 - y - pw y)/2 and g1 = w (1 - y + pw y)/4, in double-double with x scaled by
    2^600 (unless g0 or g1 exceeds 2^400), so that g1 x keeps its bits below the normal range."""
    zero = np.zeros_like(x)
    one_y = _two_diff(np.ones_like(y), y)
    pw_y = _two_prod(pw, y)
    g0 = _dd_mul(*_dd_add(*one_y, -pw_y[0], -pw_y[1]), w, zero)  # 2 g0
    g1 = _dd_mul(*_dd_add(*one_y, *pw_y), w, zero)  # 4 g1
    k = np.where((np.abs(g0[0]) > 2.0**400) | (np.abs(g1[0]) > 2.0**400), 0, 600)
    t = _dd_mul(*g1, np.ldexp(x, k), zero)  # 4 g1 x 2^k
    s_hi, s_lo = _dd_add(*(np.ldexp(part, k - 1) for part in g0), *(np.ldexp(part, -2) for part in t))
    return np.ldexp(s_hi + s_lo, -k)


def gnll(input, target, var, n_rows, eps, full, grad_scale, rows_per_block, loss, grad_input, grad_var, block_sums):
    """Gaussian negative log-likelihood, elementwise; see ``sl_gnll_f32``."""
    v = var.astype(np.float64)
    v = np.where(v < eps, eps, v)  # the clamp acts on the value only; NaN stays NaN
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d, d_lo = _two_diff(input.astype(np.float64), target.astype(np.float64))
        r = d / v
        rv_hi, rv_lo = _two_prod(r, v)
        r_lo = _finite_or_zero((((d - rv_hi) - rv_lo) + d_lo) / v)  # r + r_lo = (d + d_lo) / v
        q_hi, q_lo = _two_prod(d, r)  # d^2/v as d (d/v): finite whenever the quotient is
        q_lo = q_lo + _finite_or_zero(d * r_lo + d_lo * r)
        log_v = np.log(v)
        const_hi, const_lo = (2 * _LOG_2PI_HALF, 2 * _LOG_2PI_HALF_LO) if full else (0.0, 0.0)
        value = 0.5 * (((log_v + const_hi) + q_hi) + q_lo)
        # log v < 0 and the terms >= 0 (log 2 pi, d^2/v) cancel where v < 1: redo those in double-double
        largest = 0.5 * np.maximum(np.abs(log_v), const_hi + q_hi)
        cancel = np.nonzero(np.abs(value) < _constant("gnll", "CANCEL", input.dtype) * largest)
        if len(cancel[0]):
            l_hi, l_lo = _log_dd(v[cancel])
            l_hi, l_lo = _dd_add(l_hi, l_lo, np.full_like(l_hi, const_hi), np.full_like(l_hi, const_lo))
            s_hi, s_lo = _dd_add(l_hi, l_lo, q_hi[cancel], q_lo[cancel])
            value[cancel] = 0.5 * (s_hi + s_lo)
        # x - t overflows while (x - t)^2/v may not: the same with h = x/2 - t/2 and d = 2h
        x64, t64 = input.astype(np.float64), target.astype(np.float64)
        huge = np.isinf(d) & np.isfinite(x64) & np.isfinite(t64)
        h = np.where(huge, 0.5 * x64 - 0.5 * t64, 0.0)
        r_half = h / v
        value = np.where(huge, 0.5 * log_v + 2.0 * (h * r_half) + (_LOG_2PI_HALF if full else 0.0), value)
        if grad_input is not None:
            _store(grad_input, np.where(huge, 2.0 * r_half, r + r_lo) * grad_scale)
        if grad_var is not None:
            # (1/v - d^2/v^2)/2 = ((v - d^2)/v)/v/2 with v - d^2 exact where it cancels (Sterbenz)
            sq_hi, sq_lo = _two_prod(d, d)
            excess = ((v - sq_hi) - sq_lo) - 2.0 * d * d_lo
            exact_form = np.isfinite(sq_hi) & np.isfinite(v)  # v = inf: the plain form's limit 0
            g_var = np.where(exact_form, 0.5 * ((excess / v) / v), 0.5 * (1.0 / v - r * r))
            g_var = np.where(huge, 0.5 / v - 2.0 * r_half * r_half, g_var)
            _store(grad_var, g_var * grad_scale)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def kl(input, target, n_rows, log_target, grad_scale, rows_per_block, loss, grad, block_sums):
    """KL divergence terms p (log p - log q), elementwise; see ``sl_kl_f32``."""
    x = input.astype(np.float64)
    t = target.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if log_target:
            log_p, p = t, np.exp(t)
        else:
            log_p, p = np.log(t), t
        diff = _refine_cancelling(log_p - x, p, x, log_target, _constant("kl", "CANCEL", input.dtype))
        # 0 log 0 = 0, also where log q = -inf, but not against a log q of NaN or +inf
        value = np.where((p == 0.0) & (x < np.inf), 0.0, p * diff)
        if log_target:
            # e^lp underflows below lp = -745 while e^lp (lp - x) may not
            tail = np.ldexp(_scaled_exp(log_p, 1024) * diff, -1024)
            value = np.where((log_p < _constant("kl", "LOG_TARGET_TAIL")) & (log_p > -np.inf), tail, value)
        else:
            value = np.where(p == np.inf, np.nan, value)  # a target of +inf is no probability
        if grad is not None:
            _store(grad, np.where(p == 0.0, 0.0, -p) * grad_scale)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def _refine_cancelling(diff, p, x, log_target, cancel):
    """log p - x again, in double-double, where |log p - x| < cancel |x| (the contract's CANCEL).

    With log_target the difference of two given doubles is already correctly rounded.
    """
    if log_target:
        return diff
    idx = np.nonzero((np.abs(diff) < cancel * np.abs(x)) & np.isfinite(x) & (p > 0.0))
    if len(idx[0]):
        hi, lo = _log_dd(p[idx])
        d_hi, d_lo = _dd_add(hi, lo, -x[idx], np.zeros_like(hi))
        diff = diff.copy()
        diff[idx] = d_hi + d_lo
    return diff


#: R(z) = z sum_k 2 z^k/(2k + 3), the atanh series of psi (see :func:`_psi_series`): 16 terms reach
#: 2**-59 of R at z = s^2 <= 0.089.
_PSI_SERIES = tuple(2.0 / (2 * k + 3) for k in range(16))


def _psi_series(w, w_lo=None):
    """psi(w) = w - log1p(w) for w in [PSI_LOW, PSI_HIGH] (|s| < 0.3): with s = w/(2 + w), log1p(w) =
    2 atanh(s) = 2s + s R(s^2) and w - 2s = w s, so psi = s (w - R(s^2)): no cancellation (R < 0.07 (w - R)).
    A double, or with ``w_lo`` (w = w + w_lo) a double-double to ~2**-58 (R in double)."""
    if w_lo is None:
        s = w / (2.0 + w)
        z = s * s
        return s * (w - z * np.polyval(_PSI_SERIES[::-1], z))
    d, d_lo = _two_sum(np.full_like(w, 2.0), w)
    s, s_lo = _dd_div(w, w_lo, d, d_lo + w_lo)
    z = s * s
    inner, inner_lo = _two_sum(w, -z * np.polyval(_PSI_SERIES[::-1], z))
    return _dd_mul(s, s_lo, inner, inner_lo + w_lo)


def _psi(w, log1p_w, w_lo=None, log1p_w_lo=None):
    """psi(w) = w - log1p(w) >= 0 for w >= -1 (+inf at -1 and +inf), the loss of the full Poisson NLL over t:
    the series inside [PSI_LOW, PSI_HIGH], w - log1p(w) outside, where the caller's log1p(w) (formed from
    x - log t or log(lam) - log t, not from 1 + w, which loses e^x/t near w = -1) cancels by at most 4.1
    (at w = -0.45).  Double-doubles where w_lo is given."""
    inside = (w >= _constant("pnll", "PSI_LOW")) & (w <= _constant("pnll", "PSI_HIGH"))
    if w_lo is None:
        value = np.where(inside, _psi_series(w), w - log1p_w)
        return np.where(w == np.inf, np.inf, value)
    hi, lo = _psi_series(w, w_lo)
    out_hi, out_lo = _dd_add(w, w_lo, -log1p_w, -log1p_w_lo)
    hi, lo = np.where(inside, hi, out_hi), np.where(inside, lo, out_lo)
    return np.where(w == np.inf, np.inf, hi), np.where(np.isfinite(hi), lo, 0.0)


def _stirling_loss(t, t_psi, t_psi_lo, eps, f32):
    """t psi + log(2 pi t)/2 - eps, the full loss, from t psi = t_psi + t_psi_lo: both terms >= 0 unless
    eps > log(2 pi t)/2; float64 takes log t in double-double."""
    if f32:
        return t_psi + ((_LOG_2PI_HALF + 0.5 * np.log(t)) - eps)
    l_hi, l_lo = _log_dd(t)
    c_hi, c_lo = _dd_add(np.full_like(t, _LOG_2PI_HALF), _LOG_2PI_HALF_LO, 0.5 * l_hi, 0.5 * l_lo)
    c_hi, c_lo = _dd_add(c_hi, c_lo, -np.full_like(t, eps), 0.0)
    s_hi, s_lo = _two_sum(t_psi, c_hi)
    value = s_hi + (s_lo + t_psi_lo + c_lo)
    return np.where(np.isfinite(t_psi), value, t_psi)


def _two_prod_wide(a, b):
    """:func:`_two_prod` for any finite operands: those beyond 2**896, where the split overflows, are
    scaled by 2**-128 first (exactly) and the result back."""
    shift_a = np.where(np.abs(a) > 2.0**896, -128, 0)
    shift_b = np.where(np.abs(b) > 2.0**896, -128, 0)
    p, p_lo = _two_prod(np.ldexp(a, shift_a), np.ldexp(b, shift_b))
    return np.ldexp(p, -shift_a - shift_b), np.ldexp(p_lo, -shift_a - shift_b)


def _times_t(t, psi, psi_lo):
    """t psi as a double-double (t psi_hi exact where finite)."""
    p, p_lo = _two_prod_wide(t, psi)
    return p, _finite_or_zero(p_lo + t * psi_lo)


def _exp_minus_td(x, t):
    """e^x - t and e^x - t x by :func:`_exp_td`: e^x = 2**n m, and with ts = t 2**-n (exact wherever the
    difference cancels), e^x - t = 2**n (g + g_lo) as a double-double and e^x - t x = 2**n v (v rounded
    once).  Returns (n, ts, g, g_lo, v); ts is inf where t 2**-n overflows (|t| far above e^x: nothing
    cancels there)."""
    (h, m, l), n = _exp_td(x)
    ts = np.ldexp(t, -n)
    g, c = _two_sum(h, -ts)  # exact where it cancels (Sterbenz)
    g, e = _two_sum(g, m)
    g, g_lo = _two_sum(g, c + e + l)
    p, p_lo = _two_prod_wide(ts, x)  # t x 2**-n: ts x is exact without the overflow of t x
    v, c = _two_sum(h, -p)
    for term in (m, -p_lo):
        v, e = _two_sum(v, term)
        c = c + e
    return n, ts, g, g_lo, v + (c + l)


def _pnll_log_input(x, t, full, grad_scale, cancel, f32):
    """(loss, grad) with log_input: e^x - t x and (e^x - t) grad_scale (full: t psi(e^x/t - 1) + log(2 pi t)/2).

    e^x in double (float32 kernels: t x is exact and 2**-52 of e^x is 2**-32 of a result above CANCEL_F32
    of it) or in double-double (float64), the differences formed from the exact t x; where they still
    cancel below CANCEL times their larger term, or |x| > EXP_RANGE_F64 (float64: e^x's low part is
    subnormal, or e^x overflows where e^x - t x, or grad_scale (e^x - t), need not), they are redone from
    the triple-double e^x, the gradient scaled before its power of two."""
    finite = np.isfinite(x) & np.isfinite(t)
    if f32:
        e, e_lo = np.exp(x), np.zeros_like(x)
        p, p_lo = t * x, np.zeros_like(x)  # exact: 24 by 24 bits
        wide = np.zeros(x.shape, bool)
    else:
        # beyond EXP_RANGE_F64 the triple-double path (to |x| = 1100, its range; grad_scale (e^x - t) is finite
        # up to x = 754 for a mean over 2**63 elements), for the loss up to OVERFLOW_F64: e^x - t x > DBL_MAX
        # above it for every double t
        wide = finite & (np.abs(x) > _constant("pnll", "EXP_RANGE_F64")) & (np.abs(x) <= _constants.EXP_TD_RANGE)
        plain = ~np.isfinite(x) | (np.abs(x) > _constant("pnll", "EXP_RANGE_F64"))
        e, e_lo = _exp_dd(np.where(plain, 0.0, x))
        e, e_lo = np.where(plain, np.exp(x), e), np.where(plain, 0.0, e_lo)
        p, p_lo = _two_prod_wide(t, x)
    g, g_lo = _two_sum(e, -t)
    g, g_lo = _two_sum(g, g_lo + e_lo)  # e^x - t = g + g_lo
    value = (e - p) + (e_lo - p_lo)
    halved = 2.0 * ((0.5 * e - _two_prod_wide(0.5 * t, x)[0]) + 0.5 * e_lo)  # t x overflows: 2 (e^x/2 - (t/2) x)
    value = np.where(np.isinf(p) & finite & np.isfinite(e), halved, value)
    value = np.where(t == 0.0, e, value)  # 0 x = 0 whatever x: e^x
    above = (x == np.inf) | (x > (np.inf if f32 else _constant("pnll", "OVERFLOW_F64")))  # e^x - t x > DBL_MAX
    value = np.where(above & (t != 0.0), np.where((t == np.inf) | np.isnan(t), np.nan, np.inf), value)  # the limit
    # wide: e^x in double (<= 1 ulp): redone where the terms are within a factor 4 (the triple-double path
    # scales t by 2**-n, which stays finite there), or where e^x overflows
    cancel = np.where(wide, _constant("pnll", "CANCEL_WIDE"), cancel)
    slow_g = finite & ((wide & (e == np.inf)) | (np.abs(g) < cancel * e))
    cancels = np.abs(value) < cancel * np.maximum(e, np.abs(p))
    slow_v = finite & (t != 0.0) & ~above & ((wide & (e == np.inf)) | cancels)
    n, ts, tg, tg_lo, tv = _exp_minus_td(x[slow_g | slow_v], t[slow_g | slow_v])
    idx = np.flatnonzero(slow_g | slow_v)[np.isfinite(ts)]
    n, ts, tg, tg_lo, tv = (a[np.isfinite(ts)] for a in (n, ts, tg, tg_lo, tv))
    scaled, scaled_lo, t_scaled = g.copy(), g_lo.copy(), t.copy()  # e^x - t and t, both times 2**-n where redone
    scaled.flat[idx], scaled_lo.flat[idx], t_scaled.flat[idx] = tg, tg_lo, ts
    grad = np.where(np.isfinite(g), g + g_lo, g) * grad_scale
    grad.flat[idx] = np.ldexp((tg + tg_lo) * grad_scale, n)
    value.flat[idx] = np.where(slow_v.flat[idx], np.ldexp(tv, n), value.flat[idx])
    s = np.nonzero(full & (t > 1.0))
    if not len(s[0]):
        return value, grad
    # full: t psi(w) + log(2 pi t)/2, w = (e^x - t)/t, log1p(w) = x - log t
    x_s, t_s = x[s], t[s]
    if f32:
        psi = _psi(scaled[s] / t_scaled[s], x_s - np.log(t_s))
        full_value = _stirling_loss(t_s, t_s * psi, 0.0, 0.0, True)
    else:
        w, w_lo = _dd_div(scaled[s], scaled_lo[s], t_scaled[s], 0.0)
        w, w_lo = np.where(np.isinf(scaled[s]), scaled[s], w), np.where(np.isinf(scaled[s]), 0.0, w_lo)
        l_hi, l_lo = _log_dd(t_s)
        u_hi, u_lo = _dd_add(x_s, 0.0, -l_hi, -l_lo)
        psi, psi_lo = _psi(w, u_hi, w_lo, u_lo)
        full_value = _stirling_loss(t_s, *_times_t(t_s, psi, psi_lo), 0.0, False)
    value[s] = np.where(t_s == np.inf, np.nan, full_value)  # t log t - t is inf - inf
    return value, grad


def _pnll_rate(x, t, full, eps, grad_scale, cancel, f32):
    """(loss, grad) without log_input: x - t log(lam) and grad_scale (lam - t)/lam, lam = x + eps exactly
    (full: t psi(w) + log(2 pi t)/2 - eps, w = (lam - t)/t).

    lam - t = (x - t) + eps is formed exactly (two TwoSums) and divided once; log(lam) in double
    (float32) or double-double (float64), with lam's rounding error added as lam_lo/lam; where x - t log(lam)
    cancels below CANCEL times its largest term, x t (1 + |log lam|), or |log lam| > EXP_RANGE_F64
    (float64), it is redone from the triple-double log.  Where x + eps overflows, the same on halves:
    lam = 2 (x/2 + eps/2)."""
    halve = np.where(np.isinf(x + eps) & np.isfinite(x), 0.5, 1.0)
    xs, ts, es = halve * x, halve * t, halve * eps  # exact where it matters
    lam, lam_lo = _two_sum(xs, es)  # lam/halve = x + eps exactly
    d, d_lo = _two_sum(xs, -ts)
    num, num_lo = _two_sum(d, es)
    num_lo = num_lo + d_lo  # (lam - t) halve = num + num_lo exactly
    num_r = np.where(np.isfinite(d), num + num_lo, np.nan)
    # (num + num_lo)/(lam + lam_lo) = q + (num - q lam + num_lo - q lam_lo)/lam, the remainder exact
    q = num / lam
    q_lam, q_lam_lo = _two_prod_wide(q, lam)
    remainder = ((num - q_lam) - q_lam_lo) + num_lo - q * lam_lo
    grad = np.where(np.isfinite(num_r), q + _finite_or_zero(remainder / lam), 1.0 - ts / lam)  # (lam - t)/lam
    grad = np.where(t == 0.0, np.where(np.isnan(x), np.nan, 1.0), grad) * grad_scale  # t = 0: the gradient of x alone
    # where num/lam overflows and grad_scale num/lam does not
    grad = np.where(np.isinf(grad) & np.isfinite(num_r) & (lam != 0.0), (num_r * grad_scale) / lam, grad)
    positive = (lam > 0.0) & (lam < np.inf)
    safe = np.where(positive, lam, 1.0)
    if f32:
        log_lam, log_lam_lo = np.log(safe), lam_lo / safe
    else:
        log_lam, log_lam_lo = _log_dd(safe)
        log_lam_lo = log_lam_lo + lam_lo / safe
    log_lam, log_lam_lo = _dd_add(log_lam, log_lam_lo, np.where(halve < 1.0, _LN2_HI, 0.0),
                                  np.where(halve < 1.0, _LN2_LO, 0.0))
    log_lam, log_lam_lo = np.where(positive, log_lam, np.log(lam)), np.where(positive, log_lam_lo, 0.0)
    p, p_lo = _two_prod_wide(t, log_lam)
    value = (x - p) - _finite_or_zero(p_lo + t * log_lam_lo)
    value = np.where(t == 0.0, np.where(lam >= 0.0, x, np.nan), value)  # 0 log(lam) = 0 for lam >= 0
    value = np.where((x == np.inf) & (t != 0.0), np.where((t == np.inf) | np.isnan(t), np.nan, np.inf), value)
    largest = np.maximum(np.abs(x), np.abs(t) * np.maximum(1.0, np.abs(log_lam)))
    wide = np.abs(log_lam) > (np.inf if f32 else _constant("pnll", "EXP_RANGE_F64"))  # log(lam) in double there
    cancel = np.where(wide, _constant("pnll", "CANCEL_WIDE"), cancel)
    # redone where it cancels, and where t log(lam) overflows
    slow = np.isfinite(x) & np.isfinite(t) & positive & (t != 0.0) & ((np.abs(value) < cancel * largest) | np.isinf(p))
    idx = np.nonzero(slow)
    if len(idx[0]):
        l1, l2, l3 = _log_td(lam[idx], lam_lo[idx])
        shift = np.where(halve[idx] < 1.0, 1.0, 0.0)  # log(lam) = log(lam halve) + log 2
        l1, e = _two_sum(l1, shift * _constants.LN2_HI)
        l2, f = _two_sum(e, l2)
        l1, l2, l3 = _td(l1, l2, f + l3 + shift * (_constants.LN2_LO + _constants.LN2_LO2))
        # x and t scaled by 2**-12 where t log(lam) (|log(lam)| < 2**9.6) could overflow and x - t log(lam) not
        scale = np.where((np.abs(x[idx]) > 2.0**1000) | (np.abs(t[idx]) > 2.0**1000), 2.0**-12, 1.0)
        t_i, x_i = t[idx] * scale, x[idx] * scale
        p1, e1 = _two_prod_wide(t_i, l1)
        p2, e2 = _two_prod_wide(t_i, l2)
        v, c = _two_sum(x_i, -p1)  # exact where it cancels (Sterbenz)
        for term in (-e1, -p2):
            v, e = _two_sum(v, term)
            c = c + e
        value[idx] = (v + (c - e2 - t_i * l3)) / scale
    s = np.nonzero(full & (t > 1.0))
    if not len(s[0]):
        return value, grad
    # full: t psi(w) + log(2 pi t)/2 - eps, w = (lam - t)/t, log1p(w) = log(lam) - log t
    t_s = t[s]
    if f32:
        psi = _psi(num_r[s] / ts[s], (log_lam[s] + log_lam_lo[s]) - np.log(t_s))
        full_value = _stirling_loss(t_s, t_s * psi, 0.0, eps, True)
    else:
        w, w_lo = _dd_div(num[s], num_lo[s], ts[s], 0.0)
        l_hi, l_lo = _log_dd(t_s)
        u_hi, u_lo = _dd_add(log_lam[s], log_lam_lo[s], -l_hi, -l_lo)
        psi, psi_lo = _psi(w, u_hi, w_lo, u_lo)
        full_value = _stirling_loss(t_s, *_times_t(t_s, psi, psi_lo), eps, False)
    full_value = np.where(x[s] == np.inf, np.inf, full_value)
    value[s] = np.where((lam[s] < 0.0) | np.isnan(lam[s]) | (t_s == np.inf), np.nan, full_value)
    return value, grad


def pnll(input, target, n_rows, log_input, full, eps, grad_scale, rows_per_block, loss, grad, block_sums):
    """Poisson negative log-likelihood, elementwise; see ``sl_pnll_f32``."""
    x = input.astype(np.float64)
    t = target.astype(np.float64)
    f32 = input.dtype == np.float32
    cancel = _constant("pnll", "CANCEL", input.dtype)
    with np.errstate(all="ignore"):
        if log_input:
            value, g = _pnll_log_input(x, t, bool(full), grad_scale, cancel, f32)
        else:
            value, g = _pnll_rate(x, t, bool(full), eps, grad_scale, cancel, f32)
        if grad is not None:
            _store(grad, g)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def mse(input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums):
    """Squared error, elementwise; see ``sl_mse_f32``."""
    w = 1.0 if weight is None else weight.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d, d_lo = _two_diff(input.astype(np.float64), target.astype(np.float64))
        sq_hi, sq_lo = _two_prod(d, d)
        value = w * (sq_hi + _finite_or_zero(sq_lo + 2.0 * d * d_lo))  # (d + d_lo)^2 to ~2**-104
        # d^2 overflows or underflows, w d^2 may not
        value = np.where(np.isinf(sq_hi) | (sq_hi < 2.0**-1022), (w * d) * d, value)
        if grad is not None:
            sw = grad_scale * w  # s w first: 2 w alone can overflow
            g = 2.0 * (sw * (d + d_lo))
            # x - t overflows with x, t finite: 2 s w (x - t) = 4 (s w (x/2 - t/2))
            x64, t64 = input.astype(np.float64), target.astype(np.float64)
            huge = np.isinf(d) & np.isfinite(x64) & np.isfinite(t64)
            _store(grad, np.where(huge, 4.0 * (sw * (0.5 * x64 - 0.5 * t64)), g))
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)



def huber(input, target, weight, n_rows, delta, smooth, grad_scale, rows_per_block, loss, grad, block_sums):
    """Huber, smooth L1 and L1 terms, elementwise; see ``sl_huber_f32``."""
    x, t = input.astype(np.float64), target.astype(np.float64)
    w = np.ones_like(x) if weight is None else weight.astype(np.float64)
    q, m = (delta, 1.0) if smooth else (1.0, delta)  # loss d^2/(2q) within delta, m (|d| - delta/2) beyond
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        h, h_lo = _two_diff(x, t)
        # x - t overflows with x, t finite: h = x/2 - t/2, d = 2h (halving such x and t is exact)
        huge = np.isinf(h) & np.isfinite(x) & np.isfinite(t)
        k = np.where(huge, 2.0, 1.0)  # d = k (h + h_lo)
        if huge.any():
            half_h, half_lo = _two_diff(0.5 * x, 0.5 * t)
            h, h_lo = np.where(huge, half_h, h), np.where(huge, half_lo, h_lo)
        a, a_lo = np.abs(h), np.where(h < 0, -h_lo, h_lo)  # |d| = k (a + a_lo)
        c = delta / k
        quad = (a < c) | ((a == c) & (a_lo < 0))  # |d| < delta, decided on the exact |d|
        # quadratic: r + r_lo = (h + h_lo)/q (q = 1: r = h exactly), d^2/(2q) = k^2 (h + h_lo)(r + r_lo)/2
        r = h / q
        rq, rq_lo = _two_prod(r, q)
        r_lo = _finite_or_zero(((h - rq) - rq_lo + h_lo) / q)
        p, p_lo = _two_prod(h, r)
        u_quad = k * k * (0.5 * (p + _finite_or_zero(p_lo + (h * r_lo + h_lo * r))))
        # linear: m (|d| - delta/2) = k m (s + e), s + s_lo = a - c/2 >= c/2 (no cancellation)
        s, s_lo = _two_sum(a, -0.5 * c)
        e = s_lo + a_lo
        ms, ms_lo = _two_prod(m, s)
        u = np.where(quad, u_quad, k * (ms + _finite_or_zero(ms_lo + m * e)))  # m e overflows only where m s does
        value = w * u
        # u overflowed (d finite) or fell below the normals (d != 0) where w u may be neither
        redo = np.nonzero(((u == np.inf) & np.isfinite(h)) | ((u < 2.0**-1022) & (h != 0)))
        if len(redo[0]):
            value[redo] = _huber_weight_first(w[redo], h[redo], h_lo[redo], r[redo], r_lo[redo], s[redo], e[redo],
                                              m, k[redo], quad[redo])
        if grad is not None:
            sw = grad_scale * w  # s w first: as the other kernels
            _store(grad, np.where(quad, k * (sw * (r + r_lo)), (sw * m) * np.sign(h)))  # sign(0) = 0
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def _huber_weight_first(w, h, h_lo, r, r_lo, s, e, m, k, quad):
    """The huber terms with the weight taken in first, with the products' errors: k^2 (w h/2)(r + r_lo)
    (quadratic), k (w (s + e)) m (linear)."""
    wh, wh_lo = _two_prod(w, h)
    half, half_lo = 0.5 * wh, _finite_or_zero(0.5 * (wh_lo + w * h_lo))
    hr, hr_lo = _two_prod(half, r)
    ws, ws_lo = _two_prod(w, s)
    wsm, wsm_lo = _two_prod(ws, m)
    ws_lo = _finite_or_zero(ws_lo + w * e)
    return np.where(quad, k * k * (hr + _finite_or_zero(hr_lo + (half * r_lo + half_lo * r))),
                    k * (wsm + _finite_or_zero(wsm_lo + ws_lo * m)))


def _log1p_dd(hi, lo):
    """log(1 + v) as a double-double for v = hi + lo in [0, 1]: with u + c = 1 + v (u = fl(1 + hi)),
    log(u) + c/u - (c/u)^2/2, c/u below 2^-53 unless u = 1 (then c = v: log1p(v) = v - v^2/2 to v^3)."""
    u, c = _two_sum(1.0, hi)
    w = (c + lo) / u
    l_hi, l_lo = _log_dd(u)
    return _dd_add(l_hi, l_lo, w, -0.5 * w * w)


def _exp_dd_of(hi, lo):
    """exp(hi + lo) as a double-double for hi <= 0 (lo <= ulp(hi)): exp(hi) (1 + lo)."""
    e_hi, e_lo = _exp_dd(hi)
    return _dd_add(e_hi, e_lo, e_hi * lo, np.zeros_like(lo))


def _log_dd_of(hi, lo):
    """log(hi + lo) as a double-double for hi > 0 (lo <= ulp(hi)): log(hi) + lo/hi."""
    l_hi, l_lo = _log_dd(hi)
    return _dd_add(l_hi, l_lo, lo / hi, np.zeros_like(lo))


def _focal_power(l_hi, l_lo, gamma):
    """q^gamma = exp(gamma log q) for log q = l_hi + l_lo <= 0 (-inf: q = 0), as (Q_hi, Q_lo, K) with
    q^gamma = (Q_hi + Q_lo) 2^-K: below e^-600 the exponent is shifted by K ln 2 (K <= 2040), so that
    q^gamma keeps its relative accuracy where it is subnormal or underflows although c q^gamma does not
    (c up to 1.8e308); beyond the shift q^gamma times anything finite is 0."""
    ones, zeros = np.ones_like(l_hi), np.zeros_like(l_hi)
    if gamma == 0:
        return ones, zeros, zeros  # 0^0 = 1
    live = np.isfinite(l_hi)
    u_hi, u_lo = _dd_mul(np.where(live, l_hi, 0.0), np.where(live, l_lo, 0.0), np.full_like(l_hi, gamma), zeros)
    k = np.where(u_hi < -600.0, np.minimum(np.rint((-u_hi - 300.0) / _LN2_HI), 2040.0), 0.0)
    k_hi, k_lo = _two_prod(k, _LN2_HI)
    s_hi, s_lo = _dd_add(u_hi, u_lo, k_hi, k_lo + k * _LN2_LO)  # u + K ln 2
    q_hi, q_lo = _exp_dd_of(np.minimum(s_hi, 0.0), s_lo)
    zero = ~live | (s_hi < -745.0) | ~np.isfinite(u_hi)  # q = 0, or beyond any finite factor
    return np.where(zero, 0.0, q_hi), np.where(zero, 0.0, q_lo), np.where(zero, 0.0, k)


#: Elements of a focal call in float64 temporaries at once: its double-double steps hold ~60 arrays.
FOCAL_CHUNK = 2**14


def focal(inputs, targets, n_rows, alpha, gamma, grad_scale, rows_per_block, loss, grad, block_sums):
    """Sigmoid focal loss, elementwise; see ``sl_focal_f32``.  Both dtypes in double-double (every step
    below to ~2^-100, one rounding at the end), FOCAL_CHUNK elements at a time."""
    value = np.empty(n_rows)
    for start in range(0, n_rows, FOCAL_CHUNK):
        chunk = slice(start, min(start + FOCAL_CHUNK, n_rows))
        with np.errstate(all="ignore"):
            value[chunk], g = _focal_dd(inputs[chunk].astype(np.float64), targets[chunk].astype(np.float64), alpha,
                                        gamma, grad_scale, grad is not None)
        if grad is not None:
            _store(grad[chunk], g)
    _store(loss, value)
    _block_sums(value, rows_per_block, block_sums)


def _focal_dd(x, t, alpha, gamma, grad_scale, want_grad):
    """(loss, gradient times grad_scale) of every element, the gradient None unless wanted."""
    nan = np.isnan(x) | np.isnan(t)
    x, t = np.where(nan, 0.0, x), np.where(nan, 0.0, t)  # NaN out, at the end
    infinite = np.isinf(x)
    zeros = np.zeros_like(x)
    ax, pos = np.abs(x), x >= 0
    e_hi, e_lo = _exp_dd(-ax)  # e = e^-|x|
    l1_hi, l1_lo = _log1p_dd(e_hi, e_lo)  # log1p(e)
    ot_hi, ot_lo = _two_diff(np.ones_like(t), t)  # 1 - t, exact
    # ce = t softplus(-x) + (1 - t) softplus(x) = log1p(e) + (1 - t) max(x, 0) + t max(-x, 0): terms >= 0
    side = np.where(pos, _dd_mul(ot_hi, ot_lo, ax, zeros), _two_prod(t, ax))
    ce_hi, ce_lo = _dd_add(l1_hi, l1_lo, *side)
    # sigma(x) = A/(1 + e), sigma(-x) = B/(1 + e): (A, B) = (1, e) for x >= 0, (e, 1) below; never 1 - sigma
    a_hi, a_lo = np.where(pos, 1.0, e_hi), np.where(pos, 0.0, e_lo)
    b_hi, b_lo = np.where(pos, e_hi, 1.0), np.where(pos, e_lo, 0.0)
    # q = 1 - p_t = t sigma(-x) + (1 - t) sigma(x) = num/(1 + e), num = t B + (1 - t) A: terms >= 0
    num_hi, num_lo = _dd_add(*_dd_mul(t, zeros, b_hi, b_lo), *_dd_mul(ot_hi, ot_lo, a_hi, a_lo))
    on_e = np.where(pos, t == 1.0, t == 0.0)  # hard label predicted right: num = e exactly
    hard = (t == 0.0) | (t == 1.0)
    # log num: -|x| or 0 for hard labels (exact), else from num, or where num is tiny (t tiny, x << 0)
    # log(t + (1 - t) e) = log-add-exp(log t, log(1 - t) - |x|) with log(1 - t) = -t (t < 2^-960)
    tiny = ~hard & (num_hi < _constant("focal", "TINY"))
    ln_hi, ln_lo = _log_dd_of(np.where(hard | tiny, 1.0, num_hi), np.where(hard | tiny, 0.0, num_lo))
    ln_hi, ln_lo = np.where(hard, np.where(on_e, -ax, 0.0), ln_hi), np.where(hard, 0.0, ln_lo)
    if tiny.any():
        lt_hi, lt_lo = _log_dd(t[tiny])
        lb_hi, lb_lo = _two_sum(-ax[tiny], -t[tiny])
        first = lt_hi >= lb_hi
        m_hi, m_lo = np.where(first, lt_hi, lb_hi), np.where(first, lt_lo, lb_lo)
        d_hi, d_lo = _dd_add(*np.where(first, (lb_hi, lb_lo), (lt_hi, lt_lo)), -m_hi, -m_lo)  # <= 0
        s_hi, s_lo = _log1p_dd(*_exp_dd_of(d_hi, d_lo))
        ln_hi[tiny], ln_lo[tiny] = _dd_add(m_hi, m_lo, s_hi, s_lo)
    lq_hi, lq_lo = _dd_add(ln_hi, ln_lo, -l1_hi, -l1_lo)  # log q = log num - log1p(e) <= 0
    w_hi, w_lo = (np.ones_like(t), zeros) if alpha < 0 else _dd_add(
        *_two_prod(np.full_like(t, alpha), t), *_dd_mul(*_two_diff(1.0, alpha), ot_hi, ot_lo))  # alpha_t
    # x = +-inf (e = 0): ce = +inf, unless its label factor (1 - t for x = +inf, t for -inf) is 0: then 0
    ce_hi[infinite], ce_lo[infinite] = np.where(np.where(pos, ot_hi, t)[infinite] > 0, np.inf, 0.0), 0.0
    q_hi, q_lo, k = _focal_power(lq_hi, lq_lo, gamma)
    p_hi, p_lo = _dd_mul(*_dd_mul(w_hi, w_lo, np.where(np.isinf(ce_hi), 0.0, ce_hi), ce_lo), q_hi, q_lo)
    value = np.ldexp(p_hi + p_lo, -k.astype(np.int64))
    value = np.where(np.isinf(ce_hi), np.where(w_hi == 0, 0.0, np.inf), value)  # q^gamma > 0 there
    value = np.where(nan, np.nan, value)
    if not want_grad:
        return value, None
    # d/dx = alpha_t q^gamma ((1 - t) A - t B + gamma ce (1 - 2t) r)/(1 + e), r = e/num (1 for num = e)
    r_hi, r_lo = _dd_div(e_hi, e_lo, np.where(on_e | tiny, 1.0, num_hi), np.where(on_e | tiny, 0.0, num_lo))
    r_hi, r_lo = np.where(on_e, 1.0, r_hi), np.where(on_e, 0.0, r_lo)
    if tiny.any():  # r = e/num = exp(-|x| - log num) <= 1 (to t)
        arg_hi, arg_lo = _dd_add(-ax[tiny], zeros[tiny], -ln_hi[tiny], -ln_lo[tiny])
        r_hi[tiny], r_lo[tiny] = _exp_dd_of(np.minimum(arg_hi, 0.0), arg_lo)
    finite_ce = np.where(np.isinf(ce_hi), 0.0, ce_hi), np.where(np.isinf(ce_hi), 0.0, ce_lo)  # r = 0 there: a 0 term
    third = _dd_mul(*_dd_mul(*finite_ce, r_hi, r_lo), *_dd_mul(*_two_diff(1.0, 2.0 * t), np.full_like(t, gamma), zeros))
    n_hi, n_lo = _dd_add(*_dd_mul(ot_hi, ot_lo, a_hi, a_lo), *_dd_mul(-t, zeros, b_hi, b_lo))
    n_hi, n_lo = _dd_add(n_hi, n_lo, *third)
    d_hi, d_lo = _dd_div(n_hi, n_lo, *_dd_add(np.ones_like(e_hi), zeros, e_hi, e_lo))
    g_hi, g_lo = _dd_mul(*_dd_mul(w_hi, w_lo, q_hi, q_lo), d_hi, d_lo)
    g_hi, g_lo = _dd_mul(g_hi, g_lo, np.full_like(g_hi, grad_scale), zeros)
    g = np.ldexp(g_hi + g_lo, -k.astype(np.int64))
    return value, np.where(nan, np.nan, g)


def kernel(spec, dtype):
    """The reference kernel declared by ``spec`` (the same function serves float32 and float64), taking
    the list of its arguments in the header's order like the other backends' kernels."""
    function = globals()[spec.stem]
    return lambda args: function(*args)
