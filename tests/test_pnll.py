"""Poisson NLL against the mpmath oracle: every stability family of families.py, every backend, float32
and float64; per element (reduction="none") and reduced ("mean", "sum").  Both forms (log_input or not),
with and without the Stirling term (full)."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import stableloss
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "log_input", "full", "eps"), index, np.shape(part["input"]))


PNLL = helpers.Loss("pnll", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(PNLL)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       log_input=st.booleans(), full=st.booleans(), eps=st.sampled_from([1e-8, 0.0, 0.5]), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, log_input, full, eps, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if reduction != "none":
        # the losses have both signs: where the finite ones add up beyond DBL_MAX, their double sum (the
        # block sums of kernels/stableloss.h) is inf, -inf or NaN by the order of the additions
        losses = stableloss.poisson_nll_loss(x, target, log_input=log_input, full=full, eps=eps, reduction="none",
                                             backend="numpy").astype(np.float64)
        with np.errstate(over="ignore"):
            assume(np.sum(np.abs(losses[np.isfinite(losses)])) <= np.finfo(np.float64).max)
    compare(lambda b: stableloss.poisson_nll_loss(x, target, log_input=log_input, full=full, eps=eps,
                                                  reduction=reduction, backend=b, return_grad=return_grad),
            native_backend, dtype, "pnll", x, target)
