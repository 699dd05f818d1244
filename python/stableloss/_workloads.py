"""Workloads shared by ``python -m stableloss bench`` and the pytest-benchmark suite in ``bench/``.

Each loss's declaration (``stableloss._spec``, its ``bench``) says how the benchmarks call it: the
reduction, the performance workloads of docs/design.md and the sizes of the pytest-benchmark suite; its
typical inputs come from :func:`stableloss._stability.families.typical`.  An *implementation* is a
stableloss backend, the same backend through ``stableloss.torch`` (``"torch-api:c"``: the PyTorch adapter
on tensors viewing the same arrays, gradients by ``loss.backward()``), or a peer
(:mod:`stableloss._stability.peers`: the textbook numpy formula, SciPy, ``torch.nn.functional``).
:func:`prepare` turns any of them into a zero-argument callable returning ``(loss, *grads)`` as numpy
values, so timing and checking treat them alike.  :data:`WORKLOADS` are the performance workloads,
:data:`SMALL_WORKLOADS` the tiny calls whose time is the fixed cost of a call.
"""

import dataclasses
import gc
import os
import platform
import shutil
import sys
import threading
import time
import tracemalloc

import numpy as np

import stableloss
from ._dispatch import BACKENDS
from ._spec import KERNELS
from ._stability import families, peers

#: Implementations that are not stableloss backends, in display order.
PEERS = tuple(peers.MODULES)
MODES = ("fwd", "fwd+grad")
#: The prefix of the implementations through stableloss.torch: "torch-api:c" is the c backend through it.
TORCH_API = "torch-api:"
#: The backends timed through stableloss.torch (not numpy: the slow reference is no performance target).
TORCH_API_BACKENDS = ("c", "numba")
#: The prefix of the C backend forced to a SIMD level: "c-avx2" is backend c on AVX2+FMA code (plain "c"
#: runs the best level the CPU supports; the levels: stableloss._c.SIMD_LEVELS).
C_LEVEL = "c-"
#: The benchmarked losses, in the order of their declarations.
STEMS = tuple(stem for stem, kernel in KERNELS.items() if kernel.bench)


def min_bytes(stem, inputs, grad):
    """(bytes read, bytes written) at the least: every input array read once, and with ``grad`` every
    gradient written once (one per differentiable argument, of its size)."""
    written = sum(inputs[name].nbytes for name in KERNELS[stem].differentiable) if grad else 0
    return sum(array.nbytes for array in inputs.values() if isinstance(array, np.ndarray)), written


def torch_api(backend):
    """The name of ``backend`` through stableloss.torch, e.g. ``"torch-api:c"``."""
    return TORCH_API + backend


def backend_of(implementation):
    """The stableloss backend that computes ``implementation``: itself, the one a ``torch-api:``
    implementation passes to stableloss.torch, or c for ``c-<level>``; None for a peer."""
    name = implementation.removeprefix(TORCH_API)
    return name if name in BACKENDS else "c" if simd_level_of(name) else None


def simd_level_of(implementation):
    """The SIMD level a ``c-<level>`` implementation forces (e.g. ``"avx2"``), else None."""
    level = implementation.removeprefix(C_LEVEL)
    if implementation.startswith(C_LEVEL) and "c" in stableloss.available_backends():
        from . import _c
        return level if level in _c.SIMD_LEVELS else None
    return None


def _at_simd_level(call, level):
    """``call`` with the C kernels forced to ``level`` while it runs."""
    from . import _c

    def forced():
        _c.set_simd_level(level)
        try:
            return call()
        finally:
            _c.set_simd_level(None)
    return forced


def implementations(stem, with_peers=PEERS):
    """The stableloss backends that load, :data:`TORCH_API_BACKENDS` among them through stableloss.torch
    when torch is installed, then the peers of ``with_peers`` that compute ``stem`` and are installed."""
    backends = stableloss.available_backends()
    adapters = [torch_api(name) for name in backends if name in TORCH_API_BACKENDS] if peers.optional("torch") else []
    return backends + adapters + [name for name in with_peers if peers.available(name, stem)]


def prepare(stem, implementation, inputs, grad):
    """A zero-argument callable computing ``stem`` on ``inputs`` with ``implementation``.

    ``implementation`` is a stableloss backend name, ``"c-<level>"`` (the C backend at a SIMD level),
    ``"torch-api:<backend>"`` (:func:`torch_api`) or one of :data:`PEERS` (see :func:`implementations`).
    The callable returns ``(loss, *grads)`` as numpy values: the outputs of the kernel, the gradients
    those of the reduced loss (with ``grad``).
    """
    kernel = KERNELS[stem]
    reduction = kernel.bench.reduction
    level = simd_level_of(implementation)
    if level:
        return _at_simd_level(prepare(stem, "c", inputs, grad), level)
    if implementation in BACKENDS:
        function = getattr(stableloss, kernel.function)

        def call():
            result = function(**inputs, reduction=reduction, backend=implementation, return_grad=grad)
            return _flatten(result) if grad else (result,)
        return call
    if implementation.startswith(TORCH_API):
        outputs = peers.torch_call(getattr(peers.optional("stableloss.torch"), kernel.function), stem, inputs, reduction,
                                   grad, backend=backend_of(implementation))
    else:
        outputs = peers.prepare(implementation, stem, inputs, reduction, grad)
    return lambda: tuple(value for value in outputs().values())


def _flatten(result):
    """``(loss, grad)`` or ``(loss, (grad_a, grad_b))`` as one tuple."""
    value, grads = result
    return (value, *grads) if isinstance(grads, tuple) else (value, grads)


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
    """One performance workload of a loss (its declaration's :class:`stableloss._spec.Workload`)."""

    stem: str
    shape: tuple
    quick_shape: tuple        # about 1/100 of the work, for tests and smoke runs
    dtype: str = "float32"
    grad: bool = True
    options: tuple = ()       # ((name, value), ...): the loss's options, added to its typical inputs

    @property
    def mode(self):
        return MODES[self.grad]

    def label(self, quick=False):
        shape = "x".join(map(str, self.quick_shape if quick else self.shape))
        return " ".join([f"{self.stem} {self.mode} {self.dtype} {shape}", *(f"{name}={value:g}" for name, value in
                                                                              self.options)])

    def inputs(self, quick=False, seed=0):
        """The workload's inputs: the loss's typical inputs of its shape, with its options."""
        shape = self.quick_shape if quick else self.shape
        return {**families.typical(self.stem, shape, self.dtype, seed), **dict(self.options)}


#: The workloads of docs/design.md "Performance targets", as the losses declare them.
WORKLOADS = tuple(Workload(stem, **dataclasses.asdict(workload)) for stem in STEMS
                  for workload in KERNELS[stem].bench.workloads)

#: The tiny forward+grad call of each loss, whose time is the fixed cost of a call (validation, dispatch,
#: the cffi or Numba call): the smallest size of the pytest-benchmark suite, and the small calls of
#: ``bench --torch-api``.
SMALL_WORKLOADS = tuple(Workload(stem, KERNELS[stem].bench.sizes[0], KERNELS[stem].bench.sizes[0]) for stem in STEMS)


def set_threads(n):
    """Use ``n`` threads in stableloss, numpy's BLAS (the products of the linear cross-entropy table)
    and, when installed, torch."""
    import threadpoolctl

    stableloss.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")
    torch = peers.optional("torch")
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
    """The SIMD extensions the CPU offers (numpy's view), the level the C kernels run at if built, the CPU
    Numba compiles for (LLVM's name of the host), and torch's ``get_cpu_capability()`` if installed."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    info = {"cpu": [name for name in ("SSE42", "AVX", "AVX2", "FMA3", "AVX512F", "NEON", "ASIMD")
                    if features.get(name)]}
    c_backend = sys.modules.get("stableloss._c")
    if c_backend is not None:
        info["c_backend"] = c_backend.SIMD_DESCRIPTIONS[c_backend.simd_level()]
    llvm = peers.optional("llvmlite.binding")
    if llvm is not None:
        info["numba_cpu"] = llvm.get_host_cpu_name()
    torch = peers.optional("torch")
    if torch is not None:
        info["torch"] = torch.backends.cpu.get_cpu_capability()
    return info


def environment():
    """Versions and machine facts recorded with every benchmark result."""
    versions = {"stableloss": stableloss.__version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "cffi", "scipy", "torch"):
        module = peers.optional(name)
        versions[name] = None if module is None else module.__version__
    backends = stableloss.available_backends()
    return {
        "versions": versions,
        "backends": backends,
        "threads": stableloss.get_num_threads(),
        "torch_threads": None if peers.optional("torch") is None else peers.optional("torch").get_num_threads(),
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


# ---------------------------------------------------------------------------------------------------
# Linear cross-entropy (the language-model head): its own table, next to torch's two paths and to the
# three matrix products alone, the floor of any implementation

#: (N, D, V) of the linear cross-entropy workloads, float32, forward + gradient: a 32k vocabulary, and a
#: 128k one with the same logits' size, to show that memory stays flat as V grows.
LINEAR_CE_SHAPES = ((2048, 1024, 32768), (1024, 512, 131072))
#: The --quick shape.
LINEAR_CE_QUICK = ((256, 256, 4096),)
#: What the backends are set next to: torch.nn.functional.linear_cross_entropy's reference path and its
#: chunked path (options=LinearCrossEntropyOptions()), and numpy's three products (X W^T, G W, G^T X).
LINEAR_CE_PEERS = ("torch", "torch-chunked", "products")


def extra_bytes(call):
    """The bytes ``call()`` allocates (numpy's and Numba's allocations, seen by tracemalloc) at its peak
    beyond what it still holds when it returns: its temporaries, not its outputs."""
    gc.collect()
    tracemalloc.start()
    try:
        result = call()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - held


def linear_ce_inputs(shape, dtype="float32", seed=0):
    """Hidden states (N, D) of unit-scale logits, an output matrix (V, D) and index targets, drawn in
    ``dtype`` (no float64 temporary that would raise the process's peak memory before the call)."""
    n, d, v = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=dtype)
    x /= np.sqrt(d)
    return dict(input=x, linear_weight=rng.standard_normal((v, d), dtype=dtype), target=rng.integers(0, v, n))


def prepare_linear_ce(implementation, inputs):
    """A zero-argument callable: the loss and the gradients of input and weight (fwd+grad) by
    ``implementation`` (a stableloss backend or one of :data:`LINEAR_CE_PEERS`), as numpy values; for
    "products", the three products alone."""
    x, w, y = inputs["input"], inputs["linear_weight"], inputs["target"]
    if implementation in BACKENDS:
        def call():
            loss, (grad_input, grad_weight, _) = stableloss.linear_cross_entropy(x, w, y, backend=implementation,
                                                                                 return_grad=True)
            return loss, grad_input, grad_weight
        return call
    if implementation == "products":
        def call():
            z = x @ w.T
            return None, z @ w, z.T @ x
        return call
    torch = peers.optional("torch")
    options = torch.nn.LinearCrossEntropyOptions() if implementation == "torch-chunked" else None
    xt, wt, yt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_(), torch.from_numpy(y)

    def call():
        xt.grad = wt.grad = None
        loss = torch.nn.functional.linear_cross_entropy(xt, wt, yt, options=options)
        loss.backward()
        return loss.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()
    return call


def peak_rss_kib():
    """The peak resident memory of this process so far, in KiB: Linux's VmHWM, which starts afresh at
    exec (getrusage's ru_maxrss carries the parent's peak over into a child)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def linear_ce_peak_rss(implementation, shape, threads):
    """The peak resident memory (MiB) of one call of ``implementation`` above its inputs, in a fresh
    process (the peak of a process only grows, so each measurement needs its own); None off Linux."""
    import json
    import subprocess

    if not os.path.exists("/proc/self/status"):
        return None
    code = (f"import stableloss._workloads as wl; wl.set_threads({threads}); "
            f"inputs = wl.linear_ce_inputs({tuple(shape)}); call = wl.prepare_linear_ce({implementation!r}, inputs); "
            f"before = wl.peak_rss_kib(); call(); print((wl.peak_rss_kib() - before) / 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
