#pragma once
// nn::Linear: torch.nn.Linear as a module. Parameters (Hugging Face names):
//   weight (Out, In), bias (Out) (optional: T5 has none).
// Initialised as Hugging Face's _init_weights: weight ~ Normal(0, std = initializer_range),
// bias = 0. init_std = 0 gives zeros without drawing (for weights about to be loaded).
#include <optional>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../ops/linear.hpp"

namespace deepprompt {

template <class T = float>
struct Linear {
  Parameter<T, 2> weight;               // (Out, In)
  std::optional<Parameter<T, 1>> bias;  // (Out), absent for bias-free layers

  Linear() = default;
  /// requires: out, in >= 0.
  Linear(index_t out, index_t in, bool with_bias, Generator& gen, double init_std = 0.02)
      : weight("weight", Tensor<T, 2>({out, in})) {
    if (init_std > 0)
      init::normal(weight.value(), 0.0, init_std, gen);
    else
      weight.value().fill(T(0));
    if (with_bias) bias.emplace("bias", Tensor<T, 1>::zeros({out}));
  }

  index_t in_features() const { return weight.shape()[1]; }
  index_t out_features() const { return weight.shape()[0]; }

  /// x: (..., In) -> (..., Out).
  template <std::size_t R>
  Var<T, R> forward(const Var<T, R>& x) const {
    return bias ? linear(x, weight.var(), bias->var()) : linear(x, weight.var());
  }
  template <std::size_t R>
  Var<T, R> operator()(const Var<T, R>& x) const {
    return forward(x);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
};

}  // namespace deepprompt
