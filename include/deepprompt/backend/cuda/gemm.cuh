#pragma once
// GEMM on the device through cuBLAS, row-major as cpu::gemm: C(M, N) = alpha op(A) op(B) + beta C,
// computed as the column-major C^T = op(B)^T op(A)^T. Float products in full fp32 or with TF32
// tensor cores (GemmMath), bf16 inputs with fp32 accumulation and output, and strided batches.
// Every cuBLAS status is checked; the handle is per host thread.
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <string>
#include <type_traits>

#include "../../core/blas_types.hpp"
#include "launch.cuh"

namespace deepprompt::cuda {

inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS call ") + what + " failed with status " + std::to_string(static_cast<int>(status)));
}

/// This host thread's cuBLAS handle, created on first use, set to the thread's current stream.
inline cublasHandle_t blas() {
  thread_local cublasHandle_t handle = [] {
    cublasHandle_t h;
    check(cublasCreate(&h), "cublasCreate");
    return h;
  }();
  check(cublasSetStream(handle, current_stream()), "cublasSetStream");
  return handle;
}

/// How a float product is computed: full fp32, or TF32 tensor cores (10-bit mantissa inputs,
/// fp32 accumulation), as torch.backends.cuda.matmul.allow_tf32.
enum class GemmMath { fp32, tf32 };

/// The math of products that name none (every op's GEMM): fp32 unless set, for this thread, as
/// torch.backends.cuda.matmul.allow_tf32 is for a process.
inline GemmMath& default_gemm_math() {
  thread_local GemmMath math = GemmMath::fp32;
  return math;
}

namespace gemm_detail {
inline cublasOperation_t op(Trans t) { return t == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }
inline int i32(index_t v, const char* what) {
  if (v < 0 || v > 2147483647) throw Error(std::string("cuda::gemm: ") + what + " does not fit cuBLAS's int");
  return static_cast<int>(v);
}
template <class T>
constexpr cudaDataType_t data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, double>) return CUDA_R_64F;
  else return CUDA_R_16BF;
}
}  // namespace gemm_detail

/// Row-major C(M, N) = alpha op(A) op(B) + beta C; T float or double (double ignores `math`).
template <class T>
void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc, GemmMath math = default_gemm_math()) {
  using namespace gemm_detail;
  if (M == 0 || N == 0) return;
  const cublasComputeType_t compute = std::is_same_v<T, double> ? CUBLAS_COMPUTE_64F
                                      : math == GemmMath::tf32  ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                : CUBLAS_COMPUTE_32F;
  check(cublasGemmEx(blas(), op(tb), op(ta), i32(N, "N"), i32(M, "M"), i32(K, "K"), &alpha, B, data_type<T>(),
                     i32(ldb, "ldb"), A, data_type<T>(), i32(lda, "lda"), &beta, C, data_type<T>(), i32(ldc, "ldc"),
                     compute, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

/// Row-major C(M, N) (fp32) = alpha op(A) op(B) + beta C with A, B in bf16, fp32 accumulation.
inline void gemm_bf16(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha, const __nv_bfloat16* A,
                      index_t lda, const __nv_bfloat16* B, index_t ldb, float beta, float* C, index_t ldc) {
  using namespace gemm_detail;
  if (M == 0 || N == 0) return;
  check(cublasGemmEx(blas(), op(tb), op(ta), i32(N, "N"), i32(M, "M"), i32(K, "K"), &alpha, B, CUDA_R_16BF,
                     i32(ldb, "ldb"), A, CUDA_R_16BF, i32(lda, "lda"), &beta, C, CUDA_R_32F, i32(ldc, "ldc"),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (bf16)");
}

/// `batch` products C_b = alpha op(A_b) op(B_b) + beta C_b, X_b = X + b * stride_X (row-major).
template <class T>
void gemm_strided_batched(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                          index_t stride_a, const T* B, index_t ldb, index_t stride_b, T beta, T* C, index_t ldc,
                          index_t stride_c, index_t batch, GemmMath math = default_gemm_math()) {
  using namespace gemm_detail;
  if (M == 0 || N == 0 || batch == 0) return;
  const cublasComputeType_t compute = std::is_same_v<T, double> ? CUBLAS_COMPUTE_64F
                                      : math == GemmMath::tf32  ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                : CUBLAS_COMPUTE_32F;
  check(cublasGemmStridedBatchedEx(blas(), op(tb), op(ta), i32(N, "N"), i32(M, "M"), i32(K, "K"), &alpha, B,
                                   data_type<T>(), i32(ldb, "ldb"), stride_b, A, data_type<T>(), i32(lda, "lda"),
                                   stride_a, &beta, C, data_type<T>(), i32(ldc, "ldc"), stride_c,
                                   i32(batch, "batch"), compute, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
}

/// y = bf16(x), rounded to nearest even (as the CPU's bf16 packing). x, y: (n).
inline void to_bf16(const float* x, __nv_bfloat16* y, index_t n) {
  for_each_index(n, [=] __device__(index_t i) { y[i] = __float2bfloat16_rn(x[i]); }, "cuda::to_bf16");
}

}  // namespace deepprompt::cuda
