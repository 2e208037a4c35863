/* fuzz_util.c: scratch files for the fuzz targets (fuzz_util.h). */
#define _GNU_SOURCE 1 /* memmem */
#include "fuzz_util.h"
#include "cvt_layout.h"
#include "fmt_model.h"
#include "sb_alloc.h"
#include "vfy_mem.h"
#include "vfy_model.h"
#include "vfy_tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char paths[4][512];
static int next;

static void cleanup(void)
{
    char p[512];
    static const char *const names[] = { "in.bin", "config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.bin", "tokenizer.bin", "in.subbit", "in.gguf", "in.safetensors" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/m/%s", dir, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/m", dir);
    rmdir(p);
    rmdir(dir);
}

static void init(void)
{
    if (dir[0])
        return;
    /* memory-backed where there is one: a file per execution. tools/fuzz
     * names a folder it removes itself (a crash skips atexit) */
    const char *base = getenv("SUBBIT_FUZZ_SCRATCH");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/subbit-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    char m[300];
    snprintf(m, sizeof m, "%s/m", dir);
    mkdir(m, 0700);
    atexit(cleanup);
}

const char *fuzz_path(const char *name)
{
    init();
    char *b = paths[next++ & 3];
    snprintf(b, sizeof paths[0], "%s/%s", dir, name);
    return b;
}

void fuzz_write(const char *name, const uint8_t *p, size_t n)
{
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

size_t fuzz_write_parts(const uint8_t *d, size_t n, const char *const *names, size_t n_names)
{
    const size_t sl = strlen(FUZZ_SEP);
    size_t k = 0, start = 0;
    while (k < n_names) {
        /* one memmem a part: a memcmp at every byte costs libFuzzer's hook dearly */
        const uint8_t *hit = start < n ? memmem(d + start, n - start, FUZZ_SEP, sl) : NULL;
        size_t end = hit ? (size_t)(hit - d) : n;
        fuzz_write(names[k++], d + start, end - start);
        if (end >= n)
            break;
        start = end + sl;
    }
    for (size_t i = k; i < n_names; i++)
        unlink(fuzz_path(names[i]));
    return k;
}

uint64_t fuzz_touch(const void *p, uint64_t n)
{
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

void fuzz_use_model(const struct fmt_model *m)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].data)
            fuzz_touch(m->tensors[i].data, m->tensors[i].nbytes < (1u << 20)
                                               ? m->tensors[i].nbytes : (1u << 20));
    static const enum fmt_container conts[] = { FMT_CONT_GGUF, FMT_CONT_SAFETENSORS,
                                                FMT_CONT_SUBBIT };
    for (size_t c = 0; c < 3; c++) {
        struct cvt_layout *l = NULL;
        struct sb_err err = { 0 };
        if (cvt_layout_plan(m, conts[c], &l, &err) != SB_OK)
            continue;
        for (size_t t = 0; t < l->n; t++) {
            uint64_t rows, cols, nb;
            cvt_layout_rows_cols(l, t, &rows, &cols);
            if (rows == 0 || cols == 0 || rows > (1u << 14) / cols)
                continue; /* small ones only: speed */
            float *f = sb_malloc((size_t)(rows * cols) * sizeof *f);
            if (f) {
                sb_err_clear(&err);
                cvt_layout_gather_f32(l, t, m, f, &err);
            }
            sb_free(f);
            sb_err_clear(&err);
            if (cvt_layout_src_nbytes(l, t, m, &nb, &err) == SB_OK && nb <= (1u << 20)) {
                void *b = sb_malloc(nb ? (size_t)nb : 1);
                if (b)
                    cvt_layout_gather_bytes(l, t, m, b, nb, &err);
                sb_free(b);
            }
        }
        cvt_layout_free(l);
    }
    struct vfy_mem_model mm;
    struct sb_err err = { 0 };
    memset(&mm, 0, sizeof mm);
    if (vfy_mem_from_fmt(&mm, m, true, &err) == SB_OK) {
        struct vfy_mem_opts o;
        struct vfy_mem_est e;
        vfy_mem_opts_init(&o);
        vfy_mem_estimate(&mm, &o, &e, &err);
        vfy_mem_model_release(&mm);
    }
    struct vfy_model *vm = NULL;
    sb_err_clear(&err);
    if (vfy_model_new(&vm, m, &err) == SB_OK)
        vfy_model_free(vm);
}

void fuzz_open_model(const char *path, int headers_only)
{
    struct fmt_model *m = NULL;
    struct fmt_open_opts oo = { .headers_only = headers_only != 0 };
    struct sb_err err = { 0 };
    if (fmt_model_open(&m, path, &oo, &err) == SB_OK)
        fuzz_use_model(m);
    fmt_model_free(m);
}

void fuzz_use_vocab(const struct fmt_vocab *v)
{
    struct vfy_tok *t = NULL;
    struct sb_err err = { 0 };
    if (vfy_tok_new(&t, v, &err) != SB_OK)
        return;
    static const char text[] = "Once upon a time, \xe2\x96\x81 caf\xc3\xa9 \xff  x\n\n<s></s>";
    int32_t *ids = NULL;
    size_t k = 0;
    if (vfy_tok_encode(t, text, sizeof text - 1, true, &ids, &k, &err) == SB_OK) {
        char buf[4096];
        for (size_t i = 0; i < k; i++)
            vfy_tok_decode(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
    }
    sb_free(ids);
    vfy_tok_free(t);
}
