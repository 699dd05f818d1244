"""The C backend: one generic caller of the cffi extension ``stableloss._kernels`` (kernels/).

:func:`kernel` returns ``sl_<stem>_<f32|f64>`` wrapped so that it takes the arguments of
kernels/stableloss.h in order, as numpy arrays (C-contiguous, of the parameter's type), ``None`` for
NULL, Python ints and floats.  Arrays are passed without a copy (``ffi.from_buffer``); the header's
calling convention puts the outputs after the last scalar argument, so exactly those must be
writable.  cffi releases the GIL during the call.
"""

import numpy as np

try:
    from ._kernels import ffi, lib
except ImportError as exc:  # not built, or built for another Python/platform
    raise ImportError(
        f"the stableloss C kernels are not available ({exc}); build them with `pip install .` "
        "from the source tree (needs a C compiler and cffi)"
    ) from exc

#: The C array type of each numpy dtype the kernels take, by type character (a cheap lookup).
_CTYPES = {np.dtype(t).char: c for t, c in ((np.float32, "float[]"), (np.float64, "double[]"), (np.int64, "int64_t[]"))}
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _caller(name):
    """The C function ``name`` taking numpy arrays / None in its pointer positions."""
    function = getattr(lib, name)
    params = ffi.typeof(function).args
    last_scalar = max((i for i, p in enumerate(params) if p.kind != "pointer"), default=-1)
    # (position, writable) of each pointer parameter; the scalars go to cffi as they are
    pointers = tuple((i, i > last_scalar) for i, p in enumerate(params) if p.kind == "pointer")
    n_params, from_buffer, null, ctypes = len(params), ffi.from_buffer, ffi.NULL, _CTYPES

    def call(*args):
        if len(args) != n_params:
            raise TypeError(f"{name} takes {n_params} arguments, got {len(args)}")
        args = list(args)
        for i, writable in pointers:
            array = args[i]
            args[i] = null if array is None else from_buffer(ctypes[array.dtype.char], array, writable)
        return function(*args)

    call.__name__ = call.__qualname__ = name
    return call


def kernel(stem, dtype):
    """The C kernel ``sl_<stem>_f32`` or ``sl_<stem>_f64`` for ``dtype``, as a Python callable.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 2.0, 4.0]); t = np.zeros(3); loss = np.empty(3)
    >>> kernel("mse", x.dtype)(x, t, None, 3, 1.0, 3, loss, None, None)
    >>> loss
    array([ 1.,  4., 16.])
    """
    return _caller(f"sl_{stem}_{_SUFFIX[np.dtype(dtype)]}")


def simd_level():
    """The instruction set the C kernels use: 0 = portable scalar code, 1 = AVX2+FMA."""
    return lib.sl_simd_level()


def set_simd_level(level):
    """Use ``level`` (0 scalar, 1 AVX2+FMA) if the CPU supports it, else the best it supports;
    ``None`` or a negative level restores the detected default.  For tests and benchmarks."""
    lib.sl_set_simd_level(-1 if level is None else int(level))
