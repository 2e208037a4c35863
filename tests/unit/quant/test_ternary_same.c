/* test_ternary_same.c: tern, sub1 and sub1-qmoe hold the same ternary weights,
 * so their six matvecs (fast and _ref each) must give the same y bits, at 1
 * and at 4 threads; so must the SIMD variants this CPU would not pick
 * (portable and AVX2 tern, portable sub1). And those bits must be the exact
 * fixed-point sum the design states (qnt_ternary_impl.h), recomputed here the
 * plain way: scale 2^(40 - e) from frexp(max|x|), X = llrint(ldexp(x, s)),
 * int64 sums per symbol, (float)(lo * ldexp(S_lo, -s) + hi * ldexp(S_hi, -s)). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_matvec.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "qnt_ternary_impl.h"
#include "qnt_tmm_impl.h"
#include "sb_alloc.h"
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

/* Where the output's two products must not fuse into the add: lo = 2,
 * S_lo = 2^39 (x = 0.5, so s = 40) gives a = 1 exactly; hi = 165 * 2^-40,
 * S_hi = 436712691952398 gives hi * S_hi * 2^-40 = 2^-24 + 2^-53 + 6 * 2^-80
 * (exact), which rounds to 2^-24 + 2^-53 in double; 1 + that is a double tie
 * that rounds to even, 1 + 2^-24, a float tie that rounds to even: y = 1.
 * With one rounding (FMA) the sum is above the tie: y = 1 + 2^-23. (Found
 * with Python's fractions: exact products, float() rounding.) S_hi is 794
 * columns of 0.5 and two more holding 206575725326 * 2^-40 in two floats. */
static void fma_row(uint8_t *t, size_t rb, float *x)
{
    const size_t cols = 797;
    const uint16_t lo = qnt_tern_f32_to_bf16(2.0f), hi = qnt_tern_f32_to_bf16(165.0f * 0x1p-40f);
    ck_assert_float_eq(qnt_tern_bf16_to_f32(hi), 165.0f * 0x1p-40f);
    memset(t, 0, rb);
    t[0] = (uint8_t)lo, t[1] = (uint8_t)(lo >> 8), t[2] = (uint8_t)hi, t[3] = (uint8_t)(hi >> 8);
    put_sym(t, 0, 1);
    x[0] = 0.5f;
    for (size_t j = 1; j < cols; j++) {
        put_sym(t, j, 2);
        x[j] = 0.5f;
    }
    const int64_t r = 436712691952398ll - 794ll * ((int64_t)1 << 39);
    ck_assert_int_eq(r, 206575725326ll);
    x[cols - 2] = (float)ldexp((double)(r >> 14 << 14), -40);   /* 24 bits each, exact */
    x[cols - 1] = (float)ldexp((double)(r & 0x3fff), -40);
}

START_TEST(test_ternary_same_no_fma)
{
    const size_t cols = 797, rb = qnt_tern_row_bytes(cols), n = 11;
    uint8_t t[4 + 200];
    float x[797], *X = malloc(n * cols * sizeof *X), Y[11];
    ck_assert_uint_le(rb, sizeof t);
    fma_row(t, rb, x);
    float y;
    qnt_tern_matvec_ref(t, 1, cols, x, &y);
    ck_assert_float_eq(y, 1.0f);
    struct enc E;
    encode_both(t, 1, cols, &E);
    check_all(t, &E, 1, cols, x);
    /* and the batched paths, 8 tokens of a block and 3 more */
    for (size_t k = 0; k < n; k++)
        memcpy(X + k * cols, x, sizeof x);
    const enum sb_dtype dt[3] = { SB_DTYPE_TERN, SB_DTYPE_SUB1, SB_DTYPE_SUB1_QMOE };
    const void *w[3] = { t, E.s1, E.qm };
    const uint64_t nb[3] = { rb, E.s1n, E.qmn };
    for (int e = 0; e < 3; e++) {
        memset(Y, 0, sizeof Y);
        qnt_matmul(dt[e], w[e], nb[e], NULL, 1, cols, X, n, Y);
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(Y[k] == 1.0f, "%s token %zu: %a", sb_dtype_name(dt[e]), k, (double)Y[k]);
    }
    free(X);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* ---- batched: Y = X W^T over row ranges --------------------------------------- */

/* n tokens: normal, except token 1 spans 1e-30 .. 1e30, token 2 is all zero,
 * token 4 has a NaN (its y: NaN everywhere) and token 6 an inf. */
static float *batch_x(size_t n, size_t cols, uint64_t seed)
{
    float *X = malloc((n ? n : 1) * (cols ? cols : 1) * sizeof *X);
    test_fill_normal(X, n * cols, seed);
    for (size_t j = 0; j < cols; j++) {
        if (n > 1)
            X[cols + j] *= j % 3 == 0 ? 1e-30f : j % 3 == 1 ? 1.0f : 1e30f;
        if (n > 2)
            X[2 * cols + j] = 0.0f;
    }
    if (n > 4 && cols)
        X[4 * cols + cols / 2] = NAN;
    if (n > 6 && cols)
        X[6 * cols + cols - 1] = INFINITY;
    return X;
}

/* y of rows row0 .. row0+nrows-1 for n tokens against the oracle (all rows) */
static void batch_expect(const float *want, size_t rows, size_t row0, size_t nrows, size_t n,
                         const float *Y, const char *what, size_t nn)
{
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < nrows; i++) {
            const float w = want[t * rows + row0 + i], y = Y[t * nrows + i];
            if (isnan(w))
                ck_assert_msg(isnan(y), "%s n %zu token %zu row %zu: want NaN, got %a", what, nn,
                              t, row0 + i, (double)y);
            else
                ck_assert_msg(memcmp(&y, &w, 4) == 0, "%s n %zu token %zu row %zu: %a != %a",
                              what, nn, t, row0 + i, (double)y, (double)w);
        }
}

/* shapes: as above, plus several sub1 chunks (100 x 4096: 64-row chunks;
 * 40 x 16384: 16-row chunks) */
static const size_t batch_shapes[][3] = {   /* rows, cols, largest n */
    { 37, 1001, 19 }, { 5, 1, 19 }, { 1, 1, 9 }, { 53, 2065, 9 }, { 300, 64, 19 },
    { 6, 70001, 3 }, { 17, 16, 19 }, { 12, 3, 19 }, { 100, 4096, 9 }, { 40, 16384, 3 },
};

/* Every batched path (the batched kernel of each encoding, best and
 * portable; qnt_matmul_rows and its _ref) against the oracle, bit for bit:
 * batch sizes 1 .. largest n, 1 / 2 / 3 threads, token groups of 8 and
 * automatic, four row ranges. */
START_TEST(test_ternary_batch)
{
    const size_t rows = batch_shapes[_i][0], cols = batch_shapes[_i][1], nmax = batch_shapes[_i][2];
    uint8_t *t = make_tern(rows, cols, 300 + (uint64_t)_i);
    struct enc E;
    encode_both(t, rows, cols, &E);
    float *X = batch_x(nmax, cols, 40 + (uint64_t)_i);
    float *want = malloc(nmax * rows * sizeof *want), *Y = malloc(nmax * rows * sizeof *Y);
    for (size_t k = 0; k < nmax; k++)
        oracle(t, rows, cols, X + k * cols, want + k * rows);
    const size_t ranges[4][2] = { { 0, rows }, { rows > 2 ? 1 : 0, rows > 2 ? rows - 2 : rows },
                                  { rows - 1, 1 }, { 0, 1 } };
    const uint64_t tn = rows * qnt_tern_row_bytes(cols);
    /* big shapes (slow oracle, parallel regions): a few batch sizes */
    const int big = rows * cols > 100000;
    for (size_t n = 1; n <= nmax; n += big ? (n < 3 ? 1 : 6) : n < 10 ? 1 : 9) {
        for (int th = 1; th <= 3; th++) {
            set_threads(th);
            qnt_tmm_set_group(th == 2 ? 8 : 0);   /* several groups of 8 tokens */
            for (int ri = 0; ri < 4; ri++) {
                const size_t row0 = ranges[ri][0], nr = ranges[ri][1];
                for (int v = 0; v < 15; v++) {
                    /* best, portable; then the AVX2 sums (2) of the three encodings */
                    const int kern = v < 12 ? v % 2 : 2, cs = v < 12 ? v / 2 : v - 12;
                    if (v == 11 && th > 1)
                        continue;              /* the reference runs on one thread */
                    memset(Y, 0x55, n * nr * sizeof *Y);
                    size_t need;
                    void *ws = NULL;
                    switch (cs) {
                    case 0:
                        need = qnt_tern_matmul_ws_size(cols, nr, n);
                        ws = malloc(need);
                        qnt_tern_matmul_kernel(kern, t, rows, cols, row0, nr, X, n, Y, ws, need);
                        break;
                    case 1:
                        need = qnt_sub1_matmul_ws_size(E.s1, E.s1n, rows, cols, n);
                        ck_assert_uint_gt(need, 0);
                        ws = malloc(need);
                        qnt_sub1_matmul_kernel(kern, E.s1, E.s1n, rows, cols, row0, nr, X, n, Y,
                                               ws, need);
                        break;
                    case 2:
                        need = qnt_qmoe_matmul_ws_size(cols, nr, n);
                        ws = malloc(need);
                        qnt_qmoe_matmul_kernel(kern, E.qm, E.qmn, rows, cols, row0, nr, X, n, Y,
                                               ws, need);
                        break;
                    default: {                 /* the generic entry points */
                        const enum sb_dtype dt[3] = { SB_DTYPE_TERN, SB_DTYPE_SUB1,
                                                      SB_DTYPE_SUB1_QMOE };
                        const void *w[3] = { t, E.s1, E.qm };
                        const uint64_t nb[3] = { tn, E.s1n, E.qmn };
                        const int e = cs - 3;
                        (kern ? qnt_matmul_rows_ref : qnt_matmul_rows)(dt[e], w[e], nb[e], NULL, rows,
                                                                       cols, row0, nr, X, n, Y);
                        break;
                    }
                    }
                    free(ws);
                    char what[96];
                    snprintf(what, sizeof what, "variant %d, %d threads, rows %zu+%zu", v, th, row0,
                             nr);
                    batch_expect(want, rows, row0, nr, n, Y, what, n);
                }
            }
        }
    }
    qnt_tmm_set_group(0);
    set_threads(1);
    free(want);
    free(Y);
    free(X);
    free(t);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* Without the workspace (none, too small, or its allocation failing) every
 * batched path goes token by token: the same bits. */
START_TEST(test_ternary_batch_no_workspace)
{
    const size_t rows = 70, cols = 300, n = 9;
    uint8_t *t = make_tern(rows, cols, 77);
    struct enc E;
    encode_both(t, rows, cols, &E);
    float *X = batch_x(n, cols, 78);
    float *want = malloc(n * rows * sizeof *want), *Y = malloc(n * rows * sizeof *Y);
    for (size_t k = 0; k < n; k++)
        oracle(t, rows, cols, X + k * cols, want + k * rows);
    const size_t need = qnt_sub1_matmul_ws_size(E.s1, E.s1n, rows, cols, n);
    void *ws = malloc(need);
    for (int c = 0; c < 4; c++) {
        const size_t row0 = c < 2 ? 0 : 3, nr = c < 2 ? rows : 50;
        const size_t have = c % 2 ? need / 2 : 0;   /* too small for one tile */
        memset(Y, 0x55, n * nr * sizeof *Y);
        qnt_sub1_matmul(E.s1, E.s1n, rows, cols, row0, nr, X, n, Y, have ? ws : NULL, have);
        batch_expect(want, rows, row0, nr, n, Y, "sub1, no workspace", n);
        memset(Y, 0x55, n * nr * sizeof *Y);
        qnt_tern_matmul(t, rows, cols, row0, nr, X, n, Y, have ? ws : NULL, have);
        batch_expect(want, rows, row0, nr, n, Y, "tern, no workspace", n);
        memset(Y, 0x55, n * nr * sizeof *Y);
        qnt_qmoe_matmul(E.qm, E.qmn, rows, cols, row0, nr, X, n, Y, have ? ws : NULL, have);
        batch_expect(want, rows, row0, nr, n, Y, "qmoe, no workspace", n);
        /* qnt_matmul_rows allocates the workspace: make that fail */
        memset(Y, 0x55, n * nr * sizeof *Y);
        sb_alloc_fail_after(0);
        qnt_matmul_rows(SB_DTYPE_SUB1, E.s1, E.s1n, NULL, rows, cols, row0, nr, X, n, Y);
        ck_assert_int_eq(sb_alloc_injected(), 1);
        sb_alloc_fail_after(-1);
        batch_expect(want, rows, row0, nr, n, Y, "sub1, allocation failed", n);
    }
    free(ws);
    free(want);
    free(Y);
    free(X);
    free(t);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* Every batched kernel (best, portable, AVX2) of every encoding on all rows
 * of t against the oracle; tag prefixes the failure's message. */
static void batch_every_kernel(const uint8_t *t, const struct enc *E, size_t rows, size_t cols,
                               const float *X, size_t n, const char *tag)
{
    float *want = malloc(n * rows * sizeof *want), *Y = malloc(n * rows * sizeof *Y);
    for (size_t k = 0; k < n; k++)
        oracle(t, rows, cols, X + k * cols, want + k * rows);
    for (int kern = 0; kern < 3; kern++)
        for (int e = 0; e < 3; e++) {
            memset(Y, 0x55, n * rows * sizeof *Y);
            size_t need = e == 0   ? qnt_tern_matmul_ws_size(cols, rows, n)
                          : e == 1 ? qnt_sub1_matmul_ws_size(E->s1, E->s1n, rows, cols, n)
                                   : qnt_qmoe_matmul_ws_size(cols, rows, n);
            void *ws = malloc(need);
            if (e == 0)
                qnt_tern_matmul_kernel(kern, t, rows, cols, 0, rows, X, n, Y, ws, need);
            else if (e == 1)
                qnt_sub1_matmul_kernel(kern, E->s1, E->s1n, rows, cols, 0, rows, X, n, Y, ws,
                                       need);
            else
                qnt_qmoe_matmul_kernel(kern, E->qm, E->qmn, rows, cols, 0, rows, X, n, Y, ws,
                                       need);
            free(ws);
            char what[96];
            snprintf(what, sizeof what, "%sencoding %d kernel %d", tag, e, kern);
            batch_expect(want, rows, 0, rows, n, Y, what, n);
        }
    free(want);
    free(Y);
}

/* Sums past 2^53: rows of 70,001 weights all at one symbol (make_tern's
 * rows 2 and 3), x in [0.5, 1) (X multiples of 2^16 near 2^40) plus one
 * tiny x of v * 2^-40 (X = v), so S ~ 2^55 ends in v's low bits, both signs.
 * Every batched kernel (best, portable, AVX2) against the oracle. (The float
 * output rarely shows the double conversion's last bit: that conversion has
 * its own test, test_ternary_i64_to_double.) */
START_TEST(test_ternary_batch_wide_sums)
{
    const size_t rows = 6, cols = 70001, n = 12;
    static const int v[12] = { 1, 2, 3, 4, 5, 6, 7, 12, 20, 28, 4, 12 };
    uint8_t *t = make_tern(rows, cols, 91);
    struct enc E;
    encode_both(t, rows, cols, &E);
    float *X = malloc(n * cols * sizeof *X);
    test_fill_uniform(X, n * cols, 92, 0.5f, 0.999f);
    for (size_t k = 0; k < n; k++) {
        X[k * cols + 17] = ldexpf((float)v[k], -40);
        if (k >= 6)                                   /* negative sums */
            for (size_t j = 0; j < cols; j++)
                X[k * cols + j] = -X[k * cols + j];
    }
    batch_every_kernel(t, &E, rows, cols, X, n, "");
    free(X);
    free(t);
    free(E.s1);
    free(E.qm);
}
END_TEST

/* Rows of 2,048 columns, the most the AVX2 sums convert by one add of
 * 1.5 2^52 (their sums stay under 2^51), and of 2,056, past it: make_tern's
 * rows 2 and 3 hold one symbol across, x in [0.998, 0.999) puts every X just
 * under 2^40, so those rows' sums are ~2046 2^40 (under 2^51) and ~2054 2^40
 * (over it), both signs; 20 tokens (a pair of full blocks and a short one)
 * and 12 (a full and a short block in one pair). Every batched kernel against
 * the oracle: with the bound raised (or the short path taken past it) the
 * wide rows come out wrong by far more than a bit. */
START_TEST(test_ternary_batch_small_rows_bound)
{
    static const size_t colss[2] = { 2048, 2056 }, ns[2] = { 20, 12 };
    const size_t rows = 12;
    for (int c = 0; c < 2; c++) {
        const size_t cols = colss[c];
        uint8_t *t = make_tern(rows, cols, 93 + (uint64_t)c);
        struct enc E;
        encode_both(t, rows, cols, &E);
        for (int q = 0; q < 2; q++) {
            const size_t n = ns[q];
            float *X = malloc(n * cols * sizeof *X);
            test_fill_uniform(X, n * cols, 94 + (uint64_t)q, 0.998f, 0.999f);
            for (size_t k = n / 2; k < n; k++)   /* negative sums */
                for (size_t j = 0; j < cols; j++)
                    X[k * cols + j] = -X[k * cols + j];
            char tag[40];
            snprintf(tag, sizeof tag, "cols %zu n %zu ", cols, n);
            batch_every_kernel(t, &E, rows, cols, X, n, tag);
            free(X);
        }
        free(t);
        free(E.s1);
        free(E.qm);
    }
}
END_TEST

/* The AVX2 kernel's int64 -> double (no such instruction before AVX-512):
 * what a C cast gives, round to nearest even, on edges (2^53 + 1 .. 2^63,
 * ties both ways, both signs, INT64_MIN/MAX) and 2^20 random values of
 * every magnitude. */
START_TEST(test_ternary_i64_to_double)
{
    enum { N = 1 << 20 };
    int64_t *x = malloc(N * sizeof *x);
    double *y = malloc(N * sizeof *y);
    size_t n = 0;
    for (int e = 50; e < 63; e++)
        for (int64_t d = -9; d <= 9; d++) {
            x[n++] = ((int64_t)1 << e) + d;
            x[n++] = -(((int64_t)1 << e) + d);
            x[n++] = ((int64_t)3 << (e - 1)) + d;
        }
    x[n++] = INT64_MAX;
    x[n++] = INT64_MIN;
    x[n++] = INT64_MIN + 1;
    x[n++] = 0;
    uint64_t st = 1234;
    while (n < N) {
        const uint64_t r = test_rand_u64(&st);
        x[n++] = (int64_t)(r >> (test_rand_u64(&st) % 64));   /* every magnitude, both signs */
    }
    if (qnt_tmm_i64_to_f64_avx2(x, y, N) != 0) {
        free(x);
        free(y);
        return;                                  /* no AVX2 here */
    }
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(y[i] == (double)x[i], "%lld -> %a, want %a", (long long)x[i], y[i],
                      (double)x[i]);
    free(x);
    free(y);
}
END_TEST

/* qnt_tfx_amax (the AVX2 kernel where the CPU has it) against the scalar loop
 * and, for finite x, against the bits of max |x| computed with fabsf: every
 * length 0-100 and 1000, at every offset 0-7, with -0, subnormals, the largest
 * value negative, and inf / NaN placed at the start, middle and end. */
START_TEST(test_tfx_amax)
{
    float *buf = malloc(1100 * sizeof *buf);
    uint64_t st = 5;
    for (int kind = 0; kind < 5; kind++)
        for (size_t len = 0; len <= 1000; len = len < 100 ? len + 1 : 1000 + (len == 1000)) {
            if (len > 1000)
                break;
            for (size_t off = 0; off < 8; off++) {
                float *x = buf + off;
                for (size_t j = 0; j < len; j++) {
                    const double u = (double)(test_rand_u64(&st) >> 11) / 9007199254740992.0;
                    x[j] = kind == 1 ? (float)((u - 0.5) * 1e-40) : (float)((u - 0.5) * 8.0);
                }
                if (len > 3)
                    x[1] = -0.0f;
                if (len && kind == 2)
                    x[(len * 7) / 11] = -1e30f;                  /* the largest is negative */
                if (len && kind == 3)
                    x[(off * 13) % len] = (off & 1) ? -INFINITY : INFINITY;
                if (len && kind == 4)
                    x[len - 1 - (off * 5) % len] = (off & 1) ? -NAN : NAN;
                const uint32_t ref = qnt_tfx_amax_ref(x, len), got = qnt_tfx_amax(x, len);
                ck_assert_msg(got == ref, "kind %d len %zu off %zu: %08x vs %08x", kind, len, off,
                              (unsigned)got, (unsigned)ref);
                if (kind < 3 || !len) {
                    float mx = 0.0f;
                    for (size_t j = 0; j < len; j++)
                        mx = fabsf(x[j]) > mx ? fabsf(x[j]) : mx;
                    uint32_t mb;
                    memcpy(&mb, &mx, 4);
                    ck_assert_uint_eq(got, mb);
                } else {
                    ck_assert_uint_ge(got, 0x7f800000u);
                    ck_assert_uint_eq(got >= 0x7fc00000u, kind == 4);
                }
            }
        }
    free(buf);
}
END_TEST

TEST_SUITE(quant_ternary_same, 60, NULL, NULL,
    TEST_LOOP(test_ternary_same_random, (int)(sizeof same_shapes / sizeof same_shapes[0])),
    TEST(test_ternary_same_golden), TEST(test_ternary_same_inf_level),
    TEST(test_ternary_same_no_fma),
    TEST_LOOP(test_ternary_batch, (int)(sizeof batch_shapes / sizeof batch_shapes[0])),
    TEST(test_ternary_batch_no_workspace), TEST(test_ternary_batch_wide_sums),
    TEST(test_ternary_batch_small_rows_bound),
    TEST(test_ternary_i64_to_double), TEST(test_tfx_amax))
