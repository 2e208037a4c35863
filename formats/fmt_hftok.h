/* fmt_hftok.h: a SentencePiece-BPE vocab (struct fmt_vocab, FMT_VOCAB_SPM) as a
 * Hugging Face fast-tokenizer folder, and back.
 *
 *  - fmt_hftok_json() / fmt_hftok_write_json(): the Llama-style tokenizer.json:
 *    model BPE with byte_fallback and fuse_unk, vocab piece -> id, merges derived
 *    from the SentencePiece scores (below), normalizer Prepend("▁") + Replace(" ", "▁"),
 *    decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(1 leading space),
 *    added_tokens for the control / unknown tokens, a TemplateProcessing that
 *    prepends BOS when the vocab adds one.
 *  - fmt_hftok_write_config(): tokenizer_config.json (LlamaTokenizerFast).
 *  - fmt_hftok_to_spm(): a SentencePiece-style tokenizer.json back to pieces,
 *    scores and token types, for GGUF tokenizer.ggml.* (HF -> GGUF).
 *
 * Merges, the way Hugging Face's SentencePiece extractor (LlamaConverter) derives
 * them: for every piece, every split at a codepoint boundary into two pieces gives
 * a merge; merges are ranked by the merged piece's score, highest first (ties: the
 * merged piece's id, then the left and right piece ids, lowest first). Only pieces
 * the SentencePiece encoder may merge take part (not control, unknown, unused or
 * <0xXX> byte tokens), so an HF BPE over these merges picks the same pair at
 * every step as the score-driven SentencePiece encoder (verify/vfy_tok_spm.c)
 * whenever distinct pieces have distinct scores, as SentencePiece-trained vocabs
 * do. Pieces may be spelled with U+2581 (GGUF) or ' ' (llama2.c tokenizer.bin,
 * whose BOS / EOS read "\n<s>\n" / "\n</s>\n"); tokenizer.json always uses U+2581
 * and "<s>" / "</s>". */
#ifndef FMT_HFTOK_H
#define FMT_HFTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "sb_err.h"

/*! fmt_hftok_json() : tokenizer.json text for v (an SPM vocab).
 *  @return SB_OK and *text (NUL-terminated, *len bytes; free with sb_free);
 *  SB_EINVAL when v is not an SPM vocab, SB_EUNSUPPORTED when a piece is not
 *  valid UTF-8 (JSON cannot hold it), SB_ENOMEM. On error *text is NULL. */
int fmt_hftok_json(const struct fmt_vocab *v, char **text, size_t *len, struct sb_err *err);

/*! fmt_hftok_write_json() : fmt_hftok_json() written atomically to path
 *  (flags: FMT_OUT_*). Errors as fmt_hftok_json(), plus SB_EIO. */
int fmt_hftok_write_json(const struct fmt_vocab *v, const char *path, unsigned flags,
                         struct sb_err *err);

/*! fmt_hftok_write_config() : tokenizer_config.json for v: tokenizer_class
 *  LlamaTokenizerFast, bos / eos / unk tokens (those v has), add_bos_token as
 *  v->add_bos, add_eos_token false, the added tokens' decoder entries. */
int fmt_hftok_write_config(const struct fmt_vocab *v, const char *path, unsigned flags,
                           struct sb_err *err);

/*! fmt_hftok_to_spm() : read a SentencePiece-style tokenizer.json (model BPE,
 *  not byte-level, with byte_fallback or a U+2581 normalizer / Metaspace) of len
 *  bytes into out (released first; fmt_vocab_release() frees it) as an SPM vocab
 *  in U+2581 spelling, of at least min_tokens ids (the model's vocab_size; 0:
 *  as many as the file has). Ids missing from the file become "[PAD{id}]" (type
 *  unused), as llama.cpp pads a vocab shorter than the embeddings. Token
 *  types: <0xXX> byte 6, the model's unk_token 2, special added tokens 3, other
 *  added tokens 4, the rest 1. bos / eos from the post-processor
 *  or the names <s> / </s>; add_bos when the post-processor prepends BOS.
 *  Scores (llama.cpp's convert_hf_to_gguf gives every token of such a vocab
 *  -1000, which makes its SentencePiece encoder merge leftmost-first and tokenize
 *  unlike the HF merges; we keep the merge order instead): a piece that is the
 *  result of merges gets -(rank of its first merge); other normal and
 *  user-defined pieces -(n_merges + id), below every merge; control, unknown,
 *  unused and byte tokens 0.
 *  @return SB_OK; SB_EUNSUPPORTED for a byte-level or non-BPE tokenizer.json;
 *  SB_EFORMAT for a malformed one; SB_ENOMEM. */
int fmt_hftok_to_spm(struct fmt_vocab *out, const char *json, size_t len, uint32_t min_tokens,
                     struct sb_err *err);

/*! fmt_hftok_json_id() : x is a tokenizer.json token id (an integer in
 *  [0, FMT_HFTOK_MAX_ID)): stores it in *id and returns true. x is a cJSON
 *  node (void * keeps cJSON out of this header). */
#define FMT_HFTOK_MAX_ID (1 << 26)
bool fmt_hftok_json_id(const void *x, int32_t *id);

/* The parts of a parsed tokenizer.json (cJSON nodes, as void * to keep cJSON
 * out of this header); absent parts are NULL. */
struct fmt_hftok_parts {
    const void *model, *vocab, *merges, *added, *pre, *norm, *dec;
    int32_t max_id;           /* the largest id in model.vocab and added_tokens */
};

/*! fmt_hftok_json_parts() : find the parts of tokenizer.json root and check
 *  their shape: a BPE model object with a vocab object of valid ids, merges
 *  and added_tokens arrays (each added token with an id and a content), at
 *  least one id. @return SB_OK, or SB_EFORMAT / SB_EUNSUPPORTED (a model type
 *  other than BPE) with a message starting "tokenizer.json: ". */
int fmt_hftok_json_parts(const void *root, struct fmt_hftok_parts *p, struct sb_err *err);

#endif
