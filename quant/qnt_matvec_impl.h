/* qnt_matvec_impl.h: the matvec kernels' private parts (quant/ and its tests only).
 *
 * The dense fast path is one blocked kernel, qnt_mm_<isa>(), written once in
 * qnt_matvec_tile_impl.h and compiled per instruction set (scalar lanes in
 * qnt_matvec.c, AVX2+FMA+F16C and AVX-512F in qnt_matvec_x86.c). Summation
 * order of one output y[t][r] (the same for every n, token position, row
 * range and thread count, so matvec == matmul row, bit for bit):
 *   the row is cut into chunks of QNT_MM_CH elements (the last may be short)
 *   over its first cols - cols % VL elements; each chunk is summed by an
 *   FMA chain per lane (lane l takes elements k with k % VL == l, ascending)
 *   starting from 0, and the chunk's lane vector is added to a running lane
 *   vector; the lanes are then summed in a fixed tree and the cols % VL tail
 *   elements added one by one, ascending.
 * W elements are the exact decoded values (loaded and converted in registers,
 * or decoded once into f32 scratch when a row tile serves many tokens; both
 * give the same floats), so the result depends on W, x and the ISA only. */
#ifndef QNT_MATVEC_IMPL_H
#define QNT_MATVEC_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "sb_cpu.h"
#include "sb_dtype.h"

/* ---- the blocked dense kernel ------------------------------------------- */

#define QNT_MM_CH 256   /* elements per chunk: a multiple of every block size and VL */
#define QNT_MM_RB 16    /* rows per parallel block of the blocked kernel */
/* Bytes of decoded rows each thread of the blocked kernel holds while more
 * than 4 tokens meet a tensor that is not f32 (QNT_MM_RB rows of colsv floats) */
#define QNT_MM_ROWS_BYTES(colsv) ((size_t)QNT_MM_RB * (colsv) * sizeof(float))

/* How W elements are read. The direct encodings are converted in registers;
 * QNT_MM_DECODE goes through args.decode into f32 scratch. */
enum qnt_mm_enc {
    QNT_MM_F32 = 0,
    QNT_MM_BF16,
    QNT_MM_F16,
    QNT_MM_I8_F32,   /* int8 codes, f32 scale per group; group % 16 == 0 */
    QNT_MM_I8_F16,   /* int8 codes, f16 scale per group; group % 16 == 0 */
    QNT_MM_DECODE,
};

struct qnt_mm_args;
/* Row r (of the whole tensor), elements j0 .. j0+len-1, to f32 (exact).
 * j0 is a multiple of QNT_MM_CH or the start of the cols % VL tail. */
typedef void (*qnt_mm_decode_fn)(const struct qnt_mm_args *a, size_t r, size_t j0, size_t len,
                                 float *out);

struct qnt_mm_args {
    enum qnt_mm_enc enc;
    const uint8_t *w;          /* the tensor's bytes */
    size_t row_bytes;          /* direct encodings: bytes per row of codes */
    const uint8_t *scales;     /* int8: first scale of row 0 */
    size_t scale_row_bytes;    /* int8: bytes of scales per row */
    size_t group;              /* int8: group width */
    size_t rows, cols;         /* W is [rows, cols] */
    size_t row0, nrows;        /* compute rows row0 .. row0+nrows-1 */
    const float *X;            /* [n, cols] */
    size_t n;
    float *Y;                  /* [n, nrows] */
    qnt_mm_decode_fn decode;   /* every encoding (tails, QNT_MM_DECODE) */
    enum sb_dtype dt;          /* for decode */
    const struct sb_qparams *qp;
};

void qnt_mm_scalar(const struct qnt_mm_args *a);

#if defined(__x86_64__) || defined(__i386__)
#define QNT_MATVEC_HAVE_X86 1
#define QNT_MATVEC_AVX2_FEATURES (SB_CPU_AVX2 | SB_CPU_FMA | SB_CPU_F16C)
#define QNT_MATVEC_AVX512_FEATURES (QNT_MATVEC_AVX2_FEATURES | SB_CPU_AVX512F)
void qnt_mm_avx2(const struct qnt_mm_args *a);
void qnt_mm_avx512(const struct qnt_mm_args *a);
#endif

/*! qnt_matvec_set_isa() : tests only. Make the fast path use "scalar", "avx2",
 *  "avx512" or "avx512bf16" (AVX-512, bf16 weights through qnt_bf16mm_impl.h)
 *  (NULL: back to the automatic pick). @return 0, or -1 when
 *  this CPU lacks it (nothing changed). Not thread-safe. */
int qnt_matvec_set_isa(const char *name);

#endif
