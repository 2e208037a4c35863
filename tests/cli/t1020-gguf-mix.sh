#!/usr/bin/env bash
# convert --to Q4_K_M and the other llama-quantize mixes by name
# (docs/ggml-mixes.md): the output file is byte for byte llama-quantize's
# (81ff7abe5) from the same f32 GGUF, for stories260K (rows of 64/172: the
# fallbacks), a synth llama (rows of 256, GQA 2) and a synth Mixtral with 8
# experts (its attn_k/attn_v/attn_output cases). The comparison needs
# llama.cpp (skipped without it); the refusals before it do not.
. "$(dirname "$0")/lib.sh"
need_fixtures
S260=$FIXTURES/models/stories260K.gguf
# IQ4_NL on stories260K: ffn_down rows of 172 fit neither iq4_nl nor a fallback
expect_exit 1 "$SUBBIT" convert "$S260" -o "$T/x.gguf" --to IQ4_NL -q
expect_err_line "^subbit convert: .*stories260K.gguf: tensor 'blk.0.ffn_down.weight': rows of 172 fit neither IQ4_NL's type nor a fallback"
expect_no_file "$T/x.gguf"
# a mix is for GGUF output
expect_exit 1 "$SUBBIT" convert "$S260" -o "$T/x.safetensors" --to Q4_K_M -q
expect_err_line "x.safetensors: llama.cpp's mix Q4_K_M is for GGUF output"
expect_no_file "$T/x.safetensors"
need_llama_cpp

"$SUBBIT" synth --arch llama --layers 8 --dim 256 --hidden 512 --heads 4 --kv-heads 2 -o "$T/syn" -q \
  && "$SUBBIT" convert "$T/syn" -o "$T/syn.gguf" --to f32 -q >/dev/null || bad "synth llama"
"$SUBBIT" synth --arch mixtral --layers 2 --dim 256 --hidden 256 --heads 4 --kv-heads 1 --experts 8 \
  --top-k 2 -o "$T/mix" -q && "$SUBBIT" convert "$T/mix" -o "$T/mix.gguf" --to f32 -q >/dev/null || bad "synth mixtral"

same() {   # NAME SRC MIX
  "$LLAMA_BIN/llama-quantize" "$2" "$T/want.gguf" "$3" 2 >"$T/lq.log" 2>&1 \
    || { bad "llama-quantize $1 $3"; tail -3 "$T/lq.log"; return; }
  expect_exit 0 "$SUBBIT" convert "$2" -o "$T/got.gguf" --to "$3" -f -q
  cmp -s "$T/got.gguf" "$T/want.gguf" && ok || bad "$1 $3: not llama-quantize's bytes"
}
for m in Q4_K_M Q5_K_M Q4_K_S Q6_K Q3_K_M; do same stories "$S260" $m; done
for m in Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS; do
  same syn "$T/syn.gguf" $m
done
for m in Q4_K_M Q3_K_L Q5_K_M IQ4_XS; do same mix8 "$T/mix.gguf" $m; done
# 80 layers with grouped K/V heads: llama.cpp sizes it as 70B and gives attn_v
# q5_K where the mix says q3_K or q4_K (Q2_K, Q3_K_S: seen differing without the rule)
rm -f "$T"/syn.gguf "$T"/mix.gguf
"$SUBBIT" synth --arch llama --layers 80 --dim 256 --hidden 256 --heads 4 --kv-heads 1 -o "$T/s80" -q \
  && "$SUBBIT" convert "$T/s80" -o "$T/s80.gguf" --to f32 -q >/dev/null || bad "synth llama 80 layers"
rm -rf "$T/s80"
for m in Q2_K Q3_K_S Q4_K_S; do same s80 "$T/s80.gguf" $m; done
finish
