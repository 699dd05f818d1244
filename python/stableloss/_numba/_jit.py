"""The one place that owns the Numba options, and the scalar numeric primitives of the kernels.

Decorators
----------
:func:`jit` compiles a kernel or a strict helper: ``cache=True`` (machine code kept next to the
sources, see the package docstring for read-only installs), ``error_model="numpy"`` (no
ZeroDivisionError checks: x/0 is inf or NaN as in IEEE arithmetic), ``nogil=True`` (the dispatcher
runs kernels on several threads) and no fast-math flag at all, so NaN and +-inf keep their meaning
and the error-free transformations below are evaluated exactly as written.
:func:`lane_jit` adds the single flag ``reassoc``, for loops that only add up a buffer: without it
LLVM must add in source order, one element after the other; with it the loop is split into vector
lanes.  Those loops hold nothing but the additions (and, in :func:`sum_off_max`, exact compares), so
``reassoc`` cannot fold a rounding-error term or a magic-number rounding (numerics.md 4.1) anywhere.
Such a helper is compiled as a function of its own, and LLVM inlines it into the strict caller
keeping the flag on its own instructions only; ``inline="always"`` would paste it into the caller's
Numba IR and give it the caller's (strict) flags.  ``contract`` is never used: every fused
multiply-add is an explicit :func:`fma`, so results do not depend on the compiler's choices.
:func:`inline` compiles a primitive that is pasted into its callers.

Precision tiers
---------------
Every kernel computes in float64.  The primitives take ``wide``: True in float64 kernels (<= 1 ulp of
float64: two-constant Cody-Waite reductions, longer polynomials, the rounding error of the argument
carried along), False in float32 kernels (relative error ~1e-11, far below the float32 rounding at
the store).  ``wide`` comes from :func:`is_wide`, a compile-time constant for the input dtype, so
LLVM drops the branch not taken before it vectorizes.

Constants are module-level ``np.float64`` / ``np.int64`` globals: Numba freezes them as typed
constants.  Polynomials: minimax fits on the reduced range (weighted least squares on Chebyshev
nodes, checked against mpmath); the error figures quoted are relative, of the primitive's result.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}


def jit(func):
    """A kernel or strict helper: IEEE arithmetic throughout (no fast-math flag)."""
    return njit(**_OPTIONS)(func)


def lane_jit(func):
    """A loop that only adds a buffer up: ``reassoc`` lets LLVM split the sum into vector lanes."""
    return njit(fastmath={"reassoc"}, **_OPTIONS)(func)


def inline(func):
    """A scalar primitive, pasted into its caller's Numba IR (and so under the caller's flags)."""
    return njit(inline="always", **_OPTIONS)(func)


# ---------------------------------------------------------------------------------------------------
# LLVM intrinsics: exact fused multiply-add, NaN-propagating maximum, bit casts.

def _float_type(numba_type):
    return {types.float32: ir.FloatType(), types.float64: ir.DoubleType()}.get(numba_type)


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma: vfmadd on FMA hardware, libm fma elsewhere)."""
    if not a == b == c == types.float64:
        return None

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)

    return types.float64(a, b, c), codegen


@intrinsic
def maximum(typingctx, a, b):
    """IEEE 754-2019 maximum: NaN if either is NaN.  LLVM vectorizes it as a reduction, unlike a
    compare-and-select max (numerics.md 4.2)."""
    if a != b or _float_type(a) is None:
        return None

    def codegen(context, builder, signature, args):
        t = _float_type(signature.args[0])
        fn = builder.module.declare_intrinsic("llvm.maximum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def as_int(typingctx, x):
    """The bits of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def as_float(typingctx, i):
    """The float64 with the bits of an int64."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


def is_wide(x):
    """True if the array x holds float64 (<= 1-ulp primitives), False for float32 (compile-time)."""


@overload(is_wide, inline="always")
def _is_wide(x):
    wide = x.dtype == types.float64
    return lambda x: wide


# ---------------------------------------------------------------------------------------------------
# Constants

INF = np.float64(np.inf)
NAN = np.float64(np.nan)
ONE = np.float64(1.0)
HALF = np.float64(0.5)
LOG2E = np.float64(1.4426950408889634)
LN2 = np.float64(0.6931471805599453)
LN2_HI = np.float64(float.fromhex("0x1.62e42fee00000p-1"))  # 32 significant bits: n * LN2_HI is exact
LN2_LO = np.float64(float.fromhex("0x1.a39ef35793c76p-33"))  # ln 2 - LN2_HI, to 1e-26
ROUND_MAGIC = np.float64(6755399441055744.0)  # 1.5 * 2**52: bits(n + ROUND_MAGIC) end in the integer n
ROUND_MAGIC_BITS = np.int64(0x4338000000000000)
EXP_BIAS = np.int64(1023)
MANTISSA_MASK = np.int64(0x000FFFFFFFFFFFFF)
SQRT_HALF_BITS = np.int64(0x3FE6A09E667F3BCD)
TWO_P64 = np.float64(2.0**64)
TWO_M64 = np.float64(2.0**-64)
TWO_P54 = np.float64(2.0**54)
SMALLEST_NORMAL = np.float64(2.0**-1022)
EXP_UNDERFLOW = np.float64(-746.0)  # e^x < 2**-1075 below: rounds to 0 (and 2**(n + 64) stays normal)
EXP_UNDERFLOW_NARROW = np.float64(-708.0)  # float32 kernels: e^x < 2**-1021, far below float32
EXP_OVERFLOW = np.float64(709.79)  # just above log(DBL_MAX) = 709.7827


def _coeffs(*hex_values):
    return tuple(np.float64(float.fromhex(h)) for h in hex_values)


# (e^r - 1 - r) / r^2 on |r| <= ln(2)/2.  Wide: degree 9, exp error 1.7e-17; narrow: degree 6, 4.4e-12.
EW0, EW1, EW2, EW3, EW4, EW5, EW6, EW7, EW8, EW9 = _coeffs(
    "0x1.0000000000001p-1", "0x1.5555555555558p-3", "0x1.5555555553d62p-5", "0x1.111111110f804p-7",
    "0x1.6c16c1788c0adp-10", "0x1.a01a01b00bcc2p-13", "0x1.a019b90c85237p-16", "0x1.71ddf6b50d27bp-19",
    "0x1.2891860db4c48p-22", "0x1.af6328b195d6fp-26")
EN0, EN1, EN2, EN3, EN4, EN5, EN6 = _coeffs(
    "0x1.fffffffffc0c1p-2", "0x1.5555556753f9fp-3", "0x1.5555556f094cep-5", "0x1.1110c630f3fbcp-7",
    "0x1.6c1652306a1fap-10", "0x1.a1517ca5aabc6p-13", "0x1.a15a5f59c78e8p-16")
# R(z)/z with R(z) = (2 atanh(s) - 2s)/s, z = s^2 <= 0.0295.  Wide: degree 7, 5.5e-17 of R; narrow:
# degree 4, 1.1e-11 of R (R itself is below 2% of the logarithm).
LW0, LW1, LW2, LW3, LW4, LW5, LW6, LW7 = _coeffs(
    "0x1.5555555555555p-1", "0x1.9999999999a38p-2", "0x1.2492492476b57p-2", "0x1.c71c72017eefcp-3",
    "0x1.745cf8f5e74d2p-3", "0x1.3b1c384373a09p-3", "0x1.0fbe4c84a99a4p-3", "0x1.0c0671cdd5dd3p-3")
LN0, LN1, LN2C, LN3, LN4 = _coeffs(
    "0x1.5555555564fb7p-1", "0x1.999998ca5dd3cp-2", "0x1.24932450d3d95p-2", "0x1.c67aaae03341cp-3",
    "0x1.8c8f47d2081fbp-3")


# ---------------------------------------------------------------------------------------------------
# Error-free transformations and compensated sums

@inline
def two_sum(a, b):
    """(s, err) with s = fl(a + b) and s + err == a + b exactly (Knuth); err = 0 where s is not finite."""
    s = a + b
    b_virtual = s - a
    err = (a - (s - b_virtual)) + (b - b_virtual)
    return s, (err if abs(s) < INF else 0.0)


@inline
def two_diff(a, b):
    """(d, err) with d = fl(a - b) and d + err == a - b exactly; err = 0 where d is not finite."""
    return two_sum(a, -b)


@inline
def two_prod(a, b):
    """(p, err) with p = fl(a * b) and p + err == a * b exactly (an fma recovers the rounding error);
    err = 0 where p is not finite."""
    p = a * b
    err = fma(a, b, -p)
    return p, (err if abs(p) < INF else 0.0)


@inline
def neumaier_add(total, compensation, value):
    """Add value to the compensated sum total + compensation (Neumaier: the rounding error of each
    addition is kept in compensation and added back at the end)."""
    s, err = two_sum(total, value)
    return s, compensation + err


# ---------------------------------------------------------------------------------------------------
# exp

@inline
def pow2(n):
    """2**n for an integral float64 n in [-1022, 1023], built in the exponent field."""
    return as_float((as_int(n + ROUND_MAGIC) - ROUND_MAGIC_BITS + EXP_BIAS) << 52)


@inline
def _exp_reduced(x, x_lo, wide):
    """(m, n) with e^(x + x_lo) = m 2**n, n = rint(x / ln 2) (|x_lo| <= ulp(x), m in [0.7, 1.42])."""
    n = np.rint(x * LOG2E)  # rint, not a magic-number add and subtract, which reassoc would fold
    if wide:
        r_hi = x - n * LN2_HI  # exact: n * LN2_HI has <= 43 bits and x - n * LN2_HI fits in 53
        r = fma(-n, LN2_LO, r_hi)
        c = fma(-n, LN2_LO, r_hi - r) + x_lo  # c = x + x_lo - n ln 2 - r, the part r rounded off
        q = fma(fma(fma(fma(fma(fma(fma(fma(fma(EW9, r, EW8), r, EW7), r, EW6), r, EW5), r, EW4), r, EW3),
                        r, EW2), r, EW1), r, EW0)
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


@inline
def exp_nonpos(x, x_lo, wide):
    """e^(x + x_lo) for x <= 0 (also -inf -> 0, NaN -> NaN); x_lo = 0 for a plain argument.

    Wide: <= 1 ulp, subnormal results rounded once.  Narrow: results below 2**-1021 are 0.
    """
    m, n = _exp_reduced(x, x_lo, wide)
    if wide:
        value = (m * pow2(n + 64.0)) * TWO_M64  # 2**(n + 64) stays normal; one rounding into subnormals
        return 0.0 if x < EXP_UNDERFLOW else value  # "x < cut ? 0 : e" keeps NaN, maps -inf to 0
    value = m * pow2(n)
    return 0.0 if x < EXP_UNDERFLOW_NARROW else value


@inline
def exp(x, wide):
    """e^x for any float64 x (<= 1 ulp wide), 0 below -746, inf above log(DBL_MAX), NaN stays NaN."""
    m, n = _exp_reduced(x, 0.0, wide)
    half = np.floor(n * HALF)
    value = (m * pow2(half)) * pow2(n - half)  # two factors: 2**n alone would leave the exponent range
    value = INF if x > EXP_OVERFLOW else value
    return 0.0 if x < EXP_UNDERFLOW else value


# ---------------------------------------------------------------------------------------------------
# log, log1p

@inline
def _log_split(x):
    """(f, k) with x = 2**k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), f exact, for positive finite x."""
    tiny = x < SMALLEST_NORMAL
    bits = as_int(x * TWO_P54 if tiny else x)  # subnormals: scale into the normal range first
    offset = bits - SQRT_HALF_BITS
    k_bits = offset >> 52  # the exponent that brings x into [sqrt(1/2), sqrt(2))
    m = as_float(bits - (k_bits << 52))
    k = as_float(k_bits + ROUND_MAGIC_BITS) - ROUND_MAGIC  # int64 -> float64 without a conversion op
    return m - ONE, (k - 54.0 if tiny else k)  # m - 1 is exact (Sterbenz)


@inline
def _log1p_reduced(f, k, c, wide):
    """k ln 2 + log1p(f) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1) and a small correction c.

    log1p(f) = 2 atanh(s), s = f / (2 + f) = f - f^2/2 + s (f^2/2 + R(s^2)),  R(z) = sum 2 z^j/(2j + 1).
    """
    s = f / (2.0 + f)
    z = s * s
    hfsq = HALF * f * f
    if wide:
        p = fma(fma(fma(fma(fma(fma(fma(LW7, z, LW6), z, LW5), z, LW4), z, LW3), z, LW2), z, LW1), z, LW0)
        rest = s * (hfsq + z * p) + fma(k, LN2_LO, c)
        return fma(k, LN2_HI, f - (hfsq - rest))  # k LN2_HI + f is exact-ish; the small terms first
    p = fma(fma(fma(fma(LN4, z, LN3), z, LN2C), z, LN1), z, LN0)
    return fma(k, LN2, (f - hfsq) + fma(s, hfsq + z * p, c))


@inline
def log(x, wide):
    """Natural log; 0 -> -inf, inf -> inf, x < 0 or NaN -> NaN.  Wide: <= 1 ulp."""
    f, k = _log_split(x)
    value = _log1p_reduced(f, k, 0.0, wide)
    value = -INF if x == 0.0 else value
    value = INF if x == INF else value
    return value if x >= 0.0 else NAN


@inline
def log1p(x, wide):
    """log(1 + x); -1 -> -inf, inf -> inf, x < -1 or NaN -> NaN.  Wide: <= 1 ulp."""
    u = ONE + x
    c = x - (u - ONE)  # 1 + x = u + c exactly (u - 1 is exact for u in [1/2, 2**53])
    c = 0.0 if u == INF else c / u  # log(u + c) = log(u) + c/u + O(c^2)
    f, k = _log_split(u)
    value = _log1p_reduced(f, k, c, wide)
    value = -INF if u == 0.0 else value
    value = INF if u == INF else value
    return value if u >= 0.0 else NAN


# ---------------------------------------------------------------------------------------------------
# Sums over buffers (vectorized lanes)

#: Elements per lane sum; the lane sums are added with Neumaier compensation.  Each of LLVM's ~32
#: lane accumulators then adds about 8 terms: the rounding error stays at a few units of 2**-53.
CHUNK = 256


@lane_jit
def lane_sum(buf, lo, hi):
    """buf[lo:hi].sum() in vector lanes (float64 buffer)."""
    total = 0.0
    for j in range(lo, hi):
        total += buf[j]
    return total


@lane_jit
def sum_off_max(e, lo, hi):
    """(sum of e[j] != 1, count of e[j] == 1) over e[lo:hi].

    e_j = exp(x_j - max) is exactly 1 at the row maximum and below 1 elsewhere, so the first sum is the
    sum over j != k of log-sum-exp with the ties counted apart (NaN is not 1: it propagates)."""
    total = 0.0
    ones = 0.0
    for j in range(lo, hi):
        v = e[j]
        is_one = v == 1.0
        total += 0.0 if is_one else v
        ones += 1.0 if is_one else 0.0
    return total, ones


@inline
def compensated_sum(buf, n):
    """(hi, lo): buf[:n].sum() as an unevaluated sum, lane sums of CHUNK elements added by Neumaier."""
    total = 0.0
    compensation = 0.0
    for start in range(0, n, CHUNK):
        total, compensation = neumaier_add(total, compensation, lane_sum(buf, start, min(start + CHUNK, n)))
    return two_sum(total, compensation)
