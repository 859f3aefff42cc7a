// tasks/metrics: corpus BLEU as sacreBLEU computes it (13a tokenisation, exp smoothing).
// The two worked examples of sacreBLEU's README (quoted, with the n-gram counts derived by hand),
// hand-computed corner cases, then two fixtures of tests/fixtures/gen_metrics.py:
// tests/data/metrics/text.json (Python's `re` applying the mteval-v13a regexes to 400 random
// strings) and tests/data/metrics/bleu.json (NLTK's corpus_bleu with NIST smoothing on 60 random
// corpora; the generator explains why NLTK agrees with sacreBLEU there).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "deepprompt/tasks/metrics/bleu.hpp"

namespace test_tasks_metrics_bleu {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dm = deepprompt::metrics;
using json = nlohmann::json;

namespace {

json load_metrics(const std::string& name) {
  std::ifstream f(std::string(DEEPPROMPT_TEST_DATA) + "/metrics/" + name);
  REQUIRE_MESSAGE(f.good(), "missing tests/data/metrics/" << name << " (run tests/fixtures/gen_metrics.py)");
  return json::parse(f);
}

const std::vector<std::string> kSys{"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};

}  // namespace

TEST_CASE("bleu: 13a tokenisation") {
  CHECK(dm::tokenize_13a("Hello, world!") == "Hello , world !");
  CHECK(dm::tokenize_13a("It wasn't surprising.") == "It wasn't surprising .");  // ' stays
  CHECK(dm::tokenize_13a("1,000.5 and 3-4 but a-b") == "1,000.5 and 3 - 4 but a-b");
  CHECK(dm::tokenize_13a("&quot;Hi&quot; &amp; &lt;b&gt;") == "\" Hi \" & < b >");
  CHECK(dm::tokenize_13a("e.g. (x)") == "e . g . ( x )");
  CHECK(dm::tokenize_13a("line-\nbreak\nnext <skipped>  ") == "linebreak next");
  CHECK(dm::tokenize_13a("   ") == "");
  // Non-ASCII letters are [^0-9] too: "é." splits like "e.".
  CHECK(dm::tokenize_13a("caf\xC3\xA9. 5.") == "caf\xC3\xA9 . 5 .");
}

TEST_CASE("bleu: sacreBLEU README example, two references") {
  // BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
  // By hand: the hypotheses have 6, 4 and 7 tokens ("wasn't" is one), so 17/14/11/8 n-grams;
  // matches: seg 1 is a reference (6/5/4/3), seg 2 only "It" and "." (2/0/0/0), seg 3 "The man
  // had" + "bitten him ." unigrams (6/2/1/0) -> 14/7/5/3. Closest references: 6, 5, 7 -> 18.
  const std::vector<std::vector<std::string>> refs{
      {"The dog bit the man.", "The dog had bit the man."},
      {"It was not unexpected.", "No one was surprised."},
      {"The man bit him first.", "The man had bitten the dog."}};
  const auto b = dm::corpus_bleu(kSys, refs);
  CHECK(b.sys_len == 17);
  CHECK(b.ref_len == 18);
  CHECK(b.counts == std::array<double, 4>{14, 7, 5, 3});
  CHECK(b.totals == std::array<double, 4>{17, 14, 11, 8});
  CHECK(b.precisions[0] == doctest::Approx(100.0 * 14 / 17));
  CHECK(b.bp == doctest::Approx(std::exp(1.0 - 18.0 / 17.0)).epsilon(1e-15));
  const double expected = std::exp(1.0 - 18.0 / 17.0) *
                          std::pow((100.0 * 14 / 17) * (100.0 * 7 / 14) * (100.0 * 5 / 11) * (100.0 * 3 / 8), 0.25);
  CHECK(b.score == doctest::Approx(expected).epsilon(1e-13));
  CHECK(std::round(b.score * 100.0) / 100.0 == doctest::Approx(48.53));
}

TEST_CASE("bleu: sacreBLEU README example, variable number of references") {
  // BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19):
  // the first segment's first reference is "" and is skipped, so seg 1 only has "The dog had
  // bit the man ." (7 tokens): matches 6/4/2/1, totals 14/6/3/1 over the corpus.
  const std::vector<std::vector<std::string>> refs{
      {"", "The dog had bit the man."},
      {"It was not unexpected.", "No one was surprised."},
      {"The man bit him first.", "The man had bitten the dog."}};
  const auto b = dm::corpus_bleu(kSys, refs);
  CHECK(b.ref_len == 19);
  CHECK(b.counts == std::array<double, 4>{14, 6, 3, 1});
  CHECK(std::round(b.score * 100.0) / 100.0 == doctest::Approx(29.44));
  CHECK(std::round(b.bp * 1000.0) / 1000.0 == doctest::Approx(0.889));
}

TEST_CASE("bleu: exp smoothing, clipping and the closest reference length") {
  // hyp [a b c d] vs ref [a b x y]: 1-grams 2/4, 2-grams 1/3, 3-grams 0/2 -> 100 / (2 * 2),
  // 4-grams 0/1 -> 100 / (4 * 1); BP 1. Score = (50 * 33.3.. * 25 * 25)^(1/4).
  const double smoothed = std::pow(50.0 * (100.0 / 3.0) * 25.0 * 25.0, 0.25);
  auto b = dm::corpus_bleu({"a b c d"}, {{"a b x y"}});
  CHECK(b.precisions == std::array<double, 4>{50.0, 100.0 / 3.0, 25.0, 25.0});
  CHECK(b.score == doctest::Approx(smoothed).epsilon(1e-14));
  // Clipping by the maximum count over references: "the" x4 vs refs with 1 and 2 "the"s -> 2/4;
  // "the the" once in the second -> 1/3; then as above. Closest length to 4 among {2, 5} is 5:
  // BP = exp(1 - 5/4).
  b = dm::corpus_bleu({"the the the the"}, {{"the cat", "the the mat on it"}});
  CHECK(b.counts == std::array<double, 4>{2, 1, 0, 0});
  CHECK(b.ref_len == 5);
  CHECK(b.score == doctest::Approx(std::exp(-0.25) * smoothed).epsilon(1e-14));
  // A tie between reference lengths 3 and 5 for a 4-token hypothesis takes the shorter: BP 1.
  b = dm::corpus_bleu({"a b c d"}, {{"a b c", "a b c d e"}});
  CHECK(b.ref_len == 3);
  CHECK(b.score == doctest::Approx(100.0));
  // Perfect match.
  b = dm::corpus_bleu({"The cat sat on the mat."}, {{"The cat sat on the mat."}});
  CHECK(b.score == doctest::Approx(100.0));
  CHECK(b.bp == 1.0);
}

TEST_CASE("bleu: short, empty and unmatched hypotheses") {
  // Two tokens: no 3-grams at all, so the loop stops with precision 0 there and the score is
  // exp of a log floored at -9999999999: 0 (sacreBLEU without effective_order).
  auto b = dm::corpus_bleu({"the cat"}, {{"the cat sat"}});
  CHECK(b.precisions[0] == 100.0);
  CHECK(b.precisions[1] == 100.0);
  CHECK(b.precisions[2] == 0.0);
  CHECK(b.score == 0.0);
  CHECK(b.bp == doctest::Approx(std::exp(1.0 - 3.0 / 2.0)));
  // Empty hypothesis: sys_len 0, BP 0, score 0.
  b = dm::corpus_bleu({""}, {{"a b"}});
  CHECK(b.sys_len == 0);
  CHECK(b.bp == 0.0);
  CHECK(b.score == 0.0);
  // No match at any order: score 0, precisions 0 (sacreBLEU's early stop).
  b = dm::corpus_bleu({"w x y z"}, {{"a b c d"}});
  CHECK(b.score == 0.0);
  CHECK(b.precisions == std::array<double, 4>{0, 0, 0, 0});
  CHECK(b.totals == std::array<double, 4>{4, 3, 2, 1});
}

TEST_CASE("bleu: options and errors") {
  auto b = dm::corpus_bleu({"The Cat sat down"}, {{"the cat sat down"}});
  CHECK(b.score < 100.0);
  b = dm::corpus_bleu({"The Cat sat down"}, {{"the cat sat down"}}, {.lowercase = true});
  CHECK(b.score == doctest::Approx(100.0));
  // tokenize="none": "down." stays one token, so only 3 of 4 unigrams match.
  b = dm::corpus_bleu({"the cat sat down."}, {{"the cat sat down ."}}, {.tokenize_13a = false});
  CHECK(b.counts[0] == 3.0);
  // smooth_method="none": a missing order gives score 0.
  b = dm::corpus_bleu({"a b c d"}, {{"a b x y"}}, {.smoothing = dm::BleuSmoothing::none});
  CHECK(b.score == 0.0);
  // "floor" (0.1): the 3- and 4-gram precisions are 100 * 0.1 / total.
  b = dm::corpus_bleu({"a b c d"}, {{"a b x y"}}, {.smoothing = dm::BleuSmoothing::floor});
  CHECK(b.precisions[2] == doctest::Approx(5.0));
  CHECK(b.precisions[3] == doctest::Approx(10.0));
  // "add-k" (1): orders 2..4 get +1 on matches and totals: 2/4, 2/4, 1/3, 1/2.
  b = dm::corpus_bleu({"a b c d"}, {{"a b x y"}}, {.smoothing = dm::BleuSmoothing::add_k});
  CHECK(b.precisions[1] == doctest::Approx(50.0));
  CHECK(b.precisions[3] == doctest::Approx(50.0));
  CHECK_THROWS_AS(dm::corpus_bleu({"a"}, {}), deepprompt::Error);
  CHECK_THROWS_AS(dm::corpus_bleu({}, {}), deepprompt::Error);
  CHECK_THROWS_WITH_AS(dm::corpus_bleu({"a"}, {{"", ""}}), doctest::Contains("no non-empty reference"),
                       deepprompt::Error);
}

TEST_CASE("bleu: 13a tokenisation against Python's re (fixture)") {
  const json data = load_metrics("text.json");
  REQUIRE(data["strings"].size() >= 300);
  for (const auto& c : data["strings"]) {
    CAPTURE(c["text"].dump());
    CHECK(dm::tokenize_13a(c["text"].get<std::string>()) == c["tok_13a"].get<std::string>());
  }
}

TEST_CASE("bleu: corpus BLEU against NLTK with NIST smoothing (fixture)") {
  const json data = load_metrics("bleu.json");
  REQUIRE(data.size() >= 50);
  for (const auto& c : data) {
    CAPTURE(c.dump());
    const auto b = dm::corpus_bleu(c["hypotheses"].get<std::vector<std::string>>(),
                                   c["references"].get<std::vector<std::vector<std::string>>>());
    CHECK(b.sys_len == c["sys_len"].get<std::size_t>());
    CHECK(b.ref_len == c["ref_len"].get<std::size_t>());
    CHECK(b.counts == c["counts"].get<std::array<double, 4>>());
    CHECK(b.totals == c["totals"].get<std::array<double, 4>>());
    CHECK(b.score == doctest::Approx(c["score"].get<double>()).epsilon(1e-11));
  }
}

}  // namespace test_tasks_metrics_bleu
