/* fmt_gguf.h: GGUF v2/v3 reading and writing (layout: formats.md §2).
 *
 * Reading goes through fmt_model_open() (or fmt_gguf_open_model(), declared
 * in fmt_model.h); writing through fmt_writer_open() with FMT_CONT_GGUF (or
 * fmt_gguf_writer_open(), declared in fmt_writer.h). This header adds the
 * constants and the few helpers other modules want.
 *
 * What the reader gives (struct fmt_model):
 *   - tensors in tensor-info order; shape in PyTorch order (the REVERSE of
 *     GGUF's ne[]: ne[0], the row length, is shape[ndim-1]); dtype from the
 *     ggml type id; nbytes; file_offset = data_start + info offset; data
 *     borrowed from the mapping (NULL with headers_only).
 *   - every key/value pair in file order in m->kv. Numeric arrays point into
 *     the mapping (arr, arr_owned NULL; NOT aligned: read them with memcpy),
 *     or are copied (arr_owned) with headers_only. String arrays are copied.
 *   - m->gguf_alignment; m->arch from `<general.architecture>.*` keys for
 *     llama and qwen2moe; m->vocab (FMT_VOCAB_SPM) when tokenizer.ggml.model
 *     is "llama" (tokens as stored, with U+2581 for spaces).
 *
 * The reader enforces what ggml's gguf_init_from_reader enforces (formats.md
 * §2.3), including the strict rule that data appears in tensor-info order,
 * back to back with alignment padding, and llama.cpp's rule that every tensor
 * lies inside the file. Big-endian files are refused.
 *
 * What the writer writes: magic, version 3, counts, opts->kv in order, then
 * the keys fmt_gguf_kv_from_arch() builds from opts->arch (if given and the kv
 * has no general.architecture) and opts->vocab (if SPM and the kv has no
 * tokenizer.ggml.tokens); then
 * general.alignment if the alignment is not 32 and the kv lacks it; then the
 * tensor infos (dims = reversed shape, offsets back to back, each padded to
 * the alignment), zero padding, and the data in plan order, each tensor
 * padded to the alignment with zeros. This is what ggml's gguf_write_to_file
 * produces for the same kv and tensors, so read + write is byte-identical. */
#ifndef FMT_GGUF_H
#define FMT_GGUF_H

#include <stdint.h>

#include "fmt_model.h"

#define FMT_GGUF_MAGIC "GGUF"
#define FMT_GGUF_VERSION 3u
#define FMT_GGUF_DEFAULT_ALIGNMENT 32u
#define FMT_GGUF_MAX_NAME 64          /* GGML_MAX_NAME: names are < 64 bytes */
#define FMT_GGUF_MAX_STRING (1ull << 30)   /* ggml's limit on one string */
#define FMT_GGUF_MAX_ARRAY (1ull << 30)    /* ggml's limit on array elements */

/*! fmt_gguf_kv_type_name() : "u8", "i32", "f32", "bool", "string", "array", ...;
 *  "?" for an unknown id. */
const char *fmt_gguf_kv_type_name(int type);

/*! fmt_gguf_kv_type_size() : bytes of one scalar of the type (1..8); 0 for
 *  string, array and unknown ids. */
unsigned fmt_gguf_kv_type_size(int type);

/*! fmt_gguf_llama_token_type() : the GGUF token type llama.cpp's
 *  convert-llama2c-to-ggml gives a SentencePiece piece when the tokenizer
 *  carries no types: 2 unknown (unk_id), 3 control (bos_id, eos_id), 6 byte
 *  ("<0xHH>"), 1 normal otherwise. */
int32_t fmt_gguf_llama_token_type(const struct fmt_vocab *v, uint32_t id);

/*! fmt_gguf_kv_from_arch() : the GGUF metadata of an architecture and a
 *  vocab, as llama.cpp's converters type it (formats.md §2.6, §2.9), built in
 *  this one place for the writer and for convert: general.architecture
 *  ("llama", or "qwen2moe" for Qwen2-MoE) and the {arch}.* keys of a (if not
 *  NULL; feed_forward_length is the dense width, else the experts'), and for
 *  an SPM vocab v (or a SentencePiece-style tokenizer.json, read as one)
 *  tokenizer.ggml.{model="llama", tokens in SentencePiece spelling, scores,
 *  token_type, bos/eos/unknown ids, add_bos_token}. what names the output in
 *  messages. @return SB_OK and *kv[*n] (fmt_kv_release each, then sb_free);
 *  SB_ENOMEM. */
int fmt_gguf_kv_from_arch(const struct fmt_arch *a, const struct fmt_vocab *v, const char *what,
                          struct fmt_kv **kv, size_t *n, struct sb_err *err);

/*! fmt_gguf_kv_build() : GGUF metadata for a model converted from src. A
 *  GGUF source: its kv copied (general.file_type, general.quantization_version
 *  and general.alignment left out: the caller sets them). Other sources:
 *  fmt_gguf_kv_from_arch(src->arch, src->vocab). @return SB_OK and *kv[*n];
 *  SB_EUNSUPPORTED when src has no architecture; SB_ENOMEM. */
int fmt_gguf_kv_build(const struct fmt_model *src, struct fmt_kv **kv, size_t *n,
                      struct sb_err *err);

#endif
