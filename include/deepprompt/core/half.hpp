#pragma once
// 16-bit storage types: bfloat16 and IEEE half. They store; arithmetic happens in float.
// Conversions round to nearest even, keep infinities and NaNs, and handle subnormals.
#include <bit>
#include <cstdint>

namespace deepprompt {

/// bfloat16: the upper half of an IEEE float (8-bit exponent, 7-bit mantissa).
struct bf16 {
  std::uint16_t bits = 0;

  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return std::bit_cast<float>(std::uint32_t{bits} << 16); }
  explicit operator double() const { return static_cast<float>(*this); }
  static bf16 from_bits(std::uint16_t b) {
    bf16 h;
    h.bits = b;
    return h;
  }

  static std::uint16_t from_float(float f) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // to nearest, ties to even
    return static_cast<std::uint16_t>((u + rounding) >> 16);
  }
};

/// IEEE 754 binary16 (5-bit exponent, 10-bit mantissa), as torch.float16.
struct fp16 {
  std::uint16_t bits = 0;

  fp16() = default;
  explicit fp16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  explicit operator double() const { return to_float(bits); }
  static fp16 from_bits(std::uint16_t b) {
    fp16 h;
    h.bits = b;
    return h;
  }

  static std::uint16_t from_float(float f) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
    if (a < 0x38800000u) {  // result is subnormal or zero: scale into the subnormal grid
      const float magic = std::bit_cast<float>(0x3f000000u);  // 0.5: aligns bit 0 to 2^-24
      const float r = std::bit_cast<float>(a) + magic;          // FPU rounds to nearest even
      return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(r) - 0x3f000000u));
    }
    // normal: rebias exponent (127 -> 15), round the 13 dropped bits to nearest even
    const std::uint32_t mant_odd = (a >> 13) & 1u;
    std::uint32_t r = a + 0xc8000fffu + mant_odd;  // 0xc8000000 = -(112 << 23)
    return static_cast<std::uint16_t>(sign | (r >> 13));
  }
  static float to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    const std::uint32_t mant = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: mant * 2^-24
      const float v = static_cast<float>(mant) * std::bit_cast<float>(0x33800000u);
      return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(v));
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
  }
};

}  // namespace deepprompt
