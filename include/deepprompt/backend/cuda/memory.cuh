#pragma once
// CUDA device memory for Tensor<T, R, Cuda>: a caching pool over cudaMalloc (MemoryPool with
// a device Backing, so no cudaMalloc per step), the stream this thread's work is issued on
// (StreamGuard), host <-> device copies, and error checks that name the failing call.
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

namespace detail {
inline cudaStream_t& stream_slot() {
  thread_local cudaStream_t s = nullptr;  // the legacy default stream
  return s;
}
}  // namespace detail

/// The stream every kernel, copy and cuBLAS call of this host thread is issued on: the legacy
/// default stream unless a StreamGuard says otherwise.
inline cudaStream_t current_stream() { return detail::stream_slot(); }

/// Issues this thread's CUDA work on `stream` while it lives, then returns to the previous one
/// (as torch's CUDAStreamGuard). The caching pool serves one stream at a time, so the guard
/// waits for the stream it leaves, on entry and on exit: a block freed by work still queued on
/// one stream is never handed to work on another.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t stream) : previous_(current_stream()) {
    check(cudaStreamSynchronize(previous_), "cudaStreamSynchronize (StreamGuard, entering)");
    detail::stream_slot() = stream;
  }
  ~StreamGuard() {
    (void)cudaStreamSynchronize(detail::stream_slot());  // a destructor does not throw
    detail::stream_slot() = previous_;
  }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  cudaStream_t previous_;
};

/// An owned, non-blocking stream (cudaStreamCreateWithFlags), destroyed with the object.
class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
  ~Stream() { (void)cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

/// Copies `bytes` between host and device on the current stream and waits for it (the host
/// buffer may be pageable and is free to go once this returns).
inline void copy_sync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, const char* what) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, kind, current_stream()), what);
  check(cudaStreamSynchronize(current_stream()), what);
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
    cuda::copy_sync(device, host, sizeof(T) * static_cast<std::size_t>(n), cudaMemcpyHostToDevice,
                    "cudaMemcpyAsync(host to device)");
}

/// A device copy of a host tensor.
template <class T, std::size_t R>
Tensor<T, R, Cuda> to_device(const Tensor<T, R, Cpu>& host) {
  Tensor<T, R, Cuda> dev(host.shape());
  upload(Cuda{}, static_cast<const T*>(host.data()), dev.data(), host.size());
  return dev;
}

/// Copies n elements from device memory to host memory (core/tensor.hpp's to_host uses it).
template <class T>
void download(Cuda, const T* device, T* host, index_t n) {
  if (n > 0)
    cuda::copy_sync(host, device, sizeof(T) * static_cast<std::size_t>(n), cudaMemcpyDeviceToHost,
                    "cudaMemcpyAsync(device to host)");
}

}  // namespace deepprompt
