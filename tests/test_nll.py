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


def test_zero_total_weight_mean(backend, dtype):
    """Counted targets of zero total weight: NaN mean (0/0) and -w_y/0 at the targets: NaN for w_y = 0,
    +-inf for weights of both signs summing to 0 (-inf mean for a negative sum), as PyTorch."""
    x = np.array([[-1.0, -2.0], [-3.0, -4.0]], dtype)
    loss, grad = stableloss.nll_loss(x, np.array([0, 0]), weight=np.array([0.0, 1.0], dtype), backend=backend,
                                     return_grad=True)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, np.array([[np.nan, 0.0], [np.nan, 0.0]], dtype))
    loss, grad = stableloss.nll_loss(x, np.array([0, 1]), weight=np.array([1.0, -1.0], dtype), backend=backend,
                                     return_grad=True)
    assert loss == -np.inf  # (1 - 4) / 0
    np.testing.assert_array_equal(grad, np.array([[-np.inf, 0.0], [0.0, np.inf]], dtype))
