// tasks/metrics: classification (accuracy, macro-F1, binary F1, MCC) and regression (Pearson,
// Spearman) metrics. Hand-computed cases and the examples of scikit-learn's documentation, then
// tests/data/metrics/classification.json: sklearn 1.2 / scipy 1.10 on 160 random label pairs and
// 100 random score pairs (tests/fixtures/gen_metrics.py), matched to 1e-12.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "deepprompt/tasks/metrics/classification.hpp"
#include "deepprompt/tasks/metrics/regression.hpp"

namespace test_tasks_metrics_classification {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dm = deepprompt::metrics;
using json = nlohmann::json;

namespace {

json load_metrics(const std::string& name) {
  std::ifstream f(std::string(DEEPPROMPT_TEST_DATA) + "/metrics/" + name);
  REQUIRE_MESSAGE(f.good(), "missing tests/data/metrics/" << name << " (run tests/fixtures/gen_metrics.py)");
  return json::parse(f);
}

}  // namespace

TEST_CASE("metrics: accuracy and macro-F1 on sklearn's f1_score example") {
  // sklearn f1_score docstring: y_true = [0, 1, 2, 0, 1, 2], y_pred = [0, 2, 1, 0, 0, 1]
  // -> macro 0.26666..., per class [0.8, 0, 0]. By hand: class 0 has tp 2, fp 1, fn 0, so
  // P = 2/3, R = 1, F1 = 0.8; classes 1 and 2 have no true positive. Accuracy: 2 of 6 right.
  const std::vector<int> y_true{0, 1, 2, 0, 1, 2}, y_pred{0, 2, 1, 0, 0, 1};
  CHECK(dm::macro_f1(y_true, y_pred) == doctest::Approx(0.8 / 3.0).epsilon(1e-15));
  CHECK(dm::accuracy(y_true, y_pred) == doctest::Approx(1.0 / 3.0).epsilon(1e-15));
  std::vector<int> labels;
  const auto counts = dm::class_counts(y_true, y_pred, &labels);
  CHECK(labels == std::vector<int>{0, 1, 2});
  CHECK(counts[0].f1() == doctest::Approx(0.8));
  CHECK(counts[1].tp == 0);
  CHECK(counts[1].fp == 2);  // two 1s predicted for true 2s
  CHECK(counts[1].fn == 2);
}

TEST_CASE("metrics: macro-F1 averages over labels found only in y_pred (zero division -> 0)") {
  // y_true = [0, 0], y_pred = [0, 1]: class 0 P = 1, R = 1/2, F1 = 2/3; class 1 (predicted,
  // never true) P = 0, R undefined -> 0, F1 0. Macro = 1/3, as sklearn with zero_division=0.
  const std::vector<int> y_true{0, 0}, y_pred{0, 1};
  CHECK(dm::macro_f1(y_true, y_pred) == doctest::Approx(1.0 / 3.0).epsilon(1e-15));
}

TEST_CASE("metrics: string labels and binary F1") {
  // pos: tp 1, fp 1, fn 0 -> P 1/2, R 1, F1 2/3; neg: tp 1, fp 0, fn 1 -> F1 2/3.
  const std::vector<std::string> y_true{"pos", "neg", "neg"}, y_pred{"pos", "pos", "neg"};
  CHECK(dm::macro_f1(y_true, y_pred) == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(dm::binary_f1(y_true, y_pred, std::string("pos")) == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(dm::accuracy(y_true, y_pred) == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  // No positive anywhere: F1 is 0 (sklearn's zero_division=0), not an error.
  const std::vector<int> zeros{0, 0, 0};
  CHECK(dm::binary_f1(zeros, zeros, 1) == 0.0);
  // sklearn f1_score([0, 1, 1, 0], [0, 1, 0, 0]) = 2/3: tp 1, fp 0, fn 1.
  CHECK(dm::binary_f1(std::vector<int>{0, 1, 1, 0}, std::vector<int>{0, 1, 0, 0}, 1) ==
        doctest::Approx(2.0 / 3.0).epsilon(1e-15));
}

TEST_CASE("metrics: Matthews correlation") {
  // sklearn matthews_corrcoef docstring: [+1, +1, +1, -1] vs [+1, -1, +1, +1] -> -0.33...
  // By hand: t_sum = p_sum = [1, 3] (classes -1, +1), trace 2, n 4: (2*4 - 10) / sqrt(6 * 6).
  const std::vector<int> y_true{+1, +1, +1, -1}, y_pred{+1, -1, +1, +1};
  CHECK(dm::matthews_corrcoef(y_true, y_pred) == doctest::Approx(-1.0 / 3.0).epsilon(1e-15));
  CHECK(dm::matthews_corrcoef(y_true, y_true) == doctest::Approx(1.0));
  const std::vector<int> a{0, 1, 0, 1}, b{1, 0, 1, 0};
  CHECK(dm::matthews_corrcoef(a, b) == doctest::Approx(-1.0));
  // A constant prediction makes the denominator 0: sklearn returns 0.
  CHECK(dm::matthews_corrcoef(a, std::vector<int>{1, 1, 1, 1}) == 0.0);
  // Multi-class: y_true [0,1,2,0,1,2], y_pred [0,2,1,0,0,1]: t = [2,2,2], p = [3,2,1], trace 2,
  // n 6: cov_ytyp = 2*6 - (6+4+2) = 0 -> 0.
  CHECK(dm::matthews_corrcoef(std::vector<int>{0, 1, 2, 0, 1, 2}, std::vector<int>{0, 2, 1, 0, 0, 1}) == 0.0);
}

TEST_CASE("metrics: classification input errors") {
  const std::vector<int> two{0, 1}, three{0, 1, 2}, none;
  CHECK_THROWS_AS(dm::accuracy(two, three), deepprompt::Error);
  CHECK_THROWS_AS(dm::macro_f1(two, three), deepprompt::Error);
  CHECK_THROWS_AS(dm::matthews_corrcoef(three, two), deepprompt::Error);
  CHECK_THROWS_AS(dm::binary_f1(two, three, 1), deepprompt::Error);
  CHECK_THROWS_AS(dm::accuracy(none, none), deepprompt::Error);
  CHECK_THROWS_WITH_AS(dm::macro_f1(two, three), doctest::Contains("y_pred has 3"), deepprompt::Error);
}

TEST_CASE("metrics: Pearson and Spearman by hand") {
  // x = [1,2,3], y = [2,4,7]: centred x = [-1,0,1], y = [-7/3,-1/3,8/3]; dot 5,
  // |x| = sqrt 2, |y| = sqrt(114)/3 -> r = 15 / sqrt(228).
  const std::vector<double> x{1, 2, 3}, y{2, 4, 7};
  CHECK(dm::pearson(x, y) == doctest::Approx(15.0 / std::sqrt(228.0)).epsilon(1e-14));
  // Ranks with a tie: x = [1,2,2,3] -> [1, 2.5, 2.5, 4]; y = [1,3,2,4] -> [1,3,2,4].
  // Centred: [-1.5,0,0,1.5] and [-1.5,.5,-.5,1.5]; dot 4.5 / (sqrt 4.5 * sqrt 5) = sqrt 0.9.
  const std::vector<double> xs{1, 2, 2, 3}, ys{1, 3, 2, 4};
  CHECK(dm::average_ranks(xs) == std::vector<double>{1.0, 2.5, 2.5, 4.0});
  CHECK(dm::spearman(xs, ys) == doctest::Approx(std::sqrt(0.9)).epsilon(1e-14));
  // Monotone but not linear: Spearman 1, Pearson below 1.
  const std::vector<double> m{1, 2, 3, 4}, sq{1, 4, 9, 16};
  CHECK(dm::spearman(m, sq) == doctest::Approx(1.0));
  CHECK(dm::pearson(m, sq) < 0.99);
  // Two points: scipy returns the sign of the slope.
  CHECK(dm::pearson(std::vector<double>{1, 2}, std::vector<double>{3, 1}) == -1.0);
  // Constant input: NaN, as scipy (which also warns).
  CHECK(std::isnan(dm::pearson(m, std::vector<double>{2, 2, 2, 2})));
  CHECK(std::isnan(dm::spearman(std::vector<double>{5, 5, 5, 5}, m)));
  CHECK_THROWS_AS(dm::pearson(std::vector<double>{1}, std::vector<double>{1}), deepprompt::Error);
  CHECK_THROWS_AS(dm::spearman(m, x), deepprompt::Error);
}

TEST_CASE("metrics: sklearn and scipy on random cases (fixture)") {
  const json data = load_metrics("classification.json");
  REQUIRE(data["labels"].size() >= 100);
  int binary_cases = 0;
  for (const auto& c : data["labels"]) {
    const auto y_true = c["y_true"].get<std::vector<int>>();
    const auto y_pred = c["y_pred"].get<std::vector<int>>();
    CAPTURE(c.dump());
    CHECK(dm::accuracy(y_true, y_pred) == doctest::Approx(c["accuracy"].get<double>()).epsilon(1e-12));
    CHECK(dm::macro_f1(y_true, y_pred) == doctest::Approx(c["macro_f1"].get<double>()).epsilon(1e-12));
    CHECK(dm::matthews_corrcoef(y_true, y_pred) == doctest::Approx(c["mcc"].get<double>()).epsilon(1e-12));
    if (c.contains("binary_f1")) {
      ++binary_cases;
      CHECK(dm::binary_f1(y_true, y_pred, 1) == doctest::Approx(c["binary_f1"].get<double>()).epsilon(1e-12));
    }
  }
  CHECK(binary_cases >= 30);
  REQUIRE(data["correlations"].size() >= 50);
  for (const auto& c : data["correlations"]) {
    const auto x = c["x"].get<std::vector<double>>(), y = c["y"].get<std::vector<double>>();
    CAPTURE(c.dump());
    CHECK(dm::pearson(x, y) == doctest::Approx(c["pearson"].get<double>()).epsilon(1e-12));
    CHECK(dm::spearman(x, y) == doctest::Approx(c["spearman"].get<double>()).epsilon(1e-12));
  }
}

}  // namespace test_tasks_metrics_classification
