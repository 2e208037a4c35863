/* test_stats.c: convert's per-tensor statistics (--stats), checked against the
 * written file: the zero fraction of a ternary tensor is the share of exact
 * zeros in its decoded rows, counted here from the .subbit output with the
 * reference dequantizer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_convert.h"
#include "cvt_synth.h"
#include "fmt_model.h"
#include "qnt_tern.h"
#include "test_util.h"

START_TEST(test_tern_zero_fraction)
{
    struct cvt_synth_opts so;
    cvt_synth_opts_init(&so, FMT_ARCH_MIXTRAL);
    struct sb_err err = { 0 };
    const char *src = test_tmpfile("src"), *out = test_tmpfile("out.subbit");
    ck_assert_msg(cvt_synth(&so, src, &err) == SB_OK, "%s", err.msg);
    struct fmt_model *m, *b;
    ck_assert_msg(fmt_model_open(&m, src, NULL, &err) == SB_OK, "%s", err.msg);
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.to = SB_DTYPE_TERN;
    o.experts_only = true;
    o.stats = true;
    struct cvt_report *rep;
    ck_assert_msg(cvt_convert(m, out, &o, &rep, &err) == SB_OK, "%s", err.msg);
    ck_assert_msg(fmt_model_open(&b, out, NULL, &err) == SB_OK, "%s", err.msg);
    int checked = 0;
    for (size_t i = 0; i < rep->n; i++) {
        const struct cvt_decision *d = &rep->d[i];
        if (d->to != SB_DTYPE_TERN)
            continue;
        ck_assert(d->has_stats);
        const struct fmt_tensor *t = fmt_model_find(b, d->name);
        ck_assert(t && t->dtype == SB_DTYPE_TERN && t->ndim == 2);
        const size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        float *x = malloc(rows * cols * sizeof *x);
        qnt_tern_dequantize_rows(t->data, cols, 0, rows, x);
        size_t zeros = 0;
        for (size_t k = 0; k < rows * cols; k++)
            zeros += x[k] == 0.0f;
        free(x);
        ck_assert_msg(d->zero_fraction == (double)zeros / (double)(rows * cols),
                      "%s: %g, counted %zu of %zu", d->name, d->zero_fraction, zeros, rows * cols);
        ck_assert(d->zero_fraction > 0.2 && d->zero_fraction < 0.95);   /* not a constant */
        checked++;
    }
    ck_assert_int_gt(checked, 3);
    cvt_report_free(rep);
    fmt_model_free(b);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

Suite *convert_stats_suite(void)
{
    Suite *s = suite_create("convert_stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_tern_zero_fraction);
    suite_add_tcase(s, tc);
    return s;
}
