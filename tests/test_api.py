"""API contract beyond accuracy: dtypes and shapes of results, thread-count independence, backend choice."""

import os
import subprocess
import sys

import numpy as np
import pytest

import stableloss
import helpers
from stableloss._stability import families


def _problems(dtype, n):
    """Every loss on typical inputs of about n elements, with every option (large enough to be split
    over threads)."""
    return [(func, kwargs) for _, func, kwargs in helpers.typical_calls((n // 1000, 1000), dtype, options=True)]


def _flatten(result):
    if isinstance(result, tuple):
        return [a for item in result for a in _flatten(item)]
    return [np.asarray(result)]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bitwise_identical_for_any_thread_count(native_backend, dtype, reduction, thread_splits):
    results = {}
    for threads in (1, 2, 3):
        stableloss.set_num_threads(threads)
        results[threads] = [_flatten(func(**kwargs, reduction=reduction, backend=native_backend, return_grad=True))
                            for func, kwargs in _problems(dtype, 2**18)]
    problems = len(results[1])
    assert thread_splits == [2] * problems + [3] * problems
    for threads in (2, 3):
        for got, want in zip(results[threads], results[1]):
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b, err_msg=f"{threads} threads differ from 1")


def test_result_dtypes_and_shapes(backend, dtype):
    for func, kwargs in _problems(dtype, 4000):
        x = families.input_of(kwargs)
        loss, grads = func(**kwargs, reduction="none", backend=backend, return_grad=True)
        assert loss.dtype == dtype
        for grad in _flatten(grads):
            assert grad.dtype == dtype and grad.shape == x.shape
        for reduction in ("mean", "sum"):
            value = func(**kwargs, reduction=reduction, backend=backend)
            assert np.asarray(value).shape == () and np.asarray(value).dtype == dtype


def test_set_num_threads_rejects_bad_values(restore_threads):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError):
            stableloss.set_num_threads(bad)


def test_numpy_backend_always_available():
    assert "numpy" in stableloss.available_backends()


#: Run with STABLELOSS_BACKEND set to argv[1]: what backend=None then does.
_DEFAULT_BACKEND_CALL = """
import sys
import numpy as np, stableloss
x = np.random.default_rng(2).standard_normal((5, 7)); y = np.arange(5)
if sys.argv[1] == "no-such-backend":
    try:
        stableloss.cross_entropy(x, y)
    except ValueError as exc:
        print("ValueError", "backend" in str(exc))
else:
    print("bitwise", np.array_equal(stableloss.cross_entropy(x, y, reduction="none"),
                                    stableloss.cross_entropy(x, y, reduction="none", backend=sys.argv[1])))
"""


def test_environment_selects_backend(backend):
    """STABLELOSS_BACKEND, read at import, picks the backend for backend=None: an unknown name is then
    an error, a known one gives that backend's results bitwise."""
    for name, expected in (("no-such-backend", "ValueError True"), (backend, "bitwise True")):
        result = subprocess.run([sys.executable, "-c", _DEFAULT_BACKEND_CALL, name], capture_output=True,
                                text=True, timeout=120, env={**os.environ, "STABLELOSS_BACKEND": name})
        assert result.stdout.strip() == expected, result.stderr


