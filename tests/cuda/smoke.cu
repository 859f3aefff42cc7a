// CUDA backend smoke test: a device tensor from the caching pool, one element-wise kernel and
// one cuBLAS GEMM through the same front end as the CPU (functions overloaded on the device
// policy), compared with a plain host computation. Exits 77 (skipped) without a GPU.
#include <cmath>
#include <cstdio>

#include "deepprompt/backend/cuda/kernels.cuh"
#include "deepprompt/core/tensor.hpp"

namespace dp = deepprompt;

int main() {
  if (dp::cuda::device_count() == 0) {
    std::printf("skipped: no CUDA device on this machine (the CUDA backend was compiled, not run)\n");
    return 77;
  }
  const dp::index_t M = 33, N = 17, K = 29;
  auto a = dp::Tensor<float, 2>({M, K}), b = dp::Tensor<float, 2>({N, K});
  for (dp::index_t i = 0; i < a.size(); ++i) a.data()[i] = std::sin(0.1f * i);
  for (dp::index_t i = 0; i < b.size(); ++i) b.data()[i] = std::cos(0.07f * i);

  // element-wise: a + a
  auto da = dp::to_device(a);
  dp::Tensor<float, 2, dp::Cuda> dsum(a.shape());
  dp::add(dp::Cuda{}, da.data(), da.data(), dsum.data(), a.size());
  auto sum = dp::to_host(dsum);
  double err_add = 0;
  for (dp::index_t i = 0; i < a.size(); ++i) err_add = std::fmax(err_add, std::fabs(sum.data()[i] - 2 * a.data()[i]));

  // GEMM: C = A B^T (as nn.Linear)
  auto db = dp::to_device(b);
  dp::Tensor<float, 2, dp::Cuda> dc({M, N});
  dp::gemm(dp::Cuda{}, dp::Trans::No, dp::Trans::Yes, M, N, K, 1.0f, da.data(), K, db.data(), K, 0.0f, dc.data(), N);
  auto c = dp::to_host(dc);
  double err_gemm = 0;
  for (dp::index_t i = 0; i < M; ++i)
    for (dp::index_t j = 0; j < N; ++j) {
      double ref = 0;
      for (dp::index_t k = 0; k < K; ++k) ref += double(a(i, k)) * b(j, k);
      err_gemm = std::fmax(err_gemm, std::fabs(c(i, j) - ref));
    }
  std::printf("cuda smoke: add max error %.3g, gemm max error %.3g\n", err_add, err_gemm);
  return err_add < 1e-6 && err_gemm < 1e-4 ? 0 : 1;
}
