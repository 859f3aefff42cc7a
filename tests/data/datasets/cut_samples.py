#!/usr/bin/env python3
"""Cuts the small dataset samples of tests/data/datasets from ../shared/data (see each README.md).

Run from the repository root: python3 tests/data/datasets/cut_samples.py [SHARED_DATA_DIR]
Every sample is a prefix of an upstream file (whole lines / records), except where a README says
otherwise; the malformed/ files are those samples with one documented edit each.
"""
import json
import os
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../../shared/data")
DST = os.path.dirname(os.path.abspath(__file__))


def rb(path):
    with open(os.path.join(SRC, path), "rb") as f:
        return f.read()


def wb(path, data):
    full = os.path.join(DST, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    assert len(data) < 50_000, (path, len(data))


def head_lines(data, n):
    """The first n lines (with their line ends)."""
    return b"".join(data.splitlines(keepends=True)[:n])


# GLUE SST-2: the header and the first rows.
wb("glue/sst2/dev.tsv", head_lines(rb("sst2/dev.tsv"), 1 + 30))
wb("glue/sst2/train.tsv", head_lines(rb("sst2/train.tsv"), 1 + 20))

# SuperGLUE: the first records of val (labelled) and test (unlabelled).
for task, n_val in [("RTE", 20), ("CB", 20), ("COPA", 20), ("WIC", 20), ("WSC", 45)]:
    out = "WiC" if task == "WIC" else task
    wb(f"superglue/{out}/val.jsonl", head_lines(rb(f"superglue/{task}/val.jsonl"), n_val))
    wb(f"superglue/{out}/test.jsonl", head_lines(rb(f"superglue/{task}/test.jsonl"), 5))
wb("superglue/BoolQ/dev.jsonl", head_lines(rb("superglue/BoolQ/dev.jsonl"), 10))

# CoNLL-2003 (eng.testa): document 1 (lines 1-456, which the file starts with), the -DOCSTART-
# of document 2 and its first 5 sentences, then the file's last two lines (a blank line and the
# -DOCSTART- that belongs at the start), keeping the layout quirk. iob2_2col/valid.txt: the
# same sentences (the first ones of the file, CRLF line ends kept).
testa = rb("conll2003/eng.testa").splitlines(keepends=True)
assert testa[456].startswith(b"-DOCSTART-")
i, sentences = 458, 0  # line 457 is -DOCSTART-, 458 its blank line
while sentences < 5:
    i += 1
    if testa[i].strip() == b"":
        sentences += 1
sample = testa[: i + 1]  # through the blank line after the 5th sentence
assert testa[-1].startswith(b"-DOCSTART-") and testa[-2].strip() == b""
sample = b"".join(sample[:-1]) + b"\n" + testa[-1]
wb("conll2003/eng.testa", sample)
n_sent = sum(1 for block in sample.split(b"\n\n") if block.strip() and not block.strip().startswith(b"-DOCSTART-"))
valid = rb("conll2003/iob2_2col/valid.txt").split(b"\r\n\r\n")
wb("conll2003/iob2_2col/valid.txt", b"\r\n\r\n".join(valid[:n_sent]) + b"\r\n\r\n")


# SQuAD: the first article with its first paragraphs, serialised as the source file is.
def squad_cut(path, n_par, **dump):
    d = json.loads(rb(path).decode("utf-8"))
    art = d["data"][0]
    art["paragraphs"] = art["paragraphs"][:n_par]
    d["data"] = [art]
    return json.dumps(d, **dump)


wb("squad/xquad_en/xquad.en.json", (squad_cut("squad/xquad_en/xquad.en.json", 2, indent=2) + "\n").encode())
wb("squad/squad_v1.1_dev/dev-v1.1.json", squad_cut("squad/squad_v1.1_dev/dev-v1.1.reconstructed.json", 2).encode())
wb("squad/squad_v2.0_dev/dev-v2.0.json", squad_cut("squad/squad_v2.0_dev/dev-v2.0.reconstructed.json", 2).encode())


# WebNLG v1.6 dev: the first entries of two files (whole <entry> elements) and the closing tags.
def webnlg_cut(path, first_line_after):
    lines = rb(path).splitlines(keepends=True)
    assert lines[first_line_after - 1].strip().startswith(b"<entry ")
    return b"".join(lines[: first_line_after - 1]) + b"\t</entries>\n</benchmark>\n"


wb("webnlg/dev/1triples/Airport.xml", webnlg_cut("webnlg/v1.6_en/dev/1triples/Airport.xml", 136))
wb("webnlg/dev/3triples/SportsTeam.xml", webnlg_cut("webnlg/v1.6_en/dev/3triples/SportsTeam.xml", 265))


# Malformed samples: one edit each (see malformed/README.md).
def edit(src, dst, line_no, new_line):
    lines = open(os.path.join(DST, src), "rb").read().splitlines(keepends=True)
    lines[line_no - 1] = new_line
    wb(dst, b"".join(lines))


sst = open(os.path.join(DST, "glue/sst2/dev.tsv"), "rb").read().splitlines(keepends=True)
edit("glue/sst2/dev.tsv", "malformed/sst2_missing_column.tsv", 5, sst[4].split(b"\t")[0] + b"\n")
edit("glue/sst2/dev.tsv", "malformed/sst2_bad_label.tsv", 7, sst[6].split(b"\t")[0] + b"\tpositive\n")
rte = open(os.path.join(DST, "superglue/RTE/val.jsonl"), "rb").read().splitlines(keepends=True)
edit("superglue/RTE/val.jsonl", "malformed/rte_bad_json.jsonl", 3, rte[2][: len(rte[2]) // 2] + b"\n")
edit("superglue/RTE/val.jsonl", "malformed/rte_bad_label.jsonl", 4, rte[3].replace(b'"label": "', b'"label": "maybe_'))
conll = open(os.path.join(DST, "conll2003/eng.testa"), "rb").read().splitlines(keepends=True)
edit("conll2003/eng.testa", "malformed/conll_missing_column.txt", 14, b" ".join(conll[13].split()[:3]) + b"\n")
edit("conll2003/eng.testa", "malformed/conll_bad_tag.txt", 21, conll[20].replace(b" O\n", b" X-PER\n"))
squad = json.loads(open(os.path.join(DST, "squad/xquad_en/xquad.en.json"), encoding="utf-8").read())
squad["data"][0]["paragraphs"][1]["qas"][2]["answers"][0]["answer_start"] = 100000
wb("malformed/squad_answer_start_out_of_range.json", (json.dumps(squad, indent=2) + "\n").encode())
xquad = open(os.path.join(DST, "squad/xquad_en/xquad.en.json"), "rb").read().splitlines(keepends=True)
id_line = next(i for i, l in enumerate(xquad) if b'"id":' in l) + 1  # drop the comma after the first id
edit("squad/xquad_en/xquad.en.json", "malformed/squad_bad_json.json", id_line, xquad[id_line - 1].replace(b",\n", b"\n"))
print("squad_bad_json.json: comma removed on line", id_line)
xml = open(os.path.join(DST, "webnlg/dev/1triples/Airport.xml"), "rb").read()
wb("malformed/webnlg_truncated.xml", head_lines(xml, 60))
edit("webnlg/dev/1triples/Airport.xml", "malformed/webnlg_bad_triple.xml", 9,
     b"\t\t\t\t<mtriple>Aarhus | leaderName</mtriple>\n")
