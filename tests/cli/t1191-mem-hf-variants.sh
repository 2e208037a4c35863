#!/usr/bin/env bash
# subbit mem by Hugging Face id (issue 15): beyond a preset's exact repository,
# the forms people paste (any case, huggingface.co URLs with /tree/main or
# /blob/main/config.json, hf.co/, a query string) and the fine-tuned variants
# of a preset's model (-Instruct, -it, -chat, -Base; same org) resolve to that
# preset; stdout's "preset" line and JSON's preset/preset_match say which and
# how, and a variant gets one note on stderr. Other repos stay unknown.
. "$(dirname "$0")/lib.sh"
# ID PRESET MATCH: the id resolves to PRESET by MATCH (name, id or base)
check() {
  expect_exit 0 "$SUBBIT" mem "$1" --json
  grep -Eq "\"preset\":[[:space:]]*\"$2\"," "$T/out" && grep -Eq "\"preset_match\":[[:space:]]*\"$3\"," "$T/out" \
    && ok || bad "$1: not preset $2 by $3: $(grep -E '"preset' "$T/out" | tr -d '\n')"
  if [ "$3" = base ]; then
    expect_err_line "^subbit mem: .*: no preset of its own; using $2, its base model's"
  else
    [ ! -s "$T/err" ] && ok || bad "$1: stderr: $(head -1 "$T/err")"
  fi
}
check Mixtral-8x7B Mixtral-8x7B name
check mistralai/Mixtral-8x7B-v0.1 Mixtral-8x7B id
check https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/tree/main Mixtral-8x7B id
check 'https://huggingface.co/mistralai/mixtral-8x7b-v0.1/blob/main/config.json?download=true' Mixtral-8x7B id
check www.huggingface.co/MISTRALAI/Mixtral-8x7B-v0.1# Mixtral-8x7B id
check mistralai/Mixtral-8x7B-Instruct-v0.1 Mixtral-8x7B base
check https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1/tree/main Mixtral-8x7B base
check google/gemma-2-9b-it Gemma-2-9B base
check hf.co/meta-llama/Llama-2-7b-chat-hf Llama-2-7B base
check meta-llama/Llama-2-70b-chat-hf Llama-2-70B base
check meta-llama/Meta-Llama-3-8B-Instruct Llama-3-8B base
check Qwen/Qwen1.5-MoE-A2.7B-Chat Qwen2-MoE-A2.7B base
check deepseek-ai/DeepSeek-V3-Base DeepSeek-V3 base
# the variant is the base model's numbers: the same document but for the names
expect_exit 0 "$SUBBIT" mem google/gemma-2-9b --json
grep -Ev '"(model|preset_match)":' "$T/out" >"$T/a.json"
expect_exit 0 "$SUBBIT" mem google/gemma-2-9b-it --json
grep -Ev '"(model|preset_match)":' "$T/out" | cmp -s - "$T/a.json" && ok || bad "gemma-2-9b-it is not gemma-2-9b's estimate"
# the table names the preset
expect_exit 0 "$SUBBIT" mem google/gemma-2-9b-it -q
grep -Eq '^preset +Gemma-2-9B, the base model of google/gemma-2-9b-it$' "$T/out" && ok || bad "table: $(grep '^preset' "$T/out")"
[ ! -s "$T/err" ] && ok || bad "-q: a note on stderr"
expect_exit 0 "$SUBBIT" mem mistralai/Mixtral-8x7B-v0.1
grep -Eq '^preset +Mixtral-8x7B, from the Hugging Face id mistralai/Mixtral-8x7B-v0.1$' "$T/out" && ok || bad "table: $(grep '^preset' "$T/out")"
# not a variant: another size, another org, another model, no org
for id in google/gemma-2-27b-it TheBloke/Mixtral-8x7B-v0.1 mistralai/Mixtral-8x22B-Instruct-v0.1 \
  mistralai/Mixtral-8x7B-Nope Mixtral-8x7B-Instruct-v0.1 https://huggingface.co/mistralai; do
  expect_exit 1 "$SUBBIT" mem "$id"
  expect_err_line "no such file, folder or preset"
done
finish
