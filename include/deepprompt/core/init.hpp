#pragma once
// Seeded, reproducible initialisers. Element i draws from words (first + k*i ...) of the
// generator's stream, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "rng.hpp"
#include "tensor.hpp"

namespace deepprompt::init {

/// erf^-1(y) for y in (-1, 1): Giles' single-precision approximation refined by two Newton
/// steps on erf, accurate to double rounding for |y| < 1 - 1e-15.
inline double inverse_erf(double y) {
  double w = -std::log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941})
      p = c + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                     0.00943887047, 1.00167406, 2.83297682})
      p = c + p * w;
    x = p * y;
  }
  for (int it = 0; it < 2; ++it)  // Newton: d/dx erf(x) = 2/sqrt(pi) exp(-x^2)
    x -= (std::erf(x) - y) / (2.0 / std::sqrt(std::numbers::pi) * std::exp(-x * x));
  return x;
}

template <class T, std::size_t R>
void zeros(const Tensor<T, R>& t) {
  t.fill(T{});
}

/// Uniform in [lo, hi).
template <class T, std::size_t R>
void uniform(const Tensor<T, R>& t, double lo, double hi, Generator& gen) {
  const auto first = gen.advance(static_cast<std::uint64_t>(t.size()));
  T* p = t.data();
#pragma omp parallel for if (t.size() > (1 << 16))
  for (index_t i = 0; i < t.size(); ++i)
    p[i] = static_cast<T>(lo + (hi - lo) * Generator::to_unit(gen.word_at(first + static_cast<std::uint64_t>(i))));
}

/// Normal(mean, std^2).
template <class T, std::size_t R>
void normal(const Tensor<T, R>& t, double mean, double std, Generator& gen) {
  const auto first = gen.advance(2 * static_cast<std::uint64_t>(t.size()));
  T* p = t.data();
#pragma omp parallel for if (t.size() > (1 << 16))
  for (index_t i = 0; i < t.size(); ++i)
    p[i] = static_cast<T>(mean + std * gen.normal_at(first + 2 * static_cast<std::uint64_t>(i)));
}

/// Normal(mean, std^2) truncated to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_),
/// by inverse-CDF sampling: no rejection, so exactly one draw per element.
template <class T, std::size_t R>
void truncated_normal(const Tensor<T, R>& t, double mean, double std, double a, double b, Generator& gen) {
  const auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); };
  const double lo = cdf((a - mean) / std), hi = cdf((b - mean) / std);
  const auto first = gen.advance(static_cast<std::uint64_t>(t.size()));
  T* p = t.data();
#pragma omp parallel for if (t.size() > (1 << 16))
  for (index_t i = 0; i < t.size(); ++i) {
    const double u = lo + (hi - lo) * Generator::to_open_unit(gen.word_at(first + static_cast<std::uint64_t>(i)));
    double x = std::numbers::sqrt2 * inverse_erf(2.0 * u - 1.0);
    p[i] = static_cast<T>(std::clamp(mean + std * x, a, b));
  }
}

}  // namespace deepprompt::init
