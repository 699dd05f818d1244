"""stableloss.torch: gradients (gradcheck, every function and differentiable argument), the gradients
torch gives w.r.t. targets and through the log-sum-exp family, torch.compile, the modules, half
precision, and the errors of what the adapter does not do.  (Values and input gradients on the whole
torch-semantics grid: test_torch_semantics.py, api "torch".)  DistributedDataParallel:
test_torch_ddp.py.

Runs only where torch is installed.
"""

import copy
import io
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import stableloss  # noqa: E402
import stableloss.torch as slt  # noqa: E402

RNG = torch.Generator().manual_seed(7)


def _randn(*shape, scale=1.0, dtype=torch.float64, grad=True):
    return (torch.randn(*shape, generator=RNG, dtype=dtype) * scale).requires_grad_(grad)


def _probabilities(*shape, dim=-1, spread=2.0):
    return torch.softmax(torch.randn(*shape, generator=RNG, dtype=torch.float64) * spread, dim=dim)


# ---------------------------------------------------------------------------------------------------
# gradcheck: float64, every function, every differentiable argument, ordinary and moderately extreme

def _gradcheck_cases():
    index = torch.tensor([0, 2, 1, 4])
    kdim_index = torch.randint(0, 5, (2, 3, 2), generator=RNG)
    cases = {}
    for scale in (1.0, 30.0):  # logits up to ~+-90: tiny losses and saturated sigmoids
        tag = f"scale{scale:g}"
        for reduction in ("mean", "sum", "none"):
            cases[f"ce-index-{reduction}-{tag}"] = (
                lambda x, r=reduction: slt.cross_entropy(x, index, reduction=r, label_smoothing=0.1),
                [_randn(4, 5, scale=scale)])
            cases[f"bce-{reduction}-{tag}"] = (
                lambda x, r=reduction: slt.binary_cross_entropy_with_logits(
                    x, torch.tensor([[0.0, 1.0, 0.3], [1.0, 0.0, 0.7]], dtype=torch.float64),
                    pos_weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), reduction=r),
                [_randn(2, 3, scale=scale)])
            cases[f"focal-{reduction}-{tag}"] = (
                lambda x, r=reduction: slt.sigmoid_focal_loss(
                    x, torch.tensor([[0.0, 1.0, 0.3], [1.0, 0.0, 0.7]], dtype=torch.float64), alpha=0.25, gamma=1.5,
                    reduction=r),
                [_randn(2, 3, scale=scale)])
        kdim_probabilities = _probabilities(2, 5, 3, 2, dim=1)
        cases[f"ce-kdim-probabilities-{tag}"] = (
            lambda x, t=kdim_probabilities: slt.cross_entropy(x, t, reduction="sum"), [_randn(2, 5, 3, 2, scale=scale)])
        cases[f"ce-kdim-index-none-{tag}"] = (lambda x: slt.cross_entropy(x, kdim_index, reduction="none"),
                                              [_randn(2, 5, 3, 2, scale=scale)])
        cases[f"ce-z_loss-softcap-{tag}"] = (lambda x: slt.cross_entropy(x, index, z_loss=1e-2, softcap=20.0),
                                             [_randn(4, 5, scale=scale)])
    class_weight = torch.rand(5, generator=RNG, dtype=torch.float64) + 0.5
    for reduction in ("mean", "sum", "none"):
        cases[f"nll-{reduction}"] = (
            lambda x, r=reduction: slt.nll_loss(x, torch.tensor([0, 2, -100, 4]), weight=class_weight, reduction=r),
            [_randn(4, 5)])
    cases["nll-kdim-none"] = (lambda x: slt.nll_loss(x, kdim_index, reduction="none"), [_randn(2, 5, 3, 2)])
    for reduction in ("mean", "sum", "none"):
        for var_shape in ((4, 3), (4,), (4, 1), (1, 3)):
            cases[f"gnll-var{var_shape}-{reduction}"] = (
                lambda x, v, r=reduction: slt.gaussian_nll_loss(x, torch.zeros(4, 3, dtype=torch.float64), v,
                                                                reduction=r),
                [_randn(4, 3), (torch.rand(*var_shape, generator=RNG, dtype=torch.float64) + 1e-3).requires_grad_()])
        cases[f"gnll-float-var-{reduction}"] = (
            lambda x, r=reduction: slt.gaussian_nll_loss(x, torch.ones(4, 3, dtype=torch.float64), 0.25, full=True,
                                                         reduction=r), [_randn(4, 3)])
        # a quadratic: central differences are exact but for the loss's rounding, ulp(1e6)/eps, which a
        # wide step keeps below the tolerance at this scale
        cases[f"mse-{reduction}"] = (lambda x, t, r=reduction: slt.mse_loss(x, t, reduction=r),
                                     [_randn(4, 3, scale=1e3), _randn(4, 3, scale=1e3)], dict(eps=1e-2))
        cases[f"mse-broadcast-target-{reduction}"] = (lambda x, t, r=reduction: slt.mse_loss(x, t, reduction=r),
                                                      [_randn(4, 3), _randn(3)])
        weight = torch.rand(4, 3, generator=RNG, dtype=torch.float64) + 0.5
        cases[f"l1-{reduction}"] = (lambda x, t, r=reduction, w=weight: slt.l1_loss(x, t, reduction=r, weight=w),
                                    [_randn(4, 3), _randn(4, 3)])
        cases[f"smooth_l1-broadcast-target-{reduction}"] = (
            lambda x, t, r=reduction: slt.smooth_l1_loss(x, t, reduction=r, beta=0.7), [_randn(4, 3), _randn(3)])
        cases[f"huber-{reduction}"] = (
            lambda x, t, r=reduction, w=weight: slt.huber_loss(x, t, reduction=r, delta=0.7, weight=w),
            [_randn(4, 3), _randn(4, 3)])
    for reduction in ("batchmean", "sum", "none"):
        for log_target in (False, True):
            target = _probabilities(3, 6, spread=1.0)  # p >= ~0.02: finite differences of p log p stay exact
            target = (target.log() if log_target else target).requires_grad_()
            cases[f"kl-{reduction}-log_target{log_target}"] = (
                lambda x, t, r=reduction, lt=log_target: slt.kl_div(x, t, reduction=r, log_target=lt),
                [torch.log(_probabilities(3, 6)).requires_grad_(), target])
    counts = torch.tensor([[0.0, 1.0, 3.0], [2.0, 7.0, 1.5]], dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        for full in (False, True):
            cases[f"pnll-log_input-full{full}-{reduction}"] = (
                lambda x, r=reduction, f=full: slt.poisson_nll_loss(x, counts, full=f, reduction=r), [_randn(2, 3)])
            cases[f"pnll-rate-full{full}-{reduction}"] = (
                lambda x, r=reduction, f=full: slt.poisson_nll_loss(x, counts, log_input=False, full=f, reduction=r),
                [(torch.rand(2, 3, generator=RNG, dtype=torch.float64) + 0.5).requires_grad_()])
    for reduction in ("mean", "sum"):
        cases[f"linear_ce-{reduction}"] = (
            lambda x, w, b, r=reduction: slt.linear_cross_entropy(x, w, torch.tensor([0, 4, -100, 2]), linear_bias=b,
                                                                  reduction=r, label_smoothing=0.1),
            [_randn(4, 3), _randn(5, 3, scale=3.0), _randn(5)])
    for dim in (0, 1, -1, (0, 2)):
        cases[f"logsumexp-dim{dim}"] = (lambda x, d=dim: slt.logsumexp(x, d), [_randn(3, 4, 5, scale=10.0)])
        cases[f"logsumexp-keepdim-dim{dim}"] = (lambda x, d=dim: slt.logsumexp(x, d, keepdim=True),
                                                [_randn(3, 4, 5, scale=10.0)])
    for dim in (0, 1, 2):
        cases[f"log_softmax-dim{dim}"] = (lambda x, d=dim: slt.log_softmax(x, d), [_randn(3, 4, 5, scale=10.0)])
        cases[f"softmax-dim{dim}"] = (lambda x, d=dim: slt.softmax(x, d), [_randn(3, 4, 5, scale=10.0)])
    return cases


GRADCHECK = _gradcheck_cases()


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradcheck(name):
    func, inputs, *options = GRADCHECK[name]
    assert torch.autograd.gradcheck(func, inputs, **{"eps": 1e-6, "atol": 1e-7, "rtol": 1e-5, **dict(*options)})


# ---------------------------------------------------------------------------------------------------
# Gradients torch gives where the numpy API has none: targets, and the log-sum-exp family

def _grads(func, tensors):
    leaves = {name: t.detach().clone().requires_grad_(t.requires_grad) for name, t in tensors.items()}
    loss = func(**leaves)
    (loss.sum() if loss.dim() else loss).backward()
    return loss.detach(), {name: t.grad for name, t in leaves.items() if t.requires_grad}


def _assert_same(ours, theirs, rtol):
    (value, grads), (want, want_grads) = ours, theirs
    torch.testing.assert_close(value, want, rtol=rtol, atol=rtol * float(want.abs().max()))
    assert grads.keys() == want_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=rtol,
                                   atol=rtol * float(want_grads[name].abs().max()), msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name, options", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                           ("huber_loss", {"delta": 0.5})], ids=str)
def test_target_gradient(name, options, dtype, reduction):
    """The target's gradient (a learned target) of the losses of x - t is torch's, also for a broadcast
    target."""
    for target_shape in ((5, 4), (4,)):
        tensors = dict(input=_randn(5, 4, dtype=dtype), target=_randn(*target_shape, dtype=dtype))
        _assert_same(_grads(lambda **t: getattr(slt, name)(**t, reduction=reduction, **options), tensors),
                     _grads(lambda **t: getattr(F, name)(t["input"], t["target"].expand(5, 4), reduction=reduction,
                                                         **options), tensors),
                     1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["none", "batchmean", "sum"])
def test_kl_target_gradient(log_target, reduction):
    """A student-side target (distillation both ways) gets torch's gradient."""
    target = _probabilities(4, 7)
    tensors = dict(input=torch.log(_probabilities(4, 7)).requires_grad_(),
                   target=(target.log() if log_target else target).requires_grad_())
    _assert_same(_grads(lambda **t: slt.kl_div(**t, reduction=reduction, log_target=log_target), tensors),
                 _grads(lambda **t: F.kl_div(**t, reduction=reduction, log_target=log_target), tensors), 1e-12)


@pytest.mark.parametrize("dim", [0, 1, -1, (0, 2), (1, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_like_torch(dim, keepdim):
    tensors = dict(input=_randn(3, 4, 5, scale=5.0))
    _assert_same(_grads(lambda input: slt.logsumexp(input, dim, keepdim), tensors),
                 _grads(lambda input: torch.logsumexp(input, dim, keepdim), tensors), 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("targets", ["index", "probabilities"])
def test_linear_cross_entropy_like_torch(dtype, targets):
    """Values and the gradients of input, weight and bias are torch's (its reference path), with class
    weights, smoothing, an ignored row, and chunks of 4 rows through options."""
    target = torch.tensor([0, 6, -100, 3, 3, 1]) if targets == "index" else _probabilities(6, 7).to(dtype)
    tensors = dict(input=_randn(6, 4, dtype=dtype), linear_weight=_randn(7, 4, dtype=dtype),
                   linear_bias=_randn(7, dtype=dtype))
    options = dict(weight=torch.rand(7, generator=RNG, dtype=dtype) + 0.5, label_smoothing=0.1)
    chunked = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=4)
    for reduction in ("mean", "sum", "none"):
        _assert_same(_grads(lambda **t: slt.linear_cross_entropy(**t, target=target, reduction=reduction,
                                                                 options=chunked, **options), tensors),
                     _grads(lambda **t: F.linear_cross_entropy(**t, target=target, reduction=reduction, **options),
                            tensors),
                     1e-5 if dtype == torch.float32 else 1e-12)


def test_linear_cross_entropy_none_needs_a_uniform_incoming_gradient():
    """reduction='none' gives the gradients of the sum: a per-row incoming gradient is refused."""
    x, w = _randn(3, 4), _randn(5, 4)
    loss = slt.linear_cross_entropy(x, w, torch.tensor([0, 1, 2]), reduction="none")
    with pytest.raises(RuntimeError, match="the same for every row"):
        loss.backward(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_family_like_torch(name, dim):
    weights = torch.randn(3, 4, 5, generator=RNG, dtype=torch.float64)  # a gradient that is not all ones
    tensors = dict(input=_randn(3, 4, 5, scale=5.0))
    _assert_same(_grads(lambda input: getattr(slt, name)(input, dim) * weights, tensors),
                 _grads(lambda input: getattr(F, name)(input, dim) * weights, tensors), 1e-12)


def test_softmax_implicit_dim_warns_as_torch():
    x = torch.randn(3, 4, generator=RNG)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        ours = slt.softmax(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(ours, F.softmax(x))


def test_tiny_loss_survives():
    """Logits [40, 0, 0], class 0: 2 e^-40 = 8.5e-18, with its gradient (torch: 0 and 0)."""
    x = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    loss = slt.cross_entropy(x, torch.tensor([0]))
    loss.backward()
    assert loss.dtype == torch.float32
    assert float(loss.detach()) == pytest.approx(8.4967e-18, rel=1e-4)  # mp.log(1 + 2*mp.exp(-40))
    assert float(x.grad[0, 1]) == pytest.approx(4.2484e-18, rel=1e-4)  # mp.exp(-40) / (1 + 2*mp.exp(-40))
    assert float(F.cross_entropy(x.detach(), torch.tensor([0]))) == 0.0


# ---------------------------------------------------------------------------------------------------
# torch.compile

@pytest.fixture
def fresh_dynamo():
    """Dynamo's caches emptied: the tests compile the same forward for many losses, beyond its limit
    of recompilations per code object."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class _Model(torch.nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
        self.loss = loss

    def forward(self, x, target):
        return self.loss(self.body(x), target)


_HEAD = torch.randn(9, 5, generator=RNG)  # a fixed output matrix over the body's 5 features
_WEIGHT = torch.rand(7, 5, generator=RNG)  # fixed element weights of the body's output
_NLL_LOSS = slt.NLLLoss(weight=torch.rand(5, generator=RNG) + 0.5)
COMPILED_LOSSES = {
    "cross_entropy": (lambda out, y: slt.cross_entropy(out, y, label_smoothing=0.1), lambda: torch.randint(0, 5, (7,))),
    "cross_entropy-z_loss-lse": (lambda out, y: (lambda loss, lse: loss + lse.mean())(
        *slt.cross_entropy(out, y, z_loss=1e-3, softcap=30.0, return_lse=True)), lambda: torch.randint(0, 5, (7,))),
    "CrossEntropyLoss": (slt.CrossEntropyLoss(weight=torch.rand(5) + 0.5), lambda: torch.randint(0, 5, (7,))),
    "nll_loss": (lambda out, y: slt.nll_loss(slt.log_softmax(out, 1), y), lambda: torch.randint(0, 5, (7,))),
    "NLLLoss": (lambda out, y: _NLL_LOSS(torch.log_softmax(out, 1), y), lambda: torch.randint(0, 5, (7,))),
    "bce": (lambda out, y: slt.binary_cross_entropy_with_logits(out, y), lambda: torch.rand(7, 5)),
    "gnll": (lambda out, y: slt.gaussian_nll_loss(out[:, :4], y, out[:, 4].exp()), lambda: torch.randn(7, 4)),
    "kl": (lambda out, y: slt.kl_div(slt.log_softmax(out, 1), y, reduction="batchmean"),
           lambda: torch.softmax(torch.randn(7, 5), 1)),
    "mse": (lambda out, y: slt.mse_loss(out, y), lambda: torch.randn(7, 5)),
    "l1": (lambda out, y: slt.l1_loss(out, y), lambda: torch.randn(7, 5)),
    "SmoothL1Loss": (slt.SmoothL1Loss(beta=0.5), lambda: torch.randn(7, 5)),
    "huber": (lambda out, y: slt.huber_loss(out, y, delta=0.5, weight=_WEIGHT), lambda: torch.randn(7, 5)),
    "focal": (lambda out, y: slt.sigmoid_focal_loss(out, y, reduction="mean"),
              lambda: (torch.rand(7, 5) < 0.3).float()),
    "poisson_nll_loss": (lambda out, y: slt.poisson_nll_loss(out, y, full=True),
                         lambda: torch.poisson(torch.ones(7, 5))),
    "linear_cross_entropy": (lambda out, y: slt.linear_cross_entropy(torch.tanh(out), _HEAD, y),
                             lambda: torch.randint(0, 9, (7,))),
    "logsumexp": (lambda out, y: (slt.logsumexp(out, 1) * y).sum(), lambda: torch.randn(7)),
    "softmax": (lambda out, y: (slt.softmax(out, 1) * y).sum(), lambda: torch.randn(7, 5)),
}


@pytest.mark.parametrize("name", list(COMPILED_LOSSES))
def test_compile_fullgraph_matches_eager(name, fresh_dynamo):
    """A model whose loss is stableloss.torch compiles without a graph break (fullgraph=True), and its
    loss and parameter gradients equal eager mode's."""
    loss, make_target = COMPILED_LOSSES[name]
    torch.manual_seed(0)
    eager = _Model(loss)
    compiled_model = copy.deepcopy(eager)
    x, target = torch.randn(7, 6), make_target()
    eager_loss = eager(x, target)
    eager_loss.backward()
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    compiled_loss = compiled(x, target)
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss, eager_loss)
    for (param_name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=param_name)


def test_compiled_graph_holds_the_custom_operator(fresh_dynamo):
    """Under torch.compile the loss is one node, the operator stableloss::cross_entropy, forward and
    backward (in eager mode the same parts run as an autograd.Function)."""
    graphs = []

    def recording(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    model = _Model(slt.CrossEntropyLoss())
    loss = torch.compile(model, fullgraph=True, backend=recording)(torch.randn(7, 6), torch.randint(0, 5, (7,)))
    loss.backward()
    targets = [node.target for graph in graphs for node in graph.graph.nodes if node.op == "call_function"]
    assert targets.count(torch.ops.stableloss.cross_entropy.default) == 1, targets


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor's own
def test_compile_inductor(fresh_dynamo):
    """The default backend (inductor) around the custom operators, forward and backward."""
    torch.manual_seed(1)
    model = _Model(slt.CrossEntropyLoss())
    x, y = torch.randn(7, 6), torch.randint(0, 5, (7,))
    want = model(x, y)
    compiled = torch.compile(model, fullgraph=True)
    got = compiled(x, y)
    got.backward()
    torch.testing.assert_close(got, want)
    assert all(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------------------------------------------
# Modules

MODULES = [
    ("CrossEntropyLoss", dict(weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=1, label_smoothing=0.1),
     lambda: (torch.randn(4, 3), torch.tensor([0, 1, 2, 2]))),
    ("NLLLoss", dict(weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=1),
     lambda: (torch.log_softmax(torch.randn(4, 3), 1), torch.tensor([0, 1, 2, 2]))),
    ("BCEWithLogitsLoss", dict(weight=torch.tensor([1.0, 3.0]), pos_weight=torch.tensor([2.0, 0.5]), reduction="sum"),
     lambda: (torch.randn(4, 2), torch.rand(4, 2))),
    ("GaussianNLLLoss", dict(full=True, eps=1e-3), lambda: (torch.randn(4, 2), torch.randn(4, 2), torch.rand(4, 1))),
    ("KLDivLoss", dict(reduction="batchmean", log_target=True),
     lambda: (torch.log_softmax(torch.randn(4, 3), 1), torch.log_softmax(torch.randn(4, 3), 1))),
    ("MSELoss", dict(reduction="none"), lambda: (torch.randn(4, 2), torch.randn(4, 2))),
    ("L1Loss", dict(reduction="sum"), lambda: (torch.randn(4, 2), torch.randn(4, 2))),
    ("SmoothL1Loss", dict(beta=0.5), lambda: (torch.randn(4, 2), torch.randn(4, 2))),
    ("HuberLoss", dict(delta=0.5, reduction="none"), lambda: (torch.randn(4, 2), torch.randn(4, 2))),
    ("PoissonNLLLoss", dict(log_input=False, full=True, eps=1e-6),
     lambda: (torch.rand(4, 2) + 0.5, torch.tensor([[0.0, 2.0], [3.0, 1.0], [5.0, 0.0], [2.0, 4.0]]))),
]


@pytest.mark.parametrize("name, kwargs, make_inputs", MODULES, ids=[m[0] for m in MODULES])
def test_module_state_dict_pickle_and_to(name, kwargs, make_inputs):
    """The modules are torch's classes: the same constructor, buffers and state_dict, pickling, .to(),
    and the same values as torch's module."""
    module, reference = getattr(slt, name)(**kwargs, backend="numpy"), getattr(torch.nn, name)(**kwargs)
    assert isinstance(module, type(reference))
    inputs = make_inputs()
    assert module.state_dict().keys() == reference.state_dict().keys()
    torch.testing.assert_close(module(*inputs), reference(*inputs))
    fresh = pickle.loads(pickle.dumps(module))
    assert fresh.backend == "numpy" and fresh.state_dict().keys() == module.state_dict().keys()
    torch.testing.assert_close(fresh(*inputs), module(*inputs))
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    loaded = getattr(slt, name)(**kwargs)
    loaded.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(loaded(*inputs), module(*inputs))
    wide = copy.deepcopy(module).to(torch.float64)
    assert all(b.dtype == torch.float64 for b in wide.buffers())
    wide_inputs = (t.double() if t.is_floating_point() else t for t in inputs)
    torch.testing.assert_close(wide(*wide_inputs), module(*inputs).double(), rtol=1e-5, atol=1e-6)


def test_module_repr_shows_backend():
    assert repr(slt.MSELoss(backend="c")) == "MSELoss(backend='c')"
    assert repr(slt.MSELoss()) == "MSELoss()"


# ---------------------------------------------------------------------------------------------------
# Tensors and dtypes

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    x = torch.randn(6, 5).to(dtype).requires_grad_()
    y = torch.randint(0, 5, (6,))
    loss = slt.cross_entropy(x, y)
    loss.backward()
    assert loss.dtype == dtype and x.grad.dtype == dtype
    want = F.cross_entropy(x.detach().float(), y)
    assert float(loss.detach()) == float(want.to(dtype))  # computed in float32, rounded once


def test_non_contiguous_tensors():
    x = torch.randn(5, 8, dtype=torch.float64)[:, ::2].requires_grad_()
    y = torch.randn(8, 5, dtype=torch.float64).t()[:, ::2]
    _assert_same(_grads(lambda input: slt.mse_loss(input, y), dict(input=x)),
                 _grads(lambda input: F.mse_loss(input, y), dict(input=x)), 1e-12)


def test_inference_computes_no_gradient(monkeypatch):
    """Under no_grad, or with nothing requiring grad, the kernel is asked for the loss only."""
    asked = []
    real = stableloss.cross_entropy

    def recording(*args, return_grad=False, **kwargs):
        asked.append(return_grad)
        return real(*args, return_grad=return_grad, **kwargs)

    monkeypatch.setattr(stableloss, "cross_entropy", recording)
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    slt.cross_entropy(x, y)
    with torch.no_grad():
        slt.cross_entropy(x.requires_grad_(), y)
    slt.cross_entropy(x, y).backward()
    assert asked == [False, False, True]


# ---------------------------------------------------------------------------------------------------
# What the adapter does not do: clear errors

def test_other_device_is_refused():
    x = torch.empty(2, 3, device="meta")
    with pytest.raises(RuntimeError, match=r"stableloss.torch.cross_entropy: input is on meta; stableloss "
                                           r"computes on the CPU"):
        slt.cross_entropy(x, torch.tensor([0, 1]))


@pytest.mark.parametrize("call, name", [
    (lambda w: slt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), weight=w), "weight"),
    (lambda w: slt.nll_loss(torch.randn(2, 3), torch.tensor([0, 1]), weight=w), "weight"),
    (lambda w: slt.binary_cross_entropy_with_logits(torch.randn(2, 3), torch.rand(2, 3), pos_weight=w), "pos_weight"),
    (lambda w: slt.mse_loss(torch.randn(2, 3), torch.randn(2, 3), weight=w.expand(2, 3)), "weight"),
    (lambda w: slt.huber_loss(torch.randn(2, 3), torch.randn(2, 3), weight=w.expand(2, 3)), "weight"),
    (lambda t: slt.gaussian_nll_loss(torch.randn(2, 3), t.expand(2, 3), torch.ones(2, 3)), "target"),
    (lambda t: slt.cross_entropy(torch.randn(2, 3), torch.softmax(t.expand(2, 3), 1)), "target"),
    (lambda t: slt.sigmoid_focal_loss(torch.randn(2, 3), torch.sigmoid(t.expand(2, 3))), "targets"),
    (lambda t: slt.poisson_nll_loss(torch.randn(2, 3), t.expand(2, 3)), "target"),
], ids=["ce-weight", "nll-weight", "bce-pos_weight", "mse-weight", "huber-weight", "gnll-target", "ce-probabilities",
        "focal-targets", "pnll-target"])
def test_gradient_not_given_is_an_error(call, name):
    """A tensor that requires grad where no gradient is given would silently get none: an error names it."""
    with pytest.raises(RuntimeError, match=rf"{name} requires grad, but stableloss gives gradients only w.r.t."):
        call(torch.ones(3, requires_grad=True))


@pytest.mark.parametrize("name", ["cross_entropy", "mse_loss", "logsumexp", "softmax"])
def test_double_backward_is_an_error(name):
    """create_graph=True (a gradient penalty) would drop the second-order terms: an error says so."""
    x = torch.randn(3, 4, requires_grad=True)
    calls = {"cross_entropy": lambda: slt.cross_entropy(x, torch.tensor([0, 1, 2])),
             "mse_loss": lambda: slt.mse_loss(x, torch.zeros(3, 4)),
             "logsumexp": lambda: slt.logsumexp(x, 1).sum(),
             "softmax": lambda: (slt.softmax(x, 1) * torch.arange(4.0)).sum()}
    with pytest.raises(RuntimeError, match=rf"stableloss.torch.{name}: double backward \(create_graph=True\) "
                                           r"is not supported"):
        torch.autograd.grad(calls[name](), x, create_graph=True)


def test_bad_input_keeps_the_numpy_api_message():
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):
        slt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="var of shape \\(3,\\) does not fit the input's shape \\(4, 3\\)"):
        slt.gaussian_nll_loss(torch.randn(4, 3), torch.randn(4, 3), torch.ones(3))


def _python(code, **env):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    return result.returncode, result.stdout + result.stderr


def test_import_stableloss_does_not_import_torch():
    code, out = _python("import sys, stableloss, numpy as np; stableloss.cross_entropy(np.zeros((2, 3)), "
                        "np.array([0, 1])); print('torch' in sys.modules)")
    assert code == 0 and out.strip() == "False", out


def test_without_torch_the_import_says_how_to_install_it():
    code, out = _python("import sys; sys.modules['torch'] = None; import stableloss.torch")
    assert code != 0
    assert "stableloss.torch needs PyTorch; install its CPU build: pip install torch --index-url " \
           "https://download.pytorch.org/whl/cpu" in out
