/* qnt_q8mm_impl.h: q8_0 and q4_0 weights times 8-bit activations (quant/
 * and its tests only). The way ggml's vec_dot does it: each token's
 * activations are quantized once per call to blocks of 32 int8 codes with an
 * f32 scale (qnt_q8x_quantize), and a weight block meets an activation block
 * in integer multiply-adds (AVX512-VNNI vpdpbusd, AVX-512BW / AVX2
 * vpmaddubsw + vpmaddwd: exact, so every instruction set has the same
 * integers), then in one float fused multiply-add.
 *
 * The sum of record for y = W[r] . x (what the scalar reference computes and
 * every kernel reproduces bit for bit, at any n, row range and thread count):
 *   acc[0..15] = 0
 *   for block b (32 columns) of the row, ascending:
 *     P  = sum of wq[e] * xq[e] over the block's 32    (exact int)
 *     dd = dw_b * dx_b                                  (float product, rounded)
 *     acc[b % 16] = fmaf(dd, (float)P, acc[b % 16])
 *   s[l] = acc[l] + acc[l + 8]        (l < 8)
 *   t[l] = s[l] + s[l + 4]            (l < 4)
 *   u[l] = t[l] + t[l + 2]            (l < 2)
 *   y = u[0] + u[1]
 * with wq the weight's signed codes (q8_0: qs; q4_0: nibble - 8) and dw its
 * fp16 scale: a block's integer sum, then its scale (ggml's vec_dot order
 * within a block), 16 chains by block residue. Integer sums are exact in any
 * order, so a kernel may form P as it likes. One token puts a row's 16
 * consecutive blocks in the 16 lanes of a register (the chains are its
 * lanes, the tail its horizontal sum); the batched kernel puts 16 rows in
 * the lanes and keeps the 16 chains in 16 registers (qnt_q8mm_x86.c).
 *
 * Activation blocks: amax = max |x| over the 32; dx = amax / 127; codes
 * round-to-nearest-even(x * (1 / dx)) (0 when dx = 0), in [-127, 127]. A
 * block holding a NaN or an infinity gets dx = NaN and codes 0, so every
 * output it meets is NaN (as in the f32 kernels). Against the exact dot of
 * the stored weights with x, y errs by at most sum_b |dw_b| dx_b / 2 *
 * sum_e |wq_e| (the activation rounding) plus float rounding (the tests
 * check 1e-5 of sum |w||x| on top). */
#ifndef QNT_Q8MM_IMPL_H
#define QNT_Q8MM_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "qnt_type.h"

#define QNT_Q8MM_QK 32

/* Quantized activations of n tokens: codes [n][cols], and each block's scale
 * repeated 8 times, [n][cols / 32 * 8] (one vector load gives a block's
 * lanes their scale). */
struct qnt_q8x {
    int8_t *q;
    float *d8;
    float *dx;     /* [n][cols / 32]: each block's scale once */
    int32_t *ks;   /* [n][cols / 32]: -K times the block's sum of codes, K = 8
                      for q4_0 and 128 for q8_0 (for kernels that take the
                      weights' codes plus K, unsigned) */
};

/*! qnt_q8x_quantize_ref() : one token's cols (a multiple of 32) activations x
 *  into q[cols] and d8[cols / 4] (the rule above). */
void qnt_q8x_quantize_ref(const float *restrict x, size_t cols, int8_t *restrict q,
                          float *restrict d8);
/* The same bits, through the fastest kernel the CPU probe allows. */
void qnt_q8x_quantize(const float *restrict x, size_t cols, int8_t *restrict q,
                      float *restrict d8);

struct qnt_q8mm_args {
    const uint8_t *w;   /* the tensor's bytes: rows of cols / 32 blocks */
    int q4;             /* 0: q8_0 blocks (34 bytes), 1: q4_0 (18 bytes) */
    size_t row_bytes;
    size_t cols, nb;    /* nb = cols / 32 */
    size_t rows;        /* the tensor's */
    size_t row0, nrows; /* compute rows row0 .. row0+nrows-1 */
    struct qnt_q8x x;   /* n tokens */
    size_t n;
    float *Y;           /* [n, nrows] */
    int threads;        /* 0: OpenMP over row blocks; 1: this thread only */
};

enum qnt_q8mm_kernel { QNT_Q8MM_REF = 0, QNT_Q8MM_AVX2, QNT_Q8MM_VNNI };

void qnt_q8mm_scalar(const struct qnt_q8mm_args *a);
#if defined(__x86_64__) || defined(__i386__)
#define QNT_Q8MM_X86 1
void qnt_q8mm_avx2(const struct qnt_q8mm_args *a);
void qnt_q8mm_vnni(const struct qnt_q8mm_args *a);
void qnt_q8mm_vnni_packed(const struct qnt_q8mm_args *a);
void qnt_q8mm_avx2_packed(const struct qnt_q8mm_args *a);
void qnt_q8x_quantize_avx2(const float *restrict x, size_t cols, int8_t *restrict q,
                           float *restrict d8);
void qnt_q8x_quantize_avx512(const float *restrict x, size_t cols, int8_t *restrict q,
                             float *restrict d8);
#endif

/* The driver every kernel shares: OpenMP over blocks of 16 rows (static;
 * one thread when a->threads), inside them tiles of up to T tokens and
 * groups of R rows (R1 rows when the call has one token: a row at a time
 * reads W in address order, which the hardware prefetcher follows best);
 * micro computes out[i][j] = row wr[i] . token j for i < nr, j < nt (short
 * groups repeat their last row, and are not written). */
typedef void qnt_q8mm_micro_fn(const struct qnt_q8mm_args *a, const uint8_t *const wr[4],
                               const int8_t *const xq[4], const float *const xd[4], int nr,
                               int nt, float out[4][4]);
void qnt_q8mm_drive(const struct qnt_q8mm_args *a, int R, int R1, int T,
                    qnt_q8mm_micro_fn *micro);
/* One block of rb <= 16 output rows from r0 (the driver's loop body): row i
 * of the block at w + i * row_bytes, in whatever layout micro reads (the
 * AVX2 kernel's unpacked q4_0 tile). */
void qnt_q8mm_drive_rows(const struct qnt_q8mm_args *a, const uint8_t *w, size_t row_bytes,
                         size_t r0, size_t rb, int R, int T, qnt_q8mm_micro_fn *micro);

/*! qnt_q8mm_rows() : qnt_matmul_rows for q8_0 (q4 = 0) or q4_0 (q4 = 1)
 *  through the given kernel (QNT_Q8MM_REF: the scalar reference, one
 *  thread). @return 0, or -1 when this CPU lacks the kernel (nothing done).
 *  Allocates the quantized activations; when that fails, goes token by
 *  token with them on the stack (same bits), or, past 16384 columns, writes
 *  NaN. */
int qnt_q8mm_rows(int kernel, int q4, const void *w, size_t rows, size_t cols, size_t row0,
                  size_t nrows, const float *X, size_t n, float *Y);

/* Packed q8_0 / q4_0 (qnt_q8mm_pack): rows in tiles of 16, each tile block
 * by block: the codes in groups of 4 columns, [group][row][4 bytes] (q4_0:
 * 4 dwords of raw nibble bytes a row, [dword][row][4]; q8_0: the codes +
 * 128), then the 16 rows' fp16 scales. The same bytes a block as the
 * format's (18 x 16 and 34 x 16), rows padded to 16 with zero codes and
 * scales. The kernels on it keep the sum of record above, bit for bit. */
#define QNT_Q8MM_PK4 (256 + 32)
#define QNT_Q8MM_PK8 (512 + 32)

/*! qnt_q8mm_packed_bytes() : bytes of nrows x cols packed. */
size_t qnt_q8mm_packed_bytes(int q4, size_t nrows, size_t cols);

/*! qnt_q8mm_pack() : rows w[0 .. nrows) (row_bytes apart) into out
 *  (qnt_q8mm_packed_bytes). @return 0, or -1 when this CPU has no kernel for
 *  packed weights (nothing written). */
int qnt_q8mm_pack(int q4, const void *w, size_t row_bytes, size_t nrows, size_t cols, void *out);

/*! qnt_q8mm_pack_available() : whether this CPU has a kernel for packed
 *  rows of cols columns (AVX512-VNNI or AVX2). */
int qnt_q8mm_pack_available(size_t cols);

/* The layout itself, on any CPU (the tests pack for each kernel). */
void qnt_q8mm_pack_tiles(int q4, const uint8_t *w, size_t row_bytes, size_t nrows, size_t cols,
                         uint8_t *out);

/*! qnt_q8mm_packed_rows() : Y[n, nrows] = packed rows . X, the same bits as
 *  qnt_q8mm_rows on the rows it was packed from. @return 0, or -1 when this
 *  CPU has no kernel for packed weights (nothing done). */
int qnt_q8mm_packed_rows(int q4, const void *packed, size_t nrows, size_t cols, const float *X,
                         size_t n, float *Y);
/* The same through the given kernel (QNT_Q8MM_VNNI or QNT_Q8MM_AVX2); -1
 * where this CPU lacks it. */
int qnt_q8mm_packed_rows_k(int kernel, int q4, const void *packed, size_t nrows, size_t cols,
                           const float *X, size_t n, float *Y);

/*! qnt_q8mm_best() : the kernel the fast path uses on this CPU. */
int qnt_q8mm_best(void);

/* The encoding table's batched kernels (qnt_type.h) for q8_0 and q4_0. */
qnt_matmul_fn qnt_q8_0_matmul, qnt_q8_0_matmul_ref, qnt_q4_0_matmul, qnt_q4_0_matmul_ref;

#endif
