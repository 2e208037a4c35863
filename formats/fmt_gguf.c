/* fmt_gguf.c: GGUF v2/v3 reader and v3 writer (layout: formats.md §2).
 * Knows the container, the ggml block sizes (through sb_dtype) and the llama
 * metadata keys; never the contents of a block. */
#include "fmt_gguf.h"
#include "fmt_hftok.h"
#include "fmt_map.h"
#include "fmt_strset_impl.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "sb_math.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fmt_gguf.c assumes a little-endian host"
#endif

/* ---- value types --------------------------------------------------------- */

static const struct { const char *name; unsigned size; } kv_types[FMT_KV_TYPE_COUNT] = {
    [FMT_KV_U8] = { "u8", 1 },     [FMT_KV_I8] = { "i8", 1 },
    [FMT_KV_U16] = { "u16", 2 },   [FMT_KV_I16] = { "i16", 2 },
    [FMT_KV_U32] = { "u32", 4 },   [FMT_KV_I32] = { "i32", 4 },
    [FMT_KV_F32] = { "f32", 4 },   [FMT_KV_BOOL] = { "bool", 1 },
    [FMT_KV_STRING] = { "string", 0 }, [FMT_KV_ARRAY] = { "array", 0 },
    [FMT_KV_U64] = { "u64", 8 },   [FMT_KV_I64] = { "i64", 8 },
    [FMT_KV_F64] = { "f64", 8 },
};

const char *fmt_gguf_kv_type_name(int type)
{
    return type >= 0 && type < FMT_KV_TYPE_COUNT ? kv_types[type].name : "?";
}

unsigned fmt_gguf_kv_type_size(int type)
{
    return type >= 0 && type < FMT_KV_TYPE_COUNT ? kv_types[type].size : 0;
}

static int is_byte_token(const char *s, uint32_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    return len == 6 && !memcmp(s, "<0x", 3) && strchr(hex, s[3]) && s[3] &&
           strchr(hex, s[4]) && s[4] && s[5] == '>';
}

int32_t fmt_gguf_llama_token_type(const struct fmt_vocab *v, uint32_t id)
{
    if ((int64_t)id == v->unk_id)
        return 2;
    if ((int64_t)id == v->bos_id || (int64_t)id == v->eos_id)
        return 3;
    if (id < v->n_tokens && is_byte_token(v->tokens[id], v->lens[id]))
        return 6;
    return 1;
}

/* ---- reading: a cursor over the mapping or over pread'd windows --------- */

#define RD_WINDOW (1u << 20)

struct rd {
    const char *path;
    const uint8_t *map;        /* the whole file, or NULL (headers_only) */
    int fd;                    /* headers_only: the file */
    uint8_t *win;              /* headers_only: pread window */
    uint64_t win_off, win_len;
    uint64_t size, pos;
};

static uint64_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

static int rd_eof(struct rd *r, const char *what, uint64_t need, struct sb_err *err)
{
    return sb_err_set(err, SB_EFORMAT, "%s: %s at byte %" PRIu64 " needs %" PRIu64
                      " bytes, past end of file (%" PRIu64 ")", r->path, what, r->pos, need,
                      r->size);
}

/* Copy n bytes at the cursor into dst and advance. */
static int rd_bytes(struct rd *r, void *dst, uint64_t n, const char *what, struct sb_err *err)
{
    if (n > rd_left(r))
        return rd_eof(r, what, n, err);
    if (r->map) {
        memcpy(dst, r->map + r->pos, (size_t)n);
        r->pos += n;
        return SB_OK;
    }
    uint8_t *d = dst;
    while (n > 0) {
        if (r->pos < r->win_off || r->pos >= r->win_off + r->win_len) {
            uint64_t want = r->size - r->pos < RD_WINDOW ? r->size - r->pos : RD_WINDOW;
            ssize_t got = pread(r->fd, r->win, (size_t)want, (off_t)r->pos);
            if (got <= 0)
                return sb_err_set(err, SB_EIO, "%s: read failed at byte %" PRIu64 ": %s",
                                  r->path, r->pos, got < 0 ? strerror(errno) : "short read");
            r->win_off = r->pos;
            r->win_len = (uint64_t)got;
        }
        uint64_t off = r->pos - r->win_off, k = r->win_len - off;
        if (k > n)
            k = n;
        memcpy(d, r->win + off, (size_t)k);
        d += k;
        r->pos += k;
        n -= k;
    }
    return SB_OK;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what, struct sb_err *err)
{
    return rd_bytes(r, v, 4, what, err);
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what, struct sb_err *err)
{
    return rd_bytes(r, v, 8, what, err);
}

/* A GGUF string into an owned NUL-terminated copy. */
static int rd_string(struct rd *r, char **out, uint64_t *len, const char *what,
                     struct sb_err *err)
{
    uint64_t n;
    int rc;
    *out = NULL;
    if ((rc = rd_u64(r, &n, what, err)))
        return rc;
    if (n > FMT_GGUF_MAX_STRING)
        return sb_err_set(err, SB_EFORMAT, "%s: %s at byte %" PRIu64 " is %" PRIu64
                          " bytes long (limit 1 GiB)", r->path, what, r->pos - 8, n);
    if (n > rd_left(r))
        return sb_err_set(err, SB_EFORMAT, "%s: %s at byte %" PRIu64 " is %" PRIu64
                          " bytes long, past end of file (%" PRIu64 ")", r->path, what,
                          r->pos - 8, n, r->size);
    char *s = sb_malloc((size_t)n + 1);
    if (!s)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", r->path);
    if ((rc = rd_bytes(r, s, n, what, err))) {
        sb_free(s);
        return rc;
    }
    s[n] = '\0';
    *out = s;
    if (len)
        *len = n;
    return SB_OK;
}

/* A scalar of a numeric type into kv's u/i/f. */
static void kv_set_scalar(struct fmt_kv *kv, enum fmt_kv_type t, const uint8_t *p)
{
    switch (t) {
    case FMT_KV_U8: kv->u = p[0]; break;
    case FMT_KV_BOOL: kv->u = p[0]; kv->i = p[0]; break;
    case FMT_KV_I8: kv->i = (int8_t)p[0]; break;
    case FMT_KV_U16: { uint16_t v; memcpy(&v, p, 2); kv->u = v; break; }
    case FMT_KV_I16: { int16_t v; memcpy(&v, p, 2); kv->i = v; break; }
    case FMT_KV_U32: { uint32_t v; memcpy(&v, p, 4); kv->u = v; break; }
    case FMT_KV_I32: { int32_t v; memcpy(&v, p, 4); kv->i = v; break; }
    case FMT_KV_U64: memcpy(&kv->u, p, 8); break;
    case FMT_KV_I64: memcpy(&kv->i, p, 8); break;
    case FMT_KV_F32: { float v; memcpy(&v, p, 4); kv->f = v; break; }
    case FMT_KV_F64: memcpy(&kv->f, p, 8); break;
    default: break;
    }
}

static int rd_value(struct rd *r, struct fmt_kv *kv, struct sb_err *err)
{
    int rc;
    unsigned sz = fmt_gguf_kv_type_size(kv->type);
    if (sz) {
        uint8_t b[8];
        if ((rc = rd_bytes(r, b, sz, "value", err)))
            return rc;
        kv_set_scalar(kv, kv->type, b);
        return SB_OK;
    }
    if (kv->type == FMT_KV_STRING)
        return rd_string(r, &kv->str, &kv->len, "string value", err);

    /* array: u32 element type, u64 count, elements */
    uint32_t at;
    uint64_t n;
    if ((rc = rd_u32(r, &at, "array type", err)) || (rc = rd_u64(r, &n, "array count", err)))
        return rc;
    if (at >= FMT_KV_TYPE_COUNT || at == FMT_KV_ARRAY)
        return sb_err_set(err, SB_EFORMAT, "%s: key '%s': array of %s (type %" PRIu32
                          ") is not allowed", r->path, kv->key,
                          at == FMT_KV_ARRAY ? "arrays" : "unknown type", at);
    kv->arr_type = (enum fmt_kv_type)at;
    if (n > FMT_GGUF_MAX_ARRAY)
        return sb_err_set(err, SB_EFORMAT, "%s: key '%s': array of %" PRIu64
                          " elements (limit 2^30)", r->path, kv->key, n);
    sz = fmt_gguf_kv_type_size(at);
    /* every element needs at least sz bytes (strings: their u64 length) */
    uint64_t min = n * (sz ? sz : 8);
    if (min > rd_left(r))
        return sb_err_set(err, SB_EFORMAT, "%s: key '%s': array of %" PRIu64 " %s needs %"
                          PRIu64 " bytes at byte %" PRIu64 ", past end of file (%" PRIu64 ")",
                          r->path, kv->key, n, fmt_gguf_kv_type_name((int)at), min, r->pos,
                          r->size);
    if (sz) {
        if (r->map) {
            kv->arr = r->map + r->pos;
            r->pos += min;
        } else if (n > 0) {
            if (!(kv->arr_owned = sb_malloc((size_t)min)))
                return sb_err_set(err, SB_ENOMEM, "%s: out of memory", r->path);
            kv->arr = kv->arr_owned;
            if ((rc = rd_bytes(r, kv->arr_owned, min, "array", err)))
                return rc;
        }
        kv->n = n;
        return SB_OK;
    }
    /* strings: n is bounded by the bytes left / 8, so these fit. The bytes go
     * into one block (arr_owned), one NUL after each: memory stays a small
     * multiple of the file's, however many strings (16M empty strings are a
     * 128 MiB file, and once took 16M allocations). */
    kv->strs = sb_calloc(n ? (size_t)n : 1, sizeof *kv->strs);
    kv->lens = sb_calloc(n ? (size_t)n : 1, sizeof *kv->lens);
    if (!kv->strs || !kv->lens)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", r->path);
    size_t cap = 4096, used = 0;
    char *a = sb_malloc(cap);
    if (!a)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if ((rc = rd_u64(r, &len, "array string", err)))
            break;
        if (len > FMT_GGUF_MAX_STRING || len > rd_left(r)) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: key '%s': array string %" PRIu64 " at byte %"
                            PRIu64 " is %" PRIu64 " bytes long, %s", r->path, kv->key, i,
                            r->pos - 8, len, len > FMT_GGUF_MAX_STRING ? "over the 1 GiB limit"
                            : "past end of file");
            break;
        }
        if (len + 1 > cap - used) { /* len + 1 <= the file's size: no overflow */
            size_t nc = cap;
            while (len + 1 > nc - used)
                nc *= 2;
            char *a2 = sb_realloc(a, nc);
            if (!a2) {
                rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", r->path);
                break;
            }
            a = a2;
            cap = nc;
        }
        if ((rc = rd_bytes(r, a + used, len, "array string", err)))
            break;
        a[used + len] = '\0';
        kv->strs[i] = (char *)(uintptr_t)used; /* an offset until the block stops moving */
        kv->lens[i] = len;
        used += (size_t)len + 1;
    }
    if (rc) {
        sb_free(a);
        memset(kv->strs, 0, (n ? (size_t)n : 1) * sizeof *kv->strs);
        return rc;
    }
    for (uint64_t i = 0; i < n; i++)
        kv->strs[i] = a + (uintptr_t)kv->strs[i];
    kv->arr_owned = a;
    kv->n = n;
    return SB_OK;
}

/* ---- arch and vocab from the metadata ----------------------------------- */

static const struct fmt_kv *find_kv(const struct fmt_model *m, const char *key)
{
    return fmt_model_find_kv(m, key);
}

/* An integer-typed kv as int64; 0 if absent or not an integer. */
static int kv_int(const struct fmt_kv *kv, int64_t *out)
{
    if (!kv)
        return 0;
    switch (kv->type) {
    case FMT_KV_U8: case FMT_KV_U16: case FMT_KV_U32: case FMT_KV_U64: case FMT_KV_BOOL:
        if (kv->u > INT64_MAX)
            return 0;
        *out = (int64_t)kv->u;
        return 1;
    case FMT_KV_I8: case FMT_KV_I16: case FMT_KV_I32: case FMT_KV_I64:
        *out = kv->i;
        return 1;
    case FMT_KV_ARRAY: /* per-layer arrays (feed_forward_length): the first */
        if (kv->n == 0 || !kv->arr)
            return 0;
        if (kv->arr_type == FMT_KV_U32 || kv->arr_type == FMT_KV_I32) {
            int32_t v;
            memcpy(&v, kv->arr, 4);
            *out = kv->arr_type == FMT_KV_U32 ? (int64_t)(uint32_t)v : v;
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static int kv_float(const struct fmt_kv *kv, double *out)
{
    int64_t v;
    if (!kv)
        return 0;
    if (kv->type == FMT_KV_F32 || kv->type == FMT_KV_F64) {
        *out = kv->f;
        return 1;
    }
    if (kv_int(kv, &v)) {
        *out = (double)v;
        return 1;
    }
    return 0;
}

/* `<arch>.<suffix>` as an int in [lo, INT_MAX]; dflt if absent. */
static int arch_int(const struct fmt_model *m, const char *arch, const char *suffix, int dflt,
                    int lo, int *out, struct sb_err *err)
{
    char key[160];
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const struct fmt_kv *kv = find_kv(m, key);
    if (!kv) {
        *out = dflt;
        return SB_OK;
    }
    if (!kv_int(kv, &v))
        return sb_err_set(err, SB_EFORMAT, "%s: key '%s' is %s, expected an integer", m->path,
                          key, fmt_gguf_kv_type_name(kv->type));
    if (v < lo || v > INT_MAX)
        return sb_err_set(err, SB_EFORMAT, "%s: key '%s' out of range (%" PRId64 ")", m->path,
                          key, v);
    *out = (int)v;
    return SB_OK;
}

static int fill_arch(struct fmt_model *m, struct sb_err *err)
{
    struct fmt_arch *a = &m->arch;
    const struct fmt_kv *ga = find_kv(m, "general.architecture");
    int rc;
    if (!ga || ga->type != FMT_KV_STRING)
        return SB_OK;
    const char *name = ga->str;
    snprintf(a->model_type, sizeof a->model_type, "%s", name);
    int qwen = !strcmp(name, "qwen2moe");
    if (strcmp(name, "llama") && !qwen)
        return SB_OK;   /* other architectures: metadata only */
    char key[160];
    snprintf(key, sizeof key, "%s.block_count", name);
    if (!find_kv(m, key))
        return SB_OK;
    int key_len = 0, rope_dims = 0;
    if ((rc = arch_int(m, name, "block_count", 0, 1, &a->n_layers, err)) ||
        (rc = arch_int(m, name, "embedding_length", 0, 1, &a->dim, err)) ||
        (rc = arch_int(m, name, "feed_forward_length", 0, 0, &a->hidden_dim, err)) ||
        (rc = arch_int(m, name, "attention.head_count", 0, 1, &a->n_heads, err)) ||
        (rc = arch_int(m, name, "attention.head_count_kv", a->n_heads, 1, &a->n_kv_heads,
                       err)) ||
        (rc = arch_int(m, name, "attention.key_length", 0, 0, &key_len, err)) ||
        (rc = arch_int(m, name, "rope.dimension_count", 0, 0, &rope_dims, err)) ||
        (rc = arch_int(m, name, "context_length", 0, 0, &a->n_ctx, err)) ||
        (rc = arch_int(m, name, "expert_count", 0, 0, &a->n_experts, err)) ||
        (rc = arch_int(m, name, "expert_used_count", 0, 0, &a->n_experts_used, err)) ||
        (rc = arch_int(m, name, "vocab_size", 0, 0, &a->vocab_size, err)))
        return rc;
    if (a->dim == 0 || a->n_heads == 0)
        return sb_err_set(err, SB_EFORMAT, "%s: %s.embedding_length or "
                          "%s.attention.head_count missing", m->path, name, name);
    if (a->n_heads % a->n_kv_heads)
        return sb_err_set(err, SB_EFORMAT, "%s: %s.attention.head_count_kv %d does not divide "
                          "head_count %d", m->path, name, a->n_kv_heads, a->n_heads);
    a->head_dim = key_len ? key_len : a->dim / a->n_heads;
    double v;
    /* features the core does not implement: recorded, refused by vfy_model_new */
    if (rope_dims && rope_dims != a->head_dim)
        snprintf(a->unimplemented, sizeof a->unimplemented, "rope.dimension_count %d < head %d",
                 rope_dims, a->head_dim);
    snprintf(key, sizeof key, "%s.rope.scaling.type", name);
    const struct fmt_kv *st = find_kv(m, key);
    if (st && st->type == FMT_KV_STRING && strcmp(st->str, "none") != 0)
        snprintf(a->unimplemented, sizeof a->unimplemented, "rope.scaling.type %.32s", st->str);
    int sw = 0;
    if ((rc = arch_int(m, name, "attention.sliding_window", 0, 0, &sw, err)))
        return rc;
    if (sw > 0 && (a->n_ctx == 0 || sw < a->n_ctx))
        a->sliding_window = sw;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", name);
    a->norm_eps = kv_float(find_kv(m, key), &v) ? (float)v : 1e-5f;
    snprintf(key, sizeof key, "%s.rope.freq_base", name);
    a->rope_theta = kv_float(find_kv(m, key), &v) ? (float)v : 10000.0f;
    a->tied_embeddings = fmt_model_find(m, "output.weight") == NULL;
    if (qwen) {
        a->kind = FMT_ARCH_QWEN2_MOE;
        a->rope_layout = FMT_ROPE_HALF;       /* llama.cpp runs qwen2moe with NEOX rope */
        a->qkv_bias = true;
        a->norm_topk_prob = false;
        a->decoder_sparse_step = 1;
        if ((rc = arch_int(m, name, "expert_feed_forward_length", a->hidden_dim, 0,
                           &a->moe_hidden_dim, err)) ||
            (rc = arch_int(m, name, "expert_shared_feed_forward_length", 0, 0,
                           &a->shared_hidden_dim, err)))
            return rc;
    } else {
        a->rope_layout = FMT_ROPE_INTERLEAVED;
        if (a->n_experts > 0) {
            a->kind = FMT_ARCH_MIXTRAL;
            a->moe_hidden_dim = a->hidden_dim;
            a->norm_topk_prob = true;
            a->decoder_sparse_step = 1;
        } else {
            a->kind = FMT_ARCH_LLAMA;
        }
    }
    if (a->vocab_size == 0) {
        const struct fmt_kv *tok = find_kv(m, "tokenizer.ggml.tokens");
        const struct fmt_tensor *emb = fmt_model_find(m, "token_embd.weight");
        if (tok && tok->type == FMT_KV_ARRAY && tok->n <= INT_MAX)
            a->vocab_size = (int)tok->n;
        else if (emb && emb->ndim == 2 && emb->shape[0] <= INT_MAX)
            a->vocab_size = (int)emb->shape[0];
    }
    int64_t id;
    a->bos_id = kv_int(find_kv(m, "tokenizer.ggml.bos_token_id"), &id) && id <= INT_MAX ?
                (int)id : 1;
    a->eos_id = kv_int(find_kv(m, "tokenizer.ggml.eos_token_id"), &id) && id <= INT_MAX ?
                (int)id : 2;
    m->has_arch = true;
    return SB_OK;
}

/* A token id key: dflt if absent; -1 if it does not name a token (ggml
 * writes 0xFFFFFFFF for "none"). */
static int vocab_id(const struct fmt_model *m, const char *key, int dflt, uint32_t n)
{
    int64_t v;
    const struct fmt_kv *kv = find_kv(m, key);
    if (!kv)
        return dflt < (int64_t)n ? dflt : -1;
    if (!kv_int(kv, &v) || v < 0 || v >= (int64_t)n)
        return -1;
    return (int)v;
}

/* a token id key, -1 when absent or naming no token (0xFFFFFFFF: none), as
 * vocab_id does for SentencePiece vocabs */
static int64_t gpt2_id(const struct fmt_model *m, const char *key, uint64_t n)
{
    int64_t v;
    const struct fmt_kv *kv = find_kv(m, key);
    return kv && kv_int(kv, &v) && v >= 0 && (uint64_t)v < n ? v : -1;
}

static int gpt2_flag(const struct fmt_model *m, const char *key)
{
    const struct fmt_kv *kv = find_kv(m, key);
    return kv && kv->type == FMT_KV_BOOL ? kv->u != 0 : -1;
}

/* A byte-level BPE (tokenizer.ggml.model "gpt2") becomes the tokenizer.json and
 * tokenizer_config.json it was made from (fmt_hftok_gguf_json): the core tokenizes
 * it as a Hugging Face tokenizer, HF output writes the two files. The keys stay
 * in m->kv, so GGUF -> GGUF copies them unchanged. A tokenizer JSON cannot hold
 * (a token that is not UTF-8) leaves the model without one: convert says so. */
static int fill_vocab_gpt2(struct fmt_model *m, struct sb_err *err)
{
    const struct fmt_kv *tok = find_kv(m, "tokenizer.ggml.tokens");
    const struct fmt_kv *ty = find_kv(m, "tokenizer.ggml.token_type");
    const struct fmt_kv *mg = find_kv(m, "tokenizer.ggml.merges");
    const struct fmt_kv *pre = find_kv(m, "tokenizer.ggml.pre");
    const struct fmt_kv *ct = find_kv(m, "tokenizer.chat_template");
    if (!tok || tok->type != FMT_KV_ARRAY || tok->arr_type != FMT_KV_STRING || !tok->n)
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.tokens missing or not an "
                          "array of strings", m->path);
    if (tok->n >= FMT_HFTOK_MAX_ID)
        return sb_err_set(err, SB_EFORMAT, "%s: too many tokens (%" PRIu64 ")", m->path,
                          tok->n);
    if (ty && (ty->type != FMT_KV_ARRAY || ty->n != tok->n ||
               (ty->arr_type != FMT_KV_I32 && ty->arr_type != FMT_KV_U32)))
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.token_type is not %" PRIu64
                          " i32 values", m->path, tok->n);
    if (mg && (mg->type != FMT_KV_ARRAY || mg->arr_type != FMT_KV_STRING))
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.merges is not an array of "
                          "strings", m->path);
    int32_t *types = NULL;
    if (ty && !(types = sb_malloc((size_t)ty->n * 4)))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", m->path);
    if (ty)
        memcpy(types, ty->arr, (size_t)ty->n * 4);   /* the mapping may be unaligned */
    struct fmt_hftok_gguf g = {
        .tokens = tok->strs, .lens = tok->lens, .n = tok->n, .types = types,
        .merges = mg ? mg->strs : NULL, .merge_lens = mg ? mg->lens : NULL,
        .n_merges = mg ? mg->n : 0,
        .pre = pre && pre->type == FMT_KV_STRING ? pre->str : NULL,
        .chat_template = ct && ct->type == FMT_KV_STRING ? ct->str : NULL,
        .bos = gpt2_id(m, "tokenizer.ggml.bos_token_id", tok->n),
        .eos = gpt2_id(m, "tokenizer.ggml.eos_token_id", tok->n),
        .unk = gpt2_id(m, "tokenizer.ggml.unknown_token_id", tok->n),
        .sep = gpt2_id(m, "tokenizer.ggml.seperator_token_id", tok->n),
        .pad = gpt2_id(m, "tokenizer.ggml.padding_token_id", tok->n),
        .add_bos = gpt2_flag(m, "tokenizer.ggml.add_bos_token"),
        .add_eos = gpt2_flag(m, "tokenizer.ggml.add_eos_token"),
    };
    struct fmt_vocab *v = &m->vocab;
    int r = fmt_hftok_gguf_json(&g, m->path, &v->hf_json, &v->hf_json_len, &v->hf_config_json,
                                &v->hf_config_json_len, err);
    sb_free(types);
    if (r == SB_EUNSUPPORTED) {
        memset(err, 0, sizeof *err);
        return SB_OK;
    }
    if (r != SB_OK)
        return r;
    v->kind = FMT_VOCAB_HF_JSON;
    v->bos_id = g.bos >= 0 ? (int)g.bos : -1;
    v->eos_id = g.eos >= 0 ? (int)g.eos : -1;
    v->unk_id = g.unk >= 0 ? (int)g.unk : -1;
    v->add_bos = g.add_bos > 0;
    v->no_bos = g.add_bos == 0;
    if (!fmt_hftok_pre_exact(g.pre, g.n_merges))
        snprintf(v->approx, sizeof v->approx, "tokenizer.ggml.pre '%.60s'", g.pre ? g.pre : "");
    struct sb_err pe = { 0 };
    if (fmt_hftok_parse(&v->hf, v->hf_json, v->hf_json_len, &pe) == SB_ENOMEM)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", m->path);
    return SB_OK;
}

static int fill_vocab(struct fmt_model *m, struct sb_err *err)
{
    const struct fmt_kv *model = find_kv(m, "tokenizer.ggml.model");
    if (model && model->type == FMT_KV_STRING && !strcmp(model->str, "gpt2"))
        return fill_vocab_gpt2(m, err);
    if (!model || model->type != FMT_KV_STRING || strcmp(model->str, "llama"))
        return SB_OK;   /* others: their keys stay in m->kv (convert says it drops them) */
    const struct fmt_kv *tok = find_kv(m, "tokenizer.ggml.tokens");
    const struct fmt_kv *sc = find_kv(m, "tokenizer.ggml.scores");
    const struct fmt_kv *ty = find_kv(m, "tokenizer.ggml.token_type");
    if (!tok || tok->type != FMT_KV_ARRAY || tok->arr_type != FMT_KV_STRING)
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.tokens missing or not an "
                          "array of strings", m->path);
    if (tok->n > UINT32_MAX - 1)
        return sb_err_set(err, SB_EFORMAT, "%s: too many tokens (%" PRIu64 ")", m->path,
                          tok->n);
    uint32_t n = (uint32_t)tok->n;
    if (sc && (sc->type != FMT_KV_ARRAY || sc->arr_type != FMT_KV_F32 || sc->n != n))
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.scores is not %" PRIu32
                          " f32 values", m->path, n);
    if (ty && (ty->type != FMT_KV_ARRAY || ty->n != n ||
               (ty->arr_type != FMT_KV_I32 && ty->arr_type != FMT_KV_U32)))
        return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.token_type is not %" PRIu32
                          " i32 values", m->path, n);
    struct fmt_vocab *v = &m->vocab;
    v->kind = FMT_VOCAB_SPM;
    size_t cnt = n ? n : 1, total = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (tok->lens[i] > UINT32_MAX)
            return sb_err_set(err, SB_EFORMAT, "%s: token %" PRIu32 " too long", m->path, i);
        total += (size_t)tok->lens[i] + 1; /* bounded by the file's size */
    }
    v->tokens = sb_calloc(cnt, sizeof *v->tokens);
    v->lens = sb_calloc(cnt, sizeof *v->lens);
    v->arena = sb_malloc(total);   /* all tokens in one block, as in the kv */
    v->arena_len = total;
    if (sc)
        v->scores = sb_malloc(cnt * sizeof *v->scores);
    if (ty)
        v->types = sb_malloc(cnt * sizeof *v->types);
    if (!v->tokens || !v->lens || !v->arena || (sc && !v->scores) || (ty && !v->types))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", m->path);
    v->n_tokens = n;
    char *a = v->arena;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(a, tok->strs[i], (size_t)tok->lens[i] + 1);
        v->tokens[i] = a;
        a += tok->lens[i] + 1;
        v->lens[i] = (uint32_t)tok->lens[i];
        if (v->lens[i] > v->max_token_len)
            v->max_token_len = v->lens[i];
    }
    if (sc && n)
        memcpy(v->scores, sc->arr, (size_t)n * 4);
    if (ty && n)
        memcpy(v->types, ty->arr, (size_t)n * 4);
    v->unk_id = vocab_id(m, "tokenizer.ggml.unknown_token_id", 0, n);
    v->bos_id = vocab_id(m, "tokenizer.ggml.bos_token_id", 1, n);
    v->eos_id = vocab_id(m, "tokenizer.ggml.eos_token_id", 2, n);
    const struct fmt_kv *ab = find_kv(m, "tokenizer.ggml.add_bos_token");
    v->add_bos = ab && ab->type == FMT_KV_BOOL ? ab->u != 0 : true;
    return SB_OK;
}

/* ---- the reader ---------------------------------------------------------- */

static int push_map(struct fmt_model *m, struct fmt_map *map)
{
    struct fmt_map **maps = sb_realloc(m->maps, (m->n_maps + 1) * sizeof *maps);
    if (!maps)
        return -1;
    m->maps = maps;
    m->maps[m->n_maps++] = map;
    return 0;
}

static int read_header(struct fmt_model *m, struct rd *r, struct sb_err *err)
{
    int rc;
    uint8_t magic[4];
    uint32_t version;
    uint64_t n_tensors, n_kv;
    const char *path = r->path;
    struct fmt_strset seen = { 0 };

    if (r->size < 4)
        return sb_err_set(err, SB_EFORMAT, "%s: not a GGUF file (%" PRIu64 " bytes)", path,
                          r->size);
    if ((rc = rd_bytes(r, magic, 4, "magic", err)))
        return rc;
    if (memcmp(magic, "GGUF", 4))
        return sb_err_set(err, SB_EFORMAT, "%s: not a GGUF file (bad magic)", path);
    if ((rc = rd_u32(r, &version, "version", err)))
        return rc;
    if ((version & 0xFFFF) == 0)
        return sb_err_set(err, SB_EFORMAT, "%s: GGUF version 0x%08" PRIx32 " looks "
                          "byte-swapped (big-endian file?)", path, version);
    if (version == 1)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: GGUF version 1 is not supported "
                          "(need 2 or 3)", path);
    if (version > FMT_GGUF_VERSION)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: GGUF version %" PRIu32 " is newer than "
                          "this reader (need 2 or 3)", path, version);
    if ((rc = rd_u64(r, &n_tensors, "tensor count", err)) ||
        (rc = rd_u64(r, &n_kv, "key/value count", err)))
        return rc;
    /* a tensor info takes at least 24 bytes (name length, n_dims, type,
     * offset), a key/value at least 13 (key length, type, one byte) */
    if (n_tensors > rd_left(r) / 24)
        return sb_err_set(err, SB_EFORMAT, "%s: tensor count %" PRIu64 " is more than the "
                          "file can hold (%" PRIu64 " bytes)", path, n_tensors, r->size);
    if (n_kv > rd_left(r) / 13)
        return sb_err_set(err, SB_EFORMAT, "%s: key/value count %" PRIu64 " is more than "
                          "the file can hold (%" PRIu64 " bytes)", path, n_kv, r->size);

    /* key/value pairs */
    if (!(m->kv = sb_calloc(n_kv ? (size_t)n_kv : 1, sizeof *m->kv)) ||
        fmt_strset_init(&seen, (size_t)n_kv) != 0)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    uint32_t alignment = FMT_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t k = 0; k < n_kv; k++) {
        struct fmt_kv *kv = &m->kv[m->n_kv++];   /* counted now: freed by the model */
        uint32_t type;
        uint64_t at = r->pos, klen;
        if ((rc = rd_string(r, &kv->key, &klen, "key", err)))
            goto out;
        if (!kv->key[0] || strlen(kv->key) != klen) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: %s key at byte %" PRIu64, path,
                            klen ? "NUL in" : "empty", at);
            goto out;
        }
        if (fmt_strset_add(&seen, kv->key)) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: duplicate key '%s'", path, kv->key);
            goto out;
        }
        if ((rc = rd_u32(r, &type, "value type", err)))
            goto out;
        if (type >= FMT_KV_TYPE_COUNT) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: key '%s' has unknown value type %" PRIu32,
                            path, kv->key, type);
            goto out;
        }
        kv->type = (enum fmt_kv_type)type;
        if ((rc = rd_value(r, kv, err)))
            goto out;
        if (!strcmp(kv->key, "general.alignment")) {
            if (kv->type != FMT_KV_U32) {
                rc = sb_err_set(err, SB_EFORMAT, "%s: general.alignment is %s, expected u32",
                                path, fmt_gguf_kv_type_name(kv->type));
                goto out;
            }
            if (kv->u == 0 || (kv->u & (kv->u - 1))) {
                rc = sb_err_set(err, SB_EFORMAT, "%s: general.alignment %" PRIu64 " is not a "
                                "power of two", path, kv->u);
                goto out;
            }
            alignment = (uint32_t)kv->u;
        }
    }
    fmt_strset_release(&seen);
    m->gguf_alignment = alignment;

    /* tensor infos */
    if (n_tensors > rd_left(r) / 24) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: tensor count %" PRIu64 " is more than the "
                        "file can hold (%" PRIu64 " bytes)", path, n_tensors, r->size);
        goto out;
    }
    if (n_tensors &&
        (!(m->tensors = sb_calloc((size_t)n_tensors, sizeof *m->tensors)) ||
         fmt_strset_init(&seen, (size_t)n_tensors) != 0)) {
        rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (uint64_t k = 0; k < n_tensors; k++) {
        struct fmt_tensor *t = &m->tensors[m->n_tensors++];
        uint32_t nd, type;
        uint64_t ne[SB_MAX_DIMS], len, at = r->pos;
        t->map_index = -1;
        if ((rc = rd_string(r, &t->name, &len, "tensor name", err)))
            goto out;
        if (len >= FMT_GGUF_MAX_NAME || strlen(t->name) != len) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor name at byte %" PRIu64 " is %" PRIu64
                            " bytes (must be under %d, no NUL)", path, at, len,
                            FMT_GGUF_MAX_NAME);
            goto out;
        }
        if (fmt_strset_add(&seen, t->name)) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: duplicate tensor '%s'", path, t->name);
            goto out;
        }
        if ((rc = rd_u32(r, &nd, "n_dims", err)))
            goto out;
        if (nd > SB_MAX_DIMS) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' has %" PRIu32 " dims (max %d)",
                            path, t->name, nd, SB_MAX_DIMS);
            goto out;
        }
        uint64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if ((rc = rd_u64(r, &ne[d], "dims", err)))
                goto out;
            if (ne[d] > INT64_MAX || sb_mul_u64(numel, ne[d], &numel) || numel > INT64_MAX) {
                rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': element count overflows",
                                path, t->name);
                goto out;
            }
        }
        if ((rc = rd_u32(r, &type, "tensor type", err)) ||
            (rc = rd_u64(r, &t->file_offset, "tensor offset", err)))
            goto out;
        int dt = type <= INT_MAX ? sb_dtype_from_ggml((int)type) : -1;
        if (dt < 0) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' has unknown or removed type id %"
                            PRIu32, path, t->name, type);
            goto out;
        }
        t->dtype = (enum sb_dtype)dt;
        t->ndim = (int)nd;
        for (uint32_t d = 0; d < nd; d++)
            t->shape[nd - 1 - d] = (int64_t)ne[d];     /* ggml ne[0] is the row: last */
        const struct sb_dtype_info *info = sb_dtype_get(t->dtype);
        if (nd > 0 && ne[0] % info->blck) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': row length %" PRIu64 " is not a "
                            "multiple of the %s block (%" PRIu32 ")", path, t->name, ne[0],
                            info->name, info->blck);
            goto out;
        }
        if (sb_dtype_nbytes(t->dtype, t->shape, t->ndim, NULL, &t->nbytes) != SB_OK) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': size overflows", path, t->name);
            goto out;
        }
    }
    fmt_strset_release(&seen);

    /* data section: offsets in info order, back to back, each padded */
    uint64_t data_start, expect = 0;
    if (sb_align_u64(r->pos, alignment, &data_start)) {
        rc = sb_err_set(err, SB_EFORMAT, "%s: data section offset overflows", path);
        goto out;
    }
    for (size_t k = 0; k < m->n_tensors; k++) {
        struct fmt_tensor *t = &m->tensors[k];
        uint64_t off = t->file_offset, start, end;
        if (off % alignment) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' data offset %" PRIu64 " is not "
                            "a multiple of the alignment (%" PRIu32 ")", path, t->name, off,
                            alignment);
            goto out;
        }
        if (sb_add_u64(data_start, off, &start) || sb_add_u64(start, t->nbytes, &end) ||
            end > r->size) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' ends past end of file (data at "
                            "%" PRIu64 "+%" PRIu64 ", %" PRIu64 " bytes, file %" PRIu64 ")",
                            path, t->name, data_start, off, t->nbytes, r->size);
            goto out;
        }
        if (off != expect) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: tensor '%s' data offset %" PRIu64 " %s "
                            "(expected %" PRIu64 ": data must follow the tensor infos' order)",
                            path, t->name, off,
                            off < expect ? "overlaps the previous tensor" :
                                           "leaves a gap after the previous tensor", expect);
            goto out;
        }
        if (sb_align_u64(off + t->nbytes, alignment, &expect)) {
            rc = sb_err_set(err, SB_EFORMAT, "%s: data section offset overflows", path);
            goto out;
        }
        t->file_offset = start;
        if (r->map) {
            t->data = r->map + start;
            t->map_index = 0;
        }
    }
    rc = SB_OK;
out:
    fmt_strset_release(&seen);
    return rc;
}

int fmt_gguf_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                        struct sb_err *err)
{
    struct rd r = { .path = path, .fd = -1 };
    struct fmt_map *map = NULL;
    int rc;
    m->container = FMT_CONT_GGUF;
    if (o && o->headers_only) {
        struct stat st;
        r.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r.fd < 0)
            return sb_err_set(err, SB_EIO, "%s: cannot open: %s", path, strerror(errno));
        if (fstat(r.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(r.fd);
            return sb_err_set(err, SB_EIO, "%s: not a regular file", path);
        }
        r.size = (uint64_t)st.st_size;
        if (!(r.win = sb_malloc(RD_WINDOW))) {
            close(r.fd);
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        }
    } else {
        if ((rc = fmt_map_open(&map, path, err)))
            return rc;
        if (push_map(m, map) != 0) {
            fmt_map_close(map);
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
        }
        r.map = map->data;
        r.size = map->size;
    }
    rc = read_header(m, &r, err);
    if (r.fd >= 0)
        close(r.fd);
    sb_free(r.win);
    if (rc == SB_OK && (rc = fill_arch(m, err)) == SB_OK)
        rc = fill_vocab(m, err);
    return rc;
}

/* ---- the writer ---------------------------------------------------------- */

struct gguf_writer {
    struct fmt_writer base;
    struct fmt_out out;
    uint32_t alignment;
    uint64_t *nbytes;      /* [n] */
    char **names;          /* [n], for messages */
};

static int w_bytes(struct fmt_out *o, const void *p, size_t n, struct sb_err *err)
{
    return n ? fmt_out_write(o, p, n, err) : SB_OK;
}

static int w_u32(struct fmt_out *o, uint32_t v, struct sb_err *err)
{
    return fmt_out_write(o, &v, 4, err);
}

static int w_u64(struct fmt_out *o, uint64_t v, struct sb_err *err)
{
    return fmt_out_write(o, &v, 8, err);
}

static int w_str(struct fmt_out *o, const char *s, uint64_t len, struct sb_err *err)
{
    int rc = w_u64(o, len, err);
    return rc ? rc : w_bytes(o, s, (size_t)len, err);
}

static int w_scalar(struct fmt_out *o, enum fmt_kv_type t, const struct fmt_kv *kv,
                    struct sb_err *err)
{
    uint8_t b[8];
    switch (t) {
    case FMT_KV_U8: case FMT_KV_BOOL: b[0] = (uint8_t)kv->u; break;
    case FMT_KV_I8: b[0] = (uint8_t)(int8_t)kv->i; break;
    case FMT_KV_U16: { uint16_t v = (uint16_t)kv->u; memcpy(b, &v, 2); break; }
    case FMT_KV_I16: { int16_t v = (int16_t)kv->i; memcpy(b, &v, 2); break; }
    case FMT_KV_U32: { uint32_t v = (uint32_t)kv->u; memcpy(b, &v, 4); break; }
    case FMT_KV_I32: { int32_t v = (int32_t)kv->i; memcpy(b, &v, 4); break; }
    case FMT_KV_U64: memcpy(b, &kv->u, 8); break;
    case FMT_KV_I64: memcpy(b, &kv->i, 8); break;
    case FMT_KV_F32: { float v = (float)kv->f; memcpy(b, &v, 4); break; }
    case FMT_KV_F64: memcpy(b, &kv->f, 8); break;
    default: return SB_EINVAL;
    }
    return w_bytes(o, b, fmt_gguf_kv_type_size(t), err);
}

static int check_kv(const char *path, const struct fmt_kv *kv, struct sb_err *err)
{
    if (!kv->key || !kv->key[0])
        return sb_err_set(err, SB_EINVAL, "%s: metadata key is empty", path);
    if ((unsigned)kv->type >= FMT_KV_TYPE_COUNT)
        return sb_err_set(err, SB_EINVAL, "%s: key '%s' has unknown type %d", path, kv->key,
                          (int)kv->type);
    if (kv->type == FMT_KV_STRING && !kv->str && kv->len)
        return sb_err_set(err, SB_EINVAL, "%s: key '%s': string without text", path, kv->key);
    if (kv->type == FMT_KV_ARRAY) {
        if ((unsigned)kv->arr_type >= FMT_KV_TYPE_COUNT || kv->arr_type == FMT_KV_ARRAY)
            return sb_err_set(err, SB_EINVAL, "%s: key '%s': arrays of %s cannot be written",
                              path, kv->key, fmt_gguf_kv_type_name(kv->arr_type));
        if (kv->n && (kv->arr_type == FMT_KV_STRING ? (!kv->strs || !kv->lens) : !kv->arr))
            return sb_err_set(err, SB_EINVAL, "%s: key '%s': array without elements", path,
                              kv->key);
    }
    if (!strcmp(kv->key, "general.alignment") && kv->type != FMT_KV_U32)
        return sb_err_set(err, SB_EINVAL, "%s: general.alignment must be u32", path);
    return SB_OK;
}

static int w_kv(struct fmt_out *o, const struct fmt_kv *kv, uint32_t alignment,
                struct sb_err *err)
{
    int rc;
    if ((rc = w_str(o, kv->key, strlen(kv->key), err)) ||
        (rc = w_u32(o, (uint32_t)kv->type, err)))
        return rc;
    if (!strcmp(kv->key, "general.alignment"))
        return w_u32(o, alignment, err);   /* the alignment the data really has */
    if (kv->type == FMT_KV_STRING)
        return w_str(o, kv->str ? kv->str : "", kv->len, err);
    if (kv->type != FMT_KV_ARRAY)
        return w_scalar(o, kv->type, kv, err);
    if ((rc = w_u32(o, (uint32_t)kv->arr_type, err)) || (rc = w_u64(o, kv->n, err)))
        return rc;
    if (kv->arr_type == FMT_KV_STRING) {
        for (uint64_t i = 0; i < kv->n; i++)
            if ((rc = w_str(o, kv->strs[i] ? kv->strs[i] : "", kv->lens[i], err)))
                return rc;
        return SB_OK;
    }
    uint64_t bytes;
    if (sb_mul_u64(kv->n, fmt_gguf_kv_type_size(kv->arr_type), &bytes) || bytes > SIZE_MAX)
        return sb_err_set(err, SB_EINVAL, "key '%s': array too large", kv->key);
    return w_bytes(o, kv->arr, (size_t)bytes, err);
}

static int w_key_u32(struct fmt_out *o, const char *key, uint32_t v, struct sb_err *err)
{
    int rc;
    if ((rc = w_str(o, key, strlen(key), err)) || (rc = w_u32(o, FMT_KV_U32, err)))
        return rc;
    return w_u32(o, v, err);
}

static void gw_free(struct gguf_writer *g)
{
    if (!g)
        return;
    if (g->names)
        for (size_t i = 0; i < g->base.n; i++)
            sb_free(g->names[i]);
    sb_free(g->names);
    sb_free(g->nbytes);
    sb_free(g);
}

static int gw_put(struct fmt_writer *w, size_t i, const void *data, uint64_t nbytes,
                  struct sb_err *err)
{
    struct gguf_writer *g = (struct gguf_writer *)w;
    uint64_t padded = nbytes;
    int rc;
    if (nbytes != g->nbytes[i])
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': got %" PRIu64 " bytes, expected %"
                          PRIu64, g->out.path, g->names[i], nbytes, g->nbytes[i]);
    if (nbytes > SIZE_MAX || (nbytes && !data))
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': no data", g->out.path,
                          g->names[i]);
    sb_align_u64(nbytes, g->alignment, &padded);
    if ((rc = fmt_out_write(&g->out, data, (size_t)nbytes, err)) ||
        (rc = fmt_out_zeros(&g->out, padded - nbytes, err)))
        return rc;
    return SB_OK;
}

static bool gw_streams(const struct fmt_writer *w, size_t i)
{
    (void)w;
    (void)i;
    return fmt_container_streams(FMT_CONT_GGUF, SB_DTYPE_F32);
}

static int gw_put_piece(struct fmt_writer *w, size_t i, const void *data, uint64_t n,
                        uint64_t off, uint64_t total, struct sb_err *err)
{
    struct gguf_writer *g = (struct gguf_writer *)w;
    uint64_t padded = total;
    int rc;
    if (off == 0 && total != g->nbytes[i])
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': got %" PRIu64 " bytes, expected %"
                          PRIu64, g->out.path, g->names[i], total, g->nbytes[i]);
    if (n > SIZE_MAX || (n && !data))
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': no data", g->out.path,
                          g->names[i]);
    if ((rc = fmt_out_write(&g->out, data, (size_t)n, err)))
        return rc;
    if (off + n == total) {
        sb_align_u64(total, g->alignment, &padded);
        return fmt_out_zeros(&g->out, padded - total, err);
    }
    return SB_OK;
}

/* the offsets are the header's: the data moves past this tensor and its padding */
static int gw_place(struct fmt_writer *w, size_t i, const struct fmt_placed *p, uint64_t *off,
                    struct sb_err *err)
{
    struct gguf_writer *g = (struct gguf_writer *)w;
    uint64_t padded = p->stored;
    if (p->stored != g->nbytes[i] || p->nbytes != g->nbytes[i])
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': got %" PRIu64 " bytes, expected %"
                          PRIu64, g->out.path, g->names[i], p->stored, g->nbytes[i]);
    sb_align_u64(p->stored, g->alignment, &padded);
    *off = fmt_out_tell(&g->out);
    return fmt_out_skip(&g->out, padded, err);
}

static const char *gw_file(const struct fmt_writer *w)
{
    return ((const struct gguf_writer *)w)->out.tmp;
}

static int gw_commit(struct fmt_writer *w, struct sb_err *err)
{
    struct gguf_writer *g = (struct gguf_writer *)w;
    int rc = fmt_out_commit(&g->out, err);
    gw_free(g);
    return rc;
}

static void gw_abort(struct fmt_writer *w)
{
    struct gguf_writer *g = (struct gguf_writer *)w;
    fmt_out_abort(&g->out);
    gw_free(g);
}

static const struct fmt_writer_ops gguf_ops = { gw_put, gw_commit, gw_abort, gw_put_piece,
                                                gw_streams, gw_place, gw_file };

static void kv_list_free(struct fmt_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);
}

static int has_key(const struct fmt_write_opts *o, const char *key)
{
    for (size_t i = 0; i < o->n_kv; i++)
        if (o->kv[i].key && !strcmp(o->kv[i].key, key))
            return 1;
    return 0;
}

/* Check the plan against what GGUF can hold; fill nbytes. */
static int check_plan(struct gguf_writer *g, const char *path, const struct fmt_tensor *plan,
                      size_t n, struct sb_err *err)
{
    struct fmt_strset seen = { 0 };
    int rc = SB_OK;
    if (fmt_strset_init(&seen, n) != 0)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n && rc == SB_OK; i++) {
        const struct fmt_tensor *t = &plan[i];
        const struct sb_dtype_info *d = sb_dtype_get(t->dtype);
        size_t len = t->name ? strlen(t->name) : 0;
        if (len == 0 || len >= FMT_GGUF_MAX_NAME)
            rc = sb_err_set(err, SB_EINVAL, "%s: tensor name '%s' must be 1 to %d bytes", path,
                            t->name ? t->name : "", FMT_GGUF_MAX_NAME - 1);
        else if (fmt_strset_add(&seen, t->name))
            rc = sb_err_set(err, SB_EINVAL, "%s: duplicate tensor '%s'", path, t->name);
        else if (!d)
            rc = sb_err_set(err, SB_EINVAL, "%s: tensor '%s': bad encoding", path, t->name);
        else if (d->ggml_type < 0)
            rc = sb_err_set(err, SB_EUNSUPPORTED, "%s: tensor '%s': encoding %s has no GGUF "
                            "type%s", path, t->name, d->name,
                            t->dtype == SB_DTYPE_INT8 ? " (use q8_0)" :
                            (d->flags & SB_DT_TERNARY) ? " (use .subbit)" : "");
        else if (t->ndim < 0 || t->ndim > SB_MAX_DIMS)
            rc = sb_err_set(err, SB_EINVAL, "%s: tensor '%s' has %d dims", path, t->name,
                            t->ndim);
        else if (sb_dtype_nbytes(t->dtype, t->shape, t->ndim, NULL, &g->nbytes[i]) != SB_OK)
            rc = sb_err_set(err, SB_EINVAL, "%s: tensor '%s': shape does not fit %s (the row "
                            "must be a multiple of %" PRIu32 ")", path, t->name, d->name,
                            d->blck);
        else if (t->nbytes && t->nbytes != g->nbytes[i])
            rc = sb_err_set(err, SB_EINVAL, "%s: tensor '%s': plan says %" PRIu64 " bytes, the "
                            "shape gives %" PRIu64, path, t->name, t->nbytes, g->nbytes[i]);
        else if (!(g->names[i] = sb_strdup(t->name)))
            rc = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    fmt_strset_release(&seen);
    return rc;
}

int fmt_gguf_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                         size_t n, const struct fmt_write_opts *o, struct sb_err *err)
{
    static const struct fmt_write_opts dflt;
    struct gguf_writer *g = NULL;
    struct fmt_strset seen = { 0 };
    int rc;
    *w = NULL;
    if (!o)
        o = &dflt;

    /* alignment: the option, else general.alignment in the kv, else 32 */
    uint32_t alignment = o->alignment;
    for (size_t i = 0; i < o->n_kv && !alignment; i++)
        if (o->kv[i].key && !strcmp(o->kv[i].key, "general.alignment") &&
            o->kv[i].type == FMT_KV_U32)
            alignment = (uint32_t)o->kv[i].u;
    if (!alignment)
        alignment = FMT_GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1))
        return sb_err_set(err, SB_EINVAL, "%s: alignment %" PRIu32 " is not a power of two",
                          path, alignment);

    if (fmt_strset_init(&seen, o->n_kv) != 0)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < o->n_kv; i++) {
        if ((rc = check_kv(path, &o->kv[i], err)))
            goto fail_set;
        if (fmt_strset_add(&seen, o->kv[i].key)) {
            rc = sb_err_set(err, SB_EINVAL, "%s: duplicate key '%s'", path, o->kv[i].key);
            goto fail_set;
        }
    }
    fmt_strset_release(&seen);
    /* keys the kv lacks, built from the config and the vocab (fmt_gguf_kv.c) */
    const struct fmt_arch *arch = o->arch && !has_key(o, "general.architecture") ? o->arch :
                                  NULL;
    const struct fmt_vocab *vocab = o->vocab && o->vocab->kind == FMT_VOCAB_SPM &&
                                    o->vocab->tokens && !has_key(o, "tokenizer.ggml.tokens") ?
                                    o->vocab : NULL;
    struct fmt_kv *extra = NULL;
    size_t n_extra = 0;
    if ((arch || vocab) &&
        (rc = fmt_gguf_kv_from_arch(arch, vocab, path, &extra, &n_extra, err)) != SB_OK)
        return rc;
    int add_align = alignment != FMT_GGUF_DEFAULT_ALIGNMENT && !has_key(o, "general.alignment");
    uint64_t n_kv = o->n_kv + n_extra + (uint64_t)add_align;

    if (!(g = sb_calloc(1, sizeof *g)) ||
        !(g->nbytes = sb_calloc(n ? n : 1, sizeof *g->nbytes)) ||
        !(g->names = sb_calloc(n ? n : 1, sizeof *g->names))) {
        gw_free(g);
        kv_list_free(extra, n_extra);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    }
    g->base.ops = &gguf_ops;
    g->base.n = n;
    g->alignment = alignment;
    g->out.fd = -1;
    g->out.slot = -1;
    if ((rc = check_plan(g, path, plan, n, err)) ||
        (rc = fmt_out_open(&g->out, path, o->flags, err))) {
        gw_free(g);
        kv_list_free(extra, n_extra);
        return rc;
    }

    struct fmt_out *out = &g->out;
    if ((rc = w_bytes(out, "GGUF", 4, err)) || (rc = w_u32(out, FMT_GGUF_VERSION, err)) ||
        (rc = w_u64(out, n, err)) || (rc = w_u64(out, n_kv, err)))
        goto fail;
    for (size_t i = 0; i < o->n_kv; i++)
        if ((rc = w_kv(out, &o->kv[i], alignment, err)))
            goto fail;
    for (size_t i = 0; i < n_extra; i++)
        if ((rc = w_kv(out, &extra[i], alignment, err)))
            goto fail;
    if (add_align && (rc = w_key_u32(out, "general.alignment", alignment, err)))
        goto fail;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fmt_tensor *t = &plan[i];
        if ((rc = w_str(out, t->name, strlen(t->name), err)) ||
            (rc = w_u32(out, (uint32_t)t->ndim, err)))
            goto fail;
        for (int d = t->ndim - 1; d >= 0; d--)   /* ggml ne[]: the reverse of the shape */
            if ((rc = w_u64(out, (uint64_t)t->shape[d], err)))
                goto fail;
        if ((rc = w_u32(out, (uint32_t)sb_dtype_get(t->dtype)->ggml_type, err)) ||
            (rc = w_u64(out, off, err)))
            goto fail;
        if (sb_add_u64(off, g->nbytes[i], &off) || sb_align_u64(off, alignment, &off)) {
            rc = sb_err_set(err, SB_EINVAL, "%s: data size overflows", path);
            goto fail;
        }
    }
    uint64_t pos = fmt_out_tell(out), start = pos;
    sb_align_u64(pos, alignment, &start);
    if ((rc = fmt_out_zeros(out, start - pos, err)))
        goto fail;
    kv_list_free(extra, n_extra);
    *w = &g->base;
    return SB_OK;

fail_set:
    fmt_strset_release(&seen);
    return rc;
fail:
    gw_abort(&g->base);
    kv_list_free(extra, n_extra);
    return rc;
}
