#pragma once
// softmax and log_softmax over the last axis of a Var of rank >= 1 (every other axis is a row
// index: rows = product of the leading extents). Kernels: cpu::softmax_rows,
// cpu::log_softmax_rows and their backward passes (backend/cpu/rowwise.hpp). Both backward
// passes need only the output, which is what the step keeps alive.
//
// A row that is entirely -inf (fully masked) gives zeros (softmax) or -inf (log_softmax), not
// NaN; see rowwise.hpp.
#include "../autodiff/var.hpp"
#include "../backend/cpu/rowwise.hpp"

namespace deepprompt {

namespace detail {

template <class T, std::size_t R>
Var<T, R> row_softmax_op(const Var<T, R>& x,  // x, y: (..., C)
                         void (*fwd)(const T*, T*, index_t, index_t),
                         void (*bwd)(const T*, const T*, T*, index_t, index_t)) {
  static_assert(R >= 1, "softmax / log_softmax: the input needs at least one axis (the classes)");
  const index_t cols = x.extent(R - 1);
  const index_t rows = cols == 0 ? 0 : x.size() / cols;
  Tensor<T, R> y(x.shape());
  fwd(x.value().data(), y.data(), rows, cols);
  auto out = Var<T, R>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [y, xn = x.node(), bwd, rows, cols](const Tensor<T, R>& dy) {
      bwd(y.data(), dy.data(), xn->accumulator().data(), rows, cols);
    });
  return out;
}

}  // namespace detail

/// exp(x) / sum(exp(x)) along the last axis.
template <class T, std::size_t R>
Var<T, R> softmax(const Var<T, R>& x) {  // x, y: (..., C)
  return detail::row_softmax_op(x, &cpu::softmax_rows<T>, &cpu::softmax_rows_backward<T>);
}

/// x - log(sum(exp(x))) along the last axis (computed stably, not as log(softmax(x))).
template <class T, std::size_t R>
Var<T, R> log_softmax(const Var<T, R>& x) {  // x, y: (..., C)
  return detail::row_softmax_op(x, &cpu::log_softmax_rows<T>, &cpu::log_softmax_rows_backward<T>);
}

}  // namespace deepprompt
