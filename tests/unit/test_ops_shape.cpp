// ops/shape.hpp (reshape, permute, transpose) and ops/concat.hpp (concat, slice): values
// against index arithmetic (float), gradients (double), views vs copies, errors, no-grad.
#include <deepprompt/ops/concat.hpp>
#include <deepprompt/ops/shape.hpp>

#include <vector>

#include "testing.hpp"

namespace test_ops_shape {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using dp_test::expect_ad;
using dp_test::max_abs_diff;
using dp_test::random_tensor;

namespace {

// Row-major multi-index of flat position `flat` in `shape`.
template <std::size_t R>
Shape<R> unravel(index_t flat, const Shape<R>& shape) {
  Shape<R> idx{};
  for (std::size_t i = R; i-- > 0;) {
    idx[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return idx;
}
template <std::size_t R>
index_t ravel(const Shape<R>& idx, const Shape<R>& shape) {
  index_t off = 0;
  for (std::size_t i = 0; i < R; ++i) off = off * shape[i] + idx[i];
  return off;
}

// y[j] = x[i] with i[axes[k]] = j[k].
template <class T, std::size_t R>
Tensor<T, R> ref_permute(const Tensor<T, R>& x, const std::array<int, R>& axes) {
  Shape<R> ys{};
  for (std::size_t k = 0; k < R; ++k) ys[k] = x.shape()[axes[k]];
  Tensor<T, R> y(ys);
  for (index_t j = 0; j < y.size(); ++j) {
    const auto jy = unravel(j, ys);
    Shape<R> ix{};
    for (std::size_t k = 0; k < R; ++k) ix[axes[k]] = jy[k];
    y.data()[j] = x.data()[ravel(ix, x.shape())];
  }
  return y;
}

template <class T, std::size_t R>
void check_permute(const Shape<R>& shape, const std::array<int, R>& axes, std::uint64_t seed) {
  CAPTURE(shape_str(shape));
  CAPTURE(shape_str(axes));
  auto x = random_tensor<T, R>(shape, seed);
  auto y = permute(Var<T, R>(x), axes);
  auto want = ref_permute(x, axes);
  CHECK(y.value().data() != x.data());
  CHECK(max_abs_diff(y.value(), want) == 0.0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// reshape

TEST_CASE("reshape: a view with the new shape; the gradient is reshaped back") {
  auto x = random_tensor<float, 3>({2, 3, 4}, 1);
  auto y = reshape(Var<float, 3>(x), Shape<2>{6, 4});
  CHECK(y.shape() == Shape<2>{6, 4});
  CHECK(y.value().data() == x.data());  // no copy
  auto z = reshape<4>(Var<float, 3>(x), {1, 2, 12, 1});
  CHECK(z.shape() == Shape<4>{1, 2, 12, 1});
  auto s = reshape(Var<float, 1>(random_tensor<float, 1>({1}, 2)), Shape<0>{});
  CHECK(s.size() == 1);

  expect_ad([](auto v) { return reshape(v, Shape<2>{4, 6}); }, random_tensor<double, 3>({2, 3, 4}, 3));
  expect_ad([](auto v) { return reshape(v, Shape<1>{24}); }, random_tensor<double, 3>({2, 3, 4}, 4));
  // used twice: both reshapes add into x's gradient
  expect_ad([](auto v) { return concat({reshape(v, Shape<2>{3, 2}), reshape(v, Shape<2>{3, 2})}, 0); },
            random_tensor<double, 1>({6}, 5));
}

TEST_CASE("reshape: a size mismatch throws naming the op and both shapes") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(reshape(x, Shape<2>{5, 5}), doctest::Contains("reshape: cannot view (2, 3, 4) as (5, 5)"),
                       ShapeError);
}

// ---------------------------------------------------------------------------------------------
// permute / transpose

TEST_CASE("permute: values of head split/merge and general permutations (float)") {
  check_permute<float, 4>({2, 5, 3, 4}, {0, 2, 1, 3}, 6);    // (B, T, H, D) -> (B, H, T, D)
  check_permute<float, 4>({2, 3, 5, 4}, {0, 2, 1, 3}, 7);    // and back
  check_permute<float, 4>({2, 3, 4, 5}, {3, 1, 0, 2}, 8);    // last axis moves
  check_permute<float, 4>({2, 3, 4, 5}, {1, 0, 2, 3}, 9);    // two leading axes, blocks of 20
  check_permute<float, 4>({2, 3, 4, 5}, {0, 1, 2, 3}, 10);   // identity: one block
  check_permute<float, 4>({2, 3, 4, 1}, {0, 2, 1, 3}, 11);   // blocks of one element
  check_permute<float, 3>({3, 4, 5}, {2, 0, 1}, 12);
  check_permute<float, 2>({7, 9}, {1, 0}, 13);
  check_permute<float, 1>({5}, {0}, 14);
  check_permute<float, 4>({2, 0, 3, 4}, {0, 2, 1, 3}, 15);   // empty
  check_permute<float, 4>({4, 64, 12, 16}, {0, 2, 1, 3}, 16);  // threaded block copies
  check_permute<float, 3>({40, 30, 50}, {2, 1, 0}, 17);        // threaded element walk
  check_permute<double, 4>({2, 3, 4, 5}, {2, 3, 0, 1}, 18);
}

TEST_CASE("permute: gradients of rank 4 permutations (double)") {
  auto x = random_tensor<double, 4>({2, 3, 2, 4}, 19);
  expect_ad([](auto v) { return permute(v, std::array<int, 4>{0, 2, 1, 3}); }, x);
  expect_ad([](auto v) { return permute(v, std::array<int, 4>{3, 1, 0, 2}); }, x);
  expect_ad([](auto v) { return permute(v, std::array<int, 4>{1, 0, 2, 3}); }, x);
  expect_ad([](auto v) { return permute(v, std::array<int, 4>{0, 1, 2, 3}); }, x);
  expect_ad([](auto v) { return permute(v, std::array<int, 3>{2, 0, 1}); }, random_tensor<double, 3>({2, 3, 4}, 20));
  // a permute and its inverse compose to the identity
  Parameter<double, 4> p("p", x.clone());
  p.zero_grad();
  auto back = permute(permute(p.var(), {3, 1, 0, 2}), {2, 1, 3, 0});
  CHECK(max_abs_diff(back.value(), x) == 0.0);
  auto seed = random_tensor<double, 4>(x.shape(), 21);
  back.backward(seed);
  CHECK(max_abs_diff(p.grad(), seed) == 0.0);
}

TEST_CASE("permute: the gradient at threaded sizes is the inverse permutation (float)") {
  Parameter<float, 4> p("p", random_tensor<float, 4>({4, 64, 12, 16}, 22));
  p.zero_grad();
  auto dy = random_tensor<float, 4>({4, 12, 64, 16}, 23);
  permute(p.var(), {0, 2, 1, 3}).backward(dy);
  CHECK(max_abs_diff(p.grad(), ref_permute(dy, {0, 2, 1, 3})) == 0.0);

  Parameter<float, 3> q("q", random_tensor<float, 3>({40, 30, 50}, 24));
  q.zero_grad();
  auto dq = random_tensor<float, 3>({50, 30, 40}, 25);
  permute(q.var(), {2, 1, 0}).backward(dq);
  CHECK(max_abs_diff(q.grad(), ref_permute(dq, {2, 1, 0})) == 0.0);
}

TEST_CASE("transpose: two axes swapped, negative axes from the end") {
  auto x = random_tensor<float, 4>({2, 3, 4, 5}, 26);
  auto y = transpose(Var<float, 4>(x), 1, 2);
  CHECK(max_abs_diff(y.value(), ref_permute(x, {0, 2, 1, 3})) == 0.0);
  auto z = transpose(Var<float, 4>(x), -1, 0);
  CHECK(max_abs_diff(z.value(), ref_permute(x, {3, 1, 2, 0})) == 0.0);
  auto w = transpose(Var<float, 4>(x), 2, 2);
  CHECK(max_abs_diff(w.value(), x) == 0.0);
  expect_ad([](auto v) { return transpose(v, -2, -1); }, random_tensor<double, 3>({2, 3, 4}, 27));
}

TEST_CASE("permute/transpose: invalid axes throw naming the op") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(
      permute(x, {0, 1, 1}),
      doctest::Contains("permute: axes (0, 1, 1) are not a permutation of the axes of shape (2, 3, 4)"), ShapeError);
  CHECK_THROWS_WITH_AS(permute(x, {0, 1, 3}), doctest::Contains("(0, 1, 3)"), ShapeError);
  CHECK_THROWS_WITH_AS(permute(x, {-1, 0, 1}), doctest::Contains("not a permutation"), ShapeError);
  CHECK_THROWS_WITH_AS(transpose(x, 0, 3), doctest::Contains("transpose: axis 3 out of range for shape (2, 3, 4)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(transpose(x, -4, 0), doctest::Contains("transpose: axis -4"), ShapeError);
}

// ---------------------------------------------------------------------------------------------
// concat / slice

namespace {
// Concatenation along `axis` by index arithmetic.
template <class T, std::size_t R>
Tensor<T, R> ref_concat(const std::vector<Tensor<T, R>>& xs, std::size_t axis) {
  Shape<R> ys = xs[0].shape();
  ys[axis] = 0;
  for (const auto& x : xs) ys[axis] += x.shape()[axis];
  Tensor<T, R> y(ys);
  index_t base = 0;
  for (const auto& x : xs) {
    for (index_t i = 0; i < x.size(); ++i) {
      auto idx = unravel(i, x.shape());
      idx[axis] += base;
      y.data()[ravel(idx, ys)] = x.data()[i];
    }
    base += x.shape()[axis];
  }
  return y;
}
template <class T, std::size_t R>
Tensor<T, R> ref_slice(const Tensor<T, R>& x, std::size_t axis, index_t begin, index_t end) {
  Shape<R> ys = x.shape();
  ys[axis] = end - begin;
  Tensor<T, R> y(ys);
  for (index_t j = 0; j < y.size(); ++j) {
    auto idx = unravel(j, ys);
    idx[axis] += begin;
    y.data()[j] = x.data()[ravel(idx, x.shape())];
  }
  return y;
}
}  // namespace

TEST_CASE("concat: values along axis 0, a middle axis and the last (float)") {
  auto a = random_tensor<float, 3>({2, 3, 4}, 28);
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    const auto ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
    Shape<3> sb = a.shape(), sc = a.shape();
    sb[ax] = 1;
    sc[ax] = 5;
    auto b = random_tensor<float, 3>(sb, 29), c = random_tensor<float, 3>(sc, 30);
    auto want = ref_concat<float, 3>({a, b, c}, ax);
    Var<float, 3> va(a), vb(b), vc(c);
    auto y1 = concat({va, vb, vc}, axis);                                        // initializer list
    auto y2 = concat(std::array<Var<float, 3>, 3>{va, vb, vc}, axis);            // std::array
    std::vector<Var<float, 3>> v{va, vb, vc};
    auto y3 = concat(std::span<const Var<float, 3>>(v), axis);                   // span
    CHECK(max_abs_diff(y1.value(), want) == 0.0);
    CHECK(max_abs_diff(y2.value(), want) == 0.0);
    CHECK(max_abs_diff(y3.value(), want) == 0.0);
  }
  // one input, an empty input, and threaded sizes
  auto one = concat({Var<float, 3>(a)}, 1);
  CHECK(max_abs_diff(one.value(), a) == 0.0);
  auto e = Tensor<float, 3>::zeros({2, 0, 4});
  CHECK(max_abs_diff(concat({Var<float, 3>(a), Var<float, 3>(e)}, 1).value(), a) == 0.0);
  auto big1 = random_tensor<float, 3>({64, 20, 32}, 31), big2 = random_tensor<float, 3>({64, 10, 32}, 32);
  auto joined = concat({Var<float, 3>(big1), Var<float, 3>(big2)}, 1);
  CHECK(max_abs_diff(joined.value(), ref_concat<float, 3>({big1, big2}, 1)) == 0.0);
}

TEST_CASE("concat: gradients along axis 0, 1 and the last (double)") {
  auto x = random_tensor<double, 3>({2, 3, 2}, 33);
  auto y0 = random_tensor<double, 3>({1, 3, 2}, 34);
  auto y1 = random_tensor<double, 3>({2, 4, 2}, 35);
  auto y2 = random_tensor<double, 3>({2, 3, 3}, 36);
  expect_ad([](auto a, auto b) { return concat({a, b}, 0); }, x, y0);
  expect_ad([](auto a, auto b) { return concat({b, a, b}, 1); }, x, y1);  // b used twice
  expect_ad([](auto a, auto b) { return concat(std::array{a, b}, -1); }, x, y2);
  // a constant among the inputs gets nothing and costs nothing
  expect_ad([&](auto a) { return concat({Var<double, 3>(y1), a}, 1); }, x);
  // the prefix case: (P, C) trainable rows in front of (T, C) constant rows
  expect_ad([](auto p) { return concat({p, Var<double, 2>(Tensor<double, 2>::full({3, 2}, 0.5))}, 0); },
            random_tensor<double, 2>({2, 2}, 37));
}

TEST_CASE("concat: mismatched extents, no inputs and a bad axis throw naming the op") {
  Var<float, 3> a(Tensor<float, 3>::zeros({2, 3, 4}));
  Var<float, 3> b(Tensor<float, 3>::zeros({2, 5, 4}));
  CHECK_NOTHROW(concat({a, b}, 1));
  CHECK_THROWS_WITH_AS(
      concat({a, b}, 0),
      doctest::Contains("concat: extents off the concatenation axis 0 differ; got (2, 3, 4) and (2, 5, 4)"),
      ShapeError);
  CHECK_THROWS_WITH_AS(concat({a, b}, -1), doctest::Contains("axis 2"), ShapeError);
  CHECK_THROWS_WITH_AS(concat(std::span<const Var<float, 3>>(), 0), doctest::Contains("concat: no inputs"), ShapeError);
  CHECK_THROWS_WITH_AS(concat({a, a}, 3), doctest::Contains("concat: axis 3 out of range for shape (2, 3, 4)"),
                       ShapeError);
}

TEST_CASE("slice: a view along axis 0, a copy along the others (float)") {
  auto x = random_tensor<float, 3>({4, 5, 6}, 38);
  auto s0 = slice(Var<float, 3>(x), 0, 1, 3);
  CHECK(s0.shape() == Shape<3>{2, 5, 6});
  CHECK(s0.value().data() == x.data() + 30);  // a view
  CHECK(max_abs_diff(s0.value(), ref_slice(x, 0, 1, 3)) == 0.0);
  auto s1 = slice(Var<float, 3>(x), 1, 2, 5);
  CHECK(max_abs_diff(s1.value(), ref_slice(x, 1, 2, 5)) == 0.0);
  auto s2 = slice(Var<float, 3>(x), -1, 0, 1);
  CHECK(max_abs_diff(s2.value(), ref_slice(x, 2, 0, 1)) == 0.0);
  auto s3 = slice(Var<float, 3>(x), 1, 3, 3);
  CHECK(s3.shape() == Shape<3>{4, 0, 6});
  auto big = random_tensor<float, 3>({128, 30, 40}, 39);
  CHECK(max_abs_diff(slice(Var<float, 3>(big), 1, 5, 25).value(), ref_slice(big, 1, 5, 25)) == 0.0);
}

TEST_CASE("slice: gradients along the first, a middle and the last axis (double)") {
  auto x = random_tensor<double, 3>({3, 4, 3}, 40);
  expect_ad([](auto v) { return slice(v, 0, 1, 3); }, x);
  expect_ad([](auto v) { return slice(v, 1, 1, 3); }, x);
  expect_ad([](auto v) { return slice(v, 2, 0, 2); }, x);
  // overlapping slices of one Var accumulate; slicing undoes a concat
  expect_ad([](auto v) { return concat({slice(v, 1, 0, 3), slice(v, 1, 1, 4)}, 1); }, x);
  expect_ad([](auto a, auto b) { return slice(concat({a, b}, 1), 1, 2, 5); }, x,
            random_tensor<double, 3>({3, 2, 3}, 41));
}

TEST_CASE("slice: an out-of-range slice throws naming the range and the shape") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(slice(x, 1, 2, 4),
                       doctest::Contains("slice: [2, 4) out of range along axis 1 of shape (2, 3, 4)"), ShapeError);
  CHECK_THROWS_WITH_AS(slice(x, 2, -1, 1), doctest::Contains("[-1, 1)"), ShapeError);
  CHECK_THROWS_WITH_AS(slice(x, 0, 2, 1), doctest::Contains("[2, 1)"), ShapeError);
  CHECK_THROWS_WITH_AS(slice(x, 3, 0, 1), doctest::Contains("slice: axis 3 out of range"), ShapeError);
}

TEST_CASE("shape ops: no tape records under NoGradGuard") {
  Parameter<double, 3> p("p", random_tensor<double, 3>({2, 3, 4}, 42));
  NoGradGuard guard;
  auto a = reshape(p.var(), Shape<2>{6, 4});
  auto b = permute(p.var(), {2, 0, 1});
  auto c = transpose(p.var(), 0, 1);
  auto d = concat({p.var(), p.var()}, 1);
  auto e = slice(p.var(), 2, 1, 3);
  auto f = slice(p.var(), 0, 0, 1);
  CHECK(!(a.requires_grad() || b.requires_grad() || c.requires_grad() || d.requires_grad() || e.requires_grad() ||
          f.requires_grad()));
  CHECK(tape().size() == 0);
}

TEST_CASE("repeat_rows: (P, W) copied for B examples; the gradient sums the copies") {
  const auto rows = random_tensor<float, 2>({3, 4}, 41);
  const auto y = repeat_rows(Var<float, 2>(rows), 5).value();
  CHECK(y.shape() == Shape<3>{5, 3, 4});
  for (index_t b = 0; b < 5; ++b)
    for (index_t p = 0; p < 3; ++p)
      for (index_t w = 0; w < 4; ++w) CHECK(y(b, p, w) == rows(p, w));
  CHECK(repeat_rows(Var<float, 2>(rows), 1).value().shape() == Shape<3>{1, 3, 4});
  CHECK_THROWS_AS(repeat_rows(Var<float, 2>(rows), 0), ShapeError);
  expect_ad([](auto r) { return repeat_rows(r, 3); }, random_tensor<double, 2>({2, 3}, 42));
  expect_ad([](auto r) { return repeat_rows(r, 1); }, random_tensor<double, 2>({2, 3}, 43));
}

}  // namespace test_ops_shape
