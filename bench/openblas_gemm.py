#!/usr/bin/python3
"""Times OpenBLAS SGEMM through numpy at the shapes of bench_gemm.cpp.

Prints one JSON object {"<layout>/<M>x<N>x<K>": GFLOP/s, ...} with the same names as the
Google Benchmark binary ("NN": a(M,K) @ b(K,N); "NT": a(M,K) @ w(N,K).T). Each value is the
best, over `--rounds` batches of at least `--min-time` seconds, of the mean time per call.
The thread count and the kernel OpenBLAS uses come from the environment
(OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE), which must be set before numpy is imported.
"""
import argparse
import json
import time

import numpy as np

SHAPES = [(1024, 768, 768), (1024, 3072, 768), (1024, 768, 3072)]


def gflops(fn, flop, min_time, rounds):
    fn()  # warm-up: thread pool and buffers
    best = float("inf")
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return flop / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", help="time this benchmark alone, e.g. NN/1024x768x768")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    results = {}
    for m, n, k in SHAPES:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        w = rng.uniform(-1, 1, (n, k)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        flop = 2.0 * m * n * k
        calls = {"NN": lambda: np.matmul(a, b, out=c), "NT": lambda: np.matmul(a, w.T, out=c)}
        for layout, call in calls.items():
            name = f"{layout}/{m}x{n}x{k}"
            if args.only in (None, name):
                results[name] = gflops(call, flop, args.min_time, args.rounds)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
