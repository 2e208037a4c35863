/* qnt_bf16mm_x86.c: the AVX512-BF16 kernel of qnt_bf16mm_impl.h, the scalar
 * reference's sum of record bit for bit: a register holds a 32-column block
 * of a row (16 lanes of pairs), vdpbf16ps adds a weight block times an
 * activation block into a row x token accumulator. Tiles of 4 rows x up to 4
 * tokens; one token goes a row at a time (W in address order, which the
 * hardware prefetcher follows best). Compiled without -march: the function
 * carries its target attribute and is called only after the CPU probe. */
#include "qnt_bf16mm_impl.h"

#ifdef QNT_BF16MM_X86
#include <immintrin.h>
#include <math.h>

#include "qnt_hsum_x86.h"

#define T_BF16 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512bf16")))

/* the reference's tree, then its NaN */
static inline __attribute__((always_inline)) T_BF16 float bf_hsum(__m512 v)
{
    const float y = qnt_hsum16(v);
    return isnan(y) ? NAN : y;
}

static inline __attribute__((always_inline)) T_BF16 __m512bh bf_load(const uint16_t *p)
{
    return (__m512bh)_mm512_loadu_si512((const void *)p);
}

/* out[i][j] = row wr[i] . token xr[j], i < NR, j < TB, over all columns */
static inline __attribute__((always_inline)) T_BF16 void
bf_micro(const uint16_t *const wr[4], const uint16_t *const xr[4], size_t cols, const int NR,
         const int TB, float out[4][4])
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < cols; k += QNT_BF16MM_QK) {
        __m512bh xv[4];
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            xv[j] = bf_load(xr[j] + k);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512bh wv = bf_load(wr[i] + k);
#pragma GCC unroll 4
            for (int j = 0; j < TB; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < TB; j++)
            out[i][j] = bf_hsum(acc[i][j]);
}

/* One row against one token: bf_micro's NR = TB = 1 chain, the sum returned
 * in a register. Through bf_micro's out[][] the sum went to the stack and
 * back before Y, and that store, at an address that moves with the stack,
 * slowed the W stream whenever the loads behind it matched it modulo 4 KiB
 * (library kernel alone, the 270M llama's shapes, best of 15, by the
 * process's stack offset: 23-32 GB/s). */
static inline __attribute__((always_inline)) T_BF16 float
bf_row1(const uint16_t *wr, const uint16_t *xr, size_t cols)
{
    __m512 acc = _mm512_setzero_ps();
    for (size_t k = 0; k < cols; k += QNT_BF16MM_QK)
        acc = _mm512_dpbf16_ps(acc, bf_load(wr + k), bf_load(xr + k));
    return bf_hsum(acc);
}

T_BF16 void qnt_bf16mm_avx512bf16(const struct qnt_bf16mm_args *a)
{
    const size_t nrows = a->nrows, n = a->n, cols = a->cols;
    const long nblk = (long)((nrows + 15) / 16);
#pragma omp parallel for schedule(static) if (a->threads == 0)
    for (long blk = 0; blk < nblk; blk++) {
        const size_t r0 = (size_t)blk * 16, rb = nrows - r0 < 16 ? nrows - r0 : 16;
        if (n == 1) {
            for (size_t i = 0; i < rb; i++)
                a->Y[r0 + i] = bf_row1(a->w + (a->row0 + r0 + i) * cols, a->x, cols);
            continue;
        }
        const size_t R = 4;
        for (size_t t0 = 0; t0 < n; t0 += 4) {
            const size_t nt = n - t0 < 4 ? n - t0 : 4;
            const uint16_t *xr[4];
            for (size_t q = 0; q < 4; q++)
                xr[q] = a->x + (t0 + (q < nt ? q : nt - 1)) * cols;
            for (size_t i0 = 0; i0 < rb; i0 += R) {
                const size_t nr = rb - i0 < R ? rb - i0 : R;
                const uint16_t *wr[4];
                for (size_t q = 0; q < 4; q++)
                    wr[q] = a->w + (a->row0 + r0 + i0 + (q < nr ? q : nr - 1)) * cols;
                float out[4][4];
                switch ((int)nt) {
                case 1: bf_micro(wr, xr, cols, 4, 1, out); break;
                case 2: bf_micro(wr, xr, cols, 4, 2, out); break;
                case 3: bf_micro(wr, xr, cols, 4, 3, out); break;
                default: bf_micro(wr, xr, cols, 4, 4, out); break;
                }
                for (size_t i = 0; i < nr; i++)
                    for (size_t j = 0; j < nt; j++)
                        a->Y[(t0 + j) * nrows + r0 + i0 + i] = out[i][j];
            }
        }
    }
}

#endif
