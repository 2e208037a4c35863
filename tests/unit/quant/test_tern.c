/* test_tern.c: the QMoE ternary grid: bf16 RNE levels (golden bits from
 * Python: torch.tensor(x).bfloat16() / struct), thresholds at half of each
 * level, byte layout, dequantize, matvec fast == ref bit for bit (and near the
 * double sum), thread independence. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_tern.h"
#include "qnt_ternary_impl.h"   /* qnt_tern_quantize_rows_kernel */
#include "test_util.h"

static const struct { float in; uint16_t want; } bf16_golden[] = {
    { 1.0f, 0x3F80 }, { -2.0f, 0xC000 }, { 0x1.01p0f, 0x3F80 },   /* tie to even (down) */
    { 0x1.03p0f, 0x3F82 },                                         /* tie to even (up) */
    { 0x1.0101p0f, 0x3F81 }, { 0.1f, 0x3DCD }, { 3.0e38f, 0x7F62 },
    { 3.4028235e38f, 0x7F80 },                                     /* rounds to inf */
};

START_TEST(test_tern_bf16_golden)
{
    ck_assert_uint_eq(qnt_tern_f32_to_bf16(bf16_golden[_i].in), bf16_golden[_i].want);
}
END_TEST

START_TEST(test_tern_grid_and_layout)
{
    /* row: max 1.0 -> hi 1.0, threshold 0.5; min -3.0 -> lo -3.0, threshold -1.5 */
    const float x[9] = { 1.0f, 0.5f, 0.50001f, -1.5f, -1.50001f, -3.0f, 0.0f, 0.2f, -0.7f };
    uint8_t b[4 + 3];
    qnt_tern_quantize_rows(x, 1, 9, b);
    ck_assert_uint_eq(b[0] | b[1] << 8, 0xC040);     /* lo = -3 */
    ck_assert_uint_eq(b[2] | b[3] << 8, 0x3F80);     /* hi = 1 */
    /* symbols: 2 0 2 0 1 1 0 0 0 -> byte0 = 2 | 0<<2 | 2<<4 | 0<<6, byte1 = 1 | 1<<2, byte2 = 0 */
    ck_assert_uint_eq(b[4], 0x22);
    ck_assert_uint_eq(b[5], 0x05);
    ck_assert_uint_eq(b[6], 0x00);
    float d[9];
    qnt_tern_dequantize_rows(b, 9, 0, 1, d);
    const float want[9] = { 1, 0, 1, 0, -3, -3, 0, 0, 0 };
    ck_assert_mem_eq(d, want, sizeof d);
    /* positive-only row: lo = 0 and no symbol 1; all-zero row: both levels 0 */
    const float p[3] = { 0.1f, 0.4f, 0.0f }, z[3] = { 0, 0, 0 };
    qnt_tern_quantize_rows(p, 1, 3, b);
    ck_assert_uint_eq(b[0] | b[1] << 8, 0);
    ck_assert_uint_eq(b[4], 0x02 << 2);
    qnt_tern_quantize_rows(z, 1, 3, b);
    ck_assert_uint_eq(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24, 0);
    ck_assert_uint_eq(b[4], 0);
}
END_TEST

START_TEST(test_tern_matvec)
{
    static const size_t sh[][2] = { { 33, 1000 }, { 7, 17 }, { 1, 1 }, { 130, 4096 } };
    size_t rows = sh[_i][0], cols = sh[_i][1];
    float *w = malloc(rows * cols * sizeof *w), *x = malloc(cols * sizeof *x);
    float *y0 = malloc(rows * 4), *y1 = malloc(rows * 4), *y2 = malloc(rows * 4);
    uint8_t *t = malloc(rows * qnt_tern_row_bytes(cols));
    test_fill_normal(w, rows * cols, 3 + (uint64_t)_i);
    test_fill_normal(x, cols, 4);
    qnt_tern_quantize_rows(w, rows, cols, t);
    qnt_tern_matvec_ref(t, rows, cols, x, y0);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    qnt_tern_matvec(t, rows, cols, x, y1);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    qnt_tern_matvec(t, rows, cols, x, y2);
    ck_assert_mem_eq(y1, y2, rows * 4);               /* thread count does not matter */
    ck_assert_mem_eq(y0, y1, rows * 4);               /* exact sums: fast is ref, bit for bit */
    qnt_tern_dequantize_rows(t, cols, 0, rows, w);
    for (size_t r = 0; r < rows; r++) {
        double d = 0, sa = 0;
        for (size_t j = 0; j < cols; j++) {
            d += (double)w[r * cols + j] * x[j];
            sa += fabs((double)w[r * cols + j] * x[j]);
        }
        ck_assert_double_le(fabs(y0[r] - d), 1e-6 * sa + 1e-30);
    }
    free(w);
    free(x);
    free(y0);
    free(y1);
    free(y2);
    free(t);
}
END_TEST

/* The fast quantizer (AVX-512 or AVX2 rows, OpenMP blocks) writes _ref's bytes, and
 * so does the portable kernel: random rows, each with a few specials
 * mixed in (NaN, +-inf, +-0, FLT_MAX, subnormals, values exactly at and
 * either side of the thresholds, which are half the bf16 levels), every
 * width from 1 to 70 (the 16-lane steps and the tails), then wide rows, at 1
 * and 3 threads; a row of one sign; all-NaN rows. */
START_TEST(test_tern_quantize_fast_is_ref)
{
    const size_t wide[] = { 1000, 4097, 16384 };
    const size_t cols = _i < 70 ? (size_t)_i + 1 : wide[_i - 70], rows = _i < 70 ? 9 : 20;
    const size_t rb = qnt_tern_row_bytes(cols);
    float *x = malloc(rows * cols * sizeof *x);
    uint8_t *a = malloc(rows * rb), *b = malloc(rows * rb);
    test_fill_normal(x, rows * cols, 900 + (uint64_t)_i);
    uint64_t st = 77 + (uint64_t)_i;
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        const float sp[] = { NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 3.4028235e38f,
                             -3.4028235e38f, 0x1p-149f, -0x1p-140f };
        for (size_t k = 0; k < 3 && cols > 1; k++)
            xr[test_rand_u64(&st) % cols] = sp[test_rand_u64(&st) % (sizeof sp / sizeof sp[0])];
        if (r == 1)                           /* one sign only */
            for (size_t j = 0; j < cols; j++)
                xr[j] = fabsf(xr[j]);
        if (r == 2)
            for (size_t j = 0; j < cols; j++)
                xr[j] = NAN;
        if (r >= 3 && cols > 2) {              /* exactly at the thresholds, and next to them */
            float mx = 0, mn = 0;
            for (size_t j = 0; j < cols; j++) {
                mx = xr[j] > mx ? xr[j] : mx;
                mn = xr[j] < mn ? xr[j] : mn;
            }
            const float thi = qnt_tern_bf16_to_f32(qnt_tern_f32_to_bf16(mx)) * 0.5f;
            const float tlo = qnt_tern_bf16_to_f32(qnt_tern_f32_to_bf16(mn)) * 0.5f;
            const float t[] = { thi, nextafterf(thi, 0), nextafterf(thi, INFINITY), tlo,
                                nextafterf(tlo, 0), nextafterf(tlo, -INFINITY) };
            for (size_t k = 0; k < 6; k++)
                if (isfinite(t[k]) && fabsf(t[k]) <= fmaxf(mx, -mn))
                    xr[test_rand_u64(&st) % cols] = t[k];
        }
    }
    qnt_tern_quantize_rows_ref(x, rows, cols, a);
    for (int k = 0; k < 6; k++) {              /* best, portable, AVX2 at most */
#ifdef _OPENMP
        omp_set_num_threads(k < 3 ? 1 : 3);
#endif
        memset(b, 0xA5, rows * rb);
        if (k % 3)
            qnt_tern_quantize_rows_kernel(k % 3, x, rows, cols, b);
        else
            qnt_tern_quantize_rows(x, rows, cols, b);
        ck_assert_mem_eq(a, b, rows * rb);
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(x);
    free(a);
    free(b);
}
END_TEST

TEST_SUITE(quant_tern, 0, NULL, NULL,
    TEST_LOOP(test_tern_bf16_golden, (int)(sizeof bf16_golden / sizeof bf16_golden[0])),
    TEST(test_tern_grid_and_layout), TEST_LOOP(test_tern_matvec, 4),
    TEST_LOOP(test_tern_quantize_fast_is_ref, 73))
