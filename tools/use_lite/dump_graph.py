#!/usr/bin/python3
"""Prints the graph of a TF.js graph model (model.json) one node a line: name, op, inputs and
the attributes that matter, with long scope prefixes shortened, and the value of every weight
of at most 16 elements (the constants that fix epsilons, scales, axes and shapes).

Usage: /usr/bin/python3 tools/use_lite/dump_graph.py /work/shared/use-lite/package/dist/model.json
"""
import json
import math
import os
import struct
import sys

SHORT = [("module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/", "TS/"),
         ("module_apply_default/Encoder_en/KonaTransformer/Encode/", "Enc/"),
         ("module_apply_default/Encoder_en/KonaTransformer/", "Kona/"),
         ("module_apply_default/Encoder_en/", "E/"),
         ("module/Encoder_en/KonaTransformer/Encode/", "W/"),
         ("module/Encoder_en/", "W/"),
         ("TransformerLayer/", "TL/"), ("MultiheadAttention/", "MHA/"), ("DotProductAttention/", "DPA/"),
         ("layer_prepostprocess/layer_norm/", "LN/"), ("/ConcatPartitions/concat", "")]
SKIP_ATTRS = {"T", "dtype", "Tidx", "Tshape", "Index", "Tparams", "Tindices", "Taxis", "N", "out_type",
              "Tperm", "TI", "DstT", "SrcT", "Truncate", "Tdim", "value", "_output_shapes"}


def short(name):
    for a, b in SHORT:
        name = name.replace(a, b)
    return name


def attr_str(attr):
    out = []
    for k, v in sorted(attr.items()):
        if k in SKIP_ATTRS:
            continue
        if "list" in v:
            v = {t: x for t, x in v["list"].items() if x}
        if "s" in v and isinstance(v["s"], str):
            import base64
            v = base64.b64decode(v["s"]).decode(errors="replace")
        out.append("%s=%s" % (k, json.dumps(v, separators=(",", ":"))))
    return " ".join(out)


def main(path):
    model = json.load(open(path))
    folder = os.path.dirname(path)
    small = {}
    for group in model["weightsManifest"]:
        blob = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = math.prod(w["shape"])
            size = {"float32": 4, "int32": 4, "bool": 1}[w["dtype"]]
            if n <= 16:
                fmt = {"float32": "f", "int32": "i", "bool": "B"}[w["dtype"]]
                small[w["name"]] = list(struct.unpack_from("<%d%s" % (n, fmt), blob, off))
            else:
                small[w["name"]] = "%s%s" % (w["dtype"], w["shape"])
            off += n * size
    for node in model["modelTopology"]["node"]:
        name = node["name"]
        if node["op"] == "Const":
            print("%-90s Const %s" % (short(name), small.get(name, "(not in the manifest)")))
            continue
        ins = ", ".join(short(i) for i in node.get("input", []))
        print("%-90s %s(%s) %s" % (short(name), node["op"], ins, attr_str(node.get("attr", {}))))


if __name__ == "__main__":
    main(sys.argv[1])
