"""Packaging: the metadata in pyproject.toml, and the package built where the C kernels cannot compile.

The wheel tests (marked ``slow``, about 10 s in all; CI runs them) copy the source tree, build a wheel
with ``CC=/bin/false`` and without build isolation (the installed setuptools and cffi, nothing
downloaded: the test extra brings setuptools>=77), install it into a directory put first on the path
of a new Python process (this environment's numpy and numba behind it), and check there that the
package works without the backend "c" and says why (setup.py, python/stableloss/_c.py,
python/stableloss/_dispatch.py).
"""

import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: The first setuptools to read ``license`` as an SPDX expression and ``license-files`` (PEP 639).
SETUPTOOLS_FOR_SPDX = Version("77")


def _project_config():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_build_requires_setuptools_that_reads_the_license():
    """``license = "MIT"`` is an SPDX expression: setuptools < 77 fails the build on it ("project.license
    must be valid exactly by one definition"), so the build requirement must exclude those."""
    config = _project_config()
    assert isinstance(config["project"]["license"], str)
    (setuptools,) = [req for req in map(Requirement, config["build-system"]["requires"]) if req.name == "setuptools"]
    floors = [Version(spec.version) for spec in setuptools.specifier if spec.operator in (">=", ">", "~=", "==")]
    assert floors and max(floors) >= SETUPTOOLS_FOR_SPDX, f"build-system requires {setuptools}"


def test_license_file_is_listed():
    project = _project_config()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 The stableloss developers" in text
    # newer setuptools reject a "License ::" classifier beside an SPDX expression
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_descriptive_metadata():
    project = _project_config()["project"]
    assert project["authors"] == [{"name": "The stableloss developers"}]
    assert {"loss functions", "cross-entropy", "numerical stability"} <= set(project["keywords"])
    classifiers = set(project["classifiers"])
    assert {"Development Status :: 3 - Alpha", "Programming Language :: C",
            "Topic :: Scientific/Engineering :: Mathematics"} <= classifiers
    python_versions = [Version(c.rsplit(" :: ", 1)[1]) for c in classifiers
                       if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert min(python_versions) == Version(project["requires-python"].removeprefix(">="))


# ---------------------------------------------------------------------------------------------------
# A wheel built without a working C compiler

#: What building a wheel reads from the source tree, and what it must not (earlier builds' output).
_SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "kernels", "python", "docs")
_NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "_kernels.c")
_PIP = ("-m", "pip", "--disable-pip-version-check")

#: Run with the installed wheel first on the path: what the package does without the C kernels, as JSON.
_WITHOUT_C = """
import json, warnings
import numpy as np
import stableloss
from stableloss._dispatch import BackendUnavailable, CExtensionWarning
x, y = np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 1, 2, 0])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    default = [float(stableloss.cross_entropy(x, y)) for _ in range(2)]
fallback = stableloss.available_backends()[0]
try:
    stableloss.cross_entropy(x, y, backend="c")
    explicit = None
except BackendUnavailable as exc:
    explicit = str(exc)
print(json.dumps(dict(
    file=stableloss.__file__, backends=stableloss.available_backends(), explicit=explicit,
    same_as_fallback=default == [float(stableloss.cross_entropy(x, y, backend=fallback))] * 2,
    warnings=[(w.category is CExtensionWarning, str(w.message)) for w in caught])))
"""


def _run(command, **kwargs):
    """The finished process of ``command``, which must succeed."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def built_without_compiler(tmp_path_factory):
    """(wheel path, pip's build log) of a wheel built from a copy of the source tree with CC=/bin/false."""
    setuptools = Version(importlib.metadata.version("setuptools"))
    assert setuptools >= SETUPTOOLS_FOR_SPDX, f"setuptools {setuptools} installed: install the test extra"
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    source.mkdir()
    for name in _SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=_NOT_SOURCES)
        else:
            shutil.copy2(ROOT / name, source / name)
    build = _run([sys.executable, *_PIP, "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", work / "dist", source], env={**os.environ, "CC": "/bin/false"})
    (wheel,) = (work / "dist").glob("stableloss-*.whl")
    return wheel, build.stdout + build.stderr


@pytest.mark.slow
def test_wheel_builds_without_compiler(built_without_compiler):
    """The build warns, leaves out the C extension, ships the compiler's error and the license."""
    wheel, log = built_without_compiler
    assert "the C kernels did not compile" in log
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (dist_info,) = {name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA")}
        failure = archive.read("stableloss/_build_failure.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert not [name for name in names if name.startswith("stableloss/_kernels")]
    assert failure.startswith("CompileError: ") and "/bin/false" in failure
    assert f"{dist_info}/licenses/LICENSE" in names
    assert {"License-Expression: MIT", "License-File: LICENSE"} <= set(metadata.splitlines())


@pytest.mark.slow
def test_installed_wheel_runs_without_c(built_without_compiler, tmp_path):
    """Installed: no backend "c"; backend=None falls back with one warning naming the compile failure, and
    backend="c" raises with it."""
    wheel, _ = built_without_compiler
    target = tmp_path / "site-packages"  # first on the path, before this environment's stableloss
    _run([sys.executable, *_PIP, "install", "-q", "--no-deps", "--no-index", "--target", target, wheel])
    environment = {**{key: value for key, value in os.environ.items() if key != "STABLELOSS_BACKEND"},
                   "PYTHONPATH": str(target)}
    report = json.loads(_run([sys.executable, "-c", _WITHOUT_C], cwd=tmp_path, env=environment).stdout)
    assert report["file"] == str(target / "stableloss" / "__init__.py")
    assert "c" not in report["backends"] and report["backends"][-1] == "numpy"
    assert report["same_as_fallback"]
    ((is_c_extension_warning, message),) = report["warnings"]
    assert is_c_extension_warning
    assert message.startswith(f"backend=None uses {report['backends'][0]!r}, not 'c'") and "/bin/false" in message
    assert report["explicit"].startswith("backend 'c' is not available") and "/bin/false" in report["explicit"]
