/* test_q8mm.c: q8_0 / q4_0 weights times 8-bit activations (qnt_q8mm_impl.h).
 * - the activation quantizer on hand-worked blocks (ties to even, amax
 *   exactly 127 codes, zeros, a NaN block), and each of its x86 kernels
 *   (AVX2, AVX-512) against its reference byte for byte;
 * - the reference sum within the documented bound of the double dot of the
 *   stored weights (decoded here from the bytes, an independent reader) with
 *   x: sum_b |dw_b| dx_b / 2 sum |wq| for the activation rounding plus 1e-5
 *   of sum |w||x|;
 * - every kernel this CPU has (AVX2, AVX512-VNNI) equals the
 *   reference bit for bit: shapes with an odd block count, short row groups,
 *   n across the token tiles, row ranges, 1 and 3 threads, a weight byte of
 *   -128, NaN and infinite weight scales, a NaN activation block;
 * - qnt_matmul (the table's route) equals the fast kernel, matvec equals the
 *   matmul row, and an allocation failure gives the same bits (the
 *   activations' buffer, or a row tile's scratch);
 * - one token against a tensor of 8 MiB and more (the kernel's streaming
 *   path) equals the reference. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_matvec.h"
#include "qnt_q8mm_impl.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "sb_dtype.h"
#include "test_util.h"

/* q8_0 (q4 = 0) or q4_0 weights, random codes and power-of-two-ish scales. */
static uint8_t *make_w(int q4, size_t rows, size_t cols, uint64_t seed, size_t *nbytes)
{
    const size_t bb = q4 ? 18 : 34, nb = cols / 32;
    uint8_t *w = malloc(rows * nb * bb);
    uint64_t st = seed;
    for (size_t k = 0; k < rows * nb; k++) {
        uint8_t *blk = w + k * bb;
        const float d = (float)(test_rand_u64(&st) % 1000 + 1) * 1e-4f;
        const uint16_t h = qnt_f32_to_f16_ref(d);
        blk[0] = (uint8_t)h;
        blk[1] = (uint8_t)(h >> 8);
        for (size_t e = 2; e < bb; e++)
            blk[e] = (uint8_t)test_rand_u64(&st);
    }
    *nbytes = rows * nb * bb;
    return w;
}

/* Weight element (r, j) as the format defines it (formats.md: q8_0 d * qs,
 * q4_0 d * (nibble - 8), element j < 16 the low nibble of byte j). */
static double w_at(int q4, const uint8_t *w, size_t cols, size_t r, size_t j, int *code)
{
    const size_t bb = q4 ? 18 : 34;
    const uint8_t *blk = w + (r * (cols / 32) + j / 32) * bb;
    const size_t e = j % 32;
    *code = q4 ? ((blk[2 + e % 16] >> (e < 16 ? 0 : 4)) & 15) - 8 : (int8_t)blk[2 + e];
    return (double)qnt_f16_to_f32_ref((uint16_t)(blk[0] | blk[1] << 8)) * *code;
}

START_TEST(test_q8x_quantize_hand)
{
    float x[64], d8[16];
    int8_t q[64];
    for (int e = 0; e < 32; e++)
        x[e] = (float)(e - 16) * 0.5f;   /* -8 .. 7.5: amax 8, id 127 / 8 */
    x[0] = 127.0f;                       /* amax 127: d = 1, codes = round(x) */
    for (int e = 1; e < 32; e++)
        x[e] = (float)(e - 16) * 0.5f;   /* halves: ties to even */
    for (int e = 32; e < 64; e++)
        x[e] = 0.0f;
    qnt_q8x_quantize(x, 64, q, d8);
    ck_assert_float_eq(d8[0], 1.0f);
    ck_assert_float_eq(d8[7], 1.0f);
    ck_assert_int_eq(q[0], 127);
    /* x = -7.5 -> -8, -6.5 -> -6, -0.5 -> 0, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 */
    ck_assert_int_eq(q[1], -8);
    ck_assert_int_eq(q[3], -6);
    ck_assert_int_eq(q[15], 0);
    ck_assert_int_eq(q[17], 0);
    ck_assert_int_eq(q[19], 2);
    ck_assert_int_eq(q[21], 2);
    ck_assert_float_eq(d8[8], 0.0f);   /* a zero block: d 0, codes 0 */
    ck_assert_int_eq(q[40], 0);
    x[40] = NAN;
    qnt_q8x_quantize(x, 64, q, d8);
    ck_assert(isnan(d8[8]) && isnan(d8[15]));
    ck_assert_int_eq(q[33], 0);
    x[40] = -INFINITY;
    qnt_q8x_quantize(x, 64, q, d8);
    ck_assert(isnan(d8[8]));
}
END_TEST

/* The fast quantizer equals the reference byte for byte: random blocks at
 * scales from 1e-30 to 1e30, ties (x * id landing on .5 in a block of
 * amax 127), a zero block, signed zeros, a NaN and an infinite block. */
START_TEST(test_q8x_quantize_fast_is_ref)
{
    enum { NBLK = 64, COLS = NBLK * 32 };
    static float x[COLS], da[COLS / 4], db[COLS / 4];
    static int8_t qa[COLS], qb[COLS];
    test_fill_normal(x, COLS, 300u + (uint64_t)_i);
    for (size_t b = 0; b < NBLK; b++)
        for (size_t e = 0; e < 32; e++)
            x[b * 32 + e] *= powf(10.0f, (float)((int)b % 61 - 30));
    for (int e = 0; e < 32; e++) {
        x[32 + e] = (float)(e - 16) + 0.5f;   /* ties at scale 1 */
        x[64 + e] = 0.0f;
        x[96 + e] = e % 2 ? -0.0f : 0.0f;
    }
    x[32] = 127.0f;
    x[130] = NAN;
    x[170] = INFINITY;
    qnt_q8x_quantize_ref(x, COLS, qa, da);
    /* the dispatch, then each x86 kernel this CPU has by name (an AVX-512
       CPU dispatches past the AVX2 one) */
    for (int k = 0; k < 3; k++) {
        memset(qb, 0x55, sizeof qb);
        memset(db, 0x55, sizeof db);
        if (k == 0)
            qnt_q8x_quantize(x, COLS, qb, db);
#ifdef QNT_Q8MM_X86
        else if (k == 1 && sb_cpu_has(SB_CPU_AVX2))
            qnt_q8x_quantize_avx2(x, COLS, qb, db);
        else if (k == 2 && sb_cpu_has(SB_CPU_AVX512F | SB_CPU_AVX512BW | SB_CPU_AVX512VL |
                                      SB_CPU_AVX512DQ))
            qnt_q8x_quantize_avx512(x, COLS, qb, db);
#endif
        else
            continue;
        ck_assert_msg(memcmp(qa, qb, sizeof qa) == 0, "codes, kernel %d", k);
        ck_assert_msg(memcmp(da, db, sizeof da) == 0, "scales, kernel %d", k);
    }
    ck_assert_int_eq(qa[33], -14);   /* -14.5 -> -14: half to even */
    ck_assert_int_eq(qa[34], -14);   /* -13.5 -> -14 */
}
END_TEST

/* The reference against the double dot, within the bound. */
START_TEST(test_q8mm_ref_bound)
{
    const int q4 = _i;
    const size_t rows = 7, cols = 288, n = 3;
    size_t nbytes;
    uint8_t *w = make_w(q4, rows, cols, 11 + (uint64_t)_i, &nbytes);
    float *X = malloc(n * cols * sizeof *X), *Y = malloc(n * rows * sizeof *Y);
    test_fill_normal(X, n * cols, 5);
    int8_t q[288];
    float d8[72];
    qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, 0, rows, X, n, Y);
    for (size_t t = 0; t < n; t++) {
        qnt_q8x_quantize(X + t * cols, cols, q, d8);
        for (size_t r = 0; r < rows; r++) {
            double exact = 0, mag = 0, bound = 0;
            for (size_t j = 0; j < cols; j++) {
                int c;
                const double wv = w_at(q4, w, cols, r, j, &c);
                exact += wv * X[t * cols + j];
                mag += fabs(wv * X[t * cols + j]);
                bound += fabs(wv) * d8[j / 32 * 8] / 2;
            }
            const double got = Y[t * rows + r];
            ck_assert_msg(fabs(got - exact) <= bound + 1e-5 * mag, "r %zu t %zu: %g vs %g (%g)",
                          r, t, got, exact, bound);
            ck_assert(fabs(got - exact) > 0 || bound == 0);   /* it did round */
        }
    }
    free(w);
    free(X);
    free(Y);
}
END_TEST

static const struct { size_t rows, cols; } shapes[] = {
    { 1, 32 }, { 3, 64 }, { 5, 96 }, { 17, 288 }, { 37, 1024 }, { 6, 4128 },
    { 4, 224 }, { 9, 480 }, { 18, 384 },   /* 7 blocks; 8 + 7; 8 + 4 (moe25m's rows) */
};

/* A -128 code, a NaN and an infinite scale. */
static void specials(int q4, uint8_t *w, size_t rows, size_t cols)
{
    if (!q4 && cols >= 64)
        w[2 + 5] = 0x80;
    if (rows >= 3) {
        const size_t bb = q4 ? 18 : 34, rb = cols / 32 * bb;
        w[rb * 2 + 0] = 0x00, w[rb * 2 + 1] = 0x7e;   /* NaN */
        if (cols >= 64)
            w[rb * 1 + bb + 0] = 0x00, w[rb * 1 + bb + 1] = 0x7c;   /* +inf */
    }
}

/* Loop index i: shape i / 2, q4_0 when odd; random weights with the specials. */
static uint8_t *shape_w(int i, uint64_t seed, int *q4, size_t *rows, size_t *cols)
{
    size_t nbytes;
    *q4 = i % 2;
    *rows = shapes[i / 2].rows;
    *cols = shapes[i / 2].cols;
    uint8_t *w = make_w(*q4, *rows, *cols, seed + (uint64_t)i, &nbytes);
    specials(*q4, w, *rows, *cols);
    return w;
}

/* Every kernel == the reference, bit for bit. */
START_TEST(test_q8mm_kernels_equal_ref)
{
    int q4;
    size_t rows, cols;
    uint8_t *w = shape_w(_i, 100, &q4, &rows, &cols);
    const size_t ns[] = { 1, 2, 3, 4, 5, 9, 33 };
    float *X = malloc(33 * cols * sizeof *X);
    float *A = malloc(33 * rows * sizeof *A), *B = malloc(33 * rows * sizeof *B);
    test_fill_normal(X, 33 * cols, 7 + (uint64_t)_i);
    X[4 * cols + cols / 2] = NAN;   /* token 4: one NaN block */
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const size_t n = ns[ni];
        const size_t r0 = rows > 2 ? 1 : 0, nr = rows > 2 ? rows - 2 : rows;
        for (int part = 0; part < 2; part++) {
            const size_t row0 = part ? r0 : 0, nrows = part ? nr : rows;
            qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, row0, nrows, X, n, A);
            for (int k = QNT_Q8MM_AVX2; k <= QNT_Q8MM_VNNI; k++)
                for (int th = 1; th <= 3; th += 2) {
#ifdef _OPENMP
                    omp_set_num_threads(th);
#endif
                    memset(B, 0xA5, n * nrows * sizeof *B);
                    if (qnt_q8mm_rows(k, q4, w, rows, cols, row0, nrows, X, n, B) != 0)
                        continue;   /* not on this CPU */
                    ck_assert_msg(memcmp(A, B, n * nrows * sizeof *A) == 0,
                                  "kernel %d q4 %d %zux%zu n %zu rows %zu+%zu threads %d", k, q4,
                                  rows, cols, n, row0, nrows, th);
                }
        }
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(w);
    free(X);
    free(A);
    free(B);
}
END_TEST

/* The table's route: qnt_matmul is the best kernel, qnt_matmul_ref the
 * reference, matvec the matmul row; an allocation failure the same bits. */
START_TEST(test_q8mm_through_table)
{
    const int q4 = _i;
    const enum sb_dtype dt = q4 ? SB_DTYPE_Q4_0 : SB_DTYPE_Q8_0;
    const size_t rows = 21, cols = 352, n = 6;
    size_t nbytes;
    uint8_t *w = make_w(q4, rows, cols, 300 + (uint64_t)_i, &nbytes);
    float *X = malloc(n * cols * sizeof *X), *A = malloc(n * rows * sizeof *A);
    float *B = malloc(n * rows * sizeof *B), *y = malloc(rows * sizeof *y);
    test_fill_normal(X, n * cols, 9);
    ck_assert_int_eq(qnt_matvec_check(dt, nbytes, NULL, rows, cols, 0, rows), 0);
    qnt_q8mm_rows(qnt_q8mm_best(), q4, w, rows, cols, 0, rows, X, n, A);
    qnt_matmul(dt, w, nbytes, NULL, rows, cols, X, n, B);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    for (size_t t = 0; t < n; t++) {
        qnt_matvec(dt, w, nbytes, NULL, rows, cols, X + t * cols, y);
        ck_assert_mem_eq(y, A + t * rows, rows * sizeof *y);
    }
    qnt_matmul_ref(dt, w, nbytes, NULL, rows, cols, X, n, B);
    qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, 0, rows, X, n, A);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    qnt_matmul(dt, w, nbytes, NULL, rows, cols, X, n, A);
    sb_alloc_fail_after(0);
    qnt_matmul(dt, w, nbytes, NULL, rows, cols, X, n, B);
    sb_alloc_fail_after(-1);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    /* the activations allocated, a row tile's scratch not: the same bits */
    memset(B, 0, n * rows * sizeof *B);
    sb_alloc_fail_after(1);
    qnt_matmul(dt, w, nbytes, NULL, rows, cols, X, n, B);
    sb_alloc_fail_after(-1);
    ck_assert_mem_eq(A, B, n * rows * sizeof *A);
    /* the same by kernel name (an AVX-512 CPU's best is not the AVX2 one,
       whose scratch is the unpacked row block) */
    for (int k = QNT_Q8MM_AVX2; k <= QNT_Q8MM_VNNI; k++) {
        memset(B, 0, n * rows * sizeof *B);
        sb_alloc_fail_after(1);
        const int rc = qnt_q8mm_rows(k, q4, w, rows, cols, 0, rows, X, n, B);
        sb_alloc_fail_after(-1);
        if (rc == 0)
            ck_assert_msg(memcmp(A, B, n * rows * sizeof *A) == 0, "kernel %d", k);
    }
    free(w);
    free(X);
    free(A);
    free(B);
    free(y);
}
END_TEST

/* One token against a tensor large enough to be taken as streaming from
 * memory (8 MiB and more, rows of 64 blocks and more: the one-token kernel
 * then loads the scales first and prefetches): the reference's bits, the
 * whole tensor and a row range, one and two tokens. */
START_TEST(test_q8mm_stream)
{
    const int q4 = _i;
    const size_t rows = 7400, cols = 2048;
    size_t nbytes;
    uint8_t *w = make_w(q4, rows, cols, 500 + (uint64_t)_i, &nbytes);
    ck_assert_uint_ge(nbytes, (size_t)8 << 20);
    float *X = malloc(2 * cols * sizeof *X), *A = malloc(2 * rows * sizeof *A);
    float *B = malloc(2 * rows * sizeof *B);
    test_fill_normal(X, 2 * cols, 13);
    for (size_t n = 1; n <= 2; n++)
        for (int part = 0; part < 2; part++) {
            const size_t row0 = part ? 3 : 0, nrows = part ? rows - 20 : rows;
            qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, row0, nrows, X, n, A);
            memset(B, 0xA5, n * nrows * sizeof *B);
            if (qnt_q8mm_rows(qnt_q8mm_best(), q4, w, rows, cols, row0, nrows, X, n, B) == 0)
                ck_assert_msg(memcmp(A, B, n * nrows * sizeof *A) == 0, "q4 %d n %zu part %d", q4,
                              n, part);
        }
    free(w);
    free(X);
    free(A);
    free(B);
}
END_TEST

/* Packed weights (qnt_q8mm_pack) give the reference's bits through every
 * kernel for them this CPU has (AVX512-VNNI, and AVX2, also on AVX-512
 * CPUs): every shape above (rows not a multiple of 16, odd block
 * counts), 1 to 33 tokens, one and three threads, the specials of
 * test_q8mm_kernels_equal_ref. */
START_TEST(test_q8mm_packed)
{
    int q4;
    size_t rows, cols;
    uint8_t *w = shape_w(_i, 700, &q4, &rows, &cols);
    const size_t ns[] = { 1, 2, 3, 4, 5, 9, 33 };
    const size_t pb = qnt_q8mm_packed_bytes(q4, rows, cols);
    ck_assert_uint_eq(pb, (rows + 15) / 16 * 16 * (cols / 32) * (q4 ? 18 : 34));
    uint8_t *pk = malloc(pb);
    qnt_q8mm_pack_tiles(q4, w, cols / 32 * (q4 ? 18 : 34), rows, cols, pk);
    float *X = malloc(33 * cols * sizeof *X);
    float *A = malloc(33 * rows * sizeof *A), *B = malloc(33 * rows * sizeof *B);
    test_fill_normal(X, 33 * cols, 17 + (uint64_t)_i);
    X[4 * cols + cols / 2] = NAN;
    const int kernels[] = { QNT_Q8MM_VNNI, QNT_Q8MM_AVX2 };
    int ran = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const size_t n = ns[ni];
        qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, 0, rows, X, n, A);
        for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
            for (int th = 1; th <= 3; th += 2) {
#ifdef _OPENMP
                omp_set_num_threads(th);
#endif
                memset(B, 0xA5, n * rows * sizeof *B);
                if (qnt_q8mm_packed_rows_k(kernels[k], q4, pk, rows, cols, X, n, B) != 0)
                    continue;   /* not on this CPU, or not for this kind */
                ran++;
                ck_assert_msg(memcmp(A, B, n * rows * sizeof *A) == 0,
                              "kernel %d q4 %d %zux%zu n %zu threads %d", kernels[k], q4, rows,
                              cols, n, th);
            }
    }
    /* the public entry packs exactly where some kernel ran */
    uint8_t *pk2 = malloc(pb);
    const int packed = qnt_q8mm_pack(q4, w, cols / 32 * (q4 ? 18 : 34), rows, cols, pk2) == 0;
    ck_assert_int_eq(packed, ran > 0);
    ck_assert_int_eq(packed, qnt_q8mm_pack_available(cols));
    if (packed) {
        ck_assert(memcmp(pk, pk2, pb) == 0);
        ck_assert_int_eq(qnt_q8mm_packed_rows(q4, pk, rows, cols, X, 5, B), 0);
        qnt_q8mm_rows(QNT_Q8MM_REF, q4, w, rows, cols, 0, rows, X, 5, A);
        ck_assert(memcmp(A, B, 5 * rows * sizeof *A) == 0);
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(pk2);
    free(pk);
    free(w);
    free(X);
    free(A);
    free(B);
}
END_TEST

TEST_SUITE(quant_q8mm, 60, NULL, NULL,
    TEST(test_q8x_quantize_hand), TEST_LOOP(test_q8x_quantize_fast_is_ref, 3),
    TEST_LOOP(test_q8mm_ref_bound, 2),
    TEST_LOOP(test_q8mm_kernels_equal_ref, (int)(2 * sizeof shapes / sizeof shapes[0])),
    TEST_LOOP(test_q8mm_through_table, 2), TEST_LOOP(test_q8mm_stream, 2),
    TEST_LOOP(test_q8mm_packed, (int)(2 * sizeof shapes / sizeof shapes[0])))
