#!/usr/bin/env bash
# The core repacks q8_0 / q4_0 matrices at load (16 rows interleaved, where the
# CPU has AVX512-VNNI), copies f32 / f16 / bf16 ones into its arena, and
# computes from the packs: the same bits as from the file's layout
# (SUBBIT_REPACK=0), on tinymoe (its dense attention matrices, and its
# experts: slices of stacked GGUF tensors), batched (ppl) and one token at a
# time (run), at 1 and 2 threads.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
jnum() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$2" | head -1; }
for enc in q8_0 q4_0 f32 f16 bf16; do
  expect_exit 0 "$SUBBIT" convert "$M" -o "$T/m-$enc.gguf" --to "$enc" -q
  for th in 1 2; do
    expect_exit 0 "$SUBBIT" ppl "$T/m-$enc.gguf" --text "$TEXT" --protocol blocks --json -t $th
    jnum ppl "$T/out" > "$T/p.txt"
    SUBBIT_REPACK=0 expect_exit 0 "$SUBBIT" ppl "$T/m-$enc.gguf" --text "$TEXT" --protocol blocks --json -t $th
    jnum ppl "$T/out" > "$T/p0.txt"
    [ -s "$T/p.txt" ] && cmp -s "$T/p.txt" "$T/p0.txt" && ok \
      || bad "$enc -t $th: ppl $(cat "$T/p.txt") packed, $(cat "$T/p0.txt") from the file's layout"
    expect_exit 0 "$SUBBIT" run "$T/m-$enc.gguf" -p "Once upon a time" -n 40 --temp 0 -t $th
    cp "$T/out" "$T/g.txt"
    SUBBIT_REPACK=0 expect_exit 0 "$SUBBIT" run "$T/m-$enc.gguf" -p "Once upon a time" -n 40 --temp 0 -t $th
    [ -s "$T/g.txt" ] && cmp -s "$T/g.txt" "$T/out" && ok || bad "$enc -t $th: run differs packed"
  done
done
exit $((fails > 0))
