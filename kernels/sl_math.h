/*
 * sl_math.h -- numeric primitives shared by every kernel family, as static inline functions in two
 * forms: scalar (portable C, compiled for the baseline ISA, no FMA needed) and vector (sl_vd of SL_L
 * doubles, `SL_VEC` functions: AVX2+FMA, or AVX-512 in the AVX-512 unit; sl_vec.h).  Both forms use
 * the same formulas and constants.
 *
 * Grades.  Every primitive that approximates takes `int cheap` (a compile-time constant once inlined):
 *   cheap = 1: for float32 outputs computed in double and rounded once: shorter polynomials, relative
 *              error <= 4e-12, far below half a float ulp (2^-24).
 *   cheap = 0: <= 1 ulp (float64 outputs, and float32 outputs that may cancel).
 *   cheap = SL_CHEAP_SUM (2): as cheap = 1 but a shorter exp polynomial, relative error 3.1e-9 (0.05
 *              of a float ulp), for float32 outputs that are sums, products and quotients of
 *              exponentials and other non-negative terms, never differences, so that the error reaches
 *              the output unamplified (cross-entropy without coefficients: 14% less time).
 * Measured errors: 2^22 random arguments per range (uniform, and log-uniform over the whole
 * exponent range) plus the range ends and special values, against x87 long double expl / logl /
 * log1pl (whose own error is below 0.001 ulp of double); "ulp" = ulp of the exact result, subnormal
 * results included.  Scalar and vector forms alike unless two figures are given (scalar / vector; the
 * AVX2 and AVX-512 vector forms compute the same values, tests/primitives.c).
 *   sl_exp      full: 0.75 / 0.78 ulp on [-745.13, 709.78]    cheap: relative 3.9e-12
 *                                                              SL_CHEAP_SUM: relative 3.1e-9
 *   sl_log      full: 0.86 ulp on [2^-1074, DBL_MAX]           cheap: relative 9.8e-14
 *   sl_log1p    full: 0.87 ulp on [0, 2^1000]                  cheap: relative 9.8e-14
 * The double-double forms (scalar, for slow paths), against mpmath at 60 digits:
 *   sl_log_dd   relative error of hi + lo below 2^-104 on [2^-1074, DBL_MAX]
 *   sl_exp_dd   below 2^-100 on [-630, 0] (below -630 the low part is subnormal: ~2^-53)
 * The fast double-double forms (scalar and vector, for hot loops that need more than double; sl_exp_hilo
 * also takes the low part of its argument), against mpmath at 60 digits:
 *   sl_exp_hilo  below 2^-58 on [-690, 0] (the low part subnormal below: 2^-54 at -708)
 *   sl_log_hilo  below 2^-56.6 on the positive normal doubles
 * The finer double-double forms (scalar and vector, the Poisson NLL's differences; slower than the fast ones),
 * against mpmath at 60 digits:
 *   sl_exp_hl   relative error of hi + lo below 2^-69 on [-690, 690]
 *   sl_log_hl   absolute error below 2^-69 on [e^-690, e^690]
 * The triple-double forms (scalar, the slow paths of the Poisson NLL), against mpmath at 80 digits:
 *   sl_exp_td   relative error below 2^-134 on [-1100, 1100]
 *   sl_log_td   absolute error below 2^-136 on [2^-1074, DBL_MAX]
 * Compile with -ffp-contract=off: the scalar forms round exactly as written (error-free
 * transformations depend on it); the vector forms ask for FMA explicitly.
 */
#ifndef SL_MATH_H
#define SL_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SL_X86 1
#else
#define SL_X86 0
#endif

#define SL_INLINE static inline __attribute__((always_inline))
#if SL_X86
#include "sl_vec.h"
#endif
/* A kernel's slow path (rare for typical inputs, though some take it throughout, e.g. soft labels),
 * kept out of line so that it does not shape the hot loop's code and register allocation.  Not
 * `cold`: that would optimise it for size. */
#define SL_OUTLINE static __attribute__((noinline))

/* The third grade of `cheap` (above). */
#define SL_CHEAP_SUM 2

/* ------------------------------------------------------------------------------------------------
 * Constants */

/* The scalars and polynomials of this section and of the float lanes' are the table of
 * stableloss/_constants.py, which the Numba kernels share (tests/test_spec.py checks that they agree). */
#define SL_LOG2E 0x1.71547652b82fep+0
#define SL_LN2_HI 0x1.62e42fefa3800p-1 /* ln 2 to 42 bits: n * SL_LN2_HI is exact for |n| < 2^11 */
#define SL_LN2_LO 0x1.ef35793c76730p-45 /* ln 2 - SL_LN2_HI; together ln 2 to 2^-102 */
#define SL_LN2_LO2 0x1.f97b57a079a19p-103 /* ln 2 - SL_LN2_HI - SL_LN2_LO (double-double work) */
#define SL_ROUND_MAGIC 0x1.8p52          /* (v + magic) - magic = round-to-nearest integer of v */
#define SL_SQRT_HALF_BITS 0x3fe6a09e667f3bcdULL /* bit pattern of sqrt(1/2) */
#define SL_SQRT2_M1 0x1.a827999fcef32p-2 /* sqrt(2) - 1 */
#define SL_HALF_LOG_2PI 0x1.d67f1c864beb5p-1     /* log(2 pi)/2 = SL_HALF_LOG_2PI + SL_HALF_LOG_2PI_LO */
#define SL_HALF_LOG_2PI_LO -0x1.65b5a1b7ff5dfp-55
#define SL_EXP_MIN_ARG -746.0         /* exp underflows to 0 below; 2^(n + 64) stays normal above */
#define SL_EXP_MAX_ARG 710.0          /* exp overflows to inf above */
#define SL_EXP_NORMAL 708.0           /* |x| <= this: e^x is a normal double */
#define SL_SMALLEST_NORMAL 0x1p-1022  /* the smallest positive normal double */
#define SL_SUBNORMAL_SCALE 0x1p54     /* scales a subnormal into the normals */
#define SL_SIXTH 0x1.5555555555555p-3   /* 1/6 = SL_SIXTH + SL_SIXTH_LO (sl_exp_hl) */
#define SL_SIXTH_LO 0x1.5555555555555p-57
#define SL_INV120 0x1.1111111111111p-7  /* 1/120 = SL_INV120 + SL_INV120_LO (sl_exp_hl) */
#define SL_INV120_LO 0x1.1111111111111p-63
#define SL_EXP_TD_RANGE 1100.0        /* sl_exp_td takes |x| <= this (n SL_LN2_HI exact for |n| < 2^11) */

/* exp(r) = 1 + r + r^2 q(r) on |r| <= ln2/2: q fitted (Chebyshev interpolation, mpmath) to
 * (e^r - 1 - r) / r^2.  Full grade, degree 10: |error of exp| <= 1.7e-19; cheap, degree 6: 3.3e-12. */
static const double sl_exp_q_full[11] = {
    0x1.0000000000000p-1, 0x1.5555555555557p-3, 0x1.5555555555556p-5, 0x1.111111111009cp-7,
    0x1.6c16c16c162b0p-10, 0x1.a01a01ac0a9eep-13, 0x1.a01a01a6ec522p-16, 0x1.71de01c3fc936p-19,
    0x1.27e4db25ce3adp-22, 0x1.af4ecd2129492p-26, 0x1.1f7385560be05p-29};
static const double sl_exp_q_cheap[7] = {
    0x1.0000000000000p-1, 0x1.5555556787f3cp-3, 0x1.5555555c9c2f7p-5, 0x1.1110c5a070ca9p-7,
    0x1.6c168516931abp-10, 0x1.a152a983c7079p-13, 0x1.a11412e92d01bp-16};
/* The same q for SL_CHEAP_SUM, degree 4: a weighted minimax fit (Lawson's iteration on the relative
 * error of exp over 4001 points), checked in mpmath at 3001 points: |error of exp| <= 3.06e-9. */
static const double sl_exp_q_sum[5] = {
    0x1.fffffb9ad4525p-2, 0x1.555491606f0a7p-3, 0x1.5558f12c703cap-5, 0x1.1239d957bbaffp-7,
    0x1.6a245a33abc40p-10};

/* e^r = 1 + r + r^2/2 + r^3/6 + r^4/24 + r^5/120 + r^6 T(r) (sl_exp_hl): T the Taylor series 1/6! + r/7! + ...
 * to 1/17!, truncated below 2^-71 of e^r on |r| <= ln2/2. */
static const double sl_exp_taylor[12] = {
    0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-16,
    0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26, 0x1.1eed8eff8d898p-29,
    0x1.6124613a86d09p-33, 0x1.93974a8c07c9dp-37, 0x1.ae7f3e733b81fp-41, 0x1.ae7f3e733b81fp-45,
    0x1.952c77030ad4ap-49};

/* log(1+f) = 2 atanh(s) = 2s + s R(z), s = f/(2+f), z = s^2, |s| <= 0.1716: R(z) = z P(z) with P
 * fitted to (2 atanh(s) - 2s)/s^3.  Full, degree 6: relative error of log <= 4.6e-18; cheap, degree
 * 4: 1.1e-13. */
static const double sl_log_p_full[7] = {
    0x1.5555555555558p-1, 0x1.9999999995204p-2, 0x1.2492492e09d1ap-2, 0x1.c71c62c63e016p-3,
    0x1.7462bd8e53c17p-3, 0x1.39fd39474ad34p-3, 0x1.2b6686d1072f3p-3};
static const double sl_log_p_cheap[5] = {
    0x1.555555556511fp-1, 0x1.999998c94ca2ep-2, 0x1.2493253c7ee51p-2, 0x1.c67a2fb83241ap-3,
    0x1.8c98fb3524fadp-3};

/* ------------------------------------------------------------------------------------------------
 * Scalar: loads and stores of either dtype, bit casts */

SL_INLINE double sl_load(const void *p, int64_t i, int f32)
{
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

SL_INLINE void sl_store(void *p, int64_t i, double v, int f32)
{
    if (f32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

SL_INLINE uint64_t sl_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

SL_INLINE double sl_from_bits(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

SL_INLINE double sl_horner(const double *c, int n, double x)
{
    double p = c[n - 1];
    for (int i = n - 2; i >= 0; i--)
        p = p * x + c[i];
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * Scalar: error-free transformations and compensated sums */

/* Knuth's TwoSum: s + *err == a + b exactly, s = fl(a + b).  *err is meaningless if s overflows. */
SL_INLINE double sl_two_sum(double a, double b, double *err)
{
    double s = a + b;
    double b_virtual = s - a;
    *err = (a - (s - b_virtual)) + (b - b_virtual);
    return s;
}

/* A running sum: compensated (TwoSum; full grade) or plain double (cheap grade: float32 results need
 * nothing more). */
typedef struct {
    double hi, lo;
} sl_acc;

SL_INLINE void sl_acc_add(sl_acc *a, double x, int cheap)
{
    if (cheap) {
        a->hi += x;
    } else {
        double err;
        a->hi = sl_two_sum(a->hi, x, &err);
        a->lo += err;
    }
}

/* The compensation is dropped once the sum is not finite (inf - inf in the error term). */
SL_INLINE double sl_acc_value(const sl_acc *a)
{
    return isfinite(a->hi) ? a->hi + a->lo : a->hi;
}

/* ------------------------------------------------------------------------------------------------
 * Scalar: exp, log, log1p */

/* 2^n * p for integer-valued n in [-2044, 2046]: one rounding even where the result is subnormal. */
SL_INLINE double sl_scale2(double p, double n)
{
    if (n >= -1022.0 && n <= 1023.0)
        return p * sl_from_bits((uint64_t)(int64_t)(n + 1023.0) << 52);
    double n1 = floor(0.5 * n); /* p 2^n1 is exact (normal), the second product rounds once */
    double s1 = sl_from_bits((uint64_t)(int64_t)(n1 + 1023.0) << 52);
    double s2 = sl_from_bits((uint64_t)(int64_t)(n - n1 + 1023.0) << 52);
    return p * s1 * s2;
}

/* exp(x) = 2^n exp(r), n = round(x / ln2), r = x - n ln2.  Full grade: Cody-Waite in two pieces
 * (n SL_LN2_HI is exact and x - n SL_LN2_HI exact by Sterbenz), r = r_hi + r_lo kept to ~2^-106, and
 * exp(r) = s + (s_lo + r_lo (1 + r) + r^2 q(r)) with s + s_lo = 1 + r_hi exactly (Fast2Sum), so only
 * the last addition rounds at the result's scale.  cheap grade: r = x - n ln2 in one piece (error
 * <= 1076 |ln2 - fl(ln2)| ~ 3e-14) and a degree-8 Horner polynomial (SL_CHEAP_SUM: degree 6, in pairs).
 * Arguments are clamped to [-746, 710], beyond which the result is 0 or inf anyway; NaN passes through. */
SL_INLINE double sl_exp(double x, int cheap)
{
    if (x < SL_EXP_MIN_ARG)
        x = SL_EXP_MIN_ARG;
    if (x > SL_EXP_MAX_ARG)
        x = SL_EXP_MAX_ARG;
    if (x != x)
        return x;
    double n = (x * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    if (cheap == SL_CHEAP_SUM) { /* (1 + r) + r^2 q, q = (c0 + c1 r) + r^2 ((c2 + c3 r) + r^2 c4): the
                                  * pairs give the vector loops, which wait on latency, a shorter chain */
        double r = x - n * (SL_LN2_HI + SL_LN2_LO), r2 = r * r;
        const double *c = sl_exp_q_sum;
        double q = (c[0] + c[1] * r) + r2 * ((c[2] + c[3] * r) + r2 * c[4]);
        return sl_scale2((1.0 + r) + r2 * q, n);
    }
    if (cheap) {
        double r = x - n * (SL_LN2_HI + SL_LN2_LO);
        return sl_scale2(1.0 + r * (1.0 + r * sl_horner(sl_exp_q_cheap, 7, r)), n);
    }
    double r1 = x - n * SL_LN2_HI;
    double r = r1 - n * SL_LN2_LO;
    double r_lo = (r1 - r) - n * SL_LN2_LO;
    double s = 1.0 + r;
    double s_lo = r - (s - 1.0);
    double small = (s_lo + r_lo * s) + (r * r) * sl_horner(sl_exp_q_full, 11, r);
    return sl_scale2(s + small, n);
}

/* log(2^k (1 + f)) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1), c a small correction:
 * log(1+f) = f - f^2/2 + s (f^2/2 + R(z)) (the 2 atanh(s) series with 2s = f - s f rewritten). */
SL_INLINE double sl_log_reduced(double f, double k, double c, int cheap)
{
    double s = f / (2.0 + f);
    double z = s * s;
    double r = z * (cheap ? sl_horner(sl_log_p_cheap, 5, z) : sl_horner(sl_log_p_full, 7, z));
    double hfsq = 0.5 * f * f;
    return k * SL_LN2_HI - ((hfsq - (s * (hfsq + r) + (k * SL_LN2_LO + c))) - f);
}

/* x = 2^k m with m in [sqrt(1/2), sqrt(2)); returns m - 1 (exact by Sterbenz) and k.  x > 0 normal. */
SL_INLINE double sl_log_split(double x, double *k)
{
    uint64_t u = sl_bits(x) + (0x3ff0000000000000ULL - SL_SQRT_HALF_BITS); /* carries iff m >= sqrt 2 */
    *k = (double)(int64_t)(u >> 52) - 1023.0;
    return sl_from_bits((u & 0x000fffffffffffffULL) + SL_SQRT_HALF_BITS) - 1.0;
}

SL_INLINE double sl_log(double x, int cheap)
{
    double k, bias = 0.0;
    if (!(x >= SL_SMALLEST_NORMAL && x < INFINITY)) {
        if (x == 0.0)
            return -INFINITY;
        if (!(x > 0.0) || x == INFINITY)
            return x < 0.0 ? NAN : x + x; /* negative: NaN; NaN and +inf: themselves */
        x *= SL_SUBNORMAL_SCALE; /* subnormal: scale to normal */
        bias = -54.0;
    }
    double f = sl_log_split(x, &k);
    return sl_log_reduced(f, k + bias, 0.0, cheap);
}

/* log1p(x) for x >= 0 (NaN and +inf pass through).  Below sqrt(2) - 1, f = x directly (no rounding
 * of 1 + x at all); above, u = fl(1 + x) and the rounding error c = (1 + x) - u (TwoSum) enters as
 * log(u + c) = log(u) + c/u; the cheap grade drops c/u, which is below 2^-52 of the result there. */
SL_INLINE double sl_log1p(double x, int cheap)
{
    if (x < SL_SQRT2_M1)
        return sl_log_reduced(x, 0.0, 0.0, cheap);
    if (!(x < INFINITY))
        return x; /* +inf, NaN */
    double err, k;
    double u = sl_two_sum(1.0, x, &err);
    double f = sl_log_split(u, &k);
    return sl_log_reduced(f, k, cheap ? 0.0 : err / u, cheap);
}

/* log1p(e) with *e = exp(-|x|): softplus(+-x) = max(+-x, 0) + log1p(exp(-|x|)), the log1p argument
 * in [0, 1] so that neither sign cancels or overflows. */
SL_INLINE double sl_softplus_tail(double x, double *e, int cheap)
{
    *e = sl_exp(-fabs(x), cheap);
    return sl_log1p(*e, cheap);
}

/* tanh(a) for a >= 0 (not NaN) and *d = 1 - tanh^2(a), from one reduction of exp: -2a = n ln2 + r
 * (two-piece Cody-Waite, r + r_lo), p = expm1(r) = r + r^2 q(r) + r_lo (the full q of sl_exp: no
 * cancellation for small r), E = e^{-2a} = 2^n (1 + p), and with R = 1/(1 + E) (one division)
 * tanh(a) = -expm1(-2a) R, expm1(-2a) = (2^n - 1) + 2^n p (2^n - 1 exact), 1 - tanh^2(a) = 4E R^2:
 * a few ulps, also near 0 and near 1.  2^n is the product of two normal powers of two (exact down to
 * 2^-1074, 0 below), so that 1 - tanh^2 keeps its subnormal values and is 0 where e^{-2a} underflows
 * (the limit: an infinite gradient times it is NaN, as 0 times infinity); beyond a = 700, E is taken at
 * -1400 (0 in double). */
SL_INLINE double sl_tanh_exp(double a, double *d)
{
    double v = a < 700.0 ? -2.0 * a : -1400.0;
    double n = (v * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    double r1 = v - n * SL_LN2_HI;
    double r = r1 - n * SL_LN2_LO;
    double r_lo = (r1 - r) - n * SL_LN2_LO;
    double p = r + (r_lo + (r * r) * sl_horner(sl_exp_q_full, 11, r));
    double n_hi = n > -1022.0 ? n : -1022.0; /* n in [-2020, 0]: n_hi and n - n_hi in [-1022, 0] */
    double scale = sl_from_bits((uint64_t)(int64_t)(n_hi + 1023.0) << 52) *
                   sl_from_bits((uint64_t)(int64_t)(n - n_hi + 1023.0) << 52);
    double e = scale + scale * p, inv = 1.0 / (1.0 + e);
    *d = (4.0 * e) * inv * inv;
    return -((scale - 1.0) + scale * p) * inv;
}

/* The soft cap c tanh(x/c) in double (float32 rows: a few ulps of double) and *d = 1 - tanh^2(x/c);
 * inv_c = 1/c.  |x/c| < 2^-26: x itself (tanh u = u (1 - u^2/3 + ...)).  x = +-inf: +-c (the limit) and
 * d = 0; NaN: NaN. */
SL_INLINE double sl_softcap(double x, double c, double inv_c, double *d)
{
    double u = fabs(x * inv_c);
    if (x != x) {
        *d = x;
        return x;
    }
    double t = sl_tanh_exp(u, d);
    return u < 0x1p-26 ? x : copysign(c * t, x);
}

/* ------------------------------------------------------------------------------------------------
 * Scalar: e^x and log x with a low part (the Poisson NLL's differences, which cancel) */

/* p + *err == a b exactly (fma: a libm call in baseline code, one instruction in AVX2 code). */
SL_INLINE double sl_two_prod(double a, double b, double *err)
{
    double p = a * b;
    *err = fma(a, b, -p);
    return p;
}

/* e^x = hi + *lo for |x| <= 690 (both parts normal at 2^-69 of hi): the full grade's reduction, r + r_lo =
 * x - n ln 2 to ~2^-88, and e^r = (1 + r) + r^2/2 + r^3/6 + r^4/24 + r^5/120 + r^6 T(r), the first five
 * terms exact or double-double products (powers by TwoProducts, 1/6 and 1/120 as double-doubles) added by
 * TwoSums, the tail r^6 T(r) <= 2^-18.5 in double; then e^(r + r_lo) = e^r (1 + r_lo) and 2^n. */
SL_INLINE double sl_exp_hl(double x, double *lo)
{
    double n = (x * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    double r1 = x - n * SL_LN2_HI;
    double r = r1 - n * SL_LN2_LO;
    double r_lo = (r1 - r) - n * SL_LN2_LO;
    double r2_lo, r2 = sl_two_prod(r, r, &r2_lo);
    double r3_lo, r3 = sl_two_prod(r2, r, &r3_lo);
    double r4_lo, r4 = sl_two_prod(r2, r2, &r4_lo);
    r3_lo += r2_lo * r;
    r4_lo += 2.0 * r2 * r2_lo;
    double c3_lo, c3 = sl_two_prod(r3, SL_SIXTH, &c3_lo); /* r^3/6 */
    double c4_lo, c4 = sl_two_prod(r4, SL_SIXTH, &c4_lo); /* r^4/6, then /4 */
    double r5_lo, r5 = sl_two_prod(r4, r, &r5_lo);
    r5_lo += r4_lo * r;
    double c5_lo, c5 = sl_two_prod(r5, SL_INV120, &c5_lo); /* r^5/120 */
    c3_lo += r3 * SL_SIXTH_LO + r3_lo * SL_SIXTH;
    c4_lo += r4 * SL_SIXTH_LO + r4_lo * SL_SIXTH;
    c5_lo += r5 * SL_INV120_LO + r5_lo * SL_INV120;
    double tail = (r5 * r) * sl_horner(sl_exp_taylor, 12, r);
    double s = 1.0 + r;
    double s_lo = r - (s - 1.0); /* 1 + r = s + s_lo (Fast2Sum) */
    double e2, e3, e4, e5;
    s = sl_two_sum(s, 0.5 * r2, &e2);
    s = sl_two_sum(s, c3, &e3);
    s = sl_two_sum(s, 0.25 * c4, &e4);
    s = sl_two_sum(s, c5, &e5);
    double low = ((s_lo + e2) + (e3 + e4)) + (e5 + (0.5 * r2_lo + c3_lo)) + ((0.25 * c4_lo + c5_lo) + tail);
    low += r_lo * s; /* e^(r + r_lo) = e^r (1 + r_lo) */
    double scale = sl_from_bits((uint64_t)(int64_t)(n + 1023.0) << 52);
    double hi = s + low;
    *lo = ((s - hi) + low) * scale;
    return hi * scale;
}

/* log(x + x_lo) = hi + *lo for x > 0 with |log x| <= 690 and |x_lo| <= ulp(x), absolute error ~2^-69, from
 * y = sl_log(x, 0): one Newton step on sl_exp_hl, log(x) = y + log1p(d), d = (x + x_lo) e^-y - 1 (|d| < 2^-42,
 * x e^-y - 1 formed exactly from the TwoProduct) and log1p(d) = d - d^2/2. */
SL_INLINE double sl_log_hl(double x, double x_lo, double y, double *lo)
{
    double e_lo, e = sl_exp_hl(-y, &e_lo);
    double p_lo, p = sl_two_prod(x, e, &p_lo);
    double d = (p - 1.0) + (p_lo + (x * e_lo + x_lo * e)); /* p - 1 is exact (Sterbenz) */
    d -= 0.5 * d * d;
    double hi = y + d;
    *lo = (y - hi) + d; /* |d| < |y| unless y = 0 */
    return hi;
}

/* ------------------------------------------------------------------------------------------------
 * Scalar: double-double arithmetic, log and exp (the slow paths of KL, GNLL and BCE) */

/* (a_hi + a_lo) + (b_hi + b_lo), (a_hi + a_lo) (b_hi + b_lo) and (a_hi + a_lo) / (b_hi + b_lo) as
 * double-doubles, relative error ~2^-104 (the sum: absolute, of the larger operand). */
SL_INLINE double sl_dd_add(double a_hi, double a_lo, double b_hi, double b_lo, double *lo)
{
    double err, s = sl_two_sum(a_hi, b_hi, &err);
    return sl_two_sum(s, err + a_lo + b_lo, lo);
}

SL_INLINE double sl_dd_mul(double a_hi, double a_lo, double b_hi, double b_lo, double *lo)
{
    double err;
    double p = sl_two_prod(a_hi, b_hi, &err);
    err += a_hi * b_lo + a_lo * b_hi;
    return sl_two_sum(p, err, lo);
}

SL_INLINE double sl_dd_div(double a_hi, double a_lo, double b_hi, double b_lo, double *lo)
{
    double q = a_hi / b_hi;
    double p_lo, p_hi = sl_dd_mul(q, 0.0, b_hi, b_lo, &p_lo);
    double r_lo, r_hi = sl_two_sum(a_hi, -p_hi, &r_lo); /* a - q b, leading part exact */
    r_lo += a_lo - p_lo;
    return sl_two_sum(q, (r_hi + r_lo) / b_hi, lo);
}

/* k ln 2 as a double-double (k an integer, |k| < 2^11): SL_LN2_HI k exact, the rest to ~2^-150. */
SL_INLINE double sl_k_ln2_dd(double k, double *lo)
{
    double err, p = sl_two_prod(k, SL_LN2_LO, &err);
    double s = sl_two_sum(k * SL_LN2_HI, p, lo);
    *lo += err + k * SL_LN2_LO2;
    return s;
}

/* log(p) = hi + *lo for p > 0 finite, relative error ~2^-104: p = 2^k (1 + f) with f exact,
 * log(1 + f) = 2 atanh(v), v = f/(2 + f) in double-double, 2 atanh(v) = 2v sum_j w^j/(2j+1), w = v^2
 * (|v| <= 0.1716, w <= 2^-5.08): the terms j >= 11 (below 2^-55 of the sum) in double, the rest in
 * double-double (Horner). */
SL_INLINE double sl_log_dd(double p, double *lo)
{
    double k, bias = 0.0;
    if (p < SL_SMALLEST_NORMAL) {
        p *= SL_SUBNORMAL_SCALE;
        bias = -54.0;
    }
    double f = sl_log_split(p, &k);
    k += bias;
    double den_lo, den_hi = sl_two_sum(2.0, f, &den_lo);
    double v_lo, v_hi = sl_dd_div(f, 0.0, den_hi, den_lo, &v_lo);
    double w_lo, w_hi = sl_dd_mul(v_hi, v_lo, v_hi, v_lo, &w_lo);
    double acc_hi = 1.0 / 43.0, acc_lo = 0.0;
    for (int j = 20; j >= 11; j--)
        acc_hi = acc_hi * w_hi + 1.0 / (2 * j + 1);
    for (int j = 10; j >= 0; j--) {
        double c_lo, c_hi = sl_dd_div(1.0, 0.0, 2.0 * j + 1.0, 0.0, &c_lo);
        double t_lo, t_hi = sl_dd_mul(acc_hi, acc_lo, w_hi, w_lo, &t_lo);
        acc_hi = sl_dd_add(t_hi, t_lo, c_hi, c_lo, &acc_lo);
    }
    double l_lo, l_hi = sl_dd_mul(acc_hi, acc_lo, 2.0 * v_hi, 2.0 * v_lo, &l_lo);
    double kl_lo, kl_hi = sl_k_ln2_dd(k, &kl_lo);
    return sl_dd_add(kl_hi, kl_lo, l_hi, l_lo, lo);
}

/* exp(t) = hi + *lo for t <= 0, relative error ~2^-100 down to t = -630 (below, lo is subnormal; 0
 * below -746): t = n ln 2 + r, r in double-double (|r| <= ln2/2), exp(r) = 1 + r(1 + r/2(1 + ...))
 * with the steps j > 12 (below 2^-52 of the sum) in double, the rest in double-double, then 2^n. */
SL_INLINE double sl_exp_dd(double t, double *lo)
{
    if (!(t >= SL_EXP_MIN_ARG)) {
        *lo = 0.0;
        return t < SL_EXP_MIN_ARG ? 0.0 : t; /* NaN */
    }
    double n = (t * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    double p_err, p = sl_two_prod(n, SL_LN2_LO, &p_err);
    double r_lo, r_hi = sl_two_sum(t - n * SL_LN2_HI, -p, &r_lo); /* t - n SL_LN2_HI: exact */
    r_lo -= p_err + n * SL_LN2_LO2; /* r to ~2^-106 |r|, not of |t| */
    double acc_hi = 1.0, acc_lo = 0.0;
    for (int j = 27; j > 12; j--)
        acc_hi = 1.0 + acc_hi * r_hi / j;
    for (int j = 12; j >= 1; j--) {
        double t_lo, t_hi = sl_dd_mul(acc_hi, acc_lo, r_hi, r_lo, &t_lo);
        t_hi = sl_dd_div(t_hi, t_lo, (double)j, 0.0, &t_lo);
        acc_hi = sl_dd_add(1.0, 0.0, t_hi, t_lo, &acc_lo);
    }
    *lo = sl_scale2(acc_lo, n);
    return sl_scale2(acc_hi, n);
}

/* e^(x + x_lo) = hi + *lo for x in [-SL_EXP_NORMAL, 0], |x_lo| <= ulp(x), to ~2^-58: far cheaper than
 * sl_exp_dd.  The reduction of sl_exp (r + c = x + x_lo - n ln 2 to ~2^-106), 1 + r + r^2/2 in
 * double-double (r^2 exact), the rest of the series r^3 q1(r) (q1 the full grade's q without its 1/2:
 * <= 0.007) and c e^r in double; 2^n exact (*lo rounds once where it is subnormal). */
SL_INLINE double sl_exp_hilo(double x, double x_lo, double *lo)
{
    double n = (x * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    double r1 = x - n * SL_LN2_HI; /* exact */
    double r = r1 - n * SL_LN2_LO;
    double c = ((r1 - r) - n * SL_LN2_LO) + x_lo;
    double tail_q = sl_horner(sl_exp_q_full + 1, 10, r); /* e^r = 1 + r + r^2/2 + r^3 q1(r) */
    double rr_lo, rr = sl_two_prod(r, r, &rr_lo);
    double tail = r * rr * tail_q;
    double s = 1.0 + r, s_err = r - (s - 1.0); /* Fast2Sum, |r| < 1 */
    double t_err, u = sl_two_sum(s, 0.5 * rr, &t_err);
    /* e^(r + c) = e^r + c e^r (c^2 below 2^-88), c e^r = c + c (r + r^2/2 + tail) */
    double small = (s_err + t_err) + (0.5 * rr_lo + (tail + (c + c * (r + (0.5 * rr + tail)))));
    double hi = u + small;
    *lo = sl_scale2(small - (hi - u), n);
    return sl_scale2(hi, n);
}

/* log(x) = hi + *lo for positive normal x, to ~2^-56.6: far cheaper than sl_log_dd.  x = 2^k (1 + f),
 * log(1 + f) = 2 atanh(s) = 2s + s^3 P(s^2), s = f/(2 + f) in double-double (f exact), the atanh tail
 * s^3 P <= 0.02 |2s| in double (P the full grade's), k ln 2 in double-double. */
SL_INLINE double sl_log_hilo(double x, double *lo)
{
    double k, f = sl_log_split(x, &k);
    double d = 2.0 + f, d_lo = f - (d - 2.0); /* Fast2Sum, |f| < 2 */
    double s = f / d;
    double p_lo, p = sl_two_prod(s, d, &p_lo);
    double s_lo = (((f - p) - p_lo) - s * d_lo) / d; /* f - p exact (Sterbenz): s + s_lo = f/(2 + f) */
    double z = s * s;
    double a_err, a = sl_two_sum(k * SL_LN2_HI, 2.0 * s, &a_err); /* k SL_LN2_HI exact */
    double small = a_err + (2.0 * s_lo + (s * z * sl_horner(sl_log_p_full, 7, z) + k * SL_LN2_LO));
    double hi = a + small;
    *lo = small - (hi - a);
    return hi;
}

/* ------------------------------------------------------------------------------------------------
 * Scalar: triple-double arithmetic (a value is t[0] + t[1] + t[2], decreasing), exp and log to ~2^-130
 * (the slow paths of the Poisson NLL, whose terms cancel beyond what a double-double leaves) */

/* t = h + m + l (|h| the largest), renormalized by TwoSums: the same exact sum. */
SL_INLINE void sl_td_set(double t[3], double h, double m, double l)
{
    double u, v;
    double s = sl_two_sum(m, l, &u);
    t[0] = sl_two_sum(h, s, &v);
    t[1] = sl_two_sum(v, u, &t[2]);
}

/* t = t b, to ~2^-155. */
SL_INLINE void sl_td_mul(double t[3], double b)
{
    double e1, e2, f;
    double p1 = sl_two_prod(t[0], b, &e1);
    double p2 = sl_two_prod(t[1], b, &e2);
    double s = sl_two_sum(e1, p2, &f);
    sl_td_set(t, p1, s, f + e2 + t[2] * b);
}

/* t = t / k for an integer-valued k: each quotient's remainder is exact (FMA). */
SL_INLINE void sl_td_div(double t[3], double k)
{
    double f;
    double q1 = t[0] / k;
    double s = sl_two_sum(fma(-q1, k, t[0]), t[1], &f); /* t[0] - q1 k exactly, plus t[1] */
    double q2 = s / k;
    sl_td_set(t, q1, q2, (fma(-q2, k, s) + f + t[2]) / k);
}

/* t = 1 + t. */
SL_INLINE void sl_td_add1(double t[3])
{
    double e, f;
    double h = sl_two_sum(1.0, t[0], &e);
    double m = sl_two_sum(e, t[1], &f);
    sl_td_set(t, h, m, f + t[2]);
}

/* e^x = 2^n (m[0] + m[1] + m[2]), returns n, for finite |x| <= SL_EXP_TD_RANGE, relative error below 2^-128
 * (m[0] in [0.7, 1.42]): x = n ln 2 + r, r = r1 + r2 + r3 (ln 2 = SL_LN2_HI + SL_LN2_LO + SL_LN2_LO2 to
 * 2^-155); e^r1 by Horner, 1 + r1 (1 + r1/2 (1 + r1/3 (...))) to the term r1^27/27! (0.35^27/27! < 2^-134),
 * each step in the precision its weight r1^k/k! needs (double for k >= 20, double-double for 9 <= k < 20,
 * triple-double below); then times e^(r2 + r3) = 1 + rho + rho^2/2. */
SL_INLINE double sl_exp_td(double x, double m[3])
{
    double n = (x * SL_LOG2E + SL_ROUND_MAGIC) - SL_ROUND_MAGIC;
    double a = x - n * SL_LN2_HI; /* exact: n SL_LN2_HI has <= 53 bits and cancels x (Sterbenz) */
    double p_err, p = sl_two_prod(n, SL_LN2_LO, &p_err);
    double e1, e2;
    double r = sl_two_sum(a, -p, &e1);
    double r2 = sl_two_sum(e1, -p_err, &e2);
    double r3 = e2 - n * SL_LN2_LO2;
    double acc = 1.0;
    for (int k = 27; k >= 20; k--)
        acc = 1.0 + acc * r / k;
    double hi = acc, lo = 0.0;
    for (int k = 19; k >= 9; k--) {
        hi = sl_dd_mul(hi, lo, r, 0.0, &lo);
        hi = sl_dd_div(hi, lo, (double)k, 0.0, &lo);
        hi = sl_dd_add(hi, lo, 1.0, 0.0, &lo);
    }
    m[0] = hi, m[1] = lo, m[2] = 0.0;
    for (int k = 8; k >= 1; k--) {
        sl_td_mul(m, r);
        sl_td_div(m, (double)k);
        sl_td_add1(m);
    }
    double q_err, f;
    double q = sl_two_prod(m[0], r2, &q_err); /* e^r (r2 + r3 + r2^2/2): the first product exact */
    double s = sl_two_sum(m[1], q, &f);
    sl_td_set(m, m[0], s, f + m[2] + q_err + m[0] * r3 + m[1] * r2 + 0.5 * m[0] * r2 * r2);
    return n;
}

/* log(x + x_lo) = l[0] + l[1] + l[2] for positive finite x (|x_lo| <= ulp(x)/2), absolute error below
 * 2^-130: y = log x (full grade) refined by one Newton step, log(x) = y + log1p(d) with d = (x + x_lo)
 * e^-y - 1 (|d| < 2^-42) from sl_exp_td and log1p(d) = d - d^2/2 + d^3/3. */
SL_INLINE void sl_log_td(double x, double x_lo, double l[3])
{
    double y = sl_log(x, 0), m[3];
    double n = sl_exp_td(-y, m);
    double scaled = sl_scale2(x, n), scaled_lo = sl_scale2(x_lo, n); /* about 1/m[0]: exact */
    double p_err, q_err, u_err, c, e;
    double p = sl_two_prod(scaled, m[0], &p_err);
    double q = sl_two_prod(scaled, m[1], &q_err);
    double u = sl_two_prod(scaled_lo, m[0], &u_err);
    double d = sl_two_sum(p - 1.0, p_err, &c); /* p - 1 is exact (Sterbenz) */
    d = sl_two_sum(d, q, &e);
    c += e;
    d = sl_two_sum(d, u, &e);
    c += e + (q_err + u_err + scaled * m[2] + scaled_lo * m[1]);
    double d_lo;
    d = sl_two_sum(d, c, &d_lo);
    sl_td_set(l, y, d, d_lo - 0.5 * d * d + d * d * d / 3.0);
}

#if SL_X86
/* ------------------------------------------------------------------------------------------------
 * Vectors: tails, loads and stores of either dtype */

/* The first `count` (1 .. SL_L - 1) lanes of a vector: as 64-bit and 32-bit lane masks (AVX2) or a
 * mask register (AVX-512). */
typedef struct {
#if SL_EVEX
    __mmask8 m;
#else
    __m256i m64;
    __m128i m32;
#endif
} sl_tail;

SL_VEC SL_INLINE sl_tail sl_tail_mask(int64_t count)
{
    sl_tail t;
#if SL_EVEX
    t.m = (__mmask8)((1u << count) - 1);
#else
    t.m64 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
    t.m32 = _mm_cmpgt_epi32(_mm_set1_epi32((int)count), _mm_setr_epi32(0, 1, 2, 3));
#endif
    return t;
}

/* SL_L elements from p + i as doubles; tail != NULL: only its lanes are read (others are 0). */
SL_VEC SL_INLINE sl_vd sl_load_v(const void *p, int64_t i, const sl_tail *tail, int f32)
{
    if (f32) {
        const float *q = (const float *)p + i;
#if SL_EVEX && SL_VBITS == 512
        return sl_vwiden_half(tail ? _mm256_maskz_loadu_ps(tail->m, q) : _mm256_loadu_ps(q));
#elif SL_EVEX
        return sl_vwiden_half(tail ? _mm_maskz_loadu_ps(tail->m, q) : _mm_loadu_ps(q));
#else
        return sl_vwiden_half(tail ? _mm_maskload_ps(q, tail->m32) : _mm_loadu_ps(q));
#endif
    }
    const double *q = (const double *)p + i;
#if SL_EVEX
    return tail ? SL_MM(maskz_loadu_pd)(tail->m, q) : sl_vloadu(q);
#else
    return tail ? _mm256_maskload_pd(q, tail->m64) : sl_vloadu(q);
#endif
}

/* SL_L doubles to p + i, rounded once to the dtype; tail != NULL: only its lanes are written. */
SL_VEC SL_INLINE void sl_store_v(void *p, int64_t i, sl_vd v, const sl_tail *tail, int f32)
{
    if (f32) {
        float *q = (float *)p + i;
        sl_vh f = sl_vnarrow_half(v);
#if SL_EVEX && SL_VBITS == 512
        if (tail)
            _mm256_mask_storeu_ps(q, tail->m, f);
        else
            _mm256_storeu_ps(q, f);
#elif SL_EVEX
        if (tail)
            _mm_mask_storeu_ps(q, tail->m, f);
        else
            _mm_storeu_ps(q, f);
#else
        if (tail)
            _mm_maskstore_ps(q, tail->m32, f);
        else
            _mm_storeu_ps(q, f);
#endif
    } else {
        double *q = (double *)p + i;
#if SL_EVEX
        if (tail)
            SL_MM(mask_storeu_pd)(q, tail->m, v);
#else
        if (tail)
            _mm256_maskstore_pd(q, tail->m64, v);
#endif
        else
            sl_vstoreu(q, v);
    }
}

/* The lanes of a tail as a mask (every lane without a tail). */
SL_VEC SL_INLINE sl_vm sl_tail_lanes(const sl_tail *tail)
{
#if SL_EVEX
    return tail ? tail->m : (sl_vm)SL_LANES_ALL;
#else
    return tail ? _mm256_castsi256_pd(tail->m64) : _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
#endif
}

/* The lanes of a tail as bits (SL_LANES_ALL without a tail). */
SL_VEC SL_INLINE int sl_tail_bits(const sl_tail *tail)
{
    return tail ? sl_vm_bits(sl_tail_lanes(tail)) : SL_LANES_ALL;
}

/* The first `count` (1 .. 2 SL_L - 1) lanes of a float vector. */
SL_VEC SL_INLINE sl_vfm sl_tailf_mask(int64_t count)
{
#if SL_EVEX
    return (sl_vfm)((1u << count) - 1);
#else
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
#endif
}

/* The float lanes of such a mask from p (the others 0). */
SL_VEC SL_INLINE sl_vf sl_loadf_tail(const float *p, sl_vfm lanes)
{
#if SL_EVEX
    return SL_MM(maskz_loadu_ps)(lanes, p);
#else
    return _mm256_maskload_ps(p, _mm256_castps_si256(lanes));
#endif
}

/* v in the tail's lanes, 0 elsewhere. */
SL_VEC SL_INLINE sl_vd sl_keep_v(sl_vd v, const sl_tail *tail)
{
    return tail ? sl_vkeep(sl_tail_lanes(tail), v) : v;
}

SL_VEC SL_INLINE sl_vd sl_abs_v(sl_vd x)
{
    return sl_vandnot(SL_V(-0.0), x);
}

/* Lanes where x is finite (not +-inf, not NaN). */
SL_VEC SL_INLINE sl_vm sl_isfinite_v(sl_vd x)
{
    return sl_vcmp(sl_abs_v(x), SL_V(INFINITY), _CMP_LT_OQ);
}

/* x where finite, 0 where +-inf or NaN (corrections dropped once their main term overflowed). */
SL_VEC SL_INLINE sl_vd sl_finite_or_zero_v(sl_vd x)
{
    return sl_vkeep(sl_isfinite_v(x), x);
}

/* sum_i c[i] x^i, n coefficients.  Horner for the short cheap-grade polynomials (fewest registers: with
 * 16 ymm registers, holding Estrin's constants makes gcc spill the loop accumulators; the
 * SL_CHEAP_SUM exp's five fit in pairs); Estrin's scheme for the long full-grade ones (pairs
 * c[i] + c[i+1] x, then pairs of those with x^2, x^4, ...: a shorter dependency chain). */
SL_VEC SL_INLINE sl_vd sl_horner_v(const double *c, int n, sl_vd x)
{
    sl_vd p = SL_V(c[n - 1]);
    for (int i = n - 2; i >= 0; i--)
        p = sl_vfma(p, x, SL_V(c[i]));
    return p;
}

SL_VEC SL_INLINE sl_vd sl_estrin_v(const double *c, int n, sl_vd x)
{
    sl_vd p[8];
    int m = 0;
    for (int i = 0; i < n; i += 2)
        p[m++] = i + 1 < n ? sl_vfma(SL_V(c[i + 1]), x, SL_V(c[i])) : SL_V(c[i]);
    for (sl_vd xx = sl_vmul(x, x); m > 1; xx = sl_vmul(xx, xx)) {
        int k = 0;
        for (int i = 0; i < m; i += 2)
            p[k++] = i + 1 < m ? sl_vfma(p[i + 1], xx, p[i]) : p[i];
        m = k;
    }
    return p[0];
}

/* ------------------------------------------------------------------------------------------------
 * Vectors: error-free transformations and compensated sums */

SL_VEC SL_INLINE sl_vd sl_two_sum_v(sl_vd a, sl_vd b, sl_vd *err)
{
    sl_vd s = sl_vadd(a, b);
    sl_vd b_virtual = sl_vsub(s, a);
    *err = sl_vadd(sl_vsub(a, sl_vsub(s, b_virtual)), sl_vsub(b, b_virtual));
    return s;
}

/* p + *err == a b exactly (FMA), and the double-double sum, product and quotient of the scalar forms. */
SL_VEC SL_INLINE sl_vd sl_two_prod_v(sl_vd a, sl_vd b, sl_vd *err)
{
    sl_vd p = sl_vmul(a, b);
    *err = sl_vfms(a, b, p);
    return p;
}

SL_VEC SL_INLINE sl_vd sl_dd_add_v(sl_vd a_hi, sl_vd a_lo, sl_vd b_hi, sl_vd b_lo, sl_vd *lo)
{
    sl_vd err, s = sl_two_sum_v(a_hi, b_hi, &err);
    return sl_two_sum_v(s, sl_vadd(sl_vadd(err, a_lo), b_lo), lo);
}

SL_VEC SL_INLINE sl_vd sl_dd_mul_v(sl_vd a_hi, sl_vd a_lo, sl_vd b_hi, sl_vd b_lo, sl_vd *lo)
{
    sl_vd err, p = sl_two_prod_v(a_hi, b_hi, &err);
    err = sl_vadd(err, sl_vfma(a_hi, b_lo, sl_vmul(a_lo, b_hi)));
    return sl_two_sum_v(p, err, lo);
}

SL_VEC SL_INLINE sl_vd sl_dd_div_v(sl_vd a_hi, sl_vd a_lo, sl_vd b_hi, sl_vd b_lo, sl_vd *lo)
{
    sl_vd q = sl_vdiv(a_hi, b_hi);
    sl_vd p_lo, p_hi = sl_dd_mul_v(q, sl_vzero(), b_hi, b_lo, &p_lo);
    sl_vd r_lo, r_hi = sl_two_sum_v(a_hi, sl_vsub(sl_vzero(), p_hi), &r_lo); /* a - q b, leading part exact */
    r_lo = sl_vadd(r_lo, sl_vsub(a_lo, p_lo));
    return sl_two_sum_v(q, sl_vdiv(sl_vadd(r_hi, r_lo), b_hi), lo);
}

typedef struct {
    sl_vd hi, lo;
} sl_acc_v;

SL_VEC SL_INLINE sl_acc_v sl_acc_v_zero(void)
{
    sl_acc_v a = {sl_vzero(), sl_vzero()};
    return a;
}

SL_VEC SL_INLINE void sl_acc_v_add(sl_acc_v *a, sl_vd x, int cheap)
{
    if (cheap) {
        a->hi = sl_vadd(a->hi, x);
    } else {
        sl_vd err;
        a->hi = sl_two_sum_v(a->hi, x, &err);
        a->lo = sl_vadd(a->lo, err);
    }
}

/* Each lane's own sum: hi + lo (full grade; hi alone once it is not finite, as sl_acc_value) or hi. */
SL_VEC SL_INLINE sl_vd sl_acc_v_lanes(const sl_acc_v *a, int cheap)
{
    return cheap ? a->hi : sl_vselect(sl_isfinite_v(a->hi), sl_vadd(a->hi, a->lo), a->hi);
}

/* The lanes' total: compensated over the lanes in order (full grade) or plain (cheap). */
SL_VEC SL_INLINE double sl_acc_v_value(const sl_acc_v *a, int cheap)
{
    if (cheap)
        return sl_vhadd(a->hi);
    double hi[SL_L], lo[SL_L];
    sl_vstoreu(hi, a->hi);
    sl_vstoreu(lo, a->lo);
    sl_acc t = {0.0, 0.0};
    for (int l = 0; l < SL_L; l++) {
        sl_acc_add(&t, hi[l], 0);
        t.lo += lo[l];
    }
    return sl_acc_value(&t);
}

/* ------------------------------------------------------------------------------------------------
 * Vectors: exp, log, log1p (formulas and constants of the scalar forms above) */

/* exp(r), r = x - n ln2 the reduced argument, as the scalar form: 1 + r + r^2 q(r) (cheap grade) or
 * s + (s_lo + r_lo (1 + r) + r^2 q(r)) with s + s_lo = 1 + r (f64 grade). */
SL_VEC SL_INLINE sl_vd sl_exp_reduced_v(sl_vd x, sl_vd n, int cheap)
{
    if (cheap == SL_CHEAP_SUM) { /* as the scalar form: (1 + r) + r^2 q, q from pairs (a shorter chain) */
        sl_vd r = sl_vfnma(n, SL_V(SL_LN2_HI + SL_LN2_LO), x);
        sl_vd r2 = sl_vmul(r, r);
        const double *c = sl_exp_q_sum;
        sl_vd q = sl_vfma(sl_vfma(SL_V(c[4]), r2, sl_vfma(SL_V(c[3]), r, SL_V(c[2]))), r2,
                          sl_vfma(SL_V(c[1]), r, SL_V(c[0])));
        return sl_vfma(r2, q, sl_vadd(SL_V(1.0), r));
    }
    if (cheap) {
        sl_vd r = sl_vfnma(n, SL_V(SL_LN2_HI + SL_LN2_LO), x);
        sl_vd q = sl_horner_v(sl_exp_q_cheap, 7, r);
        return sl_vfma(r, sl_vfma(r, q, SL_V(1.0)), SL_V(1.0));
    }
    sl_vd r1 = sl_vfnma(n, SL_V(SL_LN2_HI), x);
    sl_vd r = sl_vfnma(n, SL_V(SL_LN2_LO), r1);
    sl_vd r_lo = sl_vfnma(n, SL_V(SL_LN2_LO), sl_vsub(r1, r));
    sl_vd s = sl_vadd(SL_V(1.0), r);
    sl_vd s_lo = sl_vsub(r, sl_vsub(s, SL_V(1.0)));
    sl_vd small = sl_vfma(sl_vmul(r, r), sl_estrin_v(sl_exp_q_full, 11, r),
                          sl_vfma(r_lo, s, s_lo));
    return sl_vadd(s, small);
}

/* 2^n for integer-valued n in [-1022, 1023]. */
SL_VEC SL_INLINE sl_vd sl_pow2i_v(sl_vd n)
{
    return sl_vfrom_bits(sl_vi_shl(sl_vbits(sl_vadd(n, SL_V(SL_ROUND_MAGIC + 1023.0))), 52));
}

/* exp(x) for the lanes with |x| > 708 (and any others): x clamped to [-746, 710], beyond which the
 * result is 0 or inf anyway (NaN passes: max/min return their second operand then), and 2^n p as
 * two products, exact then rounded once, so that subnormal results round once.  Rare, but inlined:
 * a call in a loop makes gcc keep the loop's vector values in memory (no callee-saved ymm). */
SL_VEC SL_INLINE sl_vd sl_exp_wide_v(sl_vd x, int cheap)
{
    x = sl_vmin(SL_V(710.0), sl_vmax(SL_V(-746.0), x));
    sl_vd n = sl_vround(sl_vmul(x, SL_V(SL_LOG2E)));
    sl_vd p = sl_exp_reduced_v(x, n, cheap);
    sl_vd n1 = sl_vfloor(sl_vmul(n, SL_V(0.5)));
    return sl_vmul(sl_vmul(p, sl_pow2i_v(n1)), sl_pow2i_v(sl_vsub(n, n1)));
}

/* exp(x) for x in [-708, 708] (not NaN): n = round(x / ln2) from the low bits of x log2e + 1.5 2^52,
 * p = exp(x - n ln2) and 2^n p by adding n to the exponent field of p (p in [0.7, 1.42]: exact in the
 * normal range).  For callers that know the range (a row's min and max). */
SL_VEC SL_INLINE sl_vd sl_exp_normal_v(sl_vd x, int cheap)
{
    sl_vd t = sl_vfma(x, SL_V(SL_LOG2E), SL_V(SL_ROUND_MAGIC));
    sl_vd n = sl_vsub(t, SL_V(SL_ROUND_MAGIC));
    sl_vd p = sl_exp_reduced_v(x, n, cheap);
    sl_vi n_exp = sl_vi_shl(sl_vbits(t), 52); /* low bits of t hold n: n 2^52 */
    return sl_vfrom_bits(sl_vi_add(sl_vbits(p), n_exp));
}

/* exp(x) for any x: lanes outside [-708, 708], NaN included (whose payload bits would otherwise move
 * the exponent field), take sl_exp_wide_v. */
SL_VEC SL_INLINE sl_vd sl_exp_v(sl_vd x, int cheap)
{
    sl_vd y = sl_exp_normal_v(x, cheap);
    sl_vm wide = sl_vcmp(sl_abs_v(x), SL_V(SL_EXP_NORMAL), _CMP_NLE_UQ);
    if (__builtin_expect(sl_vm_bits(wide) != 0, 0))
        y = sl_vselect(wide, sl_exp_wide_v(x, cheap), y);
    return y;
}

SL_VEC SL_INLINE sl_vd sl_log_reduced_v(sl_vd f, sl_vd k, sl_vd c, int cheap)
{
    sl_vd s = sl_vdiv(f, sl_vadd(SL_V(2.0), f));
    sl_vd z = sl_vmul(s, s);
    sl_vd r = sl_vmul(z, cheap ? sl_horner_v(sl_log_p_cheap, 5, z) : sl_estrin_v(sl_log_p_full, 7, z));
    sl_vd hfsq = sl_vmul(sl_vmul(SL_V(0.5), f), f);
    sl_vd tail = sl_vfma(s, sl_vadd(hfsq, r), sl_vfma(k, SL_V(SL_LN2_LO), c));
    return sl_vfms(k, SL_V(SL_LN2_HI), sl_vsub(sl_vsub(hfsq, tail), f));
}

SL_VEC SL_INLINE sl_vd sl_log_split_v(sl_vd x, sl_vd *k)
{
    sl_vi u = sl_vi_add(sl_vbits(x), sl_vi_set((long long)(0x3ff0000000000000ULL - SL_SQRT_HALF_BITS)));
    sl_vi e = sl_vi_or(sl_vi_shr(u, 52), sl_vbits(SL_V(0x1p52)));
    *k = sl_vsub(sl_vfrom_bits(e), SL_V(0x1p52 + 1023.0)); /* exact int64 -> double */
    sl_vi m = sl_vi_add(sl_vi_and(u, sl_vi_set(0x000fffffffffffffLL)), sl_vi_set((long long)SL_SQRT_HALF_BITS));
    return sl_vsub(sl_vfrom_bits(m), SL_V(1.0));
}

/* Lanes of log(x) outside the positive normal range, from the scalar form.  Rare (inlined, as above). */
SL_VEC SL_INLINE sl_vd sl_log_special_v(sl_vd x, sl_vd y, int mask, int cheap)
{
    double xs[SL_L], ys[SL_L];
    sl_vstoreu(xs, x);
    sl_vstoreu(ys, y);
    for (int l = 0; l < SL_L; l++)
        if (mask >> l & 1)
            ys[l] = sl_log(xs[l], cheap);
    return sl_vloadu(ys);
}

SL_VEC SL_INLINE sl_vd sl_log_v(sl_vd x, int cheap)
{
    sl_vd k;
    sl_vd f = sl_log_split_v(x, &k);
    sl_vd y = sl_log_reduced_v(f, k, sl_vzero(), cheap);
    sl_vm normal = sl_vm_and(sl_vcmp(x, SL_V(SL_SMALLEST_NORMAL), _CMP_GE_OQ), sl_vcmp(x, SL_V(INFINITY), _CMP_LT_OQ));
    int special = sl_vm_bits(normal) ^ SL_LANES_ALL;
    if (__builtin_expect(special != 0, 0))
        y = sl_log_special_v(x, y, special, cheap);
    return y;
}

/* log1p(x), x >= 0, as the scalar form: f = x below sqrt(2) - 1, else split u = fl(1 + x) with the
 * TwoSum error c added as c/u (f64 grade).  +inf and NaN pass through. */
SL_VEC SL_INLINE sl_vd sl_log1p_v(sl_vd x, int cheap)
{
    sl_vd err, k;
    sl_vd u = sl_two_sum_v(SL_V(1.0), x, &err);
    sl_vd f = sl_log_split_v(u, &k);
    sl_vm small = sl_vcmp(x, SL_V(SL_SQRT2_M1), _CMP_LT_OQ);
    f = sl_vselect(small, x, f);
    k = sl_vdrop(small, k);
    sl_vd c = cheap ? sl_vzero() : sl_vdrop(small, sl_vdiv(err, u));
    sl_vd y = sl_log_reduced_v(f, k, c, cheap);
    sl_vm finite = sl_vcmp(x, SL_V(INFINITY), _CMP_LT_OQ); /* false for +inf and NaN */
    return sl_vselect(finite, y, x);
}

/* sl_tanh_exp for SL_L lanes a >= 0 (the scalar form's steps; NaN lanes give garbage: callers select). */
SL_VEC SL_INLINE sl_vd sl_tanh_exp_v(sl_vd a, sl_vd *d)
{
    sl_vd v = sl_vmax(sl_vmul(a, SL_V(-2.0)), SL_V(-1400.0));
    sl_vd n = sl_vsub(sl_vfma(v, SL_V(SL_LOG2E), SL_V(SL_ROUND_MAGIC)), SL_V(SL_ROUND_MAGIC));
    sl_vd r1 = sl_vfnma(n, SL_V(SL_LN2_HI), v);
    sl_vd r = sl_vfnma(n, SL_V(SL_LN2_LO), r1);
    sl_vd r_lo = sl_vfnma(n, SL_V(SL_LN2_LO), sl_vsub(r1, r));
    sl_vd p = sl_vadd(r, sl_vfma(sl_vmul(r, r), sl_estrin_v(sl_exp_q_full, 11, r), r_lo));
    sl_vd n_hi = sl_vmax(n, SL_V(-1022.0));
    sl_vd scale = sl_vmul(sl_pow2i_v(n_hi), sl_pow2i_v(sl_vsub(n, n_hi))); /* 2^n, exact or 0 */
    sl_vd e = sl_vfma(scale, p, scale);
    sl_vd inv = sl_vdiv(SL_V(1.0), sl_vadd(SL_V(1.0), e));
    *d = sl_vmul(sl_vmul(sl_vmul(SL_V(4.0), e), inv), inv);
    sl_vd m = sl_vfma(scale, p, sl_vsub(scale, SL_V(1.0)));
    return sl_vmul(sl_vsub(sl_vzero(), m), inv);
}

/* sl_softcap for SL_L lanes. */
SL_VEC SL_INLINE sl_vd sl_softcap_v(sl_vd x, sl_vd c, sl_vd inv_c, sl_vd *d)
{
    sl_vd u = sl_abs_v(sl_vmul(x, inv_c));
    sl_vd t = sl_tanh_exp_v(u, d);
    sl_vd capped = sl_vor(sl_vmul(c, t), sl_vandnot(sl_abs_v(x), x)); /* c t with the sign of x */
    sl_vm keep = sl_vm_or(sl_vcmp(u, SL_V(0x1p-26), _CMP_LT_OQ), sl_vcmp(x, x, _CMP_UNORD_Q)); /* tiny, NaN */
    return sl_vselect(keep, x, capped);
}

/* e^x = hi + *lo for |x| <= 690, as sl_exp_hl (the reduction's r_lo by FMA: x - n ln 2 to ~2^-106). */
SL_VEC SL_INLINE sl_vd sl_exp_hl_v(sl_vd x, sl_vd *lo)
{
    sl_vd n = sl_vround(sl_vmul(x, SL_V(SL_LOG2E)));
    sl_vd r1 = sl_vfnma(n, SL_V(SL_LN2_HI), x);
    sl_vd r = sl_vfnma(n, SL_V(SL_LN2_LO), r1);
    sl_vd r_lo = sl_vfnma(n, SL_V(SL_LN2_LO), sl_vsub(r1, r));
    sl_vd r2 = sl_vmul(r, r), r2_lo = sl_vfms(r, r, r2);
    sl_vd r3 = sl_vmul(r2, r), r3_lo = sl_vfma(r2_lo, r, sl_vfms(r2, r, r3));
    sl_vd r4 = sl_vmul(r2, r2), r4_lo = sl_vfma(sl_vadd(r2, r2), r2_lo, sl_vfms(r2, r2, r4));
    sl_vd sixth = SL_V(SL_SIXTH);
    sl_vd c3 = sl_vmul(r3, sixth); /* r^3/6 */
    sl_vd c3_lo = sl_vfma(r3_lo, sixth, sl_vfma(r3, SL_V(SL_SIXTH_LO), sl_vfms(r3, sixth, c3)));
    sl_vd c4 = sl_vmul(r4, sixth); /* r^4/6, then /4 */
    sl_vd c4_lo = sl_vfma(r4_lo, sixth, sl_vfma(r4, SL_V(SL_SIXTH_LO), sl_vfms(r4, sixth, c4)));
    sl_vd r5 = sl_vmul(r4, r), r5_lo = sl_vfma(r4_lo, r, sl_vfms(r4, r, r5));
    sl_vd inv120 = SL_V(SL_INV120);
    sl_vd c5 = sl_vmul(r5, inv120); /* r^5/120 */
    sl_vd c5_lo = sl_vfma(r5_lo, inv120, sl_vfma(r5, SL_V(SL_INV120_LO), sl_vfms(r5, inv120, c5)));
    sl_vd tail = sl_vmul(sl_vmul(r5, r), sl_estrin_v(sl_exp_taylor, 12, r));
    sl_vd s = sl_vadd(SL_V(1.0), r);
    sl_vd s_lo = sl_vsub(r, sl_vsub(s, SL_V(1.0))); /* 1 + r = s + s_lo (Fast2Sum) */
    sl_vd e2, e3, e4, e5;
    s = sl_two_sum_v(s, sl_vmul(SL_V(0.5), r2), &e2);
    s = sl_two_sum_v(s, c3, &e3);
    s = sl_two_sum_v(s, sl_vmul(SL_V(0.25), c4), &e4);
    s = sl_two_sum_v(s, c5, &e5);
    sl_vd low = sl_vadd(sl_vadd(sl_vadd(s_lo, e2), sl_vadd(e3, e4)), sl_vadd(e5, sl_vfma(SL_V(0.5), r2_lo, c3_lo)));
    low = sl_vadd(low, sl_vadd(sl_vfma(SL_V(0.25), c4_lo, c5_lo), tail));
    low = sl_vfma(r_lo, s, low); /* e^(r + r_lo) = e^r (1 + r_lo) */
    sl_vd scale = sl_pow2i_v(n);
    sl_vd hi = sl_vadd(s, low);
    *lo = sl_vmul(sl_vadd(sl_vsub(s, hi), low), scale);
    return sl_vmul(hi, scale);
}

/* log(x + x_lo) = hi + *lo for x > 0 with |log x| <= 690, from y = sl_log_v(x, 0), as sl_log_hl. */
SL_VEC SL_INLINE sl_vd sl_log_hl_v(sl_vd x, sl_vd x_lo, sl_vd y, sl_vd *lo)
{
    sl_vd e_lo, e = sl_exp_hl_v(sl_vsub(sl_vzero(), y), &e_lo);
    sl_vd p = sl_vmul(x, e);
    sl_vd p_lo = sl_vfms(x, e, p);
    sl_vd d = sl_vadd(sl_vsub(p, SL_V(1.0)), sl_vadd(p_lo, sl_vfma(x, e_lo, sl_vmul(x_lo, e)))); /* p - 1 exact */
    d = sl_vfnma(sl_vmul(SL_V(0.5), d), d, d); /* log1p(d) = d - d^2/2 */
    sl_vd hi = sl_vadd(y, d);
    *lo = sl_vadd(sl_vsub(y, hi), d);
    return hi;
}

SL_VEC SL_INLINE sl_vd sl_softplus_tail_v(sl_vd x, sl_vd *e, int cheap)
{
    *e = sl_exp_v(sl_vor(x, SL_V(-0.0)), cheap); /* -|x| */
    return sl_log1p_v(*e, cheap);
}

/* sl_exp_hilo and sl_log_hilo (same formulas): x in [-SL_EXP_NORMAL, 0], resp. positive normal. */
SL_VEC SL_INLINE sl_vd sl_exp_hilo_v(sl_vd x, sl_vd x_lo, sl_vd *lo)
{
    sl_vd n = sl_vround(sl_vmul(x, SL_V(SL_LOG2E)));
    sl_vd r1 = sl_vfnma(n, SL_V(SL_LN2_HI), x); /* exact */
    sl_vd r = sl_vfnma(n, SL_V(SL_LN2_LO), r1);
    sl_vd c = sl_vadd(sl_vfnma(n, SL_V(SL_LN2_LO), sl_vsub(r1, r)), x_lo);
    sl_vd tail_q = sl_estrin_v(sl_exp_q_full + 1, 10, r);
    sl_vd rr_lo, rr = sl_two_prod_v(r, r, &rr_lo);
    sl_vd half_rr = sl_vmul(SL_V(0.5), rr);
    sl_vd tail = sl_vmul(sl_vmul(r, rr), tail_q);
    sl_vd s = sl_vadd(SL_V(1.0), r), s_err = sl_vsub(r, sl_vsub(s, SL_V(1.0)));
    sl_vd t_err, u = sl_two_sum_v(s, half_rr, &t_err);
    sl_vd ce = sl_vfma(c, sl_vadd(r, sl_vadd(half_rr, tail)), c);
    sl_vd small = sl_vadd(sl_vadd(s_err, t_err), sl_vfma(SL_V(0.5), rr_lo, sl_vadd(tail, ce)));
    sl_vd hi = sl_vadd(u, small), scale = sl_pow2i_v(n);
    *lo = sl_vmul(sl_vsub(small, sl_vsub(hi, u)), scale);
    return sl_vmul(hi, scale);
}

SL_VEC SL_INLINE sl_vd sl_log_hilo_v(sl_vd x, sl_vd *lo)
{
    sl_vd k, f = sl_log_split_v(x, &k);
    sl_vd d = sl_vadd(SL_V(2.0), f), d_lo = sl_vsub(f, sl_vsub(d, SL_V(2.0)));
    sl_vd s = sl_vdiv(f, d);
    sl_vd s_lo = sl_vdiv(sl_vfnma(s, d_lo, sl_vfnma(s, d, f)), d); /* f - s d exact by FMA */
    sl_vd z = sl_vmul(s, s);
    sl_vd a_err, a = sl_two_sum_v(sl_vmul(k, SL_V(SL_LN2_HI)), sl_vadd(s, s), &a_err);
    sl_vd tail = sl_vmul(sl_vmul(s, z), sl_estrin_v(sl_log_p_full, 7, z));
    sl_vd small = sl_vadd(a_err, sl_vadd(sl_vadd(s_lo, s_lo), sl_vfma(k, SL_V(SL_LN2_LO), tail)));
    sl_vd hi = sl_vadd(a, small);
    *lo = sl_vsub(small, sl_vsub(hi, a));
    return hi;
}

/* ------------------------------------------------------------------------------------------------
 * Float lanes: the fast paths of float32 kernels whose outputs do not cancel.  Inputs stay float32
 * (2 SL_L lanes instead of SL_L); sums and the final products are still formed in double.
 * Measured over every float32 argument of the range against glibc's double exp / log1p (whose own
 * error is far below a float ulp) by tests/primitives.c (tests/test_primitives.py runs it on a
 * sample of the arguments; `STRIDE=1` there for all of them):
 *   sl_expf_neg_v     <= 0.98 ulp on [-86, 0]
 *   sl_log1pf_unit_v  <= 0.71 ulp on [0, 1], before the caller rounds its double result to float
 * No special values: callers send only arguments in these ranges (and fall back to the double forms
 * above otherwise). */

#define SL_LOG2E_F 0x1.715476p+0f
#define SL_LN2_HI_F 0x1.62e400p-1f /* 16 bits: n SL_LN2_HI_F is exact for |n| <= 2^8 */
#define SL_LN2_LO_F 0x1.7f7d1cp-20f
#define SL_EXPF_NEG_RANGE 86.0f /* sl_expf_neg_v takes [-86, 0], where its result is a normal float */

/* exp(r) = 1 + r + r^2 q(r) on |r| <= ln2/2, q of degree 5 (least squares on Chebyshev nodes, mpmath;
 * contributes <= 0.012 ulp) */
static const float sl_expf_q[6] = {0x1.000000p-1f, 0x1.555556p-3f, 0x1.5554eap-5f,
                                   0x1.1110c6p-7f, 0x1.6d431ap-10f, 0x1.a1516ep-13f};
/* log1p(e) = e + e^2 Q(e) on [0, 1], Q of degree 9 (weighted least squares on 3000 Chebyshev nodes,
 * mpmath, each coefficient rounded to float before the next ones were refitted; contributes <= 0.024
 * ulp).  No division and no argument reduction: the singularity at -1 is 3 half-widths from [0, 1]. */
static const float sl_log1pf_q[10] = {-0x1.000000p-1f, 0x1.55549cp-2f,  -0x1.ffd92ep-3f, 0x1.97f9b6p-3f,
                                      -0x1.4be012p-3f, 0x1.0281b6p-3f,  -0x1.5c7a80p-4f, 0x1.64daf2p-5f,
                                      -0x1.d57cf4p-7f, 0x1.20eba6p-9f};

/* c[0] + c[1] x + ... + c[n-1] x^(n-1) for even n: the pairs c[2k] + c[2k+1] x in Horner's scheme on
 * x2 = x^2, half the dependent steps of plain Horner (these loops wait on latency, not throughput) */
SL_VEC SL_INLINE sl_vf sl_poly_pairsf_v(const float *c, int n, sl_vf x, sl_vf x2)
{
    sl_vf p = sl_vfmaf(SL_VF(c[n - 1]), x, SL_VF(c[n - 2]));
    for (int i = n - 4; i >= 0; i -= 2)
        p = sl_vfmaf(p, x2, sl_vfmaf(SL_VF(c[i + 1]), x, SL_VF(c[i])));
    return p;
}

/* exp(z) for z in [-86, 0]: the result is normal.  n = round(z log2e) by the 1.5 2^23 shift (no
 * reassociation in these builds), r = z - n ln2 with n SL_LN2_HI_F exact, e^r = 1 + (r + r^2 q(r))
 * rounded once at the end, and 2^n added to the exponent field. */
SL_VEC SL_INLINE sl_vf sl_expf_neg_v(sl_vf z)
{
    sl_vf t = sl_vfmaf(z, SL_VF(SL_LOG2E_F), SL_VF(0x1.8p23f)); /* low bits of t: n */
    sl_vf n = sl_vsubf(t, SL_VF(0x1.8p23f));
    sl_vf r = sl_vfnmaf(n, SL_VF(SL_LN2_LO_F), sl_vfnmaf(n, SL_VF(SL_LN2_HI_F), z));
    sl_vf r2 = sl_vmulf(r, r);
    /* q = c0 + r (c1 + r Q(r)): Horner for the two leading terms (the pairs scheme for all six would
     * exceed 1 ulp), Q in pairs (two steps fewer than Horner) */
    sl_vf q = sl_poly_pairsf_v(sl_expf_q + 2, 4, r, r2);
    q = sl_vfmaf(sl_vfmaf(q, r, SL_VF(sl_expf_q[1])), r, SL_VF(sl_expf_q[0]));
    sl_vf p = sl_vfmaf(r2, q, r);
    return sl_vf_add_exponent(sl_vaddf(SL_VF(1.0f), p), t); /* + n 2^23: n in the exponent field */
}

/* log1p(e) for e in [0, 1], as two vectors of doubles: e + e^2 Q(e) with Q in float lanes and the last
 * step (the largest terms) in double, where e^2 is exact and the FMA's rounding is far below a float
 * ulp; the caller rounds once, to float, after its own additions. */
SL_VEC SL_INLINE void sl_log1pf_unit_v(sl_vf e, sl_vd *lo, sl_vd *hi)
{
    sl_vd e_lo, e_hi, q_lo, q_hi;
    sl_widen_v(sl_poly_pairsf_v(sl_log1pf_q, 10, e, sl_vmulf(e, e)), &q_lo, &q_hi);
    sl_widen_v(e, &e_lo, &e_hi);
    *lo = sl_vfma(sl_vmul(e_lo, e_lo), q_lo, e_lo);
    *hi = sl_vfma(sl_vmul(e_hi, e_hi), q_hi, e_hi);
}

#endif /* SL_X86 */
#endif /* SL_MATH_H */
