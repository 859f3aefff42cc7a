#!/usr/bin/python3
"""PyTorch reference for deepprompt-bench: the same BERT workloads, flags and JSON line.

A plain PyTorch user's BERT encoder (Hugging Face BertModel semantics, attention written with
matmul + softmax, no transformers), timed on the workloads of deepprompt-bench:
  forward       eval, torch.inference_mode(): embeddings, layers, pooler
  infer-folded  forward with a constant key/value prefix in every layer
  ptv2-step     P-Tuning v2 training step: frozen backbone, trainable prefix + head, AdamW
  full-step     full fine-tuning step: everything trainable, AdamW
Prints one JSON line with the keys of deepprompt-bench ("impl": "pytorch") plus
"torch_version", "omp_wait_policy", "openblas_coretype", "openblas_num_threads" (each
environment variable or "unset"), "dropout" and "seed".

bench/compare.sh runs it after deepprompt-bench with the same flags, under
  OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=passive
which are PyTorch's best settings on this 2-core machine: Debian's PyTorch 1.13 calls
OpenBLAS (pthread build) for its matmuls, OpenBLAS 0.3.21 does not know this CPU and falls
back to slow SSE3 kernels unless told the core type, and with OpenMP's default active wait
the idle OpenMP threads spin and fight OpenBLAS's own threads for the two cores.
torch.set_num_threads(--threads) does not reach OpenBLAS, which uses every core unless
OPENBLAS_NUM_THREADS is set: compare.sh sets it to --threads.

--dtype bf16 is accepted for forward and infer-folded only (weights and activations in
bfloat16); the training steps exit with status 2 (PyTorch CPU training is f32 here).
Bad flags exit with status 2 and a message on stderr.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WORKLOADS = ("forward", "ptv2-step", "full-step", "infer-folded")


def fail(message):
    print(f"reference_pytorch.py: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch reference for deepprompt-bench")
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    for name, default in (("batch", 8), ("seq", 128), ("layers", 12), ("hidden", 768),
                          ("heads", 12), ("ffn", 3072), ("vocab", 30522), ("prefix", 100),
                          ("labels", 2), ("threads", 2), ("runs", 3), ("warmup", 1),
                          ("seed", 0)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lengths", default=None, help="comma-separated real lengths, one per row")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--dtype", default="f32", choices=("f32", "bf16"))
    a = p.parse_args()
    for name in ("batch", "layers", "hidden", "heads", "ffn", "labels", "threads", "runs"):
        if getattr(a, name) < 1:
            fail(f"--{name} must be at least 1 (got {getattr(a, name)})")
    if a.seq < 2:
        fail(f"--seq must be at least 2 (got {a.seq})")
    if a.prefix < 0 or a.warmup < 0:
        fail("--prefix and --warmup must not be negative")
    if a.vocab < 103:
        fail(f"--vocab must be at least 103 ([CLS]=101, [SEP]=102; got {a.vocab})")
    if a.hidden % a.heads:
        fail(f"--heads {a.heads} does not divide --hidden {a.hidden}")
    if not 0.0 <= a.dropout < 1.0:
        fail(f"--dropout must be in [0, 1) (got {a.dropout})")
    if a.dtype == "bf16" and a.workload in ("ptv2-step", "full-step"):
        fail("--dtype bf16 is supported for forward and infer-folded only")
    if a.lengths is None:
        a.lengths = [max(2, a.seq - b * (a.seq // a.batch)) for b in range(a.batch)]
    else:
        try:
            a.lengths = [int(x) for x in a.lengths.split(",")]
        except ValueError:
            fail(f"--lengths must be comma-separated integers (got {a.lengths!r})")
        if len(a.lengths) != a.batch:
            fail(f"--lengths has {len(a.lengths)} values, --batch is {a.batch}")
        if any(not 2 <= n <= a.seq for n in a.lengths):
            fail(f"every length must be in [2, --seq={a.seq}] (got {a.lengths})")
    return a


class Embeddings(nn.Module):
    def __init__(self, vocab, max_pos, hidden, dropout):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(max_pos, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids, type_ids, past):  # ids, type_ids: (B, T); past: prefix length
        pos = torch.arange(past, past + ids.shape[1], device=ids.device)  # (T,)
        x = self.word(ids) + self.token_type(type_ids) + self.position(pos)  # (B, T, C)
        return self.dropout(self.LayerNorm(x))


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn, dropout):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(dropout)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_out_dropout = nn.Dropout(dropout)
        self.attn_LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.out_dropout = nn.Dropout(dropout)
        self.out_LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def split(self, x):  # (B, T, C) -> (B, H, T, D)
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask, prefix_kv):
        # x: (B, T, C); mask: (B, 1, 1, P + T) additive; prefix_kv: None or two (H, P, D)
        b, t, c = x.shape
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        if prefix_kv is not None:
            pk, pv = prefix_kv
            k = torch.cat([pk.unsqueeze(0).expand(b, -1, -1, -1), k], dim=2)  # (B, H, P+T, D)
            v = torch.cat([pv.unsqueeze(0).expand(b, -1, -1, -1), v], dim=2)  # (B, H, P+T, D)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask  # (B, H, T, P+T)
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        ctx = (probs @ v).transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        x = self.attn_LayerNorm(x + self.attn_out_dropout(self.attn_out(ctx)))
        h = F.gelu(self.intermediate(x))  # (B, T, I), erf GELU
        return self.out_LayerNorm(x + self.out_dropout(self.output(h)))  # (B, T, C)


class Bert(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embeddings = Embeddings(a.vocab, max(512, a.prefix + a.seq), a.hidden, a.dropout)
        self.layers = nn.ModuleList(
            [Layer(a.hidden, a.heads, a.ffn, a.dropout) for _ in range(a.layers)])
        self.pooler = nn.Linear(a.hidden, a.hidden)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)  # LayerNorm keeps its defaults: weight 1, bias 0

    def forward(self, ids, type_ids, attn_mask, prefix=None):
        # ids, type_ids, attn_mask: (B, T); prefix: None or per layer (keys, values), (H, P, D)
        past = 0 if prefix is None else prefix[0][0].shape[1]
        x = self.embeddings(ids, type_ids, past)  # (B, T, C)
        m = torch.cat([attn_mask.new_ones(ids.shape[0], past), attn_mask], dim=1)  # (B, P+T)
        m = (1.0 - m[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # (B,1,1,P+T)
        for i, layer in enumerate(self.layers):
            x = layer(x, m, None if prefix is None else prefix[i])
        return torch.tanh(self.pooler(x[:, 0]))  # (B, C)


def make_batch(a):
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.zeros(a.batch, a.seq, dtype=torch.long)  # (B, T), padding id 0
    mask = torch.zeros(a.batch, a.seq, dtype=torch.long)  # (B, T)
    low = min(1000, a.vocab // 2)
    for b, n in enumerate(a.lengths):
        ids[b, 1:n - 1] = torch.randint(low, a.vocab, (n - 2,), generator=g)
        ids[b, 0], ids[b, n - 1] = 101, 102
        mask[b, :n] = 1
    labels = torch.randint(0, a.labels, (a.batch,), generator=g)  # (B,)
    return ids, torch.zeros_like(ids), mask, labels


def make_prefix(a, requires_grad):
    shape = (a.heads, a.prefix, a.hidden // a.heads)  # (H, P, D) per layer, keys and values
    return [tuple(nn.Parameter(torch.randn(shape) * 0.02, requires_grad=requires_grad)
                  for _ in range(2)) for _ in range(a.layers)]


def adamw(named_params, lr):
    # Hugging Face's split: no weight decay on biases and LayerNorm weights.
    decay, no_decay = [], []
    for name, p in named_params:
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def build(a):
    """Returns a no-argument callable that runs one call (forward) or one training step."""
    torch.manual_seed(a.seed)
    model = Bert(a)
    ids, type_ids, mask, labels = make_batch(a)
    if a.workload in ("forward", "infer-folded"):
        prefix = make_prefix(a, False) if a.workload == "infer-folded" else None
        model.eval()
        if a.dtype == "bf16":
            model.to(torch.bfloat16)
            prefix = prefix and [(k.to(torch.bfloat16), v.to(torch.bfloat16)) for k, v in prefix]

        def call():
            with torch.inference_mode():
                return model(ids, type_ids, mask, prefix)
        return call

    head = nn.Sequential(nn.Dropout(a.dropout), nn.Linear(a.hidden, a.labels))
    nn.init.normal_(head[1].weight, 0.0, 0.02)
    nn.init.zeros_(head[1].bias)
    model.train()
    head.train()
    if a.workload == "ptv2-step":
        model.requires_grad_(False)
        prefix = make_prefix(a, True)
        named = [(f"prefix.{i}.{j}", p) for i, kv in enumerate(prefix) for j, p in enumerate(kv)]
        opt = adamw(named + [("head." + n, p) for n, p in head.named_parameters()], 1e-2)
    else:
        prefix = None
        opt = adamw(list(model.named_parameters()) +
                    [("head." + n, p) for n, p in head.named_parameters()], 2e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = head(model(ids, type_ids, mask, prefix))  # (B, labels)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        return loss
    return step


def useful_flop(a):
    prefix = a.prefix if a.workload in ("ptv2-step", "infer-folded") else 0
    c, i, lay = a.hidden, a.ffn, a.layers
    linear = lay * sum(2 * n * c * (4 * c + 2 * i) for n in a.lengths) + 2 * a.batch * c * c
    if a.workload in ("ptv2-step", "full-step"):
        linear += 2 * a.batch * c * a.labels
    attn = lay * sum(4 * n * (prefix + n) * c for n in a.lengths)
    return {"forward": linear + attn, "infer-folded": linear + attn,
            "ptv2-step": 2 * linear + 3 * attn, "full-step": 3 * linear + 3 * attn}[a.workload]


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    run = build(a)
    for _ in range(a.warmup):
        run()
    times = []
    for _ in range(a.runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    ms = statistics.median(times)
    gflop = useful_flop(a) / 1e9
    print(json.dumps({
        "impl": "pytorch", "workload": a.workload, "ms_median": round(ms, 3),
        "ms_min": round(min(times), 3), "ms_max": round(max(times), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gflops": round(gflop / (ms / 1e3), 3), "useful_gflop": round(gflop, 6),
        "batch": a.batch, "seq": a.seq, "lengths": a.lengths, "layers": a.layers,
        "hidden": a.hidden, "heads": a.heads, "ffn": a.ffn, "vocab": a.vocab,
        "prefix": a.prefix, "labels": a.labels, "threads": a.threads, "dtype": a.dtype,
        "runs": a.runs, "warmup": a.warmup, "dropout": a.dropout, "seed": a.seed,
        "torch_version": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}))


if __name__ == "__main__":
    main()
