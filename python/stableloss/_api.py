"""The public functions: docstring, validation calls, layout, dispatch and reduction.

Names, argument order and semantics follow ``torch.nn.functional``; the deliberate differences (exact
values where PyTorch rounds to 0, limits where it returns NaN) are listed in each docstring.
"""

import math

import numpy as np

from . import _linear, _outputs, _validate as check
from ._dispatch import exact_sum, resolve, run
from ._spec import FLOAT, IN, INDEX, INT, OUT, SHARED, Bench, Kernel, Workload, declare, loss_kernel

#: The public functions, in the order of the documentation; the package exports them.
__all__ = ["cross_entropy", "linear_cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "gaussian_nll_loss",
           "kl_div", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "sigmoid_focal_loss", "poisson_nll_loss",
           "logsumexp", "log_softmax", "softmax"]
from ._reference import sum_dd


def _reduce(total, denominator, reduction, loss, dtype, ieee=False):
    """The returned loss: per-element values, or the float64 total (divided for "mean") rounded once.

    A ``mean`` over a zero denominator (every target ignored, or zero total weight) is NaN, as in
    PyTorch; with ``ieee`` the IEEE quotient, NaN for a zero total and +-inf for another (class weights
    of both signs summing to 0), as PyTorch's ``nll_loss``.
    """
    if reduction == "none":
        return loss
    value = total
    if reduction == "mean":  # Python floats: an overflowing quotient is inf, without a warning
        value = float(total) / float(denominator) if denominator else _over_zero(float(total), ieee)
    if abs(value) <= _LARGEST[dtype]:
        return dtype.type(value)
    with np.errstate(over="ignore"):  # rounds to +-inf (or stays NaN)
        return dtype.type(value)


#: The largest finite value of each dtype.
_LARGEST = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}


def _over_zero(value, ieee):
    """``value / 0``: NaN, or with ``ieee`` the IEEE quotient (Python raises): NaN for 0 or NaN, else inf of
    its sign."""
    if not ieee or value == 0 or math.isnan(value):
        return math.nan
    return math.copysign(math.inf, value)


def _grad_scale(reduction, denominator, counted=None, ieee=False):
    """Factor turning the gradient of the sum into the gradient of the returned loss.

    With nothing counted (every target ignored) the gradient is zero; a zero total weight over counted
    targets makes it NaN, as PyTorch's cross-entropy (the target's 0 (1/0) spreads over the row through
    the softmax), or with ``ieee`` 1/0 = inf, as PyTorch's ``nll_loss`` forms w_y (-1/0): NaN for
    w_y = 0, +-inf for weights of both signs.
    """
    if reduction != "mean":
        return 1.0
    if counted == 0:
        return 0.0
    return _over_zero(1.0, ieee) if denominator == 0 else 1.0 / denominator


def _denominator(weight, counted_weight, count, reduction):
    """The weights for the kernel and the ``mean`` denominator: ``count``, or with ``weight`` the total
    of ``counted_weight`` (the weights of what counts), for ``mean`` rescaled (:func:`_mean_weights`)."""
    if weight is None:
        return None, count
    total = _total_weight(counted_weight)
    return _mean_weights(weight, total) if reduction == "mean" else (weight, total)


def _class_denominator(indices, counted, n_rows, weight, reduction):
    """(weight, denominator, number counted) of a loss over a class axis (cross-entropy, nll_loss): with
    index targets PyTorch's rule, the weights of the targets that count (``counted``); with probability
    targets the number of rows."""
    if indices is None:
        return weight, n_rows, n_rows
    weight, denominator = _denominator(weight, None if weight is None else weight[counted], len(counted), reduction)
    return weight, denominator, len(counted)


def _total_weight(weight):
    """The sum of the weights, the denominator of a weighted ``mean``.

    Float32 weights that are all >= 0 get numpy's pairwise float64 sum: its relative error, below
    2^-53 log2(n), is far under the float32 result's half ulp (2^-24), and it streams at memory speed.
    Otherwise (float64 weights, or signs that can cancel) the correctly rounded sum.
    """
    if weight.dtype == np.float32 and weight.size and weight.min() >= 0:
        return float(np.sum(weight, dtype=np.float64))
    return exact_sum(weight)


def _mean_weights(weight, denominator):
    """Weights and their total for a weighted ``mean``, rescaled by a power of two when the total lies
    outside [1, 2^64).

    The mean is unchanged by the scaling, which is exact: sum(2^k w l) / sum(2^k w) = sum(w l) / sum(w).
    Below a total of 1 the products w l can be subnormal where the mean is not (weights summing to
    5e-324 would give 1.0 for a loss of log 3) and 1/total can overflow; far above it they overflow
    sooner than the mean.  The total is brought into [1, 2), or as close as the largest weight allows
    without overflowing.
    """
    if not math.isfinite(denominator) or denominator == 0 or 1.0 <= denominator < 2.0**64:
        return weight, denominator
    largest = float(np.max(np.abs(weight)))
    if not math.isfinite(largest):
        return weight, denominator
    shift = 1 - math.frexp(denominator)[1]  # total * 2^shift in [1, 2)
    shift = min(shift, np.finfo(weight.dtype).maxexp - math.frexp(largest)[1])
    return np.ldexp(weight, shift), math.ldexp(denominator, shift)


def _sum_to_shape(grad, shape):
    """Sum a full-shape gradient over the axes along which an argument of ``shape`` was broadcast.

    Float64 sums are double-double (a pairwise tree of TwoSums): a plain sum of gradients of both
    signs is off by more than the reduction budget where they cancel.  Float32 gradients are summed
    in float64, whose error is far below a float32 ulp.
    """
    if grad.shape == shape:  # not broadcast: nothing to sum (np.sum over no axes would still copy)
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if grad.dtype != np.float64:
        return np.sum(grad, axis=axes, dtype=np.float64).reshape(shape).astype(grad.dtype)
    summed = np.moveaxis(grad, axes, range(grad.ndim - len(axes), grad.ndim))  # the summed axes last
    hi, lo = sum_dd(summed.reshape(-1, math.prod(summed.shape[grad.ndim - len(axes):])))
    return (hi + lo).reshape(shape)


def _class_rows(x, axis):
    """``x`` as contiguous rows along ``axis``, and the function mapping row-shaped results back."""
    if axis == x.ndim - 1:  # (C,) or (N, C): the rows as they are
        rows = np.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])
        return rows, lambda values: values.reshape(x.shape)
    moved = np.moveaxis(x, axis, -1)
    rows = np.ascontiguousarray(moved).reshape(math.prod(moved.shape[:-1]), x.shape[axis])

    def restore(values):
        return np.ascontiguousarray(np.moveaxis(values.reshape(moved.shape), -1, axis))
    return rows, restore


def _axis(func, x, axis):
    index = check.integer(func, "axis", axis)
    if not -x.ndim <= index < x.ndim:
        raise ValueError(f"{func}: axis {axis} is out of bounds for an array of dimension {x.ndim}")
    return index % x.ndim


# ---------------------------------------------------------------------------------------------------

CE = declare(loss_kernel("ce", "cross_entropy",
                         inputs=(("input", IN), ("target", INDEX), ("target_prob", IN), ("weight", SHARED)),
                         parameters=(("n_classes", INT), ("ignore_index", INT), ("label_smoothing", FLOAT),
                                     ("z_loss", FLOAT), ("softcap", FLOAT)),
                         row_width="n_classes", extras=("lse",),
                         bench=Bench(workloads=(Workload((1024, 32768), (64, 4096), grad=False),
                                                Workload((1024, 32768), (64, 4096)),
                                                Workload((2**20, 10), (2**14, 10)),
                                                Workload((512, 32768), (32, 4096), dtype="float64"),
                                                Workload((1024, 32768), (64, 4096),
                                                         options=(("z_loss", 1e-4), ("softcap", 30.0)))),
                                     sizes=((4, 10), (256, 4096), (16384, 10))),
                         constants=dict(
                             # float32 rows with a softcap of at most this compute the capped logits
                             # c tanh(x/c) in double: their error, a few ulps of c, keeps exp(x'_j - x'_max)
                             # within 2^-30 (CAP_ERR c); larger caps, and float64, in double-double
                             SOFTCAP_DIRECT_F32=2.0**20,
                             # the relative error of that double c tanh(x/c) (tanh from one exp reduction)
                             CAP_ERR=2.0**-50,
                             # the double-double cap: up to this |x/c| a Newton step on atanh corrects the
                             # double tanh t (its second-order term is 2^-106/(1 - t^2)); beyond, tanh =
                             # 1 - 2E/(1 + E) from a double-double E = e^{-2|x/c|} (no cancellation)
                             CAP_SPLIT=1.0,
                             # bounds on the relative error of s = sum_{j != k} e_j and of log1p(s) in the
                             # exp grade of each dtype's rows with a z-loss or a log-sum-exp output (float32:
                             # the cheap grade, 3.9e-12; float64: the full grade, 0.8 ulp)
                             SUM_ERR_F32=2.0**-36, SUM_ERR_F64=2.0**-52,
                             # rows where a difference of those (the lse a + log1p(s) with a < 0,
                             # f = 1 + 2 z lse, the target's gradient p_y f - 1) may carry more than this
                             # relative error get s and log1p(s) again from double-double exponentials:
                             # 2^-30 is far below a float32 ulp, 3 2^-53 leaves 4 ulp for float64
                             EXACT_F32=2.0**-30, EXACT_F64=3 * 2.0**-53)))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  *, z_loss=0.0, softcap=None, return_lse=False, backend=None, return_grad=False):
    r"""Cross-entropy between logits and class targets: the negative log-likelihood of a categorical model.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Logits of shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` (class axis 1).
    target : ndarray
        Class indices of any integer dtype, shape ``()``, ``(N,)`` or ``(N, d1, ..., dk)``; or class
        probabilities of the input's shape (float).
    weight : ndarray, optional
        Per-class weight of shape ``(C,)``.
    ignore_index : int, default -100
        Index targets equal to it contribute 0 to the loss and to the gradient, and nothing to the
        ``mean`` denominator.  Must be negative with probability targets.
    reduction : {"mean", "sum", "none"}
        ``mean`` divides by the summed weights of the non-ignored targets (index targets) or by the
        number of rows (probability targets), as PyTorch does.
    label_smoothing : float in [0, 1]
        Mixes the target with the uniform distribution: ``(1 - eps) nll + eps/C sum_j w_j (-log p_j)``.
    z_loss : float >= 0, default 0.0
        Adds ``z_loss * lse**2`` per row (PaLM's auxiliary loss), ``lse`` the row's log-sum-exp of the
        (capped) logits, with the weight the row has in the ``mean`` denominator: ``w_y`` for an index
        target (0 if ignored), 1 for probability targets.
    softcap : float > 0, optional
        Replaces the logits by ``softcap * tanh(input / softcap)`` (Gemma 2) before everything else;
        the gradient goes through it.  None (the default): no cap.
    return_lse : bool, default False
        Also return each row's log-sum-exp of the (capped) logits, ignored rows included.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`available_backends`.
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input`` (for ``"none"``: of its sum).

    Returns
    -------
    loss : ndarray or scalar
        Per-row losses for ``"none"`` (shape of the index target), else a scalar of the input's dtype.
    grad : ndarray
        Only with ``return_grad``: same shape and dtype as ``input``.
    lse : ndarray
        Only with ``return_lse``, after ``grad``: the rows' log-sum-exp, shape of the per-row losses.

    Notes
    -----
    With :math:`p = \operatorname{softmax}(x)`, the loss of a row with target :math:`y` is
    :math:`L = -w_y \log p_y` and its gradient is :math:`\partial L/\partial x_j = w_y (p_j - [j = y])`.

    Stable rewrite: with :math:`a = \max_j x_j` attained at :math:`k`, :math:`z_j = x_j - a` and
    :math:`s = \sum_{j \ne k} e^{z_j}`, :math:`-\log p_j = \operatorname{log1p}(s) - z_j`, a sum of two
    non-negative terms, never ``logsumexp(x) - x_y``; at :math:`j = y = k` the gradient
    :math:`p_y - 1` is computed as :math:`-s/(1+s)`.  Confident correct predictions therefore keep full
    relative accuracy: logits ``[40, 0, 0]`` with target 0 give 8.5e-18 where PyTorch returns 0.
    A class whose logit is ``-inf`` and whose coefficient is 0 -- with probability targets a target
    (after smoothing) of 0, a masked class without target mass as in distillation over a masked
    vocabulary; with label smoothing a class weight of 0 -- adds :math:`0 \cdot (-\log 0) = 0` with
    gradient 0, where PyTorch gives NaN.
    Everything else matches PyTorch: NaN in gives NaN, an all ``-inf`` row gives NaN, a ``-inf`` target
    logit gives ``+inf``, and ``mean`` over only ignored targets gives NaN.

    With ``softcap`` c, everything above applies to :math:`x'_j = c \tanh(x_j/c)` and the gradient is
    :math:`\partial L/\partial x'_j \cdot (1 - \tanh^2(x_j/c))`; :math:`\pm\infty` logits become
    :math:`\pm c` (the limit, torch's ``softcap * torch.tanh(x / softcap)``), with gradient 0, so a row of
    ``-inf`` is uniform.  Float64 carries :math:`x'` in double-double: its rounding to double would
    cost up to ulp(c)/2 in every :math:`x'_j - x'_{max}`, a large relative error of a tiny loss.
    With ``z_loss`` z, the row loss gains :math:`\rho z\,\mathrm{lse}^2` (:math:`\rho` the row's weight,
    as in T5X, PaLM, flash-attn's ``lse_square_scale``; Liger Kernel leaves it unweighted), two
    non-negative terms, and the gradient :math:`2 \rho z\,\mathrm{lse}\,p_j`, added to :math:`A p_j`:
    a plain index target's is :math:`\rho (p_j f - [j = y])`, :math:`f = 1 + 2 z\,\mathrm{lse}`, at the
    target :math:`\rho (2 z\,\mathrm{lse} - s)/(1 + s)` where it holds the max.  Where such a difference,
    or the lse :math:`a + \operatorname{log1p}(s)` itself, cancels, the row's sums are recomputed
    from double-double exponentials.  Label smoothing changes nothing in the z-loss term.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import cross_entropy
    >>> logits = np.array([[40.0, 0.0, 0.0]])
    >>> float(cross_entropy(logits, np.array([0])))
    8.4967...e-18
    >>> loss, grad = cross_entropy(logits, np.array([1]), return_grad=True)
    >>> float(loss), grad.round(3).tolist()
    (40.0, [[1.0, -1.0, 0.0]])
    >>> float(cross_entropy(np.array([[0.0, -np.inf]]), np.array([[1.0, 0.0]])))
    0.0
    >>> loss, lse = cross_entropy(np.array([[1e30, 0.0]]), np.array([1]), z_loss=1e-4, softcap=30.0,
    ...                           return_lse=True)
    >>> float(loss), lse.tolist()  # 30 + lse^2/10^4, lse = 30 + log1p(e^-30)
    (30.09, [30.0])
    """
    func = "cross_entropy"
    smoothing = check.real(func, "label_smoothing", label_smoothing, 0.0, 1.0)
    z_loss = check.finite(func, "z_loss", z_loss, 0.0)
    softcap = 0.0 if softcap is None else check.finite(func, "softcap", softcap, 0.0, strict=True)
    return _class_loss(func, CE, input, target, weight, ignore_index, reduction, resolve(backend), return_grad,
                       return_lse=return_lse, label_smoothing=smoothing, z_loss=z_loss, softcap=softcap)


def _class_loss(func, kernel, input, target, weight, ignore_index, reduction, backend, return_grad,
                ieee=False, return_lse=False, **parameters):
    """The public result of ``kernel`` (cross-entropy, nll_loss) over the class axis of ``input``: (C,), (N, C)
    or (N, C, d1, ..., dk), class axis 1, with PyTorch's rules for class-index targets, class weights,
    ``ignore_index`` and the ``mean`` denominator, and probability targets where the kernel takes them
    (``target_prob``).  ``backend``: resolved by the public function (whose caller a CExtensionWarning
    names); ``parameters``: the kernel's other scalars, checked; ``ieee``: a ``mean`` over a zero total
    weight divides as IEEE arithmetic does (:func:`_grad_scale`); ``return_lse``: also each row's
    log-sum-exp (the kernel's extra output ``lse``), last."""
    x = check.class_axis_input(func, input)
    reduction = check.reduction(func, reduction)
    ignore_index = check.integer(func, "ignore_index", ignore_index)
    takes_probabilities = "target_prob" in kernel.names
    if takes_probabilities:
        indices, probabilities, counted = check.ce_target(func, target, x, ignore_index)
    else:
        (indices, counted), probabilities = check.class_indices(func, target, x, ignore_index), None
    axis = 1 if x.ndim >= 2 else 0
    n_classes = x.shape[axis]
    weight = check.class_weight(func, weight, n_classes, x.dtype)

    rows, restore = _class_rows(x, axis)
    n_rows = rows.shape[0]
    weight, denominator, n_counted = _class_denominator(indices, counted, n_rows, weight, reduction)
    inputs = dict(input=rows, target=indices, weight=weight, n_classes=n_classes, ignore_index=ignore_index,
                  **parameters)
    if takes_probabilities:
        inputs["target_prob"] = None if probabilities is None else _class_rows(probabilities, axis)[0]
    lse = np.empty(n_rows, x.dtype) if return_lse else None
    result, grads = _run_loss(backend, kernel, x.dtype, n_rows, reduction, denominator, n_counted, return_grad,
                              inputs, ieee, dict(lse=lse) if return_lse else None)
    row_shape = x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ()
    if reduction == "none":
        result = result.reshape(row_shape)
    outputs = (result, *((restore(grads[0]),) if return_grad else ()), *((lse.reshape(row_shape),) if return_lse else ()))
    return outputs if len(outputs) > 1 else result


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None, chunk_size=None,
                         backend=None, return_grad=False, return_lse=False):
    r"""Cross-entropy of the logits ``input @ linear_weight.T + linear_bias``, never all held at once.

    The loss of a language model's head: the logits of a chunk of rows at a time by one BLAS product,
    the cross-entropy kernel on them, and the gradients by two more products, so that the ``(N, V)``
    logits and their gradient never exist whole.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Features of shape ``(D,)`` or ``(..., D)``; leading dimensions are flattened into rows.
    linear_weight : ndarray
        The output matrix ``(V, D)``, in the input's dtype.
    target : ndarray
        Class indices of shape ``input.shape[:-1]`` (any integer dtype), or class probabilities of
        shape ``input.shape[:-1] + (V,)``.
    linear_bias : ndarray, optional
        ``(V,)``, added to the logits.
    weight : ndarray, optional
        Per-class weight ``(V,)``, as in :func:`cross_entropy`.
    reduction : {"mean", "sum", "none"}
        As in :func:`cross_entropy`; ``"none"`` returns a loss of shape ``input.shape[:-1]``.
    ignore_index : int, default -100
        Rows whose index target equals it count for nothing and cost no product.
    label_smoothing : float in [0, 1]
        As in :func:`cross_entropy`.
    z_loss : float >= 0, default 0.0
        As in :func:`cross_entropy`: ``z_loss * lse**2`` per row, ``lse`` the log-sum-exp of its logits.
    softcap : float > 0, optional
        As in :func:`cross_entropy`: the logits become ``softcap * tanh(logits / softcap)``.
    chunk_size : int, optional
        Rows per chunk.  Default: as many as 60 MiB of per-chunk buffers hold (logits and their
        gradient in the input's dtype, and the chunk's rows).
    backend : {"c", "numba", "numpy"}, optional
        The backend of the cross-entropy step; the products are numpy's BLAS.  Default: the first of
        :func:`available_backends`.
    return_grad : bool, default False
        Also return ``(grad_input, grad_weight, grad_bias)`` (``grad_bias`` None without a bias).
    return_lse : bool, default False
        Also return each row's log-sum-exp (shape ``input.shape[:-1]``), after the gradients; ignored rows
        then cost their product too.

    Returns
    -------
    loss : ndarray or scalar
    grads : tuple of ndarray
        Only with ``return_grad``.
    lse : ndarray
        Only with ``return_lse``.

    Notes
    -----
    With :math:`Z = X W^T + b` and :math:`G = \partial L/\partial Z` from the cross-entropy kernel (its
    stable formulas, float64 accumulation), :math:`\partial L/\partial X = G W`,
    :math:`\partial L/\partial W = G^T X` and :math:`\partial L/\partial b = \sum_i G_i` (summed in
    float64).  Rows whose target is ``ignore_index`` are dropped before the products.  The extra memory
    of a call is its chunk buffers, whatever ``V``; :func:`set_num_threads` governs the BLAS calls as
    well as the kernel, so the two never oversubscribe the cores.  Results equal
    :func:`cross_entropy` of the materialised logits up to the rounding of the products.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import linear_cross_entropy
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> float(linear_cross_entropy(x, w, np.array([2, 1])))  # cross_entropy(x @ w.T, [2, 1])
    0.8103...
    >>> loss, (gx, gw, gb) = linear_cross_entropy(x, w, np.array([2, 1]), return_grad=True)
    >>> gw.shape, gb is None
    ((3, 2), True)
    """
    func = "linear_cross_entropy"
    x = check.float_input(func, "input", input)
    matrix = check.linear_weight(func, linear_weight, x)
    n_classes, n_features = matrix.shape
    bias = None
    if linear_bias is not None:
        bias = np.asarray(linear_bias)
        check.same_shape(func, "linear_bias", bias, (n_classes,))
        bias = check.float_like(func, "linear_bias", bias, x.dtype, (n_classes,))
    reduction = check.reduction(func, reduction)
    ignore_index = check.integer(func, "ignore_index", ignore_index)
    smoothing = check.real(func, "label_smoothing", label_smoothing, 0.0, 1.0)
    z_loss = check.finite(func, "z_loss", z_loss, 0.0)
    softcap = 0.0 if softcap is None else check.finite(func, "softcap", softcap, 0.0, strict=True)
    n_chunk = None if chunk_size is None else check.positive_integer(func, "chunk_size", chunk_size)
    rows = np.ascontiguousarray(x).reshape(-1, n_features)
    n_rows = rows.shape[0]
    logits_shape = (n_rows, n_classes) if x.ndim >= 2 else (n_classes,)  # the logits' layout, never allocated
    indices, probabilities, counted = check.ce_target(
        func, check.linear_ce_target(func, target, x.shape[:-1], n_classes, logits_shape),
        np.broadcast_to(np.zeros((), x.dtype), logits_shape), ignore_index)
    class_weight = check.class_weight(func, weight, n_classes, x.dtype)
    backend = resolve(backend)
    class_weight, denominator, n_counted = _class_denominator(indices, counted, n_rows, class_weight, reduction)
    lse = np.empty(n_rows, x.dtype) if return_lse else None
    counted_rows = None if n_counted == n_rows or return_lse else np.flatnonzero(indices != ignore_index)
    if probabilities is not None:
        probabilities = probabilities.reshape(n_rows, n_classes)
    total, loss_rows, grads = _linear.run(
        backend, CE, rows, matrix, bias, indices, probabilities, counted_rows,
        dict(weight=class_weight, n_classes=n_classes, ignore_index=ignore_index, label_smoothing=smoothing,
             z_loss=z_loss, softcap=softcap),
        _grad_scale(reduction, denominator, n_counted),
        _linear.chunk_rows(n_classes, n_features, x.dtype.itemsize, n_chunk), reduction == "none", return_grad, lse)
    result = _reduce(total, denominator, reduction, loss_rows, x.dtype)
    if reduction == "none":
        result = result.reshape(x.shape[:-1])
    outputs = (result,)
    if return_grad:
        grad_input, grad_weight, grad_bias = grads
        outputs += ((grad_input.reshape(x.shape), grad_weight, grad_bias),)
    if return_lse:
        outputs += (lse.reshape(x.shape[:-1]),)
    return outputs if len(outputs) > 1 else result


NLL = declare(loss_kernel("nll", "nll_loss", inputs=(("input", IN), ("target", INDEX), ("weight", SHARED)),
                          parameters=(("n_classes", INT), ("ignore_index", INT)), row_width="n_classes",
                          gather=True, bench=Bench(sizes=((4, 10), (256, 4096), (16384, 10)))))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", *, backend=None, return_grad=False):
    r"""Negative log-likelihood of log-probabilities: minus the log-probability of the target class.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Log-probabilities (e.g. from :func:`log_softmax`) of shape ``(C,)``, ``(N, C)`` or
        ``(N, C, d1, ..., dk)`` (class axis 1).
    target : ndarray
        Class indices of any integer dtype, shape ``()``, ``(N,)`` or ``(N, d1, ..., dk)``.
    weight : ndarray, optional
        Per-class weight of shape ``(C,)``.
    ignore_index : int, default -100
        Targets equal to it contribute 0 to the loss and to the gradient, and nothing to the ``mean``
        denominator.
    reduction : {"mean", "sum", "none"}
        ``mean`` divides by the summed weights of the non-ignored targets, as PyTorch does.
    backend : {"c", "numba", "numpy"}, optional
        Default: the first of :func:`available_backends`.
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input`` (for ``"none"``: of its sum).

    Returns
    -------
    loss : ndarray or scalar
        Per-position losses for ``"none"`` (the target's shape), else a scalar of the input's dtype.
    grad : ndarray
        Only with ``return_grad``: same shape and dtype as ``input``.

    Notes
    -----
    The loss of a position with target :math:`y` is :math:`\ell = -w_y x_y`, and its gradient is
    :math:`\partial\ell/\partial x_j = -w_y [j = y]`; for ``mean`` both are divided by the summed
    weights :math:`W` of the counted targets: :math:`-w_y/W` at the target, 0 elsewhere.

    No rewrite is needed: :math:`w_y x_y` is one product, rounded once (float32 inputs: exact in float64,
    rounded at the store), and the negation is exact; ``mean`` rounds twice more, the compensated sum
    of the products and its division by the sum of the weights.  Each row is read at its target
    only, and the gradient row is zero-filled at memory speed with one store.  As in PyTorch, only
    :math:`x_y` matters: a NaN elsewhere in the row leaves the loss finite; :math:`x_y = -\infty`
    (probability 0) gives ``+inf`` and a zero weight there gives NaN (:math:`0 \cdot \infty`), with
    gradient :math:`-w_y` whatever :math:`x_y`.  ``mean`` over only ignored targets is NaN with a zero
    gradient; over counted targets of zero total weight it divides by 0 as IEEE arithmetic does, loss
    and gradient :math:`-w_y/0` (NaN for zero weights, :math:`\pm\infty` for weights of both signs).

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import log_softmax, nll_loss
    >>> float(nll_loss(log_softmax(np.array([[40.0, 0.0, 0.0]]), axis=1), np.array([0])))  # cross_entropy's
    8.4967...e-18
    >>> loss, grad = nll_loss(np.log(np.array([[0.5, 0.25, 0.25]])), np.array([1]), return_grad=True)
    >>> round(float(loss), 12), grad.tolist()
    (1.386294361120, [[0.0, -1.0, 0.0]])
    >>> nll_loss(np.array([[-np.inf, np.nan], [np.nan, -1.5]]), np.array([0, 1]), reduction="none").tolist()
    [inf, 1.5]
    """
    return _class_loss("nll_loss", NLL, input, target, weight, ignore_index, reduction, resolve(backend),
                       return_grad, ieee=True)


BCE = declare(loss_kernel("bce", "binary_cross_entropy_with_logits",
                          inputs=(("input", IN), ("target", IN), ("weight", IN), ("pos_weight", IN)),
                          constants=dict(
                              # float32 soft labels: a gradient whose double result cancels below this times
                              # its larger term is redone in double-double (the exp of the float32 kernels,
                              # good to 4.4e-12, leaves 1.1e-9 there: 0.02 float ulp); float64 soft
                              # labels are all redone
                              SOFT_LABEL_CANCEL=2.0**-8,
                              # beyond this |x|, e^-|x| is subnormal or nearly (float64): carried scaled
                              SUBNORMAL_EXP=700.0,
                              # below this |x| (float64 soft labels), sigma(+-x) = 1/2 +- x/4 to 2^-1800 and
                              # the gradient's x term can lie below the normal range: formed scaled by 2^600
                              LINEAR_X=2.0**-900),
                          bench=Bench(workloads=(Workload((10**7,), (10**5,)),), sizes=((16,), (10**5,), (10**6,)))))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None,
                                     *, backend=None, return_grad=False):
    r"""Binary cross-entropy on logits: the negative log-likelihood of a Bernoulli model.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Logits :math:`x`, any shape.
    target : ndarray, float
        Labels :math:`y` in [0, 1] (soft labels allowed), the input's shape.
    weight : ndarray, optional
        Element weight :math:`w`, broadcastable to the input's shape.
    reduction : {"mean", "sum", "none"}
    pos_weight : ndarray, optional
        Weight :math:`\omega` of the positive term, broadcastable to the input's shape (class axis last).
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    :math:`\ell = w\,[\omega y\,\operatorname{sp}(-x) + (1 - y)\,\operatorname{sp}(x)]` with the softplus
    :math:`\operatorname{sp}(x) = \log(1 + e^x)`, and
    :math:`\partial\ell/\partial x = w\,[(1 - y)\sigma(x) - \omega y\,\sigma(-x)]`.

    Stable rewrite: :math:`\operatorname{sp}(\pm x) = \max(\pm x, 0) + \operatorname{log1p}(e^{-|x|})`,
    a sum of non-negative terms, and :math:`\sigma(\pm x)` from :math:`e^{-|x|}/(1 + e^{-|x|})` or
    :math:`1/(1 + e^{-|x|})`, never :math:`1 - \sigma`.  Both tails keep full relative accuracy
    (x = -40, y = 0 gives 4.2e-18 where PyTorch returns 0).  Unlike PyTorch (NaN), x = +-inf gives the
    limit: a term whose label factor is 0 counts as 0, so the loss is 0 or +inf.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import binary_cross_entropy_with_logits as bce
    >>> float(bce(np.array([-40.0]), np.array([0.0])))
    4.24835...e-18
    >>> bce(np.array([np.inf, -np.inf]), np.array([1.0, 1.0]), reduction="none").tolist()
    [0.0, inf]
    """
    func = "binary_cross_entropy_with_logits"
    x = check.float_input(func, "input", input)
    reduction = check.reduction(func, reduction)
    target = np.asarray(target)
    check.same_shape(func, "target", target, x.shape)
    arrays = {"target": target, "weight": weight, "pos_weight": pos_weight}
    flat = {name: None if value is None else check.float_like(func, name, value, x.dtype, x.shape).reshape(-1)
            for name, value in arrays.items()}
    backend = resolve(backend)
    return _elementwise(backend, BCE, x, reduction, x.size, return_grad, input=np.ascontiguousarray(x).reshape(-1),
                        **flat)


GNLL = declare(loss_kernel("gnll", "gaussian_nll_loss", inputs=(("input", IN), ("target", IN), ("var", IN)),
                           parameters=(("eps", FLOAT), ("full", INT)), gradients=("grad_input", "grad_var"),
                           constants=dict(
                               # a loss below CANCEL times its largest term, max(|log v| / 2, (c + d^2/v) / 2),
                               # log v < 0 cancelling the positive terms, is redone with log v in double-double:
                               # float32 from logs good to 1e-13 (2^12 of it: 5e-10), float64 from logs of
                               # <= 1 ulp where at most half of the largest term cancels (2 ulp)
                               CANCEL_F32=2.0**-12, CANCEL_F64=0.5),
                           bench=Bench(workloads=(Workload((10**7,), (10**5,)),), sizes=((16,), (10**5,), (10**6,)))))


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean",
                      *, backend=None, return_grad=False):
    r"""Gaussian negative log-likelihood with predicted mean ``input`` and variance ``var``.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Predicted means :math:`\mu`.
    target : ndarray, float
        Observations :math:`t`, broadcastable to the input's shape.
    var : ndarray or float
        Variances, as PyTorch takes them: the input's shape; the input's shape without its last dim
        (one per row); the input's shape with one dimension of size 1 (shared along it); or a Python
        float.  Other shapes raise ValueError even where numpy would broadcast them (a ``(3,)`` var is
        per column for a ``(4, 3)`` input but per row for a ``(3, 3)`` one).  Must be >= 0.
    full : bool, default False
        Add the constant :math:`\tfrac12 \log 2\pi`.
    eps : float, default 1e-6
        Variances below ``eps`` are replaced by ``eps`` (value only, see Notes).
    reduction : {"mean", "sum", "none"}
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return ``(grad_input, grad_var)``, the gradients of the returned loss, of the shapes of
        ``input`` and ``var`` (a scalar of the input's dtype for a Python float ``var``).

    Returns
    -------
    loss : ndarray or scalar
    grads : tuple of ndarray
        Only with ``return_grad``.

    Notes
    -----
    With :math:`v = \max(\mathrm{var}, \epsilon)` and :math:`d = \mu - t`:
    :math:`\ell = \tfrac12(\log v + d^2/v)`, :math:`\partial\ell/\partial\mu = d/v` and
    :math:`\partial\ell/\partial v = \tfrac12(1/v - d^2/v^2)`.  As in PyTorch the clamp acts on the value
    and the gradient w.r.t. var passes straight through, evaluated at the clamped value.

    Stable rewrite: :math:`d^2/v` is evaluated as :math:`d\,(d/v)`, so it is finite whenever the
    quotient is, where PyTorch's :math:`(\mu - t)^2` overflows to inf first.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import gaussian_nll_loss
    >>> float(gaussian_nll_loss(np.array([1e200]), np.array([0.0]), np.array([1e300])))
    5.0e+99
    >>> loss, (g_mu, g_var) = gaussian_nll_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 1.0,
    ...                                         reduction="sum", return_grad=True)
    >>> float(loss), g_mu.tolist(), float(g_var)
    (2.5, [1.0, 2.0], -1.5)
    """
    func = "gaussian_nll_loss"
    x = check.float_input(func, "input", input)
    reduction = check.reduction(func, reduction)
    target = check.float_like(func, "target", target, x.dtype, x.shape)
    var_full, var_shape, grad_var_shape = check.gnll_var(func, var, x)
    eps = check.real(func, "eps", eps, 0.0)
    backend = resolve(backend)
    result = _elementwise(backend, GNLL, x, reduction, x.size, return_grad,
                          input=np.ascontiguousarray(x).reshape(-1), target=target.reshape(-1),
                          var=var_full.reshape(-1), eps=eps, full=int(bool(full)))
    if not return_grad:
        return result
    loss, (grad_input, grad_var) = result
    if grad_var_shape is None:
        grad_var = x.dtype.type(_sum_to_shape(grad_var, ()))
    else:
        grad_var = _sum_to_shape(grad_var, var_shape).reshape(grad_var_shape)
    return loss, (grad_input, grad_var)


KL = declare(loss_kernel("kl", "kl_div", inputs=(("input", IN), ("target", IN)), parameters=(("log_target", INT),),
                         constants=dict(
                             # |log p - input| below CANCEL times |input| is redone with log p in
                             # double-double: float32 from logs good to 1e-13 (2^16 of it: 6.4e-9, 0.11
                             # float ulp), float64 from logs of <= 1 ulp (2^10 of it: within the 1e-12 of
                             # the documented exception)
                             CANCEL_F32=2.0**-16, CANCEL_F64=2.0**-10,
                             # below this log target e^lp loses precision (subnormal) or underflows while
                             # e^lp (lp - input) need not: the term is formed with a shifted exponent
                             LOG_TARGET_TAIL=-700.0),
                         bench=Bench("batchmean", workloads=(Workload((1024, 32768), (64, 4096)),),
                                     sizes=((4, 10), (32, 1024), (256, 4096)))))


def kl_div(input, target, reduction="mean", log_target=False, *, backend=None, return_grad=False):
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(p \,\|\, q)` with ``input`` = :math:`\log q`.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Log-probabilities :math:`\log q`.
    target : ndarray, float
        Probabilities :math:`p` (or :math:`\log p` with ``log_target``), broadcastable to the input's shape.
    reduction : {"mean", "batchmean", "sum", "none"}
        ``batchmean`` divides the sum by ``input.shape[0]`` (the KL divergence per sample); ``mean``
        divides by the number of elements, as PyTorch does.
    log_target : bool, default False
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    Pointwise :math:`\ell = p(\log p - \log q)` and :math:`\partial\ell/\partial \log q = -p`.  Unlike
    PyTorch (NaN), a term with :math:`p = 0` is 0 with gradient 0 even where :math:`\log q = -\infty`
    or :math:`\log p = -\infty`.  As PyTorch, it is NaN against an input of NaN or ``+inf`` (no
    log-probability), and a target of ``+inf`` (no probability) gives NaN.  Where :math:`\log p` and :math:`\log q` agree to many digits the
    difference is formed from a double-double :math:`\log p`, so the term keeps its relative accuracy
    (to 1e-12 in float64) instead of cancelling.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import kl_div
    >>> p = np.array([[0.5, 0.5, 0.0]])
    >>> float(kl_div(np.log(np.array([[0.25, 0.25, 0.5]])), p, reduction="batchmean"))
    0.69314...
    >>> kl_div(np.array([[-np.inf]]), np.array([[0.0]]), reduction="none").tolist()
    [[0.0]]
    """
    func = "kl_div"
    x = check.float_input(func, "input", input)
    reduction = check.reduction(func, reduction, ("none", "batchmean", "mean", "sum"))
    target = check.float_like(func, "target", target, x.dtype, x.shape)
    backend = resolve(backend)
    batch = x.shape[0] if x.ndim else 1
    mean_reduction = "mean" if reduction in ("mean", "batchmean") else reduction
    return _elementwise(backend, KL, x, mean_reduction, batch if reduction == "batchmean" else x.size,
                        return_grad, input=np.ascontiguousarray(x).reshape(-1), target=target.reshape(-1),
                        log_target=int(bool(log_target)))


MSE = declare(loss_kernel("mse", "mse_loss", inputs=(("input", IN), ("target", IN), ("weight", IN)),
                          bench=Bench(workloads=(Workload((10**7,), (10**5,)),), sizes=((16,), (10**5,), (10**6,)))))


def mse_loss(input, target, reduction="mean", weight=None, *, backend=None, return_grad=False):
    r"""Mean squared error: the Gaussian negative log-likelihood at unit variance, up to 1/2 and a constant.

    Parameters
    ----------
    input : ndarray, float32 or float64
    target : ndarray, float
        Broadcastable to the input's shape.
    reduction : {"mean", "sum", "none"}
        With ``weight``, ``mean`` is :math:`\sum w (x - t)^2 / \sum w`, as PyTorch does.
    weight : ndarray, optional
        Element weights of the input's shape exactly (as PyTorch; no broadcasting, which would make
        a ``(3,)`` weight per column of a ``(4, 3)`` input but per row of a ``(3, 3)`` one).
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    :math:`\ell = w (x - t)^2` and :math:`\partial\ell/\partial x = 2 w (x - t)`.  The square is formed in
    float64 for float32 inputs (no overflow below 1.8e308), and from the exact difference for float64.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import mse_loss
    >>> float(mse_loss(np.array([1.0, 2.0, 3.0]), np.zeros(3), weight=np.array([1.0, 2.0, 0.5])))
    3.857142...
    >>> float(mse_loss(np.array([1e19], np.float32), np.zeros(1, np.float32)))
    9.99999...e+37
    """
    func = "mse_loss"
    x = check.float_input(func, "input", input)
    reduction = check.reduction(func, reduction)
    target = check.float_like(func, "target", target, x.dtype, x.shape).reshape(-1)
    weight = check.element_weight(func, weight, x)
    backend = resolve(backend)
    weight, denominator = _denominator(weight, weight, x.size, reduction)
    return _elementwise(backend, MSE, x, reduction, denominator, return_grad,
                        input=np.ascontiguousarray(x).reshape(-1), target=target, weight=weight)


HUBER = declare(loss_kernel("huber", "l1_loss", inputs=(("input", IN), ("target", IN), ("weight", IN)),
                            parameters=(("delta", FLOAT), ("smooth", INT)),
                            variants=(("beta", "smooth_l1_loss"), ("delta", "huber_loss"))))


def _huber(func, input, target, reduction, weight, delta, smooth, weights_mean, backend, return_grad):
    """A loss of the huber kernel, whose ``delta`` and ``smooth`` select the form (kernels/stableloss.h):
    l1_loss, smooth_l1_loss or huber_loss.  A weighted ``mean`` divides by the weights' sum where
    ``weights_mean`` (l1_loss), else by the number of elements (huber_loss), as PyTorch does."""
    x = check.float_input(func, "input", input)
    reduction = check.reduction(func, reduction)
    target = check.float_like(func, "target", target, x.dtype, x.shape).reshape(-1)
    weight = check.element_weight(func, weight, x)
    backend = resolve(backend)
    weight, denominator = _denominator(weight, weight, x.size, reduction) if weights_mean else (weight, x.size)
    return _elementwise(backend, HUBER, x, reduction, denominator, return_grad,
                        input=np.ascontiguousarray(x).reshape(-1), target=target, weight=weight, delta=delta,
                        smooth=int(smooth))


def l1_loss(input, target, reduction="mean", weight=None, *, backend=None, return_grad=False):
    r"""Mean absolute error: the negative log-likelihood of a Laplace model at unit scale, up to a constant.

    Parameters
    ----------
    input : ndarray, float32 or float64
    target : ndarray, float
        Broadcastable to the input's shape.
    reduction : {"mean", "sum", "none"}
        With ``weight``, ``mean`` is :math:`\sum w |x - t| / \sum w`, as PyTorch does.
    weight : ndarray, optional
        Element weights of the input's shape exactly (as PyTorch, no broadcasting).
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    :math:`\ell = w |x - t|` and :math:`\partial\ell/\partial x = w \operatorname{sign}(x - t)`, 0 at
    :math:`x = t` as in PyTorch (NaN for a NaN input or target, where PyTorch gives 0).  The difference
    is exact (float32 in float64, float64 as a double-double, TwoSum) and the loss rounded once before
    the weight; where :math:`x - t` overflows with x and t finite it is taken as
    :math:`2 (x/2 - t/2)`, so :math:`w |x - t|` is finite wherever it is in exact arithmetic (PyTorch:
    inf).  The same kernel computes :func:`smooth_l1_loss` and :func:`huber_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import l1_loss
    >>> float(l1_loss(np.array([1.0, 2.0, 3.0]), np.zeros(3), weight=np.array([1.0, 2.0, 0.5])))
    1.857142...
    >>> loss, grad = l1_loss(np.array([1.0, 0.0, -2.0]), np.zeros(3), reduction="sum", return_grad=True)
    >>> float(loss), grad.tolist()
    (3.0, [1.0, 0.0, -1.0])
    >>> float(l1_loss(np.array([1e308]), np.array([-1e308]), reduction="sum", weight=np.array([0.25])))
    5e+307
    """
    return _huber("l1_loss", input, target, reduction, weight, 0.0, True, True, backend, return_grad)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0, *, backend=None, return_grad=False):
    r"""Smooth L1 loss: quadratic below ``beta``, then the absolute error less ``beta/2``.

    Parameters
    ----------
    input : ndarray, float32 or float64
    target : ndarray, float
        Broadcastable to the input's shape.
    reduction : {"mean", "sum", "none"}
    beta : float >= 0, default 1.0
        The threshold of :math:`|x - t|` where the loss turns linear; 0 gives :func:`l1_loss`.
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    With :math:`d = x - t`: :math:`\ell = d^2 / (2\beta)` and :math:`\partial\ell/\partial x = d/\beta`
    where :math:`|d| < \beta`, else :math:`\ell = |d| - \beta/2` and
    :math:`\partial\ell/\partial x = \operatorname{sign}(d)` (0 at :math:`d = 0`), as PyTorch.  The
    branch is decided on the exact difference; the quadratic is formed as :math:`d \cdot (d/\beta)`
    from the double-double quotient (finite and normal wherever the loss is, e.g.
    :math:`d = 10^{-160}, \beta = 10^{-150}`), the linear form as the exact :math:`|d| - \beta/2`,
    each rounded once.  ``beta = inf`` gives 0 for every finite :math:`d`.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import smooth_l1_loss
    >>> loss, grad = smooth_l1_loss(np.array([0.5, 3.0]), np.zeros(2), reduction="none", return_grad=True)
    >>> loss.tolist(), grad.tolist()
    ([0.125, 2.5], [0.5, 1.0])
    >>> float(smooth_l1_loss(np.array([1e-160]), np.zeros(1), beta=1e-150))
    5e-171
    """
    func = "smooth_l1_loss"
    beta = check.real(func, "beta", beta, 0.0)
    return _huber(func, input, target, reduction, None, beta, True, False, backend, return_grad)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None, *, backend=None, return_grad=False):
    r"""Huber loss: quadratic below ``delta``, then linear with slope ``delta``.

    Parameters
    ----------
    input : ndarray, float32 or float64
    target : ndarray, float
        Broadcastable to the input's shape.
    reduction : {"mean", "sum", "none"}
        With ``weight``, ``mean`` is :math:`\sum w \ell / N` over the N elements, as PyTorch does (unlike
        :func:`l1_loss` and :func:`mse_loss`, which divide by :math:`\sum w`).
    delta : float > 0, default 1.0
        The threshold of :math:`|x - t|` where the loss turns linear.
    weight : ndarray, optional
        Element weights of the input's shape exactly (as PyTorch, no broadcasting).
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    With :math:`d = x - t`: :math:`\ell = w d^2/2` and :math:`\partial\ell/\partial x = w d` where
    :math:`|d| < \delta`, else :math:`\ell = w \delta (|d| - \delta/2)` and
    :math:`\partial\ell/\partial x = w \delta \operatorname{sign}(d)`, as PyTorch.  The branch is
    decided on the exact difference and each form computed directly from it (never as :math:`\delta`
    times the smooth L1 loss), rounded once before the weight.  Where :math:`d^2/2` or
    :math:`\delta (|d| - \delta/2)` leaves the double range (overflow, or below the normals) while the
    weighted loss need not, the weight is taken in first; where :math:`x - t` overflows with x and t
    finite the loss is formed from :math:`x/2 - t/2`.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import huber_loss
    >>> loss, grad = huber_loss(np.array([0.5, -3.0]), np.zeros(2), delta=2.0, reduction="none",
    ...                         return_grad=True)
    >>> loss.tolist(), grad.tolist()
    ([0.125, 4.0], [0.5, -2.0])
    >>> float(huber_loss(np.array([1.5e154]), np.zeros(1), delta=1e155, weight=np.array([0.5])))
    5.625...e+307
    """
    func = "huber_loss"
    delta = check.positive_real(func, "delta", delta)
    return _huber(func, input, target, reduction, weight, delta, False, False, backend, return_grad)

FOCAL = declare(loss_kernel("focal", "sigmoid_focal_loss", inputs=(("inputs", IN), ("targets", IN)),
                            parameters=(("alpha", FLOAT), ("gamma", FLOAT)),
                            constants=dict(
                                # float32: a soft-label gradient whose double terms cancel below this times
                                # the largest is redone in double-double (the cheap grade's 4e-12 leaves
                                # 1e-9 there: 0.02 float ulp), as BCE's
                                SOFT_LABEL_CANCEL=2.0**-8,
                                # float32 calls with a larger gamma take the double-double path for every
                                # element: gamma times the rounding of 1 - p_t in double (3e-16) must stay
                                # far below a float ulp in q^gamma = exp(gamma log q)
                                F32_GAMMA_MAX=2.0**16,
                                # (1 - p_t)(1 + e^-|x|) below this (a target below it against x < -665)
                                # is formed from logs: log-add-exp of log t and log(1 - t) - |x|
                                TINY=2.0**-960,
                                # float64: elements with |x| or -gamma log(1 - p_t) beyond this take the
                                # double-double path (exp and log to 2^-100); the others the fast
                                # double-double forms (to 2^-57), whose exp keeps its accuracy above e^-690
                                FAST64_RANGE=690.0,
                                # float64: a soft-label gradient whose terms cancel below this times the
                                # largest is redone on the double-double path (the fast forms leave
                                # ~2^-59 of the largest term: 1 ulp of the gradient there; 0.4% of random
                                # soft labels)
                                FAST64_CANCEL=2.0**-6)))


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none", *, backend=None, return_grad=False):
    r"""Sigmoid focal loss (RetinaNet's): BCE with logits scaled down where the prediction is already right.

    ``torchvision.ops.sigmoid_focal_loss``'s signature and semantics (torchvision need not be installed).

    Parameters
    ----------
    inputs : ndarray, float32 or float64
        Logits :math:`x`, any shape.
    targets : ndarray, float
        Labels :math:`t` in [0, 1] (soft labels allowed), the shape of ``inputs``.
    alpha : float, default 0.25
        Weight of the positives, in [0, 1]: :math:`\alpha_t = \alpha t + (1 - \alpha)(1 - t)`; a
        negative alpha (torchvision: -1) weighs nothing.
    gamma : float, default 2.0
        Exponent of the modulating factor :math:`(1 - p_t)`, finite and >= 0.
    reduction : {"none", "mean", "sum"}
        Default ``"none"``, as torchvision.
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``inputs`` (for ``"none"``: of its sum).

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    With :math:`p = \sigma(x)`, :math:`p_t = p t + (1 - p)(1 - t)`, :math:`q = 1 - p_t` and the BCE with
    logits :math:`c = t\,\operatorname{sp}(-x) + (1 - t)\,\operatorname{sp}(x)`:
    :math:`\ell = \alpha_t\, c\, q^\gamma` and
    :math:`\partial\ell/\partial x = \alpha_t\,(q^\gamma (\sigma(x) - t) + \gamma\, c\, q^{\gamma - 1}
    \sigma(x)\sigma(-x)(1 - 2t))`.

    Stable rewrite: with :math:`e = e^{-|x|}`, :math:`\sigma(x) = A/(1 + e)` and :math:`\sigma(-x) = B/(1 + e)`,
    :math:`(A, B) = (1, e)` for :math:`x \ge 0` and :math:`(e, 1)` below, so
    :math:`q = (t B + (1 - t) A)/(1 + e)`, a sum of non-negative terms (never 1 minus :math:`p_t`);
    :math:`c = \operatorname{log1p}(e) + (1 - t)\max(x, 0) + t \max(-x, 0)`;
    :math:`q^\gamma = \exp(\gamma \log q)` with :math:`\log q = \log(t B + (1 - t) A) - \operatorname{log1p}(e)`,
    for hard labels :math:`\min(\mp x, 0) - \operatorname{log1p}(e)` exactly (so x = 40, t = 1 gives
    :math:`q^2 = e^{-80}`, not 0); the gradient is
    :math:`\alpha_t q^\gamma ((1 - t) A - t B + \gamma c (1 - 2t)\, e/(t B + (1 - t) A))/(1 + e)`, whose
    :math:`q^{\gamma - 1}` is never formed.  float32 computes in double; float64 in double-double,
    from exp and log good to 2^-57 (to 2^-100 where a soft label's gradient cancels, as float32 then,
    and beyond :math:`e^{-690}`).  The float64 gradient with soft labels is within 4 ulp of its largest
    term where those cancel (docs/design.md).

    Differences from torchvision: the gradient is the true (finite) derivative where torch's autograd
    gives NaN (gamma < 1 at a confident prediction, e.g. gamma = 0.5, x = 100, t = 1, where it forms
    :math:`0^{-1/2} \cdot 0`), x = +-inf gives the limits (loss 0 or +inf) instead of NaN, an
    :math:`\alpha_t` of 0 gives 0 also against an infinite loss, and these raise ValueError where
    torchvision computes: targets outside [0, 1], alpha above 1 or NaN, gamma negative or infinite.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import sigmoid_focal_loss
    >>> sigmoid_focal_loss(np.array([40.0]), np.array([1.0])).tolist()  # torchvision: [0.0]
    [1.91691201843...e-53]
    >>> loss, grad = sigmoid_focal_loss(np.array([100.0]), np.array([1.0]), gamma=0.5, return_grad=True)
    >>> grad.tolist()  # torchvision: [nan]
    [-2.690660989936...e-66]
    """
    func = "sigmoid_focal_loss"
    x = check.float_input(func, "inputs", inputs)
    targets = np.asarray(targets)
    check.same_shape(func, "targets", targets, x.shape)
    targets = check.float_like(func, "targets", targets, x.dtype, x.shape).reshape(-1)
    check.probabilities(func, "targets", targets)
    alpha = check.focal_alpha(func, alpha)
    gamma = check.focal_gamma(func, gamma)
    if not isinstance(reduction, str) or reduction not in check.REDUCTIONS:  # torchvision's message
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction modes: 'none', "
                         f"'mean', 'sum'")
    backend = resolve(backend)
    return _elementwise(backend, FOCAL, x, reduction, x.size, return_grad, inputs=np.ascontiguousarray(x).reshape(-1),
                        targets=targets, alpha=alpha, gamma=gamma)


PNLL = declare(loss_kernel("pnll", "poisson_nll_loss", inputs=(("input", IN), ("target", IN)),
                           parameters=(("log_input", INT), ("full", INT), ("eps", FLOAT)),
                           constants=dict(
                               # a loss or gradient below CANCEL times its largest term is redone from a
                               # triple-double e^x or log(x + eps): float32 computes in double (2**-52 of the
                               # terms, 2**-32 of the result above this), float64 with double-double e^x and
                               # log(x + eps) (2**-69 of the terms, 2**-57 of the result above this)
                               CANCEL_F32=2.0**-20, CANCEL_F64=2.0**-12,
                               # float64 beyond EXP_RANGE_F64, where e^x is a double (<= 1 ulp): terms within a
                               # factor 4 of each other are redone (then t 2**-n stays finite on that path)
                               CANCEL_WIDE=0.75,
                               # float64 inputs with |x| (log_input) or |log(x + eps)| beyond this take the
                               # triple-double path: the double-double e^x's low part would be subnormal (and
                               # e^x can overflow where e^x - t x does not)
                               EXP_RANGE_F64=690.0,
                               # log_input, float64: above this x, e^x - t x > DBL_MAX for every double t (e^x/x
                               # exceeds DBL_MAX): the loss is +inf
                               OVERFLOW_F64=717.0,
                               # psi(w) = w - log1p(w) of the full loss comes from its atanh series for w in
                               # [PSI_LOW, PSI_HIGH] (|w/(2 + w)| < 0.3: 16 terms), from w - log1p(w) outside,
                               # where the difference cancels by at most 4.1
                               PSI_LOW=-0.45, PSI_HIGH=0.85,
                               # float64 full losses without log_input take the scalar path above this eps,
                               # where log(2 pi t)/2 - eps (log(2 pi t)/2 > 0.918) can cancel: log t there in
                               # double-double (not log_hl's 2**-69)
                               EPS_NEAR=0.2295,
                               # and above this target, whose log leaves log_hl's range (log t > 690)
                               T_HL_MAX=2.0**995)))


def poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction="mean", *, backend=None,
                     return_grad=False):
    r"""Poisson negative log-likelihood of counts ``target`` under the rate ``exp(input)`` (or ``input``).

    Parameters
    ----------
    input : ndarray, float32 or float64
        The log-rate :math:`x` (``log_input=True``) or the rate :math:`\lambda` itself.
    target : ndarray, float
        Counts :math:`t` (any real values are taken), broadcastable to the input's shape.
    log_input : bool, default True
        ``True``: :math:`\ell = e^x - t x`; ``False``: :math:`\ell = x - t \log(x + \epsilon)`.
    full : bool, default False
        Add the Stirling term :math:`t \log t - t + \tfrac12 \log(2\pi t)` where :math:`t > 1`, as PyTorch.
    eps : float, default 1e-8
        Added to the rate when ``log_input=False``.  :math:`x + \epsilon` is taken exactly (the sum of
        the input value and the float ``eps``, not rounded to the input's dtype as PyTorch rounds it);
        must be >= 0.
    reduction : {"mean", "sum", "none"}
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the returned loss w.r.t. ``input``.

    Returns
    -------
    loss : ndarray or scalar
    grad : ndarray
        Only with ``return_grad``.

    Notes
    -----
    With ``log_input``, :math:`\ell = e^x - t x` and :math:`\partial\ell/\partial x = e^x - t`; without,
    :math:`\ell = x - t \log\lambda` and :math:`\partial\ell/\partial x = 1 - t/\lambda` with
    :math:`\lambda = x + \epsilon`.  The Stirling term does not depend on the input.

    Stable rewrite: the terms are formed exactly (:math:`t x` and :math:`\lambda - t = (x - t) + \epsilon`
    by error-free transformations) and subtracted once, from :math:`e^x` or :math:`\log\lambda` in
    double-double, or triple-double where the loss or the gradient cancels further (near
    :math:`e^x = t x`, :math:`e^x = t`, :math:`x = t \log\lambda`): every value keeps its relative accuracy.
    With ``full`` the loss is computed as :math:`t\,\psi(w) + \tfrac12\log(2\pi t)`
    (:math:`- \epsilon`), :math:`\psi(w) = w - \log(1 + w) \ge 0`, :math:`w = e^x/t - 1` (or
    :math:`\lambda/t - 1`): the same value without the cancellation of :math:`t \log t` against
    :math:`t x`, which leaves PyTorch's float64 loss at :math:`t = 10^{15}` with no correct digit.
    :math:`e^x - t x` is finite where :math:`e^x` alone overflows.
    Unlike PyTorch (NaN): a target of 0 makes :math:`t x` and :math:`t \log\lambda` zero whatever the
    input, so :math:`x = -\infty` (or :math:`\lambda = 0`) gives the loss 0 (or :math:`x`) and the gradient
    0 (or 1); :math:`x = +\infty` gives the limit :math:`+\infty` for a finite target.  As PyTorch,
    :math:`\lambda < 0` gives a NaN loss, ``full`` with :math:`t = +\infty` gives NaN, and NaN in gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import poisson_nll_loss
    >>> float(poisson_nll_loss(np.array([2.0]), np.array([3.0])))  # e^2 - 3 * 2
    1.38905...
    >>> poisson_nll_loss(np.array([-np.inf, 710.0]), np.array([0.0, 3e305]), reduction="none").tolist()
    [0.0, 1.03994766161711...e+307]
    >>> float(poisson_nll_loss(np.array([np.log(1e15)]), np.array([1e15]), full=True))  # PyTorch: 20.0
    18.18832673066...
    """
    func = "poisson_nll_loss"
    x = check.float_input(func, "input", input)
    target = check.float_like(func, "target", target, x.dtype, x.shape).reshape(-1)
    eps = check.real(func, "eps", eps, 0.0)
    reduction = check.reduction(func, reduction)
    backend = resolve(backend)
    return _elementwise(backend, PNLL, x, reduction, x.size, return_grad, input=np.ascontiguousarray(x).reshape(-1),
                        target=target, log_input=int(bool(log_input)), full=int(bool(full)), eps=eps)


def _elementwise(backend, kernel, like, reduction, denominator, return_grad, **args):
    """Run an elementwise loss kernel on arrays shaped ``like``; gradients come back in that shape."""
    result, grads = _run_loss(backend, kernel, like.dtype, like.size, reduction, denominator, None,
                              return_grad, args)
    if reduction == "none":
        result = result.reshape(like.shape)
    if not return_grad:
        return result
    shaped = tuple(grad.reshape(like.shape) for grad in grads)
    return result, shaped[0] if len(shaped) == 1 else shaped


def _run_loss(backend, kernel, dtype, n_rows, reduction, denominator, counted, return_grad, inputs,
              ieee=False, extras=None):
    """One fused kernel call: the reduced loss (or the per-row losses) and the list of gradients.

    ``inputs`` holds the kernel's inputs and parameters by name; the outputs are allocated here, but for
    the kernel's extra outputs, given in ``extras`` by name (None: not wanted; default none).  A
    ``mean`` whose sum overflows although the mean does not (float64 terms near the top of the range)
    is recomputed from the per-row losses scaled by a power of two, or where there are weights from the
    losses of the weights scaled by one (the terms themselves may overflow).  ``ieee``: see
    :func:`_reduce` and :func:`_grad_scale`.
    """
    grad_shape = (n_rows, inputs[kernel.row_width]) if kernel.row_width else (n_rows,)  # rows, or elements
    grads = [_outputs.empty(grad_shape, dtype) if return_grad else None for _ in kernel.gradients]
    loss = np.empty(n_rows, dtype) if reduction == "none" else None
    grad_scale = _grad_scale(reduction, denominator, counted, ieee)
    extras = dict.fromkeys(kernel.extras) | (extras or {})
    total = run(backend, kernel, dtype, n_rows, inputs, dict(zip(kernel.gradients, grads), loss=loss, **extras),
                grad_scale)
    if reduction == "mean" and math.isinf(total) and denominator:
        # every loss is linear in its weight: w 2^-64 gives the terms 2^-64 exactly, but where the scaled
        # weight is subnormal (and its term negligible against the overflowing ones)
        weight = inputs.get("weight")
        loss = np.empty(n_rows, dtype)
        scaled_inputs = inputs if weight is None else inputs | {"weight": np.ldexp(weight, -64)}
        run(backend, kernel, dtype, n_rows, scaled_inputs,
            dict.fromkeys(kernel.gradients + kernel.extras, None) | {"loss": loss}, grad_scale)
        scaled = exact_sum(loss, 2.0**-64 if weight is None else 1.0) / denominator
        return dtype.type(scaled * 2.0**64), grads
    return _reduce(total, denominator, reduction, loss, dtype, ieee), grads


# ---------------------------------------------------------------------------------------------------

LSE = declare(Kernel("lse", "logsumexp", (("x", IN), ("n_rows", INT), ("n_cols", INT), ("lse", OUT),
                                          ("log_softmax", OUT), ("softmax", OUT)), row_width="n_cols",
                     families="ce"))


def _lse_call(func, x, axis, axis_alias, backend, wanted):
    """The outputs ``wanted`` (names among lse, log_softmax, softmax) of one lse kernel call over the
    rows along ``axis`` (or its torch spelling ``axis_alias``), row-shaped; the function mapping a
    row-shaped result back to the input's layout; and the axis, normalised."""
    x = check.float_input(func, "x", x)
    if x.ndim == 0:
        raise ValueError(f"{func}: x must have at least one dimension, got a 0-d array")
    axis = _axis(func, x, check.either(func, "axis", axis, "dim", axis_alias))
    backend = resolve(backend)
    rows, restore = _class_rows(x, axis)
    n_rows, n_cols = rows.shape
    outputs = dict.fromkeys(("lse", "log_softmax", "softmax"))
    for name in wanted:
        outputs[name] = _outputs.empty((n_rows,) if name == "lse" else rows.shape, x.dtype)
    if n_cols == 0:
        if outputs["lse"] is not None:
            outputs["lse"].fill(-np.inf)  # an empty sum: log 0
    else:
        run(backend, LSE, x.dtype, n_rows, dict(x=rows, n_cols=n_cols), outputs)
    return [outputs[name] for name in wanted], restore, axis


def logsumexp(x, axis=check.Default(-1), keepdims=check.Default(False), *, dim=None, keepdim=None,
              backend=None, return_grad=False):
    r"""Log of the sum of exponentials along an axis, :math:`\log \sum_j e^{x_j}`.

    Parameters
    ----------
    x : ndarray, float32 or float64
    axis : int, default -1
    keepdims : bool, default False
    dim : int, optional
        PyTorch's spelling of ``axis``; pass one of the two.
    keepdim : bool, optional
        PyTorch's spelling of ``keepdims``; pass one of the two.
    backend : {"c", "numba", "numpy"}, optional
    return_grad : bool, default False
        Also return the gradient of the sum of the returned values, :func:`softmax` along the axis,
        from the same kernel call.

    Returns
    -------
    ndarray
        The input's dtype; ``-inf`` over an empty axis.
    grad : ndarray
        Only with ``return_grad``: the input's shape and dtype.

    Notes
    -----
    Computed as :math:`a + \operatorname{log1p}(\sum_{j \ne k} e^{x_j - a})` with :math:`a = x_k` the
    maximum, the maximum term left out of the sum (Blanchard, Higham & Higham, IMA J. Numer. Anal.
    41(4), 2021).  Its gradient is :func:`softmax`.  A row whose maximum is infinite gives that
    maximum: ``+inf`` for a row holding ``+inf``, ``-inf`` for a row of only ``-inf`` (an all-masked
    row), as PyTorch and SciPy; a row holding a NaN gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import logsumexp
    >>> float(logsumexp(np.array([0.0, -40.0])))
    4.24835...e-18
    >>> logsumexp(np.array([[np.inf, 0.0], [-np.inf, -np.inf]]), dim=1).tolist()
    [inf, -inf]
    >>> value, grad = logsumexp(np.array([0.0, np.log(3.0)]), return_grad=True)
    >>> round(float(value), 12), grad.round(12).tolist()
    (1.386294361120, [0.25, 0.75])
    """
    func = "logsumexp"
    keepdims = check.either(func, "keepdims", keepdims, "keepdim", keepdim)
    wanted = ("lse", "softmax") if return_grad else ("lse",)
    outputs, restore, axis = _lse_call(func, x, axis, dim, backend, wanted)
    shape = np.shape(x)
    out = outputs[0].reshape(shape[:axis] + shape[axis + 1:])
    if keepdims:
        out = np.expand_dims(out, axis)
    return (out, restore(outputs[1])) if return_grad else out


def log_softmax(x, axis=check.Default(-1), *, dim=None, backend=None):
    r"""Log-softmax along an axis, :math:`x_j - \log \sum_i e^{x_i}`.

    Parameters
    ----------
    x : ndarray, float32 or float64
    axis : int, default -1
    dim : int, optional
        PyTorch's spelling of ``axis``; pass one of the two.
    backend : {"c", "numba", "numpy"}, optional

    Returns
    -------
    ndarray
        The input's shape and dtype.

    Notes
    -----
    Computed as :math:`z_j - \operatorname{log1p}(s)` with :math:`z_j = x_j - \max x` and
    :math:`s` the sum of :math:`e^{z_i}` without the maximum term: both terms are <= 0, so there is no
    cancellation and the maximum's entry keeps full relative accuracy.  A row with a NaN, a ``+inf``
    or only ``-inf`` gives NaN, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import log_softmax
    >>> log_softmax(np.array([40.0, 0.0])).tolist()
    [-4.248354255291589e-18, -40.0]
    """
    (out,), restore, _ = _lse_call("log_softmax", x, axis, dim, backend, ("log_softmax",))
    return restore(out)


def softmax(x, axis=check.Default(-1), *, dim=None, backend=None):
    r"""Softmax along an axis, :math:`e^{x_j} / \sum_i e^{x_i}`.

    Parameters
    ----------
    x : ndarray, float32 or float64
    axis : int, default -1
    dim : int, optional
        PyTorch's spelling of ``axis``; pass one of the two.
    backend : {"c", "numba", "numpy"}, optional

    Returns
    -------
    ndarray
        The input's shape and dtype.

    Notes
    -----
    Computed as :math:`e^{z_j}/(1 + s)` with :math:`z_j = x_j - \max x` and :math:`s` the sum without
    the maximum term; the shift :math:`x_j - \max x` is carried with its rounding error so small
    probabilities keep their relative accuracy.  A row with a NaN, a ``+inf`` or only ``-inf`` gives
    NaN, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss import softmax
    >>> softmax(np.array([0.0, np.log(3.0)])).round(12).tolist()
    [0.25, 0.75]
    """
    (out,), restore, _ = _lse_call("softmax", x, axis, dim, backend, ("softmax",))
    return restore(out)
