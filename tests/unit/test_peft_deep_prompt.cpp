// DeepPrompt<Layers, Tokens, Hidden> (P-Tuning v2 / PEFT prefix tuning) on the tiny BERT of
// tests/data/bert, against PyTorch with the prompt injected as past_key_values
// (tests/fixtures/gen_peft.py -> tests/data/peft): logits and prompt gradients, the position
// shift, the zero prefix, the reparameterisation and fold(), PEFT adapter files, gradient checks
// in double, prefix dropout, run-time size checks, and a frozen backbone through AdamW steps.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepprompt/peft/deep_prompt_bert.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "testing.hpp"

namespace test_peft_deep_prompt {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kL = 2, kP = 4, kC = 32, kH = 4, kD = 8;
using TinyPrompt = dp::DeepPrompt<kL, kP, kC>;

// The compile-time face of the API.
static_assert(TinyPrompt::is_static && TinyPrompt::static_layers == 2 && TinyPrompt::static_hidden == 32);
static_assert(!dp::DynamicDeepPrompt<>::is_static);
static_assert(dp::peft_detail::static_check<dp::DeepPrompt<12, 20, 768>, dp::BertBase::layers, dp::BertBase::hidden>());
static_assert(dp::peft_detail::static_check<dp::DynamicDeepPrompt<>, dp::BertBase::layers, dp::BertBase::hidden>());

const fs::path kBertDir = fs::path(DEEPPROMPT_TEST_DATA) / "bert";
const fs::path kPeftDir = fs::path(DEEPPROMPT_TEST_DATA) / "peft";

const dp::SafeTensorsFile& fixture() {
  static const dp::SafeTensorsFile f = dp::SafeTensorsFile::open(kPeftDir / "expected.safetensors");
  return f;
}
template <std::size_t R, class T = float>
Tensor<T, R> fx(const std::string& name) {
  return fixture().load<T, R>(name);
}
Tensor<std::int64_t, 2> fx_ids(const std::string& name) { return fixture().load<std::int64_t, 2>(name); }

using dp_test::scaled_error;

/// The classification head of the fixture, Linear(C, 2) on the pooled output.
template <class T = float>
dp::Linear<T> fixture_head(bool trainable = true) {
  dp::Linear<T> head;
  head.weight = dp::Parameter<T, 2>("weight", fx<2, T>("classifier.weight"), trainable);
  head.bias.emplace("bias", fx<1, T>("classifier.bias"), trainable);
  return head;
}

template <class T = float>
dp::Bert<TinyCfg, T> tiny_bert() {
  auto b = dp::Bert<TinyCfg, T>::from_pretrained(kBertDir);
  dp::freeze(b);
  return b;
}

struct Inputs {
  Tensor<std::int64_t, 2> ids = fx_ids("input_ids"), mask = fx_ids("attention_mask"), types = fx_ids("token_type_ids");
};

/// Logits of the head on the prompted model's pooled output.
template <class Cfg, class T, class Prompt>
Var<T, 2> logits_of(dp::Bert<Cfg, T>& bert, Prompt& prompt, const dp::Linear<T>& head, const Inputs& in,
                    dp::BertRun run = {}) {
  return head(dp::forward_with_prompt(bert, prompt, in.ids, in.mask, in.types, run).pooler_output);
}

void set_rows(TinyPrompt& p, const Tensor<float, 2>& rows) { p.prompt_embeddings->value().copy_from(rows); }

}  // namespace

TEST_CASE("deep prompt: prompt_embeddings rows are ordered (layer, key/value, head, head_dim) as PEFT's") {
  TinyPrompt p({.heads = kH});
  REQUIRE(p.prompt_embeddings);
  CHECK(p.prompt_embeddings->shape() == dp::Shape<2>{kP, kL * 2 * kC});
  CHECK(p.prompt_embeddings->name() == "prompt_embeddings");
  const auto rows = p.prompt_embeddings->value();
  for (index_t i = 0; i < rows.size(); ++i) rows.data()[i] = float(i);
  auto pre = p.prefixes();
  REQUIRE(pre.size() == std::size_t(kL));
  for (index_t l = 0; l < kL; ++l) {
    const auto& k = pre[std::size_t(l)].k.value();
    const auto& v = pre[std::size_t(l)].v.value();
    REQUIRE(k.shape() == dp::Shape<3>{kH, kP, kD});
    for (index_t h = 0; h < kH; ++h)
      for (index_t t = 0; t < kP; ++t)
        for (index_t d = 0; d < kD; ++d) {
          CHECK(k(h, t, d) == rows(t, ((l * 2 + 0) * kH + h) * kD + d));
          CHECK(v(h, t, d) == rows(t, ((l * 2 + 1) * kH + h) * kD + d));
        }
  }
  dp::tape().release();
  // module view: one parameter with PEFT's name
  std::vector<std::string> names;
  dp::for_each_parameter(p, [&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"prompt_embeddings"});
  CHECK(dp::parameter_count(p) == kP * kL * 2 * kC);
}

TEST_CASE("deep prompt: logits and prompt gradients match PyTorch with the prefix as past_key_values") {
  auto bert = tiny_bert();
  auto head = fixture_head();
  const Inputs in;
  for (const bool shift : {true, false}) {
    CAPTURE(shift);
    const std::string tag = shift ? "plain." : "noshift.";
    TinyPrompt prompt({.shift_positions = shift});
    set_rows(prompt, fx<2>("plain.prompt_embeddings"));
    head.weight.zero_grad(), head.bias->zero_grad();
    auto logits = logits_of(bert, prompt, head, in);
    CHECK(prompt.heads() == kH);  // attach() took the model's
    const double e = scaled_error(logits.value(), fx<2>(tag + "logits"));
    logits.backward(fx<2>("R"));
    const double g = scaled_error(prompt.prompt_embeddings->grad(), fx<2>(tag + "grad.prompt_embeddings"));
    MESSAGE(tag, " logits error ", e, ", prompt gradient relative error ", g);
    CHECK(dp_test::max_abs_diff(logits.value(), fx<2>(tag + "logits")) < 1e-5);
    CHECK(g < 1e-4);
    if (shift) {
      CHECK(scaled_error(head.weight.grad(), fx<2>("plain.grad.classifier.weight")) < 1e-4);
      CHECK(scaled_error(head.bias->grad(), fx<1>("plain.grad.classifier.bias")) < 1e-4);
    }
  }
  // the backbone is frozen: no parameter of it has a gradient buffer
  int trainable = 0;
  dp::for_each_parameter(bert, [&](const std::string&, auto& p) { trainable += p.trainable(); });
  CHECK(trainable == 0);
}

TEST_CASE("deep prompt: a zero prefix is not a no-op") {
  auto bert = tiny_bert();
  auto head = fixture_head(false);
  const Inputs in;
  TinyPrompt zero({.init = dp::PromptInit::zeros});
  dp::NoGradGuard no_grad;
  const auto with_zero = logits_of(bert, zero, head, in).value();
  const auto none = head(bert.forward(in.ids, in.mask, in.types).pooler_output).value();
  CHECK(dp_test::max_abs_diff(with_zero, fx<2>("zero.logits")) < 1e-5);
  CHECK(dp_test::max_abs_diff(none, fx<2>("none.logits")) < 1e-5);
  const double moved = dp_test::max_abs_diff(with_zero, none);
  MESSAGE("zero prefix vs none: logits differ by up to ", moved);
  CHECK(moved > 1e-3);
}

TEST_CASE("deep prompt: the reparameterisation matches PEFT's PrefixEncoder; fold() gives what PEFT saves") {
  auto bert = tiny_bert();
  auto head = fixture_head(false);
  const Inputs in;
  TinyPrompt prompt({.projection = 16});
  REQUIRE(prompt.projection);
  CHECK_FALSE(prompt.prompt_embeddings);
  std::vector<std::string> names;
  dp::for_each_parameter(prompt, [&](const std::string& n, auto& p) {
    names.push_back(n);
    p.value().copy_from(fx<std::decay_t<decltype(p.value())>::rank, float>("proj." + n.substr(11)));
  });
  CHECK(names == std::vector<std::string>{"projection.embedding.weight", "projection.transform.0.weight",
                                          "projection.transform.0.bias", "projection.transform.2.weight",
                                          "projection.transform.2.bias"});
  auto logits = logits_of(bert, prompt, head, in);
  CHECK(dp_test::max_abs_diff(logits.value(), fx<2>("proj.logits")) < 1e-5);
  logits.backward(fx<2>("R"));
  auto& pr = *prompt.projection;
  const double ge = scaled_error(pr.embedding.grad(), fx<2>("proj.grad.embedding.weight"));
  const double g0 = scaled_error(pr.first.weight.grad(), fx<2>("proj.grad.transform.0.weight"));
  const double gb0 = scaled_error(pr.first.bias->grad(), fx<1>("proj.grad.transform.0.bias"));
  const double g2 = scaled_error(pr.second.weight.grad(), fx<2>("proj.grad.transform.2.weight"));
  const double gb2 = scaled_error(pr.second.bias->grad(), fx<1>("proj.grad.transform.2.bias"));
  MESSAGE("projection gradients, relative errors: ", ge, " ", g0, " ", gb0, " ", g2, " ", gb2);
  CHECK(std::max({ge, g0, gb0, g2, gb2}) < 1e-4);

  // fold(): one plain prompt_embeddings, the same outputs
  dp::NoGradGuard no_grad;
  const auto before = logits_of(bert, prompt, head, in).value().clone();
  prompt.fold();
  CHECK_FALSE(prompt.projection);
  REQUIRE(prompt.prompt_embeddings);
  CHECK(prompt.prompt_embeddings->trainable());
  CHECK(prompt.projection_width() == 16);
  CHECK(dp_test::max_abs_diff(prompt.prompt_embeddings->value(), fx<2>("proj.folded")) < 1e-5);
  const auto after = logits_of(bert, prompt, head, in).value();
  CHECK(dp_test::max_abs_diff(before, after) < 1e-6);
}

TEST_CASE("deep prompt: reads a PEFT PREFIX_TUNING adapter directory") {
  auto bert = tiny_bert();
  auto head = fixture_head(false);
  const Inputs in;
  const fs::path dir = kPeftDir / "adapter";
  const auto file = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
  head.weight.value().copy_from(file.load<float, 2>("base_model.classifier.weight"));
  head.bias->value().copy_from(file.load<float, 1>("base_model.classifier.bias"));
  dp::NoGradGuard no_grad;

  auto fixed = TinyPrompt::load_peft(dir);
  CHECK(fixed.heads() == kH);
  CHECK(fixed.projection_width() == 16);
  CHECK(dp_test::max_abs_diff(logits_of(bert, fixed, head, in).value(), fx<2>("proj.logits")) < 1e-5);

  auto any = dp::DynamicDeepPrompt<>::load_peft(dir);
  CHECK(any.layers() == kL);
  CHECK(any.tokens() == kP);
  CHECK(any.hidden() == kC);
  CHECK(dp_test::max_abs_diff(logits_of(bert, any, head, in).value(), fx<2>("proj.logits")) < 1e-5);

  // a static prompt of other sizes: the field and both values are named
  CHECK_THROWS_WITH_AS((dp::DeepPrompt<3, 4, 32>::load_peft(dir)),
                       doctest::Contains("field \"num_layers\" is 2 but DeepPrompt<3, 4, 32> has Layers = 3"),
                       dp::FormatError);
  CHECK_THROWS_WITH_AS((dp::DeepPrompt<2, 5, dp::dynamic>::load_peft(dir)),
                       doctest::Contains("field \"num_virtual_tokens\" is 4 but DeepPrompt<2, 5, dynamic> has Tokens = 5"),
                       dp::FormatError);
  CHECK_THROWS_AS(TinyPrompt::load_peft(kPeftDir / "no-such-adapter"), dp::IoError);
}

TEST_CASE("deep prompt: save_peft writes PEFT's files atomically; load_peft reads them back bit-exact") {
  const fs::path dir = fs::temp_directory_path() / ("dp_peft_save_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  TinyPrompt prompt({.seed = 7, .projection = 8});
  prompt.set_heads(kH);
  const auto rows = [&] {
    dp::NoGradGuard g;
    return prompt.rows().value().clone();
  }();
  dp::PeftSaveOptions o;
  o.base_model_name_or_path = "bert-tiny";
  dp::Linear<float> head = fixture_head(false);
  o.extra.push_back(dp::entry("base_model.classifier.weight", head.weight.value()));
  prompt.save_peft(dir, o);

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"});  // no temp files

  const auto j = nlohmann::json::parse(dp::read_text_file(dir / "adapter_config.json"));
  CHECK(j["peft_type"] == "PREFIX_TUNING");
  CHECK(j["task_type"] == "SEQ_CLS");
  CHECK(j["num_virtual_tokens"] == kP);
  CHECK(j["token_dim"] == kC);
  CHECK(j["num_transformer_submodules"] == 1);
  CHECK(j["num_attention_heads"] == kH);
  CHECK(j["num_layers"] == kL);
  CHECK(j["encoder_hidden_size"] == 8);
  CHECK(j["prefix_projection"] == true);
  CHECK(j["inference_mode"] == true);
  CHECK(j["base_model_name_or_path"] == "bert-tiny");

  const auto st = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
  CHECK(st.info("prompt_embeddings").shape == std::vector<index_t>{kP, kL * 2 * kC});
  CHECK(st.contains("base_model.classifier.weight"));
  CHECK(st.metadata().at("format") == "pt");

  auto back = TinyPrompt::load_peft(dir);
  CHECK(std::memcmp(back.prompt_embeddings->value().data(), rows.data(), sizeof(float) * rows.size()) == 0);
  CHECK(back.projection_width() == 8);
  fs::remove_all(dir);
}

TEST_CASE("deep prompt: run-time sizes are checked against the model, naming both") {
  auto bert = tiny_bert();
  const Inputs in;
  dp::DynamicDeepPrompt<> three({.layers = 3, .tokens = 4, .hidden = 32});
  CHECK_THROWS_WITH_AS(dp::attach(bert, three), "DeepPrompt: the prompt has 3 layers but the BERT model has 2",
                       dp::ShapeError);
  dp::DeepPrompt<2, 4, dp::dynamic> wide({.hidden = 64});
  CHECK_THROWS_WITH_AS(dp::attach(bert, wide), "DeepPrompt: the prompt's hidden size is 64 but the BERT model's is 32",
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS((dp::DeepPrompt<2, 4, 32>({.layers = 3})), doctest::Contains("PromptSizes::layers = 3 differs"),
                       dp::ShapeError);
  CHECK_THROWS_AS(dp::DynamicDeepPrompt<>({.layers = 2, .tokens = 4}), dp::ShapeError);  // no hidden
  CHECK_THROWS_WITH_AS(TinyPrompt({.heads = 5}), doctest::Contains("5 attention heads do not divide the hidden size 32"),
                       dp::ShapeError);
  TinyPrompt other_heads({.heads = 8});
  CHECK_THROWS_WITH_AS(dp::attach(bert, other_heads), doctest::Contains("made for 8 attention heads, the model has 4"),
                       dp::ShapeError);
  TinyPrompt unattached;
  CHECK_THROWS_WITH_AS(unattached.prefixes(), doctest::Contains("attention heads is not known yet"), dp::Error);
  // too many positions: 7 tokens after a 6-token prefix need 13 > 12
  dp::DeepPrompt<2, 6, 32> long_prompt;
  CHECK_THROWS_AS(dp::forward_with_prompt(bert, long_prompt, in.ids, in.mask), dp::ShapeError);
  dp::tape().release();
  long_prompt.set_shift_positions(false);  // without the shift they fit
  dp::NoGradGuard g;
  CHECK_NOTHROW(dp::forward_with_prompt(bert, long_prompt, in.ids, in.mask));
}

TEST_CASE("deep prompt: gradient checks in double of prompt_embeddings and of the reparameterisation") {
  auto bert = tiny_bert<double>();
  auto head = fixture_head<double>(false);
  const Inputs in;
  auto logits = [&](const std::vector<dp::KVPrefix<double>>& pre) {
    return head(bert.forward(in.ids, in.mask, in.types, {}, pre).pooler_output);
  };
  // prompt rows (2 tokens) -> per-layer prefixes -> BERT -> logits
  dp_test::expect_ad([&](auto rows) { return logits(dp::kv_prefixes(rows, kL, kH)); },
                     dp_test::random_tensor<double, 2>({2, kL * 2 * kC}, 11));
  // the projection (width 3): embedding, transform.0, transform.2
  dp_test::expect_ad(
      [&](auto emb, auto w0, auto b0, auto w2, auto b2) {
        return logits(dp::kv_prefixes(dp::prefix_projection(emb, w0, b0, w2, b2), kL, kH));
      },
      dp_test::random_tensor<double, 2>({2, kC}, 12), dp_test::random_tensor<double, 2>({3, kC}, 13),
      dp_test::random_tensor<double, 1>({3}, 14), dp_test::random_tensor<double, 2>({kL * 2 * kC, 3}, 15),
      dp_test::random_tensor<double, 1>({kL * 2 * kC}, 16));
  // per-example rows (as with prefix dropout)
  dp_test::expect_ad([&](auto rows) { return logits(dp::kv_prefixes(rows, kL, kH)); },
                     dp_test::random_tensor<double, 3>({2, 2, kL * 2 * kC}, 17));
  // rows with THUDM's prefix dropout (a fixed stream per evaluation), as DeepPrompt::prefixes does
  dp_test::expect_ad(
      [&](auto rows) {
        dp::Generator gen(99);
        return logits(dp::kv_prefixes(dp::dropout(dp::repeat_rows(rows, 2), 0.3, gen, true), kL, kH));
      },
      dp_test::random_tensor<double, 2>({2, kL * 2 * kC}, 18));
}

TEST_CASE("deep prompt: prefix dropout (THUDM) draws one mask per example while training; none in eval") {
  TinyPrompt p({.heads = kH, .seed = 3, .prefix_dropout = 0.25});
  const auto rows = p.prompt_embeddings->value();
  {
    dp::NoGradGuard g;
    auto eval = p.prefixes();
    CHECK_FALSE(eval[0].k.value().empty());  // shared, untouched
    auto train = p.prefixes({.training = true, .batch = 3});
    REQUIRE(train[1].k_batch.shape() == dp::Shape<4>{3, kH, kP, kD});
    int dropped = 0, kept = 0;
    bool rows_differ = false;
    for (index_t b = 0; b < 3; ++b)
      for (index_t h = 0; h < kH; ++h)
        for (index_t t = 0; t < kP; ++t)
          for (index_t d = 0; d < kD; ++d) {
            const float x = rows(t, ((1 * 2 + 0) * kH + h) * kD + d), y = train[1].k_batch.value()(b, h, t, d);
            if (y == 0.0f) {
              ++dropped;
            } else {
              ++kept;
              CHECK(y == doctest::Approx(x / 0.75f));
            }
            if (b > 0 && (y == 0.0f) != (train[1].k_batch.value()(0, h, t, d) == 0.0f)) rows_differ = true;
          }
    CHECK(rows_differ);
    const double frac = double(dropped) / double(dropped + kept);
    CHECK(frac > 0.15);
    CHECK(frac < 0.35);
  }
  // through the model (BERT itself in eval mode): the dropped prefix changes the output, eval is deterministic
  auto bert = tiny_bert();
  const Inputs in;
  dp::NoGradGuard g;
  const auto e1 = dp::forward_with_prompt(bert, p, in.ids, in.mask).pooler_output.value().clone();
  const auto e2 = dp::forward_with_prompt(bert, p, in.ids, in.mask).pooler_output.value();
  CHECK(dp_test::max_abs_diff(e1, e2) == 0.0);
  const auto t1 = bert.forward(in.ids, in.mask, {}, {}, p.prefixes({.training = true, .batch = 2})).pooler_output.value();
  CHECK(dp_test::max_abs_diff(e1, t1) > 1e-4);
}

TEST_CASE("deep prompt: after AdamW steps the frozen backbone is bitwise unchanged") {
  dp::PromptedBert model{dp::Bert<TinyCfg>::from_pretrained(kBertDir), TinyPrompt({.prefix_dropout = 0.1})};
  auto head = fixture_head();
  const Inputs in;
  std::vector<Tensor<float, 1>> before;
  dp::for_each_parameter(model.bert, [&](const std::string&, auto& p) {
    before.push_back(p.value().clone().template reshape<1>({p.size()}));
  });
  const auto prompt0 = model.prompt.prompt_embeddings->value().clone();
  const auto head0 = head.weight.value().clone();
  auto params = dp::trainable_parameters<float>(model);
  REQUIRE(params.size() == 1);  // prompt.prompt_embeddings only
  CHECK(params[0].name == "prompt.prompt_embeddings");
  params.push_back(head.weight), params.push_back(*head.bias);
  dp::AdamW opt(params, {.lr = 1e-2});
  for (int step = 0; step < 4; ++step) {
    opt.zero_grad();
    auto logits = head(model.forward(in.ids, in.mask, in.types, {.training = true}).pooler_output);
    logits.backward(fx<2>("R"));
    opt.step();
  }
  std::size_t i = 0;
  bool same = true;
  dp::for_each_parameter(model.bert, [&](const std::string& name, auto& p) {
    const bool eq = std::memcmp(p.value().data(), before[i++].data(), sizeof(float) * std::size_t(p.size())) == 0;
    if (!eq) MESSAGE("changed: ", name);
    same = same && eq;
  });
  CHECK(same);
  CHECK(dp_test::max_abs_diff(prompt0, model.prompt.prompt_embeddings->value()) > 1e-3);
  CHECK(dp_test::max_abs_diff(head0, head.weight.value()) > 1e-3);
}

}  // namespace test_peft_deep_prompt
