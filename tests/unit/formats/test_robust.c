/* test_robust.c: what fuzzing and fault injection found in formats/ (issue
 * 12), one test per finding:
 *  - item 1: --force onto a folder replaces only what the output writes;
 *  - item 4: a path that is a folder is "is a directory", not a 2^63-byte read;
 *  - item 5: names quoted from a file reach messages with control bytes escaped;
 *  - item 7: temps carry their writer's PID; stale ones go, live ones stay;
 *            Ctrl-C removes a temp folder with the files committed inside it;
 *  - item 8: a SIGBUS address maps back to the file it reads;
 *  - item 9: .subbit open and write check names with a hash, not n^2 compares;
 *  - item 12: GGUF string arrays take a fixed number of allocations. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt_map.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "test_util.h"

static void teardown(void)
{
    sb_alloc_fail_after(-1);
    fmt_out_set_notice(NULL, NULL);
    test_tmpdir_cleanup();
}

static void write_text(const char *path, const char *s)
{
    ck_assert_int_eq(test_write_file(path, s, strlen(s)), 0);
}

static char *slurp(const char *path)
{
    size_t n;
    char *s = test_read_file(path, &n);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    return s;
}

/* ---- item 1: --force onto an existing folder ------------------------------ */

struct seen {
    char lines[16][256];
    int n;
};

static void record(void *ctx, enum fmt_out_event ev, const char *path)
{
    struct seen *s = ctx;
    const char *bn = strrchr(path, '/');
    ck_assert_int_lt(s->n, 16);
    snprintf(s->lines[s->n++], 256, "%s %s",
             ev == FMT_OUT_REPLACED ? "replaced" : ev == FMT_OUT_REMOVED ? "removed" : "stale",
             bn ? bn + 1 : path);
}

static void put_file(struct fmt_outdir *d, const char *name, const char *text)
{
    char *p = fmt_outdir_file(d, name);
    struct fmt_out o;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_out_open(&o, p, 0, &err), SB_OK);
    ck_assert_int_eq(fmt_out_write(&o, text, strlen(text), &err), SB_OK);
    ck_assert_int_eq(fmt_out_commit(&o, &err), SB_OK);
    sb_free(p);
}

START_TEST(test_force_folder_keeps_other_files)
{
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", test_tmpfile("model"));
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    /* a user's files, and the previous model: sharded, with an index */
    snprintf(p, sizeof p, "%s/notes.txt", dir), write_text(p, "mine");
    snprintf(p, sizeof p, "%s/README.md", dir), write_text(p, "readme");
    snprintf(p, sizeof p, "%s/sub", dir), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/keep.bin", dir), write_text(p, "k");
    snprintf(p, sizeof p, "%s/config.json", dir), write_text(p, "{\"old\": 1}");
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir), write_text(p, "s1");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir), write_text(p, "s2");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir), write_text(p, "{}");
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir), write_text(p, "lora");

    struct seen seen = { 0 };
    fmt_out_set_notice(record, &seen);
    struct fmt_outdir d;
    struct sb_err err = { 0 };
    /* without --force: refused, nothing touched */
    ck_assert_int_eq(fmt_outdir_open(&d, dir, 0, &err), SB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "already exists (use --force"));
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_outdir_open(&d, dir, FMT_OUT_FORCE, &err), SB_OK);
    put_file(&d, "model.safetensors", "new weights");
    put_file(&d, "config.json", "{\"new\": 1}");
    ck_assert_int_eq(fmt_outdir_commit(&d, &err), SB_OK);

    static const char *const kept[][2] = {
        { "notes.txt", "mine" }, { "README.md", "readme" }, { "sub/keep.bin", "k" },
        { "adapter_model.safetensors", "lora" }, { "config.json", "{\"new\": 1}" },
        { "model.safetensors", "new weights" },
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, kept[i][0]);
        char *s = slurp(p);
        ck_assert_msg(!strcmp(s, kept[i][1]), "%s holds '%s'", kept[i][0], s);
        free(s);
    }
    static const char *const gone[] = { "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors",
                                        "model.safetensors.index.json" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, gone[i]);
        ck_assert_msg(!test_file_exists(p), "%s still there", gone[i]);
    }
    ck_assert_int_eq(test_dir_count(dir), 6); /* 5 files and sub/ */
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1); /* no temp beside it */
    /* what was said, in name order */
    static const char *const said[] = {
        "replaced config.json", "removed model-00001-of-00002.safetensors",
        "removed model-00002-of-00002.safetensors", "removed model.safetensors.index.json",
    };
    ck_assert_int_eq(seen.n, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(seen.lines[i], said[i]);

    /* a folder where a file of the output goes: refused before anything moves */
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    ck_assert_int_eq(fmt_outdir_open(&d, dir, FMT_OUT_FORCE, &err), SB_OK);
    put_file(&d, "model.safetensors", "newer");
    put_file(&d, "config.json", "{}");
    ck_assert_int_eq(fmt_outdir_commit(&d, &err), SB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "config.json: is a folder"));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    char *s = slurp(p);
    ck_assert_str_eq(s, "new weights");
    free(s);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1);

    /* a file where the folder goes: never replaced by a folder */
    snprintf(p, sizeof p, "%s", test_tmpfile("plain"));
    write_text(p, "a file");
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_outdir_open(&d, p, FMT_OUT_FORCE, &err), SB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "exists and is not a folder"));
}
END_TEST

/* ---- item 4: a folder where a file is expected --------------------------- */

START_TEST(test_read_file_folder_and_pipe)
{
    char *buf = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    const char *dir = test_tmpdir();
    ck_assert_int_eq(fmt_read_file(dir, &buf, &len, &err), SB_EIO);
    ck_assert_ptr_null(buf);
    char want[4200];
    snprintf(want, sizeof want, "%s: is a directory", dir);
    ck_assert_str_eq(err.msg, want);
    /* the same through the readers that take a side file: --config, --tokenizer */
    char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    uint8_t file[8 + sizeof hdr - 1 + 4] = { 0 };
    uint64_t hl = sizeof hdr - 1;
    memcpy(file, &hl, 8);
    memcpy(file + 8, hdr, sizeof hdr - 1);
    ck_assert_int_eq(test_write_file(test_tmpfile("x.safetensors"), file, sizeof file), 0);
    struct fmt_model *m;
    struct fmt_open_opts oo = { .config_path = dir };
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_model_open(&m, test_tmpfile("x.safetensors"), &oo, &err), SB_EIO);
    ck_assert_str_eq(err.msg, want);
    /* a pipe has no size: read to its end */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    static char big[200000];
    memset(big, 'a', sizeof big);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (size_t o = 0; o < sizeof big;) {
            ssize_t w = write(fds[1], big + o, sizeof big - o);
            if (w <= 0)
                _exit(1);
            o += (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fds[0]);
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_read_file(path, &buf, &len, &err), SB_OK);
    ck_assert_uint_eq(len, sizeof big);
    ck_assert(memcmp(buf, big, len) == 0 && buf[len] == '\0');
    sb_free(buf);
    close(fds[0]);
    waitpid(pid, NULL, 0);
}
END_TEST

/* ---- item 5: control bytes from a file never reach a message raw ---------- */

START_TEST(test_message_escapes_names)
{
    /* a tensor named "a<ESC>]0;pwned<BEL>b" with an unknown dtype */
    char hdr[] = "{\"a\\u001b]0;pwned\\u0007b\":{\"dtype\":\"X9\",\"shape\":[1],"
                 "\"data_offsets\":[0,4]}}";
    uint8_t file[8 + sizeof hdr - 1 + 4] = { 0 };
    uint64_t hl = sizeof hdr - 1;
    memcpy(file, &hl, 8);
    memcpy(file + 8, hdr, sizeof hdr - 1);
    const char *p = test_tmpfile("esc.safetensors");
    ck_assert_int_eq(test_write_file(p, file, sizeof file), 0);
    struct fmt_model *m;
    struct sb_err err = { 0 };
    ck_assert_int_ne(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_msg(strstr(err.msg, "a\\x1b]0;pwned\\x07b") != NULL, "%s", err.msg);
    for (const char *c = err.msg; *c; c++)
        ck_assert_msg((unsigned char)*c >= 0x20 && *c != 0x7f, "raw byte 0x%02x in '%s'",
                      (unsigned char)*c, err.msg);
}
END_TEST

/* fuzz_safetensors: a JSON number too large for any integer (cJSON reads
 * 1e400 as inf) was converted to uint64_t before its range was checked (UB;
 * UBSan's float-cast-overflow, on in the sanitizer build) */
START_TEST(test_st_numbers_out_of_range)
{
    static const char *const hdrs[] = {
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1e400],\"data_offsets\":[0,4]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e400]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1e19,4]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1e400],\"data_offsets\":[0,4]}}",
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        uint8_t file[256] = { 0 };
        uint64_t hl = strlen(hdrs[i]);
        memcpy(file, &hl, 8);
        memcpy(file + 8, hdrs[i], hl);
        const char *p = test_tmpfile("n.safetensors");
        ck_assert_int_eq(test_write_file(p, file, 8 + hl + 4), 0);
        struct fmt_model *m;
        struct sb_err err = { 0 };
        ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_EFORMAT);
        ck_assert_msg(strstr(err.msg, "n.safetensors: ") != NULL, "case %zu: %s", i, err.msg);
    }
}
END_TEST

/* ---- item 7: temps, stale and live ---------------------------------------- */

static long dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return (long)pid; /* reaped: no such process (unless reused, in which case it stays) */
}

START_TEST(test_temps_named_and_swept)
{
    char buf[4400], stale_f[4200], stale_d[4200], live[4200], other[4200];
    const char *target = test_tmpfile("out.gguf");
    /* the name: TARGET.subbit-tmp-PID-XXXXXX, and it parses back */
    ck_assert_int_eq(fmt_out_temp_name(buf, sizeof buf, target), 0);
    size_t bl = 0;
    const char *bn = strrchr(buf, '/') + 1;
    memcpy(buf + strlen(buf) - 6, "a1B2c3", 6);   /* as mkstemp fills it */
    ck_assert_int_eq(fmt_out_temp_owner(bn, &bl), (long)getpid());
    ck_assert_uint_eq(bl, strlen("out.gguf"));
    ck_assert_int_eq(fmt_out_temp_owner("out.gguf.tmp-123456", NULL), 0);   /* older naming */
    ck_assert_int_eq(fmt_out_temp_owner("x.subbit-tmp-12-abc", NULL), 0);
    ck_assert_int_eq(fmt_out_temp_owner("x.subbit-tmp--abcdef", NULL), 0);
    ck_assert_int_eq(fmt_out_temp_owner(".subbit-tmp-5-abcdef", NULL), 0);

    /* stale: a file and a folder (with a file in it) of a dead writer; live: ours */
    long dp = dead_pid();
    snprintf(stale_f, sizeof stale_f, "%s.subbit-tmp-%ld-AbCdEf", target, dp);
    snprintf(stale_d, sizeof stale_d, "%s.subbit-tmp-%ld-ZyXwVu", test_tmpfile("dir"), dp);
    snprintf(live, sizeof live, "%s.subbit-tmp-%ld-LiVe00", target, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp-%ld-AbCdEf", target, dp);
    write_text(stale_f, "partial");
    ck_assert_int_eq(mkdir(stale_d, 0755), 0);
    snprintf(buf, sizeof buf, "%s/model.safetensors", stale_d);
    write_text(buf, "partial");
    write_text(live, "being written");
    write_text(other, "not ours");

    /* the next output to the same target removes its own stale temp only */
    struct seen seen = { 0 };
    fmt_out_set_notice(record, &seen);
    struct fmt_out o;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_out_open(&o, target, 0, &err), SB_OK);
    ck_assert_ptr_nonnull(strstr(o.tmp, ".subbit-tmp-"));
    fmt_out_abort(&o);
    ck_assert(!test_file_exists(stale_f));
    ck_assert(test_file_exists(stale_d) && test_file_exists(live) && test_file_exists(other));
    ck_assert_int_eq(seen.n, 1);
    snprintf(buf, sizeof buf, "stale %s", strrchr(stale_f, '/') + 1);
    ck_assert_str_eq(seen.lines[0], buf);

    /* clean: a dry run names it, then the folder goes with its contents */
    seen.n = 0;
    ck_assert_int_eq(fmt_out_clean(test_tmpdir(), "zzz", false, record, &seen, &err), SB_OK);
    ck_assert_int_eq(seen.n, 0);   /* prefix filters */
    ck_assert_int_eq(fmt_out_clean(test_tmpdir(), NULL, true, record, &seen, &err), SB_OK);
    ck_assert_int_eq(seen.n, 1);
    ck_assert(test_file_exists(stale_d));
    ck_assert_int_eq(fmt_out_clean(test_tmpdir(), NULL, false, record, &seen, &err), SB_OK);
    ck_assert_int_eq(seen.n, 2);
    ck_assert(!test_file_exists(stale_d));
    ck_assert(test_file_exists(live) && test_file_exists(other));
    ck_assert_int_eq(fmt_out_clean(test_tmpfile("nope"), NULL, false, record, &seen, &err),
                     SB_EIO);
}
END_TEST

/* Ctrl-C while a folder output has committed files in its temp folder */
START_TEST(test_signal_cleanup_removes_full_temp_folder)
{
    struct fmt_outdir d;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_outdir_open(&d, test_tmpfile("hf"), 0, &err), SB_OK);
    put_file(&d, "model-00001-of-00002.safetensors", "done");
    put_file(&d, "config.json", "{}");
    char *p = fmt_outdir_file(&d, "model-00002-of-00002.safetensors");
    struct fmt_out o;
    ck_assert_int_eq(fmt_out_open(&o, p, 0, &err), SB_OK);   /* being written */
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1);
    fmt_out_signal_cleanup(); /* what the SIGINT handler runs */
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
    fmt_out_abort(&o);
    fmt_outdir_abort(&d);
    sb_free(p);
}
END_TEST

/* ---- item 8: a SIGBUS address names its file ----------------------------- */

START_TEST(test_map_signal_path)
{
    const char *p = test_tmpfile("m.bin");
    static uint8_t b[3 * 4096];
    ck_assert_int_eq(test_write_file(p, b, sizeof b), 0);
    struct fmt_map *m;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_map_open(&m, p, &err), SB_OK);
    ck_assert_str_eq(fmt_map_signal_path(m->data), p);
    ck_assert_str_eq(fmt_map_signal_path(m->data + sizeof b - 1), p);
    ck_assert_ptr_null(fmt_map_signal_path(m->data + sizeof b));
    ck_assert_ptr_null(fmt_map_signal_path(b));
    /* a reader that touches a page past a truncated end gets SIGBUS at such an address */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGBUS, SIG_DFL); /* not ASan's report: the signal itself */
        truncate(p, 4096);
        volatile uint8_t x = m->data[2 * 4096];
        (void)x;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
    const uint8_t *at = m->data;
    fmt_map_close(m);
    ck_assert_ptr_null(fmt_map_signal_path(at));
}
END_TEST

/* ---- item 9: many tensors -------------------------------------------------- */

#define MANY 200000

/* 200,000 tensors: with a name-by-name scan per tensor (the old open and
 * write) this is 2*10^10 string compares, minutes; hashed it is well under a
 * second. The timeout below is 30x the hashed time under ASan. */
START_TEST(test_sbc_many_tensors)
{
    struct fmt_tensor *plan = calloc(MANY, sizeof *plan);
    char (*names)[24] = malloc(MANY * sizeof *names);
    for (size_t i = 0; i < MANY; i++) {
        snprintf(names[i], sizeof names[i], "t.%zu", i);
        plan[i].name = names[i];
        plan[i].dtype = SB_DTYPE_F32;
        plan[i].ndim = 1;
        plan[i].shape[0] = 1;
        plan[i].nbytes = 4;
        plan[i].map_index = -1;
    }
    const char *p = test_tmpfile("many.subbit");
    struct fmt_writer *w;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, p, plan, MANY, NULL, &err), SB_OK);
    for (size_t k = 0; k < MANY; k++) {
        float v = (float)k;
        size_t i = fmt_writer_order(w, k);
        ck_assert_int_eq(fmt_writer_put(w, i, &v, 4, &err), SB_OK);
    }
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, p, NULL, &err) == SB_OK, "%s", err.msg);
    ck_assert_uint_eq(m->n_tensors, MANY);
    float v;
    memcpy(&v, m->tensors[MANY - 1].data, 4);
    ck_assert(v == (float)(MANY - 1) && !strcmp(m->tensors[MANY - 1].name, "t.199999"));
    fmt_model_free(m);
    /* a duplicate is still found, by both */
    plan[MANY - 1].name = names[5];
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_SUBBIT, test_tmpfile("dup.subbit"), plan,
                                     MANY, NULL, &err), SB_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate tensor 't.5'"));
    free(plan);
    free(names);
}
END_TEST

/* ---- item 12: GGUF string arrays ----------------------------------------- */

static void put(FILE *f, const void *p, size_t n)
{
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
}
static void put_u32(FILE *f, uint32_t v) { put(f, &v, 4); }
static void put_u64(FILE *f, uint64_t v) { put(f, &v, 8); }
static void put_str(FILE *f, const char *s)
{
    put_u64(f, strlen(s));
    put(f, s, strlen(s));
}

#define NSTR 100000

/* A GGUF whose vocabulary is 100,000 strings, nearly all empty, no tensors
 * (formats.md §2.1 byte by byte). Every string once took an allocation in the
 * metadata and another in the vocabulary: 200,000 allocations, 7x the file in
 * memory. Now the count is fixed, so a budget of 64 holds at any size. */
START_TEST(test_gguf_strings_fixed_allocations)
{
    const char *p = test_tmpfile("strings.gguf");
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    put(f, "GGUF", 4);
    put_u32(f, 3);
    put_u64(f, 0);        /* tensors */
    put_u64(f, 2);        /* kv */
    put_str(f, "tokenizer.ggml.model");
    put_u32(f, 8);
    put_str(f, "llama");
    put_str(f, "tokenizer.ggml.tokens");
    put_u32(f, 9);
    put_u32(f, 8);
    put_u64(f, NSTR);
    for (uint32_t i = 0; i < NSTR; i++)
        put_str(f, i == 7 ? "seven" : i == NSTR - 1 ? "last" : "");
    ck_assert_int_eq(fclose(f), 0);

    struct fmt_model *m = NULL;
    struct sb_err err = { 0 };
    sb_alloc_fail_after(64);
    int r = fmt_model_open(&m, p, NULL, &err);
    sb_alloc_fail_after(-1);
    ck_assert_msg(r == SB_OK, "%s", err.msg);
    const struct fmt_kv *kv = fmt_model_find_kv(m, "tokenizer.ggml.tokens");
    ck_assert_uint_eq(kv->n, NSTR);
    ck_assert_str_eq(kv->strs[7], "seven");
    ck_assert_uint_eq(kv->lens[NSTR - 1], 4);
    ck_assert_str_eq(kv->strs[NSTR - 1], "last");
    ck_assert_str_eq(kv->strs[8], "");
    ck_assert_uint_eq(m->vocab.n_tokens, NSTR);
    ck_assert_str_eq(m->vocab.tokens[7], "seven");
    ck_assert_str_eq(m->vocab.tokens[NSTR - 1], "last");
    ck_assert_uint_eq(m->vocab.max_token_len, 5);
    /* a token replaced in the block, then again: each old one freed where it lives (ASan) */
    ck_assert_int_eq(fmt_vocab_set_token(&m->vocab, 7, "sept", 4), SB_OK);
    ck_assert_int_eq(fmt_vocab_set_token(&m->vocab, 7, "siebenx", 7), SB_OK);
    ck_assert_str_eq(m->vocab.tokens[7], "siebenx");
    ck_assert_uint_eq(m->vocab.lens[7], 7);
    ck_assert_uint_eq(m->vocab.max_token_len, 7);
    ck_assert_int_eq(fmt_vocab_set_token(&m->vocab, NSTR, "x", 1), SB_EINVAL);
    fmt_model_free(m);
    /* headers only (mem) reads through a window: the same */
    struct fmt_open_opts oo = { .headers_only = true };
    sb_alloc_fail_after(64);
    r = fmt_model_open(&m, p, &oo, &err);
    sb_alloc_fail_after(-1);
    ck_assert_msg(r == SB_OK, "%s", err.msg);
    ck_assert_str_eq(fmt_model_find_kv(m, "tokenizer.ggml.tokens")->strs[NSTR - 1], "last");
    fmt_model_free(m);
    /* every allocation failing in turn: SB_ENOMEM, nothing leaked (ASan) */
    for (long k = 0; k < 40; k++) {
        sb_err_clear(&err);
        sb_alloc_fail_after(k);
        r = fmt_model_open(&m, p, NULL, &err);
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            fmt_model_free(m);
            break;
        }
        ck_assert_int_eq(r, SB_ENOMEM);
    }
    ck_assert_int_eq(r, SB_OK);
}
END_TEST

Suite *formats_robust_suite(void)
{
    Suite *s = suite_create("formats_robust");
    TCase *tc = tcase_create("robust");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_force_folder_keeps_other_files);
    tcase_add_test(tc, test_read_file_folder_and_pipe);
    tcase_add_test(tc, test_message_escapes_names);
    tcase_add_test(tc, test_st_numbers_out_of_range);
    tcase_add_test(tc, test_temps_named_and_swept);
    tcase_add_test(tc, test_signal_cleanup_removes_full_temp_folder);
    tcase_add_test(tc, test_map_signal_path);
    tcase_add_test(tc, test_sbc_many_tensors);
    tcase_add_test(tc, test_gguf_strings_fixed_allocations);
    suite_add_tcase(s, tc);
    return s;
}
