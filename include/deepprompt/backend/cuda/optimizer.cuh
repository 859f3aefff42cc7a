#pragma once
// The optimisers' element-wise updates and gradient-norm partial sums on the device
// (train/optimizer.hpp, train/clip_grad.hpp). The updates follow backend/optimizer_args.hpp
// step by step with explicitly rounded intrinsics, so that nvcc's contraction of a * b + c
// cannot change a result: given the same gradients, the host's and the device's parameters
// should agree to the bit (the host's fused multiply-adds are the ones listed there).
#include <cmath>
#include <limits>
#include <vector>

#include "../optimizer_args.hpp"
#include "launch.cuh"

namespace deepprompt::cuda {

namespace optim_detail {
template <class T>
__device__ T mul(T a, T b) {
  if constexpr (sizeof(T) == 4) return __fmul_rn(a, b); else return __dmul_rn(a, b);
}
template <class T>
__device__ T add(T a, T b) {
  if constexpr (sizeof(T) == 4) return __fadd_rn(a, b); else return __dadd_rn(a, b);
}
template <class T>
__device__ T div(T a, T b) {
  if constexpr (sizeof(T) == 4) return __fdiv_rn(a, b); else return __ddiv_rn(a, b);
}
template <class T>
__device__ T fma(T a, T b, T c) {
  if constexpr (sizeof(T) == 4) return __fmaf_rn(a, b, c); else return __fma_rn(a, b, c);
}
template <class T>
__device__ T sqrt(T a) {
  if constexpr (sizeof(T) == 4) return __fsqrt_rn(a); else return __dsqrt_rn(a);
}
}  // namespace optim_detail

/// One Adam / AdamW step over u.n elements (the steps of backend/optimizer_args.hpp).
template <class T>
void adam_update(const AdamUpdate<T>& u) {
  namespace o = optim_detail;
  for_each_index(u.n, [u] __device__(index_t i) {
    T p = u.value[i], g = u.grad[i];
    if (u.l2) g = o::fma(p, u.wd, g);
    if (u.decoupled) p = o::mul(p, u.decay);
    const T m = o::fma(g, u.one_minus_beta1, o::mul(u.m[i], u.beta1));
    T v = o::fma(o::mul(u.one_minus_beta2, g), g, o::mul(u.v[i], u.beta2));
    u.m[i] = m;
    u.v[i] = v;
    if (u.amsgrad) {
      const T prev = u.vmax[i];
      v = prev >= v ? prev : v;
      u.vmax[i] = v;
    }
    const T denom = o::add(o::div(o::sqrt(v), u.bc2_sqrt), u.eps);
    u.value[i] = o::add(p, o::div(o::mul(u.neg_step_size, m), denom));
  }, "cuda::adam_update");
}

/// One SGD step over u.n elements (backend/optimizer_args.hpp).
template <class T>
void sgd_update(const SgdUpdate<T>& u) {
  namespace o = optim_detail;
  for_each_index(u.n, [u] __device__(index_t i) {
    const T p = u.value[i];
    T d = u.grad[i];
    if (u.decay) d = o::fma(p, u.wd, d);
    if (u.momentum) {
      const T b = u.first ? d : o::fma(d, u.one_minus_dampening, o::mul(u.buf[i], u.momentum_factor));
      u.buf[i] = b;
      d = u.nesterov ? o::fma(b, u.momentum_factor, d) : b;
    }
    u.value[i] = o::fma(d, u.neg_lr, p);
  }, "cuda::sgd_update");
}

namespace optim_detail {
inline constexpr int kNormBlocks = 128;

// partial[block]: the block's sum of |x|^p (or max |x|, NaN-propagating, when p is infinite)
// over a grid-stride share of x, in double.
template <class T>
__global__ void norm_partial_kernel(const T* x, index_t n, double p, bool inf, double* partial) {
  double acc = 0;
  bool nan = false;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x) {
    const double a = ::fabs(static_cast<double>(x[i]));
    if (!inf)
      acc += p == 2 ? a * a : p == 1 ? a : ::pow(a, p);
    else if (a != a)
      nan = true;
    else if (a > acc)
      acc = a;
  }
  if (inf) {  // a NaN wins: its flag is reduced beside the maximum
    const double nan_seen = block_sum(nan ? 1.0 : 0.0);
    const double m = block_max(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = nan_seen > 0 ? NAN : m;
  } else {
    const double s = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
  }
}
}  // namespace optim_detail

/// The sum of |x[i]|^p over [0, n) in double, or for an infinite p the largest |x[i]| (NaN if
/// some element is NaN; 0 when n == 0). The blocks' partial results are combined on the host in
/// a fixed order: the same bits on every run.
template <class T>
double grad_norm_partial(const T* x, index_t n, double p) {
  if (n <= 0) return 0;
  Tensor<double, 1, Cuda> partial({optim_detail::kNormBlocks});
  optim_detail::norm_partial_kernel<<<optim_detail::kNormBlocks, kThreads, 0, current_stream()>>>(
      x, n, p, std::isinf(p), partial.data());
  check(cudaGetLastError(), "cuda::grad_norm_partial");
  std::vector<double> host(optim_detail::kNormBlocks);
  copy_sync(host.data(), partial.data(), sizeof(double) * host.size(), cudaMemcpyDeviceToHost,
            "cudaMemcpyAsync(device to host) in cuda::grad_norm_partial");
  double r = 0;
  if (std::isinf(p)) {
    for (double v : host) {
      if (v != v) return std::numeric_limits<double>::quiet_NaN();
      r = v > r ? v : r;
    }
  } else {
    for (double v : host) r += v;
  }
  return r;
}

}  // namespace deepprompt::cuda
