#!/usr/bin/env bash
# verify's paired difference: ln_ppl_ratio is the mean over scored positions of
# NLL_model - NLL_ref, so it equals ln(ppl_model / ppl_ref) computed from the two
# perplexities verify prints (each the exp of its own mean NLL); swapping the
# models negates it with the same standard error; a model against itself gives
# 0 +/- 0; and the paired standard error lies between the difference and the
# sum of the two models' own (the triangle inequality for standard deviations),
# well under their sum when the models agree position by position.
. "$(dirname "$0")/lib.sh"
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
expect_exit 0 "$SUBBIT" convert "$M" -o "$T/q.subbit" --to q4_0 -q
V=(verify --text "$TEXT" --protocol blocks --no-gate -q --json -t 2)
num() { json_num "$1"; }
expect_exit 0 "$SUBBIT" "${V[@]}" --ref "$M" --model "$T/q.subbit"
ab=$(num ln_ppl_ratio) abse=$(num ln_ppl_ratio_stderr)
pr=$(num ppl_ref) prse=$(num ppl_ref_stderr) pm=$(num ppl_model) pmse=$(num ppl_model_stderr)
expect_exit 0 "$SUBBIT" "${V[@]}" --ref "$T/q.subbit" --model "$M"
ba=$(num ln_ppl_ratio) base=$(num ln_ppl_ratio_stderr)
expect_exit 0 "$SUBBIT" "${V[@]}" --ref "$M" --model "$M"
aa=$(num ln_ppl_ratio) aase=$(num ln_ppl_ratio_stderr)
awk -v ab="$ab" -v pr="$pr" -v pm="$pm" \
  'BEGIN{ d = log(pm / pr) - ab; exit !(ab > 0 && d < 1e-9 && d > -1e-9) }' && ok ||
  bad "ln_ppl_ratio $ab is not ln($pm / $pr)"
awk -v ab="$ab" -v ba="$ba" -v s1="$abse" -v s2="$base" \
  'BEGIN{ exit !(ab + ba < 1e-12 && ab + ba > -1e-12 && s1 == s2 && s1 > 0) }' && ok ||
  bad "swapped: $ab +/- $abse against $ba +/- $base"
[ "$aa" = 0 ] && [ "$aase" = 0 ] && ok || bad "a model against itself: $aa +/- $aase"
# the models' own standard errors of the mean NLL are ppl_se / ppl
awk -v s="$abse" -v pr="$pr" -v prse="$prse" -v pm="$pm" -v pmse="$pmse" \
  'BEGIN{ a = prse / pr; b = pmse / pm; d = a > b ? a - b : b - a
          exit !(s >= d && s <= a + b && s < (a + b) / 4) }' && ok ||
  bad "paired stderr $abse against the models' own ($prse / $pr, $pmse / $pm)"
# the text report says it
expect_exit 0 "$SUBBIT" verify --text "$TEXT" --protocol blocks --no-gate -q --ref "$M" --model "$T/q.subbit"
grep -q '^ln ppl ratio:  +0\.[0-9]* +/- 0\.[0-9]*  (paired' "$T/out" && ok || bad "text report: $(grep ratio "$T/out")"
finish
