"""Every Numba kernel compiled once per test session, in parallel, before any test needs one.

Without this, each pytest-xdist worker compiles every kernel it calls (the same work once per worker),
and tests/test_numba.py compiles all of them once more in a fresh interpreter for their LLVM IR (code
loaded from the cache has none).  Here the (kernel, dtype) pairs are split over one fresh interpreter
per core, each compiling its share into an empty session cache (``NUMBA_CACHE_DIR``) and reporting the
LLVM IR facts test_numba.py checks; the test processes then load every kernel from that cache.
"""

import json
import os
import subprocess
import sys
import textwrap

#: A fresh interpreter's script: compile the given "stem dtype" pairs, print their LLVM IR facts as JSON.
INSPECT = textwrap.dedent(r"""
    import importlib, json, re, sys
    import numpy as np
    from stableloss import _numba
    from stableloss._spec import KERNELS

    flag_words = r"(?:fast|nnan|ninf|nsz|arcp|contract|afn|reassoc)"
    flagged = re.compile(r"= (?:fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call|select|phi)((?: " + flag_words + r")+) ")
    report = {}
    for pair in sys.argv[1:]:
        stem, dtype = pair.split()
        module = importlib.import_module("stableloss._numba." + stem)
        _numba.kernel(KERNELS[stem], np.dtype(dtype))
        signature = next(s for s in module.kernel.signatures if str(s[0].dtype) == dtype)
        llvm = module.kernel.inspect_llvm(signature)
        widths = [int(w) for w in re.findall(module.HOT_LOOP, llvm)]
        lane_widths = [int(w) for w in re.findall(getattr(module, "FLOAT32_LANES", "(?!)"), llvm)]
        flags = sorted({word for match in flagged.findall(llvm) for word in match.split()})
        report[pair] = {"widths": widths, "lane_widths": lane_widths, "flags": flags}
    print(json.dumps(report))
""")

#: The environment variable naming the JSON file of the session's LLVM IR facts.
FACTS = "STABLELOSS_TEST_NUMBA_FACTS"


def environment(cache_dir, package_parent=None):
    """os.environ with ``NUMBA_CACHE_DIR`` (and the package under test first on the path)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    if package_parent is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package_parent), env.get("PYTHONPATH", "")])
    return env


def inspect(pairs, cache_dir, processes, package_parent=None, timeout=1800):
    """Compile ``pairs`` ("stem dtype") into ``cache_dir`` on ``processes`` fresh interpreters at once:
    {pair: {"widths", "lane_widths", "flags"}}."""
    shares = [pairs[i::processes] for i in range(processes) if pairs[i::processes]]
    env = environment(cache_dir, package_parent)
    running = [subprocess.Popen([sys.executable, "-c", INSPECT, *share], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for share in shares]
    facts = {}
    for process in running:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"compiling the Numba kernels failed:\n{err[-4000:]}")
        facts.update(json.loads(out.strip().splitlines()[-1]))
    return facts
