#pragma once
// Learning-rate schedules as Hugging Face writes them (transformers.optimization): each is a
// multiplier f(step) of the base learning rate, evaluated with the same double arithmetic as
// the Python lambdas; and LRScheduler, torch's LambdaLR: lr = base_lr * f(step), where base_lr is
// the optimiser's lr when the scheduler is made, which sets lr = base_lr * f(0) at once.
//
//   dp::AdamW<float> opt{params, {.lr = 1e-2}};
//   dp::LRScheduler sched{opt, dp::schedule::linear_with_warmup(100, 1000)};   // lr = 0 now
//   for (...) { ...; opt.step(); sched.step(); }
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <numbers>

#include "../core/error.hpp"

namespace deepprompt {

namespace schedule {

/// get_constant_schedule: 1.
struct Constant {
  double operator()(std::int64_t) const { return 1.0; }
};

/// get_constant_schedule_with_warmup: step / warmup during the warmup, then 1.
struct ConstantWithWarmup {
  std::int64_t warmup;
  double operator()(std::int64_t step) const {
    if (step < warmup) return static_cast<double>(step) / std::max(1.0, static_cast<double>(warmup));
    return 1.0;
  }
};

/// get_linear_schedule_with_warmup: step / warmup, then linear from 1 to 0 at `total`, then 0.
struct LinearWithWarmup {
  std::int64_t warmup, total;
  double operator()(std::int64_t step) const {
    if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup));
    return std::max(0.0, static_cast<double>(total - step) /
                             static_cast<double>(std::max<std::int64_t>(1, total - warmup)));
  }
};

/// get_cosine_schedule_with_warmup: step / warmup, then 0.5 (1 + cos(pi * cycles * 2 * progress))
/// with progress = (step - warmup) / (total - warmup): from 1 down to 0 at `total` for the
/// default half cycle, and clamped at 0 (for cycles > 0.5 it rises again, as in HF).
struct CosineWithWarmup {
  std::int64_t warmup, total;
  double num_cycles = 0.5;
  double operator()(std::int64_t step) const {
    if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup));
    const double progress = static_cast<double>(step - warmup) /
                            static_cast<double>(std::max<std::int64_t>(1, total - warmup));
    return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
  }
};

inline Constant constant() { return {}; }
inline ConstantWithWarmup constant_with_warmup(std::int64_t warmup) { return {warmup}; }
inline LinearWithWarmup linear_with_warmup(std::int64_t warmup, std::int64_t total) { return {warmup, total}; }
inline CosineWithWarmup cosine_with_warmup(std::int64_t warmup, std::int64_t total, double num_cycles = 0.5) {
  return {warmup, total, num_cycles};
}

}  // namespace schedule

/// What a scheduler needs of an optimiser.
template <class Opt>
concept HasLearningRate = requires(Opt& o, double lr) {
  { o.lr() } -> std::convertible_to<double>;
  o.set_lr(lr);
};

/// torch.optim.lr_scheduler.LambdaLR over one learning rate. Keeps a reference to `opt`, which
/// must outlive it. step() after each optimiser step.
template <HasLearningRate Opt>
class LRScheduler {
 public:
  /// base_lr = opt.lr(); sets opt's lr to base_lr * f(0).
  LRScheduler(Opt& opt, std::function<double(std::int64_t)> f) : opt_(&opt), f_(std::move(f)), base_(opt.lr()) {
    check(static_cast<bool>(f_), "LRScheduler: empty schedule function");
    apply();
  }

  /// Advances one step: lr = base_lr * f(last_step() + 1).
  void step() {
    ++step_;
    apply();
  }

  /// Continues a saved schedule: last_step() = step, lr = base_lr * f(step).
  void restore(std::int64_t step) {
    step_ = step;
    apply();
  }

  double base_lr() const { return base_; }
  /// The learning rate set last (torch's get_last_lr()).
  double lr() const { return lr_; }
  /// Steps taken (torch's last_epoch): 0 right after construction.
  std::int64_t last_step() const { return step_; }

 private:
  void apply() {
    lr_ = base_ * f_(step_);
    opt_->set_lr(lr_);
  }

  Opt* opt_;
  std::function<double(std::int64_t)> f_;
  double base_;
  double lr_ = 0;
  std::int64_t step_ = 0;
};

}  // namespace deepprompt
