"""Checks of the Numba backend itself: its hot loops are vectorized (the float-lane paths of the
float32 kernels on 8 floats), no fast-math flag beyond ``reassoc`` reaches the machine code, importing
the package costs no Numba, and the compiled-code cache falls back cleanly where the package directory
is not writable.

The LLVM IR is only available for code compiled in the process (not for code loaded from the cache),
so it comes from fresh interpreters compiling into an empty ``NUMBA_CACHE_DIR``: those of the session's
warm-up (tests/numba_warmup.py), or the ``compiled`` fixture's own.
"""

import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import stableloss
from stableloss._spec import KERNELS
import numba_warmup

pytest.importorskip("numba")

PACKAGE_DIR = pathlib.Path(stableloss.__file__).resolve().parent
STEMS = tuple(KERNELS)
DTYPES = ("float32", "float64")


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
    """LLVM IR facts of every kernel, both dtypes ({"stem dtype": facts}): the session's, where
    tests/conftest.py compiled the kernels before the tests, else compiled afresh here."""
    path = os.environ.get(numba_warmup.FACTS)
    if path:
        with open(path) as f:
            return json.load(f)
    pairs = [f"{stem} {dtype}" for stem in STEMS for dtype in DTYPES]
    return numba_warmup.inspect(pairs, tmp_path_factory.mktemp("numba_cache"), os.cpu_count() or 1, PACKAGE_DIR.parent)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stem", STEMS)
def test_hot_loop_is_vectorized(compiled, stem, dtype):
    widths = compiled[f"{stem} {dtype}"]["widths"]
    assert widths and max(widths) >= 4, (
        f"the {stem} {dtype} kernel's hot loop is not vectorized: no {_module(stem).HOT_LOOP!r} on a "
        f"vector of >= 4 doubles in its LLVM IR (found widths {widths})")


def _module(stem):
    return importlib.import_module(f"stableloss._numba.{stem}")


#: The kernels with a float32 float-lane fast path (FLOAT32_LANES in their module).
LANE_STEMS = [stem for stem in STEMS if hasattr(_module(stem), "FLOAT32_LANES")]


@pytest.mark.parametrize("stem", LANE_STEMS)
def test_float32_lanes_are_vectorized(compiled, stem):
    widths = compiled[f"{stem} float32"]["lane_widths"]
    assert widths and max(widths) >= 8, (
        f"the {stem} float32 kernel's float-lane loop is not vectorized: no {_module(stem).FLOAT32_LANES!r} on a "
        f"vector of >= 8 floats in its LLVM IR (found widths {widths})")


@pytest.mark.parametrize("stem", LANE_STEMS)
def test_float32_lanes_stay_out_of_float64_kernels(compiled, stem):
    """The float64 kernel compiles the float-lane branch out (it is behind the dtype constant)."""
    assert compiled[f"{stem} float64"]["lane_widths"] == []


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
    from stableloss._spec import KERNELS
    x = np.linspace(-3.0, 3.0, 1000)
    loss = np.empty_like(x)
    # input, target, weight, n_rows, grad_scale, rows_per_block, loss, grad, block_sums
    _numba.kernel(KERNELS["mse"], np.float64)([x, np.zeros_like(x), None, x.size, 1.0, 2**16, loss, None, None])
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


def _float32_range(lo, hi, stride):
    """Every stride-th float32 of [lo, hi] (lo, hi of one sign) by bit pattern, with both ends."""
    bits = np.sort(np.array([lo, hi], np.float32).view(np.int32))
    values = np.arange(bits[0], bits[1] + 1, stride, dtype=np.int64).astype(np.int32).view(np.float32)
    return np.concatenate([values, np.array([lo, hi], np.float32)])


def _ulp32(reference):
    """One float32 ulp at each float64 reference value (normal range)."""
    return np.ldexp(1.0, np.frexp(reference)[1] - 24)


#: The bounds kernels/sl_math.h states for its float32 lanes (tests/test_primitives.py), which the Numba
#: mirrors in _jit.py must keep: expf_neg in float32 ulp of its result, log1pf_unit (a float64) in float32
#: ulp before the caller rounds.
FLOAT32_LANE_BOUNDS = {"expf_neg": 1.0, "log1pf_unit": 0.75}


@pytest.mark.parametrize("name", sorted(FLOAT32_LANE_BOUNDS))
def test_float32_lane_primitive_within_bound(name):
    """Every 7th float32 of the primitive's range (1.6e8 for expf_neg, 1.5e8 for log1pf_unit), against
    numpy's float64 exp and log1p (their error, below 1e-15 relative, is 1e-8 of a float32 ulp)."""
    from numba import njit

    from stableloss._numba import _jit

    if name == "expf_neg":
        arguments = _float32_range(np.float32(-0.0), -_jit.EXPF_NEG_RANGE, 7)
        primitive, reference = _jit.expf_neg, np.exp

        @njit
        def evaluate(z, out):
            for i in range(z.size):
                out[i] = primitive(z[i])
    else:
        arguments = _float32_range(np.float32(2.0**-126), np.float32(1.0), 7)
        primitive, reference = _jit.log1pf_unit, np.log1p

        @njit
        def evaluate(e, out):
            for i in range(e.size):
                out[i] = primitive(e[i], _jit.log1pf_q(e[i]))

    worst, at = 0.0, None
    for chunk in np.array_split(arguments, 16):
        out = np.empty(chunk.size)
        evaluate(chunk, out)
        exact = reference(chunk.astype(np.float64))
        errors = np.abs(out - exact) / _ulp32(exact)
        if errors.max() > worst:
            worst, at = errors.max(), chunk[errors.argmax()]
    assert worst <= FLOAT32_LANE_BOUNDS[name], f"{name}: error {worst} ulp at {at!r}"
