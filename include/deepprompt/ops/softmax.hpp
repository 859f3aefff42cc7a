#pragma once
// softmax and log_softmax over the last axis of a Var of rank >= 1 (every other axis is a row
// index: rows = product of the leading extents), on any device. Kernels: the device's
// softmax_rows, log_softmax_rows and their backward passes (backend/cpu/rowwise.hpp,
// backend/cuda/rowwise.cuh). Both backward
// passes need only the output, which is what the step keeps alive.
//
// A row that is entirely -inf (fully masked) gives zeros (softmax) or -inf (log_softmax), not
// NaN; see rowwise.hpp.
#include "../autodiff/var.hpp"
#include "../backend/cpu/rowwise.hpp"

namespace deepprompt {

namespace detail {

// fwd(D, x, y, rows, cols) and bwd(D, y, dy, dx, rows, cols): lambdas naming the device-tagged kernels.
template <class T, std::size_t R, class D, class Fwd, class Bwd>
Var<T, R, D> row_softmax_op(const Var<T, R, D>& x, Fwd fwd, Bwd bwd) {  // x, y: (..., C)
  static_assert(R >= 1, "softmax / log_softmax: the input needs at least one axis (the classes)");
  const index_t cols = x.extent(R - 1);
  const index_t rows = cols == 0 ? 0 : x.size() / cols;
  Tensor<T, R, D> y(x.shape());
  fwd(D{}, x.value().data(), y.data(), rows, cols);
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [y, xn = x.node(), bwd, rows, cols](const Tensor<T, R, D>& dy) {
      bwd(D{}, y.data(), dy.data(), xn->accumulator().data(), rows,
          cols);
    });
  return out;
}

}  // namespace detail

/// exp(x) / sum(exp(x)) along the last axis.
template <class T, std::size_t R, class D>
Var<T, R, D> softmax(const Var<T, R, D>& x) {  // x, y: (..., C)
  return detail::row_softmax_op(x, [](auto... a) { softmax_rows(a...); },
                                [](auto... a) { softmax_rows_backward(a...); });
}

/// x - log(sum(exp(x))) along the last axis (computed stably, not as log(softmax(x))).
template <class T, std::size_t R, class D>
Var<T, R, D> log_softmax(const Var<T, R, D>& x) {  // x, y: (..., C)
  return detail::row_softmax_op(x, [](auto... a) { log_softmax_rows(a...); },
                                [](auto... a) { log_softmax_rows_backward(a...); });
}

}  // namespace deepprompt
