#pragma once
// Progress of a training run, for people and for programs.
//
// Progress represents what a user watches: step, epoch, loss, learning rate, samples/s and the
// estimated time left. On a terminal it redraws one line in place (a bar); otherwise (a log
// file, CI) it prints a plain line every `every` steps, so that logs stay readable.
// EvalLog appends one JSON object per evaluation to a JSONL file (eval_log.jsonl), each line
// written whole and flushed, so that a crash leaves every finished line intact.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "../io/file.hpp"

namespace deepprompt::train {

enum class ProgressMode { automatic, bar, lines, off };

class Progress {
 public:
  /// total_steps: the run's optimiser steps (> 0); every: lines mode prints every N steps.
  Progress(ProgressMode mode, std::int64_t total_steps, std::int64_t every = 10, std::FILE* out = stderr)
      : out_(out), total_(total_steps), every_(every > 0 ? every : 1) {
    if (mode == ProgressMode::automatic) mode = ::isatty(::fileno(out)) ? ProgressMode::bar : ProgressMode::lines;
    mode_ = mode;
    start_ = std::chrono::steady_clock::now();
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() {
    if (mode_ == ProgressMode::bar && drawn_) std::fputc('\n', out_);
  }

  /// After optimiser step `step` (1-based) of epoch `epoch` (1-based), with the mean loss of the
  /// step and the samples it took.
  void update(std::int64_t step, double epoch, double loss, double lr, std::int64_t samples) {
    samples_ += samples;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(samples_) / elapsed : 0.0;
    const double per_step = elapsed / static_cast<double>(++steps_seen_);  // mean seconds a step so far
    const double eta = per_step * static_cast<double>(std::max<std::int64_t>(0, total_ - step));
    char line[256];
    if (mode_ == ProgressMode::bar) {
      constexpr int width = 24;
      const int filled = total_ > 0 ? static_cast<int>(width * std::min<double>(1.0, double(step) / double(total_))) : 0;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.append(static_cast<std::size_t>(width - filled), ' ');
      std::snprintf(line, sizeof line, "\r[%s] step %lld/%lld epoch %.2f loss %.4f lr %.3g %.1f samples/s ETA %s ",
                    bar.c_str(), static_cast<long long>(step), static_cast<long long>(total_), epoch, loss, lr, rate,
                    clock(eta).c_str());
      std::fputs(line, out_);
      std::fflush(out_);
      drawn_ = true;
    } else if (mode_ == ProgressMode::lines && (step % every_ == 0 || step == total_)) {
      std::snprintf(line, sizeof line, "step %lld/%lld epoch %.2f loss %.4f lr %.3g %.1f samples/s ETA %s\n",
                    static_cast<long long>(step), static_cast<long long>(total_), epoch, loss, lr, rate,
                    clock(eta).c_str());
      std::fputs(line, out_);
      std::fflush(out_);
    }
  }

  /// A message on its own line (an evaluation, a checkpoint), not overwritten by the bar.
  void message(const std::string& text) {
    if (mode_ == ProgressMode::off) return;
    if (mode_ == ProgressMode::bar && drawn_) std::fputc('\n', out_);
    drawn_ = false;
    std::fputs((text + "\n").c_str(), out_);
    std::fflush(out_);
  }

  ProgressMode mode() const { return mode_; }

  /// "h:mm:ss" or "mm:ss".
  static std::string clock(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
    const auto s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
    return buf;
  }

 private:
  std::FILE* out_;
  ProgressMode mode_ = ProgressMode::lines;
  std::int64_t total_, every_, samples_ = 0, steps_seen_ = 0;
  std::chrono::steady_clock::time_point start_;
  bool drawn_ = false;
};

/// Appends evaluation records to a JSONL file. Throws IoError when the file cannot be written.
class EvalLog {
 public:
  explicit EvalLog(std::filesystem::path path) : path_(std::move(path)) {}
  void append(const nlohmann::json& record) const {
    std::ofstream out(path_, std::ios::app);
    out << record.dump() << '\n';
    out.flush();
    if (!out) throw deepprompt::detail::io_error("append", path_, errno);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace deepprompt::train
