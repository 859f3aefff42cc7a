#pragma once
// Device policies. A tensor's third template argument says where its memory lives; kernels are
// chosen by overloading on the policy, so CPU and CUDA share one front end (as Eigen's devices).
#include <concepts>
#include <type_traits>

// Marks functions that CUDA kernels call too (compiled for host and device by nvcc; plain
// functions elsewhere): the Philox generator, so that both devices draw the same words.
#if defined(__CUDACC__)
#define DEEPPROMPT_HOST_DEVICE __host__ __device__
#else
#define DEEPPROMPT_HOST_DEVICE
#endif

namespace deepprompt {

/// Host memory, kernels in backend/cpu (Eigen GEMM, xsimd, OpenMP).
struct Cpu {
  static constexpr const char* name = "cpu";
};

/// NVIDIA GPU memory, kernels in backend/cuda; available when the CUDA backend is compiled in.
struct Cuda {
  static constexpr const char* name = "cuda";
};

/// Whether D is a device policy. A device declares itself by specialising this (the tests do so
/// for a host-memory stand-in that runs the device code paths of the ops without a GPU).
template <class D>
struct is_device_policy : std::bool_constant<std::same_as<D, Cpu> || std::same_as<D, Cuda>> {};

template <class D>
concept DevicePolicy = is_device_policy<D>::value;

}  // namespace deepprompt
