/* qnt_ggml_types_impl.h: private parts of qnt_ggml_types.h (quant/ and its
 * tests only).
 *
 * Every type decodes through one shape: a chunk of up to 256 elements (one
 * super-block, or up to 8 blocks of 32) is unpacked into its integer codes in
 * element order, already offset (q - 16, q - 4, q - 32, iq4 levels), and per
 * 16-element group a multiplier and an offset such that the weight is
 * exactly  (float)code * mul[g]  then  + off[g]  (q4_1, q5_1) or  - off[g]
 * (q2_K, q4_K, q5_K), each rounded once. That is ggml's dequantize_row_*
 * formula for each type, operand order included (d*sc*q is (d*sc)*q; a
 * subtraction stays a subtraction, so even NaN signs from a corrupt scale
 * come out as ggml's), so the dequantizers, the `_ref` dots and the fast
 * dots all read the same values. */
#ifndef QNT_GGML_TYPES_IMPL_H
#define QNT_GGML_TYPES_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qnt_ggml_types.h"

#define QNT_GX_CHUNK 256
#define QNT_GX_GROUPS (QNT_GX_CHUNK / 16)

struct qnt_gx_chunk {
    int8_t q[QNT_GX_CHUNK];      /* codes, element order */
    float mul[QNT_GX_GROUPS];    /* per 16 elements */
    float off[QNT_GX_GROUPS];    /* per 16 elements; unused when off_sign == 0 */
};

/* Unpack the chunk that starts at block `blocks` and covers `len` elements
 * (len a multiple of the block length, at most QNT_GX_CHUNK). */
typedef void (*qnt_gx_unpack_fn)(const void *restrict blocks, size_t len,
                                 struct qnt_gx_chunk *restrict c);

struct qnt_gx_layout {
    size_t blck, block_bytes;
    int off_sign;                /* 0: no offset, +1: v + off, -1: v - off */
    qnt_gx_unpack_fn unpack;     /* scalar: defines the codes */
    qnt_gx_unpack_fn unpack_fast;/* AVX2 integer unpack where there is one, else = unpack */
};

/* ggml's nearest_int: adding 1.5*2^23 leaves round-half-even(v) in the low
 * mantissa bits for |v| < 2^22; for larger |v| the same bit arithmetic gives
 * ggml's (meaningless) answer, which we reproduce rather than clamp. */
static inline int qnt_gx_nearest_int(float v)
{
    const float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007FFFFF) - 0x00400000;
}

/* Scalar unpackers (qnt_ggml_q.c, qnt_ggml_kq.c, qnt_ggml_iq.c). */
/* ggml's make_qx_quants (rmse_type 1) over n values: codes L (offset nmax),
 * returns the scale; qw the importance weights, NULL for x^2 (qnt_ggml_kq.c) */
float qnt_gx_make_qx(int n, int nmax, const float *x, int8_t *L, const float *qw);
void qnt_gx_unpack_q4_1(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_0(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_1(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q2_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q3_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q4_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q6_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q8_K(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_iq4_nl(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_iq4_xs(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);

/* The per-16 mul/add of one k-quant super-block (the unpackers' scale half,
 * shared with the AVX2 unpackers). */
void qnt_gx_scales_q2_K(const void *restrict block, struct qnt_gx_chunk *restrict c);
void qnt_gx_scales_q3_K(const void *restrict block, struct qnt_gx_chunk *restrict c);
void qnt_gx_scales_q4_K(const void *restrict block, struct qnt_gx_chunk *restrict c);
void qnt_gx_scales_q5_K(const void *restrict block, struct qnt_gx_chunk *restrict c);
void qnt_gx_scales_q6_K(const void *restrict block, struct qnt_gx_chunk *restrict c);
void qnt_gx_scales_iq4_xs(const void *restrict block, struct qnt_gx_chunk *restrict c);

/* The k-quant quantizers in two halves: the per-group scale fits (the
 * expensive, serial-float part; `_ref` here, 8 groups a time in AVX2 lanes in
 * qnt_ggml_kq_x86.c with the same operations per lane, so the same floats),
 * and the rest of the block, shared. L gets each group's codes in element order.
 * iq4_nl / iq4_xs fit 8 blocks of 32 a call (their codes are re-picked after). */
typedef void (*qnt_gx_fit_k45_fn)(const float *x, int nmax, float *scales, float *mins, uint8_t *L);
typedef void (*qnt_gx_fit_min_fn)(const float *x, float *scales, float *mins, uint8_t *L);
typedef void (*qnt_gx_fit_q6_fn)(const float *x, float *scales, int8_t *L);
typedef void (*qnt_gx_fit_iq4_fn)(const float *x, float *scales);   /* 8 blocks of 32 */
void qnt_gx_k45_fit_ref(const float *x, int nmax, float *scales, float *mins, uint8_t *L);
void qnt_gx_q2_K_fit_ref(const float *x, float *scales, float *mins, uint8_t *L);
void qnt_gx_q6_K_fit_ref(const float *x, float *scales, int8_t *L);
void qnt_gx_iq4_fit8_ref(const float *x, float *scales);
void qnt_gx_q2_K_quantize_fit(const float *restrict x, struct qnt_block_q2_K *restrict y, size_t n,
                              qnt_gx_fit_min_fn fit);
void qnt_gx_q4_K_quantize_fit(const float *restrict x, struct qnt_block_q4_K *restrict y, size_t n,
                              qnt_gx_fit_k45_fn fit);
void qnt_gx_q5_K_quantize_fit(const float *restrict x, struct qnt_block_q5_K *restrict y, size_t n,
                              qnt_gx_fit_k45_fn fit);
void qnt_gx_q6_K_quantize_fit(const float *restrict x, struct qnt_block_q6_K *restrict y, size_t n,
                              qnt_gx_fit_q6_fn fit);
void qnt_gx_iq4_nl_quantize_fit(const float *restrict x, struct qnt_block_iq4_nl *restrict y,
                                size_t n, qnt_gx_fit_iq4_fn fit8);
void qnt_gx_iq4_xs_quantize_fit(const float *restrict x, struct qnt_block_iq4_xs *restrict y,
                                size_t n, qnt_gx_fit_iq4_fn fit8);

/* Generic kernels over a layout (qnt_ggml_types.c). */
void qnt_gx_dequantize(const struct qnt_gx_layout *l, const void *restrict x, float *restrict y,
                       size_t n);
float qnt_gx_dot_ref(const struct qnt_gx_layout *l, const void *restrict w,
                     const float *restrict x, size_t n);
/* Summation order of every fast dot (scalar lanes, AVX2, AVX-512 alike):
 * each chunk of 256 elements is summed into 16 float lanes starting from 0
 * (lane l takes elements with index % 16 == l; group g of the chunk goes to
 * accumulator g % 2 by fused multiply-add - fmaf in the scalar lanes), the
 * chunk's two accumulators are added and the result added to a running
 * 16-lane vector; at the end lane l takes lane l + 8, then + 4, + 2, + 1.
 * So the three ISAs give the same float, bit for bit. */
float qnt_gx_dot_scalar(const struct qnt_gx_layout *l, const void *restrict w,
                        const float *restrict x, size_t n);

#if defined(__x86_64__) || defined(__i386__)
#define QNT_GX_HAVE_X86 1
float qnt_gx_dot_avx2(const struct qnt_gx_layout *l, const void *restrict w,
                      const float *restrict x, size_t n);
float qnt_gx_dot_avx512(const struct qnt_gx_layout *l, const void *restrict w,
                        const float *restrict x, size_t n);
/* AVX2 group fits (qnt_ggml_kq_x86.c), equal to the `_ref` ones. */
void qnt_gx_k45_fit_avx2(const float *x, int nmax, float *scales, float *mins, uint8_t *L);
void qnt_gx_q2_K_fit_avx2(const float *x, float *scales, float *mins, uint8_t *L);
void qnt_gx_q6_K_fit_avx2(const float *x, float *scales, int8_t *L);
void qnt_gx_iq4_fit8_avx2(const float *x, float *scales);
/* AVX2 integer unpackers (qnt_ggml_types_x86.c), equal to the scalar ones. */
void qnt_gx_unpack_q4_1_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_0_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_1_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_iq4_nl_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_iq4_xs_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q4_K_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q5_K_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q6_K_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q2_K_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
void qnt_gx_unpack_q3_K_avx2(const void *restrict b, size_t len, struct qnt_gx_chunk *restrict c);
#endif

/* The layout of a type (NULL if dt is not one of ours); fast selects unpack_fast. */
const struct qnt_gx_layout *qnt_gx_layout_get(enum sb_dtype dt);

/*! qnt_ggml_types_set_isa() : tests and bench only. Make the unsuffixed dots
 *  use "scalar", "avx2" or "avx512" (NULL: back to the automatic pick).
 *  @return 0, or -1 when this CPU lacks it. Not thread-safe. */
int qnt_ggml_types_set_isa(const char *name);

#endif
