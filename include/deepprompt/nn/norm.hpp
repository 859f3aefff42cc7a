#pragma once
// nn::LayerNorm (torch.nn.LayerNorm over the last axis: weight (C) = 1, bias (C) = 0, eps) and
// nn::RMSNorm (Hugging Face's T5LayerNorm: weight (C) = 1 only, no mean subtraction, no bias).
// Their parameters live on device D (Cpu by default).
#include "../autodiff/parameter.hpp"
#include "../ops/norm.hpp"

namespace deepprompt {

template <class T = float, DevicePolicy D = Cpu>
struct LayerNorm {
  Parameter<T, 1, D> weight;  // (C)
  Parameter<T, 1, D> bias;    // (C)
  double eps = 1e-5;

  LayerNorm() = default;
  explicit LayerNorm(index_t dim, double epsilon = 1e-5)
      : weight("weight", filled<T, 1, D>({dim}, T(1))), bias("bias", filled<T, 1, D>({dim}, T(0))), eps(epsilon) {}

  /// x, y: (..., C).
  template <std::size_t R>
  Var<T, R, D> forward(const Var<T, R, D>& x) const {
    return layer_norm(x, weight.var(), bias.var(), static_cast<T>(eps));
  }
  template <std::size_t R>
  Var<T, R, D> operator()(const Var<T, R, D>& x) const {
    return forward(x);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
    v("bias", bias);
  }
};

template <class T = float, DevicePolicy D = Cpu>
struct RMSNorm {
  Parameter<T, 1, D> weight;  // (C)
  double eps = 1e-6;

  RMSNorm() = default;
  explicit RMSNorm(index_t dim, double epsilon = 1e-6) : weight("weight", filled<T, 1, D>({dim}, T(1))), eps(epsilon) {}

  /// x, y: (..., C).
  template <std::size_t R>
  Var<T, R, D> forward(const Var<T, R, D>& x) const {
    return rms_norm(x, weight.var(), static_cast<T>(eps));
  }
  template <std::size_t R>
  Var<T, R, D> operator()(const Var<T, R, D>& x) const {
    return forward(x);
  }

  template <class V>
  void visit(V&& v) {
    v("weight", weight);
  }
};

}  // namespace deepprompt
