/* vfy_tok_bpe.c: Hugging Face tokenizer.json BPE (model.type "BPE"), two flavours:
 *
 *  - byte-level (pre_tokenizer or decoder "ByteLevel"; GPT-2, Llama 3, Qwen, tinymoe):
 *    added tokens are cut out of the text first (leftmost-longest), the rest is
 *    split by the GPT-2 regex (ByteLevel use_regex) or by a Split pre-tokenizer's
 *    regex: the Llama-3 and Qwen2 patterns are matched exactly, any other is
 *    approximated by GPT-2's,
 *    each piece's bytes become the bytes-to-unicode symbols, and merges apply by rank.
 *  - SentencePiece-style (Llama 1/2 tokenizer.json: '▁' normalizer or Metaspace,
 *    byte_fallback): text is "▁" + text with ' ' as '▁', one symbol per codepoint,
 *    <0xXX> byte fallback, merges by rank.
 *
 * The GPT-2 regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * is matched by hand. Classes: ASCII exact; non-ASCII whitespace is Unicode
 * White_Space; \p{N} is a table of the common digit / number ranges; punctuation,
 * symbols, combining marks, emoji and private use (Latin-1 punctuation, U+2000-2BFF,
 * U+2E00-2E7F, U+3000-303F, fullwidth punctuation, U+1F000-1FAFF, ...) are "other";
 * every other codepoint >= 0x80 counts as a letter. Invalid UTF-8 bytes are "other",
 * one byte each. Normalizers other than the '▁' ones are ignored. */
#include "vfy_tok_impl.h"

#include "fmt_hftok.h"
#include "sb_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define WHAT "tokenizer.json"
#define MAX_ID FMT_HFTOK_MAX_ID

/* ---- the bytes-to-unicode map of GPT-2 ----------------------------------- */

static void byte_to_cp(uint32_t cp[256])
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = keep ? b : 256 + n++;
    }
}

static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    } else if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    } else if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- codepoint classes for the GPT-2 split ------------------------------- */

enum { C_SPACE, C_L, C_N, C_O };

static bool in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i][0] && c <= r[i][1])
            return true;
    return false;
}

static int cp_class(uint32_t c)
{
    static const uint32_t ws[][2] = { { 0x85, 0x85 }, { 0xA0, 0xA0 }, { 0x1680, 0x1680 },
        { 0x2000, 0x200A }, { 0x2028, 0x2029 }, { 0x202F, 0x202F }, { 0x205F, 0x205F },
        { 0x3000, 0x3000 } };
    static const uint32_t num[][2] = { { 0xB2, 0xB3 }, { 0xB9, 0xB9 }, { 0xBC, 0xBE },
        { 0x660, 0x669 }, { 0x6F0, 0x6F9 }, { 0x7C0, 0x7C9 }, { 0x966, 0x96F },
        { 0x9E6, 0x9EF }, { 0xA66, 0xA6F }, { 0xE50, 0xE59 }, { 0x2070, 0x2070 },
        { 0x2074, 0x2079 }, { 0x2080, 0x2089 }, { 0x2150, 0x2189 }, { 0x2460, 0x249B },
        { 0x24EA, 0x24FF }, { 0x2776, 0x2793 }, { 0x3007, 0x3007 }, { 0x3021, 0x3029 },
        { 0xFF10, 0xFF19 } };
    static const uint32_t other[][2] = { { 0x80, 0xA9 }, { 0xAB, 0xB4 }, { 0xB6, 0xB9 },
        { 0xBB, 0xBF }, { 0xD7, 0xD7 }, { 0xF7, 0xF7 }, { 0x2C2, 0x2C5 }, { 0x2D2, 0x2DF },
        { 0x300, 0x36F }, { 0x37E, 0x37E }, { 0x387, 0x387 }, { 0x55A, 0x55F },
        { 0x589, 0x58A }, { 0x5BE, 0x5BE }, { 0x5C0, 0x5C0 }, { 0x5F3, 0x5F4 },
        { 0x60C, 0x60D }, { 0x61B, 0x61F }, { 0x66A, 0x66D }, { 0x6D4, 0x6D4 },
        { 0x964, 0x965 }, { 0xE3F, 0xE3F }, { 0x2000, 0x2BFF }, { 0x2E00, 0x2E7F },
        { 0x3000, 0x3004 }, { 0x3008, 0x3020 }, { 0x3030, 0x303F }, { 0xE000, 0xF8FF },
        { 0xFE00, 0xFE0F }, { 0xFE30, 0xFE6F }, { 0xFF00, 0xFF0F }, { 0xFF1A, 0xFF20 },
        { 0xFF3B, 0xFF40 }, { 0xFF5B, 0xFF65 }, { 0xFFF0, 0xFFFF }, { 0x1F000, 0x1FAFF } };
    if (c < 0x80) {
        if (c == ' ' || (c >= 9 && c <= 13))
            return C_SPACE;
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            return C_L;
        if (c >= '0' && c <= '9')
            return C_N;
        return C_O;
    }
    if (in_ranges(c, ws, sizeof ws / sizeof ws[0]))
        return C_SPACE;
    if (in_ranges(c, num, sizeof num / sizeof num[0]))
        return C_N;
    if (in_ranges(c, other, sizeof other / sizeof other[0]))
        return C_O;
    return C_L;
}

/* class and byte length of the character at s */
static int char_at(const unsigned char *s, size_t n, size_t *k)
{
    uint32_t c;
    *k = vfy_utf8_next(s, n, &c);
    if (!*k) {
        *k = 1;
        return C_O;
    }
    return cp_class(c);
}

/* Byte length of the GPT-2 pre-token starting at s[0] (n > 0). */
size_t vfy_tok_gpt2_next(const unsigned char *s, size_t n)
{
    if (s[0] == '\'' && n >= 2) {
        unsigned char a = s[1], b = n >= 3 ? s[2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    size_t p = s[0] == ' ' ? 1 : 0, k;
    if (p < n) {
        int c = char_at(s + p, n - p, &k);
        if (c != C_SPACE) {          /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` */
            size_t e = p + k;
            while (e < n && char_at(s + e, n - e, &k) == c)
                e += k;
            return e;
        }
    }
    /* \s+(?!\S) then \s+: a whitespace run; before a non-space, leave its last
     * character to start the next pre-token, unless the run is one character. */
    size_t e = 0, last = 0;
    while (e < n && char_at(s + e, n - e, &k) == C_SPACE) {
        last = e;
        e += k;
    }
    if (e == 0)                      /* cannot happen: s[0] is some class */
        return 1;
    if (e < n && last > 0)
        return last;
    return e;
}

/* Byte length of the Llama-3 / Qwen2 pre-token at s[0] (n > 0), ndig = 3 or 1:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,ndig}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
size_t vfy_tok_llama3_next(const unsigned char *s, size_t n, int ndig)
{
    if (s[0] == '\'' && n >= 2) {
        unsigned char a = s[1] | 0x20, b = n >= 3 ? s[2] | 0x20 : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    size_t k0, k, e;
    int c0 = char_at(s, n, &k0);
    size_t p = c0 == C_L ? 0 : k0;       /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0 == C_L || (s[0] != '\r' && s[0] != '\n' && c0 != C_N && p < n &&
                      char_at(s + p, n - p, &k) == C_L)) {
        for (e = p; e < n && char_at(s + e, n - e, &k) == C_L;)
            e += k;
        return e;
    }
    if (c0 == C_N) {
        e = k0;
        for (int d = 1; d < ndig && e < n && char_at(s + e, n - e, &k) == C_N; d++)
            e += k;
        return e;
    }
    p = s[0] == ' ' ? 1 : 0;             /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (p < n && char_at(s + p, n - p, &k) == C_O) {
        for (e = p; e < n && char_at(s + e, n - e, &k) == C_O;)
            e += k;
        while (e < n && (s[e] == '\r' || s[e] == '\n'))
            e++;
        return e;
    }
    size_t last = 0, nl = 0;             /* \s*[\r\n]+, then as GPT-2 */
    for (e = 0; e < n && char_at(s + e, n - e, &k) == C_SPACE;) {
        if (s[e] == '\r' || s[e] == '\n')
            nl = e + 1;
        last = e;
        e += k;
    }
    if (nl)
        return nl;
    if (e == 0)
        return 1;
    if (e < n && last > 0)
        return last;
    return e;
}

/* ---- building ------------------------------------------------------------ */

static int32_t find_added(const struct vfy_tok *t, const char *s)
{
    for (uint32_t i = 0; i < t->n_added; i++) {
        int32_t id = t->added[i];
        if (t->key[id] && strcmp(t->key[id], s) == 0)
            return id;
    }
    return -1;
}

static int pairmap_init(struct vfy_pairmap *p, uint32_t n)
{
    uint32_t cap = 16;
    while (cap < (uint64_t)n * 2 && cap < (1u << 30))
        cap <<= 1;
    p->keys = sb_calloc(cap, sizeof *p->keys);
    p->rank = sb_malloc((size_t)cap * sizeof *p->rank);
    p->merged = sb_malloc((size_t)cap * sizeof *p->merged);
    if (!p->keys || !p->rank || !p->merged)
        return SB_ENOMEM;
    p->mask = cap - 1;
    return SB_OK;
}

static uint32_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static void pairmap_put(struct vfy_pairmap *p, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t i = pair_hash(k) & p->mask;; i = (i + 1) & p->mask) {
        if (p->keys[i] == k)
            return;                 /* a repeated merge keeps its first rank */
        if (!p->keys[i]) {
            p->keys[i] = k;
            p->rank[i] = rank;
            p->merged[i] = merged;
            return;
        }
    }
}

static bool pairmap_get(const struct vfy_pairmap *p, int32_t a, int32_t b, int32_t *rank,
                        int32_t *merged)
{
    if (!p->keys)
        return false;
    uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t i = pair_hash(k) & p->mask;; i = (i + 1) & p->mask) {
        if (!p->keys[i])
            return false;
        if (p->keys[i] == k) {
            *rank = p->rank[i];
            *merged = p->merged[i];
            return true;
        }
    }
}

static int add_merges(struct vfy_tok *t, const struct fmt_hftok_file *f)
{
    if (pairmap_init(&t->pairs, (uint32_t)(f->n_merges > 0 ? f->n_merges : 1)))
        return SB_ENOMEM;
    char *buf = sb_malloc(2 * (size_t)t->max_key + 2);
    if (!buf)
        return SB_ENOMEM;
    for (size_t rank = 0; rank < f->n_merges; rank++) {
        const struct fmt_hftok_merge *mg = &f->merges[rank];
        const size_t la = mg->la, lb = mg->lb;
        int32_t ia = vfy_strmap_get(&t->map, t, mg->a, la), ib = vfy_strmap_get(&t->map, t, mg->b, lb);
        int32_t im = -1;
        if (ia >= 0 && ib >= 0 && la + lb <= t->max_key) {
            memcpy(buf, mg->a, la);
            memcpy(buf + la, mg->b, lb);
            im = vfy_strmap_get(&t->map, t, buf, la + lb);
        }
        if (im >= 0)                 /* merges of unknown tokens are dropped */
            pairmap_put(&t->pairs, ia, ib, (int32_t)rank, im);
    }
    sb_free(buf);
    return SB_OK;
}

/* decode strings: byte-level (inverse bytes-to-unicode) or '▁'/<0xXX> */
static int set_decoded(struct vfy_tok *t, const uint32_t b2c[256])
{
    int16_t inv[324 + 1];
    for (int i = 0; i <= 324; i++)
        inv[i] = -1;
    for (int b = 0; b < 256; b++)
        inv[b2c[b]] = (int16_t)b;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (t->dec[id] || !t->key[id])
            continue;
        const unsigned char *s = (const unsigned char *)t->key[id];
        size_t n = t->key_len[id], o = 0;
        char *d = sb_malloc(n + 1);
        if (!d)
            return SB_ENOMEM;
        for (size_t i = 0; i < n;) {
            uint32_t c;
            size_t k = vfy_utf8_next(s + i, n - i, &c);
            if (!k) {
                d[o++] = (char)s[i++];
                continue;
            }
            if (t->kind == VFY_TOK_HF_BYTE && c <= 324 && inv[c] >= 0) {
                d[o++] = (char)inv[c];
            } else if (t->kind == VFY_TOK_HF_SPM && c == 0x2581) {
                d[o++] = ' ';
            } else {
                memcpy(d + o, s + i, k);
                o += k;
            }
            i += k;
        }
        d[o] = '\0';
        t->dec[id] = d;
        t->dec_len[id] = (uint32_t)o;
    }
    return SB_OK;
}

static int hf_build(struct vfy_tok *t, const struct fmt_hftok_file *f, const struct fmt_vocab *v,
                    struct sb_err *err)
{
    if (f->kind == FMT_HFTOK_BYTE_LEVEL) {
        t->kind = VFY_TOK_HF_BYTE;
        t->hf_regex = f->bl_use_regex;
        t->hf_prefix_space = f->bl_prefix_space;
        if (f->has_split) {
            t->hf_regex = true;     /* an unknown regex is approximated by GPT-2's */
            if (f->split_regex && strstr(f->split_regex, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"))
                t->hf_digits = strstr(f->split_regex, "\\p{N}{1,3}") ? 3 : 1;
        }
    } else if (f->kind == FMT_HFTOK_SPM) {
        t->kind = VFY_TOK_HF_SPM;
        t->strip_after_bos = true;
    } else {
        return sb_err_set(err, SB_EUNSUPPORTED, WHAT ": neither a byte-level nor a "
                          "SentencePiece-style BPE");
    }

    if (vfy_tok_alloc_ids(t, (uint32_t)f->max_id + 1) || vfy_strmap_init(&t->map, t->n_vocab))
        return SB_ENOMEM;
    for (uint32_t i = 0; i < t->n_vocab; i++)
        t->flags[i] = VFY_TF_CONTROL | VFY_TF_NOMERGE;     /* holes until filled */
    for (uint32_t i = 0; i < f->n_vocab; i++) {
        const struct fmt_hftok_entry *e = &f->vocab[i];
        if (t->key[e->id])
            continue;               /* two strings for one id: keep the first */
        if (!(t->key[e->id] = sb_strndup(e->s, e->len)))
            return SB_ENOMEM;
        t->key_len[e->id] = e->len;
        if (e->len > t->max_key)
            t->max_key = e->len;
        t->flags[e->id] = 0;
        vfy_strmap_put(&t->map, t, e->id);
    }
    t->added = sb_calloc((size_t)f->n_added + 1, sizeof *t->added);
    if (!t->added)
        return SB_ENOMEM;
    for (uint32_t i = 0; i < f->n_added; i++) {
        const struct fmt_hftok_added *a = &f->added[i];
        const int32_t id = a->id;
        if (!t->key[id]) {
            if (!(t->key[id] = sb_strndup(a->content, a->len)))
                return SB_ENOMEM;
            t->key_len[id] = a->len;
        }
        /* an added token's text is literal, not byte-level: decode it as is */
        sb_free(t->dec[id]);
        if (!(t->dec[id] = sb_strndup(a->content, a->len)))
            return SB_ENOMEM;
        t->dec_len[id] = a->len;
        t->flags[id] = VFY_TF_NOMERGE | (a->special ? VFY_TF_CONTROL : 0);
        if (a->len)
            t->added[t->n_added++] = id;
    }

    /* byte symbols */
    uint32_t b2c[256];
    byte_to_cp(b2c);
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = t->kind == VFY_TOK_HF_BYTE ? put_utf8(s, b2c[b])
                                              : (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_id[b] = vfy_strmap_get(&t->map, t, s, n);
        if (t->byte_id[b] >= 0 && t->kind == VFY_TOK_HF_SPM) {
            int32_t bid = t->byte_id[b];
            sb_free(t->dec[bid]);
            if (!(t->dec[bid] = sb_malloc(1)))
                return SB_ENOMEM;
            t->dec[bid][0] = (char)b;
            t->dec_len[bid] = 1;
            t->flags[bid] |= VFY_TF_BYTE;
        }
        if (t->byte_id[b] < 0 && t->kind == VFY_TOK_HF_BYTE)
            return sb_err_set(err, SB_EFORMAT, WHAT ": byte-level vocab has no token for "
                              "byte 0x%02x", b);
    }
    if (t->kind == VFY_TOK_HF_SPM && !f->byte_fallback)
        for (int b = 0; b < 256; b++)
            t->byte_id[b] = -1;
    int rc = set_decoded(t, b2c);
    if (rc)
        return rc;
    if (f->n_merges && (rc = add_merges(t, f)))
        return rc;
    if (t->kind == VFY_TOK_HF_SPM)
        vfy_tok_check_words(t, "\xE2\x96\x81", 3);

    /* special ids: the caller's config first, then the post-processor, then names */
    if (f->unk_token) {
        t->unk = vfy_strmap_get(&t->map, t, f->unk_token, strlen(f->unk_token));
        if (t->unk < 0)
            t->unk = find_added(t, f->unk_token);
    }
    if (f->bos_special) {
        int32_t id = f->bos_special_id;
        if (id < 0 || (uint32_t)id >= t->n_vocab)
            id = find_added(t, f->bos_special);
        t->bos = id;
    }
    static const char *const bos_names[] = { "<s>", "<|begin_of_text|>", "<|startoftext|>" };
    static const char *const eos_names[] = { "</s>", "<|end_of_text|>", "<|endoftext|>",
                                             "<|im_end|>", "<|eot_id|>" };
    for (size_t i = 0; t->bos < 0 && i < sizeof bos_names / sizeof *bos_names; i++)
        t->bos = find_added(t, bos_names[i]);
    for (size_t i = 0; t->eos < 0 && i < sizeof eos_names / sizeof *eos_names; i++)
        t->eos = find_added(t, eos_names[i]);
    if (v->bos_id >= 0 && (uint32_t)v->bos_id < t->n_vocab)
        t->bos = v->bos_id;
    if (v->eos_id >= 0 && (uint32_t)v->eos_id < t->n_vocab)
        t->eos = v->eos_id;
    if (v->unk_id >= 0 && (uint32_t)v->unk_id < t->n_vocab)
        t->unk = v->unk_id;
    if (t->bos >= 0)
        t->flags[t->bos] |= VFY_TF_CONTROL | VFY_TF_NOMERGE;
    if (v->no_bos)   /* still a control token, never added */
        t->bos = -1;
    if (t->eos >= 0)
        t->flags[t->eos] |= VFY_TF_CONTROL | VFY_TF_NOMERGE;
    return SB_OK;
}

int vfy_tok_hf_build(struct vfy_tok *t, const struct fmt_vocab *v, struct sb_err *err)
{
    const struct fmt_hftok_file *f;
    struct fmt_hftok_file *tmp;
    int rc = fmt_vocab_hftok(v, &f, &tmp, err);
    if (rc == SB_OK)
        rc = hf_build(t, f, v, err);
    fmt_hftok_file_free(tmp);
    if (rc == SB_ENOMEM)
        sb_err_set(err, rc, "out of memory building the tokenizer");
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static bool hf_pair(const struct vfy_tok *t, int32_t a, int32_t b, double *prio, int32_t *merged)
{
    int32_t rank;
    if (!pairmap_get(&t->pairs, a, b, &rank, merged))
        return false;
    *prio = -(double)rank;
    return true;
}

/* byte-level: one pre-token's bytes as symbols, merged */
static int bpe_word(const struct vfy_tok *t, struct vfy_merge *m, const unsigned char *s,
                    size_t n, bool prefix, struct vfy_ids *out)
{
    size_t first = out->n, kept;
    int rc;
    if ((rc = vfy_ids_reserve(out, n + 1)))
        return rc;
    if (prefix)
        out->v[out->n++] = t->byte_id[' '];
    for (size_t i = 0; i < n; i++)
        out->v[out->n++] = t->byte_id[s[i]];
    if (!t->pairs.keys)
        return SB_OK;
    if ((rc = vfy_merge_run(m, t, hf_pair, out->v + first, out->n - first, &kept)))
        return rc;
    out->n = first + kept;
    return SB_OK;
}

static int hf_byte_chunk(const struct vfy_tok *t, struct vfy_merge *m, const unsigned char *s,
                         size_t n, struct vfy_ids *out)
{
    bool prefix = t->hf_prefix_space && s[0] != ' ';
    if (!t->hf_regex)
        return bpe_word(t, m, s, n, prefix, out);
    unsigned char *buf = NULL;
    if (prefix) {                   /* split " " + s, as ByteLevel does */
        if (!(buf = sb_malloc(n + 1)))
            return SB_ENOMEM;
        buf[0] = ' ';
        memcpy(buf + 1, s, n);
        s = buf;
        n++;
    }
    int rc = SB_OK;
    while (n && !rc) {
        size_t k = t->hf_digits ? vfy_tok_llama3_next(s, n, t->hf_digits)
                                : vfy_tok_gpt2_next(s, n);
        rc = bpe_word(t, m, s, k, false, out);
        s += k, n -= k;
    }
    sb_free(buf);
    return rc;
}

static int hf_spm_chunk(const struct vfy_tok *t, struct vfy_merge *m, const unsigned char *s,
                        size_t n, struct vfy_ids *out, struct sb_err *err)
{
    /* normalized text: "▁" + s with every ' ' as '▁' */
    if (n > (SIZE_MAX - 3) / 3)
        return SB_ENOMEM;
    unsigned char *norm = sb_malloc(3 * n + 3);
    if (!norm)
        return SB_ENOMEM;
    size_t nn = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == 0 || s[i - 1] == ' ') {
            memcpy(norm + nn, "\xE2\x96\x81", 3);
            nn += 3;
        }
        if (i < n && s[i] != ' ')
            norm[nn++] = s[i];
    }
    size_t first = out->n, kept;
    int rc = vfy_ids_reserve(out, nn);
    for (size_t i = 0; !rc && i < nn;) {
        uint32_t cp;
        size_t k = vfy_utf8_next(norm + i, nn - i, &cp);
        int32_t id = k ? vfy_strmap_get(&t->map, t, (const char *)norm + i, k) : -1;
        if (id >= 0 && !(t->flags[id] & VFY_TF_NOMERGE)) {
            rc = vfy_ids_push(out, id);
        } else if (t->byte_id[norm[i]] >= 0) {
            for (size_t j = 0; !rc && j < (k ? k : 1); j++)
                rc = vfy_ids_push(out, t->byte_id[norm[i + j]]);
        } else if (t->unk >= 0) {
            rc = vfy_ids_push(out, t->unk);      /* one unknown per character */
        } else {
            rc = sb_err_set(err, SB_EUNSUPPORTED, WHAT ": no token for byte 0x%02x and no "
                            "unknown token", norm[i]);
        }
        i += k ? k : 1;
    }
    sb_free(norm);
    int32_t sp = vfy_strmap_get(&t->map, t, "\xE2\x96\x81", 3);
    if (!rc)
        rc = vfy_merge_words(m, t, hf_pair, sp, out->v + first, out->n - first, &kept);
    if (!rc)
        out->n = first + kept;
    return rc;
}

/* the added token starting at s (leftmost-longest), or -1 */
static int32_t added_at(const struct vfy_tok *t, const char *s, size_t n, size_t *len)
{
    int32_t best = -1;
    *len = 0;
    for (uint32_t i = 0; i < t->n_added; i++) {
        int32_t id = t->added[i];
        size_t k = t->key_len[id];
        if (k > *len && k <= n && t->key[id][0] == s[0] && memcmp(t->key[id], s, k) == 0) {
            best = id;
            *len = k;
        }
    }
    return best;
}

int vfy_tok_hf_encode(const struct vfy_tok *t, const char *text, size_t len,
                      struct vfy_ids *out, struct sb_err *err)
{
    struct vfy_merge m = { 0 };
    int rc = SB_OK;
    size_t start = 0, i = 0;
    while (i <= len) {
        size_t alen = 0;
        int32_t aid = i < len && t->n_added ? added_at(t, text + i, len - i, &alen) : -1;
        if (aid < 0 && i < len) {
            i++;
            continue;
        }
        if (i > start) {
            const unsigned char *s = (const unsigned char *)text + start;
            rc = t->kind == VFY_TOK_HF_BYTE ? hf_byte_chunk(t, &m, s, i - start, out)
                                            : hf_spm_chunk(t, &m, s, i - start, out, err);
            if (rc)
                break;
        }
        if (aid < 0)
            break;                  /* i == len */
        if ((rc = vfy_ids_push(out, aid)))
            break;
        i += alen;
        start = i;
    }
    vfy_merge_release(&m);
    return rc;
}
