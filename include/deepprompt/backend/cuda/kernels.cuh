#pragma once
// The CUDA backend behind the device-dispatched front end (backend/dispatch.hpp): the Cuda
// overloads of the functions the CPU backend offers, and every kernel header of backend/cuda
// (namespace deepprompt::cuda mirrors deepprompt::cpu: elementwise, rowwise, dropout, lookup,
// gemm, attention). Compiled by nvcc only (DEEPPROMPT_CUDA=ON), with --extended-lambda.
#include "../../core/blas_types.hpp"
#include "../../core/device.hpp"
#include "attention.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "gemm.cuh"
#include "lookup.cuh"
#include "memory.cuh"
#include "rowwise.cuh"

namespace deepprompt {

/// y = a + b on the device. a, b, y: (n) device pointers.
template <class T>
void add(Cuda, const T* a, const T* b, T* y, index_t n) {
  cuda::add(a, b, y, n);
}

/// Row-major C(M,N) = alpha op(A) op(B) + beta C on the device, as cpu::gemm (fp32: full precision).
template <class T>
void gemm(Cuda, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  cuda::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace deepprompt
