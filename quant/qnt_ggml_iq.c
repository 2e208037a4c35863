/* qnt_ggml_iq.c: the non-linear 4-bit types iq4_nl (blocks of 32, one fp16
 * scale) and iq4_xs (super-blocks of 256, eight 6-bit sub-scales): codes
 * index a fixed table of 16 levels. Reference quantizers writing the bytes
 * of ggml's quantize_iq4_nl / quantize_iq4_xs with no importance matrix
 * (what llama-quantize runs; ntry = 7 - NOT ggml's quantize_row_iq4_nl_ref,
 * which skips the scale search), and the unpackers behind the dequantizers
 * and dots. Knows block layouts, not tensors or files. */
#include "qnt_ggml_types.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_cast.h"

#include <math.h>
#include <string.h>

#define EPS_GROUP 1e-15f
#define NTRY 7

const int8_t qnt_iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113 };

/* Index of the level nearest to v (the lower one on an exact tie), by
 * bisection as ggml's best_index_int8 does. */
static int nearest_level(float v)
{
    const int8_t *t = qnt_iq4nl_values;
    if (v <= t[0])
        return 0;
    if (v >= t[15])
        return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < t[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - t[hi - 1] < t[hi] - v ? hi - 1 : hi;
}

/* Weighted (w = x^2) least-squares fit of one block of 32: starting from
 * d = max/127 (max the signed largest-magnitude element), then for the 15
 * trial inverse scales (t - 127)/max, t in -7..7, the one maximising
 * sumqx^2/sumq2 wins. Returns the scale (0 for an all-zero block). */
static float fit_block(const float *x)
{
    const int8_t *t = qnt_iq4nl_values;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax < EPS_GROUP)
        return 0.0f;
    float d = -max / (float)t[0];
    float id = 1 / d;
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < 32; j++) {
        const float q = (float)t[nearest_level(id * x[j])];
        const float w = x[j] * x[j];
        sqx += w * q * x[j];
        sq2 += w * q * q;
    }
    d = sq2 > 0 ? sqx / sq2 : 0.0f;
    float best = d * sqx;
    for (int itry = -NTRY; itry <= NTRY; itry++) {
        id = (float)(itry + t[0]) / max;
        sqx = sq2 = 0;
        for (int j = 0; j < 32; j++) {
            const float q = (float)t[nearest_level(id * x[j])];
            const float w = x[j] * x[j];
            sqx += w * q * x[j];
            sq2 += w * q * q;
        }
        if (sq2 > 0 && sqx * sqx > best * sq2) {
            d = sqx / sq2;
            best = d * sqx;
        }
    }
    return d;
}

/* Nibbles of 32 level indices: byte j = L[j] | L[j+16] << 4. */
static void pack_nibbles(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

/* The scales of 8 consecutive blocks of 32. */
void qnt_gx_iq4_fit8_ref(const float *x, float *scales)
{
    for (int ib = 0; ib < 8; ib++)
        scales[ib] = fit_block(x + 32 * ib);
}

/* One iq4_nl block from its scale: codes re-picked from the f32 scale (not
 * the fp16 one), as ggml does. */
static void iq4_nl_finish(const float *x, float d, struct qnt_block_iq4_nl *y)
{
    uint8_t L[32];
    y->d = qnt_f32_to_f16_ref(d);
    const float id = d != 0.0f ? 1 / d : 0.0f;
    for (int j = 0; j < 32; j++)
        L[j] = (uint8_t)nearest_level(id * x[j]);
    pack_nibbles(L, y->qs);
}

void qnt_iq4_nl_quantize_ref(const float *restrict x, struct qnt_block_iq4_nl *restrict y, size_t n)
{
    qnt_gx_iq4_nl_quantize_fit(x, y, n, qnt_gx_iq4_fit8_ref);
}

void qnt_gx_iq4_nl_quantize_fit(const float *restrict x, struct qnt_block_iq4_nl *restrict y,
                                size_t n, qnt_gx_fit_iq4_fn fit8)
{
    const size_t nb = n / QNT_QK4_NL;
    float d[8];
    size_t b = 0;
    for (; b + 8 <= nb; b += 8) {              /* 8 blocks a fit call; the last few alone */
        fit8(x + 32 * b, d);
        for (size_t k = 0; k < 8; k++)
            iq4_nl_finish(x + 32 * (b + k), d[k], &y[b + k]);
    }
    for (; b < nb; b++)
        iq4_nl_finish(x + 32 * b, fit_block(x + 32 * b), &y[b]);
}

void qnt_iq4_xs_quantize_ref(const float *restrict x, struct qnt_block_iq4_xs *restrict y, size_t n)
{
    qnt_gx_iq4_xs_quantize_fit(x, y, n, qnt_gx_iq4_fit8_ref);
}

void qnt_gx_iq4_xs_quantize_fit(const float *restrict x, struct qnt_block_iq4_xs *restrict y,
                                size_t n, qnt_gx_fit_iq4_fn fit8)
{
    uint8_t L[32];
    float scales[8];
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        fit8(x, scales);
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < 8; ib++)
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        /* an all-zero super-block gives d = -0 (fp16 0x8000) and sub-scales 0 (+32) */
        const float d = -max_scale / 32;
        y[b].d = qnt_f32_to_f16_ref(d);
        const float id = d != 0.0f ? 1 / d : 0.0f;
        y[b].scales_h = 0;
        memset(y[b].scales_l, 0, sizeof y[b].scales_l);
        for (int ib = 0; ib < 8; ib++) {
            int l = qnt_gx_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            const float idl = dl != 0.0f ? 1 / dl : 0.0f;
            for (int j = 0; j < 32; j++)
                L[j] = (uint8_t)nearest_level(idl * x[32 * ib + j]);
            pack_nibbles(L, y[b].qs + 16 * ib);
            l += 32;
            y[b].scales_l[ib / 2] |= (uint8_t)((l & 0xF) << (4 * (ib % 2)));
            y[b].scales_h |= (uint16_t)((l >> 4) << (2 * ib));
        }
    }
}

void qnt_gx_unpack_iq4_nl(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_iq4_nl *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        int8_t *q = c->q + 32 * b;
        for (int j = 0; j < 16; j++) {
            q[j] = qnt_iq4nl_values[bl[b].qs[j] & 0xF];
            q[j + 16] = qnt_iq4nl_values[bl[b].qs[j] >> 4];
        }
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
    }
}

void qnt_gx_unpack_iq4_xs(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    (void)len;
    const struct qnt_block_iq4_xs *bl = blocks;
    qnt_gx_scales_iq4_xs(bl, c);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *qs = bl->qs + 16 * ib;
        int8_t *q = c->q + 32 * ib;
        for (int j = 0; j < 16; j++) {
            q[j] = qnt_iq4nl_values[qs[j] & 0xF];
            q[j + 16] = qnt_iq4nl_values[qs[j] >> 4];
        }
    }
}

void qnt_gx_scales_iq4_xs(const void *restrict block, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_iq4_xs *bl = block;
    const float d = qnt_f16_to_f32_ref(bl->d);
    for (int ib = 0; ib < 8; ib++) {
        const int ls = ((bl->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                       (((bl->scales_h >> (2 * ib)) & 3) << 4);
        c->mul[2 * ib] = c->mul[2 * ib + 1] = d * (float)(ls - 32);
    }
}
