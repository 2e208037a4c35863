#!/usr/bin/env bash
# GGUF files llama-quantize made with the other ggml types (q4_K, q5_K, q6_K,
# iq4_nl, and the q5_0/q5_1/q8_0 fallbacks of stories260K's short rows) are
# scored, verified, run and inspected by subbit. The oracle is llama.cpp itself
# (skipped without it): llama-perplexity on llama-quantize's f32-dequantized copy
# (--allow-requantize ... F32), with an f32 KV cache and flash attention off, gives the same perplexity
# as subbit on the quantized file, mean NLL within 1e-4 nats; subbit on the
# f32 copy gives exactly the same number as on the quantized file (our
# dequantizers equal ggml's bit for bit). (With llama.cpp's CPU flash attention
# on, its own number moves by ~1e-4 relative on stories260K: 3.8478 vs 3.8482.)
# llama-perplexity's result lines are sometimes missing from its log (exit 0;
# its logger thread drops them at exit about one run in three, also with
# --log-file), so it is run again, up to 10 times, until they are there.
# Since issue 14, q4_0 and q8_0 tensors compute with 8-bit activations (ggml's
# vec_dot approach), so a file holding them (stories260K's fallbacks) no longer
# scores exactly as its f32 copy: for those files both comparisons allow 1e-3
# in mean NLL (measured 6e-5 .. 4.3e-4); files without them keep 1e-4 and exact.
# stories260K: IQ4_NL is refused by llama-quantize (ffn_down rows of 172 have
# no iq4_nl fallback), so ffn_down is made f16 with --tensor-type.
. "$(dirname "$0")/lib.sh"
need_fixtures
need_llama_cpp
TXT=$FIXTURES/text/tinystories_val.txt

# a synthetic llama whose rows are multiples of 256 (real k-quant blocks), with
# stories260K's SentencePiece vocab beside it as tokenizer.bin (llama-perplexity needs one)
"$SUBBIT" synth --arch llama --layers 2 --dim 256 --hidden 512 --heads 4 --kv-heads 2 --vocab 512 \
  -o "$T/syn" -q || bad "synth"
cp "$FIXTURES/models/tok512.bin" "$T/syn/tokenizer.bin"
expect_exit 0 "$SUBBIT" convert "$T/syn" -o "$T/syn.gguf" --to f32 -q

check() {   # NAME SRC MIX CHUNKS [llama-quantize options]
  local name=$1 src=$2 mix=$3 chunks=$4; shift 4
  local q=$T/$name-$mix.gguf f=$T/$name-$mix.f32.gguf
  "$LLAMA_BIN/llama-quantize" "$@" "$src" "$q" "$mix" 2 >"$T/lq.log" 2>&1 \
    || { bad "llama-quantize $name $mix"; tail -3 "$T/lq.log"; return; }
  "$LLAMA_BIN/llama-quantize" --allow-requantize "$q" "$f" F32 2 >"$T/lq.log" 2>&1 \
    || { bad "llama-quantize $name $mix -> F32"; return; }
  local want= try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    "$LLAMA_BIN/llama-perplexity" -m "$f" -f "$TXT" -c 128 --chunks "$chunks" -t 2 \
      -ctk f32 -ctv f32 -fa off >"$T/lp.log" 2>&1 || { bad "llama-perplexity $name $mix"; return; }
    want=$(grep -o "\[$chunks\][0-9.]*" "$T/lp.log" | tail -1 | sed 's/.*\]//')
    [ -n "$want" ] && break
  done
  expect_exit 0 "$SUBBIT" ppl "$q" --text "$TXT" --ctx 128 --max-chunks "$chunks" -t 2 --json
  local got; got=$(json_num ppl)
  expect_exit 0 "$SUBBIT" ppl "$f" --text "$TXT" --ctx 128 --max-chunks "$chunks" -t 2 --json
  local got32; got32=$(json_num ppl)
  local tol=1e-4 act8=0
  expect_exit 0 "$SUBBIT" inspect "$q"
  grep -qE " (q4_0|q8_0) " "$T/out" && { tol=1e-3; act8=1; }
  awk -v a="$got" -v b="$want" -v t="$tol" 'BEGIN { d = log(a / b); if (d < 0) d = -d; exit !(b > 0 && d <= t) }' \
    && ok || bad "$name $mix: subbit ppl $got, llama.cpp $want on the f32 copy (tolerance $tol)"
  if [ $act8 = 1 ]; then
    awk -v a="$got" -v b="$got32" 'BEGIN { d = log(a / b); if (d < 0) d = -d; exit !(b > 0 && d <= 1e-3) }' \
      && ok || bad "$name $mix: ppl $got quantized, $got32 on the f32 copy"
  else
    [ -n "$got" ] && [ "$got" = "$got32" ] && ok || bad "$name $mix: ppl $got quantized, $got32 on the f32 copy"
  fi
  echo "$name $mix: subbit $got, llama.cpp $want"
}
check stories "$FIXTURES/models/stories260K.gguf" Q4_K_M 10
check stories "$FIXTURES/models/stories260K.gguf" Q5_K_M 10
check stories "$FIXTURES/models/stories260K.gguf" Q6_K 10
check stories "$FIXTURES/models/stories260K.gguf" IQ4_NL 10 --tensor-type ffn_down=f16
check syn "$T/syn.gguf" Q4_K_M 4
check syn "$T/syn.gguf" Q5_K_M 4
check syn "$T/syn.gguf" Q6_K 4
check syn "$T/syn.gguf" IQ4_NL 4

# inspect names the types; verify against the f32 copy: the same predictions
expect_exit 0 "$SUBBIT" inspect "$T/syn-Q4_K_M.gguf"
for ty in q4_k q6_k; do grep -q " $ty " "$T/out" && ok || bad "inspect does not list $ty"; done
expect_exit 0 "$SUBBIT" verify --ref "$T/syn-Q4_K_M.f32.gguf" --model "$T/syn-Q4_K_M.gguf" \
  --text "$TXT" --ctx 128 --max-chunks 2 -t 2 --json
top1=$(json_num top1_agreement)
awk -v t="$top1" 'BEGIN { exit !(t == 1) }' && ok || bad "verify top-1 agreement '$top1' is not 1"
# run: greedy text from the quantized file is the f32 copy's
"$SUBBIT" run "$T/stories-Q4_K_M.gguf" -p "Once upon a time" -n 24 --temp 0 -t 2 -q >"$T/a.txt" \
  && "$SUBBIT" run "$T/stories-Q4_K_M.f32.gguf" -p "Once upon a time" -n 24 --temp 0 -t 2 -q >"$T/b.txt" \
  && [ "$(wc -c <"$T/a.txt")" -gt 20 ] && cmp -s "$T/a.txt" "$T/b.txt" && ok || bad "run differs or failed"
finish
