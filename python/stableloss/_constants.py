"""The constants of the numeric primitives, one table for the C and the Numba kernels.

The Numba primitives (``_numba/_jit.py``) take them from here; ``kernels/sl_math.h`` spells the same
values in C, under the names ``SL_<NAME>`` (scalars) and ``sl_<name>`` (coefficient arrays), and
tests/test_spec.py checks that it does.  The numpy reference uses numpy's own exp and log.  Each
value is written as C writes it (hexadecimal floats: exact).
"""

F = float.fromhex

#: log2(e), to round x / ln 2 as x log2(e).
LOG2E = F("0x1.71547652b82fep+0")
#: ln 2 split for exact range reduction: n LN2_HI is exact for |n| < 2^11 (42 bits), ln 2 = LN2_HI +
#: LN2_LO to 2^-102, and LN2_LO2 the rest (double-double work).
LN2_HI = F("0x1.62e42fefa3800p-1")
LN2_LO = F("0x1.ef35793c76730p-45")
LN2_LO2 = F("0x1.f97b57a079a19p-103")
#: exp underflows to 0 below this argument, and 2^(n + 64) stays normal above it.
EXP_MIN_ARG = -746.0
#: |x| <= EXP_NORMAL: e^x is a normal double (the fast path of the vector exp, no range check).
EXP_NORMAL = 708.0
#: The smallest positive normal double, and the power of two that scales a subnormal into the normals.
SMALLEST_NORMAL = F("0x1p-1022")
SUBNORMAL_SCALE = F("0x1p54")

#: exp(r) = 1 + r + r^2 q(r) on |r| <= ln 2 / 2, q fitted to (e^r - 1 - r) / r^2 (Chebyshev
#: interpolation in mpmath).  Full grade (float64 results), degree 10: |error of exp| <= 1.7e-19; cheap
#: (float32 results), degree 6: 3.3e-12.
EXP_Q_FULL = tuple(map(F, (
    "0x1.0000000000000p-1", "0x1.5555555555557p-3", "0x1.5555555555556p-5", "0x1.111111111009cp-7",
    "0x1.6c16c16c162b0p-10", "0x1.a01a01ac0a9eep-13", "0x1.a01a01a6ec522p-16", "0x1.71de01c3fc936p-19",
    "0x1.27e4db25ce3adp-22", "0x1.af4ecd2129492p-26", "0x1.1f7385560be05p-29")))
EXP_Q_CHEAP = tuple(map(F, (
    "0x1.0000000000000p-1", "0x1.5555556787f3cp-3", "0x1.5555555c9c2f7p-5", "0x1.1110c5a070ca9p-7",
    "0x1.6c168516931abp-10", "0x1.a152a983c7079p-13", "0x1.a11412e92d01bp-16")))

#: log(1 + f) = 2 atanh(s) = 2s + s R(z), s = f / (2 + f), z = s^2, |s| <= 0.1716: R(z) = z P(z), P
#: fitted to (2 atanh(s) - 2s) / s^3.  Full, degree 6: relative error of log <= 4.6e-18; cheap, degree
#: 4: 1.1e-13.
LOG_P_FULL = tuple(map(F, (
    "0x1.5555555555558p-1", "0x1.9999999995204p-2", "0x1.2492492e09d1ap-2", "0x1.c71c62c63e016p-3",
    "0x1.7462bd8e53c17p-3", "0x1.39fd39474ad34p-3", "0x1.2b6686d1072f3p-3")))
LOG_P_CHEAP = tuple(map(F, (
    "0x1.555555556511fp-1", "0x1.999998c94ca2ep-2", "0x1.2493253c7ee51p-2", "0x1.c67a2fb83241ap-3",
    "0x1.8c98fb3524fadp-3")))

#: exp as a double-double (exp_hl, the Poisson NLL): e^r = 1 + r + r^2/2 + r^3/6 + r^4/24 + r^5/120 + r^6 T(r),
#: with 1/6 = SIXTH + SIXTH_LO and 1/120 = INV120 + INV120_LO (the products r^3/6, r^4/24 and r^5/120 to
#: ~2^-106) and T the Taylor series 1/6! + r/7! + ... to 1/17! (its truncation below 2^-71 of e^r on
#: |r| <= ln 2/2).
SIXTH = F("0x1.5555555555555p-3")
SIXTH_LO = F("0x1.5555555555555p-57")
INV120 = F("0x1.1111111111111p-7")
INV120_LO = F("0x1.1111111111111p-63")
EXP_TAYLOR = tuple(map(F, (
    "0x1.6c16c16c16c17p-10", "0x1.a01a01a01a01ap-13", "0x1.a01a01a01a01ap-16",
    "0x1.71de3a556c734p-19", "0x1.27e4fb7789f5cp-22", "0x1.ae64567f544e4p-26", "0x1.1eed8eff8d898p-29",
    "0x1.6124613a86d09p-33", "0x1.93974a8c07c9dp-37", "0x1.ae7f3e733b81fp-41", "0x1.ae7f3e733b81fp-45",
    "0x1.952c77030ad4ap-49")))
#: The triple-double exp (exp_td) takes |x| <= EXP_TD_RANGE: n = round(x / ln 2) keeps n LN2_HI exact (|n| < 2^11).
EXP_TD_RANGE = 1100.0

# The float32 lanes (BCE's fast path): float arithmetic throughout.

#: log2(e) and ln 2 in float: n LN2_HI_F is exact for |n| <= 2^8 (16 bits).
LOG2E_F = F("0x1.715476p+0")
LN2_HI_F = F("0x1.62e400p-1")
LN2_LO_F = F("0x1.7f7d1cp-20")
#: The float exp of the lanes takes -EXPF_NEG_RANGE <= z <= 0, where its result is a normal float.
EXPF_NEG_RANGE = 86.0
#: exp(r) = 1 + r + r^2 q(r) on |r| <= ln 2 / 2, q of degree 5 (least squares on Chebyshev nodes in
#: mpmath; contributes <= 0.012 ulp).
EXPF_Q = tuple(map(F, ("0x1.000000p-1", "0x1.555556p-3", "0x1.5554eap-5", "0x1.1110c6p-7", "0x1.6d431ap-10",
                       "0x1.a1516ep-13")))
#: log1p(e) = e + e^2 Q(e) on [0, 1], Q of degree 9 (weighted least squares on 3000 Chebyshev nodes in
#: mpmath, each coefficient rounded to float before the next ones were refitted; contributes <= 0.024
#: ulp).  No division and no argument reduction: the singularity at -1 is 3 half-widths from [0, 1].
LOG1PF_Q = tuple(map(F, ("-0x1.000000p-1", "0x1.55549cp-2", "-0x1.ffd92ep-3", "0x1.97f9b6p-3", "-0x1.4be012p-3",
                         "0x1.0281b6p-3", "-0x1.5c7a80p-4", "0x1.64daf2p-5", "-0x1.d57cf4p-7", "0x1.20eba6p-9")))
