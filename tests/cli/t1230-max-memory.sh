#!/usr/bin/env bash
# convert --max-memory: a synthetic MoE of 75 MiB converted under a 48 MiB cap
# (q8_0 and sub1 .subbit, an int8 safetensors folder) stays under it (peak RSS
# from getrusage: the report's peak_rss_bytes) with the uncapped bytes; a cap
# no tensor's work fits in fails with one line, before any output exists.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
"$SUBBIT" synth --arch mixtral --layers 2 --dim 512 --hidden 1024 --experts 12 --top-k 2 \
  --dtype bf16 -q -o moe || bad "synth"
size=$(du -sb moe | cut -f1)
cap=$((48 * 1048576))
[ "$size" -gt $((cap * 3 / 2)) ] && ok || bad "the model ($size bytes) is not well above the cap"
for spec in "q.subbit --to q8_0" "s.subbit --to sub1" "folder --to int8 --shard-size 16M"; do
  set -- $spec
  o=$1; shift
  expect_exit 0 "$SUBBIT" convert moe -o "$o" "$@" --max-memory 48M -t 1 --json
  peak=$(json_num peak_rss_bytes)   # the first: the totals' (the same number again at the top)
  if [ -n "${ASAN_OPTIONS:-}" ]; then
    ok   # AddressSanitizer's shadow memory and quarantine are not ours to cap
  elif [ -n "$peak" ] && [ "$peak" -le "$cap" ]; then ok
  else bad "$o: peak RSS ${peak:-?} above the cap $cap"; fi
  "$SUBBIT" convert moe -o "ref-$o" "$@" -q -t 1
  diff -r "$o" "ref-$o" >/dev/null && ok || bad "$o: the capped output differs from the uncapped one"
done
# GGUF's stacked experts do not keep to a cap yet: refused, not promised
expect_exit 1 "$SUBBIT" convert moe -o q.gguf --to q8_0 --max-memory 1G
expect_err_line "^subbit convert: q.gguf: --max-memory does not hold for GGUF output yet"
expect_no_file q.gguf
expect_exit 1 "$SUBBIT" convert moe -o small.subbit --to q8_0 --max-memory 33M -t 1
expect_err_line "^subbit convert: small.subbit: tensor '.*' needs [0-9]+ MiB resident .*above --max-memory 33 MiB"
expect_no_file small.subbit
finish
