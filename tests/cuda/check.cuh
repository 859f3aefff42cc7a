#pragma once
// What the CUDA tests share: a bounded comparison that prints one line per check and counts the
// failures, random host data, and device copies of host vectors.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "deepprompt/backend/cuda/memory.cuh"

namespace cuda_test {

namespace dp = deepprompt;
namespace cu = deepprompt::cuda;
using dp::index_t;

inline int g_failed = 0;  // failed checks so far

inline void expect_close(const std::string& name, const std::vector<float>& got, const std::vector<double>& want,
                         double tol) {
  double worst = 0;
  std::size_t at = 0;
  bool size_ok = got.size() == want.size();
  for (std::size_t i = 0; size_ok && i < got.size(); ++i) {
    const double w = want[i], g = got[i];
    double e = std::fabs(g - w) / std::fmax(1.0, std::fabs(w));
    if (std::isnan(w) != std::isnan(g) || (std::isinf(w) && g != w)) e = INFINITY;
    if (std::isnan(w) && std::isnan(g)) e = 0;
    if (std::isinf(w) && g == w) e = 0;
    if (e > worst) worst = e, at = i;
  }
  const bool ok = size_ok && worst <= tol;
  if (!ok) ++g_failed;
  std::printf("%-48s %s  max scaled error %.3g (bound %.0e)%s\n", name.c_str(), ok ? "ok  " : "FAIL", worst, tol,
              ok || !size_ok ? "" : (" at " + std::to_string(at)).c_str());
}

inline std::vector<float> random_floats(index_t n, unsigned seed, float lo = -3, float hi = 3) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// A device copy of a host vector, freed at scope exit.
template <class T>
struct Dev {
  T* p = nullptr;
  std::size_t n = 0;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    cu::check(cudaMalloc(&p, sizeof(T) * (n ? n : 1)), "cudaMalloc");
    cu::check(cudaMemcpy(p, h.data(), sizeof(T) * n, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  explicit Dev(std::size_t count) : Dev(std::vector<T>(count)) {}
  Dev(const Dev&) = delete;
  ~Dev() { cudaFree(p); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    cu::check(cudaMemcpy(h.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost), "cudaMemcpy");
    return h;
  }
};

inline float bf16_round(float x) {  // to nearest even, as __float2bfloat16_rn
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace cuda_test
