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

/* A parsed tokenizer.json (fmt_hftok_parse). Strings are NUL-terminated and
 * live in the file's arena; ids were checked to be in [0, FMT_HFTOK_MAX_ID). */
#define FMT_HFTOK_MAX_ID (1 << 26)
/* The largest id may be at most 2 x (vocab + added tokens) + this: the id
 * space of a real tokenizer is dense (Llama 3: 128,256 ids for 128,256 tokens). */
#define FMT_HFTOK_HOLES 1024

enum fmt_hftok_kind {
    FMT_HFTOK_OTHER = 0,      /* a BPE that is neither of the two below */
    FMT_HFTOK_BYTE_LEVEL,     /* ByteLevel pre-tokenizer or decoder (GPT-2, Llama 3, Qwen) */
    FMT_HFTOK_SPM             /* SentencePiece-style: byte_fallback, Metaspace, or a U+2581
                                 Prepend / Replace normalizer (Llama 1/2) */
};

struct fmt_hftok_entry { const char *s; uint32_t len; int32_t id; };        /* model.vocab */
struct fmt_hftok_added { const char *content; uint32_t len; int32_t id; bool special; };
struct fmt_hftok_merge { const char *a, *b; uint32_t la, lb; };             /* model.merges */

struct fmt_hftok_file {
    enum fmt_hftok_kind kind;
    bool byte_fallback;              /* model.byte_fallback */
    bool bl_pre;                     /* byte-level: a ByteLevel pre-tokenizer (not only a decoder) */
    bool bl_use_regex;               /* its use_regex (default true; false without one) */
    bool bl_prefix_space;            /* its add_prefix_space (default true; false without one) */
    bool has_split;                  /* byte-level: a Split pre-tokenizer */
    const char *split_regex;         /* its pattern.Regex, or NULL */
    struct fmt_hftok_entry *vocab;   /* in file order (an id may appear twice: the first wins) */
    uint32_t n_vocab;
    struct fmt_hftok_added *added;   /* added_tokens, in file order */
    uint32_t n_added;
    struct fmt_hftok_merge *merges;  /* in rank order */
    size_t n_merges;
    const char *unk_token;           /* model.unk_token, or NULL */
    const char *bos_special;         /* post-processor TemplateProcessing single[0] special
                                        token, or NULL */
    int32_t bos_special_id;          /* its special_tokens[...].ids[0], -1 if not an id */
    const char *eos_special;         /* the last item of single when it is a special token
                                        and single has more than one item, or NULL */
    int32_t max_id;                  /* the largest id in vocab and added (>= 0) */
    char *arena;
};

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

/*! fmt_hftok_file_to_spm() : fmt_hftok_to_spm on a parsed file. */
int fmt_hftok_file_to_spm(struct fmt_vocab *out, const struct fmt_hftok_file *f,
                          uint32_t min_tokens, struct sb_err *err);

/*! fmt_hftok_parse() : tokenizer.json text (len bytes) into *out (free with
 *  fmt_hftok_file_free): the BPE model's vocab, merges and added tokens, the
 *  classification (byte-level, SentencePiece-style or neither) and the few
 *  options the tokenizers read. The only parse of tokenizer.json in subbit:
 *  readers do it when they open a model (fmt_vocab.hf), the core's tokenizer
 *  (verify/) and HF -> GGUF (fmt_hftok_to_spm) read the result.
 *  @return SB_OK; SB_EFORMAT "tokenizer.json: ..." naming what is malformed
 *  (no model object, a bad id, a merge that is not two tokens, ...);
 *  SB_EUNSUPPORTED for a model type other than BPE; SB_ENOMEM. */
int fmt_hftok_parse(struct fmt_hftok_file **out, const char *json, size_t len,
                    struct sb_err *err);
void fmt_hftok_file_free(struct fmt_hftok_file *f);

/*! fmt_vocab_hftok() : v's parsed tokenizer.json: v->hf when the reader
 *  parsed it, else v->hf_json parsed now into *tmp (the caller frees *tmp
 *  with fmt_hftok_file_free; NULL when not needed), which also reports the
 *  errors of a file that did not parse when the model was opened.
 *  @return SB_OK and *f, or fmt_hftok_parse's errors. */
int fmt_vocab_hftok(const struct fmt_vocab *v, const struct fmt_hftok_file **f,
                    struct fmt_hftok_file **tmp, struct sb_err *err);

/* ---- byte-level BPE <-> GGUF tokenizer.ggml.model "gpt2" (fmt_hftok_bl.c) ----
 *
 * GGUF stores a byte-level BPE as llama.cpp's converter (convert_hf_to_gguf's
 * get_vocab_base, gguf-py's SpecialVocab) writes it: tokens in the byte-level
 * unicode spelling the HF vocab already uses, added tokens as their literal
 * text; token_type 1 normal, 3 control (a special added token, or one that
 * looks special: <|...|>), 4 user-defined (another added token), 5 for ids the
 * HF file has no token for ("[PAD{id}]"); merges as "a b" strings; the
 * pre-tokenizer by name (tokenizer.ggml.pre). */

/* A GGUF "gpt2" tokenizer: its tokenizer.ggml.* values (borrowed). */
struct fmt_hftok_gguf {
    char *const *tokens;             /* [n] */
    const uint64_t *lens;            /* [n] byte lengths */
    uint64_t n;
    const int32_t *types;            /* [n] GGUF token types, or NULL (all normal) */
    char *const *merges;             /* [n_merges] "a b" */
    const uint64_t *merge_lens;
    uint64_t n_merges;
    const char *pre;                 /* tokenizer.ggml.pre, or NULL */
    const char *chat_template;       /* tokenizer.chat_template, or NULL */
    int64_t bos, eos, unk, sep, pad; /* ids, -1 when absent */
    int add_bos, add_eos;            /* 1 / 0, -1 when absent */
};

/* The special tokens and flags of an HF byte-level tokenizer, chosen as gguf-py's
 * SpecialVocab does: tokenizer_config.json's {bos,eos,unk,sep,pad}_token names
 * looked up among the added tokens (cls / sep standing in for a missing bos /
 * eos), the post-processor's TemplateProcessing (a leading special token is
 * BOS and add_bos; a trailing one is EOS and add_eos), config.json's ids for
 * what is still unset, then tokenizer_config.json's add_bos_token /
 * add_eos_token. */
struct fmt_hftok_specials {
    int64_t bos, eos, unk, sep, pad; /* -1: none */
    int add_bos, add_eos;            /* -1: not said */
    char *chat_template;             /* tokenizer_config.json's, or NULL (sb_free) */
};

/*! fmt_hftok_pre_name() : the tokenizer.ggml.pre llama.cpp tokenizes byte-level
 *  f like: "gpt-2" for ByteLevel's own GPT-2 regex, "llama-bpe" / "qwen2" for a
 *  Split with the Llama-3 / Qwen2 pattern, "default" otherwise. *exact is false
 *  when llama.cpp would split the text otherwise than f: an unknown Split
 *  pattern, a prefix space, or no splitting at all with merges (without merges
 *  every byte is its own token however the text is split, so "default" is exact). */
const char *fmt_hftok_pre_name(const struct fmt_hftok_file *f, bool *exact);

/*! fmt_hftok_pre_exact() : whether the tokenizer.json made from a GGUF with
 *  tokenizer.ggml.pre pre and n_merges merges (fmt_hftok_gguf_json) splits
 *  text as llama.cpp does: the GPT-2, Llama-3 and Qwen2 families, and
 *  "default" without merges. */
bool fmt_hftok_pre_exact(const char *pre, uint64_t n_merges);

/*! fmt_hftok_specials() : s for the byte-level f, its tokenizer_config.json text
 *  (cfg, cfg_len bytes; NULL: none) and config.json's bos / eos ids (cfg_bos,
 *  cfg_eos; -1: none); ids at or past n_vocab are dropped (0: no limit).
 *  @return SB_OK, SB_ENOMEM. */
int fmt_hftok_specials(struct fmt_hftok_specials *s, const struct fmt_hftok_file *f,
                       const char *cfg, size_t cfg_len, int64_t cfg_bos, int64_t cfg_eos,
                       uint32_t n_vocab);

/* Byte-level f as GGUF holds it (fmt_hftok_gpt2_from_file). */
struct fmt_hftok_gpt2 {
    uint32_t n;
    char **tokens;                   /* [n] into arena */
    uint64_t *lens;
    int32_t *types;                  /* [n] GGUF token types */
    char **merges;                   /* [n_merges] "a b" into arena */
    uint64_t *merge_lens;
    uint64_t n_merges;
    char *arena;
};

/*! fmt_hftok_gpt2_from_file() : out := byte-level f's tokens for ids 0 ..
 *  max(f's largest id + 1, min_tokens) - 1, their types and f's merges, as
 *  convert_hf_to_gguf writes them (a user-defined token's U+2581 becomes ' ';
 *  a merge part's ' ' becomes U+0120, as gguf-py does). @return SB_OK, SB_ENOMEM;
 *  release with fmt_hftok_gpt2_release (a zeroed struct is fine). */
int fmt_hftok_gpt2_from_file(struct fmt_hftok_gpt2 *out, const struct fmt_hftok_file *f,
                             uint32_t min_tokens, struct sb_err *err);
void fmt_hftok_gpt2_release(struct fmt_hftok_gpt2 *g);

/*! fmt_hftok_gguf_json() : tokenizer.json and tokenizer_config.json texts for a
 *  GGUF "gpt2" tokenizer g (what "what" names in messages): control and
 *  user-defined tokens as added tokens, "[PAD{id}]" unused tokens left out, the
 *  rest the BPE vocab; merges; the pre-tokenizer of g->pre (see
 *  fmt_hftok_pre_exact; an unknown one is approximated by GPT-2's regex); a
 *  TemplateProcessing adding BOS / EOS as g says; a ByteLevel decoder.
 *  @return SB_OK, *json and *cfg (sb_free); SB_EFORMAT for a malformed
 *  tokenizer (a merge without a space, an id out of range); SB_ENOMEM. */
int fmt_hftok_gguf_json(const struct fmt_hftok_gguf *g, const char *what, char **json,
                        size_t *json_len, char **cfg, size_t *cfg_len, struct sb_err *err);

/*! fmt_vocab_write_hf() : v's tokenizer.json and, when v has one,
 *  tokenizer_config.json texts written to the two paths (flags: FMT_OUT_*; a
 *  NULL path: that file is not written).
 *  @return SB_OK; SB_EINVAL when v holds no tokenizer.json text; SB_EIO. */
int fmt_vocab_write_hf(const struct fmt_vocab *v, const char *json_path, const char *cfg_path,
                       unsigned flags, struct sb_err *err);

#endif
