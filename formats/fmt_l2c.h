/* fmt_l2c.h: llama2.c checkpoints (.bin, versions 0 and 1) and tokenizer.bin
 * (layout: formats.md §4).
 *
 * fmt_l2c_open_model() (declared in fmt_model.h) maps a .bin and exposes its
 * weights under GGUF names with PyTorch-order shapes, all F32, data pointing
 * into the mapping (NULL with headers_only):
 *   token_embd.weight [V, dim]          blk.N.attn_norm.weight [dim]
 *   blk.N.attn_q.weight [dim, dim]      blk.N.attn_k.weight / attn_v [kv_dim, dim]
 *   blk.N.attn_output.weight [dim, dim] blk.N.ffn_norm.weight [dim]
 *   blk.N.ffn_gate.weight [hidden, dim] (w1)   blk.N.ffn_down.weight [dim, hidden] (w2)
 *   blk.N.ffn_up.weight [hidden, dim] (w3)     output_norm.weight [dim]
 *   output.weight [V, dim] only when the classifier is not shared.
 * Tensors are listed in file order. Q and K are in the interleaved (Meta)
 * RoPE layout, as in GGUF: no permutation is needed either way.
 *
 * Version 0 ("legacy", what run.c reads): 7 x int32 header, the weights, the
 * obsolete RoPE tables (2 x seq_len x head_size/2 floats), then wcls when
 * vocab_size < 0. The size must match exactly; a shared-classifier file may
 * also omit the RoPE tables (run.c never reads them then).
 * Version 1 ("ak42", 256-byte header): f32, norms first. Version 2 (int8
 * groups) is refused as unsupported.
 *
 * The tokenizer is opts->tokenizer_path, else tokenizer.bin beside the
 * model, else tok<vocab>.bin beside it (tok512.bin). A file found by that
 * search that does not fit the vocab size is skipped (vocab stays NONE); a
 * file named in opts must fit. */
#ifndef FMT_L2C_H
#define FMT_L2C_H

#include <stdint.h>

#include "fmt_model.h"

#define FMT_L2C_MAGIC 0x616b3432u     /* "ak42" as u32 LE: bytes '2' '4' 'k' 'a' */
#define FMT_L2C_HEADER_V1 256

/*! fmt_l2c_read_tokenizer() : read a llama2.c tokenizer.bin holding n_tokens
 *  pieces (the count is not stored: it comes from the model header) into v
 *  (released first). v gets FMT_VOCAB_SPM, the pieces as stored (spaces, not
 *  U+2581; BOS "\n<s>\n", EOS "\n</s>\n"), scores, bos 1, eos 2, unk 0,
 *  add_bos true, max_token_len from the header.
 *  @return SB_OK; SB_EIO if it cannot be read; SB_EFORMAT naming the file when
 *  a length runs past the end, a piece is longer than max_token_length, or
 *  bytes are left after n_tokens pieces; SB_ENOMEM. On failure v is released. */
int fmt_l2c_read_tokenizer(struct fmt_vocab *v, const char *path, uint32_t n_tokens,
                           struct sb_err *err);

/*! fmt_l2c_write_tokenizer() : write v (an SPM vocab, either spelling) as a
 *  llama2.c tokenizer.bin, the way llama2.c's tokenizer.py exports: U+2581
 *  becomes a space, BOS "\n<s>\n", EOS "\n</s>\n", max_token_length = the
 *  longest piece written. Atomic (fmt_out); flags: FMT_OUT_FORCE.
 *  @return SB_OK, SB_EINVAL for a vocab without pieces, SB_EIO, SB_ENOMEM. */
int fmt_l2c_write_tokenizer(const struct fmt_vocab *v, const char *path, unsigned flags,
                            struct sb_err *err);

#endif
