// ops/norm.hpp: layer_norm (with and without affine) and rms_norm (T5LayerNorm): values
// against plain loops (float), gradients against finite differences (double) for every
// combination of inputs needing a gradient, PyTorch parity (tests/data/nn_ops/norm.json),
// error messages, and what gets recorded.
#include "deepprompt/ops/norm.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testing.hpp"

namespace test_ops_norm {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
namespace dp = deepprompt;
using dp_test::expect_ad;
using dp_test::random_tensor;

namespace {

nlohmann::json fixture(const char* name) {
  std::ifstream f(std::string(DEEPPROMPT_TEST_DATA) + "/nn_ops/" + name);
  REQUIRE_MESSAGE(f.good(), "missing fixture " << name << " (run tests/fixtures/gen_nn_ops.py)");
  return nlohmann::json::parse(f);
}

template <class T, std::size_t R>
Tensor<T, R> from_json(const nlohmann::json& j, const Shape<R>& shape) {
  auto v = j.get<std::vector<double>>();
  REQUIRE(static_cast<index_t>(v.size()) == numel(shape));
  Tensor<T, R> t(shape);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
  return t;
}

// max over elements of |got - want| / max(1, |want|): float parity is judged relative to the
// size of values above 1 (an ulp of 17 is 2e-6)
template <class T, std::size_t R>
double max_rel_err(const Tensor<T, R>& got, const Tensor<double, R>& want) {
  REQUIRE(got.shape() == want.shape());
  double m = 0;
  for (index_t i = 0; i < got.size(); ++i)
    m = std::max(m, std::abs(double(got.data()[i]) - want.data()[i]) / std::max(1.0, std::abs(want.data()[i])));
  return m;
}

// plain-loop references; gamma, beta may be empty (no scale / shift)
template <std::size_t R>
Tensor<double, R> layer_norm_ref(const Tensor<float, R>& x, const Tensor<float, 1>& g, const Tensor<float, 1>& b,
                                 double eps) {
  Tensor<double, R> y(x.shape());
  const index_t cols = x.extent(R - 1), rows = x.size() / cols;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    double mu = 0, var = 0;
    for (index_t c = 0; c < cols; ++c) mu += xr[c];
    mu /= cols;
    for (index_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    var /= cols;
    for (index_t c = 0; c < cols; ++c)
      y.data()[r * cols + c] = (xr[c] - mu) / std::sqrt(var + eps) * (g.empty() ? 1.0 : g(c)) + (b.empty() ? 0.0 : b(c));
  }
  return y;
}
template <std::size_t R>
Tensor<double, R> rms_norm_ref(const Tensor<float, R>& x, const Tensor<float, 1>& g, double eps) {
  Tensor<double, R> y(x.shape());
  const index_t cols = x.extent(R - 1), rows = x.size() / cols;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    double ms = 0;
    for (index_t c = 0; c < cols; ++c) ms += double(xr[c]) * xr[c];
    ms /= cols;
    for (index_t c = 0; c < cols; ++c) y.data()[r * cols + c] = xr[c] / std::sqrt(ms + eps) * g(c);
  }
  return y;
}

}  // namespace

TEST_CASE("layer_norm, rms_norm: values against plain loops (float)") {
  for (index_t cols : {1, 6, 16, 37}) {
    INFO("cols " << cols);
    auto x = random_tensor<float, 3>({2, 3, cols}, 31, -2, 3);
    auto g = random_tensor<float, 1>({cols}, 32, 0.5, 1.5);
    auto b = random_tensor<float, 1>({cols}, 33, -1, 1);
    auto y = dp::layer_norm(Var<float, 3>(x), Var<float, 1>(g), Var<float, 1>(b));
    CHECK(dp_test::max_abs_diff(y.value(), layer_norm_ref(x, g, b, 1e-5)) < 2e-5);
    auto y0 = dp::layer_norm(Var<float, 3>(x), 1e-3);  // eps as a double literal: no deduction clash
    CHECK(dp_test::max_abs_diff(y0.value(), layer_norm_ref(x, {}, {}, 1e-3)) < 2e-5);
    auto z = dp::rms_norm(Var<float, 3>(x), Var<float, 1>(g));
    CHECK(dp_test::max_abs_diff(z.value(), rms_norm_ref(x, g, 1e-6)) < 2e-5);
  }
  // rank 1, and Parameters passed directly as gamma / beta
  Parameter<float, 1> g("g", Tensor<float, 1>::from({3}, {1.f, 2.f, 3.f}), false);
  Parameter<float, 1> b("b", Tensor<float, 1>::from({3}, {0.f, 0.f, 1.f}), false);
  auto x = Tensor<float, 1>::from({3}, {1.f, 2.f, 3.f});
  auto y = dp::layer_norm(Var<float, 1>(x), g, b, 0.0f).value();
  CHECK(y(0) == doctest::Approx(-std::sqrt(1.5)));
  CHECK(y(1) == doctest::Approx(0.0));
  CHECK(y(2) == doctest::Approx(3 * std::sqrt(1.5) + 1));
  auto z = dp::rms_norm(Var<float, 1>(x), g, 0.0f).value();
  CHECK(z(2) == doctest::Approx(9 / std::sqrt(14.0 / 3)));
}

TEST_CASE("layer_norm: gradients for every set of inputs needing one (double)") {
  const auto x = random_tensor<double, 3>({2, 3, 7}, 41, -2, 2);
  const auto g = random_tensor<double, 1>({7}, 42, 0.5, 1.5);
  const auto b = random_tensor<double, 1>({7}, 43, -1, 1);
  using V1 = Var<double, 1>;
  using V3 = Var<double, 3>;
  SUBCASE("x, gamma, beta") { expect_ad([](auto x, auto g, auto b) { return dp::layer_norm(x, g, b); }, x, g, b); }
  SUBCASE("x only") { expect_ad([&](auto x) { return dp::layer_norm(x, V1(g), V1(b)); }, x); }
  SUBCASE("gamma and beta only") { expect_ad([&](auto g, auto b) { return dp::layer_norm(V3(x), g, b); }, g, b); }
  SUBCASE("gamma only") { expect_ad([&](auto g) { return dp::layer_norm(V3(x), g, V1(b)); }, g); }
  SUBCASE("beta only (no statistics saved)") { expect_ad([&](auto b) { return dp::layer_norm(V3(x), V1(g), b); }, b); }
  SUBCASE("x and beta") { expect_ad([&](auto x, auto b) { return dp::layer_norm(x, V1(g), b); }, x, b); }
  SUBCASE("no affine") { expect_ad([](auto x) { return dp::layer_norm(x, 1e-3); }, x); }
  SUBCASE("no affine, rank 2, 40 columns") {
    expect_ad([](auto x) { return dp::layer_norm(x); }, random_tensor<double, 2>({3, 40}, 44, -1, 1));
  }
  SUBCASE("composed: x used twice") {
    expect_ad([](auto x, auto g, auto b) { return dp::layer_norm(dp::layer_norm(x, g, b), g, b); }, x, g, b);
  }
}

TEST_CASE("rms_norm: gradients for every set of inputs needing one (double)") {
  const auto x = random_tensor<double, 3>({2, 3, 7}, 51, -2, 2);
  const auto g = random_tensor<double, 1>({7}, 52, 0.5, 1.5);
  SUBCASE("x and gamma") { expect_ad([](auto x, auto g) { return dp::rms_norm(x, g); }, x, g); }
  SUBCASE("x only") { expect_ad([&](auto x) { return dp::rms_norm(x, Var<double, 1>(g), 1e-3); }, x); }
  SUBCASE("gamma only") { expect_ad([&](auto g) { return dp::rms_norm(Var<double, 3>(x), g); }, g); }
  SUBCASE("rank 1, 33 columns") {
    expect_ad([](auto x, auto g) { return dp::rms_norm(x, g); }, random_tensor<double, 1>({33}, 53),
              random_tensor<double, 1>({33}, 54));
  }
}

TEST_CASE("layer_norm, rms_norm: PyTorch parity (torch.nn.LayerNorm, T5LayerNorm)") {
  auto j = fixture("norm.json");
  const Shape<3> shape{2, 2, 6};
  const Shape<1> cshape{6};
  auto run = [&]<class T>(T, double tol) {
    INFO(std::string(sizeof(T) == 4 ? "float" : "double"));
    const auto dy = from_json<T>(j["dy"], shape);
    const T ln_eps = j["ln_eps"].get<double>(), rms_eps = j["rms_eps"].get<double>();
    auto want = [&](const char* op, const char* what, const auto& s) { return from_json<double>(j[op][what], s); };
    {
      Parameter<T, 3> x("x", from_json<T>(j["x"], shape));
      Parameter<T, 1> g("g", from_json<T>(j["gamma"], cshape)), b("b", from_json<T>(j["beta"], cshape));
      auto y = dp::layer_norm(x.var(), g, b, ln_eps);
      CHECK(max_rel_err(y.value(), want("layer_norm", "y", shape)) < tol);
      y.backward(dy);
      CHECK(max_rel_err(x.grad(), want("layer_norm", "dx", shape)) < tol);
      CHECK(max_rel_err(g.grad(), want("layer_norm", "dgamma", cshape)) < tol);
      CHECK(max_rel_err(b.grad(), want("layer_norm", "dbeta", cshape)) < tol);
    }
    {
      Parameter<T, 3> x("x", from_json<T>(j["x"], shape));
      auto y = dp::layer_norm(x.var(), ln_eps);
      CHECK(max_rel_err(y.value(), want("layer_norm_plain", "y", shape)) < tol);
      y.backward(dy);
      CHECK(max_rel_err(x.grad(), want("layer_norm_plain", "dx", shape)) < tol);
    }
    {
      Parameter<T, 3> x("x", from_json<T>(j["x"], shape));
      Parameter<T, 1> g("g", from_json<T>(j["gamma"], cshape));
      auto y = dp::rms_norm(x.var(), g, rms_eps);
      CHECK(max_rel_err(y.value(), want("rms_norm", "y", shape)) < tol);
      y.backward(dy);
      CHECK(max_rel_err(x.grad(), want("rms_norm", "dx", shape)) < tol);
      CHECK(max_rel_err(g.grad(), want("rms_norm", "dgamma", cshape)) < tol);
    }
  };
  run(float{}, 1e-5);
  run(double{}, 1e-9);
}

TEST_CASE("layer_norm, rms_norm: errors name the op and the shapes") {
  Var<float, 3> x(Tensor<float, 3>::zeros({2, 3, 4}));
  Var<float, 1> g5(Tensor<float, 1>::zeros({5})), g4(Tensor<float, 1>::zeros({4}));
  CHECK_THROWS_WITH_AS(dp::layer_norm(x, g5, g4), "layer_norm: gamma must have the length of x's last axis; got (2, 3, 4) and (5)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(dp::layer_norm(x, g4, g5), "layer_norm: beta must have the length of x's last axis; got (2, 3, 4) and (5)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(dp::rms_norm(x, g5), "rms_norm: gamma must have the length of x's last axis; got (2, 3, 4) and (5)",
                       ShapeError);
  Var<float, 2> empty(Tensor<float, 2>::zeros({3, 0}));
  CHECK_THROWS_WITH_AS(dp::layer_norm(empty), doctest::Contains("layer_norm: the normalised (last) axis is empty; got x (3, 0)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(dp::layer_norm(x, -1.0f), doctest::Contains("eps must be >= 0"), Error);
}

TEST_CASE("layer_norm, rms_norm: nothing is recorded under NoGradGuard or for constants") {
  Parameter<double, 2> x("x", random_tensor<double, 2>({2, 3}, 3));
  Parameter<double, 1> g("g", random_tensor<double, 1>({3}, 4)), b("b", random_tensor<double, 1>({3}, 5));
  const auto before = tape().size();
  {
    NoGradGuard guard;
    CHECK(!dp::layer_norm(x.var(), g, b).requires_grad());
    CHECK(!dp::layer_norm(x.var()).requires_grad());
    CHECK(!dp::rms_norm(x.var(), g).requires_grad());
  }
  Var<double, 1> gc(g.value()), bc(b.value());
  CHECK(!dp::layer_norm(Var<double, 2>(x.value()), gc, bc).requires_grad());
  CHECK(!dp::rms_norm(Var<double, 2>(x.value()), gc).requires_grad());
  CHECK(tape().size() == before);
  CHECK(dp::layer_norm(Var<double, 2>(x.value()), gc, b).requires_grad());  // beta alone is enough
  CHECK(dp::rms_norm(Var<double, 2>(x.value()), g).requires_grad());
  CHECK(tape().size() == before + 2);
  tape().release();
}

}  // namespace test_ops_norm
