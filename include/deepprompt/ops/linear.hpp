#pragma once
// linear: torch.nn.functional.linear. x: (..., In) of any rank (the leading axes are
// flattened into rows), weight: (Out, In), bias: (Out) optional; y: (..., Out).
//
//   y = x W^T + b
//
// Backward, each part only when needed:
//   dx += dy W          (x needs a gradient; captures W's value only then)
//   dW += dy^T x        (W is trainable;      captures x's value only then)
//   db += sum of dy over the rows
// so a frozen weight costs one GEMM forward and one backward, and its gradient GEMM never runs.
#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "../backend/cpu/gemm.hpp"

namespace deepprompt {

namespace detail {

template <class T, std::size_t R>
Var<T, R> linear_impl(const Var<T, R>& x, const Var<T, 2>& weight, const Var<T, 1>* bias) {
  static_assert(R >= 1, "linear: x must have at least one axis, (..., In)");
  const index_t in = weight.extent(1), out_features = weight.extent(0);
  check_shapes(x.extent(R - 1) == in, "linear", "x's last extent must equal weight's In in (Out, In)", x.shape(),
               weight.shape());
  if (bias)
    check_shapes(bias->extent(0) == out_features, "linear", "bias must have weight's Out extent", bias->shape(),
                 weight.shape());
  index_t rows = 1;
  for (std::size_t i = 0; i + 1 < R; ++i) rows *= x.extent(i);

  Shape<R> ys = x.shape();
  ys[R - 1] = out_features;
  Tensor<T, R> y(ys);  // (rows, Out)
  cpu::gemm<T>(cpu::Trans::No, cpu::Trans::Yes, rows, out_features, in, T(1), x.value().data(), in,
               weight.value().data(), in, T(0), y.data(), out_features);
  if (bias) cpu::add_rows<T>(y.data(), bias->value().data(), y.data(), rows, out_features);

  const bool bias_grad = bias && bias->requires_grad();
  auto out = Var<T, R>::result(y, x.requires_grad() || weight.requires_grad() || bias_grad);
  if (out.requires_grad()) {
    tape().record(out.node(), [rows, in, out_features, xn = x.node(), wn = weight.node(),
                               bn = bias_grad ? bias->node() : nullptr,
                               xv = weight.requires_grad() ? x.value() : Tensor<T, R>(),
                               wv = x.requires_grad() ? weight.value() : Tensor<T, 2>()](const Tensor<T, R>& dy) {
      if (xn) {  // dx (rows, In) += dy (rows, Out) W (Out, In); the first gradient of x is written, not added
        bool fresh = false;
        T* dx = xn->accumulator(fresh).data();
        cpu::gemm<T>(cpu::Trans::No, cpu::Trans::No, rows, in, out_features, T(1), dy.data(), out_features,
                     wv.data(), in, fresh ? T(0) : T(1), dx, in);
      }
      if (wn)  // dW (Out, In) += dy^T (Out, rows) x (rows, In)
        cpu::gemm<T>(cpu::Trans::Yes, cpu::Trans::No, out_features, in, rows, T(1), dy.data(), out_features,
                     xv.data(), in, T(1), wn->accumulator().data(), in);
      if (bn)  // db (Out) += sum over rows of dy
        cpu::sum_rows_accumulate<T>(dy.data(), bn->accumulator().data(), rows, out_features);
    });
  }
  return out;
}

}  // namespace detail

/// y = x W^T + b.  x: (..., In), weight: (Out, In), bias: (Out); y: (..., Out).
/// Throws ShapeError naming "linear" and the shapes when In or Out disagree.
template <class T, std::size_t R>
Var<T, R> linear(const Var<T, R>& x, const Var<T, 2>& weight, const Var<T, 1>& bias) {
  return detail::linear_impl(x, weight, &bias);
}

/// y = x W^T (no bias).  x: (..., In), weight: (Out, In); y: (..., Out).
template <class T, std::size_t R>
Var<T, R> linear(const Var<T, R>& x, const Var<T, 2>& weight) {
  return detail::linear_impl<T, R>(x, weight, nullptr);
}

}  // namespace deepprompt
