#!/usr/bin/python3
"""Writes the TF.js model fixtures of tests/unit/test_io_tfjs.cpp (standard library only).

valid/       a graph model: two weight groups, float32/int32/bool/scalar/empty weights, a weight
             that straddles two shards, uint8/uint16/float16-quantized weights; valid_expected.json
             holds every weight's shape and values as the reader must return them.
missing_shard/, short_shard/, long_shard/: the same model with a shard absent, 4 bytes short,
             3 bytes too long.
../../fuzz/corpus/tfjs_manifest/: seed inputs for tests/fuzz/fuzz_tfjs_manifest.cpp.
Run from anywhere: /usr/bin/python3 tests/data/tfjs/make_fixtures.py
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "tfjs_manifest")


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


# (name, dtype, shape, stored values, quantization or None, values the reader returns)
def weights_group1():
    out = []
    a = [0.5 * i - 1.25 for i in range(6)]
    out.append(("dense/kernel", "float32", [2, 3], a, None, a))
    b = [1.0e-3, -2.5, 3.0e8, 0.1, 7.0, -0.0, 1.5]  # straddles shard 1 and shard 2
    out.append(("dense/bias", "float32", [7], b, None, [f32(x) for x in b]))
    out.append(("const/shape", "int32", [3], [-1, 2, 2147483647], None, [-1, 2, 2147483647]))
    out.append(("mask", "bool", [4], [1, 0, 0, 1], None, [1, 0, 0, 1]))
    out.append(("scale", "float32", [], [0.125], None, [0.125]))
    out.append(("empty", "float32", [0, 5], [], None, []))
    return out


def weights_group2():
    out = []
    q8 = [0, 1, 128, 255]
    s8, m8 = 0.01, -1.0
    out.append(("q/uint8", "float32", [2, 2], q8, {"dtype": "uint8", "scale": s8, "min": m8},
                [f32(q * s8 + m8) for q in q8]))
    q16 = [0, 65535, 300]
    s16, m16 = 1.0e-4, 0.5
    out.append(("q/uint16", "float32", [3], q16, {"dtype": "uint16", "scale": s16, "min": m16},
                [f32(q * s16 + m16) for q in q16]))
    h = [1.0, -2.0, 0.333251953125, 65504.0]
    out.append(("q/float16", "float32", [4, 1], h, {"dtype": "float16"}, h))
    return out


def pack(dtype, values, quant):
    if quant is None:
        fmt = {"float32": "f", "int32": "i", "bool": "B"}[dtype]
    else:
        fmt = {"uint8": "B", "uint16": "H", "float16": "e"}[quant["dtype"]]
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def manifest_entry(name, dtype, shape, quant):
    e = {"name": name, "shape": shape, "dtype": dtype}
    if quant is not None:
        e["quantization"] = quant
    return e


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    g1, g2 = weights_group1(), weights_group2()
    blob1 = b"".join(pack(d, v, q) for _, d, _, v, q, _ in g1)
    blob2 = b"".join(pack(d, v, q) for _, d, _, v, q, _ in g2)
    cut = 24 + 8  # inside dense/bias (which starts at byte 24)
    shards = {"group1-shard1of2.bin": blob1[:cut], "group1-shard2of2.bin": blob1[cut:], "group2-shard1of1.bin": blob2}
    topology = {"node": [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": [{"size": "-1"}, {"size": "2"}]}}}},
        {"name": "dense/kernel", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        {"name": "dense/bias", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
        {"name": "MatMul", "op": "MatMul", "input": ["x", "dense/kernel"], "attr": {"transpose_a": {"b": False}}},
        {"name": "y", "op": "BiasAdd", "input": ["MatMul", "dense/bias"]}],
        "library": {}, "versions": {"producer": 1}}
    model = {"format": "graph-model", "generatedBy": "make_fixtures.py", "convertedBy": "hand",
             "modelTopology": topology,
             "weightsManifest": [
                 {"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                  "weights": [manifest_entry(n, d, s, q) for n, d, s, _, q, _ in g1]},
                 {"paths": ["group2-shard1of1.bin"],
                  "weights": [manifest_entry(n, d, s, q) for n, d, s, _, q, _ in g2]}]}
    text = json.dumps(model, indent=1).encode()
    expected = {n: {"dtype": d, "shape": s, "values": r} for n, d, s, _, _, r in g1 + g2}

    variants = {
        "valid": shards,
        "missing_shard": {k: v for k, v in shards.items() if k != "group1-shard2of2.bin"},
        "short_shard": dict(shards, **{"group1-shard2of2.bin": shards["group1-shard2of2.bin"][:-4]}),
        "long_shard": dict(shards, **{"group2-shard1of1.bin": blob2 + b"\0\0\0"}),
    }
    for folder, files in variants.items():
        shutil.rmtree(os.path.join(HERE, folder), ignore_errors=True)
        write(os.path.join(HERE, folder, "model.json"), text)
        for name, data in files.items():
            write(os.path.join(HERE, folder, name), data)
    write(os.path.join(HERE, "valid_expected.json"), json.dumps(expected, indent=1).encode())

    # Fuzzer seeds: the valid manifest, a weights-only one, one per quantization, a layers model.
    write(os.path.join(CORPUS, "valid.json"), text)
    write(os.path.join(CORPUS, "weights_only.json"),
          json.dumps({"weightsManifest": [{"paths": ["a.bin"], "weights": [
              {"name": "w", "shape": [2, 2], "dtype": "float32"}, {"name": "i", "shape": [], "dtype": "int32"}]}]}).encode())
    write(os.path.join(CORPUS, "quantized.json"),
          json.dumps({"weightsManifest": [{"paths": ["q.bin"], "weights": [
              manifest_entry(n, d, s, q) for n, d, s, _, q, _ in g2]}]}).encode())
    write(os.path.join(CORPUS, "layers_model.json"),
          json.dumps({"format": "layers-model", "modelTopology": {"class_name": "Sequential", "config": {}},
                      "weightsManifest": [{"paths": [], "weights": []}]}).encode())


if __name__ == "__main__":
    main()
