/* fmt_st.h: safetensors files and Hugging Face folders (formats.md §1, §5).
 *
 * Reading (fmt_st_open_model, declared in fmt_model.h): a .safetensors file,
 * or a folder holding model.safetensors, or model.safetensors.index.json and
 * its shards, or a single .gguf / .subbit (delegated). Every rule of the
 * reference reader is enforced (formats.md §1.4) and duplicate names are
 * rejected. compressed-tensors int8 weights (pack-quantized, or plain I8 with
 * weight_scale) are presented as one SB_DTYPE_INT8 tensor `P.weight`.
 *
 * Writing (fmt_st_writer_open, declared in fmt_writer.h): a single
 * .safetensors file, or an HF folder (sharded when shard_size > 0); INT8
 * tensors are written in the compressed-tensors pack-quantized layout and
 * config.json gets the matching quantization_config.
 *
 * The helpers below are shared by the reader and the writer (and tests). */
#ifndef FMT_ST_H
#define FMT_ST_H

#include <stddef.h>
#include <stdint.h>

#include "fmt_model.h"
#include "fmt_writer.h"

/* Largest header the reference reader and writer accept (formats.md §1.4 rule 2). */
#define FMT_ST_MAX_HEADER 100000000u

/*! fmt_st_pack_int8_row() : pack cols int8 codes into ceil(cols/4) int32
 *  words, compressed-tensors style: byte u = q + 128 (offset binary), element
 *  4k+i in bits 8i..8i+7, the tail zero-padded. Output is little-endian. */
void fmt_st_pack_int8_row(const int8_t *q, size_t cols, uint8_t *words);
/*! fmt_st_unpack_int8_row() : the inverse: ceil(cols/4) words to cols codes. */
void fmt_st_unpack_int8_row(const uint8_t *words, size_t cols, int8_t *q);

/*! fmt_st_dtype_align() : the reference writer's sort class for dt (formats.md
 *  §1.3): element bytes for byte-sized scalars (8, 4, 2, 1), 0 for sub-byte
 *  scalars, -1 for BOOL (last). Encodings safetensors cannot hold: -2. */
int fmt_st_dtype_align(enum sb_dtype dt);

#endif
