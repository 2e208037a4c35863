/* qnt_bf16mm_impl.h: bf16 weights times bf16 activations with AVX512-BF16
 * (quant/ and its tests only). What llama.cpp does for bf16 weights: each
 * token's activations are rounded to bf16 once per call (qnt_f32_to_bf16:
 * nearest, ties to even), and vdpbf16ps multiplies pairs of bf16 into f32
 * lanes: twice the multiply-adds of an f32 FMA an instruction, and no
 * widening of the weights.
 *
 * The sum of record for y = W[r] . x (the scalar reference computes it, the
 * kernel reproduces it bit for bit at any n, row range and thread count):
 *   xb = bf16(x); acc[l] = +0 for lanes l = 0..15
 *   for block b (32 columns) of the row, ascending, for every lane l:
 *     acc[l] = step(acc[l], w[32b + 2l + 1], xb[32b + 2l + 1])
 *     acc[l] = step(acc[l], w[32b + 2l], xb[32b + 2l])
 *   y = tree(acc): a[i] = acc[i] + acc[i+8]; b[i] = a[i] + a[i+4];
 *       y = (b[0] + b[2]) + (b[1] + b[3])         (plain float adds)
 *   y = the default quiet NaN when it is a NaN (payloads are not promised)
 * where step(c, u, v) is vdpbf16ps's operation on one pair (Intel's
 * definition, checked against this machine's instruction): inputs that are
 * subnormal count as zero (c included), the exact u * v + c rounded once to
 * nearest even, and a result that is tiny (below 2^-126 in magnitude after
 * rounding to 24 bits with an unbounded exponent) becomes a zero of its sign.
 * The odd element of each pair is added first.
 *
 * Against the exact dot of W with x the result errs by the activations'
 * rounding, at most sum |w| |x| 2^-9 (bf16 keeps 8 significant bits), plus
 * f32 rounding of a sum; the tests check that bound and the exact reference. */
#ifndef QNT_BF16MM_IMPL_H
#define QNT_BF16MM_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define QNT_BF16MM_QK 32   /* columns a step of every lane; cols must be a multiple */

struct qnt_bf16mm_args {
    const uint16_t *w;   /* the tensor: rows of cols bf16 */
    size_t cols;
    size_t row0, nrows;  /* compute rows row0 .. row0+nrows-1 */
    const uint16_t *x;   /* [n][cols] bf16 activations */
    size_t n;
    float *Y;            /* [n, nrows] */
    int threads;         /* 0: OpenMP over row blocks; 1: this thread only */
};

enum qnt_bf16mm_kernel { QNT_BF16MM_REF = 0, QNT_BF16MM_AVX512BF16 };

/*! qnt_bf16dp_step_ref() : step(c, u, v) above. */
float qnt_bf16dp_step_ref(float c, uint16_t u, uint16_t v);

void qnt_bf16mm_scalar(const struct qnt_bf16mm_args *a);
#if defined(__x86_64__) || defined(__i386__)
#define QNT_BF16MM_X86 1
void qnt_bf16mm_avx512bf16(const struct qnt_bf16mm_args *a);
#endif

/*! qnt_bf16mm_rows() : Y[n, nrows] = X[n, cols] W[row0 .. row0+nrows-1]^T
 *  for the [rows, cols] bf16 tensor w (cols a multiple of 32), through the
 *  given kernel (QNT_BF16MM_REF: the scalar reference, one thread).
 *  @return 0, or -1 when this CPU lacks the kernel (nothing done). Allocates
 *  the rounded activations; when that fails, goes token by token with them
 *  on the stack (same bits), or, past 16384 columns, writes NaN. */
int qnt_bf16mm_rows(int kernel, const void *w, size_t cols, size_t row0, size_t nrows,
                    const float *X, size_t n, float *Y);

/*! qnt_bf16mm_available() : whether this CPU runs the AVX512-BF16 kernel
 *  (and the reference kernels are not forced). */
int qnt_bf16mm_available(void);

#endif
