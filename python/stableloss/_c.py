"""The C backend: one generic caller of the cffi extension ``stableloss._kernels`` (kernels/).

:func:`kernel` returns ``sl_<stem>_<f32|f64>`` wrapped so that it takes the arguments of
kernels/stableloss.h as one list in the header's order: numpy arrays (C-contiguous, of the parameter's type),
``None`` for NULL, Python ints and floats.  Arrays are passed without a copy (``ffi.from_buffer``);
the header's calling convention puts the outputs after the last scalar argument, so exactly those
must be writable.  cffi releases the GIL during the call.
"""

import os

import numpy as np

#: Written by the build (setup.py) beside the extension when the kernels did not compile: the reason.
_BUILD_FAILURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build_failure.txt")


def _why_missing(import_error):
    """Why the extension does not import: the compile failure recorded by the build, else ``import_error``."""
    try:
        with open(_BUILD_FAILURE) as record:
            return f"they did not compile when stableloss was built: {record.read().strip()}"
    except FileNotFoundError:
        return str(import_error)


try:
    from ._kernels import ffi, lib
except ImportError as exc:  # not built (no compiler when installed), or built for another Python/platform
    raise ImportError(
        f"the stableloss C kernels are not available ({_why_missing(exc)}); build them with `pip install .` "
        "from the source tree (needs a C compiler and cffi)"
    ) from exc

#: The C array type of each numpy dtype the kernels take, by type character (a cheap lookup).
_CTYPES = {np.dtype(t).char: c for t, c in ((np.float32, "float[]"), (np.float64, "double[]"), (np.int64, "int64_t[]"))}
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _caller(name, n_args):
    """The C function ``name`` called with the list of its ``n_args`` arguments in the header's order:
    numpy arrays or None in the pointer positions, Python ints and floats in the others."""
    function = getattr(lib, name)
    params = ffi.typeof(function).args
    if len(params) != n_args:
        raise TypeError(f"{name} takes {len(params)} arguments, the declaration {n_args}")
    last_scalar = max((i for i, p in enumerate(params) if p.kind != "pointer"), default=-1)
    # (position, writable) of each pointer parameter; the scalars go to cffi as they are
    pointers = tuple((i, i > last_scalar) for i, p in enumerate(params) if p.kind == "pointer")
    from_buffer, null, ctypes = ffi.from_buffer, ffi.NULL, _CTYPES

    def call(args):
        values = list(args)
        for i, writable in pointers:  # the array's own C type: cffi rejects a wrong dtype, never reinterprets
            array = values[i]
            values[i] = null if array is None else from_buffer(ctypes[array.dtype.char], array, writable)
        return function(*values)

    call.__name__ = call.__qualname__ = name
    return call


def kernel(spec, dtype):
    """The C kernel ``sl_<stem>_f32`` or ``sl_<stem>_f64`` of the kernel declared by ``spec``
    (:class:`stableloss._spec.Kernel`) for ``dtype``, as a Python callable taking the list of its
    arguments in the header's order.

    Examples
    --------
    >>> import numpy as np
    >>> from stableloss._spec import KERNELS
    >>> x = np.array([1.0, 2.0, 4.0]); loss = np.empty(3)
    >>> # input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums
    >>> kernel(KERNELS["mse"], x.dtype)([x, np.zeros(3), None, 3, 1.0, 3, loss, None, None])
    >>> loss
    array([ 1.,  4., 16.])
    """
    return _caller(f"sl_{spec.stem}_{_SUFFIX[np.dtype(dtype)]}", len(spec.args))


#: The SIMD levels of kernels/simd.c, by number.
SIMD_LEVELS = ("scalar", "avx2", "avx512")
#: What each level runs, for reports.
SIMD_DESCRIPTIONS = {"scalar": "scalar", "avx2": "AVX2+FMA", "avx512": "AVX-512"}


def best_simd_level():
    """The best level this CPU supports (what the kernels run unless told otherwise), by name."""
    return SIMD_LEVELS[lib.sl_simd_best_level()]


def simd_level():
    """The instruction set the C kernels use now: ``"scalar"`` (portable C), ``"avx2"`` (AVX2+FMA) or
    ``"avx512"`` (AVX-512 F, DQ, BW and VL)."""
    return SIMD_LEVELS[lib.sl_simd_level()]


def set_simd_level(level):
    """Run the C kernels at ``level`` (a name of :data:`SIMD_LEVELS`); ``None`` restores the default:
    the level ``STABLELOSS_SIMD`` named when stableloss was imported, else the best the CPU supports.
    For tests and benchmarks.

    Raises
    ------
    ValueError
        If ``level`` is not a level's name, or names a level this CPU does not support.
    """
    if level is None:
        level = _default_level
    if level is None:
        lib.sl_set_simd_level(-1)
        return
    if level not in SIMD_LEVELS:
        raise ValueError(f"unknown SIMD level {level!r}: expected one of {', '.join(SIMD_LEVELS)}")
    best = best_simd_level()
    if SIMD_LEVELS.index(level) > SIMD_LEVELS.index(best):
        raise ValueError(f"SIMD level {level!r} is not supported by this CPU (the best it supports: {best!r})")
    lib.sl_set_simd_level(SIMD_LEVELS.index(level))


_default_level = None
if os.environ.get("STABLELOSS_SIMD"):
    try:
        set_simd_level(os.environ["STABLELOSS_SIMD"])
    except ValueError as exc:
        raise ValueError(f"STABLELOSS_SIMD: {exc}") from None
    _default_level = os.environ["STABLELOSS_SIMD"]
