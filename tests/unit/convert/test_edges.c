/* test_edges.c: convert's planning on models that fuzzing found (issue 12
 * item 3): no tensors at all, and an expert tensor without expert 0. Each
 * once crashed or read memory it should not (UBSan's null memcpy, a NULL
 * dereference); now each is refused with one message and no output. */
#include <check.h>
#include <string.h>

#include "cvt_convert.h"
#include "cvt_layout.h"
#include "fmt_model.h"
#include "sb_alloc.h"
#include "test_util.h"

static void teardown(void)
{
    test_tmpdir_cleanup();
}

static struct fmt_model *llama_config_only(void)
{
    struct fmt_model *m = fmt_model_new();
    ck_assert_ptr_nonnull(m);
    m->path = sb_strdup("cfg-model");
    m->container = FMT_CONT_SAFETENSORS;
    m->has_arch = true;
    m->arch.kind = FMT_ARCH_LLAMA;
    strcpy(m->arch.model_type, "llama");
    m->arch.n_layers = 1;
    m->arch.dim = 8;
    m->arch.n_heads = 2;
    m->arch.n_kv_heads = 2;
    m->arch.hidden_dim = 16;
    m->arch.vocab_size = 32;
    return m;
}

/* a safetensors header "{}" with --config, an index with an empty weight_map */
START_TEST(test_no_tensors_refused)
{
    struct fmt_model *m = llama_config_only();
    static const enum fmt_container conts[] = { FMT_CONT_GGUF, FMT_CONT_SAFETENSORS,
                                                FMT_CONT_SUBBIT };
    static const char *outs[] = { "o.gguf", "o.safetensors", "o.subbit" };
    for (int c = 0; c < 3; c++) {
        struct cvt_layout *l = NULL;
        struct sb_err err = { 0 };
        ck_assert_int_eq(cvt_layout_plan(m, conts[c], &l, &err), SB_OK); /* UBSan: no null memcpy */
        ck_assert_uint_eq(l->n, 0);
        cvt_layout_free(l);
        struct cvt_opts o;
        cvt_opts_init(&o);
        struct cvt_report *rep = NULL;
        ck_assert_int_eq(cvt_convert(m, test_tmpfile(outs[c]), &o, &rep, &err), SB_EFORMAT);
        ck_assert_ptr_null(rep);
        ck_assert_str_eq(err.msg, "cfg-model: holds no tensors; nothing to convert");
        ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
    }
    fmt_model_free(m);
}
END_TEST

/* a llama config and only ...experts.1.w1.weight: stacking found no expert 0 */
START_TEST(test_expert_without_expert0)
{
    struct fmt_model *m = llama_config_only();
    struct fmt_tensor *t = fmt_model_add_tensor(m, "model.layers.0.block_sparse_moe.experts.1.w1.weight");
    static float w[4 * 8];
    t->dtype = SB_DTYPE_F32;
    t->ndim = 2;
    t->shape[0] = 4;
    t->shape[1] = 8;
    t->nbytes = sizeof w;
    t->data = w;
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(m, FMT_CONT_GGUF, &l, &err), SB_EFORMAT);
    ck_assert_ptr_null(l);
    ck_assert_str_eq(err.msg, "cfg-model: layer 0 has expert tensors but no "
                              "'model.layers.0.block_sparse_moe.experts.0.w1.weight'");
    /* with an expert count from the config, the first missing one is named */
    m->arch.n_experts = 1000000000;
    sb_err_clear(&err);
    ck_assert_int_eq(cvt_layout_plan(m, FMT_CONT_GGUF, &l, &err), SB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing expert tensor "
                                          "'model.layers.0.block_sparse_moe.experts.0.w1.weight'"));
    fmt_model_free(m);
}
END_TEST

Suite *convert_edges_suite(void)
{
    Suite *s = suite_create("convert_edges");
    TCase *tc = tcase_create("edges");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_no_tensors_refused);
    tcase_add_test(tc, test_expert_without_expert0);
    suite_add_tcase(s, tc);
    return s;
}
