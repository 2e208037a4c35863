/* fmt_gguf_kv.c: GGUF metadata built in one place (fmt_gguf.h): the
 * {arch}.* keys of an architecture, the tokenizer.ggml.* keys of a
 * SentencePiece vocab (or of a SentencePiece-style tokenizer.json) and of a
 * byte-level tokenizer.json (model "gpt2"), for the GGUF writer and for convert alike. Knows keys and their types (formats.md
 * §2.6, §2.9), nothing of tensors. */
#include "fmt_gguf.h"

#include <stdio.h>
#include <string.h>

#include "fmt_hftok.h"
#include "sb_alloc.h"

/* ---- a growing kv list ---------------------------------------------------- */

struct kvbuf {
    struct fmt_kv *kv;
    size_t n, cap;
    int failed;
};

static struct fmt_kv *kv_push(struct kvbuf *b, const char *key, enum fmt_kv_type type)
{
    if (b->failed)
        return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 32;
        struct fmt_kv *k = sb_realloc(b->kv, cap * sizeof *k);
        if (!k) {
            b->failed = 1;
            return NULL;
        }
        b->kv = k;
        b->cap = cap;
    }
    struct fmt_kv *kv = &b->kv[b->n];
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = sb_strdup(key))) {
        b->failed = 1;
        return NULL;
    }
    kv->type = type;
    b->n++;
    return kv;
}

static void kv_u32(struct kvbuf *b, const char *key, uint64_t v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_U32);
    if (kv)
        kv->u = v & 0xffffffffu;
}

static void kv_f32(struct kvbuf *b, const char *key, double v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_F32);
    if (kv)
        kv->f = (float)v;
}

static void kv_bool(struct kvbuf *b, const char *key, bool v)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_BOOL);
    if (kv)
        kv->u = v;
}

static void kv_str(struct kvbuf *b, const char *key, const char *s)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_STRING);
    if (kv && !(kv->str = sb_strdup(s)))
        b->failed = 1;
    else if (kv)
        kv->len = strlen(s);
}

static void kv_arr(struct kvbuf *b, const char *key, enum fmt_kv_type at, const void *data,
                   uint64_t n, size_t esz)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_ARRAY);
    if (!kv)
        return;
    kv->arr_type = at;
    kv->n = n;
    kv->arr_owned = sb_malloc(n ? (size_t)(n * esz) : 1);
    if (!kv->arr_owned) {
        b->failed = 1;
        return;
    }
    if (n)
        memcpy(kv->arr_owned, data, (size_t)(n * esz));
    kv->arr = kv->arr_owned;
}

static void kv_strs(struct kvbuf *b, const char *key, char *const *strs, const uint64_t *lens,
                    uint64_t n)
{
    struct fmt_kv *kv = kv_push(b, key, FMT_KV_ARRAY);
    if (!kv)
        return;
    if (fmt_kv_set_strs(kv, strs, lens, n) != SB_OK) /* one block, not n */
        b->failed = 1;
}

static int kv_copy(struct kvbuf *b, const struct fmt_kv *s)
{
    if (s->type == FMT_KV_ARRAY && s->arr_type == FMT_KV_ARRAY)
        return SB_OK; /* nested arrays: fmt_kv cannot hold them */
    if (s->type == FMT_KV_ARRAY && s->arr_type == FMT_KV_STRING) {
        kv_strs(b, s->key, s->strs, s->lens, s->n);
        return b->failed ? SB_ENOMEM : SB_OK;
    }
    if (s->type == FMT_KV_ARRAY) {
        size_t esz = fmt_gguf_kv_type_size(s->arr_type);
        if (!esz)
            return SB_OK;
        kv_arr(b, s->key, s->arr_type, s->arr, s->n, esz);
        return b->failed ? SB_ENOMEM : SB_OK;
    }
    struct fmt_kv *kv = kv_push(b, s->key, s->type);
    if (!kv)
        return SB_ENOMEM;
    kv->u = s->u;
    kv->i = s->i;
    kv->f = s->f;
    if (s->type == FMT_KV_STRING) {
        kv->len = s->len;
        if (!(kv->str = sb_malloc((size_t)s->len + 1)))
            return b->failed = 1, SB_ENOMEM;
        memcpy(kv->str, s->str, (size_t)s->len);
        kv->str[s->len] = '\0';
    }
    return SB_OK;
}

/* tokenizer.ggml.tokens in SentencePiece spelling: a llama2.c tokenizer.bin
 * stores spaces for U+2581 and "\n<s>\n" / "\n</s>\n" for BOS / EOS
 * (formats.md §4.3); SentencePiece pieces never hold a raw space. */
static void kv_spm_tokens(struct kvbuf *b, const struct fmt_vocab *v)
{
    struct fmt_kv *kv = kv_push(b, "tokenizer.ggml.tokens", FMT_KV_ARRAY);
    if (!kv)
        return;
    kv->arr_type = FMT_KV_STRING;
    kv->strs = sb_calloc(v->n_tokens, sizeof *kv->strs);
    kv->lens = sb_calloc(v->n_tokens, sizeof *kv->lens);
    if (!kv->strs || !kv->lens) {
        b->failed = 1;
        return;
    }
    kv->n = v->n_tokens;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        const char *s = v->tokens[i];
        size_t len = v->lens ? v->lens[i] : strlen(s);
        if (len == 5 && !memcmp(s, "\n<s>\n", 5)) {
            s = "<s>";
            len = 3;
        } else if (len == 6 && !memcmp(s, "\n</s>\n", 6)) {
            s = "</s>";
            len = 4;
        }
        size_t spaces = 0;
        for (size_t k = 0; k < len; k++)
            spaces += s[k] == ' ';
        char *o = sb_malloc(len + 2 * spaces + 1);
        if (!o) {
            b->failed = 1;
            return;
        }
        size_t n = 0;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(o + n, "\xe2\x96\x81", 3);
                n += 3;
            } else {
                o[n++] = s[k];
            }
        }
        o[n] = '\0';
        kv->strs[i] = o;
        kv->lens[i] = n;
    }
}

/* ---- the keys ---------------------------------------------------------------- */

/* {arch}.* for a (llama, or qwen2moe for Qwen2-MoE), with llama.cpp's types */
static void arch_keys(struct kvbuf *b, const struct fmt_arch *a, bool qwen)
{
    const char *an = qwen ? "qwen2moe" : "llama";
    char key[96];
#define K(s) (snprintf(key, sizeof key, "%s.%s", an, s), key)
    kv_str(b, "general.architecture", an);
    kv_u32(b, K("context_length"), a->n_ctx > 0 ? (uint64_t)a->n_ctx : 2048);
    kv_u32(b, K("embedding_length"), (uint64_t)a->dim);
    kv_u32(b, K("block_count"), (uint64_t)a->n_layers);
    /* the dense width (Qwen2-MoE's intermediate_size), else the experts' */
    int ff = a->hidden_dim > 0 ? a->hidden_dim : a->moe_hidden_dim;
    kv_u32(b, K("feed_forward_length"), (uint64_t)(ff > 0 ? ff : 0));
    kv_u32(b, K("attention.head_count"), (uint64_t)a->n_heads);
    kv_u32(b, K("attention.head_count_kv"),
           (uint64_t)(a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads));
    int hd = a->head_dim > 0 ? a->head_dim : (a->n_heads > 0 ? a->dim / a->n_heads : 0);
    kv_u32(b, K("rope.dimension_count"), (uint64_t)hd);
    kv_f32(b, K("rope.freq_base"), a->rope_theta > 0 ? a->rope_theta : 10000.0);
    kv_f32(b, K("attention.layer_norm_rms_epsilon"), a->norm_eps > 0 ? a->norm_eps : 1e-5);
    if (a->n_heads > 0 && hd != a->dim / a->n_heads) {
        kv_u32(b, K("attention.key_length"), (uint64_t)hd);
        kv_u32(b, K("attention.value_length"), (uint64_t)hd);
    }
    if (a->n_experts > 0) {
        kv_u32(b, K("expert_count"), (uint64_t)a->n_experts);
        kv_u32(b, K("expert_used_count"), (uint64_t)a->n_experts_used);
    }
    if (qwen) {
        kv_u32(b, K("expert_feed_forward_length"), (uint64_t)a->moe_hidden_dim);
        kv_u32(b, K("expert_shared_feed_forward_length"), (uint64_t)a->shared_hidden_dim);
    }
    if (a->vocab_size > 0)
        kv_u32(b, K("vocab_size"), (uint64_t)a->vocab_size);
#undef K
}

/* tokenizer.ggml.* for v (SPM, or a SentencePiece-style tokenizer.json turned
 * into one); bos / eos fall back to a's. Other vocabs write nothing. */
/* tokenizer.ggml.bos/eos_token_id: the vocab's, else the config's */
static void special_ids(struct kvbuf *b, const struct fmt_vocab *v, const struct fmt_arch *a)
{
    const int bos = v->bos_id >= 0 ? v->bos_id : a ? a->bos_id : -1;
    const int eos = v->eos_id >= 0 ? v->eos_id : a ? a->eos_id : -1;
    if (bos >= 0)
        kv_u32(b, "tokenizer.ggml.bos_token_id", (uint64_t)bos);
    if (eos >= 0)
        kv_u32(b, "tokenizer.ggml.eos_token_id", (uint64_t)eos);
}

/* tokenizer.ggml.* of a byte-level BPE tokenizer.json, as llama.cpp's converter
 * writes them (fmt_hftok.h), in its order: model, pre, tokens, token_type, merges,
 * the special ids, add_bos / add_eos, the chat template. Unlike gguf-py,
 * tokenizer.ggml.merges is written when there are none: llama.cpp refuses a
 * "gpt2" tokenizer without the key. */
static int gpt2_keys(struct kvbuf *b, const struct fmt_vocab *v, const struct fmt_hftok_file *f,
                     const struct fmt_arch *a)
{
    struct fmt_hftok_gpt2 g;
    struct fmt_hftok_specials sp;
    struct sb_err e = { 0 };
    bool exact;
    uint32_t min = a && a->vocab_size > 0 ? (uint32_t)a->vocab_size : 0;
    if (fmt_hftok_gpt2_from_file(&g, f, min, &e) != SB_OK)
        return SB_ENOMEM;
    if (fmt_hftok_specials(&sp, f, v->hf_config_json, v->hf_config_json_len, v->bos_id,
                           v->eos_id, g.n) != SB_OK) {
        fmt_hftok_gpt2_release(&g);
        return SB_ENOMEM;
    }
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    kv_str(b, "tokenizer.ggml.pre", fmt_hftok_pre_name(f, &exact));
    kv_strs(b, "tokenizer.ggml.tokens", g.tokens, g.lens, g.n);
    kv_arr(b, "tokenizer.ggml.token_type", FMT_KV_I32, g.types, g.n, 4);
    kv_strs(b, "tokenizer.ggml.merges", g.merges, g.merge_lens, g.n_merges);
    static const char *const keys[5] = {
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
        "tokenizer.ggml.padding_token_id" };
    const int64_t ids[5] = { sp.bos, sp.eos, sp.unk, sp.sep, sp.pad };
    for (int i = 0; i < 5; i++)
        if (ids[i] >= 0)
            kv_u32(b, keys[i], (uint64_t)ids[i]);
    if (sp.add_bos >= 0)
        kv_bool(b, "tokenizer.ggml.add_bos_token", sp.add_bos > 0);
    if (sp.add_eos >= 0)
        kv_bool(b, "tokenizer.ggml.add_eos_token", sp.add_eos > 0);
    if (sp.chat_template)
        kv_str(b, "tokenizer.chat_template", sp.chat_template);
    sb_free(sp.chat_template);
    fmt_hftok_gpt2_release(&g);
    return b->failed ? SB_ENOMEM : SB_OK;
}

static int vocab_keys(struct kvbuf *b, const struct fmt_vocab *v, const struct fmt_arch *a)
{
    struct fmt_vocab json_vocab = { 0 };
    json_vocab.bos_id = json_vocab.eos_id = json_vocab.unk_id = -1;
    if (v->kind == FMT_VOCAB_HF_JSON && v->hf_json) {
        /* A SentencePiece-style tokenizer.json (Llama 1/2) becomes tokenizer.ggml.*
         * model "llama": pieces, token types, and scores that keep the merge order
         * (rule in fmt_hftok.h: a merge result scores -(rank of its first merge);
         * llama.cpp's convert_hf_to_gguf writes -1000 for every token of such a
         * vocab, which its score-driven encoder cannot tokenize by). A byte-level
         * tokenizer.json becomes model "gpt2" (gpt2_keys). */
        const struct fmt_hftok_file *f;
        struct fmt_hftok_file *tmp;
        struct sb_err e = { 0 };
        int rj = fmt_vocab_hftok(v, &f, &tmp, &e);
        if (rj == SB_OK && f->kind == FMT_HFTOK_BYTE_LEVEL) {
            rj = gpt2_keys(b, v, f, a);
            fmt_hftok_file_free(tmp);
            return rj;
        }
        if (rj == SB_OK)
            rj = fmt_hftok_file_to_spm(&json_vocab, f,
                                       a && a->vocab_size > 0 ? (uint32_t)a->vocab_size : 0, &e);
        fmt_hftok_file_free(tmp);
        if (rj == SB_ENOMEM)
            return SB_ENOMEM;
        if (rj == SB_OK) {
            json_vocab.add_bos = json_vocab.add_bos || v->add_bos;
            if (json_vocab.bos_id < 0)
                json_vocab.bos_id = v->bos_id;
            if (json_vocab.eos_id < 0)
                json_vocab.eos_id = v->eos_id;
            v = &json_vocab;
        }
    }
    if (v->kind == FMT_VOCAB_SPM && v->n_tokens > 0) {
        kv_str(b, "tokenizer.ggml.model", "llama");
        kv_spm_tokens(b, v);
        float *sc = sb_calloc(v->n_tokens, sizeof *sc);
        int32_t *ty = sb_malloc(v->n_tokens * sizeof *ty);
        if (!sc || !ty) {
            b->failed = 1;
        } else {
            for (uint32_t i = 0; i < v->n_tokens; i++) {
                sc[i] = v->scores ? v->scores[i] : 0.0f;
                ty[i] = v->types ? v->types[i] : fmt_gguf_llama_token_type(v, i);
            }
            kv_arr(b, "tokenizer.ggml.scores", FMT_KV_F32, sc, v->n_tokens, 4);
            kv_arr(b, "tokenizer.ggml.token_type", FMT_KV_I32, ty, v->n_tokens, 4);
        }
        sb_free(sc);
        sb_free(ty);
        special_ids(b, v, a);
        if (v->unk_id >= 0)
            kv_u32(b, "tokenizer.ggml.unknown_token_id", (uint64_t)v->unk_id);
        kv_bool(b, "tokenizer.ggml.add_bos_token", v->add_bos);
    } else if (v->kind == FMT_VOCAB_HF_JSON) {
        /* a tokenizer not carried (neither byte-level nor SentencePiece-style):
         * its special ids still are, so that --tokens scoring keeps the BOS */
        special_ids(b, v, a);
    }
    fmt_vocab_release(&json_vocab);
    return b->failed ? SB_ENOMEM : SB_OK;
}

static int finish(struct kvbuf *b, int r, const char *what, struct fmt_kv **kv, size_t *n,
                  struct sb_err *err)
{
    if (b->failed || r == SB_ENOMEM)
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    if (r != SB_OK) {
        for (size_t i = 0; i < b->n; i++)
            fmt_kv_release(&b->kv[i]);
        sb_free(b->kv);
        return r;
    }
    *kv = b->kv;
    *n = b->n;
    return SB_OK;
}

int fmt_gguf_kv_from_arch(const struct fmt_arch *a, const struct fmt_vocab *v, const char *what,
                          struct fmt_kv **kv, size_t *n, struct sb_err *err)
{
    struct kvbuf b = { 0 };
    *kv = NULL;
    *n = 0;
    if (a)
        arch_keys(&b, a, a->kind == FMT_ARCH_QWEN2_MOE);
    int r = v ? vocab_keys(&b, v, a) : SB_OK;
    return finish(&b, r, what, kv, n, err);
}

/* general.name of a model that has none (HF input): the last component of
 * its path without the extension, as llama.cpp's converter names a model
 * after its folder ("stories-hf/" -> "stories-hf", "m.safetensors" -> "m") */
static void general_name(struct kvbuf *b, const char *path)
{
    if (!path)
        return;
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    char name[256];
    size_t len = end - start < sizeof name - 1 ? end - start : sizeof name - 1;
    memcpy(name, path + start, len);
    name[len] = '\0';
    char *dot = strrchr(name, '.');
    if (dot && dot != name && !strchr(dot, '/'))
        *dot = '\0';
    if (name[0] && strcmp(name, ".") && strcmp(name, ".."))
        kv_str(b, "general.name", name);
}

int fmt_gguf_kv_build(const struct fmt_model *src, struct fmt_kv **kv, size_t *n,
                      struct sb_err *err)
{
    const char *what = src->path ? src->path : "(model)";
    struct kvbuf b = { 0 };
    int r = SB_OK;
    *kv = NULL;
    *n = 0;
    if (src->container == FMT_CONT_GGUF && src->n_kv) {
        for (size_t i = 0; i < src->n_kv && !r; i++) {
            const char *k = src->kv[i].key;
            if (!strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version") ||
                !strcmp(k, "general.alignment"))
                continue;
            r = kv_copy(&b, &src->kv[i]);
        }
        return finish(&b, r, what, kv, n, err);
    }
    if (!src->has_arch)
        return sb_err_set(err, SB_EUNSUPPORTED, "%s: no model config: cannot write GGUF metadata",
                          what);
    arch_keys(&b, &src->arch, src->arch.kind == FMT_ARCH_QWEN2_MOE);
    general_name(&b, src->path);
    r = vocab_keys(&b, &src->vocab, &src->arch);
    return finish(&b, r, what, kv, n, err);
}
