/* fmt_hftok_impl.h: what fmt_hftok.c (SentencePiece-style tokenizer.json) and
 * fmt_hftok_bl.c (byte-level tokenizer.json <-> GGUF "gpt2") share: cJSON
 * builders that remember a failed allocation, and the atomic text writer. */
#ifndef FMT_HFTOK_IMPL_H
#define FMT_HFTOK_IMPL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct jb { bool bad; };      /* set by the first builder that could not allocate */

/* item added to parent under key (to the array parent when key is NULL); with
 * parent NULL, item itself. NULL (and b->bad) when item is NULL or not added. */
cJSON *fmt_hj_add(struct jb *b, cJSON *parent, const char *key, cJSON *item);
cJSON *fmt_hj_str(struct jb *b, cJSON *o, const char *k, const char *s);
cJSON *fmt_hj_num(struct jb *b, cJSON *o, const char *k, double x);
cJSON *fmt_hj_bool(struct jb *b, cJSON *o, const char *k, bool x);
cJSON *fmt_hj_null(struct jb *b, cJSON *o, const char *k);
cJSON *fmt_hj_obj(struct jb *b, cJSON *o, const char *k);
cJSON *fmt_hj_arr(struct jb *b, cJSON *o, const char *k);
/* {"type": type} added to o (under k, or to the array o) */
cJSON *fmt_hj_typed(struct jb *b, cJSON *o, const char *k, const char *type);
/* single_word / lstrip / rstrip / normalized false, and special */
void fmt_hj_added_flags(struct jb *b, cJSON *e, bool special);
/* root printed, with a final newline (sb_malloc'd, *len bytes), or NULL */
char *fmt_hj_text(cJSON *root, size_t *len);
/* o itself when its "type" is type, else the member of its list (a Sequence,
 * searched depth first) that is */
const cJSON *fmt_hj_find_typed(const cJSON *o, const char *list, const char *type);
/* s[0..n) is valid UTF-8 (no overlong forms, no surrogates) */
bool fmt_hj_utf8_valid(const unsigned char *s, size_t n);
/* len bytes of text written atomically to path (flags: FMT_OUT_*) */
int fmt_hftok_write_text(const char *path, const char *text, size_t len, unsigned flags,
                         struct sb_err *err);

#endif
