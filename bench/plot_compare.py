#!/usr/bin/python3
"""Bar chart of a bench/compare.sh run: our time and PyTorch's per workload, with the speedup.

    /usr/bin/python3 bench/plot_compare.py bench-results/compare-<date>.jsonl docs/performance_vs_pytorch.png

Reads the summary lines (those with "speedup") of the .jsonl that compare.sh saved; needs
matplotlib (Debian's python3-matplotlib).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_compare.py RESULTS.jsonl OUT.png")
    rows = [json.loads(line) for line in open(sys.argv[1]) if '"speedup"' in line]
    if not rows:
        sys.exit(f"plot_compare.py: no summary lines in {sys.argv[1]}")
    names = [r["workload"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar([i - 0.2 for i in x], [r["torch_ms"] for r in rows], 0.4, label="PyTorch 1.13 (OpenBLAS SkylakeX)")
    ax.bar([i + 0.2 for i in x], [r["ours_ms"] for r in rows], 0.4, label="DeepPrompt")
    for i, r in zip(x, rows):
        ax.text(i, max(r["torch_ms"], r["ours_ms"]) * 1.02, f'{r["speedup"]:.2f}x', ha="center")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("ms per call / step (2 threads)")
    ax.set_title("BERT-base, batch 8 x 128 (real lengths 128..16), 100-token prefix")
    ax.set_ylim(0, max(max(r["torch_ms"], r["ours_ms"]) for r in rows) * 1.15)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
