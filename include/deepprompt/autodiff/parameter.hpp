#pragma once
// Parameter<T, Rank, Device>: a named, persistent tensor that a model learns (or keeps frozen);
// value and gradient live on Device (Cpu by default).
//
// A trainable parameter owns a gradient buffer that backward() accumulates into, allocated on
// first use (the first backward pass, or grad(); a model only run forward never holds one);
// a frozen one has none at all, and ops skip the work that would only compute its gradient (the weight
// GEMM of a frozen Linear is never run). Move-only, like the module that owns it.
#include <memory>
#include <string>
#include <type_traits>

#include "var.hpp"

namespace deepprompt {

template <class T, std::size_t Rank, DevicePolicy D = Cpu>
class Parameter {
 public:
  using Value = Tensor<T, Rank, D>;

  Parameter() = default;
  Parameter(std::string name, Value value, bool trainable = true)
      : name_(std::move(name)), value_(std::move(value)) {
    set_trainable(trainable);
  }
  Parameter(Parameter&&) noexcept = default;
  Parameter& operator=(Parameter&&) noexcept = default;

  const std::string& name() const { return name_; }
  const Value& value() const { return value_; }
  const Shape<Rank>& shape() const { return value_.shape(); }
  index_t size() const { return value_.size(); }

  /// This parameter as an input of ops.
  Var<T, Rank, D> var() const {
    return node_ ? Var<T, Rank, D>::on_node(value_, node_.get()) : Var<T, Rank, D>(value_);
  }
  operator Var<T, Rank, D>() const { return var(); }

  bool trainable() const { return node_ != nullptr; }
  /// Freezing frees the gradient buffer; unfreezing gives a zeroed one (allocated on first use).
  void set_trainable(bool on) {
    if (on && !node_) {
      node_ = std::make_unique<VarNode<T, Rank, D>>(value_.shape());
    } else if (!on) {
      node_.reset();
    }
  }
  /// The gradient (zeros before anything was accumulated). requires: trainable().
  const Value& grad() const {
    if (!node_) throw AutodiffError("Parameter '" + name_ + "' is frozen and has no gradient");
    return node_->accumulator();
  }
  void zero_grad() {
    if (!node_ || node_->grad.empty()) return;
    if constexpr (std::is_same_v<D, Cpu>)
      node_->grad.fill(T{});
    else
      fill(D{}, node_->grad.data(), T{}, node_->grad.size());  // the device's kernel (in place)
  }

 private:
  std::string name_;
  Value value_;
  std::unique_ptr<VarNode<T, Rank, D>> node_;
};

}  // namespace deepprompt
