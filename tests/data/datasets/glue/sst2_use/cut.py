#!/usr/bin/env python3
"""Cuts the SST-2 sample of this folder from ../shared/data/sst2 (see README.md).

Run from the repository root: python3 tests/data/datasets/glue/sst2_use/cut.py [SHARED_DATA_DIR]
train.tsv: the header and the first 2,000 rows of the GLUE train set; dev.tsv: the whole dev set.
"""
import os
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../../../../shared/data")
DST = os.path.dirname(os.path.abspath(__file__))

for name, rows in [("train.tsv", 2000), ("dev.tsv", None)]:
    with open(os.path.join(SRC, "sst2", name), "rb") as f:
        lines = f.read().splitlines(keepends=True)
    with open(os.path.join(DST, name), "wb") as f:
        f.write(b"".join(lines if rows is None else lines[: 1 + rows]))
