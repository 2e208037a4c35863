#!/usr/bin/env bash
# A flag means one thing across commands (issue 15): -t takes 1..4096 in every
# command; mem names the weights' encoding --to as convert and quant do (--enc
# stays a synonym); mem's count of sequences is --seqs, its old --batch (which
# in ppl and verify is tokens a forward step) still works and says so.
. "$(dirname "$0")/lib.sh"
for c in convert quant synth ppl verify run mem; do
  expect_exit 2 "$SUBBIT" "$c" -t 0
  expect_err_line "^subbit $c: --threads expects an integer in \[1, 4096\], got '0'"
done
expect_exit 0 "$SUBBIT" mem Llama-2-7B --to q4_0 --json
cp "$T/out" "$T/to.json"
grep -Eq '"weights_encoding":[[:space:]]*"q4_0"' "$T/to.json" && ok || bad "mem --to q4_0"
expect_exit 0 "$SUBBIT" mem Llama-2-7B --enc q4_0 --json
cmp -s "$T/out" "$T/to.json" && ok || bad "mem --enc differs from --to"
expect_exit 0 "$SUBBIT" mem Llama-2-7B --seqs 2 --json
cp "$T/out" "$T/seqs.json"
# 512 KiB/token x 4096 x 2 sequences
grep -Eq '"bytes":[[:space:]]*4294967296,' "$T/seqs.json" && ok || bad "mem --seqs 2 KV"
expect_exit 0 "$SUBBIT" mem Llama-2-7B --batch 2 --json
cmp -s "$T/out" "$T/seqs.json" && ok || bad "mem --batch differs from --seqs"
expect_err_line "^subbit mem: warning: --batch here counts sequences; it is now --seqs"
finish
