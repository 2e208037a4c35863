/* qnt_qmoe.h: SB_DTYPE_SUB1_QMOE, the QMoE dictionary code (qmoe-gptq.md §2.3-2.6).
 *
 * A static dictionary of the 65,536 most probable sequences of 1..14 weight
 * pairs under P(0) = 0.885 (pair id = first + 3*second), built in the paper
 * code's exact order; 16-bit codewords index it. The blob (docs/container.md)
 * holds a header, per-row codeword offsets, per-row bf16 (lo, hi) and the
 * codewords. Input to the encoder is a tern blob (qnt_tern.h).
 *
 * The dictionary is built once, lazily and thread-safely, on first use.
 * Encoders allocate scratch (sb_malloc); decoders and matvec never allocate.
 * Decoders assume a blob that passed qnt_qmoe_validate(). */
#ifndef QNT_QMOE_H
#define QNT_QMOE_H

#include <stddef.h>
#include <stdint.h>

#include "qnt_type.h"

#define QNT_QMOE_ENTRIES 65536u
#define QNT_QMOE_MAX_PAIRS 14u
#define QNT_QMOE_P0 0.885

/*! qnt_qmoe_table() : the decode table, 2 * 65,536 uint32 words (§2.4):
 *  entry e is words 2e, 2e+1; low 4 bits of each = pair count L (1..14);
 *  weight j (0..27) of the entry at bit 4 + 2*(j % 14) of word 2e + j/14.
 *  Built on first call (thread-safe); never NULL unless allocation failed. */
const uint32_t *qnt_qmoe_table(void);

/*! qnt_qmoe_entry_pairs() : entry e's pair ids (0..8) into pairs[14]; returns L. */
unsigned qnt_qmoe_entry_pairs(uint32_t e, uint8_t pairs[QNT_QMOE_MAX_PAIRS]);

qnt_bound_fn qnt_qmoe_encode_bound;
/*! qnt_qmoe_encode() : greedy longest-match trie encoding of each row of the
 *  tern blob (odd trailing weight padded with 0). OpenMP over rows (static;
 *  not from inside a parallel region); the bytes of _ref (one thread, the
 *  plain symbol walk) at any thread count. @return SB_OK and *nbytes,
 *  SB_EINVAL (cap too small / shape out of range / a symbol 3), SB_ENOMEM. */
qnt_encode_fn qnt_qmoe_encode;
qnt_encode_fn qnt_qmoe_encode_ref;
/*! qnt_qmoe_validate() : header, offsets monotone and consistent, codeword
 *  count matches nbytes. O(rows). SB_OK or SB_EFORMAT. */
qnt_validate_fn qnt_qmoe_validate;
void qnt_qmoe_dequantize_rows(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                              size_t nrows, float *restrict dst);
/*! qnt_qmoe_decode_tern() : rows back to the exact tern bytes given to the encoder. */
void qnt_qmoe_decode_tern(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                          size_t nrows, void *restrict dst);
/*! qnt_qmoe_matvec() : fused decode + y = W x (OpenMP over rows, static),
 *  summed exactly as qnt_tern_matvec does (qnt_tern.h): bit-identical to
 *  _ref, to qnt_tern_matvec and qnt_sub1_matvec of the same weights, at any
 *  thread count. Non-finite x: every y is NaN. _ref: the scalar reference of
 *  the same sums, one thread. */
qnt_matvec_fn qnt_qmoe_matvec;
qnt_matvec_fn qnt_qmoe_matvec_ref;

/*! qnt_qmoe_matmul() : Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T,
 *  each tile of rows decoded once for all n tokens (qnt_tmm_impl.h; OpenMP
 *  over tiles, static). Exact as qnt_qmoe_matvec: row t of Y is bit for bit
 *  rows row0 .. of qnt_qmoe_matvec(X row t), at any n and thread count. ws:
 *  ws_bytes of scratch, qnt_qmoe_matmul_ws_size() for the fastest; with
 *  less, tokens go one by one (same bits). Never allocates (the dictionary
 *  aside). _ref: the reference token by token, one thread. */
size_t qnt_qmoe_matmul_ws_size(size_t cols, size_t nrows, size_t n);
void qnt_qmoe_matmul(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     size_t row0, size_t nrows, const float *restrict X, size_t n,
                     float *restrict Y, void *ws, size_t ws_bytes);
qnt_matmul_fn qnt_qmoe_matmul_ref;

#endif
