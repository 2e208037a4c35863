/* test_config.c: config.json and tokenizer.json parsed once into typed
 * structs (fmt_config.h, fmt_hftok.h), and GGUF metadata built in one place:
 * the values and JSON kinds a config holds (aliases included, as mem reads
 * them), the architecture read from them, the quantization groups of a
 * compressed-tensors config; a tokenizer.json's classification and merges in
 * both spellings; and the GGUF writer writing exactly the keys convert builds
 * for the same architecture and vocab (feed_forward_length from the dense
 * width first, as llama.cpp's qwen2moe writes it). Expected values are the
 * literals of the JSON below. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fmt_config.h"
#include "fmt_gguf.h"
#include "fmt_hftok.h"
#include "fmt_model.h"
#include "fmt_writer.h"
#include "sb_alloc.h"
#include "test_util.h"

static const char qwen_json[] =
    "{\"model_type\": \"qwen2_moe\", \"hidden_size\": 64, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 100,"
    " \"intermediate_size\": 96, \"moe_intermediate_size\": 32,"
    " \"shared_expert_intermediate_size\": 48, \"num_experts\": 6, \"num_experts_per_tok\": 2,"
    " \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0, \"eos_token_id\": [7, 8],"
    " \"tie_word_embeddings\": false, \"sliding_window\": null, \"use_sliding_window\": false,"
    " \"mlp_only_layers\": [], \"layer_types\": [\"sliding_attention\", \"full_attention\","
    " \"sliding_attention\"], \"n_embd\": \"x\","
    " \"quantization_config\": {\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"],"
    " \"weights\": {\"num_bits\": 8, \"group_size\": 32}}}}}";

START_TEST(test_config_values)
{
    struct fmt_config *c;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_config_parse(&c, qwen_json, strlen(qwen_json), "config.json", &err),
                     SB_OK);
    ck_assert_str_eq(c->model_type, "qwen2_moe");
    ck_assert_int_eq(c->hidden_size.kind, FMT_CFG_NUMBER);
    ck_assert(c->hidden_size.num == 64);
    ck_assert_int_eq(c->dim.kind, FMT_CFG_ABSENT);
    ck_assert_int_eq(c->sliding_window.kind, FMT_CFG_NULL);
    ck_assert_int_eq(c->use_sliding_window.kind, FMT_CFG_BOOL);
    ck_assert(!c->use_sliding_window.b);
    ck_assert_int_eq(c->n_embd.kind, FMT_CFG_STRING);       /* a wrong type is kept as such */
    ck_assert_int_eq(c->eos_token_id.kind, FMT_CFG_ARRAY);
    ck_assert(c->eos_token_id.first_num && c->eos_token_id.num == 7);
    ck_assert_uint_eq(c->eos_token_id.n, 2);
    ck_assert_int_eq(c->mlp_only_layers_val.kind, FMT_CFG_ARRAY);
    ck_assert_uint_eq(c->n_mlp_only_layers, 0);
    ck_assert_uint_eq(c->n_sliding_layer_types, 2);
    /* lookups by key name, as mem's alias lists make them */
    ck_assert_ptr_eq(fmt_config_get(c, "moe_intermediate_size"), &c->moe_intermediate_size);
    ck_assert_ptr_null(fmt_config_get(c, "no_such_key"));
    ck_assert_uint_eq(c->n_qgroups, 1);
    ck_assert_uint_eq(c->qgroups[0].n_targets, 1);
    ck_assert_str_eq(c->qgroups[0].targets[0], "Linear");
    ck_assert(c->qgroups[0].num_bits.num == 8 && c->qgroups[0].group_size.num == 32);
    /* the architecture read from the same struct */
    struct fmt_arch a;
    ck_assert_int_eq(fmt_arch_from_config(&a, c, "config.json", &err), SB_OK);
    ck_assert_int_eq(a.kind, FMT_ARCH_QWEN2_MOE);
    ck_assert_int_eq(a.hidden_dim, 96);
    ck_assert_int_eq(a.moe_hidden_dim, 32);
    ck_assert_int_eq(a.shared_hidden_dim, 48);
    ck_assert_int_eq(a.n_experts, 6);
    ck_assert_int_eq(a.eos_id, 7);
    ck_assert(a.qkv_bias);                 /* qwen2_moe's default */
    ck_assert_int_eq(a.sliding_window, 0);
    ck_assert_str_eq(a.unimplemented, "");
    fmt_config_free(c);
    /* not an object */
    ck_assert_int_eq(fmt_config_parse(&c, "[1]", 3, "cfg.json", &err), SB_EFORMAT);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err.msg, "cfg.json: not a JSON object");
}
END_TEST

/* The writer given an arch and a vocab writes the keys convert builds for a
 * model with them: one builder (fmt_gguf_kv_from_arch), same keys, same values. */
START_TEST(test_gguf_metadata_one_place)
{
    static char *toks[4] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81" "a" };
    static uint32_t lens[4] = { 5, 3, 4, 4 };
    struct fmt_model *src = fmt_model_new();
    src->has_arch = true;
    struct fmt_arch *a = &src->arch;
    a->kind = FMT_ARCH_QWEN2_MOE;
    a->n_layers = 1, a->dim = 8, a->hidden_dim = 24, a->moe_hidden_dim = 12;
    a->shared_hidden_dim = 16, a->n_heads = 2, a->n_kv_heads = 2, a->n_ctx = 32;
    a->n_experts = 4, a->n_experts_used = 2, a->vocab_size = 4, a->norm_eps = 1e-6f;
    a->rope_theta = 1e6f;
    struct fmt_vocab *v = &src->vocab;
    v->kind = FMT_VOCAB_SPM, v->n_tokens = 4, v->tokens = sb_calloc(4, sizeof *v->tokens);
    v->lens = sb_calloc(4, sizeof *v->lens);
    for (int i = 0; i < 4; i++) {
        v->tokens[i] = sb_strdup(toks[i]);
        v->lens[i] = lens[i];
    }
    v->unk_id = 0, v->bos_id = 1, v->eos_id = 2, v->add_bos = true;
    struct fmt_kv *kv;
    size_t n;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_gguf_kv_build(src, &kv, &n, &err), SB_OK);
    /* the writer's path */
    struct fmt_write_opts o = { .arch = a, .vocab = v };
    struct fmt_tensor pl = { .name = "token_embd.weight", .dtype = SB_DTYPE_F32, .ndim = 2,
                             .shape = { 4, 8 } };
    static float data[32];
    struct fmt_writer *w;
    const char *p = test_tmpfile("meta.gguf");
    ck_assert_int_eq(fmt_writer_open(&w, FMT_CONT_GGUF, p, &pl, 1, &o, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_put(w, 0, data, sizeof data, &err), SB_OK);
    ck_assert_int_eq(fmt_writer_commit(w, &err), SB_OK);
    struct fmt_model *m;
    ck_assert_int_eq(fmt_model_open(&m, p, NULL, &err), SB_OK);
    ck_assert_uint_eq(m->n_kv, n);
    for (size_t i = 0; i < n; i++) {
        const struct fmt_kv *x = &kv[i], *y = &m->kv[i];
        ck_assert_str_eq(x->key, y->key);       /* same order, too */
        ck_assert_int_eq(x->type, y->type);
        ck_assert_msg(x->u == y->u && (float)x->f == (float)y->f && x->n == y->n, "%s", x->key);
    }
    /* Qwen2-MoE: the dense width is feed_forward_length, the experts' their own key */
    ck_assert_uint_eq(fmt_model_find_kv(m, "qwen2moe.feed_forward_length")->u, 24);
    ck_assert_uint_eq(fmt_model_find_kv(m, "qwen2moe.expert_feed_forward_length")->u, 12);
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, FMT_ARCH_QWEN2_MOE);
    ck_assert_int_eq(m->arch.moe_hidden_dim, 12);
    for (size_t i = 0; i < n; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);
    fmt_model_free(m);
    fmt_model_free(src);
    test_tmpdir_cleanup();
}
END_TEST

/* tokenizer.json: the one classification the core's tokenizer and HF -> GGUF read */
START_TEST(test_hftok_parse)
{
    static const struct { const char *json; enum fmt_hftok_kind kind; } cases[] = {
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
          "\"merges\":[\"a b\",[\"a\",\"b\"]]},\"decoder\":{\"type\":\"ByteLevel\"}}",
          FMT_HFTOK_BYTE_LEVEL },
        { "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0}}}",
          FMT_HFTOK_SPM },
        { "{\"model\":{\"vocab\":{\"a\":0}},\"normalizer\":{\"type\":\"Sequence\","
          "\"normalizers\":[{\"type\":\"Prepend\"}]}}", FMT_HFTOK_SPM },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", FMT_HFTOK_OTHER },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fmt_hftok_file *f;
        struct sb_err err = { 0 };
        ck_assert_int_eq(fmt_hftok_parse(&f, cases[i].json, strlen(cases[i].json), &err), SB_OK);
        ck_assert_int_eq(f->kind, cases[i].kind);
        if (i == 0) {
            ck_assert(!f->bl_pre && !f->bl_use_regex);   /* a ByteLevel decoder only */
            ck_assert_uint_eq(f->n_vocab, 3);
            ck_assert_int_eq(f->max_id, 2);
            ck_assert_uint_eq(f->n_merges, 2);      /* both spellings, the same pair */
            for (int k = 0; k < 2; k++)
                ck_assert(!strcmp(f->merges[k].a, "a") && !strcmp(f->merges[k].b, "b") &&
                          f->merges[k].la == 1 && f->merges[k].lb == 1);
        }
        fmt_hftok_file_free(f);
    }
    struct fmt_hftok_file *f;
    struct sb_err err = { 0 };
    const char *bad = "{\"model\":{\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}";
    ck_assert_int_eq(fmt_hftok_parse(&f, bad, strlen(bad), &err), SB_EFORMAT);
    ck_assert_str_eq(err.msg, "tokenizer.json: merge 0 'ab' is not two tokens");
}
END_TEST

/* issue 12 item 10: rms_norm_eps and rope_theta given as 0, negative or
 * huge are refused with one line naming the key, never replaced by a default;
 * absent, the documented defaults apply */
START_TEST(test_config_positive)
{
    static const char *const bad[][2] = {
        { "\"rms_norm_eps\": 0", "config.json: rms_norm_eps 0 is not a positive number" },
        { "\"rms_norm_eps\": -1e-5", "config.json: rms_norm_eps -1e-05 is not a positive number" },
        { "\"rope_theta\": 0", "config.json: rope_theta 0 is not a positive number" },
        { "\"rope_theta\": 1e300", "config.json: rope_theta 1e+300 is not a positive number" },
        { "\"rope_parameters\": {\"rope_theta\": -2}",
          "config.json: rope_parameters.rope_theta -2 is not a positive number" },
    };
    char js[512];
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        snprintf(js, sizeof js, "{\"hidden_size\": 8, \"num_hidden_layers\": 1, "
                 "\"num_attention_heads\": 2, \"vocab_size\": 10%s%s}", i < 5 ? ", " : "",
                 i < 5 ? bad[i][0] : "");
        struct fmt_arch a;
        struct sb_err err = { 0 };
        int r = fmt_arch_from_hf_config(&a, js, strlen(js), "config.json", &err);
        if (i == 5) {
            ck_assert_int_eq(r, SB_OK);
            ck_assert(a.norm_eps == 1e-6f && a.rope_theta == 10000.0f);
        } else {
            ck_assert_int_eq(r, SB_EFORMAT);
            ck_assert_str_eq(err.msg, bad[i][1]);
        }
    }
}
END_TEST

TEST_SUITE(formats_config, 0, NULL, NULL,
    TEST(test_config_values), TEST(test_gguf_metadata_one_place), TEST(test_hftok_parse),
    TEST(test_config_positive))
