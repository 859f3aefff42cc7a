// LoRA (PEFT's LORA) on the tiny BERT of tests/data/bert, against PyTorch
// (tests/fixtures/gen_peft_baselines.py -> tests/data/peft_baselines): target matching, PEFT's
// initialisation, logits and lora_A / lora_B gradients (query+value; key+dense with rsLoRA),
// merge == unmerge with the weights restored bit for bit, merge_and_unload, dropout, PEFT
// adapter files, and the Linear hook's invisibility elsewhere.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepprompt/peft/lora_bert.hpp"
#include "deepprompt/train/optimizer.hpp"
#include "testing.hpp"

namespace test_peft_lora {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kC = 32;

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

dp::Bert<TinyCfg> tiny_bert() { return dp::Bert<TinyCfg>::from_pretrained(kBertDir); }

struct Inputs {
  Tensor<std::int64_t, 2> ids = fx_ids("input_ids"), mask = fx_ids("attention_mask"), types = fx_ids("token_type_ids");
};

/// Every parameter's values, by name.
std::map<std::string, std::vector<float>> snapshot(dp::Bert<TinyCfg>& b, bool lora_too = false) {
  std::map<std::string, std::vector<float>> s;
  dp::for_each_parameter(b, [&](const std::string& n, auto& p) {
    if (!lora_too && n.find(".lora_") != std::string::npos) return;
    s[n] = std::vector<float>(p.value().data(), p.value().data() + p.size());
  });
  return s;
}

/// Loads the fixture's lora_A / lora_B values `tag`<module>.lora_X.weight into the attached updates.
void load_fixture(dp::Bert<TinyCfg>& b, const std::string& tag) {
  int n = 0;
  dp::for_each_linear(b, [&](const std::string& name, auto& lin) {
    if (!lin.lora) return;
    lin.lora->A.value().copy_from(fx<2>(tag + name + ".lora_A.weight"));
    lin.lora->B.value().copy_from(fx<2>(tag + name + ".lora_B.weight"));
    ++n;
  });
  CHECK(n > 0);
}

/// A module holding one Linear named "proj".
struct OneLinear {
  dp::Linear<double> proj;
  template <class V>
  void visit(V&& v) {
    v("proj", proj);
  }
};

}  // namespace

TEST_CASE("lora: attach_lora targets query and value by default, as PEFT for BERT; PEFT's initialisation") {
  auto bert = tiny_bert();
  auto lora = dp::attach_lora(bert, {.r = 4, .alpha = 8});
  CHECK(lora.modules == std::vector<std::string>{"encoder.layer.0.attention.self.query",
                                                 "encoder.layer.0.attention.self.value",
                                                 "encoder.layer.1.attention.self.query",
                                                 "encoder.layer.1.attention.self.value"});
  CHECK(dp::lora_modules(bert) == lora.modules);
  // the updates appear in the state dict under PEFT's (adapter-name-free) names; only they train
  std::vector<std::string> trainable;
  dp::for_each_parameter(bert, [&](const std::string& n, auto& p) {
    if (p.trainable()) trainable.push_back(n);
  });
  CHECK(trainable.size() == 8);
  CHECK(trainable[0] == "encoder.layer.0.attention.self.query.lora_A.weight");
  CHECK(trainable[1] == "encoder.layer.0.attention.self.query.lora_B.weight");
  const auto& q = *bert.encoder.layer[0].attention.self_attention.query.lora;
  CHECK(q.A.shape() == dp::Shape<2>{4, kC});
  CHECK(q.B.shape() == dp::Shape<2>{kC, 4});
  CHECK(q.scale == 2.0f);
  CHECK(q.rank() == 4);
  const float bound = 1.0f / std::sqrt(float(kC));  // kaiming_uniform(a = sqrt(5))
  float amax = 0;
  for (float v : q.A.value()) amax = std::max(amax, std::abs(v));
  CHECK(amax <= bound);
  CHECK(amax > 0.5f * bound);
  for (float v : q.B.value()) CHECK(v == 0.0f);
  // B = 0: the adapted model computes exactly what the base does
  auto base = tiny_bert();
  const Inputs in;
  dp::NoGradGuard g;
  const auto y0 = base.forward(in.ids, in.mask, in.types).last_hidden_state.value();
  const auto y1 = bert.forward(in.ids, in.mask, in.types).last_hidden_state.value();
  CHECK(dp_test::max_abs_diff(y0, y1) == 0.0);
  CHECK(dp::parameter_count(bert, true) == 4 * (4 * kC + kC * 4));
  // the gaussian initialisation: normal(0, 1/r)
  auto b2 = tiny_bert();
  dp::attach_lora(b2, {.r = 2, .init = dp::LoraInit::gaussian});
  float gmax = 0;
  for (float v : b2.encoder.layer[0].attention.self_attention.value.lora->A.value()) gmax = std::max(gmax, std::abs(v));
  CHECK(gmax > 0.6f);  // std 0.5 over 64 draws
}

TEST_CASE("lora: target_modules by name suffix or glob; clear errors") {
  auto bert = tiny_bert();
  auto dense = dp::attach_lora(bert, {.r = 2, .target_modules = {"key", "dense"}});
  CHECK(dense.modules.size() == 2 * 4 + 1);  // key, attention.output.dense, intermediate.dense, output.dense; pooler.dense
  CHECK(std::count(dense.modules.begin(), dense.modules.end(), "pooler.dense") == 1);
  CHECK_THROWS_WITH_AS(dp::attach_lora(bert, {.target_modules = {"key"}}),
                       doctest::Contains("'encoder.layer.0.attention.self.key' already has a LoRA update"), dp::Error);
  CHECK(dp::detach_lora(bert) == 9);
  CHECK(dp::lora_modules(bert).empty());

  auto glob = dp::attach_lora(bert, {.target_modules = {"encoder.layer.1.*.dense", "*.0.attention.self.query"}});
  CHECK(glob.modules == std::vector<std::string>{"encoder.layer.0.attention.self.query",
                                                 "encoder.layer.1.attention.output.dense",
                                                 "encoder.layer.1.intermediate.dense", "encoder.layer.1.output.dense"});
  // "uery" is no module name: a plain name matches whole dotted components only
  auto other = tiny_bert();
  CHECK_THROWS_WITH_AS(dp::attach_lora(other, {.target_modules = {"uery"}}),
                       doctest::Contains("no Linear module matches target_modules [uery]; the model's Linear modules: "
                                         "encoder.layer.0.attention.self.query"),
                       dp::Error);
  CHECK_THROWS_WITH_AS(dp::attach_lora(other, {.r = 0}), doctest::Contains("r must be >= 1"), dp::Error);
  CHECK_THROWS_WITH_AS(dp::attach_lora(other, {.dropout = 1.0}), doctest::Contains("lora_dropout 1 is not in [0, 1)"),
                       dp::Error);
}

TEST_CASE("lora: logits and lora_A / lora_B gradients match PyTorch (query+value r=4; key+dense r=2 rsLoRA)") {
  struct Case {
    std::string tag;
    dp::LoraOptions opt;
  };
  const std::vector<Case> cases{{"lora.", {.r = 4, .alpha = 8}},
                                {"lora2.", {.r = 2, .alpha = 3, .target_modules = {"key", "dense"}, .use_rslora = true}}};
  const Inputs in;
  for (const auto& c : cases) {
    CAPTURE(c.tag);
    auto bert = tiny_bert();
    auto lora = dp::attach_lora(bert, c.opt);
    load_fixture(bert, c.tag);
    auto head = fixture_head();
    auto out = bert.forward(in.ids, in.mask, in.types);
    auto logits = head(out.pooler_output);
    const double e = dp_test::max_abs_diff(logits.value(), fx<2>(c.tag + "logits"));
    CHECK(e < 1e-5);
    CHECK(dp_test::max_abs_diff(out.last_hidden_state.value(), fx<3>(c.tag + "last_hidden_state")) < 1e-5);
    logits.backward(fx<2>("R"));
    double worst = 0;
    dp::for_each_linear(bert, [&](const std::string& name, auto& lin) {
      if (!lin.lora) return;
      CAPTURE(name);
      const double ga = scaled_error(lin.lora->A.grad(), fx<2>(c.tag + "grad." + name + ".lora_A.weight"));
      const double gb = scaled_error(lin.lora->B.grad(), fx<2>(c.tag + "grad." + name + ".lora_B.weight"));
      CHECK(ga < 1e-4);
      CHECK(gb < 1e-4);
      worst = std::max({worst, ga, gb});
    });
    CHECK(scaled_error(head.weight.grad(), fx<2>(c.tag + "grad.classifier.weight")) < 1e-4);
    MESSAGE(c.tag, " (", lora.modules.size(), " modules) logits error ", e, "; worst lora gradient relative error ",
            worst);
  }
}

TEST_CASE("lora: merged == unmerged; unmerge restores the weights bit for bit; merge_and_unload; detach") {
  auto bert = tiny_bert();
  dp::attach_lora(bert, {.r = 4, .alpha = 8});
  load_fixture(bert, "lora.");
  const Inputs in;
  dp::NoGradGuard g;
  const auto base_weights = snapshot(bert);
  const auto unmerged = bert.forward(in.ids, in.mask, in.types).last_hidden_state.value().clone();
  CHECK(dp::merge_lora(bert) == 4);
  CHECK(bert.encoder.layer[1].attention.self_attention.value.lora->merged);
  CHECK(dp::merge_lora(bert) == 0);  // already merged
  CHECK(snapshot(bert) != base_weights);
  const auto merged = bert.forward(in.ids, in.mask, in.types).last_hidden_state.value().clone();
  const double d = dp_test::max_abs_diff(merged, unmerged);
  MESSAGE("merged vs unmerged: max |difference| ", d);
  CHECK(d < 1e-5);
  CHECK(dp_test::max_abs_diff(merged, fx<3>("lora.last_hidden_state")) < 1e-5);
  CHECK(dp::unmerge_lora(bert) == 4);
  CHECK(snapshot(bert) == base_weights);  // bitwise
  CHECK(dp_test::max_abs_diff(bert.forward(in.ids, in.mask, in.types).last_hidden_state.value(), unmerged) == 0.0);

  // merge_and_unload: a plain model (no adapters) computing the adapted outputs
  CHECK(dp::merge_and_unload(bert) == 4);
  CHECK(dp::lora_modules(bert).empty());
  CHECK(dp::parameter_count(bert) == dp::parameter_count(*std::make_unique<dp::Bert<TinyCfg>>(tiny_bert())));
  CHECK(dp_test::max_abs_diff(bert.forward(in.ids, in.mask, in.types).last_hidden_state.value(), unmerged) < 1e-5);

  // detach (while merged): the base model as it was
  auto b2 = tiny_bert();
  const auto w2 = snapshot(b2);
  dp::attach_lora(b2, {.r = 4, .alpha = 8});
  load_fixture(b2, "lora.");
  dp::merge_lora(b2);
  CHECK(dp::detach_lora(b2) == 4);
  CHECK(snapshot(b2) == w2);
}

TEST_CASE("lora: after AdamW steps the base weights are bitwise unchanged; dropout only while training") {
  dp::LoraBert model{tiny_bert(), {.r = 4, .alpha = 8, .dropout = 0.2, .seed = 9}};
  auto head = fixture_head();
  const Inputs in;
  const auto before = snapshot(model.bert);
  const auto lora_before = snapshot(model.bert, true);
  auto params = dp::trainable_parameters<float>(model);
  REQUIRE(params.size() == 8);
  CHECK(params[0].name == "bert.encoder.layer.0.attention.self.query.lora_A.weight");
  params.push_back(head.weight), params.push_back(*head.bias);
  dp::AdamW opt(params, {.lr = 1e-2});
  for (int step = 0; step < 4; ++step) {
    opt.zero_grad();
    auto logits = head(model.forward(in.ids, in.mask, in.types, {.training = true}).pooler_output);
    logits.backward(fx<2>("R"));
    opt.step();
  }
  CHECK(snapshot(model.bert) == before);
  CHECK(snapshot(model.bert, true) != lora_before);
  const auto& B = model.bert.encoder.layer[0].attention.self_attention.query.lora->B.value();
  CHECK(std::any_of(B.begin(), B.end(), [](float v) { return v != 0.0f; }));  // B moved off zero

  // dropout: eval is deterministic, training draws masks (BERT's own dropout off: p = 0 in eval)
  dp::NoGradGuard g;
  const auto e1 = model.forward(in.ids, in.mask).last_hidden_state.value().clone();
  const auto e2 = model.forward(in.ids, in.mask).last_hidden_state.value().clone();
  CHECK(dp_test::max_abs_diff(e1, e2) == 0.0);
  dp::set_lora_training(model.bert, true);
  const auto t1 = model.bert.forward(in.ids, in.mask).last_hidden_state.value().clone();  // BERT in eval mode
  CHECK(dp_test::max_abs_diff(e1, t1) > 1e-5);
  dp::set_lora_training(model.bert, false);
  CHECK(dp_test::max_abs_diff(model.bert.forward(in.ids, in.mask).last_hidden_state.value(), e1) == 0.0);
}

TEST_CASE("lora: gradient check in double through a LoRA Linear (input, A, B)") {
  OneLinear net;
  dp::Generator gen(5);
  net.proj = dp::Linear<double>(6, 5, true, gen, 0.5);
  auto& lin = net.proj;
  CHECK(dp::attach_lora(net, {.r = 3, .alpha = 5, .target_modules = {"proj"}}).modules ==
        std::vector<std::string>{"proj"});
  REQUIRE(lin.lora);
  dp::init::uniform(lin.lora->B.value(), -0.5, 0.5, gen);
  const auto A0 = lin.lora->A.value().clone(), B0 = lin.lora->B.value().clone();
  // the input path through the hook
  dp_test::expect_ad([&](auto x) { return lin(x); }, dp_test::random_tensor<double, 3>({2, 3, 5}, 31));
  // A and B as inputs of the same formula as LowRankUpdate::apply
  dp_test::expect_ad(
      [&](auto x, auto A, auto B) {
        return dp::add(dp::linear(x, lin.weight.var(), lin.bias->var()),
                       dp::scale(dp::linear(dp::linear(x, A), B), lin.lora->scale));
      },
      dp_test::random_tensor<double, 2>({4, 5}, 32), A0, B0);
  // and the hook computes exactly that formula
  const auto x = dp_test::random_tensor<double, 2>({4, 5}, 33);
  dp::NoGradGuard g;
  const auto y = lin(Var<double, 2>(x)).value();
  const auto want = dp::add(dp::linear(Var<double, 2>(x), lin.weight.var(), lin.bias->var()),
                            dp::scale(dp::linear(dp::linear(Var<double, 2>(x), Var<double, 2>(A0)), Var<double, 2>(B0)),
                                      lin.lora->scale))
                        .value();
  CHECK(dp_test::max_abs_diff(y, want) == 0.0);
}

TEST_CASE("lora: save_lora_peft writes PEFT's LORA files; load_lora_peft reads them and PEFT's") {
  const fs::path dir = fs::temp_directory_path() / ("dp_lora_save_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const Inputs in;
  auto head = fixture_head(false);
  dp::LoraBert model{tiny_bert(), {.r = 4, .alpha = 8, .dropout = 0.1}};
  load_fixture(model.bert, "lora.");
  dp::PeftSaveOptions o;
  o.base_model_name_or_path = "tests/data/bert";
  o.extra = dp::peft_io::head_entries(head, "LORA");
  model.save_peft(dir, o);

  const auto j = nlohmann::json::parse(dp::read_text_file(dir / "adapter_config.json"));
  CHECK(j["peft_type"] == "LORA");
  CHECK(j["task_type"] == "SEQ_CLS");
  CHECK(j["r"] == 4);
  CHECK(j["lora_alpha"] == 8);
  CHECK(j["lora_alpha"].is_number_integer());
  CHECK(j["lora_dropout"] == 0.1);
  CHECK(j["target_modules"] == nlohmann::json({"query", "value"}));
  CHECK(j["bias"] == "none");
  CHECK(j["fan_in_fan_out"] == false);
  CHECK(j["modules_to_save"].is_null());
  CHECK(j["use_rslora"] == false);
  CHECK(j["inference_mode"] == true);
  const auto st = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
  CHECK(st.size() == 8 + 2);
  CHECK(st.contains("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"));
  CHECK(st.contains("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
  CHECK(st.contains("base_model.model.classifier.weight"));
  CHECK(st.contains("base_model.model.classifier.bias"));
  CHECK(st.info("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight").shape ==
        std::vector<index_t>{4, kC});

  // the same tensors under the same names as the generator's PEFT directory
  const auto peft = dp::SafeTensorsFile::open(kDir / "adapter_lora" / "adapter_model.safetensors");
  CHECK(st.names() == peft.names());
  for (const auto& n : peft.names()) {
    CAPTURE(n);
    CHECK(std::ranges::equal(st.bytes(n), peft.bytes(n)));
  }

  // round trip, and the generator's directory: logits as PyTorch
  for (const fs::path& d : {dir, kDir / "adapter_lora"}) {
    CAPTURE(d);
    auto back = dp::LoraBert<TinyCfg>::load_peft(tiny_bert(), d);
    CHECK(back.lora.modules.size() == 4);
    CHECK(back.lora.options.r == 4);
    CHECK(back.lora.options.alpha == 8.0);
    CHECK(back.lora.options.dropout == doctest::Approx(0.1));
    CHECK(dp::parameter_count(back, true) == 0);  // loaded for inference
    const auto h = dp::peft_io::load_head<float>(dp::SafeTensorsFile::open(d / "adapter_model.safetensors"));
    REQUIRE(h);
    dp::NoGradGuard g;
    CHECK(dp_test::max_abs_diff((*h)(back.forward(in.ids, in.mask, in.types).pooler_output).value(),
                                fx<2>("lora.logits")) < 1e-5);
  }
  // a bare BertModel's adapter (FEATURE_EXTRACTION) names modules without "bert."; loading finds them too
  const fs::path bare = dir / "bare";
  o.task_type = "FEATURE_EXTRACTION";
  o.extra.clear();
  model.save_peft(bare, o);
  CHECK(dp::SafeTensorsFile::open(bare / "adapter_model.safetensors")
            .contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"));
  auto b3 = tiny_bert();
  CHECK(dp::load_lora_peft(b3, bare, /*trainable=*/true).modules.size() == 4);
  CHECK(dp::parameter_count(b3, true) == 4 * 2 * 4 * kC);

  // globs are written as the modules they matched, with PEFT's names
  auto b4 = tiny_bert();
  auto g4 = dp::attach_lora(b4, {.r = 2, .target_modules = {"encoder.layer.1.*.dense"}});
  dp::save_lora_peft(b4, g4, dir / "glob", {}, "bert.");
  const auto jg = nlohmann::json::parse(dp::read_text_file(dir / "glob" / "adapter_config.json"));
  CHECK(jg["target_modules"] == nlohmann::json({"bert.encoder.layer.1.attention.output.dense",
                                                "bert.encoder.layer.1.intermediate.dense",
                                                "bert.encoder.layer.1.output.dense"}));

  // what cannot be represented, and what does not fit, is refused with the field named
  auto edit = [&](const std::string& key, const nlohmann::json& v) {
    auto c = j;
    c[key] = v;
    std::ofstream(dir / "adapter_config.json") << c.dump(2);
  };
  auto fresh = tiny_bert();
  edit("bias", "all");
  CHECK_THROWS_WITH_AS(dp::load_lora_peft(fresh, dir), doctest::Contains("field \"bias\" is \"all\""), dp::FormatError);
  edit("use_dora", true);
  CHECK_THROWS_WITH_AS(dp::load_lora_peft(fresh, dir), doctest::Contains("use_dora"), dp::FormatError);
  edit("r", 8);
  CHECK_THROWS_WITH_AS(dp::load_lora_peft(fresh, dir), doctest::Contains("needs lora_A (8, 32) and lora_B (32, 8)"),
                       dp::FormatError);
  edit("peft_type", "IA3");
  CHECK_THROWS_WITH_AS(dp::load_lora_peft(fresh, dir), doctest::Contains("field \"peft_type\" is \"IA3\""),
                       dp::FormatError);
  CHECK(dp::lora_modules(fresh).empty());  // nothing attached by a failed load
  CHECK_THROWS_WITH_AS(dp::load_lora_peft(fresh, fs::path(DEEPPROMPT_TEST_DATA) / "bert"),
                       doctest::Contains("has no adapter_config.json"), dp::IoError);
  fs::remove_all(dir);
}

TEST_CASE("lora: Bert::save leaves the adapters out; load_weights works with adapters attached") {
  const fs::path dir = fs::temp_directory_path() / ("dp_lora_bert_save_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto bert = tiny_bert();
  dp::attach_lora(bert, {.r = 2});
  CHECK(bert.hf_state_dict().size() == dp::state_dict<float>(bert).size() - 8);
  bert.save_pretrained(dir);
  const auto st = dp::SafeTensorsFile::open(dir / "model.safetensors");
  for (const auto& n : st.names()) CHECK(n.find("lora") == std::string::npos);
  CHECK_NOTHROW(bert.load_weights(st));  // strict: the adapters are not expected in the file
  auto plain = dp::Bert<TinyCfg>::from_pretrained(dir);
  CHECK(dp::lora_modules(plain).empty());
  fs::remove_all(dir);
}

}  // namespace test_peft_lora
