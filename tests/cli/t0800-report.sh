#!/usr/bin/env bash
# subbit report: the --json documents of convert --stats, verify, mem and ppl
# on the built-in tinymoe into one page: what it holds (one column per expert
# and layer, no external reference), bad input (one line naming the file, no
# output), no overwrite without -f; verify --report writes the same page.
# The page in a real browser: t0810-report-chromium.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
"$SUBBIT" convert "$M" -o "$T/sub1.subbit" --to sub1 --experts-only --stats --json -q >"$T/convert.json" || bad "convert"
"$SUBBIT" mem "$M" --ctx 512 --json >"$T/mem.json" || bad "mem"
"$SUBBIT" ppl "$M" --text "$TEXT" --protocol blocks --max-blocks 1 --json >"$T/ppl.json" || bad "ppl"
expect_exit 0 "$SUBBIT" verify --ref "$M" --model "$T/sub1.subbit" --text "$TEXT" --protocol blocks \
  --max-blocks 1 --max-ppl-delta 60% --json --report "$T/verify.html"
cp "$T/out" "$T/verify.json"
grep -q '"ppl_delta_pct"' "$T/verify.json" && ok || bad "verify --json with --report lost its document"
# convert --stats marks each ternary tensor with its zero fraction (tinymoe: 0.78-0.84)
n=$(grep -c '"zero_fraction":[[:space:]]*0\.[5-9]' "$T/convert.json")
[ "$n" -eq 96 ] && ok || bad "convert --stats: $n of 96 expert tensors with a zero fraction"

expect_exit 0 "$SUBBIT" report "$T/convert.json" "$T/verify.json" "$T/mem.json" "$T/ppl.json" -o "$T/r.html"
grep -q "^wrote $T/r.html from 4 documents$" "$T/out" && ok || bad "report: summary line: $(cat "$T/out")"
for h in "Quality against the reference" "Perplexity" "Conversion: $T/sub1.subbit" "Memory"; do
  grep -q "<h2>$h</h2>" "$T/r.html" && ok || bad "no section '$h'"
done
# 4 layers x 8 experts: 32 columns of zero fraction, in 4 panels
n=$(sed -n '/Ternary zero fraction per expert/,/<\/svg>/p' "$T/r.html" | grep -c '<rect class="bar ')
[ "$n" -eq 32 ] && ok || bad "zero fraction chart: $n bars, want 32"
n=$(sed -n '/Ternary zero fraction per expert/,/<\/svg>/p' "$T/r.html" | grep -Ec '>layer [0-3], mean [0-9.]+%</text>')
[ "$n" -eq 4 ] && ok || bad "zero fraction chart: $n layer panels, want 4"
# the memory bar: weights + KV + activations + logits + scratch + process = total
n=$(sed -n '/<h2>Memory<\/h2>/,/<\/svg>/p' "$T/r.html" | grep -c '<rect class="bar ')
[ "$n" -eq 6 ] && ok || bad "memory: $n segments, want 6"
# self-contained: nothing fetched, no script
if grep -Eiq '<script|src=|href=|url\(|@import|https?:' "$T/r.html"; then bad "the page refers outside itself"; else ok; fi
# verify --report: the quality section of the same run
grep -q '<h2>Quality against the reference</h2>' "$T/verify.html" && ok || bad "verify --report"
expect_exit 1 "$SUBBIT" verify --ref "$M" --model "$T/sub1.subbit" --text "$TEXT" --report "$T/verify.html"
expect_err_line "^subbit verify: .*verify\.html: exists \(use --force to replace\)$"

# documents from stdin, several in one file
cat "$T/mem.json" "$T/ppl.json" | "$SUBBIT" report - -o "$T/s.html" --json >"$T/out" 2>"$T/err" && ok || bad "report from stdin"
grep -q '"kind":[[:space:]]*"ppl"' "$T/out" && grep -q '"file":[[:space:]]*"stdin #1"' "$T/out" && ok || bad "report --json: $(cat "$T/out")"

# an existing output is kept without -f, replaced with it
cp "$T/r.html" "$T/keep.html"
expect_exit 1 "$SUBBIT" report "$T/mem.json" -o "$T/r.html"
expect_err_line "^subbit report: .*r\.html.*exists"
cmp -s "$T/r.html" "$T/keep.html" && ok || bad "report replaced a file without -f"
expect_exit 0 "$SUBBIT" report "$T/mem.json" -o "$T/r.html" -f -q
[ -s "$T/out" ] && bad "-q still printed" || ok
cmp -s "$T/r.html" "$T/keep.html" && bad "-f did not replace" || ok

# bad input: one line naming the file, no output left behind
printf '{"model":"x","layers":3}\n' >"$T/unknown.json"
expect_exit 1 "$SUBBIT" report "$T/mem.json" "$T/unknown.json" -o "$T/bad.html"
expect_err_line "^subbit report: .*unknown\.json: is not the --json output of subbit verify, quant, convert, mem, ppl or inspect$"
expect_no_file "$T/bad.html"
printf '{"ppl": 3,\n "tokens_scored": }\n' >"$T/broken.json"
expect_exit 1 "$SUBBIT" report "$T/broken.json" -o "$T/bad.html"
expect_err_line "^subbit report: .*broken\.json: not valid JSON \(line 2, byte [0-9]+\)$"
expect_exit 1 "$SUBBIT" report "$T/nope.json" -o "$T/bad.html"
expect_err_line "^subbit report: .*nope\.json"
expect_exit 1 "$SUBBIT" report "$T" -o "$T/bad.html"
expect_err_line "^subbit report: .*: is a directory$"
expect_no_file "$T/bad.html"
expect_exit 2 "$SUBBIT" report "$T/mem.json"
expect_exit 2 "$SUBBIT" report -o "$T/bad.html"
finish
