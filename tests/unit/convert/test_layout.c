/* test_layout.c: container layout mapping (convert/cvt_layout.c) on synthetic
 * models built in memory: the Q/K permutation (hand-derived row map from
 * formats.md §2.8), HF ⇄ GGUF names, expert stacking and the packed
 * gate_up_proj split, metadata. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_layout.h"
#include "fmt_config.h"
#include "fmt_gguf.h"
#include "qnt_cast.h"
#include "qnt_encode.h"
#include "sb_alloc.h"
#include "test_util.h"

/* Value of element (row, col) of a synthetic tensor: unique per tensor id. */
static float val(int id, uint64_t row, uint64_t col)
{
    return (float)(id * 100000 + (int)row * 100 + (int)col);
}

static struct fmt_tensor *add_f32(struct fmt_model *m, const char *name, int ndim,
                                  const int64_t *shape, int id)
{
    struct fmt_tensor *t = fmt_model_add_tensor(m, name);
    ck_assert_ptr_nonnull(t);
    t->dtype = SB_DTYPE_F32;
    t->ndim = ndim;
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        n *= (uint64_t)shape[d];
    }
    uint64_t cols = ndim ? (uint64_t)shape[ndim - 1] : 1;
    float *x = sb_malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (uint64_t i = 0; i < n; i++)
        x[i] = val(id, i / cols, i % cols);
    t->nbytes = n * sizeof *x;
    t->owned = x;
    t->data = x;
    return t;
}

#define SHAPE(...) ((const int64_t[]){ __VA_ARGS__ })

static const struct cvt_target *target(const struct cvt_layout *l, const char *name)
{
    long i = cvt_layout_find(l, name);
    ck_assert_msg(i >= 0, "no target '%s'", name);
    return &l->t[i];
}

static const float *tdata(const struct fmt_model *m, const char *name)
{
    const struct fmt_tensor *t = fmt_model_find(m, name);
    ck_assert_msg(t != NULL, "no tensor '%s'", name);
    return t->data;
}

/* ---- the permutation ------------------------------------------------------ */

/* nh = 4, hd = 8: head 1's rows 8..15. HF → GGUF: dst row h*hd + 2j + t takes
 * src row h*hd + t*hd/2 + j (formats.md §2.8), written out by hand:
 * (j,t) = (0,0) 8, (0,1) 12, (1,0) 9, (1,1) 13, (2,0) 10, (2,1) 14, (3,0) 11, (3,1) 15. */
static const uint64_t head1_map[8] = { 8, 12, 9, 13, 10, 14, 11, 15 };

START_TEST(test_perm_row_map)
{
    for (uint64_t r = 0; r < 8; r++) {
        ck_assert_uint_eq(cvt_perm_src_row(CVT_PERM_HF_TO_GGUF, 4, 32, 8 + r), head1_map[r]);
        /* the inverse sends the GGUF row back */
        ck_assert_uint_eq(cvt_perm_src_row(CVT_PERM_GGUF_TO_HF, 4, 32, head1_map[r]), 8 + r);
    }
    /* both directions are permutations and inverse to each other over all rows */
    int seen[32] = { 0 };
    for (uint64_t r = 0; r < 32; r++) {
        uint64_t s = cvt_perm_src_row(CVT_PERM_HF_TO_GGUF, 4, 32, r);
        ck_assert_uint_lt(s, 32);
        ck_assert_uint_eq(s / 8, r / 8); /* rows stay in their head */
        seen[s]++;
        ck_assert_uint_eq(cvt_perm_src_row(CVT_PERM_GGUF_TO_HF, 4, 32, s), r);
    }
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_uint_eq(cvt_perm_src_row(CVT_PERM_NONE, 4, 32, 13), 13);
}
END_TEST

/* A dense HF llama: H = 6, nh = 4, nkv = 2, hd = 8, F = 5, V = 7, two layers, q/k biases. */
static struct fmt_model *tiny_llama_hf(bool tied)
{
    struct fmt_model *m = fmt_model_new();
    m->container = FMT_CONT_SAFETENSORS;
    m->has_arch = true;
    m->arch.kind = FMT_ARCH_LLAMA;
    strcpy(m->arch.model_type, "llama");
    m->arch.n_layers = 2;
    m->arch.dim = 6;
    m->arch.hidden_dim = 5;
    m->arch.n_heads = 4;
    m->arch.n_kv_heads = 2;
    m->arch.head_dim = 8;
    m->arch.vocab_size = 7;
    m->arch.n_ctx = 64;
    m->arch.norm_eps = 1e-5f;
    m->arch.rope_theta = 10000.0f;
    m->arch.tied_embeddings = tied;
    m->arch.bos_id = 1;
    m->arch.eos_id = 2;
    int id = 1;
    add_f32(m, "lm_head.weight", 2, SHAPE(7, 6), id++);
    add_f32(m, "model.embed_tokens.weight", 2, SHAPE(7, 6), id++);
    for (int L = 0; L < 2; L++) {
        char n[128];
#define ADD(sfx, nd, ...) (snprintf(n, sizeof n, "model.layers.%d.%s", L, sfx), \
                           add_f32(m, n, nd, SHAPE(__VA_ARGS__), id++))
        ADD("input_layernorm.weight", 1, 6);
        ADD("mlp.down_proj.weight", 2, 6, 5);
        ADD("mlp.gate_proj.weight", 2, 5, 6);
        ADD("mlp.up_proj.weight", 2, 5, 6);
        ADD("post_attention_layernorm.weight", 1, 6);
        ADD("self_attn.k_proj.bias", 1, 16);
        ADD("self_attn.k_proj.weight", 2, 16, 6);
        ADD("self_attn.o_proj.weight", 2, 6, 32);
        ADD("self_attn.q_proj.bias", 1, 32);
        ADD("self_attn.q_proj.weight", 2, 32, 6);
        ADD("self_attn.v_proj.weight", 2, 16, 6);
#undef ADD
    }
    add_f32(m, "model.norm.weight", 1, SHAPE(6), id++);
    return m;
}

START_TEST(test_hf_to_gguf_llama)
{
    struct fmt_model *hf = tiny_llama_hf(false);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert(!l->identity);
    ck_assert_str_eq(l->gguf_arch, "llama");
    ck_assert_uint_eq(l->n, hf->n_tensors);
    /* canonical order: embeddings first, output last */
    ck_assert_str_eq(l->t[0].name, "token_embd.weight");
    ck_assert_str_eq(l->t[1].name, "blk.0.attn_norm.weight");
    ck_assert_str_eq(l->t[2].name, "blk.0.attn_q.weight");
    ck_assert_str_eq(l->t[l->n - 2].name, "output_norm.weight");
    ck_assert_str_eq(l->t[l->n - 1].name, "output.weight");

    const struct cvt_target *q = target(l, "blk.1.attn_q.weight");
    ck_assert_int_eq(q->perm, CVT_PERM_HF_TO_GGUF);
    ck_assert_int_eq(q->perm_heads, 4);
    ck_assert(!q->keep_f32);
    const struct cvt_target *k = target(l, "blk.1.attn_k.weight");
    ck_assert_int_eq(k->perm, CVT_PERM_HF_TO_GGUF);
    ck_assert_int_eq(k->perm_heads, 2);
    ck_assert_int_eq(target(l, "blk.1.attn_v.weight")->perm, CVT_PERM_NONE);
    ck_assert_int_eq(target(l, "blk.1.attn_output.weight")->perm, CVT_PERM_NONE);
    ck_assert_int_eq(target(l, "blk.1.attn_q.bias")->perm, CVT_PERM_HF_TO_GGUF);
    ck_assert(target(l, "blk.1.attn_q.bias")->keep_f32);
    ck_assert(target(l, "blk.0.ffn_norm.weight")->keep_f32);
    ck_assert_int_eq(target(l, "blk.0.ffn_gate.weight")->shape[0], 5);

    /* gathered q of layer 1 follows the hand-checked row map */
    struct fmt_model *gg = test_materialize(l, hf, FMT_CONT_GGUF);
    const float *src_q = tdata(hf, "model.layers.1.self_attn.q_proj.weight");
    const float *dst_q = tdata(gg, "blk.1.attn_q.weight");
    for (uint64_t r = 0; r < 8; r++)
        for (uint64_t c = 0; c < 6; c++)
            ck_assert_float_eq(dst_q[(8 + r) * 6 + c], src_q[head1_map[r] * 6 + c]);
    /* k: nkv = 2 heads of 8: GGUF row 1 takes HF row 4, row 9 takes row 12 */
    const float *src_k = tdata(hf, "model.layers.1.self_attn.k_proj.weight");
    const float *dst_k = tdata(gg, "blk.1.attn_k.weight");
    ck_assert_float_eq(dst_k[1 * 6 + 3], src_k[4 * 6 + 3]);
    ck_assert_float_eq(dst_k[9 * 6 + 0], src_k[12 * 6 + 0]);
    /* the q bias moves element by element like q's rows */
    const float *src_b = tdata(hf, "model.layers.1.self_attn.q_proj.bias");
    const float *dst_b = tdata(gg, "blk.1.attn_q.bias");
    for (uint64_t r = 0; r < 8; r++)
        ck_assert_float_eq(dst_b[8 + r], src_b[head1_map[r]]);
    /* v is copied unchanged */
    ck_assert_mem_eq(tdata(gg, "blk.0.attn_v.weight"),
                     tdata(hf, "model.layers.0.self_attn.v_proj.weight"), 16 * 6 * 4);

    /* gather_f32 agrees with the byte gather */
    long qi = cvt_layout_find(l, "blk.1.attn_q.weight");
    float f[32 * 6];
    ck_assert_int_eq(cvt_layout_gather_f32(l, (size_t)qi, hf, f, &err), SB_OK);
    ck_assert_mem_eq(f, dst_q, sizeof f);

    /* and back: GGUF → HF is the identity on every tensor */
    struct cvt_layout *l2 = NULL;
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l2, &err), SB_OK);
    ck_assert_uint_eq(l2->n, hf->n_tensors);
    ck_assert_int_eq(target(l2, "model.layers.1.self_attn.q_proj.weight")->perm,
                     CVT_PERM_GGUF_TO_HF);
    struct fmt_model *hf2 = test_materialize(l2, gg, FMT_CONT_SAFETENSORS);
    for (size_t i = 0; i < hf->n_tensors; i++) {
        const struct fmt_tensor *a = &hf->tensors[i];
        const struct fmt_tensor *b = fmt_model_find(hf2, a->name);
        ck_assert_msg(b != NULL, "'%s' lost on the round trip", a->name);
        ck_assert_int_eq(a->ndim, b->ndim);
        ck_assert_mem_eq(a->shape, b->shape, sizeof a->shape);
        ck_assert_uint_eq(a->nbytes, b->nbytes);
        ck_assert_mem_eq(a->data, b->data, a->nbytes);
    }
    fmt_model_free(hf2);
    cvt_layout_free(l2);
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

/* Why the permutation exists (formats.md §2.8): HF's rotate_half RoPE on the HF
 * weights and GGUF's adjacent-pair RoPE on the permuted weights give the same
 * attention scores q·k, at every position. Computed here from the two RoPE
 * definitions, independently of the row formula. */
static void rope_half(float *y, int heads, int hd, int pos)
{
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            double f = pos * pow(10000.0, -2.0 * j / hd);
            float *a = y + h * hd + j, *b = y + h * hd + j + hd / 2;
            float x0 = *a, x1 = *b;
            *a = (float)(x0 * cos(f) - x1 * sin(f));
            *b = (float)(x0 * sin(f) + x1 * cos(f));
        }
}

static void rope_adjacent(float *y, int heads, int hd, int pos)
{
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            double f = pos * pow(10000.0, -2.0 * j / hd);
            float *a = y + h * hd + 2 * j, *b = a + 1;
            float x0 = *a, x1 = *b;
            *a = (float)(x0 * cos(f) - x1 * sin(f));
            *b = (float)(x0 * sin(f) + x1 * cos(f));
        }
}

static void matvec(const float *w, const float *x, float *y, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++)
            s += (double)w[r * cols + c] * x[c];
        y[r] = (float)s;
    }
}

START_TEST(test_perm_rope_equivalence)
{
    enum { H = 16, NHD = 4, NKV = 2, HD = 8 };
    struct fmt_model *hf = fmt_model_new();
    hf->container = FMT_CONT_SAFETENSORS;
    hf->has_arch = true;
    hf->arch.n_heads = NHD;
    hf->arch.n_kv_heads = NKV;
    add_f32(hf, "model.layers.0.self_attn.q_proj.weight", 2, SHAPE(NHD * HD, H), 1);
    add_f32(hf, "model.layers.0.self_attn.k_proj.weight", 2, SHAPE(NKV * HD, H), 2);
    test_fill_normal(hf->tensors[0].owned, NHD * HD * H, 11);
    test_fill_normal(hf->tensors[1].owned, NKV * HD * H, 12);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    struct fmt_model *gg = test_materialize(l, hf, FMT_CONT_GGUF);
    float x[H], x2[H];
    test_fill_normal(x, H, 13);
    test_fill_normal(x2, H, 14);
    for (int pos = 0; pos < 5; pos++) {
        float qh[NHD * HD], kh[NKV * HD], qg[NHD * HD], kg[NKV * HD];
        matvec(tdata(hf, "model.layers.0.self_attn.q_proj.weight"), x, qh, NHD * HD, H);
        matvec(tdata(hf, "model.layers.0.self_attn.k_proj.weight"), x2, kh, NKV * HD, H);
        matvec(tdata(gg, "blk.0.attn_q.weight"), x, qg, NHD * HD, H);
        matvec(tdata(gg, "blk.0.attn_k.weight"), x2, kg, NKV * HD, H);
        rope_half(qh, NHD, HD, pos + 3);
        rope_half(kh, NKV, HD, pos);
        rope_adjacent(qg, NHD, HD, pos + 3);
        rope_adjacent(kg, NKV, HD, pos);
        for (int h = 0; h < NHD; h++) { /* GQA: q head h reads kv head h / 2 */
            double sh = 0, sg = 0;
            for (int d = 0; d < HD; d++) {
                sh += (double)qh[h * HD + d] * kh[(h / 2) * HD + d];
                sg += (double)qg[h * HD + d] * kg[(h / 2) * HD + d];
            }
            ck_assert_double_eq_tol(sh, sg, 1e-4 * (1 + fabs(sh)));
        }
    }
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

START_TEST(test_perm_f16_f32)
{
    /* an f16 q: gather_f32 decodes and permutes; bytes stay f16 */
    struct fmt_model *m = fmt_model_new();
    m->container = FMT_CONT_GGUF;
    m->has_arch = true;
    m->arch.n_heads = 4;
    m->arch.n_kv_heads = 4;
    struct fmt_tensor *t = fmt_model_add_tensor(m, "blk.0.attn_q.weight");
    t->dtype = SB_DTYPE_F16;
    t->ndim = 2;
    t->shape[0] = 32;
    t->shape[1] = 2;
    uint16_t *h = sb_malloc(64 * 2);
    for (int i = 0; i < 64; i++)
        h[i] = qnt_f32_to_f16_ref((float)i * 0.5f);
    t->owned = h;
    t->data = h;
    t->nbytes = 128;
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(m, FMT_CONT_SAFETENSORS, &l, &err), SB_OK);
    ck_assert_str_eq(l->t[0].name, "model.layers.0.self_attn.q_proj.weight");
    float f[64];
    uint16_t b[64];
    ck_assert_int_eq(cvt_layout_gather_f32(l, 0, m, f, &err), SB_OK);
    ck_assert_int_eq(cvt_layout_gather_bytes(l, 0, m, b, sizeof b, &err), SB_OK);
    for (uint64_t r = 0; r < 32; r++) {
        uint64_t s = cvt_perm_src_row(CVT_PERM_GGUF_TO_HF, 4, 32, r);
        for (int c = 0; c < 2; c++) {
            ck_assert_float_eq(f[r * 2 + c], (float)(s * 2 + c) * 0.5f);
            ck_assert_uint_eq(b[r * 2 + c], h[s * 2 + c]);
        }
    }
    /* HF row 4 (head 0, t = 1, j = 0) comes from GGUF row 1 */
    ck_assert_float_eq(f[4 * 2], 1.0f);
    /* too small a buffer is refused */
    struct sb_err e2 = { 0 };
    ck_assert_int_eq(cvt_layout_gather_bytes(l, 0, m, b, sizeof b - 1, &e2), SB_EINVAL);
    cvt_layout_free(l);
    fmt_model_free(m);
}
END_TEST

/* A q8_0 stacked GGUF expert tensor (row-wise blocks) unstacks into per-expert
 * HF tensors: bytes are the expert's own q8_0 rows, f32 its dequantized rows. */
START_TEST(test_q8_0_unstack)
{
    enum { E = 3, F = 4, C = 64 };
    static float x[E * F * C], y[F * C], z[F * C];
    static uint8_t q[E * F * (C / 32) * 34], b[F * (C / 32) * 34];
    test_fill_normal(x, E * F * C, 21);
    ck_assert_int_eq(qnt_quantize_rows(SB_DTYPE_Q8_0, x, E * F, C, NULL, q), SB_OK);
    struct fmt_model *gg = fmt_model_new();
    gg->container = FMT_CONT_GGUF;
    struct fmt_tensor *t = fmt_model_add_tensor(gg, "blk.2.ffn_down_exps.weight");
    t->dtype = SB_DTYPE_Q8_0;
    t->ndim = 3;
    t->shape[0] = E;
    t->shape[1] = F;
    t->shape[2] = C;
    t->data = q;
    t->nbytes = sizeof q;
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l, &err), SB_OK);
    ck_assert_uint_eq(l->n, E);
    for (int e = 0; e < E; e++) {
        char n[128];
        snprintf(n, sizeof n, "model.layers.2.block_sparse_moe.experts.%d.w2.weight", e);
        long i = cvt_layout_find(l, n);
        ck_assert_int_ge(i, 0);
        uint64_t nb = 0;
        ck_assert_int_eq(cvt_layout_src_nbytes(l, (size_t)i, gg, &nb, &err), SB_OK);
        ck_assert_uint_eq(nb, sizeof b);
        ck_assert_int_eq(cvt_layout_gather_bytes(l, (size_t)i, gg, b, sizeof b, &err), SB_OK);
        ck_assert_mem_eq(b, q + (size_t)e * sizeof b, sizeof b);
        ck_assert_int_eq(cvt_layout_gather_f32(l, (size_t)i, gg, y, &err), SB_OK);
        ck_assert_int_eq(qnt_dequantize_rows(SB_DTYPE_Q8_0, q, E * F, C, NULL, (size_t)e * F, F,
                                             z), SB_OK);
        ck_assert_mem_eq(y, z, sizeof y);
        ck_assert_float_eq_tol(y[5], x[e * F * C + 5], 0.05f);
    }
    cvt_layout_free(l);
    fmt_model_free(gg);
}
END_TEST

START_TEST(test_tied_drops_lm_head)
{
    struct fmt_model *hf = tiny_llama_hf(true);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert_int_eq(cvt_layout_find(l, "output.weight"), -1);
    ck_assert_uint_eq(l->n, hf->n_tensors - 1);
    /* GGUF without output.weight → config says tied */
    struct fmt_model *gg = test_materialize(l, hf, FMT_CONT_GGUF);
    char *json = NULL;
    ck_assert_int_eq(fmt_config_json_from_model(gg, &json, &err), SB_OK);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(root, "tie_word_embeddings")));
    cJSON_Delete(root);
    sb_free(json);
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

/* ---- experts -------------------------------------------------------------- */

enum { NE = 3, NF = 4, NH = 6 };

static void moe_arch(struct fmt_model *m, bool with_count)
{
    m->container = FMT_CONT_SAFETENSORS;
    m->has_arch = true;
    m->arch.kind = FMT_ARCH_MIXTRAL;
    strcpy(m->arch.model_type, "mixtral");
    m->arch.n_layers = 1;
    m->arch.dim = NH;
    m->arch.hidden_dim = NF;
    m->arch.moe_hidden_dim = NF;
    m->arch.n_heads = 1;
    m->arch.n_kv_heads = 1;
    m->arch.head_dim = 6;
    m->arch.vocab_size = 5;
    m->arch.n_experts = with_count ? NE : 0;
    m->arch.n_experts_used = 2;
    m->arch.norm_eps = 1e-5f;
    m->arch.rope_theta = 1e6f;
}

/* Mixtral classic: experts.e.w1 (id 10+e), w3 (20+e), w2 (30+e), router id 5. */
static struct fmt_model *tiny_mixtral_classic(bool with_count)
{
    struct fmt_model *m = fmt_model_new();
    moe_arch(m, with_count);
    add_f32(m, "model.layers.0.block_sparse_moe.gate.weight", 2, SHAPE(NE, NH), 5);
    /* w2 listed first, expert order scrambled: the plan must not care */
    for (int e = NE - 1; e >= 0; e--) {
        char n[128];
        snprintf(n, sizeof n, "model.layers.0.block_sparse_moe.experts.%d.w2.weight", e);
        add_f32(m, n, 2, SHAPE(NH, NF), 30 + e);
        snprintf(n, sizeof n, "model.layers.0.block_sparse_moe.experts.%d.w1.weight", e);
        add_f32(m, n, 2, SHAPE(NF, NH), 10 + e);
        snprintf(n, sizeof n, "model.layers.0.block_sparse_moe.experts.%d.w3.weight", e);
        add_f32(m, n, 2, SHAPE(NF, NH), 20 + e);
    }
    return m;
}

/* The same numbers, packed: gate_up_proj [E, 2F, H] (gate rows then up rows),
 * down_proj [E, H, F], router mlp.gate.weight. */
static struct fmt_model *tiny_mixtral_packed(void)
{
    struct fmt_model *m = fmt_model_new();
    moe_arch(m, true);
    add_f32(m, "model.layers.0.mlp.gate.weight", 2, SHAPE(NE, NH), 5);
    add_f32(m, "model.layers.0.mlp.experts.gate_up_proj", 3, SHAPE(NE, 2 * NF, NH), 0);
    add_f32(m, "model.layers.0.mlp.experts.down_proj", 3, SHAPE(NE, NH, NF), 0);
    /* (add_f32 may move the tensor array: look the data up afterwards) */
    float *x = m->tensors[1].owned, *y = m->tensors[2].owned;
    for (int e = 0; e < NE; e++) {
        for (int r = 0; r < 2 * NF; r++)
            for (int c = 0; c < NH; c++)
                x[(e * 2 * NF + r) * NH + c] = r < NF ? val(10 + e, (uint64_t)r, (uint64_t)c)
                                                      : val(20 + e, (uint64_t)(r - NF),
                                                            (uint64_t)c);
        for (int r = 0; r < NH; r++)
            for (int c = 0; c < NF; c++)
                y[(e * NH + r) * NF + c] = val(30 + e, (uint64_t)r, (uint64_t)c);
    }
    return m;
}

static void check_stacked(const struct fmt_model *gg)
{
    const char *names[3] = { "blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight",
                             "blk.0.ffn_down_exps.weight" };
    const int ids[3] = { 10, 20, 30 };
    for (int k = 0; k < 3; k++) {
        const struct fmt_tensor *t = fmt_model_find(gg, names[k]);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->ndim, 3);
        ck_assert_int_eq(t->shape[0], NE);
        ck_assert_int_eq(t->shape[1], k == 2 ? NH : NF);
        ck_assert_int_eq(t->shape[2], k == 2 ? NF : NH);
        const float *x = t->data;
        uint64_t rows = (uint64_t)t->shape[1], cols = (uint64_t)t->shape[2];
        for (int e = 0; e < NE; e++)
            for (uint64_t r = 0; r < rows; r++)
                for (uint64_t c = 0; c < cols; c++)
                    ck_assert_float_eq(x[(e * rows + r) * cols + c], val(ids[k] + e, r, c));
    }
    const struct fmt_tensor *g = fmt_model_find(gg, "blk.0.ffn_gate_inp.weight");
    ck_assert_ptr_nonnull(g);
    ck_assert_float_eq(((const float *)g->data)[7], val(5, 1, 1));
}

START_TEST(test_expert_stacking)
{
    struct fmt_model *hf = tiny_mixtral_classic(_i == 1);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert_uint_eq(l->n, 4);
    ck_assert_str_eq(l->t[0].name, "blk.0.ffn_gate_inp.weight");
    ck_assert(l->t[0].keep_f32);
    const struct cvt_target *g = target(l, "blk.0.ffn_gate_exps.weight");
    ck_assert(g->is_expert);
    ck_assert(!g->keep_f32);
    ck_assert_uint_eq(g->n_pieces, NE);
    for (size_t e = 0; e < NE; e++) {
        char n[128];
        snprintf(n, sizeof n, "model.layers.0.block_sparse_moe.experts.%zu.w1.weight", e);
        ck_assert_str_eq(hf->tensors[g->pieces[e].src].name, n);
        ck_assert_uint_eq(g->pieces[e].row0, 0);
        ck_assert_uint_eq(g->pieces[e].nrows, NF);
    }
    struct fmt_model *gg = test_materialize(l, hf, FMT_CONT_GGUF);
    check_stacked(gg);

    /* back to HF: classic per-expert names, same numbers */
    struct cvt_layout *l2 = NULL;
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l2, &err), SB_OK);
    ck_assert_uint_eq(l2->n, hf->n_tensors);
    ck_assert_str_eq(l2->t[0].name, "model.layers.0.block_sparse_moe.gate.weight");
    ck_assert_str_eq(l2->t[1].name, "model.layers.0.block_sparse_moe.experts.0.w1.weight");
    ck_assert_str_eq(l2->t[2].name, "model.layers.0.block_sparse_moe.experts.0.w2.weight");
    ck_assert_str_eq(l2->t[3].name, "model.layers.0.block_sparse_moe.experts.0.w3.weight");
    const struct cvt_target *w3 = target(l2, "model.layers.0.block_sparse_moe.experts.2.w3.weight");
    ck_assert_uint_eq(w3->pieces[0].row0, 2 * NF);
    ck_assert_uint_eq(w3->pieces[0].nrows, NF);
    struct fmt_model *hf2 = test_materialize(l2, gg, FMT_CONT_SAFETENSORS);
    for (size_t i = 0; i < hf->n_tensors; i++) {
        const struct fmt_tensor *a = &hf->tensors[i], *b = fmt_model_find(hf2, a->name);
        ck_assert_msg(b != NULL, "'%s' lost", a->name);
        ck_assert_mem_eq(a->shape, b->shape, sizeof a->shape);
        ck_assert_mem_eq(a->data, b->data, a->nbytes);
    }
    char *json = NULL;
    ck_assert_int_eq(fmt_config_json_from_model(gg, &json, &err), SB_OK);
    struct fmt_arch a;
    ck_assert_int_eq(fmt_arch_from_hf_config(&a, json, strlen(json), "config.json", &err), SB_OK);
    ck_assert_int_eq(a.kind, FMT_ARCH_MIXTRAL);
    ck_assert_int_eq(a.n_experts, NE);
    ck_assert_int_eq(a.n_experts_used, 2);
    ck_assert_int_eq(a.moe_hidden_dim, NF);
    ck_assert_float_eq(a.rope_theta, 1e6f);
    ck_assert_float_eq(a.norm_eps, 1e-5f);
    ck_assert(a.tied_embeddings); /* no output.weight in this tiny model */
    sb_free(json);
    fmt_model_free(hf2);
    cvt_layout_free(l2);
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

START_TEST(test_packed_split)
{
    struct fmt_model *hf = tiny_mixtral_packed();
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert_uint_eq(l->n, 4);
    const struct cvt_target *g = target(l, "blk.0.ffn_gate_exps.weight");
    const struct cvt_target *u = target(l, "blk.0.ffn_up_exps.weight");
    const struct cvt_target *d = target(l, "blk.0.ffn_down_exps.weight");
    ck_assert_uint_eq(g->n_pieces, NE);
    ck_assert_uint_eq(u->n_pieces, NE);
    for (uint64_t e = 0; e < NE; e++) {
        ck_assert_uint_eq(g->pieces[e].row0, e * 2 * NF);
        ck_assert_uint_eq(g->pieces[e].nrows, NF);
        ck_assert_uint_eq(u->pieces[e].row0, e * 2 * NF + NF);
        ck_assert_uint_eq(u->pieces[e].nrows, NF);
    }
    ck_assert_uint_eq(d->n_pieces, 1);
    ck_assert_uint_eq(d->pieces[0].nrows, NE * NH);
    struct fmt_model *gg = test_materialize(l, hf, FMT_CONT_GGUF);
    check_stacked(gg);
    /* the classic layout gives the very same bytes */
    struct fmt_model *hc = tiny_mixtral_classic(true);
    struct cvt_layout *lc = NULL;
    ck_assert_int_eq(cvt_layout_plan(hc, FMT_CONT_GGUF, &lc, &err), SB_OK);
    struct fmt_model *gc = test_materialize(lc, hc, FMT_CONT_GGUF);
    for (size_t i = 0; i < gg->n_tensors; i++) {
        const struct fmt_tensor *b = fmt_model_find(gc, gg->tensors[i].name);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(b->nbytes, gg->tensors[i].nbytes);
        ck_assert_mem_eq(b->data, gg->tensors[i].data, b->nbytes);
    }
    fmt_model_free(gc);
    cvt_layout_free(lc);
    fmt_model_free(hc);
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

START_TEST(test_missing_expert)
{
    struct fmt_model *hf = tiny_mixtral_classic(true);
    /* rename expert 1's w3 away */
    struct fmt_tensor *t = (struct fmt_tensor *)fmt_model_find(
        hf, "model.layers.0.block_sparse_moe.experts.1.w3.weight");
    ck_assert_ptr_nonnull(t);
    t->name[strlen(t->name) - 9] = '4'; /* ...experts.1.w4.weight */
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_EFORMAT);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(err.msg, "experts.1.w3.weight"));
    fmt_model_free(hf);
}
END_TEST

START_TEST(test_unknown_tensor)
{
    struct fmt_model *hf = tiny_llama_hf(false);
    /* old checkpoints' derived RoPE table is dropped, as llama.cpp's converter does */
    add_f32(hf, "model.layers.0.self_attn.rotary_emb.inv_freq", 1, SHAPE(4), 99);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert_uint_eq(l->n, hf->n_tensors - 1);
    cvt_layout_free(l);
    l = NULL;
    add_f32(hf, "model.layers.0.mlp.dense_4h_to_h.weight", 2, SHAPE(4, 4), 98);
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err), SB_EUNSUPPORTED);
    ck_assert_ptr_null(l);
    ck_assert_ptr_nonnull(strstr(err.msg, "'model.layers.0.mlp.dense_4h_to_h.weight'"));
    fmt_model_free(hf);

    struct fmt_model *gg = fmt_model_new();
    gg->container = FMT_CONT_GGUF;
    add_f32(gg, "rope_freqs.weight", 1, SHAPE(4), 1);
    struct sb_err e2 = { 0 };
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l, &e2), SB_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e2.msg, "rope_freqs.weight"));
    /* a head count that does not divide q */
    fmt_model_free(gg);
    gg = fmt_model_new();
    gg->container = FMT_CONT_GGUF;
    gg->has_arch = true;
    gg->arch.n_heads = 3;
    add_f32(gg, "blk.0.attn_q.weight", 2, SHAPE(8, 2), 1);
    struct sb_err e3 = { 0 };
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l, &e3), SB_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e3.msg, "blk.0.attn_q.weight"));
    fmt_model_free(gg);
}
END_TEST

START_TEST(test_identity)
{
    struct fmt_model *hf = tiny_mixtral_packed();
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_SAFETENSORS, &l, &err), SB_OK);
    ck_assert(l->identity);
    ck_assert_uint_eq(l->n, hf->n_tensors);
    for (size_t i = 0; i < l->n; i++) {
        ck_assert_str_eq(l->t[i].name, hf->tensors[i].name);
        ck_assert_uint_eq(l->t[i].n_pieces, 1);
        ck_assert_int_eq(l->t[i].perm, CVT_PERM_NONE);
    }
    ck_assert(l->t[1].is_expert);
    cvt_layout_free(l);
    /* .subbit output keeps the source's names */
    ck_assert_int_eq(cvt_layout_plan(hf, FMT_CONT_SUBBIT, &l, &err), SB_OK);
    ck_assert(l->identity);
    cvt_layout_free(l);
    fmt_model_free(hf);
}
END_TEST

/* ---- Qwen2-MoE ------------------------------------------------------------ */

START_TEST(test_qwen2moe)
{
    struct fmt_model *m = fmt_model_new();
    m->container = FMT_CONT_SAFETENSORS;
    m->has_arch = true;
    m->arch.kind = FMT_ARCH_QWEN2_MOE;
    strcpy(m->arch.model_type, "qwen2_moe");
    m->arch.n_layers = 1;
    m->arch.dim = 4;
    m->arch.n_heads = 2;
    m->arch.n_kv_heads = 1;
    m->arch.head_dim = 2;
    m->arch.hidden_dim = 6;
    m->arch.moe_hidden_dim = 3;
    m->arch.shared_hidden_dim = 5;
    m->arch.n_experts = 2;
    m->arch.n_experts_used = 1;
    m->arch.vocab_size = 9;
    add_f32(m, "model.layers.0.self_attn.q_proj.weight", 2, SHAPE(4, 4), 1);
    add_f32(m, "model.layers.0.self_attn.q_proj.bias", 1, SHAPE(4), 2);
    add_f32(m, "model.layers.0.mlp.shared_expert_gate.weight", 2, SHAPE(1, 4), 3);
    add_f32(m, "model.layers.0.mlp.shared_expert.up_proj.weight", 2, SHAPE(5, 4), 4);
    add_f32(m, "model.layers.0.mlp.gate.weight", 2, SHAPE(2, 4), 5);
    add_f32(m, "model.layers.0.mlp.experts.0.down_proj.weight", 2, SHAPE(4, 3), 6);
    add_f32(m, "model.layers.0.mlp.experts.1.down_proj.weight", 2, SHAPE(4, 3), 7);
    struct cvt_layout *l = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(cvt_layout_plan(m, FMT_CONT_GGUF, &l, &err), SB_OK);
    ck_assert_str_eq(l->gguf_arch, "qwen2moe");
    ck_assert_int_eq(target(l, "blk.0.attn_q.weight")->perm, CVT_PERM_NONE); /* NEOX */
    ck_assert_int_eq(target(l, "blk.0.attn_q.bias")->perm, CVT_PERM_NONE);
    const struct cvt_target *sg = target(l, "blk.0.ffn_gate_inp_shexp.weight");
    ck_assert_int_eq(sg->ndim, 1);
    ck_assert_int_eq(sg->shape[0], 4);
    ck_assert(sg->keep_f32);
    target(l, "blk.0.ffn_up_shexp.weight");
    const struct cvt_target *dn = target(l, "blk.0.ffn_down_exps.weight");
    ck_assert_int_eq(dn->shape[0], 2);
    struct fmt_model *gg = test_materialize(l, m, FMT_CONT_GGUF);
    strcpy(gg->arch.model_type, "qwen2moe");
    struct cvt_layout *l2 = NULL;
    ck_assert_int_eq(cvt_layout_plan(gg, FMT_CONT_SAFETENSORS, &l2, &err), SB_OK);
    struct fmt_model *hf2 = test_materialize(l2, gg, FMT_CONT_SAFETENSORS);
    ck_assert_uint_eq(hf2->n_tensors, m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct fmt_tensor *a = &m->tensors[i], *b = fmt_model_find(hf2, a->name);
        ck_assert_msg(b != NULL, "'%s' lost", a->name);
        ck_assert_int_eq(a->ndim, b->ndim);
        ck_assert_mem_eq(a->shape, b->shape, sizeof a->shape);
        ck_assert_mem_eq(a->data, b->data, a->nbytes);
    }
    /* metadata: qwen2moe.* keys */
    struct fmt_kv *kv = NULL;
    size_t n = 0;
    ck_assert_int_eq(fmt_gguf_kv_build(m, &kv, &n, &err), SB_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kv[i].key, "qwen2moe.expert_shared_feed_forward_length")) {
            ck_assert_int_eq(kv[i].type, FMT_KV_U32);
            ck_assert_uint_eq(kv[i].u, 5);
            found++;
        }
        if (!strcmp(kv[i].key, "qwen2moe.expert_feed_forward_length")) {
            ck_assert_uint_eq(kv[i].u, 3);
            found++;
        }
        fmt_kv_release(&kv[i]);
    }
    sb_free(kv);
    ck_assert_int_eq(found, 2);
    fmt_model_free(hf2);
    cvt_layout_free(l2);
    fmt_model_free(gg);
    cvt_layout_free(l);
    fmt_model_free(m);
}
END_TEST

/* ---- metadata ------------------------------------------------------------- */

static const struct fmt_kv *kv_get(const struct fmt_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key))
            return &kv[i];
    return NULL;
}

START_TEST(test_gguf_kv_llama)
{
    struct fmt_model *hf = tiny_llama_hf(false);
    hf->arch.head_dim = 8; /* != 6 / 4: key/value_length needed */
    /* an SPM vocab of 5 tokens, no types: they are derived */
    struct fmt_vocab *v = &hf->vocab;
    /* llama2.c tokenizer.bin spelling: BOS/EOS wrapped in newlines, spaces for U+2581 */
    static const char *toks[5] = { "<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " the a" };
    v->kind = FMT_VOCAB_SPM;
    v->n_tokens = 5;
    v->tokens = sb_calloc(5, sizeof *v->tokens);
    v->lens = sb_calloc(5, sizeof *v->lens);
    v->scores = sb_calloc(5, sizeof *v->scores);
    for (int i = 0; i < 5; i++) {
        v->tokens[i] = sb_strdup(toks[i]);
        v->lens[i] = (uint32_t)strlen(toks[i]);
        v->scores[i] = -(float)i;
    }
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->add_bos = true;
    struct fmt_kv *kv = NULL;
    size_t n = 0;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_gguf_kv_build(hf, &kv, &n, &err), SB_OK);
    static const struct { const char *key; enum fmt_kv_type type; uint64_t u; } want[] = {
        { "llama.context_length", FMT_KV_U32, 64 },
        { "llama.embedding_length", FMT_KV_U32, 6 },
        { "llama.block_count", FMT_KV_U32, 2 },
        { "llama.feed_forward_length", FMT_KV_U32, 5 },
        { "llama.attention.head_count", FMT_KV_U32, 4 },
        { "llama.attention.head_count_kv", FMT_KV_U32, 2 },
        { "llama.rope.dimension_count", FMT_KV_U32, 8 },
        { "llama.attention.key_length", FMT_KV_U32, 8 },
        { "llama.attention.value_length", FMT_KV_U32, 8 },
        { "llama.vocab_size", FMT_KV_U32, 7 },
        { "tokenizer.ggml.bos_token_id", FMT_KV_U32, 1 },
        { "tokenizer.ggml.eos_token_id", FMT_KV_U32, 2 },
        { "tokenizer.ggml.unknown_token_id", FMT_KV_U32, 0 },
        { "tokenizer.ggml.add_bos_token", FMT_KV_BOOL, 1 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct fmt_kv *k = kv_get(kv, n, want[i].key);
        ck_assert_msg(k != NULL, "missing %s", want[i].key);
        ck_assert_int_eq(k->type, want[i].type);
        ck_assert_uint_eq(k->u, want[i].u);
    }
    const struct fmt_kv *k = kv_get(kv, n, "general.architecture");
    ck_assert_int_eq(k->type, FMT_KV_STRING);
    ck_assert_str_eq(k->str, "llama");
    k = kv_get(kv, n, "llama.attention.layer_norm_rms_epsilon");
    ck_assert_int_eq(k->type, FMT_KV_F32);
    ck_assert_float_eq((float)k->f, 1e-5f);
    k = kv_get(kv, n, "llama.rope.freq_base");
    ck_assert_int_eq(k->type, FMT_KV_F32);
    ck_assert_float_eq((float)k->f, 10000.0f);
    ck_assert_ptr_null(kv_get(kv, n, "general.file_type"));
    ck_assert_ptr_null(kv_get(kv, n, "llama.expert_count"));
    k = kv_get(kv, n, "tokenizer.ggml.model");
    ck_assert_str_eq(k->str, "llama");
    k = kv_get(kv, n, "tokenizer.ggml.tokens");
    ck_assert_int_eq(k->type, FMT_KV_ARRAY);
    ck_assert_int_eq(k->arr_type, FMT_KV_STRING);
    ck_assert_uint_eq(k->n, 5);
    ck_assert_str_eq(k->strs[1], "<s>");
    ck_assert_str_eq(k->strs[2], "</s>");
    ck_assert_uint_eq(k->lens[2], 4);
    ck_assert_str_eq(k->strs[4], "\xe2\x96\x81the\xe2\x96\x81" "a");
    ck_assert_uint_eq(k->lens[4], 10);
    k = kv_get(kv, n, "tokenizer.ggml.scores");
    ck_assert_int_eq(k->arr_type, FMT_KV_F32);
    ck_assert_float_eq(((const float *)k->arr)[3], -3.0f);
    k = kv_get(kv, n, "tokenizer.ggml.token_type");
    ck_assert_int_eq(k->arr_type, FMT_KV_I32);
    static const int32_t types[5] = { 2, 3, 3, 6, 1 }; /* unk, control, control, byte, normal */
    ck_assert_mem_eq(k->arr, types, sizeof types);
    for (size_t i = 0; i < n; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);

    /* a GGUF source's own kv is carried, less file type and alignment */
    struct fmt_model *gg = fmt_model_new();
    gg->container = FMT_CONT_GGUF;
    gg->kv = sb_calloc(3, sizeof *gg->kv);
    gg->n_kv = 3;
    gg->kv[0] = (struct fmt_kv){ .key = sb_strdup("general.file_type"), .type = FMT_KV_U32, .u = 1 };
    gg->kv[1] = (struct fmt_kv){ .key = sb_strdup("llama.block_count"), .type = FMT_KV_U32, .u = 3 };
    gg->kv[2] = (struct fmt_kv){ .key = sb_strdup("general.name"), .type = FMT_KV_STRING,
                                 .str = sb_strdup("x y"), .len = 3 };
    ck_assert_int_eq(fmt_gguf_kv_build(gg, &kv, &n, &err), SB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(kv[0].key, "llama.block_count");
    ck_assert_uint_eq(kv[0].u, 3);
    ck_assert_str_eq(kv[1].str, "x y");
    for (size_t i = 0; i < n; i++)
        fmt_kv_release(&kv[i]);
    sb_free(kv);
    fmt_model_free(gg);
    fmt_model_free(hf);
}
END_TEST

START_TEST(test_hf_config_roundtrip)
{
    /* GGUF-named llama → config.json → fmt_arch_from_hf_config gives the arch back */
    struct fmt_model *gg = fmt_model_new();
    gg->container = FMT_CONT_L2C;
    gg->has_arch = true;
    gg->arch.kind = FMT_ARCH_LLAMA;
    gg->arch.n_layers = 5;
    gg->arch.dim = 64;
    gg->arch.hidden_dim = 172;
    gg->arch.n_heads = 8;
    gg->arch.n_kv_heads = 4;
    gg->arch.head_dim = 8;
    gg->arch.vocab_size = 512;
    gg->arch.n_ctx = 512;
    gg->arch.norm_eps = 1e-5f;
    gg->arch.rope_theta = 10000.0f;
    gg->vocab.bos_id = 1;
    gg->vocab.eos_id = 2;
    add_f32(gg, "output.weight", 2, SHAPE(512, 64), 1);
    char *json = NULL;
    struct sb_err err = { 0 };
    ck_assert_int_eq(fmt_config_json_from_model(gg, &json, &err), SB_OK);
    ck_assert_ptr_nonnull(strstr(json, "\"LlamaForCausalLM\""));
    ck_assert_ptr_nonnull(strstr(json, "\"rms_norm_eps\": 1e-05"));
    struct fmt_arch a;
    ck_assert_int_eq(fmt_arch_from_hf_config(&a, json, strlen(json), "config.json", &err), SB_OK);
    ck_assert_int_eq(a.kind, FMT_ARCH_LLAMA);
    ck_assert_int_eq(a.n_layers, 5);
    ck_assert_int_eq(a.dim, 64);
    ck_assert_int_eq(a.hidden_dim, 172);
    ck_assert_int_eq(a.n_heads, 8);
    ck_assert_int_eq(a.n_kv_heads, 4);
    ck_assert_int_eq(a.head_dim, 8);
    ck_assert_int_eq(a.vocab_size, 512);
    ck_assert_int_eq(a.n_ctx, 512);
    ck_assert_float_eq(a.norm_eps, 1e-5f);
    ck_assert_float_eq(a.rope_theta, 10000.0f);
    ck_assert(!a.tied_embeddings);
    ck_assert_int_eq(a.bos_id, 1);
    ck_assert_int_eq(a.eos_id, 2);
    sb_free(json);
    /* an HF source keeps its config.json text */
    gg->config_json = sb_strdup("{\"model_type\": \"llama\"}");
    ck_assert_int_eq(fmt_config_json_from_model(gg, &json, &err), SB_OK);
    ck_assert_str_eq(json, "{\"model_type\": \"llama\"}");
    sb_free(json);
    fmt_model_free(gg);
}
END_TEST

/* ---- allocation failures ---------------------------------------------------- */

START_TEST(test_alloc_failures)
{
    struct fmt_model *hf = _i == 0 ? tiny_llama_hf(false) : tiny_mixtral_classic(true);
    int ok = 0;
    for (long k = 0; k < 400 && !ok; k++) {
        struct cvt_layout *l = NULL;
        struct sb_err err = { 0 };
        sb_alloc_fail_after(k);
        int r = cvt_layout_plan(hf, FMT_CONT_GGUF, &l, &err);
        if (r == SB_OK) {
            struct fmt_kv *kv = NULL;
            size_t n = 0;
            r = fmt_gguf_kv_build(hf, &kv, &n, &err);
            if (r == SB_OK) {
                for (size_t i = 0; i < n; i++)
                    fmt_kv_release(&kv[i]);
                sb_free(kv);
                char *json = NULL;
                r = fmt_config_json_from_model(hf, &json, &err);
                sb_free(json);
            }
        }
        long inj = sb_alloc_injected();
        sb_alloc_fail_after(-1);
        if (r == SB_OK) {
            ck_assert_ptr_nonnull(l);
            ok = inj == 0;
        } else {
            ck_assert_int_eq(r, SB_ENOMEM);
        }
        if (r != SB_OK && l == NULL)
            ck_assert_int_eq(err.code, SB_ENOMEM);
        cvt_layout_free(l);
    }
    ck_assert(ok);
    fmt_model_free(hf);
}
END_TEST

TEST_SUITE(convert_layout, 0, NULL, NULL,
    TEST(test_perm_row_map), TEST(test_hf_to_gguf_llama), TEST(test_perm_rope_equivalence),
    TEST(test_perm_f16_f32), TEST(test_q8_0_unstack), TEST(test_tied_drops_lm_head),
    TEST_LOOP(test_expert_stacking, 2), TEST(test_packed_split), TEST(test_missing_expert),
    TEST(test_unknown_tensor), TEST(test_identity), TEST(test_qwen2moe),
    TEST(test_gguf_kv_llama), TEST(test_hf_config_roundtrip),
    TEST_LOOP(test_alloc_failures, 2))
