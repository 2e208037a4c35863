#!/usr/bin/env bash
# subbit mem --runtime hf (issue 15): transformers' memory from its documented
# behaviour (no torch where this was written, so NOT measured; --help and the
# README say so), checked against numbers worked by hand here. Also the
# runtime flags' rules: llama.cpp's flags need --runtime llama.cpp, --measure
# needs subbit's, hf takes float weights only and says it ignores --kv-type.
. "$(dirname "$0")/lib.sh"
# a llama: hidden 256, 2 layers, 4 heads of 64 (2 KV heads), FFN 512, vocab 1000
cfg() { printf '{"model_type":"llama","hidden_size":256,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":512,"vocab_size":1000,"max_position_embeddings":4096%s}' "$1"; }
cfg ',"torch_dtype":"bfloat16"' >"$T/bf16.json"
cfg ',"torch_dtype":"float32"' >"$T/f32.json"
cfg '' >"$T/none.json"
j() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$T/out" "$1"; }
# want FIELD VALUE
want() { local got; got=$(j "$1"); [ "$got" = "$2" ] && ok || bad "$name: $1 = $got, by hand $2"; }
# By hand, ctx 1024 x 2 sequences. Parameters: embeddings and output 2 x 1000 x 256
# = 512,000; a layer q, o 2 x 256 x 256 + k, v 2 x 128 x 256 + FFN 3 x 512 x 256 +
# 2 norms x 256 = 590,336; x 2 + final norm 256: 1,692,928.
# bf16 (2 bytes): weights 3,385,856; KV 2 layers x (K + V) x 128 x 2 B x 1024 x 2
# = 2,097,152; scores (one layer) 1024^2 x 2 x (4 heads x (2 + 4 + 2) + 2 mask)
# = 71,303,168; logits 1000 x 1024 x 2 x 4 (f32) = 8,192,000; activations
# 1024 x 2 x (4 x 256 + 3 x 512) x 2 = 10,485,760; total 95,463,936.
for f in bf16 none; do
  name=$f
  expect_exit 0 "$SUBBIT" mem "$T/$f.json" --runtime hf --ctx 1024 --seqs 2 --json
  want runtime.profile hf
  want runtime.dtype "$( [ $f = bf16 ] && echo bf16 || echo f16)"
  want params.total 1692928
  want weights_bytes 3385856
  want kv_cache.bytes 2097152
  want runtime.attention_scores 71303168
  want runtime.logits 8192000
  want runtime.logits_positions 2048
  want runtime.activations 10485760
  want runtime.process_baseline 0
  want runtime.measured False
  want total 95463936
done
# float32: weights 6,771,712; KV 4,194,304; scores 1024^2 x 2 x (4 x (8 + 4) + 4)
# = 109,051,904; logits 8,192,000; activations 20,971,520; total 149,181,440.
# --to f32 on the bf16 config is the same.
for a in "$T/f32.json" "$T/bf16.json --to f32"; do
  name=$a
  expect_exit 0 "$SUBBIT" mem $a --runtime hf --ctx 1024 --seqs 2 --json
  want runtime.dtype f32
  want weights_bytes 6771712
  want kv_cache.bytes 4194304
  want runtime.attention_scores 109051904
  want runtime.activations 20971520
  want total 149181440
done
# MLA: transformers caches every head's K (nope + rope) and V, not the latent:
# DeepSeek-V3 61 layers x 128 heads x (192 + 128) x 2 B = 4,997,120 B a token
# (subbit's and llama.cpp's latent: 61 x 576 x 2 = 70,272)
name=DeepSeek-V3
expect_exit 0 "$SUBBIT" mem DeepSeek-V3 --runtime hf --ctx 4096 --json
want kv_cache.bytes_per_token 4997120
expect_exit 0 "$SUBBIT" mem DeepSeek-V3 --ctx 4096 --json
want kv_cache.bytes_per_token 70272
# the table says what it is and that it was not measured
expect_exit 0 "$SUBBIT" mem "$T/bf16.json" --runtime hf --ctx 1024 --seqs 2
grep -Eq '^runtime +transformers \(eager attention, bf16; not measured\)' "$T/out" && ok || bad "table: $(grep '^runtime' "$T/out")"
grep -Eq '^  scores +one layer: 4 heads x 1024\^2 x 2 seq, in bf16 \+ its fp32 softmax \+ the cast back, and the mask = 68\.00 MiB$' "$T/out" \
  && ok || bad "scores line: $(grep '^  scores' "$T/out")"
"$SUBBIT" mem --help | grep -q "NOT measured" && ok || bad "--help does not say hf is not measured"
grep -q "not measured" "$SUBBIT_SRC/README.md" && ok || bad "README does not say hf is not measured"
# rules
expect_exit 0 "$SUBBIT" mem "$T/bf16.json" --runtime hf --kv-type q8_0
expect_err_line "^subbit mem: warning: --kv-type ignored: transformers keeps the KV cache in the model's dtype$"
expect_exit 1 "$SUBBIT" mem "$T/bf16.json" --runtime hf --to q4_0
expect_err_line "^subbit mem: bf16.json: transformers holds weights in f32, f16 or bf16, not 'q4_0'$"
expect_exit 2 "$SUBBIT" mem "$T/bf16.json" --flash-attn off
expect_err_line "^subbit mem: --flash-attn is llama.cpp's: it needs --runtime llama.cpp"
expect_exit 2 "$SUBBIT" mem "$T/bf16.json" --runtime hf --ubatch 64
expect_err_line "^subbit mem: --ubatch is llama.cpp's: it needs --runtime llama.cpp"
expect_exit 2 "$SUBBIT" mem "$T/bf16.json" --runtime llama.cpp --measure
expect_err_line "^subbit mem: --measure runs subbit's core: it needs --runtime subbit"
expect_exit 2 "$SUBBIT" mem "$T/bf16.json" --runtime vllm
expect_err_line "^subbit mem: --runtime expects subbit, llama.cpp or hf, got 'vllm'"
# the default profile is subbit's, and says so
expect_exit 0 "$SUBBIT" mem "$T/bf16.json" --json
name=default; want runtime.profile subbit
finish
