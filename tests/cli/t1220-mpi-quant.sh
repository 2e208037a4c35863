#!/usr/bin/env bash
# quant (GPTQ) as an MPI job of 2 and 3 ranks: layers in order, each layer's
# experts split across ranks, their outputs added back in expert order, so the
# file and the report equal the one-process run's; a failing rank leaves no
# output and no scratch file. Under the sanitizers (mpi_lean) only the .subbit
# at -np 2 and the failing rank run.
. "$(dirname "$0")/lib.sh"
need_mpi
M=$SUBBIT_SRC/models/tinymoe
export SUBBIT_PAR_FAULT=
cd "$T" || exit 1
Q=(quant "$M" --calib "$SUBBIT_SRC/models/demo.txt" --calib-tokens 1024 --calib-ctx 256 -t 1 --json)
# (the memory plan is rank 0's: in a job it also holds its experts' outputs)
nums() { grep -Ev '"(seconds|seconds_[a-z]+|peak_rss_bytes|output|tokens_per_second|activation_bytes|predicted_peak_bytes)"' "$1"; }
specs=("s.subbit --to sub1 --experts-only" "q.gguf --to q4_0")
mpi_lean && specs=("${specs[0]}")
for spec in "${specs[@]}"; do
  set -- $spec
  o=$1; shift
  expect_exit 0 "$SUBBIT" "${Q[@]}" -o "n0-$o" "$@"
  nums "$T/out" >"n0-$o.json"
  grep -q '"fallback":	false' "n0-$o.json" && ok || bad "$o: no expert went through GPTQ"
  for n in 2 3; do
    [ "$o" = q.gguf ] && [ $n = 3 ] && continue
    mpi_lean && [ $n = 3 ] && continue
    expect_exit 0 MPIRUN $n "$SUBBIT" "${Q[@]}" -o "n$n-$o" "$@"
    cmp -s "n0-$o" "n$n-$o" && ok || bad "$o -np $n: bytes differ from one process"
    cmp -s "n0-$o.json" <(nums "$T/out") && ok || bad "$o -np $n: report differs"
  done
done
SUBBIT_PAR_FAULT=1:quant expect_exit 1 MPIRUN 2 "$SUBBIT" "${Q[@]}" -o f.subbit --to sub1
[ "$(subbit_lines)" = 1 ] && grep -q '^subbit quant: rank 1: .*fault injected' "$T/err" && ok ||
  bad "fault: $(grep '^subbit' "$T/err" | head -3)"
expect_no_file f.subbit
ls -a | grep -Eq 'rank[0-9]|tmp-' && bad "scratch or temp files left: $(ls -a | grep -E 'rank|tmp-')"
# standard input reaches rank 0 only: --calib - is refused in a job, once
expect_exit 2 MPIRUN 2 "$SUBBIT" quant "$M" -o c.subbit --to q8_0 --calib - <"$SUBBIT_SRC/models/demo.txt"
[ "$(subbit_lines)" = 1 ] && grep -q "^subbit quant: --calib - (standard input) runs as one process" \
  "$T/err" && ok || bad "quant --calib - -np 2: $(grep '^subbit' "$T/err" | head -3)"
expect_no_file c.subbit
mpi_lean && { finish; exit; }
# a rank that fails alone before the layer's first agreement: opening its
# input (rank 1), the dense part of a layer every rank computes (rank 2; on a
# dense model the next agreement is the writer's), a dense matrix it owns: the
# others stop there, one line, exit 1, no output
"$SUBBIT" synth -o dense -q || bad "synth"
# a dense model: each attention and FFN matrix quantized by one rank and sent
expect_exit 0 "$SUBBIT" quant dense "${Q[@]:2}" -o n0-d.subbit --to q4_0
nums "$T/out" >n0-d.json
expect_exit 0 MPIRUN 3 "$SUBBIT" quant dense "${Q[@]:2}" -o n3-d.subbit --to q4_0
cmp -s n0-d.subbit n3-d.subbit && ok || bad "dense -np 3: bytes differ from one process"
cmp -s n0-d.json <(nums "$T/out") && ok || bad "dense -np 3: report differs"
# --act-fit (q4_0; with 4,608 tokens the dense matrices are fitted) as a job of
# 3 ranks, each dense matrix fitted by its owner: the one-process bytes
for i in 1 2 3; do cat "$SUBBIT_SRC/models/demo.txt"; done >demo3.txt
F=(quant "$M" --calib demo3.txt --calib-tokens 4608 --calib-ctx 256 -t 1 --to q4_0 --act-fit --json)
expect_exit 0 "$SUBBIT" "${F[@]}" -o n0-f.subbit
[ "$(grep -c '"act_fit":	true' "$T/out")" -gt 2 ] && ok || bad "--act-fit: no matrix fitted"
expect_exit 0 MPIRUN 3 "$SUBBIT" "${F[@]}" -o n3-f.subbit
cmp -s n0-f.subbit n3-f.subbit && ok || bad "--act-fit -np 3: bytes differ from one process"
for spec in "1:open $M" "2:quant-layer $M" "1:quant-layer dense" "1:quant-dense dense"; do
  set -- $spec
  SUBBIT_PAR_FAULT=$1 expect_exit 1 MPIRUN 3 "$SUBBIT" quant "$2" "${Q[@]:2}" --calib-tokens 256 \
    -o e.gguf --to q8_0
  [ "$(subbit_lines)" = 1 ] && grep -q "^subbit quant: rank ${1%%:*}: .*fault injected" "$T/err" &&
    ok || bad "fault $spec: $(grep '^subbit' "$T/err" | head -3)"
  expect_no_file e.gguf
done
ls -a | grep -Eq 'rank[0-9]|tmp-' && bad "scratch or temp files left: $(ls -a | grep -E 'rank|tmp-')"
finish
