/* vfy_ppl.h: perplexity protocols (product.md) and the verify comparison.
 *
 * A protocol turns text into a plan: windows of token ids, each with the
 * positions it scores (target j of a window is predicted by the logits at
 * j - 1). Protocols:
 *  - chunks (llama.cpp perplexity): tokens = BOS + encode(whole text); full
 *    windows of n_ctx, first token of each set to BOS; targets n_ctx/2 + 1 ..
 *    n_ctx - 1 are scored (logits at n_ctx/2 .. n_ctx - 2).
 *  - stride (Hugging Face sliding window): tokens = BOS + encode(text);
 *    windows [b, min(b + n_ctx, N)) for b = 0, stride, ...; each scores only
 *    the targets the previous window did not reach, so every token after the
 *    first is scored exactly once.
 *  - blocks: text split on a separator (default "\n\n", non-overlapping, left
 *    to right, as Python's str.split), each piece stripped of ASCII
 *    whitespace, empty pieces dropped; each block is BOS + encode(block)
 *    truncated to n_ctx; every target 1 .. n-1 is scored.
 * max_units caps chunks / windows / blocks (0 = all).
 * The runs report ppl = exp(mean NLL), the standard error, tokens scored and
 * tokens per second (tokens forwarded / wall seconds). */
#ifndef VFY_PPL_H
#define VFY_PPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_progress.h"
#include "vfy_metrics.h"
#include "vfy_model.h"
#include "vfy_tok.h"

enum vfy_protocol { VFY_PROTO_CHUNKS = 0, VFY_PROTO_STRIDE, VFY_PROTO_BLOCKS };

/*! "chunks", "stride", "blocks". */
const char *vfy_protocol_name(enum vfy_protocol p);
/*! the protocol named s, or -1. */
int vfy_protocol_from_name(const char *s);

struct vfy_ppl_opts {
    enum vfy_protocol protocol;
    size_t n_ctx;            /* window size (tokens, BOS included) */
    size_t stride;           /* stride protocol; 0 = n_ctx / 2 */
    size_t max_units;        /* chunks / windows / blocks to use; 0 = all */
    const char *block_sep;   /* blocks protocol; NULL = "\n\n" */
};

struct vfy_window {
    size_t off, n;           /* tokens plan->tok[off .. off+n) */
    size_t first;            /* score targets first .. n-1 of the window (first >= 1) */
};

struct vfy_plan {
    enum vfy_protocol protocol;
    size_t n_ctx;
    int32_t *tok;            /* owned (sb_malloc) */
    size_t n_tok;
    struct vfy_window *win;  /* owned */
    size_t n_win;
    size_t n_scored;         /* targets scored over all windows */
    size_t n_input;          /* tokens the protocol saw (chunks/stride: BOS + text) */
    size_t n_truncated;      /* blocks cut to n_ctx */
};

/*! vfy_plan_from_text() : tokenize text (len bytes, any bytes) per o.
 *  @return SB_OK; SB_EINVAL with a message when nothing can be scored (empty
 *  text, or too short for one chunk); SB_ENOMEM; tokenizer errors. */
int vfy_plan_from_text(struct vfy_plan *p, const struct vfy_tok *t, const char *text, size_t len,
                       const struct vfy_ppl_opts *o, struct sb_err *err);
/*! vfy_plan_from_ids() : the same from pre-tokenized ids (taken as the whole
 *  token stream, BOS included if wanted); chunks and stride only (blocks
 *  needs the text: SB_EINVAL). bos < 0: chunk starts are left as they are. */
int vfy_plan_from_ids(struct vfy_plan *p, const int32_t *ids, size_t n, int bos,
                      const struct vfy_ppl_opts *o, struct sb_err *err);
void vfy_plan_release(struct vfy_plan *p);

struct vfy_ppl_result {
    double ppl, mean_nll, se_nll, ppl_se;   /* ppl_se = ppl * se_nll */
    double sum_nll;
    size_t n_scored, n_windows, n_forwarded;
    size_t n_nonfinite;     /* scored positions whose logits hold a NaN or an inf (verify) */
    double seconds, tok_per_s;
};

/*! vfy_ppl_run() : score plan p with ctx (n_ctx >= p->n_ctx). progress counts
 *  windows; before each report r->n_windows, n_forwarded, n_scored and sum_nll
 *  hold the windows done so far (a hook that sees r can draw tokens/s and a
 *  running perplexity, as llama-perplexity does). @return SB_OK, SB_EINVAL
 *  (context too small), SB_ENOMEM, SB_EFORMAT when a scored position's logits
 *  are not finite (NaN or inf: the model's weights or its arithmetic; the
 *  message says where, and there is no perplexity to report). In an MPI job
 *  (par_comm.h) it is collective: each rank scores a contiguous share of the
 *  windows, the per-position NLLs are gathered and summed in window order on
 *  every rank, so r has the same bits at any rank count; progress then counts
 *  this rank's windows, and the running figures seen by the hook are this
 *  rank's own share until the gather. A failing rank's error reaches all. */
int vfy_ppl_run(struct vfy_ctx *ctx, const struct vfy_plan *p, const struct sb_progress *progress,
                struct vfy_ppl_result *r, struct sb_err *err);

struct vfy_verify_result {
    struct vfy_ppl_result ref, model;
    struct vfy_kld_summary kld;             /* KL(P_ref || P_model) per position */
    double dppl, dppl_pct;                  /* model - ref, and 100 * that / ref */
    /* the paired difference: the mean over scored positions of NLL_model -
     * NLL_ref, which is ln(ppl model / ppl ref), and its standard error from
     * the per-position differences (llama.cpp's "Mean ln(PPL(Q)/PPL(base))"):
     * whether a perplexity difference is more than the text's noise */
    double ln_ratio, ln_ratio_se;
};

/*! vfy_verify_run() : both models over the same windows and targets (their
 *  vocabularies must be the same size: SB_EINVAL otherwise). A position where
 *  either model's logits are not finite is counted (ref.n_nonfinite,
 *  model.n_nonfinite) and enters no statistic; when there is one, every
 *  perplexity, difference and KLD figure of r is NaN (never a passing value).
 *  Collective in an MPI job, as vfy_ppl_run: NLLs, KLDs and top-1 gathered in
 *  window order. Before each progress report r->ref.n_forwarded counts the
 *  tokens done so far (this rank's, in an MPI job). */
int vfy_verify_run(struct vfy_ctx *ref, struct vfy_ctx *model, const struct vfy_plan *p,
                   const struct sb_progress *progress, struct vfy_verify_result *r,
                   struct sb_err *err);

/* verify's pass/fail thresholds (the CI gate of `subbit verify`). */
struct vfy_gates {
    bool dppl;               /* gate on the perplexity difference */
    double max_dppl;         /* fail when ppl(model) - ppl(ref) exceeds it, or with dppl_pct */
    bool dppl_pct;           /*   when 100 * that / ppl(ref) does */
    double max_kld;          /* fail when the mean KLD exceeds it; < 0: no gate */
    double min_top1;         /* fail when top-1 agreement is below it; < 0: no gate */
};

/* Which gates failed; nonfinite: either model's logits were not finite. */
struct vfy_gate_check {
    bool dppl, kld, top1, nonfinite;
};

/*! vfy_verify_gates() : true when r passes every gate g sets; a NaN fails any
 *  gate it meets, and non-finite logits fail every gate g sets. *failed (may
 *  be NULL) says which failed. */
bool vfy_verify_gates(const struct vfy_verify_result *r, const struct vfy_gates *g,
                      struct vfy_gate_check *failed);

/*! vfy_blocks_split() : the blocks protocol's split of text: calls fn for each
 *  non-empty stripped piece, in order, until fn returns non-zero (returned). */
int vfy_blocks_split(const char *text, size_t len, const char *sep,
                     int (*fn)(void *ctx, const char *s, size_t n), void *ctx);

#endif
