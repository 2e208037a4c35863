/* vfy_mem.h: memory estimates from headers alone (`subbit mem`).
 *
 * A model is described by struct vfy_mem_model: the hyperparameters that size
 * the KV cache and the activations, plus a list of weight groups (count
 * matrices of one shape, in one component). It is filled from an HF
 * config.json text (llama, mistral, qwen2, mixtral, qwen2_moe, deepseek_v3
 * with MLA, switch_transformers; other model types get the llama reading and
 * a warning), from a built-in preset (an embedded config.json, so the same
 * parser serves both), or from a fmt_model opened with headers_only (the real
 * tensor shapes and stored encodings).
 *
 * vfy_mem_estimate() turns a description into bytes: parameters per
 * component and active per token, weights per encoding (scales, block
 * overhead and the tensors that stay in higher precision counted), KV cache,
 * runtime buffers of our core, the total beside the 1.2 x weights rule of
 * thumb, and training memory (mixed-precision AdamW + activations).
 *
 * Knows shapes and sizes; never reads tensor data (except vfy_mem_from_fmt
 * with compare_data, which compares the embedding and output bytes to find
 * tied copies). Never prints. Not thread-safe per model; no globals. */
#ifndef VFY_MEM_H
#define VFY_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"
#include "sb_err.h"

struct fmt_model;

/* Components a weight belongs to. */
enum vfy_mem_part {
    VFY_MEM_EMBED = 0,  /* token embedding (a lookup) */
    VFY_MEM_OUTPUT,     /* lm head (absent when tied) */
    VFY_MEM_ATTN,       /* q/k/v/o projections (MLA: the low-rank ones), their biases */
    VFY_MEM_FFN,        /* dense FFN */
    VFY_MEM_EXPERTS,    /* routed experts (all of them) */
    VFY_MEM_SHARED,     /* shared experts (always active) */
    VFY_MEM_ROUTER,     /* router / gate, shared-expert gate, routing biases */
    VFY_MEM_NORM,       /* norms */
    VFY_MEM_OTHER,      /* anything else (relative-attention biases, unknown tensors) */
    VFY_MEM_NPARTS
};

/* Bits of vfy_mem_opts.keep: components that stay in higher precision. Norms,
 * routers and every 1-d tensor always do. */
#define VFY_MEM_KEEP_EMBED (1u << VFY_MEM_EMBED)
#define VFY_MEM_KEEP_OUTPUT (1u << VFY_MEM_OUTPUT)
#define VFY_MEM_KEEP_ATTN (1u << VFY_MEM_ATTN)
#define VFY_MEM_KEEP_FFN (1u << VFY_MEM_FFN)
#define VFY_MEM_KEEP_SHARED (1u << VFY_MEM_SHARED)
#define VFY_MEM_KEEP_EXPERTS (1u << VFY_MEM_EXPERTS)

/*! vfy_mem_part_of() : the component of a tensor by its name: HF names
 *  (model.layers.N.self_attn.q_proj.weight), GGUF names (blk.N.attn_q.weight),
 *  llama2.c names as the reader gives them; VFY_MEM_OTHER if none. */
enum vfy_mem_part vfy_mem_part_of(const char *tensor_name);
/*! vfy_mem_part_from_word() : a component that --keep may name: embed
 *  (embeddings), output, attn (attention), ffn (dense), shared, experts; -1 if
 *  word is none of them. */
int vfy_mem_part_from_word(const char *word);

/* count matrices of shape (rows, cols) (a vector: rows = 1). */
struct vfy_mem_group {
    enum vfy_mem_part part;
    uint64_t rows, cols, count;
    int stored_dtype;       /* enum sb_dtype as stored, -1 when from a config */
    uint64_t stored_bytes;  /* all count matrices as stored; 0 when from a config */
    bool duplicate;         /* a stored copy of another tensor (tied output): stored, not unique */
    int layer;              /* decoder layer, -1 if none or unknown */
    char *name;             /* the tensor's name from a file (owned); NULL from a config */
};

#define VFY_MEM_MAX_NOTES 8

struct vfy_mem_model {
    char name[64];          /* preset name or file name */
    char model_type[32];
    char source[160];       /* preset: where its config.json was transcribed from */
    int n_layers;           /* layers that hold a KV cache (decoder layers) */
    int n_enc_layers;       /* encoder-decoder models: encoder layers (no KV cache); else 0 */
    int dim;
    int hidden_dim;         /* dense FFN width */
    int n_heads, n_kv_heads, head_dim;
    int vocab_size;
    int n_ctx_max;          /* max_position_embeddings, 0 if unknown */
    bool tied;
    bool cross_attn;        /* decoder also caches encoder K/V (switch_transformers) */
    /* MoE: 0 experts = dense */
    int n_experts, n_experts_used, n_shared_experts, n_moe_layers, moe_hidden_dim;
    /* MLA (DeepSeek-V2/V3): the cache holds kv_lora_rank + qk_rope_head_dim per token and layer */
    bool mla;
    int kv_lora_rank, qk_rope_head_dim;
    int v_head_dim;         /* MLA: a head's V width (transformers caches K and V per head) */
    /* sliding window: n_swa_layers layers cache only the last `window` tokens */
    int window, n_swa_layers;
    /* weight groups (owned; vfy_mem_model_release frees) */
    struct vfy_mem_group *groups;
    size_t n_groups, cap_groups;
    bool from_file;
    uint64_t index_bytes;   /* from a config beside model.safetensors.index.json (before the
                               shards are downloaded): its metadata.total_size; else 0.
                               Then the stored weights (and the total's, by default). */
    int stored_dtype;       /* the file's dominant matrix encoding, -1 if from a config */
    int torch_dtype;        /* config.json's torch_dtype as an enum sb_dtype, -1 if none */
    /* assumptions and warnings met while reading, one line each ("assuming ...") */
    char notes[VFY_MEM_MAX_NOTES][200];
    int n_notes;
};

/*! vfy_mem_model_release() : free the groups; the struct may be reused after
 *  memset. A zeroed struct is fine. */
void vfy_mem_model_release(struct vfy_mem_model *m);

/*! vfy_mem_from_config() : describe the model in an HF config.json text.
 *  what names the file in messages. A missing required field is SB_EFORMAT
 *  naming it; an optional one takes a default recorded in m->notes. An
 *  unknown model_type gets the llama formula and a note. Negative or absurd
 *  sizes (> 2^24 per dimension, > 2^20 experts/layers) are SB_EFORMAT.
 *  @return SB_OK, or a status with err set; m is released on failure. */
int vfy_mem_from_config(struct vfy_mem_model *m, const char *json, size_t len, const char *what,
                        struct sb_err *err);

/*! vfy_mem_from_fmt_config() : the same from a parsed config (fmt_config.h). */
struct fmt_config;
int vfy_mem_from_fmt_config(struct vfy_mem_model *m, const struct fmt_config *cfg,
                            const char *what, struct sb_err *err);

/*! vfy_mem_from_fmt() : describe an opened model (headers_only is enough): the
 *  hyperparameters from its parsed config.json (fm->config) if it has one, else from
 *  fm->arch; the weights from its tensors (shapes and stored encodings).
 *  The output tensor is a duplicate of the embedding when it shares its
 *  storage, when fm->arch says the embeddings are tied, or, with
 *  compare_data and the data mapped, when its bytes are equal.
 *  @return SB_OK, SB_EFORMAT (no architecture), SB_ENOMEM. */
int vfy_mem_from_fmt(struct vfy_mem_model *m, const struct fmt_model *fm, bool compare_data,
                     struct sb_err *err);

/* ---- presets (vfy_mem_presets.c) ---- */

struct vfy_mem_preset {
    const char *name;       /* "Llama-2-7B" */
    const char *source;     /* repo and path of the public config.json */
    const char *config;     /* the config.json text (only the fields we read) */
};

/*! vfy_mem_preset_count() / vfy_mem_preset_get() : the built-in presets, i < count. */
size_t vfy_mem_preset_count(void);
const struct vfy_mem_preset *vfy_mem_preset_get(size_t i);
/*! vfy_mem_preset_find() : by name, or by the Hugging Face id its config.json
 *  came from ("mistralai/Mixtral-8x7B-v0.1", also as a huggingface.co URL),
 *  case-insensitive; NULL if none. */
const struct vfy_mem_preset *vfy_mem_preset_find(const char *name);
/* How vfy_mem_preset_lookup() matched. */
enum vfy_mem_match {
    VFY_MEM_MATCH_NONE = 0,
    VFY_MEM_MATCH_NAME,     /* the preset's name ("Mixtral-8x7B") */
    VFY_MEM_MATCH_ID,       /* the HF repository its config.json came from */
    VFY_MEM_MATCH_BASE,     /* a variant of it: the same org and name once the words
                               Instruct, it, chat, hf, base are dropped from both
                               (google/gemma-2-9b-it: gemma-2-9b's preset) */
};
/*! vfy_mem_preset_lookup() : vfy_mem_preset_find(), saying how it matched in
 *  *how (may be NULL). Ids are read from URLs too: https://huggingface.co/
 *  ORG/REPO/tree/main, .../blob/main/config.json, hf.co/ORG/REPO, any case. */
const struct vfy_mem_preset *vfy_mem_preset_lookup(const char *name, enum vfy_mem_match *how);
/*! vfy_mem_from_preset() : vfy_mem_from_config() on a preset, name and source set. */
int vfy_mem_from_preset(struct vfy_mem_model *m, const struct vfy_mem_preset *p,
                        struct sb_err *err);

/* ---- the estimate ---- */

/* The encodings of the weights table, in order. */
#define VFY_MEM_NENC 9
extern const enum sb_dtype vfy_mem_encodings[VFY_MEM_NENC];  /* f32 f16 bf16 int8 q8_0 q4_0 tq2_0 tern sub1 */

/* Whose buffers the KV-cache and runtime terms are of (the parameters and
 * weights are the same for all). */
enum vfy_mem_runtime {
    VFY_MEM_RUNTIME_SUBBIT = 0, /* our core as `subbit ppl` runs it (measured: --measure) */
    VFY_MEM_RUNTIME_LLAMA_CPP,  /* llama.cpp's CPU backend, as llama-cli/-server/-completion
                                   size it (llama_context, llama_kv_cache, ggml-alloc) */
    VFY_MEM_RUNTIME_HF,         /* transformers, eager attention, no_grad forward of the
                                   whole sequence: from its documented behaviour, not
                                   measured (no torch where this was written) */
};

/* llama.cpp defaults the profile follows: -b 2048, -ub 512, cells in steps of 256 */
#define VFY_MEM_LLAMA_N_BATCH 2048u
#define VFY_MEM_LLAMA_N_UBATCH 512u
#define VFY_MEM_LLAMA_CTX_PAD 256u
/* llama-completion's resident memory besides its buffers and the mapped file:
 * the binary and libggml/libllama, threads, the tokenizer (176 bytes a
 * vocabulary entry): peak RSS (/usr/bin/time -v) less the printed KV, compute
 * and output buffers and the file, 12.1-13.2 MiB on six models of vocabulary
 * 512; llama-2-tiny-random (32,000) 5.4 MiB more (llama.cpp built here without
 * AMX, x86-64, glibc, -t 2). */
#define VFY_MEM_LLAMA_BASELINE_KIB 12900u
#define VFY_MEM_LLAMA_VOCAB_BYTES 176u

struct vfy_mem_opts {
    uint64_t ctx;           /* tokens of context (0 = 4096) */
    uint64_t batch;         /* sequences (0 = 1) */
    enum sb_dtype kv_type;  /* F32, F16 or Q8_0 (0 = F32: set it) */
    double zeros;           /* sub1: fraction of zero weights, in [0, 1) */
    unsigned keep;          /* VFY_MEM_KEEP_* */
    const char *const *keep_globs;  /* and tensors whose name matches one of these
                                       (fnmatch; models from files only: a config has
                                       no names, SB_EINVAL) */
    size_t n_keep_globs;
    int weights_enc;        /* encoding for the total: -1 = as stored (f16 for configs) */
    bool train, recompute;
    uint64_t baseline;      /* process baseline bytes (0 = VFY_MEM_BASELINE) */
    enum vfy_mem_runtime runtime;
    bool no_flash_attn;     /* llama.cpp: -fa off (its default, auto, is on for the CPU) */
    uint64_t ubatch;        /* llama.cpp: -ub (0 = 512) */
};

/*! vfy_mem_opts_init() : defaults: ctx 4096, batch 1, kv f16, zeros 0.885,
 *  keep embeddings and output, weights as stored. */
void vfy_mem_opts_init(struct vfy_mem_opts *o);

struct vfy_mem_weights {
    enum sb_dtype enc;
    uint64_t bytes;         /* all weights: encoded ones + kept ones */
    uint64_t kept_bytes;    /* of which stay in higher precision (16-bit; 32-bit for f32) */
    uint64_t fallback_params; /* matrices whose row does not fit the block: kept at 16 bit */
    double bits_per_param;  /* bytes * 8 / unique params */
};

struct vfy_mem_est {
    /* parameters (elements) */
    uint64_t params;        /* unique */
    uint64_t params_stored; /* incl. duplicate copies */
    uint64_t part[VFY_MEM_NPARTS];
    uint64_t per_layer;     /* (params - embed - output) / layers, mean */
    uint64_t active;        /* per token: all but the unchosen routed experts */
    /* weights */
    struct vfy_mem_weights enc[VFY_MEM_NENC];
    struct vfy_mem_weights stored;  /* as stored (from a file); bytes 0 if from a config */
    uint64_t weights;       /* the weights counted in the total (opts.weights_enc) */
    int weights_enc;        /* its encoding, -1 = as stored */
    /* KV cache */
    uint64_t kv_per_token;  /* bytes per token of one sequence, all layers, at ctx */
    uint64_t kv;            /* ctx x batch */
    /* runtime (opts.runtime) */
    enum vfy_mem_runtime runtime;
    uint64_t logits;        /* f32 logits: subbit ppl's scored positions; llama.cpp's output
                               buffer (a row a sequence); hf: the whole sequence */
    uint64_t logits_rows;   /* their rows */
    uint64_t activations;   /* our core's buffers; llama.cpp's compute buffer (the kq_mask
                               and kq below included); hf: hidden states and FFN rows */
    uint64_t scratch;       /* our core's per-thread rows and vocabulary tables */
    uint64_t scores;        /* hf: one layer's eager attention scores (heads x ctx x ctx, in
                               the dtype, + their fp32 softmax + its cast back) */
    uint64_t baseline;      /* the process before it touches a model (hf: 0, not measured) */
    uint64_t kv_cells;      /* llama.cpp: cache cells (ctx x seqs rounded up to 256); else ctx */
    uint64_t n_ubatch;      /* llama.cpp: tokens a compute step */
    uint64_t kq_mask, kq;   /* llama.cpp: the mask (f16 with flash attention, f32 without)
                               and, without flash attention, the f32 scores */
    int dtype;              /* hf: the torch dtype (enum sb_dtype) of weights and KV */
    uint64_t total;         /* weights + kv + logits + activations + scratch + scores + baseline */
    uint64_t rule_of_thumb; /* 1.2 x weights */
    /* training (opts.train): mixed-precision AdamW */
    uint64_t train_weights; /* 2 bytes/param (16-bit working copy) */
    uint64_t train_grads;   /* 2 bytes/param */
    uint64_t train_optim;   /* 12 bytes/param: fp32 master + Adam m + v */
    uint64_t train_act;     /* s.b.h.L.(34 + 5.a.s/h), or 2.s.b.h.L with recompute */
    uint64_t train_total;
};

/* Process baseline of `subbit ppl` before it touches a model: the binary,
 * libc, libgomp and its thread stacks, cJSON/zstd, OpenBLAS and libgfortran
 * (GPTQ's linear algebra: loaded at start, they added 2.3 MiB to every
 * command: `subbit --version` went from 2604 to 4948 KiB), the allocator's
 * arenas. A measured constant; it dominates for the tiny fixtures. It was 3000
 * KiB before OpenBLAS, calibrated with
 * `subbit mem --measure` (the peak RSS of `subbit ppl`, 2 threads, x86-64,
 * glibc) on the fixture models: with 3000 KiB the estimate/measured ratios
 * were 0.98-1.01 for stories260K (.gguf, .bin), llama-2-tiny-random, tinymoe
 * (f32 and bf16) and 1.00 for a synthetic 114M llama. */
#define VFY_MEM_BASELINE ((uint64_t)VFY_MEM_BASELINE_KIB * 1024u)
#define VFY_MEM_BASELINE_KIB 5500u
/* Added to it in a build with MPI (par_have_mpi()): Open MPI's libraries
 * (libmpi, open-rte, open-pal, hwloc, libevent) load at start whether or not
 * the process joins a job: `subbit --version` went from 5120 to 6340 KiB, and
 * stories260K's estimate/measured ratio from 0.95 to 0.81 without this. */
#define VFY_MEM_MPI_KIB 1280u

/*! vfy_mem_estimate() : the numbers above for model m under o.
 *  @return SB_OK; SB_EINVAL (bad option, e.g. kv_type) or SB_EFORMAT
 *  (sizes overflow 64 bits) with err set. */
int vfy_mem_estimate(const struct vfy_mem_model *m, const struct vfy_mem_opts *o,
                     struct vfy_mem_est *e, struct sb_err *err);

/*! vfy_mem_weight_bytes() : bytes of count (rows, cols) matrices in enc
 *  (sub1 at zero fraction zeros). @return SB_OK, SB_EFORMAT if the row does
 *  not fit enc's block (callers fall back) or the size overflows. */
int vfy_mem_weight_bytes(enum sb_dtype enc, uint64_t rows, uint64_t cols, uint64_t count,
                         double zeros, uint64_t *out);

/*! vfy_mem_sub1_bits() : estimated sub1 bits per weight at zero fraction z,
 *  excluding per-row overhead: 1.03 x the order-0 entropy of {0, lo, hi}
 *  with the non-zeros split evenly. */
double vfy_mem_sub1_bits(double z);

/*! vfy_mem_part_name() : "embeddings", "output", "attention", ... */
const char *vfy_mem_part_name(enum vfy_mem_part p);

/* ---- measurement ---- */

/*! vfy_mem_run_child() : run argv (argv[0] a path) as a child with stdout
 *  to out_path (NULL: /dev/null) and stderr to err_path (NULL: inherited),
 *  wait for it with wait4() and report its peak RSS (ru_maxrss) and exit
 *  status (128 + signal if killed). @return SB_OK, or SB_EIO if it could
 *  not be started. */
int vfy_mem_run_child(char *const argv[], const char *out_path, const char *err_path,
                      uint64_t *peak_rss, int *exit_status, struct sb_err *err);

#endif
