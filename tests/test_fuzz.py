"""Property-based fuzzing of every public function on every backend (work in progress, issue 6).

Not collected yet (the file name keeps it out of the default run): its first runs found cross-backend
differences still to be fixed (bce on c, gnll/kl/mse on numba, mse on c via an fsum overflow, and
overflow warnings in log_softmax); run it with ``python -m pytest tests/fuzz_wip.py``.

Each generated call either raises one of the documented exception types or returns what the numpy
reference returns, within the accuracy budget (two results each within 4 ulp of the exact value differ
by at most 8 ulp; NaN exactly where the reference gives NaN).  Inputs are never modified.  The number
of examples is bounded for CI; STABLELOSS_FUZZ_EXAMPLES raises it for long runs.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stableloss as sl

EXAMPLES = int(os.environ.get("STABLELOSS_FUZZ_EXAMPLES", "60"))
NATIVE = [b for b in sl.available_backends() if b != "numpy"]
DOCUMENTED_ERRORS = (IndexError, ValueError, TypeError)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

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


def close(got, want, dtype):
    """Within 8 ulp of the reference, NaN where it is NaN, the same infinities."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tiny = np.finfo(dtype).smallest_subnormal
    ulp = np.maximum(np.spacing(np.abs(want[finite]).astype(dtype)).astype(np.float64), tiny)
    err = np.abs(got[finite] - want[finite]) / ulp
    assert not err.size or err.max() <= 8, (err.max(), got, want)


def compare(call, backend, dtype, *arrays):
    """Run ``call`` on ``backend`` and on the reference; check errors, values and untouched inputs."""
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
    flat_got, flat_want = _flatten(got), _flatten(want)
    for g, w in zip(flat_got, flat_want):
        close(g, w, dtype)


def _flatten(result):
    if isinstance(result, tuple):
        return [leaf for part in result for leaf in _flatten(part)]
    return [result]


pytestmark = pytest.mark.skipif(not NATIVE, reason="only the numpy backend is available")


@pytest.mark.parametrize("backend", NATIVE)
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       smoothing=st.sampled_from([0.0, 0.1, 1.0]), weighted=st.booleans(), probabilities=st.booleans(),
       return_grad=st.booleans())
def test_cross_entropy(backend, data, dtype, shape, reduction, smoothing, weighted, probabilities, return_grad):
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
    compare(lambda b: sl.cross_entropy(x, target, weight=weight, ignore_index=ignore_index,
                                       reduction=reduction, label_smoothing=smoothing, backend=b,
                                       return_grad=return_grad), backend, dtype, *arrays)


@pytest.mark.parametrize("backend", NATIVE)
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), pos_weighted=st.booleans(), return_grad=st.booleans())
def test_bce(backend, data, dtype, shape, reduction, weighted, pos_weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 1e-7, 0.5]),
                                         min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                      dtype).reshape(shape)
    weight = np.abs(data.draw(values(dtype, shape[-1:]))) if weighted else None
    pos_weight = np.abs(data.draw(values(dtype, shape[-1:]))) if pos_weighted else None
    arrays = [a for a in (x, target, weight, pos_weight) if a is not None]
    compare(lambda b: sl.binary_cross_entropy_with_logits(x, target, weight=weight, reduction=reduction,
                                                          pos_weight=pos_weight, backend=b,
                                                          return_grad=return_grad), backend, dtype, *arrays)


@pytest.mark.parametrize("backend", NATIVE)
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       var_kind=st.sampled_from(["same", "row", "scalar", "float"]), full=st.booleans(), return_grad=st.booleans())
def test_gnll(backend, data, dtype, shape, reduction, var_kind, full, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if var_kind == "float":
        var = data.draw(st.sampled_from([0.0, 1e-8, 0.5, 1.0, 1e30]))
    else:
        var_shape = {"same": shape, "row": shape[:-1], "scalar": (1,)}[var_kind]
        var = np.abs(data.draw(values(dtype, var_shape)))
    arrays = [a for a in (x, target, var) if isinstance(a, np.ndarray)]
    compare(lambda b: sl.gaussian_nll_loss(x, target, var, full=full, reduction=reduction, backend=b,
                                           return_grad=return_grad), backend, dtype, *arrays)


@pytest.mark.parametrize("backend", NATIVE)
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, log_target=st.booleans(),
       reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]), return_grad=st.booleans())
def test_kl(backend, data, dtype, shape, log_target, reduction, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if not log_target:
        target = np.abs(target)
    compare(lambda b: sl.kl_div(x, target, reduction=reduction, log_target=log_target, backend=b,
                                return_grad=return_grad), backend, dtype, x, target)


@pytest.mark.parametrize("backend", NATIVE)
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), return_grad=st.booleans())
def test_mse(backend, data, dtype, shape, reduction, weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    weight = np.abs(data.draw(values(dtype, shape))) if weighted else None
    arrays = [a for a in (x, target, weight) if a is not None]
    compare(lambda b: sl.mse_loss(x, target, reduction=reduction, weight=weight, backend=b,
                                  return_grad=return_grad), backend, dtype, *arrays)


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("func", [sl.logsumexp, sl.log_softmax, sl.softmax])
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES)
def test_lse_family(backend, func, data, dtype, shape):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    compare(lambda b: func(x, axis=axis, backend=b), backend, dtype, x)
