#!/usr/bin/env bash
# Every subcommand answers -h/--help on stdout with exit 0 (git's t0012);
# unknown commands and options are usage errors (exit 2).
. "$(dirname "$0")/lib.sh"
cmds=$("$SUBBIT" --help | awk '/^commands:/{on=1;next} on && NF {print $1} /^$/{if(on)exit}')
[ -n "$cmds" ] || bad "no commands listed by --help"
for c in $cmds; do
  expect_exit 0 "$SUBBIT" "$c" --help
  grep -q "usage: subbit $c" "$T/out" || bad "$c --help: no usage line on stdout"
  expect_exit 0 "$SUBBIT" help "$c"
  expect_exit 0 "$SUBBIT" "$c" -h
done
expect_exit 0 "$SUBBIT" --version
grep -Eq '^subbit [0-9]+\.[0-9]+' "$T/out" || bad "--version output"
expect_exit 2 "$SUBBIT" no-such-command
expect_exit 2 "$SUBBIT"
finish
