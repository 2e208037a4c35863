/* vfy_mem.c: memory estimates from headers alone (see vfy_mem.h).
 *
 * Formulas and where they come from:
 * - parameters: the matrix shapes of each architecture's HF modelling code
 *   (LlamaAttention/LlamaMLP, MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock,
 *   DeepseekV3Attention (MLA) / DeepseekV3MoE, SwitchTransformersSparseMLP);
 * - weights per encoding: sb_dtype_nbytes() (the same size rules the writers
 *   use), plus our sub1 estimate (vfy_mem_sub1_bits);
 * - KV cache: 2 x layers x kv_heads x head_dim x ctx x batch x bytes; MLA
 *   caches the latent (kv_lora_rank + qk_rope_head_dim) per token and layer
 *   (DeepSeek-V2 paper §2.1.2); sliding-window layers only their window;
 * - training: 16 bytes/param for mixed-precision AdamW (2 weights + 2 grads +
 *   4 fp32 master + 4 m + 4 v; ZeRO paper §3.1, EleutherAI "Transformer Math
 *   101"), activations s.b.h.L.(34 + 5.a.s/h) bytes without recomputation and
 *   2.s.b.h.L with full recomputation (Korthikanti et al. 2022, eq. 2, as
 *   quoted in Transformer Math 101).
 * Reads no tensor data. */
#include "vfy_mem.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt_config.h"
#include "fmt_model.h"
#include "par_comm.h"
#include "sb_alloc.h"
#include "sb_math.h"
#include "vfy_model_impl.h"
#include "vfy_model.h"

const enum sb_dtype vfy_mem_encodings[VFY_MEM_NENC] = {
    SB_DTYPE_F32, SB_DTYPE_F16, SB_DTYPE_BF16, SB_DTYPE_INT8, SB_DTYPE_Q8_0,
    SB_DTYPE_Q4_0, SB_DTYPE_TQ2_0, SB_DTYPE_TERN, SB_DTYPE_SUB1,
};

/* Limits past which a config is "absurd" rather than big. */
#define DIM_MAX (1L << 24)
#define LAYERS_MAX (1L << 20)
#define VOCAB_MAX (1L << 28)

const char *vfy_mem_part_name(enum vfy_mem_part p)
{
    static const char *const names[VFY_MEM_NPARTS] = {
        "embeddings", "output", "attention", "ffn", "experts", "shared experts", "routers",
        "norms", "other",
    };
    return (unsigned)p < VFY_MEM_NPARTS ? names[p] : "?";
}

void vfy_mem_model_release(struct vfy_mem_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_groups; i++)
        sb_free(m->groups[i].name);
    sb_free(m->groups);
    m->groups = NULL;
    m->n_groups = m->cap_groups = 0;
}

static void add_note(struct vfy_mem_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_note(struct vfy_mem_model *m, const char *fmt, ...)
{
    if (m->n_notes >= VFY_MEM_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->notes[m->n_notes++], sizeof m->notes[0], fmt, ap);
    va_end(ap);
}

static int add_group(struct vfy_mem_model *m, enum vfy_mem_part part, uint64_t rows,
                     uint64_t cols, uint64_t count, struct sb_err *err)
{
    if (count == 0 || rows == 0 || cols == 0)
        return SB_OK;
    if (m->n_groups == m->cap_groups) {
        size_t cap = m->cap_groups ? m->cap_groups * 2 : 32;
        struct vfy_mem_group *g = sb_realloc(m->groups, cap * sizeof *g);
        if (!g)
            return sb_err_set(err, SB_ENOMEM, "mem: out of memory");
        m->groups = g;
        m->cap_groups = cap;
    }
    struct vfy_mem_group *g = &m->groups[m->n_groups++];
    memset(g, 0, sizeof *g);
    g->part = part;
    g->rows = rows;
    g->cols = cols;
    g->count = count;
    g->stored_dtype = -1;
    g->layer = -1;
    return SB_OK;
}

/* ---- config.json -------------------------------------------------------- */

struct cfg {
    const struct fmt_config *root;
    const char *what;
    struct vfy_mem_model *m;
    struct sb_err *err;
};

/* The first of the NULL-terminated keys present with a non-null value. */
static const struct fmt_cfg_val *cfg_item(const struct cfg *c, const char *const *keys,
                                          const char **found)
{
    for (; *keys; keys++) {
        const struct fmt_cfg_val *it = fmt_config_get(c->root, *keys);
        if (it && it->kind != FMT_CFG_ABSENT && it->kind != FMT_CFG_NULL) {
            if (found)
                *found = *keys;
            return it;
        }
    }
    return NULL;
}

/* Integer field (first present alias) in [lo, hi]. Missing: required -> error
 * naming keys[0]; else dflt, recorded as an assumption when note. */
static int cfg_int(const struct cfg *c, const char *const *keys, long lo, long hi, bool required,
                   long dflt, bool note, long *out)
{
    const char *key = keys[0];
    const struct fmt_cfg_val *it = cfg_item(c, keys, &key);
    if (!it) {
        if (required)
            return sb_err_set(c->err, SB_EFORMAT, "%s: missing field '%s'", c->what, keys[0]);
        if (note)
            add_note(c->m, "assuming %s = %ld (not in %s)", keys[0], dflt, c->what);
        *out = dflt;
        return SB_OK;
    }
    if (it->kind != FMT_CFG_NUMBER || it->num != floor(it->num))
        return sb_err_set(c->err, SB_EFORMAT, "%s: field '%s' is not an integer", c->what, key);
    double v = it->num;
    if (v < (double)lo || v > (double)hi)
        return sb_err_set(c->err, SB_EFORMAT, "%s: field '%s' is %.0f, expected %ld..%ld",
                          c->what, key, v, lo, hi);
    *out = (long)v;
    return SB_OK;
}

static bool cfg_bool(const struct cfg *c, const char *key, bool dflt)
{
    const struct fmt_cfg_val *it = fmt_config_get(c->root, key);
    if (it && it->kind == FMT_CFG_BOOL)
        return it->b;
    return dflt;
}

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Shared by every decoder: count (rows, cols) matrices in part. */
#define ADD(part, r, cl, n)                                                                   \
    do {                                                                                      \
        if ((r_ = add_group(m, (part), (uint64_t)(r), (uint64_t)(cl), (uint64_t)(n), err)))   \
            return r_;                                                                        \
    } while (0)

/* Gated (SwiGLU) FFN of width ff: gate and up (ff, dim), down (dim, ff), n copies. */
static int add_gated_ffn(struct vfy_mem_model *m, enum vfy_mem_part part, long dim, long ff,
                         uint64_t n, struct sb_err *err)
{
    int r_;
    ADD(part, ff, dim, 2 * n);
    ADD(part, dim, ff, n);
    return SB_OK;
}

/* Sliding-window layers: Mistral (all layers), Qwen2 (use_sliding_window,
 * layers from max_window_layers on), Gemma-2/3 (sliding_window_pattern: every
 * p-th layer global; Gemma-2's config has no pattern: its layers alternate,
 * the even ones windowed, transformers' Gemma2DecoderLayer), or an explicit
 * layer_types list. */
static int cfg_sliding(const struct cfg *c, long n_layers, bool alternate)
{
    struct vfy_mem_model *m = c->m;
    long w = 0;
    int r = cfg_int(c, KEYS("sliding_window"), 0, 1L << 40, false, 0, false, &w);
    if (r)
        return r;
    if (w <= 0 || !cfg_bool(c, "use_sliding_window", true))
        return SB_OK;
    m->window = (int)(w > DIM_MAX * 64L ? DIM_MAX * 64L : w);
    long mwl = 0, pat = 0;
    if (c->root->layer_types.kind == FMT_CFG_ARRAY) {
        m->n_swa_layers = (int)c->root->n_sliding_layer_types;
    } else if ((r = cfg_int(c, KEYS("sliding_window_pattern"), 0, LAYERS_MAX, false, 0, false,
                            &pat)))
        return r;
    else if (pat > 1)
        m->n_swa_layers = (int)(n_layers - n_layers / pat);
    else if (alternate)
        m->n_swa_layers = (int)((n_layers + 1) / 2);   /* layers 0, 2, 4, ... */
    else if ((r = cfg_int(c, KEYS("max_window_layers"), 0, LAYERS_MAX, false, -1, false, &mwl)))
        return r;
    else if (mwl >= 0 && c->root->use_sliding_window.kind != FMT_CFG_ABSENT)
        m->n_swa_layers = (int)(mwl >= n_layers ? 0 : n_layers - mwl);
    else
        m->n_swa_layers = (int)n_layers;
    if (m->n_swa_layers > n_layers)
        m->n_swa_layers = (int)n_layers;
    return SB_OK;
}

/* switch_transformers: T5 encoder-decoder, non-gated experts (wi, wo), top-1. */
static int cfg_switch(const struct cfg *c, struct sb_err *err)
{
    struct vfy_mem_model *m = c->m;
    long dim, n_enc, n_dec, heads, dkv, dff, vocab, ne, nse, nsd, k, nb;
    int r, r_;
    if ((r = cfg_int(c, KEYS("d_model"), 1, DIM_MAX, true, 0, false, &dim)) ||
        (r = cfg_int(c, KEYS("num_layers"), 1, LAYERS_MAX, true, 0, false, &n_enc)) ||
        (r = cfg_int(c, KEYS("num_decoder_layers"), 1, LAYERS_MAX, false, n_enc, true, &n_dec)) ||
        (r = cfg_int(c, KEYS("num_heads"), 1, DIM_MAX, true, 0, false, &heads)) ||
        (r = cfg_int(c, KEYS("d_kv"), 1, DIM_MAX, true, 0, false, &dkv)) ||
        (r = cfg_int(c, KEYS("d_ff"), 1, DIM_MAX, true, 0, false, &dff)) ||
        (r = cfg_int(c, KEYS("vocab_size"), 1, VOCAB_MAX, true, 0, false, &vocab)) ||
        (r = cfg_int(c, KEYS("num_experts"), 1, LAYERS_MAX, true, 0, false, &ne)) ||
        (r = cfg_int(c, KEYS("num_sparse_encoder_layers"), 0, LAYERS_MAX, false, 0, true, &nse)) ||
        (r = cfg_int(c, KEYS("num_sparse_decoder_layers"), 0, LAYERS_MAX, false, 0, true, &nsd)) ||
        (r = cfg_int(c, KEYS("num_selected_experts"), 1, LAYERS_MAX, false, 1, false, &k)) ||
        (r = cfg_int(c, KEYS("relative_attention_num_buckets"), 0, DIM_MAX, false, 32, false,
                     &nb)))
        return r;
    if (nse > n_enc)
        nse = n_enc;
    if (nsd > n_dec)
        nsd = n_dec;
    long inner = heads * dkv;
    m->dim = (int)dim;
    m->n_layers = (int)n_dec;
    m->n_enc_layers = (int)n_enc;
    m->n_heads = m->n_kv_heads = (int)heads;
    m->head_dim = (int)dkv;
    m->hidden_dim = (int)dff;
    m->moe_hidden_dim = (int)dff;
    m->vocab_size = (int)vocab;
    m->n_experts = (int)ne;
    m->n_experts_used = (int)k;
    m->n_moe_layers = (int)(nse + nsd);
    m->cross_attn = true;
    m->tied = cfg_bool(c, "tie_word_embeddings", true);
    ADD(VFY_MEM_EMBED, vocab, dim, 1);
    if (!m->tied)
        ADD(VFY_MEM_OUTPUT, vocab, dim, 1);
    /* self-attention q, k, v (inner, dim) and o (dim, inner); decoder adds cross-attention */
    uint64_t n_attn = (uint64_t)n_enc + 2u * (uint64_t)n_dec;
    ADD(VFY_MEM_ATTN, inner, dim, 3 * n_attn);
    ADD(VFY_MEM_ATTN, dim, inner, n_attn);
    ADD(VFY_MEM_OTHER, nb, heads, 2); /* relative attention bias, first block of each stack */
    uint64_t n_sparse = (uint64_t)(nse + nsd), n_dense = (uint64_t)(n_enc + n_dec) - n_sparse;
    ADD(VFY_MEM_FFN, dff, dim, n_dense);
    ADD(VFY_MEM_FFN, dim, dff, n_dense);
    ADD(VFY_MEM_EXPERTS, dff, dim, n_sparse * (uint64_t)ne);
    ADD(VFY_MEM_EXPERTS, dim, dff, n_sparse * (uint64_t)ne);
    ADD(VFY_MEM_ROUTER, ne, dim, n_sparse);
    /* T5 layer norms: 2 per encoder block, 3 per decoder block, 2 final */
    ADD(VFY_MEM_NORM, 1, dim, 2u * (uint64_t)n_enc + 3u * (uint64_t)n_dec + 2u);
    return SB_OK;
}

/* Decoder-only families: llama (and mistral, qwen2 and unknown types),
 * mixtral, qwen2_moe, deepseek_v2/v3. */
static int cfg_decoder(const struct cfg *c, const char *type, struct sb_err *err)
{
    struct vfy_mem_model *m = c->m;
    long dim, L, H, kvh, hd, ff, vocab, nctx;
    int r, r_;
    bool deepseek = !strcmp(type, "deepseek_v3") || !strcmp(type, "deepseek_v2");
    bool mixtral = !strcmp(type, "mixtral");
    bool qmoe = !strcmp(type, "qwen2_moe");
    /* Gemma (google/gemma-*): embeddings tied unless the config says not
     * (PretrainedConfig's default, which Gemma's configs leave implicit);
     * Gemma-2 adds a norm after attention and after the FFN (4 a layer) and
     * alternates sliding-window and global layers */
    bool gemma = !strcmp(type, "gemma") || !strcmp(type, "gemma2");
    bool gemma2 = !strcmp(type, "gemma2");
    if ((r = cfg_int(c, KEYS("hidden_size", "n_embd", "d_model", "dim"), 1, DIM_MAX, true, 0,
                     false, &dim)) ||
        (r = cfg_int(c, KEYS("num_hidden_layers", "n_layer", "num_layers", "n_layers"), 1,
                     LAYERS_MAX, true, 0, false, &L)) ||
        (r = cfg_int(c, KEYS("num_attention_heads", "n_head", "num_heads", "n_heads"), 1,
                     DIM_MAX, true, 0, false, &H)) ||
        (r = cfg_int(c, KEYS("vocab_size"), 1, VOCAB_MAX, true, 0, false, &vocab)) ||
        (r = cfg_int(c, KEYS("num_key_value_heads", "n_kv_heads"), 1, DIM_MAX, false, H,
                     !deepseek, &kvh)) ||
        (r = cfg_int(c, KEYS("head_dim"), 1, DIM_MAX, false, dim / H, false, &hd)) ||
        (r = cfg_int(c, KEYS("max_position_embeddings", "n_positions", "max_seq_len"), 0,
                     1L << 40, false, 0, false, &nctx)))
        return r;
    if (hd < 1)
        return sb_err_set(err, SB_EFORMAT, "%s: hidden_size %ld smaller than num_attention_heads "
                          "%ld", c->what, dim, H);
    if (H % kvh)
        return sb_err_set(err, SB_EFORMAT, "%s: num_key_value_heads %ld does not divide "
                          "num_attention_heads %ld", c->what, kvh, H);
    /* FFN width: required unless every layer is MoE with its own width */
    if ((r = cfg_int(c, KEYS("intermediate_size", "n_inner", "ffn_dim", "hidden_dim"), 1,
                     DIM_MAX, true, 0, false, &ff)))
        return r;
    m->dim = (int)dim;
    m->n_layers = (int)L;
    m->n_heads = (int)H;
    m->n_kv_heads = (int)kvh;
    m->head_dim = (int)hd;
    m->hidden_dim = (int)ff;
    m->vocab_size = (int)vocab;
    m->n_ctx_max = (int)(nctx > (1L << 30) ? (1L << 30) : nctx);
    m->tied = cfg_bool(c, "tie_word_embeddings", gemma);
    if ((r = cfg_sliding(c, L, gemma2)))
        return r;

    ADD(VFY_MEM_EMBED, vocab, dim, 1);
    if (!m->tied)
        ADD(VFY_MEM_OUTPUT, vocab, dim, 1);
    ADD(VFY_MEM_NORM, 1, dim, (gemma2 ? 4u : 2u) * (uint64_t)L + 1u);

    /* attention */
    if (deepseek) {
        long qlr, kvlr, nope, rope, vhd;
        if ((r = cfg_int(c, KEYS("q_lora_rank"), 0, DIM_MAX, false, 0, false, &qlr)) ||
            (r = cfg_int(c, KEYS("kv_lora_rank"), 1, DIM_MAX, true, 0, false, &kvlr)) ||
            (r = cfg_int(c, KEYS("qk_nope_head_dim"), 1, DIM_MAX, true, 0, false, &nope)) ||
            (r = cfg_int(c, KEYS("qk_rope_head_dim"), 1, DIM_MAX, true, 0, false, &rope)) ||
            (r = cfg_int(c, KEYS("v_head_dim"), 1, DIM_MAX, true, 0, false, &vhd)))
            return r;
        m->mla = true;
        m->kv_lora_rank = (int)kvlr;
        m->qk_rope_head_dim = (int)rope;
        m->v_head_dim = (int)vhd;
        m->head_dim = (int)(nope + rope);
        uint64_t n = (uint64_t)L;
        if (qlr > 0) {
            ADD(VFY_MEM_ATTN, qlr, dim, n);               /* q_a_proj */
            ADD(VFY_MEM_NORM, 1, qlr, n);                 /* q_a_layernorm */
            ADD(VFY_MEM_ATTN, H * (nope + rope), qlr, n); /* q_b_proj */
        } else {
            ADD(VFY_MEM_ATTN, H * (nope + rope), dim, n); /* q_proj */
        }
        ADD(VFY_MEM_ATTN, kvlr + rope, dim, n);       /* kv_a_proj_with_mqa */
        ADD(VFY_MEM_NORM, 1, kvlr, n);                /* kv_a_layernorm */
        ADD(VFY_MEM_ATTN, H * (nope + vhd), kvlr, n); /* kv_b_proj */
        ADD(VFY_MEM_ATTN, dim, H * vhd, n);           /* o_proj */
    } else {
        uint64_t n = (uint64_t)L;
        ADD(VFY_MEM_ATTN, H * hd, dim, n);       /* q */
        ADD(VFY_MEM_ATTN, kvh * hd, dim, 2 * n); /* k, v */
        ADD(VFY_MEM_ATTN, dim, H * hd, n);       /* o */
        bool bias = cfg_bool(c, "attention_bias", qmoe || !strcmp(type, "qwen2"));
        if (bias) {
            ADD(VFY_MEM_ATTN, 1, H * hd, n);
            ADD(VFY_MEM_ATTN, 1, kvh * hd, 2 * n);
        }
    }

    /* feed-forward: which layers are MoE */
    long ne = 0, k = 0, moe_ff = ff, shared_ff = 0, nshared = 0;
    uint64_t n_moe = 0;
    if (mixtral) {
        if ((r = cfg_int(c, KEYS("num_local_experts"), 1, LAYERS_MAX, false, 8, true, &ne)) ||
            (r = cfg_int(c, KEYS("num_experts_per_tok"), 1, LAYERS_MAX, false, 2, true, &k)))
            return r;
        n_moe = (uint64_t)L;
    } else if (qmoe) {
        long step;
        if ((r = cfg_int(c, KEYS("num_experts"), 0, LAYERS_MAX, false, 60, true, &ne)) ||
            (r = cfg_int(c, KEYS("num_experts_per_tok"), 1, LAYERS_MAX, false, 4, true, &k)) ||
            (r = cfg_int(c, KEYS("moe_intermediate_size"), 1, DIM_MAX, true, 0, false,
                         &moe_ff)) ||
            (r = cfg_int(c, KEYS("shared_expert_intermediate_size"), 0, DIM_MAX, false, 0, true,
                         &shared_ff)) ||
            (r = cfg_int(c, KEYS("decoder_sparse_step"), 1, LAYERS_MAX, false, 1, false, &step)))
            return r;
        for (long i = 0; i < L && ne > 0; i++) {
            bool dense = false;
            for (size_t j = 0; j < c->root->n_mlp_only_layers; j++)
                dense |= c->root->mlp_only_layers[j] == i;
            if (!dense && (i + 1) % step == 0)
                n_moe++;
        }
        nshared = shared_ff > 0 ? 1 : 0;
    } else if (deepseek) {
        long first_dense, freq;
        if ((r = cfg_int(c, KEYS("n_routed_experts"), 0, LAYERS_MAX, true, 0, false, &ne)) ||
            (r = cfg_int(c, KEYS("num_experts_per_tok"), 1, LAYERS_MAX, true, 0, false, &k)) ||
            (r = cfg_int(c, KEYS("moe_intermediate_size"), 1, DIM_MAX, true, 0, false,
                         &moe_ff)) ||
            (r = cfg_int(c, KEYS("n_shared_experts"), 0, LAYERS_MAX, false, 0, true, &nshared)) ||
            (r = cfg_int(c, KEYS("first_k_dense_replace"), 0, LAYERS_MAX, false, 0, true,
                         &first_dense)) ||
            (r = cfg_int(c, KEYS("moe_layer_freq"), 1, LAYERS_MAX, false, 1, false, &freq)))
            return r;
        for (long i = 0; i < L && ne > 0; i++)
            if (i >= first_dense && i % freq == 0)
                n_moe++;
        shared_ff = nshared * moe_ff; /* DeepseekV3MoE: one MLP of n_shared x moe width */
    } else {
        long nle = 0;
        if ((r = cfg_int(c, KEYS("num_local_experts", "num_experts"), 0, LAYERS_MAX, false, 0,
                         false, &nle)))
            return r;
        if (nle > 1)
            add_note(m, "%s: %ld experts in a '%s' config ignored (dense llama formula)", c->what,
                     nle, type);
    }
    if (k > ne && ne > 0)
        return sb_err_set(err, SB_EFORMAT, "%s: num_experts_per_tok %ld exceeds %ld experts",
                          c->what, k, ne);
    uint64_t n_dense = (uint64_t)L - n_moe;
    if ((r = add_gated_ffn(m, VFY_MEM_FFN, dim, ff, n_dense, err)))
        return r;
    if (n_moe) {
        if ((r = add_gated_ffn(m, VFY_MEM_EXPERTS, dim, moe_ff, n_moe * (uint64_t)ne, err)))
            return r;
        ADD(VFY_MEM_ROUTER, ne, dim, n_moe);
        if (!strcmp(type, "deepseek_v3"))
            ADD(VFY_MEM_ROUTER, 1, ne, n_moe); /* e_score_correction_bias */
        if (shared_ff > 0) {
            if ((r = add_gated_ffn(m, VFY_MEM_SHARED, dim, shared_ff, n_moe, err)))
                return r;
            if (qmoe)
                ADD(VFY_MEM_ROUTER, 1, dim, n_moe); /* shared_expert_gate */
        }
    }
    m->n_experts = (int)(n_moe ? ne : 0);
    m->n_experts_used = (int)(n_moe ? k : 0);
    m->n_shared_experts = (int)(n_moe ? nshared : 0);
    m->n_moe_layers = (int)n_moe;
    m->moe_hidden_dim = (int)(n_moe ? moe_ff : 0);
    return SB_OK;
}

int vfy_mem_from_fmt_config(struct vfy_mem_model *m, const struct fmt_config *cfg,
                            const char *what, struct sb_err *err)
{
    memset(m, 0, sizeof *m);
    m->stored_dtype = -1;
    m->torch_dtype = -1;
    struct cfg c = { cfg, what, m, err };
    const char *type = cfg->model_type_val.kind == FMT_CFG_STRING ? cfg->model_type : NULL;
    if (!type) {
        add_note(m, "%s: no model_type, using the llama formula", what);
        type = "llama";
    }
    snprintf(m->model_type, sizeof m->model_type, "%s", type);
    static const char *const known[] = { "llama", "mistral", "qwen2", "mixtral", "qwen2_moe",
                                         "deepseek_v3", "deepseek_v2", "switch_transformers",
                                         "gemma", "gemma2" };
    bool is_known = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        is_known |= !strcmp(type, known[i]);
    if (!is_known)
        add_note(m, "%s: unknown model_type '%s', using the llama formula", what, type);
    int r = !strcmp(type, "switch_transformers") ? cfg_switch(&c, err) : cfg_decoder(&c, type, err);
    int td = cfg->torch_dtype[0] ? sb_dtype_from_name(cfg->torch_dtype) : -1;
    m->torch_dtype = td == SB_DTYPE_F32 || td == SB_DTYPE_F16 || td == SB_DTYPE_BF16 ? td : -1;
    if (r != SB_OK)
        vfy_mem_model_release(m);
    return r;
}

int vfy_mem_from_config(struct vfy_mem_model *m, const char *json, size_t len, const char *what,
                        struct sb_err *err)
{
    struct fmt_config *cfg;
    memset(m, 0, sizeof *m);
    m->stored_dtype = -1;
    int r = fmt_config_parse(&cfg, json, len, what, err);
    if (r != SB_OK)
        return r;
    r = vfy_mem_from_fmt_config(m, cfg, what, err);
    fmt_config_free(cfg);
    return r;
}

/* ---- presets -------------------------------------------------------------- */

int vfy_mem_from_preset(struct vfy_mem_model *m, const struct vfy_mem_preset *p,
                        struct sb_err *err)
{
    int r = vfy_mem_from_config(m, p->config, strlen(p->config), p->name, err);
    if (r == SB_OK) {
        snprintf(m->name, sizeof m->name, "%s", p->name);
        snprintf(m->source, sizeof m->source, "%s", p->source);
    }
    return r;
}

/* "org/repo" of a Hugging Face id or URL, lowercased into out: the
 * https://, www., huggingface.co/ and hf.co/ prefixes dropped, and whatever
 * follows the repository (/tree/main, /blob/main/config.json, ?query, #frag);
 * false when it names no org/repo */
static bool hf_repo_id(const char *name, char *out, size_t cap)
{
    static const char *const prefixes[] = { "https://", "http://", "www.", "huggingface.co/",
                                            "hf.co/" };
    const char *s = name;
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
        if (!strncasecmp(s, prefixes[k], strlen(prefixes[k])))
            s += strlen(prefixes[k]);
    size_t n = 0, slashes = 0;
    for (; s[n] && s[n] != '?' && s[n] != '#'; n++) {
        if (s[n] == '/' && ++slashes == 2)
            break;
        if (n + 1 >= cap)
            return false;
        out[n] = (char)tolower((unsigned char)s[n]);
    }
    while (n && out[n - 1] == '/')
        n--;
    out[n] = 0;
    const char *sl = strchr(out, '/');
    return sl && sl > out && sl[1];
}

/* the base model of a repo id: its '-' separated words less the ones that
 * name a fine-tuned or repackaged variant of the same shapes (Instruct, it,
 * chat, hf, base), lowercased ("mistralai/mixtral-8x7b-v0.1" for
 * mistralai/Mixtral-8x7B-Instruct-v0.1) */
static void hf_base_id(const char *id, char *out, size_t cap)
{
    static const char *const variant[] = { "instruct", "it", "chat", "hf", "base" };
    size_t o = 0;
    out[0] = 0;
    const char *slash = strchr(id, '/');
    size_t org = slash ? (size_t)(slash - id) + 1 : 0;
    if (org >= cap)
        return;
    memcpy(out, id, org);
    o = org;
    for (const char *w = id + org; *w;) {
        size_t len = strcspn(w, "-");
        bool drop = false;
        for (size_t k = 0; k < sizeof variant / sizeof variant[0]; k++)
            drop |= len == strlen(variant[k]) && !strncasecmp(w, variant[k], len);
        if (!drop && o + len + 2 < cap) {
            if (o > org)
                out[o++] = '-';
            for (size_t i = 0; i < len; i++)
                out[o++] = (char)tolower((unsigned char)w[i]);
        }
        w += len;
        if (*w == '-')
            w++;
    }
    out[o] = 0;
}

const struct vfy_mem_preset *vfy_mem_preset_lookup(const char *name, enum vfy_mem_match *how)
{
    if (how)
        *how = VFY_MEM_MATCH_NONE;
    for (size_t i = 0; i < vfy_mem_preset_count(); i++)
        if (!strcasecmp(vfy_mem_preset_get(i)->name, name)) {
            if (how)
                *how = VFY_MEM_MATCH_NAME;
            return vfy_mem_preset_get(i);
        }
    /* a Hugging Face id (org/repo, or its URL): the preset transcribed from that
     * repository's config.json, named by its source "huggingface.co/org/repo ...";
     * failing that, the one of its base model (same org, the variant's words
     * dropped from both names) */
    char id[256], src[256], base[256], pbase[256];
    if (!hf_repo_id(name, id, sizeof id))
        return NULL;
    hf_base_id(id, base, sizeof base);
    const struct vfy_mem_preset *by_base = NULL;
    for (size_t i = 0; i < vfy_mem_preset_count(); i++) {
        const char *s = vfy_mem_preset_get(i)->source;
        if (strncasecmp(s, "huggingface.co/", 15) != 0)
            continue;
        size_t n = strcspn(s + 15, " ");
        if (n >= sizeof src)
            continue;
        for (size_t k = 0; k < n; k++)
            src[k] = (char)tolower((unsigned char)s[15 + k]);
        src[n] = 0;
        if (!strcmp(src, id)) {
            if (how)
                *how = VFY_MEM_MATCH_ID;
            return vfy_mem_preset_get(i);
        }
        hf_base_id(src, pbase, sizeof pbase);
        if (!by_base && !strcmp(pbase, base))
            by_base = vfy_mem_preset_get(i);
    }
    if (by_base && how)
        *how = VFY_MEM_MATCH_BASE;
    return by_base;
}

const struct vfy_mem_preset *vfy_mem_preset_find(const char *name)
{
    return vfy_mem_preset_lookup(name, NULL);
}

/* ---- from an opened model ------------------------------------------------- */

static bool has(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

/* Component of a tensor by its name: HF names (model.layers.N.self_attn.q_proj),
 * GGUF names (blk.N.attn_q), llama2.c names as the reader gives them. Order
 * matters: norms before attention ("attn_norm"), routers before FFN
 * ("ffn_gate_inp", "mlp.gate.weight"), shared before routed experts. */
int vfy_mem_part_from_word(const char *w)
{
    static const struct { const char *word; enum vfy_mem_part part; } words[] = {
        { "embed", VFY_MEM_EMBED }, { "embeddings", VFY_MEM_EMBED }, { "output", VFY_MEM_OUTPUT },
        { "attn", VFY_MEM_ATTN }, { "attention", VFY_MEM_ATTN }, { "ffn", VFY_MEM_FFN },
        { "dense", VFY_MEM_FFN }, { "shared", VFY_MEM_SHARED }, { "experts", VFY_MEM_EXPERTS },
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(w, words[i].word))
            return (int)words[i].part;
    return -1;
}

enum vfy_mem_part vfy_mem_part_of(const char *name)
{
    char low[256];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = 0;
    const char *s = low;
    if (has(s, "norm") || has(s, "ln_") || has(s, "layer_norm") || has(s, "rms_"))
        return VFY_MEM_NORM;
    if (has(s, "embed_tokens") || has(s, "token_embd") || has(s, "tok_embeddings") ||
        has(s, "wte.") || !strcmp(s, "shared.weight") || has(s, "word_embeddings"))
        return VFY_MEM_EMBED;
    if (has(s, "lm_head") || !strcmp(s, "output.weight") || !strcmp(s, "output") ||
        has(s, "wcls"))
        return VFY_MEM_OUTPUT;
    if (has(s, "ffn_gate_inp") || has(s, "router") || has(s, "shared_expert_gate") ||
        has(s, "e_score_correction") || has(s, "mlp.gate.") || has(s, "moe.gate.") ||
        has(s, "block_sparse_moe.gate.") || has(s, "exp_probs_b"))
        return VFY_MEM_ROUTER;
    if (has(s, "shexp") || has(s, "shared_expert"))
        return VFY_MEM_SHARED;
    if (has(s, "expert") || has(s, "_exps"))
        return VFY_MEM_EXPERTS;
    if (has(s, "attn") || has(s, "attention") || has(s, ".wq") || has(s, ".wk") ||
        has(s, ".wv") || has(s, ".wo") || has(s, "q_proj") || has(s, "k_proj") ||
        has(s, "v_proj") || has(s, "o_proj"))
        return VFY_MEM_ATTN;
    if (has(s, "mlp") || has(s, "ffn") || has(s, "feed_forward") || has(s, ".w1") ||
        has(s, ".w2") || has(s, ".w3"))
        return VFY_MEM_FFN;
    return VFY_MEM_OTHER;
}

static void arch_to_model(struct vfy_mem_model *m, const struct fmt_arch *a)
{
    m->n_layers = a->n_layers;
    m->dim = a->dim;
    m->hidden_dim = a->hidden_dim;
    m->n_heads = a->n_heads;
    m->n_kv_heads = a->n_kv_heads > 0 ? a->n_kv_heads : a->n_heads;
    m->head_dim = a->head_dim > 0 ? a->head_dim : (a->n_heads > 0 ? a->dim / a->n_heads : 0);
    m->vocab_size = a->vocab_size;
    m->n_ctx_max = a->n_ctx;
    m->tied = a->tied_embeddings;
    m->n_experts = a->n_experts;
    m->n_experts_used = a->n_experts_used;
    m->moe_hidden_dim = a->moe_hidden_dim;
    m->n_shared_experts = a->shared_hidden_dim > 0;
    snprintf(m->model_type, sizeof m->model_type, "%s", a->model_type);
}

int vfy_mem_from_fmt(struct vfy_mem_model *m, const struct fmt_model *fm, bool compare_data,
                     struct sb_err *err)
{
    const char *what = fm->path ? fm->path : "model";
    int r;
    if (fm->config) {
        if ((r = vfy_mem_from_fmt_config(m, fm->config, what, err)))
            return r;
        m->n_groups = 0; /* the tensors replace the config's shapes */
    } else {
        memset(m, 0, sizeof *m);
        m->torch_dtype = -1;
        if (!fm->has_arch && fm->arch.n_layers <= 0)
            return sb_err_set(err, SB_EFORMAT, "%s: no architecture (config.json or metadata) "
                              "to size the KV cache", what);
        arch_to_model(m, &fm->arch);
        if (m->n_layers <= 0 || m->dim <= 0 || m->n_heads <= 0 || m->head_dim <= 0)
            return sb_err_set(err, SB_EFORMAT, "%s: architecture lacks layers, dim or heads",
                              what);
    }
    const char *base = strrchr(what, '/');
    snprintf(m->name, sizeof m->name, "%s", base && base[1] ? base + 1 : what);
    m->from_file = true;
    m->n_moe_layers = 0;

    const struct fmt_tensor *emb = NULL, *out = NULL;
    uint64_t dt_params[SB_DTYPE_COUNT] = { 0 };
    bool moe_layer_seen[4096] = { false };
    for (size_t i = 0; i < fm->n_tensors; i++) {
        const struct fmt_tensor *t = &fm->tensors[i];
        uint64_t rows, cols;
        if (sb_shape_rows_cols(t->shape, t->ndim, &rows, &cols))
            return sb_err_set(err, SB_EFORMAT, "%s: tensor '%s': shape overflows", what,
                              t->name);
        enum vfy_mem_part p = vfy_mem_part_of(t->name);
        if (p == VFY_MEM_EMBED && !emb)
            emb = t;
        if (p == VFY_MEM_OUTPUT && !out)
            out = t;
        size_t before = m->n_groups;
        if ((r = add_group(m, p, rows, cols, 1, err))) {
            vfy_mem_model_release(m);
            return r;
        }
        if (m->n_groups == before)
            continue; /* empty tensor */
        struct vfy_mem_group *g = &m->groups[m->n_groups - 1];
        if (t->name && !(g->name = sb_strdup(t->name))) {
            vfy_mem_model_release(m);
            return sb_err_set(err, SB_ENOMEM, "%s: out of memory", what);
        }
        g->stored_dtype = (int)t->dtype;
        g->stored_bytes = t->nbytes;
        const char *d = t->name;
        while (*d && !isdigit((unsigned char)*d))
            d++;
        g->layer = *d ? atoi(d) : -1;
        if (p == VFY_MEM_EXPERTS && g->layer >= 0 && g->layer < 4096 &&
            !moe_layer_seen[g->layer]) {
            moe_layer_seen[g->layer] = true;
            m->n_moe_layers++;
        }
        if (rows > 1 && (unsigned)t->dtype < SB_DTYPE_COUNT)
            dt_params[t->dtype] += rows * cols;
    }
    m->stored_dtype = -1;
    for (int d = 0; d < SB_DTYPE_COUNT; d++)
        if (dt_params[d] && (m->stored_dtype < 0 || dt_params[d] > dt_params[m->stored_dtype]))
            m->stored_dtype = d;

    /* a stored lm head that is the embedding again */
    bool dup = false;
    if (emb && out && emb->dtype == out->dtype && emb->nbytes == out->nbytes &&
        emb->ndim == out->ndim && !memcmp(emb->shape, out->shape, sizeof emb->shape)) {
        const char *why = NULL;
        if (emb->data && emb->data == out->data)
            why = "shares its storage with";
        else if (emb->map_index == out->map_index && emb->file_offset == out->file_offset &&
                 emb->map_index >= 0)
            why = "shares its storage with";
        else if (compare_data && emb->data && out->data && !memcmp(emb->data, out->data, emb->nbytes))
            why = "duplicates byte for byte";
        if (why) {
            dup = true;
            for (size_t i = 0; i < m->n_groups; i++)
                if (m->groups[i].part == VFY_MEM_OUTPUT) {
                    m->groups[i].duplicate = true;
                    break;
                }
            m->tied = true;
            add_note(m, "%s: '%s' %s '%s': counted once", what, out->name, why, emb->name);
        }
    } else if (emb && !out) {
        m->tied = true;
    }
    /* the core uses a stored head whatever the metadata says (vfy_model_new
     * warns), so it is counted unless it is the embedding's storage again */
    if (emb && out && !dup && m->tied) {
        m->tied = false;
        add_note(m, "%s: tie_word_embeddings is true, but '%s' is stored: counted (ppl uses it)",
                 what, out->name);
    }
    return SB_OK;
}

/* ---- sizes -------------------------------------------------------------- */

double vfy_mem_sub1_bits(double z)
{
    if (!(z > 0.0) || z >= 1.0)
        return z >= 1.0 ? 0.0 : 1.03 * log2(3.0);
    double nz = (1.0 - z) / 2.0;
    double h = -z * log2(z) - 2.0 * nz * log2(nz);
    return 1.03 * h; /* sub1 stays within 3% of the order-0 entropy (product.md) */
}

/* sub1 per-row overhead: bf16 (lo, hi) + a u32 row offset; per tensor a
 * header and frequency table (64 bytes). See qnt_sub1.h for the layout. */
#define SUB1_ROW_BYTES 8u
#define SUB1_TENSOR_BYTES 64u

int vfy_mem_weight_bytes(enum sb_dtype enc, uint64_t rows, uint64_t cols, uint64_t count,
                         double zeros, uint64_t *out)
{
    uint64_t one, n;
    if (enc == SB_DTYPE_SUB1) {
        if (sb_mul_u64(rows, cols, &n))
            return SB_EFORMAT;
        double bits = vfy_mem_sub1_bits(zeros) * (double)n;
        if (bits > 1.8e19)
            return SB_EFORMAT;
        uint64_t code = (uint64_t)ceil(bits / 8.0);
        if (sb_mul_u64(rows, SUB1_ROW_BYTES, &one) || sb_add_u64(one, code, &one) ||
            sb_add_u64(one, SUB1_TENSOR_BYTES, &one))
            return SB_EFORMAT;
    } else {
        int64_t shape[2] = { (int64_t)rows, (int64_t)cols };
        if (rows > INT64_MAX || cols > INT64_MAX)
            return SB_EFORMAT;
        int r = sb_dtype_nbytes(enc, shape, 2, NULL, &one);
        if (r != SB_OK)
            return SB_EFORMAT;
    }
    if (sb_mul_u64(one, count, out))
        return SB_EFORMAT;
    return SB_OK;
}

void vfy_mem_opts_init(struct vfy_mem_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ctx = 4096;
    o->batch = 1;
    o->kv_type = SB_DTYPE_F16;
    o->zeros = 0.885;
    o->keep = VFY_MEM_KEEP_EMBED | VFY_MEM_KEEP_OUTPUT;
    o->weights_enc = -1;
}

/* Bytes of n elements of a KV row in t (q8_0: whole blocks of 32). */
static uint64_t kv_row_bytes(enum sb_dtype t, uint64_t n)
{
    if (t == SB_DTYPE_F32)
        return 4 * n;
    if (t == SB_DTYPE_F16 || t == SB_DTYPE_BF16)
        return 2 * n;
    return (n + 31) / 32 * 34; /* q8_0 */
}

/* Saturating helpers for the (double-checked) estimate arithmetic. */
#define CHK(expr)                                                                              \
    do {                                                                                       \
        if (expr)                                                                              \
            return sb_err_set(err, SB_EFORMAT, "%s: sizes overflow 64 bits", m->name);         \
    } while (0)

/* ---- runtimes: the KV cache and the buffers around the weights ---------- */

/* KV bytes of one token in one layer (K and V; MLA: the latent; cross-attention doubled) */
static uint64_t kv_layer_token_bytes(const struct vfy_mem_model *m, enum sb_dtype t)
{
    uint64_t b;
    if (m->mla)
        b = kv_row_bytes(t, (uint64_t)m->kv_lora_rank + (uint64_t)m->qk_rope_head_dim);
    else
        b = 2 * kv_row_bytes(t, (uint64_t)m->n_kv_heads * (uint64_t)m->head_dim);
    return m->cross_attn ? 2 * b : b; /* decoder self + cross attention, encoder length = ctx */
}

/* bytes of a cache of per_layer_tok bytes a token and layer: full layers hold
 * ctx tokens, windowed ones min(ctx, wctx), for batch sequences */
static int kv_total(const struct vfy_mem_model *m, uint64_t per_layer_tok, uint64_t ctx,
                    uint64_t wctx, uint64_t batch, uint64_t *out)
{
    uint64_t L = (uint64_t)m->n_layers, swa = (uint64_t)m->n_swa_layers;
    if (swa > L)
        swa = L;
    if (wctx > ctx)
        wctx = ctx;
    uint64_t t1, t2;
    return sb_mul_u64(per_layer_tok, (L - swa), &t1) || sb_mul_u64(t1, ctx, &t1) ||
           sb_mul_u64(per_layer_tok, swa, &t2) || sb_mul_u64(t2, wctx, &t2) ||
           sb_add_u64(t1, t2, &t1) || sb_mul_u64(t1, batch, out);
}

/* the widest FFN a token passes through: the dense width where a layer is
 * dense, k routed experts' where one is MoE */
static uint64_t ffn_active_width(const struct vfy_mem_model *m)
{
    uint64_t ff = m->n_moe_layers < m->n_layers ? (uint64_t)m->hidden_dim : 0;
    uint64_t moe = m->n_experts > 0 ? (uint64_t)m->n_experts_used * (uint64_t)m->moe_hidden_dim : 0;
    return moe > ff ? moe : ff;
}

static int est_subbit(const struct vfy_mem_model *m, const struct vfy_mem_opts *o,
                      struct vfy_mem_est *e, uint64_t ctx, uint64_t batch, uint64_t max_cols,
                      uint64_t max_rows, struct sb_err *err)
{
    /* KV cache: per token and layer, then windows */
    uint64_t per_layer_tok = kv_layer_token_bytes(m, o->kv_type);
    uint64_t wctx = m->window > 0 && (uint64_t)m->window < ctx ? (uint64_t)m->window : ctx;
    e->kv_per_token = per_layer_tok * (uint64_t)m->n_layers;
    e->kv_cells = ctx;
    CHK(kv_total(m, per_layer_tok, ctx, wctx, batch, &e->kv));

    /* runtime of our core as `subbit ppl` touches it for a window of ctx tokens
     * x batch, processed in blocks of B tokens (below): f32 logits for the
     * scored positions; the context's buffers (vfy_ctx_bytes); per-thread row
     * scratch for the matvec kernels (16 threads x the widest row, in and out,
     * on the stack). The vocabulary is counted with the scratch at 150 bytes a
     * token: the pieces are held three times (the GGUF metadata, the model's
     * vocab, the tokenizer's table and hash map), each a small malloc with its
     * overhead — measured with valgrind massif on llama-2-tiny-random's 32,000
     * tokens. */
    /* ppl's chunks protocol forwards a window in two calls (the unscored
     * first half, then the scored half), so a block holds at most
     * ctx - ctx/2 + 1 tokens: rows past that are allocated but never touched,
     * and untouched pages are not resident */
    uint64_t half = ctx - ctx / 2 + 1;
    uint64_t T, B = half < 512 ? half : 512;
    CHK(sb_mul_u64(ctx, batch, &T) || sb_mul_u64(B, batch, &B));
    /* logits: the scored positions of a window, which for ppl's default
     * chunks protocol are its second half (plus the one before it) */
    uint64_t lrows;
    CHK(sb_mul_u64(ctx - ctx / 2 + 1, batch, &lrows));
    if (lrows > T)
        lrows = T;
    e->logits_rows = lrows;
    CHK(sb_mul_u64(lrows, (uint64_t)m->vocab_size, &e->logits) ||
        sb_mul_u64(e->logits, 4, &e->logits));
    uint64_t ffw = (uint64_t)m->hidden_dim;
    if ((uint64_t)m->moe_hidden_dim > ffw)
        ffw = (uint64_t)m->moe_hidden_dim;
    /* the rest of the core's context for that window and blocks of B tokens,
     * up to 16 threads: vfy_ctx_bytes sizes the list of buffers vfy_ctx_new
     * allocates (its f32 KV cache is the KV term above) */
    const struct vfy_ctx_shape cs = {
        .n_layers = (size_t)m->n_layers, .dim = (size_t)m->dim, .n_heads = (size_t)m->n_heads,
        .n_kv_heads = (size_t)(m->mla ? m->n_heads : m->n_kv_heads),
        .head_dim = (size_t)m->head_dim, .ffn = (size_t)ffw, .n_experts = (size_t)m->n_experts,
        .n_experts_used = (size_t)m->n_experts_used,
    };
    /* the largest context of 1 to 16 threads: more threads, more attention
       scratch; at fewer an MoE context may hold every expert's routed rows at
       once (experts side by side) */
    uint64_t most = 0;
    for (size_t t = 1; t <= 16; t++) {
        struct vfy_ctx_size cz;
        CHK(vfy_ctx_bytes(&cs, (size_t)ctx, (size_t)B, t, &cz) != SB_OK);
        most = cz.buffers > most ? cz.buffers : most;
    }
    e->activations = most;
    uint64_t widest = max_cols > max_rows ? max_cols : max_rows;
    e->scratch = 16 * 2 * 4 * widest + 150 * (uint64_t)m->vocab_size;
    /* the batched kernels' buffers for one call over a block of B tokens and
     * the widest input: q8_0 / q4_0 quantize the tokens to 8 bits (2.25 bytes
     * a column a token, qnt_q8mm_rows) and each thread repacks a tile of 16
     * rows (18 bytes a column); bf16 weights round them to bf16 where the CPU
     * has AVX512-BF16 (2 bytes a column a token); the other encodings the
     * blocked dense kernel reads (all but f32 and those with kernels of their
     * own: q8_0, q4_0, tern, sub1, sub1-qmoe), and bf16 where the CPU lacks
     * AVX512-BF16, are decoded to f32 a block of 16 rows at a time, in each
     * thread (64 bytes a column, QNT_MM_ROWS_BYTES); bf16 counts the larger
     * of its two on any CPU */
    const int wenc = e->weights_enc >= 0 ? e->weights_enc
                     : m->from_file || m->index_bytes ? (int)e->stored.enc : -1;
    uint64_t kb = 0;
    /* the core packs each q8_0 / q4_0 matrix once at load (repacked where the
     * CPU has AVX512-VNNI or AVX2; counted on any) and copies each f32 / f16 / bf16
     * one, into one arena, then releases its mapped pages: while the largest
     * is packed, it is resident twice; the arena is rounded up to a 2 MiB
     * huge page (numerator / 32 bytes an element) */
    const unsigned pk = wenc == SB_DTYPE_Q4_0 ? 18 : wenc == SB_DTYPE_Q8_0 ? 34
                        : wenc == SB_DTYPE_F32 ? 128 : wenc == SB_DTYPE_F16 || wenc == SB_DTYPE_BF16 ? 64
                        : 0;
    if (pk) {
        uint64_t big = 0, all = 0;
        for (size_t i = 0; i < m->n_groups; i++) {
            uint64_t el;
            if (sb_mul_u64(m->groups[i].rows, m->groups[i].cols, &el))
                continue;
            big = el > big ? el : big;
            if (sb_add_u64(all, el, &all))
                all = UINT64_MAX;
        }
        /* the huge-page rounding only where the arena asks for huge pages */
        const uint64_t round = all / 32 >= VFY_PACK_HUGE_MIN / pk ? (uint64_t)2 << 20 : 0;
        CHK(sb_mul_u64(big, pk, &big) || sb_add_u64(big / 32, round, &kb));
    }
    if (wenc == SB_DTYPE_Q8_0 || wenc == SB_DTYPE_Q4_0) {
        uint64_t q = 0;
        CHK(sb_mul_u64(B, max_cols, &q) || sb_mul_u64(q, 9, &q) ||
            sb_add_u64(q / 4, 16 * 18 * max_cols, &q) || sb_add_u64(kb, q, &kb));
    }
    else if (wenc == SB_DTYPE_BF16) {
        uint64_t r = 0;
        CHK(sb_mul_u64(B > 512 ? B : 512, max_cols, &r) || sb_mul_u64(r, 2, &r) ||
            sb_add_u64(kb, r, &kb));
    }
    else if (wenc > SB_DTYPE_F32 && wenc != SB_DTYPE_TERN && wenc != SB_DTYPE_SUB1 &&
             wenc != SB_DTYPE_SUB1_QMOE) {
        uint64_t r = 0;
        CHK(sb_mul_u64(16 * 64, max_cols, &r) || sb_add_u64(kb, r, &kb));
    }
    CHK(sb_add_u64(e->scratch, kb, &e->scratch));
    e->baseline = o->baseline ? o->baseline
                  : VFY_MEM_BASELINE + (par_have_mpi() ? (uint64_t)VFY_MEM_MPI_KIB * 1024u : 0);
    return SB_OK;
}

#define PAD_UP(x, n) (((x) + (n) - 1) / (n) * (n))

/* llama.cpp's CPU backend, from its source (src/llama-context.cpp,
 * llama-kv-cache.cpp, llama-kv-cache-iswa.cpp) and checked against what it
 * prints (tests/cli/t1192):
 * - llama_context: -c ctx x seqs with -np seqs: n_batch = min(-c, 2048),
 *   n_ubatch = min(n_batch, -ub 512); cells GGML_PAD(-c, 256), then
 *   GGML_PAD(cells / seqs, 256) a sequence;
 * - llama_kv_cache: per layer a K and a V tensor of n_kv_heads x head_dim x
 *   cells in -ctk/-ctv (f16 by default; whole blocks for q8_0); Gemma's
 *   windowed layers (iSWA) keep GGML_PAD(min(cells, window + n_ubatch), 256);
 * - the compute buffer is what ggml-alloc packs one n_ubatch step's graph
 *   into: the kq_mask input (n_kv x n_ubatch, f16 with flash attention, f32
 *   without) lives throughout; beside it the largest of the attention step
 *   (without flash attention the f32 scores n_heads x n_kv x n_ubatch, plus
 *   4 x dim + q + k + v floats a token) and the FFN or output step
 *   (max(3 x active FFN width + 4 x dim, vocabulary + 5 x dim) + 8 floats a
 *   token). The packing itself is not modelled: on the eleven shapes tried
 *   while deriving this (dense and MoE, dim 64-512, FFN 128-1024, flash
 *   attention on and off, -ub 128-512) it came out 3% below to 24% above the
 *   printed size, within 1% on most; 20-24% above where the FFN is exactly
 *   twice dim (ggml-alloc fits an FFN row into two freed dim-wide blocks);
 * - the output buffer: f32 logits of n_outputs rows, one a sequence when
 *   generating (it grows to n_batch when every position is scored, as
 *   llama-perplexity does);
 * - weights: the file is mmapped, its tensors all resident once a token ran. */
static int est_llama_cpp(const struct vfy_mem_model *m, const struct vfy_mem_opts *o,
                         struct vfy_mem_est *e, uint64_t ctx, uint64_t batch,
                         struct sb_err *err)
{
    uint64_t req, seq, cells, nub;
    CHK(sb_mul_u64(ctx, batch, &req));
    uint64_t nb = req < VFY_MEM_LLAMA_N_BATCH ? req : VFY_MEM_LLAMA_N_BATCH;
    nub = o->ubatch ? o->ubatch : VFY_MEM_LLAMA_N_UBATCH;
    if (nub > nb)
        nub = nb;
    seq = PAD_UP(PAD_UP(req, VFY_MEM_LLAMA_CTX_PAD) / batch, VFY_MEM_LLAMA_CTX_PAD);
    CHK(sb_mul_u64(seq, batch, &cells));
    e->kv_cells = cells;
    e->n_ubatch = nub;
    /* llama_init_from_model refuses a block type that does not divide a head */
    if (o->kv_type == SB_DTYPE_Q8_0 && (m->mla || m->head_dim % 32 != 0))
        return sb_err_set(err, SB_EINVAL, "%s: llama.cpp refuses a q8_0 KV cache: its block of "
                          "32 does not divide head_dim %d", m->name, m->head_dim);

    uint64_t per_layer_tok = kv_layer_token_bytes(m, o->kv_type);
    e->kv_per_token = per_layer_tok * (uint64_t)m->n_layers;
    uint64_t wseq = seq;
    if (m->n_swa_layers > 0 && m->window > 0 && !strncmp(m->model_type, "gemma", 5)) {
        wseq = PAD_UP((uint64_t)m->window + nub, VFY_MEM_LLAMA_CTX_PAD);
        if (wseq > seq)
            wseq = seq;
    }
    struct vfy_mem_model full = *m;
    if (wseq == seq)
        full.n_swa_layers = 0; /* llama.cpp windows Gemma's caches only */
    CHK(kv_total(&full, per_layer_tok, seq, wseq, batch, &e->kv));

    /* the compute buffer (above); n_kv is a sequence's cells */
    uint64_t dim = (uint64_t)m->dim, H = (uint64_t)m->n_heads, hd = (uint64_t)m->head_dim;
    uint64_t kvd = (uint64_t)m->n_kv_heads * hd;
    uint64_t fa = !o->no_flash_attn;
    uint64_t attn_tok = 4 * dim + H * hd + 2 * kvd;
    uint64_t ffn_tok = 3 * ffn_active_width(m) + 4 * dim;
    uint64_t out_tok = (uint64_t)m->vocab_size + 5 * dim;
    uint64_t step_tok = (ffn_tok > out_tok ? ffn_tok : out_tok) + 8;
    uint64_t attn, step;
    CHK(sb_mul_u64(seq, nub, &e->kq_mask) || sb_mul_u64(e->kq_mask, fa ? 2 : 4, &e->kq_mask));
    e->kq = 0;
    if (!fa)
        CHK(sb_mul_u64(H, seq, &e->kq) || sb_mul_u64(e->kq, nub * 4, &e->kq));
    CHK(sb_mul_u64(attn_tok, nub * 4, &attn) || sb_add_u64(attn, e->kq, &attn) ||
        sb_mul_u64(step_tok, nub * 4, &step));
    CHK(sb_add_u64(e->kq_mask, attn > step ? attn : step, &e->activations));

    e->logits_rows = batch;
    CHK(sb_mul_u64(batch, (uint64_t)m->vocab_size * 4, &e->logits));
    e->scratch = 0;
    e->baseline = o->baseline ? o->baseline
                              : (uint64_t)VFY_MEM_LLAMA_BASELINE_KIB * 1024u +
                                    (uint64_t)VFY_MEM_LLAMA_VOCAB_BYTES * (uint64_t)m->vocab_size;
    return SB_OK;
}

/* transformers, from its documented behaviour (not measured: no torch where
 * this was written): a no_grad forward of the whole sequence with eager
 * attention, everything in one torch dtype (e->dtype):
 * - KV cache (DynamicCache): K and V of n_kv_heads x head_dim a token and
 *   layer in the dtype (MLA: every head's K and V, not the latent),
 *   windowed layers as the config says;
 * - eager_attention_forward: one layer's scores n_heads x ctx x ctx in the
 *   dtype, their softmax in float32 (softmax(..., dtype=torch.float32)) and its
 *   cast back, all three alive at the cast, beside the causal mask ctx x ctx
 *   in the dtype: ctx^2 x seqs x (n_heads x (2 x bytes + 4) + bytes);
 * - logits for every position in float32: vocabulary x ctx x seqs x 4;
 * - hidden states and FFN rows: ctx x seqs x (4 x dim + 3 x FFN width) in the
 *   dtype;
 * - no process baseline (python, torch and transformers take a few hundred
 *   MiB more; not measured here). */
static int est_hf(const struct vfy_mem_model *m, const struct vfy_mem_opts *o,
                  struct vfy_mem_est *e, uint64_t ctx, uint64_t batch, struct sb_err *err)
{
    (void)o;
    enum sb_dtype dt = (enum sb_dtype)e->dtype;
    uint64_t db = dt == SB_DTYPE_F32 ? 4 : 2;
    uint64_t per_layer_tok = kv_layer_token_bytes(m, dt);
    if (m->mla) /* DeepseekV3Attention caches the heads' K (nope + rope) and V, not the latent */
        per_layer_tok = (uint64_t)m->n_heads * ((uint64_t)m->head_dim + (uint64_t)m->v_head_dim) * db;
    uint64_t wctx = m->window > 0 && (uint64_t)m->window < ctx ? (uint64_t)m->window : ctx;
    e->kv_per_token = per_layer_tok * (uint64_t)m->n_layers;
    e->kv_cells = ctx;
    CHK(kv_total(m, per_layer_tok, ctx, wctx, batch, &e->kv));
    uint64_t cc, per;
    CHK(sb_mul_u64(ctx, ctx, &cc) || sb_mul_u64(cc, batch, &cc) ||
        sb_mul_u64((uint64_t)m->n_heads, 2 * db + 4, &per) || sb_add_u64(per, db, &per) ||
        sb_mul_u64(cc, per, &e->scores));
    CHK(sb_mul_u64(ctx, batch, &e->logits_rows) ||
        sb_mul_u64(e->logits_rows, (uint64_t)m->vocab_size * 4, &e->logits));
    uint64_t tok = 4 * (uint64_t)m->dim + 3 * ffn_active_width(m);
    CHK(sb_mul_u64(e->logits_rows, tok * db, &e->activations));
    e->scratch = 0;
    e->baseline = 0;
    return SB_OK;
}

int vfy_mem_estimate(const struct vfy_mem_model *m, const struct vfy_mem_opts *o,
                     struct vfy_mem_est *e, struct sb_err *err)
{
    memset(e, 0, sizeof *e);
    uint64_t ctx = o->ctx ? o->ctx : 4096, batch = o->batch ? o->batch : 1;
    if (o->kv_type != SB_DTYPE_F32 && o->kv_type != SB_DTYPE_F16 && o->kv_type != SB_DTYPE_BF16 &&
        o->kv_type != SB_DTYPE_Q8_0)
        return sb_err_set(err, SB_EINVAL, "mem: KV type '%s' is not f32, f16 or q8_0",
                          sb_dtype_name(o->kv_type));
    if (!(o->zeros >= 0.0 && o->zeros < 1.0))
        return sb_err_set(err, SB_EINVAL, "mem: zero fraction %g is not in [0, 1)", o->zeros);
    if (ctx > (1ull << 32) || batch > (1ull << 24))
        return sb_err_set(err, SB_EINVAL, "mem: context %llu x batch %llu is absurd",
                          (unsigned long long)ctx, (unsigned long long)batch);
    if (m->n_layers <= 0 || m->dim <= 0)
        return sb_err_set(err, SB_EINVAL, "%s: model has no layers", m->name);
    if (o->n_keep_globs && !m->from_file)
        return sb_err_set(err, SB_EINVAL, "%s: --keep '%s': a config or preset has no tensor "
                          "names; name components (embed, output, attn, ffn, shared, experts)",
                          m->name, o->keep_globs[0]);

    /* parameters */
    uint64_t max_cols = 0, max_rows = 0;
    for (size_t i = 0; i < m->n_groups; i++) {
        const struct vfy_mem_group *g = &m->groups[i];
        uint64_t n;
        CHK(sb_mul_u64(g->rows, g->cols, &n) || sb_mul_u64(n, g->count, &n));
        CHK(sb_add_u64(e->params_stored, n, &e->params_stored));
        if (!g->duplicate) {
            e->params += n;
            e->part[g->part] += n;
        }
        if (g->cols > max_cols)
            max_cols = g->cols;
        if (g->rows > max_rows && g->part != VFY_MEM_EMBED && g->part != VFY_MEM_OUTPUT)
            max_rows = g->rows;
    }
    uint64_t n_all_layers = (uint64_t)m->n_layers + (uint64_t)m->n_enc_layers;
    e->per_layer = (e->params - e->part[VFY_MEM_EMBED] - e->part[VFY_MEM_OUTPUT]) / n_all_layers;
    e->active = e->params;
    if (m->n_experts > 0 && m->n_experts_used > 0 && m->n_experts_used < m->n_experts) {
        /* unchosen routed experts: experts x (E - k) / E, exact for equal experts */
        long double idle = (long double)e->part[VFY_MEM_EXPERTS] *
                           (long double)(m->n_experts - m->n_experts_used) /
                           (long double)m->n_experts;
        e->active -= (uint64_t)(idle + 0.5L);
    }

    /* weights per encoding */
    for (int k = 0; k < VFY_MEM_NENC; k++) {
        struct vfy_mem_weights *w = &e->enc[k];
        enum sb_dtype enc = vfy_mem_encodings[k];
        uint64_t hi = enc == SB_DTYPE_F32 ? 4 : 2;
        w->enc = enc;
        for (size_t i = 0; i < m->n_groups; i++) {
            const struct vfy_mem_group *g = &m->groups[i];
            if (g->duplicate)
                continue;
            uint64_t n, b;
            CHK(sb_mul_u64(g->rows, g->cols, &n) || sb_mul_u64(n, g->count, &n));
            bool kept = g->rows == 1 || g->part == VFY_MEM_NORM || g->part == VFY_MEM_ROUTER ||
                        g->part == VFY_MEM_OTHER || (o->keep & (1u << g->part));
            for (size_t k2 = 0; !kept && g->name && k2 < o->n_keep_globs; k2++)
                kept = fnmatch(o->keep_globs[k2], g->name, 0) == 0;
            if (enc == SB_DTYPE_F32 || enc == SB_DTYPE_F16 || enc == SB_DTYPE_BF16)
                kept = false; /* the plain encodings store everything alike */
            if (kept) {
                CHK(sb_mul_u64(n, hi, &b));
                w->kept_bytes += b;
            } else if (vfy_mem_weight_bytes(enc, g->rows, g->cols, g->count, o->zeros, &b)) {
                CHK(sb_mul_u64(n, hi, &b)); /* the row does not fit the block */
                w->kept_bytes += b;
                w->fallback_params += n;
            }
            CHK(sb_add_u64(w->bytes, b, &w->bytes));
        }
        w->bits_per_param = e->params ? (double)w->bytes * 8.0 / (double)e->params : 0.0;
    }
    if (m->from_file) {
        e->stored.enc = m->stored_dtype >= 0 ? (enum sb_dtype)m->stored_dtype : SB_DTYPE_F32;
        for (size_t i = 0; i < m->n_groups; i++)
            CHK(sb_add_u64(e->stored.bytes, m->groups[i].stored_bytes, &e->stored.bytes));
        e->stored.bits_per_param =
            e->params ? (double)e->stored.bytes * 8.0 / (double)e->params : 0.0;
    } else if (m->index_bytes) {
        /* before download: the index's total_size is the weights as they will
         * be stored (their encoding unknown: the bits per parameter say it) */
        e->stored.enc = SB_DTYPE_F16;
        e->stored.bytes = m->index_bytes;
        e->stored.bits_per_param =
            e->params ? (double)e->stored.bytes * 8.0 / (double)e->params : 0.0;
    }
    e->weights_enc = o->weights_enc;
    e->runtime = o->runtime;
    e->dtype = -1;
    int want = -1;
    if (o->runtime == VFY_MEM_RUNTIME_HF) {
        /* transformers holds the weights in one torch dtype: the one asked, the
         * file's (a quantized GGUF is dequantized to float32), config.json's
         * torch_dtype, else float16 */
        int w = o->weights_enc;
        if (w >= 0 && w != SB_DTYPE_F32 && w != SB_DTYPE_F16 && w != SB_DTYPE_BF16)
            return sb_err_set(err, SB_EINVAL, "%s: transformers holds weights in f32, f16 or "
                              "bf16, not '%s'", m->name, sb_dtype_name((enum sb_dtype)w));
        if (w < 0 && m->from_file)
            w = m->stored_dtype == SB_DTYPE_F16 || m->stored_dtype == SB_DTYPE_BF16
                    ? m->stored_dtype : SB_DTYPE_F32;
        if (w < 0)
            w = m->torch_dtype >= 0 ? m->torch_dtype : SB_DTYPE_F16;
        e->dtype = want = w;
    } else if (o->weights_enc < 0 && (m->from_file || m->index_bytes)) {
        e->weights = e->stored.bytes;
    } else {
        want = o->weights_enc < 0 ? SB_DTYPE_F16 : o->weights_enc;
    }
    if (want >= 0) {
        int k;
        for (k = 0; k < VFY_MEM_NENC && (int)vfy_mem_encodings[k] != want; k++)
            ;
        if (k == VFY_MEM_NENC)
            return sb_err_set(err, SB_EINVAL, "mem: no estimate for encoding '%s'",
                              sb_dtype_name((enum sb_dtype)want));
        e->weights = e->enc[k].bytes;
        e->weights_enc = want;
    }

    int r;
    if (o->runtime == VFY_MEM_RUNTIME_LLAMA_CPP)
        r = est_llama_cpp(m, o, e, ctx, batch, err);
    else if (o->runtime == VFY_MEM_RUNTIME_HF)
        r = est_hf(m, o, e, ctx, batch, err);
    else
        r = est_subbit(m, o, e, ctx, batch, max_cols, max_rows, err);
    if (r != SB_OK)
        return r;
    uint64_t tot = 0;
    CHK(sb_add_u64(tot, e->weights, &tot) || sb_add_u64(tot, e->kv, &tot) ||
        sb_add_u64(tot, e->logits, &tot) || sb_add_u64(tot, e->activations, &tot) ||
        sb_add_u64(tot, e->scratch, &tot) || sb_add_u64(tot, e->scores, &tot) ||
        sb_add_u64(tot, e->baseline, &tot));
    e->total = tot;
    e->rule_of_thumb = (uint64_t)((long double)e->weights * 1.2L);

    if (o->train) {
        uint64_t N = e->params;
        CHK(sb_mul_u64(N, 2, &e->train_weights) || sb_mul_u64(N, 2, &e->train_grads) ||
            sb_mul_u64(N, 12, &e->train_optim));
        /* s.b.h.L: ctx x batch x dim x layers (encoder layers included) */
        long double sbhL = (long double)ctx * (long double)batch * (long double)m->dim *
                           (long double)n_all_layers;
        long double act = o->recompute
                              ? 2.0L * sbhL
                              : sbhL * (34.0L + 5.0L * (long double)m->n_heads * (long double)ctx /
                                                    (long double)m->dim);
        if (act > 1.8e19L)
            return sb_err_set(err, SB_EFORMAT, "%s: sizes overflow 64 bits", m->name);
        e->train_act = (uint64_t)(act + 0.5L);
        CHK(sb_add_u64(e->train_weights, e->train_grads, &tot) ||
            sb_add_u64(tot, e->train_optim, &tot) || sb_add_u64(tot, e->train_act, &tot));
        e->train_total = tot;
    }
    return SB_OK;
}

/* ---- measurement ---------------------------------------------------------- */

int vfy_mem_run_child(char *const argv[], const char *out_path, const char *err_path,
                      uint64_t *peak_rss, int *exit_status, struct sb_err *err)
{
    *peak_rss = 0;
    *exit_status = -1;
    int out_fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0)
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", out_path ? out_path : "/dev/null",
                          strerror(errno));
    int err_fd = -1;
    if (err_path && (err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
        close(out_fd);
        return sb_err_set(err, SB_EIO, "%s: cannot open: %s", err_path, strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(out_fd);
        if (err_fd >= 0)
            close(err_fd);
        return sb_err_set(err, SB_EIO, "%s: cannot start: %s", argv[0], strerror(errno));
    }
    if (pid == 0) {
        dup2(out_fd, 1);
        if (err_fd >= 0)
            dup2(err_fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t w;
    while ((w = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return sb_err_set(err, SB_EIO, "%s: wait failed: %s", argv[0], strerror(errno));
    *peak_rss = (uint64_t)ru.ru_maxrss * 1024u;
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (*exit_status == 127)
        return sb_err_set(err, SB_EIO, "%s: cannot run", argv[0]);
    return SB_OK;
}
