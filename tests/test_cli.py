"""The command line, run the way a user runs it: ``python -m stableloss ...`` in a subprocess.

Exit codes, the sections and identities of ``demo`` (with and without torch), the JSON of ``bench --quick``,
the correctness guard, the baseline and roofline of ``bench``, its ``--torch-api`` tables, and the messages
of bad options.  Never timings.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import stableloss
import stableloss._workloads as wl
from stableloss import __main__ as cli
from stableloss._stability import families, peers

# The subprocess imports the stableloss this test imported (installed or from the source tree).
_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(pathlib.Path(stableloss.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
_HAS_TORCH = peers.optional("torch") is not None
HIDE_TORCH = "import sys\nsys.modules['torch'] = None  # import torch raises ImportError"


def run_cli(*args, patch=None):
    """``python -m stableloss *args``, or the same through ``main`` after running the code ``patch``."""
    if patch is None:
        command = [sys.executable, "-m", "stableloss", *args]
    else:
        command = [sys.executable, "-c", f"{patch}\nimport sys\nfrom stableloss.__main__ import main\n"
                                         f"sys.exit(main(sys.argv[1:]))", *args]
    return subprocess.run(command, capture_output=True, text=True, env=_ENV, timeout=300)


def bench_json(tmp_path, *args, patch=None):
    path = tmp_path / "bench.json"
    result = run_cli("bench", "--quick", "--repeat", "1", "--json", str(path), *args, patch=patch)
    assert result.returncode == 0, result.stderr
    return result, json.loads(path.read_text())


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "bench" in result.stdout


@pytest.mark.parametrize("command, options", [
    ("demo", []),
    ("bench", ["--threads", "--quick", "--repeat", "--backends", "--torch-api", "--linear-ce", "--json", "--plot"]),
])
def test_command_help(command, options):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert f"python -m stableloss {command}" in result.stdout
    for option in options:
        assert option in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "required"),
    (["nosuch"], "invalid choice"),
    (["bench", "--bogus"], "unrecognized arguments: --bogus"),
    (["bench", "--repeat", "0"], "argument --repeat: expected an integer >= 1, got 0"),
    (["bench", "--threads", "two"], "argument --threads: expected an integer >= 1, got 'two'"),
    (["bench", "--backends", "nosuch"], "argument --backends: unknown name 'nosuch'"),
    (["bench", "--backends", ","], "argument --backends: expected at least one name"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------------
# demo

@pytest.fixture(scope="module")
def demo():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _numbers(line):
    return re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", line.split(" = ", 1)[1])


def _line(text, start):
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def test_demo_has_every_section(demo):
    for heading in ("1. Cross-entropy is the negative log-likelihood of a categorical model",
                    "2. MSE is the Gaussian negative log-likelihood at a fixed variance",
                    "3. A binary classifier: MSE on the sigmoid, or BCE on the logit?",
                    "4. Extreme inputs (float64)",
                    "5. From PyTorch: one training step"):
        assert heading in demo


def test_demo_shows_both_sides_of_each_identity(demo):
    assert _numbers(_line(demo, "class 0 observed")) == _numbers(_line(demo, "-log q_0"))
    ce = _numbers(_line(demo, "cross_entropy(x, p)"))[0]
    kl, entropy, total = _numbers(_line(demo, "kl_div(log q, p) + entropy(p)"))
    assert total == ce and float(kl) > 0 and float(entropy) > 0
    assert _numbers(_line(demo, "gaussian_nll_loss(x, t, var=1, full=True)")) == \
        _numbers(_line(demo, "mse_loss(x, t) / 2 + log(2 pi) / 2"))


def test_demo_gradient_table_covers_z_from_minus_30_to_30(demo):
    rows = [line.split() for line in demo.splitlines() if re.match(r"\s+-?\d+\s+\d\.\d+e[-+]\d+\s+\|", line)]
    assert [int(row[0]) for row in rows] == [-30, -20, -10, -5, -2, 0, 2, 5, 10, 20, 30]
    z_minus_30 = rows[0]  # z, sigma, |, MSE(y=1), BCE(y=1), |, MSE(y=0), BCE(y=0)
    assert abs(float(z_minus_30[3])) < 1e-12 and float(z_minus_30[4]) == -1.0


def _extreme_cases(demo):
    section = demo.split("4. Extreme inputs")[1]
    return [line for line in section.splitlines() if line[3:].startswith(("CE,", "BCE,", "KL(", "Gaussian"))]


def test_demo_extremes_match_mpmath_where_textbook_formulas_fail(demo):
    cases = _extreme_cases(demo)
    assert len(cases) == 5
    for line in cases:
        exact, ours, textbook, *torch = line[3 + 46:].split()
        assert ours == exact, line
        assert textbook in ("0", "inf", "nan"), line
    assert ("torch" in demo.split("4. Extreme inputs")[1].splitlines()[1]) == _HAS_TORCH


def test_demo_prints_no_negative_zero(demo):
    assert not re.findall(r"(?<![\w.])-0(?:\.0*)?(?:e[-+]?0+)?(?![\w.])", demo)


def test_demo_without_mpmath_prints_the_recipes():
    # hidden from stableloss only: torch (sympy, imported by stableloss.torch's first call) needs mpmath
    hide_mpmath = ("from stableloss._stability import peers\n"
                   "optional = peers.optional\n"
                   "peers.optional = lambda name: None if name == 'mpmath' else optional(name)")
    result = run_cli("demo", patch=hide_mpmath)
    assert result.returncode == 0, result.stderr
    assert all(line[3 + 46:].split()[:2] == ["see", "below"] for line in _extreme_cases(result.stdout))
    assert 'mpmath is not installed (pip install ".[test]" provides it)' in result.stdout
    for _, _, _, recipe in cli._EXTREMES:
        assert recipe in result.stdout


@pytest.mark.skipif(not _HAS_TORCH, reason="the training step runs on torch")
def test_demo_trains_one_step_through_stableloss_torch(demo):
    section = demo.split("5. From PyTorch: one training step")[1]
    assert "import stableloss.torch as F      # instead of: import torch.nn.functional as F" in section
    before, after = (_line(section, f"cross_entropy {when}") for when in ("before", "after"))
    (ours_before, torch_before), (ours_after, torch_after) = (
        [float(number) for number in line.split()[-2:]] for line in (before, after))
    assert ours_before == pytest.approx(torch_before, rel=1e-6)  # float32 rounding
    assert ours_after == pytest.approx(torch_after, rel=1e-6)
    assert ours_after < ours_before


def test_demo_without_torch_says_how_to_install_the_cpu_build():
    result = run_cli("demo", patch=HIDE_TORCH)
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("5. From PyTorch: one training step\n")[1]
    assert section == ("   PyTorch is not installed; its CPU build: "
                       "pip install torch --index-url https://download.pytorch.org/whl/cpu\n")


# ---------------------------------------------------------------------------------------------------
# bench

def test_bench_quick_json_has_every_workload_and_implementation(tmp_path):
    plot = ["--plot", str(tmp_path / "speedups.png")] if peers.optional("matplotlib") is not None else []
    result, report = bench_json(tmp_path, *plot)
    baseline = "torch" if _HAS_TORCH else "textbook"
    implementations = stableloss.available_backends() + [baseline]
    assert report["settings"]["implementations"] == implementations
    assert report["settings"]["baseline"] == baseline
    assert report["environment"]["versions"]["numpy"] and report["environment"]["backends"]
    assert report["bandwidth_GBps"]["read"] > 0 and report["bandwidth_GBps"]["write"] > 0
    assert [row["workload"] for row in report["workloads"]] == [w.label(quick=True) for w in wl.WORKLOADS]
    for row in report["workloads"]:
        assert row["read_bytes"] > 0 and row["written_bytes"] >= 0
        assert list(row["results"]) == implementations
        for name, outcome in row["results"].items():
            assert outcome["status"] == "ok", (row["workload"], name, outcome)
            assert {"best_ms", "median_ms", "roofline_percent", "speedup"} <= set(outcome)
        assert row["workload"] in result.stdout
    if plot:
        assert (tmp_path / "speedups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_linear_ce_quick(tmp_path):
    """The linear cross-entropy table: every backend and peer checked and timed, with its memory."""
    result, report = bench_json(tmp_path, "--linear-ce", "--backends", "c,numba")
    (row,) = report["linear_ce"]
    assert row["shape"] == list(wl.LINEAR_CE_QUICK[0])
    names = [name for name in ("c", "numba") if name in stableloss.available_backends()]
    names += ["torch", "torch-chunked"] if _HAS_TORCH else []
    assert list(row["results"]) == names + ["products"]
    for name, outcome in row["results"].items():
        assert outcome["ms"] > 0 and outcome["peak_rss_MiB"] >= 0, (name, outcome)
        assert ("extra_MiB" in outcome) == (name in ("c", "numba", "products"))
    assert "N = 256, D = 256, V = 4096" in result.stdout
    if _HAS_TORCH:  # torch's get_cpu_capability() in the heading
        assert f"torch {report['environment']['simd']['torch']}" in result.stdout


def test_bench_backends_and_threads(tmp_path):
    result, report = bench_json(tmp_path, "--backends", "numpy", "--threads", "2")
    assert report["settings"]["threads"] == report["environment"]["threads"] == 2
    assert report["settings"]["baseline"] is None  # the numpy reference is no baseline
    assert "no speed-ups: name torch or textbook in --backends" in result.stdout
    assert all(list(row["results"]) == ["numpy"] for row in report["workloads"])
    assert all("speedup" not in row["results"]["numpy"] for row in report["workloads"])


def test_bench_without_torch_defaults_to_the_textbook_baseline(monkeypatch):
    optional = peers.optional
    monkeypatch.setattr(peers, "optional", lambda name: None if name == "torch" else optional(name))
    assert cli._implementations_and_baseline(None) == (stableloss.available_backends() + ["textbook"], "textbook")
    assert cli._implementations_and_baseline(["c", "numpy"]) == (["c", "numpy"], None)


def test_bench_without_torch_says_the_baseline_is_the_textbook_formulas(tmp_path):
    backend = stableloss.available_backends()[0]
    result, report = bench_json(tmp_path, "--backends", f"{backend},textbook", patch=HIDE_TORCH)
    assert report["settings"]["baseline"] == "textbook"
    assert all(row["results"]["textbook"]["speedup"] == 1.0 for row in report["workloads"])
    assert "vs textbook: the speed-up over the textbook numpy formulas" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("workload"))
    assert header.split()[-4:] == ["vs", "textbook", "%", "roofline"]


def test_roofline_adds_read_and_write_times_at_their_own_bandwidths():
    row = {"read_bytes": 2e9, "written_bytes": 1e9,
           "results": {"c": {"status": "ok", "best_ms": 500.0}, "textbook": {"status": "ok", "best_ms": 1000.0},
                       "numba": {"status": "wrong", "detail": "loss"}}}
    cli._derive(row, "textbook", {"read": 10e9, "write": 50e9})
    assert row["roofline_ms"] == pytest.approx(1e3 * (2e9 / 10e9 + 1e9 / 50e9))  # 200 + 20 ms
    assert row["results"]["c"]["roofline_percent"] == pytest.approx(100 * 220 / 500)
    assert row["results"]["textbook"]["roofline_percent"] == pytest.approx(100 * 220 / 1000)
    assert row["results"]["c"]["speedup"] == 2.0
    assert "roofline_percent" not in row["results"]["numba"]


def test_min_bytes_are_read_and_written_apart():
    inputs = families.typical("gnll", (10,), "float32")  # input, target, var read; input, var gradients written
    assert wl.min_bytes("gnll", inputs, grad=True) == (3 * 40, 2 * 40)
    assert wl.min_bytes("gnll", inputs, grad=False) == (3 * 40, 0)


@pytest.mark.skipif(not _HAS_TORCH, reason="the guard is shown on torch's answers")
def test_bench_does_not_time_a_wrong_answer(tmp_path):
    doubled = ("import stableloss._workloads as wl\n"
               "prepare = wl.prepare\n"
               "def wrong(stem, name, inputs, grad):\n"
               "    call = prepare(stem, name, inputs, grad)\n"
               "    return (lambda: tuple(2 * value for value in call())) if name == 'torch' else call\n"
               "wl.prepare = wrong")
    result, report = bench_json(tmp_path, "--backends", "numpy,torch", patch=doubled)
    for row in report["workloads"]:
        assert row["results"]["torch"]["status"] == "wrong"
        assert "speedup" not in row["results"]["numpy"]
    assert "WRONG" in result.stdout and "torch: loss: normwise error 1 > 0.0001" in result.stdout


def test_bench_plot_without_matplotlib_says_how_to_install(tmp_path):
    result = run_cli("bench", "--quick", "--plot", str(tmp_path / "speedups.png"),
                     patch="import sys\nsys.modules['matplotlib'] = None")
    assert result.returncode == 2
    assert 'needs matplotlib, which is not installed: pip install ".[plot]"' in result.stderr
    assert not (tmp_path / "speedups.png").exists()


def test_bench_torch_without_torch_says_how_to_install_the_cpu_build():
    result = run_cli("bench", "--backends", "torch", patch=HIDE_TORCH)
    assert result.returncode == 2
    assert "torch is not installed (pip install torch --index-url https://download.pytorch.org/whl/cpu)" \
        in result.stderr


# ---------------------------------------------------------------------------------------------------
# bench --torch-api

def test_torch_api_follows_each_compiled_backend_and_brings_torch():
    assert cli._implementations_and_baseline(["c", "numpy", "numba"], torch_api=True) == (
        ["c", "torch-api:c", "numpy", "numba", "torch-api:numba", "torch"], "torch")
    assert cli._implementations_and_baseline(["torch", "c"], torch_api=True) == (["torch", "c", "torch-api:c"], "torch")


@pytest.mark.skipif(not _HAS_TORCH, reason="stableloss.torch needs torch")
def test_bench_torch_api_quick_on_two_workloads(tmp_path):
    two = ("import stableloss._workloads as wl\n"
           "wl.WORKLOADS = tuple(w for w in wl.WORKLOADS if w.stem == 'gnll' or w.label() == "
           "'ce fwd+grad float32 1024x32768')")
    backend = next(name for name in stableloss.available_backends() if name in wl.TORCH_API_BACKENDS)
    adapter = wl.torch_api(backend)
    result, report = bench_json(tmp_path, "--backends", backend, "--torch-api", patch=two)
    assert report["settings"]["implementations"] == [backend, adapter, "torch"]
    assert [row["workload"] for row in report["workloads"]] == ["ce fwd+grad float32 64x4096",
                                                                "gnll fwd+grad float32 100000"]
    for row in report["workloads"]:
        assert all(outcome["status"] == "ok" for outcome in row["results"].values()), row
    summary = report["torch_api"]
    assert [(entry["workload"], entry["backend"]) for entry in summary["workloads"]] == [
        (row["workload"], backend) for row in report["workloads"]]
    assert {"numpy_api_ms", "torch_api_ms", "overhead_percent", "speedup_over_torch"} <= set(summary["workloads"][0])
    assert summary["small_calls_each"] == 200  # a tenth of 2000 with --quick
    for row in report["small_workloads"]:
        assert list(row["results"]) == [backend, adapter, "torch"]
        assert all(len(outcome["times_ms"]) == 200 for outcome in row["results"].values()), row["workload"]
    assert [entry["call"] for entry in summary["small_calls"]] == ["ce 4x10", "nll 4x10", "bce 16", "gnll 16",
                                                                   "kl 4x10", "mse 16"]
    assert all(entry["torch_us"] > 0 for entry in summary["small_calls"])
    assert set(summary["targets"]) == {"overhead_percent", "speedup", "added_us"}
    lines = result.stdout.splitlines()
    assert next(line for line in lines if line.startswith("workload ") and "backend" in line).split() == [
        "workload", "backend", "numpy", "API", "ms", "torch", "API", "ms", "overhead", "vs", "torch"]
    assert next(line for line in lines if line.startswith("call ")).split() == [
        "call", "backend", "numpy", "API", "us", "torch", "API", "us", "added", "us", "torch", "us"]
    assert any(line.startswith(f"gnll 16   {backend}") for line in lines)
    assert "targets (reported, not enforced):" in result.stdout


def test_torch_api_summary_sets_each_adapter_against_its_backend():
    def ok(best_ms, median_ms=None, **more):
        return {"status": "ok", "best_ms": best_ms, "median_ms": median_ms or best_ms, **more}
    rows = [{"workload": "mse fwd+grad float32 10000000",
             "results": {"c": ok(4.0, speedup=11.0), "torch-api:c": ok(5.0, speedup=8.8), "torch": ok(44.0),
                         "numba": ok(8.0), "torch-api:numba": {"status": "wrong", "detail": "loss"}}}]
    small_rows = [{"stem": "mse", "shape": [16],
                   "results": {"c": ok(0.008, 0.009), "torch-api:c": ok(0.02, 0.030), "torch": ok(0.03, 0.04)}}]
    summary = cli._torch_api_summary(rows, small_rows, 2000)
    assert summary["workloads"] == [{"workload": "mse fwd+grad float32 10000000", "backend": "c",
                                     "numpy_api_ms": 4.0, "torch_api_ms": 5.0, "overhead_percent": 25.0,
                                     "speedup_over_torch": 8.8}]
    (small,) = summary["small_calls"]
    assert small["call"] == "mse 16" and small["backend"] == "c"
    assert small["added_us"] == pytest.approx(21.0) and small["torch_us"] == pytest.approx(40.0)
    assert {name: target["met"] for name, target in summary["targets"].items()} == {
        "overhead_percent": False, "speedup": True, "added_us": False}
    text = "\n".join(cli._format_torch_api(summary))
    assert "an overhead of at most +10% on every workload: MISSED (worst +25.0%)" in text
    assert "at least 5x torch.nn.functional on every workload: met (worst 8.80x)" in text
    assert "at most 15 us added per small call: MISSED (worst +21.0 us)" in text


def test_bench_torch_api_without_torch_says_how_to_install_the_cpu_build():
    result = run_cli("bench", "--torch-api", patch=HIDE_TORCH)
    assert result.returncode == 2
    assert "--torch-api needs torch, which is not installed: " \
           "pip install torch --index-url https://download.pytorch.org/whl/cpu" in result.stderr


@pytest.mark.skipif(not _HAS_TORCH, reason="without torch, --torch-api stops earlier")
def test_bench_torch_api_needs_a_backend_it_wraps():
    result = run_cli("bench", "--torch-api", "--backends", "numpy,torch")
    assert result.returncode == 2
    assert "--torch-api times c or numba through stableloss.torch: name one of them in --backends" in result.stderr
