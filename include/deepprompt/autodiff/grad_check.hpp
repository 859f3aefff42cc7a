#pragma once
// check_gradients: compares the reverse-mode gradient of any function of Vars with central
// finite differences (the expect_ad of Stan Math). Use it in double precision.
//
//   auto r = check_gradients([](auto x, auto w) { return ops::matmul(x, w); }, {}, x0, w0);
//   CHECK_MESSAGE(r.ok, r.report);
//
// The function's output may have any shape: it is reduced to the scalar L = sum(c * f(x)) with
// fixed random weights c, and dL/dx is checked element by element. The parameters' gradient
// buffers start at a non-zero value, so an op that overwrites instead of accumulating fails.
// The function must be deterministic (dropout: fix its seed).
#include <cmath>
#include <sstream>
#include <string>
#include <tuple>

#include "../core/rng.hpp"
#include "parameter.hpp"

namespace deepprompt {

struct GradCheckOptions {
  double step = 1e-6;  // finite-difference step
  double atol = 1e-6;
  double rtol = 1e-5;
  std::uint64_t seed = 12345;  // of the output weights c
};

struct GradCheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::size_t checked = 0;  // gradient entries compared
  std::string report;       // the first mismatches, "input i, element j: autodiff a vs numeric n"
};

namespace detail {
template <std::size_t R>
double weighted_sum(const Tensor<double, R>& y, const Tensor<double, R>& c) {
  double s = 0.0;
  for (index_t i = 0; i < y.size(); ++i) s += y.data()[i] * c.data()[i];
  return s;
}
}  // namespace detail

template <class F, std::size_t... Ranks>
GradCheckResult check_gradients(F&& f, const GradCheckOptions& opt, const Tensor<double, Ranks>&... inputs) {
  constexpr double kPrefill = 0.25;
  GradCheckResult res;
  std::ostringstream report;
  int mismatches = 0;

  auto params = std::make_tuple(Parameter<double, Ranks>("input", inputs.clone())...);
  auto eval = [&] {
    return std::apply([&](auto&... p) { return f(p.var()...); }, params);
  };

  // the output and its weights
  auto out = eval();
  using Out = std::decay_t<decltype(out.value())>;
  Out c(out.shape());
  Generator gen(opt.seed);
  for (index_t i = 0; i < c.size(); ++i) c.data()[i] = 2.0 * gen.uniform() - 1.0;
  const Out y0 = out.value().clone();

  std::apply([&](auto&... p) { (p.grad().fill(kPrefill), ...); }, params);
  if (!out.requires_grad()) {
    res.ok = false;
    res.report = "the function's output does not require a gradient";
    tape().release();
    return res;
  }
  out.backward(c);

  {  // the same forward pass without recording gives the same values
    NoGradGuard no_grad;
    auto again = eval().value();
    for (index_t i = 0; i < y0.size(); ++i)
      if (!(again.data()[i] == y0.data()[i]) && !(std::isnan(again.data()[i]) && std::isnan(y0.data()[i]))) {
        res.ok = false;
        report << "output element " << i << " differs without recording: " << again.data()[i] << " vs "
               << y0.data()[i] << "\n";
        break;
      }
  }

  int input_index = 0;
  auto check_one = [&](auto& p) {
    NoGradGuard no_grad;
    const auto& x = p.value();
    for (index_t j = 0; j < x.size(); ++j) {
      const double saved = x.data()[j];
      const double h = opt.step * std::max(1.0, std::abs(saved));
      x.data()[j] = saved + h;
      const double up = detail::weighted_sum(eval().value(), c);
      x.data()[j] = saved - h;
      const double down = detail::weighted_sum(eval().value(), c);
      x.data()[j] = saved;
      const double numeric = (up - down) / (2.0 * h);
      const double analytic = p.grad().data()[j] - kPrefill;
      const double err = std::abs(analytic - numeric);
      res.max_abs_error = std::max(res.max_abs_error, err);
      ++res.checked;
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        res.ok = false;
        if (mismatches++ < 8)
          report << "input " << input_index << ", element " << j << ": autodiff " << analytic << " vs numeric "
                 << numeric << "\n";
      }
    }
    ++input_index;
  };
  std::apply([&](auto&... p) { (check_one(p), ...); }, params);
  if (mismatches > 8) report << "... " << mismatches << " mismatches in all\n";
  res.report = report.str();
  return res;
}

}  // namespace deepprompt
