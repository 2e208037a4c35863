/* qnt_ggml_x86.c: AVX2 ggml quantizers, byte-identical to the `_ref` ones in
 * qnt_ggml.c for every finite input. The scale arithmetic (amax, d, 1/d, the
 * fp16 rounding of d) is the same scalar C as `_ref`; the vector part does
 * only the per-element multiply and rounding, with roundf's rule (halves away
 * from zero) rebuilt exactly: r = trunc(v) + (|v - trunc(v)| >= 0.5 ? ±1 : 0),
 * where v - trunc(v) is exact in binary floating point. No FMA: `_ref`
 * multiplies then adds, with two roundings. */
#include "qnt_ggml_impl.h"
#include "qnt_cast.h"

#include <math.h>

#ifdef QNT_GGML_HAVE_AVX2
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2")))

/* roundf() on 8 lanes */
T_AVX2 static inline __m256 round_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(ge, one));
}

T_AVX2 static inline float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* max |x[j]| over 32k elements (max is exact, so the order does not matter) */
T_AVX2 static inline float amax_n(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8)
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    return hmax8(m);
}

/* 32 int32 lanes (4 vectors, element order) -> 32 int8 in order */
T_AVX2 static inline __m256i pack32_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

T_AVX2 void qnt_q8_0_quantize_avx2(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK8_0; b++, x += QNT_QK8_0) {
        const float amax = amax_n(x, QNT_QK8_0);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = qnt_f32_to_f16_ref(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid)));
        _mm256_storeu_si256((__m256i *)(void *)y[b].qs, pack32_i8(q[0], q[1], q[2], q[3]));
    }
}

T_AVX2 void qnt_q4_0_quantize_avx2(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK4_0; b++, x += QNT_QK4_0) {
        const float amax = amax_n(x, QNT_QK4_0);
        float max = 0.0f;
        if (amax > 0.0f)                        /* the first element reaching amax, sign kept */
            for (int j = 0; j < QNT_QK4_0; j++)
                if (fabsf(x[j]) == amax) {
                    max = x[j];
                    break;
                }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = qnt_f32_to_f16_ref(d);
        const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(8.5f);
        const __m256i fifteen = _mm256_set1_epi32(15);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid), half);
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(v), fifteen);
        }
        /* byte j = q[j] | q[j + 16] << 4: lanes 0..7 from q0|q2, 8..15 from q1|q3 */
        const __m256i lo = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
        const __m256i hi = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128((__m128i *)(void *)y[b].qs, bytes);
    }
}

/* 256 trits t = roundf(x * id) + 1 of one block, in element order */
T_AVX2 static void tq_codes(const float *x, float id, uint8_t *t)
{
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i one = _mm256_set1_epi32(1);
    for (int j = 0; j < QNT_QK_K; j += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = round_away(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vid));
            q[k] = _mm256_add_epi32(_mm256_cvttps_epi32(v), one);
        }
        _mm256_storeu_si256((__m256i *)(void *)(t + j), pack32_i8(q[0], q[1], q[2], q[3]));
    }
}

T_AVX2 void qnt_tq1_0_quantize_avx2(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n)
{
    uint8_t t[QNT_QK_K];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        const float amax = amax_n(x, QNT_QK_K);
        y[b].d = qnt_f32_to_f16_ref(amax);
        tq_codes(x, amax != 0.0f ? 1.0f / amax : 0.0f, t);
        qnt_tq1_0_pack(t, &y[b]);
    }
}

T_AVX2 void qnt_tq2_0_quantize_avx2(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n)
{
    uint8_t t[QNT_QK_K];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        const float amax = amax_n(x, QNT_QK_K);
        y[b].d = qnt_f32_to_f16_ref(amax);
        tq_codes(x, amax != 0.0f ? 1.0f / amax : 0.0f, t);
        qnt_tq2_0_pack(t, &y[b]);
    }
}

#else
typedef int qnt_ggml_x86_unused; /* ISO C forbids an empty translation unit */
#endif
