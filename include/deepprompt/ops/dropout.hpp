#pragma once
// dropout(x, p, gen, training): inverted dropout, as torch.nn.functional.dropout.
//
// In training with 0 < p < 1, element i is kept with probability 1 - p and then scaled by
// 1 / (1 - p), or set to 0. Its coin is word `first + i` of the counter-based generator, where
// `first = gen.advance(x.size())` reserves the words: element i is kept iff
// word >= ceil(p * 2^32). The mask therefore depends only on (gen's seed and offset, i), never
// on the thread count, and replaying a generator state replays the mask.
//   - !training or p == 0: returns x itself (the same Var; the generator is not advanced);
//   - p == 1: zeros, and a zero gradient (the generator is not advanced);
//   - p outside [0, 1] (or NaN): throws Error.
// A dropped element is exactly 0 even where x is inf or NaN (PyTorch multiplies by the 0/1
// mask, giving NaN there).
//
// Backward: dx += dy * mask / (1 - p). The mask is kept as bits, (n + 63) / 64 64-bit words.
// On any device: a GPU draws the same words (core/rng.hpp's philox_word), so drops the same elements.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../autodiff/var.hpp"
#include "../backend/cpu/philox.hpp"
#include "../core/rng.hpp"

namespace deepprompt {


/// Inverted dropout with drop probability p (see the top of this header).
template <class T, std::size_t R, class D>
Var<T, R, D> dropout(const Var<T, R, D>& x, std::type_identity_t<T> p, Generator& gen, bool training) {  // x, y: (...)
  if (!(p >= T(0) && p <= T(1)))
    throw Error(detail::cat("dropout: the drop probability p must be in [0, 1], got ", p));
  if (!training || p == T(0)) return x;
  const index_t n = x.size();
  if (p == T(1)) {
    auto out = Var<T, R, D>::result(filled<T, R, D>(x.shape(), T(0)), x.requires_grad());
    if (out.requires_grad()) tape().record(out.node(), [](const Tensor<T, R, D>&) {});  // the gradient is 0
    return out;
  }
  // keep iff word >= ceil(p 2^32): P(keep) = 1 - p up to 2^-32. p < 1 here, so threshold <= 2^32.
  const auto threshold = static_cast<std::uint64_t>(std::ceil(static_cast<long double>(p) * 4294967296.0L));
  const T scale = T(1) / (T(1) - p);
  const std::uint64_t first = gen.advance(static_cast<std::uint64_t>(n));
  Tensor<T, R, D> y(x.shape());
  const bool record = x.requires_grad() && tape().grad_enabled();
  Tensor<std::uint64_t, 1, D> mask;  // ((n + 63) / 64), saved for backward
  if (record) mask = Tensor<std::uint64_t, 1, D>({(n + 63) / 64});
  dropout_forward(D{}, x.value().data(), y.data(), mask.data(), n, gen.seed(), first,
                  threshold, scale);
  auto out = Var<T, R, D>::result(y, record);
  if (out.requires_grad())
    tape().record(out.node(), [mask, xn = x.node(), n, scale](const Tensor<T, R, D>& dy) {
      dropout_backward(D{}, mask.data(), dy.data(),
                       xn->accumulator().data(), n, scale);
    });
  return out;
}

}  // namespace deepprompt
