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
//
// Optional bf16 weights (float only, frozen weights only): use_bf16(true) packs the frozen weight
// in bfloat16 once (ops/linear.hpp, Bf16LinearWeight; 2 bytes per element, twice that once a
// backward has needed dx) and forward runs linear_bf16 (x rounded to bf16, fp32 accumulation)
// instead of linear. A weight made trainable again gets the fp32 path at once (the packing is
// ignored, and released by use_bf16(false)). The packing does not follow changes to the weight's
// values: switch after loading weights (and after merging LoRA). use_bf16_weights(module) switches
// every frozen float Linear of a module tree. With bf16 off, nothing changes.
//
// Optional pre-packed weights (float only, frozen weights only, AVX-512 builds): use_packed(true)
// packs the frozen weight once for the forward GEMM (ops/linear.hpp, PackedLinearWeight; as much
// memory again as the weight) and forward runs linear_packed: the same bits as without, minus
// the packing of W at every call (forward passes about 7% faster at BERT-base shapes). Like
// bf16, it does not follow later changes of the weight; use_packed_weights(module) switches every
// frozen float Linear of a module tree. bf16 takes precedence when both are on.
//
// Device: Linear<T, D> keeps its parameters on D (Cpu by default; initialised on the host and
// copied). bf16 and pre-packed weights are host kernels: use_bf16 / use_packed on a device
// Linear throw Error.
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../autodiff/parameter.hpp"
#include "../core/init.hpp"
#include "../core/rng.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/dropout.hpp"
#include "../ops/linear.hpp"
#include "module.hpp"

namespace deepprompt {

/// A low-rank update of a Linear: y += scale * dropout(x) A^T B^T (Hu et al., PEFT's LoraLayer).
template <class T = float, DevicePolicy D = Cpu>
struct LowRankUpdate {
  Parameter<T, 2, D> A;    // (r, In)
  Parameter<T, 2, D> B;    // (Out, r)
  T scale = T(1);          // lora_alpha / r (or / sqrt(r) with rsLoRA)
  double dropout = 0.0;    // on the update's input while training
  bool training = false;   // dropout on; set per model (peft/lora.hpp: set_lora_training)
  bool merged = false;     // the update has been added to the weight: forward skips it
  Tensor<T, 2, D> original{};  // while merged: the weight before merging (unmerge restores it exactly)
  mutable Generator generator{};  // dropout's stream

  index_t rank() const { return A.shape()[0]; }

  /// y + scale * (dropout(x) A^T) B^T.  x: (..., In), y: (..., Out).
  template <std::size_t R>
  Var<T, R, D> apply(const Var<T, R, D>& x, const Var<T, R, D>& y) const {
    const Var<T, R, D> in =
        training && dropout > 0.0 ? deepprompt::dropout(x, static_cast<T>(dropout), generator, true) : x;
    return add(y, deepprompt::scale(linear(linear(in, A.var()), B.var()), scale));
  }
};

template <class T = float, DevicePolicy D = Cpu>
struct Linear {
  Parameter<T, 2, D> weight;               // (Out, In)
  std::optional<Parameter<T, 1, D>> bias;  // (Out), absent for bias-free layers
  std::optional<LowRankUpdate<T, D>> lora;  // LoRA, absent unless attached

  Linear() = default;
  /// requires: out, in >= 0.
  Linear(index_t out, index_t in, bool with_bias, Generator& gen, double init_std = 0.02)
      : weight("weight", copy_to<D>(initial_weight(out, in, gen, init_std))) {
    if (with_bias) bias.emplace("bias", filled<T, 1, D>({out}, T(0)));
  }

  index_t in_features() const { return weight.shape()[1]; }
  index_t out_features() const { return weight.shape()[0]; }

  /// Switches the bf16 weights on (packing the current weight) or off (releasing them).
  /// requires (on): T is float and the weight is frozen; throws Error otherwise.
  /// ensures: uses_bf16() == on; the fp32 weight is unchanged.
  void use_bf16(bool on = true) { bf16_weight_ = frozen_copy<Bf16LinearWeight>(on, "use_bf16", "bf16 weights"); }
  /// Whether forward runs on bf16 weights (switched on, and the weight still frozen).
  bool uses_bf16() const { return bf16_weight_ != nullptr && !weight.trainable(); }
  /// The packed bf16 weight, null unless switched on.
  const std::shared_ptr<const Bf16LinearWeight>& bf16_weight() const { return bf16_weight_; }

  /// Switches the pre-packed fp32 weight on (packing the current weight) or off (releasing it).
  /// requires (on): T is float, the weight is frozen, cpu::PackedWeight::available(); throws
  /// Error otherwise. ensures: uses_packed() == on; the weight is unchanged.
  void use_packed(bool on = true) {
    packed_weight_ = frozen_copy<PackedLinearWeight>(on, "use_packed", "pre-packed weights");
  }
  /// Whether forward runs on the pre-packed weight (switched on, and the weight still frozen).
  bool uses_packed() const { return packed_weight_ != nullptr && !weight.trainable(); }
  /// The pre-packed weight, null unless switched on.
  const std::shared_ptr<const PackedLinearWeight>& packed_weight() const { return packed_weight_; }

  /// x: (..., In) -> (..., Out).
  template <std::size_t R>
  Var<T, R, D> forward(const Var<T, R, D>& x) const {
    Var<T, R, D> y = base_forward(x);
    return lora && !lora->merged ? lora->apply(x, y) : y;
  }
  template <std::size_t R>
  Var<T, R, D> operator()(const Var<T, R, D>& x) const {
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

 private:
  // Copy(weight) of the frozen float weight (on) or null (off); Error naming Linear::`what`
  // for a non-float Linear or a trainable weight.
  template <class Copy>
  std::shared_ptr<const Copy> frozen_copy(bool on, const char* what, const char* kind) const {
    if (!on) return nullptr;
    if constexpr (!std::is_same_v<D, Cpu>) {
      throw Error(std::string("Linear::") + what + ": " + kind + " are host kernels; this Linear is on device " +
                  D::name);
    } else if constexpr (!std::is_same_v<T, float>) {
      throw Error(std::string("Linear::") + what + ": " + kind + " need a float Linear");
    } else {
      if (weight.trainable())
        throw Error(std::string("Linear::") + what + ": the weight '" + weight.name() + "' is trainable; freeze it first");
      return std::make_shared<const Copy>(weight.value());
    }
  }

  std::shared_ptr<const Bf16LinearWeight> bf16_weight_;      // null unless use_bf16(true)
  std::shared_ptr<const PackedLinearWeight> packed_weight_;  // null unless use_packed(true)

  // (out, in) on the host: Normal(0, init_std), or zeros for init_std <= 0 (nothing drawn).
  static Tensor<T, 2> initial_weight(index_t out, index_t in, Generator& gen, double init_std) {
    Tensor<T, 2> w({out, in});
    if (init_std > 0)
      init::normal(w, 0.0, init_std, gen);
    else
      w.fill(T(0));
    return w;
  }

  template <std::size_t R>
  Var<T, R, D> base_forward(const Var<T, R, D>& x) const {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<D, Cpu>) {
      if (uses_bf16()) {
        if (!bias) return linear_bf16(x, bf16_weight_);
        const Var<float, 1> b = bias->var();
        return linear_bf16(x, bf16_weight_, &b);
      }
      if (uses_packed()) {
        if (!bias) return linear_packed(x, packed_weight_);
        const Var<float, 1> b = bias->var();
        return linear_packed(x, packed_weight_, &b);
      }
    }
    return bias ? linear(x, weight.var(), bias->var()) : linear(x, weight.var());
  }
};

template <class X>
struct linear_type : std::false_type {};
template <class T, class D>
struct linear_type<Linear<T, D>> : std::true_type {
  using value_type = T;
};

namespace detail {
/// Walks a module tree as module.hpp's Walker does, calling f(name, linear) for every Linear.
template <class F>
struct LinearWalker {
  F& f;
  std::string prefix;

  template <class X>
  void operator()(std::string_view name, X& x) const {
    using Y = std::remove_const_t<X>;
    const std::string full = prefix + std::string(name);
    if constexpr (linear_type<Y>::value) {
      f(full, x);
    } else if constexpr (is_parameter<Y>::value) {
      // a parameter outside any Linear
    } else if constexpr (is_vector<Y>::value) {
      for (std::size_t i = 0; i < x.size(); ++i) LinearWalker<F>{f, full + "."}(std::to_string(i), x[i]);
    } else if constexpr (is_optional<Y>::value) {
      if (x) (*this)(name, *x);
    } else {
      x.visit(LinearWalker<F>{f, full + "."});
    }
  }
};
}  // namespace detail

/// Calls f(full_name, linear) for every nn::Linear of `model` (any element type), in visit order.
template <class M, class F>
void for_each_linear(M& model, F&& f) {
  model.visit(detail::LinearWalker<std::remove_reference_t<F>>{f, ""});
}

namespace detail {
// on: set(lin, true) on every frozen float Linear of `tree`; off: set(lin, false) on every one
// for which held(lin). Returns how many were switched.
template <class M, class Held, class Set>
int switch_frozen_linears(M& tree, bool on, Held&& held, Set&& set) {
  int count = 0;
  for_each_linear(tree, [&](const std::string&, auto& lin) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(lin)>, Linear<float>>) {
      if (on ? !lin.weight.trainable() : held(lin)) {
        set(lin, on);
        ++count;
      }
    }
  });
  return count;
}
}  // namespace detail

/// Switches every frozen float Linear inside `tree` to bf16 weights (on), or every Linear
/// holding them back to fp32 (off); returns how many were switched. Trainable Linears and
/// non-float ones are left alone. Call it after loading weights and freezing the backbone.
template <class M>
int use_bf16_weights(M& tree, bool on = true) {
  return detail::switch_frozen_linears(
      tree, on, [](const Linear<float>& l) { return l.bf16_weight() != nullptr; },
      [](Linear<float>& l, bool v) { l.use_bf16(v); });
}

/// Switches every frozen float Linear inside `tree` to pre-packed weights (on), or every Linear
/// holding them back (off); returns how many were switched (none where the build cannot pack:
/// cpu::PackedWeight::available()). Call it after loading weights and freezing the backbone.
template <class M>
int use_packed_weights(M& tree, bool on = true) {
  if (on && !cpu::PackedWeight::available()) return 0;
  return detail::switch_frozen_linears(
      tree, on, [](const Linear<float>& l) { return l.packed_weight() != nullptr; },
      [](Linear<float>& l, bool v) { l.use_packed(v); });
}

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
