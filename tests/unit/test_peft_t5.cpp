// T5DeepPrompt on the tiny T5 of tests/data/t5/v1_0: separate, optional prefixes for encoder
// self-attention, decoder self-attention and cross-attention through T5's T5Prefix hook; gradient
// checks in double; frozen constants == live prompt; size checks; a frozen backbone under AdamW.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "deepprompt/peft/deep_prompt_t5.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "testing.hpp"

namespace test_peft_t5 {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;

namespace {

// tests/data/t5/v1_0/config.json: d_model 16, d_kv 4, d_ff 32, 2 + 2 layers, 4 heads, vocab 40
using TinyT5 = dp::T5Config<16, 4, 32, 2, 2, 4, 40, dp::T5Act::relu, false, true, 16, 20>;
constexpr index_t kLayers = 2, kInner = 16, kHeads = 4;

template <class T = float>
dp::T5<TinyT5, T> tiny_t5() {
  auto m = dp::T5<TinyT5, T>::from_pretrained(fs::path(DEEPPROMPT_TEST_DATA) / "t5" / "v1_0");
  dp::freeze(m);
  return m;
}

dp::T5Batch t5_batch() {
  dp::T5Batch b;
  b.input_ids = Tensor<std::int64_t, 2>::from({2, 5}, {5, 9, 17, 3, 1, 7, 22, 1, 0, 0});
  b.attention_mask = Tensor<std::int64_t, 2>::from({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  b.decoder_input_ids = Tensor<std::int64_t, 2>::from({2, 4}, {0, 12, 30, 4, 0, 8, 1, 0});
  return b;
}

}  // namespace

TEST_CASE("t5 deep prompt: each attention kind's prefix is optional and goes where it belongs") {
  auto t5 = tiny_t5();
  const auto batch = t5_batch();
  dp::NoGradGuard g;
  const auto none = t5.forward(batch);
  const auto enc_none = none.encoder_last_hidden_state.value().clone(), logits_none = none.logits.value().clone();

  using Prompt = dp::T5DeepPrompt<kLayers, 3, kInner>;
  {  // all three: the same as T5Prefix built by hand from each part's rows
    Prompt all({}, {.init_std = 0.5});
    auto out = dp::forward_with_prompt(t5, all, batch);
    dp::T5Prefix<float> manual{dp::kv_prefixes(all.encoder->rows(), kLayers, kHeads),
                               dp::kv_prefixes(all.decoder->rows(), kLayers, kHeads),
                               dp::kv_prefixes(all.cross->rows(), kLayers, kHeads)};
    auto ref = t5.forward(batch, &manual);
    CHECK(dp_test::max_abs_diff(out.logits.value(), ref.logits.value()) == 0.0);
    CHECK(dp_test::max_abs_diff(out.logits.value(), logits_none) > 1e-3);
    std::vector<std::string> names;
    dp::for_each_parameter(all, [&](const std::string& n, auto&) { names.push_back(n); });
    CHECK(names == std::vector<std::string>{"encoder.prompt_embeddings", "decoder.prompt_embeddings",
                                            "cross.prompt_embeddings"});
  }
  {  // encoder only: the encoder output moves
    Prompt enc({.encoder = true, .decoder = false, .cross = false}, {.init_std = 0.5});
    CHECK_FALSE(enc.decoder);
    auto out = dp::forward_with_prompt(t5, enc, batch);
    CHECK(dp_test::max_abs_diff(out.encoder_last_hidden_state.value(), enc_none) > 1e-3);
  }
  for (const bool self : {true, false}) {  // decoder self- or cross-attention only: the encoder is untouched
    CAPTURE(self);
    Prompt dec({.encoder = false, .decoder = self, .cross = !self}, {.init_std = 0.5});
    auto out = dp::forward_with_prompt(t5, dec, batch);
    CHECK(dp_test::max_abs_diff(out.encoder_last_hidden_state.value(), enc_none) == 0.0);
    CHECK(dp_test::max_abs_diff(out.logits.value(), logits_none) > 1e-3);
  }
  CHECK_THROWS_AS(Prompt({.encoder = false, .decoder = false, .cross = false}), dp::Error);
}

TEST_CASE("t5 deep prompt: gradient check in double of all three prefixes") {
  auto t5 = tiny_t5<double>();
  const auto batch = t5_batch();
  dp_test::expect_ad(
      [&](auto enc, auto dec, auto crs) {
        dp::T5Prefix<double> p{dp::kv_prefixes(enc, kLayers, kHeads), dp::kv_prefixes(dec, kLayers, kHeads),
                               dp::kv_prefixes(crs, kLayers, kHeads)};
        return t5.forward(batch, &p).logits;
      },
      dp_test::random_tensor<double, 2>({2, kLayers * 2 * kInner}, 51),
      dp_test::random_tensor<double, 2>({3, kLayers * 2 * kInner}, 52),
      dp_test::random_tensor<double, 2>({1, kLayers * 2 * kInner}, 53));
}

TEST_CASE("t5 deep prompt: frozen constants (and fold) give the live prompt's outputs") {
  auto t5 = tiny_t5();
  const auto batch = t5_batch();
  dp::T5DeepPrompt<kLayers, 3, kInner> prompt({}, {.seed = 4, .projection = 6});
  auto live = dp::forward_with_prompt(t5, prompt, batch);
  const auto a = live.logits.value().clone();
  dp::tape().release();
  dp::NoGradGuard g;
  const auto c = prompt.freeze_constants();
  CHECK(c.encoder.size() == std::size_t(kLayers));
  const auto b = t5.forward(batch, &c).logits.value();
  CHECK(dp_test::max_abs_diff(a, b) < 1e-6);
  prompt.fold();
  CHECK_FALSE(prompt.cross->projection);
  CHECK(dp_test::max_abs_diff(dp::forward_with_prompt(t5, prompt, batch).logits.value(), a) < 1e-6);
}

TEST_CASE("t5 deep prompt: sizes are checked against the encoder and the decoder, naming both") {
  auto t5 = tiny_t5();
  dp::DynamicT5DeepPrompt<> three({.layers = 3, .tokens = 2, .hidden = kInner}, {.encoder = false, .decoder = true, .cross = false});
  CHECK_THROWS_WITH_AS(dp::attach(t5, three), "DeepPrompt: the prompt has 3 layers but the T5 decoder has 2",
                       dp::ShapeError);
  dp::DynamicT5DeepPrompt<> wide({.layers = kLayers, .tokens = 2, .hidden = 32});
  CHECK_THROWS_WITH_AS(dp::attach(t5, wide), "DeepPrompt: the prompt's hidden size is 32 but the T5 encoder's is 16",
                       dp::ShapeError);
  dp::DynamicT5DeepPrompt<> ok({.layers = kLayers, .tokens = 2, .hidden = kInner});
  dp::attach(t5, ok);
  CHECK(ok.cross->heads() == kHeads);
}

TEST_CASE("t5 deep prompt: after AdamW steps (dropout on) the frozen T5 is bitwise unchanged") {
  auto t5 = tiny_t5();
  t5.train();
  dp::T5DeepPrompt<kLayers, 3, kInner> prompt({}, {.prefix_dropout = 0.1});
  dp::T5Batch batch = t5_batch();
  batch.labels = batch.decoder_input_ids.clone();
  batch.decoder_input_ids = {};
  std::vector<Tensor<float, 1>> before;
  dp::for_each_parameter(t5, [&](const std::string&, auto& p) {
    before.push_back(p.value().clone().template reshape<1>({p.size()}));
  });
  const auto cross0 = prompt.cross->prompt_embeddings->value().clone();
  dp::AdamW opt(dp::trainable_parameters<float>(prompt), {.lr = 1e-2});
  CHECK(opt.params().size() == 3);
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    auto out = dp::forward_with_prompt(t5, prompt, batch);
    out.loss->backward();
    opt.step();
  }
  std::size_t i = 0;
  bool same = true;
  dp::for_each_parameter(t5, [&](const std::string&, auto& p) {
    same = same && std::memcmp(p.value().data(), before[i++].data(), sizeof(float) * std::size_t(p.size())) == 0;
  });
  CHECK(same);
  CHECK(dp_test::max_abs_diff(cross0, prompt.cross->prompt_embeddings->value()) > 1e-3);
}

}  // namespace test_peft_t5
