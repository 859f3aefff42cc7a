#pragma once
// Embedding lookup and cross-entropy on the device (the kernels of ops/embedding.hpp and
// ops/cross_entropy.hpp): gather / accumulate rows of an embedding table, and the mean
// softmax cross-entropy of log-probabilities (from log_softmax_rows) with ignore_index and label
// smoothing, forward and backward. Ids and targets must have been checked on the host (a kernel
// cannot throw): every id in [0, V), every target in [0, C) or ignore_index.
#include <cstdint>

#include "launch.cuh"

namespace deepprompt::cuda {

// weight: (V, C); ids: (n); y: (n, C).  y[p] = weight[ids[p]].
template <class T>
void embedding_forward(const T* weight, const std::int64_t* ids, T* y, index_t n, index_t C) {
  for_each_index(n * C, [=] __device__(index_t i) { y[i] = weight[ids[i / C] * C + i % C]; }, "cuda::embedding_forward");
}

// dW[ids[p]] += dy[p] for every p whose id is not padding_idx (-1: none). One thread per column
// summing the positions in order: deterministic, no atomics (the CPU's order).
template <class T>
void embedding_backward(const std::int64_t* ids, const T* dy, T* dweight, index_t n, index_t C,
                        std::int64_t padding_idx) {
  for_each_index(C, [=] __device__(index_t c) {
    for (index_t p = 0; p < n; ++p)
      if (ids[p] != padding_idx) dweight[ids[p] * C + c] += dy[p * C + c];
  }, "cuda::embedding_backward");
}

template <class T>
__global__ void cross_entropy_kernel(const T* logp, const std::int64_t* targets, index_t N, index_t C,
                                     std::int64_t ignore_index, T eps, T* out) {
  T total = 0, kept = 0;
  for (index_t i = threadIdx.x; i < N; i += blockDim.x) {
    const std::int64_t t = targets[i];
    if (t == ignore_index) continue;
    const T* row = logp + i * C;
    T s = 0;
    if (eps != T(0))
      for (index_t c = 0; c < C; ++c) s += row[c];
    total += -(T(1) - eps) * row[t] - eps / T(C) * s;
    kept += T(1);
  }
  total = block_sum(total);
  kept = block_sum(kept);
  if (threadIdx.x == 0) out[0] = total / kept, out[1] = kept;  // 0 / 0 = NaN when all are ignored, as torch
}

// logp: (N, C) log-probabilities; targets: (N). out: 2 elements, out[0] = the mean loss over the
// kept rows, out[1] = their number (K), read by the backward.
template <class T>
void cross_entropy_forward(const T* logp, const std::int64_t* targets, index_t N, index_t C,
                           std::int64_t ignore_index, T eps, T* out) {
  cross_entropy_kernel<<<1, kThreads, 0, current_stream()>>>(logp, targets, N, C, ignore_index, eps, out);
  check(cudaGetLastError(), "cuda::cross_entropy_forward");
}

// dlogits[i, c] += dloss / K * (exp(logp[i, c]) - q_i[c]) for kept rows, q_i = (1 - eps)
// onehot(t_i) + eps / C; dloss: the loss's gradient (device scalar); forward_out: as written by
// cross_entropy_forward. No-op when K == 0.
template <class T>
void cross_entropy_backward(const T* logp, const std::int64_t* targets, index_t N, index_t C,
                            std::int64_t ignore_index, T eps, const T* dloss, const T* forward_out, T* dlogits) {
  for_each_index(N * C, [=] __device__(index_t i) {
    const index_t r = i / C, c = i % C;
    const std::int64_t t = targets[r];
    const T kept = forward_out[1];
    if (t == ignore_index || kept == T(0)) return;
    const T q = (c == t ? T(1) - eps : T(0)) + eps / T(C);
    dlogits[i] += dloss[0] / kept * (d_exp(logp[i]) - q);
  }, "cuda::cross_entropy_backward");
}

}  // namespace deepprompt::cuda
