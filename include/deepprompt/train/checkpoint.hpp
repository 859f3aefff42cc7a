#pragma once
// Crash-safe folders, and the state a resumed training run needs to continue bit for bit.
//
// AtomicDir represents a folder being written: files go into a hidden temporary folder beside
// the target, and commit() flushes them and puts the folder in place in one step: rename()
// when the target does not exist, else Linux's renameat2(RENAME_EXCHANGE), which swaps the two
// folders atomically (the old one is then removed). At every instant the target is absent, the
// complete old folder or the complete new one; a crash leaves at most a hidden temporary
// folder, which the next AtomicDir for the same target removes. Where the file system cannot
// exchange (EINVAL), the old folder is first renamed aside (`.<name>.old`), and
// recover_folder() takes it back if a crash came between the two renames.
//
// TrainerState is what trainer.hpp saves next to the trainable parameters and the optimiser's
// moments: counters, the dropout generator's position, the best metric and the patience.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/file.hpp"

namespace deepprompt::train {

namespace ckpt_detail {
inline void fsync_path(const std::filesystem::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: some file systems cannot flush a folder
  ::close(fd);
}
inline std::filesystem::path sibling(const std::filesystem::path& target, const char* tag) {
  const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  return dir / ("." + target.filename().string() + tag);
}
}  // namespace ckpt_detail

/// If a crash left `target` renamed aside by AtomicDir's fallback, puts it back. Returns true
/// when `target` exists afterwards.
inline bool recover_folder(const std::filesystem::path& target) {
  std::error_code ec;
  const auto old = ckpt_detail::sibling(target, ".old");
  if (!std::filesystem::exists(target, ec) && std::filesystem::is_directory(old, ec))
    std::filesystem::rename(old, target, ec);
  return std::filesystem::is_directory(target, ec);
}

class AtomicDir {
 public:
  /// Starts writing a new version of `target`. Throws IoError when the temporary folder cannot
  /// be made.
  explicit AtomicDir(std::filesystem::path target) : target_(std::move(target)) {
    recover_folder(target_);
    temp_ = ckpt_detail::sibling(target_, ".tmp");
    std::error_code ec;
    std::filesystem::remove_all(temp_, ec);  // a crashed earlier attempt
    if (!std::filesystem::create_directories(temp_, ec) || ec)
      throw deepprompt::detail::io_error("cannot create the temporary folder", temp_, ec ? ec.value() : EEXIST);
  }
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  ~AtomicDir() {
    std::error_code ec;
    if (!temp_.empty()) std::filesystem::remove_all(temp_, ec);
  }

  /// Where to write the files (complete each with AtomicFile or a closed stream before commit()).
  const std::filesystem::path& path() const { return temp_; }

  /// Flushes every file and puts the folder in place (see the top). Throws IoError.
  void commit() {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(temp_, ec))
      ckpt_detail::fsync_path(e.path(), e.is_directory());
    ckpt_detail::fsync_path(temp_, true);
    if (!std::filesystem::exists(target_, ec)) {
      if (::rename(temp_.c_str(), target_.c_str()) != 0) throw deepprompt::detail::io_error("cannot rename into", target_, errno);
    } else if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
      std::filesystem::remove_all(temp_, ec);  // now the old version
    } else {
      const auto old = ckpt_detail::sibling(target_, ".old");
      std::filesystem::remove_all(old, ec);
      if (::rename(target_.c_str(), old.c_str()) != 0) throw deepprompt::detail::io_error("cannot move aside", target_, errno);
      if (::rename(temp_.c_str(), target_.c_str()) != 0) throw deepprompt::detail::io_error("cannot rename into", target_, errno);
      std::filesystem::remove_all(old, ec);
    }
    temp_.clear();
    const auto parent = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    ckpt_detail::fsync_path(parent, true);
  }

 private:
  std::filesystem::path target_, temp_;
};

/// The counters and positions of a training run (trainer_state.json in a checkpoint).
struct TrainerState {
  std::int64_t global_step = 0;        // optimiser steps taken
  std::int64_t epoch = 0;              // the epoch in progress (0-based)
  std::int64_t batches_in_epoch = 0;   // batches of that epoch already consumed
  std::uint64_t rng_seed = 0, rng_offset = 0;  // the dropout generator
  double best_metric = 0;              // meaningful when best_step >= 0
  std::int64_t best_step = -1;
  std::int64_t evals_without_improvement = 0;
  std::uint64_t data_seed = 0;         // the shuffling seed the run started with
  std::int64_t total_steps = 0;        // the schedule's horizon
  std::string fingerprint;             // parameter names and sizes: a resume must match them
  std::vector<std::uint64_t> rng_offsets;  // every rank's dropout-stream position (data-parallel)
  double loss_sum = 0;                 // training losses since the last evaluation (its log's train_loss)
  std::int64_t loss_steps = 0;         // ... and their count

  nlohmann::json to_json() const {
    return {{"global_step", global_step}, {"epoch", epoch}, {"batches_in_epoch", batches_in_epoch},
            {"rng_seed", rng_seed}, {"rng_offset", rng_offset}, {"best_metric", best_metric},
            {"best_step", best_step}, {"evals_without_improvement", evals_without_improvement},
            {"data_seed", data_seed}, {"total_steps", total_steps}, {"fingerprint", fingerprint},
            {"rng_offsets", rng_offsets}, {"loss_sum", loss_sum}, {"loss_steps", loss_steps}};
  }
  /// Throws FormatError naming the file and the field when a field is missing or mistyped.
  static TrainerState from_json(const nlohmann::json& j, const std::filesystem::path& file) {
    TrainerState s;
    auto get = [&](const char* key, auto& out) {
      try {
        out = j.at(key).get<std::remove_reference_t<decltype(out)>>();
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(deepprompt::detail::cat("'", file.string(), "': field \"", key, "\": ", e.what()));
      }
    };
    get("global_step", s.global_step), get("epoch", s.epoch), get("batches_in_epoch", s.batches_in_epoch);
    get("rng_seed", s.rng_seed), get("rng_offset", s.rng_offset), get("best_metric", s.best_metric);
    get("best_step", s.best_step), get("evals_without_improvement", s.evals_without_improvement);
    get("data_seed", s.data_seed), get("total_steps", s.total_steps), get("fingerprint", s.fingerprint);
    if (j.contains("rng_offsets")) get("rng_offsets", s.rng_offsets);
    if (j.contains("loss_sum")) get("loss_sum", s.loss_sum), get("loss_steps", s.loss_steps);
    return s;
  }
};

}  // namespace deepprompt::train
