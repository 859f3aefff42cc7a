#!/usr/bin/env python3
"""Summarises the runs of examples/experiments/use_comparison.sh: one table row per (task, method)
with the dev accuracy over the seeds (mean, sample standard deviation, min-max), the trainable
parameters and their share, CPU time (user + system), wall time and peak RSS (means over the seeds); a plot of accuracy
against trainable parameters per task (needs matplotlib: apt-get install python3-matplotlib).

    /usr/bin/python3 examples/experiments/use_comparison.py OUT_DIR [--data DIR] [--plot FILE.png] [--json FILE]

--data (the folder given to use_comparison.sh) adds each dev set's majority-class accuracy.

Writes the Markdown table to stdout. Only the standard library besides matplotlib."""
import argparse
import json
import re
import statistics
import sys
from pathlib import Path

TASKS = ["sst2", "rte", "wsc"]
METHODS = ["ptv2", "ptv2-hidden", "prefix", "prompt", "ptuning", "lora", "probe", "full"]
LABELS = {
    "ptv2": "P-Tuning v2 (key/value prefix)",
    "ptv2-hidden": "P-Tuning v2 (hidden-state form)",
    "prefix": "Prefix Tuning (MLP 512)",
    "prompt": "Prompt Tuning (input layer)",
    "ptuning": "P-Tuning v1 (MLP encoder)",
    "lora": "LoRA r=8 (query, value)",
    "probe": "linear probe (head only)",
    "full": "full fine-tuning",
}
TRAINABLE = re.compile(r"trainable ([\d,]+) / ([\d,]+) parameters \(([\d.]+)%\)")


def read_run(d: Path):
    res = json.loads((d / "result.json").read_text())
    t = json.loads((d / "time.json").read_text())
    m = TRAINABLE.search((d / "log.txt").read_text())
    if not m:
        raise SystemExit(f"{d / 'log.txt'}: no 'trainable ... parameters' line")
    return {
        "accuracy": res["accuracy"],
        "trainable": int(m.group(1).replace(",", "")),
        "total": int(m.group(2).replace(",", "")),
        "share": float(m.group(3)),
        "wall_s": t["wall_s"],
        "cpu_s": t.get("user_s", 0.0) + t.get("sys_s", 0.0),
        "rss_mib": t["peak_rss_kib"] / 1024.0,
    }


def summarise(out: Path):
    rows = []
    for task in TASKS:
        for method in METHODS:
            runs = [read_run(d) for d in sorted((out / task / method).glob("seed*")) if (d / "result.json").exists()]
            if not runs:
                continue
            acc = [r["accuracy"] for r in runs]
            rows.append({
                "task": task, "method": method, "seeds": len(runs), "accuracy": acc,
                "mean": statistics.mean(acc), "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "trainable": runs[0]["trainable"], "total": runs[0]["total"], "share": runs[0]["share"],
                "wall_s": statistics.mean(r["wall_s"] for r in runs),
                "cpu_s": statistics.mean(r["cpu_s"] for r in runs),
                "rss_mib": statistics.mean(r["rss_mib"] for r in runs),
            })
    return rows


def table(rows):
    out = ["| task | method | dev accuracy, mean ± sd (min–max) | seeds | trainable parameters | share | CPU time | wall | peak RSS |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {LABELS[r['method']]} | {r['mean']:.3f} ± {r['std']:.3f} "
                   f"({min(r['accuracy']):.3f}–{max(r['accuracy']):.3f}) | {r['seeds']} | {r['trainable']:,} | "
                   f"{r['share']:.3f}% | {r['cpu_s']:.0f} s | {r['wall_s']:.0f} s | {r['rss_mib']:.0f} MiB |")
    return "\n".join(out)


def sweep_table(out: Path):
    """The learning-rate sweep (use_comparison.sh with SWEEP=1): accuracy per method and rate."""
    res = {}
    for d in sorted((out / "sweep").glob("*/lr*")):
        if (d / "result.json").exists():
            res.setdefault(d.parent.name, {})[d.name[2:]] = json.loads((d / "result.json").read_text())["accuracy"]
    if not res:
        return ""
    lines = ["| method | learning rate: SST-2 dev accuracy (seed 1, 300 steps x 32) | best |", "|---|---|---|"]
    for m in [m for m in METHODS if m in res]:
        by = sorted(res[m].items(), key=lambda kv: float(kv[0]), reverse=True)
        best = max(by, key=lambda kv: kv[1])[0]
        cells = ", ".join(f"{lr}: {acc:.3f}" for lr, acc in by)
        lines.append(f"| {LABELS[m]} | {cells} | {best} |")
    return "\n".join(lines)


def majority(data: Path):
    """Majority-class accuracy of each task's dev set."""
    out = {}
    for task, f in [("sst2", data / "sst2" / "dev.tsv"), ("rte", data / "superglue" / "RTE" / "val.jsonl"),
                    ("wsc", data / "superglue" / "WSC" / "val.jsonl")]:
        if not f.exists():
            continue
        if task == "sst2":
            labels = [line.rstrip("\n").split("\t")[-1] for line in f.read_text().splitlines()[1:] if line.strip()]
        else:
            labels = [str(json.loads(line)["label"]) for line in f.read_text().splitlines() if line.strip()]
        out[task] = max(labels.count(v) for v in set(labels)) / len(labels)
    return out


def plot(rows, path: Path, chance):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: the plot is skipped (apt-get install python3-matplotlib)", file=sys.stderr)
        return
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.2), squeeze=False)
    markers = dict(zip(METHODS, "osD^v<Px"))
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in rows if r["task"] == task):
            ax.errorbar(r["trainable"], r["mean"], yerr=r["std"], marker=markers[r["method"]], capsize=3,
                        linestyle="none", label=LABELS[r["method"]])
        if task in chance:
            ax.axhline(chance[task], color="grey", linestyle="--", linewidth=1, label="majority class")
        ax.set_xscale("log")
        ax.set_title(f"{task} (dev)")
        ax.set_xlabel("trainable parameters (log)")
        ax.set_ylabel("accuracy, mean ± sd over seeds")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Tuning methods on the frozen USE Lite encoder (examples/experiments/use_comparison.sh)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=90)
    print(f"plot: {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data", type=Path)
    a = ap.parse_args()
    rows = summarise(a.out)
    sweep = sweep_table(a.out)
    if sweep:
        print(sweep + "\n")
    if not rows:
        if sweep:
            return
        raise SystemExit(f"no finished runs under {a.out}")
    print(table(rows))
    chance = majority(a.data) if a.data else {}
    if chance:
        print("\nmajority class (dev): " + ", ".join(f"{t} {v:.3f}" for t, v in chance.items()))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    if a.plot:
        plot(rows, a.plot, chance)


if __name__ == "__main__":
    main()
