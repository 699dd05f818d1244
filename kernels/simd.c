/*
 * simd.c -- the run-time choice between the scalar and the AVX2+FMA kernels.
 *
 * Detected once (__builtin_cpu_supports) on first use; sl_set_simd_level lets tests force the
 * scalar path and compare both.  A level the CPU lacks is never selected.
 */
#include "stableloss.h"
#include "sl_math.h"

static int sl_level = -1; /* -1: not detected yet */

static int sl_simd_supported(void)
{
#if SL_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
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

void sl_set_simd_level(int level)
{
    int best = sl_simd_supported();
    __atomic_store_n(&sl_level, level < 0 || level > best ? best : level, __ATOMIC_RELAXED);
}
