#!/usr/bin/env bash
# A context beyond the model's limit: ppl, verify and run --ctx refuse it (exit
# 2, one line); run -n past the context says where it stopped instead of
# stopping silently; run and synth have --json. (issue 15)
. "$(dirname "$0")/lib.sh"
"$SUBBIT" synth -o "$T/m" --ctx 32 -q || bad "synth"
printf 'the cat sat on the mat and the dog sat on the log.\n%.0s' $(seq 1 8) >"$T/t.txt"
expect_exit 2 "$SUBBIT" ppl "$T/m" --text "$T/t.txt" --ctx 64
expect_err_line "^subbit ppl: --ctx 64 is above the model's context \(32\) \(try 'subbit ppl --help'\)$"
expect_exit 0 "$SUBBIT" ppl "$T/m" --text "$T/t.txt" --ctx 32 -q
expect_exit 2 "$SUBBIT" verify --ref "$T/m" --model "$T/m" --text "$T/t.txt" --ctx 33
expect_err_line "^subbit verify: --ctx 33 is above the reference model's context \(32\)"
expect_exit 2 "$SUBBIT" run "$T/m" -p "ab" --ctx 64
expect_err_line "^subbit run: --ctx 64 is above the model's context \(32\)"
# BOS + 2 prompt bytes, then tokens until the 32 positions are used
expect_exit 0 "$SUBBIT" run "$T/m" -p "ab" -n 100 --temp 0 --json
expect_err_line "^subbit run: warning: stopped at the end of the model's context \(32 tokens\) after [0-9]+ of the -n 100 tokens$"
grep -Eq '"stop":[[:space:]]*"context"' "$T/out" && ok || bad "run --json: stop is not context"
grep -Eq '"n_ctx":[[:space:]]*32,' "$T/out" && ok || bad "run --json: n_ctx"
grep -Eq '"prompt_tokens":[[:space:]]*3,' "$T/out" && ok || bad "run --json: prompt_tokens"
grep -Eq '"text":[[:space:]]*"ab' "$T/out" && ok || bad "run --json: text"
# within the context: no warning, stop "limit", the tokens asked for
expect_exit 0 "$SUBBIT" run "$T/m" -p "ab" -n 5 --temp 0 --json
[ ! -s "$T/err" ] && ok || bad "run -n 5 wrote to stderr: $(cat "$T/err")"
grep -Eq '"tokens_generated":[[:space:]]*5,' "$T/out" && ok || bad "run --json: tokens_generated"
# synth --json: what it wrote; mixtral defaults counted by hand: embeddings and
# output 2 x 258 x 64, per layer q,o 64x64, k,v 32x64, 4 experts x 3 x 64x96,
# router 4x64, 2 norms of 64 (86,400 x 2 layers), final norm 64 = 205,888
expect_exit 0 "$SUBBIT" synth -o "$T/s" --arch mixtral --json
grep -Eq '"params":[[:space:]]*205888,' "$T/out" && ok || bad "synth --json params"
grep -Eq '"experts_per_token":[[:space:]]*2,' "$T/out" && ok || bad "synth --json experts_per_token"
[ ! -s "$T/err" ] && ok || bad "synth --json wrote to stderr"
finish
