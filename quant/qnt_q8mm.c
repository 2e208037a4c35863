/* qnt_q8mm.c: q8_0 / q4_0 weights times 8-bit activations (qnt_q8mm_impl.h):
 * the activation quantizer, the scalar reference of the sum of record, the
 * row-block driver every kernel shares, and the dispatch the encoding table
 * points at. */
#include "qnt_q8mm_impl.h"

#include <math.h>
#include <string.h>

#include "qnt_cast.h"
#include "qnt_type.h"
#include "sb_alloc.h"
#include "sb_cpu.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void qnt_q8x_quantize_ref(const float *restrict x, size_t cols, int8_t *restrict q,
                          float *restrict d8)
{
    for (size_t b = 0; b < cols / QNT_Q8MM_QK; b++) {
        const float *xb = x + b * QNT_Q8MM_QK;
        float amax = 0.0f;
        int finite = 1;
        for (int e = 0; e < QNT_Q8MM_QK; e++) {
            const float v = fabsf(xb[e]);
            finite &= v <= 3.4028235e38f;   /* false for NaN and inf */
            amax = v > amax ? v : amax;
        }
        float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int e = 0; e < QNT_Q8MM_QK; e++)
            q[b * QNT_Q8MM_QK + (size_t)e] = finite ? (int8_t)lrintf(xb[e] * id) : 0;
        if (!finite)
            d = NAN;
        for (int l = 0; l < 8; l++)
            d8[b * 8 + (size_t)l] = d;
    }
}

void qnt_q8x_quantize(const float *restrict x, size_t cols, int8_t *restrict q,
                      float *restrict d8)
{
#ifdef QNT_Q8MM_X86
    if (sb_cpu_has(SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL | SB_CPU_AVX512DQ)) {
        qnt_q8x_quantize_avx512(x, cols, q, d8);
        return;
    }
    if (sb_cpu_has(SB_CPU_AVX2)) {
        qnt_q8x_quantize_avx2(x, cols, q, d8);
        return;
    }
#endif
    qnt_q8x_quantize_ref(x, cols, q, d8);
}

/* ---- the scalar reference: one row, one token, the sum of record ---------- */

static float q8mm_dot_ref(const struct qnt_q8mm_args *a, size_t r, size_t t)
{
    const uint8_t *row = a->w + r * a->row_bytes;
    const int8_t *xq = a->x.q + t * a->cols;
    const float *xd = a->x.d8 + t * a->nb * 8;
    float acc[16] = { 0 };
    for (size_t b = 0; b < a->nb; b++) {
        const uint8_t *blk = row + b * (a->q4 ? 18 : 34);
        int32_t p = 0;
        for (int e = 0; e < QNT_Q8MM_QK; e++) {
            const int32_t wq = a->q4 ? ((blk[2 + e % 16] >> (e < 16 ? 0 : 4)) & 15) - 8
                                     : (int8_t)blk[2 + e];
            p += wq * xq[b * QNT_Q8MM_QK + (size_t)e];
        }
        const float dd = qnt_f16_to_f32_ref((uint16_t)(blk[0] | blk[1] << 8)) * xd[b * 8];
        acc[b % 16] = fmaf(dd, (float)p, acc[b % 16]);
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] = acc[l] + acc[l + w];
    return acc[0];
}

void qnt_q8mm_scalar(const struct qnt_q8mm_args *a)
{
    const long nr = (long)a->nrows;
#pragma omp parallel for schedule(static) if (a->threads == 0)
    for (long i = 0; i < nr; i++)
        for (size_t t = 0; t < a->n; t++)
            a->Y[t * a->nrows + (size_t)i] = q8mm_dot_ref(a, a->row0 + (size_t)i, t);
}

void qnt_q8mm_drive_rows(const struct qnt_q8mm_args *a, const uint8_t *w, size_t row_bytes,
                         size_t r0, size_t rb, int R, int T, qnt_q8mm_micro_fn *micro)
{
    const size_t nrows = a->nrows, n = a->n;
    for (size_t t0 = 0; t0 < n; t0 += (size_t)T) {
        const size_t nt = n - t0 < (size_t)T ? n - t0 : (size_t)T;
        const int8_t *xq[4];
        const float *xd[4];
        for (size_t q = 0; q < 4; q++) {
            const size_t t = t0 + (q < nt ? q : nt - 1);
            xq[q] = a->x.q + t * a->cols;
            xd[q] = a->x.d8 + t * a->nb * 8;
        }
        for (size_t i0 = 0; i0 < rb; i0 += (size_t)R) {
            const size_t nr = rb - i0 < (size_t)R ? rb - i0 : (size_t)R;
            const uint8_t *wr[4];
            for (size_t q = 0; q < 4; q++)
                wr[q] = w + (i0 + (q < nr ? q : nr - 1)) * row_bytes;
            float out[4][4];
            micro(a, wr, xq, xd, (int)nr, (int)nt, out);
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < nt; j++)
                    a->Y[(t0 + j) * nrows + r0 + i0 + i] = out[i][j];
        }
    }
}

void qnt_q8mm_drive(const struct qnt_q8mm_args *a, int R, int R1, int T,
                    qnt_q8mm_micro_fn *micro)
{
    const size_t nrows = a->nrows;
    if (a->n == 1)
        R = R1;
    const long nblk = (long)((nrows + 15) / 16);
#pragma omp parallel for schedule(static) if (a->threads == 0)
    for (long blk = 0; blk < nblk; blk++) {
        const size_t r0 = (size_t)blk * 16, rb = nrows - r0 < 16 ? nrows - r0 : 16;
        qnt_q8mm_drive_rows(a, a->w + (a->row0 + r0) * a->row_bytes, a->row_bytes, r0, rb, R, T,
                            micro);
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

typedef void q8mm_fn(const struct qnt_q8mm_args *a);

static q8mm_fn *q8mm_kernel_fn(int kernel)
{
#ifdef QNT_Q8MM_X86
    const unsigned avx2 = SB_CPU_AVX2 | SB_CPU_FMA | SB_CPU_F16C;
    const unsigned vnni = avx2 | SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL |
                          SB_CPU_AVX512DQ | SB_CPU_AVX512VNNI;
    const unsigned f = sb_cpu_features();
    switch (kernel) {
    case QNT_Q8MM_AVX2:
        return (f & avx2) == avx2 ? qnt_q8mm_avx2 : NULL;
    case QNT_Q8MM_VNNI:
        return (f & vnni) == vnni ? qnt_q8mm_vnni : NULL;
    default:
        break;
    }
#endif
    return kernel == QNT_Q8MM_REF ? qnt_q8mm_scalar : NULL;
}

int qnt_q8mm_best(void)
{
    if (sb_cpu_ref())
        return QNT_Q8MM_REF;
    for (int k = QNT_Q8MM_VNNI; k > QNT_Q8MM_REF; k--)
        if (q8mm_kernel_fn(k))
            return k;
    return QNT_Q8MM_REF;
}

#define Q8MM_STACK_COLS 16384u

/* ks[b] = -k * (the sum of block b's codes): exact in int32; dx[b] its scale */
static void q8x_ks(const int8_t *q, const float *d8, size_t nb, int32_t k, int32_t *ks,
                   float *dx)
{
    for (size_t b = 0; b < nb; b++) {
        dx[b] = d8[8 * b];
        int32_t s = 0;
        for (int e = 0; e < QNT_Q8MM_QK; e++)
            s += q[b * QNT_Q8MM_QK + (size_t)e];
        ks[b] = -k * s;
    }
}

/* The arguments every entry sets alike: the weights, their kind and shape. */
static void q8mm_args(struct qnt_q8mm_args *a, int q4, const void *w, size_t rows, size_t cols)
{
    memset(a, 0, sizeof *a);
    a->w = w;
    a->q4 = q4;
    a->nb = cols / QNT_Q8MM_QK;
    a->cols = cols;
    a->rows = rows;
}

/* n tokens' activations quantized into a new buffer laid out as a->x:
 * codes, scales, dx and ks, cols + cols / 32 * (8 + 2) * 4 bytes a token.
 * Tokens are independent: the same bits at any thread count. NULL when out
 * of memory. */
static void *q8x_batch(struct qnt_q8mm_args *a, int ref, const float *X, size_t n)
{
    const size_t cols = a->cols, nb = a->nb, tok_bytes = cols * 2 + nb * 8;
    void *buf = n && tok_bytes <= SIZE_MAX / n ? sb_malloc_aligned(n * tok_bytes) : NULL;
    if (!buf)
        return NULL;
    /* the reference kernel quantizes with the reference too (the same bits) */
    void (*quantize)(const float *restrict, size_t, int8_t *restrict, float *restrict) =
        ref ? qnt_q8x_quantize_ref : qnt_q8x_quantize;
    a->x.d8 = buf;
    a->x.dx = a->x.d8 + n * nb * 8;
    a->x.ks = (int32_t *)(a->x.dx + n * nb);
    a->x.q = (int8_t *)(a->x.ks + n * nb);
#pragma omp parallel for schedule(static) if (!ref && n > 1)
    for (size_t t = 0; t < n; t++) {
        quantize(X + t * cols, cols, a->x.q + t * cols, a->x.d8 + t * nb * 8);
        q8x_ks(a->x.q + t * cols, a->x.d8 + t * nb * 8, nb, a->q4 ? 8 : 128, a->x.ks + t * nb,
               a->x.dx + t * nb);
    }
    a->n = n;
    return buf;
}

int qnt_q8mm_rows(int kernel, int q4, const void *w, size_t rows, size_t cols, size_t row0,
                  size_t nrows, const float *X, size_t n, float *Y)
{
    q8mm_fn *fn = q8mm_kernel_fn(kernel);
    if (!fn)
        return -1;
    struct qnt_q8mm_args a;
    q8mm_args(&a, q4, w, rows, cols);
    a.row_bytes = a.nb * (q4 ? 18u : 34u);
    a.row0 = row0;
    a.nrows = nrows;
    a.threads = kernel == QNT_Q8MM_REF;
    void (*quantize)(const float *restrict, size_t, int8_t *restrict, float *restrict) =
        kernel == QNT_Q8MM_REF ? qnt_q8x_quantize_ref : qnt_q8x_quantize;
    void *buf = q8x_batch(&a, kernel == QNT_Q8MM_REF, X, n);
    if (buf) {
        a.Y = Y;
        fn(&a);
        sb_free_aligned(buf);
        return 0;
    }
    /* no memory: token by token from the stack, the same bits */
    float d8[Q8MM_STACK_COLS / 4];
    int32_t ks[Q8MM_STACK_COLS / 32];
    float dx[Q8MM_STACK_COLS / 32];
    int8_t q[Q8MM_STACK_COLS];
    for (size_t t = 0; t < n; t++) {
        if (cols > Q8MM_STACK_COLS) {
            for (size_t i = 0; i < nrows; i++)
                Y[t * nrows + i] = NAN;
            continue;
        }
        quantize(X + t * cols, cols, q, d8);
        q8x_ks(q, d8, a.nb, q4 ? 8 : 128, ks, dx);
        a.x.q = q;
        a.x.d8 = d8;
        a.x.ks = ks;
        a.x.dx = dx;
        a.n = 1;
        a.Y = Y + t * nrows;
        fn(&a);
    }
    return 0;
}

size_t qnt_q8mm_packed_bytes(int q4, size_t nrows, size_t cols)
{
    return (nrows + 15) / 16 * (cols / QNT_Q8MM_QK) * (q4 ? QNT_Q8MM_PK4 : QNT_Q8MM_PK8);
}

/* The kernel that reads packed weights on this CPU: AVX512-VNNI, else AVX2;
 * QNT_Q8MM_REF: none. (Whether to pack under SUBBIT_REF_KERNELS is the
 * caller's choice: qnt_matvec.c does not.) */
static int q8mm_pack_kernel(size_t cols)
{
    if (cols % QNT_Q8MM_QK != 0)
        return QNT_Q8MM_REF;
    if (q8mm_kernel_fn(QNT_Q8MM_VNNI))
        return QNT_Q8MM_VNNI;
    if (q8mm_kernel_fn(QNT_Q8MM_AVX2))
        return QNT_Q8MM_AVX2;
    return QNT_Q8MM_REF;
}

int qnt_q8mm_pack_available(size_t cols)
{
    return q8mm_pack_kernel(cols) != QNT_Q8MM_REF;
}

void qnt_q8mm_pack_tiles(int q4, const uint8_t *w, size_t row_bytes, size_t nrows, size_t cols,
                         uint8_t *out)
{
    const size_t nb = cols / QNT_Q8MM_QK, bb = q4 ? 18 : 34;
    const size_t bs = q4 ? QNT_Q8MM_PK4 : QNT_Q8MM_PK8, cbytes = q4 ? 256 : 512;
    const long nblk = (long)((nrows + 15) / 16);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblk; blk++) {
        uint8_t *tile = out + (size_t)blk * nb * bs;
        const size_t r0 = (size_t)blk * 16;
        for (size_t b = 0; b < nb; b++) {
            uint8_t *cb = tile + b * bs;
            for (size_t i = 0; i < 16; i++) {
                uint8_t c[32];
                uint8_t h[2] = { 0, 0 };
                memset(c, 0, sizeof c);
                if (r0 + i < nrows) {
                    const uint8_t *blkp = w + (r0 + i) * row_bytes + bb * b;
                    h[0] = blkp[0];
                    h[1] = blkp[1];
                    if (q4)
                        memcpy(c, blkp + 2, 16);
                    else
                        for (int e = 0; e < 32; e++)
                            c[e] = (uint8_t)(blkp[2 + e] ^ 0x80u);
                } else if (!q4) {
                    memset(c, 0x80, sizeof c); /* code 0; the scale 0 keeps it out anyway */
                }
                for (size_t d = 0; d < cbytes / 64; d++)
                    memcpy(cb + 64 * d + 4 * i, c + 4 * d, 4);
                memcpy(cb + cbytes + 2 * i, h, 2);
            }
        }
    }
}

int qnt_q8mm_pack(int q4, const void *w, size_t row_bytes, size_t nrows, size_t cols, void *out)
{
    if (!qnt_q8mm_pack_available(cols))
        return -1;
    qnt_q8mm_pack_tiles(q4, w, row_bytes, nrows, cols, out);
    return 0;
}

int qnt_q8mm_packed_rows_k(int kernel, int q4, const void *packed, size_t nrows, size_t cols,
                           const float *X, size_t n, float *Y)
{
#ifdef QNT_Q8MM_X86
    if (cols % QNT_Q8MM_QK != 0 || !q8mm_kernel_fn(kernel) ||
        (kernel != QNT_Q8MM_VNNI && kernel != QNT_Q8MM_AVX2))
        return -1;
    struct qnt_q8mm_args a;
    q8mm_args(&a, q4, packed, nrows, cols);
    a.nrows = nrows;
    void *buf = q8x_batch(&a, 0, X, n);
    if (!buf)
        return -1;
    a.Y = Y;
    if (kernel == QNT_Q8MM_VNNI)
        qnt_q8mm_vnni_packed(&a);
    else
        qnt_q8mm_avx2_packed(&a);
    sb_free_aligned(buf);
    return 0;
#else
    (void)kernel, (void)q4, (void)packed, (void)nrows, (void)cols, (void)X, (void)n, (void)Y;
    return -1;
#endif
}

int qnt_q8mm_packed_rows(int q4, const void *packed, size_t nrows, size_t cols, const float *X,
                         size_t n, float *Y)
{
    const int k = q8mm_pack_kernel(cols);
    return k == QNT_Q8MM_REF ? -1 : qnt_q8mm_packed_rows_k(k, q4, packed, nrows, cols, X, n, Y);
}

/* The table's entries: the fast kernel or the reference, q8_0 or q4_0. */
#define Q8MM_ENTRY(name, kernel, q4)                                                         \
    void name(const void *restrict w, uint64_t nbytes, size_t rows, size_t cols, size_t row0, \
              size_t nrows, const float *restrict X, size_t n, float *restrict Y)             \
    {                                                                                        \
        (void)nbytes;                                                                        \
        qnt_q8mm_rows((kernel), (q4), w, rows, cols, row0, nrows, X, n, Y);                  \
    }
Q8MM_ENTRY(qnt_q8_0_matmul, qnt_q8mm_best(), 0)
Q8MM_ENTRY(qnt_q8_0_matmul_ref, QNT_Q8MM_REF, 0)
Q8MM_ENTRY(qnt_q4_0_matmul, qnt_q8mm_best(), 1)
Q8MM_ENTRY(qnt_q4_0_matmul_ref, QNT_Q8MM_REF, 1)
