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
#define VFY_MODEL_NOTES 6
struct vfy_model_info {
    int n_layers, dim, n_heads, n_kv_heads, head_dim, vocab;
    int n_experts, n_experts_used;   /* 0 for a dense model */
    int n_moe_layers;
    int n_ctx_train;                 /* arch.n_ctx, 0 if unknown */
    bool tied_output;                /* the output projection is the token embedding */
    bool gguf_names;
    enum fmt_rope_layout rope_layout;
    /* configuration values the core did not take as they were, one line each,
     * saying which value it uses (a config vocab_size past the embedding's
     * rows, an intermediate_size the tensors contradict, ...): the caller
     * shows them as warnings */
    int n_notes;
    char notes[VFY_MODEL_NOTES][192];
};

/*! vfy_model_new() : bind m's tensors (m must outlive the result). Checks
 *  every shape against the config and every encoding against the kernels.
 *  @return SB_OK and *out (vfy_model_free), else SB_EFORMAT / SB_EUNSUPPORTED
 *  with one line naming the model path and the missing or wrong tensor
 *  ("tensor 'blk.0.attn_q.weight' not found"), SB_ENOMEM. */
int vfy_model_new(struct vfy_model **out, const struct fmt_model *m, struct sb_err *err);

/* vfy_model_new_opts() flags */
#define VFY_MODEL_NO_PACK 1u   /* compute from the file's bytes: no packs at load */

/*! vfy_model_new_opts() : vfy_model_new, which packs the matrices at load
 *  (qnt_matmul_pack_bytes: q8_0 / q4_0 repacked, f32 / f16 / bf16 copied,
 *  into one arena, and releases their mapped pages: the same results,
 *  faster; the weights resident once, in anonymous memory), or with
 *  VFY_MODEL_NO_PACK not (for a caller that keeps its own memory budget,
 *  such as quant's calibration). */
int vfy_model_new_opts(struct vfy_model **out, const struct fmt_model *m, unsigned flags,
                       struct sb_err *err);
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
 *  as given (vfy_ctx_new first caps it at n_ctx). An MoE context of more than
 *  one thread and at least two experts a thread holds the routed rows of all
 *  experts at once (max_batch x n_experts_used rows of dim and of ffn, x4 for
 *  the expert inputs, outputs and two hidden buffers), so that a batch's
 *  experts can run side by side; otherwise max_batch rows, one expert at a
 *  time.
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

/* ---- stepping through one layer (GPTQ calibration: convert/cvt_quant.c) ----
 *
 * The forward above, cut where a calibration needs to look: the inputs of
 * every matrix, over many tokens, a layer at a time, with matrices replaced
 * by their quantized versions as they are made. The same code computes both
 * (vfy_forward is built from these pieces), so calibration sees exactly what
 * ppl will. */

/* A decoder matrix: expert roles take an expert index, the rest ignore it. */
enum vfy_role {
    VFY_ROLE_Q = 0, VFY_ROLE_K, VFY_ROLE_V, VFY_ROLE_O,
    VFY_ROLE_GATE, VFY_ROLE_UP, VFY_ROLE_DOWN,          /* dense FFN (expert < 0) or expert e */
    VFY_ROLE_ROUTER,
    VFY_ROLE_SH_GATE, VFY_ROLE_SH_UP, VFY_ROLE_SH_DOWN, /* Qwen2-MoE shared expert */
    VFY_ROLE_OUTPUT,                                    /* the classifier (layer ignored) */
    VFY_ROLE_COUNT
};

/* Where a matrix lives: rows row0 .. row0+nrows-1 of the [rows, cols] tensor
 * `name` (a 3-D stacked expert tensor counts its leading dims as rows). */
struct vfy_matref {
    const char *name;            /* the tensor (borrowed) */
    enum sb_dtype dt;            /* the encoding computed with now */
    size_t rows, cols;           /* the whole tensor */
    size_t row0, nrows;          /* this matrix */
    bool replaced;               /* vfy_model_set_mat was called for it */
};

/*! vfy_model_mat() : the matrix of (layer, role, expert) in *out; false if the
 *  model has none (a dense layer's router, a missing shared expert, an expert
 *  index out of range). Dense FFN roles need expert < 0 on a dense layer. */
bool vfy_model_mat(const struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                   struct vfy_matref *out);

/*! vfy_model_set_mat() : from now on compute (layer, role, expert) with w, an
 *  nrows x cols blob (this matrix's rows only) in encoding dt (qp: int8
 *  params). w must outlive vm. Not thread-safe with a forward in flight.
 *  @return SB_OK; SB_EINVAL (no such matrix) or SB_EUNSUPPORTED/SB_EFORMAT
 *  (no kernel, or nbytes do not fit) with a message. */
int vfy_model_set_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                      enum sb_dtype dt, const void *w, uint64_t nbytes,
                      const struct sb_qparams *qp, struct sb_err *err);

/*! vfy_model_pack_mat() : compute (layer, role, expert), a q8_0 or q4_0 matrix
 *  without a pack (e.g. vfy_model_set_mat's), from a pack made now in buf
 *  (cap bytes, 64-byte aligned; qnt_matmul_pack_bytes of it): the packed
 *  kernels, the same bits. buf must stay until vfy_model_unpack_mat.
 *  @return true if packed; false (nothing changed: another encoding, a pack
 *  already, no packed kernel on this CPU, or cap too small). */
bool vfy_model_pack_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert, void *buf,
                        uint64_t cap);
/*! vfy_model_unpack_mat() : back to the matrix's own bytes (after a true
 *  vfy_model_pack_mat). */
void vfy_model_unpack_mat(struct vfy_model *vm, int layer, enum vfy_role role, int expert);

/*! vfy_layer_matmul() : Y (n, nrows) = X (n, cols) W^T for (layer, role, expert). */
void vfy_layer_matmul(const struct vfy_model *vm, int layer, enum vfy_role role, int expert,
                      const float *X, size_t n, float *Y);

enum vfy_norm { VFY_NORM_ATTN, VFY_NORM_FFN, VFY_NORM_OUT };
/*! vfy_layer_norm() : RMSNorm of n rows of x (n, dim) with layer l's attention
 *  or FFN norm, or the final norm (l ignored), into out. */
void vfy_layer_norm(const struct vfy_model *vm, int l, enum vfy_norm which, const float *x,
                    size_t n, float *out);

/*! vfy_layer_attention() : layer l's attention for one window of n normed
 *  rows xn (n, dim) at positions 0 .. n-1: Q/K/V (+ biases), RoPE, causal
 *  attention; att (n, n_heads * head_dim) is the input of o_proj. Uses ctx's
 *  buffers and its cache of layer l; n <= the context and its batch.
 *  @return SB_OK or SB_EINVAL. */
int vfy_layer_attention(struct vfy_ctx *ctx, int l, const float *xn, size_t n, float *att,
                        struct sb_err *err);

/*! vfy_layer_route() : layer l's routing of n normed rows xn: the k chosen
 *  experts sel (n, k) and their weights selw (n, k), as the forward routes
 *  (softmax, top k with the lower index winning ties, renormalised for
 *  Mixtral). Uses ctx's router buffer, any n. */
void vfy_layer_route(struct vfy_ctx *ctx, int l, const float *xn, size_t n, int *sel,
                     float *selw);

/*! vfy_layer_shared_gate() : Qwen2-MoE's sigmoid(g . x) for n rows (into g[n]). */
void vfy_layer_shared_gate(const struct vfy_model *vm, int l, const float *xn, size_t n,
                           float *g);

/*! vfy_swiglu_act() : h[i] = silu(h[i]) * h2[i] for n elements. */
void vfy_swiglu_act(float *h, const float *h2, size_t n);

/*! vfy_embed() : the embeddings of n tokens (ids checked by the caller) into x (n, dim). */
void vfy_embed(const struct vfy_model *vm, const int32_t *tokens, size_t n, float *x);

#endif
