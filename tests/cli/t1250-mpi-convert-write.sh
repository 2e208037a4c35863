#!/usr/bin/env bash
# convert as an MPI job writes a GGUF or .subbit into one file: rank 0 makes
# the temp output and plans every tensor's offset, each rank pwrites its own
# tensors there, rank 0 commits once every rank's bytes are in (issue 16).
# Under --max-memory a 2-rank job of a 75 MiB synthetic MoE stays under the
# cap (peak RSS: the report's peak_rss_bytes, the largest over the ranks) with
# the one-process bytes: a q8_0 .subbit, whose 20 MiB a rank holds until the
# offsets are known, spills past its budget to a rank scratch file; a q8_0
# GGUF streams to its planned offsets. A rank failing while the others write
# leaves no output, temp or scratch file; peak_rss_bytes is the ranks'
# largest, not rank 0's. Under the sanitizers (mpi_lean) the GGUF run is left out.
. "$(dirname "$0")/lib.sh"
need_mpi
export SUBBIT_PAR_FAULT=
cd "$T" || exit 1
"$SUBBIT" synth --arch mixtral --layers 2 --dim 512 --hidden 1024 --experts 12 --top-k 2 \
  --dtype bf16 -q -o moe || bad "synth"
specs=("48 s.subbit --to q8_0" "40 g.gguf --to q8_0")
mpi_lean && specs=("${specs[0]}")
for spec in "${specs[@]}"; do
  set -- $spec
  mb=$1 o=$2; shift 2
  cap=$((mb * 1048576))
  "$SUBBIT" convert moe -o "ref-$o" "$@" -q -t 1
  expect_exit 0 MPIRUN 2 "$SUBBIT" convert moe -o "$o" "$@" --max-memory "${mb}M" -t 1 --json
  peak=$(json_num peak_rss_bytes)
  if [ -n "${ASAN_OPTIONS:-}" ]; then
    ok   # AddressSanitizer's shadow memory and quarantine are not ours to cap
  elif [ -n "$peak" ] && [ "$peak" -le "$cap" ]; then ok
  else bad "$o -np 2: peak RSS ${peak:-?} above the cap $cap"; fi
  cmp -s "$o" "ref-$o" && ok || bad "$o -np 2 capped: differs from one process"
done

# rank 1 fails once rank 0's temp output holds the planned layout and the
# ranks are writing into it: one line, exit 1, nothing left
SUBBIT_PAR_FAULT=1:convert-write expect_exit 1 MPIRUN 2 "$SUBBIT" convert moe -o f.subbit \
  --to q8_0 --max-memory 48M -t 1
[ "$(subbit_lines)" = 1 ] && grep -q "^subbit convert: rank 1: f.subbit: fault injected" "$T/err" &&
  ok || bad "fault while writing: $(grep '^subbit' "$T/err" | head -3)"
expect_no_file f.subbit
ls -a | grep -Eq 'rank[0-9]|tmp-' && bad "scratch or temp files left: $(ls -a | grep -E 'rank|tmp-')"

# the job's peak RSS is its largest rank's: rank 1 touches 64 MiB more
SUBBIT_PAR_FAULT=1:peak-rss expect_exit 0 MPIRUN 2 "$SUBBIT" convert "$SUBBIT_SRC/models/tinymoe" \
  -o p.gguf --to q8_0 -t 1 --json
peak=$(json_num peak_rss_bytes)
[ -n "$peak" ] && [ "$peak" -gt $((64 * 1048576)) ] && ok ||
  bad "peak_rss_bytes ${peak:-?} is not rank 1's (above 64 MiB)"
finish
