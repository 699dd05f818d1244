"""The machinery of the property-based fuzz tests that each loss's test file runs on every native backend.

Each generated call either raises one of the documented exception types (the same type as the numpy
reference raises) or returns what the numpy reference returns within the accuracy budget: both are
within the budget of the exact value, so they differ by at most twice the budget of budgets.py (the
larger of the element and reduction budgets, or the documented exceptions doubled), NaN exactly where
the reference gives NaN and the same infinities.  Inputs are never modified.  The number of examples per test is bounded for CI
(STABLELOSS_FUZZ_EXAMPLES, default 60, raises it for long runs).

By default the examples are derandomized (seeded from each test), so that CI tests the same examples
on every run and a red run is reproducible; STABLELOSS_FUZZ_EXPLORE=1 draws new examples on each run
(and replays the failures kept in .hypothesis/): the mode of long exploratory runs, e.g.
``STABLELOSS_FUZZ_EXPLORE=1 STABLELOSS_FUZZ_EXAMPLES=3000 python -m pytest tests -k fuzz``.
"""

import os

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from stableloss._stability import budgets, ulp

EXAMPLES = int(os.environ.get("STABLELOSS_FUZZ_EXAMPLES", "60"))
DOCUMENTED_ERRORS = (IndexError, ValueError, TypeError)
EXPLORE = os.environ.get("STABLELOSS_FUZZ_EXPLORE") == "1"
#: No health check is suppressed: none fires, also under the sanitizer build (.ci/sanitize).
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not EXPLORE)

DTYPES = st.sampled_from([np.float32, np.float64])
SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 5e-324, 1e-30, 1e30, 3e38, 1e300, -1e300]


def values(dtype, shape):
    """Floats of every kind: ordinary, tiny, huge, subnormal, zero, NaN and +-inf."""
    finfo = np.finfo(dtype)
    ordinary = st.floats(-50, 50, width=32 if dtype == np.float32 else 64)
    extreme = st.floats(-float(finfo.max), float(finfo.max), width=32 if dtype == np.float32 else 64)
    with np.errstate(over="ignore"):  # 1e300 is inf in float32: also a special value
        special = st.sampled_from([dtype(v) for v in SPECIAL])
    element = st.one_of(ordinary, ordinary, ordinary, extreme, special)
    size = int(np.prod(shape))
    return st.lists(element, min_size=size, max_size=size).map(lambda v: np.array(v, dtype).reshape(shape))


def layout(draw, array):
    """The same values as a contiguous, transposed, reversed-stride or read-only view."""
    kind = draw(st.sampled_from(["contiguous", "reversed", "strided", "readonly"]))
    if kind == "reversed" and array.ndim:
        return np.ascontiguousarray(array[::-1])[::-1]
    if kind == "strided" and array.ndim:
        wide = np.empty(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if kind == "readonly":
        array = array.copy()
        array.flags.writeable = False
    return array


SHAPES = st.sampled_from([(0,), (1,), (3,), (7,), (8,), (9,), (2, 5), (4, 17), (3, 33), (2, 4, 3), (2, 3, 2, 2)])


def close(got, want, dtype, budget, scale=None, relative=None):
    """got within twice the budget of the reference value want: 2 * budget ulp of want (or of ``scale``,
    the larger term where the budget is term-relative), or a relative error of 2 * ``relative`` where
    that is larger; NaN where want is NaN, the same infinities."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]), (got, want)
    size = np.abs(want) if scale is None else np.maximum(np.abs(want), np.abs(np.broadcast_to(scale, want.shape)))
    with np.errstate(all="ignore"):
        allowed = 2 * budget * ulp.ulp(size, dtype)
        if relative is not None:
            allowed = np.maximum(allowed, 2 * relative * size)
        excess = np.abs(got - want) - allowed
    assert not np.any(excess[finite] > 0), (got, want)


def compare(call, backend, dtype, stem, *arrays, outputs=None, exceptions=None):
    """Run ``call`` on ``backend`` and on the reference; check errors, values and untouched inputs.

    ``outputs`` names the results in order as budgets.OUTPUTS does (default: those of ``stem``);
    ``exceptions(index)`` gives the (scale, relative) of the budget's documented exceptions for the
    index-th output, or None."""
    names = outputs or budgets.OUTPUTS[stem]
    before = [a.copy() for a in arrays]
    try:
        want = call("numpy")
    except DOCUMENTED_ERRORS as exc:
        with pytest.raises(type(exc)):
            call(backend)
        return
    got = call(backend)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)
    for index, (g, w) in enumerate(zip(_flatten(got), _flatten(want))):
        scale, relative = (exceptions(index) if exceptions else None) or (None, None)
        budget = max(budgets.max_ulp(stem, dtype, names[index]), budgets.REDUCTION_ULP)  # reduced or not
        close(g, w, dtype, budget, scale, relative)


def _flatten(result):
    if isinstance(result, tuple):
        return [leaf for part in result for leaf in _flatten(part)]
    return [result]
