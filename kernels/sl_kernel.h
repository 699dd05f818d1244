/*
 * sl_kernel.h -- the scaffolding every kernel family shares: one templated body per family turned
 * into the compiled variants (scalar / AVX2+FMA / AVX-512, float32 / float64) with run-time dispatch, and
 * the block loop that produces block_sums.
 *
 * Templates in C: a family body is an SL_INLINE function taking `int f32` (and, where the scalar and
 * vector bodies differ only in their inner passes, the pass functions as pointer arguments).  The
 * instantiation wrappers below call it with constants, so after inlining each variant is
 * straight-line code for one dtype and one ISA, with the pointer calls resolved and inlined.
 */
#ifndef SL_KERNEL_H
#define SL_KERNEL_H

#include "sl_math.h"
#include "stableloss.h"

/* Address of row `row` of a C-contiguous [.][width] array of float or double. */
SL_INLINE const void *sl_row_in(const void *base, int64_t row, int64_t width, int f32)
{
    return (const char *)base + (size_t)(row * width) * (f32 ? sizeof(float) : sizeof(double));
}

SL_INLINE void *sl_row_out(void *base, int64_t row, int64_t width, int f32)
{
    return base ? (char *)base + (size_t)(row * width) * (f32 ? sizeof(float) : sizeof(double)) : NULL;
}

/* ------------------------------------------------------------------------------------------------
 * The block loop.  row(args, i, f32) handles row i (stores its outputs) and returns its unrounded
 * loss; block_sums[b] = sum over the rows of block b, compensated for float64, in double for
 * float32.  Without block_sums the whole range is one block and nothing is summed. */

typedef double (*sl_row_fn)(const void *args, int64_t i, int f32);

SL_INLINE void sl_rows(const void *args, int64_t n, int64_t rows_per_block, double *block_sums,
                       sl_row_fn row, int f32)
{
    int64_t block = block_sums && rows_per_block > 0 ? rows_per_block : n;
    for (int64_t start = 0, b = 0; start < n; start += block, b++) {
        int64_t end = n - start > block ? start + block : n;
        sl_acc acc = {0.0, 0.0};
        for (int64_t i = start; i < end; i++)
            sl_acc_add(&acc, row(args, i, f32), f32);
        if (block_sums)
            block_sums[b] = sl_acc_value(&acc);
    }
}

#if SL_X86
/* The same for elementwise losses, SL_L rows per step: lanes(args, i, tail, f32) handles rows
 * i .. i + SL_L - 1, one per lane (only the tail's lanes when tail != NULL), and returns their losses. */

typedef sl_vd (*sl_lanes_fn)(const void *args, int64_t i, const sl_tail *tail, int f32);

SL_VEC SL_INLINE void sl_rows_v(const void *args, int64_t n, int64_t rows_per_block,
                                double *block_sums, sl_lanes_fn lanes, int f32)
{
    int64_t block = block_sums && rows_per_block > 0 ? rows_per_block : n;
    for (int64_t start = 0, b = 0; start < n; start += block, b++) {
        int64_t end = n - start > block ? start + block : n;
        sl_acc_v acc = sl_acc_v_zero();
        int64_t i = start;
        for (; end - i >= SL_L; i += SL_L)
            sl_acc_v_add(&acc, lanes(args, i, NULL, f32), f32);
        if (i < end) {
            sl_tail tail = sl_tail_mask(end - i);
            sl_acc_v_add(&acc, sl_keep_v(lanes(args, i, &tail, f32), &tail), f32);
        }
        if (block_sums)
            block_sums[b] = sl_acc_v_value(&acc, f32);
    }
}

/* The same with a span function: span(args, i) handles rows i .. i + span_rows - 1 (several vectors at
 * once, see bce_span_f32) and returns their losses in SL_L lanes; the last rows of a block go through
 * lanes.  The block's order is fixed, so the sums are bitwise the same for any split (at one SIMD
 * level). */

typedef sl_vd (*sl_span_fn)(const void *args, int64_t i);

SL_VEC SL_INLINE void sl_rows_span(const void *args, int64_t n, int64_t rows_per_block, double *block_sums,
                                   sl_span_fn span, int64_t span_rows, sl_lanes_fn lanes, int f32)
{
    int64_t block = block_sums && rows_per_block > 0 ? rows_per_block : n;
    for (int64_t start = 0, b = 0; start < n; start += block, b++) {
        int64_t end = n - start > block ? start + block : n;
        sl_acc_v acc = sl_acc_v_zero();
        int64_t i = start;
        for (; end - i >= span_rows; i += span_rows)
            sl_acc_v_add(&acc, span(args, i), f32);
        for (; end - i >= SL_L; i += SL_L)
            sl_acc_v_add(&acc, lanes(args, i, NULL, f32), f32);
        if (i < end) {
            sl_tail tail = sl_tail_mask(end - i);
            sl_acc_v_add(&acc, sl_keep_v(lanes(args, i, &tail, f32), &tail), f32);
        }
        if (block_sums)
            block_sums[b] = sl_acc_v_value(&acc, f32);
    }
}
#endif

/* ------------------------------------------------------------------------------------------------
 * Instantiation and dispatch.  SL_KERNEL(stem, args_type) expects
 *     SL_INLINE void stem##_scalar(const args_type *a, int f32);
 *     SL_VEC SL_INLINE void stem##_vec(const args_type *a, int f32);   (x86 only)
 * In the main unit it defines the scalar and AVX2 variants and `static void stem##_run(const
 * args_type *a, int f32)`, which runs the variant for the dtype and the SIMD level in force
 * (sl_simd_level(): 0 scalar, 1 AVX2+FMA, 2 AVX-512).  In the AVX-512 unit (avx512.c, the same kernel
 * files compiled with SL_AVX512_UNIT) it defines that unit's variants, stem##_avx512_f32 / _f64. */

#define SL_SCALAR_VARIANTS(stem, args_type)                                                          \
    static void stem##_scalar_f32(const args_type *a) { stem##_scalar(a, 1); }                       \
    static void stem##_scalar_f64(const args_type *a) { stem##_scalar(a, 0); }

#define SL_HIDDEN __attribute__((visibility("hidden")))

#if SL_X86 && defined(SL_AVX512_UNIT)
#define SL_KERNEL(stem, args_type)                                                                   \
    SL_HIDDEN SL_VEC void stem##_avx512_f32(const args_type *a) { stem##_vec(a, 1); }               \
    SL_HIDDEN SL_VEC void stem##_avx512_f64(const args_type *a) { stem##_vec(a, 0); }
#elif SL_X86
#define SL_KERNEL(stem, args_type)                                                                   \
    SL_SCALAR_VARIANTS(stem, args_type)                                                              \
    SL_VEC static void stem##_avx2_f32(const args_type *a) { stem##_vec(a, 1); }                    \
    SL_VEC static void stem##_avx2_f64(const args_type *a) { stem##_vec(a, 0); }                    \
    SL_HIDDEN void stem##_avx512_f32(const args_type *a);                                            \
    SL_HIDDEN void stem##_avx512_f64(const args_type *a);                                            \
    static void stem##_run(const args_type *a, int f32)                                              \
    {                                                                                                \
        int level = sl_simd_level();                                                                 \
        if (level >= 2)                                                                              \
            (f32 ? stem##_avx512_f32 : stem##_avx512_f64)(a);                                        \
        else if (level == 1)                                                                         \
            (f32 ? stem##_avx2_f32 : stem##_avx2_f64)(a);                                            \
        else                                                                                         \
            (f32 ? stem##_scalar_f32 : stem##_scalar_f64)(a);                                        \
    }
#else
#define SL_KERNEL(stem, args_type)                                                                   \
    SL_SCALAR_VARIANTS(stem, args_type)                                                              \
    static void stem##_run(const args_type *a, int f32)                                              \
    {                                                                                                \
        (f32 ? stem##_scalar_f32 : stem##_scalar_f64)(a);                                            \
    }
#endif

#endif /* SL_KERNEL_H */
