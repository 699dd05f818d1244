"""pytest-benchmark configuration of the stableloss suite: its options, the threads, the recorded versions.

The suite lives outside ``testpaths``, so ``pytest`` alone does not run it; see README.md.
"""

import pytest

import stableloss._workloads as wl


def pytest_addoption(parser):
    group = parser.getgroup("stableloss benchmarks")
    group.addoption("--bench-sizes", choices=("default", "design"), default="default",
                    help="default: small sizes, the whole suite in a few minutes; design: the sizes of the "
                         "docs/design.md performance workloads (slow: the numpy reference takes seconds per call)")
    group.addoption("--bench-threads", type=int, default=1, metavar="N",
                    help="threads for stableloss and torch (default 1: the single-thread comparison)")
    group.addoption("--bench-time", type=float, default=0.2, metavar="SECONDS",
                    help="seconds of timed calls per benchmark, in at least --benchmark-min-rounds rounds "
                         "(default 0.2)")


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    wl.set_threads(config.getoption("bench_threads"))
    # every run is saved, as .benchmarks/<machine>/NNNN_run.json unless --benchmark-save names it
    if hasattr(config.option, "benchmark_save") and not (config.option.benchmark_save or
                                                          config.option.benchmark_autosave):
        config.option.benchmark_save = "run"


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-benchmark: without it, the suite is skipped
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["stableloss"] = wl.environment()
