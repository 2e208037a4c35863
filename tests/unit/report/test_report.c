/* test_report.c: subbit report (report/): which command wrote a document,
 * the numbers read from it, and the page: bar lengths proportional to the
 * values, one bar per expert, escaping, sections only with their data,
 * atomic writes that never replace a file without FMT_OUT_FORCE.
 *
 * The documents below are cut down from real `--json` output of subbit
 * (convert --stats, verify, mem, ppl, inspect on models/tinymoe) and from the
 * quant document the lead specified; expected values are worked out by hand
 * in the comments beside them. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_out.h"
#include "rpt_impl.h"
#include "sb_alloc.h"
#include "test_util.h"

static const char convert_doc[] =
    "{\"input\":\"m\",\"output\":\"out.subbit\",\"container\":\"subbit\",\"dry_run\":false,"
    "\"tensors\":["
    /* 192 x 128 = 24576 weights, 3756 B: 3756 * 8 / 24576 = 1.22265625 bits */
    "{\"name\":\"model.layers.3.block_sparse_moe.experts.5.w1.weight\",\"shape\":[192,128],"
    "\"from\":\"bf16\",\"to\":\"sub1\",\"in_bytes\":49152,\"out_bytes\":3756,\"rmse\":0.02,"
    "\"sqnr_db\":3.0,\"max_abs_err\":0.07,\"zero_fraction\":0.75},"
    "{\"name\":\"model.norm.weight\",\"shape\":[128],\"from\":\"bf16\",\"to\":\"f32\","
    "\"in_bytes\":256,\"out_bytes\":512,\"rmse\":0,\"sqnr_db\":null,\"max_abs_err\":0},"
    "{\"name\":\"blk.12.ffn_up_exps.weight\",\"shape\":[8,64,32],\"from\":\"f32\",\"to\":\"q8_0\","
    "\"in_bytes\":65536,\"out_bytes\":17408}],"
    "\"totals\":{\"tensors\":3,\"params\":41088,\"in_bytes\":114944,\"out_bytes\":21676,"
    "\"bits_per_param\":4.22,\"seconds\":0.5}}";

static const char verify_doc[] =
    "{\"ref\":\"models/tinymoe\",\"model\":\"q8.gguf\",\"text\":\"t\",\"protocol\":\"blocks\","
    "\"n_ctx\":512,\"windows\":11,\"tokens_scored\":1924,\"ppl_ref\":3.0756,\"ppl_model\":3.0769,"
    "\"ppl_delta\":0.0013,\"ppl_delta_pct\":0.041,\"kld\":{\"mean\":0.00015,\"median\":1e-5,"
    "\"p99\":0.0022,\"max\":0.035},\"top1_agreement\":0.9969,\"seconds\":9.9,"
    "\"checks\":{\"ppl_delta\":false},\"pass\":false}";

static const char mem_doc[] =
    "{\"model\":\"tinymoe\",\"params\":{\"total\":2627200},\"weights_encoding\":\"stored\","
    "\"stored\":{\"encoding\":\"bf16\"},\"kv_cache\":{\"type\":\"f16\",\"ctx\":512,"
    "\"bytes\":524288},\"runtime\":{\"logits\":265224,\"activations\":2086456,\"scratch\":63276,"
    "\"process_baseline\":3072000},\"weights_bytes\":5254400,\"total\":11265644}";

static const char ppl_doc[] =
    "{\"model\":\"models/tinymoe\",\"protocol\":\"blocks\",\"tokens_scored\":1924,"
    "\"ppl\":3.0756,\"ppl_stderr\":0.0873}";

static const char inspect_doc[] =
    "{\"path\":\"x.gguf\",\"container\":\"gguf\",\"architecture\":{\"layers\":4},\"tensors\":["
    "{\"name\":\"output.weight\",\"encoding\":\"q8_0\",\"shape\":[258,128],\"bytes\":35088,"
    "\"bits_per_param\":8.5}],\"totals\":{\"tensors\":1,\"params\":33024,\"bytes\":35088,"
    "\"bits_per_param\":8.5}}";

/* layer 0 routes 5 experts (expert 4 falls back); layer 1 one */
static const char quant_doc[] =
    "{\"command\":\"quant\",\"input\":\"m\",\"output\":\"q.subbit\",\"method\":\"gptq\","
    "\"to\":\"sub1\",\"calib\":{\"file\":\"c.txt\",\"tokens\":4096,\"ctx\":512,\"windows\":8},"
    "\"layers\":[{\"layer\":0,\"seconds\":1.5,\"experts\":["
    "{\"expert\":0,\"tokens\":100},{\"expert\":1,\"tokens\":200},{\"expert\":2,\"tokens\":400},"
    "{\"expert\":3,\"tokens\":300},{\"expert\":4,\"tokens\":2,\"fallback\":true}]},"
    "{\"layer\":1,\"experts\":[{\"expert\":0,\"tokens\":50}]}],"
    "\"tensors\":[{\"name\":\"model.layers.0.mlp.experts.1.up_proj.weight\",\"shape\":[4,8],"
    "\"from\":\"bf16\",\"to\":\"sub1\",\"method\":\"gptq\",\"tokens\":200,\"rmse\":0.1,"
    "\"sqnr_db\":5,\"zero_fraction\":0.5,\"bits_per_weight\":0.9}]}";

static struct rpt_report *report_of(const char *const *docs, size_t n)
{
    struct rpt_report *r;
    struct sb_err err = { 0 };
    ck_assert_int_eq(rpt_report_new(&r, &err), SB_OK);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "doc%zu.json", i);
        ck_assert_msg(rpt_report_add_json(r, name, docs[i], strlen(docs[i]), &err) == SB_OK,
                      "%s", err.msg);
    }
    return r;
}

static char *html_of(const struct rpt_report *r)
{
    char *html;
    size_t len;
    struct sb_err err = { 0 };
    ck_assert_int_eq(rpt_report_html(r, &html, &len, &err), SB_OK);
    ck_assert_uint_eq(strlen(html), len);
    return html;
}

/* the <svg>...</svg> after the first occurrence of `after` in html (owned) */
static char *chart_after(const char *html, const char *after)
{
    const char *p = strstr(html, after);
    ck_assert_msg(p != NULL, "no '%s' in the page", after);
    const char *a = strstr(p, "<svg"), *b = a ? strstr(a, "</svg>") : NULL;
    ck_assert(a && b);
    return strndup(a, (size_t)(b - a));
}

struct rect { double v, x, y, w, h; char cls[32]; };

/* every bar of a chart */
static int rects(const char *svg, struct rect *out, int max)
{
    int n = 0;
    for (const char *p = strstr(svg, "<rect class=\"bar "); p; p = strstr(p + 1, "<rect class=\"bar ")) {
        ck_assert_int_lt(n, max);
        struct rect *r = &out[n++];
        ck_assert_int_eq(sscanf(p, "<rect class=\"bar %31[^\"]\" data-v=\"%lf\" x=\"%lf\" y=\"%lf\" "
                                   "width=\"%lf\" height=\"%lf\"",
                                r->cls, &r->v, &r->x, &r->y, &r->w, &r->h), 6);
    }
    return n;
}

START_TEST(test_kinds)
{
    static const struct { const char *doc; enum rpt_kind k; } cases[] = {
        { convert_doc, RPT_CONVERT }, { verify_doc, RPT_VERIFY }, { mem_doc, RPT_MEM },
        { ppl_doc, RPT_PPL }, { inspect_doc, RPT_INSPECT }, { quant_doc, RPT_QUANT },
        /* no "command": the fields only quant writes */
        { "{\"method\":\"rtn\",\"tensors\":[]}", RPT_QUANT },
        { "{\"command\":\"mem\"}", RPT_MEM },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rpt_report *r = report_of(&cases[i].doc, 1);
        const char *name;
        ck_assert_uint_eq(r->n_docs, 1);
        ck_assert_msg(rpt_report_doc(r, 0, &name) == cases[i].k, "case %zu: %s", i,
                      rpt_kind_name(rpt_report_doc(r, 0, &name)));
        ck_assert_str_eq(name, "doc0.json");
        rpt_report_free(r);
    }
}
END_TEST

START_TEST(test_bad_documents)
{
    static const struct { const char *text, *msg; } cases[] = {
        { "{\"foo\":1}", "run.json: is not the --json output of subbit verify, quant, convert, "
                         "mem, ppl or inspect" },
        { "{\"command\":\"frobnicate\"}", "run.json: is not the --json output" },
        { "[1]", "run.json: document 1 is not the --json output" },
        { "{\n\"ppl\": 3,\n  oops}", "run.json: not valid JSON (line 3, byte" },
        /* a good document, then a bad one: nothing of the file is kept */
        { "{\"ppl\":3,\"tokens_scored\":5}\n{\"x\":2}", "run.json: document 2 is not the --json" },
        { "  \n", "run.json: empty, no JSON document" },
        { "[]", "run.json: an empty array" },
    };
    struct rpt_report *r = report_of(NULL, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_err err = { 0 };
        ck_assert_int_eq(rpt_report_add_json(r, "run.json", cases[i].text, strlen(cases[i].text),
                                             &err), SB_EFORMAT);
        ck_assert_msg(strstr(err.msg, cases[i].msg) == err.msg, "case %zu: '%s'", i, err.msg);
        ck_assert_uint_eq(r->n_docs, 0);
        ck_assert_uint_eq(r->n_ppls, 0);
    }
    struct sb_err err = { 0 };
    ck_assert_int_eq(rpt_report_add_file(r, test_tmpdir(), &err), SB_EIO);
    ck_assert(strstr(err.msg, ": is a directory") != NULL);
    rpt_report_free(r);
    test_tmpdir_cleanup();
}
END_TEST

START_TEST(test_many_documents)
{
    /* two documents one after another, then an array of two */
    static const char text[] = "{\"ppl\":3,\"tokens_scored\":5} {\"ppl\":4,\"tokens_scored\":6}";
    char arr[sizeof mem_doc + sizeof ppl_doc + 8];
    snprintf(arr, sizeof arr, "[%s,%s]", mem_doc, ppl_doc);
    const char *docs[] = { text, arr };
    struct rpt_report *r = report_of(docs, 2);
    const char *name;
    ck_assert_uint_eq(r->n_docs, 4);
    ck_assert_uint_eq(r->n_ppls, 3);
    ck_assert_uint_eq(r->n_mems, 1);
    ck_assert(rpt_report_doc(r, 1, &name) == RPT_PPL);
    ck_assert_str_eq(name, "doc0.json #2");
    ck_assert(rpt_report_doc(r, 2, &name) == RPT_MEM);
    ck_assert_str_eq(name, "doc1.json #1");
    ck_assert(r->ppls[1].ppl == 4);
    rpt_report_free(r);
}
END_TEST

START_TEST(test_values)
{
    const char *docs[] = { convert_doc, quant_doc, mem_doc, verify_doc };
    struct rpt_report *r = report_of(docs, 4);
    ck_assert_uint_eq(r->n_runs, 2);
    const struct rpt_run *u = &r->runs[0];
    ck_assert_uint_eq(u->n_t, 3);
    ck_assert_int_eq(u->t[0].layer, 3);
    ck_assert_int_eq(u->t[0].expert, 5);
    ck_assert(u->t[0].params == 24576);
    ck_assert(u->t[0].bits == 1.22265625);
    ck_assert(u->t[0].zero_fraction == 0.75);
    ck_assert(isinf(u->t[1].sqnr_db));           /* null beside rmse 0: exact */
    ck_assert_int_eq(u->t[1].layer, -1);
    ck_assert_int_eq(u->t[2].layer, 12);         /* GGUF names */
    ck_assert_int_eq(u->t[2].expert, -1);
    ck_assert(u->t[2].bits == 17408 * 8.0 / 16384);
    ck_assert(isnan(u->t[2].rmse) && isnan(u->t[2].sqnr_db) && isnan(u->t[2].zero_fraction));
    u = &r->runs[1];
    ck_assert(u->kind == RPT_QUANT);
    ck_assert_str_eq(u->method, "gptq");
    ck_assert(u->calib_tokens == 4096);
    ck_assert_uint_eq(u->n_routes, 6);
    ck_assert(u->routes[4].fallback && !u->routes[3].fallback);
    ck_assert(u->routes[5].layer == 1 && u->routes[5].tokens == 50);
    ck_assert(u->t[0].bits == 0.9 && u->t[0].tokens == 200);
    ck_assert(isnan(u->seconds));                /* no totals: missing, not 0 */
    /* mem: the six parts add up to the total (5254400 + 524288 + 2086456 + 265224 + 63276 +
     * 3072000 = 11265644); encoding "stored" resolves to the stored one */
    const struct rpt_mem *m = &r->mems[0];
    ck_assert_int_eq(m->n_parts, 6);
    double sum = 0;
    for (int i = 0; i < m->n_parts; i++)
        sum += m->bytes[i];
    ck_assert(sum == 11265644 && m->total == 11265644);
    ck_assert_str_eq(m->encoding, "bf16");
    ck_assert_int_eq(r->cmps[0].pass, 0);
    ck_assert(r->cmps[0].top1 == 0.9969);
    rpt_report_free(r);

    /* a total above the known parts gets an "other" part: a term this reader does not know */
    const char *more = "{\"params\":{},\"kv_cache\":{\"bytes\":100},\"weights_bytes\":300,"
                       "\"total\":1000}";
    r = report_of(&more, 1);
    ck_assert_int_eq(r->mems[0].n_parts, 3);
    ck_assert_str_eq(r->mems[0].label[2], "other");
    ck_assert(r->mems[0].bytes[2] == 600);
    rpt_report_free(r);
}
END_TEST

/* Bars start at 0 and their length is value x scale: 1, 2, 4 give 1 : 2 : 4;
 * a negative value extends left of the zero line; NAN draws nothing. */
START_TEST(test_hbar_lengths)
{
    const struct rpt_bar bars[] = {
        { "a", NULL, 1, NULL, NULL }, { "b", NULL, 2, NULL, NULL }, { "c", NULL, 4, NULL, NULL },
        { "d", NULL, NAN, NULL, NULL }, { "e", NULL, -3, NULL, NULL },
    };
    const struct rpt_axis ax = { "t", RPT_FMT_G, 0, 0 };
    struct rpt_buf b = { 0 };
    rpt_svg_hbars(&b, "x", bars, 5, &ax);
    ck_assert(!b.oom);
    struct rect rc[8];
    ck_assert_int_eq(rects(b.p, rc, 8), 4);
    const double unit = rc[0].w;
    ck_assert(unit > 20);
    ck_assert_msg(fabs(rc[1].w - 2 * unit) < 0.15 && fabs(rc[2].w - 4 * unit) < 0.15,
                  "widths %g %g %g", rc[0].w, rc[1].w, rc[2].w);
    ck_assert(fabs(rc[3].w - 3 * unit) < 0.15);
    ck_assert(fabs(rc[3].x + rc[3].w - rc[0].x) < 0.15);     /* ends at the zero line */
    ck_assert(rc[0].x == rc[1].x && rc[1].x == rc[2].x);
    ck_assert(strstr(b.p, ">n/a<") != NULL);
    sb_free(b.p);
}
END_TEST

/* One column per expert, grouped by layer; height proportional to the tokens;
 * the expert that fell back is drawn in the fallback colour. */
START_TEST(test_expert_columns)
{
    struct rpt_report *r = report_of((const char *[]){ quant_doc }, 1);
    char *html = html_of(r), *svg = chart_after(html, "Tokens routed per expert");
    struct rect rc[16];
    ck_assert_int_eq(rects(svg, rc, 16), 6);            /* 5 experts in layer 0, 1 in layer 1 */
    /* panel titles with the layer's mean: (100 + 200 + 400 + 300 + 2) / 5 = 200.4 */
    ck_assert(strstr(svg, ">layer 0, mean 200.4<") && strstr(svg, ">layer 1, mean 50<"));
    const double unit = rc[0].h / 100;
    for (int i = 0; i < 6; i++)
        ck_assert_msg(fabs(rc[i].h - rc[i].v * unit) < 0.15, "bar %d: %g for %g", i, rc[i].h, rc[i].v);
    ck_assert(rc[2].v == 400 && rc[4].v == 2);
    ck_assert_str_eq(rc[4].cls, "c-fail");
    /* 2 tokens make a bar too short to see: a marker above it, one for the one fallback */
    const char *mk = strstr(svg, "<path class=\"mark c-fail\"");
    ck_assert(mk != NULL && strstr(mk + 1, "<path class=\"mark") == NULL);
    ck_assert_str_eq(rc[3].cls, "c-main");
    /* columns share a baseline: y + h equal within a panel */
    ck_assert(fabs(rc[0].y + rc[0].h - (rc[2].y + rc[2].h)) < 0.15);
    free(svg);
    /* zero fraction: one expert tensor, 50 % */
    svg = chart_after(html, "Ternary zero fraction per expert");
    ck_assert_int_eq(rects(svg, rc, 16), 1);
    ck_assert(rc[0].v == 0.5);
    free(svg);
    sb_free(html);
    rpt_report_free(r);
}
END_TEST

/* The memory bar: segments side by side, each as long as its bytes. */
START_TEST(test_memory_stack)
{
    struct rpt_report *r = report_of((const char *[]){ mem_doc }, 1);
    char *html = html_of(r), *svg = chart_after(html, "<h2>Memory</h2>");
    struct rect rc[8];
    ck_assert_int_eq(rects(svg, rc, 8), 6);
    const double scale = rc[0].w / rc[0].v;
    for (int i = 0; i < 6; i++) {
        ck_assert(fabs(rc[i].w - rc[i].v * scale) < 0.15);
        if (i)
            ck_assert(fabs(rc[i].x - (rc[i - 1].x + rc[i - 1].w)) < 0.15);
    }
    ck_assert(rc[0].v == 5254400 && rc[1].v == 524288);
    ck_assert(strstr(html, "10.7 MiB") != NULL);        /* 11265644 B */
    free(svg);
    sb_free(html);
    rpt_report_free(r);
}
END_TEST

/* Names go through escaping everywhere: text, titles, the file list. */
START_TEST(test_escaping)
{
    static const char doc[] =
        "{\"output\":\"o<u>t\",\"tensors\":[{\"name\":\"layers.0.a<b&\\\"c'd\",\"shape\":[2,2],"
        "\"to\":\"x<y\",\"out_bytes\":2,\"rmse\":0.5,\"sqnr_db\":1}],\"totals\":{}}";
    struct rpt_report *r;
    struct sb_err err = { 0 };
    ck_assert_int_eq(rpt_report_new(&r, &err), SB_OK);
    ck_assert_int_eq(rpt_report_add_json(r, "a&b<.json", doc, strlen(doc), &err), SB_OK);
    char *html = html_of(r);
    ck_assert(strstr(html, "a<b") == NULL && strstr(html, "o<u") == NULL &&
              strstr(html, "x<y") == NULL && strstr(html, "a&b<") == NULL);
    ck_assert(strstr(html, "layers.0.a&lt;b&amp;&quot;c&#39;d") != NULL);
    ck_assert(strstr(html, "a&amp;b&lt;.json") != NULL);
    ck_assert(strstr(html, "o&lt;u&gt;t") != NULL);
    /* no stray markup: as many '<' as '>' (no '>' appears unescaped in text here) */
    size_t lt = 0, gt = 0;
    for (const char *p = html; *p; p++)
        lt += *p == '<', gt += *p == '>';
    ck_assert_uint_eq(lt, gt);
    sb_free(html);
    rpt_report_free(r);
}
END_TEST

START_TEST(test_sections_only_with_data)
{
    struct rpt_report *r = report_of((const char *[]){ mem_doc }, 1);
    char *html = html_of(r);
    ck_assert(strstr(html, "<h2>Memory</h2>") != NULL);
    ck_assert(strstr(html, "Quality against") == NULL && strstr(html, "<h2>Perplexity") == NULL &&
              strstr(html, "<h2>Conversion") == NULL && strstr(html, "Error per") == NULL);
    ck_assert(strstr(html, "<script") == NULL && strstr(html, "http://") == NULL &&
              strstr(html, "https://") == NULL);
    sb_free(html);
    rpt_report_free(r);
    /* a convert without --stats: bits, but no error charts */
    static const char nostats[] =
        "{\"output\":\"o\",\"tensors\":[{\"name\":\"w\",\"shape\":[4],\"to\":\"bf16\","
        "\"out_bytes\":8}],\"totals\":{}}";
    r = report_of((const char *[]){ nostats, verify_doc, ppl_doc }, 3);
    html = html_of(r);
    ck_assert(strstr(html, "Bits per weight by encoding") != NULL);
    ck_assert(strstr(html, "Error per") == NULL && strstr(html, "zero fraction") == NULL &&
              strstr(html, "<h2>Memory") == NULL);
    ck_assert(strstr(html, "<h2>Quality against the reference</h2>") != NULL);
    ck_assert(strstr(html, "<h2>Perplexity</h2>") != NULL);
    ck_assert(strstr(html, ">FAIL<") != NULL);          /* verify_doc failed its gate */
    sb_free(html);
    rpt_report_free(r);
}
END_TEST

/* Per layer: RMSE over all weights of the layer, from each tensor's rmse and
 * size: layer 0 holds 4 weights at rmse 1 and 12 at rmse 0, so
 * sqrt((4 * 1 + 12 * 0) / 16) = 0.5; SQNR from the sums of squares: the first
 * tensor has 10 dB, so reference energy 10 x its error, 10 dB for the layer. */
START_TEST(test_layer_error)
{
    static const char doc[] =
        "{\"output\":\"o\",\"tensors\":["
        "{\"name\":\"layers.0.a\",\"shape\":[2,2],\"to\":\"q4_0\",\"rmse\":1,\"sqnr_db\":10},"
        "{\"name\":\"layers.0.b\",\"shape\":[3,4],\"to\":\"bf16\",\"rmse\":0,\"sqnr_db\":null},"
        "{\"name\":\"layers.1.a\",\"shape\":[2,2],\"to\":\"q4_0\",\"rmse\":2,\"sqnr_db\":20}],"
        "\"totals\":{}}";
    struct rpt_report *r = report_of((const char *[]){ doc }, 1);
    char *html = html_of(r), *svg = chart_after(html, "Error per layer");
    struct rect rc[4];
    ck_assert_int_eq(rects(svg, rc, 4), 2);
    ck_assert_msg(fabs(rc[0].v - 0.5) < 1e-12 && fabs(rc[1].v - 2) < 1e-12, "%g %g", rc[0].v,
                  rc[1].v);
    free(svg);
    svg = chart_after(strstr(html, "Error per layer") + 20, "</svg>");   /* the SQNR chart */
    ck_assert_int_eq(rects(svg, rc, 4), 2);
    ck_assert(fabs(rc[0].v - 10) < 1e-9 && fabs(rc[1].v - 20) < 1e-9);
    free(svg);
    sb_free(html);
    rpt_report_free(r);
}
END_TEST

START_TEST(test_write_atomic)
{
    const char *path = test_tmpfile("r.html");
    struct sb_err err = { 0 };
    ck_assert_int_eq(test_write_file(path, "mine", 4), 0);
    const cJSON *doc = cJSON_Parse(ppl_doc);
    const char *name = "ppl";
    ck_assert_int_eq(rpt_render(&doc, &name, 1, path, 0, &err), SB_EIO);
    ck_assert(strstr(err.msg, "exists") != NULL);
    size_t len;
    char *got = test_read_file(path, &len);
    ck_assert(len == 4 && !memcmp(got, "mine", 4));     /* untouched */
    free(got);
    sb_err_clear(&err);
    ck_assert_int_eq(rpt_render(&doc, &name, 1, path, FMT_OUT_FORCE, &err), SB_OK);
    got = test_read_file(path, &len);
    ck_assert(strstr(got, "<!DOCTYPE html>") == got && strstr(got, "</html>\n") != NULL);
    ck_assert(strstr(got, "ppl (ppl)") != NULL);
    free(got);
    ck_assert_int_eq(test_dir_count(test_tmpdir()), 1);  /* no temp file left */
    cJSON_Delete((cJSON *)doc);
    test_tmpdir_cleanup();
}
END_TEST

/* Every allocation failing in turn: an error or a page, never a crash or leak. */
START_TEST(test_alloc_failures)
{
    int fails = 0;
    for (long n = 0; n < 400; n++) {
        struct rpt_report *r = NULL;
        struct sb_err err = { 0 };
        char *html = NULL;
        size_t len;
        sb_alloc_fail_after(n);
        int rc = rpt_report_new(&r, &err);
        const char *docs[] = { convert_doc, quant_doc, mem_doc, verify_doc, ppl_doc };
        for (size_t i = 0; rc == SB_OK && i < 5; i++)
            rc = rpt_report_add_json(r, "d", docs[i], strlen(docs[i]), &err);
        if (rc == SB_OK)
            rc = rpt_report_html(r, &html, &len, &err);
        const long injected = sb_alloc_injected();
        sb_alloc_fail_after(-1);
        ck_assert(rc == SB_OK || rc == SB_ENOMEM);
        fails += rc != SB_OK;
        if (rc == SB_OK)
            ck_assert(strstr(html, "</html>") != NULL);
        sb_free(html);
        rpt_report_free(r);
        if (!injected)
            break;
    }
    ck_assert_int_gt(fails, 10);
}
END_TEST

Suite *report_report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, test_kinds);
    tcase_add_test(tc, test_bad_documents);
    tcase_add_test(tc, test_many_documents);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_hbar_lengths);
    tcase_add_test(tc, test_expert_columns);
    tcase_add_test(tc, test_memory_stack);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_sections_only_with_data);
    tcase_add_test(tc, test_layer_error);
    tcase_add_test(tc, test_write_atomic);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
