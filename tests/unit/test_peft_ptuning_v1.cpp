// P-Tuning v1 (PEFT's P_TUNING: PromptEncoder with an MLP or a bidirectional LSTM + MLP) on the
// tiny BERT of tests/data/bert, against PyTorch (tests/fixtures/gen_peft_baselines.py ->
// tests/data/peft_baselines): PEFT's parameter names, logits and every encoder parameter's
// gradient, fold(), PEFT adapter files, encoder dropout.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepprompt/peft/input_prompt_bert.hpp"
#include "deepprompt/peft/ptuning_v1.hpp"
#include "testing.hpp"

namespace test_peft_ptuning_v1 {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kP = 4, kC = 32;
using TinyPTuning = dp::PTuningV1<kP, kC>;
static_assert(dp::InputPromptLike<TinyPTuning>);

const fs::path kBertDir = fs::path(DEEPPROMPT_TEST_DATA) / "bert";
const fs::path kDir = fs::path(DEEPPROMPT_TEST_DATA) / "peft_baselines";

const dp::SafeTensorsFile& fixture() {
  static const dp::SafeTensorsFile f = dp::SafeTensorsFile::open(kDir / "expected.safetensors");
  return f;
}
template <std::size_t R, class T = float>
Tensor<T, R> fx(const std::string& name) {
  return fixture().load<T, R>(name);
}
Tensor<std::int64_t, 2> fx_ids(const std::string& name) { return fixture().load<std::int64_t, 2>(name); }

using dp_test::scaled_error;

dp::Linear<float> fixture_head(bool trainable = true) {
  dp::Linear<float> head;
  head.weight = dp::Parameter<float, 2>("weight", fx<2>("classifier.weight"), trainable);
  head.bias.emplace("bias", fx<1>("classifier.bias"), trainable);
  return head;
}

dp::Bert<TinyCfg> tiny_bert() {
  auto b = dp::Bert<TinyCfg>::from_pretrained(kBertDir);
  dp::freeze(b);
  return b;
}

struct Inputs {
  Tensor<std::int64_t, 2> ids = fx_ids("input_ids"), mask = fx_ids("attention_mask"), types = fx_ids("token_type_ids");
};

std::vector<std::string> names_of(TinyPTuning& p) {
  std::vector<std::string> names;
  dp::for_each_parameter(p, [&](const std::string& n, auto&) { names.push_back(n); });
  return names;
}

/// Copies the fixture's values `tag` + name into every parameter of `p`.
void load_fixture(TinyPTuning& p, const std::string& tag) {
  dp::for_each_parameter(p, [&](const std::string& n, auto& q) {
    using V = std::decay_t<decltype(q.value())>;
    q.value().copy_from(fx<V::rank>(tag + n));
  });
}

/// Logits, PyTorch parity of logits, prompt rows and every parameter's gradient.
void check_parity(TinyPTuning& p, const std::string& tag) {
  auto bert = tiny_bert();
  auto head = fixture_head();
  const Inputs in;
  auto out = dp::forward_with_prompt(bert, p, in.ids, in.mask, in.types);
  auto logits = head(out.pooler_output);
  const double e = dp_test::max_abs_diff(logits.value(), fx<2>(tag + "logits"));
  CHECK(e < 1e-5);
  {
    dp::NoGradGuard g;
    CHECK(dp_test::max_abs_diff(p.input_embeddings().value(), fx<2>(tag + "prompt_embeddings")) < 1e-5);
  }
  logits.backward(fx<2>("R"));
  double worst = 0;
  int n = 0;
  dp::for_each_parameter(p, [&](const std::string& name, auto& q) {
    using V = std::decay_t<decltype(q.value())>;
    const double g = scaled_error(q.grad(), fx<V::rank>(tag + "grad." + name));
    CAPTURE(name);
    CHECK(g < 1e-4);
    worst = std::max(worst, g);
    ++n;
  });
  MESSAGE(tag, " logits error ", e, "; worst gradient relative error over ", n, " parameters ", worst);
}

}  // namespace

TEST_CASE("p-tuning: the encoders have PEFT's PromptEncoder structure and parameter names") {
  TinyPTuning mlp({.encoder_hidden = 16});
  CHECK(names_of(mlp) == std::vector<std::string>{"embedding.weight", "mlp_head.0.weight", "mlp_head.0.bias",
                                                  "mlp_head.2.weight", "mlp_head.2.bias", "mlp_head.4.weight",
                                                  "mlp_head.4.bias"});
  CHECK(mlp.mlp_head[0].weight.shape() == dp::Shape<2>{16, kC});
  CHECK(mlp.mlp_head[1].weight.shape() == dp::Shape<2>{16, 16});
  CHECK(mlp.mlp_head[2].weight.shape() == dp::Shape<2>{kC, 16});
  CHECK(mlp.peft_config()["encoder_reparameterization_type"] == "MLP");
  CHECK(dp::parameter_count(mlp) == kP * kC + (16 * kC + 16) + (16 * 16 + 16) + (kC * 16 + kC));

  TinyPTuning lstm({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8});
  std::vector<std::string> want{"embedding.weight"};
  for (const char* l : {"_l0", "_l0_reverse", "_l1", "_l1_reverse"})
    for (const char* w : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"})
      want.push_back(std::string("lstm_head.") + w + l);
  for (const char* m : {"mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.2.weight", "mlp_head.2.bias"}) want.push_back(m);
  CHECK(names_of(lstm) == want);
  CHECK(lstm.lstm_head->layers[0][0].weight_ih.shape() == dp::Shape<2>{32, kC});
  CHECK(lstm.lstm_head->layers[1][1].weight_ih.shape() == dp::Shape<2>{32, 16});  // 2h in
  CHECK(lstm.mlp_head[0].weight.shape() == dp::Shape<2>{16, 16});                  // Linear(2h, 2h)
  CHECK(lstm.mlp_head[1].weight.shape() == dp::Shape<2>{kC, 16});                  // Linear(2h, C)
  // torch's default initialisation ranges
  for (float v : lstm.lstm_head->layers[0][0].weight_hh.value()) CHECK(std::abs(v) <= 1.0f / std::sqrt(8.0f));
  for (float v : lstm.mlp_head[1].weight.value()) CHECK(std::abs(v) <= 0.25f);
  // encoder_hidden defaults to the model width
  CHECK(TinyPTuning().options().encoder_hidden == kC);
  CHECK_THROWS_WITH_AS(TinyPTuning({.encoder = dp::PromptEncoderType::lstm, .encoder_layers = 0}),
                       doctest::Contains("encoder_layers >= 1"), dp::Error);
}

TEST_CASE("p-tuning: MLP encoder: logits and every parameter's gradient match PyTorch") {
  TinyPTuning p({.encoder_hidden = 16});
  load_fixture(p, "ptm.");
  check_parity(p, "ptm.");
}

TEST_CASE("p-tuning: LSTM encoder: logits and every parameter's gradient match PyTorch") {
  TinyPTuning p({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8});
  load_fixture(p, "ptl.");
  check_parity(p, "ptl.");
}

TEST_CASE("p-tuning: fold() evaluates the encoder into plain rows: same outputs, what PEFT saves") {
  auto bert = tiny_bert();
  auto head = fixture_head(false);
  const Inputs in;
  TinyPTuning p({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8});
  load_fixture(p, "ptl.");
  dp::NoGradGuard g;
  const auto before = head(dp::forward_with_prompt(bert, p, in.ids, in.mask, in.types).pooler_output).value().clone();
  CHECK_FALSE(p.folded());
  p.fold();
  CHECK(p.folded());
  CHECK(names_of(p) == std::vector<std::string>{"embedding.weight"});
  CHECK(p.embedding.trainable());
  CHECK(dp_test::max_abs_diff(p.embedding.value(), fx<2>("ptl.prompt_embeddings")) < 1e-5);
  const auto after = head(dp::forward_with_prompt(bert, p, in.ids, in.mask, in.types).pooler_output).value();
  CHECK(dp_test::max_abs_diff(before, after) < 1e-6);
  CHECK(dp_test::max_abs_diff(after, fx<2>("ptl.logits")) < 1e-5);
  p.fold();  // no-op
  CHECK(p.folded());
}

TEST_CASE("p-tuning: save_peft writes the encoder's output as PEFT's P_TUNING files; load_peft reads them and PEFT's") {
  const fs::path dir = fs::temp_directory_path() / ("dp_ptv1_save_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto bert = tiny_bert();
  const Inputs in;
  TinyPTuning p({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8});
  load_fixture(p, "ptl.");
  dp::attach(bert, p);
  auto head = fixture_head(false);
  dp::PeftSaveOptions o;
  o.extra = dp::peft_io::head_entries(head, "P_TUNING");
  p.save_peft(dir, o);
  CHECK_FALSE(p.folded());  // saving does not fold the object

  const auto j = nlohmann::json::parse(dp::read_text_file(dir / "adapter_config.json"));
  CHECK(j["peft_type"] == "P_TUNING");
  CHECK(j["encoder_reparameterization_type"] == "LSTM");
  CHECK(j["encoder_hidden_size"] == 8);
  CHECK(j["encoder_num_layers"] == 2);
  CHECK(j["encoder_dropout"] == 0.0);
  CHECK(j["num_virtual_tokens"] == kP);
  CHECK(j["token_dim"] == kC);
  CHECK(j["num_layers"] == 2);
  CHECK(j["num_attention_heads"] == 4);
  CHECK(j["num_transformer_submodules"] == 1);
  const auto st = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
  CHECK(st.names() == std::vector<std::string>{"base_model.classifier.bias", "base_model.classifier.weight",
                                               "prompt_embeddings"});
  CHECK(dp_test::max_abs_diff(st.load<float, 2>("prompt_embeddings"), fx<2>("ptl.prompt_embeddings")) < 1e-5);

  auto back = TinyPTuning::load_peft(dir);
  CHECK(back.folded());
  CHECK(back.options().encoder == dp::PromptEncoderType::lstm);
  CHECK(back.options().encoder_hidden == 8);
  dp::NoGradGuard g;
  CHECK(dp_test::max_abs_diff(head(dp::forward_with_prompt(bert, back, in.ids, in.mask, in.types).pooler_output).value(),
                              fx<2>("ptl.logits")) < 1e-5);
  // saved again: the same config (the encoder's settings were kept)
  const fs::path dir2 = dir / "again";
  back.save_peft(dir2);
  const auto j2 = nlohmann::json::parse(dp::read_text_file(dir2 / "adapter_config.json"));
  CHECK(j2["encoder_reparameterization_type"] == "LSTM");
  CHECK(j2["encoder_hidden_size"] == 8);

  // the generator's PEFT directory
  auto peft = dp::DynamicPTuningV1<>::load_peft(kDir / "adapter_p_tuning");
  CHECK(peft.tokens() == kP);
  CHECK(dp_test::max_abs_diff(head(dp::forward_with_prompt(bert, peft, in.ids, in.mask, in.types).pooler_output).value(),
                              fx<2>("ptl.logits")) < 1e-5);
  // a P_TUNING file is an input prompt: PromptTuning reads it too
  auto as_pt = dp::PromptTuning<kP, kC>::load_peft(kDir / "adapter_p_tuning");
  CHECK(dp_test::max_abs_diff(as_pt.embedding.value(), fx<2>("ptl.prompt_embeddings")) < 1e-5);
  CHECK_THROWS_WITH_AS(TinyPTuning::load_peft(kDir / "adapter_prompt_tuning"),
                       doctest::Contains("field \"peft_type\" is \"PROMPT_TUNING\""), dp::FormatError);
  fs::remove_all(dir);
}

TEST_CASE("p-tuning: encoder dropout between LSTM layers acts only while training") {
  TinyPTuning p({.encoder = dp::PromptEncoderType::lstm, .encoder_hidden = 8, .encoder_dropout = 0.5, .seed = 2});
  dp::NoGradGuard g;
  const auto e1 = p.input_embeddings().value().clone();
  const auto e2 = p.input_embeddings({.training = false}).value();
  CHECK(dp_test::max_abs_diff(e1, e2) == 0.0);
  const auto t1 = p.input_embeddings({.training = true}).value().clone();
  const auto t2 = p.input_embeddings({.training = true}).value();
  CHECK(dp_test::max_abs_diff(e1, t1) > 1e-4);
  CHECK(dp_test::max_abs_diff(t1, t2) > 1e-4);  // the stream advances
  // the MLP encoder has no dropout
  TinyPTuning m({.encoder_dropout = 0.5});
  CHECK(dp_test::max_abs_diff(m.input_embeddings().value(), m.input_embeddings({.training = true}).value()) == 0.0);
}

}  // namespace test_peft_ptuning_v1
