// The baselines together on the tiny BERT of tests/data/bert: BERT's input hooks
// (forward_embeds, per-row position offsets), parameter_report() against hand counts, Prefix
// Tuning's defaults, full fine-tuning, the frozen backbone through AdamW steps for every method,
// and central-difference gradient checks in double of every method's parameters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "deepprompt/peft/baselines.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "testing.hpp"

namespace test_peft_baselines {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kL = 2, kC = 32;
const fs::path kBertDir = fs::path(DEEPPROMPT_TEST_DATA) / "bert";

template <class T = float>
dp::Bert<TinyCfg, T> tiny_bert() {
  return dp::Bert<TinyCfg, T>::from_pretrained(kBertDir);
}

template <class T = float>
dp::Linear<T> head_of(std::uint64_t seed = 1) {
  dp::Generator gen(seed);
  return dp::Linear<T>(2, kC, true, gen, 0.3);
}

const dp::SafeTensorsFile& bert_fixture() {
  static const dp::SafeTensorsFile f = dp::SafeTensorsFile::open(kBertDir / "expected.safetensors");
  return f;
}
struct Inputs {
  Tensor<std::int64_t, 2> ids = bert_fixture().load<std::int64_t, 2>("input_ids");
  Tensor<std::int64_t, 2> mask = bert_fixture().load<std::int64_t, 2>("attention_mask");
  Tensor<std::int64_t, 2> types = bert_fixture().load<std::int64_t, 2>("token_type_ids");
};

template <class M>
std::map<std::string, std::vector<char>> snapshot(M& m, bool trainable) {
  std::map<std::string, std::vector<char>> s;
  dp::for_each_parameter(m, [&](const std::string& n, auto& p) {
    if (p.trainable() != trainable) return;
    const char* b = reinterpret_cast<const char*>(p.value().data());
    s[n] = std::vector<char>(b, b + sizeof(*p.value().data()) * std::size_t(p.size()));
  });
  return s;
}

/// Central finite differences in double for the parameters `params` of a model: the loss
/// sum(c * f()) with fixed random weights c; at most `per_tensor` evenly spaced elements of each
/// tensor. The gradient buffers start at 0.25, so that a kernel that assigns instead of
/// accumulating fails (as dp::check_gradients does for op inputs).
template <class F>
void expect_param_ad(const std::vector<dp::ParamRef<double>>& params, F&& f, index_t per_tensor = 40) {
  constexpr double kPrefill = 0.25, kStep = 1e-6, kAtol = 1e-6, kRtol = 1e-5;
  REQUIRE_FALSE(params.empty());
  auto out = f();
  using Out = std::decay_t<decltype(out.value())>;
  Out c(out.shape());
  dp::Generator gen(4242);
  for (index_t i = 0; i < c.size(); ++i) c.data()[i] = 2.0 * gen.uniform() - 1.0;
  for (const auto& p : params) {
    REQUIRE(p.grad != nullptr);
    std::fill_n(p.grad, p.size, kPrefill);
  }
  out.backward(c);
  auto loss = [&] {
    dp::NoGradGuard g;
    const auto y = f().value();
    double s = 0;
    for (index_t i = 0; i < y.size(); ++i) s += y.data()[i] * c.data()[i];
    return s;
  };
  int checked = 0, bad = 0;
  std::ostringstream report;
  for (const auto& p : params) {
    const index_t stride = std::max<index_t>(1, p.size / per_tensor);
    for (index_t j = 0; j < p.size; j += stride) {
      const double saved = p.value[j], h = kStep * std::max(1.0, std::abs(saved));
      p.value[j] = saved + h;
      const double up = loss();
      p.value[j] = saved - h;
      const double down = loss();
      p.value[j] = saved;
      const double numeric = (up - down) / (2 * h), analytic = p.grad[j] - kPrefill;
      ++checked;
      if (!(std::abs(analytic - numeric) <= kAtol + kRtol * std::abs(numeric)) && bad++ < 6)
        report << p.name << "[" << j << "]: autodiff " << analytic << " vs numeric " << numeric << "\n";
    }
  }
  CHECK_MESSAGE(bad == 0, report.str());
  CHECK(checked > 0);
  MESSAGE(checked, " gradient entries of ", params.size(), " tensors checked");
}

}  // namespace

// --- BERT's input hooks ------------------------------------------------------------------------

TEST_CASE("bert hooks: forward_embeds with the looked-up words equals forward") {
  auto bert = tiny_bert();
  const Inputs in;
  dp::NoGradGuard g;
  const auto a = bert.forward(in.ids, in.mask, in.types);
  const auto b = bert.forward_embeds(bert.embeddings.word_embeddings(in.ids), in.mask, in.types);
  CHECK(dp_test::max_abs_diff(a.last_hidden_state.value(), b.last_hidden_state.value()) == 0.0);
  CHECK(dp_test::max_abs_diff(a.pooler_output.value(), b.pooler_output.value()) == 0.0);
  CHECK_THROWS_WITH_AS(bert.forward_embeds(Var<float, 3>(Tensor<float, 3>::zeros({2, 7, 16}))),
                       doctest::Contains("inputs_embeds must be (B, T, 32)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(bert.forward_embeds(bert.embeddings.word_embeddings(in.ids), in.mask,
                                           Tensor<std::int64_t, 2>::zeros({1, 7})),
                       doctest::Contains("token_type_ids must have inputs_embeds' shape"), dp::ShapeError);
}

TEST_CASE("bert hooks: per-row position offsets") {
  auto bert = tiny_bert();
  const Inputs in;
  dp::DeepPrompt<kL, 3, kC> prompt({.heads = 4, .seed = 2});
  dp::NoGradGuard g;
  const auto pre = prompt.prefixes();
  const std::vector<index_t> three{3, 3}, zero{0, 0};
  // offsets {P, P} == Hugging Face's shift by the prefix; {0, 0} == no shift
  const auto shifted = bert.forward(in.ids, in.mask, in.types, {}, pre).last_hidden_state.value().clone();
  const auto by_offsets = bert.forward(in.ids, in.mask, in.types, {.position_offsets = three}, pre);
  CHECK(dp_test::max_abs_diff(shifted, by_offsets.last_hidden_state.value()) == 0.0);
  const auto unshifted = bert.forward(in.ids, in.mask, in.types, {.shift_positions = false}, pre);
  const auto by_zero = bert.forward(in.ids, in.mask, in.types, {.position_offsets = zero}, pre);
  CHECK(dp_test::max_abs_diff(unshifted.last_hidden_state.value(), by_zero.last_hidden_state.value()) == 0.0);
  // mixed: each row as it would be alone with its own offset
  const std::vector<index_t> mixed{3, 0};
  const auto both = bert.forward(in.ids, in.mask, in.types, {.position_offsets = mixed}, pre).last_hidden_state.value();
  for (index_t b = 0; b < 2; ++b) {
    CHECK(std::memcmp(both.data() + b * 7 * kC, (b == 0 ? shifted : unshifted.last_hidden_state.value()).data() + b * 7 * kC,
                      sizeof(float) * 7 * kC) == 0);
  }
  const std::vector<index_t> one{0};
  CHECK_THROWS_WITH_AS(bert.forward(in.ids, in.mask, {}, {.position_offsets = one}),
                       doctest::Contains("1 position offsets for a batch of 2 rows"), dp::ShapeError);
  const std::vector<index_t> far{0, 6};
  CHECK_THROWS_WITH_AS(bert.forward(in.ids, in.mask, {}, {.position_offsets = far}),
                       doctest::Contains("row 1 starts at position 6 and needs 13 positions"), dp::ShapeError);
}

// --- parameter_report --------------------------------------------------------------------------

TEST_CASE("parameter_report: trainable / total and trainable-state bytes against hand counts, every method") {
  // tiny BERT: embeddings 99*32 + 12*32 + 2*32 + 64 = 3680; per layer q, k, v 3*1056, attention
  // output 1056 + 64, intermediate 64*32 + 64, output 32*64 + 32 + 64 = 8544; pooler 1056
  constexpr index_t kBert = 3680 + 2 * 8544 + 1056, kHead = 2 * 32 + 2;
  static_assert(kBert == 21824);
  auto head = head_of();
  struct Row {
    std::string method;
    index_t trainable;  // the method's own parameters (the head's 66 come on top)
    index_t total;
    dp::ParameterReport got;
  };
  std::vector<Row> rows;
  auto add = [&](std::string method, index_t trainable, index_t total, dp::ParameterReport r) {
    rows.push_back({std::move(method), trainable, total, std::move(r)});
  };
  {
    dp::PromptedBert m{tiny_bert(), dp::PromptTuning<4, kC>()};
    add("Prompt Tuning", 4 * 32, kBert + 128, dp::parameter_report(std::tie(m, head), "Prompt Tuning"));
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PTuningV1<4, kC>({.encoder_hidden = 16})};
    const index_t n = 128 + (32 * 16 + 16) + (16 * 16 + 16) + (16 * 32 + 32);  // 1472
    add("P-Tuning (MLP)", n, kBert + n, dp::parameter_report(std::tie(m, head), "P-Tuning (MLP)"));
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PTuningV1<4, kC>({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8})};
    // embedding 128; layer 0, per direction: 32*32 + 32*8 + 2*32; layer 1: 32*16 + 32*8 + 2*32;
    // mlp_head: 16*16 + 16, 16*32 + 32
    const index_t n = 128 + 2 * (1024 + 256 + 64) + 2 * (512 + 256 + 64) + 272 + 544;  // 5296
    add("P-Tuning (LSTM)", n, kBert + n, dp::parameter_report(std::tie(m, head), "P-Tuning (LSTM)"));
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PrefixTuning<kL, 4, kC>()};
    const index_t n = 4 * 32 + (32 * 512 + 512) + (512 * 128 + 128);  // 82688
    add("Prefix Tuning", n, kBert + n, dp::parameter_report(std::tie(m, head), "Prefix Tuning"));
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::DeepPrompt<kL, 4, kC>()};
    add("P-Tuning v2", 4 * 128, kBert + 512, dp::parameter_report(std::tie(m, head), "P-Tuning v2"));
  }
  {
    dp::LoraBert m{tiny_bert(), {.r = 4, .alpha = 8}};
    add("LoRA", 4 * (4 * 32 + 32 * 4), kBert + 1024, dp::parameter_report(std::tie(m, head), "LoRA"));
  }
  {
    auto m = tiny_bert();
    CHECK(dp::full_finetuning(m) == 5 + 2 * 16 + 2);  // parameter tensors: embeddings, layers, pooler
    add("full fine-tuning", kBert, kBert, dp::parameter_report(std::tie(m, head), "full fine-tuning"));
  }
  for (const auto& r : rows) {
    CAPTURE(r.method);
    CHECK(r.got.method == r.method);
    CHECK(r.got.trainable == r.trainable + kHead);
    CHECK(r.got.total == r.total + kHead);
    CHECK(r.got.percent() == doctest::Approx(100.0 * double(r.trainable + kHead) / double(r.total + kHead)));
    CHECK(r.got.parameter_bytes == 4 * std::size_t(r.total + kHead));
    CHECK(r.got.trainable_value_bytes == 4 * std::size_t(r.trainable + kHead));
    CHECK(r.got.gradient_bytes == 4 * std::size_t(r.trainable + kHead));
    MESSAGE(r.got);
  }
  // the AdamW moments, padded per tensor to 64 bytes as the optimiser lays them out: LoRA's eight
  // tensors hold 128 floats each; the head's (2, 32) weight 64 and its bias 2 -> 16
  const auto& lora = rows[5].got;
  CHECK(lora.optimizer_bytes == 2 * 4 * std::size_t(8 * 128 + 64 + 16));
  CHECK(lora.trainable_state_bytes() == 4360 + 4360 + 8832);
  CHECK(lora.str().rfind("LoRA: trainable 1,090 / 22,914 parameters (4.757%); trainable state 17,552 B (17.1 KiB", 0) ==
        0);
  // and the optimiser agrees
  dp::LoraBert m{tiny_bert(), {.r = 4, .alpha = 8}};
  auto params = dp::trainable_parameters<float>(m);
  params.push_back(head.weight), params.push_back(*head.bias);
  dp::AdamW opt(params);
  CHECK(std::size_t(2 * opt.state_size()) * 4 == lora.optimizer_bytes);
  // a single module, without a tuple
  CHECK(dp::parameter_report(m, "LoRA").total == kBert + 1024);
}

// --- Prefix Tuning and full fine-tuning ------------------------------------------------------------

TEST_CASE("prefix tuning: a DeepPrompt reparameterised with width 512 by default, saved as PEFT's PREFIX_TUNING") {
  dp::PrefixTuning<kL, 4, kC> p;
  REQUIRE(p.projection);
  CHECK(p.projection_width() == 512);
  CHECK(p.projection->first.weight.shape() == dp::Shape<2>{512, kC});
  CHECK(p.projection->second.weight.shape() == dp::Shape<2>{kL * 2 * kC, 512});
  dp::PrefixTuning<kL, 4, kC> narrow({.projection = 16});
  CHECK(narrow.projection_width() == 16);
  auto dyn = dp::DynamicPrefixTuning<>({.layers = kL, .tokens = 4, .hidden = kC});
  CHECK(dyn.projection_width() == 512);
  dp::PromptedBert model{tiny_bert(), std::move(p)};
  const auto j = model.prompt.peft_config();
  CHECK(j["peft_type"] == "PREFIX_TUNING");
  CHECK(j["prefix_projection"] == true);
  CHECK(j["encoder_hidden_size"] == 512);
  const Inputs in;
  dp::NoGradGuard g;
  const auto before = model.forward(in.ids, in.mask).pooler_output.value().clone();
  model.prompt.fold();
  CHECK(dp_test::max_abs_diff(before, model.forward(in.ids, in.mask).pooler_output.value()) < 1e-5);
  CHECK(model.prompt.peft_config()["encoder_hidden_size"] == 512);
}

TEST_CASE("full fine-tuning: every parameter trains through the same API") {
  auto bert = tiny_bert();
  dp::freeze(bert);
  dp::full_finetuning(bert);
  auto head = head_of();
  const Inputs in;
  const auto before = snapshot(bert, true);
  CHECK(before.size() == 39);
  auto params = dp::trainable_parameters<float>(bert);
  params.push_back(head.weight), params.push_back(*head.bias);
  dp::AdamW opt(params, {.lr = 1e-3});
  auto logits = head(bert.forward(in.ids, in.mask, in.types, {.training = true}).pooler_output);
  logits.backward(dp_test::random_tensor<float, 2>({2, 2}, 3));
  opt.step();
  const auto after = snapshot(bert, true);
  int changed = 0;
  for (const auto& [n, v] : after) changed += v != before.at(n);
  CHECK(changed == 39);
}

// --- the frozen backbone, every method -------------------------------------------------------------

TEST_CASE("every method: after AdamW steps the backbone is bitwise unchanged and the method's parameters moved") {
  const Inputs in;
  auto train = [&](auto& model, auto&& forward, const char* method) {
    CAPTURE(method);
    auto head = head_of();
    const auto frozen = snapshot(model, false), trainable = snapshot(model, true);
    CHECK(frozen.size() == 39);  // the whole backbone
    auto params = dp::trainable_parameters<float>(model);
    params.push_back(head.weight), params.push_back(*head.bias);
    dp::AdamW opt(params, {.lr = 1e-2, .weight_decay = 0.01});
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      head(forward(model)).backward(dp_test::random_tensor<float, 2>({2, 2}, 3 + step));
      opt.step();
    }
    CHECK(snapshot(model, false) == frozen);
    const auto now = snapshot(model, true);
    REQUIRE(now.size() == trainable.size());
    for (const auto& [n, v] : now) {
      CAPTURE(n);
      CHECK(v != trainable.at(n));
    }
  };
  auto prompted = [&](auto& m) { return m.forward(in.ids, in.mask, in.types, {.training = true}).pooler_output; };
  {
    dp::PromptedBert m{tiny_bert(), dp::PromptTuning<4, kC>()};
    train(m, prompted, "Prompt Tuning");
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PTuningV1<4, kC>({.encoder_hidden = 8})};
    train(m, prompted, "P-Tuning (MLP)");
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PTuningV1<4, kC>({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8,
                                                           .encoder_dropout = 0.1})};
    train(m, prompted, "P-Tuning (LSTM)");
  }
  {
    dp::PromptedBert m{tiny_bert(), dp::PrefixTuning<kL, 4, kC>({.projection = 16})};
    train(m, prompted, "Prefix Tuning");
  }
  {
    dp::LoraBert m{tiny_bert(), {.r = 2, .alpha = 4, .dropout = 0.1, .target_modules = {"query", "value", "dense"}}};
    train(m, prompted, "LoRA");
  }
}

// --- gradient checks in double -----------------------------------------------------------------------

TEST_CASE("every method: central-difference gradient checks in double of its parameters") {
  const Inputs in;
  auto head = head_of<double>();
  dp::freeze(head);
  auto through = [&](auto& model) {
    return [&] { return head(model.forward(in.ids, in.mask, in.types).pooler_output); };
  };
  SUBCASE("Prompt Tuning") {
    dp::PromptedBert m{tiny_bert<double>(), dp::PromptTuning<2, kC, double>()};
    expect_param_ad(dp::trainable_parameters<double>(m), through(m));
  }
  SUBCASE("P-Tuning, MLP encoder") {
    dp::PromptedBert m{tiny_bert<double>(), dp::PTuningV1<2, kC, double>({.encoder_hidden = 3, .init_std = 0.5})};
    expect_param_ad(dp::trainable_parameters<double>(m), through(m));
  }
  SUBCASE("P-Tuning, LSTM encoder") {
    dp::PromptedBert m{tiny_bert<double>(),
                       dp::PTuningV1<2, kC, double>({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 3})};
    auto params = dp::trainable_parameters<double>(m);
    CHECK(params.size() == 1 + 16 + 4);
    expect_param_ad(params, through(m));
  }
  SUBCASE("Prefix Tuning") {
    dp::PromptedBert m{tiny_bert<double>(), dp::PrefixTuning<kL, 2, kC, double>({.projection = 3})};
    expect_param_ad(dp::trainable_parameters<double>(m), through(m));
  }
  SUBCASE("LoRA (B non-zero)") {
    dp::LoraBert m{tiny_bert<double>(), {.r = 2, .target_modules = {"query", "value", "intermediate.dense", "pooler.dense"}}};
    dp::Generator gen(8);
    dp::for_each_linear(m.bert, [&](const std::string&, auto& lin) {
      if (lin.lora) dp::init::uniform(lin.lora->B.value(), -0.3, 0.3, gen);
    });
    expect_param_ad(dp::trainable_parameters<double>(m), through(m));
  }
  SUBCASE("full fine-tuning") {
    auto bert = tiny_bert<double>();
    dp::full_finetuning(bert);
    expect_param_ad(dp::trainable_parameters<double>(bert),
                    [&] { return head(bert.forward(in.ids, in.mask, in.types).pooler_output); }, 6);
  }
}

}  // namespace test_peft_baselines
