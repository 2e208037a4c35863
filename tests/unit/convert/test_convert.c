/* test_convert.c: the per-tensor policy, dry runs, and that a failed
 * conversion leaves no output behind (fault injection on allocations and
 * writes). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_convert.h"
#include "cvt_synth.h"
#include "fmt_model.h"
#include "fmt_out.h"
#include "sb_alloc.h"
#include "test_util.h"

static struct fmt_model *synth_model(enum fmt_arch_kind kind, int dim, const char *name)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, kind);
    o.dim = dim;
    o.heads = 4;
    o.kv_heads = 2;
    o.hidden = 96;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile(name);
    ck_assert_msg(cvt_synth(&o, dir, &err) == SB_OK, "%s", err.msg);
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, dir, NULL, &err) == SB_OK, "%s", err.msg);
    return m;
}

static const struct cvt_decision *find(const struct cvt_report *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->d[i].name, name))
            return &r->d[i];
    ck_abort_msg("no decision for %s", name);
    return NULL;
}

START_TEST(test_policy_q8_0_gguf)
{
    /* dim 48: rows of 48 are not a multiple of 32, so q8_0 falls back; the FFN down
     * projection has rows of 96 = 3 x 32 and takes q8_0 */
    struct fmt_model *m = synth_model(FMT_ARCH_MIXTRAL, 48, "src");
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_Q8_0;
    o.dry_run = true;
    struct cvt_report *rep;
    struct sb_err err = { 0 };
    ck_assert_msg(cvt_convert(m, test_tmpfile("out.gguf"), &o, &rep, &err) == SB_OK, "%s",
                  err.msg);
    ck_assert(!test_file_exists(test_tmpfile("out.gguf"))); /* dry run writes nothing */
    ck_assert_int_eq(find(rep, "blk.0.attn_norm.weight")->to, SB_DTYPE_F32);
    ck_assert_int_eq(find(rep, "blk.0.ffn_gate_inp.weight")->to, SB_DTYPE_F32);
    ck_assert_int_eq(find(rep, "blk.0.attn_q.weight")->to, SB_DTYPE_F16); /* 48 % 32 */
    ck_assert_int_eq(find(rep, "blk.1.ffn_down_exps.weight")->to, SB_DTYPE_Q8_0);
    /* sizes: [E=4, 48, 96] in q8_0 = 4*48*96/32 blocks of 34 bytes */
    ck_assert_uint_eq(find(rep, "blk.1.ffn_down_exps.weight")->out_bytes, 4u * 48 * 96 / 32 * 34);
    cvt_report_free(rep);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_policy_rules_and_keep)
{
    struct fmt_model *m = synth_model(FMT_ARCH_LLAMA, 64, "src");
    struct cvt_rule rules[] = { { "*.mlp.down_proj.weight", SB_DTYPE_F16 },
                                { "model.embed_tokens.weight", -1 } };
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_BF16;
    o.rules = rules;
    o.n_rules = 2;
    struct cvt_report *rep;
    struct sb_err err = { 0 };
    const char *out = test_tmpfile("out");
    ck_assert_msg(cvt_convert(m, out, &o, &rep, &err) == SB_OK, "%s", err.msg);
    ck_assert_int_eq(find(rep, "model.layers.0.mlp.down_proj.weight")->to, SB_DTYPE_F16);
    ck_assert_int_eq(find(rep, "model.embed_tokens.weight")->to, SB_DTYPE_F32);
    ck_assert_int_eq(find(rep, "model.layers.1.self_attn.q_proj.weight")->to, SB_DTYPE_BF16);
    cvt_report_free(rep);
    struct fmt_model *b;
    ck_assert_msg(fmt_model_open(&b, out, NULL, &err) == SB_OK, "%s", err.msg);
    const struct fmt_tensor *e0 = fmt_model_find(m, "model.embed_tokens.weight");
    const struct fmt_tensor *e1 = fmt_model_find(b, "model.embed_tokens.weight");
    ck_assert_uint_eq(e0->nbytes, e1->nbytes);
    ck_assert_mem_eq(e0->data, e1->data, e0->nbytes); /* kept: byte-identical */
    ck_assert(test_file_exists(test_tmpfile("out/tokenizer.json")));
    ck_assert(test_file_exists(test_tmpfile("out/config.json")));
    fmt_model_free(b);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_existing_output_needs_force)
{
    struct fmt_model *m = synth_model(FMT_ARCH_LLAMA, 64, "src");
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_F16;
    struct cvt_report *rep = NULL;
    struct sb_err err = { 0 };
    const char *out = test_tmpfile("out.safetensors");
    ck_assert(test_write_file(out, "old", 3) == 0);
    ck_assert_int_ne(cvt_convert(m, out, &o, &rep, &err), SB_OK);
    ck_assert_ptr_null(rep);
    ck_assert(strstr(err.msg, "--force") != NULL);
    size_t n;
    char *c = test_read_file(out, &n);
    ck_assert_uint_eq(n, 3); /* untouched */
    free(c);
    memset(&err, 0, sizeof err);
    o.out_flags = FMT_OUT_FORCE;
    ck_assert_int_eq(cvt_convert(m, out, &o, &rep, &err), SB_OK);
    cvt_report_free(rep);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

/* _i = 0: allocation failures; 1: write failures. Each failing run must return
 * an error with a message and leave the folder as it was: the source and the
 * outputs of the earlier, successful rounds. */
START_TEST(test_faults_leave_no_output)
{
    struct fmt_model *m = synth_model(FMT_ARCH_MIXTRAL, 64, "src");
    const char *outs[] = { test_tmpfile("o.safetensors"), test_tmpfile("o.gguf"),
                           test_tmpfile("o-dir") };
    for (int j = 0; j < 3; j++) {
        struct cvt_opts o;
        cvt_opts_init(&o);
        o.to = j == 1 ? SB_DTYPE_Q8_0 : SB_DTYPE_BF16;
        int r = SB_EIO;
        long k;
        for (k = 0; k < 400 && r != SB_OK; k++) {
            struct sb_err err = { 0 };
            struct cvt_report *rep = NULL;
            if (_i == 0)
                sb_alloc_fail_after(k);
            else
                fmt_out_fail_write_after(k);
            r = cvt_convert(m, outs[j], &o, &rep, &err);
            sb_alloc_fail_after(-1);
            fmt_out_fail_write_after(-1);
            if (r != SB_OK) {
                ck_assert_msg(err.msg[0] != '\0', "fault %ld: no message", k);
                ck_assert_ptr_null(rep);
                ck_assert_msg(test_dir_count(test_tmpdir()) == 1 + j, "fault %ld on %s left files",
                              k, outs[j]);
            }
            cvt_report_free(rep);
        }
        ck_assert_int_eq(r, SB_OK);
        ck_assert_int_gt(k, 1);
    }
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

Suite *convert_convert_suite(void)
{
    Suite *s = suite_create("convert_convert");
    TCase *tc = tcase_create("convert");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_policy_q8_0_gguf);
    tcase_add_test(tc, test_policy_rules_and_keep);
    tcase_add_test(tc, test_existing_output_needs_force);
    tcase_add_loop_test(tc, test_faults_leave_no_output, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
