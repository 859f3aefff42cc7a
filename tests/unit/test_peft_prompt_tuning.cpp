// Prompt Tuning (Lester et al.; PEFT's PROMPT_TUNING) on the tiny BERT of tests/data/bert,
// against PyTorch with PEFT's input-layer concatenation (tests/fixtures/gen_peft_baselines.py ->
// tests/data/peft_baselines): logits, outputs and gradients; the three initialisations; PEFT
// adapter files; the API shared with the deep prompts (PromptedBert, forward_with_prompt).
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
#include "deepprompt/peft/prompt_tuning.hpp"
#include "testing.hpp"

namespace test_peft_prompt_tuning {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;
using dp::Var;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kP = 4, kC = 32;
using TinyPrompt = dp::PromptTuning<kP, kC>;

static_assert(TinyPrompt::is_static && TinyPrompt::static_tokens == kP && TinyPrompt::static_hidden == kC);
static_assert(!dp::DynamicPromptTuning<>::is_static);
static_assert(dp::InputPromptLike<TinyPrompt> && dp::InputPromptLike<dp::DynamicPromptTuning<double>>);
static_assert(!dp::InputPromptLike<dp::DeepPrompt<2, 4, 32>>);

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

std::vector<float> flat(const Tensor<float, 2>& t) { return {t.data(), t.data() + t.size()}; }

}  // namespace

TEST_CASE("prompt tuning: one parameter with PEFT's name; random init is normal(0, init_std)") {
  TinyPrompt p({.seed = 3});
  std::vector<std::string> names;
  dp::for_each_parameter(p, [&](const std::string& n, auto& q) {
    names.push_back(n);
    CHECK(q.trainable());
  });
  CHECK(names == std::vector<std::string>{"embedding.weight"});
  CHECK(p.embedding.shape() == dp::Shape<2>{kP, kC});
  CHECK(dp::parameter_count(p) == kP * kC);
  double sum = 0, sq = 0;
  dp::DynamicPromptTuning<> big({.tokens = 50, .hidden = 40}, {.init_std = 0.5});
  for (float v : big.embedding.value()) sum += v, sq += double(v) * v;
  const double n = 50.0 * 40.0, mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  CHECK(std::abs(mean) < 0.05);
  CHECK(sd == doctest::Approx(0.5).epsilon(0.05));
  // seeds are reproducible
  TinyPrompt again({.seed = 3}), other({.seed = 4});
  CHECK(dp_test::max_abs_diff(p.embedding.value(), again.embedding.value()) == 0.0);
  CHECK(dp_test::max_abs_diff(p.embedding.value(), other.embedding.value()) > 0.1);
  CHECK_THROWS_WITH_AS(dp::DynamicPromptTuning<>({.tokens = 4}), doctest::Contains("positive run-time hidden"),
                       dp::ShapeError);
  CHECK_THROWS_WITH_AS(TinyPrompt({.tokens = 5}),
                       doctest::Contains("PromptTuning<4, 32>: InputPromptSizes::tokens = 5 differs"), dp::ShapeError);
}

TEST_CASE("prompt tuning: logits, outputs and gradients match PEFT's input-layer prompt in PyTorch") {
  auto bert = tiny_bert();
  auto head = fixture_head();
  const Inputs in;
  TinyPrompt prompt;
  prompt.embedding.value().copy_from(fx<2>("pt.prompt"));
  auto out = dp::forward_with_prompt(bert, prompt, in.ids, in.mask, in.types);
  CHECK(out.last_hidden_state.shape() == dp::Shape<3>{2, kP + 7, kC});  // the virtual tokens' rows first
  auto logits = head(out.pooler_output);
  const double e = dp_test::max_abs_diff(logits.value(), fx<2>("pt.logits"));
  CHECK(e < 1e-5);
  CHECK(dp_test::max_abs_diff(out.last_hidden_state.value(), fx<3>("pt.last_hidden_state")) < 1e-5);
  CHECK(dp_test::max_abs_diff(out.pooler_output.value(), fx<2>("pt.pooler_output")) < 1e-5);
  logits.backward(fx<2>("R"));
  const double g = scaled_error(prompt.embedding.grad(), fx<2>("pt.grad.prompt"));
  const double gw = scaled_error(head.weight.grad(), fx<2>("pt.grad.classifier.weight"));
  const double gb = scaled_error(head.bias->grad(), fx<1>("pt.grad.classifier.bias"));
  MESSAGE("prompt tuning: logits error ", e, "; gradient relative errors prompt ", g, ", head ", gw, " ", gb);
  CHECK(g < 1e-4);
  CHECK(gw < 1e-4);
  CHECK(gb < 1e-4);
  int trainable = 0;
  dp::for_each_parameter(bert, [&](const std::string&, auto& p) { trainable += p.trainable(); });
  CHECK(trainable == 0);
}

TEST_CASE("prompt tuning: PromptedBert takes an input prompt as it takes a deep prompt") {
  dp::PromptedBert model{dp::Bert<TinyCfg>::from_pretrained(kBertDir), TinyPrompt()};
  model.prompt.embedding.value().copy_from(fx<2>("pt.prompt"));
  auto head = fixture_head(false);
  const Inputs in;
  auto params = dp::trainable_parameters<float>(model);
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "prompt.embedding.weight");
  dp::NoGradGuard g;
  auto logits = head(model.forward(in.ids, in.mask, in.types).pooler_output);
  CHECK(dp_test::max_abs_diff(logits.value(), fx<2>("pt.logits")) < 1e-5);
  // a shared (P, C) prompt equals the same prompt given per example (B, P, C)
  auto rows = dp::reshape<3>(model.prompt.embedding.var(), dp::Shape<3>{1, kP, kC});
  const std::vector<Var<float, 3>> two{rows, rows};
  auto per_example = model.bert.forward_with_input_prompt(dp::concat(std::span<const Var<float, 3>>(two), 0), in.ids,
                                                          in.mask, in.types);
  CHECK(dp_test::max_abs_diff(head(per_example.pooler_output).value(), logits.value()) < 1e-6);
  // sizes are checked: 7 tokens after 6 virtual ones need 13 > 12 positions
  dp::PromptTuning<6, kC> long_prompt;
  CHECK_THROWS_WITH_AS(dp::forward_with_prompt(model.bert, long_prompt, in.ids, in.mask),
                       doctest::Contains("need 13 positions but the model has max_position_embeddings = 12"),
                       dp::ShapeError);
  dp::DynamicPromptTuning<> wide({.tokens = 2, .hidden = 64});
  CHECK_THROWS_WITH_AS(dp::attach(model.bert, wide),
                       doctest::Contains("the input prompt's width is 64 but the BERT model's is 32"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(model.bert.forward_with_input_prompt(model.prompt.embedding.var(), in.ids,
                                                            Tensor<std::int64_t, 2>::full({2, 5}, 1)),
                       doctest::Contains("attention_mask must be (B, T) as input_ids"), dp::ShapeError);
}

TEST_CASE("prompt tuning: text initialisation takes the word-embedding rows of the text, cycled or truncated") {
  auto bert = tiny_bert();
  const auto& words = bert.embeddings.word_embeddings.weight.value();
  auto row = [&](std::int64_t id) { return std::vector<float>(words.data() + id * kC, words.data() + (id + 1) * kC); };
  auto prow = [&](const auto& p, index_t i) {
    return std::vector<float>(p.embedding.value().data() + i * kC, p.embedding.value().data() + (i + 1) * kC);
  };
  // shorter than Tokens: repeated (PEFT: init_token_ids * ceil(P / n), then [:P])
  TinyPrompt cycled({.init = dp::PromptTuningInit::text, .init_token_ids = {2, 17, 3}, .init_text = "[CLS] good [SEP]"},
                    words);
  const std::vector<std::int64_t> want{2, 17, 3, 2};
  for (index_t i = 0; i < kP; ++i) CHECK(prow(cycled, i) == row(want[std::size_t(i)]));
  // longer: truncated
  TinyPrompt cut({.init = dp::PromptTuningInit::text, .init_token_ids = {5, 6, 7, 8, 9, 10}}, words);
  for (index_t i = 0; i < kP; ++i) CHECK(prow(cut, i) == row(5 + i));
  // a copy: the prompt does not share the table's storage
  CHECK(cut.embedding.value().data() != words.data());
  CHECK(cut.peft_config()["prompt_tuning_init"] == "TEXT");
  CHECK(cycled.peft_config()["prompt_tuning_init_text"] == "[CLS] good [SEP]");
  CHECK_THROWS_WITH_AS(TinyPrompt({.init = dp::PromptTuningInit::text, .init_token_ids = {1}}),
                       doctest::Contains("needs the model's word embeddings"), dp::Error);
  CHECK_THROWS_WITH_AS(TinyPrompt({.init = dp::PromptTuningInit::text}, words), doctest::Contains("init_token_ids"),
                       dp::Error);
  CHECK_THROWS_WITH_AS(TinyPrompt({.init = dp::PromptTuningInit::text, .init_token_ids = {1, 99}}, words),
                       doctest::Contains("init token id 99 is out of range for a vocabulary of 99"), dp::Error);
}

TEST_CASE("prompt tuning: sample_vocab initialisation takes rows of the vocabulary at random ids") {
  auto bert = tiny_bert();
  const auto& words = bert.embeddings.word_embeddings.weight.value();
  auto id_of_row = [&](const float* r, std::int64_t lo, std::int64_t hi) -> std::int64_t {
    for (std::int64_t id = lo; id < hi; ++id)
      if (std::memcmp(r, words.data() + id * kC, sizeof(float) * kC) == 0) return id;
    return -1;
  };
  dp::PromptTuning<20, kC> p({.init = dp::PromptTuningInit::sample_vocab, .seed = 11}, words);
  std::vector<std::int64_t> ids;
  for (index_t i = 0; i < 20; ++i) ids.push_back(id_of_row(p.embedding.value().data() + i * kC, 1, 99));
  CHECK(std::count(ids.begin(), ids.end(), -1) == 0);  // every row is a vocabulary row (the padding row 0 is all zeros)
  std::sort(ids.begin(), ids.end());
  CHECK(std::unique(ids.begin(), ids.end()) - ids.begin() > 10);  // random ids, not one repeated
  // a restricted range
  dp::PromptTuning<20, kC> few({.init = dp::PromptTuningInit::sample_vocab, .vocab_begin = 10, .vocab_end = 14}, words);
  for (index_t i = 0; i < 20; ++i) CHECK(id_of_row(few.embedding.value().data() + i * kC, 10, 14) >= 10);
  CHECK(few.peft_config()["prompt_tuning_init"] == "SAMPLE_VOCAB");
  CHECK_THROWS_WITH_AS(TinyPrompt({.init = dp::PromptTuningInit::sample_vocab, .vocab_begin = 5, .vocab_end = 200}, words),
                       doctest::Contains("sample_vocab range [5, 200)"), dp::Error);
}

TEST_CASE("prompt tuning: save_peft writes PEFT's PROMPT_TUNING files; load_peft reads them and PEFT's") {
  const fs::path dir = fs::temp_directory_path() / ("dp_pt_save_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto bert = tiny_bert();
  TinyPrompt prompt({.tokenizer_name_or_path = "bert-base-uncased", .seed = 5});
  dp::attach(bert, prompt);
  auto head = fixture_head(false);
  dp::PeftSaveOptions o;
  o.base_model_name_or_path = "tests/data/bert";
  o.extra = dp::peft_io::head_entries(head, "PROMPT_TUNING");
  prompt.save_peft(dir, o);

  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"});
  const auto j = nlohmann::json::parse(dp::read_text_file(dir / "adapter_config.json"));
  CHECK(j["peft_type"] == "PROMPT_TUNING");
  CHECK(j["task_type"] == "SEQ_CLS");
  CHECK(j["num_virtual_tokens"] == kP);
  CHECK(j["token_dim"] == kC);
  CHECK(j["num_transformer_submodules"] == 1);
  CHECK(j["num_attention_heads"] == 4);
  CHECK(j["num_layers"] == 2);
  CHECK(j["prompt_tuning_init"] == "RANDOM");
  CHECK(j["prompt_tuning_init_text"].is_null());
  CHECK(j["tokenizer_name_or_path"] == "bert-base-uncased");
  CHECK(j["inference_mode"] == true);
  CHECK(j["base_model_name_or_path"] == "tests/data/bert");
  const auto st = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
  CHECK(st.names() == std::vector<std::string>{"base_model.classifier.bias", "base_model.classifier.weight",
                                               "prompt_embeddings"});
  CHECK(st.info("prompt_embeddings").shape == std::vector<index_t>{kP, kC});
  CHECK(st.metadata().at("format") == "pt");

  auto back = TinyPrompt::load_peft(dir);
  CHECK(flat(back.embedding.value()) == flat(prompt.embedding.value()));
  CHECK(back.embedding.trainable());
  CHECK(back.options().tokenizer_name_or_path == "bert-base-uncased");
  auto any = dp::DynamicPromptTuning<>::load_peft(dir, /*trainable=*/false);
  CHECK(any.tokens() == kP);
  CHECK_FALSE(any.embedding.trainable());
  const auto h = dp::peft_io::load_head<float>(st);
  REQUIRE(h);
  CHECK(flat(h->weight.value()) == flat(head.weight.value()));

  // the generator's PEFT directory: the same logits as PyTorch
  auto peft = TinyPrompt::load_peft(kDir / "adapter_prompt_tuning");
  const auto peft_head = dp::peft_io::load_head<float>(
      dp::SafeTensorsFile::open(kDir / "adapter_prompt_tuning" / "adapter_model.safetensors"));
  REQUIRE(peft_head);
  {
    const Inputs in;
    dp::NoGradGuard g;
    auto logits = (*peft_head)(dp::forward_with_prompt(bert, peft, in.ids, in.mask, in.types).pooler_output);
    CHECK(dp_test::max_abs_diff(logits.value(), fx<2>("pt.logits")) < 1e-5);
  }
  // errors name the field
  CHECK_THROWS_WITH_AS((dp::PromptTuning<5, kC>::load_peft(dir)),
                       doctest::Contains("field \"num_virtual_tokens\" is 4 but PromptTuning<5, 32> has Tokens = 5"),
                       dp::FormatError);
  CHECK_THROWS_WITH_AS(TinyPrompt::load_peft(fs::path(DEEPPROMPT_TEST_DATA) / "peft" / "adapter"),
                       doctest::Contains("field \"peft_type\" is \"PREFIX_TUNING\""), dp::FormatError);
  CHECK_THROWS_AS(TinyPrompt::load_peft(dir / "nowhere"), dp::IoError);
  fs::remove_all(dir);
}

TEST_CASE("prompt tuning: gradient check in double of the prompt rows, shared and per example") {
  auto bert = tiny_bert<double>();
  auto head = fixture_head<double>(false);
  const Inputs in;
  dp_test::expect_ad(
      [&](auto rows) { return head(bert.forward_with_input_prompt(rows, in.ids, in.mask, in.types).pooler_output); },
      dp_test::random_tensor<double, 2>({2, kC}, 21));
  dp_test::expect_ad(
      [&](auto rows) {
        auto out = bert.forward_with_input_prompt(rows, in.ids, in.mask, in.types);
        return out.last_hidden_state;
      },
      dp_test::random_tensor<double, 3>({2, 3, kC}, 22));
}

}  // namespace test_peft_prompt_tuning
