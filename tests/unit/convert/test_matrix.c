/* test_matrix.c: every encoding converts to every other (issue 12 item 2:
 * sub1 and sub1-qmoe could be written but not read back by convert).
 *
 * A [4, 256] f32 matrix (256 = the largest block, tq1_0/tq2_0) goes to a
 * .subbit in encoding A, which convert then reads back and writes as B (or
 * keeps). The expected values are made here from the quant kernels alone,
 * without convert: decode_B(encode_B(decode_A(encode_A(x)))); convert's output,
 * decoded, must equal them bit for bit, and a kept tensor must keep its bytes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_convert.h"
#include "cvt_synth.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "qnt_encode.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "sb_alloc.h"
#include "test_util.h"

#define ROWS 4
#define COLS 256
#define NAME "model.layers.0.mlp.down_proj.weight"

static const enum sb_dtype encs[] = {
    SB_DTYPE_F32,  SB_DTYPE_F16,   SB_DTYPE_BF16,  SB_DTYPE_INT8, SB_DTYPE_Q8_0, SB_DTYPE_Q4_0,
    SB_DTYPE_TQ1_0, SB_DTYPE_TQ2_0, SB_DTYPE_TERN, SB_DTYPE_SUB1, SB_DTYPE_SUB1_QMOE,
};
#define N_ENC (sizeof encs / sizeof encs[0])

static void teardown(void)
{
    test_tmpdir_cleanup();
}

/* x (ROWS x COLS) -> encoding dt -> back to f32, with the kernels only */
static void through(enum sb_dtype dt, const float *x, float *y)
{
    static uint8_t blob[1 << 16], tern[1 << 12];
    const struct sb_qparams qp = { 0, SB_DTYPE_F32 };   /* convert's int8 defaults */
    uint64_t n = 0;
    if (dt == SB_DTYPE_SUB1 || dt == SB_DTYPE_SUB1_QMOE) {
        qnt_tern_quantize_rows(x, ROWS, COLS, tern);
        if (dt == SB_DTYPE_SUB1) {
            ck_assert_int_eq(qnt_sub1_encode(tern, ROWS, COLS, blob, sizeof blob, &n), SB_OK);
            qnt_sub1_dequantize_rows(blob, n, COLS, 0, ROWS, y);
        } else {
            ck_assert_int_eq(qnt_qmoe_encode(tern, ROWS, COLS, blob, sizeof blob, &n), SB_OK);
            qnt_qmoe_dequantize_rows(blob, n, COLS, 0, ROWS, y);
        }
        return;
    }
    ck_assert_int_eq(qnt_quantize_rows(dt, x, ROWS, COLS, &qp, blob), SB_OK);
    ck_assert_int_eq(qnt_dequantize_rows(dt, blob, ROWS, COLS, &qp, 0, ROWS, y), SB_OK);
}

/* the one tensor of a model file, decoded to f32 by the same kernels */
static void decode_file(const char *path, enum sb_dtype want, float *y, uint32_t *crc)
{
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_model_open(&m, path, NULL, &err) == SB_OK, "%s", err.msg);
    const struct fmt_tensor *t = fmt_model_find(m, NAME);
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(t->dtype == want, "%s holds %s, not %s", path, sb_dtype_name(t->dtype),
                  sb_dtype_name(want));
    if (t->dtype == SB_DTYPE_SUB1)
        qnt_sub1_dequantize_rows(t->data, t->nbytes, COLS, 0, ROWS, y);
    else if (t->dtype == SB_DTYPE_SUB1_QMOE)
        qnt_qmoe_dequantize_rows(t->data, t->nbytes, COLS, 0, ROWS, y);
    else
        ck_assert_int_eq(qnt_dequantize_rows(t->dtype, t->data, ROWS, COLS, &t->qp, 0, ROWS, y),
                         SB_OK);
    *crc = (uint32_t)test_fnv1a64(t->data, (size_t)t->nbytes);
    fmt_model_free(m);
}

static int convert(const char *in, const char *out, int to, struct sb_err *err)
{
    struct fmt_model *m;
    int r = fmt_model_open(&m, in, NULL, err);
    if (r)
        return r;
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = to;
    o.out_flags = FMT_OUT_FORCE;
    o.allow_requantize = true;   /* every pair, the lossy ones too (t1010 tests the refusal) */
    struct cvt_report *rep = NULL;
    r = cvt_convert(m, out, &o, &rep, err);
    cvt_report_free(rep);
    fmt_model_free(m);
    return r;
}

/* _i = A; every B and keep */
START_TEST(test_every_encoding_to_every_other)
{
    const enum sb_dtype a = encs[_i];
    static float x[ROWS * COLS], ya[ROWS * COLS], yb[ROWS * COLS], got[ROWS * COLS];
    test_fill_normal(x, ROWS * COLS, 1200u);
    /* the source: an f32 safetensors file, written by hand */
    char hdr[160];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"" NAME "\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%d]}}",
                      ROWS, COLS, ROWS * COLS * 4);
    size_t n = 8 + (size_t)hl + sizeof x;
    uint8_t *file = malloc(n);
    uint64_t hl64 = (uint64_t)hl;
    memcpy(file, &hl64, 8);
    memcpy(file + 8, hdr, (size_t)hl);
    memcpy(file + 8 + hl, x, sizeof x);
    ck_assert_int_eq(test_write_file(test_tmpfile("src.safetensors"), file, n), 0);
    free(file);

    struct sb_err err = { 0 };
    char pa[4096], pb[4096]; /* test_tmpfile's buffers rotate: keep copies */
    snprintf(pa, sizeof pa, "%s", test_tmpfile("a.subbit"));
    snprintf(pb, sizeof pb, "%s", test_tmpfile("b.subbit"));
    ck_assert_msg(convert(test_tmpfile("src.safetensors"), pa, (int)a, &err) == SB_OK, "%s -> %s: %s",
                  "f32", sb_dtype_name(a), err.msg);
    uint32_t crc_a, crc;
    decode_file(pa, a, got, &crc_a);
    through(a, x, ya);
    ck_assert_msg(memcmp(got, ya, sizeof ya) == 0, "f32 -> %s: values differ", sb_dtype_name(a));

    for (size_t j = 0; j <= N_ENC; j++) {
        const int to = j < N_ENC ? (int)encs[j] : -1; /* the last: --to keep */
        sb_err_clear(&err);
        ck_assert_msg(convert(pa, pb, to, &err) == SB_OK, "%s -> %s: %s", sb_dtype_name(a),
                      to < 0 ? "keep" : sb_dtype_name((enum sb_dtype)to), err.msg);
        decode_file(pb, to < 0 ? a : (enum sb_dtype)to, got, &crc);
        if (to < 0) {
            ck_assert_msg(crc == crc_a, "%s kept: bytes changed", sb_dtype_name(a));
            memcpy(yb, ya, sizeof yb);
        } else {
            through((enum sb_dtype)to, ya, yb);
        }
        for (size_t k = 0; k < ROWS * COLS; k++)
            ck_assert_msg(memcmp(&got[k], &yb[k], 4) == 0, "%s -> %s: element %zu is %g, not %g",
                          sb_dtype_name(a), to < 0 ? "keep" : sb_dtype_name((enum sb_dtype)to),
                          k, (double)got[k], (double)yb[k]);
        /* the same B again from the same A: the same bytes (sub1 included) */
        if (to == (int)a)
            ck_assert_msg(crc == crc_a, "%s -> %s: bytes differ", sb_dtype_name(a),
                          sb_dtype_name(a));
    }
    test_tmpdir_cleanup();
}
END_TEST

/* HF -> GGUF permutes the q/k rows: a sub1 matrix, decoded whole and then
 * permuted, gives the same GGUF as the same ternary weights stored as tern
 * (rows decoded one by one) */
START_TEST(test_sub1_permuted_to_gguf)
{
    struct cvt_synth_opts so;
    cvt_synth_opts_init(&so, FMT_ARCH_LLAMA);
    so.dim = 64;
    so.heads = 4;
    so.kv_heads = 2;
    so.hidden = 96;
    struct sb_err err = { 0 };
    char src[4096], a[4096], b[4096], ga[4096], gb[4096];
    snprintf(src, sizeof src, "%s", test_tmpfile("llama"));
    snprintf(a, sizeof a, "%s", test_tmpfile("a.subbit"));
    snprintf(b, sizeof b, "%s", test_tmpfile("b.subbit"));
    snprintf(ga, sizeof ga, "%s", test_tmpfile("a.gguf"));
    snprintf(gb, sizeof gb, "%s", test_tmpfile("b.gguf"));
    ck_assert_msg(cvt_synth(&so, src, &err) == SB_OK, "%s", err.msg);
    ck_assert_msg(convert(src, a, SB_DTYPE_SUB1, &err) == SB_OK, "%s", err.msg);
    ck_assert_msg(convert(src, b, SB_DTYPE_TERN, &err) == SB_OK, "%s", err.msg);
    ck_assert_msg(convert(a, ga, SB_DTYPE_F32, &err) == SB_OK, "%s", err.msg);
    ck_assert_msg(convert(b, gb, SB_DTYPE_F32, &err) == SB_OK, "%s", err.msg);
    struct fmt_model *ma, *mb;
    ck_assert_int_eq(fmt_model_open(&ma, ga, NULL, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&mb, gb, NULL, &err), SB_OK);
    const struct fmt_tensor *qa = fmt_model_find(ma, "blk.0.attn_q.weight");
    const struct fmt_tensor *qb = fmt_model_find(mb, "blk.0.attn_q.weight");
    ck_assert_ptr_nonnull(qa);
    ck_assert_ptr_nonnull(qb);
    ck_assert_uint_eq(qa->nbytes, 64 * 64 * 4);
    ck_assert_uint_eq(ma->n_tensors, mb->n_tensors);
    for (size_t i = 0; i < ma->n_tensors; i++) {
        const struct fmt_tensor *tb = fmt_model_find(mb, ma->tensors[i].name);
        ck_assert_ptr_nonnull(tb);
        ck_assert_msg(tb->nbytes == ma->tensors[i].nbytes &&
                          !memcmp(tb->data, ma->tensors[i].data, tb->nbytes),
                      "%s differs", tb->name);
    }
    fmt_model_free(ma);
    fmt_model_free(mb);
    test_tmpdir_cleanup();
}
END_TEST

Suite *convert_matrix_suite(void)
{
    Suite *s = suite_create("convert_matrix");
    TCase *tc = tcase_create("matrix");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_every_encoding_to_every_other, 0, (int)N_ENC);
    tcase_add_test(tc, test_sub1_permuted_to_gguf);
    suite_add_tcase(s, tc);
    return s;
}
