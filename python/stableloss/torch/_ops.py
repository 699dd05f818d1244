"""The custom operators behind stableloss.torch, one per public function (``stableloss::<name>``).

Each operator calls the numpy API on views of its CPU tensors (``Tensor.numpy()``, no copy) and returns
the loss followed by one gradient per differentiable argument, all from the same kernel call, as
tensors viewing the numpy results (``torch.from_numpy``, no copy).  A gradient is that of the returned
(reduced) loss, or of its sum for ``reduction="none"``; where its ``want`` flag is False the kernel
computes none and the operator returns an empty tensor in its place.  ``backend`` is a backend name,
or "" for the default.

Registered as custom operators, with a fake implementation giving the output shapes, so that
``torch.compile(fullgraph=True)`` traces them as single nodes; in eager mode the same implementation,
context and backward run as an ``autograd.Function``, whose Python dispatch costs about 60 us less per
call than the custom operator's (and needs no ``torch._dynamo`` import).  The autograd formula scales
the saved gradients by the incoming one (no second pass over the data; no pass at all for the 1 of
``loss.backward()``).  The gradients are constants of the graph, so a second derivative would be
silently wrong: a backward run with ``create_graph=True`` raises instead.
"""

import numpy as np
import torch

import stableloss
from stableloss import _api, _validate as check


def _array(tensor):
    """A tensor's numpy view (None stays None)."""
    return None if tensor is None else tensor.detach().numpy()


def _tensor(array):
    """A numpy result as a tensor viewing it (a reduced loss: a 0-d tensor)."""
    return torch.from_numpy(np.asarray(array))


def _empty(like):
    """The stand-in for a gradient that was not wanted."""
    return like.new_empty(0)


def _loss_and_grad(result, want_grad, input):
    """The operator's outputs from a numpy API result, ``loss`` or ``(loss, grad)`` by ``want_grad``."""
    return (_tensor(result[0]), _tensor(result[1])) if want_grad else (_tensor(result), _empty(input))


class _Operator:
    """One operator, called like a function: the custom operator ``stableloss::<name>`` where
    torch.compile traces, an ``autograd.Function`` with the same parts in eager mode."""

    def __init__(self, name, schema, impl, fake, backward, setup_context):
        def checked_backward(ctx, grad, *unused):
            """``backward``, after the first-order check; no gradients for an undefined incoming one."""
            _first_order(name)
            return (None,) * len(ctx.needs_input_grad) if grad is None else backward(ctx, grad, *unused)

        self.custom_op = torch.library.custom_op(f"stableloss::{name}", impl, mutates_args=(), schema=schema)
        self.custom_op.register_fake(fake)
        self.custom_op.register_autograd(checked_backward, setup_context=setup_context)

        def forward(ctx, *args):
            output = impl(*args)
            setup_context(ctx, args, output)
            return output

        self.eager = type(name, (torch.autograd.Function,),
                          {"forward": staticmethod(forward), "backward": staticmethod(checked_backward)})

    def __call__(self, *args):
        return self.custom_op(*args) if torch.compiler.is_compiling() else self.eager.apply(*args)


def _define(name, schema, impl, fake, backward, setup_context):
    return _Operator(name, schema, impl, fake, backward, setup_context)


def _first_order(name):
    """Refuse a backward pass that builds a graph (``create_graph=True``): the saved gradients are
    constants, so the second-order terms would be silently missing."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"stableloss.torch.{name}: double backward (create_graph=True) is not supported: "
                           f"the gradient comes from the fused kernel as a value, without a graph of its own; "
                           f"use torch.nn.functional.{name} where second derivatives are needed")


def _save(ctx, inputs, names, saved, keep=()):
    """setup_context of every operator: the tensors ``saved`` for backward (gradients of the outputs,
    or an output), then the input tensors named in ``keep`` (only those: a kept input, such as the logits,
    would otherwise live until backward); the scalar arguments by name, and every tensor's shape and
    dtype."""
    ctx.set_materialize_grads(False)  # the gradients' outputs get None, not a zero tensor each
    ctx.args, ctx.shapes, ctx.dtypes = {}, {}, {}
    kept = []
    for name, value in zip(names, inputs):
        if isinstance(value, torch.Tensor):
            ctx.shapes[name], ctx.dtypes[name] = value.shape, value.dtype
            if name in keep:
                kept.append(value)
        else:
            ctx.args[name] = value
    ctx.save_for_backward(*saved, *kept)


def _save_grads(names, keep=lambda inputs: (), extras=0):
    """The setup_context of an operator whose outputs after the loss are gradients (never
    differentiated themselves), then ``extras`` other outputs (returned, not saved); ``keep(inputs)``
    names the inputs its backward also needs."""
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output[1:])
        _save(ctx, inputs, names, output[1:len(output) - extras], keep(inputs))
    return setup_context


def _scaled(grad, grad_loss, dtype):
    """The saved gradient ``grad`` times the incoming one (already aligned with it), in ``dtype``; the
    saved gradient itself for the 1 of ``loss.backward()`` (autograd copies it where it must, e.g. when
    the graph is kept for another backward)."""
    if grad_loss.dim() != 0 or torch.compiler.is_compiling() or grad_loss.item() != 1:
        grad = grad * grad_loss
    return grad if grad.dtype == dtype else grad.to(dtype)


def _reduced_shape(reduction, shape):
    return shape if reduction == "none" else ()


# ---------------------------------------------------------------------------------------------------
# cross_entropy

_CE = ("input", "target", "weight", "ignore_index", "reduction", "label_smoothing", "z_loss", "softcap", "backend",
       "want_input", "want_lse")


def _ce_impl(input, target, weight, ignore_index, reduction, label_smoothing, z_loss, softcap, backend, want_input,
             want_lse):
    result = stableloss.cross_entropy(_array(input), _array(target), _array(weight), ignore_index, reduction,
                                      label_smoothing, z_loss=z_loss, softcap=softcap, backend=backend or None,
                                      return_grad=want_input, return_lse=want_lse)
    loss, *rest = result if want_input or want_lse else (result,)
    return (_tensor(loss), _tensor(rest[0]) if want_input else _empty(input),
            _tensor(rest[-1]) if want_lse else _empty(input))


def _positions(input):
    """The shape of the per-position losses over the class axis: the input's without it (1, or 0 for (C,))."""
    return input.shape[:1] + input.shape[2:] if input.dim() >= 2 else ()


def _class_axis_fake(input, reduction, want_input):
    """The loss's and the gradient's shapes of a loss over the class axis (cross_entropy, nll_loss)."""
    return (input.new_empty(_reduced_shape(reduction, _positions(input))),
            input.new_empty(input.shape) if want_input else _empty(input))


def _class_axis_backward(names):
    """The backward of a loss over the class axis whose arguments are ``names``: the saved gradient of
    the input scaled, per position for reduction="none" (further outputs, cross_entropy's lse, carry no
    gradient)."""
    def backward(ctx, grad_loss, *_):
        (grad,) = ctx.saved_tensors
        if ctx.args["reduction"] == "none" and len(ctx.shapes["input"]) >= 2:
            grad_loss = grad_loss.unsqueeze(1)  # one loss per position, along the class axis
        return (_scaled(grad, grad_loss, ctx.dtypes["input"]),) + (None,) * (len(names) - 1)
    return backward


cross_entropy = _define(
    "cross_entropy",
    "(Tensor input, Tensor target, Tensor? weight, int ignore_index, str reduction, float label_smoothing, "
    "float z_loss, float? softcap, str backend, bool want_input, bool want_lse) -> (Tensor, Tensor, Tensor)",
    _ce_impl,
    lambda input, target, weight, ignore_index, reduction, label_smoothing, z_loss, softcap, backend, want, want_lse: (
        *_class_axis_fake(input, reduction, want), input.new_empty(_positions(input)) if want_lse else _empty(input)),
    _class_axis_backward(_CE), _save_grads(_CE, extras=1))


# ---------------------------------------------------------------------------------------------------
# nll_loss

_NLL = ("input", "target", "weight", "ignore_index", "reduction", "backend", "want_input")


def _nll_impl(input, target, weight, ignore_index, reduction, backend, want_input):
    result = stableloss.nll_loss(_array(input), _array(target), _array(weight), ignore_index, reduction,
                                 backend=backend or None, return_grad=want_input)
    return _loss_and_grad(result, want_input, input)


nll_loss = _define(
    "nll_loss",
    "(Tensor input, Tensor target, Tensor? weight, int ignore_index, str reduction, str backend, bool want_input) "
    "-> (Tensor, Tensor)",
    _nll_impl, lambda input, target, weight, ignore_index, reduction, backend, want: _class_axis_fake(
        input, reduction, want),
    _class_axis_backward(_NLL), _save_grads(_NLL))


# ---------------------------------------------------------------------------------------------------
# linear_cross_entropy: gradients for the input, the linear weight and bias, from one chunked pass

_LINEAR_CE = ("input", "linear_weight", "target", "linear_bias", "weight", "reduction", "ignore_index",
              "label_smoothing", "chunk_size", "backend", "want_grad")


def _linear_ce_impl(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
                    chunk_size, backend, want_grad):
    result = stableloss.linear_cross_entropy(
        _array(input), _array(linear_weight), _array(target), linear_bias=_array(linear_bias), weight=_array(weight),
        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
        chunk_size=chunk_size or None, backend=backend or None, return_grad=want_grad)
    if not want_grad:
        return _tensor(result), _empty(input), _empty(input), _empty(input)
    loss, (grad_input, grad_weight, grad_bias) = result
    return (_tensor(loss), _tensor(grad_input), _tensor(grad_weight),
            _empty(input) if grad_bias is None else _tensor(grad_bias))


def _linear_ce_fake(input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing,
                    chunk_size, backend, want_grad):
    loss = input.new_empty(_reduced_shape(reduction, input.shape[:-1]))
    if not want_grad:
        return loss, _empty(input), _empty(input), _empty(input)
    return (loss, input.new_empty(input.shape), input.new_empty(linear_weight.shape),
            _empty(input) if linear_bias is None else input.new_empty(linear_bias.shape))


def _linear_ce_backward(ctx, grad_loss, *_):
    """The saved gradients scaled by the incoming one.  They are those of the sum of the losses, so for
    ``reduction="none"`` the incoming gradient must be the same for every row (as for ``loss.sum()``):
    the weight's gradient is a sum over rows that one pass cannot weigh afterwards."""
    grad_input, grad_weight, grad_bias = ctx.saved_tensors
    if grad_loss.dim() != 0:
        if grad_loss.numel() and not bool((grad_loss == grad_loss.reshape(-1)[0]).all()):
            raise RuntimeError("stableloss.torch.linear_cross_entropy: with reduction='none' the gradients come "
                               "from one fused pass over the sum of the losses, so the incoming gradient must be "
                               "the same for every row (as for loss.sum()); weigh the rows with weight= or use "
                               "reduction='sum' or 'mean'")
        grad_loss = grad_loss.reshape(-1)[0] if grad_loss.numel() else grad_loss.new_zeros(())
    grads = dict.fromkeys(_LINEAR_CE)
    grads["input"] = _scaled(grad_input, grad_loss, ctx.dtypes["input"])
    grads["linear_weight"] = _scaled(grad_weight, grad_loss, ctx.dtypes["linear_weight"])
    if "linear_bias" in ctx.shapes:
        grads["linear_bias"] = _scaled(grad_bias, grad_loss, ctx.dtypes["linear_bias"])
    return tuple(grads.values())


linear_cross_entropy = _define(
    "linear_cross_entropy",
    "(Tensor input, Tensor linear_weight, Tensor target, Tensor? linear_bias, Tensor? weight, str reduction, "
    "int ignore_index, float label_smoothing, int chunk_size, str backend, bool want_grad) "
    "-> (Tensor, Tensor, Tensor, Tensor)",
    _linear_ce_impl, _linear_ce_fake, _linear_ce_backward, _save_grads(_LINEAR_CE))


# ---------------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits

_BCE = ("input", "target", "weight", "reduction", "pos_weight", "backend", "want_input")


def _bce_impl(input, target, weight, reduction, pos_weight, backend, want_input):
    result = stableloss.binary_cross_entropy_with_logits(_array(input), _array(target), _array(weight), reduction,
                                                         _array(pos_weight), backend=backend or None,
                                                         return_grad=want_input)
    return _loss_and_grad(result, want_input, input)


def _elementwise_fake(input, reduction, want_input):
    return (input.new_empty(_reduced_shape(reduction, input.shape)),
            input.new_empty(input.shape) if want_input else _empty(input))


def _bce_backward(ctx, grad_loss, _):
    (grad,) = ctx.saved_tensors
    return (_scaled(grad, grad_loss, ctx.dtypes["input"]),) + (None,) * (len(_BCE) - 1)


binary_cross_entropy_with_logits = _define(
    "binary_cross_entropy_with_logits",
    "(Tensor input, Tensor target, Tensor? weight, str reduction, Tensor? pos_weight, str backend, "
    "bool want_input) -> (Tensor, Tensor)",
    _bce_impl, lambda input, target, weight, reduction, pos_weight, backend, want: _elementwise_fake(
        input, reduction, want),
    _bce_backward, _save_grads(_BCE))


# ---------------------------------------------------------------------------------------------------
# gaussian_nll_loss: var a tensor, or (var None) the Python float var_value

_GNLL = ("input", "target", "var", "var_value", "full", "eps", "reduction", "backend", "want_input", "want_var")


def _gnll_impl(input, target, var, var_value, full, eps, reduction, backend, want_input, want_var):
    x = _array(input)
    if var is None:
        var_arg = var_value
    elif want_var and reduction == "none":  # per element, so that backward can weigh each by its grad_loss
        var_arg = check.gnll_var("gaussian_nll_loss", _array(var), x)[0]
    else:
        var_arg = _array(var)
    want = want_input or want_var
    result = stableloss.gaussian_nll_loss(x, _array(target), var_arg, full, eps, reduction,
                                          backend=backend or None, return_grad=want)
    if not want:
        return _tensor(result), _empty(input), _empty(input)
    loss, (grad_input, grad_var) = result
    return (_tensor(loss), _tensor(grad_input) if want_input else _empty(input),
            _tensor(grad_var) if want_var else _empty(input))


def _gnll_fake(input, target, var, var_value, full, eps, reduction, backend, want_input, want_var):
    var_grad_shape = input.shape if reduction == "none" else var.shape if var is not None else ()
    return (input.new_empty(_reduced_shape(reduction, input.shape)),
            input.new_empty(input.shape) if want_input else _empty(input),
            input.new_empty(var_grad_shape) if want_var else _empty(input))


def _gnll_backward(ctx, grad_loss, *_):
    grad_input, grad_var = ctx.saved_tensors
    grads = dict.fromkeys(_GNLL)
    if ctx.needs_input_grad[0]:
        grads["input"] = _scaled(grad_input, grad_loss, ctx.dtypes["input"])
    if "var" in ctx.shapes and ctx.needs_input_grad[2]:
        grad_var = _scaled(grad_var, grad_loss, grad_var.dtype)
        if ctx.args["reduction"] == "none":  # per element: summed where var is broadcast
            grad_var = _sum_to_var(grad_var, ctx.shapes["var"], ctx.shapes["input"])
        grads["var"] = grad_var.to(ctx.dtypes["var"])
    return tuple(grads.values())


def _sum_to_var(grad, var_shape, input_shape):
    """A per-element gradient summed over the elements that share a variance (PyTorch's var shapes)."""
    if tuple(var_shape) == tuple(input_shape)[:-1] and tuple(var_shape) != tuple(input_shape):
        return grad.sum(-1)  # one variance per row
    return grad.sum_to_size(var_shape)


gaussian_nll_loss = _define(
    "gaussian_nll_loss",
    "(Tensor input, Tensor target, Tensor? var, float var_value, bool full, float eps, str reduction, "
    "str backend, bool want_input, bool want_var) -> (Tensor, Tensor, Tensor)",
    _gnll_impl, _gnll_fake, _gnll_backward, _save_grads(_GNLL))


# ---------------------------------------------------------------------------------------------------
# kl_div: the input's gradient from the kernel; the target's, where wanted, from its formula

_KL = ("input", "target", "reduction", "log_target", "backend", "want_input")


def _kl_impl(input, target, reduction, log_target, backend, want_input):
    result = stableloss.kl_div(_array(input), _array(target), reduction, log_target, backend=backend or None,
                               return_grad=want_input)
    return _loss_and_grad(result, want_input, input)


def _kl_backward(ctx, grad_loss, _):
    grad, *kept = ctx.saved_tensors
    grads = dict.fromkeys(_KL)
    if ctx.needs_input_grad[0]:
        grads["input"] = _scaled(grad, grad_loss, ctx.dtypes["input"])
    if ctx.needs_input_grad[1]:
        input, target = kept
        grads["target"] = _kl_target_grad(input, target, ctx.args["reduction"], ctx.args["log_target"],
                                          grad_loss).sum_to_size(ctx.shapes["target"]).to(ctx.dtypes["target"])
    return tuple(grads.values())


def _kl_target_grad(input, target, reduction, log_target, grad_loss):
    """d/dt of the returned loss: log p + 1 - log q per term (log_target: e^lp (lp + 1 - log q)),
    scaled by the reduction and the incoming gradient."""
    input, target = torch.broadcast_tensors(input, target.to(input.dtype))
    if log_target:
        term = torch.exp(target) * (target - input + 1)
    else:
        term = torch.log(target) - input + 1
    denominator = {"mean": input.numel(), "batchmean": input.shape[0] if input.dim() else 1}.get(reduction, 1)
    return term * (grad_loss / denominator)


kl_div = _define(
    "kl_div",
    "(Tensor input, Tensor target, str reduction, bool log_target, str backend, bool want_input) -> (Tensor, Tensor)",
    _kl_impl, lambda input, target, reduction, log_target, backend, want: _elementwise_fake(input, reduction, want),
    _kl_backward, _save_grads(_KL, keep=lambda inputs: ("input", "target") if inputs[1].requires_grad else ()))


# ---------------------------------------------------------------------------------------------------
# mse_loss, l1_loss, smooth_l1_loss, huber_loss: losses of x - t, whose target's gradient is minus the
# input's

def _difference_backward(names):
    """The backward of a loss of ``input - target`` with the arguments ``names``: the saved gradient for
    the input, its opposite summed to the target's shape for the target."""
    def backward(ctx, grad_loss, _):
        (grad,) = ctx.saved_tensors
        grads = dict.fromkeys(names)
        scaled = _scaled(grad, grad_loss, grad.dtype)
        if ctx.needs_input_grad[0]:
            grads["input"] = scaled.to(ctx.dtypes["input"])
        if ctx.needs_input_grad[1]:
            grads["target"] = (-scaled).sum_to_size(ctx.shapes["target"]).to(ctx.dtypes["target"])
        return tuple(grads.values())
    return backward


_MSE = ("input", "target", "reduction", "weight", "backend", "want_grad")


def _mse_impl(input, target, reduction, weight, backend, want_grad):
    result = stableloss.mse_loss(_array(input), _array(target), reduction, _array(weight),
                                 backend=backend or None, return_grad=want_grad)
    return _loss_and_grad(result, want_grad, input)


mse_loss = _define(
    "mse_loss",
    "(Tensor input, Tensor target, str reduction, Tensor? weight, str backend, bool want_grad) -> (Tensor, Tensor)",
    _mse_impl, lambda input, target, reduction, weight, backend, want: _elementwise_fake(input, reduction, want),
    _difference_backward(_MSE), _save_grads(_MSE))

_L1 = ("input", "target", "reduction", "weight", "backend", "want_grad")


def _l1_impl(input, target, reduction, weight, backend, want_grad):
    result = stableloss.l1_loss(_array(input), _array(target), reduction, _array(weight),
                                backend=backend or None, return_grad=want_grad)
    return _loss_and_grad(result, want_grad, input)


l1_loss = _define(
    "l1_loss",
    "(Tensor input, Tensor target, str reduction, Tensor? weight, str backend, bool want_grad) -> (Tensor, Tensor)",
    _l1_impl, lambda input, target, reduction, weight, backend, want: _elementwise_fake(input, reduction, want),
    _difference_backward(_L1), _save_grads(_L1))

_SMOOTH_L1 = ("input", "target", "reduction", "beta", "backend", "want_grad")


def _smooth_l1_impl(input, target, reduction, beta, backend, want_grad):
    result = stableloss.smooth_l1_loss(_array(input), _array(target), reduction, beta, backend=backend or None,
                                       return_grad=want_grad)
    return _loss_and_grad(result, want_grad, input)


smooth_l1_loss = _define(
    "smooth_l1_loss",
    "(Tensor input, Tensor target, str reduction, float beta, str backend, bool want_grad) -> (Tensor, Tensor)",
    _smooth_l1_impl, lambda input, target, reduction, beta, backend, want: _elementwise_fake(input, reduction, want),
    _difference_backward(_SMOOTH_L1), _save_grads(_SMOOTH_L1))

_HUBER = ("input", "target", "reduction", "delta", "weight", "backend", "want_grad")


def _huber_impl(input, target, reduction, delta, weight, backend, want_grad):
    result = stableloss.huber_loss(_array(input), _array(target), reduction, delta, _array(weight),
                                   backend=backend or None, return_grad=want_grad)
    return _loss_and_grad(result, want_grad, input)


huber_loss = _define(
    "huber_loss",
    "(Tensor input, Tensor target, str reduction, float delta, Tensor? weight, str backend, bool want_grad) "
    "-> (Tensor, Tensor)",
    _huber_impl,
    lambda input, target, reduction, delta, weight, backend, want: _elementwise_fake(input, reduction, want),
    _difference_backward(_HUBER), _save_grads(_HUBER))


# ---------------------------------------------------------------------------------------------------
# sigmoid_focal_loss: torchvision's argument names

_FOCAL = ("inputs", "targets", "alpha", "gamma", "reduction", "backend", "want_inputs")


def _focal_impl(inputs, targets, alpha, gamma, reduction, backend, want_inputs):
    result = stableloss.sigmoid_focal_loss(_array(inputs), _array(targets), alpha, gamma, reduction,
                                           backend=backend or None, return_grad=want_inputs)
    return _loss_and_grad(result, want_inputs, inputs)


def _focal_backward(ctx, grad_loss, _):
    (grad,) = ctx.saved_tensors
    return (_scaled(grad, grad_loss, ctx.dtypes["inputs"]),) + (None,) * (len(_FOCAL) - 1)


sigmoid_focal_loss = _define(
    "sigmoid_focal_loss",
    "(Tensor inputs, Tensor targets, float alpha, float gamma, str reduction, str backend, bool want_inputs) "
    "-> (Tensor, Tensor)",
    _focal_impl, lambda inputs, targets, alpha, gamma, reduction, backend, want: _elementwise_fake(
        inputs, reduction, want),
    _focal_backward, _save_grads(_FOCAL))


# ---------------------------------------------------------------------------------------------------
# poisson_nll_loss

_PNLL = ("input", "target", "log_input", "full", "eps", "reduction", "backend", "want_input")


def _pnll_impl(input, target, log_input, full, eps, reduction, backend, want_input):
    result = stableloss.poisson_nll_loss(_array(input), _array(target), log_input, full, eps, reduction,
                                         backend=backend or None, return_grad=want_input)
    return _loss_and_grad(result, want_input, input)


def _pnll_backward(ctx, grad_loss, _):
    (grad,) = ctx.saved_tensors
    return (_scaled(grad, grad_loss, ctx.dtypes["input"]),) + (None,) * (len(_PNLL) - 1)


poisson_nll_loss = _define(
    "poisson_nll_loss",
    "(Tensor input, Tensor target, bool log_input, bool full, float eps, str reduction, str backend, "
    "bool want_input) -> (Tensor, Tensor)",
    _pnll_impl, lambda input, target, log_input, full, eps, reduction, backend, want: _elementwise_fake(
        input, reduction, want),
    _pnll_backward, _save_grads(_PNLL))


# ---------------------------------------------------------------------------------------------------
# logsumexp, log_softmax, softmax (one dim; the public functions fold several dims into one)

_LSE = ("input", "dim", "keepdim", "backend", "want_input")


def _rows(input, dim, backend, wanted):
    """The lse kernel's outputs ``wanted`` for the rows along ``dim``, in the input's layout (lse: the
    input's shape without ``dim``)."""
    outputs, restore, axis = _api._lse_call("stableloss.torch", _array(input), dim, None, backend or None, wanted)
    shape = tuple(input.shape)
    return [torch.from_numpy(out.reshape(shape[:axis] + shape[axis + 1:]) if name == "lse" else restore(out))
            for name, out in zip(wanted, outputs)]


def _lse_impl(input, dim, keepdim, backend, want_input):
    value, *softmax = _rows(input, dim, backend, ("lse", "softmax") if want_input else ("lse",))
    value = value.unsqueeze(dim) if keepdim else value
    return value, softmax[0] if want_input else _empty(input)


def _lse_fake(input, dim, keepdim, backend, want_input):
    shape = list(input.shape)
    if keepdim:
        shape[dim] = 1
    else:
        del shape[dim]
    return input.new_empty(shape), input.new_empty(input.shape) if want_input else _empty(input)


def _lse_backward(ctx, grad_loss, _):
    (softmax,) = ctx.saved_tensors
    if not ctx.args["keepdim"]:
        grad_loss = grad_loss.unsqueeze(ctx.args["dim"])
    return (_scaled(softmax, grad_loss, ctx.dtypes["input"]),) + (None,) * (len(_LSE) - 1)


logsumexp = _define(
    "logsumexp", "(Tensor input, int dim, bool keepdim, str backend, bool want_input) -> (Tensor, Tensor)",
    _lse_impl, _lse_fake, _lse_backward, _save_grads(_LSE))

_SOFTMAX = ("input", "dim", "backend", "want_input")


def _log_softmax_impl(input, dim, backend, want_input):
    log_softmax, *softmax = _rows(input, dim, backend, ("log_softmax", "softmax") if want_input else ("log_softmax",))
    return log_softmax, softmax[0] if want_input else _empty(input)


def _log_softmax_backward(ctx, grad_out, _):
    """d log_softmax_j / dx_i = [i = j] - softmax_i: g - softmax sum_j g_j."""
    (softmax,) = ctx.saved_tensors
    grad = grad_out - softmax * grad_out.sum(ctx.args["dim"], keepdim=True)
    return (grad.to(ctx.dtypes["input"]),) + (None,) * (len(_SOFTMAX) - 1)


log_softmax = _define(
    "log_softmax", "(Tensor input, int dim, str backend, bool want_input) -> (Tensor, Tensor)",
    _log_softmax_impl,
    lambda input, dim, backend, want: (input.new_empty(input.shape),
                                       input.new_empty(input.shape) if want else _empty(input)),
    _log_softmax_backward, _save_grads(_SOFTMAX))


_SOFTMAX_ONLY = ("input", "dim", "backend")


def _softmax_impl(input, dim, backend):
    return _rows(input, dim, backend, ("softmax",))[0]


def _softmax_save(ctx, inputs, output):
    _save(ctx, inputs, _SOFTMAX_ONLY, (output,))


def _softmax_backward(ctx, grad_out):
    """d softmax_j / dx_i = softmax_j ([i = j] - softmax_i): softmax (g - sum_j g_j softmax_j)."""
    (softmax,) = ctx.saved_tensors
    grad = softmax * (grad_out - (grad_out * softmax).sum(ctx.args["dim"], keepdim=True))
    return grad.to(ctx.dtypes["input"]), None, None


softmax = _define("softmax", "(Tensor input, int dim, str backend) -> Tensor", _softmax_impl,
                  lambda input, dim, backend: input.new_empty(input.shape), _softmax_backward, _softmax_save)
