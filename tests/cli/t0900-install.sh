#!/usr/bin/env bash
# The library as others use it: `cmake --install` of this build into a
# temporary prefix, tests/example/example.c compiled against it with
# pkg-config (shared, then static with --static), and run: it converts the
# built-in model to q8_0 GGUF and scores both on the demo text through the
# public headers alone (include/subbit/), exit 0 when the gates pass.
. "$(dirname "$0")/lib.sh"
: "${SUBBIT_BUILD:?SUBBIT_BUILD must name the build folder}"
command -v pkg-config >/dev/null && command -v cc >/dev/null || { echo "SKIP: no pkg-config or cc"; exit 77; }
P=$T/prefix
expect_exit 0 cmake --install "$SUBBIT_BUILD" --prefix "$P"
for h in subbit.h sb_err.h fmt_model.h cvt_convert.h vfy_model.h vfy_ppl.h vfy_gen.h; do
  [ -f "$P/include/subbit/$h" ] && ok || bad "include/subbit/$h not installed"
done
PC=$(find "$P" -name subbit.pc | head -1)
[ -n "$PC" ] && ok || bad "subbit.pc not installed"
export PKG_CONFIG_PATH=$(dirname "$PC")
# what the build used, so an instrumented (ASan) library links
EXTRA=${SUBBIT_EXAMPLE_CFLAGS:-}
SRC=$SUBBIT_SRC/tests/example/example.c
# shared: libsubbit.so, found at run time through LD_LIBRARY_PATH
expect_exit 0 cc $EXTRA -o "$T/ex" "$SRC" $(pkg-config --cflags --libs subbit)
# static: libsubbit.a and what it needs (Libs.private, Requires.private)
expect_exit 0 cc $EXTRA -o "$T/ex-static" "$SRC" $(pkg-config --static --cflags subbit) \
  -Wl,-Bstatic $(pkg-config --libs-only-l subbit) -Wl,-Bdynamic \
  $(pkg-config --static --libs subbit | sed 's/-lsubbit//')
LIBDIR=$(pkg-config --variable=libdir subbit)
if ldd "$T/ex-static" | grep -q libsubbit; then bad "static example loads libsubbit.so"; else ok; fi
M=$SUBBIT_SRC/models/tinymoe
TXT=$T/short.txt   # the demo text's first blocks: a few hundred tokens are enough here
head -c 4000 "$SUBBIT_SRC/models/demo.txt" >"$TXT"
for ex in ex ex-static; do
  rm -f "$T/q.gguf"
  LD_LIBRARY_PATH=$LIBDIR expect_exit 0 "$T/$ex" "$M" "$T/q.gguf" "$TXT"
  grep -q '^converted .* to q8_0' "$T/out" && ok || bad "$ex: no conversion line"
  grep -Eq '^ppl [0-9.]+ [0-9.]+ kld' "$T/out" && ok || bad "$ex: no ppl line"
  [ -s "$T/q.gguf" ] && ok || bad "$ex: no GGUF written"
done
finish
