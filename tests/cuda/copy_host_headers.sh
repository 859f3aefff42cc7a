#!/bin/sh
# Copies the header-only host libraries that the device op tests compile (Eigen, xsimd) into
# build/host-headers, for a GPU machine that lacks them (tests/cuda/device_check.sh reads them
# from there). About 11 MB.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/host-headers
mkdir -p "$OUT/eigen3"
rm -rf "$OUT/eigen3/Eigen" "$OUT/xsimd"
cp -r /usr/include/eigen3/Eigen "$OUT/eigen3/"
cp -r /usr/include/xsimd "$OUT/"
du -sh "$OUT"
