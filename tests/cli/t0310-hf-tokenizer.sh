#!/usr/bin/env bash
# A SentencePiece vocab (GGUF tokenizer.ggml.model llama, llama2.c tokenizer.bin)
# converted to a Hugging Face folder gets tokenizer.json + tokenizer_config.json
# beside tokenizer.bin. The reader prefers tokenizer.bin (exact scores) when both
# are there; with tokenizer.bin deleted, tokenizer.json alone must give the same
# tokens, hence the same perplexity and the same greedy text. HF -> GGUF from
# tokenizer.json alone carries the tokenizer (tokenizer.ggml.*) again.
. "$(dirname "$0")/lib.sh"
need_fixtures
M=$FIXTURES/models/stories260K.gguf
TXT=$FIXTURES/text/tinystories_val.txt
PPL=(--text "$TXT" --protocol chunks --ctx 128 --max-chunks 50 -t 2 --json)

ppl_of() {   # ppl_of MODEL [args]: the "ppl" field of subbit ppl --json
  local m=$1; shift
  "$SUBBIT" ppl "$m" "$@" >"$T/out" 2>"$T/err" || { bad "ppl $m failed"; sed 's/^/  err: /' "$T/err" | head -3; }
  sed -n 's/.*"ppl":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$T/out"
}
# close A B: |A - B| <= 1e-6 relative (the HF layout rotates q/k in another order)
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-6 * a) }'; }

# GGUF -> HF folder: the three tokenizer files
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/hf" -q
for f in tokenizer.json tokenizer_config.json tokenizer.bin config.json; do
  [ -s "$T/hf/$f" ] && ok || bad "$f missing from the HF folder"
done
grep -q '"tokenizer_class":[[:space:]]*"LlamaTokenizerFast"' "$T/hf/tokenizer_config.json" && ok || bad "tokenizer_class"
grep -q '"add_bos_token":[[:space:]]*true' "$T/hf/tokenizer_config.json" && ok || bad "add_bos_token"
grep -q '"add_eos_token":[[:space:]]*false' "$T/hf/tokenizer_config.json" && ok || bad "add_eos_token"
grep -q '"byte_fallback":[[:space:]]*true' "$T/hf/tokenizer.json" && ok || bad "byte_fallback"
grep -q '"type":[[:space:]]*"BPE"' "$T/hf/tokenizer.json" && ok || bad "model type"
if command -v python3 >/dev/null 2>&1; then   # an independent JSON parser, if there is one
  python3 -c 'import json, sys; [json.load(open(f, encoding="utf-8")) for f in sys.argv[1:]]' \
    "$T/hf/tokenizer.json" "$T/hf/tokenizer_config.json" && ok || bad "not valid JSON"
fi

# both files: tokenizer.bin wins (subbit inspect names the vocab it read)
expect_exit 0 "$SUBBIT" inspect "$T/hf"
grep -q "^tokenizer: sentencepiece-bpe, 512 tokens" "$T/out" && ok || bad "folder vocab not from tokenizer.bin"

# a tokenizer.bin that does not fit the model leaves tokenizer.json in charge
cp -r "$T/hf" "$T/hfbad" && printf 'junk' >"$T/hfbad/tokenizer.bin"
expect_exit 0 "$SUBBIT" inspect "$T/hfbad"
grep -q "^tokenizer: hf-tokenizer.json" "$T/out" && ok || bad "a broken tokenizer.bin hid tokenizer.json"

# tokenizer.json alone: read as such, same ppl as with tokenizer.bin, same as GGUF
cp -r "$T/hf" "$T/hfjson" && rm "$T/hfjson/tokenizer.bin"
expect_exit 0 "$SUBBIT" inspect "$T/hfjson"
grep -q "^tokenizer: hf-tokenizer.json" "$T/out" && ok || bad "folder vocab not from tokenizer.json"
p_gguf=$(ppl_of "$M" "${PPL[@]}")
p_bin=$(ppl_of "$T/hf" "${PPL[@]}")
p_json=$(ppl_of "$T/hfjson" "${PPL[@]}")
grep -q '"tokens_scored":[[:space:]]*3150' "$T/out" && ok || bad "tokens_scored with tokenizer.json"
[ -n "$p_json" ] && [ "$p_json" = "$p_bin" ] && ok || bad "ppl with tokenizer.json '$p_json' != with tokenizer.bin '$p_bin'"
close "$p_json" "$p_gguf" && ok || bad "ppl of the HF folder '$p_json' is not the GGUF's '$p_gguf'"
# greedy text (decode: byte fallback, the leading space after BOS)
"$SUBBIT" run "$M" -p "Once upon a time" -n 80 --temp 0 -q >"$T/g1" 2>/dev/null
"$SUBBIT" run "$T/hfjson" -p "Once upon a time" -n 80 --temp 0 -q >"$T/g2" 2>/dev/null
[ -s "$T/g1" ] && cmp -s "$T/g1" "$T/g2" && ok || bad "greedy text differs with tokenizer.json"

# HF (tokenizer.json only) -> GGUF: the tokenizer travels; the same ppl, exactly
expect_exit 0 "$SUBBIT" convert "$T/hfjson" -o "$T/back.gguf" -q
expect_exit 0 "$SUBBIT" inspect "$T/back.gguf"
grep -q "^tokenizer: sentencepiece-bpe, 512 tokens" "$T/out" && ok || bad "GGUF from tokenizer.json has no SPM vocab"
p_back=$(ppl_of "$T/back.gguf" "${PPL[@]}")
[ -n "$p_back" ] && [ "$p_back" = "$p_gguf" ] && ok || bad "GGUF via tokenizer.json: ppl '$p_back' != '$p_gguf'"
# and from the folder with tokenizer.bin: also the same
expect_exit 0 "$SUBBIT" convert "$T/hf" -o "$T/back2.gguf" -q
p_back2=$(ppl_of "$T/back2.gguf" "${PPL[@]}")
[ -n "$p_back2" ] && [ "$p_back2" = "$p_gguf" ] && ok || bad "GGUF via tokenizer.bin: ppl '$p_back2' != '$p_gguf'"

# HF -> HF keeps the tokenizer files (copied, not made again)
expect_exit 0 "$SUBBIT" convert "$T/hfjson" -o "$T/hf2" --to bf16 -q
cmp -s "$T/hfjson/tokenizer.json" "$T/hf2/tokenizer.json" && ok || bad "tokenizer.json not carried HF -> HF"
[ ! -e "$T/hf2/tokenizer.bin" ] && ok || bad "tokenizer.bin appeared from a tokenizer.json-only folder"
# a folder with tokenizer.bin only (older subbit output) gains tokenizer.json
cp -r "$T/hf" "$T/hfbin" && rm "$T/hfbin/tokenizer.json" "$T/hfbin/tokenizer_config.json"
expect_exit 0 "$SUBBIT" convert "$T/hfbin" -o "$T/hf3" -q
cmp -s "$T/hf/tokenizer.json" "$T/hf3/tokenizer.json" && ok || bad "tokenizer.json not made from tokenizer.bin"
[ -s "$T/hf3/tokenizer_config.json" ] && ok || bad "tokenizer_config.json not made from tokenizer.bin"

# llama2.c checkpoint + tok512.bin -> HF: the blocks ppl of t0400 with tokenizer.json alone
expect_exit 0 "$SUBBIT" convert "$FIXTURES/models/stories260K.bin" --tokenizer "$FIXTURES/models/tok512.bin" \
  -o "$T/l2c" -q
rm -f "$T/l2c/tokenizer.bin"
BLK=(--text "$TXT" --protocol blocks --max-blocks 100 -t 2 --json)
p_l2c=$(ppl_of "$FIXTURES/models/stories260K.bin" --tokenizer "$FIXTURES/models/tok512.bin" "${BLK[@]}")
p_l2cj=$(ppl_of "$T/l2c" "${BLK[@]}")
close "$p_l2cj" "$p_l2c" && ok || bad "llama2.c -> HF: ppl with tokenizer.json '$p_l2cj' != '$p_l2c'"

finish
