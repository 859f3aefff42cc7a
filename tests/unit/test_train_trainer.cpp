// train/: the epoch order (shuffling, bucketing), crash-safe folders, and the Trainer on a toy
// task (a linear classifier with input dropout on separable data): the loss falls and the best
// model is saved; an interrupted run resumed from its checkpoint ends with the same parameters,
// bit for bit, as one that ran straight through; a NaN loss stops the run before any update;
// early stopping; the progress lines and the evaluation log.
#include "deepprompt/ops/cross_entropy.hpp"
#include "deepprompt/ops/dropout.hpp"
#include "deepprompt/ops/linear.hpp"
#include "deepprompt/train/trainer.hpp"
#include "toy_task.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

namespace test_train_trainer {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
namespace fs = std::filesystem;
using dp::index_t;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dp_trainer_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}

static_assert(dp::train::TrainTask<dp_test::ToyTask>);
using dp_test::ToyTask;

dp::train::TrainerOptions options(const fs::path& out) {
  return {.epochs = 3, .batch_size = 8, .grad_accumulation = 2, .lr = 0.05, .warmup_ratio = 0.1, .out_dir = out,
          .progress = dp::train::ProgressMode::off};
}

}  // namespace

TEST_CASE("epoch_batches: a seeded permutation; bucketing sorts each mega-batch and puts the longest first") {
  const index_t n = 1000;
  std::vector<index_t> lengths(n);
  for (index_t i = 0; i < n; ++i) lengths[i] = (i * 37) % 101;
  const auto a = dp::train::epoch_batches(n, 7, 11, 0);
  CHECK(a.size() == 143);  // ceil(1000 / 7)
  CHECK(a.back().size() == 6);
  std::set<index_t> seen;
  for (const auto& b : a) seen.insert(b.begin(), b.end());
  CHECK(seen.size() == std::size_t(n));
  CHECK(a == dp::train::epoch_batches(n, 7, 11, 0));  // a pure function of its arguments
  CHECK(a != dp::train::epoch_batches(n, 7, 11, 1));  // another epoch, another order
  CHECK(a != dp::train::epoch_batches(n, 7, 12, 0));
  const auto u = dp::train::epoch_batches(n, 7, 11, 0, {}, false, false);
  CHECK(u[1] == std::vector<index_t>{7, 8, 9, 10, 11, 12, 13});

  const auto bk = dp::train::epoch_batches(n, 4, 11, 0, lengths, true);
  CHECK(lengths[bk[0][0]] == 100);  // the longest example's batch first
  index_t spread = 0;
  for (const auto& b : bk) spread += lengths[b.front()] - lengths[b.back()];
  CHECK(spread < 2 * index_t(bk.size()));  // batches of nearly equal lengths (random order: ~50 each)
  CHECK_THROWS_WITH_AS(dp::train::epoch_batches(n, 0, 1, 0), "epoch_batches: the batch size must be positive, got 0",
                       dp::Error);
}

TEST_CASE("AtomicDir: the target is replaced whole; leftovers of a crash are cleaned or recovered") {
  const fs::path root = fresh_dir("atomic"), target = root / "ckpt";
  fs::create_directories(root);
  for (int version : {1, 2}) {
    dp::train::AtomicDir d(target);
    std::ofstream(d.path() / "v.txt") << version;
    CHECK(!fs::exists(target / "v.txt") == (version == 1));
    d.commit();
    std::ifstream in(target / "v.txt");
    int got = 0;
    in >> got;
    CHECK(got == version);
  }
  { dp::train::AtomicDir abandoned(target); std::ofstream(abandoned.path() / "x") << 1; }  // no commit
  CHECK(std::distance(fs::directory_iterator(root), fs::directory_iterator()) == 1);
  fs::rename(target, root / ".ckpt.old");  // a crash between the fallback's two renames
  CHECK(dp::train::recover_folder(target));
  CHECK(fs::exists(target / "v.txt"));
  fs::remove_all(root);
}

TEST_CASE("Trainer: the loss falls, every evaluation is logged, the best model is saved") {
  const fs::path out = fresh_dir("basic");
  ToyTask task;
  const double before = task.evaluate()["accuracy"];
  dp::train::Trainer trainer(task, options(out));
  CHECK(trainer.steps_per_epoch() == 6);  // 12 batches of 8, 2 per step
  const auto best = trainer.train();
  CHECK(before == doctest::Approx(0.5));
  CHECK(best.at("accuracy") > 0.85);
  CHECK(trainer.state().global_step == 18);
  CHECK(fs::exists(out / "best" / "adapter_model.safetensors"));
  CHECK(fs::exists(out / "checkpoint" / "trainer_state.json"));
  std::ifstream log(out / "eval_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j.at("step").get<int>() == 6 * (lines + 1));
    CHECK(j.contains("accuracy"));
    CHECK(j.contains("train_loss"));
  }
  CHECK(lines == 3);
  fs::remove_all(out);
}

TEST_CASE("Trainer: an interrupted run resumed from its checkpoint equals the uninterrupted run, bit for bit") {
  for (std::int64_t eval_every : {0, 4}) {
    INFO("eval_every " << eval_every);
    const fs::path a_dir = fresh_dir("straight"), b_dir = fresh_dir("resumed");
    ToyTask a;
    auto oa = options(a_dir);
    oa.eval_every = eval_every;
    dp::train::Trainer(a, oa).train();

    ToyTask b1;
    auto ob = options(b_dir);
    ob.eval_every = eval_every;
    ob.stop_after = 7;  // mid-epoch (6 steps an epoch), between evaluations
    dp::train::Trainer(b1, ob).train();
    CHECK(b1.gen.offset() != a.gen.offset());
    ToyTask b2;  // a new process: fresh parameters and generator
    ob.stop_after = 0;
    ob.resume = true;
    dp::train::Trainer t2(b2, ob);
    t2.train();
    CHECK(t2.state().global_step == 18);
    CHECK(std::equal(a.w.value().data(), a.w.value().data() + a.w.size(), b2.w.value().data()));
    CHECK(std::equal(a.b.value().data(), a.b.value().data() + a.b.size(), b2.b.value().data()));
    CHECK(a.gen.offset() == b2.gen.offset());
    // the same losses: the evaluation logs (step, train_loss, accuracy) agree line for line, exactly
    // (the interruption at step 7 falls between evaluations: the loss sum since the last one is in the checkpoint)
    std::ifstream la(a_dir / "eval_log.jsonl"), lb(b_dir / "eval_log.jsonl");
    int lines = 0;
    for (std::string x, y; std::getline(la, x); ++lines) {
      REQUIRE(std::getline(lb, y));
      const auto jx = nlohmann::json::parse(x), jy = nlohmann::json::parse(y);
      CHECK(jx.at("step") == jy.at("step"));
      CHECK(jx.at("train_loss").get<double>() == jy.at("train_loss").get<double>());
      CHECK(jx.at("accuracy").get<double>() == jy.at("accuracy").get<double>());
    }
    std::string extra;
    CHECK(!std::getline(lb, extra));
    CHECK(lines == (eval_every ? 5 : 3));
    fs::remove_all(a_dir), fs::remove_all(b_dir);
  }
}

TEST_CASE("Trainer: a NaN loss stops the run with the step named, before any update") {
  const fs::path out = fresh_dir("nan");
  ToyTask task;
  task.poison = std::numeric_limits<float>::quiet_NaN();
  auto w0 = task.w.value().clone();
  dp::train::Trainer trainer(task, options(out));
  CHECK_THROWS_WITH_AS(trainer.train(), doctest::Contains("the loss is nan at step 1 (epoch 1, batch 1"), dp::Error);
  CHECK(std::equal(w0.data(), w0.data() + w0.size(), task.w.value().data()));
  fs::remove_all(out);
}

TEST_CASE("Trainer: early stopping after `patience` evaluations without improvement; resume refuses another run") {
  const fs::path out = fresh_dir("patience");
  ToyTask task;
  task.scripted = {0.6, 0.7, 0.65, 0.7, 0.69, 0.9, 0.9, 0.9, 0.9};
  auto o = options(out);
  o.epochs = 9;
  o.patience = 3;
  dp::train::Trainer trainer(task, o);
  const auto best = trainer.train();
  CHECK(task.evaluations == 5);  // 0.7 at the 2nd, then 3 without improvement (equal is not better)
  CHECK(best.at("accuracy") == 0.7);
  CHECK(trainer.state().best_step == 12);

  ToyTask other;
  auto o2 = o;
  o2.resume = true;
  o2.batch_size = 4;  // another horizon
  CHECK_THROWS_WITH_AS(dp::train::Trainer(other, o2).train(), doctest::Contains("cannot resume from"), dp::Error);
  fs::remove_all(out);
}

TEST_CASE("Progress: plain lines every N steps when not on a terminal") {
  std::FILE* f = std::tmpfile();
  {
    dp::train::Progress p(dp::train::ProgressMode::automatic, 20, 10, f);  // a file: lines
    CHECK(p.mode() == dp::train::ProgressMode::lines);
    for (int s = 1; s <= 20; ++s) p.update(s, s / 10.0, 0.5, 1e-3, 8);
    p.message("eval at step 20: accuracy 1");
  }
  std::rewind(f);
  char buf[512];
  std::vector<std::string> lines;
  while (std::fgets(buf, sizeof buf, f)) lines.emplace_back(buf);
  std::fclose(f);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind("step 10/20 epoch 1.00 loss 0.5000 lr 0.001 ", 0) == 0);
  CHECK(lines[0].find("samples/s ETA ") != std::string::npos);
  CHECK(lines[2] == "eval at step 20: accuracy 1\n");
  CHECK(dp::train::Progress::clock(3725) == "1:02:05");
  CHECK(dp::train::Progress::clock(65) == "01:05");
}

}  // namespace test_train_trainer
