#!/usr/bin/env bash
# `subbit inspect` on broken GGUF (and llama2.c) files: exit 1 and exactly one
# stderr line naming the file, nothing on stdout (formats.md §2.3 catalogue).
. "$(dirname "$0")/lib.sh"

z16='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
printf 'GGUG\x03\x00\x00\x00'"$z16" >"$T/magic.gguf"
printf 'GGUF\x04\x00\x00\x00'"$z16" >"$T/v4.gguf"
printf 'GGUF\x01\x00\x00\x00'"$z16" >"$T/v1.gguf"
printf 'GGUF\x00\x00\x00\x03'"$z16" >"$T/swapped.gguf"
# 2^40 tensors in a 24-byte file
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$T/count.gguf"
# one key whose length runs past the end
printf 'GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xff\x00\x00\x00\x00\x00\x00\x00ab\x04\x00\x00\x00' >"$T/strlen.gguf"
printf 'GG' >"$T/short.gguf"
: >"$T/empty.gguf"
printf '\x40\x00\x00\x00\xac\x00\x00\x00' >"$T/short.bin"

check() {   # check FILE REGEX
  expect_exit 1 "$SUBBIT" inspect "$1"
  expect_err_line "^subbit inspect: $1: .*$2"
  [ -s "$T/out" ] && bad "inspect $1: stdout not empty"
}
check "$T/magic.gguf" 'bad magic'
check "$T/v4.gguf" 'version 4'
check "$T/v1.gguf" 'version 1'
check "$T/swapped.gguf" 'byte-swapped'
check "$T/count.gguf" 'tensor count'
check "$T/strlen.gguf" 'past end of file'
check "$T/short.gguf" 'not a GGUF file'
check "$T/empty.gguf" 'not a GGUF file'
check "$T/short.bin" 'too short for a llama2.c header'
check "$T/missing.gguf" ''

if [ -n "$FIXTURES" ] && [ -f "$FIXTURES/models/stories260K.gguf" ]; then
  head -c 1000000 "$FIXTURES/models/stories260K.gguf" >"$T/cut.gguf"
  check "$T/cut.gguf" "tensor '[a-z0-9_.]+' ends past end of file"
  head -c 100 "$FIXTURES/models/stories260K.gguf" >"$T/cuthdr.gguf"
  check "$T/cuthdr.gguf" 'tensor count 48 is more than the file can hold \(100 bytes\)'
  head -c 2000 "$FIXTURES/models/stories260K.gguf" >"$T/cutkv.gguf"
  check "$T/cutkv.gguf" "key 'tokenizer.ggml.tokens'.*past end of file"
  head -c 1000000 "$FIXTURES/models/stories260K.bin" >"$T/cut.bin"
  check "$T/cut.bin" 'llama2.c file is 1000000 bytes'
fi
finish
