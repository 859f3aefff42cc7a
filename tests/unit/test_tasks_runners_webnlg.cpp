// tasks/runners/seq2seq.hpp: WebNLG data-to-text with T5 on the committed WebNLG sample
// (tests/data/datasets/webnlg/dev, copied as both train/ and dev/) and a random tiny T5 sized
// for the tiny Unigram tokenizer of tests/data/tokenizers: the splits (one pair per text, one
// evaluation item per entry with references, skips counted), the methods (ptv2 freezes the T5,
// full trains it, others refused), train::Trainer lowering the loss, evaluate()'s BLEU and
// ROUGE-L, save -> load giving the same generations, and errors naming the path or field.
#ifdef DEEPPROMPT_TEST_TINYXML2
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "deepprompt/backend/cpu/threads.hpp"
#include "deepprompt/tasks/runners/seq2seq.hpp"

namespace test_tasks_runners_webnlg {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace tasks = deepprompt::tasks;
namespace fs = std::filesystem;
using dp::index_t;

namespace {

// One thread for these tiny tensors: OpenMP's spinning workers make the run many times slower
// on a busy machine, and threads buy nothing at this size.
struct OneThread {
  int saved = dp::cpu::num_threads();
  OneThread() { dp::cpu::set_num_threads(1); }
  ~OneThread() { dp::cpu::set_num_threads(saved); }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dp_webnlg_runner_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}

// The sample's dev folder as both splits.
fs::path data_dir() {
  static const fs::path d = [] {
    const fs::path out = fresh_dir("data");
    const fs::path dev = fs::path(DEEPPROMPT_TEST_DATA) / "datasets" / "webnlg" / "dev";
    for (const char* split : {"train", "dev"}) {
      fs::create_directories(out / split);
      fs::copy(dev, out / split, fs::copy_options::recursive);
    }
    return out;
  }();
  return d;
}

const dp::Tokenizer& tok() {
  static const auto t = dp::UnigramTokenizer::from_tokenizer_json(std::string(DEEPPROMPT_TEST_DATA) +
                                                                  "/tokenizers/tiny_unigram.tokenizer.json");
  return t;
}

// A random T5 for the tokenizer's 800 pieces: d_model 32, 4 heads of 8, 2 + 2 layers.
dp::DynamicT5<float> tiny_t5(std::uint64_t seed = 5) {
  dp::T5Dims d;
  d.d_model = 32, d.d_kv = 8, d.d_ff = 64, d.num_layers = 2, d.num_decoder_layers = 2, d.num_heads = 4;
  d.vocab_size = 800, d.buckets = 16, d.max_distance = 20;
  return dp::DynamicT5<float>(d, seed);
}

const tasks::WebnlgSplits& splits() {
  static const auto s = tasks::read_webnlg_task(data_dir());
  return s;
}

constexpr tasks::Seq2SeqOptions kGen{.max_target_length = 48, .max_new_tokens = 12};

tasks::WebnlgRunner runner(dp::Method m, std::uint64_t t5_seed = 5) {
  return tasks::WebnlgRunner(tasks::T5Method::create(tiny_t5(t5_seed), m, {.tokens = 4, .seed = 3}), tok(), splits(),
                             {.max_length = 64, .eval_batch_size = 4, .seed = 11}, kGen);
}

// Mean loss over every training pair, in eval mode (no dropout), without a tape.
double full_loss(tasks::WebnlgRunner& r) {
  dp::NoGradGuard g;
  r.set_training(false);
  std::vector<index_t> all(static_cast<std::size_t>(r.train_size()));
  std::iota(all.begin(), all.end(), 0);
  const double v = r.loss(all).value().item();
  r.set_training(true);
  return v;
}

dp::train::TrainerOptions trainer_options(const fs::path& out, std::int64_t steps, double lr) {
  return {.max_steps = steps, .batch_size = 5, .lr = lr, .weight_decay = 0.0, .eval_every = steps, .metric = "bleu",
          .seed = 1, .out_dir = out, .progress = dp::train::ProgressMode::off};
}

}  // namespace

TEST_CASE("webnlg runner: one training pair per text, one evaluation item per entry with texts, skips counted") {
  const auto& s = splits();
  // Airport.xml: 4 entries, 6 texts; SportsTeam.xml: 4 entries, 9 texts + Id4's three empty ones
  CHECK(s.train.size() == 15);
  CHECK(s.eval.size() == 7);
  CHECK(s.eval_stats.skipped == 1);
  CHECK(s.eval_stats.reasons.at("no reference") == 1);
  CHECK(s.eval_stats.warning_count("empty lex text") == 3);
  CHECK(s.train.front().source == "<H> Aarhus <R> leader Name <T> Jacob Bundsgaard");
  std::size_t refs = 0;
  for (const auto& e : s.eval) {
    CHECK_FALSE(e.references.empty());
    refs += e.references.size();
  }
  CHECK(refs == s.train.size());  // the same texts, grouped by entry
  CHECK(s.eval.front().source == s.train.front().source);

  const auto dev_only = tasks::read_webnlg_task(data_dir(), false);
  CHECK(dev_only.train.empty());
  CHECK(dev_only.eval.size() == 7);

  const fs::path missing = fresh_dir("no_such_data");
  CHECK_THROWS_WITH_AS(tasks::read_webnlg_task(missing), doctest::Contains((missing / "train").string().c_str()), dp::IoError);
  fs::create_directories(missing / "train");
  CHECK_THROWS_WITH_AS(tasks::read_webnlg_task(missing, false), doctest::Contains((missing / "dev").string().c_str()),
                       dp::IoError);
}

TEST_CASE("webnlg runner: ptv2 trains three prompts on a frozen T5, full trains the T5, other methods are refused") {
  auto ptv2 = tasks::T5Method::create(tiny_t5(), dp::Method::ptv2, {.tokens = 4});
  const auto params = ptv2.trainable_parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0].name == "prompt.encoder.prompt_embeddings");
  CHECK(params[1].name == "prompt.decoder.prompt_embeddings");
  CHECK(params[2].name == "prompt.cross.prompt_embeddings");
  CHECK(params[0].size == 4 * 2 * 2 * 32);
  CHECK(ptv2.tokens() == 4);
  CHECK(dp::parameter_count(ptv2, true) == 3 * 4 * 2 * 2 * 32);

  auto full = tasks::T5Method::create(tiny_t5(), dp::Method::full);
  CHECK_FALSE(full.prompt);
  CHECK(dp::parameter_count(full, true) == dp::parameter_count(full.t5));
  CHECK(full.trainable_parameters().front().name == "shared.weight");

  for (auto m : {dp::Method::lora, dp::Method::prefix, dp::Method::prompt, dp::Method::ptuning, dp::Method::ptv2_hidden})
    CHECK_THROWS_WITH_AS(tasks::T5Method::create(tiny_t5(), m), doctest::Contains("is not available for T5 (ptv2, full)"),
                         dp::Error);
  CHECK_THROWS_WITH_AS(tasks::T5Method::create(tiny_t5(), dp::Method::lora),
                       doctest::Contains("method lora is not available"), dp::Error);
  static_assert(dp::train::TrainTask<tasks::WebnlgRunner>);
}

TEST_CASE("webnlg runner: the trainer lowers the loss; evaluate() gives BLEU and ROUGE-L; save -> load generates alike") {
  const OneThread one;
  for (auto m : {dp::Method::ptv2, dp::Method::full}) {
    CAPTURE(static_cast<int>(m));
    auto r = runner(m);
    REQUIRE(r.train_size() == 15);
    const double before = full_loss(r);
    const fs::path out = fresh_dir(m == dp::Method::ptv2 ? "out_ptv2" : "out_full");
    dp::train::Trainer trainer(r, trainer_options(out, 24, m == dp::Method::ptv2 ? 0.3 : 3e-3));
    const auto best = trainer.train();
    const double after = full_loss(r);
    CHECK(after < before - 0.5);
    MESSAGE("loss ", before, " -> ", after);

    REQUIRE(best.contains("bleu"));
    REQUIRE(best.contains("rouge_l"));
    r.set_training(false);
    const auto metrics = r.evaluate();
    REQUIRE(metrics.size() == 2);
    for (const auto& [k, v] : metrics) {
      CAPTURE(k);
      CHECK(v >= 0.0);
      CHECK(v <= 100.0);
    }
    CHECK(fs::exists(out / "best"));
    CHECK(fs::exists(out / "eval_log.jsonl"));

    // save -> load: the same generations, every parameter frozen
    const fs::path saved = fresh_dir(m == dp::Method::ptv2 ? "saved_ptv2" : "saved_full");
    r.save(saved);
    if (m == dp::Method::ptv2) {
      CHECK(fs::exists(saved / "adapter_model.safetensors"));
      const auto cfg = dp::peft_io::AdapterConfig::read(saved, "test");
      CHECK(cfg.peft_type() == "PREFIX_TUNING");
      CHECK(cfg.task_type() == "SEQ_2_SEQ_LM");
      CHECK(cfg.positive("num_virtual_tokens") == 4);
      CHECK(cfg.positive("token_dim") == 32);
    } else {
      CHECK(fs::exists(saved / "model.safetensors"));
      CHECK(fs::exists(saved / "config.json"));
    }
    std::vector<std::string> sources;
    for (const auto& e : r.eval_items()) sources.push_back(e.source);
    const auto want = r.predict(sources);
    // ptv2 reads the adapter onto the same base T5; full replaces the T5 given (another seed here)
    tasks::WebnlgRunner loaded(tasks::T5Method::load(tiny_t5(m == dp::Method::ptv2 ? 5 : 99), saved), tok(),
                               tasks::read_webnlg_task(data_dir(), false), {.max_length = 64, .eval_batch_size = 4},
                               kGen);
    CHECK(loaded.model.method() == m);
    CHECK(loaded.trainable_parameters().empty());
    CHECK(loaded.predict(sources) == want);
    CHECK(loaded.evaluate() == metrics);
  }
}

TEST_CASE("webnlg runner: load() names the file and field of an adapter it cannot use") {
  auto r = runner(dp::Method::ptv2);
  const fs::path dir = fresh_dir("bad_adapter");
  r.save(dir);
  // another T5 shape
  dp::T5Dims d = r.model.t5.dims();
  d.num_decoder_layers = 3;
  CHECK_THROWS_WITH_AS(tasks::T5Method::load(dp::DynamicT5<float>(d, 1), dir),
                       doctest::Contains("\"num_decoder_layers\" is 2 but the T5 has 3 decoder layers"),
                       dp::FormatError);
  // a BERT-style PREFIX_TUNING adapter (no T5 parts)
  auto text = dp::read_text_file(dir / "adapter_config.json");
  auto j = nlohmann::json::parse(text);
  j.erase("deepprompt_t5_parts");
  std::ofstream(dir / "adapter_config.json") << j.dump(2);
  CHECK_THROWS_WITH_AS(tasks::T5Method::load(tiny_t5(), dir),
                       doctest::Contains(((dir / "adapter_config.json").string() + "': field \"deepprompt_t5_parts\"").c_str()),
                       dp::FormatError);
  j["deepprompt_t5_parts"] = {"encoder", "middle"};
  std::ofstream(dir / "adapter_config.json") << j.dump(2);
  CHECK_THROWS_WITH_AS(tasks::T5Method::load(tiny_t5(), dir), doctest::Contains("holds \"middle\""), dp::FormatError);
  // no adapter at all
  const fs::path empty = fresh_dir("empty_adapter");
  fs::create_directories(empty);
  CHECK_THROWS_WITH_AS(tasks::T5Method::load(tiny_t5(), empty), doctest::Contains(empty.string().c_str()), dp::IoError);
  CHECK_THROWS_WITH_AS(tasks::load_t5_tokenizer(empty), doctest::Contains("has no tokenizer.json"), dp::IoError);
}
}  // namespace test_tasks_runners_webnlg

#endif  // DEEPPROMPT_TEST_TINYXML2
