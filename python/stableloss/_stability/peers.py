"""The implementations stableloss is compared with, for accuracy (``check``) and speed (``bench``).

- ``textbook``: the numpy formula a user writes from the definition;
- ``scipy``: SciPy's special functions assembled into the loss, where it has the pieces;
- ``torch``: ``torch.nn.functional`` (the same function and argument names as stableloss), gradients
  by autograd; it serves every loss (the log-sum-exp family has a formula of its own).

:func:`prepare` returns a zero-argument callable computing a loss on a *part* (the keyword arguments of
one public call, as in :mod:`families`) with a reduction: ``{output: array}`` with the outputs named as
the kernel names them (``loss``, then the gradients of the returned loss, of its sum for "none"), or
None where the peer lacks the part's options.  The textbook and SciPy formulas are written for
``reduction="none"``; :func:`_reduced` turns them into the others.
"""

import functools
import importlib
import math

import numpy as np

from .. import _spec
from . import families

#: peer -> stem -> formula(part, grad) -> {output: array} (reduction "none") or None.
FORMULAS = {"textbook": {}, "scipy": {}, "torch": {}}
#: The module each peer needs.
MODULES = {"textbook": "numpy", "scipy": "scipy.special", "torch": "torch"}


@functools.cache
def optional(name):
    """The module ``name`` if it imports, else None (the peers and plots are optional)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def formula(peer, stem):
    """Register a peer's formula for a loss (the function's docstring says what it computes)."""
    def register(function):
        FORMULAS[peer][stem] = function
        return function
    return register


def available(peer, stem):
    """Whether ``peer`` is installed and computes ``stem`` (torch: by a formula of its own, or where
    torch.nn.functional has the function)."""
    module = optional(MODULES[peer])
    if module is None or stem in FORMULAS[peer]:
        return module is not None
    return peer == "torch" and hasattr(module.nn.functional, _spec.KERNELS[stem].function)


def prepare(peer, stem, part, reduction="none", grad=True):
    """A zero-argument callable computing ``stem`` on ``part`` with ``peer`` (see the module docstring)."""
    if peer == "torch" and stem not in FORMULAS["torch"]:
        function = getattr(optional("torch").nn.functional, _spec.KERNELS[stem].function_of(part))
        if stem == "ce" and ("z_loss" in part or "softcap" in part):
            function = torch_cross_entropy
        return torch_call(function, stem, part, reduction, grad)
    return lambda: _reduced(FORMULAS[peer][stem](part, grad), reduction, part)


def torch_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                        z_loss=0.0, softcap=None):
    """cross_entropy's softcap and z_loss as a torch user writes them: ``capped = softcap * torch.tanh(input /
    softcap)``, ``F.cross_entropy(capped, target) + z_loss * torch.logsumexp(capped, 1).pow(2).mean()`` (a
    plain mean: no class weight, no ignored target); otherwise the z-loss term of each row weighted as
    stableloss weighs it (w_y, 0 where ignored; 1 for probability targets) and reduced alike."""
    torch = optional("torch")
    functional = torch.nn.functional
    capped = input if softcap is None else softcap * torch.tanh(input / softcap)
    loss = functional.cross_entropy(capped, target, weight, ignore_index=ignore_index, reduction=reduction,
                                    label_smoothing=label_smoothing)
    if not z_loss:
        return loss
    squares = torch.logsumexp(capped, 1 if input.dim() >= 2 else 0).pow(2)
    if target.is_floating_point():
        rho = torch.ones_like(squares)
    else:
        counted = target != ignore_index
        if reduction == "mean" and weight is None and bool(counted.all()):
            return loss + z_loss * squares.mean()
        rho = counted.to(squares.dtype) * (1.0 if weight is None else weight[torch.where(counted, target, 0)])
    term = z_loss * rho * squares
    return loss + {"none": term, "sum": term.sum(), "mean": term.sum() / rho.sum()}[reduction]


def _reduced(outputs, reduction, part):
    """The outputs of the "none" formula for ``reduction``: the loss summed (divided by its size for
    "mean", by the batch for "batchmean") and the gradients divided alike."""
    if outputs is None or reduction == "none":
        return outputs
    loss = outputs["loss"]
    x = families.input_of(part)
    batch = np.shape(x)[0] if np.ndim(x) else 1
    denominator = {"sum": 1, "mean": np.size(loss), "batchmean": batch}[reduction]
    return {name: np.sum(value) / denominator if name == "loss" else value / denominator
            for name, value in outputs.items()}


def torch_call(function, stem, part, reduction, grad, **options):
    """A zero-argument callable of ``function`` (torch.nn.functional's or stableloss.torch's) on tensors
    viewing the part's arrays, ``options`` as keywords: with ``grad``, the differentiable arguments
    require grad and ``backward()`` (of the sum for "none") gives their gradients.  None where torch
    rejects the part's options (e.g. a var shape it does not take)."""
    torch = optional("torch")
    kernel = _spec.KERNELS[stem]
    tensors = {name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
               for name, value in part.items()}
    leaves = {name: tensors[name].requires_grad_(grad) for name in kernel.differentiable
              if isinstance(tensors.get(name), torch.Tensor)}

    def call():
        for leaf in leaves.values():
            leaf.grad = None  # not accumulated: each call allocates its gradients as the first did
        try:
            value = function(**tensors, reduction=reduction, **options)
        except (ValueError, RuntimeError, TypeError):
            return None
        if not grad:
            return {"loss": value.numpy()}
        (value.sum() if reduction == "none" else value).backward()
        outputs = {"loss": value.detach().numpy()}
        outputs.update((output, leaves[name].grad.numpy()) for output, name in
                       zip(kernel.gradients, kernel.differentiable) if name in leaves)
        return outputs
    return call


# ---------------------------------------------------------------------------------------------------
# The formulas, reduction "none"

def _index_rows(part):
    """(the input with the class axis last, targets with a unit last axis) of a cross-entropy or nll part with plain
    class indices, none ignored, and no other options than cross-entropy's z_loss and softcap
    (:func:`_lm_options`); None otherwise."""
    target = np.asarray(part["target"])
    if not set(part) <= {"input", "target", "z_loss", "softcap"} or target.dtype.kind not in "iu" or np.any(target < 0):
        return None
    return np.moveaxis(part["input"], _class_axis(part["input"]), -1), target[..., None]


def _lm_options(x, part):
    """cross_entropy's softcap and z_loss as written from their definitions: the capped logits
    c tanh(x/c) and the cap's derivative 1 - tanh^2 (x and 1 without a cap), and z."""
    softcap = part.get("softcap")
    if softcap is None:
        return x, 1.0, part.get("z_loss", 0.0)
    t = np.tanh(x / softcap)
    return softcap * t, 1 - t**2, part.get("z_loss", 0.0)


def _class_axis(x):
    return 1 if np.ndim(x) >= 2 else 0


def _minus_one_hot(p, y):
    """p_j - [j == y] along the last axis."""
    grad = p.copy()
    np.put_along_axis(grad, y, np.take_along_axis(p, y, -1) - 1, -1)
    return grad


@formula("textbook", "ce")
def _ce_textbook(part, grad):
    """lse - x_y with lse = log(sum(exp(x - max))) + max, + z lse^2; gradient softmax (1 + 2 z lse) - one_hot
    (of x' = c tanh(x/c) with a softcap, times 1 - tanh^2)."""
    rows = _index_rows(part)
    if rows is None:
        return None
    x, y = rows
    x, cap, z_loss = _lm_options(x, part)
    top = x.max(axis=-1, keepdims=True)
    e = np.exp(x - top)
    total = e.sum(axis=-1, keepdims=True)
    lse = np.log(total) + top
    loss = (lse - np.take_along_axis(x, y, -1) + z_loss * lse**2)[..., 0]
    if not grad:
        return {"loss": loss}
    gradient = _minus_one_hot(e / total * (1 + 2 * z_loss * lse), y) * cap
    return {"loss": loss, "grad": np.moveaxis(gradient, -1, _class_axis(part["input"]))}


@formula("scipy", "ce")
def _ce_scipy(part, grad):
    """scipy.special.logsumexp(x) - x_y (+ z lse^2); gradient scipy.special.softmax (1 + 2 z lse) - one_hot
    (of the capped logits with a softcap, times 1 - tanh^2)."""
    rows = _index_rows(part)
    if rows is None:
        return None
    special = optional("scipy.special")
    x, y = rows
    x, cap, z_loss = _lm_options(x, part)
    lse = special.logsumexp(x, axis=-1)
    loss = lse - np.take_along_axis(x, y, -1)[..., 0] + z_loss * lse**2
    if not grad:
        return {"loss": loss}
    gradient = _minus_one_hot(special.softmax(x, axis=-1) * (1 + 2 * z_loss * lse[..., None]), y) * cap
    return {"loss": loss, "grad": np.moveaxis(gradient, -1, _class_axis(part["input"]))}


@formula("textbook", "nll")
def _nll_textbook(part, grad):
    """-x_y; gradient -one_hot."""
    rows = _index_rows(part)
    if rows is None:
        return None
    x, y = rows
    loss = -np.take_along_axis(x, y, -1)[..., 0]
    if not grad:
        return {"loss": loss}
    return {"loss": loss, "grad": np.moveaxis(_minus_one_hot(np.zeros_like(x), y), -1, _class_axis(part["input"]))}


@formula("textbook", "bce")
def _bce_textbook(part, grad):
    """-(y log(sigmoid(x)) + (1 - y) log(1 - sigmoid(x))); gradient sigmoid(x) - y."""
    if set(part) != {"input", "target"}:
        return None
    x, y = part["input"], part["target"]
    s = 1 / (1 + np.exp(-x))
    loss = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    return {"loss": loss, "grad": s - y} if grad else {"loss": loss}


@formula("scipy", "bce")
def _bce_scipy(part, grad):
    """-(y log_expit(x) + (1 - y) log_expit(-x)); gradient expit(x) - y."""
    if set(part) != {"input", "target"}:
        return None
    special = optional("scipy.special")
    x, y = part["input"], part["target"]
    loss = -(y * special.log_expit(x) + (1 - y) * special.log_expit(-x))
    return {"loss": loss, "grad": special.expit(x) - y} if grad else {"loss": loss}


@formula("textbook", "focal")
def _focal_textbook(part, grad):
    """torchvision's formula: p = sigmoid(x), ce = max(x, 0) - x t + log1p(exp(-|x|)), q = 1 - (p t + (1 - p)
    (1 - t)), a_t ce q^gamma; gradient a_t (q^gamma (p - t) + gamma ce q^(gamma - 1) p (1 - p)(1 - 2t))."""
    x, t = part["inputs"], part["targets"]
    alpha, gamma = part.get("alpha", 0.25), part.get("gamma", 2.0)
    p = 1 / (1 + np.exp(-x))
    ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    q = 1 - (p * t + (1 - p) * (1 - t))
    a = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1
    loss = a * ce * q**gamma
    if not grad:
        return {"loss": loss}
    return {"loss": loss, "grad": a * (q**gamma * (p - t) + gamma * ce * q ** (gamma - 1) * p * (1 - p) * (1 - 2 * t))}


@formula("textbook", "gnll")
def _gnll_textbook(part, grad):
    """0.5 (log v + (x - t)^2 / v), v = max(var, eps) (+ 0.5 log(2 pi) if full); gradients (x - t) / v and
    0.5 (1/v - (x - t)^2 / v^2), the latter summed over the elements var is broadcast to."""
    x, t = part["input"], part["target"]
    var = np.asarray(part["var"], dtype=x.dtype)
    if var.shape == x.shape[:-1] and var.shape != x.shape:
        var = var[..., None]  # one variance per row
    v = np.maximum(var, part.get("eps", 1e-6))
    d = x - t
    loss = 0.5 * (np.log(v) + d**2 / v)
    if part.get("full", False):
        loss = loss + 0.5 * math.log(2 * math.pi)
    if not grad:
        return {"loss": loss}
    grad_var = np.broadcast_to(0.5 * (1 / v - d**2 / v**2), x.shape)
    grad_var = grad_var.sum(axis=tuple(range(x.ndim - var.ndim)))  # leading axes var does not have
    grad_var = grad_var.sum(axis=tuple(i for i, n in enumerate(var.shape) if n == 1), keepdims=True)
    return {"loss": loss, "grad_input": np.broadcast_to(d / v, x.shape),
            "grad_var": grad_var.reshape(np.shape(part["var"]))}


@formula("textbook", "kl")
def _kl_textbook(part, grad):
    """p (log p - input), gradient -p; with log_target p = exp(target): p (target - input)."""
    x, t = part["input"], part["target"]
    if part.get("log_target", False):
        p = np.exp(t)
        loss = p * (t - x)
    else:
        p = t
        loss = t * (np.log(t) - x)
    return {"loss": loss, "grad": -p} if grad else {"loss": loss}


@formula("scipy", "kl")
def _kl_scipy(part, grad):
    """scipy.special.rel_entr(p, exp(input)), gradient -p (no log_target)."""
    if part.get("log_target", False):
        return None
    loss = optional("scipy.special").rel_entr(part["target"], np.exp(part["input"]))
    return {"loss": loss, "grad": -part["target"]} if grad else {"loss": loss}


@formula("textbook", "mse")
def _mse_textbook(part, grad):
    """(x - t)^2, gradient 2 (x - t)."""
    if set(part) != {"input", "target"}:
        return None
    d = part["input"] - part["target"]
    return {"loss": d**2, "grad": 2 * d} if grad else {"loss": d**2}


#: The log-sum-exp family: each output and the function computing it (stableloss, scipy.special and
#: torch name them alike), along the class axis of a cross-entropy part.
LSE_FUNCTIONS = {"lse": "logsumexp", "log_softmax": "log_softmax", "softmax": "softmax"}


@formula("textbook", "lse")
def _lse_textbook(part, grad):
    """max + log(sum(exp(x - max))); log_softmax x - that; softmax exp(x - max) / sum."""
    x = part["input"]
    axis = _class_axis(x)
    top = x.max(axis=axis, keepdims=True)
    e = np.exp(x - top)
    total = e.sum(axis=axis, keepdims=True)
    lse = np.log(total) + top
    return {"lse": np.squeeze(lse, axis), "log_softmax": x - lse, "softmax": e / total}


@formula("scipy", "lse")
def _lse_scipy(part, grad):
    """scipy.special's logsumexp, log_softmax and softmax."""
    special = optional("scipy.special")
    axis = _class_axis(part["input"])
    return {output: getattr(special, name)(part["input"], axis=axis) for output, name in LSE_FUNCTIONS.items()}


@formula("torch", "lse")
def _lse_torch(part, grad):
    """torch's logsumexp, log_softmax and softmax."""
    torch = optional("torch")
    x = torch.from_numpy(np.array(part["input"]))
    dim = _class_axis(part["input"])
    return {output: getattr(torch, name)(x, dim=dim).numpy() for output, name in LSE_FUNCTIONS.items()}
