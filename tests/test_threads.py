"""Threads: bitwise-identical results for any thread count, and concurrent callers that do not interfere.

The native backends only (the numpy reference runs on the calling thread); each test checks that its
calls were split over threads, so a comparison of a run with itself cannot pass for one."""

import concurrent.futures
import functools

import numpy as np
import pytest

import stableloss as sl
from stableloss._spec import KERNELS
from stableloss._stability import families
import helpers


def workloads(seed):
    """A call per public function on typical inputs large enough to be split over threads (> 2**17
    elements): each loss with every option, and with reduction="none"; the log-sum-exp family.  A gather
    kernel's rows count one element each without a gradient (nll_loss): its reduction="none" call gets
    as many rows as the others have elements."""
    calls = {}
    for stem, func, kwargs in helpers.typical_calls((300, 1000), np.float32, options=True, seed=seed):
        calls[stem] = functools.partial(func, **kwargs, return_grad=True)
        if KERNELS[stem].gather:
            kwargs = families.typical(stem, (300 * 1000, 4), np.float32, seed, options=True)
        calls[stem + "_none"] = functools.partial(func, **kwargs, reduction="none")
    x = np.random.default_rng(seed).standard_normal((300, 1000)).astype(np.float32) * 5
    for func in (sl.logsumexp, sl.log_softmax):
        calls[func.__name__] = functools.partial(func, x)
    return {name: (lambda b, call=call: call(backend=b)) for name, call in calls.items()}


def leaves(result):
    if isinstance(result, tuple):
        return [leaf for part in result for leaf in leaves(part)]
    return [np.asarray(result)]


def assert_bitwise(a, b):
    for u, v in zip(leaves(a), leaves(b)):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


def test_bitwise_identical_for_any_thread_count(native_backend, thread_splits):
    calls = workloads(0)
    results = {}
    for n in (1, 2, 3):
        sl.set_num_threads(n)
        for name, call in calls.items():
            result = call(native_backend)
            if name in results:
                assert_bitwise(result, results[name])
            results[name] = result
    assert thread_splits == [2] * len(calls) + [3] * len(calls)


def test_concurrent_callers_match_serial_calls(native_backend, thread_splits):
    sl.set_num_threads(2)
    seeds = range(6)
    serial = {seed: {name: call(native_backend) for name, call in workloads(seed).items()} for seed in seeds}

    def run(seed):
        return seed, {name: call(native_backend) for name, call in workloads(seed).items()}

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        for seed, results in pool.map(run, seeds):
            for name, result in results.items():
                assert_bitwise(result, serial[seed][name])
    assert thread_splits == [2] * (2 * len(seeds) * len(workloads(0)))


def test_set_num_threads_between_calls_from_other_threads(native_backend, thread_splits):
    calls = workloads(1)
    expected = {name: call(native_backend) for name, call in calls.items()}

    def run(i):
        sl.set_num_threads(1 + i % 3)
        return {name: call(native_backend) for name, call in calls.items()}

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for results in pool.map(run, range(8)):
            for name, result in results.items():
                assert_bitwise(result, expected[name])
    assert len(thread_splits) > 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be an integer >= 1"):
        sl.set_num_threads(bad)
