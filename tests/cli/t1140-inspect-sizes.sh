#!/usr/bin/env bash
# inspect counts a tokenizer.json's tokens (tinymoe: 256 bytes + BOS + EOS =
# 258; it said 0) and tells the tensor bytes from the size of the files on disk
# (stat). (issue 15)
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
expect_exit 0 "$SUBBIT" inspect "$M" --summary
grep -q '^tokenizer: hf-tokenizer.json, 258 tokens$' "$T/out" && ok || bad "tokenizer line: $(grep tokenizer "$T/out")"
# 2,627,200 bf16 parameters = 5,254,400 bytes of tensors; the file adds its header
fb=$(stat -c %s "$M/model.safetensors")
grep -q "^total: 127 tensors, 2627200 parameters, 5254400 bytes of tensors (5.01 MiB), 16.000 bits/param$" "$T/out" \
  && ok || bad "total line: $(grep total "$T/out")"
grep -q "^files: $fb bytes on disk (5.03 MiB): the tensors, $((fb - 5254400)) bytes of headers" "$T/out" \
  && ok || bad "files line: $(grep files "$T/out")"
expect_exit 0 "$SUBBIT" inspect "$M" --summary --json
grep -Eq '"tokens":[[:space:]]*258$' "$T/out" && ok || bad "--json tokenizer tokens"
grep -Eq "\"file_bytes\":[[:space:]]*$fb,?\$" "$T/out" && ok || bad "--json file_bytes"
# a .subbit carries the tokenizer.json; one file, its size from stat
"$SUBBIT" convert "$M" -o "$T/q.subbit" --to q8_0 -q >/dev/null || bad "convert"
expect_exit 0 "$SUBBIT" inspect "$T/q.subbit" --summary --json
grep -Eq '"tokens":[[:space:]]*258$' "$T/out" && ok || bad ".subbit tokens"
grep -Eq "\"file_bytes\":[[:space:]]*$(stat -c %s "$T/q.subbit"),?\$" "$T/out" && ok || bad ".subbit file_bytes"
# sub1 experts: .subbit stores tensors zstd-compressed when that saves 5%: the
# file is smaller than the tensors, and inspect says so rather than "0 bytes of headers"
"$SUBBIT" convert "$M" -o "$T/s.subbit" --to sub1 --experts-only -q >/dev/null || bad "convert sub1"
expect_exit 0 "$SUBBIT" inspect "$T/s.subbit" --summary
fs=$(stat -c %s "$T/s.subbit")
tb=$(sed -n 's/^total: .* parameters, \([0-9]*\) bytes of tensors.*/\1/p' "$T/out")
[ -n "$tb" ] && [ "$fs" -lt "$tb" ] && ok || bad "sub1: file $fs not below tensors '$tb'"
grep -q "^files: $fs bytes on disk (.*): $((tb - fs)) fewer than the tensors, stored compressed$" "$T/out" \
  && ok || bad "sub1 files line: $(grep files "$T/out")"
finish
