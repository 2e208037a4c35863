/* cvt_convert.h: convert as plan -> stream_tensor -> write.
 *
 * plan: every output tensor's encoding (cvt_decide, the per-tensor policy)
 * and size, decided before a byte moves (all a dry run does). stream_tensor:
 * each output tensor is assembled (from one or more source tensors, with the
 * container's row permutation) a block of rows at a time, encoded by the
 * row-block encoder (quant/qnt_encode.h) and handed to the writer, in pieces
 * where the container takes them; unchanged bytes are copied, plain float
 * casts go slice by slice. write: the destination's metadata, the writer,
 * every tensor in the writer's order, the atomic commit. The source pages a
 * tensor touched are released after it, so peak memory stays near one
 * output tensor (plus a 32 MiB f32 block) whatever the model size.
 *
 * Calling sequence:
 *   struct cvt_opts o; cvt_opts_init(&o); o.to = SB_DTYPE_BF16; ...
 *   struct cvt_report *rep;
 *   cvt_convert(model, "out/", &o, &rep, err);   (o.dry_run: plan only)
 *   ... print rep ...; cvt_report_free(rep); */
#ifndef CVT_CONVERT_H
#define CVT_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_err.h"
#include "sb_progress.h"

struct cvt_rule {
    const char *glob;          /* fnmatch pattern over output tensor names */
    int to;                    /* encoding, or -1 = keep as stored */
    int part;                  /* 0: glob is the pattern; 1 + enum vfy_mem_part: the tensors
                                  vfy_mem_part_of() puts in that component (--keep embed) */
};

/* llama-quantize's mixes by name (docs/ggml-mixes.md) */
enum cvt_mix {
    CVT_MIX_NONE = 0, CVT_MIX_Q2_K, CVT_MIX_Q3_K_S, CVT_MIX_Q3_K_M, CVT_MIX_Q3_K_L,
    CVT_MIX_Q4_K_S, CVT_MIX_Q4_K_M, CVT_MIX_Q5_K_S, CVT_MIX_Q5_K_M, CVT_MIX_Q6_K,
    CVT_MIX_IQ4_NL, CVT_MIX_IQ4_XS, CVT_MIX_COUNT
};

/* what a mix's rule asks of the model (cvt_convert fills it from the source) */
struct cvt_mix_model {
    int n_layer, n_gqa, n_expert;
    bool has_output;           /* an output.weight: else token_embd is treated as the output */
    bool llama_70b;            /* llama.cpp's LLM_TYPE_70B guess for a llama-arch GGUF: 80
                                * layers, grouped K/V heads, not exactly 8 experts */
};

struct cvt_opts {
    int to;                    /* target encoding (enum sb_dtype); -1 = keep all (container change only) */
    const struct cvt_rule *rules;   /* first match wins; --keep GLOB is {GLOB, -1, 0} */
    size_t n_rules;
    enum sb_dtype fallback;    /* tensors that cannot take `to` (1-D, row not a block multiple): f16 */
    bool experts_only;         /* sub-1-bit/tern targets: only expert matrices take `to` */
    bool keep_embeddings;      /* quantized targets: the token embedding stays as stored */
    enum sb_dtype dense_to;    /* what non-expert matrices get with experts_only (default bf16) */
    struct sb_qparams qp;      /* int8: group size, scale dtype */
    uint64_t shard_size;       /* safetensors folder output: bytes per shard (0: one file) */
    unsigned out_flags;        /* FMT_OUT_FORCE */
    bool dry_run;              /* plan and sizes only, nothing written */
    bool stats;                /* per-tensor error statistics (decodes what was written) */
    int mix;                   /* enum cvt_mix: per-tensor types as llama-quantize's mix of
                                  that name (GGUF output; `to` is ignored then) */
    struct cvt_mix_model mix_model;   /* filled by cvt_convert / cvt_decide_sources */
    bool allow_nonfinite;      /* write NaN/Inf weights and values the target cannot hold
                                  (a block scale past f16, a cast overflowing) instead of
                                  refusing them (SB_EINVAL naming tensor and row) */
    bool allow_requantize;     /* an already quantized tensor (not f32/f16/bf16/f64) may be
                                  re-encoded into another quantized encoding of no more bytes;
                                  without it that is refused (SB_EINVAL), as llama-quantize
                                  does. Decoding to a plain float, a larger encoding (q4_0 ->
                                  q8_0) and tern <-> sub1 <-> sub1-qmoe need no flag. */
    struct sb_progress progress;    /* bytes of input done / in all (fixed from the
                                       start, where sub1's output total is not) */
    const struct fmt_model *report_src;   /* NULL, or the model src stands in for (same
                                             tensors, some re-encoded): the report's
                                             `from` and in_bytes describe it */
    uint64_t block_elems;      /* f32 elements per row block and cast slice (0: 8 Mi and 2 Mi);
                                  tests make it small */
    uint64_t max_memory;       /* bytes the conversion may hold resident (0: no cap): row
                                  blocks are sized to it, and a tensor whose source pages
                                  plus work buffers would pass it fails before any byte is
                                  written (cvt_convert_need) */
};

struct cvt_decision {
    char *name;                /* output tensor name */
    int ndim;
    int64_t shape[SB_MAX_DIMS];
    enum sb_dtype from;        /* source encoding (of the first piece) */
    enum sb_dtype to;
    uint64_t in_bytes, out_bytes;
    const char *reason;        /* static text: why this encoding */
    bool has_stats;
    double rmse, sqnr_db, max_abs;
    double zero_fraction;      /* with stats: share of the written values that are 0 */
};

struct cvt_report {
    struct cvt_decision *d;
    size_t n;
    enum fmt_container container;
    bool tokenizer_dropped;    /* the source has a tokenizer the output cannot carry (GGUF:
                                  a tokenizer.json that is no BPE; HF from GGUF: a
                                  tokenizer.ggml.model subbit does not read) */
    char tokenizer_note[320];  /* a warning about the tokenizer for stderr (its drop, or a
                                  pre-tokenizer the output can only approximate), or "" */
    uint64_t in_bytes, out_bytes, params;
    double seconds;
};

void cvt_opts_init(struct cvt_opts *o);
/*! cvt_convert() : convert src into out_path (container from the name: .gguf,
 *  .subbit, else safetensors file/folder). On success *rep describes every
 *  decision (free with cvt_report_free). On failure nothing is left at
 *  out_path and *rep is NULL. In an MPI job (par_comm.h) it is collective:
 *  every rank encodes a share of the tensors (balanced by bytes); GGUF and
 *  .subbit: each rank pwrites its tensors into rank 0's temp output at
 *  offsets rank 0 plans (GGUF before encoding, .subbit once the stored sizes
 *  are gathered), and rank 0 commits after every rank succeeded; safetensors:
 *  each rank encodes into a scratch file beside out_path and rank 0 writes
 *  them into the container. The bytes and *rep equal one process's (timings
 *  aside), and the output folder must be on a file system every rank shares. */
int cvt_convert(const struct fmt_model *src, const char *out_path, const struct cvt_opts *o,
                struct cvt_report **rep, struct sb_err *err);
void cvt_report_free(struct cvt_report *rep);

/* What cvt_convert counts against max_memory besides each tensor: the output
 * writer's two 8 MiB buffers and the process itself (binary, libc, OpenBLAS,
 * the source's header and tables): `subbit convert` of the 5 MiB built-in
 * model peaks at 13.2 MiB, so 16 MiB, plus the 16 of the writer. */
#define CVT_MEM_FIXED ((uint64_t)32 << 20)

/* What cvt_convert holds resident at its peak (cvt_convert_memory), bytes.
 * Tensors are converted one at a time, so the peak is one tensor's need:
 * CVT_MEM_FIXED, its source pages resident at once (a stacked GGUF tensor's
 * pieces give theirs back as they are encoded), three row blocks of f32, and
 * what must be whole (a variable-length code's symbols and bound, the
 * output where the container's writer takes it whole: .subbit, int8
 * safetensors). */
struct cvt_convert_mem {
    uint64_t peak;               /* the largest tensor's need: what --max-memory is held to */
    uint64_t fixed;              /* CVT_MEM_FIXED, part of it */
    uint64_t block_elems;        /* f32 elements of a row block (sized to the cap) */
    char tensor[128];            /* the tensor with the peak */
    enum sb_dtype to;            /* its encoding */
    uint64_t out_bytes;          /* its output bytes (0: variable length) */
};

/*! cvt_convert_memory() : what cvt_convert of src into out_path with o holds
 *  at its peak, from the same plan and formula cvt_convert checks
 *  o->max_memory against (`subbit mem --for convert`). One process; a rank of
 *  an MPI job holds the same for its tensors, plus (.subbit) the stored bytes
 *  it keeps until the offsets are known. @return SB_OK, a plan error, or
 *  SB_ENOMEM when a tensor's need is above o->max_memory (convert's message). */
int cvt_convert_memory(const struct fmt_model *src, const char *out_path,
                       const struct cvt_opts *o, struct cvt_convert_mem *m, struct sb_err *err);

/*! cvt_decide_sources() : the policy of cvt_convert for each source tensor:
 *  the encoding src->tensors[i] gets when converted into container cont with o
 *  (to[i], an enum sb_dtype; -1 if it is not in the output) and why (static
 *  text; why may be NULL). Both arrays hold src->n_tensors entries.
 *  @return SB_OK, or a layout error (cvt_layout_plan). */
int cvt_decide_sources(const struct fmt_model *src, enum fmt_container cont,
                       const struct cvt_opts *o, int *to, const char **why, struct sb_err *err);
/*! cvt_decide() : the per-tensor policy: the encoding target t (a layout
 *  target, cvt_layout.h) gets under o when its source is `from` and the
 *  output container cont, and why (a static string: "target", "--keep",
 *  "norms stay f32", "row not a block multiple (--fallback)", ...). What
 *  cvt_convert applies to every tensor; other tools ask it the same question. */
struct cvt_target;
enum sb_dtype cvt_decide(const struct cvt_target *t, enum sb_dtype from, enum fmt_container cont,
                         const struct cvt_opts *o, const char **why);

/*! cvt_mix_from_name() : the enum cvt_mix named s in llama-quantize's spelling
 *  ("Q4_K_M", "Q6_K", "IQ4_XS": upper case; "q6_K" is the encoding), 0 if none. */
int cvt_mix_from_name(const char *s);
/*! cvt_mix_name() : "Q4_K_M" for CVT_MIX_Q4_K_M; "" for none. */
const char *cvt_mix_name(int mix);
/*! cvt_mix_ftype() : the mix's general.file_type (llama.cpp's LLAMA_FTYPE_MOSTLY_*). */
uint32_t cvt_mix_ftype(int mix);
/*! cvt_mix_order() : <0, 0, >0 as GGUF tensor a comes before, with, after b
 *  in llama.cpp's model loader order, which llama-quantize writes in: the
 *  tensors outside the layers by name, then layer by layer in numeric order
 *  (blk.2 before blk.10), each layer's by name. */
int cvt_mix_order(const char *a, const char *b);
/*! cvt_mix_decide() : the type llama-quantize's mix o->mix gives the GGUF tensor
 *  `name` of shape[ndim] stored as `from` (from for tensors it does not
 *  quantize), and why (static text); SB_DTYPE_COUNT when the row length fits
 *  neither the type nor a fallback (llama-quantize fails there too). */
enum sb_dtype cvt_mix_decide(const struct cvt_opts *o, const char *name, const int64_t *shape,
                             int ndim, enum sb_dtype from, const char **why);

/*! cvt_is_expert() : whether an (HF or GGUF) tensor name is a routed-expert matrix. */
bool cvt_is_expert(const char *name);

#endif
