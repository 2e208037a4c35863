/* test_sub1.c: the sub1 entropy code: exact round trips (edge rows and
 * shapes), rate within 1.03x of the order-0 entropy on i.i.d. rows, fused
 * matvec == reference == tern bit for bit, near dequantize + dot,
 * thread-count independence. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"   /* qnt_sub1_matvec_generic */
#include "sb_err.h"
#include "test_util.h"

/* i.i.d. ternary weights: P(0) = p0, the rest split evenly, levels near +-1..2 */
static void fill_iid(float *x, size_t n, double p0, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(test_rand_u64(&st) >> 11) / 9007199254740992.0;
        x[i] = u < p0 ? 0.0f : (u < p0 + (1 - p0) / 2 ? -2.0f : 2.0f);
    }
}

/* order-0 entropy (bits per weight) of a tern blob's symbols */
static double tern_entropy(const uint8_t *tern, size_t rows, size_t cols)
{
    uint64_t c[4] = { 0 };
    size_t rb = qnt_tern_row_bytes(cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            c[(tern[r * rb + 4 + j / 4] >> (2 * (j % 4))) & 3]++;
    double n = (double)rows * cols, h = 0;
    for (int i = 0; i < 3; i++)
        if (c[i])
            h -= (double)c[i] / n * log2((double)c[i] / n);
    return h;
}

static uint8_t *encode(const uint8_t *tern, size_t rows, size_t cols, uint64_t *nb)
{
    size_t cap = qnt_sub1_encode_bound(rows, cols);
    ck_assert_uint_gt(cap, 0);
    uint8_t *blob = malloc(cap);
    ck_assert_int_eq(qnt_sub1_encode(tern, rows, cols, blob, cap, nb), SB_OK);
    ck_assert_uint_le(*nb, cap);
    ck_assert_int_eq(qnt_sub1_validate(blob, *nb, rows, cols), SB_OK);
    return blob;
}

static const struct { size_t rows, cols; double p0; } shapes[] = {
    { 1, 1, 0.5 }, { 3, 1, 0.5 }, { 1, 1, 1.0 }, { 5, 2, 0.9 }, { 4, 27, 0.885 },
    { 7, 29, 0.885 }, { 16, 128, 0.885 }, { 9, 333, 0.95 }, { 33, 1000, 0.8 }, { 40, 4096, 0.885 },
    { 3, 0, 0.8 }, { 0, 5, 0.8 }, { 64, 63, 0.0 }, { 12, 57, 1.0 }, { 2, 70001, 0.97 },
    { 700, 100, 0.885 }, { 1, 300, 0.999 },
};

START_TEST(test_sub1_round_trip)
{
    size_t rows = shapes[_i].rows, cols = shapes[_i].cols, n = rows * cols;
    size_t tb = rows * qnt_tern_row_bytes(cols);
    float *x = malloc((n + 1) * sizeof *x);
    uint8_t *tern = malloc(tb + 1), *back = malloc(tb + 1);
    fill_iid(x, n, shapes[_i].p0, 100 + (uint64_t)_i);
    if (rows > 3) {
        memset(x, 0, cols * sizeof *x);                      /* all-zero row */
        for (size_t j = 0; j < cols; j++)
            x[cols + j] = 5.0f;                              /* one value */
        for (size_t j = 0; j < cols; j++)
            x[2 * cols + j] = -5.0f;
    }
    qnt_tern_quantize_rows(x, rows, cols, tern);
    uint64_t nb;
    uint8_t *blob = encode(tern, rows, cols, &nb);
    qnt_sub1_decode_tern(blob, nb, cols, 0, rows, back);
    ck_assert_mem_eq(back, tern, tb);
    /* any row range decodes on its own */
    for (size_t r0 = 0; r0 < rows; r0 += 1 + rows / 5) {
        size_t k = rows - r0 < 3 ? rows - r0 : 3;
        float *a = malloc((k * cols + 1) * sizeof *a), *b = malloc((k * cols + 1) * sizeof *b);
        qnt_tern_dequantize_rows(tern, cols, r0, k, b);
        for (int lvl = 2; lvl >= 0; lvl--) {   /* AVX-512, AVX2, portable (as the CPU has) */
            qnt_sub1_set_simd_max(lvl);
            memset(a, 0x55, k * cols * sizeof *a);
            qnt_sub1_dequantize_rows(blob, nb, cols, r0, k, a);
            ck_assert_mem_eq(a, b, k * cols * sizeof *a);
        }
        qnt_sub1_set_simd_max(2);
        qnt_sub1_decode_tern(blob, nb, cols, r0, k, back);
        ck_assert_mem_eq(back, tern + r0 * qnt_tern_row_bytes(cols), k * qnt_tern_row_bytes(cols));
        free(a);
        free(b);
    }
    /* structural damage */
    ck_assert_int_eq(qnt_sub1_validate(blob, nb, rows + 1, cols), SB_EFORMAT);
    if (n) {
        ck_assert_int_eq(qnt_sub1_validate(blob, nb - 1, rows, cols), SB_EFORMAT);
    }
    blob[3] ^= 0x40;
    ck_assert_int_eq(qnt_sub1_validate(blob, nb, rows, cols), SB_EFORMAT);
    free(x);
    free(tern);
    free(back);
    free(blob);
}
END_TEST

/* a damaged stream decodes to something, inside dst, without crashing (ASan) */
START_TEST(test_sub1_damaged_stream)
{
    size_t rows = 20, cols = 301, tb = rows * qnt_tern_row_bytes(cols);
    float *x = malloc(rows * cols * sizeof *x), y[20];
    uint8_t *tern = malloc(tb);
    fill_iid(x, rows * cols, 0.885, 9);
    qnt_tern_quantize_rows(x, rows, cols, tern);
    uint64_t nb;
    uint8_t *blob = encode(tern, rows, cols, &nb);
    uint64_t st = 3;
    for (int k = 0; k < 200; k++) {
        size_t at = nb - 1 - test_rand_u64(&st) % (nb / 2);
        blob[at] ^= (uint8_t)(1 + test_rand_u64(&st) % 255);
        if (qnt_sub1_validate(blob, nb, rows, cols) == SB_OK) {
            qnt_sub1_matvec(blob, nb, rows, cols, x, y);
            qnt_sub1_dequantize_rows(blob, nb, cols, 0, rows, x);
        }
    }
    free(x);
    free(tern);
    free(blob);
}
END_TEST

static const double rate_p0[] = { 0.80, 0.885, 0.95 };

START_TEST(test_sub1_rate_iid)
{
    /* 1024 x 4096 i.i.d. rows: code bits (all but the per-row bf16 levels,
       which every ternary format carries) <= 1.03 x order-0 entropy */
    size_t rows = 1024, cols = 4096, n = rows * cols;
    float *x = malloc(n * sizeof *x);
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    fill_iid(x, n, rate_p0[_i], 42 + (uint64_t)_i);
    qnt_tern_quantize_rows(x, rows, cols, tern);
    double h = tern_entropy(tern, rows, cols);
    uint64_t nb;
    uint8_t *blob = encode(tern, rows, cols, &nb);
    double code = 8.0 * (double)(nb - 4 * rows) / (double)n;
    double total = 8.0 * (double)nb / (double)n;
    ck_assert_double_le(code, 1.03 * h);
    ck_assert_double_ge(code, h * 0.995);           /* cannot beat the entropy on i.i.d. data */
    ck_assert_double_le(total, 1.03 * h + 32.0 / cols);
    free(x);
    free(tern);
    free(blob);
}
END_TEST

START_TEST(test_sub1_matvec)
{
    /* one chunk; many rows a lane; one row a lane; 2 chunks, short last one;
       3 chunks of 16 one-row lanes, the last with 8 empty lanes */
    static const size_t sh[][2] = { { 67, 1001 }, { 300, 64 }, { 5, 70000 }, { 1, 1 },
                                    { 300, 1024 }, { 40, 16384 }, { 33, 14336 } };
    size_t rows = sh[_i][0], cols = sh[_i][1];
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    float *w = malloc(rows * cols * sizeof *w), *x = malloc(cols * sizeof *x);
    float *y0 = malloc(rows * sizeof *y0), *y1 = malloc(rows * sizeof *y1),
          *y2 = malloc(rows * sizeof *y2), *y3 = malloc(rows * sizeof *y3),
          *y4 = malloc(rows * sizeof *y4);
    test_fill_normal(w, rows * cols, 21 + (uint64_t)_i);
    test_fill_normal(x, cols, 22);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    uint64_t nb;
    uint8_t *blob = encode(tern, rows, cols, &nb);
    qnt_tern_matvec_ref(tern, rows, cols, x, y0);
    qnt_sub1_matvec_ref(blob, nb, rows, cols, x, y1);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    qnt_sub1_matvec(blob, nb, rows, cols, x, y2);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    qnt_sub1_matvec(blob, nb, rows, cols, x, y3);
    ck_assert_mem_eq(y2, y3, rows * sizeof *y2);       /* thread count does not matter */
    ck_assert_mem_eq(y0, y1, rows * sizeof *y0);       /* exact sums: same bits as tern */
    ck_assert_mem_eq(y1, y2, rows * sizeof *y1);       /* fast is ref, bit for bit */
    qnt_sub1_matvec_generic(blob, nb, rows, cols, x, y4);
    ck_assert_mem_eq(y1, y4, rows * sizeof *y1);       /* and so is the portable kernel */
    qnt_sub1_set_simd_max(1);                          /* and the AVX2 one (where the CPU has it) */
    memset(y4, 0x55, rows * sizeof *y4);
    qnt_sub1_matvec(blob, nb, rows, cols, x, y4);
    qnt_sub1_set_simd_max(2);
    ck_assert_mem_eq(y1, y4, rows * sizeof *y1);
    ck_assert_uint_eq(blob[18], 1);                    /* alias layout, run cap <= 15 */
    ck_assert_uint_le(blob[16], 15);
    {   /* the cumulative layout (byte 18 = 0) of earlier blobs: every kernel, same bits */
        size_t cap = qnt_sub1_encode_bound(rows, cols);
        uint8_t *b0 = malloc(cap);
        uint64_t nb0;
        ck_assert_int_eq(qnt_sub1_encode_layout(tern, rows, cols, b0, cap, &nb0, 0), SB_OK);
        ck_assert_int_eq(qnt_sub1_validate(b0, nb0, rows, cols), SB_OK);
        ck_assert_uint_eq(b0[18], 0);
        qnt_sub1_matvec_ref(b0, nb0, rows, cols, x, y3);
        ck_assert_mem_eq(y0, y3, rows * sizeof *y0);
        qnt_sub1_matvec(b0, nb0, rows, cols, x, y3);
        ck_assert_mem_eq(y0, y3, rows * sizeof *y0);
        qnt_sub1_matvec_generic(b0, nb0, rows, cols, x, y3);
        ck_assert_mem_eq(y0, y3, rows * sizeof *y0);
        qnt_sub1_set_simd_max(1);
        memset(y3, 0x55, rows * sizeof *y3);
        qnt_sub1_matvec(b0, nb0, rows, cols, x, y3);
        qnt_sub1_set_simd_max(2);
        ck_assert_mem_eq(y0, y3, rows * sizeof *y0);
        uint8_t *back = malloc(rows * qnt_tern_row_bytes(cols));
        qnt_sub1_decode_tern(b0, nb0, cols, 0, rows, back);
        ck_assert_mem_eq(back, tern, rows * qnt_tern_row_bytes(cols));
        /* an unknown layout byte, or the alias layout with R > 15, is refused */
        b0[18] = 2;
        ck_assert_int_eq(qnt_sub1_validate(b0, nb0, rows, cols), SB_EFORMAT);
        b0[18] = 1;
        if (b0[16] > 15)
            ck_assert_int_eq(qnt_sub1_validate(b0, nb0, rows, cols), SB_EFORMAT);
        free(back);
        free(b0);
    }
    qnt_tern_dequantize_rows(tern, cols, 0, rows, w);
    for (size_t r = 0; r < rows; r++) {
        double sa = 0, d = 0;
        for (size_t j = 0; j < cols; j++) {
            sa += fabs((double)w[r * cols + j] * x[j]);
            d += (double)w[r * cols + j] * x[j];
        }
        ck_assert_double_le(fabs(y1[r] - d), 1e-6 * sa + 1e-30);
    }
    free(tern);
    free(w);
    free(x);
    free(y0);
    free(y1);
    free(y2);
    free(y3);
    free(y4);
    free(blob);
}
END_TEST

/* A blob of the old layout (header byte 17 = 0: 4 interleaved states over the
 * flattened chunk), written by the encoder before lanes: still decodes, and
 * its matvec (the reference) gives tern's bits. */
/* tern rows (14 bytes a row) */
static const uint8_t v0_tern[] = {
    0x00, 0xbf, 0x40, 0x3f, 0x00, 0x80, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xbf, 0x40, 0x3f, 0x08, 0x08, 0x00, 0x00, 0x48, 0x00,
    0x00, 0x04, 0x68, 0x00, 0x00, 0xbf, 0x40, 0x3f, 0x04, 0x09, 0x00, 0x82,
    0x00, 0x00, 0x10, 0x00, 0x20, 0x00,
};
static const uint8_t v0_blob[] = {
    0x53, 0x42, 0x31, 0x01, 0x03, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0xa8, 0x03, 0x9b, 0x02,
    0x9b, 0x02, 0x00, 0xa8, 0x03, 0x8d, 0x01, 0x00, 0xa8, 0x03, 0x00, 0x00,
    0x00, 0x8d, 0x01, 0x8d, 0x01, 0x8d, 0x01, 0x00, 0x9a, 0x02, 0x84, 0x0b,
    0x00, 0xbf, 0x40, 0x3f, 0x00, 0xbf, 0x40, 0x3f, 0x00, 0xbf, 0x40, 0x3f,
    0x87, 0x89, 0x16, 0x00, 0x9c, 0x40, 0x03, 0x00, 0xfb, 0xb0, 0x62, 0x01,
    0xad, 0xd8, 0x93, 0x00, 0x10, 0x1c, 0x44, 0xcd, 0x62, 0xfb, 0xde, 0xb1,
};

START_TEST(test_sub1_old_layout)
{
    const size_t rows = 3, cols = 37, rb = qnt_tern_row_bytes(cols);
    ck_assert_uint_eq(sizeof v0_tern, rows * rb);
    ck_assert_int_eq(qnt_sub1_validate(v0_blob, sizeof v0_blob, rows, cols), SB_OK);
    uint8_t back[sizeof v0_tern];
    qnt_sub1_decode_tern(v0_blob, sizeof v0_blob, cols, 0, rows, back);
    ck_assert_mem_eq(back, v0_tern, sizeof v0_tern);
    float x[37], y0[3], y1[3], y2[3];
    test_fill_normal(x, cols, 5);
    qnt_tern_matvec_ref(v0_tern, rows, cols, x, y0);
    qnt_sub1_matvec(v0_blob, sizeof v0_blob, rows, cols, x, y1);
    qnt_sub1_matvec_generic(v0_blob, sizeof v0_blob, rows, cols, x, y2);
    ck_assert_mem_eq(y0, y1, sizeof y0);
    ck_assert_mem_eq(y0, y2, sizeof y0);
}
END_TEST

/* The parallel word-scanning encoder writes the reference's bytes, for both
 * slot layouts, at 1, 2 and 3 threads; with a cap too tight for its
 * worst-case slots it falls back, still the same bytes; one byte less than
 * the blob fails in both. Shapes: the round-trip table (all-zero rows: runs
 * longer than the run histogram; dense; one-chunk and empty tensors) and
 * several chunks (100 x 4096: 64 + 36 rows; 50 x 20000: 16-row chunks). */
static const struct { size_t rows, cols; double p0; } enc_shapes[] = {
    { 100, 4096, 0.885 }, { 50, 20000, 0.95 }, { 37, 1000, 0.6 },
};

START_TEST(test_sub1_fast_encoder_is_ref)
{
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    const size_t rows = _i < ns ? shapes[_i].rows : enc_shapes[_i - ns].rows;
    const size_t cols = _i < ns ? shapes[_i].cols : enc_shapes[_i - ns].cols;
    const double p0 = _i < ns ? shapes[_i].p0 : enc_shapes[_i - ns].p0;
    const size_t n = rows * cols, tb = rows * qnt_tern_row_bytes(cols);
    float *w = malloc((n ? n : 1) * sizeof *w);
    uint8_t *tern = malloc(tb ? tb : 1);
    fill_iid(w, n, p0, 500 + (uint64_t)_i);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    const size_t cap = qnt_sub1_encode_bound(rows, cols);
    uint8_t *a = malloc(cap), *b = malloc(cap);
    for (int layout = 0; layout < 2; layout++) {
        uint64_t na, nb;
        ck_assert_int_eq(qnt_sub1_encode_ref(tern, rows, cols, a, cap, &na, layout), SB_OK);
        for (int th = 1; th <= 3; th++) {
#ifdef _OPENMP
            omp_set_num_threads(th);
#endif
            memset(b, 0xA5, cap);
            ck_assert_int_eq(qnt_sub1_encode_layout(tern, rows, cols, b, cap, &nb, layout), SB_OK);
            ck_assert_uint_eq(na, nb);
            ck_assert_mem_eq(a, b, na);
        }
        memset(b, 0xA5, cap);
        ck_assert_int_eq(qnt_sub1_encode_layout(tern, rows, cols, b, na, &nb, layout), SB_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(a, b, na);
        ck_assert_int_eq(qnt_sub1_encode_layout(tern, rows, cols, b, na - 1, &nb, layout),
                         SB_EINVAL);
        ck_assert_int_eq(qnt_sub1_encode_ref(tern, rows, cols, b, na - 1, &nb, layout), SB_EINVAL);
    }
    /* decoding to f32 (16-lane blobs: the AVX-512 scatter kernel): all rows, and
       a range from inside the first chunk across the others */
    if (n) {
        uint64_t nb;
        ck_assert_int_eq(qnt_sub1_encode(tern, rows, cols, a, cap, &nb), SB_OK);
        float *fa = malloc(n * sizeof *fa), *fb = malloc(n * sizeof *fb);
        const size_t r0 = rows / 3;
        for (int k = 0; k < 2; k++) {
            const size_t lo = k ? r0 : 0;
            qnt_sub1_dequantize_rows(a, nb, cols, lo, rows - lo, fa);
            qnt_tern_dequantize_rows(tern, cols, lo, rows - lo, fb);
            ck_assert_mem_eq(fa, fb, (rows - lo) * cols * sizeof *fa);
        }
        free(fa);
        free(fb);
    }
    /* a symbol 3 in the last row (the last chunk): refused by both */
    if (n) {
        tern[(rows - 1) * qnt_tern_row_bytes(cols) + QNT_TERN_ROW_HDR + (cols - 1) / 4] |=
            (uint8_t)(3u << (2 * ((cols - 1) % 4)));
        uint64_t nb;
        ck_assert_int_eq(qnt_sub1_encode(tern, rows, cols, b, cap, &nb), SB_EINVAL);
        ck_assert_int_eq(qnt_sub1_encode_ref(tern, rows, cols, b, cap, &nb, 1), SB_EINVAL);
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(a);
    free(b);
    free(w);
    free(tern);
}
END_TEST

/* Small tensors (under 4 x 16384 weights, a toy model's experts: tinymoe's
 * are 192 x 128 and 128 x 192) get 8 lanes, so the SIMD lane kernels decode
 * them (AVX2: one 8-lane half); the blobs earlier versions wrote for them
 * (ceil(weights / 16384) lanes, made here with qnt_sub1_set_lanes) still
 * decode through the portable walker, and 16 lanes through both halves.
 * Each: the tern bytes back, and the fused, generic, AVX2 and batched (37
 * tokens) products equal the reference bit for bit. */
static const size_t small_shapes[][2] = { { 192, 128 }, { 128, 192 }, { 300, 64 }, { 20, 3000 } };

START_TEST(test_sub1_small_lanes)
{
    const size_t rows = small_shapes[_i][0], cols = small_shapes[_i][1], n = 37;
    const size_t tb = rows * qnt_tern_row_bytes(cols);
    float *w = malloc(rows * cols * sizeof *w), *X = malloc(n * cols * sizeof *X);
    float *want = malloc(n * rows * sizeof *want), *Y = malloc(n * rows * sizeof *Y);
    uint8_t *tern = malloc(tb), *back = malloc(tb);
    fill_iid(w, rows * cols, 0.885, 700 + (uint64_t)_i);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    test_fill_normal(X, n * cols, 701);
    for (size_t t = 0; t < n; t++)
        qnt_tern_matvec_ref(tern, rows, cols, X + t * cols, want + t * rows);
    static const unsigned set[] = { 0, 2, 4, 1, 16 };   /* the rule, earlier blobs' lanes, 16 */
    uint64_t nbs[5];
    for (int q = 0; q < 5; q++) {
        qnt_sub1_set_lanes(set[q]);
        uint64_t nb, nr;
        uint8_t *blob = encode(tern, rows, cols, &nb);
        const size_t cap = qnt_sub1_encode_bound(rows, cols);
        uint8_t *ref = malloc(cap);
        ck_assert_int_eq(qnt_sub1_encode_ref(tern, rows, cols, ref, cap, &nr, 1), SB_OK);
        qnt_sub1_set_lanes(0);
        ck_assert_uint_eq(nr, nb);                     /* both encoders follow the setting */
        ck_assert_mem_eq(ref, blob, nb);
        nbs[q] = nb;
        ck_assert_uint_eq(blob[17], (set[q] ? set[q] : 8u));
        qnt_sub1_decode_tern(blob, nb, cols, 0, rows, back);
        ck_assert_mem_eq(back, tern, tb);
        float *y = malloc(rows * sizeof *y);
        qnt_sub1_matvec_generic(blob, nb, rows, cols, X, y);
        ck_assert_mem_eq(y, want, rows * sizeof *y);
        for (int lvl = 2; lvl >= 0; lvl--) {
            qnt_sub1_set_simd_max(lvl);
            memset(y, 0x55, rows * sizeof *y);
            qnt_sub1_matvec(blob, nb, rows, cols, X, y);
            ck_assert_mem_eq(y, want, rows * sizeof *y);
            const size_t need = qnt_sub1_matmul_ws_size(blob, nb, rows, cols, n);
            ck_assert_uint_gt(need, 0);
            void *ws = malloc(need);
            memset(Y, 0x55, n * rows * sizeof *Y);
            qnt_sub1_matmul(blob, nb, rows, cols, 0, rows, X, n, Y, ws, need);
            ck_assert_mem_eq(Y, want, n * rows * sizeof *Y);
            free(ws);
        }
        qnt_sub1_set_simd_max(2);
        free(y);
        free(ref);
        free(blob);
    }
    /* 8 lanes cost 6 states more than 2 (24 bytes, give or take the words'
       split), 16 lanes 14 */
    ck_assert_uint_gt(nbs[0], nbs[1]);
    ck_assert_uint_lt(nbs[0], nbs[1] + 6 * 4 + 16);
    ck_assert_uint_gt(nbs[4], nbs[0]);
    free(w);
    free(X);
    free(want);
    free(Y);
    free(tern);
    free(back);
}
END_TEST

/* The alias layout's bytes are the format (the decoder rebuilds the buckets
 * from the frequencies): blobs of three symbol mixes keep the hashes the
 * encoder of 2026-12-06 gave them (the table build changed that day, the
 * bytes must not; lanes set as they were then). */
static const struct { size_t rows, cols; double p0; unsigned lanes; uint64_t h; } alias_golden[] = {
    { 64, 1000, 0.5, 16, 0xa36a5820cb545db8ull },
    { 200, 300, 0.885, 16, 0x4df6b1b86e0528eeull },
    { 33, 4096, 0.99, 0, 0x8c53aa99776f2147ull },   /* 0: the rule's (9) */
};

START_TEST(test_sub1_alias_golden)
{
    const size_t rows = alias_golden[_i].rows, cols = alias_golden[_i].cols;
    float *w = malloc(rows * cols * sizeof *w);
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    fill_iid(w, rows * cols, alias_golden[_i].p0, 900 + (uint64_t)_i);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    uint64_t nb;
    qnt_sub1_set_lanes(alias_golden[_i].lanes);
    uint8_t *blob = encode(tern, rows, cols, &nb);
    qnt_sub1_set_lanes(0);
    ck_assert_uint_eq(blob[18], 1);
    ck_assert_uint_eq(blob[17], alias_golden[_i].lanes ? alias_golden[_i].lanes : 9u);
    ck_assert_uint_eq(test_fnv1a64(blob, nb), alias_golden[_i].h);
    free(w);
    free(tern);
    free(blob);
}
END_TEST

START_TEST(test_sub1_rejects_symbol_3)
{
    uint8_t tern[4 + 2] = { 0, 0, 0x80, 0x3f, 0x0c, 0 };   /* weight 1 has symbol 3 */
    uint8_t out[256];
    uint64_t nb;
    ck_assert_int_eq(qnt_sub1_encode(tern, 1, 5, out, sizeof out, &nb), SB_EINVAL);
    tern[4] = 0;
    tern[5] = 0x04;                                          /* padding bits set */
    ck_assert_int_eq(qnt_sub1_encode(tern, 1, 5, out, sizeof out, &nb), SB_EINVAL);
    tern[5] = 0x01;
    ck_assert_int_eq(qnt_sub1_encode(tern, 1, 5, out, sizeof out, &nb), SB_OK);
    ck_assert_int_eq(qnt_sub1_encode(tern, 1, 5, out, 10, &nb), SB_EINVAL);   /* cap */
}
END_TEST

TEST_SUITE(quant_sub1, 60, NULL, NULL,
    TEST_LOOP(test_sub1_round_trip, (int)(sizeof shapes / sizeof shapes[0])),
    TEST(test_sub1_damaged_stream), TEST_LOOP(test_sub1_rate_iid, 3),
    TEST_LOOP(test_sub1_matvec, 7), TEST(test_sub1_old_layout),
    TEST(test_sub1_rejects_symbol_3),
    TEST_LOOP(test_sub1_small_lanes, (int)(sizeof small_shapes / sizeof small_shapes[0])),
    TEST_LOOP(test_sub1_alias_golden, (int)(sizeof alias_golden / sizeof alias_golden[0])),
    TEST_LOOP(test_sub1_fast_encoder_is_ref,
              (int)(sizeof shapes / sizeof shapes[0] + sizeof enc_shapes / sizeof enc_shapes[0])))
