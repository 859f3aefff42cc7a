// ops/lstm.hpp: torch.nn.LSTMCell. Values against a plain loop (float), gradients by finite
// differences (double) through one and two steps, PyTorch parity from tests/data/attention/.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "deepprompt/ops/lstm.hpp"
#include "testing.hpp"

namespace test_ops_lstm {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dp = deepprompt;
using dp::index_t;
using dp::Tensor;
using dp::Var;
using dp_test::random_tensor;

namespace {

struct Cell {
  Tensor<double, 2> h, c;
};

// The torch.nn.LSTMCell formulas, one scalar at a time.
template <class T>
Cell reference(const Tensor<T, 2>& x, const Tensor<T, 2>& h, const Tensor<T, 2>& c, const Tensor<T, 2>& w_ih,
               const Tensor<T, 2>& w_hh, const Tensor<T, 1>& b_ih, const Tensor<T, 1>& b_hh) {
  const index_t B = x.extent(0), In = x.extent(1), Hd = h.extent(1);
  Cell out{Tensor<double, 2>({B, Hd}), Tensor<double, 2>({B, Hd})};
  auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  for (index_t b = 0; b < B; ++b)
    for (index_t u = 0; u < Hd; ++u) {
      double z[4];
      for (int gate = 0; gate < 4; ++gate) {
        const index_t row = gate * Hd + u;
        double s = (b_ih.empty() ? 0.0 : b_ih(row)) + (b_hh.empty() ? 0.0 : b_hh(row));
        for (index_t j = 0; j < In; ++j) s += double(x(b, j)) * w_ih(row, j);
        for (index_t j = 0; j < Hd; ++j) s += double(h(b, j)) * w_hh(row, j);
        z[gate] = s;
      }
      const double i = sig(z[0]), f = sig(z[1]), g = std::tanh(z[2]), o = sig(z[3]);
      out.c(b, u) = f * c(b, u) + i * g;
      out.h(b, u) = o * std::tanh(out.c(b, u));
    }
  return out;
}

template <class T>
Tensor<T, 2> stack(const Var<T, 2>& a, const Var<T, 2>& b) {  // (B, Hd) x 2 -> (B, 2Hd)
  const index_t B = a.extent(0), Hd = a.extent(1);
  Tensor<T, 2> out({B, 2 * Hd});
  for (index_t r = 0; r < B; ++r)
    for (index_t u = 0; u < Hd; ++u) out(r, u) = a.value()(r, u), out(r, Hd + u) = b.value()(r, u);
  return out;
}

// h' and c' side by side as one output, for the gradient checker: (B, 2Hd).
template <class T>
Var<T, 2> both(const dp::LstmState<T>& s) {
  const index_t B = s.h.extent(0), Hd = s.h.extent(1);
  auto out = Var<T, 2>::result(stack(s.h, s.c), s.h.requires_grad());
  if (out.requires_grad())
    dp::tape().record(out.node(), [hn = s.h.node(), cn = s.c.node(), B, Hd](const Tensor<T, 2>& dy) {
      const auto& dh = hn->accumulator();
      const auto& dc = cn->accumulator();
      for (index_t r = 0; r < B; ++r)
        for (index_t u = 0; u < Hd; ++u) dh(r, u) += dy(r, u), dc(r, u) += dy(r, Hd + u);
    });
  return out;
}

}  // namespace

TEST_CASE("lstm_cell: values against the plain loop (float), with and without bias") {
  const index_t B = 3, In = 5, Hd = 7;
  const auto x = random_tensor<float, 2>({B, In}, 1), h = random_tensor<float, 2>({B, Hd}, 2),
             c = random_tensor<float, 2>({B, Hd}, 3), w_ih = random_tensor<float, 2>({4 * Hd, In}, 4),
             w_hh = random_tensor<float, 2>({4 * Hd, Hd}, 5);
  const auto b_ih = random_tensor<float, 1>({4 * Hd}, 6), b_hh = random_tensor<float, 1>({4 * Hd}, 7);
  auto s = dp::lstm_cell(Var<float, 2>(x), Var<float, 2>(h), Var<float, 2>(c), Var<float, 2>(w_ih), Var<float, 2>(w_hh),
                         Var<float, 1>(b_ih), Var<float, 1>(b_hh));
  auto want = reference(x, h, c, w_ih, w_hh, b_ih, b_hh);
  CHECK(dp_test::max_abs_diff(s.h.value(), want.h) < 1e-6);
  CHECK(dp_test::max_abs_diff(s.c.value(), want.c) < 1e-6);
  CHECK(!s.h.requires_grad());
  auto n = dp::lstm_cell(Var<float, 2>(x), Var<float, 2>(h), Var<float, 2>(c), Var<float, 2>(w_ih), Var<float, 2>(w_hh),
                         Var<float, 1>(), Var<float, 1>());
  auto want_n = reference(x, h, c, w_ih, w_hh, Tensor<float, 1>(), Tensor<float, 1>());
  CHECK(dp_test::max_abs_diff(n.h.value(), want_n.h) < 1e-6);
  CHECK(dp_test::max_abs_diff(n.c.value(), want_n.c) < 1e-6);
}

TEST_CASE("lstm_cell: gradients of all seven inputs (double, finite differences)") {
  const index_t B = 2, In = 3, Hd = 4;
  const auto x = random_tensor<double, 2>({B, In}, 1), h = random_tensor<double, 2>({B, Hd}, 2),
             c = random_tensor<double, 2>({B, Hd}, 3), w_ih = random_tensor<double, 2>({4 * Hd, In}, 4),
             w_hh = random_tensor<double, 2>({4 * Hd, Hd}, 5);
  const auto b_ih = random_tensor<double, 1>({4 * Hd}, 6), b_hh = random_tensor<double, 1>({4 * Hd}, 7);
  SUBCASE("h' and c' both used") {
    dp_test::expect_ad([](auto... a) { return both(dp::lstm_cell(a...)); }, x, h, c, w_ih, w_hh, b_ih, b_hh);
  }
  SUBCASE("only h' used") {
    dp_test::expect_ad([](auto... a) { return dp::lstm_cell(a...).h; }, x, h, c, w_ih, w_hh, b_ih, b_hh);
  }
  SUBCASE("only c' used") {
    dp_test::expect_ad([](auto... a) { return dp::lstm_cell(a...).c; }, x, h, c, w_ih, w_hh, b_ih, b_hh);
  }
  SUBCASE("two steps: the second consumes h' and c' of the first") {
    const auto x2 = random_tensor<double, 2>({B, In}, 8);
    dp_test::expect_ad(
        [](auto x1, auto x2v, auto h0, auto c0, auto wi, auto wh, auto bi, auto bh) {
          auto s1 = dp::lstm_cell(x1, h0, c0, wi, wh, bi, bh);
          auto s2 = dp::lstm_cell(x2v, s1.h, s1.c, wi, wh, bi, bh);
          return both(s2);
        },
        x, x2, h, c, w_ih, w_hh, b_ih, b_hh);
  }
  SUBCASE("frozen weights: only x, h, c") {
    dp_test::expect_ad(
        [&](auto xv, auto hv, auto cv) {
          return both(dp::lstm_cell(xv, hv, cv, Var<double, 2>(w_ih), Var<double, 2>(w_hh), Var<double, 1>(b_ih),
                                    Var<double, 1>()));
        },
        x, h, c);
  }
}

TEST_CASE("lstm_cell: PyTorch parity (torch.nn.LSTMCell)") {
  std::ifstream f(DEEPPROMPT_TEST_DATA "/attention/lstm_cell.json");
  REQUIRE(f.good());
  const auto j = nlohmann::json::parse(f)["lstm"];
  const index_t B = j["B"], In = j["In"], Hd = j["Hd"];
  auto t2 = [&](const char* key, index_t r, index_t cols) {
    return Tensor<float, 2>::from({r, cols}, j[key].get<std::vector<float>>());
  };
  auto t1 = [&](const char* key) { return Tensor<float, 1>::from({4 * Hd}, j[key].get<std::vector<float>>()); };
  dp::Parameter<float, 2> x("x", t2("x", B, In)), h("h", t2("h", B, Hd)), c("c", t2("c", B, Hd)),
      w_ih("w_ih", t2("w_ih", 4 * Hd, In)), w_hh("w_hh", t2("w_hh", 4 * Hd, Hd));
  dp::Parameter<float, 1> b_ih("b_ih", t1("b_ih")), b_hh("b_hh", t1("b_hh"));
  auto s = dp::lstm_cell(x.var(), h.var(), c.var(), w_ih.var(), w_hh.var(), b_ih.var(), b_hh.var());
  CHECK(dp_test::max_abs_diff(s.h.value(), t2("h_out", B, Hd)) < 1e-5);
  CHECK(dp_test::max_abs_diff(s.c.value(), t2("c_out", B, Hd)) < 1e-5);
  // L = sum(h' * dh) + sum(c' * dc), through the two outputs
  const auto dh = t2("dh", B, Hd), dc = t2("dc", B, Hd);
  Tensor<float, 2> seed({B, 2 * Hd});
  for (index_t r = 0; r < B; ++r)
    for (index_t u = 0; u < Hd; ++u) seed(r, u) = dh(r, u), seed(r, Hd + u) = dc(r, u);
  both(s).backward(seed);
  CHECK(dp_test::max_abs_diff(x.grad(), t2("dx", B, In)) < 1e-5);
  CHECK(dp_test::max_abs_diff(h.grad(), t2("dh_in", B, Hd)) < 1e-5);
  CHECK(dp_test::max_abs_diff(c.grad(), t2("dc_in", B, Hd)) < 1e-5);
  CHECK(dp_test::max_abs_diff(w_ih.grad(), t2("dw_ih", 4 * Hd, In)) < 1e-5);
  CHECK(dp_test::max_abs_diff(w_hh.grad(), t2("dw_hh", 4 * Hd, Hd)) < 1e-5);
  CHECK(dp_test::max_abs_diff(b_ih.grad(), t1("db_ih")) < 1e-5);
  CHECK(dp_test::max_abs_diff(b_hh.grad(), t1("db_hh")) < 1e-5);
}

TEST_CASE("lstm_cell: frozen weights get no gradient work; no-grad records nothing") {
  const index_t B = 2, In = 3, Hd = 4;
  dp::Parameter<double, 2> x("x", random_tensor<double, 2>({B, In}, 1));
  const Var<double, 2> h(random_tensor<double, 2>({B, Hd}, 2)), c(random_tensor<double, 2>({B, Hd}, 3));
  dp::Parameter<double, 2> w_ih("w_ih", random_tensor<double, 2>({4 * Hd, In}, 4), false),
      w_hh("w_hh", random_tensor<double, 2>({4 * Hd, Hd}, 5), false);
  auto s = dp::lstm_cell(x.var(), h, c, w_ih.var(), w_hh.var(), Var<double, 1>(), Var<double, 1>());
  CHECK(s.h.requires_grad());
  CHECK(dp::tape().size() == 2);  // one fused step on each output
  s.h.backward(Tensor<double, 2>::full({B, Hd}, 1.0));
  double norm = 0;
  for (double g : x.grad().span()) norm += g * g;
  CHECK(norm > 0);
  {
    dp::NoGradGuard guard;
    auto t = dp::lstm_cell(x.var(), h, c, w_ih.var(), w_hh.var(), Var<double, 1>(), Var<double, 1>());
    CHECK(!t.h.requires_grad());
    CHECK(dp::tape().size() == 0);
  }
}

TEST_CASE("lstm_cell: shape errors name the op and the shapes") {
  using V2 = Var<float, 2>;
  using V1 = Var<float, 1>;
  const V2 x(Tensor<float, 2>({2, 3})), h(Tensor<float, 2>({2, 4})), c(Tensor<float, 2>({2, 4})),
      w_ih(Tensor<float, 2>({16, 3})), w_hh(Tensor<float, 2>({16, 4}));
  const V1 b(Tensor<float, 1>({16}));
  CHECK_THROWS_WITH_AS(dp::lstm_cell(x, h, V2(Tensor<float, 2>({2, 5})), w_ih, w_hh, b, b),
                       "lstm_cell: h and c differ in shape; got (2, 4) and (2, 5)", dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::lstm_cell(V2(Tensor<float, 2>({3, 3})), h, c, w_ih, w_hh, b, b),
                       "lstm_cell: x (B, In) and h (B, Hd) differ in batch size; got (3, 3) and (2, 4)", dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::lstm_cell(x, h, c, V2(Tensor<float, 2>({16, 5})), w_hh, b, b),
                       doctest::Contains("lstm_cell: w_ih must be (4 * Hd, In)"), dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::lstm_cell(x, h, c, w_ih, V2(Tensor<float, 2>({12, 4})), b, b),
                       "lstm_cell: w_hh must be (4 * Hd, Hd) for h (B, Hd); got (12, 4) and (2, 4)", dp::ShapeError);
  CHECK_THROWS_WITH_AS(dp::lstm_cell(x, h, c, w_ih, w_hh, V1(Tensor<float, 1>({12})), b),
                       "lstm_cell: b_ih must be (4 * Hd) for h (B, Hd); got (12) and (2, 4)", dp::ShapeError);
}

}  // namespace test_ops_lstm
