// ops/reduce.hpp: sum and mean of everything or along one axis: values against loops in
// long double, the accuracy of float sums, gradients (double), errors, no-grad.
#include <deepprompt/ops/reduce.hpp>

#include <cmath>

#include "testing.hpp"

namespace test_ops_reduce {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using dp_test::expect_ad;
using dp_test::max_abs_diff;
using dp_test::random_tensor;

namespace {

// y[o, i] = sum_k x[o, k, i] (or the mean) in long double.
template <class T, std::size_t R>
Tensor<double, R - 1> ref_reduce(const Tensor<T, R>& x, std::size_t axis, bool mean) {
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (std::size_t i = axis + 1; i < R; ++i) inner *= x.shape()[i];
  const index_t n = x.shape()[axis];
  Shape<R - 1> ys{};
  for (std::size_t i = 0, j = 0; i < R; ++i)
    if (i != axis) ys[j++] = x.shape()[i];
  Tensor<double, R - 1> y(ys);
  for (index_t o = 0; o < outer; ++o)
    for (index_t i = 0; i < inner; ++i) {
      long double s = 0;
      for (index_t k = 0; k < n; ++k) s += x.data()[(o * n + k) * inner + i];
      y.data()[o * inner + i] = static_cast<double>(mean ? s / n : s);
    }
  return y;
}

}  // namespace

TEST_CASE("sum/mean of all elements: values (float, double)") {
  for (index_t n : {1, 7, 128, 129, 1000, 100003}) {
    CAPTURE(n);
    auto x = random_tensor<float, 1>({n}, 1);
    long double s = 0;
    for (float v : x.span()) s += v;
    CHECK(sum(Var<float, 1>(x)).value().item() == doctest::Approx(double(s)).epsilon(1e-6));
    CHECK(mean(Var<float, 1>(x)).value().item() == doctest::Approx(double(s / n)).epsilon(1e-6));
  }
  auto x3 = random_tensor<double, 3>({3, 4, 5}, 2);
  long double s = 0;
  for (double v : x3.span()) s += v;
  CHECK(std::abs(sum(Var<double, 3>(x3)).value().item() - double(s)) < 1e-13);
  CHECK(std::abs(mean(Var<double, 3>(x3)).value().item() - double(s / 60)) < 1e-15);
  auto s0 = sum(Var<double, 0>(Tensor<double, 0>::full({}, 2.5)));
  CHECK(s0.value().item() == 2.5);
  CHECK(sum(Var<float, 2>(Tensor<float, 2>::zeros({0, 3}))).value().item() == 0.0f);
  CHECK(std::isnan(mean(Var<float, 2>(Tensor<float, 2>::zeros({0, 3}))).value().item()));
}

TEST_CASE("sum of float is stable: ten million times 0.1f") {
  const index_t n = 10'000'000;
  auto x = Tensor<float, 1>::full({n}, 0.1f);
  const double exact = double(0.1f) * double(n);
  const float got = sum(Var<float, 1>(x)).value().item();
  // a naive float loop is off by about 10% here; a stable sum is within one rounding
  CHECK(std::abs(got - exact) / exact < 1e-7);
  CHECK(std::abs(mean(Var<float, 1>(x)).value().item() - 0.1f) <= 1e-8f);
}

TEST_CASE("sum/mean along an axis: the last, a middle and the first (float)") {
  auto x = random_tensor<float, 3>({3, 5, 7}, 3);
  for (int axis : {2, -1, 1, 0}) {
    CAPTURE(axis);
    const auto ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
    auto s = sum(Var<float, 3>(x), axis);
    auto m = mean(Var<float, 3>(x), axis);
    CHECK(max_abs_diff(s.value(), ref_reduce(x, ax, false)) < 1e-6);
    CHECK(max_abs_diff(m.value(), ref_reduce(x, ax, true)) < 1e-7);
  }
  // rank 1 -> rank 0; long rows (pairwise blocks); wide strided rows (several column strips);
  // threaded sizes
  auto v = random_tensor<float, 1>({300}, 4);
  CHECK(max_abs_diff(sum(Var<float, 1>(v), 0).value(), ref_reduce(v, 0, false)) < 1e-5);
  auto rows = random_tensor<float, 2>({50, 1000}, 5);
  CHECK(max_abs_diff(sum(Var<float, 2>(rows), -1).value(), ref_reduce(rows, 1, false)) < 1e-5);
  auto wide = random_tensor<float, 3>({3, 100, 150}, 6);
  CHECK(max_abs_diff(sum(Var<float, 3>(wide), 1).value(), ref_reduce(wide, 1, false)) < 1e-5);
  CHECK(max_abs_diff(mean(Var<float, 3>(wide), 0).value(), ref_reduce(wide, 0, true)) < 1e-6);
  auto big = random_tensor<float, 3>({64, 128, 70}, 7);
  CHECK(max_abs_diff(mean(Var<float, 3>(big), -1).value(), ref_reduce(big, 2, true)) < 1e-6);
  CHECK(max_abs_diff(sum(Var<float, 3>(big), 1).value(), ref_reduce(big, 1, false)) < 1e-5);
  // an empty axis sums to zeros
  auto e = sum(Var<float, 2>(Tensor<float, 2>::zeros({3, 0})), 1);
  CHECK(e.shape() == Shape<1>{3});
  for (float y : e.value().span()) CHECK(y == 0.0f);
}

TEST_CASE("sum/mean: gradients (double)") {
  auto x = random_tensor<double, 3>({2, 3, 4}, 8);
  expect_ad([](auto v) { return sum(v); }, x);
  expect_ad([](auto v) { return mean(v); }, x);
  for (int axis : {-1, 1, 0}) {
    CAPTURE(axis);
    expect_ad([axis](auto v) { return sum(v, axis); }, x);
    expect_ad([axis](auto v) { return mean(v, axis); }, x);
  }
  expect_ad([](auto v) { return mean(v, 0); }, random_tensor<double, 1>({5}, 9));
  expect_ad([](auto v) { return sum(sum(v, -1)); }, random_tensor<double, 2>({3, 70}, 10));
}

TEST_CASE("sum/mean: gradients at threaded sizes are the broadcast seed (float)") {
  Parameter<float, 3> p("p", random_tensor<float, 3>({64, 128, 70}, 11));
  for (int axis : {2, 1}) {
    CAPTURE(axis);
    p.zero_grad();
    const auto ax = static_cast<std::size_t>(axis);
    Shape<2> ys = axis == 2 ? Shape<2>{64, 128} : Shape<2>{64, 70};
    auto dy = random_tensor<float, 2>(ys, 12);
    mean(p.var(), axis).backward(dy);
    const float inv = 1.0f / float(p.shape()[ax]);
    double err = 0;
    for (index_t a = 0; a < 64; ++a)
      for (index_t b = 0; b < 128; ++b)
        for (index_t c = 0; c < 70; ++c) {
          const float g = axis == 2 ? dy(a, b) : dy(a, c);
          err = std::max(err, double(std::abs(p.grad()(a, b, c) - inv * g)));
        }
    CHECK(err < 1e-7);
  }
}

TEST_CASE("sum/mean: an axis out of range throws naming the op and the shape") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(sum(x, 3), doctest::Contains("sum: axis 3 out of range for shape (2, 3, 4)"), ShapeError);
  CHECK_THROWS_WITH_AS(mean(x, -4), doctest::Contains("mean: axis -4 out of range for shape (2, 3, 4)"), ShapeError);
}

TEST_CASE("sum/mean: no tape records under NoGradGuard") {
  Parameter<double, 2> p("p", random_tensor<double, 2>({2, 3}, 13));
  NoGradGuard guard;
  CHECK(!sum(p.var()).requires_grad());
  CHECK(!mean(p.var()).requires_grad());
  CHECK(!sum(p.var(), -1).requires_grad());
  CHECK(!mean(p.var(), 0).requires_grad());
  CHECK(tape().size() == 0);
}

}  // namespace test_ops_reduce
