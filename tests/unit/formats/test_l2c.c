/* test_l2c.c: llama2.c .bin and tokenizer.bin without fixtures.
 *
 * The checkpoints are built here with every float equal to its own index in
 * the weight area, so the first float of a tensor names where the reader
 * placed it; the expected indices below are counted by hand from
 * formats.md §4.1/§4.2 for dim 8, hidden 12, 2 layers, 2 heads, 1 kv head
 * (head size 4, kv dim 4), vocab 5, seq_len 4. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_l2c.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "sb_alloc.h"
#include "test_util.h"

#define SHARED_FLOATS 1056   /* v0 with RoPE tables (16 floats), classifier shared */
#define V1_FLOATS 1040

static void teardown(void)
{
    sb_alloc_fail_after(-1);
    test_tmpdir_cleanup();
}

/* v0 file: hdr[7], then n floats valued 0..n-1; bytes appended/removed by `delta` */
static const char *write_v0(const char *name, const int32_t hdr[7], long n_floats, long delta)
{
    const char *p = test_tmpfile(name);
    size_t n = 28 + (size_t)n_floats * 4;
    uint8_t *b = calloc(1, n + 64);
    memcpy(b, hdr, 28);
    for (long i = 0; i < n_floats; i++) {
        float f = (float)i;
        memcpy(b + 28 + 4 * i, &f, 4);
    }
    ck_assert_int_eq(test_write_file(p, b, (size_t)((long)n + delta)), 0);
    free(b);
    return p;
}

static const char *write_v1(const char *name, int32_t version, bool shared, long n_floats)
{
    const char *p = test_tmpfile(name);
    size_t n = 256 + (size_t)n_floats * 4;
    uint8_t *b = calloc(1, n);
    const int32_t hdr[9] = { 0x616b3432, version, 8, 12, 2, 2, 1, 5, 4 };
    memcpy(b, hdr, sizeof hdr);
    b[36] = shared;
    for (long i = 0; i < n_floats; i++) {
        float f = (float)i;
        memcpy(b + 256 + 4 * i, &f, 4);
    }
    ck_assert_int_eq(test_write_file(p, b, n), 0);
    free(b);
    return p;
}

static float first(const struct fmt_model *m, const char *name)
{
    const struct fmt_tensor *t = fmt_model_find(m, name);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    float f;
    memcpy(&f, t->data, 4);
    return f;
}

static const struct { const char *name; float v0, v1; int64_t s0, s1; } layout[] = {
    { "token_embd.weight", 0, 40, 5, 8 },
    { "blk.0.attn_norm.weight", 40, 0, 8, 0 },
    { "blk.1.attn_norm.weight", 48, 8, 8, 0 },
    { "blk.0.attn_q.weight", 56, 80, 8, 8 },
    { "blk.1.attn_q.weight", 120, 144, 8, 8 },
    { "blk.0.attn_k.weight", 184, 208, 4, 8 },
    { "blk.1.attn_k.weight", 216, 240, 4, 8 },
    { "blk.0.attn_v.weight", 248, 272, 4, 8 },
    { "blk.1.attn_v.weight", 280, 304, 4, 8 },
    { "blk.0.attn_output.weight", 312, 336, 8, 8 },
    { "blk.1.attn_output.weight", 376, 400, 8, 8 },
    { "blk.0.ffn_norm.weight", 440, 16, 8, 0 },
    { "blk.1.ffn_norm.weight", 448, 24, 8, 0 },
    { "blk.0.ffn_gate.weight", 456, 464, 12, 8 },
    { "blk.1.ffn_gate.weight", 552, 560, 12, 8 },
    { "blk.0.ffn_down.weight", 648, 656, 8, 12 },
    { "blk.1.ffn_down.weight", 744, 752, 8, 12 },
    { "blk.0.ffn_up.weight", 840, 848, 12, 8 },
    { "blk.1.ffn_up.weight", 936, 944, 12, 8 },
    { "output_norm.weight", 1032, 32, 8, 0 },
};
#define N_LAYOUT (sizeof layout / sizeof layout[0])

/* _i: 0 v0 shared, 1 v0 unshared, 2 v1 shared, 3 v1 unshared, 4 v0 shared without RoPE */
START_TEST(test_layout)
{
    int v1 = _i == 2 || _i == 3, unshared = _i == 1 || _i == 3;
    int32_t hdr[7] = { 8, 12, 2, 2, 1, unshared ? -5 : 5, 4 };
    const char *p;
    if (v1)
        p = write_v1("m.bin", 1, !unshared, V1_FLOATS + (unshared ? 40 : 0));
    else
        p = write_v0("m.bin", hdr, SHARED_FLOATS + (unshared ? 40 : 0) - (_i == 4 ? 16 : 0), 0);
    struct sb_err err = { 0 };
    struct fmt_model *m;
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_int_eq(m->container, FMT_CONT_L2C);
    ck_assert_uint_eq(m->n_tensors, 2 + 9 * 2 + (size_t)unshared);
    for (size_t k = 0; k < N_LAYOUT; k++) {
        const struct fmt_tensor *t = fmt_model_find(m, layout[k].name);
        ck_assert_msg(t != NULL, "%s", layout[k].name);
        ck_assert_msg(first(m, layout[k].name) == (v1 ? layout[k].v1 : layout[k].v0),
                      "%s starts at float %g", layout[k].name, first(m, layout[k].name));
        ck_assert_int_eq(t->dtype, SB_DTYPE_F32);
        ck_assert_int_eq(t->ndim, layout[k].s1 ? 2 : 1);
        ck_assert_int_eq(t->shape[0], layout[k].s0);
        if (layout[k].s1)
            ck_assert_int_eq(t->shape[1], layout[k].s1);
        ck_assert_uint_eq(t->nbytes, 4 * (uint64_t)layout[k].s0 *
                                     (uint64_t)(layout[k].s1 ? layout[k].s1 : 1));
        ck_assert_uint_eq(t->file_offset,
                          (v1 ? 256 : 28) + 4 * (uint64_t)(v1 ? layout[k].v1 : layout[k].v0));
    }
    /* file order */
    for (size_t k = 1; k < m->n_tensors; k++)
        ck_assert_uint_gt(m->tensors[k].file_offset, m->tensors[k - 1].file_offset);
    if (unshared)
        ck_assert(first(m, "output.weight") == (v1 ? 1040.0f : 1056.0f));
    else
        ck_assert_ptr_null(fmt_model_find(m, "output.weight"));
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, FMT_ARCH_LLAMA);
    ck_assert_int_eq(m->arch.dim, 8);
    ck_assert_int_eq(m->arch.hidden_dim, 12);
    ck_assert_int_eq(m->arch.n_layers, 2);
    ck_assert_int_eq(m->arch.n_heads, 2);
    ck_assert_int_eq(m->arch.n_kv_heads, 1);
    ck_assert_int_eq(m->arch.head_dim, 4);
    ck_assert_int_eq(m->arch.vocab_size, 5);
    ck_assert_int_eq(m->arch.n_ctx, 4);
    ck_assert(m->arch.norm_eps == 1e-5f);
    ck_assert(m->arch.rope_theta == 10000.0f);
    ck_assert_int_eq(m->arch.rope_layout, FMT_ROPE_INTERLEAVED);
    ck_assert(m->arch.tied_embeddings == !unshared);
    ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_NONE);   /* no tokenizer beside it */
    fmt_model_free(m);

    /* headers only: same tensors, no data */
    struct fmt_open_opts oo = { .headers_only = true };
    ck_assert_int_eq(fmt_model_open(&m, p, &oo, &err), SB_OK);
    ck_assert_uint_eq(m->n_tensors, 2 + 9 * 2 + (size_t)unshared);
    ck_assert_ptr_null(m->tensors[3].data);
    ck_assert_uint_eq(fmt_model_find(m, "blk.1.ffn_up.weight")->file_offset,
                      (v1 ? 256 : 28) + 4 * (uint64_t)(v1 ? 944 : 936));
    fmt_model_free(m);
}
END_TEST

static const struct bad_bin {
    const char *what;
    int32_t hdr[7];
    long floats;
    long delta;     /* bytes added to the file */
    int code;
    const char *msg;
} bad[] = {
    { "short header", { 8, 12, 2, 2, 1, 5, 4 }, 0, -18, SB_EFORMAT,
      "too short for a llama2.c header (10 bytes, need 28)" },
    { "one byte more", { 8, 12, 2, 2, 1, 5, 4 }, SHARED_FLOATS, 1, SB_EFORMAT,
      "llama2.c file is 4253 bytes, but its header (dim 8, hidden 12, 2 layers, 2 heads, 1 kv "
      "heads, vocab 5, seq_len 4) needs 4252" },
    { "one float less", { 8, 12, 2, 2, 1, 5, 4 }, SHARED_FLOATS - 1, 0, SB_EFORMAT,
      "is 4248 bytes, but its header" },
    { "unshared without wcls", { 8, 12, 2, 2, 1, -5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT,
      "needs 4412" },
    { "unshared without rope", { 8, 12, 2, 2, 1, -5, 4 }, SHARED_FLOATS + 40 - 16, 0, SB_EFORMAT,
      "needs 4412" },
    { "dim 0", { 0, 12, 2, 2, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "bad llama2.c header" },
    { "hidden 0", { 8, 0, 2, 2, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "bad llama2.c header" },
    { "layers 0", { 8, 12, 0, 2, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "layers 0" },
    { "heads -2", { 8, 12, 2, -2, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "heads -2" },
    { "kv heads 0", { 8, 12, 2, 2, 0, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "kv heads 0" },
    { "vocab 0", { 8, 12, 2, 2, 1, 0, 4 }, SHARED_FLOATS, 0, SB_EFORMAT, "vocab 0" },
    { "vocab INT32_MIN", { 8, 12, 2, 2, 1, INT32_MIN, 4 }, SHARED_FLOATS, 0, SB_EFORMAT,
      "bad llama2.c header" },
    { "seq_len 0", { 8, 12, 2, 2, 1, 5, 0 }, SHARED_FLOATS, 0, SB_EFORMAT, "seq_len 0" },
    { "heads do not divide dim", { 9, 12, 2, 2, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT,
      "2 heads do not divide dim 9" },
    { "kv heads above heads", { 8, 12, 2, 2, 4, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT,
      "4 kv heads" },
    { "huge sizes", { INT32_MAX, 1, INT32_MAX, 1, 1, 5, 4 }, SHARED_FLOATS, 0, SB_EFORMAT,
      "sizes overflow" },
    { "large but no overflow", { 1 << 20, 1 << 20, 1 << 10, 1, 1, 5, 4 }, SHARED_FLOATS, 0,
      SB_EFORMAT, "needs " },
};
#define N_BAD (int)(sizeof bad / sizeof bad[0])

START_TEST(test_bad_bin)
{
    const struct bad_bin *c = &bad[_i % N_BAD];
    const char *p = write_v0("bad.bin", c->hdr, c->floats, c->delta);
    struct sb_err err = { 0 };
    struct fmt_model *m = (struct fmt_model *)1;
    struct fmt_open_opts oo = { .headers_only = _i >= N_BAD };
    int r = fmt_model_open(&m, p, &oo, &err);
    ck_assert_msg(r == c->code, "%s: status %d (%s)", c->what, r, err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(!strncmp(err.msg, p, strlen(p)) && err.msg[strlen(p)] == ':', "%s", err.msg);
    ck_assert_msg(strstr(err.msg, c->msg), "%s: '%s' lacks '%s'", c->what, err.msg, c->msg);
}
END_TEST

START_TEST(test_bad_versions)
{
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *p = write_v1("v2.bin", 2, true, V1_FLOATS);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "version 2 (int8 groups) is not supported"));
    sb_err_clear(&err);
    p = write_v1("v7.bin", 7, true, V1_FLOATS);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "version 7"));
    sb_err_clear(&err);
    p = write_v1("v1.bin", 1, true, V1_FLOATS + 1);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "is 4420 bytes, but its header"));
    /* a v1 header cut short */
    sb_err_clear(&err);
    p = test_tmpfile("v1short.bin");
    const int32_t h[4] = { 0x616b3432, 1, 8, 12 };
    ck_assert_int_eq(test_write_file(p, h, sizeof h), 0);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "v1 header cut short (16 bytes, need 256)"));
}
END_TEST

/* ---- tokenizer.bin ------------------------------------------------------- */

/* A GGUF-spelled vocab and its tokenizer.bin, bytes written out by hand. */
static char *g_toks[5] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "b\xe2\x96\x81\xe2\x96\x81" };
static uint32_t g_lens[5] = { 5, 3, 4, 4, 7 };
static float g_scores[5] = { 0.0f, 0.0f, -0.0f, -1.0f, -2.5f };

static size_t tok_bytes(uint8_t *b)
{
    size_t n = 0;
    static const char *pieces[5] = { "<unk>", "\n<s>\n", "\n</s>\n", " a", "b  " };
    uint32_t max = 6;
    memcpy(b, &max, 4);
    n = 4;
    for (int i = 0; i < 5; i++) {
        int32_t len = (int32_t)strlen(pieces[i]);
        memcpy(b + n, &g_scores[i], 4);
        memcpy(b + n + 4, &len, 4);
        memcpy(b + n + 8, pieces[i], (size_t)len);
        n += 8 + (size_t)len;
    }
    return n;
}

START_TEST(test_tokenizer_write_read)
{
    struct fmt_vocab v = { .kind = FMT_VOCAB_SPM, .n_tokens = 5, .tokens = g_toks,
                           .lens = g_lens, .scores = g_scores, .bos_id = 1, .eos_id = 2,
                           .unk_id = 0 };
    uint8_t want[256];
    size_t n = tok_bytes(want);
    ck_assert_uint_eq(n, 4 + 5 * 8 + 5 + 5 + 6 + 2 + 3);
    struct sb_err err = { 0 };
    const char *p = test_tmpfile("tok5.bin");
    ck_assert_int_eq(fmt_l2c_write_tokenizer(&v, p, 0, &err), SB_OK);
    size_t len;
    char *got = test_read_file(p, &len);
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(got, want, n);
    free(got);
    /* not replaced without FMT_OUT_FORCE */
    ck_assert_int_eq(fmt_l2c_write_tokenizer(&v, p, 0, &err), SB_EIO);

    struct fmt_vocab r = { 0 };
    ck_assert_int_eq(fmt_l2c_read_tokenizer(&r, p, 5, &err), SB_OK);
    ck_assert_int_eq(r.kind, FMT_VOCAB_SPM);
    ck_assert_uint_eq(r.n_tokens, 5);
    ck_assert_uint_eq(r.max_token_len, 6);
    ck_assert_str_eq(r.tokens[1], "\n<s>\n");
    ck_assert_str_eq(r.tokens[4], "b  ");
    ck_assert_uint_eq(r.lens[3], 2);
    ck_assert_mem_eq(r.scores, g_scores, sizeof g_scores);   /* -0.0 kept */
    ck_assert_int_eq(r.bos_id, 1);
    ck_assert_int_eq(r.eos_id, 2);
    ck_assert_int_eq(r.unk_id, 0);
    ck_assert(r.add_bos);
    ck_assert_ptr_null(r.types);
    /* an l2c-spelled vocab writes back the same bytes */
    ck_assert_int_eq(fmt_l2c_write_tokenizer(&r, p, FMT_OUT_FORCE, &err), SB_OK);
    got = test_read_file(p, &len);
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(got, want, n);
    free(got);
    fmt_vocab_release(&r);
}
END_TEST

START_TEST(test_tokenizer_bad)
{
    uint8_t b[256];
    size_t n = tok_bytes(b);
    struct sb_err err = { 0 };
    struct fmt_vocab r = { 0 };
    const char *p = test_tmpfile("t.bin");
    struct { size_t len; uint32_t count; int32_t patch_len4; int code; const char *msg; } c[] = {
        { n, 4, 0, SB_EFORMAT, "bytes left after 4 tokens" },
        { n, 8, 0, SB_EFORMAT, "cannot hold 8 tokens" },
        { n - 1, 5, 0, SB_EFORMAT, "token 4 (3 bytes at byte 62) runs past end of file (64)" },
        { n, 5, 7, SB_EFORMAT, "token 4 has length 7 (max_token_length 6)" },
        { n, 5, -1, SB_EFORMAT, "token 4 has length -1" },
        { 3, 0, 0, SB_EFORMAT, "too short for a tokenizer" },
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        uint8_t f[256];
        memcpy(f, b, n);
        if (c[k].patch_len4)
            memcpy(f + n - 3 - 4, &c[k].patch_len4, 4);
        ck_assert_int_eq(test_write_file(p, f, c[k].len), 0);
        sb_err_clear(&err);
        ck_assert_int_eq(fmt_l2c_read_tokenizer(&r, p, c[k].count, &err), c[k].code);
        ck_assert_msg(strstr(err.msg, c[k].msg) && !strncmp(err.msg, p, strlen(p)),
                      "case %zu: %s", k, err.msg);
        ck_assert_ptr_null(r.tokens);
    }
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_l2c_read_tokenizer(&r, test_tmpfile("none.bin"), 5, &err), SB_EIO);
}
END_TEST

START_TEST(test_tokenizer_found_beside)
{
    int32_t hdr[7] = { 8, 12, 2, 2, 1, 5, 4 };
    const char *p = write_v0("model.bin", hdr, SHARED_FLOATS, 0);
    struct fmt_vocab v = { .kind = FMT_VOCAB_SPM, .n_tokens = 5, .tokens = g_toks,
                           .lens = g_lens, .scores = g_scores, .bos_id = 1, .eos_id = 2,
                           .unk_id = 0 };
    struct sb_err err = { 0 };
    struct fmt_model *m;
    /* a malformed tokenizer.bin and nothing else: its own error, not a model
     * without a tokenizer (issue 12 item 11) */
    uint8_t b[256];
    size_t n = tok_bytes(b);
    ck_assert_int_eq(test_write_file(test_tmpfile("tokenizer.bin"), b, n - 11), 0);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "tokenizer.bin: token 4 ") && strstr(err.msg, "--tokenizer"),
                  "%s", err.msg);
    sb_err_clear(&err);
    /* tokenizer.bin for another vocab size is passed over for tok5.bin */
    ck_assert_int_eq(fmt_l2c_write_tokenizer(&v, test_tmpfile("tok5.bin"), 0, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_SPM);
    ck_assert_str_eq(m->vocab.tokens[3], " a");
    fmt_model_free(m);
    /* a named tokenizer must fit */
    struct fmt_open_opts oo = { .tokenizer_path = test_tmpfile("tokenizer.bin") };
    ck_assert_int_eq(fmt_model_open(&m, p, &oo, &err), SB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer.bin: "));
    /* allocation failures while opening free everything (ASan) */
    long k;
    for (k = 0; k < 500; k++) {
        sb_err_clear(&err);
        sb_alloc_fail_after(k);
        int r = fmt_model_open(&m, p, NULL, &err);
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_SPM);
            fmt_model_free(m);
            break;
        }
        ck_assert_int_eq(r, SB_ENOMEM);
    }
    ck_assert_int_gt(k, 20);
}
END_TEST

TEST_SUITE(formats_l2c, 30, NULL, teardown,
    TEST_LOOP(test_layout, 5), TEST_LOOP(test_bad_bin, 2 * N_BAD), TEST(test_bad_versions),
    TEST(test_tokenizer_write_read), TEST(test_tokenizer_bad),
    TEST(test_tokenizer_found_beside))
