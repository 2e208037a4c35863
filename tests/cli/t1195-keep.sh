#!/usr/bin/env bash
# --keep means one thing in convert, quant and mem (issue 15): a comma-separated
# list, repeatable, of tensor-name globs or of the components mem reports
# (embed, output, attn, ffn, shared, experts). The old forms still work:
# convert --keep GLOB (one glob a flag), mem --keep embed,output.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
# encodings NAME=ENC of a file, sorted, from inspect's tensor table
encs() { "$SUBBIT" inspect "$1" | awk 'NF >= 5 && $2 ~ /^(f32|bf16|f16|q8_0)$/ { print $1 "=" $2 }' | sort; }

# convert: the old form, the list form and the component names give one file
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/a.subbit" --to q8_0 --keep model.embed_tokens.weight --keep lm_head.weight -q
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/b.subbit" --to q8_0 --keep model.embed_tokens.weight,lm_head.weight -q
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/c.subbit" --to q8_0 --keep embed,output -q
cmp -s "$T/a.subbit" "$T/b.subbit" && ok || bad "convert: --keep A,B differs from --keep A --keep B"
cmp -s "$T/a.subbit" "$T/c.subbit" && ok || bad "convert: --keep embed,output differs from the globs"
encs "$T/c.subbit" >"$T/c.enc"
grep -qx "model.embed_tokens.weight=bf16" "$T/c.enc" && grep -qx "lm_head.weight=bf16" "$T/c.enc" \
  && ok || bad "convert --keep embed,output: $(grep -E 'embed|lm_head' "$T/c.enc" | tr '\n' ' ')"
grep -qx "model.layers.0.self_attn.q_proj.weight=q8_0" "$T/c.enc" && ok || bad "convert: q_proj not q8_0"
# a component and a glob in one list: attention kept, and layer 3's experts
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/d.subbit" --to q8_0 --keep 'attn,model.layers.3.*.experts.*' -q
encs "$T/d.subbit" >"$T/d.enc"
n=$(grep -c 'self_attn.*=bf16' "$T/d.enc"); [ "$n" -eq 16 ] && ok || bad "convert --keep attn: $n of 16 attention matrices kept"
n=$(grep -c 'layers\.3\..*experts.*=bf16' "$T/d.enc"); [ "$n" -eq 24 ] && ok || bad "convert: $n of layer 3's 24 expert matrices kept"
n=$(grep -c 'layers\.2\..*experts.*=q8_0' "$T/d.enc"); [ "$n" -eq 24 ] && ok || bad "convert: layer 2's experts: $n of 24 q8_0"
grep -qx "model.embed_tokens.weight=q8_0" "$T/d.enc" && ok || bad "convert: embed kept without being named"
# quant takes the same option
"$SUBBIT" quant --help | grep -q "mem's components (embed,output,attn,ffn,shared,experts)" && ok || bad "quant --help: --keep"

# mem: the default (embed,output), the list, and the flag repeated agree
expect_exit 0 "$SUBBIT" mem "$M" --json
cp "$T/out" "$T/m0.json"
expect_exit 0 "$SUBBIT" mem "$M" --keep embed,output --json
cmp -s "$T/out" "$T/m0.json" && ok || bad "mem --keep embed,output is not the default"
expect_exit 0 "$SUBBIT" mem "$M" --keep embed --keep output --json
cmp -s "$T/out" "$T/m0.json" && ok || bad "mem --keep embed --keep output differs"
# q8_0 kept bytes (16 bit) by hand: --keep none keeps norms and routers only;
# a glob over layer 0 adds its q, o (128 x 128), k, v (64 x 128) and 8 x 3
# experts of 192 x 128: 638,976 parameters, 1,277,952 bytes
kept() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print([w for w in d["weights"] if w["encoding"] == "q8_0"][0]["kept_bytes"])' "$T/out"; }
expect_exit 0 "$SUBBIT" mem "$M" --keep none --json; k0=$(kept)
expect_exit 0 "$SUBBIT" mem "$M" --keep 'model.layers.0.*' --json; k1=$(kept)
[ $((k1 - k0)) -eq 1277952 ] && ok || bad "mem --keep 'model.layers.0.*': kept $k1 - $k0, by hand 1277952"
# attention of 4 layers: 4 x 49,152 x 2 = 393,216, as the component or as a glob
expect_exit 0 "$SUBBIT" mem "$M" --keep attn --json; k2=$(kept)
expect_exit 0 "$SUBBIT" mem "$M" --keep '*self_attn*' --json; k3=$(kept)
[ $((k2 - k0)) -eq 393216 ] && [ "$k3" = "$k2" ] && ok || bad "mem --keep attn: $k2 / glob $k3 - $k0, by hand 393216"
# experts, a component mem did not take before: 4 x 8 x 3 x 192 x 128 x 2 = 4,718,592
expect_exit 0 "$SUBBIT" mem "$M" --keep experts --json; k4=$(kept)
[ $((k4 - k0)) -eq 4718592 ] && ok || bad "mem --keep experts: $k4 - $k0, by hand 4718592"
# a glob that names nothing warns (a typo); a config or preset has no names
expect_exit 0 "$SUBBIT" mem "$M" --keep embd
expect_err_line "^subbit mem: warning: --keep 'embd' matches no tensor of .*tinymoe \(components: embed, output, attn, ffn, shared, experts\)$"
expect_exit 1 "$SUBBIT" mem Mixtral-8x7B --keep 'blk.*'
expect_err_line "^subbit mem: Mixtral-8x7B: --keep 'blk.\*': a config or preset has no tensor names; name components \(embed, output, attn, ffn, shared, experts\)$"
finish
