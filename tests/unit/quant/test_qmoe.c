/* test_qmoe.c: QMoE dictionary (golden per-length histogram from
 * qmoe-gptq.md §2.3, the authors' reproduction of sub1.py setup()), prefix
 * closure, ordering, decode-table layout, round trips, matvec. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qnt_qmoe.h"
#include "qnt_tern.h"
#include "sb_err.h"
#include "test_util.h"

START_TEST(test_qmoe_histogram)
{
    static const unsigned want[15] = { 0, 9, 65, 233, 577, 1161, 2049, 3305, 4993, 7177, 9921,
                                       13289, 17345, 3843, 1569 };
    unsigned got[16] = { 0 };
    const uint32_t *t = qnt_qmoe_table();
    ck_assert_ptr_nonnull(t);
    for (uint32_t e = 0; e < QNT_QMOE_ENTRIES; e++) {
        unsigned L = t[2 * e] & 15u;
        ck_assert_uint_eq(L, t[2 * e + 1] & 15u);    /* L stored in both words */
        got[L]++;
    }
    for (int L = 0; L <= 15; L++)
        ck_assert_uint_eq(got[L], L <= 14 ? want[L] : 0);
}
END_TEST

/* key of a sequence for lookup: base-9 digits plus length */
static uint64_t seq_key(const uint8_t *s, unsigned L)
{
    uint64_t k = 0;
    for (unsigned i = 0; i < L; i++)
        k = k * 9 + s[i];
    return k * 16 + L;
}
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_qmoe_prefix_closed_and_ordered)
{
    uint64_t *keys = malloc(QNT_QMOE_ENTRIES * sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    const double pp[3] = { 0.885, (1 - 0.885) / 2, (1 - 0.885) / 2 };
    double prev = 2.0;
    uint8_t prevs[14] = { 0 };
    unsigned prevL = 0;
    for (uint32_t e = 0; e < QNT_QMOE_ENTRIES; e++) {
        uint8_t s[14];
        unsigned L = qnt_qmoe_entry_pairs(e, s);
        keys[e] = seq_key(s, L);
        double p = 1.0;
        for (unsigned i = 0; i < L; i++)
            p *= pp[s[i] % 3] * pp[s[i] / 3];
        /* probability descending (same running product as the builder, so
           exact); within an exact tie, lexicographically ascending */
        ck_assert(p <= prev);
        if (p == prev) {
            unsigned m = L < prevL ? L : prevL;
            int c = memcmp(prevs, s, m);
            ck_assert(c < 0 || (c == 0 && prevL < L));
        }
        prev = p;
        memcpy(prevs, s, L);
        prevL = L;
    }
    /* the first entries: the all-zero pair, then singletons of probability 0.885 * 0.0575 */
    uint8_t s[14];
    ck_assert_uint_eq(qnt_qmoe_entry_pairs(0, s), 1);
    ck_assert_uint_eq(s[0], 0);
    ck_assert_uint_eq(qnt_qmoe_entry_pairs(1, s), 2);    /* 0.885^2 * 0.885^2 > 0.885 * 0.0575 */
    qsort(keys, QNT_QMOE_ENTRIES, sizeof *keys, cmp_u64);
    for (uint32_t e = 1; e < QNT_QMOE_ENTRIES; e++)
        ck_assert(keys[e] != keys[e - 1]);                /* all distinct */
    for (uint32_t e = 0; e < QNT_QMOE_ENTRIES; e++) {
        unsigned L = qnt_qmoe_entry_pairs(e, s);
        if (L < 2)
            continue;
        uint64_t k = seq_key(s, L - 1);
        ck_assert_ptr_nonnull(bsearch(&k, keys, QNT_QMOE_ENTRIES, sizeof k, cmp_u64));
    }
    free(keys);
}
END_TEST

START_TEST(test_qmoe_table_layout)
{
    /* weight j of an entry at bit 4 + 2 (j % 14) of word j / 14 */
    const uint32_t *t = qnt_qmoe_table();
    for (uint32_t e = 0; e < QNT_QMOE_ENTRIES; e += 97) {
        uint8_t s[14];
        unsigned L = qnt_qmoe_entry_pairs(e, s);
        for (unsigned j = 0; j < 28; j++) {
            unsigned v = (t[2 * e + j / 14] >> (4 + 2 * (j % 14))) & 3u;
            unsigned want = j / 2 < L ? (j % 2 ? s[j / 2] / 3 : s[j / 2] % 3) : 0;
            ck_assert_uint_eq(v, want);
        }
    }
}
END_TEST

/* random tern blob with zero fraction p0, plus edge rows */
static void make_tern(void *dst, size_t rows, size_t cols, double p0, uint64_t seed)
{
    float *x = malloc((rows * cols + 1) * sizeof *x);
    uint64_t st = seed;
    for (size_t i = 0; i < rows * cols; i++) {
        double u = (double)(test_rand_u64(&st) >> 11) / 9007199254740992.0;
        x[i] = u < p0 ? 0.0f : (u < p0 + (1 - p0) / 2 ? -1.0f - (float)u : 1.0f + (float)u);
    }
    if (rows > 2) {
        memset(x, 0, cols * sizeof *x);                       /* all-zero row */
        for (size_t j = 0; j < cols; j++)
            x[cols + j] = 3.0f;                               /* one value */
    }
    qnt_tern_quantize_rows(x, rows, cols, dst);
    free(x);
}

static const struct { size_t rows, cols; double p0; } shapes[] = {
    { 1, 1, 0.5 }, { 3, 1, 0.5 }, { 5, 2, 0.9 }, { 4, 27, 0.885 }, { 7, 29, 0.885 },
    { 16, 128, 0.885 }, { 9, 333, 0.95 }, { 33, 1000, 0.8 }, { 8, 4096, 0.885 }, { 3, 0, 0.8 },
    { 64, 63, 0.0 }, { 12, 57, 1.0 },
};

START_TEST(test_qmoe_round_trip)
{
    size_t rows = shapes[_i].rows, cols = shapes[_i].cols;
    size_t tb = rows * qnt_tern_row_bytes(cols);
    uint8_t *tern = malloc(tb + 1), *back = malloc(tb + 1);
    make_tern(tern, rows, cols, shapes[_i].p0, 77 + (uint64_t)_i);
    size_t cap = qnt_qmoe_encode_bound(rows, cols);
    ck_assert_uint_gt(cap, 0);
    uint8_t *blob = malloc(cap);
    uint64_t nb = 0;
    ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, blob, cap, &nb), SB_OK);
    ck_assert_uint_le(nb, cap);
    ck_assert_int_eq(qnt_qmoe_validate(blob, nb, rows, cols), SB_OK);
    qnt_qmoe_decode_tern(blob, nb, cols, 0, rows, back);
    ck_assert_mem_eq(back, tern, tb);
    /* dequantize a middle range equals tern's */
    if (rows > 1) {
        float *a = malloc((rows * cols + 1) * sizeof *a), *b = malloc((rows * cols + 1) * sizeof *b);
        qnt_qmoe_dequantize_rows(blob, nb, cols, 1, rows - 1, a);
        qnt_tern_dequantize_rows(tern, cols, 1, rows - 1, b);
        ck_assert_mem_eq(a, b, (rows - 1) * cols * sizeof *a);
        free(a);
        free(b);
    }
    /* structural damage is caught */
    ck_assert_int_eq(qnt_qmoe_validate(blob, nb - 1, rows, cols), SB_EFORMAT);
    ck_assert_int_eq(qnt_qmoe_validate(blob, nb, rows + 1, cols), SB_EFORMAT);
    blob[0] ^= 1;
    ck_assert_int_eq(qnt_qmoe_validate(blob, nb, rows, cols), SB_EFORMAT);
    free(tern);
    free(back);
    free(blob);
}
END_TEST

/* The parallel encoder writes the reference's bytes at 1, 2 and 3 threads,
 * with room for its per-row slots (cap = the bound) and without (cap = the
 * blob: two passes); one byte less fails in both, and so does a symbol 3 in
 * the last row. Shapes: the round-trip table plus 300 x 701 (odd rows, many
 * rows a thread). */
START_TEST(test_qmoe_fast_encoder_is_ref)
{
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    const size_t rows = _i < ns ? shapes[_i].rows : 300, cols = _i < ns ? shapes[_i].cols : 701;
    const size_t tb = rows * qnt_tern_row_bytes(cols);
    uint8_t *tern = malloc(tb + 1);
    make_tern(tern, rows, cols, _i < ns ? shapes[_i].p0 : 0.885, 177 + (uint64_t)_i);
    const size_t cap = qnt_qmoe_encode_bound(rows, cols);
    uint8_t *a = malloc(cap), *b = malloc(cap);
    uint64_t na, nb;
    ck_assert_int_eq(qnt_qmoe_encode_ref(tern, rows, cols, a, cap, &na), SB_OK);
    for (int k = 0; k < 6; k++) {
#ifdef _OPENMP
        omp_set_num_threads(1 + k % 3);
#endif
        memset(b, 0xA5, cap);
        ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, b, k < 3 ? cap : na, &nb), SB_OK);
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(a, b, na);
    }
    ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, b, na - 1, &nb), SB_EINVAL);
    ck_assert_int_eq(qnt_qmoe_encode_ref(tern, rows, cols, b, na - 1, &nb), SB_EINVAL);
    if (rows && cols) {
        tern[(rows - 1) * qnt_tern_row_bytes(cols) + 4 + (cols - 1) / 4] |=
            (uint8_t)(3u << (2 * ((cols - 1) % 4)));
        ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, b, cap, &nb), SB_EINVAL);
        ck_assert_int_eq(qnt_qmoe_encode_ref(tern, rows, cols, b, cap, &nb), SB_EINVAL);
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    free(tern);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_qmoe_rate_iid)
{
    /* qmoe-gptq.md §2.7: i.i.d. p0 = 0.885, 1024 x 4096 compresses ~21.27x vs
       bf16 incl. 64 bits/row, i.e. ~0.752 bits/weight; codes alone ~21.7 weights/codeword */
    size_t rows = 256, cols = 4096;
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    float *x = malloc(rows * cols * sizeof *x);
    uint64_t st = 5;
    for (size_t i = 0; i < rows * cols; i++) {
        double u = (double)(test_rand_u64(&st) >> 11) / 9007199254740992.0;
        x[i] = u < 0.885 ? 0.0f : (u < 0.9425 ? -1.0f : 1.0f);
    }
    qnt_tern_quantize_rows(x, rows, cols, tern);
    size_t cap = qnt_qmoe_encode_bound(rows, cols);
    uint8_t *blob = malloc(cap);
    uint64_t nb;
    ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, blob, cap, &nb), SB_OK);
    double per_cw = (double)(rows * cols) / (double)((nb - 24 - 4 - 8 * rows) / 2);
    ck_assert_double_gt(per_cw, 21.2);
    ck_assert_double_lt(per_cw, 22.2);
    free(x);
    free(tern);
    free(blob);
}
END_TEST

START_TEST(test_qmoe_matvec)
{
    size_t rows = 67, cols = 1001;
    uint8_t *tern = malloc(rows * qnt_tern_row_bytes(cols));
    float *w = malloc(rows * cols * sizeof *w), *x = malloc(cols * sizeof *x);
    float y0[67], y1[67], y2[67];
    test_fill_normal(w, rows * cols, 11);
    test_fill_normal(x, cols, 12);
    qnt_tern_quantize_rows(w, rows, cols, tern);
    size_t cap = qnt_qmoe_encode_bound(rows, cols);
    uint8_t *blob = malloc(cap);
    uint64_t nb;
    ck_assert_int_eq(qnt_qmoe_encode(tern, rows, cols, blob, cap, &nb), SB_OK);
    qnt_tern_matvec_ref(tern, rows, cols, x, y0);
    qnt_qmoe_matvec_ref(blob, nb, rows, cols, x, y1);
    qnt_qmoe_matvec(blob, nb, rows, cols, x, y2);
    ck_assert_mem_eq(y0, y1, sizeof y0);                  /* exact sums: same bits as tern */
    ck_assert_mem_eq(y1, y2, sizeof y1);                  /* fast is ref, bit for bit */
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
    free(blob);
}
END_TEST

TEST_SUITE(quant_qmoe, 30, NULL, NULL,
    TEST(test_qmoe_histogram), TEST(test_qmoe_prefix_closed_and_ordered),
    TEST(test_qmoe_table_layout),
    TEST_LOOP(test_qmoe_round_trip, (int)(sizeof shapes / sizeof shapes[0])),
    TEST(test_qmoe_rate_iid),
    TEST_LOOP(test_qmoe_fast_encoder_is_ref, (int)(sizeof shapes / sizeof shapes[0]) + 1),
    TEST(test_qmoe_matvec))
