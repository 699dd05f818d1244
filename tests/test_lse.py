"""logsumexp, log_softmax and softmax against the mpmath oracle, on the rows of the cross-entropy
families (every backend, float32 and float64), along the class axis.

Parts with a +inf logit or a row of only -inf are left out: the design documents do not define
these functions there (cross-entropy defines NaN; numpy/SciPy give +-inf)."""

import functools

import numpy as np
import pytest

import budgets
from stableloss._stability import families, oracle, ulp
import helpers
import stableloss


def _defined(x):
    rows = np.moveaxis(x, oracle.class_axis(x), -1).reshape(-1, x.shape[oracle.class_axis(x)])
    with np.errstate(invalid="ignore"):
        nan_rows = np.isnan(rows).any(axis=1)
        return not (np.isposinf(rows).any() or (~nan_rows & np.isneginf(rows).all(axis=1)).any())


@functools.lru_cache(maxsize=None)
def _exact(name, dtype_name):
    """(input, exact lse, log_softmax, softmax in the input's layout) for each defined part."""
    return [(part["input"], {output: ulp.exact_values(values, dtype_name)
                             for output, values in oracle.exact_outputs("lse", part).items()})
            for part in families.build("ce", name, dtype_name) if _defined(part["input"])]


NAMES = [name for name in families.FAMILIES["ce"] if name not in ("pos_inf_rows", "all_neg_inf_rows")]


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    failures = helpers.Failures()
    for x, exact in _exact(name, dtype.name):
        axis = oracle.class_axis(x)
        got = {"lse": stableloss.logsumexp(x, axis=axis, backend=backend),
               "log_softmax": stableloss.log_softmax(x, axis=axis, backend=backend),
               "softmax": stableloss.softmax(x, axis=axis, backend=backend)}
        for output, value in got.items():
            failures.run(ulp.check, value, exact[output], budgets.max_ulp("lse", dtype, output),
                         key=(backend, "lse", dtype.name, output), family=name,
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
