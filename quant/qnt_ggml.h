/* qnt_ggml.h: ggml block quantizers q8_0, q4_0, tq1_0, tq2_0, byte-identical
 * to llama.cpp's quantize_row_*_ref (what llama-quantize writes without an
 * importance matrix), and their dequantizers (formats.md §2.5).
 *
 * Shared rules: a block's d is stored as fp16 (RNE, qnt_f32_to_f16_ref), the
 * inverse scale is computed from the fp32 d, and a zero d gives inverse 0, so
 * every code becomes the zero code. n (elements) must be a multiple of the
 * block length (QNT_QK*); blocks never cross rows, so a caller passing whole
 * rows of a [rows, cols] tensor may pass rows*cols at once. Inputs must be
 * finite (NaN/inf give unspecified codes, as in ggml).
 *
 * `_ref` is plain C and defines the bytes; the unsuffixed quantizer is the
 * fastest kernel this CPU runs (SUBBIT_REF_KERNELS=1 forces `_ref`) and writes
 * the same bytes for every finite input. No allocation; thread-safe. */
#ifndef QNT_GGML_H
#define QNT_GGML_H

#include <stddef.h>
#include <stdint.h>

#define QNT_QK8_0 32
#define QNT_QK4_0 32
#define QNT_QK_K 256

struct qnt_block_q8_0 {          /* 34 bytes = 8.5 bits per weight; same bytes as GGUF Q8_0 */
    uint16_t d;                  /* scale, fp16 bits: amax / 127 */
    int8_t qs[QNT_QK8_0];        /* x[e] ~= d * qs[e] */
};
_Static_assert(sizeof(struct qnt_block_q8_0) == 34, "q8_0 block layout");

struct qnt_block_q4_0 {          /* 18 bytes = 4.5 bits per weight; GGUF Q4_0 */
    uint16_t d;                  /* fp16: (signed max-magnitude element) / -8 */
    uint8_t qs[QNT_QK4_0 / 2];   /* byte j: element j low nibble, j+16 high; x ~= (q - 8) * d */
};
_Static_assert(sizeof(struct qnt_block_q4_0) == 18, "q4_0 block layout");

struct qnt_block_tq1_0 {         /* 54 bytes = 1.6875 bits per weight; GGUF TQ1_0 */
    uint8_t qs[48];              /* 5 trits a byte (elements 0..239), stored as ceil(v*256/243) */
    uint8_t qh[4];               /* 4 trits a byte (elements 240..255) */
    uint16_t d;                  /* fp16: amax */
};
_Static_assert(sizeof(struct qnt_block_tq1_0) == 54, "tq1_0 block layout");

struct qnt_block_tq2_0 {         /* 66 bytes = 2.0625 bits per weight; GGUF TQ2_0 */
    uint8_t qs[64];              /* 2-bit codes t in {0,1,2}, x ~= (t - 1) * d */
    uint16_t d;                  /* fp16: amax */
};
_Static_assert(sizeof(struct qnt_block_tq2_0) == 66, "tq2_0 block layout");

/* x[n] -> y[n / QK] blocks */
void qnt_q8_0_quantize_ref(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n);
void qnt_q8_0_quantize(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n);
void qnt_q8_0_dequantize(const struct qnt_block_q8_0 *restrict x, float *restrict y, size_t n);

void qnt_q4_0_quantize_ref(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n);
void qnt_q4_0_quantize(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n);
void qnt_q4_0_dequantize(const struct qnt_block_q4_0 *restrict x, float *restrict y, size_t n);

void qnt_tq1_0_quantize_ref(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n);
void qnt_tq1_0_quantize(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n);
void qnt_tq1_0_dequantize(const struct qnt_block_tq1_0 *restrict x, float *restrict y, size_t n);

void qnt_tq2_0_quantize_ref(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n);
void qnt_tq2_0_quantize(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n);
void qnt_tq2_0_dequantize(const struct qnt_block_tq2_0 *restrict x, float *restrict y, size_t n);

/*! qnt_ggml_kernel_name() : "avx2" or "ref": the quantizers the unsuffixed calls use. */
const char *qnt_ggml_kernel_name(void);

#endif
