// tasks/heads: the sequence-classification, regression, token-classification and QA heads on the
// tiny BERT of tests/data/bert with a P-Tuning v2 prompt: logits, losses and gradients against
// PyTorch (tests/fixtures/gen_tasks_heads.py -> tests/data/tasks_heads: HF's
// BertFor{SequenceClassification,TokenClassification,QuestionAnswering} heads written out in
// torch), central-difference gradient checks in double, parameter names, backbones of every
// kind (Bert, PromptedBert with a deep or an input-layer prompt, LoraBert, a callable), PEFT
// files of the heads, dropout, and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "deepprompt/peft/lora_bert.hpp"
#include "deepprompt/peft/input_prompt_bert.hpp"
#include "deepprompt/peft/prompt_tuning.hpp"
#include "deepprompt/tasks/heads/question_answering.hpp"
#include "deepprompt/tasks/heads/sequence_classification.hpp"
#include "deepprompt/tasks/heads/token_classification.hpp"
#include "testing.hpp"

namespace test_tasks_heads {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace tasks = deepprompt::tasks;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;

namespace {

using TinyCfg = dp::BertConfig<2, 32, 4, 64, 99, 12, 2>;  // tests/data/bert/config.json
constexpr index_t kL = 2, kP = 2, kC = 32;
template <class T>
using TinyPrompt = dp::DeepPrompt<kL, kP, kC, T>;
template <class T>
using Prompted = dp::PromptedBert<TinyCfg, TinyPrompt<T>, T>;

const dp::SafeTensorsFile& fixture() {
  static const dp::SafeTensorsFile f =
      dp::SafeTensorsFile::open(fs::path(DEEPPROMPT_TEST_DATA) / "tasks_heads" / "expected.safetensors");
  return f;
}
template <std::size_t R, class T = float>
Tensor<T, R> fx(const std::string& name) {
  return fixture().load<T, R>(name);
}
Tensor<std::int64_t, 2> ids2(const std::string& n) { return fixture().load<std::int64_t, 2>(n); }
Tensor<std::int64_t, 1> ids1(const std::string& n) { return fixture().load<std::int64_t, 1>(n); }
float fx_loss(const std::string& tag) { return fx<1>(tag + "loss")(0); }

template <class T = float>
dp::Bert<TinyCfg, T> tiny_bert() {
  return dp::Bert<TinyCfg, T>::from_pretrained(fs::path(DEEPPROMPT_TEST_DATA) / "bert");
}
/// The frozen tiny BERT with the fixture's prompt rows.
template <class T = float>
Prompted<T> prompted() {
  Prompted<T> m{tiny_bert<T>(), TinyPrompt<T>{}};
  m.prompt.prompt_embeddings->value().copy_from(fx<2, T>("prompt_embeddings"));
  return m;
}
template <class T>
void set_linear(dp::Linear<T>& lin, const std::string& prefix) {
  lin.weight.value().copy_from(fx<2, T>(prefix + ".weight"));
  lin.bias->value().copy_from(fx<1, T>(prefix + ".bias"));
}

tasks::EncodedBatch inputs() { return {ids2("input_ids"), ids2("attention_mask"), ids2("token_type_ids")}; }
tasks::SequenceClassificationBatch seq_batch() {
  auto in = inputs();
  return {in.input_ids, in.attention_mask, in.token_type_ids, ids1("seq.labels"), {}};
}
tasks::SequenceClassificationBatch reg_batch() {
  auto in = inputs();
  return {in.input_ids, in.attention_mask, in.token_type_ids, {}, fx<1, double>("reg.targets")};
}
tasks::TokenClassificationBatch tok_batch() {
  auto in = inputs();
  return {in.input_ids, in.attention_mask, in.token_type_ids, ids2("tok.labels")};
}
tasks::QuestionAnsweringBatch qa_batch() {
  auto in = inputs();
  return {in.input_ids, in.attention_mask, in.token_type_ids, ids1("qa.start_positions"), ids1("qa.end_positions")};
}

using dp_test::scaled_error;
constexpr double kTol = 2e-5;

/// Compares the gradients of the prompt and of the head Linear with the fixture's.
template <class M>
void check_grads(M& model, const dp::Linear<float>& head, const std::string& tag, const std::string& head_name) {
  CHECK(scaled_error(model.backbone.prompt.prompt_embeddings->grad(), fx<2>(tag + "grad.prompt_embeddings")) < kTol);
  CHECK(scaled_error(head.weight.grad(), fx<2>(tag + "grad." + head_name + ".weight")) < kTol);
  // (the QA bias gradient is 0 in exact arithmetic: each row of softmax - onehot sums to 0)
  const auto want_bias = fx<1>(tag + "grad." + head_name + ".bias");
  CHECK((scaled_error(head.bias->grad(), want_bias) < kTol || dp_test::max_abs_diff(head.bias->grad(), want_bias) < 1e-7));
}

/// Central differences in double of a scalar loss f() with respect to `params` (at most
/// per_tensor elements each); the gradient buffers start at 0.25 to catch assignment.
template <class F>
void expect_param_ad(const std::vector<dp::ParamRef<double>>& params, F&& f, index_t per_tensor = 24) {
  constexpr double kPrefill = 0.25, kStep = 1e-6, kAtol = 1e-6, kRtol = 1e-5;
  REQUIRE_FALSE(params.empty());
  for (const auto& p : params) std::fill_n(p.grad, p.size, kPrefill);
  f().backward();
  auto loss = [&] {
    dp::NoGradGuard g;
    return f().value().item();
  };
  int checked = 0, bad = 0;
  std::ostringstream report;
  for (const auto& p : params) {
    for (index_t j = 0; j < p.size; j += std::max<index_t>(1, p.size / per_tensor)) {
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
}

std::vector<std::string> names_of(auto& model) {
  std::vector<std::string> n;
  dp::for_each_parameter(model, [&](const std::string& name, auto&) { n.push_back(name); });
  return n;
}
bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("tasks heads: sequence classification logits, loss and gradients match PyTorch (P-Tuning v2)") {
  tasks::SequenceClassifier model{prompted(), 3};
  set_linear(model.head.classifier, "seq.classifier");
  const auto batch = seq_batch();
  CHECK_FALSE(model.is_regression());
  auto loss = model.loss(batch);
  CHECK(std::abs(loss.value().item() - fx_loss("seq.")) < 1e-5);
  loss.backward();
  check_grads(model, model.head.classifier, "seq.", "classifier");
  {
    dp::NoGradGuard g;
    const auto logits = model.forward(batch).value();
    CHECK(scaled_error(logits, fx<2>("seq.logits")) < kTol);
    CHECK(model.predict(logits) == tasks::argmax_rows(fx<2>("seq.logits")));
  }
  // the pooler stays frozen with the backbone: only the prompt and the head train
  const auto params = model.trainable_parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0].name == "prompt.prompt_embeddings");
  CHECK(params[1].name == "classifier.weight");
  CHECK(params[2].name == "classifier.bias");
  const auto names = names_of(model);
  CHECK(has(names, "bert.pooler.dense.weight"));
  CHECK(has(names, "bert.encoder.layer.1.output.LayerNorm.bias"));
}

TEST_CASE("tasks heads: regression (one output) is HF's MSE loss; labels may carry the values") {
  tasks::SequenceClassifier model{prompted(), 1};
  set_linear(model.head.classifier, "reg.classifier");
  CHECK(model.is_regression());
  auto loss = model.loss(reg_batch());
  CHECK(std::abs(loss.value().item() - fx_loss("reg.")) < 1e-5);
  loss.backward();
  check_grads(model, model.head.classifier, "reg.", "classifier");
  // integer labels read as values when there are no targets
  auto b = reg_batch();
  b.targets = {};
  b.labels = Tensor<std::int64_t, 1>({2});
  b.labels(0) = 1, b.labels(1) = -2;
  dp::NoGradGuard g;
  const auto logits = model.forward(b).value();
  const double want = (std::pow(logits(0, 0) - 1.0, 2) + std::pow(logits(1, 0) + 2.0, 2)) / 2;
  CHECK(model.loss(b).value().item() == doctest::Approx(want).epsilon(1e-6));
}

TEST_CASE("tasks heads: token classification ignores -100 and padding; matches PyTorch") {
  tasks::TokenClassifier model{prompted(), 5};
  set_linear(model.head.classifier, "tok.classifier");
  auto loss = model.loss(tok_batch());
  CHECK(std::abs(loss.value().item() - fx_loss("tok.")) < 1e-5);
  loss.backward();
  check_grads(model, model.head.classifier, "tok.", "classifier");
  dp::NoGradGuard g;
  CHECK(scaled_error(model.forward(tok_batch()).value(), fx<3>("tok.logits")) < kTol);
  // a label on a padded token is ignored (attention_mask 0), as HF's active_loss
  auto b = tok_batch();
  b.labels(1, 5) = 2;
  CHECK(model.loss(b).value().item() == loss.value().item());
}

TEST_CASE("tasks heads: QA span loss clamps positions as HF (beyond T ignored, negative -> 0); matches PyTorch") {
  tasks::QuestionAnswerer model{prompted()};
  set_linear(model.head.qa_outputs, "qa.qa_outputs");
  auto loss = model.loss(qa_batch());
  CHECK(std::abs(loss.value().item() - fx_loss("qa.")) < 1e-5);
  loss.backward();
  check_grads(model, model.head.qa_outputs, "qa.", "qa_outputs");
  dp::NoGradGuard g;
  const auto l = model.forward(qa_batch());
  CHECK(scaled_error(l.start.value(), fx<2>("qa.start_logits")) < kTol);
  CHECK(scaled_error(l.end.value(), fx<2>("qa.end_logits")) < kTol);
  // every position ignored: NaN, as torch
  auto b = qa_batch();
  b.start_positions.fill(7), b.end_positions.fill(100);
  CHECK(std::isnan(model.loss(b).value().item()));
  CHECK(has(names_of(model), "qa_outputs.weight"));
}

TEST_CASE("tasks heads: full fine-tuning through a plain Bert reaches the pooler and the embeddings") {
  tasks::SequenceClassifier model{tiny_bert(), 3};
  set_linear(model.head.classifier, "seq.classifier");
  auto loss = model.loss(seq_batch());
  CHECK(std::abs(loss.value().item() - fx_loss("full.")) < 1e-5);
  loss.backward();
  CHECK(scaled_error(model.head.classifier.weight.grad(), fx<2>("full.grad.classifier.weight")) < kTol);
  CHECK(scaled_error(model.backbone.pooler->dense.weight.grad(), fx<2>("full.grad.pooler.dense.weight")) < kTol);
  CHECK(scaled_error(model.backbone.embeddings.word_embeddings.weight.grad(),
                     fx<2>("full.grad.embeddings.word_embeddings.weight")) < kTol);
  const auto names = names_of(model);  // BertForSequenceClassification's names
  CHECK(names.front() == "bert.embeddings.word_embeddings.weight");
  CHECK(names.back() == "classifier.bias");
}

TEST_CASE("tasks heads: central-difference gradient checks in double of every head with its prompt") {
  SUBCASE("sequence classification") {
    tasks::SequenceClassifier model{prompted<double>(), 3, {.init_std = 0.3}};
    expect_param_ad(model.trainable_parameters(), [&] { return model.loss(seq_batch()); });
  }
  SUBCASE("regression") {
    tasks::SequenceClassifier model{prompted<double>(), 1, {.init_std = 0.3}};
    expect_param_ad(model.trainable_parameters(), [&] { return model.loss(reg_batch()); });
  }
  SUBCASE("token classification") {
    tasks::TokenClassifier model{prompted<double>(), 5, {.init_std = 0.3}};
    expect_param_ad(model.trainable_parameters(), [&] { return model.loss(tok_batch()); });
  }
  SUBCASE("question answering") {
    tasks::QuestionAnswerer model{prompted<double>(), {.init_std = 0.3}};
    expect_param_ad(model.trainable_parameters(), [&] { return model.loss(qa_batch()); });
  }
}

TEST_CASE("tasks heads: any backbone: a callable, LoRA, an input-layer prompt (its virtual tokens dropped)") {
  auto bert = tiny_bert();
  dp::freeze(bert);
  const auto in = inputs();
  SUBCASE("a callable") {
    auto fn = [&bert](const auto& ids, const auto& mask, const auto& types, const dp::BertRun& run) {
      return bert.forward(ids, mask, types, run);
    };
    CHECK_THROWS_WITH_AS(tasks::SequenceClassifier(fn, 2), doctest::Contains("set HeadOptions::hidden"), dp::Error);
    tasks::SequenceClassifier model{fn, 2, {.hidden = kC}};
    static_assert(std::is_same_v<decltype(model)::value_type, float>);
    CHECK(names_of(model) == std::vector<std::string>{"classifier.weight", "classifier.bias"});
    dp::NoGradGuard g;
    const auto want = model.head.classifier(bert.forward(in.input_ids, in.attention_mask, in.token_type_ids).pooler_output);
    CHECK(dp_test::max_abs_diff(model.forward(in).value(), want.value()) == 0);
  }
  SUBCASE("LoRA") {
    tasks::TokenClassifier model{dp::LoraBert<TinyCfg>{tiny_bert(), {.r = 2}}, 3};
    const auto names = names_of(model);
    CHECK(has(names, "bert.encoder.layer.0.attention.self.query.lora_A.weight"));
    CHECK(model.trainable_parameters().size() == 2 * 2 * kL + 2);
    CHECK(model.forward(in).shape() == dp::Shape<3>{2, 7, 3});
    dp::tape().release();
  }
  SUBCASE("Prompt Tuning: P rows in front of the outputs") {
    dp::PromptedBert pt{tiny_bert(), dp::PromptTuning<3, kC>()};
    tasks::TokenClassifier model{std::move(pt), 4};
    tasks::QuestionAnswerer qa{dp::PromptedBert{tiny_bert(), dp::PromptTuning<3, kC>()}};
    dp::NoGradGuard g;
    const auto full = model.backbone.forward(in.input_ids, in.attention_mask, in.token_type_ids).last_hidden_state;
    REQUIRE(full.shape() == dp::Shape<3>{2, 3 + 7, kC});
    const auto want = model.head.classifier(dp::slice(full, 1, 3, 10));
    CHECK(dp_test::max_abs_diff(model.forward(in).value(), want.value()) == 0);
    CHECK(qa.forward(in).start.shape() == dp::Shape<2>{2, 7});
  }
}

TEST_CASE("tasks heads: dropout on the pooled output only while training, reproducible from the generator") {
  tasks::SequenceClassifier model{prompted(), 3, {.dropout = 0.5}};
  const auto batch = seq_batch();
  dp::NoGradGuard g;
  const auto eval = model.forward(batch).value();
  dp::Generator g1(5), g2(5);
  const auto a = model.forward(batch, {.training = true, .generator = &g1}).value();
  const auto b = model.forward(batch, {.training = true, .generator = &g2}).value();
  CHECK(dp_test::max_abs_diff(a, b) == 0);
  CHECK(dp_test::max_abs_diff(a, eval) > 0);
  CHECK(dp_test::max_abs_diff(model.forward(batch).value(), eval) == 0);
}

TEST_CASE("tasks heads: save_peft writes the head under PEFT's modules_to_save names; it loads back") {
  const fs::path dir = fs::temp_directory_path() / ("dp_heads_" + std::to_string(::getpid()));
  SUBCASE("SEQ_CLS with a deep prompt") {
    tasks::SequenceClassifier model{prompted(), 3, {.seed = 4}};
    model.save_peft(dir);
    const auto f = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
    CHECK(f.contains("prompt_embeddings"));
    CHECK(f.contains("base_model.classifier.weight"));
    CHECK(f.contains("base_model.classifier.bias"));
    const auto head = dp::peft_io::load_head<float>(f);  // what deepprompt-run reads
    REQUIRE(head.has_value());
    CHECK(dp_test::max_abs_diff(head->weight.value(), model.head.classifier.weight.value()) == 0);
    tasks::SequenceClassifier other{prompted(), 3, {.seed = 9}};
    other.load_peft_head(dir);
    CHECK(dp_test::max_abs_diff(other.head.classifier.bias->value(), model.head.classifier.bias->value()) == 0);
    tasks::SequenceClassifier wrong{prompted(), 4};
    CHECK_THROWS_WITH_AS(wrong.load_peft_head(dir), doctest::Contains("(3, 32)"), dp::ShapeError);
  }
  SUBCASE("QUESTION_ANS: qa_outputs") {
    tasks::QuestionAnswerer model{prompted(), {.seed = 4}};
    model.save_peft(dir);
    const auto f = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
    CHECK(f.contains("base_model.qa_outputs.weight"));
    tasks::QuestionAnswerer other{prompted()};
    other.load_peft_head(dir);
    CHECK(dp_test::max_abs_diff(other.head.qa_outputs.weight.value(), model.head.qa_outputs.weight.value()) == 0);
    tasks::SequenceClassifier seq{prompted(), 2};
    CHECK_THROWS_WITH_AS(seq.load_peft_head(dir), doctest::Contains("no classifier head"), dp::FormatError);
  }
  SUBCASE("TOKEN_CLS with LoRA: base_model.model.classifier") {
    tasks::TokenClassifier model{dp::LoraBert<TinyCfg>{tiny_bert(), {.r = 2}}, 3};
    model.save_peft(dir);
    const auto f = dp::SafeTensorsFile::open(dir / "adapter_model.safetensors");
    CHECK(f.contains("base_model.model.classifier.weight"));
    CHECK(f.contains("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"));
  }
  fs::remove_all(dir);
}

TEST_CASE("tasks heads: shape and label problems throw, naming the shapes") {
  tasks::SequenceClassifier model{prompted(), 3};
  auto b = seq_batch();
  b.labels = Tensor<std::int64_t, 1>::zeros({3});
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("labels must be (B)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("(3) and (2, 7)"), dp::ShapeError);
  b.labels = {};
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("needs labels"), dp::Error);
  b.labels = Tensor<std::int64_t, 1>::full({2}, 3);
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("out of range for C = 3"), dp::Error);
  tasks::SequenceClassifier reg{prompted(), 1};
  auto r = reg_batch();
  r.targets = {};
  CHECK_THROWS_WITH_AS(reg.loss(r), doctest::Contains("needs targets"), dp::Error);

  tasks::TokenClassifier tok{prompted(), 5};
  auto t = tok_batch();
  t.labels = Tensor<std::int64_t, 2>::zeros({2, 6});
  CHECK_THROWS_WITH_AS(tok.loss(t), doctest::Contains("(2, 6) and (2, 7)"), dp::ShapeError);
  tasks::QuestionAnswerer qa{prompted()};
  auto q = qa_batch();
  q.end_positions = Tensor<std::int64_t, 1>::zeros({1});
  CHECK_THROWS_WITH_AS(qa.loss(q), doctest::Contains("end_positions must be (B)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(tasks::SequenceClassifier(prompted(), 2, {.hidden = 16}), doctest::Contains("32"),
                       dp::ShapeError);

  dp::Bert<TinyCfg> no_pooler(TinyCfg{}, {.pooler = false});
  tasks::SequenceClassifier np{std::move(no_pooler), 2};
  CHECK_THROWS_WITH_AS(np.forward(seq_batch()), doctest::Contains("no pooler"), dp::Error);
  dp::tape().release();
}

}  // namespace test_tasks_heads
