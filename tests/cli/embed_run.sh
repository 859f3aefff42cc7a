#!/bin/sh
# deepprompt-embed end to end on the real USE Lite model: the sentences of
# tests/data/use_lite/embeddings_ref.json (written by tests/fixtures/use_lite/embed_ref.js with TF.js) go
# through the tool one a line; every output line must have the reference's ids and an embedding
# of cosine >= 0.99999 with the reference's. The model's weights are not in the repository:
# without them (DEEPPROMPT_USE_LITE, default /work/shared/use-lite/package/dist) the test is
# skipped (exit 77). A missing input exits 1 with one line on stderr.
#   tests/cli/embed_run.sh path/to/deepprompt-embed
set -u
RUN=${1:?usage: embed_run.sh path/to/deepprompt-embed}
MODEL=${DEEPPROMPT_USE_LITE:-/work/shared/use-lite/package/dist}
HERE=$(cd "$(dirname "$0")" && pwd)
REF="$HERE/../data/use_lite/embeddings_ref.json"
if [ ! -f "$MODEL/model.json" ]; then
  echo "skipped: no USE Lite model at $MODEL (set DEEPPROMPT_USE_LITE)"
  exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

python3 - "$RUN" "$MODEL" "$REF" "$TMP" <<'PYEOF'
import json, math, subprocess, sys
run, model, ref_path, tmp = sys.argv[1:5]
ref = json.load(open(ref_path, encoding="utf-8"))
with open(tmp + "/in.txt", "w", encoding="utf-8", newline="\n") as f:
    for r in ref:
        assert "\n" not in r["text"] and "\r" not in r["text"]
        f.write(r["text"] + "\n")
# batch 3: sentences of different lengths share a padded batch
subprocess.run([run, "--model", model, "--input", tmp + "/in.txt", "--out", tmp + "/out.jsonl", "--batch", "3"],
               check=True)
got = [json.loads(l) for l in open(tmp + "/out.jsonl", encoding="utf-8")]
if len(got) != len(ref):
    sys.exit(f"{len(got)} output lines for {len(ref)} sentences")
worst, bad = 1.0, 0
for i, (g, r) in enumerate(zip(got, ref)):
    if g["ids"] != r["ids"]:
        print(f"line {i + 1}: ids differ: {g['ids'][:10]}... vs {r['ids'][:10]}...")
        bad += 1
    a, b = g["embedding"], r["embedding"]
    if len(a) != 512:
        print(f"line {i + 1}: {len(a)} values")
        bad += 1
        continue
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst = min(worst, cos)
    if cos < 0.99999:
        print(f"line {i + 1}: cosine {cos}")
        bad += 1
print(f"{len(ref)} sentences, worst cosine {worst:.10f}")
sys.exit(1 if bad else 0)
PYEOF
status=$?
[ $status -eq 0 ] || exit $status

# A missing input: exit 1, a message naming it.
"$RUN" --model "$MODEL" --input "$TMP/missing.txt" --out "$TMP/x.jsonl" 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "missing.txt" "$TMP/err" || { echo "missing input: wrong status or message"; cat "$TMP/err"; exit 1; }
echo "embed_run: ok"
