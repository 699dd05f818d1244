"""Property-based fuzzing of every public function on every native backend.

Each generated call either raises one of the documented exception types (the same type as the numpy
reference raises) or returns what the numpy reference returns within the accuracy budget: both are
within the budget of the exact value, so they differ by at most twice the budget of budgets.py (the
larger of the element and reduction budgets, or the documented exceptions doubled), NaN exactly where the reference gives NaN and the same
infinities.  Inputs are never modified.  The number of examples per test is bounded for CI
(STABLELOSS_FUZZ_EXAMPLES, default 60, raises it for long runs).

By default the examples are derandomized (seeded from each test), so that CI tests the same examples
on every run and a red run is reproducible; STABLELOSS_FUZZ_EXPLORE=1 draws new examples on each run
(and replays the failures kept in .hypothesis/): the mode of long exploratory runs, e.g.
``STABLELOSS_FUZZ_EXPLORE=1 STABLELOSS_FUZZ_EXAMPLES=3000 python -m pytest tests/test_fuzz.py``.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stableloss._stability import budgets
import stableloss as sl
from stableloss._stability import ulp

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


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       smoothing=st.sampled_from([0.0, 0.1, 1.0]), weighted=st.booleans(), probabilities=st.booleans(),
       return_grad=st.booleans())
def test_cross_entropy(native_backend, data, dtype, shape, reduction, smoothing, weighted, probabilities, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    n_classes = shape[1] if len(shape) >= 2 else shape[0]
    index_shape = shape[:1] + shape[2:] if len(shape) >= 2 else ()
    if probabilities:
        target = data.draw(values(dtype, shape))
        ignore_index = -100
    else:
        # indices in range, the ignore_index, and now and then one out of range
        target = np.array(data.draw(st.lists(st.integers(-2, n_classes), min_size=int(np.prod(index_shape)),
                                             max_size=int(np.prod(index_shape)))), np.int64).reshape(index_shape)
        ignore_index = data.draw(st.sampled_from([-100, -1, 0]))
    weight = np.abs(data.draw(values(dtype, (n_classes,)))) if weighted and n_classes else None
    arrays = [a for a in (x, target, weight) if a is not None]
    part = dict(input=x, target=target, weight=weight, ignore_index=ignore_index, label_smoothing=smoothing)

    def exceptions(index):  # output 1 is the gradient (of the sum for "none", else of the reduction)
        terms = budgets.ce_grad_terms(part, dtype) if index == 1 and x.size else None
        if terms is None:
            return None
        if reduction == "mean":  # the gradient of the mean: the terms over the same denominator
            terms = terms * np.abs(_ce_mean_scale(x, target, weight, ignore_index))
        return terms, None

    compare(lambda b: sl.cross_entropy(x, target, weight=weight, ignore_index=ignore_index,
                                       reduction=reduction, label_smoothing=smoothing, backend=b,
                                       return_grad=return_grad), native_backend, dtype, "ce", *arrays,
            exceptions=exceptions)


def _ce_mean_scale(x, target, weight, ignore_index):
    """1/denominator of cross_entropy's "mean" (PyTorch's rule), inf/NaN-safe as a magnitude."""
    if target.dtype.kind == "f":
        n_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
        count = x.size // n_classes
    else:
        counted = target[target != ignore_index].reshape(-1)
        count = len(counted) if weight is None else float(np.sum(weight.astype(np.float64)[counted]))
    with np.errstate(all="ignore"):
        return np.float64(1.0) / count if count else np.float64(0.0)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), pos_weighted=st.booleans(), return_grad=st.booleans())
def test_bce(native_backend, data, dtype, shape, reduction, weighted, pos_weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 1e-7, 0.5]),
                                         min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                      dtype).reshape(shape)
    weight = np.abs(data.draw(values(dtype, shape[-1:]))) if weighted else None
    pos_weight = np.abs(data.draw(values(dtype, shape[-1:]))) if pos_weighted else None
    arrays = [a for a in (x, target, weight, pos_weight) if a is not None]
    compare(lambda b: sl.binary_cross_entropy_with_logits(x, target, weight=weight, reduction=reduction,
                                                          pos_weight=pos_weight, backend=b,
                                                          return_grad=return_grad), native_backend, dtype, "bce", *arrays)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       var_kind=st.sampled_from(["same", "row", "unit_last", "float"]), full=st.booleans(), return_grad=st.booleans())
def test_gnll(native_backend, data, dtype, shape, reduction, var_kind, full, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if var_kind == "float":
        var = data.draw(st.sampled_from([0.0, 1e-8, 0.5, 1.0, 1e30]))
    else:
        var_shape = {"same": shape, "row": shape[:-1], "unit_last": shape[:-1] + (1,)}[var_kind]
        var = np.abs(data.draw(values(dtype, var_shape)))
    arrays = [a for a in (x, target, var) if isinstance(a, np.ndarray)]
    compare(lambda b: sl.gaussian_nll_loss(x, target, var, full=full, reduction=reduction, backend=b,
                                           return_grad=return_grad), native_backend, dtype, "gnll", *arrays)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, log_target=st.booleans(),
       reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]), return_grad=st.booleans())
def test_kl(native_backend, data, dtype, shape, log_target, reduction, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if not log_target:
        target = np.abs(target)
    def exceptions(index):  # output 0 is the loss: per term for "none", else a sum of terms
        close_terms = budgets.kl_close(x, target, log_target, dtype)
        if index != 0 or not close_terms.any():
            return None
        with np.errstate(all="ignore"):
            terms = np.abs(np.where(target > 0, target * (np.log(target) - x.astype(np.float64)), 0.0))
            scale = terms if reduction == "none" else np.nansum(terms) / (x.shape[0] if reduction == "batchmean" else 1)
        return scale, budgets.KL_CLOSE_RELATIVE

    compare(lambda b: sl.kl_div(x, target, reduction=reduction, log_target=log_target, backend=b,
                                return_grad=return_grad), native_backend, dtype, "kl", x, target,
            exceptions=exceptions)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), return_grad=st.booleans())
def test_mse(native_backend, data, dtype, shape, reduction, weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    weight = np.abs(data.draw(values(dtype, shape))) if weighted else None
    arrays = [a for a in (x, target, weight) if a is not None]
    compare(lambda b: sl.mse_loss(x, target, reduction=reduction, weight=weight, backend=b,
                                  return_grad=return_grad), native_backend, dtype, "mse", *arrays)


@pytest.mark.parametrize("func", [sl.logsumexp, sl.log_softmax, sl.softmax])
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES)
def test_lse_family(native_backend, func, data, dtype, shape):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    compare(lambda b: func(x, axis=axis, backend=b), native_backend, dtype, "lse", x,
            outputs=(func.__name__.replace("logsumexp", "lse"),))
