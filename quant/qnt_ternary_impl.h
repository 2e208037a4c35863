/* qnt_ternary_impl.h: the exact row sum every ternary matvec uses (tern,
 * sub1, sub1-qmoe; private to quant/). Knows x and the two levels, nothing of
 * any encoding.
 *
 * Why: the three encodings hold bit-identical weights, so their matvecs must
 * give bit-identical y, whatever the kernel's lane layout, ISA or thread
 * count. Float sums depend on their order; integer sums do not. So:
 *
 *   1. Once per call, x goes to fixed point with one power-of-two scale 2^s:
 *      s = QNT_TFX_BITS - e where max|x| = m * 2^e, m in [0.5, 1) (frexp), so
 *      max|x| * 2^s < 2^QNT_TFX_BITS. QNT_TFX_BITS is 40, less for rows longer
 *      than 2^23 weights (63 - ceil(log2 cols)), so a row's sum of |X| stays
 *      under 2^63. X[j] = round_half_even(x[j] * 2^s): x[j] * 2^s is exact in
 *      double (a float times a power of two, s in [-88, 188]), the rounding is
 *      done by adding 1.5 * 2^52 (exact for |v| < 2^51; the default rounding
 *      mode, which we never change), so every kernel, scalar or SIMD, gets
 *      the same X[j] from x[j] on the fly; no buffer is needed.
 *   2. Per row, S_lo = sum of X[j] at symbol 1, S_hi = sum of X[j] at symbol 2,
 *      in 64-bit integers (exact, so any order and any split gives the same).
 *   3. y[r] = qnt_tfx_out(lo, hi, S_lo, S_hi): (float)(lo * (S_lo * 2^-s) +
 *      hi * (S_hi * 2^-s)) in double, a class with S == 0 adding exactly 0
 *      (so a level the quantizer rounded to inf with no weight on it, or an
 *      all-zero row, gives 0, not inf * 0). It is one out-of-line function in
 *      qnt_tern.c, compiled without FMA, so no kernel's target attributes can
 *      contract it differently.
 *   4. If any x[j] is inf or NaN, every y of the call is NaN (QNT_TFX_NAN).
 *
 * The cost over a float sum is small: the sparse kernels (sub1, sub1-qmoe)
 * convert only the x they gather; the dense tern kernel converts x blocks once
 * per tile of rows into a stack buffer (qnt_tern.c). Thread safety: all pure. */
#ifndef QNT_TERNARY_IMPL_H
#define QNT_TERNARY_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QNT_TFX_BITS 40
#define QNT_TFX_MAGIC 0x1.8p52                   /* 1.5 * 2^52: adding it rounds to an integer */
#define QNT_TFX_MAGIC_BITS 0x4338000000000000ll  /* its IEEE bits */

struct qnt_tfx {
    double scale;   /* 2^s */
    double inv;     /* 2^-s */
    int finite;     /* 0: some x[j] is inf or NaN; the call writes QNT_TFX_NAN everywhere */
};

/*! qnt_tfx_amax() : max over x[0 .. cols-1] of the bits of |x| (0x7fffffff
 *  masked): |x|'s order for numbers, >= 0x7f800000 exactly for inf and NaN.
 *  The AVX2 kernel where the CPU has it; qnt_tfx_amax_ref the scalar loop. */
uint32_t qnt_tfx_amax(const float *x, size_t cols);
uint32_t qnt_tfx_amax_ref(const float *x, size_t cols);

/*! qnt_tfx_init() : the scale for x[0 .. cols-1] (qnt_tern.c). */
void qnt_tfx_init(struct qnt_tfx *fx, const float *x, size_t cols);

/*! qnt_tfx_out() : y of one row from its levels (bf16 bits) and its two exact
 *  sums (qnt_tern.c; out of line on purpose, see 3. above). */
float qnt_tfx_out(uint16_t lo, uint16_t hi, int64_t s_lo, int64_t s_hi, const struct qnt_tfx *fx);

/*! qnt_tfx_nan() : fill y[0 .. rows-1] with the quiet NaN of a non-finite x. */
void qnt_tfx_nan(float *y, size_t rows);

/*! qnt_tern_matvec_kernel() : qnt_tern_matvec with a chosen kernel: 1
 *  portable, 2 AVX2, 3 AVX-512 (the best the CPU has, up to that). For tests:
 *  every kernel must give the same bits. */
void qnt_tern_matvec_kernel(int kernel, const void *restrict w, size_t rows, size_t cols,
                            const float *restrict x, float *restrict y);
/*! qnt_tern_quantize_rows_kernel() : qnt_tern_quantize_rows with the row
 *  kernel chosen: 0 the best this CPU has, 1 portable, 2 AVX2 at most. For
 *  tests. */
void qnt_tern_quantize_rows_kernel(int kernel, const float *restrict x, size_t rows, size_t cols,
                                   void *restrict dst);
/*! qnt_tern_matmul_kernel() : qnt_tern_matmul with the batched kernel
 *  chosen: 0 the best this CPU has, 1 portable, 2 the AVX2 sums (where the
 *  CPU has AVX2; else portable). For tests. */
void qnt_tern_matmul_kernel(int kernel, const void *restrict w, size_t rows, size_t cols,
                            size_t row0, size_t nrows, const float *restrict X, size_t n,
                            float *restrict Y, void *ws, size_t ws_bytes);
/*! qnt_sub1_matmul_kernel() : qnt_sub1_matmul with the kernels chosen: 0
 *  the best this CPU has, 1 portable decode and sums, 2 the AVX2 decode and
 *  sums (where the CPU has AVX2). For tests. */
void qnt_sub1_matmul_kernel(int kernel, const void *restrict w, uint64_t nbytes, size_t rows,
                            size_t cols, size_t row0, size_t nrows, const float *restrict X,
                            size_t n, float *restrict Y, void *ws, size_t ws_bytes);
/*! qnt_qmoe_matmul_kernel() : qnt_qmoe_matmul with the sums' kernel chosen
 *  (0 best, 1 portable, 2 AVX2). For tests. */
void qnt_qmoe_matmul_kernel(int kernel, const void *restrict w, uint64_t nbytes, size_t rows,
                            size_t cols, size_t row0, size_t nrows, const float *restrict X,
                            size_t n, float *restrict Y, void *ws, size_t ws_bytes);
/*! qnt_sub1_set_simd_max() : tests only: the sub1 decoders (matvec, batched
 *  emit, decode to f32) use at most 2 AVX-512 (the default), 1 AVX2, 0 the
 *  portable code, as far as the CPU has them. Not thread-safe. */
void qnt_sub1_set_simd_max(int level);
/*! qnt_sub1_matvec_generic() : qnt_sub1_matvec through the portable walker
 *  only (no AVX-512 or AVX2 lane kernel). For tests. */
void qnt_sub1_matvec_generic(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols,
                             const float *restrict x, float *restrict y);

/*! qnt_tfx_x() : X = round_half_even(x * 2^s) as int64 (|X| < 2^40). */
static inline int64_t qnt_tfx_x(float x, double scale)
{
    double t = (double)x * scale + QNT_TFX_MAGIC;   /* the product is exact: contraction is harmless */
    int64_t b;
    memcpy(&b, &t, 8);
    return b - QNT_TFX_MAGIC_BITS;
}

#endif
