// tasks/metrics: entity-level P/R/F1 as seqeval 1.2 computes it, in its default (conlleval)
// mode and in strict mode with IOB2 / IOB1 / IOBES, plus IOB1 -> IOB2. Expected values are the
// examples of seqeval's README and docstrings (quoted) or worked out by hand in the comments.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "deepprompt/tasks/metrics/entities.hpp"
#include "deepprompt/tasks/metrics/seqeval.hpp"

namespace test_tasks_metrics_seqeval {  // this file's names, apart from the other files of a unity batch (tests/CMakeLists.txt)

namespace dm = deepprompt::metrics;
using dm::Entity;
using dm::EntityMode;
using dm::TagScheme;
using dm::TagSentences;

namespace {

// seqeval's README example.
const TagSentences kReadmeTrue{{"O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"}, {"B-PER", "I-PER", "O"}};
const TagSentences kReadmePred{{"O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"}, {"B-PER", "I-PER", "O"}};

}  // namespace

TEST_CASE("seqeval: README example (default mode)") {
  // f1_score, precision_score, recall_score -> 0.50 each; accuracy_score -> 0.80.
  // By hand: gold MISC [3,6), PER; predicted MISC [2,6), PER: one of two right each way.
  const auto r = dm::entity_report(kReadmeTrue, kReadmePred);
  CHECK(r.micro.precision == 0.5);
  CHECK(r.micro.recall == 0.5);
  CHECK(r.micro.f1 == 0.5);
  CHECK(r.micro.support == 2);
  CHECK(r.micro.predicted == 2);
  CHECK(r.micro.correct == 1);
  REQUIRE(r.per_type.size() == 2);
  CHECK(r.per_type[0].name == "MISC");
  CHECK(r.per_type[0].f1 == 0.0);
  CHECK(r.per_type[0].support == 1);
  CHECK(r.per_type[1].name == "PER");
  CHECK(r.per_type[1].f1 == 1.0);
  CHECK(r.macro.f1 == 0.5);
  CHECK(r.weighted.f1 == 0.5);
  CHECK(dm::entity_f1(kReadmeTrue, kReadmePred) == 0.5);
  CHECK(dm::token_accuracy(kReadmeTrue, kReadmePred) == doctest::Approx(0.8));
  // Strict IOB2 gives the same here (every entity starts with B-).
  CHECK(dm::entity_f1(kReadmeTrue, kReadmePred, EntityMode::strict, TagScheme::iob2) == 0.5);
}

TEST_CASE("seqeval: classification_report text of the docstring example") {
  const std::string expected =
      "              precision    recall  f1-score   support\n"
      "\n"
      "        MISC       0.00      0.00      0.00         1\n"
      "         PER       1.00      1.00      1.00         1\n"
      "\n"
      "   micro avg       0.50      0.50      0.50         2\n"
      "   macro avg       0.50      0.50      0.50         2\n"
      "weighted avg       0.50      0.50      0.50         2\n";
  CHECK(dm::format_report(dm::entity_report(kReadmeTrue, kReadmePred)) == expected);
}

TEST_CASE("seqeval: f1_score docstring example with micro / macro / weighted averages") {
  // f1_score(average='micro') 0.666..., 'macro' 0.75, 'weighted' 0.666..., None [0.5, 1.0].
  // By hand: gold MISC [2,4), MISC [4,5), PER; predicted MISC [2,4), MISC [4,6), PER.
  // MISC: 1 correct of 2 predicted, 2 gold -> 0.5; PER 1.0; micro 2/3; weighted (0.5*2+1)/3.
  const TagSentences y_true{{"O", "O", "B-MISC", "I-MISC", "B-MISC", "O", "O"}, {"B-PER", "I-PER", "O"}};
  const TagSentences y_pred{{"O", "O", "B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"}, {"B-PER", "I-PER", "O"}};
  const auto r = dm::entity_report(y_true, y_pred);
  CHECK(r.micro.f1 == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(r.macro.f1 == doctest::Approx(0.75).epsilon(1e-15));
  CHECK(r.weighted.f1 == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
  REQUIRE(r.per_type.size() == 2);
  CHECK(r.per_type[0].f1 == 0.5);
  CHECK(r.per_type[1].f1 == 1.0);
  CHECK(r.per_type[0].support == 2);
  CHECK(r.macro.support == 3);
}

TEST_CASE("seqeval: get_entities docstring and conlleval chunk rules") {
  // get_entities(['B-PER', 'I-PER', 'O', 'B-LOC']) -> [('PER', 0, 1), ('LOC', 3, 3)]
  // (inclusive ends; here half-open [begin, end)).
  CHECK(dm::conll_entities({{"B-PER", "I-PER", "O", "B-LOC"}}) ==
        std::vector<Entity>{{"PER", 0, 0, 2}, {"LOC", 0, 3, 4}});
  // I- after O starts an entity; a type change starts a new one; B- after I- of the same type
  // starts a new one (IOB1's separator).
  CHECK(dm::conll_entities({{"O", "I-PER", "I-LOC", "I-LOC", "B-LOC"}}) ==
        std::vector<Entity>{{"PER", 0, 1, 2}, {"LOC", 0, 2, 4}, {"LOC", 0, 4, 5}});
  // Sentences never merge, even when one ends and the next starts with the same type.
  CHECK(dm::conll_entities({{"O", "I-PER"}, {"I-PER", "O"}}) ==
        std::vector<Entity>{{"PER", 0, 1, 2}, {"PER", 1, 0, 1}});
  // IOBES input works in the default mode too: S-PER, then B-LOC E-LOC.
  CHECK(dm::conll_entities({{"S-PER", "B-LOC", "E-LOC", "O"}}) ==
        std::vector<Entity>{{"PER", 0, 0, 1}, {"LOC", 0, 1, 3}});
  CHECK_THROWS_AS(dm::conll_entities({{"O", ""}}), deepprompt::Error);
}

TEST_CASE("seqeval: strict IOB2 versus default on IOB1-style predictions") {
  // Gold in IOB2; the prediction starts entities with I- (as an IOB1 tagger would).
  // Default: I-PER I-PER is PER [0,2), I-LOC after O is LOC [3,4): both right, F1 1.
  // Strict IOB2: an entity must start with B-, so nothing is predicted: P = R = F1 = 0.
  const TagSentences gold{{"B-PER", "I-PER", "O", "B-LOC"}};
  const TagSentences pred{{"I-PER", "I-PER", "O", "I-LOC"}};
  CHECK(dm::entity_f1(gold, pred) == 1.0);
  const auto strict = dm::entity_report(gold, pred, EntityMode::strict, TagScheme::iob2);
  CHECK(strict.micro.predicted == 0);
  CHECK(strict.micro.precision == 0.0);
  CHECK(strict.micro.recall == 0.0);
  CHECK(strict.micro.f1 == 0.0);
  // A type change inside a chunk: default makes PER [0,1) and LOC [1,2); strict IOB2 keeps PER
  // only (I-LOC after B-PER starts nothing).
  CHECK(dm::conll_entities({{"B-PER", "I-LOC"}}) == std::vector<Entity>{{"PER", 0, 0, 1}, {"LOC", 0, 1, 2}});
  CHECK(dm::strict_entities(std::vector<std::string>{"B-PER", "I-LOC"}, TagScheme::iob2) ==
        std::vector<Entity>{{"PER", 0, 0, 1}});
  // Stray I- between entities.
  CHECK(dm::strict_entities(std::vector<std::string>{"O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"},
                            TagScheme::iob2) == std::vector<Entity>{{"LOC", 0, 4, 6}});
}

TEST_CASE("seqeval: strict IOB1, and IOB1 -> IOB2 conversion agree") {
  // Raw CoNLL-2003 style IOB1: entities start with I-, B- only separates two adjacent entities
  // of one type. By hand: PER [0,2), PER [2,3), LOC [4,5), ORG [5,6).
  const std::vector<std::string> iob1{"I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"};
  const std::vector<Entity> expected{{"PER", 0, 0, 2}, {"PER", 0, 2, 3}, {"LOC", 0, 4, 5}, {"ORG", 0, 5, 6}};
  CHECK(dm::strict_entities(iob1, TagScheme::iob1) == expected);
  const auto iob2 = dm::iob1_to_iob2(iob1);
  CHECK(iob2 == std::vector<std::string>{"B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"});
  CHECK(dm::strict_entities(iob2, TagScheme::iob2) == expected);
  CHECK(dm::conll_entities({iob1}) == expected);
  CHECK(dm::conll_entities({iob2}) == expected);
}

TEST_CASE("seqeval: strict IOB1 differs from default where IOB1 forbids a B-") {
  // IOB1 allows B-X only right after an X entity. In strict IOB1 a B-PER after O starts
  // nothing, and the I-PER after it then starts PER [1,2) ((B, I, any) is a start pattern);
  // the default mode reads PER [0,2).
  const std::vector<std::string> tags{"B-PER", "I-PER", "O"};
  CHECK(dm::strict_entities(tags, TagScheme::iob1) == std::vector<Entity>{{"PER", 0, 1, 2}});
  CHECK(dm::conll_entities({tags}) == std::vector<Entity>{{"PER", 0, 0, 2}});
  // B-X then B-Y: the B-X chunk may not be followed by B-Y in IOB1, so it is dropped; B-Y after
  // B-X starts nothing. Only X [0,1) survives; default mode finds three entities.
  const std::vector<std::string> bb{"I-X", "B-X", "B-Y"};
  CHECK(dm::strict_entities(bb, TagScheme::iob1) == std::vector<Entity>{{"X", 0, 0, 1}});
  CHECK(dm::conll_entities({bb}).size() == 3);
  // Scores: gold (IOB1) vs the same tags -> strict IOB1 F1 1, and the report counts sentences.
  const TagSentences gold{{"I-PER", "I-PER", "O"}, {"O", "I-LOC"}};
  CHECK(dm::entity_f1(gold, gold, EntityMode::strict, TagScheme::iob1) == 1.0);
  const TagSentences pred{{"I-PER", "O", "O"}, {"O", "I-LOC"}};
  // PER [0,1) is wrong, LOC right: P = 1/2, R = 1/2.
  CHECK(dm::entity_f1(gold, pred, EntityMode::strict, TagScheme::iob1) == 0.5);
}

TEST_CASE("seqeval: strict IOBES and IOE2") {
  CHECK(dm::strict_entities(std::vector<std::string>{"S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "B-ORG", "O"},
                            TagScheme::iobes) == std::vector<Entity>{{"PER", 0, 0, 1}, {"LOC", 0, 1, 4}});
  // IOE2: an entity ends with E-: I-PER E-PER and a lone E-LOC.
  CHECK(dm::strict_entities(std::vector<std::string>{"I-PER", "E-PER", "E-LOC", "O"}, TagScheme::ioe2) ==
        std::vector<Entity>{{"PER", 0, 0, 2}, {"LOC", 0, 2, 3}});
}

TEST_CASE("seqeval: errors and empty cases") {
  // A prefix the scheme does not allow, or none at all.
  CHECK_THROWS_WITH_AS(dm::strict_entities(std::vector<std::string>{"B-PER", "E-PER"}, TagScheme::iob2),
                       doctest::Contains("E-PER"), deepprompt::Error);
  CHECK_THROWS_AS(dm::strict_entities(std::vector<std::string>{"X-PER"}, TagScheme::iobes), deepprompt::Error);
  CHECK_THROWS_AS(dm::strict_entities(std::vector<std::string>{""}, TagScheme::iob2), deepprompt::Error);
  // Shapes must agree.
  CHECK_THROWS_AS(dm::entity_report({{"O"}}, {{"O"}, {"O"}}), deepprompt::Error);
  CHECK_THROWS_WITH_AS(dm::entity_report({{"O", "O"}}, {{"O"}}), doctest::Contains("sentence 0"), deepprompt::Error);
  CHECK_THROWS_AS(dm::token_accuracy({}, {}), deepprompt::Error);
  // No entity anywhere: every score 0, no type rows (seqeval: 0 with warnings; NaN macro).
  const auto r = dm::entity_report({{"O", "O"}}, {{"O", "O"}});
  CHECK(r.per_type.empty());
  CHECK(r.micro.f1 == 0.0);
  CHECK(r.macro.f1 == 0.0);
  CHECK(r.weighted.f1 == 0.0);
  // Predictions but no gold: precision 0, recall 0 (zero division), type listed with support 0.
  const auto p = dm::entity_report({{"O", "O"}}, {{"B-PER", "O"}});
  REQUIRE(p.per_type.size() == 1);
  CHECK(p.per_type[0].support == 0);
  CHECK(p.per_type[0].predicted == 1);
  CHECK(p.micro.f1 == 0.0);
}

TEST_CASE("seqeval: iob1_to_iob2") {
  CHECK(dm::iob1_to_iob2({}).empty());
  // CoNLL-2003's first training sentence: EU rejects German call to boycott British lamb .
  CHECK(dm::iob1_to_iob2({"I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O"}) ==
        std::vector<std::string>{"B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"});
  // Adjacent entities of one type keep their B-; a type change makes a B-.
  CHECK(dm::iob1_to_iob2({"I-PER", "I-PER", "B-PER", "I-PER", "I-LOC"}) ==
        std::vector<std::string>{"B-PER", "I-PER", "B-PER", "I-PER", "B-LOC"});
  CHECK_THROWS_AS(dm::iob1_to_iob2({"O", "E-PER"}), deepprompt::Error);
  CHECK_THROWS_AS(dm::iob1_to_iob2({"I-"}), deepprompt::Error);
}

}  // namespace test_tasks_metrics_seqeval
