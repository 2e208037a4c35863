/* test_sbc.c: .subbit container: round trip with a mix of encodings (incl.
 * variable-length sub1 / sub1-qmoe with plan nbytes 0), zstd kept only where
 * it pays, config and tokenizer round trip, a flipped byte in every tensor
 * reported by name, a corrupt-table catalogue, CRC-32C golden values. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmt_model.h"
#include "fmt_out.h"
#include "fmt_sbc.h"
#include "fmt_writer.h"
#include "qnt_qmoe.h"
#include "qnt_sub1.h"
#include "qnt_tern.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "test_util.h"

/* RFC 3720 B.4 test vectors and the common "123456789" check value */
START_TEST(test_sbc_crc32c_golden)
{
    uint8_t z[32] = { 0 }, f[32], inc[32];
    memset(f, 0xff, sizeof f);
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    ck_assert_uint_eq(fmt_sbc_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(fmt_sbc_crc32c(0, z, 32), 0x8A9136AAu);
    ck_assert_uint_eq(fmt_sbc_crc32c(0, f, 32), 0x62A8AB43u);
    ck_assert_uint_eq(fmt_sbc_crc32c(0, inc, 32), 0x46DD794Eu);
    /* incremental == one shot; table path == hardware path */
    ck_assert_uint_eq(fmt_sbc_crc32c(fmt_sbc_crc32c(0, inc, 13), inc + 13, 19), 0x46DD794Eu);
    sb_cpu_force_ref(1);
    ck_assert_uint_eq(fmt_sbc_crc32c(0, inc, 32), 0x46DD794Eu);
    ck_assert_uint_eq(fmt_sbc_crc32c(0, "123456789", 9), 0xE3069283u);
    sb_cpu_force_ref(-1);
}
END_TEST

#define NT 7
struct fixture {
    struct fmt_tensor plan[NT];
    void *data[NT];
    uint64_t nbytes[NT];
};

static void make_fixture(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    static char names[NT][32] = { "tok_embd", "norm", "w_tern", "w_sub1", "w_qmoe", "zeros", "q8" };
    /* shapes */
    const int64_t R = 48, C = 200;
    float *w = malloc(R * C * sizeof *w);
    test_fill_normal(w, R * C, 1);
    for (int i = 0; i < NT; i++) {
        f->plan[i].name = names[i];
        f->plan[i].ndim = 2;
        f->plan[i].shape[0] = R;
        f->plan[i].shape[1] = C;
    }
    /* f32 embedding */
    f->plan[0].dtype = SB_DTYPE_F32;
    f->nbytes[0] = R * C * 4;
    f->data[0] = malloc(f->nbytes[0]);
    memcpy(f->data[0], w, f->nbytes[0]);
    /* bf16 norm, 1-d, all ones: compressible */
    f->plan[1].dtype = SB_DTYPE_BF16;
    f->plan[1].ndim = 1;
    f->plan[1].shape[0] = 8192;
    f->nbytes[1] = 8192 * 2;
    f->data[1] = malloc(f->nbytes[1]);
    for (int i = 0; i < 8192; i++)
        ((uint16_t *)f->data[1])[i] = 0x3f80;
    /* tern */
    size_t tb = (size_t)R * qnt_tern_row_bytes(C);
    f->plan[2].dtype = SB_DTYPE_TERN;
    f->nbytes[2] = tb;
    f->data[2] = malloc(tb);
    qnt_tern_quantize_rows(w, R, C, f->data[2]);
    /* sub1 and qmoe of the same tern (plan nbytes 0: unknown) */
    size_t cap = qnt_sub1_encode_bound(R, C);
    f->data[3] = malloc(cap);
    ck_assert_int_eq(qnt_sub1_encode(f->data[2], R, C, f->data[3], cap, &f->nbytes[3]), 0);
    f->plan[3].dtype = SB_DTYPE_SUB1;
    cap = qnt_qmoe_encode_bound(R, C);
    f->data[4] = malloc(cap);
    ck_assert_int_eq(qnt_qmoe_encode(f->data[2], R, C, f->data[4], cap, &f->nbytes[4]), 0);
    f->plan[4].dtype = SB_DTYPE_SUB1_QMOE;
    /* zeros f32: zstd */
    f->plan[5].dtype = SB_DTYPE_F32;
    f->nbytes[5] = R * C * 4;
    f->data[5] = calloc(1, f->nbytes[5]);
    /* q8_0 (row 200 is not a multiple of 32: use 3 x 64) */
    f->plan[6].dtype = SB_DTYPE_Q8_0;
    f->plan[6].shape[0] = 3;
    f->plan[6].shape[1] = 64;
    f->nbytes[6] = 3 * 2 * 34;
    f->data[6] = malloc(f->nbytes[6]);
    for (size_t i = 0; i < f->nbytes[6]; i++)
        ((uint8_t *)f->data[6])[i] = (uint8_t)(i * 7);
    for (int i = 0; i < NT; i++)
        if (i != 3 && i != 4)
            f->plan[i].nbytes = f->nbytes[i];
    free(w);
}

static void free_fixture(struct fixture *f)
{
    for (int i = 0; i < NT; i++)
        free(f->data[i]);
}

static void write_model(struct fixture *f, const char *path)
{
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    struct fmt_arch arch = { .kind = FMT_ARCH_MIXTRAL, .model_type = "mixtral", .n_layers = 4,
                             .dim = 128, .hidden_dim = 192, .n_heads = 4, .n_kv_heads = 2,
                             .head_dim = 32, .vocab_size = 258, .n_ctx = 512, .norm_eps = 1e-5f,
                             .rope_theta = 10000.0f, .n_experts = 8, .n_experts_used = 2,
                             .moe_hidden_dim = 192, .bos_id = 256, .eos_id = 257 };
    static char t0[] = "<s>", t1[] = "a\nb", t2[] = { 'x', 0, 'y', 0 };
    char *toks[3] = { t0, t1, t2 };
    uint32_t lens[3] = { 3, 3, 3 };
    float scores[3] = { 0.0f, -1.5f, 0.1f };
    int32_t types[3] = { 3, 1, 6 };
    struct fmt_vocab voc = { .kind = FMT_VOCAB_SPM, .n_tokens = 3, .tokens = toks, .lens = lens,
                             .scores = scores, .types = types, .bos_id = 0, .eos_id = 1,
                             .unk_id = -1, .add_bos = true, .max_token_len = 3 };
    struct fmt_write_opts o = { .flags = FMT_OUT_FORCE, .arch = &arch, .vocab = &voc,
                                .config_json = "{\"model_type\": \"mixtral\"}" };
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, path, f->plan, NT, &o, &err), 0);
    for (size_t k = 0; k < NT; k++) {
        size_t i = fmt_writer_order(w, k);
        ck_assert_int_eq(fmt_writer_put(w, i, f->data[i], f->nbytes[i], &err), 0);
    }
    ck_assert_msg(fmt_writer_commit(w, &err) == 0, "%s", err.msg);
}

START_TEST(test_sbc_round_trip)
{
    struct fixture f;
    make_fixture(&f);
    const char *path = test_tmpfile("m.subbit");
    write_model(&f, path);
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(m->container, FMT_CONT_SUBBIT);
    ck_assert_uint_eq(m->n_tensors, NT);
    for (int i = 0; i < NT; i++) {
        const struct fmt_tensor *t = fmt_model_find(m, f.plan[i].name);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dtype, f.plan[i].dtype);
        ck_assert_int_eq(t->ndim, f.plan[i].ndim);
        ck_assert_mem_eq(t->shape, f.plan[i].shape, sizeof(int64_t) * (size_t)t->ndim);
        ck_assert_uint_eq(t->nbytes, f.nbytes[i]);
        ck_assert_mem_eq(t->data, f.data[i], f.nbytes[i]);
        ck_assert_uint_eq(t->file_offset % 64, 0);
        /* compressed tensors live in an owned buffer, the rest in the map */
        if (i == 1 || i == 5)
            ck_assert_ptr_nonnull(t->owned);
        if (i == 2 || i == 3 || i == 4 || i == 6)   /* 2-bit and entropy-coded data: kept plain */
            ck_assert_ptr_null(t->owned);
    }
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, FMT_ARCH_MIXTRAL);
    ck_assert_int_eq(m->arch.n_experts, 8);
    ck_assert_float_eq(m->arch.norm_eps, 1e-5f);
    ck_assert_int_eq(m->arch.eos_id, 257);
    ck_assert_str_eq(m->config_json, "{\"model_type\": \"mixtral\"}");
    ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_SPM);
    ck_assert_uint_eq(m->vocab.n_tokens, 3);
    ck_assert_uint_eq(m->vocab.lens[2], 3);
    ck_assert_mem_eq(m->vocab.tokens[2], "x\0y", 3);
    ck_assert_str_eq(m->vocab.tokens[1], "a\nb");
    ck_assert_float_eq(m->vocab.scores[1], -1.5f);
    ck_assert_int_eq(m->vocab.types[2], 6);
    ck_assert(m->vocab.add_bos);
    /* the decoded sub1 equals the tern */
    const struct fmt_tensor *s1 = fmt_model_find(m, "w_sub1");
    ck_assert_int_eq(qnt_sub1_validate(s1->data, s1->nbytes, 48, 200), 0);
    fmt_model_free(m);
    free_fixture(&f);
}
END_TEST

static void expect_open_fail(const char *path, int code, const char *needle)
{
    struct fmt_model *m = NULL;
    struct sb_err err = { 0 };
    int r = fmt_model_open(&m, path, NULL, &err);
    ck_assert_msg(r == code, "want %d got %d (%s)", code, r, err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message names the file: %s", err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' not in: %s", needle, err.msg);
}

START_TEST(test_sbc_flipped_byte_every_tensor)
{
    struct fixture f;
    make_fixture(&f);
    const char *path = test_tmpfile("m.subbit"), *bad = test_tmpfile("bad.subbit");
    write_model(&f, path);
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_model_open(&m, path, NULL, &err), 0);
    size_t len;
    char *img = test_read_file(path, &len);
    for (int i = 0; i < NT; i++) {
        const struct fmt_tensor *t = &m->tensors[i];
        /* stored size: the tensor's region up to the next 64-byte boundary is data */
        uint64_t at = t->file_offset + (t->owned ? 1 : t->nbytes - 1);
        img[at] ^= 0x10;
        ck_assert_int_eq(test_write_file(bad, img, len), 0);
        img[at] ^= 0x10;
        char want[128];
        snprintf(want, sizeof want, "tensor '%s' checksum mismatch", t->name);
        expect_open_fail(bad, SB_EFORMAT, want);
    }
    fmt_model_free(m);
    free(img);
    free_fixture(&f);
}
END_TEST

/* hand-made containers: prologue + data + header text */
static void write_raw(const char *path, const char *json, uint64_t data_len, int fix_crc,
                      uint64_t hoff_override, uint64_t hlen_override)
{
    size_t jl = strlen(json);
    size_t n = 64 + data_len + jl;
    uint8_t *b = calloc(1, n);
    memcpy(b, "SUBBIT\0\1", 8);
    uint64_t hoff = 64 + data_len, hlen = jl;
    if (hoff_override)
        hoff = hoff_override;
    if (hlen_override)
        hlen = hlen_override;
    memcpy(b + 8, &hoff, 8);
    memcpy(b + 16, &hlen, 8);
    memcpy(b + 64 + data_len, json, jl);
    uint32_t c = fix_crc ? fmt_sbc_crc32c(0, json, jl) : 0;
    memcpy(b + 24, &c, 4);
    ck_assert_int_eq(test_write_file(path, b, n), 0);
    free(b);
}

static const struct {
    const char *json;
    uint64_t data_len, hoff, hlen;
    int fix_crc, code;
    const char *needle;
} corrupt[] = {
    { "{\"tensors\":[]}", 0, 0, 0, 1, 0, "" },    /* the valid baseline */
    { "{\"tensors\":[", 0, 0, 0, 1, SB_EFORMAT, "not valid JSON" },
    { "{\"tensors\":[]}", 0, 0, 0, 0, SB_EFORMAT, "header checksum" },
    { "{\"tensors\":[]}", 0, 0, 1u << 20, 1, SB_EFORMAT, "past end of file" },
    { "{\"tensors\":[]}", 0, 1u << 30, 0, 1, SB_EFORMAT, "outside the file" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":64,\"nbytes\":64,"
      "\"stored\":64,\"crc32c\":0},{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":128,"
      "\"nbytes\":64,\"stored\":64,\"crc32c\":0}]}", 128, 0, 0, 1, SB_EFORMAT, "duplicate tensor 'a'" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":128,\"nbytes\":64,"
      "\"stored\":64,\"crc32c\":0}]}", 64, 0, 0, 1, SB_EFORMAT, "past end of data" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[32],\"offset\":64,\"nbytes\":128,"
      "\"stored\":128,\"crc32c\":0},{\"name\":\"b\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":128,"
      "\"nbytes\":64,\"stored\":64,\"crc32c\":0}]}", 192, 0, 0, 1, SB_EFORMAT, "overlap" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":96,\"nbytes\":64,"
      "\"stored\":64,\"crc32c\":0}]}", 128, 0, 0, 1, SB_EFORMAT, "not aligned" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[16],\"offset\":64,\"nbytes\":60,"
      "\"stored\":60,\"crc32c\":0}]}", 64, 0, 0, 1, SB_EFORMAT, "needs 64" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f99\",\"shape\":[16],\"offset\":64,\"nbytes\":64,"
      "\"stored\":64,\"crc32c\":0}]}", 64, 0, 0, 1, SB_EFORMAT, "unknown encoding" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"sub1\",\"shape\":[2,8],\"offset\":64,\"nbytes\":64,"
      "\"stored\":64,\"crc32c\":CRC}]}", 64, 0, 0, 1, SB_EFORMAT, "does not match its shape" },
    { "{\"tensors\":[{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[4294967296,4294967296],\"offset\":64,"
      "\"nbytes\":64,\"stored\":64,\"crc32c\":0}]}", 64, 0, 0, 1, SB_EFORMAT, "overflows" },
};

START_TEST(test_sbc_corrupt_table)
{
    const char *path = test_tmpfile("c.subbit");
    /* CRC stands for the checksum of 64 zero bytes, so the data check passes */
    char json[1024];
    const char *at = strstr(corrupt[_i].json, "CRC");
    uint8_t z[64] = { 0 };
    if (at)
        snprintf(json, sizeof json, "%.*s%u%s", (int)(at - corrupt[_i].json), corrupt[_i].json,
                 fmt_sbc_crc32c(0, z, 64), at + 3);
    else
        snprintf(json, sizeof json, "%s", corrupt[_i].json);
    write_raw(path, json, corrupt[_i].data_len, corrupt[_i].fix_crc, corrupt[_i].hoff,
              corrupt[_i].hlen);
    if (corrupt[_i].code == 0) {
        struct fmt_model *m;
        struct sb_err err = { 0 };
        ck_assert_msg(fmt_model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
        fmt_model_free(m);
        return;
    }
    expect_open_fail(path, corrupt[_i].code, corrupt[_i].needle);
}
END_TEST

START_TEST(test_sbc_bad_magic_version)
{
    const char *path = test_tmpfile("c.subbit");
    write_raw(path, "{\"tensors\":[]}", 0, 1, 0, 0);
    size_t len;
    char *img = test_read_file(path, &len);
    img[7] = 2;
    test_write_file(path, img, len);
    expect_open_fail(path, SB_EUNSUPPORTED, "version 2");
    img[7] = 1;
    img[0] = 'X';
    test_write_file(path, img, len);
    expect_open_fail(path, SB_EFORMAT, "bad magic");
    test_write_file(path, "SUBBIT\0\1", 8);
    expect_open_fail(path, SB_EFORMAT, "truncated");
    free(img);
}
END_TEST

START_TEST(test_sbc_writer_checks_and_oom)
{
    struct fixture f;
    make_fixture(&f);
    const char *path = test_tmpfile("w.subbit");
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    struct fmt_write_opts o = { 0 };
    /* wrong size for a fixed-size encoding: refused, no file left */
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, path, f.plan, NT, &o, &err), 0);
    ck_assert_int_eq(fmt_writer_put(w, 0, f.data[0], f.nbytes[0] - 4, &err), SB_EINVAL);
    fmt_writer_abort(w);
    ck_assert(!test_file_exists(path));
    /* fail the Nth allocation: error, nothing left behind */
    for (long k = 0; k < 40; k++) {
        struct sb_err e2 = { 0 };
        sb_alloc_fail_after(k);
        int r = fmt_writer_open(&w, FMT_CONT_SUBBIT, path, f.plan, NT, &o, &e2);
        for (size_t i = 0; r == 0 && i < NT; i++)
            r = fmt_writer_put(w, i, f.data[i], f.nbytes[i], &e2);
        if (r == 0)
            r = fmt_writer_commit(w, &e2);
        else if (w)
            fmt_writer_abort(w);
        w = NULL;
        sb_alloc_fail_after(-1);
        if (r == 0) {
            unlink(path);
            continue;
        }
        ck_assert(!test_file_exists(path));
    }
    free_fixture(&f);
}
END_TEST

/* Placed (convert's MPI job): the stored bytes from fmt_sbc_stored (zstd
 * where it pays: the all-ones norm and the zeros), offsets planned by the
 * writer in order, the bytes written afterwards with pwrite in reverse
 * order: the file the writer's own puts give, byte for byte. */
START_TEST(test_sbc_placed_is_put)
{
    struct fixture f;
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    struct fmt_write_opts o = { 0 };
    struct fmt_placed pl[NT];
    const void *st[NT];
    void *keep[NT], *zbuf = NULL;
    size_t zcap = 0;
    uint64_t off[NT];
    make_fixture(&f);
    const char *a = test_tmpfile("put.subbit"), *b = test_tmpfile("placed.subbit");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, a, f.plan, NT, &o, &err), 0);
    for (size_t i = 0; i < NT; i++)
        ck_assert_int_eq(fmt_writer_put(w, i, f.data[i], f.nbytes[i], &err), 0);
    ck_assert_msg(fmt_writer_commit(w, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < NT; i++) {
        ck_assert_msg(fmt_sbc_stored(&f.plan[i], f.data[i], f.nbytes[i], &zbuf, &zcap, &st[i],
                                     &pl[i], b, &err) == 0, "%s", err.msg);
        keep[i] = malloc(pl[i].stored + 1);
        memcpy(keep[i], st[i], pl[i].stored);
    }
    ck_assert_uint_eq(pl[1].zstd, 1);
    ck_assert_uint_eq(pl[5].zstd, 1);
    ck_assert_uint_eq(pl[6].zstd, 0);   /* under 4 KiB: stored plain */
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, b, f.plan, NT, &o, &err), 0);
    for (size_t i = 0; i < NT; i++)
        ck_assert_int_eq(fmt_writer_place(w, i, &pl[i], &off[i], &err), 0);
    int fd = open(fmt_writer_file(w), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    for (int i = NT - 1; i >= 0; i--)
        ck_assert_int_eq(fmt_out_write_at(fd, keep[i], (size_t)pl[i].stored, off[i], b, &err), 0);
    close(fd);
    ck_assert_msg(fmt_writer_commit(w, &err) == 0, "%s", err.msg);
    size_t na = 0, nb = 0;
    char *ga = test_read_file(a, &na), *gb = test_read_file(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(ga, gb, na);
    free(ga);
    free(gb);
    for (int i = 0; i < NT; i++)
        free(keep[i]);
    sb_free(zbuf);
    free_fixture(&f);
}
END_TEST

TEST_SUITE(formats_sbc, 20, NULL, NULL,
    TEST(test_sbc_crc32c_golden), TEST(test_sbc_round_trip),
    TEST(test_sbc_flipped_byte_every_tensor),
    TEST_LOOP(test_sbc_corrupt_table, (int)(sizeof corrupt / sizeof corrupt[0])),
    TEST(test_sbc_bad_magic_version), TEST(test_sbc_writer_checks_and_oom),
    TEST(test_sbc_placed_is_put))
