#!/usr/bin/env bash
# The CLI side of issue 12's findings: --force onto a folder keeps what subbit
# did not write and names what it replaced (1), sub1 read back by convert (2),
# models with no tensors or a lone expert refused (3), a folder given where a
# file goes (4), control bytes from a file escaped in messages (5), a broken
# tokenizer.bin reported as such (11), non-finite logits fail ppl and verify (6),
# config values refused or said to be replaced (10).
. "$(dirname "$0")/lib.sh"

"$SUBBIT" synth --arch mixtral --layers 1 --dim 64 --experts 2 -q -o "$T/m"

# ---- 1: --force onto a folder: only subbit's files replaced, each named
"$SUBBIT" convert "$T/m" -o "$T/hf" --to f32 --shard-size 100K -q >/dev/null
echo mine >"$T/hf/notes.txt"
mkdir "$T/hf/sub" && echo keep >"$T/hf/sub/a.txt"
echo readme >"$T/hf/README.md"
shards=$(cd "$T/hf" && ls model-*-of-*.safetensors)
expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/hf" --to bf16 -q --force
[ "$(cat "$T/hf/notes.txt")" = mine ] && [ "$(cat "$T/hf/sub/a.txt")" = keep ] \
  && [ "$(cat "$T/hf/README.md")" = readme ] && ok || bad "--force lost the user's files"
{
  for f in config.json tokenizer.json; do echo "subbit convert: replaced $T/hf/$f"; done
  for f in $shards model.safetensors.index.json; do
    echo "subbit convert: removed $T/hf/$f (a weight file of the model it replaces)"
  done
} | sort >"$T/want"
sort "$T/err" | diff - "$T/want" >/dev/null && ok || bad "--force said: $(cat "$T/err")"
(cd "$T/hf" && ls | sort | tr '\n' ' ') >"$T/got"
[ "$(cat "$T/got")" = "README.md config.json model.safetensors notes.txt sub tokenizer.json " ] \
  && ok || bad "--force left: $(cat "$T/got")"
expect_exit 0 "$SUBBIT" inspect "$T/hf"
grep -q 'bf16' "$T/out" && ok || bad "the folder does not read as the new model"
# a file where the folder goes is never replaced
echo x >"$T/file"
expect_exit 1 "$SUBBIT" convert "$T/m" -o "$T/file/" --to bf16 -q --force
[ "$(cat "$T/file")" = x ] && ok || bad "a file was replaced by a folder"

# ---- 2: sub1 and sub1-qmoe are read back, to any encoding and kept
for e in sub1 sub1-qmoe; do
  expect_exit 0 "$SUBBIT" convert "$T/m" -o "$T/$e.subbit" --to "$e" --experts-only -q
  expect_exit 0 "$SUBBIT" convert "$T/$e.subbit" -o "$T/$e-back.gguf" --to q8_0 -q
  expect_exit 0 "$SUBBIT" convert "$T/$e.subbit" -o "$T/$e-keep.subbit" -q
done
expect_exit 0 "$SUBBIT" convert "$T/sub1.subbit" -o "$T/qmoe2.subbit" --to sub1-qmoe --experts-only -q

# ---- 3: nothing to convert; a lone expert
printf '\002\000\000\000\000\000\000\000{}' >"$T/empty.safetensors"
cp "$T/m/config.json" "$T/cfg.json"
expect_exit 1 "$SUBBIT" convert "$T/empty.safetensors" --config "$T/cfg.json" -o "$T/e.gguf"
expect_err_line "^subbit convert: $T/empty.safetensors: holds no tensors; nothing to convert$"
expect_no_file "$T/e.gguf"
mkdir "$T/lone"
hdr='{"model.layers.0.block_sparse_moe.experts.1.w1.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}'
{ printf "\\$(printf %03o ${#hdr})\\000\\000\\000\\000\\000\\000\\000"; printf '%s' "$hdr"; printf '\000\000\000\000'; } \
  >"$T/lone/model.safetensors"
printf '{"model_type":"llama","hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":32}' \
  >"$T/lone/config.json"
expect_exit 1 "$SUBBIT" convert "$T/lone" -o "$T/lone.gguf"
expect_err_line "^subbit convert: $T/lone: layer 0 has expert tensors but no 'model.layers.0.block_sparse_moe.experts.0.w1.weight'$"
expect_no_file "$T/lone.gguf"

# ---- 4: a folder where a file goes
mkdir "$T/d"
expect_exit 1 "$SUBBIT" ppl "$T/m" --text "$T/d"
expect_err_line "^subbit ppl: $T/d: is a directory$"
expect_exit 1 "$SUBBIT" ppl "$T/m" --tokens "$T/d"
expect_err_line "^subbit ppl: $T/d: is a directory$"
expect_exit 1 "$SUBBIT" convert "$T/empty.safetensors" --config "$T/d" -o "$T/x.gguf"
expect_err_line "^subbit convert: $T/d: is a directory$"

# ---- 5: names from a file are escaped: ESC ] ... BEL would retitle the terminal
hdr='{"a\u001b]0;pwned\u0007b":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}'
{ printf "\\$(printf %03o ${#hdr})\\000\\000\\000\\000\\000\\000\\000"; printf '%s' "$hdr"; printf '\000\000\000\000'; } \
  >"$T/esc.safetensors"
expect_exit 1 "$SUBBIT" inspect "$T/esc.safetensors"
expect_err_line 'a\\x1b\]0;pwned\\x07b'
LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$T/err" && bad "raw control bytes on stderr" || ok

# ---- 11: a malformed tokenizer.bin beside a llama2.c model: its own error
# (a v0 model: dim 8, ffn 12, 1 layer, 2 heads, 1 kv head, vocab 5, seq 4:
# 560 floats, formats.md §4; its tokenizer.bin cut short in the last piece)
mkdir "$T/l2c"
{ printf '\010\000\000\000\014\000\000\000\001\000\000\000\002\000\000\000\001\000\000\000\005\000\000\000\004\000\000\000'
  head -c $((560 * 4)) /dev/zero; } >"$T/l2c/model.bin"
printf '\003\000\000\000' >"$T/l2c/tokenizer.bin"
for p in a b c d; do printf '\000\000\000\000\001\000\000\000%s' "$p" >>"$T/l2c/tokenizer.bin"; done
printf '\000\000\000\000\003\000\000\000ab' >>"$T/l2c/tokenizer.bin"
printf 'some text\n' >"$T/text.txt"
expect_exit 1 "$SUBBIT" ppl "$T/l2c/model.bin" --text "$T/text.txt"
expect_err_line "^subbit ppl: $T/l2c/tokenizer.bin: token 4 .* runs past end of file .*--tokenizer FILE"
expect_exit 1 "$SUBBIT" convert "$T/l2c/model.bin" -o "$T/l2c.gguf"
expect_no_file "$T/l2c.gguf"

# ---- 6: a NaN never passes: every weight of a copy made NaN (0xff bytes are a
# NaN in f32, f16 and bf16 alike)
"$SUBBIT" synth --arch llama --layers 1 --dim 64 --hidden 128 --heads 4 --kv-heads 2 \
  --vocab 300 --seed 1 -q -o "$T/g"
cp -r "$T/g" "$T/nan"
st="$T/nan/model.safetensors"
hlen=$(od -An -tu8 -N8 "$st" | tr -d ' ')
head -c $(($(stat -c %s "$st") - 8 - hlen)) /dev/zero | tr '\000' '\377' |
  dd of="$st" bs=64K oflag=seek_bytes seek=$((8 + hlen)) conv=notrunc status=none
printf 'Some text for the core to read, long enough for a window or two.\n' >"$T/t.txt"
expect_exit 1 "$SUBBIT" ppl "$T/nan" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit ppl: $T/nan: logits are not finite \(NaN or inf\) at token 9 of window 1: no perplexity"
[ -s "$T/out" ] && bad "ppl printed a result for NaN logits: $(cat "$T/out")" || ok
expect_exit 0 "$SUBBIT" verify --ref "$T/g" --model "$T/g" --text "$T/t.txt" --ctx 16 --max-kld 1e9 -q
expect_exit 3 "$SUBBIT" verify --ref "$T/g" --model "$T/nan" --text "$T/t.txt" --ctx 16 --max-kld 1e9 -q
expect_err_line "^subbit verify: $T/nan: logits are not finite \(NaN or inf\) at [0-9]+ of [0-9]+ scored positions: no perplexity or KLD; check failed$"
expect_exit 3 "$SUBBIT" verify --ref "$T/nan" --model "$T/g" --text "$T/t.txt" --ctx 16 --min-top1 0 -q --json
grep -q '"pass":[[:space:]]*false' "$T/out" && grep -q '"ref":[[:space:]]*[1-9]' "$T/out" && ok || bad "verify --json: $(cat "$T/out")"
# measured only (--no-gate): an error; with no threshold the default gates run, and fail
expect_exit 1 "$SUBBIT" verify --ref "$T/g" --model "$T/nan" --text "$T/t.txt" --ctx 16 --no-gate -q
expect_err_line "^subbit verify: $T/nan: logits are not finite .*: no perplexity or KLD$"
expect_exit 3 "$SUBBIT" verify --ref "$T/g" --model "$T/nan" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit verify: $T/nan: logits are not finite .*: no perplexity or KLD; check failed$"

# ---- 10: config values are used as given, refused, or said to be replaced
edit() { # edit KEY JSONVALUE: $T/e is $T/g with config.json[KEY] = VALUE (the first key wins)
  rm -rf "$T/e"; cp -r "$T/g" "$T/e"
  sed -i "s/^{/{\"$1\": $2, /" "$T/e/config.json"
}
for kv in "rms_norm_eps 0" "rms_norm_eps -1e-06" "rope_theta 0" "rope_theta -5"; do
  set -- $kv
  edit "$1" "$2"
  expect_exit 1 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
  expect_err_line "^subbit ppl: $T/e/config.json: $1 $2 is not a positive number$"
done
edit vocab_size 400
expect_exit 0 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit ppl: warning: $T/e: vocab_size 400 is more than the embedding's 300 rows: using 300$"
edit intermediate_size 100
expect_exit 0 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit ppl: warning: $T/e: intermediate_size 100 disagrees with the tensors \(128 in layer 0\): using the tensors' 128$"
edit tie_word_embeddings true
expect_exit 0 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit ppl: warning: $T/e: tie_word_embeddings is true, but 'lm_head.weight' is stored: using 'lm_head.weight' \(as subbit mem counts it\)$"
expect_exit 0 "$SUBBIT" mem "$T/e"
grep -q "tie_word_embeddings is true, but 'lm_head.weight' is stored: counted (ppl uses it)" "$T/out" "$T/err" \
  && ok || bad "mem did not say it counts the stored head: $(cat "$T/out" "$T/err")"
edit max_position_embeddings 8
# a window past the model's context is refused (issue 15: exit 2, as the README says)
expect_exit 2 "$SUBBIT" ppl "$T/e" --text "$T/t.txt" --ctx 16 -q
expect_err_line "^subbit ppl: --ctx 16 is above the model's context \(8\) \(try 'subbit ppl --help'\)$"

expect_no_temps "$T"
finish
