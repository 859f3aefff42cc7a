// tasks/heads/seq2seq.hpp on the tiny T5 of tests/data/t5/v1_0 (and a random T5 sized for the
// tiny Unigram tokenizer of tests/data/tokenizers): source/target encoding with padded labels
// -100 (HF's run_summarization), the teacher-forced loss against cross-entropy computed by hand
// from the logits, a central-difference gradient check in double of a T5 deep prompt through
// the loss, the frozen backbone, generation through t5_generate with the prompt's constants, and
// errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "deepprompt/io/unigram.hpp"
#include "deepprompt/tasks/heads/seq2seq.hpp"
#include "testing.hpp"

namespace test_tasks_heads_seq2seq {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace tasks = deepprompt::tasks;
namespace fs = std::filesystem;
using dp::index_t;
using dp::Tensor;

namespace {

// tests/data/t5/v1_0/config.json: d_model 16, d_kv 4, d_ff 32, 2 + 2 layers, 4 heads, vocab 40
using TinyT5 = dp::T5Config<16, 4, 32, 2, 2, 4, 40, dp::T5Act::relu, false, true, 16, 20>;
template <class T>
using Prompt = dp::T5DeepPrompt<2, 3, 16, T>;

template <class T = float>
dp::T5<TinyT5, T> tiny_t5() {
  return dp::T5<TinyT5, T>::from_pretrained(fs::path(DEEPPROMPT_TEST_DATA) / "t5" / "v1_0");
}
const dp::UnigramTokenizer& tok() {
  static const auto t = dp::UnigramTokenizer::from_tokenizer_json(std::string(DEEPPROMPT_TEST_DATA) +
                                                                  "/tokenizers/tiny_unigram.tokenizer.json");
  return t;
}

tasks::Seq2SeqBatch batch() {
  tasks::Seq2SeqBatch b;
  b.input_ids = Tensor<std::int64_t, 2>::from({2, 5}, {5, 9, 17, 3, 1, 7, 22, 1, 0, 0});
  b.attention_mask = Tensor<std::int64_t, 2>::from({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  b.labels = Tensor<std::int64_t, 2>::from({2, 4}, {12, 30, 4, 1, 8, 1, -100, -100});
  return b;
}

/// Central differences in double of a scalar loss with respect to `params`.
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
  for (const auto& p : params)
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
  CHECK_MESSAGE(bad == 0, report.str());
  CHECK(checked > 0);
}

}  // namespace

TEST_CASE("tasks seq2seq: sources and targets are tokenised, truncated and padded; label padding is -100") {
  const std::vector<std::string> src{"the film is good", "a bad movie that nobody liked at all and more words"};
  const std::vector<std::string> tgt{"positive", "negative review"};
  const auto b = tasks::encode_seq2seq(tok(), src, tgt, {.max_source_length = 12, .source_prefix = "sst2: "});
  const auto s0 = tok().encode("sst2: the film is good").ids;
  const auto s1 = tok().encode("sst2: " + src[1], {.max_length = 12}).ids;
  REQUIRE(s1.size() == 12);
  REQUIRE(s0.size() < 12);
  CHECK(s1.back() == 1);  // </s> kept after truncation
  REQUIRE(b.input_ids.shape() == dp::Shape<2>{2, 12});
  for (std::size_t t = 0; t < 12; ++t) {
    const index_t j = index_t(t);
    CHECK(b.input_ids(0, j) == (t < s0.size() ? s0[t] : 0));
    CHECK(b.attention_mask(0, j) == (t < s0.size() ? 1 : 0));
    CHECK(b.input_ids(1, j) == s1[t]);
  }
  const auto t0 = tok().encode(tgt[0]).ids, t1 = tok().encode(tgt[1]).ids;
  const std::size_t S = std::max(t0.size(), t1.size());
  REQUIRE(b.labels.shape() == dp::Shape<2>{2, index_t(S)});
  for (std::size_t t = 0; t < S; ++t) {
    CHECK(b.labels(0, index_t(t)) == (t < t0.size() ? t0[t] : -100));
    CHECK(b.labels(1, index_t(t)) == (t < t1.size() ? t1[t] : -100));
  }
  // sources alone: no labels (generation)
  CHECK(tasks::encode_seq2seq(tok(), src).labels.empty());
  CHECK_THROWS_WITH_AS(tasks::encode_seq2seq(tok(), src, std::vector<std::string>{"x"}),
                       doctest::Contains("2 sources but 1 targets"), dp::ShapeError);
}

TEST_CASE("tasks seq2seq: the loss is the mean cross-entropy over labels != -100 (by hand from the logits)") {
  tasks::Seq2SeqModel model{tiny_t5<double>()};  // full fine-tuning: every T5 parameter trains
  CHECK(dp::parameter_count(model, true) == dp::parameter_count(model.t5));
  std::vector<std::string> names;
  dp::for_each_parameter(model, [&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.front() == "shared.weight");
  const auto b = batch();
  dp::NoGradGuard g;
  const auto out = model.forward(b);
  const auto& logits = out.logits.value();  // (2, 4, 40)
  double sum = 0;
  int n = 0;
  for (index_t r = 0; r < 2; ++r)
    for (index_t s = 0; s < 4; ++s) {
      if (b.labels(r, s) == -100) continue;
      double m = -1e300, z = 0;
      for (index_t v = 0; v < 40; ++v) m = std::max(m, logits(r, s, v));
      for (index_t v = 0; v < 40; ++v) z += std::exp(logits(r, s, v) - m);
      sum += -(logits(r, s, b.labels(r, s)) - m - std::log(z));
      ++n;
    }
  CHECK(n == 6);
  CHECK(model.loss(b).value().item() == doctest::Approx(sum / n).epsilon(1e-12));
  CHECK(out.loss->value().item() == model.loss(b).value().item());
}

TEST_CASE("tasks seq2seq: with a deep prompt the T5 is frozen; gradient check in double of the prompt") {
  tasks::Seq2SeqModel model{tiny_t5<double>(), Prompt<double>({}, {.init_std = 0.5, .seed = 3})};
  const auto params = model.trainable_parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0].name == "prompt.encoder.prompt_embeddings");
  CHECK(params[2].name == "prompt.cross.prompt_embeddings");
  expect_param_ad(params, [&] { return model.loss(batch()); });
  // dropout only with run.training; the T5's mode follows the run
  dp::NoGradGuard g;
  const double eval = model.loss(batch()).value().item();
  CHECK(model.loss(batch(), {.training = true}).value().item() != eval);
  CHECK(model.t5.training());
  CHECK(model.loss(batch()).value().item() == eval);
  CHECK_FALSE(model.t5.training());
}

TEST_CASE("tasks seq2seq: generation uses the prompt's constants in eval mode and restores the mode") {
  tasks::Seq2SeqModel model{tiny_t5(), Prompt<float>({}, {.init_std = 0.5, .seed = 3})};
  const auto b = batch();
  const dp::T5GenerateOptions opt{.max_new_tokens = 5, .num_beams = 2};
  model.t5.train();
  const auto ids = model.generate(b.input_ids, b.attention_mask, opt);
  CHECK(model.t5.training());
  model.t5.eval();
  const auto constants = model.prompt.freeze_constants();
  const auto want = dp::generate(model.t5, b.input_ids, b.attention_mask, opt, &constants);
  REQUIRE(ids.shape() == want.shape());
  CHECK(dp_test::max_abs_diff(ids, want) == 0);
  const auto plain = dp::generate(model.t5, b.input_ids, b.attention_mask, opt);
  CHECK((plain.shape() != ids.shape() || dp_test::max_abs_diff(plain, ids) > 0));  // the prompt matters

  // text in, text out, on a random T5 sized for the tokenizer's 800 pieces
  dp::T5Dims d = TinyT5::dims();
  d.vocab_size = 800;
  tasks::Seq2SeqModel text_model{dp::T5<dp::T5DynamicConfig, float>(d, 7)};
  const std::vector<std::string> src{"the film is good", "a bad movie"};
  const auto texts = text_model.generate_text(tok(), src, {}, {.max_new_tokens = 6});
  const auto enc = tasks::encode_seq2seq(tok(), src);
  const auto out = text_model.generate(enc.input_ids, enc.attention_mask, {.max_new_tokens = 6});
  REQUIRE(texts.size() == 2);
  for (index_t r = 0; r < 2; ++r) {
    std::vector<std::int32_t> row;
    for (index_t t = 0; t < out.extent(1); ++t) row.push_back(std::int32_t(out(r, t)));
    CHECK(texts[std::size_t(r)] == tok().decode(row, true));
  }
}

TEST_CASE("tasks seq2seq: a batch without labels, or labels of another batch size, throws naming the shapes") {
  tasks::Seq2SeqModel model{tiny_t5()};
  auto b = batch();
  b.labels = {};
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("needs labels"), dp::Error);
  b.labels = Tensor<std::int64_t, 2>::zeros({3, 4});
  CHECK_THROWS_WITH_AS(model.loss(b), doctest::Contains("(3, 4) and (2, 5)"), dp::ShapeError);
}

}  // namespace test_tasks_heads_seq2seq
