#!/usr/bin/env bash
# Progress on a terminal (script(1) gives the command one): ppl draws windows
# with a rate and ETA, tokens/s and the running perplexity, whose last value is
# the perplexity printed at the end; convert to sub1 counts input MiB against
# a total that does not move. Not on a pipe, nor with -q. (issue 15)
. "$(dirname "$0")/lib.sh"
command -v script >/dev/null || { echo "SKIP: no script(1)"; exit 77; }
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
# a model slow enough (7 M dense parameters, one thread: ~1 s) for lines before the last
"$SUBBIT" synth -o "$T/big" --dim 384 --hidden 1024 --layers 4 -q || bad "synth"
script -qec "'$SUBBIT' ppl '$T/big' --text '$TEXT' --ctx 128 -t 1" "$T/ts" >/dev/null \
  || bad "ppl under script"
tr '\r' '\n' <"$T/ts" >"$T/lines"
grep -Eq '^windows: +[0-9.]+% \([0-9]+ / 15, [0-9.]+/s, ETA [0-9]+:[0-9]{2}\), [0-9]+ tokens/s, ppl [0-9.]+' "$T/lines" \
  && ok || bad "no ppl progress line with rate, ETA, tokens/s, ppl: $(grep windows "$T/lines" | head -2)"
last=$(grep -Eo '^windows: +100.0% .*ppl [0-9.]+' "$T/lines" | tail -1 | sed 's/.*ppl //')
final=$(sed -n 's/^perplexity: *\([0-9.]*\) .*/\1/p' "$T/lines")
[ -n "$last" ] && [ "$last" = "$final" ] && ok || bad "running ppl at 100% '$last' is not the result '$final'"
# convert to sub1: "convert: P% (done / 5.0 MiB ...)": 5.0 MiB is tinymoe's bf16 input, every line
script -qec "'$SUBBIT' convert '$M' -o '$T/s.subbit' --to sub1 --experts-only" "$T/ts2" >/dev/null || bad "convert"
tr '\r' '\n' <"$T/ts2" | grep -Eo '^convert: +[0-9.]+% \([0-9.]+ / [0-9.]+ MiB' >"$T/conv"
[ -s "$T/conv" ] && ok || bad "no convert progress"
n=$(sed 's|.* / ||' "$T/conv" | sort -u | tr '\n' ' ')
[ "$n" = "5.0 MiB " ] && ok || bad "convert progress totals: '$n' (want only the input's 5.0 MiB)"
# on a pipe: nothing but the result
expect_exit 0 "$SUBBIT" ppl "$M" --text "$TEXT" --ctx 128 --max-chunks 2
[ ! -s "$T/err" ] && ok || bad "progress on a pipe"
finish
