#pragma once
// Element-wise activations on Vars of any rank: gelu (erf form), gelu_tanh, relu, tanh,
// sigmoid, exp. Forward and backward are the cpu:: kernels of backend/cpu/elementwise.hpp.
//
// What the backward step keeps alive (only when the input needs a gradient):
//   gelu, gelu_tanh: the input x (their derivative needs x);
//   tanh, sigmoid, exp: the output y (f' is a cheap function of y);
//   relu: the output y (y > 0 exactly where x > 0, NaN included), so that x can be freed.
// Note: these overloads take Vars only; inside namespace deepprompt, call std::exp / std::tanh
// qualified (an unqualified exp(double) there finds these templates first).
#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"

namespace deepprompt {

namespace detail {

enum class ActivationSaves { input, output };

// y = fwd(x); backward: dx += bwd(saved, dy), saved being x or y.
// fwd(const T* x, T* y, n); bwd(const T* saved, const T* dy, T* dx, n) accumulates.
template <ActivationSaves saves, class T, std::size_t R>
Var<T, R> activation_op(const Var<T, R>& x,                                 // x, y: any shape
                        void (*fwd)(const T*, T*, index_t),
                        void (*bwd)(const T*, const T*, T*, index_t)) {
  Tensor<T, R> y(x.shape());
  fwd(x.value().data(), y.data(), y.size());
  auto out = Var<T, R>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [saved = saves == ActivationSaves::input ? x.value() : y, xn = x.node(),
                               bwd](const Tensor<T, R>& dy) {
      bwd(saved.data(), dy.data(), xn->accumulator().data(), dy.size());
    });
  return out;
}

}  // namespace detail

/// GELU, exact (erf) form: 0.5 x (1 + erf(x / sqrt 2)); torch.nn.GELU(), Hugging Face "gelu".
template <class T, std::size_t R>
Var<T, R> gelu(const Var<T, R>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::input>(x, &cpu::gelu_erf<T>, &cpu::gelu_erf_backward<T>);
}

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
/// torch.nn.GELU(approximate="tanh"), Hugging Face "gelu_new".
template <class T, std::size_t R>
Var<T, R> gelu_tanh(const Var<T, R>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::input>(x, &cpu::gelu_tanh<T>, &cpu::gelu_tanh_backward<T>);
}

/// max(x, 0); gradient 0 at x == 0 (as PyTorch).
template <class T, std::size_t R>
Var<T, R> relu(const Var<T, R>& x) {  // x, y: (...)
  // relu_backward tests its first argument > 0: passing y is the same test on x.
  return detail::activation_op<detail::ActivationSaves::output>(x, &cpu::relu<T>, &cpu::relu_backward<T>);
}

template <class T, std::size_t R>
Var<T, R> tanh(const Var<T, R>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(x, &cpu::tanh<T>, &cpu::tanh_backward<T>);
}

/// 1 / (1 + e^-x).
template <class T, std::size_t R>
Var<T, R> sigmoid(const Var<T, R>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(x, &cpu::sigmoid<T>, &cpu::sigmoid_backward<T>);
}

template <class T, std::size_t R>
Var<T, R> exp(const Var<T, R>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(x, &cpu::exp<T>, &cpu::exp_backward<T>);
}

}  // namespace deepprompt
