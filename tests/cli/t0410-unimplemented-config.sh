#!/usr/bin/env bash
# Config features that change the forward pass but that the reference core does
# not implement (RoPE scaling, partial rotary, a sliding window shorter than the
# context) are refused with one line, never computed as if absent; inspect,
# convert and mem still work on such models.
. "$(dirname "$0")/lib.sh"
"$SUBBIT" synth --arch llama --layers 1 --dim 64 --hidden 128 --heads 4 --kv-heads 2 \
  --vocab 300 --seed 1 -q -o "$T/m" || bad "synth"
printf 'Some text for the core to read, long enough for a window or two.\n' > "$T/t.txt"
expect_exit 0 "$SUBBIT" ppl "$T/m" --text "$T/t.txt" --ctx 32 -q
edit() { # edit KEY JSONVALUE: copy the model with config.json[KEY] = VALUE into $T/e
  rm -rf "$T/e"; cp -r "$T/m" "$T/e"
  sed -i "s/^{/{\"$1\": $2, /" "$T/e/config.json"
}
edit rope_scaling '{"rope_type": "llama3", "factor": 8.0}'
expect_exit 1 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 32 -q
expect_err_line 'rope_scaling \(llama3\) is not implemented by the reference core'
expect_exit 0 "$SUBBIT" inspect "$T/e"
expect_exit 0 "$SUBBIT" mem "$T/e"
expect_exit 0 "$SUBBIT" convert "$T/e" -o "$T/e.subbit" --to bf16 -q
expect_exit 1 "$SUBBIT" run "$T/e.subbit" -p "Some" -n 2 -q
expect_err_line 'rope_scaling \(llama3\) is not implemented'
edit rope_scaling '{"rope_type": "default"}'
expect_exit 0 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 32 -q
edit partial_rotary_factor 0.5
expect_exit 1 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 32 -q
expect_err_line 'partial_rotary_factor 0.5 is not implemented'
edit sliding_window 16
expect_exit 1 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 32 -q
expect_err_line 'context 32 exceeds the model.s sliding window 16'
expect_exit 0 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
finish
