"""KL divergence against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum", "batchmean").

Budget: 4 ulp, except float64 terms where log p and log q agree in their leading bits (relative
1e-12, see budgets.py)."""

import numpy as np

import helpers


def _denominators(part):
    shape = np.shape(part["input"])
    return {"sum": None, "mean": int(np.prod(shape)), "batchmean": shape[0] if shape else 1}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "log_target"), index, np.shape(part["input"]))


KL = helpers.Loss("kl", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(KL, reductions=('mean', 'sum', 'batchmean'))
