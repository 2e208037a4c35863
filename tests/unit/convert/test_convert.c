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
#include "qnt_encode.h"
#include "sb_alloc.h"
#include "test_util.h"
#include "vfy_mem.h"

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
    struct fmt_model *m = test_synth_model(FMT_ARCH_MIXTRAL, 48, "src");
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
    struct fmt_model *m = test_synth_model(FMT_ARCH_LLAMA, 64, "src");
    /* the third: --keep attn, a component (vfy_mem_part_of) rather than a glob */
    struct cvt_rule rules[] = { { "*.mlp.down_proj.weight", SB_DTYPE_F16, 0 },
                                { "model.embed_tokens.weight", -1, 0 },
                                { "attn", -1, 1 + VFY_MEM_ATTN } };
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_BF16;
    o.rules = rules;
    o.n_rules = 3;
    struct cvt_report *rep;
    struct sb_err err = { 0 };
    const char *out = test_tmpfile("out");
    ck_assert_msg(cvt_convert(m, out, &o, &rep, &err) == SB_OK, "%s", err.msg);
    ck_assert_int_eq(find(rep, "model.layers.0.mlp.down_proj.weight")->to, SB_DTYPE_F16);
    ck_assert_int_eq(find(rep, "model.embed_tokens.weight")->to, SB_DTYPE_F32);
    ck_assert_int_eq(find(rep, "model.layers.1.self_attn.q_proj.weight")->to, SB_DTYPE_F32);
    ck_assert_int_eq(find(rep, "model.layers.1.mlp.up_proj.weight")->to, SB_DTYPE_BF16);
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
    struct fmt_model *m = test_synth_model(FMT_ARCH_LLAMA, 64, "src");
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
    struct fmt_model *m = test_synth_model(FMT_ARCH_MIXTRAL, 64, "src");
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

/* convert streams row blocks: every output tensor with blocks of a few rows
 * (so each tensor takes many blocks, and a block may end inside an expert or
 * a permuted head) has the bytes of the default run (one block a tensor here),
 * whatever the container (GGUF takes pieces, the safetensors int8 layout a
 * whole blob, .subbit variable-length codes); and a q8_0 tensor's bytes are
 * qnt_quantize_rows of the whole source tensor, computed here. --stats gives
 * the same numbers both ways (to rounding of the per-block partial sums). */
START_TEST(test_row_blocks_match_whole)
{
    static const struct { const char *out; int to; } cases[] = {
        { "q.gguf", SB_DTYPE_Q8_0 }, { "i8.safetensors", SB_DTYPE_INT8 },
        { "t.subbit", SB_DTYPE_TERN }, { "s.subbit", SB_DTYPE_SUB1 },
        { "f.gguf", SB_DTYPE_F16 },
    };
    struct fmt_model *m = test_synth_model(FMT_ARCH_MIXTRAL, 64, "src");
    const char *name = cases[_i].out;
    struct sb_err err = { 0 };
    struct fmt_model *out[2];
    struct cvt_report *rep[2];
    for (int b = 0; b < 2; b++) {
        struct cvt_opts o;
        cvt_opts_init(&o);
        o.to = cases[_i].to;
        o.stats = true;
        o.block_elems = b ? 0 : 150;   /* 2 rows of 64, 1 row of 96, ... */
        char path[64];
        snprintf(path, sizeof path, "%d%s", b, name);
        ck_assert_msg(cvt_convert(m, test_tmpfile(path), &o, &rep[b], &err) == SB_OK, "%s",
                      err.msg);
        ck_assert_msg(fmt_model_open(&out[b], test_tmpfile(path), NULL, &err) == SB_OK, "%s",
                      err.msg);
    }
    ck_assert_uint_eq(out[0]->n_tensors, out[1]->n_tensors);
    int checked = 0;
    for (size_t i = 0; i < out[0]->n_tensors; i++) {
        const struct fmt_tensor *a = &out[0]->tensors[i];
        const struct fmt_tensor *b = fmt_model_find(out[1], a->name);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(a->dtype, b->dtype);
        ck_assert_uint_eq(a->nbytes, b->nbytes);
        ck_assert_msg(!memcmp(a->data, b->data, a->nbytes), "%s: %s differs", name, a->name);
        checked += (int)a->dtype == cases[_i].to;
    }
    ck_assert_int_gt(checked, 4);
    for (size_t i = 0; i < rep[0]->n; i++) {
        const struct cvt_decision *x = &rep[0]->d[i], *y = &rep[1]->d[i];
        ck_assert_int_eq(x->has_stats, y->has_stats);
        ck_assert_double_eq_tol(x->rmse, y->rmse, 1e-12 * (1 + y->rmse));
        ck_assert(x->max_abs == y->max_abs);
    }
    if (cases[_i].to == SB_DTYPE_Q8_0) {   /* GGUF: an expert stack against the whole tensor */
        const struct fmt_tensor *src =
            fmt_model_find(m, "model.layers.0.block_sparse_moe.experts.0.w2.weight");
        const struct fmt_tensor *st = fmt_model_find(out[0], "blk.0.ffn_down_exps.weight");
        ck_assert_ptr_nonnull(src);
        ck_assert_ptr_nonnull(st);
        const size_t n = (size_t)src->shape[0] * (size_t)src->shape[1];   /* expert 0: [64, 96] */
        unsigned char *want = malloc(n / 32 * 34);
        ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_Q8_0, src->data, (size_t)src->shape[0],
                                           (size_t)src->shape[1], NULL, want), SB_OK);
        ck_assert_mem_eq(st->data, want, n / 32 * 34);
        free(want);
    }
    for (int b = 0; b < 2; b++) {
        cvt_report_free(rep[b]);
        fmt_model_free(out[b]);
    }
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

/* progress counts input bytes against a total fixed from the first report
 * (issue 15: sub1's bar counted output, whose total grew as codes were made) */
struct prog_log {
    uint64_t first_total, last_done, calls;
    bool total_moved, went_back;
};
static void prog_record(void *ctx, uint64_t done, uint64_t total)
{
    struct prog_log *l = ctx;
    if (!l->calls++)
        l->first_total = total;
    l->total_moved |= total != l->first_total;
    l->went_back |= done < l->last_done;
    l->last_done = done;
}

START_TEST(test_progress_counts_input)
{
    static const int to[] = { SB_DTYPE_SUB1, SB_DTYPE_SUB1_QMOE, SB_DTYPE_Q8_0 };
    static const char *out[] = { "p.subbit", "pq.subbit", "p.gguf" };
    struct fmt_model *m = test_synth_model(FMT_ARCH_MIXTRAL, 64, "src");
    struct prog_log l = { 0 };
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = to[_i];
    o.experts_only = to[_i] != SB_DTYPE_Q8_0;
    o.progress.fn = prog_record;
    o.progress.ctx = &l;
    struct cvt_report *rep = NULL;
    struct sb_err err = { 0 };
    ck_assert_msg(cvt_convert(m, test_tmpfile(out[_i]), &o, &rep, &err) == SB_OK, "%s", err.msg);
    uint64_t in = 0;                    /* the source's tensor bytes, summed here */
    for (size_t i = 0; i < m->n_tensors; i++)
        in += m->tensors[i].nbytes;
    ck_assert_uint_eq(l.calls, rep->n);
    ck_assert_uint_eq(l.first_total, in);
    ck_assert(!l.total_moved);
    ck_assert(!l.went_back);
    ck_assert_uint_eq(l.last_done, in);
    cvt_report_free(rep);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

/* the container comes from the output's name; a name that asks for none is
 * refused before anything is written (issue 15: "-o model.bin" became a folder) */
START_TEST(test_output_names)
{
    static const struct { const char *name; int rc; enum fmt_container c; } cases[] = {
        { "a.gguf", SB_OK, FMT_CONT_GGUF },        { "a.GGUF", SB_OK, FMT_CONT_GGUF },
        { "a.Subbit", SB_OK, FMT_CONT_SUBBIT },    { "a.safetensors", SB_OK, FMT_CONT_SAFETENSORS },
        { "dir", SB_OK, FMT_CONT_SAFETENSORS },    { "v1.5/", SB_OK, FMT_CONT_SAFETENSORS },
        { ".hidden", SB_OK, FMT_CONT_SAFETENSORS },
        { "a.txt", SB_EINVAL, 0 },                 { "model.bin", SB_EINVAL, 0 },
        { "x.gguf.tmp", SB_EINVAL, 0 },            { "-", SB_EINVAL, 0 },
        { "", SB_EINVAL, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_err err = { 0 };
        enum fmt_container c = FMT_CONT_UNKNOWN;
        ck_assert_msg(fmt_container_for_output(cases[i].name, &c, &err) == cases[i].rc, "%s",
                      cases[i].name);
        if (cases[i].rc == SB_OK)
            ck_assert_int_eq(c, cases[i].c);
        else if (cases[i].name[0])
            ck_assert_msg(strstr(err.msg, cases[i].name) == err.msg, "message names the file: %s",
                          err.msg);
    }
    struct fmt_model *m = test_synth_model(FMT_ARCH_LLAMA, 64, "src");
    struct cvt_opts o;
    cvt_opts_init(&o);
    struct cvt_report *rep = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_convert(m, test_tmpfile("model.bin"), &o, &rep, &err), SB_EINVAL);
    ck_assert_ptr_null(rep);
    ck_assert(!test_file_exists(test_tmpfile("model.bin")));
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

TEST_SUITE(convert_convert, 120, NULL, NULL, TEST(test_output_names),
    TEST_LOOP(test_progress_counts_input, 3),
    TEST(test_policy_q8_0_gguf), TEST(test_policy_rules_and_keep),
    TEST(test_existing_output_needs_force), TEST_LOOP(test_faults_leave_no_output, 2),
    TEST_LOOP(test_row_blocks_match_whole, 5))
