#pragma once
// Reductions: sum and mean of all elements (a scalar Var<T, 0>) or along one axis (rank R-1).
//
// Sums are pairwise (error O(log n) instead of O(n)) with a double accumulator also for float,
// in a fixed order: the result does not depend on the thread count.
// On a device other than the host: its sum_axis / sum_axis_backward kernels (x seen as
// (outer, n, inner), accumulated in double; the sum of everything is outer = inner = 1).
#include <algorithm>
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "shape.hpp"  // detail::shape_axis_index

namespace deepprompt {

namespace detail {

// Sum of p[0, n), pairwise over blocks of 128 summed with 8 independent double accumulators.
template <class T>
double reduce_pairwise_sum(const T* p, index_t n) {
  if (n <= 128) {
    double s[8] = {};
    index_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) s[j] += static_cast<double>(p[i + j]);
    for (; i < n; ++i) s[0] += static_cast<double>(p[i]);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
  const index_t h = (n / 2 + 127) / 128 * 128;  // split on a block boundary
  return reduce_pairwise_sum(p, h) + reduce_pairwise_sum(p + h, n - h);
}

inline constexpr index_t kReduceStrip = 64;  // columns reduced together along a strided axis

// acc[j] = sum over k < n of p[k * stride + j], for j < w <= kReduceStrip; pairwise over k.
template <class T>
void reduce_pairwise_strip(const T* p, index_t n, index_t stride, index_t w, double* acc) {
  if (n <= 32) {
    std::fill(acc, acc + w, 0.0);
    for (index_t k = 0; k < n; ++k)
      for (index_t j = 0; j < w; ++j) acc[j] += static_cast<double>(p[k * stride + j]);
    return;
  }
  const index_t h = n / 2;
  double tmp[kReduceStrip];
  reduce_pairwise_strip(p, h, stride, w, acc);
  reduce_pairwise_strip(p + h * stride, n - h, stride, w, tmp);
  for (index_t j = 0; j < w; ++j) acc[j] += tmp[j];
}

// x: (outer, n, inner); y: (outer, inner).  ensures: y[o, i] = scale * sum over k of x[o, k, i].
template <class T>
void reduce_axis_forward(const T* x, T* y, index_t outer, index_t n, index_t inner, double scale) {
  if (inner == 1) {
    cpu::simd::for_rows(outer, n, [&](index_t o) { y[o] = static_cast<T>(reduce_pairwise_sum(x + o * n, n) * scale); });
    return;
  }
  const index_t strips = (inner + kReduceStrip - 1) / kReduceStrip;
  cpu::simd::for_rows(outer * strips, n * std::min(inner, kReduceStrip), [&](index_t t) {
    const index_t o = t / strips, j0 = t % strips * kReduceStrip, w = std::min(kReduceStrip, inner - j0);
    double acc[kReduceStrip];
    reduce_pairwise_strip(x + o * n * inner + j0, n, inner, w, acc);
    for (index_t j = 0; j < w; ++j) y[o * inner + j0 + j] = static_cast<T>(acc[j] * scale);
  });
}

// dy: (outer, inner); dx: (outer, n, inner).  ensures: dx[o, k, i] += scale * dy[o, i].
template <class T>
void reduce_axis_backward(const T* dy, T* dx, index_t outer, index_t n, index_t inner, T scale) {
  cpu::simd::for_rows(outer, n * inner, [&](index_t o) {
    T* d = dx + o * n * inner;
    if (inner == 1) {
      cpu::add_scalar<T>(d, scale * dy[o], d, n);
      return;
    }
    for (index_t k = 0; k < n; ++k) cpu::axpy<T>(scale, dy + o * inner, d + k * inner, inner);
  });
}

template <class T, std::size_t R, class D>
Var<T, 0, D> reduce_all(const Var<T, R, D>& x, bool mean) {
  const index_t n = x.size();
  if constexpr (!std::is_same_v<D, Cpu>) {  // the device's kernels, as one row
    Tensor<T, 0, D> y(Shape<0>{});
    sum_axis(D{}, static_cast<const T*>(x.value().data()), y.data(), index_t{1}, n, index_t{1},
             mean ? 1.0 / static_cast<double>(n) : 1.0);
    auto out = Var<T, 0, D>::result(y, x.requires_grad());
    if (out.requires_grad()) {
      const T scale = mean ? static_cast<T>(1.0 / static_cast<double>(n)) : T(1);
      tape().record(out.node(), [scale, n, xn = x.node()](const Tensor<T, 0, D>& dy) {
        sum_axis_backward(D{}, static_cast<const T*>(dy.data()), xn->accumulator().data(), index_t{1}, n, index_t{1},
                          scale);
      });
    }
    return out;
  } else {
    const double s = reduce_pairwise_sum(x.value().data(), n);
    auto out = Var<T, 0>::result(Tensor<T, 0>::full({}, static_cast<T>(mean ? s / static_cast<double>(n) : s)),
                                 x.requires_grad());
    if (out.requires_grad()) {
      const T scale = mean ? static_cast<T>(1.0 / static_cast<double>(n)) : T(1);
      tape().record(out.node(), [scale, n, xn = x.node()](const Tensor<T, 0>& dy) {
        T* dx = xn->accumulator().data();
        cpu::add_scalar<T>(dx, scale * dy.item(), dx, n);
      });
    }
    return out;
  }
}

template <class T, std::size_t R, class D>
Var<T, R - 1, D> reduce_axis(const Var<T, R, D>& x, int axis, bool mean) {
  static_assert(R >= 1, "sum/mean(x, axis): x needs at least one axis");
  const std::size_t ax = shape_axis_index(axis, mean ? "mean" : "sum", x.shape());
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < ax; ++i) outer *= x.extent(i);
  for (std::size_t i = ax + 1; i < R; ++i) inner *= x.extent(i);
  const index_t n = x.extent(ax);
  Shape<R - 1> ys{};
  for (std::size_t i = 0, j = 0; i < R; ++i)
    if (i != ax) ys[j++] = x.extent(i);
  Tensor<T, R - 1, D> y(ys);  // x: (outer, n, inner); y: (outer, inner)
  const double fwd_scale = mean ? 1.0 / static_cast<double>(n) : 1.0;
  if constexpr (std::is_same_v<D, Cpu>)
    reduce_axis_forward(x.value().data(), y.data(), outer, n, inner, fwd_scale);
  else
    sum_axis(D{}, static_cast<const T*>(x.value().data()), y.data(), outer, n, inner, fwd_scale);
  auto out = Var<T, R - 1, D>::result(y, x.requires_grad());
  if (out.requires_grad()) {
    const T scale = mean ? static_cast<T>(1.0 / static_cast<double>(n)) : T(1);
    tape().record(out.node(), [scale, outer, n, inner, xn = x.node()](const Tensor<T, R - 1, D>& dy) {
      if constexpr (std::is_same_v<D, Cpu>)
        reduce_axis_backward<T>(dy.data(), xn->accumulator().data(), outer, n, inner, scale);
      else
        sum_axis_backward(D{}, static_cast<const T*>(dy.data()), xn->accumulator().data(), outer, n, inner, scale);
    });
  }
  return out;
}

}  // namespace detail

/// The sum of all elements.  x: any shape; y: ().
template <class T, std::size_t R, class D>
Var<T, 0, D> sum(const Var<T, R, D>& x) {
  return detail::reduce_all(x, false);
}

/// The mean of all elements (NaN for an empty x, as torch.mean).  x: any shape; y: ().
template <class T, std::size_t R, class D>
Var<T, 0, D> mean(const Var<T, R, D>& x) {
  return detail::reduce_all(x, true);
}

/// Sum along `axis` (usually the last, -1), which is removed.  x: (..., n, ...); y: (..., ...).
/// Throws ShapeError naming "sum" and the shape when the axis is out of range.
template <class T, std::size_t R, class D>
  requires(R >= 1)
Var<T, R - 1, D> sum(const Var<T, R, D>& x, int axis) {
  return detail::reduce_axis(x, axis, false);
}

/// Mean along `axis` (usually the last, -1), which is removed.  x: (..., n, ...); y: (..., ...).
template <class T, std::size_t R, class D>
  requires(R >= 1)
Var<T, R - 1, D> mean(const Var<T, R, D>& x, int axis) {
  return detail::reduce_axis(x, axis, true);
}

}  // namespace deepprompt
