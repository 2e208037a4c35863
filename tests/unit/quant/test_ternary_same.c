/* test_ternary_same.c: tern, sub1 and sub1-qmoe hold the same ternary weights,
 * so their six matvecs (fast and _ref each) must give the same y bits, at 1
 * and at 4 threads; so must the SIMD variants this CPU would not pick
 * (portable and AVX2 tern, portable sub1). And those bits must be the exact
 * fixed-point sum the design states (qnt_ternary_impl.h), recomputed here the
 * plain way: scale 2^(40 - e) from frexp(max|x|), X = llrint(ldexp(x, s)),
 * int64 sums per symbol, (float)(lo * ldexp(S_lo, -s) + hi * ldexp(S_hi, -s)). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "sb_err.h"
#include "test_util.h"

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static void put_sym(uint8_t *row, size_t j, unsigned s)
{
    row[QNT_TERN_ROW_HDR + j / 4] |= (uint8_t)(s << (2 * (j % 4)));
}

/* A random tern blob, P(0) = 0.885, random bf16 levels lo < 0 < hi; row r % 6:
 * 1 all zero, 2 all symbol 1, 3 all symbol 2, 4 a single non-zero at the
 * last column, others random. */
static uint8_t *make_tern(size_t rows, size_t cols, uint64_t seed)
{
    const size_t rb = qnt_tern_row_bytes(cols);
    uint8_t *t = calloc(rows ? rows : 1, rb);
    uint64_t st = seed;
    for (size_t r = 0; r < rows; r++) {
        uint8_t *o = t + r * rb;
        float lv[2];
        test_fill_uniform(lv, 2, st + r, 0.01f, 3.0f);
        uint16_t lo = qnt_tern_f32_to_bf16(-lv[0]), hi = qnt_tern_f32_to_bf16(lv[1]);
        o[0] = (uint8_t)lo, o[1] = (uint8_t)(lo >> 8), o[2] = (uint8_t)hi, o[3] = (uint8_t)(hi >> 8);
        for (size_t j = 0; j < cols; j++) {
            unsigned s;
            double u = (double)(test_rand_u64(&st) >> 11) / 9007199254740992.0;
            switch (r % 6) {
            case 1: s = 0; break;
            case 2: s = 1; break;
            case 3: s = 2; break;
            case 4: s = j + 1 == cols ? 1 + (unsigned)(r / 6 % 2) : 0; break;
            default: s = u < 0.885 ? 0 : u < 0.9425 ? 1 : 2; break;
            }
            put_sym(o, j, s);
        }
    }
    return t;
}

/* The design, written out independently of the kernels. */
static void oracle(const uint8_t *t, size_t rows, size_t cols, const float *x, float *y)
{
    double m = 0;
    int fin = 1;
    for (size_t j = 0; j < cols; j++) {
        fin &= isfinite(x[j]) != 0;
        m = fabs(x[j]) > m ? fabs(x[j]) : m;
    }
    int e = 0;
    if (m > 0)
        frexp(m, &e);
    const int s = 40 - e;                     /* cols <= 2^23 here */
    const size_t rb = qnt_tern_row_bytes(cols);
    for (size_t r = 0; r < rows; r++) {
        if (!fin) {
            y[r] = NAN;
            continue;
        }
        const uint8_t *o = t + r * rb;
        long long S[3] = { 0, 0, 0 };
        for (size_t j = 0; j < cols; j++) {
            unsigned c = (o[QNT_TERN_ROW_HDR + j / 4] >> (2 * (j % 4))) & 3u;
            if (c == 1 || c == 2)
                S[c] += llrint(ldexp((double)x[j], s));
        }
        double lo = qnt_tern_bf16_to_f32((uint16_t)(o[0] | o[1] << 8));
        double hi = qnt_tern_bf16_to_f32((uint16_t)(o[2] | o[3] << 8));
        double a = S[1] ? lo * ldexp((double)S[1], -s) : 0.0;
        double b = S[2] ? hi * ldexp((double)S[2], -s) : 0.0;
        y[r] = (float)(a + b);
    }
}

struct enc {
    uint8_t *s1, *qm;
    uint64_t s1n, qmn;
};

static void encode_both(const uint8_t *t, size_t rows, size_t cols, struct enc *E)
{
    size_t cap = qnt_sub1_encode_bound(rows, cols);
    E->s1 = malloc(cap ? cap : 1);
    ck_assert_int_eq(qnt_sub1_encode(t, rows, cols, E->s1, cap, &E->s1n), SB_OK);
    ck_assert_int_eq(qnt_sub1_validate(E->s1, E->s1n, rows, cols), SB_OK);
    cap = qnt_qmoe_encode_bound(rows, cols);
    E->qm = malloc(cap ? cap : 1);
    ck_assert_int_eq(qnt_qmoe_encode(t, rows, cols, E->qm, cap, &E->qmn), SB_OK);
    ck_assert_int_eq(qnt_qmoe_validate(E->qm, E->qmn, rows, cols), SB_OK);
}

/* The oracle's y, then all six kernels at 1 and at 4 threads: the same bits
 * (for a non-finite x, NaN everywhere; every kernel writes the same NaN). */
static void check_all(const uint8_t *t, const struct enc *E, size_t rows, size_t cols,
                      const float *x)
{
    float *want = malloc((rows + 1) * sizeof *want), *y = malloc((rows + 1) * sizeof *y);
    float *first = malloc((rows + 1) * sizeof *first);
    oracle(t, rows, cols, x, want);
    for (int k = 0; k < 20; k++) {
        set_threads(k < 10 ? 1 : 4);
        memset(y, 0x55, rows * sizeof *y);
        switch (k % 10) {
        case 0: qnt_tern_matvec_ref(t, rows, cols, x, y); break;
        case 1: qnt_tern_matvec(t, rows, cols, x, y); break;
        case 2: qnt_sub1_matvec_ref(E->s1, E->s1n, rows, cols, x, y); break;
        case 3: qnt_sub1_matvec(E->s1, E->s1n, rows, cols, x, y); break;
        case 4: qnt_qmoe_matvec_ref(E->qm, E->qmn, rows, cols, x, y); break;
        case 5: qnt_qmoe_matvec(E->qm, E->qmn, rows, cols, x, y); break;
        /* the kernels this CPU would not pick */
        case 6: qnt_tern_matvec_kernel(1, t, rows, cols, x, y); break;
        case 7: qnt_tern_matvec_kernel(2, t, rows, cols, x, y); break;
        case 8: qnt_tern_matvec_kernel(3, t, rows, cols, x, y); break;
        default: qnt_sub1_matvec_generic(E->s1, E->s1n, rows, cols, x, y); break;
        }
        for (size_t r = 0; r < rows; r++) {
            if (isnan(want[r]))
                ck_assert_msg(isnan(y[r]), "kernel %d row %zu: want NaN, got %a", k, r, (double)y[r]);
            else
                ck_assert_msg(memcmp(&y[r], &want[r], 4) == 0, "kernel %d row %zu: %a != %a", k, r,
                              (double)y[r], (double)want[r]);
        }
        if (k == 0)
            memcpy(first, y, rows * sizeof *y);
        else
            ck_assert_mem_eq(y, first, rows * sizeof *y);   /* NaN bits too */
    }
    set_threads(1);
    free(first);
    free(want);
    free(y);
}

/* shapes: odd columns, length-1 rows, one row, the tern kernel's 2048-column
 * block and 16-row tile edges, multi-row sub1 chunks, one-row chunks (cols >
 * 65536), enough work (> 65536 weights) for OpenMP to split */
static const size_t same_shapes[][2] = {
    { 37, 1001 }, { 5, 1 }, { 1, 1 }, { 53, 2065 }, { 300, 64 }, { 6, 70001 }, { 17, 16 },
    { 12, 3 },
};

START_TEST(test_ternary_same_random)
{
    const size_t rows = same_shapes[_i][0], cols = same_shapes[_i][1];
    uint8_t *t = make_tern(rows, cols, 100 + (uint64_t)_i);
    struct enc E;
    encode_both(t, rows, cols, &E);
    float *x = malloc(cols * sizeof *x);
    test_fill_normal(x, cols, 7 + (uint64_t)_i);
    check_all(t, &E, rows, cols, x);
    /* a wide dynamic range: tiny values round in fixed point, huge ones set s */
    for (size_t j = 0; j < cols; j++)
        x[j] *= j % 3 == 0 ? 1e-30f : j % 3 == 1 ? 1.0f : 1e30f;
    check_all(t, &E, rows, cols, x);
    /* subnormals only (s = 40 - e up to 188) */
    for (size_t j = 0; j < cols; j++)
        x[j] = (float)((int)(j % 7) - 3) * 0x1p-149f;
    check_all(t, &E, rows, cols, x);
    /* x all zero: every y is +0 */
    memset(x, 0, cols * sizeof *x);
    check_all(t, &E, rows, cols, x);
    /* one inf, then one NaN: every y is NaN */
    x[cols / 2] = -INFINITY;
    check_all(t, &E, rows, cols, x);
    x[cols / 2] = NAN;
    check_all(t, &E, rows, cols, x);
    free(x);
    free(t);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* Golden: max|x| = 2 -> frexp e = 2, s = 38; levels lo = -0.5, hi = 1.5.
 * x = {2, 0.75, -1, 1 + 2^-23, 2^-40, 2^-39, 3 * 2^-39} -> X = {2^39,
 * 3 * 2^36, -2^38, 2^38 + 2^15, round(1/4) = 0, round(1/2) = 0, round(3/2)
 * = 2} (ties to even). Row 0, symbols 2 1 2 2 0 0 0: S_hi = 2^39 + 2^15,
 * S_lo = 3 * 2^36, y = 1.5 * (2 + 2^-23) - 0.5 * 0.75 = 2.625 + 0.75 * 2^-22
 * -> float 2.625 + 2^-22 (ulp 2^-22 there). Row 1: symbol 2 at x[4], x[5],
 * both X = 0 -> y = +0, where a float sum gives 1.5 * 3 * 2^-40: the fixed
 * point drops what is under max|x| * 2^-41, by design. Row 2: symbol 2 at
 * x[6] -> y = 1.5 * 2 * 2^-38 = 3 * 2^-38 (truncation would give half). */
START_TEST(test_ternary_same_golden)
{
    const size_t cols = 7, rows = 3, rb = qnt_tern_row_bytes(cols);
    uint8_t t[3 * 6] = { 0 };
    const uint16_t lo = 0xBF00, hi = 0x3FC0;      /* -0.5, 1.5 */
    for (size_t r = 0; r < rows; r++) {
        t[r * rb] = (uint8_t)lo, t[r * rb + 1] = (uint8_t)(lo >> 8);
        t[r * rb + 2] = (uint8_t)hi, t[r * rb + 3] = (uint8_t)(hi >> 8);
    }
    const unsigned s0[4] = { 2, 1, 2, 2 };
    for (size_t j = 0; j < 4; j++)
        put_sym(t, j, s0[j]);
    put_sym(t + rb, 4, 2);
    put_sym(t + rb, 5, 2);
    put_sym(t + 2 * rb, 6, 2);
    const float x[7] = { 2.0f, 0.75f, -1.0f, 1.0f + 0x1p-23f, 0x1p-40f, 0x1p-39f, 0x3p-39f };
    struct enc E;
    encode_both(t, rows, cols, &E);
    float y[3];
    qnt_tern_matvec_ref(t, rows, cols, x, y);
    ck_assert_float_eq(y[0], 2.625f + 0x1p-22f);
    ck_assert_float_eq(y[1], 0.0f);
    ck_assert(!signbit(y[1]));
    ck_assert_float_eq(y[2], 0x3p-38f);
    check_all(t, &E, rows, cols, x);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* The quantizer rounds a row maximum of FLT_MAX to hi = +inf (bf16 0x7F80),
 * and no weight can exceed inf / 2, so symbol 2 is unused: the row must give
 * lo * S_lo, not inf * 0 = NaN. */
START_TEST(test_ternary_same_inf_level)
{
    const float w[4] = { 3.4028235e38f, -1.0f, 0.0f, -0.75f };
    const float x[4] = { 1.0f, 2.0f, 3.0f, -4.0f };
    uint8_t t[4 + 1];
    qnt_tern_quantize_rows(w, 1, 4, t);
    ck_assert_uint_eq(t[2] | t[3] << 8, 0x7F80);
    ck_assert_uint_eq(t[4], 0x01 << 2 | 0x01 << 6);      /* symbols 0 1 0 1 */
    struct enc E;
    encode_both(t, 1, 4, &E);
    float y;
    qnt_tern_matvec_ref(t, 1, 4, x, &y);
    ck_assert_float_eq(y, 2.0f);                          /* -1 * (2 - 4) */
    check_all(t, &E, 1, 4, x);
    free(E.s1);
    free(E.qm);
}
END_TEST

Suite *quant_ternary_same_suite(void)
{
    Suite *s = suite_create("ternary_same");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_ternary_same_random, 0,
                        (int)(sizeof same_shapes / sizeof same_shapes[0]));
    tcase_add_test(tc, test_ternary_same_golden);
    tcase_add_test(tc, test_ternary_same_inf_level);
    suite_add_tcase(s, tc);
    return s;
}
