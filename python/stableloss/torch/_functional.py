"""The functions of stableloss.torch: ``torch.nn.functional``'s signatures, on the custom operators.

Each function checks what concerns tensors (device, which arguments require grad), casts half
precision to float32 (the kernels read float32 and float64), asks its operator for the gradients that
autograd will need (none in inference: ``torch.no_grad()`` or nothing requiring grad) and returns the
loss in the input's dtype.  Values, shapes and reductions are checked by the numpy API inside the
operator, with the same messages.
"""

import numbers
import warnings

import torch
from torch.nn import _reduction

from . import _ops

#: Computed in float32 and returned in the input's dtype (until the kernels read half precision).
_HALF = (torch.float16, torch.bfloat16)


def _reduction_of(size_average, reduce, reduction):
    """``reduction``, or the one the deprecated ``size_average``/``reduce`` spell (with torch's warning)."""
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce)
    return reduction


def _on_cpu(func, **tensors):
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.device.type != "cpu":
            raise RuntimeError(f"stableloss.torch.{func}: {name} is on {tensor.device}; stableloss computes on "
                               f"the CPU (move the tensors with .cpu(), or use torch.nn.functional.{func} on "
                               f"{tensor.device.type})")


def _no_grad_for(func, differentiable, **tensors):
    """Refuse a tensor that requires grad where the operator gives no gradient (it would silently get none)."""
    if not torch.is_grad_enabled():
        return
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            raise RuntimeError(f"stableloss.torch.{func}: {name} requires grad, but stableloss gives gradients "
                               f"only w.r.t. {differentiable}; detach {name} or use torch.nn.functional.{func}")


def _wants(tensor):
    """Whether autograd will need the gradient w.r.t. ``tensor``."""
    return isinstance(tensor, torch.Tensor) and tensor.requires_grad and torch.is_grad_enabled()


def _kernel_dtype(tensor, input_dtype):
    """A float argument in the dtype the kernels read: float32 for a half-precision input."""
    if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and input_dtype in _HALF:
        return tensor.float()
    return tensor


def _prepare(func, input, **others):
    """The input and the other tensors as the operator takes them, after the device check."""
    _on_cpu(func, input=input, **others)
    return _kernel_dtype(input, input.dtype), {name: _kernel_dtype(t, input.dtype) for name, t in others.items()}


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0, *, backend=None):
    """:func:`torch.nn.functional.cross_entropy` on the stableloss kernels (:func:`stableloss.cross_entropy`).

    Differentiable w.r.t. ``input``; the loss keeps full relative accuracy where torch rounds it to 0.
    """
    func = "cross_entropy"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input", target=target, weight=weight)
    loss, _ = _ops.cross_entropy(x, other["target"], other["weight"], ignore_index, reduction, label_smoothing,
                                 backend or "", _wants(x))
    return loss.to(input.dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None, *, backend=None):
    """:func:`torch.nn.functional.binary_cross_entropy_with_logits` on the stableloss kernels
    (:func:`stableloss.binary_cross_entropy_with_logits`).  Differentiable w.r.t. ``input``."""
    func = "binary_cross_entropy_with_logits"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight, pos_weight=pos_weight)
    _no_grad_for(func, "input", target=target, weight=weight, pos_weight=pos_weight)
    loss, _ = _ops.binary_cross_entropy_with_logits(x, other["target"], other["weight"], reduction,
                                                    other["pos_weight"], backend or "", _wants(x))
    return loss.to(input.dtype)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean", *, backend=None):
    """:func:`torch.nn.functional.gaussian_nll_loss` on the stableloss kernels
    (:func:`stableloss.gaussian_nll_loss`).  Differentiable w.r.t. ``input`` and ``var``."""
    func = "gaussian_nll_loss"
    var_value = 0.0
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        var, var_value = None, float(var)
    x, other = _prepare(func, input, target=target, var=var)
    _no_grad_for(func, "input and var", target=target)
    loss, _, _ = _ops.gaussian_nll_loss(x, other["target"], other["var"], var_value, full, eps, reduction,
                                        backend or "", _wants(x), _wants(other["var"]))
    return loss.to(input.dtype)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False, *, backend=None):
    """:func:`torch.nn.functional.kl_div` on the stableloss kernels (:func:`stableloss.kl_div`).

    Differentiable w.r.t. ``input`` (from the kernel) and ``target`` (its formula, evaluated in backward
    only where the target requires grad).  ``reduction="mean"`` warns as torch does.
    """
    func = "kl_div"
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target)
    loss, _ = _ops.kl_div(x, other["target"], reduction, log_target, backend or "", _wants(x))
    return loss.to(input.dtype)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, backend=None):
    """:func:`torch.nn.functional.mse_loss` on the stableloss kernels (:func:`stableloss.mse_loss`).
    Differentiable w.r.t. ``input`` and ``target``."""
    func = "mse_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input and target", weight=weight)
    loss, _ = _ops.mse_loss(x, other["target"], reduction, other["weight"], backend or "",
                            _wants(x) or _wants(other["target"]))
    return loss.to(input.dtype)


def logsumexp(input, dim, keepdim=False, *, backend=None):
    """:func:`torch.logsumexp` on the stableloss kernels (:func:`stableloss.logsumexp`); ``dim`` an int
    or a sequence of ints.  Differentiable w.r.t. ``input`` (the gradient is the softmax the kernel
    wrote in the same call)."""
    _on_cpu("logsumexp", input=input)
    x = _kernel_dtype(input, input.dtype)
    dims = sorted(d % max(x.dim(), 1) for d in ((dim,) if isinstance(dim, int) else dim))
    if len(dims) == 1:
        value, _ = _ops.logsumexp(x, dims[0], keepdim, backend or "", _wants(x))
        return value.to(input.dtype)
    # several dims: moved last and flattened into one (views, through which autograd goes as usual)
    kept = [d for d in range(x.dim()) if d not in dims]
    rows = x.permute(*kept, *dims).reshape(*(x.shape[d] for d in kept), -1)
    value, _ = _ops.logsumexp(rows, rows.dim() - 1, False, backend or "", _wants(rows))
    if keepdim:
        for d in dims:
            value = value.unsqueeze(d)
    return value.to(input.dtype)


def _softmax_dim(func, input, dim, stacklevel, dtype):
    """The input (cast to ``dtype`` if given) and the dim: torch's implicit choice, with its warning,
    where ``dim`` is None."""
    _on_cpu(func, input=input)
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = torch.nn.functional._get_softmax_dim(func, input.dim(), stacklevel + 1)
    return input, dim


def log_softmax(input, dim=None, _stacklevel=3, dtype=None, *, backend=None):
    """:func:`torch.nn.functional.log_softmax` on the stableloss kernels (:func:`stableloss.log_softmax`).
    Differentiable w.r.t. ``input`` (the backward uses the softmax written in the same call)."""
    input, dim = _softmax_dim("log_softmax", input, dim, _stacklevel, dtype)
    x = _kernel_dtype(input, input.dtype)
    out, _ = _ops.log_softmax(x, dim, backend or "", _wants(x))
    return out.to(input.dtype)


def softmax(input, dim=None, _stacklevel=3, dtype=None, *, backend=None):
    """:func:`torch.nn.functional.softmax` on the stableloss kernels (:func:`stableloss.softmax`).
    Differentiable w.r.t. ``input``."""
    input, dim = _softmax_dim("softmax", input, dim, _stacklevel, dtype)
    return _ops.softmax(_kernel_dtype(input, input.dtype), dim, backend or "").to(input.dtype)
