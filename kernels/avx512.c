/*
 * avx512.c -- the AVX-512 variants of every kernel: each kernel file compiled a second time with
 * SL_AVX512_UNIT, which gives its vector passes 8-lane vectors and mask registers (sl_vec.h) and
 * makes SL_KERNEL define stem##_avx512_f32 / _f64, the variants the main unit's dispatch calls at
 * SIMD level 2.  The files' entry points are compiled in the main unit only.
 */
#define SL_AVX512_UNIT 1

#include "bce.c"
#include "ce.c"
#include "focal.c"
#include "gnll.c"
#include "huber.c"
#include "kl.c"
#include "lse.c"
#include "mse.c"
#include "nll.c"
#include "pnll.c"
