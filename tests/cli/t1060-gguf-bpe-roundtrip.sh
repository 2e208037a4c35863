#!/usr/bin/env bash
# Byte-level BPE tokenizers through GGUF and back, without llama.cpp:
# tinymoe (HF, bf16) -> GGUF -> HF -> GGUF gives the same GGUF byte for byte
# (tokens, types, merges, special ids, add_bos/eos, pre, and the weights), the
# HF folder in between has a tokenizer.json and tokenizer_config.json that
# tokenize as the original does, and ppl on all three scores the same (the
# GGUF within 1e-6: its own layout computes in another order);
# quant carries the tokenizer as convert does; a GGUF tokenizer subbit cannot
# read (tokenizer.ggml.model "bert") is said to be dropped when writing HF.
. "$(dirname "$0")/lib.sh"
: "${SUBBIT_TOK_IDS:?SUBBIT_TOK_IDS must name the tok_ids helper}"
M=$SUBBIT_SRC/models/tinymoe
TEXT=$SUBBIT_SRC/models/demo.txt
mkdir "$T/a" "$T/b"
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/a/tinymoe.gguf" --to bf16 -q
[ ! -s "$T/err" ] && ok || bad "a warning: $(cat "$T/err")"
expect_exit 0 "$SUBBIT" convert "$T/a/tinymoe.gguf" -o "$T/b/tinymoe" --to bf16 -q --json
grep -q '"tokenizer_dropped":[[:space:]]*false' "$T/out" && [ ! -s "$T/err" ] && ok \
  || bad "GGUF -> HF: tokenizer dropped or warned: $(cat "$T/err")"
[ -f "$T/b/tinymoe/tokenizer.json" ] && [ -f "$T/b/tinymoe/tokenizer_config.json" ] && ok \
  || bad "GGUF -> HF wrote no tokenizer.json / tokenizer_config.json"
grep -q '"add_bos_token":[[:space:]]*true' "$T/b/tinymoe/tokenizer_config.json" && ok || bad "add_bos_token lost"
expect_exit 0 "$SUBBIT" convert "$T/b/tinymoe" -o "$T/b/tinymoe.gguf" --to bf16 -q
cmp -s "$T/a/tinymoe.gguf" "$T/b/tinymoe.gguf" && ok || bad "HF -> GGUF -> HF -> GGUF changed the file"
[ "$(gguf_u32 tokenizer.ggml.bos_token_id "$T/a/tinymoe.gguf")" = 256 ] && \
  [ "$(gguf_u32 tokenizer.ggml.eos_token_id "$T/a/tinymoe.gguf")" = 257 ] && ok || bad "bos/eos ids"
# the same ids for a text (every byte value, <s> inside), the same perplexity, with the
# reference kernels: where the CPU has AVX512-BF16 the fast path rounds the activations of
# bf16 weights to bf16 (as llama.cpp does), and the two layouts' last-bit differences then
# round apart (the GGUF's perplexity 2.5e-4 off the HF one's, measured)
{ head -c 2000 "$TEXT"; printf 'a</s>b<s>'; printf "$(printf '\\%03o' $(seq 1 255))"; } >"$T/t.txt"
for m in "$M" "$T/a/tinymoe.gguf" "$T/b/tinymoe"; do
  "$SUBBIT_TOK_IDS" "$m" "$T/t.txt" >"$T/ids.$(basename "$(dirname "$m")")" || bad "tok_ids $m"
  SUBBIT_REF_KERNELS=1 expect_exit 0 "$SUBBIT" ppl "$m" --text "$TEXT" --ctx 128 --max-chunks 2 -t 2 --json
  json_num ppl >>"$T/ppls"
done
cmp -s "$T/ids.models" "$T/ids.a" && cmp -s "$T/ids.models" "$T/ids.b" && ok || bad "token ids differ"
grep -q '^\[79, 110, 99, 101, ' "$T/ids.models" && grep -q ' 257, 98, 256, 1, 2, ' "$T/ids.models" && ok \
  || bad "ids of the original: $(head -c 80 "$T/ids.models")"
# (the GGUF computes in its own layout: the last digits may move)
awk 'NR == 1 { a = $1 } NR == 2 { g = $1 } NR == 3 { b = $1 }
     END { d = log(g / a); if (d < 0) d = -d; exit !(NR == 3 && a == b && d < 1e-6) }' "$T/ppls" \
  && ok || bad "perplexities differ: $(tr '\n' ' ' <"$T/ppls")"
# quant carries it too (no warning; gpt2 in the output)
expect_exit 0 "$SUBBIT" quant "$M" -o "$T/q.gguf" --to q8_0 --method rtn --calib "$TEXT" \
  --calib-tokens 256 --calib-ctx 128 -q --json
grep -q '"tokenizer_dropped":[[:space:]]*false' "$T/out" && [ ! -s "$T/err" ] && ok \
  || bad "quant: tokenizer dropped or warned: $(cat "$T/err")"
expect_exit 0 "$SUBBIT" inspect "$T/q.gguf"
grep -q "^tokenizer: gpt2 (byte-level BPE), 258 tokens, 0 merges, pre-tokenizer 'default'$" "$T/out" \
  && ok || bad "quant output: $(grep tokenizer "$T/out")"
# a GGUF tokenizer subbit does not read: HF output says it drops it
LC_ALL=C sed 's/\x04\x00\x00\x00\x00\x00\x00\x00gpt2/\x04\x00\x00\x00\x00\x00\x00\x00bert/' \
  "$T/a/tinymoe.gguf" >"$T/bert.gguf"
expect_exit 0 "$SUBBIT" convert "$T/bert.gguf" -o "$T/bert" --to bf16 -q --json
expect_err_line "^subbit convert: warning: .*bert.gguf: its tokenizer \(tokenizer.ggml.model 'bert'\) cannot be carried: .*bert has no tokenizer$"
grep -q '"tokenizer_dropped":[[:space:]]*true' "$T/out" && ok || bad "no tokenizer_dropped in --json"
[ ! -e "$T/bert/tokenizer.json" ] && ok || bad "a tokenizer.json for a dropped tokenizer"
# into GGUF it travels as it is (the keys are copied)
expect_exit 0 "$SUBBIT" convert "$T/bert.gguf" -o "$T/bert2.gguf" --to bf16 -q
[ ! -s "$T/err" ] && LC_ALL=C grep -qaF 'bert' "$T/bert2.gguf" && ok || bad "GGUF -> GGUF: $(cat "$T/err")"
finish
