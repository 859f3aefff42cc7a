#!/bin/sh
# Builds the libFuzzer targets with clang into BUILD_DIR and runs each one for RUNS executions
# over its committed corpus (tests/fuzz/corpus/<name>/) with its dictionary (<name>.dict).
# New inputs a run finds go to a scratch folder, never into the committed corpus.
#
#   tests/fuzz/smoke.sh BUILD_DIR [RUNS]          (RUNS: default 1000; the long runs of
#                                                 docs/robustness.md asked for 1000000)
# Environment: CXX_FUZZ (default clang++, else clang++-14), JOBS (build jobs, default nproc),
# FUZZ_OPT (optimisation flags, default "-O1 -gline-tables-only"; "-O0" builds twice as fast),
# FUZZ_ONLY (a space-separated list of names to run, e.g. "config glue").
# Exit status: non-zero when the build fails or any target finds a crash, leak, sanitizer
# report or timeout (its reproducer lands in BUILD_DIR/fuzz-artifacts/).
set -eu

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [RUNS]" >&2
  exit 2
fi
build=$1
runs=${2:-1000}
root=$(cd "$(dirname "$0")/../.." && pwd)
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
cxx=${CXX_FUZZ:-}
if [ -z "$cxx" ]; then
  if command -v clang++ >/dev/null 2>&1; then cxx=clang++; else cxx=clang++-14; fi
fi

start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE= \
  -DDEEPPROMPT_BUILD_FUZZ=ON -DDEEPPROMPT_BUILD_TESTS=OFF -DDEEPPROMPT_BUILD_EXAMPLES=OFF \
  -DDEEPPROMPT_BUILD_BENCH=OFF -DDEEPPROMPT_FUZZ_OPT="${FUZZ_OPT:--O1 -gline-tables-only}" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target fuzz_targets -j "$jobs"
built=$(date +%s)
echo "fuzz: built in $((built - start)) s"

# Longest input per target: enough for the largest seed (tokenizer.json files are ~40 kB).
max_len() {
  case $1 in
    tokenizer_json_*) echo 65536 ;;
    squad | webnlg | sentencepiece | superglue | conll | vocab_txt) echo 32768 ;;
    tokenize_text) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  name=${name#fuzz_}
  if [ -n "${FUZZ_ONLY:-}" ] && ! echo " $FUZZ_ONLY " | grep -q " $name "; then continue; fi
  corpus="$root/tests/fuzz/corpus/$name"
  scratch="$build/fuzz-scratch/$name"
  rm -rf "$scratch"
  mkdir -p "$scratch"
  set -- -runs="$runs" -max_len="$(max_len "$name")" -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-"
  [ -f "$root/tests/fuzz/$name.dict" ] && set -- "$@" -dict="$root/tests/fuzz/$name.dict"
  [ -d "$corpus" ] || corpus=""
  t0=$(date +%s)
  if "$bin" "$@" "$scratch" $corpus >"$build/fuzz-$name.log" 2>&1; then
    summary=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$build/fuzz-$name.log" | tail -1 || true)
    echo "fuzz: $name ok ($(($(date +%s) - t0)) s) $summary"
  else
    echo "fuzz: $name FAILED (log: $build/fuzz-$name.log)"
    tail -40 "$build/fuzz-$name.log"
    status=1
  fi
done
echo "fuzz: total $(($(date +%s) - start)) s"
exit $status
