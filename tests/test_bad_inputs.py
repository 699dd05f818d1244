"""Every row of docs/bad_inputs.md, on every backend: the listed exception type and message."""

import builtins
import pathlib
import re

import numpy as np
import pytest

import stableloss as sl

TABLE = pathlib.Path(__file__).parent.parent / "docs" / "bad_inputs.md"
ROW = re.compile(r"^\| `(?P<call>[^`]+)` \| (?P<exc>\w+) \| `(?P<pattern>.+)` \|$")


def rows():
    found = [ROW.match(line) for line in TABLE.read_text().splitlines()]
    return [(m["call"], m["exc"], m["pattern"]) for m in found if m]


def namespace(backend):
    rng = np.random.default_rng(0)
    names = {"np": np, "x": rng.standard_normal((3, 5)).astype(np.float32), "y": np.array([0, 1, 2]),
             "t": rng.random((3, 5)).astype(np.float32), "v": (rng.random((3, 5)) + 0.5).astype(np.float32)}
    for name in sl.__all__:
        func = getattr(sl, name)
        takes_backend = name not in ("available_backends", "set_num_threads", "get_num_threads")
        names[name] = (lambda f: lambda *a, **k: f(*a, **{"backend": backend, **k}))(func) if takes_backend else func
    return names


def test_table_is_complete():
    calls = " ".join(call for call, _, _ in rows())
    assert len(rows()) >= 40
    for name in ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits", "gaussian_nll_loss", "kl_div",
                 "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "poisson_nll_loss", "logsumexp",
                 "log_softmax", "softmax"):
        assert name + "(" in calls


@pytest.mark.parametrize("backend", sl.available_backends())
@pytest.mark.parametrize("call, exc, pattern", rows(), ids=[r[0] for r in rows()])
def test_bad_input(backend, call, exc, pattern):
    with pytest.raises(getattr(builtins, exc), match=pattern):
        eval(call, namespace(backend))
