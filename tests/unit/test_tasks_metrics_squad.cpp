// tasks/metrics: SQuAD exact match / token F1 (official v1.1 and v2.0 evaluation scripts).
// Hand-computed cases (arithmetic in the comments), then tests/data/metrics/text.json: what
// Python's own str.lower(), re.sub(r"\b(a|an|the)\b") (Unicode word boundaries) and str.split()
// make of 400 random strings under normalize_answer, and the scripts' EM / F1 formulas on 300
// random answer pairs (tests/fixtures/gen_metrics.py).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "deepprompt/tasks/metrics/squad.hpp"

namespace test_tasks_metrics_squad {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dm = deepprompt::metrics;
using json = nlohmann::json;

namespace {

json load_metrics(const std::string& name) {
  std::ifstream f(std::string(DEEPPROMPT_TEST_DATA) + "/metrics/" + name);
  REQUIRE_MESSAGE(f.good(), "missing tests/data/metrics/" << name << " (run tests/fixtures/gen_metrics.py)");
  return json::parse(f);
}

}  // namespace

TEST_CASE("squad: normalize_answer") {
  CHECK(dm::squad_normalize("The  Denver Broncos!") == "denver broncos");
  CHECK(dm::squad_normalize("an apple, a pear and the end") == "apple pear and end");
  // Punctuation goes before articles: "the_end" -> "theend" (no article left), "a.b" -> "ab".
  CHECK(dm::squad_normalize("the_end") == "theend");
  CHECK(dm::squad_normalize("a.b") == "ab");
  // Articles only as whole words; "then", "anthem", "Theater" stay.
  CHECK(dm::squad_normalize("then anthem Theater") == "then anthem theater");
  // Unicode: lower case of non-ASCII, curly quotes are not string.punctuation but are non-word
  // characters, so the "the" between them is an article; "é" is a word character.
  CHECK(dm::squad_normalize("\xC3\x9C-Bahn") == "\xC3\xBC" "bahn");                       // Ü-Bahn
  CHECK(dm::squad_normalize("\xE2\x80\x9Cthe\xE2\x80\x9D") == "\xE2\x80\x9C \xE2\x80\x9D");  // “the”
  CHECK(dm::squad_normalize("\xC3\xA9the") == "\xC3\xA9the");                             // éthe
  CHECK(dm::squad_normalize("") == "");
  CHECK(dm::squad_normalize(" the a an ") == "");
}

TEST_CASE("squad: exact match and token F1 of one answer") {
  CHECK(dm::squad_exact("Denver Broncos", "the denver broncos.") == 1.0);
  CHECK(dm::squad_exact("Denver", "Denver Broncos") == 0.0);
  // pred [denver, broncos, won] vs gold [denver, broncos]: 2 shared; P = 2/3, R = 1,
  // F1 = 2 * (2/3) / (5/3) = 0.8.
  CHECK(dm::squad_f1_v1("Denver Broncos won", "the Denver Broncos") == doctest::Approx(0.8).epsilon(1e-15));
  // Repeated tokens count as a multiset: [b, b] vs [b] share 1 token: P 1/2, R 1 -> F1 2/3.
  CHECK(dm::squad_f1_v1("b b", "b") == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  // v1.1: nothing shared -> 0, also when both are empty; v2.0: both empty -> 1, one empty -> 0.
  CHECK(dm::squad_f1_v1("", "") == 0.0);
  CHECK(dm::squad_f1_v2("", "") == 1.0);
  CHECK(dm::squad_f1_v2("the", "") == 1.0);  // "the" normalises to nothing
  CHECK(dm::squad_f1_v2("Denver", "") == 0.0);
  CHECK(dm::squad_f1_v2("", "Denver") == 0.0);
  CHECK(dm::squad_exact("", "") == 1.0);
}

TEST_CASE("squad: v1.1 dataset scores take the best gold answer") {
  // q1: "Denver Broncos" matches the first gold exactly: EM 1, F1 1.
  // q2: "Carolina" vs "Carolina Panthers": EM 0, F1 = 2 * 1 * (1/2) / (3/2) = 2/3.
  // exact = 100 * 1/2 = 50; f1 = 100 * (1 + 2/3) / 2 = 83.33...
  const auto s = dm::squad_v1({"Denver Broncos", "Carolina"},
                              {{"Denver Broncos", "The Denver Broncos"}, {"Carolina Panthers"}});
  CHECK(s.exact == doctest::Approx(50.0).epsilon(1e-15));
  CHECK(s.f1 == doctest::Approx(100.0 * (1.0 + 2.0 / 3.0) / 2.0).epsilon(1e-15));
  CHECK(s.total == 2);
  // The maximum is taken per metric: EM from one gold, F1 from another.
  const auto m = dm::squad_v1({"Broncos of Denver"}, {{"Denver", "Broncos of Denver city"}});
  CHECK(m.exact == 0.0);
  CHECK(m.f1 == doctest::Approx(100.0 * 2.0 * 1.0 * 0.75 / 1.75).epsilon(1e-15));  // 3 of 4 tokens
  CHECK_THROWS_AS(dm::squad_v1({"x"}, {{}}), deepprompt::Error);  // v1.1 needs a gold answer
  CHECK_THROWS_AS(dm::squad_v1({"x", "y"}, {{"x"}}), deepprompt::Error);
  CHECK_THROWS_AS(dm::squad_v1({}, {}), deepprompt::Error);
}

TEST_CASE("squad: v2.0 no-answer questions and the HasAns / NoAns split") {
  // q1 (has answer): "Denver" vs "Denver Broncos": EM 0, F1 2/3.
  // q2 (no answer): prediction "" -> EM 1, F1 1.
  // q3 (no answer): prediction "something" -> 0, 0.
  // q4: gold ["the"] is a non-empty list (HasAns) whose only answer normalises to "", so it is
  //     scored against "" as well: prediction "" -> 1, 1.
  const auto s = dm::squad_v2({"Denver", "", "something", ""}, {{"Denver Broncos"}, {}, {}, {"the"}});
  CHECK(s.all.total == 4);
  CHECK(s.all.exact == doctest::Approx(50.0).epsilon(1e-15));
  CHECK(s.all.f1 == doctest::Approx(100.0 * (2.0 / 3.0 + 1.0 + 0.0 + 1.0) / 4.0).epsilon(1e-15));
  CHECK(s.has_ans.total == 2);
  CHECK(s.has_ans.exact == doctest::Approx(50.0).epsilon(1e-15));
  CHECK(s.has_ans.f1 == doctest::Approx(100.0 * (2.0 / 3.0 + 1.0) / 2.0).epsilon(1e-15));
  CHECK(s.no_ans.total == 2);
  CHECK(s.no_ans.exact == doctest::Approx(50.0).epsilon(1e-15));
  CHECK(s.no_ans.f1 == doctest::Approx(50.0).epsilon(1e-15));
  // Only answerable questions: NoAns stays empty (the script leaves those keys out).
  const auto a = dm::squad_v2({"Denver Broncos"}, {{"Denver Broncos"}});
  CHECK(a.no_ans.total == 0);
  CHECK(a.no_ans.exact == 0.0);
  CHECK(a.all.exact == 100.0);
  CHECK_THROWS_AS(dm::squad_v2({"a"}, {}), deepprompt::Error);
}

TEST_CASE("squad: normalize_answer and the scripts' EM / F1 against Python (fixture)") {
  const json data = load_metrics("text.json");
  REQUIRE(data["strings"].size() >= 300);
  for (const auto& c : data["strings"]) {
    CAPTURE(c["text"].dump());
    CHECK(dm::squad_normalize(c["text"].get<std::string>()) == c["squad"].get<std::string>());
  }
  REQUIRE(data["squad_pairs"].size() >= 200);
  for (const auto& c : data["squad_pairs"]) {
    const auto pred = c["pred"].get<std::string>(), gold = c["gold"].get<std::string>();
    CAPTURE(pred);
    CAPTURE(gold);
    CHECK(dm::squad_exact(pred, gold) == c["exact"].get<double>());
    CHECK(dm::squad_f1_v1(pred, gold) == doctest::Approx(c["f1_v1"].get<double>()).epsilon(1e-15));
    CHECK(dm::squad_f1_v2(pred, gold) == doctest::Approx(c["f1_v2"].get<double>()).epsilon(1e-15));
  }
}

}  // namespace test_tasks_metrics_squad
