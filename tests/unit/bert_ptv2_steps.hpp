#pragma once
// P-Tuning v2 training steps on a Bert of any device D, for the device tests: the backbone
// frozen, prompt rows (P, L * 2 * C) viewed as per-layer key/value prefixes with prefix dropout
// per example (repeat_rows, dropout, kv_prefixes), hidden and attention dropout 0.1, a linear
// head on the pooled output, cross-entropy, clip_grad_norm(1) and AdamW with its state on D.
// tests/unit/test_bert_device.cpp runs them on Cpu and a host-memory test device,
// tests/cuda/ops.cu on Cpu and Cuda, and both compare the trajectories.
#include <cstdint>
#include <vector>

#include "deepprompt/core/init.hpp"
#include "deepprompt/models/bert.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/peft/prefix_rows.hpp"
#include "deepprompt/train/clip_grad.hpp"
#include "deepprompt/train/optimizer.hpp"

namespace bert_ptv2 {

namespace dp = deepprompt;
using dp::index_t;

template <class T, std::size_t R, class D>
std::vector<float> host_values(const dp::Tensor<T, R, D>& t) {
  const auto h = dp::to_host(t);
  return std::vector<float>(h.data(), h.data() + h.size());
}

/// What train() saw: the training losses, the evaluation loss (no dropout) before and after,
/// and the prompt's final values.
struct Trajectory {
  std::vector<float> losses;
  float eval_before = 0, eval_after = 0;
  std::vector<float> prompt;
};

/// `steps` steps on `model` (frozen here) for input_ids / attention_mask (B, T), labels b % 2.
/// The prompt (3 tokens) starts from `prompt_init` (3, L * 2 * C) and the head from seed 11;
/// dropout draws from seed 12.
template <class Cfg, class D>
Trajectory train(dp::Bert<Cfg, float, D>& model, const dp::Tensor<std::int64_t, 2>& input_ids,
                 const dp::Tensor<std::int64_t, 2>& attention_mask, const dp::Tensor<float, 2>& prompt_init, int steps) {
  dp::freeze(model);
  model.set_dropout(0.1, 0.1);
  const index_t L = model.cfg.layers, H = model.cfg.heads, C = model.cfg.hidden, B = input_ids.extent(0);
  dp::Parameter<float, 2, D> prompt("prompt", dp::copy_to<D>(prompt_init.clone()));
  dp::Generator init(11), gen(12);
  dp::Linear<float, D> head(2, C, true, init);
  std::vector<dp::ParamRef<float, D>> params{prompt, head.weight, *head.bias};
  dp::AdamW<float, D> opt(params, {.lr = 5e-2});
  dp::Tensor<std::int64_t, 1> labels({B});
  for (index_t b = 0; b < B; ++b) labels(b) = b % 2;
  const auto eval_loss = [&] {
    dp::NoGradGuard no_grad;
    auto out = model.forward(input_ids, attention_mask, {}, {}, dp::kv_prefixes(prompt.var(), L, H));
    return host_values(dp::cross_entropy(head(out.pooler_output), labels).value())[0];
  };
  Trajectory t;
  t.eval_before = eval_loss();
  for (int step = 0; step < steps; ++step) {
    const auto rows = dp::dropout(dp::repeat_rows(prompt.var(), B), 0.1f, gen, true);  // (B, P, L * 2 * C)
    auto out = model.forward(input_ids, attention_mask, {}, {.training = true, .generator = &gen},
                             dp::kv_prefixes(rows, L, H));
    auto loss = dp::cross_entropy(head(out.pooler_output), labels);
    loss.backward();
    dp::clip_grad_norm(opt.params(), 1.0);
    opt.step();
    opt.zero_grad();
    t.losses.push_back(host_values(loss.value())[0]);
  }
  t.eval_after = eval_loss();
  t.prompt = host_values(prompt.value());
  return t;
}

}  // namespace bert_ptv2
