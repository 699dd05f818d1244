"""The command line: ``python -m stableloss {demo,bench,check}``.

``demo`` is the short tour a newcomer runs first: every loss as a negative log-likelihood, with numbers
computed by the library (and the exact values by mpmath), the inputs where exactness matters, and one
training step through ``stableloss.torch``.  ``bench`` times the performance workloads of docs/design.md
on every backend next to PyTorch (or, without it, the textbook numpy formulas), after checking each
answer against the numpy reference, and sets each time against a memory roofline; ``--torch-api`` adds
the backends through ``stableloss.torch`` and their overhead over the numpy API.  The workloads and the
implementations they are compared with live in ``_workloads.py``, shared with the pytest-benchmark
suite in ``bench/``.  ``check`` is the stability report: the worst error of every backend and peer
against the mpmath oracle on the adversarial families of the test suite (``_stability/``), each
backend's marked against its budget.
"""

import argparse
import concurrent.futures
import ctypes
import gc
import json
import math
import statistics
import sys
import time

import numpy as np

import stableloss
from . import _workloads as wl
from ._stability import peers
from ._dispatch import BACKENDS, BackendUnavailable, resolve

#: Install hints that work from a source checkout (torch: the CPU build, not PyPI's CUDA one).
INSTALL_PLOT = 'pip install ".[plot]"'
INSTALL_TEST = 'pip install ".[test]"'
INSTALL_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
#: The baselines of the bench's speed-ups, in order of preference: what each is.
BASELINES = {"torch": "torch.nn.functional", "textbook": "the textbook numpy formulas"}


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m stableloss",
        description="stableloss: loss functions with their gradients, exact at extreme inputs and fast on "
                    "the CPU.")
    parser.add_argument("--version", action="version", version=f"stableloss {stableloss.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, title="commands")

    demo = commands.add_parser(
        "demo", help="a short tour: each loss as a negative log-likelihood, and where exactness matters",
        description="A short tour with numbers computed by the library: cross-entropy as the negative "
                    "log-likelihood of a categorical model (and KL + entropy), MSE as a Gaussian NLL, why "
                    "MSE on a sigmoid learns slowly where BCE does not, and extreme inputs where textbook "
                    "formulas (and PyTorch) return 0, inf or NaN, next to the exact values computed by "
                    f"mpmath (without mpmath, its recipe: {INSTALL_TEST} provides it), and one training "
                    "step of a torch model with stableloss.torch in place of torch.nn.functional (without "
                    f"torch, how to install its CPU build: {INSTALL_TORCH}).")
    demo.set_defaults(run=_demo)

    bench = commands.add_parser(
        "bench", help="time the docs/design.md workloads on every backend, next to PyTorch",
        description="Time the performance workloads of docs/design.md (cross-entropy, BCE, Gaussian NLL, "
                    "MSE, KL; float32 unless said) on each stableloss backend and on torch.nn.functional, "
                    "or, when torch is not installed, on the textbook numpy formulas. Each "
                    "implementation's first call is a warm-up whose result is checked against the numpy "
                    "reference (a wrong answer is reported, never timed). Reports ms per call (best of the "
                    "timed calls), the speed-up over PyTorch (or the textbook formulas) and the percent of "
                    "the memory roofline, a lower bound on the time of any implementation: the bytes the "
                    "loss must read (inputs, once) over the read bandwidth plus the bytes it must write "
                    "(gradients, once) over the write bandwidth, both measured before and after the "
                    "workloads on the same threads (the fastest of reduction passes, and of fill and memset "
                    "passes, over a 256 MiB array; 64 MiB with --quick).")
    bench.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                       help="threads for stableloss and torch (default 1: the single-thread comparison)")
    bench.add_argument("--quick", action="store_true",
                       help="about 1/100 of the work per workload: a smoke run, not a measurement")
    bench.add_argument("--repeat", type=_positive_int, default=5, metavar="N",
                       help=f"timed calls per implementation after the warm-up (default 5; stops early "
                            f"once {_TIME_BUDGET:g} s are spent, for the slow reference)")
    bench.add_argument("--backends", type=_implementations, metavar="LIST",
                       help=f"comma-separated subset of {','.join(BACKENDS + tuple(BASELINES))} (default: "
                            f"every available backend, and torch when installed, else textbook); also "
                            f"{wl.C_LEVEL}scalar, {wl.C_LEVEL}avx2 and {wl.C_LEVEL}avx512: backend c forced to that "
                            f"SIMD level (c alone runs the best the CPU supports)")
    bench.add_argument("--torch-api", action="store_true",
                       help=f"also time each of {' and '.join(wl.TORCH_API_BACKENDS)} in --backends through "
                            f"stableloss.torch, named {wl.torch_api('c')!r} and {wl.torch_api('numba')!r}: "
                            f"stableloss.torch.<loss>(..., backend=B) on tensors viewing the same arrays, then "
                            f"loss.backward(), checked like the others; adds torch, which must be installed. A "
                            f"second table sets each next to the numpy API (stableloss.<loss>(..., "
                            f"return_grad=True)) and torch.nn.functional: its overhead in %% over the numpy API "
                            f"and its speed-up over torch; a third gives the microseconds per small forward+grad "
                            f"call ({', '.join(_call_label(w.stem, w.shape) for w in wl.SMALL_WORKLOADS)}; the "
                            f"median of {_SMALL_CALLS} calls, {_SMALL_CALLS // 10} with --quick, in interleaved "
                            f"rounds of {_SMALL_BLOCK}) and what stableloss.torch adds to the numpy API's")
    bench.add_argument("--linear-ce", action="store_true",
                       help=f"instead, the linear cross-entropy table (float32 fwd+grad, (N, D, V) = "
                            f"{', '.join(map(str, wl.LINEAR_CE_SHAPES))}): each backend next to "
                            f"torch.nn.functional.linear_cross_entropy's reference and chunked paths and to "
                            f"numpy's three matrix products alone (the floor), with the memory a call "
                            f"allocates beyond its outputs (tracemalloc; numpy-based implementations) and the "
                            f"peak resident memory above the inputs (each in a fresh process)")
    bench.add_argument("--json", metavar="FILE", help="also write the results, settings and versions as JSON")
    bench.add_argument("--plot", type=_plot_path, metavar="FILE.png",
                       help=f"also draw the speed-ups per workload and backend (needs matplotlib: "
                            f"{INSTALL_PLOT})")
    bench.set_defaults(run=_bench, parser=bench)

    check = commands.add_parser(
        "check", help="the stability report: worst ulp error per loss, family and implementation",
        description="For each loss and each adversarial family of the test suite, the worst error (in ulp "
                    "of the output dtype) of the loss and its gradient against the mpmath oracle, for each "
                    "backend and, when installed, PyTorch, SciPy and the textbook numpy formula, side by "
                    f"side; each cell of a backend is marked against its budget. Needs the test extra "
                    f"(mpmath): {INSTALL_TEST}.")
    check.add_argument("--backends", metavar="LIST",
                       help="comma-separated backends and peers to compare (default: every available backend)")
    check.add_argument("--no-peers", action="store_true", help="leave out the textbook formula, SciPy and PyTorch")
    check.add_argument("--loss", action="append", metavar="STEM",
                       help="ce, nll, bce, gnll, kl, mse, huber, focal, pnll or lse; repeat for several (default: all)")
    check.add_argument("--dtype", action="append", choices=["float32", "float64"],
                       help="repeat for both (default: both)")
    check.add_argument("--plot", metavar="FILE.png",
                       help="also draw the error against input magnitude (needs matplotlib)")
    check.set_defaults(run=_check)
    return parser


def _check(args):
    from ._stability.report import run_check
    return run_check(backends=args.backends, with_peers=not args.no_peers, losses=args.loss,
                     dtypes=args.dtype or ("float32", "float64"), plot=args.plot)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _implementations(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one name")
    for name in names:
        if name == "torch":
            if peers.optional("torch") is None:
                raise argparse.ArgumentTypeError(f"torch is not installed ({INSTALL_TORCH})")
        elif name in BACKENDS:
            try:
                resolve(name)
            except BackendUnavailable as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
        elif wl.simd_level_of(name):
            from . import _c
            best = _c.best_simd_level()
            if _c.SIMD_LEVELS.index(wl.simd_level_of(name)) > _c.SIMD_LEVELS.index(best):
                raise argparse.ArgumentTypeError(f"{name}: this CPU supports SIMD levels up to {best!r}")
        elif name != "textbook":
            raise argparse.ArgumentTypeError(
                f"unknown name {name!r}; choose from {', '.join(BACKENDS + tuple(BASELINES))}, or "
                f"{wl.C_LEVEL}scalar, {wl.C_LEVEL}avx2, {wl.C_LEVEL}avx512 (the C kernels at one SIMD level)")
    return list(dict.fromkeys(names))


def _plot_path(text):
    if peers.optional("matplotlib") is None:
        raise argparse.ArgumentTypeError(f"needs matplotlib, which is not installed: {INSTALL_PLOT}")
    return text


# ---------------------------------------------------------------------------------------------------
# demo

# The extreme cases, float64, each with the mpmath expression of its exact value on the exact double
# inputs, evaluated at mp.dps = 50 when mpmath is installed.
_EXTREMES = (
    ("CE, logits [40, 0, 0], class 0", "ce",
     {"input": np.array([[40.0, 0.0, 0.0]]), "target": np.array([0])}, "mp.log(1 + 2*mp.exp(-40))"),
    ("BCE, x = -40, y = 0", "bce", {"input": np.array([-40.0]), "target": np.array([0.0])},
     "mp.log1p(mp.exp(-40))"),
    # the y = 1 term at its limit; the (1 - y) term is absent
    ("BCE, x = +inf, y = 1", "bce", {"input": np.array([np.inf]), "target": np.array([1.0])},
     "mp.log1p(mp.exp(-mp.inf))"),
    # the p = 0 term is 0 (0 log 0 = 0)
    ("KL(p||q), p = [.5, .5, 0], q = [.25, .75, 0]", "kl",
     {"input": np.array([[math.log(0.25), math.log(0.75), -np.inf]]), "target": np.array([[0.5, 0.5, 0.0]])},
     "0.5*(mp.log(0.5) - math.log(0.25)) + 0.5*(mp.log(0.5) - math.log(0.75))"),
    ("Gaussian NLL, x - t = 1e200, var = 1e300", "gnll",
     {"input": np.array([1e200]), "target": np.array([0.0]), "var": np.array([1e300])},
     "(mp.log(1e300) + mp.mpf(1e200)**2 / 1e300) / 2"),
)


def _demo(args):
    backend = resolve(None)
    print(f"stableloss {stableloss.__version__} demo (backend {backend!r}): every loss below is a negative "
          f"log-likelihood\nor a divergence, and every number is computed when you run it: by the library, "
          f"and the exact values\nof part 4 by mpmath.\n")
    _demo_categorical()
    _demo_gaussian()
    _demo_sigmoid_mse()
    _demo_extremes(backend)
    _demo_torch_step()
    return 0


def _number(value, spec):
    """``value`` formatted with ``spec``, a zero always unsigned (-0.0 shows as 0)."""
    return format(float(value) + 0.0, spec)  # -0.0 + 0.0 is +0.0


def _vector(values, digits=4):
    return "[" + ", ".join(_number(v, f".{digits}f") for v in np.ravel(values)) + "]"


def _demo_categorical():
    x = np.array([[2.0, 1.0, 0.1]])
    p = np.array([[0.7, 0.2, 0.1]])
    log_q = stableloss.log_softmax(x, axis=1)
    nll = stableloss.cross_entropy(x, np.array([0]))
    ce = stableloss.cross_entropy(x, p, reduction="sum")
    kl = stableloss.kl_div(log_q, p, reduction="sum")
    entropy = -np.sum(p * np.log(p))
    print("1. Cross-entropy is the negative log-likelihood of a categorical model")
    print(f"   logits x = {_vector(x, 1)}  ->  q = softmax(x) = {_vector(stableloss.softmax(x))}")
    print(f"   class 0 observed:   cross_entropy(x, 0) = {nll:.10f}")
    print(f"                       -log q_0            = {-log_q[0, 0]:.10f}")
    print(f"   a probability target p = {_vector(p, 1)}:")
    print(f"     cross_entropy(x, p)             = {ce:.10f}   (-sum p log q)")
    print(f"     kl_div(log q, p) + entropy(p)   = {kl:.10f} + {entropy:.10f} = {kl + entropy:.10f}")
    print("   H(p) does not depend on the model, so minimising cross-entropy minimises KL(p || q).\n")


def _demo_gaussian():
    x = np.array([0.5, 1.5, -0.3, 2.0])
    t = np.array([0.0, 1.0, 0.0, 2.5])
    gnll, (grad_gnll, _) = stableloss.gaussian_nll_loss(x, t, 1.0, full=True, return_grad=True)
    mse, grad_mse = stableloss.mse_loss(x, t, return_grad=True)
    print("2. MSE is the Gaussian negative log-likelihood at a fixed variance")
    print(f"   means x = {_vector(x, 1)}, observations t = {_vector(t, 1)}")
    print(f"   gaussian_nll_loss(x, t, var=1, full=True) = {gnll:.10f}")
    print(f"   mse_loss(x, t) / 2 + log(2 pi) / 2        = {mse / 2 + 0.5 * math.log(2 * math.pi):.10f}")
    print(f"   gradients w.r.t. x: {_vector(grad_gnll)} and {_vector(grad_mse / 2)} (of mse / 2)\n")


def _demo_sigmoid_mse():
    z = np.array([-30.0, -20.0, -10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 20.0, 30.0])
    # The BCE gradient of the sum is sigma(z) - y: sigma(z) at y = 0, -sigma(-z) = sigma(z) - 1 at y = 1.
    _, sigma = stableloss.binary_cross_entropy_with_logits(z, np.zeros_like(z), reduction="sum",
                                                           return_grad=True)
    _, bce_1 = stableloss.binary_cross_entropy_with_logits(z, np.ones_like(z), reduction="sum",
                                                           return_grad=True)
    one_minus_sigma = -bce_1
    # d/dz (sigma - y)^2 = 2 (sigma - y) sigma (1 - sigma), with sigma - 1 taken as -(1 - sigma)
    mse_1 = -2 * one_minus_sigma * sigma * one_minus_sigma
    mse_0 = 2 * sigma * sigma * one_minus_sigma
    print("3. A binary classifier: MSE on the sigmoid, or BCE on the logit?")
    print("   gradient w.r.t. the logit z;  MSE: 2 (sigma - y) sigma (1 - sigma),  BCE: sigma - y")
    losses = f"{'MSE':>10} {'BCE':>10}"
    print(f"   {'z':>5}  {'sigma(z)':>10}  | y = 1: {losses}  | y = 0: {losses}")
    for z_i, sigma_i, *grads in zip(z, sigma, mse_1, bce_1, mse_0, sigma):
        y_1, y_0 = (" ".join(_number(g, ">10.3e") for g in pair) for pair in (grads[:2], grads[2:]))
        print(f"   {_number(z_i, '>5.0f')}  {_number(sigma_i, '>10.3e')}  |        {y_1}  |        {y_0}")
    print(f"   Confidently wrong (z = -30 with y = 1), the MSE gradient is {mse_1[0]:.1e}: the factor"
          f"\n   sigma (1 - sigma) vanishes and learning stalls. BCE's is {bce_1[0]:.0f}: the gradient of the"
          f"\n   Bernoulli negative log-likelihood in the logit is the error sigma - y itself.\n")


def _demo_extremes(backend):
    torch = peers.optional("torch")
    mpmath = peers.optional("mpmath")
    columns = ["mpmath", "stableloss", "textbook"] + (["torch"] if torch is not None else [])
    print("4. Extreme inputs (float64): exact values (mpmath) where the textbook formulas give 0, inf or NaN")
    print(f"   {'case':<46}" + "".join(f"{name:>13}" for name in columns))
    for label, stem, inputs, recipe in _EXTREMES:
        if mpmath is None:
            values = ["see below"]
        else:
            with mpmath.mp.workdps(50):  # the recipe is the code: what is shown without mpmath is what runs
                values = [_number(eval(recipe, {"mp": mpmath.mp, "math": math}), ">13.6g")]
        values.append(_number(wl.prepare(stem, backend, inputs, False)()[0], ">13.6g"))
        with np.errstate(all="ignore"):
            values.append(_number(wl.prepare(stem, "textbook", inputs, False)()[0], ">13.6g"))
        if torch is not None:
            values.append(_number(wl.prepare(stem, "torch", inputs, False)()[0], ">13.6g"))
        print(f"   {label:<46}" + "".join(f"{value:>13}" for value in values))
    if torch is None:
        print("   (PyTorch is not installed; it returns the textbook column here as well.)")
    if mpmath is None:
        print(f"   mpmath is not installed ({INSTALL_TEST} provides it); the exact values are, at mp.dps = 50:")
        for label, _, _, recipe in _EXTREMES:
            print(f"     {label + ':':<47} {recipe}")
    print("   Textbook formulas: CE = logsumexp(x) - x_y, BCE = -(y log sigma + (1-y) log(1-sigma)),"
          "\n   KL = sum p (log p - log q), Gaussian NLL = (log var + (x - t)^2 / var) / 2.\n")


def _demo_torch_step():
    torch = peers.optional("torch")
    print("5. From PyTorch: one training step")
    if torch is None:
        print(f"   PyTorch is not installed; its CPU build: {INSTALL_TORCH}")
        return
    import stableloss.torch as F

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=generator)
    y = torch.randint(0, 3, (16,), generator=generator)
    model = torch.nn.Linear(4, 3)
    torch.nn.init.normal_(model.weight, generator=generator)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    def losses():
        """The loss on the batch by stableloss.torch (with its graph) and by torch (a float)."""
        logits = model(x)
        return F.cross_entropy(logits, y), torch.nn.functional.cross_entropy(logits.detach(), y).item()

    loss, before_torch = losses()
    before = loss.item()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after, after_torch = losses()
    print("   import stableloss.torch as F      # instead of: import torch.nn.functional as F")
    print(f"   a torch.nn.Linear(4, 3) on a batch of {len(y)}, one step of SGD (lr 0.5):")
    print("     loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step()")
    print(f"   {'':<32}{'stableloss.torch':>18}{'torch.nn.functional':>22}")
    for when, ours, theirs in (("before the step", before, before_torch),
                               ("after the step", after.item(), after_torch)):
        print(f"   cross_entropy {when:<18}{_number(ours, '>18.6f')}{_number(theirs, '>22.6f')}")
    print("   Equal within float32 rounding; the gradient is the kernel's, from the same call as the loss.")


# ---------------------------------------------------------------------------------------------------
# bench

#: Seconds of timed calls after which an implementation stops repeating (the numpy reference is slow).
_TIME_BUDGET = 2.0
#: Timed calls of each implementation per small call of ``bench --torch-api`` (a tenth with --quick), in
#: rounds of _SMALL_BLOCK consecutive calls of each.
_SMALL_CALLS = 2000
_SMALL_BLOCK = 100
#: The targets of stableloss.torch, reported and never enforced: at most this % over the numpy API's time
#: on every workload, at least this speed-up over torch, at most these microseconds added per small call.
_TORCH_API_TARGETS = {"overhead_percent": 10.0, "speedup": 5.0, "added_us": 15.0}


def _bench(args):
    if args.linear_ce:
        return _bench_linear_ce(args)
    if args.torch_api and peers.optional("torch") is None:
        args.parser.error(f"--torch-api needs torch, which is not installed: {INSTALL_TORCH}")
    implementations, baseline = _implementations_and_baseline(args.backends, args.torch_api)
    if args.torch_api and not any(name.startswith(wl.TORCH_API) for name in implementations):
        args.parser.error(f"--torch-api times {' or '.join(wl.TORCH_API_BACKENDS)} through stableloss.torch: "
                          f"name one of them in --backends")
    # the small calls: each backend next to itself through stableloss.torch, and torch
    small_workloads = wl.SMALL_WORKLOADS if args.torch_api else ()
    small_implementations = [name for name in implementations if name.startswith(wl.TORCH_API) or
                             name in wl.TORCH_API_BACKENDS or name == "torch"]
    small_calls = _SMALL_CALLS // 10 if args.quick else _SMALL_CALLS
    if args.plot and baseline is None:
        args.parser.error("--plot draws speed-ups over torch (or the textbook formulas): include one of them "
                          "in --backends")
    wl.set_threads(args.threads)
    environment = wl.environment()  # before the run: its load average is other processes'
    array_bytes = 2**26 if args.quick else 2**28  # 64 or 256 MiB, far beyond the caches
    progress = wl.Progress(2 + len(wl.WORKLOADS) * (1 + len(implementations)) +
                           len(small_workloads) * (1 + len(small_implementations)))
    try:
        progress.step("memory bandwidth")
        before = _bandwidths(array_bytes, args.threads)
        rows = [_run_workload(workload, implementations, args.repeat, progress, args.quick)
                for workload in wl.WORKLOADS]
        small_rows = [_run_workload(workload, small_implementations, small_calls, progress, block=_SMALL_BLOCK)
                      for workload in small_workloads]
        progress.step("memory bandwidth again")  # the faster of the two: a busy spell slows one of them
        after = _bandwidths(array_bytes, args.threads)
        bandwidths = {kind: max(before[kind], after[kind]) for kind in before}
    finally:
        progress.close()
    for row in rows:
        _derive(row, baseline, bandwidths)
    report = {
        "environment": environment,
        "settings": {"threads": args.threads, "repeat": args.repeat, "quick": args.quick,
                     "time_budget_s": _TIME_BUDGET, "implementations": implementations, "baseline": baseline,
                     "torch_api": args.torch_api},
        "bandwidth_GBps": {kind: bandwidth / 1e9 for kind, bandwidth in bandwidths.items()},
        "bandwidth_array_bytes": array_bytes,
        "workloads": rows,
    }
    if args.torch_api:
        report["small_workloads"] = small_rows
        report["torch_api"] = _torch_api_summary(rows, small_rows, small_calls)
    print(_format(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    if args.plot:
        _plot(report, args.plot)
    return 0


def _bench_linear_ce(args):
    """The linear cross-entropy table: ms per call, x over torch's two paths, the ratio to the three
    products, extra MiB (tracemalloc) and peak RSS above the inputs."""
    wl.set_threads(args.threads)
    environment = wl.environment()
    backends = [name for name in (args.backends or stableloss.available_backends()) if name in BACKENDS]
    peers_here = [name for name in wl.LINEAR_CE_PEERS if name == "products" or peers.optional("torch")]
    rows = []
    for shape in wl.LINEAR_CE_QUICK if args.quick else wl.LINEAR_CE_SHAPES:
        inputs = wl.linear_ce_inputs(shape)
        reference = wl.prepare_linear_ce("numpy", inputs)()
        row = {"shape": list(shape), "results": {}}
        for name in backends + peers_here:
            call = wl.prepare_linear_ce(name, inputs)
            got = call()
            if name != "products":  # checked normwise, as a peer: elementwise, the products' rounding shows
                problem = wl.disagreement(got, reference, "torch")
                if problem:
                    row["results"][name] = {"error": problem}
                    continue
            times = [_timed(call) for _ in range(max(1, min(args.repeat, 3)))]
            result = {"ms": 1e3 * min(times)}
            if name in BACKENDS or name == "products":
                result["extra_MiB"] = wl.extra_bytes(call) / 2**20
            result["peak_rss_MiB"] = wl.linear_ce_peak_rss(name, shape, args.threads)
            row["results"][name] = result
        rows.append(row)
    print(_format_linear_ce(rows, environment))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"environment": environment, "linear_ce": rows}, out, indent=2)
    return 0


def _format_linear_ce(rows, environment):
    levels = ", ".join(f"{key} {value}" for key, value in environment["simd"].items() if key != "cpu")
    lines = [f"linear cross-entropy, float32, forward + gradient, {environment['threads']} thread(s), "
             f"{environment['cpu']} ({levels})"]
    header = ("implementation", "ms", "x torch", "x torch-chunked", "/ products", "extra MiB", "peak RSS MiB")
    for row in rows:
        n, d, v = row["shape"]
        lines += ["", f"N = {n}, D = {d}, V = {v}", "  ".join(f"{h:>15}" for h in header)]
        results = row["results"]
        for name, result in results.items():
            if "error" in result:
                lines.append(f"{name:>15}  wrong answer: {result['error']}")
                continue

            def ratio(other, inverse=False):
                if other not in results or "ms" not in results[other]:
                    return "-"
                value = results[other]["ms"] / result["ms"]
                return f"{1 / value if inverse else value:.2f}"
            cells = (name, f"{result['ms']:.0f}", ratio("torch"), ratio("torch-chunked"), ratio("products", True),
                     f"{result['extra_MiB']:.0f}" if "extra_MiB" in result else "-",
                     "-" if result["peak_rss_MiB"] is None else f"{result['peak_rss_MiB']:.0f}")
            lines.append("  ".join(f"{cell:>15}" for cell in cells))
    return "\n".join(lines)


def _implementations_and_baseline(requested, torch_api=False):
    """The implementations to time and the baseline of the speed-ups (None if there is none).

    ``requested``: the names given to ``--backends``, or None for every available backend and torch, or,
    when torch is not installed, the textbook numpy formulas.  With ``torch_api``, each of
    :data:`~stableloss._workloads.TORCH_API_BACKENDS` among them is followed by itself through
    stableloss.torch, and torch is added if missing.  The baseline is the first of :data:`BASELINES`
    among the implementations.
    """
    implementations = requested or stableloss.available_backends() + [
        "torch" if peers.optional("torch") is not None else "textbook"]
    if torch_api:
        implementations = [adapted for name in implementations for adapted in
                           ([name, wl.torch_api(name)] if name in wl.TORCH_API_BACKENDS else [name])]
        implementations += [] if "torch" in implementations else ["torch"]
    return implementations, next((name for name in BASELINES if name in implementations), None)


#: The passes that measure the memory bandwidth, per kind: (pass over a float32 array, bytes moved per
#: byte of the array).  An ordinary store first reads its cache line (write-allocate), so fill moves each
#: byte twice; memset (glibc) writes large blocks with non-temporal stores, which do not read.
_BANDWIDTH_PASSES = {
    "read": ((np.max, 1), (np.sum, 1)),
    "write": ((lambda array: array.fill(1.0), 2),
              (lambda array: ctypes.memset(array.ctypes.data, 0, array.nbytes), 1)),
}


def _bandwidths(array_bytes, threads):
    """{"read": bytes/s, "write": bytes/s}: per kind, the fastest of its :data:`_BANDWIDTH_PASSES`, each
    the best of 10, over a float32 array of ``array_bytes`` split among ``threads`` threads (the threads
    the kernels run on).  The fastest pass of each kind, so that the roofline is a lower bound."""
    array = np.ones(array_bytes // 4, np.float32)  # first touch of the pages
    chunks = np.array_split(array, threads)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:  # numpy and ctypes release the GIL
        def best(kernel):
            call = (lambda: kernel(array)) if threads == 1 else (lambda: list(pool.map(kernel, chunks)))
            return min(_timed(call) for _ in range(10))
        return {kind: max(moved * array.nbytes / best(kernel) for kernel, moved in passes)
                for kind, passes in _BANDWIDTH_PASSES.items()}


def _roofline_ms(read_bytes, written_bytes, bandwidths):
    """The least time in ms to read and write those bytes at the ``bandwidths`` of :func:`_bandwidths`."""
    return 1e3 * (read_bytes / bandwidths["read"] + written_bytes / bandwidths["write"])


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _run_workload(workload, implementations, repeat, progress, quick=False, block=1):
    """The row of one workload: its inputs and bytes, and each implementation's check and ``repeat`` timed
    calls in rounds of ``block`` (:func:`_warm_up`, :func:`_time_rounds`)."""
    shape = workload.quick_shape if quick else workload.shape
    label = workload.label(quick)
    progress.step(f"{label}: inputs and numpy reference")
    inputs = workload.inputs(quick)
    reference = wl.prepare(workload.stem, "numpy", inputs, workload.grad)()
    read_bytes, written_bytes = wl.min_bytes(workload.stem, inputs, workload.grad)
    row = {"workload": label, "stem": workload.stem, "mode": workload.mode, "dtype": workload.dtype,
           "shape": list(shape), "read_bytes": read_bytes, "written_bytes": written_bytes, "results": {}}
    calls = {}
    for name in implementations:
        progress.step(f"{label}: {name}")
        calls[name], row["results"][name] = _warm_up(workload, name, inputs, reference)
    _time_rounds(calls, row["results"], repeat, block)
    return row


def _warm_up(workload, name, inputs, reference):
    """The call of one implementation and its first result: a warm-up (JIT compilation, first touch of
    memory) checked against the reference.  A failing implementation gets no call."""
    call = wl.prepare(workload.stem, name, inputs, workload.grad)
    try:
        got = reference if name == "numpy" else call()
    except Exception as exc:  # a broken backend is reported, the others still run
        return None, {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}
    problem = wl.disagreement(got, reference, name)
    if problem:
        return None, {"status": "wrong", "detail": problem}
    return call, {"status": "ok", "times_ms": []}


def _time_rounds(calls, results, repeat, block=1):
    """Time ``repeat`` calls of each implementation in interleaved rounds of ``block`` consecutive timed
    calls of each, so that a slow spell of a shared machine falls on all of them alike; an implementation
    stops once it has spent _TIME_BUDGET seconds (the numpy reference).  A block of many calls keeps
    the caches warm for a small call, which one call of another implementation would flush."""
    spent = dict.fromkeys(calls, 0.0)
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat // block):
            for name, call in calls.items():
                for _ in range(block):
                    if call is not None and spent[name] < _TIME_BUDGET:
                        elapsed = _timed(call)
                        spent[name] += elapsed
                        results[name]["times_ms"].append(1e3 * elapsed)
    finally:
        gc.enable()
    for name, call in calls.items():
        if call is not None:
            times = results[name]["times_ms"]
            results[name].update(best_ms=min(times), median_ms=statistics.median(times))


def _derive(row, baseline, bandwidths):
    """Add the roofline to the row, and the speed-up over the baseline and the percent of the roofline to
    each result."""
    row["roofline_ms"] = _roofline_ms(row["read_bytes"], row["written_bytes"], bandwidths)
    base = row["results"].get(baseline, {})
    for result in row["results"].values():
        if result["status"] != "ok":
            continue
        result["roofline_percent"] = 100 * row["roofline_ms"] / result["best_ms"]
        if base.get("status") == "ok":
            result["speedup"] = base["best_ms"] / result["best_ms"]


def _format(report):
    env, settings = report["environment"], report["settings"]
    versions = env["versions"]
    libraries = ", ".join(f"{name} {versions[name]}" for name in ("numpy", "numba", "cffi", "scipy", "torch")
                          if versions[name])
    levels = [f"{label}: {env['simd'][key]}" for key, label in
              (("c_backend", "C backend"), ("numba_cpu", "Numba for"), ("torch", "torch")) if key in env["simd"]]
    simd = " ".join(env["simd"]["cpu"]) + (f" ({', '.join(levels)})" if levels else "")
    baseline = settings["baseline"]
    width = max(9, *(len(name) + 1 for name in settings["implementations"]))
    labels = max(31, *(len(row["workload"]) + 1 for row in report["workloads"]))  # the workloads' column
    load = "?" if env["load_average_1min"] is None else f"{env['load_average_1min']:.1f}"
    quick = " --quick (a smoke run, not a measurement)" if settings["quick"] else ""
    bandwidth = report["bandwidth_GBps"]
    lines = [
        f"stableloss {versions['stableloss']} bench{quick}: ms per call, the best of at most "
        f"{settings['repeat']} timed call(s)",
        f"after a warm-up call checked against the numpy reference; {settings['threads']} thread(s) for "
        f"stableloss and torch",
        f"{libraries}; Python {versions['python']}",
        f"{env['cpu']}, {env['cores']} cores, SIMD {simd or '?'}; load average before the run {load}",
        f"memory bandwidth on {settings['threads']} thread(s), the fastest of 10 passes over "
        f"{report['bandwidth_array_bytes'] // 2**20} MiB before the workloads and 10 after:",
        f"read {bandwidth['read']:.1f} GB/s (np.max or np.sum), write {bandwidth['write']:.1f} GB/s "
        f"(fill, counting the reads of its write-allocate, or memset)",
        "roofline = MB read / read bandwidth + MB written / write bandwidth (inputs read once, gradients written",
        "once): a lower bound on the time of any implementation",
        f"vs {baseline}: the speed-up over {BASELINES[baseline]}" if baseline else
        "no speed-ups: name torch or textbook in --backends for a baseline",
        "",
        f"{'workload':<{labels}}{'MB read+written':>16}{'roofline ms':>13}  {'impl':<{width}}{'ms/call':>10}"
        f"{'vs ' + (baseline or '-'):>13}{'% roofline':>12}",
    ]
    notes = []
    for row in report["workloads"]:
        traffic = f"{row['read_bytes'] / 1e6:.1f}+{row['written_bytes'] / 1e6:.1f}"
        first = f"{row['workload']:<{labels}}{traffic:>16}{row['roofline_ms']:>13.2f}"
        for name, result in row["results"].items():
            if result["status"] == "ok":
                speedup = f"{result['speedup']:.2f}x" if "speedup" in result else "-"
                cells = f"{result['best_ms']:>10.2f}{speedup:>13}{result['roofline_percent']:>12.1f}"
            else:
                cells = f"{result['status'].upper():>10}{'-':>13}{'-':>12}"
                notes.append(f"{row['workload']}, {name}: {result['detail']}")
            lines.append(f"{first}  {name:<{width}}{cells}")
            first = " " * len(first)
    if notes:
        lines += ["", "not timed:"] + [f"  {note}" for note in notes]
    if "torch_api" in report:
        lines += ["", *_format_torch_api(report["torch_api"])]
    return "\n".join(lines)


def _call_label(stem, shape):
    return f"{stem} {'x'.join(map(str, shape))}"


def _adapter_pairs(row):
    """(backend, its result through stableloss.torch, its result through the numpy API) for each
    stableloss.torch implementation in ``row`` that was timed, as was its backend."""
    for name, adapter in row["results"].items():
        backend = wl.backend_of(name)
        if name.startswith(wl.TORCH_API) and adapter["status"] == row["results"][backend]["status"] == "ok":
            yield backend, adapter, row["results"][backend]


def _torch_api_summary(rows, small_rows, small_calls):
    """Each backend through stableloss.torch next to the numpy API (and torch), and the targets.

    Per workload of ``rows``: the best ms of both, the overhead in % and the speed-up over torch.  Per
    small call of ``small_rows`` (``small_calls`` timed calls each): the median microseconds of both,
    the microseconds added and torch's.  Per target of :data:`_TORCH_API_TARGETS`: the worst figure
    and whether it is met.
    """
    workloads = [{"workload": row["workload"], "backend": backend, "numpy_api_ms": api["best_ms"],
                  "torch_api_ms": adapter["best_ms"],
                  "overhead_percent": 100 * (adapter["best_ms"] / api["best_ms"] - 1),
                  "speedup_over_torch": adapter.get("speedup")}
                 for row in rows for backend, adapter, api in _adapter_pairs(row)]
    small = []
    for row in small_rows:
        torch = row["results"].get("torch", {})
        torch_us = 1e3 * torch["median_ms"] if torch.get("status") == "ok" else None
        small += [{"call": _call_label(row["stem"], row["shape"]), "backend": backend,
                   "numpy_api_us": 1e3 * api["median_ms"], "torch_api_us": 1e3 * adapter["median_ms"],
                   "added_us": 1e3 * (adapter["median_ms"] - api["median_ms"]), "torch_us": torch_us}
                  for backend, adapter, api in _adapter_pairs(row)]
    speedups = [entry["speedup_over_torch"] for entry in workloads if entry["speedup_over_torch"] is not None]
    worst = {"overhead_percent": max((entry["overhead_percent"] for entry in workloads), default=None),
             "speedup": min(speedups, default=None),
             "added_us": max((entry["added_us"] for entry in small), default=None)}
    targets = {name: {"target": target, "worst": worst[name],
                      "met": None if worst[name] is None else
                      (worst[name] >= target if name == "speedup" else worst[name] <= target)}
               for name, target in _TORCH_API_TARGETS.items()}
    return {"small_calls_each": small_calls, "workloads": workloads, "small_calls": small, "targets": targets}


def _blank_repeats(labels):
    """The ``labels``, each blank where it repeats the one before: one block of rows per label."""
    return ["" if label == before else label for before, label in zip([None] + labels, labels)]


def _format_torch_api(summary):
    """The lines of the --torch-api tables: the workloads, the small calls, the targets."""
    width = max(len(name) + 1 for name in wl.TORCH_API_BACKENDS + ("backend",))
    labels = max(31, *(len(entry["workload"]) + 1 for entry in summary["workloads"]))  # the workloads' column
    lines = [
        "stableloss.torch (--torch-api), from the timed calls above:",
        "  numpy API  stableloss.<loss>(..., backend=B, return_grad=True): the rows of B",
        "  torch API  stableloss.torch.<loss>(..., backend=B) on tensors viewing the same arrays, then",
        f"             loss.backward(): the rows of {wl.torch_api('B')}",
        "  overhead   torch API ms / numpy API ms - 1",
        "  vs torch   torch.nn.functional's ms / torch API ms: the speed-up of the torch API over torch",
        "",
        f"{'workload':<{labels}}{'backend':<{width}}{'numpy API ms':>13}{'torch API ms':>14}{'overhead':>10}"
        f"{'vs torch':>10}",
    ]
    entries = summary["workloads"]
    for workload, entry in zip(_blank_repeats([entry["workload"] for entry in entries]), entries):
        speedup = "-" if entry["speedup_over_torch"] is None else f"{entry['speedup_over_torch']:.2f}x"
        lines.append(f"{workload:<{labels}}{entry['backend']:<{width}}{entry['numpy_api_ms']:>13.2f}"
                     f"{entry['torch_api_ms']:>14.2f}{_number(entry['overhead_percent'], '>+9.1f')}%{speedup:>10}")
    lines += [
        "",
        f"small calls, forward+grad float32: microseconds (us) per call, the median of "
        f"{summary['small_calls_each']} calls of each, in rounds of {_SMALL_BLOCK}",
        "",
        f"{'call':<10}{'backend':<{width}}{'numpy API us':>13}{'torch API us':>14}{'added us':>10}{'torch us':>10}",
    ]
    entries = summary["small_calls"]
    for call, entry in zip(_blank_repeats([entry["call"] for entry in entries]), entries):
        torch_us = "-" if entry["torch_us"] is None else f"{entry['torch_us']:.1f}"
        lines.append(f"{call:<10}{entry['backend']:<{width}}{entry['numpy_api_us']:>13.1f}"
                     f"{entry['torch_api_us']:>14.1f}{_number(entry['added_us'], '>+10.1f')}{torch_us:>10}")
    lines += ["", "targets (reported, not enforced):"]
    targets = summary["targets"]
    for name, wording, spec, unit in (
            ("overhead_percent", "an overhead of at most +{:g}% on every workload", "+.1f", "%"),
            ("speedup", "at least {:g}x torch.nn.functional on every workload", ".2f", "x"),
            ("added_us", "at most {:g} us added per small call", "+.1f", " us")):
        met, worst = targets[name]["met"], targets[name]["worst"]
        outcome = ("not measured" if met is None else
                   f"{'met' if met else 'MISSED'} (worst {_number(worst, spec)}{unit})")
        lines.append(f"  {wording.format(targets[name]['target'])}: {outcome}")
    return lines


def _plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = report["settings"]["baseline"]
    rows = report["workloads"]
    names = [name for name in report["settings"]["implementations"] if name != baseline]
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(rows)), 4.8))
    width = 0.8 / max(len(names), 1)
    positions = np.arange(len(rows))
    for index, name in enumerate(names):
        speedups = [row["results"][name].get("speedup", math.nan) for row in rows]
        bars = axes.bar(positions + (index - (len(names) - 1) / 2) * width, speedups, width, label=name)
        axes.bar_label(bars, ["" if math.isnan(s) else f"{s:.2g}" for s in speedups], fontsize=7)
    axes.axhline(1.0, color="grey", linewidth=0.8)
    if baseline == "torch":
        axes.axhline(5.0, color="tab:red", linestyle="--", linewidth=0.8, label="target 5x")
    axes.set_yscale("log")
    axes.set_ylabel(f"speed-up over {BASELINES[baseline]} (higher is better)")
    axes.set_xticks(positions, [row["workload"] for row in rows], rotation=30, ha="right", fontsize=8)
    settings = report["settings"]
    quick = ", --quick (not a measurement)" if settings["quick"] else ""
    axes.set_title(f"stableloss {report['environment']['versions']['stableloss']}, "
                   f"{settings['threads']} thread(s){quick}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)



if __name__ == "__main__":
    sys.exit(main())
