/* qnt_gptq.h: GPTQ (Frantar et al., ICLR 2023, Algorithm 1; qmoe-gptq.md §4)
 * onto every grid subbit writes: int8 (per row or group), the ggml blocks
 * q8_0, q4_0, tq1_0, tq2_0, and QMoE's ternary grid (tern; sub1 and
 * sub1-qmoe code the same symbols).
 *
 * For a linear layer with weight W (rows x cols, rows = outputs) and
 * calibration inputs x_t (cols each), GPTQ picks Q on the grid so that
 * ||W X - Q X||^2 is small, one column at a time, spreading each column's
 * rounding error over the columns not yet quantized with the inverse Hessian
 * of H = 2 X X^T:
 *   - dead columns (H_jj = 0: the input is always 0) get H_jj = 1 and W[:, j] = 0;
 *   - dampening H_jj += damp * mean(diag H);
 *   - with act_order, columns go by descending diag(H);
 *   - U = the upper Cholesky factor of H^-1 (H^-1 = U^T U), computed as
 *     U = J L^-1 J with J H J = L L^T (J reverses the order): one LAPACK dpotrf
 *     and one dtrtri; if the factorization fails, damp is multiplied by 10 (up
 *     to 4 times), then the matrix falls back to round-to-nearest;
 *   - lazy batches of `block` columns: within a batch, column j's error
 *     e = (w_j - q_j) / U_jj updates the batch's later columns at once
 *     (w_k -= e U_jk), the columns after the batch get one GEMM per batch.
 *
 * Grids, and where their parameters come from:
 *   - tern: QMoE's {lo, 0, hi} per row, lo/hi = bf16(min/max of the ORIGINAL
 *     row, with 0), fixed before GPTQ starts (qmoe-gptq.md §2.1). A weight
 *     maps to hi if w > zero_band * hi, to lo if w < zero_band * lo, else 0
 *     (zero_band 0.5 is QMoE's rule and qnt_tern.h's). With ec_lambda > 0 the
 *     rounding is entropy-constrained: the symbol minimising
 *       (w - q)^2 / (U_jj^2 * D * s_r^2) + ec_lambda * bits(q)
 *     wins, where D = mean diag(H) (dampened), s_r^2 = the original row's mean
 *     square, and bits(q) = -log2 p(q) under ec_p0 (the zero probability the
 *     coder will see; the two non-zero symbols share the rest equally): in
 *     effect a zero band that widens where GPTQ's compensation makes an error
 *     cheap (large U_jj) and narrows where it is dear. (Levels fitted to the
 *     rows instead of QMoE's min/max were tried: they clip the outliers, and
 *     GPTQ's error feedback then runs away: +67 % on moe25m at 1.3 b/w.)
 *   - int8: one scale per row from the original row; with qp->group, one per
 *     group, fitted (qnt_int8.h's rule) from the error-updated weights when
 *     GPTQ reaches the group's first column;
 *   - q8_0, q4_0, tq1_0, tq2_0: each block's scale is computed with ggml's own
 *     rule (qnt_ggml.h) from the error-updated weights when GPTQ reaches the
 *     block's first column; codes are then ggml's rounding of each weight,
 *     clamped to the code range (a later weight may have grown past the block's
 *     max). So the bytes are ordinary blocks that llama.cpp reads.
 *   With act_order the group/block scales are fitted on the original weights
 *   before GPTQ starts (GPTQ's "static groups"), since the columns of a block
 *   are no longer reached together.
 *   The lazy batch is widened to a multiple of the group/block length so that
 *   a group is fitted on fully updated weights.
 * Every grid decision uses the same float arithmetic as the round-to-nearest
 * quantizer of its encoding, so with an identity Hessian (no tokens) the
 * bytes equal qnt_quantize_rows' byte for byte.
 *
 * Numerics: H, U and the working copy of W are double. Rows are processed in
 * fixed chunks of QNT_GPTQ_ROW_CHUNK rows, OpenMP over chunks; the LAPACK
 * factorizations run on one thread. A row's arithmetic never depends on the
 * thread count, so the output bytes do not either.
 *
 * Kernels never allocate: callers pass scratch of qnt_gptq_scratch_bytes().
 * Must not be called from inside an OpenMP region. */
#ifndef QNT_GPTQ_H
#define QNT_GPTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"

#define QNT_GPTQ_ROW_CHUNK 32u
#define QNT_GPTQ_HCHUNK 256u     /* tokens converted to double per dsyrk call */

struct qnt_gptq_opts {
    double damp;        /* relative dampening (default 0.01) */
    size_t block;       /* lazy-batch width (default 128) */
    bool act_order;     /* columns by descending diag(H) */
    double zero_band;   /* tern: |w| < zero_band * level rounds to 0 (default 0.5, QMoE) */
    double ec_lambda;   /* tern: weight of the code length (0 = plain rounding) */
    double ec_p0;       /* tern: zero probability the code lengths assume (0 < p0 < 1) */
    bool imatrix_scales; /* q4_0: block scales by ggml's importance-matrix rule with diag(H) */
};

/*! qnt_gptq_opts_init() : the defaults above. */
void qnt_gptq_opts_init(struct qnt_gptq_opts *o);

/*! qnt_gptq_supported() : whether GPTQ can produce encoding dt. */
bool qnt_gptq_supported(enum sb_dtype dt);

/*! qnt_gptq_hessian_add() : H (cols x cols, row-major, double) += sum_t x_t x_t^T
 *  over the n rows of X (row t at X + t*ldx, cols floats). Only the upper
 *  triangle (j >= i) is updated. scratch: QNT_GPTQ_HCHUNK * cols doubles.
 *  Threads: BLAS's (OpenMP), split over outputs, so the sums do not depend on
 *  the thread count. */
void qnt_gptq_hessian_add(double *H, size_t cols, const float *X, size_t n, size_t ldx,
                          double *scratch);

/* Matrices whose kernel meets 8-bit activations (q8_0, q4_0: each token's
 * row rounded in blocks of 32 to code * amax / 127, qnt_q8mm_impl.h) compute
 * Q xt, not Q x. Fitting the weights to that (GPTQ with an asymmetric target,
 * as GPTAQ does for the activations' own rounding): the least-squares
 * W' = W + W D (H + l I)^-1 best reproduces W x from xt, and since its residual
 * is orthogonal to xt, ||W X - Q Xt||^2 = ||W X - W' Xt||^2 + ||(W' - Q) Xt||^2:
 * GPTQ of W' on H minimizes the error the kernel makes. */

/*! qnt_gptq_hessian_add_q8x() : over the n rows x of X (row t at X + t*ldx, cols
 *  floats, a multiple of 32), xt the kernel's rounding of x and e = x - xt:
 *  H += sum xt xt^T and E2 += sum e e^T (upper triangles; E2 may be NULL),
 *  D += sum e xt^T (cols x cols, row-major, full: D[i][j] = sum e_i xt_j).
 *  scratch: (2 * QNT_GPTQ_HCHUNK + 1) * cols doubles. Threads: BLAS's, split
 *  over outputs (sums independent of the thread count). */
void qnt_gptq_hessian_add_q8x(double *H, double *D, double *E2, size_t cols, const float *X,
                              size_t n, size_t ldx, double *scratch);

/*! qnt_gptq_asym_scratch_bytes() : scratch qnt_gptq_asym_correct needs. */
size_t qnt_gptq_asym_scratch_bytes(size_t rows, size_t cols);

/*! qnt_gptq_asym_correct() : W (rows x cols f32) += W D (H + l I)^-1 with l =
 *  damp * mean(diag H) (more, tenfold at a time, if H + l I cannot be
 *  factored; a dead column's diagonal counts 1), H and D as summed by
 *  qnt_gptq_hessian_add_q8x. It runs on one thread (BLAS and LAPACK).
 *  @return SB_OK; SB_EINVAL (W unchanged) when H is empty, cannot be factored
 *  or the result is not finite. */
int qnt_gptq_asym_correct(float *W, size_t rows, size_t cols, const double *H, const double *D,
                          double damp, double *scratch);

struct qnt_gptq_stats {
    double err;          /* tr((W - Q) H (W - Q)^T), H as given (undamped), = the output error */
    double ref;          /* tr(W H W^T): the output energy (err / ref is relative) */
    double damp;         /* the relative dampening finally used */
    size_t dead_cols;    /* columns whose input was always 0 */
    size_t zeros;        /* weights that became exactly 0 */
    bool rtn;            /* round-to-nearest: no Hessian given, or every factorization failed */
};

/*! qnt_gptq_scratch_bytes() : scratch qnt_gptq_quantize needs for (dt, rows, cols, o). */
size_t qnt_gptq_scratch_bytes(enum sb_dtype dt, const struct sb_qparams *qp, size_t rows,
                              size_t cols, const struct qnt_gptq_opts *o);

/*! qnt_gptq_quantize() : quantize W (rows x cols f32, row-major) to encoding dt
 *  with Hessian H (cols x cols, upper triangle used; the sum of x x^T over the
 *  calibration tokens, any positive scale) and write the whole blob of dt
 *  (sb_dtype_nbytes bytes; qp: int8 group and scale dtype) to dst.
 *  H == NULL: round-to-nearest (identity Hessian). st may be NULL.
 *  @return SB_OK; SB_EINVAL for an encoding GPTQ does not produce or a row not
 *  a block multiple; SB_EFORMAT if W holds a non-finite value. */
int qnt_gptq_quantize(enum sb_dtype dt, const struct sb_qparams *qp, const float *W, size_t rows,
                      size_t cols, const double *H, const struct qnt_gptq_opts *o, void *scratch,
                      void *dst, struct qnt_gptq_stats *st);

/*! qnt_gptq_output_error() : tr((W - Q) H (W - Q)^T) for two f32 matrices and
 *  H as in qnt_gptq_quantize (upper triangle). scratch: rows * cols * 2 doubles.
 *  Threads: BLAS's. */
double qnt_gptq_output_error(const double *H, const float *W, const float *Q, size_t rows,
                             size_t cols, double *scratch);

/*! qnt_gptq_output_error_q8x() : sum over the tokens of ||W x - Q xt||^2 (H, D,
 *  E2 of qnt_gptq_hessian_add_q8x): the output error of Q computing from the
 *  rounded activations against W from the exact ones. scratch: rows * cols * 2
 *  doubles. Threads: BLAS's. */
double qnt_gptq_output_error_q8x(const double *H, const double *D, const double *E2, const float *W,
                                 const float *Q, size_t rows, size_t cols, double *scratch);

#endif
