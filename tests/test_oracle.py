"""The oracle checked against the textbook formulas evaluated at 400 digits.

oracle.py rewrites some formulas so that 80 digits are always enough (no cancelling subtraction);
here the plain definitions, at a precision where their cancellation is harmless for these moderate
inputs, must agree with it to 1e-60.
"""

import mpmath
import numpy as np
import pytest
from mpmath import mpf

from stableloss._stability import oracle

RNG = np.random.default_rng(99)


def _agree(got, want, what):
    with mpmath.workdps(400):
        for g, w in zip(np.asarray(got, dtype=object).reshape(-1), np.asarray(want, dtype=object).reshape(-1)):
            assert abs(g - w) <= mpf("1e-60") * max(abs(w), mpf("1e-300")), f"{what}: {g} != {w}"


@pytest.mark.parametrize("kind", ["index", "index-smoothing-weights", "probabilities", "probabilities-smoothing"])
def test_ce_against_definition(kind):
    n, c = 4, 6
    x = RNG.standard_normal((n, c)) * 5
    x[0, 2] = 45.0  # a confident row
    eps = 0.3 if "smoothing" in kind else 0.0
    w = RNG.uniform(0.5, 2, c) if "weights" in kind else np.ones(c)
    if kind.startswith("index"):
        target = RNG.integers(0, c, n)
        target[0] = 2
        t = np.eye(c)[target]
    else:
        raw = RNG.uniform(size=(n, c))
        target = t = raw / raw.sum(axis=1, keepdims=True)
    loss, grad, _ = oracle.ce(x, target, weight=w if "weights" in kind else None, label_smoothing=eps)
    with mpmath.workdps(400):
        for i in range(n):
            xs = [mpf(float(v)) for v in x[i]]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
            log_p = [v - lse for v in xs]
            p = [mpmath.exp(v) for v in log_p]
            smoothed = [(1 - mpf(eps)) * mpf(float(tj)) + mpf(eps) / c for tj in t[i]]
            want = -mpmath.fsum(mpf(float(w[j])) * smoothed[j] * log_p[j] for j in range(c))
            _agree([loss[i]], [want], f"loss row {i}")
            total = mpmath.fsum(mpf(float(w[j])) * smoothed[j] for j in range(c))
            _agree(grad[i], [total * p[j] - mpf(float(w[j])) * smoothed[j] for j in range(c)], f"grad row {i}")


def test_lse_against_definition():
    x = RNG.standard_normal((3, 7)) * 20
    lse, log_softmax, softmax = oracle.lse(x)
    with mpmath.workdps(400):
        for i in range(3):
            xs = [mpf(float(v)) for v in x[i]]
            want = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
            _agree([lse[i]], [want], "lse")
            _agree(log_softmax[i], [v - want for v in xs], "log_softmax")
            _agree(softmax[i], [mpmath.exp(v - want) for v in xs], "softmax")


def test_bce_against_definition():
    x = np.array([-30.0, -2.0, 0.0, 0.5, 7.0, 35.0])
    y = np.array([0.0, 0.3, 1.0, 0.5, 0.9, 1.0])
    w, pw = RNG.uniform(0.5, 2, 6), RNG.uniform(0.5, 3, 6)
    loss, grad = oracle.bce(x, y, w, pw)
    with mpmath.workdps(400):
        for i in range(6):
            xi, yi, wi, pwi = (mpf(float(a[i])) for a in (x, y, w, pw))
            sigma = 1 / (1 + mpmath.exp(-xi))
            want = -wi * (pwi * yi * mpmath.log(sigma) + (1 - yi) * mpmath.log(1 - sigma))
            _agree([loss[i]], [want], "loss")
            _agree([grad[i]], [wi * ((1 - yi) * sigma - pwi * yi * (1 - sigma))], "grad")


def test_gnll_against_definition():
    x, t = RNG.standard_normal(5), RNG.standard_normal(5)
    var = np.array([1e-9, 0.3, 1.0, 2.5, 1e3])
    loss, grad_input, grad_var = oracle.gnll(x, t, var, eps=1e-6, full=True)
    with mpmath.workdps(400):
        for i in range(5):
            v = max(mpf(float(var[i])), mpf(1e-6))
            d = mpf(float(x[i])) - mpf(float(t[i]))
            _agree([loss[i]], [(mpmath.log(v) + d**2 / v + mpmath.log(2 * mpmath.pi)) / 2], "loss")
            _agree([grad_input[i]], [d / v], "grad_input")
            _agree([grad_var[i]], [(1 / v - d**2 / v**2) / 2], "grad_var")


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_against_definition(log_target):
    q_log = np.log(RNG.uniform(0.01, 1, 6))
    p = RNG.uniform(0.01, 1, 6)
    target = np.log(p) if log_target else p
    loss, grad = oracle.kl(q_log, target, log_target)
    with mpmath.workdps(400):
        for i in range(6):
            pi = mpmath.exp(mpf(float(target[i]))) if log_target else mpf(float(target[i]))
            log_pi = mpf(float(target[i])) if log_target else mpmath.log(pi)
            _agree([loss[i]], [pi * (log_pi - mpf(float(q_log[i])))], "loss")
            _agree([grad[i]], [-pi], "grad")


def test_mse_against_definition():
    x, t, w = RNG.standard_normal(5) * 1e3, RNG.standard_normal(5), RNG.uniform(0, 2, 5)
    loss, grad = oracle.mse(x, t, w)
    with mpmath.workdps(400):
        for i in range(5):
            d = mpf(float(x[i])) - mpf(float(t[i]))
            _agree([loss[i]], [mpf(float(w[i])) * d**2], "loss")
            _agree([grad[i]], [2 * mpf(float(w[i])) * d], "grad")


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.5), (0.75, 0.0)])
def test_focal_against_definition(alpha, gamma):
    """torchvision's formula: p = sigma(x), p_t = p t + (1 - p)(1 - t), loss = a_t ce (1 - p_t)^gamma, and
    its derivative (by mpmath.diff, at 400 digits)."""
    x = np.array([-30.0, -2.0, 0.0, 0.5, 7.0, 35.0])
    t = np.array([0.0, 0.3, 1.0, 0.5, 0.9, 1.0])
    loss, grad = oracle.focal(x, t, alpha, gamma)
    with mpmath.workdps(400):
        def definition(xi, ti):
            p = 1 / (1 + mpmath.exp(-xi))
            ce = -(ti * mpmath.log(p) + (1 - ti) * mpmath.log(1 - p))
            p_t = p * ti + (1 - p) * (1 - ti)
            a_t = 1 if alpha < 0 else mpf(alpha) * ti + (1 - mpf(alpha)) * (1 - ti)
            return a_t * ce * (1 - p_t) ** mpf(gamma)
        for i in range(6):
            xi, ti = mpf(float(x[i])), mpf(float(t[i]))
            _agree([loss[i]], [definition(xi, ti)], "loss")
            _agree([grad[i]], [mpmath.diff(lambda v: definition(v, ti), xi)], "grad")


def test_special_value_conventions():
    """The conventions of docs/design.md and kernels/stableloss.h, spelled out once."""
    nan = float("nan")
    loss, grad = oracle.bce(np.array([np.inf, -np.inf, np.inf]), np.array([1.0, 0.0, 0.5]))
    assert list(loss) == [0, 0, mpf("inf")] and list(grad) == [0, 0, mpf("0.5")]
    # 0 log 0 = 0 against log q = -inf, not against NaN or +inf; p < 0 and p = +inf are no probabilities
    loss, grad = oracle.kl(np.array([-np.inf, nan, np.inf, -1.0, 0.0]), np.array([0.0, 0.0, 0.0, -0.5, np.inf]))
    assert loss[0] == 0 and list(grad[:3]) == [0, 0, 0]
    assert all(mpmath.isnan(v) for v in loss[1:]) and grad[4] == -mpf("inf")
    # a masked class without target mass adds 0 (-log 0) = 0; with smoothing it carries mass: +inf
    loss, grad, _ = oracle.ce(np.array([[0.0, -np.inf]]), np.array([[1.0, 0.0]]))
    assert loss[0] == 0 and list(grad[0]) == [0, 0]
    loss, _, _ = oracle.ce(np.array([[0.0, -np.inf]]), np.array([[1.0, 0.0]]), label_smoothing=0.1)
    assert loss[0] == mpf("inf")
    # logsumexp of a row with an infinite max is that max; log_softmax and softmax are NaN
    lse, log_softmax, softmax = oracle.lse(np.array([[np.inf, 0.0], [-np.inf, -np.inf]]))
    assert list(lse) == [mpf("inf"), -mpf("inf")]
    assert all(mpmath.isnan(v) for v in list(log_softmax.reshape(-1)) + list(softmax.reshape(-1)))
    loss, grad, _ = oracle.ce(np.array([[0.0, -np.inf], [-np.inf, -np.inf], [np.inf, 0.0]]), np.array([1, 0, 1]))
    assert loss[0] == mpf("inf") and mpmath.isnan(loss[1]) and mpmath.isnan(loss[2])
    assert grad[0][0] == 1 and grad[0][1] == -1
    loss, grad, _ = oracle.ce(np.array([[1.0, 2.0]]), np.array([-100]))
    assert loss[0] == 0 and list(grad[0]) == [0, 0]
    # nll reads x_y only (a NaN elsewhere leaves it finite); -inf gives +inf, and NaN with weight 0 (0 inf);
    # the gradient is -w_y whatever x_y; an ignored row gives 0 and 0
    loss, grad = oracle.nll(np.array([[-np.inf, nan], [nan, -2.0], [0.0, -np.inf], [nan, nan]]),
                            np.array([0, 1, 1, -100]), weight=np.array([0.0, 3.0]))
    assert mpmath.isnan(loss[0]) and list(loss[1:]) == [6, mpf("inf"), 0]
    assert [list(row) for row in grad] == [[0, 0], [0, -3], [0, -3], [0, 0]]
