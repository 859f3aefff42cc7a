#pragma once
// Launch helpers of the CUDA kernels: a grid-stride loop running a device lambda over n indices,
// and block-wide reductions for the row-wise kernels (one block per row). Every launch goes to
// the thread's current stream (memory.cuh) and is checked; a failure throws deepprompt::Error
// naming the kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>

#include "memory.cuh"  // cuda::check

namespace deepprompt::cuda {

/// Threads per block of every kernel here (a multiple of 32, at most 1024).
inline constexpr int kThreads = 256;

template <class F>
__global__ void for_each_index_kernel(index_t n, F f) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x)
    f(i);
}

/// f(i) for every i in [0, n) on the device; f: a __device__ lambda (captured by value).
template <class F>
void for_each_index(index_t n, F f, const char* what) {
  if (n <= 0) return;
  const auto blocks = static_cast<unsigned>(std::min<index_t>((n + kThreads - 1) / kThreads, 8192));
  for_each_index_kernel<<<blocks, kThreads, 0, current_stream()>>>(n, f);
  check(cudaGetLastError(), what);
}

template <class F>
__global__ void for_each_row_kernel(F f) {
  f(static_cast<index_t>(blockIdx.x));
}

/// f(r) for every row r in [0, rows), one block of kThreads threads per row (f uses
/// threadIdx.x / blockDim.x to split the row and block_sum / block_max to reduce it).
template <class F>
void for_each_row(index_t rows, F f, const char* what) {
  if (rows <= 0) return;
  for_each_row_kernel<<<static_cast<unsigned>(rows), kThreads, 0, current_stream()>>>(f);
  check(cudaGetLastError(), what);
}

/// The sum of v over the block, returned to every thread. requires: all threads of the block
/// call it (uniform control flow), blockDim.x a multiple of 32.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  __syncthreads();  // an earlier call may still be reading `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : T(0);
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// The maximum of v over the block, returned to every thread (requirements as block_sum).
template <class T>
__device__ T block_max(T v) {
  __shared__ T partial[32];
  for (int o = 16; o > 0; o /= 2) v = ::fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : -T(INFINITY);
  for (int o = 16; o > 0; o /= 2) v = ::fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Device math in T (float or double); the CUDA math library's global functions, named with ::
// so that the ops' deepprompt::exp / tanh (Var overloads) never hide them, whatever was included first.
__device__ inline float d_exp(float x) { return ::expf(x); }
__device__ inline double d_exp(double x) { return ::exp(x); }
__device__ inline float d_log(float x) { return ::logf(x); }
__device__ inline double d_log(double x) { return ::log(x); }
__device__ inline float d_tanh(float x) { return ::tanhf(x); }
__device__ inline double d_tanh(double x) { return ::tanh(x); }
__device__ inline float d_erf(float x) { return ::erff(x); }
__device__ inline double d_erf(double x) { return ::erf(x); }
__device__ inline float d_rsqrt(float x) { return 1.0f / ::sqrtf(x); }  // not rsqrtf: 2 ulp
__device__ inline double d_rsqrt(double x) { return 1.0 / ::sqrt(x); }

}  // namespace deepprompt::cuda
