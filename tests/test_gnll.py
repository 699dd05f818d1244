"""Gaussian NLL against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum").

The gradient w.r.t. a broadcast variance (one per row, broadcastable shapes, a Python float) is the
sum of the per-element gradients over the broadcast elements: it is compared with the exactly
rounded sum of the exact per-element values."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from stableloss._stability import oracle
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
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


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       var_kind=st.sampled_from(["same", "row", "unit_last", "float"]), full=st.booleans(), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, var_kind, full, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if var_kind == "float":
        var = data.draw(st.sampled_from([0.0, 1e-8, 0.5, 1.0, 1e30]))
    else:
        var_shape = {"same": shape, "row": shape[:-1], "unit_last": shape[:-1] + (1,)}[var_kind]
        var = np.abs(data.draw(values(dtype, var_shape)))
    arrays = [a for a in (x, target, var) if isinstance(a, np.ndarray)]
    compare(lambda b: stableloss.gaussian_nll_loss(x, target, var, full=full, reduction=reduction, backend=b,
                                           return_grad=return_grad), native_backend, dtype, "gnll", *arrays)
