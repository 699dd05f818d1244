"""The kernel declarations (stableloss._spec, one per loss beside its public function) are the C header's
prototypes, argument for argument, and the Numba and numpy backends take the same names: one name for
each argument across the layers."""

import importlib
import inspect
import pathlib
import re

import pytest

import stableloss  # noqa: F401  (declares the kernels)
from stableloss import _constants, _reference
from stableloss._spec import FLOAT, IN, INDEX, INT, KERNELS, OUT, SHARED, SUMS

HEADER = pathlib.Path(__file__).resolve().parents[1] / "kernels" / "stableloss.h"
PROTOTYPE = re.compile(r"void sl_(\w+)_(f32|f64)\(([^)]*)\);")
#: The C type of each kind, for the float type of the prototype.
C_TYPES = {IN: "const {f} *", SHARED: "const {f} *", INDEX: "const int64_t *", OUT: "{f} *", SUMS: "double *",
           INT: "int64_t ", FLOAT: "double "}


def _prototypes():
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found = {}
    for stem, suffix, params in PROTOTYPE.findall(text):
        found[stem, suffix] = [re.match(r"(.*?)(\w+)$", " ".join(p.split())).groups() for p in params.split(",")]
    return found


def test_every_prototype_is_declared():
    assert {stem for stem, _ in _prototypes()} == set(KERNELS)


@pytest.mark.parametrize("stem", list(KERNELS))
@pytest.mark.parametrize("suffix, float_type", [("f32", "float"), ("f64", "double")])
def test_header_matches_the_declaration(stem, suffix, float_type):
    params = _prototypes()[stem, suffix]
    kernel = KERNELS[stem]
    assert [name for _, name in params] == list(kernel.names)
    for (c_type, name), (_, kind) in zip(params, kernel.args):
        assert c_type == C_TYPES[kind].format(f=float_type), f"sl_{stem}_{suffix}: {name} is {c_type!r}"


@pytest.mark.parametrize("stem", list(KERNELS))
def test_backends_take_the_declared_names(stem):
    names = list(KERNELS[stem].names)
    numba_kernel = importlib.import_module(f"stableloss._numba.{stem}").kernel.py_func
    assert list(inspect.signature(numba_kernel).parameters) == names
    assert list(inspect.signature(getattr(_reference, stem)).parameters) == names


def _c_number(text):
    text = text.rstrip("fF")
    return float.fromhex(text) if "0x" in text.lower() else float(text)


@pytest.mark.parametrize("stem", [stem for stem, kernel in KERNELS.items() if kernel.constants])
def test_c_kernel_defines_the_contract(stem):
    """Every constant of the declaration's contract is #defined as <STEM>_<NAME> in kernels/<stem>.c with
    the same value, and the Numba and numpy backends read it from the declaration."""
    defines = dict(re.findall(r"^#define (\w+) (\S+)$", (HEADER.parent / f"{stem}.c").read_text(), flags=re.M))
    for name, value in KERNELS[stem].constants:
        macro = f"{stem.upper()}_{name}"
        assert macro in defines, f"kernels/{stem}.c defines no {macro}"
        assert _c_number(defines[macro]) == value, f"{macro} is {defines[macro]}, the declaration says {value!r}"


def test_c_primitives_use_the_table():
    """kernels/sl_math.h spells the table of stableloss/_constants.py: SL_<NAME> for each scalar and
    sl_<name>[] for each polynomial, the same values (which the Numba primitives take from the table)."""
    text = (HEADER.parent / "sl_math.h").read_text()
    defines = dict(re.findall(r"^#define (SL_\w+) (\S+)", text, flags=re.M))
    arrays = {name: [_c_number(v.strip()) for v in body.split(",")]
              for name, body in re.findall(r"static const (?:double|float) (sl_\w+)\[\d+\] = \{([^}]*)\};", text)}
    table = {name: value for name, value in vars(_constants).items() if name.isupper() and name != "F"}
    for name, value in table.items():
        if isinstance(value, tuple):
            assert arrays.get(f"sl_{name.lower()}") == list(value), f"sl_{name.lower()} differs from {name}"
        else:
            assert _c_number(defines[f"SL_{name}"]) == value, f"SL_{name} is {defines.get(f'SL_{name}')}"
