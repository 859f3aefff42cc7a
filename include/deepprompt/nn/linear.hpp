#pragma once
// nn::Linear: torch.nn.Linear as a module. Parameters (Hugging Face names):
//   weight (Out, In), bias (Out) (optional: T5 has none).
// Initialised as Hugging Face's _init_weights: weight ~ Normal(0, std = initializer_range),
// bias = 0. init_std = 0 gives zeros without drawing (for weights about to be loaded).
//
// Optional low-rank update (LoRA; peft/lora.hpp attaches it by module name): while `lora` is
// present and not merged, forward adds scale * dropout(x) A^T B^T, and visit() names its two
// parameters lora_A.weight (r, In) and lora_B.weight (Out, r) after weight and bias. Absent, it
// costs one branch and is invisible in the state dict.
#include <cmath>
#include <optional>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/dropout.hpp"
#include "../ops/linear.hpp"

namespace deepprompt {

/// A low-rank update of a Linear: y += scale * dropout(x) A^T B^T (Hu et al., PEFT's LoraLayer).
template <class T = float>
struct LowRankUpdate {
  Parameter<T, 2> A;       // (r, In)
  Parameter<T, 2> B;       // (Out, r)
  T scale = T(1);          // lora_alpha / r (or / sqrt(r) with rsLoRA)
  double dropout = 0.0;    // on the update's input while training
  bool training = false;   // dropout on; set per model (peft/lora.hpp: set_lora_training)
  bool merged = false;     // the update has been added to the weight: forward skips it
  Tensor<T, 2> original{};  // while merged: the weight before merging (unmerge restores it exactly)
  mutable Generator generator{};  // dropout's stream

  index_t rank() const { return A.shape()[0]; }

  /// y + scale * (dropout(x) A^T) B^T.  x: (..., In), y: (..., Out).
  template <std::size_t R>
  Var<T, R> apply(const Var<T, R>& x, const Var<T, R>& y) const {
    const Var<T, R> in =
        training && dropout > 0.0 ? deepprompt::dropout(x, static_cast<T>(dropout), generator, true) : x;
    return add(y, deepprompt::scale(linear(linear(in, A.var()), B.var()), scale));
  }
};

template <class T = float>
struct Linear {
  Parameter<T, 2> weight;               // (Out, In)
  std::optional<Parameter<T, 1>> bias;  // (Out), absent for bias-free layers
  std::optional<LowRankUpdate<T>> lora;  // LoRA, absent unless attached

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
    Var<T, R> y = bias ? linear(x, weight.var(), bias->var()) : linear(x, weight.var());
    return lora && !lora->merged ? lora->apply(x, y) : y;
  }
  template <std::size_t R>
  Var<T, R> operator()(const Var<T, R>& x) const {
    return forward(x);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
    if (lora) {
      v("lora_A.weight", lora->A);
      v("lora_B.weight", lora->B);
    }
  }
};

/// Linear(out, in) with a bias, both initialised as torch.nn.Linear's default:
/// uniform(-1/sqrt(in), 1/sqrt(in)), the weight drawn from `gen` first, then the bias.
/// requires: in > 0.
template <class T>
Linear<T> torch_default_linear(index_t out, index_t in, Generator& gen) {
  Linear<T> lin(out, in, true, gen, 0.0);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  init::uniform(lin.weight.value(), -bound, bound, gen);
  init::uniform(lin.bias->value(), -bound, bound, gen);
  return lin;
}

}  // namespace deepprompt
