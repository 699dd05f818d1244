/*
 * sl_vec.h -- the vector layer: one spelling of the vector operations the kernels use, compiled for
 * two instruction sets.  Every vector pass of the kernels is written once against it.
 *
 *   AVX2+FMA (the main unit): SL_L = 4 double lanes in a __m256d; comparisons give all-ones lanes.
 *   AVX-512 F/DQ/BW/VL (avx512.c, SL_AVX512_UNIT): 8 double lanes in a __m512d; comparisons give
 *     mask registers (__mmask8), and tails are masked loads and stores.  Building with
 *     SL_AVX512_BITS=256 (STABLELOSS_AVX512_BITS=256, kernels/build.py) keeps 4 lanes with the AVX-512
 *     instructions (EVEX, 32 registers, masks): the comparison that chose 512-bit vectors
 *     (docs/design.md).
 *
 * Types: sl_vd, SL_L doubles; sl_vm, a mask of SL_L lanes; sl_vf, 2 SL_L floats (the float-lane fast
 * paths), sl_vfm its mask; sl_vh, SL_L floats (what one sl_vd holds once narrowed).
 * Masks: sl_vcmp(a, b, _CMP_..) makes one; sl_vm_and / sl_vm_or / sl_vm_andnot(a, b) (= !a and b)
 * combine them; sl_vselect(m, a, b) = m ? a : b; sl_vkeep(m, v) = m ? v : 0, sl_vdrop(m, v) = m ? 0 : v;
 * sl_vm_bits(m) is the
 * lane bits (SL_LANES_ALL for every lane).
 */
#ifndef SL_VEC_H
#define SL_VEC_H

#include <immintrin.h>

#ifdef SL_AVX512_UNIT
#define SL_EVEX 1
#ifndef SL_AVX512_BITS
#define SL_AVX512_BITS 512
#endif
#define SL_VBITS SL_AVX512_BITS
#define SL_VEC __attribute__((target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")))
#else
#define SL_EVEX 0
#define SL_VBITS 256
#define SL_VEC __attribute__((target("avx2,fma")))
#endif

#if SL_VBITS == 512
#define SL_L 8
typedef __m512d sl_vd;
typedef __m512i sl_vi;
typedef __m512 sl_vf;
typedef __m256 sl_vh;
#define SL_MM(op) _mm512_##op
#else
#define SL_L 4
typedef __m256d sl_vd;
typedef __m256i sl_vi;
typedef __m256 sl_vf;
typedef __m128 sl_vh;
#define SL_MM(op) _mm256_##op
#endif
#define SL_LANES_ALL ((1 << SL_L) - 1)

#if SL_EVEX
typedef __mmask8 sl_vm;
typedef __mmask16 sl_vfm;
#else
typedef __m256d sl_vm;
typedef __m256 sl_vfm;
#endif

#define SL_V(c) SL_MM(set1_pd)(c)
#define SL_VF(c) SL_MM(set1_ps)(c)

/* ------------------------------------------------------------------------------------------------
 * Doubles: arithmetic and bit operations (IEEE, no reassociation; FMA only where asked) */

SL_VEC SL_INLINE sl_vd sl_vzero(void) { return SL_MM(setzero_pd)(); }
SL_VEC SL_INLINE sl_vd sl_vadd(sl_vd a, sl_vd b) { return SL_MM(add_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vsub(sl_vd a, sl_vd b) { return SL_MM(sub_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vmul(sl_vd a, sl_vd b) { return SL_MM(mul_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vdiv(sl_vd a, sl_vd b) { return SL_MM(div_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vfma(sl_vd a, sl_vd b, sl_vd c) { return SL_MM(fmadd_pd)(a, b, c); }   /* a b + c */
SL_VEC SL_INLINE sl_vd sl_vfnma(sl_vd a, sl_vd b, sl_vd c) { return SL_MM(fnmadd_pd)(a, b, c); } /* c - a b */
SL_VEC SL_INLINE sl_vd sl_vfms(sl_vd a, sl_vd b, sl_vd c) { return SL_MM(fmsub_pd)(a, b, c); }   /* a b - c */
/* max(a, b) and min(a, b) return b where either is NaN (the x86 rule the kernels rely on) */
SL_VEC SL_INLINE sl_vd sl_vmax(sl_vd a, sl_vd b) { return SL_MM(max_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vmin(sl_vd a, sl_vd b) { return SL_MM(min_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vor(sl_vd a, sl_vd b) { return SL_MM(or_pd)(a, b); }
SL_VEC SL_INLINE sl_vd sl_vandnot(sl_vd a, sl_vd b) { return SL_MM(andnot_pd)(a, b); } /* ~a & b */
SL_VEC SL_INLINE sl_vd sl_vloadu(const double *p) { return SL_MM(loadu_pd)(p); }
SL_VEC SL_INLINE void sl_vstoreu(double *p, sl_vd v) { SL_MM(storeu_pd)(p, v); }
SL_VEC SL_INLINE sl_vd sl_vfloor(sl_vd x) { return SL_MM(floor_pd)(x); }
#if SL_VBITS == 512
SL_VEC SL_INLINE double sl_vfirst(sl_vd v) { return _mm512_cvtsd_f64(v); }
#else
SL_VEC SL_INLINE double sl_vfirst(sl_vd v) { return _mm256_cvtsd_f64(v); }
#endif

/* ------------------------------------------------------------------------------------------------
 * Masks */

#if SL_EVEX
SL_VEC SL_INLINE sl_vm sl_vm_and(sl_vm a, sl_vm b) { return a & b; }
SL_VEC SL_INLINE sl_vm sl_vm_or(sl_vm a, sl_vm b) { return a | b; }
SL_VEC SL_INLINE sl_vm sl_vm_andnot(sl_vm a, sl_vm b) { return (sl_vm)(~a & b); }
SL_VEC SL_INLINE int sl_vm_bits(sl_vm m) { return m; }
SL_VEC SL_INLINE sl_vd sl_vselect(sl_vm m, sl_vd a, sl_vd b) { return SL_MM(mask_blend_pd)(m, b, a); }
SL_VEC SL_INLINE sl_vd sl_vkeep(sl_vm m, sl_vd v) { return SL_MM(maskz_mov_pd)(m, v); }
SL_VEC SL_INLINE sl_vd sl_vdrop(sl_vm m, sl_vd v) { return SL_MM(maskz_mov_pd)((sl_vm)~m, v); }
#define sl_vcmp(a, b, predicate) SL_MM(cmp_pd_mask)(a, b, predicate)
#else
SL_VEC SL_INLINE sl_vm sl_vm_and(sl_vm a, sl_vm b) { return _mm256_and_pd(a, b); }
SL_VEC SL_INLINE sl_vm sl_vm_or(sl_vm a, sl_vm b) { return _mm256_or_pd(a, b); }
SL_VEC SL_INLINE sl_vm sl_vm_andnot(sl_vm a, sl_vm b) { return _mm256_andnot_pd(a, b); }
SL_VEC SL_INLINE int sl_vm_bits(sl_vm m) { return _mm256_movemask_pd(m); }
SL_VEC SL_INLINE sl_vd sl_vselect(sl_vm m, sl_vd a, sl_vd b) { return _mm256_blendv_pd(b, a, m); }
SL_VEC SL_INLINE sl_vd sl_vkeep(sl_vm m, sl_vd v) { return _mm256_and_pd(m, v); }
SL_VEC SL_INLINE sl_vd sl_vdrop(sl_vm m, sl_vd v) { return _mm256_andnot_pd(m, v); }
#define sl_vcmp(a, b, predicate) _mm256_cmp_pd(a, b, predicate)
#endif

/* ------------------------------------------------------------------------------------------------
 * 64-bit integer lanes (exponent-field arithmetic of exp and log) */

#if SL_VBITS == 512
SL_VEC SL_INLINE sl_vi sl_vbits(sl_vd v) { return _mm512_castpd_si512(v); }
SL_VEC SL_INLINE sl_vd sl_vfrom_bits(sl_vi v) { return _mm512_castsi512_pd(v); }
SL_VEC SL_INLINE sl_vi sl_vi_set(long long c) { return _mm512_set1_epi64(c); }
SL_VEC SL_INLINE sl_vi sl_vi_and(sl_vi a, sl_vi b) { return _mm512_and_si512(a, b); }
SL_VEC SL_INLINE sl_vi sl_vi_or(sl_vi a, sl_vi b) { return _mm512_or_si512(a, b); }
#else
SL_VEC SL_INLINE sl_vi sl_vbits(sl_vd v) { return _mm256_castpd_si256(v); }
SL_VEC SL_INLINE sl_vd sl_vfrom_bits(sl_vi v) { return _mm256_castsi256_pd(v); }
SL_VEC SL_INLINE sl_vi sl_vi_set(long long c) { return _mm256_set1_epi64x(c); }
SL_VEC SL_INLINE sl_vi sl_vi_and(sl_vi a, sl_vi b) { return _mm256_and_si256(a, b); }
SL_VEC SL_INLINE sl_vi sl_vi_or(sl_vi a, sl_vi b) { return _mm256_or_si256(a, b); }
#endif
SL_VEC SL_INLINE sl_vi sl_vi_add(sl_vi a, sl_vi b) { return SL_MM(add_epi64)(a, b); }
SL_VEC SL_INLINE sl_vi sl_vi_shl(sl_vi a, int bits) { return SL_MM(slli_epi64)(a, bits); }
SL_VEC SL_INLINE sl_vi sl_vi_shr(sl_vi a, int bits) { return SL_MM(srli_epi64)(a, bits); }

/* round-to-nearest-even of each lane (an integer value, as a double) */
SL_VEC SL_INLINE sl_vd sl_vround(sl_vd x)
{
#if SL_VBITS == 512
    return _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#endif
}

/* ------------------------------------------------------------------------------------------------
 * Floats: the 2 SL_L-lane vectors of the float32 fast paths, and conversions */

SL_VEC SL_INLINE sl_vf sl_vzerof(void) { return SL_MM(setzero_ps)(); }
SL_VEC SL_INLINE sl_vf sl_vaddf(sl_vf a, sl_vf b) { return SL_MM(add_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vsubf(sl_vf a, sl_vf b) { return SL_MM(sub_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vmulf(sl_vf a, sl_vf b) { return SL_MM(mul_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vdivf(sl_vf a, sl_vf b) { return SL_MM(div_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vfmaf(sl_vf a, sl_vf b, sl_vf c) { return SL_MM(fmadd_ps)(a, b, c); }
SL_VEC SL_INLINE sl_vf sl_vfnmaf(sl_vf a, sl_vf b, sl_vf c) { return SL_MM(fnmadd_ps)(a, b, c); }
SL_VEC SL_INLINE sl_vf sl_vmaxf(sl_vf a, sl_vf b) { return SL_MM(max_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vminf(sl_vf a, sl_vf b) { return SL_MM(min_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vorf(sl_vf a, sl_vf b) { return SL_MM(or_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vxorf(sl_vf a, sl_vf b) { return SL_MM(xor_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vandnotf(sl_vf a, sl_vf b) { return SL_MM(andnot_ps)(a, b); }
SL_VEC SL_INLINE sl_vf sl_vloaduf(const float *p) { return SL_MM(loadu_ps)(p); }
SL_VEC SL_INLINE void sl_vstoreuf(float *p, sl_vf v) { SL_MM(storeu_ps)(p, v); }

/* the integer lanes of a float vector as float bits: add to the exponent field */
SL_VEC SL_INLINE sl_vf sl_vf_add_exponent(sl_vf v, sl_vf t)
{
#if SL_VBITS == 512
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(v),
                                                _mm512_slli_epi32(_mm512_castps_si512(t), 23)));
#else
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(v),
                                                _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
#endif
}

#if SL_EVEX
SL_VEC SL_INLINE sl_vfm sl_vfm_and(sl_vfm a, sl_vfm b) { return a & b; }
SL_VEC SL_INLINE sl_vfm sl_vfm_or(sl_vfm a, sl_vfm b) { return a | b; }
SL_VEC SL_INLINE int sl_vfm_bits(sl_vfm m) { return m; }
SL_VEC SL_INLINE sl_vf sl_vselectf(sl_vfm m, sl_vf a, sl_vf b) { return SL_MM(mask_blend_ps)(m, b, a); }
SL_VEC SL_INLINE sl_vf sl_vkeepf(sl_vfm m, sl_vf v) { return SL_MM(maskz_mov_ps)(m, v); }
#define sl_vcmpf(a, b, predicate) SL_MM(cmp_ps_mask)(a, b, predicate)
#else
SL_VEC SL_INLINE sl_vfm sl_vfm_and(sl_vfm a, sl_vfm b) { return _mm256_and_ps(a, b); }
SL_VEC SL_INLINE sl_vfm sl_vfm_or(sl_vfm a, sl_vfm b) { return _mm256_or_ps(a, b); }
SL_VEC SL_INLINE int sl_vfm_bits(sl_vfm m) { return _mm256_movemask_ps(m); }
SL_VEC SL_INLINE sl_vf sl_vselectf(sl_vfm m, sl_vf a, sl_vf b) { return _mm256_blendv_ps(b, a, m); }
SL_VEC SL_INLINE sl_vf sl_vkeepf(sl_vfm m, sl_vf v) { return _mm256_and_ps(m, v); }
#define sl_vcmpf(a, b, predicate) _mm256_cmp_ps(a, b, predicate)
#endif
#define SL_LANES_ALL_F ((1 << (2 * SL_L)) - 1)

/* SL_L floats to doubles (exact) and back (rounded once) */
SL_VEC SL_INLINE sl_vd sl_vwiden_half(sl_vh v) { return SL_MM(cvtps_pd)(v); }
SL_VEC SL_INLINE sl_vh sl_vnarrow_half(sl_vd v) { return SL_MM(cvtpd_ps)(v); }

/* The 2 SL_L floats of v as two vectors of doubles (exact), and back (each rounded once). */
SL_VEC SL_INLINE void sl_widen_v(sl_vf v, sl_vd *lo, sl_vd *hi)
{
#if SL_VBITS == 512
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
#else
    *lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    *hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
#endif
}

SL_VEC SL_INLINE sl_vf sl_narrow_v(sl_vd lo, sl_vd hi)
{
#if SL_VBITS == 512
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
#else
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
#endif
}

/* ------------------------------------------------------------------------------------------------
 * Horizontal steps */

/* The lanes of v folded with op (add, max or min) in a fixed order, halves first: sl_vhadd, sl_vhmax and
 * sl_vhmin for doubles, sl_vhmaxf and sl_vhminf for floats (the range pass flags NaNs apart, so the
 * operand order of max and min does not matter there). */
#if SL_VBITS == 512
#define SL_FOLD_TO_256_PD(v, op) _mm256_##op##_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1))
#define SL_FOLD_TO_256_PS(v, op) _mm256_##op##_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))
#else
#define SL_FOLD_TO_256_PD(v, op) (v)
#define SL_FOLD_TO_256_PS(v, op) (v)
#endif

#define SL_FOLD_PD(op)                                                                               \
    SL_VEC SL_INLINE double sl_vh##op(sl_vd v)                                                       \
    {                                                                                                \
        __m256d h4 = SL_FOLD_TO_256_PD(v, op);                                                       \
        __m128d h = _mm_##op##_pd(_mm256_castpd256_pd128(h4), _mm256_extractf128_pd(h4, 1));         \
        return _mm_cvtsd_f64(_mm_##op##_sd(h, _mm_unpackhi_pd(h, h)));                               \
    }

#define SL_FOLD_PS(op)                                                                               \
    SL_VEC SL_INLINE float sl_vh##op##f(sl_vf v)                                                     \
    {                                                                                                \
        __m256 h8 = SL_FOLD_TO_256_PS(v, op);                                                        \
        __m128 h = _mm_##op##_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));          \
        h = _mm_##op##_ps(h, _mm_movehl_ps(h, h));                                                   \
        return _mm_cvtss_f32(_mm_##op##_ss(h, _mm_shuffle_ps(h, h, 1)));                             \
    }

SL_FOLD_PD(add)
SL_FOLD_PD(max)
SL_FOLD_PD(min)
SL_FOLD_PS(max)
SL_FOLD_PS(min)

#endif /* SL_VEC_H */
