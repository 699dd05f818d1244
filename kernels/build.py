"""cffi build script of the C kernels: the extension ``stableloss._kernels``.

setup.py names it in ``cffi_modules``.  The cdef is kernels/stableloss.h itself with its
preprocessor lines dropped (one copy of the declarations).  Flags keep IEEE semantics (no
-ffast-math, no -march): the AVX2+FMA kernels are compiled per function and chosen at run time.
STABLELOSS_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer instead;
STABLELOSS_AVX512_BITS=256 gives the AVX-512 kernels 4-lane vectors instead of 8 (kernels/sl_vec.h: the
measurement that chose 8, docs/design.md).  The C files compile at once, one per core.
"""
import concurrent.futures
import glob
import os

import cffi
import setuptools  # noqa: F401  (first: its distutils is the one cffi and the build backend use)
from distutils.ccompiler import CCompiler

_HERE = os.path.dirname(os.path.abspath(__file__))


def _relative(path):
    """setuptools wants source paths relative to the project root (the current directory of the
    build); fall back to absolute paths when the build runs elsewhere."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _flags():
    common = ["-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    bits = os.environ.get("STABLELOSS_AVX512_BITS")
    if bits:
        if bits not in ("256", "512"):
            raise ValueError(f"STABLELOSS_AVX512_BITS={bits!r}: expected 256 or 512")
        common.append(f"-DSL_AVX512_BITS={bits}")
    if os.environ.get("STABLELOSS_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined"]
        return (common + ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
                + sanitize, sanitize)
    return common + ["-O3"], []


def _compile_at_once(self, sources, output_dir=None, macros=None, include_dirs=None, debug=False, extra_preargs=None,
                     extra_postargs=None, depends=None):
    """``CCompiler.compile`` with the files compiled at once, one per core (distutils compiles an
    extension's files one after the other; the sanitized build spends minutes in each): the same
    commands and objects."""
    macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
        output_dir, macros, include_dirs, sources, depends, extra_postargs)
    cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        compiling = [pool.submit(self._compile, obj, *build[obj], cc_args, extra_postargs, pp_opts)
                     for obj in objects if obj in build]
        for job in compiling:
            job.result()  # a CompileError raises here
    return objects


CCompiler.compile = _compile_at_once

with open(os.path.join(_HERE, "stableloss.h")) as header:
    _CDEF = "".join(line for line in header if not line.lstrip().startswith("#"))

_COMPILE_ARGS, _LINK_ARGS = _flags()

ffibuilder = cffi.FFI()
ffibuilder.cdef(_CDEF)
ffibuilder.set_source(
    "stableloss._kernels",
    '#include "stableloss.h"',
    sources=[_relative(p) for p in sorted(glob.glob(os.path.join(_HERE, "*.c")))],
    depends=[_relative(p) for p in sorted(glob.glob(os.path.join(_HERE, "*.h")))],  # rebuilds, sdists
    include_dirs=[_relative(_HERE)],
    libraries=["m"],
    extra_compile_args=_COMPILE_ARGS,
    extra_link_args=_LINK_ARGS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
