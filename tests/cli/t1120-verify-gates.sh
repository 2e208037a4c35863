#!/usr/bin/env bash
# verify never passes silently: with no threshold the documented defaults
# (--max-ppl-delta 1% --max-kld 0.01 --min-top1 0.95) apply, and the output
# says which gates ran and where they came from; --no-gate measures only.
# (issue 15)
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
V=(verify --ref "$M" --text "$TEXT" --protocol blocks --max-blocks 2)
"$SUBBIT" convert "$M" -o "$T/q8.gguf" --to q8_0 -q >/dev/null || bad "convert q8_0"
"$SUBBIT" convert "$M" -o "$T/tern.subbit" --to tern --experts-only -q >/dev/null || bad "convert tern"
# q8_0 passes the defaults, and says so
expect_exit 0 "$SUBBIT" "${V[@]}" --model "$T/q8.gguf"
grep -Eq '^gates: +ppl delta <= 1% pass; KLD mean <= 0.01 pass; top-1 >= 0.95 pass; \(defaults: no threshold given\)$' "$T/out" \
  && ok || bad "no gates line: $(grep gates "$T/out")"
# round-to-nearest ternary experts fail them (tinymoe loses ~40%): exit 3, the failed gates named
expect_exit 3 "$SUBBIT" "${V[@]}" --model "$T/tern.subbit" --json
grep -Eq '"source":[[:space:]]*"defaults"' "$T/out" && ok || bad "gates.source not defaults"
grep -Eq '"max_ppl_delta_pct":[[:space:]]*1[,]?$' "$T/out" && ok || bad "gates: no max_ppl_delta_pct 1"
grep -Eq '"max_kld":[[:space:]]*0.01[,]?$' "$T/out" && ok || bad "gates: no max_kld 0.01"
grep -Eq '"min_top1":[[:space:]]*0.95[,]?$' "$T/out" && ok || bad "gates: no min_top1 0.95"
grep -Eq '"pass":[[:space:]]*false' "$T/out" && ok || bad "tern passed the defaults"
expect_err_line "^subbit verify: check failed: ppl delta kld top-1$"
# a named gate replaces the defaults: only it runs
expect_exit 0 "$SUBBIT" "${V[@]}" --model "$T/tern.subbit" --max-ppl-delta 90%
grep -Eq '^gates: +ppl delta <= 90% pass; \(as given\)$' "$T/out" && ok || bad "named gate: $(grep gates "$T/out")"
# --no-gate: measured only, exit 0, and it says so
expect_exit 0 "$SUBBIT" "${V[@]}" --model "$T/tern.subbit" --no-gate
grep -q '^gates: *none (--no-gate): measured only$' "$T/out" && ok || bad "--no-gate line"
expect_exit 2 "$SUBBIT" "${V[@]}" --model "$T/tern.subbit" --no-gate --max-kld 1
expect_err_line "^subbit verify: --no-gate with a threshold"
finish
