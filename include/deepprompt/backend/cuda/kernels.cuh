#pragma once
// CUDA kernels behind the device-dispatched front end (backend/dispatch.hpp): the Cuda
// overloads of the same functions the CPU backend offers. So far: element-wise add and GEMM
// (cuBLAS); the full set arrives with the CUDA backend issue.
#include <cublas_v2.h>

#include "../../core/device.hpp"
#include "../../core/blas_types.hpp"
#include "memory.cuh"

namespace deepprompt {

namespace cuda {
inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS call ") + what + " failed with status " + std::to_string(static_cast<int>(status)));
}

/// This thread's cuBLAS handle, created on first use.
inline cublasHandle_t blas() {
  thread_local cublasHandle_t handle = [] {
    cublasHandle_t h;
    check(cublasCreate(&h), "cublasCreate");
    return h;
  }();
  return handle;
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* y, index_t n) {  // a, b, y: (n)
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(blockDim.x) * gridDim.x)
    y[i] = a[i] + b[i];
}
}  // namespace cuda

/// y = a + b on the device. a, b, y: (n) device pointers.
template <class T>
void add(Cuda, const T* a, const T* b, T* y, index_t n) {
  if (n == 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<index_t>((n + threads - 1) / threads, 65535));
  cuda::add_kernel<<<blocks, threads>>>(a, b, y, n);
  cuda::check(cudaGetLastError(), "add_kernel<<<>>>");
}

/// Row-major C(M,N) = alpha op(A) op(B) + beta C on the device, as cpu::gemm: computed as the
/// column-major C^T = op(B)^T op(A)^T with cublasSgemm/cublasDgemm.
template <class T>
void gemm(Cuda, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  const auto opa = ta == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  const auto opb = tb == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  if constexpr (std::is_same_v<T, float>)
    cuda::check(cublasSgemm(cuda::blas(), opb, opa, m, n, k, &alpha, B, static_cast<int>(ldb), A,
                            static_cast<int>(lda), &beta, C, static_cast<int>(ldc)),
                "cublasSgemm");
  else
    cuda::check(cublasDgemm(cuda::blas(), opb, opa, m, n, k, &alpha, B, static_cast<int>(ldb), A,
                            static_cast<int>(lda), &beta, C, static_cast<int>(ldc)),
                "cublasDgemm");
}

}  // namespace deepprompt
