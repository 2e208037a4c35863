#!/usr/bin/env bash
# ppl and verify as MPI jobs of 2 and 3 ranks: the windows are split across
# ranks and the per-position values summed in window order, so every number
# printed equals the one-process run's to the last bit (only the timings
# differ); a rank that fails (SUBBIT_PAR_FAULT) gives one error line and exit 1.
# Under the sanitizers (mpi_lean) only -np 2 ppl and its failing rank run.
. "$(dirname "$0")/lib.sh"
need_mpi
M=$SUBBIT_SRC/models/tinymoe
TXT=$T/short.txt   # 11 blocks of the demo text: windows of different lengths
head -c 6000 "$SUBBIT_SRC/models/demo.txt" >"$TXT"
export SUBBIT_PAR_FAULT=
nums() { grep -Ev '"(seconds|tokens_per_second)"' "$1"; }

expect_exit 0 "$SUBBIT" ppl "$M" --text "$TXT" --protocol blocks -t 1 --json
cp "$T/out" "$T/ppl1.json"
grep -q '"tokens_scored":	1924' "$T/ppl1.json" && ok || bad "one process: not 1924 tokens scored"
ranks="2 3"
mpi_lean && ranks=2
for n in $ranks; do
  expect_exit 0 MPIRUN $n "$SUBBIT" ppl "$M" --text "$TXT" --protocol blocks -t 1 --json
  cmp -s <(nums "$T/ppl1.json") <(nums "$T/out") && ok || bad "ppl -np $n differs from one process"
  [ -s "$T/err" ] && bad "ppl -np $n: stderr not empty: $(head -2 "$T/err")"
done
# a failing rank: one line from subbit (mpirun adds its own notice), exit 1, no result
SUBBIT_PAR_FAULT=1:ppl expect_exit 1 MPIRUN 2 "$SUBBIT" ppl "$M" --text "$TXT" -t 1
[ "$(subbit_lines)" = 1 ] && grep -q '^subbit ppl: rank 1: fault injected' "$T/err" && ok ||
  { bad "ppl fault:"; cat -A "$T/err" | head; }
[ -s "$T/out" ] && bad "ppl fault: a result was printed"
mpi_lean && { finish; exit; }

# chunks: more ranks than windows leaves a rank with none
expect_exit 0 "$SUBBIT" ppl "$M" --text "$TXT" --ctx 128 -t 1
grep -v speed "$T/out" >"$T/chunks1"
expect_exit 0 MPIRUN 3 "$SUBBIT" ppl "$M" --text "$TXT" --ctx 128 -t 1
cmp -s "$T/chunks1" <(grep -v speed "$T/out") && ok || bad "ppl chunks -np 3 differs"
[ "$(grep -c '^perplexity' "$T/out")" = 1 ] && ok || bad "ppl -np 3: not one result printed"

"$SUBBIT" convert "$M" -o "$T/q.gguf" --to q4_0 -q
expect_exit 0 "$SUBBIT" verify --ref "$M" --model "$T/q.gguf" --text "$TXT" --protocol blocks -t 1
cp "$T/out" "$T/v1"
expect_exit 0 MPIRUN 2 "$SUBBIT" verify --ref "$M" --model "$T/q.gguf" --text "$TXT" \
  --protocol blocks -t 1
cmp -s "$T/v1" "$T/out" && ok || bad "verify -np 2 differs from one process"

SUBBIT_PAR_FAULT=2:verify expect_exit 1 MPIRUN 3 "$SUBBIT" verify --ref "$M" --model "$T/q.gguf" \
  --text "$TXT" -t 1 --report "$T/r.html"
[ "$(subbit_lines)" = 1 ] && ok || bad "verify fault: $(grep '^subbit' "$T/err" | head -3)"
expect_no_file "$T/r.html"
# a rank that cannot read its input (all ranks read the same path here)
expect_exit 1 MPIRUN 2 "$SUBBIT" ppl "$M" --text "$T/missing.txt"
[ "$(subbit_lines)" = 1 ] && ok || bad "missing text: $(grep '^subbit' "$T/err" | head -3)"
# standard input reaches rank 0 only: --text - is refused in a job, once
expect_exit 2 MPIRUN 2 "$SUBBIT" ppl "$M" --text - <"$TXT"
[ "$(subbit_lines)" = 1 ] && grep -q "^subbit ppl: --text - (standard input) runs as one process" \
  "$T/err" && ok || bad "ppl --text - -np 2: $(grep '^subbit' "$T/err" | head -3)"
expect_exit 2 MPIRUN 2 "$SUBBIT" verify --ref "$M" --model "$M" --text - <"$TXT"
[ "$(subbit_lines)" = 1 ] && ok || bad "verify --text - -np 2: $(grep '^subbit' "$T/err" | head -3)"
# commands that do not run as jobs say so once
expect_exit 1 MPIRUN 2 "$SUBBIT" inspect "$M"
[ "$(subbit_lines)" = 1 ] && ok || bad "inspect -np 2: $(grep '^subbit' "$T/err" | head -3)"
finish
