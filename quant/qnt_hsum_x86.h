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

/* Lane i of the result is qnt_hsum16(v[i]), i < 16: the same tree for each
 * vector (the same pairs added, so the same bits), 16 vectors at once by
 * transposing as they are summed: 31 shuffles and 15 adds for 16 sums. */
static inline __attribute__((always_inline, target("avx512f,avx2"))) __m512
qnt_hsum16x16(const __m512 v[16])
{
    __m512 a[8], b[4], c[2];
    /* a[i]: lanes 0-7 v[i][l] + v[i][l+8], lanes 8-15 the same for v[i+8] */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44),
                             _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
    /* b[k]: 128-bit lane L holds output {k, k+8, k+4, k+12}[L]'s a[l] + a[l+4] */
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[k], a[k + 4], 0x88),
                             _mm512_shuffle_f32x4(a[k], a[k + 4], 0xDD));
    /* c[m]: per 128-bit lane (b0 + b2, b1 + b3) of b[2m], then of b[2m+1] */
#pragma GCC unroll 2
    for (int m = 0; m < 2; m++)
        c[m] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * m], b[2 * m + 1], 0x44),
                             _mm512_shuffle_ps(b[2 * m], b[2 * m + 1], 0xEE));
    /* per 128-bit lane L: (b0 + b2) + (b1 + b3) of b[0], b[1], b[2], b[3] */
    const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88),
                                   _mm512_shuffle_ps(c[0], c[1], 0xDD));
    /* lanes hold outputs 0-3, 8-11, 4-7, 12-15: swap the middle 128-bit lanes */
    return _mm512_shuffle_f32x4(s, s, 0xD8);
}

#endif
