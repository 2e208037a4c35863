/* qnt_ggml_kq.c: the k-quants q2_K, q3_K, q4_K, q5_K, q6_K (super-blocks of
 * 256 with 6- or 8-bit sub-block scales) and q8_K - reference quantizers
 * that write ggml's quantize_row_*_ref bytes (llama-quantize's path without
 * an importance matrix), and the unpackers behind their dequantizers and dots.
 *
 * The scale searches below are ggml's (src/ggml-quants.c make_qkx2_quants,
 * make_q3_quants, make_qx_quants with rmse_type 1), reimplemented: every sum
 * is a serial float sum in ascending element order, each product and sum
 * rounds once, in ggml's order of operations, because the chosen scale and
 * hence the bytes depend on it. Knows block layouts, not tensors or files. */
#include "qnt_ggml_types.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_cast.h"

#include <math.h>
#include <string.h>

#define EPS_GROUP 1e-15f      /* ggml's GROUP_MAX_EPS: a group below it is all zero */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Asymmetric codes 0..nmax for x[n] with weights w: x ~= scale*L + min
 * (min <= 0). A first guess from the range, then nstep+1 trial scales
 * (rmin + rdelta*is + nmax)/(max - min), each refit by weighted least squares
 * for scale and min; the trial with the least weighted error (|e| when mad,
 * else e^2) wins. Returns scale; *neg_min = -min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                           int mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(qnt_gx_nearest_int(iscale * (x[i] - min)), 0, nmax);
        float e = scale * L[i] + min - x[i];
        e = mad ? fabsf(e) : e * e;
        best += w[i] * e;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(qnt_gx_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        const float D = sum_w * sl2 - sl * sl;
        if (D > 0) {
            float s = (sum_w * sxl - sum_x * sl) / D;
            float m = (sl2 * sum_x - sl * sxl) / D;
            if (m > 0) {
                m = 0;
                s = sxl / sl2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float e = s * Laux[i] + m - x[i];
                e = mad ? fabsf(e) : e * e;
                err += w[i] * e;
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = s;
                min = m;
            }
        }
    }
    *neg_min = -min;
    return scale;
}

/* The element of largest magnitude (first on a tie, sign kept) and that magnitude. */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    *amax_out = amax;
    return max;
}

/* Symmetric codes for q3_K: L in 0..2*nmax-1 (offset nmax), scale from
 * -nmax/max, then up to 5 passes moving single codes while the weighted
 * (w = x^2) fit sumlx^2/suml2 improves. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < EPS_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(qnt_gx_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int nl = clampi(qnt_gx_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * (float)nl;
                    sl2 += w * (float)nl * (float)nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Symmetric codes (ggml's make_qx_quants, rmse_type 1): L offset nmax; of
 * the 19 scales -(nmax + 0.1*is)/max, is in -9..9, the one maximising
 * sumlx^2/suml2 wins (weights qw, or x^2 without an importance matrix);
 * ties keep the earlier. q6_K's groups without imatrix; q4_0's blocks with
 * one (quantize_row_q4_0_impl), which GPTQ uses with diag(H). */
float qnt_gx_make_qx(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < EPS_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(qnt_gx_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(qnt_gx_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(qnt_gx_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static float fit_q6(int n, int nmax, const float *x, int8_t *L)
{
    return qnt_gx_make_qx(n, nmax, x, L, NULL);
}

/* Two bits per code, 256 codes: element 128c+32s+l in qs[32c+l] bits 2s. */
static void pack2(const uint8_t *L, uint8_t *qs)
{
    for (int c = 0; c < 2; c++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *s = L + 128 * c + l;
            qs[32 * c + l] = (uint8_t)(s[0] | (s[32] << 2) | (s[64] << 4) | (s[96] << 6));
        }
}

/* The 2-bit code of element e, packed as pack2 does. */
static int low2(const uint8_t *qs, int e)
{
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/* ---- q2_K ---- */

/* The 16 group fits of a q2_K super-block: weights |x|, codes 0..3, least
 * absolute error. */
void qnt_gx_q2_K_fit_ref(const float *x, float *scales, float *mins, uint8_t *L)
{
    uint8_t Laux[16];
    float w[16];
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++)
            w[l] = fabsf(x[16 * j + l]);
        scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
    }
}

void qnt_q2_K_quantize_ref(const float *restrict x, struct qnt_block_q2_K *restrict y, size_t n)
{
    qnt_gx_q2_K_quantize_fit(x, y, n, qnt_gx_q2_K_fit_ref);
}

void qnt_gx_q2_K_quantize_fit(const float *restrict x, struct qnt_block_q2_K *restrict y, size_t n,
                              qnt_gx_fit_min_fn fit)
{
    uint8_t L[QNT_QK_K];
    float mins[16], scales[16];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        fit(x, scales, mins, L);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)qnt_gx_nearest_int(iscale * scales[j]);
            y[b].d = qnt_f32_to_f16_ref(max_scale / 15.0f);
        } else {
            memset(y[b].scales, 0, 16);
            y[b].d = qnt_f32_to_f16_ref(0.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)((unsigned)qnt_gx_nearest_int(iscale * mins[j]) << 4);
            y[b].dmin = qnt_f32_to_f16_ref(max_min / 15.0f);
        } else {
            y[b].dmin = qnt_f32_to_f16_ref(0.0f);
        }
        /* final codes from the stored scales; a group whose scale is 0 keeps its fit's codes */
        for (int j = 0; j < 16; j++) {
            const float d = qnt_f16_to_f32_ref(y[b].d) * (float)(y[b].scales[j] & 0xF);
            if (d == 0.0f)
                continue;
            const float dm = qnt_f16_to_f32_ref(y[b].dmin) * (float)(y[b].scales[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)clampi(qnt_gx_nearest_int((x[16 * j + i] + dm) / d), 0, 3);
        }
        pack2(L, y[b].qs);
    }
}

void qnt_gx_unpack_q2_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q2_K *bl = blocks;
    for (int e = 0; e < QNT_QK_K; e++)
        c->q[e] = (int8_t)low2(bl->qs, e);
    qnt_gx_scales_q2_K(bl, c);
}

void qnt_gx_scales_q2_K(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q2_K *bl = block;
    const float d = qnt_f16_to_f32_ref(bl->d), dmin = qnt_f16_to_f32_ref(bl->dmin);
    for (int g = 0; g < 16; g++) {
        c->mul[g] = d * (float)(bl->scales[g] & 0xF);
        c->off[g] = dmin * (float)(bl->scales[g] >> 4);
    }
}

/* ---- q3_K ---- */

/* 6-bit scale j (biased by 32) of a q3_K block: low 4 bits in scales[j % 8]
 * (low nibble for j < 8), high 2 bits in scales[8 + j % 4] bits 2*(j/4). */
static int q3_scale(const uint8_t *sc, int j)
{
    const int lo = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
    return (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

void qnt_q3_K_quantize_ref(const float *restrict x, struct qnt_block_q3_K *restrict y, size_t n)
{
    int8_t L[QNT_QK_K];
    float scales[16];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        float amax;
        for (int j = 0; j < 16; j++)
            scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
        const float max_scale = signed_absmax(scales, 16, &amax);
        memset(y[b].scales, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)qnt_gx_nearest_int(iscale * scales[j]);
                l = (int8_t)(clampi(l, -32, 31) + 32);
                if (j < 8)
                    y[b].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[b].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[b].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[b].d = qnt_f32_to_f16_ref(1 / iscale);
        } else {
            y[b].d = qnt_f32_to_f16_ref(0.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = qnt_f16_to_f32_ref(y[b].d) * (float)q3_scale(y[b].scales, j);
            if (d == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(qnt_gx_nearest_int(x[16 * j + i] / d), -4, 3) + 4);
        }
        /* bit 2 of code e goes to hmask[e % 32] bit e / 32; the low 2 bits as q2_K */
        memset(y[b].hmask, 0, 32);
        uint8_t low[QNT_QK_K];
        for (int e = 0; e < QNT_QK_K; e++) {
            int v = L[e];
            if (v > 3) {
                y[b].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                v -= 4;
            }
            low[e] = (uint8_t)v;
        }
        pack2(low, y[b].qs);
    }
}

void qnt_gx_unpack_q3_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q3_K *bl = blocks;
    for (int e = 0; e < QNT_QK_K; e++) {
        const int hi = (bl->hmask[e % 32] >> (e / 32)) & 1;
        c->q[e] = (int8_t)(low2(bl->qs, e) - (hi ? 0 : 4));
    }
    qnt_gx_scales_q3_K(bl, c);
}

void qnt_gx_scales_q3_K(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q3_K *bl = block;
    const float d = qnt_f16_to_f32_ref(bl->d);
    for (int g = 0; g < 16; g++)
        c->mul[g] = d * (float)q3_scale(bl->scales, g);
}

/* ---- q4_K and q5_K: 8 groups of 32, 6-bit scale and min each ---- */

/* 6-bit scale and min of group j (0..7) from the 12 packed bytes. */
static void k4_scale_min(const uint8_t *q, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* The 8 group fits of a q4_K (nmax 15) / q5_K (31) super-block: weights
 * rms(group) + |x|, least squares. */
void qnt_gx_k45_fit_ref(const float *x, int nmax, float *scales, float *mins, uint8_t *L)
{
    uint8_t Laux[32];
    float w[32];
    const float rmin = nmax == 15 ? -1.0f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    for (int j = 0; j < 8; j++) {
        const float *xg = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xg[l] * xg[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xg[l]);
        scales[j] = fit_scale_min(32, nmax, xg, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
    }
}

/* The shared part of q4_K/q5_K: fit 8 groups, store d, dmin and the packed
 * 6-bit scales/mins, then the final codes L[256] in 0..nmax. */
static void k45_quantize_block(const float *x, int nmax, qnt_gx_fit_k45_fn fit, uint16_t *d16,
                               uint16_t *dmin16, uint8_t *packed, uint8_t *L)
{
    float mins[8], scales[8];
    fit(x, nmax, scales, mins, L);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)qnt_gx_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)qnt_gx_nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
            packed[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d16 = qnt_f32_to_f16_ref(max_scale / 63.0f);
    *dmin16 = qnt_f32_to_f16_ref(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_scale_min(packed, j, &sc, &m);
        const float d = qnt_f16_to_f32_ref(*d16) * (float)sc;
        if (d == 0.0f)
            continue;
        const float dm = qnt_f16_to_f32_ref(*dmin16) * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clampi(qnt_gx_nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

void qnt_q4_K_quantize_ref(const float *restrict x, struct qnt_block_q4_K *restrict y, size_t n)
{
    qnt_gx_q4_K_quantize_fit(x, y, n, qnt_gx_k45_fit_ref);
}

void qnt_gx_q4_K_quantize_fit(const float *restrict x, struct qnt_block_q4_K *restrict y, size_t n,
                              qnt_gx_fit_k45_fn fit)
{
    uint8_t L[QNT_QK_K];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        k45_quantize_block(x, 15, fit, &y[b].d, &y[b].dmin, y[b].scales, L);
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * k + l] = (uint8_t)(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
    }
}

void qnt_q5_K_quantize_ref(const float *restrict x, struct qnt_block_q5_K *restrict y, size_t n)
{
    qnt_gx_q5_K_quantize_fit(x, y, n, qnt_gx_k45_fit_ref);
}

void qnt_gx_q5_K_quantize_fit(const float *restrict x, struct qnt_block_q5_K *restrict y, size_t n,
                              qnt_gx_fit_k45_fn fit)
{
    uint8_t L[QNT_QK_K];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        k45_quantize_block(x, 31, fit, &y[b].d, &y[b].dmin, y[b].scales, L);
        memset(y[b].qh, 0, 32);
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * k + l], c = L[64 * k + 32 + l];
                if (a > 15) {
                    a -= 16;
                    y[b].qh[l] |= (uint8_t)(1u << (2 * k));
                }
                if (c > 15) {
                    c -= 16;
                    y[b].qh[l] |= (uint8_t)(2u << (2 * k));
                }
                y[b].qs[32 * k + l] = (uint8_t)(a | (c << 4));
            }
    }
}

static void k45_scales(const uint8_t *packed, uint16_t d16, uint16_t dmin16,
                       struct qnt_gx_chunk *c)
{
    const float d = qnt_f16_to_f32_ref(d16), dmin = qnt_f16_to_f32_ref(dmin16);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_scale_min(packed, j, &sc, &m);
        c->mul[2 * j] = c->mul[2 * j + 1] = d * (float)sc;
        c->off[2 * j] = c->off[2 * j + 1] = dmin * (float)m;
    }
}

void qnt_gx_unpack_q4_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q4_K *bl = blocks;
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            c->q[64 * k + l] = (int8_t)(bl->qs[32 * k + l] & 0xF);
            c->q[64 * k + 32 + l] = (int8_t)(bl->qs[32 * k + l] >> 4);
        }
    qnt_gx_scales_q4_K(bl, c);
}

void qnt_gx_scales_q4_K(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q4_K *bl = block;
    k45_scales(bl->scales, bl->d, bl->dmin, c);
}

void qnt_gx_unpack_q5_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q5_K *bl = blocks;
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            const int h = bl->qh[l] >> (2 * k);
            c->q[64 * k + l] = (int8_t)((bl->qs[32 * k + l] & 0xF) | ((h & 1) << 4));
            c->q[64 * k + 32 + l] = (int8_t)((bl->qs[32 * k + l] >> 4) | ((h & 2) << 3));
        }
    qnt_gx_scales_q5_K(bl, c);
}

void qnt_gx_scales_q5_K(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q5_K *bl = block;
    k45_scales(bl->scales, bl->d, bl->dmin, c);
}

/* ---- q6_K: 16 groups of 16, int8 scales, codes -32..31 ---- */

/* The 16 group fits of a q6_K super-block. */
void qnt_gx_q6_K_fit_ref(const float *x, float *scales, int8_t *L)
{
    for (int j = 0; j < 16; j++)
        scales[j] = fit_q6(16, 32, x + 16 * j, L + 16 * j);
}

void qnt_q6_K_quantize_ref(const float *restrict x, struct qnt_block_q6_K *restrict y, size_t n)
{
    qnt_gx_q6_K_quantize_fit(x, y, n, qnt_gx_q6_K_fit_ref);
}

void qnt_gx_q6_K_quantize_fit(const float *restrict x, struct qnt_block_q6_K *restrict y, size_t n,
                              qnt_gx_fit_q6_fn fit)
{
    int8_t L[QNT_QK_K];
    float scales[16];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        float max_abs;
        fit(x, scales, L);
        const float max_scale = signed_absmax(scales, 16, &max_abs);
        if (max_abs < EPS_GROUP) {
            memset(&y[b], 0, sizeof y[b]);
            y[b].d = qnt_f32_to_f16_ref(0.0f);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[b].d = qnt_f32_to_f16_ref(1 / iscale);
        for (int j = 0; j < 16; j++) {
            const int s = qnt_gx_nearest_int(iscale * scales[j]);
            y[b].scales[j] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < 16; j++) {
            const float d = qnt_f16_to_f32_ref(y[b].d) * (float)y[b].scales[j];
            if (d == 0.0f)
                continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(qnt_gx_nearest_int(x[16 * j + i] / d), -32, 31) + 32);
        }
        /* per half (128): ql[l] = code l | code l+64 << 4, ql[l+32] = l+32 | l+96 << 4,
         * qh[l] = the high 2 bits of l, l+32, l+64, l+96 */
        for (int h = 0; h < 2; h++) {
            const int8_t *s = L + 128 * h;
            uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((s[l] & 0xF) | ((s[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((s[l + 32] & 0xF) | ((s[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((s[l] >> 4) | ((s[l + 32] >> 4) << 2) | ((s[l + 64] >> 4) << 4) |
                                  ((s[l + 96] >> 4) << 6));
            }
        }
    }
}

void qnt_gx_unpack_q6_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q6_K *bl = blocks;
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = bl->ql + 64 * h, *qh = bl->qh + 32 * h;
        int8_t *q = c->q + 128 * h;
        for (int l = 0; l < 32; l++) {
            q[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
    qnt_gx_scales_q6_K(bl, c);
}

void qnt_gx_scales_q6_K(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q6_K *bl = block;
    const float d = qnt_f16_to_f32_ref(bl->d);
    for (int g = 0; g < 16; g++)
        c->mul[g] = d * (float)bl->scales[g];
}

/* ---- q8_K: f32 scale max/-127, codes nearest_int(x * -127/max) capped at 127 ---- */

void qnt_q8_K_quantize_ref(const float *restrict x, struct qnt_block_q8_K *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        float amax;
        const float max = signed_absmax(x, QNT_QK_K, &amax);
        if (amax == 0.0f) {
            y[b].d = 0;
            memset(y[b].qs, 0, QNT_QK_K);
            /* ggml leaves bsums as they were here; we zero them (a sum of zero codes) */
            memset(y[b].bsums, 0, sizeof y[b].bsums);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QNT_QK_K; j++) {
            const int v = qnt_gx_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = 1 / iscale;
    }
}

void qnt_gx_unpack_q8_K(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_q8_K *bl = blocks;
    memcpy(c->q, bl->qs, QNT_QK_K);
    for (int g = 0; g < 16; g++)
        c->mul[g] = bl->d;
}
