"""nll_loss against the mpmath oracle: every stability family of families.py, every backend, float32 and
float64; per element (reduction="none") and reduced ("mean", "sum"); the fuzz against the reference."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import stableloss
from fuzzing import DTYPES, FUZZ, SHAPES, compare, layout, values
import helpers

NLL = helpers.Loss("nll", helpers.class_denominators, helpers.describe_class_row)
test_family, test_reduction = helpers.family_tests(NLL)


@FUZZ
@given(data=st.data(), dtype=DTYPES, shape=SHAPES, reduction=st.sampled_from(["none", "mean", "sum"]),
       weighted=st.booleans(), return_grad=st.booleans())
def test_fuzz(native_backend, data, dtype, shape, reduction, weighted, return_grad):
    """Log-probabilities (every kind of value <= 0, NaN among them) and non-negative weights, so that the
    reductions add terms of one sign."""
    x = layout(data.draw, -np.abs(data.draw(values(dtype, shape))))
    n_classes = shape[1] if len(shape) >= 2 else shape[0]
    index_shape = shape[:1] + shape[2:] if len(shape) >= 2 else ()
    size = int(np.prod(index_shape))
    # indices in range, the ignore_index, and now and then one out of range
    target = np.array(data.draw(st.lists(st.integers(-2, n_classes), min_size=size, max_size=size)),
                      np.int64).reshape(index_shape)
    ignore_index = data.draw(st.sampled_from([-100, -1, 0]))
    weight = np.abs(data.draw(values(dtype, (n_classes,)))) if weighted and n_classes else None
    compare(lambda b: stableloss.nll_loss(x, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                          backend=b, return_grad=return_grad),
            native_backend, dtype, "nll", *[a for a in (x, target, weight) if a is not None])
