#!/bin/sh
# The method comparison of docs/results.md: every tuning method on the frozen Universal Sentence
# Encoder Lite (docs/use_lite.md) for SST-2 (full GLUE training set, 872-sentence dev set), RTE
# and WSC (SuperGLUE train / val), three seeds each. One `ptune train` per (task, method, seed),
# one thread each, JOBS of them at a time; each run's wall and CPU time and peak RSS come from
# /usr/bin/time (CPU time is the fairer measure when other work shares the machine). Then
# examples/experiments/use_comparison.py writes the table and the plot.
#
#   examples/experiments/use_comparison.sh MODEL_DIR DATA_DIR OUT_DIR
#     MODEL_DIR  the npm package's dist/ (model.json, vocab.json; README command 1 fetches it)
#     DATA_DIR   a folder with sst2/ (train.tsv, dev.tsv) and superglue/RTE, superglue/WSC
#                (train.jsonl, val.jsonl): ../shared/data on the development machines
#   Environment: JOBS (default 2), SEEDS (default "1 2 3"), METHODS, TASKS (defaults: all),
#   PTUNE (default build/release/examples/ptune), STEPS (every task's step count: a quick check).
# A run whose OUT_DIR/<task>/<method>/seed<k>/result.json exists is skipped (resumable).
# Run the sweep first when the grid or the budget changes, then set lr_of() from its table.
#
# Budget per run (optimiser steps, evaluation once at the end, so no model selection on dev):
#   sst2  1000 steps x 32 sentences (0.48 epoch of 67,349)
#   rte    160 steps x 32 pairs     (2.1 epochs of 2,490)
#   wsc    350 steps x 16           (10.1 epochs of 554)
# (what three seeds of eight methods on three tasks allow in about an hour of two cores).
# Learning rates: lr_of() below, each method's best of a small grid on SST-2 (seed 1, 300 steps
# x 32): SWEEP=1 runs that grid (grid() below) into OUT_DIR/sweep/<method>/lr<lr>/.
set -eu
if [ $# -ne 3 ]; then
  sed -n 2,25p "$0" >&2
  exit 2
fi
model=$(cd "$1" && pwd) data=$(cd "$2" && pwd) out=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
ptune=${PTUNE:-$root/build/release/examples/ptune}
jobs=${JOBS:-2}
seeds=${SEEDS:-"1 2 3"}
methods=${METHODS:-"ptv2 ptv2-hidden prefix prompt ptuning lora probe full"}
tasks=${TASKS:-"sst2 rte wsc"}
[ -x "$ptune" ] || { echo "no ptune at $ptune (cmake --build --preset release --target ptune)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
mkdir -p "$out"

# Learning-rate grid of the sweep (SWEEP=1): SST-2, seed 1, 300 steps x 32, per method.
grid() {
  case $1 in
    full) echo "1e-3 3e-4 1e-4 3e-5 1e-5" ;;
    prefix) echo "1e-2 3e-3 1e-3 3e-4" ;;
    *) echo "3e-2 1e-2 3e-3 1e-3" ;;
  esac
}
# The learning rate of each method in the comparison: the sweep's best on SST-2 (docs/results.md).
lr_of() {
  case $1 in
    full) echo 3e-4 ;;
    prefix) echo 1e-3 ;;
    *) echo 3e-3 ;;
  esac
}
budget() {  # task -> "data_dir steps batch"
  case $1 in
    sst2) echo "$data/sst2 1000 32" ;;
    rte) echo "$data/superglue/RTE 160 32" ;;
    wsc) echo "$data/superglue/WSC 350 16" ;;
    *) echo "unknown task $1" >&2; exit 2 ;;
  esac
}

list=$out/runs-$$.txt
: >"$list"
if [ "${SWEEP:-0}" = 1 ]; then
  for method in $methods; do
    for lr in $(grid "$method"); do
      echo "sweep/$method/lr$lr sst2 $method 1 $data/sst2 ${STEPS:-300} 32 $lr" >>"$list"
    done
  done
else
  for task in $tasks; do
    set -- $(budget "$task")
    for method in $methods; do
      for seed in $seeds; do
        echo "$task/$method/seed$seed $task $method $seed $1 ${STEPS:-$2} $3 $(lr_of "$method")" >>"$list"
      done
    done
  done
fi

run_one() {  # run_dir task method seed data_dir steps batch lr
  run=$out/$1
  [ -f "$run/result.json" ] && return 0
  mkdir -p "$run"
  if /usr/bin/time -f '{"wall_s": %e, "user_s": %U, "sys_s": %S, "peak_rss_kib": %M}' -o "$run/time.json" \
    "$ptune" train --task "$2" --method "$3" --model "$model" --data "$5" --out "$run/train" \
    --seed "$4" --max-steps "$6" --eval-every "$6" --batch "$7" --lr "$8" --threads 1 >"$run/log.txt" 2>&1; then
    tail -1 "$run/log.txt" >"$run/result.json"
    echo "done $1 (lr $8): $(cat "$run/result.json")"
  else
    echo "FAILED $1 (log: $run/log.txt)"
    tail -5 "$run/log.txt"
  fi
}
export model out ptune
# POSIX sh has no export -f: each line is handed to a fresh sh that sources this script's function.
fn=$(sed -n '/^run_one() {/,/^}/p' "$0")
export fn
xargs -P "$jobs" -L 1 sh -c 'eval "$fn"; run_one "$@"' run_one <"$list"
echo "all runs in $out; table and plot: python3 $root/examples/experiments/use_comparison.py $out"
