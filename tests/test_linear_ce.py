"""linear_cross_entropy against cross_entropy of the materialised float64 logits: values and the three
gradients, every option, both dtypes, every backend, chunks that split the rows unevenly.

Bounds, per element.  Each logit is a dot product of length D rounded in the input's dtype (unit
roundoff u): |dz_ij| <= delta_i = (D + 2) u max_j (|x_i| |w_j| + |b_j|).  That moves the gradient of the
logits by |dG_ij| <= 2 delta_i A_i p_ij (A_i the row's coefficient sum, p the softmax), and a row's
loss by 2 delta_i A_i.  A gradient is then a product with inner dimension K (V for grad_input, the
rows for grad_weight and grad_bias), which rounds by (K + 2) u of the product of absolute values:
    |error| <= (K + 6) (u (|G| |M|) + s) + (2 delta A p) |M|,   M = W, X or ones,
the 4 extra u for the cross-entropy step's own 4 ulp, s the smallest subnormal (roundings in the
subnormal range are absolute).  float64 must in addition stay within 1e-12 of
each output's scale (|G| |M|, or the loss).
"""

import mpmath
import numpy as np
import pytest
import threadpoolctl

import stableloss
from stableloss import _linear
from stableloss._stability import ulp

U = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


def _problem(dtype, n=10, d=6, v=9, seed=0, bias=True, batch=None):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * 2).astype(dtype)
    w = rng.standard_normal((v, d)).astype(dtype)
    b = rng.standard_normal(v).astype(dtype) if bias else None
    if batch is not None:
        x = x.reshape(batch + (d,))
    return x, w, b


def _materialised(x, w, b, target, **options):
    """cross_entropy of the float64 logits, its gradient carried through the products in float64."""
    d = x.shape[-1]
    x64, w64 = x.reshape(-1, d).astype(np.float64), w.astype(np.float64)
    z = x64 @ w64.T + (0.0 if b is None else b.astype(np.float64))
    t = target.reshape(-1, w.shape[0]) if target.dtype.kind == "f" else target.reshape(-1)
    options = {key: value for key, value in options.items() if key != "chunk_size"}
    if options.get("weight") is not None:
        options["weight"] = options["weight"].astype(np.float64)
    loss, g = stableloss.cross_entropy(z, t.astype(np.float64) if t.dtype.kind == "f" else t, backend="numpy",
                                       return_grad=True, **options)
    grads = (g @ w64, g.T @ x64, g.sum(axis=0))
    scales = (np.abs(g) @ np.abs(w64), np.abs(g).T @ np.abs(x64), np.abs(g).sum(axis=0))
    # delta_i: the error bound of row i's logits (dot products of length d, plus the bias) in the dtype
    delta = (d + 2) * U[x.dtype] * np.max(np.abs(x64) @ np.abs(w64).T + (0.0 if b is None else np.abs(b)), axis=1)
    coef = np.abs(_row_coefficients(target, w.shape[0], options))
    p = stableloss.softmax(z, axis=1, backend="numpy")
    moved = (2 * delta * coef)[:, None] * p  # the bound of |dG| from the logits' rounding
    propagated = (moved @ np.abs(w64), moved.T @ np.abs(x64), moved.sum(axis=0))
    return loss, grads, scales, propagated, 2 * delta * coef


def _check(x, w, b, target, backend, **options):
    dtype = x.dtype
    got_loss, (gx, gw, gb) = stableloss.linear_cross_entropy(x, w, target, linear_bias=b, backend=backend,
                                                             return_grad=True, **options)
    loss, grads, scales, propagated, row_error = _materialised(x, w, b, target, **options)
    assert gx.shape == x.shape and gx.dtype == dtype and gw.shape == w.shape and gw.dtype == dtype
    assert (gb is None) == (b is None)
    reduction = options.get("reduction", "mean")
    scale_of_mean = 1.0 / _denominator(target, options) if reduction == "mean" else 1.0
    n_rows = grads[0].shape[0]
    inner = (w.shape[0], n_rows, n_rows)
    for got, want, scale, moved, k in zip((gx.reshape(-1, x.shape[-1]), gw, gb), grads, scales, propagated, inner):
        if got is None:
            continue
        # + the absolute error of results and products in the subnormal range, a half spacing each
        bound = (k + 6) * (U[dtype] * scale + np.finfo(dtype).smallest_subnormal) + moved * scale_of_mean
        if dtype == np.float64:
            bound = np.minimum(bound, 1e-12 * scale)
        assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) / np.maximum(bound, 1e-300))
    got_loss = np.asarray(got_loss, np.float64).reshape(-1)
    want = np.asarray(loss, np.float64).reshape(-1)
    moved = row_error if reduction == "none" else np.sum(row_error) * scale_of_mean
    allowed = 4 * ulp.ulp(np.abs(want), dtype) + moved
    if dtype == np.float64:
        allowed = np.minimum(allowed, np.maximum(4 * ulp.ulp(np.abs(want), dtype), 1e-12 * np.abs(want)))
    assert np.all(np.abs(got_loss - want) <= allowed), (got_loss, want)


def _row_coefficients(target, n_classes, options):
    """The total weight of each row's loss terms (0 for ignored rows)."""
    weight = options.get("weight")
    w = np.ones(n_classes) if weight is None else weight.astype(np.float64)
    if target.dtype.kind == "f":
        return target.reshape(-1, n_classes) @ w + options.get("label_smoothing", 0.0) * w.mean()
    t = target.reshape(-1)
    counted = t != options.get("ignore_index", -100)
    return np.where(counted, w[np.where(counted, t, 0)] + options.get("label_smoothing", 0.0) * w.mean(), 0.0)


def _denominator(target, options):
    if target.dtype.kind == "f":
        return target.size // target.shape[-1]
    t = target.reshape(-1)
    counted = t[t != options.get("ignore_index", -100)]
    weight = options.get("weight")
    return len(counted) if weight is None else float(np.sum(weight.astype(np.float64)[counted]))


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_index_targets_with_every_option(backend, dtype, reduction, chunk_size):
    """Class weights, label smoothing, ignored rows and a bias; chunks of 1 and 3 rows split the ten
    rows unevenly (and the ignored ones out of them)."""
    x, w, b = _problem(dtype)
    target = np.array([0, 3, -100, 8, 2, 2, -100, 5, 1, 7])
    weight = np.random.default_rng(1).uniform(0.5, 2.0, 9).astype(dtype)
    _check(x, w, b, target, backend, weight=weight, label_smoothing=0.1, reduction=reduction,
           chunk_size=chunk_size)


def test_a_head_of_some_size(backend, dtype):
    """D = 128, V = 2048, logits up to about +-40: the logits' rounding, not only the products', shows
    in float32 (the second term of the bound)."""
    x, w, b = _problem(dtype, n=40, d=128, v=2048, seed=3)
    _check(x * 2, w, b, np.random.default_rng(4).integers(0, 2048, 40), backend, chunk_size=16, label_smoothing=0.1)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_probability_targets_and_batch_dimensions(backend, dtype, reduction):
    """Probability targets, and input (2, 5, D) flattened into ten rows; the loss keeps (2, 5)."""
    x, w, b = _problem(dtype, batch=(2, 5))
    p = np.random.default_rng(2).random((2, 5, 9))
    target = (p / p.sum(axis=-1, keepdims=True)).astype(dtype)
    _check(x, w, b, target, backend, reduction=reduction, label_smoothing=0.2, chunk_size=4)
    loss = stableloss.linear_cross_entropy(x, w, target, reduction="none", backend=backend)
    assert loss.shape == (2, 5)


def test_one_row_and_a_vector_input(backend, dtype):
    x, w, b = _problem(dtype, n=1, bias=False)
    _check(x, w, b, np.array([4]), backend)
    _check(x[0], w, b, np.array(4), backend, reduction="none")


def test_all_rows_ignored(backend, dtype):
    """Nothing counts: the mean is NaN and every gradient 0 (as cross_entropy), without a product."""
    x, w, b = _problem(dtype)
    loss, (gx, gw, gb) = stableloss.linear_cross_entropy(x, w, np.full(10, -100), linear_bias=b, backend=backend,
                                                         return_grad=True)
    assert np.isnan(loss) and not gx.any() and not gw.any() and not gb.any()
    assert stableloss.linear_cross_entropy(x, w, np.full(10, -100), reduction="sum", backend=backend) == 0


def test_confident_rows_keep_the_tiny_loss(backend):
    """Logits reaching +-80 in float32, exact in the products (x = e_1, W rows 80, 0, -80): the loss is
    log1p(e^-80 + e^-160) = 1.8049e-35 to 4 ulp, where a float32 logsumexp - x_y gives 0.
    mpmath: mp.log1p(mp.exp(-80) + mp.exp(-160))."""
    x = np.array([[1.0, 0.0]], np.float32)
    w = np.array([[80.0, 0.0], [0.0, 1.0], [-80.0, 0.0]], np.float32)
    got = stableloss.linear_cross_entropy(x, w, np.array([0]), backend=backend)
    exact = ulp.exact_values([mpmath.log1p(mpmath.exp(-80) + mpmath.exp(-160))], np.float32)
    assert ulp.ulp_error(np.array([got]), exact).max() <= 4


def test_chunk_rows_follow_the_budget():
    """The default chunk holds about BUDGET bytes of buffers, whatever V; a given chunk_size wins."""
    rows = _linear.chunk_rows(32768, 1024, 4)
    assert rows * 4 * 2 * (32768 + 1024) <= _linear.BUDGET < (rows + 1) * 4 * 2 * (32768 + 1024)
    assert _linear.chunk_rows(2**24, 4096, 8) == 1
    assert _linear.chunk_rows(32768, 1024, 4, chunk_size=7) == 7


def test_bad_arguments():
    x, w, b = _problem(np.float32)
    with pytest.raises(ValueError, match=r"linear_weight must have shape \(V, 6\)"):
        stableloss.linear_cross_entropy(x, w[:, :5], np.zeros(10, int))
    with pytest.raises(ValueError, match=r"class-index target must have shape \(10,\)"):
        stableloss.linear_cross_entropy(x, w, np.zeros(9, int))
    with pytest.raises(ValueError, match=r"probability target must have shape \(10, 9\)"):
        stableloss.linear_cross_entropy(x, w, np.zeros((10, 8), np.float32))
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        stableloss.linear_cross_entropy(x, w, np.zeros(10, int), chunk_size=0)
    with pytest.raises(ValueError, match="linear_bias"):
        stableloss.linear_cross_entropy(x, w, np.zeros(10, int), linear_bias=np.zeros(8, np.float32))
    with pytest.raises(IndexError, match="Target 9 is out of bounds"):
        stableloss.linear_cross_entropy(x, w, np.full(10, 9))


def test_set_num_threads_limits_blas(restore_threads):
    """Inside a call numpy's BLAS (the one its matmul calls) runs on at most get_num_threads() threads."""
    stableloss.set_num_threads(1)
    with _linear.blas_threads(stableloss.get_num_threads()):
        infos = [info for info in threadpoolctl.threadpool_info()
                 if info["user_api"] == "blas" and "numpy" in info["filepath"]]
        assert infos and all(info["num_threads"] == 1 for info in infos)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_z_loss_softcap_and_lse_pass_through(backend, dtype, reduction):
    """z_loss, softcap and return_lse reach the kernel: on small integer features and weights (exact
    products) the losses and log-sum-exps are cross_entropy's of the logits, an ignored row's lse too
    (with return_lse its product is made), in chunks that split the rows."""
    rng = np.random.default_rng(4)
    x, w = rng.integers(-3, 4, (7, 5)).astype(dtype), rng.integers(-3, 4, (11, 5)).astype(dtype)
    y = rng.integers(0, 11, 7)
    y[2] = -100
    options = dict(z_loss=1e-3, softcap=4.0, reduction=reduction)
    loss, (gx, gw, _), lse = stableloss.linear_cross_entropy(x, w, y, backend=backend, return_grad=True,
                                                             return_lse=True, chunk_size=3, **options)
    want, g, want_lse = stableloss.cross_entropy(x @ w.T, y, backend=backend, return_grad=True, return_lse=True,
                                                 **options)
    np.testing.assert_array_equal(lse, want_lse)
    np.testing.assert_allclose(loss, want, rtol=4 * U[np.dtype(dtype)])
    np.testing.assert_allclose(gx, g @ w, rtol=16 * U[np.dtype(dtype)], atol=16 * U[np.dtype(dtype)] * np.max(np.abs(g @ w)))
    np.testing.assert_allclose(gw, g.T @ x, rtol=16 * U[np.dtype(dtype)], atol=16 * U[np.dtype(dtype)] * np.max(np.abs(g.T @ x)))
