"""The stability report behind ``python -m stableloss check`` (stableloss._stability.report.run_check), on a
small subset: its sections and columns, what it shows where the textbook formula breaks, the exit codes and
the messages for a missing mpmath or matplotlib and for bad options.  Never timings."""

import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

import stableloss
import stableloss._workloads as wl
from stableloss._stability import families, report

PEERS = [name for name, module in (("textbook", "numpy"), ("scipy", "scipy.special"), ("torch", "torch"))
         if wl.optional(module) is not None]


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
        output = line[spans[2][0]:spans[3][0]].strip()
        rows[(*labels, output)] = {names[i]: line[spans[i - 1][1]:spans[i][1]].strip() for i in range(3, len(names))}
    return rows


@pytest.fixture(scope="module")
def backend_only():
    return run(peers=False)


@pytest.fixture(scope="module")
def with_peers():
    return run(peers=True)


def test_backend_only(backend_only):
    status, text = backend_only
    assert status == 0
    assert f"stableloss {stableloss.__version__} check" in text and "Budget of stableloss: 4 ulp" in text
    rows = table(text, "bce")
    assert set(rows) == {(name, "float32", output) for name in families.FAMILIES["bce"] for output in ("loss", "grad")}
    for cells in rows.values():
        assert list(cells) == ["numpy"]
        assert float(cells["numpy"]) <= 4  # the backend is within budget: a plain number, no NaN/inf count
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
    assert float(tails["numpy"]) <= 4
    # weights and pos_weight are options it does not have
    assert rows["random_soft", "float32", "loss"]["textbook"] == "-"
    if "torch" in PEERS:
        assert "1 thread" in text and rows["random_soft", "float32", "loss"]["torch"] != "-"


def test_plot(tmp_path):
    if wl.optional("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    path = tmp_path / "check.png"
    status, text = run(peers=False, plot=str(path))
    assert status == 0
    assert f"plot: {path}" in text
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(wl, "optional", lambda name: None if name == "matplotlib" else wl.optional.__wrapped__(name))
    out = io.StringIO()
    assert report.run_check(backends=["numpy"], losses=["mse"], plot=str(tmp_path / "x.png"), out=out) == 2
    assert "needs matplotlib: pip install 'stableloss[plot]'" in capsys.readouterr().err
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
    assert result.stderr.strip() == "python -m stableloss check needs mpmath: pip install 'stableloss[test]'"
    assert result.stdout == ""
