#pragma once
// Element-wise activations on Vars of any rank: gelu (erf form), gelu_tanh, relu, tanh,
// sigmoid, exp, on any device. Forward and backward are the device's kernels of the same name
// (backend/cpu/elementwise.hpp on the host, backend/cuda/elementwise.cuh on a GPU).
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

// y = fwd(D, x, y, n); backward: bwd(D, saved, dy, dx, n) accumulates dx, saved being x or y.
// fwd and bwd are stateless lambdas that name the device-tagged kernels.
template <ActivationSaves saves, class T, std::size_t R, class D, class Fwd, class Bwd>
Var<T, R, D> activation_op(const Var<T, R, D>& x, Fwd fwd, Bwd bwd) {  // x, y: any shape
  Tensor<T, R, D> y(x.shape());
  fwd(D{}, x.value().data(), y.data(), y.size());
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [saved = saves == ActivationSaves::input ? x.value() : y, xn = x.node(),
                               bwd](const Tensor<T, R, D>& dy) {
      bwd(D{}, saved.data(), dy.data(), xn->accumulator().data(),
          dy.size());
    });
  return out;
}

}  // namespace detail

/// GELU, exact (erf) form: 0.5 x (1 + erf(x / sqrt 2)); torch.nn.GELU(), Hugging Face "gelu".
template <class T, std::size_t R, class D>
Var<T, R, D> gelu(const Var<T, R, D>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::input>(
      x, [](auto... a) { gelu_erf(a...); }, [](auto... a) { gelu_erf_backward(a...); });
}

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
/// torch.nn.GELU(approximate="tanh"), Hugging Face "gelu_new".
template <class T, std::size_t R, class D>
Var<T, R, D> gelu_tanh(const Var<T, R, D>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::input>(
      x, [](auto... a) { gelu_tanh(a...); }, [](auto... a) { gelu_tanh_backward(a...); });
}

/// max(x, 0); gradient 0 at x == 0 (as PyTorch).
template <class T, std::size_t R, class D>
Var<T, R, D> relu(const Var<T, R, D>& x) {  // x, y: (...)
  // relu_backward tests its first argument > 0: passing y is the same test on x.
  return detail::activation_op<detail::ActivationSaves::output>(
      x, [](auto... a) { relu(a...); }, [](auto... a) { relu_backward(a...); });
}

template <class T, std::size_t R, class D>
Var<T, R, D> tanh(const Var<T, R, D>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(
      x, [](auto... a) { tanh(a...); }, [](auto... a) { tanh_backward(a...); });
}

/// 1 / (1 + e^-x).
template <class T, std::size_t R, class D>
Var<T, R, D> sigmoid(const Var<T, R, D>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(
      x, [](auto... a) { sigmoid(a...); }, [](auto... a) { sigmoid_backward(a...); });
}

template <class T, std::size_t R, class D>
Var<T, R, D> exp(const Var<T, R, D>& x) {  // x, y: (...)
  return detail::activation_op<detail::ActivationSaves::output>(
      x, [](auto... a) { exp(a...); }, [](auto... a) { exp_backward(a...); });
}

}  // namespace deepprompt
