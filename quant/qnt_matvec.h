/* qnt_matvec.h: y = W x and Y = X W^T with W kept in its stored encoding.
 *
 * One interface for every encoding we compute with: f32, f16, bf16, q8_0,
 * q4_0, tq1_0, tq2_0, int8 (codes [rows*cols] then scales [rows*groups], f32
 * or f16 per qp), and the ternary forms tern, sub1 and sub1-qmoe (through
 * their fused kernels, qnt_tern.h / qnt_sub1.h / qnt_qmoe.h).
 *
 * W is [rows, cols] row-major (PyTorch order: rows = output features). The
 * _rows variants work on rows row0 .. row0+nrows-1 of a larger tensor, which
 * is how a caller takes one expert (or the gate half of a packed gate_up) out
 * of a 3-D [E, F, H] tensor without copying.
 *
 * _ref is the truth: per output, sum in double of w*x over j ascending,
 * rounded to float once; one thread. The fast path (the CPU probe's pick: AVX-512F,
 * else AVX2+FMA+F16C, else scalar lanes; SUBBIT_REF_KERNELS=1 forces _ref) is a
 * cache-blocked kernel reading f32/bf16/f16/int8 in place (other
 * encodings decoded to f32 scratch): each row is cut into chunks of 256, each
 * chunk summed in float lanes and the chunks' lanes summed in float (order:
 * qnt_matvec_impl.h); it is within 1e-5 of _ref relative to sum |w||x| (the
 * tests state it). OpenMP over row blocks, schedule(static), one writer per
 * output: results do not depend on the thread count. Each output's summation
 * order does not depend on n or on the token's place in the batch, so
 * qnt_matvec(x) is bit for bit row t of qnt_matmul(X, n) when x is X's row t:
 * a batched forward and a token-by-token one see identical kernel outputs.
 *
 * The ternary encodings (tern, sub1, sub1-qmoe) sum exactly instead
 * (qnt_ternary_impl.h), on any row range: one token over the whole tensor
 * goes through their fused matvecs, anything else through the batched kernel
 * (qnt_tmm_impl.h), which decodes each tile once for all n tokens; every
 * path gives the same bits, and _ref is their scalar reference.
 *
 * q8_0 and q4_0 meet 8-bit activations instead, as ggml's vec_dot does
 * (qnt_q8mm_impl.h): X quantized once per call to blocks of 32 int8 codes,
 * integer dot products per block (AVX512-VNNI, AVX-512BW, AVX2), one float
 * multiply-add a block; _ref is the scalar reference of the same sum (every
 * kernel equals it bit for bit, at any n, row range and thread count), and
 * it differs from the exact dot by the activations' rounding (bound stated
 * there).
 *
 * bf16 weights, where the CPU has AVX512-BF16 (fast path "avx512bf16") and
 * cols is a multiple of 32, meet bf16 activations as llama.cpp's do
 * (qnt_bf16mm_impl.h): X rounded to bf16 once per call, vdpbf16ps products;
 * the kernel equals its scalar reference bit for bit at any n, row range and
 * thread count, and errs from the exact dot by at most sum |w||x| 2^-9 more
 * (the activations' rounding). Without AVX512-BF16, bf16 goes through the
 * blocked kernel above.
 *
 * Kernels never allocate, except the ternary batched path, whose workspace
 * (a fixed-point copy of X and per-thread tile lists) is allocated per call
 * (without it, it goes token by token), and the q8_0 / q4_0 path (the
 * quantized X; without it, token by token from the stack), and bf16 with AVX512-BF16 (the
 * rounded X, the same way). The row-wise encodings decode a chunk
 * onto the stack.
 * Thread safety: reentrant; must not be called from inside an OpenMP region. */
#ifndef QNT_MATVEC_H
#define QNT_MATVEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"

/*! qnt_matvec_check() : whether the kernels can compute with (dt, rows, cols,
 *  row0, nrows) given nbytes of data: the encoding has a kernel, the shape
 *  fits it (block multiple) and the rows lie inside nbytes (fixed-size
 *  encodings). @return SB_OK, SB_EUNSUPPORTED (no kernel for dt) or
 *  SB_EFORMAT (shape or size do not fit). No message. */
int qnt_matvec_check(enum sb_dtype dt, uint64_t nbytes, const struct sb_qparams *qp, size_t rows,
                     size_t cols, size_t row0, size_t nrows);

/*! qnt_matvec() : y[rows] = W x[cols]. */
void qnt_matvec(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                size_t rows, size_t cols, const float *x, float *y);
void qnt_matvec_ref(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                    size_t rows, size_t cols, const float *x, float *y);

/*! qnt_matmul() : Y[n, rows] = X[n, cols] W^T (prompt processing). */
void qnt_matmul(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                size_t rows, size_t cols, const float *X, size_t n, float *Y);
void qnt_matmul_ref(enum sb_dtype dt, const void *w, uint64_t nbytes, const struct sb_qparams *qp,
                    size_t rows, size_t cols, const float *X, size_t n, float *Y);

/*! qnt_matmul_rows() : Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T for
 *  the [rows, cols] tensor w. */
void qnt_matmul_rows(enum sb_dtype dt, const void *w, uint64_t nbytes,
                     const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                     size_t nrows, const float *X, size_t n, float *Y);
void qnt_matmul_rows_ref(enum sb_dtype dt, const void *w, uint64_t nbytes,
                         const struct sb_qparams *qp, size_t rows, size_t cols, size_t row0,
                         size_t nrows, const float *X, size_t n, float *Y);

/*! qnt_matmul_pack_bytes() : the bytes rows row0 .. row0+nrows-1 of a tensor
 *  take packed: q8_0 or q4_0 repacked for the batched kernel (16 rows
 *  interleaved, qnt_q8mm_impl.h: the format's bytes a block), so that one
 *  token reads them in one stream without folding each row; f32, f16 and
 *  bf16 copied as they are (the kernels read them in place: the caller's
 *  memory, e.g. in huge pages, instead of a file's mapping). 0 where they
 *  are not packed: other encodings, no kernel on this CPU (q8_0 / q4_0:
 *  AVX512-VNNI), SUBBIT_REF_KERNELS forcing the reference, or the
 *  environment's SUBBIT_REPACK=0. */
uint64_t qnt_matmul_pack_bytes(enum sb_dtype dt, size_t cols, size_t nrows);

/*! qnt_matmul_pack_into() : those rows packed into out (qnt_matmul_pack_bytes
 *  of it). @return 0, or -1 (nothing written: not packed). */
int qnt_matmul_pack_into(enum sb_dtype dt, const void *w, const struct sb_qparams *qp,
                         size_t cols, size_t row0, size_t nrows, void *out);

/*! qnt_matmul_packed() : Y[n, nrows] from qnt_matmul_pack_into's rows, the same bits
 *  as qnt_matmul_rows on the rows it was packed from. @return 0, or -1 (nothing
 *  done: use qnt_matmul_rows). */
int qnt_matmul_packed(enum sb_dtype dt, const void *pack, size_t cols, size_t nrows,
                      const float *X, size_t n, float *Y);

/*! qnt_matvec_get_row() : row r of the [rows, cols] tensor w decoded to f32
 *  (embedding lookup). Exact (decoding is exact). */
void qnt_matvec_get_row(enum sb_dtype dt, const void *w, uint64_t nbytes,
                        const struct sb_qparams *qp, size_t rows, size_t cols, size_t r,
                        float *dst);

/*! qnt_matvec_fast_name() : "avx512bf16", "avx512", "avx2" or "scalar" — which fast path was picked
 *  ("ref" when SUBBIT_REF_KERNELS=1 forces the reference). */
const char *qnt_matvec_fast_name(void);

/*! qnt_matvec_bf16_activations() : whether bf16 weights may meet bf16-rounded activations
 *  where the CPU has AVX512-BF16 (qnt_bf16mm_impl.h; on by default, as llama.cpp computes
 *  them). Off, bf16 weights meet f32 activations on every CPU: the reference's sums, the same
 *  bits on any machine. Process-wide; returns the previous setting. `subbit quant` turns it
 *  off while it calibrates, so that the bytes it writes do not depend on the CPU; the
 *  environment's SUBBIT_BF16_ACTIVATIONS=0 turns it off from the start. */
bool qnt_matvec_bf16_activations(bool on);

#endif
