"""Semantics match torch.nn.functional: a grid over every parameter of every loss, loss and gradient
(torch autograd of the returned loss; for reduction="none" of its sum), every backend, float32 and
float64, on moderate inputs where PyTorch is accurate (rtol 1e-5 / 1e-12, with an absolute floor of
rtol times the largest magnitude for entries that are ~0).  Each case runs through the numpy API and
through stableloss.torch (the ``api`` parameter), whose gradients come from autograd.

Runs only where torch is installed.
"""

import itertools
import warnings
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
torch.set_num_threads(1)

import stableloss  # noqa: E402
import stableloss.torch as slt  # noqa: E402

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _tensor(array, grad=False):
    if array is None or isinstance(array, float):
        return array
    tensor = torch.from_numpy(np.array(array, copy=True))  # a copy: torch must not share our memory
    return tensor.requires_grad_(True) if grad else tensor


def _close(got, want, dtype, what, scale=0.0):
    """got within rtol of torch's want, with an absolute floor of rtol times the largest magnitude of
    want or ``scale`` (the size of the terms torch subtracts, where its result cancels)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    rtol = RTOL[np.dtype(dtype)]
    finite = np.abs(want[np.isfinite(want)])
    floor = rtol * max(float(np.max(finite, initial=0.0)), scale)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=floor, equal_nan=True, err_msg=what)


def _torch_loss_and_grads(func, tensors, reduction, wrt):
    loss = func(**tensors, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), [tensors[name].grad.numpy() for name in wrt]


@pytest.fixture(params=["numpy", "torch"])
def api(request):
    """The numpy API, or the same function through stableloss.torch (tensors in, autograd)."""
    return request.param


#: The gradients the numpy API returns, in order, where they are not just ``input``'s.
NUMPY_GRADS = {"gaussian_nll_loss": ("input", "var"), "sigmoid_focal_loss": ("inputs",)}


def _ours(api, name, arrays, wrt, backend, **options):
    """(loss, [gradient w.r.t. each name of ``wrt``]) of stableloss's function ``name`` through ``api``:
    the gradient of the returned loss, or of its sum for reduction="none"."""
    if api == "numpy":
        loss, grads = getattr(stableloss, name)(**arrays, **options, backend=backend, return_grad=True)
        grads = dict(zip(NUMPY_GRADS.get(name, ("input",)), grads if isinstance(grads, tuple) else (grads,)))
        return loss, [grads[k] for k in wrt]
    tensors = {k: _tensor(v, grad=k in wrt) for k, v in arrays.items()}
    loss = getattr(slt, name)(**tensors, **options, backend=backend)
    (loss.sum() if options.get("reduction") == "none" else loss).backward()
    return loss.detach().numpy(), [tensors[k].grad.numpy() for k in wrt]


RNG = np.random.default_rng(2024)


@pytest.fixture(autouse=True)
def _inputs_of_this_test(request):
    """The random inputs of each test seeded from its id: the same whatever the order tests run in
    (pytest-xdist shares them among workers)."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _random(shape, dtype, scale=2.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------------------------------
# Cross-entropy

CE_GRID = [case for case in itertools.product(["none", "mean", "sum"], [False, True], [-100, 2], [0.0, 0.2],
                                              ["index", "probabilities"], [(6, 5), (5,), (3, 5, 4, 2)])
           if not (case[4] == "probabilities" and case[2] >= 0)]  # an error in both libraries: test_validation


def _index_target(shape, ignore_index):
    """Class indices for an input of ``shape`` (class axis 1, or 0 for (C,)), some equal to ignore_index
    but not all."""
    c = shape[1] if len(shape) > 1 else shape[0]
    target = RNG.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
    flat = target.reshape(-1)
    flat[::3] = ignore_index if ignore_index < 0 else flat[::3]  # some ignored rows (index 2 occurs anyway)
    if flat.size and np.all(flat == ignore_index):
        flat[0] = (ignore_index + 1) % c
    return target


@pytest.mark.parametrize("reduction,weighted,ignore_index,smoothing,target_kind,shape", CE_GRID)
def test_cross_entropy(api, backend, dtype, reduction, weighted, ignore_index, smoothing, target_kind, shape):
    c = shape[1] if len(shape) > 1 else shape[0]
    x = _random(shape, dtype)
    if target_kind == "index":
        target = _index_target(shape, ignore_index)
    else:
        raw = RNG.uniform(size=shape)
        target = (raw / raw.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)).astype(dtype)
    weight = RNG.uniform(0.3, 3.0, c).astype(dtype) if weighted else None
    loss, (grad,) = _ours(api, "cross_entropy", dict(input=x, target=target, weight=weight), ["input"], backend,
                          ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight),
                   ignore_index=ignore_index, label_smoothing=smoothing)
    want, (want_grad,) = _torch_loss_and_grads(F.cross_entropy, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss", scale=float(np.max(np.abs(x), initial=0.0)))  # torch: lse - x_y
    _close(grad, want_grad, dtype, "grad")


ZLOSS_GRID = [case for case in itertools.product(["none", "mean"], [False, True], [(5.0, 0.0), (None, 1e-2), (5.0, 1e-2)],
                                                 ["index"])] + [("mean", True, (5.0, 1e-2), "probabilities"),
                                                                ("none", False, (5.0, 1e-2), "probabilities")]


@pytest.mark.parametrize("reduction,weighted,options,target_kind", ZLOSS_GRID)
def test_cross_entropy_z_loss_and_softcap(api, backend, dtype, reduction, weighted, options, target_kind):
    """softcap and z_loss against the torch expression a user writes (peers.torch_cross_entropy):
    capped = softcap * torch.tanh(x / softcap), F.cross_entropy(capped, ...) + z_loss * lse^2, lse =
    torch.logsumexp(capped), each row's term weighted as its loss (w_y, 0 where ignored); and the
    numpy API's return_lse against that lse."""
    from stableloss._stability.peers import torch_cross_entropy
    softcap, z_loss = options
    x = _random((6, 5), dtype, scale=4.0)
    if target_kind == "index":
        target = RNG.integers(0, 5, 6)
        target[::3] = -100
    else:
        raw = RNG.uniform(size=(6, 5))
        target = (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)
    weight = RNG.uniform(0.3, 3.0, 5).astype(dtype) if weighted else None
    loss, (grad,) = _ours(api, "cross_entropy", dict(input=x, target=target, weight=weight), ["input"], backend,
                          reduction=reduction, z_loss=z_loss, softcap=softcap)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight), z_loss=z_loss,
                   softcap=softcap)
    want, (want_grad,) = _torch_loss_and_grads(torch_cross_entropy, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss", scale=float(np.max(np.abs(x), initial=0.0)))
    _close(grad, want_grad, dtype, "grad")
    if api == "numpy":
        capped = torch.from_numpy(x) if softcap is None else softcap * torch.tanh(torch.from_numpy(x) / softcap)
        _, lse = stableloss.cross_entropy(x, target, weight, reduction=reduction, z_loss=z_loss, softcap=softcap,
                                          return_lse=True, backend=backend)
        _close(lse, torch.logsumexp(capped, 1).numpy(), dtype, "lse")


def test_cross_entropy_all_ignored_mean(api, backend, dtype):
    """Every target ignored with 'mean': NaN loss (0/0) and a zero gradient, as PyTorch."""
    x = _random((4, 3), dtype)
    target = np.full(4, -100)
    loss, (grad,) = _ours(api, "cross_entropy", dict(input=x, target=target), ["input"], backend)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target))
    want, (want_grad,) = _torch_loss_and_grads(F.cross_entropy, tensors, "mean", ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_zero_total_weight_mean(api, backend, dtype, smoothing):
    """The targets present all have weight 0: 'mean' divides by 0, NaN loss and NaN gradient (PyTorch)."""
    x = _random((3, 4), dtype)
    target = np.array([0, 2, 0])
    weight = np.array([0.0, 1.0, 0.0, 2.0], dtype)
    loss, (grad,) = _ours(api, "cross_entropy", dict(input=x, target=target, weight=weight), ["input"], backend,
                          label_smoothing=smoothing)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight),
                   label_smoothing=smoothing)
    want, (want_grad,) = _torch_loss_and_grads(F.cross_entropy, tensors, "mean", ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


# ---------------------------------------------------------------------------------------------------
# Negative log-likelihood

NLL_GRID = list(itertools.product(["none", "mean", "sum"], [False, True], [-100, 2], [(6, 5), (5,), (3, 5, 4, 2)]))


@pytest.mark.parametrize("reduction,weighted,ignore_index,shape", NLL_GRID)
def test_nll_loss(api, backend, dtype, reduction, weighted, ignore_index, shape):
    axis = 1 if len(shape) > 1 else 0
    logits = _random(shape, np.float64)
    x = (logits - np.log(np.sum(np.exp(logits), axis=axis, keepdims=True))).astype(dtype)  # log-probabilities
    target = _index_target(shape, ignore_index)
    weight = RNG.uniform(0.3, 3.0, shape[axis]).astype(dtype) if weighted else None
    loss, (grad,) = _ours(api, "nll_loss", dict(input=x, target=target, weight=weight), ["input"], backend,
                          ignore_index=ignore_index, reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight),
                   ignore_index=ignore_index)
    want, (want_grad,) = _torch_loss_and_grads(F.nll_loss, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.0], [1.0, np.nan, 2.0]], ids=["unweighted", "zero", "nan"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss_special_values(api, backend, dtype, reduction, weight):
    """Only x_y counts, as in PyTorch: NaN and +-inf elsewhere in a row change nothing, -inf at the target
    gives +inf, +inf gives -inf, NaN gives NaN, a zero weight at -inf gives NaN (0 inf) with a zero
    gradient, and a NaN weight NaN at its targets."""
    x = np.array([[-np.inf, np.nan, -1.0], [np.nan, -0.5, np.inf], [-2.0, np.nan, -np.inf], [-1.0, np.inf, -1.5],
                  [-1.0, -2.0, -3.0]], dtype)
    target = np.array([0, 1, 2, 1, 0])
    weight = None if weight is None else np.array(weight, dtype)
    loss, (grad,) = _ours(api, "nll_loss", dict(input=x, target=target, weight=weight), ["input"], backend,
                          reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight))
    want, (want_grad,) = _torch_loss_and_grads(F.nll_loss, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("target,weight", [([-100, -100], None), ([0, 0], [0.0, 1.0]), ([0, 1], [1.0, -1.0])],
                         ids=["all-ignored", "zero-weights", "weights-summing-to-0"])
def test_nll_loss_mean_over_zero(api, backend, dtype, target, weight):
    """'mean' with nothing to divide by, as PyTorch: every target ignored gives NaN and a zero gradient;
    counted targets of zero total weight give the IEEE quotients, NaN (0/0) or -inf, and -w_y/0 at the
    targets (NaN for w_y = 0, +-inf for weights of both signs)."""
    x = np.array([[-1.0, -2.0], [-3.0, -4.0]], dtype)
    target = np.array(target)
    weight = None if weight is None else np.array(weight, dtype)
    loss, (grad,) = _ours(api, "nll_loss", dict(input=x, target=target, weight=weight), ["input"], backend)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target), weight=_tensor(weight))
    want, (want_grad,) = _torch_loss_and_grads(F.nll_loss, tensors, "mean", ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


# ---------------------------------------------------------------------------------------------------
# BCE with logits

BCE_SHAPE = (4, 3)
BCE_BROADCAST = {"none": None, "full": BCE_SHAPE, "column": (4, 1), "row": (3,)}
BCE_GRID = list(itertools.product(["none", "mean", "sum"], list(BCE_BROADCAST), ["none", "full", "row"],
                                  ["soft", "hard"]))


@pytest.mark.parametrize("reduction,weight_shape,pos_weight_shape,labels", BCE_GRID)
def test_bce_with_logits(api, backend, dtype, reduction, weight_shape, pos_weight_shape, labels):
    x = _random(BCE_SHAPE, dtype, 3.0)
    y = RNG.uniform(size=BCE_SHAPE) if labels == "soft" else RNG.integers(0, 2, BCE_SHAPE)
    y = y.astype(dtype)
    shape_w, shape_pw = BCE_BROADCAST[weight_shape], BCE_BROADCAST[pos_weight_shape]
    weight = None if shape_w is None else RNG.uniform(0.2, 3, shape_w).astype(dtype)
    pos_weight = None if shape_pw is None else RNG.uniform(0.2, 5, shape_pw).astype(dtype)
    loss, (grad,) = _ours(api, "binary_cross_entropy_with_logits",
                          dict(input=x, target=y, weight=weight, pos_weight=pos_weight), ["input"], backend,
                          reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(y), weight=_tensor(weight),
                   pos_weight=_tensor(pos_weight))
    want, (want_grad,) = _torch_loss_and_grads(F.binary_cross_entropy_with_logits, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


# ---------------------------------------------------------------------------------------------------
# Gaussian NLL (exactly the var shapes PyTorch accepts)

GNLL_SHAPE = (5, 4)
GNLL_VAR = {"same": GNLL_SHAPE, "per-row": (5,), "unit-dim": (5, 1), "float": None}
GNLL_GRID = list(itertools.product(["none", "mean", "sum"], list(GNLL_VAR), [False, True], [1e-6, 0.5]))


@pytest.mark.parametrize("reduction,var_kind,full,eps", GNLL_GRID)
def test_gaussian_nll(api, backend, dtype, reduction, var_kind, full, eps):
    x = _random(GNLL_SHAPE, dtype)
    t = _random(GNLL_SHAPE, dtype)
    shape = GNLL_VAR[var_kind]
    var = 0.8 if shape is None else RNG.uniform(0.05, 3.0, shape).astype(dtype)  # some below eps = 0.5
    wrt = ["input"] if shape is None else ["input", "var"]
    loss, (grad_input, *grad_var) = _ours(api, "gaussian_nll_loss", dict(input=x, target=t, var=var), wrt, backend,
                                          full=full, eps=eps, reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(t), var=_tensor(var, grad=shape is not None))
    want, grads = _torch_loss_and_grads(lambda **kw: F.gaussian_nll_loss(**kw, full=full, eps=eps), tensors,
                                        reduction, ["input"] + (["var"] if shape is not None else []))
    _close(loss, want, dtype, "loss")
    _close(grad_input, grads[0], dtype, "grad_input")
    if shape is not None:
        _close(grad_var[0], grads[1], dtype, "grad_var")


GNLL_VAR_SHAPES = [((4, 3), (3,)), ((3, 3), (3,)), ((4, 3), (4,)), ((4, 3), (4, 1)), ((4, 3), (1, 3)),
                   ((4, 3), (1, 1)), ((4, 3), ()), ((5,), ()), ((5,), (1,)), ((4, 3, 5), (4, 3)),
                   ((4, 3, 5), (1, 3, 5)), ((4, 3, 5), (4, 1, 5)), ((4, 3, 5), (1, 3, 1)), ((4, 3, 5), (3, 5))]


@pytest.mark.parametrize("input_shape,var_shape", GNLL_VAR_SHAPES, ids=str)
def test_gaussian_nll_var_shapes(api, backend, input_shape, var_shape):
    """var is accepted exactly where PyTorch accepts it (ValueError in both elsewhere, also where numpy
    would broadcast it), with the same values where it is."""
    x, t = _random(input_shape, np.float64), _random(input_shape, np.float64)
    var = RNG.uniform(0.5, 2.0, var_shape)
    try:
        want, grads = _torch_loss_and_grads(F.gaussian_nll_loss, dict(input=_tensor(x, grad=True), target=_tensor(t),
                                                                      var=_tensor(var, grad=True)), "mean",
                                            ["input", "var"])
    except ValueError:
        with pytest.raises(ValueError, match=r"var of shape .* does not fit the input's shape"):
            _ours(api, "gaussian_nll_loss", dict(input=x, target=t, var=var), ["input", "var"], backend)
        return
    loss, got = _ours(api, "gaussian_nll_loss", dict(input=x, target=t, var=var), ["input", "var"], backend)
    _close(loss, want, np.float64, "loss")
    for name, g, w in zip(("grad_input", "grad_var"), got, grads):
        _close(g, w, np.float64, name)


# ---------------------------------------------------------------------------------------------------
# KL divergence

@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(api, backend, dtype, reduction, log_target):
    raw_q, raw_p = RNG.uniform(0.05, 1, (4, 6)), RNG.uniform(0.05, 1, (4, 6))
    q_log = np.log(raw_q / raw_q.sum(axis=1, keepdims=True)).astype(dtype)
    p = raw_p / raw_p.sum(axis=1, keepdims=True)
    target = (np.log(p) if log_target else p).astype(dtype)
    tensors = dict(input=_tensor(q_log, grad=True), target=_tensor(target), log_target=log_target)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="reduction: 'mean' divides", category=UserWarning)
        loss, (grad,) = _ours(api, "kl_div", dict(input=q_log, target=target), ["input"], backend,
                              reduction=reduction, log_target=log_target)
        want, (want_grad,) = _torch_loss_and_grads(F.kl_div, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


def test_kl_div_zero_target(api, backend, dtype):
    """A zero target contributes 0 to the loss and gradient (PyTorch agrees where log q is finite)."""
    q_log = np.log(np.array([[0.2, 0.3, 0.5]])).astype(dtype)
    p = np.array([[0.0, 0.4, 0.6]], dtype)
    loss, (grad,) = _ours(api, "kl_div", dict(input=q_log, target=p), ["input"], backend, reduction="sum")
    want, (want_grad,) = _torch_loss_and_grads(F.kl_div, dict(input=_tensor(q_log, grad=True), target=_tensor(p)),
                                               "sum", ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_nan_in_nan_out(api, backend, dtype, log_target):
    """A zero target against a NaN or +inf input, and a +inf target (no probability), give NaN as in
    PyTorch; the gradient is -p whatever the input.  Against a -inf input the zero target's term is 0,
    where PyTorch gives NaN (a documented difference)."""
    q_log = np.array([np.nan, np.inf, 0.0, -np.inf], dtype)
    p = np.array([0.0, 0.0, np.inf, 0.0], dtype)
    with np.errstate(divide="ignore"):
        target = np.log(p) if log_target else p
    loss, (grad,) = _ours(api, "kl_div", dict(input=q_log, target=target), ["input"], backend, reduction="none",
                          log_target=log_target)
    want, (want_grad,) = _torch_loss_and_grads(F.kl_div, dict(input=_tensor(q_log, grad=True), target=_tensor(target),
                                                              log_target=log_target), "none", ["input"])
    _close(loss[:3], want[:3], dtype, "loss")
    _close(grad, want_grad, dtype, "grad")
    assert loss[3] == 0 and np.isnan(want[3])


def test_cross_entropy_masked_class_without_mass(api, backend, dtype):
    """Probability targets with a -inf logit where the target is 0: PyTorch gives NaN (0 * inf); the
    term is 0 (-log 0) = 0 here (a documented difference), and the rest of the loss and the gradient
    are PyTorch's."""
    x = np.array([[1.0, -np.inf, 0.5, 2.0]], dtype)
    target = np.array([[0.25, 0.0, 0.25, 0.5]], dtype)
    loss, (grad,) = _ours(api, "cross_entropy", dict(input=x, target=target), ["input"], backend)
    want, (want_grad,) = _torch_loss_and_grads(F.cross_entropy, dict(input=_tensor(x, grad=True),
                                                                     target=_tensor(target)), "mean", ["input"])
    assert np.isnan(want)
    finite = x[:, [0, 2, 3]]
    want_loss, (want_finite_grad,) = _torch_loss_and_grads(
        F.cross_entropy, dict(input=_tensor(finite, grad=True), target=_tensor(target[:, [0, 2, 3]])), "mean",
        ["input"])
    _close(loss, want_loss, dtype, "loss")
    _close(grad[:, [0, 2, 3]], want_finite_grad, dtype, "grad")
    assert grad[0, 1] == 0


def test_logsumexp_infinite_max_rows(backend, dtype):
    """Rows whose max is +inf or -inf (all masked): logsumexp is that max, as torch.logsumexp."""
    x = np.array([[np.inf, 0.0], [np.inf, -np.inf], [np.inf, np.inf], [-np.inf, -np.inf], [0.0, 1.0]], dtype)
    _close(stableloss.logsumexp(x, dim=1, backend=backend), torch.logsumexp(_tensor(x), dim=1).numpy(), dtype, "lse")


# ---------------------------------------------------------------------------------------------------
# MSE

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_mse(api, backend, dtype, reduction, weighted):
    x, t = _random((5, 3), dtype), _random((5, 3), dtype)
    weight = RNG.uniform(0.1, 3, (5, 3)).astype(dtype) if weighted else None
    loss, (grad,) = _ours(api, "mse_loss", dict(input=x, target=t, weight=weight), ["input"], backend,
                          reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(t), weight=_tensor(weight))
    want, (want_grad,) = _torch_loss_and_grads(F.mse_loss, tensors, reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("weight_shape", [(3,), (5, 1), (1, 3), ()])
def test_mse_weight_of_another_shape(backend, weight_shape):
    """A weight not of the input's shape raises ValueError, as in PyTorch (no broadcasting)."""
    x, t = _random((5, 3), np.float64), _random((5, 3), np.float64)
    weight = np.ones(weight_shape)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        F.mse_loss(_tensor(x), _tensor(t), weight=_tensor(weight))
    with pytest.raises(ValueError, match=r"mse_loss: weight shape .* must equal the input shape \(5, 3\)"):
        stableloss.mse_loss(x, t, weight=weight, backend=backend)


# ---------------------------------------------------------------------------------------------------
# L1, smooth L1, Huber (one kernel): beta 0 is l1 through smooth_l1_loss; a threshold of 1.5 puts the
# N(0, 8) differences on both sides; a weighted mean divides by the weights' sum for l1_loss and by N
# for huber_loss, as torch

HUBER_FUNCTIONS = [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}), ("smooth_l1_loss", {"beta": 1.5}),
                   ("huber_loss", {"delta": 1.5})]
HUBER_GRID = [(function, options, weighted, reduction) for function, options in HUBER_FUNCTIONS
              for weighted in ([False] if function == "smooth_l1_loss" else [False, True])  # it takes no weight
              for reduction in ("none", "mean", "sum")]


@pytest.mark.parametrize("function, options, weighted, reduction", HUBER_GRID, ids=str)
def test_l1_smooth_l1_huber(api, backend, dtype, function, options, weighted, reduction):
    x, t = _random((5, 3), dtype), _random((5, 3), dtype)
    t[0] = x[0]  # d = 0: gradient sign(0) = 0 (l1), 0 (quadratic)
    weight = RNG.uniform(0.1, 3, (5, 3)).astype(dtype) if weighted else None
    arrays = dict(input=x, target=t) | ({"weight": weight} if weighted else {})
    loss, (grad,) = _ours(api, function, arrays, ["input"], backend, reduction=reduction, **options)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(t)) | ({"weight": _tensor(weight)} if weighted else {})
    want, (want_grad,) = _torch_loss_and_grads(lambda **kw: getattr(F, function)(**kw, **options), tensors,
                                               reduction, ["input"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


@pytest.mark.parametrize("function", ["l1_loss", "huber_loss"])
@pytest.mark.parametrize("weight_shape", [(3,), (5, 1), ()])
def test_l1_huber_weight_of_another_shape(backend, function, weight_shape):
    """A weight not of the input's shape raises ValueError, as in PyTorch (no broadcasting)."""
    x, t = _random((5, 3), np.float64), _random((5, 3), np.float64)
    weight = np.ones(weight_shape)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        getattr(F, function)(_tensor(x), _tensor(t), weight=_tensor(weight))
    with pytest.raises(ValueError, match=rf"{function}: weight shape .* must equal the input shape \(5, 3\)"):
        getattr(stableloss, function)(x, t, weight=weight, backend=backend)

# ---------------------------------------------------------------------------------------------------
# Sigmoid focal loss: torchvision.ops.sigmoid_focal_loss (not installed), its documented formula in torch ops

def _torchvision_focal(inputs, targets, alpha, gamma, reduction):
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


FOCAL_GRID = list(itertools.product(["none", "mean", "sum"], [(0.25, 2.0), (-1.0, 0.5), (1.0, 0.0), (0.6, 3.0)],
                                    ["soft", "hard"]))


@pytest.mark.parametrize("reduction,alpha_gamma,labels", FOCAL_GRID)
def test_sigmoid_focal_loss(api, backend, dtype, reduction, alpha_gamma, labels):
    alpha, gamma = alpha_gamma
    x = _random((4, 3), dtype, 3.0)
    t = (RNG.uniform(size=(4, 3)) if labels == "soft" else RNG.integers(0, 2, (4, 3))).astype(dtype)
    loss, (grad,) = _ours(api, "sigmoid_focal_loss", dict(inputs=x, targets=t), ["inputs"], backend, alpha=alpha,
                          gamma=gamma, reduction=reduction)
    tensors = dict(inputs=_tensor(x, grad=True), targets=_tensor(t))
    want, (want_grad,) = _torch_loss_and_grads(lambda **kw: _torchvision_focal(**kw, alpha=alpha, gamma=gamma),
                                               tensors, reduction, ["inputs"])
    _close(loss, want, dtype, "loss")
    _close(grad, want_grad, dtype, "grad")


def test_sigmoid_focal_loss_confident_gamma_below_one(api, backend):
    """gamma = 0.5, x = 100, t = 1: torch's autograd of torchvision's formula forms 0^-1/2 times 0, NaN; the
    derivative is finite (a documented difference), and the loss is the exact one where torch rounds to 0."""
    x, t = np.array([100.0]), np.array([1.0])
    loss, (grad,) = _ours(api, "sigmoid_focal_loss", dict(inputs=x, targets=t), ["inputs"], backend, gamma=0.5,
                          reduction="none")
    want, (want_grad,) = _torch_loss_and_grads(lambda **kw: _torchvision_focal(**kw, alpha=0.25, gamma=0.5),
                                               dict(inputs=_tensor(x, grad=True), targets=_tensor(t)), "none",
                                               ["inputs"])
    assert np.isnan(want_grad[0]) and want[0] == 0.0
    # mp.mpf(1)/4 * mp.log1p(mp.exp(-100)) * mp.exp(-(100 + mp.log1p(mp.exp(-100))) / 2)
    assert loss[0] == pytest.approx(1.7937739932911026e-66, rel=1e-14)
    # -mp.mpf(1)/4 * mp.exp(-(100 + mp.log1p(mp.exp(-100))) / 2) * (mp.exp(-100) + mp.log1p(mp.exp(-100)) / 2)
    #   / (1 + mp.exp(-100))
    assert grad[0] == pytest.approx(-2.6906609899366539e-66, rel=1e-14)


# Poisson NLL

PNLL_GRID = list(itertools.product(["none", "mean", "sum"], [True, False], [False, True], [1e-8, 0.5]))


@pytest.mark.parametrize("reduction,log_input,full,eps", PNLL_GRID)
def test_poisson_nll(api, backend, dtype, reduction, log_input, full, eps):
    log_rate = _random((5, 4), dtype, 1.0)
    target = RNG.poisson(np.exp(log_rate.astype(np.float64))).astype(dtype)  # counts, several above 1
    x = log_rate if log_input else np.exp(log_rate).astype(dtype)
    loss, (grad,) = _ours(api, "poisson_nll_loss", dict(input=x, target=target), ["input"], backend,
                          log_input=log_input, full=full, eps=eps, reduction=reduction)
    tensors = dict(input=_tensor(x, grad=True), target=_tensor(target))
    want, (want_grad,) = _torch_loss_and_grads(
        lambda **kw: F.poisson_nll_loss(**kw, log_input=log_input, full=full, eps=eps), tensors, reduction, ["input"])
    x64, t64 = x.astype(np.float64), target.astype(np.float64)
    first, second = (np.exp(x64), t64 * np.abs(x64)) if log_input else (x64, t64 * np.abs(np.log(x64 + eps)))
    terms = np.maximum(first, second) + (t64 * np.log(np.maximum(t64, 1.0)) if full else 0.0)  # what torch subtracts
    _close(loss, want, dtype, "loss", scale=float(np.max(terms) * (1 if reduction != "mean" else 1 / terms.size)))
    grad_terms = np.maximum(np.exp(x64), t64) if log_input else np.maximum(1.0, t64 / (x64 + eps))
    _close(grad, want_grad, dtype, "grad", scale=float(np.max(grad_terms) / (terms.size if reduction == "mean" else 1)))


def test_poisson_nll_special_values(api, backend, dtype):
    """NaN in gives NaN and x = -inf against t > 0 gives +inf, as PyTorch; a zero target makes t x zero also at
    x = -inf (loss 0), and x = +inf gives the limit +inf, where PyTorch gives NaN (documented differences)."""
    x = np.array([np.nan, 1.0, -np.inf, -np.inf, np.inf], dtype)
    target = np.array([1.0, np.nan, 2.0, 0.0, 2.0], dtype)
    loss, (grad,) = _ours(api, "poisson_nll_loss", dict(input=x, target=target), ["input"], backend, reduction="none")
    want, (want_grad,) = _torch_loss_and_grads(F.poisson_nll_loss, dict(input=_tensor(x, grad=True),
                                                                        target=_tensor(target)), "none", ["input"])
    _close(loss[:3], want[:3], dtype, "loss")
    _close(grad, want_grad, dtype, "grad")
    assert loss[3] == 0 and loss[4] == np.inf and np.isnan(want[3]) and np.isnan(want[4])


# ---------------------------------------------------------------------------------------------------
# Bad input: where PyTorch raises RuntimeError, stableloss keeps Python's type (docs/bad_inputs.md)

X_BAD, Y_BAD, T_BAD = _random((3, 5), np.float32), np.array([0, 1, 2]), RNG.uniform(size=(3, 5)).astype(np.float32)
RUNTIME_ERRORS_IN_TORCH = {
    "weight size": ("cross_entropy", dict(input=X_BAD, target=Y_BAD, weight=np.ones(4, np.float32)), ValueError),
    "label_smoothing 1.5": ("cross_entropy", dict(input=X_BAD, target=Y_BAD, label_smoothing=1.5), ValueError),
    "ignore_index with probabilities": ("cross_entropy", dict(input=X_BAD, target=T_BAD, ignore_index=1), ValueError),
    "K-dim target shape": ("cross_entropy", dict(input=_random((3, 5, 4), np.float32),
                                                 target=np.zeros((3, 2), np.int64)), ValueError),
    "GNLL target broadcast": ("gaussian_nll_loss", dict(input=X_BAD, target=T_BAD[:2], var=np.ones((3, 5), np.float32)),
                              ValueError),
    "smooth_l1 beta < 0": ("smooth_l1_loss", dict(input=X_BAD, target=T_BAD, beta=-1.0), ValueError),
    "smooth_l1 beta NaN": ("smooth_l1_loss", dict(input=X_BAD, target=T_BAD, beta=float("nan")), ValueError),
    "huber delta 0": ("huber_loss", dict(input=X_BAD, target=T_BAD, delta=0.0), ValueError),
    "NLL weight size": ("nll_loss", dict(input=X_BAD, target=Y_BAD, weight=np.ones(4, np.float32)), ValueError),
    "NLL probability target": ("nll_loss", dict(input=X_BAD, target=T_BAD), TypeError),
    "NLL K-dim target shape": ("nll_loss", dict(input=_random((3, 5, 4), np.float32),
                                                target=np.zeros((3, 2), np.int64)), ValueError),
}


@pytest.mark.parametrize("case", list(RUNTIME_ERRORS_IN_TORCH))
def test_runtime_errors_of_torch(backend, case):
    """The cases docs/bad_inputs.md lists as RuntimeError in PyTorch are that in PyTorch, and the listed
    Python type here."""
    name, kwargs, ours = RUNTIME_ERRORS_IN_TORCH[case]
    with pytest.raises(RuntimeError):
        getattr(F, name)(**{k: _tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    with pytest.raises(ours):
        getattr(stableloss, name)(**kwargs, backend=backend)


# ---------------------------------------------------------------------------------------------------
# logsumexp, log_softmax, softmax

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lse_family(backend, dtype, axis):
    x = _random((4, 7, 3), dtype, 5.0)
    tx = _tensor(x)
    _close(stableloss.logsumexp(x, axis=axis, backend=backend), torch.logsumexp(tx, dim=axis).numpy(), dtype, "lse")
    _close(stableloss.logsumexp(x, axis=axis, keepdims=True, backend=backend),
           torch.logsumexp(tx, dim=axis, keepdim=True).numpy(), dtype, "lse keepdims")
    _close(stableloss.log_softmax(x, axis=axis, backend=backend), F.log_softmax(tx, dim=axis).numpy(), dtype,
           "log_softmax")
    _close(stableloss.softmax(x, axis=axis, backend=backend), F.softmax(tx, dim=axis).numpy(), dtype, "softmax")
