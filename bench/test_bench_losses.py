"""Every loss x implementation x dtype x size x mode (fwd, fwd+grad), timed with pytest-benchmark.

Implementations: each stableloss backend that loads, the c and numba backends through stableloss.torch
(``torch-api:c``, ``torch-api:numba``: forward and ``loss.backward()`` on tensors) and torch.nn.functional
when torch is installed, the textbook numpy formula, and SciPy where it has the pieces (see
``stableloss/_workloads.py``).  Each benchmark first makes one untimed call (JIT compilation, first touch
of memory) and checks its answer against the numpy reference, so a wrong answer fails instead of being
timed.  One group per loss, size, dtype and mode.
"""

import dataclasses
import time

import pytest

import stableloss._workloads as wl
from stableloss._spec import KERNELS
from stableloss._stability import families

pytest.importorskip("pytest_benchmark")

#: Per loss the sizes its declaration gives the suite: a tiny one, whose time is the per-call overhead
#: (validation, dispatch, the cffi or Numba call), and working sizes small enough for the whole suite
#: to run in a few minutes on 2 cores.
DEFAULT_SIZES = {stem: KERNELS[stem].bench.sizes for stem in wl.STEMS}
#: The shapes of the docs/design.md workloads, per loss.
DESIGN_SIZES = {stem: tuple(dict.fromkeys(w.shape for w in wl.WORKLOADS if w.stem == stem)) for stem in wl.STEMS}
DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Case:
    stem: str
    shape: tuple
    dtype: str
    grad: bool
    implementation: str

    @property
    def group(self):
        return f"{self.stem} {'x'.join(map(str, self.shape))} {self.dtype} {wl.MODES[self.grad]}"

    @property
    def id(self):
        return f"{self.group.replace(' ', '-')}-{self.implementation}"


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        sizes = DESIGN_SIZES if metafunc.config.getoption("bench_sizes") == "design" else DEFAULT_SIZES
        cases = [Case(stem, shape, dtype, grad, implementation)
                 for stem in wl.STEMS for shape in sizes[stem] for dtype in DTYPES for grad in (False, True)
                 for implementation in wl.implementations(stem)]
        metafunc.parametrize("case", cases, ids=[case.id for case in cases])


_last = {}


def _inputs_and_reference(case):
    """Inputs and the numpy reference's answer for the case, kept for the cases that follow it."""
    key = (case.stem, case.shape, case.dtype, case.grad)
    if key not in _last:
        _last.clear()
        inputs = families.typical(case.stem, case.shape, case.dtype)
        _last[key] = inputs, wl.prepare(case.stem, "numpy", inputs, case.grad)()
    return _last[key]


# A case that fails its check never uses the fixture; pytest-benchmark's warning about that would
# turn the failure into a second, teardown error.
@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
def test_loss(benchmark, case, request):
    inputs, reference = _inputs_and_reference(case)
    call = wl.prepare(case.stem, case.implementation, inputs, case.grad)
    read_bytes, written_bytes = wl.min_bytes(case.stem, inputs, case.grad)
    benchmark.group = case.group
    benchmark.extra_info.update(stem=case.stem, shape=list(case.shape), dtype=case.dtype,
                                mode=wl.MODES[case.grad], implementation=case.implementation,
                                read_bytes=read_bytes, written_bytes=written_bytes)

    problem = wl.disagreement(call(), reference, case.implementation)  # the warm-up call
    assert problem is None, f"{case.implementation} disagrees with the numpy reference: {problem}"
    start = time.perf_counter()
    call()  # a second untimed call measures the rounds that fit in the budget
    seconds = time.perf_counter() - start
    fitting = int(request.config.getoption("bench_time") / max(seconds, 1e-6))
    rounds = max(request.config.getoption("benchmark_min_rounds"), min(10_000, fitting))
    benchmark.pedantic(call, rounds=rounds, iterations=1)
