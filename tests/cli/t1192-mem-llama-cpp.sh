#!/usr/bin/env bash
# subbit mem --runtime llama.cpp against what llama.cpp prints (issue 15). The
# oracle is llama.cpp itself (skipped without it): llama-completion -v prints
# its KV cache ("llama_kv_cache: size = X MiB (N cells, ...)") and its compute
# buffer ("compute buffer size is X MiB" at exit, 4 decimals; else the 2-decimal
# line at start). Asserted: the cells exactly, the KV bytes exactly at the
# printed precision (0.01 MiB), the compute buffer within -6%..+25% (the profile
# does not model ggml-alloc's packing; README says so), and, where the prompt
# fills a 512-token step, the estimated total within -15%..+20% of the peak RSS
# (/usr/bin/time -v). Models: stories260K.gguf, a synthetic llama (f16) and a
# synthetic Mixtral of tinymoe's shape (the tinymoe GGUF carries no tokenizer,
# and llama.cpp loads no model without one: both synthetic ones take stories260K's
# 512-piece tokenizer, as t1000 does).
. "$(dirname "$0")/lib.sh"
need_fixtures
need_llama_cpp
if [ ! -x "$LLAMA_BIN/llama-completion" ]; then echo "SKIP: llama-completion not in '$LLAMA_BIN'"; exit 77; fi
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=
head -c 3000 "$FIXTURES/text/tinystories_val.txt" >"$T/long.txt"   # 1,499 tokens: fills -ub 512
printf 'Once upon a time' >"$T/short.txt"
ST=$FIXTURES/models/stories260K.gguf
"$SUBBIT" synth --arch llama --layers 2 --dim 256 --hidden 512 --heads 4 --kv-heads 2 --vocab 512 \
  --ctx 4096 -o "$T/syn" -q || bad "synth llama"
cp "$FIXTURES/models/tok512.bin" "$T/syn/tokenizer.bin"
expect_exit 0 "$SUBBIT" convert "$T/syn" -o "$T/syn.gguf" --to f16 -q
"$SUBBIT" synth --arch mixtral --layers 4 --dim 128 --hidden 192 --heads 4 --kv-heads 2 --experts 8 \
  --top-k 2 --vocab 512 --ctx 4096 -o "$T/moe" -q || bad "synth mixtral"
cp "$FIXTURES/models/tok512.bin" "$T/moe/tokenizer.bin"
expect_exit 0 "$SUBBIT" convert "$T/moe" -o "$T/moe.gguf" --to f32 -q

# case MODEL CTX SEQS PROMPT [llama.cpp options] -- [subbit mem options]
case_() {
  local model=$1 ctx=$2 seqs=$3 prompt=$4; shift 4
  local lopts=() mopts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do lopts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  mopts=("$@")
  local name; name="$(basename "$model") ctx $ctx x $seqs ${lopts[*]}"
  local try log=$T/l.log line cells streams kv_mib cb rss
  for try in 1 2 3 4 5; do   # its logger drops or garbles lines now and then (t1000)
    ${TIME:+$TIME -v} "$LLAMA_BIN/llama-completion" -m "$model" -f "$prompt" -n 1 -c $((ctx * seqs)) \
      -np "$seqs" -t 2 -no-cnv -v -fit off "${lopts[@]}" >"$log" 2>&1 || { bad "$name: llama-completion failed"; tail -3 "$log"; return; }
    line=$(grep -E "llama_kv_cache: size = +[0-9.]+ MiB \( *[0-9]+ cells, +[0-9]+ layers, +[0-9]+/[0-9]+ seqs\)" "$log" | tail -1)
    kv_mib=$(sed -n 's/.*size = *\([0-9.]*\) MiB.*/\1/p' <<<"$line")
    cells=$(sed -n 's/.*( *\([0-9]*\) cells.*/\1/p' <<<"$line")
    streams=$(sed -n 's/.*\/\([0-9]*\) seqs).*/\1/p' <<<"$line")
    cb=$(grep "compute buffer size is" "$log" | tail -1 | sed -n 's/.*size is *\([0-9.]*\) MiB.*/\1/p')
    [ -n "$cb" ] || cb=$(grep "sched_reserve: .*compute buffer size" "$log" | tail -1 | awk '{print $(NF-1)}')
    rss=$(grep "Maximum resident" "$log" | awk '{print $NF}')
    [ -n "$kv_mib" ] && [ -n "$cells" ] && [ -n "$streams" ] && [ -n "$cb" ] && break
  done
  expect_exit 0 "$SUBBIT" mem "$model" --runtime llama.cpp --ctx "$ctx" --seqs "$seqs" "${mopts[@]}" --json
  python3 - "$T/out" "$name" "$cells" "$streams" "$kv_mib" "$cb" "${rss:-0}" "$prompt" <<'PY' && ok || bad "$name"
import json, sys
d = json.load(open(sys.argv[1]))
name, cells, streams, kv_mib, cb, rss, prompt = sys.argv[2:9]
fails = []
if d["runtime"]["profile"] != "llama.cpp":
    fails.append("profile %s" % d["runtime"]["profile"])
if d["kv_cache"]["cells"] != int(cells) * int(streams):
    fails.append("cells %d, llama.cpp %s x %s" % (d["kv_cache"]["cells"], cells, streams))
kv = "%.2f" % (d["kv_cache"]["bytes"] / 1048576.0)
if kv != kv_mib:
    fails.append("KV %s MiB, llama.cpp %s" % (kv, kv_mib))
r = d["runtime"]["compute_buffer"] / 1048576.0 / float(cb)
if not 0.94 <= r <= 1.25:
    fails.append("compute buffer %.4f MiB, llama.cpp %s (ratio %.3f)" % (d["runtime"]["compute_buffer"] / 1048576.0, cb, r))
msg = "%s: KV %s MiB = llama.cpp's; compute %.3f x llama.cpp's %s MiB" % (name, kv, r, cb)
if int(rss) and prompt.endswith("long.txt"):
    q = d["total"] / (int(rss) * 1024.0)
    msg += "; total %.3f x peak RSS %s KiB" % (q, rss)
    if not 0.85 <= q <= 1.2:
        fails.append("total %d B is %.3f x the peak RSS %s KiB" % (d["total"], q, rss))
print(msg)
for f in fails:
    print("  " + f)
sys.exit(1 if fails else 0)
PY
}
case_ "$ST" 256 1 "$T/short.txt"
case_ "$ST" 1000 1 "$T/short.txt"
case_ "$ST" 2048 1 "$T/long.txt"
# a q8_0 cache needs heads of whole blocks: llama.cpp refuses stories260K's 8
"$LLAMA_BIN/llama-completion" -m "$ST" -f "$T/short.txt" -n 1 -c 256 -t 2 -no-cnv -fit off -ctk q8_0 -ctv q8_0 \
  >"$T/l.log" 2>&1 && bad "llama.cpp took a q8_0 cache with head_dim 8" || ok
expect_exit 1 "$SUBBIT" mem "$ST" --runtime llama.cpp --kv-type q8_0
expect_err_line "^subbit mem: stories260K.gguf: llama.cpp refuses a q8_0 KV cache: its block of 32 does not divide head_dim 8$"
case_ "$ST" 1024 1 "$T/short.txt" -fa off -- --flash-attn off
case_ "$T/syn.gguf" 512 1 "$T/short.txt"
case_ "$T/syn.gguf" 2048 1 "$T/long.txt"
case_ "$T/syn.gguf" 2048 1 "$T/long.txt" -fa off -- --flash-attn off
case_ "$T/syn.gguf" 500 2 "$T/short.txt"
case_ "$T/syn.gguf" 1024 1 "$T/short.txt" -ub 128 -- --ubatch 128
case_ "$T/syn.gguf" 4096 1 "$T/short.txt" -ctk f32 -ctv f32 -- --kv-type f32
case_ "$T/syn.gguf" 2048 1 "$T/long.txt" -ctk q8_0 -ctv q8_0 -- --kv-type q8_0
case_ "$T/moe.gguf" 1024 1 "$T/short.txt"
case_ "$T/moe.gguf" 2048 1 "$T/long.txt" -fa off -- --flash-attn off
finish
