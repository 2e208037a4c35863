/* fmt_sbc.c: .subbit container reader and streaming writer (layout:
 * docs/container.md). A 64-byte prologue, tensor data aligned to 64 bytes,
 * then a JSON header (config, tokenizer, tensor table); the prologue points at
 * the header and carries its CRC. Knows the container and the varlen blob
 * headers, never what tensors mean. */
#include "fmt_sbc.h"
#include "fmt_config.h"
#include "fmt_hftok.h"
#include "fmt_map.h"
#include "fmt_strset_impl.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "sb_cpu.h"
#include "sb_math.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- CRC-32C ------------------------------------------------------------- */

static uint32_t crc_table[8][256];

static void crc_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    static int ready;   /* benign race: every caller writes the same table */
    if (!ready) {
        crc_init_table();
        ready = 1;
    }
    while (n >= 8) {    /* slicing by 8 */
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= c;
        c = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
            crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
            crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
            crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t fmt_sbc_crc32c(uint32_t crc, const void *p, size_t n)
{
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (sb_cpu_has(SB_CPU_SSE42))
        return ~crc_hw(c, p, n);
#endif
    return ~crc_sw(c, p, n);
}

/* ---- little endian -------------------------------------------------------- */

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

int fmt_sbc_check_varlen(enum sb_dtype dt, const void *data, uint64_t nbytes, const int64_t *shape,
                         int ndim)
{
    uint64_t rows, cols;
    const uint8_t *b = data;
    if (sb_shape_rows_cols(shape, ndim, &rows, &cols))
        return -1;
    if (dt == SB_DTYPE_SUB1) {   /* quant/qnt_sub1.c: "SB1\1", u32 rows, u32 cols, ... (20 bytes) */
        if (nbytes < 20 || memcmp(b, "SB1\x01", 4) != 0)
            return -1;
    } else if (dt == SB_DTYPE_SUB1_QMOE) {   /* quant/qnt_qmoe.c: "SQM1", rows, cols, 0, u64 */
        if (nbytes < 24 || memcmp(b, "SQM1", 4) != 0)
            return -1;
    } else {
        return -1;
    }
    return rd32(b + 4) == rows && rd32(b + 8) == cols ? 0 : -1;
}

/* ---- JSON helpers ---------------------------------------------------------- */

static const char *arch_kind_name(enum fmt_arch_kind k)
{
    switch (k) {
    case FMT_ARCH_LLAMA: return "llama";
    case FMT_ARCH_MIXTRAL: return "mixtral";
    case FMT_ARCH_QWEN2_MOE: return "qwen2_moe";
    default: return "unknown";
    }
}

static cJSON *arch_to_json(const struct fmt_arch *a)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "kind", arch_kind_name(a->kind));
    cJSON_AddStringToObject(o, "model_type", a->model_type);
#define I(f) cJSON_AddNumberToObject(o, #f, (double)a->f)
    I(n_layers); I(dim); I(hidden_dim); I(n_heads); I(n_kv_heads); I(head_dim); I(vocab_size);
    I(n_ctx); I(n_experts); I(n_experts_used); I(moe_hidden_dim); I(shared_hidden_dim);
    I(decoder_sparse_step); I(bos_id); I(eos_id); I(rope_layout);
#undef I
    /* floats as their exact decimal (%.9g round-trips an f32) */
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", (double)a->norm_eps);
    cJSON_AddRawToObject(o, "norm_eps", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)a->rope_theta);
    cJSON_AddRawToObject(o, "rope_theta", buf);
    cJSON_AddBoolToObject(o, "tied_embeddings", a->tied_embeddings);
    cJSON_AddBoolToObject(o, "qkv_bias", a->qkv_bias);
    cJSON_AddBoolToObject(o, "norm_topk_prob", a->norm_topk_prob);
    if (a->sliding_window > 0)
        cJSON_AddNumberToObject(o, "sliding_window", a->sliding_window);
    if (a->unimplemented[0])
        cJSON_AddStringToObject(o, "unimplemented", a->unimplemented);
    return o;
}

static int json_get_int(const cJSON *o, const char *k, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < -2147483648.0 || v->valuedouble > 2147483647.0 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int arch_from_json(struct fmt_arch *a, const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(v))
        return -1;
    a->kind = !strcmp(v->valuestring, "llama")       ? FMT_ARCH_LLAMA
              : !strcmp(v->valuestring, "mixtral")   ? FMT_ARCH_MIXTRAL
              : !strcmp(v->valuestring, "qwen2_moe") ? FMT_ARCH_QWEN2_MOE
                                                     : FMT_ARCH_UNKNOWN;
    v = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof a->model_type)
        return -1;
    strcpy(a->model_type, v->valuestring);
    int rl = 0;
#define I(f) if (json_get_int(o, #f, &a->f)) return -1
    I(n_layers); I(dim); I(hidden_dim); I(n_heads); I(n_kv_heads); I(head_dim); I(vocab_size);
    I(n_ctx); I(n_experts); I(n_experts_used); I(moe_hidden_dim); I(shared_hidden_dim);
    I(decoder_sparse_step); I(bos_id); I(eos_id);
#undef I
    if (json_get_int(o, "rope_layout", &rl) || (rl != 0 && rl != 1))
        return -1;
    a->rope_layout = (enum fmt_rope_layout)rl;
    const cJSON *ne = cJSON_GetObjectItemCaseSensitive(o, "norm_eps"),
                *rt = cJSON_GetObjectItemCaseSensitive(o, "rope_theta");
    if (!cJSON_IsNumber(ne) || !cJSON_IsNumber(rt))
        return -1;
    a->norm_eps = (float)ne->valuedouble;
    a->rope_theta = (float)rt->valuedouble;
    a->tied_embeddings = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "tied_embeddings"));
    a->qkv_bias = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "qkv_bias"));
    a->norm_topk_prob = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "norm_topk_prob"));
    /* optional: features the reference core refuses (absent = none) */
    if (cJSON_GetObjectItemCaseSensitive(o, "sliding_window") &&
        (json_get_int(o, "sliding_window", &a->sliding_window) || a->sliding_window < 0))
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(o, "unimplemented");
    if (v && (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof a->unimplemented))
        return -1;
    if (v)
        strcpy(a->unimplemented, v->valuestring);
    return 0;
}

static const char hexd[] = "0123456789abcdef";

/* a token: a JSON string unless it holds a NUL byte, then {"hex": "..."} */
static cJSON *token_to_json(const char *t, uint32_t len)
{
    if (memchr(t, 0, len) == NULL && strlen(t) == len)
        return cJSON_CreateString(t);
    char *h = sb_malloc(2 * (size_t)len + 1);
    if (!h)
        return NULL;
    for (uint32_t i = 0; i < len; i++) {
        h[2 * i] = hexd[(uint8_t)t[i] >> 4];
        h[2 * i + 1] = hexd[(uint8_t)t[i] & 15];
    }
    h[2 * (size_t)len] = 0;
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "hex", h)) {
        cJSON_Delete(o);
        o = NULL;
    }
    sb_free(h);
    return o;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int token_from_json(const cJSON *v, char **out, uint32_t *len)
{
    if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        if (n > UINT32_MAX || !(*out = sb_strdup(v->valuestring)))
            return -1;
        *len = (uint32_t)n;
        return 0;
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "hex");
    if (!cJSON_IsString(h))
        return -1;
    size_t n = strlen(h->valuestring);
    if (n % 2 || n / 2 > UINT32_MAX)
        return -1;
    char *t = sb_malloc(n / 2 + 1);
    if (!t)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(h->valuestring[2 * i]), b = hexval(h->valuestring[2 * i + 1]);
        if (a < 0 || b < 0) {
            sb_free(t);
            return -1;
        }
        t[i] = (char)(a * 16 + b);
    }
    t[n / 2] = 0;
    *out = t;
    *len = (uint32_t)(n / 2);
    return 0;
}

static cJSON *vocab_to_json(const struct fmt_vocab *v)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "kind", v->kind == FMT_VOCAB_SPM ? "spm" : v->kind == FMT_VOCAB_HF_JSON ? "hf_json" : "none");
    cJSON_AddNumberToObject(o, "bos_id", v->bos_id);
    cJSON_AddNumberToObject(o, "eos_id", v->eos_id);
    cJSON_AddNumberToObject(o, "unk_id", v->unk_id);
    cJSON_AddBoolToObject(o, "add_bos", v->add_bos);
    if (v->no_bos)
        cJSON_AddBoolToObject(o, "no_bos", true);
    cJSON_AddNumberToObject(o, "max_token_len", v->max_token_len);
    if (v->hf_json)
        cJSON_AddStringToObject(o, "hf_json", v->hf_json);
    if (v->hf_config_json)
        cJSON_AddStringToObject(o, "hf_config_json", v->hf_config_json);
    if (v->n_tokens && v->tokens) {
        cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
        cJSON *sc = v->scores ? cJSON_AddArrayToObject(o, "scores") : NULL;
        cJSON *ty = v->types ? cJSON_AddArrayToObject(o, "types") : NULL;
        char buf[64];
        for (uint32_t i = 0; i < v->n_tokens; i++) {
            cJSON *t = token_to_json(v->tokens[i], v->lens ? v->lens[i] : (uint32_t)strlen(v->tokens[i]));
            if (!t || !cJSON_AddItemToArray(toks, t)) {
                cJSON_Delete(t);
                cJSON_Delete(o);
                return NULL;
            }
            if (sc) {
                snprintf(buf, sizeof buf, "%.9g", (double)v->scores[i]);
                cJSON_AddItemToArray(sc, cJSON_CreateRaw(buf));
            }
            if (ty)
                cJSON_AddItemToArray(ty, cJSON_CreateNumber(v->types[i]));
        }
    }
    return o;
}

static int vocab_from_json(struct fmt_vocab *v, const cJSON *o)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(k))
        return -1;
    v->kind = !strcmp(k->valuestring, "spm") ? FMT_VOCAB_SPM
              : !strcmp(k->valuestring, "hf_json") ? FMT_VOCAB_HF_JSON : FMT_VOCAB_NONE;
    int t;
    if (json_get_int(o, "bos_id", &v->bos_id) || json_get_int(o, "eos_id", &v->eos_id) ||
        json_get_int(o, "unk_id", &v->unk_id) || json_get_int(o, "max_token_len", &t) || t < 0)
        return -1;
    v->max_token_len = (uint32_t)t;
    v->add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_bos"));
    v->no_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "no_bos"));
    const cJSON *hj = cJSON_GetObjectItemCaseSensitive(o, "hf_json");
    if (hj) {
        if (!cJSON_IsString(hj) || !(v->hf_json = sb_strdup(hj->valuestring)))
            return -1;
        v->hf_json_len = strlen(v->hf_json);
    }
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(o, "hf_config_json");
    if (hc) {
        if (!cJSON_IsString(hc) || !(v->hf_config_json = sb_strdup(hc->valuestring)))
            return -1;
        v->hf_config_json_len = strlen(v->hf_config_json);
    }
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    if (!toks)
        return 0;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scores"),
                *ty = cJSON_GetObjectItemCaseSensitive(o, "types");
    int n = cJSON_GetArraySize(toks);
    if (!cJSON_IsArray(toks) || (sc && (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) != n)) ||
        (ty && (!cJSON_IsArray(ty) || cJSON_GetArraySize(ty) != n)))
        return -1;
    size_t nn = n ? (size_t)n : 1;
    v->tokens = sb_calloc(nn, sizeof *v->tokens);
    v->lens = sb_calloc(nn, sizeof *v->lens);
    v->scores = sc ? sb_calloc(nn, sizeof *v->scores) : NULL;
    v->types = ty ? sb_calloc(nn, sizeof *v->types) : NULL;
    if (!v->tokens || !v->lens || (sc && !v->scores) || (ty && !v->types))
        return -1;
    v->n_tokens = (uint32_t)n;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, toks) {
        if (token_from_json(it, &v->tokens[i], &v->lens[i]))
            return -1;
        i++;
    }
    i = 0;
    if (sc)
        cJSON_ArrayForEach(it, sc) {
            if (!cJSON_IsNumber(it))
                return -1;
            v->scores[i++] = (float)it->valuedouble;
        }
    i = 0;
    if (ty)
        cJSON_ArrayForEach(it, ty) {
            if (!cJSON_IsNumber(it))
                return -1;
            v->types[i++] = sb_f64_to_i32(it->valuedouble);
        }
    return 0;
}

/* ---- reader ---------------------------------------------------------------- */

struct span {
    uint64_t off, len;
    size_t idx;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

#define FAIL(code, ...)                                                                    \
    do {                                                                                   \
        r = sb_err_set(err, code, __VA_ARGS__);                                            \
        goto fail;                                                                         \
    } while (0)

int fmt_sbc_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                       struct sb_err *err)
{
    struct fmt_map *map = NULL;
    cJSON *root = NULL;
    struct span *sp = NULL;
    struct fmt_strset seen = { 0 };
    int r = fmt_map_open(&map, path, err);
    if (r)
        return r;
    const uint8_t *b = map->data;
    const uint64_t fsize = map->size;
    if (fsize < 8 || memcmp(b, FMT_SBC_MAGIC, 7) != 0)
        FAIL(SB_EFORMAT, "%s: not a subbit file (bad magic)", path);
    if (b[7] != FMT_SBC_VERSION)
        FAIL(SB_EUNSUPPORTED, "%s: unsupported subbit version %u (this build reads %u)", path,
             b[7], FMT_SBC_VERSION);
    if (fsize < FMT_SBC_PROLOGUE)
        FAIL(SB_EFORMAT, "%s: truncated prologue (%" PRIu64 " bytes)", path, fsize);
    uint64_t hoff = rd64(b + 8), hlen = rd64(b + 16);
    uint32_t hcrc = rd32(b + 24);
    if (hoff < FMT_SBC_PROLOGUE || hoff > fsize)
        FAIL(SB_EFORMAT, "%s: header offset %" PRIu64 " outside the file (%" PRIu64 " bytes)",
             path, hoff, fsize);
    if (hlen == 0 || hlen > FMT_SBC_MAX_HEADER || hlen > fsize - hoff)
        FAIL(SB_EFORMAT, "%s: header length %" PRIu64 " at %" PRIu64 " runs past end of file (%" PRIu64 ")",
             path, hlen, hoff, fsize);
    if (fmt_sbc_crc32c(0, b + hoff, hlen) != hcrc)
        FAIL(SB_EFORMAT, "%s: header checksum mismatch", path);
    root = cJSON_ParseWithLength((const char *)b + hoff, hlen);
    if (!root || !cJSON_IsObject(root))
        FAIL(SB_EFORMAT, "%s: header is not valid JSON", path);

    m->container = FMT_CONT_SUBBIT;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "arch");
    if (arch) {
        if (arch_from_json(&m->arch, arch))
            FAIL(SB_EFORMAT, "%s: header: bad 'arch'", path);
        m->has_arch = true;
    }
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(root, "config_json");
    if (cj) {
        if (!cJSON_IsString(cj))
            FAIL(SB_EFORMAT, "%s: header: bad 'config_json'", path);
        if (!(m->config_json = sb_strdup(cj->valuestring)))
            FAIL(SB_ENOMEM, "%s: out of memory", path);
        /* parsed once, here, like a folder's config.json; a text that is not a
         * JSON object travels as it is (the architecture is in 'arch') */
        struct sb_err ce = { 0 };
        if (fmt_config_parse(&m->config, m->config_json, strlen(m->config_json), path, &ce) ==
            SB_ENOMEM)
            FAIL(SB_ENOMEM, "%s: out of memory", path);
    }
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    if (voc && vocab_from_json(&m->vocab, voc))
        FAIL(SB_EFORMAT, "%s: header: bad 'tokenizer'", path);
    if (m->vocab.hf_json && !(o && o->headers_only)) {
        /* parsed once, here (a text that does not parse travels; fmt_vocab_hftok) */
        struct sb_err pe = { 0 };
        if (fmt_hftok_parse(&m->vocab.hf, m->vocab.hf_json, m->vocab.hf_json_len, &pe) ==
            SB_ENOMEM)
            FAIL(SB_ENOMEM, "%s: out of memory", path);
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta) {
        int nk = cJSON_GetArraySize(meta);
        if (!cJSON_IsObject(meta))
            FAIL(SB_EFORMAT, "%s: header: bad 'metadata'", path);
        if (nk > 0 && !(m->kv = sb_calloc((size_t)nk, sizeof *m->kv)))
            FAIL(SB_ENOMEM, "%s: out of memory", path);
        const cJSON *it;
        cJSON_ArrayForEach(it, meta) {
            struct fmt_kv *kv = &m->kv[m->n_kv];
            if (!cJSON_IsString(it))
                FAIL(SB_EFORMAT, "%s: header: metadata '%s' is not a string", path, it->string);
            if (!(kv->key = sb_strdup(it->string)) || !(kv->str = sb_strdup(it->valuestring)))
                FAIL(SB_ENOMEM, "%s: out of memory", path);
            m->n_kv++;
            kv->type = FMT_KV_STRING;
            kv->len = strlen(kv->str);
        }
    }
    const cJSON *tens = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsArray(tens))
        FAIL(SB_EFORMAT, "%s: header: no 'tensors' array", path);
    int nt = cJSON_GetArraySize(tens);
    if (!(m->maps = sb_calloc(1, sizeof *m->maps)))
        FAIL(SB_ENOMEM, "%s: out of memory", path);
    m->maps[0] = map;
    m->n_maps = 1;
    map = NULL;                         /* owned by the model from here */
    if ((nt > 0 && !(sp = sb_malloc((size_t)nt * sizeof *sp))) ||
        fmt_strset_init(&seen, nt > 0 ? (size_t)nt : 0) != 0)
        FAIL(SB_ENOMEM, "%s: out of memory", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, tens) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name"),
                    *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype"),
                    *shp = cJSON_GetObjectItemCaseSensitive(it, "shape"),
                    *of = cJSON_GetObjectItemCaseSensitive(it, "offset"),
                    *st = cJSON_GetObjectItemCaseSensitive(it, "stored"),
                    *nb = cJSON_GetObjectItemCaseSensitive(it, "nbytes"),
                    *cr = cJSON_GetObjectItemCaseSensitive(it, "crc32c"),
                    *cp = cJSON_GetObjectItemCaseSensitive(it, "compression");
        if (!cJSON_IsString(nm))
            FAIL(SB_EFORMAT, "%s: header: tensor %zu has no name", path, m->n_tensors);
        const char *name = nm->valuestring;
        if (fmt_strset_add(&seen, name)) /* names live in root until the end */
            FAIL(SB_EFORMAT, "%s: duplicate tensor '%s'", path, name);
        int dti = cJSON_IsString(dt) ? sb_dtype_from_name(dt->valuestring) : -1;
        if (dti < 0)
            FAIL(SB_EFORMAT, "%s: tensor '%s': unknown encoding", path, name);
        if (!cJSON_IsArray(shp) || cJSON_GetArraySize(shp) > SB_MAX_DIMS)
            FAIL(SB_EFORMAT, "%s: tensor '%s': bad shape", path, name);
        if (!cJSON_IsNumber(of) || !cJSON_IsNumber(st) || !cJSON_IsNumber(nb) || !cJSON_IsNumber(cr) ||
            of->valuedouble < 0 || st->valuedouble < 0 || nb->valuedouble < 0 || cr->valuedouble < 0 ||
            of->valuedouble > 9007199254740992.0 || st->valuedouble > 9007199254740992.0 ||
            nb->valuedouble > 9007199254740992.0 || cr->valuedouble > 4294967295.0)
            FAIL(SB_EFORMAT, "%s: tensor '%s': bad offset, size or checksum field", path, name);
        int zstd = 0;
        if (cp) {
            if (!cJSON_IsString(cp) || (strcmp(cp->valuestring, "none") && strcmp(cp->valuestring, "zstd")))
                FAIL(SB_EFORMAT, "%s: tensor '%s': unknown compression", path, name);
            zstd = !strcmp(cp->valuestring, "zstd");
        }
        struct fmt_tensor *t = fmt_model_add_tensor(m, name);
        if (!t)
            FAIL(SB_ENOMEM, "%s: out of memory", path);
        t->dtype = (enum sb_dtype)dti;
        const cJSON *d;
        cJSON_ArrayForEach(d, shp) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9007199254740992.0 ||
                d->valuedouble != (double)(int64_t)d->valuedouble)
                FAIL(SB_EFORMAT, "%s: tensor '%s': bad shape", path, name);
            t->shape[t->ndim++] = (int64_t)d->valuedouble;
        }
        int g = 0;
        const cJSON *qg = cJSON_GetObjectItemCaseSensitive(it, "group");
        if (qg && (json_get_int(it, "group", &g) || g < 0))
            FAIL(SB_EFORMAT, "%s: tensor '%s': bad group", path, name);
        t->qp.group = (uint32_t)g;
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(it, "scale_dtype");
        if (sd) {
            int s = cJSON_IsString(sd) ? sb_dtype_from_name(sd->valuestring) : -1;
            if (s != SB_DTYPE_F32 && s != SB_DTYPE_F16)
                FAIL(SB_EFORMAT, "%s: tensor '%s': bad scale_dtype", path, name);
            t->qp.scale_dtype = (enum sb_dtype)s;
        }
        uint64_t off = (uint64_t)of->valuedouble, stored = (uint64_t)st->valuedouble;
        t->nbytes = (uint64_t)nb->valuedouble;
        t->checksum = (uint32_t)cr->valuedouble;
        t->file_offset = off;
        t->map_index = 0;
        uint64_t numel, want;
        if (sb_shape_numel(t->shape, t->ndim, &numel))
            FAIL(SB_EFORMAT, "%s: tensor '%s': shape overflows", path, name);
        int sr = sb_dtype_nbytes(t->dtype, t->shape, t->ndim, &t->qp, &want);
        if (sr == SB_OK && want != t->nbytes)
            FAIL(SB_EFORMAT, "%s: tensor '%s': %" PRIu64 " bytes, but %s %s needs %" PRIu64, path,
                 name, t->nbytes, sb_dtype_name(t->dtype), "of this shape", want);
        if (sr != SB_OK && sr != SB_EUNSUPPORTED)
            FAIL(SB_EFORMAT, "%s: tensor '%s': shape does not fit %s", path, name,
                 sb_dtype_name(t->dtype));
        if (!zstd && stored != t->nbytes)
            FAIL(SB_EFORMAT, "%s: tensor '%s': stored size %" PRIu64 " differs from nbytes %" PRIu64,
                 path, name, stored, t->nbytes);
        if (off % FMT_SBC_ALIGN)
            FAIL(SB_EFORMAT, "%s: tensor '%s': data offset %" PRIu64 " not aligned to %u", path,
                 name, off, FMT_SBC_ALIGN);
        if (off < FMT_SBC_PROLOGUE || off > hoff || stored > hoff - off)
            FAIL(SB_EFORMAT, "%s: tensor '%s' ends at byte %" PRIu64 ", past end of data (%" PRIu64 ")",
                 path, name, off + stored, hoff);
        sp[m->n_tensors - 1] = (struct span){ off, stored, m->n_tensors - 1 };
        t->data = zstd ? NULL : b + off;
        if (zstd)
            t->map_index = -2;          /* marker: compressed, decoded below */
    }
    /* non-overlapping */
    if (m->n_tensors > 1)
        qsort(sp, m->n_tensors, sizeof *sp, cmp_span);
    for (size_t i = 1; i < m->n_tensors; i++)
        if (sp[i].off < sp[i - 1].off + sp[i - 1].len)
            FAIL(SB_EFORMAT, "%s: tensors '%s' and '%s' overlap", path, m->tensors[sp[i - 1].idx].name,
                 m->tensors[sp[i].idx].name);
    /* data: checksums, decompression, varlen headers */
    for (size_t i = 0; i < m->n_tensors; i++) {
        struct fmt_tensor *t = &m->tensors[sp[i].idx];
        const uint8_t *src = b + sp[i].off;
        if (o && o->headers_only) {
            if (t->map_index == -2)
                t->map_index = -1;
            t->data = NULL;
            continue;
        }
        if (fmt_sbc_crc32c(0, src, sp[i].len) != t->checksum)
            FAIL(SB_EFORMAT, "%s: tensor '%s' checksum mismatch", path, t->name);
        if (t->map_index == -2) {
            t->map_index = -1;
            if (ZSTD_getFrameContentSize(src, sp[i].len) != t->nbytes)
                FAIL(SB_EFORMAT, "%s: tensor '%s': compressed frame size differs from nbytes", path,
                     t->name);
            if (t->nbytes > SIZE_MAX || !(t->owned = sb_malloc(t->nbytes ? t->nbytes : 1)))
                FAIL(SB_ENOMEM, "%s: tensor '%s': out of memory", path, t->name);
            size_t got = ZSTD_decompress(t->owned, t->nbytes, src, sp[i].len);
            if (ZSTD_isError(got) || got != t->nbytes)
                FAIL(SB_EFORMAT, "%s: tensor '%s': bad zstd data", path, t->name);
            t->data = t->owned;
        }
        if (sb_dtype_get(t->dtype)->flags & SB_DT_VARLEN &&
            fmt_sbc_check_varlen(t->dtype, t->data, t->nbytes, t->shape, t->ndim))
            FAIL(SB_EFORMAT, "%s: tensor '%s': %s data does not match its shape", path, t->name,
                 sb_dtype_name(t->dtype));
    }
    sb_free(sp);
    fmt_strset_release(&seen);
    cJSON_Delete(root);
    return SB_OK;
fail:
    sb_free(sp);
    fmt_strset_release(&seen);
    cJSON_Delete(root);
    fmt_map_close(map);
    return r;
}

/* ---- writer ---------------------------------------------------------------- */

struct sbc_writer {
    struct fmt_writer w;
    struct fmt_out out;
    cJSON *root, *tensors;
    struct fmt_tensor *plan;            /* copies (names owned) */
    void *zbuf;
    size_t zcap;
};

#define ZSTD_MIN_SAVING 0.05            /* keep zstd only if it saves >= 5% */
#define ZSTD_PROBE (1u << 20)           /* probe this many bytes first */

static void sbc_free(struct sbc_writer *s)
{
    if (!s)
        return;
    if (s->plan)
        for (size_t i = 0; i < s->w.n; i++)
            sb_free(s->plan[i].name);
    sb_free(s->plan);
    cJSON_Delete(s->root);
    sb_free(s->zbuf);
    sb_free(s);
}

static void sbc_abort(struct fmt_writer *w)
{
    struct sbc_writer *s = (struct sbc_writer *)w;
    fmt_out_abort(&s->out);
    sbc_free(s);
}

/* Try zstd on data into *zbuf; returns the compressed size if it saves
 * enough, else 0. */
static size_t try_zstd(void **zbuf, size_t *zcap, const void *data, size_t n)
{
    if (n < 4096)
        return 0;
    size_t probe = n < ZSTD_PROBE ? n : ZSTD_PROBE;
    size_t need = ZSTD_compressBound(n);
    if (need > *zcap) {
        void *z = sb_realloc(*zbuf, need);
        if (!z)
            return 0;                   /* no memory for the trial: store plain */
        *zbuf = z;
        *zcap = need;
    }
    size_t c = ZSTD_compress(*zbuf, *zcap, data, probe, 3);
    if (ZSTD_isError(c) || (double)c > (1.0 - ZSTD_MIN_SAVING) * (double)probe)
        return 0;
    if (probe < n) {
        c = ZSTD_compress(*zbuf, *zcap, data, n, 3);
        if (ZSTD_isError(c) || (double)c > (1.0 - ZSTD_MIN_SAVING) * (double)n)
            return 0;
    }
    return c;
}

int fmt_sbc_stored(const struct fmt_tensor *t, const void *data, uint64_t nbytes, void **zbuf,
                   size_t *zcap, const void **stored, struct fmt_placed *pl, const char *path,
                   struct sb_err *err)
{
    uint64_t want;
    int sr = sb_dtype_nbytes(t->dtype, t->shape, t->ndim, &t->qp, &want);
    if (sr == SB_OK && want != nbytes)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %" PRIu64 " bytes given, %" PRIu64 " expected",
                          path, t->name, nbytes, want);
    if (sr != SB_OK && sr != SB_EUNSUPPORTED)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': shape does not fit %s", path, t->name,
                          sb_dtype_name(t->dtype));
    if (t->nbytes && t->nbytes != nbytes)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %" PRIu64 " bytes given, plan says %" PRIu64,
                          path, t->name, nbytes, t->nbytes);
    if (sr == SB_EUNSUPPORTED && fmt_sbc_check_varlen(t->dtype, data, nbytes, t->shape, t->ndim))
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %s data does not match its shape", path,
                          t->name, sb_dtype_name(t->dtype));
    if (nbytes > SIZE_MAX)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s' too large", path, t->name);
    size_t zn = try_zstd(zbuf, zcap, data, (size_t)nbytes);
    *stored = zn ? *zbuf : data;
    pl->nbytes = nbytes;
    pl->stored = zn ? zn : nbytes;
    pl->zstd = zn != 0;
    pl->crc32c = fmt_sbc_crc32c(0, *stored, (size_t)pl->stored);
    return SB_OK;
}

/* the header's entry of plan[i], stored at `at` */
static int sbc_entry(struct sbc_writer *s, size_t i, uint64_t at, const struct fmt_placed *pl,
                     struct sb_err *err)
{
    const struct fmt_tensor *t = &s->plan[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(s->tensors, o)) {
        cJSON_Delete(o);
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", s->out.path);
    }
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", sb_dtype_name(t->dtype));
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; sh && d < t->ndim; d++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
    if (t->dtype == SB_DTYPE_INT8) {
        cJSON_AddNumberToObject(o, "group", t->qp.group);
        cJSON_AddStringToObject(o, "scale_dtype", t->qp.scale_dtype == SB_DTYPE_F16 ? "f16" : "f32");
    }
    cJSON_AddNumberToObject(o, "offset", (double)at);
    cJSON_AddNumberToObject(o, "nbytes", (double)pl->nbytes);
    cJSON_AddNumberToObject(o, "stored", (double)pl->stored);
    cJSON_AddStringToObject(o, "compression", pl->zstd ? "zstd" : "none");
    if (!cJSON_AddNumberToObject(o, "crc32c", pl->crc32c))
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", s->out.path);
    return SB_OK;
}

/* zeros up to the next tensor's aligned offset, in *at */
static int sbc_align(struct sbc_writer *s, uint64_t *at, struct sb_err *err)
{
    uint64_t pos = fmt_out_tell(&s->out);
    if (sb_align_u64(pos, FMT_SBC_ALIGN, at))
        return sb_err_set(err, SB_EINVAL, "%s: file too large", s->out.path);
    return fmt_out_zeros(&s->out, *at - pos, err);
}

static int sbc_put(struct fmt_writer *w, size_t i, const void *data, uint64_t nbytes,
                   struct sb_err *err)
{
    struct sbc_writer *s = (struct sbc_writer *)w;
    struct fmt_placed pl;
    const void *src;
    uint64_t at = 0;
    int r;
    if ((r = fmt_sbc_stored(&s->plan[i], data, nbytes, &s->zbuf, &s->zcap, &src, &pl,
                            s->out.path, err)) ||
        (r = sbc_align(s, &at, err)) ||
        (r = fmt_out_write(&s->out, src, (size_t)pl.stored, err)))
        return r;
    return sbc_entry(s, i, at, &pl, err);
}

static int sbc_place(struct fmt_writer *w, size_t i, const struct fmt_placed *pl, uint64_t *off,
                     struct sb_err *err)
{
    struct sbc_writer *s = (struct sbc_writer *)w;
    const struct fmt_tensor *t = &s->plan[i];
    uint64_t want;
    int r = sb_dtype_nbytes(t->dtype, t->shape, t->ndim, &t->qp, &want);
    if ((r == SB_OK && want != pl->nbytes) || (t->nbytes && t->nbytes != pl->nbytes) ||
        pl->stored > (uint64_t)INT64_MAX)
        return sb_err_set(err, SB_EINVAL, "%s: tensor '%s': %" PRIu64 " bytes given, not its "
                          "size", s->out.path, t->name, pl->nbytes);
    if ((r = sbc_align(s, off, err)) || (r = sbc_entry(s, i, *off, pl, err)))
        return r;
    return fmt_out_skip(&s->out, pl->stored, err);
}

static const char *sbc_file(const struct fmt_writer *w)
{
    return ((const struct sbc_writer *)w)->out.tmp;
}

static int sbc_commit(struct fmt_writer *w, struct sb_err *err)
{
    struct sbc_writer *s = (struct sbc_writer *)w;
    char *js = cJSON_PrintUnformatted(s->root);
    int r;
    if (!js) {
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", s->out.path);
        goto fail;
    }
    size_t len = strlen(js);
    uint64_t hoff = fmt_out_tell(&s->out);
    uint8_t pro[FMT_SBC_PROLOGUE] = { 0 };
    memcpy(pro, FMT_SBC_MAGIC, 7);
    pro[7] = FMT_SBC_VERSION;
    wr64(pro + 8, hoff);
    wr64(pro + 16, len);
    wr32(pro + 24, fmt_sbc_crc32c(0, js, len));
    r = fmt_out_write(&s->out, js, len, err);
    cJSON_free(js);
    if (r || (r = fmt_out_pwrite(&s->out, pro, sizeof pro, 0, err)))
        goto fail;
    r = fmt_out_commit(&s->out, err);
    sbc_free(s);
    return r;
fail:
    sbc_abort(w);
    return r;
}

static const struct fmt_writer_ops sbc_ops = { sbc_put, sbc_commit, sbc_abort, NULL, NULL,
                                               sbc_place, sbc_file };

int fmt_sbc_writer_open(struct fmt_writer **w, const char *path, const struct fmt_tensor *plan,
                        size_t n, const struct fmt_write_opts *o, struct sb_err *err)
{
    *w = NULL;
    struct sbc_writer *s = sb_calloc(1, sizeof *s);
    if (!s)
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    s->w.ops = &sbc_ops;
    s->w.n = n;
    s->out.fd = -1;
    s->out.slot = -1;
    if (n && !(s->plan = sb_calloc(n, sizeof *s->plan)))
        goto oom;
    struct fmt_strset seen = { 0 };
    if (fmt_strset_init(&seen, n) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        s->plan[i] = plan[i];
        s->plan[i].data = NULL;
        s->plan[i].owned = NULL;
        if (!(s->plan[i].name = sb_strdup(plan[i].name))) {
            fmt_strset_release(&seen);
            goto oom;
        }
        if (fmt_strset_add(&seen, s->plan[i].name)) {
            fmt_strset_release(&seen);
            sbc_free(s);
            return sb_err_set(err, SB_EINVAL, "%s: duplicate tensor '%s'", path, plan[i].name);
        }
    }
    fmt_strset_release(&seen);
    if (!(s->root = cJSON_CreateObject()))
        goto oom;
    cJSON_AddStringToObject(s->root, "format", "subbit");
    cJSON_AddNumberToObject(s->root, "version", FMT_SBC_VERSION);
    if (o->arch) {
        cJSON *a = arch_to_json(o->arch);
        if (!a || !cJSON_AddItemToObject(s->root, "arch", a)) {
            cJSON_Delete(a);
            goto oom;
        }
    }
    if (o->config_json && !cJSON_AddStringToObject(s->root, "config_json", o->config_json))
        goto oom;
    if (o->vocab && o->vocab->kind != FMT_VOCAB_NONE) {
        cJSON *v = vocab_to_json(o->vocab);
        if (!v || !cJSON_AddItemToObject(s->root, "tokenizer", v)) {
            cJSON_Delete(v);
            goto oom;
        }
    }
    if (o->n_kv) {
        cJSON *md = cJSON_AddObjectToObject(s->root, "metadata");
        if (!md)
            goto oom;
        for (size_t i = 0; i < o->n_kv; i++)
            if (o->kv[i].type == FMT_KV_STRING && o->kv[i].str)
                cJSON_AddStringToObject(md, o->kv[i].key, o->kv[i].str);
    }
    if (!(s->tensors = cJSON_AddArrayToObject(s->root, "tensors")))
        goto oom;
    int r = fmt_out_open(&s->out, path, o->flags, err);
    if (r) {
        sbc_free(s);
        return r;
    }
    uint8_t pro[FMT_SBC_PROLOGUE] = { 0 };   /* patched at commit */
    if ((r = fmt_out_write(&s->out, pro, sizeof pro, err))) {
        sbc_abort(&s->w);
        return r;
    }
    *w = &s->w;
    return SB_OK;
oom:
    sbc_free(s);
    return sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
}
