// peft/bert_method.hpp: every method chosen at run time on the tiny BERT of tests/data/bert.
// Only the method's parameters are trainable (everything for full fine-tuning); the PEFT files
// it saves load back (BertMethod::load) into a model with the same outputs, the hidden-state
// prompt's file being the equivalent key/value prefix.
#include "deepprompt/peft/bert_method.hpp"

#include <doctest/doctest.h>

#include <filesystem>

#include "testing.hpp"

namespace test_peft_bert_method {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;

namespace {

const fs::path kBert = fs::path(DEEPPROMPT_TEST_DATA) / "bert";

Tensor<std::int64_t, 2> ids() {
  Tensor<std::int64_t, 2> t({2, 5});
  const std::int64_t v[] = {2, 17, 33, 5, 3, 2, 40, 41, 3, 0};
  std::copy(std::begin(v), std::end(v), t.data());
  return t;
}
Tensor<std::int64_t, 2> mask() {
  Tensor<std::int64_t, 2> t({2, 5});
  const std::int64_t v[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
  std::copy(std::begin(v), std::end(v), t.data());
  return t;
}

}  // namespace

TEST_CASE("BertMethod: method names") {
  CHECK(dp::method_from_name("ptv2") == dp::Method::ptv2);
  CHECK(dp::method_from_name("ptv2-hidden") == dp::Method::ptv2_hidden);
  CHECK(dp::method_from_name("lora") == dp::Method::lora);
  CHECK(!dp::method_from_name("p-tuning-v3"));
}

TEST_CASE("BertMethod: only the method's parameters train; its PEFT file loads back to the same outputs") {
  struct Expect {
    dp::Method m;
    const char* first_trainable;
    index_t virtual_tokens;
  };
  const Expect cases[] = {{dp::Method::ptv2, "prompt.prompt_embeddings", 0},
                          {dp::Method::ptv2_hidden, "prompt.prompt", 0},
                          {dp::Method::prefix, "prompt.projection.embedding.weight", 0},
                          {dp::Method::prompt, "prompt.embedding.weight", 3},
                          {dp::Method::ptuning, "prompt.embedding.weight", 3},
                          {dp::Method::lora, "bert.encoder.layer.0.attention.self.query.lora_A.weight", 0},
                          {dp::Method::full, "bert.embeddings.word_embeddings.weight", 0}};
  for (const auto& c : cases) {
    INFO("method " << static_cast<int>(c.m));
    auto m = dp::BertMethod::create(dp::DynamicBert<float>::from_pretrained(kBert), c.m, {.tokens = 3, .projection = 16, .seed = 5});
    const auto params = dp::trainable_parameters<float>(m);
    REQUIRE(!params.empty());
    CHECK(params.front().name == c.first_trainable);
    index_t total = 0;
    dp::for_each_parameter(m, [&](const std::string&, auto&) { ++total; });
    if (c.m == dp::Method::full) CHECK(static_cast<index_t>(params.size()) == total);
    else CHECK(static_cast<index_t>(params.size()) < 10);
    CHECK(m.virtual_tokens() == c.virtual_tokens);

    // a training step moves the method's parameters (dropout on)
    auto o = m.forward(ids(), mask(), {}, {.training = true});
    CHECK(o.last_hidden_state.value().shape()[1] == 5 + c.virtual_tokens);
    if (c.m == dp::Method::full) continue;  // no PEFT file
    const fs::path dir = fs::temp_directory_path() / ("dp_bert_method_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    m.save_peft(dir);
    Tensor<float, 3> before, after;
    {
      dp::NoGradGuard g;
      before = m.forward(ids(), mask()).last_hidden_state.value().clone();
      auto loaded = dp::BertMethod::load(dp::DynamicBert<float>::from_pretrained(kBert), dir);
      CHECK(loaded.peft_type() == m.peft_type());
      after = loaded.forward(ids(), mask()).last_hidden_state.value().clone();
      CHECK(dp::trainable_parameters<float>(loaded).empty());
    }
    CHECK(dp_test::max_abs_diff(before, after) < 2e-5);
    fs::remove_all(dir);
  }
}

TEST_CASE("Bert::set_dropout reaches every dropout module (0, 0: training computes what eval computes)") {
  auto bert = dp::DynamicBert<float>::from_pretrained(kBert);  // the checkpoint's config has 0.1 and 0.1
  dp::NoGradGuard g;
  const auto eval = bert.forward(ids(), mask()).last_hidden_state.value().clone();
  CHECK(dp_test::max_abs_diff(bert.forward(ids(), mask(), {}, {.training = true}).last_hidden_state.value(), eval) > 1e-3);
  bert.set_dropout(0.0, 0.0);
  CHECK(dp_test::max_abs_diff(bert.forward(ids(), mask(), {}, {.training = true}).last_hidden_state.value(), eval) == 0.0);
  CHECK_THROWS_WITH_AS(bert.set_dropout(1.0, 0.0), "Bert::set_dropout: 1 is not in [0, 1)", dp::Error);
}

}  // namespace test_peft_bert_method
