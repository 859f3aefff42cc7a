#!/bin/sh
# Copies the header-only host libraries that the device op tests compile (Eigen, xsimd,
# nlohmann-json for the BERT model's config.json) into
# build/host-headers, for a GPU machine that lacks them (tests/cuda/device_check.sh reads them
# from there). About 12 MB.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/host-headers
mkdir -p "$OUT/eigen3"
rm -rf "$OUT/eigen3/Eigen" "$OUT/xsimd" "$OUT/nlohmann"
cp -r /usr/include/eigen3/Eigen "$OUT/eigen3/"
cp -r /usr/include/xsimd "$OUT/"
cp -r /usr/include/nlohmann "$OUT/"
du -sh "$OUT"
