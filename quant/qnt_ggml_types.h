/* qnt_ggml_types.h: the other ggml block types - q4_1, q5_0, q5_1, the
 * k-quants q2_K..q6_K and q8_K, iq4_nl, iq4_xs - byte-identical to what
 * llama-quantize writes without an importance matrix, with dequantizers equal
 * to ggml's dequantize_row_* bit for bit, and dot products against f32
 * activations (the weights decoded on the fly).
 *
 * Which ggml function defines the bytes (ggml-org/llama.cpp 81ff7abe5,
 * read, not copied; llama-quantize reaches them through ggml_quantize_chunk
 * -> quantize_<type>(..., imatrix = NULL)):
 * - q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K: quantize_<type> with no imatrix
 *   calls quantize_row_<type>_ref on the whole chunk, so `_ref` here follows
 *   quantize_row_<type>_ref;
 * - iq4_nl: quantize_iq4_nl runs the search with ntry = 7 and then re-picks
 *   every code from the final scale, while ggml's quantize_row_iq4_nl_ref
 *   uses ntry = -1 (no search) and gives other bytes; `_ref` here follows
 *   quantize_iq4_nl, the llama-quantize path;
 * - iq4_xs: quantize_row_iq4_xs_ref is quantize_iq4_xs(NULL), ntry = 7: the same;
 * - q8_K is never written by llama-quantize (it is the activation type of
 *   ggml's k-quant dot products); `_ref` follows quantize_row_q8_K_ref.
 * Every rounding is part of the format: scales go to fp16 by round to
 * nearest even (qnt_f32_to_f16_ref), codes by ggml's nearest_int (round half
 * to even through the 1.5*2^23 trick, valid for |v| < 2^22; outside that
 * range the same bit pattern arithmetic is reproduced, not a clamp), the
 * legacy types by C truncation of v + 0.5; each float operation rounds once,
 * in ggml's order (ggml-base is built without FMA contraction, and so are we).
 *
 * n (elements) must be a multiple of the block length QNT_QK_*; blocks never
 * cross rows, so a caller may pass rows*cols at once when cols is a multiple.
 * Inputs must be finite and a block's max - min must not overflow f32 (ggml
 * gives unspecified codes there too). No allocation; thread-safe.
 *
 * Dot products: `_ref` decodes each block exactly (the dequantize values)
 * and sums w*x in double over j ascending, rounded to float once (the rule of
 * qnt_matvec_ref). The unsuffixed dot decodes to the same exact values and
 * sums in float lanes in a fixed order (qnt_ggml_types_impl.h; AVX-512F, else
 * AVX2+FMA, else scalar lanes with fmaf - all three give the same float;
 * SUBBIT_REF_KERNELS=1 forces `_ref`): within 1e-5 of `_ref` relative to
 * sum |w||x| for n <= 64 Ki (the tests' bound), and the same for every call
 * with the same inputs (no dependence on threads or alignment).
 * The unsuffixed quantizers write the `_ref` bytes for every finite input:
 * q2_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs run their per-group scale searches
 * 8 groups at once in AVX2 lanes, each lane repeating the scalar operations
 * in order (every search is a serial float reduction whose order defines the
 * bytes, so it is never vectorised along the elements); the other types call
 * `_ref` (q3_K's search is not vectorised yet; the rest are fast already). */
#ifndef QNT_GGML_TYPES_H
#define QNT_GGML_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"

#define QNT_QK4_1 32
#define QNT_QK5_0 32
#define QNT_QK5_1 32
#define QNT_QK4_NL 32
#ifndef QNT_QK_K
#define QNT_QK_K 256
#endif
#define QNT_K_SCALE_SIZE 12

struct qnt_block_q4_1 {          /* 20 bytes = 5 bits per weight; GGUF Q4_1 */
    uint16_t d;                  /* fp16: (max - min) / 15 */
    uint16_t m;                  /* fp16: min */
    uint8_t qs[QNT_QK4_1 / 2];   /* byte j: element j low nibble, j+16 high; x ~= q*d + m */
};
_Static_assert(sizeof(struct qnt_block_q4_1) == 20, "q4_1 block layout");

struct qnt_block_q5_0 {          /* 22 bytes = 5.5 bits per weight; GGUF Q5_0 */
    uint16_t d;                  /* fp16: (signed max-magnitude element) / -16 */
    uint8_t qh[4];               /* little-endian u32: bit j = 5th bit of element j */
    uint8_t qs[QNT_QK5_0 / 2];   /* low nibbles as q4_0; x ~= (q - 16) * d */
};
_Static_assert(sizeof(struct qnt_block_q5_0) == 22, "q5_0 block layout");

struct qnt_block_q5_1 {          /* 24 bytes = 6 bits per weight; GGUF Q5_1 */
    uint16_t d;                  /* fp16: (max - min) / 31 */
    uint16_t m;                  /* fp16: min */
    uint8_t qh[4];               /* as q5_0 */
    uint8_t qs[QNT_QK5_1 / 2];   /* x ~= q*d + m */
};
_Static_assert(sizeof(struct qnt_block_q5_1) == 24, "q5_1 block layout");

struct qnt_block_q2_K {          /* 84 bytes = 2.625 bits per weight; GGUF Q2_K */
    uint8_t scales[QNT_QK_K / 16];   /* per 16 elements: low nibble scale, high nibble min */
    uint8_t qs[QNT_QK_K / 4];        /* element 128c+32s+l: qs[32c+l] bits 2s..2s+1 */
    uint16_t d;                      /* fp16 super-scale of the scales */
    uint16_t dmin;                   /* fp16 super-scale of the mins; x ~= d*sc*q - dmin*m */
};
_Static_assert(sizeof(struct qnt_block_q2_K) == 84, "q2_K block layout");

struct qnt_block_q3_K {          /* 110 bytes = 3.4375 bits per weight; GGUF Q3_K */
    uint8_t hmask[QNT_QK_K / 8];     /* element j: hmask[j%32] bit j/32 set = code j >= 4 */
    uint8_t qs[QNT_QK_K / 4];        /* low 2 bits, laid out as q2_K */
    uint8_t scales[12];              /* 16 six-bit scales (biased by 32), packed 4+4+2 */
    uint16_t d;                      /* fp16; x ~= d*(sc-32)*(q-4) */
};
_Static_assert(sizeof(struct qnt_block_q3_K) == 110, "q3_K block layout");

struct qnt_block_q4_K {          /* 144 bytes = 4.5 bits per weight; GGUF Q4_K */
    uint16_t d;                      /* fp16 super-scale of the 8 scales */
    uint16_t dmin;                   /* fp16 super-scale of the 8 mins */
    uint8_t scales[QNT_K_SCALE_SIZE];/* 8 six-bit scales and 8 six-bit mins, packed */
    uint8_t qs[QNT_QK_K / 2];        /* element 64k+l: qs[32k+l] low nibble, 64k+32+l high */
};
_Static_assert(sizeof(struct qnt_block_q4_K) == 144, "q4_K block layout");

struct qnt_block_q5_K {          /* 176 bytes = 5.5 bits per weight; GGUF Q5_K */
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[QNT_K_SCALE_SIZE];/* as q4_K */
    uint8_t qh[QNT_QK_K / 8];        /* element 64k+l: qh[l] bit 2k, 64k+32+l: bit 2k+1 */
    uint8_t qs[QNT_QK_K / 2];        /* low 4 bits, laid out as q4_K */
};
_Static_assert(sizeof(struct qnt_block_q5_K) == 176, "q5_K block layout");

struct qnt_block_q6_K {          /* 210 bytes = 6.5625 bits per weight; GGUF Q6_K */
    uint8_t ql[QNT_QK_K / 2];        /* low 4 bits */
    uint8_t qh[QNT_QK_K / 4];        /* high 2 bits */
    int8_t scales[QNT_QK_K / 16];    /* per 16 elements */
    uint16_t d;                      /* fp16; x ~= d*sc*(q-32) */
};
_Static_assert(sizeof(struct qnt_block_q6_K) == 210, "q6_K block layout");

struct qnt_block_q8_K {          /* 292 bytes = 9.125 bits per weight; GGUF Q8_K */
    float d;                         /* f32 (not fp16): max / -127 */
    int8_t qs[QNT_QK_K];             /* x ~= d*q */
    int16_t bsums[QNT_QK_K / 16];    /* sum of each 16 codes */
};
_Static_assert(sizeof(struct qnt_block_q8_K) == 292, "q8_K block layout");

struct qnt_block_iq4_nl {        /* 18 bytes = 4.5 bits per weight; GGUF IQ4_NL */
    uint16_t d;                      /* fp16 */
    uint8_t qs[QNT_QK4_NL / 2];      /* nibbles as q4_0, indices into qnt_iq4nl_values */
};
_Static_assert(sizeof(struct qnt_block_iq4_nl) == 18, "iq4_nl block layout");

struct qnt_block_iq4_xs {        /* 136 bytes = 4.25 bits per weight; GGUF IQ4_XS */
    uint16_t d;                      /* fp16 super-scale */
    uint16_t scales_h;               /* 2 high bits of each 6-bit scale (biased by 32) */
    uint8_t scales_l[QNT_QK_K / 64]; /* 4 low bits of each, two a byte */
    uint8_t qs[QNT_QK_K / 2];        /* per 32 elements, nibbles as iq4_nl */
};
_Static_assert(sizeof(struct qnt_block_iq4_xs) == 136, "iq4_xs block layout");

/* The 16 levels of iq4_nl / iq4_xs (ggml's kvalues_iq4nl; x ~= d * value). */
extern const int8_t qnt_iq4nl_values[16];

/* Per type T: x[n] -> y[n / QK] blocks; blocks -> y[n]; and the dot product
 * of n decoded weights with x[n]. */
#define QNT_GGML_TYPE_DECL(T) \
    void qnt_##T##_quantize_ref(const float *restrict x, struct qnt_block_##T *restrict y, size_t n); \
    void qnt_##T##_quantize(const float *restrict x, struct qnt_block_##T *restrict y, size_t n); \
    void qnt_##T##_dequantize(const struct qnt_block_##T *restrict x, float *restrict y, size_t n); \
    float qnt_##T##_dot_ref(const struct qnt_block_##T *restrict w, const float *restrict x, size_t n); \
    float qnt_##T##_dot(const struct qnt_block_##T *restrict w, const float *restrict x, size_t n);

QNT_GGML_TYPE_DECL(q4_1)
QNT_GGML_TYPE_DECL(q5_0)
QNT_GGML_TYPE_DECL(q5_1)
QNT_GGML_TYPE_DECL(q2_K)
QNT_GGML_TYPE_DECL(q3_K)
QNT_GGML_TYPE_DECL(q4_K)
QNT_GGML_TYPE_DECL(q5_K)
QNT_GGML_TYPE_DECL(q6_K)
QNT_GGML_TYPE_DECL(q8_K)
QNT_GGML_TYPE_DECL(iq4_nl)
QNT_GGML_TYPE_DECL(iq4_xs)

/* ---- one uniform entry per type, for encoding tables ------------------- */

struct qnt_ggml_type {
    enum sb_dtype dt;
    const char *name;            /* ggml's spelling: "q4_K", "iq4_nl" */
    size_t blck;                 /* elements per block */
    size_t block_bytes;
    void (*quantize_ref)(const float *restrict x, void *restrict y, size_t n);
    void (*quantize)(const float *restrict x, void *restrict y, size_t n);
    void (*dequantize)(const void *restrict x, float *restrict y, size_t n);
    float (*dot_ref)(const void *restrict w, const float *restrict x, size_t n);
    float (*dot)(const void *restrict w, const float *restrict x, size_t n);
};

/*! qnt_ggml_type_get() : the entry for dt, or NULL when dt is not one of the
 *  eleven types above (q8_0/q4_0/tq*_0 live in qnt_ggml.h). */
const struct qnt_ggml_type *qnt_ggml_type_get(enum sb_dtype dt);

/*! qnt_ggml_type_matvec() : y[rows] = W x for the [rows, cols] tensor w of
 *  type t (cols a multiple of t->blck), one t->dot (or t->dot_ref when ref)
 *  per row; OpenMP over rows, schedule(static), one writer per output, so the
 *  result does not depend on the thread count. Not from inside a parallel region. */
void qnt_ggml_type_matvec(const struct qnt_ggml_type *t, const void *w, size_t rows, size_t cols,
                          const float *x, float *y, int ref);

/*! qnt_ggml_types_dot_name() : "avx512", "avx2", "scalar" or "ref": the dot
 *  kernels the unsuffixed calls use. */
const char *qnt_ggml_types_dot_name(void);

#endif
