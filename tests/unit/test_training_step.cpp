// Whole training steps: after a warm-up, a step performs no heap allocation at all (operator
// new is counted), and activations needed only for a frozen weight's gradient are not kept.
#include <doctest/doctest.h>

#include "alloc_counter.hpp"
#include "deepprompt/ops/activation.hpp"
#include "deepprompt/ops/arithmetic.hpp"
#include "deepprompt/ops/concat.hpp"
#include "deepprompt/ops/reduce.hpp"
#include "deepprompt/ops/attention.hpp"
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/embedding.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/ops/norm.hpp"
#include "deepprompt/ops/packing.hpp"
#include "deepprompt/ops/shape.hpp"
#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "deepprompt/train/clip_grad.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "deepprompt/train/schedule.hpp"
#include "testing.hpp"

namespace test_training_step {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;

namespace {

// A one-layer transformer encoder with a P-Tuning v2 key/value prefix: the backbone frozen,
// the prefix and the classifier head trainable.
struct TinyPrefixModel {
  static constexpr index_t B = 2, T = 6, C = 16, H = 2, D = 8, P = 3, V = 20, L = 3;
  dp::Parameter<float, 2> emb, wq, wk, wv, wo, w1, w2, head;
  dp::Parameter<float, 1> ln_g, ln_b, b1, head_b;
  dp::Parameter<float, 3> pk, pv;  // (H, P, D) prefix keys and values
  dp::Tensor<std::int64_t, 2> ids{{B, T}};
  dp::Tensor<std::int64_t, 1> labels{{B}};
  dp::Tensor<float, 2> mask = dp::Tensor<float, 2>::zeros({B, T});  // additive, (B, T)

  TinyPrefixModel() {
    std::uint64_t seed = 1;
    auto w = [&](const char* n, dp::Shape<2> s, bool trainable) {
      return dp::Parameter<float, 2>(n, dp_test::random_tensor<float, 2>(s, seed++, -0.3, 0.3), trainable);
    };
    emb = w("emb", {V, C}, false), wq = w("wq", {C, C}, false), wk = w("wk", {C, C}, false);
    wv = w("wv", {C, C}, false), wo = w("wo", {C, C}, false), w1 = w("w1", {2 * C, C}, false);
    w2 = w("w2", {C, 2 * C}, false), head = w("head", {L, C}, true);
    ln_g = dp::Parameter<float, 1>("ln.g", dp::Tensor<float, 1>::full({C}, 1.f), false);
    ln_b = dp::Parameter<float, 1>("ln.b", dp::Tensor<float, 1>::zeros({C}), false);
    b1 = dp::Parameter<float, 1>("b1", dp::Tensor<float, 1>::zeros({2 * C}), false);
    head_b = dp::Parameter<float, 1>("head.b", dp::Tensor<float, 1>::zeros({L}), true);
    pk = dp::Parameter<float, 3>("pk", dp_test::random_tensor<float, 3>({H, P, D}, seed++), true);
    pv = dp::Parameter<float, 3>("pv", dp_test::random_tensor<float, 3>({H, P, D}, seed++), true);
    for (index_t i = 0; i < ids.size(); ++i) ids.data()[i] = (i * 7) % V;
    labels(0) = 1, labels(1) = 2;
    mask(1, T - 1) = -1e9f;  // one padded key
  }

  dp::Var<float, 0> loss(dp::Generator& gen) const {
    auto heads = [&](const dp::Var<float, 3>& x) {  // (B, T, C) -> (B, H, T, D)
      return dp::permute(dp::reshape<4>(x, {B, T, H, D}), {0, 2, 1, 3});
    };
    auto x = dp::embedding(emb.var(), ids);                                      // (B, T, C)
    dp::AttentionOptions<float> opt;
    opt.mask = mask;
    opt.prefix_k = pk.var(), opt.prefix_v = pv.var();
    auto a = dp::scaled_dot_product_attention(heads(dp::linear(x, wq.var())), heads(dp::linear(x, wk.var())),
                                              heads(dp::linear(x, wv.var())), opt);  // (B, H, T, D)
    auto merged = dp::reshape<3>(dp::permute(a, {0, 2, 1, 3}), {B, T, C});
    auto h = dp::layer_norm(x + dp::linear(merged, wo.var()), ln_g.var(), ln_b.var(), 1e-12f);
    auto f = dp::linear(dp::gelu(dp::linear(h, w1.var(), b1.var())), w2.var());
    auto y = dp::dropout(h + f, 0.1f, gen, true);                                // (B, T, C)
    auto cls = dp::reshape<2>(dp::slice(y, 1, 0, 1), {B, C});                    // the first token
    return dp::cross_entropy(dp::linear(cls, head.var(), head_b.var()), labels);
  }
};

// Runs `step` twice (warm-up), then three times more, checking that those three allocated
// nothing: no operator new or malloc, no new block for the memory pool or the tape's arena.
// `loss`: where step writes its loss, which must fall.
template <class F>
void check_warm_steps_allocate_nothing(F&& step, const float& loss) {
  step();
  const float first = loss;
  step();
  const auto heap = dp_test::heap_allocations();
  const auto pool = dp::MemoryPool::cpu().stats().system_allocations;
  const auto arena = dp::tape().arena().system_allocations();
  for (int i = 0; i < 3; ++i) step();
  CHECK(dp_test::heap_allocations() - heap == 0);
  CHECK(dp::MemoryPool::cpu().stats().system_allocations == pool);
  CHECK(dp::tape().arena().system_allocations() == arena);
  CHECK(loss < first);  // and it learns
}

}  // namespace

TEST_CASE("a warmed-up P-Tuning v2 training step performs no heap allocation") {
  TinyPrefixModel m;
  dp::AdamW<float> opt({m.head, m.head_b, m.pk, m.pv}, {.lr = 1e-2f, .weight_decay = 0.01f});
  dp::LRScheduler sched(opt, dp::schedule::linear_with_warmup(2, 10));
  dp::Generator gen(5);
  float last = 0;
  check_warm_steps_allocate_nothing(
      [&] {
        auto loss = m.loss(gen);
        last = loss.value().item();
        loss.backward();
        dp::clip_grad_norm(opt.params(), 1.0);
        opt.step();
        sched.step();
        opt.zero_grad();
      },
      last);
  CHECK(!m.wq.trainable());  // frozen backbone: no gradient buffer
  CHECK_THROWS_AS(m.wq.grad(), dp::AutodiffError);
}

TEST_CASE("an activation needed only for a frozen weight's gradient is freed in the forward pass") {
  constexpr index_t N = 64, C = 256;
  dp::Parameter<float, 2> x("x", dp_test::random_tensor<float, 2>({N, C}, 3));
  auto in_use_after_forward = [&](bool weight_trainable) {
    dp::Parameter<float, 2> w("w", dp_test::random_tensor<float, 2>({C, C}, 4), weight_trainable);
    const auto before = dp::MemoryPool::cpu().stats().bytes_in_use;
    auto loss = [&] {
      auto h = dp::gelu(x.var());  // (N, C): kept by linear only if w needs its gradient
      return dp::sum(dp::linear(h, w.var()));
    }();
    const auto held = dp::MemoryPool::cpu().stats().bytes_in_use - before;
    loss.backward();
    return held;
  };
  const auto frozen = in_use_after_forward(false);
  const auto trainable = in_use_after_forward(true);
  CHECK(trainable - frozen >= N * C * sizeof(float));
}

TEST_CASE("a warmed-up step on packed sequences (unpadded, pairs handed out dynamically) performs no heap allocation") {
  // three sequences of 6, 3 and 1 tokens packed into 10 rows, a shared key/value prefix, attention
  // dropout; the backbone frozen, the prefix trainable (BertRun::unpadded's path, by hand)
  constexpr index_t B = 3, T = 6, C = 16, H = 2, D = 8, P = 3;
  const std::vector<index_t> lengths{6, 3, 1};
  const std::vector<index_t> offsets = dp::sequence_offsets(lengths);
  const index_t N = offsets.back();
  std::uint64_t seed = 20;
  auto frozen = [&](const char* n, dp::Shape<2> sh) {
    return dp::Parameter<float, 2>(n, dp_test::random_tensor<float, 2>(sh, seed++, -0.3, 0.3), false);
  };
  const dp::Parameter<float, 2> wq = frozen("wq", {C, C}), wk = frozen("wk", {C, C}), wv = frozen("wv", {C, C}),
                                wo = frozen("wo", {C, C});
  dp::Parameter<float, 3> pk("pk", dp_test::random_tensor<float, 3>({H, P, D}, seed++), true),
      pv("pv", dp_test::random_tensor<float, 3>({H, P, D}, seed++), true);
  const dp::Var<float, 3> x(dp_test::random_tensor<float, 3>({B, T, C}, seed++));  // (B, T, C), padded
  dp::AdamW<float> opt({pk, pv}, {.lr = 1e-2f});
  dp::Generator gen(7);
  float last = 0;
  auto step = [&] {
    const auto xp = dp::reshape<2>(dp::pack_sequences(x, lengths), dp::Shape<2>{N, C});  // (N, C)
    dp::AttentionOptions<float> o;
    o.prefix_k = pk.var(), o.prefix_v = pv.var();
    o.dropout = 0.1f, o.generator = &gen;
    const auto a = dp::packed_attention(dp::linear(xp, wq.var()), dp::linear(xp, wk.var()), dp::linear(xp, wv.var()),
                                        H, offsets, o);  // (N, C)
    auto loss = dp::sum(dp::mul(dp::linear(a, wo.var()), dp::linear(a, wo.var())));
    last = loss.value().item();
    loss.backward();
    opt.step();
    opt.zero_grad();
  };
  check_warm_steps_allocate_nothing(step, last);
}

TEST_CASE("a warmed-up PromptedBert training step (padded, unpadded, first token only) performs no heap allocation") {
  // the tiny checkpoint of tests/data/bert, a deep prompt with prefix dropout, a classifier on the
  // pooled output; the second example right-padded, so that the unpadded runs pack
  using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;
  const auto ids = dp::Tensor<std::int64_t, 2>::from({2, 5}, {2, 5, 7, 9, 3, 2, 8, 3, 0, 0});
  const auto mask = dp::Tensor<std::int64_t, 2>::from({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const auto labels = dp::Tensor<std::int64_t, 1>::from({2}, {0, 2});
  for (int mode = 0; mode < 3; ++mode) {
    CAPTURE(mode);  // 0: padded, 1: unpadded, 2: unpadded, the last layer on the first tokens only
    dp::PromptedBert model{dp::Bert<TinyCfg>::from_pretrained(std::filesystem::path(DEEPPROMPT_TEST_DATA) / "bert"),
                           dp::DeepPrompt<2, 4, 32>({.prefix_dropout = 0.1})};
    dp::Generator g(1);
    dp::Linear<float> head(3, 32, true, g);
    auto params = dp::trainable_parameters<float>(model);
    params.push_back(head.weight), params.push_back(*head.bias);
    dp::AdamW<float> opt(params, {.lr = 1e-2});
    float last = 0;
    check_warm_steps_allocate_nothing(
        [&] {
          dp::BertRun run{.training = true};
          run.unpadded = mode > 0, run.first_token_only = mode == 2;
          auto out = model.forward(ids, mask, {}, run);
          auto loss = dp::cross_entropy(head(out.pooler_output), labels);
          last = loss.value().item();
          loss.backward();
          opt.step();
          opt.zero_grad();
        },
        last);
  }
}

}  // namespace test_training_step
