"""MSE against the mpmath oracle: every stability family of families.py, every backend, float32 and
float64; per element (reduction="none") and reduced ("mean", "sum"; weighted mean = sum / sum w)."""

import numpy as np

from stableloss._stability import oracle
import helpers


def _denominators(part):
    weight = part.get("weight")
    if weight is None:
        return {"sum": None, "mean": np.size(part["input"])}
    weight = np.broadcast_to(weight, np.shape(part["input"])).reshape(-1)
    return {"sum": None, "mean": oracle.exact_sum([oracle.exact(w) for w in weight])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "weight"), index, np.shape(part["input"]))


MSE = helpers.Loss("mse", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(MSE)
