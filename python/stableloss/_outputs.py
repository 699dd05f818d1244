"""Allocation of the large output arrays (gradients, log-softmax and softmax rows), with reuse.

A fresh array of many megabytes costs the operating system's page faults and page zeroing on its first
write, a large share of a memory-bound call (a third of a KL forward+grad, measured).  In a training
loop the previous call's gradient is usually dropped
before the next call, so :func:`empty` keeps the last few large buffers and hands one out again when
nothing refers to it any more (no view, no exported buffer: numpy views refer to the owning array,
so its reference count says whether anything still uses it).  A buffer still in use is never
reused; the ones kept are at most :data:`KEPT` arrays, dropped oldest first.

``STABLELOSS_REUSE_OUTPUTS=0`` turns the reuse off (every output freshly allocated).
"""

import math
import os
import sys
import threading

import numpy as np

#: Outputs of at least this many bytes are kept for reuse; smaller ones cost little to allocate.
MIN_BYTES = 8 * 2**20
#: How many large buffers are kept at most.
KEPT = 2

_REUSE = os.environ.get("STABLELOSS_REUSE_OUTPUTS", "1") != "0"
_kept = []  # buffers, most recently handed out last
_lock = threading.Lock()


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, reusing a kept buffer if free."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    if not _REUSE or count * dtype.itemsize < MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:  # the check and the hand-out together: two threads never get the same buffer
        for i in range(len(_kept)):
            # references to a free buffer: the list's and getrefcount's argument, nothing else
            if _kept[i].dtype == dtype and _kept[i].size == count and sys.getrefcount(_kept[i]) == 2:
                _kept.append(_kept.pop(i))
                return _kept[-1].reshape(shape)
        buffer = np.empty(count, dtype)
        _kept.append(buffer)
        del _kept[:-KEPT]
        return buffer.reshape(shape)
