#pragma once
// The tape: the list of backward steps recorded as the program runs (reverse mode, Stan Math
// style). Each op that produces a Var needing a gradient records one step; backward() runs them
// in reverse order, each step *accumulating* into its inputs' gradients, and then releases the
// tape (its steps and Var nodes live in an arena that is reused by the next forward pass).
//
// There is one tape per thread: tape(). NoGradGuard turns recording off (inference).
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "arena.hpp"

namespace deepprompt {

/// The gradient slot of a Var that needs one. Parameters own theirs (persistent buffer); the
/// nodes of intermediate results live in the tape's arena and get a buffer on first use. The
/// gradient lives on the Var's device D.
template <class T, std::size_t Rank, DevicePolicy D = Cpu>
struct VarNode {
  using Grad = Tensor<T, Rank, D>;
  Grad grad;  // empty until something is accumulated
  Shape<Rank> shape{};

  explicit VarNode(const Shape<Rank>& s) : shape(s) {}
  /// The gradient buffer to accumulate into; allocated and zeroed on first use.
  const Grad& accumulator() {
    if (grad.empty()) grad = filled<T, Rank, D>(shape, T{});
    return grad;
  }
  /// The same for an op that can overwrite: on first use the buffer is NOT zeroed and `fresh`
  /// is set, and the caller must then write every element (e.g. a GEMM with beta = 0); else
  /// `fresh` is false and the caller accumulates. Saves zeroing and re-reading the buffer.
  const Grad& accumulator(bool& fresh) {
    fresh = grad.empty();
    if (fresh) grad = Grad(shape);
    return grad;
  }
};

/// One recorded backward step (one virtual call per op, never per element).
class BackwardStep {
 public:
  virtual void run() = 0;
  virtual ~BackwardStep() = default;
};

class Tape {
 public:
  Tape() { steps_.reserve(1024); }
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  bool grad_enabled() const { return grad_enabled_; }
  void set_grad_enabled(bool on) { grad_enabled_ = on; }
  /// Changes whenever the tape is released; Vars of an older generation are dead.
  std::uint64_t generation() const { return generation_; }
  Arena& arena() { return arena_; }
  std::size_t size() const { return steps_.size(); }

  /// Records `f(dy)` to run in backward(), where dy is the gradient reaching `out`. The step is
  /// skipped when nothing reached `out`; afterwards out's gradient is dropped (it is consumed).
  /// requires: f only accumulates (+=) into its inputs' gradients.
  template <class Node, class F>
  void record(Node* out, F&& f) {
    steps_.push_back(arena_.make<Step<Node, std::decay_t<F>>>(out, std::forward<F>(f)));
  }

  /// Runs every recorded step in reverse order, then releases the tape.
  void backward() {
    if (running_) throw AutodiffError("backward(): called again from inside a backward step");
    running_ = true;
    try {
      for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)->run();
    } catch (...) {
      running_ = false;
      release();
      throw;
    }
    running_ = false;
    release();
  }

  /// Drops all recorded steps and intermediate Var nodes (use after a forward pass whose
  /// gradient is not wanted, e.g. evaluation without NoGradGuard).
  void release() {
    steps_.clear();
    arena_.reset();
    ++generation_;
  }

 private:
  template <class Node, class F>
  class Step final : public BackwardStep {
   public:
    Step(Node* out, F f) : out_(out), f_(std::move(f)) {}
    void run() override {
      if (out_->grad.empty()) return;
      f_(static_cast<const typename Node::Grad&>(out_->grad));
      out_->grad = typename Node::Grad();
    }

   private:
    Node* out_;
    F f_;
  };

  Arena arena_;
  std::vector<BackwardStep*> steps_;
  std::uint64_t generation_ = 1;
  bool grad_enabled_ = true;
  bool running_ = false;
};

/// This thread's tape.
inline Tape& tape() {
  thread_local Tape t;
  return t;
}

/// Within its scope ops record nothing and their results need no gradient (like torch.no_grad).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(tape().grad_enabled()) { tape().set_grad_enabled(false); }
  ~NoGradGuard() { tape().set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace deepprompt
