"""KL divergence against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum", "batchmean").

Budget: 4 ulp, except float64 terms where log p and log q agree in their leading bits (relative
1e-12, see budgets.py)."""

import functools

import numpy as np
import pytest

from stableloss._stability import families, oracle
import helpers
import stableloss


def _call(part, reduction, backend):
    loss, grad = stableloss.kl_div(**part, reduction=reduction, backend=backend, return_grad=True)
    return {"loss": loss, "grad": grad}


def _denominators(part):
    shape = np.shape(part["input"])
    return {"sum": None, "mean": int(np.prod(shape)), "batchmean": shape[0] if shape else 1}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "log_target"), index, np.shape(part["input"]))


KL = helpers.Loss("kl", _call, functools.partial(oracle.exact_outputs, "kl"), _denominators, _describe)
NAMES = list(families.FAMILIES["kl"])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    helpers.check_family(KL, backend, dtype, name)


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean"])
@pytest.mark.parametrize("name", NAMES)
def test_reduction(backend, dtype, name, reduction):
    helpers.check_reduction(KL, backend, dtype, name, reduction)
