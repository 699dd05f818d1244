"""Identities of the maximum-likelihood view, checked across the public functions (every backend).

- Cross-entropy against a target distribution t is the KL divergence from t to the model plus the
  entropy of t:  CE(x, t) = KL(t || softmax x) + H(t), with KL computed by kl_div(log_softmax(x), t);
  and its gradient is softmax(x) sum_j t_j - t.
- The Gaussian NLL at unit variance is the squared error halved (plus log(2 pi)/2 with full=True), and
  its input gradient is half the squared error's.

Each side is within its own budget of the exact value, so the two sides agree to the sum of the
budgets, measured on the scale of the terms that make them up.
"""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stableloss._stability import budgets
import stableloss
from stableloss._stability import ulp


def _floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def logits_and_distribution(draw):
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 30))
    x = draw(hnp.arrays(np.float64, (n, c), elements=_floats(-30, 30)))
    t = draw(hnp.arrays(np.float64, (n, c), elements=_floats(0, 1) | st.just(0.0)))
    t[:, 0] += 1e-3  # at least one positive entry per row
    return x, t / t.sum(axis=1, keepdims=True)


@given(problem=logits_and_distribution())
def test_ce_is_kl_plus_entropy(backend, dtype, problem):
    x, t = (a.astype(dtype) for a in problem)
    ce, ce_grad = stableloss.cross_entropy(x, t, reduction="none", backend=backend, return_grad=True)
    log_q = stableloss.log_softmax(x, axis=1, backend=backend)
    kl = stableloss.kl_div(log_q, t, reduction="none", backend=backend).astype(np.float64)
    t64, log_q64 = t.astype(np.float64), log_q.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(t64 > 0, t64 * np.log(t64), 0.0)
    eps = float(np.finfo(dtype).eps)
    for i in range(len(x)):
        entropy = -math.fsum(plogp[i])
        scale = math.fsum(t64[i] * np.abs(log_q64[i])) + abs(entropy) + math.fsum(np.abs(kl[i]))
        assert abs(float(ce[i]) - (math.fsum(kl[i]) + entropy)) <= 16 * eps * scale
    softmax = stableloss.softmax(x, axis=1, backend=backend).astype(np.float64)
    expected = softmax * t64.sum(axis=1, keepdims=True) - t64
    scale = softmax * t64.sum(axis=1, keepdims=True) + t64
    assert np.all(np.abs(ce_grad.astype(np.float64) - expected) <= 16 * eps * scale)


@given(data=st.data())
def test_gnll_unit_variance_is_half_mse(backend, dtype, data):
    shape = data.draw(hnp.array_shapes(max_dims=3, max_side=6))
    x = data.draw(hnp.arrays(np.float64, shape, elements=_floats(-1e6, 1e6))).astype(dtype)
    t = data.draw(hnp.arrays(np.float64, shape, elements=_floats(-1e6, 1e6))).astype(dtype)
    mse, mse_grad = stableloss.mse_loss(x, t, reduction="none", backend=backend, return_grad=True)
    # both sides are within their budgets of the exact (x - t)^2 / 2, hence within the sum of each other
    allowed = budgets.max_ulp("gnll", dtype, "loss") + budgets.max_ulp("mse", dtype, "loss")
    half = (mse.astype(np.float64) / 2).astype(dtype)  # exact: halving a float
    for var in (1.0, np.ones(shape, dtype)):
        loss, (grad_input, _) = stableloss.gaussian_nll_loss(x, t, var, reduction="none", backend=backend,
                                                             return_grad=True)
        assert _ulp_distance(loss, half) <= allowed
        assert _ulp_distance(grad_input, (mse_grad.astype(np.float64) / 2).astype(dtype)) <= allowed
    full = stableloss.gaussian_nll_loss(x, t, 1.0, full=True, reduction="none", backend=backend)
    expected = (half.astype(np.float64) + 0.5 * math.log(2 * math.pi)).astype(dtype)
    assert _ulp_distance(full, expected) <= allowed + 1  # + the rounding of the float64 sum above


def _ulp_distance(a, b):
    """max |a - b| in ulps of the dtype at b (a and b of one dtype)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if a64.size == 0:
        return 0.0
    return float(np.max(np.abs(a64 - b64) / ulp.ulp(b64, a.dtype)))
