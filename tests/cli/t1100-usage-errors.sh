#!/usr/bin/env bash
# Usage errors are one line: "subbit CMD: problem (try 'subbit CMD --help')",
# exit 2, never the whole help; getopt's complaints carry the same prefix; a
# typo'd command names the nearest one; messages never repeat their prefix.
# Encoding names take any case. (issue 15)
. "$(dirname "$0")/lib.sh"
cmds=$("$SUBBIT" --help | awk '/^commands:/{on=1;next} on && NF {print $1} /^$/{if(on)exit}')
for c in $cmds; do
  expect_exit 2 "$SUBBIT" "$c" --no-such-option
  expect_err_line "^subbit $c: unknown option '--no-such-option' \(try 'subbit $c --help'\)$"
  expect_exit 2 "$SUBBIT" "$c" -Z
  expect_err_line "^subbit $c: unknown option '-Z' \(try 'subbit $c --help'\)$"
done
# a value missing, a value given to a flag, a value out of range
expect_exit 2 "$SUBBIT" convert in -o
expect_err_line "^subbit convert: option '-o' needs a value \(try 'subbit convert --help'\)$"
expect_exit 2 "$SUBBIT" ppl m --text
expect_err_line "^subbit ppl: option '--text' needs a value \(try 'subbit ppl --help'\)$"
expect_exit 2 "$SUBBIT" inspect --json=yes m
expect_err_line "^subbit inspect: option '--json' takes no value \(try 'subbit inspect --help'\)$"
expect_exit 2 "$SUBBIT" ppl m --text t --ctx 0
expect_err_line "^subbit ppl: --ctx expects an integer in \[2, [0-9]+\], got '0' \(try 'subbit ppl --help'\)$"
expect_exit 2 "$SUBBIT" synth --layers 0 -o "$T/s"
expect_err_line "^subbit synth: --layers expects an integer"
# a missing operand
expect_exit 2 "$SUBBIT" ppl
expect_err_line "^subbit ppl: expected one MODEL \(try 'subbit ppl --help'\)$"
expect_exit 2 "$SUBBIT" convert
expect_err_line "^subbit convert: expected one input model \(try 'subbit convert --help'\)$"
expect_exit 2 "$SUBBIT" quant m -o "$T/q.subbit" --to sub1 --method nope
expect_err_line "^subbit quant: --method expects gptq or rtn, got 'nope' \(try 'subbit quant --help'\)$"
# a typo'd command: the nearest, in one line
expect_exit 2 "$SUBBIT" convfert
expect_err_line "^subbit: 'convfert' is not a subbit command; did you mean 'convert'\?$"
expect_exit 2 "$SUBBIT" verfiy
expect_err_line "did you mean 'verify'\?$"
expect_exit 2 "$SUBBIT" help qunat
expect_err_line "did you mean 'quant'\?$"
expect_exit 2 "$SUBBIT" zzzzzz
expect_err_line "^subbit: 'zzzzzz' is not a subbit command \(see 'subbit --help'\)$"
# synth's own checks: one prefix, not "synth: synth:"
expect_exit 1 "$SUBBIT" synth --heads 3 -o "$T/s"
expect_err_line "^subbit synth: --dim 64 must be a multiple of 2 x --heads 3$"
expect_no_file "$T/s"

# encoding names in any case: Q8_0 is q8_0
"$SUBBIT" synth -o "$T/m" -q || bad "synth"
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/u.gguf" --to Q8_0 --rule '*norm*=F32' --json -q
grep -Eq '"to":[[:space:]]*"q8_0"' "$T/out" && ok || bad "--to Q8_0 did not give q8_0"
expect_exit 0 "$SUBBIT" mem "$T/m" --kv-type Q8_0 --enc Q4_0 --json
grep -Eq '"type":[[:space:]]*"q8_0"' "$T/out" && grep -Eq '"weights_encoding":[[:space:]]*"q4_0"' "$T/out" && ok || bad "mem --kv-type Q8_0 --enc Q4_0"
expect_exit 2 "$SUBBIT" convert "$T/m" -o "$T/v.gguf" --to Q8
expect_err_line "^subbit convert: --to: unknown encoding 'Q8' \(try 'subbit convert --help'\)$"
finish
