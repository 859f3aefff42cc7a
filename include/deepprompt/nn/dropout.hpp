#pragma once
// nn::Dropout: inverted dropout with probability p as a (parameter-free) module. The generator
// and the training flag are given per call, so that a module never stores a pointer (modules
// stay movable) and one generator can serve a whole model.
#include "../autodiff/var.hpp"
#include "../core/rng.hpp"
#include "../ops/dropout.hpp"

namespace deepprompt {

struct Dropout {
  double p = 0.0;

  Dropout() = default;
  explicit Dropout(double prob) : p(prob) {
    if (!(p >= 0.0 && p <= 1.0)) throw Error(detail::cat("Dropout: the drop probability must be in [0, 1], got ", p));
  }

  /// x, y: (...). Returns x itself unless training and p > 0; then `gen` is required (its
  /// stream advances by x.size() words).
  template <class T, std::size_t R, class D>
  Var<T, R, D> forward(const Var<T, R, D>& x, Generator* gen, bool training) const {
    if (!training || p == 0.0) return x;
    if (gen == nullptr) throw Error(detail::cat("Dropout: training with p = ", p, " needs a Generator"));
    return dropout(x, static_cast<T>(p), *gen, true);
  }

  template <class V>
  void visit(V&&) {}  // no parameters
};

}  // namespace deepprompt
