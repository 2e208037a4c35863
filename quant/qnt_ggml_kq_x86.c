/* qnt_ggml_kq_x86.c: the k-quant group fits (qnt_ggml_kq.c's fit_scale_min
 * and fit_q6) for 8 groups at once, one group per AVX2 lane. Each lane runs
 * exactly the scalar operation sequence - the same serial sums in the same
 * element order, each multiply, add and divide rounded once (no FMA),
 * branches turned into masks - so every lane ends with the floats and codes
 * the scalar fit gives, and the quantizers write the `_ref` bytes. (Vectorising
 * along the elements instead would reorder the sums and change the bytes.)
 * min/max use x < m ? x : m (the scalar comparisons), which is what
 * _mm256_min_ps / _mm256_max_ps compute. */
#include "qnt_ggml_types_impl.h"

#ifdef QNT_GX_HAVE_X86
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2")))

T_AVX2 static inline __m256i nearest8(__m256 v)
{
    const __m256i t = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
    return _mm256_sub_epi32(_mm256_and_si256(t, _mm256_set1_epi32(0x007FFFFF)),
                            _mm256_set1_epi32(0x00400000));
}

T_AVX2 static inline __m256i clamp8(__m256i v, int lo, int hi)
{
    return _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(hi)), _mm256_set1_epi32(lo));
}

T_AVX2 static inline __m256 abs8(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

T_AVX2 static inline __m256 sel(__m256 a, __m256 b, __m256 mask)   /* mask ? b : a */
{
    return _mm256_blendv_ps(a, b, mask);
}

/* Lane j of xt[i] = x[stride*j + i], i < n. */
T_AVX2 static void transpose_in(const float *x, int stride, int n, __m256 *xt)
{
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(stride));
    for (int i = 0; i < n; i++)
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
}

/* Codes lane j of Lt[i] -> L[stride*j + i] (values fit a byte). */
T_AVX2 static void transpose_out(const __m256i *Lt, int stride, int n, uint8_t *L)
{
    int32_t v[8];
    for (int i = 0; i < n; i++) {
        _mm256_storeu_si256((__m256i *)(void *)v, Lt[i]);
        for (int j = 0; j < 8; j++)
            L[stride * j + i] = (uint8_t)v[j];
    }
}

/* fit_scale_min (qnt_ggml_kq.c) on 8 lanes; n <= 32. */
T_AVX2 static void fit_scale_min8(int n, int nmax, const __m256 *x, const __m256 *w, __m256i *L,
                                  __m256 *scale_out, __m256 *neg_min_out, float rmin, float rdelta,
                                  int nstep, int mad)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 min = x[0], max = x[0];
    __m256 sum_w = w[0], sum_x = _mm256_mul_ps(sum_w, x[0]);
    for (int i = 1; i < n; i++) {
        min = _mm256_min_ps(x[i], min);
        max = _mm256_max_ps(x[i], max);
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], x[i]));
    }
    min = sel(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);   /* these lanes: L 0, scale 0 */
    const __m256 min0 = min;
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < n; i++) {
        L[i] = clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))), 0, nmax);
        __m256 e = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(L[i])), min),
                                 x[i]);
        e = mad ? abs8(e) : _mm256_mul_ps(e, e);
        best = _mm256_add_ps(best, _mm256_mul_ps(w[i], e));
    }
    __m256i Laux[32];
    for (int is = 0; is <= nstep; is++) {
        /* min moves when a trial wins, and the next trials start from it (as in the scalar fit) */
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * (float)is + (float)nmax),
                               _mm256_sub_ps(max, min));
        __m256 sl = zero, sl2 = zero, sxl = zero;
        for (int i = 0; i < n; i++) {
            Laux[i] = clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min))), 0, nmax);
            const __m256 l = _mm256_cvtepi32_ps(Laux[i]), wl = _mm256_mul_ps(w[i], l);
            sl = _mm256_add_ps(sl, wl);
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(wl, l));
            sxl = _mm256_add_ps(sxl, _mm256_mul_ps(wl, x[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sl2), _mm256_mul_ps(sl, sl));
        __m256 s = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sxl), _mm256_mul_ps(sum_x, sl)), D);
        __m256 m = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sl2, sum_x), _mm256_mul_ps(sl, sxl)), D);
        const __m256 mpos = _mm256_cmp_ps(m, zero, _CMP_GT_OQ);
        m = sel(m, zero, mpos);
        s = sel(s, _mm256_div_ps(sxl, sl2), mpos);
        __m256 err = zero;
        for (int i = 0; i < n; i++) {
            __m256 e = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(s, _mm256_cvtepi32_ps(Laux[i])), m), x[i]);
            e = mad ? abs8(e) : _mm256_mul_ps(e, e);
            err = _mm256_add_ps(err, _mm256_mul_ps(w[i], e));
        }
        const __m256 upd = _mm256_and_ps(_mm256_cmp_ps(D, zero, _CMP_GT_OQ),
                                         _mm256_cmp_ps(err, best, _CMP_LT_OQ));
        const __m256i updi = _mm256_castps_si256(upd);
        for (int i = 0; i < n; i++)
            L[i] = _mm256_blendv_epi8(L[i], Laux[i], updi);
        best = sel(best, err, upd);
        scale = sel(scale, s, upd);
        min = sel(min, m, upd);
    }
    const __m256i flati = _mm256_castps_si256(flat);
    for (int i = 0; i < n; i++)
        L[i] = _mm256_andnot_si256(flati, L[i]);
    *scale_out = sel(scale, zero, flat);
    *neg_min_out = _mm256_xor_ps(sel(min, min0, flat), _mm256_set1_ps(-0.0f));
}

T_AVX2 void qnt_gx_k45_fit_avx2(const float *x, int nmax, float *scales, float *mins, uint8_t *L)
{
    __m256 xt[32], wt[32];
    __m256i Lt[32];
    transpose_in(x, 32, 32, xt);
    __m256 sum_x2 = _mm256_setzero_ps();
    for (int i = 0; i < 32; i++)
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[i], xt[i]));
    const __m256 av = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
    for (int i = 0; i < 32; i++)
        wt[i] = _mm256_add_ps(av, abs8(xt[i]));
    __m256 sc, mn;
    if (nmax == 15)
        fit_scale_min8(32, 15, xt, wt, Lt, &sc, &mn, -1.0f, 0.1f, 20, 0);
    else
        fit_scale_min8(32, 31, xt, wt, Lt, &sc, &mn, -0.5f, 0.1f, 15, 0);
    _mm256_storeu_ps(scales, sc);
    _mm256_storeu_ps(mins, mn);
    transpose_out(Lt, 32, 32, L);
}

T_AVX2 void qnt_gx_q2_K_fit_avx2(const float *x, float *scales, float *mins, uint8_t *L)
{
    for (int half = 0; half < 2; half++) {
        __m256 xt[16], wt[16];
        __m256i Lt[16];
        const float *xh = x + 128 * half;
        transpose_in(xh, 16, 16, xt);
        for (int i = 0; i < 16; i++)
            wt[i] = abs8(xt[i]);
        __m256 sc, mn;
        fit_scale_min8(16, 3, xt, wt, Lt, &sc, &mn, -0.5f, 0.1f, 15, 1);
        _mm256_storeu_ps(scales + 8 * half, sc);
        _mm256_storeu_ps(mins + 8 * half, mn);
        transpose_out(Lt, 16, 16, L + 128 * half);
    }
}

/* fit_q6 (qnt_ggml_kq.c) on 8 lanes of 16 elements, nmax 32. */
T_AVX2 void qnt_gx_q6_K_fit_avx2(const float *x, float *scales, int8_t *L)
{
    const int nmax = 32;
    const __m256 zero = _mm256_setzero_ps();
    for (int half = 0; half < 2; half++) {
        __m256 xt[16];
        __m256i Lt[16], Lc[16];
        transpose_in(x + 128 * half, 16, 16, xt);
        __m256 amax = zero, max = zero;
        for (int i = 0; i < 16; i++) {
            const __m256 ax = abs8(xt[i]), gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
            amax = sel(amax, ax, gt);
            max = sel(max, xt[i], gt);
        }
        const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
        __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
        __m256 sumlx = zero, suml2 = zero;
        for (int i = 0; i < 16; i++) {
            const __m256i l = clamp8(nearest8(_mm256_mul_ps(iscale, xt[i])), -nmax, nmax - 1);
            Lt[i] = _mm256_add_epi32(l, _mm256_set1_epi32(nmax));
            const __m256 lf = _mm256_cvtepi32_ps(l), w = _mm256_mul_ps(xt[i], xt[i]);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, xt[i]), lf));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, lf), lf));
        }
        __m256 scale = sel(zero, _mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ));
        __m256 best = _mm256_mul_ps(scale, sumlx);
        for (int is = -9; is <= 9; is++) {
            if (is == 0)
                continue;
            iscale = _mm256_div_ps(_mm256_set1_ps(-((float)nmax + 0.1f * (float)is)), max);
            sumlx = suml2 = zero;
            for (int i = 0; i < 16; i++) {
                const __m256i l = clamp8(nearest8(_mm256_mul_ps(iscale, xt[i])), -nmax, nmax - 1);
                Lc[i] = l;
                const __m256 lf = _mm256_cvtepi32_ps(l), w = _mm256_mul_ps(xt[i], xt[i]);
                sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, xt[i]), lf));
                suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, lf), lf));
            }
            const __m256 upd = _mm256_and_ps(
                _mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
            const __m256i updi = _mm256_castps_si256(upd);
            for (int i = 0; i < 16; i++)
                Lt[i] = _mm256_blendv_epi8(Lt[i], _mm256_add_epi32(Lc[i], _mm256_set1_epi32(nmax)), updi);
            const __m256 ns = _mm256_div_ps(sumlx, suml2);
            scale = sel(scale, ns, upd);
            best = sel(best, _mm256_mul_ps(ns, sumlx), upd);
        }
        const __m256i tinyi = _mm256_castps_si256(tiny);
        for (int i = 0; i < 16; i++)
            Lt[i] = _mm256_andnot_si256(tinyi, Lt[i]);
        _mm256_storeu_ps(scales + 8 * half, sel(scale, zero, tiny));
        transpose_out(Lt, 16, 16, (uint8_t *)(void *)(L + 128 * half));
    }
}

#else
typedef int qnt_ggml_kq_x86_unused; /* ISO C forbids an empty translation unit */
#endif
