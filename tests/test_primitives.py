"""The vector primitives of kernels/sl_math.h within their stated error at every SIMD level the CPU has
(AVX2+FMA, AVX-512), measured by tests/primitives.c: the float32 lane primitives (the C kernels' fast
float32 paths) over every STABLELOSS_PRIMITIVES_STRIDE-th float32 argument of their ranges, the
shortest double exp (grade SL_CHEAP_SUM) and the full-grade double exp, log and log1p over 2^26 / stride
arguments (default stride 17: a few seconds per level; 1 measures all of them)."""

import os
import platform
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, os.pardir, "kernels")
#: The bounds sl_math.h states: ulp for the float32 lanes (exhaustive measurements: 0.98 and 0.71 ulp),
#: relative error for the SL_CHEAP_SUM exp (2^26 arguments: 3.06e-9, as its fit), and the full grade's
#: 1 ulp of double for exp, log and log1p (measured 0.75, 0.84 and 0.84 ulp).
BOUNDS = {"sl_expf_neg_v": 1.0, "sl_log1pf_unit_v": 0.75, "sl_exp_sum": 3.1e-9, "sl_exp_sum_v": 3.1e-9,
          "sl_exp_v": 1.0, "sl_log_v": 1.0, "sl_log_v_near_1": 1.0, "sl_log1p_v": 1.0, "sl_log1p_v_unit": 1.0}
#: The build of each level: the AVX-512 unit's define, as kernels/avx512.c sets it.
LEVELS = {"avx2": [], "avx512": ["-DSL_AVX512_UNIT"]}

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("gcc") is None,
                                reason="the vector primitives are x86-64 code, built with gcc")


@pytest.fixture(scope="module", params=sorted(LEVELS))
def measured(request, tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("primitives") / f"primitives_{request.param}")
    # the flags of kernels/build.py that matter for the arithmetic
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
                    *LEVELS[request.param], "-I", KERNELS, os.path.join(HERE, "primitives.c"), "-o", exe, "-lm"],
                   check=True)
    stride = os.environ.get("STABLELOSS_PRIMITIVES_STRIDE", "17")
    out = subprocess.run([exe, stride], check=True, capture_output=True, text=True).stdout
    if out.strip() == "unsupported":
        pytest.skip(f"this CPU does not support {request.param}")
    return {name: (float(worst), at) for name, worst, at in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_vector_primitive_within_bound(measured, name):
    worst, at = measured[name]
    assert worst <= BOUNDS[name], f"{name}: error {worst} at {at}"
