#pragma once
// deepprompt-bench --device cuda: the forward pass and the P-Tuning v2 step with the model on the
// GPU (Bert<..., Cuda>). The workloads live in bench/device_bench.cu, compiled by nvcc when the
// project is configured with DEEPPROMPT_CUDA=ON and linked into deepprompt-bench
// (DEEPPROMPT_BENCH_CUDA is then defined); this header is all the host side sees.
//
// ptv2-step on the device: PromptedBert with a DynamicDeepPrompt<float, Cuda> of --prefix
// tokens (the backbone frozen), hidden and attention dropout, the classification head (dropout,
// Linear), cross-entropy, backward, AdamW (lr 1e-2, weight decay 0.01, its state on the GPU):
// the host's ptv2-step (bench/bench_common.hpp's Trainer) with the same seeds, changed only in
// the device argument, on the padded layout. Every timed call ends with a device
// synchronisation.
#include <cstdint>
#include <string>
#include <vector>

#include <deepprompt/models/bert_config.hpp>

namespace bench {

struct DeviceWorkload {
  std::string workload;  // forward | ptv2-step
  deepprompt::BertDynamicConfig cfg;
  deepprompt::index_t prefix = 100, labels = 2;
  double dropout = 0.1;
  bool tf32 = false;  // TF32 tensor-core GEMMs (cuda::default_gemm_math)
  int runs = 3, warmup = 1;
  std::uint64_t seed = 0;
};

struct DeviceTimes {
  std::vector<double> ms;  // the timed calls
  std::string device;      // the GPU's name
  double memory_mib = 0;   // device memory held by the pool after the last call
};

/// Runs `w` on the first CUDA device with the batch (ids, mask: (B, T) host tensors, labels (B)).
/// Throws deepprompt::Error without a device or when a CUDA call fails.
DeviceTimes run_cuda_workload(const DeviceWorkload& w, const deepprompt::Tensor<std::int64_t, 2>& ids,
                              const deepprompt::Tensor<std::int64_t, 2>& mask,
                              const deepprompt::Tensor<std::int64_t, 1>& labels);

}  // namespace bench
