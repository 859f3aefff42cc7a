#pragma once
// Helpers shared by the op tests: seeded random tensors and expect_ad, which runs the generic
// finite-difference gradient check and reports through doctest.
#include <doctest/doctest.h>

#include "deepprompt/autodiff/grad_check.hpp"
#include "deepprompt/core/init.hpp"

namespace dp_test {

/// Uniform values in [lo, hi), reproducible from `seed`.
template <class T, std::size_t R>
deepprompt::Tensor<T, R> random_tensor(const deepprompt::Shape<R>& shape, std::uint64_t seed, double lo = -1.0,
                                       double hi = 1.0) {
  deepprompt::Tensor<T, R> t(shape);
  deepprompt::Generator gen(seed);
  deepprompt::init::uniform(t, lo, hi, gen);
  return t;
}

/// Checks the reverse-mode gradient of f (a function of Var<double, R>...) against central
/// finite differences at `inputs`.
template <class F, std::size_t... R>
void expect_ad(F&& f, const deepprompt::Tensor<double, R>&... inputs) {
  auto r = deepprompt::check_gradients(std::forward<F>(f), {}, inputs...);
  CHECK_MESSAGE(r.ok, r.report);
  CHECK(r.checked > 0);
}
template <class F, std::size_t... R>
void expect_ad(F&& f, const deepprompt::GradCheckOptions& opt, const deepprompt::Tensor<double, R>&... inputs) {
  auto r = deepprompt::check_gradients(std::forward<F>(f), opt, inputs...);
  CHECK_MESSAGE(r.ok, r.report);
  CHECK(r.checked > 0);
}

/// max |a - b| over all elements; requires: same shape.
template <class A, class B, std::size_t R>
double max_abs_diff(const deepprompt::Tensor<A, R>& a, const deepprompt::Tensor<B, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (deepprompt::index_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
  return m;
}

/// max |a - b| / max(1e-3, max |b|): the error relative to the reference's scale (parity
/// checks against float PyTorch fixtures). requires: same shape.
template <class A, std::size_t R>
double scaled_error(const deepprompt::Tensor<A, R>& a, const deepprompt::Tensor<float, R>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0, s = 1e-3;
  for (deepprompt::index_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
    s = std::max(s, std::abs(double(b.data()[i])));
  }
  return m / s;
}

}  // namespace dp_test
