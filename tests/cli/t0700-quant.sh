#!/usr/bin/env bash
# `subbit quant` on the built-in tinymoe, calibrated on a few windows of the
# demo text (a test of the mechanics; tools/bench quant measures quality on
# held-out text): GPTQ ternary experts have a lower calibration output error
# than round-to-nearest on every matrix and a lower perplexity; --method rtn
# gives exactly convert's bytes; the output does not depend on the thread
# count; q4_0 into GGUF decodes; packs change no byte; bad input gives one
# line and no output.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
Q=("$SUBBIT" quant "$M" --calib "$TEXT" --calib-tokens 1536 --calib-ctx 256 -q)
jnum() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$2" | head -1; }

# GPTQ vs round-to-nearest, sub1 experts
expect_exit 0 "${Q[@]}" -o "$T/g.subbit" --to sub1 --experts-only --json -t 2
cp "$T/out" "$T/g.json"
# every matrix is GPTQ'd and beats round-to-nearest on its calibration tokens
awk -F: '/"method":/{m=$2} /"rel_err":/{e=$2+0} /"rel_err_rtn":/{r=$2+0; n++; if (m !~ /gptq/ || !(e < r)) bad++}
         END{ if (n != 96 || bad) { print n, bad; exit 1 } }' "$T/g.json" && ok || bad "not every expert matrix GPTQ'd below RTN's error"
grep -q '"tokens":[[:space:]]*1536' "$T/g.json" && ok || bad "calibration token count not reported"
expect_exit 0 "${Q[@]}" -o "$T/r.subbit" --to sub1 --experts-only --method rtn
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/c.subbit" --to sub1 --experts-only -q
cmp -s "$T/r.subbit" "$T/c.subbit" && ok || bad "--method rtn differs from convert's bytes"
for m in g r; do
  expect_exit 0 "$SUBBIT" ppl "$T/$m.subbit" --text "$TEXT" --protocol blocks --json
  jnum ppl "$T/out" > "$T/$m.ppl"
done
awk -v g="$(cat "$T/g.ppl")" -v r="$(cat "$T/r.ppl")" 'BEGIN{ exit !(g > 0 && g < r) }' && ok \
  || bad "GPTQ ppl $(cat "$T/g.ppl") not below RTN's $(cat "$T/r.ppl")"

# thread count does not change a byte
expect_exit 0 "${Q[@]}" -o "$T/g1.subbit" --to sub1 --experts-only -t 1
cmp -s "$T/g.subbit" "$T/g1.subbit" && ok || bad "1 and 2 threads wrote different files"

# q4_0 into GGUF (stacked experts, permuted q/k) scores as the same GPTQ
# result in .subbit (HF layout) does; ids given as bytes (tinymoe's tokenizer
# is byte level, BOS 256: the same ids its tokenizer gives, which the GGUF now
# carries, t1060), stride windows. Within 1e-4: quant calibrates with f32 activations
# on every CPU (bf16 ones where the CPU has AVX512-BF16 put the two 1.0e-4 apart)
expect_exit 0 "${Q[@]}" -o "$T/q4.gguf" --to q4_0
expect_exit 0 "${Q[@]}" -o "$T/q4.subbit" --to q4_0
expect_exit 0 "$SUBBIT" inspect "$T/q4.gguf" --json
grep -q '"q4_0"' "$T/out" && ok || bad "no q4_0 tensor in the GGUF"
{ echo 256; od -An -v -tu1 "$TEXT"; } > "$T/ids.txt"
for m in q4.gguf q4.subbit; do
  expect_exit 0 "$SUBBIT" ppl "$T/$m" --tokens "$T/ids.txt" --protocol stride --ctx 256 --json
  jnum ppl "$T/out" > "$T/$m.ppl"
done
awk -v a="$(cat "$T/q4.gguf.ppl")" -v b="$(cat "$T/q4.subbit.ppl")" \
  'BEGIN{ d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-4 * b) }' && ok \
  || bad "q4_0 GGUF ppl $(cat "$T/q4.gguf.ppl") != .subbit's $(cat "$T/q4.subbit.ppl")"

# --act-fit: q4_0's weights fitted to the 8-bit activations its kernel meets
# where a matrix saw 32 tokens a column: with 4,608 tokens (the demo text's
# bytes three times) the attention's and the classifier's (128 columns), not
# the experts'; the same bytes at 1 and 2 threads; other bytes than plain GPTQ
# (the default, which reports no fit); said to be ignored where nothing is fitted
for i in 1 2 3; do od -An -v -tu1 "$TEXT"; done > "$T/ids3.txt"
F=("$SUBBIT" quant "$M" --calib-tokens-file "$T/ids3.txt" --calib-tokens 4608 --calib-ctx 256 --to q4_0)
expect_exit 0 "${F[@]}" -o "$T/f2.subbit" -t 2 --act-fit
grep -q '^act fit: *[1-9][0-9]* of 113 ' "$T/out" && ok || bad "q4_0: no matrix fitted: $(grep 'act fit' "$T/out")"
expect_exit 0 "${F[@]}" -o "$T/f1.subbit" -t 1 -q --json --act-fit
cmp -s "$T/f1.subbit" "$T/f2.subbit" && ok || bad "q4_0 --act-fit: 1 and 2 threads wrote different files"
awk '/"act_fit":[[:space:]]*true/{t++} /"expert":/{e=1} /"act_fit":[[:space:]]*true/{if (e) x++} /^[[:space:]]*}/{e=0}
     END{ exit !(t > 1 && !x) }' "$T/out" && ok || bad "q4_0: act_fit not reported, or reported for an expert"
expect_exit 0 "${F[@]}" -o "$T/f0.subbit" -q --json
cmp -s "$T/f0.subbit" "$T/f2.subbit" && bad "--act-fit wrote plain GPTQ's bytes" || ok
grep -q '"act_fit":[[:space:]]*true' "$T/out" && bad "plain GPTQ: act_fit true in the report" || ok
expect_exit 0 "${Q[@]}" -o "$T/nf.subbit" --to sub1 --experts-only --act-fit
grep -q 'act-fit is ignored' "$T/err" && ok || bad "--act-fit with sub1 not said to be ignored"

# what quant writes does not depend on whether the CPU has AVX512-BF16: where it
# has, ppl meets bf16 weights with bf16-rounded activations, quant does not, so
# with them switched off everywhere (SUBBIT_BF16_ACTIVATIONS=0) the bytes are the
# same (q4_0 into GGUF: every layer's matrices compute in bf16 until GPTQ reaches them)
SUBBIT_BF16_ACTIVATIONS=0 expect_exit 0 "${Q[@]}" -o "$T/q4f.gguf" --to q4_0
cmp -s "$T/q4.gguf" "$T/q4f.gguf" && ok || bad "quant wrote other bytes without bf16 activations"
# quant multiplies by the q8_0/q4_0 matrices it made through packs where the CPU has the
# packed kernels (AVX2, AVX512-VNNI): without packs (SUBBIT_REPACK=0) the same bytes
SUBBIT_REPACK=0 expect_exit 0 "${Q[@]}" -o "$T/q4n.gguf" --to q4_0
cmp -s "$T/q4.gguf" "$T/q4n.gguf" && ok || bad "quant q4_0 wrote other bytes without packs"
expect_exit 0 "${Q[@]}" -o "$T/q8.gguf" --to q8_0
SUBBIT_REPACK=0 expect_exit 0 "${Q[@]}" -o "$T/q8n.gguf" --to q8_0
cmp -s "$T/q8.gguf" "$T/q8n.gguf" && ok || bad "quant q8_0 wrote other bytes without packs"

# an expert below --min-expert-tokens is rounded to nearest, and reported
expect_exit 0 "${Q[@]}" -o "$T/m.subbit" --to tern --experts-only --min-expert-tokens 100000 --json
grep -q '"why":[[:space:]]*"fewer tokens than --min-expert-tokens"' "$T/out" && ok || bad "fallback not reported"

# bad input: one line, no output
expect_exit 2 "$SUBBIT" quant "$M" -o "$T/x.subbit" --to sub1
expect_no_file "$T/x.subbit"
expect_exit 1 "$SUBBIT" quant "$M" -o "$T/x.subbit" --to sub1 --calib "$T/missing.txt"
expect_err_line "^subbit quant: .*missing\.txt"
expect_no_file "$T/x.subbit"
printf 'hi' > "$T/short.txt"
expect_exit 1 "$SUBBIT" quant "$M" -o "$T/x.subbit" --to sub1 --calib "$T/short.txt"
expect_err_line "^subbit quant: .*short\.txt: text too short"
expect_no_file "$T/x.subbit"
expect_exit 2 "${Q[@]}" -o "$T/x.subbit" --to sub1 --calib-ctx 4096
expect_no_file "$T/x.subbit"
expect_exit 1 "${Q[@]}" -o "$T/g.subbit" --to sub1
expect_err_line "^subbit quant: .*g\.subbit.*exists"
finish
