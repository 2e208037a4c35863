/* fmt_model.c: model lifecycle, container sniffing.
 * Knows which reader to call, not how any container is laid out. */
#include "fmt_model.h"
#include "fmt_config.h"
#include "fmt_hftok.h"
#include "fmt_map.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fmt_model *fmt_model_new(void)
{
    struct fmt_model *m = sb_calloc(1, sizeof *m);
    if (m) {
        m->arch.bos_id = m->arch.eos_id = -1;
        m->vocab.bos_id = m->vocab.eos_id = m->vocab.unk_id = -1;
    }
    return m;
}

void fmt_kv_release(struct fmt_kv *kv)
{
    if (!kv)
        return;
    sb_free(kv->key);
    sb_free(kv->str);
    if (kv->strs && !kv->arr_owned) /* else the strings live in arr_owned */
        for (uint64_t i = 0; i < kv->n; i++)
            sb_free(kv->strs[i]);
    sb_free(kv->arr_owned);
    sb_free(kv->strs);
    sb_free(kv->lens);
    memset(kv, 0, sizeof *kv);
}

/* A token inside the one block of a reader that keeps them so (GGUF). */
static bool in_arena(const struct fmt_vocab *v, const char *t)
{
    return v->arena && t >= v->arena && t < v->arena + v->arena_len;
}

int fmt_vocab_set_token(struct fmt_vocab *v, uint32_t i, const char *s, uint32_t len)
{
    if (!v->tokens || !v->lens || i >= v->n_tokens)
        return SB_EINVAL;
    char *t = sb_malloc((size_t)len + 1);
    if (!t)
        return SB_ENOMEM;
    memcpy(t, s, len);
    t[len] = '\0';
    if (!in_arena(v, v->tokens[i]))
        sb_free(v->tokens[i]);
    v->tokens[i] = t;
    v->lens[i] = len;
    if (len > v->max_token_len)
        v->max_token_len = len;
    return SB_OK;
}

void fmt_vocab_release(struct fmt_vocab *v)
{
    if (!v)
        return;
    if (v->tokens)
        for (uint32_t i = 0; i < v->n_tokens; i++)
            if (!in_arena(v, v->tokens[i]))
                sb_free(v->tokens[i]);
    sb_free(v->arena);
    sb_free(v->tokens);
    sb_free(v->lens);
    sb_free(v->scores);
    sb_free(v->types);
    sb_free(v->hf_json);
    sb_free(v->hf_config_json);
    fmt_hftok_file_free(v->hf);
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = -1;
}

void fmt_model_free(struct fmt_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_tensors; i++) {
        sb_free(m->tensors[i].name);
        sb_free(m->tensors[i].owned);
    }
    sb_free(m->tensors);
    for (size_t i = 0; i < m->n_kv; i++)
        fmt_kv_release(&m->kv[i]);
    sb_free(m->kv);
    fmt_vocab_release(&m->vocab);
    for (size_t i = 0; i < m->n_side_files; i++)
        sb_free(m->side_files[i]);
    sb_free(m->side_files);
    for (size_t i = 0; i < m->n_maps; i++)
        fmt_map_close(m->maps[i]);
    sb_free(m->maps);
    sb_free(m->config_json);
    fmt_config_free(m->config);
    sb_free(m->path);
    sb_free(m);
}

struct fmt_tensor *fmt_model_add_tensor(struct fmt_model *m, const char *name)
{
    if ((m->n_tensors & (m->n_tensors - 1)) == 0) { /* grow at powers of two */
        size_t cap = m->n_tensors ? m->n_tensors * 2 : 16;
        struct fmt_tensor *t = sb_realloc(m->tensors, cap * sizeof *t);
        if (!t)
            return NULL;
        m->tensors = t;
    }
    struct fmt_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->map_index = -1;
    if (!(t->name = sb_strdup(name)))
        return NULL;
    m->n_tensors++;
    return t;
}

const struct fmt_tensor *fmt_model_find(const struct fmt_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

const struct fmt_kv *fmt_model_find_kv(const struct fmt_model *m, const char *key)
{
    for (size_t i = 0; i < m->n_kv; i++)
        if (strcmp(m->kv[i].key, key) == 0)
            return &m->kv[i];
    return NULL;
}

void fmt_model_release_data(const struct fmt_model *m, const struct fmt_tensor *t)
{
    if (t->map_index < 0 || (size_t)t->map_index >= m->n_maps)
        return;
    fmt_map_dontneed(m->maps[t->map_index], t->file_offset, t->nbytes);
}

void fmt_model_release_around(const struct fmt_model *m, const struct fmt_tensor *t,
                              uint64_t margin)
{
    if (t->map_index < 0 || (size_t)t->map_index >= m->n_maps)
        return;
    /* the window is aligned in the address space, not in the file: a whole
     * window on either side covers it wherever the mapping starts */
    const uint64_t start = t->file_offset > margin ? t->file_offset - margin : 0;
    const uint64_t end = t->file_offset + t->nbytes;
    fmt_map_dontneed(m->maps[t->map_index], start,
                     (end < UINT64_MAX - margin ? end + margin : end) - start);
}

uint64_t fmt_model_params(const struct fmt_model *m)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        uint64_t n = 1;
        for (int d = 0; d < m->tensors[i].ndim; d++)
            n *= (uint64_t)m->tensors[i].shape[d];
        total += n;
    }
    return total;
}

uint64_t fmt_model_file_bytes(const struct fmt_model *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_maps; i++)
        n += m->maps[i] ? m->maps[i]->size : 0;
    return n;
}

uint32_t fmt_vocab_n_tokens(const struct fmt_vocab *v)
{
    if (v->n_tokens)
        return v->n_tokens;
    return v->hf ? (uint32_t)v->hf->max_id + 1 : 0;
}

const char *fmt_container_name(enum fmt_container c)
{
    switch (c) {
    case FMT_CONT_SAFETENSORS: return "safetensors";
    case FMT_CONT_GGUF: return "gguf";
    case FMT_CONT_L2C: return "llama2.c";
    case FMT_CONT_SUBBIT: return "subbit";
    default: return "unknown";
    }
}

int fmt_kv_set_strs(struct fmt_kv *kv, char *const *strs, const uint64_t *lens, uint64_t n)
{
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        if (sb_add_u64(total, (lens ? lens[i] : strlen(strs[i])) + 1, &total))
            return SB_ENOMEM;
    if (n > SIZE_MAX / sizeof(char *) || total > SIZE_MAX)
        return SB_ENOMEM;
    kv->type = FMT_KV_ARRAY;
    kv->arr_type = FMT_KV_STRING;
    kv->strs = sb_malloc(n ? (size_t)n * sizeof *kv->strs : 1);
    kv->lens = sb_malloc(n ? (size_t)n * sizeof *kv->lens : 1);
    char *a = kv->arr_owned = sb_malloc(total ? (size_t)total : 1);
    if (!kv->strs || !kv->lens || !a) {
        sb_free(kv->strs);
        sb_free(kv->lens);
        sb_free(kv->arr_owned);
        kv->strs = NULL;
        kv->lens = NULL;
        kv->arr_owned = NULL;
        return SB_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? (size_t)lens[i] : strlen(strs[i]);
        memcpy(a, strs[i], len);
        a[len] = '\0';
        kv->strs[i] = a;
        kv->lens[i] = len;
        a += len + 1;
    }
    kv->n = n;
    return SB_OK;
}

int fmt_read_file(const char *path, char **out, size_t *len, struct sb_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sb_err_set(err, SB_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sb_err_set(err, SB_EIO, "%s: is a directory", path);
    }
    /* the size is a hint: pipes have none, and a file may change while read */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX - 1
                     ? (size_t)st.st_size + 1 : 65536;
    size_t n = 0;
    char *buf = sb_malloc(cap);
    int rc = SB_OK;
    while (buf) {
        if (n + 1 >= cap) {
            char *b2 = cap < SIZE_MAX / 2 ? sb_realloc(buf, cap * 2) : NULL;
            if (!b2) {
                sb_free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = sb_err_set(err, SB_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    if (rc) {
        sb_free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return SB_OK;
}

/* ---- config.json -------------------------------------------------------- */

int fmt_arch_from_hf_config(struct fmt_arch *a, const char *json, size_t len,
                            const char *what, struct sb_err *err)
{
    struct fmt_config *c;
    memset(a, 0, sizeof *a);
    a->bos_id = a->eos_id = -1;
    int r = fmt_config_parse(&c, json, len, what, err);
    if (r == SB_OK)
        r = fmt_arch_from_config(a, c, what, err);
    fmt_config_free(c);
    return r;
}

bool fmt_model_is_qwen2_moe(const struct fmt_model *m)
{
    return (m->has_arch && m->arch.kind == FMT_ARCH_QWEN2_MOE) ||
           !strcmp(m->arch.model_type, "qwen2moe") || !strcmp(m->arch.model_type, "qwen2_moe");
}

/* ---- sniffing ----------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int read_magic(const char *path, uint8_t magic[8], size_t *got)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    *got = fread(magic, 1, 8, f);
    fclose(f);
    return 0;
}

int fmt_model_open(struct fmt_model **out, const char *path,
                   const struct fmt_open_opts *opts, struct sb_err *err)
{
    static const struct fmt_open_opts dflt;
    *out = NULL;
    if (!opts)
        opts = &dflt;
    struct stat st;
    if (stat(path, &st) != 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct fmt_model *m = fmt_model_new();
    if (!m || !(m->path = sb_strdup(path))) {
        fmt_model_free(m);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    int r;
    if (S_ISDIR(st.st_mode)) {
        r = fmt_st_open_model(m, path, opts, err);
    } else {
        uint8_t magic[8] = { 0 };
        size_t got = 0;
        if (read_magic(path, magic, &got) != 0) {
            fmt_model_free(m);
            return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
        }
        if (got >= 4 && !memcmp(magic, "GGUF", 4))
            r = fmt_gguf_open_model(m, path, opts, err);
        else if (got >= 8 && !memcmp(magic, "SUBBIT\0", 7))
            r = fmt_sbc_open_model(m, path, opts, err);
        else if (ends_with(path, ".safetensors"))
            r = fmt_st_open_model(m, path, opts, err);
        else if (ends_with(path, ".gguf"))
            r = fmt_gguf_open_model(m, path, opts, err); /* reports the bad magic */
        else if (ends_with(path, ".subbit"))
            r = fmt_sbc_open_model(m, path, opts, err);
        else if (ends_with(path, ".bin"))
            r = fmt_l2c_open_model(m, path, opts, err);
        else
            r = sb_err_set(err, SB_EFORMAT, "%s: unknown model format (expected a folder, "
                           ".safetensors, .gguf, .bin or .subbit)", path);
    }
    if (r != SB_OK) {
        fmt_model_free(m);
        return r;
    }
    *out = m;
    return SB_OK;
}
