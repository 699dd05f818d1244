"""l1_loss, smooth_l1_loss and huber_loss (one kernel) against the mpmath oracle: every stability family
of families.py (each part calls the function its options name), every backend, float32 and float64;
per element (reduction="none") and reduced ("mean", "sum"; a weighted mean is sum / sum w for l1_loss
and sum / N for huber_loss, as torch)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from stableloss._spec import KERNELS
from stableloss._stability import oracle
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers


def _denominators(part):
    weight = part.get("weight")
    if weight is None or KERNELS["huber"].function_of(part) == "huber_loss":
        return {"sum": None, "mean": np.size(part["input"])}
    return {"sum": None, "mean": oracle.exact_sum([oracle.exact(w) for w in np.reshape(weight, -1)])}


def _describe(part, output, index):
    options = {name: part[name] for name in ("beta", "delta") if name in part}
    return (f"{KERNELS['huber'].function_of(part)}({options}): "
            + helpers.element_inputs(part, ("input", "target", "weight"), index, np.shape(part["input"])))


HUBER = helpers.Loss("huber", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(HUBER)

THRESHOLDS = st.sampled_from([0.0, 1e-300, 0.5, 1.0, 3.0, 1e30, np.inf])


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       function=st.sampled_from(["l1_loss", "smooth_l1_loss", "huber_loss"]), threshold=THRESHOLDS,
       weighted=st.booleans(), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, function, threshold, weighted, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    options = {"smooth_l1_loss": {"beta": threshold}, "huber_loss": {"delta": threshold}}.get(function, {})
    weight = np.abs(data.draw(values(dtype, shape))) if weighted and function != "smooth_l1_loss" else None
    if weight is not None:
        options["weight"] = weight
    arrays = [a for a in (x, target, weight) if a is not None]
    compare(lambda b: getattr(stableloss, function)(x, target, reduction=reduction, **options, backend=b,
                                                    return_grad=return_grad), native_backend, dtype, "huber", *arrays)
