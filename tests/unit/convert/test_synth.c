/* test_synth.c: synthetic models are deterministic, sized as asked, and
 * readable back with the shapes their config promises. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_synth.h"
#include "fmt_model.h"
#include "sb_alloc.h"
#include "test_util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static char *slurp(const char *dir, const char *name, size_t *n)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return test_read_file(p, n);
}

START_TEST(test_synth_deterministic_any_threads)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, FMT_ARCH_MIXTRAL);
    o.seed = 42;
    struct sb_err err = { 0 };
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    ck_assert_int_eq(cvt_synth(&o, test_tmpfile("a"), &err), SB_OK);
#ifdef _OPENMP
    omp_set_num_threads(4);
#endif
    ck_assert_int_eq(cvt_synth(&o, test_tmpfile("b"), &err), SB_OK);
    o.seed = 43;
    ck_assert_int_eq(cvt_synth(&o, test_tmpfile("c"), &err), SB_OK);
    size_t na, nb, nc;
    char *a = slurp(test_tmpfile("a"), "model.safetensors", &na);
    char *b = slurp(test_tmpfile("b"), "model.safetensors", &nb);
    char *c = slurp(test_tmpfile("c"), "model.safetensors", &nc);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na);
    ck_assert_uint_eq(na, nc);
    ck_assert_int_ne(memcmp(a, c, na), 0); /* another seed, other values */
    free(a);
    free(b);
    free(c);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_synth_shapes_and_params)
{
    static const enum fmt_arch_kind kinds[] = { FMT_ARCH_LLAMA, FMT_ARCH_MIXTRAL,
                                                FMT_ARCH_QWEN2_MOE };
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, kinds[_i]);
    o.layers = 3;
    o.dim = 48;
    o.heads = 6;
    o.kv_heads = 2;
    o.dtype = SB_DTYPE_BF16;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile("m");
    ck_assert_int_eq(cvt_synth(&o, dir, &err), SB_OK);
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, dir, NULL, &err) == SB_OK, "%s", err.msg);
    ck_assert(m->has_arch);
    ck_assert_int_eq(m->arch.kind, kinds[_i]);
    ck_assert_int_eq(m->arch.n_layers, 3);
    ck_assert_int_eq(m->arch.dim, 48);
    ck_assert_int_eq(m->arch.head_dim, 8);
    ck_assert_int_eq(m->arch.n_kv_heads, 2);
    ck_assert_uint_eq(fmt_model_params(m), cvt_synth_params(&o));
    /* llama, by hand: embed + lm_head 2*258*48; per layer q 48*48, k,v 16*48 each,
     * o 48*48, two norms 48, mlp 3*172*48; final norm 48 */
    if (kinds[_i] == FMT_ARCH_LLAMA)
        ck_assert_uint_eq(cvt_synth_params(&o),
                          2u * 258 * 48 + 3u * (2 * 48 * 48 + 2 * 16 * 48 + 2 * 48 + 3 * 172 * 48) + 48);
    const struct fmt_tensor *k = fmt_model_find(m, "model.layers.2.self_attn.k_proj.weight");
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(k->dtype, SB_DTYPE_BF16);
    ck_assert_int_eq(k->shape[0], 16);
    ck_assert_int_eq(k->shape[1], 48);
    const struct fmt_tensor *nw = fmt_model_find(m, "model.norm.weight");
    ck_assert_ptr_nonnull(nw);
    ck_assert_uint_eq(((const uint16_t *)nw->data)[0], 0x3F80); /* bf16 1.0 */
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_synth_sharded)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, FMT_ARCH_LLAMA);
    o.shard_size = 64 * 1024;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile("s");
    ck_assert_int_eq(cvt_synth(&o, dir, &err), SB_OK);
    ck_assert(test_file_exists(test_tmpfile("s/model.safetensors.index.json")));
    ck_assert(!test_file_exists(test_tmpfile("s/model.safetensors")));
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, dir, NULL, &err) == SB_OK, "%s", err.msg);
    ck_assert_uint_eq(fmt_model_params(m), cvt_synth_params(&o));
    ck_assert_uint_gt(m->n_maps, 2);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_synth_bad_options)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, FMT_ARCH_LLAMA);
    o.heads = 5; /* 64 is not a multiple of 2 x 5 */
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_synth(&o, test_tmpfile("x"), &err), SB_EINVAL);
    ck_assert(strstr(err.msg, "--dim") != NULL);
    ck_assert(!test_file_exists(test_tmpfile("x")));
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_synth_alloc_failures_leave_nothing)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, FMT_ARCH_LLAMA);
    struct sb_err err;
    int r = SB_ENOMEM;
    long k;
    for (k = 0; k < 200 && r != SB_OK; k++) {
        memset(&err, 0, sizeof err);
        sb_alloc_fail_after(k);
        r = cvt_synth(&o, test_tmpfile("f"), &err);
        sb_alloc_fail_after(-1);
        if (r != SB_OK) {
            ck_assert_msg(err.code != 0, "failure %ld without a message", k);
            ck_assert_int_eq(test_dir_count(test_tmpdir()), 0);
        }
    }
    ck_assert_int_eq(r, SB_OK);
    ck_assert_int_gt(k, 3);
    test_tmpdir_cleanup();
}
END_TEST

TEST_SUITE(convert_synth, 60, NULL, NULL,
    TEST(test_synth_deterministic_any_threads), TEST_LOOP(test_synth_shapes_and_params, 3),
    TEST(test_synth_sharded), TEST(test_synth_bad_options),
    TEST(test_synth_alloc_failures_leave_nothing))
