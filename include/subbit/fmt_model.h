/* fmt_model.h: the in-memory model every reader produces and every writer
 * consumes: tensors (name, encoding, shape, bytes, data), the architecture
 * config, the tokenizer's raw data and free-form metadata.
 *
 * Readers map files and hand out borrowed views; nothing is copied unless an
 * encoding change needs it. A model owns its mappings and every string and
 * buffer it points to; all is freed by fmt_model_free().
 *
 * Tensor names are the container's own (HF names for safetensors, GGUF names
 * for GGUF, GGUF names for llama2.c); convert/cvt_layout.h maps between the
 * schemes. */
#ifndef FMT_MODEL_H
#define FMT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_dtype.h"
#include "sb_err.h"

/* ---- tensors ------------------------------------------------------------ */

struct fmt_tensor {
    char *name;                    /* owned by the model */
    enum sb_dtype dtype;           /* the stored encoding */
    int ndim;                      /* 0..SB_MAX_DIMS */
    int64_t shape[SB_MAX_DIMS];    /* PyTorch order: shape[ndim-1] is the row length */
    struct sb_qparams qp;          /* int8 group / scale dtype; zero otherwise */
    uint64_t nbytes;               /* bytes at data (variable-length encodings: as stored) */
    const void *data;              /* borrowed: into a mapping, or into owned */
    void *owned;                   /* non-NULL when the model owns a heap copy (sb_free) */
    int map_index;                 /* which mapping data points into, -1 if none */
    uint64_t file_offset;          /* absolute offset of data in its file (for inspect) */
    uint32_t checksum;             /* container checksum if the container has one; else 0 */
};

/* ---- metadata ----------------------------------------------------------- */

/* Value types: the GGUF ids (formats.md §2.2), reused for every container. */
enum fmt_kv_type {
    FMT_KV_U8 = 0, FMT_KV_I8 = 1, FMT_KV_U16 = 2, FMT_KV_I16 = 3, FMT_KV_U32 = 4,
    FMT_KV_I32 = 5, FMT_KV_F32 = 6, FMT_KV_BOOL = 7, FMT_KV_STRING = 8, FMT_KV_ARRAY = 9,
    FMT_KV_U64 = 10, FMT_KV_I64 = 11, FMT_KV_F64 = 12, FMT_KV_TYPE_COUNT
};

struct fmt_kv {
    char *key;                     /* owned */
    enum fmt_kv_type type;
    /* scalars (the one matching type is set; ints widened) */
    uint64_t u;
    int64_t i;
    double f;
    /* FMT_KV_STRING: str (owned, NUL-terminated; len excludes the NUL) */
    char *str;
    uint64_t len;
    /* FMT_KV_ARRAY: arr_type, n elements. Numeric arrays: arr points to n
     * packed little-endian elements of arr_type (owned or borrowed from the
     * mapping — see arr_owned). String arrays: strs[n], lens[n] (owned);
     * the strings themselves are one block in arr_owned when that is set
     * (fmt_kv_set_strs, the GGUF reader), else each is owned. */
    enum fmt_kv_type arr_type;
    uint64_t n;
    const void *arr;
    void *arr_owned;
    char **strs;
    uint64_t *lens;
};

/* ---- architecture ------------------------------------------------------- */

enum fmt_rope_layout {
    FMT_ROPE_HALF = 0,        /* HF rotate_half: pairs (j, j + hd/2) */
    FMT_ROPE_INTERLEAVED = 1  /* GGUF/llama2.c/Meta: pairs (2j, 2j+1) */
};

enum fmt_arch_kind {
    FMT_ARCH_UNKNOWN = 0,
    FMT_ARCH_LLAMA,           /* dense llama family */
    FMT_ARCH_MIXTRAL,         /* top-k softmax, renormalised */
    FMT_ARCH_QWEN2_MOE        /* shared expert with sigmoid gate, qkv bias */
};

/* Decoder hyperparameters, filled from config.json, GGUF metadata or a
 * llama2.c header. 0 means "absent" for the optional fields. */
struct fmt_arch {
    enum fmt_arch_kind kind;
    char model_type[32];      /* config.json model_type, or GGUF general.architecture */
    int n_layers;
    int dim;                  /* hidden_size */
    int hidden_dim;           /* dense FFN width (intermediate_size) */
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int vocab_size;
    int n_ctx;                /* max_position_embeddings / context_length */
    float norm_eps;
    float rope_theta;
    enum fmt_rope_layout rope_layout;
    bool tied_embeddings;
    bool qkv_bias;
    /* MoE */
    int n_experts;
    int n_experts_used;
    int moe_hidden_dim;       /* per-expert FFN width (Mixtral: intermediate_size) */
    int shared_hidden_dim;    /* Qwen2-MoE shared expert width */
    bool norm_topk_prob;      /* renormalise the chosen top-k weights */
    int decoder_sparse_step;  /* Qwen2-MoE; 1 = every layer sparse */
    int bos_id, eos_id;       /* -1 if unknown */
    /* config features that change the forward pass and that the reference core
     * does not implement: it refuses them rather than compute something else */
    int sliding_window;       /* attention window in tokens; 0 = none */
    char unimplemented[64];   /* e.g. "rope_scaling (llama3)"; "" if none */
};

/* ---- tokenizer data (raw; verify/ builds tokenizers from it) ----------- */

struct fmt_hftok_file;        /* fmt_hftok.h */


enum fmt_vocab_kind {
    FMT_VOCAB_NONE = 0,
    FMT_VOCAB_SPM,            /* SentencePiece-BPE: pieces + scores (GGUF llama, tokenizer.bin) */
    FMT_VOCAB_HF_JSON         /* Hugging Face tokenizer.json (byte-level or
                                 SentencePiece-style BPE) */
};

struct fmt_vocab {
    enum fmt_vocab_kind kind;
    uint32_t n_tokens;
    char **tokens;            /* [n_tokens] owned, NUL-terminated; lens[] give byte lengths */
    uint32_t *lens;
    float *scores;            /* [n_tokens] or NULL */
    int32_t *types;           /* [n_tokens] GGUF token types, or NULL */
    uint32_t max_token_len;   /* tokenizer.bin header field */
    int bos_id, eos_id, unk_id;   /* -1 if unknown */
    bool add_bos;
    bool no_bos;              /* the file says BOS is not added (a GGUF "gpt2" tokenizer with
                                 add_bos_token false): the core's tokenizer adds none, as
                                 llama.cpp does not, though bos_id names one */
    char *hf_json;            /* FMT_VOCAB_HF_JSON: tokenizer.json text (owned) */
    size_t hf_json_len;
    char approx[96];          /* what of the file's tokenizer the core only approximates
                                 ("tokenizer.ggml.pre 'x'": a pre-tokenizer it does not
                                 implement, split as GPT-2 splits text), or "" */
    char *hf_config_json;     /* its tokenizer_config.json text (owned), or NULL: the
                                 special tokens' names and add_bos / add_eos_token */
    size_t hf_config_json_len;
    char *arena;              /* if set, tokens point into this one block (owned) of */
    size_t arena_len;         /* arena_len bytes, except those fmt_vocab_set_token made */
    struct fmt_hftok_file *hf;   /* the same, parsed once by the reader (owned; NULL when
                                    it did not parse: fmt_vocab_hftok says why) */
};

/* ---- the model ---------------------------------------------------------- */

enum fmt_container {
    FMT_CONT_UNKNOWN = 0,
    FMT_CONT_SAFETENSORS,
    FMT_CONT_GGUF,
    FMT_CONT_L2C,
    FMT_CONT_SUBBIT
};

struct fmt_map;               /* fmt_map.h */
struct fmt_config;            /* fmt_config.h */

struct fmt_model {
    enum fmt_container container;
    char *path;                       /* what the user named (owned) */
    struct fmt_arch arch;
    bool has_arch;                    /* arch was filled from a config */
    char arch_error[512];     /* why has_arch is false when a config was there (its own
                                 error, naming the file), else empty */
    char *config_json;                /* HF config.json text if any (owned) */
    struct fmt_config *config;        /* the same, parsed once (owned); NULL if none or
                                         not a JSON object */
    struct fmt_tensor *tensors;       /* [n_tensors], in file order */
    size_t n_tensors;
    struct fmt_kv *kv;                /* GGUF metadata; safetensors __metadata__ as strings */
    size_t n_kv;
    struct fmt_vocab vocab;
    char **side_files;                /* files beside the weights that travel on convert
                                         (tokenizer.json, tokenizer_config.json, ...): paths */
    size_t n_side_files;
    struct fmt_map **maps;            /* owned mappings */
    size_t n_maps;
    uint32_t gguf_alignment;          /* GGUF only; 0 otherwise */
};

/* Options for opening; zero-initialise for defaults. */
struct fmt_open_opts {
    const char *config_path;          /* HF config.json to use (else found beside the file) */
    const char *tokenizer_path;       /* llama2.c tokenizer.bin (else tokenizer.bin beside) */
    bool headers_only;                /* do not map tensor data (mem); data stays NULL */
};

/*! fmt_model_open() : open MODEL by sniffing what it is: a folder (HF layout,
 *  sharded or not, or a folder holding one .gguf/.subbit), a .safetensors
 *  file, a .gguf, a llama2.c .bin, or a .subbit container.
 *  @return SB_OK and *out (free with fmt_model_free), or a status with err
 *  naming the file and the problem; *out is NULL then. */
int fmt_model_open(struct fmt_model **out, const char *path,
                   const struct fmt_open_opts *opts, struct sb_err *err);

/*! fmt_model_file_bytes() : the size on disk of the files holding the weights
 *  (every shard; headers, metadata and padding included, config.json and the
 *  tokenizer not): what `ls -l` adds up, beside the tensor bytes. 0 when
 *  opened headers_only. */
uint64_t fmt_model_file_bytes(const struct fmt_model *m);

/*! fmt_model_free() : release everything; NULL is fine. */
void fmt_model_free(struct fmt_model *m);

/*! fmt_model_new() : an empty model (for writers that build one); NULL on OOM. */
struct fmt_model *fmt_model_new(void);

/*! fmt_model_find() : the tensor named name, or NULL. Linear scan, then hashed
 *  after the first call is not promised: cache the result in hot code. */
const struct fmt_tensor *fmt_model_find(const struct fmt_model *m, const char *name);

/*! fmt_model_add_tensor() : append a tensor (name copied); returns it, NULL on OOM. */
struct fmt_tensor *fmt_model_add_tensor(struct fmt_model *m, const char *name);

/*! fmt_model_release_data() : tell the OS that t's mapped pages are no longer
 *  needed (madvise DONTNEED on a read-only mapping), so streaming work keeps
 *  RSS near one tensor. The view stays valid; pages are re-read on access. */
void fmt_model_release_data(const struct fmt_model *m, const struct fmt_tensor *t);
/*! fmt_model_release_around() : fmt_model_release_data over t's bytes and
 *  margin bytes on either side (clipped at the file's start): reading a
 *  mapped page maps the pages around it as well (Linux's fault-around, a
 *  64 KiB block by default; a page-cache folio whole, up to 2 MiB), those of
 *  neighbouring tensors released before too. Advisory: a neighbour's
 *  released page is read again on access. */
#define FMT_FAULT_AROUND ((uint64_t)64 << 10)
void fmt_model_release_around(const struct fmt_model *m, const struct fmt_tensor *t,
                              uint64_t margin);

/*! fmt_model_find_kv() : metadata by key, or NULL. */
const struct fmt_kv *fmt_model_find_kv(const struct fmt_model *m, const char *key);

/*! fmt_model_params() : parameter count (elements) of all tensors. */
uint64_t fmt_model_params(const struct fmt_model *m);

/*! fmt_vocab_set_token() : token i := a copy of len bytes at s (the old one
 *  freed, wherever it lives). @return SB_OK, SB_EINVAL (i out of range),
 *  SB_ENOMEM (token i unchanged). */
int fmt_vocab_set_token(struct fmt_vocab *v, uint32_t i, const char *s, uint32_t len);

/*! fmt_kv_release() / fmt_vocab_release() : free the owned parts; zeroed structs fine. */
void fmt_kv_release(struct fmt_kv *kv);
void fmt_vocab_release(struct fmt_vocab *v);
/*! fmt_vocab_n_tokens() : how many token ids the tokenizer has: n_tokens for
 *  the token lists (SentencePiece, GGUF), the largest id + 1 of a parsed
 *  tokenizer.json (vocab and added tokens), 0 when there is none. */
uint32_t fmt_vocab_n_tokens(const struct fmt_vocab *v);

/*! fmt_model_is_qwen2_moe() : whether m is a Qwen2-MoE model (its arch, or a
 *  GGUF general.architecture "qwen2moe" it could not fully read). */
bool fmt_model_is_qwen2_moe(const struct fmt_model *m);

/*! fmt_container_name() : "safetensors", "gguf", "llama2.c", "subbit". */
const char *fmt_container_name(enum fmt_container c);
/*! fmt_container_for_output() : the container an output name asks for: .gguf,
 *  .subbit (any case), else safetensors (.safetensors, or a folder); SB_EINVAL
 *  (message names path) for "-" and for an extension that is none of .gguf,
 *  .subbit, .safetensors (a folder's name has none, or ends in '/'), so that
 *  "-o model.bin" is refused instead of becoming a folder. */
int fmt_container_for_output(const char *path, enum fmt_container *c, struct sb_err *err);

/*! fmt_arch_from_hf_config() : fmt_config_parse() then fmt_arch_from_config()
 *  (fmt_config.h) on config.json text, for callers holding only the text.
 *  @return SB_OK, or SB_EFORMAT naming `what` (the file) and the field. */
int fmt_arch_from_hf_config(struct fmt_arch *arch, const char *json, size_t len,
                            const char *what, struct sb_err *err);

/*! fmt_kv_set_strs() : make kv an array of the n strings strs (byte lengths
 *  lens; NULL: strlen), copied into one block: memory stays proportional to
 *  the bytes, however many strings. @return SB_OK or SB_ENOMEM (kv unchanged
 *  but for its type fields). */
int fmt_kv_set_strs(struct fmt_kv *kv, char *const *strs, const uint64_t *lens, uint64_t n);

/*! fmt_map_signal_path() : the path of the live mapping (any model's file)
 *  holding addr, or NULL. Async-signal-safe: for a SIGBUS handler (si_addr),
 *  since reading a mapped file that another program truncated raises SIGBUS. */
const char *fmt_map_signal_path(const void *addr);

/*! fmt_read_file() : whole file into an owned NUL-terminated buffer (sb_free). */
int fmt_read_file(const char *path, char **out, size_t *len, struct sb_err *err);

/* ---- per-container readers (called by fmt_model_open) ------------------ */
int fmt_st_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                      struct sb_err *err);   /* file or HF folder */
int fmt_gguf_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                        struct sb_err *err);
int fmt_l2c_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                       struct sb_err *err);
int fmt_sbc_open_model(struct fmt_model *m, const char *path, const struct fmt_open_opts *o,
                       struct sb_err *err);

#endif
