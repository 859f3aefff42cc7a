// ops/cross_entropy.hpp: the mean cross-entropy against a plain loop (float), gradients against
// finite differences (double) with ignore_index and label smoothing, PyTorch parity
// (tests/data/nn_ops/cross_entropy.json, including the all-ignored NaN case), rank-3 logits,
// errors, and what gets recorded.
#include "deepprompt/ops/cross_entropy.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testing.hpp"

namespace test_ops_cross_entropy {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

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

Tensor<std::int64_t, 1> targets_of(std::initializer_list<std::int64_t> v) {
  return Tensor<std::int64_t, 1>::from({static_cast<index_t>(v.size())}, v);
}

// The definition, by plain loops: log-softmax per row, then the smoothed NLL of kept rows over
// their count.
double cross_entropy_ref(const Tensor<float, 2>& z, const Tensor<std::int64_t, 1>& t, std::int64_t ignore, double eps) {
  const index_t n = z.extent(0), c = z.extent(1);
  double total = 0;
  index_t kept = 0;
  for (index_t i = 0; i < n; ++i) {
    if (t(i) == ignore) continue;
    double m = -INFINITY, s = 0, sum_logp = 0;
    for (index_t k = 0; k < c; ++k) m = std::max(m, double(z(i, k)));
    for (index_t k = 0; k < c; ++k) s += std::exp(z(i, k) - m);
    const double lse = m + std::log(s);
    for (index_t k = 0; k < c; ++k) sum_logp += z(i, k) - lse;
    total += -(1 - eps) * (z(i, t(i)) - lse) - eps / c * sum_logp;
    ++kept;
  }
  return total / kept;
}

}  // namespace

TEST_CASE("cross_entropy: values against a plain loop (float)") {
  auto z = random_tensor<float, 2>({6, 37}, 81, -4, 4);
  const auto t = targets_of({3, -100, 36, 0, 17, -100});
  for (double eps : {0.0, 0.1, 1.0}) {
    INFO("label_smoothing " << eps);
    auto loss = dp::cross_entropy(Var<float, 2>(z), t, -100, eps);
    static_assert(std::is_same_v<decltype(loss), Var<float, 0>>);
    CHECK(loss.value().item() == doctest::Approx(cross_entropy_ref(z, t, -100, eps)).epsilon(1e-6));
    // ignore_index as an ordinary class: rows with target 3 are skipped, -100 would now throw
    const auto t2 = targets_of({3, 5, 36, 0, 3, 1});
    auto loss2 = dp::cross_entropy(Var<float, 2>(z), t2, 3, eps);
    CHECK(loss2.value().item() == doctest::Approx(cross_entropy_ref(z, t2, 3, eps)).epsilon(1e-6));
  }
}

TEST_CASE("cross_entropy: (B, T, C) logits with (B, T) targets equal the flattened (B*T, C) case") {
  auto z = random_tensor<float, 3>({2, 3, 11}, 82, -3, 3);
  auto t = Tensor<std::int64_t, 2>::from({2, 3}, {1, -100, 10, 0, 4, 4});
  auto flat = dp::cross_entropy(Var<float, 2>(z.reshape<2>({6, 11})), t.reshape<1>({6}), -100, 0.2f);
  auto seq = dp::cross_entropy(Var<float, 3>(z), t, -100, 0.2f);
  CHECK(seq.value().item() == flat.value().item());
  expect_ad([&](auto v) { return dp::cross_entropy(v, t, -100, 0.2); }, random_tensor<double, 3>({2, 3, 11}, 83, -3, 3));
}

TEST_CASE("cross_entropy: gradients against finite differences for every option (double)") {
  const auto z = random_tensor<double, 2>({5, 9}, 84, -3, 3);
  const auto t = targets_of({4, 0, 8, 2, 4});
  const auto t_ign = targets_of({4, -100, 8, -100, 4});
  expect_ad([&](auto v) { return dp::cross_entropy(v, t); }, z);
  expect_ad([&](auto v) { return dp::cross_entropy(v, t_ign); }, z);
  expect_ad([&](auto v) { return dp::cross_entropy(v, t, -100, 0.1); }, z);
  expect_ad([&](auto v) { return dp::cross_entropy(v, t_ign, -100, 0.3); }, z);
  expect_ad([&](auto v) { return dp::cross_entropy(v, t, 4, 0.25); }, z);  // an in-range ignore_index
  expect_ad([&](auto v) { return dp::cross_entropy(v, t_ign, -100, 1.0); }, z);
  expect_ad([&](auto v) { return dp::cross_entropy(v, targets_of({0})); }, random_tensor<double, 2>({1, 40}, 85));
}

TEST_CASE("cross_entropy: PyTorch parity (ignore_index, label_smoothing, all ignored)") {
  auto j = fixture("cross_entropy.json");
  auto run = [&]<class T>(T, double tol) {
    INFO(std::string(sizeof(T) == 4 ? "float" : "double"));
    const auto logits = from_json<T>(j["logits"], Shape<2>{6, 4});
    for (const auto& c : j["cases"]) {
      INFO("case " << c.dump().substr(0, 90));
      auto tv = c["targets"].get<std::vector<std::int64_t>>();
      const auto t = Tensor<std::int64_t, 1>::from({6}, std::span<const std::int64_t>(tv));
      const std::int64_t ignore = c["ignore_index"];
      const T eps = c["label_smoothing"].get<double>();
      Tensor<T, 0> loss;
      Tensor<T, 2> grad;
      if (c["shape"].size() == 3) {  // (2, 3, 4) logits, (2, 3) targets
        Parameter<T, 3> p("z", logits.clone().template reshape<3>({2, 3, 4}));
        auto l = dp::cross_entropy(p.var(), t.reshape<2>({2, 3}), ignore, eps);
        loss = l.value().clone();
        l.backward();
        grad = p.grad().template reshape<2>({6, 4});
      } else {
        Parameter<T, 2> p("z", logits.clone());
        auto l = dp::cross_entropy(p.var(), t, ignore, eps);
        loss = l.value().clone();
        l.backward();
        grad = p.grad().clone();
      }
      if (c["loss"].is_null()) {
        CHECK(std::isnan(loss.item()));  // every target ignored: 0/0, as torch
      } else {
        CHECK(std::abs(double(loss.item()) - c["loss"].get<double>()) < tol);
      }
      CHECK(dp_test::max_abs_diff(grad, from_json<double>(c["grad"], Shape<2>{6, 4})) < tol);
    }
  };
  run(float{}, 1e-5);
  run(double{}, 1e-9);
}

TEST_CASE("cross_entropy: errors name the op, the shapes, the target and its position") {
  Var<float, 2> z(Tensor<float, 2>::zeros({4, 3}));
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z, targets_of({0, 1, 2, 0, 1})),
                       "cross_entropy: targets must have the shape of logits without the class axis; got (4, 3) and (5)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z, targets_of({0, 1, 3, 0})),
                       "cross_entropy: target 3 at position (2) of targets (4) is out of range for C = 3 classes (and is "
                       "not ignore_index = -100)",
                       Error);
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z, targets_of({0, -1, 2, 0})), doctest::Contains("target -1 at position (1)"),
                       Error);
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z, targets_of({0, -100, 2, 0}), 2), doctest::Contains("target -100"), Error);
  Var<float, 3> z3(Tensor<float, 3>::zeros({2, 2, 3}));
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z3, Tensor<std::int64_t, 2>::from({2, 2}, {0, 1, 2, 9})),
                       doctest::Contains("target 9 at position (1, 1) of targets (2, 2)"), Error);
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z3, Tensor<std::int64_t, 2>::zeros({2, 3})),
                       doctest::Contains("got (2, 2, 3) and (2, 3)"), ShapeError);
  CHECK_THROWS_WITH_AS(dp::cross_entropy(z, targets_of({0, 1, 2, 0}), -100, 1.5f),
                       doctest::Contains("label_smoothing must be in [0, 1], got 1.5"), Error);
}

TEST_CASE("cross_entropy: all targets ignored gives NaN and a zero gradient, as torch") {
  Parameter<double, 2> p("z", random_tensor<double, 2>({3, 4}, 86));
  for (double eps : {0.0, 0.5}) {
    auto l = dp::cross_entropy(p.var(), targets_of({-100, -100, -100}), -100, eps);
    CHECK(std::isnan(l.value().item()));
    l.backward();
    for (index_t i = 0; i < p.size(); ++i) CHECK(p.grad().data()[i] == 0.0);
  }
  auto empty = dp::cross_entropy(Var<double, 2>(Tensor<double, 2>::zeros({0, 4})), Tensor<std::int64_t, 1>({0}));
  CHECK(std::isnan(empty.value().item()));
}

TEST_CASE("cross_entropy: nothing is recorded under NoGradGuard or for constants") {
  Parameter<double, 2> p("z", random_tensor<double, 2>({2, 3}, 3));
  const auto t = targets_of({0, 2});
  const auto before = tape().size();
  {
    NoGradGuard guard;
    auto l = dp::cross_entropy(p.var(), t);
    CHECK(!l.requires_grad());
    CHECK(std::isfinite(l.value().item()));
  }
  CHECK(!dp::cross_entropy(Var<double, 2>(p.value()), t).requires_grad());
  CHECK(tape().size() == before);
  CHECK(dp::cross_entropy(p.var(), t).requires_grad());
  CHECK(tape().size() == before + 1);
  tape().release();
}

}  // namespace test_ops_cross_entropy
