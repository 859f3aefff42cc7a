// ops/softmax.hpp: softmax and log_softmax over the last axis: values against plain loops
// (float), gradients against finite differences (double), PyTorch parity for log_softmax
// (tests/data/nn_ops/softmax.json), masked rows, and what gets recorded.
#include "deepprompt/ops/softmax.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "testing.hpp"

namespace test_ops_softmax {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

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

// plain-loop references over rows of `cols`
Tensor<double, 3> softmax_ref(const Tensor<float, 3>& x, bool log) {
  Tensor<double, 3> y(x.shape());
  const index_t cols = x.extent(2), rows = x.size() / cols;
  for (index_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    double m = -INFINITY, s = 0;
    for (index_t c = 0; c < cols; ++c) m = std::max(m, double(xr[c]));
    for (index_t c = 0; c < cols; ++c) s += std::exp(xr[c] - m);
    for (index_t c = 0; c < cols; ++c)
      y.data()[r * cols + c] = log ? xr[c] - m - std::log(s) : std::exp(xr[c] - m) / s;
  }
  return y;
}

}  // namespace

TEST_CASE("softmax, log_softmax: values against plain loops (float, rank 3)") {
  for (index_t cols : {1, 5, 16, 37}) {
    INFO("cols " << cols);
    auto x = random_tensor<float, 3>({2, 3, cols}, 5, -8, 8);
    auto y = dp::softmax(Var<float, 3>(x));
    auto ly = dp::log_softmax(Var<float, 3>(x));
    CHECK(dp_test::max_abs_diff(y.value(), softmax_ref(x, false)) < 1e-6);
    CHECK(dp_test::max_abs_diff(ly.value(), softmax_ref(x, true)) < 5e-6);
  }
}

TEST_CASE("softmax: large logits stay finite; a fully masked row gives zeros (log: -inf)") {
  const float inf = std::numeric_limits<float>::infinity();
  auto x = Tensor<float, 2>::from({2, 3}, {1000.f, 999.f, -inf, -inf, -inf, -inf});
  auto y = dp::softmax(Var<float, 2>(x)).value();
  CHECK(y(0, 0) == doctest::Approx(1 / (1 + std::exp(-1.0))));
  CHECK(y(0, 2) == 0.0f);
  for (int c = 0; c < 3; ++c) CHECK(y(1, c) == 0.0f);
  auto ly = dp::log_softmax(Var<float, 2>(x)).value();
  CHECK(ly(0, 1) == doctest::Approx(-1 - std::log1p(std::exp(-1.0))));
  CHECK(ly(1, 0) == -inf);
}

TEST_CASE("softmax, log_softmax: gradients against finite differences (double)") {
  expect_ad([](auto v) { return dp::softmax(v); }, random_tensor<double, 2>({3, 7}, 21, -3, 3));
  expect_ad([](auto v) { return dp::log_softmax(v); }, random_tensor<double, 2>({3, 7}, 22, -3, 3));
  expect_ad([](auto v) { return dp::softmax(v); }, random_tensor<double, 3>({2, 2, 19}, 23, -3, 3));
  expect_ad([](auto v) { return dp::log_softmax(v); }, random_tensor<double, 1>({5}, 24, -3, 3));
  expect_ad([](auto v) { return dp::log_softmax(dp::softmax(v)); }, random_tensor<double, 2>({2, 4}, 25));
}

TEST_CASE("log_softmax: PyTorch parity") {
  auto j = fixture("softmax.json");
  const Shape<2> shape{3, 5};
  auto run = [&]<class T>(T, double tol) {
    INFO(std::string(sizeof(T) == 4 ? "float" : "double"));
    Parameter<T, 2> p("x", from_json<T>(j["x"], shape));
    auto y = dp::log_softmax(p.var());
    CHECK(dp_test::max_abs_diff(y.value(), from_json<double>(j["log_softmax"]["y"], shape)) < tol);
    y.backward(from_json<T>(j["dy"], shape));
    CHECK(dp_test::max_abs_diff(p.grad(), from_json<double>(j["log_softmax"]["dx"], shape)) < tol);
  };
  run(float{}, 1e-5);
  run(double{}, 1e-9);
}

TEST_CASE("softmax: nothing is recorded under NoGradGuard or for constants") {
  Parameter<double, 2> p("p", random_tensor<double, 2>({2, 3}, 3));
  const auto before = tape().size();
  {
    NoGradGuard guard;
    CHECK(!dp::softmax(p.var()).requires_grad());
    CHECK(!dp::log_softmax(p.var()).requires_grad());
  }
  CHECK(!dp::softmax(Var<double, 2>(p.value())).requires_grad());
  CHECK(tape().size() == before);
  CHECK(dp::log_softmax(p.var()).requires_grad());
  CHECK(tape().size() == before + 1);
  tape().release();
}

}  // namespace test_ops_softmax
