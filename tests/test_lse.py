"""logsumexp, log_softmax and softmax against the mpmath oracle, on the rows of the cross-entropy
families (every backend, float32 and float64), along the class axis; rows whose maximum is infinite
against SciPy and PyTorch; the torch spellings dim= and keepdim=, and the gradient."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

import stableloss
from stableloss import _reference
from stableloss._spec import KERNELS
from stableloss._stability import budgets, families, oracle, ulp
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers



@functools.lru_cache(maxsize=None)
def _exact(name, dtype_name):
    """(input, exact lse, log_softmax, softmax in the input's layout) for each part."""
    return [(part["input"], {output: ulp.exact_values(v, dtype_name) for output, v in values.items()})
            for part, values in oracle.exact_family("lse", name, dtype_name)]


NAMES = list(families.FAMILIES[KERNELS["lse"].family_stem])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    _check_family(backend, dtype, name)


@pytest.mark.parametrize("columns", [3, 7])
@pytest.mark.parametrize("name", NAMES)
def test_family_in_column_chunks(monkeypatch, dtype, name, columns):
    """The numpy reference with its rows split into chunks of a few columns (its sums carried across
    chunks) stays within the same budget."""
    monkeypatch.setattr(_reference, "COLUMNS", columns)
    _check_family("numpy", dtype, name)


def _check_family(backend, dtype, name):
    failures = helpers.Failures()
    for x, exact in _exact(name, dtype.name):
        axis = oracle.class_axis(x)
        got = {"lse": stableloss.logsumexp(x, axis=axis, backend=backend),
               "log_softmax": stableloss.log_softmax(x, axis=axis, backend=backend),
               "softmax": stableloss.softmax(x, axis=axis, backend=backend)}
        for output, value in got.items():
            failures.run(ulp.check, value, exact[output], budgets.max_ulp("lse", dtype, output),
                         key=(helpers.report_name(backend), "lse", dtype.name, output), family=name,
                         describe=functools.partial(_describe, x, output))
    failures.raise_any()


def _describe(x, output, index):
    axis = oracle.class_axis(x)
    position = index if output == "lse" else index[:axis] + index[axis + 1:]
    row = x[position[:axis] + (slice(None),) + position[axis:]]
    return f"C={len(row)}, max={np.max(row)!r}, row={np.array2string(row, threshold=6, precision=4)}"


def test_axis_and_keepdims(backend, dtype):
    """Any axis gives the rows along that axis; keepdims keeps it as size 1."""
    x = np.random.default_rng(7).standard_normal((3, 4, 5)).astype(dtype)
    for axis in (0, 1, 2, -1, -2):
        moved = np.moveaxis(x, axis, -1)
        reference = stableloss.logsumexp(np.ascontiguousarray(moved), axis=-1, backend=backend)
        np.testing.assert_array_equal(stableloss.logsumexp(x, axis=axis, backend=backend), reference)
        kept = stableloss.logsumexp(x, axis=axis, keepdims=True, backend=backend)
        np.testing.assert_array_equal(kept, np.expand_dims(reference, axis))
        for func in (stableloss.log_softmax, stableloss.softmax):
            np.testing.assert_array_equal(func(x, axis=axis, backend=backend),
                                          np.moveaxis(func(np.ascontiguousarray(moved), axis=-1, backend=backend),
                                                      -1, axis))


INFINITE_MAX_ROWS = [[np.inf], [np.inf, 0.0], [np.inf, -np.inf], [np.inf, np.inf], [-np.inf], [-np.inf, -np.inf],
                     [np.inf, np.nan], [np.nan, -np.inf]]


@pytest.mark.parametrize("row", INFINITE_MAX_ROWS, ids=str)
def test_infinite_max_row(backend, dtype, row):
    """A row whose maximum is infinite: logsumexp is that maximum (+inf, or -inf for an all-masked
    row) as SciPy and PyTorch give it, NaN with a NaN; log_softmax and softmax NaN, as PyTorch."""
    x = np.array(row, dtype)
    with np.errstate(invalid="ignore"):
        expected = special.logsumexp(x)
    value, grad = stableloss.logsumexp(x, backend=backend, return_grad=True)
    np.testing.assert_array_equal(value, expected)
    assert value.dtype == dtype
    for got in (grad, stableloss.softmax(x, backend=backend), stableloss.log_softmax(x, backend=backend)):
        assert np.isnan(got).all(), got


def test_all_masked_row_among_others(backend, dtype):
    """An all -inf row of a 2-D input (an all-masked attention row) gives -inf next to finite rows."""
    x = np.array([[0.0, 1.0, 2.0], [-np.inf] * 3, [np.inf, 1.0, 2.0]], dtype)
    got = stableloss.logsumexp(x, axis=1, backend=backend)
    assert got[0] == stableloss.logsumexp(x[0], backend=backend)
    np.testing.assert_array_equal(got[1:], [-np.inf, np.inf])


def test_torch_spellings(backend, dtype):
    """dim= and keepdim= as PyTorch spells them; one spelling of each pair at a time."""
    x = np.random.default_rng(3).standard_normal((3, 4, 5)).astype(dtype)
    np.testing.assert_array_equal(stableloss.logsumexp(x, dim=1, keepdim=True, backend=backend),
                                  stableloss.logsumexp(x, axis=1, keepdims=True, backend=backend))
    for func in (stableloss.log_softmax, stableloss.softmax):
        np.testing.assert_array_equal(func(x, dim=0, backend=backend), func(x, axis=0, backend=backend))
    with pytest.raises(TypeError, match="pass axis= or dim=, not both"):
        stableloss.logsumexp(x, axis=1, dim=1, backend=backend)
    with pytest.raises(TypeError, match="pass keepdims= or keepdim=, not both"):
        stableloss.logsumexp(x, keepdims=True, keepdim=True, backend=backend)
    with pytest.raises(TypeError, match="pass axis= or dim=, not both"):
        stableloss.softmax(x, -1, dim=-1, backend=backend)


def test_grad_is_softmax(backend, dtype):
    """return_grad gives the gradient of the sum of the values, the softmax along the axis, in the
    input's shape, from the same call; keepdim keeps the value's axis only."""
    x = np.random.default_rng(5).standard_normal((3, 4, 5)).astype(dtype)
    for axis in (0, 1, -1):
        value, grad = stableloss.logsumexp(x, dim=axis, keepdim=True, backend=backend, return_grad=True)
        np.testing.assert_array_equal(value, stableloss.logsumexp(x, axis=axis, keepdims=True, backend=backend))
        np.testing.assert_array_equal(grad, stableloss.softmax(x, axis=axis, backend=backend))
        assert grad.shape == x.shape and grad.dtype == dtype


@pytest.mark.parametrize("func", [stableloss.logsumexp, stableloss.log_softmax, stableloss.softmax])
@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES)
def test_fuzz(native_backend, func, data, dtype, shape):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    compare(lambda b: func(x, axis=axis, backend=b), native_backend, dtype, "lse", x,
            outputs=(func.__name__.replace("logsumexp", "lse"),))


@pytest.mark.parametrize("func", [stableloss.logsumexp, stableloss.log_softmax, stableloss.softmax])
def test_wide_rows_match_the_reference(native_backend, dtype, func):
    """A row wider than Numba's stored row (2^16 columns: recomputed exponentials) and the reference's
    column chunks (2^15) gives the reference's values."""
    x = (np.random.default_rng(3).standard_normal((2, 2**16 + 17)) * 4).astype(dtype)
    compare(lambda b: func(x, axis=1, backend=b), native_backend, dtype, "lse", x,
            outputs=(func.__name__.replace("logsumexp", "lse"),))
