/* qnt_encode.h: one entry point to quantize and dequantize whole tensors in
 * any encoding we have kernels for, row by row. A tensor is rows x cols f32
 * (shape [..., cols], rows = the product of the leading dims); its encoded
 * blob has the size sb_dtype_nbytes() gives.
 *
 * Encodings: every fixed-size one in the encoding table (qnt_type.h): plain
 * casts (f32, f16, bf16, f64; exact RNE), ggml blocks (cols a multiple of the
 * block; a row is cols/blck blocks), int8 (qnt_int8.h, uses qp), tern
 * (qnt_tern.h). Others: SB_EUNSUPPORTED (variable-length ones are made from
 * tern bytes by their encoders, qnt_type.h).
 *
 * OpenMP over blocks of rows, schedule(static): the bytes do not depend on
 * the thread count. No allocation; writes no message (callers name the
 * tensor and file). */
#ifndef QNT_ENCODE_H
#define QNT_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"

/*! qnt_quantize_rows() : x (rows, cols) f32 -> dst, the whole blob of
 *  encoding dt. qp: int8 params (NULL = defaults); ignored by the others.
 *  @return SB_OK; SB_EINVAL if cols is not a multiple of dt's block (or the
 *  size overflows); SB_EUNSUPPORTED for encodings without kernels. */
int qnt_quantize_rows(enum sb_dtype dt, const float *restrict x, size_t rows, size_t cols,
                      const struct sb_qparams *qp, void *restrict dst);

/*! qnt_quantize_rows_at() : the row-block encoder: rows row0 .. row0+nrows-1
 *  of a (rows, cols) tensor, x holding just those rows (nrows, cols) f32,
 *  encoded where they belong in blob, the whole tensor's encoding (so a
 *  caller never needs more than a block of rows in f32). For encodings whose
 *  blob is rows back to back (qnt_type_row_bytes > 0) that is the same as
 *  qnt_quantize_rows of the block written at row0's bytes; int8 puts codes and
 *  scales at their two places. The bytes equal those of qnt_quantize_rows on
 *  the whole tensor. @return as qnt_quantize_rows; SB_EINVAL for rows past rows. */
int qnt_quantize_rows_at(enum sb_dtype dt, const float *restrict x, size_t row0, size_t nrows,
                         size_t rows, size_t cols, const struct sb_qparams *qp,
                         void *restrict blob);

/*! qnt_dequantize_rows() : rows row0 .. row0+nrows-1 of the blob src (the
 *  whole tensor of rows x cols in encoding dt) into dst (nrows, cols) f32.
 *  @return SB_OK; SB_EINVAL for a bad block multiple or a row range past
 *  rows; SB_EUNSUPPORTED for encodings without kernels. */
int qnt_dequantize_rows(enum sb_dtype dt, const void *restrict src, size_t rows, size_t cols,
                        const struct sb_qparams *qp, size_t row0, size_t nrows,
                        float *restrict dst);

/*! qnt_decode_rows() : qnt_dequantize_rows for any encoding that decodes,
 *  variable-length ones included (nbytes: the blob's size; such a blob is
 *  validated first). @return SB_OK; SB_EFORMAT (a damaged variable-length
 *  blob); otherwise as qnt_dequantize_rows. */
int qnt_decode_rows(enum sb_dtype dt, const void *restrict src, uint64_t nbytes, size_t rows,
                    size_t cols, const struct sb_qparams *qp, size_t row0, size_t nrows,
                    float *restrict dst);

/*! qnt_convert_plain() : n elements of plain float from -> to, any of f32,
 *  f16, bf16, f64 in any direction, each rounded once (RNE; NaN rules of
 *  qnt_cast.h). f64 -> f16/bf16 goes through f32 rounded to odd, which is
 *  exact for the final rounding (f32 keeps more than 2 extra bits), so there
 *  is no double rounding. src and dst must not overlap.
 *  @return SB_OK; SB_EUNSUPPORTED if either side is not one of the four. */
int qnt_convert_plain(enum sb_dtype from, const void *src, enum sb_dtype to, void *dst, size_t n);

#endif
