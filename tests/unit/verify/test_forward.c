/* test_forward.c: the reference core on tiny synthetic models built in memory.
 * - an independent float64 forward written here (whole sequence at once, no
 *   cache, causal mask) for dense, Mixtral-style and Qwen2-MoE-style models;
 * - RoPE: a GGUF-named interleaved model and its HF-named, Q/K-permuted
 *   half-split twin (formats.md §2.8) give the same logits;
 * - MoE routing worked by hand on a 2-expert toy;
 * - batched == token by token, and a KV cache filled in two calls == one call;
 * - a missing tensor is one error naming it. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_model.h"
#include "qnt_encode.h"
#include "qnt_matvec.h"
#include "qnt_type.h"
#include "sb_alloc.h"
#include "test_util.h"
#include "vfy_metrics.h"
#include "vfy_gen.h"
#include "vfy_model.h"
#include "vfy_ppl.h"
#include "vfy_sample.h"
#include "vfy_tok.h"

#ifdef _OPENMP
#include <omp.h>
#endif

struct spec {
    int L, dim, nh, nkv, hd, F, V, E, K;
    bool qwen, bias, tied, hf, packed;
    int step, S;   /* qwen: decoder_sparse_step, shared expert width */
};

/* weights in [out, in] row-major, GGUF orientation (interleaved RoPE) */
struct lw {
    float *an, *fn, *wq, *wk, *wv, *wo, *bq, *bk, *bv;
    float *g, *u, *d;                 /* dense */
    float *router, *eg[8], *eu[8], *ed[8];
    float *sg, *su, *sd, *sgi;
};
struct tm {
    struct spec s;
    float *embd, *outn, *out;
    struct lw l[4];
};

static uint64_t seed = 1;

/* Each test's models from the same seed, run alone (forked) or after others
 * in one process (CK_FORK=no, the sanitizer pass): the suite's setup. */
static void seed_reset(void)
{
    seed = 1;
}

static float *rnd(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    test_fill_normal(p, n, seed++);
    for (size_t i = 0; i < n; i++)
        p[i] *= scale;
    return p;
}

static bool layer_moe(const struct spec *s, int l)
{
    return s->E > 0 && (!s->qwen || (l + 1) % s->step == 0);
}

static void tm_make(struct tm *t, struct spec s)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    const size_t D = s.dim, qd = s.nh * s.hd, kd = s.nkv * s.hd;
    t->embd = rnd(s.V * D, 1.0f);
    t->outn = rnd(D, 0.2f);
    for (size_t i = 0; i < D; i++)
        t->outn[i] += 1.0f;
    t->out = s.tied ? t->embd : rnd(s.V * D, 0.3f);
    for (int l = 0; l < s.L; l++) {
        struct lw *w = &t->l[l];
        w->an = rnd(D, 0.2f);
        w->fn = rnd(D, 0.2f);
        for (size_t i = 0; i < D; i++) {
            w->an[i] += 1.0f;
            w->fn[i] += 1.0f;
        }
        w->wq = rnd(qd * D, 0.4f);
        w->wk = rnd(kd * D, 0.4f);
        w->wv = rnd(kd * D, 0.4f);
        w->wo = rnd(D * qd, 0.3f);
        if (s.bias) {
            w->bq = rnd(qd, 0.3f);
            w->bk = rnd(kd, 0.3f);
            w->bv = rnd(kd, 0.3f);
        }
        if (!layer_moe(&s, l)) {
            w->g = rnd(s.F * D, 0.3f);
            w->u = rnd(s.F * D, 0.3f);
            w->d = rnd(D * s.F, 0.3f);
            continue;
        }
        w->router = rnd(s.E * D, 0.8f);
        for (int e = 0; e < s.E; e++) {
            w->eg[e] = rnd(s.F * D, 0.3f);
            w->eu[e] = rnd(s.F * D, 0.3f);
            w->ed[e] = rnd(D * s.F, 0.3f);
        }
        if (s.S) {
            w->sg = rnd(s.S * D, 0.3f);
            w->su = rnd(s.S * D, 0.3f);
            w->sd = rnd(D * s.S, 0.3f);
            w->sgi = rnd(D, 0.5f);
        }
    }
}

static void tm_free(struct tm *t)
{
    free(t->embd);
    free(t->outn);
    if (!t->s.tied)
        free(t->out);
    for (int l = 0; l < t->s.L; l++) {
        struct lw *w = &t->l[l];
        float *all[] = { w->an, w->fn, w->wq, w->wk, w->wv, w->wo, w->bq, w->bk, w->bv, w->g,
                         w->u, w->d, w->router, w->sg, w->su, w->sd, w->sgi };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            free(all[i]);
        for (int e = 0; e < 8; e++) {
            free(w->eg[e]);
            free(w->eu[e]);
            free(w->ed[e]);
        }
    }
}

/* ---- the fmt_model ------------------------------------------------------------ */

static void add(struct fmt_model *m, const char *name, const float *v, int ndim, int64_t d0,
                int64_t d1, int64_t d2)
{
    const int64_t shape[3] = { d0, d1, d2 };
    size_t n = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1) * (ndim > 2 ? (size_t)d2 : 1);
    test_model_add(m, name, SB_DTYPE_F32, ndim, shape, v, n * 4);
}

/* HF row order of q/k from the GGUF one (formats.md §2.8): HF row h*hd + t*hd/2 + j
 * is GGUF row h*hd + 2j + t. */
static float *unpermute(const float *w, int nheads, int hd, int cols)
{
    float *o = malloc((size_t)nheads * hd * cols * sizeof *o);
    for (int h = 0; h < nheads; h++)
        for (int j = 0; j < hd / 2; j++)
            for (int t = 0; t < 2; t++)
                memcpy(o + ((size_t)h * hd + t * hd / 2 + j) * cols,
                       w + ((size_t)h * hd + 2 * j + t) * cols, (size_t)cols * sizeof *o);
    return o;
}

static struct fmt_model *tm_model(const struct tm *t)
{
    const struct spec *s = &t->s;
    struct fmt_model *m = fmt_model_new();
    char n[160];
    const int D = s->dim, qd = s->nh * s->hd, kd = s->nkv * s->hd;
    m->path = sb_strdup(s->hf ? "toy-hf" : "toy.gguf");
    m->has_arch = true;
    struct fmt_arch *a = &m->arch;
    a->kind = s->qwen ? FMT_ARCH_QWEN2_MOE : s->E ? FMT_ARCH_MIXTRAL : FMT_ARCH_LLAMA;
    a->n_layers = s->L;
    a->dim = D;
    a->hidden_dim = s->F;
    a->n_heads = s->nh;
    a->n_kv_heads = s->nkv;
    a->head_dim = s->hd;
    a->vocab_size = s->V;
    a->n_ctx = 64;
    a->norm_eps = 1e-5f;
    a->rope_theta = 10000.0f;
    a->rope_layout = s->hf ? FMT_ROPE_HALF : FMT_ROPE_INTERLEAVED;
    a->tied_embeddings = s->tied;
    a->qkv_bias = s->bias;
    a->n_experts = s->E;
    a->n_experts_used = s->K;
    a->moe_hidden_dim = s->F;
    a->shared_hidden_dim = s->S;
    a->norm_topk_prob = false;
    a->decoder_sparse_step = s->step;
    add(m, s->hf ? "model.embed_tokens.weight" : "token_embd.weight", t->embd, 2, s->V, D, 0);
    add(m, s->hf ? "model.norm.weight" : "output_norm.weight", t->outn, 1, D, 0, 0);
    if (!s->tied)
        add(m, s->hf ? "lm_head.weight" : "output.weight", t->out, 2, s->V, D, 0);
    for (int l = 0; l < s->L; l++) {
        const struct lw *w = &t->l[l];
#define N(g, h) (snprintf(n, sizeof n, s->hf ? "model.layers.%d." h : "blk.%d." g, l), n)
        add(m, N("attn_norm.weight", "input_layernorm.weight"), w->an, 1, D, 0, 0);
        add(m, N("ffn_norm.weight", "post_attention_layernorm.weight"), w->fn, 1, D, 0, 0);
        float *q = s->hf ? unpermute(w->wq, s->nh, s->hd, D) : NULL;
        float *k = s->hf ? unpermute(w->wk, s->nkv, s->hd, D) : NULL;
        add(m, N("attn_q.weight", "self_attn.q_proj.weight"), q ? q : w->wq, 2, qd, D, 0);
        add(m, N("attn_k.weight", "self_attn.k_proj.weight"), k ? k : w->wk, 2, kd, D, 0);
        free(q);
        free(k);
        add(m, N("attn_v.weight", "self_attn.v_proj.weight"), w->wv, 2, kd, D, 0);
        add(m, N("attn_output.weight", "self_attn.o_proj.weight"), w->wo, 2, D, qd, 0);
        if (s->bias) {
            float *bq = s->hf ? unpermute(w->bq, s->nh, s->hd, 1) : NULL;
            float *bk = s->hf ? unpermute(w->bk, s->nkv, s->hd, 1) : NULL;
            add(m, N("attn_q.bias", "self_attn.q_proj.bias"), bq ? bq : w->bq, 1, qd, 0, 0);
            add(m, N("attn_k.bias", "self_attn.k_proj.bias"), bk ? bk : w->bk, 1, kd, 0, 0);
            add(m, N("attn_v.bias", "self_attn.v_proj.bias"), w->bv, 1, kd, 0, 0);
            free(bq);
            free(bk);
        }
        if (!layer_moe(s, l)) {
            add(m, N("ffn_gate.weight", "mlp.gate_proj.weight"), w->g, 2, s->F, D, 0);
            add(m, N("ffn_up.weight", "mlp.up_proj.weight"), w->u, 2, s->F, D, 0);
            add(m, N("ffn_down.weight", "mlp.down_proj.weight"), w->d, 2, D, s->F, 0);
            continue;
        }
        add(m, N("ffn_gate_inp.weight", "mlp.gate.weight"), w->router, 2, s->E, D, 0);
        if (s->hf && !s->packed) {
            for (int e = 0; e < s->E; e++) {
                snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
                add(m, n, w->eg[e], 2, s->F, D, 0);
                snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
                add(m, n, w->eu[e], 2, s->F, D, 0);
                snprintf(n, sizeof n, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
                add(m, n, w->ed[e], 2, D, s->F, 0);
            }
        } else if (s->hf) {   /* packed: gate_up [E, 2F, D], down [E, D, F] */
            size_t fd = (size_t)s->F * D;
            float *gu = malloc(2 * fd * s->E * sizeof *gu), *dn = malloc(fd * s->E * sizeof *dn);
            for (int e = 0; e < s->E; e++) {
                memcpy(gu + 2 * fd * e, w->eg[e], fd * 4);
                memcpy(gu + 2 * fd * e + fd, w->eu[e], fd * 4);
                memcpy(dn + fd * e, w->ed[e], fd * 4);
            }
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.gate_up_proj", l);
            add(m, n, gu, 3, s->E, 2 * s->F, D);
            snprintf(n, sizeof n, "model.layers.%d.mlp.experts.down_proj", l);
            add(m, n, dn, 3, s->E, D, s->F);
            free(gu);
            free(dn);
        } else {   /* GGUF 3-D: [E, F, D] and [E, D, F] */
            size_t fd = (size_t)s->F * D;
            float *g = malloc(fd * s->E * 4), *u = malloc(fd * s->E * 4), *d = malloc(fd * s->E * 4);
            for (int e = 0; e < s->E; e++) {
                memcpy(g + fd * e, w->eg[e], fd * 4);
                memcpy(u + fd * e, w->eu[e], fd * 4);
                memcpy(d + fd * e, w->ed[e], fd * 4);
            }
            add(m, N("ffn_gate_exps.weight", "x"), g, 3, s->E, s->F, D);
            add(m, N("ffn_up_exps.weight", "x"), u, 3, s->E, s->F, D);
            add(m, N("ffn_down_exps.weight", "x"), d, 3, s->E, D, s->F);
            free(g);
            free(u);
            free(d);
        }
        if (s->S) {
            add(m, N("ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"), w->sgi, 2, 1, D, 0);
            add(m, N("ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight"), w->sg, 2, s->S, D, 0);
            add(m, N("ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight"), w->su, 2, s->S, D, 0);
            add(m, N("ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight"), w->sd, 2, D, s->S, 0);
        }
#undef N
    }
    return m;
}

/* ---- the float64 oracle: whole sequence, no cache, interleaved RoPE ------------- */

static void mv(const float *w, const double *x, int rows, int cols, double *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int j = 0; j < cols; j++)
            s += (double)w[(size_t)r * cols + j] * x[j];
        y[r] = s;
    }
}

static void rms(const double *x, const float *w, int n, double *o)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++)
        o[i] = w[i] * x[i] * s;
}

static void ffn(const float *g, const float *u, const float *d, int F, int D, const double *x,
                double *out)
{
    double h[64], h2[64];
    mv(g, x, F, D, h);
    mv(u, x, F, D, h2);
    for (int i = 0; i < F; i++)
        h[i] = h[i] / (1 + exp(-h[i])) * h2[i];
    mv(d, h, D, F, out);
}

static void oracle(const struct tm *t, const int32_t *tok, int n, double *logits)
{
    const struct spec *s = &t->s;
    const int D = s->dim, hd = s->hd, qd = s->nh * hd, kd = s->nkv * hd;
    double *X = calloc((size_t)n * D, 8), *Q = calloc((size_t)n * qd, 8);
    double *K = calloc((size_t)n * kd, 8), *V = calloc((size_t)n * kd, 8);
    double xn[64], o[64], tmp[64], att[64];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            X[i * D + d] = t->embd[(size_t)tok[i] * D + d];
    for (int l = 0; l < s->L; l++) {
        const struct lw *w = &t->l[l];
        for (int i = 0; i < n; i++) {
            rms(X + i * D, w->an, D, xn);
            mv(w->wq, xn, qd, D, Q + i * qd);
            mv(w->wk, xn, kd, D, K + i * kd);
            mv(w->wv, xn, kd, D, V + i * kd);
            for (int d = 0; s->bias && d < qd; d++)
                Q[i * qd + d] += w->bq[d];
            for (int d = 0; s->bias && d < kd; d++) {
                K[i * kd + d] += w->bk[d];
                V[i * kd + d] += w->bv[d];
            }
            for (int v = 0; v < qd + kd; v++) {   /* rotate pairs (2j, 2j+1) */
                if (v % 2)
                    continue;
                double *p = v < qd ? Q + i * qd + v : K + i * kd + (v - qd);
                int j = (v % hd) / 2;
                double ang = i * pow(10000.0, -2.0 * j / hd), c = cos(ang), sn = sin(ang);
                double a = p[0], b = p[1];
                p[0] = a * c - b * sn;
                p[1] = a * sn + b * c;
            }
        }
        for (int i = 0; i < n; i++) {
            for (int h = 0; h < s->nh; h++) {
                int kh = h / (s->nh / s->nkv);
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double sc = 0;
                    for (int d = 0; d < hd; d++)
                        sc += Q[i * qd + h * hd + d] * K[j * kd + kh * hd + d];
                    att[j] = sc / sqrt((double)hd);
                    mx = att[j] > mx ? att[j] : mx;
                }
                for (int j = 0; j <= i; j++)
                    sum += (att[j] = exp(att[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++)
                        acc += att[j] / sum * V[j * kd + kh * hd + d];
                    o[h * hd + d] = acc;
                }
            }
            mv(w->wo, o, D, qd, tmp);
            for (int d = 0; d < D; d++)
                X[i * D + d] += tmp[d];
            rms(X + i * D, w->fn, D, xn);
            double acc[64] = { 0 };
            if (!layer_moe(s, l)) {
                ffn(w->g, w->u, w->d, s->F, D, xn, acc);
            } else {
                double r[8], p[8], mx = -1e300, sum = 0, wsum = 0;
                int sel[8];
                mv(w->router, xn, s->E, D, r);
                for (int e = 0; e < s->E; e++)
                    mx = r[e] > mx ? r[e] : mx;
                for (int e = 0; e < s->E; e++)
                    sum += (p[e] = exp(r[e] - mx));
                for (int k = 0; k < s->K; k++) {
                    int b = -1;
                    for (int e = 0; e < s->E; e++) {
                        int taken = 0;
                        for (int j = 0; j < k; j++)
                            taken |= sel[j] == e;
                        if (!taken && (b < 0 || p[e] > p[b]))
                            b = e;
                    }
                    sel[k] = b;
                    wsum += p[b] / sum;
                }
                for (int k = 0; k < s->K; k++) {
                    double wt = p[sel[k]] / sum / (s->qwen ? 1.0 : wsum);
                    ffn(w->eg[sel[k]], w->eu[sel[k]], w->ed[sel[k]], s->F, D, xn, tmp);
                    for (int d = 0; d < D; d++)
                        acc[d] += wt * tmp[d];
                }
                if (s->S) {
                    double g = 0;
                    for (int d = 0; d < D; d++)
                        g += w->sgi[d] * xn[d];
                    ffn(w->sg, w->su, w->sd, s->S, D, xn, tmp);
                    for (int d = 0; d < D; d++)
                        acc[d] += tmp[d] / (1 + exp(-g));
                }
            }
            for (int d = 0; d < D; d++)
                X[i * D + d] += acc[d];
        }
    }
    for (int i = 0; i < n; i++) {
        rms(X + i * D, t->outn, D, xn);
        mv(t->out, xn, s->V, D, logits + (size_t)i * s->V);
    }
    free(X);
    free(Q);
    free(K);
    free(V);
}

/* ---- helpers ------------------------------------------------------------------ */

static const int32_t toks[12] = { 3, 7, 1, 0, 19, 5, 5, 12, 8, 2, 17, 11 };
#define NT 12

static float *core_logits(const struct fmt_model *m, size_t batch, size_t split)
{
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    struct vfy_ctx *ctx;
    ck_assert_msg(vfy_model_new(&vm, m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(vfy_ctx_new(&ctx, vm, 32, batch, &err), 0);
    const size_t V = (size_t)vfy_model_info(vm)->vocab;
    float *lg = malloc(NT * V * sizeof *lg);
    if (split == 0) {
        ck_assert_int_eq(vfy_forward(ctx, toks, NT, 0, lg, true, &err), 0);
    } else {
        ck_assert_int_eq(vfy_forward(ctx, toks, split, 0, lg, true, &err), 0);
        ck_assert_int_eq(vfy_forward(ctx, toks + split, NT - split, split, lg + split * V, true, &err), 0);
    }
    vfy_ctx_free(ctx);
    vfy_model_free(vm);
    return lg;
}

static void assert_close(const float *a, const double *b, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol, "%s[%zu]: %.8g vs %.8g", what, i, (double)a[i], b[i]);
}

static const struct spec dense = { 2, 16, 4, 2, 4, 24, 20, 0, 0, false, false, false, false, false, 1, 0 };
static const struct spec mixtral = { 2, 16, 4, 2, 4, 12, 20, 4, 2, false, false, true, false, false, 1, 0 };
static const struct spec qwen = { 2, 16, 4, 2, 4, 12, 20, 4, 2, true, true, false, false, false, 2, 10 };

static const struct spec *oracle_specs[] = { &dense, &mixtral, &qwen };

/* the core against the float64 oracle, GGUF names */
START_TEST(test_oracle)
{
    struct tm t;
    tm_make(&t, *oracle_specs[_i]);
    struct fmt_model *m = tm_model(&t);
    double *want = malloc(NT * t.s.V * sizeof *want);
    oracle(&t, toks, NT, want);
    float *got = core_logits(m, 32, 0);
    assert_close(got, want, (size_t)NT * t.s.V, 2e-5, "logits");
    free(got);
    free(want);
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

/* the HF-named half-split twin (q/k rows permuted), classic and packed experts */
START_TEST(test_rope_twin)
{
    struct tm t;
    struct spec s = *oracle_specs[_i % 3];
    tm_make(&t, s);
    struct fmt_model *g = tm_model(&t);
    t.s.hf = true;
    t.s.packed = _i >= 3;
    struct fmt_model *h = tm_model(&t);
    float *a = core_logits(g, 32, 0), *b = core_logits(h, 32, 0);
    for (size_t i = 0; i < (size_t)NT * s.V; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f, "[%zu] %.8g vs %.8g", i, (double)a[i], (double)b[i]);
    free(a);
    free(b);
    fmt_model_free(g);
    fmt_model_free(h);
    tm_free(&t);
}
END_TEST

/* Experts side by side (moe(): 2 threads, 8 experts, top 3, a batch of 12
 * tokens reaching at least 4 experts a layer) give the logits of one thread
 * and of token by token bit for bit: each token adds its 3 experts in index
 * order on every path (the order shows in the last bits with 3 terms). */
START_TEST(test_moe_side_by_side)
{
    const struct spec mix3 = { 2, 16, 4, 2, 4, 12, 20, 8, 3, false, false, true, false, false, 1, 0 };
    struct tm t;
    tm_make(&t, mix3);
    struct fmt_model *m = tm_model(&t);
    double *want = malloc(NT * t.s.V * sizeof *want);
    oracle(&t, toks, NT, want);
#ifdef _OPENMP
    const int nt0 = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    float *one = core_logits(m, 32, 0);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    float *side = core_logits(m, 32, 0), *tok = core_logits(m, 1, 0);
#ifdef _OPENMP
    omp_set_num_threads(nt0);
#endif
    assert_close(side, want, (size_t)NT * t.s.V, 2e-5, "logits");
    for (size_t i = 0; i < (size_t)NT * t.s.V; i++) {
        ck_assert_msg(!memcmp(&side[i], &one[i], sizeof *one), "[%zu] %a vs %a (one thread)", i,
                      (double)side[i], (double)one[i]);
        ck_assert_msg(!memcmp(&side[i], &tok[i], sizeof *tok), "[%zu] %a vs %a (token by token)", i,
                      (double)side[i], (double)tok[i]);
    }
    /* the batch did reach 4 experts or more in each layer (so went side by side) */
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    struct vfy_ctx *ctx;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), 0);
    ck_assert_int_eq(vfy_ctx_new(&ctx, vm, 32, 32, &err), 0);
    ck_assert_int_eq(vfy_forward(ctx, toks, NT, 0, NULL, false, &err), 0);
    for (int l = 0; l < 2; l++) {
        int used = 0;
        uint64_t sum = 0;
        for (int e = 0; e < 8; e++) {
            used += vfy_ctx_expert_counts(ctx)[l * 8 + e] != 0;
            sum += vfy_ctx_expert_counts(ctx)[l * 8 + e];
        }
        ck_assert_int_ge(used, 4);
        ck_assert_uint_eq(sum, NT * 3);
    }
    vfy_ctx_free(ctx);
    vfy_model_free(vm);
    free(one);
    free(side);
    free(tok);
    free(want);
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

/* vfy_model_pack_mat: a q4_0 / q8_0 replacement (what quant installs) computed
 * from a pack gives the unpacked product bit for bit, and the product does read
 * the pack (a zeroed pack changes it); unpack goes back; f32, a short buffer or
 * a second pack are refused. Skips the packed checks on a CPU without the
 * packed kernels. */
START_TEST(test_pack_mat)
{
    const struct spec wide = { 1, 64, 4, 2, 16, 64, 20, 0, 0, false, false, false, false, false, 1, 0 };
    struct tm t;
    tm_make(&t, wide);
    struct fmt_model *fm = tm_model(&t);
    struct vfy_model *vm;
    struct sb_err err = { 0 };
    ck_assert_int_eq(vfy_model_new_opts(&vm, fm, VFY_MODEL_NO_PACK, &err), SB_OK);
    const size_t R = 64, C = 64, n = 24;
    float X[24 * 64], Y0[24 * 64], Y1[24 * 64], Y2[24 * 64];
    for (size_t i = 0; i < n * C; i++)
        X[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    static uint8_t buf[1 << 16] __attribute__((aligned(64)));
    /* the dense model's f32 gate: not packed */
    ck_assert(!vfy_model_pack_mat(vm, 0, VFY_ROLE_GATE, -1, buf, sizeof buf));
    const enum sb_dtype dts[2] = { SB_DTYPE_Q4_0, SB_DTYPE_Q8_0 };
    for (int q = 0; q < 2; q++) {
        const enum sb_dtype dt = dts[q];
        uint8_t *blob = malloc(R * qnt_type_row_bytes(dt, C, NULL));
        ck_assert_int_eq(qnt_quantize_rows(dt, t.l[0].g, R, C, NULL, blob), SB_OK);
        ck_assert_int_eq(vfy_model_set_mat(vm, 0, VFY_ROLE_GATE, -1, dt, blob,
                                           R * qnt_type_row_bytes(dt, C, NULL), NULL, &err),
                         SB_OK);
        vfy_layer_matmul(vm, 0, VFY_ROLE_GATE, -1, X, n, Y0);
        const uint64_t nb = qnt_matmul_pack_bytes(dt, C, R);
        if (!nb) {   /* no packed kernel here (or SUBBIT_REPACK=0) */
            ck_assert(!vfy_model_pack_mat(vm, 0, VFY_ROLE_GATE, -1, buf, sizeof buf));
            free(blob);
            continue;
        }
        ck_assert_uint_le(nb, sizeof buf);
        ck_assert(!vfy_model_pack_mat(vm, 0, VFY_ROLE_GATE, -1, buf, nb - 1));
        ck_assert(vfy_model_pack_mat(vm, 0, VFY_ROLE_GATE, -1, buf, nb));
        ck_assert(!vfy_model_pack_mat(vm, 0, VFY_ROLE_GATE, -1, buf, nb));   /* packed already */
        vfy_layer_matmul(vm, 0, VFY_ROLE_GATE, -1, X, n, Y1);
        ck_assert_mem_eq(Y0, Y1, n * R * sizeof *Y0);
        memset(buf, 0, nb);   /* the product reads the pack */
        vfy_layer_matmul(vm, 0, VFY_ROLE_GATE, -1, X, n, Y2);
        ck_assert(memcmp(Y0, Y2, n * R * sizeof *Y0) != 0);
        vfy_model_unpack_mat(vm, 0, VFY_ROLE_GATE, -1);
        vfy_layer_matmul(vm, 0, VFY_ROLE_GATE, -1, X, n, Y2);
        ck_assert_mem_eq(Y0, Y2, n * R * sizeof *Y0);
        free(blob);
    }
    vfy_model_free(vm);
    fmt_model_free(fm);
    tm_free(&t);
}
END_TEST

/* batched == token by token; a cache filled in two calls == one call */
START_TEST(test_batch_and_cache)
{
    struct tm t;
    tm_make(&t, *oracle_specs[_i]);
    struct fmt_model *m = tm_model(&t);
    const size_t n = (size_t)NT * t.s.V;
    float *all = core_logits(m, 32, 0), *one = core_logits(m, 1, 0), *three = core_logits(m, 3, 0);
    float *split = core_logits(m, 32, 5);
    for (size_t i = 0; i < n; i++) {
        ck_assert_float_eq_tol(all[i], one[i], 1e-5f);
        ck_assert_float_eq_tol(all[i], three[i], 1e-5f);
        ck_assert_float_eq_tol(all[i], split[i], 1e-5f);
    }
    /* last-only logits equal the last row */
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    struct vfy_ctx *ctx;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), 0);
    ck_assert_int_eq(vfy_ctx_new(&ctx, vm, 32, 4, &err), 0);
    float last[64];
    ck_assert_int_eq(vfy_forward(ctx, toks, NT, 0, last, false, &err), 0);
    for (int v = 0; v < t.s.V; v++)
        ck_assert_float_eq_tol(last[v], all[(NT - 1) * t.s.V + v], 1e-5f);
    /* past the context: an error, not a write */
    ck_assert_int_eq(vfy_forward(ctx, toks, NT, 30, last, false, &err), -5);
    vfy_ctx_free(ctx);
    vfy_model_free(vm);
    free(all);
    free(one);
    free(three);
    free(split);
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

/* 2 experts, 1 layer, attention switched off (wo = 0): the FFN by hand.
 * One token: x = embedding row; xn = rmsnorm(x) (weights 1); router picks by
 * its logits; Mixtral top-1 renormalised gives weight exactly 1, Qwen top-1
 * without renormalisation gives p = softmax(r)[best]. */
START_TEST(test_moe_by_hand)
{
    struct spec s = { 1, 4, 1, 1, 4, 2, 3, 2, 1, _i == 1, false, true, false, false, 1, 0 };
    struct tm t;
    tm_make(&t, s);
    struct lw *w = &t.l[0];
    memset(w->wo, 0, 4 * 4 * sizeof(float));
    for (int i = 0; i < 4; i++)
        w->an[i] = w->fn[i] = t.outn[i] = 1.0f;
    static const float E0[3][4] = { { 2, 0, 0, 0 }, { 0, 2, 0, 0 }, { 0, 0, 2, 0 } };
    memcpy(t.embd, E0, sizeof E0);   /* token 1 is (0, 2, 0, 0): xn = (0, 2, 0, 0) */
    const float R[2][4] = { { 0, 1.0f, 0, 0 }, { 0, 0.25f, 0, 0 } };   /* logits 2, 0.5 */
    memcpy(w->router, R, sizeof R);
    /* expert e: gate row f = (0, 1, 0, 0), up = (0, 1+e, 0, 0); down puts h into dim 3 */
    for (int e = 0; e < 2; e++) {
        memset(w->eg[e], 0, 2 * 4 * 4);
        memset(w->eu[e], 0, 2 * 4 * 4);
        memset(w->ed[e], 0, 4 * 2 * 4);
        w->eg[e][1] = 1.0f;
        w->eu[e][1] = 1.0f + (float)e;
        w->ed[e][3 * 2 + 0] = 1.0f;
    }
    struct fmt_model *m = tm_model(&t);
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    struct vfy_ctx *ctx;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), 0);
    ck_assert_int_eq(vfy_ctx_new(&ctx, vm, 8, 8, &err), 0);
    float lg[3];
    int32_t tok = 1;
    ck_assert_int_eq(vfy_forward(ctx, &tok, 1, 0, lg, false, &err), 0);
    /* h = silu(2) * 2 (expert 0 wins: logit 2 > 0.5); weight 1 or softmax */
    const double xn = 2.0 / sqrt(1.0 + 1e-5);   /* rmsnorm of (0, 2, 0, 0) */
    const double h = xn / (1 + exp(-xn)) * xn;
    const double wt = _i == 1 ? 1.0 / (1.0 + exp(0.25 * xn - xn)) : 1.0;
    double x[4] = { 0, 2, 0, h * wt }, ss = 0;
    for (int d = 0; d < 4; d++)
        ss += x[d] * x[d];
    const double sc = 1.0 / sqrt(ss / 4 + 1e-5);
    /* tied output: logit v = embd[v] . x * sc */
    const double want[3] = { 0, 2 * 2 * sc, 0 };
    for (int v = 0; v < 3; v++)
        ck_assert_msg(fabs(lg[v] - want[v]) < 1e-5, "v %d: %.8g vs %.8g", v, (double)lg[v], want[v]);
    ck_assert_uint_eq(vfy_ctx_expert_counts(ctx)[0], 1);
    ck_assert_uint_eq(vfy_ctx_expert_counts(ctx)[1], 0);
    vfy_ctx_free(ctx);
    vfy_model_free(vm);
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

START_TEST(test_missing_tensor)
{
    struct tm t;
    tm_make(&t, mixtral);
    struct fmt_model *m = tm_model(&t);
    /* rename one tensor away */
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "blk.1.ffn_up_exps.weight"))
            m->tensors[i].name[0] = 'X';
    struct sb_err err = { 0 };
    struct vfy_model *vm = (void *)1;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), -2);
    ck_assert_ptr_null(vm);
    ck_assert_str_eq(err.msg, "toy.gguf: tensor 'blk.1.ffn_up_exps.weight' not found");
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

/* stride (HF): every target after the first scored exactly once; chunks:
 * BOS at each window start, targets n_ctx/2+1 .. n_ctx-1 */
START_TEST(test_plans)
{
    int32_t ids[50];
    for (int i = 0; i < 50; i++)
        ids[i] = 100 + i;
    struct sb_err err = { 0 };
    struct vfy_plan p;
    struct vfy_ppl_opts o = { VFY_PROTO_STRIDE, 8, 3, 0, NULL };
    ck_assert_int_eq(vfy_plan_from_ids(&p, ids, 50, 1, &o, &err), 0);
    int seen[50] = { 0 };
    for (size_t w = 0; w < p.n_win; w++) {
        ck_assert_uint_le(p.win[w].n, 8);
        for (size_t j = p.win[w].first; j < p.win[w].n; j++)
            seen[p.tok[p.win[w].off + j] - 100]++;
    }
    ck_assert_int_eq(seen[0], 0);
    for (int i = 1; i < 50; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_uint_eq(p.n_scored, 49);
    vfy_plan_release(&p);
    struct vfy_ppl_opts oc = { VFY_PROTO_CHUNKS, 16, 0, 2, NULL };
    ck_assert_int_eq(vfy_plan_from_ids(&p, ids, 50, 1, &oc, &err), 0);
    ck_assert_uint_eq(p.n_win, 2);
    ck_assert_int_eq(p.tok[p.win[1].off], 1);
    ck_assert_int_eq(p.tok[p.win[1].off + 1], 117);
    ck_assert_uint_eq(p.win[1].first, 9);
    ck_assert_uint_eq(p.n_scored, 14);
    vfy_plan_release(&p);
    oc.n_ctx = 64;
    ck_assert_int_eq(vfy_plan_from_ids(&p, ids, 50, 1, &oc, &err), -5);
}
END_TEST

static int collect(void *ctx, const char *s, size_t n)
{
    char *out = ctx;
    strncat(out, s, n);
    strcat(out, "|");
    return 0;
}

/* Python: [b.strip() for b in t.split('\n\n') if b.strip()] */
START_TEST(test_blocks_split)
{
    const char *t = "  a b\n\n\nc\n \n\n\n\nd\n\n";
    char out[64] = "";
    vfy_blocks_split(t, strlen(t), "\n\n", collect, out);
    ck_assert_str_eq(out, "a b|c|d|");
    out[0] = 0;
    const char *u = "one<|endoftext|>\ntwo\n<|endoftext|> <|endoftext|>three";
    vfy_blocks_split(u, strlen(u), "<|endoftext|>", collect, out);
    ck_assert_str_eq(out, "one|two|three|");
}
END_TEST

START_TEST(test_metrics)
{
    const float a[4] = { 1, 2, 3, 4 }, b[4] = { 4, 3, 2, 1 };
    ck_assert_double_eq(vfy_kld(a, a, 4), 0.0);
    /* KL by hand: p = softmax(a), q = reversed */
    double lse = log(exp(1) + exp(2) + exp(3) + exp(4)), k = 0;
    for (int i = 0; i < 4; i++)
        k += exp(a[i] - lse) * ((a[i] - lse) - (b[i] - lse));
    ck_assert_double_eq_tol(vfy_kld(a, b, 4), k, 1e-12);
    ck_assert_double_eq_tol(vfy_nll(a, 4, 3), lse - 4, 1e-12);
    ck_assert_int_eq(vfy_argmax(b, 4), 0);
    struct vfy_kld_acc acc = { 0 };
    for (int i = 100; i >= 1; i--)
        ck_assert_int_eq(vfy_kld_add(&acc, i, i % 2), 0);
    struct vfy_kld_summary sm;
    vfy_kld_summarize(&acc, &sm);
    ck_assert_double_eq(sm.median, 50.5);
    ck_assert_double_eq(sm.p99, 99);
    ck_assert_double_eq(sm.max, 100);
    ck_assert_double_eq(sm.mean, 50.5);
    ck_assert_double_eq(sm.top1, 0.5);
    vfy_kld_release(&acc);
    struct vfy_nll_acc na = { 0 };
    vfy_nll_add(&na, 1);
    vfy_nll_add(&na, 3);
    ck_assert_double_eq(vfy_nll_mean(&na), 2);
    ck_assert_double_eq_tol(vfy_nll_se(&na), 1.0, 1e-12);   /* sqrt(1 / 1) */
}
END_TEST

/* ---- the context's size, the generation loop, verify's gates -------------------- */

/* vfy_ctx_bytes against the buffers listed in vfy_model.h, summed by hand:
 * dense: 3 (B, dim) + 2 (B, nh*hd) + 2 (B, nkv*hd) + 2 (B, F) + (threads, 4, T)
 * + 2 (T, hd/2) floats; the KV cache (L, T rounded up to 16, nkv*hd) + (L, T, nkv*hd)
 * floats. MoE adds
 * (B, E) + (B, K) int + (B, K) + B int + B + 3 (B, dim) + 2 (B, F) floats and
 * (L, E) uint64 counts; where the experts may run side by side (two experts
 * a thread at least, more than one thread) the routed rows are B K instead
 * of B (weights, xe, ye, he, he2), plus (B, K) int slots, 2 E + 1 uint64
 * offsets and E int for the experts' order. */
START_TEST(test_ctx_bytes)
{
    struct vfy_ctx_shape sh = { .n_layers = 3, .dim = 8, .n_heads = 4, .n_kv_heads = 2,
                                .head_dim = 2, .ffn = 16 };
    const uint64_t B = 5, T = 10;
    for (uint64_t thr = 1; thr <= 4; thr++) {
        struct vfy_ctx_size z, m;
        sh.n_experts = sh.n_experts_used = 0;
        ck_assert_int_eq(vfy_ctx_bytes(&sh, T, B, thr, &z), SB_OK);
        /* the keys' positions rounded up to blocks of 16: (L, 16, kvd) + (L, T, kvd) */
        ck_assert_uint_eq(z.kv, 4 * 3 * 4 * (16 + T));
        ck_assert_uint_eq(z.buffers, 4 * (3 * B * 8 + 2 * B * 8 + 2 * B * 4 + 2 * B * 16 +
                                          thr * 4 * T + 2 * T * 1));
        sh.n_experts = 6;
        sh.n_experts_used = 2;
        ck_assert_int_eq(vfy_ctx_bytes(&sh, T, B, thr, &m), SB_OK);
        ck_assert_uint_eq(m.kv, z.kv);
        if (thr == 2 || thr == 3)   /* 6 experts: side by side at 2 and 3 threads */
            ck_assert_uint_eq(m.buffers - z.buffers,
                              4 * (B * 6 + B * 2 + B * 2 + B + 2 * B + 3 * B * 8 +
                                   2 * B * 8 + 2 * 2 * B * 16) +
                                  4 * (B * 2 + 6) + 8 * (2 * 6 + 1) + 8 * 3 * 6);
        else
            ck_assert_uint_eq(m.buffers - z.buffers,
                              4 * (B * 6 + B * 2 + B * 2 + B + B + 3 * B * 8 + 2 * B * 16) +
                                  8 * 3 * 6);
    }
    /* what a real context of a model of that shape allocates: vfy_ctx_new makes
     * the list vfy_ctx_bytes sums (checked through the fault injector: one
     * allocation per non-empty buffer, plus the context itself) */
    struct tm t;
    tm_make(&t, mixtral);
    struct fmt_model *fm = tm_model(&t);
    struct vfy_model *vm;
    struct vfy_ctx *ctx = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(vfy_model_new(&vm, fm, &err), SB_OK);
    vfy_model_ctx_shape(vm, &sh);
    ck_assert_uint_eq(sh.n_experts, 4);
    ck_assert_uint_eq(sh.ffn, 12);
#ifdef _OPENMP
    const int nt0 = omp_get_max_threads();
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
#else
    for (int nt = 1; nt <= 1; nt++) {
#endif
        long k = 0;
        for (;; k++) {
            sb_alloc_fail_after(k);
            int r = vfy_ctx_new(&ctx, vm, T, B, &err);
            sb_alloc_fail_after(-1);
            if (r == SB_OK)
                break;
            ck_assert_int_eq(r, SB_ENOMEM);
            ck_assert_ptr_null(ctx);
        }
        /* the struct and all 25 buffers of an MoE model; at 2 threads its 4
           experts may run side by side: 3 more */
        ck_assert_int_eq(k, 1 + (nt == 2 ? 28 : 25));
        vfy_ctx_free(ctx);
    }
#ifdef _OPENMP
    omp_set_num_threads(nt0);
#endif
    vfy_model_free(vm);
    fmt_model_free(fm);
    tm_free(&t);
}
END_TEST

/* an SPM vocab of V pieces "p3", "p4", ... with <unk>, <s>, </s> at 0, 1, 2 */
static void toy_vocab(struct fmt_vocab *v, int V)
{
    memset(v, 0, sizeof *v);
    v->kind = FMT_VOCAB_SPM;
    v->n_tokens = (uint32_t)V;
    v->tokens = sb_calloc((size_t)V, sizeof *v->tokens);
    v->lens = sb_calloc((size_t)V, sizeof *v->lens);
    for (int i = 0; i < V; i++) {
        char b[16];
        snprintf(b, sizeof b, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "");
        if (i > 2)
            snprintf(b, sizeof b, "p%d", i);
        v->tokens[i] = sb_strdup(b);
        v->lens[i] = (uint32_t)strlen(b);
    }
    v->unk_id = 0, v->bos_id = 1, v->eos_id = 2, v->add_bos = true;
}

struct sink {
    char text[4096];
    size_t n, calls, stop_after;
};

static int sink_emit(void *user, const char *piece, size_t len)
{
    struct sink *k = user;
    ck_assert_uint_lt(k->n + len, sizeof k->text);
    memcpy(k->text + k->n, piece, len);
    k->n += len;
    return ++k->calls == k->stop_after;
}

/* vfy_generate (greedy) against the loop written out here: forward the prompt,
 * then argmax, decode, forward one token, until the limit or the context ends */
START_TEST(test_generate)
{
    struct tm t;
    tm_make(&t, dense);
    struct fmt_model *fm = tm_model(&t);
    toy_vocab(&fm->vocab, t.s.V);
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    struct vfy_tok *tok;
    struct vfy_ctx *ctx, *ref;
    struct vfy_sampler smp;
    ck_assert_int_eq(vfy_model_new(&vm, fm, &err), SB_OK);
    ck_assert_int_eq(vfy_tok_new(&tok, &fm->vocab, &err), SB_OK);
    const int32_t prompt[3] = { 1, 5, 9 };
    const size_t n_ctx = _i == 0 ? 20 : 8, max_new = 10;
    ck_assert_int_eq(vfy_ctx_new(&ctx, vm, n_ctx, 512, &err), SB_OK);
    ck_assert_int_eq(vfy_ctx_new(&ref, vm, n_ctx, 512, &err), SB_OK);
    ck_assert_int_eq(vfy_sampler_init(&smp, (size_t)t.s.V, 0.0f, 1.0f, 1, &err), SB_OK);
    struct sink got = { .stop_after = _i == 2 ? 4 : 0 };
    struct vfy_gen_result res;
    ck_assert_int_eq(vfy_generate(ctx, tok, &smp, prompt, 3, max_new, sink_emit, &got, &res, &err),
                     SB_OK);
    /* the loop by hand */
    char want[4096], piece[64];
    size_t n = 0, made = 0, pos = 3, calls = 0;
    float lg[64];
    int32_t prev = prompt[2];
    for (int i = 1; i < 3; i++) {
        n += vfy_tok_decode(tok, prompt[i - 1], prompt[i], want + n, sizeof want - n);
        calls++;
    }
    enum vfy_gen_stop stop = VFY_GEN_LIMIT;
    ck_assert_int_eq(vfy_forward(ref, prompt, 3, 0, lg, false, &err), SB_OK);
    while (made < max_new) {
        int32_t next = vfy_argmax(lg, (size_t)t.s.V);
        made++;
        if (next == 1 || next == 2) {
            stop = VFY_GEN_EOS;
            break;
        }
        size_t k = vfy_tok_decode(tok, prev, next, piece, sizeof piece);
        memcpy(want + n, piece, k);
        n += k;
        if (++calls == got.stop_after) {
            stop = VFY_GEN_HOOK;
            break;
        }
        prev = next;
        if (made == max_new)
            break;
        if (pos >= n_ctx) {
            stop = VFY_GEN_CONTEXT;
            break;
        }
        ck_assert_int_eq(vfy_forward(ref, &next, 1, pos++, lg, false, &err), SB_OK);
    }
    ck_assert_uint_eq(res.made, made);
    ck_assert_int_eq(res.stop, stop);
    ck_assert_int_eq(res.stop, _i == 0 ? VFY_GEN_LIMIT : _i == 1 ? VFY_GEN_CONTEXT : VFY_GEN_HOOK);
    ck_assert_uint_eq(got.n, n);
    ck_assert_mem_eq(got.text, want, n);
    /* a prompt longer than the context */
    int32_t longp[9] = { 1, 3, 3, 3, 3, 3, 3, 3, 3 };
    ck_assert_int_eq(vfy_generate(ref, tok, &smp, longp, 9, 1, NULL, NULL, &res, &err),
                     n_ctx < 9 ? SB_EINVAL : SB_OK);
    vfy_sampler_release(&smp);
    vfy_ctx_free(ctx);
    vfy_ctx_free(ref);
    vfy_tok_free(tok);
    vfy_model_free(vm);
    fmt_model_free(fm);
    tm_free(&t);
}
END_TEST

/* verify's gates: each threshold alone, a NaN fails the gates it meets */
START_TEST(test_gates)
{
    struct vfy_verify_result r;
    memset(&r, 0, sizeof r);
    r.dppl = 0.05, r.dppl_pct = 0.5, r.kld.mean = 0.01, r.kld.top1 = 0.97;
    struct vfy_gates none = { false, 0, false, -1, -1 };
    struct vfy_gate_check f;
    ck_assert(vfy_verify_gates(&r, &none, &f));
    struct vfy_gates g = { true, 1.0, true, 0.02, 0.95 };     /* 1% relative */
    ck_assert(vfy_verify_gates(&r, &g, &f));
    g.max_dppl = 0.4;
    ck_assert(!vfy_verify_gates(&r, &g, &f) && f.dppl && !f.kld && !f.top1);
    g.dppl_pct = false;                                        /* 0.4 absolute: passes */
    ck_assert(vfy_verify_gates(&r, &g, &f));
    g.min_top1 = 0.98;
    ck_assert(!vfy_verify_gates(&r, &g, &f) && !f.dppl && f.top1);
    g.min_top1 = 0.95;
    r.kld.mean = NAN;
    ck_assert(!vfy_verify_gates(&r, &g, &f) && f.kld && !f.top1);
    r.kld.mean = 0.01;
    r.dppl = NAN;
    ck_assert(!vfy_verify_gates(&r, &g, NULL));
    ck_assert(vfy_verify_gates(&r, &none, NULL));              /* no gate, no failure */
}
END_TEST

/* issue 12 item 6: a NaN never passes. A model whose output norm holds one
 * NaN (so every logit is NaN): ppl refuses with a message, verify counts every
 * scored position, its figures are NaN and every gate fails (KLD used to be
 * clamped to 0, so --max-kld passed). */
START_TEST(test_nonfinite_logits)
{
    struct tm t;
    tm_make(&t, dense);
    struct fmt_model *good = tm_model(&t);
    t.outn[3] = NAN;
    struct fmt_model *bad = tm_model(&t);
    struct sb_err err = { 0 };
    struct vfy_model *vg, *vb;
    struct vfy_ctx *cg, *cb;
    ck_assert_int_eq(vfy_model_new(&vg, good, &err), 0);
    ck_assert_int_eq(vfy_model_new(&vb, bad, &err), 0);
    ck_assert_int_eq(vfy_ctx_new(&cg, vg, 16, 8, &err), 0);
    ck_assert_int_eq(vfy_ctx_new(&cb, vb, 16, 8, &err), 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = 1 + (i * 7) % 19;
    struct vfy_plan p;
    struct vfy_ppl_opts o = { VFY_PROTO_CHUNKS, 16, 0, 0, NULL };
    ck_assert_int_eq(vfy_plan_from_ids(&p, ids, 40, 1, &o, &err), 0);
    struct vfy_ppl_result pr;
    ck_assert_int_eq(vfy_ppl_run(cg, &p, NULL, &pr, &err), 0);
    ck_assert(isfinite(pr.ppl) && pr.ppl > 1.0);
    ck_assert_int_eq(vfy_ppl_run(cb, &p, NULL, &pr, &err), SB_EFORMAT);
    ck_assert_msg(strstr(err.msg, "logits are not finite (NaN or inf) at token 9 of window 1"),
                  "%s", err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    struct vfy_verify_result r;
    ck_assert_int_eq(vfy_verify_run(cg, cb, &p, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.ref.n_nonfinite, 0);
    ck_assert_uint_eq(r.model.n_nonfinite, p.n_scored);
    ck_assert(isnan(r.kld.mean) && isnan(r.kld.top1) && isnan(r.dppl) && isnan(r.model.ppl));
    struct vfy_gate_check f;
    struct vfy_gates kld = { false, 0, false, 1e9, -1 };   /* any finite KLD passes */
    ck_assert(!vfy_verify_gates(&r, &kld, &f) && f.kld && f.nonfinite && !f.top1 && !f.dppl);
    struct vfy_gates none = { false, 0, false, -1, -1 };
    ck_assert(vfy_verify_gates(&r, &none, &f) && f.nonfinite);   /* the CLI's error then */
    /* the same two the other way round: the reference is the one at fault */
    ck_assert_int_eq(vfy_verify_run(cb, cg, &p, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.ref.n_nonfinite, p.n_scored);
    ck_assert(!vfy_verify_gates(&r, &kld, &f) && f.kld && f.nonfinite);
    /* a good pair has no non-finite position and passes */
    ck_assert_int_eq(vfy_verify_run(cg, cg, &p, NULL, &r, &err), 0);
    ck_assert(vfy_verify_gates(&r, &kld, &f) && !f.nonfinite && r.kld.mean < 1e-12);
    /* vfy_kld itself: NaN logits give NaN, never 0 */
    float a[3] = { 1, 2, 3 }, b[3] = { 1, NAN, 3 };
    ck_assert(isnan(vfy_kld(a, b, 3)) && !vfy_logits_finite(b, 3) && vfy_logits_finite(a, 3));
    vfy_plan_release(&p);
    vfy_ctx_free(cg);
    vfy_ctx_free(cb);
    vfy_model_free(vg);
    vfy_model_free(vb);
    fmt_model_free(good);
    fmt_model_free(bad);
    tm_free(&t);
}
END_TEST

/* issue 12 item 10: configuration values the core does not take as given are
 * said, each with the value used (the CLI prints them as warnings) */
START_TEST(test_config_notes)
{
    struct tm t;
    tm_make(&t, dense);   /* V 20, F 24, untied: output.weight stored */
    struct fmt_model *m = tm_model(&t);
    struct sb_err err = { 0 };
    struct vfy_model *vm;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), 0);
    ck_assert_int_eq(vfy_model_info(vm)->n_notes, 0);
    vfy_model_free(vm);
    m->arch.norm_eps = 0;
    m->arch.vocab_size = 25;
    m->arch.hidden_dim = 25;
    m->arch.tied_embeddings = true;
    ck_assert_int_eq(vfy_model_new(&vm, m, &err), 0);
    const struct vfy_model_info *in = vfy_model_info(vm);
    ck_assert_int_eq(in->n_notes, 4);
    ck_assert_str_eq(in->notes[0], "toy.gguf: rms_norm_eps 0 is not > 0: using 1e-05");
    ck_assert_str_eq(in->notes[1],
                     "toy.gguf: vocab_size 25 is more than the embedding's 20 rows: using 20");
    ck_assert_str_eq(in->notes[2], "toy.gguf: tie_word_embeddings is true, but 'output.weight' is "
                     "stored: using 'output.weight' (as subbit mem counts it)");
    ck_assert_str_eq(in->notes[3], "toy.gguf: feed_forward_length 25 disagrees with the tensors "
                     "(24 in layer 0): using the tensors' 24");
    ck_assert_int_eq(in->vocab, 20);
    vfy_model_free(vm);
    fmt_model_free(m);
    tm_free(&t);
}
END_TEST

TEST_SUITE(verify_forward, 30, seed_reset, NULL,
    TEST_LOOP(test_oracle, 3), TEST_LOOP(test_rope_twin, 6),
    TEST_LOOP(test_batch_and_cache, 3), TEST_LOOP(test_moe_by_hand, 2),
    TEST(test_missing_tensor), TEST(test_plans), TEST(test_blocks_split), TEST(test_metrics),
    TEST(test_ctx_bytes), TEST(test_moe_side_by_side), TEST(test_pack_mat), TEST_LOOP(test_generate, 3), TEST(test_gates),
    TEST(test_nonfinite_logits), TEST(test_config_notes))
