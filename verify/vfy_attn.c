/* vfy_attn.c: the attention of record (vfy_attn_impl.h): its scalar
 * reference, the exp both it and the vector kernels compute, and the driver
 * that spreads (tile, head) pairs over threads. */
#include "vfy_attn_impl.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sb_cpu.h"

#ifdef _OPENMP
#include <omp.h>
#endif

float vfy_attn_exp(float x)
{
    if (x < -87.0f)
        return 0.0f;
    /* t = 1.5 * 2^23 + round(x / ln 2): its low bits hold the integer n */
    const float t = fmaf(x, 1.44269504088896341f, 12582912.0f);
    const float n = t - 12582912.0f;
    float r = fmaf(n, -0.693359375f, x);   /* ln 2 = 0.693359375 - 2.12194440e-4 */
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    const float r2 = r * r;
    p = fmaf(p, r2, r);
    p = p + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb + 127u) << 23;   /* 2^n: (n + 127) in the exponent field */
    float s;
    memcpy(&s, &sb, sizeof s);
    return p * s;
}

void vfy_attn_tile_ref(const struct vfy_attn_args *a, size_t i0, size_t nr, size_t h, float *S)
{
    const size_t hd = a->hd, qd = a->nh * hd, g = h / (a->nh / a->nkv);
    const float *kt = a->kt + g * hd * vfy_attn_kpad(a->n_ctx);
    for (size_t j = 0; j < nr; j++) {
        const size_t i = i0 + j, p = a->pos0 + i;
        const float *q = a->q + i * qd + h * hd;
        float *s = S + j * a->n_ctx, *o = a->o + i * qd + h * hd;
        float m = -INFINITY;
        for (size_t t = 0; t <= p; t++) {
            float acc = 0.0f;
            for (size_t d = 0; d < hd; d++)
                acc = fmaf(q[d], kt[vfy_attn_kidx(hd, t, d)], acc);
            s[t] = acc * a->scale;
            m = s[t] > m ? s[t] : m;
        }
        float lane[16] = { 0 };
        for (size_t t = 0; t <= p; t++) {
            s[t] = vfy_attn_exp(s[t] - m);
            lane[t % 16] += s[t];
        }
        for (size_t w = 8; w >= 1; w /= 2)
            for (size_t l = 0; l < w; l++)
                lane[l] += lane[l + w];
        const float inv = 1.0f / lane[0];
        for (size_t d = 0; d < hd; d++) {
            float acc = 0.0f;
            for (size_t t = 0; t <= p; t++)
                acc = fmaf(s[t], a->v[(g * a->n_ctx + t) * hd + d], acc);
            o[d] = acc * inv;
        }
    }
}

static vfy_attn_tile_fn *pick(int kernel)
{
#ifdef VFY_ATTN_X86
    const unsigned f512 = SB_CPU_AVX512F | SB_CPU_AVX512DQ | SB_CPU_AVX512VL | SB_CPU_AVX2 |
                          SB_CPU_FMA;
    const unsigned f2 = SB_CPU_AVX2 | SB_CPU_FMA;
    if (kernel == VFY_ATTN_BEST)
        return sb_cpu_has(f512) ? vfy_attn_tile_avx512
               : sb_cpu_has(f2) ? vfy_attn_tile_avx2 : vfy_attn_tile_ref;
    if (kernel == VFY_ATTN_AVX512)
        return (sb_cpu_features() & f512) == f512 ? vfy_attn_tile_avx512 : NULL;
    if (kernel == VFY_ATTN_AVX2)
        return (sb_cpu_features() & f2) == f2 ? vfy_attn_tile_avx2 : NULL;
#else
    if (kernel == VFY_ATTN_BEST)
        return vfy_attn_tile_ref;
#endif
    return kernel == VFY_ATTN_REF ? vfy_attn_tile_ref : NULL;
}

int vfy_attn_run(const struct vfy_attn_args *a, int nthreads, int kernel)
{
    vfy_attn_tile_fn *tile = pick(kernel);
    if (!tile)
        return -1;
    const size_t ntiles = (a->n + VFY_ATTN_ROWS - 1) / VFY_ATTN_ROWS;
    const long work = (long)(ntiles * a->nh);
    (void)nthreads;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (long w = 0; w < work; w++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const size_t it = (size_t)w / a->nh, h = (size_t)w % a->nh, i0 = it * VFY_ATTN_ROWS;
        const size_t nr = a->n - i0 < VFY_ATTN_ROWS ? a->n - i0 : VFY_ATTN_ROWS;
        tile(a, i0, nr, h, a->scratch + (size_t)tid * VFY_ATTN_ROWS * a->n_ctx);
    }
    return 0;
}
