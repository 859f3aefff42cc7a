// tasks/runners: NerRunner (CoNLL-2003) and QaRunner (SQuAD v1.1 / v2.0) on a random tiny BERT
// (hidden 32, 2 layers, 4 heads) with bert-base-uncased's vocabulary and P-Tuning v2: the data
// folders in both layouts, a few Trainer steps that lower the loss on the same batch, the metric
// keys and ranges, the PEFT adapter read back (BertMethod::load + load_peft_head) to the same
// metrics, predictions on hand examples, and errors that name the folder or file.
#include "deepprompt/tasks/runners/question_answering.hpp"
#include "deepprompt/tasks/runners/token_classification.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace test_tasks_runners_ner_qa {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;

namespace {

const fs::path kData = fs::path(DEEPPROMPT_TEST_DATA);
const fs::path kConll = kData / "datasets" / "conll2003";
const fs::path kSquad = kData / "datasets" / "squad";

const fs::path kTmp = fs::temp_directory_path() / ("dp_runners_ner_qa_" + std::to_string(::getpid()));
struct RemoveTmp {
  ~RemoveTmp() {
    std::error_code ec;
    fs::remove_all(kTmp, ec);
  }
} remove_tmp_at_exit;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = kTmp / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// A folder holding `files` (name in the folder <- source file).
fs::path folder(const std::string& name, std::initializer_list<std::pair<const char*, fs::path>> files) {
  const fs::path d = fresh_dir(name);
  for (const auto& [to, from] : files) fs::copy_file(from, d / to);
  return d;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

const dp::WordPieceTokenizer& tokenizer() {
  static const auto tok =
      dp::WordPieceTokenizer::from_vocab_file((kData / "tokenizers" / "bert-base-uncased-vocab.txt").string());
  return tok;
}

/// A random BERT with the tokenizer's vocabulary; the same seed gives the same weights.
dp::DynamicBert<float> tiny_bert(std::uint64_t seed = 1) {
  dp::BertDynamicConfig cfg;
  cfg.hidden = 32, cfg.layers = 2, cfg.heads = 4, cfg.intermediate = 64;
  cfg.vocab = static_cast<index_t>(tokenizer().vocab_size()), cfg.max_positions = 512;
  cfg.validate();
  return dp::DynamicBert<float>(cfg, dp::BertInit{.seed = seed});
}

dp::BertMethod ptv2(std::uint64_t seed = 1) {
  return dp::BertMethod::create(tiny_bert(seed), dp::Method::ptv2, {.tokens = 4, .seed = 2});
}

/// The task's loss on all its training examples, in eval mode (no dropout), no tape.
template <class Runner>
double full_loss(Runner& r) {
  std::vector<index_t> all(static_cast<std::size_t>(r.train_size()));
  std::iota(all.begin(), all.end(), index_t{0});
  dp::NoGradGuard no_grad;
  r.set_training(false);
  return static_cast<double>(r.loss(all).value().item());
}

template <class Runner>
dp::train::Metrics train_steps(Runner& r, const std::string& name, const std::string& metric, std::int64_t steps) {
  dp::train::Trainer t(r, {.max_steps = steps,
                           .batch_size = r.train_size(),
                           .lr = 3e-2,
                           .weight_decay = 0.0,
                           .metric = metric,
                           .out_dir = fresh_dir(name),
                           .progress = dp::train::ProgressMode::off});
  return t.train();
}

std::string task_type(const fs::path& adapter) {
  std::ifstream in(adapter / "adapter_config.json");
  return nlohmann::json::parse(in).value("task_type", "");
}

template <class E>
std::string message_of(auto&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

}  // namespace

// --- NER -------------------------------------------------------------------------------------------

TEST_CASE("read_ner_task: the 2-column IOB2 and the original IOB1 layouts give the same sentences") {
  const auto two = dp::tasks::read_ner_task(
      folder("ner2", {{"train.txt", kConll / "iob2_2col" / "valid.txt"}, {"valid.txt", kConll / "iob2_2col" / "valid.txt"}}));
  const auto four =
      dp::tasks::read_ner_task(folder("ner4", {{"eng.train", kConll / "eng.testa"}, {"eng.testa", kConll / "eng.testa"}}));
  CHECK(two.labels == dp::tasks::conll2003_labels());
  CHECK(two.labels.front() == "O");
  REQUIRE(two.train.size() == 21);
  REQUIRE(two.eval.size() == 21);
  REQUIRE(four.eval.size() == 21);
  for (std::size_t i = 0; i < 21; ++i) {
    CHECK(two.eval[i].tokens == four.eval[i].tokens);
    CHECK(two.eval[i].tags == four.eval[i].tags);  // IOB1 -> IOB2 on read
  }
}

TEST_CASE("read_ner_task: a missing or malformed data folder names the path") {
  const fs::path empty = fresh_dir("ner_empty");
  auto m = message_of<dp::IoError>([&] { dp::tasks::read_ner_task(empty); });
  CHECK(m.find(empty.string()) != std::string::npos);
  CHECK(m.find("train.txt") != std::string::npos);

  const fs::path half = fresh_dir("ner_half");
  write(half / "train.txt", "EU\tB-ORG\nrejects\tO\n");
  m = message_of<dp::IoError>([&] { dp::tasks::read_ner_task(half); });
  CHECK(m.find((half / "valid.txt").string()) != std::string::npos);

  const fs::path bad = fresh_dir("ner_bad");
  write(bad / "train.txt", "EU\tB-ORG\nrejects\tO\textra\n");
  write(bad / "valid.txt", "EU\tB-ORG\n");
  m = message_of<dp::FormatError>([&] { dp::tasks::read_ner_task(bad); });
  CHECK(m.find((bad / "train.txt").string() + ":2") != std::string::npos);

  const fs::path tag = fresh_dir("ner_tag");
  write(tag / "train.txt", "EU\tB-ORG\n");
  write(tag / "valid.txt", "EU\tB-ORG\n\nBonn\tO\nsays\tB-GPE\n");
  m = message_of<dp::FormatError>([&] { dp::tasks::read_ner_task(tag); });
  CHECK(m.find((tag / "valid.txt").string() + ":4") != std::string::npos);
  CHECK(m.find("B-GPE") != std::string::npos);
}

TEST_CASE("NerRunner: training lowers the loss; entity metrics; the adapter reads back; predict") {
  auto data = dp::tasks::read_ner_task(
      folder("ner_train", {{"train.txt", kConll / "iob2_2col" / "valid.txt"}, {"valid.txt", kConll / "iob2_2col" / "valid.txt"}}));
  data.train.resize(4);
  const dp::tasks::RunnerOptions ro{.max_length = 64, .eval_batch_size = 8, .seed = 3};
  dp::tasks::NerRunner r(ptv2(), tokenizer(), data, ro, 0.1);
  CHECK(r.train_size() == 4);
  CHECK(r.dropped_train() == 0);
  CHECK(r.model.num_labels() == 9);

  const double before = full_loss(r);
  const auto best = train_steps(r, "ner_out", "f1", 15);
  const double after = full_loss(r);
  INFO("loss " << before << " -> " << after);
  CHECK(after < before);
  CHECK(best.count("f1") == 1);

  const auto m = r.evaluate();
  for (const char* k : {"precision", "recall", "f1", "accuracy"}) {
    INFO(k);
    REQUIRE(m.count(k) == 1);
    CHECK(m.at(k) >= 0.0);
    CHECK(m.at(k) <= 1.0);
  }
  CHECK(m.at("accuracy") > 0.5);  // "O" dominates

  const fs::path adapter = fresh_dir("ner_adapter");
  r.save(adapter);
  CHECK(task_type(adapter) == "TOKEN_CLS");
  auto eval_only = data;
  eval_only.train.clear();
  dp::tasks::NerRunner back(dp::BertMethod::load(tiny_bert(), adapter), tokenizer(), eval_only, ro);
  back.model.load_peft_head(adapter, false);
  back.set_training(false);
  const auto m2 = back.evaluate();
  for (const auto& [k, v] : m) CHECK(m2.at(k) == doctest::Approx(v));

  const std::vector<std::string> words{"EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."};
  const auto tags = r.predict(words);
  REQUIRE(tags.size() == words.size());
  for (const auto& t : tags) CHECK(std::find(r.labels().begin(), r.labels().end(), t) != r.labels().end());
  CHECK(back.predict(words) == tags);
  // Words past max_length (62 words + [CLS], [SEP]) have no prediction: "O".
  const std::vector<std::string> many(100, "Germany");
  const auto long_tags = r.predict(many);
  REQUIRE(long_tags.size() == 100);
  for (std::size_t i = 62; i < 100; ++i) CHECK(long_tags[i] == "O");
  CHECK_THROWS_AS(back.model.load_peft_head(fresh_dir("ner_no_adapter")), dp::Error);
}

// --- QA --------------------------------------------------------------------------------------------

TEST_CASE("read_qa_task: v1.1 and v2.0 detected; forced version; missing and malformed files") {
  const auto v1 = dp::tasks::read_qa_task(folder(
      "qa_v1", {{"train.json", kSquad / "squad_v1.1_dev" / "dev-v1.1.json"}, {"dev.json", kSquad / "squad_v1.1_dev" / "dev-v1.1.json"}}));
  CHECK(!v1.version_2);
  CHECK(v1.eval.size() == 55);
  CHECK(v1.train.size() + v1.train_dropped == 55);
  CHECK(v1.train.size() >= 50);
  for (const auto& e : v1.train) {  // answers located in the context
    REQUIRE(!e.answers.empty());
    const auto& a = e.answers[0];
    const std::string ctx = e.context;
    CHECK(ctx.find(a.text) != std::string::npos);
  }
  CHECK(v1.eval[0].answers.size() == 3);

  const fs::path v2_dir = folder(
      "qa_v2", {{"train.json", kSquad / "squad_v2.0_dev" / "dev-v2.0.json"}, {"dev.json", kSquad / "squad_v2.0_dev" / "dev-v2.0.json"}});
  const auto v2 = dp::tasks::read_qa_task(v2_dir);
  CHECK(v2.version_2);
  CHECK(v2.eval.size() == 17);
  CHECK(std::count_if(v2.eval.begin(), v2.eval.end(), [](const auto& e) { return e.answers.empty(); }) == 9);
  CHECK(std::count_if(v2.train.begin(), v2.train.end(), [](const auto& e) { return e.answers.empty(); }) == 9);
  const auto forced = dp::tasks::read_qa_task(v2_dir, dp::tasks::SquadVersion::v1);
  CHECK(!forced.version_2);
  CHECK(forced.train_dropped >= 9);

  const fs::path half = fresh_dir("qa_half");
  fs::copy_file(kSquad / "squad_v1.1_dev" / "dev-v1.1.json", half / "train.json");
  auto m = message_of<dp::IoError>([&] { dp::tasks::read_qa_task(half); });
  CHECK(m.find((half / "dev.json").string()) != std::string::npos);

  write(half / "dev.json", R"({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [{"id": "1"}]}]}]})");
  m = message_of<dp::FormatError>([&] { dp::tasks::read_qa_task(half); });
  CHECK(m.find((half / "dev.json").string()) != std::string::npos);
}

TEST_CASE("QaRunner: windows, training lowers the loss; exact/f1; the adapter reads back; predict") {
  auto data = dp::tasks::read_qa_task(folder(
      "qa_train", {{"train.json", kSquad / "squad_v1.1_dev" / "dev-v1.1.json"}, {"dev.json", kSquad / "squad_v1.1_dev" / "dev-v1.1.json"}}));
  data.train.resize(3);
  data.eval.resize(20);
  const dp::tasks::RunnerOptions ro{.max_length = 96, .eval_batch_size = 16, .seed = 3};
  const dp::tasks::QaOptions qo{.doc_stride = 32};
  dp::tasks::QaRunner r(ptv2(), tokenizer(), data, ro, 0.1, qo);
  CHECK(r.train_size() > 3);  // the contexts need several windows of 96 tokens
  CHECK(r.eval_features() > 20);
  for (auto l : r.train_lengths()) CHECK(l <= 96);

  const double before = full_loss(r);
  train_steps(r, "qa_out", "f1", 15);
  const double after = full_loss(r);
  INFO("loss " << before << " -> " << after);
  CHECK(after < before);

  const auto m = r.evaluate();
  for (const char* k : {"exact", "f1"}) {
    INFO(k);
    REQUIRE(m.count(k) == 1);
    CHECK(m.at(k) >= 0.0);
    CHECK(m.at(k) <= 100.0);
  }
  CHECK(m.at("total") == 20);
  CHECK(m.count("HasAns_exact") == 0);

  const fs::path adapter = fresh_dir("qa_adapter");
  r.save(adapter);
  CHECK(task_type(adapter) == "QUESTION_ANS");
  auto eval_only = data;
  eval_only.train.clear();
  dp::tasks::QaRunner back(dp::BertMethod::load(tiny_bert(), adapter), tokenizer(), eval_only, ro, 0.1, qo);
  back.model.load_peft_head(adapter, false);
  back.set_training(false);
  const auto m2 = back.evaluate();
  for (const auto& [k, v] : m) CHECK(m2.at(k) == doctest::Approx(v));

  const std::string context = "The Denver Broncos defeated the Carolina Panthers 24-10 at Levi's Stadium.";
  const std::string answer = r.predict("Who won the game?", context);
  CHECK(!answer.empty());
  CHECK(context.find(answer) != std::string::npos);
  CHECK(back.predict("Who won the game?", context) == answer);

  CHECK_THROWS_AS(dp::tasks::QaRunner(ptv2(), tokenizer(), eval_only, {.max_length = 100}, 0.1), dp::Error);
}

TEST_CASE("QaRunner: SQuAD v2.0 evaluation reports the HasAns / NoAns breakdown") {
  auto data = dp::tasks::read_qa_task(folder(
      "qa_v2_eval", {{"train.json", kSquad / "squad_v2.0_dev" / "dev-v2.0.json"}, {"dev.json", kSquad / "squad_v2.0_dev" / "dev-v2.0.json"}}));
  data.train.resize(2);
  dp::tasks::QaRunner r(ptv2(), tokenizer(), data, {.max_length = 384, .seed = 3});
  CHECK(r.version_2());
  r.set_training(false);
  const auto m = r.evaluate();
  for (const char* k : {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"}) {
    INFO(k);
    REQUIRE(m.count(k) == 1);
    CHECK(m.at(k) >= 0.0);
    CHECK(m.at(k) <= 100.0);
  }
  CHECK(m.at("total") == 17);
  CHECK(m.at("HasAns_total") == 8);
  CHECK(m.at("NoAns_total") == 9);
  // An unanswered question counts as right on the NoAns side: NoAns_exact = % of "" predictions there.
  CHECK(m.at("exact") == doctest::Approx((8 * m.at("HasAns_exact") + 9 * m.at("NoAns_exact")) / 17));
}

}  // namespace test_tasks_runners_ner_qa
