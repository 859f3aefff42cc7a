#pragma once
// nn::FeedForward: the position-wise feed-forward block, without its residual and norm.
//   plain:  y = wo(dropout(act(wi(x))))
//   gated:  y = wo(dropout(act(wi_0(x)) * wi_1(x)))      (T5 v1.1 "gated-gelu")
// x, y: (..., d_model); the hidden activation is (..., d_ff). Parameter names are Hugging
// Face T5's (T5DenseActDense / T5DenseGatedActDense): "wi", "wo", or "wi_0", "wi_1", "wo".
// BERT names its two projections in different sub-modules (intermediate.dense, output.dense),
// so models/bert.hpp composes Linear and activate() itself.
#include <optional>

#include "activation.hpp"
#include "dropout.hpp"
#include "linear.hpp"

namespace deepprompt {

template <class T = float, DevicePolicy D = Cpu>
struct FeedForward {
  Activation act = Activation::relu;
  Linear<T, D> wi;                   // (d_ff, d_model); "wi", or "wi_0" when gated
  std::optional<Linear<T, D>> wi_1;  // (d_ff, d_model), gated only
  Linear<T, D> wo;                   // (d_model, d_ff)
  Dropout dropout;

  FeedForward() = default;
  /// Weights ~ Normal(0, std_in) for wi/wi_1 and Normal(0, std_out) for wo; biases (if any) 0.
  FeedForward(index_t d_model, index_t d_ff, Activation activation, bool gated, bool with_bias, Generator& gen,
              double dropout_p = 0.0, double std_in = 0.02, double std_out = 0.02)
      : act(activation), wi(d_ff, d_model, with_bias, gen, std_in), dropout(dropout_p) {
    if (gated) wi_1.emplace(d_ff, d_model, with_bias, gen, std_in);
    wo = Linear<T, D>(d_model, d_ff, with_bias, gen, std_out);
  }

  bool gated() const { return wi_1.has_value(); }

  /// x, y: (..., d_model). `gen` is needed only when training with dropout > 0.
  template <std::size_t R>
  Var<T, R, D> forward(const Var<T, R, D>& x, Generator* gen = nullptr, bool training = false) const {
    Var<T, R, D> h = activate(wi(x), act);  // (..., d_ff)
    if (wi_1) h = mul(h, (*wi_1)(x));
    return wo(dropout.forward(h, gen, training));
  }

  template <class V>
  void visit(V&& v) {
    if (wi_1) {
      v("wi_0", wi);
      v("wi_1", *wi_1);
    } else {
      v("wi", wi);
    }
    v("wo", wo);
  }
};

}  // namespace deepprompt
