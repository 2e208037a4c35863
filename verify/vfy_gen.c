/* vfy_gen.c: the generation loop (vfy_gen.h). */
#include "vfy_gen.h"

#include <time.h>

#include "sb_alloc.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int vfy_generate(struct vfy_ctx *ctx, const struct vfy_tok *tok, struct vfy_sampler *s,
                 const int32_t *prompt, size_t n_prompt, size_t max_new, vfy_gen_emit_fn emit,
                 void *user, struct vfy_gen_result *res, struct sb_err *err)
{
    const size_t n_ctx = vfy_ctx_n_ctx(ctx);
    const size_t V = (size_t)vfy_model_info(vfy_ctx_model(ctx))->vocab;
    res->made = 0;
    res->seconds = 0.0;
    res->stop = VFY_GEN_LIMIT;
    if (n_prompt == 0)
        return sb_err_set(err, SB_EINVAL, "generate: empty prompt");
    if (n_prompt > n_ctx)
        return sb_err_set(err, SB_EINVAL, "prompt of %zu tokens does not fit the context of %zu",
                          n_prompt, n_ctx);
    const size_t cap = vfy_tok_max_piece_len(tok) + 1;
    float *logits = sb_malloc(V * sizeof *logits);
    char *piece = sb_malloc(cap);
    int rc = SB_OK;
    if (!logits || !piece) {
        rc = sb_err_set(err, SB_ENOMEM, "generate: out of memory");
        goto out;
    }
    /* the prompt as the tokenizer prints it (a lone BOS prints nothing) */
    for (size_t i = 0; i < n_prompt; i++) {
        if (i == 0 && prompt[0] == vfy_tok_bos(tok))
            continue;
        size_t k = vfy_tok_decode(tok, i ? prompt[i - 1] : -1, prompt[i], piece, cap);
        if (emit && emit(user, piece, k)) {
            res->stop = VFY_GEN_HOOK;
            goto out;
        }
    }
    const double t0 = now_s();
    if ((rc = vfy_forward(ctx, prompt, n_prompt, 0, logits, false, err)) != SB_OK)
        goto out;
    const int eos = vfy_tok_eos(tok), bos = vfy_tok_bos(tok);
    int32_t prev = prompt[n_prompt - 1];
    size_t pos = n_prompt;
    while (res->made < max_new) {
        int32_t next = vfy_sampler_next(s, logits);
        res->made++;
        if (next == eos || next == bos) {
            res->stop = VFY_GEN_EOS;
            break;
        }
        size_t k = vfy_tok_decode(tok, prev, next, piece, cap);
        if (emit && emit(user, piece, k)) {
            res->stop = VFY_GEN_HOOK;
            break;
        }
        prev = next;
        if (res->made == max_new)
            break;
        if (pos >= n_ctx) {
            res->stop = VFY_GEN_CONTEXT;
            break;
        }
        if ((rc = vfy_forward(ctx, &next, 1, pos++, logits, false, err)) != SB_OK)
            break;
    }
    res->seconds = now_s() - t0;
out:
    sb_free(logits);
    sb_free(piece);
    return rc;
}
