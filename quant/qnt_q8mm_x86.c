/* qnt_q8mm_x86.c: the x86 kernels of qnt_q8mm_impl.h, each reproducing the
 * scalar reference's sum of record bit for bit: AVX-512 (BW, VL, DQ; 4 rows
 * x up to 4 tokens, one q8_0 token a row at a time; two blocks a register, vpdpbusd where AVX512-VNNI is
 * there, else vpmaddubsw + vpmaddwd) and AVX2 (2 rows x 2 tokens, a block a
 * register). Compiled without -march: each function carries its target
 * attribute and qnt_q8mm.c calls it only after the CPU probe says yes. */
#include "qnt_q8mm_impl.h"

#ifdef QNT_Q8MM_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

/* Prefetch distance, in rows: the weights stream from memory when one token
 * meets them, and the hardware prefetcher alone left the loads stalled (perf
 * of 'run'); 8 rows on (two groups of 4) measured best (q4_0, 57M llama).
 * Since then one token goes a row at a time for q8_0 (W in address order,
 * no software prefetch: run -n 128 of the 57M llama 0.86-0.92 -> 0.42-0.49 s
 * CPU). q4_0 keeps 4 rows and the prefetch: one row measured 0.40-0.44 s
 * against 0.37-0.40 (its -8 sum x is then made once a row, not once per 4),
 * two rows no better than four within the noise. */
#define Q8_PF_ROWS 8

static inline uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* ---- AVX2: a block a register, 2 rows x 2 tokens --------------------------- */

#define T_AVX2 __attribute__((target("avx2,fma,f16c")))

/* The 32 signed codes of block b of a row. */
static inline __attribute__((always_inline)) T_AVX2 __m256i w256(const uint8_t *row, size_t b,
                                                                   int q4)
{
    if (!q4)
        return _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 2));
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 2));
    const __m128i f = _mm_set1_epi8(15);
    const __m256i n = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), f), _mm_and_si128(v, f));
    return _mm256_sub_epi8(n, _mm256_set1_epi8(8));
}

static inline __attribute__((always_inline)) T_AVX2 float hsum8(__m256 s)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

T_AVX2 static void micro_avx2(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],
                              const int8_t *const xq[4], const float *const xd[4], int nr,
                              int nt, float out[4][4])
{
    (void)nr;
    (void)nt;
    __m256 acc[2][2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < a->nb; b++) {
        const int par = (int)(b & 1);
        __m256i xv[2];
        __m256 dx[2];
        for (int j = 0; j < 2; j++) {
            xv[j] = _mm256_loadu_si256((const __m256i *)(const void *)(xq[j] + 32 * b));
            dx[j] = _mm256_loadu_ps(xd[j] + 8 * b);
        }
        for (int i = 0; i < 2; i++) {
            const __m256i w = w256(wr[i], b, a->q4);
            const __m256 dw = _mm256_set1_ps(_cvtsh_ss(rd16(wr[i] + (a->q4 ? 18 : 34) * b)));
            _mm_prefetch((const char *)(wr[i] + (a->q4 ? 18 : 34) * b + Q8_PF_ROWS * a->row_bytes),
                         _MM_HINT_T0);
            const __m256i u = _mm256_abs_epi8(w);
            for (int j = 0; j < 2; j++) {
                const __m256i p =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(xv[j], w)), ones);
                acc[i][j][par] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[j]), _mm256_cvtepi32_ps(p),
                                                 acc[i][j][par]);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            out[i][j] = hsum8(_mm256_add_ps(acc[i][j][0], acc[i][j][1]));
}

/* ---- AVX-512: two blocks a register, 4 rows x TB tokens -------------------- */

#define T_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define T_VNNI \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

/* q4_0 blocks b and b+1 of a row as unsigned nibbles (the codes + 8): even
 * block in bytes 0-31, odd in 32-63. */
static inline __attribute__((always_inline)) T_512 __m512i nib512(const uint8_t *row, size_t b)
{
    const __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 2))),
        _mm_loadu_si128((const __m128i *)(const void *)(row + 18 * b + 20)), 1);
    const __m256i f = _mm256_set1_epi8(15);
    /* [lo_b | lo_b1 | hi_b | hi_b1] -> [lo_b | hi_b | lo_b1 | hi_b1] */
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(v, f)),
                                   _mm256_and_si256(_mm256_srli_epi16(v, 4), f), 1);
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

/* The signed codes of blocks b and b+1 of a q8_0 row. */
static inline __attribute__((always_inline)) T_512 __m512i w512(const uint8_t *row, size_t b)
{
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(
            _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 2))),
        _mm256_loadu_si256((const __m256i *)(const void *)(row + 34 * b + 36)), 1);
}

static inline __attribute__((always_inline)) T_512 __m512 dw512(const uint8_t *row, size_t b,
                                                                 int q4)
{
    const size_t bb = q4 ? 18 : 34;
    const __m256i h = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_set1_epi16((short)rd16(row + bb * b))),
        _mm_set1_epi16((short)rd16(row + bb * (b + 1))), 1);
    return _mm512_cvtph_ps(h);
}

/* q4_0 (Q4) meets x as unsigned nibbles n = code + 8: sum n x - 8 sum x, the
 * same integer as sum code x, with -8 sum x made once per token (the
 * accumulator the row's dot starts from); q8_0 moves the codes' signs onto x. */
#define Q8_MICRO(NAME, TGT, DP512, DP256)                                                      \
    static inline __attribute__((always_inline)) TGT void NAME##_t(                             \
        const struct qnt_q8mm_args *a, const uint8_t *const wr[4], const int8_t *const xq[4],  \
        const float *const xd[4], const int NR, const int TB, const int Q4,                    \
        float out[4][4])                                                                       \
    {                                                                                          \
        __m512 acc[4][4];                                                                      \
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < TB; j++) acc[i][j] =                   \
                _mm512_setzero_ps();                                                           \
        const size_t nb2 = a->nb - a->nb % 2;                                                  \
        for (size_t b = 0; b < nb2; b += 2) {                                                  \
            __m512i xv[4], c0[4];                                                              \
            __m512 dx[4];                                                                      \
            _Pragma("GCC unroll 4") for (int j = 0; j < TB; j++)                               \
            {                                                                                  \
                xv[j] = _mm512_loadu_si512((const void *)(xq[j] + 32 * b));                    \
                dx[j] = _mm512_loadu_ps(xd[j] + 8 * b);                                        \
                c0[j] = Q4 ? _mm512_sub_epi32(_mm512_setzero_si512(),                          \
                                              DP512(_mm512_setzero_si512(),                    \
                                                    _mm512_set1_epi8(8), xv[j]))               \
                           : _mm512_setzero_si512();                                           \
            }                                                                                  \
            _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)                                \
            {                                                                                  \
                const __m512i w = Q4 ? nib512(wr[i], b) : w512(wr[i], b);                      \
                const __m512 dw = dw512(wr[i], b, Q4);                                         \
                if (NR > 1)                                                                    \
                    _mm_prefetch((const char *)(wr[i] + (Q4 ? 18 : 34) * b +                   \
                                                Q8_PF_ROWS * a->row_bytes),                    \
                                 _MM_HINT_T0);                                                 \
                const __m512i u = Q4 ? w : _mm512_abs_epi8(w);                                 \
                const __mmask64 m = Q4 ? 0 : _mm512_movepi8_mask(w);                           \
                _Pragma("GCC unroll 4") for (int j = 0; j < TB; j++)                           \
                {                                                                              \
                    const __m512i s =                                                          \
                        Q4 ? xv[j]                                                             \
                           : _mm512_mask_sub_epi8(xv[j], m, _mm512_setzero_si512(), xv[j]);    \
                    acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[j]),                      \
                                                _mm512_cvtepi32_ps(DP512(c0[j], u, s)),        \
                                                acc[i][j]);                                    \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < TB; j++)                               \
        {                                                                                      \
            __m256 lo = _mm512_castps512_ps256(acc[i][j]);                                     \
            const __m256 hi = _mm512_extractf32x8_ps(acc[i][j], 1);                            \
            if (nb2 < a->nb) { /* the odd last block: the even lanes */                        \
                const size_t b = nb2, bb = a->q4 ? 18 : 34;                                    \
                const __m256i w = w256(wr[i], b, a->q4);                                       \
                const __m256i x =                                                              \
                    _mm256_loadu_si256((const __m256i *)(const void *)(xq[j] + 32 * b));       \
                const __m256 dd = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(wr[i] + bb * b))), \
                                                _mm256_loadu_ps(xd[j] + 8 * b));               \
                const __m256i p = DP256(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));           \
                lo = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), lo);                           \
            }                                                                                  \
            out[i][j] = hsum8(_mm256_add_ps(lo, hi));                                          \
        }                                                                                      \
    }                                                                                          \
    TGT static void NAME(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],            \
                         const int8_t *const xq[4], const float *const xd[4], int nr, int nt,  \
                         float out[4][4])                                                      \
    {                                                                                          \
        if (nr == 1 && nt == 1) {                                                              \
            NAME##_t(a, wr, xq, xd, 1, 1, a->q4, out);                                         \
            return;                                                                            \
        }                                                                                      \
        if (nr == 2 && nt == 1) {                                                              \
            NAME##_t(a, wr, xq, xd, 2, 1, a->q4, out);                                         \
            return;                                                                            \
        }                                                                                      \
        switch (nt + 4 * a->q4) {                                                              \
        case 1: NAME##_t(a, wr, xq, xd, 4, 1, 0, out); break;                                 \
        case 2: NAME##_t(a, wr, xq, xd, 4, 2, 0, out); break;                                 \
        case 3: NAME##_t(a, wr, xq, xd, 4, 3, 0, out); break;                                 \
        case 4: NAME##_t(a, wr, xq, xd, 4, 4, 0, out); break;                                 \
        case 5: NAME##_t(a, wr, xq, xd, 4, 1, 1, out); break;                                 \
        case 6: NAME##_t(a, wr, xq, xd, 4, 2, 1, out); break;                                 \
        case 7: NAME##_t(a, wr, xq, xd, 4, 3, 1, out); break;                                 \
        default: NAME##_t(a, wr, xq, xd, 4, 4, 1, out); break;                                \
        }                                                                                      \
    }

/* c + the sums of 4 products of unsigned u and signed s bytes, exact */
#define DP512_BW(c, u, s)                                                                      \
    _mm512_add_epi32((c), _mm512_madd_epi16(_mm512_maddubs_epi16((u), (s)), _mm512_set1_epi16(1)))
#define DP256_BW(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define DP512_VNNI(c, u, s) _mm512_dpbusd_epi32((c), (u), (s))
#define DP256_VNNI(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))

Q8_MICRO(micro_avx512, T_512, DP512_BW, DP256_BW)
Q8_MICRO(micro_vnni, T_VNNI, DP512_VNNI, DP256_VNNI)

/* qnt_q8x_quantize_ref, a block of 32 at a time: the max of |x| is exact in
 * any order, d and 1 / d are the same scalar operations, and vcvtps2dq
 * rounds to nearest even as lrintf does in the default rounding mode. */
T_512 void qnt_q8x_quantize_avx512(const float *restrict x, size_t cols, int8_t *restrict q,
                                   float *restrict d8)
{
    const __m512 big = _mm512_set1_ps(3.4028235e38f);
    for (size_t b = 0; b < cols / QNT_Q8MM_QK; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
        /* false for NaN and infinities */
        const __mmask16 f0 = _mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ);
        const __mmask16 f1 = _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ);
        float d;
        if ((f0 & f1) == 0xffff) {
            const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
            d = amax / 127.0f;
            const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
            _mm_storeu_si128((__m128i *)(void *)(q + 32 * b),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id))));
            _mm_storeu_si128((__m128i *)(void *)(q + 32 * b + 16),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id))));
        } else {
            d = NAN;
            _mm256_storeu_si256((__m256i *)(void *)(q + 32 * b), _mm256_setzero_si256());
        }
        _mm256_storeu_ps(d8 + 8 * b, _mm256_set1_ps(d));
    }
}

void qnt_q8mm_avx2(const struct qnt_q8mm_args *a)
{
    qnt_q8mm_drive(a, 2, 2, 2, micro_avx2);
}

void qnt_q8mm_avx512(const struct qnt_q8mm_args *a)
{
    qnt_q8mm_drive(a, 4, a->q4 ? 4 : 1, 4, micro_avx512);
}

void qnt_q8mm_vnni(const struct qnt_q8mm_args *a)
{
    qnt_q8mm_drive(a, 4, a->q4 ? 4 : 1, 4, micro_vnni);
}

#endif
