"""Shared fixtures: the backend and dtype parametrisation, hypothesis settings, and the ulp summary.

- ``backend``: every name of :func:`stableloss.available_backends` (or the comma-separated list in the
  environment variable ``STABLELOSS_TEST_BACKENDS``, to test one backend at a time), plus the C
  kernels' SIMD levels below the best the CPU supports: ``c-avx2`` (on AVX-512 CPUs) and
  ``c-scalar``, the portable scalar path;
  ``native_backend``: the same without the numpy reference.
- ``dtype``: float32 and float64.
- Hypothesis runs ``STABLELOSS_HYPOTHESIS_EXAMPLES`` examples per property (default 50), without a
  deadline and without an example database (nothing is written to the working tree).
- When the session runs tests/test_numba.py and the Numba backend is tested, every Numba kernel is
  compiled once before the tests, on every core (tests/numba_warmup.py): the test processes, pytest-xdist
  workers included, load them from that session's cache.
- After the run, the worst ulp error measured for each backend, loss, dtype and output is printed
  (see :mod:`ulp`); it is the accuracy report of the suite, pass or fail.
"""

import contextlib
import functools
import json
import os
import pathlib
import shutil
import sys
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import settings

# The helper modules (budgets, helpers) sit next to this file; with
# --import-mode=importlib the test directory is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numba_warmup  # noqa: E402
import stableloss  # noqa: E402
from stableloss._spec import KERNELS  # noqa: E402
from stableloss._stability import ulp  # noqa: E402


def _backends():
    chosen = os.environ.get("STABLELOSS_TEST_BACKENDS")
    available = stableloss.available_backends()
    if not chosen:
        return available
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    missing = [name for name in names if name not in available]
    if missing:
        raise pytest.UsageError(f"STABLELOSS_TEST_BACKENDS names unavailable backends {missing}; "
                                f"available: {available}")
    return names


#: The C kernels' lower SIMD levels as parametrisations of their own: backend "c" runs the best level
#: the CPU supports (kernels/simd.c); "c-avx2" and "c-scalar" are backend "c" with the level forced
#: down for the tests of that parameter.  The same families and budgets hold at every level.
C_LEVEL_PREFIX = "c-"


def _with_c_levels(names):
    if "c" not in names:
        return names
    from stableloss import _c
    best = _c.SIMD_LEVELS.index(_c.best_simd_level())
    lower = [C_LEVEL_PREFIX + level for level in reversed(_c.SIMD_LEVELS[:best])]
    at = names.index("c") + 1
    return names[:at] + lower + names[at:]


BACKENDS = _with_c_levels(_backends())
DTYPES = (np.float32, np.float64)

# Hypothesis imports its patch writer (and through it libcst) while reporting a failing example, inside
# the test's warning filters; some libcst/mypy_extensions versions warn on import, which
# filterwarnings=error turns into an internal error that hides the failure.  Import it once here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

settings.register_profile("stableloss", max_examples=int(os.environ.get("STABLELOSS_HYPOTHESIS_EXAMPLES", "50")),
                          deadline=None, database=None, print_blob=True)
settings.load_profile("stableloss")


@contextlib.contextmanager
def _selected(param):
    """The backend name a parameter stands for, with the C SIMD level it needs while in use."""
    if not param.startswith(C_LEVEL_PREFIX):
        yield param
        return
    from stableloss import _c
    _c.set_simd_level(param[len(C_LEVEL_PREFIX):])
    try:
        yield "c"
    finally:
        _c.set_simd_level(None)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    """Every loadable backend (and the C scalar path)."""
    with _selected(request.param) as name:
        yield name


@pytest.fixture(scope="session", params=[name for name in BACKENDS if name != "numpy"])
def native_backend(request):
    """Every loadable backend but the numpy reference (for tests that compare against it)."""
    with _selected(request.param) as name:
        yield name


@pytest.fixture
def restore_threads():
    """The thread count as it was before the test."""
    threads = stableloss.get_num_threads()
    yield
    stableloss.set_num_threads(threads)


@pytest.fixture
def thread_splits(monkeypatch, restore_threads):
    """The thread count of every call the dispatcher splits over threads during the test, in order: a
    thread test asserts its calls were split, so that it cannot pass by comparing a run with itself."""
    from stableloss import _dispatch
    splits = []
    run_threads = _dispatch._run_threads

    def counted(kernel, stem, args, n_rows, rows_per_block, n_threads):
        splits.append(n_threads)
        run_threads(kernel, stem, args, n_rows, rows_per_block, n_threads)

    monkeypatch.setattr(_dispatch, "_run_threads", counted)
    return splits


@pytest.fixture(scope="session", params=DTYPES, ids=lambda dtype: np.dtype(dtype).name)
def dtype(request):
    """float32 and float64."""
    return np.dtype(request.param)


def _runs(config, test_file):
    """Whether the session's paths include ``test_file`` of this directory (itself or a directory above it)."""
    wanted = pathlib.Path(__file__).resolve().parent / test_file
    return any(wanted.is_relative_to(pathlib.Path(config.invocation_params.dir, arg.split("::")[0]).resolve())
               for arg in config.args)


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered, which names the wait
def pytest_configure(config):
    """On the controller (or a serial run): the Numba kernels compiled once for the session, see the module
    docstring.  The cache directory and the LLVM IR facts reach the test processes through the environment
    (pytest-xdist starts its workers after this hook)."""
    if (hasattr(config, "workerinput") or config.option.collectonly or "numba" not in BACKENDS
            or not _runs(config, "test_numba.py")):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    pairs = [f"{stem} {dtype}" for stem in KERNELS for dtype in ("float32", "float64")]
    processes = min(os.cpu_count() or 1, len(pairs))
    if reporter:
        reporter.write_line(f"compiling the {len(pairs)} Numba kernels for this session on {processes} processes")
    cache = tempfile.mkdtemp(prefix="stableloss-numba-")
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    facts = os.path.join(cache, "facts.json")
    with open(facts, "w") as f:
        json.dump(numba_warmup.inspect(pairs, cache, processes, pathlib.Path(stableloss.__file__).parent.parent), f)
    for name, value in (("NUMBA_CACHE_DIR", cache), (numba_warmup.FACTS, facts)):
        config.add_cleanup(functools.partial(_restore_environment, name, os.environ.get(name)))
        os.environ[name] = value


def _restore_environment(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand the worst errors it measured to the controller (below)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["ulp_worst"] = [
            (list(key), unit, float(error), family, float(budget))
            for (key, unit), (error, family, budget) in ulp.WORST.items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the pytest-xdist controller: merge a finished worker's worst errors into the summary."""
    for key, unit, worst, family, budget in getattr(node, "workeroutput", {}).get("ulp_worst", ()):
        ulp.record(tuple(key), worst, unit, family, budget)


def pytest_terminal_summary(terminalreporter):
    table = ulp.summary_table()
    if table:
        terminalreporter.write_sep("=", "worst error against the mpmath oracle (ulp of the output dtype)")
        terminalreporter.write_line(table)
