#pragma once
// Var<T, Rank, Device>: a value in the computation graph: a tensor plus, when a gradient is
// needed, a node on the tape that collects it. Value and gradient live on Device (Cpu by
// default); an op on Vars of another device runs that device's kernels (backend/dispatch.hpp)
// and records its backward step on the same per-thread tape.
//
// Ops take and return Vars; a Var whose inputs need no gradient (constants, frozen parameters,
// anything under NoGradGuard) has no node and costs nothing on the tape.
#include <cstdint>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "tape.hpp"

namespace deepprompt {

template <class T, std::size_t Rank, DevicePolicy D = Cpu>
class Var {
 public:
  using value_type = T;
  using device_type = D;
  using Value = Tensor<T, Rank, D>;
  using Node = VarNode<T, Rank, D>;
  static constexpr std::size_t rank = Rank;

  Var() = default;
  /// A constant: takes part in ops but never receives a gradient.
  explicit Var(Value value) : value_(std::move(value)) {}

  /// The result of an op: gets a node on the tape when `needs_grad` and recording is on.
  static Var result(Value value, bool needs_grad) {
    Var v(std::move(value));
    if (needs_grad && tape().grad_enabled()) {
      v.node_ = tape().arena().template make<Node>(v.value_.shape());
      v.generation_ = tape().generation();
    }
    return v;
  }
  /// A Var on a node owned elsewhere (a Parameter's): never expires.
  static Var on_node(Value value, Node* node) {
    Var v(std::move(value));
    v.node_ = node;
    return v;
  }

  const Value& value() const { return value_; }
  const Shape<Rank>& shape() const { return value_.shape(); }
  index_t extent(std::size_t axis) const { return value_.extent(axis); }
  index_t size() const { return value_.size(); }

  bool requires_grad() const { return node_ != nullptr; }
  /// The node that collects this Var's gradient (for ops), or nullptr.
  Node* node() const {
    if (node_) check_alive("using a Var in an op");
    return node_;
  }

  /// Runs reverse mode from this scalar: every trainable input receives d(this)/d(input).
  /// The tape is released afterwards, so call it once per forward pass.
  void backward() const {
    if (value_.size() != 1)
      throw AutodiffError("backward(): the output must be a scalar, but it has shape " + shape_str(shape()) +
                          "; pass a seed gradient of that shape");
    backward(filled<T, Rank, D>(shape(), T{1}));
  }
  /// Reverse mode with a seed gradient `dy` of this Var's shape (a vector-Jacobian product).
  void backward(const Value& dy) const {
    if (!node_)
      throw AutodiffError("backward(): this Var needs no gradient (no trainable input, or computed under NoGradGuard)");
    check_alive("backward()");
    check_shapes(dy.shape() == shape(), "backward", "the seed gradient must have the output's shape", dy.shape(), shape());
    T* g = node_->accumulator().data();
    if constexpr (std::is_same_v<D, Cpu>) {
      for (index_t i = 0; i < dy.size(); ++i) g[i] += dy.data()[i];
    } else {
      add(D{}, static_cast<const T*>(g), static_cast<const T*>(dy.data()), g, dy.size());  // the device's kernel
    }
    tape().backward();
  }

 private:
  void check_alive(const char* what) const {
    if (generation_ != 0 && generation_ != tape().generation())
      throw AutodiffError(std::string(what) +
                          ": this Var belongs to a tape that was already released (backward() runs once per "
                          "forward pass, and release() ends one); build the graph again");
  }

  Value value_;
  Node* node_ = nullptr;
  std::uint64_t generation_ = 0;  // 0: persistent node (or none)
};

}  // namespace deepprompt
