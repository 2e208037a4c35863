#!/usr/bin/env bash
# The output's container comes from its name: .gguf, .subbit, .safetensors (any
# case) or a folder (no extension, or a trailing '/'). Any other extension and
# '-' are refused in one line, exit 2, nothing written (issue 15: "-o x.txt"
# became a folder).
. "$(dirname "$0")/lib.sh"
"$SUBBIT" synth -o "$T/m" -q || bad "synth"
for o in x.txt model.bin notes.md; do
  expect_exit 2 "$SUBBIT" convert "$T/m" -o "$T/$o" --to q8_0
  expect_err_line "^subbit convert: $T/$o: unknown output extension '\.[a-z]+' \(use \.gguf, \.subbit, \.safetensors, or a folder"
  expect_no_file "$T/$o"
done
expect_exit 2 "$SUBBIT" convert "$T/m" -o - --to q8_0
expect_err_line "^subbit convert: -: a model cannot be written to standard output"
expect_no_file "$T/-"
expect_exit 2 "$SUBBIT" quant "$T/m" -o "$T/q.bin" --to q4_0 --calib "$T/none.txt"
expect_err_line "^subbit quant: $T/q.bin: unknown output extension '\.bin'"
expect_no_file "$T/q.bin"
expect_exit 2 "$SUBBIT" synth -o "$T/s.gguf"
expect_err_line "^subbit synth: $T/s.gguf: synth writes a folder"
expect_no_file "$T/s.gguf"
# upper case names the same container; a folder name with a trailing '/'
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/X.GGUF" --to q8_0 -q
head -c 4 "$T/X.GGUF" | grep -q GGUF && ok || bad "X.GGUF is not a GGUF file"
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/v1.5/" --to bf16 -q
[ -f "$T/v1.5/model.safetensors" ] && [ -f "$T/v1.5/config.json" ] && ok || bad "v1.5/ is not a model folder"
finish
