"""The stability report of ``python -m stableloss check``: for each loss and each adversarial family of the
test suite, the worst error of the loss and of its gradients against the mpmath oracle, in ulps of the
output dtype, for each stableloss backend and, when installed, the textbook numpy formula, SciPy and
PyTorch, side by side, so that one sees where each of them breaks.

Each family's oracle values are computed once, in worker processes (mpmath is slow), and every
implementation is measured against them per element (``reduction="none"``) with :func:`ulp.ulp_error`.
A NaN or an infinity where the exact value is finite, or the reverse, is counted apart from the finite
errors.  Each cell of a stableloss backend is marked against its budget (:func:`budget_verdict`, the rules
the test suite enforces); peers have no budget.  Peers are measured on the parts of a family whose options
they have.  ``plot`` draws the error against the input magnitude for two sweeps: BCE in the tails and
cross-entropy on confident rows.

Needs the ``test`` extra (mpmath); without it :func:`run_check` only says so.
"""

import collections
import concurrent.futures
import math
import multiprocessing
import os
import sys
import textwrap
import warnings

import numpy as np

import stableloss
from .. import _workloads
from .._dispatch import BACKENDS, BackendUnavailable, resolve
from .._spec import KERNELS
from . import budgets, families, peers

try:  # the test extra
    from . import oracle, ulp
except ModuleNotFoundError as exc:
    if exc.name != "mpmath":
        raise
    oracle = ulp = None

MISSING_MPMATH = 'python -m stableloss check needs mpmath: pip install ".[test]"'
MISSING_MATPLOTLIB = 'python -m stableloss check --plot needs matplotlib: pip install ".[plot]"'

STEMS = tuple(KERNELS)
DTYPES = ("float32", "float64")

#: The two sweeps of the plot: (stem, family, part index).
PLOT_SWEEPS = (("bce", "tails", 0), ("ce", "confident_correct", 0))
#: Ulp errors are drawn at least at this height (exact results sit on it).
PLOT_FLOOR = 1e-2


# ---------------------------------------------------------------------------------------------------
# The budget of the stableloss backends (docs/design.md, budgets.py) and its documented exceptions

#: The documented exceptions, as the marks of the report name them.
KL_EXCEPTION, CE_EXCEPTION, GNLL_EXCEPTION = "exc. KL", "exc. CE", "exc. GNLL"
FOCAL_EXCEPTION, PNLL_EXCEPTION = "exc. focal", "exc. PNLL"
OVER = "OVER"


#: The mark of each documented exception, by (stem, output).
_MARKS = {("kl", "loss"): KL_EXCEPTION, ("ce", "grad"): CE_EXCEPTION, ("gnll", "grad_var"): GNLL_EXCEPTION,
          ("focal", "grad"): FOCAL_EXCEPTION, ("pnll", "loss"): PNLL_EXCEPTION}


def budget_verdict(stem, output, part, got, exact):
    """How ``got``, the ``output`` of a stableloss backend on ``part``, stands against its budget.

    "ok" if every element is within its budget (:func:`budgets.max_ulp`) of ``exact`` (:class:`ulp.Exact`);
    :data:`KL_EXCEPTION`, :data:`CE_EXCEPTION`, :data:`GNLL_EXCEPTION`, :data:`FOCAL_EXCEPTION` or
    :data:`PNLL_EXCEPTION` if every element beyond it is within that documented exception
    (:func:`budgets.relative_exception`, :func:`budgets.term_exception`); else :data:`OVER`.  A NaN or
    infinity where the exact value is finite, or the reverse, is over any
    budget.
    """
    err = ulp.ulp_error(got, exact)
    budget = budgets.max_ulp(stem, exact.dtype, output)
    beyond = ~(err <= budget)
    if not beyond.any():
        return "ok"
    dtype = exact.dtype
    relative = budgets.relative_exception(stem, part, output, dtype)
    terms = budgets.term_exception(stem, part, output, dtype)
    if relative is not None:
        mask, limit = relative
        covered = mask & (ulp.relative_error(got, exact) <= limit)
    elif terms is not None:
        covered = ulp.in_ulps_of_terms(err, exact, terms) <= budget
    else:
        return OVER
    return OVER if (beyond & ~covered).any() else _MARKS[(stem, output)]


# ---------------------------------------------------------------------------------------------------
# Implementations: each maps a part to {output: array}, or None where it lacks the part's options.

def _stableloss(backend, stem, part):
    if stem == "lse":
        axis = oracle.class_axis(part["input"])
        return {output: getattr(stableloss, name)(part["input"], axis=axis, backend=backend)
                for output, name in peers.LSE_FUNCTIONS.items()}
    kernel = KERNELS[stem]
    return kernel.named_outputs(getattr(stableloss, kernel.function_of(part))(**part, reduction="none",
                                                                              backend=backend, **kernel.everything()))


def _evaluate(implementation, stem, part):
    """``implementation``'s outputs on ``part`` (arrays of the part's dtype), or None if unsupported."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if implementation in BACKENDS:
            got = _stableloss(implementation, stem, part)
        else:
            got = peers.prepare(implementation, stem, part)() if peers.available(implementation, stem) else None
    dtype = np.asarray(families.input_of(part)).dtype
    return None if got is None else {output: np.asarray(value).astype(dtype, copy=False)
                                     for output, value in got.items()}


def _implementations(backends, with_peers):
    """The implementations to compare, and the error message if a requested one is unknown or missing."""
    if isinstance(backends, str):
        backends = [name.strip() for name in backends.split(",") if name.strip()]
    names = list(backends) if backends else stableloss.available_backends()
    for name in names:
        if name in BACKENDS:
            try:
                resolve(name)
            except BackendUnavailable as exc:
                return None, str(exc)
        elif name in peers.MODULES:
            if peers.optional(peers.MODULES[name]) is None:
                return None, f"{name} is not installed"
        else:
            return None, f"unknown implementation {name!r}; choose from {', '.join(BACKENDS + tuple(peers.MODULES))}"
    if with_peers:
        names += [name for name in peers.MODULES if name not in names and peers.optional(peers.MODULES[name])]
    return list(dict.fromkeys(names)), None


# ---------------------------------------------------------------------------------------------------
# The oracle, once per family and dtype

def _rounded_family(stem, name, dtype):
    """The rounded exact outputs (output -> :class:`ulp.Exact`) of every part of a family."""
    return [{output: ulp.exact_values(v, dtype) for output, v in values.items()}
            for _, values in oracle.exact_family(stem, name, dtype)]


def _oracle(tasks, progress):
    """{(stem, family, dtype): _rounded_family(...)} for ``tasks``, largest first, on every available core."""
    def size(task):
        return sum(np.size(families.input_of(part)) for part in families.build(KERNELS[task[0]].family_stem, *task[1:]))
    tasks = sorted(tasks, key=size, reverse=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    results = {}
    if cores < 2 or len(tasks) < 2:
        for task in tasks:
            progress.step("oracle " + "/".join(task))
            results[task] = _rounded_family(*task)
        return results
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds numba/torch threads
    with concurrent.futures.ProcessPoolExecutor(min(cores, len(tasks)), mp_context=context) as pool:
        futures = {pool.submit(_rounded_family, *task): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            progress.step("oracle " + "/".join(futures[future]))
            results[futures[future]] = future.result()
    return results


# ---------------------------------------------------------------------------------------------------
# Measurement

class Tally:
    """The worst finite ulp error of one output over some parts, and the counts of special mismatches:
    ``NaN`` (a NaN where the exact value is not), ``inf`` (an infinity where it is finite, NaN or the
    other infinity) and ``finite`` (a finite value where it is NaN or infinite).  For a stableloss
    backend, also the verdicts of :func:`budget_verdict` on those parts."""

    def __init__(self):
        self.worst = None
        self.specials = collections.Counter()
        self.verdicts = set()

    def add(self, got, exact, verdict=None):
        if verdict is not None:
            self.verdicts.add(verdict)
        got = np.asarray(got, dtype=np.float64)
        err = ulp.ulp_error(got, exact)
        special = np.isinf(err) & ~(np.isfinite(got) & np.isfinite(exact.hi))  # else: an error past 1e308
        self.specials.update({"NaN": int(np.sum(special & np.isnan(got))),
                              "inf": int(np.sum(special & np.isinf(got))),
                              "finite": int(np.sum(special & np.isfinite(got)))})
        if (~special).any():
            self.worst = max(self.worst or 0.0, float(np.max(err[~special])))

    def merge(self, other):
        if other.worst is not None:
            self.worst = max(self.worst or 0.0, other.worst)
        self.specials.update(other.specials)
        self.verdicts |= other.verdicts

    def __str__(self):
        return cell(self.worst, self.specials, self.verdicts)


def cell(worst, specials, verdicts=()):
    """A cell of the report: the worst finite ulp error (None: none), the counts of special mismatches
    (kind -> count) and, given the ``verdicts`` of :func:`budget_verdict` (a stableloss backend), the mark
    against the budget: "OVER" if any part is over it, else "ok", with the exceptions some parts needed
    ("ok (exc. KL)")."""
    text = ", ".join(([] if worst is None else [_number(worst)]) +
                     [f"{kind} x{count}" for kind, count in specials.items() if count]) or "-"
    if not verdicts:
        return text
    if OVER in verdicts:
        return f"{text} {OVER}"
    exceptions = sorted(set(verdicts) - {"ok"})
    return f"{text} ok" + (f" ({', '.join(exceptions)})" if exceptions else "")


def _number(err):
    """An ulp error in a few characters: 0, 0.5, 3.2, 17, 4096, 1.7e+07."""
    if err < 9.95:
        return f"{err:.2g}"
    if err < 1e4:
        return f"{err:.0f}"
    return f"{err:.1e}" if math.isfinite(err) else ">1e+308"


def _measure(stem, name, dtype, exact, implementations, errors):
    """{(implementation, output): Tally} over the parts of a family; an implementation that raises is
    filed in ``errors``."""
    tallies = {}
    for part, exact_part in zip(families.build(KERNELS[stem].family_stem, name, dtype), exact):
        for implementation in implementations:
            try:
                got = _evaluate(implementation, stem, part)
            except Exception as exc:  # a broken implementation is reported, the others still run
                errors.setdefault((stem, name, dtype, implementation), f"{type(exc).__name__}: {exc}")
                continue
            for output, value in (got or {}).items():
                exact_output = exact_part[output]
                if np.shape(value) != exact_output.shape:
                    errors.setdefault((stem, name, dtype, implementation),
                                      f"{output} of shape {np.shape(value)}, expected {exact_output.shape}")
                    continue
                verdict = (budget_verdict(stem, output, part, value, exact_output)
                           if implementation in BACKENDS else None)
                tallies.setdefault((implementation, output), Tally()).add(value, exact_output, verdict)
    return tallies


# ---------------------------------------------------------------------------------------------------
# The report

def run_check(backends=None, with_peers=True, losses=None, dtypes=DTYPES, plot=None, out=None):
    """Print the stability report to ``out`` (default stdout) and return the exit status.

    ``backends``: stableloss backends (and peer names) to compare, default every available backend;
    ``with_peers``: add the textbook formula, SciPy and PyTorch where installed; ``losses``: stems (ce, nll,
    bce, gnll, kl, mse, huber, focal, pnll, lse), default all; ``dtypes``: float32 and/or float64; ``plot``: a PNG path for the
    error-against-magnitude figure (needs matplotlib).  Returns 0, or 2 with a message on stderr when
    mpmath (or matplotlib for ``plot``) is missing or an option is invalid.  The report marks the cells of
    the stableloss backends against the budget (:func:`budget_verdict`); the test suite enforces it.
    """
    out = sys.stdout if out is None else out
    if oracle is None:
        return _fail(MISSING_MPMATH)
    if plot is not None and peers.optional("matplotlib") is None:
        return _fail(MISSING_MATPLOTLIB)
    stems = list(dict.fromkeys(losses or STEMS))
    dtypes = list(dict.fromkeys(_dtype_name(dtype) for dtype in ([dtypes] if isinstance(dtypes, str) else dtypes)))
    bad = [stem for stem in stems if stem not in STEMS] + [dtype for dtype in dtypes if dtype not in DTYPES]
    if bad:
        return _fail(f"python -m stableloss check: unknown loss or dtype {', '.join(map(repr, bad))}; losses: "
                     f"{', '.join(STEMS)}; dtypes: {', '.join(DTYPES)}")
    implementations, problem = _implementations(backends, with_peers)
    if problem:
        return _fail(f"python -m stableloss check: {problem}")
    plot_dtype = "float64" if "float64" in dtypes else dtypes[0]
    tasks = {(stem, name, dtype) for stem in stems for name in families.FAMILIES[KERNELS[stem].family_stem]
             for dtype in dtypes}
    if plot is not None:
        tasks |= {(stem, name, plot_dtype) for stem, name, _ in PLOT_SWEEPS}
    torch = peers.optional("torch") if "torch" in implementations else None
    torch_threads = torch.get_num_threads() if torch else None
    progress = _workloads.Progress(len(tasks) + len(stems) * len(dtypes) + (plot is not None))
    try:
        if torch:
            torch.set_num_threads(1)
        exact = _oracle(tasks, progress)
        errors = {}
        tables = {}
        for stem in stems:
            for dtype in dtypes:
                progress.step(f"measuring {stem} {dtype}")
                for name in families.FAMILIES[KERNELS[stem].family_stem]:
                    tables[stem, name, dtype] = _measure(stem, name, dtype, exact[stem, name, dtype],
                                                         implementations, errors)
        if plot is not None:
            progress.step(f"plot {plot}")
            _plot(plot, plot_dtype, exact, implementations)
    finally:
        progress.close()
        if torch:
            torch.set_num_threads(torch_threads)
    print(_format(stems, dtypes, implementations, tables, errors, plot), file=out)
    return 0


def _dtype_name(dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _fail(message):
    print(message, file=sys.stderr)
    return 2


def _header(implementations):
    def version(name):
        module = peers.optional(name)
        return f"{name} {module.__version__}" if module is not None else name
    kinds = [f"{name} (stableloss backend)" if name in BACKENDS else
             {"textbook": "textbook (the numpy formula)", "scipy": f"scipy ({version('scipy')}, scipy.special)",
              "torch": f"torch ({version('torch')}, 1 thread, autograd)"}[name] for name in implementations]
    return [
        f"stableloss {stableloss.__version__} check: the worst error against the mpmath oracle, in ulps of the "
        f"output dtype,",
        f"per element (reduction=\"none\", gradients of the sum), over the stability families of the test suite.",
        f"Budget of stableloss: {budgets.BUDGET_ULP} ulp. Each cell of a stableloss backend is marked: ok, OVER, or "
        f"ok ({KL_EXCEPTION}) / ok ({CE_EXCEPTION}) /",
        f"ok ({GNLL_EXCEPTION}) / ok ({FOCAL_EXCEPTION}) /",
        f"ok ({PNLL_EXCEPTION}) where every element beyond the budget is within that "
        f"documented exception (the notes at the end).",
        *textwrap.wrap("Implementations: " + ", ".join(kinds) + ".", 108),
        "A cell is the worst finite error; NaN xN / inf xN / finite xN count the results that are NaN / infinite /",
        "finite where the exact value is not: where an implementation breaks. '-': no part it supports.",
    ]


def _title(stem):
    """The heading of a loss's table: its public functions and outputs, from its declaration."""
    kernel = KERNELS[stem]
    rows = "" if kernel.family_stem == stem else f" (on the rows of the {kernel.family_stem} families)"
    functions = ", ".join([kernel.function] + [f"{function} ({keyword}=)" for keyword, function in kernel.variants])
    return f"{functions} -> {', '.join(kernel.outputs)}{rows}"


def _format(stems, dtypes, implementations, tables, errors, plot):
    lines = _header(implementations)
    summary = {}
    for stem in stems:
        rows = []
        for name in families.FAMILIES[KERNELS[stem].family_stem]:
            for dtype in dtypes:
                tallies = tables[stem, name, dtype]
                if not tallies:
                    continue  # nothing measurable (lse of the rows it leaves undefined)
                for output in KERNELS[stem].outputs:
                    cells = []
                    for implementation in implementations:
                        tally = tallies.get((implementation, output))
                        if tally is not None:
                            summary.setdefault((stem, output, implementation), Tally()).merge(tally)
                        cells.append("error" if (stem, name, dtype, implementation) in errors and tally is None
                                     else str(tally or "-"))
                    rows.append(([name, dtype, output], cells))
        previous = (None, None)
        for labels, _ in rows:  # the family and dtype once per group of rows
            name, dtype = labels[:2]
            labels[:2] = ["" if name == previous[0] else name, "" if (name, dtype) == previous else dtype]
            previous = (name, dtype)
        lines += ["", f"{stem}: {_title(stem)}"]
        lines += _table(["family", "dtype", "output"], implementations, rows)
    lines += ["", "worst over all families and dtypes"]
    lines += _table(["loss", "output"], implementations,
                    [([stem, output], [str(summary.get((stem, output, implementation), "-"))
                                       for implementation in implementations])
                     for stem in stems for output in KERNELS[stem].outputs])
    if errors:
        lines += ["", "errors (the cells marked 'error'):"]
        lines += [f"  {stem}/{name} {dtype}, {implementation}: {message}"
                  for (stem, name, dtype, implementation), message in errors.items()]
    lines += ["", _NOTES.strip()]
    if plot is not None:
        lines.append(f"plot: {plot}")
    return "\n".join(lines)


def _table(labels, implementations, rows):
    header = labels + list(implementations)
    body = [label + cells for label, cells in rows]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    n = len(labels)

    def line(row):
        return "  ".join([cell.ljust(w) for cell, w in zip(row[:n], widths)] +
                         [cell.rjust(w) for cell, w in zip(row[n:], widths[n:])]).rstrip()
    return [line(header)] + [line(row) for row in body]


_NOTES = f"""
Notes. stableloss promises <= {budgets.BUDGET_ULP} ulp for every element of the loss and each gradient, except:
- {KL_EXCEPTION}: float64 kl_div where log p and the input log q agree in their leading bits
  (|log p - log q| < |log q| / 2): relative error <= {budgets.KL_CLOSE_RELATIVE:g} (log p would be needed beyond double
  precision), so kl float64 shows more ulps;
- {CE_EXCEPTION}: float64 cross_entropy gradient with label smoothing or probability targets, g_j = A p_j - B_j:
  {budgets.BUDGET_ULP} ulp of the larger term max(A p_j, B_j) where the two cancel, so those families can show more ulps
  of g_j itself;
- {GNLL_EXCEPTION}: gaussian_nll_loss gradient w.r.t. a broadcast var (one per row, one shared along a
  dimension, a Python float), a sum of per-element gradients (1/v - r_i^2)/2 of both signs that cancel near
  the fitted variance: {budgets.BUDGET_ULP} ulp of sum_i |g_i|;
- {FOCAL_EXCEPTION}: float64 sigmoid_focal_loss gradient with soft labels, whose terms cancel at the loss's minimum
  (formed in double-double there): {budgets.BUDGET_ULP} ulp of the largest term.
- {PNLL_EXCEPTION}: poisson_nll_loss without log_input, with full, where eps > log(2 pi t)/2 (eps > 0.918): the
  loss (t psi + log(2 pi t)/2) - eps is then a difference: {budgets.BUDGET_ULP} ulp of the larger term.
The test suite enforces these budgets by the same rules as the marks. Peers have no budget and no mark; they
are measured on the parts of a family whose options they have: textbook and scipy without weights,
pos_weight, label smoothing, probability or ignored targets; scipy has no gaussian_nll_loss or mse_loss, nor
kl_div with log_target; torch leaves out the var shapes it rejects. Textbook and scipy compute in the input's
dtype, as a user's numpy code would.
"""


# ---------------------------------------------------------------------------------------------------
# The plot

def _sweep(stem, part):
    """(magnitudes, row selector) of a plot sweep: |logit| for the BCE tails (worst over y = 0, 1 and both
    signs at each |x|), the target's logit gap for confident cross-entropy rows."""
    if stem == "bce":
        x = np.abs(np.asarray(part["input"], np.float64))
        magnitudes = np.unique(x)
        return magnitudes, [x == m for m in magnitudes]
    logits = np.asarray(part["input"], np.float64)
    rows = np.arange(len(logits))
    target = logits[rows, part["target"]]
    others = logits.copy()
    others[rows, part["target"]] = -np.inf
    gaps = target - others.max(axis=1)
    order = np.argsort(gaps)
    return gaps[order], [rows == i for i in order]


def _plot(path, dtype, exact, implementations):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    # (colour, line style, width): identical curves (e.g. textbook and scipy where both round to 0) stay
    # visible as a wide line under a narrower, dashed one
    styles = {"c": ("tab:blue", "-", 3.5), "numba": ("tab:cyan", "--", 2.0), "numpy": ("navy", ":", 2.0),
              "textbook": ("tab:red", "-", 4.0), "scipy": ("tab:green", "--", 2.0), "torch": ("tab:orange", "-", 1.2)}
    titles = {"bce": "BCE with logits, loss (tails family: worst over y = 0, 1 and x = +-|logit|)",
              "ce": "cross-entropy, loss (confident_correct family)"}
    xlabels = {"bce": "|logit|", "ce": "target's logit gap x_y - max_{j != y} x_j"}
    ceiling = 2.0 ** (np.finfo(dtype).nmant + 10)  # a result 0 for a normal exact value: <= 2**nmant ulp
    for panel, (stem, name, index) in zip(axes, PLOT_SWEEPS):
        part = families.build(stem, name, dtype)[index]
        want = exact[stem, name, dtype][index]["loss"]
        magnitudes, selectors = _sweep(stem, part)
        for implementation in implementations:
            got = _evaluate(implementation, stem, part)
            if got is None:
                continue
            value = np.asarray(got["loss"], np.float64)
            err = ulp.ulp_error(value, want)
            special = np.isinf(err) & ~(np.isfinite(value) & np.isfinite(want.hi))
            flushed = (value == 0) & (want.hi != 0)
            worst = np.array([np.max(err[s]) for s in selectors])
            broken = np.array([special[s].any() for s in selectors])
            zero = np.array([flushed[s].any() for s in selectors])
            height = np.clip(np.where(broken, ceiling, worst), PLOT_FLOOR, ceiling)
            color, style, width = styles.get(implementation, (None, "-", 1.5))
            panel.plot(magnitudes, height, style, color=color, linewidth=width, label=implementation)
            panel.plot(magnitudes[broken], height[broken], "X", color=color, markersize=8)
            panel.plot(magnitudes[zero & ~broken], height[zero & ~broken], "o", color=color, markersize=6,
                       markerfacecolor="none")
        panel.axhline(budgets.BUDGET_ULP, color="grey", linestyle="--", linewidth=0.8)
        panel.text(magnitudes[-1], budgets.BUDGET_ULP * 1.5, f"budget {budgets.BUDGET_ULP} ulp", color="grey", fontsize=8,
                   ha="right")
        panel.set_xscale("log")
        panel.set_yscale("log")
        panel.set_ylim(PLOT_FLOOR / 2, ceiling * 20)
        panel.set_xlabel(xlabels[stem])
        panel.set_ylabel(f"ulp error of the loss ({dtype}; clipped to [{PLOT_FLOOR:g}, {ceiling:.1e}])")
        panel.set_title(titles[stem], fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], linestyle="", marker="X", color="black"),
                plt.Line2D([], [], linestyle="", marker="o", color="black", markerfacecolor="none")]
    labels += ["NaN or inf (at the ceiling)", "0 where the exact value is not"]
    figure.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels))
    figure.suptitle(f"stableloss {stableloss.__version__}: error against the mpmath oracle by input magnitude")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
