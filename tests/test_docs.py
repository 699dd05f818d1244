"""Documentation: every public name has a numpydoc docstring with the required sections, and the
docstring examples run.

The examples are run by pytest's own doctest runner in a subprocess, so that they see the project's
doctest option flags (pyproject.toml: NORMALIZE_WHITESPACE, NUMBER), exactly as
``pytest --doctest-modules`` on the package would.
"""

import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

import stableloss

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTIONS = ("Parameters", "Returns", "Notes", "Examples")


def _torch_functions():
    """The functions of stableloss.torch, where torch is installed."""
    try:
        import stableloss.torch as adapter
    except ImportError:
        return []
    return [getattr(adapter, name) for name in adapter.__all__ if inspect.isfunction(getattr(adapter, name))]


PUBLIC_FUNCTIONS = [getattr(stableloss, name) for name in stableloss.__all__] + _torch_functions()


def _sections(doc):
    """Names of the numpydoc sections of a docstring (a title line underlined with dashes)."""
    lines = inspect.cleandoc(doc).splitlines()
    return {lines[i].strip() for i in range(len(lines) - 1)
            if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip())
            and len(lines[i + 1].strip()) == len(lines[i].strip())}


def _required(func):
    """Every section; 'Parameters' only for functions that take parameters and 'Returns' only for
    functions that return something (numpydoc leaves them out otherwise)."""
    required = set(SECTIONS)
    if not inspect.signature(func).parameters:
        required.discard("Parameters")
    if func is stableloss.set_num_threads:
        required.discard("Returns")
    return required


@pytest.mark.parametrize("func", PUBLIC_FUNCTIONS, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_numpydoc_sections(func):
    name = func.__name__
    doc = inspect.getdoc(func)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.strip() and summary.rstrip().endswith("."), f"{name}: the summary line must be a sentence"
    missing = _required(func) - _sections(doc)
    assert not missing, f"{name}: docstring lacks the sections {sorted(missing)}"


@pytest.mark.parametrize("func", PUBLIC_FUNCTIONS, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_documents_every_parameter(func):
    name = func.__name__
    doc = inspect.getdoc(func) or ""
    documented = set(re.findall(r"^(\w+)\s*:", doc, flags=re.MULTILINE))
    missing = [p for p in inspect.signature(func).parameters if p not in documented]
    assert not missing, f"{name}: parameters {missing} are not documented"


def _public_modules():
    return sorted({inspect.getmodule(func).__file__ for func in PUBLIC_FUNCTIONS})


def test_docstring_examples_run(backend):
    """The doctests of the modules defining the public functions (stableloss._api, stableloss._dispatch,
    and stableloss.torch._functional where torch is installed), with each backend as the default
    (STABLELOSS_BACKEND).  pytest-benchmark, if installed, is off: under an xdist worker it would refuse
    to start."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
         "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "--doctest-modules", *_public_modules()],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "STABLELOSS_BACKEND": backend})
    assert result.returncode == 0, f"doctests failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


# ---------------------------------------------------------------------------------------------------
# The repository explains itself

#: Files and folders a build or a test run leaves behind (.gitignore), which no layout lists.
_ARTIFACTS = re.compile(r"(^|/)(__pycache__|build|\.pytest_cache|\.hypothesis|\.benchmarks|[^/]*\.egg-info)(/|$)"
                        r"|\.(so|o|pyc)$|^python/stableloss/_kernels\.c$")
#: Where the layout is listed file by file; elsewhere by folder.
_LISTED_FILE_BY_FILE = ("", "kernels/", "python/stableloss/")


def _repository_files():
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not relative.startswith(".git/") and not _ARTIFACTS.search(relative):
            files.append(relative)
    return files


def test_no_citation_of_documents_outside_the_repository():
    """The design documents live in docs/; nothing cites the notes the project was started from."""
    outside = re.compile(r"DESIGN\.md|numerics\.md|peers\.md|style\.md|\.\./shared")
    cited = [f"{name}:{number}" for name in _repository_files() if not name.endswith((".png", ".so"))
             for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
             if outside.search(line) and name != "tests/test_docs.py"]
    assert not cited, f"citations of documents that are not in the repository: {cited}"
    assert (ROOT / "docs" / "design.md").is_file()


def test_readme_layout_lists_every_file():
    """Every file at the top level, in kernels/ and in python/stableloss/ is named in the README's
    layout, and every other folder is."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    missing = set()
    for name in _repository_files():
        folder, _, base = name.rpartition("/")
        folder = folder + "/" if folder else ""
        if folder in _LISTED_FILE_BY_FILE:
            if not re.search(rf"(^|[\s(]){re.escape(base)}([\s,)]|$)", layout, flags=re.MULTILINE):
                missing.add(name)
        elif folder.split("/")[-2] + "/" not in layout:
            missing.add(folder)
    assert not missing, f"the README's layout does not mention {sorted(missing)}"


def test_bad_inputs_doc_states_the_exception_types_used():
    """docs/bad_inputs.md says which types are PyTorch's and which are not (test_torch_semantics checks
    the cases where PyTorch raises RuntimeError)."""
    text = (ROOT / "docs" / "bad_inputs.md").read_text()
    assert "PyTorch's where it has them" not in text
    assert "RuntimeError" in text and "stableloss keeps the Pythonic type" in text
