#pragma once
// A small encoder block with a P-Tuning v2 key/value prefix, on any device D: embedding,
// multi-head attention (prefix, padding mask, dropout), feed-forward, two layer norms and a
// cross-entropy over the hidden units. tests/unit/test_nn_device.cpp builds it on Cpu and on a
// host-memory test device, tests/cuda/ops.cu on Cpu and Cuda, and both compare the loss and
// every parameter's gradient (loss_and_grads). Weights come from the generator given; the prefix
// from seeds 5, 6.
#include <cstdint>
#include <string>
#include <vector>

#include "deepprompt/core/init.hpp"
#include "deepprompt/nn/attention.hpp"
#include "deepprompt/nn/embedding.hpp"
#include "deepprompt/nn/feed_forward.hpp"
#include "deepprompt/nn/norm.hpp"
#include "deepprompt/ops/cross_entropy.hpp"

namespace encoder_block {

namespace dp = deepprompt;
using dp::index_t;

constexpr index_t kVocab = 40, kC = 16, kHeads = 4, kPrefix = 3;

/// requires: D a device policy whose kernels are visible here.
template <class D>
struct Block {
  dp::Embedding<float, D> embed;
  dp::MultiHeadAttention<float, D> attn;
  dp::FeedForward<float, D> ff;
  dp::LayerNorm<float, D> ln1, ln2;
  dp::Parameter<float, 3, D> prefix_k, prefix_v;  // (H, P, C / H)

  explicit Block(dp::Generator& g)
      : embed(kVocab, kC, g, 0),
        attn(kC, kHeads, kC / kHeads, true, g),
        ff(kC, 2 * kC, dp::Activation::gelu, false, true, g, 0.1),
        ln1(kC),
        ln2(kC),
        prefix_k("prefix_k", dp::copy_to<D>(uniform(5))),
        prefix_v("prefix_v", dp::copy_to<D>(uniform(6))) {}

  static dp::Tensor<float, 3> uniform(std::uint64_t seed) {  // (H, P, C / H) in [-1, 1)
    dp::Tensor<float, 3> t({kHeads, kPrefix, kC / kHeads});
    dp::Generator g(seed);
    dp::init::uniform(t, -1.0, 1.0, g);
    return t;
  }

  template <class V>
  void visit(V&& v) {
    v("embed", embed), v("attn", attn), v("ff", ff), v("ln1", ln1), v("ln2", ln2);
    v("prefix_k", prefix_k), v("prefix_v", prefix_v);
  }

  // ids, targets: (B, T) on the host; keep: the 0/1 padding mask (B, T).
  dp::Var<float, 0, D> loss(const dp::Tensor<std::int64_t, 2>& ids, const dp::Tensor<int, 2>& keep,
                            const dp::Tensor<std::int64_t, 2>& targets, dp::Generator& gen) const {
    auto x = embed(ids);  // (B, T, C)
    dp::AttentionCall<float, D> call;
    call.mask = dp::copy_to<D>(dp::attention_mask<float>(keep));
    call.prefix = dp::KVPrefix<float, D>::shared(prefix_k, prefix_v);
    call.dropout = 0.1, call.generator = &gen, call.training = true;
    auto h = ln1(x + attn.forward(x, call));
    auto y = ln2(h + ff.forward(h, &gen, true));
    return dp::cross_entropy(y, targets);  // the C hidden units as classes
  }
};

/// The block's loss on a fixed batch and every trainable parameter's gradient (the backbone
/// frozen, only the prefix trained, when `frozen_backbone`), as host vectors through
/// values(tensor) (the device's copy to the host).
template <class D, class Values>
std::vector<std::vector<float>> loss_and_grads(bool frozen_backbone, Values&& values) {
  dp::Generator init(42);
  Block<D> block(init);
  if (frozen_backbone) {
    dp::freeze(block);
    dp::unfreeze(block, "prefix_*");
  }
  const auto ids = dp::Tensor<std::int64_t, 2>::from({2, 5}, {3, 0, 17, 39, 3, 8, 8, 1, 0, 0});
  const auto keep = dp::Tensor<int, 2>::from({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const auto targets = dp::Tensor<std::int64_t, 2>::from({2, 5}, {1, 15, 2, 3, 4, 0, 9, 9, -100, -100});
  dp::Generator gen(7);
  auto loss = block.loss(ids, keep, targets, gen);
  loss.backward();
  std::vector<std::vector<float>> out{values(loss.value())};
  dp::for_each_parameter(block, [&](const std::string&, auto& p) {
    out.push_back(p.trainable() ? values(p.grad()) : std::vector<float>{});
  });
  return out;
}

}  // namespace encoder_block
