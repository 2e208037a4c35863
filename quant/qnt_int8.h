/* qnt_int8.h: our row-wise symmetric int8 encoding (SB_DTYPE_INT8).
 *
 * Blob layout (sb_dtype_nbytes): int8 codes [rows, cols] row-major, then the
 * scales [rows, groups] as f32 or f16 (qp->scale_dtype), groups = ceil(cols/G)
 * for G = qp->group > 0, else 1 (one scale a row). Scales are stored
 * little-endian at whatever alignment they land on (read with memcpy).
 *
 * Rule, per group g of a row: s = amax / 127 (f32), code = roundf(x / s)
 * (halves away from zero) clamped to [-127, 127]; x ~= code * s. An all-zero
 * group gets s = 0 and codes 0. With f16 scales, s is first rounded to f16
 * (RNE, and capped at 65504 so it stays finite) and the codes are computed
 * with the ROUNDED scale, so dequantization sees the scale the codes were
 * made for (a scale that rounded down can push |x|/s past 127: clamped). A
 * tiny amax whose f16 scale underflows to 0 quantizes the group to 0.
 * NaN inputs give code 0 (and are ignored by amax).
 *
 * Parallel over rows (OpenMP, schedule static); the bytes never depend on the
 * thread count. No allocation. */
#ifndef QNT_INT8_H
#define QNT_INT8_H

#include <stddef.h>
#include <stdint.h>

#include "qnt_type.h"
#include "sb_dtype.h"

/*! qnt_int8_groups() : scales per row for (cols, qp) (qp may be NULL). */
size_t qnt_int8_groups(size_t cols, const struct sb_qparams *qp);

/*! qnt_int8_quantize_rows() : x (rows, cols) f32 -> the int8 blob dst
 *  (rows*cols + rows*groups*scale_bytes bytes). qp may be NULL (row scales, f32). */
void qnt_int8_quantize_rows(const float *restrict x, size_t rows, size_t cols,
                            const struct sb_qparams *qp, void *restrict dst);

/*! qnt_int8_dequantize_rows() : rows row0 .. row0+nrows-1 of the blob of a
 *  (rows, cols) tensor into dst (nrows, cols) f32: dst = code * scale. */
void qnt_int8_dequantize_rows(const void *restrict blob, size_t rows, size_t cols,
                              const struct sb_qparams *qp, size_t row0, size_t nrows,
                              float *restrict dst);

/* The encoding table's entry points (qnt_type.h): a row range quantized into
 * the whole tensor's blob, decoded from it, and elements of one row decoded
 * for the matvec kernels; how they read int8 in place (whole groups of 16). */
qnt_quantize_rows_fn qnt_int8_quantize_range;
qnt_dequantize_rows_fn qnt_int8_dequantize_range;
qnt_decode_fn qnt_int8_decode;
struct qnt_mm_args;
void qnt_int8_mm_prepare(struct qnt_mm_args *a);

#endif
