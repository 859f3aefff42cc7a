#!/bin/sh
# The CUDA backend's device check (issue 8), for a machine with an NVIDIA Hopper GPU (sm_90) and
# the CUDA Toolkit and CMake (no Eigen or other host packages: tests/cuda configures on its own):
# builds tests/cuda, runs its CTest suite (every backend/cuda kernel against host references),
# then prints cuBLAS GEMM rates at BERT-base / BERT-large shapes (batch 32 x 128) in fp32, TF32
# and bf16. A few minutes.
#   tests/cuda/device_check.sh [BUILD_DIR]        (e.g. through the `device` tool's run)
# Not yet: the P-Tuning v2 step on BERT-base / BERT-large shapes on the GPU, which needs the
# autodiff front end on Tensor<T, R, Cuda> (docs/architecture.md, "Devices").
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build/cuda-check}
if ! nvidia-smi -L; then
  echo "device_check: no NVIDIA GPU here"
  exit 77
fi
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
cmake -S "$ROOT/tests/cuda" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC"
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure
"$BUILD/deepprompt_cuda_kernels"
"$BUILD/deepprompt_cuda_attention"
"$BUILD/deepprompt_cuda_gemm_peak"
