"""BCE with logits against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum")."""

import numpy as np

import helpers


def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "weight", "pos_weight"), index, np.shape(part["input"]))


BCE = helpers.Loss("bce", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(BCE)
