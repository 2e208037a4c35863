/* qnt_ggml_q.c: the legacy ggml blocks of 32 with 5 bits or a minimum:
 * q4_1, q5_0, q5_1 - reference quantizers (ggml's quantize_row_*_ref, which
 * is what llama-quantize runs for them without an importance matrix) and the
 * unpackers behind their dequantizers and dots (qnt_ggml_types_impl.h).
 * Knows block layouts, not tensors or files. */
#include "qnt_ggml_types.h"
#include "qnt_ggml_types_impl.h"
#include "qnt_cast.h"

#include <float.h>
#include <math.h>

/* q4_1/q5_1 block scale: d = (max - min)/levels stored with m = min; returns
 * min, *id = 1/d (0 when d is 0). */
static float affine32(const float *x, float levels, uint16_t *d16, uint16_t *m16, float *id)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo)
            lo = x[j];
        if (x[j] > hi)
            hi = x[j];
    }
    const float d = (hi - lo) / levels;
    *id = d != 0.0f ? 1.0f / d : 0.0f;
    *d16 = qnt_f32_to_f16_ref(d);
    *m16 = qnt_f32_to_f16_ref(lo);
    return lo;
}

/* The element of largest magnitude, the first one on a tie, sign kept. */
static float signed_absmax32(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Five-bit codes c[32] -> nibbles (element j low, j+16 high) and the 5th bits. */
static void pack5(const unsigned *c, uint8_t *qs, uint8_t *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((c[j] & 0x0F) | ((c[j + 16] & 0x0F) << 4));
        h |= ((c[j] & 0x10u) >> 4) << j;
        h |= ((c[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    put_u32le(qh, h);
}

/* ---- q4_1: d = (max - min)/15, m = min, q = min(15, trunc((x - min)*(1/d) + 0.5)) ---- */

void qnt_q4_1_quantize_ref(const float *restrict x, struct qnt_block_q4_1 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK4_1; b++, x += QNT_QK4_1) {
        float id;
        const float mn = affine32(x, 15.0f, &y[b].d, &y[b].m, &id);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)((x[j] - mn) * id + 0.5f), q1 = (int)((x[j + 16] - mn) * id + 0.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- q5_0: d = m/-16 (m the signed max-magnitude element), q = min(31, trunc(x*(1/d) + 16.5)) ---- */

void qnt_q5_0_quantize_ref(const float *restrict x, struct qnt_block_q5_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK5_0; b++, x += QNT_QK5_0) {
        const float d = signed_absmax32(x) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = qnt_f32_to_f16_ref(d);
        unsigned c[32];
        for (int j = 0; j < 32; j++) {
            const int q = (int)(x[j] * id + 16.5f);
            c[j] = (unsigned)(q < 31 ? q : 31);
        }
        pack5(c, y[b].qs, y[b].qh);
    }
}

/* ---- q5_1: d = (max - min)/31, m = min, q = trunc((x - min)*(1/d) + 0.5), NOT
 * clamped (ggml keeps the low 5 bits of a 32 that rounding may give) ---- */

void qnt_q5_1_quantize_ref(const float *restrict x, struct qnt_block_q5_1 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK5_1; b++, x += QNT_QK5_1) {
        float id;
        const float mn = affine32(x, 31.0f, &y[b].d, &y[b].m, &id);
        unsigned c[32];
        for (int j = 0; j < 32; j++)
            c[j] = (uint8_t)(int)((x[j] - mn) * id + 0.5f);
        pack5(c, y[b].qs, y[b].qh);
    }
}

/* ---- unpackers: weight = code*d (+ m) ---- */

void qnt_gx_unpack_q4_1(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q4_1 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        int8_t *q = c->q + 32 * b;
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(bl[b].qs[j] & 0x0F);
            q[j + 16] = (int8_t)(bl[b].qs[j] >> 4);
        }
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
        c->off[2 * b] = c->off[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].m);
    }
}

static void unpack5(const uint8_t *qs, const uint8_t *qh, int bias, int8_t *q)
{
    const uint32_t h = get_u32le(qh);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(((qs[j] & 0x0F) | (((h >> j) & 1u) << 4)) - bias);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | (((h >> (j + 16)) & 1u) << 4)) - bias);
    }
}

void qnt_gx_unpack_q5_0(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q5_0 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        unpack5(bl[b].qs, bl[b].qh, 16, c->q + 32 * b);
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
    }
}

void qnt_gx_unpack_q5_1(const void *restrict blocks, size_t len, struct qnt_gx_chunk *restrict c)
{
    const struct qnt_block_q5_1 *bl = blocks;
    for (size_t b = 0; b < len / 32; b++) {
        unpack5(bl[b].qs, bl[b].qh, 0, c->q + 32 * b);
        c->mul[2 * b] = c->mul[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].d);
        c->off[2 * b] = c->off[2 * b + 1] = qnt_f16_to_f32_ref(bl[b].m);
    }
}
