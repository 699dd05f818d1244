"""Gaussian NLL against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum").

The gradient w.r.t. a broadcast variance (one per row, broadcastable shapes, a Python float) is the
sum of the per-element gradients over the broadcast elements: it is compared with the exactly
rounded sum of the exact per-element values."""

import functools

import numpy as np
import pytest

from stableloss._stability import families, oracle
import helpers
import stableloss


def _call(part, reduction, backend):
    loss, (grad_input, grad_var) = stableloss.gaussian_nll_loss(**part, reduction=reduction, backend=backend,
                                                                return_grad=True)
    return {"loss": loss, "grad_input": grad_input, "grad_var": grad_var}


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    shape = np.shape(part["input"])
    if output == "grad_var" and np.shape(part["var"]) != shape:
        return f"var={part['var'] if np.ndim(part['var']) == 0 else part['var'][index]!r} (gradient summed " \
               f"over the broadcast elements), input shape {shape}"
    return helpers.element_inputs(dict(part, var=oracle.aligned_var(part)), ("input", "target", "var", "eps", "full"),
                                  index, shape)


GNLL = helpers.Loss("gnll", _call, functools.partial(oracle.exact_outputs, "gnll"), _denominators, _describe)
NAMES = list(families.FAMILIES["gnll"])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    helpers.check_family(GNLL, backend, dtype, name)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_reduction(backend, dtype, name, reduction):
    helpers.check_reduction(GNLL, backend, dtype, name, reduction)
