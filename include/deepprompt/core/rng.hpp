#pragma once
// Reproducible randomness: Philox4x32-10, a counter-based generator (Salmon et al., SC'11).
// Element i of a draw depends only on (seed, offset + i), never on the thread that computes it
// or on the device, so initialisation and dropout masks are the same at any thread count
// and can be drawn identically by a GPU kernel.
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "device.hpp"

namespace deepprompt {

/// The Philox4x32-10 bijection, in place: 128-bit counter c x 64-bit key -> 128 random bits.
/// Host and device code (backend/cuda draws the CPU's words).
DEEPPROMPT_HOST_DEVICE inline void philox4x32_10(std::uint32_t c[4], std::uint64_t key64) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  std::uint32_t k0 = static_cast<std::uint32_t>(key64), k1 = static_cast<std::uint32_t>(key64 >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kM0} * c[0];
    const std::uint64_t p1 = std::uint64_t{kM1} * c[2];
    const std::uint32_t c1 = c[1], c3 = c[3];
    c[0] = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    c[1] = static_cast<std::uint32_t>(p1);
    c[2] = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c[3] = static_cast<std::uint32_t>(p0);
    k0 += kW0;
    k1 += kW1;
  }
}

/// The same on an array.
inline std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr, std::uint64_t key64) {
  philox4x32_10(ctr.data(), key64);
  return ctr;
}

/// Word i of the Philox stream `seed`: word i % 4 of the block with counter (i / 4, 0).
/// Generator(seed).word_at(i); host and device code.
DEEPPROMPT_HOST_DEVICE inline std::uint32_t philox_word(std::uint64_t seed, std::uint64_t i) {
  const std::uint64_t block = i / 4;
  std::uint32_t c[4] = {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), 0u, 0u};
  philox4x32_10(c, seed);
  return c[i % 4];
}

/// A stream of random numbers identified by (seed, offset). `offset` advances by the number of
/// 32-bit words drawn, so two draws never overlap; `at(i)` is random access into the stream.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0, std::uint64_t offset = 0) : seed_(seed), offset_(offset) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) { seed_ = seed, offset_ = offset; }

  /// Word i of the stream, without advancing it.
  std::uint32_t word_at(std::uint64_t i) const {
    return philox_word(seed_, i);
  }
  /// Uniform in [0, 1) with 24 random bits (exactly representable in float).
  static float to_unit(std::uint32_t w) { return static_cast<float>(w >> 8) * 0x1.0p-24f; }
  /// Uniform in (0, 1], safe for log().
  static double to_open_unit(std::uint32_t w) { return (static_cast<double>(w) + 1.0) * 0x1.0p-32; }

  /// Reserves `n` words and returns the index of the first; use word_at(first + i).
  std::uint64_t advance(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += (n + 3) / 4 * 4;  // keep draws block-aligned
    return first;
  }

  float uniform() { return to_unit(word_at(advance(1))); }
  /// Standard normal from two words (Box-Muller), the pair at (2i, 2i+1).
  double normal() {
    const auto first = advance(2);
    return normal_at(first);
  }
  double normal_at(std::uint64_t first) const {
    const double u1 = to_open_unit(word_at(first)), u2 = to_unit(word_at(first + 1));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::uint64_t seed_ = 0;
  std::uint64_t offset_ = 0;
};

}  // namespace deepprompt
