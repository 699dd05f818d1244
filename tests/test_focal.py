"""Sigmoid focal loss against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum")."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from stableloss._stability import budgets
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers


def _denominators(part):
    return {"sum": None, "mean": np.size(part["inputs"])}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("inputs", "targets", "alpha", "gamma"), index, np.shape(part["inputs"]))


FOCAL = helpers.Loss("focal", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(FOCAL)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       alpha=st.sampled_from([0.25, -1.0, 0.0, 1.0, 0.6]), gamma=st.sampled_from([2.0, 0.0, 0.5, 3.3, 1e5]),
       return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, alpha, gamma, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    targets = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.3, 1e-7, 0.5, np.nan, 1e-45]),
                                          min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                       dtype).reshape(shape)
    part = dict(inputs=x, targets=targets, alpha=alpha, gamma=gamma)

    def exceptions(index):  # output 1 is the gradient: float64 soft labels count in ulps of its largest term
        terms = budgets.focal_grad_terms(part, dtype) if index == 1 else None
        return None if terms is None else (terms / (x.size if reduction == "mean" else 1), None)

    compare(lambda b: stableloss.sigmoid_focal_loss(**part, reduction=reduction, backend=b, return_grad=return_grad),
            native_backend, dtype, "focal", x, targets, exceptions=exceptions)
