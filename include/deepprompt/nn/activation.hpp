#pragma once
// The activations of Hugging Face configs by name (config.hidden_act, T5's dense_act_fn):
//   "gelu" (and "gelu_python")          -> Activation::gelu      exact, erf form
//   "gelu_new" ("gelu_pytorch_tanh",
//   "gelu_fast")                        -> Activation::gelu_new  tanh approximation
//   "relu", "silu" ("swish"), "tanh"
// (gelu_fast is the same tanh formula written differently; it agrees to rounding.)
#include <string_view>

#include "../autodiff/var.hpp"
#include "../ops/activation.hpp"
#include "../ops/arithmetic.hpp"

namespace deepprompt {

enum class Activation { gelu, gelu_new, relu, silu, tanh };

/// Hugging Face's name -> Activation; false for a name not supported.
inline bool parse_activation(std::string_view name, Activation& out) {
  if (name == "gelu" || name == "gelu_python") return out = Activation::gelu, true;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return out = Activation::gelu_new, true;
  if (name == "relu") return out = Activation::relu, true;
  if (name == "silu" || name == "swish") return out = Activation::silu, true;
  if (name == "tanh") return out = Activation::tanh, true;
  return false;
}

/// The name Hugging Face writes for it in a config.json.
inline constexpr std::string_view activation_name(Activation a) {
  switch (a) {
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_new:
      return "gelu_new";
    case Activation::relu:
      return "relu";
    case Activation::silu:
      return "silu";
    case Activation::tanh:
      return "tanh";
  }
  return "?";
}

/// a(x), element-wise.  x, y: (...).
template <class T, std::size_t R, class D>
Var<T, R, D> activate(const Var<T, R, D>& x, Activation a) {
  switch (a) {
    case Activation::gelu:
      return gelu(x);
    case Activation::gelu_new:
      return gelu_tanh(x);
    case Activation::relu:
      return relu(x);
    case Activation::silu:
      return mul(x, sigmoid(x));
    case Activation::tanh:
      return deepprompt::tanh(x);
  }
  throw Error("activate: unknown activation");
}

}  // namespace deepprompt
