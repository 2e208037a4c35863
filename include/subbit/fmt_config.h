/* fmt_config.h: a Hugging Face config.json, parsed once into typed fields.
 *
 * The reader of a checkpoint parses its config.json here when it opens it
 * (fmt_model.config); everything that wants a value reads the struct: the
 * architecture for the core and the writers (fmt_arch_from_config), the
 * memory estimate (verify/vfy_mem.c, by key through fmt_config_get), the
 * compressed-tensors reader (quantization groups). Nobody else parses the
 * text. Each value keeps its JSON kind, so a reader can tell a missing key
 * from a wrong type and say which it met (the place to validate values that
 * would otherwise be silently replaced).
 *
 * The other direction, writing: config.json text for an architecture
 * (fmt_config_json_from_model) and the one edit convert makes to a source's
 * text (fmt_config_json_set_dtype).
 *
 * Thread safety: a parsed config is immutable; functions are reentrant. */
#ifndef FMT_CONFIG_H
#define FMT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct fmt_arch;
struct fmt_model;

enum fmt_cfg_kind {
    FMT_CFG_ABSENT = 0,   /* not in the file */
    FMT_CFG_NULL,         /* null */
    FMT_CFG_NUMBER,
    FMT_CFG_BOOL,
    FMT_CFG_STRING,
    FMT_CFG_ARRAY,
    FMT_CFG_OBJECT
};

/* One value: its kind, and for numbers and booleans the value; for an array
 * its length n, and num its first element when that is a number (first_num). */
struct fmt_cfg_val {
    enum fmt_cfg_kind kind;
    double num;
    bool b;
    bool first_num;
    size_t n;
};

/* The top-level keys read by someone (aliases of other model families
 * included: mem reads e.g. n_embd, d_model or dim where hidden_size is absent). */
#define FMT_CONFIG_KEYS(X)                                                                     \
    X(hidden_size) X(n_embd) X(d_model) X(dim)                                                 \
    X(num_hidden_layers) X(n_layer) X(num_layers) X(n_layers) X(num_decoder_layers)            \
    X(num_attention_heads) X(n_head) X(num_heads) X(n_heads)                                   \
    X(num_key_value_heads) X(n_kv_heads) X(head_dim) X(d_kv)                                   \
    X(vocab_size)                                                                              \
    X(max_position_embeddings) X(n_positions) X(max_seq_len)                                   \
    X(intermediate_size) X(n_inner) X(ffn_dim) X(hidden_dim) X(d_ff)                           \
    X(rms_norm_eps) X(rope_theta) X(partial_rotary_factor)                                     \
    X(tie_word_embeddings) X(attention_bias) X(bos_token_id) X(eos_token_id)                   \
    X(num_local_experts) X(num_experts) X(num_experts_per_tok) X(num_selected_experts)         \
    X(moe_intermediate_size) X(shared_expert_intermediate_size) X(norm_topk_prob)              \
    X(decoder_sparse_step) X(n_routed_experts) X(n_shared_experts)                             \
    X(first_k_dense_replace) X(moe_layer_freq)                                                 \
    X(num_sparse_encoder_layers) X(num_sparse_decoder_layers)                                  \
    X(relative_attention_num_buckets)                                                          \
    X(q_lora_rank) X(kv_lora_rank) X(qk_nope_head_dim) X(qk_rope_head_dim) X(v_head_dim)       \
    X(use_sliding_window) X(sliding_window) X(sliding_window_pattern) X(max_window_layers)

/* A compressed-tensors quantization group (quantization_config.config_groups). */
struct fmt_cfg_qgroup {
    char **targets;                 /* [n_targets] owned strings */
    size_t n_targets;
    struct fmt_cfg_val num_bits;    /* weights.num_bits */
    struct fmt_cfg_val group_size;  /* weights.group_size */
};

struct fmt_config {
    struct fmt_cfg_val model_type_val;
    char model_type[32];            /* "" when absent or not a string */
    char torch_dtype[16];           /* torch_dtype (else dtype) as written; "" when absent */
#define FMT_CONFIG_FIELD(k) struct fmt_cfg_val k;
    FMT_CONFIG_KEYS(FMT_CONFIG_FIELD)
#undef FMT_CONFIG_FIELD
    struct fmt_cfg_val rope_parameters_theta;  /* rope_parameters.rope_theta */
    struct fmt_cfg_val rope_scaling;           /* its kind */
    char rope_scaling_type[40];                /* rope_type, else type; "?" when neither */
    long *mlp_only_layers;                     /* the numbers of the array mlp_only_layers */
    size_t n_mlp_only_layers;
    struct fmt_cfg_val mlp_only_layers_val;    /* its kind */
    struct fmt_cfg_val layer_types;            /* its kind */
    size_t n_sliding_layer_types;              /* "sliding_attention" entries */
    struct fmt_cfg_qgroup *qgroups;
    size_t n_qgroups;
};

/*! fmt_config_parse() : parse config.json text (len bytes) named `what` in
 *  messages. @return SB_OK and *out (free with fmt_config_free); SB_EFORMAT
 *  "<what>: not a JSON object"; SB_ENOMEM. */
int fmt_config_parse(struct fmt_config **out, const char *json, size_t len, const char *what,
                     struct sb_err *err);
/*! fmt_config_free() : NULL is fine. */
void fmt_config_free(struct fmt_config *c);

/*! fmt_config_get() : the top-level value named key (one of FMT_CONFIG_KEYS),
 *  or NULL for a key this parser does not read. */
const struct fmt_cfg_val *fmt_config_get(const struct fmt_config *c, const char *key);

/*! fmt_arch_from_config() : the decoder architecture (llama, mistral, mixtral,
 *  qwen2, qwen2_moe; other model types get the llama reading with kind
 *  FMT_ARCH_UNKNOWN); rope_layout HALF (HF checkpoints). Records in
 *  arch.unimplemented the features the core does not implement.
 *  @return SB_OK, or SB_EFORMAT naming `what` and the field. */
int fmt_arch_from_config(struct fmt_arch *a, const struct fmt_config *c, const char *what,
                         struct sb_err *err);

/*! fmt_config_json_from_model() : config.json text for an HF output of src:
 *  the source's own text when it has one, else built from src->arch
 *  (LlamaForCausalLM / MixtralForCausalLM / Qwen2MoeForCausalLM;
 *  tie_word_embeddings true when src has no output.weight/lm_head.weight).
 *  No torch_dtype: the caller knows the output encoding.
 *  @return SB_OK and *json (NUL-terminated, sb_free). */
int fmt_config_json_from_model(const struct fmt_model *src, char **json, struct sb_err *err);

/*! fmt_config_json_set_dtype() : *json with torch_dtype (and dtype, where the
 *  text has it) set to torch_name ("bfloat16", "float16", ...), reformatted;
 *  *json is replaced (sb_free'd). Text that is not a JSON object is left as
 *  it is. @return SB_OK, SB_ENOMEM naming what. */
int fmt_config_json_set_dtype(char **json, const char *torch_name, const char *what,
                              struct sb_err *err);

#endif
