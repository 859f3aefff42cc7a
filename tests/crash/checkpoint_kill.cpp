// Crash-safe checkpoints (issue 9): a writer process is killed with SIGKILL at random points while
// it trains and saves a checkpoint after every optimiser step; after every kill
//   - the checkpoint folder still loads: it is the previous complete checkpoint or the new complete
//     one, never a mix (what a killed save leaves is at most a hidden temporary, not a checkpoint);
//   - its step never goes backwards (the previous checkpoint is never lost);
//   - resuming from it runs to the end with the same final weights, bit for bit, as a run that was
//     never interrupted (so parameters, optimiser moments, schedule, dropout position and counters
//     in the folder all belong to one and the same step).
// The run goes on until enough kills have landed in the middle of a save (a hidden temporary left
// behind), so the test cannot pass by only killing between saves.
//
// Usage: deepprompt_crash_test            (the driver; exit status 0 when every check holds)
//        deepprompt_crash_test write DIR  (the writer, started by the driver with fork + exec, so
//                                          that it owns a fresh OpenMP runtime)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "../unit/toy_task.hpp"

namespace dp = deepprompt;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kEpochs = 8;     // 6 steps an epoch: 48 checkpoints a run
constexpr int kWantMidSave = 12;        // kills that must land inside a save
constexpr int kMaxKills = 400;

dp::train::TrainerOptions options(const fs::path& out, bool resume) {
  return {.epochs = kEpochs, .batch_size = 8, .grad_accumulation = 2, .lr = 0.05, .warmup_ratio = 0.1,
          .eval_every = 1, .out_dir = out, .resume = resume, .progress = dp::train::ProgressMode::off};
}

int fail(const std::string& what) {
  std::fprintf(stderr, "checkpoint_kill: FAILED: %s\n", what.c_str());
  return 1;
}

struct Weights {
  std::vector<float> w, b;
  bool operator==(const Weights&) const = default;
};
Weights weights_of(const dp_test::ToyTask& t) {
  return {{t.w.value().data(), t.w.value().data() + t.w.size()}, {t.b.value().data(), t.b.value().data() + t.b.size()}};
}

// Trains from `dir`'s checkpoint (or from scratch) to the end.
Weights finish(const fs::path& dir) {
  dp_test::ToyTask task;
  dp::train::Trainer(task, options(dir, true)).train();
  return weights_of(task);
}

std::int64_t checkpoint_step(const fs::path& dir) {
  std::ifstream in(dir / "checkpoint" / "trainer_state.json");
  return nlohmann::json::parse(in).at("global_step").get<std::int64_t>();
}

pid_t spawn_writer(const char* self, const fs::path& dir) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(self, self, "write", dir.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int driver(const char* self) {
  const fs::path root = fs::temp_directory_path() / ("dp_checkpoint_kill_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path run = root / "run", scratch = root / "scratch";

  const Weights reference = finish(root / "reference");  // never interrupted

  // How long one whole writer run takes, start-up included: the range of the kill times.
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  ::waitpid(spawn_writer(self, run), &status, 0);
  const auto full_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("an uninterrupted writer run failed");
  if (checkpoint_step(run) != kEpochs * 6) return fail("the uninterrupted writer did not reach the last step");
  fs::remove_all(run);

  std::mt19937_64 rng(20261129);
  std::uniform_int_distribution<long> delay(0, full_us);
  int kills = 0, mid_save = 0, completed = 0;
  std::int64_t previous = -1;  // the step of the checkpoint seen after the last kill; -1: none yet
  while (mid_save < kWantMidSave && kills < kMaxKills) {
    const pid_t pid = spawn_writer(self, run);
    ::usleep(static_cast<useconds_t>(delay(rng)));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {  // it finished first: a clean end, then start over
      if (WEXITSTATUS(status) != 0) return fail("a writer run exited with status " + std::to_string(WEXITSTATUS(status)));
      ++completed;
      fs::remove_all(run);
      previous = -1;
      continue;
    }
    ++kills;
    if (fs::exists(run / ".checkpoint.tmp")) ++mid_save;
    dp::train::recover_folder(run / "checkpoint");
    if (!fs::exists(run / "checkpoint")) {
      if (previous >= 0) return fail("the previous checkpoint (step " + std::to_string(previous) + ") is gone");
      continue;
    }
    std::int64_t step = -1;
    try {
      step = checkpoint_step(run);
      if (step < previous)
        return fail("the checkpoint went back from step " + std::to_string(previous) + " to " + std::to_string(step));
      fs::remove_all(scratch);
      fs::copy(run, scratch, fs::copy_options::recursive);
      if (!(finish(scratch) == reference))
        return fail("resuming from the checkpoint of step " + std::to_string(step) + " did not end where an uninterrupted run ends");
    } catch (const std::exception& e) {
      return fail("the checkpoint left by kill " + std::to_string(kills) + " does not load: " + e.what());
    }
    previous = step;
  }
  // The next writer removes what a killed save left behind.
  ::waitpid(spawn_writer(self, run), &status, 0);
  const bool clean = !fs::exists(run / ".checkpoint.tmp") && checkpoint_step(run) == kEpochs * 6;
  std::printf("checkpoint_kill: %d kills (%d inside a save), %d runs finished before their kill, writer run %.0f ms\n",
              kills, mid_save, completed, full_us / 1e3);
  fs::remove_all(root);
  if (mid_save < kWantMidSave) return fail("too few kills landed inside a save: " + std::to_string(mid_save));
  if (!clean) return fail("a leftover temporary was not cleaned up by the next writer");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "write") {
      finish(argv[2]);
      return 0;
    }
    if (argc != 1) return std::fprintf(stderr, "usage: %s [write DIR]\n", argv[0]), 2;
    return driver("/proc/self/exe");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
