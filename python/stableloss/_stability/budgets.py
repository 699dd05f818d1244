"""The accuracy budgets of docs/design.md, as data (the role of libm-test-ulps.h): what the test suite
enforces and what ``python -m stableloss check`` marks each cell against.

- ``MAX_ULP[(stem, dtype, output)]``: error of every element (``reduction="none"``) of the loss and of
  each gradient against the mpmath oracle, in ulps of the output dtype.  4 everywhere.
- One documented exception: float64 KL (``log_target=False``) where log p and the input log q agree
  in their leading bits, i.e. |log p - log q| < |log q| / 2, so that forming log p - log q cancels.
  There the term needs log p beyond double precision and the budget is a relative error of
  ``KL_CLOSE_RELATIVE``.  (With a plain double log the error grows like |log q| / |log p - log q|
  ulps; below the threshold that factor is < 2 and the 4-ulp budget holds.)
- A second documented exception: the float64 cross-entropy gradient with label smoothing or
  probability targets is a difference of two terms, g_j = A p_j - B_j (A = sum_c w_c t'_c,
  B_j = w_j t'_j, t' the smoothed target distribution; with a z-loss A gains 2 rho z lse, a third
  term; with a softcap all are multiplied by the cap's derivative), which cancel wherever p_j is close
  to the target's share.  There the budget is 4 ulp of the larger term, max(A p_j, B_j) (a forward error
  bound for a difference); reaching 4 ulp of g_j itself would need p_j in double-double (a
  double-double exp per element). Index targets without smoothing have no such difference: 4 ulp.
- ``REDUCTION_ULP``: ``mean``, ``sum`` and ``batchmean`` within 4 ulp of the exactly rounded reduction
  of the exact per-element values (and the same for gradients summed over a broadcast argument,
  e.g. the gradient w.r.t. a per-row variance).
- A third documented exception: the Gaussian NLL gradient w.r.t. a broadcast variance (one per row,
  one shared along a dimension, a Python float) is the sum of the per-element gradients
  (1/v - r_i^2)/2, r_i = (x_i - t_i)/v, which have both signs and cancel by construction: at the
  fitted variance their sum is 0.  Each element is rounded to the dtype before the sum, so the error
  of the sum grows with sum_i |g_i| / |sum_i g_i| (measured up to 9.5 in the var_broadcast family,
  6.2 ulp of the sum).  There the budget is 4 ulp of sum_i |g_i| (a forward error bound for a sum,
  as for the cross-entropy difference above); exactness would need the kernel to sum the elements
  before they are rounded.
- A fourth documented exception: the float64 sigmoid focal loss gradient with soft labels (0 < t < 1) is
  alpha_t q^gamma ((1 - t) A - t B + gamma ce (1 - 2t) r)/(1 + e) (the kernels' notation), whose terms
  cancel at the loss's minimum.  Where they cancel they are formed in double-double (to ~2^-100 of the
  largest), but the double x nearest the minimum leaves a gradient of 2^-53 u times the terms, u uniform
  in [0, 1], so no fixed precision gives it 4 ulp of itself (measured on the near_minimum family: up to
  231 ulp).  There the budget is 4 ulp of the largest term, alpha_t q^gamma max(|(1 - t) A|, |t B|,
  |gamma ce (1 - 2t) r|)/(1 + e), as for the cross-entropy difference (measured below 1.2 ulp of it).
- A fifth documented exception: the Poisson NLL without log_input, with full, where eps exceeds
  log(2 pi t)/2 (t > 1; so eps > 0.918, far from its role of a guard against log 0): the loss is then
  (t psi(w) + log(2 pi t)/2) - eps, two positive terms that cancel where the rate makes t psi(w) close
  to eps - log(2 pi t)/2, and both would be needed beyond double-double precision (measured: up to
  1.7e16 ulp of the result, about 2**-54 of the terms, at the float64 rate nearest to such a root).
  There the budget is 4 ulp of the larger term, max(t psi(w) + log(2 pi t)/2, eps).  Below that eps the
  loss is a sum of non-negative terms: 4 ulp.
"""

import numpy as np

from .._spec import KERNELS

#: The outputs of each kernel, as its declaration names them.
OUTPUTS = {stem: kernel.outputs for stem, kernel in KERNELS.items()}

#: The budget of every output, and of every reduction, in ulps of the output dtype.
BUDGET_ULP = 4
MAX_ULP = {(stem, dtype, output): BUDGET_ULP
           for stem, outputs in OUTPUTS.items() for dtype in ("float32", "float64") for output in outputs}

REDUCTION_ULP = BUDGET_ULP

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


def ce_grad_terms(part, dtype):
    """The larger of the two terms A p_j and B_j of the cross-entropy gradient, in the input's layout,
    where the float64 term-relative exception applies (label smoothing or probability targets);
    None elsewhere.  float64 arithmetic is ample for a magnitude."""
    x = np.asarray(part["input"], dtype=np.float64)
    target = np.asarray(part["target"])
    eps = float(part.get("label_smoothing", 0.0))
    z_loss, softcap = float(part.get("z_loss", 0.0)), part.get("softcap")
    probabilities = target.dtype.kind == "f"
    if np.dtype(dtype) != np.float64 or not (probabilities or eps > 0):
        return None
    axis = 1 if x.ndim >= 2 else 0
    rows = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    c = rows.shape[1]
    w = np.ones(c) if part.get("weight") is None else np.asarray(part["weight"], dtype=np.float64)
    with np.errstate(all="ignore"):
        cap = np.ones_like(rows)  # the derivative of a softcap
        if softcap is not None:
            cap = 1.0 / np.cosh(rows / softcap) ** 2
            rows = softcap * np.tanh(rows / softcap)
        top = rows.max(axis=1, keepdims=True)
        p = np.exp(rows - top)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        if probabilities:
            t = np.moveaxis(target.astype(np.float64), axis, -1).reshape(-1, c)
            counted = np.ones(len(rows), bool)
            rho = np.ones((len(rows), 1))
        else:
            y = target.reshape(-1)
            counted = y != part.get("ignore_index", -100)
            t = np.zeros_like(rows)
            t[np.arange(len(rows))[counted], y[counted]] = 1.0
            rho = (w * t).sum(axis=1, keepdims=True)
        t = (1.0 - eps) * t + eps / c
        b = w * t
        z_term = np.abs(2.0 * z_loss * rho * (top + np.log(total)))  # the z-loss's 2 rho z lse in A
        terms = np.maximum((np.abs(b.sum(axis=1, keepdims=True)) + z_term) * p, np.abs(b))
        terms = terms * cap * counted[:, None]
    moved_shape = np.moveaxis(x, axis, -1).shape
    return np.moveaxis(terms.reshape(moved_shape), -1, axis)


def gnll_var_terms(part, dtype):
    """sum_i |g_i| of the per-element gradients that the gradient w.r.t. a broadcast var sums (in var's
    shape), where the third exception applies; None where var has the input's shape.  float64
    arithmetic is ample for a magnitude."""
    x = np.asarray(part["input"], dtype=np.float64)
    var = part["var"]
    if np.shape(var) == x.shape and not np.isscalar(var):
        return None
    var_shape = np.shape(var)
    aligned = np.asarray(var, dtype=np.float64)
    if var_shape == x.shape[:-1] and x.ndim:
        aligned = aligned[..., None]  # one variance per row
    with np.errstate(all="ignore"):
        v = np.maximum(np.broadcast_to(aligned, x.shape), part.get("eps", 1e-6))
        r = (x - np.asarray(part["target"], dtype=np.float64)) / v
        magnitudes = np.abs(0.5 * (1.0 / v - r * r))
    summed_axes = tuple(i for i, n in enumerate(np.shape(aligned)) if n == 1 and x.shape[i] != 1) \
        if np.ndim(aligned) else tuple(range(x.ndim))
    return np.sum(magnitudes, axis=summed_axes).reshape(var_shape)


def focal_grad_terms(part, dtype):
    """The largest term of the float64 sigmoid focal loss gradient where a label is soft (the fourth
    exception), scaled as the gradient; 0 elsewhere, None for float32 or hard labels only.  float64
    arithmetic is ample for a magnitude."""
    t = np.asarray(part["targets"], dtype=np.float64)
    soft = (t > 0) & (t < 1)
    if np.dtype(dtype) != np.float64 or not soft.any():
        return None
    x = np.asarray(part["inputs"], dtype=np.float64)
    alpha, gamma = part.get("alpha", 0.25), part.get("gamma", 2.0)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        big_a, big_b = np.where(x >= 0, 1.0, e), np.where(x >= 0, e, 1.0)
        num = t * big_b + (1 - t) * big_a
        ce = np.log1p(e) + (1 - t) * np.maximum(x, 0) + t * np.maximum(-x, 0)
        q_gamma = np.exp(gamma * (np.log(num) - np.log1p(e))) if gamma else 1.0
        a = 1.0 if alpha < 0 else alpha * t + (1 - alpha) * (1 - t)
        largest = np.maximum(np.maximum((1 - t) * big_a, t * big_b), gamma * ce * np.abs(1 - 2 * t) * e / num)
        terms = np.abs(a) * q_gamma * largest / (1 + e)
    return np.where(soft & np.isfinite(terms), terms, 0.0)


def relative_exception(stem, part, output, dtype):
    """``(mask, relative)`` where a documented exception allows a relative error instead of ulps (the
    float64 KL loss where log p and log q agree), else None."""
    if (stem, output) == ("kl", "loss"):
        mask = kl_close(part["input"], part["target"], part.get("log_target", False), dtype)
        if mask.any():
            return mask, KL_CLOSE_RELATIVE
    return None


def pnll_eps_terms(part, dtype):
    """The larger of the two terms t psi(w) + log(2 pi t)/2 and eps of the full Poisson NLL without log_input,
    where the fourth exception applies (t > 1, eps > log(2 pi t)/2; 0 elsewhere in the part); None where it
    applies nowhere in the part.  float64 arithmetic is ample for a magnitude."""
    eps = float(part.get("eps", 1e-8))
    if part.get("log_input", True) or not part.get("full", False) or eps <= 0.918:
        return None
    x = np.asarray(part["input"], dtype=np.float64)
    t = np.broadcast_to(np.asarray(part["target"], dtype=np.float64), x.shape)
    with np.errstate(all="ignore"):
        half_log = 0.5 * np.log(2 * np.pi * t)
        w = (x + eps - t) / t
        positive = t * (w - np.log1p(w)) + half_log  # t psi(w) + log(2 pi t)/2
        applies = (t > 1) & (eps > half_log)
        terms = np.where(applies, np.maximum(np.abs(positive), eps), 0.0)
    return terms if applies.any() else None


#: The documented exceptions that count an output's error in ulps of the terms it is a difference or sum
#: of: (stem, output) -> terms(part, dtype), None where the exception does not apply to the part.
_TERMS = {("ce", "grad"): ce_grad_terms, ("gnll", "grad_var"): gnll_var_terms, ("focal", "grad"): focal_grad_terms,
          ("pnll", "loss"): pnll_eps_terms}


def term_exception(stem, part, output, dtype):
    """The magnitudes of the terms the output is counted against (the cross-entropy, Gaussian NLL, focal
    loss and Poisson NLL exceptions), or None."""
    terms_of = _TERMS.get((stem, output))
    return None if terms_of is None else terms_of(part, dtype)
