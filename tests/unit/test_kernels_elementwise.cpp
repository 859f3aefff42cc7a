// Elementwise CPU kernels against scalar long-double references, and their backward passes
// against central finite differences of the forward kernels in double precision. The sizes
// exercise the padded tail only (1, 7), SIMD body + tail (33, 1000) and the OpenMP path (70000).
#include <deepprompt/backend/cpu/elementwise.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <iomanip>
#include <limits>
#include <random>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif
#include <vector>

namespace test_kernels_elementwise {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace {

namespace cpu = deepprompt::cpu;
using cpu::index_t;
using LD = long double;

constexpr index_t kSizes[] = {1, 7, 33, 1000, 70000};

template <class T>
std::vector<T> random_vector(index_t n, double lo, double hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& e : v) e = static_cast<T>(dist(gen));
  return v;
}

template <class T>
constexpr double eps = std::numeric_limits<T>::epsilon();

// The caller of check_close, for its message (clang 14 with libstdc++ lacks source_location).
#if defined(__cpp_lib_source_location)
using Where = std::source_location;
#else
struct Where {
  static Where current() { return {}; }
  unsigned line() const { return 0; }
};
#endif

// Every element must satisfy |got - want| <= atol + rtol |want| (so NaN/inf where `want` is
// finite fails); infinite `want` must be matched exactly. Reports the first offender.
template <class T, class R>
void check_close(const std::vector<T>& got, const std::vector<R>& want, double rtol, double atol,
                 Where at = Where::current()) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, worst = 0;
  LD worst_ratio = 0;  // error / tolerance
  for (std::size_t i = 0; i < got.size(); ++i) {
    const LD g = got[i], w = want[i];
    const LD err = std::isinf(w) ? (g == w ? 0 : INFINITY) : std::fabs(g - w);
    const LD ratio = err == 0 ? 0 : err / (atol + rtol * std::fabs(w));
    if (ratio <= 1) continue;
    if (bad++ == 0 || ratio > worst_ratio || std::isnan(ratio)) worst_ratio = ratio, worst = i;
  }
  INFO("line " << at.line() << ": " << bad << " of " << got.size() << " bad; worst at " << worst << ": got "
       << std::setprecision(std::numeric_limits<T>::max_digits10) << double(got[worst])
       << ", want " << double(want[worst]) << ", error/tolerance " << double(worst_ratio));
  CHECK(bad == 0);
}

template <class T, class F>
std::vector<LD> reference(const std::vector<T>& x, F f) {
  std::vector<LD> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = f(LD(x[i]));
  return r;
}

LD sigmoid_ref(LD x) { return 1 / (1 + std::exp(-x)); }
const LD sqrt_2_over_pi = std::sqrt(2.0L / std::acos(-1.0L));

LD gelu_erf_ref(LD x) { return 0.5L * x * std::erfc(-x / std::sqrt(2.0L)); }
LD gelu_erf_grad_ref(LD x) {
  return 0.5L * std::erfc(-x / std::sqrt(2.0L)) + x * std::exp(-0.5L * x * x) * sqrt_2_over_pi / 2;
}
// 0.5 (1 + tanh(u)) == sigmoid(2u): the form without cancellation for x << 0.
LD gelu_tanh_gate_ref(LD x) { return sigmoid_ref(2 * sqrt_2_over_pi * (x + 0.044715L * x * x * x)); }
LD gelu_tanh_ref(LD x) { return x * gelu_tanh_gate_ref(x); }
LD gelu_tanh_grad_ref(LD x) {
  const LD s = gelu_tanh_gate_ref(x);
  return s + 2 * x * s * (1 - s) * sqrt_2_over_pi * (1 + 3 * 0.044715L * x * x);
}

// Relative tolerance of the erf-based GELU: xsimd 8.1's double erfc is only good to about
// 2e4 eps (4e-12) for arguments in [2.2, 6], i.e. gelu_erf(x) for x < -3.1.
template <class T>
constexpr double gelu_erf_rtol = sizeof(T) == 4 ? 32 * eps<T> : 1e-11;

using Kernel = void (*)(const double*, double*, index_t);
using Backward = void (*)(const double*, const double*, double*, index_t);

// Checks an elementwise backward kernel in double against central differences of `forward`.
// Each output depends on its own input only, so all elements are perturbed at once.
// `saves_output`: the backward takes the forward's output (exp, tanh, sigmoid), not its input.
void check_backward_fd(Kernel forward, Backward backward, bool saves_output,
                       const std::vector<double>& x) {
  const index_t n = static_cast<index_t>(x.size());
  std::vector<double> xp(x), xm(x), yp(x.size()), ym(x.size()), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double h = 1e-6 * std::max(1.0, std::fabs(x[i]));
    xp[i] = x[i] + h;
    xm[i] = x[i] - h;
  }
  forward(xp.data(), yp.data(), n);
  forward(xm.data(), ym.data(), n);
  forward(x.data(), y.data(), n);
  const auto dy = random_vector<double>(n, -1, 1, 11);
  const auto dx0 = random_vector<double>(n, -1, 1, 12);  // backward must add to this
  std::vector<double> dx(dx0), want(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    want[i] = dx0[i] + dy[i] * (yp[i] - ym[i]) / (xp[i] - xm[i]);
  backward(saves_output ? y.data() : x.data(), dy.data(), dx.data(), n);
  check_close(dx, want, 1e-6, 1e-6);
  backward(x.data(), dy.data(), nullptr, n);  // no gradient wanted: a no-op, no crash
}

}  // namespace

TEST_CASE_TEMPLATE("binary and scalar arithmetic match a scalar loop", T, float, double) {
  for (const index_t n : kSizes) {
    CAPTURE(n);
    const auto a = random_vector<T>(n, -2, 2, 1);
    auto b = random_vector<T>(n, 0.5, 2, 2);
    std::vector<T> y(a.size());
    const auto elementwise = [&](auto f) {
      std::vector<LD> r(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) r[i] = f(LD(a[i]), LD(b[i]));
      return r;
    };
    cpu::add(a.data(), b.data(), y.data(), n);
    check_close(y, elementwise(std::plus<LD>{}), eps<T>, 0);
    cpu::sub(a.data(), b.data(), y.data(), n);
    check_close(y, elementwise(std::minus<LD>{}), eps<T>, 0);
    cpu::mul(a.data(), b.data(), y.data(), n);
    check_close(y, elementwise(std::multiplies<LD>{}), eps<T>, 0);
    cpu::div(a.data(), b.data(), y.data(), n);
    check_close(y, elementwise(std::divides<LD>{}), eps<T>, 0);
    cpu::scale(a.data(), T(0.3), y.data(), n);
    check_close(y, reference(a, [](LD v) { return v * LD(T(0.3)); }), eps<T>, 0);
    cpu::add_scalar(a.data(), T(1.5), y.data(), n);
    check_close(y, reference(a, [](LD v) { return v + 1.5L; }), eps<T>, 0);
    cpu::fill(y.data(), T(-3.25), n);
    check_close(y, std::vector<LD>(a.size(), -3.25L), 0, 0);

    const auto want_axpy = elementwise([](LD u, LD v) { return LD(T(0.7)) * u + v; });
    cpu::axpy(T(0.7), a.data(), b.data(), n);  // b += 0.7 a
    check_close(b, want_axpy, eps<T>, 4 * eps<T>);

    auto c = a;  // the output may alias an input
    cpu::mul(c.data(), c.data(), c.data(), n);
    check_close(c, reference(a, [](LD v) { return v * v; }), eps<T>, 0);
  }
}

TEST_CASE_TEMPLATE("add_rows broadcasts the bias and sum_rows_accumulate reduces it", T, float,
                   double) {
  const index_t shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {40, 1000}, {100, 700}};
  for (const auto& s : shapes) {
    const index_t rows = s[0], cols = s[1];
    CAPTURE(rows);
    CAPTURE(cols);
    const auto x = random_vector<T>(rows * cols, -1, 1, 3);
    const auto bias = random_vector<T>(cols, -1, 1, 4);
    std::vector<T> y(x.size());
    cpu::add_rows(x.data(), bias.data(), y.data(), rows, cols);
    std::vector<LD> want(x.size());
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) want[r * cols + c] = LD(x[r * cols + c]) + bias[c];
    check_close(y, want, eps<T>, 0);

    auto dbias = random_vector<T>(cols, -1, 1, 5);  // accumulated into
    std::vector<LD> want_db(dbias.begin(), dbias.end());
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) want_db[c] += x[r * cols + c];
    cpu::sum_rows_accumulate(x.data(), dbias.data(), rows, cols);
    check_close(dbias, want_db, 0, 2 * double(rows) * eps<T>);
  }
}

TEST_CASE_TEMPLATE("activations match a scalar long-double loop", T, float, double) {
  for (const index_t n : kSizes) {
    CAPTURE(n);
    const auto x = random_vector<T>(n, -6, 6, 6);
    std::vector<T> y(x.size());
    cpu::exp(x.data(), y.data(), n);
    check_close(y, reference(x, [](LD v) { return std::exp(v); }), 4 * eps<T>, 0);
    cpu::tanh(x.data(), y.data(), n);
    check_close(y, reference(x, [](LD v) { return std::tanh(v); }), 4 * eps<T>, 0);
    cpu::sigmoid(x.data(), y.data(), n);
    check_close(y, reference(x, sigmoid_ref), 4 * eps<T>, 0);
    cpu::relu(x.data(), y.data(), n);
    check_close(y, reference(x, [](LD v) { return v > 0 ? v : 0; }), 0, 0);
    cpu::gelu_erf(x.data(), y.data(), n);
    check_close(y, reference(x, gelu_erf_ref), gelu_erf_rtol<T>, 0);
    cpu::gelu_tanh(x.data(), y.data(), n);
    check_close(y, reference(x, gelu_tanh_ref), 32 * eps<T>, 0);
  }
}

TEST_CASE_TEMPLATE("activations stay finite and saturate for large inputs", T, float, double) {
  constexpr T inf = std::numeric_limits<T>::infinity();
  std::vector<T> x = {T(-1e30), T(-1e4), T(-200), T(-104), T(-100), T(-88.5), T(-87.5), T(-50),
                      T(-3), T(-1e-30), T(-0.0), T(0), T(1e-30), T(50), T(88), T(88.5), T(88.7),
                      T(89), T(200), T(1e4), T(1e30)};
  if constexpr (sizeof(T) == 8)
    for (const double v : {-745.0, -720.0, -708.5, 708.5, 709.5, 709.75, 710.0}) x.push_back(v);
  x.push_back(-inf);
  x.push_back(inf);
  const index_t n = static_cast<index_t>(x.size());
  // References rounded to T: overflow in T is inf, and must then be matched exactly.
  const auto rounded = [&](auto f) {
    std::vector<T> r(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) r[i] = static_cast<T>(f(LD(x[i])));
    return r;
  };
  const double tiny = std::numeric_limits<T>::min();  // results below it may flush to 0
  std::vector<T> y(x.size());

  cpu::exp(x.data(), y.data(), n);
  check_close(y, rounded([](LD v) { return std::exp(v); }), 4 * eps<T>, tiny);
  cpu::tanh(x.data(), y.data(), n);
  check_close(y, rounded([](LD v) { return std::tanh(v); }), 4 * eps<T>, tiny);
  CHECK(std::signbit(y[10]));  // tanh(-0) == -0
  cpu::sigmoid(x.data(), y.data(), n);
  check_close(y, rounded(sigmoid_ref), 4 * eps<T>, tiny);

  // GELU and the backward passes at the finite points (gelu(-inf) is NaN, as in PyTorch).
  x.resize(x.size() - 2);
  const index_t m = static_cast<index_t>(x.size());
  y.resize(x.size());
  cpu::gelu_erf(x.data(), y.data(), m);
  check_close(y, rounded(gelu_erf_ref), gelu_erf_rtol<T>, tiny);
  CHECK(y[11] == T(0));  // gelu(0) == 0
  cpu::gelu_tanh(x.data(), y.data(), m);
  check_close(y, rounded(gelu_tanh_ref), 32 * eps<T>, tiny);
  CHECK(y[11] == T(0));
  const std::vector<T> dy(x.size(), T(1));
  for (auto* backward : {&cpu::gelu_erf_backward<T>, &cpu::gelu_tanh_backward<T>,
                         &cpu::relu_backward<T>}) {
    std::vector<T> dx(x.size(), T(0));
    backward(x.data(), dy.data(), dx.data(), m);
    for (std::size_t i = 0; i < x.size(); ++i) {
      CAPTURE(x[i]);
      REQUIRE(std::isfinite(dx[i]));
      if (std::fabs(x[i]) >= 50) CHECK(dx[i] == doctest::Approx(x[i] > 0 ? 1 : 0));
    }
  }
}

TEST_CASE_TEMPLATE("activation backward passes match the analytic derivative", T, float, double) {
  for (const index_t n : kSizes) {
    CAPTURE(n);
    const auto x = random_vector<T>(n, -6, 6, 7);
    const auto dy = random_vector<T>(n, -1, 1, 8);
    const auto dx0 = random_vector<T>(n, -1, 1, 9);
    std::vector<T> y(x.size()), dx(x.size());
    // want = dx0 + dy * f'(v), with v the saved input or output.
    const auto want = [&](const std::vector<T>& v, auto fprime) {
      std::vector<LD> r(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) r[i] = LD(dx0[i]) + LD(dy[i]) * fprime(LD(v[i]));
      return r;
    };
    // The derivatives sum terms of size ~1 that partly cancel (gelu' for x in [-3, -1]).
    const double tol = 64 * eps<T>;

    cpu::exp(x.data(), y.data(), n);
    dx = dx0;
    cpu::exp_backward(y.data(), dy.data(), dx.data(), n);
    check_close(dx, want(y, [](LD v) { return v; }), tol, tol);
    cpu::tanh(x.data(), y.data(), n);
    dx = dx0;
    cpu::tanh_backward(y.data(), dy.data(), dx.data(), n);
    check_close(dx, want(y, [](LD v) { return 1 - v * v; }), tol, tol);
    cpu::sigmoid(x.data(), y.data(), n);
    dx = dx0;
    cpu::sigmoid_backward(y.data(), dy.data(), dx.data(), n);
    check_close(dx, want(y, [](LD v) { return v * (1 - v); }), tol, tol);
    dx = dx0;
    cpu::relu_backward(x.data(), dy.data(), dx.data(), n);
    check_close(dx, want(x, [](LD v) { return v > 0 ? 1 : 0; }), eps<T>, 0);
    dx = dx0;
    cpu::gelu_erf_backward(x.data(), dy.data(), dx.data(), n);
    check_close(dx, want(x, gelu_erf_grad_ref), std::max(tol, gelu_erf_rtol<T>), tol);
    dx = dx0;
    cpu::gelu_tanh_backward(x.data(), dy.data(), dx.data(), n);
    check_close(dx, want(x, gelu_tanh_grad_ref), tol, tol);
  }
}

TEST_CASE("activation backward passes match central differences (double)") {
  for (const index_t n : kSizes) {
    CAPTURE(n);
    auto x = random_vector<double>(n, -4, 4, 10);
    for (auto& v : x)
      if (std::fabs(v) < 1e-3) v += 0.01;  // keep relu's kink out of the stencil
    x[0] = 0.0;                           // gelu at 0 (relu is checked at 0 elsewhere)
    SUBCASE("exp") { check_backward_fd(cpu::exp<double>, cpu::exp_backward<double>, true, x); }
    SUBCASE("tanh") { check_backward_fd(cpu::tanh<double>, cpu::tanh_backward<double>, true, x); }
    SUBCASE("sigmoid") {
      check_backward_fd(cpu::sigmoid<double>, cpu::sigmoid_backward<double>, true, x);
    }
    SUBCASE("gelu_erf") {
      check_backward_fd(cpu::gelu_erf<double>, cpu::gelu_erf_backward<double>, false, x);
    }
    SUBCASE("gelu_tanh") {
      check_backward_fd(cpu::gelu_tanh<double>, cpu::gelu_tanh_backward<double>, false, x);
    }
    SUBCASE("relu") {
      x[0] = 0.5;
      check_backward_fd(cpu::relu<double>, cpu::relu_backward<double>, false, x);
    }
  }
}

}  // namespace test_kernels_elementwise
