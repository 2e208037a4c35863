/* fmt_hftok.c: SentencePiece-BPE vocab <-> Llama-style tokenizer.json; see
 * fmt_hftok.h for the layout and the merge rule. */
#include "fmt_hftok.h"
#include "fmt_hftok_impl.h"

#include "fmt_out.h"
#include "sb_alloc.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHAT "tokenizer.json"
#define MAX_ID FMT_HFTOK_MAX_ID
#define SPACE_MARK "\xE2\x96\x81"   /* U+2581 */

/* GGUF token types (formats.md §2.6) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- a string -> id map (open addressing over the caller's strings) ------ */

struct idmap {
    uint32_t mask;
    int32_t *slots;               /* id or -1 */
    char *const *keys;            /* keys[id], NUL-terminated */
};

static uint32_t hash_str(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int idmap_init(struct idmap *m, char *const *keys, uint32_t n)
{
    uint32_t cap = 16;
    while (cap < 2 * (uint64_t)n + 1)
        cap *= 2;
    m->mask = cap - 1;
    m->keys = keys;
    m->slots = sb_malloc((size_t)cap * sizeof *m->slots);
    if (!m->slots)
        return SB_ENOMEM;
    memset(m->slots, 0xFF, (size_t)cap * sizeof *m->slots);
    return SB_OK;
}

static int32_t idmap_get(const struct idmap *m, const char *s, size_t n)
{
    for (uint32_t h = hash_str(s, n) & m->mask;; h = (h + 1) & m->mask) {
        int32_t id = m->slots[h];
        if (id < 0)
            return -1;
        if (strlen(m->keys[id]) == n && memcmp(m->keys[id], s, n) == 0)
            return id;
    }
}

/* Insert id under keys[id]; an equal key already there keeps its id. */
static void idmap_put(struct idmap *m, int32_t id)
{
    const char *s = m->keys[id];
    size_t n = strlen(s);
    for (uint32_t h = hash_str(s, n) & m->mask;; h = (h + 1) & m->mask) {
        int32_t o = m->slots[h];
        if (o < 0) {
            m->slots[h] = id;
            return;
        }
        if (strcmp(m->keys[o], s) == 0)
            return;
    }
}

/* ---- pieces -------------------------------------------------------------- */

static bool is_byte_piece(const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    return n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && s[3] &&
           s[4] && strchr(hex, s[3]) && strchr(hex, s[4]);
}

bool fmt_hj_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 2, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < k)
            return false;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

/* Piece i in tokenizer.json spelling: ' ' -> U+2581, "\n<s>\n" -> "<s>",
 * "\n</s>\n" -> "</s>" (llama2.c tokenizer.bin). sb_malloc'd, NULL on OOM. */
static char *json_piece(const struct fmt_vocab *v, uint32_t i)
{
    const char *s = v->tokens[i] ? v->tokens[i] : "";
    size_t n = v->lens ? v->lens[i] : strlen(s);
    if (n == 5 && !memcmp(s, "\n<s>\n", 5))
        return sb_strndup("<s>", 3);
    if (n == 6 && !memcmp(s, "\n</s>\n", 6))
        return sb_strndup("</s>", 4);
    size_t spaces = 0;
    for (size_t k = 0; k < n; k++)
        spaces += s[k] == ' ';
    char *o = sb_malloc(n + 2 * spaces + 1);
    if (!o)
        return NULL;
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] == ' ') {
            memcpy(o + m, SPACE_MARK, 3);
            m += 3;
        } else {
            o[m++] = s[k];
        }
    }
    o[m] = '\0';
    return o;
}

static int find_named(char *const *pieces, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(pieces[i], name))
            return (int)i;
    return -1;
}

static int pick_id(int given, uint32_t n, int found)
{
    return given >= 0 && (uint32_t)given < n ? given : found;
}

/* What the SentencePiece encoder of verify/ makes of each id (vfy_tok_spm.c):
 * byte fallback tokens, control / unknown / unused tokens (never merged), the rest. */
enum { ROLE_NORMAL, ROLE_BYTE, ROLE_SPECIAL };

struct spm_view {
    uint32_t n;
    char **piece;                 /* [n] json spelling, owned */
    uint8_t *role;                /* [n] */
    int bos, eos, unk;
};

static void view_release(struct spm_view *w)
{
    if (w->piece)
        for (uint32_t i = 0; i < w->n; i++)
            sb_free(w->piece[i]);
    sb_free(w->piece);
    sb_free(w->role);
    memset(w, 0, sizeof *w);
}

static int view_init(struct spm_view *w, const struct fmt_vocab *v, struct sb_err *err)
{
    memset(w, 0, sizeof *w);
    if (!v || v->kind != FMT_VOCAB_SPM || !v->tokens || !v->n_tokens)
        return sb_err_set(err, SB_EINVAL, WHAT ": no SentencePiece vocab to write");
    uint32_t n = v->n_tokens;
    w->piece = sb_calloc(n, sizeof *w->piece);
    w->role = sb_calloc(n, sizeof *w->role);
    if (!w->piece || !w->role)
        goto oom;
    w->n = n;
    for (uint32_t i = 0; i < n; i++) {
        if (!(w->piece[i] = json_piece(v, i)))
            goto oom;
        if (!fmt_hj_utf8_valid((const unsigned char *)w->piece[i], strlen(w->piece[i]))) {
            view_release(w);
            return sb_err_set(err, SB_EUNSUPPORTED, WHAT ": token %" PRIu32 " is not valid "
                              "UTF-8, which JSON cannot hold", i);
        }
    }
    w->bos = pick_id(v->bos_id, n, find_named(w->piece, n, "<s>"));
    w->eos = pick_id(v->eos_id, n, find_named(w->piece, n, "</s>"));
    w->unk = pick_id(v->unk_id, n, find_named(w->piece, n, "<unk>"));
    for (uint32_t i = 0; i < n; i++) {
        int type = v->types ? v->types[i] : TT_NORMAL;
        const char *p = w->piece[i];
        if (is_byte_piece(p, strlen(p)) && (type == TT_BYTE || type == TT_NORMAL))
            w->role[i] = ROLE_BYTE;
        else if (type == TT_CONTROL || type == TT_UNKNOWN || type == TT_UNUSED ||
                 type == TT_BYTE || (int)i == w->bos || (int)i == w->eos || (int)i == w->unk)
            w->role[i] = ROLE_SPECIAL;
        else
            w->role[i] = ROLE_NORMAL;
    }
    return SB_OK;
oom:
    view_release(w);
    return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
}

/* ---- merges -------------------------------------------------------------- */

struct merge { float score; int32_t m, l, r; };

static int cmp_merge(const void *pa, const void *pb)
{
    const struct merge *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->m != b->m)
        return a->m < b->m ? -1 : 1;
    if (a->l != b->l)
        return a->l < b->l ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

/* Every (l, r) of normal pieces whose concatenation is a normal piece, ranked. */
static int derive_merges(const struct spm_view *w, const struct fmt_vocab *v,
                         struct merge **out, size_t *n_out)
{
    struct idmap map;
    struct merge *mg = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *n_out = 0;
    if (idmap_init(&map, w->piece, w->n))
        return SB_ENOMEM;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->role[i] == ROLE_NORMAL && w->piece[i][0])
            idmap_put(&map, (int32_t)i);
    for (uint32_t i = 0; i < w->n; i++) {
        const char *p = w->piece[i];
        size_t len = strlen(p);
        if (w->role[i] != ROLE_NORMAL || len < 2 || idmap_get(&map, p, len) != (int32_t)i)
            continue;              /* a later duplicate is never a merge result */
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80)
                continue;          /* inside a codepoint */
            int32_t l = idmap_get(&map, p, k), r = idmap_get(&map, p + k, len - k);
            if (l < 0 || r < 0)
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 1024;
                struct merge *g = sb_realloc(mg, nc * sizeof *g);
                if (!g) {
                    sb_free(mg);
                    sb_free(map.slots);
                    return SB_ENOMEM;
                }
                mg = g;
                cap = nc;
            }
            /* no scores: rank by id, as the extractor does without them */
            mg[n].score = v->scores ? v->scores[i] : -(float)i;
            mg[n].m = (int32_t)i;
            mg[n].l = l;
            mg[n].r = r;
            n++;
        }
    }
    sb_free(map.slots);
    if (n)
        qsort(mg, n, sizeof *mg, cmp_merge);
    *out = mg;
    *n_out = n;
    return SB_OK;
}

/* ---- writing ------------------------------------------------------------- */

/* cJSON builders that remember a failed allocation (fmt_hftok_impl.h) */

cJSON *fmt_hj_add(struct jb *b, cJSON *parent, const char *key, cJSON *item)
{
    if (!item) {
        b->bad = true;
        return NULL;
    }
    if (!parent)
        return item;
    if (!(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        b->bad = true;
        return NULL;
    }
    return item;
}

cJSON *fmt_hj_str(struct jb *b, cJSON *o, const char *k, const char *s)
{
    return fmt_hj_add(b, o, k, cJSON_CreateString(s));
}

cJSON *fmt_hj_num(struct jb *b, cJSON *o, const char *k, double x)
{
    return fmt_hj_add(b, o, k, cJSON_CreateNumber(x));
}

cJSON *fmt_hj_bool(struct jb *b, cJSON *o, const char *k, bool x)
{
    return fmt_hj_add(b, o, k, cJSON_CreateBool(x));
}

cJSON *fmt_hj_null(struct jb *b, cJSON *o, const char *k)
{
    return fmt_hj_add(b, o, k, cJSON_CreateNull());
}

cJSON *fmt_hj_obj(struct jb *b, cJSON *o, const char *k)
{
    return fmt_hj_add(b, o, k, cJSON_CreateObject());
}

cJSON *fmt_hj_arr(struct jb *b, cJSON *o, const char *k)
{
    return fmt_hj_add(b, o, k, cJSON_CreateArray());
}

/* {"type": type} added to o (under k, or to the array o) */
cJSON *fmt_hj_typed(struct jb *b, cJSON *o, const char *k, const char *type)
{
    cJSON *x = fmt_hj_obj(b, o, k);
    if (x)
        fmt_hj_str(b, x, "type", type);
    return x;
}

/* the flags of an added token (tokenizer.json and added_tokens_decoder) */
void fmt_hj_added_flags(struct jb *b, cJSON *e, bool special)
{
    fmt_hj_bool(b, e, "single_word", false);
    fmt_hj_bool(b, e, "lstrip", false);
    fmt_hj_bool(b, e, "rstrip", false);
    fmt_hj_bool(b, e, "normalized", false);
    fmt_hj_bool(b, e, "special", special);
}

static void string_pattern(struct jb *b, cJSON *o, const char *s)
{
    cJSON *p = fmt_hj_obj(b, o, "pattern");
    if (p)
        fmt_hj_str(b, p, "String", s);
}

char *fmt_hj_text(cJSON *root, size_t *len)
{
    char *s = cJSON_Print(root);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *o = sb_malloc(n + 2);
    if (o) {
        memcpy(o, s, n);
        o[n++] = '\n';
        o[n] = '\0';
        *len = n;
    }
    cJSON_free(s);
    return o;
}

static int build_json(const struct spm_view *w, const struct fmt_vocab *v, cJSON *root,
                      struct sb_err *err)
{
    struct jb b = { false };
    struct merge *mg = NULL;
    size_t n_mg = 0;
    if (derive_merges(w, v, &mg, &n_mg))
        return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    fmt_hj_str(&b, root, "version", "1.0");
    fmt_hj_null(&b, root, "truncation");
    fmt_hj_null(&b, root, "padding");

    cJSON *added = fmt_hj_arr(&b, root, "added_tokens");
    for (uint32_t i = 0; added && i < w->n; i++) {
        if (w->role[i] != ROLE_SPECIAL || !w->piece[i][0])
            continue;
        cJSON *e = fmt_hj_obj(&b, added, NULL);
        if (!e)
            break;
        fmt_hj_num(&b, e, "id", i);
        fmt_hj_str(&b, e, "content", w->piece[i]);
        fmt_hj_added_flags(&b, e, true);
    }

    /* "▁" + text, spaces as "▁" (Llama-2's tokenizer.json; newer files say the
     * same with a Metaspace pre-tokenizer) */
    cJSON *norm = fmt_hj_typed(&b, root, "normalizer", "Sequence");
    cJSON *nl = norm ? fmt_hj_arr(&b, norm, "normalizers") : NULL;
    if (nl) {
        cJSON *p = fmt_hj_typed(&b, nl, NULL, "Prepend");
        if (p)
            fmt_hj_str(&b, p, "prepend", SPACE_MARK);
        cJSON *r = fmt_hj_typed(&b, nl, NULL, "Replace");
        if (r) {
            string_pattern(&b, r, " ");
            fmt_hj_str(&b, r, "content", SPACE_MARK);
        }
    }
    fmt_hj_null(&b, root, "pre_tokenizer");

    /* BOS before each sequence when the vocab adds one */
    cJSON *pp = fmt_hj_typed(&b, root, "post_processor", "TemplateProcessing");
    bool with_bos = v->add_bos && w->bos >= 0;
    const char *bos = with_bos ? w->piece[w->bos] : NULL;
    for (int pair = 0; pp && pair < 2; pair++) {
        cJSON *seq = fmt_hj_arr(&b, pp, pair ? "pair" : "single");
        for (int part = 0; seq && part <= pair; part++) {
            if (with_bos) {
                cJSON *st = fmt_hj_obj(&b, fmt_hj_obj(&b, seq, NULL), "SpecialToken");
                if (st) {
                    fmt_hj_str(&b, st, "id", bos);
                    fmt_hj_num(&b, st, "type_id", part);
                }
            }
            cJSON *sq = fmt_hj_obj(&b, fmt_hj_obj(&b, seq, NULL), "Sequence");
            if (sq) {
                fmt_hj_str(&b, sq, "id", part ? "B" : "A");
                fmt_hj_num(&b, sq, "type_id", part);
            }
        }
    }
    cJSON *sp = pp ? fmt_hj_obj(&b, pp, "special_tokens") : NULL;
    if (sp && with_bos) {
        cJSON *e = fmt_hj_obj(&b, sp, bos);
        if (e) {
            fmt_hj_str(&b, e, "id", bos);
            cJSON *ids = fmt_hj_arr(&b, e, "ids");
            if (ids)
                fmt_hj_num(&b, ids, NULL, w->bos);
            cJSON *toks = fmt_hj_arr(&b, e, "tokens");
            if (toks)
                fmt_hj_str(&b, toks, NULL, bos);
        }
    }

    cJSON *dec = fmt_hj_typed(&b, root, "decoder", "Sequence");
    cJSON *dl = dec ? fmt_hj_arr(&b, dec, "decoders") : NULL;
    if (dl) {
        cJSON *r = fmt_hj_typed(&b, dl, NULL, "Replace");
        if (r) {
            string_pattern(&b, r, SPACE_MARK);
            fmt_hj_str(&b, r, "content", " ");
        }
        fmt_hj_typed(&b, dl, NULL, "ByteFallback");
        fmt_hj_typed(&b, dl, NULL, "Fuse");
        cJSON *s = fmt_hj_typed(&b, dl, NULL, "Strip");
        if (s) {
            fmt_hj_str(&b, s, "content", " ");
            fmt_hj_num(&b, s, "start", 1);
            fmt_hj_num(&b, s, "stop", 0);
        }
    }

    cJSON *model = fmt_hj_typed(&b, root, "model", "BPE");
    if (model) {
        fmt_hj_null(&b, model, "dropout");
        if (w->unk >= 0)
            fmt_hj_str(&b, model, "unk_token", w->piece[w->unk]);
        else
            fmt_hj_null(&b, model, "unk_token");
        fmt_hj_null(&b, model, "continuing_subword_prefix");
        fmt_hj_null(&b, model, "end_of_word_suffix");
        fmt_hj_bool(&b, model, "fuse_unk", true);
        fmt_hj_bool(&b, model, "byte_fallback", true);
        fmt_hj_bool(&b, model, "ignore_merges", false);
        cJSON *vo = fmt_hj_obj(&b, model, "vocab");
        struct idmap seen;
        if (vo && idmap_init(&seen, w->piece, w->n) == SB_OK) {
            for (uint32_t i = 0; i < w->n && !b.bad; i++) {
                const char *p = w->piece[i];
                if (!p[0] || idmap_get(&seen, p, strlen(p)) >= 0)
                    continue;      /* a piece names one id: the first */
                idmap_put(&seen, (int32_t)i);
                fmt_hj_num(&b, vo, p, i);
            }
            sb_free(seen.slots);
        } else {
            b.bad = true;
        }
        cJSON *ml = fmt_hj_arr(&b, model, "merges");
        char *buf = NULL;
        size_t cap = 0;
        for (size_t k = 0; ml && k < n_mg && !b.bad; k++) {
            const char *l = w->piece[mg[k].l], *r = w->piece[mg[k].r];
            size_t ll = strlen(l), lr = strlen(r);
            if (ll + lr + 2 > cap) {
                cap = 2 * (ll + lr + 2);
                sb_free(buf);
                if (!(buf = sb_malloc(cap))) {
                    b.bad = true;
                    break;
                }
            }
            /* pieces never hold ' ' (it is U+2581 here), so "l r" is unambiguous */
            memcpy(buf, l, ll);
            buf[ll] = ' ';
            memcpy(buf + ll + 1, r, lr + 1);
            fmt_hj_str(&b, ml, NULL, buf);
        }
        sb_free(buf);
    }
    sb_free(mg);
    if (b.bad)
        return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    return SB_OK;
}

int fmt_hftok_json(const struct fmt_vocab *v, char **text, size_t *len, struct sb_err *err)
{
    struct spm_view w;
    *text = NULL;
    *len = 0;
    int r = view_init(&w, v, err);
    cJSON *root = r ? NULL : cJSON_CreateObject();
    if (!r && !root)
        r = sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    if (!r)
        r = build_json(&w, v, root, err);
    if (!r && !(*text = fmt_hj_text(root, len)))
        r = sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    cJSON_Delete(root);
    view_release(&w);
    return r;
}

int fmt_hftok_write_text(const char *path, const char *text, size_t len, unsigned flags,
                      struct sb_err *err)
{
    struct fmt_out out;
    int r = fmt_out_open(&out, path, flags, err);
    if (r)
        return r;
    if ((r = fmt_out_write(&out, text, len, err))) {
        fmt_out_abort(&out);
        return r;
    }
    return fmt_out_commit(&out, err);
}

int fmt_hftok_write_json(const struct fmt_vocab *v, const char *path, unsigned flags,
                         struct sb_err *err)
{
    char *text;
    size_t len;
    int r = fmt_hftok_json(v, &text, &len, err);
    if (r)
        return r;
    r = fmt_hftok_write_text(path, text, len, flags, err);
    sb_free(text);
    return r;
}

int fmt_hftok_write_config(const struct fmt_vocab *v, const char *path, unsigned flags,
                           struct sb_err *err)
{
    struct spm_view w;
    struct jb b = { false };
    int r = view_init(&w, v, err);
    if (r)
        return r;
    cJSON *root = fmt_hj_obj(&b, NULL, NULL);
    if (root) {
        fmt_hj_bool(&b, root, "add_bos_token", v->add_bos);
        fmt_hj_bool(&b, root, "add_eos_token", false);
        cJSON *ad = fmt_hj_obj(&b, root, "added_tokens_decoder");
        for (uint32_t i = 0; ad && i < w.n; i++) {
            if (w.role[i] != ROLE_SPECIAL || !w.piece[i][0])
                continue;
            char key[16];
            snprintf(key, sizeof key, "%" PRIu32, i);
            cJSON *e = fmt_hj_obj(&b, ad, key);
            if (e) {
                fmt_hj_str(&b, e, "content", w.piece[i]);
                fmt_hj_added_flags(&b, e, true);
            }
        }
        if (w.bos >= 0)
            fmt_hj_str(&b, root, "bos_token", w.piece[w.bos]);
        fmt_hj_bool(&b, root, "clean_up_tokenization_spaces", false);
        if (w.eos >= 0)
            fmt_hj_str(&b, root, "eos_token", w.piece[w.eos]);
        /* tokenizer.json puts "▁" before every text between special tokens, as
         * the legacy Llama tokenizer does */
        fmt_hj_bool(&b, root, "legacy", true);
        fmt_hj_null(&b, root, "pad_token");
        fmt_hj_obj(&b, root, "sp_model_kwargs");
        fmt_hj_str(&b, root, "tokenizer_class", "LlamaTokenizerFast");
        if (w.unk >= 0)
            fmt_hj_str(&b, root, "unk_token", w.piece[w.unk]);
    }
    char *text = NULL;
    size_t len = 0;
    if (b.bad || !(text = fmt_hj_text(root, &len)))
        r = sb_err_set(err, SB_ENOMEM, "%s: out of memory", path);
    else
        r = fmt_hftok_write_text(path, text, len, flags, err);
    sb_free(text);
    cJSON_Delete(root);
    view_release(&w);
    return r;
}

/* ---- reading: tokenizer.json, parsed once ----------------------------------- */

/* o itself when its "type" is type, else the member of its list (a Sequence,
 * searched depth first) that is */
const cJSON *fmt_hj_find_typed(const cJSON *o, const char *list, const char *type)
{
    if (!cJSON_IsObject(o))
        return NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (cJSON_IsString(t) && !strcmp(t->valuestring, type))
        return o;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, list)) {
        const cJSON *f = fmt_hj_find_typed(e, list, type);
        if (f)
            return f;
    }
    return NULL;
}

/* x is a tokenizer.json token id: an integer in [0, FMT_HFTOK_MAX_ID) */
static bool json_id(const cJSON *x, int32_t *id)
{
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= FMT_HFTOK_MAX_ID ||
        x->valuedouble != (double)(int32_t)x->valuedouble)
        return false;
    *id = (int32_t)x->valuedouble;
    return true;
}

static bool json_bool(const cJSON *o, const char *k, bool dflt)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : dflt;
}

/* Strings of the file, copied one after another into one arena. */
struct arena {
    char *p;
    size_t n, cap;
};

static const char *arena_add(struct arena *a, const char *s, size_t n)
{
    char *o = a->p + a->n;   /* cap was counted beforehand: always fits */
    memcpy(o, s, n);
    o[n] = '\0';
    a->n += n + 1;
    return o;
}

/* A merge: "a b" (split at the first space) or ["a", "b"]; k its index. */
static int merge_parts(const cJSON *m, int k, const char **a, size_t *la, const char **b,
                       size_t *lb, struct sb_err *err)
{
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        if (!sp)
            return sb_err_set(err, SB_EFORMAT, WHAT ": merge %d '%s' is not two tokens", k,
                              m->valuestring);
        *a = m->valuestring;
        *la = (size_t)(sp - *a);
        *b = sp + 1;
        *lb = strlen(*b);
        return SB_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
        cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        *a = cJSON_GetArrayItem(m, 0)->valuestring;
        *b = cJSON_GetArrayItem(m, 1)->valuestring;
        *la = strlen(*a);
        *lb = strlen(*b);
        return SB_OK;
    }
    return sb_err_set(err, SB_EFORMAT, WHAT ": merge %d is neither \"a b\" nor [a, b]", k);
}

static void kind_of(struct fmt_hftok_file *f, const cJSON *root, const cJSON *model)
{
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *bl = fmt_hj_find_typed(pre, "pretokenizers", "ByteLevel");
    f->byte_fallback = json_bool(model, "byte_fallback", false);
    if (bl || fmt_hj_find_typed(dec, "decoders", "ByteLevel")) {
        f->kind = FMT_HFTOK_BYTE_LEVEL;
        f->bl_pre = bl != NULL;
        f->bl_use_regex = bl ? json_bool(bl, "use_regex", true) : false;
        f->bl_prefix_space = bl ? json_bool(bl, "add_prefix_space", true) : false;
        const cJSON *split = fmt_hj_find_typed(pre, "pretokenizers", "Split");
        if (split) {
            const cJSON *re = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
            f->has_split = true;
            f->split_regex = cJSON_IsString(re) ? re->valuestring : NULL;   /* arena'd later */
        }
    } else if (f->byte_fallback || fmt_hj_find_typed(pre, "pretokenizers", "Metaspace") ||
               fmt_hj_find_typed(norm, "normalizers", "Prepend") ||
               fmt_hj_find_typed(norm, "normalizers", "Replace")) {
        f->kind = FMT_HFTOK_SPM;
    } else {
        f->kind = FMT_HFTOK_OTHER;
    }
}

/* The post-processor's EOS: the last item of TemplateProcessing single when
 * single has more than one item and it is a SpecialToken (gguf-py's rule) */
static const char *eos_special(const cJSON *root)
{
    const cJSON *tp = fmt_hj_find_typed(cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                                        "processors", "TemplateProcessing");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(tp, "single");
    int n = cJSON_GetArraySize(single);
    const cJSON *stid = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken"), "id");
    return n > 1 && cJSON_IsString(stid) ? stid->valuestring : NULL;
}

/* The post-processor's BOS: TemplateProcessing single[0].SpecialToken.id, and
 * its special_tokens[id].ids[0] */
static const char *bos_special(const cJSON *root, int32_t *id)
{
    const cJSON *tp = fmt_hj_find_typed(cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                                 "processors", "TemplateProcessing");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tp, "single"), 0);
    const cJSON *stid = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    *id = -1;
    if (!cJSON_IsString(stid))
        return NULL;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tp, "special_tokens"),
                                         stid->valuestring),
        "ids");
    if (!json_id(cJSON_GetArrayItem(ids, 0), id))
        *id = -1;
    return stid->valuestring;
}

static int parse(struct fmt_hftok_file *f, const cJSON *root, struct sb_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *e;
    if (!cJSON_IsObject(model))
        return sb_err_set(err, SB_EFORMAT, WHAT ": no 'model' object");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "BPE") != 0)
        return sb_err_set(err, SB_EUNSUPPORTED, WHAT ": model type '%s' is not supported "
                          "(only BPE)", mt->valuestring);
    if (!cJSON_IsObject(vocab))
        return sb_err_set(err, SB_EFORMAT, WHAT ": 'model.vocab' is not an object");
    if (merges && !cJSON_IsArray(merges))
        return sb_err_set(err, SB_EFORMAT, WHAT ": 'model.merges' is not an array");
    if (added && !cJSON_IsArray(added))
        return sb_err_set(err, SB_EFORMAT, WHAT ": 'added_tokens' is not an array");
    /* count, check ids, size the arena */
    int32_t id;
    size_t bytes = 0, nv = 0, na = 0, nm = 0;
    f->max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (!json_id(e, &id))
            return sb_err_set(err, SB_EFORMAT, WHAT ": vocab entry '%s' has a bad id", e->string);
        f->max_id = id > f->max_id ? id : f->max_id;
        bytes += strlen(e->string) + 1;
        nv++;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !cJSON_IsString(c))
            return sb_err_set(err, SB_EFORMAT, WHAT ": an added token has no id or content");
        f->max_id = id > f->max_id ? id : f->max_id;
        bytes += strlen(c->valuestring) + 1;
        na++;
    }
    if (f->max_id < 0)
        return sb_err_set(err, SB_EFORMAT, WHAT ": empty vocab");
    /* an id is a row of the embedding, and a converted vocabulary fills every
       hole below the largest with a [PADi] token: ids far past the number of
       tokens are refused (a fuzzed file with one added token at id 2^26 - 1
       made 67 M of them and took 2 GB) */
    if ((uint64_t)f->max_id + 1 > 2 * (uint64_t)(nv + na) + FMT_HFTOK_HOLES)
        return sb_err_set(err, SB_EFORMAT,
                          WHAT ": ids run to %" PRId32 " for %zu tokens (holes past %d are refused)",
                          f->max_id, nv + na, FMT_HFTOK_HOLES);
    int k = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        int r = merge_parts(e, k++, &a, &la, &b, &lb, err);
        if (r)
            return r;
        bytes += la + lb + 2;
        nm++;
    }
    kind_of(f, root, model);
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *bos = bos_special(root, &f->bos_special_id);
    const char *eos = eos_special(root);
    bytes += (eos ? strlen(eos) + 1 : 0) + (f->split_regex ? strlen(f->split_regex) + 1 : 0) +
             (cJSON_IsString(unk) ? strlen(unk->valuestring) + 1 : 0) +
             (bos ? strlen(bos) + 1 : 0);
    struct arena ar = { sb_malloc(bytes ? bytes : 1), 0, bytes };
    f->arena = ar.p;
    f->vocab = sb_calloc(nv ? nv : 1, sizeof *f->vocab);
    f->added = sb_calloc(na ? na : 1, sizeof *f->added);
    f->merges = sb_calloc(nm ? nm : 1, sizeof *f->merges);
    if (!ar.p || !f->vocab || !f->added || !f->merges)
        return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    cJSON_ArrayForEach(e, vocab) {
        struct fmt_hftok_entry *v = &f->vocab[f->n_vocab++];
        v->len = (uint32_t)strlen(e->string);
        v->s = arena_add(&ar, e->string, v->len);
        json_id(e, &v->id);
    }
    cJSON_ArrayForEach(e, added) {
        struct fmt_hftok_added *a = &f->added[f->n_added++];
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        a->len = (uint32_t)strlen(c);
        a->content = arena_add(&ar, c, a->len);
        json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &a->id);
        a->special = json_bool(e, "special", false);
    }
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        merge_parts(e, 0, &a, &la, &b, &lb, NULL);
        struct fmt_hftok_merge *m = &f->merges[f->n_merges++];
        m->a = arena_add(&ar, a, la);
        m->b = arena_add(&ar, b, lb);
        m->la = (uint32_t)la;
        m->lb = (uint32_t)lb;
    }
    if (f->split_regex)
        f->split_regex = arena_add(&ar, f->split_regex, strlen(f->split_regex));
    if (cJSON_IsString(unk))
        f->unk_token = arena_add(&ar, unk->valuestring, strlen(unk->valuestring));
    if (bos)
        f->bos_special = arena_add(&ar, bos, strlen(bos));
    if (eos)
        f->eos_special = arena_add(&ar, eos, strlen(eos));
    return SB_OK;
}

int fmt_hftok_parse(struct fmt_hftok_file **out, const char *json, size_t len,
                    struct sb_err *err)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return sb_err_set(err, SB_EFORMAT, WHAT ": not valid JSON");
    struct fmt_hftok_file *f = sb_calloc(1, sizeof *f);
    int r = f ? parse(f, root, err) : sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
    cJSON_Delete(root);
    if (r != SB_OK) {
        fmt_hftok_file_free(f);
        return r;
    }
    *out = f;
    return SB_OK;
}

void fmt_hftok_file_free(struct fmt_hftok_file *f)
{
    if (!f)
        return;
    sb_free(f->arena);
    sb_free(f->vocab);
    sb_free(f->added);
    sb_free(f->merges);
    sb_free(f);
}

int fmt_vocab_hftok(const struct fmt_vocab *v, const struct fmt_hftok_file **f,
                    struct fmt_hftok_file **tmp, struct sb_err *err)
{
    *tmp = NULL;
    *f = v->hf;
    if (v->hf)
        return SB_OK;
    if (!v->hf_json)
        return sb_err_set(err, SB_EFORMAT, WHAT ": no tokenizer text");
    int r = fmt_hftok_parse(tmp, v->hf_json, v->hf_json_len ? v->hf_json_len : strlen(v->hf_json),
                            err);
    *f = *tmp;
    return r;
}

static int to_spm(struct fmt_vocab *v, const struct fmt_hftok_file *f, uint32_t min_tokens,
                  struct sb_err *err)
{
    if (f->kind == FMT_HFTOK_BYTE_LEVEL)
        return sb_err_set(err, SB_EUNSUPPORTED, WHAT ": a byte-level BPE, not "
                          "SentencePiece-style");
    if (f->kind != FMT_HFTOK_SPM)
        return sb_err_set(err, SB_EUNSUPPORTED, WHAT ": not a SentencePiece-style BPE");
    uint32_t n = (uint32_t)f->max_id + 1;
    if (n < min_tokens && min_tokens <= MAX_ID)
        n = min_tokens;
    v->kind = FMT_VOCAB_SPM;
    v->tokens = sb_calloc(n, sizeof *v->tokens);
    v->lens = sb_calloc(n, sizeof *v->lens);
    v->scores = sb_calloc(n, sizeof *v->scores);
    v->types = sb_calloc(n, sizeof *v->types);
    bool *scored = sb_calloc(n, sizeof *scored);
    struct idmap map = { 0 };
    char *buf = NULL;
    if (!v->tokens || !v->lens || !v->scores || !v->types || !scored)
        goto oom;
    v->n_tokens = n;
    for (uint32_t i = 0; i < f->n_vocab; i++) {
        const struct fmt_hftok_entry *e = &f->vocab[i];
        if (!v->tokens[e->id]) {
            if (!(v->tokens[e->id] = sb_strdup(e->s)))
                goto oom;
            v->types[e->id] = TT_NORMAL;
        }
    }
    for (uint32_t i = 0; i < f->n_added; i++) {
        const struct fmt_hftok_added *a = &f->added[i];
        if (!v->tokens[a->id] && !(v->tokens[a->id] = sb_strdup(a->content)))
            goto oom;
        v->types[a->id] = a->special ? TT_CONTROL : TT_USER;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!v->tokens[i]) {
            char name[32];
            snprintf(name, sizeof name, "[PAD%" PRIu32 "]", i);
            if (!(v->tokens[i] = sb_strdup(name)))
                goto oom;
            v->types[i] = TT_UNUSED;
        }
        v->lens[i] = (uint32_t)strlen(v->tokens[i]);
        if (v->lens[i] > v->max_token_len)
            v->max_token_len = v->lens[i];
        if (v->types[i] == TT_NORMAL && is_byte_piece(v->tokens[i], v->lens[i]))
            v->types[i] = TT_BYTE;
    }
    if (idmap_init(&map, v->tokens, n))
        goto oom;
    for (uint32_t i = 0; i < n; i++)
        idmap_put(&map, (int32_t)i);

    v->unk_id = f->unk_token ? idmap_get(&map, f->unk_token, strlen(f->unk_token)) : -1;
    if (v->unk_id >= 0)
        v->types[v->unk_id] = TT_UNKNOWN;
    v->bos_id = idmap_get(&map, "<s>", 3);
    v->eos_id = idmap_get(&map, "</s>", 4);
    if (f->bos_special) {
        int32_t id = f->bos_special_id;
        if (id < 0 || (uint32_t)id >= n)
            id = idmap_get(&map, f->bos_special, strlen(f->bos_special));
        if (id >= 0) {
            v->bos_id = id;
            v->add_bos = true;
        }
    }

    /* scores: the merge order (see fmt_hftok.h) */
    size_t cap = 2 * (size_t)v->max_token_len + 2, rank = 0;
    if (!(buf = sb_malloc(cap)))
        goto oom;
    for (size_t k = 0; k < f->n_merges; k++, rank++) {
        const struct fmt_hftok_merge *e = &f->merges[k];
        if ((size_t)e->la + e->lb >= cap)
            continue;
        memcpy(buf, e->a, e->la);
        memcpy(buf + e->la, e->b, e->lb);
        int32_t m = idmap_get(&map, buf, (size_t)e->la + e->lb);
        if (m >= 0 && !scored[m] && idmap_get(&map, e->a, e->la) >= 0 &&
            idmap_get(&map, e->b, e->lb) >= 0) {
            v->scores[m] = 0.0f - (float)rank;   /* no -0 */
            scored[m] = true;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        if (!scored[i])
            v->scores[i] = v->types[i] == TT_NORMAL || v->types[i] == TT_USER
                               ? -(float)(rank + i) : 0.0f;
    sb_free(buf);
    sb_free(scored);
    sb_free(map.slots);
    return SB_OK;
oom:
    sb_free(buf);
    sb_free(scored);
    sb_free(map.slots);
    return sb_err_set(err, SB_ENOMEM, WHAT ": out of memory");
}

int fmt_hftok_file_to_spm(struct fmt_vocab *out, const struct fmt_hftok_file *f,
                          uint32_t min_tokens, struct sb_err *err)
{
    fmt_vocab_release(out);
    out->bos_id = out->eos_id = out->unk_id = -1;
    int r = to_spm(out, f, min_tokens, err);
    if (r) {
        fmt_vocab_release(out);
        out->bos_id = out->eos_id = out->unk_id = -1;
    }
    return r;
}

int fmt_hftok_to_spm(struct fmt_vocab *out, const char *json, size_t len, uint32_t min_tokens,
                     struct sb_err *err)
{
    struct fmt_hftok_file *f;
    fmt_vocab_release(out);
    out->bos_id = out->eos_id = out->unk_id = -1;
    int r = fmt_hftok_parse(&f, json, len, err);
    if (r == SB_OK)
        r = fmt_hftok_file_to_spm(out, f, min_tokens, err);
    fmt_hftok_file_free(f);
    return r;
}
