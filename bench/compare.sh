#!/usr/bin/env bash
# deepprompt-bench against the PyTorch reference (bench/reference_pytorch.py), same BERT
# workloads, same flags, same thread count.
#
#   bench/compare.sh [--quick] [--bin PATH] [--rounds N] [--threads N]
#                    [--workloads "forward ptv2-step full-step infer-folded"] [-- EXTRA FLAGS]
#
#   --quick      a smaller model (4 layers, 512 hidden, 8 heads, 2048 ffn, batch 8 x 128,
#                prefix 50): about 11 s for the PyTorch side, all four workloads, on 2 cores.
#                Default: BERT-base (12 layers, 768 hidden, 12 heads, 3072 ffn, vocab 30522,
#                batch 8 x 128, prefix 100). Both: --runs 3 --warmup 1.
#   --bin        the benchmark binary (default build-bench/bench/deepprompt-bench in the
#                repository root; a relative --bin is taken from the current directory)
#   --rounds     rounds per workload (default 1); each side keeps its best (lowest ms_median)
#   --threads    threads for both sides (default 2)
#   EXTRA FLAGS  after "--", passed to both sides (e.g. -- --lengths 128,128,64,...)
#
# For each workload and round, ours runs first, then PyTorch, each in its own process (so
# peak_rss_mib is per workload). Ours runs with the environment as it is. PyTorch runs under
#   OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=<threads>
# (see reference_pytorch.py for the first two). OPENBLAS_NUM_THREADS is needed:
# torch.set_num_threads() sets only PyTorch's OpenMP threads, Debian's PyTorch 1.13 never
# tells OpenBLAS (pthread build) its thread count, and OpenBLAS then uses all cores
# (checked with openblas_get_num_threads()). At --threads 2 on this 2-core machine, unset
# and 2 time the same (within noise); 1 was 10-60% slower on small BERT shapes.
#
# Prints one JSON line per workload:
#   {"workload", "ours_ms", "torch_ms", "speedup" (torch_ms / ours_ms), "ours_rss_mib",
#    "torch_rss_mib", "memory_ratio" (ours / torch), "ours_gflops", "torch_gflops"}
# ("ours_share_of_gemm_peak": ours_gflops over the best SGEMM rate that deepprompt-bench
# --workload gemm-peak measured before and after the workloads), then {"gemm_peak_gflops"}
# and, when forward and infer-folded both ran, {"infer_folded_vs_forward": ours infer-folded
# ms / ours forward ms}. Every raw line of both sides, then these summary lines, is saved to
# ${OUT:-bench-results}/compare-<date>.jsonl (OUT relative to the current directory).
# Progress goes to stderr. Needs /usr/bin/python3 with torch (JSON handling too, no jq).
set -euo pipefail

python=/usr/bin/python3
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=""
quick=0
rounds=1
threads=2
workloads="forward ptv2-step full-step infer-folded"
extra=()

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --bin) need "$@"; bin="$2"; shift ;;
    --bin=*) bin="${1#*=}" ;;
    --rounds) need "$@"; rounds="$2"; shift ;;
    --rounds=*) rounds="${1#*=}" ;;
    --threads) need "$@"; threads="$2"; shift ;;
    --threads=*) threads="${1#*=}" ;;
    --workloads) need "$@"; workloads="$2"; shift ;;
    --workloads=*) workloads="${1#*=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "compare.sh: unknown argument '$1' (--help for usage)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds must be >= 1" >&2; exit 2; }
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --threads must be >= 1" >&2; exit 2; }
for w in $workloads; do
  case "$w" in forward|ptv2-step|full-step|infer-folded) ;;
    *) echo "compare.sh: unknown workload '$w'" >&2; exit 2 ;;
  esac
done

out_dir="$(mkdir -p "${OUT:-bench-results}" && cd "${OUT:-bench-results}" && pwd)"
if [[ -z "$bin" ]]; then
  bin="$root/build-bench/bench/deepprompt-bench"
elif [[ "$bin" != /* ]]; then
  bin="$PWD/$bin"
fi
cd "$root"
if [[ ! -x "$bin" ]]; then
  echo "compare.sh: no benchmark binary at '$bin'. Build it with:" >&2
  echo "  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench --target deepprompt-bench" >&2
  exit 1
fi

if [[ "$quick" == 1 ]]; then
  shape=(--layers 4 --hidden 512 --heads 8 --ffn 2048 --vocab 30522 --batch 8 --seq 128
         --prefix 50)
else
  shape=(--layers 12 --hidden 768 --heads 12 --ffn 3072 --vocab 30522 --batch 8 --seq 128
         --prefix 100)
fi
flags=("${shape[@]}" --runs 3 --warmup 1 --threads "$threads" ${extra[@]+"${extra[@]}"})
results="$out_dir/compare-$(date +%Y%m%d-%H%M%S).jsonl"
: >"$results"

# Runs one side ($1: label, rest: command) and appends its JSON line (the last stdout line
# starting with "{") to $results.
run_side() {
  local label="$1" line
  shift
  echo "compare.sh: $label: $*" >&2
  if ! line="$("$@" | grep '^{' | tail -n 1)" || [[ -z "$line" ]]; then
    echo "compare.sh: $label failed or printed no JSON line" >&2
    exit 1
  fi
  echo "$line" >>"$results"
}

# The machine's SGEMM rate, before and after the workloads (the best of the two is the peak
# that each workload's useful GFLOP/s are compared with).
run_side "ours gemm-peak" "$bin" --workload gemm-peak --threads "$threads"
for w in $workloads; do
  for ((r = 1; r <= rounds; ++r)); do
    run_side "ours $w round $r" "$bin" --workload "$w" "${flags[@]}"
    run_side "pytorch $w round $r" env OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=passive \
      OPENBLAS_NUM_THREADS="$threads" "$python" bench/reference_pytorch.py --workload "$w" \
      "${flags[@]}"
  done
done

run_side "ours gemm-peak" "$bin" --workload gemm-peak --threads "$threads"

summary="$("$python" - "$results" $workloads <<'EOF'

import json, sys

path, workloads = sys.argv[1], sys.argv[2:]
best = {}  # (impl, workload) -> the run with the lowest ms_median
peak = 0.0  # the best SGEMM GFLOP/s measured in this run
for line in open(path):
    run = json.loads(line)
    if run["workload"] == "gemm-peak":
        peak = max(peak, run["gflops"])
        continue
    key = ("ours" if run["impl"] != "pytorch" else "torch", run["workload"])
    if key not in best or run["ms_median"] < best[key]["ms_median"]:
        best[key] = run
for w in workloads:
    ours, torch = best[("ours", w)], best[("torch", w)]
    print(json.dumps({
        "workload": w, "ours_ms": ours["ms_median"], "torch_ms": torch["ms_median"],
        "speedup": round(torch["ms_median"] / ours["ms_median"], 3),
        "ours_rss_mib": ours["peak_rss_mib"], "torch_rss_mib": torch["peak_rss_mib"],
        "memory_ratio": round(ours["peak_rss_mib"] / torch["peak_rss_mib"], 3),
        "ours_gflops": ours["gflops"], "torch_gflops": torch["gflops"],
        "ours_share_of_gemm_peak": round(ours["gflops"] / peak, 3) if peak else None}))
print(json.dumps({"gemm_peak_gflops": peak}))
if ("ours", "forward") in best and ("ours", "infer-folded") in best:
    ratio = best[("ours", "infer-folded")]["ms_median"] / best[("ours", "forward")]["ms_median"]
    print(json.dumps({"infer_folded_vs_forward": round(ratio, 3)}))
EOF
)"
echo "$summary"
echo "$summary" >>"$results"
echo "compare.sh: all lines saved to $results" >&2
