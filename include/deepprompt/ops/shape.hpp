#pragma once
// Shape ops on Vars: reshape (a view), permute (a copy), transpose (a permute of two axes).
//
// permute is what splits and merges attention heads, (B, T, H, D) <-> (B, H, T, D): the
// trailing axes that stay in place form contiguous blocks (D elements there) that are copied
// whole, so swapping two middle axes is a loop of block copies.
#include <array>
#include <cstring>
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/elementwise.hpp"

namespace deepprompt {

namespace detail {

// An axis in [-R, R) as an index in [0, R); throws ShapeError naming `op` otherwise.
template <std::size_t R>
std::size_t shape_axis_index(int axis, const char* op, const Shape<R>& shape) {
  const int r = static_cast<int>(R);
  if (axis < -r || axis >= r)
    throw ShapeError(detail::cat(op, ": axis ", axis, " out of range for shape ", shape_str(shape)));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

// The layout of y = permute(x, axes) as a loop over contiguous blocks.
template <std::size_t R>
struct PermutePlan {
  Shape<R> out_shape{};   // y's shape
  Shape<R> in_stride{};   // x's stride along y's axis i (the stride of x's axis axes[i])
  std::size_t lead = 0;   // y's axes [0, lead) are looped over; [lead, R) are one contiguous block
  index_t block = 1;      // elements per block (the same in x and y)
  index_t blocks = 1;     // number of blocks
};

template <std::size_t R>
PermutePlan<R> permute_plan(const Shape<R>& in_shape, const std::array<int, R>& axes) {
  PermutePlan<R> p;
  Shape<R> stride{};
  index_t acc = 1;
  for (std::size_t i = R; i-- > 0;) stride[i] = acc, acc *= in_shape[i];
  for (std::size_t i = 0; i < R; ++i) {
    p.out_shape[i] = in_shape[static_cast<std::size_t>(axes[i])];
    p.in_stride[i] = stride[static_cast<std::size_t>(axes[i])];
  }
  p.lead = R;
  while (p.lead > 0 && axes[p.lead - 1] == static_cast<int>(p.lead - 1)) --p.lead;
  for (std::size_t i = p.lead; i < R; ++i) p.block *= in_shape[i];
  for (std::size_t i = 0; i < p.lead; ++i) p.blocks *= p.out_shape[i];
  return p;
}

// Forward (Accumulate = false): y[j] = x[in(j)]; backward (true): dx[in(j)] += dy[j], over
// every position j of y. The permutation is a bijection, so blocks may run on any thread.
template <bool Accumulate, class T, std::size_t R>
void permute_blocks(const PermutePlan<R>& p, T* x, T* y) {
  const index_t block = p.block;
  const auto one = [&](index_t b) {
    // b is a row-major index over y's axes [0, lead); find x's offset of that block
    index_t rem = b, off = 0;
    for (std::size_t i = p.lead; i-- > 0;) {
      const index_t e = p.out_shape[i];
      off += (rem % e) * p.in_stride[i];
      rem /= e;
    }
    T* yb = y + b * block;
    T* xb = x + off;
    if constexpr (Accumulate)
      cpu::add<T>(xb, yb, xb, block);
    else
      std::memcpy(yb, xb, static_cast<std::size_t>(block) * sizeof(T));
  };
  if (block == 1 && p.lead > 0) {
    // nothing stays in place: walk y's last axis with x's stride there
    const index_t n = p.out_shape[p.lead - 1], s = p.in_stride[p.lead - 1];
    const index_t rows = p.blocks / (n > 0 ? n : 1);
    const auto row = [&](index_t r) {
      index_t rem = r, off = 0;
      for (std::size_t i = p.lead - 1; i-- > 0;) {
        const index_t e = p.out_shape[i];
        off += (rem % e) * p.in_stride[i];
        rem /= e;
      }
      T* yr = y + r * n;
      const T* xr = x + off;
      for (index_t k = 0; k < n; ++k) {
        if constexpr (Accumulate)
          x[off + k * s] += yr[k];
        else
          yr[k] = xr[k * s];
      }
    };
    if (p.blocks == 0) return;
    if (p.blocks >= cpu::simd::parallel_threshold) {
#pragma omp parallel for schedule(static)
      for (index_t r = 0; r < rows; ++r) row(r);
    } else {
      for (index_t r = 0; r < rows; ++r) row(r);
    }
    return;
  }
  if (p.blocks * block >= cpu::simd::parallel_threshold && p.blocks > 1) {
#pragma omp parallel for schedule(static)
    for (index_t b = 0; b < p.blocks; ++b) one(b);
  } else {
    for (index_t b = 0; b < p.blocks; ++b) one(b);
  }
}

}  // namespace detail

/// The same elements with another shape, as a view (nothing is copied); the gradient is
/// reshaped back. Throws ShapeError naming "reshape" and both shapes when the sizes differ.
/// On any device.
template <std::size_t NewRank, class T, std::size_t R, class D>
Var<T, NewRank, D> reshape(const Var<T, R, D>& x, const Shape<NewRank>& shape) {
  auto out = Var<T, NewRank, D>::result(x.value().template reshape<NewRank>(shape), x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [xn = x.node()](const Tensor<T, NewRank, D>& dy) {
      T* dx = xn->accumulator().data();
      add(D{}, dx, dy.data(), dx, dy.size());
    });
  return out;
}

/// y's axis i is x's axis axes[i] (torch.permute), copied into a new contiguous tensor.
/// x: (d0, ..., d{R-1}); y: (d{axes[0]}, ..., d{axes[R-1]}). Throws ShapeError when `axes`
/// is not a permutation of 0..R-1. On any device (another device's permute_copy kernel).
template <class T, std::size_t R, class D>
Var<T, R, D> permute(const Var<T, R, D>& x, const std::array<int, R>& axes) {
  std::array<bool, R> seen{};
  bool ok = true;
  for (int a : axes) {
    if (a < 0 || a >= static_cast<int>(R) || seen[static_cast<std::size_t>(a)]) {
      ok = false;
      break;
    }
    seen[static_cast<std::size_t>(a)] = true;
  }
  if (!ok)
    throw ShapeError(detail::cat("permute: axes ", shape_str(axes), " are not a permutation of the axes of shape ",
                                 shape_str(x.shape())));
  const auto plan = detail::permute_plan(x.shape(), axes);
  Tensor<T, R, D> y(plan.out_shape);
  // forward: y = x permuted; backward: x += y permuted back
  const auto run = [plan](bool backward, T* xd, T* yd) {
    if constexpr (std::is_same_v<D, Cpu>) {
      if (backward) detail::permute_blocks<true>(plan, xd, yd);
      else detail::permute_blocks<false>(plan, xd, yd);
    } else {
      permute_copy(D{}, backward, plan.out_shape, plan.in_stride, plan.lead, plan.block, plan.block * plan.blocks, xd,
                   yd);
    }
  };
  run(false, x.value().data(), y.data());
  auto out = Var<T, R, D>::result(y, x.requires_grad());
  if (out.requires_grad())
    tape().record(out.node(), [run, xn = x.node()](const Tensor<T, R, D>& dy) {
      run(true, xn->accumulator().data(), dy.data());
    });
  return out;
}

/// x with axes a0 and a1 swapped (negative axes count from the end), as a permute (a copy).
template <class T, std::size_t R, class D>
Var<T, R, D> transpose(const Var<T, R, D>& x, int a0, int a1) {
  std::array<int, R> axes{};
  for (std::size_t i = 0; i < R; ++i) axes[i] = static_cast<int>(i);
  const auto i0 = detail::shape_axis_index(a0, "transpose", x.shape());
  const auto i1 = detail::shape_axis_index(a1, "transpose", x.shape());
  std::swap(axes[i0], axes[i1]);
  return permute(x, axes);
}

}  // namespace deepprompt
