#!/bin/sh
# deepprompt-tokenize end to end: the committed WordPiece (vocab.txt) and Unigram
# (tokenizer.json) expectations of tests/data/tokenizers go through the command-line tool, in
# groups of equal settings, and every output line must equal its expectation; a bad input exits
# non-zero with one line on stderr.
#   tests/cli/tokenize_run.sh path/to/deepprompt-tokenize
set -u
RUN=${1:?usage: tokenize_run.sh path/to/deepprompt-tokenize}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA="$HERE/../data/tokenizers"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

python3 - "$RUN" "$DATA" "$TMP" <<'PYEOF'
import json, os, subprocess, sys
run, data, tmp = sys.argv[1:4]
def check(tokenizer, expectations, extra):
    groups = {}
    for line in open(os.path.join(data, expectations), encoding="utf-8"):
        e = json.loads(line)
        key = (e.get("lowercase", True), e.get("max_length"))
        groups.setdefault(key, []).append(e)
    bad = 0
    total = 0
    for (lower, maxlen), cases in groups.items():
        inp = os.path.join(tmp, "in.jsonl")
        out = os.path.join(tmp, "out.jsonl")
        with open(inp, "w", encoding="utf-8") as f:
            for e in cases:
                rec = {"text": e["text"]}
                if e.get("text_pair") is not None:
                    rec["text_pair"] = e["text_pair"]
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        args = [run, "--tokenizer", os.path.join(data, tokenizer), "--input", inp, "--out", out]
        if extra:
            args.append("--lowercase" if lower else "--no-lowercase")
        if maxlen:
            args += ["--max-length", str(maxlen)]
        subprocess.run(args, check=True)
        got = [json.loads(l) for l in open(out, encoding="utf-8")]
        assert len(got) == len(cases), (len(got), len(cases))
        for g, e in zip(got, cases):
            total += 1
            want = {"input_ids": e["ids"], "tokens": e["tokens"], "decoded": e["decoded"]}
            if "type_ids" in e:
                want["token_type_ids"] = e["type_ids"]
            diff = [k for k in want if g.get(k) != want[k]]
            if diff:
                bad += 1
                if bad <= 5:
                    print("MISMATCH %s %r: %s" % (tokenizer, e["text"][:60], diff))
    print("%s: %d of %d lines as expected" % (tokenizer, total - bad, total))
    return bad == 0
ok = check("bert-base-uncased-vocab.txt", "wordpiece_expectations.jsonl", True)
ok = check("tiny_unigram.tokenizer.json", "unigram_expectations.jsonl", False) and ok
r = subprocess.run([run, "--tokenizer", os.path.join(data, "missing.txt"), "--input", "/dev/null", "--out",
                    os.path.join(tmp, "x")], capture_output=True, text=True)
if r.returncode == 0 or len(r.stderr.strip().splitlines()) != 1:
    print("FAIL: a missing tokenizer must exit non-zero with one line on stderr: %r" % r.stderr)
    ok = False
sys.exit(0 if ok else 1)
PYEOF
