#!/usr/bin/env bash
# Sub-1-bit end to end on the built-in tinymoe: tern, sub1 and sub1-qmoe hold
# bit-identical ternary weights, so `subbit ppl` must print the same perplexity
# to the last digit; a flipped byte in a tensor's data is caught by its checksum.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
for e in tern sub1 sub1-qmoe; do
  expect_exit 0 "$SUBBIT" convert "$M" -o "$T/$e.subbit" --to "$e" --experts-only -q
  expect_exit 0 "$SUBBIT" ppl "$T/$e.subbit" --text "$TEXT" --protocol blocks --json
  sed -n 's/.*"ppl":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$T/out" > "$T/$e.ppl"
  [ -s "$T/$e.ppl" ] && ok || bad "$e: no ppl in the JSON report"
done
for e in sub1 sub1-qmoe; do
  if cmp -s "$T/tern.ppl" "$T/$e.ppl"; then ok; else bad "$e ppl $(cat "$T/$e.ppl") != tern $(cat "$T/tern.ppl")"; fi
done
# experts are below 1.2 bits/param in sub1 (tinymoe's rows are 128-192 wide, so
# the two bf16 levels per row alone cost 0.08-0.25 bits)
expect_exit 0 "$SUBBIT" inspect "$T/sub1.subbit" --json
awk '/"sub1":/{f=1} f && /"bytes"/{gsub(/[^0-9.]/,"",$2); b=$2} f && /"params"/{gsub(/[^0-9.]/,"",$2); p=$2} f && /}/{exit} END{ if (p > 0 && 8*b/p < 1.2) exit 0; exit 1 }' "$T/out" && ok || bad "sub1 experts not below 1.2 bits/param"

# flip one byte in the middle of the first sub1 tensor's data
off=$(awk '/"encoding":[[:space:]]*"sub1"/{f=1} f && /"offset"/{gsub(/[^0-9]/,"",$2); print $2; exit}' "$T/out")
[ -n "$off" ] && ok || bad "no offset for a sub1 tensor"
cp "$T/sub1.subbit" "$T/bad.subbit"
byte=$(od -An -tu1 -j $((off + 100)) -N1 "$T/bad.subbit" | tr -d ' ')
printf "$(printf '\\%03o' $(( (byte + 1) % 256 )))" | dd of="$T/bad.subbit" bs=1 seek=$((off + 100)) conv=notrunc 2>/dev/null
expect_exit 1 "$SUBBIT" inspect "$T/bad.subbit"
expect_err_line "^subbit inspect: .*bad\.subbit: tensor '.*' checksum mismatch"
expect_exit 1 "$SUBBIT" ppl "$T/bad.subbit" --text "$TEXT"
finish
