#!/usr/bin/env bash
# convert out of the k-quants (our own q4_K/q6_K files of a synth llama, so no
# llama.cpp is needed): decoding to f32/f16 always works and f32 is lossless
# (the same perplexity to the last digit), re-quantizing needs
# --allow-requantize (one line, no output file without it), general.file_type
# follows the tensors written (llama.cpp's numbers: f32 0, f16 1, q4_0 2, q4_K
# 15, q6_K 18) and general.name / the BOS id survive every step; iq1/2/3 and
# values a target cannot hold (NaN, f16 overflow, block scales) are refused.
. "$(dirname "$0")/lib.sh"
need_fixtures
TXT=$FIXTURES/text/tinystories_val.txt
"$SUBBIT" synth --arch llama --layers 1 --dim 256 --hidden 512 --heads 4 --kv-heads 2 --vocab 512 \
  -o "$T/syn" -q || bad "synth"
cp "$FIXTURES/models/tok512.bin" "$T/syn/tokenizer.bin"
expect_exit 0 "$SUBBIT" convert "$T/syn" -o "$T/k.gguf" --to q4_K --rule 'output.weight=q6_K' -q
[ "$(gguf_u32 general.file_type "$T/k.gguf")" = 15 ] && ok || bad "q4_K file_type '$(gguf_u32 general.file_type "$T/k.gguf")'"
grep -q "general.name" "$T/k.gguf" && ok || bad "no general.name from the HF folder"
bos=$(gguf_u32 tokenizer.ggml.bos_token_id "$T/k.gguf")
[ -n "$bos" ] && ok || bad "no bos id in k.gguf"

ppl() { expect_exit 0 "$SUBBIT" ppl "$1" --text "$TXT" --ctx 64 --max-chunks 2 -t 2 --json; json_num ppl; }
pk=$(ppl "$T/k.gguf")
# to f32: every tensor decoded exactly
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/f.gguf" --to f32 -q
pf=$(ppl "$T/f.gguf")
[ -n "$pk" ] && [ "$pk" = "$pf" ] && ok || bad "ppl q4_K $pk, its f32 copy $pf"
[ "$(gguf_u32 general.file_type "$T/f.gguf")" = 0 ] && ok || bad "f32 file_type"
expect_exit 0 "$SUBBIT" inspect "$T/f.gguf"
grep -Eq ' q[0-9]_k ' "$T/out" && bad "k-quant tensors left in the f32 copy" || ok
# to f16: file type 1, the k-quants gone, name and BOS kept
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/h.gguf" --to f16 -q
[ "$(gguf_u32 general.file_type "$T/h.gguf")" = 1 ] && ok || bad "f16 file_type"
expect_exit 0 "$SUBBIT" inspect "$T/h.gguf"
grep -Eq ' q[0-9]_k ' "$T/out" && bad "k-quant tensors copied into the f16 file" || ok
[ "$(gguf_u32 tokenizer.ggml.bos_token_id "$T/h.gguf")" = "$bos" ] && ok || bad "bos id lost"
cmp -s <(grep -ao 'general.name.\{12\}' "$T/k.gguf") <(grep -ao 'general.name.\{12\}' "$T/h.gguf") \
  && ok || bad "general.name changed"
# to q4_0: refused without --allow-requantize
expect_exit 1 "$SUBBIT" convert "$T/k.gguf" -o "$T/q.gguf" --to q4_0 -q
expect_err_line "^subbit convert: .*k.gguf: tensor '.*' is already quantized \(q[46]_k\); re-quantizing it to q4_0 needs --allow-requantize$"
expect_no_file "$T/q.gguf"
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/q.gguf" --to q4_0 --allow-requantize -q
[ "$(gguf_u32 general.file_type "$T/q.gguf")" = 2 ] && ok || bad "q4_0 file_type"
# into more bytes (q8_0) is not lossier: no flag needed
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/q8.gguf" --to q8_0 -q
# keep: the source's file type (q4_K_M's 15 even though q6_K is in it)
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/s.subbit" -q
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/k2.gguf" -q
cmp -s "$T/k.gguf" "$T/k2.gguf" && ok || bad "GGUF -> GGUF as stored is not byte-identical"
# the lattice-codebook types are refused in one line that names the type
for ty in iq2_xxs IQ3_S iq1_m; do
  expect_exit 1 "$SUBBIT" convert "$T/k.gguf" -o "$T/iq.gguf" --to $ty -q
  expect_err_line "^subbit convert: .*iq.gguf: cannot write $(echo $ty | tr A-Z a-z): ggml's IQ1/IQ2/IQ3 lattice-codebook types are not implemented$"
  expect_no_file "$T/iq.gguf"
done
# a byte-level BPE tokenizer.json (synth's) is carried into GGUF as model gpt2
# (t1040 checks it against llama.cpp), without a word; a tokenizer.json GGUF
# cannot hold (a WordPiece model) is not: said on stderr and in --json, never
# silently, with the reason; its BOS/EOS ids are still written
"$SUBBIT" synth --arch llama --layers 1 -o "$T/bl" -q || bad "synth"
expect_exit 0 "$SUBBIT" convert "$T/bl" -o "$T/bl.gguf" --to f16 -q --json
grep -q '"tokenizer_dropped":[[:space:]]*false' "$T/out" && ok || bad "byte-level tokenizer dropped"
[ ! -s "$T/err" ] && ok || bad "a warning for a carried byte-level tokenizer: $(cat "$T/err")"
LC_ALL=C grep -qaF 'gpt2' "$T/bl.gguf" && ok || bad "no gpt2 tokenizer in bl.gguf"
mkdir "$T/wp" && cp "$T/bl/config.json" "$T/bl/model.safetensors" "$T/wp/"
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$T/wp/tokenizer.json"
expect_exit 0 "$SUBBIT" convert "$T/wp" -o "$T/wp.gguf" --to f16 -q
expect_err_line "^subbit convert: warning: .*wp: its tokenizer \(tokenizer.json: model type 'WordPiece' is not supported \(only BPE\)\) cannot be carried into GGUF: .*wp.gguf has no tokenizer"
[ "$(gguf_u32 tokenizer.ggml.bos_token_id "$T/wp.gguf")" = 256 ] && ok || bad "bos id lost with the tokenizer"
expect_exit 0 "$SUBBIT" convert "$T/wp" -o "$T/wp.gguf" --to f16 -q -f --json
grep -q '"tokenizer_dropped":[[:space:]]*true' "$T/out" && ok || bad "no tokenizer_dropped in --json"
# quant says it the same way
for i in 1 2; do seq 1 200; done >"$T/wp-ids.txt"
expect_exit 0 "$SUBBIT" quant "$T/wp" -o "$T/wpq.gguf" --to q8_0 --method rtn \
  --calib-tokens-file "$T/wp-ids.txt" --calib-tokens 256 --calib-ctx 128 -q --json
expect_err_line "^subbit quant: warning: .*wp: its tokenizer \(tokenizer.json: model type 'WordPiece' is not supported \(only BPE\)\) cannot be carried into GGUF: .*wpq.gguf has no tokenizer"
grep -q '"tokenizer_dropped":[[:space:]]*true' "$T/out" && ok || bad "no tokenizer_dropped in quant --json"
expect_exit 0 "$SUBBIT" convert "$T/k.gguf" -o "$T/k3.gguf" --to f16 -q --json
grep -q '"tokenizer_dropped":[[:space:]]*false' "$T/out" && ok || bad "tokenizer_dropped for a carried SPM vocab"

# values a target cannot hold: one line naming tensor and row, no output,
# unless --allow-nonfinite. The last element of the file is output.weight's
# last (row 511): 1e7 overflows f16 and q8_0's scale (1e7/127 > 65504), not
# bf16 or q4_K's (its scales are scaled again); NaN is refused everywhere
expect_exit 0 "$SUBBIT" convert "$T/syn" -o "$T/big.gguf" --to f32 -q
poke() { printf "$2" | dd of="$1" bs=1 seek=$(( $(stat -c %s "$1") - 4 )) conv=notrunc 2>/dev/null; }
poke "$T/big.gguf" '\x80\x96\x18\x4b'      # 1e7
expect_exit 1 "$SUBBIT" convert "$T/big.gguf" -o "$T/o.gguf" --to f16 -q
expect_err_line "^subbit convert: .*big.gguf: tensor 'output.weight' row 511: 1e\+07 does not fit f16 \(the cast overflows; pass --allow-nonfinite to write it\)$"
expect_no_file "$T/o.gguf"
expect_exit 1 "$SUBBIT" convert "$T/big.gguf" -o "$T/o.gguf" --to q8_0 -q
expect_err_line "^subbit convert: .*big.gguf: tensor 'output.weight' row 511: 1e\+07 does not fit q8_0 \(its block scale overflows f16; pass --allow-nonfinite to write it\)$"
expect_no_file "$T/o.gguf"
expect_exit 0 "$SUBBIT" convert "$T/big.gguf" -o "$T/o.gguf" --to bf16 -q
expect_exit 0 "$SUBBIT" convert "$T/big.gguf" -o "$T/o2.gguf" --to q4_K -q
expect_exit 0 "$SUBBIT" convert "$T/big.gguf" -o "$T/o3.gguf" --to q8_0 --allow-nonfinite -q
poke "$T/big.gguf" '\x00\x00\xc0\x7f'      # NaN
for ty in f16 q4_K sub1; do
  expect_exit 1 "$SUBBIT" convert "$T/big.gguf" -o "$T/n.subbit" --to $ty -q
  expect_err_line "^subbit convert: .*big.gguf: tensor 'output.weight' row 511: NaN weight \(pass --allow-nonfinite to write it\)$"
  expect_no_file "$T/n.subbit"
done
finish
