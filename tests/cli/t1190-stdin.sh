#!/usr/bin/env bash
# --text - reads standard input (ppl, verify; quant --calib -): the same result
# as the file; an empty stdin is one line naming stdin. (issue 15)
. "$(dirname "$0")/lib.sh"
"$SUBBIT" synth -o "$T/m" -q || bad "synth"
printf 'the cat sat on the mat and the dog sat on the log.\n%.0s' $(seq 1 12) >"$T/t.txt"
expect_exit 0 "$SUBBIT" ppl "$T/m" --text "$T/t.txt" --ctx 64 --json
grep -E '"(ppl|tokens_scored|sum_nll)"' "$T/out" >"$T/file.nums"
expect_exit 0 "$SUBBIT" ppl "$T/m" --text - --ctx 64 --json <"$T/t.txt"
grep -E '"(ppl|tokens_scored|sum_nll)"' "$T/out" >"$T/stdin.nums"
[ -s "$T/file.nums" ] && cmp -s "$T/file.nums" "$T/stdin.nums" && ok || bad "ppl --text - differs from the file"
expect_exit 1 "$SUBBIT" ppl "$T/m" --text - </dev/null
expect_err_line "^subbit ppl: stdin: empty text$"
expect_exit 0 "$SUBBIT" verify --ref "$T/m" --model "$T/m" --text - --ctx 64 --max-kld 0 --json <"$T/t.txt"
grep -Eq '"pass":[[:space:]]*true' "$T/out" && ok || bad "verify --text -"
finish
