// deepprompt-bench --device cuda: the workloads of bench/device_bench.hpp on the GPU. Compiled by
// nvcc (DEEPPROMPT_CUDA=ON) and linked into deepprompt-bench.
#include "device_bench.hpp"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>

#include "deepprompt/backend/cuda/kernels.cuh"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "deepprompt/train/optimizer.hpp"

namespace bench {

namespace dp = deepprompt;
using dp::index_t;
using dp::Cuda;

namespace {

template <class F>
std::vector<double> time_device_calls(const DeviceWorkload& w, F&& call) {
  std::vector<double> ms;
  for (int it = 0; it < w.warmup + w.runs; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    dp::cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after a timed call)");
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (it >= w.warmup) ms.push_back(t);
    std::fprintf(stderr, "%s (cuda): %s %d: %.2f ms\n", w.workload.c_str(), it < w.warmup ? "warm-up" : "run",
                 it < w.warmup ? it : it - w.warmup, t);
  }
  return ms;
}

}  // namespace

DeviceTimes run_cuda_workload(const DeviceWorkload& w, const dp::Tensor<std::int64_t, 2>& ids,
                              const dp::Tensor<std::int64_t, 2>& mask, const dp::Tensor<std::int64_t, 1>& labels) {
  if (dp::cuda::device_count() == 0) throw dp::Error("deepprompt-bench --device cuda: no CUDA device on this machine");
  DeviceTimes out;
  cudaDeviceProp prop{};
  dp::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  out.device = prop.name;
  dp::cuda::default_gemm_math() = w.tf32 ? dp::cuda::GemmMath::tf32 : dp::cuda::GemmMath::fp32;
  // the model drawn on the host (Hugging Face's initialisation, as the host workloads), copied
  auto bert = dp::DynamicBert<float>(w.cfg, dp::BertInit{.seed = w.seed}).to<Cuda>();
  dp::BertRun run;
  if (w.workload == "forward") {
    dp::NoGradGuard no_grad;
    out.ms = time_device_calls(w, [&] { (void)bert.forward(ids, mask, {}, run); });
  } else if (w.workload == "ptv2-step") {
    // the host's ptv2-step (bench_common.hpp's Trainer) with DeepPrompt<..., Cuda>: the same seeds
    dp::DeepPromptOptions po;
    po.seed = w.seed + 5;
    const index_t C = w.cfg.hidden;
    dp::PromptedBert model{std::move(bert), dp::DynamicDeepPrompt<float, Cuda>({w.cfg.layers, w.prefix, C}, po)};
    dp::Generator head_gen(w.seed + 3), gen(w.seed + 4);
    const dp::Dropout head_dropout(w.dropout);
    dp::Linear<float, Cuda> head(w.labels, C, true, head_gen, 0.02);
    auto params = dp::trainable_parameters<float>(model);
    params.push_back(head.weight);
    params.push_back(*head.bias);
    dp::AdamW<float, Cuda> opt(dp::split_weight_decay(params), {.lr = 1e-2, .weight_decay = 0.01});
    run.training = true;
    run.generator = &gen;
    out.ms = time_device_calls(w, [&] {
      opt.zero_grad();
      auto o = model.forward(ids, mask, {}, run);
      auto loss = dp::cross_entropy(head(head_dropout.forward(o.pooler_output, &gen, true)), labels);
      loss.backward();
      opt.step();
    });
  } else {
    throw dp::Error("deepprompt-bench --device cuda: workload '" + w.workload + "' runs on the host only");
  }
  out.memory_mib = double(dp::device_pool(Cuda{}).stats().bytes_in_use) / (1024.0 * 1024.0);
  return out;
}

}  // namespace bench
