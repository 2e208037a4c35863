/* qnt_ggml_iq_x86.c: the iq4 block fit (qnt_ggml_iq.c's fit_block) for 8
 * blocks of 32 at once, one block per AVX2 lane, each lane repeating the
 * scalar operations in order (serial sums, one rounding each, no FMA,
 * branches as masks), so the scales - and the bytes - equal `_ref`'s. The
 * nearest level is found without bisection: with ml the number of levels
 * t[1..14] not above v, the answer is t[ml] or t[ml+1] by the scalar's own
 * comparison (v - t[ml] < t[ml+1] - v), which also gives the bisection's
 * early answers below t[0] and above t[15]. */
#include "qnt_ggml_types_impl.h"

#ifdef QNT_GX_HAVE_X86
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2")))

struct levels8 {
    __m256 lo, hi;     /* t[0..7], t[8..15] as floats */
    __m256 t[16];      /* each level broadcast */
};

T_AVX2 static void levels8_init(struct levels8 *L)
{
    float f[16];
    for (int k = 0; k < 16; k++) {
        f[k] = (float)qnt_iq4nl_values[k];
        L->t[k] = _mm256_set1_ps(f[k]);
    }
    L->lo = _mm256_loadu_ps(f);
    L->hi = _mm256_loadu_ps(f + 8);
}

/* t[i] for i in 0..15 per lane */
T_AVX2 static inline __m256 lookup16(const struct levels8 *L, __m256i i)
{
    const __m256 high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(7)));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(L->lo, i), _mm256_permutevar8x32_ps(L->hi, i), high);
}

/* the level nearest to v, as its value */
T_AVX2 static inline __m256 level8(const struct levels8 *L, __m256 v)
{
    __m256i ml = _mm256_setzero_si256();
    for (int k = 1; k < 15; k++)
        ml = _mm256_sub_epi32(ml, _mm256_castps_si256(_mm256_cmp_ps(L->t[k], v, _CMP_LE_OQ)));
    const __m256 a = lookup16(L, ml), b = lookup16(L, _mm256_add_epi32(ml, _mm256_set1_epi32(1)));
    const __m256 lower = _mm256_cmp_ps(_mm256_sub_ps(v, a), _mm256_sub_ps(b, v), _CMP_LT_OQ);
    return _mm256_blendv_ps(b, a, lower);
}

/* sum (x^2 q x) and sum (x^2 q q) over a block, q the level nearest id * x */
T_AVX2 static inline void sums8(const struct levels8 *L, const __m256 *x, __m256 id, __m256 *sqx,
                                __m256 *sq2)
{
    __m256 a = _mm256_setzero_ps(), b = a;
    for (int j = 0; j < 32; j++) {
        const __m256 q = level8(L, _mm256_mul_ps(id, x[j]));
        const __m256 wq = _mm256_mul_ps(_mm256_mul_ps(x[j], x[j]), q);
        a = _mm256_add_ps(a, _mm256_mul_ps(wq, x[j]));
        b = _mm256_add_ps(b, _mm256_mul_ps(wq, q));
    }
    *sqx = a;
    *sq2 = b;
}

/* scales of the 8 blocks of 32 at x[0..255] */
T_AVX2 void qnt_gx_iq4_fit8_avx2(const float *x, float *scales)
{
    struct levels8 L;
    levels8_init(&L);
    const __m256 zero = _mm256_setzero_ps();
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    __m256 xt[32];
    for (int j = 0; j < 32; j++)
        xt[j] = _mm256_i32gather_ps(x + j, idx, 4);
    __m256 amax = zero, max = zero;
    for (int j = 0; j < 32; j++) {
        const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), xt[j]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[j], gt);
    }
    const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    const float t0 = (float)qnt_iq4nl_values[0];
    __m256 d = _mm256_div_ps(_mm256_xor_ps(max, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(t0));
    __m256 sqx, sq2;
    sums8(&L, xt, _mm256_div_ps(_mm256_set1_ps(1.0f), d), &sqx, &sq2);
    d = _mm256_blendv_ps(zero, _mm256_div_ps(sqx, sq2), _mm256_cmp_ps(sq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sqx);
    for (int itry = -7; itry <= 7; itry++) {
        const __m256 id = _mm256_div_ps(_mm256_set1_ps((float)(itry + qnt_iq4nl_values[0])), max);
        sums8(&L, xt, id, &sqx, &sq2);
        const __m256 upd = _mm256_and_ps(
            _mm256_cmp_ps(sq2, zero, _CMP_GT_OQ),
            _mm256_cmp_ps(_mm256_mul_ps(sqx, sqx), _mm256_mul_ps(best, sq2), _CMP_GT_OQ));
        const __m256 nd = _mm256_div_ps(sqx, sq2);
        d = _mm256_blendv_ps(d, nd, upd);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(nd, sqx), upd);
    }
    _mm256_storeu_ps(scales, _mm256_blendv_ps(d, zero, tiny));
}

#else
typedef int qnt_ggml_iq_x86_unused; /* ISO C forbids an empty translation unit */
#endif
