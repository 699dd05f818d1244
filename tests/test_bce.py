"""BCE with logits against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum")."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers



def _denominators(part):
    return {"sum": None, "mean": np.size(part["input"])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "weight", "pos_weight"), index, np.shape(part["input"]))


BCE = helpers.Loss("bce", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(BCE)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), pos_weighted=st.booleans(), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, weighted, pos_weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 1e-7, 0.5]),
                                         min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                      dtype).reshape(shape)
    weight = np.abs(data.draw(values(dtype, shape[-1:]))) if weighted else None
    pos_weight = np.abs(data.draw(values(dtype, shape[-1:]))) if pos_weighted else None
    arrays = [a for a in (x, target, weight, pos_weight) if a is not None]
    compare(lambda b: stableloss.binary_cross_entropy_with_logits(x, target, weight=weight, reduction=reduction,
                                                          pos_weight=pos_weight, backend=b,
                                                          return_grad=return_grad), native_backend, dtype, "bce", *arrays)
