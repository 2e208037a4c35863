/* test_fuzzed.c: inputs the libFuzzer targets (tests/fuzz) found, reduced by
 * hand, one test each. They ran into undefined behaviour (UBSan, the sanitizer
 * pass of tools/test) or asked for memory out of all proportion. */
#include <check.h>
#include <string.h>

#include "fmt_model.h"
#include "sb_alloc.h"
#include "vfy_mem.h"
#include "vfy_model.h"

/* fuzz_config: a config.json number past INT_MAX was converted with (int) */
START_TEST(test_config_number_past_int)
{
    static const char js[] = "{\"model_type\":\"qwen2_moe\",\"hidden_size\":64,"
                             "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                             "\"vocab_size\":32,\"num_key_value_heads\":3.3e35}";
    static const char js2[] = "{\"model_type\":\"qwen2_moe\",\"hidden_size\":64,"
                              "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                              "\"vocab_size\":32,\"eos_token_id\":-1e300,"
                              "\"intermediate_size\":96,\"moe_intermediate_size\":32,"
                              "\"num_experts\":4,\"num_experts_per_tok\":2,"
                              "\"mlp_only_layers\":[1e300, 1]}";
    struct fmt_arch a;
    struct sb_err err = { 0 };
    /* saturated, so the check after it names a plainly wrong value, not a wrapped one */
    ck_assert_int_eq(fmt_arch_from_hf_config(&a, js, sizeof js - 1, "config.json", &err),
                     SB_EFORMAT);
    ck_assert_str_eq(err.msg, "config.json: num_key_value_heads 2147483647 does not divide "
                              "num_attention_heads 4");
    sb_err_clear(&err);
    ck_assert_int_eq(fmt_arch_from_hf_config(&a, js2, sizeof js2 - 1, "config.json", &err), SB_OK);
    ck_assert_int_eq(a.eos_id, -2147483647 - 1);
    struct vfy_mem_model mm;
    memset(&mm, 0, sizeof mm);
    ck_assert_msg(vfy_mem_from_config(&mm, js2, sizeof js2 - 1, "config.json", &err) == SB_OK,
                  "%s", err.msg);
    vfy_mem_model_release(&mm);
}
END_TEST

/* fuzz_gguf: llama.block_count 2^31-1 in a GGUF of one tensor made the core
 * ask for 14 GB of layer records before looking for a layer's tensors */
START_TEST(test_layer_count_checked_before_sizing)
{
    struct fmt_model *m = fmt_model_new();
    m->path = sb_strdup("big.gguf");
    m->has_arch = true;
    m->arch.kind = FMT_ARCH_LLAMA;
    m->arch.n_layers = 2147483647;
    m->arch.n_heads = 2;
    m->arch.dim = 8;
    struct fmt_tensor *t = fmt_model_add_tensor(m, "token_embd.weight");
    static float w[4 * 8];
    t->dtype = SB_DTYPE_F32;
    t->ndim = 2;
    t->shape[0] = 4;
    t->shape[1] = 8;
    t->nbytes = sizeof w;
    t->data = w;
    struct vfy_model *vm = NULL;
    struct sb_err err = { 0 };
    sb_alloc_fail_after(8); /* a handful of allocations is all a refusal needs */
    int r = vfy_model_new(&vm, m, &err);
    sb_alloc_fail_after(-1);
    ck_assert_int_eq(r, SB_EFORMAT);
    ck_assert_str_eq(err.msg, "big.gguf: the configuration says 2147483647 layers, but the "
                              "model has 1 tensors");
    fmt_model_free(m);
}
END_TEST

Suite *verify_fuzzed_suite(void)
{
    Suite *s = suite_create("verify_fuzzed");
    TCase *tc = tcase_create("fuzzed");
    tcase_add_test(tc, test_config_number_past_int);
    tcase_add_test(tc, test_layer_count_checked_before_sizing);
    suite_add_tcase(s, tc);
    return s;
}
