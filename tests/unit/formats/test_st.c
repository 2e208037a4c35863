/* test_st.c: safetensors reader (every rule of formats.md §1.4, as a bad-input
 * table), writer round trips (single file, folder, shards, compressed-tensors
 * int8), the on-disk int8 layout against hand-computed bytes, headers-only
 * opening of a huge sparse file, and fault injection (allocations and writes). */
#include <check.h>
#include <dirent.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt_model.h"
#include "fmt_out.h"
#include "fmt_st.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "test_util.h"

static void setup(void) { (void)test_tmpdir(); }
static void teardown(void) { test_tmpdir_cleanup(); }

/* A safetensors file: the 8-byte length (hlen, or strlen(header) when -1),
 * the header text, then ndata bytes 0, 1, 2, ... */
static void write_st(const char *path, const char *header, long long hlen, size_t ndata)
{
    size_t hn = strlen(header);
    size_t n = 8 + hn + ndata;
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    uint64_t L = hlen < 0 ? (uint64_t)hn : (uint64_t)hlen;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(L >> (8 * i));
    memcpy(b + 8, header, hn);
    for (size_t i = 0; i < ndata; i++)
        b[8 + hn + i] = (unsigned char)i;
    ck_assert_int_eq(test_write_file(path, b, n), 0);
    free(b);
}

/* ---- the bad-input table ------------------------------------------------- */

#define T1(dt, shape, b, e) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static const struct bad_case {
    const char *what;
    const char *header;     /* NULL: raw bytes below */
    long long hlen;         /* -1: the header's length */
    size_t ndata;
    int code;
    const char *needle;
} bad_cases[] = {
    { "truncated", NULL, 0, 0, SB_EFORMAT, "too small" },
    { "header past EOF", "{}", 100, 0, SB_EFORMAT, "past end of file" },
    { "header too large", "{}", 100000001, 0, SB_EFORMAT, "exceeds the limit" },
    { "invalid JSON", "{\"a\":", -1, 0, SB_EFORMAT, "not valid JSON" },
    { "text after JSON", "{} x", -1, 0, SB_EFORMAT, "not valid JSON" },
    { "not an object", "[1,2]", -1, 0, SB_EFORMAT, "not a JSON object" },
    { "unknown dtype", "{\"a\":" T1("F17", "[1]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "unknown dtype 'F17'" },
    { "missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, SB_EFORMAT,
      "missing field 'data_offsets'" },
    { "missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4,
      SB_EFORMAT, "missing field 'shape'" },
    { "overlap", "{\"a\":" T1("F32", "[2]", 0, 8) ",\"b\":" T1("F32", "[2]", 4, 12) "}", -1, 12,
      SB_EFORMAT, "tensor 'b': data_offsets [4, 12] overlaps" },
    { "out of range", "{\"a\":" T1("F32", "[2]", 0, 8) "}", -1, 4, SB_EFORMAT,
      "tensor 'a': ends at byte 8 of the data, past end of file" },
    { "hole", "{\"a\":" T1("F32", "[1]", 0, 4) ",\"b\":" T1("F32", "[1]", 8, 12) "}", -1, 12,
      SB_EFORMAT, "tensor 'b': data_offsets [8, 12] leaves a hole" },
    { "not from 0", "{\"a\":" T1("F32", "[1]", 4, 8) "}", -1, 8, SB_EFORMAT,
      "tensor 'a': data_offsets [4, 8] does not start at 0" },
    { "end before begin", "{\"a\":" T1("F32", "[1]", 0, 4) ",\"b\":" T1("F32", "[0]", 4, 0) "}",
      -1, 4, SB_EFORMAT, "tensor 'b': data_offsets [4, 0] end before they begin" },
    { "bytes != shape x dtype", "{\"a\":" T1("F32", "[3]", 0, 8) "}", -1, 8, SB_EFORMAT,
      "tensor 'a': 8 bytes, but shape [3] of F32 needs 12" },
    { "shape overflow", "{\"a\":" T1("F32", "[4294967296,4294967296,2]", 0, 0) "}", -1, 0,
      SB_EFORMAT, "tensor 'a': shape [4294967296, 4294967296, 2] overflows" },
    { "sub-byte misaligned", "{\"a\":" T1("F4", "[3]", 0, 1) "}", -1, 1, SB_EFORMAT,
      "not a whole number of bytes" },
    { "duplicate name", "{\"a\":" T1("F32", "[1]", 0, 4) ",\"a\":" T1("F32", "[1]", 4, 8) "}",
      -1, 8, SB_EFORMAT, "duplicate tensor name 'a'" },
    { "metadata not string", "{\"__metadata__\":{\"format\":\"pt\",\"n\":1}}", -1, 0,
      SB_EFORMAT, "__metadata__ value 'n' is not a string" },
    { "metadata not object", "{\"__metadata__\":[1]}", -1, 0, SB_EFORMAT,
      "__metadata__ is not a JSON object" },
    { "trailing bytes", "{\"a\":" T1("F32", "[1]", 0, 4) "}", -1, 6, SB_EFORMAT,
      "2 trailing bytes" },
    { "trailing bytes, no tensors", "{}", -1, 3, SB_EFORMAT, "3 trailing bytes" },
    { "invalid UTF-8", "{\"a\xff\":" T1("F32", "[1]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "not valid UTF-8" },
    { "overlong UTF-8", "{\"a\xc0\xaf\":" T1("F32", "[1]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "not valid UTF-8" },
    { "control character", "{\"a\x01\":" T1("F32", "[1]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "not valid UTF-8" },
    { "negative shape", "{\"a\":" T1("F32", "[-1]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "negative shape entry" },
    { "fractional shape", "{\"a\":" T1("F32", "[1.5]", 0, 4) "}", -1, 4, SB_EFORMAT,
      "not a non-negative integer" },
    { "three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", -1,
      4, SB_EFORMAT, "data_offsets is not two non-negative integers" },
    { "negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
      -1, 4, SB_EFORMAT, "data_offsets is not two" },
    { "entry not object", "{\"a\":3}", -1, 0, SB_EFORMAT, "entry is not a JSON object" },
};

START_TEST(test_bad_input)
{
    const struct bad_case *c = &bad_cases[_i];
    char name[64];
    snprintf(name, sizeof name, "bad%d.safetensors", _i);
    const char *path = test_tmpfile(name);
    if (c->header)
        write_st(path, c->header, c->hlen, c->ndata);
    else
        ck_assert_int_eq(test_write_file(path, "abc", 3), 0);
    struct fmt_model *m = (void *)1;
    struct sb_err err = { 0 };
    int r = fmt_model_open(&m, path, NULL, &err);
    ck_assert_msg(r == c->code, "%s: got %d (%s), want %d", c->what, r, err.msg, c->code);
    ck_assert_ptr_null(m);
    ck_assert_msg(!strncmp(err.msg, path, strlen(path)) && err.msg[strlen(path)] == ':',
                  "%s: message does not start with the path: %s", c->what, err.msg);
    ck_assert_msg(strstr(err.msg, c->needle), "%s: '%s' not in: %s", c->what, c->needle,
                  err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    /* headers-only opening applies the same rules */
    struct fmt_open_opts o = { .headers_only = true };
    struct sb_err err2 = { 0 };
    ck_assert_int_eq(fmt_model_open(&m, path, &o, &err2), c->code);
    ck_assert_str_eq(err2.msg, err.msg);
}
END_TEST

/* ---- sharded folders ------------------------------------------------------ */

static const char *make_folder(const char *name, const char *index, const char *shard1_hdr,
                               size_t nd1)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_tmpfile(name));
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    ck_assert_int_eq(test_write_file(p, index, strlen(index)), 0);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_st(p, shard1_hdr, -1, nd1);
    return dir;
}

static void expect_open_fails(const char *path, int code, const char *needle)
{
    struct fmt_model *m = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_model_open(&m, path, NULL, &err), code);
    ck_assert_ptr_null(m);
    ck_assert_msg(!strncmp(err.msg, path, strlen(path)), "no path in: %s", err.msg);
    ck_assert_msg(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
}

START_TEST(test_shard_missing)
{
    const char *idx = "{\"metadata\":{\"total_size\":8},\"weight_map\":{"
                      "\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00002-of-00002.safetensors\"}}";
    const char *dir = make_folder("m1", idx, "{\"a\":" T1("F32", "[1]", 0, 4) "}", 4);
    expect_open_fails(dir, SB_EIO, "shard 'model-00002-of-00002.safetensors' named by the "
                                   "index is missing");
}
END_TEST

START_TEST(test_shard_lacks_tensor)
{
    const char *idx = "{\"metadata\":{\"total_size\":8},\"weight_map\":{"
                      "\"a\":\"model-00001-of-00002.safetensors\","
                      "\"c\":\"model-00001-of-00002.safetensors\"}}";
    const char *dir = make_folder("m2", idx, "{\"a\":" T1("F32", "[1]", 0, 4) "}", 4);
    expect_open_fails(dir, SB_EFORMAT, "tensor 'c' is not in shard "
                                       "'model-00001-of-00002.safetensors'");
}
END_TEST

START_TEST(test_shard_extra_tensor)
{
    const char *idx = "{\"metadata\":{\"total_size\":8},\"weight_map\":{"
                      "\"a\":\"model-00001-of-00002.safetensors\"}}";
    const char *dir = make_folder("m3", idx, "{\"a\":" T1("F32", "[1]", 0, 4) ",\"z\":"
                                  T1("F32", "[1]", 4, 8) "}", 8);
    expect_open_fails(dir, SB_EFORMAT, "holds tensor 'z', which the index does not list");
}
END_TEST

START_TEST(test_shard_outside)
{
    const char *idx = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    const char *dir = make_folder("m4", idx, "{}", 0);
    expect_open_fails(dir, SB_EFORMAT, "outside the folder");
}
END_TEST

START_TEST(test_shard_bad_file_named)
{
    /* a malformed shard: the message names the shard file itself */
    const char *idx = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}}";
    const char *dir = make_folder("m5", idx, "{\"a\":" T1("F32", "[2]", 0, 4) "}", 4);
    expect_open_fails(dir, SB_EFORMAT, "model-00001-of-00002.safetensors: tensor 'a': 4 bytes");
}
END_TEST

/* ---- writer round trips --------------------------------------------------- */

#define N_PLAN 15

struct plan {
    struct fmt_tensor t[N_PLAN];
    unsigned char *data[N_PLAN];
    size_t n;
};

static void plan_add(struct plan *p, const char *name, enum sb_dtype dt, int ndim,
                     const int64_t *shape, uint32_t group, enum sb_dtype sdt, uint64_t seed)
{
    struct fmt_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    t->name = (char *)name;
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->qp.group = group;
    t->qp.scale_dtype = sdt;
    ck_assert_int_eq(sb_dtype_nbytes(dt, shape, ndim, &t->qp, &t->nbytes), 0);
    unsigned char *b = malloc(t->nbytes + 1);
    uint64_t s = seed;
    for (uint64_t i = 0; i < t->nbytes; i++)
        b[i] = (unsigned char)test_rand_u64(&s);
    if (dt == SB_DTYPE_BOOL)
        for (uint64_t i = 0; i < t->nbytes; i++)
            b[i] &= 1;
    p->data[p->n] = b;
    p->n++;
}

static void plan_make(struct plan *p, int with_int8)
{
    memset(p, 0, sizeof *p);
    plan_add(p, "model.embed_tokens.weight", SB_DTYPE_F32, 2, (int64_t[]){ 6, 4 }, 0, 0, 1);
    plan_add(p, "lm_head.weight", SB_DTYPE_BF16, 2, (int64_t[]){ 6, 4 }, 0, 0, 2);
    plan_add(p, "model.norm.weight", SB_DTYPE_F16, 1, (int64_t[]){ 4 }, 0, 0, 3);
    plan_add(p, "ids", SB_DTYPE_I64, 1, (int64_t[]){ 3 }, 0, 0, 4);
    plan_add(p, "mask", SB_DTYPE_BOOL, 1, (int64_t[]){ 5 }, 0, 0, 5);
    plan_add(p, "bytes", SB_DTYPE_U8, 2, (int64_t[]){ 3, 3 }, 0, 0, 6);
    plan_add(p, "fp4", SB_DTYPE_F4, 1, (int64_t[]){ 6 }, 0, 0, 7);
    plan_add(p, "scalar", SB_DTYPE_F32, 0, NULL, 0, 0, 8);
    plan_add(p, "empty", SB_DTYPE_F32, 2, (int64_t[]){ 0, 3 }, 0, 0, 9);
    plan_add(p, "big", SB_DTYPE_F32, 3, (int64_t[]){ 2, 3, 40 }, 0, 0, 10);
    plan_add(p, "model.layers.0.mlp.gate.weight", SB_DTYPE_F32, 2, (int64_t[]){ 2, 4 }, 0, 0,
             11);
    if (with_int8) {
        plan_add(p, "model.layers.0.mlp.down_proj.weight", SB_DTYPE_INT8, 2,
                 (int64_t[]){ 5, 10 }, 0, SB_DTYPE_F32, 12);
        plan_add(p, "model.layers.0.mlp.up_proj.weight", SB_DTYPE_INT8, 2, (int64_t[]){ 4, 12 },
                 4, SB_DTYPE_F16, 13);
        plan_add(p, "model.layers.1.mlp.up_proj.weight", SB_DTYPE_INT8, 2, (int64_t[]){ 3, 8 },
                 0, SB_DTYPE_F16, 14);
    }
    if (with_int8 == 2) /* 9 columns in 3 groups: 3 or 4 wide; config.json says which */
        plan_add(p, "model.layers.2.mlp.up_proj.weight", SB_DTYPE_INT8, 2, (int64_t[]){ 2, 9 },
                 4, SB_DTYPE_F32, 15);
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->data[i]);
}

static int write_plan(const struct plan *p, const char *path, const struct fmt_write_opts *o,
                      struct sb_err *err)
{
    struct fmt_writer *w;
    int r = fmt_writer_open(&w, FMT_CONT_SAFETENSORS, path, p->t, p->n, o, err);
    if (r)
        return r;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = fmt_writer_order(w, k);
        if ((r = fmt_writer_put(w, i, p->data[i], p->t[i].nbytes, err))) {
            fmt_writer_abort(w);
            return r;
        }
    }
    return fmt_writer_commit(w, err);
}

/* like write_plan, but every tensor the writer streams comes in 3-byte pieces */
static int write_plan_pieces(const struct plan *p, const char *path,
                             const struct fmt_write_opts *o, int *n_streamed, struct sb_err *err)
{
    struct fmt_writer *w;
    int r = fmt_writer_open(&w, FMT_CONT_SAFETENSORS, path, p->t, p->n, o, err);
    if (r)
        return r;
    *n_streamed = 0;
    for (size_t k = 0; k < p->n && r == SB_OK; k++) {
        size_t i = fmt_writer_order(w, k);
        uint64_t nb = p->t[i].nbytes;
        if (!fmt_writer_streams(w, i) || nb == 0) {
            r = fmt_writer_put(w, i, p->data[i], nb, err);
            continue;
        }
        (*n_streamed)++;
        for (uint64_t off = 0; off < nb && r == SB_OK; off += 3)
            r = fmt_writer_put_piece(w, i, p->data[i] + off, nb - off < 3 ? nb - off : 3, nb, err);
    }
    if (r) {
        fmt_writer_abort(w);
        return r;
    }
    return fmt_writer_commit(w, err);
}

static void check_model(const struct plan *p, const char *path)
{
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_model_open(&m, path, NULL, &err) == SB_OK, "%s", err.msg);
    ck_assert_uint_eq(m->n_tensors, p->n);
    for (size_t i = 0; i < p->n; i++) {
        const struct fmt_tensor *a = &p->t[i], *b = fmt_model_find(m, a->name);
        ck_assert_msg(b != NULL, "missing %s", a->name);
        ck_assert_int_eq(b->dtype, a->dtype);
        ck_assert_int_eq(b->ndim, a->ndim);
        for (int d = 0; d < a->ndim; d++)
            ck_assert_int_eq(b->shape[d], a->shape[d]);
        ck_assert_uint_eq(b->nbytes, a->nbytes);
        if (a->dtype == SB_DTYPE_INT8) {
            ck_assert_uint_eq(b->qp.group, a->qp.group);
            ck_assert_int_eq(b->qp.scale_dtype, a->qp.scale_dtype);
        }
        if (a->nbytes)
            ck_assert_msg(!memcmp(b->data, p->data[i], a->nbytes), "bytes differ: %s",
                          a->name);
    }
    const struct fmt_kv *kv = fmt_model_find_kv(m, "format");
    ck_assert_ptr_nonnull(kv);
    ck_assert_str_eq(kv->str, "pt");
    fmt_model_free(m);
}

/* The header of a written file starts with the metadata and is padded to 8. */
static void check_header_form(const char *file)
{
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(file, &len);
    ck_assert_ptr_nonnull(b);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert(!memcmp(b + 8, "{\"__metadata__\":{\"format\":\"pt\"}", 31));
    free(b);
}

START_TEST(test_roundtrip_single)
{
    struct plan p;
    plan_make(&p, 1);
    const char *path = test_tmpfile("one.safetensors");
    struct sb_err err = { 0 };
    ck_assert_msg(write_plan(&p, path, NULL, &err) == SB_OK, "%s", err.msg);
    check_header_form(path);
    check_model(&p, path);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1);
    /* no overwrite without force; with force it is replaced */
    struct sb_err e2 = { 0 };
    ck_assert_int_eq(write_plan(&p, path, NULL, &e2), SB_EIO);
    ck_assert_ptr_nonnull(strstr(e2.msg, "already exists"));
    struct fmt_write_opts o = { .flags = FMT_OUT_FORCE };
    ck_assert_int_eq(write_plan(&p, path, &o, &err), SB_OK);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1);
    plan_free(&p);
}
END_TEST

/* tensors given in pieces give the same bytes as whole ones: a single file and
 * a sharded folder (pieces cross no shard: a shard switch happens at a tensor's
 * first piece); int8 is repacked, so the writer takes it whole */
START_TEST(test_pieces_same_bytes)
{
    struct plan p;
    plan_make(&p, 1);
    struct fmt_write_opts o = { .shard_size = _i ? 300 : 0 };
    struct sb_err err = { 0 };
    char a[2048], b[2048], fa[2400], fb[2400];
    snprintf(a, sizeof a, "%s", test_tmpfile(_i ? "whole" : "whole.safetensors"));
    snprintf(b, sizeof b, "%s", test_tmpfile(_i ? "pieces" : "pieces.safetensors"));
    ck_assert_msg(write_plan(&p, a, &o, &err) == SB_OK, "%s", err.msg);
    int streamed = 0;
    ck_assert_msg(write_plan_pieces(&p, b, &o, &streamed, &err) == SB_OK, "%s", err.msg);
    ck_assert_int_ge(streamed, 8);
    /* every file of the whole-tensor output, by name, against the same name */
    char names[16][256];
    int n_files = 0;
    if (_i) {
        DIR *d = opendir(a);
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && n_files < 16)
                snprintf(names[n_files++], sizeof names[0], "%s", e->d_name);
        closedir(d);
        ck_assert_int_ge(n_files, 4); /* shards and the index */
        ck_assert_int_eq(test_dir_count(b), n_files);
    } else {
        n_files = 1;
    }
    for (int f = 0; f < n_files; f++) {
        int na = snprintf(fa, sizeof fa, "%s%s%s", a, _i ? "/" : "", _i ? names[f] : "");
        int nb = snprintf(fb, sizeof fb, "%s%s%s", b, _i ? "/" : "", _i ? names[f] : "");
        ck_assert(na > 0 && na < (int)sizeof fa && nb > 0 && nb < (int)sizeof fb);
        size_t la = 0, lb = 0;
        char *da = test_read_file(fa, &la), *db = test_read_file(fb, &lb);
        ck_assert_msg(da && db, "%s / %s", fa, fb);
        ck_assert_uint_eq(la, lb);
        ck_assert_msg(memcmp(da, db, la) == 0, "%s differs", fb);
        free(da);
        free(db);
    }
    plan_free(&p);
}
END_TEST

START_TEST(test_roundtrip_folder_and_shards)
{
    struct plan p;
    plan_make(&p, _i);
    const char *cfg = "{\"model_type\":\"llama\",\"hidden_size\":4,\"num_hidden_layers\":2,"
                      "\"num_attention_heads\":2,\"vocab_size\":6}";
    const char *tok = test_tmpfile("tokenizer.json");
    ck_assert_int_eq(test_write_file(tok, "{\"model\":{}}", 12), 0);
    const char *side[] = { tok };
    struct fmt_write_opts o = { .config_json = cfg, .side_files = side, .n_side_files = 1 };
    struct sb_err err = { 0 };
    char dir[4096], f[4200];
    snprintf(dir, sizeof dir, "%s", test_tmpfile("folder"));
    ck_assert_msg(write_plan(&p, dir, &o, &err) == SB_OK, "%s", err.msg);
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    check_header_form(f);
    ck_assert_int_eq(test_dir_count(dir), 3); /* weights, config, tokenizer */
    check_model(&p, dir);

    /* sharded: 300 data bytes at most per shard ("big" is 960: alone) */
    o.shard_size = 300;
    snprintf(dir, sizeof dir, "%s", test_tmpfile("sharded"));
    ck_assert_msg(write_plan(&p, dir, &o, &err) == SB_OK, "%s", err.msg);
    check_model(&p, dir);
    snprintf(f, sizeof f, "%s/model.safetensors.index.json", dir);
    size_t len;
    char *idx = test_read_file(f, &len);
    ck_assert_ptr_nonnull(idx);
    cJSON *root = cJSON_Parse(idx);
    free(idx);
    const cJSON *wm = cJSON_GetObjectItem(root, "weight_map");
    const cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "metadata"), "total_size");
    ck_assert(cJSON_IsObject(wm) && cJSON_IsNumber(ts));
    int n_shards = test_dir_count(dir) - 3; /* index, config, tokenizer */
    ck_assert_int_ge(n_shards, 3);
    uint64_t total = 0;
    for (int s = 1; s <= n_shards; s++) {
        snprintf(f, sizeof f, "%s/model-%05d-of-%05d.safetensors", dir, s, n_shards);
        check_header_form(f);
        struct fmt_model *m;
        struct fmt_open_opts ho = { .headers_only = true };
        ck_assert_msg(fmt_model_open(&m, f, &ho, &err) == SB_OK, "%s", err.msg);
        uint64_t bytes = 0;
        for (size_t i = 0; i < m->n_tensors; i++)
            bytes += m->tensors[i].dtype == SB_DTYPE_INT8 ? 0 : m->tensors[i].nbytes;
        if (m->n_tensors > 1 || m->tensors[0].dtype == SB_DTYPE_INT8)
            ck_assert_uint_le(bytes, 300);
        total += bytes;
        fmt_model_free(m);
    }
    if (!_i) /* without int8 the on-disk bytes are the plan's bytes */
        ck_assert_uint_eq((uint64_t)ts->valuedouble, total);
    cJSON_Delete(root);
    plan_free(&p);
}
END_TEST

/* Bytes of tensor `name` in a single-file model, read by hand (cJSON). */
static unsigned char *raw_tensor(const char *path, const char *name, const char **dtype,
                                 size_t *n, char *shape, size_t shape_len)
{
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    ck_assert_ptr_nonnull(b);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = (hn << 8) | b[i];
    cJSON *root = cJSON_ParseWithLength((char *)b + 8, hn);
    const cJSON *e = cJSON_GetObjectItem(root, name);
    ck_assert_msg(e != NULL, "no %s", name);
    static char dt[16];
    snprintf(dt, sizeof dt, "%s", cJSON_GetObjectItem(e, "dtype")->valuestring);
    *dtype = dt;
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "shape"));
    snprintf(shape, shape_len, "%s", s);
    cJSON_free(s);
    const cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
    size_t b0 = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
    size_t b1 = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    *n = b1 - b0;
    unsigned char *out = malloc(*n + 1);
    memcpy(out, b + 8 + hn + b0, *n);
    cJSON_Delete(root);
    free(b);
    return out;
}

START_TEST(test_int8_layout_golden)
{
    /* codes of one 2 x 5 weight; scales f32 1.0, 2.0 */
    static const int8_t q[10] = { -128, -1, 0, 127, 5, 1, 2, 3, 4, -5 };
    static const float sc[2] = { 1.0f, 2.0f };
    unsigned char blob[18];
    memcpy(blob, q, 10);
    memcpy(blob + 10, sc, 8);
    struct fmt_tensor t = { .name = "x.weight", .dtype = SB_DTYPE_INT8, .ndim = 2,
                            .shape = { 2, 5 }, .nbytes = 18 };
    const char *path = test_tmpfile("g.safetensors");
    struct fmt_writer *w;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SAFETENSORS, path, &t, 1, NULL, &err), 0);
    ck_assert_int_eq(fmt_writer_put(w, 0, blob, 17, &err), SB_EINVAL); /* wrong size */
    ck_assert_ptr_nonnull(strstr(err.msg, "17 bytes given, int8 needs 18"));
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_writer_put(w, 0, blob, 18, &err), 0);
    ck_assert_int_eq(fmt_writer_commit(w, &err), 0);
    /* u = q + 128, 4 per int32 little end first, row padded with zero bytes */
    static const unsigned char want[16] = { 0, 127, 128, 255, 133, 0, 0, 0,
                                            129, 130, 131, 132, 123, 0, 0, 0 };
    const char *dt;
    size_t n;
    char shape[64];
    unsigned char *b = raw_tensor(path, "x.weight_packed", &dt, &n, shape, sizeof shape);
    ck_assert_str_eq(dt, "I32");
    ck_assert_str_eq(shape, "[2,2]");
    ck_assert_uint_eq(n, 16);
    ck_assert_mem_eq(b, want, 16);
    free(b);
    b = raw_tensor(path, "x.weight_scale", &dt, &n, shape, sizeof shape);
    ck_assert_str_eq(dt, "F32");
    ck_assert_str_eq(shape, "[2,1]");
    ck_assert_mem_eq(b, sc, 8);
    free(b);
    b = raw_tensor(path, "x.weight_shape", &dt, &n, shape, sizeof shape);
    ck_assert_str_eq(dt, "I64");
    ck_assert_str_eq(shape, "[2]");
    static const unsigned char shp[16] = { 2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0 };
    ck_assert_mem_eq(b, shp, 16);
    free(b);
}
END_TEST

START_TEST(test_int8_config)
{
    struct plan p;
    plan_make(&p, 1);
    /* keep one group size so the block is the single "Linear" group of §5.3 */
    p.t[12].qp.group = 0;
    p.t[12].nbytes = 4 * 12 + 4 * 2;
    const char *dir = test_tmpfile("q");
    struct fmt_write_opts o = { .config_json = "{\"model_type\":\"llama\",\"hidden_size\":4}" };
    struct sb_err err = { 0 };
    ck_assert_msg(write_plan(&p, dir, &o, &err) == SB_OK, "%s", err.msg);
    char f[4200];
    snprintf(f, sizeof f, "%s/config.json", dir);
    char *text = test_read_file(f, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "hidden_size")->valueint, 4);
    const cJSON *qc = cJSON_GetObjectItem(root, "quantization_config");
    ck_assert_str_eq(cJSON_GetObjectItem(qc, "quant_method")->valuestring, "compressed-tensors");
    ck_assert_str_eq(cJSON_GetObjectItem(qc, "format")->valuestring, "pack-quantized");
    ck_assert_str_eq(cJSON_GetObjectItem(qc, "quantization_status")->valuestring, "compressed");
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(qc, "config_groups"), "group_0");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "targets"), 0)->valuestring,
                     "Linear");
    const cJSON *wt = cJSON_GetObjectItem(g, "weights");
    ck_assert_int_eq(cJSON_GetObjectItem(wt, "num_bits")->valueint, 8);
    ck_assert_str_eq(cJSON_GetObjectItem(wt, "type")->valuestring, "int");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(wt, "symmetric")));
    ck_assert_str_eq(cJSON_GetObjectItem(wt, "strategy")->valuestring, "channel");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(wt, "group_size")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(g, "input_activations")));
    /* unquantized Linear weights are ignored; embeddings and norms are not Linear */
    const cJSON *ig = cJSON_GetObjectItem(qc, "ignore");
    ck_assert_int_eq(cJSON_GetArraySize(ig), 2);
    char seen[256] = "";
    for (const cJSON *v = ig->child; v; v = v->next) {
        strcat(seen, v->valuestring);
        strcat(seen, ";");
    }
    ck_assert_str_eq(seen, "lm_head;model.layers.0.mlp.gate;");
    cJSON_Delete(root);
    check_model(&p, dir);

    /* two group sizes: one config group per size, targets by module name */
    plan_free(&p);
    plan_make(&p, 1);
    dir = test_tmpfile("q2");
    ck_assert_msg(write_plan(&p, dir, &o, &err) == SB_OK, "%s", err.msg);
    snprintf(f, sizeof f, "%s/config.json", dir);
    text = test_read_file(f, NULL);
    root = cJSON_Parse(text);
    free(text);
    const cJSON *cg = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "quantization_config"),
                                          "config_groups");
    ck_assert_int_eq(cJSON_GetArraySize(cg), 2);
    int found_group4 = 0;
    for (const cJSON *gg = cg->child; gg; gg = gg->next) {
        const cJSON *w2 = cJSON_GetObjectItem(gg, "weights");
        if (!strcmp(cJSON_GetObjectItem(w2, "strategy")->valuestring, "group")) {
            ck_assert_int_eq(cJSON_GetObjectItem(w2, "group_size")->valueint, 4);
            const cJSON *tg = cJSON_GetObjectItem(gg, "targets");
            ck_assert_int_eq(cJSON_GetArraySize(tg), 1);
            ck_assert_str_eq(tg->child->valuestring, "model.layers.0.mlp.up_proj");
            found_group4 = 1;
        }
    }
    ck_assert(found_group4);
    cJSON_Delete(root);
    plan_free(&p);
}
END_TEST

/* Files laid out by hand the way compressed-tensors writes them: bf16
 * scales, an I32 weight_shape, and the plain-I8 (naive-quantized) form. */
START_TEST(test_int8_read_foreign)
{
    const char *path = test_tmpfile("ct.safetensors");
    /* P: out 2, in 3, group 0. packed [2,1]: codes (-1,0,1) and (5,-128,127) */
    const char *hdr = "{\"P.weight_packed\":{\"dtype\":\"I32\",\"shape\":[2,1],"
                      "\"data_offsets\":[0,8]},"
                      "\"P.weight_scale\":{\"dtype\":\"BF16\",\"shape\":[2,1],"
                      "\"data_offsets\":[8,12]},"
                      "\"P.weight_shape\":{\"dtype\":\"I32\",\"shape\":[2],"
                      "\"data_offsets\":[12,20]},"
                      "\"Q.weight\":{\"dtype\":\"I8\",\"shape\":[1,4],\"data_offsets\":[20,24]},"
                      "\"Q.weight_scale\":{\"dtype\":\"F16\",\"shape\":[1,2],"
                      "\"data_offsets\":[24,28]},"
                      "\"R.weight\":{\"dtype\":\"I8\",\"shape\":[1,1],\"data_offsets\":[28,29]}}";
    unsigned char data[29] = {
        127, 128, 129, 0xAA, 133, 0, 255, 0,   /* last pad byte of row 0 is garbage: ignored */
        0x80, 0x3F, 0x00, 0x40,                /* bf16 1.0, 2.0 */
        2, 0, 0, 0, 3, 0, 0, 0,                /* [2, 3] */
        0xFF, 0x01, 0x80, 0x7F,                /* -1, 1, -128, 127 */
        0x00, 0x3C, 0x00, 0x38,                /* f16 1.0, 0.5 */
        7 };                                   /* R has no scale: stays I8 */
    size_t hn = strlen(hdr);
    unsigned char *b = malloc(8 + hn + sizeof data);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(b + 8, hdr, hn);
    memcpy(b + 8 + hn, data, sizeof data);
    ck_assert_int_eq(test_write_file(path, b, 8 + hn + sizeof data), 0);
    free(b);
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_model_open(&m, path, NULL, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m->n_tensors, 3);
    const struct fmt_tensor *t = fmt_model_find(m, "P.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, SB_DTYPE_INT8);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_uint_eq(t->qp.group, 0);
    ck_assert_int_eq(t->qp.scale_dtype, SB_DTYPE_F32);
    ck_assert_uint_eq(t->nbytes, 6 + 8);
    static const int8_t wq[6] = { -1, 0, 1, 5, -128, 127 };
    ck_assert_mem_eq(t->data, wq, 6);
    float s[2];
    memcpy(s, (const unsigned char *)t->data + 6, 8);
    ck_assert(s[0] == 1.0f && s[1] == 2.0f);
    t = fmt_model_find(m, "Q.weight");
    ck_assert_int_eq(t->dtype, SB_DTYPE_INT8);
    ck_assert_uint_eq(t->qp.group, 2);
    ck_assert_int_eq(t->qp.scale_dtype, SB_DTYPE_F16);
    static const unsigned char qb[8] = { 0xFF, 0x01, 0x80, 0x7F, 0x00, 0x3C, 0x00, 0x38 };
    ck_assert_mem_eq(t->data, qb, 8);
    t = fmt_model_find(m, "R.weight");
    ck_assert_int_eq(t->dtype, SB_DTYPE_I8);
    ck_assert_ptr_null(fmt_model_find(m, "P.weight_scale"));
    ck_assert_ptr_null(fmt_model_find(m, "P.weight_shape"));
    fmt_model_free(m);
    /* headers only: same shapes and sizes, no data */
    struct fmt_open_opts ho = { .headers_only = true };
    ck_assert_msg(fmt_model_open(&m, path, &ho, &err) == 0, "%s", err.msg);
    t = fmt_model_find(m, "P.weight");
    ck_assert_int_eq(t->shape[1], 3);
    ck_assert_uint_eq(t->nbytes, 14);
    ck_assert_ptr_null(t->data);
    fmt_model_free(m);
}
END_TEST

START_TEST(test_refuse_encodings)
{
    static const enum sb_dtype bad[] = { SB_DTYPE_Q8_0, SB_DTYPE_TERN, SB_DTYPE_SUB1 };
    for (size_t k = 0; k < 3; k++) {
        struct fmt_tensor t = { .name = "w", .dtype = bad[k], .ndim = 2, .shape = { 2, 256 } };
        struct fmt_writer *w = NULL;
        struct sb_err err = { 0 };
        const char *path = test_tmpfile("r.safetensors");
        ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SAFETENSORS, path, &t, 1, NULL, &err),
                         SB_EUNSUPPORTED);
        ck_assert_ptr_null(w);
        ck_assert_msg(strstr(err.msg, "tensor 'w'") && strstr(err.msg, ".gguf or .subbit"),
                      "%s", err.msg);
        ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
    }
    /* int8 that is not a 2-d P.weight has no compressed-tensors form */
    struct fmt_tensor t = { .name = "experts", .dtype = SB_DTYPE_INT8, .ndim = 2,
                            .shape = { 2, 4 } };
    struct fmt_writer *w = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SAFETENSORS, test_tmpfile("i.safetensors"),
                                     &t, 1, NULL, &err), SB_EUNSUPPORTED);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
}
END_TEST

/* ---- headers only on a huge sparse file ---------------------------------- */

static long rss_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss;
}

START_TEST(test_headers_only_sparse)
{
    /* 8 GiB of declared data that is never written: a sparse file */
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648],"
                      "\"data_offsets\":[0,8589934592]}}";
    const char *path = test_tmpfile("huge.safetensors");
    write_st(path, hdr, -1, 0);
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)(8 + strlen(hdr)) + 8589934592LL), 0);
    close(fd);
    long before = rss_pages();
    struct fmt_model *m;
    struct fmt_open_opts o = { .headers_only = true };
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_model_open(&m, path, &o, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m->n_tensors, 1);
    ck_assert_uint_eq(m->tensors[0].nbytes, 8589934592ULL);
    ck_assert_uint_eq(m->tensors[0].file_offset, 8 + strlen(hdr));
    ck_assert_ptr_null(m->tensors[0].data);
    ck_assert_uint_eq(m->n_maps, 0);
    long after = rss_pages();
    ck_assert_int_lt(after - before, 256); /* < 1 MiB of pages */
    fmt_model_free(m);
}
END_TEST

/* ---- fault injection -------------------------------------------------------- */

static void fault_loop(int use_writes, int folder)
{
    struct plan p;
    plan_make(&p, 1);
    const char *cfg = "{\"model_type\":\"llama\"}";
    const char *tok = test_tmpfile("tok.json");
    ck_assert_int_eq(test_write_file(tok, "{}", 2), 0);
    const char *side[] = { tok };
    struct fmt_write_opts o = { .config_json = cfg, .side_files = side, .n_side_files = 1,
                                .shard_size = folder ? 200 : 0 };
    char sub[4096], out[4200];
    snprintf(sub, sizeof sub, "%s", test_tmpfile("fi"));
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(out, sizeof out, "%s/%s", sub, folder ? "model" : "m.safetensors");
    int ok = 0;
    long k;
    for (k = 0; k < 2000 && !ok; k++) {
        struct sb_err err = { 0 };
        if (use_writes)
            fmt_out_fail_write_after(k);
        else
            sb_alloc_fail_after(k);
        int r = write_plan(&p, out, &o, &err);
        fmt_out_fail_write_after(-1);
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            ok = 1;
            break;
        }
        ck_assert_msg(r == (use_writes ? SB_EIO : SB_ENOMEM), "k=%ld: %d %s", k, r, err.msg);
        ck_assert_msg(err.msg[0] != '\0', "k=%ld: no message", k);
        ck_assert_msg(test_dir_count(sub) == 0, "k=%ld: output left behind (%s)", k, err.msg);
    }
    ck_assert_msg(ok, "never succeeded");
    ck_assert_int_gt(k, 0);
    check_model(&p, out);
    /* and the reader under allocation failures */
    for (k = 0;; k++) {
        struct fmt_model *m = NULL;
        struct sb_err err = { 0 };
        sb_alloc_fail_after(k);
        int r = fmt_model_open(&m, out, NULL, &err);
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            fmt_model_free(m);
            break;
        }
        ck_assert_msg(r == SB_ENOMEM && m == NULL, "k=%ld: %d %s", k, r, err.msg);
    }
    plan_free(&p);
}

START_TEST(test_fault_alloc_single) { fault_loop(0, 0); }
END_TEST
START_TEST(test_fault_alloc_folder) { fault_loop(0, 1); }
END_TEST
START_TEST(test_fault_write_single) { fault_loop(1, 0); }
END_TEST
START_TEST(test_fault_write_folder) { fault_loop(1, 1); }
END_TEST

Suite *formats_st_suite(void)
{
    Suite *s = suite_create("formats_st");
    TCase *tc = tcase_create("read");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bad_input, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_shard_missing);
    tcase_add_test(tc, test_shard_lacks_tensor);
    tcase_add_test(tc, test_shard_extra_tensor);
    tcase_add_test(tc, test_shard_outside);
    tcase_add_test(tc, test_shard_bad_file_named);
    tcase_add_test(tc, test_int8_read_foreign);
    tcase_add_test(tc, test_headers_only_sparse);
    suite_add_tcase(s, tc);
    tc = tcase_create("write");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_single);
    tcase_add_loop_test(tc, test_roundtrip_folder_and_shards, 0, 3);
    tcase_add_loop_test(tc, test_pieces_same_bytes, 0, 2);
    tcase_add_test(tc, test_int8_layout_golden);
    tcase_add_test(tc, test_int8_config);
    tcase_add_test(tc, test_refuse_encodings);
    suite_add_tcase(s, tc);
    tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fault_alloc_single);
    tcase_add_test(tc, test_fault_alloc_folder);
    tcase_add_test(tc, test_fault_write_single);
    tcase_add_test(tc, test_fault_write_folder);
    suite_add_tcase(s, tc);
    return s;
}
