#!/usr/bin/env bash
# quant --max-memory: GPTQ of a synthetic MoE whose calibration activations
# (49152 tokens: 48 MiB) are larger than the 36 MiB cap it runs under. They
# spill to a scratch file; the peak RSS (getrusage: the report's
# peak_rss_bytes) stays under the cap, the file equals the uncapped run's byte
# for byte, no scratch file is left; `mem --for quant` predicts the peak of both
# runs (the same number quant plans with) at or above the measured peak and
# within 35 % of it. A cap below one layer's need fails before any work. Under
# the sanitizers RSS is ASan's: a smaller run checks the spilled path's bytes.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
"$SUBBIT" synth --arch mixtral --layers 2 --dim 128 --hidden 256 --experts 16 --top-k 2 \
  --dtype bf16 -q -o moe || bad "synth"
for i in $(seq 30); do cat "$SUBBIT_SRC/models/demo.txt"; done >calib.txt   # 58 KB: byte tokens
mkdir scratch dst
if [ -n "${ASAN_OPTIONS:-}" ]; then
  tok=12288 cap=35M   # activations 12 MiB: they fit without a cap, not under this one
else
  tok=49152 cap=36M
fi
Q=(quant moe --calib calib.txt --calib-tokens "$tok" --calib-ctx 256 --to q4_0 -t 1 --json)
M=(mem moe --for quant --to q4_0 --calib-tokens "$tok" --calib-ctx 256 -t 1 --json)
capb=$(( ${cap%M} * 1048576 ))

expect_exit 0 "$SUBBIT" "${Q[@]}" -o ref.subbit
ref_peak=$(json_num peak_rss_bytes)
ref_pred=$(json_num predicted_peak_bytes)
grep -q '"spilled":	false' "$T/out" && ok || bad "uncapped run: spilled"
act=$(json_num activation_bytes)
[ "$act" -gt "$capb" ] || [ -n "${ASAN_OPTIONS:-}" ] && ok || bad "activations $act not above the cap $capb"

expect_exit 0 "$SUBBIT" "${Q[@]}" -o dst/capped.subbit --max-memory "$cap" --scratch scratch
peak=$(json_num peak_rss_bytes)
pred=$(json_num predicted_peak_bytes)
grep -q '"spilled":	true' "$T/out" && ok || bad "capped run: not spilled"
cmp -s ref.subbit dst/capped.subbit && ok || bad "the capped output differs from the uncapped one"
[ -z "$(ls -A scratch)" ] && ok || bad "scratch files left: $(ls -A scratch)"
[ "$(ls -A dst)" = capped.subbit ] && ok || bad "files beside the output: $(ls -A dst)"

# mem predicts what quant planned with, for both runs
expect_exit 0 "$SUBBIT" "${M[@]}"
[ "$(json_num peak_bytes)" = "$ref_pred" ] && ok || bad "mem: $(json_num peak_bytes), quant planned $ref_pred"
expect_exit 0 "$SUBBIT" "${M[@]}" --max-memory "$cap"
[ "$(json_num peak_bytes)" = "$pred" ] && ok || bad "mem --max-memory: $(json_num peak_bytes), quant planned $pred"
grep -q '"spilled":	true' "$T/out" && ok || bad "mem --max-memory: not spilled"
if [ -z "${ASAN_OPTIONS:-}" ]; then   # AddressSanitizer's shadow and quarantine are not ours
  [ "$peak" -le "$capb" ] && ok || bad "peak RSS $peak above the cap $capb"
  for p in "$ref_peak $ref_pred uncapped" "$peak $pred capped"; do
    set -- $p
    # measured <= predicted <= 1.35 x measured
    [ "$1" -le "$2" ] && [ $(( $2 * 100 )) -le $(( $1 * 135 )) ] && ok ||
      bad "$3: predicted $2 for a measured peak of $1"
  done
fi

# a cap below one layer's need: one line naming the parts, before any work
expect_exit 1 "$SUBBIT" "${Q[@]}" -o small.subbit --max-memory 20M
expect_err_line "^subbit quant: moe: --max-memory 20 MiB is below what one layer needs: [0-9]+ MiB \(its weights"
expect_no_file small.subbit
expect_exit 1 "$SUBBIT" "${M[@]}" --max-memory 20M
expect_err_line "below what one layer needs"
# a scratch folder that cannot take the file: one line naming it, no output
expect_exit 1 "$SUBBIT" "${Q[@]}" -o nodir.subbit --max-memory "$cap" --scratch "$T/none"
expect_err_line "^subbit quant: $T/none: cannot create a scratch file"
expect_no_file nodir.subbit
# --scratch alone changes nothing and says so
expect_exit 0 "$SUBBIT" quant moe --calib calib.txt --calib-tokens 512 --calib-ctx 256 --to q4_0 \
  -t 1 -q -o s.subbit --scratch scratch
grep -q "warning: --scratch is ignored without --max-memory" "$T/err" && ok || bad "--scratch alone: $(cat "$T/err")"
finish
