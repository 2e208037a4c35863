/* test_common.c: the shared base: first-error-wins messages, the encoding
 * table's size rules (formats.md §1.2, §2.4), checked arithmetic and the
 * allocator's fault injection. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sb_alloc.h"
#include "sb_dtype.h"
#include "sb_err.h"
#include "sb_math.h"
#include "test_util.h"

START_TEST(test_err_first_wins_one_line)
{
    struct sb_err e = { 0 };
    ck_assert_int_eq(sb_err_set(&e, SB_EFORMAT, "%s: bad\nthing %d", "a.gguf", 7), SB_EFORMAT);
    ck_assert_int_eq(sb_err_set(&e, SB_EIO, "later"), SB_EIO); /* returned, not recorded */
    ck_assert_int_eq(e.code, SB_EFORMAT);
    ck_assert_str_eq(e.msg, "a.gguf: bad\\x0athing 7"); /* newline escaped: one line */
    ck_assert_int_eq(sb_err_set(NULL, SB_ENOMEM, "x"), SB_ENOMEM);
    sb_err_clear(&e);
    ck_assert_int_eq(e.code, 0);
    ck_assert_str_eq(sb_status_name(SB_EUNSUPPORTED), "unsupported");
}
END_TEST

/* Names quoted from files reach the terminal through error messages: every
 * byte a terminal acts on comes out as \xNN (issue 12 item 5). Expected
 * strings written by hand from the UTF-8 and ECMA-48 tables. */
START_TEST(test_err_escapes_controls)
{
    static const struct { const char *in, *want; } cases[] = {
        { "a\x1b[31mred\x07", "a\\x1b[31mred\\x07" },   /* ESC, BEL */
        { "tab\there\r", "tab\\x09here\\x0d" },
        { "del\x7f", "del\\x7f" },
        { "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x99\x82", "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x99\x82" },
        { "csi\xc2\x9b" "2J", "csi\\xc2\\x9b" "2J" },       /* U+009B: C1 CSI */
        { "nbsp\xc2\xa0", "nbsp\xc2\xa0" },                /* U+00A0: printable */
        { "lone\xff\x9b", "lone\\xff\\x9b" },               /* not UTF-8 */
        { "over\xc0\xaf", "over\\xc0\\xaf" },               /* overlong '/' */
        { "surr\xed\xa0\x80", "surr\\xed\\xa0\\x80" },     /* U+D800 */
        { "cut\xe2\x96", "cut\\xe2\\x96" },                 /* truncated sequence */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_err e = { 0 };
        sb_err_set(&e, SB_EFORMAT, "%s: bad", cases[i].in);
        char want[128];
        snprintf(want, sizeof want, "%s: bad", cases[i].want);
        ck_assert_msg(strcmp(e.msg, want) == 0, "case %zu: got '%s'", i, e.msg);
    }
    /* a long message is cut at a whole escape, never inside one */
    char big[600];
    memset(big, 0x1b, sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct sb_err e = { 0 };
    sb_err_set(&e, SB_EIO, "%s", big);
    size_t n = strlen(e.msg);
    ck_assert_uint_eq(n % 4, 0);
    ck_assert_uint_ge(n, sizeof e.msg - 4);
    ck_assert_str_eq(e.msg + n - 4, "\\x1b");
    char small[7];
    ck_assert_uint_eq(sb_escape(small, sizeof small, "ab\x01" "cd"), 6);
    ck_assert_str_eq(small, "ab\\x01");
}
END_TEST

static uint64_t nbytes(enum sb_dtype dt, int64_t a, int64_t b, const struct sb_qparams *qp, int *r)
{
    int64_t shape[2] = { a, b };
    uint64_t n = 0;
    *r = sb_dtype_nbytes(dt, shape, 2, qp, &n);
    return n;
}

START_TEST(test_dtype_sizes)
{
    int r;
    /* plain scalars */
    ck_assert_uint_eq(nbytes(SB_DTYPE_F32, 3, 5, NULL, &r), 60);
    ck_assert_uint_eq(nbytes(SB_DTYPE_BF16, 3, 5, NULL, &r), 30);
    ck_assert_uint_eq(nbytes(SB_DTYPE_BOOL, 3, 5, NULL, &r), 15);
    /* ggml blocks: rows of whole blocks only (formats.md §2.4 sizes) */
    ck_assert_uint_eq(nbytes(SB_DTYPE_Q8_0, 2, 64, NULL, &r), 2 * 2 * 34);
    ck_assert_uint_eq(nbytes(SB_DTYPE_Q4_0, 1, 32, NULL, &r), 18);
    ck_assert_uint_eq(nbytes(SB_DTYPE_TQ1_0, 1, 256, NULL, &r), 54);
    ck_assert_uint_eq(nbytes(SB_DTYPE_TQ2_0, 3, 512, NULL, &r), 3 * 2 * 66);
    nbytes(SB_DTYPE_Q8_0, 2, 48, NULL, &r);
    ck_assert_int_eq(r, SB_EFORMAT); /* 48 is not a multiple of 32 */
    /* sub-byte scalars: whole bytes only */
    ck_assert_uint_eq(nbytes(SB_DTYPE_F4, 1, 6, NULL, &r), 3);
    nbytes(SB_DTYPE_F6_E2M3, 1, 3, NULL, &r);
    ck_assert_int_eq(r, SB_EFORMAT); /* 18 bits */
    ck_assert_uint_eq(nbytes(SB_DTYPE_F6_E2M3, 1, 4, NULL, &r), 3);
    /* int8: codes then one scale per row or per group (ceil) */
    ck_assert_uint_eq(nbytes(SB_DTYPE_INT8, 4, 10, NULL, &r), 40 + 4 * 4);
    struct sb_qparams g = { 4, SB_DTYPE_F16 };
    ck_assert_uint_eq(nbytes(SB_DTYPE_INT8, 4, 10, &g, &r), 40 + 4 * 3 * 2);
    /* tern: per row two bf16 levels then 2 bits a weight */
    ck_assert_uint_eq(nbytes(SB_DTYPE_TERN, 3, 9, NULL, &r), 3 * (4 + 3));
    /* variable length: not a function of the shape */
    nbytes(SB_DTYPE_SUB1, 3, 9, NULL, &r);
    ck_assert_int_eq(r, SB_EUNSUPPORTED);
    /* overflow and negative dims */
    nbytes(SB_DTYPE_F64, INT64_MAX / 2, 4, NULL, &r);
    ck_assert_int_eq(r, SB_EFORMAT);
    nbytes(SB_DTYPE_F32, -1, 4, NULL, &r);
    ck_assert_int_eq(r, SB_EFORMAT);
    /* 0-d is one element; an empty dim is 0 bytes */
    uint64_t n;
    ck_assert_int_eq(sb_dtype_nbytes(SB_DTYPE_F16, NULL, 0, NULL, &n), SB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(nbytes(SB_DTYPE_F32, 0, 7, NULL, &r), 0);
    ck_assert_int_eq(r, SB_OK);
}
END_TEST

START_TEST(test_dtype_names)
{
    ck_assert_int_eq(sb_dtype_from_name("bf16"), SB_DTYPE_BF16);
    ck_assert_int_eq(sb_dtype_from_name("fp16"), SB_DTYPE_F16);
    ck_assert_int_eq(sb_dtype_from_name("sub1-qmoe"), SB_DTYPE_SUB1_QMOE);
    ck_assert_int_eq(sb_dtype_from_name("q9_9"), -1);
    /* any case (issue 15): llama.cpp writes Q8_0, PyTorch BF16 */
    ck_assert_int_eq(sb_dtype_from_name("Q8_0"), SB_DTYPE_Q8_0);
    ck_assert_int_eq(sb_dtype_from_name("BF16"), SB_DTYPE_BF16);
    ck_assert_int_eq(sb_dtype_from_name("Sub1-QMoE"), SB_DTYPE_SUB1_QMOE);
    ck_assert_int_eq(sb_dtype_from_name("FP16"), SB_DTYPE_F16);
    ck_assert_int_eq(sb_dtype_from_name("Q8_"), -1);
    ck_assert_int_eq(sb_dtype_from_st("F8_E4M3"), SB_DTYPE_F8_E4M3);
    ck_assert_int_eq(sb_dtype_from_st("f32"), -1); /* safetensors names are upper case */
    ck_assert_int_eq(sb_dtype_from_ggml(8), SB_DTYPE_Q8_0);
    ck_assert_int_eq(sb_dtype_from_ggml(34), SB_DTYPE_TQ1_0);
    ck_assert_int_eq(sb_dtype_from_ggml(4), -1); /* removed Q4_2 */
    ck_assert_int_eq(sb_dtype_from_ggml(36), -1); /* removed IQ4_NL_4_4 */
    /* every name round-trips and every ggml id is unique */
    for (int d = 0; d < SB_DTYPE_COUNT; d++) {
        const struct sb_dtype_info *i = sb_dtype_get((enum sb_dtype)d);
        ck_assert_int_eq(sb_dtype_from_name(i->name), d);
        if (i->ggml_type >= 0)
            ck_assert_int_eq(sb_dtype_from_ggml(i->ggml_type), d);
    }
    ck_assert_ptr_null(sb_dtype_get(SB_DTYPE_COUNT));
    ck_assert_str_eq(sb_dtype_name((enum sb_dtype)-1), "?");
}
END_TEST

START_TEST(test_checked_math)
{
    uint64_t o;
    ck_assert_int_eq(sb_mul_u64(1ull << 32, 1ull << 31, &o), 0);
    ck_assert_int_eq(sb_mul_u64(1ull << 32, 1ull << 32, &o), 1);
    ck_assert_int_eq(sb_add_u64(UINT64_MAX, 1, &o), 1);
    ck_assert_int_eq(sb_align_u64(33, 32, &o), 0);
    ck_assert_uint_eq(o, 64);
    ck_assert_int_eq(sb_align_u64(UINT64_MAX - 3, 32, &o), 1);
    int64_t s[3] = { 1 << 20, 1 << 20, 1 << 23 };
    ck_assert_int_eq(sb_shape_numel(s, 3, &o), 0);
    ck_assert_uint_eq(o, 1ull << 63);
    s[2] = 1 << 24;
    ck_assert_int_eq(sb_shape_numel(s, 3, &o), 1);
    uint64_t rows, cols;
    int64_t e[3] = { 4, 8, 16 };
    ck_assert_int_eq(sb_shape_rows_cols(e, 3, &rows, &cols), 0);
    ck_assert_uint_eq(rows, 32);
    ck_assert_uint_eq(cols, 16);
}
END_TEST

START_TEST(test_alloc_fault_injection)
{
    sb_alloc_fail_after(2);
    void *a = sb_malloc(8), *b = sb_calloc(2, 4), *c = sb_malloc(8), *d = sb_strdup("x");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(c); /* the third fails, and every one after it */
    ck_assert_ptr_null(d);
    ck_assert_int_eq(sb_alloc_injected(), 2);
    sb_alloc_fail_after(-1);
    c = sb_malloc_aligned(100);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq((uintptr_t)c % 64, 0);
    sb_free_aligned(c);
    char *s = sb_strndup("hello", 3);
    ck_assert_str_eq(s, "hel");
    sb_free(s);
    sb_free(a);
    sb_free(b);
    sb_free(NULL);
}
END_TEST

TEST_SUITE(common_common, 0, NULL, NULL,
    TEST(test_err_first_wins_one_line), TEST(test_err_escapes_controls), TEST(test_dtype_sizes),
    TEST(test_dtype_names), TEST(test_checked_math), TEST(test_alloc_fault_injection))
