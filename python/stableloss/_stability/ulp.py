"""The ulp-error measure in the output dtype, and an assertion that reports the worst points.

An exact oracle value is stored as :class:`Exact`: ``hi``, the value correctly rounded to the output
dtype (round to nearest even, subnormals and overflow to inf included), and ``residual`` =
(exact - hi) / ulp(hi) in float64, the rounding error in ulps (so nothing is lost below the
subnormal range either).

The error of ``got`` is ``|got - exact| / ulp(hi)`` where ulp(hi) is the spacing of the dtype at the
rounded exact value: 2**(e - p + 1) for hi in [2**e, 2**(e+1)), and the smallest subnormal spacing
for subnormal hi and for hi = 0 (so an exact value below the underflow threshold is measured in
units of the smallest subnormal).  Special values must match exactly: an exact NaN requires a NaN,
an exact value that rounds to +-inf requires that infinity, and a NaN or infinity where the rounded
exact value is finite is an infinite error.  Zeros are compared as numbers (-0.0 == 0.0: mpmath has
no signed zero and the API does not promise zero signs).

>>> import numpy as np, mpmath
>>> third = exact_values(np.array([mpmath.mpf(1) / 3], dtype=object), np.float32)
>>> float(ulp_error(np.array([0.33333334], np.float32), third)[0]) < 0.5
True
"""

import collections
import dataclasses

import mpmath
import numpy as np

#: (precision in bits, exponent of the smallest subnormal, overflow exponent) per dtype.
FORMATS = {np.dtype(np.float32): (24, -149, 128), np.dtype(np.float64): (53, -1074, 1024)}


@dataclasses.dataclass(frozen=True)
class Exact:
    """Exact values for an output of ``dtype``: ``hi`` correctly rounded, ``residual`` = (exact - hi) in
    ulps of hi (0 where hi is not finite)."""
    hi: np.ndarray
    residual: np.ndarray
    dtype: np.dtype

    @property
    def shape(self):
        return self.hi.shape

    def __getitem__(self, index):
        return Exact(np.asarray(self.hi[index]), np.asarray(self.residual[index]), self.dtype)


def round_to(value, dtype):
    """The mpmath number ``value`` correctly rounded to ``dtype`` (a Python float)."""
    prec, etiny, emax = FORMATS[np.dtype(dtype)]
    if mpmath.isnan(value):
        return float("nan")
    if mpmath.isinf(value):
        return float(value)
    if value == 0:
        return 0.0
    _, e = mpmath.frexp(value)  # |value| in [2**(e-1), 2**e)
    quantum = max(e - prec, etiny)  # the spacing of the dtype there
    rounded = mpmath.ldexp(mpmath.nint(mpmath.ldexp(value, -quantum)), quantum)  # nint: half to even
    if abs(rounded) >= mpmath.ldexp(1, emax):
        return float("inf") if rounded > 0 else float("-inf")
    return float(rounded)


def exact_values(values, dtype):
    """:class:`Exact` for an object array of mpmath numbers."""
    values = np.asarray(values, dtype=object)
    flat = values.reshape(-1)
    hi = np.array([round_to(v, dtype) for v in flat], dtype=np.float64)
    finite = np.isfinite(hi)
    spacing = ulp(np.where(finite, hi, 0.0), dtype)
    with mpmath.workprec(300):
        residual = [float((v - mpmath.mpf(h)) / mpmath.mpf(u)) if f else 0.0
                    for v, h, u, f in zip(flat, hi, spacing, finite)]
    return Exact(hi.reshape(values.shape), np.array(residual).reshape(values.shape), np.dtype(dtype))


def ulp(hi, dtype):
    """The spacing of ``dtype`` at the (finite) values ``hi``: the ulp of the rounded exact value."""
    prec, etiny, _ = FORMATS[np.dtype(dtype)]
    _, e = np.frexp(np.abs(hi))
    return np.ldexp(1.0, np.where(hi == 0, etiny, np.maximum(e - prec, etiny)))


def ulp_error(got, exact):
    """Error of ``got`` in ulps of ``exact.dtype`` (0 for matching specials, inf for mismatches)."""
    got = np.asarray(got, dtype=np.float64)
    hi = exact.hi
    finite = np.isfinite(hi)
    with np.errstate(all="ignore"):
        # got - hi is exact for nearby values (both are multiples of the smallest subnormal) and so is
        # the division by a power of two
        err = np.abs((got - hi) / ulp(np.where(finite, hi, 0.0), exact.dtype) - exact.residual)
    matches = np.where(np.isnan(hi), np.isnan(got), got == hi)
    err = np.where(finite, err, np.where(matches, 0.0, np.inf))
    return np.where(finite & ~np.isfinite(got), np.inf, err)


def relative_error(got, exact):
    """|got - exact| / |exact| (0 where got is exact; specials as in :func:`ulp_error`)."""
    err = ulp_error(got, exact)
    finite = np.isfinite(exact.hi) & np.isfinite(err)
    with np.errstate(all="ignore"):
        exact_in_ulps = exact.hi / ulp(np.where(finite, exact.hi, 0.0), exact.dtype) + exact.residual
        rel = np.where(err == 0, 0.0, err / np.abs(exact_in_ulps))
    return np.where(finite, rel, err)


# ---------------------------------------------------------------------------------------------------
# Assertion with a FuncData-style report, and the record behind the suite's summary table

#: worst error seen per ((backend, stem, dtype, output), unit): (error, family, budget); unit "ulp" is
#: the worst finite ulp error, "rel" the worst relative error where an exception was needed, and
#: "special" the number of values in one check where a NaN/inf did not match
WORST = collections.OrderedDict()


def record(key, error, unit, family, budget):
    previous = WORST.get((key, unit))
    if previous is None or not error <= previous[0]:
        WORST[(key, unit)] = (error, family, budget)


def _fmt(value, dtype):
    digits = 9 if np.dtype(dtype) == np.float32 else 17
    return np.format_float_scientific(np.float64(value), precision=digits - 1, unique=False, trim="k") \
        if np.isfinite(value) else repr(float(value))


def _describe(index, inputs):
    parts = []
    for name, array in inputs.items():
        value = array[index] if isinstance(array, np.ndarray) and array.ndim else array
        if isinstance(value, np.ndarray):
            value = np.array2string(value, threshold=8, precision=9)
        parts.append(f"{name}={value}")
    return ", ".join(parts)


def in_ulps_of_terms(err, exact, terms):
    """The ulp errors ``err`` against ``exact`` counted instead in ulps of max(|exact|, terms), where both
    are finite: the budget of an output that is a difference or a sum of terms that cancel (budgets.py)."""
    finite = np.isfinite(exact.hi) & np.isfinite(err)
    hi = np.where(finite, exact.hi, 0.0)
    scale = np.maximum(np.abs(hi), np.where(finite, terms, 0.0))
    with np.errstate(all="ignore"):
        return np.where(finite, err * ulp(hi, exact.dtype) / ulp(scale, exact.dtype), err)


def check(got, exact, max_ulp, *, key, family="", inputs=None, describe=None, relative=None, terms=None,
          n_report=10):
    """Assert that ``got`` is within ``max_ulp`` ulps of ``exact`` everywhere.

    ``relative``: optional ``(mask, max_rel)``; where ``mask`` holds, a relative error up to ``max_rel``
    is accepted as well (the documented exceptions of budgets.py).  ``inputs`` (name -> array of
    ``got``'s shape, or scalar) or ``describe(index) -> str`` say what to print for a bad point.
    ``terms``: optional array of the magnitude of the terms whose difference the output is (budgets.py's
    term-relative exception); the error is then counted in ulps of max(|exact|, terms).
    ``key`` = (backend, stem, dtype name, output) files the worst error in the summary table.
    """
    got = np.asarray(got)
    assert got.shape == exact.shape, f"{key}: shape {got.shape}, expected {exact.shape}"
    assert got.dtype == exact.dtype, f"{key}: dtype {got.dtype}, expected {exact.dtype}"
    err = ulp_error(got, exact)
    if terms is not None:
        err = in_ulps_of_terms(err, exact, terms)
    bad = err > max_ulp
    rel_mask = None
    if relative is not None:
        rel_mask, max_rel = relative
        rel_mask = np.broadcast_to(rel_mask, got.shape)
        rel = relative_error(got, exact)
        bad &= ~(rel_mask & (rel <= max_rel))  # an exception widens the budget, it never narrows it
    special = np.isinf(err)  # a NaN/inf where the exact value is finite, or the other way round
    if special.any():
        record(key, float(np.sum(special)), "special", family, 0)
    uses_exception = (rel_mask & (err > max_ulp) if rel_mask is not None else np.zeros(err.shape, bool)) & ~special
    if uses_exception.any():
        record(key, float(np.max(rel[uses_exception])), "rel", family, relative[1])
    if (~uses_exception & ~special).any():
        record(key, float(np.max(err[~uses_exception & ~special])), "ulp", family, max_ulp)
    if not bad.any():
        return
    order = np.argsort(-np.where(bad, err, -1.0), axis=None, kind="stable")[:min(n_report, int(bad.sum()))]
    lines = [f"{key} [{family}]: {int(bad.sum())} of {got.size} values beyond {max_ulp} ulp"
             + (f" (relative {relative[1]:g} where the exception applies)" if relative is not None else "")
             + f"; worst {float(np.max(err[bad])):.4g} ulp"]
    for flat in order:
        index = np.unravel_index(flat, got.shape)
        where = describe(index) if describe else (_describe(index, inputs) if inputs else "")
        unit = f"rel {float(relative_error(got[index], exact[index])):.3g}" \
            if rel_mask is not None and rel_mask[index] else f"{err[index]:.4g} ulp"
        lines.append(f"  {tuple(int(i) for i in index)} {where} => {_fmt(got[index], got.dtype)} != "
                     f"{_fmt(exact.hi[index], got.dtype)} ({unit})")
    raise AssertionError("\n".join(lines))


def summary_table():
    """The worst error per backend, loss, dtype and output, as a text table ('' if nothing measured)."""
    if not WORST:
        return ""
    rows = [("backend", "loss", "dtype", "output", "worst", "unit", "budget", "", "family")]
    for ((backend, stem, dtype, output), unit), (error, family, budget) in sorted(WORST.items()):
        status = "ok" if error <= budget else "OVER"
        shown = f"{int(error)}" if unit == "special" else f"{error:.3g}"
        rows.append((backend, stem, dtype, output, shown, unit, f"{budget:g}", status, family))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)
