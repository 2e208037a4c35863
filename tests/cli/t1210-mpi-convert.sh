#!/usr/bin/env bash
# convert as an MPI job of 2 and 3 ranks: each rank encodes its share of the
# tensors and pwrites them at their planned offsets (GGUF, .subbit) or into a
# scratch file rank 0 writes from (safetensors), so every container's bytes
# equal the one-process output's (GGUF, .subbit with a variable-length code,
# a sharded safetensors folder with its index, one .safetensors file), and so
# do the --stats numbers; a failing rank leaves no output and no scratch file.
# Under the sanitizers (mpi_lean) only the .subbit at -np 2 and one failing
# rank run.
. "$(dirname "$0")/lib.sh"
need_mpi
M=$SUBBIT_SRC/models/tinymoe
export SUBBIT_PAR_FAULT=
cd "$T" || exit 1
# the report without what differs by run: timings, peak RSS, the output's name
nums() { grep -Ev '"(seconds|peak_rss_bytes|output)"' "$1"; }
same() {   # same A B WHAT: files or folders byte for byte
  if diff -r "$1" "$2" >/dev/null; then ok; else bad "$3: output differs from one process"; fi
}
run() {   # run N OUT ARGS...: N ranks (0: one process), outputs n<N>-OUT and its JSON
  local n=$1 o=$2; shift 2
  if [ "$n" = 0 ]; then
    expect_exit 0 "$SUBBIT" convert "$M" -o "n0-$o" "$@" -t 1 --json
  else
    expect_exit 0 MPIRUN "$n" "$SUBBIT" convert "$M" -o "n$n-$o" "$@" -t 1 --json
  fi
  nums "$T/out" >"n$n-$o.json"
}
specs=("s.subbit --to sub1 --experts-only --stats" "q.gguf --to q4_0"
       "folder --to int8 --shard-size 1M" "h.safetensors --to f16")
mpi_lean && specs=("${specs[0]}")
for spec in "${specs[@]}"; do
  set -- $spec
  o=$1; shift
  run 0 "$o" "$@"
  for n in 2 3; do
    case "$o" in folder|h.safetensors) [ $n = 3 ] && continue ;; esac
    mpi_lean && [ $n = 3 ] && continue
    run $n "$o" "$@"
    same "n0-$o" "n$n-$o" "$o -np $n"
    cmp -s "n0-$o.json" "n$n-$o.json" && ok || bad "$o -np $n: report differs"
  done
done
grep -q '"rmse"' n2-s.subbit.json && ok || bad "-np 2 --stats: no rmse in the report"
if ! mpi_lean; then
  grep -q '"rmse"' n3-s.subbit.json && ok || bad "-np 3 --stats: no rmse in the report"
  [ -f n2-folder/model.safetensors.index.json ] && ok || bad "no shard index"
fi

# a rank that fails: one error line, exit 1, no output, no temp or scratch file
outs="f.gguf dir" np=3
mpi_lean && outs=dir np=2
for o in $outs; do
  SUBBIT_PAR_FAULT=1:convert expect_exit 1 MPIRUN $np "$SUBBIT" convert "$M" -o "$o" --to int8 \
    --shard-size 1M -t 1
  [ "$(subbit_lines)" = 1 ] && grep -q "^subbit convert: rank 1: $o: fault injected" "$T/err" &&
    ok || bad "fault $o: $(grep '^subbit' "$T/err" | head -3)"
  expect_no_file "$o"
done
ls -a | grep -Eq 'rank[0-9]|tmp-' && bad "scratch or temp files left: $(ls -a | grep -E 'rank|tmp-')"
mpi_lean && { finish; exit; }
# a rank that fails alone before the first agreement (opening its input, its
# plan) stops the others there: one line naming it, exit 1, nothing written
for f in 2:open 1:convert-plan; do
  SUBBIT_PAR_FAULT=$f expect_exit 1 MPIRUN 3 "$SUBBIT" convert "$M" -o e.subbit --to int8 -t 1
  [ "$(subbit_lines)" = 1 ] && grep -q "^subbit convert: rank ${f%%:*}: .*fault injected" "$T/err" &&
    ok || bad "fault $f: $(grep '^subbit' "$T/err" | head -3)"
  expect_no_file e.subbit
done
# an existing output: refused before any rank works
expect_exit 1 MPIRUN 2 "$SUBBIT" convert "$M" -o n0-q.gguf --to q8_0
[ "$(subbit_lines)" = 1 ] && grep -q 'already exists' "$T/err" && ok || bad "existing output"
same n0-q.gguf n2-q.gguf "existing output kept"
finish
