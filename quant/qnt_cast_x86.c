/* qnt_cast_x86.c: F16C/AVX2 and AVX-512 cast kernels, bit-identical to the
 * `_ref` casts of qnt_cast.c for every input (test_cast.c runs all 2^32).
 * Compiled without -march: each function carries its own target attribute and
 * qnt_cast.c calls it only after the CPU probe (sb_cpu.h) says yes.
 * vcvtps2ph with an explicit round-to-nearest-even immediate does exactly our
 * f16 rule, NaNs included (sign, quiet bit, top payload bits); bf16 uses the
 * integer bias trick with a NaN blend. Tails go through the `_ref` loops. */
#include "qnt_cast.h"
#include "qnt_cast_impl.h"

#ifdef QNT_HAVE_X86
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

T_AVX2 static void f32_to_f16_f16c(const float *restrict x, uint16_t *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(y + i), h);
    }
    qnt_f32_to_f16_array_ref(x + i, y + i, n - i);
}

T_AVX2 static void f16_to_f32_f16c(const uint16_t *restrict x, float *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(x + i));
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
    }
    qnt_f16_to_f32_array_ref(x + i, y + i, n - i);
}

/* 8 lanes of f32 bits -> 8 lanes (low 16 bits of each 32) of bf16 bits */
T_AVX2 static __m256i bf16_rne_avx2(__m256i u)
{
    const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
    const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, q, nan);
}

T_AVX2 static void f32_to_bf16_avx2(const float *restrict x, uint16_t *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = bf16_rne_avx2(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        __m256i b = bf16_rne_avx2(_mm256_loadu_si256((const __m256i *)(const void *)(x + i + 8)));
        /* packus works per 128-bit lane: a0 b0 a1 b1 -> reorder to a0 a1 b0 b1 */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256((__m256i *)(void *)(y + i), p);
    }
    qnt_f32_to_bf16_array_ref(x + i, y + i, n - i);
}

T_AVX2 static void bf16_to_f32_avx2(const uint16_t *restrict x, float *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(x + i)));
        _mm256_storeu_si256((__m256i *)(void *)(y + i), _mm256_slli_epi32(h, 16));
    }
    qnt_bf16_to_f32_array_ref(x + i, y + i, n - i);
}

T_AVX512 static void f32_to_f16_avx512(const float *restrict x, uint16_t *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(void *)(y + i), h);
    }
    f32_to_f16_f16c(x + i, y + i, n - i);
}

T_AVX512 static void f16_to_f32_avx512(const uint16_t *restrict x, float *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(h));
    }
    f16_to_f32_f16c(x + i, y + i, n - i);
}

T_AVX512 static void f32_to_bf16_avx512(const float *restrict x, uint16_t *restrict y, size_t n)
{
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512((const void *)(x + i));
        const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absmask), inf);
        const __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(hi, one)), 16);
        r = _mm512_mask_or_epi32(r, nan, hi, quiet);
        _mm256_storeu_si256((__m256i *)(void *)(y + i), _mm512_cvtepi32_epi16(r));
    }
    f32_to_bf16_avx2(x + i, y + i, n - i);
}

T_AVX512 static void bf16_to_f32_avx512(const uint16_t *restrict x, float *restrict y, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        _mm512_storeu_si512((void *)(y + i), _mm512_slli_epi32(h, 16));
    }
    bf16_to_f32_avx2(x + i, y + i, n - i);
}

const struct qnt_cast_kernels qnt_cast_kernels_f16c = {
    "f16c", f32_to_f16_f16c, f16_to_f32_f16c, f32_to_bf16_avx2, bf16_to_f32_avx2,
};

const struct qnt_cast_kernels qnt_cast_kernels_avx512 = {
    "avx512", f32_to_f16_avx512, f16_to_f32_avx512, f32_to_bf16_avx512, bf16_to_f32_avx512,
};

#else
typedef int qnt_cast_x86_unused; /* ISO C forbids an empty translation unit */
#endif
