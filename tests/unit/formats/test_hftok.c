/* test_hftok.c: tokenizer.json from a hand-made SentencePiece vocab and back,
 * without fixtures. The expected merges are worked out by hand from the rule in
 * fmt_hftok.h: every split of a normal piece into two normal pieces, ranked by
 * the merged piece's score (highest first), ties by merged id, then left id. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_hftok.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "sb_alloc.h"
#include "test_util.h"

#define SP "\xe2\x96\x81"

static void teardown(void)
{
    sb_alloc_fail_after(-1);
    test_tmpdir_cleanup();
}

/* pieces in GGUF spelling; types and scores as a SentencePiece export has them */
static const char *const PIECES[] = { "<unk>", "<s>", "</s>", "<0x41>", SP, "a", "b", "ab",
                                      SP "a", SP "ab", "ba", "aba" };
static const int32_t TYPES[] = { 2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1 };
static const float SCORES[] = { 0, 0, 0, 0, -10, -11, -12, -1, -2, -4, -3, -5 };
#define NP (sizeof PIECES / sizeof *PIECES)

/* spell 1: GGUF (U+2581, token types); spell 2: tokenizer.bin (' ', "\n<s>\n", no types) */
static void make_vocab(struct fmt_vocab *v, int spell, bool scores)
{
    memset(v, 0, sizeof *v);
    v->kind = FMT_VOCAB_SPM;
    v->n_tokens = NP;
    v->tokens = sb_calloc(NP, sizeof *v->tokens);
    v->lens = sb_calloc(NP, sizeof *v->lens);
    ck_assert_ptr_nonnull(v->tokens);
    for (size_t i = 0; i < NP; i++) {
        char buf[32];
        const char *p = PIECES[i];
        size_t n = 0;
        if (spell == 2 && i == 1) {
            p = "\n<s>\n";
        } else if (spell == 2 && i == 2) {
            p = "\n</s>\n";
        }
        for (size_t k = 0; p[k]; k++) {
            if (spell == 2 && !strncmp(p + k, SP, 3)) {
                buf[n++] = ' ';
                k += 2;
            } else {
                buf[n++] = p[k];
            }
        }
        v->tokens[i] = sb_strndup(buf, n);
        v->lens[i] = (uint32_t)n;
    }
    if (spell == 1) {
        v->types = sb_malloc(sizeof TYPES);
        memcpy(v->types, TYPES, sizeof TYPES);
    }
    if (scores) {
        v->scores = sb_malloc(sizeof SCORES);
        memcpy(v->scores, SCORES, sizeof SCORES);
    }
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->add_bos = true;
}

static char *json_of(const struct fmt_vocab *v, size_t *len)
{
    char *text = NULL;
    struct sb_err err = { 0 };
    int rc = fmt_hftok_json(v, &text, len, &err);
    ck_assert_msg(rc == SB_OK, "fmt_hftok_json: %s", err.msg);
    return text;
}

static void check_merges(const char *text, const char *const *want, size_t n_want)
{
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
    ck_assert_int_eq(cJSON_GetArraySize(m), (int)n_want);
    for (size_t i = 0; i < n_want; i++)
        ck_assert_str_eq(cJSON_GetArrayItem(m, (int)i)->valuestring, want[i]);
    cJSON_Delete(root);
}

START_TEST(test_merges_by_score)
{
    static const char *const want[] = { "a b", SP " a", "b a", SP " ab", SP "a b", "a ba",
                                         "ab a" };
    struct fmt_vocab v;
    size_t len;
    make_vocab(&v, 1, true);
    char *text = json_of(&v, &len);
    check_merges(text, want, sizeof want / sizeof *want);

    cJSON *root = cJSON_Parse(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    ck_assert_int_eq(cJSON_GetArraySize(vocab), (int)NP);
    for (size_t i = 0; i < NP; i++)
        ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(vocab, PIECES[i])->valueint, (int)i);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    ck_assert_int_eq(cJSON_GetArraySize(added), 3);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(added, 1), "content")
                         ->valuestring, "<s>");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(added, 1),
                                                            "special")));
    cJSON_Delete(root);

    /* the tokenizer.bin spelling of the same vocab gives the very same file */
    struct fmt_vocab v2;
    size_t len2;
    make_vocab(&v2, 2, true);
    char *text2 = json_of(&v2, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_str_eq(text, text2);
    sb_free(text2);
    fmt_vocab_release(&v2);

    /* without scores: ranked by id, as HF's extractor does then */
    static const char *const by_id[] = { "a b", SP " a", SP " ab", SP "a b", "b a", "a ba",
                                         "ab a" };
    make_vocab(&v2, 1, false);
    text2 = json_of(&v2, &len2);
    check_merges(text2, by_id, sizeof by_id / sizeof *by_id);
    sb_free(text2);
    fmt_vocab_release(&v2);

    /* add_bos false: no BOS in the post-processor; the config says false too */
    v.add_bos = false;
    text2 = json_of(&v, &len2);
    ck_assert_ptr_null(strstr(text2, "SpecialToken"));
    sb_free(text2);
    struct sb_err err = { 0 };
    const char *cfg = test_tmpfile("tokenizer_config.json");
    ck_assert_int_eq(fmt_hftok_write_config(&v, cfg, 0, &err), SB_OK);
    char *ct = test_read_file(cfg, &len2);
    root = cJSON_Parse(ct);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "add_bos_token")));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "tokenizer_class")->valuestring,
                     "LlamaTokenizerFast");
    cJSON_Delete(root);
    free(ct);
    sb_free(text);
    fmt_vocab_release(&v);
}
END_TEST

START_TEST(test_duplicates_and_specials)
{
    struct fmt_vocab v;
    size_t len;
    make_vocab(&v, 1, true);
    /* id 10 spells "a" again: the vocab keeps id 5 and "ba" merges vanish */
    sb_free(v.tokens[10]);
    v.tokens[10] = sb_strndup("a", 1);
    v.lens[10] = 1;
    /* id 11 is unused: never merged, an added token */
    v.types[11] = 5;
    char *text = json_of(&v, &len);
    static const char *const want[] = { "a b", SP " a", SP " ab", SP "a b" };
    check_merges(text, want, sizeof want / sizeof *want);
    cJSON *root = cJSON_Parse(text);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "model"), "vocab");
    ck_assert_int_eq(cJSON_GetArraySize(vocab), (int)NP - 1);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(vocab, "a")->valueint, 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "added_tokens")),
                     4);
    cJSON_Delete(root);
    sb_free(text);

    /* not an SPM vocab; a piece JSON cannot hold */
    struct sb_err err = { 0 };
    char *t2 = (char *)1;
    struct fmt_vocab none = { 0 };
    ck_assert_int_eq(fmt_hftok_json(&none, &t2, &len, &err), SB_EINVAL);
    ck_assert_ptr_null(t2);
    sb_free(v.tokens[6]);
    v.tokens[6] = sb_strndup("\xc3", 1);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(fmt_hftok_json(&v, &t2, &len, &err), SB_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "token 6"));
    fmt_vocab_release(&v);
}
END_TEST

START_TEST(test_back_to_spm)
{
    struct fmt_vocab v, b = { 0 };
    struct sb_err err = { 0 };
    size_t len;
    make_vocab(&v, 2, true);
    char *text = json_of(&v, &len);
    ck_assert_int_eq(fmt_hftok_to_spm(&b, text, len, 0, &err), SB_OK);
    ck_assert_int_eq(b.kind, FMT_VOCAB_SPM);
    ck_assert_uint_eq(b.n_tokens, NP);
    for (size_t i = 0; i < NP; i++) {
        ck_assert_str_eq(b.tokens[i], PIECES[i]);
        ck_assert_uint_eq(b.lens[i], strlen(PIECES[i]));
        ck_assert_int_eq(b.types[i], TYPES[i]);
    }
    /* merges: ab 0, ▁a 1, ba 2, ▁ab 3 (first of 3, 4), aba 5; then 7 + id */
    static const float want[] = { 0, 0, 0, 0, -11, -12, -13, 0, -1, -3, -2, -5 };
    for (size_t i = 0; i < NP; i++)
        ck_assert_msg(b.scores[i] == want[i], "score %zu: %g", i, (double)b.scores[i]);
    ck_assert_int_eq(b.unk_id, 0);
    ck_assert_int_eq(b.bos_id, 1);
    ck_assert_int_eq(b.eos_id, 2);
    ck_assert(b.add_bos);
    ck_assert_uint_eq(b.max_token_len, 6);
    fmt_vocab_release(&b);
    sb_free(text);
    fmt_vocab_release(&v);

    /* holes become unused [PAD] tokens; [a, b] merges; a non-special added token */
    const char *js = "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\","
                     "\"vocab\":{\"<unk>\":0,\"x\":2,\"y\":3,\"xy\":4},\"merges\":[[\"x\",\"y\"]]},"
                     "\"added_tokens\":[{\"id\":5,\"content\":\"<tool>\",\"special\":false}]}";
    ck_assert_int_eq(fmt_hftok_to_spm(&b, js, strlen(js), 0, &err), SB_OK);
    ck_assert_uint_eq(b.n_tokens, 6);
    ck_assert_str_eq(b.tokens[1], "[PAD1]");
    ck_assert_int_eq(b.types[1], 5);
    ck_assert_int_eq(b.types[5], 4);
    ck_assert(b.scores[4] == 0.0f && b.scores[2] == -3.0f && b.scores[5] == -6.0f);
    ck_assert_int_eq(b.bos_id, -1);
    ck_assert(!b.add_bos);
    /* padded to the model's vocab size */
    ck_assert_int_eq(fmt_hftok_to_spm(&b, js, strlen(js), 8, &err), SB_OK);
    ck_assert_uint_eq(b.n_tokens, 8);
    ck_assert_str_eq(b.tokens[7], "[PAD7]");
    ck_assert_int_eq(b.types[7], 5);
    ck_assert(b.scores[7] == 0.0f);
    ck_assert_str_eq(b.tokens[5], "<tool>");
    fmt_vocab_release(&b);
}
END_TEST

START_TEST(test_back_errors)
{
    static const struct { const char *js; int rc; const char *msg; } cases[] = {
        { "{", SB_EFORMAT, "not valid JSON" },
        { "{}", SB_EFORMAT, "no 'model'" },
        { "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", SB_EUNSUPPORTED, "Unigram" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"decoder\":{\"type\":\"ByteLevel\"}}",
          SB_EUNSUPPORTED, "byte-level" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", SB_EUNSUPPORTED, "not a Sentence" },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":-1}}}", SB_EFORMAT,
          "bad id" },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0.5}}}", SB_EFORMAT,
          "bad id" },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{}}}", SB_EFORMAT,
          "empty vocab" },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0},"
          "\"merges\":[1]}}", SB_EFORMAT, "merge 0" },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0}},"
          "\"added_tokens\":[{\"id\":1}]}", SB_EFORMAT, "added token" },
        /* 2 tokens: ids up to 2 x 2 + 1024 - 1 = 1027; 1028 is a hole too many */
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0}},"
          "\"added_tokens\":[{\"id\":1028,\"content\":\"<x>\"}]}", SB_EFORMAT,
          "ids run to 1028 for 2 tokens" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct fmt_vocab b = { 0 };
        struct sb_err err = { 0 };
        int rc = fmt_hftok_to_spm(&b, cases[i].js, strlen(cases[i].js), 0, &err);
        ck_assert_msg(rc == cases[i].rc, "case %zu: %d (%s)", i, rc, err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].msg), "case %zu: '%s'", i, err.msg);
        ck_assert_ptr_null(b.tokens);
        ck_assert_int_eq(b.bos_id, -1);
    }
    /* the last id the bound allows: 1028 tokens, 1026 of them [PAD] */
    static const char ok[] = "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,"
                             "\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":1027,"
                             "\"content\":\"<x>\"}]}";
    struct fmt_vocab b = { 0 };
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_hftok_to_spm(&b, ok, strlen(ok), 0, &err), SB_OK);
    ck_assert_uint_eq(b.n_tokens, 1028);
    ck_assert_str_eq(b.tokens[1027], "<x>");
    ck_assert_str_eq(b.tokens[1026], "[PAD1026]");
    fmt_vocab_release(&b);
}
END_TEST

/* every allocation failing in turn: SB_ENOMEM and nothing leaked (ASan) */
START_TEST(test_oom)
{
    struct fmt_vocab v;
    size_t len;
    make_vocab(&v, 2, true);
    char *text = json_of(&v, &len);
    const char *path = test_tmpfile("tokenizer.json");
    for (long k = 0; k < 400; k++) {
        struct sb_err err = { 0 };
        char *t = NULL;
        size_t l;
        struct fmt_vocab b = { 0 };
        sb_alloc_fail_after(k);
        int r1 = fmt_hftok_json(&v, &t, &l, &err);
        sb_alloc_fail_after(k);
        int r2 = fmt_hftok_to_spm(&b, text, len, 0, &err);
        sb_alloc_fail_after(k);
        int r3 = fmt_hftok_write_config(&v, path, FMT_OUT_FORCE, &err);
        sb_alloc_fail_after(-1);
        ck_assert(r1 == SB_OK || r1 == SB_ENOMEM);
        ck_assert(r2 == SB_OK || r2 == SB_ENOMEM);
        ck_assert(r3 == SB_OK || r3 == SB_ENOMEM);
        ck_assert(r1 != SB_OK || (t && l == len && !memcmp(t, text, len)));
        sb_free(t);
        fmt_vocab_release(&b);
        if (r1 == SB_OK && r2 == SB_OK && r3 == SB_OK)
            break;   /* k is past every allocation of all three (each write fsyncs) */
    }
    sb_free(text);
    fmt_vocab_release(&v);
}
END_TEST

TEST_SUITE(formats_hftok, 0, NULL, teardown,
    TEST(test_merges_by_score), TEST(test_duplicates_and_specials), TEST(test_back_to_spm),
    TEST(test_back_errors), TEST(test_oom))
