#!/usr/bin/env bash
# convert and synth from the command line: outputs, --dry-run, --force, bad
# input and bad usage, and Ctrl-C leaving nothing behind.
. "$(dirname "$0")/lib.sh"

expect_exit 0 "$SUBBIT" synth --arch mixtral --layers 2 --dim 64 --seed 5 -q -o "$T/m"
[ -f "$T/m/config.json" ] && [ -f "$T/m/model.safetensors" ] && [ -f "$T/m/tokenizer.json" ] && ok || bad "synth folder incomplete"

# bf16 folder, then back to f32: sizes halve and return
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/bf16" --to bf16 -q
s32=$(stat -c %s "$T/m/model.safetensors"); s16=$(stat -c %s "$T/bf16/model.safetensors")
[ $((s16 * 100)) -gt $((s32 * 48)) ] && [ $((s16 * 100)) -lt $((s32 * 52)) ] && ok || bad "bf16 size $s16 vs f32 $s32"
grep -q bfloat16 "$T/bf16/config.json" && ok || bad "config.json torch_dtype not updated"
expect_exit 0 "$SUBBIT" convert "$T/bf16" -o "$T/back.safetensors" --to f32

# dry run: a plan on stdout, nothing on disk
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/dry.gguf" --to q8_0 --dry-run
expect_no_file "$T/dry.gguf"
grep -q "ffn_down_exps" "$T/out" && grep -q "would write" "$T/out" && ok || bad "dry run plan"
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/dry.gguf" --to q8_0 --dry-run --json
grep -q '"out_bytes"' "$T/out" && ok || bad "dry run json"

# an existing output is replaced only with --force; the refusal is one line
expect_exit 1 "$SUBBIT" convert "$T/m" -o "$T/bf16" --to bf16 -q
expect_err_line "^subbit convert: .*bf16: already exists \(use --force"
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/bf16" --to f16 -q --force

# usage errors exit 2
expect_exit 2 "$SUBBIT" convert "$T/m" -o "$T/x" --to q9_9
expect_exit 2 "$SUBBIT" convert "$T/m" --to bf16
expect_exit 2 "$SUBBIT" convert -o "$T/x" --to bf16
expect_no_file "$T/x"

# bad input: one line naming the file, exit 1, no output
printf 'abc' > "$T/short.safetensors"
expect_exit 1 "$SUBBIT" convert "$T/short.safetensors" -o "$T/y.safetensors" --to bf16
expect_err_line "^subbit convert: .*short\.safetensors: "
expect_no_file "$T/y.safetensors"
expect_exit 1 "$SUBBIT" convert "$T/nonexistent" -o "$T/y.safetensors" --to bf16
expect_err_line "^subbit convert: .*nonexistent: "

# Ctrl-C mid-conversion: exit 130, no output and no temp files
"$SUBBIT" synth --arch llama --layers 8 --dim 1024 --hidden 4096 --heads 8 --kv-heads 8 --vocab 32000 -q -o "$T/big"
"$SUBBIT" convert "$T/big" -o "$T/big-f16" --to f16 -q 2>/dev/null &
pid=$!
sleep 0.3
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
if [ $rc -eq 130 ] || [ $rc -eq 0 ]; then ok; else bad "Ctrl-C exit $rc"; fi
if [ $rc -eq 130 ]; then expect_no_file "$T/big-f16"; fi
expect_no_temps "$T"
finish
