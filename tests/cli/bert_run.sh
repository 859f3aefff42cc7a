#!/bin/sh
# deepprompt-run on the BERT fixture (tests/data/bert, from tests/fixtures/gen_bert.py):
# outputs within 1e-5 of PyTorch's, and each bad input exits non-zero with one line on stderr.
#   tests/cli/bert_run.sh path/to/deepprompt-run
# Needs only a POSIX shell and python3 (standard library) for the comparison.
set -u
RUN=${1:?usage: bert_run.sh path/to/deepprompt-run}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../data/bert"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PY=python3
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# --- parity -----------------------------------------------------------------------------------
if ! "$RUN" --model "$DATA" --input "$DATA/input.json" --out "$TMP/out.safetensors" 2>"$TMP/err"; then
  fail "run on the fixture: $(cat "$TMP/err")"
else
  "$PY" - "$TMP/out.safetensors" "$DATA/expected.safetensors" <<'PYEOF' || fail "outputs differ from PyTorch"
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
for name in ("last_hidden_state", "pooler_output"):
    gs, g = got[name]
    ws, w = want[name]
    err = max(abs(a - b) for a, b in zip(g, w))
    print("%s %s: max |error| %.3g" % (name, gs, err))
    ok = ok and gs == ws and err < 1e-5
sys.exit(0 if ok else 1)
PYEOF
fi

# --- bad inputs: non-zero exit, exactly one line on stderr -------------------------------------
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
printf '{"input_ids": [[2, 3], [4]]}' >"$TMP/ragged.json"
printf '{"input_ids": [[2, 3]], "attention_mask": [[1, 1, 1]]}' >"$TMP/mask.json"
printf '{"input_ids": [[2, 300]]}' >"$TMP/range.json"
printf '{"input_ids": [[2, 3]], "atention_mask": [[1, 1]]}' >"$TMP/typo.json"
printf '{"input_ids": [[2, 3]' >"$TMP/broken.json"
mkdir "$TMP/t9"
printf '{"model_type": "gpt9"}' >"$TMP/t9/config.json"
mkdir "$TMP/noweights"
cp "$DATA/config.json" "$TMP/noweights/"
head -c 1000 "$DATA/model.safetensors" >"$TMP/trunc.safetensors"
mkdir "$TMP/trunc"
cp "$DATA/config.json" "$TMP/trunc/"
mv "$TMP/trunc.safetensors" "$TMP/trunc/model.safetensors"

expect_error "no arguments" "required" 
expect_error "unknown flag" "unknown argument" --model "$DATA" --input "$DATA/input.json" --out "$TMP/o" --fast
expect_error "--generate on bert" "apply to t5" --model "$DATA" --input "$DATA/input.json" --out "$TMP/o" --generate 3
expect_error "--beams alone" "needs --generate" --model "$DATA" --input "$DATA/input.json" --out "$TMP/o" --beams 2
expect_error "missing model dir" "not a directory" --model "$TMP/nowhere" --input "$DATA/input.json" --out "$TMP/o"
expect_error "missing input" "does not exist" --model "$DATA" --input "$TMP/nowhere.json" --out "$TMP/o"
expect_error "ragged input_ids" "row 1 has 1 entries" --model "$DATA" --input "$TMP/ragged.json" --out "$TMP/o"
expect_error "mask shape" "attention_mask\" has shape (1, 3)" --model "$DATA" --input "$TMP/mask.json" --out "$TMP/o"
expect_error "id out of range" "300 is not in \[0, 99)" --model "$DATA" --input "$TMP/range.json" --out "$TMP/o"
expect_error "unknown field" "unknown field \"atention_mask\"" --model "$DATA" --input "$TMP/typo.json" --out "$TMP/o"
expect_error "invalid JSON" "invalid JSON" --model "$DATA" --input "$TMP/broken.json" --out "$TMP/o"
expect_error "unknown model_type" "gpt9" --model "$TMP/t9" --input "$DATA/input.json" --out "$TMP/o"
expect_error "no weights" "has no model.safetensors" --model "$TMP/noweights" --input "$DATA/input.json" --out "$TMP/o"
expect_error "truncated weights" "safetensors" --model "$TMP/trunc" --input "$DATA/input.json" --out "$TMP/o"

if [ "$fails" -ne 0 ]; then
  echo "bert_run.sh: $fails failure(s)"
  exit 1
fi
echo "bert_run.sh: all checks passed"
