#!/usr/bin/env bash
# subbit mem as a new user meets it (issue 15): a Hugging Face id names its
# preset; a folder holding only config.json + model.safetensors.index.json is
# sized from the index's total_size; the default context stops at the model's,
# one beyond it warns (and --measure refuses it); --measure takes -t; one unit
# system (KiB/MiB/GiB); the logits' cost is spelled out.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
# the same document but for "model" (what was typed)
expect_exit 0 "$SUBBIT" mem Mixtral-8x7B --json
grep -Ev '"(model|preset|preset_match)":' "$T/out" >"$T/preset.json"
grep -Eq '"name":[[:space:]]*"Mixtral-8x7B"' "$T/preset.json" && ok || bad "preset name"
for id in mistralai/Mixtral-8x7B-v0.1 https://huggingface.co/mistralai/Mixtral-8x7B-v0.1 MISTRALAI/mixtral-8x7b-v0.1/; do
  expect_exit 0 "$SUBBIT" mem "$id" --json
  grep -Ev '"(model|preset|preset_match)":' "$T/out" | cmp -s - "$T/preset.json" && ok || bad "$id is not the Mixtral-8x7B preset"
done
expect_exit 1 "$SUBBIT" mem mistralai/Mixtral-8x7B-Nope
expect_err_line "no such file, folder or preset"

# before download: config.json and the index of two shards, no shard
mkdir "$T/dl"
cp "$M/config.json" "$T/dl/"
printf '{"metadata":{"total_size":5254400},"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}}' \
  >"$T/dl/model.safetensors.index.json"
expect_exit 0 "$SUBBIT" mem "$T/dl" --json
grep -Eq '"from":[[:space:]]*"model.safetensors.index.json"' "$T/out" && ok || bad "index: no stored.from"
# 5,254,400 bytes over tinymoe's 2,627,200 parameters: 16 bits each
grep -Eq '"bits_per_param":[[:space:]]*16,?$' "$T/out" && ok || bad "index: bits/param"
grep -Eq '"weights_bytes":[[:space:]]*5254400,' "$T/out" && ok || bad "index: weights in the total"
grep -Eq '"weights_encoding":[[:space:]]*"stored"' "$T/out" && ok || bad "index: weights_encoding"

# the context: tinymoe's is 512; the default (4096) stops there and says so
expect_exit 0 "$SUBBIT" mem "$M"
grep -Eq '^KV cache .* for ctx 512 \(the model.s context\)' "$T/out" && ok || bad "default ctx: $(grep 'KV cache' "$T/out")"
[ ! -s "$T/err" ] && ok || bad "default ctx warned"
# the logits: ppl's chunks score ctx - ctx/2 + 1 = 257 positions x 258 tokens x 4 bytes = 265,224 B
grep -Eq '^  logits +257 scored positions x 258 vocabulary x 4 bytes \(f32\) = 259\.01 KiB$' "$T/out" \
  && ok || bad "logits line: $(grep '^  logits' "$T/out")"
expect_exit 0 "$SUBBIT" mem "$M" --ctx 2048 --json
expect_err_line "^subbit mem: warning: --ctx 2048 is above the model's context \(512\)$"
grep -Eq '"model_ctx":[[:space:]]*512,' "$T/out" && ok || bad "model_ctx"
expect_exit 2 "$SUBBIT" mem "$M" --ctx 2048 --measure -t 1
expect_err_line "^subbit mem: --measure: --ctx 2048 is above the model's context \(512\)"
# one unit system: binary prefixes only
expect_exit 0 "$SUBBIT" mem Llama-2-70B --ctx 4096
if grep -Eq '[0-9] (GB|MB|KB|kB)\b' "$T/out"; then bad "decimal units: $(grep -E '[0-9] (GB|MB|KB)' "$T/out" | head -2)"; else ok; fi
grep -Eq 'GiB' "$T/out" && ok || bad "no GiB"
# Gemma-2 (google/gemma-2-9b's config.json): tied by default, 4 norms a layer,
# even layers windowed. By hand: embeddings 256000 x 3584 = 917,504,000; a layer
# q,o 2 x 3584 x 4096 + k,v 2 x 3584 x 2048 + FFN 3 x 3584 x 14336 + 4 x 3584 norms
# = 198,195,200; x 42 + embeddings + final norm 3584 = 9,241,705,984 (the model
# card's 9.24 B; +9.9% before: an untied output). KV f16 per token 42 x 2 x 8 x 256
# x 2 = 344,064 B; at 8K, 21 layers hold 8192 tokens and 21 the window of 4096:
# 21 x 12288 x 8192 B = 2,113,929,216 (-33% before: all 42 windowed).
printf '{"model_type":"gemma2","hidden_size":3584,"intermediate_size":14336,"num_hidden_layers":42,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":256,"vocab_size":256000,"max_position_embeddings":8192,"sliding_window":4096}' >"$T/gemma2.json"
for g in "$T/gemma2.json" google/gemma-2-9b; do
  expect_exit 0 "$SUBBIT" mem "$g" --ctx 8192 --json
  grep -Eq '"total":[[:space:]]*9241705984,' "$T/out" && ok || bad "$g: Gemma-2 parameters"
  grep -Eq '"tied_embeddings":[[:space:]]*true' "$T/out" && ok || bad "$g: Gemma-2 not tied"
  grep -Eq '"norms":[[:space:]]*605696,' "$T/out" && ok || bad "$g: Gemma-2 norms (4 x 42 + 1) x 3584"
  grep -Eq '"bytes":[[:space:]]*2113929216,' "$T/out" && ok || bad "$g: Gemma-2 KV at 8K"
  grep -Eq '"window_layers":[[:space:]]*21$' "$T/out" && ok || bad "$g: Gemma-2 windowed layers"
done

# --measure with -t (the child ppl gets it); needs the reference core to run
expect_exit 0 "$SUBBIT" mem "$M" --measure --ctx 64 -t 1 --json
grep -q '"peak_rss"' "$T/out" && ok || bad "--measure -t: no peak RSS"
finish
