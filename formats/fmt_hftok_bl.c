/* fmt_hftok_bl.c: byte-level BPE tokenizer.json <-> GGUF tokenizer.ggml.model
 * "gpt2" (fmt_hftok.h). Knows both layouts, the pre-tokenizer names llama.cpp
 * gives the patterns it implements, and how llama.cpp's converter picks tokens,
 * types and special ids; tokenizing is verify/'s business. */
#include "fmt_hftok.h"
#include "fmt_hftok_impl.h"

#include "fmt_strset_impl.h"
#include "sb_alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define WHAT "tokenizer.json"

/* GGUF token types (formats.md §2.6) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- pre-tokenizers --------------------------------------------------------- */

/* The Split patterns of Llama 3 and Qwen2 as their tokenizer.json spell them
 * (llama.cpp's LLAMA3 / QWEN2 pre-types implement these), and GPT-2's own
 * (ByteLevel use_regex, or the same as a Split). */
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum pre_family { PRE_OTHER, PRE_GPT2, PRE_LLAMA3, PRE_QWEN2 };

/* llama.cpp's names for each family (src/llama-vocab.cpp: the names whose
 * pre-type splits with that pattern) */
static const struct { const char *name; enum pre_family fam; } pre_names[] = {
    { "gpt-2", PRE_GPT2 }, { "phi-2", PRE_GPT2 }, { "jina-es", PRE_GPT2 },
    { "jina-de", PRE_GPT2 }, { "gigachat", PRE_GPT2 }, { "jina-v2-es", PRE_GPT2 },
    { "jina-v2-de", PRE_GPT2 }, { "a.x-4.0", PRE_GPT2 }, { "mellum", PRE_GPT2 },
    { "modern-bert", PRE_GPT2 }, { "mpt", PRE_GPT2 }, { "olmo", PRE_GPT2 },
    { "jais", PRE_GPT2 }, { "trillion", PRE_GPT2 }, { "granite-docling", PRE_GPT2 },
    { "llama-bpe", PRE_LLAMA3 }, { "llama3", PRE_LLAMA3 }, { "llama-v3", PRE_LLAMA3 },
    { "falcon3", PRE_LLAMA3 }, { "falcon-h1", PRE_LLAMA3 }, { "pixtral", PRE_LLAMA3 },
    { "midm-2.0", PRE_LLAMA3 }, { "lfm2", PRE_LLAMA3 }, { "jina-v5-nano", PRE_LLAMA3 },
    { "qwen2", PRE_QWEN2 }, { "deepseek-r1-qwen", PRE_QWEN2 }, { "kormo", PRE_QWEN2 },
    { "f2llmv2", PRE_QWEN2 }, { "stablelm2", PRE_QWEN2 }, { "hunyuan", PRE_QWEN2 },
    { "solar-open", PRE_QWEN2 },
};

static enum pre_family family_of(const char *pre)
{
    for (size_t i = 0; pre && i < sizeof pre_names / sizeof *pre_names; i++)
        if (!strcmp(pre, pre_names[i].name))
            return pre_names[i].fam;
    return PRE_OTHER;
}

const char *fmt_hftok_pre_name(const struct fmt_hftok_file *f, bool *exact)
{
    *exact = !f->bl_prefix_space && f->bl_pre;   /* llama.cpp never adds a prefix space */
    if (f->has_split) {
        const char *re = f->split_regex ? f->split_regex : "";
        if (f->bl_use_regex)
            *exact = false;                      /* split twice */
        if (!strcmp(re, RE_LLAMA3))
            return "llama-bpe";
        if (!strcmp(re, RE_QWEN2))
            return "qwen2";
        if (!strcmp(re, RE_GPT2))
            return "gpt-2";
        *exact = false;
        return "default";
    }
    if (f->bl_use_regex)
        return "gpt-2";
    /* no splitting at all: llama.cpp always splits, which changes nothing
     * when there is nothing to merge */
    if (f->n_merges)
        *exact = false;
    return "default";
}

bool fmt_hftok_pre_exact(const char *pre, uint64_t n_merges)
{
    return family_of(pre) != PRE_OTHER || (pre && !strcmp(pre, "default") && n_merges == 0);
}

/* ---- HF -> GGUF --------------------------------------------------------------- */

/* convert_hf_to_gguf's does_token_look_special */
static bool looks_special(const char *s, size_t n)
{
    static const char *const names[] = { "<pad>", "<mask>", "<2mass>", "[@BOS@]" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (n == strlen(names[i]) && !memcmp(s, names[i], n))
            return true;
#define ENDS(a, b) (n >= strlen(a) + strlen(b) && !memcmp(s, a, strlen(a)) && \
                    !memcmp(s + n - strlen(b), b, strlen(b)))
    return ENDS("<|", "|>") || ENDS("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || ENDS("<unused", ">");
#undef ENDS
}

void fmt_hftok_gpt2_release(struct fmt_hftok_gpt2 *g)
{
    sb_free(g->tokens);
    sb_free(g->lens);
    sb_free(g->types);
    sb_free(g->merges);
    sb_free(g->merge_lens);
    sb_free(g->arena);
    memset(g, 0, sizeof *g);
}

/* copies s[0..n) to *o, replacing each occurrence of from (fl bytes) with to (tl
 * bytes); returns the bytes written */
static size_t put_replaced(char *o, const char *s, size_t n, const char *from, size_t fl,
                           const char *to, size_t tl)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (fl && i + fl <= n && !memcmp(s + i, from, fl)) {
            memcpy(o + k, to, tl);
            k += tl;
            i += fl;
        } else {
            o[k++] = s[i++];
        }
    }
    o[k] = '\0';
    return k;
}

int fmt_hftok_gpt2_from_file(struct fmt_hftok_gpt2 *g, const struct fmt_hftok_file *f,
                             uint32_t min_tokens, struct sb_err *err)
{
    memset(g, 0, sizeof *g);
    const uint32_t n = (uint32_t)f->max_id + 1 > min_tokens ? (uint32_t)f->max_id + 1 : min_tokens;
    /* per id: an added token (the first for the id), else the first vocab entry */
    const char **src = sb_calloc(n ? n : 1, sizeof *src);
    uint32_t *slen = sb_calloc(n ? n : 1, sizeof *slen);
    g->tokens = sb_calloc(n ? n : 1, sizeof *g->tokens);
    g->lens = sb_calloc(n ? n : 1, sizeof *g->lens);
    g->types = sb_calloc(n ? n : 1, sizeof *g->types);
    g->merges = sb_calloc(f->n_merges ? f->n_merges : 1, sizeof *g->merges);
    g->merge_lens = sb_calloc(f->n_merges ? f->n_merges : 1, sizeof *g->merge_lens);
    if (!src || !slen || !g->tokens || !g->lens || !g->types || !g->merges || !g->merge_lens)
        goto oom;
    for (uint32_t i = f->n_added; i-- > 0;) {    /* backwards: the first wins */
        src[f->added[i].id] = f->added[i].content;
        slen[f->added[i].id] = f->added[i].len;
        g->types[f->added[i].id] = f->added[i].special ||
                                   looks_special(f->added[i].content, f->added[i].len) ?
                                   TT_CONTROL : TT_USER;
    }
    for (uint32_t i = f->n_vocab; i-- > 0;) {
        const struct fmt_hftok_entry *e = &f->vocab[i];
        if (g->types[e->id] == TT_CONTROL || g->types[e->id] == TT_USER)
            continue;
        src[e->id] = e->s;
        slen[e->id] = e->len;
        g->types[e->id] = TT_NORMAL;
    }
    /* arena: a token grows at most 24 bytes ("[PAD{id}]"); U+2581 -> ' ' shrinks;
     * a merge part's ' ' (1 byte) becomes U+0120 (2 bytes) */
    size_t bytes = 1;
    for (uint32_t i = 0; i < n; i++)
        bytes += (src[i] ? slen[i] : 0) + 25;
    for (size_t k = 0; k < f->n_merges; k++)
        bytes += 2 * ((size_t)f->merges[k].la + f->merges[k].lb) + 2;
    if (!(g->arena = sb_malloc(bytes)))
        goto oom;
    char *o = g->arena;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        if (!src[i]) {
            len = (size_t)snprintf(o, 25, "[PAD%" PRIu32 "]", i);
            g->types[i] = TT_UNUSED;
        } else if (g->types[i] == TT_USER) { /* pre-normalised spaces, as llama.cpp's converter */
            len = put_replaced(o, src[i], slen[i], "\xE2\x96\x81", 3, " ", 1);
        } else {
            len = put_replaced(o, src[i], slen[i], "", 0, "", 0);
        }
        g->tokens[i] = o;
        g->lens[i] = len;
        o += len + 1;
    }
    for (size_t k = 0; k < f->n_merges; k++) {
        const struct fmt_hftok_merge *m = &f->merges[k];
        size_t la = put_replaced(o, m->a, m->la, " ", 1, "\xC4\xA0", 2);
        o[la] = ' ';
        size_t lb = put_replaced(o + la + 1, m->b, m->lb, " ", 1, "\xC4\xA0", 2);
        g->merges[k] = o;
        g->merge_lens[k] = la + 1 + lb;
        o += la + lb + 2;
    }
    g->n = n;
    g->n_merges = f->n_merges;
    sb_free(src);
    sb_free(slen);
    return SB_OK;
oom:
    sb_free(src);
    sb_free(slen);
    fmt_hftok_gpt2_release(g);
    return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
}

/* tokenizer_config.json's {key}: a string, or an object's "content" */
static const char *cfg_token(const cJSON *cfg, const char *key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(e))
        e = cJSON_GetObjectItemCaseSensitive(e, "content");
    return cJSON_IsString(e) && e->valuestring[0] ? e->valuestring : NULL;
}

static int64_t added_id(const struct fmt_hftok_file *f, const char *name, uint32_t n_vocab)
{
    for (uint32_t i = 0; name && i < f->n_added; i++)
        if (!strcmp(f->added[i].content, name))
            return n_vocab && (uint32_t)f->added[i].id >= n_vocab ? -1 : f->added[i].id;
    return -1;
}

static bool same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

int fmt_hftok_specials(struct fmt_hftok_specials *s, const struct fmt_hftok_file *f,
                       const char *cfg_text, size_t cfg_len, int64_t cfg_bos, int64_t cfg_eos,
                       uint32_t n_vocab)
{
    memset(s, 0, sizeof *s);
    s->bos = s->eos = s->unk = s->sep = s->pad = -1;
    s->add_bos = s->add_eos = -1;
    cJSON *cfg = cfg_text ? cJSON_ParseWithLength(cfg_text, cfg_len) : NULL;
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        cfg = NULL;
    }
    const char *bos = cfg_token(cfg, "bos_token"), *eos = cfg_token(cfg, "eos_token");
    const char *cls = cfg_token(cfg, "cls_token"), *sep = cfg_token(cfg, "sep_token");
    if (!bos)
        bos = cls;
    if (!eos)
        eos = sep;
    /* TemplateProcessing: a leading special token is added BOS, a trailing one EOS */
    if (f->bos_special) {
        if (!same(f->bos_special, bos) && !same(f->bos_special, cls) && !bos)
            bos = f->bos_special;
        s->add_bos = same(f->bos_special, bos) || same(f->bos_special, cls);
    }
    if (f->eos_special) {
        eos = f->eos_special;
        s->add_eos = 1;
    }
    s->bos = added_id(f, bos, n_vocab);
    s->eos = added_id(f, eos, n_vocab);
    s->unk = added_id(f, cfg_token(cfg, "unk_token"), n_vocab);
    s->sep = added_id(f, sep, n_vocab);
    s->pad = added_id(f, cfg_token(cfg, "pad_token"), n_vocab);
    if (s->unk < 0 && f->unk_token)              /* model.unk_token, among the vocab too */
        for (uint32_t i = 0; i < f->n_vocab && s->unk < 0; i++)
            if (!strcmp(f->vocab[i].s, f->unk_token))
                s->unk = f->vocab[i].id;
    /* config.json's ids for what is unset; then the template's own id, so that
     * a BOS the template names is never lost */
    if (s->bos < 0 && cfg_bos >= 0 && (!n_vocab || cfg_bos < n_vocab))
        s->bos = cfg_bos;
    if (s->eos < 0 && cfg_eos >= 0 && (!n_vocab || cfg_eos < n_vocab))
        s->eos = cfg_eos;
    if (s->bos < 0 && f->bos_special_id >= 0 && (!n_vocab || (uint32_t)f->bos_special_id < n_vocab))
        s->bos = f->bos_special_id;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(ab))
        s->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae))
        s->add_eos = cJSON_IsTrue(ae);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    int r = SB_OK;
    if (cJSON_IsString(ct) && !(s->chat_template = sb_strdup(ct->valuestring)))
        r = SB_ENOMEM;
    cJSON_Delete(cfg);
    return r;
}

/* ---- GGUF -> HF --------------------------------------------------------------- */

static void byte_level_pre(struct jb *b, cJSON *o, const char *k, bool use_regex)
{
    cJSON *bl = fmt_hj_typed(b, o, k, "ByteLevel");
    if (bl) {
        fmt_hj_bool(b, bl, "add_prefix_space", false);
        fmt_hj_bool(b, bl, "trim_offsets", true);
        fmt_hj_bool(b, bl, "use_regex", use_regex);
    }
}

static void pre_tokenizer(struct jb *b, cJSON *root, const char *pre, uint64_t n_merges)
{
    enum pre_family fam = family_of(pre);
    if (fam == PRE_LLAMA3 || fam == PRE_QWEN2) {
        cJSON *seq = fmt_hj_typed(b, root, "pre_tokenizer", "Sequence");
        cJSON *list = seq ? fmt_hj_arr(b, seq, "pretokenizers") : NULL;
        cJSON *sp = list ? fmt_hj_typed(b, list, NULL, "Split") : NULL;
        cJSON *pat = sp ? fmt_hj_obj(b, sp, "pattern") : NULL;
        if (pat)
            fmt_hj_str(b, pat, "Regex", fam == PRE_LLAMA3 ? RE_LLAMA3 : RE_QWEN2);
        if (sp) {
            fmt_hj_str(b, sp, "behavior", "Isolated");
            fmt_hj_bool(b, sp, "invert", false);
        }
        if (list)
            byte_level_pre(b, list, NULL, false);
        return;
    }
    /* "default" without merges: no split is as good as llama.cpp's; anything
     * else unknown is approximated by GPT-2's regex (fmt_hftok_pre_exact) */
    byte_level_pre(b, root, "pre_tokenizer", fam == PRE_GPT2 || n_merges > 0 ||
                                             !pre || strcmp(pre, "default"));
}

static void template_items(struct jb *b, cJSON *list, const char *bos, const char *eos,
                           const char *seq, int type_id)
{
    const char *ids[3] = { bos, seq, eos };
    for (int i = 0; i < 3; i++) {
        if (!ids[i])
            continue;
        cJSON *it = fmt_hj_obj(b, list, NULL);
        cJSON *x = it ? fmt_hj_obj(b, it, i == 1 ? "Sequence" : "SpecialToken") : NULL;
        if (x) {
            fmt_hj_str(b, x, "id", ids[i]);
            fmt_hj_num(b, x, "type_id", type_id);
        }
    }
}

static void special_entry(struct jb *b, cJSON *st, const char *name, int64_t id)
{
    cJSON *e = name ? fmt_hj_obj(b, st, name) : NULL;
    if (!e)
        return;
    fmt_hj_str(b, e, "id", name);
    cJSON *ids = fmt_hj_arr(b, e, "ids");
    if (ids)
        fmt_hj_num(b, ids, NULL, (double)id);
    cJSON *toks = fmt_hj_arr(b, e, "tokens");
    if (toks)
        fmt_hj_str(b, toks, NULL, name);
}

/* the TemplateProcessing that adds BOS / EOS as g says, or null */
static void post_processor(struct jb *b, cJSON *root, const struct fmt_hftok_gguf *g)
{
    const char *bos = g->add_bos > 0 && g->bos >= 0 ? g->tokens[g->bos] : NULL;
    const char *eos = g->add_eos > 0 && g->eos >= 0 ? g->tokens[g->eos] : NULL;
    if (!bos && !eos) {
        fmt_hj_null(b, root, "post_processor");
        return;
    }
    cJSON *tp = fmt_hj_typed(b, root, "post_processor", "TemplateProcessing");
    if (!tp)
        return;
    cJSON *single = fmt_hj_arr(b, tp, "single"), *pair = fmt_hj_arr(b, tp, "pair");
    if (single)
        template_items(b, single, bos, eos, "A", 0);
    if (pair) {
        template_items(b, pair, bos, eos, "A", 0);
        template_items(b, pair, bos, eos, "B", 1);
    }
    cJSON *st = fmt_hj_obj(b, tp, "special_tokens");
    if (st) {
        special_entry(b, st, bos, g->bos);
        if (!same(bos, eos))
            special_entry(b, st, eos, g->eos);
    }
}

/* token i is written as an added token (control, user-defined, unknown) */
static bool is_added(const struct fmt_hftok_gguf *g, uint64_t i)
{
    int32_t t = g->types ? g->types[i] : TT_NORMAL;
    return t == TT_CONTROL || t == TT_USER || t == TT_UNKNOWN;
}

/* an id the HF file had no token for: unused "[PAD{i}]" (llama.cpp's filler) */
static bool is_hole(const struct fmt_hftok_gguf *g, uint64_t i)
{
    char pad[32];
    int n = snprintf(pad, sizeof pad, "[PAD%" PRIu64 "]", i);
    return g->types && g->types[i] == TT_UNUSED && g->lens[i] == (uint64_t)n &&
           !memcmp(g->tokens[i], pad, (size_t)n);
}

static int check_gguf(const struct fmt_hftok_gguf *g, const char *what, struct sb_err *err)
{
    for (uint64_t i = 0; i < g->n; i++)
        if (memchr(g->tokens[i], 0, g->lens[i]) ||
            !fmt_hj_utf8_valid((const unsigned char *)g->tokens[i], g->lens[i]))
            return sb_err_set(err, SB_EUNSUPPORTED, "%s: token %" PRIu64 " is not UTF-8 text "
                              "(tokenizer.json cannot hold it)", what, i);
    for (uint64_t k = 0; k < g->n_merges; k++) {
        const char *sp = g->merge_lens[k] > 1 ? memchr(g->merges[k] + 1, ' ',
                                                       g->merge_lens[k] - 1) : NULL;
        if (!sp || memchr(g->merges[k], 0, g->merge_lens[k]) ||
            !fmt_hj_utf8_valid((const unsigned char *)g->merges[k], g->merge_lens[k]))
            return sb_err_set(err, SB_EFORMAT, "%s: tokenizer.ggml.merges[%" PRIu64 "] is not "
                              "two tokens", what, k);
    }
    const int64_t ids[5] = { g->bos, g->eos, g->unk, g->sep, g->pad };
    for (int i = 0; i < 5; i++)
        if (ids[i] >= (int64_t)g->n)
            return sb_err_set(err, SB_EFORMAT, "%s: special token id %" PRId64 " is past the "
                              "vocab (%" PRIu64 " tokens)", what, ids[i], g->n);
    return SB_OK;
}

static void model_obj(struct jb *b, cJSON *root, const struct fmt_hftok_gguf *g,
                      struct fmt_strset *seen)
{
    cJSON *model = fmt_hj_typed(b, root, "model", "BPE");
    if (!model)
        return;
    fmt_hj_null(b, model, "dropout");
    fmt_hj_null(b, model, "unk_token");
    fmt_hj_null(b, model, "continuing_subword_prefix");
    fmt_hj_null(b, model, "end_of_word_suffix");
    fmt_hj_bool(b, model, "fuse_unk", false);
    fmt_hj_bool(b, model, "byte_fallback", false);
    fmt_hj_bool(b, model, "ignore_merges", false);
    cJSON *vo = fmt_hj_obj(b, model, "vocab");
    for (uint64_t i = 0; vo && i < g->n && !b->bad; i++)
        if (!is_added(g, i) && !is_hole(g, i) && !fmt_strset_add(seen, g->tokens[i]))
            fmt_hj_num(b, vo, g->tokens[i], (double)i);   /* a string names one id: the first */
    cJSON *ml = fmt_hj_arr(b, model, "merges");
    for (uint64_t k = 0; ml && k < g->n_merges && !b->bad; k++) {
        /* split as llama.cpp does: at the first space after the first byte */
        const char *m = g->merges[k];
        const char *sp = memchr(m + 1, ' ', g->merge_lens[k] - 1);
        if (sp == strchr(m, ' ')) {
            fmt_hj_str(b, ml, NULL, m);
            continue;
        }
        cJSON *pr = fmt_hj_arr(b, ml, NULL);   /* "a" starts with a space: ["a", "b"] */
        char *a = sb_strndup(m, (size_t)(sp - m));
        if (!a)
            b->bad = true;
        else if (pr) {
            fmt_hj_str(b, pr, NULL, a);
            fmt_hj_str(b, pr, NULL, sp + 1);
        }
        sb_free(a);
    }
}

static char *config_text(const struct fmt_hftok_gguf *g, size_t *len, struct jb *b)
{
    cJSON *root = fmt_hj_obj(b, NULL, NULL);
    if (!root)
        return NULL;
    if (g->add_bos >= 0)
        fmt_hj_bool(b, root, "add_bos_token", g->add_bos > 0);
    if (g->add_eos >= 0)
        fmt_hj_bool(b, root, "add_eos_token", g->add_eos > 0);
    cJSON *ad = fmt_hj_obj(b, root, "added_tokens_decoder");
    for (uint64_t i = 0; ad && i < g->n; i++) {
        if (!is_added(g, i))
            continue;
        char key[24];
        snprintf(key, sizeof key, "%" PRIu64, i);
        cJSON *e = fmt_hj_obj(b, ad, key);
        if (e) {
            fmt_hj_str(b, e, "content", g->tokens[i]);
            fmt_hj_added_flags(b, e, g->types[i] != TT_USER);
        }
    }
    static const char *const keys[5] = { "bos_token", "eos_token", "unk_token", "sep_token",
                                         "pad_token" };
    const int64_t ids[5] = { g->bos, g->eos, g->unk, g->sep, g->pad };
    for (int i = 0; i < 5; i++)
        if (ids[i] >= 0)
            fmt_hj_str(b, root, keys[i], g->tokens[ids[i]]);
    if (g->chat_template)
        fmt_hj_str(b, root, "chat_template", g->chat_template);
    fmt_hj_bool(b, root, "clean_up_tokenization_spaces", false);
    fmt_hj_str(b, root, "tokenizer_class", "PreTrainedTokenizerFast");
    char *t = b->bad ? NULL : fmt_hj_text(root, len);
    cJSON_Delete(root);
    return t;
}

int fmt_hftok_gguf_json(const struct fmt_hftok_gguf *g, const char *what, char **json,
                        size_t *json_len, char **cfg, size_t *cfg_len, struct sb_err *err)
{
    *json = *cfg = NULL;
    *json_len = *cfg_len = 0;
    int r = check_gguf(g, what, err);
    if (r)
        return r;
    struct jb b = { false };
    struct fmt_strset seen = { 0 };
    cJSON *root = fmt_hj_obj(&b, NULL, NULL);
    if (root && fmt_strset_init(&seen, (size_t)g->n) != 0)
        b.bad = true;
    if (root && !b.bad) {
        fmt_hj_str(&b, root, "version", "1.0");
        fmt_hj_null(&b, root, "truncation");
        fmt_hj_null(&b, root, "padding");
        cJSON *added = fmt_hj_arr(&b, root, "added_tokens");
        for (uint64_t i = 0; added && i < g->n && !b.bad; i++) {
            if (!is_added(g, i))
                continue;
            cJSON *e = fmt_hj_obj(&b, added, NULL);
            if (!e)
                break;
            fmt_hj_num(&b, e, "id", (double)i);
            fmt_hj_str(&b, e, "content", g->tokens[i]);
            fmt_hj_added_flags(&b, e, g->types[i] != TT_USER);
        }
        fmt_hj_null(&b, root, "normalizer");
        pre_tokenizer(&b, root, g->pre, g->n_merges);
        post_processor(&b, root, g);
        /* (a ByteLevel decoder's options do not change what it decodes) */
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        byte_level_pre(&b, root, "decoder", !cJSON_IsFalse(
                                                cJSON_GetObjectItemCaseSensitive(pre, "use_regex")));
        model_obj(&b, root, g, &seen);
    }
    if (!b.bad && root)
        *json = fmt_hj_text(root, json_len);
    cJSON_Delete(root);
    fmt_strset_release(&seen);
    if (*json)
        *cfg = config_text(g, cfg_len, &b);
    if (!*json || !*cfg) {
        sb_free(*json);
        *json = NULL;
        return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
    }
    return SB_OK;
}

int fmt_vocab_write_hf(const struct fmt_vocab *v, const char *json_path, const char *cfg_path,
                       unsigned flags, struct sb_err *err)
{
    if (!v->hf_json)
        return sb_err_set(err, SB_EINVAL, "%s: the tokenizer has no tokenizer.json text",
                          json_path ? json_path : cfg_path);
    int r = !json_path ? SB_OK
                       : fmt_hftok_write_text(json_path, v->hf_json, v->hf_json_len ? v->hf_json_len
                                                                  : strlen(v->hf_json), flags, err);
    if (r == SB_OK && v->hf_config_json && cfg_path)
        r = fmt_hftok_write_text(cfg_path, v->hf_config_json,
                                 v->hf_config_json_len ? v->hf_config_json_len
                                                       : strlen(v->hf_config_json),
                                 flags, err);
    return r;
}
