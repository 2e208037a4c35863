/* test_type.c: the encoding table (qnt_type.h) as a whole. It has an entry
 * for exactly the encodings listed here (adding one means adding it here and
 * to its own test file); every entry's two decoders (whole rows for convert,
 * chunks for the matvec) agree; the fast encoder writes the reference's bytes;
 * encoding rows a block at a time gives the whole tensor's bytes (what the
 * streaming convert relies on); sizes follow sb_dtype_nbytes; the GGUF file
 * types are llama.cpp's LLAMA_FTYPE_MOSTLY_* values (include/llama.h). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qnt_encode.h"
#include "qnt_matvec.h"
#include "qnt_tern.h"
#include "qnt_type.h"
#include "sb_err.h"
#include "test_util.h"

static const struct { enum sb_dtype dt; int ftype; } known[] = {
    { SB_DTYPE_F32, 0 }, { SB_DTYPE_F16, 1 }, { SB_DTYPE_BF16, 32 }, { SB_DTYPE_F64, 0 },
    { SB_DTYPE_Q8_0, 7 }, { SB_DTYPE_Q4_0, 2 }, { SB_DTYPE_TQ1_0, 36 }, { SB_DTYPE_TQ2_0, 37 },
    { SB_DTYPE_Q4_1, 3 }, { SB_DTYPE_Q5_0, 8 }, { SB_DTYPE_Q5_1, 9 }, { SB_DTYPE_Q2_K, 10 },
    { SB_DTYPE_Q3_K, 12 }, { SB_DTYPE_Q4_K, 15 }, { SB_DTYPE_Q5_K, 17 }, { SB_DTYPE_Q6_K, 18 },
    { SB_DTYPE_Q8_K, 0 }, { SB_DTYPE_IQ4_NL, 25 }, { SB_DTYPE_IQ4_XS, 30 },
    { SB_DTYPE_INT8, 0 }, { SB_DTYPE_TERN, 0 }, { SB_DTYPE_SUB1, 0 }, { SB_DTYPE_SUB1_QMOE, 0 },
};
#define NKNOWN (int)(sizeof known / sizeof known[0])

START_TEST(test_type_entries)
{
    int n = 0;
    for (int d = 0; d < SB_DTYPE_COUNT; d++) {
        const struct qnt_type *t = qnt_type_get((enum sb_dtype)d);
        int k = 0;
        while (k < NKNOWN && known[k].dt != (enum sb_dtype)d)
            k++;
        ck_assert_msg((t != NULL) == (k < NKNOWN), "%s: table entry present %d, listed %d",
                      sb_dtype_name((enum sb_dtype)d), t != NULL, k < NKNOWN);
        if (!t)
            continue;
        n++;
        ck_assert_int_eq(t->dt, d);
        ck_assert_uint_eq(qnt_type_gguf_ftype((enum sb_dtype)d), (unsigned)known[k].ftype);
        ck_assert(qnt_type_can_decode((enum sb_dtype)d));
        ck_assert(qnt_type_can_encode((enum sb_dtype)d));
        /* row-contiguous blobs: row bytes are the size of a one-row tensor */
        const size_t cols = 512;
        int64_t shape[2] = { 1, (int64_t)cols };
        uint64_t one = 0;
        if (t->flags & QNT_T_ROWS) {
            ck_assert_int_eq(sb_dtype_nbytes((enum sb_dtype)d, shape, 2, NULL, &one), SB_OK);
            ck_assert_uint_eq(qnt_type_row_bytes((enum sb_dtype)d, cols, NULL), one);
        } else {
            ck_assert_uint_eq(qnt_type_row_bytes((enum sb_dtype)d, cols, NULL), 0);
        }
        ck_assert_int_eq(!!(t->flags & QNT_T_VARLEN), t->encode != NULL);
        ck_assert_int_eq(!!(t->flags & QNT_T_VARLEN), t->validate != NULL);
    }
    ck_assert_int_eq(n, NKNOWN);
    ck_assert_ptr_null(qnt_type_get(SB_DTYPE_IQ2_XXS));
    ck_assert_ptr_null(qnt_type_get((enum sb_dtype)SB_DTYPE_COUNT));
    ck_assert(!qnt_type_can_decode(SB_DTYPE_IQ2_XXS));
}
END_TEST

/* The whole tensor's blob of (rows, cols) for entry k, via the variable-length
 * encoder from tern bytes when it is one; returns its size. */
static uint64_t make_blob(enum sb_dtype dt, const float *x, size_t rows, size_t cols,
                          const struct sb_qparams *qp, unsigned char **out)
{
    const struct qnt_type *t = qnt_type_get(dt);
    int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
    uint64_t nb = 0;
    if (t->flags & QNT_T_VARLEN) {
        uint64_t tb;
        ck_assert_int_eq(sb_dtype_nbytes(SB_DTYPE_TERN, shape, 2, NULL, &tb), SB_OK);
        unsigned char *tern = malloc(tb);
        qnt_tern_quantize_rows(x, rows, cols, tern);
        const size_t cap = t->encode_bound(rows, cols);
        *out = malloc(cap);
        ck_assert_int_eq(t->encode(tern, rows, cols, *out, cap, &nb), SB_OK);
        free(tern);
        ck_assert_int_eq(qnt_type_validate(dt, *out, nb, rows, cols, qp), SB_OK);
        /* (the structural check cannot see a cut inside the last chunk's stream) */
        ck_assert_int_eq(qnt_type_validate(dt, *out, 8, rows, cols, qp), SB_EFORMAT);
        return nb;
    }
    ck_assert_int_eq(sb_dtype_nbytes(dt, shape, 2, qp, &nb), SB_OK);
    *out = malloc(nb);
    ck_assert_int_eq(qnt_quantize_rows(dt, x, rows, cols, qp, *out), SB_OK);
    ck_assert_int_eq(qnt_type_validate(dt, *out, nb, rows, cols, qp), SB_OK);
    ck_assert_int_eq(qnt_type_validate(dt, *out, nb - 1, rows, cols, qp), SB_EFORMAT);
    return nb;
}

/* Every decoder of an entry gives the same floats: whole rows (convert,
 * qnt_decode_rows) and the matvec's row decode (qnt_matvec_get_row). */
START_TEST(test_type_decoders_agree)
{
    const enum sb_dtype dt = known[_i].dt;
    const struct qnt_type *t = qnt_type_get(dt);
    const size_t rows = 7, cols = 768;
    const struct sb_qparams qp = { .group = 128, .scale_dtype = SB_DTYPE_F16 };
    float *x = malloc(rows * cols * 4), *a = malloc(rows * cols * 4), *b = malloc(cols * 4);
    test_fill_normal(x, rows * cols, 5 + (uint64_t)_i);
    for (size_t j = 0; j < cols; j += 3)
        x[j] = 0.0f;                       /* exact zeros, as ternary data has */
    unsigned char *blob;
    const uint64_t nb = make_blob(dt, x, rows, cols, &qp, &blob);
    ck_assert_int_eq(qnt_decode_rows(dt, blob, nb, rows, cols, &qp, 0, rows, a), SB_OK);
    if (t->flags & QNT_T_MATVEC)
        for (size_t r = 0; r < rows; r++) {
            qnt_matvec_get_row(dt, blob, nb, &qp, rows, cols, r, b);
            ck_assert_msg(!memcmp(a + r * cols, b, cols * 4), "%s row %zu", sb_dtype_name(dt), r);
        }
    free(x), free(a), free(b), free(blob);
}
END_TEST

/* Fixed-size encodings: rows a block at a time (at their place in the whole
 * blob, or as a blob of their own for row-contiguous ones) give the bytes of
 * the whole tensor; the fast encoder gives the reference's bytes. */
START_TEST(test_type_row_blocks)
{
    const enum sb_dtype dt = known[_i].dt;
    const struct qnt_type *t = qnt_type_get(dt);
    if (t->flags & QNT_T_VARLEN)
        return;
    const size_t rows = 37, cols = 512, blk = 5;
    const struct sb_qparams qp = { .group = 64, .scale_dtype = SB_DTYPE_F32 };
    float *x = malloc(rows * cols * 4);
    test_fill_normal(x, rows * cols, 77 + (uint64_t)_i);
    x[3] = 2.5f, x[4] = -2.5f, x[5] = 0.0f;
    unsigned char *whole;
    const uint64_t nb = make_blob(dt, x, rows, cols, &qp, &whole);
    unsigned char *by = malloc(nb), *ref = malloc(nb);
    memset(by, 0xA5, nb);
    const size_t rb = qnt_type_row_bytes(dt, cols, &qp);
    for (size_t r0 = 0; r0 < rows; r0 += blk) {
        const size_t n = rows - r0 < blk ? rows - r0 : blk;
        if (t->quantize_rows)
            t->quantize_rows(x + r0 * cols, r0, n, rows, cols, &qp, by);
        else
            t->from_float(x + r0 * cols, by + r0 * rb, n * cols);
        if (rb) {   /* row-contiguous: the same rows as a tensor of their own */
            unsigned char *piece = malloc(n * rb);
            ck_assert_int_eq(qnt_quantize_rows(dt, x + r0 * cols, n, cols, &qp, piece), SB_OK);
            ck_assert(!memcmp(piece, whole + r0 * rb, n * rb));
            free(piece);
        }
    }
    ck_assert_msg(!memcmp(by, whole, nb), "%s: row blocks differ from the whole", sb_dtype_name(dt));
    if (t->from_float_ref) {
        t->from_float_ref(x, ref, rows * cols);
        ck_assert_msg(!memcmp(ref, whole, nb), "%s: fast != ref", sb_dtype_name(dt));
    }
    free(x), free(whole), free(by), free(ref);
}
END_TEST

TEST_SUITE(quant_type, 0, NULL, NULL,
    TEST(test_type_entries), TEST_LOOP(test_type_decoders_agree, NKNOWN),
    TEST_LOOP(test_type_row_blocks, NKNOWN))
