"""Every argument check of the public API, in one place, run before any kernel.

Each check raises Python's usual exception type (IndexError for a class target out of range, as
PyTorch; ValueError for shapes and values and TypeError for types and dtypes, also where PyTorch raises
RuntimeError) with a message that names the function, the argument, what was expected and what was
received.  The checks also return the
argument in the form the kernels take (dtype, contiguity, broadcast shape), so that nothing past this
module has to guess.
"""

import math
import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("none", "mean", "sum")


def float_input(func, name, value):
    """The differentiable input: a float32 or float64 array (array-likes of Python floats give float64)."""
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} must be a float32 or float64 array, got dtype {array.dtype}")
    return array


def float_like(func, name, value, dtype, shape):
    """Another float argument: converted to the input's dtype and broadcast to ``shape`` (contiguous)."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{func}: {name} must be a floating-point array, got dtype {array.dtype}")
    if array.ndim == 0:  # a scalar, filled in directly (np.broadcast_to would cost 2.6 us more)
        return np.full(shape, array, dtype)
    return np.ascontiguousarray(broadcast(func, name, array, shape), dtype=dtype)


def broadcast(func, name, array, shape):
    """``array`` broadcast to ``shape`` (numpy rules) without changing ``shape``."""
    if array.shape == shape:  # np.broadcast_to would cost 2 us to return the same
        return array
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(f"{func}: {name} of shape {array.shape} cannot be broadcast to the input's "
                         f"shape {tuple(shape)}") from None


class Default:
    """The default of an argument with a second spelling (numpy's ``axis``, torch's ``dim``), told apart
    from the same value passed explicitly; shown as the value in signatures."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return repr(self.value)


def either(func, name, value, alias, alias_value):
    """The value of the argument ``name`` that may also be spelled ``alias`` (given unless None): the
    one passed, the default if neither; both at once raise TypeError."""
    if alias_value is None:
        return value.value if isinstance(value, Default) else value
    if not isinstance(value, Default):
        raise TypeError(f"{func}: pass {name}= or {alias}=, not both (got {name}={value!r}, "
                        f"{alias}={alias_value!r})")
    return alias_value


def same_shape(func, name, array, shape):
    if array.shape != tuple(shape):
        raise ValueError(f"{func}: {name} shape {array.shape} must equal the input shape {tuple(shape)}")


def element_weight(func, weight, input):
    """Element weights of the input's shape exactly (as PyTorch: no broadcasting, which would make a
    ``(3,)`` weight per column of a ``(4, 3)`` input but per row of a ``(3, 3)`` one), flat, in the
    input's dtype; None stays None."""
    if weight is None:
        return None
    weight = np.asarray(weight)
    same_shape(func, "weight", weight, input.shape)
    return float_like(func, "weight", weight, input.dtype, input.shape).reshape(-1)


def reduction(func, value, allowed=REDUCTIONS):
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{func}: reduction must be one of {choices}, got {value!r}")
    return value


def integer(func, name, value):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an integer, got {value!r}") from None


def positive_integer(func, name, value):
    number = integer(func, name, value)
    if number < 1:
        raise ValueError(f"{func}: {name} must be at least 1, got {number}")
    return number


def linear_weight(func, value, input):
    """The output matrix ``(V, D)`` of a linear layer on ``input`` (``(..., D)``), C-contiguous in the
    input's dtype."""
    matrix = np.asarray(value)
    if matrix.dtype.kind != "f":
        raise TypeError(f"{func}: linear_weight must be a floating-point array, got dtype {matrix.dtype}")
    if input.ndim == 0:
        raise ValueError(f"{func}: input must have a feature axis, shape (D,) or (..., D), got shape ()")
    if matrix.ndim != 2 or matrix.shape[1] != input.shape[-1]:
        raise ValueError(f"{func}: linear_weight must have shape (V, {input.shape[-1]}) for input of shape "
                         f"{input.shape}, got {matrix.shape}")
    return np.ascontiguousarray(matrix, dtype=input.dtype)


def linear_ce_target(func, target, batch_shape, n_classes, logits_shape):
    """The target of a linear cross-entropy, indices of shape ``batch_shape`` or probabilities of
    ``batch_shape + (V,)``, reshaped to the layout of the logits ``logits_shape`` (checked further by
    :func:`ce_target`)."""
    target = np.asarray(target)
    probabilities = target.dtype.kind == "f"
    shape = batch_shape + (n_classes,) if probabilities else batch_shape
    if target.shape != shape:
        kind = "probability" if probabilities else "class-index"
        raise ValueError(f"{func}: {kind} target must have shape {shape} for input of shape "
                         f"{batch_shape + ('D',)} and {n_classes} classes, got {target.shape}")
    return target.reshape(logits_shape if probabilities else logits_shape[:-1])


def _number(func, name, value):
    """``value`` as a Python float; TypeError if it is no real number (a bool included)."""
    if type(value) is not float:  # a Python float needs no conversion (and skips the slower ABC check)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
        value = float(value)
    return value


def real(func, name, value, low=-np.inf, high=np.inf):
    value = _number(func, name, value)
    if not low <= value <= high:
        raise ValueError(f"{func}: {name} must be between {low} and {high}, got {value}")
    return value


def positive_real(func, name, value):
    """A real number > 0 (+inf included)."""
    number = _number(func, name, value)
    if not number > 0:
        raise ValueError(f"{func}: {name} must be > 0, got {number}")
    return number
def focal_alpha(func, alpha):
    """torchvision's alpha: a weight in [0, 1] for the positive targets, or a negative number for no
    weighting (its test ``alpha >= 0``); returned as a float, -1.0 for no weighting.  Values above 1
    (a negative weight for the negatives) and NaN raise, where torchvision computes with them."""
    value = _number(func, "alpha", alpha)
    if value < 0:
        return -1.0
    if not value <= 1:
        raise ValueError(f"{func}: alpha must lie in [0, 1], or be negative for no weighting, got {value}")
    return value


def focal_gamma(func, gamma):
    """torchvision's gamma, the exponent of 1 - p_t: finite and >= 0 (torchvision computes a negative one:
    (1 - p_t)^gamma is then +inf, with a NaN gradient, for every confident prediction)."""
    value = _number(func, "gamma", gamma)
    if not 0 <= value < np.inf:
        raise ValueError(f"{func}: gamma must be a finite number >= 0, got {value}")
    return value


def probabilities(func, name, array):
    """Raise unless every entry of the float ``array`` lies in [0, 1] (NaN passes: NaN in, NaN out)."""
    outside = (array < 0) | (array > 1)
    if outside.any():
        raise ValueError(f"{func}: {name} must lie in [0, 1], got {array.reshape(-1)[np.argmax(outside.reshape(-1))]}")


def finite(func, name, value, low, strict=False):
    """``value`` as a float: finite and at least ``low`` (above it with ``strict``)."""
    value = _number(func, name, value)
    if not (math.isfinite(value) and (value > low if strict else value >= low)):
        raise ValueError(f"{func}: {name} must be a finite number {'>' if strict else '>='} {low:g}, got {value}")
    return value


def class_axis_input(func, value):
    """Cross-entropy/log-softmax input with its class axis: (C,), (N, C) or (N, C, d1, ..., dk)."""
    array = float_input(func, "input", value)
    if array.ndim == 0:
        raise ValueError(f"{func}: input must have a class axis, got a 0-d array")
    n_classes = array.shape[1] if array.ndim >= 2 else array.shape[0]
    if n_classes == 0:
        raise ValueError(f"{func}: input has 0 classes (shape {array.shape}); at least 1 is needed")
    return array


#: Up to this many class indices are range-checked as a Python list (measured break-even: about 32).
_FEW_INDICES = 16


def _index_shape(input):
    """The shape of class-index targets of a class-axis input: the input's without its class axis."""
    return input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()


def class_indices(func, target, input, ignore_index):
    """Class indices of any integer dtype, of the input's shape without its class axis, as flat int64.

    Returns ``(indices, counted)``: ``counted`` holds the indices that are not ``ignore_index``.  An
    index neither in [0, C) nor equal to ``ignore_index`` raises IndexError with PyTorch's message.
    """
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{func}: class-index target must have an integer dtype, got {target.dtype}")
    index_shape = _index_shape(input)
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if target.shape != index_shape:
        raise ValueError(f"{func}: class-index target must have shape {index_shape} for input of "
                         f"shape {input.shape}, got {target.shape}")
    indices = np.ascontiguousarray(target, dtype=np.int64).reshape(-1)
    if indices.size <= _FEW_INDICES:  # a numpy reduction costs 1.3 us of call overhead; a short list less
        values = indices.tolist()
        in_range = not values or (min(values) >= 0 and max(values) < n_classes)
    else:  # one reduction for both bounds: as unsigned integers, negative indices are the largest
        in_range = np.maximum.reduce(indices.view(np.uint64)) < n_classes
    if in_range and not 0 <= ignore_index < n_classes:  # the common case: nothing ignored
        return indices, indices
    counted = indices != ignore_index
    bad = counted & ((indices < 0) | (indices >= n_classes))
    if bad.any():
        first = indices[np.argmax(bad)]
        raise IndexError(f"Target {first} is out of bounds. ({func}: class indices must lie in "
                         f"[0, {n_classes}) or equal ignore_index={ignore_index})")
    return indices, indices[counted]


def ce_target(func, target, input, ignore_index):
    """Class indices (:func:`class_indices`) or class probabilities (input's shape).

    Returns ``(indices, probabilities, counted)``: exactly one of the first two is not None, and
    ``counted`` holds the index targets that are not ``ignore_index`` (None with probabilities).
    """
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        indices, counted = class_indices(func, target, input, ignore_index)
        return indices, None, counted
    if target.dtype.kind != "f":
        raise TypeError(f"{func}: target must hold class indices (integer dtype) or class probabilities "
                        f"(float dtype), got dtype {target.dtype}")
    if target.shape != input.shape:
        if target.shape == _index_shape(input):
            raise TypeError(f"{func}: class-index target must have an integer dtype, got {target.dtype}")
        raise ValueError(f"{func}: probability target must have the input's shape {input.shape}, "
                         f"got {target.shape}")
    if ignore_index >= 0:
        raise ValueError(f"{func}: ignore_index={ignore_index} is not supported with probability "
                         f"targets (use a negative ignore_index)")
    return None, target.astype(input.dtype, copy=False), None


def class_weight(func, weight, n_classes, dtype):
    if weight is None:
        return None
    weight = np.asarray(weight)
    if weight.dtype.kind != "f":
        raise TypeError(f"{func}: weight must be a floating-point array, got dtype {weight.dtype}")
    if weight.shape != (n_classes,):
        raise ValueError(f"{func}: weight must have shape ({n_classes},), one entry per class, "
                         f"got {weight.shape}")
    return np.ascontiguousarray(weight, dtype=dtype)


def gnll_var(func, var, input):
    """The variance as an array broadcast against ``input``, and its shape for the gradient.

    Accepted, as PyTorch: a Python real number; an array of the input's shape; the input's shape
    without its last dim (one variance per row); the input's shape with one dimension of size 1 (one
    variance shared along it).  Any other shape raises, also where numpy could broadcast it: a ``(3,)``
    var would mean one variance per column of a ``(4, 3)`` input but one per row of a ``(3, 3)`` one.
    Negative entries raise.  Returns ``(var_full, var_shape, grad_shape)``: the variance broadcast to
    the input's shape, the shape it was broadcast from, and the shape its gradient takes (None for a
    Python number).
    """
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        value = float(var)
        array, grad_shape, negative = np.asarray(value), None, value < 0
    else:
        array = np.asarray(var)
        if array.dtype.kind != "f":
            raise TypeError(f"{func}: var must be a Python float or a floating-point array, "
                            f"got dtype {array.dtype}")
        grad_shape = array.shape
        if array.shape != input.shape:
            if array.shape == input.shape[:-1]:
                array = array[..., None]  # one variance per row
            elif not _one_dimension_of_one(array.shape, input.shape):
                raise ValueError(f"{func}: var of shape {array.shape} does not fit the input's shape "
                                 f"{input.shape}: var must have the input's shape, the input's shape "
                                 f"without its last dimension {input.shape[:-1]} (one variance per row), "
                                 f"or the input's shape with one dimension of size 1")
        negative = np.count_nonzero(array < 0)  # np.any: 2.9 us more per small call
    if negative:
        raise ValueError(f"{func}: var has negative entries; variances must be >= 0")
    return float_like(func, "var", array, input.dtype, input.shape), array.shape, grad_shape


def _one_dimension_of_one(shape, input_shape):
    """Whether ``shape`` is ``input_shape`` with exactly one dimension replaced by 1."""
    differing = [size for size, input_size in zip(shape, input_shape) if size != input_size]
    return len(shape) == len(input_shape) and differing == [1]
