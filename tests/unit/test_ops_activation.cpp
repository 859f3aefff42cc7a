// ops/activation.hpp: values against plain loops (float), gradients against finite differences
// (double), PyTorch parity for gelu and gelu_tanh (tests/data/nn_ops/activation.json), and what
// gets recorded.
#include "deepprompt/ops/activation.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testing.hpp"

namespace test_ops_activation {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

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

// max over elements of |got - want| / max(1, |want|)
template <class T, std::size_t R>
double max_rel_err(const Tensor<T, R>& got, const Tensor<double, R>& want) {
  double m = 0;
  for (index_t i = 0; i < got.size(); ++i)
    m = std::max(m, std::abs(double(got.data()[i]) - want.data()[i]) / std::max(1.0, std::abs(want.data()[i])));
  return m;
}

double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

template <class F, class Ref>
void check_values(F f, Ref ref, double lo, double hi) {
  auto x = random_tensor<float, 3>({2, 3, 37}, 7, lo, hi);  // a SIMD body and a padded tail
  auto y = f(Var<float, 3>(x));
  REQUIRE(y.shape() == x.shape());
  CHECK(!y.requires_grad());
  Tensor<double, 3> want(x.shape());
  for (index_t i = 0; i < x.size(); ++i) want.data()[i] = ref(double(x.data()[i]));
  CHECK(max_rel_err(y.value(), want) < 2e-6);
}

}  // namespace

TEST_CASE("activations: values against plain loops (float, rank 3)") {
  check_values([](auto x) { return dp::gelu(x); }, gelu_ref, -6, 6);
  check_values([](auto x) { return dp::gelu_tanh(x); }, gelu_tanh_ref, -6, 6);
  check_values([](auto x) { return dp::relu(x); }, [](double v) { return v > 0 ? v : 0.0; }, -2, 2);
  check_values([](auto x) { return dp::tanh(x); }, [](double v) { return std::tanh(v); }, -5, 5);
  check_values([](auto x) { return dp::sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, -10, 10);
  check_values([](auto x) { return dp::exp(x); }, [](double v) { return std::exp(v); }, -5, 5);
}

TEST_CASE("activations: any rank, including 0") {
  auto s = dp::sigmoid(Var<float, 0>(Tensor<float, 0>::full({}, 0.0f)));
  CHECK(s.value().item() == 0.5f);
  auto r = dp::relu(Var<double, 1>(Tensor<double, 1>::from({3}, {-1.0, 0.0, 2.0})));
  CHECK(r.value()(0) == 0.0);
  CHECK(r.value()(2) == 2.0);
  auto e = dp::exp(Var<float, 4>(Tensor<float, 4>::zeros({1, 2, 1, 3})));
  CHECK(e.value()(0, 1, 0, 2) == 1.0f);
}

TEST_CASE("activations: gradients against finite differences (double)") {
  auto x = random_tensor<double, 2>({3, 7}, 11, -3, 3);
  expect_ad([](auto v) { return dp::gelu(v); }, x);
  expect_ad([](auto v) { return dp::gelu_tanh(v); }, x);
  expect_ad([](auto v) { return dp::relu(v); }, x);
  expect_ad([](auto v) { return dp::tanh(v); }, x);
  expect_ad([](auto v) { return dp::sigmoid(v); }, x);
  expect_ad([](auto v) { return dp::exp(v); }, x);
  // a Var used twice through two activations, rank 3
  expect_ad([](auto v) { return dp::tanh(dp::gelu(v)); }, random_tensor<double, 3>({2, 2, 5}, 12, -2, 2));
}

TEST_CASE("relu: the gradient at exactly 0 is 0, as PyTorch") {
  Parameter<double, 1> a("a", Tensor<double, 1>::from({3}, {-1.0, 0.0, 2.0}));
  dp::relu(a.var()).backward(Tensor<double, 1>::full({3}, 1.0));
  CHECK(a.grad()(0) == 0.0);
  CHECK(a.grad()(1) == 0.0);
  CHECK(a.grad()(2) == 1.0);
}

TEST_CASE("activations: PyTorch parity (gelu erf and tanh forms)") {
  auto j = fixture("activation.json");
  const Shape<2> shape{3, 4};
  auto run = [&]<class T>(T, double tol) {
    const auto x = from_json<T>(j["x"], shape);
    const auto dy = from_json<T>(j["dy"], shape);
    for (const char* name : {"gelu", "gelu_tanh"}) {
      INFO(name << " in " << (sizeof(T) == 4 ? "float" : "double"));
      Parameter<T, 2> p("x", x.clone());
      auto y = std::string(name) == "gelu" ? dp::gelu(p.var()) : dp::gelu_tanh(p.var());
      CHECK(dp_test::max_abs_diff(y.value(), from_json<double>(j[name]["y"], shape)) < tol);
      y.backward(dy);
      CHECK(dp_test::max_abs_diff(p.grad(), from_json<double>(j[name]["dx"], shape)) < tol);
    }
  };
  run(float{}, 1e-5);
  run(double{}, 1e-9);
}

TEST_CASE("activations: nothing is recorded under NoGradGuard or for constants") {
  Parameter<double, 2> p("p", random_tensor<double, 2>({2, 3}, 3));
  const auto before = tape().size();
  {
    NoGradGuard guard;
    auto y = dp::exp(dp::sigmoid(dp::gelu(p.var())));
    CHECK(!y.requires_grad());
  }
  auto c = dp::tanh(dp::relu(Var<double, 2>(p.value())));
  CHECK(!c.requires_grad());
  CHECK(tape().size() == before);
  auto r = dp::gelu_tanh(p.var());
  CHECK(r.requires_grad());
  CHECK(tape().size() == before + 1);
  tape().release();
}

}  // namespace test_ops_activation
