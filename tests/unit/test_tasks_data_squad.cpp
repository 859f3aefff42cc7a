// tasks/data/squad.hpp: SQuAD v1.1 / v2.0 JSON on the committed samples (XQuAD-en with exact
// offsets past non-ASCII text, the rebuilt v1.1 and v2.0 dev files), offset checks, malformed input.
#include <doctest/doctest.h>

#include <sstream>

#include "deepprompt/tasks/data/squad.hpp"

namespace test_tasks_data_squad {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using namespace deepprompt::data;
namespace fs = std::filesystem;
using doctest::Contains;

namespace {
const fs::path kSquad = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/squad";
const fs::path kBad = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/malformed";

std::size_t answers(const SquadDataset& ds) {
  std::size_t n = 0;
  for (const auto& e : squad_examples(ds)) n += e.answers.size();
  return n;
}

// One paragraph, one question, one answer.
std::string one(std::string_view context, std::string_view answer, int start) {
  return deepprompt::detail::cat(R"({"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": ")", context,
                                 R"(", "qas": [{"id": "q1", "question": "?", "answers": [{"text": ")", answer,
                                 R"(", "answer_start": )", start, "}]}]}]}]}");
}
}  // namespace

TEST_CASE("squad: XQuAD-en sample, answer_start in code points and byte_start in bytes") {
  const auto ds = read_squad(kSquad / "xquad_en/xquad.en.json");
  CHECK(ds.version == "1.1");
  REQUIRE(ds.articles.size() == 1);
  CHECK(ds.articles[0].title == "Super_Bowl_50");
  REQUIRE(ds.articles[0].paragraphs.size() == 2);
  CHECK(ds.stats.read == 30);
  CHECK(ds.stats.warnings.empty());
  CHECK(answers(ds) == 30);
  const auto& p0 = ds.articles[0].paragraphs[0];
  CHECK(p0.context.starts_with("The Panthers defense gave up just 308 points"));
  CHECK(p0.qas[0].id == "56beb4343aeaaa14008c925b");
  CHECK(p0.qas[0].answers[0].text == "308");
  CHECK(p0.qas[0].answers[0].answer_start == 34);
  CHECK(p0.qas[0].answers[0].byte_start == 34u);
  // Last question: "17" at code point 322, byte 326 (two en dashes before it).
  const auto& q = ds.articles[0].paragraphs[1].qas.back();
  CHECK(q.id == "56d99f99dc89441400fdb62c");
  CHECK(q.answers[0].answer_start == 322);
  REQUIRE(q.answers[0].byte_start == 326u);
  CHECK(ds.articles[0].paragraphs[1].context.substr(326, 2) == "17");
  CHECK(!q.is_impossible);
  const auto flat = squad_examples(ds);
  REQUIRE(flat.size() == 30);
  CHECK(flat[29].title == "Super_Bowl_50");
  CHECK(flat[29].context == ds.articles[0].paragraphs[1].context);
}

TEST_CASE("squad: rebuilt v1.1 and v2.0 dev samples") {
  const auto v1 = read_squad(kSquad / "squad_v1.1_dev/dev-v1.1.json");
  CHECK(v1.stats.read == 55);
  CHECK(answers(v1) == 165);
  CHECK(v1.stats.warnings.empty());  // the estimated offsets all point to their texts
  const auto& first = v1.articles[0].paragraphs[0].qas[0];
  CHECK(first.question == "Which NFL team represented the AFC at Super Bowl 50?");
  CHECK(first.answers.size() == 3);
  CHECK(first.answers[2].text == "Denver Broncos");
  CHECK(first.answers[2].answer_start == 177);
  const auto& last = v1.articles[0].paragraphs[1].qas.back();
  CHECK(last.id == "56d98a59dc89441400fdb52e");
  CHECK(last.answers[0].text == "1995.");

  const auto v2 = read_squad(kSquad / "squad_v2.0_dev/dev-v2.0.json");
  CHECK(v2.version == "v2.0");
  CHECK(v2.articles[0].title == "Normans");
  CHECK(v2.stats.read == 17);
  CHECK(answers(v2) == 29);
  int impossible = 0;
  for (const auto& e : squad_examples(v2)) impossible += e.is_impossible;
  CHECK(impossible == 9);
  const auto& q0 = v2.articles[0].paragraphs[0].qas[0];
  CHECK(q0.answers.size() == 4);
  CHECK(q0.answers[0].text == "France");
  CHECK(q0.answers[0].byte_start == 159u);
  const auto& ql = v2.articles[0].paragraphs[1].qas.back();
  CHECK(ql.id == "5ad3a266604f3c001a3fea2b");
  CHECK(ql.is_impossible);
  CHECK(ql.answers.empty());
}

TEST_CASE("squad: an answer_start that misses its text is counted, fails or is relocated") {
  // "x\u00e9 ab ab": code points x=0 e-acute=1 ' '=2 a=3 b=4 ' '=5 a=6 b=7; the bytes are one more.
  const std::string doc = one("x\\u00e9 ab ab", "ab", 5);
  const auto counted = parse_squad(doc, "c.json");
  const auto& a = counted.articles[0].paragraphs[0].qas[0].answers[0];
  CHECK(a.answer_start == 5);
  CHECK(!a.byte_start);
  CHECK(counted.stats.warning_count("answer_start does not point to the answer text") == 1);
  REQUIRE(counted.stats.notes.size() == 1);
  CHECK(counted.stats.notes[0] ==
        "c.json: data[0].paragraphs[0].qas[0].answers[0].answer_start: 5 points to ' a', not to 'ab'");
  CHECK_THROWS_WITH_AS(parse_squad(doc, "c.json", {.offsets = OffsetCheck::fail}),
                       Contains("c.json: data[0].paragraphs[0].qas[0].answers[0].answer_start: 5 points to"),
                       FormatError);
  const auto moved = parse_squad(doc, "c.json", {.offsets = OffsetCheck::relocate});
  const auto& m = moved.articles[0].paragraphs[0].qas[0].answers[0];
  CHECK(m.answer_start == 6);  // nearest occurrence to 5 (3 is farther)
  CHECK(m.byte_start == 7u);
  CHECK(moved.stats.warning_count("answer_start relocated") == 1);
  // A 4-byte character counts as one code point.
  const auto emoji = parse_squad(one("\\ud83d\\ude00 ok", "ok", 2));
  CHECK(emoji.articles[0].paragraphs[0].qas[0].answers[0].byte_start == 5u);
}

TEST_CASE("squad: malformed input names the file and the JSON path (or line)") {
  CHECK_THROWS_WITH_AS(
      read_squad(kBad / "squad_answer_start_out_of_range.json"),
      Contains(
          "squad_answer_start_out_of_range.json: data[0].paragraphs[1].qas[2].answers[0].answer_start: 100000 puts "
          "the answer (20 code points) outside the context (464 code points)"),
      FormatError);
  CHECK_THROWS_WITH_AS(read_squad(kBad / "squad_bad_json.json"),
                       Contains("squad_bad_json.json:16: invalid JSON: syntax error"), FormatError);
  CHECK_THROWS_WITH_AS(parse_squad(one("abc", "a", -1), "n.json"),
                       Contains("n.json: data[0].paragraphs[0].qas[0].answers[0].answer_start: -1 puts"), FormatError);
  CHECK_THROWS_WITH_AS(
      parse_squad(R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q", "question": "?", )"
                  R"("is_impossible": true, "answers": [{"text": "c", "answer_start": 0}]}]}]}]})",
                  "i.json"),
      Contains("i.json: data[0].paragraphs[0].qas[0].answers: an impossible question (id q) has 1 answers"),
      FormatError);
  CHECK_THROWS_WITH_AS(parse_squad(R"({"data": [{"paragraphs": [{"qas": []}]}]})", "m.json"),
                       Contains("m.json: data[0].paragraphs[0].context: missing"), FormatError);
  CHECK_THROWS_WITH_AS(parse_squad(R"({"version": "1.1"})", "d.json"), Contains("d.json: data: missing"), FormatError);
  std::istringstream in(R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q", "question": "?"},)"
                        R"( {"id": "q", "question": "?", "answers": [{"text": "c"}]}]}]}]})");
  const auto odd = read_squad(in, "s.json");
  CHECK(odd.stats.read == 2);
  CHECK(odd.stats.warning_count("answerable question without answers") == 1);
  CHECK(odd.stats.warning_count("duplicate question id") == 1);
  CHECK(odd.stats.warning_count("answer_start missing") == 1);
}

}  // namespace test_tasks_data_squad
