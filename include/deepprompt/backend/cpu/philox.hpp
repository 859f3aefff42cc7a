#pragma once
// Vectorised Philox4x32-10 words and the dropout kernels built on them (raw pointers, no
// autodiff). Word i of the stream `seed` is Generator(seed).word_at(i) of core/rng.hpp, bit for
// bit: one counter block of four words per 64-bit xsimd lane, the key schedule shared.
// Dropout rule (ops/dropout.hpp, and the attention's dropout): element i is kept iff its word is
// >= threshold = ceil(p * 2^32), and a kept element is scaled by 1 / (1 - p).
#include "deepprompt/backend/cpu/simd.hpp"
#include "deepprompt/core/device.hpp"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace deepprompt::cpu {

namespace philox_detail {
// a * b for lanes holding values below 2^32: one 32 x 32 -> 64-bit multiply (vpmuludq) where
// the target has it, instead of a full 64-bit multiply (vpmullq: three micro-ops).
template <class U>
inline U mul_lo32(const U& a, const U& b) noexcept {
#if defined(__AVX512F__)
  if constexpr (sizeof(typename U::register_type) == 64) return U(_mm512_mul_epu32(a, b));
#endif
#if defined(__AVX2__)
  if constexpr (sizeof(typename U::register_type) == 32) return U(_mm256_mul_epu32(a, b));
#endif
  return a * b;
}
}  // namespace philox_detail

// The words philox_words needs in its buffer to return n of them.
inline constexpr index_t philox_capacity(index_t n) {
  return n + 8 + 4 * static_cast<index_t>(xsimd::batch<std::uint64_t>::size);
}

// Words [first, first + n) of the Philox stream `seed`. Returns a pointer to word `first` inside
// tmp.  requires: tmp holds philox_capacity(n) words.
inline const std::uint32_t* philox_words(std::uint64_t seed, std::uint64_t first, index_t n, std::uint32_t* tmp) {
  using U = xsimd::batch<std::uint64_t>;
  constexpr index_t L = static_cast<index_t>(U::size);
  constexpr std::uint64_t lo32 = 0xFFFFFFFFu;
  std::uint64_t key0[10], key1[10];  // the key schedule is the same in every lane
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r, k0 += 0x9E3779B9u, k1 += 0xBB67AE85u) key0[r] = k0, key1[r] = k1;
  const U mask(lo32), m0(std::uint64_t{0xD2511F53u}), m1(std::uint64_t{0xCD9E8D57u});
  alignas(64) std::uint64_t blocks[L], w0[L], w1[L], w2[L], w3[L];
  const std::uint64_t b0 = first / 4, end = first + static_cast<std::uint64_t>(n);
  for (std::uint64_t b = b0; b * 4 < end; b += L) {
    for (index_t l = 0; l < L; ++l) blocks[l] = b + static_cast<std::uint64_t>(l);
    const U blk = U::load_aligned(blocks);
    U c0 = blk & mask, c1 = blk >> 32, c2(std::uint64_t{0}), c3(std::uint64_t{0});
    for (int r = 0; r < 10; ++r) {  // the round of philox4x32() in core/rng.hpp
      const U p0 = philox_detail::mul_lo32(c0, m0), p1 = philox_detail::mul_lo32(c2, m1);
      c0 = (p1 >> 32) ^ c1 ^ U(key0[r]);
      c1 = p1 & mask;
      c2 = (p0 >> 32) ^ c3 ^ U(key1[r]);
      c3 = p0 & mask;
    }
    std::uint32_t* t = tmp + (b - b0) * 4;
#if defined(__AVX512F__)
    if constexpr (L == 8) {  // interleave to t[4 l + r] = c_r[l] with shuffles, not 32 scalar stores
      const __m512i p01 = _mm512_or_si512(_mm512_slli_epi64(c1, 32), c0);  // (c0[l], c1[l])
      const __m512i p23 = _mm512_or_si512(_mm512_slli_epi64(c3, 32), c2);  // (c2[l], c3[l])
      const __m512i lo = _mm512_unpacklo_epi64(p01, p23), hi = _mm512_unpackhi_epi64(p01, p23);
      _mm512_storeu_si512(t, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi));
      _mm512_storeu_si512(t + 16, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi));
      continue;
    }
#endif
    c0.store_aligned(w0), c1.store_aligned(w1), c2.store_aligned(w2), c3.store_aligned(w3);
    for (index_t l = 0; l < L; ++l) {
      t[4 * l] = static_cast<std::uint32_t>(w0[l]);
      t[4 * l + 1] = static_cast<std::uint32_t>(w1[l]);
      t[4 * l + 2] = static_cast<std::uint32_t>(w2[l]);
      t[4 * l + 3] = static_cast<std::uint32_t>(w3[l]);
    }
  }
  return tmp + first % 4;
}

// The dropout rule on n words w: y[j] = w[j] >= threshold ? x[j] * scale : 0 (exactly 0 for a
// dropped inf or NaN), y may alias x; bits: nullptr, or (n + 63) / 64 words that receive the
// kept bits (bit j % 64 of word j / 64). requires: threshold <= 2^32.
template <class T>
void keep_apply(const std::uint32_t* w, const T* x, T* y, index_t n, std::uint64_t threshold, T scale,
                std::uint64_t* bits) noexcept {
  index_t j = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (threshold <= 0xFFFFFFFFu) {
      const __m512i thr = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(threshold)));
      const __m512 sc = _mm512_set1_ps(scale);
      std::uint64_t word = 0;
      for (; j + 16 <= n; j += 16) {
        const __mmask16 keep = _mm512_cmpge_epu32_mask(_mm512_loadu_si512(w + j), thr);
        _mm512_storeu_ps(y + j, _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(x + j), sc));
        word |= std::uint64_t{keep} << (j % 64);
        if (j % 64 == 48) {
          if (bits) bits[j / 64] = word;
          word = 0;
        }
      }
      if (bits && j % 64 != 0) bits[j / 64] = word;  // the partial word the tail completes
    }
  }
#endif
  for (; j < n; ++j) {
    const bool keep = w[j] >= threshold;
    y[j] = keep ? x[j] * scale : T(0);
    if (bits) {
      if (j % 64 == 0) bits[j / 64] = 0;
      bits[j / 64] |= std::uint64_t{keep} << (j % 64);
    }
  }
}

// z[j] = kept ? scale : 0 for j in [0, n), from bits that keep_apply wrote.
template <class T>
void keep_factors(const std::uint64_t* bits, T* z, index_t n, T scale) noexcept {
  index_t j = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (; j + 16 <= n; j += 16)
      _mm512_storeu_ps(z + j, _mm512_maskz_mov_ps(static_cast<__mmask16>(bits[j / 64] >> (j % 64)), sc));
  }
#endif
  for (; j < n; ++j) z[j] = (bits[j / 64] >> (j % 64)) & 1u ? scale : T(0);
}

// x, y: (n); mask: ((n + 63) / 64) words (bit i % 64 of word i / 64 set iff element i is kept)
// or nullptr (not saved). y may alias x. Element i's word is word first + i of stream `seed`.
// ensures: y[i] = kept ? x[i] * scale : 0 (exactly 0, even for an inf or NaN x[i]).
// Threads split chunks of 4096 elements (64 mask words); the result does not depend on them.
template <class T>
void dropout_forward(const T* x, T* y, std::uint64_t* mask, index_t n, std::uint64_t seed, std::uint64_t first,
                     std::uint64_t threshold, T scale) {
  constexpr index_t C = simd::chunk;  // a multiple of 64
  const index_t chunks = (n + C - 1) / C;
#pragma omp parallel for schedule(static) if (n >= simd::parallel_threshold)
  for (index_t c = 0; c < chunks; ++c) {
    std::uint32_t tmp[philox_capacity(C)];
    const index_t begin = c * C, len = std::min(C, n - begin);
    const std::uint32_t* w = philox_words(seed, first + static_cast<std::uint64_t>(begin), len, tmp);
    keep_apply(w, x + begin, y + begin, len, threshold, scale, mask ? mask + begin / 64 : nullptr);
  }
}

// dy, dx: (n); mask as written by dropout_forward.  ensures: dx[i] += kept(i) ? dy[i] * scale : 0.
template <class T>
void dropout_backward(const std::uint64_t* mask, const T* dy, T* dx, index_t n, T scale) {
  const index_t words = (n + 63) / 64;
#pragma omp parallel for schedule(static) if (n >= simd::parallel_threshold)
  for (index_t w = 0; w < words; ++w) {
    const index_t begin = w * 64, end = std::min(n, begin + 64);
    const std::uint64_t bits = mask[w];
    index_t i = begin;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      const __m512 sc = _mm512_set1_ps(scale);
      for (; i + 16 <= end; i += 16) {
        const auto keep = static_cast<__mmask16>(bits >> (i - begin));
        _mm512_storeu_ps(dx + i, _mm512_add_ps(_mm512_loadu_ps(dx + i), _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(dy + i), sc)));
      }
    }
#endif
    for (; i < end; ++i) dx[i] += ((bits >> (i - begin)) & 1u) ? dy[i] * scale : T(0);
  }
}

}  // namespace deepprompt::cpu

// --- the same kernels under the device tag: f(Cpu{}, args...) forwards to cpu::f(args...), so
// that ops written for any device reach them by argument-dependent lookup (backend/dispatch.hpp).
namespace deepprompt {

template <class... A>
void dropout_forward(Cpu, A&&... a) {
  cpu::dropout_forward(std::forward<A>(a)...);
}
template <class... A>
void dropout_backward(Cpu, A&&... a) {
  cpu::dropout_backward(std::forward<A>(a)...);
}

}  // namespace deepprompt
