/* vfy_model.h: the reference inference core. A struct fmt_model's tensors
 * bound to decoder roles (either naming scheme), and a context that runs the
 * Llama-family forward over it with a KV cache.
 *
 * Binding knows both tensor-name schemes (formats.md §2.7, §3.2-3.4):
 *  - HF: model.layers.N.self_attn.{q,k,v,o}_proj (+ q/k/v biases), mlp.{gate,up,down}_proj;
 *    Mixtral classic block_sparse_moe.gate + experts.E.w1/w3/w2, packed
 *    mlp.gate + mlp.experts.gate_up_proj / down_proj; Qwen2-MoE mlp.gate,
 *    mlp.experts.E.*_proj (or packed), mlp.shared_expert.* + shared_expert_gate;
 *  - GGUF: blk.N.attn_*, ffn_*, 3-D ffn_{gate,up,down}_exps, old per-expert
 *    ffn_{gate,up,down}.E, *_shexp, ffn_gate_inp_shexp.
 * The RoPE pairing comes from arch.rope_layout, never from the names.
 * Matrices stay in their stored encoding (qnt_matvec.h); 1-D tensors (norms,
 * biases, the shared-expert gate) are copied to f32.
 *
 * Thread safety: a vfy_model is immutable after vfy_model_new and may back
 * several contexts; a context is used by one thread at a time (its forward
 * runs OpenMP inside). */
#ifndef VFY_MODEL_H
#define VFY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_err.h"

struct vfy_model;
struct vfy_ctx;

/* What was bound (for reports and tests). */
struct vfy_model_info {
    int n_layers, dim, n_heads, n_kv_heads, head_dim, vocab;
    int n_experts, n_experts_used;   /* 0 for a dense model */
    int n_moe_layers;
    int n_ctx_train;                 /* arch.n_ctx, 0 if unknown */
    bool tied_output;                /* the output projection is the token embedding */
    bool gguf_names;
    enum fmt_rope_layout rope_layout;
};

/*! vfy_model_new() : bind m's tensors (m must outlive the result). Checks
 *  every shape against the config and every encoding against the kernels.
 *  @return SB_OK and *out (vfy_model_free), else SB_EFORMAT / SB_EUNSUPPORTED
 *  with one line naming the model path and the missing or wrong tensor
 *  ("tensor 'blk.0.attn_q.weight' not found"), SB_ENOMEM. */
int vfy_model_new(struct vfy_model **out, const struct fmt_model *m, struct sb_err *err);
void vfy_model_free(struct vfy_model *vm);
const struct vfy_model_info *vfy_model_info(const struct vfy_model *vm);

/* What sizes a context's buffers. */
struct vfy_ctx_shape {
    size_t n_layers, dim, n_heads, n_kv_heads, head_dim;
    size_t ffn;                      /* the widest FFN (dense, expert or shared) */
    size_t n_experts, n_experts_used;   /* 0 for a dense model */
};

/* A context's heap, in bytes. */
struct vfy_ctx_size {
    uint64_t kv;                     /* the f32 KV cache: 2 x n_layers x n_ctx x n_kv_heads x head_dim */
    uint64_t buffers;                /* everything else: activations of max_batch tokens, attention
                                        scores per thread, RoPE tables, MoE routing */
};

/*! vfy_model_ctx_shape() : the shape of vm's contexts. */
void vfy_model_ctx_shape(const struct vfy_model *vm, struct vfy_ctx_shape *s);

/*! vfy_ctx_bytes() : what vfy_ctx_new allocates for shape s, n_ctx positions,
 *  max_batch tokens a step and nthreads OpenMP threads, from the same list of
 *  buffers (so `subbit mem` sizes the core's real buffers). max_batch is taken
 *  as given (vfy_ctx_new first caps it at n_ctx).
 *  @return SB_OK, SB_EINVAL when a size overflows. */
int vfy_ctx_bytes(const struct vfy_ctx_shape *s, size_t n_ctx, size_t max_batch, size_t nthreads,
                  struct vfy_ctx_size *out);

/*! vfy_ctx_new() : buffers for windows of up to n_ctx positions, processed
 *  max_batch tokens per step (1 = token by token), and OpenMP scratch for the
 *  current omp_get_max_threads(). The KV cache is f32.
 *  @return SB_OK / SB_EINVAL (n_ctx or max_batch 0) / SB_ENOMEM. */
int vfy_ctx_new(struct vfy_ctx **out, const struct vfy_model *vm, size_t n_ctx, size_t max_batch,
                struct sb_err *err);
void vfy_ctx_free(struct vfy_ctx *ctx);
size_t vfy_ctx_n_ctx(const struct vfy_ctx *ctx);
const struct vfy_model *vfy_ctx_model(const struct vfy_ctx *ctx);

/*! vfy_forward() : run tokens[0..n) at positions pos0 .. pos0+n-1 (the cache
 *  must hold positions 0 .. pos0-1 from earlier calls), in steps of max_batch.
 *  Positions from pos0 on are overwritten before they are read, so a call at
 *  pos0 = 0 starts a new sequence: nothing needs resetting.
 *  logits: with all_logits, [n, vocab] (row i for token i); else [vocab] for
 *  the last token only. @return SB_OK, SB_EINVAL (pos0 + n > n_ctx, token id
 *  out of range, n 0), SB_EINTR never. */
int vfy_forward(struct vfy_ctx *ctx, const int32_t *tokens, size_t n, size_t pos0, float *logits,
                bool all_logits, struct sb_err *err);

/*! vfy_ctx_expert_counts() : per layer and expert, how many tokens were routed
 *  there since the context was made: [n_layers * n_experts], or NULL for a
 *  dense model. Borrowed. */
const uint64_t *vfy_ctx_expert_counts(const struct vfy_ctx *ctx);

#endif
