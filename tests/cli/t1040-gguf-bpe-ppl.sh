#!/usr/bin/env bash
# tinymoe (models/tinymoe) and moe25m (../shared/fixtures/models/moe25m), whose
# tokenizers are byte-level BPEs (256 byte tokens, <s>, </s>, no merges),
# converted to GGUF load in llama.cpp and score there as in subbit. The oracle
# is llama.cpp itself (skipped without it or the fixtures): llama-perplexity on
# the f32 GGUF, with an f32 KV cache and flash attention off, gives the
# perplexity subbit gives on the same file (mean NLL within 1e-4 nats; measured
# 3.9145 vs 3.91455 and 3.3333 vs 3.33327), and llama-tokenize gives subbit's
# ids for the text. A copy of tinymoe whose tokenizer_config.json says
# add_bos_token false makes a GGUF that adds no BOS, in llama.cpp and in subbit
# alike (3.8905 there, as llama-perplexity measures). llama-perplexity's result lines are sometimes missing from
# its log (t1000), so it is run again, up to 10 times, until they are there.
. "$(dirname "$0")/lib.sh"
need_fixtures
need_llama_cpp
: "${SUBBIT_TOK_IDS:?SUBBIT_TOK_IDS must name the tok_ids helper}"
[ -x "$LLAMA_BIN/llama-tokenize" ] || { echo "SKIP: llama-tokenize not found in '$LLAMA_BIN'"; exit 77; }
TXT=$FIXTURES/text/tinystories_val.txt
head -c 4000 "$TXT" >"$T/head.txt"

check() {   # NAME SRC CTX CHUNKS
  local name=$1 src=$2 ctx=$3 chunks=$4 g=$T/$1.gguf
  expect_exit 0 "$SUBBIT" convert "$src" -o "$g" --to f32 -q --json
  grep -q '"tokenizer_dropped":[[:space:]]*false' "$T/out" && [ ! -s "$T/err" ] && ok \
    || bad "$name: tokenizer dropped or warned: $(cat "$T/err")"
  expect_exit 0 "$SUBBIT" inspect "$g"
  grep -q "^tokenizer: gpt2 (byte-level BPE), 258 tokens, 0 merges, pre-tokenizer 'default'$" \
    "$T/out" && ok || bad "$name: $(grep tokenizer "$T/out")"
  local want= try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    "$LLAMA_BIN/llama-perplexity" -m "$g" -f "$TXT" -c "$ctx" --chunks "$chunks" -t 2 \
      -ctk f32 -ctv f32 -fa off >"$T/lp.log" 2>&1 || { bad "llama-perplexity $name"; tail -3 "$T/lp.log"; return; }
    want=$(grep -o "\[$chunks\][0-9.]*" "$T/lp.log" | tail -1 | sed 's/.*\]//')
    [ -n "$want" ] && break
  done
  expect_exit 0 "$SUBBIT" ppl "$g" --text "$TXT" --ctx "$ctx" --max-chunks "$chunks" -t 2 --json
  local got; got=$(json_num ppl)
  awk -v a="$got" -v b="$want" 'BEGIN { d = log(a / b); if (d < 0) d = -d; exit !(b > 0 && d <= 1e-4) }' \
    && ok || bad "$name: subbit ppl $got, llama.cpp $want"
  echo "$name: subbit $got, llama.cpp $want"
  "$LLAMA_BIN/llama-tokenize" -m "$g" -f "$T/head.txt" --ids --no-bos --no-escape --log-disable \
    2>/dev/null | tail -1 >"$T/want.txt" || bad "$name: llama-tokenize"
  "$SUBBIT_TOK_IDS" "$g" "$T/head.txt" >"$T/got.txt" || bad "$name: tok_ids"
  [ "$(wc -c <"$T/want.txt")" -gt 4000 ] && cmp -s "$T/want.txt" "$T/got.txt" && ok \
    || bad "$name: token ids differ from llama-tokenize's"
}
check tinymoe "$SUBBIT_SRC/models/tinymoe" 128 8
check moe25m "$FIXTURES/models/moe25m" 256 4
mkdir "$T/nobos" && cp "$SUBBIT_SRC"/models/tinymoe/* "$T/nobos/"
sed -i 's/"add_bos_token": true/"add_bos_token": false/' "$T/nobos/tokenizer_config.json"
check nobos "$T/nobos" 128 8
[ "$(gguf_u32 tokenizer.ggml.bos_token_id "$T/nobos.gguf")" = 256 ] && ok || bad "nobos: the BOS id is lost"
finish
