#!/bin/sh
# The bench programs on tiny BERT shapes (seconds): every workload prints its JSON line, the
# P-Tuning v2 step's GEMMs match the accounting of bench/expected_gemms.hpp (no weight-gradient
# GEMM of a frozen matrix runs), the hidden-state form's prefix path equals the literal
# computation; the accounting's self-test (--unfreeze) must fail it; bad flags exit 2.
#   tests/cli/bench_run.sh path/to/deepprompt-bench path/to/deepprompt-bench-peft
set -u
BENCH=${1:?usage: bench_run.sh deepprompt-bench deepprompt-bench-peft}
PEFT=${2:?usage: bench_run.sh deepprompt-bench deepprompt-bench-peft}
TINY="--layers 2 --hidden 64 --heads 4 --ffn 128 --vocab 500 --prefix 4 --seq 16 --batch 2 --runs 1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "bench_run: $*" >&2; exit 1; }

for w in forward ptv2-step full-step infer-folded; do
  "$BENCH" --workload $w $TINY --lengths 16,9 >> "$TMP/bench.jsonl" 2>"$TMP/err" || { cat "$TMP/err"; fail "$w exited non-zero"; }
done
"$BENCH" --workload ptv2-step $TINY --dtype bf16 >> "$TMP/bench.jsonl" 2>"$TMP/err" || { cat "$TMP/err"; fail "bf16 ptv2-step exited non-zero"; }
for u in 1 0; do
  "$PEFT" --workload all $TINY --unpadded $u > "$TMP/peft$u.jsonl" 2>"$TMP/err" || { cat "$TMP/err"; fail "bench-peft --unpadded $u exited non-zero"; }
done
"$PEFT" --workload ptv2 $TINY --unfreeze 'encoder.layer.0.*' > "$TMP/unfrozen.jsonl" 2>/dev/null && fail "--unfreeze: the GEMM check passed"

python3 - "$TMP" <<'PYEOF' || exit 1
import json, os, sys
tmp = sys.argv[1]
lines = lambda f: [json.loads(l) for l in open(os.path.join(tmp, f))]
bad = []
bench = lines("bench.jsonl")
if [b["workload"] for b in bench] != ["forward", "ptv2-step", "full-step", "infer-folded", "ptv2-step"]:
    bad.append("deepprompt-bench workloads: %s" % [b["workload"] for b in bench])
for b in bench:
    if not (b["ms_median"] > 0 and b["useful_gflop"] > 0 and b["peak_rss_mib"] > 0 and b["device"] == "cpu"):
        bad.append("deepprompt-bench %s: %s" % (b["workload"], b))
for u in ("1", "0"):
    peft = {d["workload"]: d for d in lines("peft%s.jsonl" % u)}
    for w in ("ptv2-step", "full-step", "hidden-form", "ptv2-vs-full"):
        if w not in peft or peft[w].get("ok") is not True:
            bad.append("bench-peft --unpadded %s: %s not ok" % (u, w))
    p = peft.get("ptv2-step", {})
    for phase in ("gemm_forward", "gemm_backward"):
        if p.get(phase, {}).get("match") is not True:
            bad.append("bench-peft --unpadded %s: ptv2 %s does not match the accounting" % (u, phase))
    if p.get("frozen_weight_grad_gemms_ran") != 0 or p.get("frozen_weight_matrices", 0) == 0:
        bad.append("bench-peft --unpadded %s: frozen weight-gradient GEMMs ran" % u)
    h = peft.get("hidden-form", {})
    if not h.get("max_abs_diff_logits", 1) < 1e-4:
        bad.append("bench-peft --unpadded %s: hidden form differs: %s" % (u, h.get("max_abs_diff_logits")))
if lines("unfrozen.jsonl")[0].get("ok") is not False:
    bad.append("--unfreeze: the ptv2 line is not marked failed")
for b in bad: print("bench_run:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

"$BENCH" --workload nope 2>/dev/null; [ $? -eq 2 ] || fail "a bad workload does not exit 2"
"$BENCH" --workload full-step --device cuda 2>/dev/null; [ $? -eq 2 ] || fail "--device cuda full-step does not exit 2"
"$BENCH" --workload forward --tf32 1 2>/dev/null; [ $? -eq 2 ] || fail "--tf32 without --device cuda does not exit 2"
"$PEFT" --batch x 2>/dev/null; [ $? -eq 2 ] || fail "a bad value does not exit 2"
echo "bench_run: ok"
