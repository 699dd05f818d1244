"""MSE against the mpmath oracle: every stability family of families.py, every backend, float32 and
float64; per element (reduction="none") and reduced ("mean", "sum"; weighted mean = sum / sum w)."""

import functools

import numpy as np
import pytest

from stableloss._stability import families, oracle
import helpers
import stableloss


def _call(part, reduction, backend):
    loss, grad = stableloss.mse_loss(**part, reduction=reduction, backend=backend, return_grad=True)
    return {"loss": loss, "grad": grad}


def _denominators(part):
    weight = part.get("weight")
    if weight is None:
        return {"sum": None, "mean": np.size(part["input"])}
    weight = np.broadcast_to(weight, np.shape(part["input"])).reshape(-1)
    return {"sum": None, "mean": oracle.exact_sum([oracle.exact(w) for w in weight])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "weight"), index, np.shape(part["input"]))


MSE = helpers.Loss("mse", _call, functools.partial(oracle.exact_outputs, "mse"), _denominators, _describe)
NAMES = list(families.FAMILIES["mse"])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    helpers.check_family(MSE, backend, dtype, name)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_reduction(backend, dtype, name, reduction):
    helpers.check_reduction(MSE, backend, dtype, name, reduction)
