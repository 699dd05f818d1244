"""Backend registry, backend selection and threading over row blocks.

Every backend module exposes ``kernel(spec, dtype)``, returning a callable that takes the arguments of
``sl_<stem>_f32/_f64`` in ``kernels/stableloss.h`` as one list in the header's order, which :func:`run`
builds, the one place that does.  The kernel's declaration
(:class:`stableloss._spec.Kernel`) is all the dispatcher needs to know about a loss: which arguments
are per-row arrays (sliced for each thread), which are read whole, and whether there are block sums.

Rows are grouped in blocks of about :data:`BLOCK_ELEMENTS` elements (a gather kernel's rows count one
element each when no gradient is wanted: :class:`stableloss._spec.Kernel`); a kernel adds each block's
losses into ``block_sums[b]`` and the blocks are added in a fixed order with :func:`math.fsum`.  Threads take
contiguous runs of whole blocks, so the result is bitwise identical for any thread count.  The numpy
backend is called once per block, one block after the other, so that its float64 temporaries are
the size of a block (or of one row, for rows wider than a block), not of the input.
"""

import concurrent.futures
import functools
import importlib
import itertools
import math
import os
import warnings

import numpy as np

from ._spec import IN, INDEX, OUT

#: Backends in order of preference; "numpy" (the reference) is always available.
BACKENDS = ("c", "numba", "numpy")
_MODULES = {"c": "stableloss._c", "numba": "stableloss._numba", "numpy": "stableloss._reference"}

#: Elements per block of the fixed summation order; large enough that per-call overhead is noise.
BLOCK_ELEMENTS = 2**16
#: Below this many elements a call runs on the calling thread.
_MIN_PARALLEL_ELEMENTS = 2**17


class BackendUnavailable(ImportError):
    """A requested backend (the ``backend`` argument or ``STABLELOSS_BACKEND``) that cannot be loaded."""


class CExtensionWarning(UserWarning):
    """The C kernels did not load, so ``backend=None`` uses another backend; the message says why.

    Issued once per process, on the first call with ``backend=None``.
    """


@functools.cache
def _load(name):
    """The backend module, or the exception that prevented loading it."""
    try:
        return importlib.import_module(_MODULES[name])
    except Exception as exc:  # a broken build must not break the other backends
        return exc


def available_backends():
    """Backends that load on this machine, preferred first; ``"numpy"`` is always among them.

    Returns
    -------
    list of str
        A subset of ``["c", "numba", "numpy"]``, in that order of preference.

    Notes
    -----
    ``"c"`` needs the compiled cffi extension, ``"numba"`` an importable numba; a backend that fails
    to load is left out here, while asking for it explicitly (``backend="c"``) raises with the reason.
    Loading numba costs about 0.2 s, paid on the first call of this function, not at import.

    Examples
    --------
    >>> import stableloss
    >>> stableloss.available_backends()[-1]
    'numpy'
    """
    return [name for name in BACKENDS if not isinstance(_load(name), Exception)]


#: The environment's choice for ``backend=None``, read once at import (a lookup costs about 1 us).
_ENV_BACKEND = os.environ.get("STABLELOSS_BACKEND") or None
#: The backend names as error messages list them.
_CHOICES = ", ".join(map(repr, BACKENDS))


def resolve(backend):
    """The name of the backend to run for a call's ``backend`` argument.

    Parameters
    ----------
    backend : str or None
        A name of :data:`BACKENDS`, or None for the default (see :func:`_default`).

    Returns
    -------
    str
        ``backend``, or the default backend's name.

    Raises
    ------
    ValueError
        ``backend`` (or ``STABLELOSS_BACKEND``, for None) is not a backend name.
    BackendUnavailable
        That backend does not load here; the message says why.
    """
    if backend is None:
        return _default()
    if backend not in _MODULES:
        raise ValueError(f"backend must be one of {_CHOICES} or None, got {backend!r}")
    module = _load(backend)
    if isinstance(module, Exception):
        raise BackendUnavailable(f"backend {backend!r} is not available: {module}") from module
    return backend


@functools.cache
def _default():
    """The backend for ``backend=None``, chosen on the first call and then cached (errors are not: every
    call raises them): ``STABLELOSS_BACKEND`` if set, else the first available backend, with a one-time
    :class:`CExtensionWarning` if that is not ``"c"``."""
    if _ENV_BACKEND is not None:
        origin = f"STABLELOSS_BACKEND={_ENV_BACKEND!r} (environment variable)"
        if _ENV_BACKEND not in _MODULES:
            raise ValueError(f"{origin} is not a stableloss backend; expected one of {_CHOICES}")
        try:
            return resolve(_ENV_BACKEND)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"{origin}: {exc}") from exc
    name = available_backends()[0]
    if name != "c":  # stacklevel: the caller of the public function that called resolve
        warnings.warn(f"backend=None uses {name!r}, not 'c': {_load('c')}", CExtensionWarning, stacklevel=4)
    return name


# ---------------------------------------------------------------------------------------------------
# Threads

def _default_threads():
    env = os.environ.get("STABLELOSS_NUM_THREADS")
    if env:
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_num_threads = _default_threads()


def set_num_threads(n):
    """Set the number of threads the native backends split large calls over.

    Results do not depend on it: blocks are summed in a fixed order whatever the split.

    Parameters
    ----------
    n : int
        Number of threads, at least 1.

    Returns
    -------
    None

    Notes
    -----
    Rows are grouped in fixed blocks and each thread takes whole blocks, whose partial sums are added
    in a fixed order; calls below about 2**17 elements run on the calling thread.

    Examples
    --------
    >>> import stableloss
    >>> stableloss.set_num_threads(1); stableloss.get_num_threads()
    1
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    _num_threads = n


def get_num_threads():
    """Return the number of threads the native backends split large calls over.

    Returns
    -------
    int
        Set by :func:`set_num_threads`; by default the environment variable
        ``STABLELOSS_NUM_THREADS``, else the number of cores available to the process.

    Notes
    -----
    The numpy backend always runs on the calling thread.

    Examples
    --------
    >>> import stableloss
    >>> stableloss.get_num_threads() >= 1
    True
    """
    return _num_threads


@functools.cache
def _pool(n_threads):
    return concurrent.futures.ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="stableloss")


# ---------------------------------------------------------------------------------------------------
# Calls

def run(backend, spec, dtype, n_rows, inputs, outputs, grad_scale=1.0):
    """Run the kernel declared by ``spec`` (:class:`stableloss._spec.Kernel`) of ``backend`` over
    ``n_rows`` rows.

    ``inputs``: the kernel's input arrays and parameters by name; ``outputs``: its output arrays by name
    (None: not wanted); ``grad_scale`` for a loss kernel.  The sizes, the blocks and the block sums are
    added here, where the kernel's argument list is built.  Returns the sum of the per-row losses (a
    Python float) for the loss kernels, None for the others.
    """
    key = (backend, spec.stem, dtype)
    kernel = _kernels.get(key)
    if kernel is None:
        kernel = _kernels[key] = _load(backend).kernel(spec, np.dtype(dtype))
    row_width = inputs[spec.row_width] if spec.row_width else 1
    if spec.gather and all(outputs.get(name) is None for name in spec.gradients):
        row_width = 1  # one element read per row, none written but the loss: blocks and threads count rows
    rows_per_block = max(1, BLOCK_ELEMENTS // max(row_width, 1))
    block_sums = np.zeros(-(-n_rows // rows_per_block)) if spec.blocked else None
    known = {**inputs, **outputs}
    known.update(n_rows=n_rows, grad_scale=grad_scale, rows_per_block=rows_per_block, block_sums=block_sums)
    args = spec.in_order(known)  # the header's order
    if backend == "numpy":  # a block at a time: the reference's float64 temporaries are a block's size
        _run_parts(kernel, spec, args, n_rows, rows_per_block, max(1, -(-n_rows // rows_per_block)), map)
    elif _num_threads == 1 or n_rows < 2 or n_rows * row_width < _MIN_PARALLEL_ELEMENTS:
        if n_rows:  # one call over all rows, the arguments as they are
            kernel(args)
    else:
        _run_threads(kernel, spec, args, n_rows, rows_per_block, _num_threads)
    return None if block_sums is None else exact_sum(block_sums)


#: The kernel of each (backend, stem, dtype), looked up once (the backends build them on request).
_kernels = {}


def _run_threads(kernel, spec, args, n_rows, rows_per_block, n_threads):
    """The kernel over contiguous runs of whole blocks, one run per thread."""
    _run_parts(kernel, spec, args, n_rows, rows_per_block, n_threads, _pool(n_threads).map)


def _run_parts(kernel, spec, args, n_rows, rows_per_block, n_parts, map_calls):
    """The kernel over ``n_parts`` contiguous runs of whole blocks (of rows for ``lse``), the calls made
    by ``map_calls``: one run per thread of a pool, or one after the other."""
    sliced = [spec.position(name) for name in spec.of_kind(IN, INDEX, OUT) if args[spec.position(name)] is not None]
    rows_at = spec.position("n_rows")
    sums_at = spec.position("block_sums") if spec.blocked else None
    block_sums = None if sums_at is None else args[sums_at]

    def call(first_row, stop_row):
        part = list(args)
        part[rows_at] = stop_row - first_row
        for i in sliced:
            part[i] = args[i][first_row:stop_row]
        if block_sums is not None:
            part[sums_at] = block_sums[first_row // rows_per_block:-(-stop_row // rows_per_block)]
        kernel(part)

    unit = rows_per_block if block_sums is not None else 1
    units = -(-n_rows // unit)
    bounds = [min(n_rows, (units * i // n_parts) * unit) for i in range(n_parts + 1)]
    chunks = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    list(map_calls(lambda ab: call(*ab), chunks))


#: Values converted to float64 at a time by :func:`exact_sum`: its memory does not grow with their number.
_SUM_CHUNK = 2**16


def exact_sum(values, scale=1.0):
    """The correctly rounded sum of the values (any float dtype, any shape) times ``scale``, a power of
    two (+-inf where it exceeds the float64 range, NaN for inf - inf), whatever their order.

    The values are read in float64 chunks of :data:`_SUM_CHUNK`, never copied whole.
    """
    values = values.reshape(-1)
    if len(values) == 1:  # its own sum: the common one-block call, without fsum's cost
        return float(values[0]) * scale

    def scaled(factor):
        return itertools.chain.from_iterable(values[start:start + _SUM_CHUNK].astype(np.float64) * factor
                                             for start in range(0, len(values), _SUM_CHUNK))
    try:
        return math.fsum(scaled(scale))
    except OverflowError:  # finite values whose sum overflows
        return math.fsum(scaled(scale * 2.0**-64)) * 2.0**64
    except ValueError:  # +inf and -inf among the values
        return math.nan
