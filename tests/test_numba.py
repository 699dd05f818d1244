"""Checks of the Numba backend itself: its hot loops are vectorized, no fast-math flag beyond
``reassoc`` reaches the machine code, importing the package costs no Numba, and the compiled-code cache
falls back cleanly where the package directory is not writable.

Each check runs in a fresh interpreter: the LLVM IR is only available for code compiled in the
process (not for code loaded from the cache), so those processes point ``NUMBA_CACHE_DIR`` at an
empty directory.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import stableloss

pytest.importorskip("numba")

PACKAGE_DIR = pathlib.Path(stableloss.__file__).resolve().parent
STEMS = ("ce", "bce", "gnll", "kl", "mse", "lse")
DTYPES = ("float32", "float64")

#: A vector instruction of each family's hot loop: the range reduction of exp (rint) for the softmax
#: and logistic losses, the division of log (and of d/v) for gnll and kl, the fused multiply-add of
#: the gradient for mse.  None of them occurs in the lane-sum helpers, so finding it vectorized means
#: the per-element loop itself was.
HOT_LOOP_MARKERS = {
    "ce": r"@llvm\.rint\.v(\d+)f64",
    "lse": r"@llvm\.rint\.v(\d+)f64",
    "bce": r"@llvm\.rint\.v(\d+)f64",
    "gnll": r"fdiv (?:[a-z]+ )*<(\d+) x double>",
    "kl": r"fdiv (?:[a-z]+ )*<(\d+) x double>",
    "mse": r"@llvm\.fma\.v(\d+)f64",
}

_INSPECT = textwrap.dedent(r"""
    import importlib, json, re, sys
    import numpy as np
    from stableloss import _numba

    markers, stems = json.loads(sys.argv[1]), sys.argv[2:]
    flag_words = r"(?:fast|nnan|ninf|nsz|arcp|contract|afn|reassoc)"
    flagged = re.compile(r"= (?:fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call|select|phi)((?: " + flag_words + r")+) ")
    report = {}
    for stem in stems:
        module = importlib.import_module("stableloss._numba." + stem)
        for dtype in ("float32", "float64"):
            _numba.kernel(stem, np.dtype(dtype))
            signature = next(s for s in module.kernel.signatures if str(s[0].dtype) == dtype)
            llvm = module.kernel.inspect_llvm(signature)
            widths = [int(w) for w in re.findall(markers[stem], llvm)]
            flags = sorted({word for match in flagged.findall(llvm) for word in match.split()})
            report[stem + " " + dtype] = {"widths": widths, "flags": flags}
    print(json.dumps(report))
""")


def _run(code, *args, env=None, cwd=None):
    """Run python code in a fresh interpreter that imports the stableloss under test; returns stdout."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_DIR.parent), environment.get("PYTHONPATH", "")])
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                            cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """LLVM IR facts of every kernel, both dtypes, compiled afresh in one subprocess."""
    cache = tmp_path_factory.mktemp("numba_cache")
    out = _run(_INSPECT, json.dumps(HOT_LOOP_MARKERS), *STEMS, env={"NUMBA_CACHE_DIR": str(cache)})
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stem", STEMS)
def test_hot_loop_is_vectorized(compiled, stem, dtype):
    widths = compiled[f"{stem} {dtype}"]["widths"]
    assert widths and max(widths) >= 4, (
        f"the {stem} {dtype} kernel's hot loop is not vectorized: no {HOT_LOOP_MARKERS[stem]!r} on a "
        f"vector of >= 4 doubles in its LLVM IR (found widths {widths})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stem", STEMS)
def test_no_fast_math_flags(compiled, stem, dtype):
    """Only reassoc (on the maximum reductions) may appear; nnan/ninf would let LLVM drop NaN and inf
    handling, contract would make results depend on the compiler's fusion choices."""
    assert set(compiled[f"{stem} {dtype}"]["flags"]) <= {"reassoc"}


def test_import_does_not_import_numba():
    code = ("import sys, json, stableloss, stableloss._numba\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite'))))")
    assert json.loads(_run(code).strip().splitlines()[-1]) == []


_CALL_MSE = textwrap.dedent(r"""
    import numpy as np
    from stableloss import _numba
    x = np.linspace(-3.0, 3.0, 1000)
    loss = np.empty_like(x)
    _numba.kernel("mse", np.float64)(dict(input=x, target=np.zeros_like(x), weight=None, n=x.size, grad_scale=1.0,
                                          rows_per_block=2**16, loss=loss, grad=None, block_sums=None))
    assert np.array_equal(loss, x * x)
    print("ok")
""")


def _package_copy(tmp_path):
    """A copy of the Python sources of stableloss whose __pycache__ cannot be created (a file stands in
    its way: file modes alone do not stop root from writing)."""
    copy = tmp_path / "site" / "stableloss"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    (copy / "_numba" / "__pycache__").write_text("not a directory")
    return copy


def _cache_env(tmp_path, user_cache):
    return {"PYTHONPATH": str(tmp_path / "site"), "NUMBA_CACHE_DIR": "", "XDG_CACHE_HOME": str(user_cache),
            "HOME": str(tmp_path / "home")}


def test_unwritable_package_caches_in_user_directory(tmp_path):
    _package_copy(tmp_path)
    user_cache = tmp_path / "user_cache"
    env = _cache_env(tmp_path, user_cache)
    assert _run(_CALL_MSE, env=env, cwd=tmp_path).strip() == "ok"
    assert list(user_cache.rglob("*.nbi")), "no index in the user-wide Numba cache"
    assert _run(_CALL_MSE, env=env, cwd=tmp_path).strip() == "ok"  # and from the cache


def test_no_writable_cache_location_still_works(tmp_path):
    _package_copy(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so no cache directory can be made below it")
    assert _run(_CALL_MSE, env=_cache_env(tmp_path, blocked / "cache"), cwd=tmp_path).strip() == "ok"
