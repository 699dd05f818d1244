"""The one place that owns the Numba options, and the numeric primitives of the kernels.

Decorators (every one: ``error_model="numpy"``, no ZeroDivisionError checks, x/0 is inf or NaN as in
IEEE arithmetic; ``nogil=True``, the dispatcher runs kernels on several threads)
- :func:`jit`: a kernel, ``cache=True``, no fast-math flag at all, so NaN and +-inf keep their meaning
  and the error-free transformations below are evaluated exactly as written.  ``contract`` is never
  used: every fused multiply-add is an explicit :func:`fma`, so results do not depend on the
  compiler's fusion choices.
- :func:`lane_jit`: adds the single flag ``reassoc``, on the maximum and minimum reductions only
  (:func:`max_of`, :func:`max_min_of`): without it LLVM must combine the elements in source order, with
  it it keeps one running maximum (minimum) per vector lane.  The loop holds nothing but llvm.maximum and
  llvm.minimum, which are exactly associative, so the flag
  changes nothing but the speed.  Sums never need it: they run in explicit lanes (:func:`lanes_add`),
  a plain map that LLVM vectorizes under strict rules, so no rounding-error term can be folded away
  and no magic-number rounding broken (docs/design.md, Numba notes; exp rounds with ``np.rint``).
- :func:`helper` / :func:`pasted`: the primitives and pieces of kernels, strict like :func:`jit`,
  compiled as functions of their own and inlined by LLVM (:func:`pasted`: by Numba, for the few that
  LLVM would leave as calls in a vectorized loop).

Grades, as in kernels/sl_math.h.  Every kernel computes in float64 and rounds once at the store.  The
primitives take ``cheap``: False, the full grade, in float64 kernels (<= 1 ulp of float64: two-constant
Cody-Waite reduction, longer polynomials, the rounding error of the argument carried along; measured
against mpmath on 4e4 arguments each: exp 0.58 ulp on normal results, log 0.81 ulp, log1p 0.74 ulp);
True, the cheap grade, in float32 kernels (relative error <= 3.3e-12 for exp, 1.1e-13 for log: far
below the float32 rounding).  A kernel passes ``cheap=f32``, from :func:`is_f32`, a constant for the
input dtype, so LLVM drops the branch not taken before it vectorizes (C chooses the grade per path; here
it follows the dtype).  The polynomials and the constants of the reductions are the contract of
stableloss/_constants.py, shared with the C kernels (kernels/sl_math.h); here they are module-level
``np.float64``/``np.float32`` globals, which Numba freezes as typed constants.

Numba pitfalls met here (besides those of docs/design.md, Numba notes): a loop index that LLVM cannot prove non-negative
makes Numba wrap negative indices element by element, which turns vector loads into gathers (see
:func:`urange`); slices cost atomic reference counts per row; an optional array in a vectorized loop
costs the whole loop its vector path (see :func:`load_chunk`); a slow formula behind a flag inside a
vectorized loop runs on every lane (see :func:`flagged`).
"""

import hashlib
import os
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .. import _constants as C

_OPTIONS = {"error_model": "numpy", "nogil": True}


def _sources_stamp():
    """A hash of every module of this package."""
    folder = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(name for name in os.listdir(folder) if name.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as source:
            digest.update(name.encode() + b"\0" + source.read())
    return digest.hexdigest()


_SOURCES_STAMP = _sources_stamp()


def _compile(func, options):
    """njit with cache=True; Numba keys a cached function on its own source file only, so an edit of a
    primitive here would leave every family's cached kernel stale: the package's stamp is added to
    each function's.  Where no cache location is writable (Numba raises when it makes the dispatcher),
    the function is compiled in every process instead."""
    try:
        dispatcher = njit(cache=True, **options, **_OPTIONS)(func)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(**options, **_OPTIONS)(func)
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _SOURCES_STAMP)
    return dispatcher


def jit(func):
    """A kernel or strict helper: IEEE arithmetic throughout (no fast-math flag)."""
    return _compile(func, {})


def lane_jit(func):
    """A reduction loop that only combines values associatively (``reassoc`` lets LLVM keep one partial
    result per vector lane)."""
    return _compile(func, {"fastmath": {"reassoc"}})


def helper(func):
    """A primitive or piece of a kernel: compiled (for the argument types it is called with) as a
    function of its own, strict like :func:`jit`, which LLVM inlines into its callers where that pays,
    in particular into the vectorized loops.  Literal arguments (``True``, a constant) are compiled
    in, so a branch on them costs nothing.  Numba's own ``inline="always"`` pastes the callee's IR at
    each call site instead: the cross-entropy kernel then took 25 s to compile, against 6 s."""
    return njit(**_OPTIONS)(func)


def pasted(func):
    """A helper too large for LLVM's inliner that a vectorized loop calls: pasted into the caller's
    Numba IR (``inline="always"``), so the loop has no call left and still vectorizes."""
    return njit(inline="always", **_OPTIONS)(func)


# ---------------------------------------------------------------------------------------------------
# LLVM intrinsics: exact fused multiply-add, NaN-propagating maximum, bit casts.

def _float_type(numba_type):
    return {types.float32: ir.FloatType(), types.float64: ir.DoubleType()}.get(numba_type)


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma: vfmadd on FMA hardware, libm fma elsewhere), all three
    float64 or all three float32."""
    if not a == b == c or _float_type(a) is None:
        return None

    def codegen(context, builder, signature, args):
        t = _float_type(signature.args[0])
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t] * 3))
        return builder.call(fn, args)

    return a(a, b, c), codegen


def _nan_propagating(name):
    """The LLVM intrinsic ``name`` (llvm.maximum, llvm.minimum) of two floats of one type."""
    def typer(typingctx, a, b):
        if a != b or _float_type(a) is None:
            return None

        def codegen(context, builder, signature, args):
            t = _float_type(signature.args[0])
            fn = builder.module.declare_intrinsic(name, [t], ir.FunctionType(t, [t, t]))
            return builder.call(fn, args)

        return a(a, b), codegen
    return typer


#: IEEE 754-2019 maximum and minimum: NaN if either is NaN.  LLVM vectorizes them as reductions, unlike a
#: compare-and-select, which also drops NaN depending on the operand order.
maximum = intrinsic(_nan_propagating("llvm.maximum"))
minimum = intrinsic(_nan_propagating("llvm.minimum"))


#: The integer type of each float type's bits, and back.
_BITS_TYPE = {types.float32: types.int32, types.float64: types.int64}
_FLOAT_OF_BITS = {bits: float_type for float_type, bits in _BITS_TYPE.items()}


@intrinsic
def as_int(typingctx, x):
    """The bits of a float64 as an int64, of a float32 as an int32."""
    if x not in _BITS_TYPE:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(signature.return_type.bitwidth))

    return _BITS_TYPE[x](x), codegen


@intrinsic
def as_float(typingctx, i):
    """The float64 with the bits of an int64, the float32 with those of an int32."""
    if i not in _FLOAT_OF_BITS:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _float_type(signature.return_type))

    return _FLOAT_OF_BITS[i](i), codegen


def is_f32(x):
    """True if the array x holds float32, False for float64 (compile-time): a float32 kernel takes the
    cheap grade of the primitives (``cheap=f32``), a float64 kernel the full grade."""


@overload(is_f32, inline="always")
def _is_f32(x):
    f32 = x.dtype == types.float32
    return lambda x: f32


# ---------------------------------------------------------------------------------------------------
# Constants

INF = np.float64(np.inf)
NAN = np.float64(np.nan)
ONE = np.float64(1.0)
HALF = np.float64(0.5)
LOG2E = np.float64(C.LOG2E)
LN2 = np.float64(0.6931471805599453)
LN2_HI = np.float64(C.LN2_HI)  # 42 significant bits: n * LN2_HI is exact for |n| < 2**11
LN2_LO = np.float64(C.LN2_LO)  # ln 2 - LN2_HI, to 2**-102
LN2_LO2 = np.float64(C.LN2_LO2)  # ln 2 - LN2_HI - LN2_LO (double-double work)
ROUND_MAGIC = np.float64(6755399441055744.0)  # 1.5 * 2**52: bits(n + ROUND_MAGIC) end in the integer n
ROUND_MAGIC_BITS = np.int64(0x4338000000000000)
EXP_BIAS = np.int64(1023)
SQRT_HALF_BITS = np.int64(0x3FE6A09E667F3BCD)
TWO_M64 = np.float64(2.0**-64)
TWO_P54 = np.float64(C.SUBNORMAL_SCALE)
SMALLEST_NORMAL = np.float64(C.SMALLEST_NORMAL)
EXP_NORMAL = np.float64(C.EXP_NORMAL)  # |x| <= EXP_NORMAL: e^x is a normal double (exp_normal)
EXP_UNDERFLOW = np.float64(C.EXP_MIN_ARG)  # e^x < 2**-1075 below: rounds to 0 (and 2**(n + 64) stays normal)
EXP_OVERFLOW = np.float64(709.79)  # just above log(DBL_MAX) = 709.7827
TANH_TINY = np.float64(2.0**-26)  # |u| below: tanh(u) = u (1 - u^2/3 + ...) = u in double


# The polynomials of the contract (_constants.py): exp's q, full grade of degree 10, cheap of degree 6;
# log's P, full of degree 6, cheap of degree 4.
EW0, EW1, EW2, EW3, EW4, EW5, EW6, EW7, EW8, EW9, EW10 = map(np.float64, C.EXP_Q_FULL)
EN0, EN1, EN2, EN3, EN4, EN5, EN6 = map(np.float64, C.EXP_Q_CHEAP)
LW0, LW1, LW2, LW3, LW4, LW5, LW6 = map(np.float64, C.LOG_P_FULL)
LN0, LN1, LN2C, LN3, LN4 = map(np.float64, C.LOG_P_CHEAP)


# ---------------------------------------------------------------------------------------------------
# Error-free transformations and compensated sums

@pasted
def two_sum(a, b):
    """(s, err) with s = fl(a + b) and s + err == a + b exactly (Knuth); err = 0 where s is not finite."""
    s = a + b
    b_virtual = s - a
    err = (a - (s - b_virtual)) + (b - b_virtual)
    return s, (err if abs(s) < INF else 0.0)


@pasted
def two_diff(a, b):
    """(d, err) with d = fl(a - b) and d + err == a - b exactly; err = 0 where d is not finite."""
    return two_sum(a, -b)


@pasted
def two_prod(a, b):
    """(p, err) with p = fl(a * b) and p + err == a * b exactly (an fma recovers the rounding error);
    err = 0 where p is not finite."""
    p = a * b
    err = fma(a, b, -p)
    return p, (err if abs(p) < INF else 0.0)


@pasted
def neumaier_add(total, compensation, value):
    """Add value to the compensated sum total + compensation (Neumaier: the rounding error of each
    addition is kept in compensation and added back at the end)."""
    s, err = two_sum(total, value)
    return s, compensation + err


# ---------------------------------------------------------------------------------------------------
# exp

@pasted
def pow2(n):
    """2**n for an integral float64 n in [-1022, 1023], built in the exponent field."""
    return as_float((as_int(n + ROUND_MAGIC) - ROUND_MAGIC_BITS + EXP_BIAS) << 52)


@pasted
def _exp_reduced(x, x_lo, cheap):
    """(m, n) with e^(x + x_lo) = m 2**n, n = rint(x / ln 2) (|x_lo| <= ulp(x), m in [0.7, 1.42])."""
    n = np.rint(x * LOG2E)  # rint, not a magic-number add and subtract, which reassoc would fold
    if not cheap:
        r_hi = x - n * LN2_HI  # exact: n * LN2_HI has <= 43 bits and x - n * LN2_HI fits in 53
        r = fma(-n, LN2_LO, r_hi)
        c = fma(-n, LN2_LO, r_hi - r) + x_lo  # c = x + x_lo - n ln 2 - r, the part r rounded off
        q = fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(EW10, r, EW9), r, EW8), r, EW7), r, EW6), r, EW5), r, EW4),
                                r, EW3), r, EW2), r, EW1), r, EW0)
        t = (r * r) * q  # e^r = 1 + r + t
        one_r = ONE + r
        one_r_lo = (ONE - one_r) + r  # 1 + r = one_r + one_r_lo exactly (Fast2Sum, |r| < 1)
        # e^(r + c) = e^r (1 + c) + O(c^2) = 1 + r + t + c (1 + r + t): only the small terms are rounded
        m = one_r + (one_r_lo + (t + fma(c, r + t, c)))
    else:
        r = fma(-n, LN2, x)
        q = fma(fma(fma(fma(fma(fma(EN6, r, EN5), r, EN4), r, EN3), r, EN2), r, EN1), r, EN0)
        m = ONE + fma(r * r, q, r)  # e^r = 1 + r + r^2 q(r)
    return m, n


@pasted
def exp_nonpos(x, x_lo, cheap):
    """e^(x + x_lo) for x <= 0 (also -inf -> 0, NaN -> NaN); x_lo = 0 for a plain argument.

    Full grade: <= 1 ulp; both: subnormal results rounded once (far below float32, they still count where a
    huge coefficient multiplies them).
    """
    m, n = _exp_reduced(x, x_lo, cheap)
    value = (m * pow2(n + 64.0)) * TWO_M64  # 2**(n + 64) stays normal; one rounding into subnormals
    return 0.0 if x < EXP_UNDERFLOW else value  # "x < cut ? 0 : e" keeps NaN, maps -inf to 0


@pasted
def exp_normal(x, x_lo, cheap):
    """e^(x + x_lo) for x in [-EXP_NORMAL, 0], a normal result (callers know it: a row's range): 2**n m in one
    exact product, no range check; the same value as :func:`exp_nonpos` there."""
    m, n = _exp_reduced(x, x_lo, cheap)
    return m * pow2(n)


@pasted
def exp(x, x_lo, cheap):
    """e^(x + x_lo) for any float64 x (<= 1 ulp in the full grade), 0 below -746, inf above log(DBL_MAX), NaN stays
    NaN; x_lo = 0 for a plain argument."""
    m, n = _exp_reduced(x, x_lo, cheap)
    half = np.floor(n * HALF)
    value = (m * pow2(half)) * pow2(n - half)  # two factors: 2**n alone would leave the exponent range
    value = INF if x > EXP_OVERFLOW else value
    return 0.0 if x < EXP_UNDERFLOW else value


# ---------------------------------------------------------------------------------------------------
# log, log1p

@pasted
def _log_split(x):
    """(f, k) with x = 2**k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), f exact, for positive finite x."""
    tiny = x < SMALLEST_NORMAL
    bits = as_int(x * TWO_P54 if tiny else x)  # subnormals: scale into the normal range first
    offset = bits - SQRT_HALF_BITS
    k_bits = offset >> 52  # the exponent that brings x into [sqrt(1/2), sqrt(2))
    m = as_float(bits - (k_bits << 52))
    k = as_float(k_bits + ROUND_MAGIC_BITS) - ROUND_MAGIC  # int64 -> float64 without a conversion op
    return m - ONE, (k - 54.0 if tiny else k)  # m - 1 is exact (Sterbenz)


@pasted
def _log1p_reduced(f, k, c, cheap):
    """k ln 2 + log1p(f) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1) and a small correction c.

    log1p(f) = 2 atanh(s), s = f / (2 + f) = f - f^2/2 + s (f^2/2 + R(s^2)),  R(z) = sum 2 z^j/(2j + 1).
    """
    s = f / (2.0 + f)
    z = s * s
    hfsq = HALF * f * f
    if not cheap:
        p = fma(fma(fma(fma(fma(fma(LW6, z, LW5), z, LW4), z, LW3), z, LW2), z, LW1), z, LW0)
        rest = s * (hfsq + z * p) + fma(k, LN2_LO, c)
        return fma(k, LN2_HI, f - (hfsq - rest))  # k LN2_HI + f is exact-ish; the small terms first
    p = fma(fma(fma(fma(LN4, z, LN3), z, LN2C), z, LN1), z, LN0)
    return fma(k, LN2, (f - hfsq) + fma(s, hfsq + z * p, c))


@pasted
def log(x, cheap):
    """Natural log; 0 -> -inf, inf -> inf, x < 0 or NaN -> NaN.  Full grade: <= 1 ulp."""
    f, k = _log_split(x)
    value = _log1p_reduced(f, k, 0.0, cheap)
    value = -INF if x == 0.0 else value
    value = INF if x == INF else value
    return value if x >= 0.0 else NAN


@pasted
def log1p(x, cheap):
    """log(1 + x); -1 -> -inf, inf -> inf, x < -1 or NaN -> NaN.  Full grade: <= 1 ulp."""
    u = ONE + x
    c = x - (u - ONE)  # 1 + x = u + c exactly (u - 1 is exact for u in [1/2, 2**53])
    c = 0.0 if u == INF else c / u  # log(u + c) = log(u) + c/u + O(c^2)
    f, k = _log_split(u)
    value = _log1p_reduced(f, k, c, cheap)
    value = -INF if u == 0.0 else value
    value = INF if u == INF else value
    return value if u >= 0.0 else NAN


# ---------------------------------------------------------------------------------------------------
# Double-double arithmetic (value = hi + lo, |lo| <= ulp(hi)/2) and a logarithm to ~2**-100

@pasted
def fast_two_sum(a, b):
    """(s, err) with s + err == a + b exactly, for |a| >= |b| (Dekker); err = 0 where s is not finite."""
    s = a + b
    err = b - (s - a)
    return s, (err if abs(s) < INF else 0.0)


@pasted
def dd_add(a_hi, a_lo, b_hi, b_lo):
    s, err = two_sum(a_hi, b_hi)
    return fast_two_sum(s, err + (a_lo + b_lo))


@pasted
def dd_mul(a_hi, a_lo, b_hi, b_lo):
    p, err = two_prod(a_hi, b_hi)
    return fast_two_sum(p, err + (a_hi * b_lo + a_lo * b_hi))


def _dd(numerator, denominator):
    value = Fraction(numerator, denominator)
    hi = float(value)
    return np.float64(hi), np.float64(float(value - Fraction(hi)))


# 1/(2j + 1) as double-doubles for the leading terms of the atanh series
(ATANH_C0, ATANH_C1, ATANH_C2, ATANH_C3, ATANH_C4, ATANH_C5, ATANH_C6, ATANH_C7, ATANH_C8) = (
    _dd(1, 2 * j + 1) for j in range(9))
(ATANH_T9, ATANH_T10, ATANH_T11, ATANH_T12, ATANH_T13, ATANH_T14, ATANH_T15, ATANH_T16, ATANH_T17, ATANH_T18,
 ATANH_T19, ATANH_T20) = (np.float64(1.0 / (2 * j + 1)) for j in range(9, 21))


@pasted
def log_dd(x):
    """log(x) as a double-double (hi, lo), relative error ~2**-100, for positive finite x.

    x = 2**k (1 + f); log1p(f) = 2 atanh(s) = 2 s sum_j s^(2j)/(2j + 1), s = f/(2 + f), |s| <= 0.172:
    the terms j >= 9 are below 2**-46 of the sum and need only double precision.
    """
    f, k = _log_split(x)
    den_hi, den_lo = two_sum(2.0, f)
    s_hi = f / den_hi
    s_lo = (fma(-s_hi, den_hi, f) - s_hi * den_lo) / den_hi  # s_hi + s_lo = f/(2 + f) to ~2**-106
    z_hi, z_lo = two_prod(s_hi, s_hi)
    z_lo += 2.0 * s_hi * s_lo
    tail = fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(ATANH_T20, z_hi, ATANH_T19), z_hi, ATANH_T18), z_hi,
                                                    ATANH_T17), z_hi, ATANH_T16), z_hi, ATANH_T15), z_hi,
                                     ATANH_T14), z_hi, ATANH_T13), z_hi, ATANH_T12), z_hi, ATANH_T11), z_hi,
                   ATANH_T10), z_hi, ATANH_T9)
    acc_hi, acc_lo = dd_mul(tail, 0.0, z_hi, z_lo)
    acc_hi, acc_lo = dd_add(acc_hi, acc_lo, ATANH_C8[0], ATANH_C8[1])
    for c_hi, c_lo in (ATANH_C7, ATANH_C6, ATANH_C5, ATANH_C4, ATANH_C3, ATANH_C2, ATANH_C1, ATANH_C0):
        acc_hi, acc_lo = dd_mul(acc_hi, acc_lo, z_hi, z_lo)
        acc_hi, acc_lo = dd_add(acc_hi, acc_lo, c_hi, c_lo)
    log_hi, log_lo = dd_mul(acc_hi, acc_lo, 2.0 * s_hi, 2.0 * s_lo)
    k_lo, k_lo_err = two_prod(k, LN2_LO)
    k_hi, k_err = fast_two_sum(k * LN2_HI, k_lo)  # k * LN2_HI is exact
    return dd_add(k_hi, k_err + (k_lo_err + k * LN2_LO2), log_hi, log_lo)


@helper
def exp_dd(x):
    """e^x as a double-double (hi, lo), relative error ~2**-93 for -708 < x < 709: y = e^x in double,
    then e^x = y e^(x - log y) = y (1 + d), d = x - log y from the double-double log (x - hi is exact)."""
    y = exp(x, 0.0, False)
    log_hi, log_lo = log_dd(y)
    return fast_two_sum(y, y * ((x - log_hi) - log_lo))


@pasted
def exp_hilo(x, x_lo):
    """e^(x + x_lo) as a double-double (hi, lo) to ~2**-58 (kernels/sl_math.h, sl_exp_hilo), for x in
    [-EXP_NORMAL, 0] (|x_lo| <= ulp(x)): far cheaper than :func:`exp_dd` and vectorizable.  The reduced
    argument r + c (n = rint(x / ln 2)) to ~2**-106 as :func:`_exp_reduced`'s, 1 + r + r^2/2 in
    double-double (r^2 exact), the rest of the series r^3 q1(r) <= 0.007 and c e^r in double, 2**n exact
    (a subnormal lo loses its relative accuracy: below x = -690 the error grows to 2**-54 at -708)."""
    n = np.rint(x * LOG2E)
    r_hi = x - n * LN2_HI  # exact
    r = fma(-n, LN2_LO, r_hi)
    c = fma(-n, LN2_LO, r_hi - r) + x_lo  # x + x_lo - n ln 2 = r + c
    q1 = fma(fma(fma(fma(fma(fma(fma(fma(fma(EW10, r, EW9), r, EW8), r, EW7), r, EW6), r, EW5), r, EW4), r, EW3),
                 r, EW2), r, EW1)  # e^r = 1 + r + r^2/2 + r^3 q1(r) (EW0 = 1/2)
    rr, rr_lo = two_prod(r, r)
    tail = r * rr * q1
    s, s_err = fast_two_sum(ONE, r)
    s, t_err = two_sum(s, HALF * rr)
    # e^(r + c) = e^r + c e^r (c^2 below 2**-88), c e^r = c + c (r + r^2/2 + tail)
    hi, lo = fast_two_sum(s, (s_err + t_err) + (HALF * rr_lo + (tail + fma(c, r + (HALF * rr + tail), c))))
    scale = pow2(n)
    return hi * scale, lo * scale


@pasted
def log_hilo(x):
    """log(x) as a double-double (hi, lo) to ~2**-58 (kernels/sl_math.h, sl_log_hilo), for positive normal
    x: far cheaper than :func:`log_dd` and vectorizable.  x = 2**k (1 + f), log(1 + f) = 2 atanh(s) =
    2s + s^3 P(s^2) with s = f/(2 + f) in double-double (f exact), the atanh tail s^3 P <= 0.02 |2s| in
    double (P the full grade's, :func:`_log1p_reduced`), k ln 2 in double-double."""
    f, k = _log_split(x)
    d, d_lo = fast_two_sum(2.0, f)  # 2 + f exactly
    s = f / d
    s_lo = (fma(-s, d, f) - s * d_lo) / d  # s + s_lo = f/(2 + f) to ~2**-106
    z = s * s
    p = fma(fma(fma(fma(fma(fma(LW6, z, LW5), z, LW4), z, LW3), z, LW2), z, LW1), z, LW0)
    a, a_err = two_sum(k * LN2_HI, 2.0 * s)  # k LN2_HI is exact
    return fast_two_sum(a, a_err + (2.0 * s_lo + (s * z * p + k * LN2_LO)))


@helper
def dd_div(a_hi, a_lo, b_hi, b_lo):
    """(a_hi + a_lo)/(b_hi + b_lo) to ~2**-104: one Newton correction of the double quotient."""
    q = a_hi / b_hi
    return fast_two_sum(q, ((fma(-q, b_hi, a_hi) + a_lo) - q * b_lo) / b_hi)


# ---------------------------------------------------------------------------------------------------
# tanh and the soft cap of logits c tanh(x/c) (kernels/sl_math.h sl_tanh_exp, sl_softcap; sl_softmax.h
# sl_softcap_dd): the same steps, so that the backends agree

@pasted
def tanh_exp(a):
    """(tanh(a), 1 - tanh^2(a)) for a >= 0 (not NaN), from one reduction of exp: -2a = n ln 2 + r (two
    pieces), p = expm1(r) = r + r^2 q(r) (the full q: no cancellation for small r), E = e^{-2a} =
    2**n (1 + p), and with R = 1/(1 + E) tanh(a) = -expm1(-2a) R, expm1(-2a) = (2**n - 1) + 2**n p,
    1 - tanh^2(a) = 4E R^2: a few ulps.  2**n as the product of two normal powers of two (exact, or 0
    below 2**-1074), so that 1 - tanh^2 keeps its subnormal values and is 0 where e^{-2a} underflows;
    beyond a = 700 E is taken at -1400 (0 in double)."""
    v = -2.0 * a if a < 700.0 else -1400.0
    n = np.rint(v * LOG2E)
    r1 = v - n * LN2_HI
    r = r1 - n * LN2_LO
    r_lo = (r1 - r) - n * LN2_LO
    q = fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(EW10, r, EW9), r, EW8), r, EW7), r, EW6), r, EW5), r, EW4), r, EW3),
                    r, EW2), r, EW1), r, EW0)
    p = r + (r_lo + (r * r) * q)
    n_hi = max(n, -1022.0)  # n in [-2020, 0]: n_hi and n - n_hi in [-1022, 0]
    scale = pow2(n_hi) * pow2(n - n_hi)
    e = scale + scale * p
    inv = ONE / (ONE + e)
    return -((scale - ONE) + scale * p) * inv, ((4.0 * e) * inv) * inv


@pasted
def softcap(x, c, inv_c):
    """(c tanh(x/c), 1 - tanh^2(x/c)) in double; x itself where |x/c| < 2**-26; +-c at x = +-inf; NaN
    stays NaN."""
    u = abs(x * inv_c)
    t, d = tanh_exp(0.0 if u != u else u)
    capped = x if u < TANH_TINY else np.copysign(c * t, x)
    return (x if x != x else capped), d


@helper
def softcap_dd(x, c, split):
    """(hi, lo, d): c tanh(x/c) as hi + lo to ~2**-100 and d = 1 - tanh^2(x/c).  u = x/c as a double-double
    (the exact remainder x - u c over c); up to |u| = split the double tanh t gets one Newton step,
    tanh(u) = t + (u - atanh(t))(1 - t^2) + O(2**-106 / (1 - t^2)), atanh(t) = (log(1 + t) - log(1 - t))/2
    from double-double logs, d = (1 - t)(1 + t); beyond, tanh|u| = 1 - 2E/(1 + E), d = 4E/(1 + E)^2 from
    E = e^{-2|u|} a double-double.  |u| < 2**-26: x - x u^2/3, d = 1; +-inf: +-c, d = 0."""
    u = x / c
    a = abs(u)
    if x != x:
        return x, 0.0, x
    if a < TANH_TINY:
        return x, -x * (a * a) / 3.0, ONE
    u_lo = fma(-u, c, x) / c if abs(u) < INF else 0.0  # x - u c is exact
    a_lo = -u_lo if u < 0.0 else u_lo
    if a <= split:
        t0, _ = tanh_exp(a)
        p, p_lo = two_sum(ONE, t0)
        m, m_lo = two_sum(ONE, -t0)
        lp, lp_lo = log_dd(p)
        lp, lp_lo = dd_add(lp, lp_lo, p_lo / p, 0.0)  # log(h + l) = log h + l/h
        lm, lm_lo = log_dd(m)
        lm, lm_lo = dd_add(lm, lm_lo, m_lo / m, 0.0)
        at, at_lo = dd_add(lp, lp_lo, -lm, -lm_lo)  # 2 atanh(t0)
        delta = (a - HALF * at) + (a_lo - HALF * at_lo)
        t, t_lo = two_sum(t0, delta * ((ONE - t0) * (ONE + t0)))
        om, om_lo = dd_add(ONE, 0.0, -t, -t_lo)
        op, op_lo = dd_add(ONE, 0.0, t, t_lo)
        d_hi, d_lo = dd_mul(om, om_lo, op, op_lo)
    else:
        if a < 354.0:  # e^{-2|u|} as a double-double; far beyond, in double (it only enters as a low part)
            e, e_lo = exp_dd(-2.0 * a)
        else:
            e, e_lo = exp(-2.0 * a, 0.0, False), 0.0
        e_lo -= 2.0 * a_lo * e
        den, den_lo = two_sum(ONE, e)
        den_lo += e_lo
        q, q_lo = dd_div(2.0 * e, 2.0 * e_lo, den, den_lo)  # 1 - tanh = 2E/(1 + E)
        t, t_lo = dd_add(ONE, 0.0, -q, -q_lo)
        d_hi, d_lo = dd_div(2.0 * q, 2.0 * q_lo, den, den_lo)
    p, p_lo = two_prod(c, t)
    hi, lo = two_sum(p, p_lo + c * t_lo)
    if u < 0.0:
        return -hi, -lo, d_hi + d_lo
    return hi, lo, d_hi + d_lo


# exp and log with a low part (kernels/sl_math.h, sl_exp_hl, sl_log_hl: 2**-69), and triple-double
# arithmetic (a value is t0 + t1 + t2, decreasing), exp and log to ~2**-130: the Poisson NLL's differences

SIXTH = np.float64(C.SIXTH)  # 1/6 = SIXTH + SIXTH_LO
SIXTH_LO = np.float64(C.SIXTH_LO)
INV120 = np.float64(C.INV120)  # 1/120 = INV120 + INV120_LO
INV120_LO = np.float64(C.INV120_LO)
ET0, ET1, ET2, ET3, ET4, ET5, ET6, ET7, ET8, ET9, ET10, ET11 = map(np.float64, C.EXP_TAYLOR)
EXP_TD_RANGE = np.float64(C.EXP_TD_RANGE)


@pasted
def exp_hl(x):
    """e^x = hi + lo for |x| <= 690 (both parts normal), relative error below 2**-69: r + r_lo = x - n ln 2 (FMA),
    e^r = (1 + r) + r^2/2 + r^3/6 + r^4/24 + r^5/120 + r^6 T(r), the first five terms as exact or double-double
    products added by TwoSums, the tail in double; then e^(r + r_lo) = e^r (1 + r_lo) and 2**n."""
    n = np.rint(x * LOG2E)
    r1 = x - n * LN2_HI
    r = fma(-n, LN2_LO, r1)
    r_lo = fma(-n, LN2_LO, r1 - r)
    r2 = r * r
    r2_lo = fma(r, r, -r2)
    r3 = r2 * r
    r3_lo = fma(r2_lo, r, fma(r2, r, -r3))
    r4 = r2 * r2
    r4_lo = fma(r2 + r2, r2_lo, fma(r2, r2, -r4))
    r5 = r4 * r
    r5_lo = fma(r4_lo, r, fma(r4, r, -r5))
    c3 = r3 * SIXTH  # r^3/6
    c3_lo = fma(r3_lo, SIXTH, fma(r3, SIXTH_LO, fma(r3, SIXTH, -c3)))
    c4 = r4 * SIXTH  # r^4/6, then /4
    c4_lo = fma(r4_lo, SIXTH, fma(r4, SIXTH_LO, fma(r4, SIXTH, -c4)))
    c5 = r5 * INV120  # r^5/120
    c5_lo = fma(r5_lo, INV120, fma(r5, INV120_LO, fma(r5, INV120, -c5)))
    taylor = fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(fma(ET11, r, ET10), r, ET9), r, ET8), r, ET7), r, ET6), r, ET5),
                                  r, ET4), r, ET3), r, ET2), r, ET1), r, ET0)
    tail = (r5 * r) * taylor
    s = ONE + r
    s_lo = r - (s - ONE)  # 1 + r = s + s_lo (Fast2Sum)
    s, e2 = two_sum(s, HALF * r2)
    s, e3 = two_sum(s, c3)
    s, e4 = two_sum(s, 0.25 * c4)
    s, e5 = two_sum(s, c5)
    low = ((s_lo + e2) + (e3 + e4)) + (e5 + fma(HALF, r2_lo, c3_lo)) + (fma(0.25, c4_lo, c5_lo) + tail)
    low = fma(r_lo, s, low)  # e^(r + r_lo) = e^r (1 + r_lo)
    scale = pow2(n)
    hi = s + low
    return hi * scale, ((s - hi) + low) * scale


@pasted
def log_hl(x, x_lo, y):
    """log(x + x_lo) = hi + lo for x > 0 with |log x| <= 690, absolute error ~2**-69, from y = log(x, False):
    one Newton step on :func:`exp_hl`, log(x) = y + log1p(d), d = (x + x_lo) e^-y - 1 (|d| < 2**-42, x e^-y - 1
    formed exactly) and log1p(d) = d - d^2/2."""
    e, e_lo = exp_hl(-y)
    p = x * e
    d = (p - ONE) + (fma(x, e, -p) + fma(x, e_lo, x_lo * e))  # p - 1 is exact (Sterbenz)
    d = fma(-HALF * d, d, d)
    hi = y + d
    return hi, (y - hi) + d


@pasted
def scale2(p, n):
    """p 2**n for integral n in [-2044, 2046], rounded once (two factors)."""
    half = np.floor(n * HALF)
    return (p * pow2(half)) * pow2(n - half)


@helper
def td_set(h, m, l):
    """h + m + l (|h| the largest) renormalized by TwoSums: the same exact sum."""
    s, u = two_sum(m, l)
    a, v = two_sum(h, s)
    b, c = two_sum(v, u)
    return a, b, c


@helper
def td_mul(t0, t1, t2, b):
    """(t0 + t1 + t2) b to ~2**-155."""
    p1, e1 = two_prod(t0, b)
    p2, e2 = two_prod(t1, b)
    s, f = two_sum(e1, p2)
    return td_set(p1, s, f + e2 + t2 * b)


@helper
def td_div(t0, t1, t2, k):
    """(t0 + t1 + t2) / k for an integral k: each quotient's remainder is exact (FMA)."""
    q1 = t0 / k
    s, f = two_sum(fma(-q1, k, t0), t1)
    q2 = s / k
    return td_set(q1, q2, (fma(-q2, k, s) + f + t2) / k)


@helper
def td_add1(t0, t1, t2):
    h, e = two_sum(ONE, t0)
    m, f = two_sum(e, t1)
    return td_set(h, m, f + t2)


@helper
def exp_td(x):
    """(n, m0, m1, m2) with e^x = 2**n (m0 + m1 + m2) for finite |x| <= EXP_TD_RANGE, relative error below 2**-128
    (kernels/sl_math.h, sl_exp_td): x = n ln 2 + r in three pieces, e^r1 by Horner to r1^27/27!, each step in the
    precision its weight needs (double, double-double, triple-double), then times e^(r2 + r3)."""
    n = np.rint(x * LOG2E)
    a = x - n * LN2_HI  # exact (Sterbenz)
    p, p_err = two_prod(n, LN2_LO)
    r, e1 = two_sum(a, -p)
    r2, e2 = two_sum(e1, -p_err)
    r3 = e2 - n * LN2_LO2
    acc = ONE
    for k in range(27, 19, -1):
        acc = ONE + acc * r / k
    hi, lo = acc, 0.0
    for k in range(19, 8, -1):
        hi, lo = dd_mul(hi, lo, r, 0.0)
        hi, lo = dd_div(hi, lo, np.float64(k), 0.0)
        hi, lo = dd_add(hi, lo, ONE, 0.0)
    m0, m1, m2 = hi, lo, 0.0
    for k in range(8, 0, -1):
        m0, m1, m2 = td_mul(m0, m1, m2, r)
        m0, m1, m2 = td_div(m0, m1, m2, np.float64(k))
        m0, m1, m2 = td_add1(m0, m1, m2)
    q, q_err = two_prod(m0, r2)  # e^r (r2 + r3 + r2^2/2): the first product exact
    s, f = two_sum(m1, q)
    m0, m1, m2 = td_set(m0, s, f + m2 + q_err + m0 * r3 + m1 * r2 + HALF * m0 * r2 * r2)
    return n, m0, m1, m2


@helper
def log_td(x, x_lo):
    """log(x + x_lo) as a triple-double for positive finite x (|x_lo| <= ulp(x)/2), absolute error below 2**-130
    (kernels/sl_math.h, sl_log_td): y = log x refined by one Newton step on :func:`exp_td`."""
    y = log(x, False)
    n, m0, m1, m2 = exp_td(-y)
    scaled = scale2(x, n)  # about 1/m0: exact
    scaled_lo = scale2(x_lo, n)
    p, p_err = two_prod(scaled, m0)
    q, q_err = two_prod(scaled, m1)
    u, u_err = two_prod(scaled_lo, m0)
    d, c = two_sum(p - ONE, p_err)  # p - 1 is exact (Sterbenz)
    d, e = two_sum(d, q)
    c += e
    d, e = two_sum(d, u)
    c += e + (q_err + u_err + scaled * m2 + scaled_lo * m1)
    d, d_lo = two_sum(d, c)
    return td_set(y, d, d_lo - HALF * d * d + d * d * d / 3.0)


# ---------------------------------------------------------------------------------------------------
# Indexing.  Array loops index with unsigned integers (urange): for a signed index that LLVM cannot
# prove non-negative (x[base + j]) Numba keeps a select per element to wrap negative indices, which
# turns the vector loads into gathers (5x slower).  Slices (x[lo:hi]) avoid that too, but each one
# costs an atomic reference-count increment and decrement: ~100 cycles per row in short rows.

@pasted
def urange(lo, hi):
    """range(lo, hi) with uint64 indices (lo <= hi, both >= 0)."""
    return range(np.uint64(lo), np.uint64(hi))


# ---------------------------------------------------------------------------------------------------
# Reductions

#: Accumulators of the lane sums: a few vectors' worth.
LANES = 32


@lane_jit
def max_of(values, lo, hi):
    """max(values[lo:hi]) (hi > lo) as float64, NaN if any is NaN.  maximum is associative, so
    reassoc (which lets LLVM keep one running maximum per vector lane) changes nothing but the speed."""
    m = values[lo]
    for j in urange(lo, hi):
        m = maximum(m, values[j])
    return np.float64(m)


@lane_jit
def max_min_of(values, lo, hi):
    """(max, min) of values[lo:hi] (hi > lo) as float64, both NaN if any is NaN, in one pass (as max_of)."""
    m = values[lo]
    low = values[lo]
    for j in urange(lo, hi):
        m = maximum(m, values[j])
        low = minimum(low, values[j])
    return np.float64(m), np.float64(low)


# The lane sums: LANES explicit accumulators lanes[0] (with the TwoSum error of each addition in
# lanes[1] unless cheap, and a count of ones in lanes[2]).  The loop over the lanes of a block is a plain
# map, which LLVM vectorizes under strict IEEE rules, so no reassociation can drop an error term.
# Full grade: error ~2**-104 relative for terms of one sign; cheap: plain float64 additions.  With off_max
# the terms equal to 1 are counted instead of added: for e_j = e^{x_j - max} that gives
# s = sum_{j != k} e_j, the log-sum-exp sum without its first maximum, ties counted exactly.

@helper
def lanes_add(lanes, lane, v, cheap, off_max):
    is_one = off_max and v == ONE  # NaN is not 1: it stays in the sum
    v = 0.0 if is_one else v
    if not cheap:
        total, err = two_sum(lanes[0, lane], v)
        lanes[0, lane] = total
        lanes[1, lane] += err
    else:
        lanes[0, lane] += v
    if off_max:  # without it, the + 0.0 would still be a load, an addition and a store per term
        lanes[2, lane] += 1.0 if is_one else 0.0


@helper
def lanes_clear(lanes):
    for lane in range(LANES):
        lanes[0, lane] = 0.0
        lanes[1, lane] = 0.0
        lanes[2, lane] = 0.0


@helper
def lanes_total(lanes, cheap, off_max):
    """(hi, lo) of the lane sums (plus the ones less one with off_max)."""
    total = 0.0
    compensation = 0.0
    for lane in range(LANES):
        total, compensation = neumaier_add(total, compensation, lanes[0, lane])
        compensation += lanes[1, lane]
    if off_max:
        ones = 0.0
        for lane in range(LANES):
            ones += lanes[2, lane]
        total, compensation = neumaier_add(total, compensation, ones - ONE)  # ties beyond the first max
    return two_sum(total, compensation)


@helper
def lanes_add_values(lanes, values, lo, hi, cheap, off_max):
    """Add values[lo:hi] to the lane sums, values[lo + i] to lane i % LANES: a sum that comes in chunks, each a
    multiple of LANES long but the last, gets the same lanes, term by term, as one call on all of it."""
    for start in range(lo, hi, LANES):
        block = np.uint64(start)
        for lane in urange(0, min(LANES, hi - start)):
            lanes_add(lanes, lane, values[block + lane], cheap, off_max)


@helper
def sum_in_lanes(values, lo, hi, lanes, cheap, off_max):
    lanes_clear(lanes)
    lanes_add_values(lanes, values, lo, hi, cheap, off_max)
    return lanes_total(lanes, cheap, off_max)


@helper
def sum_in_order(values, lo, hi, cheap, off_max):
    total = 0.0
    compensation = 0.0
    ones = 0.0
    for j in urange(lo, hi):
        v = values[j]
        if off_max and v == ONE:
            ones += 1.0
        elif not cheap:
            total, compensation = neumaier_add(total, compensation, v)
        else:
            total += v
    if off_max:
        total, compensation = neumaier_add(total, compensation, ones - ONE)
    return two_sum(total, compensation)


@helper
def sum_lanes(values, lo, hi, lanes, cheap, off_max):
    """(hi, lo): the sum of values[lo:hi] (float64), or with off_max the sum s of the comment above.
    Fewer than 4 LANES terms are added in order (Neumaier unless cheap)."""
    if hi - lo >= 4 * LANES:
        return sum_in_lanes(values, lo, hi, lanes, cheap, off_max)
    return sum_in_order(values, lo, hi, cheap, off_max)


# ---------------------------------------------------------------------------------------------------
# Chunk buffers.  An optional array (a zero-size array when absent) must not appear in a vectorized
# loop, even behind a flag: LLVM then checks at run time that its address range [data, data + n) does
# not overlap the loop's other arrays, and the range of a zero-size array can cover the scratch
# buffers, which sends the whole loop down its scalar path (15x slower).  So optional inputs are
# copied into chunk buffers first and outputs copied out after, each in a loop of its own.

@helper
def load_chunk(source, start, count, buf, default):
    """buf[:count] = source[start:start + count] as float64, or default where source is absent."""
    if source.size > 0:
        first = np.uint64(start)
        for j in urange(0, count):
            buf[j] = source[first + j]
    else:
        for j in urange(0, count):
            buf[j] = default


@helper
def store_chunk(target, start, count, buf):
    """target[start:start + count] = buf[:count] (rounded to target's type) where target is present."""
    if target.size > 0:
        first = np.uint64(start)
        for j in urange(0, count):
            target[first + j] = buf[j]


@helper
def flagged(flags, count, indices):
    """Gather the j < count with flags[j] into indices; returns how many.  A loop over the flagged terms
    alone: a loop over all with the slow formula behind the flag would be if-converted by the vectorizer,
    i.e. run the slow formula on every lane."""
    m = 0
    for j in range(count):
        if flags[j]:
            indices[m] = j
            m += 1
    return m


# ---------------------------------------------------------------------------------------------------
# Block sums (kernels/stableloss.h): block b holds rows [b * rows_per_block, (b + 1) * rows_per_block)

#: Rows per pass of an elementwise kernel: its buffers stay in the L1 cache.
CHUNK = 1024


@helper
def chunk_stop(start, n, size, rows_per_block):
    """The end of the run of at most size rows from start that stays within start's block."""
    return min(start + size, n, (start // rows_per_block + 1) * rows_per_block)


@helper
def add_block_sums(block_sums, rows_per_block, n, start, values, count, lanes, cheap, running):
    """Add the losses values[:count] of rows start .. start + count - 1 (within one block) to its sum,
    carried in running = [total, compensation] until the block is complete (compensated unless cheap)."""
    hi, lo = sum_lanes(values, 0, count, lanes, cheap, False)
    total, compensation = neumaier_add(running[0], running[1], hi)
    running[0] = total
    running[1] = compensation + lo
    stop = start + count
    if stop % rows_per_block == 0 or stop == n:
        block_sums[start // rows_per_block] = running[0] + running[1]
        running[0] = 0.0
        running[1] = 0.0


# ---------------------------------------------------------------------------------------------------
# float32 lanes (kernels/sl_math.h, sl_expf_neg_v and sl_log1pf_unit_v): for float32 kernels whose
# outputs do not cancel, 8 float lanes instead of 4 double ones.  Same coefficients and order of
# operations as the C functions, so their exhaustive error figures hold: expf_neg <= 0.98 ulp on
# [-86, 0], log1pf_unit <= 0.71 ulp (of float32) on [0, 1] before the caller rounds (tests/test_numba.py
# measures the Numba ones: 0.9785 and 0.6503 ulp on every 7th float32).  No special
# values: callers send only arguments in these ranges.  The constants are np.float32 globals and every
# operation takes float32 operands, so nothing is widened to float64 unless the code says so.

ZERO_F = np.float32(0.0)
ONE_F = np.float32(1.0)
LOG2E_F = np.float32(C.LOG2E_F)
LN2_HI_F = np.float32(C.LN2_HI_F)  # 16 significant bits: n * LN2_HI_F is exact, |n| <= 2**8
LN2_LO_F = np.float32(C.LN2_LO_F)
ROUND_MAGIC_F = np.float32(12582912.0)  # 1.5 * 2**23: bits(t) - ROUND_MAGIC_F_BITS = n for t = n + ROUND_MAGIC_F
ROUND_MAGIC_F_BITS = np.int32(0x4B400000)
#: expf_neg(z) takes -EXPF_NEG_RANGE <= z <= 0 (its result is normal there).
EXPF_NEG_RANGE = np.float32(C.EXPF_NEG_RANGE)

# The float polynomials of the contract (_constants.py): exp's q of degree 5, log1p's Q of degree 9.
EF0, EF1, EF2, EF3, EF4, EF5 = map(np.float32, C.EXPF_Q)
LF0, LF1, LF2, LF3, LF4, LF5, LF6, LF7, LF8, LF9 = map(np.float32, C.LOG1PF_Q)


@pasted
def expf_neg(z):
    """e^z for a float32 z in [-EXPF_NEG_RANGE, 0], as a float32 (<= 0.98 ulp).

    n = rint(z / ln 2) by the 1.5 2**23 shift (one rounding in the fma; nothing reassociates here), r =
    z - n ln 2, e^r = 1 + (r + r^2 q(r)) rounded once, and 2**n added to the exponent field.
    """
    t = fma(z, LOG2E_F, ROUND_MAGIC_F)  # ulp(t) = 1: t = n + 1.5 2**23
    n = t - ROUND_MAGIC_F  # exact
    r = fma(-n, LN2_LO_F, fma(-n, LN2_HI_F, z))
    r2 = r * r
    # q = c0 + r (c1 + r Q(r)), Q in pairs on r^2 (pairs for all six would exceed 1 ulp, sl_math.h)
    q = fma(fma(EF5, r, EF4), r2, fma(EF3, r, EF2))
    q = fma(fma(q, r, EF1), r, EF0)
    p = fma(r2, q, r)  # e^r - 1
    scale = (as_int(t) - ROUND_MAGIC_F_BITS) << 23  # n 2**23: 2**n in the exponent field
    return as_float(np.int32(as_int(ONE_F + p) + scale))


@pasted
def log1pf_q(e):
    """Q(e) = (log1p(e) - e) / e^2 as a float32 for a float32 e in [0, 1]: in float32 lanes, by pairs on
    e^2 (half the dependent steps of Horner).  :func:`log1pf_unit` finishes log1p(e)."""
    e2 = e * e
    return fma(fma(fma(fma(fma(LF9, e, LF8), e2, fma(LF7, e, LF6)), e2, fma(LF5, e, LF4)), e2, fma(LF3, e, LF2)),
               e2, fma(LF1, e, LF0))


@pasted
def log1pf_unit(e, q):
    """log1p(e) = e + e^2 Q(e) as a float64, for a float32 e in [0, 1] and q = log1pf_q(e) (<= 0.71 ulp of
    float32 once rounded by the caller): in float64, where e^2 is exact and the fma's rounding far below
    a float32 ulp.  Kept apart from log1pf_q so that a caller can run the float32 step on 8 lanes."""
    wide_e = np.float64(e)
    return fma(wide_e * wide_e, np.float64(q), wide_e)
