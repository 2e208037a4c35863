/* test_quant.c: calibrated quantization end to end on a hand-built MoE whose
 * routing the test knows. The model is a synthetic Mixtral (1 layer, 4
 * experts, top-2) edited so that:
 *  - o_proj is zero, so the FFN's input is the embedding itself (normed), and
 *    the test can compute every token's expert input without the core;
 *  - every embedding has a large first component and router row 3 is -5 there,
 *    so expert 3 never wins a top-2 place: it must fall back to
 *    round-to-nearest and be reported.
 * Checked: the routed counts equal the test's own top-2 of the router logits
 * (double, plainly); expert 3 is rounded to nearest, said so, and its bytes
 * equal RTN's; expert 0's gate matrix equals GPTQ run directly with the
 * Hessian of exactly the tokens routed to it (and not the Hessian of all
 * tokens); the output bytes do not depend on the thread count. */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cvt_quant.h"
#include "cvt_synth.h"
#include "fmt_model.h"
#include "qnt_encode.h"
#include "qnt_gptq.h"
#include "qnt_tern.h"
#include "sb_alloc.h"
#include "test_util.h"
#include "vfy_ppl.h"

#define DIM 64
#define E 4
#define K 2
#define F 96
#define VOCAB 258
#define WIN 32
#define NWIN 12

static const char *PRE = "model.layers.0.block_sparse_moe.";

/* A tensor's data as an owned, editable f32 copy (synth writes f32). */
static float *own_f32(struct fmt_model *m, const char *name)
{
    struct fmt_tensor *t = (struct fmt_tensor *)fmt_model_find(m, name);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    ck_assert_int_eq(t->dtype, SB_DTYPE_F32);
    float *c = sb_malloc(t->nbytes);
    memcpy(c, t->data, t->nbytes);
    t->owned = c;
    t->data = c;
    t->map_index = -1;
    return c;
}

static struct fmt_model *routed_model(void)
{
    struct cvt_synth_opts o;
    cvt_synth_opts_init(&o, FMT_ARCH_MIXTRAL);
    o.layers = 1;
    o.dim = DIM;
    o.hidden = F;
    o.heads = 4;
    o.kv_heads = 2;
    o.experts = E;
    o.top_k = K;
    o.vocab = VOCAB;
    o.ctx = 64;
    o.dtype = SB_DTYPE_F32;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile("moe");
    ck_assert_msg(cvt_synth(&o, dir, &err) == SB_OK, "%s", err.msg);
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, dir, NULL, &err) == SB_OK, "%s", err.msg);
    float *wo = own_f32(m, "model.layers.0.self_attn.o_proj.weight");
    const struct fmt_tensor *to = fmt_model_find(m, "model.layers.0.self_attn.o_proj.weight");
    memset(wo, 0, to->nbytes);
    float *emb = own_f32(m, "model.embed_tokens.weight");
    for (int v = 0; v < VOCAB; v++)
        emb[v * DIM] = 8.0f;
    char name[160];
    snprintf(name, sizeof name, "%sgate.weight", PRE);
    float *R = own_f32(m, name);
    for (int e = 0; e < E; e++)
        R[e * DIM] = e == 3 ? -5.0f : 0.0f;
    return m;
}

/* rmsnorm as the core defines it (sum of squares in double) */
static void norm_row(const float *x, const float *w, float *o)
{
    double ss = 0;
    for (int i = 0; i < DIM; i++)
        ss += (double)x[i] * x[i];
    const float s = (float)(1.0 / sqrt(ss / DIM + 1e-5));
    for (int i = 0; i < DIM; i++)
        o[i] = w[i] * (x[i] * s);
}

static void make_plan_n(struct vfy_plan *p, size_t nwin)
{
    memset(p, 0, sizeof *p);
    p->n_tok = WIN * nwin;
    p->tok = sb_malloc(p->n_tok * sizeof *p->tok);
    p->win = sb_malloc(nwin * sizeof *p->win);
    p->n_win = nwin;
    uint64_t st = 42;
    for (size_t i = 0; i < p->n_tok; i++)
        p->tok[i] = (int32_t)(test_rand_u64(&st) % VOCAB);
    for (size_t w = 0; w < nwin; w++)
        p->win[w] = (struct vfy_window){ w * WIN, WIN, 1 };
}

static void make_plan(struct vfy_plan *p)
{
    make_plan_n(p, NWIN);
}

static float *tensor_f32(const struct fmt_model *m, const char *name, size_t *rows, size_t *cols)
{
    const struct fmt_tensor *t = fmt_model_find(m, name);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    uint64_t r, c;
    sb_shape_rows_cols(t->shape, t->ndim, &r, &c);
    float *f = malloc(r * c * sizeof *f);
    ck_assert_int_eq(qnt_dequantize_rows(t->dtype, t->data, r, c, &t->qp, 0, r, f), 0);
    *rows = r;
    *cols = c;
    return f;
}

static size_t count_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

START_TEST(test_quant_routed_experts)
{
    struct fmt_model *m = routed_model();
    struct vfy_plan plan;
    make_plan(&plan);
    const size_t N = plan.n_tok;
    struct cvt_quant_opts o;
    cvt_quant_opts_init(&o);
    o.conv.to = SB_DTYPE_TERN;
    o.conv.experts_only = true;
    o.conv.dense_to = SB_DTYPE_F32;
    struct cvt_quant_report *R;
    struct sb_err err = { 0 };
    const char *out = test_tmpfile("q.subbit");
    ck_assert_msg(cvt_quant(m, &plan, out, &o, &R, &err) == SB_OK, "%s", err.msg);

    /* the test's own routing: xn = norm(embedding), logits in double, top 2 */
    size_t r_, c_;
    float *emb = tensor_f32(m, "model.embed_tokens.weight", &r_, &c_);
    float *fn = tensor_f32(m, "model.layers.0.post_attention_layernorm.weight", &r_, &c_);
    char name[160];
    snprintf(name, sizeof name, "%sgate.weight", PRE);
    float *Rw = tensor_f32(m, name, &r_, &c_);
    float *xn = malloc(N * DIM * sizeof *xn);
    int *sel = malloc(N * K * sizeof *sel);
    uint64_t want[E] = { 0 };
    for (size_t t = 0; t < N; t++) {
        norm_row(emb + (size_t)plan.tok[t] * DIM, fn, xn + t * DIM);
        double lg[E];
        for (int e = 0; e < E; e++) {
            lg[e] = 0;
            for (int d = 0; d < DIM; d++)
                lg[e] += (double)Rw[e * DIM + d] * xn[t * DIM + d];
        }
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++)
                if ((k == 0 || e != sel[t * K]) && (best < 0 || lg[e] > lg[best]))
                    best = e;
            sel[t * K + k] = best;
            want[best]++;
        }
    }
    ck_assert_uint_eq(want[3], 0);
    for (int e = 0; e < E; e++)
        ck_assert_msg(R->expert_tokens[e] == want[e], "expert %d: %llu tokens, want %llu", e,
                      (unsigned long long)R->expert_tokens[e], (unsigned long long)want[e]);
    /* expert 3: rounded to nearest, and said so */
    int seen3 = 0;
    for (size_t i = 0; i < R->n_m; i++) {
        const struct cvt_qmat *q = &R->m[i];
        if (q->expert == 3) {
            seen3++;
            ck_assert(!q->gptq);
            ck_assert_str_eq(q->why, "no calibration tokens routed");
        } else if (q->expert >= 0) {
            ck_assert_msg(q->gptq, "%s not GPTQ", q->name);
            ck_assert_uint_eq(q->tokens, want[q->expert]);
            ck_assert_msg(q->err < q->err_rtn, "%s: gptq %g >= rtn %g", q->name, q->err, q->err_rtn);
        }
    }
    ck_assert_int_eq(seen3, 3);
    ck_assert_uint_eq(R->n_m, 3u * E);   /* experts only: nothing else quantized */

    struct fmt_model *q;
    ck_assert_msg(fmt_model_open(&q, out, NULL, &err) == SB_OK, "%s", err.msg);
    /* expert 3's bytes are round-to-nearest's */
    snprintf(name, sizeof name, "%sexperts.3.w1.weight", PRE);
    const struct fmt_tensor *t3 = fmt_model_find(q, name);
    ck_assert_int_eq(t3->dtype, SB_DTYPE_TERN);
    float *W3 = tensor_f32(m, name, &r_, &c_);
    void *rtn = malloc(t3->nbytes);
    qnt_tern_quantize_rows(W3, r_, c_, rtn);
    ck_assert_mem_eq(t3->data, rtn, t3->nbytes);

    /* expert 0's gate: GPTQ with the Hessian of exactly its routed tokens */
    snprintf(name, sizeof name, "%sexperts.0.w1.weight", PRE);
    size_t rows, cols;
    float *W0 = tensor_f32(m, name, &rows, &cols), *got = tensor_f32(q, name, &rows, &cols);
    double *H0 = calloc(DIM * DIM, sizeof *H0), *Hall = calloc(DIM * DIM, sizeof *Hall);
    for (size_t t = 0; t < N; t++) {
        const bool routed = sel[t * K] == 0 || sel[t * K + 1] == 0;
        for (int i = 0; i < DIM; i++)
            for (int j = i; j < DIM; j++) {
                const double v = (double)xn[t * DIM + i] * xn[t * DIM + j];
                Hall[i * DIM + j] += v;
                if (routed)
                    H0[i * DIM + j] += v;
            }
    }
    void *scr = malloc(qnt_gptq_scratch_bytes(SB_DTYPE_TERN, NULL, rows, cols, NULL));
    void *b0 = malloc(t3->nbytes), *ball = malloc(t3->nbytes);
    ck_assert_int_eq(qnt_gptq_quantize(SB_DTYPE_TERN, NULL, W0, rows, cols, H0, NULL, scr, b0, NULL), 0);
    ck_assert_int_eq(qnt_gptq_quantize(SB_DTYPE_TERN, NULL, W0, rows, cols, Hall, NULL, scr, ball, NULL), 0);
    float *q0 = malloc(rows * cols * sizeof *q0), *qall = malloc(rows * cols * sizeof *qall);
    qnt_tern_dequantize_rows(b0, cols, 0, rows, q0);
    qnt_tern_dequantize_rows(ball, cols, 0, rows, qall);
    const size_t d0 = count_diff(got, q0, rows * cols), dall = count_diff(got, qall, rows * cols);
    /* summation order differs (dsyrk vs this loop): a rare weight on a threshold may flip */
    ck_assert_msg(d0 <= rows * cols / 500, "routed Hessian: %zu of %zu differ", d0, rows * cols);
    ck_assert_msg(dall > 10 * (d0 + 1), "all-token Hessian should differ much more (%zu vs %zu)",
                  dall, d0);

    /* the same bytes at another thread count */
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(nt == 1 ? 2 : 1);
    struct cvt_quant_report *R2;
    const char *out2 = test_tmpfile("q2.subbit");
    ck_assert_msg(cvt_quant(m, &plan, out2, &o, &R2, &err) == SB_OK, "%s", err.msg);
    omp_set_num_threads(nt);
    size_t l1, l2;
    char *f1 = test_read_file(out, &l1), *f2 = test_read_file(out2, &l2);
    ck_assert_uint_eq(l1, l2);
    ck_assert_mem_eq(f1, f2, l1);
    free(f1);
    free(f2);
    cvt_quant_report_free(R2);
#endif
    free(emb); free(fn); free(Rw); free(xn); free(sel); free(W3); free(rtn); free(W0); free(got);
    free(H0); free(Hall); free(scr); free(b0); free(ball); free(q0); free(qall);
    fmt_model_free(q);
    cvt_quant_report_free(R);
    vfy_plan_release(&plan);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

/* Every grid through the whole pipeline: GPTQ'd bytes are valid blocks the
 * decoders read, q4_0 into GGUF (stacked experts) too, and GPTQ lowers each
 * matrix's calibration output error below round-to-nearest's. */
START_TEST(test_quant_grids)
{
    static const struct { enum sb_dtype to; const char *out; bool fit; } c[] = {
        { SB_DTYPE_Q4_0, "q.gguf", true }, { SB_DTYPE_Q8_0, "q.subbit", true },
        { SB_DTYPE_INT8, "q", true }, { SB_DTYPE_SUB1, "s.subbit", true },
        { SB_DTYPE_Q8_0, "n.subbit", false },
    };
    struct cvt_synth_opts so;
    cvt_synth_opts_init(&so, FMT_ARCH_MIXTRAL);
    so.layers = 2;
    so.dim = 64;
    so.hidden = 128;
    so.experts = 4;
    so.top_k = 2;
    so.ctx = 64;
    struct sb_err err = { 0 };
    const char *dir = test_tmpfile("moe2");
    ck_assert_msg(cvt_synth(&so, dir, &err) == SB_OK, "%s", err.msg);
    struct fmt_model *m;
    ck_assert_msg(fmt_model_open(&m, dir, NULL, &err) == SB_OK, "%s", err.msg);
    /* q8_0/q4_0: 2,048 tokens, so the dense matrices (64 columns) see the
     * CVT_QUANT_FIT_TOKENS a column act_fit needs and the experts (about half
     * the tokens each) do not */
    const bool q8x = c[_i].to == SB_DTYPE_Q4_0 || c[_i].to == SB_DTYPE_Q8_0;
    struct vfy_plan plan;
    make_plan_n(&plan, q8x ? 64 : NWIN);
    struct cvt_quant_opts o;
    cvt_quant_opts_init(&o);
    o.conv.to = c[_i].to;
    o.act_fit = c[_i].fit;
    struct cvt_quant_report *R;
    const char *out = test_tmpfile(c[_i].out);
    ck_assert_msg(cvt_quant(m, &plan, out, &o, &R, &err) == SB_OK, "%s", err.msg);
    ck_assert(R->n_m > 0);
    size_t nfit = 0;
    for (size_t i = 0; i < R->n_m; i++) {
        const struct cvt_qmat *q = &R->m[i];
        ck_assert_msg(q->gptq, "%s: %s", q->name, q->why);
        ck_assert_msg(q->err < q->err_rtn, "%s: gptq %g >= rtn %g", q->name, q->err, q->err_rtn);
        const bool want = q8x && c[_i].fit && q->expert < 0;
        ck_assert_msg(q->act_fit == want, "%s: act_fit %d, want %d (%" PRIu64 " tokens)", q->name,
                      q->act_fit, want, q->tokens);
        ck_assert(!want || q->tokens >= CVT_QUANT_FIT_TOKENS * q->cols);
        nfit += q->act_fit;
    }
    ck_assert(nfit == 0 || nfit < R->n_m);
    struct fmt_model *q;
    ck_assert_msg(fmt_model_open(&q, out, NULL, &err) == SB_OK, "%s", err.msg);
    size_t nq = 0;
    for (size_t i = 0; i < q->n_tensors; i++)
        nq += q->tensors[i].dtype == (c[_i].to == SB_DTYPE_INT8 ? SB_DTYPE_INT8 : c[_i].to);
    ck_assert_msg(nq > 0, "no %s tensor in the output", sb_dtype_name(c[_i].to));
    fmt_model_free(q);
    cvt_quant_report_free(R);
    vfy_plan_release(&plan);
    fmt_model_free(m);
    test_tmpdir_cleanup();
}
END_TEST

Suite *convert_quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_quant_routed_experts);
    tcase_add_loop_test(tc, test_quant_grids, 0, 5);
    suite_add_tcase(s, tc);
    return s;
}
