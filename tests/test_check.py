"""The stability report behind ``python -m stableloss check`` (stableloss._stability.report.run_check), on a
small subset: its sections and columns, the marks of the stableloss cells against the budget, what it shows
where the textbook formula breaks, the progress lines in a log, the exit codes and the messages for a
missing mpmath or matplotlib and for bad options.  Never timings."""

import io
import math
import os
import pathlib
import re
import subprocess
import sys
import threading

import mpmath
import numpy as np
import pytest

import stableloss
import stableloss._workloads as wl
from stableloss._stability import families, peers, report, ulp

PEERS = [name for name, module in peers.MODULES.items() if peers.optional(module) is not None]


def run(**options):
    """(exit status, report text) of run_check on BCE float32 with the numpy backend."""
    out = io.StringIO()
    status = report.run_check(**dict(dict(backends=["numpy"], losses=["bce"], dtypes=["float32"]), **options),
                              out=out)
    return status, out.getvalue()


def table(text, stem):
    """{(family, dtype, output): {implementation: cell}} of the table of ``stem`` in a report."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{stem}: "))
    header = lines[start + 1]
    spans = [match.span() for match in re.finditer(r"\S+", header)]
    names = [header[a:b] for a, b in spans]
    assert names[:3] == ["family", "dtype", "output"]
    rows, labels = {}, ["", ""]
    for line in lines[start + 2:]:
        if not line.strip():
            break
        line = line.ljust(spans[-1][1])
        labels = [line[spans[i][0]:spans[i + 1][0]].strip() or labels[i] for i in range(2)]
        output = line[spans[2][0]:].split()[0]  # a cell may be wider than its column's name
        rows[(*labels, output)] = {names[i]: line[spans[i - 1][1]:spans[i][1]].strip() for i in range(3, len(names))}
    return rows


@pytest.fixture(scope="module")
def backend_only():
    return run(with_peers=False)


@pytest.fixture(scope="module")
def with_peers():
    return run(with_peers=True)


def test_backend_only(backend_only):
    status, text = backend_only
    assert status == 0
    assert f"stableloss {stableloss.__version__} check" in text and "Budget of stableloss: 4 ulp" in text
    rows = table(text, "bce")
    assert set(rows) == {(name, "float32", output) for name in families.FAMILIES["bce"] for output in ("loss", "grad")}
    for cells in rows.values():
        assert list(cells) == ["numpy"]
        error, mark = cells["numpy"].split(" ", 1)  # within budget: a plain number, no NaN/inf count
        assert float(error) <= 4 and mark == "ok"
    assert "worst over all families and dtypes" in text
    assert "kl_div where log p" in text  # the documented exceptions are restated
    for name in ("textbook", "scipy", "torch", "float64"):
        assert name not in text.split("Notes.")[0]
    assert not re.search(r"^(ce|gnll|kl|mse|lse): ", text, re.MULTILINE)


def test_with_peers(with_peers):
    status, text = with_peers
    assert status == 0
    rows = table(text, "bce")
    assert all(list(cells) == ["numpy"] + PEERS for cells in rows.values())
    # the textbook formula breaks in the tails: NaN and inf where the exact loss is finite
    tails = rows["tails", "float32", "loss"]
    assert re.search(r"NaN x\d+", tails["textbook"]) and re.search(r"inf x\d+", tails["textbook"])
    assert not tails["textbook"].endswith(("ok", "OVER"))  # peers have no budget
    assert tails["numpy"].endswith(" ok") and float(tails["numpy"].split()[0]) <= 4
    # weights and pos_weight are options it does not have
    assert rows["random_soft", "float32", "loss"]["textbook"] == "-"
    if "torch" in PEERS:
        assert "1 thread" in text and rows["random_soft", "float32", "loss"]["torch"] != "-"


def test_plot(tmp_path):
    if peers.optional("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    path = tmp_path / "check.png"
    status, text = run(with_peers=False, plot=str(path))
    assert status == 0
    assert f"plot: {path}" in text
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(monkeypatch, capsys, tmp_path):
    optional = peers.optional
    monkeypatch.setattr(peers, "optional", lambda name: None if name == "matplotlib" else optional(name))
    out = io.StringIO()
    assert report.run_check(backends=["numpy"], losses=["mse"], plot=str(tmp_path / "x.png"), out=out) == 2
    assert 'needs matplotlib: pip install ".[plot]"' in capsys.readouterr().err
    assert out.getvalue() == "" and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("options, message", [
    ({"losses": ["nosuch"]}, "unknown loss or dtype 'nosuch'"),
    ({"dtypes": ["float16"]}, "unknown loss or dtype 'float16'"),
    ({"backends": ["nosuch"]}, "unknown implementation 'nosuch'"),
])
def test_bad_options(options, message, capsys):
    out = io.StringIO()
    assert report.run_check(**options, out=out) == 2
    assert message in capsys.readouterr().err
    assert out.getvalue() == ""


def test_missing_mpmath():
    """Without mpmath the module still imports and run_check says what to install (exit status 2)."""
    code = ("import sys\nsys.modules['mpmath'] = None  # import mpmath raises ModuleNotFoundError\n"
            "from stableloss._stability.report import run_check\n"
            "sys.exit(run_check(losses=['mse']))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(pathlib.Path(stableloss.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == 'python -m stableloss check needs mpmath: pip install ".[test]"'
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------------
# The marks against the budget

@pytest.mark.parametrize("worst, specials, verdicts, text", [
    (1.4, {}, {"ok"}, "1.4 ok"),
    (117, {}, {"ok", "exc. CE"}, "117 ok (exc. CE)"),
    (220, {}, {"exc. KL"}, "220 ok (exc. KL)"),
    (6.2, {}, {"ok", "exc. GNLL"}, "6.2 ok (exc. GNLL)"),
    (9.3, {}, {"ok", "exc. KL", "OVER"}, "9.3 OVER"),
    (0.5, {"NaN": 3, "inf": 0}, {"OVER"}, "0.5, NaN x3 OVER"),
    (None, {}, set(), "-"),
    (3000, {"inf": 2}, set(), "3000, inf x2"),  # a peer: no budget, no mark
])
def test_cell_marks(worst, specials, verdicts, text):
    assert report.cell(worst, specials, verdicts) == text


def exact(*values, dtype=np.float64):
    """:class:`ulp.Exact` of the float ``values``."""
    return ulp.exact_values(np.array([mpmath.mpf(v) for v in values], dtype=object), dtype)


def test_budget_verdict_kl():
    """4 ulp, or a relative error of 1e-12 where p and q agree in their leading bits (float64 only)."""
    tiny = 1e-15  # KL terms where p ~ q are tiny: 1e-13 relative is hundreds of ulps
    close = {"input": np.array([-0.7]), "target": np.array([math.exp(-0.7) * (1 + 1e-6)])}
    far = {"input": np.array([-0.7]), "target": np.array([0.9])}
    verdict = report.budget_verdict
    assert verdict("kl", "loss", close, np.array([tiny * (1 + 2**-52)]), exact(tiny)) == "ok"
    assert verdict("kl", "loss", close, np.array([tiny * (1 + 1e-13)]), exact(tiny)) == report.KL_EXCEPTION
    assert verdict("kl", "loss", close, np.array([tiny * (1 + 1e-10)]), exact(tiny)) == report.OVER
    assert verdict("kl", "loss", far, np.array([tiny * (1 + 1e-13)]), exact(tiny)) == report.OVER
    assert verdict("kl", "loss", close, np.array([np.nan]), exact(tiny)) == report.OVER
    single = {name: value.astype(np.float32) for name, value in close.items()}
    assert verdict("kl", "loss", single, np.array([tiny * (1 + 1e-6)], np.float32),
                   exact(tiny, dtype=np.float32)) == report.OVER


def test_budget_verdict_ce_gradient():
    """With probability targets (float64) the gradient g_j = A p_j - B_j gets 4 ulp of max(A p_j, B_j)."""
    logits = np.array([[0.0, 0.0]])
    part = {"input": logits, "target": np.array([[0.5, 0.5]])}  # g_j = 0.5 - 0.5: terms of 0.5, ulp 1.1e-16
    small = 1e-17  # an exact gradient far below its terms
    verdict = report.budget_verdict
    assert verdict("ce", "grad", part, np.array([[small, small]]), exact(small, small)) == "ok"
    assert verdict("ce", "grad", part, np.array([[2 * small, small]]), exact(small, small)) == report.CE_EXCEPTION
    assert verdict("ce", "grad", part, np.array([[1e-15, small]]), exact(small, small)) == report.OVER
    index_target = {"input": logits, "target": np.array([0])}  # no difference of terms: 4 ulp of g_j
    assert verdict("ce", "grad", index_target, np.array([[2 * small, small]]), exact(small, small)) == report.OVER
    assert verdict("ce", "loss", part, np.array([2 * small]), exact(small)) == report.OVER


def test_budget_verdict_gnll_broadcast_var_gradient():
    """The gradient w.r.t. a broadcast var, a sum of per-element gradients, gets 4 ulp of sum_i |g_i|."""
    per_row = {"input": np.array([[0.0, 1.0]]), "target": np.zeros((1, 2)), "var": np.array([1.0])}
    small = 1e-17  # sum_i |g_i| = |0.5| + |0|: 4 ulp of it is 4.4e-16
    verdict = report.budget_verdict
    assert verdict("gnll", "grad_var", per_row, np.array([2 * small]), exact(small)) == report.GNLL_EXCEPTION
    assert verdict("gnll", "grad_var", per_row, np.array([1e-15]), exact(small)) == report.OVER
    same_shape = dict(per_row, var=np.ones((1, 2)))  # nothing summed: 4 ulp of the element
    assert verdict("gnll", "grad_var", same_shape, np.array([[2 * small, small]]), exact(small, small)) == report.OVER


def test_budget_verdict_pnll_large_eps():
    """The full Poisson NLL without log_input with eps > log(2 pi t)/2 gets 4 ulp of its larger term."""
    part = {"input": np.array([1.0]), "target": np.array([2.0]), "log_input": False, "full": True, "eps": 3.0}
    small = 1e-17  # the terms are about 3: 4 ulp of them is 1.8e-15
    verdict = report.budget_verdict
    assert verdict("pnll", "loss", part, np.array([2 * small]), exact(small)) == report.PNLL_EXCEPTION
    assert verdict("pnll", "loss", part, np.array([1e-14]), exact(small)) == report.OVER
    assert verdict("pnll", "loss", dict(part, eps=0.5), np.array([2 * small]), exact(small)) == report.OVER


# ---------------------------------------------------------------------------------------------------
# Progress

class Log(io.StringIO):
    """A stream that is not a terminal (a CI log) and says when something is written to it."""

    def __init__(self):
        super().__init__()
        self.written = threading.Event()

    def write(self, text):
        self.written.set()
        return super().write(text)


def test_progress_lines_in_a_log():
    log = Log()
    progress = wl.Progress(3, stream=log, interval=0.01)
    progress.step("oracle ce/wide/float64")
    assert log.written.wait(timeout=60)  # a line from the heartbeat thread, with no step for it
    progress.close()
    assert not progress.heartbeat.is_alive()
    lines = log.getvalue().splitlines()
    assert lines and all(re.fullmatch(r"\[0/3, \d+ s\] oracle ce/wide/float64", line) for line in lines), lines


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal = Terminal()
    progress = wl.Progress(2, stream=terminal, interval=0.01)
    progress.step("measuring bce float32")
    progress.close()
    assert progress.heartbeat is None
    assert "\r[" + "." * 30 + "] 0/2 measuring bce float32" in terminal.getvalue()
    assert "\n" not in terminal.getvalue()
