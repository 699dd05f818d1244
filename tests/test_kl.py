"""KL divergence against the mpmath oracle: every stability family of families.py, every backend,
float32 and float64; per element (reduction="none") and reduced ("mean", "sum", "batchmean").

Budget: 4 ulp, except float64 terms where log p and log q agree in their leading bits (relative
1e-12, see budgets.py)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from stableloss._stability import budgets
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers



def _denominators(part):
    shape = np.shape(part["input"])
    return {"sum": None, "mean": int(np.prod(shape)), "batchmean": shape[0] if shape else 1}


def _describe(part, output, index):
    return helpers.element_inputs(part, ("input", "target", "log_target"), index, np.shape(part["input"]))


KL = helpers.Loss("kl", _denominators, _describe)
test_family, test_reduction = helpers.family_tests(KL, reductions=('mean', 'sum', 'batchmean'))


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, log_target=st.booleans(),
       reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, log_target, reduction, return_grad):
    x = layout(data.draw, data.draw(values(dtype, shape)))
    target = data.draw(values(dtype, shape))
    if not log_target:
        target = np.abs(target)
    def exceptions(index):  # output 0 is the loss: per term for "none", else a sum of terms
        close_terms = budgets.kl_close(x, target, log_target, dtype)
        if index != 0 or not close_terms.any():
            return None
        with np.errstate(all="ignore"):
            terms = np.abs(np.where(target > 0, target * (np.log(target) - x.astype(np.float64)), 0.0))
            scale = terms if reduction == "none" else np.nansum(terms) / (x.shape[0] if reduction == "batchmean" else 1)
        return scale, budgets.KL_CLOSE_RELATIVE

    compare(lambda b: stableloss.kl_div(x, target, reduction=reduction, log_target=log_target, backend=b,
                                return_grad=return_grad), native_backend, dtype, "kl", x, target,
            exceptions=exceptions)
