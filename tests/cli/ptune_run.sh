#!/bin/sh
# ptune end to end on randomly initialised tiny models (tests/tools/make_tiny_model.cpp) and the
# committed samples (tests/data/datasets): on SST-2, `ptune train` shows the training loss
# falling and writes a PEFT adapter that `ptune eval` reads back with the best evaluation's
# accuracy; `ptune predict` labels new lines; a finished run resumed does nothing more; bad
# options exit 2 and bad folders exit 1, each with a message naming the problem. conll03, squad
# (BERT) and webnlg (T5) train, write their adapters and evaluate them back.
#   tests/cli/ptune_run.sh path/to/ptune path/to/make_tiny_model
# Needs a POSIX shell and python3 (standard library) to read the JSON outputs.
set -u
PTUNE=${1:?usage: ptune_run.sh path/to/ptune path/to/make_tiny_model}
MAKE_MODEL=${2:?usage: ptune_run.sh path/to/ptune path/to/make_tiny_model}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../data/datasets/glue/sst2"
VOCAB="$HERE/../data/tokenizers/bert-base-uncased-vocab.txt"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$MAKE_MODEL" bert "$VOCAB" "$TMP/model" 32 2 4 64 1 || { echo "FAIL: make_tiny_model bert"; exit 1; }

# ptv2+bf16: P-Tuning v2 with the frozen backbone's Linear weights in bfloat16 (--bf16): the 2 layers'
# 6 Linears and the pooler's, 13
for variant in ptv2 ptv2-hidden lora ptv2+bf16; do
  method=${variant%+bf16}
  extra=""
  [ "$variant" != "$method" ] && extra="--bf16"
  OUT="$TMP/out-$variant"
  if ! "$PTUNE" train --task sst2 --method "$method" --model "$TMP/model" --data "$DATA" --out "$OUT" \
       --epochs 12 --batch 4 --lr 5e-2 --dropout 0 --seed 3 --threads 2 $extra > "$TMP/train.json" 2> "$TMP/train.log"; then
    fail "$variant: ptune train failed"; cat "$TMP/train.log"; continue
  fi
  grep -q "trainable" "$TMP/train.log" || fail "$variant: no parameter report"
  if [ -n "$extra" ]; then
    grep -q "ptune: 13 frozen Linear layers on bf16 weights" "$TMP/train.log" || fail "$variant: no bf16 weights"
  fi
  python3 - "$OUT" "$method" <<'PYEOF' || fail "$variant: outputs"
import json, sys
out, method = sys.argv[1], sys.argv[2]
log = [json.loads(l) for l in open(out + "/eval_log.jsonl")]
assert len(log) == 12, len(log)
first = sum(l["train_loss"] for l in log[:3]) / 3
last = sum(l["train_loss"] for l in log[-3:]) / 3
assert last < 0.9 * first, (first, last)          # the training loss falls
cfg = json.load(open(out + "/best/adapter_config.json"))
want = {"ptv2": "PREFIX_TUNING", "ptv2-hidden": "PREFIX_TUNING", "lora": "LORA"}[method]
assert cfg["peft_type"] == want and cfg["task_type"] == "SEQ_CLS", cfg
best = max(l["accuracy"] for l in log)
open(out + "/best_accuracy", "w").write(repr(best))
PYEOF
  if ! "$PTUNE" eval --task sst2 --model "$TMP/model" --adapter "$OUT/best" --data "$DATA" $extra > "$TMP/eval.json" 2> "$TMP/eval.log"; then
    fail "$method: ptune eval failed"; cat "$TMP/eval.log"; continue
  fi
  python3 - "$OUT" "$TMP/eval.json" <<'PYEOF' || fail "$method: eval differs from the best training evaluation"
import json, sys
best = float(open(sys.argv[1] + "/best_accuracy").read())
got = json.load(open(sys.argv[2]))
assert abs(got["accuracy"] - best) < 1e-9, (got, best)
assert set(got) == {"accuracy", "macro_f1", "mcc"}, got
PYEOF
done

# conll03 and squad (the committed dev samples serve as training data too): the adapters are
# TOKEN_CLS / QUESTION_ANS and `ptune eval` reproduces the best evaluation
mkdir -p "$TMP/ner" "$TMP/squad"
cp "$HERE/../data/datasets/conll2003/iob2_2col/valid.txt" "$TMP/ner/valid.txt"
cp "$TMP/ner/valid.txt" "$TMP/ner/train.txt"
cp "$HERE/../data/datasets/squad/squad_v1.1_dev/dev-v1.1.json" "$TMP/squad/dev.json"
cp "$TMP/squad/dev.json" "$TMP/squad/train.json"
for spec in "conll03 ner TOKEN_CLS" "squad squad QUESTION_ANS"; do
  set -- $spec
  task=$1; data="$TMP/$2"; type=$3; OUT="$TMP/out-$task"
  extra=""
  [ "$task" = squad ] && extra="--max-length 128 --doc-stride 64 --max-train 12 --max-eval 12"
  if ! "$PTUNE" train --task "$task" --model "$TMP/model" --data "$data" --out "$OUT" --epochs 2 --batch 4 \
       --lr 5e-2 --seed 3 $extra > /dev/null 2> "$TMP/train.log"; then
    fail "$task: ptune train failed"; cat "$TMP/train.log"; continue
  fi
  if ! "$PTUNE" eval --task "$task" --model "$TMP/model" --adapter "$OUT/best" --data "$data" \
       $(echo $extra | sed 's/--max-train 12//') > "$TMP/eval.json" 2> "$TMP/eval.log"; then
    fail "$task: ptune eval failed"; cat "$TMP/eval.log"; continue
  fi
  python3 - "$OUT" "$TMP/eval.json" "$type" <<'PYEOF' || fail "$task: adapter or evaluation"
import json, sys
out, got, want = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
cfg = json.load(open(out + "/best/adapter_config.json"))
assert cfg["task_type"] == want and cfg["peft_type"] == "PREFIX_TUNING", cfg
log = [json.loads(l) for l in open(out + "/eval_log.jsonl")]
best = max(l["f1"] for l in log)
assert abs(got["f1"] - best) < 1e-9, (got, best)
PYEOF
done
printf 'EU rejects German call to boycott British lamb .\n' > "$TMP/ner_in.txt"
"$PTUNE" predict --task conll03 --model "$TMP/model" --adapter "$TMP/out-conll03/best" --input "$TMP/ner_in.txt" \
  > "$TMP/ner_out.txt" 2> "$TMP/err" || fail "conll03 predict: $(cat "$TMP/err")"
[ "$(wc -w < "$TMP/ner_out.txt")" -eq 9 ] || fail "conll03 predict: expected 9 tags, got $(cat "$TMP/ner_out.txt")"
printf 'Who wrote it?\tThe book was written by Jane Austen in 1811.\n' > "$TMP/qa_in.txt"
"$PTUNE" predict --task squad --model "$TMP/model" --adapter "$TMP/out-squad/best" --input "$TMP/qa_in.txt" \
  --max-length 128 --doc-stride 64 > "$TMP/qa_out.txt" 2> "$TMP/err" || fail "squad predict: $(cat "$TMP/err")"
python3 - "$TMP/qa_in.txt" "$TMP/qa_out.txt" <<'PYEOF' || fail "squad predict: the answer is not a span of the context"
import sys
context = open(sys.argv[1]).read().split("\t")[1]
answer = open(sys.argv[2]).read().strip()
assert answer and answer in context, answer
PYEOF

# webnlg on a tiny T5 (ptv2 on the three attention kinds), the committed dev sample as both splits
if "$PTUNE" train --help > /dev/null && "$MAKE_MODEL" t5 "$HERE/../data/tokenizers/tiny_unigram.tokenizer.json" "$TMP/t5"; then
  mkdir -p "$TMP/webnlg"
  cp -r "$HERE/../data/datasets/webnlg/dev" "$TMP/webnlg/dev"
  cp -r "$HERE/../data/datasets/webnlg/dev" "$TMP/webnlg/train"
  if "$PTUNE" train --task webnlg --model "$TMP/t5" --data "$TMP/webnlg" --out "$TMP/out-webnlg" --epochs 2 --batch 4 \
       --lr 0.3 --seed 3 > /dev/null 2> "$TMP/train.log"; then
    "$PTUNE" eval --task webnlg --model "$TMP/t5" --adapter "$TMP/out-webnlg/best" --data "$TMP/webnlg" \
      > "$TMP/eval.json" 2> "$TMP/eval.log" || fail "webnlg eval: $(cat "$TMP/eval.log")"
    python3 - "$TMP/out-webnlg" "$TMP/eval.json" <<'PYEOF' || fail "webnlg: adapter or evaluation"
import json, sys
out, got = sys.argv[1], json.load(open(sys.argv[2]))
cfg = json.load(open(out + "/best/adapter_config.json"))
assert cfg["task_type"] == "SEQ_2_SEQ_LM", cfg
log = [json.loads(l) for l in open(out + "/eval_log.jsonl")]
assert len(log) == 2 and set(got) == {"bleu", "rouge_l"}, (log, got)
best = max(l["bleu"] for l in log)
assert abs(got["bleu"] - best) < 1e-9, (got, best)
PYEOF
  elif grep -q "built without tinyxml2" "$TMP/train.log"; then
    echo "webnlg skipped: ptune was built without tinyxml2"
  else
    fail "webnlg: ptune train failed"; cat "$TMP/train.log"
  fi
else
  fail "make_tiny_model t5"
fi

# predict: one label a line
printf 'a gripping , moving film\nthe worst movie of the year\n' > "$TMP/in.txt"
if "$PTUNE" predict --task sst2 --model "$TMP/model" --adapter "$TMP/out-ptv2/best" --input "$TMP/in.txt" > "$TMP/pred.txt" 2> "$TMP/pred.log"; then
  [ "$(wc -l < "$TMP/pred.txt")" -eq 2 ] || fail "predict: expected 2 lines"
  grep -qv '^[01]$' "$TMP/pred.txt" && fail "predict: labels other than 0/1: $(cat "$TMP/pred.txt")"
else
  fail "ptune predict failed"; cat "$TMP/pred.log"
fi

# a finished run, resumed, takes no further step and keeps its log
"$PTUNE" train --task sst2 --model "$TMP/model" --data "$DATA" --out "$TMP/out-ptv2" --epochs 12 --batch 4 \
  --lr 5e-2 --dropout 0 --seed 3 --resume > /dev/null 2> "$TMP/resume.log" || fail "resume failed"
grep -q "resumed from" "$TMP/resume.log" || fail "resume: no message"
[ "$(wc -l < "$TMP/out-ptv2/eval_log.jsonl")" -eq 12 ] || fail "resume: the finished run trained again"

# an interrupted run resumed ends bit for bit where an uninterrupted one ends (dropout and prefix
# dropout on, so the dropout stream's position matters): same adapter, checkpoint and losses
RUN="train --task sst2 --method ptv2 --model $TMP/model --data $DATA --epochs 3 --batch 4 --max-train 32 --eval-every 5 --lr 5e-2 --dropout 0.1 --prefix-dropout 0.1 --seed 5 --threads 2"
"$PTUNE" $RUN --out "$TMP/straight" > /dev/null 2>&1 || fail "bit-identical resume: the straight run failed"
"$PTUNE" $RUN --out "$TMP/cut" --stop-after 7 > /dev/null 2>&1 || fail "bit-identical resume: the interrupted run failed"
[ "$(wc -l < "$TMP/cut/eval_log.jsonl")" -eq 1 ] || fail "--stop-after 7 with --eval-every 5 should log one evaluation"
"$PTUNE" $RUN --out "$TMP/cut" --resume > /dev/null 2>&1 || fail "bit-identical resume: the resumed run failed"
for f in best/adapter_model.safetensors checkpoint/trainable.safetensors checkpoint/optimizer.safetensors eval_log.jsonl; do
  cmp -s "$TMP/straight/$f" "$TMP/cut/$f" || fail "bit-identical resume: $f differs"
done

# usage errors exit 2, failures exit 1, help exits 0
expect() {  # expect STATUS PATTERN ARGS...
  want=$1; pattern=$2; shift 2
  "$PTUNE" "$@" > /dev/null 2> "$TMP/err"; got=$?
  [ "$got" -eq "$want" ] || fail "ptune $*: exit $got, expected $want"
  grep -q -e "$pattern" "$TMP/err" || fail "ptune $*: stderr lacks '$pattern': $(cat "$TMP/err")"
}
expect 2 "unknown task 'mnli9'" train --task mnli9 --model "$TMP/model" --data "$DATA" --out "$TMP/x"
expect 2 "unknown method 'ptv3'" train --task sst2 --method ptv3 --model "$TMP/model" --data "$DATA" --out "$TMP/x"
expect 2 "unknown option --epoch" train --task sst2 --model "$TMP/model" --data "$DATA" --out "$TMP/x" --epoch 3
expect 2 "--lr expects a number" train --task sst2 --model "$TMP/model" --data "$DATA" --out "$TMP/x" --lr fast
expect 2 "unknown command 'fit'" fit
expect 1 "is not a readable folder" train --task sst2 --model "$TMP/nowhere" --data "$DATA" --out "$TMP/x"
expect 1 "train.tsv" train --task sst2 --model "$TMP/model" --data "$TMP/model" --out "$TMP/x"
"$PTUNE" train --help | grep -q -- "--method" || fail "train --help"
"$PTUNE" eval --help | grep -q -- "--adapter" || fail "eval --help"
"$PTUNE" predict --help | grep -q -- "--input" || fail "predict --help"

[ "$fails" -eq 0 ] && echo "ptune_run: all checks passed"
exit "$fails"
