#pragma once
// The device-dispatched front end of the backends: the same function names for every device,
// overloaded on the policy tag. Host code calls `add(Cpu{}, ...)`; CUDA translation units get
// the `Cuda` overloads from backend/cuda/kernels.cuh. Ops written against this front end run
// on both devices by changing the tensors' Device argument.
#include "../core/blas_types.hpp"
#include "../core/device.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/gemm.hpp"

namespace deepprompt {

/// y = a + b. a, b, y: (n) host pointers.
template <class T>
void add(Cpu, const T* a, const T* b, T* y, index_t n) {
  cpu::add(a, b, y, n);
}

/// Row-major C(M,N) = alpha op(A) op(B) + beta C on the host (see cpu::gemm).
template <class T>
void gemm(Cpu, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc) {
  cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace deepprompt
