#pragma once
// Dropout on the device, the mirror of backend/cpu/philox.hpp's dropout_forward / _backward:
// element i's coin is word first + i of the Philox stream `seed` (core/rng.hpp philox_word, the
// same function the CPU's words equal), kept iff word >= threshold, so a CPU and a GPU run draw
// the same mask, bit for bit; the mask is stored as the CPU stores it (bit i % 64 of word i / 64).
#include <cstdint>

#include "../../core/rng.hpp"
#include "launch.cuh"

namespace deepprompt::cuda {

// x, y: (n); mask: ((n + 63) / 64) words or nullptr. y may alias x.
// ensures: y[i] = kept(i) ? x[i] * scale : 0 (exactly 0, even for inf or NaN).
// One thread per 64 elements (one mask word); each element draws its own Philox block (4x the
// arithmetic of sharing blocks: simple before fast).
template <class T>
void dropout_forward(const T* x, T* y, std::uint64_t* mask, index_t n, std::uint64_t seed, std::uint64_t first,
                     std::uint64_t threshold, T scale) {
  for_each_index((n + 63) / 64, [=] __device__(index_t w) {
    const index_t begin = w * 64, end = begin + 64 < n ? begin + 64 : n;
    std::uint64_t bits = 0;
    for (index_t i = begin; i < end; ++i) {
      const bool keep = philox_word(seed, first + static_cast<std::uint64_t>(i)) >= threshold;
      y[i] = keep ? x[i] * scale : T(0);
      bits |= std::uint64_t{keep} << (i - begin);
    }
    if (mask) mask[w] = bits;
  }, "cuda::dropout_forward");
}

// dy, dx: (n); mask as written by dropout_forward.  dx[i] += kept(i) ? dy[i] * scale : 0.
template <class T>
void dropout_backward(const std::uint64_t* mask, const T* dy, T* dx, index_t n, T scale) {
  for_each_index(n, [=] __device__(index_t i) {
    if ((mask[i / 64] >> (i % 64)) & 1u) dx[i] += dy[i] * scale;
  }, "cuda::dropout_backward");
}

}  // namespace deepprompt::cuda
