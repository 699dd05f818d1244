"""Fused linear cross-entropy: the loss of ``input @ linear_weight.T + linear_bias`` a chunk of rows at a
time, so that the ``(N, V)`` logits and their gradient never exist whole.

Per chunk of the rows that count (ignored targets are dropped before any product): the logits by one
BLAS product into a reused buffer, the cross-entropy kernel of the chosen backend on them (loss and
gradient in one call, float64 accumulation), then the input's gradient by a second product and the
weight's by a third, accumulated in place (below).  The chunk's height follows :data:`BUDGET`.

The weight's gradient ``G^T X`` is a sum over all rows.  numpy's ``matmul`` cannot accumulate into its
output (BLAS ``beta = 1``), so each chunk's share is formed a slab of about 1 MiB at a time
(:data:`SLAB_BYTES`: a slab of classes, all of ``D``) and added to the gradient while it is in cache:
like ``beta = 1``, one read and one write of the gradient per chunk, and no temporary the size of
the gradient.  The first chunk writes it directly.

The price of the fixed budget: the rows per chunk fall as V grows (59 at V = 2^17), and with them the
products' efficiency and the number of passes over the weight's gradient; bench/README.md has the
figures.  A kernel that wrote the logits' gradient over the logits would double the rows in the same
memory.
"""

import functools
import math

import numpy as np

from . import _dispatch, _outputs

#: Bytes of the per-chunk buffers (logits, their gradient, the chunk's rows) a call aims at: each chunk
#: reads and writes the weight's gradient once, so taller chunks pay less for it (N = 2048, D = 1024,
#: V = 32768 float32, one thread: 1.29x the three products at 126 rows a chunk, 1.13x at 256, 1.11x
#: at 512); 60 MiB keeps a call's extra memory under 64 MiB.
BUDGET = 60 * 2**20
#: Bytes of one slab of the weight gradient's per-chunk share.
SLAB_BYTES = 2**20


def chunk_rows(n_classes, n_features, itemsize, chunk_size=None):
    """Rows per chunk: ``chunk_size`` if given, else as many as :data:`BUDGET` holds (logits and their
    gradient, the gathered rows and their gradient), at least 1."""
    if chunk_size is not None:
        return chunk_size
    return max(1, BUDGET // (itemsize * 2 * (n_classes + n_features)))


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded (inspected once, on the first call: importing
    threadpoolctl with stableloss would cost every import)."""
    import threadpoolctl

    return threadpoolctl.ThreadpoolController()


def blas_threads(n_threads):
    """A context in which BLAS uses at most ``n_threads`` threads, as the kernels do."""
    return _blas_controller().limit(limits=n_threads, user_api="blas")


def run(backend, kernel, rows, linear_weight, linear_bias, indices, probabilities, counted_rows, kernel_args,
        grad_scale, n_chunk, want_loss_rows, want_grad, lse_rows=None):
    """The chunked pass over ``rows`` (N, D), returning ``(total, loss_rows, grads)``.

    ``counted_rows``: the rows whose target counts, ascending (None: all of them); ``indices`` and
    ``probabilities``: the targets of all rows, one of them None; ``kernel_args``: the cross-entropy
    kernel's parameters (class weights, n_classes, ignore_index, label smoothing, z-loss, softcap).
    ``total`` is the float64 sum of the counted rows' losses; ``loss_rows`` the per-row losses (0 for
    ignored rows) if ``want_loss_rows``; ``grads`` is ``(grad_input, grad_weight, grad_bias)`` of the loss
    whose gradient the kernel scales by ``grad_scale`` (``grad_bias`` None without a bias), if
    ``want_grad``.  ``lse_rows`` (N,), if given (then ``counted_rows`` is None), gets each row's
    log-sum-exp.
    """
    n_rows, n_features = rows.shape
    n_classes, dtype = linear_weight.shape[0], rows.dtype
    n_counted = n_rows if counted_rows is None else len(counted_rows)
    n_chunk = min(n_chunk, max(n_counted, 1))
    logits = np.empty((n_chunk, n_classes), dtype)
    grad_logits = np.empty((n_chunk, n_classes), dtype) if want_grad else None
    loss_rows = np.zeros(n_rows, dtype) if want_loss_rows else None
    grad_input = grad_weight = None
    if want_grad:  # reused buffers (_outputs), or zeros where some rows are never written
        grad_input = (_outputs.empty if n_counted == n_rows else np.zeros)((n_rows, n_features), dtype)
        grad_weight = (_outputs.empty if n_counted else np.zeros)((n_classes, n_features), dtype)
    bias_sum = np.zeros(n_classes) if want_grad and linear_bias is not None else None  # float64
    slab = max(1, SLAB_BYTES // (n_features * dtype.itemsize))
    share = np.empty((min(slab, n_classes), n_features), dtype) if want_grad else None
    totals = []
    with blas_threads(_dispatch.get_num_threads()):
        for start in range(0, n_counted, n_chunk):
            stop = min(start + n_chunk, n_counted)
            n = stop - start
            which = slice(start, stop) if counted_rows is None else counted_rows[start:stop]
            x = rows[which]  # a view, or the gathered counted rows
            z = logits[:n]
            np.matmul(x, linear_weight.T, out=z)
            if linear_bias is not None:
                z += linear_bias
            g = grad_logits[:n] if want_grad else None
            loss = np.empty(n, dtype) if want_loss_rows else None
            totals.append(_dispatch.run(backend, kernel, dtype, n, dict(
                kernel_args, input=z, target=None if indices is None else indices[which],
                target_prob=None if probabilities is None else probabilities[which]),
                dict(loss=loss, grad=g, lse=None if lse_rows is None else lse_rows[which]), grad_scale))
            if want_loss_rows:
                loss_rows[which] = loss
            if want_grad:
                if counted_rows is None:
                    np.matmul(g, linear_weight, out=grad_input[which])
                else:
                    grad_input[which] = g @ linear_weight
                _add_weight_share(grad_weight, g, x, share, first=start == 0)
                if bias_sum is not None:
                    bias_sum += np.sum(g, axis=0, dtype=np.float64)
    grads = None
    if want_grad:
        grads = (grad_input, grad_weight, None if bias_sum is None else bias_sum.astype(dtype))
    return math.fsum(totals), loss_rows, grads


def _add_weight_share(grad_weight, g, x, share, first):
    """grad_weight += g^T x (the chunk's share of the weight's gradient), a slab of classes at a time
    through ``share`` (written directly on the first chunk)."""
    slab = share.shape[0]
    for begin in range(0, grad_weight.shape[0], slab):
        end = min(begin + slab, grad_weight.shape[0])
        if first:
            np.matmul(g[:, begin:end].T, x, out=grad_weight[begin:end])
        else:
            part = share[:end - begin]
            np.matmul(g[:, begin:end].T, x, out=part)
            grad_weight[begin:end] += part
