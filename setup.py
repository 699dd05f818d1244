"""Build wiring only: the cffi extension and the source layout.  Metadata is in pyproject.toml.

The C kernels are optional: where they do not compile (no C compiler, or a failing one) the package
still builds and installs, with the Numba and numpy backends, a build warning, and the compiler's
error in ``stableloss/_build_failure.txt`` beside where the extension would be; python/stableloss/_c.py
reports it as the reason the backend "c" is unavailable.
"""
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: The extension that may fail to build (kernels/build.py).
KERNELS = "stableloss._kernels"
#: A missing or failing compiler (CompileError and LinkError are CCompilerErrors).
COMPILER_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class BuildExtKernelsOptional(build_ext):
    """``build_ext`` that turns a failed compile of :data:`KERNELS` into a warning and a record of why."""

    def build_extension(self, ext):
        if ext.name != KERNELS:
            return super().build_extension(ext)
        record = os.path.join(os.path.dirname(self.get_ext_fullpath(ext.name)), "_build_failure.txt")
        try:
            super().build_extension(ext)
        except COMPILER_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.warn(f"the C kernels did not compile ({reason}); building stableloss without the backend 'c'")
            ext.optional = True  # so an in-place (editable) build skips copying the missing library
            self.mkpath(os.path.dirname(record))
            with open(record, "w") as file:
                file.write(reason + "\n")
        else:
            if os.path.exists(record):  # from an earlier failed build in the same build directory
                os.remove(record)


setup(
    package_dir={"": "python"},
    cffi_modules=["kernels/build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtKernelsOptional},
)
