#!/usr/bin/env bash
# Every command's --json document starts with "command" and names the model,
# the context, experts per token, seconds and peak RSS the same way
# (docs/json.md). Python's json module reads each document: an independent
# parser, and the key order as written. (issue 15)
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
M="$SUBBIT_SRC/models/tinymoe"
TEXT="$SUBBIT_SRC/models/demo.txt"
# check FILE CMD FIELD=VALUE|FIELD...: a dotted path must exist (=VALUE: equal, as JSON text)
check() {
  python3 - "$@" <<'PY' && ok || bad "$2: $(cat "$T/why")"
import json, sys
f, cmd, want = sys.argv[1], sys.argv[2], sys.argv[3:]
why = open(sys.argv[1] + ".why", "w")
try:
    d = json.load(open(f))
except Exception as e:
    why.write("not JSON: %s" % e); sys.exit(1)
bad = []
if list(d)[:1] != ["command"] or d["command"] != cmd:
    bad.append("first field is not command=%s" % cmd)
for w in want:
    path, _, val = w.partition("=")
    o = d
    for k in path.split("."):
        if not isinstance(o, dict) or k not in o:
            bad.append("no " + path); o = None; break
        o = o[k]
    if o is not None and val and json.dumps(o) != val:
        bad.append("%s is %s, want %s" % (path, json.dumps(o), val))
why.write("; ".join(bad))
sys.exit(1 if bad else 0)
PY
  cp "$1.why" "$T/why" 2>/dev/null
}
"$SUBBIT" inspect "$M" --summary --json >"$T/inspect.json" || bad "inspect"
check "$T/inspect.json" inspect "model=\"$M\"" architecture.model_ctx=512 architecture.experts_per_token=2
"$SUBBIT" convert "$M" -o "$T/q.gguf" --to q8_0 --json -q >"$T/convert.json" || bad "convert"
check "$T/convert.json" convert "model=\"$M\"" "output=\"$T/q.gguf\"" seconds peak_rss_bytes
"$SUBBIT" mem "$M" --ctx 256 --json >"$T/mem.json" || bad "mem"
check "$T/mem.json" mem "model=\"$M\"" n_ctx=256 model_ctx=512 moe.experts_per_token=2
"$SUBBIT" ppl "$M" --text "$TEXT" --ctx 128 --max-chunks 2 --json >"$T/ppl.json" || bad "ppl"
check "$T/ppl.json" ppl "model=\"$M\"" n_ctx=128 seconds tokens_per_second
"$SUBBIT" verify --ref "$M" --model "$T/q.gguf" --text "$TEXT" --ctx 128 --max-chunks 2 --no-gate --json >"$T/verify.json" || bad "verify"
check "$T/verify.json" verify "model=\"$T/q.gguf\"" "ref=\"$M\"" n_ctx=128 seconds 'gates.source="none"'
"$SUBBIT" run "$M" -p "Once" -n 4 --temp 0 --json >"$T/run.json" || bad "run"
check "$T/run.json" run "model=\"$M\"" n_ctx seconds tokens_per_second tokens_generated=4
"$SUBBIT" synth -o "$T/s" --arch mixtral --json >"$T/synth.json" || bad "synth"
check "$T/synth.json" synth "model=\"$T/s\"" n_ctx=512 experts_per_token=2 seconds
"$SUBBIT" report "$T/mem.json" "$T/verify.json" -o "$T/r.html" --json >"$T/report.json" || bad "report"
check "$T/report.json" report "output=\"$T/r.html\"" documents
finish
