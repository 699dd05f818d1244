"""The accuracy budgets of DESIGN.md, as data (the role of libm-test-ulps.h).

- ``MAX_ULP[(stem, dtype, output)]``: error of every element (``reduction="none"``) of the loss and of
  each gradient against the mpmath oracle, in ulps of the output dtype.  4 everywhere.
- One documented exception: float64 KL (``log_target=False``) where log p and the input log q agree
  in their leading bits, i.e. |log p - log q| < |log q| / 2, so that forming log p - log q cancels.
  There the term needs log p beyond double precision and the budget is a relative error of
  ``KL_CLOSE_RELATIVE``.  (With a plain double log the error grows like |log q| / |log p - log q|
  ulps; below the threshold that factor is < 2 and the 4-ulp budget holds.)
- ``REDUCTION_ULP``: ``mean``, ``sum`` and ``batchmean`` within 4 ulp of the exactly rounded reduction
  of the exact per-element values (and the same for gradients summed over a broadcast argument,
  e.g. the gradient w.r.t. a per-row variance).
"""

import numpy as np

#: The outputs of each loss, as the suite names them.
OUTPUTS = {
    "ce": ("loss", "grad"),
    "bce": ("loss", "grad"),
    "gnll": ("loss", "grad_input", "grad_var"),
    "kl": ("loss", "grad"),
    "mse": ("loss", "grad"),
    "lse": ("lse", "log_softmax", "softmax"),
}

MAX_ULP = {(stem, dtype, output): 4
           for stem, outputs in OUTPUTS.items() for dtype in ("float32", "float64") for output in outputs}

REDUCTION_ULP = 4

KL_CLOSE_RELATIVE = 1e-12


def max_ulp(stem, dtype, output):
    return MAX_ULP[(stem, np.dtype(dtype).name, output)]


def kl_close(q_log, target, log_target, dtype):
    """Where the float64 KL exception applies: |log p - log q| < |log q| / 2 (finite, p > 0)."""
    if np.dtype(dtype) != np.float64 or log_target:
        return np.zeros(np.shape(q_log), dtype=bool)
    q_log = np.asarray(q_log, dtype=np.float64)
    p = np.asarray(target, dtype=np.float64)
    with np.errstate(all="ignore"):
        log_p = np.log(p)
        return (p > 0) & np.isfinite(q_log) & (np.abs(log_p - q_log) < 0.5 * np.abs(q_log))
