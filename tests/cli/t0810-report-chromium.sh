#!/usr/bin/env bash
# The report page in a real browser (Debian's chromium, headless): it renders
# without a console error (Chromium logs invalid SVG geometry such as a
# negative or NaN width as one), and the screenshot is not blank: many
# colours, a good share of non-background pixels, and the colours of the
# charts' bars (sub1's orange, the memory bar's blue, a passed gate's green).
# Skips when chromium is absent (tools/setup installs it).
. "$(dirname "$0")/lib.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then echo "SKIP: chromium not found (tools/setup installs Debian's chromium)"; exit 77; fi
PNG=${SUBBIT_PNG_STATS:?SUBBIT_PNG_STATS must name the png_stats helper}
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"

# shot PAGE PNG: screenshot 1000 x 2400; the browser's log in PNG.log
shot() {
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$T/profile" --enable-logging=stderr --v=0 \
    --window-size=1000,2400 --screenshot="$2" "file://$1" >"$2.log" 2>&1
}

"$SUBBIT" convert "$M" -o "$T/sub1.subbit" --to sub1 --experts-only --stats --json -q >"$T/convert.json" || bad "convert"
"$SUBBIT" mem "$M" --ctx 512 --json >"$T/mem.json" || bad "mem"
"$SUBBIT" verify --ref "$M" --model "$T/sub1.subbit" --text "$TEXT" --protocol blocks --max-blocks 1 \
  --max-ppl-delta 60% --json >"$T/verify.json" || bad "verify"
expect_exit 0 "$SUBBIT" report "$T/verify.json" "$T/convert.json" "$T/mem.json" -o "$T/r.html"

shot "$T/r.html" "$T/r.png"
[ -s "$T/r.png" ] && ok || { bad "no screenshot"; sed 's/^/  chromium: /' "$T/r.png.log" | tail -5; }
if grep -q ':CONSOLE' "$T/r.png.log"; then bad "console messages:"; grep ':CONSOLE' "$T/r.png.log" | head -5; else ok; fi
# WIDTH HEIGHT COLOURS NON-BACKGROUND, then pixels of each colour asked for
"$PNG" "$T/r.png" ee7733 4477aa 228833 >"$T/stats" || bad "png_stats"
read -r w h colours other <"$T/stats"
[ "$w" = 1000 ] && [ "$h" = 2400 ] && ok || bad "screenshot is ${w}x$h"
[ "$colours" -ge 50 ] && ok || bad "screenshot has $colours colours"
[ "$other" -ge $((w * h / 20)) ] && ok || bad "screenshot: only $other of $((w * h)) pixels not background"
while read -r c n; do
  [ "$n" -ge 5000 ] && ok || bad "colour #$c: $n pixels (its bars are missing; a legend swatch is 121)"
done < <(tail -n +2 "$T/stats")

# the checks can fail: invalid geometry is a console error, a blank page has one colour
printf '<!DOCTYPE html><svg width="9" height="9"><rect width="-5" height="3"/></svg>\n' >"$T/bad.html"
shot "$T/bad.html" "$T/bad.png"
grep -q ':CONSOLE.*negative value' "$T/bad.png.log" && ok || bad "chromium did not report a negative width: console check is blind"
"$PNG" "$T/bad.png" >"$T/stats" && read -r w h colours other <"$T/stats"
[ "$colours" -le 2 ] && ok || bad "a blank page has $colours colours"
finish
