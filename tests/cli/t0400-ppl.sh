#!/usr/bin/env bash
# subbit ppl / verify / run on stories260K: the reference perplexity
# (fixtures/reference/stories260K_reference.json, P2 first 50 chunks: 3.91412),
# one-line errors, verify of a model against itself, and the exit-3 gate.
. "$(dirname "$0")/lib.sh"
need_fixtures
M=$FIXTURES/models/stories260K.gguf
TXT=$FIXTURES/text/tinystories_val.txt

# ppl --json: the reference number, within 1e-4 relative
expect_exit 0 "$SUBBIT" ppl "$M" --text "$TXT" --protocol chunks --ctx 128 --max-chunks 50 -t 2 --json
ppl=$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$T/out")
scored=$(sed -n 's/.*"tokens_scored":[[:space:]]*\([0-9]*\).*/\1/p' "$T/out")
awk -v p="$ppl" 'BEGIN { d = p - 3.9141228998542843; if (d < 0) d = -d; exit !(d <= 3.9141228998542843e-4) }' \
  && ok || bad "ppl '$ppl' is not 3.91412"
[ "$scored" = 3150 ] && ok || bad "tokens_scored '$scored' is not 3150"
grep -q '"protocol":[[:space:]]*"chunks"' "$T/out" && ok || bad "protocol not named in the report"

# the same from the llama2.c copy, blocks protocol (P1, first 100 blocks: 4.18438)
expect_exit 0 "$SUBBIT" ppl "$FIXTURES/models/stories260K.bin" --tokenizer "$FIXTURES/models/tok512.bin" \
  --text "$TXT" --protocol blocks --max-blocks 100 -t 2 --json
ppl=$(sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$T/out")
awk -v p="$ppl" 'BEGIN { d = p - 4.18438370688205; if (d < 0) d = -d; exit !(d <= 4.2e-4) }' \
  && ok || bad "blocks ppl '$ppl' is not 4.18438"

# empty text: exit 1, one line naming the file
: >"$T/empty.txt"
expect_exit 1 "$SUBBIT" ppl "$M" --text "$T/empty.txt"
expect_err_line "^subbit ppl: .*empty.txt: empty text$"
# text too short for one chunk: exit 1, one line
printf 'Once upon a time' >"$T/short.txt"
expect_exit 1 "$SUBBIT" ppl "$M" --text "$T/short.txt" --ctx 128
expect_err_line "^subbit ppl: .*short.txt: text too short"
# not UTF-8: byte fallback, still a number
printf 'Once \xff\xfe upon a \xc3 time.\n\nThe end \x80.' >"$T/bytes.txt"
expect_exit 0 "$SUBBIT" ppl "$M" --text "$T/bytes.txt" --protocol blocks --json
grep -q '"ppl"' "$T/out" && ok || bad "no ppl for non-UTF-8 text"
# --ctx above the model's context: refused, one usage line (issue 15)
expect_exit 2 "$SUBBIT" ppl "$M" --text "$T/bytes.txt" --protocol blocks --ctx 4096 -q
expect_err_line "^subbit ppl: --ctx 4096 is above the model's context \(2048\) \(try 'subbit ppl --help'\)$"
# a missing model: exit 1, one line
expect_exit 1 "$SUBBIT" ppl "$T/nope.gguf" --text "$TXT"
expect_err_line "^subbit ppl: "
expect_exit 2 "$SUBBIT" ppl "$M" --text "$TXT" --protocol nope

# verify a model against itself: KLD 0, top-1 1, exit 0
expect_exit 0 "$SUBBIT" verify --ref "$M" --model "$FIXTURES/models/stories260K.bin" \
  --tokenizer "$FIXTURES/models/tok512.bin" --text "$TXT" --ctx 128 --max-chunks 10 -t 2 \
  --max-kld 1e-9 --min-top1 1 --max-ppl-delta 0.001% --json
grep -Eq '"max":[[:space:]]*0[,}]?$' "$T/out" && ok || bad "KLD max not 0"
grep -Eq '"top1_agreement":[[:space:]]*1[,}]?$' "$T/out" && ok || bad "top-1 not 1"
grep -Eq '"pass":[[:space:]]*true' "$T/out" && ok || bad "not pass"
# the gates at their edge pass; an impossible one (B must beat A by 1%) exits 3
expect_exit 0 "$SUBBIT" verify --ref "$M" --model "$M" --text "$TXT" --ctx 128 --max-chunks 4 \
  --max-kld 0 --min-top1 1 --max-ppl-delta 0 -q
expect_exit 3 "$SUBBIT" verify --ref "$M" --model "$M" --text "$TXT" --ctx 128 --max-chunks 4 \
  --max-ppl-delta=-1% -q
grep -q "check failed: ppl delta" "$T/err" && ok || bad "no failed-check line"
expect_exit 2 "$SUBBIT" verify --ref "$M" --model "$M" --text "$TXT" --min-top1 1.5
# different vocabularies: one line, exit 1
expect_exit 1 "$SUBBIT" verify --ref "$M" --model "$FIXTURES/models/llama-2-tiny-random.gguf" --text "$TXT"
expect_err_line "^subbit verify: vocabulary sizes differ"

# run: greedy from BOS is Karpathy's sample
expect_exit 0 "$SUBBIT" run "$M" -n 30 --temp 0 -q
head -c 60 "$T/out" | grep -q "^Once upon a time, there was a little girl named Lily. She" \
  && ok || bad "greedy text: $(head -c 80 "$T/out")"
# sampled with a seed: repeatable
expect_exit 0 "$SUBBIT" run "$M" -p "Once upon a time" -n 30 --temp 0.9 --seed 7 -q
cp "$T/out" "$T/run1"
expect_exit 0 "$SUBBIT" run "$M" -p "Once upon a time" -n 30 --temp 0.9 --seed 7 -q
cmp -s "$T/out" "$T/run1" && ok || bad "seeded run not repeatable"
finish
