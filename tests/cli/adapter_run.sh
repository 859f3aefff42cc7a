#!/bin/sh
# deepprompt-run --adapter on PEFT adapter directories (tests/data/peft_baselines from
# tests/fixtures/gen_peft_baselines.py: PROMPT_TUNING, P_TUNING, LORA; tests/data/peft from
# tests/fixtures/gen_peft.py: PREFIX_TUNING) applied to the tiny BERT of tests/data/bert:
# logits (SEQ_CLS head), last_hidden_state and pooler_output within 1e-5 of PyTorch's, and each
# bad adapter exits non-zero with one line on stderr.
#   tests/cli/adapter_run.sh path/to/deepprompt-run
# Needs only a POSIX shell and python3 (standard library) for the comparison.
set -u
RUN=${1:?usage: adapter_run.sh path/to/deepprompt-run}
HERE=$(cd "$(dirname "$0")" && pwd)
BERT="$HERE/../data/bert"
BASE="$HERE/../data/peft_baselines"
PREFIX="$HERE/../data/peft"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# compare OUT EXPECTED NAME=KEY... : each output NAME against the expected file's KEY
compare() {
  python3 - "$@" <<'PYEOF'
import json, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        s, e = v["data_offsets"]
        out[k] = (v["shape"], struct.unpack("<%df" % ((e - s) // 4), b[8 + n + s:8 + n + e]))
    return out
got, want = read(sys.argv[1]), read(sys.argv[2])
ok = True
for pair in sys.argv[3:]:
    name, key = pair.split("=")
    if name not in got:
        print("  %s: missing from the output" % name)
        ok = False
        continue
    gs, g = got[name]
    ws, w = want[key]
    err = max(abs(a - b) for a, b in zip(g, w))
    print("  %s %s: max |error| %.3g" % (name, gs, err))
    ok = ok and gs == ws and err < 1e-5
sys.exit(0 if ok else 1)
PYEOF
}

# run_adapter WHAT ADAPTER_DIR EXPECTED NAME=KEY...
run_adapter() {
  what=$1 dir=$2 expected=$3
  shift 3
  echo "$what:"
  if ! "$RUN" --model "$BERT" --input "$BERT/input.json" --adapter "$dir" --out "$TMP/out.safetensors" 2>"$TMP/err"; then
    fail "$what: $(cat "$TMP/err")"
  elif ! compare "$TMP/out.safetensors" "$expected" "$@"; then
    fail "$what: outputs differ from PyTorch"
  fi
}

run_adapter "PROMPT_TUNING" "$BASE/adapter_prompt_tuning" "$BASE/expected.safetensors" \
  logits=pt.logits last_hidden_state=pt.last_hidden_state pooler_output=pt.pooler_output
run_adapter "P_TUNING (LSTM encoder, folded)" "$BASE/adapter_p_tuning" "$BASE/expected.safetensors" \
  logits=ptl.logits last_hidden_state=ptl.last_hidden_state pooler_output=ptl.pooler_output
run_adapter "LORA" "$BASE/adapter_lora" "$BASE/expected.safetensors" \
  logits=lora.logits last_hidden_state=lora.last_hidden_state pooler_output=lora.pooler_output
run_adapter "PREFIX_TUNING" "$PREFIX/adapter" "$PREFIX/expected.safetensors" logits=proj.logits

# without a head (FEATURE_EXTRACTION): no logits
mkdir "$TMP/nohead"
python3 - "$BASE/adapter_lora" "$TMP/nohead" <<'PYEOF'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src + "/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
keep = {k: v for k, v in h.items() if "classifier" not in k and k != "__metadata__"}
blobs, off, header = [], 0, {}
for k, v in sorted(keep.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    s, e = v["data_offsets"]
    header[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + e - s]}
    blobs.append(b[8 + n + s:8 + n + e])
    off += e - s
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
open(dst + "/adapter_model.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
c = json.load(open(src + "/adapter_config.json"))
c["task_type"] = "FEATURE_EXTRACTION"
json.dump(c, open(dst + "/adapter_config.json", "w"))
PYEOF
if ! "$RUN" --model "$BERT" --input "$BERT/input.json" --adapter "$TMP/nohead" --out "$TMP/nohead.safetensors" 2>"$TMP/err"; then
  fail "adapter without a head: $(cat "$TMP/err")"
else
  python3 - "$TMP/nohead.safetensors" <<'PYEOF' || fail "adapter without a head: logits written, or outputs missing"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
names = sorted(k for k in h if k != "__metadata__")
print("  without a head:", names)
sys.exit(0 if names == ["last_hidden_state", "pooler_output"] else 1)
PYEOF
fi

# --- bad adapters: non-zero exit, exactly one line on stderr -----------------------------------
expect_error() {  # expect_error WHAT PATTERN ARGS...
  what=$1 pattern=$2
  shift 2
  if "$RUN" "$@" >"$TMP/out" 2>"$TMP/err"; then
    fail "$what: exit status 0"
  elif [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
    fail "$what: stderr is not one line: $(cat "$TMP/err")"
  elif ! grep -q -- "$pattern" "$TMP/err"; then
    fail "$what: stderr lacks '$pattern': $(cat "$TMP/err")"
  fi
}
mkdir "$TMP/empty" "$TMP/ia3" "$TMP/wide" "$TMP/badjson"
cp "$BASE/adapter_lora/adapter_model.safetensors" "$TMP/ia3/"
sed 's/"LORA"/"IA3"/' "$BASE/adapter_lora/adapter_config.json" >"$TMP/ia3/adapter_config.json"
cp "$BASE/adapter_prompt_tuning/adapter_model.safetensors" "$TMP/wide/"
sed 's/"token_dim": 32/"token_dim": 64/' "$BASE/adapter_prompt_tuning/adapter_config.json" >"$TMP/wide/adapter_config.json"
cp "$BASE/adapter_lora/adapter_model.safetensors" "$TMP/badjson/"
printf '{"peft_type": "LORA",' >"$TMP/badjson/adapter_config.json"
IN="$BERT/input.json"
expect_error "missing adapter dir" "--adapter '.*' is not a directory" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter "$TMP/nowhere"
expect_error "no adapter files" "has no adapter_config.json" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter "$TMP/empty"
expect_error "unsupported peft_type" "field \"peft_type\" is \"IA3\"" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter "$TMP/ia3"
expect_error "config/file mismatch" "prompt_embeddings has shape (4, 32), but the config says (4, 64)" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter "$TMP/wide"
expect_error "invalid JSON" "invalid JSON" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter "$TMP/badjson"
expect_error "--adapter without a value" "needs a value" --model "$BERT" --input "$IN" --out "$TMP/o" --adapter
expect_error "--adapter on t5" "applies to bert models" --model "$HERE/../data/t5/v1_0" --input "$IN" --out "$TMP/o" --adapter "$BASE/adapter_lora"

if [ "$fails" -ne 0 ]; then
  echo "adapter_run.sh: $fails failure(s)"
  exit 1
fi
echo "adapter_run.sh: all checks passed"
