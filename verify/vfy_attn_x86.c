/* vfy_attn_x86.c: the attention tile kernel (vfy_attn_x86_impl.h) for
 * AVX2 + FMA (8 lanes) and AVX-512F/DQ (16 lanes), bit for bit the reference
 * of vfy_attn.c. Compiled without -march: each function carries its target
 * attribute and vfy_attn.c calls it only after the CPU probe says yes. */
#include "vfy_attn_impl.h"

#ifdef VFY_ATTN_X86
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

/* ---- AVX2 + FMA: 8 lanes ------------------------------------------------- */

#define TGT __attribute__((target("avx2,fma")))
#define NAME vfy_attn_tile_avx2
#define ATT_(x) x##_avx2
#define V __m256
#define VL 8

static const int32_t mask8[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

static inline __attribute__((always_inline)) TGT __m256i m8(size_t k)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)(mask8 + 8 - k));
}

static inline __attribute__((always_inline)) TGT float hsum8(__m256 s)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static inline __attribute__((always_inline)) TGT float hmax8(__m256 s)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(f) _mm256_set1_ps(f)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADN(p, k) _mm256_maskload_ps((p), m8(k))
#define V_STOREN(p, v, k) _mm256_maskstore_ps((p), m8(k), (v))
#define V_KEEPN(v, k) _mm256_and_ps((v), _mm256_castsi256_ps(m8(k)))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_HMAX(v) hmax8(v)
/* 2^n from t = 1.5 * 2^23 + n; zero where x < -87 */
#define V_POW2(t) \
    _mm256_castsi256_ps(_mm256_slli_epi32( \
        _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23))
#define V_ZERO_BELOW(x, v) \
    _mm256_andnot_ps(_mm256_cmp_ps((x), _mm256_set1_ps(-87.0f), _CMP_LT_OQ), (v))
#define V_FOLD(z) hsum8(_mm256_add_ps((z)[0], (z)[1]))   /* lanes 0-7 + lanes 8-15 */

#include "vfy_attn_x86_impl.h"

#undef TGT
#undef NAME
#undef ATT_
#undef V
#undef VL
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_LOADN
#undef V_STOREN
#undef V_KEEPN
#undef V_FMA
#undef V_MUL
#undef V_SUB
#undef V_ADD
#undef V_MAX
#undef V_HMAX
#undef V_POW2
#undef V_ZERO_BELOW
#undef V_FOLD

/* ---- AVX-512F/DQ: 16 lanes ------------------------------------------------ */

#define TGT __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl")))
#define NAME vfy_attn_tile_avx512
#define ATT_(x) x##_avx512
#define V __m512
#define VL 16

static inline __attribute__((always_inline)) TGT __mmask16 m16(size_t k)
{
    return (__mmask16)((1u << k) - 1u);
}

#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(f) _mm512_set1_ps(f)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADN(p, k) _mm512_maskz_loadu_ps(m16(k), (p))
#define V_STOREN(p, v, k) _mm512_mask_storeu_ps((p), m16(k), (v))
#define V_KEEPN(v, k) _mm512_maskz_mov_ps(m16(k), (v))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_HMAX(v) _mm512_reduce_max_ps(v)
#define V_POW2(t) \
    _mm512_castsi512_ps(_mm512_slli_epi32( \
        _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23))
#define V_ZERO_BELOW(x, v) \
    _mm512_maskz_mov_ps((__mmask16)~_mm512_cmp_ps_mask((x), _mm512_set1_ps(-87.0f), \
                                                       _CMP_LT_OQ), (v))
/* lanes 0-7 + lanes 8-15, then the 8-lane fold */
#define V_FOLD(z) hsum8(_mm256_add_ps(_mm512_castps512_ps256((z)[0]), \
                                      _mm512_extractf32x8_ps((z)[0], 1)))

#include "vfy_attn_x86_impl.h"

#endif
