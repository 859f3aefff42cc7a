// The P-Tuning v2 training step on the GPU at BERT shapes (issue 8's device check): the encoder
// of ptv2_layer.cuh (post-LN BERT layers, a trainable key/value prefix per layer, frozen
// weights, dropout 0.1, a token-classification loss) on batch 32 x 128, at BERT-base (12 x 768,
// 12 heads, prefix 100) and BERT-large (24 x 1024, 16 heads, prefix 100) shapes, with the
// products in fp32 and in TF32. Prints one table row per setting: ms per step (median of
// --steps after 2 warm-up steps), TFLOP/s, and the share of the bf16 GEMM peak measured here.
//
// FLOPs counted per step: the forward GEMMs, the input-gradient GEMMs of the backward pass
// (the frozen weights get none), and the attention's products (2 forward, 4 backward) over the
// prefix and the real keys. Exits 77 without a GPU.
//   deepprompt_cuda_ptv2_step [--steps N]
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ptv2_layer.cuh"

using namespace cuda_test;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The measured bf16 GEMM rate (TFLOP/s) at a large square size: the peak the table refers to.
double bf16_peak() {
  const index_t n = 8192;
  Dev<__nv_bfloat16> a(static_cast<std::size_t>(n * n)), b(static_cast<std::size_t>(n * n));
  Dev<float> c(static_cast<std::size_t>(n * n));
  const auto product = [&] {
    cu::gemm_bf16(dp::Trans::No, dp::Trans::Yes, n, n, n, 1.0f, a.p, n, b.p, n, 0.0f, c.p, n);
  };
  product();
  cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const int reps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) product();
  cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return 2.0 * n * n * n * reps / seconds_since(t0) / 1e12;
}

double step_flops(const Ptv2Shape& s, index_t B, index_t T) {
  const double N = double(B) * T, C = double(s.hidden), F = double(s.ffn);
  const double linear = 2 * N * (4 * C * C + 2 * C * F);          // per layer, forward
  const double attention = 2 * 2 * N * double(s.prefix + T) * C;  // q k^T and p v, forward
  const double head = 2 * N * C * double(s.labels);
  return s.layers * (2 * linear + 3 * attention) + 2 * head;
}

enum class Math { fp32, tf32, bf16 };

void time_step(const char* model, const Ptv2Shape& s, Math math, int steps, double peak) {
  const index_t B = 32, T = 128;
  cu::default_gemm_math() = math == Math::tf32 ? cu::GemmMath::tf32 : cu::GemmMath::fp32;
  Ptv2Encoder<dp::Cuda> enc(s, false);
  if (math == Math::bf16) enc.use_bf16();
  const auto batch = ptv2_batch(B, T, s.hidden, s.labels, 16);
  const auto x = dp::to_device(batch.x);
  const auto mask = dp::to_device(batch.mask);
  dp::Generator gen(7);
  std::vector<double> ms;
  for (int i = 0; i < steps + 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto loss = enc.loss(dp::Var<float, 3, dp::Cuda>(x), mask, batch.targets, 0.1f, gen);
    loss.backward();
    cu::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    if (i >= 2) ms.push_back(1e3 * seconds_since(t0));
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double tflops = step_flops(s, B, T) / (med * 1e-3) / 1e12;
  const char* name = math == Math::fp32 ? "fp32" : math == Math::tf32 ? "tf32" : "bf16";
  std::printf("| %-10s | %-4s | %8.2f | %7.1f | %5.1f%% |\n", model, name, med, tflops, 100 * tflops / peak);
  cu::default_gemm_math() = cu::GemmMath::fp32;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 10;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--steps") == 0) steps = std::max(1, std::atoi(argv[i + 1]));
  if (dp::cuda::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine\n");
    return 77;
  }
  const double peak = bf16_peak();
  std::printf("bf16 GEMM peak measured here (8192^3): %.1f TFLOP/s\n\n", peak);
  std::printf("P-Tuning v2 step, batch 32 x 128, prefix 100, frozen backbone, dropout 0.1\n");
  std::printf("| model      | math | ms/step  | TFLOP/s | of bf16 peak |\n|---|---|---|---|---|\n");
  const Ptv2Shape base{12, 768, 12, 3072, 100, 9}, large{24, 1024, 16, 4096, 100, 9};
  for (auto math : {Math::fp32, Math::tf32, Math::bf16}) time_step("BERT-base", base, math, steps, peak);
  for (auto math : {Math::fp32, Math::tf32, Math::bf16}) time_step("BERT-large", large, math, steps, peak);
  return 0;
}
