/* fmt_model.c: model lifecycle, container sniffing, HF config.json parsing.
 * Knows which reader to call, not how any container is laid out. */
#include "fmt_model.h"
#include "fmt_map.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <cjson/cJSON.h>
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

static int json_int(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? sb_f64_to_i32(v->valuedouble) : dflt; /* no UB past INT_MAX */
}

static double json_num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static int json_bool(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return dflt;
}

static int need_int(const cJSON *o, const char *key, int *out, const char *what,
                    struct sb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return sb_err_set(err, SB_EFORMAT, "%s: missing or non-numeric field '%s'", what, key);
    if (v->valuedouble < 1 || v->valuedouble > 1e9)
        return sb_err_set(err, SB_EFORMAT, "%s: field '%s' out of range (%g)", what, key,
                          v->valuedouble);
    *out = (int)v->valuedouble;
    return SB_OK;
}

int fmt_arch_from_hf_config(struct fmt_arch *a, const char *json, size_t len,
                            const char *what, struct sb_err *err)
{
    memset(a, 0, sizeof *a);
    a->bos_id = a->eos_id = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sb_err_set(err, SB_EFORMAT, "%s: not a JSON object", what);
    }
    int r = SB_OK;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : "llama";
    snprintf(a->model_type, sizeof a->model_type, "%s", type);
    if (!strcmp(type, "mixtral"))
        a->kind = FMT_ARCH_MIXTRAL;
    else if (!strcmp(type, "qwen2_moe"))
        a->kind = FMT_ARCH_QWEN2_MOE;
    else if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2"))
        a->kind = FMT_ARCH_LLAMA;
    else
        a->kind = FMT_ARCH_UNKNOWN;

    if ((r = need_int(root, "hidden_size", &a->dim, what, err)) ||
        (r = need_int(root, "num_hidden_layers", &a->n_layers, what, err)) ||
        (r = need_int(root, "num_attention_heads", &a->n_heads, what, err)) ||
        (r = need_int(root, "vocab_size", &a->vocab_size, what, err)))
        goto done;
    a->n_kv_heads = json_int(root, "num_key_value_heads", a->n_heads);
    a->head_dim = json_int(root, "head_dim", a->dim / a->n_heads);
    a->hidden_dim = json_int(root, "intermediate_size", 0);
    a->n_ctx = json_int(root, "max_position_embeddings", 2048);
    a->norm_eps = (float)json_num(root, "rms_norm_eps", 1e-6);
    a->rope_theta = (float)json_num(root, "rope_theta", 10000.0);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (cJSON_IsObject(rp))
        a->rope_theta = (float)json_num(rp, "rope_theta", a->rope_theta);
    a->rope_layout = FMT_ROPE_HALF;
    a->tied_embeddings = json_bool(root, "tie_word_embeddings", 0);
    a->qkv_bias = json_bool(root, "attention_bias", a->kind == FMT_ARCH_QWEN2_MOE ||
                                                        !strcmp(type, "qwen2"));
    a->bos_id = json_int(root, "bos_token_id", -1);
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (cJSON_IsArray(eos) && cJSON_GetArraySize(eos) > 0)
        eos = cJSON_GetArrayItem(eos, 0);
    a->eos_id = cJSON_IsNumber(eos) ? sb_f64_to_i32(eos->valuedouble) : -1;
    if (a->kind == FMT_ARCH_MIXTRAL) {
        a->n_experts = json_int(root, "num_local_experts", 8);
        a->n_experts_used = json_int(root, "num_experts_per_tok", 2);
        a->moe_hidden_dim = a->hidden_dim;
        a->norm_topk_prob = true;
        a->decoder_sparse_step = 1;
    } else if (a->kind == FMT_ARCH_QWEN2_MOE) {
        a->n_experts = json_int(root, "num_experts", 60);
        a->n_experts_used = json_int(root, "num_experts_per_tok", 4);
        a->moe_hidden_dim = json_int(root, "moe_intermediate_size", a->hidden_dim);
        a->shared_hidden_dim = json_int(root, "shared_expert_intermediate_size", 0);
        a->norm_topk_prob = json_bool(root, "norm_topk_prob", 0);
        a->decoder_sparse_step = json_int(root, "decoder_sparse_step", 1);
    }
    /* features the core does not implement (vfy_model_new refuses them) */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (cJSON_IsObject(rs)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(t))
            t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        const char *tn = cJSON_IsString(t) ? t->valuestring : "?";
        if (strcmp(tn, "default") != 0)
            snprintf(a->unimplemented, sizeof a->unimplemented, "rope_scaling (%.32s)", tn);
    }
    double prf = json_num(root, "partial_rotary_factor", 1.0);
    if (prf != 1.0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "partial_rotary_factor %g", prf);
    const cJSON *mol = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
    if (cJSON_IsArray(mol) && cJSON_GetArraySize(mol) > 0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "mlp_only_layers");
    /* Mistral: sliding_window when set; Qwen2: only with use_sliding_window */
    const cJSON *usw = cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window");
    if (!cJSON_IsFalse(usw)) {
        int sw = json_int(root, "sliding_window", 0);
        if (sw > 0 && sw < a->n_ctx)
            a->sliding_window = sw;
    }
    if (a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads)
        r = sb_err_set(err, SB_EFORMAT, "%s: num_key_value_heads %d does not divide "
                       "num_attention_heads %d", what, a->n_kv_heads, a->n_heads);
done:
    cJSON_Delete(root);
    return r;
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
