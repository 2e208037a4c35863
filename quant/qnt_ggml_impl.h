/* qnt_ggml_impl.h: vectorized ggml quantizers (qnt_ggml_x86.c), for
 * qnt_ggml.c's dispatch and the tests. Same contract as the `_ref` ones. */
#ifndef QNT_GGML_IMPL_H
#define QNT_GGML_IMPL_H

#include "qnt_ggml.h"

#if defined(__x86_64__) || defined(__i386__)
#define QNT_GGML_HAVE_AVX2 1
void qnt_q8_0_quantize_avx2(const float *restrict x, struct qnt_block_q8_0 *restrict y, size_t n);
void qnt_q4_0_quantize_avx2(const float *restrict x, struct qnt_block_q4_0 *restrict y, size_t n);
void qnt_tq1_0_quantize_avx2(const float *restrict x, struct qnt_block_tq1_0 *restrict y, size_t n);
void qnt_tq2_0_quantize_avx2(const float *restrict x, struct qnt_block_tq2_0 *restrict y, size_t n);
#endif

/* Pack 256 codes t in {0,1,2} (element order) into a block; shared by _ref-equal kernels. */
void qnt_tq1_0_pack(const uint8_t *restrict t, struct qnt_block_tq1_0 *restrict y);
void qnt_tq2_0_pack(const uint8_t *restrict t, struct qnt_block_tq2_0 *restrict y);

#endif
