/* test_int8.c: row-wise symmetric int8 (qnt_int8.h): hand-computed blobs,
 * group and f16-scale layouts, error bounds, row ranges; and the error stats
 * (qnt_stats.h) on hand-computed numbers. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qnt_cast.h"
#include "qnt_int8.h"
#include "qnt_stats.h"
#include "sb_err.h"
#include "test_util.h"

static uint64_t blob_size(size_t rows, size_t cols, const struct sb_qparams *qp)
{
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t n = 0;
    ck_assert_int_eq(sb_dtype_nbytes(SB_DTYPE_INT8, shape, 2, qp, &n), SB_OK);
    return n;
}

START_TEST(test_int8_golden_row)
{
    /* amax 127: s = 1; -62.5 ties away from zero to -63 (even would be -62) */
    const float x[2][4] = { { 127.0f, -62.5f, 0.5f, 0.0f }, { 0, 0, 0, 0 } };
    unsigned char blob[2 * 4 + 2 * 4 + 8];
    memset(blob, 0xEE, sizeof blob);
    qnt_int8_quantize_rows(&x[0][0], 2, 4, NULL, blob);
    ck_assert_uint_eq(blob_size(2, 4, NULL), 16);
    static const unsigned char want[16] = {
        127, 0xC1, 1, 0, 0, 0, 0, 0,           /* codes: 127, -63, 1, 0; zero row */
        0x00, 0x00, 0x80, 0x3F, 0, 0, 0, 0,    /* scales f32 LE: 1.0, 0.0 */
    };
    ck_assert_mem_eq(blob, want, 16);
    for (int i = 16; i < (int)sizeof blob; i++)
        ck_assert_uint_eq(blob[i], 0xEE);      /* nothing past sb_dtype_nbytes */
    float back[8];
    qnt_int8_dequantize_rows(blob, 2, 4, NULL, 0, 2, back);
    ck_assert(back[0] == 127.0f && back[1] == -63.0f && back[2] == 1.0f && back[3] == 0.0f);
    for (int i = 4; i < 8; i++)
        ck_assert(back[i] == 0.0f);
}
END_TEST

START_TEST(test_int8_golden_groups_f16)
{
    /* cols 5, G 2: groups {127, 62.5} s 1 (62.5 -> 63), {0, 0} s 0, {-254} s 2 (last group short) */
    const float x[5] = { 127.0f, 62.5f, 0.0f, 0.0f, -254.0f };
    struct sb_qparams qp = { .group = 2, .scale_dtype = SB_DTYPE_F16 };
    unsigned char blob[5 + 3 * 2 + 4];
    memset(blob, 0xEE, sizeof blob);
    ck_assert_uint_eq(qnt_int8_groups(5, &qp), 3);
    ck_assert_uint_eq(blob_size(1, 5, &qp), 11);
    qnt_int8_quantize_rows(x, 1, 5, &qp, blob);
    static const unsigned char want[11] = { 127, 63, 0, 0, 0x81, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x40 };
    ck_assert_mem_eq(blob, want, 11);
    ck_assert_uint_eq(blob[11], 0xEE);
    float back[5];
    qnt_int8_dequantize_rows(blob, 1, 5, &qp, 0, 1, back);
    ck_assert(back[0] == 127.0f && back[1] == 63.0f && back[2] == 0.0f && back[4] == -254.0f);
}
END_TEST

/* The f16 scale is rounded before quantizing: amax 100 gives s = 100/127 =
 * 0.787401..., fp16 0x3A4D = 0.787597... (Python struct.pack('<e')); the codes
 * use that: 100/s16 = 126.97 -> 127, -50/s16 = -63.48 -> -63, 0.4/s16 = 0.51 -> 1. */
START_TEST(test_int8_f16_scale_consistent)
{
    const float x[3] = { 100.0f, -50.0f, 0.4f };
    struct sb_qparams qp = { .scale_dtype = SB_DTYPE_F16 };
    unsigned char blob[3 + 2];
    qnt_int8_quantize_rows(x, 1, 3, &qp, blob);
    uint16_t h;
    memcpy(&h, blob + 3, 2);
    ck_assert_uint_eq(h, 0x3A4D);
    const float s16 = qnt_f16_to_f32_ref(0x3A4D);
    ck_assert_int_eq((int8_t)blob[0], 127);
    ck_assert_int_eq((int8_t)blob[1], (int)roundf(-50.0f / s16));   /* -63.48 -> -63 */
    ck_assert_int_eq((int8_t)blob[1], -63);
    ck_assert_int_eq((int8_t)blob[2], 1);                            /* 0.508 -> 1 */
}
END_TEST

/* Random rows: |x - code*s| <= s/2 (+ the clamp excess when an f16 scale
 * rounded down), every group; row ranges match the full dequantization. */
START_TEST(test_int8_bounds)
{
    static const uint32_t groups[] = { 0, 32, 48, 7 };
    const size_t rows = 37, cols = 100;
    struct sb_qparams qp = { .group = groups[_i % 4],
                             .scale_dtype = (_i / 4) ? SB_DTYPE_F16 : SB_DTYPE_F32 };
    float *x = malloc(rows * cols * 4), *back = malloc(rows * cols * 4), *part = malloc(rows * cols * 4);
    const uint64_t nb = blob_size(rows, cols, &qp);
    unsigned char *blob = malloc(nb + 16);
    memset(blob + nb, 0xEE, 16);
    test_fill_normal(x, rows * cols, 500 + (uint64_t)_i);
    for (size_t j = 0; j < cols; j++)
        x[3 * cols + j] = 0.0f;                    /* a zero row */
    x[5 * cols + 7] = NAN;                         /* NaN -> code 0 */
    x[6 * cols] = 1e-9f;                           /* f16 scale underflows to 0 for small groups */
    qnt_int8_quantize_rows(x, rows, cols, &qp, blob);
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(blob[nb + (size_t)i], 0xEE);
    qnt_int8_dequantize_rows(blob, rows, cols, &qp, 0, rows, back);
    const size_t glen = qp.group ? qp.group : cols;
    for (size_t r = 0; r < rows; r++)
        for (size_t g0 = 0; g0 < cols; g0 += glen) {
            const size_t g1 = g0 + glen < cols ? g0 + glen : cols;
            float amax = 0;
            for (size_t j = g0; j < g1; j++)
                amax = fmaxf(amax, fabsf(x[r * cols + j]));
            float s = amax / 127.0f;
            if (qp.scale_dtype == SB_DTYPE_F16)
                s = qnt_f16_to_f32_ref(qnt_f32_to_f16_ref(s));
            const double excess = fmax(0.0, (double)amax - 127.0 * s);
            for (size_t j = g0; j < g1; j++) {
                const float v = x[r * cols + j], b = back[r * cols + j];
                if (isnan(v)) {
                    ck_assert(b == 0.0f);
                    continue;
                }
                ck_assert_msg(fabs((double)v - b) <= 0.5 * s * (1 + 1e-6) + excess + (s == 0 ? amax : 0),
                              "r=%zu j=%zu x=%g back=%g s=%g", r, j, v, b, s);
                ck_assert(fabsf(b) <= 127.0f * s);
            }
        }
    for (size_t j = 0; j < cols; j++)
        ck_assert(back[3 * cols + j] == 0.0f);
    qnt_int8_dequantize_rows(blob, rows, cols, &qp, 11, 9, part);
    ck_assert(!memcmp(part, back + 11 * cols, 9 * cols * 4));
    free(x);
    free(back);
    free(part);
    free(blob);
}
END_TEST

START_TEST(test_stats_golden)
{
    struct qnt_err_stats st = { 0 };
    const float ref[3] = { 3, 4, 0 }, got[3] = { 3, 3, 0 };
    qnt_err_stats_add(&st, ref, got, 2);
    qnt_err_stats_add(&st, ref + 2, got + 2, 1);
    qnt_err_stats_finish(&st);
    ck_assert_uint_eq(st.n, 3);
    ck_assert(st.sum_sq_ref == 25.0 && st.sum_sq_err == 1.0 && st.max_abs == 1.0);
    ck_assert_double_eq_tol(st.rmse, sqrt(1.0 / 3.0), 1e-15);
    ck_assert_double_eq_tol(st.sqnr_db, 13.979400086720377, 1e-12);   /* 10 log10 25 */
    struct qnt_err_stats z = { 0 };
    qnt_err_stats_add(&z, ref, ref, 3);
    qnt_err_stats_finish(&z);
    ck_assert(isinf(z.sqnr_db) && z.sqnr_db > 0 && z.rmse == 0.0);
    struct qnt_err_stats m = { 0 }, a = { 0 };
    qnt_err_stats_add(&a, ref, got, 3);
    qnt_err_stats_merge(&m, &a);
    qnt_err_stats_finish(&m);
    ck_assert(m.sqnr_db == st.sqnr_db && m.max_abs == 1.0);
}
END_TEST

TEST_SUITE(quant_int8, 0, NULL, NULL,
    TEST(test_int8_golden_row), TEST(test_int8_golden_groups_f16),
    TEST(test_int8_f16_scale_consistent), TEST_LOOP(test_int8_bounds, 8),
    TEST(test_stats_golden))
