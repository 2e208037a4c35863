/* qnt_ggml.c: reference ggml block quantizers and dequantizers (q8_0, q4_0,
 * tq1_0, tq2_0) and the dispatch to qnt_ggml_x86.c. The `_ref` functions
 * follow ggml's quantize_row_*_ref rule for rule (formats.md §2.5, ggml
 * src/ggml-quants.c), so the bytes match llama-quantize's. Knows block
 * layouts, not tensors or files. */
#include "qnt_ggml.h"
#include "qnt_cast.h"
#include "qnt_cast_impl.h"
#include "qnt_ggml_impl.h"
#include "sb_cpu.h"

#include <math.h>

/* ---- q8_0: d = amax/127, q = roundf(x * (1/d)) (halves away from zero) ---- */

void qnt_q8_0_quantize_ref(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK8_0; b++, x += QNT_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QNT_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = qnt_f32_to_f16_ref(d);
        for (int j = 0; j < QNT_QK8_0; j++)
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void qnt_q8_0_dequantize(const struct qnt_block_q8_0 *restrict x, float *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK8_0; b++) {
        const float d = qnt_f16_to_f32_ref(x[b].d);
        for (int j = 0; j < QNT_QK8_0; j++)
            y[b * QNT_QK8_0 + j] = (float)x[b].qs[j] * d;
    }
}

/* ---- q4_0: m = the element of largest |x| (first on a tie, sign kept),
 * d = m / -8, q = min(15, trunc(x * (1/d) + 8.5)); m itself maps to 0 ---- */

void qnt_q4_0_quantize_ref(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK4_0; b++, x += QNT_QK4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QNT_QK4_0; j++)
            if (amax < fabsf(x[j])) {           /* strict: the first of equal magnitudes wins */
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;            /* an all-zero block gives d = -0 (fp16 0x8000) */
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = qnt_f32_to_f16_ref(d);
        for (int j = 0; j < QNT_QK4_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QNT_QK4_0 / 2] * id;
            int q0 = (int)(x0 + 8.5f), q1 = (int)(x1 + 8.5f);   /* C conversion truncates */
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void qnt_q4_0_dequantize(const struct qnt_block_q4_0 *restrict x, float *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK4_0; b++, y += QNT_QK4_0) {
        const float d = qnt_f16_to_f32_ref(x[b].d);
        for (int j = 0; j < QNT_QK4_0 / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + QNT_QK4_0 / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- ternary: d = amax, t = lroundf(x * (1/d)) + 1 in {0,1,2} ---- */

static float tq_scale(const float *x, uint16_t *d16, float *id)
{
    float amax = 0.0f;
    for (int j = 0; j < QNT_QK_K; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    *d16 = qnt_f32_to_f16_ref(amax);
    *id = amax != 0.0f ? 1.0f / amax : 0.0f;
    return amax;
}

static uint8_t trit(float x, float id)
{
    return (uint8_t)(lroundf(x * id) + 1);
}

/* A byte holding trits t0..t4 (t0 most significant: v = sum t_n 3^(4-n)) stores
 * ceil(v * 256 / 243), so that trit n decodes as ((byte * 3^n) mod 256) * 3 >> 8. */
static uint8_t tq1_byte(unsigned v)
{
    return (uint8_t)((v * 256 + 242) / 243);
}

void qnt_tq1_0_quantize_ref(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        float id;
        tq_scale(x, &y[b].d, &id);
        for (int m = 0; m < 32; m++) {           /* elements 0..159: qs[e % 32], trit e / 32 */
            unsigned v = 0;
            for (int k = 0; k < 5; k++)
                v = v * 3 + trit(x[m + 32 * k], id);
            y[b].qs[m] = tq1_byte(v);
        }
        for (int m = 0; m < 16; m++) {           /* 160..239: qs[32 + f % 16], trit f / 16 */
            unsigned v = 0;
            for (int k = 0; k < 5; k++)
                v = v * 3 + trit(x[160 + m + 16 * k], id);
            y[b].qs[32 + m] = tq1_byte(v);
        }
        for (int m = 0; m < 4; m++) {            /* 240..255: qh[g % 4], trit g / 4; fifth trit 0 */
            unsigned v = 0;
            for (int k = 0; k < 4; k++)
                v = v * 3 + trit(x[240 + m + 4 * k], id);
            y[b].qh[m] = tq1_byte(v * 3);
        }
    }
}

void qnt_tq1_0_pack(const uint8_t *restrict t, struct qnt_block_tq1_0 *restrict y)
{
    for (int m = 0; m < 32; m++)
        y->qs[m] = tq1_byte(t[m] * 81u + t[m + 32] * 27u + t[m + 64] * 9u + t[m + 96] * 3u + t[m + 128]);
    for (int m = 0; m < 16; m++) {
        const uint8_t *s = t + 160 + m;
        y->qs[32 + m] = tq1_byte(s[0] * 81u + s[16] * 27u + s[32] * 9u + s[48] * 3u + s[64]);
    }
    for (int m = 0; m < 4; m++) {
        const uint8_t *s = t + 240 + m;
        y->qh[m] = tq1_byte(s[0] * 81u + s[4] * 27u + s[8] * 9u + s[12] * 3u);
    }
}

void qnt_tq1_0_dequantize(const struct qnt_block_tq1_0 *restrict x, float *restrict y, size_t n)
{
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    for (size_t b = 0; b < n / QNT_QK_K; b++, y += QNT_QK_K) {
        const float d = qnt_f16_to_f32_ref(x[b].d);
        for (int e = 0; e < QNT_QK_K; e++) {
            uint8_t byte;
            int k;
            if (e < 160) {
                byte = x[b].qs[e % 32];
                k = e / 32;
            } else if (e < 240) {
                byte = x[b].qs[32 + (e - 160) % 16];
                k = (e - 160) / 16;
            } else {
                byte = x[b].qh[(e - 240) % 4];
                k = (e - 240) / 4;
            }
            const uint8_t w = (uint8_t)(byte * pow3[k]);    /* mod 256 */
            const int t = (w * 3) >> 8;
            y[e] = (float)(t - 1) * d;
        }
    }
}

/* tq2_0: element e = 128c + 32l + k sits in qs[32c + k], bits 2l..2l+1 */
void qnt_tq2_0_quantize_ref(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK_K; b++, x += QNT_QK_K) {
        float id;
        tq_scale(x, &y[b].d, &id);
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 32; k++) {
                unsigned q = 0;
                for (int l = 0; l < 4; l++)
                    q |= (unsigned)trit(x[128 * c + 32 * l + k], id) << (2 * l);
                y[b].qs[32 * c + k] = (uint8_t)q;
            }
    }
}

void qnt_tq2_0_pack(const uint8_t *restrict t, struct qnt_block_tq2_0 *restrict y)
{
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 32; k++) {
            const uint8_t *s = t + 128 * c + k;
            y->qs[32 * c + k] = (uint8_t)(s[0] | (s[32] << 2) | (s[64] << 4) | (s[96] << 6));
        }
}

void qnt_tq2_0_dequantize(const struct qnt_block_tq2_0 *restrict x, float *restrict y, size_t n)
{
    for (size_t b = 0; b < n / QNT_QK_K; b++, y += QNT_QK_K) {
        const float d = qnt_f16_to_f32_ref(x[b].d);
        for (int e = 0; e < QNT_QK_K; e++) {
            const int c = e / 128, l = (e % 128) / 32, k = e % 32;
            const int t = (x[b].qs[32 * c + k] >> (2 * l)) & 3;
            y[e] = (float)(t - 1) * d;
        }
    }
}

/* ---- dispatch ---- */

static int use_avx2(void)
{
#if defined(QNT_GGML_HAVE_AVX2) && defined(QNT_HAVE_X86)
    return sb_cpu_has(SB_CPU_AVX2 | SB_CPU_F16C);
#else
    return 0;
#endif
}

const char *qnt_ggml_kernel_name(void)
{
    return use_avx2() ? "avx2" : "ref";
}

#if defined(QNT_GGML_HAVE_AVX2) && defined(QNT_HAVE_X86)
#define DISPATCH(name, ...) \
    do { \
        if (use_avx2()) \
            name##_avx2(__VA_ARGS__); \
        else \
            name##_ref(__VA_ARGS__); \
    } while (0)
#else
#define DISPATCH(name, ...) name##_ref(__VA_ARGS__)
#endif

void qnt_q8_0_quantize(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n)
{
    DISPATCH(qnt_q8_0_quantize, x, y, n);
}

void qnt_q4_0_quantize(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n)
{
    DISPATCH(qnt_q4_0_quantize, x, y, n);
}

void qnt_tq1_0_quantize(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n)
{
    DISPATCH(qnt_tq1_0_quantize, x, y, n);
}

void qnt_tq2_0_quantize(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n)
{
    DISPATCH(qnt_tq2_0_quantize, x, y, n);
}
