"""Gaussian NLL against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum").

The gradient w.r.t. a broadcast variance (one per row, broadcastable shapes, a Python float) is the
sum of the per-element gradients over the broadcast elements: it is compared with the exactly
rounded sum of the exact per-element values."""

import numpy as np

from stableloss._stability import oracle
import helpers


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    shape = np.shape(part["input"])
    if output == "grad_var" and np.shape(part["var"]) != shape:
        return f"var={part['var'] if np.ndim(part['var']) == 0 else part['var'][index]!r} (gradient summed " \
               f"over the broadcast elements), input shape {shape}"
    return helpers.element_inputs(dict(part, var=oracle.aligned_var(part)), ("input", "target", "var", "eps", "full"),
                                  index, shape)


GNLL = helpers.Loss("gnll", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(GNLL)
