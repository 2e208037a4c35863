#!/usr/bin/env bash
# quant --max-memory as an MPI job of 2 ranks, each under its own cap: a
# 4-layer synthetic MoE with 8192 calibration tokens, so that under a 40 MiB
# cap each rank spills its activations (with its experts' weighted outputs,
# broadcast to the others expert by expert, CH rows at a time) and its
# quantized matrices to its own scratch files. The file equals the
# one-process uncapped run's byte for byte, rank 0's peak RSS stays under the
# cap, no scratch file is left; a rank failing in its experts stops both, one
# line, no output. Under the sanitizers (mpi_lean) RSS and the failure are not
# checked.
. "$(dirname "$0")/lib.sh"
need_mpi
export SUBBIT_PAR_FAULT=
cd "$T" || exit 1
"$SUBBIT" synth --arch mixtral --layers 4 --dim 128 --hidden 512 --experts 8 --top-k 2 \
  --dtype bf16 -q -o moe || bad "synth"
for i in $(seq 8); do cat "$SUBBIT_SRC/models/demo.txt"; done >calib.txt   # 15 KB: byte tokens
mkdir scratch
cap=40M capb=$((40 * 1048576))
Q=(quant moe --calib calib.txt --calib-tokens 8192 --calib-ctx 256 --to q4_0 -t 1 --json)
expect_exit 0 "$SUBBIT" "${Q[@]}" -o n0.subbit
grep -q '"spilled":	false' "$T/out" && ok || bad "one process: spilled"

expect_exit 0 MPIRUN 2 "$SUBBIT" "${Q[@]}" -o n2.subbit --max-memory "$cap" --scratch scratch
peak=$(json_num peak_rss_bytes)
grep -q '"spilled":	true' "$T/out" && ok || bad "-np 2 capped: activations not spilled"
grep -q '"quantized_spilled":	true' "$T/out" && ok || bad "-np 2 capped: matrices not spilled"
cmp -s n0.subbit n2.subbit && ok || bad "-np 2 capped: bytes differ from one process"
[ -z "$(ls -A scratch)" ] && ok || bad "scratch files left: $(ls -A scratch)"
mpi_lean && { finish; exit; }
[ "$peak" -le "$capb" ] && ok || bad "rank 0's peak RSS $peak above the cap $capb"
SUBBIT_PAR_FAULT=1:quant expect_exit 1 MPIRUN 2 "$SUBBIT" "${Q[@]}" -o f.subbit \
  --max-memory "$cap" --scratch scratch
[ "$(subbit_lines)" = 1 ] && grep -q '^subbit quant: rank 1: .*fault injected' "$T/err" && ok ||
  bad "fault: $(grep '^subbit' "$T/err" | head -3)"
expect_no_file f.subbit
[ -z "$(ls -A scratch)" ] && ok || bad "scratch files left after the fault: $(ls -A scratch)"
ls -a | grep -Eq 'rank[0-9]|tmp-' && bad "scratch or temp files left: $(ls -a | grep -E 'rank|tmp-')"
finish
