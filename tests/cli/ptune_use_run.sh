#!/bin/sh
# ptune on the real USE Lite model, end to end and short: train (ptv2 and the linear probe) on
# the first 64 sentences of the committed SST-2 sample, then `ptune eval` of the saved adapter
# must print the training run's best metrics, and `ptune predict` one label a line. Skipped
# (exit 77) without the model (DEEPPROMPT_USE_LITE, default /work/shared/use-lite/package/dist).
#   tests/cli/ptune_use_run.sh path/to/ptune
set -u
PTUNE=${1:?usage: ptune_use_run.sh path/to/ptune}
MODEL=${DEEPPROMPT_USE_LITE:-/work/shared/use-lite/package/dist}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../data/datasets/glue/sst2_use"
if [ ! -f "$MODEL/model.json" ]; then
  echo "skipped: no USE Lite model at $MODEL (set DEEPPROMPT_USE_LITE)"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "ptune_use_run: $*"; exit 1; }

for m in ptv2 probe; do
  "$PTUNE" train --task sst2 --model "$MODEL" --data "$DATA" --method $m --out "$TMP/$m" \
    --epochs 1 --batch 16 --tokens 4 --max-train 64 --max-eval 48 >"$TMP/$m.train" 2>"$TMP/$m.log" \
    || { cat "$TMP/$m.log"; fail "$m: train failed"; }
  [ -f "$TMP/$m/best/adapter_model.safetensors" ] && [ -f "$TMP/$m/best/adapter_config.json" ] || fail "$m: no adapter"
  grep -q '"peft_type": "DEEPPROMPT_USE_LITE"' "$TMP/$m/best/adapter_config.json" || fail "$m: adapter_config.json"
  "$PTUNE" eval --task sst2 --model "$MODEL" --adapter "$TMP/$m/best" --data "$DATA" --max-eval 48 >"$TMP/$m.eval" \
    || fail "$m: eval failed"
  cmp -s "$TMP/$m.train" "$TMP/$m.eval" || fail "$m: eval $(cat "$TMP/$m.eval") != train $(cat "$TMP/$m.train")"
done
grep -q "ptv2: trainable" "$TMP/ptv2.log" || fail "no parameter report"

printf 'a gorgeous , witty , seductive movie .\nthe worst film of the year .\n' >"$TMP/in.txt"
"$PTUNE" predict --task sst2 --model "$MODEL" --adapter "$TMP/ptv2/best" --input "$TMP/in.txt" >"$TMP/pred" \
  || fail "predict failed"
[ "$(wc -l <"$TMP/pred")" -eq 2 ] || fail "predict: $(cat "$TMP/pred")"
grep -qvx '[01]' "$TMP/pred" && fail "predict: not labels: $(cat "$TMP/pred")"

# An unknown method for USE Lite is a usage error (2).
"$PTUNE" train --task sst2 --model "$MODEL" --data "$DATA" --method prefix --out "$TMP/x" 2>"$TMP/err"
[ $? -eq 2 ] || fail "--method prefix: expected exit 2: $(cat "$TMP/err")"
echo "ptune_use_run: ok"
