"""Cross-entropy against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum")."""

import numpy as np

from stableloss._stability import oracle
import helpers


def _denominators(part):
    """``mean`` divides by the summed weights of the non-ignored index targets, or by the number of
    positions for probability targets (PyTorch's rule)."""
    target = np.asarray(part["target"])
    if target.dtype.kind == "f":
        positions = target.size // (target.shape[1] if target.ndim >= 2 else target.shape[0])
        return {"sum": None, "mean": positions}
    counted = target[target != part.get("ignore_index", -100)].reshape(-1)
    weight = part.get("weight")
    if weight is None:
        return {"sum": None, "mean": counted.size}
    return {"sum": None, "mean": oracle.exact_sum([oracle.exact(weight[y]) for y in counted])}


def _describe(part, output, index):
    x = np.asarray(part["input"])
    target = np.asarray(part["target"])
    axis = 1 if x.ndim >= 2 else 0
    if output == "loss":
        position, j = index, None
    else:
        position, j = index[:axis] + index[axis + 1:], index[axis]
    row = x[position[:axis] + (slice(None),) + position[axis:]]
    label = target[position] if target.dtype.kind in "iu" else \
        np.array2string(target[position[:axis] + (slice(None),) + position[axis:]], threshold=6, precision=3)
    text = f"C={len(row)}, max={helpers.fmt(np.max(row))} at {int(np.argmax(row))}, target={label}"
    if target.dtype.kind in "iu" and 0 <= int(label) < len(row):
        text += f", x[target]={helpers.fmt(row[int(label)])}"
    if j is not None:
        text += f", x[{j}]={helpers.fmt(row[j])}"
    return text + (f", row={np.array2string(row, threshold=6, precision=4)}" if len(row) <= 64 else "")


CE = helpers.Loss("ce", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(CE)
