"""Gaussian NLL against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum").

The gradient w.r.t. a broadcast variance (one per row, broadcastable shapes, a Python float) is the
sum of the per-element gradients over the broadcast elements: it is compared with the exactly
rounded sum of the exact per-element values."""

import numbers

import numpy as np
import pytest

from stableloss._stability import families, oracle
import helpers
import stableloss


def _call(part, reduction, backend):
    loss, (grad_input, grad_var) = stableloss.gaussian_nll_loss(**part, reduction=reduction, backend=backend,
                                                                return_grad=True)
    return {"loss": loss, "grad_input": grad_input, "grad_var": grad_var}


def _aligned_var(part):
    """var as an array that numpy-broadcasts to the input, following the rules of DESIGN.md: a Python
    float, the input's shape, the input's shape without its last dim (one per row), broadcastable."""
    x, var = np.asarray(part["input"]), part["var"]
    if isinstance(var, numbers.Real):
        return np.asarray(var, dtype=x.dtype)
    var = np.asarray(var)
    return var[..., None] if var.shape == x.shape[:-1] and var.shape != x.shape else var


def _exact(part):
    x = np.asarray(part["input"])
    aligned = _aligned_var(part)
    loss, grad_input, grad_var = oracle.gnll(x, np.broadcast_to(part["target"], x.shape),
                                             np.broadcast_to(aligned, x.shape), part.get("eps", 1e-6),
                                             part.get("full", False))
    # the gradient w.r.t. var sums over the elements var was broadcast to
    owner = np.broadcast_to(np.arange(aligned.size).reshape(aligned.shape), x.shape).reshape(-1)
    groups = [[] for _ in range(aligned.size)]
    for element, value in zip(owner, grad_var.reshape(-1)):
        groups[element].append(value)
    summed = np.empty(aligned.size, dtype=object)
    summed[:] = [oracle.total(group) for group in groups]
    return {"loss": loss, "grad_input": grad_input, "grad_var": summed.reshape(np.shape(part["var"]))}


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    shape = np.shape(part["input"])
    if output == "grad_var" and np.shape(part["var"]) != shape:
        return f"var={part['var'] if np.ndim(part['var']) == 0 else part['var'][index]!r} (gradient summed " \
               f"over the broadcast elements), input shape {shape}"
    return helpers.element_inputs(dict(part, var=_aligned_var(part)), ("input", "target", "var", "eps", "full"),
                                  index, shape)


GNLL = helpers.Loss("gnll", _call, _exact, _denominators, _describe)
NAMES = list(families.FAMILIES["gnll"])


@pytest.mark.parametrize("name", NAMES)
def test_family(backend, dtype, name):
    helpers.check_family(GNLL, backend, dtype, name)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", NAMES)
def test_reduction(backend, dtype, name, reduction):
    helpers.check_reduction(GNLL, backend, dtype, name, reduction)
