/* qnt_ggml_types_x86.c: AVX2 integer unpackers for the k-quants (codes equal
 * to the scalar unpackers', the scales computed by the same scalar C) and the
 * AVX2 / AVX-512 dots of qnt_ggml_types.h. Both dots follow the summation
 * order of qnt_ggml_types_impl.h with FMA, 16 lanes (two 8-lane halves on
 * AVX2), so they give the same float for the same input. */
#include "qnt_ggml_types_impl.h"
#include "qnt_cast.h"

#include <string.h>

#ifdef QNT_GX_HAVE_X86
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma")))

/* ---- unpackers ------------------------------------------------------------ */

T_AVX2 static inline __m256i ld32(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

T_AVX2 static inline void st32(int8_t *p, __m256i v)
{
    _mm256_storeu_si256((__m256i *)(void *)p, v);
}

/* bytes >> s, per byte (the 16-bit shift's spill from the neighbour is masked off by m) */
T_AVX2 static inline __m256i shr_mask(__m256i v, int s, int m)
{
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8((char)m));
}

T_AVX2 void qnt_gx_unpack_q4_K_avx2(const void *restrict b, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q4_K *bl = b;
    for (int k = 0; k < 4; k++) {
        const __m256i v = ld32(bl->qs + 32 * k);
        st32(c->q + 64 * k, _mm256_and_si256(v, _mm256_set1_epi8(0x0F)));
        st32(c->q + 64 * k + 32, shr_mask(v, 4, 0x0F));
    }
    qnt_gx_scales_q4_K(b, c);
}

T_AVX2 void qnt_gx_unpack_q5_K_avx2(const void *restrict b, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q5_K *bl = b;
    const __m256i h = ld32(bl->qh);
    for (int k = 0; k < 4; k++) {
        const __m256i v = ld32(bl->qs + 32 * k);
        const __m256i h0 = _mm256_slli_epi16(shr_mask(h, 2 * k, 1), 4);
        const __m256i h1 = _mm256_slli_epi16(shr_mask(h, 2 * k + 1, 1), 4);
        st32(c->q + 64 * k, _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), h0));
        st32(c->q + 64 * k + 32, _mm256_or_si256(shr_mask(v, 4, 0x0F), h1));
    }
    qnt_gx_scales_q5_K(b, c);
}

T_AVX2 void qnt_gx_unpack_q6_K_avx2(const void *restrict b, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q6_K *bl = b;
    const __m256i lo4 = _mm256_set1_epi8(0x0F), bias = _mm256_set1_epi8(32);
    for (int hf = 0; hf < 2; hf++) {
        const __m256i l0 = ld32(bl->ql + 64 * hf), l1 = ld32(bl->ql + 64 * hf + 32);
        const __m256i h = ld32(bl->qh + 32 * hf);
        int8_t *q = c->q + 128 * hf;
        const __m256i a = _mm256_or_si256(_mm256_and_si256(l0, lo4),
                                          _mm256_slli_epi16(shr_mask(h, 0, 3), 4));
        const __m256i bb = _mm256_or_si256(_mm256_and_si256(l1, lo4),
                                           _mm256_slli_epi16(shr_mask(h, 2, 3), 4));
        const __m256i cc = _mm256_or_si256(shr_mask(l0, 4, 0x0F),
                                           _mm256_slli_epi16(shr_mask(h, 4, 3), 4));
        const __m256i dd = _mm256_or_si256(shr_mask(l1, 4, 0x0F),
                                           _mm256_slli_epi16(shr_mask(h, 6, 3), 4));
        st32(q, _mm256_sub_epi8(a, bias));
        st32(q + 32, _mm256_sub_epi8(bb, bias));
        st32(q + 64, _mm256_sub_epi8(cc, bias));
        st32(q + 96, _mm256_sub_epi8(dd, bias));
    }
    qnt_gx_scales_q6_K(b, c);
}

T_AVX2 void qnt_gx_unpack_q2_K_avx2(const void *restrict b, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q2_K *bl = b;
    for (int ch = 0; ch < 2; ch++) {
        const __m256i v = ld32(bl->qs + 32 * ch);
        for (int s = 0; s < 4; s++)
            st32(c->q + 128 * ch + 32 * s, shr_mask(v, 2 * s, 3));
    }
    qnt_gx_scales_q2_K(b, c);
}

T_AVX2 void qnt_gx_unpack_q3_K_avx2(const void *restrict b, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q3_K *bl = b;
    const __m256i hm = ld32(bl->hmask), four = _mm256_set1_epi8(4);
    for (int ch = 0; ch < 2; ch++) {
        const __m256i v = ld32(bl->qs + 32 * ch);
        for (int s = 0; s < 4; s++) {
            /* code = low 2 bits + 4 * (hmask bit 4ch+s) - 4 */
            const __m256i hb = _mm256_slli_epi16(shr_mask(hm, 4 * ch + s, 1), 2);
            const __m256i q = _mm256_or_si256(shr_mask(v, 2 * s, 3), hb);
            st32(c->q + 128 * ch + 32 * s, _mm256_sub_epi8(q, four));
        }
    }
    qnt_gx_scales_q3_K(b, c);
}

/* ---- blocks of 32 ---------------------------------------------------------- */

/* 16 bytes of nibbles -> 32 codes: byte j low nibble is element j, high is j + 16 */
T_AVX2 static inline __m256i nibbles32(const uint8_t *qs)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)qs), m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* the 32 bits of a q5 qh word -> 0x10 in byte j where bit j is set */
T_AVX2 static inline __m256i bit5_32(const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(0x10));
}

T_AVX2 void qnt_gx_unpack_q4_1_avx2(const void *restrict blocks, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q4_1 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        st32(c->q + 32 * b, nibbles32(bl[b].qs));
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
        c->off[2 * b] = c->off[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].m);
    }
}

T_AVX2 void qnt_gx_unpack_q5_0_avx2(const void *restrict blocks, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q5_0 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        const __m256i q = _mm256_or_si256(nibbles32(bl[b].qs), bit5_32(bl[b].qh));
        st32(c->q + 32 * b, _mm256_sub_epi8(q, _mm256_set1_epi8(16)));
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
    }
}

T_AVX2 void qnt_gx_unpack_q5_1_avx2(const void *restrict blocks, size_t len,
                                    struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q5_1 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        st32(c->q + 32 * b, _mm256_or_si256(nibbles32(bl[b].qs), bit5_32(bl[b].qh)));
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
        c->off[2 * b] = c->off[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].m);
    }
}

/* nibble indices -> the 16 iq4 levels by a byte shuffle */
T_AVX2 static inline __m256i iq4_levels(const uint8_t *qs)
{
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)qnt_iq4nl_values));
    return _mm256_shuffle_epi8(table, nibbles32(qs));
}

T_AVX2 void qnt_gx_unpack_iq4_nl_avx2(const void *restrict blocks, size_t len,
                                      struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_iq4_nl *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        st32(c->q + 32 * b, iq4_levels(bl[b].qs));
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
    }
}

T_AVX2 void qnt_gx_unpack_iq4_xs_avx2(const void *restrict blocks, size_t len,
                                      struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_iq4_xs *bl = blocks;
    for (int ib = 0; ib < 8; ib++)
        st32(c->q + 32 * ib, iq4_levels(bl->qs + 16 * ib));
    qnt_gx_scales_iq4_xs(bl, c);
}

/* ---- dots ------------------------------------------------------------------ */

static const void *chunk_at(const struct qnt_gx_layout *l, const void *w, size_t e0)
{
    return (const uint8_t *)w + e0 / l->blck * l->block_bytes;
}

T_AVX2 static inline __m256 cvt8(const int8_t *q)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)q)));
}

T_AVX2 float qnt_gx_dot_avx2(const struct qnt_gx_layout *l, const void *restrict w,
                             const float *restrict x, size_t n)
{
    struct qnt_gx_chunk c;
    __m256 run_lo = _mm256_setzero_ps(), run_hi = run_lo;
    for (size_t e0 = 0; e0 < n; e0 += QNT_GX_CHUNK) {
        const size_t len = n - e0 < QNT_GX_CHUNK ? n - e0 : QNT_GX_CHUNK;
        l->unpack_fast(chunk_at(l, w, e0), len, &c);
        __m256 a_lo[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
        __m256 a_hi[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
        const float *xc = x + e0;
        for (size_t g = 0; g < len / 16; g++) {
            const __m256 m = _mm256_set1_ps(c.mul[g]);
            __m256 v0 = _mm256_mul_ps(cvt8(c.q + 16 * g), m);
            __m256 v1 = _mm256_mul_ps(cvt8(c.q + 16 * g + 8), m);
            if (l->off_sign) {
                const __m256 o = _mm256_set1_ps(c.off[g]);
                v0 = l->off_sign > 0 ? _mm256_add_ps(v0, o) : _mm256_sub_ps(v0, o);
                v1 = l->off_sign > 0 ? _mm256_add_ps(v1, o) : _mm256_sub_ps(v1, o);
            }
            a_lo[g % 2] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(xc + 16 * g), a_lo[g % 2]);
            a_hi[g % 2] = _mm256_fmadd_ps(v1, _mm256_loadu_ps(xc + 16 * g + 8), a_hi[g % 2]);
        }
        run_lo = _mm256_add_ps(run_lo, _mm256_add_ps(a_lo[0], a_lo[1]));
        run_hi = _mm256_add_ps(run_hi, _mm256_add_ps(a_hi[0], a_hi[1]));
    }
    const __m256 s8 = _mm256_add_ps(run_lo, run_hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

T_AVX512 float qnt_gx_dot_avx512(const struct qnt_gx_layout *l, const void *restrict w,
                                 const float *restrict x, size_t n)
{
    struct qnt_gx_chunk c;
    __m512 run = _mm512_setzero_ps();
    for (size_t e0 = 0; e0 < n; e0 += QNT_GX_CHUNK) {
        const size_t len = n - e0 < QNT_GX_CHUNK ? n - e0 : QNT_GX_CHUNK;
        l->unpack_fast(chunk_at(l, w, e0), len, &c);
        __m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
        const float *xc = x + e0;
        for (size_t g = 0; g < len / 16; g++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(c.q + 16 * g));
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)),
                                     _mm512_set1_ps(c.mul[g]));
            if (l->off_sign > 0)
                v = _mm512_add_ps(v, _mm512_set1_ps(c.off[g]));
            else if (l->off_sign < 0)
                v = _mm512_sub_ps(v, _mm512_set1_ps(c.off[g]));
            acc[g % 2] = _mm512_fmadd_ps(v, _mm512_loadu_ps(xc + 16 * g), acc[g % 2]);
        }
        run = _mm512_add_ps(run, _mm512_add_ps(acc[0], acc[1]));
    }
    const __m256 lo = _mm512_castps512_ps256(run);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(run), 1));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

#else
typedef int qnt_ggml_types_x86_unused; /* ISO C forbids an empty translation unit */
#endif
