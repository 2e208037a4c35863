/* vfy_tok.h: the tokenizers of the reference core: text to token ids and
 * token ids back to bytes, built from the raw vocab a reader left in
 * struct fmt_vocab (formats/fmt_model.h).
 *
 * Two families:
 *  - SentencePiece-BPE (FMT_VOCAB_SPM: GGUF tokenizer.ggml.* with '▁' pieces, or a
 *    llama2.c tokenizer.bin with ' ' pieces): llama2.c run.c's encode(), i.e. a
 *    dummy-prefix space, one piece per UTF-8 codepoint, byte fallback to <0xXX>,
 *    then greedy merges of the adjacent pair with the best score (leftmost on ties).
 *  - Hugging Face tokenizer.json BPE (FMT_VOCAB_HF_JSON): byte-level BPE (GPT-2
 *    pre-tokenizer regex, bytes-to-unicode map, merges by rank), and the
 *    SentencePiece-style tokenizer.json of Llama checkpoints ('▁' normalizer,
 *    byte_fallback, merges by rank).
 *
 * A built tokenizer is immutable: every function taking a const struct vfy_tok *
 * may be called from several threads at once. */
#ifndef VFY_TOK_H
#define VFY_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_err.h"

struct vfy_tok;

/*! vfy_tok_new() : build a tokenizer from v (not kept: everything needed is
 *  copied). v->kind FMT_VOCAB_SPM needs tokens (scores optional: 0), FMT_VOCAB_HF_JSON
 *  needs hf_json; v->bos_id / eos_id / unk_id override what the vocab itself says,
 *  and v->no_bos leaves the tokenizer without a BOS to add (vfy_tok_bos -1).
 *  @return SB_OK and *out (free with vfy_tok_free); SB_EINVAL when v has no
 *  vocab, SB_EFORMAT / SB_EUNSUPPORTED for a tokenizer we cannot read, SB_ENOMEM. */
int vfy_tok_new(struct vfy_tok **out, const struct fmt_vocab *v, struct sb_err *err);

/*! vfy_tok_free() : release; NULL is fine. */
void vfy_tok_free(struct vfy_tok *t);

/*! vfy_tok_encode() : token ids of len bytes of text (any bytes: invalid UTF-8
 *  goes through byte fallback). SPM adds the dummy-prefix space to non-empty text,
 *  so encode each unit (block, story) with its own call. add_bos prepends BOS
 *  (SB_EUNSUPPORTED if the tokenizer has none). Empty text gives [] or [BOS].
 *  @return SB_OK with *ids (sb_malloc'd, caller sb_free; never NULL on success)
 *  and *n; on error *ids is NULL and *n 0. */
int vfy_tok_encode(const struct vfy_tok *t, const char *text, size_t len, bool add_bos,
                   int32_t **ids, size_t *n, struct sb_err *err);

/*! vfy_tok_decode() : the bytes token id prints as when it follows prev (-1 for
 *  none). SPM: byte tokens <0xXX> give that byte, '▁' gives ' ', and right after
 *  BOS a leading space is dropped (run.c). HF byte-level: the unicode-to-byte map.
 *  Control / special tokens (BOS, EOS, ...) and out-of-range ids give nothing.
 *  Writes at most cap bytes to buf (no NUL) and returns how many it wrote; a buffer
 *  of vfy_tok_max_piece_len() bytes always holds the whole piece. */
size_t vfy_tok_decode(const struct vfy_tok *t, int32_t prev, int32_t id, char *buf, size_t cap);

/*! vfy_tok_max_piece_len() : the longest decode() of any token, in bytes. */
size_t vfy_tok_max_piece_len(const struct vfy_tok *t);

/*! vfy_tok_bos() / vfy_tok_eos() : special ids, -1 if the tokenizer has none.
 *  vfy_tok_n_vocab() : ids are below this (the model's embedding rows should be
 *  at least this many). */
int vfy_tok_bos(const struct vfy_tok *t);
int vfy_tok_eos(const struct vfy_tok *t);
uint32_t vfy_tok_n_vocab(const struct vfy_tok *t);

/*! vfy_tok_read_ids() : pre-tokenized input: a text file of decimal integers
 *  separated by whitespace and/or commas, optionally inside one JSON array
 *  ("[1, 2, 3]"). Each id must be below n_vocab (0: no check).
 *  @return SB_OK with *ids (sb_malloc'd, caller sb_free) and *n >= 1; else
 *  SB_EIO / SB_EFORMAT (non-integer, out-of-range id, no ids) with a one-line
 *  message naming path, and *ids NULL. */
int vfy_tok_read_ids(const char *path, int32_t **ids, size_t *n, uint32_t n_vocab,
                     struct sb_err *err);

#endif
