// cuBLAS GEMM rates on the GPU at BERT's shapes (batch 32 x 128 = 4096 rows; base and large
// widths) and at 8192^3, in fp32, TF32 and bf16 (fp32 accumulation), through the backend's own
// entry points (backend/cuda/gemm.cuh). One JSON line per (shape, precision) and a final table;
// the best bf16 rate is the denominator of a step's share of the GPU's peak
// (tests/cuda/device_check.sh). Exits 77 without a GPU.
#include <cstdio>
#include <vector>

#include "deepprompt/backend/cuda/kernels.cuh"

namespace cu = deepprompt::cuda;
using deepprompt::index_t;
using deepprompt::Trans;

namespace {

struct Shape {
  const char* name;
  index_t M, N, K;
};

template <class F>
double tflops(const Shape& s, F&& product) {
  cudaEvent_t start, stop;
  cu::check(cudaEventCreate(&start), "cudaEventCreate");
  cu::check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) product();  // warm-up
  const int runs = 20;
  cu::check(cudaEventRecord(start), "cudaEventRecord");
  for (int i = 0; i < runs; ++i) product();
  cu::check(cudaEventRecord(stop), "cudaEventRecord");
  cu::check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  cu::check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 2.0 * double(s.M) * double(s.N) * double(s.K) * runs / (double(ms) * 1e-3) / 1e12;
}

}  // namespace

int main() {
  if (cu::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine\n");
    return 77;
  }
  const std::vector<Shape> shapes = {{"base qkv/o (4096x768x768)", 4096, 768, 768},
                                     {"base ffn in (4096x3072x768)", 4096, 3072, 768},
                                     {"base ffn out (4096x768x3072)", 4096, 768, 3072},
                                     {"large qkv/o (4096x1024x1024)", 4096, 1024, 1024},
                                     {"large ffn in (4096x4096x1024)", 4096, 4096, 1024},
                                     {"large ffn out (4096x1024x4096)", 4096, 1024, 4096},
                                     {"square 8192^3", 8192, 8192, 8192}};
  std::printf("%-32s %10s %10s %10s\n", "shape (M x N x K, x W^T)", "fp32", "tf32", "bf16");
  double best_bf16 = 0;
  for (const Shape& s : shapes) {
    float *x, *w, *y;
    __nv_bfloat16 *xb, *wb;
    cu::check(cudaMalloc(&x, sizeof(float) * s.M * s.K), "cudaMalloc");
    cu::check(cudaMalloc(&w, sizeof(float) * s.N * s.K), "cudaMalloc");
    cu::check(cudaMalloc(&y, sizeof(float) * s.M * s.N), "cudaMalloc");
    cu::check(cudaMalloc(&xb, sizeof(__nv_bfloat16) * s.M * s.K), "cudaMalloc");
    cu::check(cudaMalloc(&wb, sizeof(__nv_bfloat16) * s.N * s.K), "cudaMalloc");
    cu::fill(x, 0.01f, s.M * s.K);
    cu::fill(w, 0.02f, s.N * s.K);
    cu::to_bf16(x, xb, s.M * s.K);
    cu::to_bf16(w, wb, s.N * s.K);
    double r[3];
    for (int p = 0; p < 2; ++p) {
      const auto math = p == 0 ? cu::GemmMath::fp32 : cu::GemmMath::tf32;
      r[p] = tflops(s, [&] { cu::gemm(Trans::No, Trans::Yes, s.M, s.N, s.K, 1.0f, x, s.K, w, s.K, 0.0f, y, s.N, math); });
    }
    r[2] = tflops(s, [&] { cu::gemm_bf16(Trans::No, Trans::Yes, s.M, s.N, s.K, 1.0f, xb, s.K, wb, s.K, 0.0f, y, s.N); });
    best_bf16 = r[2] > best_bf16 ? r[2] : best_bf16;
    std::printf("%-32s %10.1f %10.1f %10.1f  TFLOP/s\n", s.name, r[0], r[1], r[2]);
    std::printf("{\"shape\":\"%s\",\"M\":%ld,\"N\":%ld,\"K\":%ld,\"fp32_tflops\":%.2f,\"tf32_tflops\":%.2f,\"bf16_tflops\":%.2f}\n",
                s.name, static_cast<long>(s.M), static_cast<long>(s.N), static_cast<long>(s.K), r[0], r[1], r[2]);
    cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(xb), cudaFree(wb);
  }
  cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::printf("{\"best_bf16_tflops\":%.2f}\n", best_bf16);
  return 0;
}
