#pragma once
// Axis permutation on the device (the kernel of ops/shape.hpp's permute): y = permute(x) as a
// copy, or its backward, x += permute^-1(y). One thread per element of y; the permutation is a
// bijection, so the backward's += never races.
#include <array>

#include "launch.cuh"

namespace deepprompt::cuda {

namespace permute_detail {
// y's extents and x's strides as plain arrays (std::array's operator[] is host-only).
template <std::size_t R>
struct Axes {
  index_t extent[R > 0 ? R : 1], stride[R > 0 ? R : 1];
};
}  // namespace permute_detail

// y's axes [0, lead) are looped over, with x's strides in_stride[i] along y's axis i (extent
// out_shape[i]); the trailing `block` elements of each are contiguous in x and y. n: y's size.
// accumulate == false: y[j] = x[src(j)]; true: x[src(j)] += y[j].
template <class T, std::size_t R>
void permute_copy(bool accumulate, const std::array<index_t, R>& out_shape, const std::array<index_t, R>& in_stride,
                  std::size_t lead, index_t block, index_t n, T* x, T* y) {
  permute_detail::Axes<R> axes{};
  for (std::size_t i = 0; i < R; ++i) axes.extent[i] = out_shape[i], axes.stride[i] = in_stride[i];
  for_each_index(n, [=] __device__(index_t j) {
    index_t rem = j / block, off = j % block;
    for (std::size_t i = lead; i-- > 0;) {
      off += (rem % axes.extent[i]) * axes.stride[i];
      rem /= axes.extent[i];
    }
    if (accumulate)
      x[off] += y[j];
    else
      y[j] = x[off];
  }, "cuda::permute_copy");
}

}  // namespace deepprompt::cuda
