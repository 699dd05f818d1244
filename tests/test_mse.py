"""MSE against the mpmath oracle: every stability family of families.py, every backend, float32 and
float64; per element (reduction="none") and reduced ("mean", "sum"; weighted mean = sum / sum w)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from stableloss._stability import oracle
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
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


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    weight = np.abs(data.draw(values(dtype, shape))) if weighted else None
    arrays = [a for a in (x, target, weight) if a is not None]
    compare(lambda b: stableloss.mse_loss(x, target, reduction=reduction, weight=weight, backend=b,
                                  return_grad=return_grad), native_backend, dtype, "mse", *arrays)
