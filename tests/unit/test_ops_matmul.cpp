// ops/matmul.hpp and ops/linear.hpp: values against plain loops (float), gradients against
// finite differences (double), shape errors, no-grad scopes, and the GEMMs that a frozen or
// constant operand must not cost (counted with cpu::counters()).
#include <deepprompt/backend/cpu/counters.hpp>
#include <deepprompt/ops/linear.hpp>
#include <deepprompt/ops/matmul.hpp>

#include "testing.hpp"

namespace test_ops_matmul {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using dp_test::expect_ad;
using dp_test::max_abs_diff;
using dp_test::random_tensor;

namespace {

constexpr Trans kTrans[2] = {Trans::No, Trans::Yes};

// y = op(a) op(b) for one (M, N, K) product stored at the given pointers (double accumulator).
template <class T>
void ref_matmul(const T* a, const T* b, T* y, index_t M, index_t N, index_t K, Trans ta, Trans tb) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double s = 0;
      for (index_t k = 0; k < K; ++k) {
        const T av = ta == Trans::Yes ? a[k * M + i] : a[i * K + k];
        const T bv = tb == Trans::Yes ? b[j * K + k] : b[k * N + j];
        s += double(av) * double(bv);
      }
      y[i * N + j] = static_cast<T>(s);
    }
}

// The stored shape of op(x) == (r, c) under `t`.
Shape<2> stored(index_t r, index_t c, Trans t) { return t == Trans::Yes ? Shape<2>{c, r} : Shape<2>{r, c}; }

long long gemm_calls() { return cpu::counters().gemm_calls.load(); }

}  // namespace

TEST_CASE("matmul: values of all four transpose combinations (float, small and threaded sizes)") {
  for (auto [M, N, K] : {std::array<index_t, 3>{5, 3, 7}, std::array<index_t, 3>{1, 1, 1},
                         std::array<index_t, 3>{70, 90, 80}}) {
    for (Trans ta : kTrans)
      for (Trans tb : kTrans) {
        CAPTURE(M);
        CAPTURE(static_cast<int>(ta));
        CAPTURE(static_cast<int>(tb));
        auto a = random_tensor<float, 2>(stored(M, K, ta), 1);
        auto b = random_tensor<float, 2>(stored(K, N, tb), 2);
        auto y = matmul(Var<float, 2>(a), Var<float, 2>(b), ta, tb);
        REQUIRE(y.shape() == Shape<2>{M, N});
        Tensor<float, 2> want({M, N});
        ref_matmul(a.data(), b.data(), want.data(), M, N, K, ta, tb);
        CHECK(max_abs_diff(y.value(), want) < 1e-4);
        CHECK(!y.requires_grad());
      }
  }
}

TEST_CASE("matmul: batched values of all four transpose combinations (float)") {
  const index_t B = 3, M = 4, N = 6, K = 5;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      const auto sa = stored(M, K, ta), sb = stored(K, N, tb);
      auto a = random_tensor<float, 3>({B, sa[0], sa[1]}, 3);
      auto b = random_tensor<float, 3>({B, sb[0], sb[1]}, 4);
      auto y = matmul(Var<float, 3>(a), Var<float, 3>(b), ta, tb);
      REQUIRE(y.shape() == Shape<3>{B, M, N});
      Tensor<float, 3> want({B, M, N});
      for (index_t i = 0; i < B; ++i)
        ref_matmul(a.data() + i * M * K, b.data() + i * K * N, want.data() + i * M * N, M, N, K, ta, tb);
      CHECK(max_abs_diff(y.value(), want) < 1e-5);
    }
}

TEST_CASE("matmul: an empty inner dimension gives zeros") {
  auto y = matmul(Var<float, 2>(Tensor<float, 2>::zeros({2, 0})), Var<float, 2>(Tensor<float, 2>::zeros({0, 3})));
  REQUIRE(y.shape() == Shape<2>{2, 3});
  for (float v : y.value().span()) CHECK(v == 0.0f);
}

TEST_CASE("matmul: gradients of all four transpose combinations (double)") {
  const index_t M = 3, N = 4, K = 5;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      CAPTURE(static_cast<int>(ta));
      CAPTURE(static_cast<int>(tb));
      auto a = random_tensor<double, 2>(stored(M, K, ta), 5);
      auto b = random_tensor<double, 2>(stored(K, N, tb), 6);
      expect_ad([=](auto x, auto w) { return matmul(x, w, ta, tb); }, a, b);
    }
}

TEST_CASE("matmul: batched gradients of all four transpose combinations (double)") {
  const index_t B = 2, M = 3, N = 2, K = 4;
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      CAPTURE(static_cast<int>(ta));
      CAPTURE(static_cast<int>(tb));
      const auto sa = stored(M, K, ta), sb = stored(K, N, tb);
      auto a = random_tensor<double, 3>({B, sa[0], sa[1]}, 7);
      auto b = random_tensor<double, 3>({B, sb[0], sb[1]}, 8);
      expect_ad([=](auto x, auto w) { return matmul(x, w, ta, tb); }, a, b);
    }
}

TEST_CASE("matmul: the same Var on both sides (x x^T, x^T x, x x) accumulates both gradients") {
  auto x = random_tensor<double, 2>({3, 4}, 9);
  expect_ad([](auto v) { return matmul(v, v, Trans::No, Trans::Yes); }, x);
  expect_ad([](auto v) { return matmul(v, v, Trans::Yes, Trans::No); }, x);
  auto sq = random_tensor<double, 2>({4, 4}, 10);
  expect_ad([](auto v) { return matmul(v, v); }, sq);
  auto xb = random_tensor<double, 3>({2, 3, 4}, 11);
  expect_ad([](auto v) { return matmul(v, v, Trans::No, Trans::Yes); }, xb);
}

TEST_CASE("matmul: a constant operand gets no gradient and costs no GEMM") {
  auto a = random_tensor<double, 2>({3, 5}, 12);
  auto c = random_tensor<double, 2>({5, 4}, 13);
  expect_ad([&](auto x) { return matmul(x, Var<double, 2>(c)); }, a);
  expect_ad([&](auto w) { return matmul(Var<double, 2>(a), w, Trans::No, Trans::No); }, c);
  auto cb = random_tensor<double, 3>({2, 4, 5}, 14);
  auto ab = random_tensor<double, 3>({2, 3, 5}, 15);
  expect_ad([&](auto x) { return matmul(x, Var<double, 3>(cb), Trans::No, Trans::Yes); }, ab);

  Parameter<float, 2> p("p", random_tensor<float, 2>({3, 5}, 16));
  Var<float, 2> k(random_tensor<float, 2>({5, 4}, 17));
  const auto before = gemm_calls();
  auto y = matmul(p.var(), k);
  y.backward(Tensor<float, 2>::full({3, 4}, 1.0f));
  CHECK(gemm_calls() - before == 2);  // forward and da only
}

TEST_CASE("matmul: shape errors name the op and both shapes") {
  Var<float, 2> a(Tensor<float, 2>::zeros({2, 3}));
  Var<float, 2> b(Tensor<float, 2>::zeros({4, 5}));
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: inner dimensions differ"), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("(2, 3) and (4, 5)"), ShapeError);
  CHECK_THROWS_WITH_AS(matmul(a, b, Trans::Yes, Trans::No), doctest::Contains("ta = Yes"), ShapeError);
  CHECK_NOTHROW(matmul(a, Var<float, 2>(Tensor<float, 2>::zeros({5, 3})), Trans::No, Trans::Yes));
  Var<float, 3> c(Tensor<float, 3>::zeros({2, 3, 4}));
  Var<float, 3> d(Tensor<float, 3>::zeros({3, 4, 5}));
  CHECK_THROWS_WITH_AS(matmul(c, d), doctest::Contains("matmul: batch sizes differ; got (2, 3, 4) and (3, 4, 5)"),
                       ShapeError);
  Var<float, 3> e(Tensor<float, 3>::zeros({2, 5, 5}));
  CHECK_THROWS_WITH_AS(matmul(c, e), doctest::Contains("(2, 3, 4) and (2, 5, 5)"), ShapeError);
}

TEST_CASE("matmul: no tape records under NoGradGuard") {
  Parameter<double, 2> a("a", random_tensor<double, 2>({2, 3}, 18));
  Parameter<double, 3> b("b", random_tensor<double, 3>({2, 3, 3}, 19));
  NoGradGuard guard;
  auto y = matmul(a.var(), a.var(), Trans::No, Trans::Yes);
  auto z = matmul(b.var(), b.var());
  CHECK(!y.requires_grad());
  CHECK(!z.requires_grad());
  CHECK(tape().size() == 0);
}

// ---------------------------------------------------------------------------------------------
// linear

namespace {
// y[r, o] = sum_i x[r, i] w[o, i] + b[o]
template <class T>
Tensor<T, 2> ref_linear(const T* x, const Tensor<T, 2>& w, const T* b, index_t rows) {
  const index_t out = w.extent(0), in = w.extent(1);
  Tensor<T, 2> y({rows, out});
  for (index_t r = 0; r < rows; ++r)
    for (index_t o = 0; o < out; ++o) {
      double s = b ? double(b[o]) : 0.0;
      for (index_t i = 0; i < in; ++i) s += double(x[r * in + i]) * double(w(o, i));
      y(r, o) = static_cast<T>(s);
    }
  return y;
}
}  // namespace

TEST_CASE("linear: values for x of rank 1 to 4, with and without bias (float)") {
  auto w = random_tensor<float, 2>({6, 5}, 20);
  auto b = random_tensor<float, 1>({6}, 21);
  Var<float, 2> W(w);
  Var<float, 1> Bv(b);
  auto check = [&](const auto& xv, index_t rows) {
    const auto& xt = xv.value();
    auto y = linear(xv, W, Bv);
    auto y0 = linear(xv, W);
    auto ys = xt.shape();
    ys[ys.size() - 1] = 6;
    REQUIRE(y.shape() == ys);
    auto want = ref_linear(xt.data(), w, b.data(), rows);
    auto want0 = ref_linear<float>(xt.data(), w, nullptr, rows);
    CHECK(max_abs_diff(y.value().template reshape<2>({rows, 6}), want) < 1e-5);
    CHECK(max_abs_diff(y0.value().template reshape<2>({rows, 6}), want0) < 1e-5);
  };
  check(Var<float, 1>(random_tensor<float, 1>({5}, 22)), 1);
  check(Var<float, 2>(random_tensor<float, 2>({7, 5}, 23)), 7);
  check(Var<float, 3>(random_tensor<float, 3>({2, 3, 5}, 24)), 6);
  check(Var<float, 4>(random_tensor<float, 4>({2, 2, 3, 5}, 25)), 12);
  check(Var<float, 3>(Tensor<float, 3>::zeros({0, 3, 5})), 0);
}

TEST_CASE("linear: gradients of x, weight and bias (double)") {
  auto w = random_tensor<double, 2>({4, 3}, 26);
  auto b = random_tensor<double, 1>({4}, 27);
  expect_ad([](auto x, auto W, auto B) { return linear(x, W, B); }, random_tensor<double, 3>({2, 3, 3}, 28), w, b);
  expect_ad([](auto x, auto W) { return linear(x, W); }, random_tensor<double, 2>({5, 3}, 29), w);
  expect_ad([](auto x, auto W, auto B) { return linear(x, W, B); }, random_tensor<double, 4>({2, 1, 2, 3}, 30), w, b);
  // the same Var as input and weight: x (3, 3) x^T
  expect_ad([](auto x) { return linear(x, x); }, random_tensor<double, 2>({3, 3}, 31));
  // a constant weight / constant x
  expect_ad([&](auto x) { return linear(x, Var<double, 2>(w), Var<double, 1>(b)); },
            random_tensor<double, 3>({2, 2, 3}, 32));
  auto xc = random_tensor<double, 2>({5, 3}, 33);
  expect_ad([&](auto W, auto B) { return linear(Var<double, 2>(xc), W, B); }, w, b);
}

TEST_CASE("linear: a frozen weight's gradient GEMM never runs (2 GEMMs frozen, 3 trainable, 2 for constant x)") {
  Parameter<float, 3> x("x", random_tensor<float, 3>({2, 4, 8}, 34));
  Parameter<float, 2> w("w", random_tensor<float, 2>({6, 8}, 35), /*trainable=*/false);
  Parameter<float, 1> b("b", random_tensor<float, 1>({6}, 36));
  const auto seed = Tensor<float, 3>::full({2, 4, 6}, 1.0f);

  auto run = [&](const Var<float, 3>& in) {
    const auto before = gemm_calls();
    linear(in, w.var(), b.var()).backward(seed);
    return gemm_calls() - before;
  };
  CHECK(run(x.var()) == 2);  // forward + dx
  CHECK(!w.trainable());
  CHECK(b.grad()(0) == doctest::Approx(8.0));  // db = sum over the 8 rows of ones

  w.set_trainable(true);
  CHECK(run(x.var()) == 3);  // forward + dx + dW
  CHECK(w.grad()(0, 0) != 0.0f);

  w.zero_grad();
  CHECK(run(Var<float, 3>(x.value())) == 2);  // forward + dW
  // dW = dy^T x with dy = ones: column sums of x
  double s = 0;
  for (index_t r = 0; r < 8; ++r) s += x.value().data()[r * 8 + 3];
  CHECK(w.grad()(5, 3) == doctest::Approx(s).epsilon(1e-5));
}

TEST_CASE("linear: frozen weight, trainable x: dx = dy W (float)") {
  Parameter<float, 2> x("x", random_tensor<float, 2>({3, 4}, 37));
  Parameter<float, 2> w("w", random_tensor<float, 2>({5, 4}, 38), false);
  linear(x.var(), w.var()).backward(Tensor<float, 2>::full({3, 5}, 1.0f));
  for (index_t r = 0; r < 3; ++r)
    for (index_t i = 0; i < 4; ++i) {
      double s = 0;
      for (index_t o = 0; o < 5; ++o) s += w.value()(o, i);
      CHECK(x.grad()(r, i) == doctest::Approx(s).epsilon(1e-5));
    }
}

TEST_CASE("linear: shape errors name the op and the shapes") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  Var<float, 2> w(Tensor<float, 2>::zeros({5, 3}));
  Var<float, 1> b(Tensor<float, 1>::zeros({4}));
  CHECK_THROWS_WITH_AS(linear(x, w), doctest::Contains("linear: x's last extent"), ShapeError);
  CHECK_THROWS_WITH_AS(linear(x, w), doctest::Contains("(2, 3, 4) and (5, 3)"), ShapeError);
  Var<float, 2> w2(Tensor<float, 2>::zeros({5, 4}));
  CHECK_THROWS_WITH_AS(linear(x, w2, b),
                       doctest::Contains("linear: bias must have weight's Out extent; got (4) and (5, 4)"), ShapeError);
}

TEST_CASE("linear: no tape records under NoGradGuard") {
  Parameter<double, 3> x("x", random_tensor<double, 3>({2, 2, 3}, 39));
  Parameter<double, 2> w("w", random_tensor<double, 2>({4, 3}, 40));
  Parameter<double, 1> b("b", random_tensor<double, 1>({4}, 41));
  NoGradGuard guard;
  auto y = linear(x.var(), w.var(), b.var());
  CHECK(!y.requires_grad());
  CHECK(tape().size() == 0);
}

}  // namespace test_ops_matmul
