# tests/cli/lib.sh: helpers for CLI tests (sourced). $SUBBIT is the binary.
set -u
: "${SUBBIT:?SUBBIT must name the subbit binary}"
FIXTURES=${SUBBIT_FIXTURES:-${SUBBIT_FIXTURES_DEFAULT:-}}
T=$(mktemp -d "${TMPDIR:-/tmp}/subbit-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 143' TERM INT HUP   # so that the EXIT trap runs (ctest's timeout sends TERM)
# whatever subbit puts in $TMPDIR (tokenizer side files, texts) goes with $T
export TMPDIR="$T"
fails=0
passes=0
need_fixtures() {
  if [ -z "$FIXTURES" ] || [ ! -d "$FIXTURES" ]; then
    echo "SKIP: fixtures not found at '${FIXTURES:-}' (set SUBBIT_FIXTURES)"
    exit 77
  fi
}
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_exit CODE CMD...: run CMD, compare its exit code; stdout/stderr in $T/out, $T/err
expect_exit() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then bad "exit $got (want $want): $*"; sed 's/^/  err: /' "$T/err" | head -5; else ok; fi
}
# expect_err_line REGEX: stderr is exactly one line matching REGEX
expect_err_line() {
  local n; n=$(wc -l <"$T/err")
  if [ "$n" -ne 1 ] || ! grep -Eq "$1" "$T/err"; then bad "stderr not one line matching '$1':"; sed 's/^/  err: /' "$T/err" | head -5; else ok; fi
}
expect_no_file() {
  if [ -e "$1" ] || ls "$1".subbit-tmp-* "$1".tmp-* >/dev/null 2>&1; then bad "output or temp left: $1"; else ok; fi
}
# expect_no_temps DIR: no temp of any output in DIR (nor in $TMPDIR)
expect_no_temps() {
  local left
  left=$(find "$1" "$TMPDIR" -maxdepth 1 -name '*.subbit-tmp-*' 2>/dev/null)
  if [ -n "$left" ]; then bad "temps left: $left"; else ok; fi
}
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
# need_mpi: skip unless this subbit was built with MPI and mpirun is here;
# then $MPIRUN N CMD... runs CMD as N ranks (CI runs as root: Open MPI's
# documented variables allow it; --oversubscribe: more ranks than cores)
need_mpi() {
  command -v mpirun >/dev/null || { echo "SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; }
  "$SUBBIT" --version | grep -q '(mpi)' || { echo "SKIP: subbit built without MPI (SUBBIT_MPI=OFF)"; exit 77; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  # loopback only, no probing of other networks (quiet and quick on a CI box);
  # no single-copy mechanism (CMA/XPMEM are refused in containers) and shared
  # memory segments in the test's folder, so a small /dev/shm does not matter
  export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
  mkdir -p "$T/.shm" && export OMPI_MCA_btl_vader_backing_directory="$T/.shm"
  # ASan pass: Open MPI's own allocations that outlive MPI_Finalize are
  # suppressed by library name (lsan-openmpi.supp); Debian's Open MPI has no
  # frame pointers, so the ranks need the full (slow) unwinder to see those
  # names: given to the ranks only (MPIRUN), not to one-process runs
  if [ -n "${ASAN_OPTIONS:-}" ]; then
    RANK_ASAN="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$SUBBIT_SRC/tests/cli/lsan-openmpi.supp:print_suppressions=0"
  fi
}
RANK_ASAN=
# a job that hangs (ranks waiting for one that left) fails the test with 124
MPIRUN() {
  local n=$1; shift
  if [ -n "$RANK_ASAN" ]; then
    timeout -k 10 "${SUBBIT_MPI_TIMEOUT:-300}" mpirun -np "$n" -x SUBBIT_PAR_FAULT -x ASAN_OPTIONS="$RANK_ASAN" "$@"
  else
    timeout -k 10 "${SUBBIT_MPI_TIMEOUT:-300}" mpirun -np "$n" -x SUBBIT_PAR_FAULT "$@"
  fi
}
# mpi_lean: true in the sanitizer pass (tools/test sets ASAN_OPTIONS), where
# each rank's start and end under the slow unwinder costs seconds: the MPI
# tests then run one -np 2 case and one failing rank each; the plain pass runs
# every case (2 and 3 ranks, every container, every failure)
mpi_lean() { [ -n "${ASAN_OPTIONS:-}" ]; }
# subbit_lines: how many lines of $T/err come from subbit (mpirun adds its own)
subbit_lines() { grep -c '^subbit' "$T/err"; }
# need_llama_cpp: llama.cpp's tools as an oracle (never part of the build):
# $LLAMA_BIN from SUBBIT_LLAMA_BIN, else a llama.cpp build beside the checkout
# (../llama.cpp/build/bin, as ../shared holds the fixtures); skip without them.
# Written against ggml-org/llama.cpp 81ff7abe (its flags and mix rules)
need_llama_cpp() {
  LLAMA_BIN=${SUBBIT_LLAMA_BIN:-$SUBBIT_SRC/../llama.cpp/build/bin}
  for b in llama-quantize llama-perplexity; do
    if [ ! -x "$LLAMA_BIN/$b" ]; then
      echo "SKIP: $b not found in '$LLAMA_BIN' (set SUBBIT_LLAMA_BIN)"
      exit 77
    fi
  done
}
# json_num KEY: the number after "KEY": in $T/out
json_num() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.eE+-]*\).*/\1/p" "$T/out" | head -1; }
# gguf_u32 KEY FILE: the u32 value of GGUF metadata KEY (key string, u32 type
# 4, value follow each other), empty when the key is absent or not a u32
gguf_u32() {
  local off
  off=$(LC_ALL=C grep -obUaF "$1" "$2" | head -1 | cut -d: -f1)
  [ -n "$off" ] || return 0
  local ty; ty=$(od -An -tu4 -j $((off + ${#1})) -N4 "$2" | tr -d ' ')
  [ "$ty" = 4 ] && od -An -tu4 -j $((off + ${#1} + 4)) -N4 "$2" | tr -d ' '
}
