#!/usr/bin/env bash
# Byte-level BPE tokenizers with merges, converted to GGUF (tokenizer.ggml.model
# gpt2), tokenize a text in llama.cpp exactly as in subbit. The oracle is
# llama-tokenize (skipped without it). The tokenizers are tinymoe's 256 byte
# tokens plus 22 hand-picked merges (one crossing a word boundary, digits, runs
# of spaces and newlines, a contraction), with three pre-tokenizers llama.cpp
# implements: ByteLevel's GPT-2 regex (tokenizer.ggml.pre "gpt-2"), Llama 3's
# Split ("llama-bpe") and Qwen2's ("qwen2"). Each GGUF is read by subbit the
# same as the HF folder it came from. Two pre-tokenizers llama.cpp does not
# implement (no split with merges; an unknown Split pattern) are converted with a
# warning that names what is approximated, and ppl on such a GGUF says so too.
. "$(dirname "$0")/lib.sh"
need_llama_cpp
: "${SUBBIT_TOK_IDS:?SUBBIT_TOK_IDS must name the tok_ids helper}"
[ -x "$LLAMA_BIN/llama-tokenize" ] || { echo "SKIP: llama-tokenize not found in '$LLAMA_BIN'"; exit 77; }
SRC=$SUBBIT_SRC/models/tinymoe/tokenizer.json

"$SUBBIT" synth --arch llama --layers 1 --dim 64 --hidden 128 --heads 2 --kv-heads 1 --vocab 280 \
  -o "$T/base" -q || bad "synth"
cp "$SUBBIT_SRC/models/tinymoe/tokenizer_config.json" "$T/base/"

# make DIR PRE_TOKENIZER_JSON: the model with tinymoe's tokenizer, the merges
# (new tokens 258..279) and that pre-tokenizer
G=$'\xc4\xa0' N=$'\xc4\x8a'   # the byte-level spellings of ' ' and '\n'
MERGES=("$G t" "h e" "${G}t he" "$G a" "n d" "${G}a nd" "i n" "$G s" "e d" "o n" "$G w" "a s"
        "${G}w as" ". ." "1 2" "12 3" "$G $G" "$N $N" "' s" "o $G" "3 4" "e r")
make() {
  local dir=$1 pre=$2 vocab= merges= id=258 m
  for m in "${MERGES[@]}"; do
    vocab+=$',\n   "'"${m/ /}"'": '$id; merges+="${merges:+, }\"$m\""; id=$((id + 1))
  done
  cp -r "$T/base" "$dir"
  V=$vocab M=$merges P=$pre awk '   # (ENVIRON: awk -v would unescape the backslashes)
    /^ "pre_tokenizer": \{/ { print " \"pre_tokenizer\": " ENVIRON["P"] ","; skip = 1; next }
    skip && /^ },/ { skip = 0; next }
    skip { next }
    /^   "\xc3\xbf": 255$/ { print $0 ENVIRON["V"]; next }
    /^  "merges": \[\]/ { print "  \"merges\": [" ENVIRON["M"] "]"; next }
    { print }' "$SRC" >"$dir/tokenizer.json"
}
BL='{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true'
L3="(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
QW=${L3/\{1,3\}/}
split() { echo '{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "'"$1"'"}, "behavior": "Isolated", "invert": false}, '"$BL"', "use_regex": false}]}'; }

# a text with what the three patterns treat differently: digit runs, runs of
# spaces and newlines, contractions in both cases, punctuation, non-ASCII
{ head -c 3000 "$FIXTURES/text/tinystories_sample.txt" 2>/dev/null || true
  printf "It's 12345 and 1234567 dots... they'd  two   three\n\n\nnewlines\t\ttabs I'M SHE'S\n"
  printf "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac 123abc --==> ends</s> \n  \n"
} >"$T/text.txt"

for v in "gpt-2|$BL, \"use_regex\": true}" "llama-bpe|$(split "$L3")" "qwen2|$(split "$QW")"; do
  name=${v%%|*}
  make "$T/$name" "${v#*|}"
  expect_exit 0 "$SUBBIT" convert "$T/$name" -o "$T/$name.gguf" --to f16 -q
  [ ! -s "$T/err" ] && ok || bad "$name: a warning: $(cat "$T/err")"
  expect_exit 0 "$SUBBIT" inspect "$T/$name.gguf"
  grep -q "^tokenizer: gpt2 (byte-level BPE), 280 tokens, 22 merges, pre-tokenizer '$name'$" "$T/out" \
    && ok || bad "$name: $(grep tokenizer "$T/out")"
  "$LLAMA_BIN/llama-tokenize" -m "$T/$name.gguf" -f "$T/text.txt" --ids --no-bos --no-escape \
    --log-disable 2>/dev/null | tail -1 >"$T/want.txt" || bad "$name: llama-tokenize"
  "$SUBBIT_TOK_IDS" "$T/$name.gguf" "$T/text.txt" >"$T/got.txt" || bad "$name: tok_ids gguf"
  "$SUBBIT_TOK_IDS" "$T/$name" "$T/text.txt" >"$T/hf.txt" || bad "$name: tok_ids hf"
  [ "$(wc -c <"$T/want.txt")" -gt 100 ] && cmp -s "$T/want.txt" "$T/got.txt" && ok \
    || { bad "$name: token ids differ from llama-tokenize's"; diff <(tr , '\n' <"$T/want.txt") <(tr , '\n' <"$T/got.txt") | head -5; }
  cmp -s "$T/hf.txt" "$T/got.txt" && ok || bad "$name: the GGUF tokenizes otherwise than its HF folder"
  grep -q ' 257, ' "$T/got.txt" && grep -q ' 260, ' "$T/got.txt" && ok || bad "$name: no </s> or Ġthe token"
done

# no split at all, with merges: llama.cpp always splits ("default"), said
make "$T/nosplit" "$BL, \"use_regex\": false}"
expect_exit 0 "$SUBBIT" convert "$T/nosplit" -o "$T/nosplit.gguf" --to f16 -q
expect_err_line "^subbit convert: warning: .*nosplit: its byte-level tokenizer's pre-tokenizer is not one llama.cpp implements: written as tokenizer.ggml.pre 'default'"
# and subbit's own core says it approximates that GGUF; not the exact ones
head -c 300 "$T/text.txt" >"$T/short.txt"
expect_exit 0 "$SUBBIT" ppl "$T/nosplit.gguf" --text "$T/short.txt" --ctx 32 -t 1
expect_err_line "^subbit ppl: warning: .*nosplit.gguf: tokenizer.ggml.pre 'default' is not a pre-tokenizer subbit implements: text is split as GPT-2 splits it"
expect_exit 0 "$SUBBIT" ppl "$T/llama-bpe.gguf" --text "$T/short.txt" --ctx 32 -t 1
[ ! -s "$T/err" ] && ok || bad "a warning for an exact pre-tokenizer: $(cat "$T/err")"
# an unknown Split pattern: said, naming it
make "$T/odd" "$(split '\\p{L}+|\\s+|.')"
expect_exit 0 "$SUBBIT" convert "$T/odd" -o "$T/odd.gguf" --to f16 -q
expect_err_line "^subbit convert: warning: .*odd: its byte-level tokenizer's pre-tokenizer \(Split '.p\{L\}\+\|.s\+\|\.'\) is not one llama.cpp implements"
finish
