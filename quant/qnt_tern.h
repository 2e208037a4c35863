/* qnt_tern.h: the QMoE ternary grid, stored plainly (SB_DTYPE_TERN).
 *
 * Grid per output row (qmoe-gptq.md §2.1): levels {lo, 0, hi} with
 * lo = bf16(min(row min, 0)) and hi = bf16(max(row max, 0)), rounded to
 * bf16 round-to-nearest-even. A weight x maps to hi if x > hi/2, to lo if
 * x < lo/2, else to exact 0 (thresholds use the bf16-rounded levels, the
 * same values decode uses).
 *
 * Blob layout (row-contiguous; size = rows * (4 + ceil(cols/4)), as
 * sb_dtype_nbytes computes):
 *   per row: uint16 lo (bf16 bits, LE), uint16 hi (bf16 bits, LE),
 *            ceil(cols/4) bytes of 2-bit symbols: weight j at byte j/4,
 *            bits 2*(j%4); symbol 0 = zero, 1 = lo, 2 = hi (3 is invalid and
 *            decodes as 0); padding bits of the last byte are 0.
 *
 * Kernels never allocate. Thread safety: all functions are reentrant. */
#ifndef QNT_TERN_H
#define QNT_TERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qnt_type.h"
#include "sb_dtype.h"

#define QNT_TERN_ROW_HDR 4u    /* bytes of (lo, hi) before each row's symbols */

/*! qnt_tern_row_bytes() : bytes one row of cols weights occupies in a tern blob. */
static inline size_t qnt_tern_row_bytes(size_t cols) { return QNT_TERN_ROW_HDR + (cols + 3) / 4; }

/*! qnt_tern_f32_to_bf16() : f32 -> bf16 bits, round to nearest even (NaN stays NaN, quieted). */
uint16_t qnt_tern_f32_to_bf16(float f);
/*! qnt_tern_bf16_to_f32() : bf16 bits -> f32 (exact). Inline: the ternary
 *  kernels call it twice a row, and a call there clobbers every vector
 *  register (tinymoe's batched sub1 rows spilled and reloaded theirs). */
static inline float qnt_tern_bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/*! qnt_tern_quantize_rows() : x is (rows, cols) f32 row-major; writes
 *  rows * qnt_tern_row_bytes(cols) bytes to dst. NaN inputs map to 0.
 *  OpenMP over blocks of rows (static; not from inside a parallel region),
 *  AVX-512 where present: the bytes of _ref (one thread, plain C), at any
 *  thread count. */
void qnt_tern_quantize_rows(const float *restrict x, size_t rows, size_t cols, void *restrict dst);
void qnt_tern_quantize_rows_ref(const float *restrict x, size_t rows, size_t cols,
                                void *restrict dst);

/*! qnt_tern_dequantize_rows() : rows row0 .. row0+nrows-1 of the tern blob src
 *  (rows of cols weights) into dst (nrows, cols) f32. */
void qnt_tern_dequantize_rows(const void *restrict src, size_t cols, size_t row0, size_t nrows,
                              float *restrict dst);

/* The encoding table's entry points (qnt_type.h): a row range quantized into
 * (or decoded from) the whole tensor's blob, and elements of one row decoded
 * for the matvec kernels. */
qnt_quantize_rows_fn qnt_tern_quantize_range;
qnt_dequantize_rows_fn qnt_tern_dequantize_range;
qnt_decode_fn qnt_tern_decode;

/*! qnt_tern_row_symbols() : row r's symbols unpacked, one byte each (0/1/2),
 *  into sym[cols]; lo and hi get the row's bf16 level bits. */
void qnt_tern_row_symbols(const void *restrict src, size_t cols, size_t r, uint8_t *restrict sym,
                          uint16_t *lo, uint16_t *hi);

/*! qnt_tern_matvec() : y[r] = sum_j W[r][j] * x[j] for the (rows, cols) tern
 *  matrix w, summed exactly (qnt_ternary_impl.h): x to 40-bit fixed point
 *  with one power-of-two scale, per row int64 sums of X under symbol 1 and
 *  symbol 2, y = (float)(lo * S_lo * 2^-s + hi * S_hi * 2^-s) in double.
 *  Bit-identical to qnt_tern_matvec_ref, to qnt_sub1_matvec and
 *  qnt_qmoe_matvec of the same weights, at any thread count (AVX-512 or AVX2
 *  when available, OpenMP over tiles of rows, static schedule). If any x[j]
 *  is inf or NaN, every y[r] is NaN. Uses ~17 KiB of stack a thread. */
void qnt_tern_matvec(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                     float *restrict y);
/*! qnt_tern_matvec_ref() : the scalar reference of the same sums, row by
 *  row, j ascending. Single-threaded. */
void qnt_tern_matvec_ref(const void *restrict w, size_t rows, size_t cols, const float *restrict x,
                         float *restrict y);

/*! qnt_tern_matmul() : Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T,
 *  each tile of rows decoded once for all n tokens (qnt_tmm_impl.h; OpenMP
 *  over tiles, static). Exact as qnt_tern_matvec: row t of Y is bit for bit
 *  rows row0 .. of qnt_tern_matvec(X row t), at any n and thread count. ws:
 *  ws_bytes of scratch, qnt_tern_matmul_ws_size() for the fastest; with less
 *  (even none) tokens go one by one through the fused kernel (same bits).
 *  Never allocates. _ref: qnt_tern_matvec_ref token by token. */
size_t qnt_tern_matmul_ws_size(size_t cols, size_t nrows, size_t n);
void qnt_tern_matmul(const void *restrict w, size_t rows, size_t cols, size_t row0, size_t nrows,
                     const float *restrict X, size_t n, float *restrict Y, void *ws,
                     size_t ws_bytes);
void qnt_tern_matmul_ref(const void *restrict w, size_t rows, size_t cols, size_t row0,
                         size_t nrows, const float *restrict X, size_t n, float *restrict Y);

#endif
