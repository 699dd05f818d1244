/*
 * primitives.c -- the ulp error of the float32 lane primitives of kernels/sl_math.h, over every
 * float32 argument of their ranges (every `stride`-th bit pattern), against glibc's double exp and
 * log1p, whose own error is far below a float ulp; and the relative error of the shortest double exp
 * (grade SL_CHEAP_SUM, scalar and AVX2) over 2^26 / stride evenly spread arguments of [-708, 708],
 * against x87 long double expl.  Prints "<name> <worst error> <argument>" lines.
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

/* A primitive on 8 float lanes, its results as 8 doubles (the float results widened, exactly, where
 * the primitive returns floats). */
typedef void (*unary_v)(__m256, double *);

SL_AVX2 static void exp_neg(__m256 z, double *out)
{
    __m256d lo, hi;
    sl_widen_v(sl_expf_neg_v(z), &lo, &hi);
    _mm256_storeu_pd(out, lo);
    _mm256_storeu_pd(out + 4, hi);
}

SL_AVX2 static void log1p_unit(__m256 e, double *out)
{
    __m256d lo, hi;
    sl_log1pf_unit_v(e, &lo, &hi);
    _mm256_storeu_pd(out, lo);
    _mm256_storeu_pd(out + 4, hi);
}

/* Arguments sign * (bit patterns first, first + stride, ... up to |x| <= limit). */
SL_AVX2 static void measure(const char *name, unary_v f, double (*exact)(double), float sign, float limit,
                            uint32_t stride)
{
    double worst = 0.0;
    float worst_at = 0.0f;
    float args[8];
    double out[8];
    int count = 0;
    for (uint64_t bits = 0;; bits += stride) {
        float v;
        uint32_t b = (uint32_t)bits;
        memcpy(&v, &b, sizeof v);
        int last = !(v <= limit) || bits > 0x7f800000u;
        if (!last)
            args[count++] = sign * v;
        if (count == 8 || (last && count)) {
            for (int l = count; l < 8; l++)
                args[l] = args[0];
            f(_mm256_loadu_ps(args), out);
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

SL_AVX2 static __m256d exp_sum_v(__m256d x) { return sl_exp_v(x, SL_CHEAP_SUM); }

/* Worst |got / exact - 1| of the SL_CHEAP_SUM exp, vector or scalar form, on [-708, 708]. */
SL_AVX2 static void measure_exp_sum(const char *name, int vector, uint32_t stride)
{
    int64_t count = ((int64_t)1 << 26) / stride;
    double worst = 0.0, worst_at = 0.0;
    for (int64_t i = 0; i < count; i += 4) {
        double args[4], out[4];
        for (int l = 0; l < 4; l++)
            args[l] = -708.0 + 1416.0 * (double)(i + l) / (double)count;
        if (vector)
            _mm256_storeu_pd(out, exp_sum_v(_mm256_loadu_pd(args)));
        for (int l = 0; l < 4; l++) {
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

int main(int argc, char **argv)
{
    uint32_t stride = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("no-avx2\n");
        return 0;
    }
    measure("sl_expf_neg_v", exp_neg, exp, -1.0f, 86.0f, stride);
    measure("sl_log1pf_unit_v", log1p_unit, log1p, 1.0f, 1.0f, stride);
    measure_exp_sum("sl_exp_sum", 0, stride);
    measure_exp_sum("sl_exp_sum_v", 1, stride);
    return 0;
}
