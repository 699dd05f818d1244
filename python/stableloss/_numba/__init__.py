"""The Numba backend: one module per loss family (ce, nll, bce, gnll, kl, mse, huber, focal, pnll, lse),
options and numeric primitives in :mod:`._jit`.

:func:`kernel` returns a callable taking the arguments of ``sl_<stem>_f32/_f64`` in
kernels/stableloss.h as one list in the header's order.  Importing this package compiles nothing (it does not even
import Numba): the
family module is imported on the first ``kernel(stem, ...)`` call, and each family is compiled for one
dtype on the first request for that dtype, with one fixed signature (1-d C-contiguous arrays,
read-only inputs, which writable arrays also match); further compilation is then disabled, so no
call compiles a variant of its own.  Absent arrays (None) are passed to the jitted function as
zero-size arrays of the right type: one signature serves every combination of optional arguments,
and the kernels test ``array.size`` (every present array is non-empty whenever there is any work).

Caching
-------
Kernels are compiled with ``cache=True``.  Numba stores the machine code, per signature and host CPU,
in ``__pycache__`` beside these sources when that directory is writable.  When it is not (a read-only
site-packages), Numba's user-wide locator takes over: ``$NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/numba`` (``~/.cache/numba``), in a directory named after the package path.  If no
location is writable at all, the kernels are compiled in every process and nothing fails (tested in
tests/test_numba.py).  Numba checks a cached function only against its own source file; ._jit adds a
hash of every module of this package, so an edit of a shared primitive recompiles every kernel.  A
first call compiles for seconds; from the cache it costs mostly Numba's own start-up (importing numba,
whose registries import scipy.linalg for BLAS).  ``NUMBA_CPU_NAME=generic`` makes cached code
portable across x86-64 CPUs.
"""

import functools
import importlib

import numpy as np

from .._spec import FLOAT, IN, INDEX, INT, OUT, SHARED, SUMS


@functools.cache
def kernel(spec, dtype):
    """The Numba kernel declared by ``spec`` (:class:`stableloss._spec.Kernel`, the module of its stem)
    for float32 or float64 inputs, compiled (or loaded from the cache) now; it takes the list of the
    arguments of ``sl_<stem>_f32/_f64`` in order, arrays of any shape but C-contiguous."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"the Numba kernels take float32 or float64 inputs, got {dtype}")
    from numba import types  # numba is imported with the first kernel, not with the package

    module = importlib.import_module(f"{__name__}.{spec.stem}")
    float_type = types.float32 if dtype == np.float32 else types.float64
    read = types.Array(float_type, 1, "C", readonly=True)
    arg_types = {IN: read, SHARED: read, INDEX: types.Array(types.int64, 1, "C", readonly=True),
                 OUT: types.Array(float_type, 1, "C"), SUMS: types.Array(types.float64, 1, "C"),
                 INT: types.int64, FLOAT: types.float64}
    signature = tuple(arg_types[kind] for _, kind in spec.args)
    jitted = module.kernel
    jitted.disable_compile(False)
    jitted.compile(signature)
    jitted.disable_compile(True)  # calls convert to this signature instead of compiling their own
    # (position, zero-size stand-in for None) of each array parameter; Numba converts the scalars
    arrays = tuple((i, np.empty(0, np.dtype(str(t.dtype)))) for i, t in enumerate(signature)
                   if isinstance(t, types.Array))

    def call(args):
        values = list(args)
        for i, absent in arrays:
            array = values[i]
            values[i] = absent if array is None else array if array.ndim == 1 else array.reshape(-1)
        jitted(*values)

    call.__name__ = call.__qualname__ = f"sl_{spec.stem}_{'f32' if dtype == np.float32 else 'f64'}"
    call.__doc__ = f"The Numba ``{call.__name__}`` (see kernels/stableloss.h)."
    return call

