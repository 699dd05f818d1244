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

from .. import _validate as check
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
        if isinstance(tensor, torch.Tensor) and not tensor.is_cpu:
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


def _in_dtype(tensor, dtype):
    """``tensor`` in ``dtype`` (itself where it has it: ``Tensor.to`` costs microseconds even then)."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


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
                  label_smoothing=0.0, *, z_loss=0.0, softcap=None, return_lse=False, backend=None):
    r"""Cross-entropy of logit tensors: :func:`torch.nn.functional.cross_entropy` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        Logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` on the CPU, float32 or float64 (float16
        and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Class indices (an integer tensor) or class probabilities (the input's shape).
    weight : Tensor, optional
        Per-class weights ``(C,)``.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    ignore_index : int, default -100
    reduction : {"mean", "sum", "none"}
    label_smoothing : float, default 0.0
    z_loss : float, default 0.0
        Adds ``z_loss * lse**2`` per row (:func:`stableloss.cross_entropy`).
    softcap : float, optional
        Caps the logits as ``softcap * tanh(input / softcap)`` first.
    return_lse : bool, default False
        Also return each row's log-sum-exp (of the capped logits), detached: no gradient flows through
        it (the z-loss's gradient comes with ``z_loss``).
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input``; with ``return_lse``,
        ``(loss, lse)``.

    Notes
    -----
    :math:`L = -w_y \log p_y` with :math:`p = \operatorname{softmax}(x)`, gradient
    :math:`w_y (p_j - [j = y])` (with label smoothing, probability targets, the z-loss and the softcap as
    :func:`stableloss.cross_entropy` details, with its stable rewrite), from the same kernel call as
    the loss; backward scales the saved gradient.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> x = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = F.cross_entropy(x, torch.tensor([0]))
    >>> loss.backward()
    >>> loss.item(), x.grad[0, 1].item()  # torch.nn.functional gives 0.0 and 0.0
    (8.4967...e-18, 4.2483...e-18)
    """
    func = "cross_entropy"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input", target=target, weight=weight)
    loss, _, lse = _ops.cross_entropy(x, other["target"], other["weight"], ignore_index, reduction, label_smoothing,
                                      z_loss, softcap, backend or "", _wants(x), return_lse)
    return (_in_dtype(loss, input.dtype), _in_dtype(lse, input.dtype)) if return_lse else _in_dtype(loss, input.dtype)


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, options=None, backend=None):
    r"""Cross-entropy of a linear layer's logits: :func:`torch.nn.functional.linear_cross_entropy`, chunked.

    ``input @ linear_weight.T + linear_bias`` a chunk of rows at a time, the ``(N, V)`` logits never
    held whole.

    Parameters
    ----------
    input : Tensor
        Features ``(D,)`` or ``(N, D)`` (leading dimensions are flattened) on the CPU, float32 or float64
        (float16 and bfloat16 compute in float32).  Differentiable.
    linear_weight : Tensor
        ``(V, D)``.  Differentiable.
    target : Tensor
        Class indices ``input.shape[:-1]`` or class probabilities ``input.shape[:-1] + (V,)``.
    linear_bias : Tensor, optional
        ``(V,)``.  Differentiable.
    weight : Tensor, optional
        Per-class weights ``(V,)``.
    reduction : {"mean", "sum", "none"}
    ignore_index : int, optional
        Default (None): -100, as torch maps it.
    label_smoothing : float, default 0.0
    options : torch.nn.LinearCrossEntropyOptions, optional
        Only its ``batch_chunk_size`` is read, as the rows per chunk; the computation is always chunked
        (by default chunks of 60 MiB of buffers).
    backend : {"c", "numba", "numpy"}, optional
        The backend of the cross-entropy step.  Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input``, ``linear_weight`` and ``linear_bias``.

    Notes
    -----
    :func:`stableloss.linear_cross_entropy` computes the loss and the three gradients in one pass (logits
    by a BLAS product per chunk, the stable cross-entropy kernel on them, two more products); backward
    scales them.  With ``reduction="none"`` the incoming gradient must be the same for every row (as for
    ``loss.sum()``): the gradients are those of the sum.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    >>> loss = F.linear_cross_entropy(x, w, torch.tensor([2, 1]))
    >>> loss.backward()
    >>> round(loss.item(), 4), tuple(w.grad.shape)
    (0.8103, (3, 2))
    """
    func = "linear_cross_entropy"
    x, other = _prepare(func, input, linear_weight=linear_weight, target=target, linear_bias=linear_bias,
                        weight=weight)
    _no_grad_for(func, "input, linear_weight and linear_bias", target=target, weight=weight)
    chunk_size = getattr(options, "batch_chunk_size", None) or 0
    want = _wants(x) or _wants(other["linear_weight"]) or _wants(other["linear_bias"])
    loss, *_ = _ops.linear_cross_entropy(x, other["linear_weight"], other["target"], other["linear_bias"],
                                         other["weight"], reduction, -100 if ignore_index is None else ignore_index,
                                         label_smoothing, chunk_size, backend or "", want)
    return _in_dtype(loss, input.dtype)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean", *,
             backend=None):
    r"""NLL of log-probability tensors: :func:`torch.nn.functional.nll_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        Log-probabilities ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` on the CPU, float32 or float64
        (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Class indices (an integer tensor), the input's shape without the class axis.
    weight : Tensor, optional
        Per-class weights ``(C,)``.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    ignore_index : int, default -100
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`\ell = -w_y x_y`, gradient :math:`-w_y` at the target and 0 elsewhere (divided by the summed
    weights for ``mean``), as :func:`stableloss.nll_loss`: each row read at its target only, the gradient
    from the same kernel call; backward scales the saved gradient.  After :func:`log_softmax` it is the
    stable cross-entropy.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> x = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = F.nll_loss(F.log_softmax(x, 1), torch.tensor([0]))
    >>> loss.backward()
    >>> loss.item(), x.grad[0, 1].item()  # torch.nn.functional gives 0.0 and 0.0
    (8.4967...e-18, 4.2483...e-18)
    """
    func = "nll_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input", target=target, weight=weight)
    loss, _ = _ops.nll_loss(x, other["target"], other["weight"], ignore_index, reduction, backend or "", _wants(x))
    return _in_dtype(loss, input.dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None, *, backend=None):
    r"""BCE of logit tensors: :func:`torch.nn.functional.binary_cross_entropy_with_logits`, stableloss's kernels.

    Parameters
    ----------
    input : Tensor
        Logits on the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Labels in [0, 1], the input's shape.
    weight : Tensor, optional
        Broadcastable to the input.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
    pos_weight : Tensor, optional
        Weight of the positive term, broadcastable to the input (class axis last).
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`\ell = w\,[\omega y\,\operatorname{sp}(-x) + (1 - y)\,\operatorname{sp}(x)]`, gradient
    :math:`w\,[(1 - y)\sigma(x) - \omega y\,\sigma(-x)]`, as :func:`stableloss.binary_cross_entropy_with_logits`
    (a sum of non-negative terms; the limits at :math:`x = \pm\infty`).

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.binary_cross_entropy_with_logits(torch.tensor([-40.0]), torch.tensor([0.0])).item()
    4.2483...e-18
    """
    func = "binary_cross_entropy_with_logits"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight, pos_weight=pos_weight)
    _no_grad_for(func, "input", target=target, weight=weight, pos_weight=pos_weight)
    loss, _ = _ops.binary_cross_entropy_with_logits(x, other["target"], other["weight"], reduction,
                                                    other["pos_weight"], backend or "", _wants(x))
    return _in_dtype(loss, input.dtype)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean", *, backend=None):
    r"""Gaussian NLL of tensors: :func:`torch.nn.functional.gaussian_nll_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        Predicted means on the CPU, float32 or float64 (float16 and bfloat16 compute in float32).
        Differentiable.
    target : Tensor
        Observations, broadcastable to the input.
    var : Tensor or float
        Variances in PyTorch's shapes (the input's; without its last dimension; with one dimension of
        size 1), or a Python float.  Differentiable.
    full : bool, default False
    eps : float, default 1e-6
    reduction : {"mean", "sum", "none"}
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``var``.

    Notes
    -----
    With :math:`v = \max(\mathrm{var}, \epsilon)` and :math:`d = \mu - t`:
    :math:`\ell = \tfrac12(\log v + d^2/v)`, gradients :math:`d/v` and
    :math:`\tfrac12(1/v - d^2/v^2)` (straight through the clamp), as :func:`stableloss.gaussian_nll_loss`.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.gaussian_nll_loss(torch.tensor([1e200], dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
    ...                     torch.tensor([1e300], dtype=torch.float64)).item()  # torch: inf
    5e+99
    """
    func = "gaussian_nll_loss"
    var_value = 0.0
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        var, var_value = None, float(var)
    x, other = _prepare(func, input, target=target, var=var)
    _no_grad_for(func, "input and var", target=target)
    loss, _, _ = _ops.gaussian_nll_loss(x, other["target"], other["var"], var_value, full, eps, reduction,
                                        backend or "", _wants(x), _wants(other["var"]))
    return _in_dtype(loss, input.dtype)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False, *, backend=None):
    r"""KL divergence of tensors: :func:`torch.nn.functional.kl_div` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        Log-probabilities :math:`\log q` on the CPU, float32 or float64 (float16 and bfloat16 compute in
        float32).  Differentiable.
    target : Tensor
        Probabilities :math:`p` (or :math:`\log p` with ``log_target``), broadcastable to the input.
        Differentiable.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "batchmean", "sum", "none"}
        ``"mean"`` warns as torch does (``"batchmean"`` is the divergence per sample).
    log_target : bool, default False
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``target``.

    Notes
    -----
    :math:`\ell = p(\log p - \log q)`, gradient :math:`-p` w.r.t. the input (from the kernel) and
    :math:`\log p + 1 - \log q` w.r.t. ``target`` (:math:`e^{\log p}(\log p + 1 - \log q)` with
    ``log_target``; evaluated in backward, only where the target requires grad).  A term with
    :math:`p = 0` is 0 with gradient 0 also against :math:`\log q = -\infty`, as :func:`stableloss.kl_div`.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.kl_div(torch.tensor([[-float("inf"), 0.0]]), torch.tensor([[0.0, 1.0]]), reduction="batchmean").item()
    0.0
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
    return _in_dtype(loss, input.dtype)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, backend=None):
    r"""Mean squared error of tensors: :func:`torch.nn.functional.mse_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Broadcastable to the input.  Differentiable.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
    weight : Tensor, optional
        Element weights of the input's shape.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``target``.

    Notes
    -----
    :math:`\ell = w (x - t)^2`, gradient :math:`2 w (x - t)` w.r.t. the input and its opposite w.r.t.
    the target, as :func:`stableloss.mse_loss` (the square formed without overflow in float32).

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.mse_loss(torch.tensor([1e19]), torch.zeros(1)).item()  # torch: inf
    9.9999996...e+37
    """
    func = "mse_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input and target", weight=weight)
    loss, _ = _ops.mse_loss(x, other["target"], reduction, other["weight"], backend or "",
                            _wants(x) or _wants(other["target"]))
    return _in_dtype(loss, input.dtype)



def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean", *, backend=None):
    r"""Poisson NLL of tensors: :func:`torch.nn.functional.poisson_nll_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        Log-rates (``log_input=True``) or rates on the CPU, float32 or float64 (float16 and bfloat16 compute
        in float32).  Differentiable.
    target : Tensor
        Counts, broadcastable to the input.
    log_input : bool, default True
    full : bool, default False
        Add the Stirling term where the target exceeds 1.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    eps : float, default 1e-8
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`\ell = e^x - t x` (or :math:`x - t \log(x + \epsilon)`), gradient :math:`e^x - t` (or
    :math:`1 - t/(x + \epsilon)`), as :func:`stableloss.poisson_nll_loss`: every value to its relative
    accuracy where the terms cancel, ``full`` without the cancellation of :math:`t \log t` against
    :math:`t x`.  The target is data (counts): one that requires grad is refused.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> t = torch.tensor([1e15], dtype=torch.float64)
    >>> F.poisson_nll_loss(t.log(), t, full=True).item()  # torch: 20.0
    18.18832...
    """
    func = "poisson_nll_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target)
    _no_grad_for(func, "input", target=target)
    loss, _ = _ops.poisson_nll_loss(x, other["target"], log_input, full, eps, reduction, backend or "", _wants(x))
    return _in_dtype(loss, input.dtype)

def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, backend=None):
    r"""Mean absolute error of tensors: :func:`torch.nn.functional.l1_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Broadcastable to the input.  Differentiable.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
        With ``weight``, ``mean`` divides by the weights' sum, as torch.
    weight : Tensor, optional
        Element weights of the input's shape.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``target``.

    Notes
    -----
    :math:`\ell = w |x - t|`, gradient :math:`w \operatorname{sign}(x - t)` w.r.t. the input (0 at
    :math:`x = t`) and its opposite w.r.t. the target, as :func:`stableloss.l1_loss` (finite where
    :math:`x - t` overflows but the weighted loss does not).

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.l1_loss(torch.tensor([3e38]), torch.tensor([-3e38]), weight=torch.tensor([0.25]), reduction="sum")
    tensor(1.5000e+38)
    """
    func = "l1_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input and target", weight=weight)
    loss, _ = _ops.l1_loss(x, other["target"], reduction, other["weight"], backend or "",
                           _wants(x) or _wants(other["target"]))
    return _in_dtype(loss, input.dtype)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0, *, backend=None):
    r"""Smooth L1 loss of tensors: :func:`torch.nn.functional.smooth_l1_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Broadcastable to the input.  Differentiable.
    size_average : bool, optional
        Deprecated, as in torch: sets ``reduction`` together with ``reduce``.
    reduce : bool, optional
        Deprecated, as in torch.
    reduction : {"mean", "sum", "none"}
    beta : float >= 0, default 1.0
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``target``.

    Notes
    -----
    :math:`d^2/(2\beta)` where :math:`|d| < \beta`, else :math:`|d| - \beta/2`, :math:`d = x - t`, as
    :func:`stableloss.smooth_l1_loss`; the target's gradient is the opposite of the input's.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.smooth_l1_loss(torch.tensor([3e-21]), torch.zeros(1), beta=1e-10).item()  # torch: 4.4996e-32
    4.49999...e-32
    """
    func = "smooth_l1_loss"
    reduction = _reduction_of(size_average, reduce, reduction)
    x, other = _prepare(func, input, target=target)
    loss, _ = _ops.smooth_l1_loss(x, other["target"], reduction, beta, backend or "",
                                  _wants(x) or _wants(other["target"]))
    return _in_dtype(loss, input.dtype)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None, *, backend=None):
    r"""Huber loss of tensors: :func:`torch.nn.functional.huber_loss` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    target : Tensor
        Broadcastable to the input.  Differentiable.
    reduction : {"mean", "sum", "none"}
        With ``weight``, ``mean`` divides by the number of elements, as torch.
    delta : float > 0, default 1.0
    weight : Tensor, optional
        Element weights of the input's shape.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``input`` and ``target``.

    Notes
    -----
    :math:`w d^2/2` where :math:`|d| < \delta`, else :math:`w \delta (|d| - \delta/2)`, :math:`d = x - t`,
    as :func:`stableloss.huber_loss`; the target's gradient is the opposite of the input's.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.huber_loss(torch.tensor([3e19]), torch.zeros(1), delta=1e20, weight=torch.tensor([0.5]))  # torch: inf
    tensor(2.2500e+38)
    """
    func = "huber_loss"
    x, other = _prepare(func, input, target=target, weight=weight)
    _no_grad_for(func, "input and target", weight=weight)
    loss, _ = _ops.huber_loss(x, other["target"], reduction, delta, other["weight"], backend or "",
                              _wants(x) or _wants(other["target"]))
    return _in_dtype(loss, input.dtype)

def logsumexp(input, dim, keepdim=False, *, backend=None):
    r"""Log of the sum of exponentials along dims: :func:`torch.logsumexp` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    dim : int or sequence of int
    keepdim : bool, default False
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        In the input's dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`a + \operatorname{log1p}(\sum_{j \ne k} e^{x_j - a})` with :math:`a = x_k` the maximum, as
    :func:`stableloss.logsumexp`; the gradient, the softmax, comes from the same kernel call.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.logsumexp(torch.tensor([[0.0, -40.0], [-float("inf"), -float("inf")]], dtype=torch.float64), 1)
    tensor([4.2484e-18,       -inf], dtype=torch.float64)
    """
    _on_cpu("logsumexp", input=input)
    x = _kernel_dtype(input, input.dtype)
    dims = sorted(d % max(x.dim(), 1) for d in ((dim,) if isinstance(dim, int) else dim))
    if len(dims) == 1:
        value, _ = _ops.logsumexp(x, dims[0], keepdim, backend or "", _wants(x))
        return _in_dtype(value, input.dtype)
    # several dims: moved last and flattened into one (views, through which autograd goes as usual)
    kept = [d for d in range(x.dim()) if d not in dims]
    rows = x.permute(*kept, *dims).reshape(*(x.shape[d] for d in kept), -1)
    value, _ = _ops.logsumexp(rows, rows.dim() - 1, False, backend or "", _wants(rows))
    if keepdim:
        for d in dims:
            value = value.unsqueeze(d)
    return _in_dtype(value, input.dtype)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none", *, backend=None):
    r"""Sigmoid focal loss of tensors: ``torchvision.ops.sigmoid_focal_loss`` on the stableloss kernels.

    Parameters
    ----------
    inputs : Tensor
        Logits on the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    targets : Tensor
        Labels in [0, 1], the shape of ``inputs``.
    alpha : float, default 0.25
        Weight of the positives in [0, 1]; negative: no weighting.
    gamma : float, default 2.0
        Exponent of the modulating factor, finite and >= 0.
    reduction : {"none", "mean", "sum"}
        Default ``"none"``, as torchvision.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The loss in the input's dtype, differentiable w.r.t. ``inputs``.

    Notes
    -----
    :math:`\ell = \alpha_t\, c\, q^\gamma` with :math:`c` the BCE with logits and :math:`q = 1 - p_t`,
    gradient :math:`\alpha_t (q^\gamma (\sigma(x) - t) + \gamma c q^{\gamma - 1} \sigma(x)\sigma(-x)(1 - 2t))`,
    as :func:`stableloss.sigmoid_focal_loss` (:math:`q` a sum of non-negative terms, :math:`q^\gamma` from
    an exact :math:`\log q`; the derivative where torch's autograd of torchvision's formula gives NaN).

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> x = torch.tensor([100.0], dtype=torch.float64, requires_grad=True)
    >>> F.sigmoid_focal_loss(x, torch.ones(1, dtype=torch.float64), gamma=0.5).sum().backward()
    >>> x.grad.item()  # torchvision: nan
    -2.690660989936...e-66
    """
    func = "sigmoid_focal_loss"
    _on_cpu(func, inputs=inputs, targets=targets)
    _no_grad_for(func, "inputs", targets=targets)
    x = _kernel_dtype(inputs, inputs.dtype)
    loss, _ = _ops.sigmoid_focal_loss(x, _kernel_dtype(targets, inputs.dtype), check.focal_alpha(func, alpha),
                                      check.focal_gamma(func, gamma), reduction, backend or "", _wants(x))
    return _in_dtype(loss, inputs.dtype)



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
    r"""Log-softmax along a dim: :func:`torch.nn.functional.log_softmax` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    dim : int, optional
        None: torch's implicit choice, with its warning.
    _stacklevel : int, default 3
        As in torch (the warning's stack level).
    dtype : torch.dtype, optional
        Cast the input to it first, as torch does.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The input's shape and dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`z_j - \operatorname{log1p}(s)` (:func:`stableloss.log_softmax`); the gradient
    :math:`g_j - p_j \sum_i g_i` uses the softmax :math:`p` the kernel wrote in the same call.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.log_softmax(torch.tensor([40.0, 0.0], dtype=torch.float64), 0)
    tensor([-4.2484e-18, -4.0000e+01], dtype=torch.float64)
    """
    input, dim = _softmax_dim("log_softmax", input, dim, _stacklevel, dtype)
    x = _kernel_dtype(input, input.dtype)
    out, _ = _ops.log_softmax(x, dim, backend or "", _wants(x))
    return _in_dtype(out, input.dtype)


def softmax(input, dim=None, _stacklevel=3, dtype=None, *, backend=None):
    r"""Softmax along a dim: :func:`torch.nn.functional.softmax` on the stableloss kernels.

    Parameters
    ----------
    input : Tensor
        On the CPU, float32 or float64 (float16 and bfloat16 compute in float32).  Differentiable.
    dim : int, optional
        None: torch's implicit choice, with its warning.
    _stacklevel : int, default 3
        As in torch (the warning's stack level).
    dtype : torch.dtype, optional
        Cast the input to it first, as torch does.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`stableloss.available_backends`.

    Returns
    -------
    Tensor
        The input's shape and dtype, differentiable w.r.t. ``input``.

    Notes
    -----
    :math:`e^{z_j}/(1 + s)` (:func:`stableloss.softmax`); the gradient
    :math:`p_j (g_j - \sum_i g_i p_i)` uses the saved output.

    Examples
    --------
    >>> import torch
    >>> import stableloss.torch as F
    >>> F.softmax(torch.tensor([0.0, 3.0]).log(), 0)
    tensor([0., 1.])
    """
    input, dim = _softmax_dim("softmax", input, dim, _stacklevel, dtype)
    return _in_dtype(_ops.softmax(_kernel_dtype(input, input.dtype), dim, backend or ""), input.dtype)
