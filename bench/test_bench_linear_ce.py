"""linear_cross_entropy, float32 forward + gradient, next to torch.nn.functional.linear_cross_entropy (its
reference and chunked paths) and to numpy's three matrix products alone, the floor of any implementation.

Sizes: --bench-sizes default takes a small head (N, D, V) = (256, 256, 4096); design takes the shapes of
``python -m stableloss bench --linear-ce`` (``stableloss._workloads.LINEAR_CE_SHAPES``).  One group per
shape.  Each implementation's first, untimed call is checked (normwise) against the numpy backend.
"""

import pytest

import stableloss
import stableloss._workloads as wl
from stableloss._stability import peers

pytest.importorskip("pytest_benchmark")


def pytest_generate_tests(metafunc):
    if "shape" in metafunc.fixturenames:
        shapes = wl.LINEAR_CE_SHAPES if metafunc.config.getoption("bench_sizes") == "design" else wl.LINEAR_CE_QUICK
        names = stableloss.available_backends() + [name for name in wl.LINEAR_CE_PEERS
                                                   if name == "products" or peers.optional("torch")]
        metafunc.parametrize("shape", shapes, ids=["x".join(map(str, shape)) for shape in shapes], scope="module")
        metafunc.parametrize("implementation", names)


_inputs = {}


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
def test_linear_ce(benchmark, shape, implementation):
    if shape not in _inputs:
        _inputs.clear()
        inputs = wl.linear_ce_inputs(shape)
        _inputs[shape] = inputs, wl.prepare_linear_ce("numpy", inputs)()
    inputs, reference = _inputs[shape]
    call = wl.prepare_linear_ce(implementation, inputs)
    benchmark.group = f"linear_ce {'x'.join(map(str, shape))} float32 fwd+grad"
    benchmark.extra_info.update(shape=list(shape), implementation=implementation)
    got = call()
    if implementation != "products":  # normwise, as a peer: elementwise the products' rounding shows
        problem = wl.disagreement(got, reference, "torch")
        assert problem is None, f"{implementation} disagrees with the numpy backend: {problem}"
    benchmark.pedantic(call, rounds=3, iterations=1)
