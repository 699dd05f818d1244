"""The C kernels' SIMD levels: choosing one by name (``set_simd_level``, ``STABLELOSS_SIMD``) and timing
one in the bench (``c-<level>``).  That every level computes every loss within budget is the rest of the
suite's business: each test of backend ``c`` also runs as ``c-avx2`` and ``c-scalar`` (conftest.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import stableloss
from stableloss import _workloads as wl
from stableloss._stability import families

pytestmark = pytest.mark.skipif("c" not in stableloss.available_backends(), reason="the C kernels are not built")


@pytest.fixture
def c_backend():
    from stableloss import _c
    yield _c
    _c.set_simd_level(None)


def test_levels_by_name(c_backend):
    best = c_backend.best_simd_level()
    assert c_backend.simd_level() == best  # the default: the best the CPU supports
    for level in c_backend.SIMD_LEVELS[:c_backend.SIMD_LEVELS.index(best) + 1]:
        c_backend.set_simd_level(level)
        assert c_backend.simd_level() == level
    c_backend.set_simd_level(None)
    assert c_backend.simd_level() == best
    with pytest.raises(ValueError, match="unknown SIMD level 'sse2': expected one of scalar, avx2, avx512"):
        c_backend.set_simd_level("sse2")
    if best != "avx512":  # a level above the CPU's is refused, never silently lowered
        with pytest.raises(ValueError, match=f"not supported by this CPU \\(the best it supports: '{best}'\\)"):
            c_backend.set_simd_level("avx512")


def _level_at_import(value):
    env = dict(os.environ, STABLELOSS_SIMD=value)
    code = "from stableloss import _c; print(_c.simd_level())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_environment_variable_chooses_the_level():
    result = _level_at_import("scalar")
    assert result.returncode == 0 and result.stdout.strip() == "scalar"
    result = _level_at_import("avx3")
    assert result.returncode != 0
    assert "ValueError: STABLELOSS_SIMD: unknown SIMD level 'avx3'" in result.stderr


def test_bench_implementation_at_a_level(c_backend):
    """``c-scalar`` in the bench is backend c at the scalar level (the same outputs as forcing it), and
    the level in force before the call is back after it."""
    workload = wl.WORKLOADS[0]
    inputs = families.typical(workload.stem, workload.quick_shape, workload.dtype)
    assert wl.backend_of("c-scalar") == "c" and wl.simd_level_of("c-avx9") is None
    got = wl.prepare(workload.stem, "c-scalar", inputs, workload.grad)()
    assert c_backend.simd_level() == c_backend.best_simd_level()
    c_backend.set_simd_level("scalar")
    want = wl.prepare(workload.stem, "c", inputs, workload.grad)()
    for g, w in zip(got, want):
        assert np.array_equal(g, w)
