// ops/arithmetic.hpp: add/sub/mul/div with broadcasting over leading axes, scale, add_scalar
// and the operators: values against plain loops (float), gradients (double), errors, no-grad.
#include <deepprompt/ops/arithmetic.hpp>

#include "testing.hpp"

namespace test_ops_arithmetic {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using dp_test::expect_ad;
using dp_test::max_abs_diff;
using dp_test::random_tensor;

namespace {

enum class Op { Add, Sub, Mul, Div };
constexpr Op kOps[] = {Op::Add, Op::Sub, Op::Mul, Op::Div};

template <class T, std::size_t R, std::size_t S>
Var<T, R> run_op(Op op, const Var<T, R>& a, const Var<T, S>& b) {
  switch (op) {
    case Op::Add: return add(a, b);
    case Op::Sub: return sub(a, b);
    case Op::Mul: return mul(a, b);
    default: return div(a, b);
  }
}

double ref_op(Op op, double a, double b) {
  switch (op) {
    case Op::Add: return a + b;
    case Op::Sub: return a - b;
    case Op::Mul: return a * b;
    default: return a / b;
  }
}

// a: (rows, cols) flattened; b: (cols): y[r, c] = a[r, c] op b[c].
template <class T, std::size_t R, std::size_t S>
void check_values(Op op, const Shape<R>& as, const Shape<S>& bs, std::uint64_t seed) {
  CAPTURE(static_cast<int>(op));
  CAPTURE(shape_str(as));
  CAPTURE(shape_str(bs));
  auto a = random_tensor<T, R>(as, seed);
  auto b = random_tensor<T, S>(bs, seed + 1, 0.5, 2.0);  // away from 0 for div
  auto y = run_op(op, Var<T, R>(a), Var<T, S>(b));
  REQUIRE(y.shape() == as);
  const index_t cols = b.size(), rows = cols ? a.size() / cols : 0;
  Tensor<T, R> want(as);
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c)
      want.data()[r * cols + c] = static_cast<T>(ref_op(op, a.data()[r * cols + c], b.data()[c]));
  CHECK(max_abs_diff(y.value(), want) == 0.0);  // one IEEE operation per element: exact
}

}  // namespace

TEST_CASE("add/sub/mul/div: values, same shape and broadcast over 1, 2 and 3 leading axes (float)") {
  for (Op op : kOps) {
    check_values<float>(op, Shape<1>{7}, Shape<1>{7}, 1);
    check_values<float>(op, Shape<3>{2, 3, 4}, Shape<3>{2, 3, 4}, 2);
    check_values<float>(op, Shape<2>{5, 19}, Shape<1>{19}, 3);          // (N, C) + (C)
    check_values<float>(op, Shape<3>{2, 3, 17}, Shape<1>{17}, 4);       // (B, T, C) + (C)
    check_values<float>(op, Shape<3>{2, 3, 5}, Shape<2>{3, 5}, 5);      // (B, T, C) * (T, C)
    check_values<float>(op, Shape<4>{2, 2, 3, 5}, Shape<2>{3, 5}, 6);   // 2 leading axes
    check_values<float>(op, Shape<2>{4, 3}, Shape<0>{}, 7);             // a scalar Var
    check_values<float>(op, Shape<2>{0, 3}, Shape<1>{3}, 8);            // no rows
    check_values<float>(op, Shape<1>{70001}, Shape<1>{70001}, 9);       // threaded, same shape
    check_values<float>(op, Shape<3>{8, 16, 300}, Shape<1>{300}, 10);   // threaded rows
    check_values<double>(op, Shape<3>{2, 3, 9}, Shape<2>{3, 9}, 11);
  }
}

TEST_CASE("add/sub/mul/div: gradients, same shape and broadcast over 1 and 2 leading axes (double)") {
  auto a2 = random_tensor<double, 2>({4, 5}, 12);
  auto a3 = random_tensor<double, 3>({2, 3, 4}, 13);
  auto b1 = random_tensor<double, 1>({5}, 14, 0.5, 2.0);
  auto b1s = random_tensor<double, 1>({4}, 15, 0.5, 2.0);
  auto b2 = random_tensor<double, 2>({3, 4}, 16, 0.5, 2.0);
  auto b3 = random_tensor<double, 3>({2, 3, 4}, 17, 0.5, 2.0);
  auto b0 = Tensor<double, 0>::full({}, 1.5);
  for (Op op : kOps) {
    CAPTURE(static_cast<int>(op));
    expect_ad([op](auto a, auto b) { return run_op(op, a, b); }, a3, b3);   // same shape
    expect_ad([op](auto a, auto b) { return run_op(op, a, b); }, a2, b1);   // 1 leading axis
    expect_ad([op](auto a, auto b) { return run_op(op, a, b); }, a3, b1s);  // 2 leading axes
    expect_ad([op](auto a, auto b) { return run_op(op, a, b); }, a3, b2);   // 1 leading axis, rank 2 b
    expect_ad([op](auto a, auto b) { return run_op(op, a, b); }, a2, b0);   // a scalar Var
  }
}

TEST_CASE("add/sub/mul/div: the same Var on both sides (x + x, x - x, x * x, x / x)") {
  auto x = random_tensor<double, 2>({3, 4}, 18, 0.5, 2.0);
  for (Op op : kOps) {
    CAPTURE(static_cast<int>(op));
    expect_ad([op](auto v) { return run_op(op, v, v); }, x);
  }
  // the derivative of x - x and x / x is exactly zero
  Parameter<double, 2> p("p", x.clone());
  p.zero_grad();
  sub(p.var(), p.var()).backward(Tensor<double, 2>::full({3, 4}, 1.0));
  for (double g : p.grad().span()) CHECK(g == 0.0);
}

TEST_CASE("add/sub/mul/div: one constant operand") {
  auto a = random_tensor<double, 3>({2, 3, 4}, 19);
  auto b = random_tensor<double, 1>({4}, 20, 0.5, 2.0);
  for (Op op : kOps) {
    CAPTURE(static_cast<int>(op));
    expect_ad([&, op](auto x) { return run_op(op, x, Var<double, 1>(b)); }, a);
    expect_ad([&, op](auto w) { return run_op(op, Var<double, 3>(a), w); }, b);
  }
}

TEST_CASE("add/sub/mul/div: broadcast gradients at threaded sizes match plain loops (float)") {
  const index_t rows = 256, cols = 300;  // 76800 elements: threaded column reductions
  Parameter<float, 2> a("a", random_tensor<float, 2>({rows, cols}, 21));
  Parameter<float, 1> b("b", random_tensor<float, 1>({cols}, 22, 0.5, 2.0));
  auto dy = random_tensor<float, 2>({rows, cols}, 23);
  for (Op op : kOps) {
    CAPTURE(static_cast<int>(op));
    a.zero_grad();
    b.zero_grad();
    run_op(op, a.var(), b.var()).backward(dy);
    Tensor<double, 2> da({rows, cols});
    Tensor<double, 1> db = Tensor<double, 1>::zeros({cols});
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) {
        const double g = dy(r, c), x = a.value()(r, c), w = b.value()(c);
        const double ga = op == Op::Mul ? g * w : op == Op::Div ? g / w : g;
        const double gb = op == Op::Add ? g : op == Op::Sub ? -g : op == Op::Mul ? g * x : -g * x / (w * w);
        da(r, c) = ga;
        db(c) += gb;
      }
    CHECK(max_abs_diff(a.grad(), da) < 1e-6);
    CHECK(max_abs_diff(b.grad(), db) < 1e-3);
  }
}

TEST_CASE("scale, add_scalar and the operators") {
  auto x = random_tensor<double, 3>({2, 3, 4}, 24);
  expect_ad([](auto v) { return scale(v, 2.5); }, x);
  expect_ad([](auto v) { return add_scalar(v, -1.25); }, x);
  expect_ad([](auto v) { return v * 3.0 + v / 2.0 - 1.0; }, x);
  expect_ad([](auto v) { return -(2.0 * v) + 0.5; }, x);

  auto b = random_tensor<double, 1>({4}, 25, 0.5, 2.0);
  expect_ad([](auto v, auto w) { return (v + w) * w - v / w; }, x, b);

  // operators give the functions' values (float)
  Var<float, 2> a(random_tensor<float, 2>({3, 5}, 26));
  Var<float, 1> c(random_tensor<float, 1>({5}, 27, 0.5, 2.0));
  CHECK(max_abs_diff((a + c).value(), add(a, c).value()) == 0.0);
  CHECK(max_abs_diff((a - c).value(), sub(a, c).value()) == 0.0);
  CHECK(max_abs_diff((a * c).value(), mul(a, c).value()) == 0.0);
  CHECK(max_abs_diff((a / c).value(), div(a, c).value()) == 0.0);
  CHECK(max_abs_diff((a * 2.0f).value(), scale(a, 2.0f).value()) == 0.0);
  CHECK(max_abs_diff((2.0f * a).value(), scale(a, 2.0f).value()) == 0.0);
  CHECK(max_abs_diff((a + 1.5f).value(), add_scalar(a, 1.5f).value()) == 0.0);
  CHECK(max_abs_diff((a - 1.5f).value(), add_scalar(a, -1.5f).value()) == 0.0);
  const auto s = scale(a, 0.5f).value(), t = add_scalar(a, 3.0f).value();
  for (index_t i = 0; i < a.size(); ++i) {
    CHECK(s.data()[i] == 0.5f * a.value().data()[i]);
    CHECK(t.data()[i] == a.value().data()[i] + 3.0f);
    CHECK((-a).value().data()[i] == -a.value().data()[i]);
  }
}

TEST_CASE("add/sub/mul/div: a ShapeError names the op and both shapes") {
  Var<float, 3> a(Tensor<float, 3>::zeros({2, 3, 4}));
  Var<float, 1> b(Tensor<float, 1>::zeros({3}));
  Var<float, 2> c(Tensor<float, 2>::zeros({2, 4}));
  Var<float, 3> d(Tensor<float, 3>::zeros({2, 3, 5}));
  CHECK_THROWS_WITH_AS(
      add(a, b), doctest::Contains("add: b's shape must equal the trailing axes of a's shape; got (2, 3, 4) and (3)"),
      ShapeError);
  CHECK_THROWS_WITH_AS(sub(a, c), doctest::Contains("sub: b's shape must equal the trailing axes"), ShapeError);
  CHECK_THROWS_WITH_AS(mul(a, d), doctest::Contains("mul: shapes differ; got (2, 3, 4) and (2, 3, 5)"), ShapeError);
  CHECK_THROWS_WITH_AS(div(a, b), doctest::Contains("div:"), ShapeError);
  CHECK_THROWS_WITH_AS(a + b, doctest::Contains("add:"), ShapeError);
  CHECK_THROWS_WITH_AS(a * c, doctest::Contains("(2, 3, 4) and (2, 4)"), ShapeError);
}

TEST_CASE("arithmetic: no tape records under NoGradGuard, and none for constants") {
  Parameter<double, 2> a("a", random_tensor<double, 2>({2, 3}, 28));
  Parameter<double, 1> b("b", random_tensor<double, 1>({3}, 29, 0.5, 2.0));
  {
    NoGradGuard guard;
    for (Op op : kOps) CHECK(!run_op(op, a.var(), b.var()).requires_grad());
    CHECK(!scale(a.var(), 2.0).requires_grad());
    CHECK(!add_scalar(a.var(), 2.0).requires_grad());
    CHECK(!(a.var() * 2.0 + b.var()).requires_grad());
    CHECK(tape().size() == 0);
  }
  Var<double, 2> k(a.value());
  CHECK(!mul(k, Var<double, 1>(b.value())).requires_grad());
  CHECK(tape().size() == 0);
  CHECK(mul(k, b.var()).requires_grad());
  CHECK(tape().size() == 1);
  tape().release();
}

}  // namespace test_ops_arithmetic
