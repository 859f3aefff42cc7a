#pragma once
// concat and slice along any axis, on any device.
//
// Seen around the axis, a tensor of shape (outer..., n, inner...) is `outer` rows of
// n * inner contiguous elements; concatenating is copying each input's row piece into the
// output row at its offset, slicing is copying one piece out, and the backward passes add the
// same pieces back (accumulating). Negative axes count from the end.
#include <array>
#include <cstring>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <vector>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"
#include "shape.hpp"  // detail::shape_axis_index

namespace deepprompt {

namespace detail {

// Products of the extents before and after `axis`.
template <std::size_t R>
void concat_outer_inner(const Shape<R>& s, std::size_t axis, index_t& outer, index_t& inner) {
  outer = 1;
  inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < R; ++i) inner *= s[i];
}

// On a device (its permute_copy kernel over (outer, width) pieces of rows of `row` elements):
// scatter: rows[o * row + j] += piece[o * width + j]; gather: piece[o * width + j] = rows[...].
template <class D, class T>
void device_row_pieces(bool scatter, T* rows, index_t row, T* piece, index_t width, index_t outer) {
  if (width > 0 && outer > 0)
    permute_copy(D{}, scatter, std::array<index_t, 2>{outer, width}, std::array<index_t, 2>{row, 1}, std::size_t{1},
                 width, outer * width, rows, piece);
}

// For each of `outer` rows: dst[o * dst_row + dst_off, + width) = / += src[o * src_row + src_off, + width).
template <bool Accumulate, class T>
void concat_copy_pieces(const T* src, index_t src_row, index_t src_off, T* dst, index_t dst_row, index_t dst_off,
                 index_t width, index_t outer) {
  if (width <= 0) return;
  const auto one = [&](index_t o) {
    const T* s = src + o * src_row + src_off;
    T* d = dst + o * dst_row + dst_off;
    if constexpr (Accumulate)
      cpu::add<T>(d, s, d, width);
    else
      std::memcpy(d, s, static_cast<std::size_t>(width) * sizeof(T));
  };
  if (outer > 1 && outer * width >= cpu::simd::parallel_threshold) {
#pragma omp parallel for schedule(static)
    for (index_t o = 0; o < outer; ++o) one(o);
  } else {
    for (index_t o = 0; o < outer; ++o) one(o);
  }
}

// Where one input of a concat goes; an array of these lives in the tape's arena.
template <class T, std::size_t R, class D>
struct ConcatPart {
  VarNode<T, R, D>* node;  // nullptr: needs no gradient
  index_t offset;       // in elements, within an output row
  index_t width;        // elements per row of this input
};

}  // namespace detail

/// The inputs joined along `axis`; every other extent must match. y's extent along the axis
/// is the sum of the inputs'. Throws ShapeError naming "concat" and the first mismatching
/// pair of shapes, or for no inputs or a bad axis. On any device.
template <class T, std::size_t R, class D>
Var<T, R, D> concat(std::span<const Var<T, R, D>> xs, int axis) {
  static_assert(R >= 1, "concat: the inputs need at least one axis");
  if (xs.empty()) throw ShapeError("concat: no inputs");
  const Shape<R>& first = xs[0].shape();
  const std::size_t ax = detail::shape_axis_index(axis, "concat", first);
  Shape<R> ys = first;
  ys[ax] = 0;
  bool needs_grad = false;
  for (const auto& x : xs) {
    bool ok = true;
    for (std::size_t i = 0; i < R; ++i) ok = ok && (i == ax || x.shape()[i] == first[i]);
    if (!ok)
      check_shapes(false, "concat", detail::cat("extents off the concatenation axis ", ax, " differ"), first,
                   x.shape());
    ys[ax] += x.shape()[ax];
    needs_grad = needs_grad || x.requires_grad();
  }
  index_t outer, inner;
  detail::concat_outer_inner(ys, ax, outer, inner);
  const index_t row = ys[ax] * inner;  // y: (outer, row)
  constexpr bool host = std::is_same_v<D, Cpu>;
  Tensor<T, R, D> y = host ? Tensor<T, R, D>(ys) : filled<T, R, D>(ys, T(0));  // a device adds the pieces in
  index_t off = 0;
  for (const auto& x : xs) {
    const index_t w = x.shape()[ax] * inner;
    if constexpr (host)
      detail::concat_copy_pieces<false>(x.value().data(), w, 0, y.data(), row, off, w, outer);
    else
      detail::device_row_pieces<D>(true, y.data() + off, row, x.value().data(), w, outer);
    off += w;
  }
  auto out = Var<T, R, D>::result(y, needs_grad);
  if (out.requires_grad()) {
    using Part = detail::ConcatPart<T, R, D>;
    const std::size_t n = xs.size();
    auto* parts = static_cast<Part*>(tape().arena().allocate(n * sizeof(Part), alignof(Part)));
    off = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const index_t w = xs[i].shape()[ax] * inner;
      parts[i] = Part{xs[i].node(), off, w};
      off += w;
    }
    tape().record(out.node(), [parts, n, outer, row](const Tensor<T, R, D>& dy) {
      for (std::size_t i = 0; i < n; ++i) {
        if (!parts[i].node) continue;
        const index_t w = parts[i].width;
        T* dx = parts[i].node->accumulator().data();
        if constexpr (std::is_same_v<D, Cpu>) {
          detail::concat_copy_pieces<true>(dy.data(), row, parts[i].offset, dx, w, 0, w, outer);
        } else if (w > 0) {  // gather the piece, then add it
          Tensor<T, 1, D> piece({outer * w});
          detail::device_row_pieces<D>(false, dy.data() + parts[i].offset, row, piece.data(), w, outer);
          add(D{}, static_cast<const T*>(dx), static_cast<const T*>(piece.data()), dx, outer * w);
        }
      }
    });
  }
  return out;
}

template <class T, std::size_t R, std::size_t N, class D>
Var<T, R, D> concat(const std::array<Var<T, R, D>, N>& xs, int axis) {
  return concat(std::span<const Var<T, R, D>>(xs.data(), N), axis);
}

template <class T, std::size_t R, class D>
Var<T, R, D> concat(std::initializer_list<Var<T, R, D>> xs, int axis) {
  return concat(std::span<const Var<T, R, D>>(xs.begin(), xs.size()), axis);
}

/// Elements [begin, end) along `axis`: a view for axis 0, a copy otherwise. The gradient is
/// added into that part of x's. Throws ShapeError naming "slice", the range and the shape
/// unless 0 <= begin <= end <= x.extent(axis). On any device (a copy off axis 0 is another
/// device's permute_copy kernel over (outer, width) pieces of rows).
template <class T, std::size_t R, class D>
Var<T, R, D> slice(const Var<T, R, D>& x, int axis, index_t begin, index_t end) {
  static_assert(R >= 1, "slice: x needs at least one axis");
  const std::size_t ax = detail::shape_axis_index(axis, "slice", x.shape());
  if (begin < 0 || begin > end || end > x.shape()[ax])
    throw ShapeError(detail::cat("slice: [", begin, ", ", end, ") out of range along axis ", ax, " of shape ",
                                 shape_str(x.shape())));
  index_t outer, inner;
  detail::concat_outer_inner(x.shape(), ax, outer, inner);
  const index_t xrow = x.shape()[ax] * inner, off = begin * inner, w = (end - begin) * inner;
  // forward: y (outer, w) = x's rows [off, off + w); backward: x's rows += dy
  const auto run = [outer, xrow, off, w](bool backward, T* xd, T* yd) {
    if constexpr (std::is_same_v<D, Cpu>) {
      if (backward) detail::concat_copy_pieces<true>(yd, w, 0, xd, xrow, off, w, outer);
      else detail::concat_copy_pieces<false>(xd, xrow, off, yd, w, 0, w, outer);
    } else {
      detail::device_row_pieces<D>(backward, xd + off, xrow, yd, w, outer);
    }
  };
  Tensor<T, R, D> y;
  if (R == 1 || ax == 0) {  // (R == 1 tells the compiler that ys[ax] below is in bounds)
    y = x.value().slice(begin, end);
  } else {
    Shape<R> ys = x.shape();
    ys[ax] = end - begin;
    y = Tensor<T, R, D>(ys);
    run(false, x.value().data(), y.data());
  }
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [run, xn = x.node()](const Tensor<T, R, D>& dy) {
      run(true, xn->accumulator().data(), dy.data());
    });
  return out;
}

/// rows (P, W) repeated for B examples: (B, P, W) (differentiable; the gradient is summed over
/// the examples, in order). On any device (its permute_copy and sum_rows_accumulate kernels).
template <class T, class D>
Var<T, 3, D> repeat_rows(const Var<T, 2, D>& rows, index_t batch) {
  if (batch < 1) throw ShapeError(detail::cat("repeat_rows: batch size ", batch, " < 1"));
  const index_t P = rows.extent(0), W = rows.extent(1), n = P * W;
  if (batch == 1) return reshape<3>(rows, Shape<3>{1, P, W});
  Tensor<T, 3, D> y({batch, P, W});
  if constexpr (std::is_same_v<D, Cpu>) {
    for (index_t b = 0; b < batch; ++b)
      if (n > 0) std::memcpy(y.data() + b * n, rows.value().data(), static_cast<std::size_t>(n) * sizeof(T));
  } else if (n > 0) {  // y (B, n) gathers row 0 of rows seen as (1, n): a stride of 0 along B
    permute_copy(D{}, false, std::array<index_t, 2>{batch, n}, std::array<index_t, 2>{0, 1}, std::size_t{1}, n,
                 batch * n, rows.value().data(), y.data());
  }
  auto out = Var<T, 3, D>::result(y, rows.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [xn = rows.node(), batch, n](const Tensor<T, 3, D>& dy) {
      sum_rows_accumulate(D{}, dy.data(), xn->accumulator().data(), batch, n);  // dy seen as (B, P * W)
    });
  return out;
}

}  // namespace deepprompt
