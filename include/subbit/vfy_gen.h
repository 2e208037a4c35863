/* vfy_gen.h: the generation loop of the reference core (`subbit run`): the
 * prompt forwarded in batches, then token by token the sampler picks the
 * next token, its text goes to the caller's hook, and it is forwarded, until
 * the limit, EOS or BOS, the end of the context, or the hook says stop. The
 * caller prints; the loop never does.
 *
 * Calling sequence:
 *   vfy_tok_encode(tok, prompt, len, true, &ids, &n, err);
 *   vfy_ctx_new(&ctx, vm, n + max_new, 512, err);
 *   vfy_sampler_init(&s, vocab, temp, top_p, seed, err);
 *   vfy_generate(ctx, tok, &s, ids, n, max_new, emit, user, &res, err);
 *
 * Thread safety: one call per context at a time (the forward runs OpenMP). */
#ifndef VFY_GEN_H
#define VFY_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "vfy_model.h"
#include "vfy_sample.h"
#include "vfy_tok.h"

/* The text of one token (or of the prompt echoed piece by piece): len bytes at
 * piece, not NUL-terminated. Return non-zero to stop the generation. */
typedef int (*vfy_gen_emit_fn)(void *user, const char *piece, size_t len);

enum vfy_gen_stop {
    VFY_GEN_LIMIT = 0,   /* max_new tokens made */
    VFY_GEN_EOS,         /* the sampler picked EOS or BOS (not emitted) */
    VFY_GEN_CONTEXT,     /* the context is full */
    VFY_GEN_HOOK         /* the hook asked to stop */
};

struct vfy_gen_result {
    size_t made;                 /* tokens sampled (an EOS that stopped it counts) */
    double seconds;              /* from the prompt's forward to the end */
    enum vfy_gen_stop stop;
};

/*! vfy_generate() : echo the prompt (prompt[0 .. n_prompt), as the tokenizer
 *  decodes it; a lone BOS echoes nothing) through emit, then generate up to
 *  max_new tokens. n_prompt >= 1 and fits the context.
 *  @return SB_OK and *res; SB_EINVAL (empty prompt, a prompt longer than the
 *  context), SB_ENOMEM, the forward's errors; SB_EINTR never (the hook stops). */
int vfy_generate(struct vfy_ctx *ctx, const struct vfy_tok *tok, struct vfy_sampler *s,
                 const int32_t *prompt, size_t n_prompt, size_t max_new, vfy_gen_emit_fn emit,
                 void *user, struct vfy_gen_result *res, struct sb_err *err);

#endif
