#!/usr/bin/env bash
# Malformed safetensors inputs: `subbit inspect BAD` exits 1 with one stderr
# line `subbit inspect: BAD: problem` (formats.md §1.4), and writes nothing.
. "$(dirname "$0")/lib.sh"

# st FILE HEADER-LENGTH HEADER DATA-BYTES: a safetensors file by hand
st() {
  local f=$1 n=$2 hdr=$3 nd=$4
  python3 - "$f" "$n" "$hdr" "$nd" <<'PY'
import struct, sys
f, n, hdr, nd = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
n = len(hdr) if n == "-" else int(n)
open(f, "wb").write(struct.pack("<Q", n) + hdr + bytes(nd))
PY
}
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

bad_case() { # NAME REGEX: inspect NAME fails with one line naming it
  local f="$T/$1"
  expect_exit 1 "$SUBBIT" inspect "$f"
  expect_err_line "^subbit inspect: $f: .*$2"
  [ -s "$T/out" ] && bad "$1: stdout not empty"
}

printf 'abc' >"$T/short.safetensors"
bad_case short.safetensors "too small"
st "$T/eof.safetensors" 100 '{}' 0
bad_case eof.safetensors "past end of file"
st "$T/big.safetensors" 100000001 '{}' 0
bad_case big.safetensors "exceeds the limit"
st "$T/json.safetensors" - '{"a":' 0
bad_case json.safetensors "not valid JSON"
st "$T/dtype.safetensors" - '{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}' 4
bad_case dtype.safetensors "tensor 'a': unknown dtype 'F17'"
st "$T/overlap.safetensors" - '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
bad_case overlap.safetensors "tensor 'b': .*overlaps"
st "$T/dup.safetensors" - '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' 8
bad_case dup.safetensors "duplicate tensor name 'a'"
st "$T/trail.safetensors" - '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 5
bad_case trail.safetensors "1 trailing bytes"
st "$T/size.safetensors" - '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8
bad_case size.safetensors "tensor 'a': 8 bytes, but shape \[3\] of F32 needs 12"

# a folder whose index names a missing shard
mkdir "$T/sharded"
printf '{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}' \
  >"$T/sharded/model.safetensors.index.json"
st "$T/sharded/model-00001-of-00002.safetensors" - '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4
expect_exit 1 "$SUBBIT" inspect "$T/sharded"
expect_err_line "^subbit inspect: $T/sharded/model.safetensors.index.json: shard 'model-00002-of-00002.safetensors' named by the index is missing"
finish
