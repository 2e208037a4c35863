/* fuzz_layout.c: convert's layout planning on models no reader would make in
 * one piece: the input is read as a config (architecture, head and expert
 * counts, tied or not, the source container) and a list of tensors whose
 * names come from the HF and GGUF name patterns with a layer and an expert
 * number, with small shapes and any encoding. Every destination container is
 * planned, every target gathered (f32 and bytes), the GGUF metadata and HF
 * config built, and a dry-run conversion decides every tensor's encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvt_convert.h"
#include "cvt_layout.h"
#include "fmt_config.h"
#include "fmt_gguf.h"
#include "fmt_model.h"
#include "fuzz_util.h"
#include "sb_alloc.h"

static const char *const names[] = {
    "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
    "model.layers.%d.input_layernorm.weight", "model.layers.%d.post_attention_layernorm.weight",
    "model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
    "model.layers.%d.self_attn.v_proj.weight", "model.layers.%d.self_attn.o_proj.weight",
    "model.layers.%d.self_attn.q_proj.bias", "model.layers.%d.self_attn.k_proj.bias",
    "model.layers.%d.self_attn.v_proj.bias", "model.layers.%d.mlp.gate_proj.weight",
    "model.layers.%d.mlp.up_proj.weight", "model.layers.%d.mlp.down_proj.weight",
    "model.layers.%d.block_sparse_moe.gate.weight",
    "model.layers.%d.block_sparse_moe.experts.%d.w1.weight",
    "model.layers.%d.block_sparse_moe.experts.%d.w2.weight",
    "model.layers.%d.block_sparse_moe.experts.%d.w3.weight",
    "model.layers.%d.mlp.experts.%d.gate_proj.weight",
    "model.layers.%d.mlp.experts.%d.up_proj.weight",
    "model.layers.%d.mlp.experts.%d.down_proj.weight", "model.layers.%d.mlp.gate.weight",
    "model.layers.%d.mlp.shared_expert.gate_proj.weight",
    "model.layers.%d.mlp.shared_expert.up_proj.weight",
    "model.layers.%d.mlp.shared_expert.down_proj.weight",
    "model.layers.%d.mlp.shared_expert_gate.weight", "model.layers.%d.mlp.experts.gate_up_proj",
    "model.layers.%d.mlp.experts.down_proj", "model.layers.%d.self_attn.rotary_emb.inv_freq",
    "token_embd.weight", "output.weight", "output_norm.weight", "rope_freqs.weight",
    "blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
    "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.attn_q.bias",
    "blk.%d.attn_k.bias", "blk.%d.ffn_norm.weight", "blk.%d.ffn_gate.weight",
    "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight", "blk.%d.ffn_gate_inp.weight",
    "blk.%d.ffn_gate_exps.weight", "blk.%d.ffn_up_exps.weight", "blk.%d.ffn_down_exps.weight",
    "blk.%d.ffn_gate_shexp.weight", "blk.%d.ffn_up_shexp.weight",
    "blk.%d.ffn_down_shexp.weight", "blk.%d.ffn_gate_inp_shexp.weight",
    "blk.%d.ffn_gate.%d.weight",
};
#define N_NAMES (sizeof names / sizeof names[0])

static const enum sb_dtype dtypes[] = {
    SB_DTYPE_F32, SB_DTYPE_F16,  SB_DTYPE_BF16, SB_DTYPE_Q8_0, SB_DTYPE_Q4_0, SB_DTYPE_INT8,
    SB_DTYPE_TERN, SB_DTYPE_SUB1, SB_DTYPE_SUB1_QMOE, SB_DTYPE_TQ2_0, SB_DTYPE_F64, SB_DTYPE_I8,
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

struct rd {
    const uint8_t *d;
    size_t n, i;
};

static unsigned next(struct rd *r)
{
    return r->i < r->n ? r->d[r->i++] : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    struct rd r = { d, n, 0 };
    struct fmt_model *m = fmt_model_new();
    m->path = sb_strdup("fuzz-model");
    static const enum fmt_container src[] = { FMT_CONT_SAFETENSORS, FMT_CONT_GGUF, FMT_CONT_L2C,
                                              FMT_CONT_SUBBIT };
    m->container = src[next(&r) % 4];
    unsigned flags = next(&r);
    m->has_arch = flags & 1;
    m->arch.kind = (enum fmt_arch_kind)((flags >> 1) % 4);
    snprintf(m->arch.model_type, sizeof m->arch.model_type, "%s",
             (flags >> 3) & 1 ? "qwen2moe" : "llama");
    m->arch.tied_embeddings = (flags >> 4) & 1;
    m->arch.n_layers = (int)(next(&r) % 4);
    m->arch.n_heads = (int)(next(&r) % 9);
    m->arch.n_kv_heads = (int)(next(&r) % 9);
    m->arch.n_experts = (int)(next(&r) % 6) - 1;  /* -1: absurd, 0: count what is there */
    m->arch.dim = (int)(next(&r) % 33);
    m->arch.vocab_size = (int)next(&r);
    size_t nt = next(&r) % 24;
    for (size_t k = 0; k < nt; k++) {
        char nm[160];
        unsigned w = next(&r);
        if (w == 255) { /* a raw name */
            size_t len = next(&r) % 40, j;
            for (j = 0; j < len; j++)
                nm[j] = (char)next(&r);
            nm[j] = '\0';
        } else {
            snprintf(nm, sizeof nm, names[w % N_NAMES], (int)(next(&r) % 3),
                     (int)(next(&r) % 4));
        }
        struct fmt_tensor *t = fmt_model_add_tensor(m, nm);
        if (!t)
            break;
        t->dtype = dtypes[next(&r) % N_DTYPES];
        t->ndim = (int)(next(&r) % 4);
        for (int j = 0; j < t->ndim; j++)
            t->shape[j] = (int64_t)(next(&r) % 17);
        if (t->dtype == SB_DTYPE_Q8_0 || t->dtype == SB_DTYPE_Q4_0)
            t->shape[t->ndim ? t->ndim - 1 : 0] = 32;
        if (t->dtype == SB_DTYPE_TQ2_0)
            t->shape[t->ndim ? t->ndim - 1 : 0] = 256;
        uint64_t nb = 0;
        if (sb_dtype_nbytes(t->dtype, t->shape, t->ndim, &t->qp, &nb) != SB_OK)
            nb = next(&r) * 4u; /* variable length (or no fit): any size */
        if (nb > (1u << 20))
            nb = 1u << 20;
        t->nbytes = nb;
        t->owned = sb_calloc(nb ? (size_t)nb : 1, 1);
        t->data = t->owned;
        for (uint64_t j = 0; j < nb; j += 61) /* some bytes set; the input is the layout */
            ((uint8_t *)t->owned)[j] = (uint8_t)(j * 31 + k);
    }
    fuzz_use_model(m);
    /* metadata for both sides, and the policy in a dry run */
    struct sb_err err = { 0 };
    struct fmt_kv *kv = NULL;
    size_t n_kv = 0;
    if (fmt_gguf_kv_build(m, &kv, &n_kv, &err) == SB_OK) {
        for (size_t i = 0; i < n_kv; i++)
            fmt_kv_release(&kv[i]);
    }
    sb_free(kv);
    char *json = NULL;
    sb_err_clear(&err);
    if (fmt_config_json_from_model(m, &json, &err) == SB_OK)
        sb_free(json);
    static const char *const outs[] = { "x.gguf", "x.subbit", "x.safetensors", "xdir/" };
    static const int tos[] = { -1, SB_DTYPE_Q8_0, SB_DTYPE_SUB1, SB_DTYPE_INT8, SB_DTYPE_BF16 };
    struct cvt_opts o;
    cvt_opts_init(&o);
    o.dry_run = true;
    o.to = tos[flags >> 5 < 5 ? flags >> 5 : 0];
    o.experts_only = (flags >> 7) & 1;
    for (size_t i = 0; i < 4; i++) {
        struct cvt_report *rep = NULL;
        sb_err_clear(&err);
        cvt_convert(m, fuzz_path(outs[i]), &o, &rep, &err);
        cvt_report_free(rep);
    }
    fmt_model_free(m);
    return 0;
}
