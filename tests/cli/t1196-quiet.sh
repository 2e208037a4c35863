#!/usr/bin/env bash
# -q/--quiet means one thing in every command (issue 15): no progress, no notes
# and no summary lines on stderr; warnings, errors and what happened to a file
# that was there (replaced, removed) stay. (run's -q was "no
# speed line", synth's "no progress bar": both are now the general rule.)
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
# every command takes -q and --quiet, and its --help says what it does
for cmd in $("$SUBBIT" --help | awk '/^   [a-z]+ / { print $1 }'); do
  expect_exit 0 "$SUBBIT" "$cmd" -q --help
  grep -Eq -- '^  -q, --quiet +no progress or notes on stderr' "$T/out" && ok || bad "$cmd --help: $(grep -- '--quiet' "$T/out")"
  expect_exit 0 "$SUBBIT" "$cmd" --quiet --help
done
# quiet_case NAME CMD...: CMD says something on stderr, CMD -q nothing
quiet_case() {
  local name=$1; shift
  "$@" >/dev/null 2>"$T/e1"
  "$@" -q >/dev/null 2>"$T/e2"
  [ -s "$T/e1" ] && ok || bad "$name: nothing on stderr without -q (the case tests nothing)"
  [ ! -s "$T/e2" ] && ok || bad "$name -q: $(head -2 "$T/e2")"
}
# synth's summary line, written to a new folder each time
expect_exit 0 "$SUBBIT" synth -o "$T/s"
grep -q "^subbit synth: wrote " "$T/err" && ok || bad "synth: no summary line (the case tests nothing)"
expect_exit 0 "$SUBBIT" synth -o "$T/s2" -q
[ ! -s "$T/err" ] && ok || bad "synth -q: $(head -2 "$T/err")"
quiet_case "run (speed line)" "$SUBBIT" run "$M" -p "Once" -n 3 --temp 0
quiet_case "mem (the preset used)" "$SUBBIT" mem google/gemma-2-9b-it
# report's summary line (on stdout): gone with -q
"$SUBBIT" mem "$M" --json >"$T/m.json"
expect_exit 0 "$SUBBIT" report "$T/m.json" -o "$T/r.html"
grep -q "^wrote " "$T/out" && ok || bad "report: no summary line (the case tests nothing)"
expect_exit 0 "$SUBBIT" report "$T/m.json" -o "$T/r.html" -f -q
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] && ok || bad "report -q: $(cat "$T/out" "$T/err" | head -2)"
# warnings stay (mem's -q hides only its notes on what it assumed of a config)
expect_exit 0 "$SUBBIT" mem "$M" --ctx 2048 -q
expect_err_line "^subbit mem: warning: --ctx 2048 is above the model's context \(512\)$"
expect_exit 0 "$SUBBIT" run "$M" -p "Once" -n 600 --temp 0 -q
expect_err_line "^subbit run: warning: stopped at the end of the model's context \(512 tokens\)"
# what happened to a file that was there stays (replaced, removed)
expect_exit 0 "$SUBBIT" synth -o "$T/s" -f -q
grep -q "^subbit synth: replaced $T/s/config.json$" "$T/err" && ok || bad "synth -f -q: replaced not said: $(head -2 "$T/err")"
grep -q "wrote" "$T/err" && bad "synth -q: the summary line" || ok
# errors stay
expect_exit 1 "$SUBBIT" inspect "$T/nope.gguf" -q
[ -s "$T/err" ] && ok || bad "inspect -q: no error message"
# progress: on a terminal (script(1)) ppl draws it, with -q it does not
if command -v script >/dev/null; then
  script -qec "'$SUBBIT' ppl '$M' --text '$SUBBIT_SRC/models/demo.txt' --ctx 64 -t 1" "$T/ts1" >/dev/null 2>&1
  script -qec "'$SUBBIT' ppl '$M' --text '$SUBBIT_SRC/models/demo.txt' --ctx 64 -t 1 -q" "$T/ts2" >/dev/null 2>&1
  grep -q "windows: " "$T/ts1" && ok || bad "ppl drew no progress on a terminal (the case tests nothing)"
  grep -q "windows: " "$T/ts2" && bad "ppl -q drew progress on a terminal" || ok
fi
finish
