// tasks/data/superglue.hpp: SuperGLUE JSONL (RTE, CB, BoolQ, COPA, WiC, WSC) on the committed
// samples, and malformed records.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>

#include "deepprompt/tasks/data/superglue.hpp"

namespace test_tasks_data_superglue {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

using namespace deepprompt;
using namespace deepprompt::data;
namespace fs = std::filesystem;
using doctest::Contains;

namespace {
const fs::path kSg = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/superglue";
const fs::path kBad = fs::path(DEEPPROMPT_TEST_DATA) / "datasets/malformed";

template <class Ds, class Pred>
long count(const Ds& ds, Pred p) {
  return std::count_if(ds.examples.begin(), ds.examples.end(), p);
}
}  // namespace

TEST_CASE("superglue: RTE and CB samples") {
  const auto rte = read_superglue<RteExample>(kSg / "RTE/val.jsonl");
  REQUIRE(rte.size() == 20);
  CHECK(rte.stats.read == 20);
  CHECK(rte.examples[0].premise.starts_with("Dana Reeve, the widow of the actor Christopher Reeve"));
  CHECK(rte.examples[0].hypothesis == "Christopher Reeve had an accident.");
  CHECK(rte.examples[0].label == 1);  // not_entailment
  CHECK(rte.examples[0].line == 1);
  CHECK(rte.examples[19].hypothesis == "President Fujimori was re-elected in 1995.");
  CHECK(rte.examples[19].idx == 19);
  CHECK(rte.examples[19].line == 20);
  CHECK(count(rte, [](const auto& e) { return e.label == 0; }) == 12);

  const auto rte_test = read_superglue<RteExample>(kSg / "RTE/test.jsonl");
  REQUIRE(rte_test.size() == 5);
  CHECK(rte_test.examples[0].hypothesis == "Shukla is related to Mangla.");
  CHECK(count(rte_test, [](const auto& e) { return e.label.has_value(); }) == 0);

  const auto cb = read_superglue<CbExample>(kSg / "CB/val.jsonl");
  REQUIRE(cb.size() == 20);
  CHECK(cb.examples[0].hypothesis == "Valence was helping");
  CHECK(CbExample::kLabels[*cb.examples[0].label] == "contradiction");
  CHECK(cb.examples[19].hypothesis == "Mala was scowling and stiffening into a Mark 2 temper");
  CHECK(cb.examples[19].label == 0);
  CHECK(count(cb, [](const auto& e) { return e.label == 2; }) == 3);  // neutral
  CHECK(read_superglue<CbExample>(kSg / "CB/test.jsonl").examples.at(4).hypothesis == "something had happened");
}

TEST_CASE("superglue: BoolQ original release and SuperGLUE layout") {
  const auto boolq = read_superglue<BoolqExample>(kSg / "BoolQ/dev.jsonl");
  REQUIRE(boolq.size() == 10);
  CHECK(boolq.examples[0].question == "does ethanol take more energy make that produces");
  CHECK(boolq.examples[0].title == "Ethanol fuel");
  CHECK(boolq.examples[0].label == false);
  CHECK(boolq.examples[0].idx == 0);  // no idx in the original release: the record number
  CHECK(boolq.examples[9].question == "is there a play off for third place in the world cup");
  CHECK(boolq.examples[9].passage.size() == 467);
  CHECK(boolq.examples[9].idx == 9);
  CHECK(count(boolq, [](const auto& e) { return e.label == true; }) == 8);

  const auto sg =
      parse_superglue<BoolqExample>(R"({"question": "is it?", "passage": "T -- it is.", "idx": 5, "label": true})"
                                    "\n");
  REQUIRE(sg.size() == 1);
  CHECK(sg.examples[0].idx == 5);
  CHECK(sg.examples[0].label == true);
  CHECK(sg.examples[0].title.empty());
}

TEST_CASE("superglue: COPA, WiC and WSC samples") {
  const auto copa = read_superglue<CopaExample>(kSg / "COPA/val.jsonl");
  REQUIRE(copa.size() == 20);
  CHECK(copa.examples[0].premise == "The man turned on the faucet.");
  CHECK(copa.examples[0].choice2 == "Water flowed from the spout.");
  CHECK(copa.examples[0].question == "effect");
  CHECK(copa.examples[0].label == 1);
  CHECK(copa.examples[19].choice1 == "She burned her finger on the toaster.");
  CHECK(copa.examples[19].question == "cause");
  CHECK(copa.examples[19].label == 0);
  CHECK(read_superglue<CopaExample>(kSg / "COPA/test.jsonl").examples.at(4).premise == "The office was closed.");

  const auto wic = read_superglue<WicExample>(kSg / "WiC/val.jsonl");
  REQUIRE(wic.size() == 20);
  CHECK(wic.examples[0].word == "class");
  CHECK(wic.examples[0].start2 == 85);
  CHECK(wic.examples[0].span1() == "class");
  CHECK(wic.examples[0].span2() == "class");
  CHECK(wic.examples[0].label == false);
  CHECK(wic.examples[19].span1() == "obstacle");
  CHECK(wic.examples[19].label == true);
  const auto wic_test = read_superglue<WicExample>(kSg / "WiC/test.jsonl");
  CHECK(wic_test.examples.at(4).span2() == "rimmed");
  CHECK(!wic_test.examples.at(4).label);

  const auto wsc = read_superglue<WscExample>(kSg / "WSC/val.jsonl");
  REQUIRE(wsc.size() == 45);
  CHECK(wsc.examples[0].span1_text == "anyone");
  CHECK(wsc.examples[0].span1_index == 32);
  CHECK(wsc.examples[0].span2_text == "him");
  CHECK(wsc.examples[0].span2_index == 47);
  CHECK(wsc.examples[0].label == false);
  CHECK(wsc.examples[44].span1_text == "the elephants");
  CHECK(wsc.examples[44].idx == 44);
  CHECK(count(wsc, [](const auto& e) { return e.label == true; }) == 15);
  // Line 43: span2 "it" at word 30, which is "use" in the official file: kept, counted.
  CHECK(wsc.stats.warning_count("span text differs from the text at its index") == 1);
  REQUIRE(wsc.stats.notes.size() == 1);
  CHECK(wsc.stats.notes[0].find("val.jsonl:43: target.span2_text 'it' but word 30 is 'use'") != std::string::npos);
}

TEST_CASE("superglue: malformed records name the file, line and field") {
  CHECK_THROWS_WITH_AS(read_superglue<RteExample>(kBad / "rte_bad_json.jsonl"),
                       Contains("rte_bad_json.jsonl:3: invalid JSON:"), FormatError);
  CHECK_THROWS_WITH_AS(
      read_superglue<RteExample>(kBad / "rte_bad_label.jsonl"),
      Contains("rte_bad_label.jsonl:4: label: 'maybe_not_entailment' is not one of entailment, not_entailment"),
      FormatError);
  const auto skipped = read_superglue<RteExample>(kBad / "rte_bad_json.jsonl", {.skip_malformed = true});
  CHECK(skipped.size() == 19);
  CHECK(skipped.stats.reasons.at("invalid JSON") == 1);
  CHECK(skipped.examples[2].line == 4);
  CHECK(skipped.examples[2].idx == 3);

  std::istringstream missing(R"({"premise": "p", "idx": 0})"
                             "\n");
  CHECK_THROWS_WITH_AS(read_superglue<RteExample>(missing, "m.jsonl"), Contains("m.jsonl:1: hypothesis: missing"),
                       FormatError);
  CHECK_THROWS_WITH_AS(
      parse_superglue<CopaExample>("\n"
                                   R"({"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0})",
                                   "c.jsonl"),
      Contains("c.jsonl:1: blank line"), FormatError);
  CHECK_THROWS_WITH_AS(
      parse_superglue<CopaExample>(R"({"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0})",
                                   "c.jsonl"),
      Contains("c.jsonl:1: question: 'why' is neither cause nor effect"), FormatError);
  CHECK_THROWS_WITH_AS(
      parse_superglue<CopaExample>(
          R"({"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": "0"})", "c.jsonl"),
      Contains("c.jsonl:1: label: expected an integer, got string"), FormatError);
  CHECK_THROWS_WITH_AS(
      parse_superglue<WicExample>(R"({"word": "w", "sentence1": "a w", "sentence2": "w", "start1": 2,)"
                                  R"( "end1": 4, "start2": 0, "end2": 1})",
                                  "w.jsonl"),
      Contains("w.jsonl:1: end1: span [start1, end1) = [2, 4) is not inside its sentence (3 code points)"),
      FormatError);
  CHECK_THROWS_WITH_AS(
      parse_superglue<WscExample>(R"({"text": "He ran.", "target": {"span1_text": "He", "span1_index": 0,)"
                                  R"( "span2_text": "ran", "span2_index": 7}})",
                                  "s.jsonl"),
      Contains("s.jsonl:1: target.span2_index: 7 is not a word index of the text (2 words)"), FormatError);
  CHECK_THROWS_WITH_AS(parse_superglue<BoolqExample>("[1, 2]", "b.jsonl"),
                       Contains("b.jsonl:1: record: expected a JSON object"), FormatError);
  // CRLF and trailing blank lines are fine.
  CHECK(parse_superglue<BoolqExample>(R"({"question": "q", "passage": "p", "label": false})"
                                      "\r\n\r\n")
            .size() == 1);
}

}  // namespace test_tasks_data_superglue
