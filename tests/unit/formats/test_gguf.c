/* test_gguf.c: GGUF reader and writer without fixtures.
 *
 * A small GGUF is built twice: byte by byte here (gb_*, independent of the
 * library, following formats.md §2.1) and by the writer; the two must be
 * identical. The hand-built one, with the offsets of its fields recorded,
 * then feeds the corrupt-file table (llama.cpp's test-gguf.cpp catalogue). */
#include <check.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmt_gguf.h"
#include "fmt_hftok.h"
#include "fmt_map.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "test_util.h"

/* ---- the hand-built file ------------------------------------------------- */

struct gb {
    uint8_t p[4096];
    size_t n;
};

static size_t gb_put(struct gb *b, const void *d, size_t n)
{
    size_t at = b->n;
    ck_assert_uint_le(b->n + n, sizeof b->p);
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return at;
}
static size_t gb_u32(struct gb *b, uint32_t v) { return gb_put(b, &v, 4); }
static size_t gb_u64(struct gb *b, uint64_t v) { return gb_put(b, &v, 8); }
/* returns the offset of the string's bytes (after the length) */
static size_t gb_str(struct gb *b, const char *s)
{
    gb_u64(b, strlen(s));
    return gb_put(b, s, strlen(s));
}

/* offsets of the fields the corrupt table patches */
enum field {
    F_MAGIC, F_VERSION, F_NT, F_NKV, F_KEYB_NAME, F_KEYA_TYPE, F_ALIGN_TYPE, F_ALIGN_VAL,
    F_ARR_TYPE, F_ARR_COUNT, F_NAME_LEN, F_TA_NDIM, F_TA_DIM0, F_TA_DIM1, F_TB_NAME,
    F_TB_TYPE, F_TB_OFF, F_TC_DIM0, F_TC_OFF, F_COUNT
};
static size_t off[F_COUNT];
static struct gb base;
static uint8_t tdata[3][68];

static const float arr_vals[3] = { 1.5f, -2.0f, 0.25f };
static const char *strs_vals[3] = { "x", "yz", "" };

static void build_base(void)
{
    struct gb *b = &base;
    b->n = 0;
    off[F_MAGIC] = gb_put(b, "GGUF", 4);
    off[F_VERSION] = gb_u32(b, 3);
    off[F_NT] = gb_u64(b, 3);
    off[F_NKV] = gb_u64(b, 7);
    gb_str(b, "general.architecture"); gb_u32(b, 8); gb_str(b, "llama");
    gb_str(b, "general.alignment"); off[F_ALIGN_TYPE] = gb_u32(b, 4);
    off[F_ALIGN_VAL] = gb_u32(b, 32);
    gb_str(b, "test.keyA"); off[F_KEYA_TYPE] = gb_u32(b, 4); gb_u32(b, 7);
    off[F_KEYB_NAME] = gb_str(b, "test.keyB"); gb_u32(b, 5); gb_u32(b, (uint32_t)-3);
    gb_str(b, "test.arr"); gb_u32(b, 9); off[F_ARR_TYPE] = gb_u32(b, 6);
    off[F_ARR_COUNT] = gb_u64(b, 3); gb_put(b, arr_vals, sizeof arr_vals);
    gb_str(b, "test.strs"); gb_u32(b, 9); gb_u32(b, 8); gb_u64(b, 3);
    for (int i = 0; i < 3; i++)
        gb_str(b, strs_vals[i]);
    gb_str(b, "general.name"); gb_u32(b, 8); off[F_NAME_LEN] = b->n; gb_str(b, "tiny");
    /* t.a: f32 [2,3] -> ne (3,2); t.b: f16 [5]; t.c: q8_0 [2,32] -> ne (32,2) */
    gb_str(b, "t.a"); off[F_TA_NDIM] = gb_u32(b, 2); off[F_TA_DIM0] = gb_u64(b, 3);
    off[F_TA_DIM1] = gb_u64(b, 2); gb_u32(b, 0); gb_u64(b, 0);
    off[F_TB_NAME] = gb_str(b, "t.b"); gb_u32(b, 1); gb_u64(b, 5); off[F_TB_TYPE] = gb_u32(b, 1);
    off[F_TB_OFF] = gb_u64(b, 32);
    gb_str(b, "t.c"); gb_u32(b, 2); off[F_TC_DIM0] = gb_u64(b, 32); gb_u64(b, 2); gb_u32(b, 8);
    off[F_TC_OFF] = gb_u64(b, 64);
    static const uint8_t zero[64];
    gb_put(b, zero, (32 - b->n % 32) % 32);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 68; i++)
            tdata[t][i] = (uint8_t)(t * 31 + i * 7 + 1);
    gb_put(b, tdata[0], 24); gb_put(b, zero, 8);
    gb_put(b, tdata[1], 10); gb_put(b, zero, 22);
    gb_put(b, tdata[2], 68); gb_put(b, zero, 28);
}

/* The same content as kv + plan for the writer. */
static struct fmt_kv kvs[7];
static char *strs_copy[3];
static uint64_t strs_lens[3] = { 1, 2, 0 };
static struct fmt_tensor plan[3];

static void build_plan(void)
{
    memset(kvs, 0, sizeof kvs);
    memset(plan, 0, sizeof plan);
    kvs[0] = (struct fmt_kv){ .key = "general.architecture", .type = FMT_KV_STRING,
                              .str = "llama", .len = 5 };
    kvs[1] = (struct fmt_kv){ .key = "general.alignment", .type = FMT_KV_U32, .u = 32 };
    kvs[2] = (struct fmt_kv){ .key = "test.keyA", .type = FMT_KV_U32, .u = 7 };
    kvs[3] = (struct fmt_kv){ .key = "test.keyB", .type = FMT_KV_I32, .i = -3 };
    kvs[4] = (struct fmt_kv){ .key = "test.arr", .type = FMT_KV_ARRAY, .arr_type = FMT_KV_F32,
                              .n = 3, .arr = arr_vals };
    for (int i = 0; i < 3; i++)
        strs_copy[i] = (char *)strs_vals[i];
    kvs[5] = (struct fmt_kv){ .key = "test.strs", .type = FMT_KV_ARRAY,
                              .arr_type = FMT_KV_STRING, .n = 3, .strs = strs_copy,
                              .lens = strs_lens };
    kvs[6] = (struct fmt_kv){ .key = "general.name", .type = FMT_KV_STRING, .str = "tiny",
                              .len = 4 };
    plan[0] = (struct fmt_tensor){ .name = "t.a", .dtype = SB_DTYPE_F32, .ndim = 2,
                                   .shape = { 2, 3 } };
    plan[1] = (struct fmt_tensor){ .name = "t.b", .dtype = SB_DTYPE_F16, .ndim = 1,
                                   .shape = { 5 } };
    plan[2] = (struct fmt_tensor){ .name = "t.c", .dtype = SB_DTYPE_Q8_0, .ndim = 2,
                                   .shape = { 2, 32 } };
}

/* piece 0: each tensor whole; else in pieces of that many bytes (the last shorter) */
static int write_plan_pieces(const char *path, const struct fmt_write_opts *o, uint64_t piece,
                             struct sb_err *err)
{
    static const uint64_t nb[3] = { 24, 10, 68 };
    struct fmt_writer *w;
    int r = fmt_writer_open(&w, FMT_CONT_GGUF, path, plan, 3, o, err);
    if (r)
        return r;
    for (size_t k = 0; k < 3; k++) {
        size_t i = fmt_writer_order(w, k);
        if (piece == 0) {
            r = fmt_writer_put(w, i, tdata[i], nb[i], err);
        } else {
            ck_assert(fmt_writer_streams(w, i));
            for (uint64_t at = 0; at < nb[i] && r == SB_OK; at += piece)
                r = fmt_writer_put_piece(w, i, (const uint8_t *)tdata[i] + at,
                                         nb[i] - at < piece ? nb[i] - at : piece, nb[i], err);
        }
        if (r) {
            fmt_writer_abort(w);
            return r;
        }
    }
    return fmt_writer_commit(w, err);
}

static int write_plan(const char *path, const struct fmt_write_opts *o, struct sb_err *err)
{
    return write_plan_pieces(path, o, 0, err);
}

static void setup(void)
{
    build_base();
    build_plan();
}

static void teardown(void)
{
    sb_alloc_fail_after(-1);
    fmt_out_fail_write_after(-1);
    test_tmpdir_cleanup();
}

static void assert_file_eq(const char *path, const void *want, size_t n)
{
    size_t len = 0;
    char *got = test_read_file(path, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(got, want, n);
    free(got);
}

/* ---- the writer matches the hand-built bytes ----------------------------- */

START_TEST(test_writer_matches_hand_built)
{
    struct sb_err err = { 0 };
    struct fmt_write_opts o = { .kv = kvs, .n_kv = 7 };
    const char *p = test_tmpfile("w.gguf");
    ck_assert_int_eq(write_plan(p, &o, &err), SB_OK);
    assert_file_eq(p, base.p, base.n);
    ck_assert_uint_eq(base.n, 576);   /* 416 header + 160 data: counted by hand */
}
END_TEST

/* the same bytes when every tensor comes in pieces (1, 3, 7, 64 bytes), and
 * pieces are checked: none past the tensor, no whole put in the middle */
START_TEST(test_writer_pieces_match_hand_built)
{
    static const uint64_t pieces[] = { 1, 3, 7, 64 };
    struct sb_err err = { 0 };
    struct fmt_write_opts o = { .kv = kvs, .n_kv = 7 };
    const char *p = test_tmpfile("wp.gguf");
    ck_assert_int_eq(write_plan_pieces(p, &o, pieces[_i], &err), SB_OK);
    assert_file_eq(p, base.p, base.n);

    struct fmt_writer *w;
    const char *q = test_tmpfile("wq.gguf");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, q, plan, 3, &o, &err), SB_OK);
    size_t i = fmt_writer_order(w, 0);
    ck_assert_int_eq(fmt_writer_put_piece(w, i, tdata[i], 8, 24, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_put_piece(w, i, tdata[i], 17, 24, &err), SB_EINVAL);
    ck_assert_int_eq(fmt_writer_put(w, i, tdata[i], 24, &err), SB_EINVAL);
    fmt_writer_abort(w);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1); /* wp.gguf only */
}
END_TEST

/* Placed (convert's MPI job): every offset planned first, the bytes written
 * afterwards by "another process" with pwrite into the temp file, in reverse
 * order, the tail padding never written: the hand-built bytes again; a size
 * other than the shape's is refused. */
START_TEST(test_writer_placed_matches_hand_built)
{
    static const uint64_t nb[3] = { 24, 10, 68 };
    struct sb_err err = { 0 };
    struct fmt_write_opts o = { .kv = kvs, .n_kv = 7 };
    const char *p = test_tmpfile("pl.gguf");
    struct fmt_writer *w;
    uint64_t at[3];
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, &o, &err), SB_OK);
    const struct fmt_placed bad = { 23, 23, 0, 0 };
    ck_assert_int_eq(fmt_writer_place(w, fmt_writer_order(w, 0), &bad, &at[0], &err),
                     SB_EINVAL);
    for (size_t k = 0; k < 3; k++) {
        const size_t i = fmt_writer_order(w, k);
        const struct fmt_placed pl = { nb[i], nb[i], 0, 0 };
        ck_assert_int_eq(fmt_writer_place(w, i, &pl, &at[i], &err), SB_OK);
    }
    ck_assert_uint_eq(at[0], 416);   /* the data start counted by hand */
    ck_assert_uint_eq(at[2], 416 + 32 + 32);
    int fd = open(fmt_writer_file(w), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    for (int i = 2; i >= 0; i--)
        ck_assert_int_eq(fmt_out_write_at(fd, tdata[i], (size_t)nb[i], at[i], p, &err), SB_OK);
    close(fd);
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    assert_file_eq(p, base.p, base.n);
}
END_TEST

START_TEST(test_read_hand_built)
{
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *p = test_tmpfile("r.gguf");
    ck_assert_int_eq(test_write_file(p, base.p, base.n), 0);
    struct fmt_open_opts oo = { .headers_only = _i == 1 };
    ck_assert_int_eq(fmt_model_open(&m, p, &oo, &err), SB_OK);
    ck_assert_int_eq(m->container, FMT_CONT_GGUF);
    ck_assert_uint_eq(m->n_kv, 7);
    ck_assert_uint_eq(m->n_tensors, 3);
    ck_assert_uint_eq(m->gguf_alignment, 32);
    ck_assert_str_eq(m->kv[0].key, "general.architecture");
    ck_assert_str_eq(m->kv[0].str, "llama");
    ck_assert_uint_eq(m->kv[2].u, 7);
    ck_assert_int_eq(m->kv[3].type, FMT_KV_I32);
    ck_assert_int_eq(m->kv[3].i, -3);
    ck_assert_int_eq(m->kv[4].arr_type, FMT_KV_F32);
    ck_assert_uint_eq(m->kv[4].n, 3);
    ck_assert_mem_eq(m->kv[4].arr, arr_vals, sizeof arr_vals);
    ck_assert_ptr_nonnull(_i == 1 ? m->kv[4].arr_owned : (void *)1);
    ck_assert_uint_eq(m->kv[5].n, 3);
    ck_assert_str_eq(m->kv[5].strs[1], "yz");
    ck_assert_uint_eq(m->kv[5].lens[2], 0);
    ck_assert_str_eq(fmt_model_find_kv(m, "general.name")->str, "tiny");
    /* shapes in PyTorch order = reversed ne */
    const struct fmt_tensor *a = &m->tensors[0], *b = &m->tensors[1], *c = &m->tensors[2];
    ck_assert_str_eq(a->name, "t.a");
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_int_eq(a->dtype, SB_DTYPE_F32);
    ck_assert_int_eq(b->dtype, SB_DTYPE_F16);
    ck_assert_int_eq(c->dtype, SB_DTYPE_Q8_0);
    ck_assert_int_eq(c->shape[0], 2);
    ck_assert_int_eq(c->shape[1], 32);
    ck_assert_uint_eq(a->nbytes, 24);
    ck_assert_uint_eq(b->nbytes, 10);
    ck_assert_uint_eq(c->nbytes, 68);
    ck_assert_uint_eq(a->file_offset, 416);
    ck_assert_uint_eq(b->file_offset, 448);
    ck_assert_uint_eq(c->file_offset, 480);
    if (_i == 1) {
        ck_assert_ptr_null(a->data);
    } else {
        ck_assert_mem_eq(a->data, tdata[0], 24);
        ck_assert_mem_eq(b->data, tdata[1], 10);
        ck_assert_mem_eq(c->data, tdata[2], 68);
    }
    ck_assert(!m->has_arch);   /* no llama.block_count */
    ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_NONE);
    fmt_model_free(m);
}
END_TEST

/* ---- the corrupt-file table --------------------------------------------- */

enum op { P_U32, P_U64, P_BYTES, P_TRUNC };
static const struct bad_case {
    const char *what;
    enum op op;
    enum field f;
    uint64_t v;
    const char *bytes;     /* P_BYTES */
    int code;
    const char *msg;       /* substring of the message */
} bad[] = {
    { "bad magic", P_BYTES, F_MAGIC, 0, "GGUG", SB_EFORMAT, "bad magic" },
    { "version 4", P_U32, F_VERSION, 4, NULL, SB_EUNSUPPORTED, "version 4 is newer" },
    { "version 1", P_U32, F_VERSION, 1, NULL, SB_EUNSUPPORTED, "version 1 is not supported" },
    { "version 0", P_U32, F_VERSION, 0, NULL, SB_EFORMAT, "byte-swapped" },
    { "byte-swapped version", P_U32, F_VERSION, 0x03000000, NULL, SB_EFORMAT, "byte-swapped" },
    { "tensor count", P_U64, F_NT, 1ull << 40, NULL, SB_EFORMAT, "tensor count 1099511627776" },
    { "tensor count 19", P_U64, F_NT, 19, NULL, SB_EFORMAT, "tensor count 19 is more" },
    { "kv count", P_U64, F_NKV, 1ull << 40, NULL, SB_EFORMAT, "key/value count" },
    { "string past eof", P_U64, F_NAME_LEN, 1u << 20, NULL, SB_EFORMAT,
      "is 1048576 bytes long, past end of file (576)" },
    { "string over 1 GiB", P_U64, F_NAME_LEN, (1ull << 30) + 1, NULL, SB_EFORMAT, "limit 1 GiB" },
    { "array count past eof", P_U64, F_ARR_COUNT, 1u << 20, NULL, SB_EFORMAT,
      "key 'test.arr': array of 1048576 f32 needs 4194304 bytes" },
    { "array count over 2^30", P_U64, F_ARR_COUNT, (1ull << 30) + 1, NULL, SB_EFORMAT,
      "limit 2^30" },
    { "array of arrays", P_U32, F_ARR_TYPE, 9, NULL, SB_EFORMAT, "array of arrays" },
    { "array of type 13", P_U32, F_ARR_TYPE, 13, NULL, SB_EFORMAT, "array of unknown type" },
    { "value type 13", P_U32, F_KEYA_TYPE, 13, NULL, SB_EFORMAT, "unknown value type 13" },
    { "duplicate key", P_BYTES, F_KEYB_NAME, 0, "test.keyA", SB_EFORMAT,
      "duplicate key 'test.keyA'" },
    { "duplicate tensor", P_BYTES, F_TB_NAME, 0, "t.a", SB_EFORMAT, "duplicate tensor 't.a'" },
    { "overlapping data", P_U64, F_TB_OFF, 0, NULL, SB_EFORMAT,
      "tensor 't.b' data offset 0 overlaps" },
    { "gap in data", P_U64, F_TB_OFF, 64, NULL, SB_EFORMAT, "'t.b' data offset 64 leaves a gap" },
    { "unaligned offset", P_U64, F_TB_OFF, 40, NULL, SB_EFORMAT,
      "'t.b' data offset 40 is not a multiple of the alignment (32)" },
    { "data past eof (offset)", P_U64, F_TC_OFF, 1u << 20, NULL, SB_EFORMAT,
      "tensor 't.c' ends past end of file" },
    { "data past eof (truncated)", P_TRUNC, F_COUNT, 41, NULL, SB_EFORMAT,
      "tensor 't.c' ends past end of file" },
    { "header truncated", P_TRUNC, F_COUNT, 200, NULL, SB_EFORMAT, "past end of file" },
    { "three bytes", P_TRUNC, F_COUNT, 573, NULL, SB_EFORMAT, "not a GGUF file" },
    { "type id 4 (removed)", P_U32, F_TB_TYPE, 4, NULL, SB_EFORMAT,
      "'t.b' has unknown or removed type id 4" },
    { "type id 99", P_U32, F_TB_TYPE, 99, NULL, SB_EFORMAT, "unknown or removed type id 99" },
    { "type id 36 (removed)", P_U32, F_TB_TYPE, 36, NULL, SB_EFORMAT, "type id 36" },
    { "dims product overflow", P_U64, F_TA_DIM0, 1ull << 62, NULL, SB_EFORMAT,
      "'t.a': element count overflows" },
    { "dim above int64", P_U64, F_TA_DIM1, 1ull << 63, NULL, SB_EFORMAT,
      "'t.a': element count overflows" },
    { "n_dims 5", P_U32, F_TA_NDIM, 5, NULL, SB_EFORMAT, "'t.a' has 5 dims (max 4)" },
    { "row not a multiple of the block", P_U64, F_TC_DIM0, 16, NULL, SB_EFORMAT,
      "row length 16 is not a multiple of the q8_0 block (32)" },
    { "alignment 0", P_U32, F_ALIGN_VAL, 0, NULL, SB_EFORMAT, "alignment 0 is not a power" },
    { "alignment 3", P_U32, F_ALIGN_VAL, 3, NULL, SB_EFORMAT, "alignment 3 is not a power" },
    { "alignment as i32", P_U32, F_ALIGN_TYPE, 5, NULL, SB_EFORMAT,
      "general.alignment is i32, expected u32" },
    { "alignment 64 (offsets then unaligned)", P_U32, F_ALIGN_VAL, 64, NULL, SB_EFORMAT,
      "'t.b' data offset 32 is not a multiple of the alignment (64)" },
};
#define N_BAD (int)(sizeof bad / sizeof bad[0])

START_TEST(test_corrupt_table)
{
    const struct bad_case *c = &bad[_i % N_BAD];
    struct gb f = base;
    size_t n = f.n;
    switch (c->op) {
    case P_U32: { uint32_t v = (uint32_t)c->v; memcpy(f.p + off[c->f], &v, 4); break; }
    case P_U64: memcpy(f.p + off[c->f], &c->v, 8); break;
    case P_BYTES: memcpy(f.p + off[c->f], c->bytes, strlen(c->bytes)); break;
    case P_TRUNC: n -= (size_t)c->v; break;
    }
    const char *p = test_tmpfile("bad.gguf");
    ck_assert_int_eq(test_write_file(p, f.p, n), 0);
    struct sb_err err = { 0 };
    struct fmt_model *m = (struct fmt_model *)1;
    struct fmt_open_opts oo = { .headers_only = _i >= N_BAD };
    int r = fmt_model_open(&m, p, &oo, &err);
    ck_assert_msg(r == c->code, "%s: status %d, want %d (%s)", c->what, r, c->code, err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strncmp(err.msg, p, strlen(p)) == 0 && err.msg[strlen(p)] == ':',
                  "%s: message does not start with the file: %s", c->what, err.msg);
    ck_assert_msg(strstr(err.msg, c->msg), "%s: message '%s' lacks '%s'", c->what, err.msg,
                  c->msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
}
END_TEST

/* ggml's GGML_MAX_NAME is 64 with the NUL: 63 bytes pass, 64 fail */
START_TEST(test_tensor_name_length)
{
    struct gb f = { .n = 0 };
    char name[65];
    memset(name, 'x', 64);
    name[63 + _i] = '\0';
    gb_put(&f, "GGUF", 4); gb_u32(&f, 3); gb_u64(&f, 1); gb_u64(&f, 0);
    gb_str(&f, name); gb_u32(&f, 1); gb_u64(&f, 8); gb_u32(&f, 0); gb_u64(&f, 0);
    static const uint8_t zero[64];
    gb_put(&f, zero, (32 - f.n % 32) % 32);
    gb_put(&f, zero, 32);
    const char *p = test_tmpfile("name.gguf");
    ck_assert_int_eq(test_write_file(p, f.p, f.n), 0);
    struct sb_err err = { 0 };
    struct fmt_model *m;
    int r = fmt_model_open(&m, p, NULL, &err);
    if (_i == 0) {
        ck_assert_msg(r == SB_OK, "%s", err.msg);
        ck_assert_uint_eq(strlen(m->tensors[0].name), 63);
        ck_assert_uint_eq(m->tensors[0].nbytes, 32);
        fmt_model_free(m);
    } else {
        ck_assert_int_eq(r, SB_EFORMAT);
        ck_assert_msg(strstr(err.msg, "is 64 bytes (must be under 64"), "%s", err.msg);
    }
}
END_TEST

/* ---- writer behaviour ---------------------------------------------------- */

START_TEST(test_round_trip_byte_identical)
{
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *src = test_tmpfile("src.gguf"), *dst = test_tmpfile("dst.gguf");
    ck_assert_int_eq(test_write_file(src, base.p, base.n), 0);
    ck_assert_int_eq(fmt_model_open(&m, src, NULL, &err), SB_OK);
    struct fmt_write_opts o = { .kv = m->kv, .n_kv = m->n_kv };
    struct fmt_writer *w;
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, dst, m->tensors, m->n_tensors, &o,
                                     &err), SB_OK);
    for (size_t k = 0; k < m->n_tensors; k++) {
        size_t i = fmt_writer_order(w, k);
        ck_assert_uint_eq(i, k);
        ck_assert_int_eq(fmt_writer_put(w, i, m->tensors[i].data, m->tensors[i].nbytes, &err),
                         SB_OK);
    }
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    fmt_model_free(m);
    assert_file_eq(dst, base.p, base.n);
}
END_TEST

START_TEST(test_alignment_64)
{
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *p = test_tmpfile("a64.gguf");
    /* kv without general.alignment: the writer appends it */
    struct fmt_kv k2[6] = { kvs[0], kvs[2], kvs[3], kvs[4], kvs[5], kvs[6] };
    struct fmt_write_opts o = { .kv = k2, .n_kv = 6, .alignment = 64 };
    ck_assert_int_eq(write_plan(p, &o, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_uint_eq(m->gguf_alignment, 64);
    ck_assert_uint_eq(m->n_kv, 7);
    ck_assert_str_eq(m->kv[6].key, "general.alignment");
    ck_assert_uint_eq(m->kv[6].u, 64);
    uint64_t start = m->tensors[0].file_offset;
    ck_assert_uint_eq(start % 64, 0);
    ck_assert_uint_eq(m->tensors[1].file_offset - start, 64);
    ck_assert_uint_eq(m->tensors[2].file_offset - start, 128);
    ck_assert_mem_eq(m->tensors[2].data, tdata[2], 68);
    ck_assert_uint_eq(m->maps[0]->size, start + 256);   /* 68 bytes padded to 128 */
    fmt_model_free(m);

    /* kv says 32, option says 16: the written key follows the real alignment */
    p = test_tmpfile("a16.gguf");
    struct fmt_write_opts o16 = { .kv = kvs, .n_kv = 7, .alignment = 16 };
    ck_assert_int_eq(write_plan(p, &o16, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_uint_eq(m->gguf_alignment, 16);
    ck_assert_uint_eq(m->tensors[1].file_offset - m->tensors[0].file_offset, 32);
    ck_assert_uint_eq(m->tensors[2].file_offset - m->tensors[1].file_offset, 16);
    fmt_model_free(m);
}
END_TEST

START_TEST(test_all_value_types)
{
    static const int16_t i16s[2] = { -300, 301 };
    static const uint64_t u64s[1] = { 0xFFFFFFFFFFFFFFFFull };
    struct fmt_kv k[] = {
        { .key = "t.u8", .type = FMT_KV_U8, .u = 250 },
        { .key = "t.i8", .type = FMT_KV_I8, .i = -100 },
        { .key = "t.u16", .type = FMT_KV_U16, .u = 65000 },
        { .key = "t.i16", .type = FMT_KV_I16, .i = -32000 },
        { .key = "t.u32", .type = FMT_KV_U32, .u = 4000000000u },
        { .key = "t.i32", .type = FMT_KV_I32, .i = -2000000000 },
        { .key = "t.f32", .type = FMT_KV_F32, .f = 0.1f },
        { .key = "t.bool", .type = FMT_KV_BOOL, .u = 1 },
        { .key = "t.str", .type = FMT_KV_STRING, .str = "h\xc3\xa9", .len = 3 },
        { .key = "t.u64", .type = FMT_KV_U64, .u = 1ull << 60 },
        { .key = "t.i64", .type = FMT_KV_I64, .i = -(1ll << 60) },
        { .key = "t.f64", .type = FMT_KV_F64, .f = 0.1 },
        { .key = "t.ai16", .type = FMT_KV_ARRAY, .arr_type = FMT_KV_I16, .n = 2, .arr = i16s },
        { .key = "t.au64", .type = FMT_KV_ARRAY, .arr_type = FMT_KV_U64, .n = 1, .arr = u64s },
        { .key = "t.empty", .type = FMT_KV_ARRAY, .arr_type = FMT_KV_U8, .n = 0 },
    };
    size_t nk = sizeof k / sizeof k[0];
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *p = test_tmpfile("types.gguf");
    struct fmt_writer *w;
    struct fmt_write_opts o = { .kv = k, .n_kv = nk };
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, NULL, 0, &o, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_uint_eq(m->n_kv, nk);
    ck_assert_uint_eq(m->n_tensors, 0);
    for (size_t i = 0; i < nk; i++) {
        ck_assert_str_eq(m->kv[i].key, k[i].key);
        ck_assert_int_eq(m->kv[i].type, k[i].type);
    }
    ck_assert_uint_eq(m->kv[0].u, 250);
    ck_assert_int_eq(m->kv[1].i, -100);
    ck_assert_uint_eq(m->kv[2].u, 65000);
    ck_assert_int_eq(m->kv[3].i, -32000);
    ck_assert_uint_eq(m->kv[4].u, 4000000000u);
    ck_assert_int_eq(m->kv[5].i, -2000000000);
    ck_assert(m->kv[6].f == (double)0.1f);
    ck_assert_uint_eq(m->kv[7].u, 1);
    ck_assert_str_eq(m->kv[8].str, "h\xc3\xa9");
    ck_assert_uint_eq(m->kv[8].len, 3);
    ck_assert_uint_eq(m->kv[9].u, 1ull << 60);
    ck_assert_int_eq(m->kv[10].i, -(1ll << 60));
    ck_assert(m->kv[11].f == 0.1);
    ck_assert_mem_eq(m->kv[12].arr, i16s, 4);
    ck_assert_mem_eq(m->kv[13].arr, u64s, 8);
    ck_assert_uint_eq(m->kv[14].n, 0);
    /* 24 header + keys: hand count of the file size */
    uint64_t want = 24;
    for (size_t i = 0; i < nk; i++)
        want += 8 + strlen(k[i].key) + 4;
    want += 1 + 1 + 2 + 2 + 4 + 4 + 4 + 1 + (8 + 3) + 8 + 8 + 8 + (12 + 4) + (12 + 8) + 12;
    ck_assert_uint_eq(m->maps[0]->size, want);   /* no tensors: no padding */
    fmt_model_free(m);
}
END_TEST

static const struct refuse_case {
    enum sb_dtype dt;
    const char *name;
    int code;
    const char *msg;
} refuse[] = {
    { SB_DTYPE_INT8, "w", SB_EUNSUPPORTED, "encoding int8 has no GGUF type (use q8_0)" },
    { SB_DTYPE_TERN, "w", SB_EUNSUPPORTED, "encoding tern has no GGUF type (use .subbit)" },
    { SB_DTYPE_SUB1, "w", SB_EUNSUPPORTED, "(use .subbit)" },
    { SB_DTYPE_SUB1_QMOE, "w", SB_EUNSUPPORTED, "(use .subbit)" },
    { SB_DTYPE_U8, "w", SB_EUNSUPPORTED, "encoding u8 has no GGUF type" },
    { SB_DTYPE_F32, "a_name_that_is_exactly_sixty_four_bytes_long_xxxxxxxxxxxxxxxxxxx",
      SB_EINVAL, "must be 1 to 63 bytes" },
    { SB_DTYPE_F32, "t.a", SB_EINVAL, "duplicate tensor 't.a'" },
    { SB_DTYPE_Q8_0, "w", SB_EINVAL, "shape does not fit q8_0" },
};

START_TEST(test_writer_refuses)
{
    const struct refuse_case *c = &refuse[_i];
    struct fmt_tensor pl[2] = { plan[0], { .name = (char *)c->name, .dtype = c->dt, .ndim = 2,
                                           .shape = { 4, 48 } } };
    ck_assert_uint_eq(strlen(refuse[5].name), 64);
    struct sb_err err = { 0 };
    struct fmt_writer *w = (struct fmt_writer *)1;
    const char *p = test_tmpfile("refused.gguf");
    int r = fmt_writer_open(&w, FMT_CONT_GGUF, p, pl, 2, NULL, &err);
    ck_assert_int_eq(r, c->code);
    ck_assert_ptr_null(w);
    ck_assert_msg(strstr(err.msg, c->msg) && strstr(err.msg, p), "%s", err.msg);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
}
END_TEST

START_TEST(test_writer_bad_put_and_kv)
{
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    const char *p = test_tmpfile("put.gguf");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, NULL, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_put(w, 0, tdata[0], 23, &err), SB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "tensor 't.a': got 23 bytes, expected 24"));
    fmt_writer_abort(w);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);

    struct fmt_kv dup[2] = { kvs[2], kvs[2] };
    struct fmt_write_opts o = { .kv = dup, .n_kv = 2 };
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, &o, &err), SB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate key 'test.keyA'"));
    struct fmt_kv bad_align = { .key = "general.alignment", .type = FMT_KV_U64, .u = 32 };
    o = (struct fmt_write_opts){ .kv = &bad_align, .n_kv = 1 };
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, &o, &err), SB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "general.alignment must be u32"));
    o = (struct fmt_write_opts){ .alignment = 48 };
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, &o, &err), SB_EINVAL);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
    /* an existing file is kept without FMT_OUT_FORCE */
    ck_assert_int_eq(test_write_file(p, "x", 1), 0);
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, plan, 3, NULL, &err), SB_EIO);
    assert_file_eq(p, "x", 1);
    o = (struct fmt_write_opts){ .flags = FMT_OUT_FORCE, .kv = kvs, .n_kv = 7 };
    ck_assert_int_eq(write_plan(p, &o, &err), SB_OK);
    assert_file_eq(p, base.p, base.n);
}
END_TEST

/* Fail the Nth allocation, then the Nth write, until the whole write+read
 * succeeds: every failure must report, free all (ASan) and leave no file. */
START_TEST(test_fault_injection)
{
    struct fmt_write_opts o = { .kv = kvs, .n_kv = 7 };
    const char *p = test_tmpfile("fi.gguf");
    int mode = _i;   /* 0: allocations, 1: writes */
    long k;
    for (k = 0; k < 1000; k++) {
        struct sb_err err = { 0 };
        if (mode == 0)
            sb_alloc_fail_after(k);
        else
            fmt_out_fail_write_after(k);
        int r = write_plan(p, &o, &err);
        sb_alloc_fail_after(-1);
        fmt_out_fail_write_after(-1);
        if (r == SB_OK)
            break;
        ck_assert_int_eq(r, mode == 0 ? SB_ENOMEM : SB_EIO);
        ck_assert_msg(strstr(err.msg, p) || mode == 0, "%s", err.msg);
        ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
    }
    ck_assert_int_gt(k, 0);
    assert_file_eq(p, base.p, base.n);
    if (mode == 1)
        return;
    for (k = 0; k < 1000; k++) {
        struct sb_err err = { 0 };
        struct fmt_model *m;
        sb_alloc_fail_after(k);
        int r = fmt_model_open(&m, p, NULL, &err);
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            ck_assert_str_eq(m->kv[5].strs[1], "yz");
            fmt_model_free(m);
            break;
        }
        ck_assert_int_eq(r, SB_ENOMEM);
        ck_assert_ptr_null(m);
    }
    ck_assert_int_gt(k, 10);
}
END_TEST

/* ---- vocab and arch written from structs --------------------------------- */

START_TEST(test_vocab_and_arch_keys)
{
    /* a llama2.c-spelled vocab: spaces, "\n<s>\n" */
    char *toks[6] = { "<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " the", "a b" };
    uint32_t lens[6] = { 5, 5, 6, 6, 4, 3 };
    float scores[6] = { 0, 0, 0, 0, -1.5f, -2.0f };
    struct fmt_vocab v = { .kind = FMT_VOCAB_SPM, .n_tokens = 6, .tokens = toks, .lens = lens,
                           .scores = scores, .bos_id = 1, .eos_id = 2, .unk_id = 0,
                           .add_bos = true };
    struct fmt_arch a = { .kind = FMT_ARCH_LLAMA, .n_layers = 2, .dim = 16, .hidden_dim = 40,
                          .n_heads = 4, .n_kv_heads = 2, .head_dim = 4, .n_ctx = 128,
                          .norm_eps = 1e-5f, .rope_theta = 500000.0f };
    struct fmt_kv name = { .key = "general.name", .type = FMT_KV_STRING, .str = "t", .len = 1 };
    struct fmt_write_opts o = { .kv = &name, .n_kv = 1, .arch = &a, .vocab = &v };
    struct fmt_tensor pl = { .name = "output.weight", .dtype = SB_DTYPE_F32, .ndim = 2,
                             .shape = { 6, 16 } };
    static float data[96];
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    struct fmt_model *m;
    const char *p = test_tmpfile("vocab.gguf");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, &pl, 1, &o, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_put(w, 0, data, sizeof data, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    /* the kv, 10 llama.* keys and 8 tokenizer keys (add_bos_token written even
     * when true: the writer and convert share one metadata builder) */
    ck_assert_uint_eq(m->n_kv, 1 + 10 + 8);
    ck_assert(fmt_model_find_kv(m, "tokenizer.ggml.add_bos_token")->u == 1);
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, FMT_ARCH_LLAMA);
    ck_assert_int_eq(m->arch.n_layers, 2);
    ck_assert_int_eq(m->arch.dim, 16);
    ck_assert_int_eq(m->arch.hidden_dim, 40);
    ck_assert_int_eq(m->arch.n_heads, 4);
    ck_assert_int_eq(m->arch.n_kv_heads, 2);
    ck_assert_int_eq(m->arch.head_dim, 4);
    ck_assert_int_eq(m->arch.n_ctx, 128);
    ck_assert_int_eq(m->arch.vocab_size, 6);
    ck_assert(m->arch.rope_theta == 500000.0f);
    ck_assert(m->arch.norm_eps == 1e-5f);
    ck_assert_int_eq(m->arch.rope_layout, FMT_ROPE_INTERLEAVED);
    ck_assert(!m->arch.tied_embeddings);
    ck_assert_int_eq(m->vocab.kind, FMT_VOCAB_SPM);
    ck_assert_uint_eq(m->vocab.n_tokens, 6);
    ck_assert_str_eq(m->vocab.tokens[1], "<s>");
    ck_assert_str_eq(m->vocab.tokens[2], "</s>");
    ck_assert_str_eq(m->vocab.tokens[4], "\xe2\x96\x81the");
    ck_assert_str_eq(m->vocab.tokens[5], "a\xe2\x96\x81" "b");
    ck_assert_uint_eq(m->vocab.lens[5], 5);
    ck_assert_uint_eq(m->vocab.max_token_len, 6);
    ck_assert(m->vocab.scores[5] == -2.0f);
    /* convert-llama2c-to-ggml's types: unk 2, control 3, byte 6, normal 1 */
    static const int32_t want_types[6] = { 2, 3, 3, 6, 1, 1 };
    ck_assert_mem_eq(m->vocab.types, want_types, sizeof want_types);
    ck_assert_int_eq(m->vocab.bos_id, 1);
    ck_assert_int_eq(m->vocab.eos_id, 2);
    ck_assert_int_eq(m->vocab.unk_id, 0);
    ck_assert(m->vocab.add_bos);
    fmt_model_free(m);
}
END_TEST

START_TEST(test_moe_arch)
{
    struct fmt_kv k[] = {
        { .key = "general.architecture", .type = FMT_KV_STRING, .str = "llama", .len = 5 },
        { .key = "llama.block_count", .type = FMT_KV_U32, .u = 1 },
        { .key = "llama.embedding_length", .type = FMT_KV_U32, .u = 8 },
        { .key = "llama.feed_forward_length", .type = FMT_KV_U32, .u = 12 },
        { .key = "llama.attention.head_count", .type = FMT_KV_U32, .u = 2 },
        { .key = "llama.expert_count", .type = FMT_KV_U32, .u = 4 },
        { .key = "llama.expert_used_count", .type = FMT_KV_U32, .u = 2 },
    };
    struct fmt_tensor pl = { .name = "token_embd.weight", .dtype = SB_DTYPE_F32, .ndim = 2,
                             .shape = { 3, 8 } };
    static float data[24];
    struct sb_err err = { 0 };
    struct fmt_writer *w;
    struct fmt_model *m;
    struct fmt_write_opts o = { .kv = k, .n_kv = 7 };
    const char *p = test_tmpfile("moe.gguf");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, &pl, 1, &o, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_put(w, 0, data, sizeof data, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, FMT_ARCH_MIXTRAL);
    ck_assert_int_eq(m->arch.n_experts, 4);
    ck_assert_int_eq(m->arch.n_experts_used, 2);
    ck_assert_int_eq(m->arch.moe_hidden_dim, 12);
    ck_assert(m->arch.norm_topk_prob);
    ck_assert(m->arch.tied_embeddings);
    ck_assert_int_eq(m->arch.n_kv_heads, 2);     /* defaults to head_count */
    ck_assert(m->arch.rope_theta == 10000.0f);   /* default */
    ck_assert_int_eq(m->arch.vocab_size, 3);     /* from token_embd */
    fmt_model_free(m);
}
END_TEST

/* A GGUF "gpt2" tokenizer (256 byte tokens in GPT-2's byte-to-unicode spelling,
 * one merge, <s>) read back: the tokenizer.json + tokenizer_config.json it stands
 * for; add_bos_token false leaves no BOS to add; malformed keys are refused. */
enum { GPT2_N = 259 };

/* case 0 well formed; 1 token_type short; 2 merges not strings; 3 a merge
 * without a space; 4 no tokens */
static int write_gpt2(const char *p, int kase, struct sb_err *err)
{
    static char toks[GPT2_N][8];
    char *tp[GPT2_N];
    uint64_t tl[GPT2_N];
    static int32_t types[GPT2_N];
    int n = 0;
    for (int b = 0; b < 256; b++) {    /* bytes_to_unicode: printable bytes keep their code */
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        uint32_t c = keep ? (uint32_t)b : 256u + (uint32_t)n++;
        if (c < 0x80) {
            toks[b][0] = (char)c;
            toks[b][1] = 0;
        } else {
            toks[b][0] = (char)(0xC0 | (c >> 6));
            toks[b][1] = (char)(0x80 | (c & 0x3F));
            toks[b][2] = 0;
        }
        types[b] = 1;
    }
    strcpy(toks[256], "ab");
    types[256] = 1;
    strcpy(toks[257], "<s>");
    types[257] = 3;
    strcpy(toks[258], "<tool>");
    types[258] = 4;
    for (int i = 0; i < GPT2_N; i++) {
        tp[i] = toks[i];
        tl[i] = strlen(toks[i]);
    }
    char *mg[1] = { kase == 3 ? "ab" : "a b" };
    uint64_t ml[1] = { kase == 3 ? 2 : 3 };
    struct fmt_kv k[8] = {
        { .key = "general.architecture", .type = FMT_KV_STRING, .str = "llama", .len = 5 },
        { .key = "tokenizer.ggml.model", .type = FMT_KV_STRING, .str = "gpt2", .len = 4 },
        { .key = "tokenizer.ggml.pre", .type = FMT_KV_STRING, .str = "default", .len = 7 },
        { .key = "tokenizer.ggml.token_type", .type = FMT_KV_ARRAY, .arr_type = FMT_KV_I32,
          .n = kase == 1 ? GPT2_N - 1 : GPT2_N, .arr = types },
        { .key = "tokenizer.ggml.bos_token_id", .type = FMT_KV_U32, .u = 257 },
        { .key = "tokenizer.ggml.eos_token_id", .type = FMT_KV_U32, .u = 9999 },
        { .key = "tokenizer.ggml.add_bos_token", .type = FMT_KV_BOOL, .u = 0 },
    };
    ck_assert_int_eq(fmt_kv_set_strs(&k[7], tp, tl, GPT2_N), SB_OK);
    k[7].key = kase == 4 ? "tokenizer.ggml.tokenz" : "tokenizer.ggml.tokens";
    struct fmt_kv merges = { .key = "tokenizer.ggml.merges" };
    if (kase == 2) {
        merges.type = FMT_KV_ARRAY;
        merges.arr_type = FMT_KV_I32;
        merges.n = 1;
        merges.arr = types;
    } else {
        ck_assert_int_eq(fmt_kv_set_strs(&merges, mg, ml, 1), SB_OK);
    }
    struct fmt_kv all[9];
    memcpy(all, k, sizeof k);
    all[8] = merges;
    struct fmt_write_opts o = { .kv = all, .n_kv = 9, .flags = FMT_OUT_FORCE };
    struct fmt_tensor pl = { .name = "token_embd.weight", .dtype = SB_DTYPE_F32, .ndim = 2,
                             .shape = { GPT2_N, 4 } };
    static float data[GPT2_N * 4];
    struct fmt_writer *w;
    int r = fmt_writer_open(&w, FMT_CONT_GGUF, p, &pl, 1, &o, err);
    if (r == SB_OK && (r = fmt_writer_put(w, 0, data, sizeof data, err)) == SB_OK)
        r = fmt_writer_commit(w, err);
    k[7].key = NULL;
    merges.key = NULL;
    fmt_kv_release(&k[7]);
    if (kase != 2)
        fmt_kv_release(&merges);
    return r;
}

START_TEST(test_gpt2_vocab_read)
{
    struct sb_err err = { 0 };
    struct fmt_model *m;
    const char *p = test_tmpfile("gpt2.gguf");
    ck_assert_int_eq(write_gpt2(p, 0, &err), SB_OK);
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    const struct fmt_vocab *v = &m->vocab;
    ck_assert_int_eq(v->kind, FMT_VOCAB_HF_JSON);
    ck_assert_int_eq(v->bos_id, 257);
    ck_assert_int_eq(v->eos_id, -1);            /* 9999 names no token */
    ck_assert(!v->add_bos && v->no_bos);
    ck_assert_uint_eq(fmt_vocab_n_tokens(v), GPT2_N);
    ck_assert_ptr_nonnull(v->hf);
    ck_assert_int_eq(v->hf->kind, FMT_HFTOK_BYTE_LEVEL);
    ck_assert_uint_eq(v->hf->n_merges, 1);
    ck_assert(v->hf->bl_use_regex);             /* "default" with a merge: GPT-2's regex */
    ck_assert_uint_eq(v->hf->n_added, 2);
    ck_assert_str_eq(v->hf->added[0].content, "<s>");
    ck_assert(v->hf->added[0].special && !v->hf->added[1].special);
    ck_assert_ptr_nonnull(strstr(v->hf_config_json, "\"bos_token\":\t\"<s>\""));
    ck_assert_ptr_nonnull(strstr(v->hf_config_json, "\"add_bos_token\":\tfalse"));
    ck_assert_ptr_null(strstr(v->hf_config_json, "eos_token"));
    fmt_model_free(m);

    static const char *const want[] = {
        NULL, "tokenizer.ggml.token_type is not 259 i32 values",
        "tokenizer.ggml.merges is not an array of strings",
        "tokenizer.ggml.merges[0] is not two tokens",
        "tokenizer.ggml.tokens missing or not an array of strings" };
    for (int kase = 1; kase <= 4; kase++) {
        sb_err_clear(&err);
        ck_assert_int_eq(write_gpt2(p, kase, &err), SB_OK);
        ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EFORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, want[kase]) && strstr(err.msg, "gpt2.gguf"), "%d: %s",
                      kase, err.msg);
    }
}
END_TEST

TEST_SUITE(formats_gguf, 30, setup, teardown,
    TEST(test_writer_matches_hand_built), TEST_LOOP(test_writer_pieces_match_hand_built, 4),
    TEST(test_writer_placed_matches_hand_built),
    TEST_LOOP(test_read_hand_built, 2), TEST_LOOP(test_corrupt_table, 2 * N_BAD),
    TEST_LOOP(test_tensor_name_length, 2), TEST(test_round_trip_byte_identical),
    TEST(test_alignment_64), TEST(test_all_value_types),
    TEST_LOOP(test_writer_refuses, (int)(sizeof refuse / sizeof refuse[0])),
    TEST(test_writer_bad_put_and_kv), TEST_LOOP(test_fault_injection, 2),
    TEST(test_vocab_and_arch_keys), TEST(test_moe_arch), TEST(test_gpt2_vocab_read))
