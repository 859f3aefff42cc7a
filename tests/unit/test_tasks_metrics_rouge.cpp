// tasks/metrics: ROUGE-L (rouge_score, no stemming) and perplexity. The example of rouge_score's
// README (its numbers quoted, the LCS worked out by hand), hand-computed cases, and
// tests/data/metrics/text.json: rouge_score's tokenizer regexes applied by Python's own `re` and
// str.lower() to 400 random strings (tests/fixtures/gen_metrics.py).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "deepprompt/tasks/metrics/perplexity.hpp"
#include "deepprompt/tasks/metrics/rouge.hpp"

namespace test_tasks_metrics_rouge {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dm = deepprompt::metrics;
using json = nlohmann::json;

namespace {

json load_metrics(const std::string& name) {
  std::ifstream f(std::string(DEEPPROMPT_TEST_DATA) + "/metrics/" + name);
  REQUIRE_MESSAGE(f.good(), "missing tests/data/metrics/" << name << " (run tests/fixtures/gen_metrics.py)");
  return json::parse(f);
}

}  // namespace

TEST_CASE("rouge: README example") {
  // scorer.score('The quick brown fox jumps over the lazy dog', 'The quick brown dog jumps on
  // the log.') -> rougeL Score(precision=0.625, recall=0.5555555555555556,
  // fmeasure=0.5882352941176471). By hand: LCS "the quick brown jumps the" = 5 of 8 prediction
  // and 9 target tokens. (The README uses the stemmer, which changes no token here.)
  const auto s = dm::rouge_l("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.");
  CHECK(s.precision == doctest::Approx(0.625).epsilon(1e-15));
  CHECK(s.recall == doctest::Approx(5.0 / 9.0).epsilon(1e-15));
  CHECK(s.fmeasure == doctest::Approx(0.5882352941176471).epsilon(1e-15));
}

TEST_CASE("rouge: tokenizer and LCS") {
  CHECK(dm::rouge_tokenize("Hello, World! it's 2-3") == std::vector<std::string>{"hello", "world", "it", "s", "2", "3"});
  // Non-ASCII letters are separators, except where str.lower() gives ASCII: U+0130 -> "i" + a
  // combining dot, U+212A (Kelvin) -> "k".
  CHECK(dm::rouge_tokenize("caf\xC3\xA9 \xC4\xB0z \xE2\x84\xAA" "b") == std::vector<std::string>{"caf", "i", "z", "kb"});
  CHECK(dm::rouge_tokenize("").empty());
  CHECK(dm::lcs_length({"a", "b", "c", "d"}, {"b", "d", "a"}) == 2);
  CHECK(dm::lcs_length({}, {"a"}) == 0);
  // Identical up to case and punctuation: 1.
  CHECK(dm::rouge_l("Hello, world!", "hello world").fmeasure == 1.0);
  // Either side without tokens: all 0.
  CHECK(dm::rouge_l("some text", "").fmeasure == 0.0);
  CHECK(dm::rouge_l("!!!", "text").recall == 0.0);
  // No common token: 0.
  CHECK(dm::rouge_l("a b", "c d").fmeasure == 0.0);
  // target [a b c d e], prediction [a c e x]: LCS a c e = 3; P 3/4, R 3/5, F = 2/3.
  const auto s = dm::rouge_l("a b c d e", "a c e x");
  CHECK(s.precision == 0.75);
  CHECK(s.recall == 0.6);
  CHECK(s.fmeasure == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
}

TEST_CASE("rouge: several targets and the corpus mean") {
  // score_multi keeps the target with the best F: "a b" vs prediction "a b c" has P 2/3, R 1,
  // F 0.8; "x y" has 0.
  const auto m = dm::rouge_l(std::vector<std::string>{"x y", "a b"}, "a b c");
  CHECK(m.fmeasure == doctest::Approx(0.8).epsilon(1e-15));
  CHECK(m.recall == 1.0);
  CHECK_THROWS_AS(dm::rouge_l(std::vector<std::string>{}, "a"), deepprompt::Error);
  // Mean of 0.8 and 1.0.
  const auto mean = dm::mean_rouge_l({"a b c", "z"}, {{"x y", "a b"}, {"z"}});
  CHECK(mean.fmeasure == doctest::Approx(0.9).epsilon(1e-15));
  CHECK(mean.precision == doctest::Approx((2.0 / 3.0 + 1.0) / 2.0).epsilon(1e-15));
  CHECK_THROWS_AS(dm::mean_rouge_l({"a"}, {}), deepprompt::Error);
  CHECK_THROWS_AS(dm::mean_rouge_l({}, {}), deepprompt::Error);
}

TEST_CASE("rouge: tokenizer against Python's re (fixture)") {
  const json data = load_metrics("text.json");
  REQUIRE(data["strings"].size() >= 300);
  for (const auto& c : data["strings"]) {
    CAPTURE(c["text"].dump());
    CHECK(dm::rouge_tokenize(c["text"].get<std::string>()) == c["rouge"].get<std::vector<std::string>>());
  }
}

TEST_CASE("perplexity") {
  CHECK(dm::perplexity(0.0, 5) == 1.0);
  // Mean NLL ln 2 per token -> 2; a uniform model over 50 tokens -> 50.
  CHECK(dm::perplexity(10.0 * std::log(2.0), 10) == doctest::Approx(2.0).epsilon(1e-15));
  CHECK(dm::perplexity(7.0 * std::log(50.0), 7) == doctest::Approx(50.0).epsilon(1e-14));
  CHECK(std::isinf(dm::perplexity(1e6, 1)));
  CHECK_THROWS_AS(dm::perplexity(1.0, 0), deepprompt::Error);
  CHECK_THROWS_AS(dm::perplexity(std::numeric_limits<double>::quiet_NaN(), 3), deepprompt::Error);
}

}  // namespace test_tasks_metrics_rouge
