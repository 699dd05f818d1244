"""Property tests (hypothesis): invariances and identities every backend must satisfy on any input.

The number of examples per property is STABLELOSS_HYPOTHESIS_EXAMPLES (default 50, see conftest.py).
"""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stableloss._stability import budgets
import stableloss
from stableloss._stability import ulp

FLOAT64 = np.dtype(np.float64)


def _floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def ce_problem(draw, max_rows=4, max_classes=40, scale=30.0, probabilities=None):
    """Logits (N, C), a target (indices or probabilities), optional weights and smoothing."""
    n = draw(st.integers(1, max_rows))
    c = draw(st.integers(1, max_classes))
    x = draw(hnp.arrays(np.float64, (n, c), elements=_floats(-scale, scale)))
    use_probabilities = draw(st.booleans()) if probabilities is None else probabilities
    if use_probabilities:
        t = draw(hnp.arrays(np.float64, (n, c), elements=_floats(0.0, 1.0)))
        target = t / np.maximum(t.sum(axis=1, keepdims=True), 1e-30)
    else:
        target = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    weight = draw(st.none() | hnp.arrays(np.float64, (c,), elements=_floats(0.0, 10.0)))
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    return dict(input=x, target=target, weight=weight, label_smoothing=smoothing)


def _cast(problem, dtype):
    return {name: value.astype(dtype) if isinstance(value, np.ndarray) and value.dtype.kind == "f" else value
            for name, value in problem.items()}


# ---------------------------------------------------------------------------------------------------
# Cross-entropy

@given(data=st.data())
def test_ce_shift_invariance(backend, dtype, data):
    """L(x + c) == L(x) bitwise when x + c is exact: logits and shift on a grid of 1/64 small enough
    that every sum is representable (|x + c| < 2**17 in float32)."""
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 40))
    x = np.array(data.draw(st.lists(st.integers(-2**16, 2**16), min_size=n * c, max_size=n * c))) / 64.0
    shift = data.draw(st.integers(-2**22, 2**22)) / 64.0
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    smoothing = data.draw(st.sampled_from([0.0, 0.25]))
    x = x.reshape(n, c).astype(dtype)
    shifted = (x.astype(np.float64) + shift).astype(dtype)
    assert np.array_equal(shifted.astype(np.float64) - shift, x.astype(np.float64))  # the shift is exact
    loss, grad = stableloss.cross_entropy(x, target, reduction="none", label_smoothing=smoothing,
                                          backend=backend, return_grad=True)
    loss2, grad2 = stableloss.cross_entropy(shifted, target, reduction="none", label_smoothing=smoothing,
                                            backend=backend, return_grad=True)
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(grad2, grad)


@given(problem=ce_problem())
def test_ce_gradient_rows_sum_to_zero(backend, dtype, problem):
    """sum_j dL/dx_j = U sum_j p_j - sum_j u_j = 0 (u_j = w_j t'_j the label weights, U their sum):
    zero up to a few rounding errors of the terms U p_j and u_j the gradient is made of."""
    problem = _cast(problem, dtype)
    _, grad = stableloss.cross_entropy(**problem, reduction="none", backend=backend, return_grad=True)
    x, target, eps_ls = problem["input"], problem["target"], problem["label_smoothing"]
    n, c = x.shape
    w = np.ones(c) if problem["weight"] is None else problem["weight"].astype(np.float64)
    t = target.astype(np.float64) if target.dtype.kind == "f" else np.eye(c)[target]
    label_weight = w * ((1 - eps_ls) * t + eps_ls / c)
    eps, smallest = float(np.finfo(dtype).eps), float(np.finfo(dtype).smallest_subnormal)
    for row, u in zip(grad.astype(np.float64), label_weight):
        scale = math.fsum(np.abs(row)) + 2 * math.fsum(u)
        allowed = budgets.max_ulp("ce", dtype, "grad") * (eps * scale + c * smallest)  # ulps of subnormals
        assert abs(math.fsum(row)) <= allowed


@given(problem=ce_problem())
def test_ce_loss_nonnegative(backend, dtype, problem):
    loss = stableloss.cross_entropy(**_cast(problem, dtype), reduction="none", backend=backend)
    assert np.all(loss >= 0)


# ---------------------------------------------------------------------------------------------------
# Non-negativity of BCE and KL

@given(data=st.data())
def test_bce_loss_nonnegative(backend, dtype, data):
    shape = data.draw(hnp.array_shapes(max_dims=2, max_side=8))
    x = data.draw(hnp.arrays(np.float64, shape, elements=_floats(-1e30, 1e30) | st.sampled_from([np.inf, -np.inf])))
    y = data.draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1.0)))
    w = data.draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 10.0)))
    pw = data.draw(hnp.arrays(np.float64, shape, elements=_floats(0.0, 1000.0)))
    with np.errstate(over="ignore"):
        loss = stableloss.binary_cross_entropy_with_logits(x.astype(dtype), y.astype(dtype), weight=w.astype(dtype),
                                                           pos_weight=pw.astype(dtype), reduction="none",
                                                           backend=backend)
    assert not np.any(loss < 0)


@given(data=st.data())
def test_kl_of_distributions_nonnegative(backend, dtype, data):
    """KL(p || q) >= 0 for distributions p, q (row sums), up to what the rounding of p and log q to
    the dtype can move it: |1 - sum p|, |1 - sum q| and an ulp of each term."""
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 30))
    raw_p = data.draw(hnp.arrays(np.float64, (n, c), elements=_floats(0.0, 1.0)))
    raw_q = data.draw(hnp.arrays(np.float64, (n, c), elements=_floats(1e-6, 1.0)))
    p = (raw_p / np.maximum(raw_p.sum(axis=1, keepdims=True), 1e-30)).astype(dtype)
    q_log = np.log(raw_q / raw_q.sum(axis=1, keepdims=True)).astype(dtype)
    loss = stableloss.kl_div(q_log, p, reduction="none", backend=backend).astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    p64, q_log64 = p.astype(np.float64), q_log.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p64 > 0, p64 * (np.abs(np.log(p64)) + np.abs(q_log64)), 0.0)
    slack = (np.abs(1 - p64.sum(axis=1)) + np.abs(1 - np.exp(q_log64).sum(axis=1)) + 8 * eps * terms.sum(axis=1))
    assert np.all(loss.sum(axis=1) >= -slack)


# ---------------------------------------------------------------------------------------------------
# Reductions agree with the per-element values

def _arrays(data, shape, low, high, dtype):
    return data.draw(hnp.arrays(np.float64, shape, elements=_floats(low, high))).astype(dtype)


def _losses(data, dtype):
    """One random problem per loss: (stem, function, kwargs, denominators by reduction)."""
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, max_side=8))
    x, t = _arrays(data, shape, -20, 20, dtype), _arrays(data, shape, -20, 20, dtype)
    y, w = _arrays(data, shape, 0, 1, dtype), _arrays(data, shape, 0.1, 5, dtype)
    var = _arrays(data, shape, 1e-3, 10, dtype)
    p = _arrays(data, shape, 0, 1, dtype)
    ce = data.draw(ce_problem(probabilities=False))
    ce_target, ce_weight = ce["target"], ce["weight"]
    ce_denominator = (len(ce_target) if ce_weight is None
                      else math.fsum(ce_weight.astype(dtype)[ce_target].astype(float)))
    n = x.size
    return [
        ("ce", stableloss.cross_entropy, _cast(ce, dtype), {"mean": ce_denominator}),
        ("bce", stableloss.binary_cross_entropy_with_logits, dict(input=x, target=y, weight=w), {"mean": n}),
        ("gnll", stableloss.gaussian_nll_loss, dict(input=x, target=t, var=var), {"mean": n}),
        ("kl", stableloss.kl_div, dict(input=-np.abs(x), target=p), {"mean": n, "batchmean": shape[0]}),
        ("mse", stableloss.mse_loss, dict(input=x, target=t, weight=w), {"mean": math.fsum(w.astype(float).ravel())}),
    ]


@given(data=st.data())
def test_reductions_agree_with_none(backend, dtype, data):
    """sum == fsum(none) and mean == fsum(none) / denominator, within the reduction budget plus the
    per-element budget of the 'none' values."""
    for stem, func, kwargs, denominators in _losses(data, dtype):
        values = func(**kwargs, reduction="none", backend=backend).astype(np.float64).ravel()
        slack = budgets.max_ulp(stem, dtype, "loss") * float(np.sum(ulp.ulp(values, dtype)))
        for reduction, denominator in [("sum", 1.0)] + list(denominators.items()):
            got = float(func(**kwargs, reduction=reduction, backend=backend))
            if denominator == 0:
                assert math.isnan(got)
                continue
            want = math.fsum(values) / denominator
            with np.errstate(over="ignore"):
                rounded = float(dtype.type(want))
            if math.isinf(rounded):  # the exact value lies past the dtype's range: it rounds to inf
                assert got == rounded, f"{stem} {reduction}: {got!r} vs {want!r}, which rounds to {rounded}"
                continue
            allowed = budgets.REDUCTION_ULP * float(ulp.ulp(np.array(want), dtype)) + slack / denominator
            assert abs(got - want) <= allowed, f"{stem} {reduction}: {got!r} vs {want!r} (allowed {allowed:.3g})"


# ---------------------------------------------------------------------------------------------------
# Finite-difference gradient checks (float64)

def _central_difference(func, array, index):
    """(f(a + h e_i) - f(a - h e_i)) / 2h with h ~ 2**-20 |a_i|, both steps exactly representable."""
    h = 2.0**-20 * max(1.0, abs(float(array[index])))
    up, down = array.copy(), array.copy()
    up[index] += h
    down[index] -= h
    return (func(up) - func(down)) / (float(up[index]) - float(down[index]))


def _check_gradient(func, array, grad, total):
    """Every entry of ``grad`` against a central difference of ``func`` (a float64 sum)."""
    for index in np.ndindex(array.shape):
        fd = _central_difference(func, array, index)
        tolerance = 1e-6 * (1.0 + abs(grad[index])) + 1e-9 * abs(total)
        assert abs(fd - grad[index]) <= tolerance, f"at {index}: analytic {grad[index]!r}, finite difference {fd!r}"


def _shape(data):
    return data.draw(hnp.array_shapes(min_dims=2, max_dims=2, max_side=5))


@given(problem=ce_problem(max_rows=3, max_classes=8, scale=8.0))
def test_ce_gradient_finite_difference(backend, problem):
    problem = _cast(problem, FLOAT64)

    def loss(x):
        return float(stableloss.cross_entropy(**dict(problem, input=x), reduction="sum", backend=backend))
    total, grad = stableloss.cross_entropy(**problem, reduction="sum", backend=backend, return_grad=True)
    _check_gradient(loss, problem["input"], grad, float(total))


@given(data=st.data())
def test_bce_gradient_finite_difference(backend, data):
    shape = _shape(data)
    x, y = _arrays(data, shape, -15, 15, FLOAT64), _arrays(data, shape, 0, 1, FLOAT64)
    w, pw = _arrays(data, shape, 0, 3, FLOAT64), _arrays(data, shape, 0, 5, FLOAT64)

    def loss(x):
        return float(stableloss.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction="sum",
                                                                 backend=backend))
    total, grad = stableloss.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction="sum",
                                                              backend=backend, return_grad=True)
    _check_gradient(loss, x, grad, float(total))


@given(data=st.data())
def test_gnll_gradient_finite_difference(backend, data):
    shape = _shape(data)
    x, t = _arrays(data, shape, -5, 5, FLOAT64), _arrays(data, shape, -5, 5, FLOAT64)
    var = _arrays(data, shape, 0.1, 10, FLOAT64)
    full = data.draw(st.booleans())
    total, (grad_input, grad_var) = stableloss.gaussian_nll_loss(x, t, var, full=full, reduction="sum",
                                                                 backend=backend, return_grad=True)
    _check_gradient(lambda a: float(stableloss.gaussian_nll_loss(a, t, var, full=full, reduction="sum",
                                                                 backend=backend)), x, grad_input, float(total))
    _check_gradient(lambda v: float(stableloss.gaussian_nll_loss(x, t, v, full=full, reduction="sum",
                                                                 backend=backend)), var, grad_var, float(total))


@given(data=st.data())
def test_kl_gradient_finite_difference(backend, data):
    shape = _shape(data)
    q_log = _arrays(data, shape, -20, 0, FLOAT64)
    log_target = data.draw(st.booleans())
    target = _arrays(data, shape, -20, 0, FLOAT64) if log_target else _arrays(data, shape, 0, 1, FLOAT64)
    total, grad = stableloss.kl_div(q_log, target, reduction="sum", log_target=log_target, backend=backend,
                                    return_grad=True)
    _check_gradient(lambda a: float(stableloss.kl_div(a, target, reduction="sum", log_target=log_target,
                                                      backend=backend)), q_log, grad, float(total))


@given(data=st.data())
def test_mse_gradient_finite_difference(backend, data):
    shape = _shape(data)
    x, t = _arrays(data, shape, -10, 10, FLOAT64), _arrays(data, shape, -10, 10, FLOAT64)
    w = data.draw(st.none() | st.just(_arrays(data, shape, 0, 3, FLOAT64)))
    total, grad = stableloss.mse_loss(x, t, weight=w, reduction="sum", backend=backend, return_grad=True)
    _check_gradient(lambda a: float(stableloss.mse_loss(a, t, weight=w, reduction="sum", backend=backend)),
                    x, grad, float(total))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_of_reduced_loss(backend, dtype, reduction):
    """With a reduction the gradient is that of the returned scalar: the 'none' gradient (of the sum)
    divided by the denominator for 'mean'."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9)).astype(dtype)
    target = rng.integers(0, 9, 6)
    weight = rng.uniform(0.5, 2, 9).astype(dtype)
    _, grad_none = stableloss.cross_entropy(x, target, weight=weight, reduction="none", backend=backend,
                                            return_grad=True)
    _, grad = stableloss.cross_entropy(x, target, weight=weight, reduction=reduction, backend=backend,
                                       return_grad=True)
    denominator = math.fsum(weight[target].astype(float)) if reduction == "mean" else 1.0
    np.testing.assert_allclose(grad, grad_none.astype(np.float64) / denominator, rtol=8 * np.finfo(dtype).eps)


def test_mean_past_the_float32_range_rounds_to_inf(backend):
    """A subnormal total weight makes the exact weighted mean exceed the float32 range: it rounds to
    inf (the case hypothesis found: weights [1.4e-45, 1], target 0, label smoothing 0.1)."""
    x = np.zeros((1, 2), np.float32)
    kwargs = dict(target=np.array([0]), weight=np.array([1.4e-45, 1.0], np.float32), label_smoothing=0.1,
                  backend=backend)
    total = float(stableloss.cross_entropy(x, **kwargs, reduction="sum"))
    assert total > 0 and total / float(np.float32(1.4e-45)) > float(np.finfo(np.float32).max)
    assert stableloss.cross_entropy(x, **kwargs) == np.float32(np.inf)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_weighted_mean_exact_for_a_subnormal_total_weight(backend, loss):
    """A weighted mean is the same for any scale of the weights, down to a total of 5e-324 (the case
    hypothesis found: the weighted losses used to round on the subnormal grid, giving a mean of 1.0
    for log 3 and a NaN gradient)."""
    tiny = 5e-324
    if loss == "ce":  # three equal logits: log 3, gradient softmax - onehot
        got = stableloss.cross_entropy(np.zeros(3), np.array(1), weight=np.array([0.0, tiny, 0.0]),
                                       backend=backend, return_grad=True)
        third = mpmath.mpf(1) / 3
        want = (mpmath.log(3), [third, third - 1, third])
    else:  # equal weights: the plain mean of (1, 4), gradient 2 (x - t) w / sum(w)
        got = stableloss.mse_loss(np.array([1.0, 2.0]), np.zeros(2), weight=np.array([tiny, tiny]),
                                  backend=backend, return_grad=True)
        want = (mpmath.mpf(5) / 2, [mpmath.mpf(1), mpmath.mpf(2)])
    assert ulp.ulp_error(np.array([got[0]]), ulp.exact_values([want[0]], FLOAT64)).max() <= 4
    assert ulp.ulp_error(got[1], ulp.exact_values(want[1], FLOAT64)).max() <= 4
