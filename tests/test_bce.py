"""BCE with logits against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum")."""

import functools

import numpy as np
import pytest

from stableloss._stability import families, oracle
import helpers
import stableloss


def _call(part, reduction, backend):
    loss, grad = stableloss.binary_cross_entropy_with_logits(**part, reduction=reduction, backend=backend,
                                                             return_grad=True)
    return {"loss": loss, "grad": grad}


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "weight", "pos_weight"), index, np.shape(part["input"]))


BCE = helpers.Loss("bce", _call, functools.partial(oracle.exact_outputs, "bce"), _denominators, _describe)
NAMES = list(families.FAMILIES["bce"])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    helpers.check_family(BCE, backend, dtype, name)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_reduction(backend, dtype, name, reduction):
    helpers.check_reduction(BCE, backend, dtype, name, reduction)
