"""The float32 lane primitives of kernels/sl_math.h (the C kernels' fast float32 paths) and its shortest
double exp (grade SL_CHEAP_SUM) within their stated error, measured by tests/primitives.c over every
STABLELOSS_PRIMITIVES_STRIDE-th float32 argument of their ranges, resp. 2^26 / stride arguments
(default 17: a few seconds; 1 measures all of them)."""

import os
import platform
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, os.pardir, "kernels")
#: The bounds sl_math.h states: ulp for the float32 lanes (exhaustive measurements: 0.98 and 0.71 ulp),
#: relative error for the SL_CHEAP_SUM exp (2^26 arguments: 3.06e-9, as its fit).
BOUNDS = {"sl_expf_neg_v": 1.0, "sl_log1pf_unit_v": 0.75, "sl_exp_sum": 3.1e-9, "sl_exp_sum_v": 3.1e-9}

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or shutil.which("gcc") is None,
                                reason="the float32 lane primitives are x86-64 AVX2 code, built with gcc")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("primitives") / "primitives")
    # the flags of kernels/build.py that matter for the arithmetic
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
                    "-I", KERNELS, os.path.join(HERE, "primitives.c"), "-o", exe, "-lm"], check=True)
    stride = os.environ.get("STABLELOSS_PRIMITIVES_STRIDE", "17")
    out = subprocess.run([exe, stride], check=True, capture_output=True, text=True).stdout
    if out.strip() == "no-avx2":
        pytest.skip("this CPU has no AVX2+FMA")
    return {name: (float(worst), at) for name, worst, at in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_float32_primitive_within_bound(measured, name):
    worst, at = measured[name]
    assert worst <= BOUNDS[name], f"{name}: error {worst} at {at}"
