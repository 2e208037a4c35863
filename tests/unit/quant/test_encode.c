/* test_encode.c: the generic encode/decode switch (qnt_encode.h): each
 * encoding matches its own kernel, sizes match sb_dtype_nbytes, bytes are the
 * same at 1 and 4 threads, row ranges, error codes; plain conversions in all
 * directions, including the f64 double-rounding trap. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_cast.h"
#include "qnt_encode.h"
#include "qnt_ggml.h"
#include "qnt_int8.h"
#include "qnt_tern.h"
#include "sb_err.h"
#include "test_util.h"

static const enum sb_dtype encs[] = {
    SB_DTYPE_F32, SB_DTYPE_F16, SB_DTYPE_BF16, SB_DTYPE_F64, SB_DTYPE_Q8_0, SB_DTYPE_Q4_0,
    SB_DTYPE_TQ1_0, SB_DTYPE_TQ2_0, SB_DTYPE_INT8, SB_DTYPE_TERN,
};
#define NENC (int)(sizeof encs / sizeof encs[0])

static size_t nbytes(enum sb_dtype dt, size_t rows, size_t cols, const struct sb_qparams *qp)
{
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t n = 0;
    ck_assert_int_eq(sb_dtype_nbytes(dt, shape, 2, qp, &n), SB_OK);
    return (size_t)n;
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* 600 rows of 512: several parallel chunks; the last row range is partial. */
START_TEST(test_threads_and_kernels)
{
    const enum sb_dtype dt = encs[_i];
    const size_t rows = 600, cols = 512;
    const struct sb_qparams qp = { .group = 64, .scale_dtype = SB_DTYPE_F16 };
    const size_t nb = nbytes(dt, rows, cols, &qp);
    float *x = malloc(rows * cols * 4), *back = malloc(rows * cols * 4), *part = malloc(rows * cols * 4);
    unsigned char *a = malloc(nb + 64), *b = malloc(nb + 64), *k = malloc(nb + 64);
    test_fill_normal(x, rows * cols, 99 + (uint64_t)_i);
    memset(a, 0xEE, nb + 64);
    memset(b, 0x11, nb + 64);
    set_threads(1);
    ck_assert_int_eq(qnt_quantize_rows(dt, x, rows, cols, &qp, a), SB_OK);
    set_threads(4);
    ck_assert_int_eq(qnt_quantize_rows(dt, x, rows, cols, &qp, b), SB_OK);
    ck_assert(!memcmp(a, b, nb));
    for (int i = 0; i < 64; i++)
        ck_assert_uint_eq(a[nb + (size_t)i], 0xEE);    /* exactly sb_dtype_nbytes written */
    /* the same bytes as the encoding's own kernel over the flat array */
    const size_t n = rows * cols;
    switch (dt) {
    case SB_DTYPE_F32: memcpy(k, x, n * 4); break;
    case SB_DTYPE_F16: qnt_f32_to_f16_array_ref(x, (uint16_t *)(void *)k, n); break;
    case SB_DTYPE_BF16: qnt_f32_to_bf16_array_ref(x, (uint16_t *)(void *)k, n); break;
    case SB_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d = x[i];
            memcpy(k + 8 * i, &d, 8);
        }
        break;
    case SB_DTYPE_Q8_0: qnt_q8_0_quantize_ref(x, (void *)k, n); break;
    case SB_DTYPE_Q4_0: qnt_q4_0_quantize_ref(x, (void *)k, n); break;
    case SB_DTYPE_TQ1_0: qnt_tq1_0_quantize_ref(x, (void *)k, n); break;
    case SB_DTYPE_TQ2_0: qnt_tq2_0_quantize_ref(x, (void *)k, n); break;
    case SB_DTYPE_INT8: set_threads(1); qnt_int8_quantize_rows(x, rows, cols, &qp, k); break;
    case SB_DTYPE_TERN: qnt_tern_quantize_rows(x, rows, cols, k); break;
    default: ck_abort();
    }
    ck_assert(!memcmp(a, k, nb));
    /* decode: whole tensor at 1 and 4 threads, and a row range */
    set_threads(1);
    ck_assert_int_eq(qnt_dequantize_rows(dt, a, rows, cols, &qp, 0, rows, back), SB_OK);
    set_threads(4);
    ck_assert_int_eq(qnt_dequantize_rows(dt, a, rows, cols, &qp, 0, rows, part), SB_OK);
    ck_assert(!memcmp(back, part, n * 4));
    ck_assert_int_eq(qnt_dequantize_rows(dt, a, rows, cols, &qp, 257, 300, part), SB_OK);
    ck_assert(!memcmp(part, back + 257 * cols, 300 * cols * 4));
    if (dt == SB_DTYPE_F32 || dt == SB_DTYPE_F64)
        ck_assert(!memcmp(back, x, n * 4));
    if (dt == SB_DTYPE_Q8_0) {
        qnt_q8_0_dequantize((const void *)a, part, n);
        ck_assert(!memcmp(back, part, n * 4));
    }
    set_threads(1);
    free(x);
    free(back);
    free(part);
    free(a);
    free(b);
    free(k);
}
END_TEST

START_TEST(test_errors)
{
    float x[64] = { 0 }, y[64];
    unsigned char buf[256];
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_Q8_0, x, 1, 33, NULL, buf), SB_EINVAL);
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_TQ2_0, x, 1, 64, NULL, buf), SB_EINVAL);
    ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_Q4_0, buf, 1, 48, NULL, 0, 1, y), SB_EINVAL);
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_IQ2_XXS, x, 1, 256, NULL, buf), SB_EUNSUPPORTED);
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_SUB1, x, 1, 32, NULL, buf), SB_EUNSUPPORTED);
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_I8, x, 1, 32, NULL, buf), SB_EUNSUPPORTED);
    ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_IQ1_S, buf, 1, 256, NULL, 0, 1, y), SB_EUNSUPPORTED);
    /* row range past the end */
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_Q8_0, x, 2, 32, NULL, buf), SB_OK);
    ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_Q8_0, buf, 2, 32, NULL, 1, 2, y), SB_EINVAL);
    ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_Q8_0, buf, 2, 32, NULL, (size_t)-1, 2, y), SB_EINVAL);
    ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_Q8_0, buf, 2, 32, NULL, 2, 0, y), SB_OK);
    ck_assert_int_eq(qnt_convert_plain(SB_DTYPE_I32, x, SB_DTYPE_F32, y, 1), SB_EUNSUPPORTED);
    ck_assert_int_eq(qnt_convert_plain(SB_DTYPE_F32, x, SB_DTYPE_Q8_0, y, 1), SB_EUNSUPPORTED);
}
END_TEST

/* f64 -> f16/bf16 must round once. 1 + 2^-11 + 2^-40 is just above the f16
 * tie between 1 (0x3C00) and 1 + 2^-10 (0x3C01): the answer is 0x3C01, while
 * rounding to f32 first drops the 2^-40 and the tie then goes to even, 0x3C00.
 * Same for bf16 with 1 + 2^-8 + 2^-40 (0x3F81, not 0x3F80). */
START_TEST(test_convert_double_rounding)
{
    const double d[6] = { 1 + 0x1p-11 + 0x1p-40, 1 + 0x1p-8 + 0x1p-40, 1 + 0x1p-11, -(1 + 0x1p-11 + 0x1p-40),
                          1e300, 0x1p-25 + 0x1p-60 };
    uint16_t h[6], b[6];
    float f[6];
    ck_assert_int_eq(qnt_convert_plain(SB_DTYPE_F64, d, SB_DTYPE_F16, h, 6), SB_OK);
    ck_assert_int_eq(qnt_convert_plain(SB_DTYPE_F64, d, SB_DTYPE_BF16, b, 6), SB_OK);
    ck_assert_int_eq(qnt_convert_plain(SB_DTYPE_F64, d, SB_DTYPE_F32, f, 6), SB_OK);
    ck_assert_uint_eq(h[0], 0x3C01);
    ck_assert_uint_eq(h[2], 0x3C00);           /* the exact tie still goes to even */
    ck_assert_uint_eq(h[3], 0xBC01);
    ck_assert_uint_eq(h[4], 0x7C00);
    ck_assert_uint_eq(h[5], 0x0001);           /* just above half the least subnormal */
    ck_assert_uint_eq(b[1], 0x3F81);
    ck_assert_uint_eq(b[4], 0x7F80);
    ck_assert(f[0] == (float)d[0] && f[2] == 1.0f + 0x1p-11f);
    ck_assert(isinf(f[4]));
}
END_TEST

/* All 12 directions on values that exercise rounding, NaN, inf, subnormals:
 * the result equals the composition of the exact `_ref` casts (single
 * rounding is possible whenever the source is f32/f16/bf16, since f16/bf16 -> f32 is exact). */
START_TEST(test_convert_all_directions)
{
    static const enum sb_dtype p[4] = { SB_DTYPE_F32, SB_DTYPE_F16, SB_DTYPE_BF16, SB_DTYPE_F64 };
    enum { N = 1000 };
    static float x[N];
    static unsigned char src[N * 8], dst[N * 8];
    test_fill_normal(x, N, 3);
    for (int i = 0; i < N; i += 7)
        x[i] *= 1e5f;
    x[1] = NAN;
    x[2] = -INFINITY;
    x[3] = 0x1p-140f;
    x[4] = -0.0f;
    x[5] = 65520.0f;
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++) {
            /* source values: x cast to p[s] with the ref casts */
            for (int i = 0; i < N; i++) {
                uint16_t h;
                double d = x[i];
                switch (p[s]) {
                case SB_DTYPE_F32: memcpy(src + 4 * i, &x[i], 4); break;
                case SB_DTYPE_F16: h = qnt_f32_to_f16_ref(x[i]); memcpy(src + 2 * i, &h, 2); break;
                case SB_DTYPE_BF16: h = qnt_f32_to_bf16_ref(x[i]); memcpy(src + 2 * i, &h, 2); break;
                default: memcpy(src + 8 * i, &d, 8); break;
                }
            }
            ck_assert_int_eq(qnt_convert_plain(p[s], src, p[t], dst, N), SB_OK);
            for (int i = 0; i < N; i++) {
                float v;   /* the source value as f32 (exact for all four here) */
                uint16_t h;
                double d;
                switch (p[s]) {
                case SB_DTYPE_F32: memcpy(&v, src + 4 * i, 4); break;
                case SB_DTYPE_F16: memcpy(&h, src + 2 * i, 2); v = qnt_f16_to_f32_ref(h); break;
                case SB_DTYPE_BF16: memcpy(&h, src + 2 * i, 2); v = qnt_bf16_to_f32_ref(h); break;
                default: memcpy(&d, src + 8 * i, 8); v = (float)d; break;
                }
                unsigned char want[8];
                switch (p[t]) {
                case SB_DTYPE_F32: memcpy(want, &v, 4); break;
                case SB_DTYPE_F16: h = qnt_f32_to_f16_ref(v); memcpy(want, &h, 2); break;
                case SB_DTYPE_BF16: h = qnt_f32_to_bf16_ref(v); memcpy(want, &h, 2); break;
                default: d = v; memcpy(want, &d, 8); break;
                }
                const size_t ts = p[t] == SB_DTYPE_F64 ? 8 : p[t] == SB_DTYPE_F32 ? 4 : 2;
                if (isnan(v) && p[t] == SB_DTYPE_F64) {
                    memcpy(&d, dst + ts * i, 8);
                    ck_assert(isnan(d));
                    continue;
                }
                ck_assert_msg(!memcmp(dst + ts * i, want, ts), "%s -> %s at %d", sb_dtype_name(p[s]),
                              sb_dtype_name(p[t]), i);
            }
        }
}
END_TEST

TEST_SUITE(quant_encode, 60, NULL, NULL,
    TEST_LOOP(test_threads_and_kernels, NENC), TEST(test_errors),
    TEST(test_convert_double_rounding), TEST(test_convert_all_directions))
