#pragma once
// The per-row pieces of the fused attention (backend/cpu/attention_kernels.hpp): adding a mask
// or bias row, the softmax of a score row (saving its max and 1 / sum for the backward pass),
// recomputing probabilities from them, a dot product, and the attention dropout's factors.
#include "deepprompt/backend/cpu/simd.hpp"
#include "deepprompt/backend/cpu/philox.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace deepprompt::cpu::attn_detail {

template <class T>
inline constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// s[0, n) += a[0, n)
template <class T>
void add_row(T* s, const T* a, index_t n) noexcept {
  simd::apply(n, s, [](simd::batch<T> x, simd::batch<T> y) { return x + y; }, s, a);
}

// In place: s[0, n) <- softmax(s[0, n)); stats[0] = max, stats[1] = 1 / sum(exp(s - max)).
// A row that is empty or all -inf becomes zeros, with stats {+inf, 0} (from which
// probabilities_row recomputes zeros). stats == nullptr: not saved.
template <class T>
void softmax_row(T* s, index_t n, T* stats) noexcept {
  using B = simd::batch<T>;
  constexpr index_t L = simd::lanes<T>;
  B vmax(kNegInf<T>);
  for (index_t i = 0; i < n; i += L) vmax = xsimd::max(vmax, simd::load_n(s + i, std::min(L, n - i), kNegInf<T>));
  const T m = n > 0 ? simd::hmax(vmax) : kNegInf<T>;
  if (m == kNegInf<T>) {
    std::fill_n(s, n, T(0));
    if (stats) stats[0] = std::numeric_limits<T>::infinity(), stats[1] = T(0);
    return;
  }
  const B vm(m);
  B acc(T(0));
  for (index_t i = 0; i < n; i += L) {
    const index_t k = std::min(L, n - i);
    const B e = xsimd::exp(simd::load_n(s + i, k, kNegInf<T>) - vm);  // padding adds e^-inf = 0
    simd::store_n(s + i, e, k);
    acc += e;
  }
  const T inv_sum = T(1) / xsimd::hadd(acc);
  const B inv(inv_sum);
  simd::apply(n, s, [inv](B e) { return e * inv; }, s);
  if (stats) stats[0] = m, stats[1] = inv_sum;
}

// In place: s[0, n) <- exp(s[0, n) - stats[0]) * stats[1], what softmax_row produced.
template <class T>
void probabilities_row(T* s, index_t n, const T* stats) noexcept {
  const simd::batch<T> vm(stats[0]), inv(stats[1]);
  simd::apply(n, s, [vm, inv](simd::batch<T> x) { return xsimd::exp(x - vm) * inv; }, s);
}

// sum(a[0, n) * b[0, n))
template <class T>
T dot_row(const T* a, const T* b, index_t n) noexcept {
  constexpr index_t L = simd::lanes<T>;
  simd::batch<T> acc(T(0));
  for (index_t i = 0; i < n; i += L) {
    const index_t k = std::min(L, n - i);
    acc = xsimd::fma(simd::load_n(a + i, k, T(0)), simd::load_n(b + i, k, T(0)), acc);
  }
  return xsimd::hadd(acc);
}

// The dropout factors of row i: z[j] = kept ? 1 / (1 - p) : 0 for j in [0, n), applied as
// s[j] *= z[j] by f(j, z) (f is called with the factor; the kept test is word >= threshold).
template <class T>
struct Dropout {
  bool on = false, all = false;  // all: p == 1, everything dropped, nothing drawn
  std::uint64_t threshold = 0;   // ceil(p * 2^32)
  T scale = T(0);                // 1 / (1 - p)

  explicit Dropout(T p) {
    on = p > T(0);
    all = p >= T(1);
    if (on && !all) {
      threshold = static_cast<std::uint64_t>(std::ceil(static_cast<long double>(p) * 4294967296.0L));
      scale = T(1) / (T(1) - p);
    }
  }
  // x[j] *= factor of element j, for the row whose first word is `first`; bits: nullptr, or
  // (n + 63) / 64 words that receive the kept bits.
  void apply(std::uint64_t seed, std::uint64_t first, T* x, index_t n, std::uint32_t* tmp,
             std::uint64_t* bits = nullptr) const {
    if (all) {
      std::fill_n(x, n, T(0));
      return;
    }
    keep_apply(philox_words(seed, first, n, tmp), x, x, n, threshold, scale, bits);
  }
  // z[j] = factor of element j from the bits apply() wrote.
  void factors(const std::uint64_t* bits, T* z, index_t n) const {
    if (all) std::fill_n(z, n, T(0));
    else keep_factors(bits, z, n, scale);
  }
};

}  // namespace deepprompt::cpu::attn_detail
