"""Workloads shared by ``python -m stableloss bench`` and the pytest-benchmark suite in ``bench/``.

A :class:`Loss` says how to make inputs for one loss and how each implementation computes it: a
stableloss backend, the same backend through ``stableloss.torch`` (``"torch-api:c"``: the PyTorch
adapter on tensors viewing the same arrays, gradients by ``loss.backward()``), the textbook numpy
formula a user would write, SciPy where it has the pieces, and ``torch.nn.functional`` (same function
and argument names as stableloss).  :func:`prepare` turns any of them into a zero-argument callable
returning ``(loss, *grads)`` as numpy values, so timing and checking treat them alike.
:data:`WORKLOADS` are the performance workloads of docs/design.md, :data:`SMALL_WORKLOADS` the tiny
calls whose time is the fixed cost of a call.
"""

import dataclasses
import functools
import importlib
import os
import platform
import shutil
import sys
import threading
import time

import numpy as np

import stableloss
from ._dispatch import BACKENDS

#: Implementations that are not stableloss backends, in display order.
PEERS = ("textbook", "scipy", "torch")
MODES = ("fwd", "fwd+grad")
#: The prefix of the implementations through stableloss.torch: "torch-api:c" is the c backend through it.
TORCH_API = "torch-api:"
#: The backends timed through stableloss.torch (not numpy: the slow reference is no performance target).
TORCH_API_BACKENDS = ("c", "numba")


@functools.cache
def optional(name):
    """The module ``name`` if it imports, else None (torch, scipy, matplotlib, numba, cffi)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# ---------------------------------------------------------------------------------------------------
# Input makers: random data of the kind each loss sees in training.

def _log_softmax_rows(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _ce_inputs(rng, shape, dtype):
    return {"input": 2 * rng.standard_normal(shape, dtype=dtype),
            "target": rng.integers(0, shape[1], shape[0], dtype=np.int64)}


def _bce_inputs(rng, shape, dtype):
    return {"input": 2 * rng.standard_normal(shape, dtype=dtype),
            "target": rng.integers(0, 2, shape).astype(dtype)}


def _gnll_inputs(rng, shape, dtype):
    return {"input": rng.standard_normal(shape, dtype=dtype),
            "target": rng.standard_normal(shape, dtype=dtype),
            "var": rng.uniform(0.5, 2.0, shape).astype(dtype)}


def _kl_inputs(rng, shape, dtype):
    log_q = _log_softmax_rows(rng.standard_normal(shape, dtype=dtype))
    p = np.exp(_log_softmax_rows(rng.standard_normal(shape, dtype=dtype)))
    return {"input": log_q, "target": p}


def _mse_inputs(rng, shape, dtype):
    return {"input": rng.standard_normal(shape, dtype=dtype),
            "target": rng.standard_normal(shape, dtype=dtype)}


# ---------------------------------------------------------------------------------------------------
# Textbook formulas: what a user writes from the definition (mean reductions; KL batchmean).

def _ce_textbook(grad, input, target):
    rows = np.arange(input.shape[0])
    top = input.max(axis=1)
    lse = top + np.log(np.sum(np.exp(input - top[:, None]), axis=1))
    loss = np.mean(lse - input[rows, target])
    if not grad:
        return (loss,)
    g = np.exp(input - lse[:, None])
    g[rows, target] -= 1
    return loss, g / input.shape[0]


def _bce_textbook(grad, input, target):
    s = 1 / (1 + np.exp(-input))
    loss = -np.mean(target * np.log(s) + (1 - target) * np.log(1 - s))
    return (loss,) if not grad else (loss, (s - target) / input.size)


def _gnll_textbook(grad, input, target, var, eps=1e-6):
    v = np.maximum(var, eps)
    loss = np.mean(0.5 * (np.log(v) + (input - target) ** 2 / v))
    if not grad:
        return (loss,)
    return loss, (input - target) / v / input.size, 0.5 * (1 / v - (input - target) ** 2 / v**2) / input.size


def _kl_textbook(grad, input, target):
    batch = input.shape[0]
    loss = np.sum(target * (np.log(target) - input)) / batch
    return (loss,) if not grad else (loss, -target / batch)


def _mse_textbook(grad, input, target):
    d = input - target
    loss = np.mean(d**2)
    return (loss,) if not grad else (loss, 2 * d / d.size)


# ---------------------------------------------------------------------------------------------------
# SciPy: the stable special functions it has, assembled into the loss.

def _ce_scipy(grad, input, target):
    log_p = optional("scipy.special").log_softmax(input, axis=1)
    rows = np.arange(input.shape[0])
    loss = -np.mean(log_p[rows, target])
    if not grad:
        return (loss,)
    g = np.exp(log_p)
    g[rows, target] -= 1
    return loss, g / input.shape[0]


def _bce_scipy(grad, input, target):
    special = optional("scipy.special")
    loss = -np.mean(target * special.log_expit(input) + (1 - target) * special.log_expit(-input))
    return (loss,) if not grad else (loss, (special.expit(input) - target) / input.size)


def _kl_scipy(grad, input, target):
    batch = input.shape[0]
    loss = np.sum(optional("scipy.special").rel_entr(target, np.exp(input))) / batch
    return (loss,) if not grad else (loss, -target / batch)


# ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss as the benchmarks see it."""

    stem: str
    function: object          # the stableloss function; torch.nn.functional has one of the same name
    reduction: str
    differentiable: tuple     # arguments with a gradient, in the order the gradients are returned
    make_inputs: object       # (rng, shape, dtype) -> {argument name: array}
    textbook: object          # (grad, **inputs) -> (loss, *grads)
    scipy: object = None      # same, where SciPy has the pieces


LOSSES = {loss.stem: loss for loss in (
    Loss("ce", stableloss.cross_entropy, "mean", ("input",), _ce_inputs, _ce_textbook, _ce_scipy),
    Loss("bce", stableloss.binary_cross_entropy_with_logits, "mean", ("input",), _bce_inputs, _bce_textbook,
         _bce_scipy),
    Loss("gnll", stableloss.gaussian_nll_loss, "mean", ("input", "var"), _gnll_inputs, _gnll_textbook),
    Loss("kl", stableloss.kl_div, "batchmean", ("input",), _kl_inputs, _kl_textbook, _kl_scipy),
    Loss("mse", stableloss.mse_loss, "mean", ("input",), _mse_inputs, _mse_textbook),
)}


def make_inputs(stem, shape, dtype, seed=0):
    """Random inputs for ``stem`` of the given shape and float dtype (reproducible)."""
    return LOSSES[stem].make_inputs(np.random.default_rng(seed), tuple(shape), np.dtype(dtype))


def min_bytes(stem, inputs, grad):
    """(read, written): the bytes any implementation must move, every input read once and every gradient
    written once."""
    written = sum(inputs[name].nbytes for name in LOSSES[stem].differentiable) if grad else 0
    return sum(array.nbytes for array in inputs.values()), written


def torch_api(backend):
    """The name of ``backend`` through stableloss.torch, e.g. ``"torch-api:c"``."""
    return TORCH_API + backend


def backend_of(implementation):
    """The stableloss backend that computes ``implementation``: itself, or the one a ``torch-api:``
    implementation passes to stableloss.torch; None for a peer."""
    name = implementation.removeprefix(TORCH_API)
    return name if name in BACKENDS else None


def implementations(stem, peers=PEERS):
    """The stableloss backends that load, :data:`TORCH_API_BACKENDS` among them through stableloss.torch
    when torch is installed, then the ``peers`` that apply to ``stem`` and are installed."""
    has_torch = optional("torch") is not None
    present = {"textbook": True,
               "scipy": LOSSES[stem].scipy is not None and optional("scipy.special") is not None,
               "torch": has_torch}
    backends = stableloss.available_backends()
    adapters = [torch_api(name) for name in backends if name in TORCH_API_BACKENDS] if has_torch else []
    return backends + adapters + [name for name in peers if present[name]]


def prepare(stem, implementation, inputs, grad):
    """A zero-argument callable computing ``stem`` on ``inputs`` with ``implementation``.

    ``implementation`` is a stableloss backend name, ``"torch-api:<backend>"`` (:func:`torch_api`) or one
    of :data:`PEERS` (see :func:`implementations`).  The callable returns ``(loss, *grads)`` as numpy
    values: the gradients of the reduced loss w.r.t. the arguments in ``Loss.differentiable``, in that
    order.
    """
    loss = LOSSES[stem]
    name = loss.function.__name__
    if implementation in BACKENDS:
        def call():
            return _flatten(loss.function(**inputs, reduction=loss.reduction, backend=implementation,
                                          return_grad=grad))
        return call
    if implementation.startswith(TORCH_API):
        function = getattr(optional("stableloss.torch"), name)
        return _torch_call(loss, function, inputs, grad, backend=backend_of(implementation))
    if implementation == "torch":
        return _torch_call(loss, getattr(optional("torch").nn.functional, name), inputs, grad)
    return functools.partial({"textbook": loss.textbook, "scipy": loss.scipy}[implementation], grad, **inputs)


def _flatten(result):
    if not isinstance(result, tuple):
        return (result,)
    value, grads = result
    return (value, *grads) if isinstance(grads, tuple) else (value, grads)


def _torch_call(loss, function, inputs, grad, **options):
    """A call of ``function`` (torch.nn.functional's or stableloss.torch's) on tensors viewing ``inputs``,
    with ``options`` as keywords; with ``grad``, the differentiable ones require grad and
    ``loss.backward()`` computes their gradients."""
    torch = optional("torch")
    tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}
    leaves = [tensors[name].requires_grad_(grad) for name in loss.differentiable]

    def call():
        for leaf in leaves:
            leaf.grad = None  # not accumulated: each call allocates its gradients as the first did
        value = function(**tensors, reduction=loss.reduction, **options)
        if not grad:
            return (value.numpy(),)
        value.backward()
        return (value.detach().numpy(), *(leaf.grad.numpy() for leaf in leaves))
    return call


def disagreement(got, want, implementation):
    """None if the outputs ``got`` of ``implementation`` agree with the reference ``want``, else why not.

    A stableloss backend, called directly or through stableloss.torch, must match every element within
    64 ulp (each is within 4 ulp of the exact value); a peer, computing in its own way, within 1e-4 of
    each output's largest magnitude (a check that it computes the same quantity).  NaN must be where the
    reference has NaN.
    """
    if len(got) != len(want):
        return f"{len(got)} outputs instead of {len(want)}"
    for index, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        what = "loss" if index == 0 else f"gradient {index}"
        if g.shape != w.shape or g.dtype != w.dtype:
            return f"{what}: {g.dtype}{list(g.shape)} instead of {w.dtype}{list(w.shape)}"
        if not np.array_equal(np.isnan(g), np.isnan(w)):
            return f"{what}: NaN where the reference has none, or the reverse"
        finfo = np.finfo(w.dtype)
        g, w = g[~np.isnan(w)].astype(np.float64), w[~np.isnan(w)].astype(np.float64)
        if backend_of(implementation) is not None:
            scale, limit, kind = np.maximum(np.abs(w), finfo.smallest_normal), 64 * finfo.eps, "relative"
        else:
            scale, limit, kind = max(np.max(np.abs(w), initial=0.0), finfo.smallest_normal), 1e-4, "normwise"
        with np.errstate(invalid="ignore"):  # inf / inf: a finite value where the reference has inf
            error = np.nan_to_num(np.where(g == w, 0.0, np.abs(g - w) / scale), nan=np.inf)
        worst = float(np.max(error, initial=0.0))
        if not worst <= limit:
            return f"{what}: {kind} error {worst:.2g} > {limit:.2g}"
    return None


# ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Workload:
    """One performance workload: a loss, a shape, a dtype and whether the gradient is wanted."""

    stem: str
    shape: tuple
    quick_shape: tuple        # about 1/100 of the work, for tests and smoke runs
    dtype: str = "float32"
    grad: bool = True

    @property
    def mode(self):
        return MODES[self.grad]

    def label(self, quick=False):
        shape = "x".join(map(str, self.quick_shape if quick else self.shape))
        return f"{self.stem} {self.mode} {self.dtype} {shape}"


#: The workloads of docs/design.md "Performance targets".
WORKLOADS = (
    Workload("ce", (1024, 32768), (64, 4096), grad=False),
    Workload("ce", (1024, 32768), (64, 4096)),
    Workload("ce", (2**20, 10), (2**14, 10)),
    Workload("ce", (512, 32768), (32, 4096), dtype="float64"),
    Workload("bce", (10**7,), (10**5,)),
    Workload("gnll", (10**7,), (10**5,)),
    Workload("mse", (10**7,), (10**5,)),
    Workload("kl", (1024, 32768), (64, 4096)),
)

#: The tiny forward+grad call of each loss, whose time is the fixed cost of a call (validation, dispatch,
#: the cffi or Numba call): the smallest size of the pytest-benchmark suite, and the small calls of
#: ``bench --torch-api``.
SMALL_WORKLOADS = tuple(Workload(stem, shape, shape) for stem, shape in (
    ("ce", (4, 10)), ("bce", (16,)), ("gnll", (16,)), ("kl", (4, 10)), ("mse", (16,))))


def set_threads(n):
    """Use ``n`` threads in stableloss and, when installed, in torch."""
    stableloss.set_num_threads(n)
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _simd():
    """The SIMD extensions the CPU offers (numpy's view), and the level the C kernels run at, if built."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    info = {"cpu": [name for name in ("SSE42", "AVX", "AVX2", "FMA3", "AVX512F", "NEON", "ASIMD")
                    if features.get(name)]}
    c_kernels = getattr(sys.modules.get("stableloss._c"), "lib", None)
    if hasattr(c_kernels, "sl_simd_level"):  # kernels/stableloss.h: 0 scalar, 1 AVX2+FMA
        info["c_backend"] = ("scalar", "AVX2+FMA")[c_kernels.sl_simd_level()]
    return info


def environment():
    """Versions and machine facts recorded with every benchmark result."""
    versions = {"stableloss": stableloss.__version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "cffi", "scipy", "torch"):
        module = optional(name)
        versions[name] = None if module is None else module.__version__
    backends = stableloss.available_backends()
    return {
        "versions": versions,
        "backends": backends,
        "threads": stableloss.get_num_threads(),
        "torch_threads": None if optional("torch") is None else optional("torch").get_num_threads(),
        "simd": _simd(),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


class Progress:
    """Progress on stderr.  On a terminal, a one-line bar redrawn at each step; elsewhere (a CI log), a line
    every ``interval`` seconds from a background thread, so that a long step does not look like a hang."""

    def __init__(self, total, stream=sys.stderr, interval=5.0):
        self.total, self.done, self.stream = total, 0, stream
        self.current = (0, "starting")  # (steps done before it, what it does)
        self.active = stream.isatty()
        self.columns = shutil.get_terminal_size().columns - 1
        self.start = time.monotonic()
        self.closed = threading.Event()
        self.heartbeat = None
        if not self.active:
            self.heartbeat = threading.Thread(target=self._beat, args=(interval,), daemon=True)
            self.heartbeat.start()

    def _beat(self, interval):
        while not self.closed.wait(interval):
            done, what = self.current
            self.stream.write(f"[{done}/{self.total}, {time.monotonic() - self.start:.0f} s] {what}\n")
            self.stream.flush()

    def step(self, what):
        self.current = (self.done, what)
        if self.active:
            filled = 30 * self.done // self.total
            line = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {what}"
            self.stream.write("\r" + line[:self.columns].ljust(self.columns))
            self.stream.flush()
        self.done += 1

    def close(self):
        self.closed.set()
        if self.heartbeat is not None:
            self.heartbeat.join()
        if self.active:
            self.stream.write("\r" + " " * self.columns + "\r")
            self.stream.flush()
