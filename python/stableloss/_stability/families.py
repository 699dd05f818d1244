"""The inputs of each loss: its stability families, the adversarial inputs it is tested on, by name,
for float32 and float64; and its typical inputs, random data of the kind it sees in training, which the
benchmarks time.

``FAMILIES[stem][name](dtype, rng)`` returns a list of *parts*; each part is the keyword arguments of
one public call (``input``, ``target`` and the loss's options), with every float array already in
``dtype`` so that the oracle sees exactly the values the kernel sees.  :func:`build` seeds the
generator from the stem, name and dtype, so a family is the same in every run and for every backend.
Families are registered with ``@family(stem)``, typical inputs with ``@typical_of(stem)``.

Sizes are moderate on purpose: the mpmath oracle costs ~10 us per exp/log at 80 digits.
"""

import zlib

import numpy as np

#: stem -> family name -> builder(dtype, rng) -> list of parts.
FAMILIES = {}
#: stem -> maker(rng, shape, dtype, options) -> the keyword arguments of a typical call (with every
#: optional argument of the loss where ``options``).
TYPICAL = {}


def family(stem):
    """Register a stability family of ``stem`` under the builder's name."""
    def register(builder):
        FAMILIES.setdefault(stem, {})[builder.__name__] = builder
        return builder
    return register


def typical_of(stem):
    """Register the maker of ``stem``'s typical inputs."""
    def register(maker):
        TYPICAL[stem] = maker
        return maker
    return register


def input_of(part):
    """The differentiable input of a part (or of any public call's keyword arguments): its first argument,
    ``input`` (``inputs`` in torchvision's sigmoid_focal_loss)."""
    return next(iter(part.values()))


def typical(stem, shape, dtype, seed=0, options=False):
    """Typical inputs of ``stem`` of the given shape and float dtype (reproducible); with ``options``,
    every optional argument of the loss too (weights, label smoothing ...)."""
    return TYPICAL[stem](np.random.default_rng(seed), tuple(shape), np.dtype(dtype), options)


def build(stem, name, dtype):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(zlib.crc32(f"{stem}/{name}/{dtype.name}".encode()))
    return FAMILIES[stem][name](dtype, rng)


def _max(dtype):
    return float(np.finfo(dtype).max)


def _tiny(dtype):
    """The smallest positive subnormal."""
    return float(np.finfo(dtype).smallest_subnormal)


def _exp_limit(dtype):
    """log of the dtype's max: where a naive exp overflows (88.7 / 709.8)."""
    return float(np.log(np.finfo(dtype).max))


def _normal(rng, shape, scale, dtype):
    with np.errstate(over="ignore"):
        return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------------------------------
# Cross-entropy (also the logsumexp/log_softmax/softmax rows: see ``lse_rows``)

def _ce(x, target, **options):
    return dict(input=x, target=target, **options)


def _targets(rng, n, c):
    return rng.integers(0, c, n)


@family("ce")
def random_scales(dtype, rng):
    """Random logits N(0, s^2), s from 1e-3 to max/16 (differences overflow at the top)."""
    parts = []
    for scale in (1e-3, 1.0, 30.0, 1e3, 1e8, 1e30, _max(dtype) / 16):
        parts.append(_ce(_normal(rng, (6, 37), scale, dtype), _targets(rng, 6, 37)))
    return parts


@family("ce")
def sizes(dtype, rng):
    """Row lengths around SIMD widths and block sizes, C = 1 ... 4097."""
    return [_ce(_normal(rng, (3, c), 4.0, dtype), _targets(rng, 3, c))
            for c in (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 257, 1023, 4097)]


@family("ce")
def confident_correct(dtype, rng):
    """The target logit leads by a gap of 5 ... 110 (float32) / 760 (float64): losses down to the
    subnormal range (about 1e-300 and below in float64), gradients -t/S just as small."""
    gaps = np.geomspace(5.0, 110.0 if dtype == np.float32 else 760.0, 40)
    n, c = len(gaps), 17
    x = rng.standard_normal((n, c)) * 0.5
    y = _targets(rng, n, c)
    x[np.arange(n), y] = gaps + rng.standard_normal(n) * 0.5
    ties = x.copy()
    ties[:, 0] = ties[np.arange(n), y]  # tie between the target and class 0: loss >= log 2
    ties_y = np.where(y == 0, 1, y)
    ties[np.arange(n), ties_y] = ties[:, 0]
    return [_ce(x.astype(dtype), y), _ce(ties.astype(dtype), ties_y)]


@family("ce")
def confident_wrong(dtype, rng):
    """Another logit leads, at values near exp overflow (88.7 / 709.8) and beyond; target far below."""
    n, c = 30, 13
    top = _exp_limit(dtype) * rng.uniform(0.9, 1.3, n)
    x = rng.standard_normal((n, c))
    y = _targets(rng, n, c)
    k = (y + 1 + rng.integers(0, c - 1, n)) % c
    x[np.arange(n), k] = top
    x[np.arange(n), y] = np.choose(rng.integers(0, 3, n), [np.zeros(n), -top, top - 30.0])
    return [_ce(x.astype(dtype), y)]


@family("ce")
def common_offset(dtype, rng):
    """Huge common offset c with small differences: x_j = c + delta * N(0, 1)."""
    parts = []
    bits = np.finfo(dtype).nmant + 1
    for offset in (1e3, 1e6, 1e12, 1e30, _max(dtype) / 4):
        delta = max(1.0, offset * 2.0 ** (8 - bits))  # a few hundred ulps of the offset
        x = offset + rng.standard_normal((5, 29)) * delta
        parts.append(_ce(x.astype(dtype), _targets(rng, 5, 29)))
        parts.append(_ce((-x).astype(dtype), _targets(rng, 5, 29)))
    return parts


@family("ce")
def all_equal(dtype, rng):
    """Rows of one repeated value (p = 1/C exactly), C = 1 ... 1000."""
    values = np.array([0.0, 1.0, -7.5, 1e30, -1e30, _max(dtype), -_max(dtype), _tiny(dtype)])
    return [_ce(np.repeat(values[:, None], c, axis=1).astype(dtype), _targets(rng, len(values), c))
            for c in (1, 2, 3, 10, 1000)]


@family("ce")
def masked(dtype, rng):
    """About half of the non-target logits are -inf (masked classes)."""
    n, c = 20, 24
    x = _normal(rng, (n, c), 3.0, dtype)
    y = _targets(rng, n, c)
    mask = rng.uniform(size=(n, c)) < 0.5
    mask[np.arange(n), y] = False
    x[mask] = -np.inf
    return [_ce(x, y)]


@family("ce")
def only_target_unmasked(dtype, rng):
    """Every logit but the target's is -inf: loss 0, gradient 0."""
    parts = []
    for c in (2, 19):
        x = np.full((6, c), -np.inf)
        y = _targets(rng, 6, c)
        x[np.arange(6), y] = [0.0, 1.0, -1e30, 1e30, 55.5, -3.25]
        parts.append(_ce(x.astype(dtype), y))
    return parts


@family("ce")
def masked_target(dtype, rng):
    """The target logit is -inf: loss +inf, gradient finite (-w_y at the target)."""
    x = _normal(rng, (8, 11), 2.0, dtype)
    y = _targets(rng, 8, 11)
    x[np.arange(8), y] = -np.inf
    x[:2, :] = -np.inf
    x[:2, (y[:2] + 1) % 11] = 1.0  # one finite logit only
    return [_ce(x, y)]


@family("ce")
def wide(dtype, rng):
    """Wide rows, C = 8192 and 32771, moderate and wide logit spreads."""
    x = _normal(rng, (3, 8192), 1.0, dtype)
    x[1] *= 30
    return [_ce(x, _targets(rng, 3, 8192)), _ce(_normal(rng, (1, 32771), 2.0, dtype), _targets(rng, 1, 32771))]


@family("ce")
def peak_in_flat_wide(dtype, rng):
    """One peak of height g in a flat row of 8192 zeros; the target is the peak or a flat class."""
    heights = [1e-3, 1.0, 9.0, 20.0, 40.0, 0.9 * _exp_limit(dtype)]
    x = np.zeros((2 * len(heights), 8192))
    peaks = rng.integers(0, 8192, 2 * len(heights))
    x[np.arange(len(x)), peaks] = heights * 2
    y = peaks.copy()
    y[len(heights):] = (peaks[len(heights):] + 7) % 8192
    return [_ce(x.astype(dtype), y)]


@family("ce")
def nan_rows(dtype, rng):
    """NaN at the target, elsewhere, next to -inf: NaN loss and NaN gradient row."""
    x = _normal(rng, (6, 9), 2.0, dtype)
    y = _targets(rng, 6, 9)
    x[0, y[0]] = np.nan
    x[1, (y[1] + 1) % 9] = np.nan
    x[2, :] = np.nan
    x[3, :] = -np.inf
    x[3, (y[3] + 2) % 9] = np.nan
    return [_ce(x, y)]  # rows 4, 5 stay finite


@family("ce")
def all_neg_inf_rows(dtype, rng):
    """Rows of -inf only: NaN cross-entropy (as PyTorch), next to finite rows; logsumexp -inf."""
    x = _normal(rng, (5, 7), 1.0, dtype)
    x[1:4] = -np.inf
    return [_ce(x, _targets(rng, 5, 7))]


@family("ce")
def pos_inf_rows(dtype, rng):
    """A +inf logit gives NaN cross-entropy (as PyTorch); logsumexp +inf."""
    x = _normal(rng, (4, 7), 1.0, dtype)
    y = _targets(rng, 4, 7)
    x[0, y[0]] = np.inf
    x[1, (y[1] + 1) % 7] = np.inf
    x[2, :] = np.inf
    return [_ce(x, y)]


@family("ce")
def ignore_index(dtype, rng):
    """Ignored rows (default -100, a class index as ignore_index, ignored NaN rows): 0 and 0."""
    x = _normal(rng, (12, 10), 3.0, dtype)
    y = _targets(rng, 12, 10)
    y[::3] = -100
    x2 = _normal(rng, (12, 10), 3.0, dtype)
    y2 = _targets(rng, 12, 10)
    x2[y2 == 2] = np.nan
    y3 = np.full(4, -100)
    return [_ce(x, y), _ce(x2, y2, ignore_index=2), _ce(_normal(rng, (4, 10), 1.0, dtype), y3)]


@family("ce")
def weights(dtype, rng):
    """Class weights spread over e^{+-4} (and a zero weight) on random and confident rows."""
    c = 15
    w = np.exp(rng.standard_normal(c) * 2.0).astype(dtype)
    w[3] = 0.0
    x = _normal(rng, (16, c), 4.0, dtype)
    confident = x.copy()
    y = _targets(rng, 16, c)
    confident[np.arange(16), y] = 40.0 + rng.uniform(0, 30, 16)
    return [_ce(x, y, weight=w), _ce(confident.astype(dtype), y, weight=w)]


@family("ce")
def label_smoothing(dtype, rng):
    """Label smoothing 0.05, 0.3, 1 on random rows, with weights, 1e-3 on confident rows, and 0.1 on rows
    led by a class that holds nearly all of the class weight (its gradient a tiny difference)."""
    c = 21
    w = np.exp(rng.standard_normal(c)).astype(dtype)
    parts = [_ce(_normal(rng, (10, c), 3.0, dtype), _targets(rng, 10, c), label_smoothing=eps)
             for eps in (0.05, 0.3, 1.0)]
    parts.append(_ce(_normal(rng, (10, c), 3.0, dtype), _targets(rng, 10, c), weight=w, label_smoothing=0.1))
    confident = _normal(rng, (10, c), 0.5, dtype)
    y = _targets(rng, 10, c)
    confident[np.arange(10), y] = np.linspace(10.0, 60.0, 10)
    parts.append(_ce(confident, y, label_smoothing=1e-3))
    ignored = _targets(rng, 10, c)
    ignored[::2] = -100
    parts.append(_ce(_normal(rng, (10, c), 3.0, dtype), ignored, label_smoothing=0.2))
    # class 0 leads by 5 ... 80 (float32) / 600 (float64) and holds nearly all of the weight: its
    # gradient A p_0 - b_0 is a tiny difference, whether the target is class 0 or another
    gaps = np.geomspace(5.0, 80.0 if dtype == np.float32 else 600.0, 10)
    led = _normal(rng, (10, c), 0.5, dtype)
    led[:, 0] = gaps.astype(dtype)
    heavy = np.full(c, 1e-6, dtype)
    heavy[0] = 1.0
    off_target = 1 + _targets(rng, 10, c - 1)
    parts += [_ce(led, off_target, weight=heavy, label_smoothing=0.1),
              _ce(led, np.where(np.arange(10) % 2 == 0, 0, off_target), weight=heavy, label_smoothing=0.1)]
    return parts


@family("ce")
def masked_smoothing(dtype, rng):
    """Masked (-inf) non-target classes with label smoothing: +inf loss (as PyTorch), finite gradient."""
    x = _normal(rng, (6, 9), 2.0, dtype)
    y = _targets(rng, 6, 9)
    x[np.arange(6), (y + 1) % 9] = -np.inf
    return [_ce(x, y, label_smoothing=0.1)]


def _dirichlet(rng, shape, alpha, dtype):
    t = rng.gamma(alpha, size=shape)
    return (t / t.sum(axis=-1, keepdims=True)).astype(dtype)


@family("ce")
def prob_targets(dtype, rng):
    """Class-probability targets (Dirichlet), with weights and with label smoothing."""
    c = 19
    w = np.exp(rng.standard_normal(c)).astype(dtype)
    return [_ce(_normal(rng, (12, c), 3.0, dtype), _dirichlet(rng, (12, c), 0.5, dtype)),
            _ce(_normal(rng, (12, c), 3.0, dtype), _dirichlet(rng, (12, c), 1.0, dtype), weight=w),
            _ce(_normal(rng, (12, c), 3.0, dtype), _dirichlet(rng, (12, c), 1.0, dtype), label_smoothing=0.25)]


@family("ce")
def masked_prob_targets(dtype, rng):
    """Masked (-inf) classes that carry no target mass: 0 (-log 0) = 0, a finite loss (PyTorch: NaN),
    gradient 0 there; with weights, and with label smoothing (mass eps/C on every class: +inf)."""
    c = 9
    x = _normal(rng, (8, c), 2.0, dtype)
    t = _dirichlet(rng, (8, c), 1.0, np.float64)
    masked = rng.uniform(size=x.shape) < 0.4
    masked[:, 0] = False  # no all -inf row
    x[masked] = -np.inf
    t[masked] = 0.0
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    w = np.exp(rng.standard_normal(c)).astype(dtype)
    return [_ce(x, t), _ce(x, t, weight=w), _ce(x, t, label_smoothing=0.1)]


@family("ce")
def prob_targets_one_hot_confident(dtype, rng):
    """One-hot probability targets on confident rows: the probability-target gradient -t/S."""
    gaps = np.geomspace(5.0, 100.0 if dtype == np.float32 else 700.0, 16)
    n, c = len(gaps), 11
    x = rng.standard_normal((n, c)) * 0.5
    y = _targets(rng, n, c)
    x[np.arange(n), y] = gaps
    t = np.zeros((n, c))
    t[np.arange(n), y] = 1.0
    return [_ce(x.astype(dtype), t.astype(dtype))]


@family("ce")
def kdim(dtype, rng):
    """K-dimensional inputs (N, C, d1, d2) and (N, C, d1, d2, d3), index and probability targets,
    unbatched (C,) input with a 0-d target."""
    x = _normal(rng, (3, 5, 4, 3), 3.0, dtype)
    y = rng.integers(0, 5, (3, 4, 3))
    y[0, 0, :] = -100
    w = np.exp(rng.standard_normal(5)).astype(dtype)
    x5 = _normal(rng, (2, 4, 3, 2, 2), 3.0, dtype)
    t5 = np.moveaxis(_dirichlet(rng, (2, 3, 2, 2, 4), 1.0, dtype), -1, 1)
    return [_ce(x, y, weight=w), _ce(x5, np.ascontiguousarray(t5)),
            _ce(_normal(rng, (7,), 3.0, dtype), np.array(4))]


@family("ce")
def softcap_extremes(dtype, rng):
    """Soft-capped logits: +-1e30, +-inf (+-c: the limit, torch's value; a row of -inf is uniform), NaN,
    next to ordinary ones; caps from 1 (everything saturates) to 2^20 (hardly a cap) and beyond (float32:
    the double-double path), with label smoothing and probability targets."""
    n, c = 8, 7
    x = _normal(rng, (n, c), 40.0, dtype)
    x[0, :3] = [1e30, -1e30, np.inf]
    x[1, :] = -np.inf
    x[2, :2] = [np.inf, -np.inf]
    x[3, :] = np.inf
    x[4, 1] = np.nan
    x[5, :] = [1e30, 2e30, 3e30, 1e30, -1e30, 0.0, 5.0]  # ties after capping
    y = _targets(rng, n, c)
    y[2] = 0  # the +inf target: the max
    parts = [_ce(x, y, softcap=softcap) for softcap in (30.0, 1.0, 2.0**20, 3e6)]
    parts.append(_ce(x, y, softcap=50.0, label_smoothing=0.1, z_loss=1e-3))
    parts.append(_ce(x, _dirichlet(rng, (n, c), 1.0, dtype), softcap=30.0))
    return parts


@family("ce")
def softcap_confident(dtype, rng):
    """Confident rows after capping: the target's capped logit leads the others (all 0) by up to c = 30
    and, float64, c = 350 (losses down to 1e-300), where rounding x' to double would cost ulp(c)/2 in each
    difference; the same rows at C = 33 (the vector passes) and with a z-loss."""
    cap = 30.0 if dtype == np.float32 else 350.0
    gaps = np.geomspace(1.0, 8.0 * cap, 24)
    n, c = len(gaps), 9
    x = rng.standard_normal((n, c)) * 0.1
    y = _targets(rng, n, c)
    x[np.arange(n), y] = gaps
    wide = np.zeros((n, 33))
    wide[np.arange(n), y] = gaps
    return [_ce(x.astype(dtype), y, softcap=cap), _ce(wide.astype(dtype), y, softcap=cap),
            _ce(x.astype(dtype), y, softcap=cap, z_loss=1e-4)]


@family("ce")
def z_loss_rows(dtype, rng):
    """z-loss 1e-4 on random rows, with class weights and ignored rows, with label smoothing and probability
    targets; large lse (logits of 1e3, 1e30 and, float64, 1e150 and 1e200, whose lse^2 overflows) and
    negative lse (rows near -60 and, float64, -1e30)."""
    c = 11
    w = np.exp(rng.standard_normal(c)).astype(dtype)
    y = _targets(rng, 10, c)
    y[::4] = -100
    parts = [_ce(_normal(rng, (10, c), 3.0, dtype), y, z_loss=1e-4, weight=w),
             _ce(_normal(rng, (10, c), 3.0, dtype), _targets(rng, 10, c), z_loss=1e-2, label_smoothing=0.1),
             _ce(_normal(rng, (10, c), 3.0, dtype), _dirichlet(rng, (10, c), 1.0, dtype), z_loss=1e-3)]
    for offset in (1e3, 1e30, -60.0) + ((1e150, 1e200, -1e30) if dtype == np.float64 else ()):
        x = offset + rng.standard_normal((6, c)) * (3.0 if abs(offset) < 1e4 else abs(offset) * 1e-3)
        parts.append(_ce(x.astype(dtype), _targets(rng, 6, c), z_loss=1e-4))
    return parts


@family("ce")
def z_loss_cancelling(dtype, rng):
    """The z-loss gradient's differences where they cancel, z = 0.01: f = 1 + 2 z lse near 0
    (lse = -1/(2z)); at a target holding the max, 2 z lse - s near 0 (s = 2 z lse); at a target off the
    max, p_y f - 1 near 0 (f = 1/p_y >= 2); each row solved in float64 (x = t + fixed offsets) and rounded
    to the dtype (float32: the differences cancel to ~2^-24 of their terms), float64 rows moved by 2^-40
    of t (to ~2^-40: a cancellation to the last bits of float64 inputs is beyond the double-double sums
    that resolve these, docs/design.md), with and without a softcap."""
    c, z = 6, 0.01
    rows, targets = [], []
    for spread in (0.5, 2.0, 7.0):
        offsets = -spread * np.arange(c)  # lse = t + log(sum_j e^{offsets_j}), s = sum_{j > 0} e^{offsets_j}
        rows.append(-1.0 / (2 * z) - np.log(np.sum(np.exp(offsets))) + offsets)  # f = 0
        for scale in (1.0, 1e-3):
            gaps = np.concatenate([[0.0], offsets[1:] + np.log(scale)])
            s = np.sum(np.exp(gaps[1:]))
            rows.append(s / (2 * z) - np.log1p(s) + gaps)  # 2 z lse = s
        targets += [rng.integers(0, c), 0, 0]
    for gap in (0.1, 1.0):  # two leading classes: p_y = 1/(1 + e^gap) + ..., f = 1/p_y
        offsets = np.array([0.0, -gap] + [-30.0] * (c - 2))
        p_y = np.exp(offsets[1]) / np.sum(np.exp(offsets))
        lse = (1.0 / p_y - 1.0) / (2 * z)
        rows.append(lse - np.log(np.sum(np.exp(offsets))) + offsets)
        targets.append(1)
    x, y = np.array(rows), np.array(targets)
    if dtype == np.float64:
        x += 2.0**-40 * np.abs(x[:, :1])
    x = x.astype(dtype)
    return [_ce(x, y, z_loss=z), _ce(x, y, z_loss=z, softcap=1e4)]


# ---------------------------------------------------------------------------------------------------
# Negative log-likelihood (log-probability inputs)

def _nll(x, target, **options):
    return dict(input=x, target=target, **options)


def _log_probabilities(rng, shape, scale, dtype):
    """log_softmax rows (class axis 1) of N(0, scale^2) logits, computed in float64."""
    logits = np.moveaxis(rng.standard_normal(shape) * scale, 1, -1)
    rows = _log_softmax_rows(logits.reshape(-1, shape[1])).reshape(logits.shape)
    return np.ascontiguousarray(np.moveaxis(rows, -1, 1)).astype(dtype)


@family("nll")
def log_probabilities(dtype, rng):
    """log_softmax rows of logits at scales 1e-3 ... 100 (log-probabilities from about -1e-3 down to
    about -500), C = 1 ... 33 around the lanes, row counts off the lanes."""
    return [_nll(_log_probabilities(rng, (n, c), scale, dtype), _targets(rng, n, c))
            for n, c, scale in ((5, 1, 1.0), (13, 2, 1e-3), (19, 7, 3.0), (9, 9, 30.0), (11, 17, 100.0), (6, 33, 10.0))]


@family("nll")
def magnitudes(dtype, rng):
    """x_y over the whole range: -0, 0, subnormals, every binade up to -max; with weights over e^+-4 the
    products leave the range at both ends (subnormal; beyond max: +inf), and near -max with weights up
    to 8 every product but few overflows where the mean does not."""
    n, c = 120, 5
    finfo = np.finfo(dtype)
    exponents = rng.uniform(np.log2(_tiny(dtype)), finfo.maxexp, n)
    x = np.full((n, c), -1.0)
    y = _targets(rng, n, c)
    x[np.arange(n), y] = -np.minimum(np.exp2(exponents) * rng.uniform(1.0, 2.0, n), _max(dtype))
    x[np.arange(3), y[:3]] = [-0.0, 0.0, -_tiny(dtype)]
    w = np.exp(rng.standard_normal(c) * 2.0).astype(dtype)
    top = -_max(dtype) * rng.uniform(0.5, 1.0, (20, 3))
    return [_nll(x.astype(dtype), y), _nll(x.astype(dtype), y, weight=w),
            _nll(top.astype(dtype), _targets(rng, 20, 3), weight=np.array([8.0, 2.0, 0.5], dtype))]


@family("nll")
def weights(dtype, rng):  # noqa: F811
    """Class weights over e^+-4 and a zero weight on log-probability rows; weights of total near the
    smallest subnormal and near the largest value (the weighted mean rescales them)."""
    c = 15
    x = _log_probabilities(rng, (24, c), 3.0, dtype)
    y = _targets(rng, 24, c)
    w = np.exp(rng.standard_normal(c) * 2.0).astype(dtype)
    w[3] = 0.0
    tiny = np.full(c, _tiny(dtype), dtype)
    tiny[::2] *= 3
    huge = rng.uniform(0.25, 1.0, c) * _max(dtype) / 32
    return [_nll(x, y, weight=w), _nll(x, y, weight=tiny), _nll(x, y, weight=huge.astype(dtype))]


@family("nll")
def special_inputs(dtype, rng):
    """Only x_y is read, as PyTorch: -inf at the target gives +inf, NaN gives NaN, +inf gives -inf;
    NaN and +-inf elsewhere in the row change nothing; a zero weight at -inf gives NaN (0 inf), an
    infinite one at 0 too; the gradient is -w_y whatever x_y."""
    x = _log_probabilities(rng, (10, 4), 2.0, np.float64)
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 1, 2])
    x[np.arange(4), y[:4]] = [-np.inf, np.nan, np.inf, -np.inf]
    x[4, 1:] = np.nan
    x[5, [0, 2]] = [np.inf, -np.inf]
    x[7, 3] = -np.inf  # class 3: weight 0 below
    weighted = x.copy()
    weighted[8, 1] = 0.0  # class 1: weight inf, inf 0 = NaN
    w = np.array([1.0, np.inf, 2.0, 0.0])
    return [_nll(x.astype(dtype), y), _nll(weighted.astype(dtype), y, weight=w.astype(dtype))]


@family("nll")
def ignore_index(dtype, rng):  # noqa: F811 (one name per stem)
    """Ignored rows (default -100, a class index as ignore_index, ignored rows holding NaN and -inf at
    the ignored class, every row ignored): 0 and 0."""
    x = _log_probabilities(rng, (12, 10), 3.0, dtype)
    y = _targets(rng, 12, 10)
    y[::3] = -100
    y2 = _targets(rng, 12, 10)
    x2 = x.copy()
    x2[y2 == 2] = np.nan
    x2[y2 == 2, 2] = -np.inf
    return [_nll(x, y), _nll(x2, y2, ignore_index=2), _nll(x[:4], np.full(4, -100))]


@family("nll")
def kdim(dtype, rng):  # noqa: F811
    """K-dimensional inputs (N, C, d1, d2) with weights and ignored positions, (N, C, d1, d2, d3), and an
    unbatched (C,) input with a 0-d target."""
    y = rng.integers(0, 5, (3, 4, 3))
    y[0, 0, :] = -100
    w = np.exp(rng.standard_normal(5)).astype(dtype)
    return [_nll(_log_probabilities(rng, (3, 5, 4, 3), 3.0, dtype), y, weight=w),
            _nll(_log_probabilities(rng, (2, 4, 3, 2, 2), 3.0, dtype), rng.integers(0, 4, (2, 3, 2, 2))),
            _nll(_log_probabilities(rng, (1, 7), 3.0, dtype)[0], np.array(4))]


@family("nll")
def wide(dtype, rng):  # noqa: F811
    """Wide rows, C = 8192 and 32771: gradient rows of thousands of zeros and one entry."""
    return [_nll(_log_probabilities(rng, (3, 8192), 2.0, dtype), _targets(rng, 3, 8192)),
            _nll(_log_probabilities(rng, (1, 32771), 2.0, dtype), _targets(rng, 1, 32771))]


# ---------------------------------------------------------------------------------------------------
# BCE with logits

def _bce(x, y, **options):
    return dict(input=x, target=y, **options)


def _bce_grid(dtype):
    magnitudes = [0.0, 1e-30, 1e-8, 1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 17.0, 20.0, 30.0, 37.0, 40.0,
                  50.0, 88.0, 100.0, 500.0, 700.0, 750.0, 1e4, 1e10, 1e30, _max(dtype), np.inf]
    x = np.array(sorted(set(magnitudes) | {-m for m in magnitudes}))
    labels = np.array([0.0, 1.0, 0.5, 0.3, 0.9, 1e-7, 1.0 - 2.0**-20])
    return x, labels


@family("bce")
def grid(dtype, rng):
    """Logits 0 ... +-1e30, +-max, +-inf against labels {0, 1, soft, tiny} and pos_weight {1, 3, 1000}
    (broadcast along the last axis), without and with element weights."""
    x, labels = _bce_grid(dtype)
    shape = (len(x), len(labels), 3)
    inputs = np.broadcast_to(x[:, None, None], shape).astype(dtype)
    targets = np.broadcast_to(labels[None, :, None], shape).astype(dtype)
    pos_weight = np.array([1.0, 3.0, 1000.0], dtype)
    weight = np.exp(rng.standard_normal(shape) * 2.0).astype(dtype)
    return [_bce(inputs, targets, pos_weight=pos_weight), _bce(inputs, targets, weight=weight, pos_weight=pos_weight),
            _bce(inputs, targets)]


@family("bce")
def tails(dtype, rng):
    """Confident predictions in both tails (y = 0 with x << 0, y = 1 with x >> 0, and wrong ones):
    losses and gradients down to the subnormal range; also weighted by w pw = 2000, where w pw e^-|x|
    is normal although e^-|x| is not (float64 |x| > 700)."""
    g = np.geomspace(5.0, 110.0 if dtype == np.float32 else 760.0, 60)
    x = np.concatenate([g, -g, g, -g]).astype(dtype)
    y = np.concatenate([np.ones(60), np.zeros(60), np.zeros(60), np.ones(60)]).astype(dtype)
    return [_bce(x, y), _bce(x, y, weight=np.full_like(x, 2.0), pos_weight=np.full_like(x, 1000.0))]


@family("bce")
def hard_labels(dtype, rng):
    """Hard labels 0 and 1 against logits dense over [-90, 90] (long runs within |x| <= 86, the
    float32 lane path of the C kernels, and its edge), unweighted and with weights and pos_weight."""
    n = 4000
    x = np.concatenate([rng.uniform(-90.0, 90.0, n // 2),
                        rng.choice([-1.0, 1.0], n // 2) * np.geomspace(1e-6, 86.0, n // 2)])
    y = rng.integers(0, 2, n).astype(np.float64)
    w = np.exp(rng.standard_normal(n))
    pw = np.exp(rng.standard_normal(n) * 2)
    return [_bce(x.astype(dtype), y.astype(dtype)),
            _bce(x.astype(dtype), y.astype(dtype), weight=w.astype(dtype), pos_weight=pw.astype(dtype))]


@family("bce")
def random_soft(dtype, rng):
    """Random logits over many scales, soft labels, weights and pos_weight."""
    n = 1500
    x = rng.standard_normal(n) * np.exp(rng.uniform(-5, 5, n))
    y = rng.uniform(size=n)
    w = np.exp(rng.standard_normal(n))
    pw = np.exp(rng.standard_normal(n) * 2)
    return [_bce(x.astype(dtype), y.astype(dtype), weight=w.astype(dtype), pos_weight=pw.astype(dtype))]


@family("bce")
def tiny_logits(dtype, rng):
    """Soft labels at logits down to the smallest subnormal, where the gradient w (c0/2 + s x/4)
    (c0 = 1 - y - pw y, s = 1 - y + pw y) is all in its x term (y = 1/2 or c0 ~ 2^-54) and that term
    lies below the normal range, for weights from 1e-300 to 2^400."""
    tiny = np.finfo(dtype).smallest_subnormal
    g = np.geomspace(float(tiny), 1e-20, 12)
    x = np.concatenate([g, -g])
    y = np.array([0.5, 1.0 / 3.0, 0.25])  # with pw = 2, 1 - y - pw y is 2^-54 at y = 1/3 (rounded)
    w = np.array([1.0, 9.0, 2.0**400 if dtype == np.float64 else 3e30, 1e-300 if dtype == np.float64 else 1e-30])
    shape = (len(x), len(y), len(w))
    grid = [np.broadcast_to(a, shape).astype(dtype) for a in (x[:, None, None], y[None, :, None], w[None, None, :])]
    return [_bce(grid[0], grid[1], weight=grid[2], pos_weight=np.full(shape, 2.0, dtype)),
            _bce(grid[0], grid[1], weight=grid[2])]


@family("bce")
def nan_inputs(dtype, rng):  # noqa: F811
    """NaN logits or labels give NaN."""
    x = np.array([np.nan, 1.0, np.nan, -np.inf, np.inf, 0.5])
    y = np.array([0.5, np.nan, 0.0, np.nan, np.nan, 0.5])
    return [_bce(x.astype(dtype), y.astype(dtype))]


# ---------------------------------------------------------------------------------------------------
# Gaussian NLL (eps = 2**-20 where the clamp matters, so that it is a float32 value as well)

EPS = 2.0**-20


def _gnll(x, t, var, **options):
    return dict(input=x, target=t, var=var, **options)


def _log_uniform(rng, low, high, n):
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


@family("gnll")
def variance_range(dtype, rng):
    """Variances from 1e-8 to near max, residuals from 1e-3 to 1e3 standard deviations."""
    n = 1500
    var = _log_uniform(rng, 1e-8, _max(dtype) / 4, n)
    t = rng.standard_normal(n) * np.sqrt(var)
    d = rng.standard_normal(n) * np.sqrt(var) * _log_uniform(rng, 1e-3, 1e3, n)
    with np.errstate(over="ignore"):
        x = (t + d).astype(dtype)
    x = np.where(np.isfinite(x), x, t).astype(dtype)
    return [_gnll(x, t.astype(dtype), var.astype(dtype), eps=EPS)]


@family("gnll")
def standardized(dtype, rng):
    """The everyday case: residuals of about one standard deviation, variances around 1 (the
    gradient w.r.t. var, (1/v - d^2/v^2)/2, crosses 0 at d^2 = v)."""
    n = 1000
    var = np.exp(rng.standard_normal(n))
    x = rng.standard_normal(n) * 3
    t = x + rng.standard_normal(n) * np.sqrt(var)
    return [_gnll(x.astype(dtype), t.astype(dtype), var.astype(dtype)),
            _gnll(x.astype(dtype), t.astype(dtype), var.astype(dtype), full=True)]


@family("gnll")
def overflowing_residual(dtype, rng):
    """(x - t)^2 overflows while (x - t)^2 / var is finite (and some where the quotient overflows)."""
    big = _max(dtype)
    if dtype == np.float32:
        xs = np.array([1e20, 1e25, 1e30, 1e36, -1e36])
        var = np.array([1e35, 1e38, 3e38, big, 1e30])
    else:
        xs = np.array([1e160, 1e200, 1e250, 8e307, -1e300])
        var = np.array([1e300, 1e308, big, big, 1e200])
    x = np.concatenate([xs, xs])
    t = np.concatenate([-xs, xs * 0.5])
    v = np.concatenate([var, var])
    return [_gnll(x.astype(dtype), t.astype(dtype), v.astype(dtype), eps=EPS)]


@family("gnll")
def overflowing_difference(dtype, rng):
    """x - t itself beyond the dtype's max (float32 computes in double: fine; float64 must scale):
    d / var is finite, the loss overflows to inf."""
    big = _max(dtype)
    x = np.array([0.9, 0.75, 0.6]) * big
    return [_gnll(x.astype(dtype), (-x).astype(dtype), np.full(3, big, dtype), eps=EPS)]


@family("gnll")
def zero_residual(dtype, rng):
    """x == t: loss log(v)/2, gradient 0 w.r.t. input, 1/(2v) w.r.t. var."""
    n = 200
    x = (rng.standard_normal(n) * _log_uniform(rng, 1e-30, 1e30, n)).astype(dtype)
    var = _log_uniform(rng, 1e-8, _max(dtype) / 4, n).astype(dtype)
    return [_gnll(x, x.copy(), var, eps=EPS)]


@family("gnll")
def below_eps(dtype, rng):
    """Variances at and below eps (0 included): the value is clamped, the var gradient passes
    straight through at the clamped value.  eps = 2**-20 and the default 1e-6 (float64 only: the
    default is not a float32 number)."""
    eps_values = [EPS] + ([1e-6] if dtype == np.float64 else [])
    parts = []
    for eps in eps_values:
        factors = np.array([0.0, 1e-3, 0.5, 1.0 - 2.0**-20, 1.0, 1.0 + 2.0**-20, 2.0])
        residuals = np.array([0.0, 1e-4, 1e-3, 1.0, 100.0])
        var = np.repeat(eps * factors, len(residuals))
        d = np.tile(residuals, len(factors))
        t = rng.standard_normal(len(var))
        parts.append(_gnll((t + d).astype(dtype), t.astype(dtype), var.astype(dtype), eps=eps))
    return parts


@family("gnll")
def var_per_row(dtype, rng):
    """var of the input's shape without its last dim: one variance per row (gradient summed per row)."""
    var = np.exp(rng.standard_normal(12))
    x = rng.standard_normal((12, 7))
    t = x + rng.standard_normal((12, 7)) * np.sqrt(var)[:, None] * 0.3
    return [_gnll(x.astype(dtype), t.astype(dtype), var.astype(dtype), eps=EPS)]


@family("gnll")
def var_broadcast(dtype, rng):
    """var of the input's shape with one dimension of size 1, as PyTorch allows: (1, 3, 5), (4, 1, 5) and
    (4, 3, 1) against (4, 3, 5); and (4, 3), one variance per row."""
    x = rng.standard_normal((4, 3, 5))
    t = x + rng.standard_normal((4, 3, 5)) * 0.3
    parts = []
    for shape in ((1, 3, 5), (4, 1, 5), (4, 3, 1), (4, 3)):
        var = np.exp(rng.standard_normal(shape))
        parts.append(_gnll(x.astype(dtype), t.astype(dtype), var.astype(dtype), eps=EPS))
    return parts


@family("gnll")
def var_float(dtype, rng):
    """var a Python float (its gradient is the sum over all elements)."""
    x = rng.standard_normal((6, 5))
    t = x + rng.standard_normal((6, 5)) * 0.3
    return [_gnll(x.astype(dtype), t.astype(dtype), 0.75, eps=EPS),
            _gnll(x.astype(dtype), t.astype(dtype), 2.0**-30, eps=EPS)]


@family("gnll")
def nan_inputs(dtype, rng):  # noqa: F811
    """NaN input, target or var gives NaN."""
    x = np.array([np.nan, 1.0, 1.0, 2.0])
    t = np.array([0.0, np.nan, 0.0, 1.0])
    var = np.array([1.0, 1.0, np.nan, 0.5])
    return [_gnll(x.astype(dtype), t.astype(dtype), var.astype(dtype), eps=EPS)]


# ---------------------------------------------------------------------------------------------------
# KL divergence (input = log q)

def _kl(q_log, target, **options):
    return dict(input=q_log, target=target, **options)


def _log(values, dtype):
    with np.errstate(divide="ignore"):
        return np.log(values.astype(np.float64)).astype(dtype)


@family("kl")
def random_distributions(dtype, rng):
    """Random p and q (Dirichlet rows): input = log q, target p (and log p with log_target)."""
    p = _dirichlet(rng, (20, 30), 0.7, np.float64)
    q = _dirichlet(rng, (20, 30), 0.7, np.float64)
    return [_kl(_log(q, dtype), p.astype(dtype)), _kl(_log(q, dtype), _log(p, dtype), log_target=True)]


@family("kl")
def close(dtype, rng):
    """p close to q: input = log p rounded to the dtype, and log(p (1 + delta)) for small delta
    (the cancelling case; float64 has the relative 1e-12 exception there)."""
    p = _dirichlet(rng, (10, 40), 1.0, np.float64).astype(dtype).astype(np.float64)
    deltas = (1e-3, 1e-6) if dtype == np.float32 else (1e-3, 1e-9, 1e-14)
    parts = [_kl(_log(p, dtype), p.astype(dtype))]
    for delta in deltas:
        perturbed = p * (1 + delta * rng.choice([-1.0, 1.0], p.shape))
        parts.append(_kl(_log(perturbed, dtype), p.astype(dtype)))
    parts.append(_kl(_log(p, dtype), _log(p, dtype), log_target=True))
    return parts


@family("kl")
def zero_targets(dtype, rng):
    """p = 0 (log p = -inf) terms are 0 with gradient 0, also where the input is -inf."""
    p = _dirichlet(rng, (10, 12), 0.7, np.float64)
    p[rng.uniform(size=p.shape) < 0.3] = 0.0
    q_log = _log(_dirichlet(rng, (10, 12), 0.7, np.float64), dtype)
    q_log[(p == 0) & (rng.uniform(size=p.shape) < 0.5)] = -np.inf
    return [_kl(q_log, p.astype(dtype)), _kl(q_log, _log(p, dtype), log_target=True)]


@family("kl")
def subnormal_targets(dtype, rng):
    """Subnormal p (and log p where e^{log p} is subnormal), inputs from 0 down to -1e4."""
    n = 300
    tiny, smallest_normal = _tiny(dtype), float(np.finfo(dtype).tiny)
    p = _log_uniform(rng, tiny, smallest_normal, n).astype(dtype)
    q_log = -_log_uniform(rng, 1e-3, 1e4, n)
    log_p = rng.uniform(np.log(tiny), np.log(smallest_normal), n)
    return [_kl(q_log.astype(dtype), p), _kl(q_log.astype(dtype), log_p.astype(dtype), log_target=True)]


@family("kl")
def very_negative_inputs(dtype, rng):
    """log q from -10 down to -1e30 and -max."""
    n = 200
    q_log = -_log_uniform(rng, 10.0, 1e30, n)
    q_log[:5] = -_max(dtype)
    p = rng.uniform(size=n)
    return [_kl(q_log.astype(dtype), p.astype(dtype)), _kl(q_log.astype(dtype), _log(p, dtype), log_target=True)]


@family("kl")
def special_values(dtype, rng):
    """NaN in gives NaN, also against p = 0 (0 log 0 = 0 holds for log q a number or -inf, not for NaN
    or +inf); p < 0 and p = +inf give NaN; input -inf with p > 0 gives +inf."""
    q_log = np.array([np.nan, -1.0, -1.0, -np.inf, -2.0, np.nan, np.inf, -np.inf, 0.0, -1.0])
    p = np.array([0.5, np.nan, -0.25, 0.5, 0.25, 0.0, 0.0, 0.0, np.inf, np.inf])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.log(p)
    return [_kl(q_log.astype(dtype), p.astype(dtype)), _kl(q_log.astype(dtype), log_p.astype(dtype), log_target=True)]


# ---------------------------------------------------------------------------------------------------
# MSE

def _mse(x, t, **options):
    return dict(input=x, target=t, **options)


@family("mse")
def random_scales(dtype, rng):  # noqa: F811 (one name per stem)
    """Random x, t at scales 1e-30 ... 1e15."""
    return [_mse(_normal(rng, 300, s, dtype), _normal(rng, 300, s, dtype)) for s in (1e-30, 1e-3, 1.0, 1e3, 1e15)]


@family("mse")
def near_overflow(dtype, rng):
    """|x - t| around sqrt(max): the square crosses the overflow threshold (exact value inf above)."""
    root = np.sqrt(_max(dtype))
    d = root * np.geomspace(0.25, 4.0, 200) * rng.choice([-1.0, 1.0], 200)
    t = rng.standard_normal(200)
    return [_mse((t + d).astype(dtype), t.astype(dtype)), _mse((d / 2).astype(dtype), (-d / 2).astype(dtype))]


@family("mse")
def weighted(dtype, rng):
    """Element weights spread over e^{+-4}, and a zero weight."""
    x = _normal(rng, (20, 15), 3.0, dtype)
    t = _normal(rng, (20, 15), 3.0, dtype)
    w = np.exp(rng.standard_normal((20, 15)) * 2).astype(dtype)
    w[0, 0] = 0.0
    return [_mse(x, t, weight=w)]


@family("mse")
def nearly_equal(dtype, rng):
    """x close to t (the difference is exact, its square must not lose it)."""
    t = rng.standard_normal(300) * 10
    eps = np.finfo(dtype).eps
    x = t * (1 + eps * rng.integers(-100, 100, 300))
    return [_mse(x.astype(dtype), t.astype(dtype))]


@family("mse")
def special_values(dtype, rng):  # noqa: F811
    """inf - finite gives inf, inf - inf and NaN give NaN."""
    x = np.array([np.inf, -np.inf, np.inf, np.nan, 1.0])
    t = np.array([1.0, 1.0, np.inf, 0.0, np.nan])
    return [_mse(x.astype(dtype), t.astype(dtype))]


# ---------------------------------------------------------------------------------------------------
# Huber, smooth L1, L1: one kernel; a part holding beta calls smooth_l1_loss, delta huber_loss, neither
# l1_loss (the declaration's variants)

def _l1(x, t, **options):
    return dict(input=x, target=t, **options)


def _smooth(x, t, beta, **options):
    return dict(input=x, target=t, beta=beta, **options)


def _huber(x, t, delta, **options):
    return dict(input=x, target=t, delta=delta, **options)


def _three(x, t, threshold, weight=None):
    """The same x, t through l1_loss, smooth_l1_loss (beta = threshold) and huber_loss (delta =
    threshold), l1 and huber with ``weight`` where given."""
    weighted = {} if weight is None else {"weight": weight}
    return [_l1(x, t, **weighted), _smooth(x, t, threshold), _huber(x, t, threshold, **weighted)]


def _spread(rng, center, n, decades, dtype):
    """n values of random sign, log-uniform within ``decades`` around ``center`` (inf beyond the range)."""
    with np.errstate(over="ignore"):
        magnitude = center * 10.0 ** rng.uniform(-decades, decades, n)
        return (magnitude * rng.choice([-1.0, 1.0], n)).astype(dtype)


@family("huber")
def random_scales(dtype, rng):  # noqa: F811 (one name per stem)
    """Random x, t at scales 1e-30, 1, 1e15, the threshold at the scale: both branches."""
    parts = []
    for scale in (1e-30, 1.0, 1e15):
        parts += _three(_normal(rng, 150, scale, dtype), _normal(rng, 150, scale, dtype), scale)
    return parts


@family("huber")
def kinks(dtype, rng):
    """|x - t| at the threshold (exactly, a few ulps either side, and a float64 x - t that rounds to it
    but is not it), and x = t: beta 1, delta 1 and 0.1, beta 0 (l1 through smooth_l1_loss), l1."""
    eps = float(np.finfo(dtype).eps)
    steps = np.array([-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3])
    parts = []
    for threshold in (1.0, 0.1):
        c = float(dtype.type(threshold))  # a threshold of the dtype: |x - t| can equal it
        d = np.concatenate([c * (1 + steps * eps), -c * (1 + steps * eps), [0.0, -0.0]])
        exact_t = rng.integers(-64, 64, d.size) / 8.0  # x - t exact: |d| = c exactly where d is
        rounded_t = _normal(rng, d.size, 3.0, dtype).astype(np.float64)  # x - t need not be d
        t = np.concatenate([exact_t, rounded_t]).astype(dtype)
        x = (t.astype(np.float64) + np.concatenate([d, d])).astype(dtype)
        parts += [_smooth(x, t, c), _huber(x, t, c)]
    parts += [_smooth(x, t, 0.0), _l1(x, t)]
    return parts


@family("huber")
def thresholds(dtype, rng):
    """Thresholds from the smallest subnormal to near the dtype's max, |x - t| within 3 decades of
    them (both branches at every scale) and a few 20 decades above (so that the sums are normal: a
    subnormal term carries its rounding into the sum)."""
    parts = []
    for threshold in (_tiny(dtype), 1e-30, 1e-8, 1e8, 1e30, _max(dtype) / 4):
        d = _spread(rng, threshold, 60, 3, np.float64)
        with np.errstate(over="ignore"):
            d[:3] *= 1e20
        d = np.clip(d, -_max(dtype) / 2, _max(dtype) / 2)
        t = np.clip(rng.standard_normal(60) * threshold, -_max(dtype) / 4, _max(dtype) / 4).astype(dtype)
        x = (t.astype(np.float64) + d).astype(dtype)
        parts += [_smooth(x, t, threshold), _huber(x, t, threshold)]
    return parts


@family("huber")
def tiny_differences(dtype, rng):
    """|x - t| around the square root of the smallest normal: d^2/2 subnormal; against a small beta
    d^2/(2 beta) is normal again, and with weights up to 2^60 so is w d^2/2."""
    root = np.sqrt(float(np.finfo(dtype).tiny))
    x = _spread(rng, root, 200, 2, dtype)
    t = np.zeros(200, dtype)
    t[::2] = (x[::2].astype(np.float64) * 0.5).astype(dtype)
    weight = (2.0 ** rng.uniform(0, 60, 200)).astype(dtype)
    return [_smooth(x, t, root * 1e-2), _smooth(x, t, root * 1e3), _huber(x, t, 1.0),
            _huber(x, t, 1.0, weight=weight), _l1(x, t, weight=weight)]


@family("huber")
def near_overflow(dtype, rng):  # noqa: F811
    """d^2/2 (delta above |d|) and delta (|d| - delta/2) (delta = sqrt(max)) crossing the top of the
    range, unweighted (the mean overflows too), and weighted so that every weighted term is finite
    although the unweighted one overflows."""
    root = np.sqrt(_max(dtype))
    d = root * np.geomspace(0.5, 4.0, 100) * rng.choice([-1.0, 1.0], 100)
    t = rng.standard_normal(100)
    x, t = (t + d).astype(dtype), t.astype(dtype)
    quadratic_weight = (rng.uniform(0.5, 1.0, 100) * (root / d) ** 2).astype(dtype)  # w d^2/2 <= max/2
    linear_weight = (rng.uniform(0.5, 1.0, 100) * root / (4 * np.abs(d))).astype(dtype)  # w delta |d| <= max/4
    return [_huber(x, t, 8 * root), _huber(x, t, 8 * root, weight=quadratic_weight), _huber(x, t, root),
            _huber(x, t, root, weight=linear_weight)]


@family("huber")
def overflowing_difference(dtype, rng):
    """x - t beyond the dtype's max with x, t finite (float32 computes in double; float64 must halve):
    l1 with weights below 1/2 (finite), smooth_l1 (inf), huber with small deltas (finite) and beta,
    delta = inf (d^2/(2 beta) = 0, d^2/2 = inf)."""
    big = _max(dtype)
    x = np.array([0.9, 0.75, 0.6, 0.55, -0.8, -0.51]) * big
    t = -x * np.array([1.0, 0.9, 1.0, 0.95, 0.7, 1.0])
    x, t = x.astype(dtype), t.astype(dtype)
    weight = np.array([0.25, 0.5, 0.1, 0.4, 2**-10, 0.3], dtype)
    return [_l1(x, t, weight=weight), _smooth(x, t, 1.0), _smooth(x, t, np.inf), _huber(x, t, 0.25),
            _huber(x, t, 2**-10, weight=weight), _huber(x, t, np.inf)]


@family("huber")
def weighted(dtype, rng):
    """Element weights spread over e^{+-4}, and a zero weight: l1 (mean over the weights' sum) and
    huber (mean over the number of elements, as torch)."""
    x = _normal(rng, (20, 15), 3.0, dtype)
    t = _normal(rng, (20, 15), 3.0, dtype)
    w = np.exp(rng.standard_normal((20, 15)) * 2).astype(dtype)
    w[0, 0] = 0.0
    return [_l1(x, t, weight=w), _huber(x, t, 1.5, weight=w)]


@family("huber")
def nearly_equal(dtype, rng):  # noqa: F811
    """x close to t (the difference is exact, the forms must not lose it)."""
    t = rng.standard_normal(200) * 10
    eps = np.finfo(dtype).eps
    x = (t * (1 + eps * rng.integers(-100, 100, 200))).astype(dtype)
    return _three(x, t.astype(dtype), 1.0)


@family("huber")
def special_values(dtype, rng):  # noqa: F811
    """inf - finite gives inf (NaN against a zero weight or an infinite threshold, as torch), inf - inf
    and NaN give NaN; beta = inf gives 0 for finite d."""
    x = np.array([np.inf, -np.inf, np.inf, np.nan, 1.0, 2.0, -np.inf, 3.0])
    t = np.array([1.0, 1.0, np.inf, 0.0, np.nan, 1.0, 5.0, 3.0])
    w = np.array([1.0, 0.0, 1.0, 1.0, 1.0, np.inf, 2.0, np.inf])
    x, t, w = x.astype(dtype), t.astype(dtype), w.astype(dtype)
    return [_l1(x, t), _l1(x, t, weight=w), _smooth(x, t, 0.0), _smooth(x, t, 1.0), _smooth(x, t, np.inf),
            _huber(x, t, 1.0, weight=w), _huber(x, t, np.inf)]
# Sigmoid focal loss (torchvision's argument names: inputs, targets)

def _focal(x, t, **options):
    return dict(inputs=x, targets=t, **options)


@family("focal")
def grid(dtype, rng):  # noqa: F811 (one name per stem)
    """Logits 0 ... +-1e30, +-max, +-inf against labels {0, 1, soft, tiny, 1 - 2^-20}, for (alpha, gamma)
    in {(0.25, 2), (-1: no weighting, 0.5), (0.75, 0: alpha_t ce), (1, 5), (0, 1)}."""
    x, labels = _bce_grid(dtype)
    shape = (len(x), len(labels))
    inputs = np.broadcast_to(x[:, None], shape).astype(dtype)
    targets = np.broadcast_to(labels[None, :], shape).astype(dtype)
    return [_focal(inputs, targets, alpha=alpha, gamma=gamma)
            for alpha, gamma in ((0.25, 2.0), (-1.0, 0.5), (0.75, 0.0), (1.0, 5.0), (0.0, 1.0))]


@family("focal")
def tails(dtype, rng):  # noqa: F811
    """Confident predictions, right and wrong, hard labels: |x| from 5 to 110 (float32) / 760 (float64),
    losses and gradients down to the subnormal range (x = 40, t = 1: (1 - p_t)^2 = e^-80); gamma 2 and
    0.5 (whose q^(gamma - 1) torch's autograd turns into inf, times 0: NaN)."""
    g = np.geomspace(5.0, 110.0 if dtype == np.float32 else 760.0, 50)
    x = np.concatenate([g, -g, g, -g]).astype(dtype)
    t = np.repeat([1.0, 0.0, 0.0, 1.0], len(g)).astype(dtype)
    return [_focal(x, t), _focal(x, t, alpha=0.6, gamma=0.5)]


@family("focal")
def random_soft(dtype, rng):  # noqa: F811
    """Random logits over many scales against soft labels, two (alpha, gamma)."""
    n = 300
    x = rng.standard_normal(n) * np.exp(rng.uniform(-5, 5, n))
    t = rng.uniform(size=n)
    return [_focal(x.astype(dtype), t.astype(dtype), alpha=0.4, gamma=1.5),
            _focal(x.astype(dtype), t.astype(dtype), alpha=-1.0, gamma=3.7)]


def _focal_root(t, gamma):
    """The x where the focal gradient of soft labels t changes sign (float64 bisection on the formula in
    double: a start for the cancelling inputs, not an exact value)."""
    low, high = np.full_like(t, -60.0), np.full_like(t, 60.0)
    for _ in range(200):
        x = 0.5 * (low + high)
        p, e = 1.0 / (1.0 + np.exp(-x)), np.exp(-np.abs(x))
        q = t * (1.0 - p) + (1.0 - t) * p
        ce = np.log1p(e) + np.maximum(x, 0.0) * (1.0 - t) + np.maximum(-x, 0.0) * t
        d = (p - t) + gamma * ce * (1.0 - 2.0 * t) * p * (1.0 - p) / q
        low, high = np.where(d < 0, x, low), np.where(d < 0, high, x)
    return 0.5 * (low + high)


@family("focal")
def near_minimum(dtype, rng):
    """Soft labels at logits within a few ulps of the gradient's root, where sigma(x) - t and the
    modulating term cancel (the double-double path of the float32 kernels)."""
    t = rng.uniform(0.05, 0.95, 50).astype(dtype)
    parts = []
    for gamma in (2.0, 0.5):
        root = _focal_root(t.astype(np.float64), gamma).astype(dtype)
        steps = np.array([0, 1, -1, 3, -40])
        x = np.stack([root + k * np.spacing(np.abs(root)) for k in steps]).astype(dtype)
        parts.append(_focal(x, np.broadcast_to(t, x.shape).astype(dtype), gamma=gamma))
    return parts


@family("focal")
def tiny_targets(dtype, rng):
    """Targets near 0 down to the smallest subnormal (and just below 1) against logits down to -1e4:
    1 - p_t = t sigma(-x) + (1 - t) sigma(x) is then tiny, its log formed from logs."""
    finfo = np.finfo(dtype)
    t = np.array([_tiny(dtype), 1e-40 if dtype == np.float32 else 1e-300, float(finfo.tiny), 1e-20,
                  1.0 - float(finfo.epsneg)])
    far = 110.0 if dtype == np.float32 else 760.0
    x = np.array([-1e4, -far, -0.9 * far, -300.0, -50.0, -1.0, 0.0, 1.0, 50.0, far])
    if dtype == np.float64:
        x = np.concatenate([x, [-745.0, -700.0, -690.0, -666.0]])
    shape = (len(x), len(t))
    inputs = np.broadcast_to(x[:, None], shape).astype(dtype)
    targets = np.broadcast_to(t[None, :], shape).astype(dtype)
    return [_focal(inputs, targets, gamma=gamma) for gamma in (2.0, 0.5, 0.0)]


@family("focal")
def extreme_gamma(dtype, rng):
    """gamma 1e-3, 50 and 1e5 (the float32 kernels' double-double path for every element beyond
    F32_GAMMA_MAX): q^gamma near 1 - p_t = 1, where log q must keep its relative accuracy."""
    x = np.concatenate([np.linspace(-40.0, 40.0, 81), rng.uniform(5.0, 30.0, 40)])
    t = np.where(np.arange(len(x)) % 3 == 0, 1.0, np.where(np.arange(len(x)) % 3 == 1, 0.0, 0.1))
    return [_focal(x.astype(dtype), t.astype(dtype), alpha=0.25, gamma=gamma) for gamma in (1e-3, 50.0, 1e5)]


@family("focal")
def special_values(dtype, rng):  # noqa: F811
    """NaN logits or targets give NaN; x = +-inf gives the limits; a zero alpha_t gives 0 also against
    an infinite cross-entropy."""
    x = np.array([np.nan, 1.0, np.nan, np.inf, -np.inf, np.inf, -np.inf, np.inf, -np.inf, 0.0])
    t = np.array([0.5, np.nan, 0.0, 1.0, 1.0, 0.0, 0.0, 0.25, 0.75, 0.5])
    return [_focal(x.astype(dtype), t.astype(dtype), alpha=alpha, gamma=gamma)
            for alpha, gamma in ((0.25, 2.0), (0.0, 2.0), (1.0, 0.0), (-1.0, 0.5))]


# Poisson NLL (log_input: input = log-rate x, loss e^x - t x; else input = rate, loss x - t log(x + eps))

def _pnll(x, t, **options):
    return dict(input=x, target=t, **options)


def _neighbours(values, dtype, reach=2):
    """Each value rounded to dtype and its neighbours up to ``reach`` ulps either side, the values
    where a difference with it cancels the most."""
    with np.errstate(over="ignore"):
        centre = np.asarray(values, np.float64).astype(dtype)
    out = [centre]
    for direction in (np.inf, -np.inf):
        step = centre
        for _ in range(reach):
            step = np.nextafter(step, np.dtype(dtype).type(direction))
            out.append(step)
    return np.concatenate(out)


def _iterate(step, x, n=60):
    """The fixed point (or Newton limit) of ``step`` from x, in float64."""
    with np.errstate(all="ignore"):
        for _ in range(n):
            x = step(x)
    return x


def _counts(rng, rate):
    return rng.poisson(np.minimum(rate, 1e9)).astype(np.float64)


@family("pnll")
def typical_counts(dtype, rng):
    """Log-rates N(0, 1.5^2) and rates e^N(0, 1) with Poisson counts, full or not: the losses of training,
    where e^x - t x and x - t log x change sign."""
    x = rng.standard_normal(250) * 1.5
    t = _counts(rng, np.exp(x))
    rate = np.exp(rng.standard_normal(250))
    counts = _counts(rng, rate)
    return [_pnll(x.astype(dtype), t.astype(dtype), full=full) for full in (False, True)] + \
        [_pnll(rate.astype(dtype), counts.astype(dtype), log_input=False, full=full) for full in (False, True)]


@family("pnll")
def loss_roots(dtype, rng):
    """e^x = t x: the loss cancels to nothing.  For t > e its two roots (x ~ 1/t and x ~ log t + log log t)
    and for t < 0 its root below 0, each rounded to the dtype with its neighbours; and t = e^x/x rounded."""
    top = np.log(_max(dtype)) - 2.0
    t = np.exp(rng.uniform(np.log(3.0), top, 14))
    small = _iterate(lambda v: np.exp(v) / t, 1.0 / t)  # x = e^x/t
    large = _iterate(lambda v: np.log(t) + np.log(v), np.log(t) + 1.0)  # x = log t + log x
    negative_t = -np.exp(rng.uniform(-20.0, top, 12))
    below = _iterate(lambda v: v - (np.exp(v) - negative_t * v) / (np.exp(v) - negative_t),
                     np.where(negative_t < -1.0, 1.0 / negative_t, np.log(-negative_t) - 1.0))
    x = rng.uniform(-0.9 * top, 0.9 * top, 16)
    x = x[np.abs(x) > 0.1]
    targets = np.concatenate([t, t, negative_t]).astype(dtype)
    parts = [_pnll(_neighbours(np.concatenate([small, large, below]), dtype), np.tile(targets, 5))]
    x = x.astype(dtype)
    parts.append(_pnll(np.tile(x, 5), _neighbours(np.exp(x.astype(np.float64)) / x, dtype)))
    return parts


@family("pnll")
def gradient_roots(dtype, rng):
    """e^x = t: the gradient cancels (x = log t rounded, with neighbours; t = e^x rounded), exactly 0 at
    x = 0, t = 1; t from the smallest normal to e^-8 of the dtype's max."""
    tiny, top = float(np.finfo(dtype).tiny), np.log(_max(dtype)) - 8.0  # t x finite
    t = np.exp(rng.uniform(np.log(tiny), top, 40)).astype(dtype)
    x = rng.uniform(np.log(tiny), top, 20).astype(dtype)
    return [_pnll(_neighbours(np.log(t.astype(np.float64)), dtype), np.tile(t, 5)),
            _pnll(np.concatenate([np.tile(x, 5), [0.0]]).astype(dtype),
                  np.concatenate([_neighbours(np.exp(x.astype(np.float64)), dtype), [1.0]]).astype(dtype))]


@family("pnll")
def exp_overflow(dtype, rng):
    """e^x beyond the double range while e^x - t x is finite (t x up to 0.4 e^x below e^x, or t x itself
    overflowing), and e^x subnormal or below against tiny t x; float32 computes in double, where
    e^x - t x at x near 89 is a float."""
    if dtype == np.float32:
        x = rng.uniform(85.0, 89.5, 60)
    else:
        x = np.concatenate([rng.uniform(709.0, 710.45, 40), rng.uniform(-745.0, -690.0, 20)])
    x = x.astype(dtype).astype(np.float64)
    ratio = np.exp(x - np.log(np.abs(x))) * np.sign(x)  # e^x/x, the t of the root; below it the loss is positive
    with np.errstate(over="ignore"):
        t = np.concatenate([ratio * (1.0 - 10.0 ** rng.uniform(-12, -0.4, len(x))), ratio * (1.0 + 2.0 ** -30)])
    return [_pnll(np.tile(x, 2).astype(dtype), np.minimum(t, _max(dtype)).astype(dtype))]


@family("pnll")
def extremes(dtype, rng):
    """Inputs and targets from the smallest subnormal to the dtype's max, zero targets.  Each part keeps
    its losses that overflow to one sign (a sum of +inf and -inf terms is NaN): with log_input -t x >= 0,
    and log-rates up to 700 against targets of either sign; rates with targets up to max/1000."""
    n = 200
    magnitudes = np.exp(rng.uniform(np.log(_tiny(dtype)), np.log(_max(dtype)), (3, n)))
    x = rng.choice([-1.0, 1.0], n) * magnitudes[0]
    t = -np.sign(x) * magnitudes[1]
    t[::10] = 0.0
    top = np.log(_max(dtype)) - 10.0
    log_rate = rng.uniform(-top, top, n)
    signed = rng.choice([-1.0, 1.0], n) * magnitudes[1]
    rate, counts = magnitudes[2], np.minimum(magnitudes[1], _max(dtype) / 1000)
    counts[::10] = 0.0
    return [_pnll(x.astype(dtype), t.astype(dtype)), _pnll(log_rate.astype(dtype), signed.astype(dtype)),
            _pnll(rate.astype(dtype), counts.astype(dtype), log_input=False),
            _pnll(rate.astype(dtype), counts.astype(dtype), log_input=False, eps=0.0)]


@family("pnll")
def rate_roots(dtype, rng):
    """x = t log(x + eps): the loss without log_input cancels.  For t > e its roots x ~ 1 + 1/t - eps (t up
    to 1e6, where it is a number above 1) and x ~ t log(t log t), rounded with their neighbours; eps 1e-8
    and 0.5."""
    top = np.log(_max(dtype)) - 8.0
    parts = []
    for eps in (1e-8, 0.5):
        t_small = np.exp(rng.uniform(np.log(3.0), np.log(1e6), 16))  # the small root is 1 + ~1/t - eps
        t = np.exp(rng.uniform(np.log(3.0), top, 16))
        small = _iterate(lambda v: np.exp(v / t_small) - eps, np.ones_like(t))  # x = e^(x/t) - eps
        large = _iterate(lambda v: t * np.log(v + eps), t * np.log(t * np.log(t)))  # x = t log(x + eps)
        targets = np.concatenate([t_small, t]).astype(dtype)
        parts.append(_pnll(_neighbours(np.concatenate([small, large]), dtype), np.tile(targets, 5), log_input=False,
                           eps=eps))
    return parts


@family("pnll")
def rate_gradient_roots(dtype, rng):
    """x + eps = t: the gradient without log_input cancels (x = t - eps rounded, neighbours), and the rate
    at and near 0 (x = -eps; below it the loss is NaN)."""
    t = np.exp(rng.uniform(np.log(1e-6), np.log(_max(dtype)) - 1.0, 30)).astype(dtype)
    eps = 1e-8
    x = _neighbours(t.astype(np.float64) - eps, dtype)
    near_zero = _neighbours(np.full(8, -eps), dtype, reach=3)[::2]
    return [_pnll(x, np.tile(t, 5), log_input=False, eps=eps),
            _pnll(near_zero, np.linspace(0.0, 3.0, len(near_zero)).astype(dtype), log_input=False, eps=eps)]


@family("pnll")
def stirling(dtype, rng):
    """full: t from just above 1 to near the max; the input at the rate t (psi(w) ~ w^2/2 tiny beside
    log(2 pi t)/2, t psi not: PyTorch's t log t - t x cancels there), far below (w -> -1) and above it;
    t <= 1 (no Stirling term); without log_input also eps = 0, 0.3 and 2 (above log(2 pi t)/2 for small t:
    the documented exception, budgets.py)."""
    n = 60
    t = np.exp(rng.uniform(0.0, np.log(_max(dtype)) - 2.0, n))
    t[:4] = [1.0, np.nextafter(np.dtype(dtype).type(1.0), np.dtype(dtype).type(2.0)), 1.5, 0.5]
    t = t.astype(dtype).astype(np.float64)
    offsets = np.concatenate([np.zeros(n // 3), rng.standard_normal(n // 3) * 1e-3,
                              rng.uniform(-30.0, 30.0, n - 2 * (n // 3))])
    x = (np.log(t) + offsets).astype(dtype)
    rate = np.minimum(t * np.exp(offsets), _max(dtype)).astype(dtype)
    below = np.where(t > 1, -t, t)  # negative targets: no Stirling term
    parts = [_pnll(x, t.astype(dtype), full=True), _pnll(x, below.astype(dtype), full=True)]
    parts += [_pnll(rate, t.astype(dtype), log_input=False, full=True, eps=eps) for eps in (1e-8, 0.0, 0.3, 2.0)]
    return parts


@family("pnll")
def special_values(dtype, rng):  # noqa: F811
    """NaN in gives NaN; t = 0 makes t x and t log(x + eps) 0 (x = -inf: loss 0, gradient 0; x + eps = 0:
    loss x, gradient 1); x = +inf gives +inf; x + eps < 0 a NaN loss; full with t = +inf NaN."""
    inf, nan = np.inf, np.nan
    x = np.array([nan, 0.0, -inf, -inf, -inf, inf, inf, inf, 1.0, 0.0, -1.0, inf, -inf, 2.0])
    t = np.array([1.0, nan, 0.0, 2.0, -2.0, 0.0, 2.0, inf, inf, inf, -inf, -inf, inf, 0.0])
    rate = np.array([nan, 1.0, -1e-8, -1e-8, -1e-8, inf, inf, inf, 1.0, 2.0, -1.0, 0.0, -2.0, 0.5])
    return [_pnll(x.astype(dtype), t.astype(dtype)), _pnll(x.astype(dtype), t.astype(dtype), full=True),
            _pnll(rate.astype(dtype), t.astype(dtype), log_input=False),
            _pnll(rate.astype(dtype), t.astype(dtype), log_input=False, full=True)]


# ---------------------------------------------------------------------------------------------------
# Typical inputs: random data of the kind each loss sees in training

def _log_softmax_rows(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _weights(rng, shape, dtype):
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


@typical_of("ce")
def _ce_typical(rng, shape, dtype, options):
    inputs = {"input": 2 * rng.standard_normal(shape, dtype=dtype),
              "target": rng.integers(0, shape[1], shape[0], dtype=np.int64)}
    if options:
        inputs.update(weight=_weights(rng, shape[1], dtype), label_smoothing=0.1, z_loss=1e-4, softcap=30.0)
    return inputs


@typical_of("nll")
def _nll_typical(rng, shape, dtype, options):
    inputs = {"input": _log_softmax_rows(2 * rng.standard_normal(shape, dtype=dtype)),
              "target": rng.integers(0, shape[1], shape[0], dtype=np.int64)}
    if options:
        inputs.update(weight=_weights(rng, shape[1], dtype), ignore_index=0)
    return inputs


@typical_of("bce")
def _bce_typical(rng, shape, dtype, options):
    inputs = {"input": 2 * rng.standard_normal(shape, dtype=dtype),
              "target": rng.integers(0, 2, shape).astype(dtype)}
    if options:
        inputs.update(weight=_weights(rng, shape, dtype), pos_weight=_weights(rng, shape[-1:], dtype))
    return inputs


@typical_of("gnll")
def _gnll_typical(rng, shape, dtype, options):
    inputs = {"input": rng.standard_normal(shape, dtype=dtype),
              "target": rng.standard_normal(shape, dtype=dtype),
              "var": rng.uniform(0.5, 2.0, shape).astype(dtype)}
    if options:
        inputs.update(full=True, eps=1e-3)
    return inputs


@typical_of("kl")
def _kl_typical(rng, shape, dtype, options):
    log_q = _log_softmax_rows(rng.standard_normal(shape, dtype=dtype))
    log_p = _log_softmax_rows(rng.standard_normal(shape, dtype=dtype))
    if options:  # the other form of the target
        return {"input": log_q, "target": log_p, "log_target": True}
    return {"input": log_q, "target": np.exp(log_p)}


@typical_of("pnll")
def _pnll_typical(rng, shape, dtype, options):
    x = rng.standard_normal(shape, dtype=dtype)
    inputs = {"input": x, "target": rng.poisson(np.exp(x)).astype(dtype)}
    if options:  # rates rather than log-rates, with the Stirling term
        inputs.update(input=np.exp(x), log_input=False, full=True, eps=1e-6)
    return inputs


@typical_of("mse")
def _mse_typical(rng, shape, dtype, options):
    inputs = {"input": rng.standard_normal(shape, dtype=dtype),
              "target": rng.standard_normal(shape, dtype=dtype)}
    if options:
        inputs.update(weight=_weights(rng, shape, dtype))
    return inputs


@typical_of("huber")
def _huber_typical(rng, shape, dtype, options):
    inputs = {"input": rng.standard_normal(shape, dtype=dtype),
              "target": rng.standard_normal(shape, dtype=dtype)}
    if options:  # huber_loss: both branches, weighted
        inputs.update(delta=0.5, weight=_weights(rng, shape, dtype))
    return inputs


@typical_of("focal")
def _focal_typical(rng, shape, dtype, options):
    """Dense detection: mostly negatives (1 in 10 positive), logits around the prior -2."""
    inputs = {"inputs": 2 * rng.standard_normal(shape, dtype=dtype) - 2,
              "targets": (rng.uniform(size=shape) < 0.1).astype(dtype)}
    if options:
        inputs.update(alpha=0.5, gamma=1.5)
    return inputs
