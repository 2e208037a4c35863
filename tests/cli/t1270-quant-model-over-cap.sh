#!/usr/bin/env bash
# quant --max-memory of a model larger than the cap: a 20-layer synthetic MoE
# of 62 MiB in bf16 is GPTQ-quantized to int8 (31 MiB of quantized matrices)
# under a 38 MiB cap. Each finished expert's and layer's matrices go to a
# scratch file at their tensor's place and the write maps it back, so the peak
# RSS (getrusage: peak_rss_bytes) stays under the cap while the uncapped run
# goes past it; the file equals the uncapped run's byte for byte (int8: rows
# and their scales in two places of each tensor), no scratch file is left, and
# `mem --for quant --max-memory` gives the plan quant ran with, at or above the
# measured peak and within 1.5x of it. Under the sanitizers RSS is ASan's: a
# 6-layer model checks the spilled path's bytes only. The same into GGUF (q8_0).
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
layers=20
[ -n "${ASAN_OPTIONS:-}" ] && layers=6
"$SUBBIT" synth --arch mixtral --layers "$layers" --dim 128 --hidden 512 --experts 8 --top-k 2 \
  --dtype bf16 -q -o moe || bad "synth"
cat "$SUBBIT_SRC/models/demo.txt" "$SUBBIT_SRC/models/demo.txt" >calib.txt
mkdir scratch dst
cap=38M capb=$((38 * 1048576))
Q=(quant moe --calib calib.txt --calib-tokens 256 --calib-ctx 256 --to int8 -t 1 --json)
M=(mem moe --for quant --to int8 --calib-tokens 256 --calib-ctx 256 -t 1 --json)
size=$(stat -c %s moe/model.safetensors)
[ -n "${ASAN_OPTIONS:-}" ] || [ $((size * 2)) -gt $((capb * 3)) ] && ok ||
  bad "the model ($size bytes) is not 1.5x the cap $capb"

expect_exit 0 "$SUBBIT" "${Q[@]}" -o ref.subbit
ref_peak=$(json_num peak_rss_bytes)
grep -q '"quantized_spilled":	false' "$T/out" && ok || bad "uncapped run: matrices spilled"
qbytes=$(json_num quantized_bytes)

expect_exit 0 "$SUBBIT" "${Q[@]}" -o dst/capped.subbit --max-memory "$cap" --scratch scratch
peak=$(json_num peak_rss_bytes)
pred=$(json_num predicted_peak_bytes)
grep -q '"quantized_spilled":	true' "$T/out" && ok || bad "capped run: matrices not spilled"
grep -q '"spilled":	false' "$T/out" && ok || bad "capped run: activations spilled (they fit)"
cmp -s ref.subbit dst/capped.subbit && ok || bad "the capped output differs from the uncapped one"
[ -z "$(ls -A scratch)" ] && ok || bad "scratch files left: $(ls -A scratch)"
[ "$(ls -A dst)" = capped.subbit ] && ok || bad "files beside the output: $(ls -A dst)"

# mem gives the plan quant ran with: the matrices spilled, at most one
# layer's dense matrices and one expert's resident at once
expect_exit 0 "$SUBBIT" "${M[@]}" --max-memory "$cap"
[ "$(json_num peak_bytes)" = "$pred" ] && ok || bad "mem --max-memory: $(json_num peak_bytes), quant planned $pred"
grep -q '"held_spilled":	true' "$T/out" && ok || bad "mem --max-memory: matrices not spilled"
[ "$(json_num held_bytes)" = "$qbytes" ] && ok || bad "mem: held $(json_num held_bytes), quant $qbytes"
window=$(json_num held_window_bytes)
[ "$window" -gt 0 ] && [ $((window * 10)) -lt "$qbytes" ] && ok ||
  bad "mem: a window of $window bytes of $qbytes quantized"
if [ -z "${ASAN_OPTIONS:-}" ]; then   # AddressSanitizer's shadow and quarantine are not ours
  [ "$peak" -le "$capb" ] && ok || bad "peak RSS $peak above the cap $capb"
  [ "$ref_peak" -gt "$capb" ] && ok || bad "the uncapped run's peak $ref_peak is under the cap: it does not bind"
  # measured <= predicted <= 1.5 x measured
  [ "$peak" -le "$pred" ] && [ $((pred * 2)) -le $((peak * 3)) ] && ok ||
    bad "predicted $pred for a measured peak of $peak"
fi

# into GGUF (q8_0: stacked expert tensors, permuted q/k) under the same cap: the
# same bytes as uncapped, under the cap
Q=(quant moe --calib calib.txt --calib-tokens 256 --calib-ctx 256 --to q8_0 -t 1 --json)
expect_exit 0 "$SUBBIT" "${Q[@]}" -o ref.gguf
expect_exit 0 "$SUBBIT" "${Q[@]}" -o dst/capped.gguf --max-memory "$cap" --scratch scratch
gpeak=$(json_num peak_rss_bytes)
grep -q '"quantized_spilled":	true' "$T/out" && ok || bad "GGUF capped run: matrices not spilled"
cmp -s ref.gguf dst/capped.gguf && ok || bad "the capped GGUF differs from the uncapped one"
[ -z "$(ls -A scratch)" ] && ok || bad "scratch files left after GGUF: $(ls -A scratch)"
if [ -z "${ASAN_OPTIONS:-}" ]; then
  [ "$gpeak" -le "$capb" ] && ok || bad "GGUF: peak RSS $gpeak above the cap $capb"
fi
finish
