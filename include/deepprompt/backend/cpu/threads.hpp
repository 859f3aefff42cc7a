// Thread count of the CPU backend.
//
// The CPU kernels (GEMM, element-wise loops) run on OpenMP threads. Eigen is used only as a
// single-threaded kernel library: we split the work ourselves, so Eigen's own threading is
// switched off whenever the thread count is set.
#pragma once

#include <Eigen/Core>
#include <omp.h>

#include <atomic>

namespace deepprompt::cpu {

namespace detail {
// 0 means "never set": num_threads() then reports OpenMP's default.
inline std::atomic<int> g_num_threads{0};
}  // namespace detail

// Sets the number of threads used by the CPU backend (OpenMP and GEMM).
// Requires: n >= 1 (smaller values are clamped to 1).
// Ensures: num_threads() == n; omp_get_max_threads() == n in the calling thread;
//          Eigen runs single-threaded (we parallelise around it).
inline void set_num_threads(int n) {
  if (n < 1) n = 1;
  detail::g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
  Eigen::setNbThreads(1);
}

// The number of threads the CPU backend uses: the last value given to set_num_threads(), or
// omp_get_max_threads() (OMP_NUM_THREADS, else the number of cores) if it was never called.
inline int num_threads() {
  const int n = detail::g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace deepprompt::cpu
