"""Memory: what one call allocates beyond its outputs is bounded, whatever the input's size.

Measured with tracemalloc (numpy's and Numba's allocations, not the C kernels' malloc): the peak of the
call less what is still held when it returns (its outputs), on a wide row and on many rows.  The bounds
are those docs/design.md states: the native backends a few small buffers per call (the C kernels' own
scratch, at most 8 MiB, is checked through its constant below), the numpy backend a bounded block of
float64 temporaries (``_reference``'s module docstring), none of them growing with the input.

``STABLELOSS_SLOW=1`` adds the single row of 2^31 + 17 float32 logits (8 GiB, a few seconds per backend).
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

import stableloss
from stableloss import _reference, _workloads
from stableloss._stability import families

MiB = 2**20
#: Extra memory of a call at most: the native kernels' buffers (Numba: CHUNK-sized, and one row of up
#: to 2^16 exponentials) and the API's per-call arrays; the numpy backend's float64 temporaries of one
#: block (_reference.TEMPORARY_BYTES).
BOUND = {"c": 3 * MiB, "numba": 3 * MiB, "numpy": _reference.TEMPORARY_BYTES}
#: A wide row beyond every chunk of the backends (C scratch, Numba's stored row, the reference's columns),
#: and many rows; elementwise losses get the same number of elements.
SHAPES = {"wide row": (1, 2**20 + 17), "many rows": (2**13, 128)}
ROWS = ("ce", "nll", "kl")  # losses whose inputs are rows


def _call(stem, backend, shape, dtype, options):
    inputs = families.typical(stem, shape if stem in ROWS else (np.prod(shape),), dtype, options=options)
    call = _workloads.prepare(stem, backend, inputs, grad=True)
    call()  # compiled, and the outputs' buffers in place
    return call


@pytest.mark.parametrize("options", [False, True], ids=["plain", "options"])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("stem", _workloads.STEMS)
def test_loss_call_memory_bounded(backend, stem, shape, options):
    extra = _workloads.extra_bytes(_call(stem, backend, shape, np.float32, options))
    assert extra <= BOUND[backend], f"{stem} {shape}: {extra / MiB:.1f} MiB beyond the outputs"


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_softmax_memory_bounded(backend, shape):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    call = lambda: stableloss.log_softmax(x, axis=1, backend=backend)  # noqa: E731
    call()
    assert _workloads.extra_bytes(call) <= BOUND[backend]


def test_numpy_block_bound_holds_for_a_larger_input():
    """The numpy backend's extra memory stays the same for an input 8 times as large."""
    small, large = (_workloads.extra_bytes(_call("bce", "numpy", (2**18,), np.float64, True)),
                    _workloads.extra_bytes(_call("bce", "numpy", (2**21,), np.float64, True)))
    assert large <= small + MiB


def test_c_scratch_bound():
    """The C kernels' scratch (malloc, not seen by tracemalloc): CE's exponentials of one float32 row
    of at most CE_SCRATCH_CLASSES classes, 8 bytes each, at most 8 MiB."""
    source = (Path(__file__).parents[1] / "kernels" / "ce.c").read_text()
    classes = int(re.search(r"#define CE_SCRATCH_CLASSES (\d+)", source).group(1))
    assert classes * 8 <= 8 * MiB


@pytest.mark.skipif(os.environ.get("STABLELOSS_SLOW") != "1",
                    reason="a row of 2^31 + 17 float32 logits: 8 GiB, 3 to 5 s a backend; set STABLELOSS_SLOW=1")
@pytest.mark.parametrize("native", ["c", "numba"])
def test_row_longer_than_2_31(native):
    """One row of n = 2^31 + 17 logits, zeros and a 30 in the last column (index 2^31 + 16, past every
    32-bit index): cross-entropy for that target is log1p((n - 1) e^-30), the log-sum-exp is 30 plus
    the same; to 2 float32 ulp (float64 accumulation leaves 0.5)."""
    if native not in stableloss.available_backends():
        pytest.skip(f"the {native} backend is not available")
    n = 2**31 + 17
    x = np.zeros((1, n), np.float32)
    x[0, -1] = 30.0
    # mpmath (mp.dps = 40): mp.log1p((2**31 + 16) * mp.exp(-30)) = 0.000200933236159704546698...
    tail = 0.000200933236159704546698
    loss = stableloss.cross_entropy(x, np.array([n - 1]), backend=native)
    assert abs(float(loss) - tail) <= 2 * float(np.spacing(np.float32(tail)))
    lse = float(stableloss.logsumexp(x, axis=1, backend=native)[0])
    assert abs(lse - (30.0 + tail)) <= 2 * float(np.spacing(np.float32(30.0 + tail)))
