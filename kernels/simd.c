/*
 * simd.c -- the run-time choice between the scalar, AVX2+FMA and AVX-512 kernels.
 *
 * Detected once (__builtin_cpu_supports, which also checks that the OS saves the vector registers)
 * on first use; sl_set_simd_level lets tests and benchmarks force a lower level and compare them.  A
 * level the CPU lacks is never selected.
 */
#include "stableloss.h"
#include "sl_math.h"

static int sl_level = -1; /* -1: not detected yet */

static int sl_simd_supported(void)
{
#if SL_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
               ? 2
               : 1;
#else
    return 0;
#endif
}

int sl_simd_level(void)
{
    int level = __atomic_load_n(&sl_level, __ATOMIC_RELAXED);
    if (level < 0) {
        level = sl_simd_supported();
        __atomic_store_n(&sl_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

int sl_simd_best_level(void)
{
    return sl_simd_supported();
}

void sl_set_simd_level(int level)
{
    int best = sl_simd_supported();
    __atomic_store_n(&sl_level, level < 0 || level > best ? best : level, __ATOMIC_RELAXED);
}
