#pragma once
// Sums along one axis on the device (the kernels of ops/reduce.hpp): x seen as (outer, n, inner),
// accumulated in double. inner == 1 (a row's sum, also the sum of everything): one block per
// row; otherwise one thread per output element looping over the n entries.
#include "launch.cuh"

namespace deepprompt::cuda {

/// y[o, i] = scale * sum over k of x[o, k, i].  x: (outer, n, inner); y: (outer, inner).
template <class T>
void sum_axis(const T* x, T* y, index_t outer, index_t n, index_t inner, double scale) {
  if (inner == 1) {
    for_each_row(outer, [=] __device__(index_t o) {
      double s = 0;
      for (index_t k = threadIdx.x; k < n; k += blockDim.x) s += static_cast<double>(x[o * n + k]);
      s = block_sum(s);
      if (threadIdx.x == 0) y[o] = static_cast<T>(s * scale);
    }, "cuda::sum_axis");
  } else {
    for_each_index(outer * inner, [=] __device__(index_t j) {
      const index_t o = j / inner, i = j % inner;
      double s = 0;
      for (index_t k = 0; k < n; ++k) s += static_cast<double>(x[(o * n + k) * inner + i]);
      y[j] = static_cast<T>(s * scale);
    }, "cuda::sum_axis");
  }
}

/// dx[o, k, i] += scale * dy[o, i].  dy: (outer, inner); dx: (outer, n, inner).
template <class T>
void sum_axis_backward(const T* dy, T* dx, index_t outer, index_t n, index_t inner, T scale) {
  for_each_index(outer * n * inner, [=] __device__(index_t j) {
    const index_t o = j / (n * inner), i = j % inner;
    dx[j] += scale * dy[o * inner + i];
  }, "cuda::sum_axis_backward");
}

}  // namespace deepprompt::cuda
