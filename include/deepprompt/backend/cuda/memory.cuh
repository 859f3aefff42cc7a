#pragma once
// CUDA device memory for Tensor<T, R, Cuda>: a caching pool over cudaMalloc (MemoryPool with
// a device Backing, so no cudaMalloc per step), host <-> device copies, and error checks that
// name the failing call.
#include <cuda_runtime.h>

#include <string>

#include "../../core/error.hpp"
#include "../../core/storage.hpp"
#include "../../core/tensor.hpp"

namespace deepprompt {

namespace cuda {
/// Throws deepprompt::Error("CUDA call <what> failed: <reason>") unless `status` is success.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error(std::string("CUDA call ") + what + " failed: " + cudaGetErrorName(status) + ": " +
                cudaGetErrorString(status));
}

/// Number of visible CUDA devices; 0 when there is no GPU or no driver.
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}
}  // namespace cuda

inline MemoryPool& device_pool(Cuda) {
  static MemoryPool* pool = new MemoryPool(MemoryPool::Backing{
      [](std::size_t bytes) -> void* {
        void* p = nullptr;
        cuda::check(cudaMalloc(&p, bytes), "cudaMalloc");
        return p;
      },
      [](void* p) { (void)cudaFree(p); }});
  return *pool;
}

/// Copies n elements from host memory to device memory (ops use it for ids and targets, which
/// stay host tensors so that the host can check them).
template <class T>
void upload(Cuda, const T* host, T* device, index_t n) {
  if (n > 0)
    cuda::check(cudaMemcpy(device, host, sizeof(T) * static_cast<std::size_t>(n), cudaMemcpyHostToDevice),
                "cudaMemcpy(host to device)");
}

/// A device copy of a host tensor.
template <class T, std::size_t R>
Tensor<T, R, Cuda> to_device(const Tensor<T, R, Cpu>& host) {
  Tensor<T, R, Cuda> dev(host.shape());
  cuda::check(cudaMemcpy(dev.data(), host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice),
              "cudaMemcpy(host to device)");
  return dev;
}

/// Copies n elements from device memory to host memory (core/tensor.hpp's to_host uses it).
template <class T>
void download(Cuda, const T* device, T* host, index_t n) {
  if (n > 0)
    cuda::check(cudaMemcpy(host, device, sizeof(T) * static_cast<std::size_t>(n), cudaMemcpyDeviceToHost),
                "cudaMemcpy(device to host)");
}

}  // namespace deepprompt
