/* qnt_matvec_x86.c: the x86 fast paths of qnt_matvec.h: the blocked dense
 * kernel (qnt_matvec_tile_impl.h) for AVX2+FMA+F16C (8 lanes) and AVX-512F
 * (16 lanes), and the AVX2 dot used by the variable-length encodings.
 * Compiled without -march: each function carries its own target attribute
 * and qnt_matvec.c calls it only after the CPU probe (sb_cpu.h) says yes. */
#include "qnt_matvec_impl.h"

#ifdef QNT_MATVEC_HAVE_X86
#include <immintrin.h>
#include <string.h>

#include "qnt_hsum_x86.h"
#include "sb_alloc.h"

static inline uint16_t mv_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* ---- AVX2 + FMA + F16C: 8 lanes ----------------------------------------- */

#define MV_TARGET __attribute__((target("avx2,fma,f16c")))
#define MV_NAME(x) x##_avx2
/* 16 ymm registers: a 4 x 4 tile's 16 chains and 16 running sums spill;
 * 4 x 3 (12 chains; the same operations per output) measured fastest of
 * 4 x 2, 3, 4: ppl --ctx 512, 57 M llama, f32 306 / 416-426 / 466-503 for
 * 4 / 2 / 3 tokens */
#define MV_TILE_TB 3
/* f16 rows read in place by the tiles (half the bytes through L1 of rows
 * decoded to f32; the same products): a 768 x 2048 matmul of 512 tokens
 * 71-72 -> 79-81 GFLOP/s, 2048 x 768 unchanged. bf16 in place (a widening
 * and a shift a load) measured 7-13 % slower, so it stays decoded. */
#define MV_F16_TILE 1
/* One token of bf16 / f16 weights, 2 KiB ahead: run -n 128 of the 57 M llama
 * on the AVX2 machine (2026-12-05) f16 123-128 -> 140-149 tokens/s, bf16
 * 120-128 -> 152-163 (1 KiB and 4 KiB: about the same; f32 lost 5-10 %
 * with it, so it has none) */
#define MV_ROW1_PF 2048
#define V __m256
#define VL 8
#define V_ZERO() _mm256_setzero_ps()
#define V_LOADF(p) _mm256_loadu_ps((const float *)(const void *)(p))
#define V_STOREF(p, v) _mm256_storeu_ps((p), (v))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_SET1(f) _mm256_set1_ps(f)
#define V_BF16(p)                                                                            \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                   \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define V_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define V_I8(p)                                                                              \
    _mm256_cvtepi32_ps(                                                                      \
        _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#define MV_F16S(p) _cvtsh_ss(mv_rd16(p))

MV_TARGET static inline float mv_hsum8(__m256 s)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
#define V_HSUM(v) mv_hsum8(v)

/* Lane i of the result is mv_hsum8(v[i]), i < 8: the same pairs added in
 * the same order for each vector (so the same bits), 8 vectors at once by
 * transposing as they are summed: 16 shuffles and 7 adds for 8 sums, and
 * one store for 8 outputs instead of 8 */
MV_TARGET static inline __m256 mv_hsum8x8(const __m256 v[8])
{
    __m256 a[4], b[2];
    /* a[i]: lanes 0-3 v[i][l] + v[i][l+4], lanes 4-7 the same for v[i+4] */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        a[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[i], v[i + 4], 0x20),
                             _mm256_permute2f128_ps(v[i], v[i + 4], 0x31));
    /* b[m]: per 128-bit lane (a0 + a2, a1 + a3) of a[2m], then of a[2m+1] */
#pragma GCC unroll 2
    for (int m = 0; m < 2; m++)
        b[m] = _mm256_add_ps(_mm256_shuffle_ps(a[2 * m], a[2 * m + 1], 0x44),
                             _mm256_shuffle_ps(a[2 * m], a[2 * m + 1], 0xEE));
    /* per 128-bit lane: (a0 + a2) + (a1 + a3) of a[0], a[1], a[2], a[3] */
    return _mm256_add_ps(_mm256_shuffle_ps(b[0], b[1], 0x88), _mm256_shuffle_ps(b[0], b[1], 0xDD));
}
#define V_HSUM_VEC(v) mv_hsum8x8(v)
#define MV_STORE_QUADS 1   /* tiles sum and store their outputs (V_HSUM_VEC) */

#include "qnt_matvec_tile_impl.h"

#undef MV_TARGET
#undef MV_NAME
#undef MV_TILE_TB
#undef MV_ROW1_PF
#undef V
#undef VL
#undef V_ZERO
#undef V_LOADF
#undef V_STOREF
#undef V_FMA
#undef V_ADD
#undef V_MUL
#undef V_SET1
#undef V_BF16
#undef V_F16
#undef V_I8
#undef V_HSUM
#undef V_HSUM_VEC
#undef MV_STORE_QUADS

/* ---- AVX-512F: 16 lanes ------------------------------------------------- */

#define MV_TARGET __attribute__((target("avx512f,avx2,fma,f16c")))
#define MV_NAME(x) x##_avx512
#define V __m512
#define VL 16
#define V_ZERO() _mm512_setzero_ps()
#define V_LOADF(p) _mm512_loadu_ps((const void *)(p))
#define V_STOREF(p, v) _mm512_storeu_ps((void *)(p), (v))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_SET1(f) _mm512_set1_ps(f)
#define V_BF16(p)                                                                            \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                   \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define V_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define V_I8(p)                                                                              \
    _mm512_cvtepi32_ps(                                                                      \
        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))

#define V_HSUM(v) qnt_hsum16(v)
#define V_HSUM_VEC(v) qnt_hsum16x16(v)
#define MV_STORE_QUADS 1   /* tiles sum and store their outputs (V_HSUM_VEC) */

#include "qnt_matvec_tile_impl.h"

#endif
