"""The mpmath oracle: every loss and gradient of stableloss, computed from the exact float inputs.

This module is the definition the suite tests against.  Each function takes numpy arrays (float32 or
float64: every such value converts to an mpmath number exactly), works at ``DPS`` decimal digits, and
returns object arrays of mpmath numbers: the per-element loss (``reduction="none"``) and the gradient
of the *sum* of the losses.  Reductions are :func:`total` and a division.  :func:`exact_outputs` maps
a family part (the keyword arguments of one public call) to every exact output of that call.

The formulas are the textbook ones, written so that working precision is never the limit:

- no subtraction of nearly equal rounded quantities (the few places where that could happen use
  exact mpmath arithmetic, ``exact=True``, and say so);
- special values follow the documented conventions (docs/design.md, kernels/stableloss.h): NaN in gives
  NaN out, a label factor that is exactly 0 makes its term 0 even against an infinity, and so on.

At 80 digits (266 bits) the results are exact for every purpose of a 4-ulp float64 test: the smallest
nonzero result any family produces is far above 2**-266 times the size of its terms.
"""

import functools
import numbers

import mpmath
import numpy as np
from mpmath import mpf

from .._spec import KERNELS
from . import families

DPS = 80
NAN = mpf("nan")
INF = mpf("inf")


def _at_dps(func):
    """Run ``func`` at DPS decimal digits."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with mpmath.workdps(DPS):
            return func(*args, **kwargs)
    return wrapper


def exact(value):
    """The float ``value`` (numpy float32/float64 or Python float) as an mpmath number, exactly."""
    return mpf(float(value))


def _objects(values, shape):
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array.reshape(shape)


def _isnan(value):
    return mpmath.isnan(value)


def exact_sum(terms):
    """The sum of mpmath numbers without any rounding (mantissas added as integers)."""
    return functools.reduce(functools.partial(mpmath.fadd, exact=True), terms, mpf(0))


@_at_dps
def total(values):
    """The sum of an array of oracle values (at DPS digits; NaN and inf propagate)."""
    return mpmath.fsum(np.asarray(values, dtype=object).reshape(-1).tolist())


@_at_dps
def divide(numerator, denominator):
    return mpf(numerator) / mpf(denominator)


# ---------------------------------------------------------------------------------------------------
# Cross-entropy, negative log-likelihood, log-sum-exp, log-softmax, softmax (rows of logits)

def _softmax_parts(x):
    """For one row of logits (mpf): a = max x, e_j = exp(x_j - a), s = sum of e_j except the first
    argmax k (e_k = 1), S = 1 + s, and L_j = -log softmax_j = (a - x_j) + log1p(s).

    L_j is a sum of two non-negative terms, so it keeps its relative accuracy at any size: the oracle
    needs this as much as the kernels (lse - x_y cancels at any finite precision when L_y is tiny).
    """
    a = max(x)
    k = x.index(a)
    e = [mpmath.exp(v - a) for v in x]
    s = mpmath.fsum(e[:k] + e[k + 1:])
    log_s = mpmath.log1p(s)
    nll = [(a - v) + log_s for v in x]
    return a, k, e, s, nll


def _softcap(v, c):
    """``(c tanh(v/c), 1 - tanh^2(v/c))``: a soft-capped logit and the derivative of the cap, with the
    limits +-c and 0 at v = +-inf (torch's value of softcap * tanh(x / softcap) there)."""
    if _isnan(v):
        return NAN, NAN
    if mpmath.isinf(v):
        return (c if v > 0 else -c), mpf(0)
    t = mpmath.tanh(v / c)
    return c * t, mpmath.sech(v / c) ** 2


@_at_dps
def ce(input, target, weight=None, ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None):
    """Cross-entropy: ``(loss, grad, lse)`` for logits ``input`` of shape (C,), (N, C) or (N, C, d1, ..., dk)
    (class axis 1) and a target of class indices (integer dtype, the input's shape without the class
    axis) or class probabilities (float, the input's shape).

    With ``softcap`` c the logits are x'_j = c tanh(x_j/c) (+-c at x_j = +-inf) and the gradient w.r.t. x_j
    is the one w.r.t. x'_j times 1 - tanh^2(x_j/c).  With p = softmax(x') over the class axis,
    L_j = -log p_j, eps = label_smoothing and w the class weights (default 1), per position:

    - index target y:  loss = (1 - eps) w_y L_y + (eps / C) sum_j w_j L_j  (the sum only if eps > 0);
      0 with a zero gradient where y == ignore_index;
    - probabilities t: loss = sum_j w_j t'_j L_j with t'_j = (1 - eps) t_j + eps / C;
    - plus rho z lse^2, z = z_loss, lse = log sum_j e^{x'_j}, rho = w_y (0 where ignored; 1 for
      probability targets).

    These are sum_j u_j L_j + rho z lse^2 with label weights u_j = w_j t'_j (t = one-hot(y) for an index
    target), whose gradient is d/dx'_j = U p_j - u_j + 2 rho z lse p_j, U = sum_c u_c.  Special rows
    (no cap): a NaN or a +inf logit, or all logits -inf, give NaN loss and gradient; -inf logits are
    masked classes (p_j = 0, L_j = +inf).  lse, for every row (ignored ones too): a + log1p(s); NaN for a
    row holding a NaN; without a cap, the infinite max of a row with +inf or of an all -inf row.
    """
    x = np.asarray(input)
    axis = 1 if x.ndim >= 2 else 0
    moved = np.moveaxis(x, axis, -1)
    n_classes = moved.shape[-1]
    rows = moved.reshape(-1, n_classes)
    target = np.asarray(target)
    index_target = target.dtype.kind in "iu"
    labels = target.reshape(-1) if index_target else np.moveaxis(target, axis, -1).reshape(-1, n_classes)
    eps = exact(label_smoothing)
    z = exact(z_loss)
    w = [mpf(1)] * n_classes if weight is None else [exact(v) for v in weight]
    losses, grads, lses = [], [], []
    for i, row in enumerate(rows):
        row = [exact(v) for v in row]
        cap = [mpf(1)] * n_classes  # the derivative of the cap
        if softcap is not None:
            row, cap = (list(values) for values in zip(*(_softcap(v, exact(softcap)) for v in row)))
        special = any(_isnan(v) or v == INF for v in row) or max(row) == -INF
        lses.append(NAN if any(_isnan(v) for v in row) else max(row) if special else _lse_of(row))
        if index_target and int(labels[i]) == ignore_index:
            losses.append(mpf(0))
            grads.extend([mpf(0)] * n_classes)
            continue
        if special:
            losses.append(NAN)
            grads.extend([NAN] * n_classes)
            continue
        if index_target:
            t = [mpf(1) if j == int(labels[i]) else mpf(0) for j in range(n_classes)]
            rho = w[int(labels[i])]
        else:
            t = [exact(v) for v in labels[i]]
            rho = mpf(1)
        loss, grad = _ce_row(row, t, w, eps, index_target)
        if z != 0:  # rho z lse^2, gradient 2 rho z lse p_j
            lse = lses[-1]
            loss += rho * z * lse * lse
            a, k, e, s, _ = _softmax_parts(row)
            grad = [g + 2 * rho * z * lse * e_j / (1 + s) for g, e_j in zip(grad, e)]
        losses.append(loss)
        grads.extend(g * d for g, d in zip(grad, cap))
    grad = np.moveaxis(_objects(grads, moved.shape), -1, axis)
    return _objects(losses, moved.shape[:-1]), grad, _objects(lses, moved.shape[:-1])


def _lse_of(row):
    a, k, e, s, nll = _softmax_parts(row)
    return a + mpmath.log1p(s)


def _ce_row(x, t, w, eps, index_target):
    n_classes = len(x)
    a, k, e, s, nll = _softmax_parts(x)
    if index_target:
        y = t.index(1)
        loss = (1 - eps) * w[y] * nll[y]
        if eps > 0:
            loss += eps / n_classes * mpmath.fsum(wj * lj for wj, lj in zip(w, nll))
    else:  # a masked class without target mass (u_j = 0 at L_j = +inf) adds 0 (-log 0) = 0
        u = [wj * ((1 - eps) * tj + eps / n_classes) for wj, tj in zip(w, t)]
        loss = mpmath.fsum(uj * lj for uj, lj in zip(u, nll) if uj != 0)
    # Gradient U p_j - u_j = (e_j (U - u_j) - u_j (S - e_j)) / S, with everything scaled by C so the
    # label weights C u_j = w_j (C (1 - eps) t_j + eps) are exact: U - u_j is then an exact difference
    # (no cancellation error when the label mass sits on one class), and S - e_j is a sum of the
    # other terms (for j = k that is s itself; elsewhere e_j <= 1 <= S / 2, no cancellation).
    scaled = [mpmath.fmul(wj, mpmath.fadd(mpmath.fmul(n_classes * (1 - eps), tj, exact=True), eps, exact=True),
                          exact=True) for wj, tj in zip(w, t)]
    scaled_total = exact_sum(scaled)
    big_s = 1 + s
    grad = []
    for j in range(n_classes):
        others_u = mpmath.fsub(scaled_total, scaled[j], exact=True)
        others_e = s if j == k else big_s - e[j]
        grad.append((e[j] * others_u - scaled[j] * others_e) / (n_classes * big_s))
    return loss, grad


@_at_dps
def nll(input, target, weight=None, ignore_index=-100):
    """Negative log-likelihood: ``(loss, grad)`` for log-probabilities ``input`` of shape (C,), (N, C) or
    (N, C, d1, ..., dk) (class axis 1) and class indices ``target`` (the input's shape without the class
    axis).  Per position with target y: loss = -w_y x_y (the exact product), the gradient of the sum
    -w_y at y and 0 elsewhere, whatever x_y; 0 and 0 where y == ignore_index.  Only x_y enters: a NaN
    elsewhere in the row does not matter, and w_y = 0 at x_y = -inf gives NaN (0 inf), as PyTorch.
    """
    x = np.asarray(input)
    axis = class_axis(x)
    moved = np.moveaxis(x, axis, -1)
    n_classes = moved.shape[-1]
    losses, grads = [], []
    for row, y in zip(moved.reshape(-1, n_classes), np.asarray(target).reshape(-1).tolist()):
        grad = [mpf(0)] * n_classes
        if y == ignore_index:
            losses.append(mpf(0))
        else:
            w_y = mpf(1) if weight is None else exact(weight[y])
            losses.append(-mpmath.fmul(w_y, exact(row[y]), exact=True))
            grad[y] = -w_y
        grads.extend(grad)
    return _objects(losses, moved.shape[:-1]), np.moveaxis(_objects(grads, moved.shape), -1, axis)


@_at_dps
def lse(x):
    """Row-wise ``(logsumexp (N,), log_softmax (N, C), softmax (N, C))`` of rows ``x`` (N, C).

    logsumexp = a + log1p(s), log_softmax_j = -L_j, softmax_j = e_j / S (see :func:`_softmax_parts`).
    A NaN row gives NaN.  A row whose max is infinite (a +inf logit, or only -inf logits) has that max
    as its logsumexp (log of an infinite sum, or log 0) and NaN log_softmax and softmax, as PyTorch.
    """
    x = np.asarray(x)
    n_rows, n_cols = x.shape
    lses, log_softmaxes, softmaxes = [], [], []
    for i in range(n_rows):
        row = [exact(v) for v in x[i]]
        if any(_isnan(v) for v in row):
            lses.append(NAN)
            log_softmaxes.extend([NAN] * n_cols)
            softmaxes.extend([NAN] * n_cols)
            continue
        if INF in row or max(row) == -INF:
            lses.append(max(row))
            log_softmaxes.extend([NAN] * n_cols)
            softmaxes.extend([NAN] * n_cols)
            continue
        a, k, e, s, nll = _softmax_parts(row)
        lses.append(a + mpmath.log1p(s))
        log_softmaxes.extend(-v for v in nll)
        softmaxes.extend(v / (1 + s) for v in e)
    return (_objects(lses, (n_rows,)), _objects(log_softmaxes, (n_rows, n_cols)),
            _objects(softmaxes, (n_rows, n_cols)))


# ---------------------------------------------------------------------------------------------------
# Elementwise losses (all arguments already broadcast to one shape)

def _elementwise(func, n_outputs, *arrays):
    """Apply ``func`` (mpf arguments, a tuple of ``n_outputs`` mpf results) to each element."""
    shape = np.shape(arrays[0])
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    results = [func(*(exact(a[i]) for a in flat)) for i in range(flat[0].size)]
    columns = list(zip(*results)) if results else [[]] * n_outputs
    return tuple(_objects(list(column), shape) for column in columns)


def _softplus(v):
    """log(1 + e^v), with the limits softplus(-inf) = 0 and softplus(+inf) = +inf."""
    return mpmath.log1p(mpmath.exp(v))


def _sigmoid(v):
    """1 / (1 + e^-v), with the limits 0 and 1 at -inf and +inf."""
    return 1 / (1 + mpmath.exp(-v))


def _bce_element(x, y, w, pw):
    if any(_isnan(v) for v in (x, y, w, pw)):
        return NAN, NAN
    # A term whose label factor (y, resp. 1 - y) is exactly 0 counts as 0, also against softplus = inf.
    positive = 0 if y == 0 else pw * y * _softplus(-x)
    negative = 0 if y == 1 else (1 - y) * _softplus(x)
    if abs(x) < 1:
        # sigma(+-x) = 1/2 +- tanh(x/2)/2: near the root at y = 1/2, x = 1e-300, the two terms cancel below
        # any working precision as 1/(1 + e^-x); in tanh(x/2) the part that survives is exact
        grad = ((1 - y) - pw * y) / 2 + ((1 - y) + pw * y) * mpmath.tanh(x / 2) / 2
    else:
        grad = (1 - y) * _sigmoid(x) - pw * y * _sigmoid(-x)
    return w * (positive + negative), w * grad


@_at_dps
def bce(x, y, weight=None, pos_weight=None):
    """BCE with logits: ``(loss, grad)``; loss = w (pw y softplus(-x) + (1 - y) softplus(x)),
    grad = w ((1 - y) sigma(x) - pw y sigma(-x)).  ``weight``/``pos_weight`` default to 1."""
    return _elementwise(_bce_element, 2, x, y, 1.0 if weight is None else weight,
                        1.0 if pos_weight is None else pos_weight)


def _gnll_element(full, x, t, var, eps):
    if any(_isnan(v) for v in (x, t, var)):
        return NAN, NAN, NAN
    v = eps if var < eps else var  # the clamp acts on the value; the var gradient passes straight through
    d = x - t
    loss = (mpmath.log(v) + d * d / v) / 2
    if full:
        loss += mpmath.log(2 * mpmath.pi) / 2
    # d/dvar = (1/v - d^2/v^2) / 2 = (v - d^2) / (2 v^2), with v - d^2 formed exactly (it cancels to 0
    # when d^2 = v, which a float grid can hit exactly).
    v_minus_d2 = mpmath.fsub(v, mpmath.fmul(d, d, exact=True), exact=True)
    return loss, d / v, v_minus_d2 / (2 * v * v)


@_at_dps
def gnll(x, t, var, eps, full=False):
    """Gaussian NLL: ``(loss, grad_input, grad_var)``; v = max(var, eps) (value clamp),
    loss = (log v + (x - t)^2 / v) / 2 (+ log(2 pi) / 2 if full), grad_input = (x - t) / v,
    grad_var = (1/v - (x - t)^2 / v^2) / 2 evaluated at the clamped v."""
    return _elementwise(functools.partial(_gnll_element, bool(full)), 3, x, t, var, float(eps))


def _kl_element(log_target, q_log, target):
    if _isnan(target):
        return NAN, NAN
    p = mpmath.exp(target) if log_target else target
    if p == 0:  # 0 log 0 = 0 against any log q that is a number or -inf; the gradient -p is 0 too
        return (NAN if _isnan(q_log) or q_log == INF else mpf(0)), mpf(0)
    if p < 0 or _isnan(q_log) or (p == INF and not log_target):  # p = +inf is no probability
        return NAN, -p  # the loss is NaN; its gradient w.r.t. log q is -p whatever log q is (PyTorch)
    log_p = target if log_target else mpmath.log(target)
    return p * (log_p - q_log), -p


@_at_dps
def kl(q_log, target, log_target=False):
    """KL divergence terms: ``(loss, grad)`` with input log q; loss = p (log p - log q), grad = -p,
    where p = target (or e^target with ``log_target``).  p == 0 gives 0 and 0, also against a -inf
    input; p < 0, a target of +inf (without ``log_target``) or a NaN input give a NaN loss, and so does
    an input of +inf where p == 0 (the gradient stays -p, as in PyTorch)."""
    return _elementwise(functools.partial(_kl_element, bool(log_target)), 2, q_log, target)


def _mse_element(x, t, w):
    if any(_isnan(v) for v in (x, t, w)):
        return NAN, NAN
    d = x - t
    return w * d * d, 2 * w * d


@_at_dps
def mse(x, t, weight=None):
    """Squared error: ``(loss, grad)`` with loss = w (x - t)^2, grad = 2 w (x - t)."""
    return _elementwise(_mse_element, 2, x, t, 1.0 if weight is None else weight)



def _huber_element(smooth, c, x, t, w):
    if any(_isnan(v) for v in (x, t, w)):
        return NAN, NAN
    d = mpmath.fsub(x, t, exact=True)  # exact: |d| < c decides the branch
    sign = mpmath.sign(d)  # sign(0) = 0
    if smooth:  # smooth_l1 with beta = c (l1: c = 0)
        loss, grad = (d * d / (2 * c), d / c) if abs(d) < c else (abs(d) - c / 2, sign)
    else:  # huber with delta = c
        loss, grad = (d * d / 2, d) if abs(d) < c else (c * (abs(d) - c / 2), c * sign)
    return w * loss, w * grad


@_at_dps
def huber(x, t, weight=None, delta=0.0, smooth=True):
    """Huber, smooth L1 and L1 terms: ``(loss, grad)``, d = x - t.  smooth (smooth_l1 with beta =
    delta; l1 with delta = 0): loss = |d| < delta ? d^2/(2 delta) : |d| - delta/2, grad = d/delta or
    sign(d); not smooth (huber): loss = |d| < delta ? d^2/2 : delta (|d| - delta/2), grad = d or
    delta sign(d); both times the weight w (default 1).  sign(0) = 0; |d| = delta takes the linear
    form, as torch (both forms agree there); infinite d gives NaN against a weight of 0 or an infinite
    delta (inf - inf), as torch."""
    return _elementwise(functools.partial(_huber_element, bool(smooth), exact(delta)), 2, x, t,
                        1.0 if weight is None else weight)
def _focal_element(alpha, gamma, x, t):
    if _isnan(x) or _isnan(t):
        return NAN, NAN
    a = 1 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
    e = mpmath.exp(-abs(x))  # 0 at x = +-inf
    log_1pe = mpmath.log1p(e)
    big_a, big_b = (1, e) if x >= 0 else (e, 1)  # sigma(x) = A/(1 + e), sigma(-x) = B/(1 + e)
    # ce = t softplus(-x) + (1 - t) softplus(x), softplus(+-x) = max(+-x, 0) + log1p(e): a label
    # factor of exactly 0 makes its term 0, also against an infinite x (the limits, as BCE)
    ce = log_1pe + (0 if t == 1 else (1 - t) * max(x, 0)) + (0 if t == 0 else t * max(-x, 0))
    num = t * big_b + (1 - t) * big_a  # q = 1 - p_t = num / (1 + e)
    if gamma == 0:
        q_gamma = mpf(1)  # 0^0 = 1
    else:
        q_gamma = mpf(0) if num == 0 else mpmath.exp(gamma * (mpmath.log(num) - log_1pe))
    product = INF if ce == INF else ce * q_gamma  # ce infinite only where q = 1 - t or t > 0
    loss = mpf(0) if a == 0 and product == INF else a * product  # a zero weight: the term is 0
    # d/dx = a (q^g (sigma(x) - t) + g ce q^(g - 1) sigma(x) sigma(-x) (1 - 2t))
    #      = a q^g ((1 - t) A - t B + g ce (1 - 2t) r) / (1 + e),  r = e / num = sigma(x) sigma(-x) (1 + e) / q
    on_e_side = (t == 1 and x >= 0) or (t == 0 and x < 0)  # num = e: r = 1, also at x = +-inf
    r = mpf(1) if on_e_side else e / num
    third = 0 if gamma == 0 or r == 0 else gamma * ce * (1 - 2 * t) * r  # r = 0 only at x = +-inf: the limit
    grad = a * q_gamma * ((1 - t) * big_a - t * big_b + third) / (1 + e)
    return loss, grad


def _stirling_psi(w):
    """psi(w) = w - log1p(w) >= 0 for w > -1 (+inf at -1), at twice the working precision: it cancels to
    w^2/2 for small w, which a near-root family makes as small as 2**-110."""
    if w == INF:
        return INF
    if w == -1:
        return INF
    with mpmath.workdps(2 * DPS):
        return +(w - mpmath.log1p(w))


def _pnll_element(log_input, full, eps, x, t):
    if _isnan(x) or _isnan(t):
        return NAN, NAN
    if log_input:
        e = mpmath.exp(x)
        grad = e - t  # x = +inf, t = +inf: inf - inf = NaN
        if t == 0:  # 0 x = 0 whatever x: loss e^x (0 at x = -inf)
            loss = e
        elif x == INF:  # the limit for a finite target; inf - inf (t = +inf) is NaN
            loss = NAN if t == INF else INF
        else:
            loss = e - t * x  # x = -inf: t x = -+inf; t = +-inf at x = 0: NaN
    else:
        lam = mpmath.fadd(x, eps, exact=True)  # the rate x + eps, exactly
        if t == 0:  # 0 log(x + eps) = 0: the gradient of x alone
            grad = mpf(1)
        elif lam == INF:  # 1 - t/inf = 1; (inf - inf)/inf for t = +-inf is NaN
            grad = NAN if mpmath.isinf(t) else mpf(1)
        elif lam == 0:
            grad = -t * INF  # -t/0
        else:
            grad = mpmath.fsub(lam, t, exact=True) / lam  # 1 - t/(x + eps), the difference exact
        if lam < 0:  # no rate: log(x + eps) is NaN, also against t = 0
            loss = NAN
        elif t == 0:
            loss = x
        elif x == INF:
            loss = NAN if t == INF else INF
        elif lam == 0:
            loss = t * INF  # -t log 0
        else:
            loss = x - t * mpmath.log(lam)  # t = +-inf at lam = 1: NaN
    if full and t > 1 and not _isnan(loss):
        if t == INF:
            return NAN, grad  # t log t - t is inf - inf
        # loss + t log t - t + log(2 pi t)/2 = t psi(w) + log(2 pi t)/2 (- eps): w = e^x/t - 1, or
        # (x + eps)/t - 1 without log_input; the terms t log t of the Stirling term and t x (t log(x + eps))
        # cancel exactly in psi, which the direct sum would leave to the working precision.
        if log_input:
            w = mpmath.exp(x) / t - 1 if x < INF else INF
            loss = t * _stirling_psi(w) + mpmath.log(2 * mpmath.pi * t) / 2
        else:
            w = mpmath.fsub(lam, t, exact=True) / t if lam < INF else INF
            loss = t * _stirling_psi(w) + mpmath.log(2 * mpmath.pi * t) / 2 - eps
    return loss, grad


@_at_dps
def focal(x, t, alpha=0.25, gamma=2.0):
    """Sigmoid focal loss (torchvision's): ``(loss, grad)`` with p = sigma(x), p_t = p t + (1 - p)(1 - t),
    loss = a_t ce (1 - p_t)^gamma, ce the BCE with logits, a_t = alpha t + (1 - alpha)(1 - t) (1 for a
    negative alpha), grad its derivative w.r.t. x.  Written with e = e^-|x| and 1 - p_t = num / (1 + e),
    num = t B + (1 - t) A a sum of non-negative terms; x = +-inf gives the limits (loss 0 or +inf, the
    gradient a_t q^gamma ((1 - t) A - t B)), a_t = 0 gives 0, NaN in gives NaN."""
    weight = exact(alpha) if alpha >= 0 else None
    return _elementwise(functools.partial(_focal_element, weight, exact(gamma)), 2, x, t)


@_at_dps
def pnll(x, t, log_input=True, full=False, eps=1e-8):
    """Poisson NLL: ``(loss, grad)``.  With log_input: loss = e^x - t x, grad = e^x - t; without: the rate
    lam = x + eps (exact), loss = x - t log(lam), grad = 1 - t/lam.  With full, where t > 1, the Stirling
    term t log t - t + log(2 pi t)/2 is added (computed as t psi(w) + log(2 pi t)/2, psi(w) = w - log1p(w),
    w = e^x/t - 1 or lam/t - 1: the same value, without the cancellation of t log t against t x).

    Special values: t = 0 makes t x and t log(lam) 0 whatever x (loss e^x or x, gradient e^x or 1), also
    at x = -inf and lam = 0; x = +inf gives the limit +inf (gradient +inf, or 1) for a finite target;
    lam < 0 gives a NaN loss (the gradient keeps its formula); full with t = +inf is NaN.  NaN in: NaN out."""
    return _elementwise(functools.partial(_pnll_element, bool(log_input), bool(full), exact(eps)), 2, x, t)


# ---------------------------------------------------------------------------------------------------
# The public calls: every exact output of one family part

def exact_outputs(stem, part):
    """The exact outputs of the public function of ``stem`` called with the keyword arguments ``part``
    (a part of a :mod:`families` family), ``reduction="none"`` and ``return_grad=True``: output name ->
    object array of mpf, of the shape the call returns.

    ce, nll, bce, kl, mse, huber, focal, pnll: ``loss``, ``grad``.  gnll: ``loss``, ``grad_input``, ``grad_var``
    (var's shape; where var is broadcast, its gradient sums over the elements it is broadcast to).  lse, on
    a cross-entropy part: ``lse``, ``log_softmax``, ``softmax`` of the input along the class axis.
    """
    return _OUTPUTS[stem](part)


#: stem -> outputs(part) -> {output: object array}, registered with ``@_outputs_of(stem)``.
_OUTPUTS = {}


def _outputs_of(stem):
    def register(function):
        _OUTPUTS[stem] = function
        return function
    return register


def exact_family(stem, name, dtype):
    """Every part of a stability family of ``stem`` (its declaration's family stem) with its exact
    outputs: a list of ``(part, {output: object array of mpf})``."""
    kernel = KERNELS[stem]
    return [(part, exact_outputs(stem, part)) for part in families.build(kernel.family_stem, name, dtype)]


def class_axis(x):
    """The class axis of cross-entropy logits: 1, or 0 for an unbatched (C,) input."""
    return 1 if np.ndim(x) >= 2 else 0


def aligned_var(part):
    """A gnll part's var as an array that numpy-broadcasts to the input (docs/design.md): a Python
    float, the input's shape, the input's shape without its last dim (one per row), or the input's
    shape with one dimension of size 1."""
    x, var = np.asarray(part["input"]), part["var"]
    if isinstance(var, numbers.Real):
        return np.asarray(var, dtype=x.dtype)
    var = np.asarray(var)
    return var[..., None] if var.shape == x.shape[:-1] and var.shape != x.shape else var


def _broadcast(part, name):
    """``part[name]`` broadcast to the input's shape (None if absent)."""
    value = part.get(name)
    return None if value is None else np.broadcast_to(value, np.shape(part["input"]))


@_outputs_of("ce")
def _ce_outputs(part):
    options = {name: part[name] for name in ("weight", "ignore_index", "label_smoothing", "z_loss", "softcap")
               if name in part}
    loss, grad, lse = ce(part["input"], part["target"], **options)
    return {"loss": loss, "grad": grad, "lse": lse}


@_outputs_of("nll")
def _nll_outputs(part):
    options = {name: part[name] for name in ("weight", "ignore_index") if name in part}
    loss, grad = nll(part["input"], part["target"], **options)
    return {"loss": loss, "grad": grad}


@_outputs_of("bce")
def _bce_outputs(part):
    loss, grad = bce(part["input"], part["target"], _broadcast(part, "weight"), _broadcast(part, "pos_weight"))
    return {"loss": loss, "grad": grad}


@_outputs_of("gnll")
def _gnll_outputs(part):
    x = np.asarray(part["input"])
    var = aligned_var(part)
    loss, grad_input, grad_var = gnll(x, _broadcast(part, "target"), np.broadcast_to(var, x.shape),
                                      part.get("eps", 1e-6), part.get("full", False))
    owner = np.broadcast_to(np.arange(var.size).reshape(var.shape), x.shape).reshape(-1)
    groups = [[] for _ in range(var.size)]
    for element, value in zip(owner, grad_var.reshape(-1)):
        groups[element].append(value)
    summed = _objects([total(group) for group in groups], np.shape(part["var"]))
    return {"loss": loss, "grad_input": grad_input, "grad_var": summed}


@_outputs_of("kl")
def _kl_outputs(part):
    loss, grad = kl(part["input"], _broadcast(part, "target"), part.get("log_target", False))
    return {"loss": loss, "grad": grad}


@_outputs_of("mse")
def _mse_outputs(part):
    loss, grad = mse(part["input"], _broadcast(part, "target"), _broadcast(part, "weight"))
    return {"loss": loss, "grad": grad}


@_outputs_of("huber")
def _huber_outputs(part):
    """The form from the public function the part calls (the declaration's variants): l1_loss,
    smooth_l1_loss (beta) or huber_loss (delta)."""
    function = KERNELS["huber"].function_of(part)
    delta, smooth = {"l1_loss": (0.0, True), "smooth_l1_loss": (part.get("beta"), True),
                     "huber_loss": (part.get("delta"), False)}[function]
    loss, grad = huber(part["input"], _broadcast(part, "target"), _broadcast(part, "weight"), delta, smooth)
    return {"loss": loss, "grad": grad}


@_outputs_of("focal")
def _focal_outputs(part):
    loss, grad = focal(part["inputs"], part["targets"], part.get("alpha", 0.25), part.get("gamma", 2.0))
    return {"loss": loss, "grad": grad}


@_outputs_of("pnll")
def _pnll_outputs(part):
    loss, grad = pnll(part["input"], _broadcast(part, "target"), part.get("log_input", True),
                      part.get("full", False), part.get("eps", 1e-8))
    return {"loss": loss, "grad": grad}


@_outputs_of("lse")
def _lse_outputs(part):
    x = np.asarray(part["input"])
    moved = np.moveaxis(x, class_axis(x), -1)
    lses, log_softmaxes, softmaxes = lse(moved.reshape(-1, moved.shape[-1]))

    def restore(values):
        return np.moveaxis(values.reshape(moved.shape), -1, class_axis(x))
    return {"lse": lses.reshape(moved.shape[:-1]), "log_softmax": restore(log_softmaxes),
            "softmax": restore(softmaxes)}
