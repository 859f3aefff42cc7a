#!/bin/sh
# The CUDA backend's device check (issue 8), for a machine with an NVIDIA Hopper GPU (sm_90), the
# CUDA Toolkit, CMake and a host C++ compiler with OpenMP. Eigen and xsimd (header-only) are taken
# from the system or from $DEEPPROMPT_HOST_HEADERS (default: build/host-headers, which
# tests/cuda/copy_host_headers.sh fills here, so that a GPU machine without them can be sent the
# copies, e.g. with the `device` tool's carry). Steps:
#   1. builds tests/cuda on its own and runs its CTest suite: every backend/cuda kernel against
#      host references, and every autodiff op on Var<float, R, Cuda> against the same op on the
#      host (ops.cu, ending with a P-Tuning v2 layer stack on both devices);
#   2. prints cuBLAS GEMM rates at BERT shapes in fp32, TF32 and bf16 (gemm_peak.cu);
#   3. times the P-Tuning v2 step (frozen backbone, trainable key/value prefix of 100 tokens,
#      batch 32 x 128) at BERT-base and BERT-large shapes in fp32 and TF32 (ptv2_step.cu), with
#      a table of ms per step, TFLOP/s and the share of the measured bf16 GEMM peak.
# About five minutes on an H200.
#   tests/cuda/device_check.sh [BUILD_DIR]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build/cuda-check}
HEADERS=${DEEPPROMPT_HOST_HEADERS:-$ROOT/build/host-headers}
if ! nvidia-smi -L; then
  echo "device_check: no NVIDIA GPU here"
  exit 77
fi
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
cmake -S "$ROOT/tests/cuda" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
      -DDEEPPROMPT_HOST_HEADERS="$HEADERS"
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure
"$BUILD/deepprompt_cuda_gemm_peak"
if [ -x "$BUILD/deepprompt_cuda_ptv2_step" ]; then
  "$BUILD/deepprompt_cuda_ptv2_step" --steps 10
else
  echo "device_check: the step timing was not built (Eigen, xsimd or OpenMP missing; see the configure output)"
  exit 1
fi
