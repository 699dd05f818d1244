"""Glue shared by the per-loss test files: oracle values per family (computed once per family and
dtype, whatever the number of backends), the checks of a family against them, and the two tests every
loss runs on its families (:func:`family_tests`).

A test file describes its loss with a :class:`Loss`: its stem (the declaration gives the public
function and its outputs), the exact denominators of its reductions, and how to describe an element in a
failure report.
"""

import dataclasses
import functools
from typing import Callable

import numpy as np
import pytest

import stableloss
from stableloss._spec import KERNELS
from stableloss._stability import budgets, families, oracle, ulp


@dataclasses.dataclass(frozen=True)
class Loss:
    stem: str
    denominators: Callable  # denominators(part) -> dict reduction -> exact denominator (mpf, int or None: sum)
    describe: Callable = None  # describe(part, output, index) -> str, for failure reports

    def call(self, part, reduction, backend, extras=True):
        """The public function on ``part``: {output: value} with the outputs the declaration names (without
        its extra outputs unless ``extras``: the kernels' paths without them get tested too)."""
        kernel = KERNELS[self.stem]
        wanted = kernel.everything() if extras else {"return_grad": True}
        result = getattr(stableloss, kernel.function_of(part))(**part, reduction=reduction, backend=backend, **wanted)
        return kernel.named_outputs((*result, *((None,) * len(kernel.extras))) if not extras else result)


def family_tests(loss, reductions=("mean", "sum")):
    """``test_family`` (every output of every part within budget, reduction "none") and
    ``test_reduction`` (each of ``reductions``) over every stability family of ``loss``, for every
    backend and dtype: a test file binds them to those names."""
    names = list(families.FAMILIES[loss.stem])

    @pytest.mark.parametrize("name", names)
    def test_family(backend, dtype, name):
        check_family(loss, backend, dtype, name)

    @pytest.mark.parametrize("reduction", reductions)
    @pytest.mark.parametrize("name", names)
    def test_reduction(backend, dtype, name, reduction):
        check_reduction(loss, backend, dtype, name, reduction)

    return test_family, test_reduction


def typical_calls(shape, dtype, options=False, seed=0):
    """(stem, public function, keyword arguments) of a typical call of every declared loss, on inputs of
    ``shape`` (families.typical; with ``options``, every optional argument too)."""
    calls = [(stem, families.typical(stem, shape, dtype, seed, options)) for stem in families.TYPICAL]
    return [(stem, getattr(stableloss, KERNELS[stem].function_of(kwargs)), kwargs) for stem, kwargs in calls]


@dataclasses.dataclass(frozen=True)
class ExactPart:
    values: dict  # output -> object array of mpf
    rounded: dict  # output -> ulp.Exact
    denominators: dict


@functools.lru_cache(maxsize=None)
def exact_family(loss, name, dtype_name):
    """The parts of a family and their oracle values, rounded to the dtype (cached: mpmath is slow)."""
    parts, result = [], []
    for part, values in oracle.exact_family(loss.stem, name, dtype_name):
        rounded = {output: ulp.exact_values(v, dtype_name) for output, v in values.items()}
        parts.append(part)
        result.append(ExactPart(values, rounded, loss.denominators(part)))
    return parts, result


class Failures:
    """Collects the assertion failures of several checks, so that every output gets measured (and
    filed in the summary table) before the test fails with all of them."""

    def __init__(self):
        self.messages = []

    def run(self, check, *args, **kwargs):
        try:
            check(*args, **kwargs)
        except AssertionError as error:
            self.messages.append(str(error))

    def raise_any(self):
        if self.messages:
            raise AssertionError("\n".join(self.messages))


def report_name(backend):
    """The name a backend's errors are reported under in the ulp summary: backend c with the SIMD level a
    test forced below the CPU's best (conftest.py: c-avx2, c-scalar), so that each level gets its rows."""
    if backend != "c":
        return backend
    from stableloss import _c
    level = _c.simd_level()
    return backend if level == _c.best_simd_level() else f"c-{level}"


def check_family(loss, backend, dtype, name):
    """reduction="none": every output of every part within budget."""
    parts, exact = exact_family(loss, name, dtype.name)
    failures = Failures()
    for part, ex in zip(parts, exact):
        got = loss.call(part, "none", backend)
        for output, value in got.items():
            if output not in ex.rounded:
                continue
            failures.run(ulp.check, value, ex.rounded[output], budgets.max_ulp(loss.stem, dtype, output),
                         key=(report_name(backend), loss.stem, dtype.name, output), family=name,
                         describe=_describer(loss, part, output),
                         relative=budgets.relative_exception(loss.stem, part, output, dtype),
                         terms=budgets.term_exception(loss.stem, part, output, dtype))
    failures.raise_any()


def _describer(loss, part, output):
    if loss.describe is None:
        return None
    return functools.partial(loss.describe, part, output)


def _reduced_exact(values, denominator):
    total = oracle.total(values)
    if denominator is None:
        return total
    if denominator == 0:
        return oracle.NAN
    return oracle.divide(total, denominator)


def check_reduction(loss, backend, dtype, name, reduction):
    """``mean``/``sum``/``batchmean``: the loss within the reduction budget of the exactly rounded
    reduction of the exact per-element values; for ``mean``-like reductions also the gradient, which
    is the gradient of the sum divided by the denominator (per element, the gradient budget)."""
    parts, exact = exact_family(loss, name, dtype.name)
    failures = Failures()
    for part, ex in zip(parts, exact):
        if reduction not in ex.denominators:
            continue
        denominator = ex.denominators[reduction]
        got = loss.call(part, reduction, backend, extras=False)
        want = ulp.exact_values(np.array([_reduced_exact(ex.values["loss"], denominator)], dtype=object), dtype)
        allowance = _reduction_allowance(loss, part, ex, dtype, denominator)
        failures.run(_check_scalar, got["loss"], want, allowance,
                     key=(report_name(backend), loss.stem, dtype.name, f"loss[{reduction}]"), family=name)
        if denominator is None or denominator == 0:
            continue
        for output, value in got.items():
            if output == "loss" or value is None or output not in ex.values or np.shape(value) != ex.values[output].shape:
                continue
            scaled = np.array([oracle.divide(v, denominator) for v in ex.values[output].reshape(-1)],
                              dtype=object).reshape(ex.values[output].shape)
            terms = budgets.term_exception(loss.stem, part, output, dtype)
            failures.run(ulp.check, value, ulp.exact_values(scaled, dtype), budgets.max_ulp(loss.stem, dtype, output),
                         key=(report_name(backend), loss.stem, dtype.name, f"{output}[{reduction}]"), family=name,
                         describe=_describer(loss, part, output),
                         terms=None if terms is None else terms / float(denominator))
    failures.raise_any()


def _reduction_allowance(loss, part, ex, dtype, denominator):
    """Extra absolute error allowed in a reduction: the per-element relative exception (float64 KL),
    carried into the sum."""
    exception = budgets.relative_exception(loss.stem, part, "loss", dtype)
    if exception is None:
        return 0.0
    mask, rel = exception
    hi = ex.rounded["loss"].hi
    allowance = rel * float(np.sum(np.abs(np.where(mask & np.isfinite(hi), hi, 0.0))))
    return allowance / float(denominator) if denominator else allowance


def _check_scalar(got, want, allowance, key, family):
    got = np.asarray(got)
    assert got.shape == (), f"{key}: a reduced loss must be a scalar, got shape {got.shape}"
    assert got.dtype == want.dtype, f"{key}: dtype {got.dtype}, expected {want.dtype}"
    err = ulp.ulp_error(got.reshape(1), want)
    spacing = ulp.ulp(np.where(np.isfinite(want.hi), want.hi, 0.0), want.dtype)
    with np.errstate(over="ignore"):
        allowed = budgets.REDUCTION_ULP + allowance / spacing
    if np.isinf(err[0]):
        ulp.record(key, 1.0, "special", family, 0)
    else:
        ulp.record(key, float(err[0]), "ulp", family, float(allowed[0]))
    assert err[0] <= allowed[0], (f"{key} [{family}]: {float(got)!r} != {want.hi[0]!r} (exact reduction, "
                                  f"{err[0]:.4g} ulp, allowed {allowed[0]:.4g})")


# ---------------------------------------------------------------------------------------------------
# The losses over a class axis (cross-entropy, nll_loss)

def class_denominators(part):
    """``mean`` divides by the summed weights of the non-ignored index targets, or by the number of
    positions for probability targets (PyTorch's rule)."""
    target = np.asarray(part["target"])
    if target.dtype.kind == "f":
        positions = target.size // (target.shape[1] if target.ndim >= 2 else target.shape[0])
        return {"sum": None, "mean": positions}
    counted = target[target != part.get("ignore_index", -100)].reshape(-1)
    weight = part.get("weight")
    if weight is None:
        return {"sum": None, "mean": counted.size}
    return {"sum": None, "mean": oracle.exact_sum([oracle.exact(weight[y]) for y in counted])}


def describe_class_row(part, output, index):
    """The row of a failing element of a loss over a class axis: its size, max, target and entries."""
    x = np.asarray(part["input"])
    target = np.asarray(part["target"])
    axis = 1 if x.ndim >= 2 else 0
    if output == "loss":
        position, j = index, None
    else:
        position, j = index[:axis] + index[axis + 1:], index[axis]
    row = x[position[:axis] + (slice(None),) + position[axis:]]
    label = target[position] if target.dtype.kind in "iu" else \
        np.array2string(target[position[:axis] + (slice(None),) + position[axis:]], threshold=6, precision=3)
    text = f"C={len(row)}, max={fmt(np.max(row))} at {int(np.argmax(row))}, target={label}"
    if target.dtype.kind in "iu" and 0 <= int(label) < len(row):
        text += f", x[target]={fmt(row[int(label)])}"
    if j is not None:
        text += f", x[{j}]={fmt(row[j])}"
    return text + (f", row={np.array2string(row, threshold=6, precision=4)}" if len(row) <= 64 else "")


# ---------------------------------------------------------------------------------------------------
# Formatting helpers for the describe functions

def fmt(value):
    return np.format_float_scientific(np.float64(value), precision=8, trim="k") \
        if np.isfinite(value) else repr(float(value))


def element_inputs(part, names, index, shape):
    """``name=value`` for the arrays of ``part`` (broadcast to ``shape``) at ``index``."""
    out = []
    for name in names:
        value = part.get(name)
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            out.append(f"{name}={fmt(np.broadcast_to(value, shape)[index])}")
        else:
            out.append(f"{name}={value!r}")
    return ", ".join(out)
