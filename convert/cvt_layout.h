/* cvt_layout.h: how a model's tensors map from one container's layout to
 * another's (formats.md §2.6–2.9, §3, §4): names (HF ⇄ GGUF; llama2.c models
 * carry GGUF names), the Q/K row permutation between HF's rotate_half and
 * GGUF's interleaved RoPE, stacking per-expert matrices into GGUF's
 * ffn_*_exps (and splitting transformers-v5 packed gate_up_proj). The
 * destination's metadata is built in formats/ (fmt_gguf_kv_build,
 * fmt_config_json_from_model).
 *
 * Knows names, shapes and row order; never re-encodes (that is convert's
 * policy): bytes move in the source encoding, or come out as f32.
 *
 * Calling sequence:
 *   struct cvt_layout *l;
 *   cvt_layout_plan(src, FMT_CONT_GGUF, &l, err);
 *   for (i = 0; i < l->n; i++) {
 *       cvt_layout_src_nbytes(l, i, src, &nb, err);      size in the source encoding
 *       cvt_layout_gather_bytes(l, i, src, buf, nb, err) (no re-encoding), or
 *       cvt_layout_gather_f32(l, i, src, f, err)         (rows x cols floats), or
 *       cvt_layout_gather_f32_rows(l, i, src, r0, n, f, err)  (a block of them)
 *   }
 *   cvt_layout_free(l);
 *
 * Not thread-safe per layout for planning; gathers of different targets may
 * run concurrently (they only read src and l). */
#ifndef CVT_LAYOUT_H
#define CVT_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_dtype.h"
#include "sb_err.h"

/* Rows of source tensor src (index into fmt_model.tensors): rows are along the
 * PyTorch leading dims (a source [E, F, H] has E*F rows of H elements).
 * A permuted 1-D target (a q/k bias) is addressed element by element: its
 * rows are single elements, and its piece covers all of them. */
struct cvt_piece {
    size_t src;
    uint64_t row0, nrows;
};

enum cvt_perm {
    CVT_PERM_NONE,
    CVT_PERM_HF_TO_GGUF,  /* dst row h*hd + 2j + t takes src row h*hd + t*hd/2 + j */
    CVT_PERM_GGUF_TO_HF   /* the inverse */
};

struct cvt_target {
    char name[128];                 /* output tensor name */
    int ndim;
    int64_t shape[SB_MAX_DIMS];     /* PyTorch order */
    struct cvt_piece *pieces;       /* [n_pieces], concatenated in order (owned by the layout) */
    size_t n_pieces;
    enum cvt_perm perm;             /* then applied to the concatenated rows */
    int perm_heads;                 /* nh for q, nkv for k */
    bool keep_f32;                  /* GGUF output: 1-D norms/biases and routers stay f32 */
    /* additions */
    bool is_expert;                 /* a routed-expert matrix (stacked or per expert) */
    enum sb_dtype src_dtype;        /* encoding of the first piece's source */
    struct sb_qparams src_qp;
    bool mixed_dtype;               /* pieces' sources differ in encoding: gather_f32 only */
};

struct cvt_layout {
    struct cvt_target *t;           /* [n] targets, in output order */
    size_t n;
    enum fmt_container src_container, dst_container;
    bool identity;                  /* same naming on both sides: names and rows unchanged */
    bool src_hf_names, dst_hf_names;
    char gguf_arch[16];             /* GGUF general.architecture of the GGUF side ("llama", "qwen2moe") */
};

/*! cvt_layout_plan() : map every tensor of src to the naming of container dst
 *  (GGUF and llama2.c: GGUF names; safetensors: HF names; .subbit: the source's
 *  names). HF → GGUF needs src->arch (head counts for the q/k permutation).
 *  Tied HF models drop lm_head.weight (GGUF reuses token_embd.weight).
 *  @return SB_OK and *out (free with cvt_layout_free); SB_EUNSUPPORTED naming a
 *  tensor that has no counterpart (rope_freqs.weight, old per-expert GGUF
 *  names, unknown HF names); SB_EFORMAT for shapes that do not fit (missing
 *  expert, head count not dividing rows); *out is NULL then. */
int cvt_layout_plan(const struct fmt_model *src, enum fmt_container dst, struct cvt_layout **out,
                    struct sb_err *err);

/*! cvt_layout_free() : NULL is fine. */
void cvt_layout_free(struct cvt_layout *l);

/*! cvt_layout_find() : index of the target named name, or -1. */
long cvt_layout_find(const struct cvt_layout *l, const char *name);

/*! cvt_layout_rows_cols() : the row geometry gathers use for target t
 *  (rows = product of leading dims, cols = last dim; a permuted 1-D target:
 *  n rows of 1). gather_f32 writes rows*cols floats. */
void cvt_layout_rows_cols(const struct cvt_layout *l, size_t t, uint64_t *rows, uint64_t *cols);

/*! cvt_perm_src_row() : the row of the unpermuted input that target row r takes,
 *  for a tensor of `rows` rows split into `heads` heads (hd = rows/heads, even). */
uint64_t cvt_perm_src_row(enum cvt_perm p, uint64_t heads, uint64_t rows, uint64_t r);

/*! cvt_layout_src_nbytes() : bytes of target t in its sources' encoding (what
 *  gather_bytes writes). SB_EUNSUPPORTED if the pieces are not row-addressable
 *  (int8/tern/sub1 split or permuted, mixed encodings). */
int cvt_layout_src_nbytes(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                          uint64_t *out, struct sb_err *err);

/*! cvt_layout_gather_bytes() : copy target t's rows from src, in target order,
 *  as raw bytes of the source encoding into dst (cap bytes available). All
 *  pieces must share an encoding that is row-addressable (plain scalars, ggml
 *  blocks); a target that is one whole unpermuted source tensor copies any
 *  encoding. A conversion that only renames gives byte-identical tensors. */
int cvt_layout_gather_bytes(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                            void *dst, uint64_t cap, struct sb_err *err);

/*! cvt_layout_gather_f32() : the same rows decoded to f32: dst holds rows*cols
 *  floats (cvt_layout_rows_cols). f32/f16/bf16 are decoded here, others by
 *  qnt_decode_rows (quant/qnt_encode.h). */
int cvt_layout_gather_f32(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                          float *dst, struct sb_err *err);

/*! cvt_layout_gather_f32_rows() : rows row0 .. row0+nrows-1 of the same,
 *  into dst (nrows * cols floats): what a row-block encoder reads, so a
 *  quantized target never needs the whole tensor in f32. SB_EINVAL for rows
 *  past the target. */
int cvt_layout_gather_f32_rows(const struct cvt_layout *l, size_t t, const struct fmt_model *src,
                               uint64_t row0, uint64_t nrows, float *dst, struct sb_err *err);

#endif
