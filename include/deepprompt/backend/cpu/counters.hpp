#pragma once
// Kernel counters: how many GEMMs the CPU backend ran and how many flops they did. Cheap
// (one relaxed atomic add per call); tests use them to prove that work is skipped (no weight
// GEMM for a frozen parameter) and benchmarks to count useful FLOPs.
#include <atomic>

namespace deepprompt::cpu {

struct KernelCounters {
  std::atomic<long long> gemm_calls{0};  // gemm() calls plus gemm_batched() calls
  std::atomic<long long> gemm_flops{0};  // 2*M*N*K summed (times batch)
};

inline KernelCounters& counters() {
  static KernelCounters c;
  return c;
}

}  // namespace deepprompt::cpu
