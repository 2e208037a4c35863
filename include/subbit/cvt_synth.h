/* cvt_synth.h: deterministic random models in Hugging Face layout (config.json,
 * model.safetensors or shards, a byte-level tokenizer.json), any size, for
 * tests, demos and benchmarks. The same options and seed give the same bytes
 * whatever the thread count. */
#ifndef CVT_SYNTH_H
#define CVT_SYNTH_H

#include <stdint.h>

#include "fmt_model.h"
#include "sb_progress.h"

struct cvt_synth_opts {
    enum fmt_arch_kind kind;   /* FMT_ARCH_LLAMA, FMT_ARCH_MIXTRAL, FMT_ARCH_QWEN2_MOE */
    int layers, dim, hidden, heads, kv_heads, vocab, ctx;
    int experts, top_k;        /* MoE */
    int shared_hidden;         /* Qwen2-MoE shared expert width */
    bool tied;                 /* tie_word_embeddings */
    enum sb_dtype dtype;       /* f32, f16 or bf16 */
    uint64_t seed;
    float init_std;            /* matrices ~ N(0, init_std^2) (approximately; Irwin-Hall) */
    uint64_t shard_size;       /* 0: one model.safetensors */
    unsigned out_flags;        /* FMT_OUT_FORCE */
    struct sb_progress progress;
};

/*! cvt_synth_opts_init() : a small llama (2 layers, dim 64, vocab 258) as defaults. */
void cvt_synth_opts_init(struct cvt_synth_opts *o, enum fmt_arch_kind kind);
/*! cvt_synth_params() : parameters the options describe (checked; 0 on overflow). */
uint64_t cvt_synth_params(const struct cvt_synth_opts *o);
/*! cvt_synth() : write the model folder at out_dir atomically. */
int cvt_synth(const struct cvt_synth_opts *o, const char *out_dir, struct sb_err *err);

#endif
