/* qnt_sub1.h: SB_DTYPE_SUB1, our entropy code for ternary rows (docs/sub1.md).
 *
 * Input is a tern blob (qnt_tern.h), so tern, sub1 and sub1-qmoe of the same
 * tensor hold bit-identical weights. Output is a variable-length blob whose
 * layout is in docs/container.md §7: a header, a per-tensor frequency table,
 * per-row bf16 (lo, hi) pairs, per-chunk offsets, then chunks of rows, each
 * coded as up to 16 lanes of interleaved rANS. Every chunk decodes on its own,
 * so a matvec decodes chunk by chunk inside its OpenMP loop.
 *
 * Encoders allocate scratch (sb_malloc); decoders and matvec never allocate.
 * All functions are reentrant. Decoders assume a blob that passed
 * qnt_sub1_validate(); on a damaged one they stay inside the blob and inside
 * dst but produce unspecified values. */
#ifndef QNT_SUB1_H
#define QNT_SUB1_H

#include <stddef.h>
#include <stdint.h>

#include "qnt_type.h"

/*! qnt_sub1_encode_bound() : the most bytes qnt_sub1_encode can write for a
 *  (rows, cols) tensor; 0 if that overflows size_t. */
qnt_bound_fn qnt_sub1_encode_bound;

/*! qnt_sub1_encode() : encode the (rows, cols) tern blob into dst (cap bytes).
 *  @return SB_OK and *nbytes; SB_EINVAL if cap is too small (cap >=
 *  qnt_sub1_encode_bound always suffices) or the shape is out of range
 *  (rows, cols < 2^32); SB_ENOMEM if scratch allocation fails. */
qnt_encode_fn qnt_sub1_encode;

/*! qnt_sub1_encode_layout() : qnt_sub1_encode with the slot layout chosen:
 *  layout 1 = alias (what qnt_sub1_encode writes, header byte 18 = 1, run cap
 *  R <= 15), 0 = the cumulative layout of earlier blobs (byte 18 = 0, R <= 63;
 *  kept so tests can make such blobs). */
int qnt_sub1_encode_layout(const void *restrict tern, size_t rows, size_t cols,
                           void *restrict dst, size_t cap, uint64_t *nbytes, int layout);

/*! qnt_sub1_set_lanes() : tests only (not thread-safe): the encoders give every
 *  chunk this many lanes (at most 16, at most its rows) instead of their rule;
 *  0 restores the rule. With 1-4, a tensor under 4 x 16384 weights gets the
 *  blob earlier versions wrote (ceil(weights / 16384) lanes), which the
 *  portable walker decodes. */
void qnt_sub1_set_lanes(unsigned lanes);

/*! qnt_sub1_encode_ref() : the serial reference of qnt_sub1_encode_layout
 *  (the same bytes: a plain symbol-by-symbol walk, one chunk after another).
 *  qnt_sub1_encode_layout scans 32 symbols a word, gathers every run cap's
 *  statistics in one pass and codes the chunks in parallel (OpenMP, static),
 *  each into a worst-case slot of dst, then moves them together; its bytes
 *  do not depend on the thread count. */
int qnt_sub1_encode_ref(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                        size_t cap, uint64_t *nbytes, int layout);

/*! qnt_sub1_validate() : structural check of a blob for shape (rows, cols):
 *  header fields, tables, offsets monotone and inside the blob. Cost
 *  O(rows + table). @return SB_OK or SB_EFORMAT. */
qnt_validate_fn qnt_sub1_validate;

/*! qnt_sub1_dequantize_rows() : rows row0 .. row0+nrows-1 into dst (nrows, cols) f32. */
void qnt_sub1_dequantize_rows(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                              size_t nrows, float *restrict dst);

/*! qnt_sub1_decode_tern() : rows row0 .. row0+nrows-1 back to tern bytes (the
 *  exact bytes the encoder was given), nrows * qnt_tern_row_bytes(cols) at dst. */
void qnt_sub1_decode_tern(const void *restrict w, uint64_t nbytes, size_t cols, size_t row0,
                          size_t nrows, void *restrict dst);

/*! qnt_sub1_matvec() : fused decode + y = W x (OpenMP over chunks, static),
 *  summed exactly as qnt_tern_matvec does (qnt_tern.h): bit-identical to
 *  _ref, to qnt_tern_matvec and qnt_qmoe_matvec of the same weights, at any
 *  thread count. Non-finite x: every y is NaN. A blob that fails to parse
 *  for (rows, cols): y is 0. */
qnt_matvec_fn qnt_sub1_matvec;
/*! qnt_sub1_matvec_ref() : scalar reference of the same exact sums, one thread. */
qnt_matvec_fn qnt_sub1_matvec_ref;

/*! qnt_sub1_matmul() : Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T,
 *  each chunk holding those rows decoded once for all n tokens into lists
 *  of non-zero columns (qnt_tmm_impl.h; OpenMP over chunks, static). Exact
 *  as qnt_sub1_matvec: row t of Y is bit for bit rows row0 .. of
 *  qnt_sub1_matvec(X row t), at any n and thread count. ws: ws_bytes of
 *  scratch, qnt_sub1_matmul_ws_size() for the fastest (0: the blob cannot
 *  take the batched path); with less, tokens go one by one (same bits; a
 *  row range then through the reference). Never allocates. A blob that
 *  fails to parse for (rows, cols): Y is 0. _ref: the reference token by
 *  token, one thread. */
size_t qnt_sub1_matmul_ws_size(const void *w, uint64_t nbytes, size_t rows, size_t cols, size_t n);
void qnt_sub1_matmul(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                     size_t row0, size_t nrows, const float *restrict X, size_t n,
                     float *restrict Y, void *ws, size_t ws_bytes);
qnt_matmul_fn qnt_sub1_matmul_ref;

#endif
