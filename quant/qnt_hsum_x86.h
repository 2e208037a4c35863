/* qnt_hsum_x86.h: the fixed tree that sums the 16 lanes of an AVX-512
 * register, shared by the kernels whose sum of record names it (quant/
 * only; include after <immintrin.h>): a[i] = v[i] + v[i+8];
 * b[i] = a[i] + a[i+4]; (b[0] + b[2]) + (b[1] + b[3]). */
#ifndef QNT_HSUM_X86_H
#define QNT_HSUM_X86_H

static inline __attribute__((always_inline, target("avx512f,avx2"))) float
qnt_hsum16(__m512 v)
{
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s = _mm256_add_ps(lo, hi);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

#endif
