/* qnt_type.h: the encoding table (in the spirit of ggml's type traits). One
 * entry per encoding we compute with says everything quant/ does with it:
 * how to make it from f32 (reference and fast), how to turn it back, how a
 * matvec reads it (in place, decoded, or through a fused kernel of its own),
 * how to check a stored blob, and its GGUF file type. Sizes, names and the
 * container ids (safetensors dtype string, ggml type id) are the static half
 * of the same description and live in common/sb_dtype.c, because formats/
 * must know them without linking any kernel.
 *
 * Everything that asks "what does this encoding do" asks here: qnt_encode.c
 * (quantize / dequantize rows), qnt_matvec.c (matvec, matmul, get_row,
 * check), convert/ (which targets it can encode, variable-length encoders,
 * general.file_type), verify/ (binding checks, blob validation). No other
 * file switches on an encoding to find a kernel.
 *
 * How to add an encoding (ggml's Q4_1 as the example):
 *  1. Its kernel file, quant/qnt_q4_1.c with quant/qnt_q4_1.h: the block
 *     struct `struct qnt_block_q4_1` with a _Static_assert on its size, and
 *     qnt_q4_1_quantize_ref (plain C, the bytes of record), qnt_q4_1_quantize
 *     (the fastest kernel; it writes the same bytes and picks its ISA with
 *     sb_cpu_has(), never from the environment) and qnt_q4_1_dequantize, each
 *     on n elements (a multiple of the block), as qnt_ggml.h declares q4_0's.
 *  2. Its entry in quant/qnt_type.c: its header included, `BLOCK_FNS(q4_1)`
 *     (adapts the three to the table's signatures) and, in the table,
 *     `[SB_DTYPE_Q4_1] = { SB_DTYPE_Q4_1, BLOCK(q4_1, 3) },` where 3 is
 *     llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_1. That is all a block encoding needs:
 *     qnt_quantize_rows / qnt_dequantize_rows, the streaming convert, the
 *     matvec (the blocked kernel over chunks decoded with to_float), the
 *     core's binding checks and general.file_type follow from the entry.
 *     Reading it in place in the matvec kernel is optional (mm_prepare, a
 *     case in qnt_matvec_tile_impl.h). An encoding not laid out as blocks
 *     along a row fills quantize_rows / dequantize_rows / decode instead (as
 *     int8 and tern do); one with a fused kernel sets matvec / matvec_ref
 *     (and matmul / matmul_ref when it has a batched one, as tern does);
 *     a variable-length one sets encode_bound, encode and validate (sub1).
 *  3. Its tests: tests/unit/quant/test_q4_1.c (golden bytes from llama.cpp's
 *     reference, fast == _ref on random and edge inputs, a dequantize round
 *     trip), and its row in known[] of tests/unit/quant/test_type.c (with
 *     its file type), which then checks it like every other entry.
 * The enum value, name, ggml id, block length and block bytes of every ggml
 * type are already in common/sb_dtype.c; an encoding of a new kind (not a
 * ggml type) also adds its row there (enum sb_dtype, name, size rule).
 *
 * Thread safety: the table is constant; every function in it is reentrant.
 * Kernels never allocate except the variable-length encoders (scratch). */
#ifndef QNT_TYPE_H
#define QNT_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"

/* The kernel signatures (function types: a kernel file declares its entry
 * points with them, `qnt_decode_fn qnt_int8_decode;`, so the compiler checks
 * them against the table).
 * n elements (a multiple of the block length) between f32 and the encoding's
 * blocks; blocks never cross rows, so whole rows may be passed at once. */
typedef void qnt_from_float_fn(const float *restrict x, void *restrict dst, size_t n);
typedef void qnt_to_float_fn(const void *restrict src, float *restrict y, size_t n);

/* Rows row0 .. row0+nrows-1 of a (rows, cols) tensor: x holds those rows
 * (nrows, cols) f32; they are written where they belong in blob, the whole
 * tensor's encoding (sb_dtype_nbytes bytes). Passing rows = nrows, row0 = 0
 * makes a blob of just those rows. */
typedef void qnt_quantize_rows_fn(const float *restrict x, size_t row0, size_t nrows,
                                     size_t rows, size_t cols, const struct sb_qparams *qp,
                                     void *restrict blob);
/* Rows row0 .. row0+nrows-1 of the (rows, cols) tensor in blob (nbytes) into
 * dst (nrows, cols) f32. */
typedef void qnt_dequantize_rows_fn(const void *restrict blob, uint64_t nbytes, size_t rows,
                                       size_t cols, const struct sb_qparams *qp, size_t row0,
                                       size_t nrows, float *restrict dst);
/* Elements j0 .. j0+len-1 of row r of the (rows, cols) tensor in blob, to f32
 * (exact); j0 is a multiple of 256 (hence of every block length). */
typedef void qnt_decode_fn(const void *restrict blob, size_t rows, size_t cols,
                              const struct sb_qparams *qp, size_t r, size_t j0, size_t len,
                              float *restrict out);
/* y[rows] = W x[cols] over the whole tensor (a fused kernel). */
typedef void qnt_matvec_fn(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                              const float *restrict x, float *restrict y);

/* Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T for any row range and
 * any n (a batched kernel that decodes the weights once for all n tokens). */
typedef void qnt_matmul_fn(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                           size_t row0, size_t nrows, const float *restrict X, size_t n,
                           float *restrict Y);

/* Variable-length encodings: the most bytes encode may write for a (rows,
 * cols) tensor (0 on overflow); the tensor's tern bytes (qnt_tern.h) encoded
 * into dst (cap bytes), *nbytes the size written; a blob's structural check
 * for a shape (SB_OK or SB_EFORMAT). */
typedef size_t qnt_bound_fn(size_t rows, size_t cols);
typedef int qnt_encode_fn(const void *restrict tern, size_t rows, size_t cols, void *restrict dst,
                          size_t cap, uint64_t *nbytes);
typedef int qnt_validate_fn(const void *w, uint64_t nbytes, size_t rows, size_t cols);

struct qnt_mm_args;   /* qnt_matvec_impl.h */

enum qnt_type_flags {
    QNT_T_ROWS = 1 << 0,    /* the blob is rows of equal size back to back */
    QNT_T_MATVEC = 1 << 1,  /* the matvec kernels compute with it */
    QNT_T_VARLEN = 1 << 2,  /* size stored, not computed; made from tern bytes */
};

struct qnt_type {
    enum sb_dtype dt;
    unsigned flags;                          /* QNT_T_* */
    int gguf_ftype;                          /* general.file_type of a model mostly of it; -1 */
    /* block and plain encodings: the row code is generic over these */
    qnt_from_float_fn *from_float_ref, *from_float;
    qnt_to_float_fn *to_float_ref, *to_float;
    /* other fixed-size encodings: whole-tensor row ranges */
    qnt_quantize_rows_fn *quantize_rows;
    qnt_dequantize_rows_fn *dequantize_rows;
    qnt_decode_fn *decode;
    /* the blocked matvec kernel reads it in place: fills enc, row_bytes and
     * the like in the kernel's arguments (NULL: decoded chunk by chunk) */
    void (*mm_prepare)(struct qnt_mm_args *a);
    /* a fused whole-tensor kernel (NULL: the blocked kernel) */
    qnt_matvec_fn *matvec_ref, *matvec;
    /* a batched kernel over any row range (NULL: the fused kernel token by
     * token over the whole tensor) */
    qnt_matmul_fn *matmul_ref, *matmul;
    /* variable-length encodings */
    qnt_bound_fn *encode_bound;
    qnt_encode_fn *encode;
    qnt_validate_fn *validate;
};

/*! qnt_type_get() : the table entry of dt, or NULL when quant/ has no kernels
 *  for it (the other ggml types, fp8, integers: read, listed and copied). */
const struct qnt_type *qnt_type_get(enum sb_dtype dt);

/*! qnt_type_can_encode() : whether f32 can be encoded as dt (fixed-size
 *  encodings: qnt_quantize_rows; variable-length: through tern). */
bool qnt_type_can_encode(enum sb_dtype dt);
/*! qnt_type_can_decode() : whether dt decodes to f32. */
bool qnt_type_can_decode(enum sb_dtype dt);

/*! qnt_type_row_bytes() : bytes of one row of cols elements when dt's blob is
 *  rows back to back (QNT_T_ROWS); 0 otherwise, or when cols does not fit the
 *  block, or on overflow. */
size_t qnt_type_row_bytes(enum sb_dtype dt, size_t cols, const struct sb_qparams *qp);

/*! qnt_type_validate() : whether nbytes of blob hold a (rows, cols) tensor of
 *  dt: the size rule for fixed-size encodings, the structural check for
 *  variable-length ones. @return SB_OK, SB_EFORMAT, SB_EUNSUPPORTED (no
 *  kernels for dt). No message. */
int qnt_type_validate(enum sb_dtype dt, const void *blob, uint64_t nbytes, size_t rows,
                      size_t cols, const struct sb_qparams *qp);

/*! qnt_type_gguf_ftype() : GGUF general.file_type for a model whose matrices
 *  are mostly dt (llama.cpp LLAMA_FTYPE_*: f32 0, f16 1, q4_0 2, q8_0 7, bf16
 *  32, tq1_0 36, tq2_0 37); 0 (all f32) for encodings GGUF cannot hold. */
uint32_t qnt_type_gguf_ftype(enum sb_dtype dt);

#endif
