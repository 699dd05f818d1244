"""Build wiring only: the cffi extension and the source layout.  Metadata is in pyproject.toml."""
from setuptools import setup

setup(package_dir={"": "python"}, cffi_modules=["kernels/build.py:ffibuilder"])
