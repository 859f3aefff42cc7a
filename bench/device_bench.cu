// deepprompt-bench --device cuda: the workloads of bench/device_bench.hpp on the GPU. Compiled by
// nvcc (DEEPPROMPT_CUDA=ON) and linked into deepprompt-bench.
#include "device_bench.hpp"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>

#include "deepprompt/backend/cuda/kernels.cuh"
#include "deepprompt/core/init.hpp"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/peft/prefix_rows.hpp"
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
    dp::freeze(bert);
    const index_t L = w.cfg.layers, H = w.cfg.heads, C = w.cfg.hidden, B = ids.extent(0);
    dp::Generator init(w.seed + 5), head_gen(w.seed + 3), gen(w.seed + 4);
    dp::Tensor<float, 2> rows0({w.prefix, L * 2 * C});  // PEFT's prompt embedding: N(0, 1)
    dp::init::normal(rows0, 0.0, 1.0, init);
    dp::Parameter<float, 2, Cuda> prompt("prompt_encoder.embedding.weight", dp::copy_to<Cuda>(rows0));
    dp::Linear<float, Cuda> head(w.labels, C, true, head_gen, 0.02);
    const dp::Dropout head_dropout(w.dropout);
    std::vector<dp::ParamRef<float, Cuda>> params{prompt, head.weight, *head.bias};
    dp::AdamW<float, Cuda> opt(dp::split_weight_decay(params), {.lr = 1e-2, .weight_decay = 0.01});
    run.training = true;
    run.generator = &gen;
    out.ms = time_device_calls(w, [&] {
      opt.zero_grad();
      const auto rows = dp::dropout(dp::repeat_rows(prompt.var(), B), static_cast<float>(w.dropout), gen, true);
      auto o = bert.forward(ids, mask, {}, run, dp::kv_prefixes(rows, L, H));
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
