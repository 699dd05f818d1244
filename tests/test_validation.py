"""Bad input gets a clear error; unusual but valid input (non-contiguous, read-only, empty) works; inputs
are never modified.  Every backend.

Exception types (docs/bad_inputs.md): IndexError for a class target out of range, with PyTorch's message
"Target 5 is out of bounds."; ValueError for shapes, reductions, label_smoothing outside [0, 1],
negative var; TypeError for non-float inputs and float class indices -- Python's types also where
PyTorch raises RuntimeError.  Every message names the
argument and shows what was received.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import stableloss
import helpers
from stableloss import (_dispatch, binary_cross_entropy_with_logits, cross_entropy, gaussian_nll_loss, kl_div,
                        log_softmax, logsumexp, mse_loss, softmax)
from stableloss._dispatch import BackendUnavailable, CExtensionWarning
from stableloss._spec import KERNELS
from stableloss._stability import families

RNG = np.random.default_rng(11)
X = RNG.standard_normal((3, 5))
Y = np.array([0, 4, 2])
P = np.full((3, 5), 0.2)
V = RNG.uniform(0.5, 2.0, (3, 5))

# (id, function, arguments, exception type, words the message must contain)
BAD_INPUTS = [
    ("ce-target-too-large", cross_entropy, dict(input=X, target=np.array([0, 5, 1])), IndexError,
     ["Target 5 is out of bounds."]),
    ("ce-target-negative", cross_entropy, dict(input=X, target=np.array([0, -1, 1])), IndexError,
     ["Target -1 is out of bounds."]),
    ("ce-target-default-ignore-not-ignored", cross_entropy,
     dict(input=X, target=np.array([0, -100, 1]), ignore_index=-1), IndexError, ["Target -100 is out of bounds."]),
    ("ce-kdim-target-out-of-range", cross_entropy,
     dict(input=RNG.standard_normal((2, 3, 4)), target=np.array([[0, 1, 2, 3], [0, 1, 2, 0]])), IndexError,
     ["Target 3 is out of bounds."]),
    ("ce-unbatched-target-out-of-range", cross_entropy, dict(input=X[0], target=np.array(7)), IndexError,
     ["Target 7 is out of bounds."]),
    ("ce-float-class-indices", cross_entropy, dict(input=X, target=np.array([0.0, 1.0, 2.0])), TypeError, ["target"]),
    ("ce-bool-target", cross_entropy, dict(input=X, target=np.array([True, False, True])), TypeError, ["target"]),
    ("ce-int-input", cross_entropy, dict(input=np.ones((3, 5), np.int64), target=Y), TypeError, ["input", "int64"]),
    ("ce-float16-input", cross_entropy, dict(input=X.astype(np.float16), target=Y), TypeError, ["input", "float16"]),
    ("ce-0d-input", cross_entropy, dict(input=np.array(1.0), target=np.array(0)), ValueError, ["input"]),
    ("ce-batch-mismatch", cross_entropy, dict(input=X, target=np.array([0, 1])), ValueError, ["target", "(2,)"]),
    ("ce-kdim-target-mismatch", cross_entropy,
     dict(input=RNG.standard_normal((2, 3, 4)), target=np.zeros((2, 3), np.int64)), ValueError, ["target", "(2, 3)"]),
    ("ce-prob-target-shape", cross_entropy, dict(input=X, target=np.full((3, 4), 0.25)), ValueError,
     ["target", "(3, 4)"]),
    ("ce-weight-size", cross_entropy, dict(input=X, target=Y, weight=np.ones(4)), ValueError, ["weight", "(4,)"]),
    ("ce-weight-int", cross_entropy, dict(input=X, target=Y, weight=np.ones(5, np.int64)), TypeError, ["weight"]),
    ("ce-smoothing-above-1", cross_entropy, dict(input=X, target=Y, label_smoothing=1.5), ValueError,
     ["label_smoothing", "1.5"]),
    ("ce-smoothing-negative", cross_entropy, dict(input=X, target=Y, label_smoothing=-0.1), ValueError,
     ["label_smoothing", "-0.1"]),
    ("ce-reduction", cross_entropy, dict(input=X, target=Y, reduction="avg"), ValueError, ["reduction", "avg"]),
    ("ce-reduction-batchmean", cross_entropy, dict(input=X, target=Y, reduction="batchmean"), ValueError,
     ["reduction", "batchmean"]),
    ("ce-ignore-index-with-probabilities", cross_entropy, dict(input=X, target=P, ignore_index=0), ValueError,
     ["ignore_index"]),
    ("bce-target-shape", binary_cross_entropy_with_logits, dict(input=X, target=P[:, :1]), ValueError,
     ["target", "(3, 1)"]),
    ("bce-weight-shape", binary_cross_entropy_with_logits, dict(input=X, target=P, weight=np.ones(4)), ValueError,
     ["weight", "(4,)"]),
    ("bce-pos-weight-shape", binary_cross_entropy_with_logits, dict(input=X, target=P, pos_weight=np.ones(3)),
     ValueError, ["pos_weight", "(3,)"]),
    ("bce-int-input", binary_cross_entropy_with_logits, dict(input=np.ones((3, 5), np.int32), target=P), TypeError,
     ["input"]),
    ("bce-int-target", binary_cross_entropy_with_logits, dict(input=X, target=np.ones((3, 5), np.int64)), TypeError,
     ["target"]),
    ("bce-reduction", binary_cross_entropy_with_logits, dict(input=X, target=P, reduction="batchmean"), ValueError,
     ["reduction"]),
    ("gnll-negative-var", gaussian_nll_loss, dict(input=X, target=X, var=-V), ValueError, ["var", "negative"]),
    ("gnll-negative-float-var", gaussian_nll_loss, dict(input=X, target=X, var=-1.0), ValueError, ["var"]),
    ("gnll-var-shape", gaussian_nll_loss, dict(input=X, target=X, var=np.ones((2, 5))), ValueError, ["var", "(2, 5)"]),
    ("gnll-var-int", gaussian_nll_loss, dict(input=X, target=X, var=np.ones((3, 5), np.int64)), TypeError, ["var"]),
    ("gnll-int-input", gaussian_nll_loss, dict(input=np.ones((3, 5), np.int64), target=X, var=V), TypeError,
     ["input"]),
    ("gnll-target-shape", gaussian_nll_loss, dict(input=X, target=np.ones(4), var=V), ValueError, ["target", "(4,)"]),
    ("gnll-reduction", gaussian_nll_loss, dict(input=X, target=X, var=V, reduction="batchmean"), ValueError,
     ["reduction"]),
    ("gnll-negative-eps", gaussian_nll_loss, dict(input=X, target=X, var=V, eps=-1e-6), ValueError, ["eps"]),
    ("kl-reduction", kl_div, dict(input=X, target=P, reduction="avg"), ValueError, ["reduction", "avg"]),
    ("kl-int-input", kl_div, dict(input=np.ones((3, 5), np.int64), target=P), TypeError, ["input"]),
    ("kl-int-target", kl_div, dict(input=X, target=np.ones((3, 5), np.int64)), TypeError, ["target"]),
    ("kl-target-shape", kl_div, dict(input=X, target=np.ones((3, 4))), ValueError, ["target", "(3, 4)"]),
    ("mse-target-shape", mse_loss, dict(input=X, target=np.ones((3, 4))), ValueError, ["target", "(3, 4)"]),
    ("mse-weight-shape", mse_loss, dict(input=X, target=X, weight=np.ones(4)), ValueError, ["weight", "(4,)"]),
    ("mse-int-input", mse_loss, dict(input=np.ones((3, 5), np.int64), target=X), TypeError, ["input"]),
    ("mse-reduction", mse_loss, dict(input=X, target=X, reduction="batchmean"), ValueError, ["reduction"]),
    ("lse-axis", logsumexp, dict(x=X, axis=2), ValueError, ["axis", "2"]),
    ("lse-int", logsumexp, dict(x=np.ones(3, np.int64)), TypeError, ["x"]),
    ("lse-0d", logsumexp, dict(x=np.array(1.0)), ValueError, ["x"]),
    ("log-softmax-axis", log_softmax, dict(x=X, axis=-3), ValueError, ["axis", "-3"]),
    ("softmax-int", softmax, dict(x=np.ones(3, np.int32)), TypeError, ["x"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(backend, case):
    _, func, kwargs, exception, words = case
    with pytest.raises(exception) as info:
        func(**kwargs, backend=backend)
    assert type(info.value) is exception or exception is not ValueError
    message = str(info.value)
    for word in words:
        assert word in message, f"{func.__name__}: message {message!r} does not mention {word!r}"


def test_index_error_message_is_pytorchs(backend):
    """The message starts exactly like PyTorch's, so code matching on it moves over."""
    with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\."):
        cross_entropy(X, np.array([0, 5, 1]), backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        cross_entropy(X, Y, backend="fortran")


#: Why the C extension does not import in :func:`without_c_extension` (the import system's words).
SIMULATED_REASON = "import of stableloss._kernels halted; None in sys.modules"


@pytest.fixture
def without_c_extension(monkeypatch):
    """The C extension as if it had not been built: importing it fails, so python/stableloss/_c.py runs
    its ImportError path for real; ``backend=None`` is chosen afresh (no STABLELOSS_BACKEND)."""
    monkeypatch.setitem(sys.modules, "stableloss._kernels", None)  # the import system then refuses it
    monkeypatch.delitem(sys.modules, "stableloss._c", raising=False)  # absent where the extension never loaded
    monkeypatch.setattr(_dispatch, "_ENV_BACKEND", None)
    _dispatch._load.cache_clear()
    _dispatch._default.cache_clear()
    yield
    _dispatch._load.cache_clear()  # monkeypatch then restores the modules: the next load finds them
    _dispatch._default.cache_clear()


def test_missing_c_extension_is_left_out(without_c_extension):
    available = stableloss.available_backends()
    assert "c" not in available and available[-1] == "numpy"


def test_missing_c_extension_warns_once_and_falls_back(without_c_extension):
    with pytest.warns(CExtensionWarning, match=SIMULATED_REASON) as record:
        loss = cross_entropy(X, Y)
    assert [warning.filename for warning in record] == [__file__]  # points at the caller
    fallback = stableloss.available_backends()[0]
    assert str(record[0].message).startswith(f"backend=None uses {fallback!r}, not 'c'")
    assert loss == cross_entropy(X, Y, backend=fallback)
    cross_entropy(X, Y)  # no second warning: filterwarnings=error would raise it


def test_missing_c_extension_raises_with_reason(without_c_extension):
    with pytest.raises(BackendUnavailable, match=SIMULATED_REASON) as info:
        cross_entropy(X, Y, backend="c")
    assert str(info.value).startswith("backend 'c' is not available: the stableloss C kernels are not available")


#: Run with STABLELOSS_BACKEND set; argv[1] "without-c" makes the C extension fail to import first.
_ENVIRONMENT_CALL = """
import sys
import numpy as np
if sys.argv[1] == "without-c":
    sys.modules["stableloss._kernels"] = None  # its import then fails
import stableloss
for _ in range(2):
    try:
        stableloss.cross_entropy(np.zeros((2, 3)), np.array([0, 1]))
    except (ValueError, ImportError) as exc:
        print(type(exc).__name__, exc)
"""


def _call_with_environment(value, c_extension="with-c"):
    """The lines printed by :data:`_ENVIRONMENT_CALL` with ``STABLELOSS_BACKEND=value``."""
    result = subprocess.run([sys.executable, "-c", _ENVIRONMENT_CALL, c_extension], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "STABLELOSS_BACKEND": value})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_environment_names_no_backend():
    """A bad STABLELOSS_BACKEND lets the import succeed; every call with backend=None then says what is wrong
    with the variable (not with a ``backend`` argument the caller never passed)."""
    expected = ("ValueError STABLELOSS_BACKEND='gpu' (environment variable) is not a stableloss backend; "
                "expected one of 'c', 'numba', 'numpy'")
    assert _call_with_environment("gpu") == [expected, expected]


def test_environment_names_unavailable_backend():
    """STABLELOSS_BACKEND naming a backend that does not load: the error says so, and why."""
    lines = _call_with_environment("c", c_extension="without-c")
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("BackendUnavailable STABLELOSS_BACKEND='c' (environment variable): "
                               "backend 'c' is not available: the stableloss C kernels are not available")
    assert SIMULATED_REASON in lines[0]


# ---------------------------------------------------------------------------------------------------
# Valid but unusual inputs

def _calls(dtype):
    """One call per loss on typical inputs with every optional argument, as (stem, function, kwargs)."""
    return helpers.typical_calls((4, 6), dtype, options=True, seed=5)


def _flatten(result):
    if isinstance(result, tuple):
        return [a for item in result for a in _flatten(item)]
    return [np.asarray(result)]


def _same(results, expected):
    for got, want in zip(_flatten(results), _flatten(expected)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def _non_contiguous(array):
    """The same values in a strided view of a larger array (class axis not last in memory)."""
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        return array
    big = np.zeros(tuple(2 * n for n in array.shape[::-1]), array.dtype)
    view = big[tuple(slice(None, None, 2) for _ in array.shape)].T
    view[...] = array
    assert not view.flags.c_contiguous or view.size <= 1
    return view


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_non_contiguous_inputs(backend, dtype, reduction):
    for name, func, kwargs in _calls(dtype):
        expected = func(**kwargs, reduction=reduction, backend=backend, return_grad=True)
        strided = {key: _non_contiguous(value) for key, value in kwargs.items()}
        _same(func(**strided, reduction=reduction, backend=backend, return_grad=True), expected)


def test_read_only_inputs(backend, dtype):
    for name, func, kwargs in _calls(dtype):
        expected = func(**kwargs, reduction="none", backend=backend, return_grad=True)
        frozen = {}
        for key, value in kwargs.items():
            if isinstance(value, np.ndarray):
                value = value.copy()
                value.flags.writeable = False
            frozen[key] = value
        _same(func(**frozen, reduction="none", backend=backend, return_grad=True), expected)


def test_inputs_not_modified(backend, dtype):
    for name, func, kwargs in _calls(dtype):
        before = {key: value.copy() for key, value in kwargs.items() if isinstance(value, np.ndarray)}
        for reduction in ("none", "mean", "sum"):
            func(**kwargs, reduction=reduction, backend=backend, return_grad=True)
        for key, value in before.items():
            np.testing.assert_array_equal(kwargs[key], value, err_msg=f"{name}: {key} was modified")
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(dtype)
    kept = x.copy()
    for func in (logsumexp, log_softmax, softmax):
        func(x, axis=0, backend=backend)
    np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("stem", list(families.TYPICAL))
def test_empty_inputs(backend, dtype, stem):
    """Empty inputs: empty per-element results and gradients, sum 0, mean NaN (0/0, as PyTorch)."""
    kwargs = families.typical(stem, (0, 5), dtype)
    func = getattr(stableloss, KERNELS[stem].function_of(kwargs))
    loss, grad = func(**kwargs, reduction="none", backend=backend, return_grad=True)
    assert loss.dtype == dtype and loss.size == 0
    for g in _flatten(grad):
        assert g.dtype == dtype and g.size == 0
    total = func(**kwargs, reduction="sum", backend=backend)
    assert total.dtype == dtype and total == 0
    assert np.isnan(func(**kwargs, reduction="mean", backend=backend))


def test_empty_lse(backend, dtype):
    assert stableloss.logsumexp(np.zeros((0, 4), dtype), backend=backend).shape == (0,)
    assert stableloss.softmax(np.zeros((0, 4), dtype), backend=backend).shape == (0, 4)
    np.testing.assert_array_equal(stableloss.logsumexp(np.zeros((3, 0), dtype), backend=backend),
                                  np.full(3, -np.inf, dtype))
