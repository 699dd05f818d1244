/*
 * primitives.c -- the error of the vector primitives of kernels/sl_math.h at one SIMD level (AVX2+FMA,
 * or AVX-512 when built with -DSL_AVX512_UNIT): the float32 lane primitives over every float32
 * argument of their ranges (every `stride`-th bit pattern), in ulp against glibc's double exp and
 * log1p, whose own error is far below a float ulp; the shortest double exp (grade SL_CHEAP_SUM, vector
 * and scalar) as a relative error, and the full-grade double exp, log and log1p in ulp of the exact
 * double result, over 2^26 / stride evenly spread arguments, against x87 long double expl, logl and
 * log1pl (their own error below 0.001 ulp of double).  Prints "<name> <worst error> <argument>" lines,
 * or "unsupported" when the CPU lacks the level.
 * Usage: primitives [stride]   (built and run by tests/test_primitives.py)
 */
#include <stdio.h>
#include <stdlib.h>

#include "sl_math.h"

/* |got - exact| in ulps of the exact value's float32 binade (subnormal spacing below 2^-126). */
static double ulp_error(double got, double exact)
{
    int e;
    frexp(exact, &e);
    double ulp = ldexp(1.0, e - 24 < -149 ? -149 : e - 24);
    return fabs((double)got - exact) / ulp;
}

/* The same in ulps of double (subnormal spacing below 2^-1022). */
static double ulp_error_f64(double got, long double exact)
{
    int e;
    frexpl(exact, &e);
    long double ulp = ldexpl(1.0L, e - 53 < -1074 ? -1074 : e - 53);
    return (double)(fabsl((long double)got - exact) / ulp);
}

#define LANES (2 * SL_L) /* float lanes */

/* A primitive on LANES float lanes, its results as LANES doubles (the float results widened, exactly,
 * where the primitive returns floats). */
typedef void (*unary_v)(sl_vf, double *);

SL_VEC static void exp_neg(sl_vf z, double *out)
{
    sl_vd lo, hi;
    sl_widen_v(sl_expf_neg_v(z), &lo, &hi);
    sl_vstoreu(out, lo);
    sl_vstoreu(out + SL_L, hi);
}

SL_VEC static void log1p_unit(sl_vf e, double *out)
{
    sl_vd lo, hi;
    sl_log1pf_unit_v(e, &lo, &hi);
    sl_vstoreu(out, lo);
    sl_vstoreu(out + SL_L, hi);
}

/* Arguments sign * (bit patterns first, first + stride, ... up to |x| <= limit). */
SL_VEC static void measure(const char *name, unary_v f, double (*exact)(double), float sign, float limit,
                            uint32_t stride)
{
    double worst = 0.0;
    float worst_at = 0.0f;
    float args[LANES];
    double out[LANES];
    int count = 0;
    for (uint64_t bits = 0;; bits += stride) {
        float v;
        uint32_t b = (uint32_t)bits;
        memcpy(&v, &b, sizeof v);
        int last = !(v <= limit) || bits > 0x7f800000u;
        if (!last)
            args[count++] = sign * v;
        if (count == LANES || (last && count)) {
            for (int l = count; l < LANES; l++)
                args[l] = args[0];
            f(sl_vloaduf(args), out);
            for (int l = 0; l < count; l++) {
                double err = ulp_error(out[l], exact((double)args[l]));
                if (err > worst) {
                    worst = err;
                    worst_at = args[l];
                }
            }
            count = 0;
        }
        if (last)
            break;
    }
    printf("%s %.4f %a\n", name, worst, worst_at);
}

SL_VEC static sl_vd exp_sum_v(sl_vd x) { return sl_exp_v(x, SL_CHEAP_SUM); }

/* Worst |got / exact - 1| of the SL_CHEAP_SUM exp, vector or scalar form, on [-708, 708]. */
SL_VEC static void measure_exp_sum(const char *name, int vector, uint32_t stride)
{
    int64_t count = ((int64_t)1 << 26) / stride;
    double worst = 0.0, worst_at = 0.0;
    for (int64_t i = 0; i < count; i += SL_L) {
        double args[SL_L], out[SL_L];
        for (int l = 0; l < SL_L; l++)
            args[l] = -708.0 + 1416.0 * (double)(i + l) / (double)count;
        if (vector)
            sl_vstoreu(out, exp_sum_v(sl_vloadu(args)));
        for (int l = 0; l < SL_L; l++) {
            double got = vector ? out[l] : sl_exp(args[l], SL_CHEAP_SUM);
            double err = (double)fabsl((long double)got / expl((long double)args[l]) - 1.0L);
            if (err > worst) {
                worst = err;
                worst_at = args[l];
            }
        }
    }
    printf("%s %.4g %a\n", name, worst, worst_at);
}

SL_VEC static sl_vd exp_full_v(sl_vd x) { return sl_exp_v(x, 0); }
SL_VEC static sl_vd log_full_v(sl_vd x) { return sl_log_v(x, 0); }
SL_VEC static sl_vd log1p_full_v(sl_vd x) { return sl_log1p_v(x, 0); }

/* Worst ulp error of a full-grade double primitive on [lo, hi]: 2^26 / stride arguments, evenly spread
 * (geometric: evenly spread exponents, for log and log1p over many binades). */
SL_VEC static void measure_f64(const char *name, sl_vd (*f)(sl_vd), long double (*exact)(long double), double lo,
                               double hi, int geometric, uint32_t stride)
{
    int64_t count = ((int64_t)1 << 26) / stride;
    double worst = 0.0, worst_at = 0.0;
    for (int64_t i = 0; i < count; i += SL_L) {
        double args[SL_L], out[SL_L];
        for (int l = 0; l < SL_L; l++) {
            double t = (double)(i + l) / (double)(count - 1);
            args[l] = geometric ? exp2(log2(lo) + (log2(hi) - log2(lo)) * t) : lo + (hi - lo) * t;
        }
        sl_vstoreu(out, f(sl_vloadu(args)));
        for (int l = 0; l < SL_L; l++) {
            double err = ulp_error_f64(out[l], exact((long double)args[l]));
            if (err > worst) {
                worst = err;
                worst_at = args[l];
            }
        }
    }
    printf("%s %.4f %a\n", name, worst, worst_at);
}

static int supported(void)
{
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
#ifdef SL_AVX512_UNIT
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 1;
#endif
}

int main(int argc, char **argv)
{
    uint32_t stride = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1;
    if (!supported()) {
        printf("unsupported\n");
        return 0;
    }
    measure("sl_expf_neg_v", exp_neg, exp, -1.0f, 86.0f, stride);
    measure("sl_log1pf_unit_v", log1p_unit, log1p, 1.0f, 1.0f, stride);
    measure_exp_sum("sl_exp_sum", 0, stride);
    measure_exp_sum("sl_exp_sum_v", 1, stride);
    measure_f64("sl_exp_v", exp_full_v, expl, -745.13, 709.78, 0, stride);
    measure_f64("sl_log_v", log_full_v, logl, 0x1p-1074, 0x1p1023, 1, stride);
    measure_f64("sl_log_v_near_1", log_full_v, logl, 0.5, 2.0, 0, stride);
    measure_f64("sl_log1p_v", log1p_full_v, log1pl, 0x1p-60, 0x1p1000, 1, stride);
    measure_f64("sl_log1p_v_unit", log1p_full_v, log1pl, 0.0, 2.0, 0, stride);
    return 0;
}
