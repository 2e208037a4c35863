/* test_tok.c: the tokenizers on small vocabs built in memory.
 * Golden values: hand-derived merge sequences (commented at each case), GPT-2
 * pre-token splits from Python's `regex` module running the GPT-2 pattern, and a
 * naive transcription of llama2.c run.c encode() as the oracle for random texts. */
#include <check.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_hftok.h"
#include "sb_alloc.h"
#include "test_util.h"
#include "vfy_tok.h"
#include "vfy_tok_impl.h"

/* ---- a SentencePiece vocab built by hand ---------------------------------- */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

static void vocab_add(struct fmt_vocab *v, const char *piece, float score, int type)
{
    uint32_t i = v->n_tokens++;
    v->tokens = sb_realloc(v->tokens, v->n_tokens * sizeof *v->tokens);
    v->lens = sb_realloc(v->lens, v->n_tokens * sizeof *v->lens);
    v->scores = sb_realloc(v->scores, v->n_tokens * sizeof *v->scores);
    v->types = sb_realloc(v->types, v->n_tokens * sizeof *v->types);
    ck_assert(v->tokens && v->lens && v->scores && v->types);
    v->tokens[i] = sb_strdup(piece);
    v->lens[i] = (uint32_t)strlen(piece);
    v->scores[i] = score;
    v->types[i] = type;
}

/* ids 0..2 specials, 3..258 bytes (id = byte + 3), then pieces from 259 on.
 * sp: the space spelling, "▁" (GGUF) or " " (tokenizer.bin). */
static void spm_base(struct fmt_vocab *v, const char *sp, bool l2c_specials)
{
    memset(v, 0, sizeof *v);
    v->kind = FMT_VOCAB_SPM;
    v->bos_id = v->eos_id = v->unk_id = -1;
    vocab_add(v, "<unk>", 0, TT_UNKNOWN);
    vocab_add(v, l2c_specials ? "\n<s>\n" : "<s>", 0, TT_CONTROL);
    vocab_add(v, l2c_specials ? "\n</s>\n" : "</s>", 0, TT_CONTROL);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        vocab_add(v, s, 0, TT_BYTE);
    }
    vocab_add(v, sp, -100, TT_NORMAL);        /* 259 */
}

/* 259 ▁, 260 a, 261 b, 262 c, 263 ab(-1), 264 ba(-1), 265 bc(0), 266 abc(-2),
 * 267 ▁a(-5), 268 ü(-50) */
static void spm_small(struct fmt_vocab *v, const char *sp, bool l2c)
{
    char s[16];
    spm_base(v, sp, l2c);
    vocab_add(v, "a", -100, TT_NORMAL);
    vocab_add(v, "b", -100, TT_NORMAL);
    vocab_add(v, "c", -100, TT_NORMAL);
    vocab_add(v, "ab", -1, TT_NORMAL);
    vocab_add(v, "ba", -1, TT_NORMAL);
    vocab_add(v, "bc", 0, TT_NORMAL);
    vocab_add(v, "abc", -2, TT_NORMAL);
    snprintf(s, sizeof s, "%sa", sp);
    vocab_add(v, s, -5, TT_NORMAL);
    vocab_add(v, "\xC3\xBC", -50, TT_NORMAL);
}

static struct vfy_tok *tok_from(struct fmt_vocab *v)
{
    struct vfy_tok *t = NULL;
    struct sb_err err = { 0 };
    int rc = vfy_tok_new(&t, v, &err);
    ck_assert_msg(rc == SB_OK, "vfy_tok_new: %s", err.msg);
    return t;
}

static void check_encode(const struct vfy_tok *t, const char *text, size_t len, bool bos,
                         const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n;
    struct sb_err err = { 0 };
    ck_assert_int_eq(vfy_tok_encode(t, text, len, bos, &ids, &n, &err), SB_OK);
    ck_assert_ptr_nonnull(ids);
    ck_assert_uint_eq(n, n_want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "'%.*s': id %zu is %d, want %d", (int)len, text, i,
                      ids[i], want[i]);
    sb_free(ids);
}
#define CHECK_ENC(t, s, bos, ...)                                                           \
    do {                                                                                    \
        static const int32_t w_[] = { __VA_ARGS__ };                                        \
        check_encode(t, s, strlen(s), bos, w_, sizeof w_ / sizeof w_[0]);                   \
    } while (0)

/* all of ids decoded one after the other, prev = the id before */
static size_t decode_all(const struct vfy_tok *t, const int32_t *ids, size_t n, char *out,
                         size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        size_t k = vfy_tok_decode(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
        ck_assert_uint_le(k, vfy_tok_max_piece_len(t));
        ck_assert_uint_le(o + k, cap);
        memcpy(out + o, buf, k);
        o += k;
    }
    return o;
}

START_TEST(test_spm_merges)
{
    struct fmt_vocab v;
    spm_small(&v, "\xE2\x96\x81", false);
    struct vfy_tok *t = tok_from(&v);
    ck_assert_int_eq(vfy_tok_bos(t), 1);
    ck_assert_int_eq(vfy_tok_eos(t), 2);
    ck_assert_uint_eq(vfy_tok_n_vocab(t), 269);
    /* " aba": pairs ▁a -5, ab -1 (left), ba -1 (right): the leftmost tie wins -> [▁ ab a];
     * rightmost would give [▁ a ba] -> [▁a ba]. */
    CHECK_ENC(t, "aba", false, 259, 263, 260);
    /* " abc": bc 0 beats ab -1 -> [▁ a bc] -> abc -2 -> [▁ abc]; left-to-right would
     * give [▁a bc] or [▁ ab c]. */
    CHECK_ENC(t, "abc", true, 1, 259, 266);
    /* " a": ▁a */
    CHECK_ENC(t, "a", false, 267);
    /* "ü" is a piece (2 bytes, one codepoint); "é" is not: bytes C3 A9 -> ids +3 */
    CHECK_ENC(t, "\xC3\xBC\xC3\xA9", false, 259, 268, 0xC3 + 3, 0xA9 + 3);
    /* invalid UTF-8 */
    CHECK_ENC(t, "\xff\xfe", false, 259, 0xff + 3, 0xfe + 3);
    CHECK_ENC(t, "a\x80", false, 267, 0x80 + 3);
    CHECK_ENC(t, "\xC3", false, 259, 0xC3 + 3);             /* truncated sequence */
    CHECK_ENC(t, "\xE0\x80\xAF", false, 259, 0xE0 + 3, 0x80 + 3, 0xAF + 3);   /* overlong */
    /* NUL is a byte like any other */
    check_encode(t, "a\0b", 3, false, (const int32_t[]){ 267, 3, 261 }, 3);
    /* empty text: no dummy prefix */
    check_encode(t, "", 0, false, NULL, 0);
    check_encode(t, "", 0, true, (const int32_t[]){ 1 }, 1);
    vfy_tok_free(t);
    fmt_vocab_release(&v);
}
END_TEST

START_TEST(test_spm_decode)
{
    struct fmt_vocab v;
    spm_small(&v, "\xE2\x96\x81", false);
    struct vfy_tok *t = tok_from(&v);
    char buf[16];
    ck_assert_uint_eq(vfy_tok_decode(t, 1, 267, buf, sizeof buf), 1);   /* ▁a after BOS */
    ck_assert_int_eq(buf[0], 'a');
    ck_assert_uint_eq(vfy_tok_decode(t, 260, 267, buf, sizeof buf), 2); /* elsewhere */
    ck_assert_mem_eq(buf, " a", 2);
    ck_assert_uint_eq(vfy_tok_decode(t, 1, 0x20 + 3, buf, sizeof buf), 1); /* <0x20> keeps it */
    ck_assert_int_eq(buf[0], ' ');
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 0xff + 3, buf, sizeof buf), 1);
    ck_assert_int_eq((unsigned char)buf[0], 0xff);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 1, buf, sizeof buf), 0);    /* BOS, EOS */
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 2, buf, sizeof buf), 0);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 269, buf, sizeof buf), 0);  /* out of range */
    ck_assert_uint_eq(vfy_tok_decode(t, -1, -7, buf, sizeof buf), 0);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 266, buf, 2), 2);           /* cap respected */
    ck_assert_mem_eq(buf, "ab", 2);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 268, buf, sizeof buf), 2);
    ck_assert_mem_eq(buf, "\xC3\xBC", 2);
    /* round trip of random bytes, invalid UTF-8 included: BOS + encode, then decode */
    uint64_t st = 42;
    for (int r = 0; r < 200; r++) {
        char text[64], out[1024];
        size_t len = test_rand_u64(&st) % 40;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = test_rand_u64(&st);
            text[i] = x % 3 ? "abc \xC3\xBC"[x % 6] : (char)(x >> 8);
        }
        int32_t *ids;
        size_t n;
        struct sb_err err = { 0 };
        ck_assert_int_eq(vfy_tok_encode(t, text, len, true, &ids, &n, &err), SB_OK);
        size_t o = decode_all(t, ids, n, out, sizeof out);
        ck_assert_uint_eq(o, len);
        ck_assert_mem_eq(out, text, len);
        sb_free(ids);
    }
    vfy_tok_free(t);
    fmt_vocab_release(&v);
}
END_TEST

/* tokenizer.bin spelling (' ', "\n<s>\n", no types) gives the GGUF spelling's ids */
START_TEST(test_spm_l2c_spelling)
{
    struct fmt_vocab g, l;
    spm_small(&g, "\xE2\x96\x81", false);
    spm_small(&l, " ", true);
    sb_free(l.types);
    l.types = NULL;
    struct vfy_tok *tg = tok_from(&g), *tl = tok_from(&l);
    ck_assert_int_eq(vfy_tok_bos(tl), 1);
    ck_assert_int_eq(vfy_tok_eos(tl), 2);
    static const char *const texts[] = { "aba", "abc ab", "  a\xC3\xBC\xff", "<s>", "\n<s>\n" };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int32_t *a, *b;
        size_t na, nb;
        struct sb_err err = { 0 };
        ck_assert_int_eq(vfy_tok_encode(tg, texts[i], strlen(texts[i]), true, &a, &na, &err), 0);
        ck_assert_int_eq(vfy_tok_encode(tl, texts[i], strlen(texts[i]), true, &b, &nb, &err), 0);
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(a, b, na * sizeof *a);
        for (size_t k = 1; k < na; k++)          /* the literal text never becomes BOS */
            ck_assert_int_ne(a[k], 1);
        sb_free(a);
        sb_free(b);
    }
    char buf[8];
    ck_assert_uint_eq(vfy_tok_decode(tl, -1, 1, buf, sizeof buf), 0);
    vfy_tok_free(tg);
    vfy_tok_free(tl);
    fmt_vocab_release(&g);
    fmt_vocab_release(&l);
}
END_TEST

/* run.c encode(), transcribed naively: the oracle. pieces[] already use ' '. */
static size_t naive_encode(const struct fmt_vocab *v, char **pieces, const char *text,
                           size_t len, int32_t *out)
{
    size_t n = 0;
    char buf[128];
    /* lookup over normal pieces only, lowest id first */
#define LOOKUP(s, l, res)                                                                    \
    do {                                                                                     \
        res = -1;                                                                            \
        for (uint32_t q = 0; q < v->n_tokens && res < 0; q++)                                \
            if (v->types[q] == TT_NORMAL && strlen(pieces[q]) == (l) &&                      \
                memcmp(pieces[q], s, l) == 0)                                                \
                res = (int32_t)q;                                                            \
    } while (0)
    int32_t id;
    if (len) {
        LOOKUP(" ", (size_t)1, id);
        out[n++] = id;
    }
    for (size_t i = 0; i < len; i++) {
        LOOKUP(text + i, (size_t)1, id);          /* ASCII-only texts */
        out[n++] = id >= 0 ? id : (unsigned char)text[i] + 3;
    }
    for (;;) {
        float best = -1e10f;
        long bi = -1;
        int32_t bid = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            if (out[i] < 259 || out[i + 1] < 259)
                continue;
            size_t la = strlen(pieces[out[i]]), lb = strlen(pieces[out[i + 1]]);
            memcpy(buf, pieces[out[i]], la);
            memcpy(buf + la, pieces[out[i + 1]], lb);
            LOOKUP(buf, la + lb, id);
            if (id >= 0 && v->scores[id] > best) {
                best = v->scores[id];
                bi = (long)i;
                bid = id;
            }
        }
        if (bi < 0)
            break;
        out[bi] = bid;
        memmove(out + bi + 1, out + bi + 2, (n - (size_t)bi - 2) * sizeof *out);
        n--;
    }
#undef LOOKUP
    return n;
}

START_TEST(test_spm_vs_naive)
{
    uint64_t st = 1000 + (uint64_t)_i;
    struct fmt_vocab v;
    spm_base(&v, " ", false);
    vocab_add(&v, "a", -100, TT_NORMAL);
    vocab_add(&v, "b", -100, TT_NORMAL);
    vocab_add(&v, "c", -100, TT_NORMAL);
    char **pieces = calloc(400, sizeof *pieces);
    /* random multi-char pieces over " abc", scores in a small set so ties abound */
    for (int k = 0; k < 60; k++) {
        char p[8];
        size_t l = 2 + test_rand_u64(&st) % 4;
        for (size_t j = 0; j < l; j++)
            p[j] = " abc"[test_rand_u64(&st) % 4];
        p[l] = 0;
        if (_i & 1) {                   /* odd runs: spaces only as a leading run */
            size_t j = 0;
            while (p[j] == ' ')
                j++;
            for (; j < l; j++)
                p[j] = p[j] == ' ' ? 'b' : p[j];
        }
        bool dup = false;
        for (uint32_t q = 259; q < v.n_tokens; q++)
            dup |= strcmp(v.tokens[q], p) == 0;
        if (!dup)
            vocab_add(&v, p, -(float)(test_rand_u64(&st) % 4), TT_NORMAL);
    }
    for (uint32_t q = 0; q < v.n_tokens; q++)
        pieces[q] = v.tokens[q];
    struct vfy_tok *t = tok_from(&v);
    ck_assert_int_eq(t->split_words, _i & 1);      /* word-by-word merging on odd runs */
    for (int r = 0; r < 50; r++) {
        char text[80];
        size_t len = test_rand_u64(&st) % sizeof text;
        for (size_t j = 0; j < len; j++)
            text[j] = " abcd"[test_rand_u64(&st) % 5];     /* 'd' takes the byte fallback */
        int32_t want[96], *ids;
        size_t nw = naive_encode(&v, pieces, text, len, want), n;
        struct sb_err err = { 0 };
        ck_assert_int_eq(vfy_tok_encode(t, text, len, false, &ids, &n, &err), SB_OK);
        ck_assert_uint_eq(n, nw);
        ck_assert_mem_eq(ids, want, n * sizeof *ids);
        sb_free(ids);
    }
    vfy_tok_free(t);
    free(pieces);
    fmt_vocab_release(&v);
}
END_TEST

START_TEST(test_spm_errors_and_oom)
{
    struct fmt_vocab v = { 0 };
    struct vfy_tok *t = (struct vfy_tok *)&v;
    struct sb_err err = { 0 };
    ck_assert_int_eq(vfy_tok_new(&t, &v, &err), SB_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(err.msg, "model has no tokenizer");
    v.kind = FMT_VOCAB_SPM;
    sb_err_clear(&err);
    ck_assert_int_eq(vfy_tok_new(&t, &v, &err), SB_EFORMAT);

    /* no byte tokens and no unk: a missing byte is an error, not a crash */
    struct fmt_vocab w = { 0 };
    w.kind = FMT_VOCAB_SPM;
    w.bos_id = w.eos_id = w.unk_id = -1;
    vocab_add(&w, "\xE2\x96\x81", 0, TT_NORMAL);
    vocab_add(&w, "a", 0, TT_NORMAL);
    t = tok_from(&w);
    int32_t *ids = (int32_t *)&w;
    size_t n = 9;
    sb_err_clear(&err);
    ck_assert_int_eq(vfy_tok_encode(t, "ax", 2, false, &ids, &n, &err), SB_EUNSUPPORTED);
    ck_assert_ptr_null(ids);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "0x78"));
    sb_err_clear(&err);
    ck_assert_int_eq(vfy_tok_encode(t, "a", 1, true, &ids, &n, &err), SB_EUNSUPPORTED);
    ck_assert_int_eq(vfy_tok_bos(t), -1);
    vfy_tok_free(t);
    fmt_vocab_release(&w);

    /* every allocation failure is reported and leaks nothing (ASan checks) */
    spm_small(&v, "\xE2\x96\x81", false);
    int ok = 0;
    for (long k = 0; k < 5000 && !ok; k++) {
        sb_err_clear(&err);
        sb_alloc_fail_after(k);
        int rc = vfy_tok_new(&t, &v, &err);
        if (rc == SB_OK) {
            rc = vfy_tok_encode(t, "abcabc aba", 10, true, &ids, &n, &err);
            if (rc == SB_OK) {
                ok = 1;
                sb_free(ids);
            } else {
                ck_assert_int_eq(rc, SB_ENOMEM);
                ck_assert_ptr_null(ids);
            }
            vfy_tok_free(t);
        } else {
            ck_assert_int_eq(rc, SB_ENOMEM);
            ck_assert_ptr_null(t);
        }
    }
    sb_alloc_fail_after(-1);
    ck_assert(ok);
    fmt_vocab_release(&v);
}
END_TEST

/* ---- Hugging Face tokenizer.json ------------------------------------------- */

/* GPT-2 bytes_to_unicode, re-derived from its definition */
static uint32_t b2u(int b)
{
    int n = 0;
    for (int x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174;
        if (x == b)
            return keep ? (uint32_t)x : 256u + (uint32_t)n;
        if (!keep)
            n++;
    }
    return 0;
}

static void utf8(char **o, uint32_t c)
{
    unsigned char *p = (unsigned char *)*o;
    if (c < 0x80) {
        *p++ = (unsigned char)c;
    } else if (c < 0x800) {
        *p++ = (unsigned char)(0xC0 | (c >> 6));
        *p++ = (unsigned char)(0x80 | (c & 0x3F));
    } else {
        *p++ = (unsigned char)(0xE0 | (c >> 12));
        *p++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        *p++ = (unsigned char)(0x80 | (c & 0x3F));
    }
    *o = (char *)p;
}

/* byte-level tokenizer.json: ids 0..255 bytes, then one token per merge, then <s>, </s> */
static char *bytelevel_json(const char *const *merges, size_t nm, const char *pre_extra,
                            bool string_merges)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *ma = cJSON_AddArrayToObject(model, "merges");
    for (int b = 0; b < 256; b++) {
        char s[8], *p = s;
        utf8(&p, b2u(b));
        *p = 0;
        cJSON_AddNumberToObject(vocab, s, b);
    }
    for (size_t i = 0; i < nm; i++) {
        char a[64], m[64];
        snprintf(a, sizeof a, "%s", merges[i]);
        char *sp = strchr(a, ' ');
        *sp = 0;
        snprintf(m, sizeof m, "%s%s", a, sp + 1);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, m))
            cJSON_AddNumberToObject(vocab, m, 256 + (double)i);
        if (string_merges) {
            cJSON_AddItemToArray(ma, cJSON_CreateString(merges[i]));
        } else {
            const char *pair[2] = { a, sp + 1 };
            cJSON_AddItemToArray(ma, cJSON_CreateStringArray(pair, 2));
        }
    }
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const char *names[2] = { "<s>", "</s>" };
    for (int k = 0; k < 2; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", 256 + (double)nm + k);
        cJSON_AddStringToObject(e, "content", names[k]);
        cJSON_AddBoolToObject(e, "special", 1);
        cJSON_AddItemToArray(added, e);
    }
    cJSON *pre = cJSON_Parse(pre_extra);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static struct vfy_tok *hf_tok(const char *json)
{
    struct fmt_vocab v = { 0 };
    v.kind = FMT_VOCAB_HF_JSON;
    v.bos_id = v.eos_id = v.unk_id = -1;
    v.hf_json = (char *)json;
    v.hf_json_len = strlen(json);
    return tok_from(&v);
}

static const char *const hello_merges[] = {
    "o \xC4\xA0",            /* 256 "oĠ": rank 0, crosses a word boundary */
    "h e", "he l", "hel l", "hell o",      /* 257..260 */
    "l l",                   /* 261: ranked after "he l", so "hello" never uses it */
    "\xC4\xA0 w", "o r", "\xC4\xA0w or", "l d", "\xC4\xA0wor ld",   /* 262..266 */
};
#define N_HELLO (sizeof hello_merges / sizeof *hello_merges)

START_TEST(test_hf_bytelevel_merges)
{
    char *js = bytelevel_json(hello_merges, N_HELLO,
                              "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                              "\"use_regex\":true}", _i == 0);
    struct vfy_tok *t = hf_tok(js);
    ck_assert_uint_eq(vfy_tok_n_vocab(t), 256 + N_HELLO + 2);
    ck_assert_int_eq(vfy_tok_bos(t), 256 + (int)N_HELLO);
    ck_assert_int_eq(vfy_tok_eos(t), 257 + (int)N_HELLO);
    /* "hello" | " world" | " hello": h e l l o -> he, hel, hell, hello (l l never);
     * Ġ w o r l d -> Ġw, or, Ġwor, ld, Ġworld; "Ġ hello" has no merge */
    CHECK_ENC(t, "hello world hello", true, 267, 260, 266, ' ' + 0, 260);
    /* a stray "ll": l l -> ll */
    CHECK_ENC(t, "ll", false, 261);
    /* specials in the text are cut out first */
    CHECK_ENC(t, "he<s>llo</s>", false, 257, 267, 261, 'o', 268);
    char buf[32];
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 266, buf, sizeof buf), 6);
    ck_assert_mem_eq(buf, " world", 6);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 256, buf, sizeof buf), 2);
    ck_assert_mem_eq(buf, "o ", 2);
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 267, buf, sizeof buf), 0);    /* <s> */
    vfy_tok_free(t);
    cJSON_free(js);

    /* without the regex the text is one word and "o Ġ" (rank 0) crosses it */
    js = bytelevel_json(hello_merges, N_HELLO,
                        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                        "\"use_regex\":false}", _i == 0);
    t = hf_tok(js);
    /* h e l l o Ġ h e l l o: oĠ first, then he (twice), hel, hell; "hell oĠ" is no merge */
    CHECK_ENC(t, "hello hello", false, 259, 256, 260);
    vfy_tok_free(t);
    cJSON_free(js);

    /* add_prefix_space: "hello" is read as " hello" */
    js = bytelevel_json(hello_merges, N_HELLO,
                        "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", _i == 0);
    t = hf_tok(js);
    CHECK_ENC(t, "hello", false, ' ', 260);
    CHECK_ENC(t, " world", false, 266);
    CHECK_ENC(t, "\nx", false, ' ', '\n', 'x');
    vfy_tok_free(t);
    cJSON_free(js);
}
END_TEST

START_TEST(test_hf_bytelevel_bytes)
{
    /* tinymoe's shape: no merges, no regex; every byte is its own token */
    char *js = bytelevel_json(NULL, 0,
                              "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                              "\"use_regex\":false}", true);
    struct vfy_tok *t = hf_tok(js);
    CHECK_ENC(t, "Hello", true, 256, 72, 101, 108, 108, 111);
    CHECK_ENC(t, " \n\xff\xfe\x80", false, 32, 10, 255, 254, 128);
    char buf[8];
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 32, buf, sizeof buf), 1);     /* "Ġ" -> ' ' */
    ck_assert_int_eq(buf[0], ' ');
    ck_assert_uint_eq(vfy_tok_decode(t, -1, 0xAD, buf, sizeof buf), 1);   /* "Ń" -> 0xAD */
    ck_assert_int_eq((unsigned char)buf[0], 0xAD);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        check_encode(t, &c, 1, false, (const int32_t[]){ b }, 1);
        ck_assert_uint_eq(vfy_tok_decode(t, -1, b, buf, sizeof buf), 1);
        ck_assert_int_eq((unsigned char)buf[0], b);
    }
    vfy_tok_free(t);
    cJSON_free(js);

    /* random bytes round trip through merges and the regex split */
    js = bytelevel_json(hello_merges, N_HELLO, "{\"type\":\"ByteLevel\"}", false);
    t = hf_tok(js);
    uint64_t st = 7;
    for (int r = 0; r < 200; r++) {
        char text[64], out[1024];
        size_t len = test_rand_u64(&st) % 48;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = test_rand_u64(&st);
            text[i] = x % 2 ? "helo wrd'1\n"[x % 11] : (char)(x >> 8);
        }
        int32_t *ids;
        size_t n;
        struct sb_err err = { 0 };
        ck_assert_int_eq(vfy_tok_encode(t, text, len, false, &ids, &n, &err), SB_OK);
        size_t o = decode_all(t, ids, n, out, sizeof out);
        /* add_prefix_space defaults on: a space is added unless the text starts with one */
        size_t skip = len && text[0] != ' ' ? 1 : 0;
        ck_assert_uint_eq(o, len + skip);
        ck_assert_mem_eq(out + skip, text, len);
        sb_free(ids);
    }
    vfy_tok_free(t);
    cJSON_free(js);
}
END_TEST

/* GPT-2 pre-token splits, golden from Python: regex.findall(<GPT-2 pattern>, s) */
static const struct { const char *in; const char *want[16]; } gpt2_golden[] = {
    { "Hello world", { "Hello", " world" } },
    { "I'm don't we've they'll she'd 'RE",
      { "I", "'m", " don", "'t", " we", "'ve", " they", "'ll", " she", "'d", " '", "RE" } },
    { "abc123 45!!  x", { "abc", "123", " 45", "!!", " ", " x" } },
    { "a  \n\nb", { "a", "  \n", "\n", "b" } },
    { "x   y", { "x", "  ", " y" } },
    { "end  ", { "end", "  " } },
    { " lead", { " lead" } },
    { "h\xC3\xA9llo w\xC3\xB6rld", { "h\xC3\xA9llo", " w\xC3\xB6rld" } },
    { "\xE6\x97\xA5\xE6\x9C\xAC \xE3\x83\x86\xE3\x82\xB9",
      { "\xE6\x97\xA5\xE6\x9C\xAC", " \xE3\x83\x86\xE3\x82\xB9" } },
    { "3.14 \xC2\xBD \xC2\xB2", { "3", ".", "14", " \xC2\xBD", " \xC2\xB2" } },
    { "\xF0\x9F\x92\xA1idea", { "\xF0\x9F\x92\xA1", "idea" } },
    { "tab\tsep", { "tab", "\t", "sep" } },
    { "\xC2\xA0nbsp \xE3\x80\x80x", { "\xC2\xA0", "nbsp", " ", "\xE3\x80\x80", "x" } },
    { "e\xCC\x81t", { "e", "\xCC\x81", "t" } },
    { "a\xE2\x80\x94" "b", { "a", "\xE2\x80\x94", "b" } },
    { "x '  's", { "x", " '", " ", " '", "s" } },
};

START_TEST(test_hf_gpt2_split)
{
    const char *s = gpt2_golden[_i].in;
    size_t n = strlen(s), k = 0;
    while (n) {
        size_t l = vfy_tok_gpt2_next((const unsigned char *)s, n);
        const char *w = gpt2_golden[_i].want[k++];
        ck_assert_ptr_nonnull(w);
        ck_assert_msg(l == strlen(w) && memcmp(s, w, l) == 0, "case %d piece %zu: '%.*s' != '%s'",
                      _i, k - 1, (int)l, s, w);
        s += l;
        n -= l;
    }
    ck_assert_ptr_null(gpt2_golden[_i].want[k]);
}
END_TEST

/* Llama-3 (ndig 3) and Qwen2 (ndig 1) splits, golden from Python's `regex` with
 * those tokenizer.json patterns */
static const struct { const char *in; int ndig; const char *want[16]; } llama3_golden[] = {
    { "Hello world", 3, { "Hello", " world" } },
    { "I'M don'T we've", 3, { "I", "'M", " don", "'T", " we", "'ve" } },
    { "abc12345 6!!\n\n  x", 3, { "abc", "123", "45", " ", "6", "!!\n\n", " ", " x" } },
    { "abc12345 6!!\n\n  x", 1,
      { "abc", "1", "2", "3", "4", "5", " ", "6", "!!\n\n", " ", " x" } },
    { "a  \n\nb", 3, { "a", "  \n\n", "b" } },
    { "x   y\n", 3, { "x", "  ", " y", "\n" } },
    { "(hello) \"q\"", 3, { "(hello", ")", " \"", "q", "\"" } },
    { " \t\n \r\nz", 3, { " \t\n \r\n", "z" } },
    { "3.14159", 3, { "3", ".", "141", "59" } },
    { "end  ", 1, { "end", "  " } },
    { "$100,000.00!!\n\nNext", 3, { "$", "100", ",", "000", ".", "00", "!!\n\n", "Next" } },
    { "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC", 3,
      { "h\xC3\xA9llo", " w\xC3\xB6rld", " \xE6\x97\xA5\xE6\x9C\xAC" } },
};

START_TEST(test_hf_llama3_split)
{
    const char *s = llama3_golden[_i].in;
    size_t n = strlen(s), k = 0;
    while (n) {
        size_t l = vfy_tok_llama3_next((const unsigned char *)s, n, llama3_golden[_i].ndig);
        const char *w = llama3_golden[_i].want[k++];
        ck_assert_ptr_nonnull(w);
        ck_assert_msg(l == strlen(w) && memcmp(s, w, l) == 0, "case %d piece %zu: '%.*s' != '%s'",
                      _i, k - 1, (int)l, s, w);
        s += l;
        n -= l;
    }
    ck_assert_ptr_null(llama3_golden[_i].want[k]);
}
END_TEST

/* ByteLevel's GPT-2 regex, Llama 3's Split, Qwen2's Split (as their tokenizer.json spell them) */
static const char *const split_pre[] = {
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}",
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"use_regex\":false}]}",
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"use_regex\":false}]}",
};

/* a Split pre-tokenizer picks the splitter: "1234" is one GPT-2 word, but "123" "4"
 * for Llama-3 */
START_TEST(test_hf_split_selects)
{
    static const char *const mg[] = { "1 2", "12 3", "123 4" };   /* 256 12, 257 123, 258 1234 */
    const char *const *pre = split_pre;
    char *js = bytelevel_json(mg, 3, pre[_i], true);
    struct vfy_tok *t = hf_tok(js);
    ck_assert_int_eq(t->hf_digits, _i == 0 ? 0 : _i == 1 ? 3 : 1);
    if (_i == 0)
        CHECK_ENC(t, "1234", false, 258);
    else if (_i == 1)
        CHECK_ENC(t, "1234", false, 257, '4');
    else
        CHECK_ENC(t, "1234", false, '1', '2', '3', '4');
    vfy_tok_free(t);
    cJSON_free(js);
}
END_TEST

START_TEST(test_hf_spm_style)
{
    /* a Llama-style tokenizer.json: '▁' pieces, byte fallback, merges by rank */
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    const char *base[] = { "<unk>", "<s>", "</s>" };
    int id = 0;
    for (int k = 0; k < 3; k++)
        cJSON_AddNumberToObject(vocab, base[k], id++);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    /* 259 ▁, 260 h, 261 e, 262 l, 263 o, 264 ▁h, 265 ll, 266 ▁he, 267 ▁hell, 268 ▁hello */
    const char *pcs[] = { "\xE2\x96\x81", "h", "e", "l", "o", "\xE2\x96\x81h", "ll",
                          "\xE2\x96\x81he", "\xE2\x96\x81hell", "\xE2\x96\x81hello" };
    for (int k = 0; k < 10; k++)
        cJSON_AddNumberToObject(vocab, pcs[k], id++);
    const char *mg[] = { "\xE2\x96\x81 h", "l l", "\xE2\x96\x81h e", "\xE2\x96\x81he ll",
                         "\xE2\x96\x81hell o" };
    cJSON_AddItemToObject(model, "merges", cJSON_CreateStringArray(mg, 5));
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *nl = cJSON_AddArrayToObject(norm, "normalizers"), *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "Prepend");
    cJSON_AddItemToArray(nl, pp);
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct vfy_tok *t = hf_tok(js);
    ck_assert_int_eq(vfy_tok_bos(t), -1);       /* <s> is not an added token here */
    CHECK_ENC(t, "hello", false, 268);
    /* "▁hello▁é▁▁h": é -> <0xC3><0xA9> */
    CHECK_ENC(t, "hello \xC3\xA9  h", false, 268, 259, 0xC3 + 3, 0xA9 + 3, 259, 264);
    CHECK_ENC(t, "oll", false, 259, 263, 265);
    int32_t ids[] = { 268, 259, 0xC3 + 3, 0xA9 + 3 };
    char out[64];
    size_t o = decode_all(t, ids, 4, out, sizeof out);
    ck_assert_uint_eq(o, 9);
    ck_assert_mem_eq(out, " hello \xC3\xA9", 9);
    vfy_tok_free(t);
    cJSON_free(js);
}
END_TEST

START_TEST(test_hf_errors)
{
    static const struct { const char *json; int code; const char *msg; } bad[] = {
        { "{", SB_EFORMAT, "tokenizer.json: not valid JSON" },
        { "{}", SB_EFORMAT, "tokenizer.json: no 'model' object" },
        { "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", SB_EUNSUPPORTED,
          "tokenizer.json: model type 'Unigram' is not supported (only BPE)" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":"
          "{\"type\":\"ByteLevel\"}}", SB_EFORMAT,
          "tokenizer.json: byte-level vocab has no token for byte 0x00" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}},\"pre_tokenizer\":"
          "{\"type\":\"ByteLevel\"}}", SB_EFORMAT,
          "tokenizer.json: vocab entry 'a' has a bad id" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", SB_EUNSUPPORTED,
          "tokenizer.json: neither a byte-level nor a SentencePiece-style BPE" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct fmt_vocab v = { 0 };
        v.kind = FMT_VOCAB_HF_JSON;
        v.bos_id = v.eos_id = v.unk_id = -1;
        v.hf_json = (char *)bad[i].json;
        v.hf_json_len = strlen(bad[i].json);
        struct vfy_tok *t = NULL;
        struct sb_err err = { 0 };
        ck_assert_int_eq(vfy_tok_new(&t, &v, &err), bad[i].code);
        ck_assert_ptr_null(t);
        ck_assert_str_eq(err.msg, bad[i].msg);
    }
    /* a merge that is not two tokens */
    char *js = bytelevel_json(NULL, 0, "{\"type\":\"ByteLevel\"}", true);
    cJSON *root = cJSON_Parse(js);
    cJSON_free(js);
    cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges"),
                         cJSON_CreateString("ab"));
    js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct fmt_vocab v = { 0 };
    v.kind = FMT_VOCAB_HF_JSON;
    v.hf_json = js;
    v.hf_json_len = strlen(js);
    struct vfy_tok *t = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(vfy_tok_new(&t, &v, &err), SB_EFORMAT);
    ck_assert_str_eq(err.msg, "tokenizer.json: merge 0 'ab' is not two tokens");
    cJSON_free(js);
}
END_TEST

/* ---- ids files ------------------------------------------------------------- */

static int read_ids(const char *content, uint32_t n_vocab, int32_t **ids, size_t *n,
                    struct sb_err *err)
{
    const char *p = test_tmpfile("ids.txt");
    ck_assert_int_eq(test_write_file(p, content, strlen(content)), 0);
    return vfy_tok_read_ids(p, ids, n, n_vocab, err);
}

START_TEST(test_read_ids)
{
    int32_t *ids;
    size_t n;
    struct sb_err err = { 0 };
    ck_assert_int_eq(read_ids("1 403\t407,261,\n378\n", 512, &ids, &n, &err), SB_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(ids, ((int32_t[]){ 1, 403, 407, 261, 378 }), 5 * sizeof *ids);
    sb_free(ids);
    ck_assert_int_eq(read_ids("[1, 2,3 ]", 4, &ids, &n, &err), SB_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[2], 3);
    sb_free(ids);
    ck_assert_int_eq(read_ids("2147483647", 0, &ids, &n, &err), SB_OK);   /* no range check */
    ck_assert_int_eq(ids[0], 2147483647);
    sb_free(ids);

    static const struct { const char *in; const char *msg; } bad[] = {
        { "1 2\n3 x4 5", ":2: 'x4' is not a token id" },
        { "1.5", ":1: '1.5' is not a token id" },
        { "1 512", ":1: token id 512 is out of range (vocab size 512)" },
        { "\n\n-1", ":3: token id -1 is out of range (vocab size 512)" },
        { "99999999999999999999", ":1: '99999999999999999999' is not a token id" },
        { " , [ ]\n", ": no token ids" },
        { "", ": no token ids" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_err_clear(&err);
        ids = (int32_t *)&err;
        ck_assert_int_eq(read_ids(bad[i].in, 512, &ids, &n, &err), SB_EFORMAT);
        ck_assert_ptr_null(ids);
        char want[4200];
        snprintf(want, sizeof want, "%s%s", test_tmpfile("ids.txt"), bad[i].msg);
        ck_assert_str_eq(err.msg, want);
        ck_assert_ptr_null(strchr(err.msg, '\n'));
    }
    sb_err_clear(&err);
    ck_assert_int_eq(vfy_tok_read_ids(test_tmpfile("missing.txt"), &ids, &n, 0, &err), SB_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing.txt"));
    test_tmpdir_cleanup();
}
END_TEST

/* ---- byte-level BPE <-> GGUF "gpt2" ---------------------------------------------
 * Expected values follow llama.cpp's converter by hand (convert_hf_to_gguf
 * get_vocab_base, gguf-py SpecialVocab): added tokens as their text, type 3 when
 * special or looking special (<|...|>), 4 otherwise with U+2581 -> ' ', 5 and
 * "[PAD{id}]" for ids the file lacks, 1 for the rest; merges "a b". */

/* bytelevel_json plus: TemplateProcessing [<s>, A], added tokens
 * <|im_start|> (not special), user (not special), a hole, <extra> (special) */
static char *gguf_json_src(const char *const *merges, size_t nm, const char *pre,
                           const char *user)
{
    char *base = bytelevel_json(merges, nm, pre, true);
    cJSON *root = cJSON_Parse(base);
    cJSON_free(base);
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const struct { int off; const char *content; bool special; } extra[] = {
        { 2, "<|im_start|>", false }, { 3, user, false }, { 5, "<extra>", true } };
    for (size_t k = 0; k < 3; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", 256 + (double)nm + extra[k].off);
        cJSON_AddStringToObject(e, "content", extra[k].content);
        cJSON_AddBoolToObject(e, "special", extra[k].special);
        cJSON_AddItemToArray(added, e);
    }
    char pp[512];
    snprintf(pp, sizeof pp, "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
             "{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
             "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[%zu],\"tokens\":[\"<s>\"]}}}",
             256 + nm);
    cJSON_AddItemToObject(root, "post_processor", cJSON_Parse(pp));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static struct fmt_hftok_file *parse_ok(const char *js)
{
    struct fmt_hftok_file *f = NULL;
    struct sb_err err = { 0 };
    ck_assert_msg(fmt_hftok_parse(&f, js, strlen(js), &err) == SB_OK, "%s", err.msg);
    return f;
}

static const char CFG[] = "{\"bos_token\":{\"content\":\"<s>\"},\"eos_token\":\"</s>\","
                          "\"pad_token\":\"<extra>\",\"add_eos_token\":false}";

START_TEST(test_gguf_gpt2_tokens)
{
    char *js = gguf_json_src(hello_merges, N_HELLO, split_pre[0], "\xE2\x96\x81tool");
    struct fmt_hftok_file *f = parse_ok(js);
    struct fmt_hftok_gpt2 g;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_hftok_gpt2_from_file(&g, f, 275, &err), SB_OK);
    ck_assert_uint_eq(g.n, 275);
    static const struct { uint32_t id; const char *s; int type; } want[] = {
        { 0, "\xC4\x80", 1 }, { 32, "\xC4\xA0", 1 }, { 'a', "a", 1 }, { 0xAD, "\xC5\x83", 1 },
        { 256, "o\xC4\xA0", 1 }, { 266, "\xC4\xA0world", 1 }, { 267, "<s>", 3 },
        { 268, "</s>", 3 }, { 269, "<|im_start|>", 3 }, { 270, " tool", 4 },
        { 271, "[PAD271]", 5 }, { 272, "<extra>", 3 }, { 274, "[PAD274]", 5 } };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        uint32_t id = want[k].id;
        ck_assert_msg(g.lens[id] == strlen(want[k].s) && !memcmp(g.tokens[id], want[k].s,
                      g.lens[id]), "token %u is '%s'", id, g.tokens[id]);
        ck_assert_int_eq(g.types[id], want[k].type);
    }
    ck_assert_uint_eq(g.n_merges, N_HELLO);
    for (size_t k = 0; k < N_HELLO; k++)
        ck_assert_str_eq(g.merges[k], hello_merges[k]);
    fmt_hftok_gpt2_release(&g);

    /* special ids and flags, the gguf-py way */
    struct fmt_hftok_specials sp;
    ck_assert_int_eq(fmt_hftok_specials(&sp, f, CFG, strlen(CFG), -1, -1, 275), SB_OK);
    ck_assert_int_eq(sp.bos, 267);          /* the name, given as {"content": ...} */
    ck_assert_int_eq(sp.eos, 268);
    ck_assert_int_eq(sp.pad, 272);
    ck_assert_int_eq(sp.unk, -1);
    ck_assert_int_eq(sp.add_bos, 1);        /* the template's leading <s> */
    ck_assert_int_eq(sp.add_eos, 0);        /* tokenizer_config.json says so */
    /* no tokenizer_config.json: config.json's ids, the template's BOS */
    ck_assert_int_eq(fmt_hftok_specials(&sp, f, NULL, 0, -1, 268, 275), SB_OK);
    ck_assert_int_eq(sp.bos, 267);
    ck_assert_int_eq(sp.eos, 268);
    ck_assert_int_eq(sp.add_bos, 1);
    ck_assert_int_eq(sp.add_eos, -1);
    /* another BOS named: the template's is not added; config.json's id stands in
     * for a name with no added token; add_bos_token overrides */
    static const char cfg2[] = "{\"bos_token\":\"<x>\",\"add_bos_token\":true,"
                               "\"chat_template\":\"{{ x }}\"}";
    ck_assert_int_eq(fmt_hftok_specials(&sp, f, cfg2, strlen(cfg2), 5, -1, 275), SB_OK);
    ck_assert_int_eq(sp.bos, 5);
    ck_assert_int_eq(sp.add_bos, 1);
    ck_assert_str_eq(sp.chat_template, "{{ x }}");
    sb_free(sp.chat_template);
    ck_assert_int_eq(fmt_hftok_specials(&sp, f, "{\"bos_token\":\"<x>\"}", 19, -1, -1, 275),
                     SB_OK);
    ck_assert_int_eq(sp.add_bos, 0);
    ck_assert_int_eq(sp.bos, 267);          /* never lost: the template's id */
    fmt_hftok_file_free(f);
    cJSON_free(js);

    /* a merge part holding ' ' (the [a, b] form): U+0120, as gguf-py writes it */
    js = bytelevel_json(NULL, 0, split_pre[0], true);
    cJSON *root = cJSON_Parse(js);
    cJSON_free(js);
    const char *pair[2] = { " x", "y" };
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(root, "model"), "merges"),
                         cJSON_CreateStringArray(pair, 2));
    js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    f = parse_ok(js);
    ck_assert_int_eq(fmt_hftok_gpt2_from_file(&g, f, 0, &err), SB_OK);
    ck_assert_uint_eq(g.n, 258);
    ck_assert_str_eq(g.merges[0], "\xC4\xA0x y");
    fmt_hftok_gpt2_release(&g);
    fmt_hftok_file_free(f);
    cJSON_free(js);
}
END_TEST

START_TEST(test_gguf_pre_names)
{
    static const struct { const char *pre; size_t nm; const char *name; bool exact; } c[] = {
        { "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}", 11, "gpt-2", true },
        { "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", 11, "gpt-2", false },
        { "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", 11,
          "default", false },
        { "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", 0,
          "default", true },
        { NULL, 11, "llama-bpe", true }, { NULL, 11, "qwen2", true },
        { "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
          "{\"Regex\":\"\\\\p{L}+\"}},{\"type\":\"ByteLevel\",\"use_regex\":false,"
          "\"add_prefix_space\":false}]}", 11, "default", false },
    };
    for (size_t k = 0; k < sizeof c / sizeof *c; k++) {
        const char *pre = c[k].pre ? c[k].pre : split_pre[k == 4 ? 1 : 2];
        char *js = bytelevel_json(hello_merges, c[k].nm, pre, true);
        struct fmt_hftok_file *f = parse_ok(js);
        bool exact;
        ck_assert_str_eq(fmt_hftok_pre_name(f, &exact), c[k].name);
        ck_assert_msg(exact == c[k].exact, "case %zu", k);
        fmt_hftok_file_free(f);
        cJSON_free(js);
    }
    ck_assert(fmt_hftok_pre_exact("default", 0) && !fmt_hftok_pre_exact("default", 3));
    ck_assert(fmt_hftok_pre_exact("llama-bpe", 3) && fmt_hftok_pre_exact("qwen2", 3));
    ck_assert(fmt_hftok_pre_exact("olmo", 3) && !fmt_hftok_pre_exact("deepseek-llm", 3));
    ck_assert(!fmt_hftok_pre_exact(NULL, 0));
}
END_TEST

/* what GGUF holds of json + cfg, as a struct fmt_hftok_gguf over g */
static struct fmt_hftok_gguf gguf_of(struct fmt_hftok_gpt2 *g, struct fmt_hftok_specials *sp,
                                     const char *json, const char *cfg)
{
    struct fmt_hftok_file *f = parse_ok(json);
    struct sb_err err = { 0 };
    bool exact;
    ck_assert_int_eq(fmt_hftok_gpt2_from_file(g, f, 275, &err), SB_OK);
    ck_assert_int_eq(fmt_hftok_specials(sp, f, cfg, cfg ? strlen(cfg) : 0, -1, -1, g->n), SB_OK);
    struct fmt_hftok_gguf o = {
        .tokens = g->tokens, .lens = g->lens, .n = g->n, .types = g->types,
        .merges = g->merges, .merge_lens = g->merge_lens, .n_merges = g->n_merges,
        .pre = fmt_hftok_pre_name(f, &exact), .bos = sp->bos, .eos = sp->eos, .unk = sp->unk,
        .sep = sp->sep, .pad = sp->pad, .add_bos = sp->add_bos, .add_eos = sp->add_eos };
    fmt_hftok_file_free(f);
    return o;
}

/* HF -> GGUF -> HF: the same id -> text map, merges, special ids and flags, pre
 * name; GGUF -> HF -> GGUF gives the same keys; every text encodes the same */
START_TEST(test_gguf_gpt2_round_trip)
{
    const bool bytes_only = _i == 3;        /* tinymoe's shape: no merges, no regex */
    const char *pre = bytes_only ? "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                   "\"use_regex\":false}" : split_pre[_i];
    char *js0 = gguf_json_src(hello_merges, bytes_only ? 0 : N_HELLO, pre, "<tool>");
    struct fmt_hftok_gpt2 g0, g1;
    struct fmt_hftok_specials s0, s1;
    struct fmt_hftok_gguf k0 = gguf_of(&g0, &s0, js0, CFG);
    char *js1, *cfg1;
    size_t l1, lc1;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_hftok_gguf_json(&k0, "t.gguf", &js1, &l1, &cfg1, &lc1, &err), SB_OK);
    ck_assert_uint_eq(strlen(js1), l1);
    struct fmt_hftok_gguf k1 = gguf_of(&g1, &s1, js1, cfg1);
    ck_assert_str_eq(k1.pre, k0.pre);
    ck_assert_uint_eq(k1.n, k0.n);
    for (uint64_t i = 0; i < k0.n; i++) {
        ck_assert_msg(k1.lens[i] == k0.lens[i] && !memcmp(k1.tokens[i], k0.tokens[i], k0.lens[i]),
                      "token %" PRIu64 ": '%s' -> '%s'", i, k0.tokens[i], k1.tokens[i]);
        ck_assert_int_eq(k1.types[i], k0.types[i]);
    }
    ck_assert_uint_eq(k1.n_merges, k0.n_merges);
    for (uint64_t m = 0; m < k0.n_merges; m++)
        ck_assert_str_eq(k1.merges[m], k0.merges[m]);
    ck_assert(k1.bos == 256 + (int64_t)k0.n_merges && k1.bos == k0.bos && k1.eos == k0.eos &&
              k1.pad == k0.pad && k1.unk == -1 && k1.add_bos == 1 && k1.add_eos == 0);

    /* encode: the original tokenizer.json and the one made from GGUF */
    struct vfy_tok *t0 = hf_tok(js0), *t1 = hf_tok(js1);
    ck_assert_int_eq(vfy_tok_bos(t1), vfy_tok_bos(t0));
    static const char *const texts[] = {
        "hello world hello", "he<s>llo</s>", "<|im_start|>user <tool> hello<extra>",
        "It's 12345  spaces\n\n\nand I'M ok... ", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xFF\x80" };
    uint64_t st = 11 + (uint64_t)_i;
    for (int r = 0; r < 205; r++) {
        char buf[64];
        const char *text = buf;
        size_t n;
        if (r < 5) {
            text = texts[r];
            n = strlen(text);
        } else {
            n = test_rand_u64(&st) % sizeof buf;
            for (size_t j = 0; j < n; j++)
                buf[j] = " helowrd<>s/1'\n\xC3"[test_rand_u64(&st) % 15];
        }
        int32_t *a, *b;
        size_t na, nb;
        ck_assert_int_eq(vfy_tok_encode(t0, text, n, true, &a, &na, &err), SB_OK);
        ck_assert_int_eq(vfy_tok_encode(t1, text, n, true, &b, &nb, &err), SB_OK);
        ck_assert_msg(na == nb && !memcmp(a, b, na * sizeof *a), "'%.*s' encodes otherwise",
                      (int)n, text);
        sb_free(a);
        sb_free(b);
    }
    vfy_tok_free(t0);
    vfy_tok_free(t1);
    fmt_hftok_gpt2_release(&g0);
    fmt_hftok_gpt2_release(&g1);
    sb_free(js1);
    sb_free(cfg1);
    cJSON_free(js0);
}
END_TEST

START_TEST(test_gguf_gpt2_errors)
{
    char *js = gguf_json_src(hello_merges, N_HELLO, split_pre[0], "<tool>");
    struct fmt_hftok_gpt2 g;
    struct fmt_hftok_specials sp;
    struct fmt_hftok_gguf k = gguf_of(&g, &sp, js, CFG);
    char *j, *c;
    size_t lj, lc;
    struct sb_err err = { 0 };
    char bad_merge[] = "hello";
    char *const bm[1] = { bad_merge };
    const uint64_t bml[1] = { 5 };
    struct fmt_hftok_gguf b = k;
    b.merges = bm;
    b.merge_lens = bml;
    b.n_merges = 1;
    ck_assert_int_eq(fmt_hftok_gguf_json(&b, "t.gguf", &j, &lj, &c, &lc, &err), SB_EFORMAT);
    ck_assert_str_eq(err.msg, "t.gguf: tokenizer.ggml.merges[0] is not two tokens");
    ck_assert(!j && !c);
    sb_err_clear(&err);
    b = k;
    b.eos = 275;
    ck_assert_int_eq(fmt_hftok_gguf_json(&b, "t.gguf", &j, &lj, &c, &lc, &err), SB_EFORMAT);
    ck_assert_str_eq(err.msg, "t.gguf: special token id 275 is past the vocab (275 tokens)");
    sb_err_clear(&err);
    char *saved = g.tokens[97];
    g.tokens[97] = (char *)"\xFF";
    ck_assert_int_eq(fmt_hftok_gguf_json(&k, "t.gguf", &j, &lj, &c, &lc, &err), SB_EUNSUPPORTED);
    ck_assert_str_eq(err.msg, "t.gguf: token 97 is not UTF-8 text (tokenizer.json cannot hold it)");
    g.tokens[97] = saved;
    /* out of memory anywhere: SB_ENOMEM, nothing leaked (ASan), then success */
    int ok = 0;
    for (long n = 0; n < 100000 && !ok; n++) {
        sb_err_clear(&err);
        sb_alloc_fail_after(n);
        int rc = fmt_hftok_gguf_json(&k, "t.gguf", &j, &lj, &c, &lc, &err);
        sb_alloc_fail_after(-1);
        if (rc == SB_OK) {
            ok = 1;
            sb_free(j);
            sb_free(c);
        } else {
            ck_assert_int_eq(rc, SB_ENOMEM);
            ck_assert(!j && !c);
        }
    }
    ck_assert(ok);
    fmt_hftok_gpt2_release(&g);
    cJSON_free(js);
}
END_TEST

Suite *verify_tok_suite(void)
{
    Suite *s = suite_create("verify_tok");
    TCase *tc = tcase_create("spm");
    tcase_add_test(tc, test_spm_merges);
    tcase_add_test(tc, test_spm_decode);
    tcase_add_test(tc, test_spm_l2c_spelling);
    tcase_add_loop_test(tc, test_spm_vs_naive, 0, 20);
    tcase_add_test(tc, test_spm_errors_and_oom);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    tc = tcase_create("hf");
    tcase_add_loop_test(tc, test_hf_bytelevel_merges, 0, 2);
    tcase_add_test(tc, test_hf_bytelevel_bytes);
    tcase_add_loop_test(tc, test_hf_gpt2_split, 0, sizeof gpt2_golden / sizeof *gpt2_golden);
    tcase_add_loop_test(tc, test_hf_llama3_split, 0, sizeof llama3_golden / sizeof *llama3_golden);
    tcase_add_loop_test(tc, test_hf_split_selects, 0, 3);
    tcase_add_test(tc, test_hf_spm_style);
    tcase_add_test(tc, test_hf_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("gguf");
    tcase_add_test(tc, test_gguf_gpt2_tokens);
    tcase_add_test(tc, test_gguf_pre_names);
    tcase_add_loop_test(tc, test_gguf_gpt2_round_trip, 0, 4);
    tcase_add_test(tc, test_gguf_gpt2_errors);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("ids");
    tcase_add_test(tc, test_read_ids);
    suite_add_tcase(s, tc);
    return s;
}
