/* vfy_tok_impl.h: internals shared by vfy_tok.c (common parts, the merge
 * engine, ids files), vfy_tok_spm.c and vfy_tok_bpe.c. Include only there. */
#ifndef VFY_TOK_IMPL_H
#define VFY_TOK_IMPL_H

#include "vfy_tok.h"

enum vfy_tok_kind {
    VFY_TOK_SPM = 1,        /* scores, run.c encode */
    VFY_TOK_HF_BYTE,        /* tokenizer.json byte-level BPE */
    VFY_TOK_HF_SPM          /* tokenizer.json with '▁' normalizer and byte fallback */
};

/* Open-addressing map from a byte string to a token id; the keys are the
 * tokenizer's own strings (keys[id], klens[id]), so the map stores only ids. */
struct vfy_strmap {
    uint32_t mask;          /* capacity - 1 (capacity a power of two) */
    int32_t *slots;         /* id, or -1 for empty */
};

/* Map from a token pair (a, b) to (rank, merged id): HF merges. */
struct vfy_pairmap {
    uint32_t mask;
    uint64_t *keys;         /* (a << 32 | b) + 1; 0 = empty */
    int32_t *rank, *merged;
};

struct vfy_tok {
    enum vfy_tok_kind kind;
    uint32_t n_vocab;
    int bos, eos, unk;
    /* What each id decodes to: dec[id], dec_len[id] (each owned; key[id] may be
     * the same pointer, freed once). */
    char **dec;
    uint32_t *dec_len;
    uint32_t max_dec;
    uint8_t *flags;         /* VFY_TF_* per id */
    /* Strings the encoder matches (SPM: pieces with '▁' as ' '; HF: vocab keys). */
    char **key;
    uint32_t *key_len;
    uint32_t max_key;
    struct vfy_strmap map;  /* key -> id, mergeable / matchable ids only */
    float *scores;          /* SPM [n_vocab] */
    int32_t byte_id[256];   /* SPM byte fallback / HF byte-level symbol per byte; -1 if none */
    struct vfy_pairmap pairs;   /* HF merges */
    /* HF added tokens matched in raw text before pre-tokenization. */
    int32_t *added;         /* ids, n_added */
    uint32_t n_added;
    bool hf_regex;          /* GPT-2 split (ByteLevel use_regex) */
    bool hf_prefix_space;   /* ByteLevel add_prefix_space */
    int hf_digits;          /* Llama-3 (3) / Qwen2 (1) split regex; 0: GPT-2's */
    bool strip_after_bos;   /* decode drops a leading ' ' right after BOS */
    /* No mergeable piece has a space right after a non-space, so no merge crosses
     * the boundary before a space that follows a non-space: SPM encodes such
     * words one by one (same result, a small hot heap instead of one per text). */
    bool split_words;
};

enum {
    VFY_TF_BYTE = 1,        /* <0xXX> token: decodes to one raw byte */
    VFY_TF_CONTROL = 2,     /* decodes to nothing (BOS, EOS, special added) */
    VFY_TF_NOMERGE = 4      /* never a merge result / piece match */
};

/* ---- vfy_tok.c ---- */
int vfy_strmap_init(struct vfy_strmap *m, uint32_t n);
void vfy_strmap_release(struct vfy_strmap *m);
/* Insert id under key[id]; an existing equal key keeps its (lower) id. */
void vfy_strmap_put(struct vfy_strmap *m, const struct vfy_tok *t, int32_t id);
int32_t vfy_strmap_get(const struct vfy_strmap *m, const struct vfy_tok *t, const char *s,
                       size_t len);
uint32_t vfy_hash_bytes(const char *s, size_t len);

/* UTF-8: length of the valid sequence at s (1..4), or 0 if s[0] does not start
 * one (stray continuation, overlong, surrogate, truncated). Sets *cp. */
size_t vfy_utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

/* The merge engine: a symbol list plus a max-heap of candidate adjacent pairs,
 * ordered by priority (higher first), then by the left symbol's position
 * (leftmost first). pair() says whether (a, b) merges, with what priority and
 * into which id. Stale heap entries are dropped when popped. */
typedef bool (*vfy_pair_fn)(const struct vfy_tok *t, int32_t a, int32_t b, double *prio,
                            int32_t *merged);
struct vfy_merge_sym { int32_t id, prev, next; };
struct vfy_merge_ent { double prio; int32_t left, right, a, b, merged; };
struct vfy_merge {
    struct vfy_merge_sym *sym;
    size_t sym_cap;
    struct vfy_merge_ent *heap;
    size_t heap_n, heap_cap;
};
void vfy_merge_release(struct vfy_merge *m);
/* Merge ids[0..n) in place; *n_out gets the count left. SB_ENOMEM on failure. */
int vfy_merge_run(struct vfy_merge *m, const struct vfy_tok *t, vfy_pair_fn pair,
                  int32_t *ids, size_t n, size_t *n_out);
/* The same over ids[0..n), merged word by word when t->split_words, a word
 * starting at each symbol `space` that follows another symbol. */
int vfy_merge_words(struct vfy_merge *m, const struct vfy_tok *t, vfy_pair_fn pair,
                    int32_t space, int32_t *ids, size_t n, size_t *n_out);
/* Whether no mergeable key has sp (sp_len bytes) right after a byte that is not
 * part of an sp run: sets t->split_words. */
void vfy_tok_check_words(struct vfy_tok *t, const char *sp, size_t sp_len);

/* A growable id buffer. */
struct vfy_ids { int32_t *v; size_t n, cap; };
int vfy_ids_push(struct vfy_ids *b, int32_t id);
int vfy_ids_reserve(struct vfy_ids *b, size_t extra);

/* Allocate the per-id arrays for n ids (dec, dec_len, flags, key, key_len). */
int vfy_tok_alloc_ids(struct vfy_tok *t, uint32_t n);

/* ---- vfy_tok_spm.c / vfy_tok_bpe.c ---- */
int vfy_tok_spm_build(struct vfy_tok *t, const struct fmt_vocab *v, struct sb_err *err);
int vfy_tok_spm_encode(const struct vfy_tok *t, const char *text, size_t len,
                       struct vfy_ids *out, struct sb_err *err);
int vfy_tok_hf_build(struct vfy_tok *t, const struct fmt_vocab *v, struct sb_err *err);
/* Byte length of the GPT-2 regex pre-token at s[0] (n > 0); exposed for tests. */
size_t vfy_tok_gpt2_next(const unsigned char *s, size_t n);
/* The same for the Llama-3 (ndig 3) / Qwen2 (ndig 1) Split regex. */
size_t vfy_tok_llama3_next(const unsigned char *s, size_t n, int ndig);
int vfy_tok_hf_encode(const struct vfy_tok *t, const char *text, size_t len,
                      struct vfy_ids *out, struct sb_err *err);

#endif
